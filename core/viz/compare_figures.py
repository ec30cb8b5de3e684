"""Plotly figures of a comparison across methods and seeds (pure functions over the data of
``core.viz.compare``): seed-averaged curves with a mean +/- std band, the run x run genotype
agreement heatmap, and per-method bars with error bars.

Each method keeps one colour in every figure of a page: ``method_colors`` hands them out from
``METHOD_PALETTE`` (Okabe-Ito, safe for colour-blind readers) in the order the methods first
appear. Empty data gives a figure with an annotation that says so, never an error.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.viz.figures import AXIS_LOOK, LOOK, MARGIN, waiting_figure

# One colour per method, in order of appearance (Okabe & Ito 2008).
METHOD_PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                   "#56B4E9", "#000000", "#F0E442")
BAND_ALPHA = 0.18
NO_DATA = "no data yet"
MAX_LABELLED = 10  # runs up to which the agreement heatmap writes its values in the cells
# White to dark blue, as the monitor's weight heatmaps (0 = nothing shared, 1 = same cell).
_AGREEMENT_SCALE = [[0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"],
                    [1.0, "#08306b"]]


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """{method: colour}; the i-th distinct method gets the i-th palette colour (cycled)."""
    out: dict[str, str] = {}
    for m in methods:
        if m not in out:
            out[m] = METHOD_PALETTE[len(out) % len(METHOD_PALETTE)]
    return out


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, title: str | None, height: int, legend: bool = True) -> go.Figure:
    """Title on the first line, a horizontal legend on the second, as core.viz.figures does."""
    top = 80 if legend and title else 50
    fig.update_layout({**LOOK, "template": None})  # None: no template at all (JSON {})
    for axis in [*fig.select_xaxes(), *fig.select_yaxes()]:
        # not redrawn every second like the monitor's: let Plotly fit the margins to the labels
        axis.update({k: v for k, v in {**AXIS_LOOK, "automargin": True}.items() if axis[k] is None})
    fig.update_layout(height=height, margin=dict(MARGIN, t=top),
                      showlegend=legend, legend=dict(orientation="h", yref="container",
                                                     yanchor="top", y=1 - 30 / height, x=0,
                                                     font=dict(size=11)))
    if title:
        fig.update_layout(title=dict(text=title, x=0.01, xanchor="left", yref="container",
                                     yanchor="top", y=1 - 8 / height, font=dict(size=14)))
    return fig


def curves_figure(curves: Mapping[str, pd.DataFrame], title: str | None = None,
                  y_title: str | None = None, log_y: bool = False,
                  colors: Mapping[str, str] | None = None, height: int = 340) -> go.Figure:
    """Per method, the mean over seeds as a line and mean +/- std as a shaded band, on a shared
    iteration axis. ``curves``: {method: DataFrame(step, mean, std, n)} (core.viz.compare.method_curves)."""
    colors = {**method_colors(list(curves)), **(colors or {})}
    fig = go.Figure()
    for method, df in curves.items():
        d = df[np.isfinite(df["mean"].to_numpy(dtype=float))] if len(df) else df
        if d.empty:
            continue
        color = colors[method]
        x = d["step"].to_numpy()
        mean = d["mean"].to_numpy(dtype=float)
        std = np.nan_to_num(d["std"].to_numpy(dtype=float))
        lo, hi = mean - std, mean + std
        if log_y:  # a band reaching 0 or below has no place on a log axis
            lo = np.where(lo > 0, lo, mean)
        n = d["n"].to_numpy() if "n" in d else np.ones(len(d), dtype=int)
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                                 mode="lines", fill="toself", fillcolor=_rgba(color, BAND_ALPHA),
                                 line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 legendgroup=method, name=f"{method} ± std"))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines" if len(x) > 1 else "markers",
                                 line=dict(color=color, width=2), marker=dict(color=color, size=8),
                                 name=f"{method} (n={int(n.max())})", legendgroup=method,
                                 customdata=np.stack([std, n], axis=1),
                                 hovertemplate="%{y:.4g} ± %{customdata[0]:.2g} (%{customdata[1]} "
                                               "seeds)<extra>" + method + "</extra>"))
    if not fig.data:
        return waiting_figure(title, height, NO_DATA)
    _layout(fig, title, height)
    fig.update_layout(hovermode="x unified")
    fig.update_xaxes(title_text="iteration")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    return fig


def agreement_heatmap(matrix: pd.DataFrame, title: str | None = "Genotype agreement (Jaccard)"
                      ) -> go.Figure:
    """Run x run agreement (0..1) with the value written in each cell; the diagonal is 1."""
    n = len(matrix)
    height = int(min(900, max(320, 110 + 34 * n)))
    if matrix.empty:
        return waiting_figure(title, height, "no genotypes to compare yet")
    z = matrix.to_numpy(dtype=float)
    labels = [str(c) for c in matrix.columns]
    # Values are written in the cells while they fit; beyond that the hover tells them.
    text = dict(text=np.round(z, 2), texttemplate="%{text:.2f}", textfont=dict(size=11)) \
        if n <= MAX_LABELLED else {}
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=[str(i) for i in matrix.index], zmin=0.0, zmax=1.0,
        colorscale=_AGREEMENT_SCALE, xgap=1, ygap=1, **text,
        colorbar=dict(title=dict(text="agreement", side="right"), thickness=12),
        hovertemplate="%{y}<br>%{x}<br>agreement %{z:.3f}<extra></extra>"))
    _layout(fig, title, height, legend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=50, b=10))
    tick = dict(size=11 if n <= MAX_LABELLED else 9)
    fig.update_xaxes(side="bottom", tickangle=-35 if n <= MAX_LABELLED else -60, automargin=True,
                     tickfont=tick)
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont=tick)
    return fig


def method_bar(table: pd.DataFrame, column: str, err_column: str | None = None,
               title: str | None = None, y_title: str | None = None,
               colors: Mapping[str, str] | None = None, percent: bool = False,
               height: int = 300, empty_message: str = NO_DATA) -> go.Figure:
    """One bar per method (``table`` from core.viz.compare.method_table) with +/- ``err_column``
    error bars, e.g. test accuracy or architecture size over seeds."""
    if table is None or table.empty or column not in table or table[column].isna().all():
        return waiting_figure(title, height, empty_message)
    t = table[table[column].notna()]
    methods = t["method"].astype(str).tolist()
    colors = {**method_colors(methods), **(colors or {})}
    y = t[column].to_numpy(dtype=float)
    err = (np.nan_to_num(t[err_column].to_numpy(dtype=float))
           if err_column and err_column in t else np.zeros_like(y))
    scale = 100.0 if percent else 1.0
    text = [f"{v * scale:.1f}%" if percent else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in y]
    fig = go.Figure(go.Bar(
        # Values inside the bars: outside they would collide with the error bars.
        x=methods, y=y * scale, text=text, textposition="inside", insidetextanchor="middle",
        textfont=dict(color="white", size=12), textangle=0,
        marker_color=[colors[m] for m in methods], customdata=err * scale,
        error_y=dict(type="data", array=err * scale, visible=True, color="#444444", thickness=1.2,
                     width=6),
        hovertemplate="%{x}: %{y:.4g} ± %{customdata:.2g}<extra></extra>"))
    _layout(fig, title, height, legend=False)
    top = float(np.nanmax((y + err) * scale)) if len(y) else 1.0
    fig.update_yaxes(title_text=y_title, rangemode="tozero",
                     range=[0, min(100.0, top * 1.2) if percent else top * 1.2] if top > 0 else None,
                     ticksuffix="%" if percent else None)
    fig.update_layout(bargap=0.45)
    return fig
