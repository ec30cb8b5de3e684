"""Plotly figures and DOT strings of a run, from a ``core.live.RunView`` (pure functions).

What is drawn follows ALGORITHMS.md "What to plot, live": per-edge operation weights as a
lower-triangular node x input grid, the schedule (FI, FI_ewma, threshold, architecture steps),
the regularizer terms and the discretization gap, ADMM residuals, the genotype, its size and
change log, losses and accuracies; plus genotype agreement for comparisons. Op colours come
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
# Markers of discrete events (architecture steps) are drawn exactly up to this many.
MAX_MARKERS = 5000
# Each grid panel is a few hundred pixels wide: fewer points per line keep the page light.
GRID_MAX_POINTS = 400
WAITING = "waiting for the first iterations"
# The look of every chart (Plotly's plotly_white), written into each layout instead of set by a
# template: plotly.js applies a template attribute by attribute on every draw, and Streamlit's
# "streamlit" theme adds one more, while the monitor redraws several charts a second. In headless
# Chromium the schedule chart drew in ~77 ms with the plotly_white template and ~30 ms with the
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
# Colours of series that are not operations (ops use core.palette only).
SERIES = {
    "fi": "#b8b8b8", "fi_ewma": "#252525", "threshold": "#e6550d", "arch": "#3182bd",
    "ratio": "#756bb1", "train": "#7f7f7f", "val": "#d95f02", "epoch": "#1b9e77",
    "gap": "#636363", "primal": "#d95f02", "dual": "#7570b3", "size": "#3182bd",
    "penalty": ["#1b9e77", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"],
}


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


def _sample(x: np.ndarray, y: np.ndarray, max_points: int, keep: np.ndarray | None = None
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


def _values(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the non-null entries of one step column."""
    if col not in df or df.empty:
        return np.zeros(0, np.int64), np.zeros(0)
    v = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(v)
    return df["step"].to_numpy()[ok], v[ok]


def _y_range(view: RunView) -> list[float]:
    act = view.activation
    lo, hi = act.y_range if act is not None else (0.0, 1.0)
    pad = 0.03 * (hi - lo)
    return [lo - pad, hi + pad]


def _vlines(xs: Sequence[float], y0: float, y1: float) -> tuple[list, list]:
    """One None-separated trace of vertical segments (cheaper than one shape per line)."""
    x, y = [], []
    for s in xs:
        x += [s, s, None]
        y += [y0, y1, None]
    return x, y


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
                xd, yd = _sample(x[x >= d], y[x >= d], max_points)
                dead_x += [*xd.tolist(), None]
                dead_y += [*yd.tolist(), None]
                at = min(int(np.searchsorted(x, d)), len(y) - 1)
                mark_x.append(d)
                mark_y.append(float(y[at]))
                mark_op.append(op)
            else:
                xa, ya = x, y
            if len(xa):
                xa, ya = _sample(xa, ya, max_points)
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


# ---- schedule -------------------------------------------------------------------------------
def schedule_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """FI, FI_ewma and the threshold (log scale) with a marker at each architecture step (all
    of them up to MAX_MARKERS), and
    the running (cumulative) ratio of architecture to weight steps on the right axis, with the
    informed schedule's target 1/(period+1). The fixed schedule has FI and the markers."""
    title = "Schedule: gradient signal and architecture steps"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    step = df["step"].to_numpy()
    arch = df["arch_step"].to_numpy() == 1
    data: list[dict[str, Any]] = []
    for col, name, line in (("fi", "FI", dict(color=SERIES["fi"], width=1)),
                            ("fi_ewma", "FI ewma", dict(color=SERIES["fi_ewma"], width=1.8)),
                            ("threshold", "threshold", dict(color=SERIES["threshold"], width=1.8,
                                                            dash="dash"))):
        s, v = _values(df, col)
        v = np.where(v > 0, v, np.nan)  # log axis
        if len(s) and np.isfinite(v).any():
            xs, ys = _sample(s, v, max_points)
            data.append(dict(type="scatter", x=xs, y=ys, mode="lines", name=name, line=line))
    # Markers sit on FI ewma (informed) or on FI (fixed, which has no moving average).
    base = df["fi_ewma"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(base).any():
        base = df["fi"].to_numpy(dtype=np.float64, na_value=np.nan)
    ai = np.flatnonzero(arch)
    if len(ai) > MAX_MARKERS:  # fixed(1) on a long run: every iteration is one; thin evenly
        ai = ai[np.linspace(0, len(ai) - 1, MAX_MARKERS).round().astype(int)]
    if len(ai):
        data.append(dict(type="scatter", x=step[ai], y=base[ai], mode="markers",
                         name=f"architecture step ({int(arch.sum())})",
                         # Smaller and plainer as they crowd, so a long run stays readable.
                         marker=dict(symbol="triangle-up", color=SERIES["arch"],
                                     size=9 if len(ai) <= 100 else 6 if len(ai) <= 500 else 4,
                                     line=dict(width=1 if len(ai) <= 100 else 0, color="white")),
                         hovertemplate="architecture step at %{x}<extra></extra>"))
    ratio = np.cumsum(arch) / np.arange(1, len(arch) + 1)
    xs, ys = _sample(step, ratio, max_points)
    data.append(dict(type="scatter", x=xs, y=ys, mode="lines", name="arch / weight steps",
                     yaxis="y2", line=dict(color=SERIES["ratio"], width=1.5)))
    period = view.config.get("period")
    if view.config.get("schedule") == "informed" and period:
        target = 1.0 / (int(period) + 1)
        data.append(dict(type="scatter", x=[int(step[0]), int(step[-1])], y=[target, target],
                         mode="lines", name=f"target 1/{int(period) + 1}", yaxis="y2",
                         hoverinfo="skip", line=dict(color=SERIES["ratio"], width=1, dash="dot")))
    layout = _base_layout(
        title, 340, margin=dict(MARGIN, t=80, r=65), xaxis=dict(title=dict(text="iteration")),
        yaxis=dict(type="log", title=dict(text="FI"), **_log_ticks(df)),
        yaxis2=dict(overlaying="y", side="right", range=[0, max(0.05, float(ratio.max()) * 1.1)],
                    tickmode="auto", nticks=6, tickformat=".2f", showgrid=False,
                    title=dict(text="arch / weight steps")))
    return _figure(data, layout)


def _log_ticks(df: pd.DataFrame) -> dict[str, Any]:
    """Ticks at 1, 2, 5 x 10^k when the FI range spans under two decades (plotly would label
    every minor tick), the default otherwise."""
    v = df[["fi", "fi_ewma", "threshold"]].to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and np.log10(v.max() / v.min()) < 2:
        return dict(dtick="D2")
    return {}


# ---- regularizer ----------------------------------------------------------------------------
_NOT_PENALTIES = ("val_ce", "admm_primal", "admm_dual")


def regularizer_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """Each penalty term (the ``penalty`` column and any other ``terms`` key) and the
    discretization gap ||A - D(A)|| over iterations; for ADMM a third row with the primal
    residual ||A - Z|| and ||U|| at each update, and a dotted line at each update."""
    reg = str(view.config.get("regularizer", "penalty"))
    title = f"Regularizer: {reg}"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    admm = view.admm
    has_admm = reg == "admm" or len(admm) > 0
    rows = 3 if has_admm else 2
    titles = ("penalty terms (architecture steps)", "discretization gap ||A - D(A)||",
              "ADMM residuals (at updates)")[:rows]
    layout, axes = _grid(rows, 1, titles=titles, vspace=0.09)
    data: list[dict[str, Any]] = []
    s, v = _values(df, "penalty")
    if len(s):
        xs, ys = _sample(s, v, max_points)
        data.append(_on(dict(type="scatter", x=xs, y=ys, mode="lines+markers" if len(xs) < 200 else "lines",
                             name=f"{reg} penalty", marker=dict(size=4),
                             line=dict(color=SERIES["penalty"][0], width=1.5)), axes[(1, 1)]))
    extra = [c for c in view.terms.columns if c not in ("step", reg, *_NOT_PENALTIES)]
    for n, key in enumerate(extra):
        s, v = _values(view.terms, key)
        if len(s):
            xs, ys = _sample(s, v, max_points)
            data.append(_on(dict(type="scatter", x=xs, y=ys, mode="lines", name=key,
                                 line=dict(color=SERIES["penalty"][(n + 1) % 5], width=1.2)), axes[(1, 1)]))
    s, v = _values(df, "gap")
    if len(s):
        xs, ys = _sample(s, v, max_points)
        data.append(_on(dict(type="scatter", x=xs, y=ys, mode="lines", name="gap ||A - D(A)||",
                             line=dict(color=SERIES["gap"], width=1.5, shape="hv")), axes[(2, 1)]))
    if has_admm and len(admm):
        st = admm["step"].to_numpy()
        for col, name, color in (("admm_primal", "primal ||A - Z||", SERIES["primal"]),
                                 ("admm_dual", "||U||", SERIES["dual"])):
            data.append(_on(dict(type="scatter", x=st, y=admm[col].to_numpy(), mode="lines+markers",
                                 name=name, marker=dict(size=6 if len(st) <= 50 else 3),
                                 line=dict(color=color, width=1.5)),
                            axes[(3, 1)]))
        top = np.nanmax(admm[["admm_primal", "admm_dual"]].to_numpy())
        top = float(top) * 1.05 if np.isfinite(top) and top > 0 else 1.0
        vx, vy = _vlines(st.tolist(), 0.0, top)
        data.append(_on(dict(type="scatter", x=vx, y=vy, mode="lines", name=f"ADMM update ({len(st)})",
                             line=dict(color="#bdbdbd", width=1, dash="dot"), hoverinfo="skip"),
                        axes[(3, 1)]))
    elif has_admm:
        every = view.config.get("admm_every")
        xa, ya = axes[(3, 1)]
        layout.setdefault("annotations", []).append(dict(
            text="no ADMM update yet" + (f" (every {every} architecture steps)" if every else ""),
            showarrow=False, xref=f"{xa} domain", yref=f"{ya} domain", x=0.5, y=0.5,
            font=dict(color="#888888")))
    layout[axes[(rows, 1)][0].replace("x", "xaxis")]["title"] = dict(text="iteration")
    layout.update(_base_layout(title, 190 * rows + 100))
    return _figure(data, layout)


# ---- size, losses -----------------------------------------------------------------------------
def size_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """Parameters of the derived architecture's evaluation network over iterations (a step
    function: it changes when the genotype does), a marker at each change."""
    title = "Architecture size (evaluation network)"
    g = view.genotypes
    if g.empty or not g["size"].notna().any():
        return waiting_figure(title, 260)
    g = g[g["size"].notna()]
    x = g["step"].to_numpy()
    y = g["size"].to_numpy(dtype=np.float64)
    xl, yl = x, y
    if view.last_step > x[-1]:
        xl, yl = np.append(x, view.last_step), np.append(y, y[-1])
    xl, yl = _sample(xl, yl, max_points)
    data = [dict(type="scatter", x=xl, y=yl, mode="lines", name="parameters", hoverinfo="skip",
                 line=dict(shape="hv", color=SERIES["size"], width=2))]
    xm, ym = _sample(x, y, max_points)
    data.append(dict(type="scatter", x=xm, y=ym, mode="markers", name="genotype changed",
                     marker=dict(size=6, color=SERIES["size"]),
                     hovertemplate="iteration %{x}: %{y:,.0f} parameters<extra></extra>"))
    layout = _base_layout(title, 260, hovermode="closest", xaxis=dict(title=dict(text="iteration")),
                          yaxis=dict(tickformat="~s", title=dict(text="parameters")))
    return _figure(data, layout)


def losses_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """Train loss (every iteration, raw and smoothed), validation loss on architecture steps
    and at epoch ends (from the epoch_end events); accuracies on the second row."""
    title = "Losses and accuracies"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    layout, axes = _grid(2, 1, titles=("loss", "accuracy"), vspace=0.08)
    ep = view.epochs
    data: list[dict[str, Any]] = []
    for row, metric in ((1, "loss"), (2, "acc")):
        ax = axes[(row, 1)]
        s, v = _values(df, f"train_{metric}")
        if len(s):
            xs, ys = _sample(s, v, max_points)
            data.append(_on(dict(type="scatter", x=xs, y=ys, mode="lines", name="train (batch)",
                                 legendgroup="train", showlegend=row == 1, opacity=0.35,
                                 line=dict(color=SERIES["train"], width=1)), ax))
            smooth = pd.Series(v).ewm(alpha=0.05 if len(v) > 200 else 0.2).mean().to_numpy()
            xs, ys = _sample(s, smooth, max_points)
            data.append(_on(dict(type="scatter", x=xs, y=ys, mode="lines", name="train (smoothed)",
                                 legendgroup="train_s", showlegend=row == 1,
                                 line=dict(color=SERIES["train"], width=2)), ax))
        s, v = _values(df, f"val_{metric}")
        if len(s):
            xs, ys = _sample(s, v, max_points)
            data.append(_on(dict(type="scatter", x=xs, y=ys, name="validation (arch batch)",
                                 mode="lines+markers" if len(xs) < 200 else "lines",
                                 legendgroup="val", showlegend=row == 1, marker=dict(size=4),
                                 line=dict(color=SERIES["val"], width=1.2)), ax))
        if len(ep) and ep[f"val_{metric}"].notna().any():
            e = ep[ep[f"val_{metric}"].notna()]
            data.append(_on(dict(type="scatter", x=e["step"].to_numpy(), y=e[f"val_{metric}"].to_numpy(),
                                 mode="lines+markers", name="validation (epoch end)", legendgroup="epoch",
                                 showlegend=row == 1, line=dict(color=SERIES["epoch"], width=1.5),
                                 marker=dict(symbol="diamond", size=9, color=SERIES["epoch"]),
                                 hovertemplate="epoch end %{x}: %{y:.3f}<extra></extra>"), ax))
    layout[axes[(2, 1)][1].replace("y", "yaxis")]["range"] = [0, 1.02]
    layout[axes[(2, 1)][0].replace("x", "xaxis")]["title"] = dict(text="iteration")
    layout.update(_base_layout(title, 480))
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
    """Every monitor figure of a run, keyed by name (what a monitor page draws per refresh)."""
    out: dict[str, Any] = {}
    for ct in ("normal", "reduce"):
        out[f"grid_{ct}"] = op_weights_grid(view, ct)
        out[f"heatmap_{ct}"] = op_weights_heatmap(view, ct)
        out[f"dot_{ct}"] = cell_dot(view, ct)
    out["schedule"] = schedule_figure(view)
    out["regularizer"] = regularizer_figure(view)
    out["size"] = size_figure(view)
    out["losses"] = losses_figure(view)
    out["changes"] = genotype_changes(view)
    return out
