"""Vega-Lite specs of the monitor's line charts: the per-edge operation weights, the schedule,
the regularizers, the architecture size, the losses and accuracies (docs/algorithms.md "What to
plot, live", panels 1 to 5; the weights' heatmap and the cells are in ``core.viz.figures``).

These charts change while a run is live, so they are Vega-Lite rather than Plotly: Streamlit
remounts a changed Plotly chart, while its Vega-Lite element keeps the view and swaps only the
named datasets whose bytes changed, as long as the spec is the same (docs/performance.md). So
each spec here depends on the run only (its config and planned length), never on its rows:
everything that grows (points, marker sizes) is in ``spec["datasets"]``, and counts go to the
chart's caption.

Each builder returns a ``LineChart`` (a spec with its datasets as DataFrames, and a caption), or
None before the run has the rows it needs. Series are downsampled with ``core.viz.figures.downsample``
(the one rule); colours of ops come from ``core.viz.palette``, of other series from ``SERIES``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core.engine.regularizers import UpdateEvents
from core.runs.store import ACTIVE_STATUSES
from core.viz.figures import (
    AXIS_LOOK,
    LOOK,
    MAX_POINTS,
    edge_index,
    edge_label,
    op_names,
    sample,
    y_range,
)
from core.viz.live import RunView
from core.viz.palette import PRUNED_COLOR, op_color

# The look of the Plotly charts (core.viz.figures.LOOK), as Vega-Lite config; pages pass theme=None.
TEXT = LOOK["font"]["color"]
GRID = AXIS_LOOK["gridcolor"]
CONFIG = {
    "background": "white",
    "view": {"stroke": None},
    "font": "Helvetica, Arial, sans-serif",
    "axis": {"gridColor": GRID, "domainColor": "#c8d4e3", "tickColor": "#c8d4e3", "labelColor": TEXT,
             "titleColor": TEXT, "titleFontWeight": "normal", "labelFontSize": 11, "titleFontSize": 12},
    "legend": {"orient": "top", "direction": "horizontal", "title": None, "labelColor": TEXT,
               "labelFontSize": 11, "symbolSize": 60, "columnPadding": 12, "labelLimit": 260},
    "title": {"anchor": "start", "fontSize": 14, "fontWeight": "normal", "color": TEXT,
              "subtitleColor": "#777777", "subtitleFontSize": 11, "offset": 6},
}
X = {"field": "iteration", "type": "quantitative", "title": "iteration",
     "axis": {"format": "d", "labelFlush": True}}
HEIGHT = 230
# Markers of discrete events (architecture steps) are drawn exactly up to this many.
MAX_MARKERS = 5000
# Colours of series that are not operations (ops use core.viz.palette only).
SERIES = {
    "fi": "#b8b8b8", "fi_ewma": "#252525", "threshold": "#e6550d", "arch": "#3182bd",
    "ratio": "#756bb1", "train": "#7f7f7f", "val": "#d95f02", "epoch": "#1b9e77",
    "gap": "#636363", "size": "#3182bd",
    "updates": ["#d95f02", "#7570b3", "#1b9e77", "#e7298a"],  # a regularizer's update series
    "penalty": ["#1b9e77", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"],
}


@dataclass
class LineChart:
    """A Vega-Lite spec (without data), its named datasets and a line of counts for a caption."""
    spec: dict[str, Any]
    datasets: dict[str, pd.DataFrame] = field(default_factory=dict)
    caption: str = ""
    _arrow: dict[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def full_spec(self) -> dict[str, Any]:
        """The spec with its datasets as DataFrames."""
        return {**self.spec, "datasets": dict(self.datasets)}

    def arrow_spec(self) -> dict[str, Any]:
        """The spec with its datasets as Arrow IPC bytes, as ``st.vega_lite_chart`` takes them
        without converting again. Converted once per chart: a chart the page keeps between
        refreshes (the weight grid between architecture steps) costs no conversion after its
        first, where Streamlit would convert its DataFrames at every refresh."""
        if self._arrow is None:
            self._arrow = {name: arrow_bytes(df) for name, df in self.datasets.items()}
        return {**self.spec, "datasets": dict(self._arrow)}

    def spec_json(self) -> str:
        """The spec without data, canonical: equal strings mean the browser keeps the view."""
        return json.dumps(self.spec, sort_keys=True)


def arrow_bytes(df: pd.DataFrame) -> bytes:
    """One dataset as an Arrow IPC stream, the way Streamlit serializes a DataFrame (a default
    index travels as schema metadata only)."""
    table = pa.Table.from_pandas(df)
    sink = pa.BufferOutputStream()
    with pa.RecordBatchStreamWriter(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _chart(title: str, layers: list[dict[str, Any]], height: int = HEIGHT, subtitle: str | None = None,
           **kw: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"text": title}
    if subtitle:
        t["subtitle"] = subtitle
    return {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", "title": t,
            "height": height, "config": copy.deepcopy(CONFIG), "layer": layers, **kw}


def iteration_axis(view: RunView) -> dict[str, Any]:
    """The x encoding of every monitor chart: iterations from 0 to the run's last planned one.
    Fixed for the whole run (it depends on the run's length, not on its rows), so a refresh
    moves the lines and leaves the axes alone, and a line's reach shows how far the run has
    come; the browser redraws no axes (docs/performance.md). A run with no planned length keeps
    the axis on its data."""
    total = view.run.total_iterations if view.run is not None else None
    if not total:
        return X
    return {**X, "scale": {"domain": [0, max(1, int(total) - 1)], "nice": False}}


def held_until(view: RunView) -> int:
    """The last iteration drawn of what changes only at architecture steps (the op weights, the
    discretization gap, the derived cell's size): while the run goes, its latest architecture
    step (or its first row before any), since these values hold until the next one; once it has
    ended, its last iteration. Drawn on to the newest row instead, those charts would change at
    every iteration with nothing new to show, and each chart whose data changes costs the
    browser a redraw, on the cores the search runs on (docs/performance.md)."""
    df = view.steps
    if df.empty:
        return view.last_step
    if view.run is not None and view.run.status not in ACTIVE_STATUSES:
        return view.last_step
    arch = df["step"].to_numpy()[df["arch_step"].to_numpy() == 1]
    return int(arch[-1]) if len(arch) else int(df["step"].iloc[0])


def changes_only(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A step function's points where its value changes, and its last point."""
    if len(y) < 3:
        return x, y
    keep = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    if keep[-1] != len(y) - 1:
        keep = np.append(keep, len(y) - 1)
    return x[keep], y[keep]


def step_values(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the non-null entries of one step column."""
    if col not in df or df.empty:
        return np.zeros(0, np.int64), np.zeros(0)
    v = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(v)
    return df["step"].to_numpy()[ok], v[ok]


def _long(parts: list[tuple[str, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """(series name, iterations, values) parts as one long table."""
    frames = [pd.DataFrame({"iteration": np.asarray(x, np.int64), "value": np.asarray(y, np.float64),
                            "series": name}) for name, x, y in parts if len(x)]
    if not frames:
        return pd.DataFrame({"iteration": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64"),
                             "series": pd.Series(dtype="object")})
    return pd.concat(frames, ignore_index=True)


def _points(x: np.ndarray, y: np.ndarray, **cols: Any) -> pd.DataFrame:
    return pd.DataFrame({"iteration": np.asarray(x, np.int64), "value": np.asarray(y, np.float64), **cols})


def _color(domain: list[str], colors: list[str]) -> dict[str, Any]:
    return {"field": "series", "type": "nominal", "scale": {"domain": domain, "range": colors}}


def _value_tooltip(title: str, fmt: str = ".4g") -> list[dict[str, Any]]:
    return [{"field": "iteration", "type": "quantitative", "title": "iteration"},
            {"field": "value", "type": "quantitative", "title": title, "format": fmt}]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _marker_size(n: int) -> int:
    # Smaller as they crowd, so a long run stays readable (Vega-Lite size is area in px^2).
    return 70 if n <= 100 else 30 if n <= 500 else 12


# ---- operation weights ------------------------------------------------------------------------
# Each grid panel is 145 px wide: fewer points per line keep the page light.
GRID_MAX_POINTS = 400
# The grid's panels in pixels: five columns (the last node's inputs) fit a centred page.
PANEL_WIDTH, PANEL_HEIGHT = 145, 80


def _weights_rows(x: np.ndarray, y: np.ndarray, k: int, died: int | None, max_points: int
                  ) -> list[tuple[np.ndarray, np.ndarray, int, bool]]:
    """One op's line on one edge as (iterations, values, op index, dead) parts: in the op's colour
    up to the step it died, then grey as "pruned"."""
    if died is None:
        return [(*sample(x, y, max_points), k, False)]
    parts = []
    for keep, dead in ((x <= died, False), (x >= died, True)):
        if keep.any():
            parts.append((*sample(x[keep], y[keep], max_points), k, dead))
    return parts


def _edge_frame(parts: list[tuple[np.ndarray, np.ndarray, int, bool]], ops: pd.CategoricalDtype,
                series: pd.CategoricalDtype) -> pd.DataFrame:
    """One edge's lines as one table, built from arrays at once (a DataFrame per op and part took
    ~0.19 s per cell grid on a 20,000-iteration run). 32-bit numbers and categorical names: a
    fifth of the Arrow bytes of 64-bit numbers and strings."""
    n = [len(p[0]) for p in parts]
    k = np.repeat([p[2] for p in parts], n)
    dead = np.repeat([p[3] for p in parts], n)
    n_ops = len(ops.categories)
    return pd.DataFrame({
        "iteration": np.concatenate([p[0] for p in parts]).astype(np.int32),
        "value": np.concatenate([p[1] for p in parts]).astype(np.float32),
        "op": pd.Categorical.from_codes(k, dtype=ops),
        "series": pd.Categorical.from_codes(np.where(dead, n_ops, k), dtype=series),
        "dead": dead})


def op_weights_chart(view: RunView, cell_type: str, fit_y: bool = False,
                     max_points: int = GRID_MAX_POINTS) -> LineChart | None:
    """Per-edge op weights over iterations: one panel per edge, rows = nodes, columns = inputs
    (c_{k-2}, c_{k-1}, node 0, ...), lower-triangular. One line per op in its palette colour (one
    legend); a pruned op turns grey and dotted from the step it died, with an x there. The
    weights hold between architecture steps, so the lines run to the run's last iteration. y:
    the activation's ``y_range``, or with ``fit_y`` from its bottom to the largest weight drawn
    (softmax shares sit near 1/ops for a long time). One dataset per edge (``e0``, ``e1``, ...)."""
    nodes = view.nodes
    steps, w = view.alpha_steps.get(cell_type), view.alphas.get(cell_type)
    if steps is None or len(steps) == 0 or w is None or w.ndim != 3:
        return None
    prims = op_names(view, w.shape[2])
    x = steps.astype(np.int64)
    until = held_until(view)
    extend = until > x[-1]
    if extend:
        x = np.append(x, until)
    pruned = view.pruned
    pruned = pruned[pruned["cell_type"] == cell_type] if len(pruned) else pruned
    died = {(int(e), str(o)): int(s) for s, e, o in
            zip(pruned["step"], pruned["edge"], pruned["op"])} if len(pruned) else {}
    yr = y_range(view)
    datasets: dict[str, pd.DataFrame] = {}
    marks = []
    ops, series = pd.CategoricalDtype(prims), pd.CategoricalDtype([*prims, "pruned"])
    n_edges = min(w.shape[1], len(edge_index(nodes)))
    for e in range(n_edges):
        parts = []
        for k, op in enumerate(prims):
            y = w[:, e, k]
            if extend:
                y = np.append(y, y[-1])
            d = died.get((e, op))
            parts += _weights_rows(x, y, k, d, max_points)
            if d is not None:
                at = min(int(np.searchsorted(x, d)), len(y) - 1)
                marks.append({"edge": e, "iteration": d, "value": float(y[at]), "op": op})
        datasets[f"e{e}"] = _edge_frame(parts, ops, series)
    datasets["pruned"] = pd.DataFrame(marks, columns=["edge", "iteration", "value", "op"]).astype(
        {"edge": "int64", "iteration": "int64", "value": "float64"})

    # Zoomed, the top follows the data (in the browser: the spec stays the same as weights move).
    scale = {"domainMin": round(yr[0], 4)} if fit_y else {"domain": [round(v, 4) for v in yr]}
    y = {"field": "value", "type": "quantitative", "title": None,
         "scale": {**scale, "nice": False, "zero": False}, "axis": {"tickCount": 3, "labelFontSize": 9}}
    xe = {**iteration_axis(view), "title": None,
          "axis": {"format": "d", "tickCount": 3, "labelFontSize": 9, "labelFlush": True}}
    domain = [*prims, "pruned"]
    colors = [*(op_color(op) for op in prims), PRUNED_COLOR]
    rows = []
    for row in _rows_of(edge_index(nodes), n_edges):
        panels = []
        for e, (node, j) in row:
            line = {"data": {"name": f"e{e}"},
                    "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 1.5, "clip": True},
                    "encoding": {"x": xe, "y": y, "detail": {"field": "op", "type": "nominal"},
                                 "color": {"field": "series", "type": "nominal"},
                                 "strokeDash": {"field": "dead", "type": "nominal", "legend": None,
                                                "scale": {"domain": [False, True], "range": [[1, 0], [2, 2]]}}}}
            if e == 0:  # the one legend: the op palette and "pruned"
                line["encoding"]["color"].update(scale={"domain": domain, "range": colors},
                                                 legend={"columns": 5, "symbolType": "stroke"})
            cross = {"data": {"name": "pruned"}, "transform": [{"filter": f"datum.edge == {e}"}],
                     "mark": {"type": "point", "shape": "cross", "size": 45, "filled": True,
                              "color": "#7f7f7f", "angle": 45},
                     "encoding": {"x": xe, "y": y,
                                  "tooltip": [{"field": "op", "type": "nominal", "title": "pruned"},
                                              {"field": "iteration", "type": "quantitative", "title": "at"}]}}
            panels.append({"title": {"text": edge_label(node, j), "fontSize": 10, "color": "#555555",
                                     "anchor": "middle", "offset": 2},
                           "width": PANEL_WIDTH, "height": PANEL_HEIGHT, "layer": [line, cross]})
        rows.append({"hconcat": panels})
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json",
            "title": {"text": f"{cell_type.capitalize()} cell: operation weights"},
            "config": {**copy.deepcopy(CONFIG), "concat": {"spacing": 8}},
            "vconcat": rows, "spacing": 10,
            "resolve": {"scale": {"x": "shared", "y": "shared", "color": "shared"}},
            # Drawn on a canvas: as SVG the grid was ~1,900 of the monitor's ~3,900 page nodes,
            # which every style and layout pass of the page walks at each refresh. Alternating
            # the two while the demo was watched, Chromium's renderer used 0.41-0.50 core with a
            # canvas against 0.51-0.60 with SVG, its GPU process 0.10-0.13 against 0.14-0.21.
            "usermeta": {"embedOptions": {"renderer": "canvas"}}}
    n_pruned = len(marks)
    caption = (f"weights at {_count(len(steps), 'architecture step')}, up to iteration {int(x[-1])}"
               + (f"; {_count(n_pruned, 'op')} pruned" if n_pruned else ""))
    return LineChart(spec, datasets, caption)


def _rows_of(edges: list[tuple[int, int]], n: int) -> list[list[tuple[int, tuple[int, int]]]]:
    """The first ``n`` edges, numbered, grouped by node (one grid row per node)."""
    rows: list[list[tuple[int, tuple[int, int]]]] = []
    for e, (node, j) in enumerate(edges[:n]):
        if node >= len(rows):
            rows.append([])
        rows[node].append((e, (node, j)))
    return rows


# ---- schedule -------------------------------------------------------------------------------
# (column, legend name, line style) of the schedule's FI lines.
FI_LINES = (("fi", "FI", {"strokeWidth": 1}),
            ("fi_ewma", "FI ewma", {"strokeWidth": 1.8}),
            ("threshold", "threshold", {"strokeWidth": 1.8, "strokeDash": [5, 3]}))


def _series(layer: dict[str, Any], name: str) -> dict[str, Any]:
    """Names a layer's series for the legend: a ``series`` field with a constant value, coloured
    by the one colour scale all layers share (the first layer's ``color`` carries its domain), so
    the chart has one legend. Vega-Lite takes no scale on a ``datum`` colour."""
    layer.setdefault("transform", []).append({"calculate": json.dumps(name), "as": "series"})
    layer.setdefault("encoding", {})["color"] = {"field": "series", "type": "nominal"}
    return layer


def schedule_chart(view: RunView, max_points: int = MAX_POINTS) -> LineChart | None:
    """FI, FI_ewma and the threshold (log scale) with a marker at each architecture step (all of
    them up to MAX_MARKERS), and the running ratio of architecture to weight steps on the right
    axis with the informed schedule's target 1/(period+1). The fixed schedule has FI and the
    markers."""
    df = view.steps
    if df.empty:
        return None
    xax = iteration_axis(view)
    informed = view.config.get("schedule") == "informed"
    period = view.config.get("period")
    step = df["step"].to_numpy()
    arch = df["arch_step"].to_numpy() == 1
    lines = FI_LINES if informed else FI_LINES[:1]
    datasets: dict[str, pd.DataFrame] = {}
    y_fi = {"field": "value", "type": "quantitative", "title": "FI", "scale": {"type": "log"}}
    left: list[dict[str, Any]] = []
    for col, name, style in lines:
        s, v = step_values(df, col)
        s, v = s[v > 0], v[v > 0]  # log axis
        datasets[col] = _points(*sample(s, v, max_points))
        left.append(_series({"data": {"name": col}, "mark": {"type": "line", "clip": True, **style},
                             "encoding": {"x": xax, "y": y_fi}}, name))
    # Markers sit on FI ewma (informed) or on FI (fixed, which has no moving average).
    base = df["fi_ewma" if informed else "fi"].to_numpy(dtype=np.float64, na_value=np.nan)
    ai = np.flatnonzero(arch)
    if len(ai) > MAX_MARKERS:  # fixed(1) on a long run: every iteration is one; thin evenly
        ai = ai[np.linspace(0, len(ai) - 1, MAX_MARKERS).round().astype(int)]
    on_axis = np.isfinite(base[ai]) & (base[ai] > 0)
    datasets["arch"] = _points(step[ai][on_axis], base[ai][on_axis], size=_marker_size(len(ai)))
    left.append(_series({
        "data": {"name": "arch"},
        "mark": {"type": "point", "shape": "triangle-up", "filled": True, "opacity": 1, "stroke": "white",
                 "strokeWidth": 0.5},
        "encoding": {"x": xax, "y": {"field": "value", "type": "quantitative"},
                     "size": {"field": "size", "type": "quantitative", "scale": None},
                     "tooltip": [{"field": "iteration", "type": "quantitative", "title": "architecture step at"}]}},
        "architecture step"))
    ratio = np.cumsum(arch) / np.arange(1, len(arch) + 1)
    datasets["ratio"] = _points(*sample(step, ratio, max_points))
    right: list[dict[str, Any]] = [_series({
        "data": {"name": "ratio"}, "mark": {"type": "line", "strokeWidth": 1.5},
        "encoding": {"x": xax, "y": {"field": "value", "type": "quantitative", "title": "arch / weight steps",
                                   "scale": {"zero": True},
                                   "axis": {"orient": "right", "format": ".2f", "grid": False}}}},
        "arch / weight steps")]
    domain = [name for _, name, _ in lines] + ["architecture step", "arch / weight steps"]
    colors = [SERIES[col] for col, _, _ in lines] + [SERIES["arch"], SERIES["ratio"]]
    target = None
    if informed and period:
        target = 1.0 / (int(period) + 1)
        domain.append(f"target 1/{int(period) + 1}")
        colors.append(SERIES["ratio"])
        right.append(_series({"data": {"values": [{}]},
                              "mark": {"type": "rule", "strokeDash": [2, 3], "strokeWidth": 1},
                              "encoding": {"y": {"datum": target, "type": "quantitative"}}}, domain[-1]))
    # The first layer's colour names the domain; the other layers' series share its scale.
    left[0]["encoding"]["color"].update(scale={"domain": domain, "range": colors}, legend={"columns": 3})
    spec = _chart("Schedule: gradient signal and architecture steps",
                  [{"layer": left}, {"layer": right}], height=HEIGHT + 40,
                  resolve={"scale": {"y": "independent"}})
    caption = (f"{_count(int(arch.sum()), 'architecture step')} in {_count(len(arch), 'iteration')} "
               f"(ratio {ratio[-1]:.3f}")
    caption += f", target {target:.3f})" if target is not None else ")"
    return LineChart(spec, datasets, caption)


# ---- regularizers -----------------------------------------------------------------------------
def regularizer_charts(view: RunView, max_points: int = MAX_POINTS) -> list[LineChart]:
    """The regularizer panel's charts: each penalty term (the ``penalty`` column and any other
    ``terms`` key) at architecture steps; the discretization gap ||A - D(A)||; and, for a
    regularizer that declares update events (``core.engine.regularizers.UpdateEvents``), their series
    at each update with a dotted line at each update. Empty before the first row."""
    df = view.steps
    if df.empty:
        return []
    xax = iteration_axis(view)
    reg = str(view.config.get("regularizer", "penalty"))
    decl = view.update_events
    # The validation loss and the update events' series are terms too, but not penalties.
    not_penalties = ("step", reg, "val_ce", *(decl.keys if decl is not None else ()))
    charts = []
    parts = []
    s, v = step_values(df, "penalty")
    if len(s):
        parts.append((f"{reg} penalty",) + sample(s, v, max_points))
    extra = [c for c in view.terms.columns if c not in not_penalties]
    for key in extra:
        s, v = step_values(view.terms, key)
        if len(s):
            parts.append((key,) + sample(s, v, max_points))
    terms = _long(parts)
    # The domain is the config's penalty first, then any extra term the store names.
    domain = [f"{reg} penalty"] + extra
    colors = [SERIES["penalty"][n % len(SERIES["penalty"])] for n in range(len(domain))]
    charts.append(LineChart(_chart(
        f"Regularizer: {reg}", [
            {"mark": {"type": "line", "strokeWidth": 1.5, "point": {"size": 14}},
             "encoding": {"x": xax, "y": {"field": "value", "type": "quantitative", "title": "penalty"},
                          "color": _color(domain, colors),
                          "tooltip": _value_tooltip("penalty")}}],
        subtitle="penalty terms at architecture steps", data={"name": "terms"}),
        {"terms": terms}, f"penalty recorded at {_count(terms['iteration'].nunique(), 'architecture step')}"))

    # The gap moves only at architecture steps: drawn where it changed, up to the latest one.
    s, v = step_values(df[df["step"] <= held_until(view)], "gap")
    xs, ys = sample(*changes_only(s, v), max_points)
    gap = _points(xs, ys)
    charts.append(LineChart(_chart(
        "Discretization gap ||A - D(A)||", [
            {"mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 1.5,
                      "color": SERIES["gap"], "point": {"size": 10, "color": SERIES["gap"]}},
             "encoding": {"x": xax, "y": {"field": "value", "type": "quantitative", "title": "gap"},
                          "tooltip": _value_tooltip("gap")}}],
        height=HEIGHT - 50, data={"name": "gap"}),
        {"gap": gap}, f"latest gap {ys[-1]:.4g}" if len(ys) else "no gap recorded yet"))

    if decl is not None:
        charts.append(updates_chart(view, decl))
    return charts


def updates_chart(view: RunView, decl: UpdateEvents) -> LineChart:
    """"<label> updates": the declared series of a regularizer's update events at each update
    (all of them: updates come every few architecture steps), a dotted line at each update, and
    before the first a note saying how often they come."""
    xax = iteration_axis(view)
    updates = view.updates
    every = view.config.get(decl.every_field) if decl.every_field else None
    cadence = f"every {_count(int(every), 'architecture step')}" if every else ""
    at = updates["step"].to_numpy()
    values = _long([(label, at, updates[key].to_numpy(np.float64)) for key, label in decl.series
                    if key in updates])
    note = pd.DataFrame({"text": [] if len(updates) else
                         [f"no {decl.label} update yet" + (f" ({cadence})" if cadence else "")]})
    colors = [SERIES["updates"][n % len(SERIES["updates"])] for n in range(len(decl.series))]
    spec = _chart(f"{decl.label} updates", [
        {"data": {"name": "updates"}, "mark": {"type": "rule", "strokeDash": [2, 3], "color": "#bdbdbd"},
         "encoding": {"x": xax}},
        {"data": {"name": "values"},
         "mark": {"type": "line", "strokeWidth": 1.5, "point": {"size": 24}},
         "encoding": {"x": xax, "y": {"field": "value", "type": "quantitative", "title": decl.y_title},
                      "color": _color(list(decl.labels), colors),
                      "tooltip": _value_tooltip("value")}},
        {"data": {"name": "note"}, "mark": {"type": "text", "color": "#888888", "fontSize": 13},
         "encoding": {"text": {"field": "text", "type": "nominal"}}}],
        height=HEIGHT - 30, subtitle="at each update; dotted lines mark the updates")
    caption = _count(len(updates), f"{decl.label} update") + (f", one {cadence}" if cadence else "")
    return LineChart(spec, {"updates": pd.DataFrame({"iteration": at.astype(np.int64)}),
                            "values": values, "note": note}, caption)


# ---- size -----------------------------------------------------------------------------------
def size_chart(view: RunView, max_points: int = MAX_POINTS) -> LineChart | None:
    """Parameters of the derived architecture's evaluation network over iterations (a step
    function: it changes when the genotype does), a marker at each change."""
    g = view.genotypes
    if g.empty or not g["size"].notna().any():
        return None
    xax = iteration_axis(view)
    g = g[g["size"].notna()]
    x = g["step"].to_numpy()
    y = g["size"].to_numpy(dtype=np.float64)
    xl, yl = x, y
    until = held_until(view)
    if until > x[-1]:
        xl, yl = np.append(x, until), np.append(y, y[-1])
    xl, yl = sample(xl, yl, max_points)
    xm, ym = sample(x, y, max_points)
    y_enc = {"field": "value", "type": "quantitative", "title": "parameters",
             "scale": {"zero": False}, "axis": {"format": "~s"}}
    spec = _chart("Architecture size (evaluation network)", [
        {"data": {"name": "size"}, "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 2,
                                            "color": SERIES["size"]},
         "encoding": {"x": xax, "y": y_enc}},
        {"data": {"name": "changes"}, "mark": {"type": "point", "filled": True, "opacity": 1, "size": 40,
                                               "color": SERIES["size"]},
         "encoding": {"x": xax, "y": y_enc, "tooltip": _value_tooltip("parameters", ",.0f")}}],
        height=HEIGHT - 20, subtitle="a point where the genotype changed")
    return LineChart(spec, {"size": _points(xl, yl), "changes": _points(xm, ym)},
                     f"{_count(len(x) - 1, 'new genotype')} recorded (a reordering of a node's edges "
                     f"counts here); now {int(y[-1]):,} parameters")


# ---- losses and accuracies ----------------------------------------------------------------------
# (dataset, legend name, colour, line style) of the losses' and accuracies' lines.
LOSS_LINES = (("train", "train (batch)", "#cfcfcf", {"strokeWidth": 1}),
              ("smoothed", "train (smoothed)", SERIES["train"], {"strokeWidth": 2}),
              ("val", "validation (arch batch)", SERIES["val"], {"strokeWidth": 1.2}),
              ("epochs", "validation (epoch end)", SERIES["epoch"],
               {"strokeWidth": 1.5, "point": {"shape": "diamond", "size": 80, "filled": True}}))


def losses_charts(view: RunView, max_points: int = MAX_POINTS) -> list[LineChart]:
    """Loss and accuracy, each with the train value of every batch (raw and smoothed), validation
    on architecture steps and at epoch ends (the epoch_end events). Empty before the first row."""
    df = view.steps
    if df.empty:
        return []
    xax = iteration_axis(view)
    ep = view.epochs
    charts = []
    for metric, title in (("loss", "loss"), ("acc", "accuracy")):
        s, v = step_values(df, f"train_{metric}")
        smooth = pd.Series(v).ewm(alpha=0.05 if len(v) > 200 else 0.2).mean().to_numpy()
        e = ep[ep[f"val_{metric}"].notna()] if len(ep) else ep
        datasets = {"train": _points(*sample(s, v, max_points)),
                    "smoothed": _points(*sample(s, smooth, max_points)),
                    "val": _points(*sample(*step_values(df, f"val_{metric}"), max_points)),
                    "epochs": _points(e["step"].to_numpy() if len(e) else [],
                                      e[f"val_{metric}"].to_numpy(np.float64) if len(e) else [])}
        y = {"field": "value", "type": "quantitative", "title": title}
        if metric == "acc":
            y["scale"] = {"domain": [0, 1]}
        layers = [_series({"data": {"name": name}, "mark": {"type": "line", "clip": True, **style},
                           "encoding": {"x": xax, "y": y}}, label)
                  for name, label, _, style in LOSS_LINES]
        layers[0]["encoding"]["color"].update(scale={"domain": [l for _, l, _, _ in LOSS_LINES],
                                                     "range": [c for _, _, c, _ in LOSS_LINES]},
                                              legend={"columns": 2})
        layers[-1]["encoding"]["tooltip"] = _value_tooltip(f"validation {title} (epoch end)", ".3f")
        spec = _chart(title.capitalize(), layers, height=HEIGHT + 10)
        caption = (f"{_count(len(e), 'epoch end')}; last validation {title} {e[f'val_{metric}'].iloc[-1]:.3f}"
                   if len(e) else "no epoch has ended yet")
        charts.append(LineChart(spec, datasets, caption))
    return charts


def monitor_line_charts(view: RunView) -> dict[str, LineChart]:
    """Every line chart the monitor draws per refresh, keyed by name (those with rows yet)."""
    out: dict[str, LineChart | None] = {f"weights_{ct}": op_weights_chart(view, ct) for ct in ("normal", "reduce")}
    out.update(schedule=schedule_chart(view), size=size_chart(view))
    out.update((f"regularizer_{n}", c) for n, c in enumerate(regularizer_charts(view)))
    out.update(zip(("loss", "accuracy"), losses_charts(view)))
    return {k: c for k, c in out.items() if c is not None}
