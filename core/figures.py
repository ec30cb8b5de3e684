"""Plotly figures and DOT strings of a run, from a ``core.live.RunView`` (pure functions).

What is drawn follows ALGORITHMS.md "What to plot, live": per-edge operation weights as a
lower-triangular node x input grid and a heatmap, the genotype and its change log; plus genotype
agreement for comparisons. The line charts that gain a point every second (schedule,
regularizers, size, losses) are Vega-Lite specs in ``core.line_charts``, which share this
module's downsampling and series colours. Op colours come
only from ``core.palette``. Every series is downsampled to ``max_points`` for drawing (one
``downsample`` rule: min and max per bucket, so spikes survive), architecture-step markers and
pruning points stay exact; a run with no rows yet gives a figure that says so.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sequential as _seq
from plotly.subplots import make_subplots

from core.discretize import edge_rows, select_edges
from core.genotype import Genotype
from core.live import RunView
from core.palette import PRUNED_COLOR, op_color

MAX_POINTS = 1500
# Each grid panel is a few hundred pixels wide: fewer points per line keep the page light.
GRID_MAX_POINTS = 400
WAITING = "waiting for the first iterations"
# The look of every chart (Plotly's plotly_white), written into each layout instead of set by a
# template: plotly.js applies a template attribute by attribute on every draw, and Streamlit's
# "streamlit" theme adds one more, while the monitor redraws several charts a second. In headless
# Chromium the schedule chart (Plotly then) drew in ~77 ms with the plotly_white template and ~30 ms with the
# same values inline (the op-weight grid: ~480 ms and ~220 ms). Pages pass theme=None.
# Axes also skip automargin (a second layout pass after measuring the labels: ~30 ms down to
# ~20 ms): the margins in MARGIN hold the tick labels, and a chart with long labels (the heatmap)
# turns it back on.
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


@functools.lru_cache(maxsize=32)
def _subplots(rows: int, cols: int, mask: tuple[tuple[bool, ...], ...] | None = None,
              titles: tuple[str, ...] = (), shared_xaxes: bool = True, hspace: float = 0.03,
              vspace: float = 0.08) -> tuple[dict[str, Any], dict[tuple[int, int], tuple[str, str]]]:
    """Layout of a make_subplots grid (cached: make_subplots costs ~0.2 s for a cell grid) and
    the (xaxis, yaxis) names of each (row, col) panel, 1-based; ``mask`` False = empty cell."""
    specs = [[{} if mask is None or mask[r][c] else None for c in range(cols)] for r in range(rows)]
    fig = make_subplots(rows=rows, cols=cols, specs=specs, subplot_titles=list(titles) or None,
                        shared_xaxes=shared_xaxes, horizontal_spacing=hspace, vertical_spacing=vspace)
    layout = fig.layout.to_plotly_json()
    layout.pop("template", None)
    for a in layout.get("annotations", []):
        a["font"] = dict(size=10, color="#555555")
    axes = {}
    for r in range(rows):
        for c in range(cols):
            if specs[r][c] is not None:
                sp = fig.get_subplot(r + 1, c + 1)
                axes[(r + 1, c + 1)] = (sp.xaxis.plotly_name.replace("axis", ""),
                                        sp.yaxis.plotly_name.replace("axis", ""))
    return layout, axes


def _grid(rows: int, cols: int, **kw: Any) -> tuple[dict[str, Any], dict[tuple[int, int], tuple[str, str]]]:
    layout, axes = _subplots(rows, cols, **kw)
    return copy.deepcopy(layout), axes


def _axis_names(layout: dict[str, Any], prefix: str) -> list[str]:
    return sorted(k for k in layout if k == prefix or (k.startswith(prefix) and k[len(prefix):].isdigit()))


def _on(trace: dict[str, Any], axes: tuple[str, str]) -> dict[str, Any]:
    trace["xaxis"], trace["yaxis"] = axes
    return trace


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


def _y_range(view: RunView) -> list[float]:
    act = view.activation
    lo, hi = act.y_range if act is not None else (0.0, 1.0)
    pad = 0.03 * (hi - lo)
    return [lo - pad, hi + pad]


# ---- operation weights ------------------------------------------------------------------------
def op_weights_grid(view: RunView, cell_type: str, max_points: int = GRID_MAX_POINTS,
                    height: int | None = None, fit_y: bool = False) -> go.Figure:
    """Per-edge op weights over iterations: one panel per edge, rows = nodes, columns = inputs
    (c_{k-2}, c_{k-1}, node 0, ...), lower-triangular. One line per op in its palette colour
    (legend once per op); a pruned op turns grey and dotted from the step it died, with an x
    there. y range: the activation's ``y_range``, or with ``fit_y`` from 0 to the largest
    weight drawn (softmax shares sit near 1/ops for a long time). Panels are small, so
    ``max_points`` defaults to GRID_MAX_POINTS per line."""
    title = f"{cell_type.capitalize()} cell: operation weights"
    nodes = view.nodes
    steps, w = view.alpha_steps.get(cell_type), view.alphas.get(cell_type)
    if steps is None or len(steps) == 0 or w is None or w.ndim != 3:
        return waiting_figure(title, 300)
    prims = _op_names(view, w.shape[2])
    cols = nodes + 1
    mask = tuple(tuple(j <= i + 1 for j in range(cols)) for i in range(nodes))
    titles = tuple(edge_label(i, j) for i in range(nodes) for j in range(i + 2))
    layout, axes = _grid(nodes, cols, mask=mask, titles=titles, hspace=0.03, vspace=0.07)

    x = steps.astype(np.int64)
    last = view.last_step
    extend = last > x[-1]
    if extend:  # the weights hold until the next architecture step: draw them up to now
        x = np.append(x, last)
    pruned = view.pruned
    pruned = pruned[pruned["cell_type"] == cell_type] if len(pruned) else pruned
    died = {(int(e), str(o)): int(s) for s, e, o in
            zip(pruned["step"], pruned["edge"], pruned["op"])} if len(pruned) else {}
    data: list[dict[str, Any]] = []
    shown: set[str] = set()
    pruned_shown = False
    for e, (i, j) in enumerate(edge_index(nodes)):
        if e >= w.shape[1]:
            break
        ax = axes[(i + 1, j + 1)]
        label = edge_label(i, j)
        dead_x: list = []
        dead_y: list = []
        mark_x, mark_y, mark_op = [], [], []
        for k, op in enumerate(prims):
            y = w[:, e, k]
            if extend:
                y = np.append(y, y[-1])
            d = died.get((e, op))
            if d is not None:
                # In colour up to the death step, grey and dotted from there on.
                xa, ya = x[x <= d], y[x <= d]
                xd, yd = sample(x[x >= d], y[x >= d], max_points)
                dead_x += [*xd.tolist(), None]
                dead_y += [*yd.tolist(), None]
                at = min(int(np.searchsorted(x, d)), len(y) - 1)
                mark_x.append(d)
                mark_y.append(float(y[at]))
                mark_op.append(op)
            else:
                xa, ya = x, y
            if len(xa):
                xa, ya = sample(xa, ya, max_points)
                data.append(_on(dict(
                    type="scatter", x=xa, y=ya.astype(np.float32), mode="lines", name=op,
                    line=dict(color=op_color(op), width=1.5, shape="hv"), legendgroup=op,
                    showlegend=op not in shown,
                    hovertemplate=f"{op}: %{{y:.3f}}<extra>{label}, step %{{x}}</extra>"), ax))
                shown.add(op)
        if mark_x:
            data.append(_on(dict(
                type="scatter", x=dead_x, y=dead_y, mode="lines", name="pruned", legendgroup="pruned",
                line=dict(color=PRUNED_COLOR, width=1.5, dash="dot", shape="hv"),
                showlegend=not pruned_shown, hoverinfo="skip"), ax))
            data.append(_on(dict(
                type="scatter", x=mark_x, y=mark_y, mode="markers", name="pruned at",
                legendgroup="pruned", showlegend=False, text=mark_op,
                marker=dict(symbol="x", size=7, color=PRUNED_COLOR, line=dict(width=1, color="#7f7f7f")),
                hovertemplate=f"%{{text}} pruned at step %{{x}}<extra>{label}</extra>"), ax))
            pruned_shown = True
    yr = _y_range(view)
    if fit_y:
        top = float(np.nanmax(w)) if w.size else 1.0
        yr = [yr[0], min(yr[1], top * 1.08) if np.isfinite(top) and top > 0 else yr[1]]
    for name in _axis_names(layout, "yaxis"):
        layout[name].update(range=yr, tickfont=dict(size=9), nticks=4)
    for name in _axis_names(layout, "xaxis"):
        layout[name].update(tickfont=dict(size=9), nticks=4)
    h = height or 150 * nodes + 110
    layout.update(_base_layout(title, h, top=90, hovermode="closest"))
    layout["margin"].update(l=40, r=10, b=30)
    return _figure(data, layout)


def _op_names(view: RunView, n_ops: int) -> list[str]:
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
    prims = _op_names(view, w.shape[1])
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
        kept = select_edges(w, prims)
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
def _node_pairs(g: Genotype, cell_type: str) -> list[list[tuple[str, int]]]:
    pairs = list(g.cell(cell_type))
    return [pairs[k:k + 2] for k in range(0, len(pairs), 2)]


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
    two edges (their strength ranking) is not a change. The first genotype is the baseline."""
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
                for node in range(max(len(old_nodes), len(new_nodes))):
                    old = old_nodes[node] if node < len(old_nodes) else []
                    new = new_nodes[node] if node < len(new_nodes) else []
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
    carry op and weight. Before the first genotype: a one-node graph that says so."""
    g = view.genotype(index)
    if g is None:
        return ('digraph cell { bgcolor="transparent"; node [shape=plaintext, fontname="Helvetica", '
                f'fontcolor="#888888"]; waiting [label="{WAITING}"]; }}')
    n = len(view.genotypes)
    i = min(max(index if index >= 0 else n + index, 0), n - 1)
    step = int(view.genotypes["step"].iloc[i])
    return g.to_dot(cell_type, title=f"{cell_type} cell at iteration {step}")


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
    charts are Vega-Lite: ``core.line_charts.monitor_line_charts``)."""
    out: dict[str, Any] = {}
    for ct in ("normal", "reduce"):
        out[f"grid_{ct}"] = op_weights_grid(view, ct)
        out[f"heatmap_{ct}"] = op_weights_heatmap(view, ct)
        out[f"dot_{ct}"] = cell_dot(view, ct)
    out["changes"] = genotype_changes(view)
    return out
