"""Comparison of methods across seeds: a tiny study run to the end (runs, evaluation, summary),
genotype agreement, seed-averaged curves, the figures drawn from them, StudySpec validation, and
the Compare page (AppTest) empty, with the finished study, and with its New study form."""
from __future__ import annotations

import base64
import json
import os
import threading
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.engine.config import ConfigError
from core.engine.genotype import DARTS_V1, DARTS_V2
from core.engine.measures import separated_share, separation
from core.runs.runner import RunManager, run_study
from core.runs.store import RunStore
from core.runs.study import StudySpec, launch_study
from core.viz import compare
from core.viz import compare_figures as cf
from core.viz.figures import agreement
from tests.conftest import copy_store, new_app
from tests.helpers import page_texts as _texts

STUDY = "tiny-study"
METHODS = ["darts", "darts-prime"]
SEEDS = 2
PAGE = "pages/compare.py"
# core.viz.compare.method_curves averages grid points no seed has reached yet (NaN by design).
pytestmark = [pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Degrees of freedom <= 0:RuntimeWarning")]


@pytest.fixture(scope="session")
def study_template(tmp_path_factory) -> tuple[str, dict, list[int]]:
    """(path, summary, run ids) of a store holding a finished 2-method x 2-seed tiny study,
    every run evaluated with the tiny evaluation preset (in worker processes: run_study returns
    once the manager's evaluation jobs have ended). Made once: it takes most of the time."""
    path = str(tmp_path_factory.mktemp("study") / "study.sqlite")
    store = RunStore(path)
    spec = StudySpec(STUDY, METHODS, seeds=SEEDS, preset="tiny",
                     overrides={"epochs": 1, "iters_per_epoch": 3}, evaluate=True, eval_preset="tiny")
    ids = run_study(store, spec)
    assert sorted(ids) == sorted(r.id for r in store.list_runs(group=STUDY))
    summary = compare.study_summary(store, ids)
    ids = sorted(ids)
    store.close()
    return path, summary, ids


@pytest.fixture
def study_db(app_db, study_template):
    """The app's store holds the finished study; yields (path, run ids)."""
    copy_store(study_template[0], str(app_db))
    return app_db, study_template[2]


# ---- core ------------------------------------------------------------------------------------
def test_tiny_study_runs_to_the_end_with_evaluations(study_template):
    path, summary, ids = study_template
    store = RunStore(path)
    assert len(ids) == len(METHODS) * SEEDS
    assert all(r.status == "finished" for r in store.list_runs(ids=ids)), \
        [(r.name, r.status, r.error) for r in store.list_runs(ids=ids)]
    assert store.get_study(STUDY)["methods"] == METHODS
    assert [m["method"] for m in summary["methods"]] == METHODS
    for m in summary["methods"]:
        assert m["runs"] == SEEDS and m["finished"] == SEEDS
        assert 0.0 <= m["test_acc_mean"] <= 1.0 and m["test_acc_std"] >= 0.0
        assert m["size_mean"] > 0
    for r in summary["runs"]:
        assert 0.0 <= r["test_acc"] <= 1.0
    evals = store.evaluations(ids)
    assert sorted(evals["run_id"]) == ids and set(evals["status"]) == {"finished"}
    assert evals["test_acc"].between(0, 1).all() and (evals["params"] > 0).all()
    assert evals["pid"].notna().all() and os.getpid() not in set(evals["pid"])  # worker processes
    assert not any(t.name.startswith("study-") for t in threading.enumerate())
    a = summary["agreement"]
    assert 0.0 <= a["within"] <= 1.0 and 0.0 <= a["across"] <= 1.0


def test_a_run_agrees_with_itself(study_template):
    path, _, ids = study_template
    store = RunStore(path)
    genos = compare.final_genotypes(store, ids)
    assert set(genos) == set(ids)
    for g in genos.values():
        assert agreement(g, g) == 1.0
    mat, mm = compare.agreement_summary(store, compare.runs_table(store, ids))
    assert mat.shape == (len(ids), len(ids))
    assert np.allclose(np.diag(mat.to_numpy()), 1.0)
    assert np.allclose(mat.to_numpy(), mat.to_numpy().T)
    assert list(mm.index) == METHODS


def test_agreement_of_the_two_darts_cells_is_counted_by_hand():
    # Choices are (cell, node, input, op), 16 per genotype (8 edges per cell, all distinct).
    # normal, shared: node0 (1,sep3) (0,sep3); node1 (1,sep3); node2 (0,skip) (1,sep3)    -> 5
    #   V1 only: node1 (0,skip), node3 (0,sep3) (2,skip); V2 only: node1 (0,sep3),
    #   node3 (0,skip) (2,dil3)
    # reduce, shared: node0 (0,max) (1,max); node1 (2,skip); node2 (0,max) (2,skip);
    #   node3 (2,skip)                                                                   -> 6
    #   V1 only: node1 (0,max), node3 (0,avg); V2 only: node1 (1,max), node3 (1,max)
    # intersection 5 + 6 = 11; union 16 + 16 - 11 = 21; Jaccard = 11 / 21
    assert agreement(DARTS_V1, DARTS_V2) == pytest.approx(11 / 21)
    assert agreement(DARTS_V2, DARTS_V1) == pytest.approx(11 / 21)
    mat = compare.agreement_matrix({"v1": DARTS_V1, "v2": DARTS_V2})
    assert mat.loc["v1", "v2"] == pytest.approx(11 / 21) and mat.loc["v1", "v1"] == 1.0


def _synthetic_runs(store: RunStore, series: dict[str, list[list[float]]]):
    """Runs named '<method>-s<seed>' in one group with the given gap values at steps 0, 1, ..."""
    from core.engine.config import make_config

    for method, seeds in series.items():
        for seed, values in enumerate(seeds):
            rid = store.create_run(make_config("tiny", "darts", seed=seed), name=f"{method}-s{seed}",
                                   group="synthetic", status="finished")
            store.add_steps(rid, [{"step": i, "gap": v} for i, v in enumerate(values)])
    ids = [r.id for r in store.list_runs(group="synthetic")]
    return compare.runs_table(store, ids)


def test_method_curves_average_seeds_on_a_shared_grid(tmp_path, study_template):
    store = RunStore(tmp_path / "curves.sqlite")
    runs = _synthetic_runs(store, {"a": [[1, 2, 3, 4, 5], [3, 4, 5, 6, 7]],
                                   "b": [[0, 0, 0], [2, 2, 2, 2, 2]]})
    curves = compare.method_curves(store, runs, "gap")
    assert list(curves) == ["a", "b"]
    for df in curves.values():
        assert df["step"].tolist() == [0, 1, 2, 3, 4]
    a, b = curves["a"], curves["b"]
    assert a["mean"].tolist() == [2, 3, 4, 5, 6] and a["std"].tolist() == [1] * 5
    assert a["n"].tolist() == [2] * 5
    # b's first seed ends at step 2: from there the mean is the other seed's alone
    assert b["mean"].tolist() == [1, 1, 1, 2, 2] and b["n"].tolist() == [2, 2, 2, 1, 1]
    assert b["std"].tolist() == [1, 1, 1, 0, 0]

    # the real study: both methods on one iteration grid, every point from both seeds
    path, _, ids = study_template
    real = RunStore(path)
    c = compare.method_curves(real, compare.runs_table(real, ids), "gap")
    assert list(c) == METHODS
    assert c["darts"]["step"].tolist() == c["darts-prime"]["step"].tolist() == [0, 1, 2]
    assert all((df["n"] == SEEDS).all() for df in c.values()), c


@pytest.mark.parametrize("kw, field", [
    (dict(methods=["darts"]), "methods"),
    (dict(methods=["darts", "darts", "fairdarts"]), "methods"),
    (dict(seeds=6), "seeds"),
    (dict(seeds=0), "seeds"),
    (dict(name="  "), "name"),
    (dict(overrides={"epochs": 0}), "epochs"),
    (dict(evaluate=True, eval_preset="nope"), "eval_preset"),
])
def test_study_spec_names_the_bad_field_and_launches_nothing(tmp_path, kw, field):
    spec = StudySpec(**{**dict(name="s", methods=["darts", "darts-prime"], seeds=2, preset="tiny"), **kw})
    with pytest.raises(ConfigError) as e:
        spec.validate()
    assert e.value.field == field
    store = RunStore(tmp_path / "s.sqlite")
    manager = RunManager(store)
    try:
        with pytest.raises(ConfigError):
            launch_study(manager, spec)
    finally:
        manager.shutdown()
    assert store.list_runs() == [] and store.studies() == []


# ---- figures ---------------------------------------------------------------------------------
def _valid(fig: go.Figure) -> dict:
    """The figure as JSON, rebuilt with Plotly's validation on (raises on a bad property)."""
    d = json.loads(fig.to_json())
    go.Figure(d)
    return d


def _annotated_empty(fig: go.Figure) -> bool:
    d = _valid(fig)
    return not d.get("data") and bool(d["layout"].get("annotations"))


def test_figures_say_so_when_empty():
    import pandas as pd

    assert _annotated_empty(cf.curves_figure({}, "Training loss", "loss"))
    assert _annotated_empty(cf.curves_figure({"darts": pd.DataFrame(columns=["step", "mean", "std", "n"])}))
    assert _annotated_empty(cf.agreement_heatmap(pd.DataFrame()))
    assert _annotated_empty(cf.method_bar(pd.DataFrame(), "test_acc_mean", "test_acc_std"))
    table = pd.DataFrame({"method": ["a"], "test_acc_mean": [None], "test_acc_std": [None]})
    assert _annotated_empty(cf.method_bar(table, "test_acc_mean", "test_acc_std"))


def test_figures_draw_one_colour_per_method(tmp_path):
    import pandas as pd

    store = RunStore(tmp_path / "f.sqlite")
    runs = _synthetic_runs(store, {"a": [[1, 2, 3], [2, 3, 4]], "b": [[5, 5, 5], [1, 1, 1]]})
    curves = compare.method_curves(store, runs, "gap")
    colors = cf.method_colors(["a", "b"])
    assert colors == {"a": cf.METHOD_PALETTE[0], "b": cf.METHOD_PALETTE[1]}
    d = _valid(cf.curves_figure(curves, "Gap", "gap", colors=colors))
    lines = [t for t in d["data"] if t.get("fill") != "toself"]
    bands = [t for t in d["data"] if t.get("fill") == "toself"]
    assert [t["line"]["color"] for t in lines] == [colors["a"], colors["b"]]
    assert len(bands) == 2 and all(t["mode"] == "lines" for t in bands)
    assert _valid(cf.curves_figure(curves, log_y=True))["layout"]["yaxis"]["type"] == "log"

    mat = compare.agreement_matrix({"v1": DARTS_V1, "v2": DARTS_V2})
    h = _valid(cf.agreement_heatmap(mat))["data"][0]
    assert h["type"] == "heatmap" and h["zmin"] == 0 and h["zmax"] == 1
    table = pd.DataFrame({"method": ["a", "b"], "size_mean": [100.0, 300.0], "size_std": [10.0, 0.0]})
    bar = _valid(cf.method_bar(table, "size_mean", "size_std", colors=colors))["data"][0]
    assert bar["marker"]["color"] == [colors["a"], colors["b"]]
    assert bar["error_y"]["visible"]


# ---- the Compare page (AppTest) ----------------------------------------------------------------
def _open(query: dict | None = None):
    at = new_app()
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _array(a) -> np.ndarray:
    if isinstance(a, dict) and "bdata" in a:  # plotly's typed-array JSON form
        flat = np.frombuffer(base64.b64decode(a["bdata"]), dtype=np.dtype(a["dtype"]))
        shape = a.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(a if a is not None else [], dtype=float)


def _array_len(a) -> int:
    return len(_array(a))


def _charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _frame(at, column: str):
    """The first table on the page with that column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _title(fig: dict) -> str:
    t = fig.get("layout", {}).get("title", {})
    return (t.get("text") if isinstance(t, dict) else t) or ""


def test_compare_page_empty_store(app_db):
    at = _open()
    assert at.title[0].value == "Compare"
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.get("graphviz_chart")
    form = next(e for e in at.expander if e.label == "New study")
    assert form.proto.expanded
    assert at.multiselect(key="study_methods").value == ["darts", "darts-prime"]


def test_compare_page_draws_the_finished_study(study_db):
    path, ids = study_db
    at = _open({"study": STUDY})
    assert at.selectbox(key="cmp_study").value == STUDY
    assert at.query_params["study"] == STUDY
    text = _texts(at)
    assert not at.error and not at.warning, [e.value for e in (*at.error, *at.warning)]
    for section in ("Progress", "Curves over iterations", "Final cells", "Genotype agreement",
                    "Results per method", "Export"):
        assert section in text, section
    assert "Live ·" not in text  # nothing is live: no auto-refresh
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs finished"] == f"{len(ids)} / {len(ids)}", metrics
    assert metrics["Evaluations done"] == f"{len(ids)} / {len(ids)}", metrics

    charts = {_title(c): c for c in _charts(at)}
    for title in ("Training loss", "Validation loss", "Discretization gap", "Regularizer penalty",
                  "Architecture size"):
        fig = charts[title]
        means = [t for t in fig["data"] if t.get("fill") != "toself"]
        assert [t["name"].split(" ")[0] for t in means] == METHODS, title
        assert all(_array_len(t["x"]) > 0 for t in means), title
    # genotype rows are change points: every method's size curve reaches the last iteration
    size = [t for t in charts["Architecture size"]["data"] if t.get("fill") != "toself"]
    assert [_array(t["x"])[-1] for t in size] == [2, 2], size
    assert all(t["name"].endswith(f"(n={SEEDS})") for t in size), size
    heat = charts["Genotype agreement (Jaccard)"]["data"][0]
    assert heat["type"] == "heatmap" and len(heat["x"]) == len(ids)
    z = _array(heat["z"]).astype(float)
    assert z.shape == (len(ids), len(ids))
    assert np.allclose(np.diag(z), 1.0) and ((0 <= z) & (z <= 1)).all()
    for title in ("Supernet validation accuracy", "Test accuracy (evaluated)",
                  "Architecture size (parameters)"):
        assert charts[title]["data"][0]["type"] == "bar", title

    # every run's two cells, with the cell's nodes and its chosen ops
    store = RunStore(str(path))
    genos = compare.final_genotypes(store, ids)
    dots = [c.proto.spec for c in at.get("graphviz_chart")]
    assert len(dots) == 2 * len(ids)
    for i, rid in enumerate(ids):
        for dot, ct in zip(dots[2 * i:2 * i + 2], ("normal", "reduce")):
            assert dot.lstrip().startswith("digraph")
            for node in ("c_{k-2}", "c_{k-1}", "c_{k}", '"0"', '"3"'):
                assert node in dot
            for op, _ in genos[rid].cell(ct):
                assert op in dot

    names = {m.label for m in at.metric}
    assert {"Within methods", "Across methods"} <= names
    table = _frame(at, "supernet val acc")
    assert table["method"].tolist() == METHODS and len(table) == 2
    assert table["test acc"].between(0, 1).all()
    assert at.button(key="cmp_evaluate").disabled  # every finished run is evaluated


def test_compare_page_any_runs_mode(study_db):
    _, ids = study_db
    at = _open()
    at.radio(key="cmp_mode").set_value("Any runs").run()
    assert not at.exception
    assert any("Choose the runs" in i.value for i in at.info)
    at.multiselect(key="cmp_runs").set_value(ids[:3]).run()
    assert not at.exception
    assert at.query_params["runs"] == ",".join(map(str, ids[:3]))
    assert "study" not in at.query_params
    assert len(at.get("graphviz_chart")) == 2 * 3
    assert len(_frame(at, "genotype")) == 3


def test_compare_evaluate_button_evaluates_in_the_background(study_db):
    """The button queues the evaluation with the RunManager: it trains in a worker process, the
    page shows it going and offers Stop, then shows the result."""
    path, ids = study_db
    store = RunStore(str(path))
    rid = ids[0]
    summary = {k: v for k, v in store.get_run(rid).summary.items() if k != "test_acc"}
    store.update_run(rid, summary=summary)
    before = len(store.evaluations([rid]))
    at = _open({"study": STUDY})
    assert at.multiselect(key="cmp_eval_pick").value == [rid]
    at.selectbox(key="cmp_eval_preset").set_value("tiny")
    at.button(key="cmp_evaluate").click().run()
    assert not at.exception
    job = at.session_state["compare_eval_job"]
    assert list(job["evals"]) == [rid]
    eid = job["evals"][rid]
    if store.get_evaluation(eid)["status"] in ("queued", "running"):
        assert any("Evaluating (0 of 1 done" in i.value for i in at.info)
        assert at.button(key="cmp_evaluate").disabled and not at.button(key="cmp_eval_stop").disabled
        assert "Live ·" in _texts(at)
    deadline = time.monotonic() + 120
    while store.get_evaluation(eid)["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the evaluation did not end"
        time.sleep(0.2)
    row = store.get_evaluation(eid)
    assert row["status"] == "finished", row["error"]
    assert row["pid"] not in (None, os.getpid())
    at.run()
    assert len(store.evaluations([rid])) == before + 1
    assert 0 <= store.get_run(rid).summary["test_acc"] <= 1
    assert at.multiselect(key="cmp_eval_pick").value == []
    assert at.button(key="cmp_evaluate").disabled
    assert "Last evaluation: 1 runs with preset `tiny`" in _texts(at)


def test_new_study_with_one_method_shows_the_error_and_creates_nothing(app_db):
    at = _open()
    at.multiselect(key="study_methods").set_value(["darts"]).run()
    at.button(key="study_start").click().run()
    assert not at.exception
    assert any("Nothing started" in e.value and "methods" in e.value for e in at.error)
    store = RunStore(str(app_db))
    assert store.list_runs() == [] and store.studies() == []


def test_new_study_starts_methods_times_seeds_runs_in_a_group(app_db):
    at = _open()
    at.multiselect(key="study_methods").set_value(["darts", "darts-prime"])
    at.selectbox(key="study_preset").set_value("tiny")
    at.number_input(key="study_seeds").set_value(2)
    at.number_input(key="study_epochs").set_value(1)
    at.number_input(key="study_ipe").set_value(3)
    at.text_input(key="study_name").input("form study").run()
    at.button(key="study_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(str(app_db))
    runs = store.list_runs(group="form study")
    assert len(runs) == 2 * 2
    assert sorted(r.name for r in runs) == ["darts-prime-s0", "darts-prime-s1", "darts-s0", "darts-s1"]
    assert all(r.config["preset"] == "tiny" and r.config["epochs"] == 1 for r in runs)
    assert store.get_study("form study")["seeds"] == 2
    # the new study is shown at once, and refreshes while its runs go
    assert at.query_params["study"] == "form study"
    assert at.selectbox(key="cmp_study").value == "form study"
    assert "Started study **form study**" in _texts(at)
    assert "Live ·" in _texts(at)
    assert at.text_input(key="study_name").value != "form study"  # a fresh name for the next one


# ---- what each method did: pruning, separation, the last cell change, architecture steps ------
FIGURE_COLUMNS = ["pruned_ops", "pruned_pct", "separation", "separated_edges", "last_genotype_change",
                  "arch_steps"]


def _crb_runs(store: RunStore):
    """Two seeds of a CRB method in group 'synthetic': seed 0 stored before summaries held the
    figures (rows only: steps, alphas, pruned events, genotypes), seed 1 with a full summary and
    no rows, and a third run, live, whose summary still holds a previous session's end."""
    from core.engine.config import make_config
    from core.viz.live import primitives_for

    cfg = make_config("tiny", "prime-crb")
    prims = primitives_for(cfg.to_dict())
    old = store.create_run(cfg.replace(seed=0), name="crb-s0", group="synthetic", status="finished")
    store.add_steps(old, [{"step": i, "arch_step": int(i % 2 == 0)} for i in range(8)])  # 4 arch steps
    rng = np.random.default_rng(0)
    weights = {ct: rng.uniform(0.05, 1.0, (14, len(prims))).astype(np.float32) for ct in ("normal", "reduce")}
    weights["normal"][0] = [0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]  # one clearly separated edge
    store.add_alphas(old, 0, {ct: np.full((14, len(prims)), 1 / len(prims), np.float32)
                              for ct in ("normal", "reduce")})
    store.add_alphas(old, 6, weights)
    pruned = [("normal", e, prims[e % len(prims)]) for e in range(5)] + [("reduce", 3, prims[0]),
                                                                          ("reduce", 4, prims[1]),
                                                                          ("reduce", 5, prims[2])]
    store.add_events(old, [{"kind": "pruned", "step": 2 * k, "message": f"{ct} edge {e}: {op} pruned",
                            "data": {"cell_type": ct, "edge": e, "op": op}}
                           for k, (ct, e, op) in enumerate(pruned)])
    # genotype rows: a change at 4, then the same cell again at 6 (as a resumed run writes it)
    store.add_genotype(old, 0, DARTS_V1.to_json(), 1000)
    store.add_genotype(old, 4, DARTS_V2.to_json(), 1100)
    store.add_genotype(old, 6, DARTS_V2.to_json(), 1100)
    full = {"pruned_ops": 20, "total_ops": 196, "pruned_pct": 10.2, "separation": 2.5,
            "separated_edges": 0.5, "last_genotype_change": 7, "arch_steps": 6, "iterations": 8}
    new = store.create_run(cfg.replace(seed=1), name="crb-s1", group="synthetic", status="finished")
    store.update_run(new, summary=full, iterations=8)
    live = store.create_run(cfg.replace(seed=2), name="live-s0", group="synthetic", status="running")
    store.add_steps(live, [{"step": i, "arch_step": 1} for i in range(3)])
    store.update_run(live, summary={**full, "pruned_ops": 99})
    expected_old = {"pruned_ops": len(pruned), "pruned_pct": round(100 * len(pruned) / 196, 2),
                    "separation": round(separation(weights, prims), 4),
                    "separated_edges": round(separated_share(weights, prims), 4),
                    "last_genotype_change": 4, "arch_steps": 4, "iterations": 8}
    return (old, expected_old), (new, full), live


def test_tables_show_what_each_run_did_from_its_summary_or_its_rows(tmp_path):
    store = RunStore(tmp_path / "figures.sqlite")
    (old, expected_old), (new, full), live = _crb_runs(store)
    runs = compare.runs_table(store, [old, new, live]).set_index("id")
    for col in FIGURE_COLUMNS + ["iterations"]:
        assert runs.loc[old, col] == pytest.approx(expected_old[col]), col  # from its rows
        assert runs.loc[new, col] == pytest.approx(full[col]), col          # from its summary
    assert expected_old["separated_edges"] > 0 and expected_old["pruned_ops"] == 8
    # the live run: from its rows, not from the summary of a previous session
    assert runs.loc[live, "pruned_ops"] == 0 and runs.loc[live, "arch_steps"] == 3
    assert pd.isna(runs.loc[live, "separation"]) and pd.isna(runs.loc[live, "last_genotype_change"])

    table = compare.method_table(runs.reset_index()).set_index("method")
    assert list(table.index) == ["crb", "live"]
    for col in FIGURE_COLUMNS:
        assert table.loc["crb", f"{col}_mean"] == pytest.approx((expected_old[col] + full[col]) / 2), col
    assert table.loc["live", "separation_mean"] is None or pd.isna(table.loc["live", "separation_mean"])
    # the study JSON: the same figures, null where a run has none
    summary = compare.study_summary(store, [old, new, live])
    json.dumps(summary, allow_nan=False)
    by_id = {r["id"]: r for r in summary["runs"]}
    assert by_id[live]["separation"] is None and by_id[old]["pruned_ops"] == 8
    crb = next(m for m in summary["methods"] if m["method"] == "crb")
    assert crb["pruned_pct_mean"] == pytest.approx((expected_old["pruned_pct"] + 10.2) / 2)


def test_study_summary_and_printout_carry_what_each_method_did(study_template):
    from core.__main__ import _study_method_lines

    path, summary, ids = study_template
    store = RunStore(path)
    runs = compare.runs_table(store, ids)
    for r in summary["runs"]:  # the study's JSON, as `python -m core study --json` prints it
        s = store.get_run(r["id"]).summary
        for col in FIGURE_COLUMNS:
            assert r[col] == s[col], col
        assert r["arch_steps"] == int(store.steps(r["id"])["arch_step"].sum())
    for m in summary["methods"]:
        g = runs[runs["method"] == m["method"]]
        for col in FIGURE_COLUMNS:
            assert m[f"{col}_mean"] == pytest.approx(g[col].astype(float).mean()), col
        text = _study_method_lines(m)
        assert f"pruned {m['pruned_ops_mean']:.1f} ops ({m['pruned_pct_mean']:.1f}%)" in text
        assert f"separation {m['separation_mean']:.2f}x" in text
        assert f"last changed at iteration {m['last_genotype_change_mean']:.0f}" in text
        assert f"arch steps {m['arch_steps_mean']:.1f}" in text


def test_compare_page_tables_show_what_each_method_did(study_db):
    path, ids = study_db
    store = RunStore(str(path))
    runs = compare.runs_table(store, ids)
    expected = compare.method_table(runs).set_index("method")
    at = _open({"study": STUDY})
    labels = {"pruned_ops_mean": "pruned ops", "pruned_pct_mean": "pruned %",
              "separation_mean": "separation (x uniform)", "separated_edges_mean": "edges ≥ 2x",
              "last_genotype_change_mean": "cell last changed (it)", "arch_steps_mean": "arch steps"}
    table = _frame(at, "supernet val acc").set_index("method")
    for col, label in labels.items():
        assert table[label].tolist() == pytest.approx(expected.loc[table.index, col].tolist()), label
    # each column explains itself on hover
    method_el = next(d for d in at.dataframe if "supernet val acc" in d.value.columns)
    config = json.loads(method_el.proto.columns)
    assert "Median over the edges" in config["separation (x uniform)"]["help"]
    assert "last changed" in config["cell last changed (it)"]["help"]
    # the per-run table: the same figures per run
    per_run = _frame(at, "genotype").set_index("id")
    for col in FIGURE_COLUMNS:
        assert per_run.loc[ids, col].astype(float).tolist() == pytest.approx(
            runs.set_index("id").loc[ids, col].astype(float).tolist()), col
