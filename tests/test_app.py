"""Headless tests of every page (Streamlit AppTest) against a temporary store: empty, with a
finished tiny run, and with a running one. They assert what a user sees: chart data, DOT of the
cells, table rows, messages."""
from __future__ import annotations

import base64
import json
import os
import re
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core.data import list_datasets
from core.engine.activations import list_activations
from core.engine.config import GROUPS, field_info, list_methods, list_presets, make_config
from core.engine.ops import DARTS_PRIMITIVES
from core.engine.regularizers import list_regularizers
from core.engine.schedules import list_schedules
from core.runs.store import RunStore
from core.viz.export import export_run
from core.viz.palette import OP_COLORS
from tests.conftest import RUNNING_UNTIL, new_app
from tests.helpers import page_texts as _texts

LABELS = ("method", "preset")


# ---- helpers ---------------------------------------------------------------------------------
def _page(at, path: str):
    at.switch_page(path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _open(path: str, query: dict | None = None):
    at = new_app()
    if query:
        for k, v in query.items():
            at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if path != "pages/home.py":
        _page(at, path)
    return at


def _array_len(a) -> int:
    if a is None:
        return 0
    if isinstance(a, dict) and "bdata" in a:  # plotly's typed-array JSON form
        return len(np.frombuffer(base64.b64decode(a["bdata"]), dtype=np.dtype(a["dtype"])))
    return len(a)


def _charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _points(fig: dict) -> int:
    return sum(_array_len(t.get("x")) for t in fig.get("data", []))


def _title(fig: dict) -> str:
    t = fig.get("layout", {}).get("title", {})
    return (t.get("text") if isinstance(t, dict) else t) or ""


def _line_charts(at) -> dict[str, dict[str, pd.DataFrame]]:
    """The page's Vega-Lite charts as {title: {dataset name: rows}}, decoded from what the
    browser receives (the spec in JSON, each named dataset in Arrow)."""
    out = {}
    for c in at.get("vega_lite_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["title"]["text"]] = {d.name: pa.ipc.open_stream(d.data.data).read_pandas()
                                      for d in c.proto.datasets}
    return out


def _dots(at) -> list[str]:
    return [c.proto.spec for c in at.get("graphviz_chart")]


def _store(path) -> RunStore:
    return RunStore(str(path))


def _wait_status(store: RunStore, run_id: int, statuses: tuple[str, ...], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = store.get_run(run_id).status
        if s in statuses:
            return s
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {store.get_run(run_id).status}, wanted {statuses}")


# ---- app shell and Home -----------------------------------------------------------------------
def test_sidebar_shows_device_and_live_runs(app_db):
    at = _open("pages/home.py")
    side = "\n".join(str(m.value) for m in at.sidebar.markdown)
    assert "Device:" in side and "cpu" in side
    assert "Live runs:** 0" in side


def test_home_empty_store(app_db):
    at = _open("pages/home.py")
    assert "PRIME Explorer" in at.title[0].value
    assert "DARTS-PRIME" in _texts(at)
    assert at.button(key="run_demo").label == "Run the demo"
    assert any(m.label == "Searches run on" and m.value == "CPU" for m in at.metric)
    # what a search shows: a cell from the literature, drawn as the Monitor draws cells, and the
    # op key, each op in its palette colour with what it does
    (dot,) = _dots(at)
    assert "Normal cell of DARTS" in dot and dot.count(f', color="{OP_COLORS["sep_conv_3x3"]}"') == 5
    assert dot.count(f', color="{OP_COLORS["skip_connect"]}"') == 2 and "dil_conv_3x3" in dot
    (chart,) = at.get("vega_lite_chart")
    key = json.loads(chart.proto.spec)
    assert key["title"]["text"] == "Operations and their colours"
    rows = pa.ipc.open_stream(chart.proto.data.data).read_pandas()  # Streamlit sends the values as Arrow
    assert rows["op"].tolist() == list(DARTS_PRIMITIVES) and rows["description"].str.len().min() > 5
    scale = key["layer"][0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == {op: OP_COLORS[op] for op in DARTS_PRIMITIVES}


def test_home_demo_button_starts_a_run_and_opens_its_monitor(app_db, monkeypatch):
    monkeypatch.setenv("PRIME_EXPLORER_DEMO_PRESET", "tiny")
    at = _open("pages/home.py")
    assert "preset `tiny`" in _texts(at)
    at.button(key="run_demo").click()
    at.run()
    assert not at.exception
    runs = _store(app_db).list_runs()
    assert len(runs) == 1 and runs[0].config["preset"] == "tiny" and runs[0].group == "demo"
    assert at.title[0].value.endswith("Monitor")
    assert at.query_params["run"] == str(runs[0].id)
    assert at.selectbox(key="monitor_select").value == runs[0].id


def test_home_reports_bad_demo_overrides(app_db, monkeypatch):
    monkeypatch.setenv("PRIME_EXPLORER_DEMO_OVERRIDES", "layers=1")
    at = _open("pages/home.py")
    assert any("layers" in e.value for e in at.error)
    assert not at.button  # no demo button for an invalid demo


# ---- Launch -------------------------------------------------------------------------------------
def test_launch_form_has_every_field_grouped_with_registry_choices(app_db):
    at = _open("pages/launch.py")
    assert [e.label for e in at.expander] == list(GROUPS.values())
    for f in field_info():
        if f["name"] in LABELS:
            continue
        found = [e for kind in ("number_input", "selectbox", "checkbox", "text_input")
                 for e in getattr(at, kind) if getattr(e, "key", None) == f"cfg_{f['name']}"]
        assert len(found) == 1, f["name"]
        assert f["help"].split(".")[0] in found[0].help
    assert at.selectbox(key="cfg_activation").options == list_activations()
    assert at.selectbox(key="cfg_schedule").options == list_schedules()
    assert at.selectbox(key="cfg_regularizer").options == list_regularizers()
    assert at.selectbox(key="cfg_dataset").options == list_datasets()
    assert at.selectbox(key="launch_method").options == list_methods()
    assert at.selectbox(key="launch_preset").options == list_presets()


def test_launch_presets_prefill_the_form(app_db):
    at = _open("pages/launch.py")
    demo = make_config("demo", "darts-prime")
    assert at.number_input(key="cfg_layers").value == demo.layers
    at.selectbox(key="launch_preset").set_value("tiny").run()
    at.selectbox(key="launch_method").set_value("prime-crb").run()
    tiny_crb = make_config("tiny", "prime-crb")
    assert at.number_input(key="cfg_layers").value == tiny_crb.layers
    assert at.number_input(key="cfg_image_size").value == tiny_crb.image_size
    assert at.selectbox(key="cfg_activation").value == "crb"
    assert "method **prime-crb**, preset **tiny**" in _texts(at)
    at.selectbox(key="cfg_activation").set_value("softmax").run()
    assert "method **custom**" in _texts(at)


def test_launch_demo_preset_applies_its_per_method_departures(app_db):
    at = _open("pages/launch.py")
    at.selectbox(key="launch_preset").set_value("demo").run()
    for method in ("prime-crb", "darts", "fairdarts"):
        at.selectbox(key="launch_method").set_value(method).run()
        want = make_config("demo", method)
        assert at.number_input(key="cfg_period").value == want.period
        assert at.number_input(key="cfg_alpha_lr").value == pytest.approx(want.alpha_lr)
        assert at.number_input(key="cfg_epochs").value == want.epochs
        assert f"method **{method}**, preset **demo**" in _texts(at)


@pytest.mark.parametrize("key, value, field", [
    ("cfg_w_lr", -0.1, "w_lr"),
    ("cfg_layers", 2, "layers"),
    ("cfg_alpha_lr", 0.0, "alpha_lr"),
    ("cfg_w_lr_min", 0.5, "w_lr_min"),
])
def test_launch_invalid_input_shows_the_reason_and_creates_nothing(app_db, key, value, field):
    at = _open("pages/launch.py")
    at.number_input(key=key).set_value(value).run()
    group = GROUPS[{f["name"]: f for f in field_info()}[field]["group"]]
    assert any(group in e.value and field in e.value for e in at.error)
    assert next(e for e in at.expander if e.label == group).proto.expanded
    at.button(key="start_search").click().run()
    assert not at.exception
    assert any(e.value.startswith("Nothing started") and field in e.value for e in at.error)
    assert _store(app_db).list_runs() == []
    assert at.title[0].value.endswith("Launch a search")


def test_launch_names_are_held_to_the_stores_limit(app_db):
    at = _open("pages/launch.py")
    assert at.text_input(key="run_name").proto.max_chars == 200  # the browser stops typing there
    assert at.text_input(key="run_group").proto.max_chars == 200
    at.selectbox(key="launch_preset").set_value("tiny").run()
    at.session_state["run_name"] = "n" * 250  # a saved form can hold a longer one
    at.run()
    at.button(key="start_search").click().run()
    assert not at.exception
    assert [len(r.name) for r in _store(app_db).list_runs()] == [200]


def test_launch_start_creates_the_run_and_opens_the_monitor(app_db):
    at = _open("pages/launch.py")
    at.selectbox(key="launch_preset").set_value("tiny").run()
    at.selectbox(key="launch_method").set_value("darts").run()
    at.number_input(key="cfg_seed").set_value(7).run()
    at.text_input(key="run_name").input("from the form").run()
    at.text_input(key="run_group").input("form-tests").run()
    at.button(key="start_search").click().run()
    assert not at.exception
    runs = _store(app_db).list_runs()
    assert len(runs) == 1
    r = runs[0]
    assert (r.name, r.group, r.config["preset"], r.config["method"], r.config["seed"]) == \
        ("from the form", "form-tests", "tiny", "darts", 7)
    assert at.title[0].value.endswith("Monitor")
    assert at.query_params["run"] == str(r.id)


def test_launch_form_values_survive_a_page_switch(app_db):
    at = _open("pages/launch.py")
    at.number_input(key="cfg_epochs").set_value(3).run()
    _page(at, "pages/runs.py")
    _page(at, "pages/launch.py")
    assert at.number_input(key="cfg_epochs").value == 3


@pytest.mark.slow
def test_launch_estimate_times_a_few_iterations(app_db):
    at = _open("pages/launch.py")
    at.selectbox(key="launch_preset").set_value("tiny").run()
    next(b for b in at.button if b.label == "Estimate run time").click().run()
    assert not at.exception
    text = _texts(at)
    assert "About **" in text and "12 iterations ×" in text  # tiny: 2 epochs x 6 iterations
    assert at.session_state["launch_estimate"]["pid"] != os.getpid()  # timed in a worker process
    assert _store(app_db).list_runs() == []


# ---- Monitor ------------------------------------------------------------------------------------
def test_monitor_empty_store(app_db):
    at = _open("pages/monitor.py")
    assert any("No runs yet" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.get("vega_lite_chart")


def test_monitor_header_shows_the_rate_and_where_the_time_went(finished_db):
    path, run_id = finished_db
    split = _store(path).get_run(run_id).summary["time_split"]
    # the recorder's figures: weight and architecture steps and recording fit in the elapsed time
    assert split["weight_s"] > 0 and split["architecture_s"] > 0 and split["record_s"] > 0
    assert split["weight_s"] + split["architecture_s"] + split["record_s"] <= split["elapsed_s"]
    at = _open("pages/monitor.py")
    (bar,) = [p.proto.text for p in at.progress]
    assert " it/s · time in weight steps " in bar and "architecture steps" in bar and "recording" in bar
    shares = [int(x) for x in re.findall(r"(\d+)%", bar)]
    assert len(shares) == 4 and 97 <= sum(shares) <= 103


def test_monitor_finished_run_draws_every_panel(finished_db):
    path, run_id = finished_db
    at = _open("pages/monitor.py")
    store = _store(path)
    steps = store.steps(run_id)
    text = _texts(at)
    assert "finished" in text and "12 / 12 iterations" in "\n".join(p.proto.text for p in at.progress)
    assert "Live ·" not in text  # no auto-refresh for an ended run
    for sub in ("Operation weights", "Schedule", "Regularizers", "derived cell", "Losses"):
        assert sub in text
    assert not _charts(at)  # Plotly draws only the heatmap, one click away
    lines = _line_charts(at)
    assert {"Normal cell: operation weights", "Schedule: gradient signal and architecture steps", "Regularizer: proximity",
            "Discretization gap ||A - D(A)||", "Architecture size (evaluation network)", "Loss",
            "Accuracy"} <= set(lines), list(lines)
    assert all(any(len(d) for d in data.values()) for data in lines.values()), lines
    # the grid has a dataset per edge, a line per op in each
    assert [k for k in lines["Normal cell: operation weights"] if k != "pruned"] == [f"e{e}" for e in range(14)]
    # the loss chart has a point per stored iteration in its train-loss line
    assert lines["Loss"]["train"]["iteration"].tolist() == steps["step"].tolist()
    sched = lines["Schedule: gradient signal and architecture steps"]["arch"]
    assert sched["iteration"].tolist() == steps.loc[steps["arch_step"] == 1, "step"].tolist()
    # both cells drawn: DOT with the cell's nodes and the chosen ops
    dots = _dots(at)
    assert len(dots) == 2
    g = store.genotypes(run_id)
    final = json.loads(g["genotype"].iloc[-1])
    for dot, ct in zip(dots, ("normal", "reduce")):
        assert dot.lstrip().startswith(("digraph", "strict digraph"))
        for op, _ in final[ct]:
            assert op in dot
    # an ended run offers no controls (finished runs are not resumable)
    assert at.button(key="ctl_stop").disabled and at.button(key="ctl_pause").disabled
    assert at.button(key="ctl_resume").disabled


def test_monitor_weight_panel_options_in_the_sidebar(finished_db):
    """Cell type, view and zoom of panel 1 are sidebar widgets (outside the refreshed fragment);
    each choice redraws the panel accordingly."""
    path, run_id = finished_db
    at = _open("pages/monitor.py")
    assert at.sidebar.segmented_control(key=f"wcell_{run_id}").value == "normal"
    assert "Normal cell: operation weights" in _line_charts(at)
    at.sidebar.segmented_control(key=f"wcell_{run_id}").set_value("reduce").run()
    assert not at.exception
    lines = _line_charts(at)
    assert "Reduce cell: operation weights" in lines and "Normal cell: operation weights" not in lines
    reduce_steps, _ = _store(path).alphas(run_id, "reduce")
    assert len(reduce_steps) > 0 and len(lines["Reduce cell: operation weights"]["e0"]) > 0
    # zoomed: the y scale follows the data instead of spanning the activation's range
    def y_of(at) -> dict:
        grid = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart") if "weights" in c.proto.spec)
        return grid["vconcat"][0]["hconcat"][0]["layer"][0]["encoding"]["y"]["scale"]

    assert "domain" in y_of(at)
    at.sidebar.toggle(key=f"wfit_{run_id}").set_value(True).run()
    assert "domain" not in y_of(at) and "domainMin" in y_of(at)
    # the heatmap: one Plotly chart of the chosen cell, no weight grid
    at.sidebar.segmented_control(key=f"wview_{run_id}").set_value("Heatmap").run()
    assert not at.exception
    assert not any("operation weights" in t for t in _line_charts(at))
    heat = _charts(at)
    assert len(heat) == 1 and heat[0]["data"][0]["type"] == "heatmap"
    assert _title(heat[0]).startswith("Reduce cell: weights at iteration")


def test_monitor_genotype_history_slider_goes_back(finished_db):
    path, run_id = finished_db
    g = _store(path).genotypes(run_id)
    if len(g) < 2:
        pytest.skip("the tiny run derived a single genotype")
    at = _open("pages/monitor.py")
    slider = at.slider(key=f"geno_idx_{run_id}")
    assert (slider.min, slider.max, slider.value) == (1, len(g), len(g))  # counted as the titles count
    latest = _dots(at)
    assert all(f"genotype {len(g)} of {len(g)} (latest)" in d for d in latest)
    slider.set_value(1).run()
    assert not at.exception
    first = json.loads(g["genotype"].iloc[0])
    assert all(op in _dots(at)[0] for op, _ in first["normal"])
    assert all(f"genotype 1 of {len(g)} ·" in d for d in _dots(at))
    assert _dots(at) != latest or g["genotype"].iloc[0] == g["genotype"].iloc[-1]


def test_monitor_change_log_and_events_are_drawn_once_opened(finished_db):
    path, run_id = finished_db
    store = _store(path)
    at = _open("pages/monitor.py")
    # sidebar toggles, off by default: no table (nor a closed expander) redrawn at each refresh
    assert not at.sidebar.toggle(key=f"changes_open_{run_id}").value
    assert not at.sidebar.toggle(key=f"events_open_{run_id}").value
    assert not at.dataframe and not at.expander
    at.session_state[f"changes_open_{run_id}"] = True
    at.session_state[f"events_open_{run_id}"] = True
    at.run()
    assert not at.exception
    tables = [d.value for d in at.dataframe]
    changes = next(t for t in tables if "change" in t.columns)
    events = next(t for t in tables if "kind" in t.columns)
    g = store.genotypes(run_id)
    assert len(g) > 1  # the tiny run's genotype changes, so the log has rows to show
    assert len(changes) >= 1 and changes["step"].iloc[0] == changes["step"].max()
    assert changes["step"].max() <= g["step"].iloc[-1]
    assert events["kind"].tolist() == store.events(run_id)["kind"].iloc[::-1].tolist()
    assert {"Change log (newest first)", "Events (newest first)"} <= {m.value.replace("*", "") for m in at.markdown}


def test_monitor_shows_what_to_watch_for_under_each_panel(finished_db):
    """One caption per panel, worded by core.viz.hints from this run's config and rows: the tiny
    DARTS-PRIME run is softmax, informed and proximity, and each line states its numbers."""
    from core.viz import hints
    from core.viz.live import RunView

    path, run_id = finished_db
    store = _store(path)
    run = store.get_run(run_id)
    at = _open("pages/monitor.py")
    shown = [c.value.removeprefix(":material/lightbulb: ") for c in at.caption
             if c.value.startswith(":material/lightbulb:")]
    view = RunView(store, run_id)
    view.refresh()
    expected = hints.panel_hints(view)
    assert shown == [expected[p] for p in hints.PANELS]  # every panel, in page order
    steps = store.steps(run_id)
    k, n = int(steps["arch_step"].sum()), len(steps)
    assert shown[0].startswith("Softmax: the ops of an edge compete for a share that sums to 1")
    assert f"holds {run.summary['separation']:.2f}x the uniform share" in shown[0]
    assert shown[1].startswith("Informed:") and \
        f"{k} architecture step{'' if k == 1 else 's'} in {n} iterations" in shown[1]
    assert shown[2].startswith("Proximity pulls the weights") and "t·rho/2" in shown[2]
    last = run.summary["last_genotype_change"]
    assert (f"last at iteration {last} (of {n})" if last else "has not changed") in shown[3]
    assert f"{run.size:,} parameters now" in shown[4]
    assert shown[5].startswith("Epoch 2 ended at validation accuracy")


def test_monitor_running_run_gains_points_on_refresh(running_db, finished_template, monkeypatch):
    from core.viz import line_charts

    built = []  # the schedule chart's builds: one per refresh that brought new rows
    schedule_chart = line_charts.schedule_chart
    monkeypatch.setattr(line_charts, "schedule_chart", lambda view: built.append(1) or schedule_chart(view))
    path, run_id = running_db
    at = _open("pages/monitor.py")
    text = _texts(at)
    assert "running" in text and "Live ·" in text
    assert f"{RUNNING_UNTIL + 1} / 12 iterations" in "\n".join(p.proto.text for p in at.progress)
    assert at.query_params["run"] == str(run_id)
    before = len(_line_charts(at)["Loss"]["train"])
    # live, the cells follow the newest genotype; the history slider comes with its sidebar toggle
    assert not at.slider
    n_genotypes = len(_store(path).genotypes(run_id))
    at.sidebar.toggle(key=f"geno_browse_{run_id}").set_value(True).run()
    assert not at.exception
    assert n_genotypes > 1 and len(at.slider) == 1
    # that rerun found no new rows: the charts were kept as they were, not built again
    assert len(built) == 1 and len(_line_charts(at)["Loss"]["train"]) == before
    # the "CLI process" writes more rows; the next refresh shows them
    template = _store(finished_template[0])
    store = _store(path)
    rows = template.steps(run_id, after=RUNNING_UNTIL).to_dict("records")
    for r in rows:
        r["terms"] = json.loads(r["terms"]) if isinstance(r["terms"], str) else None
    store.add_steps(run_id, rows)
    at.run()
    assert not at.exception
    after = len(_line_charts(at)["Loss"]["train"])
    assert after > before and len(built) == 2
    assert "12 / 12 iterations" in "\n".join(p.proto.text for p in at.progress)
    # once the run ends the page stops refreshing
    store.update_run(run_id, status="finished", finished=time.time())
    at.run()
    assert "Live ·" not in _texts(at)


def test_monitor_refreshes_once_an_iteration_when_iterations_are_slow(running_db):
    """A refresh between two iterations would find nothing new: when the run writes an iteration
    every 1.6 s the panels refresh every 1.6 s, and back to once a second when it speeds up."""
    import sqlite3

    path, run_id = running_db
    with sqlite3.connect(path) as con:
        con.execute("UPDATE steps SET time = 2.0 + 1.6 * step WHERE run_id = ?", (run_id,))
    at = _open("pages/monitor.py")
    assert not at.exception
    assert "every 1.6 s, once an iteration" in _texts(at)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE steps SET time = 2.0 + 0.4 * step WHERE run_id = ?", (run_id,))
    at = _open("pages/monitor.py")  # a new session: its view reads the rows afresh
    assert not at.exception
    text = _texts(at)
    assert "every second" in text and "once an iteration" not in text
    with sqlite3.connect(path) as con:  # slower than the cap: the clock still moves every 2 s
        con.execute("UPDATE steps SET time = 2.0 + 7.0 * step WHERE run_id = ?", (run_id,))
    at = _open("pages/monitor.py")
    assert not at.exception
    text = _texts(at)
    assert "every 2 s" in text and "once an iteration" not in text


def test_monitor_opens_the_run_named_in_the_url(finished_db):
    path, run_id = finished_db
    store = _store(path)
    other = store.create_run(make_config("tiny", "darts"), name="newer, never started", status="stopped")
    at = _open("pages/monitor.py")
    assert at.selectbox(key="monitor_select").value == other  # newest by default
    at = _open("pages/monitor.py", query={"run": str(run_id)})
    assert at.selectbox(key="monitor_select").value == run_id
    at.selectbox(key="monitor_select").set_value(other).run()
    assert at.query_params["run"] == str(other)


def test_monitor_failed_run_shows_its_error(app_db):
    store = _store(app_db)
    rid = store.create_run(make_config("tiny", "darts"), name="broken", status="failed")
    store.update_run(rid, error="dataset: cifar10 files not found in /nowhere\n\nTraceback (most recent call last):\n  ...")
    at = _open("pages/monitor.py")
    assert any("failed" in e.value and "cifar10 files not found" in e.value for e in at.error)
    assert any("Traceback" in c.value for c in at.code)
    assert not at.button(key="ctl_resume").disabled  # failed runs can restart from a checkpoint


def test_monitor_stop_button_stops_a_live_run(app_db):
    import app_state

    at = _open("pages/home.py")
    run_id = app_state.get_manager().start(make_config("tiny", "darts-prime", epochs=50), name="long")
    store = _store(app_db)
    _wait_status(store, run_id, ("running",))
    _page(at, "pages/monitor.py")
    assert not at.button(key="ctl_stop").disabled
    at.button(key="ctl_stop").click().run()
    assert not at.exception
    assert app_state.get_manager().wait(run_id, timeout=60)
    assert store.get_run(run_id).status == "stopped"
    at.run()
    assert "stopped" in _texts(at)
    assert not at.button(key="ctl_resume").disabled


# ---- Runs ----------------------------------------------------------------------------------------
def test_runs_empty_store(app_db):
    at = _open("pages/runs.py")
    assert any("no runs yet" in i.value for i in at.info)
    assert not at.dataframe


def test_runs_table_lists_finished_and_failed_runs(finished_db):
    path, run_id = finished_db
    store = _store(path)
    failed = store.create_run(make_config("tiny", "darts"), name="broken", group="g2", status="failed")
    store.update_run(failed, error="boom: the data folder is empty\n\nTraceback ...")
    at = _open("pages/runs.py")
    df = at.dataframe[0].value
    assert len(df) == 2
    row = df[df["id"] == run_id].iloc[0]
    run = store.get_run(run_id)
    assert row["name"] == "tiny finished" and row["status"] == "finished"
    assert row["method"] == "darts-prime" and row["dataset"] == "digits"
    assert row["iterations"] == 12 and row["genotype"] == run.genotype and row["size (params)"] == run.size
    assert row["best val acc"] == pytest.approx(run.summary["best_val_acc"])
    assert df[df["id"] == failed].iloc[0]["error"] == "boom: the data folder is empty"
    # filters
    at.multiselect(key="flt_status").select("failed").run()
    assert at.dataframe[0].value["id"].tolist() == [failed]
    at.multiselect(key="flt_status").unselect("failed").run()
    at.text_input(key="flt_text").input("tiny fin").run()
    assert at.dataframe[0].value["id"].tolist() == [run_id]
    at.text_input(key="flt_text").input("").run()
    at.multiselect(key="flt_group").select("g2").run()
    assert at.dataframe[0].value["id"].tolist() == [failed]
    # the failed run's error shows when it is selected
    assert at.selectbox(key="runs_pick").value == failed
    assert any("boom: the data folder is empty" in e.value for e in at.error)


def test_runs_downloads_of_a_finished_run(finished_db):
    import shutil

    path, run_id = finished_db
    at = _open("pages/runs.py")
    labels = [b.label for b in at.download_button]
    for want in ("Genotype (text)", "Run (JSON)", "Iterations (CSV)", "Normal cell (DOT)", "Reduce cell (DOT)"):
        assert want in labels
    assert all(not b.disabled for b in at.download_button)
    if shutil.which("dot") is None:
        assert any("SVG export needs Graphviz" in c.value for c in at.caption)
    else:
        assert "Normal cell (SVG)" in labels
    assert export_run(_store(path), run_id, "genotype") in "\n".join(c.value for c in at.code)


def test_runs_exports_to_tensorboard_and_mlflow(finished_db, tmp_path):
    import io
    import zipfile

    from mlflow.tracking import MlflowClient

    from core.viz.tracking import tensorboard_zip

    path, run_id = finished_db
    at = _open("pages/runs.py")
    assert "TensorBoard (zip)" in [b.label for b in at.download_button]
    names = zipfile.ZipFile(io.BytesIO(tensorboard_zip(_store(path), run_id))).namelist()
    assert names and all(n.startswith(f"run-{run_id}") for n in names)
    assert any("events.out.tfevents" in n for n in names)
    at.text_input(key="mlflow_where").set_value(str(tmp_path / "ml"))
    at.button(key="mlflow_log").click().run()
    assert not at.exception and not at.error
    (message,) = [s.value for s in at.success]
    uri = f"sqlite:///{(tmp_path / 'ml' / 'mlflow.db').resolve()}"
    assert uri in message
    mlflow_id = message.split("`")[1]
    run = MlflowClient(tracking_uri=uri).get_run(mlflow_id)
    assert run.data.params["method"] == _store(path).get_run(run_id).config["method"]
    at.text_input(key="mlflow_where").set_value("http://127.0.0.1:9")
    at.button(key="mlflow_log").click().run()
    assert not at.exception
    assert "MLflow tracking URI or folder: http://127.0.0.1:9 refused the run" in at.error[0].value


def test_runs_open_in_monitor(finished_db):
    path, run_id = finished_db
    at = _open("pages/runs.py")
    at.button(key="open_run").click().run()
    assert not at.exception
    assert at.title[0].value.endswith("Monitor")
    assert at.selectbox(key="monitor_select").value == run_id
    assert at.query_params["run"] == str(run_id)


def test_runs_delete_needs_confirmation(finished_db):
    path, run_id = finished_db
    at = _open("pages/runs.py")
    assert at.button(key="delete_run").disabled
    at.checkbox(key=f"confirm_delete_{run_id}").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert _store(path).list_runs() == []
    assert any("Deleted run" in s.value for s in at.success)
    assert any("no runs yet" in i.value for i in at.info)


@pytest.mark.parametrize("path", ["pages/home.py", "pages/launch.py", "pages/runs.py"])
def test_other_pages_with_a_running_run(running_db, path):
    path_db, run_id = running_db
    at = _open(path)
    if path == "pages/home.py":
        assert at.button(key="run_demo")
    elif path == "pages/launch.py":
        assert len(at.expander) == len(GROUPS) and not at.error
    else:
        df = at.dataframe[0].value
        assert df["status"].tolist() == ["running"] and df["iterations"].tolist() == [RUNNING_UNTIL + 1]
        assert df["genotype"].tolist() == [""]  # no final genotype yet
        # a live run cannot be deleted; its partial genotype can be downloaded already
        assert at.checkbox(key=f"confirm_delete_{run_id}").disabled
        assert any("still going" in w.value for w in at.warning)


@pytest.mark.slow
def test_runs_shows_a_run_started_from_the_cli(app_db):
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "core", "search", "--preset", "tiny", "--method", "darts",
                          "--quiet", "--set", "epochs=1", "--set", "iters_per_epoch=2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    at = _open("pages/runs.py")
    df = at.dataframe[0].value
    assert len(df) == 1 and df.iloc[0]["status"] == "finished" and df.iloc[0]["method"] == "darts"



def test_launch_offers_a_newly_registered_activation_and_its_setting(app_db):
    """gumbel is one class and one registration: the Launch page offers it, and its field, with
    no edit to the page."""
    at = _open("pages/launch.py")
    assert "gumbel" in at.selectbox(key="cfg_activation").options
    assert at.number_input(key="cfg_gumbel_tau").value == 1.0
