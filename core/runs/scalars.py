"""A run's records as tagged scalars, the form TensorBoard and MLflow take.

One mapping from what the Recorder writes (step rows, activated weights, genotype changes,
events) to ``(tag, step, value)``; the live TensorBoard writer and the exports of a stored run
both go through it, so a run exported later reads the same as one written live.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from core.engine.activations import ACTIVATIONS, op_names
from core.engine.discretize import edge_rows, num_edges
from core.engine.regularizers import REGULARIZERS, UpdateEvents
from core.registry import UnknownNameError

Scalar = tuple[str, int, float]

# Step-row column -> tag. Tags group in TensorBoard by their first part.
STEP_TAGS: dict[str, str] = {
    "train_loss": "loss/train",
    "val_loss": "loss/validation",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/validation",
    "lr": "optimizer/weight_lr",
    "fi": "schedule/fi",
    "fi_ewma": "schedule/fi_average",
    "threshold": "schedule/threshold",
    "arch_step": "schedule/architecture_step",
    "penalty": "regularizer/penalty",
    "gap": "regularizer/discretization_gap",
    "active_ops": "architecture/live_ops",
}
PRUNED_TAG = "architecture/pruned_ops"
SIZE_TAG = "architecture/size_params"


@dataclass(frozen=True)
class RunLayout:
    """What the mapping needs to know of a run: its op list, and what its regularizer's update
    events carry (None when it has none)."""
    primitives: tuple[str, ...]
    updates: UpdateEvents | None
    edges: int = 14  # per cell

    @property
    def total_ops(self) -> int:
        """Ops of both cells at the start (what ``active_ops`` counts down from)."""
        return 2 * self.edges * len(self.primitives)

    @classmethod
    def of(cls, config: dict[str, Any]) -> "RunLayout":
        try:
            activation = ACTIVATIONS.get(str(config.get("activation", "softmax")))
        except UnknownNameError:  # a run of a newer version: read it as one that keeps `none`
            activation = ACTIVATIONS.get("softmax")
        try:
            updates = REGULARIZERS.get(str(config.get("regularizer", "none"))).updates
        except UnknownNameError:
            updates = None
        return cls(tuple(op_names(activation, bool(config.get("include_none", True)))), updates,
                   num_edges(int(config.get("nodes", 4))))


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, (str, bytes, dict, list)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _safe(name: str) -> str:
    """A tag part MLflow accepts too (letters, digits, _ - . / and spaces)."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in str(name))


def step_scalars(rows: Iterable[dict[str, Any]], layout: RunLayout) -> list[Scalar]:
    """Scalars of step rows: losses, accuracies, lr, FI, its average, the threshold, the
    architecture steps, the penalty, its terms, the gap, live and pruned ops."""
    out: list[Scalar] = []
    for row in rows:
        step = int(row["step"])
        for col, tag in STEP_TAGS.items():
            v = _number(row.get(col))
            if v is not None:
                out.append((tag, step, v))
        terms = row.get("terms")
        if isinstance(terms, str):
            terms = json.loads(terms) if terms else None
        if not isinstance(terms, dict):  # none stored: a missing value reads NaN from the store
            terms = {}
        for name, value in terms.items():
            v = _number(value)
            if v is not None:
                out.append((f"regularizer/terms/{_safe(name)}", step, v))
        live = _number(row.get("active_ops"))
        if live is not None:
            out.append((PRUNED_TAG, step, layout.total_ops - live))
    return out


def edge_label(edge: int, n_edges: int) -> str:
    """``e03 node 1 <- c_{k-1}``-like label of an edge of the alpha matrix (nodes counted from
    0, as cells are drawn)."""
    nodes, count = 0, 0
    while count < n_edges:
        count += 2 + nodes
        nodes += 1
    for node, rows in enumerate(edge_rows(nodes)):
        if edge in rows:
            inp = edge - rows.start
            source = {0: "c_k-2", 1: "c_k-1"}.get(inp, f"n{inp - 2}")
            return f"e{edge:02d} n{node} from {source}"
    raise ValueError(f"edge {edge} is not one of {n_edges}")


def weight_scalars(step: int, weights: dict[str, np.ndarray], layout: RunLayout) -> list[Scalar]:
    """Activated weights of each cell, one tag per (cell, edge, op):
    ``weights/normal/e03 n1 from c_k-1/sep_conv_3x3``."""
    out: list[Scalar] = []
    for cell, w in weights.items():
        w = np.asarray(w, dtype=np.float64)
        ops = layout.primitives if w.shape[1] == len(layout.primitives) else tuple(
            f"op{j}" for j in range(w.shape[1]))
        for e in range(w.shape[0]):
            label = edge_label(e, w.shape[0])
            for j, op in enumerate(ops):
                if math.isfinite(w[e, j]):
                    out.append((f"weights/{cell}/{label}/{op}", int(step), float(w[e, j])))
    return out


def weight_groups(layout: RunLayout, cells: Sequence[str] = ("normal", "reduce")
                  ) -> dict[str, dict[str, list[str]]]:
    """{cell: {edge label: [its ops' tags]}}: the charts that draw an edge's ops together."""
    return {cell: {edge_label(e, layout.edges): [f"weights/{cell}/{edge_label(e, layout.edges)}/{op}"
                                                 for op in layout.primitives]
                   for e in range(layout.edges)}
            for cell in cells}


def size_scalars(step: int, size: int | None) -> list[Scalar]:
    return [] if size is None else [(SIZE_TAG, int(step), float(size))]


def event_scalars(events: Sequence[dict[str, Any]], layout: RunLayout) -> list[Scalar]:
    """The values the regularizer's own update events carry (e.g. ADMM's residuals), as its
    class declares them."""
    upd = layout.updates
    if upd is None:
        return []
    out: list[Scalar] = []
    for e in events:
        if e.get("kind") != upd.kind or e.get("step") is None:
            continue
        data = e.get("data")
        if isinstance(data, str):
            data = json.loads(data) if data else None
        for key, label in upd.series:
            v = _number((data or {}).get(key))
            if v is not None:
                out.append((f"regularizer/{_safe(upd.label)}/{_safe(label)}", int(e["step"]), v))
    return out
