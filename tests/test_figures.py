"""core.viz.figures and core.viz.line_charts on real tiny runs (one per method family) and on a synthetic
20,000-iteration run: what a user checks on the monitor page — one panel per edge, one colour per
op from the palette, pruned ops grey, one marker per architecture step, ADMM updates, bounded
points; and that a line chart's spec does not change as rows arrive (the browser then swaps
the data in place)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import altair as alt
import jsonschema
import numpy as np
import plotly.graph_objects as go
import pytest
from streamlit.dataframe_util import convert_anything_to_arrow_bytes

from core.data import load_dataset
from core.engine.activations import ACTIVATIONS
from core.engine.config import make_config
from core.engine.genotype import DARTS_V1, DARTS_V2, Genotype
from core.engine.search import Search
from core.runs.store import RunStore
from core.viz import figures as F
from core.viz import line_charts as L
from core.viz.cells import genotype_dot
from core.viz.live import RunView
from core.viz.palette import OP_COLORS, PRUNED_COLOR, op_color
from tests.conftest import one_torch_thread
from tests.test_live import lagrange  # noqa: F401  (a fixture: a made-up regularizer registered)

ROOT = Path(__file__).resolve().parents[1]
# One run per family: softmax + fixed, sigmoid + zero-one, CRB + informed + proximity (a high
# alpha_lr forces pruning), CRB + ADMM (updated after every architecture step).
# The fixed schedule steps at every iteration; the informed one (threshold seeded from the
# first FI) first steps at iteration 2.
METHODS = {
    "darts": {"iters_per_epoch": 2},
    "fairdarts": {"iters_per_epoch": 2, "alpha_lr": 1.0},  # sigmoid weights must pass 0.85
    "prime-crb": {"alpha_lr": 0.2, "iters_per_epoch": 3},
    "prime-admm": {"admm_every": 1, "iters_per_epoch": 3},
}


def _valid(fig: go.Figure) -> go.Figure:
    """Rebuilds a figure with Plotly's validation on (figures.py builds without it)."""
    return go.Figure(fig.to_dict())


VEGA_LITE_SCHEMA = alt.vegalite.v6.schema.core.load_schema()


def _vl_valid(chart: L.LineChart) -> L.LineChart:
    """Checks the spec with its data against the Vega-Lite schema (Streamlit's bundle is v6)."""
    spec = chart.full_spec()
    spec["datasets"] = {k: json.loads(df.to_json(orient="records")) for k, df in spec["datasets"].items()}
    jsonschema.validate(spec, VEGA_LITE_SCHEMA)
    return chart


def _waiting(fig: go.Figure) -> bool:
    return any(a.text == F.WAITING for a in fig.layout.annotations)


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> dict[str, RunView]:
    d = load_dataset("digits", None, 8, 0)
    data = dataclasses.replace(d, train_x=d.train_x[:96], train_y=d.train_y[:96],
                               test_x=d.test_x[:16], test_y=d.test_y[:16])
    store = RunStore(tmp_path_factory.mktemp("figures") / "runs.sqlite")
    out = {}
    for method, over in METHODS.items():
        cfg = make_config("tiny", method, epochs=1, **over)
        run_id = store.create_run(cfg)
        with one_torch_thread():
            Search(cfg, store, run_id, data=data).run()
        view = RunView(store, run_id)
        view.refresh()
        out[method] = view
    return out


def _render_bench():
    """scripts/perf/render_bench.py, for its synthetic long runs."""
    spec = importlib.util.spec_from_file_location("render_bench", ROOT / "scripts" / "perf" / "render_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="module")
def long_view(tmp_path_factory) -> RunView:
    bench = _render_bench()
    store = RunStore(tmp_path_factory.mktemp("long") / "long.sqlite")
    run_id = bench.make_synthetic_run(store, 20_000, "prime-admm")
    view = RunView(store, run_id)
    view.refresh()
    return view


# ---- every figure, every method ----------------------------------------------------------------
@pytest.mark.parametrize("method", list(METHODS))
def test_every_monitor_figure_is_valid(views, method):
    view = views[method]
    out = F.monitor_figures(view)
    for name, fig in out.items():
        if isinstance(fig, go.Figure):
            _valid(fig)
            assert not _waiting(fig), name
            # the look is inline (no template: plotly.js draws templated charts ~2x slower)
            assert fig.layout.paper_bgcolor == "white" and not fig.layout.template.to_plotly_json().get("layout")
            assert all(fig.layout[a].gridcolor == F.AXIS_LOOK["gridcolor"]
                       for a in F._axis_names(fig.layout.to_plotly_json(), "xaxis"))
    assert out["dot_normal"].startswith("digraph") and "->" in out["dot_normal"]
    assert list(out["changes"].columns) == ["step", "cell", "node", "change"]
    charts = L.monitor_line_charts(view)
    admm = ["regularizer_2"] if method == "prime-admm" else []
    assert sorted(charts) == sorted(["weights_normal", "weights_reduce", "schedule", "regularizer_0",
                                     "regularizer_1", *admm, "size", "loss", "accuracy"])
    for name, chart in charts.items():
        _vl_valid(chart)
        assert chart.spec["config"]["axis"]["gridColor"] == L.GRID and chart.caption, name
        used = {layer["data"]["name"] for layer in _layers(chart.spec) if "name" in layer.get("data", {})}
        used |= {chart.spec["data"]["name"]} if "data" in chart.spec else set()
        assert used == set(chart.datasets), name  # every dataset is drawn, every layer has its data


def _panels(chart: L.LineChart) -> list[dict]:
    return [p for row in chart.spec["vconcat"] for p in row["hconcat"]]


@pytest.mark.parametrize("method", list(METHODS))
def test_grid_has_a_panel_per_edge_and_a_palette_colour_per_op(views, method):
    view = views[method]
    for ct in ("normal", "reduce"):
        chart = _vl_valid(L.op_weights_chart(view, ct))
        panels = _panels(chart)
        assert len(panels) == 14 == view.n_edges
        # lower-triangular: node i's row has its i + 2 inputs
        assert [len(row["hconcat"]) for row in chart.spec["vconcat"]] == [2, 3, 4, 5]
        titles = [p["title"]["text"] for p in panels]
        assert titles[0] == "node 0 <- c_{k-2}" and titles[-1] == "node 3 <- node 2"
        assert [p["layer"][0]["data"]["name"] for p in panels] == [f"e{e}" for e in range(14)]
        # one colour scale (one legend): each op in its palette colour, then grey for pruned
        scale = _layers(panels[0])[0]["encoding"]["color"]["scale"]
        assert scale["domain"] == [*view.primitives, "pruned"]
        assert scale["range"] == [*(OP_COLORS[op] for op in view.primitives), PRUNED_COLOR]
        assert all(op_color(op) == OP_COLORS[op] for op in view.primitives)
        for e in range(14):
            rows = chart.datasets[f"e{e}"]
            assert set(rows["op"]) == set(view.primitives)
            assert rows["iteration"].max() == view.last_step  # weights hold between steps
            last = rows[rows["iteration"] == view.alpha_steps[ct][-1]]
            for op, value in zip(last["op"], last["value"]):  # the stored weights, as drawn
                assert value == pytest.approx(view.alphas[ct][-1, e, view.primitives.index(op)], abs=1e-6)
        lo, hi = ACTIVATIONS.get(view.config["activation"]).y_range
        r = _layers(panels[0])[0]["encoding"]["y"]["scale"]["domain"]
        assert r[0] <= lo and r[1] >= hi and r[1] - r[0] < 1.2 * (hi - lo)
    if view.config["activation"] == "crb":
        assert "none" not in view.primitives


def test_pruned_ops_are_grey_from_the_step_they_died(views):
    view = views["prime-crb"]
    assert len(view.pruned) > 0, "alpha_lr=0.2 should prune in the first architecture step"
    for ct in ("normal", "reduce"):
        chart = L.op_weights_chart(view, ct)
        events = view.pruned[view.pruned["cell_type"] == ct]
        marks = chart.datasets["pruned"]
        assert sorted(marks["iteration"]) == sorted(events["step"])
        assert sorted(zip(marks["edge"], marks["op"])) == sorted(zip(events["edge"], events["op"]))
        for edge, op, died in events[["edge", "op", "step"]].itertuples(index=False):
            rows = chart.datasets[f"e{edge}"]
            rows = rows[rows["op"] == op]
            # In colour up to the death step, grey and dotted from there on.
            assert rows.loc[rows["series"] == op, "iteration"].max() == died
            grey = rows[rows["series"] == "pruned"]
            assert grey["iteration"].min() == died and grey["dead"].all()
        assert f"{len(events)} op" in chart.caption
    dash = _layers(_panels(chart)[0])[0]["encoding"]["strokeDash"]
    assert dash["field"] == "dead" and dash["scale"]["range"][1] != [1, 0]
    assert "pruned" in _series(chart)
    zoomed = _vl_valid(L.op_weights_chart(view, "normal", fit_y=True))
    y = _layers(_panels(zoomed)[0])[0]["encoding"]["y"]["scale"]
    assert "domain" not in y and y["domainMin"] <= 0  # zoomed: the top follows the data


def test_heatmap_shows_the_weights_of_a_step(views):
    view = views["prime-crb"]
    fig = F.op_weights_heatmap(view, "normal")
    heat = fig.data[0]
    assert heat.type == "heatmap"
    np.testing.assert_allclose(np.asarray(heat.z), view.alphas["normal"][-1])
    assert list(heat.x) == view.primitives and len(heat.y) == 14
    assert heat.y[0] == "node 0 <- c_{k-2}" and heat.y[-1] == "node 3 <- node 2"
    assert "pruned" in np.asarray(heat.text).ravel().tolist()
    kept = [t for t in fig.data if t.name == "kept in the genotype"][0]
    assert len(kept.x) == 8  # two edges per node
    early = F.op_weights_heatmap(view, "normal", step=0)
    assert "iteration 0" in early.layout.title.text
    np.testing.assert_allclose(np.asarray(early.data[0].z), view.alphas["normal"][0])


# ---- schedule, regularizer, size, losses (Vega-Lite) ---------------------------------------------
def _layers(spec: dict) -> list[dict]:
    """Every leaf view of a spec (layers and concatenations flattened)."""
    out = []
    for part in (*spec.get("layer", []), *spec.get("vconcat", []), *spec.get("hconcat", [])):
        out += _layers(part) if any(k in part for k in ("layer", "vconcat", "hconcat")) else [part]
    return out


def _series(chart: L.LineChart) -> list[str]:
    """The legend's entries: the colour domain."""
    return next(l["encoding"]["color"]["scale"]["domain"] for l in _layers(chart.spec)
                if "scale" in l.get("encoding", {}).get("color", {}))


@pytest.mark.parametrize("method", list(METHODS))
def test_schedule_marks_every_architecture_step(views, method):
    view = views[method]
    chart = L.schedule_chart(view)
    arch = chart.datasets["arch"]
    assert len(arch) == view.arch_steps == int(view.steps["arch_step"].sum()) > 0
    assert arch["iteration"].tolist() == view.steps.loc[view.steps["arch_step"] == 1, "step"].tolist()
    fi = next(l for l in _layers(chart.spec) if l["data"].get("name") == "fi")
    assert fi["encoding"]["y"]["scale"]["type"] == "log"
    assert chart.spec["resolve"]["scale"]["y"] == "independent"  # the ratio has its own axis
    ratio = chart.datasets["ratio"]["value"]
    assert ratio.iloc[-1] == pytest.approx(view.arch_steps / len(view.steps))
    assert f"{view.arch_steps} architecture step" in chart.caption
    if view.config["schedule"] == "fixed":
        assert "threshold" not in _series(chart) and "FI" in _series(chart)
        assert set(chart.datasets) == {"fi", "arch", "ratio"}
    else:
        assert {"FI", "FI ewma", "threshold", "target 1/11"} <= set(_series(chart))
        assert len(chart.datasets["threshold"]) > 0


def test_regularizer_charts_admm_updates(views):
    view = views["prime-admm"]
    assert len(view.updates) == view.arch_steps > 0  # admm_every=1: one update per architecture step
    terms, gap, admm = L.regularizer_charts(view)
    assert admm.spec["title"]["text"] == "ADMM updates"
    res = admm.datasets["values"]
    primal = res[res["series"] == "primal ||A - Z||"]
    assert primal["iteration"].tolist() == view.updates["step"].tolist()
    assert primal["value"].tolist() == view.updates["admm_primal"].tolist()
    assert (res["series"] == "||U||").sum() == len(view.updates)
    assert admm.datasets["updates"]["iteration"].tolist() == view.updates["step"].tolist()  # a line each
    assert admm.datasets["note"].empty
    n = len(view.updates)
    assert admm.caption == f"{n} ADMM update{'' if n == 1 else 's'}, one every 1 architecture step"
    # the residuals are terms of the update steps, but not penalties
    assert set(terms.datasets["terms"]["series"]) == {"admm penalty"}
    # the gap drawn where it changed (architecture steps), from the first row to the last
    g = view.steps[["step", "gap"]].dropna()
    drawn = g[g["gap"].diff().ne(0) | (g["step"] == g["step"].iloc[-1])]
    assert gap.datasets["gap"]["iteration"].tolist() == drawn["step"].tolist()
    assert gap.datasets["gap"]["value"].tolist() == pytest.approx(drawn["gap"].tolist())


def test_a_regularizer_s_updates_are_charted_from_its_declaration(tmp_path, lagrange):
    """A regularizer that declares update events gets its "<label> updates" chart with no edit
    to the charts: its series, a line per update, and a note before the first."""
    store = RunStore(tmp_path / "lagrange.sqlite")
    run_id = store.create_run(make_config("tiny", "darts-prime", regularizer="lagrange", period=4))
    store.add_steps(run_id, [{"step": 0, "arch_step": 1, "fi": 1.0, "gap": 1.0, "train_loss": 2.0,
                              "penalty": 0.1, "terms": {"val_ce": 2.0, "lagrange": 0.1, "lam": 0.0}}])
    view = RunView(store, run_id)
    view.refresh()
    chart = _vl_valid(L.regularizer_charts(view)[-1])
    assert chart.spec["title"]["text"] == "Lagrange updates"
    assert chart.datasets["note"]["text"].tolist() == ["no Lagrange update yet (every 4 architecture steps)"]
    assert chart.caption == "0 Lagrange updates, one every 4 architecture steps"
    store.add_events(run_id, [{"kind": "multiplier_update", "step": s, "message": "update",
                               "data": {"lam": float(s), "slack": 1.0}} for s in (4, 8)])
    view.refresh()
    terms, _, chart = (_vl_valid(c) for c in L.regularizer_charts(view))
    values = chart.datasets["values"]
    assert values.groupby("series")["iteration"].apply(list).to_dict() == {"multiplier": [4, 8],
                                                                         "slack": [4, 8]}
    assert chart.datasets["updates"]["iteration"].tolist() == [4, 8] and chart.datasets["note"].empty
    colour = next(layer["encoding"]["color"] for layer in chart.spec["layer"] if "color" in layer["encoding"])
    assert colour["scale"]["domain"] == ["multiplier", "slack"]
    assert set(terms.datasets["terms"]["series"]) == {"lagrange penalty"}  # its series are no penalty


def test_regularizer_charts_without_admm(views):
    charts = L.regularizer_charts(views["fairdarts"])
    assert len(charts) == 2
    assert set(charts[0].datasets["terms"]["series"]) == {"zero_one penalty"}
    assert charts[0].spec["title"]["text"] == "Regularizer: zero_one"


def test_size_and_losses(views):
    view = views["darts"]
    size = L.size_chart(view)
    changes = size.datasets["changes"]
    assert changes["iteration"].tolist() == view.genotypes["step"].tolist()
    assert changes["value"].tolist() == view.genotypes["size"].tolist()
    assert size.datasets["size"]["iteration"].iloc[-1] == view.last_step  # held to the last row
    for chart, col in zip(L.losses_charts(view), ("val_loss", "val_acc")):
        assert chart.datasets["epochs"]["iteration"].tolist() == view.epochs["step"].tolist()
        assert chart.datasets["epochs"]["value"].tolist() == view.epochs[col].tolist()
        assert len(chart.datasets["val"]) == view.arch_steps
        assert chart.datasets["train"]["iteration"].tolist() == view.steps["step"].tolist()
        assert "1 epoch end" in chart.caption


def test_line_chart_specs_stay_the_same_as_rows_arrive(tmp_path):
    """While a run writes rows, each chart keeps its spec (only its datasets grow), which is what
    lets Streamlit's Vega-Lite element swap data in place instead of remounting the chart."""
    store = RunStore(tmp_path / "grow.sqlite")
    bench = _render_bench()
    # a run of 4,000 iterations seen after 400 of them, and at its end
    early = bench.make_synthetic_run(store, 400, "prime-admm")
    store.update_run(early, total_iterations=4000)
    short = RunView(store, early)
    long = RunView(store, bench.make_synthetic_run(store, 4000, "prime-admm"))
    short.refresh()
    long.refresh()
    a, b = L.monitor_line_charts(short), L.monitor_line_charts(long)
    assert a.keys() == b.keys() and len(a) == 9
    for name in a:
        assert a[name].spec_json() == b[name].spec_json(), name
        assert sum(map(len, b[name].datasets.values())) > sum(map(len, a[name].datasets.values())), name
        # the iteration axis spans the planned run from the start, whatever has been written
        domains = re.findall(r'"field": "iteration", "scale": {"domain": \[(\d+), (\d+)\]', a[name].spec_json())
        assert domains and set(domains) == {("0", "3999")}, name


def test_values_of_architecture_steps_are_drawn_to_the_latest_one_while_live(tmp_path):
    """While a run goes, the weight grid, the gap and the cell's size end at its latest
    architecture step, so an iteration without one leaves their data byte for byte as it was
    (the browser then leaves those charts alone); the losses and the schedule reach the newest
    row. Once the run has ended, everything reaches its last iteration."""
    store = RunStore(tmp_path / "live.sqlite")
    rid = _render_bench().make_synthetic_run(store, 300, "prime-crb")
    store.update_run(rid, status="running", finished=None)
    view = RunView(store, rid)
    view.refresh()
    arch = view.steps.loc[view.steps["arch_step"] == 1, "step"]
    last_arch, last = int(arch.iloc[-1]), view.last_step
    assert last_arch < last and L.held_until(view) == last_arch
    held = ("weights_normal", "weights_reduce", "regularizer_1", "size")
    before = {k: c.arrow_spec()["datasets"] for k, c in L.monitor_line_charts(view).items()}
    for name in held:
        tops = [int(df["iteration"].max()) for df in L.monitor_line_charts(view)[name].datasets.values()
                if "iteration" in df and len(df)]
        assert max(tops) == last_arch, name
    assert before["loss"] != {} and L.losses_charts(view)[0].datasets["train"]["iteration"].max() == last
    row = view.steps.iloc[-1].to_dict()
    store.add_steps(rid, [{**{k: v for k, v in row.items() if k in ("epoch", "gap", "active_ops", "lr")},
                           "step": last + 1, "arch_step": 0, "fi": 3.0, "train_loss": 0.5, "train_acc": 0.9}])
    view.refresh()
    after = {k: c.arrow_spec()["datasets"] for k, c in L.monitor_line_charts(view).items()}
    for name in held:
        assert after[name] == before[name], name
    assert after["loss"] != before["loss"] and after["schedule"] != before["schedule"]
    store.update_run(rid, status="finished")
    view.refresh()
    assert L.held_until(view) == last + 1
    ended = L.monitor_line_charts(view)
    assert ended["size"].datasets["size"]["iteration"].iloc[-1] == last + 1
    assert ended["regularizer_1"].datasets["gap"]["iteration"].iloc[-1] == last + 1


# ---- genotype ------------------------------------------------------------------------------
def _genotype_store(tmp_path, genotypes: list[Genotype]) -> RunView:
    store = RunStore(tmp_path / "g.sqlite")
    run_id = store.create_run(make_config("tiny", "darts"))
    for i, g in enumerate(genotypes):
        store.add_genotype(run_id, 10 * i, g.to_json(), 1000 + i)
    view = RunView(store, run_id)
    view.refresh()
    return view


def _with(g: Genotype, cell: str, k: int, pair) -> Genotype:
    pairs = list(g.cell(cell))
    pairs[k] = pair
    return dataclasses.replace(g, **{cell: tuple(pairs)})


def test_op_key_is_valid_vega_lite_in_the_palette():
    from core.engine.ops import DARTS_PRIMITIVES, OP_DESCRIPTIONS
    from core.viz.palette import op_key_spec

    assert list(OP_DESCRIPTIONS) == list(DARTS_PRIMITIVES)
    spec = op_key_spec(OP_DESCRIPTIONS)
    jsonschema.validate(spec, VEGA_LITE_SCHEMA)
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["range"] == [OP_COLORS[op] for op in DARTS_PRIMITIVES]
    # an op outside the palette gets its stable fallback colour, not a missing one
    other = op_key_spec({"sep_conv_3x3": "a", "my_op": "b"})["layer"][0]["encoding"]["color"]["scale"]
    assert other["range"] == [OP_COLORS["sep_conv_3x3"], op_color("my_op")]


def test_arrow_spec_is_what_streamlit_would_send_converted_once(views):
    view = views["prime-admm"]  # every chart of the monitor, the ADMM residuals included
    for name, chart in L.monitor_line_charts(view).items():
        spec = chart.arrow_spec()
        assert {k: v for k, v in spec.items() if k != "datasets"} == chart.spec, name
        # the same bytes Streamlit makes of each DataFrame, so an unchanged chart hashes the same
        assert spec["datasets"] == {k: convert_anything_to_arrow_bytes(df) for k, df in chart.datasets.items()}, name
        assert all(a is b for a, b in zip(spec["datasets"].values(), chart.arrow_spec()["datasets"].values()))


def test_genotype_change_log(tmp_path):
    g0 = DARTS_V2
    g1 = _with(g0, "normal", 7, ("sep_conv_3x3", 2))        # node 3: dil_conv_3x3 <- 2 changes op
    swapped = list(g1.normal)
    swapped[0], swapped[1] = swapped[1], swapped[0]            # node 0 reordered: not a change
    g2 = dataclasses.replace(g1, normal=tuple(swapped))
    g3 = _with(g2, "reduce", 2, ("avg_pool_3x3", 0))          # reduce node 1: skip <- 2 -> avg <- 0
    view = _genotype_store(tmp_path, [g0, g1, g2, g3])
    log = F.genotype_changes(view)
    assert log.to_dict("records") == [
        {"step": 10, "cell": "normal", "node": 3,
         "change": "normal node 3: dil_conv_3x3 <- 2 replaced by sep_conv_3x3 <- 2"},
        {"step": 30, "cell": "reduce", "node": 1,
         "change": "reduce node 1: skip_connect <- 2 replaced by avg_pool_3x3 <- 0"},
    ]


def test_cell_dot_labels_ops_and_weights(views, tmp_path):
    view = views["darts"]
    dot = F.cell_dot(view, "normal")
    g = view.genotype(-1)
    assert g.normal_weights, "a derived genotype carries its edge weights"
    for (op, _), w in zip(g.normal, g.normal_weights):
        assert f'label="{op}\\n{w:.2f}"' in dot
    n = len(view.genotypes)
    assert f"Normal cell · genotype {n} of {n} (latest) · derived at iteration {int(view.genotypes['step'].iloc[-1])}" in dot
    first = F.cell_dot(view, "reduce", index=0)
    assert f"Reduction cell · genotype 1 of {n}" in first
    assert f"derived at iteration {int(view.genotypes['step'].iloc[0])}" in first
    assert (n == 1) == ("(latest)" in first)
    assert F.cell_dot(view, "normal", index=10_000) == dot  # clamped
    plain = _genotype_store(tmp_path, [DARTS_V1])
    assert "sep_conv_3x3" in F.cell_dot(plain, "normal")


def test_cell_dot_of_each_genotype_has_its_own_node_ids(tmp_path):
    # d3-graphviz prepares a morph between drawings whose node ids match (0.33 core in Chromium
    # for two cells redrawn each second); the monitor's cells share none, with the same labels.
    view = _genotype_store(tmp_path, [DARTS_V1, DARTS_V2])
    node = re.compile(r'^  "([^"]+)" \[(?:label="([^"]+)", )?', re.M)
    plain = {m.group(1) for m in node.finditer(genotype_dot(DARTS_V2, "normal"))}
    assert plain == {"c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"}
    drawn = [dict(node.findall(F.cell_dot(view, "normal", index=i))) for i in (0, 1)]
    for ids in drawn:
        assert set(ids.values()) == plain  # the same names are shown
    assert not set(drawn[0]) & set(drawn[1])
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)"', F.cell_dot(view, "normal", index=1), re.M)
    assert len(edges) == 8 + 4 and {x for e in edges for x in e} == set(drawn[1])


def test_agreement():
    assert F.agreement(DARTS_V1, DARTS_V1) == 1.0
    # By hand, (cell, node, input, op) choices shared by DARTS_V1 and DARTS_V2:
    #   normal: node 0 both, node 1 (sep_conv_3x3, 1), node 2 both, node 3 none      -> 5
    #   reduce: node 0 both, node 1 (skip, 2), node 2 both, node 3 (skip, 2)          -> 6
    # 11 shared of 8 + 8 + 8 + 8 - 11 = 21 distinct.
    assert F.agreement(DARTS_V1, DARTS_V2) == pytest.approx(11 / 21)
    m = F.agreement_matrix({"v1": DARTS_V1, "v2": DARTS_V2, "v1 again": DARTS_V1})
    assert list(m.index) == list(m.columns) == ["v1", "v2", "v1 again"]
    np.testing.assert_allclose(np.diag(m.to_numpy()), 1.0)
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)
    assert m.loc["v1", "v1 again"] == 1.0 and m.loc["v2", "v1"] == pytest.approx(11 / 21)


# ---- empty data ----------------------------------------------------------------------------------
def test_empty_and_unread_runs_wait(tmp_path):
    store = RunStore(tmp_path / "e.sqlite")
    run_id = store.create_run(make_config("tiny", "prime-admm"))
    fresh = RunView(store, run_id)
    fresh.refresh()
    unread = RunView(store, run_id)           # never refreshed
    missing = RunView(store, 12345)
    missing.refresh()
    for view in (fresh, unread, missing):
        assert _waiting(_valid(F.op_weights_heatmap(view, "reduce")))
        assert L.monitor_line_charts(view) == {}
        assert F.genotype_changes(view).empty
        assert F.WAITING in F.cell_dot(view, "normal")
    # Steps but no ADMM update yet: the ADMM row says so instead of staying blank.
    store.add_steps(run_id, [{"step": 0, "arch_step": 0, "fi": 1.0, "gap": 1.0, "train_loss": 2.0}])
    fresh.refresh()
    admm = _vl_valid(L.regularizer_charts(fresh)[-1])
    assert admm.datasets["note"]["text"].tolist() == ["no ADMM update yet (every 10 architecture steps)"]
    assert admm.datasets["values"].empty and admm.caption.startswith("0 ADMM updates")


# ---- long runs -------------------------------------------------------------------------------------
def test_downsample_keeps_extremes_and_kept_points():
    rng = np.random.default_rng(0)
    y = rng.random(20_000)
    y[12_345] = 50.0   # a spike
    y[777] = -50.0
    keep = np.zeros(20_000, bool)
    keep[::97] = True  # 207 points that must stay
    idx = F.downsample(y, 1500, keep)
    assert len(idx) <= 1500 and np.all(np.diff(idx) > 0)
    assert {0, 19_999, 12_345, 777} <= set(idx.tolist())
    assert set(np.flatnonzero(keep).tolist()) <= set(idx.tolist())
    assert len(F.downsample(y[:100], 1500)) == 100
    with_nan = np.where(np.arange(20_000) % 3 == 0, np.nan, y)
    assert not np.isnan(with_nan[F.downsample(with_nan, 300)]).all()


def test_long_run_figures_stay_bounded(long_view):
    view = long_view
    assert len(view.steps) == 20_000 and view.arch_steps > 1500
    for name, fig in F.monitor_figures(view).items():
        if not isinstance(fig, go.Figure):
            continue
        for t in fig.data:
            n = len(t.x) if t.x is not None else 0
            if t.type == "scatter":
                assert n <= F.MAX_POINTS, (name, t.name, n)
    for name, chart in L.monitor_line_charts(view).items():
        for key, df in chart.datasets.items():
            if name.startswith("weights") and key != "pruned":  # a line per op on each edge
                assert df.groupby(["op", "series"]).size().max() <= L.GRID_MAX_POINTS, (name, key)
            elif key == "arch":
                assert len(df) == view.arch_steps  # markers stay exact (under MAX_MARKERS)
            elif key in ("updates", "values"):
                assert len(df) == len(view.updates) * (2 if key == "values" else 1)
            else:  # the penalty terms hold two series of up to MAX_POINTS each
                assert len(df) <= F.MAX_POINTS * df["series"].nunique() if "series" in df else \
                    len(df) <= F.MAX_POINTS, (name, key, len(df))
    grid = L.op_weights_chart(view, "normal")
    marks = grid.datasets["pruned"]["iteration"]
    assert sorted(marks) == sorted(view.pruned.loc[view.pruned["cell_type"] == "normal", "step"])
    # What a page sends per refresh: its charts' Arrow data (the grid of one cell type at a time).
    sent = sum(len(b) for name, c in L.monitor_line_charts(view).items()
               if name != "weights_reduce" for b in c.arrow_spec()["datasets"].values())
    assert sent < 1_000_000, sent
