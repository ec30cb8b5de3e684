"""Times a monitor page's work on a long run: a fresh RunView's refresh plus every figure.

Builds a synthetic stored run of 20,000 iterations in a temporary SQLite file (rows written
through RunStore in bulk; an informed-schedule run: an architecture step every ~11 iterations,
weights recorded at each, CRB pruning, ADMM updates every 10 architecture steps, a genotype
whenever the derived cell changes, epoch ends every 400 iterations), then times
``RunView(store, id).refresh()``, ``core.viz.figures.monitor_figures(view)`` and
``core.viz.line_charts.monitor_line_charts(view)``. The target (docs/design.md, "Rules the code
keeps"): under a second. Wall and CPU seconds are both printed (a busy machine inflates the
first). Serialising the figures to JSON and the line charts' datasets to Arrow (what the page
sends) is timed apart.

    python scripts/perf/render_bench.py [--iterations 20000] [--method prime-admm] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.engine.config import make_config  # noqa: E402
from core.engine.discretize import derive_genotype  # noqa: E402
from core.engine.genotype import CELL_TYPES  # noqa: E402
from core.runs.store import RunStore  # noqa: E402
from core.viz.live import RunView, primitives_for  # noqa: E402


def make_synthetic_run(store: RunStore, iterations: int = 20_000, method: str = "prime-admm",
                       seed: int = 0, iters_per_epoch: int = 400) -> int:
    """A stored run that looks like a long real one; returns its id."""
    rng = np.random.default_rng(seed)
    cfg = make_config("paper", method, epochs=max(1, iterations // iters_per_epoch),
                      iters_per_epoch=iters_per_epoch)
    run_id = store.create_run(cfg, name=f"synthetic-{method}-{iterations}")
    store.update_run(run_id, status="running", started=time.time(), total_iterations=iterations)
    prims = primitives_for(cfg.to_dict())
    crb = cfg.activation == "crb"
    shape = (14, len(prims))
    alpha = {ct: (1.0 / len(prims) if crb else 0.0) + 1e-3 * rng.standard_normal(shape)
             for ct in CELL_TYPES}
    mask = {ct: np.ones(shape, bool) for ct in CELL_TYPES}

    def activate(a: np.ndarray) -> np.ndarray:
        if crb:
            return np.clip(a, 0.0, 1.0)
        if cfg.activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-a))
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    drift = {ct: 2e-3 * rng.standard_normal(shape) for ct in CELL_TYPES}
    rows, events = [], [{"kind": "started", "message": "search started (synthetic)", "step": 0}]
    genotype = None
    fi_ewma, threshold = 10.0, 10.0
    next_arch, arch_steps, admm_n = 2, 0, 0
    for step in range(iterations):
        t = step / iterations
        fi = float(10.0 * np.exp(0.3 * rng.standard_normal()) * (1.0 - 0.5 * t))
        fi_ewma = 0.2 * fi + 0.8 * fi_ewma
        arch = cfg.schedule == "informed" and step == next_arch or cfg.schedule == "fixed"
        row = {"step": step, "epoch": step // iters_per_epoch, "progress": t, "time": 0.05 * step,
               "train_loss": float(2.3 * np.exp(-3 * t) + 0.1 * rng.random()),
               "train_acc": float(min(1.0, 0.1 + 0.85 * t + 0.05 * rng.random())), "lr": 0.025,
               "fi": fi, "fi_ewma": fi_ewma if cfg.schedule == "informed" else None,
               "threshold": threshold if cfg.schedule == "informed" else None,
               "arch_step": int(arch), "active_ops": int(sum(m.sum() for m in mask.values()))}
        if arch:
            arch_steps += 1
            next_arch = step + int(rng.integers(8, 15))
            threshold = fi_ewma * 0.6
            weights = {}
            for ct in CELL_TYPES:
                alpha[ct] += drift[ct] + 5e-3 * rng.standard_normal(shape)
                if crb:
                    dead = (alpha[ct] <= 0) & mask[ct]
                    for e, k in np.argwhere(dead):
                        events.append({"kind": "pruned", "step": step, "message": f"{ct} edge {e}: "
                                       f"{prims[k]} pruned", "data": {"cell_type": ct, "edge": int(e),
                                                                     "op": prims[k]}})
                    mask[ct] &= ~dead
                    alpha[ct][~mask[ct]] = 0.0
                weights[ct] = activate(alpha[ct]).astype(np.float32)
            store.add_alphas(run_id, step, weights)
            g = derive_genotype(weights["normal"], weights["reduce"], prims)
            if g != genotype:
                genotype = g
                store.add_genotype(run_id, step, g.to_json(), int(2_500_000 + 200_000 * rng.random()))
            penalty = 0.05 * t * float(rng.random() + 1)
            terms = {"val_ce": row["train_loss"] + 0.1, cfg.regularizer: penalty}
            if cfg.regularizer == "admm" and arch_steps % cfg.admm_every == 0:
                admm_n += 1
                report = {"admm_primal": 3.0 / admm_n ** 0.5, "admm_dual": 1.0 - 1.0 / (admm_n + 1)}
                terms.update(report)
                events.append({"kind": "admm_update", "step": step, "message": "ADMM update",
                               "data": report})
            row.update(val_loss=terms["val_ce"], val_acc=row["train_acc"] - 0.05, penalty=penalty,
                       terms=terms)
        else:
            threshold *= 1.05
        row["gap"] = float(5.5 - 3.0 * t)
        rows.append(row)
        if (step + 1) % iters_per_epoch == 0:
            events.append({"kind": "epoch_end", "step": step, "message": "epoch end",
                           "data": {"epoch": (step + 1) // iters_per_epoch, "val_acc": row["train_acc"],
                                    "val_loss": row["train_loss"], "train_acc": row["train_acc"]}})
    store.add_steps(run_id, rows)
    store.add_events(run_id, events)
    store.update_run(run_id, status="finished", finished=time.time())
    return run_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=20_000)
    p.add_argument("--method", default="prime-admm")
    p.add_argument("--repeat", type=int, default=3, help="timed rounds; the best is reported")
    args = p.parse_args(argv)

    from core.viz import figures, line_charts

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(os.path.join(tmp, "bench.sqlite"))
        t0 = time.perf_counter()
        run_id = make_synthetic_run(store, args.iterations, args.method)
        print(f"built a {args.iterations}-iteration {args.method} run in {time.perf_counter() - t0:.1f} s")
        figures.monitor_figures(RunView(store, run_id))  # warm-up: imports, cached layouts
        line_charts.monitor_line_charts(RunView(store, run_id))
        best: dict[str, float] = {}
        cpu_best = float("inf")
        for _ in range(max(1, args.repeat)):
            times: dict[str, float] = {}
            cpu = time.process_time()
            t = time.perf_counter()
            view = RunView(store, run_id)
            view.refresh()
            times["refresh"] = time.perf_counter() - t
            for name, fn in (
                    ("op_weights_chart normal", lambda: line_charts.op_weights_chart(view, "normal")),
                    ("op_weights_chart reduce", lambda: line_charts.op_weights_chart(view, "reduce")),
                    ("op_weights_heatmap normal", lambda: figures.op_weights_heatmap(view, "normal")),
                    ("op_weights_heatmap reduce", lambda: figures.op_weights_heatmap(view, "reduce")),
                    ("schedule_chart", lambda: line_charts.schedule_chart(view)),
                    ("regularizer_charts", lambda: line_charts.regularizer_charts(view)),
                    ("size_chart", lambda: line_charts.size_chart(view)),
                    ("losses_charts", lambda: line_charts.losses_charts(view)),
                    ("genotype_changes", lambda: figures.genotype_changes(view)),
                    ("cell_dot normal", lambda: figures.cell_dot(view, "normal")),
                    ("cell_dot reduce", lambda: figures.cell_dot(view, "reduce"))):
                t = time.perf_counter()
                fn()
                times[name] = time.perf_counter() - t
            times["total"] = sum(times.values())
            cpu_best = min(cpu_best, time.process_time() - cpu)
            figs = figures.monitor_figures(view)
            t = time.perf_counter()
            size = sum(len(f.to_json()) for f in figs.values() if hasattr(f, "to_json"))
            for chart in line_charts.monitor_line_charts(view).values():
                size += len(chart.spec_json()) + sum(map(len, chart.arrow_spec()["datasets"].values()))
            times["to_json, to Arrow (apart)"] = time.perf_counter() - t
            if not best or times["total"] < best["total"]:
                best = times
        print(f"rows: {len(view.steps)} steps, {view.arch_steps} architecture steps, "
              f"{len(view.alpha_steps['normal'])} weight records per cell, {len(view.genotypes)} "
              f"genotypes, {len(view.events)} events ({len(view.pruned)} pruned, {len(view.updates)} regularizer updates)")
        for k, v in best.items():
            print(f"  {k:28s} {v:7.3f} s")
        print(f"figure JSON and chart data: {size / 1e6:.2f} MB")
        print(f"render bench: {best['total']:.3f} s wall, {cpu_best:.3f} s CPU (refresh + every "
              f"monitor figure, best of {max(1, args.repeat)}), target < 1 s")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
