"""One search in a process of its own: ``python -m core.worker --db PATH --run ID [--resume]``.

The RunManager starts one of these per run. The search reads its config from the stored run
and writes everything back through the Recorder, so the parent only has to start it and, if
asked, stop or pause it. Without ``--run`` the worker imports torch and the engine first (3-4 s
on a 2-core machine) and then waits for a first line ``run ID`` or ``run ID resume``: the app
keeps one such spare ready, so a search it starts begins at once.

Control arrives on stdin, one word per line: ``stop``, ``pause``, ``resume``. The end of stdin
means the parent is gone (closed or killed): the search stops at the next iteration and the run
is stored ``interrupted``, resumable from its last checkpoint.
"""
from __future__ import annotations

import argparse
import threading
import traceback
from typing import IO

from core.config import SearchConfig
from core.store import RunStore


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


def read_assignment(stream: IO[str]) -> tuple[int, bool] | None:
    """A spare's first line, ``run ID [resume]``; None at the end of input (not needed)."""
    line = stream.readline()
    if not line:
        return None
    parts = line.split()
    if len(parts) not in (2, 3) or parts[0] != "run" or not parts[1].isdigit() or \
            parts[2:] not in ([], ["resume"]):
        raise SystemExit(f"expected 'run ID [resume]' on stdin, got {line.strip()!r}")
    return int(parts[1]), len(parts) == 3


def run_worker(db: str, run_id: int | None, resume: bool, commands: IO[str]) -> int:
    import torch._dynamo  # noqa: F401  (the first torch optimizer imports it: ~1.7 s)

    import core.recorder  # noqa: F401  (the rest of what a search imports, for a spare)
    from core.device import configure_threads
    from core.search import Search

    if run_id is None:
        assignment = read_assignment(commands)
        if assignment is None:
            return 0
        run_id, resume = assignment
    store = RunStore(db)
    run = store.get_run(run_id)
    if run is None:
        raise SystemExit(f"--run: no run {run_id} in {db}")
    stop, pause, orphaned = threading.Event(), threading.Event(), threading.Event()
    threading.Thread(target=read_commands, args=(commands, stop, pause, orphaned), daemon=True,
                     name="commands").start()
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


def main(argv: list[str] | None = None) -> int:
    import signal
    import sys

    ap = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="the run store (SQLite file)")
    ap.add_argument("--run", type=int, help="id of a stored run; without it, wait for "
                    "'run ID [resume]' on stdin")
    ap.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    args = ap.parse_args(argv)
    # Ctrl+C in the app's terminal reaches the whole process group; the parent decides when
    # its searches stop (it sends "stop" at exit), so that they end cleanly with a status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return run_worker(args.db, args.run, args.resume, sys.stdin)


if __name__ == "__main__":
    raise SystemExit(main())
