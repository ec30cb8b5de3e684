"""Studies on a Ray cluster: each trial (one search) runs as a Ray task on whichever node has the
resources it asks for, with the code a local worker runs; its rows reach the study's SQLite
store on the launching machine, so the pages show Ray trials as they show local ones.

- **One writer.** A ``StoreActor`` pinned to the launching node owns the store. A trial talks to
  it through ``RemoteStore``, which has the store's interface (what ``Search`` and the
  ``Recorder`` call), so the search records itself exactly as in a local worker.
- **Checkpoints travel to the launching machine.** A trial writes its checkpoints on its own
  node, as a local search does; a watcher thread sends each new one to the actor, which keeps it
  where a local run's checkpoint lives (``RunStore.checkpoint_path``). A retried trial, on any
  node, fetches it first and resumes from it.
- **Faults.** A trial whose worker process or node dies is retried by Ray (``max_retries``) and
  resumes from its last checkpoint; each retry is an event on the run. A trial that keeps dying
  is marked failed with Ray's error; the other trials go on.
- **Control.** Stop and pause are requests stored on the run (``core.runs.control``); the
  trial's watcher reads them every second, so a Stop pressed on a page reaches a remote trial.

Needs ``ray`` (in requirements.txt). Every node needs this repository's requirements installed;
the code itself is shipped to the nodes by Ray (``runtime_env``).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from core.engine.search import Callback
from core.runs.control import control_requests
from core.runs.store import RunStore
from core.runs.study import StudySpec, launch_study

CORE_DIR = Path(__file__).resolve().parents[1]
WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run. ``address``: as ``ray.init`` takes it (``auto``,
    ``ray://host:port``), or None for a local Ray started for the study."""
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_retries: int = 2
    local_cpus: int | None = None  # a local Ray's CPU count (None: all of this machine's)

    def validate(self) -> None:
        if self.cpus_per_trial <= 0 and self.gpus_per_trial <= 0:
            raise ValueError("cpus_per_trial: a trial must ask for some CPUs or GPUs (> 0)")
        if self.max_retries < 0:
            raise ValueError("max_retries: 0 or more")


class StoreActor:
    """The study's store, on the launching machine; every trial writes through it."""

    def __init__(self, db_path: str):
        self.store = RunStore(db_path)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.store, method)(*args, **kwargs)

    def put_checkpoint(self, run_id: int, data: bytes) -> None:
        path = self.store.checkpoint_path(run_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def get_checkpoint(self, run_id: int) -> bytes | None:
        path = self.store.checkpoint_path(run_id)
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return f.read()


class RemoteStore:
    """A trial's view of the store: calls go to the ``StoreActor``; checkpoints are local files
    on the trial's node (the watcher sends them on)."""

    def __init__(self, actor: Any, checkpoint_dir: str, db_path: str):
        self._actor = actor
        self._dir = checkpoint_dir
        self.path = db_path  # for messages: the store the rows go to

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return ray.get(self._actor.call.remote(name, *args, **kwargs))
        return call

    def checkpoint_path(self, run_id: int) -> str:
        return os.path.join(self._dir, f"run_{int(run_id)}.pt")

    def recorder(self, run_id: int, log_every: int = 10) -> Any:
        from core.runs.recorder import Recorder
        from core.runs.tensorboard import recording_store

        return Recorder(recording_store(self, run_id), run_id, log_every)

    def mark_started(self, run_id: int, device: str) -> None:
        # the trial's own host and pid, not the actor's: what liveness checks and kills name
        self.update_run(run_id, status="running", started=time.time(), device=device,
                        host=socket.gethostname(), pid=os.getpid(), error=None, finished=None)


def _watch(actor: Any, store: RemoteStore, run_id: int, stop: threading.Event,
           pause: threading.Event, done: threading.Event) -> None:
    """Sends each new checkpoint to the launching machine; turns stored control requests into
    the search's stop and pause events."""
    path, sent = store.checkpoint_path(run_id), 0.0
    # requests made before this attempt started were answered by an earlier one
    _, seen = control_requests(store, run_id)
    while not done.wait(WATCH_SECONDS):
        try:
            if os.path.exists(path) and os.path.getmtime(path) > sent:
                sent = os.path.getmtime(path)
                with open(path, "rb") as f:
                    ray.get(actor.put_checkpoint.remote(run_id, f.read()))
            requests, seen = control_requests(store, run_id, seen)
        except (OSError, ray.exceptions.RayError):
            continue
        for word in requests:
            if word == "stop":
                stop.set()
            elif word == "pause":
                pause.set()
            else:
                pause.clear()


def run_trial(actor: Any, db_path: str, run_id: int, threads: int) -> str:
    """One search of the study, on whichever node Ray chose: resumes from the last checkpoint
    when there is one (a retry), and returns the run's final status."""
    from core.engine.config import SearchConfig
    from core.engine.device import configure_threads
    from core.engine.search import Search

    local = tempfile.mkdtemp(prefix=f"prime-trial-{run_id}-")
    store = RemoteStore(actor, local, db_path)
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {db_path}")
    data = ray.get(actor.get_checkpoint.remote(run_id))
    resume = data is not None
    if resume:
        with open(store.checkpoint_path(run_id), "wb") as f:
            f.write(data)
    config = SearchConfig.from_dict(run.config)
    configure_threads(threads)
    stop, pause, done = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch, args=(actor, store, run_id, stop, pause, done),
                               daemon=True, name="trial-watch")
    watcher.start()
    callbacks = [] if run.status == "queued" else [_Retried(store, run_id, resume)]
    try:
        result = Search(config, store, run_id, callbacks=callbacks, resume=resume).run(stop, pause)
    finally:
        done.set()
        watcher.join()
    return result.status


class _Retried(Callback):
    """The event of a trial that ran before (Ray retries it after its worker or node died, or
    a study resumed it), written once the resumed search knows where it goes on from."""

    def __init__(self, store: RemoteStore, run_id: int, from_checkpoint: bool):
        self.store, self.run_id, self.from_checkpoint = store, run_id, from_checkpoint

    def on_search_start(self, search: Any) -> None:
        where = f"from its checkpoint at iteration {search.step}" if self.from_checkpoint else "from the start"
        self.store.add_event(self.run_id, "retried", f"trial retried on {socket.gethostname()} {where}",
                             step=search.step)


class _RayLauncher:
    """What ``launch_study`` needs of a manager: the store, and ``start`` (here: store the run
    queued; the trials are submitted once all are stored)."""

    def __init__(self, store: RunStore):
        self.store = store

    def start(self, config: Any, name: str | None = None, group: str | None = None) -> int:
        return self.store.create_run(config, name=name, group=group)


def queue_ray_study(store: RunStore, spec: StudySpec) -> list[int]:
    """Stores the study and its runs, queued, as ``launch_study`` does; a driver
    (``run_ray_study`` with ``resume_name``, or ``start_ray_driver``) then runs them on Ray."""
    return launch_study(_RayLauncher(store), spec)


def start_ray_driver(db_path: str, name: str, options: RayOptions, log_path: str | None = None
                     ) -> subprocess.Popen:
    """Runs a queued study on Ray in a process of its own (what the Compare page starts: the
    app server runs nothing of it). Its output goes to ``log_path`` (default: beside the store)."""
    options.validate()
    args = [sys.executable, "-m", "core.runs.ray_study", "--db", os.path.abspath(db_path), "--study", name,
            "--cpus-per-trial", str(options.cpus_per_trial), "--gpus-per-trial", str(options.gpus_per_trial),
            "--retries", str(options.max_retries)]
    if options.address:
        args += ["--address", options.address]
    log_path = log_path or os.path.join(os.path.dirname(os.path.abspath(db_path)), f"ray-{name}.log")
    log = open(log_path, "ab")
    return subprocess.Popen(args, cwd=str(CORE_DIR.parent), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m core.runs.ray_study --db PATH --study NAME``: runs a stored study's unfinished
    trials on Ray (a study queued by the Compare page, or one whose driver went away)."""
    ap = argparse.ArgumentParser(prog="python -m core.runs.ray_study", description=main.__doc__)
    ap.add_argument("--db", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--address", default=None)
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--gpus-per-trial", type=float, default=0.0)
    ap.add_argument("--retries", type=int, default=2)
    args = ap.parse_args(argv)
    options = RayOptions(args.address, args.cpus_per_trial, args.gpus_per_trial, args.retries)
    try:
        run_ray_study(RunStore(args.db), None, options, resume_name=args.study,
                      progress=lambda m: print(m, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _runtime_env(options: RayOptions) -> dict[str, Any]:
    if options.address:  # a cluster: ship the engine's code to every node
        return {"py_modules": [str(CORE_DIR)]}
    return {"env_vars": {"PYTHONPATH": str(CORE_DIR.parent)}}


def run_ray_study(store: RunStore, spec: StudySpec | None, options: RayOptions,
                  resume_name: str | None = None,
                  progress: Callable[[str], None] | None = None) -> list[int]:
    """Runs a study's trials on Ray to the end (or, with ``resume_name``, the unfinished trials
    of a stored study, after the launching process restarted); returns the study's run ids."""
    options.validate()
    if resume_name is not None:
        stored = store.get_study(resume_name)
        runs = store.list_runs(group=resume_name)
        if stored is None or not runs:
            raise ValueError(f"study: no study named {resume_name!r} in {store.path}")
        ids = [r.id for r in runs]
        todo = [r.id for r in runs if r.status != "finished"]
        evaluate, preset = bool(stored.get("evaluate")), stored.get("eval_preset") or "demo"
    else:
        ids = queue_ray_study(store, spec)
        todo, evaluate, preset = list(ids), spec.evaluate, spec.eval_preset
    run_on_ray(store, todo, options, progress, evaluate_ids=ids if evaluate else None,
               eval_preset=preset)
    return ids


def run_on_ray(store: RunStore, run_ids: list[int], options: RayOptions,
               progress: Callable[[str], None] | None = None,
               evaluate_ids: list[int] | None = None, eval_preset: str = "demo") -> None:
    """Runs stored runs as Ray trials until each has ended; then, with ``evaluate_ids``, evaluates
    those of them that finished and have no finished evaluation."""
    options.validate()
    log = progress or (lambda _m: None)
    started_here = not ray.is_initialized()
    if started_here:
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "runtime_env": _runtime_env(options)}
        if options.address:
            ray.init(address=options.address, **kw)
        else:
            ray.init(num_cpus=options.local_cpus, **kw)
    try:
        here = ray.get_runtime_context().get_node_id()
        actor = ray.remote(StoreActor).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        ).remote(os.path.abspath(store.path))
        trial = ray.remote(run_trial).options(num_cpus=options.cpus_per_trial,
                                              num_gpus=options.gpus_per_trial,
                                              max_retries=options.max_retries,
                                              retry_exceptions=False)
        threads = max(1, int(options.cpus_per_trial))
        for rid in run_ids:  # this driver holds them while they wait for a node
            store.update_run(rid, host=socket.gethostname(), pid=os.getpid())
        refs = {trial.remote(actor, os.path.abspath(store.path), rid, threads): rid for rid in run_ids}
        resources = ray.cluster_resources()
        log(f"{len(refs)} trials submitted to Ray ({resources.get('CPU', 0):.0f} CPUs, "
            f"{resources.get('GPU', 0):.0f} GPUs in the cluster)")
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            rid = refs[ready[0]]
            try:
                log(f"run {rid} {ray.get(ready[0])}")
            except ray.exceptions.RayError as exc:
                # retries spent (or the trial raised): this run fails, the study goes on
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                run = store.get_run(rid)
                if run is not None and run.status not in ("finished", "stopped"):
                    store.update_run(rid, status="failed", error=f"Ray trial failed: {exc}")
                    store.add_event(rid, "failed", f"Ray trial failed after at most "
                                    f"{options.max_retries} retries: {message}")
                log(f"run {rid} failed: {message}")
        if evaluate_ids:
            _evaluate_on_ray(store, actor, evaluate_ids, eval_preset, options, log)
    finally:
        if started_here:
            ray.shutdown()


def _evaluate_run_remote(actor: Any, db_path: str, run_id: int, preset: str) -> float:
    from core.engine.evaluate import make_eval_config
    from core.runs.evaluation import evaluate_run

    store = RemoteStore(actor, tempfile.mkdtemp(prefix="prime-eval-"), db_path)
    return evaluate_run(store, run_id, make_eval_config(preset)).test_acc


def _evaluate_on_ray(store: RunStore, actor: Any, ids: list[int], preset: str,
                     options: RayOptions, log: Callable[[str], None]) -> None:
    """Each finished run of the study not yet evaluated is evaluated as a Ray task."""
    done = set(store.evaluations(ids).query("status == 'finished'")["run_id"].tolist())
    todo = [r.id for r in store.list_runs(ids=ids) if r.status == "finished" and r.id not in done]
    task = ray.remote(_evaluate_run_remote).options(num_cpus=options.cpus_per_trial,
                                                   num_gpus=options.gpus_per_trial)
    refs = {task.remote(actor, os.path.abspath(store.path), rid, preset): rid for rid in todo}
    for ref, rid in refs.items():
        try:
            log(f"evaluation of run {rid}: test acc {ray.get(ref):.3f}")
        except ray.exceptions.RayError as exc:
            log(f"evaluation of run {rid} failed: {str(exc).splitlines()[0] if str(exc) else exc}")


if __name__ == "__main__":
    sys.exit(main())
