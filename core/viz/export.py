"""Exports of a stored run: genotype text, JSON, DOT of a cell, CSV of its iterations; and the
figures that say what a search did (pruning, separation, genotype changes, architecture steps),
read from the run's summary or, for runs whose summary lacks them, from its rows.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.engine.discretize import num_edges
from core.engine.genotype import CELL_TYPES, Genotype, GenotypeError
from core.engine.measures import separated_share, separation
from core.runs.evaluation import run_genotype
from core.runs.store import ACTIVE_STATUSES, RunRecord, RunStore
from core.viz.cells import genotype_dot
from core.viz.live import primitives_for

FORMATS = ("genotype", "json", "dot", "csv")

# What a search did, as ``core.engine.search.SearchResult.to_dict`` writes it into the run summary
# (see there for each one's meaning). Runs older than those keys, and live runs, get them from
# the store instead (``run_figures``).
RUN_FIGURES = ("pruned_ops", "total_ops", "pruned_pct", "separation", "separated_edges",
               "last_genotype_change", "arch_steps", "iterations")


# ---- what a search did -----------------------------------------------------------------------
def last_weights(store: RunStore, run_id: int) -> dict[str, tuple[int, np.ndarray]]:
    """{cell type: (step, activated weights (edges, ops))} of the last alphas row of each cell
    that has one. Rows are read backwards from the run's last iteration in widening windows:
    the last row is usually at the last architecture step, so a long run costs a read of a
    row or a few, not of all its weights."""
    top = store.last_step(run_id)
    out = {}
    for ct in CELL_TYPES:
        width = 1
        while True:
            after = top - width
            steps, w = store.alphas(run_id, ct, after=max(-1, after))
            if len(steps) or after < 0:
                break
            width *= 8
        if len(steps):
            out[ct] = (int(steps[-1]), np.asarray(w[-1], dtype=np.float32))
    return out


def _ops_of(config: dict[str, Any], n_ops: int) -> list[str]:
    """Op names of the weights' columns: the run's op list, or placeholders if the stored
    matrix does not have its width (an activation this code does not know)."""
    prims = primitives_for(config)
    return prims if len(prims) == n_ops else [f"op{k}" for k in range(n_ops)]


def _last_genotype_change(genotypes: Any) -> int | None:
    """Iteration of the last change of the derived cell (0: never changed), from the genotypes
    table. Rows are written when the cell changes, and once more when a run resumes (the same
    cell again), so rows are compared by their choices (weights and a reordering of a node's
    edges left out), as the search counts changes."""
    if genotypes is None or len(genotypes) == 0:
        return None
    last, prev = 0, None
    for step, text in zip(genotypes["step"], genotypes["genotype"]):
        try:
            g = Genotype.from_json(text)
        except (GenotypeError, TypeError):
            continue
        if prev is not None and g.choices() != prev.choices():
            last = int(step)
        prev = g
    return last


def run_figures(store: RunStore, run: RunRecord) -> dict[str, Any]:
    """``RUN_FIGURES`` of one run: from its summary where the search wrote them at its end;
    otherwise (older runs, and live runs, whose summary may hold a previous session's end)
    from its rows: pruned ops from the 'pruned' events, total ops from the config, separation
    from the last weights, the last genotype change from the genotypes table, architecture
    steps from the step rows. None where the store cannot tell (no rows yet)."""
    summary = {} if run.status in ACTIVE_STATUSES else run.summary
    out: dict[str, Any] = {k: summary.get(k) for k in RUN_FIGURES}
    if out["iterations"] is None:
        out["iterations"] = run.iterations if run.iterations else None
    missing = {k for k, v in out.items() if v is None}
    if not missing:
        return out

    if out["arch_steps"] is None:
        steps = store.steps(run.id, columns=["step", "arch_step"])
        out["arch_steps"] = int(steps["arch_step"].fillna(0).sum()) if len(steps) else None
    if out["total_ops"] is None:
        # Both cells' (edges, ops) masks, as Search counts them (CRB has no `none` column).
        out["total_ops"] = len(CELL_TYPES) * num_edges(int(run.config.get("nodes", 4))) \
            * len(primitives_for(run.config))
    if out["pruned_ops"] is None:
        out["pruned_ops"] = len(store.events(run.id, kinds=["pruned"]))
    if out["pruned_pct"] is None and out["total_ops"]:
        out["pruned_pct"] = round(100.0 * out["pruned_ops"] / out["total_ops"], 2)
    if out["separation"] is None or out["separated_edges"] is None:
        weights = {ct: w for ct, (_, w) in last_weights(store, run.id).items()}
        prims = primitives_for(run.config)
        if weights and all(w.ndim == 2 and w.shape[1] == len(prims) for w in weights.values()):
            if out["separation"] is None:
                sep = separation(weights, prims)
                out["separation"] = None if sep is None else round(sep, 4)
            if out["separated_edges"] is None:
                share = separated_share(weights, prims)
                out["separated_edges"] = None if share is None else round(share, 4)
    if out["last_genotype_change"] is None:
        out["last_genotype_change"] = _last_genotype_change(store.genotypes(run.id))
    return out


def pruning_masks(store: RunStore, run: RunRecord, shapes: dict[str, tuple[int, int]]
                  ) -> dict[str, np.ndarray]:
    """{cell type: (edges, ops) bool}: False where the run's 'pruned' events say an op was
    pruned, True elsewhere (every op of a run that never prunes)."""
    masks = {ct: np.ones(shape, dtype=bool) for ct, shape in shapes.items()}
    events = store.events(run.id, kinds=["pruned"])
    for text in events["data"]:
        try:
            d = json.loads(text) if isinstance(text, str) else {}
        except json.JSONDecodeError:
            continue
        ct = d.get("cell_type")
        if ct not in masks:
            continue
        ops = _ops_of(run.config, masks[ct].shape[1])
        edge, op = d.get("edge"), d.get("op")
        if isinstance(edge, int) and 0 <= edge < masks[ct].shape[0] and op in ops:
            masks[ct][edge, ops.index(op)] = False
    return masks


def _rounded(w: np.ndarray) -> list[list[float]]:
    # float32 holds about 7 significant digits: more would print noise (0.10000000149...).
    return [[float(f"{v:.7g}") for v in row] for row in w.tolist()]


def final_weights(store: RunStore, run: RunRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """({cell type: {"step", "ops", "weights" (edges x ops)} or None}, {cell type: pruning
    mask (edges x ops booleans) or None}) from the last alphas row of each cell."""
    last = last_weights(store, run.id)
    masks = pruning_masks(store, run, {ct: w.shape for ct, (_, w) in last.items()})
    weights: dict[str, Any] = {ct: None for ct in CELL_TYPES}
    shown: dict[str, Any] = {ct: None for ct in CELL_TYPES}
    for ct, (step, w) in last.items():
        weights[ct] = {"step": step, "ops": _ops_of(run.config, w.shape[1]), "weights": _rounded(w)}
        shown[ct] = masks[ct].tolist()
    return weights, shown


# ---- exports -----------------------------------------------------------------------------------
def export_run(store: RunStore, run_id: int, fmt: str, cell_type: str = "normal") -> str:
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    if fmt == "genotype":
        return str(run_genotype(store, run_id))
    if fmt == "json":
        g = run_genotype(store, run_id) if (run.genotype or store.genotypes(run_id).shape[0]) else None
        weights, masks = final_weights(store, run)
        return json.dumps({"id": run.id, "name": run.name, "group": run.group, "status": run.status,
                           "config": run.config, "genotype": str(g) if g else None,
                           "genotype_json": g.to_dict() if g else None, "size": run.size,
                           "figures": run_figures(store, run), "weights": weights, "masks": masks,
                           "summary": run.summary, "error": run.error}, indent=2)
    if fmt == "dot":
        return genotype_dot(run_genotype(store, run_id), cell_type, title=f"{run.name}: {cell_type} cell")
    if fmt == "csv":
        return store.steps(run_id).to_csv(index=False)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
