"""One job in a process of its own, for the RunManager: a search, an evaluation or an estimate.

    python -m core.runs.worker --db PATH --run ID [--resume]     a stored search run
    python -m core.runs.worker --db PATH --evaluation ID         a stored evaluation (a queued row)
    python -m core.runs.worker --db PATH --bench DIR             a run-time estimate: DIR/config.json in,
                                                            DIR/result.json out

The RunManager starts one of these per job. A search reads its config from the stored run and
writes everything back through the Recorder; an evaluation reads its run and settings from its
row in the ``evaluations`` table and writes its result (or its error) there; an estimate times a
few search iterations and writes the figure to a file the manager reads. The parent only has to
start the process and, if asked, stop or pause it; the app server itself does no compute.

Without a job argument the worker imports torch and the engine first (3-4 s on a 2-core
machine) and then waits for a first line naming the job: ``run ID``, ``run ID resume``,
``evaluate ID`` or ``bench DIR``. The app keeps one such spare ready, so a job it starts begins
at once.

Control arrives on stdin, one word per line: ``stop``, ``pause``, ``resume`` (pause and resume
only mean something to a search). The end of stdin means the parent is gone (closed or killed):
a search stops at the next iteration and is stored ``interrupted``, resumable from its last
checkpoint; an evaluation stops at its next iteration and is stored ``interrupted``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import traceback
from typing import IO

from core.engine.config import SearchConfig
from core.runs.store import RunStore

BENCH_CONFIG, BENCH_RESULT = "config.json", "result.json"


def record_failure(store: RunStore, run_id: int, exc: BaseException) -> None:
    """Marks the run failed with the error and its traceback (the Runs page shows both)."""
    tb = traceback.format_exc()
    try:
        store.update_run(run_id, status="failed", error=f"{exc}\n\n{tb}")
        store.add_event(run_id, "failed", str(exc) or type(exc).__name__)
    except Exception:
        traceback.print_exc()


def read_commands(stream: IO[str], stop: threading.Event, pause: threading.Event,
                  orphaned: threading.Event) -> None:
    """Turns the parent's lines into the search's stop and pause events, until end of input."""
    for line in stream:
        word = line.strip()
        if word == "stop":
            stop.set()
            pause.clear()
        elif word == "pause":
            pause.set()
        elif word == "resume":
            pause.clear()
    orphaned.set()
    stop.set()
    pause.clear()


def parse_job(line: str) -> tuple[str, ...]:
    """A spare's first line as a job: ("run", ID, "resume"?), ("evaluate", ID) or ("bench", DIR)."""
    parts = line.split()
    if len(parts) in (2, 3) and parts[0] == "run" and parts[1].isdigit() and \
            parts[2:] in ([], ["resume"]):
        return tuple(parts)
    if len(parts) == 2 and parts[0] == "evaluate" and parts[1].isdigit():
        return tuple(parts)
    if parts[:1] == ["bench"] and line.strip() != "bench":
        return ("bench", line.strip()[len("bench"):].strip())  # a folder may hold spaces
    raise SystemExit(f"expected 'run ID [resume]', 'evaluate ID' or 'bench DIR' on stdin, "
                     f"got {line.strip()!r}")


def _search(store: RunStore, run_id: int, resume: bool, stop: threading.Event,
            pause: threading.Event, orphaned: threading.Event) -> int:
    from core.engine.device import configure_threads
    from core.engine.search import Search

    run = store.get_run(run_id)
    if run is None:
        raise SystemExit(f"--run: no run {run_id} in {store.path}")
    try:
        config = SearchConfig.from_dict(run.config)
        configure_threads(config.threads)
        result = Search(config, store, run_id, resume=resume).run(stop, pause)
    except Exception as exc:
        record_failure(store, run_id, exc)
        return 1
    if result.status == "stopped" and orphaned.is_set():
        store.update_run(run_id, status="interrupted")
        store.add_event(run_id, "interrupted", "the app that started this search went away; "
                        "resume it from its last checkpoint", step=max(0, result.iterations - 1))
    return 0


def _evaluation(store: RunStore, eval_id: int, stop: threading.Event,
                orphaned: threading.Event) -> int:
    """Runs a queued evaluation row; its status, pid, result or error go to the row."""
    from core.runs.evaluation import run_evaluation

    row = store.get_evaluation(eval_id)
    if row is None:
        raise SystemExit(f"--evaluation: no evaluation {eval_id} in {store.path}")
    try:
        run_evaluation(store, eval_id, should_stop=stop.is_set)
    except InterruptedError:
        if orphaned.is_set():
            store.finish_evaluation(eval_id, status="interrupted",
                                    error="the app that started this evaluation went away")
        return 0
    except Exception as exc:
        tb = traceback.format_exc()
        message = str(exc) or type(exc).__name__
        try:  # run_evaluation stored the message; add the traceback below it
            store.finish_evaluation(eval_id, status="failed", error=f"{message}\n\n{tb}")
            store.add_event(row["run_id"], "warning", f"evaluation #{eval_id} failed: {message}")
        except Exception:
            traceback.print_exc()
        return 1
    return 0


def _bench(folder: str) -> int:
    """Times a few iterations of DIR/config.json; writes {"result": ...} or {"error": ...}."""
    from core.runs.bench import estimate

    out: dict
    try:
        with open(os.path.join(folder, BENCH_CONFIG)) as f:
            config = SearchConfig.from_dict(json.load(f))
        out = {"result": {**estimate(config), "pid": os.getpid()}}
        code = 0
    except Exception as exc:
        traceback.print_exc()
        out = {"error": str(exc) or type(exc).__name__, "pid": os.getpid()}
        code = 1
    tmp = os.path.join(folder, BENCH_RESULT + ".tmp")
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, os.path.join(folder, BENCH_RESULT))
    return code


def run_job(db: str, job: tuple[str, ...] | None, commands: IO[str]) -> int:
    """Runs ``job`` (see parse_job); None: import first, then read the job from ``commands``."""
    import torch._dynamo  # noqa: F401  (the first torch optimizer imports it: ~1.7 s)

    import core.runs.recorder  # noqa: F401  (the rest of what a search imports, for a spare)

    if job is None:
        line = commands.readline()
        if not line:
            return 0  # a spare that was not needed
        job = parse_job(line)
    if job[0] == "bench":
        return _bench(job[1])
    store = RunStore(db)
    stop, pause, orphaned = threading.Event(), threading.Event(), threading.Event()
    threading.Thread(target=read_commands, args=(commands, stop, pause, orphaned), daemon=True,
                     name="commands").start()
    if job[0] == "evaluate":
        return _evaluation(store, int(job[1]), stop, orphaned)
    return _search(store, int(job[1]), len(job) == 3, stop, pause, orphaned)


def main(argv: list[str] | None = None) -> int:
    import signal
    import sys

    ap = argparse.ArgumentParser(prog="python -m core.runs.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the run store (SQLite file)")
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--run", type=int, help="id of a stored run; without a job, wait for "
                      "'run ID [resume]', 'evaluate ID' or 'bench DIR' on stdin")
    what.add_argument("--evaluation", type=int, help="id of a queued evaluation row")
    what.add_argument("--bench", metavar="DIR", help="estimate: DIR/config.json in, DIR/result.json out")
    ap.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    args = ap.parse_args(argv)
    # Ctrl+C in the app's terminal reaches the whole process group; the parent decides when
    # its jobs stop (it sends "stop" at exit), so that they end cleanly with a status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.run is not None:
        job: tuple[str, ...] | None = ("run", str(args.run)) + (("resume",) if args.resume else ())
    elif args.evaluation is not None:
        job = ("evaluate", str(args.evaluation))
    elif args.bench is not None:
        job = ("bench", args.bench)
    else:
        job = None
    return run_job(args.db, job, sys.stdin)


if __name__ == "__main__":
    raise SystemExit(main())
