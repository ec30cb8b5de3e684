"""RunView: an incremental reader of one stored run, held by a page between refreshes.

A page keeps one ``RunView`` per run it shows (in session state) and calls ``refresh()`` on
every poll; each table is read only after what the view already holds (steps after its last
step, alphas after its last alpha step, genotypes after its last step, events after its last
event id), so a refresh of a 20,000-iteration run costs what its new rows cost. The figures in
``core.viz.figures`` draw from the view and downsample; the view keeps every row.
"""
from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd

from core.engine.activations import ACTIVATIONS, Activation, op_names
from core.engine.discretize import num_edges
from core.engine.genotype import CELL_TYPES, Genotype, GenotypeError
from core.engine.regularizers import REGULARIZERS, UpdateEvents
from core.registry import UnknownNameError
from core.runs.store import STEP_COLUMNS, RunRecord, RunStore

# Step columns kept as integers; the rest (but ``terms``, JSON text) become float64 with NaN
# for SQL NULL (val_loss off architecture steps, threshold under the fixed schedule, ...).
_INT_COLUMNS = ("step", "epoch", "arch_step", "active_ops")
# Events that mean the writer (re)started: a resumed run first drops the rows after its
# checkpoint and writes them again under the same step numbers, so the view re-reads all.
_RESTART_KINDS = ("started", "resumed")
_GENERATIONS = itertools.count(1)

# A page watching a live run redraws about once a second: the Recorder writes rows at most once a
# second (core/runs/recorder.py), so a faster refresh would find nothing new. When an iteration takes
# longer than that, the rows come once an iteration, and a refresh between two of them redraws
# every panel with nothing new: on a 2-core machine that work comes out of the search's share
# (docs/performance.md). So the refresh follows the iterations, up to MAX_REFRESH_S, which keeps the
# progress line's clock moving on slow runs.
REFRESH_S = 1.0
MAX_REFRESH_S = 2.0
_PACE_ROWS = 12  # the median over the last rows' gaps: an epoch end's validation is one long gap


def refresh_seconds(steps: pd.DataFrame) -> float:
    """Seconds between a live page's refreshes for a run whose rows so far are ``steps``: the
    median time between its last iterations, within [REFRESH_S, MAX_REFRESH_S], to 0.1 s."""
    if steps is None or len(steps) < 3 or "time" not in steps:
        return REFRESH_S
    t = steps["time"].to_numpy(dtype="float64")[-_PACE_ROWS:]
    gaps = np.diff(t)
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]  # a resumed run's clock starts again at 0
    if len(gaps) < 2:
        return REFRESH_S
    return round(float(min(MAX_REFRESH_S, max(REFRESH_S, np.median(gaps)))), 1)


def activation_for(config: dict[str, Any]) -> type[Activation] | None:
    """The activation class a run's config names, or None if it is not registered here."""
    try:
        return ACTIVATIONS.get(str(config.get("activation", "softmax")))
    except UnknownNameError:
        return None


def updates_for(config: dict[str, Any]) -> UpdateEvents | None:
    """What the update events of a run's regularizer carry, as its class declares; None when
    it declares none or is not registered here."""
    try:
        return REGULARIZERS.get(str(config.get("regularizer", "none"))).updates
    except UnknownNameError:
        return None


def primitives_for(config: dict[str, Any]) -> list[str]:
    """Op names in alpha-column order for a run's config (``op_names``, the rule ``Supernet``
    applies); an activation not registered here is read as one that keeps ``none``."""
    activation = activation_for(config) or ACTIVATIONS.get("softmax")
    return op_names(activation, bool(config.get("include_none", True)))


def _empty_steps() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="float64") for c in STEP_COLUMNS})
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("int64")
    df["terms"] = df["terms"].astype(object)
    return df


def _text(col: pd.Series) -> pd.Series:
    """Text column as object dtype with None for NULL: pandas reads a batch as None, NaN or
    its string dtype depending on what the batch holds, and batches must concatenate alike."""
    return pd.Series([t if isinstance(t, str) else None for t in col], index=col.index, dtype=object)


def _coerce_steps(df: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in STEP_COLUMNS:
        col = df[c]
        if c == "terms":
            out[c] = _text(col)
        elif c in _INT_COLUMNS:
            out[c] = pd.to_numeric(col, errors="coerce").fillna(0).astype("int64")
        else:
            out[c] = pd.to_numeric(col, errors="coerce").astype("float64")
    return pd.DataFrame(out)


def _append(held: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if new.empty:
        return held
    if held.empty:
        return new.reset_index(drop=True)
    return pd.concat([held, new], ignore_index=True)


def _loads(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _parse_terms(steps: np.ndarray, texts: np.ndarray) -> pd.DataFrame:
    """step + one float column per numeric key of the ``terms`` JSON objects."""
    texts = [t if isinstance(t, str) and t.strip().startswith("{") else "{}" for t in texts]
    try:
        records = json.loads("[" + ",".join(texts) + "]")  # one parse for all rows
    except json.JSONDecodeError:
        records = [_loads(t) for t in texts]
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    out = {"step": steps.astype(np.int64)}
    for c in df.columns:
        col = pd.to_numeric(df[c], errors="coerce")
        if col.notna().any():
            out[str(c)] = col.astype("float64").to_numpy()
    return pd.DataFrame(out)


class RunView:
    """Everything a monitor page draws about one run, refreshed incrementally.

    Attributes (all readable between refreshes):
      run          RunRecord, or None before the first refresh and after the run was deleted
      steps        DataFrame with STEP_COLUMNS, one row per iteration, ordered by step
      terms        DataFrame: step + one float column per key of ``terms`` (architecture steps)
      alpha_steps  {cell_type: (T,) int64}    steps at which the weights were recorded
      alphas       {cell_type: (T, edges, ops) float32}  activated weights
      genotypes    DataFrame step, genotype (JSON text), size
      events       DataFrame id, step, time, kind, message, data (JSON text)
      pruned       DataFrame step, cell_type, edge, op (from 'pruned' events)
      updates      DataFrame step + one column per series the run's regularizer declares for
                   its update events (``update_events``), one row per such event
      epochs       DataFrame step, epoch, val_acc, val_loss, train_acc (from 'epoch_end')
    """

    def __init__(self, store: RunStore, run_id: int):
        self.store = store
        self.run_id = int(run_id)
        self.run: RunRecord | None = None
        self.deleted = False
        self._reset()

    def _reset(self) -> None:
        # A new number whenever the view takes in anything (see refresh), unique in the process
        # (a view made afresh never reuses one): what was drawn from the same generation can be
        # kept as it was.
        self.generation = next(_GENERATIONS)
        self.steps = _empty_steps()
        self.terms = pd.DataFrame({"step": pd.Series(dtype="int64")})
        self.alpha_steps: dict[str, np.ndarray] = {ct: np.zeros(0, np.int64) for ct in CELL_TYPES}
        self.alphas: dict[str, np.ndarray] = {
            ct: np.zeros((0, self.n_edges, len(self.primitives)), np.float32) for ct in CELL_TYPES}
        self.genotypes = pd.DataFrame({"step": pd.Series(dtype="int64"),
                                       "genotype": pd.Series(dtype=object),
                                       "size": pd.Series(dtype="float64")})
        self.events = pd.DataFrame({"id": pd.Series(dtype="int64"), "step": pd.Series(dtype="float64"),
                                    "time": pd.Series(dtype="float64"),
                                    "kind": pd.Series(dtype=object), "message": pd.Series(dtype=object),
                                    "data": pd.Series(dtype=object)})
        self.pruned = pd.DataFrame({"step": pd.Series(dtype="int64"), "cell_type": pd.Series(dtype=object),
                                    "edge": pd.Series(dtype="int64"), "op": pd.Series(dtype=object)})
        decl = self.update_events
        self.updates = pd.DataFrame({c: pd.Series(dtype="float64")
                                     for c in ("step", *(decl.keys if decl else ()))})
        self.epochs = pd.DataFrame({c: pd.Series(dtype="float64")
                                    for c in ("step", "epoch", "val_acc", "val_loss", "train_acc")})
        self._genotype_cache: dict[int, Genotype] = {}

    # ---- what the run is -------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.run.config if self.run is not None else {}

    @property
    def primitives(self) -> list[str]:
        return primitives_for(self.config)

    @property
    def nodes(self) -> int:
        return int(self.config.get("nodes", 4))

    @property
    def n_edges(self) -> int:
        return num_edges(self.nodes)

    @property
    def activation(self) -> type[Activation] | None:
        return activation_for(self.config)

    @property
    def update_events(self) -> UpdateEvents | None:
        """What the run's regularizer's update events carry (None: it has none)."""
        return updates_for(self.config)

    @property
    def last_step(self) -> int:
        return int(self.steps["step"].iloc[-1]) if len(self.steps) else -1

    @property
    def last_event_id(self) -> int:
        return int(self.events["id"].iloc[-1]) if len(self.events) else 0

    @property
    def is_empty(self) -> bool:
        return self.steps.empty

    @property
    def arch_steps(self) -> int:
        return int(self.steps["arch_step"].sum())

    def genotype(self, index: int = -1) -> Genotype | None:
        """The index-th stored genotype (python indexing, clamped), or None if none yet."""
        n = len(self.genotypes)
        if n == 0:
            return None
        i = min(max(index if index >= 0 else n + index, 0), n - 1)
        if i not in self._genotype_cache:
            try:
                self._genotype_cache[i] = Genotype.from_json(self.genotypes["genotype"].iloc[i])
            except GenotypeError:
                return None
        return self._genotype_cache[i]

    # ---- refresh ----------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reads what the store has beyond what the view holds; True if anything arrived (new
        rows or a changed run record). A deleted run gives False and ``run`` None."""
        run = self.store.get_run(self.run_id)
        if run is None:
            self.deleted = self.run is not None or self.deleted
            self.run = None
            return False
        changed = run != self.run
        if self.run is None or run.config != self.run.config:
            self.run = run
            self._reset()  # primitives and shapes follow the config
        self.run = run

        new_events = self.store.events(self.run_id, after_id=self.last_event_id)
        if not new_events.empty and self._held_any() and new_events["kind"].isin(_RESTART_KINDS).any():
            self._reset()
            new_events = self.store.events(self.run_id, after_id=0)
        changed |= self._add_events(new_events)
        changed |= self._add_steps(self.store.steps(self.run_id, after=self.last_step))
        for ct in CELL_TYPES:
            after = int(self.alpha_steps[ct][-1]) if len(self.alpha_steps[ct]) else -1
            changed |= self._add_alphas(ct, *self.store.alphas(self.run_id, ct, after=after))
        after = int(self.genotypes["step"].iloc[-1]) if len(self.genotypes) else -1
        new_g = self.store.genotypes(self.run_id, after=after)
        if not new_g.empty:
            new_g["size"] = pd.to_numeric(new_g["size"], errors="coerce").astype("float64")
            new_g["genotype"] = _text(new_g["genotype"])
            self.genotypes = _append(self.genotypes, new_g)
            changed = True
        if changed:
            self.generation = next(_GENERATIONS)
        return bool(changed)

    def _held_any(self) -> bool:
        return bool(len(self.steps) or len(self.events) or len(self.genotypes))

    def _add_steps(self, new: pd.DataFrame) -> bool:
        if new.empty:
            return False
        new = _coerce_steps(new)
        self.steps = _append(self.steps, new)
        has = new["terms"].notna().to_numpy()
        if has.any():
            self.terms = _append(self.terms, _parse_terms(new["step"].to_numpy()[has],
                                                          new["terms"].to_numpy()[has]))
        return True

    def _add_alphas(self, ct: str, steps: np.ndarray, weights: np.ndarray) -> bool:
        if len(steps) == 0:
            return False
        held = self.alphas[ct]
        if len(held) == 0 or held.shape[1:] != weights.shape[1:]:
            self.alpha_steps[ct] = steps.astype(np.int64)
            self.alphas[ct] = np.array(weights, dtype=np.float32)  # own copy: the blob is read-only
        else:
            self.alpha_steps[ct] = np.concatenate([self.alpha_steps[ct], steps.astype(np.int64)])
            self.alphas[ct] = np.concatenate([held, weights.astype(np.float32)])
        return True

    def _add_events(self, new: pd.DataFrame) -> bool:
        if new.empty:
            return False
        new = new.astype({"id": "int64"})
        new["step"] = pd.to_numeric(new["step"], errors="coerce").astype("float64")
        for c in ("kind", "message", "data"):
            new[c] = _text(new[c])
        self.events = _append(self.events, new)
        decl = self.update_events
        update_kind = decl.kind if decl is not None else None
        pruned, updates, epochs = [], [], []
        for step, kind, data in zip(new["step"], new["kind"], new["data"]):
            if kind not in ("pruned", "epoch_end") and kind != update_kind:
                continue
            d = _loads(data)
            s = -1 if step != step else int(step)
            if kind == "pruned" and {"cell_type", "edge", "op"} <= d.keys():
                pruned.append({"step": s, "cell_type": d["cell_type"], "edge": int(d["edge"]),
                               "op": d["op"]})
            elif kind == update_kind:
                updates.append({"step": s, **{k: d.get(k) for k in decl.keys}})
            elif kind == "epoch_end":
                epochs.append({"step": s, **{k: d.get(k) for k in ("epoch", "val_acc", "val_loss",
                                                                  "train_acc")}})
        if pruned:
            self.pruned = _append(self.pruned, pd.DataFrame(pruned))
        if updates:
            self.updates = _append(self.updates, pd.DataFrame(updates).astype("float64"))
        if epochs:
            self.epochs = _append(self.epochs, pd.DataFrame(epochs).astype("float64"))
        return True
