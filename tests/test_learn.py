"""The Learn page: its toys' numbers (core.viz.toys on the engine's real parts), the published
cells NASNet-A and AmoebaNet-A in the evaluation network, and the page itself in AppTest:
every section with defaults, every control changing its section's numbers, Step / Play /
Reset / scrub, Launch pre-filled, and a published cell evaluated in a worker process."""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
import torch

from core.engine.activations import op_names
from core.engine.evalnet import EvalNetwork, architecture_size, count_parameters
from core.engine.genotype import AMOEBANET_A, NASNET_A, PUBLISHED, Genotype
from core.engine.ops import DARTS_PRIMITIVES, EVAL_ONLY_OPS, create_op
from core.runs.cell_runs import GROUP, genotype_run
from core.runs.evaluation import run_genotype
from core.runs.store import RunStore
from core.viz import toys
from core.viz.toy_figures import alpha_figure, choice_table, partial_genotype
from tests.conftest import new_app
from tests.helpers import page_texts

LEARN = "pages/learn.py"


# ---- section 1: activations -----------------------------------------------------------------
def test_crb_prunes_an_op_with_strongly_negative_usefulness_for_good():
    useful = {**toys.DEFAULT_USEFULNESS, "max_pool_3x3": -1.0, "skip_connect": 0.0}
    run = toys.alpha_run("crb", useful, lr=0.1, steps=30)
    k = run.ops.index("max_pool_3x3")
    # CRB starts every alpha at 1/7 (+1e-4 noise) and a step moves it by lr * 1.0 = 0.1.
    assert run.pruned_at["max_pool_3x3"] == 2
    assert (run.weights[2:, k] == 0).all() and (run.alphas[2:, k] == 0).all()
    assert not run.live(2)[k] and run.live(1)[k]
    assert "skip_connect" not in run.pruned_at  # zero usefulness: no gradient, never pruned
    # A later positive usefulness cannot revive it: pruning is permanent.
    flip = toys.alpha_run("crb", useful, lr=0.1, noise=2.0, steps=30)
    after = flip.pruned_at.get("max_pool_3x3")
    if after is not None:
        assert (flip.weights[after:, k] == 0).all()


def test_softmax_weights_stay_a_distribution_and_compete():
    runs = toys.alpha_toy(toys.DEFAULT_USEFULNESS, lr=1.0, noise=0.5, steps=60)
    w = runs["softmax"].weights
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-9)
    assert (w > 0).all()
    # One op useful, the rest neutral: it rises and every other falls.
    one = {op: 0.0 for op in DARTS_PRIMITIVES} | {"sep_conv_3x3": 1.0}
    sm = toys.alpha_run("softmax", one, lr=1.0, steps=20)
    k = sm.ops.index("sep_conv_3x3")
    assert sm.weights[-1, k] > sm.weights[0, k] + 0.3
    others = np.delete(np.arange(len(sm.ops)), k)
    assert (sm.weights[-1, others] < sm.weights[0, others]).all()
    assert runs["softmax"].pruned_at == {} and runs["sigmoid"].pruned_at == {}


def test_sigmoid_weights_move_independently_and_softmax_ones_do_not():
    base = {op: 0.0 for op in DARTS_PRIMITIVES}
    changed = base | {"sep_conv_3x3": 1.0}
    k = op_names("sigmoid").index("skip_connect")
    a, b = (toys.alpha_run("sigmoid", u, lr=0.5, steps=20) for u in (base, changed))
    np.testing.assert_allclose(a.weights[:, k], b.weights[:, k])
    a, b = (toys.alpha_run("softmax", u, lr=0.5, steps=20) for u in (base, changed))
    assert b.weights[-1, k] < a.weights[-1, k] - 0.01


def test_alpha_toy_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match="lr"):
        toys.alpha_run("softmax", {}, lr=0.0)
    with pytest.raises(ValueError, match="activations"):
        toys.alpha_toy({}, activations=())


def test_alpha_figure_shows_the_chosen_step():
    runs = toys.alpha_toy(toys.DEFAULT_USEFULNESS, lr=0.5, steps=10)
    fig = alpha_figure(runs, 4)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 3
    np.testing.assert_allclose(bars[2].y, runs["crb"].weights[4])
    assert all(len(t.x) == 5 for t in fig.data if t.type == "scatter")


# ---- section 2: the informed schedule -------------------------------------------------------
@pytest.mark.parametrize("period", [1, 3, 10])
def test_step_ratio_approaches_one_over_period_plus_one_on_stationary_fi(period):
    fi = toys.synthetic_fi(3000, level=5.0, noise=0.3, seed=1)
    trace = toys.schedule_trace(fi, period=period)
    assert trace.target == pytest.approx(1 / (period + 1))
    assert abs(trace.ratio[-1] - trace.target) < 0.01
    # The same at any FI level: the threshold finds it.
    low = toys.schedule_trace(toys.synthetic_fi(3000, level=0.01, noise=0.3), period=period)
    assert abs(low.ratio[-1] - trace.target) < 0.02


def test_schedule_trace_follows_the_engine_schedule_call_by_call():
    from core.engine.schedules import InformedSchedule

    fi = toys.synthetic_fi(200, 2.0, 0.5, seed=3)
    trace = toys.schedule_trace(fi, period=4, multiplier=1.1, ewma=0.3, init_threshold=0.5)
    s = InformedSchedule(period=4, multiplier=1.1, ewma=0.3, init_threshold=0.5)
    for i, f in enumerate(fi):
        assert trace.threshold[i] == s.threshold
        assert trace.stepped[i] == s.should_step()
        s.observe(f)
        assert trace.fi_ewma[i] == s.fi_ewma
    with pytest.raises(ValueError, match="level"):
        toys.synthetic_fi(10, level=0)


# ---- section 3: proximity and ADMM ----------------------------------------------------------
def test_proximity_pulls_toward_the_cell_and_the_gap_falls():
    tr = toys.pull_trace("proximity", "crb", rho=1.0, progress=1.0, lr=0.05, steps=40)
    assert tr.gap[-1] < 0.6 * tr.gap[0]
    assert (np.diff(tr.gap) <= 1e-9).all()
    # D(A) is one-hot on kept edges: two per node on this 2-node cell.
    assert tr.D[-1].sum() == 4 and set(np.unique(tr.D[-1])) == {0.0, 1.0}
    still = toys.pull_trace("proximity", "crb", rho=1.0, progress=0.0, steps=10)
    np.testing.assert_allclose(still.gap, still.gap[0])
    strong = toys.pull_trace("proximity", "crb", rho=3.0, progress=1.0, lr=0.05, steps=40)
    assert strong.gap[10] < tr.gap[10]


def test_admm_updates_z_and_u_on_its_cadence():
    tr = toys.pull_trace("admm", "crb", rho=2.0, admm_every=4, lr=0.1, steps=40)
    assert tr.updates == tuple(range(4, 41, 4))
    assert tr.Z is not None and tr.U is not None
    # Z changes only at updates; after the first it is the discrete projection (one-hot rows).
    assert (tr.Z[1] == tr.Z[0]).all() and not (tr.Z[4] == tr.Z[3]).all()
    assert set(np.unique(tr.Z[4])) <= {0.0, 1.0}
    assert tr.gap[-1] < tr.gap[0]
    with pytest.raises(ValueError, match="regularizer"):
        toys.pull_trace("entropy")


# ---- section 4: the rule ----------------------------------------------------------------------
HAND_OPS = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]
HAND = np.array([
    [0.90, 0.05, 0.03, 0.02],   # node 0 <- c_{k-2}: best non-none op max_pool (0.05)
    [0.10, 0.20, 0.60, 0.10],   # node 0 <- c_{k-1}: skip (0.6)
    [0.10, 0.10, 0.10, 0.70],   # node 1 <- c_{k-2}: sep (0.7)
    [0.00, 0.30, 0.30, 0.40],   # node 1 <- c_{k-1}: sep (0.4), the weakest of node 1: dropped
    [0.00, 0.45, 0.50, 0.05],   # node 1 <- node 0: skip (0.5)
])


def test_rule_choice_on_a_hand_made_matrix():
    c = toys.cell_choice(HAND, HAND_OPS)
    assert [(e, k) for e, k, _ in c.kept] == [(1, 2), (0, 1), (2, 3), (4, 2)]
    assert c.genotype.normal == (("skip_connect", 1), ("max_pool_3x3", 0), ("sep_conv_3x3", 0),
                                 ("skip_connect", 2))
    # FairDARTS's threshold rule at 0.55 keeps only edges whose best op reaches it.
    t = toys.cell_choice(HAND, HAND_OPS, rule="threshold", threshold=0.55)
    assert [(e, k) for e, k, _ in t.kept] == [(1, 2), (2, 3)]
    # Step by step: node by node.
    assert c.decided(0) == [] and [e for e, _, _ in c.decided(1)] == [1, 0]
    half = partial_genotype(c, HAND_OPS, 1)
    assert half.pairs_by_node("normal") == {2: (("skip_connect", 1), ("max_pool_3x3", 0)), 3: ()}
    html = choice_table(HAND, HAND_OPS, c, 2).to_html()
    styled = {kind: {cell for sel, body in re.findall(r"([^{}]+)\{([^}]*)\}", html.split("</style>")[0])
                     if kind in body for cell in re.findall(r"row\d+_col\d+", sel)}
              for kind in ("font-weight: bold", "#bdbdbd")}
    assert styled["font-weight: bold"] == {"row1_col2", "row0_col1", "row2_col3", "row4_col2"}
    assert styled["#bdbdbd"] == {f"row3_col{k}" for k in range(4)}  # the dropped edge
    with pytest.raises(ValueError, match="weights"):
        toys.cell_choice(-HAND, HAND_OPS)
    with pytest.raises(ValueError, match="not a DARTS cell"):
        toys.cell_choice(HAND[:4], HAND_OPS)


# ---- published cells ------------------------------------------------------------------------
@pytest.mark.parametrize("g, size", [(NASNET_A, 3_830_950), (AMOEBANET_A, 3_145_078)])
def test_nasnet_and_amoebanet_sizes(g, size):
    assert architecture_size(g, C=36, num_classes=10, layers=20) == size
    assert count_parameters(EvalNetwork(36, 10, 20, auxiliary=True, genotype=g)) == size
    net = EvalNetwork(4, 10, 3, auxiliary=False, genotype=g, in_channels=1).eval()
    logits, _ = net(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 10)
    assert g.steps("normal") == 5


def test_published_cells_parse_from_darts_text_and_keep_the_search_space():
    text = """Genotype(
      normal = [('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0),
        ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0),
        ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1),],
      normal_concat = [2, 3, 4, 5, 6],
      reduce = [('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1),
        ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3),
        ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1),],
      reduce_concat = [4, 5, 6],
    )"""
    assert Genotype.parse(text) == NASNET_A
    assert NASNET_A.output_states("reduce") == (4, 5, 6)
    assert not set(EVAL_ONLY_OPS) & set(DARTS_PRIMITIVES)
    assert not set(EVAL_ONLY_OPS) & set(op_names("softmax"))
    y = create_op("conv_7x1_1x7", 4, 2, affine=True)(torch.randn(1, 4, 8, 8))
    assert y.shape == (1, 4, 4, 4)
    assert set(PUBLISHED) >= {"DARTS V1 (first order)", "DARTS V2 (second order)", "NASNet-A",
                              "AmoebaNet-A"}


def test_genotype_run_holds_only_the_genotype_and_is_reused(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    a = genotype_run(store, AMOEBANET_A, "AmoebaNet-A")
    assert genotype_run(store, AMOEBANET_A, "AmoebaNet-A") == a
    assert genotype_run(store, NASNET_A, "NASNet-A") != a
    run = store.get_run(a)
    assert run.status == "finished" and run.group == GROUP and run.size == 3_145_078
    assert run_genotype(store, a) == AMOEBANET_A
    store.close()


# ---- the page (AppTest) ---------------------------------------------------------------------
def _learn():
    at = new_app()
    at.run()
    at.switch_page(LEARN)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _chart(at, key: str) -> dict:
    [spec] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id]
    return spec


def _data(fig: dict) -> str:
    return json.dumps(fig["data"], sort_keys=True)


def _run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_renders_every_section_with_defaults(app_db):
    at = _learn()
    heads = [h.value for h in at.header]
    assert heads[:4] == ["1. How alpha becomes operation weights",
                         "2. When to take an architecture step",
                         "3. Pulled toward a cell: proximity and ADMM", "4. From weights to a cell"]
    assert len(at.get("plotly_chart")) == 4
    assert len(at.latex) >= 3
    assert len(at.get("graphviz_chart")) == 5  # section 4's cell, the two cells of each side
    assert len([b for b in at.button if b.key.endswith("_launch")]) == 4
    fig = _chart(at, "l1_chart")
    assert len([t for t in fig["data"] if t["type"] == "bar"]) == 3
    texts = page_texts(at)
    assert "3,830,950" in " ".join(m.value for m in at.metric)  # NASNet-A is shown by default
    assert "weights sum to 1.00" in texts


SECTION_CONTROLS = [
    ("l1_chart", "slider", "l1_lr", 1.5),
    ("l1_chart", "slider", "l1_noise", 0.5),
    ("l1_chart", "slider", "l1_u_sep_conv_3x3", -1.0),
    ("l1_chart", "multiselect", "l1_acts", ["softmax"]),
    ("l2_chart", "slider", "l2_period", 3),
    ("l2_chart", "slider", "l2_mult", 1.2),
    ("l2_chart", "slider", "l2_ewma", 0.8),
    ("l2_chart", "select_slider", "l2_init", 100.0),
    ("l2_chart", "select_slider", "l2_level", 10.0),
    ("l2_chart", "slider", "l2_noise", 1.0),
    ("l2_chart", "checkbox", "l2_seed", True),
    ("l3_bars", "radio", "l3_reg", "admm"),
    ("l3_bars", "radio", "l3_act", "softmax"),
    ("l3_gap", "slider", "l3_rho", 3.0),
    ("l3_gap", "slider", "l3_every", 6),
    ("l3_gap", "slider", "l3_t", 0.3),
    ("l3_gap", "slider", "l3_lr", 0.2),
    ("l3_gap", "number_input", "l3_seed", 5),
]


@pytest.mark.parametrize("chart, kind, key, value", SECTION_CONTROLS,
                         ids=[c[2] for c in SECTION_CONTROLS])
def test_each_control_changes_its_sections_numbers(app_db, chart, kind, key, value):
    at = _learn()
    prefix = key[:2]
    at.slider(key=f"{prefix}_pos").set_value(at.slider(key=f"{prefix}_pos").max)
    before = _run(at)
    old = _data(_chart(before, chart))
    others = {k: _data(v) for k, v in _charts(before).items() if f"-{prefix}_" not in k}
    getattr(at, kind)(key=key).set_value(value)
    _run(at)
    assert _data(_chart(at, chart)) != old
    # Only that section's numbers move.
    assert {k: _data(v) for k, v in _charts(at).items() if f"-{prefix}_" not in k} == others
    assert len(others) == 3 - (prefix == "l3")  # the other sections' charts, unchanged


def test_section1_crb_pruning_is_reported_with_its_step(app_db):
    at = _learn()
    at.multiselect(key="l1_acts").set_value(["crb"])
    at.slider(key="l1_lr").set_value(0.1)
    at.slider(key="l1_u_max_pool_3x3").set_value(-1.0)
    _run(at)
    at.slider(key="l1_pos").set_value(10)
    _run(at)
    assert "`max_pool_3x3` at step 2" in page_texts(at)
    bars = [t for t in _chart(at, "l1_chart")["data"] if t["type"] == "bar"][0]
    assert "pruned @2" in bars["text"]


def test_step_play_reset_and_scrub(app_db):
    at = _learn()
    assert at.slider(key="l1_pos").value == 0
    at.button(key="l1_step").click()
    _run(at)
    assert at.slider(key="l1_pos").value == 1
    at.button(key="l1_play").click()
    _run(at)  # Play reruns the page with the section's timer on; each run moves a step
    assert at.session_state["l1_playing"] is True
    assert at.button(key="l1_play").label == "Pause"
    first = at.slider(key="l1_pos").value
    _run(at)
    assert at.slider(key="l1_pos").value == first + 1
    at.button(key="l1_play").click()
    _run(at)
    assert at.session_state["l1_playing"] is False
    paused = at.slider(key="l1_pos").value
    _run(at)
    assert at.slider(key="l1_pos").value == paused
    at.slider(key="l1_pos").set_value(40)
    _run(at)
    lines = [t for t in _chart(at, "l1_chart")["data"] if t["type"] == "scatter"]
    assert {len(t["x"]) for t in lines} == {41}  # steps 0..40 drawn
    at.button(key="l1_reset").click()
    _run(at)
    assert at.slider(key="l1_pos").value == 0


def test_section2_ratio_metric_approaches_its_target(app_db):
    at = _learn()
    at.slider(key="l2_period").set_value(3)
    _run(at)
    at.slider(key="l2_pos").set_value(at.slider(key="l2_pos").max)
    _run(at)
    m = {x.label: x.value for x in at.metric}
    assert m["Target 1/(period+1)"] == "0.250"
    assert abs(float(m["Step ratio so far"]) - 0.25) < 0.03


def test_section3_gap_falls_under_the_pull(app_db):
    at = _learn()
    at.slider(key="l3_pos").set_value(40)
    _run(at)
    m = {x.label: x.value for x in at.metric}
    assert float(m["Gap at step 40"]) < float(m["Gap at the start"])


def test_section4_controls_and_the_edited_matrix(app_db):
    at = _learn()
    dots = lambda: [g.proto.spec for g in at.get("graphviz_chart")]  # noqa: E731
    full = dots()[0]  # the section opens with every node decided
    at.slider(key="l4_pos").set_value(0)
    _run(at)
    assert dots()[0].count("penwidth=2") == 0  # no node decided yet
    at.button(key="l4_step").click()
    _run(at)
    assert dots()[0].count("penwidth=2") == 2  # node 0's two inputs
    at.slider(key="l4_pos").set_value(at.slider(key="l4_pos").max)
    _run(at)
    assert dots()[0] == full
    assert full.count("penwidth=2") == 6  # three nodes, two inputs each
    for kind, key, value in (("slider", "l4_nodes", 2), ("number_input", "l4_seed", 3),
                             ("radio", "l4_rule", "threshold")):
        getattr(at, kind)(key=key).set_value(value)
        _run(at)
        assert dots()[0] != full
        full = dots()[0]
    at.slider(key="l4_threshold").set_value(0.2)
    _run(at)
    assert dots()[0] != full


def test_launch_opens_prefilled(app_db):
    at = _learn()
    at.button(key="l1_launch").click()
    _run(at)
    assert at.selectbox(key="launch_method").value == "prime-crb"
    assert at.selectbox(key="launch_preset").value == "demo"
    assert at.selectbox(key="cfg_activation").value == "crb"


def test_published_cells_drawn_sized_and_pasted(app_db):
    at = _learn()
    at.selectbox(key="l5_published").set_value("AmoebaNet-A")
    _run(at)
    assert "3,145,078" in [m.value for m in at.metric]
    assert any("conv_7x1_1x7" in g.proto.spec for g in at.get("graphviz_chart"))
    at.selectbox(key="l5_published").set_value("paste a genotype")
    _run(at)
    at.text_area(key="l5_text").set_value("Genotype(normal=[('conv_9x9', 0)])")
    _run(at)
    assert any("Genotype text" in e.value for e in at.error)
    at.text_area(key="l5_text").set_value(str(NASNET_A))
    _run(at)
    assert not at.error
    assert "3,830,950" in [m.value for m in at.metric]


def test_evaluate_a_published_cell_in_a_worker_process(app_db):
    at = _learn()
    at.selectbox(key="l5_preset").set_value("tiny")
    at.selectbox(key="l5_published").set_value("AmoebaNet-A")
    _run(at)
    at.button(key="l5_eval_published").click()
    _run(at)
    store = RunStore(app_db)
    [run] = store.list_runs(group=GROUP)
    assert run.name == "AmoebaNet-A"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ev = store.evaluations([run.id])
        if len(ev) and ev["status"].iloc[0] in ("finished", "failed"):
            break
        time.sleep(0.5)
    row = ev.iloc[0]
    assert row["status"] == "finished", row["error"]
    assert int(row["pid"]) != os.getpid()
    assert int(row["params"]) > 0
    _run(at)
    assert any("evaluation" in str(d.value.columns.tolist()) for d in at.dataframe)
    store.close()
