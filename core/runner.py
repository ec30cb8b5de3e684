"""RunManager: each search in a worker process of its own, with a queue, stop, pause, resume
and crash capture.

One manager per process (the app keeps it in ``st.cache_resource``). A run is a
``python -m core.worker`` child that writes to the same SQLite store (WAL lets one writer per
run and the app's readers go at once). DESIGN.md asks for threads; we use processes because a
search thread in the Streamlit server shares the interpreter lock with the page refreshes: the
demo search watched live ran at 0.36x the CLI's speed (README, "Speed"). A child keeps CLI speed,
uses its own torch thread count, and a crash in native code cannot take the app down.

Control goes over the child's stdin (``core.worker``); a child that dies without writing its
status is marked failed with the end of its stderr. Runs queue when more than
``max_concurrent`` are asked for. With ``spare=True`` (the app) one worker is kept started with
torch imported, waiting for a run: a search launched from the browser starts ~3 s sooner. A
spare is started when the manager is made, when the last live run ends, and when a page asks
for one (``prepare_spare``, the Launch page) -- not when one is handed to a run: its imports took
6.5 s of CPU here, which a 2-core machine would otherwise take from the search just started and
the browser drawing its first charts.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import SearchConfig
from core.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
_STDERR_KEEP = 40  # lines of a worker's stderr kept for the error of a crashed run
ACTIVE = ("queued", "running", "paused")


@dataclass
class _Handle:
    run_id: int
    resume: bool = False
    proc: subprocess.Popen | None = None
    stopping: bool = False
    stderr: deque = field(default_factory=lambda: deque(maxlen=_STDERR_KEEP))
    done: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> bool:
        return self.proc is not None and not self.done.is_set()


class RunManager:
    def __init__(self, store: RunStore, max_concurrent: int = 2, spare: bool = False):
        self.store = store
        self.max_concurrent = max(1, int(max_concurrent))
        self._lock = threading.RLock()
        self._handles: dict[int, _Handle] = {}
        self._queue: deque[int] = deque()
        self._closed = False
        self._stop_hooks: list = []
        self._keep_spare = spare
        self._spare: subprocess.Popen | None = None
        store.mark_interrupted()
        atexit.register(self.shutdown)
        if spare:
            self._refill_spare()

    # ---- starting ----------------------------------------------------------------------------
    def start(self, config: SearchConfig, name: str | None = None, group: str | None = None) -> int:
        """Stores the run and starts it (or queues it); returns its id at once."""
        config.validate()
        run_id = self.store.create_run(config, name=name, group=group, status="queued")
        self._submit(_Handle(run_id))
        return run_id

    def resume(self, run_id: int) -> None:
        """Continues a paused run, or restarts an interrupted/stopped one from its checkpoint."""
        with self._lock:
            h = self._handles.get(run_id)
            if h is not None and h.alive() and not h.stopping:
                self._send(h, "resume")
                return
        run = self.store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        if run.status not in ("interrupted", "stopped", "failed", "paused"):
            raise ValueError(f"run {run_id} is {run.status}; only interrupted, stopped, failed or "
                             "paused runs can be resumed")
        SearchConfig.from_dict(run.config).validate()  # e.g. its data folder is gone: say so here
        self.store.update_run(run_id, status="queued", error=None)
        self._submit(_Handle(run_id, resume=True))

    def _submit(self, h: _Handle) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run manager is shut down")
            self._handles[h.run_id] = h
            self._queue.append(h.run_id)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            while (not self._closed and self._queue
                   and self._running_count() < self.max_concurrent):
                h = self._handles[self._queue.popleft()]
                try:
                    h.proc = self._spawn(h)
                except OSError as exc:
                    self.store.update_run(h.run_id, status="failed",
                                          error=f"could not start the search process: {exc}")
                    h.done.set()
                    continue
                threading.Thread(target=self._watch, args=(h,), daemon=True,
                                 name=f"watch-run-{h.run_id}").start()

    def _spawn(self, h: _Handle) -> subprocess.Popen:
        spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None:
            try:
                spare.stdin.write(f"run {h.run_id}{' resume' if h.resume else ''}\n")
                spare.stdin.flush()
            except OSError:
                spare = None
            else:
                return spare
        return self._popen(["--run", str(h.run_id)] + (["--resume"] if h.resume else []))

    def prepare_spare(self) -> None:
        """Starts a spare worker if none waits (a page where a launch is likely asks for it)."""
        with self._lock:
            self._refill_spare()

    def _refill_spare(self) -> None:
        if self._keep_spare and not self._closed and self._spare is None:
            try:
                self._spare = self._popen([])
            except OSError:  # no spare: runs start their own process
                self._spare = None

    def _popen(self, args: list[str]) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "core.worker", "--db", os.path.abspath(self.store.path)] + args
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, bufsize=1, env=env,
            # its own process group: Ctrl+C on the server reaches the server, which stops it
            start_new_session=(os.name == "posix"))

    def _running_count(self) -> int:
        return sum(1 for h in self._handles.values() if h.alive())

    def _watch(self, h: _Handle) -> None:
        """Keeps the end of the child's stderr (passing it on), then settles a silent death."""
        assert h.proc is not None and h.proc.stderr is not None
        for line in h.proc.stderr:
            h.stderr.append(line)
            sys.stderr.write(line)
        code = h.proc.wait()
        try:
            run = self.store.get_run(h.run_id)
            if run is not None and run.status in ACTIVE:
                if h.stopping:
                    self.store.update_run(h.run_id, status="stopped" if not self._closed else "interrupted")
                else:
                    tail = "".join(h.stderr).strip()
                    self.store.update_run(h.run_id, status="failed", error=(
                        f"the search process exited with code {code} without finishing"
                        + (f"\n\n{tail}" if tail else "")))
                    self.store.add_event(h.run_id, "failed", f"search process exited with code {code}")
        finally:
            h.done.set()
            self._pump()
            with self._lock:
                if not self._running_count() and not self._queue:
                    self._refill_spare()

    @staticmethod
    def _close_spare(spare: subprocess.Popen) -> None:
        """End of input before a run: the spare exits without touching the store."""
        try:
            spare.stdin.close()
            spare.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            spare.kill()

    # ---- control -------------------------------------------------------------------------------
    @staticmethod
    def _send(h: _Handle, word: str) -> None:
        try:
            assert h.proc is not None and h.proc.stdin is not None
            h.proc.stdin.write(word + "\n")
            h.proc.stdin.flush()
        except (OSError, ValueError):  # the child has just ended
            pass

    def stop(self, run_id: int) -> None:
        with self._lock:
            h = self._handles.get(run_id)
            if h is None:
                return
            h.stopping = True
            if run_id in self._queue:
                self._queue.remove(run_id)
                h.done.set()
                self.store.update_run(run_id, status="stopped")
            elif h.alive():
                self._send(h, "stop")

    def pause(self, run_id: int) -> None:
        with self._lock:
            h = self._handles.get(run_id)
            if h is not None and h.alive():
                self._send(h, "pause")

    def is_live(self, run_id: int) -> bool:
        with self._lock:
            h = self._handles.get(run_id)
            return bool(h and (run_id in self._queue or h.alive()))

    def live_runs(self) -> list[int]:
        with self._lock:
            return [rid for rid in self._handles if self.is_live(rid)]

    def list(self) -> list[Any]:
        return self.store.list_runs()

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Waits until the run has ended (a queued one: started and ended). True if it did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                h = self._handles.get(run_id)
            if h is None or h.done.wait(0.1):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False

    def register_stop_hook(self, hook) -> None:
        """Called at shutdown (e.g. a study's evaluation thread stops with the runs)."""
        with self._lock:
            self._stop_hooks.append(hook)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops every run and waits for the processes; a child still going after ``timeout``
        stops by itself when this process's end closes its stdin."""
        with self._lock:
            if self._closed and not self._handles:
                return
            self._closed = True
            spare, self._spare = self._spare, None
            queued = list(self._queue)
            self._queue.clear()
            handles = list(self._handles.values())
            hooks = list(self._stop_hooks)
        if spare is not None:
            self._close_spare(spare)
        for rid in queued:
            self.store.update_run(rid, status="stopped")
            self._handles[rid].done.set()
        for hook in hooks:
            hook()
        for h in handles:
            if h.alive():
                h.stopping = True
                self._send(h, "stop")
        deadline = time.monotonic() + timeout
        for h in handles:
            if h.proc is not None:
                try:
                    h.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    continue
                h.done.wait(max(0.0, deadline - time.monotonic()))
