"""Runs side by side, live: the aligned columns (core.viz.aligned), groups that vary one field
(core.runs.groups), the Compare live page, Home's "Compare activations" and Launch's "Vary one
field" (AppTest against a temporary store)."""
from __future__ import annotations

import dataclasses
import json

import altair as alt
import jsonschema
import pyarrow as pa
import pytest

from tests.conftest import copy_store, new_app, one_torch_thread
from tests.helpers import page_texts

ACTIVATIONS = ("softmax", "sigmoid", "crb")
VEGA_LITE_SCHEMA = alt.vegalite.v6.schema.core.load_schema()
RUNNING_UNTIL = 5


@pytest.fixture(scope="session")
def group_template(tmp_path_factory) -> tuple[str, list[int]]:
    """(path, run ids) of a store holding the tiny demo once per activation, run to the end as
    one group, the way "Compare activations" starts them."""
    from core.engine.config import make_config
    from core.engine.search import Search
    from core.runs.groups import activation_group
    from core.runs.store import RunStore

    path = str(tmp_path_factory.mktemp("compare_live") / "group.sqlite")
    store = RunStore(path)
    ids = []
    with one_torch_thread():
        for label, cfg in activation_group(make_config("tiny", "darts-prime")):
            run_id = store.create_run(cfg, name=f"{label}-s{cfg.seed}", group="activations")
            assert Search(cfg, store, run_id).run().status == "finished"
            ids.append(run_id)
    store.close()
    return path, ids


@pytest.fixture
def group_db(app_db, group_template):
    copy_store(group_template[0], str(app_db))
    return app_db, group_template[1]


@pytest.fixture
def running_group_db(app_db, group_template):
    """The group with its CRB run cut to its first RUNNING_UNTIL + 1 iterations and marked
    running by another (CLI) process."""
    from core.runs.store import RunStore

    copy_store(group_template[0], str(app_db))
    run_id = group_template[1][-1]
    store = RunStore(app_db)
    store.truncate_after(run_id, RUNNING_UNTIL)
    store.update_run(run_id, status="running", finished=None, genotype=None, size=None,
                     iterations=RUNNING_UNTIL + 1, host="cli-host", pid=None, summary={})
    store.close()
    return app_db, group_template[1]


def _views(path, ids):
    from core.runs.store import RunStore
    from core.viz.live import RunView

    store = RunStore(path)
    views = [RunView(store, i) for i in ids]
    for v in views:
        v.refresh()
    return views


def _valid(chart):
    spec = chart.full_spec()
    spec["datasets"] = {k: json.loads(df.to_json(orient="records")) for k, df in spec["datasets"].items()}
    jsonschema.validate(spec, VEGA_LITE_SCHEMA)


def _x_domains(spec) -> list:
    found = []

    def walk(node):
        if isinstance(node, dict):
            x = node.get("x")
            if isinstance(x, dict) and x.get("field") == "iteration":
                found.append((x.get("scale") or {}).get("domain"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


# ---- core --------------------------------------------------------------------------------------
def test_groups_vary_one_field_and_name_bad_values():
    from core.engine.config import ConfigError, make_config
    from core.runs import groups

    base = make_config("demo", "darts-prime")
    configs = groups.activation_group(base)
    assert [label for label, _ in configs] == [f"activation={a}" for a in ACTIVATIONS]
    for _, cfg in configs:  # everything but the activation (and its label) is the base's
        diff = {k for k, v in cfg.to_dict().items() if base.to_dict()[k] != v}
        assert diff <= {"activation", "method"}
    assert [cfg.method for _, cfg in configs] == ["darts-prime", "custom", "custom"]
    assert groups.vary(base, "seed", ["0", "1"])[1][1].seed == 1
    with pytest.raises(ConfigError, match="layers: must be between 3 and 20, got 2"):
        groups.vary(base, "layers", ["2", "5"])
    with pytest.raises(ConfigError, match="activation: needs 2 to 4 different values, got 1"):
        groups.vary(base, "activation", ["softmax", "softmax"])
    with pytest.raises(ConfigError, match="activation: must be one of"):
        groups.vary(base, "activation", ["softmax", "tanh"])
    with pytest.raises(ConfigError, match="method: cannot be varied"):
        groups.vary(base, "method", ["darts", "fairdarts"])
    # Three runs of 120 CPU s on two cores, two at a time: two turns; three at a time share
    # the two cores; with cores to spare they all run at once.
    assert groups.group_seconds([120] * 3, 2, cores=2) == pytest.approx(240)
    assert groups.group_seconds([120] * 3, 3, cores=2) == pytest.approx(180)
    assert groups.group_seconds([120] * 3, 3, cores=16) == pytest.approx(120)
    assert groups.run_cpu_seconds(make_config("paper", "darts")) is None


def test_aligned_columns_share_one_axis_and_mark_the_differences(group_template):
    from core.viz import aligned

    path, ids = group_template
    views = _views(path, ids)
    labels = aligned.column_labels([v.config for v in views], [v.run.name for v in views])
    assert labels == [f"activation={a}" for a in ACTIVATIONS]
    # A longer run sets the axis of every column.
    views[0].run = dataclasses.replace(views[0].run, total_iterations=40)
    columns = aligned.build_columns(views, aligned.Options(edge=2), labels)
    for col in columns:
        assert {"weights", "schedule", "penalty", "gap", "size", "loss"} <= {
            k for k in ("weights", "schedule", "penalty", "gap", "size", "loss") if getattr(col, k) is not None}
        for chart in col.charts():
            _valid(chart)
            domains = _x_domains(chart.spec)
            assert domains and all(d == [0, 39] for d in domains), (chart.spec["title"], domains)
        assert col.cell.startswith("digraph")
        assert col.facts["iteration"] == f"{col.done} / {col.total}"
    # The chosen edge only, from the Monitor's grid data of that edge.
    w = columns[1].weights
    assert set(w.datasets) == {"e2", "pruned"} and w.spec["title"]["text"].endswith("node 1 <- c_{k-2}")
    ops = set(w.datasets["e2"]["op"].astype(str))
    assert ops == set(views[1].primitives)
    # Differences: each row says what every run keeps on that edge, and differs when they disagree.
    diff = aligned.differences(views, labels)
    chosen = [{(ct, n, i): op for ct, n, i, op in v.genotype(-1).choices()} for v in views]
    assert len(diff) == len(set().union(*chosen))
    for row in diff.itertuples(index=False):
        ops = [getattr(row, f"_{2 + k}") for k in range(3)]
        assert row.differs == (len(set(ops)) > 1)
    # the grid of every edge, sized for a column
    grid = aligned.build_columns(views, aligned.Options(grid=True, panels=("weights",)), labels)[0].weights
    _valid(grid)
    assert {p["width"] for row in grid.spec["vconcat"] for p in row["hconcat"]} == {aligned.GRID_PANEL_WIDTH}


# ---- the page ------------------------------------------------------------------------------------
def _open(ids):
    at = new_app()
    at.run()
    at.query_params["runs"] = ",".join(map(str, ids))
    at.switch_page("pages/compare_live.py").run()
    assert not at.exception, at.exception
    return at


def _progress(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def _loss_points(at, run_index: int) -> int:
    """Rows of the training loss in the run_index-th column's loss chart."""
    charts = [c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec)["title"]["text"] == "Loss"]
    ds = {d.name: d for d in charts[run_index].proto.datasets}
    return len(pa.ipc.open_stream(ds["train"].data.data).read_pandas())


def test_page_shows_three_finished_runs_aligned(group_db):
    _, ids = group_db
    at = _open(ids)
    text = page_texts(at)
    for a in ACTIVATIONS:
        assert f"**activation={a}**" in text
    # weights, schedule, pull, gap, size, loss per column; a cell each; the differences table
    assert len(at.get("vega_lite_chart")) == 6 * 3
    assert len(at.get("graphviz_chart")) == 3
    domains = {json.dumps(d) for c in at.get("vega_lite_chart") for d in _x_domains(json.loads(c.proto.spec))}
    assert domains == {json.dumps([0, 11])}
    assert "Where the current cells differ" in text and "edges kept by some run differ" in text
    assert "Live ·" not in text
    # the same edge in every column, changed from the sidebar
    at.sidebar.selectbox(key="cl_edge").set_value(4).run()
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in at.get("vega_lite_chart")][:3]
    assert titles == ["Normal cell · node 1 <- node 0"] * 3
    at.button(key="cl_open_compare").click().run()
    assert not at.exception
    assert at.query_params["study"] == "activations"
    assert [t.value for t in at.title] == ["Compare"]
    assert at.selectbox(key="cmp_study").value == "activations"


def test_page_with_one_run_still_going(running_group_db, group_template):
    from core.runs.store import RunStore

    path, ids = running_group_db
    at = _open(ids)
    text = page_texts(at)
    assert "running]" in text
    assert _progress(at) == ["12 / 12 iterations", "12 / 12 iterations", f"{RUNNING_UNTIL + 1} / 12 iterations"]
    assert "Live ·" in text and "server work" in text
    assert not any(b.key == "cl_open_compare" for b in at.button)
    before = [_loss_points(at, k) for k in range(3)]
    assert before == [12, 12, RUNNING_UNTIL + 1]
    # The run writes more rows: the next refresh draws them in its column only.
    rows = RunStore(group_template[0]).steps(ids[-1], after=RUNNING_UNTIL).head(3)
    store = RunStore(path)
    store.add_steps(ids[-1], rows.to_dict("records"))
    at.run()
    assert not at.exception
    assert [_loss_points(at, k) for k in range(3)] == [12, 12, RUNNING_UNTIL + 4]
    assert _progress(at)[2] == f"{RUNNING_UNTIL + 4} / 12 iterations"
    # it ends: the page stops refreshing and offers Compare
    store.update_run(ids[-1], status="finished")
    at.run()
    assert "Live ·" not in page_texts(at) and any(b.key == "cl_open_compare" for b in at.button)


def test_home_compare_activations_starts_a_queued_group(app_db, monkeypatch):
    monkeypatch.setenv("PRIME_EXPLORER_DEMO_PRESET", "tiny")
    monkeypatch.setenv("PRIME_EXPLORER_DEMO_OVERRIDES", "epochs=2,iters_per_epoch=20")
    monkeypatch.setenv("PRIME_EXPLORER_MAX_RUNS", "1")  # one at a time: two wait in the queue
    import app_state

    at = new_app()
    at.run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "searches take about" in c.value)
    assert "1 at a time, the rest queued: 3 turns" in caption
    at.button(key="compare_activations").click().run()
    assert not at.exception
    runs = sorted(app_state.get_store().list_runs(), key=lambda r: r.id)
    assert [r.config["activation"] for r in runs] == list(ACTIVATIONS)
    assert {r.group for r in runs} == {"activations"}
    assert len({r.config["seed"] for r in runs}) == 1
    assert all({k for k, v in r.config.items() if runs[0].config[k] != v} <= {"activation", "method"}
               for r in runs)
    assert at.query_params["runs"] == ",".join(str(r.id) for r in runs)
    text = page_texts(at)
    assert "Compare live" in [t.value for t in at.title]
    assert "queued: they start in turn" in text and "queued]" in text
    # Stop all: the queued runs never start, the running one ends after its iteration.
    at.button(key="cl_stop_all").click().run()
    assert not at.exception
    manager = app_state.get_manager()
    assert all(manager.wait(r.id, timeout=60) for r in runs)
    ended = {r.id: r.status for r in app_state.get_store().list_runs()}
    assert sorted(ended.values())[1:] == ["stopped", "stopped"] and set(ended.values()) <= {"stopped", "finished"}


def test_launch_vary_one_field_starts_a_group(app_db):
    import app_state

    at = new_app()
    at.run()
    at.switch_page("pages/launch.py").run()
    at.selectbox(key="launch_preset").set_value("tiny").run()
    at.selectbox(key="vary_field").set_value("layers").run()
    at.text_input(key="vary_values").set_value("2, 4").run()
    assert any("layers: must be between 3 and 20, got 2" in e.value for e in at.error)
    at.button(key="start_group").click().run()
    assert any("Nothing started" in e.value for e in at.error)
    assert app_state.get_store().list_runs() == []

    at.text_input(key="vary_values").set_value("3, 4").run()
    assert "2 runs: layers=3, layers=4." in page_texts(at)
    at.button(key="start_group").click().run()
    assert not at.exception
    runs = sorted(app_state.get_store().list_runs(), key=lambda r: r.id)
    assert [r.config["layers"] for r in runs] == [3, 4] and {r.group for r in runs} == {"vary-layers"}
    assert [r.name for r in runs] == ["layers=3-s0", "layers=4-s0"]
    assert at.query_params["runs"] == f"{runs[0].id},{runs[1].id}"
