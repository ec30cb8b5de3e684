"""Plotly figures and DOT strings of a run, from a ``core.viz.live.RunView`` (pure functions).

What is drawn follows docs/algorithms.md "What to plot, live": here the heatmap of the operation
weights at one step, the genotype as DOT and its change log; plus genotype agreement for
comparisons, the shared look of Plotly charts and the one downsampling rule. The monitor's
charts that change while a run is live (the per-edge weight grid, schedule, regularizers,
size, losses) are Vega-Lite specs in ``core.viz.line_charts``. Op colours come only from
``core.viz.palette``; a run with no rows yet gives a figure that says so.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sequential as _seq

from core.engine.discretize import edge_rows, select_edges
from core.engine.genotype import CELL_TITLES, Genotype
from core.viz.cells import genotype_dot
from core.viz.live import RunView

MAX_POINTS = 1500
WAITING = "waiting for the first iterations"
# The look of every chart (Plotly's plotly_white), written into each layout instead of set by a
# template: plotly.js applies a template attribute by attribute on every draw, and Streamlit's
# "streamlit" theme adds one more. Pages pass theme=None; core.viz.line_charts takes the same colours
# for the monitor's Vega-Lite charts. Axes skip automargin (a second layout pass): the margins in
# MARGIN hold the tick labels, and a chart with long labels (the heatmap) turns it back on.
LOOK = dict(template={}, paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"),
            colorway=["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3",
                      "#FF6692", "#B6E880", "#FF97FF", "#FECB52"],
            hoverlabel=dict(align="left"), autotypenumbers="strict")
AXIS_LOOK = dict(gridcolor="#EBF0F8", linecolor="#EBF0F8", zerolinecolor="#EBF0F8",
                 zerolinewidth=2, ticks="", automargin=False)
MARGIN = dict(l=55, r=20, t=80, b=40)
# White to dark blue (ColorBrewer Blues), spelled out: plotly.js's own "Blues" runs the other way.
_BLUES = [[i / (len(_seq.Blues) - 1), c] for i, c in enumerate(_seq.Blues)]


# ---- helpers --------------------------------------------------------------------------------
def downsample(y: Sequence[float] | np.ndarray, max_points: int = MAX_POINTS,
               keep: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of at most ``max_points`` entries of ``y`` to draw.

    The series is cut into buckets and each keeps its minimum and maximum (so a spike in FI or
    a loss stays visible), plus the first and last point. Indices where ``keep`` is true are
    kept exactly (architecture steps, pruning points) and count toward the budget; only if they
    alone exceed it are they thinned evenly too. NaNs are never chosen as a bucket's extreme
    unless the whole bucket is NaN."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    max_points = max(4, int(max_points))
    keep_idx = np.flatnonzero(keep) if keep is not None else np.zeros(0, np.int64)
    if n <= max_points:
        return np.arange(n)
    if len(keep_idx) > max_points // 2:
        keep_idx = keep_idx[np.linspace(0, len(keep_idx) - 1, max_points // 2).round().astype(int)]
    buckets = max(1, (max_points - len(keep_idx) - 2) // 2)
    size = -(-n // buckets)  # ceil
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    finite = np.isfinite(grid)
    lo = np.argmin(np.where(finite, grid, np.inf), axis=1)
    hi = np.argmax(np.where(finite, grid, -np.inf), axis=1)
    base = np.arange(buckets) * size
    picks = np.concatenate([[0, n - 1], base + lo, base + hi, keep_idx])
    picks = picks[picks < n]
    return np.unique(picks)


def sample(x: np.ndarray, y: np.ndarray, max_points: int, keep: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    idx = downsample(y, max_points, keep)
    return x[idx], y[idx]


def apply_look(layout: dict[str, Any]) -> dict[str, Any]:
    """Adds LOOK and AXIS_LOOK to a layout dict (every x and y axis), keeping what it sets."""
    for key, value in LOOK.items():
        layout.setdefault(key, copy.deepcopy(value))
    for name in {"xaxis", "yaxis", *_axis_names(layout, "xaxis"), *_axis_names(layout, "yaxis")}:
        layout[name] = {**AXIS_LOOK, **(layout.get(name) or {})}
    return layout


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A Figure from plain trace and layout dicts, built without Plotly's per-property
    validation (it costs ~3 ms per trace; a grid has ~120). The dicts are written here, and the
    tests rebuild every figure with validation on."""
    apply_look(layout)
    try:
        return go.Figure(data=data, layout=layout, _validate=False)
    except TypeError:  # a Plotly without the private switch: same figure, validated
        return go.Figure(data=data, layout=layout)


def _base_layout(title: str | None, height: int, top: int = 80, **kw: Any) -> dict[str, Any]:
    """Title on the first line, the legend on the second (both pinned to the figure's top
    edge in pixels, so they never overlap), the plot below ``top`` pixels of margin."""
    layout: dict[str, Any] = dict(
        height=height, margin=dict(MARGIN, t=top), hovermode="x unified",
        legend=dict(orientation="h", yref="container", yanchor="top", y=1 - 30 / height, x=0,
                    font=dict(size=11)))
    if title:
        layout["title"] = dict(text=title, x=0.01, xanchor="left", yref="container", yanchor="top",
                               y=1 - 8 / height, font=dict(size=14))
    layout.update(kw)
    return layout


def _axis_names(layout: dict[str, Any], prefix: str) -> list[str]:
    return sorted(k for k in layout if k == prefix or (k.startswith(prefix) and k[len(prefix):].isdigit()))


def waiting_figure(title: str | None = None, height: int = 300, message: str = WAITING) -> go.Figure:
    """An empty chart that says why it is empty (a run with no rows yet)."""
    return _figure([], _base_layout(
        title, height, xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                          font=dict(size=14, color="#888888"))]))


def input_name(j: int) -> str:
    """Name of a cell state used as an input: 0 -> c_{k-2}, 1 -> c_{k-1}, j -> node j-2."""
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(j, f"node {j - 2}")


def edge_index(nodes: int) -> list[tuple[int, int]]:
    """(node, input) of each alpha row, in row order."""
    return [(i, j) for i, rows in enumerate(edge_rows(nodes)) for j in range(len(rows))]


def edge_label(node: int, j: int) -> str:
    return f"node {node} <- {input_name(j)}"


def y_range(view: RunView) -> list[float]:
    act = view.activation
    lo, hi = act.y_range if act is not None else (0.0, 1.0)
    pad = 0.03 * (hi - lo)
    return [lo - pad, hi + pad]


# ---- operation weights ------------------------------------------------------------------------
def op_names(view: RunView, n_ops: int) -> list[str]:
    prims = view.primitives
    if n_ops == len(prims):
        return prims
    if n_ops == len(prims) - 1 and prims[0] == "none":  # none dropped by an unknown activation
        return prims[1:]
    return [*prims[:n_ops], *(f"op{k}" for k in range(len(prims), n_ops))]


def _alpha_row(view: RunView, cell_type: str, step: int | None) -> tuple[int, np.ndarray] | None:
    steps, w = view.alpha_steps.get(cell_type), view.alphas.get(cell_type)
    if steps is None or len(steps) == 0:
        return None
    if step is None:
        i = len(steps) - 1
    else:
        i = int(np.searchsorted(steps, step, side="right")) - 1
        if i < 0:
            return None
    return int(steps[i]), w[i]


def op_weights_heatmap(view: RunView, cell_type: str, step: int | None = None) -> go.Figure:
    """Weights at the latest (or the given) step: rows are edges "node i <- input", columns ops;
    the ops the genotype keeps are outlined, pruned ones crossed."""
    title = f"{cell_type.capitalize()} cell: weights"
    found = _alpha_row(view, cell_type, step)
    if found is None:
        return waiting_figure(title, 300)
    at, w = found
    prims = op_names(view, w.shape[1])
    labels = [edge_label(i, j) for i, j in edge_index(view.nodes)][: w.shape[0]]
    lo, hi = view.activation.y_range if view.activation is not None else (0.0, 1.0)
    text = np.array([[f"{x:.2f}" for x in row] for row in w.tolist()], dtype=object)
    if len(view.pruned):  # pruned ops read "pruned" instead of their (zero) weight
        p = view.pruned[(view.pruned["cell_type"] == cell_type) & (view.pruned["step"] <= at)]
        col = {op: k for k, op in enumerate(prims)}
        for e, op in zip(p["edge"], p["op"]):
            if op in col and e < len(labels):
                text[e, col[op]] = "pruned"
    data: list[dict[str, Any]] = [dict(
        type="heatmap", z=w, x=prims, y=labels, text=text, texttemplate="%{text}",
        colorscale=_BLUES, zmin=lo, zmax=hi, textfont=dict(size=10),
        colorbar=dict(thickness=10, len=0.8), hovertemplate="%{y}<br>%{x}: %{z:.4f}<extra></extra>")]
    try:
        kept = select_edges(w, prims, rule=str(view.config.get("discretization", "darts")),
                            threshold=float(view.config.get("op_threshold", 0.85)))
    except ValueError:
        kept = []
    if kept:
        data.append(dict(type="scatter", x=[prims[k] for _, k, _ in kept],
                         y=[labels[e] for e, _, _ in kept], mode="markers", name="kept in the genotype",
                         marker=dict(symbol="square-open", size=24, color="#d62728", line=dict(width=2)),
                         hoverinfo="skip"))
    layout = _base_layout(f"{title} at iteration {at}", 26 * len(labels) + 150, hovermode="closest",
                          showlegend=True,
                          yaxis=dict(autorange="reversed", tickfont=dict(size=10), automargin=True),
                          xaxis=dict(tickangle=-30, tickfont=dict(size=10), showgrid=False,
                                     automargin=True))
    return _figure(data, layout)


# ---- genotype -------------------------------------------------------------------------------
def _node_pairs(g: Genotype, cell_type: str) -> dict[int, list[tuple[str, int]]]:
    """Intermediate node (from 0) -> its (op, input) pairs, from each pair's own node, so a
    FairDARTS cell (0, 1 or 2 inputs per node) groups as correctly as a DARTS one."""
    return {node - 2: list(pairs) for node, pairs in g.pairs_by_node(cell_type).items()}


def _pair_changes(removed: list, added: list) -> tuple[list, list, list]:
    """Pairs each dropped (op, input) with the one that took its place: an op change on the
    same input first, then edges that moved, in order; returns (pairs, unpaired removed,
    unpaired added)."""
    removed, added = list(removed), list(added)
    pairs = []
    for r in list(removed):
        a = next((a for a in added if a[1] == r[1]), None)
        if a is not None:
            pairs.append((r, a))
            removed.remove(r)
            added.remove(a)
    n = min(len(removed), len(added))
    pairs += list(zip(removed[:n], added[:n]))
    return pairs, removed[n:], added[n:]


def genotype_changes(view: RunView) -> pd.DataFrame:
    """The genotype's change log: one row per changed (op, input) choice, in step order, e.g.
    "normal node 2: sep_conv_3x3 <- 1 replaced by skip_connect <- 0". A reordering of a node's
    edges (their strength ranking) is not a change; in a FairDARTS threshold cell an input that
    passes or falls below the threshold is "added" or "dropped". The first genotype is the
    baseline."""
    rows: list[dict[str, Any]] = []
    prev: Genotype | None = None
    steps = view.genotypes["step"].tolist()
    for n, step in enumerate(steps):
        g = view.genotype(n)
        if g is None:
            continue
        if prev is not None:
            for ct in ("normal", "reduce"):
                old_nodes, new_nodes = _node_pairs(prev, ct), _node_pairs(g, ct)
                for node in sorted(old_nodes.keys() | new_nodes.keys()):
                    old, new = old_nodes.get(node, []), new_nodes.get(node, [])
                    removed = [p for p in old if p not in new]
                    added = [p for p in new if p not in old]
                    pairs, removed, added = _pair_changes(removed, added)
                    for r, a in pairs:
                        rows.append({"step": int(step), "cell": ct, "node": node,
                                     "change": f"{ct} node {node}: {r[0]} <- {r[1]} replaced by "
                                               f"{a[0]} <- {a[1]}"})
                    for r in removed:
                        rows.append({"step": int(step), "cell": ct, "node": node,
                                     "change": f"{ct} node {node}: {r[0]} <- {r[1]} dropped"})
                    for a in added:
                        rows.append({"step": int(step), "cell": ct, "node": node,
                                     "change": f"{ct} node {node}: {a[0]} <- {a[1]} added"})
        prev = g
    return pd.DataFrame(rows, columns=["step", "cell", "node", "change"]).astype(
        {"step": "int64", "node": "int64"})


def cell_dot(view: RunView, cell_type: str, index: int = -1) -> str:
    """Graphviz DOT of the index-th stored genotype's cell (python indexing, clamped); edges
    carry op and weight. Before the first genotype: a one-node graph that says so. Node ids
    carry the genotype's index, so that the browser draws each genotype afresh instead of
    preparing a morph from the previous one (``genotype_dot``'s ``redraw``). The title names
    the cell, the genotype's place in the history and the iteration it was derived at."""
    g = view.genotype(index)
    if g is None:
        return ('digraph cell { bgcolor="transparent"; node [shape=plaintext, fontname="Helvetica", '
                f'fontcolor="#888888"]; waiting [label="{WAITING}"]; }}')
    n = len(view.genotypes)
    i = min(max(index if index >= 0 else n + index, 0), n - 1)
    step = int(view.genotypes["step"].iloc[i])
    latest = " (latest)" if i == n - 1 else ""
    title = f"{CELL_TITLES.get(cell_type, cell_type)} · genotype {i + 1} of {n}{latest} · derived at iteration {step}"
    return genotype_dot(g, cell_type, title=title, redraw=str(i))


# ---- comparison ---------------------------------------------------------------------------
def agreement(g1: Genotype, g2: Genotype) -> float:
    """Jaccard index of the two genotypes' choices (cell type, node, input, op): 1.0 for the
    same cell, 0.0 for nothing in common."""
    a, b = g1.choices(), g2.choices()
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def agreement_matrix(genotypes: dict[str, Genotype]) -> pd.DataFrame:
    """Pairwise ``agreement`` of named genotypes (symmetric, 1.0 on the diagonal)."""
    names = list(genotypes)
    m = np.ones((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            m[i, j] = m[j, i] = agreement(genotypes[names[i]], genotypes[names[j]])
    return pd.DataFrame(m, index=names, columns=names)


def monitor_figures(view: RunView) -> dict[str, Any]:
    """The monitor's Plotly figures, cells and change log of a run, keyed by name (its line
    charts are Vega-Lite: ``core.viz.line_charts.monitor_line_charts``)."""
    out: dict[str, Any] = {}
    for ct in ("normal", "reduce"):
        out[f"heatmap_{ct}"] = op_weights_heatmap(view, ct)
        out[f"dot_{ct}"] = cell_dot(view, ct)
    out["changes"] = genotype_changes(view)
    return out
