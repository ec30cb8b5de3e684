"""Studies on Ray: a local Ray with 2 CPUs stands for a cluster. A 2x2 tiny study through Ray
writes the rows a local study writes; a trial killed by PID is retried from its checkpoint; a
stop stored on the run reaches a running trial; the Compare page shows a Ray study."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.runs.control import request_control
from core.runs.runner import run_study
from core.runs.store import RunStore
from core.runs.study import StudySpec

ray = pytest.importorskip("ray")
from core.engine.config import make_config  # noqa: E402
from core.runs.ray_study import RayOptions, run_on_ray, run_ray_study  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
METHODS = ["darts", "prime-crb"]
TINY = {"epochs": 1, "iters_per_epoch": 4}
# Long enough to act on mid-run: 4 epochs of 15 iterations, a checkpoint at each epoch's end.
LONG = {"epochs": 4, "iters_per_epoch": 15}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


def _counts(store: RunStore, run_id: int) -> dict[str, int]:
    with sqlite3.connect(store.path) as c:
        return {t: c.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0]
                for t in ("steps", "alphas", "genotypes")}


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_study_through_ray_writes_what_a_local_study_writes(local_ray, tmp_path, capsys):
    from core.__main__ import main as cli

    spec = dict(methods=METHODS, seeds=2, preset="tiny", overrides=TINY)
    db = str(tmp_path / "ray.sqlite")
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    assert cli(["--db", db, "study", "--methods", ",".join(METHODS), "--seeds", "2", "--preset", "tiny",
                *sets, "--name", "on-ray", "--ray", "--json"]) == 0
    ray_store = RunStore(db)
    ids = [r.id for r in ray_store.list_runs(group="on-ray")]
    assert '"study": "on-ray"' in capsys.readouterr().out
    local_store = RunStore(tmp_path / "local.sqlite")
    local_ids = run_study(local_store, StudySpec("local", **spec))
    assert len(ids) == 4
    by_name = {r.name: r for r in local_store.list_runs(ids=local_ids)}
    for run in ray_store.list_runs(ids=ids):
        assert run.status == "finished", (run.name, run.error)
        twin = by_name[run.name]
        assert _counts(ray_store, run.id) == _counts(local_store, twin.id)
        assert run.genotype == twin.genotype  # same seed, same code: the same cell
        assert run.pid != os.getpid()  # searched in a Ray worker, not here


def test_a_stored_study_resumes_on_ray_from_the_cli(local_ray, tmp_path, capsys):
    """A study whose launching process went away before its trials ran: ``--resume-study``
    runs what is not finished; a name that is not stored exits 2 naming the flag."""
    from core.__main__ import main as cli
    from core.runs.ray_study import queue_ray_study

    db = str(tmp_path / "resume.sqlite")
    ids = queue_ray_study(RunStore(db), StudySpec("left", methods=METHODS, seeds=1, preset="tiny",
                                                  overrides=TINY))
    assert cli(["--db", db, "study", "--resume-study", "left", "--ray"]) == 0
    assert [r.status for r in RunStore(db).list_runs(ids=ids)] == ["finished", "finished"]
    assert cli(["--db", db, "study", "--resume-study", "gone", "--ray"]) == 2
    assert "--resume-study: no study named 'gone'" in capsys.readouterr().err


def test_a_killed_trial_is_retried_from_its_checkpoint(local_ray, tmp_path):
    store = RunStore(tmp_path / "kill.sqlite")
    rid = store.create_run(make_config("tiny", "prime-crb", **LONG), name="kill me")
    t = threading.Thread(target=run_on_ray, args=(store, [rid], RayOptions()))
    t.start()
    ckpt = store.checkpoint_path(rid)
    _wait(lambda: os.path.exists(ckpt), 120, "the first checkpoint at the launching machine")
    run = store.get_run(rid)
    done_before = run.iterations
    os.kill(run.pid, signal.SIGKILL)
    t.join(240)
    assert not t.is_alive()
    run = store.get_run(rid)
    assert run.status == "finished", run.error
    retried = store.events(rid, kinds=["retried"])
    assert len(retried) == 1 and "from its checkpoint at iteration" in retried["message"].iloc[0]
    steps = store.steps(rid)["step"].tolist()
    assert steps == list(range(run.total_iterations))  # contiguous, no duplicates
    assert done_before >= 15  # it had passed an epoch end, so the resume skipped work


def test_a_stop_stored_on_the_run_reaches_the_trial(local_ray, tmp_path):
    store = RunStore(tmp_path / "stop.sqlite")
    rid = store.create_run(make_config("tiny", "darts", epochs=20, iters_per_epoch=15), name="stop me")
    t = threading.Thread(target=run_on_ray, args=(store, [rid], RayOptions()))
    t.start()
    _wait(lambda: store.get_run(rid).iterations >= 3, 60, "the trial to run")
    request_control(store, rid, "stop")
    t.join(60)
    assert not t.is_alive()
    run = store.get_run(rid)
    assert run.status == "stopped" and run.iterations < run.total_iterations


def test_the_compare_page_shows_a_ray_study(local_ray, app_db):
    from tests.conftest import new_app

    store = RunStore(app_db)
    ids = run_ray_study(store, StudySpec("ray-page", METHODS, seeds=1, preset="tiny", overrides=TINY),
                        RayOptions())
    at = new_app()
    at.query_params["study"] = "ray-page"
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(str(d.value.to_dict()) for d in at.dataframe)
    assert all(store.get_run(i).name in shown for i in ids)


def test_the_compare_page_starts_a_study_on_ray_in_a_driver_process(app_db):
    """The New study form with "Run on Ray": the runs are queued at once, a driver process (not
    the server) runs them on a local Ray, and they finish with their rows in the app's store."""
    from tests.conftest import new_app
    from tests.helpers import page_texts

    at = new_app()
    at.run()
    at.switch_page("pages/compare.py")
    at.run()
    at.multiselect(key="study_methods").set_value(["darts", "darts-prime"])
    at.selectbox(key="study_preset").set_value("tiny")
    at.number_input(key="study_seeds").set_value(1)
    at.number_input(key="study_epochs").set_value(1)
    at.number_input(key="study_ipe").set_value(3)
    at.toggle(key="study_ray").set_value(True)
    at.text_input(key="study_name").input("page on ray").run()
    at.button(key="study_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(app_db)
    runs = store.list_runs(group="page on ray")
    assert len(runs) == 2 and "on Ray (a local Ray)" in page_texts(at)
    _wait(lambda: all(r.status == "finished" for r in store.list_runs(group="page on ray")), 180,
          "the Ray driver to finish the study")
    for r in store.list_runs(group="page on ray"):
        assert r.pid != os.getpid() and _counts(store, r.id)["steps"] == 3
