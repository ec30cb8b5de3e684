"""Liveness from facts (issue 22): a run reads as running only while its process is alive, a
queued run whose launcher is gone reads interrupted, every run that is not live can be resumed
or deleted (pages and CLI); checkpoints by time; CLI errors exit 2 with one line; the server
listens on 127.0.0.1 by default. The kill -9 suite is tests/test_faults.py."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.__main__ import main as cli
from core.engine.config import ConfigError, SearchConfig, field_info, make_config, parse_value
from core.engine.search import Search
from core.runs.store import _MIGRATIONS, STALE_SECONDS, RunStore, process_start
from tests.conftest import new_app, one_torch_thread

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "live.sqlite")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- liveness ----------------------------------------------------------------------------------
def test_queued_run_whose_launcher_is_gone_reads_interrupted_with_last_seen(store):
    """A CLI search killed before its setup left a run queued for ever (only running and
    paused runs were recovered, and only when an app's manager started)."""
    code = ("import sys; from core.runs.store import RunStore; from core.engine.config import make_config;"
            "print(RunStore(sys.argv[1]).create_run(make_config('tiny')))")
    out = subprocess.run([sys.executable, "-c", code, store.path], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    rid = int(out.stdout)
    run = store.get_run(rid)
    assert run.status == "interrupted" and run.last_seen is not None
    ev = store.events(rid, kinds=["interrupted"])
    assert len(ev) == 1 and "last seen" in ev["message"].iloc[0] and "waiting to start" in ev["message"].iloc[0]
    assert [r.status for r in store.list_runs()] == ["interrupted"]
    store.get_run(rid)
    assert len(store.events(rid, kinds=["interrupted"])) == 1  # said once, not at every read


def test_running_run_of_a_dead_zombie_or_reused_pid_reads_interrupted(store):
    cfg = make_config("tiny")
    alive = store.create_run(cfg)
    store.update_run(alive, status="running", pid=os.getpid())
    dead = store.create_run(cfg)
    store.update_run(dead, status="running", pid=_dead_pid())
    reused = store.create_run(cfg)  # this pid, but a process that started at another time
    store.update_run(reused, status="paused", pid=os.getpid(), proc_start=process_start(os.getpid()) - 5)
    zombie_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while process_start(zombie_proc.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # exited, not yet waited for: a zombie, which os.kill(pid, 0) finds
    zombie = store.create_run(cfg)
    store.update_run(zombie, status="running", pid=zombie_proc.pid)
    status = {r.id: r.status for r in store.list_runs()}
    zombie_proc.wait()
    assert status == {alive: "running", dead: "interrupted", reused: "interrupted", zombie: "interrupted"}


def test_run_on_another_host_is_live_while_its_heartbeat_is_fresh(store):
    cfg = make_config("tiny")
    fresh, stale = store.create_run(cfg), store.create_run(cfg)
    store.update_run(fresh, status="running", host="node-7", pid=123, seen=time.time())
    store.update_run(stale, status="running", host="node-7", pid=123,
                     seen=time.time() - STALE_SECONDS - 5, updated=time.time() - STALE_SECONDS - 5)
    assert store.get_run(fresh).status == "running" and store.get_run(stale).status == "interrupted"


def test_a_store_of_the_previous_schema_opens_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    for v, script in enumerate(_MIGRATIONS[:3]):
        con.executescript(script)
        con.execute(f"PRAGMA user_version = {v + 1}")
    cfg = make_config("tiny").to_json()
    con.execute("INSERT INTO runs (name, config, status, created) VALUES ('old done', ?, 'finished', 1)", (cfg,))
    con.execute("INSERT INTO runs (name, config, status, created) VALUES ('old queued', ?, 'queued', 1)", (cfg,))
    con.commit()
    con.close()
    store = RunStore(path)
    assert {r.name: r.status for r in store.list_runs()} == {"old done": "finished",
                                                            "old queued": "interrupted"}


def test_resume_keeps_the_history_and_drops_only_rows_after_the_checkpoint(store):
    rid = store.create_run(make_config("tiny"))
    store.add_steps(rid, [{"step": s, "epoch": 0} for s in range(10)])
    for kind, step in (("epoch_end", 4), ("pruned", 7), ("stopped", 9), ("interrupted", 9), ("started", 0)):
        store.add_event(rid, kind, kind, step=step)
    store.truncate_after(rid, 5)
    assert store.steps(rid)["step"].tolist() == list(range(6))
    assert store.get_run(rid).iterations == 6
    assert store.events(rid)["kind"].tolist() == ["epoch_end", "stopped", "interrupted", "started"]


# ---- checkpoints by time --------------------------------------------------------------------------
class _Slow:
    """Makes each iteration take ``seconds`` longer; sets ``stop`` after iteration ``stop_at``."""

    def __init__(self, seconds: float, stop: threading.Event | None = None, stop_at: int = -1):
        self.seconds, self.stop, self.stop_at = seconds, stop, stop_at

    def on_step_end(self, s, row):
        time.sleep(self.seconds)
        if self.stop is not None and row["step"] == self.stop_at:
            self.stop.set()

    def __getattr__(self, name):
        return lambda *a, **k: None


def test_checkpoints_are_written_within_an_epoch_every_checkpoint_seconds(store):
    cfg = make_config("tiny", "darts-prime", epochs=1, iters_per_epoch=12, checkpoint_seconds=1)
    rid = store.create_run(cfg)
    saved = []
    real = Search.save_checkpoint

    def spy(self, next_epoch, epoch_iter=0):
        saved.append((self.step, next_epoch, epoch_iter))
        real(self, next_epoch, epoch_iter)

    with one_torch_thread(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(Search, "save_checkpoint", spy)
        result = Search(cfg, store, rid, callbacks=[_Slow(0.25)]).run()
    mid = [s for s in saved if s[2] > 0]
    assert len(mid) >= 2 and all(s[0] == s[2] for s in mid)  # iteration s of epoch 0
    assert saved[-1] == (12, 1, 0)  # and at the epoch end
    assert result.checkpoints == len(saved) and 0 < result.checkpoint_time < result.seconds
    assert store.get_run(rid).summary["checkpoints"] == len(saved)


def test_resume_from_a_checkpoint_within_an_epoch_continues_identically(store):
    """Stopped at iteration 7 of a 10-iteration epoch: the stop's checkpoint holds the middle
    of the epoch; the resumed run's rows and weights are those of an unbroken run, and its
    recorded time goes on from where it was."""
    cfg = make_config("tiny", "prime-admm", epochs=2, iters_per_epoch=10, admm_every=2,
                      alpha_lr=0.05, log_every=3)
    with one_torch_thread():
        whole = Search(cfg, store, store.create_run(cfg))
        whole.run()
        rid = store.create_run(cfg)
        stop = threading.Event()
        first = Search(cfg, store, rid, callbacks=[_Slow(0.02, stop, 7)]).run(stop)
        assert first.status == "stopped" and first.iterations == 8
        before = store.steps(rid)
        resumed = Search(cfg, store, rid, resume=True)
        assert resumed.run().status == "finished"
    steps = store.steps(rid)
    assert steps["step"].tolist() == list(range(20))
    np.testing.assert_allclose(steps["train_loss"], store.steps(whole.run_id)["train_loss"], rtol=1e-5)
    for ct, a in whole.model.alphas().items():
        torch.testing.assert_close(resumed.model.alphas()[ct], a, rtol=0, atol=1e-6)
    assert steps["time"].iloc[8] >= before["time"].iloc[-1]  # time did not restart at 0
    kinds = store.events(rid)["kind"].tolist()
    assert kinds.count("started") == 2 and "stopped" in kinds and "resumed" in kinds


# ---- configuration messages ----------------------------------------------------------------------
def test_out_of_range_values_are_refused_with_a_message_that_never_reads_none():
    for f in field_info():
        if f["kind"] not in ("int", "float"):
            continue
        bad = []
        if f.get("max") is not None:
            bad.append(f["max"] * 10 + 1)
        low = f.get("min", f.get("gt"))
        if low is not None:
            bad.append(low - 1)
        for v in bad:
            v = int(v) if f["kind"] == "int" else float(v)
            with pytest.raises(ConfigError) as e:
                SearchConfig(**{f["name"]: v})
            assert e.value.field == f["name"] and "None" not in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match=r"w_lr: must be > 0 and <= 1.0, got 2.0"):
        make_config("tiny", w_lr=2.0)
    with pytest.raises(ConfigError, match="seed: must be a whole number"):
        parse_value("seed", "1e30")  # not rounded, not clipped
    with pytest.raises(ConfigError, match="seed: must be between 0 and 2147483647"):
        make_config("tiny", seed=10**30)
    with pytest.raises(ConfigError, match="data_dir: must be text of at most 1024 characters"):
        make_config("tiny", data_dir="x" * 10_000_000)


# ---- the command line ------------------------------------------------------------------------
def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, field", [
    (["--device", "cuda"], "device"),
    (["--dataset", "cifar10", "--data-dir", "EMPTY"], "dataset"),
    (["--name", "n" * 500], "--name"),
    (["--set", "seed=1e30"], "seed"),
    (["--set", "epochs=0"], "epochs"),
    (["--set", "data_dir=" + "d" * 5000], "data_dir"),
])
def test_cli_search_that_cannot_start_exits_2_with_one_line_and_stores_nothing(tmp_path, capsys, argv, field):
    if "--device" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = [str(tmp_path) if a == "EMPTY" else a for a in argv]
    db = str(tmp_path / "cli.sqlite")
    code, out, err = _cli(capsys, "--db", db, "search", "--preset", "tiny", "--quiet", *argv)
    assert code == 2 and err.startswith(f"error: {field}") and err.count("\n") == 1, err
    assert "None" not in err and len(err) < 400
    assert not os.path.exists(db) or RunStore(db).list_runs() == []


def test_cli_evaluate_of_a_bad_stored_genotype_exits_2_with_one_line(store, capsys):
    rid = store.create_run(make_config("tiny"), status="finished")
    store.update_run(rid, genotype="Genotype(normal=[('__import__(\"os\")', 0)], normal_concat=7)")
    code, _, err = _cli(capsys, "--db", store.path, "evaluate", str(rid), "--preset", "tiny")
    assert code == 2 and err.startswith("error: genotype:") and err.count("\n") == 1, err
    assert store.evaluations([rid]).empty


def test_cli_resume_and_delete(store, capsys):
    cfg = make_config("tiny", "darts", epochs=2, iters_per_epoch=3)
    live = store.create_run(cfg)
    store.update_run(live, status="running", pid=os.getpid())
    code, _, err = _cli(capsys, "--db", store.path, "delete", str(live))
    assert code == 2 and err.startswith("error: run_id:") and "running" in err
    code, _, err = _cli(capsys, "--db", store.path, "resume", str(live))
    assert code == 2 and "stop it there first" in err
    code, _, err = _cli(capsys, "--db", store.path, "resume", "999")
    assert code == 2 and err.startswith("error: run_id: no run 999")

    dead = store.create_run(cfg)
    store.update_run(dead, status="queued", pid=_dead_pid())  # a launcher killed before setup
    code, out, _ = _cli(capsys, "--db", store.path, "list")
    assert any(line.split()[0] == str(dead) and "interrupted" in line for line in out.splitlines()[1:])
    with one_torch_thread():
        code, out, err = _cli(capsys, "--db", store.path, "resume", str(dead), "--json")
    assert code == 0 and json.loads(out)["status"] == "finished"
    assert store.steps(dead)["step"].tolist() == list(range(6))
    code, _, err = _cli(capsys, "--db", store.path, "resume", str(dead))
    assert code == 2 and "it finished" in err
    code, out, _ = _cli(capsys, "--db", store.path, "delete", str(dead))
    assert code == 0 and store.get_run(dead) is None
    assert not os.path.exists(store.checkpoint_path(dead))


# ---- the server and the pages -------------------------------------------------------------------
def test_the_server_listens_on_localhost_by_default():
    with open(ROOT / ".streamlit" / "config.toml", "rb") as f:
        assert tomllib.load(f)["server"]["address"] == "127.0.0.1"
    # and Streamlit reads it so, from the project's folder
    out = subprocess.run([sys.executable, "-c", "from streamlit import config; "
                          "config.get_config_options(force_reparse=True); "
                          "print(config.get_option('server.address'))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "127.0.0.1"


def test_pages_offer_resume_and_delete_for_a_dead_run_and_say_when_it_was_last_seen(app_db):
    store = RunStore(app_db)
    cfg = make_config("tiny", "darts-prime")
    rid = store.create_run(cfg, name="cli killed before setup")
    store.update_run(rid, pid=_dead_pid(), updated=time.time() - 90)
    at = new_app()
    at.query_params["run"] = str(rid)
    at.run()
    at.switch_page("pages/monitor.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warning = " ".join(w.value for w in at.warning)
    assert "gone" in warning and "last seen" in warning and "ago" in warning
    assert not at.button(key="ctl_resume").disabled and at.button(key="ctl_stop").disabled
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.button(key="resume_run").disabled
    assert not at.checkbox(key=f"confirm_delete_{rid}").disabled
    df = at.dataframe[0].value
    assert df.loc[df["id"] == rid, "status"].item() == "interrupted"
    assert df.loc[df["id"] == rid, "last seen"].notna().item()
    at.checkbox(key=f"confirm_delete_{rid}").check().run()
    at.button(key="delete_run").click().run()
    assert store.get_run(rid) is None
