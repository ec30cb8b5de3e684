"""Comparing runs: per-method tables, genotype agreement and seed-averaged curves (data only;
``core.viz.figures`` draws them). Used by the Compare page and ``python -m core study``."""
from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from core.engine.genotype import Genotype
from core.runs.evaluation import run_genotype
from core.runs.store import RunRecord, RunStore
from core.viz.export import run_figures
from core.viz.figures import agreement_matrix

_SEEDED_NAME = re.compile(r"^(.*)-s\d+$")


def method_label(run: RunRecord) -> str:
    """A study names its runs '<method>-s<seed>'; other runs are labelled by their method."""
    if run.group:
        m = _SEEDED_NAME.match(run.name or "")
        if m:
            return m.group(1)
    return str(run.method or "custom")


def final_genotypes(store: RunStore, run_ids: Sequence[int]) -> dict[int, Genotype]:
    out = {}
    for rid in run_ids:
        try:
            out[rid] = run_genotype(store, rid)
        except (KeyError, ValueError):
            continue
    return out


# Per-run columns of the comparison, in the order the tables show them. The figures of what a
# search did (pruned ops .. iterations) come from core.viz.export.run_figures.
RUN_COLUMNS = ["id", "name", "method", "seed", "status", "val_acc", "test_acc", "size", "pruned_ops",
               "pruned_pct", "separation", "separated_edges", "last_genotype_change", "arch_steps",
               "iterations", "seconds", "cpu_seconds", "genotype"]
# Columns averaged over seeds in the per-method table (as '<column>_mean').
MEAN_COLUMNS = ("pruned_ops", "pruned_pct", "separation", "separated_edges", "last_genotype_change",
                "arch_steps", "seconds", "cpu_seconds")


def runs_table(store: RunStore, run_ids: Sequence[int]) -> pd.DataFrame:
    """One row per run with what the comparison reads (``RUN_COLUMNS``); a figure the store
    cannot give for a run (no rows yet) is None."""
    rows = []
    for r in store.list_runs(ids=list(run_ids)):
        s = r.summary
        figures = run_figures(store, r)
        rows.append({"id": r.id, "name": r.name, "method": method_label(r), "seed": r.config.get("seed"),
                     "status": r.status, "val_acc": s.get("val_acc"), "test_acc": s.get("test_acc"),
                     "size": r.size, **{k: figures[k] for k in RUN_COLUMNS if k in figures},
                     "seconds": r.duration, "cpu_seconds": s.get("cpu_seconds"),
                     "genotype": r.genotype})
    return pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values("id") if rows else \
        pd.DataFrame(columns=RUN_COLUMNS)


def method_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: supernet validation accuracy, evaluated test accuracy and architecture size
    (mean and std over seeds); pruned ops (count and % of both cells' ops), separation, share
    of separated edges, the iteration of the last genotype change, architecture steps and wall
    time (means over seeds; None where no seed has the figure)."""
    if runs.empty:
        return pd.DataFrame()
    out = []
    for method, g in runs.groupby("method", sort=False):
        def ms(col: str) -> tuple[float | None, float | None]:
            v = pd.to_numeric(g[col], errors="coerce").dropna() if col in g else pd.Series(dtype=float)
            if v.empty:
                return None, None
            return float(v.mean()), float(v.std(ddof=0))

        va, va_s = ms("val_acc")
        ta, ta_s = ms("test_acc")
        sz, sz_s = ms("size")
        out.append({"method": method, "runs": len(g), "finished": int((g["status"] == "finished").sum()),
                    "val_acc_mean": va, "val_acc_std": va_s, "test_acc_mean": ta, "test_acc_std": ta_s,
                    "size_mean": sz, "size_std": sz_s,
                    **{f"{c}_mean": ms(c)[0] for c in MEAN_COLUMNS}})
    return pd.DataFrame(out)


def agreement_summary(store: RunStore, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(run x run agreement matrix labelled by run name, method x method mean agreement; the
    diagonal of the second is the mean over distinct pairs of runs of that method)."""
    genos = final_genotypes(store, runs["id"].tolist())
    names = {int(r.id): f"{r.name} (#{r.id})" for r in runs.itertuples() if int(r.id) in genos}
    mat = agreement_matrix({names[i]: genos[i] for i in names})
    method_of = {names[int(r.id)]: r.method for r in runs.itertuples() if int(r.id) in names}
    methods = list(dict.fromkeys(method_of.values()))
    mm = pd.DataFrame(np.nan, index=methods, columns=methods)
    for a in methods:
        for b in methods:
            vals = [mat.loc[x, y] for x in mat.index for y in mat.columns
                    if method_of[x] == a and method_of[y] == b and x != y]
            if vals:
                mm.loc[a, b] = float(np.mean(vals))
    return mat, mm


def within_across(mm: pd.DataFrame) -> dict[str, float | None]:
    """Mean agreement within methods (diagonal) and across methods (off-diagonal)."""
    if mm.empty:
        return {"within": None, "across": None}
    a = mm.to_numpy()
    diag = np.diag(a)
    off = a[~np.eye(len(a), dtype=bool)]
    return {"within": float(np.nanmean(diag)) if np.isfinite(diag).any() else None,
            "across": float(np.nanmean(off)) if off.size and np.isfinite(off).any() else None}


def method_curves(store: RunStore, runs: pd.DataFrame, column: str, points: int = 200
                  ) -> dict[str, pd.DataFrame]:
    """Per method: step, mean and std over seeds of one step column (or 'size'), on a shared
    iteration grid of at most ``points`` points (values carried forward between records)."""
    out: dict[str, pd.DataFrame] = {}
    for method, g in runs.groupby("method", sort=False):
        series = []
        for rid in g["id"]:
            if column == "size":
                df = store.genotypes(int(rid))[["step", "size"]].rename(columns={"size": "value"})
                # Genotype rows are change points: the last one holds to the run's last step.
                last = store.last_step(int(rid))
                if len(df) and last > int(df["step"].iloc[-1]):
                    df = pd.concat([df, df.iloc[[-1]].assign(step=last)], ignore_index=True)
            else:
                df = store.steps(int(rid), columns=["step", column]).rename(columns={column: "value"})
            df = df.dropna()
            if len(df):
                series.append(df)
        if not series:
            continue
        last = int(max(s["step"].max() for s in series))
        grid = np.unique(np.linspace(0, last, min(points, last + 1)).round().astype(int))
        stack = []
        for s in series:
            idx = np.searchsorted(s["step"].to_numpy(), grid, side="right") - 1
            vals = np.where(idx >= 0, s["value"].to_numpy(dtype=float)[np.clip(idx, 0, None)], np.nan)
            vals[grid > s["step"].max()] = np.nan  # a shorter run ends where it ended
            stack.append(vals)
        arr = np.vstack(stack)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # grid points no seed reached yet
            mean = np.nanmean(arr, axis=0)
            std = np.nanstd(arr, axis=0)
        out[method] = pd.DataFrame({"step": grid, "mean": mean, "std": std, "n": np.isfinite(arr).sum(0)})
    return out


def _null_nan(d: dict[Any, Any]) -> dict[Any, Any]:
    """A dict for JSON: a missing number (NaN) becomes None, i.e. null rather than invalid NaN."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_null_nan(row) for row in df.to_dict("records")]


def study_summary(store: RunStore, run_ids: Sequence[int]) -> dict[str, Any]:
    """The comparison as plain data (the CLI's ``study --json``): per run ``RUN_COLUMNS`` but the
    genotype, per method ``method_table``'s columns, and genotype agreement."""
    runs = runs_table(store, run_ids)
    table = method_table(runs)
    _, mm = agreement_summary(store, runs)
    return {"runs": _records(runs.drop(columns=["genotype"])),
            "methods": _records(table),
            "agreement": {**within_across(mm),
                          "by_method": {m: _null_nan(row) for m, row in mm.round(4).to_dict().items()}}}
