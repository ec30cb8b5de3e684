"""Runs side by side, aligned (the Compare live page): one column per run, built from each run's
``RunView`` with the Monitor's own chart builders (``core.viz.line_charts``), every chart on one
shared iteration axis so that a moment in one column is the same moment in the others; and which
edges' chosen ops differ between the runs' current genotypes."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from core.engine.genotype import CELL_TYPES
from core.runs.store import ACTIVE_STATUSES
from core.viz import line_charts
from core.viz.figures import cell_dot, edge_index, edge_label
from core.viz.line_charts import LineChart
from core.viz.live import RunView

# Config keys that label a run rather than set it: left out of a column's label unless nothing
# else tells the runs apart.
LABEL_KEYS = ("method", "preset")
# Width of one small multiple of the all-edges grid in a column (the Monitor's is 145 px).
GRID_PANEL_WIDTH, GRID_PANEL_HEIGHT = 62, 48
EDGE_HEIGHT = 190
NOT_CHOSEN = "·"


# ---- what tells the runs apart -------------------------------------------------------------
def varying_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config keys whose values are not the same in every run, labels last."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]
    return [k for k in differ if k not in LABEL_KEYS] or [k for k in differ if k in LABEL_KEYS]


def column_labels(configs: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """One label per run: the settings that differ between the runs ("activation=crb"); the
    run's name where the configs are the same."""
    keys = varying_keys(configs)
    if not keys:
        return list(names)
    return [", ".join(f"{k}={c.get(k)}" for k in keys[:3]) + (" …" if len(keys) > 3 else "")
            for c in configs]


# ---- one iteration axis for every column ---------------------------------------------------
def shared_domain(views: Sequence[RunView]) -> list[int] | None:
    """[0, last planned iteration of the longest run], or None while no run has a planned length."""
    totals = [int(v.run.total_iterations) for v in views if v.run is not None and v.run.total_iterations]
    return [0, max(1, max(totals) - 1)] if totals else None


def on_axis(chart: LineChart | None, domain: list[int] | None) -> LineChart | None:
    """The chart with every iteration axis set to ``domain`` (the spec only: the datasets are
    the same objects). A spec that stays the same keeps the browser's view (line_charts)."""
    if chart is None or domain is None:
        return chart
    spec = copy.deepcopy(chart.spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            x = node.get("x")
            if isinstance(x, dict) and x.get("field") == "iteration":
                x["scale"] = {"domain": list(domain), "nice": False}
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return LineChart(spec, chart.datasets, chart.caption)


# ---- operation weights -----------------------------------------------------------------------
def edge_choices(nodes: int) -> list[tuple[int, str]]:
    """(alpha row, "node i <- input") of every edge of a cell, in row order."""
    return [(e, edge_label(i, j)) for e, (i, j) in enumerate(edge_index(nodes))]


def _panels(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for row in spec.get("vconcat", []) for p in row.get("hconcat", [])]


def edge_chart(view: RunView, cell_type: str, edge: int, fit_y: bool = False) -> LineChart | None:
    """One edge's op weights over iterations: the Monitor's weight grid (``op_weights_chart``:
    its data, pruned ops grey from the step they died) cut to that edge's panel, drawn at the
    column's width with the op legend."""
    grid = line_charts.op_weights_chart(view, cell_type, fit_y=fit_y)
    if grid is None:
        return None
    panels = _panels(grid.spec)
    panel = next((p for p in panels if p["layer"][0]["data"]["name"] == f"e{edge}"), None)
    if panel is None:
        return None
    legend = panels[0]["layer"][0]["encoding"]["color"]  # the first panel carries the palette
    layers = copy.deepcopy(panel["layer"])
    layers[0]["encoding"]["color"] = {**legend, "legend": {"columns": 3, "symbolType": "stroke"}}
    for layer in layers:
        for axis in ("x", "y"):
            enc = layer["encoding"][axis]
            enc["axis"] = {**enc.get("axis", {}), "labelFontSize": 10, "tickCount": 4}
    spec = {"$schema": grid.spec["$schema"],
            "title": {"text": f"{cell_type.capitalize()} cell · {panel['title']['text']}"},
            "config": grid.spec["config"], "width": "container", "height": EDGE_HEIGHT, "layer": layers}
    datasets = {f"e{edge}": grid.datasets[f"e{edge}"], "pruned": grid.datasets["pruned"]}
    pruned = grid.datasets["pruned"]
    n = int((pruned["edge"] == edge).sum()) if len(pruned) else 0
    caption = grid.caption.split(";")[0] + (f"; {n} op{'s' if n != 1 else ''} pruned on this edge" if n else "")
    return LineChart(spec, datasets, caption)


def grid_chart(view: RunView, cell_type: str, fit_y: bool = False, panel_width: int = GRID_PANEL_WIDTH
               ) -> LineChart | None:
    """Every edge's op weights as small multiples (the Monitor's grid), sized for a column."""
    grid = line_charts.op_weights_chart(view, cell_type, fit_y=fit_y)
    if grid is None:
        return None
    spec = copy.deepcopy(grid.spec)
    for p in _panels(spec):
        p["width"], p["height"] = int(panel_width), GRID_PANEL_HEIGHT
        p["title"]["fontSize"] = 8
    spec["config"]["concat"] = {"spacing": 4}
    return LineChart(spec, grid.datasets, grid.caption)


# ---- the genotypes' differences --------------------------------------------------------------
def chosen_ops(view: RunView) -> dict[tuple[str, int, int], str]:
    """(cell type, node, input) -> op of every edge the run's current genotype keeps."""
    g = view.genotype(-1)
    return {} if g is None else {(ct, node, inp): op for ct, node, inp, op in g.choices()}


def differences(views: Sequence[RunView], labels: Sequence[str]) -> pd.DataFrame:
    """One row per edge some run's current genotype keeps: cell, edge, the op each run keeps
    there (NOT_CHOSEN where it keeps none) and ``differs`` (not the same in every run). Runs
    with no genotype yet are left out of the comparison."""
    chosen = [(label, chosen_ops(v)) for label, v in zip(labels, views)]
    chosen = [(label, c) for label, c in chosen if c]
    keys = sorted({k for _, c in chosen for k in c},
                  key=lambda k: (CELL_TYPES.index(k[0]) if k[0] in CELL_TYPES else 9, k[1], k[2]))
    rows = []
    for ct, node, inp in keys:
        ops = [c.get((ct, node, inp), NOT_CHOSEN) for _, c in chosen]
        rows.append({"cell": ct, "edge": edge_label(node, inp), **dict(zip([l for l, _ in chosen], ops)),
                     "differs": len(set(ops)) > 1})
    return pd.DataFrame(rows, columns=["cell", "edge", *[l for l, _ in chosen], "differs"])


# ---- one column ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """What the page asks each column to show."""
    cell: str = CELL_TYPES[0]
    edge: int = 0
    grid: bool = False      # every edge as small multiples instead of the chosen edge
    zoom: bool = False      # weights' y axis on the data, not the activation's range
    panels: tuple[str, ...] = ("weights", "schedule", "regularizer", "cell", "losses")


@dataclass
class Column:
    """Everything one run's column draws at one refresh."""
    run_id: int
    label: str
    status: str
    done: int = 0
    total: int | None = None
    weights: LineChart | None = None
    schedule: LineChart | None = None
    penalty: LineChart | None = None
    gap: LineChart | None = None
    size: LineChart | None = None
    loss: LineChart | None = None
    accuracy: LineChart | None = None
    cell: str | None = None               # DOT of the current genotype's cell
    facts: dict[str, str] = field(default_factory=dict)  # what the run is at now, as text

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def live(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def charts(self) -> list[LineChart]:
        return [c for c in (self.weights, self.schedule, self.penalty, self.gap, self.size, self.loss,
                            self.accuracy) if c is not None]


def _last(df: pd.DataFrame, col: str) -> float | None:
    if df is None or df.empty or col not in df:
        return None
    v = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[np.isfinite(v)]
    return float(v[-1]) if len(v) else None


def facts(view: RunView) -> dict[str, str]:
    """The run now, in a few figures: iteration, architecture steps, pruned ops, cell size,
    gap, the regularizer's pull, training loss, last epoch-end validation accuracy."""
    run, df = view.run, view.steps
    done = view.last_step + 1
    total = run.total_iterations if run is not None else None
    n_ops = sum(int(np.prod(view.alphas[ct].shape[1:])) for ct in CELL_TYPES if view.alphas[ct].size)
    size = _last(view.genotypes, "size")
    out = {"iteration": f"{done} / {total or '?'}",
           "architecture steps": str(view.arch_steps),
           "pruned ops": f"{len(view.pruned)}" + (f" of {n_ops}" if n_ops else ""),
           "cell size": f"{size / 1e6:.2f} M params" if size is not None else "—"}
    for key, col, fmt in (("gap", "gap", "{:.3f}"), ("pull", "penalty", "{:.3g}"),
                          ("train loss", "train_loss", "{:.3f}")):
        v = _last(df, col)
        out[key] = fmt.format(v) if v is not None else "—"
    acc = _last(view.epochs, "val_acc")
    out["val acc (epoch end)"] = f"{acc:.3f}" if acc is not None else "—"
    return out


def build_column(view: RunView, label: str, opts: Options, domain: list[int] | None) -> Column:
    """One run's column: the Monitor's charts on the shared axis, its cell and its facts."""
    run = view.run
    col = Column(view.run_id, label, run.status if run is not None else "deleted",
                 done=view.last_step + 1, total=run.total_iterations if run is not None else None)
    if run is None:
        return col
    col.facts = facts(view)
    want = set(opts.panels)
    if "weights" in want:
        w = grid_chart(view, opts.cell, opts.zoom) if opts.grid else edge_chart(view, opts.cell, opts.edge, opts.zoom)
        col.weights = on_axis(w, domain)
    if "schedule" in want:
        col.schedule = on_axis(line_charts.schedule_chart(view), domain)
    if "regularizer" in want:
        regs = line_charts.regularizer_charts(view)
        if regs:
            col.penalty, col.gap = on_axis(regs[0], domain), on_axis(regs[1], domain)
    if "cell" in want and len(view.genotypes):
        col.cell = cell_dot(view, opts.cell)
        col.size = on_axis(line_charts.size_chart(view), domain)
    if "losses" in want or "accuracy" in want:
        losses = line_charts.losses_charts(view)
        if losses:
            if "losses" in want:
                col.loss = on_axis(losses[0], domain)
            if "accuracy" in want:
                col.accuracy = on_axis(losses[1], domain)
    for chart in col.charts():
        chart.arrow_spec()  # converted once here, before the page writes any element
    return col


def build_columns(views: Sequence[RunView], opts: Options,
                  labels: Sequence[str] | None = None) -> list[Column]:
    """Every run's column on one iteration axis (the longest run's planned length)."""
    if labels is None:
        labels = column_labels([v.config for v in views],
                               [v.run.name if v.run is not None else f"#{v.run_id}" for v in views])
    domain = shared_domain(views)
    return [build_column(v, label, opts, domain) for v, label in zip(views, labels)]
