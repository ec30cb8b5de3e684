"""The same 2-method x 2-seed study run locally (worker processes) and through a local Ray,
interleaved; prints one JSON line per pair and the ratios (Ray time / local time).

    python scripts/perf/ray_vs_local.py [--pairs 3] [--preset tiny] [--set epochs=1 ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.engine.config import parse_value  # noqa: E402
from core.runs.ray_study import RayOptions, run_ray_study  # noqa: E402
from core.runs.runner import run_study  # noqa: E402
from core.runs.store import RunStore  # noqa: E402
from core.runs.study import StudySpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--methods", default="darts,prime-crb")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    overrides = {k: parse_value(k, v) for k, v in (p.split("=", 1) for p in args.set)}
    methods = args.methods.split(",")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            times = {}
            for where in ("local", "ray"):
                store = RunStore(Path(tmp) / f"{where}-{i}.sqlite")
                spec = StudySpec(f"{where}-{i}", methods, seeds=2, preset=args.preset, overrides=overrides)
                t0 = time.perf_counter()
                if where == "ray":  # a local Ray started for the study, as the CLI does
                    run_ray_study(store, spec, RayOptions(local_cpus=2))
                else:
                    run_study(store, spec, max_concurrent=2)
                times[where] = time.perf_counter() - t0
                assert all(r.status == "finished" for r in store.list_runs(group=spec.name))
            ratios.append(times["ray"] / times["local"])
            print(json.dumps({"pair": i, **{k: round(v, 2) for k, v in times.items()},
                              "ray_over_local": round(ratios[-1], 3)}), flush=True)
    print(json.dumps({"median_ray_over_local": round(statistics.median(ratios), 3),
                      "min": round(min(ratios), 3), "max": round(max(ratios), 3)}))


if __name__ == "__main__":
    main()
