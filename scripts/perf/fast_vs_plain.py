"""The fast path against the plain one, ``python -m core bench --compare`` run several times,
thread counts interleaved; one JSON line per run (its ratio: the median over the run's
interleaved blocks; ``block_pairs``: the lowest and highest block pair), then the median ratio
and the spread per thread count.

    python scripts/perf/fast_vs_plain.py [--rounds 3] [--threads 1,2] [--iters 10] \
        [-- BENCH ARGS ...]

BENCH ARGS default to the demo configuration of issue 25: shapes at 16x16, an architecture step
every iteration (``--dataset shapes --set image_size=16 --set schedule=fixed --set period=1``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["--dataset", "shapes", "--set", "image_size=16", "--set", "schedule=fixed",
        "--set", "period=1"]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    bench_args = DEMO
    if "--" in argv:
        i = argv.index("--")
        argv, bench_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    ratios: dict[int, list[float]] = {}
    for r in range(args.rounds):
        for t in (int(x) for x in args.threads.split(",")):
            cmd = [sys.executable, "-m", "core", "bench", "--compare", "--json", "--threads", str(t),
                   "--iters", str(args.iters), "--warmup", str(args.warmup), *bench_args]
            out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            ratios.setdefault(t, []).append(res["speedup"])
            print(json.dumps({"round": r, "threads": t, "fast_ms": round(res["fast"]["ms_per_iter"], 1),
                              "plain_ms": round(res["plain"]["ms_per_iter"], 1),
                              "speedup": round(res["speedup"], 3),
                              "block_pairs": [round(x, 3) for x in res["speedup_range"]],
                              "args": bench_args}), flush=True)
    for t, rs in ratios.items():
        print(f"# {t} thread(s): fast/plain median {statistics.median(rs):.2f}x "
              f"(range {min(rs):.2f}-{max(rs):.2f}, {len(rs)} runs)", flush=True)


if __name__ == "__main__":
    main()
