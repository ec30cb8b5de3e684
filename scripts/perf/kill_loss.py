"""The work a kill -9 at a random moment of a search costs (issue 22), and the share of its time
spent writing checkpoints.

    python -m scripts.perf.kill_loss --runs 5 -- --preset demo --method darts-prime --seed 0
    python -m scripts.perf.kill_loss --runs 0 --complete 3 -- --preset demo --set epochs=3

Each of ``--runs`` searches is killed (SIGKILL, by itself: tests/test_faults.py's fault prelude)
at a moment drawn uniformly over ``--seconds``; the iterations and recorded seconds since its
last checkpoint are what a resume redoes. Each of ``--complete`` searches runs to its end; its
summary's ``checkpoint_time`` / ``seconds`` is the checkpoints' share of its run time.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from tests.test_faults import _FAULT

ROOT = Path(__file__).resolve().parents[2]


def killed(search_args: list[str], seconds: float, tmp: str) -> dict:
    db, died = os.path.join(tmp, f"kill_{seconds:.1f}.sqlite"), os.path.join(tmp, "died.json")
    proc = subprocess.run([sys.executable, "-c", _FAULT, json.dumps({"where": "at", "seconds": seconds}),
                           died, "--db", db, "search", "--quiet", *search_args], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != -signal.SIGKILL:
        raise SystemExit(f"the search ended ({proc.returncode}) before {seconds:.1f} s: "
                         f"{proc.stderr[-500:]}")
    with open(died) as f:
        at = json.load(f)
    from core.runs.store import RunStore

    store = RunStore(db)
    path = store.checkpoint_path(store.list_runs()[0].id)
    ck = (torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path)
          else {"step": 0, "elapsed": 0.0})
    return {"at_s": round(at["elapsed"], 2), "at_iteration": at["step"],
            "lost_iterations": at["step"] - int(ck["step"]),
            "lost_s": round(at["elapsed"] - float(ck["elapsed"]), 2)}


def complete(search_args: list[str], tmp: str, i: int) -> dict:
    db = os.path.join(tmp, f"complete_{i}.sqlite")
    out = subprocess.run([sys.executable, "-m", "core", "--db", db, "search", "--json", *search_args],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": r["seconds"], "checkpoints": r["checkpoints"],
            "checkpoint_time": r["checkpoint_time"],
            "share_pct": round(100 * r["checkpoint_time"] / r["seconds"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=100.0, help="kill moments are drawn in [2, this]")
    ap.add_argument("--complete", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("search", nargs=argparse.REMAINDER, help="-- then `python -m core search` arguments")
    args = ap.parse_args()
    search_args = [a for a in args.search if a != "--"]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        kills = [killed(search_args, rng.uniform(2.0, args.seconds), tmp) for _ in range(args.runs)]
        done = [complete(search_args, tmp, i) for i in range(args.complete)]
    for k in kills:
        print(json.dumps(k))
    for d in done:
        print(json.dumps(d))
    if kills:
        print(f"median lost: {statistics.median(k['lost_iterations'] for k in kills)} iterations, "
              f"{statistics.median(k['lost_s'] for k in kills):.2f} s (of {len(kills)} kills)")
    if done:
        print(f"median checkpoint share: {statistics.median(d['share_pct'] for d in done):.3f}% "
              f"(of {len(done)} complete runs)")


if __name__ == "__main__":
    main()
