"""No compute in the server process: evaluations (from the Runs page, the Compare page and a
study's "evaluate when done") and the Launch page's estimate run in worker processes started by
the RunManager, with a status the pages read, stop, failure recorded with its message, and a
life of their own once the page that started them is gone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.engine.config import make_config
from core.engine.evaluate import make_eval_config
from core.runs.runner import RunManager
from core.runs.store import EVAL_ACTIVE_STATUSES, RunStore
from core.runs.study import StudySpec, launch_study
from tests.conftest import copy_store, new_app
from tests.helpers import page_texts as _texts

# an evaluation that trains long enough to be stopped, killed or orphaned while it runs
LONG_EVAL = make_eval_config("tiny", epochs=200, iters_per_epoch=50)


def _wait_eval(store: RunStore, eval_id: int, statuses: tuple[str, ...], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = store.get_evaluation(eval_id)
        if row["status"] in statuses:
            return row
        time.sleep(0.1)
    raise AssertionError(f"evaluation {eval_id} still {store.get_evaluation(eval_id)['status']}, "
                         f"wanted {statuses}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def finished_store(tmp_path, finished_template):
    """A store of its own holding the finished tiny run; yields (store, run id)."""
    path = str(tmp_path / "finished.sqlite")
    copy_store(finished_template[0], path)
    return RunStore(path), finished_template[1]


def _runs_page(query_run: int | None = None):
    at = new_app()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/runs.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- evaluations from a page -------------------------------------------------------------------
def test_evaluation_from_the_runs_page_runs_in_a_worker_process(finished_db):
    path, rid = finished_db
    store = RunStore(str(path))
    at = _runs_page()
    assert at.selectbox(key="runs_pick").value == rid
    assert not at.button(key="run_evaluate").disabled
    at.selectbox(key="run_eval_preset").set_value("tiny")
    at.button(key="run_evaluate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    evals = store.evaluations([rid])
    assert len(evals) == 1 and evals["status"].iloc[0] in EVAL_ACTIVE_STATUSES
    eid = int(evals["id"].iloc[0])
    assert f"Evaluation #{eid} of run #{rid} queued" in _texts(at)
    assert at.button(key="run_evaluate").disabled  # one at a time per run
    assert any(f"Evaluation #{eid}" in i.value for i in at.info)  # its status, live
    del at  # the page is closed: the evaluation goes on in its worker
    row = _wait_eval(store, eid, ("finished", "failed"))
    assert row["status"] == "finished", row["error"]
    assert row["pid"] not in (None, os.getpid())  # a worker process ran it ...
    assert row["started"] is not None and row["started"] >= row["created"]
    assert 0.0 <= row["test_acc"] <= 1.0 and row["params"] > 0  # ... to the end
    assert store.get_run(rid).summary["test_acc"] == pytest.approx(row["test_acc"])
    assert not any(t.name.startswith(("study-", "compare-evaluate")) for t in threading.enumerate())

    at = _runs_page()  # the page, opened again, shows the result and the process
    assert not at.exception
    table = next(d.value for d in at.dataframe if "evaluation" in d.value.columns)
    assert table["status"].tolist() == ["finished"] and table["process"].tolist() == [row["pid"]]
    assert table["preset"].tolist() == ["tiny"]
    assert not at.button(key="run_evaluate").disabled


def test_stopping_an_evaluation_from_the_runs_page(finished_db):
    path, rid = finished_db
    store = RunStore(str(path))
    at = _runs_page()
    at.selectbox(key="run_eval_preset").set_value("demo")
    at.button(key="run_evaluate").click().run()
    eid = int(store.evaluations([rid])["id"].iloc[0])
    row = _wait_eval(store, eid, ("running",), timeout=120)
    assert row["pid"] != os.getpid()
    at.run()
    assert any(f"training in worker process {row['pid']}" in i.value for i in at.info)
    at.button(key=f"run_eval_stop_{eid}").click().run()
    assert not at.exception
    row = _wait_eval(store, eid, ("stopped", "failed", "finished"), timeout=60)
    assert row["status"] == "stopped" and row["test_acc"] is None
    assert "test_acc" not in store.get_run(rid).summary
    deadline = time.monotonic() + 30
    while _pid_alive(row["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(row["pid"])  # the worker ended
    at.run()
    assert not at.button(key="run_evaluate").disabled


def _corrupt_genotype(store: RunStore, run_id: int) -> None:
    """The run's genotype names an operation no network has (it still reads and exports)."""
    from core.engine.genotype import Genotype

    g = store.genotypes(run_id)
    d = json.loads(g["genotype"].iloc[-1])
    d["normal"][0][0] = "warp_conv_9x9"
    bad = Genotype.from_json(json.dumps(d))
    store._write("UPDATE genotypes SET genotype = ? WHERE run_id = ?", (bad.to_json(), run_id))
    store.update_run(run_id, genotype=str(bad))


def test_a_failing_evaluation_is_recorded_failed_with_its_message(finished_db):
    path, rid = finished_db
    store = RunStore(str(path))
    _corrupt_genotype(store, rid)
    at = _runs_page()
    at.selectbox(key="run_eval_preset").set_value("tiny")
    at.button(key="run_evaluate").click().run()
    eid = int(store.evaluations([rid])["id"].iloc[0])
    row = _wait_eval(store, eid, ("finished", "failed"), timeout=120)
    assert row["status"] == "failed"
    message = "normal cell, pair 0: unknown operation 'warp_conv_9x9'"
    assert row["error"].startswith(message) and "Traceback" in row["error"]
    assert row["pid"] not in (None, os.getpid())
    events = store.events(rid)
    assert any(f"evaluation #{eid} failed: {message}" in m for m in events["message"])
    at.run()
    assert not at.exception
    assert any(f"Evaluation #{eid} failed: {message}" in e.value for e in at.error)
    table = next(d.value for d in at.dataframe if "evaluation" in d.value.columns)
    assert table["status"].tolist() == ["failed"] and table["error"].iloc[0].startswith(message)


def test_an_evaluation_process_that_dies_is_failed_with_the_end_of_its_stderr(finished_store):
    store, rid = finished_store
    mgr = RunManager(store)
    try:
        eid = mgr.evaluate(rid, LONG_EVAL)
        row = _wait_eval(store, eid, ("running",), timeout=120)
        os.kill(row["pid"], signal.SIGKILL)
        assert mgr.wait_evaluation(eid, 30)  # the manager saw the process end
        row = store.get_evaluation(eid)
        assert row["status"] == "failed" and "exited with code -9" in row["error"]
    finally:
        mgr.shutdown()


def test_a_worker_that_cannot_start_leaves_its_stderr_in_the_error(finished_store, tmp_path, monkeypatch):
    store, rid = finished_store
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\nsys.stderr.write('boom: this worker cannot start\\n')\nsys.stderr.flush()\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    mgr = RunManager(store)
    try:
        eid = mgr.evaluate(rid, make_eval_config("tiny"))
        assert mgr.wait_evaluation(eid, 60)
        row = store.get_evaluation(eid)
        assert row["status"] == "failed"
        assert "exited with code 3" in row["error"] and "boom: this worker cannot start" in row["error"]
        job = mgr.estimate(make_config("tiny", "darts"))
        status = mgr.wait_estimate(job, 60)
        assert status["status"] == "failed" and "boom: this worker cannot start" in status["error"]
    finally:
        mgr.shutdown()


def test_evaluations_queue_under_the_search_limit_and_a_queued_one_stops(finished_store):
    store, rid = finished_store
    mgr = RunManager(store, max_concurrent=1)
    try:
        first = mgr.evaluate(rid, LONG_EVAL)
        second = mgr.evaluate(rid, make_eval_config("tiny"))
        search = mgr.start(make_config("tiny", "darts", epochs=1, iters_per_epoch=2))
        assert store.get_evaluation(second)["status"] == "queued"
        assert store.get_run(search).status == "queued"  # one slot for searches and evaluations
        assert store.get_evaluation(second)["pid"] == os.getpid()  # held by this app while queued
        mgr.stop_evaluation(second)
        assert store.get_evaluation(second)["status"] == "stopped" and mgr.wait_evaluation(second, 0)
        _wait_eval(store, first, ("running",), timeout=120)
        mgr.stop_evaluation(first)
        assert mgr.wait_evaluation(first, 60)
        assert store.get_evaluation(first)["status"] == "stopped"
        assert mgr.wait(search, 120) and store.get_run(search).status == "finished"
    finally:
        mgr.shutdown()


def test_an_evaluation_whose_app_is_gone_is_interrupted(finished_store):
    """The end of the worker's stdin means its app went away (as for a search)."""
    store, rid = finished_store
    eid = store.create_evaluation(rid, LONG_EVAL.__dict__, status="queued")
    proc = subprocess.Popen([sys.executable, "-m", "core.runs.worker", "--db", store.path,
                             "--evaluation", str(eid)], stdin=subprocess.PIPE)
    _wait_eval(store, eid, ("running",), timeout=120)
    proc.stdin.close()
    assert proc.wait(60) == 0
    row = store.get_evaluation(eid)
    assert row["status"] == "interrupted" and row["pid"] == proc.pid and "went away" in row["error"]
    # a row left queued by an app that is gone: the next manager on the store says so
    gone = store.create_evaluation(rid, LONG_EVAL.__dict__, status="queued")
    store._write("UPDATE evaluations SET pid = ? WHERE id = ?", (proc.pid, gone))
    RunManager(store).shutdown()
    assert store.get_evaluation(gone)["status"] == "interrupted"


# ---- studies ------------------------------------------------------------------------------------
def test_a_study_with_evaluate_evaluates_each_run_in_worker_processes(tmp_path):
    store = RunStore(tmp_path / "study.sqlite")
    spec = StudySpec("proc-study", ["darts", "darts-prime"], seeds=1, preset="tiny",
                     overrides={"epochs": 1, "iters_per_epoch": 2}, evaluate=True, eval_preset="tiny")
    mgr = RunManager(store, max_concurrent=2)
    try:
        ids = launch_study(mgr, spec)
        assert not any(t.name.startswith("study-") for t in threading.enumerate())  # no coordinator
        for rid in ids:
            assert mgr.wait(rid, 180)
            # queued by the manager as the run ended, before its wait returned
            assert len(store.evaluations([rid])) == 1
        for eid in store.evaluations(ids)["id"]:
            assert mgr.wait_evaluation(int(eid), 240)
    finally:
        mgr.shutdown()
    evals = store.evaluations(ids)
    assert sorted(evals["run_id"]) == sorted(ids) and set(evals["status"]) == {"finished"}
    assert os.getpid() not in set(evals["pid"])
    run_pids = {store.get_run(r).pid for r in ids}
    assert not set(evals["pid"]) & run_pids  # each evaluation in a process of its own
    for rid in ids:
        assert 0 <= store.get_run(rid).summary["test_acc"] <= 1


# ---- the estimate -------------------------------------------------------------------------------
def test_the_estimate_runs_in_a_worker(tmp_path):
    store = RunStore(tmp_path / "e.sqlite")
    mgr = RunManager(store)
    try:
        job = mgr.estimate(make_config("tiny", "darts-prime"))
        status = mgr.estimate_status(job)
        assert status["status"] in ("queued", "running")
        status = mgr.wait_estimate(job, 120)
        assert status["status"] == "finished", status
        est = status["result"]
        assert est["pid"] not in (None, os.getpid()) and est["pid"] == status["pid"]
        assert est["iterations"] == 12 and est["seconds"] > 0 and est["sec_per_iter"] > 0
        # a config whose data cannot load: failed, with the reason
        empty = tmp_path / "empty"
        empty.mkdir()
        bad = mgr.wait_estimate(mgr.estimate(make_config("tiny", "darts", dataset="folder",
                                                         data_dir=str(empty))), 120)
        assert bad["status"] == "failed" and str(empty) in bad["error"]
        assert mgr.estimate_status(12345) is None
    finally:
        mgr.shutdown()
    assert store.list_runs() == []


def test_the_launch_page_estimate_waits_for_its_worker(app_db):
    at = new_app()
    at.run()
    at.switch_page("pages/launch.py")
    at.run()
    at.selectbox(key="launch_preset").set_value("tiny").run()
    next(b for b in at.button if b.label == "Estimate run time").click().run()
    assert not at.exception, [e.value for e in at.exception]
    text = _texts(at)
    assert "About **" in text and "12 iterations ×" in text
    est = at.session_state["launch_estimate"]
    assert est["pid"] != os.getpid()
    assert "launch_estimate_job" not in at.session_state
