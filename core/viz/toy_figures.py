"""Plotly figures of the Learn page's toys (``core.viz.toys``), in the op colours of the rest
of the app. Each takes a toy's trajectory and the step to show; axes span the whole
trajectory so that Play and the scrub slider move the data, never the axes."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.engine.activations import ACTIVATIONS
from core.engine.discretize import edge_rows
from core.engine.genotype import Genotype
from core.viz.figures import apply_look
from core.viz.palette import PRUNED_COLOR, op_color
from core.viz.toys import AlphaRun, CellChoice, PullTrace, ScheduleTrace, edge_labels

ACTIVATION_TITLES = {
    "softmax": "<b>softmax</b><br>weights share 1: ops compete",
    "sigmoid": "<b>sigmoid</b><br>each weight on its own",
    "crb": "<b>CRB</b><br>clamped to [0, 1]; 0 = pruned",
    "gumbel": "<b>Gumbel-softmax</b><br>softmax of the choice odds",
}


def _fig(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    # Built without Plotly's per-trace validation (milliseconds per trace, and a toy redraws
    # several times a second while it plays).
    apply_look(layout)
    try:
        return go.Figure(data=data, layout=layout, _validate=False)
    except TypeError:
        return go.Figure(data=data, layout=layout)


def _domains(n: int, gap: float = 0.06) -> list[list[float]]:
    width = (1.0 - gap * (n - 1)) / n
    return [[i * (width + gap), i * (width + gap) + width] for i in range(n)]


def _title(text: str, height: int) -> dict[str, Any]:
    return dict(text=text, x=0.01, xanchor="left", yref="container", yanchor="top",
                y=1 - 8 / height, font=dict(size=14))


# ---- 1 ----------------------------------------------------------------------------------------
def alpha_figure(runs: dict[str, AlphaRun], step: int, height: int = 520) -> go.Figure:
    """Per activation, a column: the edge's weights at ``step`` as bars (pruned ops grey, with
    the step they went), and each op's weight over the steps so far as lines."""
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = dict(height=height, showlegend=False, margin=dict(l=50, r=20, t=60, b=90),
                                  annotations=[], bargap=0.15)
    def axes(n: int) -> tuple[str, str, str]:  # (trace x ref, trace y ref, layout suffix)
        return ("x", "y", "") if n == 1 else (f"x{n}", f"y{n}", str(n))

    for i, (dom, (name, run)) in enumerate(zip(_domains(len(runs)), runs.items())):
        bar_x, bar_y, bar_s = axes(2 * i + 1)
        line_x, line_y, line_s = axes(2 * i + 2)
        s = min(step, len(run.weights) - 1)
        live = run.live(s)
        lo, hi = ACTIVATIONS.get(name).y_range
        colors = [op_color(op) if ok else PRUNED_COLOR for op, ok in zip(run.ops, live)]
        text = [f"{w:.2f}" if ok else f"pruned @{run.pruned_at[op]}"
                for op, w, ok in zip(run.ops, run.weights[s], live)]
        data.append(dict(type="bar", x=list(run.ops), y=run.weights[s].tolist(), xaxis=bar_x,
                         yaxis=bar_y, marker=dict(color=colors), text=text, textposition="outside",
                         cliponaxis=False, textfont=dict(size=9),
                         hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
        steps = np.arange(s + 1)
        for k, op in enumerate(run.ops):
            data.append(dict(type="scatter", mode="lines", x=steps.tolist(),
                             y=run.weights[: s + 1, k].tolist(), xaxis=line_x, yaxis=line_y,
                             line=dict(color=op_color(op), width=2), name=op,
                             hovertemplate=f"{op}<br>step %{{x}}: %{{y:.3f}}<extra></extra>"))
        layout[f"xaxis{bar_s}"] = dict(domain=dom, anchor=bar_y, tickangle=-45, tickfont=dict(size=9))
        layout[f"yaxis{bar_s}"] = dict(domain=[0.55, 0.92], anchor=bar_x, range=[lo, hi * 1.15],
                                       title=dict(text="weight" if i == 0 else ""))
        layout[f"xaxis{line_s}"] = dict(domain=dom, anchor=line_y, range=[0, len(run.weights) - 1],
                                        title=dict(text="step"))
        layout[f"yaxis{line_s}"] = dict(domain=[0.0, 0.38], anchor=line_x, range=[lo, hi * 1.02],
                                        title=dict(text="weight over steps" if i == 0 else ""))
        layout["annotations"].append(dict(text=ACTIVATION_TITLES.get(name, name), x=dom[0], y=1.0,
                                          xref="paper", yref="paper", xanchor="left",
                                          yanchor="bottom", showarrow=False, font=dict(size=13)))
    return _fig(data, layout)


# ---- 2 ----------------------------------------------------------------------------------------
def schedule_figure(trace: ScheduleTrace, upto: int, height: int = 460) -> go.Figure:
    """FI, its average and the threshold (log scale) with the architecture steps taken, and
    below, the share of iterations that stepped against its target 1/(period+1)."""
    n = len(trace.fi)
    i = max(1, min(upto, n))
    x = np.arange(i)
    fin = np.concatenate([trace.fi[np.isfinite(trace.fi) & (trace.fi > 0)],
                          trace.threshold[trace.threshold > 0]])
    lo, hi = (np.log10(fin.min()) - 0.1, np.log10(fin.max()) + 0.1) if len(fin) else (-1, 1)
    steps = np.flatnonzero(trace.stepped[:i])
    data = [
        dict(type="scatter", mode="lines", x=x.tolist(), y=trace.fi[:i].tolist(), name="FI",
             line=dict(color="#bdbdbd", width=1)),
        dict(type="scatter", mode="lines", x=x.tolist(), y=trace.fi_ewma[:i].tolist(),
             name="FI average", line=dict(color="#1f77b4", width=2)),
        dict(type="scatter", mode="lines", x=x.tolist(), y=trace.threshold[:i].tolist(),
             name="threshold", line=dict(color="#d62728", width=2, dash="dot")),
        dict(type="scatter", mode="markers", x=steps.tolist(), y=trace.fi_ewma[steps].tolist(),
             name="architecture step", marker=dict(color="#2ca02c", size=7, symbol="triangle-up")),
        dict(type="scatter", mode="lines", x=x.tolist(), y=trace.ratio[:i].tolist(),
             name="steps so far / iterations", xaxis="x2", yaxis="y2",
             line=dict(color="#2ca02c", width=2)),
        dict(type="scatter", mode="lines", x=[0, n - 1], y=[trace.target, trace.target],
             name=f"target 1/(period+1) = {trace.target:.3f}", xaxis="x2", yaxis="y2",
             line=dict(color="#555555", width=1, dash="dash")),
    ]
    layout = dict(
        height=height, margin=dict(l=60, r=20, t=70, b=40), hovermode="x unified",
        legend=dict(orientation="h", yref="container", yanchor="top", y=1 - 10 / height, x=0,
                    font=dict(size=11)),
        xaxis=dict(domain=[0, 1], anchor="y", range=[0, n - 1], showticklabels=False),
        yaxis=dict(domain=[0.38, 1], anchor="x", type="log", range=[lo, hi],
                   title=dict(text="FI (log)")),
        xaxis2=dict(domain=[0, 1], anchor="y2", range=[0, n - 1], matches="x",
                    title=dict(text="iteration")),
        yaxis2=dict(domain=[0, 0.28], anchor="x2", range=[0, max(0.6, 2.2 * trace.target)],
                    title=dict(text="step ratio")))
    return _fig(data, layout)


# ---- 3 ----------------------------------------------------------------------------------------
PULL_ROWS = {"A": "weights A", "D": "D(A): the cell", "Z": "Z (ADMM's target)", "U": "U (ADMM's dual)"}


def pull_figure(trace: PullTrace, step: int, nodes: int, height: int | None = None) -> go.Figure:
    """A grid of small bar charts: a row per quantity (A, D(A), and for ADMM Z and U), a column
    per edge, a bar per op in its colour."""
    s = min(step, len(trace.A) - 1)
    rows = [("A", trace.A), ("D", trace.D)]
    if trace.Z is not None and trace.U is not None:
        rows += [("Z", trace.Z), ("U", trace.U)]
    labels = [label.replace(" ← ", "<br>← ") for label in edge_labels(nodes)]
    cols = _domains(len(labels), gap=0.025)
    height = height or 110 + 150 * len(rows)
    row_h = 1.0 / len(rows)
    colors = [op_color(op) for op in trace.ops]
    data, annotations = [], []
    layout: dict[str, Any] = dict(height=height, showlegend=False, bargap=0.1,
                                  margin=dict(l=110, r=10, t=60, b=20))
    u_max = max(0.05, float(np.abs(trace.U).max())) if trace.U is not None else 1.0
    for r, (key, values) in enumerate(rows):
        top = 1.0 - r * row_h
        dom_y = [top - row_h + 0.07, top - 0.02]
        rng = [-u_max, u_max] if key == "U" else [0, 1.05]
        for c, dom_x in enumerate(cols):
            n = r * len(cols) + c + 1
            xa, ya = ("x", "y") if n == 1 else (f"x{n}", f"y{n}")
            data.append(dict(type="bar", x=list(trace.ops), y=values[s, c].tolist(), xaxis=xa,
                             yaxis=ya, marker=dict(color=colors),
                             hovertemplate=f"{labels[c]} %{{x}}: %{{y:.3f}}<extra>{key}</extra>"))
            suffix = "" if n == 1 else str(n)
            layout[f"xaxis{suffix}"] = dict(domain=dom_x, anchor=ya, showticklabels=False)
            layout[f"yaxis{suffix}"] = dict(domain=dom_y, anchor=xa, range=rng,
                                            showticklabels=c == 0, tickfont=dict(size=9))
            if r == 0:
                annotations.append(dict(text=labels[c], x=(dom_x[0] + dom_x[1]) / 2, y=1.0,
                                        xref="paper", yref="paper", yanchor="bottom",
                                        showarrow=False, font=dict(size=11)))
        annotations.append(dict(text=PULL_ROWS[key], x=-0.01, y=(dom_y[0] + dom_y[1]) / 2,
                                xref="paper", yref="paper", xanchor="right", showarrow=False,
                                font=dict(size=11)))
    layout["annotations"] = annotations
    return _fig(data, layout)


def gap_figure(traces: Sequence[PullTrace], step: int, height: int = 260) -> go.Figure:
    """The discretization gap ||A - D(A)|| of each trace over the steps so far."""
    data = []
    n = max(len(t.gap) for t in traces)
    for t, color in zip(traces, ("#d62728", "#1f77b4", "#2ca02c")):
        s = min(step, len(t.gap) - 1)
        data.append(dict(type="scatter", mode="lines", x=list(range(s + 1)), y=t.gap[: s + 1].tolist(),
                         name=t.regularizer, line=dict(color=color, width=2)))
        if t.updates:
            ups = [u for u in t.updates if u <= s]
            data.append(dict(type="scatter", mode="markers", x=ups, y=t.gap[ups].tolist(),
                             name=f"{t.regularizer}: Z, U updated", marker=dict(color=color, size=6)))
    top = max(float(t.gap.max()) for t in traces) * 1.05 or 1.0
    layout = dict(height=height, margin=dict(l=60, r=20, t=40, b=40), hovermode="x unified",
                  legend=dict(orientation="h", yref="container", yanchor="top", y=1 - 6 / height, x=0),
                  xaxis=dict(range=[0, n - 1], title=dict(text="architecture step")),
                  yaxis=dict(range=[0, top], title=dict(text="gap ||A − D(A)||")))
    return _fig(data, layout)


# ---- 4 ----------------------------------------------------------------------------------------
def choice_table(weights: np.ndarray, ops: Sequence[str], choice: CellChoice,
                 upto_node: int) -> "pd.io.formats.style.Styler":
    """The weight matrix with the kept (edge, op) of the first ``upto_node`` nodes filled in
    the op's colour; the other ops of a kept edge stay white, dropped edges grey."""
    labels = edge_labels(choice.nodes)
    df = pd.DataFrame(np.asarray(weights, dtype=float), index=labels, columns=list(ops))
    kept = {(e, k) for e, k, _ in choice.decided(upto_node)}
    kept_edges = {e for e, _ in kept}
    rows = edge_rows(choice.nodes)
    decided_rows = {e for i in range(upto_node) for e in rows[i]}

    def style(col: pd.Series) -> list[str]:
        k = list(ops).index(col.name)
        out = []
        for e in range(len(col)):
            if (e, k) in kept:
                out.append(f"background-color: {op_color(col.name)}; color: white; font-weight: bold")
            elif e in decided_rows and e not in kept_edges:
                out.append("color: #bdbdbd")
            else:
                out.append("")
        return out

    return df.style.apply(style, axis=0).format("{:.3f}")


def partial_genotype(choice: CellChoice, ops: Sequence[str], upto_node: int) -> Genotype:
    """The cell with only the first ``upto_node`` nodes decided (the rest drawn without inputs):
    the rule as it goes, node by node."""
    if upto_node >= choice.nodes:
        return choice.genotype
    rows = edge_rows(choice.nodes)
    place = {e: (2 + i, j) for i, rs in enumerate(rows) for j, e in enumerate(rs)}
    triples = [(ops[k], place[e][0], place[e][1]) for e, k, _ in choice.decided(upto_node)]
    weights = [w for _, _, w in choice.decided(upto_node)]
    concat = tuple(range(2, 2 + choice.nodes))
    return Genotype(normal=tuple(triples), normal_concat=concat, reduce=tuple(triples),
                    reduce_concat=concat, normal_weights=tuple(weights),
                    reduce_weights=tuple(weights))
