"""The Recorder callback: the one path from a running search into the run store.

Rows are buffered and written every ``log_every`` iterations (or after a second), with all
their device scalars read back in one transfer; events, alphas and genotypes go with them, and
before every checkpoint. While the search runs, a thread stamps the run every
HEARTBEAT_SECONDS (``RunStore.touch``): readers on other hosts judge liveness by it.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import torch

from core.engine.search import Callback, NonFiniteError, Search, SearchResult

# How often the run's process stamps it alive (core.runs.store.STALE_SECONDS is many beats).
HEARTBEAT_SECONDS = 5.0

_MAX_FLUSH_SECONDS = 1.0
# How often the run's summary gets where its time went (the Monitor's header shows it).
TIME_SPLIT_SECONDS = 5.0


class Recorder(Callback):
    def __init__(self, store: Any, run_id: int, log_every: int = 10):  # a RunStore
        self.store = store
        self.run_id = run_id
        self.log_every = max(1, int(log_every))
        self.rows: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._beating = threading.Event()
        self.record_seconds = 0.0
        self._last_split = time.monotonic()

    # ---- hooks -----------------------------------------------------------------------------
    def on_search_start(self, search: Search) -> None:
        self.store.mark_started(self.run_id, str(search.device))
        # a resumed run's recorded time goes on from its checkpoint's
        extra = {"started": time.time() - search.elapsed_before} if search.elapsed_before else {}
        self.store.update_run(self.run_id, total_iterations=search.total_iterations, **extra)
        n = torch.get_num_threads()
        on = f"cpu ({n} thread{'s' * (n != 1)})" if search.device.type == "cpu" else str(search.device)
        self.store.add_event(self.run_id, "started", f"search started on {on}, "
                             f"{search.total_iterations} iterations", step=search.step)
        self.flush(search)
        self._beating.clear()
        threading.Thread(target=self._heartbeat, daemon=True, name=f"heartbeat-{self.run_id}").start()

    def _heartbeat(self) -> None:
        while not self._beating.wait(HEARTBEAT_SECONDS):
            try:
                self.store.touch(self.run_id)
            except Exception:  # a busy store: the next beat, or the next rows, say it lives
                pass

    def on_checkpoint(self, search: Search) -> None:
        self.flush(search)

    def on_step_end(self, search: Search, row: dict[str, Any]) -> None:
        row["time"] = search.elapsed()
        self.rows.append(row)
        if len(self.rows) >= self.log_every or time.monotonic() - self._last_flush > _MAX_FLUSH_SECONDS:
            self.flush(search)

    def on_epoch_end(self, search: Search, epoch: int, val_acc: float, val_loss: float) -> None:
        self.flush(search)
        self.store.add_event(self.run_id, "epoch_end", f"epoch {epoch + 1}: validation accuracy "
                             f"{val_acc:.3f}, loss {val_loss:.3f}", step=search.step - 1,
                             data={"epoch": epoch + 1, "val_acc": val_acc, "val_loss": val_loss,
                                   "train_acc": search.last_train_acc})
        run = self.store.get_run(self.run_id)
        best = max(val_acc, (run.summary.get("best_val_acc") or 0.0) if run else 0.0)
        self.store.merge_summary(self.run_id, val_acc=val_acc, best_val_acc=best,
                                 train_acc=search.last_train_acc, epochs_done=epoch + 1)

    def on_pause(self, search: Search, paused: bool) -> None:
        self.flush(search)
        self.store.update_run(self.run_id, status="paused" if paused else "running")
        self.store.add_event(self.run_id, "paused" if paused else "resumed",
                             "paused" if paused else "resumed after pause", step=search.step)

    def on_search_error(self, search: Search, exc: BaseException) -> None:
        self._beating.set()
        try:
            self.flush(search, check=False)
        except Exception:  # the original error matters more than a failed last write
            pass

    def on_search_end(self, search: Search, result: SearchResult) -> None:
        self._beating.set()
        self.flush(search)
        summary = result.to_dict()
        summary.pop("run_id")
        self.store.merge_summary(self.run_id, **summary, time_split=self.time_split(search))
        self.store.update_run(self.run_id, status=result.status, finished=time.time(),
                              genotype=str(result.genotype), size=result.size)
        self.store.add_event(self.run_id, result.status, f"search {result.status} after "
                             f"{result.iterations} iterations ({result.arch_steps} architecture steps)",
                             step=max(0, result.iterations - 1))

    # ---- writing ----------------------------------------------------------------------------
    def time_split(self, search: Search) -> dict[str, float]:
        """Seconds of this attempt in weight steps, architecture steps and recording, and its
        elapsed seconds: the rest went to validation, checkpoints and waiting."""
        split = getattr(search, "time_split", {})
        return {"weight_s": round(split.get("weight", 0.0), 3),
                "architecture_s": round(split.get("architecture", 0.0), 3),
                "record_s": round(self.record_seconds, 3),
                "elapsed_s": round(search.elapsed() - search.elapsed_before, 3)}

    def flush(self, search: Search, check: bool = True) -> None:
        t0 = time.perf_counter()
        try:
            self._write(search, check)
        finally:
            self.record_seconds += time.perf_counter() - t0
        if time.monotonic() - self._last_split > TIME_SPLIT_SECONDS:
            self._last_split = time.monotonic()
            self.store.merge_summary(self.run_id, time_split=self.time_split(search))

    def _write(self, search: Search, check: bool) -> None:
        rows, self.rows = self.rows, []
        self._last_flush = time.monotonic()
        _to_host(rows)
        if check:
            for r in rows:
                for key in ("train_loss", "val_loss"):
                    v = r.get(key)
                    if v is not None and not (v == v and abs(v) != float("inf")):
                        self.store.add_steps(self.run_id, rows)
                        raise NonFiniteError(
                            f"{key} became {v} at iteration {r['step']}; the run was stopped. "
                            "Lower w_lr or alpha_lr, or raise grad_clip's strictness (smaller value)")
        self.store.add_steps(self.run_id, rows)
        events = []
        for ev in search.take_events():
            if ev["kind"] == "alphas":
                self.store.add_alphas(self.run_id, ev["step"], ev["_weights"])
            elif ev["kind"] == "genotype":
                g = ev["_genotype"]
                self.store.add_genotype(self.run_id, ev["step"], g.to_json(), ev["_size"])
                self.store.update_run(self.run_id, genotype=str(g), size=ev["_size"])
            else:
                events.append(ev)
        self.store.add_events(self.run_id, events)


def _to_host(rows: list[dict[str, Any]]) -> None:
    """Replaces every tensor in the rows (and their ``terms``) by a float, in one transfer."""
    slots, tensors = [], []
    for r in rows:
        for d in (r, r.get("terms") or {}):
            for k, v in d.items():
                if isinstance(v, torch.Tensor):
                    slots.append((d, k))
                    tensors.append(v.detach().reshape(()).float())
    if tensors:
        values = torch.stack(tensors).cpu().tolist()
        for (d, k), v in zip(slots, values):
            d[k] = v
