"""Comparing runs: per-method tables, genotype agreement and seed-averaged curves (data only;
``core.figures`` draws them). Used by the Compare page and ``python -m core study``."""
from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from core.export import run_genotype
from core.figures import agreement, agreement_matrix
from core.genotype import Genotype
from core.store import RunRecord, RunStore

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


def runs_table(store: RunStore, run_ids: Sequence[int]) -> pd.DataFrame:
    """One row per run with what the comparison reads."""
    rows = []
    for r in store.list_runs(ids=list(run_ids)):
        s = r.summary
        rows.append({"id": r.id, "name": r.name, "method": method_label(r), "seed": r.config.get("seed"),
                     "status": r.status, "val_acc": s.get("val_acc"), "test_acc": s.get("test_acc"),
                     "size": r.size, "pruned_ops": s.get("pruned_ops"), "arch_steps": s.get("arch_steps"),
                     "iterations": r.iterations, "seconds": r.duration, "genotype": r.genotype})
    return pd.DataFrame(rows).sort_values("id") if rows else pd.DataFrame(
        columns=["id", "name", "method", "seed", "status", "val_acc", "test_acc", "size", "pruned_ops",
                 "arch_steps", "iterations", "seconds", "genotype"])


def method_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: supernet validation accuracy, evaluated test accuracy and architecture size
    (mean and std over seeds), pruned ops, architecture steps and wall time (means)."""
    if runs.empty:
        return pd.DataFrame()
    out = []
    for method, g in runs.groupby("method", sort=False):
        def ms(col: str) -> tuple[float | None, float | None]:
            v = pd.to_numeric(g[col], errors="coerce").dropna()
            if v.empty:
                return None, None
            return float(v.mean()), float(v.std(ddof=0))

        va, va_s = ms("val_acc")
        ta, ta_s = ms("test_acc")
        sz, sz_s = ms("size")
        out.append({"method": method, "runs": len(g), "finished": int((g["status"] == "finished").sum()),
                    "val_acc_mean": va, "val_acc_std": va_s, "test_acc_mean": ta, "test_acc_std": ta_s,
                    "size_mean": sz, "size_std": sz_s, "pruned_ops_mean": ms("pruned_ops")[0],
                    "arch_steps_mean": ms("arch_steps")[0], "seconds_mean": ms("seconds")[0]})
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


def study_summary(store: RunStore, run_ids: Sequence[int]) -> dict[str, Any]:
    runs = runs_table(store, run_ids)
    table = method_table(runs)
    _, mm = agreement_summary(store, runs)
    return {"runs": runs.drop(columns=["genotype"]).to_dict("records"),
            "methods": table.to_dict("records"),
            "agreement": {**within_across(mm), "by_method": mm.round(4).to_dict()}}
