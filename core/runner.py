"""RunManager: searches in background threads, with stop, pause, resume and crash capture.

One manager per process (the app keeps it in ``st.cache_resource``). Each run is a daemon
thread with a stop event and a pause event; an exception marks the run failed with its
traceback and leaves the other runs going. Runs queue when more than ``max_concurrent`` are
asked for.
"""
from __future__ import annotations

import atexit
import threading
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from core.config import SearchConfig
from core.device import configure_threads
from core.store import RunStore


@dataclass
class _Handle:
    run_id: int
    config: SearchConfig
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    resume: bool = False


class RunManager:
    def __init__(self, store: RunStore, max_concurrent: int = 2):
        self.store = store
        self.max_concurrent = max(1, int(max_concurrent))
        self._lock = threading.RLock()
        self._handles: dict[int, _Handle] = {}
        self._queue: deque[int] = deque()
        self._closed = False
        self._stop_hooks: list = []
        store.mark_interrupted()
        atexit.register(self.shutdown)

    # ---- starting ----------------------------------------------------------------------------
    def start(self, config: SearchConfig, name: str | None = None, group: str | None = None) -> int:
        """Stores the run and starts it (or queues it); returns its id at once."""
        config.validate()
        run_id = self.store.create_run(config, name=name, group=group, status="queued")
        self._submit(_Handle(run_id, config))
        return run_id

    def resume(self, run_id: int) -> None:
        """Continues a paused run, or restarts an interrupted/stopped one from its checkpoint."""
        with self._lock:
            h = self._handles.get(run_id)
            if h is not None and h.thread is not None and h.thread.is_alive():
                h.pause.clear()
                return
        run = self.store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id}")
        if run.status not in ("interrupted", "stopped", "failed", "paused"):
            raise ValueError(f"run {run_id} is {run.status}; only interrupted, stopped, failed or "
                             "paused runs can be resumed")
        self.store.update_run(run_id, status="queued", error=None)
        self._submit(_Handle(run_id, SearchConfig.from_dict(run.config), resume=True))

    def _submit(self, h: _Handle) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run manager is shut down")
            self._handles[h.run_id] = h
            self._queue.append(h.run_id)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            while self._queue and self._running_count() < self.max_concurrent:
                h = self._handles[self._queue.popleft()]
                if h.stop.is_set():
                    self.store.update_run(h.run_id, status="stopped")
                    continue
                h.thread = threading.Thread(target=self._run, args=(h,), daemon=True,
                                            name=f"search-{h.run_id}")
                h.thread.start()

    def _running_count(self) -> int:
        return sum(1 for h in self._handles.values() if h.thread is not None and h.thread.is_alive())

    def _run(self, h: _Handle) -> None:
        from core.search import Search  # torch-heavy; imported in the worker

        try:
            configure_threads(h.config.threads)
            Search(h.config, self.store, h.run_id, resume=h.resume).run(h.stop, h.pause)
        except Exception as exc:
            tb = traceback.format_exc()
            try:
                self.store.update_run(h.run_id, status="failed", error=f"{exc}\n\n{tb}")
                self.store.add_event(h.run_id, "failed", str(exc) or type(exc).__name__)
            except Exception:
                traceback.print_exc()
        finally:
            threading.Thread(target=self._pump, daemon=True).start()

    # ---- control -------------------------------------------------------------------------------
    def stop(self, run_id: int) -> None:
        with self._lock:
            h = self._handles.get(run_id)
            if h is None:
                return
            h.stop.set()
            h.pause.clear()
            if run_id in self._queue:
                self._queue.remove(run_id)
                self.store.update_run(run_id, status="stopped")

    def pause(self, run_id: int) -> None:
        with self._lock:
            h = self._handles.get(run_id)
            if h is not None and h.thread is not None and h.thread.is_alive():
                h.pause.set()

    def is_live(self, run_id: int) -> bool:
        with self._lock:
            h = self._handles.get(run_id)
            return bool(h and (run_id in self._queue or (h.thread is not None and h.thread.is_alive())))

    def live_runs(self) -> list[int]:
        with self._lock:
            return [rid for rid in self._handles if self.is_live(rid)]

    def list(self) -> list[Any]:
        return self.store.list_runs()

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Waits for a run's thread (queued runs: until started and done). True if it ended."""
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                h = self._handles.get(run_id)
                t = h.thread if h else None
            if h is None or (t is not None and not t.is_alive() and run_id not in self._queue):
                return True
            if t is not None:
                t.join(0.1)
            else:
                time.sleep(0.05)
            if deadline is not None and time.monotonic() > deadline:
                return False

    def register_stop_hook(self, hook) -> None:
        """Called at shutdown (e.g. a study's evaluation thread stops with the runs)."""
        with self._lock:
            self._stop_hooks.append(hook)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops every run and joins the threads (an interpreter exit mid-step would abort)."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            handles = list(self._handles.values())
            hooks = list(self._stop_hooks)
        for rid in queued:
            self.store.update_run(rid, status="stopped")
        for hook in hooks:
            hook()
        for h in handles:
            h.stop.set()
            h.pause.clear()
        for h in handles:
            if h.thread is not None:
                h.thread.join(timeout)
