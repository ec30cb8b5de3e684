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

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.discretize import edge_rows, select_edges
from core.genotype import Genotype
from core.live import RunView
from core.palette import PRUNED_COLOR, op_color

MAX_POINTS = 1500
# Each grid panel is a few hundred pixels wide: fewer points per line keep the page light.
GRID_MAX_POINTS = 400
WAITING = "waiting for the first iterations"
TEMPLATE = "plotly_white"
MARGIN = dict(l=50, r=20, t=40, b=40)
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


def _layout(fig: go.Figure, title: str | None, height: int, **kw: Any) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.01, font=dict(size=14)) if title else None,
                      height=height, margin=MARGIN, hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, font=dict(size=11)),
                      **kw)
    return fig


def waiting_figure(title: str | None = None, height: int = 300, message: str = WAITING) -> go.Figure:
    """An empty chart that says why it is empty (a run with no rows yet)."""
    fig = go.Figure()
    _layout(fig, title, height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="#888888"))
    return fig


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
                    height: int | None = None) -> go.Figure:
    """Per-edge op weights over iterations: one panel per edge, rows = nodes, columns = inputs
    (c_{k-2}, c_{k-1}, node 0, ...), lower-triangular. One line per op in its palette colour;
    a pruned op turns grey and dotted from the step it died, with an x there."""
    title = f"{cell_type.capitalize()} cell: operation weights"
    nodes = view.nodes
    steps, w = view.alpha_steps.get(cell_type), view.alphas.get(cell_type)
    if steps is None or len(steps) == 0 or w is None or w.ndim != 3:
        return waiting_figure(title, 300)
    prims = view.primitives
    if w.shape[2] != len(prims):  # a config the activation registry does not know any more
        prims = prims[-w.shape[2]:] if w.shape[2] < len(prims) else prims + [
            f"op{k}" for k in range(len(prims), w.shape[2])]
    cols = nodes + 1
    specs = [[{} if j <= i + 1 else None for j in range(cols)] for i in range(nodes)]
    titles = [edge_label(i, j) if j <= i + 1 else "" for i in range(nodes) for j in range(cols)]
    fig = make_subplots(rows=nodes, cols=cols, specs=specs, subplot_titles=titles,
                        shared_xaxes=True, horizontal_spacing=0.03, vertical_spacing=0.07)
    for a in fig.layout.annotations:
        a.font = dict(size=10, color="#555555")

    x = steps.astype(np.int64)
    last = view.last_step
    extend = last > x[-1]
    if extend:  # the weights hold until the next architecture step: draw them up to now
        x = np.append(x, last)
    pruned = view.pruned
    pruned = pruned[pruned["cell_type"] == cell_type] if len(pruned) else pruned
    died = {(int(e), str(o)): int(s) for s, e, o in
            zip(pruned.get("step", []), pruned.get("edge", []), pruned.get("op", []))}
    traces, rows_, cols_ = [], [], []
    shown: set[str] = set()
    pruned_shown = False
    for e, (i, j) in enumerate(edge_index(nodes)):
        if e >= w.shape[1]:
            break
        dead_x, dead_y, mark_x, mark_y, mark_op = [], [], [], [], []
        for k, op in enumerate(prims):
            y = w[:, e, k]
            if extend:
                y = np.append(y, y[-1])
            d = died.get((e, op))
            if d is not None:
                alive = x <= d
                # Up to and including the death step in colour, then grey from there on.
                xa, ya = x[alive], y[alive]
                xd, yd = _sample(x[x >= d], y[x >= d], max_points)
                dead_x += [*xd.tolist(), None]
                dead_y += [*yd.tolist(), None]
                at = np.searchsorted(x, d)
                mark_x.append(d)
                mark_y.append(float(y[min(at, len(y) - 1)]))
                mark_op.append(op)
            else:
                xa, ya = x, y
            if len(xa):
                xa, ya = _sample(xa, ya, max_points)
                traces.append(go.Scatter(
                    x=xa, y=ya.astype(np.float32), mode="lines", line=dict(color=op_color(op), width=1.5, shape="hv"),
                    name=op, legendgroup=op, showlegend=op not in shown,
                    hovertemplate=f"{op}: %{{y:.3f}}<extra>{edge_label(i, j)}</extra>"))
                shown.add(op)
                rows_.append(i + 1)
                cols_.append(j + 1)
        if mark_x:
            traces.append(go.Scatter(
                x=dead_x, y=dead_y, mode="lines", line=dict(color=PRUNED_COLOR, width=1.5, dash="dot",
                                                            shape="hv"),
                name="pruned", legendgroup="pruned", showlegend=not pruned_shown, hoverinfo="skip"))
            traces.append(go.Scatter(
                x=mark_x, y=mark_y, mode="markers", marker=dict(symbol="x", size=7, color=PRUNED_COLOR,
                                                                line=dict(width=1, color="#7f7f7f")),
                name="pruned at", legendgroup="pruned", showlegend=False,
                text=mark_op,
                hovertemplate="%{text} pruned at step %{x}<extra></extra>"))
            rows_ += [i + 1, i + 1]
            cols_ += [j + 1, j + 1]
            pruned_shown = True
    fig.add_traces(traces, rows=rows_, cols=cols_)
    fig.update_yaxes(range=_y_range(view), tickfont=dict(size=9), nticks=4)
    fig.update_xaxes(tickfont=dict(size=9), nticks=4)
    _layout(fig, title, height or 150 * nodes + 90)
    fig.update_layout(hovermode="closest", margin=dict(l=40, r=10, t=80, b=30))
    return fig


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
    the ops the genotype keeps are outlined."""
    title = f"{cell_type.capitalize()} cell: weights"
    found = _alpha_row(view, cell_type, step)
    if found is None:
        return waiting_figure(title, 300)
    at, w = found
    prims = view.primitives if w.shape[1] == len(view.primitives) else [f"op{k}" for k in range(w.shape[1])]
    labels = [edge_label(i, j) for i, j in edge_index(view.nodes)][: w.shape[0]]
    lo, hi = view.activation.y_range if view.activation is not None else (0.0, 1.0)
    fig = go.Figure(go.Heatmap(
        z=w, x=prims, y=labels, colorscale="Blues", zmin=lo, zmax=hi, texttemplate="%{z:.2f}",
        textfont=dict(size=10), hovertemplate="%{y}<br>%{x}: %{z:.4f}<extra></extra>",
        colorbar=dict(thickness=10, len=0.8)))
    try:
        kept = select_edges(w, prims)
    except ValueError:
        kept = []
    if kept:
        fig.add_trace(go.Scatter(
            x=[prims[k] for _, k, _ in kept], y=[labels[e] for e, _, _ in kept], mode="markers",
            marker=dict(symbol="square-open", size=26, color="#d62728", line=dict(width=2)),
            name="kept in the genotype", hoverinfo="skip"))
    if len(view.pruned):
        p = view.pruned[(view.pruned["cell_type"] == cell_type) & (view.pruned["step"] <= at)]
        p = p[p["op"].isin(prims) & (p["edge"] < len(labels))]
        if len(p):
            fig.add_trace(go.Scatter(
                x=p["op"].tolist(), y=[labels[e] for e in p["edge"]], mode="markers",
                marker=dict(symbol="x-thin", size=10, line=dict(width=1.5, color="#9e9e9e")),
                name="pruned", hoverinfo="skip"))
    _layout(fig, f"{title} at iteration {at}", 28 * len(labels) + 140)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_xaxes(side="bottom", tickangle=-30, tickfont=dict(size=10), showgrid=False)
    fig.update_layout(hovermode="closest")
    return fig


# ---- schedule -------------------------------------------------------------------------------
def schedule_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """FI, FI_ewma and the threshold (log scale) with a marker at each architecture step, and
    the running ratio of architecture to weight steps on the right axis."""
    title = "Schedule: gradient signal and architecture steps"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    step = df["step"].to_numpy()
    arch = df["arch_step"].to_numpy() == 1
    for col, name, style in (("fi", "FI", dict(color=SERIES["fi"], width=1)),
                             ("fi_ewma", "FI ewma", dict(color=SERIES["fi_ewma"], width=1.8)),
                             ("threshold", "threshold", dict(color=SERIES["threshold"], width=1.8,
                                                             dash="dash"))):
        s, v = _values(df, col)
        v = np.where(v > 0, v, np.nan)  # log axis
        if len(s) and np.isfinite(v).any():
            xs, ys = _sample(s, v, max_points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=style), secondary_y=False)
    # Markers sit on FI ewma (informed) or on FI (fixed, which has no moving average).
    base = df["fi_ewma"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(base).any():
        base = df["fi"].to_numpy(dtype=np.float64, na_value=np.nan)
    ai = np.flatnonzero(arch)
    if len(ai) > max_points:  # fixed(1): every iteration is one; thin them evenly
        ai = ai[np.linspace(0, len(ai) - 1, max_points).round().astype(int)]
    if len(ai):
        fig.add_trace(go.Scatter(
            x=step[ai], y=base[ai], mode="markers", name=f"architecture step ({int(arch.sum())})",
            marker=dict(symbol="triangle-up", size=7, color=SERIES["arch"]),
            hovertemplate="architecture step at %{x}<extra></extra>"), secondary_y=False)
    ratio = np.cumsum(arch) / np.arange(1, len(arch) + 1)
    xs, ys = _sample(step, ratio, max_points)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="arch / weight steps",
                             line=dict(color=SERIES["ratio"], width=1.5)), secondary_y=True)
    period = view.config.get("period")
    if view.config.get("schedule") == "informed" and period:
        target = 1.0 / (int(period) + 1)
        fig.add_trace(go.Scatter(x=[step[0], step[-1]], y=[target, target], mode="lines",
                                 name=f"target 1/{int(period) + 1}", hoverinfo="skip",
                                 line=dict(color=SERIES["ratio"], width=1, dash="dot")), secondary_y=True)
    _layout(fig, title, 340)
    fig.update_yaxes(type="log", title_text="FI", secondary_y=False)
    fig.update_yaxes(title_text="arch / weight steps", rangemode="tozero", showgrid=False,
                     secondary_y=True)
    fig.update_xaxes(title_text="iteration")
    return fig


# ---- regularizer ----------------------------------------------------------------------------
_NOT_PENALTIES = ("val_ce", "admm_primal", "admm_dual")


def regularizer_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """Each penalty term and the discretization gap ||A - D(A)|| over iterations; for ADMM the
    primal residual ||A - Z|| and ||U|| at each update, with the updates marked."""
    reg = str(view.config.get("regularizer", "penalty"))
    title = f"Regularizer: {reg}"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    admm = view.admm
    has_admm = reg == "admm" or len(admm) > 0
    rows = 3 if has_admm else 2
    subtitles = ["penalty terms (architecture steps)", "discretization gap ||A - D(A)||"]
    if has_admm:
        subtitles.append("ADMM residuals (updates)")
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.09,
                        subplot_titles=subtitles)
    for a in fig.layout.annotations:
        a.font = dict(size=11, color="#555555")
    s, v = _values(df, "penalty")
    if len(s):
        xs, ys = _sample(s, v, max_points)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 200 else "lines",
                                 name=f"{reg} penalty", marker=dict(size=4),
                                 line=dict(color=SERIES["penalty"][0], width=1.5)), row=1, col=1)
    extra = [c for c in view.terms.columns if c not in ("step", reg, *_NOT_PENALTIES)]
    for n, key in enumerate(extra):
        s, v = _values(view.terms, key)
        if len(s):
            xs, ys = _sample(s, v, max_points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=key,
                                     line=dict(color=SERIES["penalty"][(n + 1) % 5], width=1.2)),
                          row=1, col=1)
    s, v = _values(df, "gap")
    if len(s):
        xs, ys = _sample(s, v, max_points)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="gap ||A - D(A)||",
                                 line=dict(color=SERIES["gap"], width=1.5, shape="hv")), row=2, col=1)
    if has_admm and len(admm):
        st = admm["step"].to_numpy()
        for col, name, color in (("admm_primal", "primal ||A - Z||", SERIES["primal"]),
                                 ("admm_dual", "||U||", SERIES["dual"])):
            fig.add_trace(go.Scatter(x=st, y=admm[col].to_numpy(), mode="lines+markers", name=name,
                                     marker=dict(size=6), line=dict(color=color, width=1.5)), row=3, col=1)
        top = float(np.nanmax(admm[["admm_primal", "admm_dual"]].to_numpy())) if len(admm) else 1.0
        vx, vy = _vlines(st.tolist(), 0.0, top * 1.05 if np.isfinite(top) and top > 0 else 1.0)
        fig.add_trace(go.Scatter(x=vx, y=vy, mode="lines", name=f"ADMM update ({len(st)})",
                                 line=dict(color="#bdbdbd", width=1, dash="dot"), hoverinfo="skip"),
                      row=3, col=1)
    elif has_admm:
        every = view.config.get("admm_every")
        fig.add_annotation(text=f"no ADMM update yet (every {every} architecture steps)" if every
                           else "no ADMM update yet", showarrow=False, xref="x3 domain",
                           yref="y3 domain", x=0.5, y=0.5, font=dict(color="#888888"))
    _layout(fig, title, 190 * rows + 90)
    fig.update_xaxes(title_text="iteration", row=rows, col=1)
    return fig


# ---- size, losses -----------------------------------------------------------------------------
def size_figure(view: RunView) -> go.Figure:
    """Parameters of the derived architecture's evaluation network over iterations (a step
    function: it changes when the genotype does)."""
    title = "Architecture size (evaluation network)"
    g = view.genotypes
    if g.empty or not g["size"].notna().any():
        return waiting_figure(title, 260)
    g = g[g["size"].notna()]
    x = g["step"].to_numpy()
    y = g["size"].to_numpy(dtype=np.float64)
    fig = go.Figure()
    xl, yl = x, y
    if view.last_step > x[-1]:
        xl, yl = np.append(x, view.last_step), np.append(y, y[-1])
    if len(xl) > MAX_POINTS:
        xl, yl = _sample(xl, yl, MAX_POINTS)
    fig.add_trace(go.Scatter(x=xl, y=yl, mode="lines", name="parameters", hoverinfo="skip",
                             line=dict(shape="hv", color=SERIES["size"], width=2)))
    if len(x) <= MAX_POINTS:
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="genotype changed",
                                 marker=dict(size=6, color=SERIES["size"]),
                                 hovertemplate="iteration %{x}: %{y:,.0f} parameters<extra></extra>"))
    _layout(fig, title, 260)
    fig.update_yaxes(tickformat="~s", title_text="parameters")
    fig.update_xaxes(title_text="iteration")
    fig.update_layout(hovermode="closest")
    return fig


def losses_figure(view: RunView, max_points: int = MAX_POINTS) -> go.Figure:
    """Train loss (every iteration, smoothed), validation loss on architecture steps and at
    epoch ends; accuracies on the second row."""
    title = "Losses and accuracies"
    df = view.steps
    if df.empty:
        return waiting_figure(title)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["loss", "accuracy"])
    for a in fig.layout.annotations:
        a.font = dict(size=11, color="#555555")
    ep = view.epochs
    for row, metric in ((1, "loss"), (2, "acc")):
        s, v = _values(df, f"train_{metric}")
        if len(s):
            xs, ys = _sample(s, v, max_points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="train (batch)", legendgroup="train",
                                     showlegend=row == 1, opacity=0.35,
                                     line=dict(color=SERIES["train"], width=1)), row=row, col=1)
            smooth = pd.Series(v).ewm(alpha=0.05 if len(v) > 200 else 0.2).mean().to_numpy()
            xs, ys = _sample(s, smooth, max_points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="train (smoothed)",
                                     legendgroup="train_s", showlegend=row == 1,
                                     line=dict(color=SERIES["train"], width=2)), row=row, col=1)
        s, v = _values(df, f"val_{metric}")
        if len(s):
            xs, ys = _sample(s, v, max_points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 200 else "lines",
                                     name="validation (arch batch)", legendgroup="val",
                                     showlegend=row == 1, marker=dict(size=4),
                                     line=dict(color=SERIES["val"], width=1.2)), row=row, col=1)
        if len(ep) and ep[f"val_{metric}"].notna().any():
            e = ep[ep[f"val_{metric}"].notna()]
            fig.add_trace(go.Scatter(x=e["step"], y=e[f"val_{metric}"], mode="lines+markers",
                                     name="validation (epoch end)", legendgroup="epoch",
                                     showlegend=row == 1,
                                     marker=dict(symbol="diamond", size=9, color=SERIES["epoch"]),
                                     line=dict(color=SERIES["epoch"], width=1.5),
                                     hovertemplate="epoch end %{x}: %{y:.3f}<extra></extra>"),
                          row=row, col=1)
    fig.update_yaxes(range=[0, 1.02], row=2, col=1)
    _layout(fig, title, 480)
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    return fig


# ---- genotype -------------------------------------------------------------------------------
def _node_pairs(g: Genotype, cell_type: str) -> list[list[tuple[str, int]]]:
    pairs = list(g.cell(cell_type))
    return [pairs[k:k + 2] for k in range(0, len(pairs), 2)]


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
                    for r, a in zip(removed, added):
                        rows.append({"step": int(step), "cell": ct, "node": node,
                                     "change": f"{ct} node {node}: {r[0]} <- {r[1]} replaced by "
                                               f"{a[0]} <- {a[1]}"})
                    for r in removed[len(added):]:
                        rows.append({"step": int(step), "cell": ct, "node": node,
                                     "change": f"{ct} node {node}: {r[0]} <- {r[1]} dropped"})
                    for a in added[len(removed):]:
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
