"""RunManager: every job that computes -- a search, an evaluation, a run-time estimate -- in a
worker process of its own, with a queue, stop, pause, resume and crash capture.

One manager per process (the app keeps it in ``st.cache_resource``). A job is a
``python -m core.runs.worker`` child that writes to the same SQLite store (WAL lets one writer per
job and the app's readers go at once). The first design ran searches as threads of the server;
they run in processes (docs/design.md "Processes") because a search thread in the Streamlit
server shares the interpreter lock with the page refreshes and ran at a third of the CLI's
speed (docs/performance.md). A child keeps CLI speed, uses its own torch thread
count, and a crash in native code cannot take the app down. The app server itself trains
nothing: evaluations and the Launch page's estimate go the same way.

Three kinds of job:

- **search** (``start``/``resume``; status in the ``runs`` table): stop, pause, resume.
- **evaluation** (``evaluate``; status in the ``evaluations`` table: queued, running, finished,
  failed, stopped, interrupted; the row holds the worker's pid): stop. A run of a study stored
  with ``evaluate=True`` gets one queued as soon as it finishes (``core.runs.study.evaluation_due``).
- **estimate** (``estimate``; status in this manager, ``estimate_status``): a few timed search
  iterations for the Launch page; stop ends the process.

Searches and evaluations share ``max_concurrent`` (both train a network; more wait in one queue,
first come first served). Estimates have their own limit, ``max_estimates`` (1): an estimate is
a few seconds, and one queued behind a long search would be worthless -- it runs beside the
searches (and says so on the page, since they share the machine).

Control goes over the child's stdin (``core.runs.worker``); a child that dies without writing its
status is marked failed with the end of its stderr (a run's ``error``, an evaluation's
``error``, an estimate's error). A job outlives the page that started it: the manager holds it,
and pages read its status from the store (or, for an estimate, from ``estimate_status``). When
the server stops, ``shutdown`` stops every job (stored ``stopped``); when the server dies, each
child sees its stdin end and stores itself ``interrupted`` (a search resumable from its last
checkpoint), and the next manager on that store marks what was left queued or running by a
process that is gone as ``interrupted``.

With ``spare=True`` (the app) one worker is kept started with torch imported, waiting for a job:
a search launched from the browser starts ~3 s sooner. A spare is started when the manager is
made, when the last live job ends, and when a page asks for one (``prepare_spare``, the Launch
page) -- not when one is handed to a job: its imports took 6.5 s of CPU here, which a 2-core
machine would otherwise take from the job just started and the browser drawing its first charts.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.engine.config import ConfigError, SearchConfig
from core.runs.store import EVAL_ACTIVE_STATUSES, RESUMABLE_STATUSES, RunStore
from core.runs.study import StudySpec, evaluation_due, launch_study

ROOT = Path(__file__).resolve().parents[1]
_STDERR_KEEP = 40  # lines of a worker's stderr kept for the error of a crashed job
ACTIVE = ("queued", "running", "paused")
SEARCH, EVALUATION, ESTIMATE = "search", "evaluation", "estimate"
_KEEP_ESTIMATES = 32  # ended estimates kept for estimate_status (a page polls its own)


@dataclass
class _Handle:
    kind: str                   # SEARCH, EVALUATION or ESTIMATE
    ident: int                  # run id, evaluation id, or estimate number
    resume: bool = False
    proc: subprocess.Popen | None = None
    stopping: bool = False
    stderr: deque = field(default_factory=lambda: deque(maxlen=_STDERR_KEEP))
    done: threading.Event = field(default_factory=threading.Event)
    folder: str | None = None   # an estimate's config.json and result.json
    outcome: dict[str, Any] | None = None  # an estimate's {"status", "result" | "error"}

    @property
    def key(self) -> tuple[str, int]:
        return self.kind, self.ident

    @property
    def run_id(self) -> int:  # searches: the run; kept for readers of the old handle
        return self.ident

    def alive(self) -> bool:
        return self.proc is not None and not self.done.is_set()

    def pool(self) -> str:
        return ESTIMATE if self.kind == ESTIMATE else SEARCH


class RunManager:
    def __init__(self, store: RunStore, max_concurrent: int = 2, spare: bool = False,
                 max_estimates: int = 1):
        self.store = store
        self.max_concurrent = max(1, int(max_concurrent))
        self.max_estimates = max(1, int(max_estimates))
        self._lock = threading.RLock()
        self._handles: dict[tuple[str, int], _Handle] = {}
        self._queue: deque[tuple[str, int]] = deque()
        self._closed = False
        self._keep_spare = spare
        self._spare: subprocess.Popen | None = None
        self._estimates = 0
        store.mark_interrupted()
        store.mark_evaluations_interrupted()
        atexit.register(self.shutdown)
        if spare:
            self._refill_spare()

    # ---- searches --------------------------------------------------------------------------
    def start(self, config: SearchConfig, name: str | None = None, group: str | None = None) -> int:
        """Stores the run and starts it (or queues it); returns its id at once."""
        config.validate()
        check_device(config)  # nothing is stored for a run that cannot start
        run_id = self.store.create_run(config, name=name, group=group, status="queued")
        self._submit(_Handle(SEARCH, run_id))
        return run_id

    def resume(self, run_id: int) -> None:
        """Continues a paused run, or restarts an interrupted/stopped one from its checkpoint."""
        with self._lock:
            h = self._handles.get((SEARCH, run_id))
            if h is not None and h.alive() and not h.stopping:
                self._send(h, "resume")
                return
        run = self.store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        if run.status not in RESUMABLE_STATUSES:
            raise ValueError(f"run {run_id} is {run.status}" + (
                f" in process {run.pid} on {run.host}" if run.status != "finished" else "")
                + "; only interrupted, stopped or failed runs (and paused ones this app holds) "
                "can be resumed")
        config = SearchConfig.from_dict(run.config)  # e.g. its data folder is gone: say so here
        check_device(config)
        self.store.queue_run(run_id)  # held by this process until its worker takes it
        self._submit(_Handle(SEARCH, run_id, resume=True))

    # ---- evaluations -----------------------------------------------------------------------
    def evaluate(self, run_id: int, config: Any) -> int:
        """Queues an evaluation of the run's final genotype (``config``: an EvalConfig or its
        dict); returns the evaluation's id at once. Its row says queued, then running (with
        the worker's pid), then how it ended."""
        run = self.store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        with self._lock:
            if self._closed:
                raise RuntimeError("the run manager is shut down")
            eval_id = self.store.create_evaluation(run_id, values, status="queued")
        self._submit(_Handle(EVALUATION, eval_id))
        return eval_id

    def stop_evaluation(self, eval_id: int) -> None:
        """A queued evaluation is dropped (stored stopped); a running one stops after its
        current iteration."""
        self._stop((EVALUATION, int(eval_id)))

    def evaluation_state(self, eval_id: int) -> str | None:
        """"queued" (waiting for a slot), "started" (its worker process exists) or None (this
        manager does not hold it, or it ended): what the row's status cannot tell while a
        worker is still importing torch."""
        key = (EVALUATION, int(eval_id))
        with self._lock:
            h = self._handles.get(key)
            if h is None:
                return None
            return "queued" if key in self._queue else "started" if h.alive() else None

    def wait_evaluation(self, eval_id: int, timeout: float | None = None) -> bool:
        return self._wait((EVALUATION, int(eval_id)), timeout)

    # ---- estimates -------------------------------------------------------------------------
    def estimate(self, config: SearchConfig) -> int:
        """Starts timing a few iterations of ``config`` in a worker; returns the estimate's
        number at once (``estimate_status``, ``wait_estimate``)."""
        config.validate()
        folder = tempfile.mkdtemp(prefix="prime-estimate-")
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write(config.to_json())
        with self._lock:
            self._estimates += 1
            h = _Handle(ESTIMATE, self._estimates, folder=folder, outcome={"status": "queued"})
            old = [k for k, o in self._handles.items() if k[0] == ESTIMATE and o.done.is_set()]
            for k in old[:max(0, len(old) - _KEEP_ESTIMATES)]:
                del self._handles[k]
        self._submit(h)
        return h.ident

    def estimate_status(self, job: int) -> dict[str, Any] | None:
        """{"status": queued | running | finished | failed | stopped, "result": {...} (finished),
        "error": text (failed), "pid": the worker's}; None if this manager has no such job."""
        with self._lock:
            h = self._handles.get((ESTIMATE, int(job)))
            if h is None:
                return None
            out = dict(h.outcome or {})
            if not h.done.is_set() and h.proc is not None:
                out.update(status="running", pid=h.proc.pid)
            return out

    def wait_estimate(self, job: int, timeout: float | None = None) -> dict[str, Any] | None:
        self._wait((ESTIMATE, int(job)), timeout)
        return self.estimate_status(job)

    # ---- the queue -------------------------------------------------------------------------
    def _submit(self, h: _Handle) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run manager is shut down")
            self._handles[h.key] = h
            self._queue.append(h.key)
        self._pump()

    def _limit(self, pool: str) -> int:
        return self.max_estimates if pool == ESTIMATE else self.max_concurrent

    def _pump(self) -> None:
        with self._lock:
            if self._closed:
                return
            for key in list(self._queue):
                h = self._handles[key]
                if self._running_count(h.pool()) >= self._limit(h.pool()):
                    continue  # its pool is full; a job of the other pool may still start
                self._queue.remove(key)
                try:
                    h.proc = self._spawn(h)
                except OSError as exc:
                    self._settle_unstarted(h, f"could not start the worker process: {exc}")
                    continue
                if h.kind == EVALUATION:  # the row names its worker while that one starts
                    self.store.assign_evaluation(h.ident, h.proc.pid)
                threading.Thread(target=self._watch, args=(h,), daemon=True,
                                 name=f"watch-{h.kind}-{h.ident}").start()

    def _settle_unstarted(self, h: _Handle, error: str, status: str = "failed") -> None:
        """A job that never got a process: stored with ``status`` (failed or stopped)."""
        if h.kind == SEARCH:
            self.store.update_run(h.ident, status=status,
                                  **({"error": error} if status == "failed" else {}))
        elif h.kind == EVALUATION:
            self.store.finish_evaluation(h.ident, status=status, error=error)
        else:
            h.outcome = {"status": status, "error": error}
            self._drop_folder(h)
        h.done.set()

    def _job_words(self, h: _Handle) -> tuple[list[str], str]:
        """(command-line arguments, a spare's first line) of the job."""
        if h.kind == SEARCH:
            return (["--run", str(h.ident)] + (["--resume"] if h.resume else []),
                    f"run {h.ident}{' resume' if h.resume else ''}")
        if h.kind == EVALUATION:
            return ["--evaluation", str(h.ident)], f"evaluate {h.ident}"
        return ["--bench", str(h.folder)], f"bench {h.folder}"

    def _spawn(self, h: _Handle) -> subprocess.Popen:
        args, line = self._job_words(h)
        spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None:
            try:
                spare.stdin.write(line + "\n")
                spare.stdin.flush()
            except OSError:
                spare = None
            else:
                return spare
        return self._popen(args)

    def prepare_spare(self) -> None:
        """Starts a spare worker if none waits (a page where a launch is likely asks for it)."""
        with self._lock:
            self._refill_spare()

    def _refill_spare(self) -> None:
        if self._keep_spare and not self._closed and self._spare is None:
            try:
                self._spare = self._popen([])
            except OSError:  # no spare: jobs start their own process
                self._spare = None

    def _popen(self, args: list[str]) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "core.runs.worker", "--db", os.path.abspath(self.store.path)] + args
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, bufsize=1, env=env,
            # its own process group: Ctrl+C on the server reaches the server, which stops it
            start_new_session=(os.name == "posix"))

    def _running_count(self, pool: str | None = None) -> int:
        return sum(1 for h in self._handles.values()
                   if h.alive() and (pool is None or h.pool() == pool))

    # ---- endings ---------------------------------------------------------------------------
    def _watch(self, h: _Handle) -> None:
        """Keeps the end of the child's stderr (passing it on), then settles a silent death."""
        assert h.proc is not None and h.proc.stderr is not None
        for line in h.proc.stderr:
            h.stderr.append(line)
            sys.stderr.write(line)
        code = h.proc.wait()
        tail = "".join(h.stderr).strip()
        try:
            if h.kind == SEARCH:
                self._settle_search(h, code, tail)
            elif h.kind == EVALUATION:
                self._settle_evaluation(h, code, tail)
            else:
                self._settle_estimate(h, code, tail)
        finally:
            h.done.set()
            self._pump()
            with self._lock:
                if not self._running_count() and not self._queue:
                    self._refill_spare()

    def _settle_search(self, h: _Handle, code: int, tail: str) -> None:
        run = self.store.get_run(h.ident, check=False)
        if run is not None and run.status in ACTIVE:
            if h.stopping:
                self.store.update_run(h.ident, status="stopped" if not self._closed else "interrupted")
            else:
                self.store.update_run(h.ident, status="failed", error=(
                    f"the search process exited with code {code} without finishing"
                    + (f"\n\n{tail}" if tail else "")))
                self.store.add_event(h.ident, "failed", f"search process exited with code {code}")
        elif run is not None and run.status == "finished" and not self._closed:
            self._evaluate_if_due(h.ident)  # queued before this run's wait() returns

    def _evaluate_if_due(self, run_id: int) -> None:
        """A run of a study stored with evaluate=True: its evaluation joins the queue."""
        try:
            config = evaluation_due(self.store, run_id)
            if config is not None:
                self.evaluate(run_id, config)
        except Exception as exc:  # never lose the run's own ending over its evaluation
            self.store.add_event(run_id, "warning", f"could not queue its evaluation: {exc}")

    def _settle_evaluation(self, h: _Handle, code: int, tail: str) -> None:
        row = self.store.get_evaluation(h.ident)
        if row is None or row["status"] not in EVAL_ACTIVE_STATUSES:
            return  # the worker stored how it ended
        if h.stopping:
            self.store.finish_evaluation(h.ident, status="stopped", error="evaluation stopped")
            return
        self.store.finish_evaluation(h.ident, status="failed", error=(
            f"the evaluation process exited with code {code} without finishing"
            + (f"\n\n{tail}" if tail else "")))
        self.store.add_event(row["run_id"], "warning",
                             f"evaluation #{h.ident} failed: its process exited with code {code}")

    def _settle_estimate(self, h: _Handle, code: int, tail: str) -> None:
        pid = h.proc.pid if h.proc is not None else None
        out: dict[str, Any] | None = None
        try:
            with open(os.path.join(str(h.folder), "result.json")) as f:
                out = json.load(f)
        except (OSError, ValueError):
            out = None
        if out is not None and "result" in out:
            h.outcome = {"status": "finished", "result": out["result"], "pid": pid}
        elif h.stopping:
            h.outcome = {"status": "stopped", "error": "estimate stopped", "pid": pid}
        elif out is not None and "error" in out:
            h.outcome = {"status": "failed", "error": out["error"], "pid": pid}
        else:
            h.outcome = {"status": "failed", "pid": pid, "error": (
                f"the estimate process exited with code {code} without a result"
                + (f"\n\n{tail}" if tail else ""))}
        self._drop_folder(h)

    @staticmethod
    def _drop_folder(h: _Handle) -> None:
        if h.folder:
            shutil.rmtree(h.folder, ignore_errors=True)

    @staticmethod
    def _close_spare(spare: subprocess.Popen) -> None:
        """End of input before a job: the spare exits without touching the store."""
        try:
            spare.stdin.close()
            spare.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            spare.kill()

    # ---- control ---------------------------------------------------------------------------
    @staticmethod
    def _send(h: _Handle, word: str) -> None:
        try:
            assert h.proc is not None and h.proc.stdin is not None
            h.proc.stdin.write(word + "\n")
            h.proc.stdin.flush()
        except (OSError, ValueError):  # the child has just ended
            pass

    def _stop(self, key: tuple[str, int]) -> None:
        with self._lock:
            h = self._handles.get(key)
            if h is None:
                return
            h.stopping = True
            if key in self._queue:
                self._queue.remove(key)
                self._settle_unstarted(h, "stopped before it started", status="stopped")
            elif h.alive():
                if h.kind == ESTIMATE:
                    h.proc.kill()  # a few iterations, nothing stored: no clean ending needed
                else:
                    self._send(h, "stop")

    def stop(self, run_id: int) -> None:
        self._stop((SEARCH, run_id))

    def pause(self, run_id: int) -> None:
        with self._lock:
            h = self._handles.get((SEARCH, run_id))
            if h is not None and h.alive():
                self._send(h, "pause")

    def _is_live(self, key: tuple[str, int]) -> bool:
        with self._lock:
            h = self._handles.get(key)
            return bool(h and (key in self._queue or h.alive()))

    def is_live(self, run_id: int) -> bool:
        return self._is_live((SEARCH, run_id))

    def live_runs(self) -> list[int]:
        with self._lock:
            return [k[1] for k in self._handles if k[0] == SEARCH and self._is_live(k)]

    def list(self) -> list[Any]:
        return self.store.list_runs()

    def _wait(self, key: tuple[str, int], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                h = self._handles.get(key)
            if h is None or h.done.wait(0.1):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Waits until the run has ended (a queued one: started and ended). True if it did."""
        return self._wait((SEARCH, run_id), timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops every job and waits for the processes; a child still going after ``timeout``
        stops by itself when this process's end closes its stdin."""
        with self._lock:
            if self._closed and not self._handles:
                return
            self._closed = True
            spare, self._spare = self._spare, None
            queued = list(self._queue)
            self._queue.clear()
            handles = list(self._handles.values())
        if spare is not None:
            self._close_spare(spare)
        for key in queued:
            h = self._handles[key]
            h.stopping = True
            self._settle_unstarted(h, "the app stopped before it started", status="stopped")
        for h in handles:
            if h.alive():
                h.stopping = True
                if h.kind == ESTIMATE:
                    h.proc.kill()
                else:
                    self._send(h, "stop")
        deadline = time.monotonic() + timeout
        for h in handles:
            if h.proc is not None:
                try:
                    h.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    continue
                h.done.wait(max(0.0, deadline - time.monotonic()))


def check_device(config: SearchConfig) -> None:
    """ConfigError naming ``device`` if the config's device is not on this machine."""
    from core.engine.device import pick_device

    try:
        pick_device(config.device)
    except (RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("device", text.removeprefix("device: ")) from None


def run_study(store: Any, spec: StudySpec, max_concurrent: int = 2,
              progress: Callable[[str], None] | None = None) -> list[int]:
    """Runs a whole study to the end, its evaluations too (the CLI's path); returns its runs'
    ids (``core.viz.compare.study_summary`` compares them)."""
    manager = RunManager(store, max_concurrent=max_concurrent)
    try:
        ids = launch_study(manager, spec)
        for rid in ids:
            manager.wait(rid)
            if progress:
                r = store.get_run(rid)
                progress(f"run {rid} ({r.name}) {r.status} in {r.duration or 0:.0f}s")
        # a finished run's evaluation is queued before its wait returns: wait for them all
        for eid in store.evaluations(ids)["id"].tolist():
            manager.wait_evaluation(int(eid))
            if progress:
                e = store.get_evaluation(eid)
                acc = f" test acc {e['test_acc']:.3f}" if e["test_acc"] is not None else ""
                progress(f"evaluation of run {e['run_id']} {e['status']}{acc}")
    finally:
        manager.shutdown()
    return ids
