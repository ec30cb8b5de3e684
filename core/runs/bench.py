"""``python -m core bench``: iterations/s, images/s and peak memory of search iterations.

Times ``Search.iteration`` after a warm-up, without a store. ``estimate`` is the Launch page's
run-time figure (the app runs it in a worker process through ``RunManager.estimate``).
``compare_plain`` times the plain reference path (``fast=False``) in the same process, its
iterations interleaved with the fast path's in short blocks, and reports the ratio of their
median block times: a shared machine's speed drifts by 10-25 % over a minute, and one block of
each path after the other would put that drift into the ratio.
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import torch

from core.engine.config import SearchConfig


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Timed:
    """One search, set up and warmed up, timed a block of iterations at a time."""

    def __init__(self, config: SearchConfig, warmup: int):
        from core.engine.search import Search
        self.config = config
        base = self._allocated_before()
        self.search = s = Search(config)
        s.setup()
        for _ in range(warmup):
            s.iteration(0)
        self._sync()
        self.arch0 = s.arch_steps
        self.blocks: list[float] = []  # seconds per iteration, each block
        self.iters = 0
        self.seconds = 0.0
        # GPU memory: this search's own, though another search may share the device (compare):
        # what it keeps between iterations, and (``block``) its peak in the timed iterations, not
        # the warm-up's (cuDNN's benchmark trials), above what the others keep.
        self.peak_gpu = 0
        self.resident_gpu = torch.cuda.memory_allocated(s.device) - base if s.device.type == "cuda" else 0

    def _allocated_before(self) -> int:
        """GPU memory allocated before this search existed."""
        from core.engine.device import pick_device
        dev = pick_device(self.config.device)
        if dev.type != "cuda":
            return 0
        return torch.cuda.memory_allocated(dev)

    def _sync(self) -> None:
        if self.search.device.type == "cuda":
            torch.cuda.synchronize(self.search.device)

    def block(self, iters: int) -> None:
        dev = self.search.device
        if dev.type == "cuda":
            others = torch.cuda.memory_allocated(dev) - self.resident_gpu
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        for _ in range(iters):
            self.search.iteration(0)
        self._sync()
        dt = time.perf_counter() - t0
        if dev.type == "cuda":
            self.peak_gpu = max(self.peak_gpu, torch.cuda.max_memory_allocated(dev) - others)
        self.blocks.append(dt / iters)
        self.iters += iters
        self.seconds += dt

    def result(self) -> dict[str, Any]:
        s, dt, n = self.search, self.seconds, self.iters
        out = {"iters_per_s": n / dt, "images_per_s": n * self.config.batch_size / dt,
               "ms_per_iter": 1000 * dt / n, "arch_steps": s.arch_steps - self.arch0, "iters": n,
               "peak_rss_mb": _peak_rss_mb(), "device": str(s.device),
               "threads": torch.get_num_threads(), "total_iterations": s.total_iterations,
               "fast": self.config.fast}
        if s.device.type == "cuda":
            out["peak_gpu_mb"] = self.peak_gpu / 2**20
        return out


def time_iterations(config: SearchConfig, iters: int, warmup: int) -> dict[str, Any]:
    t = _Timed(config, warmup)
    t.block(iters)
    return t.result()


# Iterations per block when the two paths are interleaved: blocks short enough that the
# machine's drift between a fast and a plain block stays small.
BLOCK_ITERS = 2


def compare(config: SearchConfig, iters: int, warmup: int) -> dict[str, Any]:
    """The fast and the plain path of ``config``, ``iters`` iterations each, in alternating blocks
    of ``BLOCK_ITERS``. ``speedup``: the plain path's median block time over the fast path's;
    ``speedup_range``: the same ratio over each pair of neighbouring blocks, lowest and highest."""
    fast = _Timed(config.replace(fast=True), warmup)
    plain = _Timed(config.replace(fast=False), warmup)
    done = 0
    while done < iters:
        n = min(BLOCK_ITERS, iters - done)
        fast.block(n)
        plain.block(n)
        done += n
    pairs = [p / f for f, p in zip(fast.blocks, plain.blocks)]
    return {"fast": fast.result(), "plain": plain.result(),
            "speedup": statistics.median(plain.blocks) / statistics.median(fast.blocks),
            "speedup_range": [min(pairs), max(pairs)], "blocks": len(pairs)}


def estimate(config: SearchConfig, iters: int = 3, warmup: int = 1) -> dict[str, Any]:
    """The Launch page's run-time estimate: ``iters`` timed iterations (after ``warmup``) times
    the config's iterations. Run in a worker process (``core.runs.worker --bench``), never in the app
    server: it trains, and a server thread doing so would slow every page of every tab."""
    from core.engine.device import configure_threads

    configure_threads(config.threads)
    timing = time_iterations(config, iters=iters, warmup=warmup)
    total = timing["total_iterations"]
    sec = timing["ms_per_iter"] / 1000.0
    return {"config": config.to_json(), "sec_per_iter": sec, "iterations": total,
            "seconds": sec * total, "device": timing["device"]}


def bench(config: SearchConfig, iters: int = 20, warmup: int = 3, compare_plain: bool = False,
          threads: int = 0) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    else:
        from core.engine.device import configure_threads
        configure_threads(config.threads)
    if compare_plain and config.fast:
        return compare(config, iters, warmup)
    return {"fast" if config.fast else "plain": time_iterations(config, iters, warmup)}
