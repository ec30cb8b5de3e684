"""Checks issue 20's demo targets on a study's runs: time, architecture steps, pruning,
separation and settling, per method (the median over its seeds).

Time is judged on a run's CPU seconds where the store has them (one search per process, one
torch thread: a run alone on the machine takes about that long), since a study runs two
searches at once beside the app and its wall times say more about the machine than the run.

    python scripts/demo_targets.py --db runs/study-demo5x3.sqlite --group demo-5x3
    python -m core study ... --json > study.json && python scripts/demo_targets.py --json study.json

A target that does not apply to a method (pruning for softmax, settling for darts) reads "-".
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_SECONDS = 180.0
MIN_ARCH_STEPS = 30          # informed methods
MIN_PRUNED_PCT = 20.0        # prime-crb, prime-admm
MIN_SEPARATED_SHARE = 0.5    # softmax methods: top op >= 2x uniform on half the edges
SETTLED_BEFORE = 0.75        # last genotype change within the first three quarters

INFORMED = ("darts-prime", "prime-crb", "prime-admm")
PRUNING = ("prime-crb", "prime-admm")
SOFTMAX = ("darts", "darts-prime")
SETTLING = ("darts-prime", "prime-crb", "prime-admm")


def _median(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def check_targets(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: the medians over its seeds and, per target, True/False/None (None:
    the target does not apply to that method)."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        med = {k: _median(mine, k) for k in ("seconds", "cpu_seconds", "arch_steps", "pruned_pct",
                                            "separated_edges", "separation", "iterations")}
        settle = [r["last_genotype_change"] / r["iterations"] for r in mine
                  if r.get("last_genotype_change") is not None and r.get("iterations")]
        med["settled_at"] = statistics.median(settle) if settle else None

        def ok(applies: bool, value: float | None, test) -> bool | None:
            return None if not applies or value is None else bool(test(value))

        rows.append({
            "method": method, "seeds": len(mine), **med,
            "time_ok": ok(True, med["cpu_seconds"] if med["cpu_seconds"] is not None
                          else med["seconds"], lambda v: v <= MAX_SECONDS),
            "arch_steps_ok": ok(method in INFORMED, med["arch_steps"], lambda v: v >= MIN_ARCH_STEPS),
            "pruned_ok": ok(method in PRUNING, med["pruned_pct"], lambda v: v >= MIN_PRUNED_PCT),
            "separated_ok": ok(method in SOFTMAX, med["separated_edges"],
                               lambda v: v >= MIN_SEPARATED_SHARE),
            "settled_ok": ok(method in SETTLING, med["settled_at"], lambda v: v < SETTLED_BEFORE),
        })
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", help="run store holding the study")
    ap.add_argument("--group", help="the study's name (its runs' group)")
    ap.add_argument("--json", help="a `python -m core study --json` output file instead")
    args = ap.parse_args(argv)
    if args.json:
        runs = json.loads(Path(args.json).read_text())["runs"]
    elif args.db and args.group:
        from core.runs.store import RunStore
        from core.viz.compare import study_summary
        store = RunStore(args.db)
        runs = study_summary(store, [r.id for r in store.list_runs(group=args.group)])["runs"]
    else:
        ap.error("give --json FILE, or --db and --group")
    rows = check_targets(runs)
    cols = ["method", "seeds", "seconds", "cpu_seconds", "arch_steps", "pruned_pct", "separated_edges",
            "separation", "settled_at", "time_ok", "arch_steps_ok", "pruned_ok", "separated_ok",
            "settled_ok"]
    print(" ".join(f"{c:>15}" for c in cols))
    for r in rows:
        print(" ".join(f"{_fmt(r[c]):>15}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
