"""The prepared GPU check: one command that, on a machine with CUDA, times the search on the demo
and paper configurations (fast and plain paths, float32 and bfloat16 autocast), runs a short paper-size search on generated
32x32 data (no CIFAR files needed), and prints one JSON object: iterations/s, images/s, peak GPU
memory, and the projected hours of a full 50-epoch CIFAR-10 search.

    python scripts/gpu_check.py                  # cuda; meant to finish within 8 minutes (never run on a GPU yet)
    python scripts/gpu_check.py --device cuda:1
    python scripts/gpu_check.py --quick --device cpu   # the same steps on tiny sizes (tests)

Without CUDA it prints {"skipped": "..."} and says why on stderr, exit status 0. The bf16 rows
run the same benches with the config's ``precision=bf16``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CIFAR10_TRAIN_IMAGES = 50_000


def _configs(quick: bool, device: str) -> dict[str, Any]:
    """The demo and paper search configurations on generated RGB data (shapes), with an
    architecture step every iteration, as the engine-speed figures use."""
    from core.engine.config import make_config

    every = dict(dataset="shapes", schedule="fixed", period=1, device=device)
    if quick:  # tiny sizes: the same steps in seconds on a CPU
        tiny = dict(every, image_size=8, C=4, layers=3, batch_size=8)
        return {"demo": make_config("tiny", "darts-prime", **tiny),
                "paper": make_config("tiny", "darts-prime", **{**tiny, "image_size": 16})}
    return {"demo": make_config("demo", "darts-prime", image_size=16, **every),
            "paper": make_config("paper", "darts-prime", **every)}


def projected_hours(config: Any, iters_per_s: float) -> float:
    """Hours of a full search with this config's budget on CIFAR-10 (50,000 training images split
    between weight and architecture data as the config says) at ``iters_per_s``."""
    from core.engine.config import make_config
    from core.engine.schedules import train_fraction

    paper = make_config("paper", config.method)
    per_epoch = math.ceil(CIFAR10_TRAIN_IMAGES * train_fraction(paper.split, paper.period) / paper.batch_size)
    return paper.epochs * per_epoch / iters_per_s / 3600.0


def short_search(config: Any, iterations: int) -> dict[str, Any]:
    """A whole search loop (weight and architecture steps, the epoch-end validation) of one
    epoch of ``iterations``, without a store; its rate and peak memory."""
    import torch

    from core.engine.search import Search

    cfg = config.replace(epochs=1, iters_per_epoch=iterations, schedule="informed", period=10)
    s = Search(cfg)
    s.setup()
    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    t0 = time.perf_counter()
    result = s.run()
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    dt = time.perf_counter() - t0
    out = {"status": result.status, "iterations": result.iterations, "arch_steps": result.arch_steps,
           "seconds": dt, "iters_per_s": result.iterations / dt,
           "images_per_s": result.iterations * cfg.batch_size / dt, "device": str(s.device)}
    if s.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(s.device) / 2**20
    out["projected_hours_50_epochs_cifar10"] = projected_hours(cfg, out["iters_per_s"])
    return out


def gpu_check(device: str = "cuda", quick: bool = False, iters: int = 20, warmup: int = 3,
              search_iters: int = 60) -> dict[str, Any]:
    import torch

    from core.engine.device import pick_device
    from core.runs.bench import bench

    try:
        dev = pick_device(device)
    except RuntimeError as exc:
        return {"skipped": str(exc).removeprefix("device: ")}
    t0 = time.perf_counter()
    out: dict[str, Any] = {"device": str(dev), "torch": torch.__version__}
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
    for name, cfg in _configs(quick, str(dev)).items():
        for precision, suffix in (("fp32", ""), ("bf16", "_bf16")):
            c = cfg.replace(precision=precision)
            r = bench(c, iters=iters, warmup=warmup, compare_plain=True)
            out[f"bench_{name}{suffix}"] = {
                "config": {k: getattr(c, k) for k in ("dataset", "image_size", "C", "layers",
                                                      "batch_size", "precision")},
                "fast": r["fast"], "plain": r["plain"], "speedup": r["speedup"]}
    out["search_paper"] = short_search(_configs(quick, str(dev))["paper"], search_iters)
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N (or cpu with --quick, for tests)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the steps, not the GPU")
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per bench")
    ap.add_argument("--search-iters", type=int, default=60, help="iterations of the short search")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.search_iters < 2:
        print("error: --iters must be >= 1 and --search-iters >= 2", file=sys.stderr)
        return 2
    result = gpu_check(args.device, args.quick, args.iters, search_iters=args.search_iters)
    if "skipped" in result:
        print(f"gpu_check: skipped: {result['skipped']}", file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
