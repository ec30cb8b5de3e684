"""Exports of a stored run: genotype text, JSON, DOT of a cell, CSV of its iterations."""
from __future__ import annotations

import json

from core.genotype import Genotype
from core.store import RunStore

FORMATS = ("genotype", "json", "dot", "csv")


def run_genotype(store: RunStore, run_id: int) -> Genotype:
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    g = store.genotypes(run_id)
    if len(g):
        return Genotype.from_json(g["genotype"].iloc[-1])
    if run.genotype:
        return Genotype.parse(run.genotype)
    raise ValueError(f"run {run_id} has no genotype yet")


def export_run(store: RunStore, run_id: int, fmt: str, cell_type: str = "normal") -> str:
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    if fmt == "genotype":
        return str(run_genotype(store, run_id))
    if fmt == "json":
        g = run_genotype(store, run_id) if (run.genotype or store.genotypes(run_id).shape[0]) else None
        return json.dumps({"id": run.id, "name": run.name, "group": run.group, "status": run.status,
                           "config": run.config, "genotype": str(g) if g else None,
                           "genotype_json": g.to_dict() if g else None, "size": run.size,
                           "summary": run.summary, "error": run.error}, indent=2)
    if fmt == "dot":
        return run_genotype(store, run_id).to_dot(cell_type, title=f"{run.name}: {cell_type} cell")
    if fmt == "csv":
        return store.steps(run_id).to_csv(index=False)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
