"""``python -m core bench``: iterations/s, images/s and peak memory of search iterations.

Times ``Search.iteration`` after a warm-up, without a store. ``estimate`` is the Launch page's
run-time figure (the app runs it in a worker process through ``RunManager.estimate``). ``compare_plain`` times the plain
reference path (``fast=False``) in the same process, right after, and reports the ratio.
"""
from __future__ import annotations

import resource
import time
from typing import Any

import torch

from core.engine.config import SearchConfig


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_iterations(config: SearchConfig, iters: int, warmup: int) -> dict[str, Any]:
    from core.engine.search import Search
    s = Search(config)
    s.setup()
    for _ in range(warmup):
        s.iteration(0)
    if s.device.type == "cuda":  # the device the search runs on, not the current one
        torch.cuda.synchronize(s.device)
        torch.cuda.reset_peak_memory_stats(s.device)
    arch0 = s.arch_steps
    t0 = time.perf_counter()
    for _ in range(iters):
        s.iteration(0)
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    dt = time.perf_counter() - t0
    out = {"iters_per_s": iters / dt, "images_per_s": iters * config.batch_size / dt,
           "ms_per_iter": 1000 * dt / iters, "arch_steps": s.arch_steps - arch0, "iters": iters,
           "peak_rss_mb": _peak_rss_mb(), "device": str(s.device), "threads": torch.get_num_threads(),
           "total_iterations": s.total_iterations,
           "fast": config.fast}
    if s.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(s.device) / 2**20
    return out


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
    results: dict[str, Any] = {}
    results["fast" if config.fast else "plain"] = time_iterations(config, iters, warmup)
    if compare_plain and config.fast:
        results["plain"] = time_iterations(config.replace(fast=False), iters, warmup)
        results["speedup"] = results["fast"]["iters_per_s"] / results["plain"]["iters_per_s"]
    return results
