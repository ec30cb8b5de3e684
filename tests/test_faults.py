"""Fault injection (issue 22): kill -9 a search process before its setup, in the middle of an
iteration, during a checkpoint write, during a store write and at a random moment, and kill -9 a
process holding a RunManager (the app's server) with a running and a queued run. After each:
the store passes ``PRAGMA integrity_check``, every run reads resumable (interrupted) or
finished, a resumed run's rows are contiguous with no duplicates, and at most the work since
the last checkpoint was lost.

The kills inside a process are made by the process itself (``_FAULT`` below, run in place of
``python -m core``): a SIGKILL at an exact point, which a kill from outside could only hit by
chance. Each writes where it died (iteration, recorded seconds) to a file first."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.__main__ import main as cli
from core.engine.config import make_config
from core.runs.runner import RunManager
from core.runs.store import RunStore
from tests.conftest import one_torch_thread

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_S = 1
# 2 epochs of 16 iterations, a checkpoint at least every second: several within each epoch here
PER_EPOCH = 16
ARGS = ["--preset", "tiny", "--method", "darts-prime", "--set", "epochs=2",
        "--set", f"iters_per_epoch={PER_EPOCH}", "--set", f"checkpoint_seconds={CHECKPOINT_S}",
        "--set", "log_every=2", "--quiet"]
TOTAL = 2 * PER_EPOCH

# python -c _FAULT FAULT_JSON DIED_FILE ARGV...: `python -m core ARGV` that kills itself at FAULT.
_FAULT = r"""
import json, os, signal, sys
fault, died, argv = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
import torch
from core.engine import search as S
from core.runs import store as R

def die(search=None, where=""):
    with open(died, "w") as f:
        json.dump({"where": where, "step": None if search is None else search.step,
                   "elapsed": None if search is None else search.elapsed()}, f)
    os.kill(os.getpid(), signal.SIGKILL)

where, nth = fault["where"], fault.get("nth", 0)
if where == "at":  # a moment given in recorded seconds (scripts/perf/kill_loss.py draws it)
    real_iteration = S.Search.iteration
    def iteration(self, epoch):
        if self.elapsed() >= fault["seconds"]:
            self.w_optimizer.step = lambda *a, **k: die(self, where)
        return real_iteration(self, epoch)
    S.Search.iteration = iteration
elif where == "setup":
    S.Search.setup = lambda self: die(None, where)
elif where == "iteration":  # after the forward and backward pass, before the weight update
    real_iteration = S.Search.iteration
    def iteration(self, epoch):
        if self.step == nth:
            self.w_optimizer.step = lambda *a, **k: die(self, where)
        return real_iteration(self, epoch)
    S.Search.iteration = iteration
elif where == "checkpoint":  # half a file written, synced, then killed before the rename
    real_save, calls = torch.save, [0]
    current = {}
    real_checkpoint = S.Search.save_checkpoint
    def save_checkpoint(self, *a, **k):
        current["search"] = self
        return real_checkpoint(self, *a, **k)
    S.Search.save_checkpoint = save_checkpoint
    def save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] == nth:
            f.write(b"\x80\x02partial checkpoint" * 1000)
            f.flush()
            os.fsync(f.fileno())
            die(current["search"], where)
        return real_save(obj, f, *a, **k)
    torch.save = save
elif where == "store":  # rows inserted inside an open transaction, killed before the commit
    real_add, calls = R.RunStore.add_steps, [0]
    def add_steps(self, run_id, rows):
        calls[0] += 1 if rows else 0
        if calls[0] == nth and rows:
            conn = self.connect()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO steps (run_id, step) VALUES (?, ?)",
                             [(run_id, r["step"]) for r in rows])
            die(None, where)
        return real_add(self, run_id, rows)
    R.RunStore.add_steps = add_steps
from core.__main__ import main
sys.exit(main(argv))
"""


def _faulty(db: str, fault: dict, died: Path, *argv: str) -> dict:
    """Runs the CLI with a fault; returns where it died (it must have)."""
    env = {**os.environ, "PRIME_EXPLORER_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _FAULT, json.dumps(fault), str(died), "--db", db, *argv],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, (fault, proc.returncode, proc.stderr[-2000:])
    return json.loads(died.read_text())


def _intact(db: str) -> None:
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def _checkpoint(store: RunStore, run_id: int) -> dict | None:
    path = store.checkpoint_path(run_id)
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {"step": int(state["step"]), "elapsed": float(state["elapsed"])}


def _contiguous(store: RunStore, run_id: int, n: int) -> None:
    with sqlite3.connect(store.path) as con:
        steps = [r[0] for r in con.execute("SELECT step FROM steps WHERE run_id = ? ORDER BY step", (run_id,))]
    assert steps == list(range(n)), steps
    times = store.steps(run_id)["time"].tolist()
    assert all(b >= a for a, b in zip(times, times[1:])), "recorded time went back"


def _lost_at_most_since_the_checkpoint(store: RunStore, run_id: int, died: dict) -> None:
    """The iterations a resume redoes are those after the surviving checkpoint: at most
    checkpoint_seconds (plus the iteration that crossed it, and an epoch's end) of work."""
    ck = _checkpoint(store, run_id) or {"step": 0, "elapsed": 0.0}  # none yet: from the start
    if died["step"] is None:
        return
    lost_iters, lost_s = died["step"] - ck["step"], died["elapsed"] - ck["elapsed"]
    assert 0 <= lost_iters <= PER_EPOCH and lost_s <= CHECKPOINT_S + 1.5, (died, ck)


def test_kill_9_at_each_point_of_a_run_then_resume_to_the_end(tmp_path):
    """One run killed before its setup, mid-iteration, during a checkpoint write and during a
    store write (each resumed from the CLI), then resumed to its end."""
    rng = random.Random(22)
    db = str(tmp_path / "faults.sqlite")
    died = tmp_path / "died.json"
    _faulty(db, {"where": "setup"}, died, "search", *ARGS)
    store = RunStore(db)
    (run,) = store.list_runs()
    assert run.status == "interrupted" and store.steps(run.id).empty  # was: queued for ever
    rid = run.id
    for point in ("iteration", "checkpoint", "store", "iteration"):
        ck = _checkpoint(store, rid)
        start = 0 if ck is None else ck["step"]
        assert start < TOTAL - 6, "the run must still have work for the next fault"
        nth = start + rng.randrange(1, 5) if point == "iteration" else rng.randrange(1, 3)
        where = _faulty(db, {"where": point, "nth": nth}, died, "resume", str(rid), "--quiet")
        _intact(db)
        run = store.get_run(rid)
        assert run.status == "interrupted", (point, run.status)
        # a half-written checkpoint never replaced the last whole one: it loads
        assert _checkpoint(store, rid) is not None or ck is None
        _lost_at_most_since_the_checkpoint(store, rid, where)
    with one_torch_thread():
        assert cli(["--db", db, "resume", str(rid), "--quiet"]) == 0
    _intact(db)
    run = store.get_run(rid)
    assert run.status == "finished" and run.iterations == TOTAL
    _contiguous(store, rid, TOTAL)
    kinds = store.events(rid)["kind"].tolist()
    assert kinds.count("interrupted") == 5 and kinds.count("resumed") == 5
    assert kinds.count("started") == 5 and kinds[-1] == "finished"


def test_kill_9_from_outside_at_a_random_moment(tmp_path):
    db = str(tmp_path / "outside.sqlite")
    rng = random.Random(int(time.time()))
    proc = subprocess.Popen([sys.executable, "-m", "core", "--db", db, "search", *ARGS], cwd=ROOT,
                            env={**os.environ, "PRIME_EXPLORER_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(db) if _wait_for(lambda: os.path.exists(db), 60) else None
    assert store is not None
    # a random moment: after a random number of recorded iterations (the whole run takes a few
    # seconds, so a random time alone could outlast it), then up to a third of a second more
    target = rng.randrange(2, TOTAL - 10, 2)
    _wait_for(lambda: store.list_runs() and store.list_runs()[0].iterations >= target, 120)
    time.sleep(rng.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _intact(db)
    (run,) = store.list_runs()
    assert run.status == "interrupted"
    ck = _checkpoint(store, run.id)
    last_time = store.steps(run.id)["time"].iloc[-1]
    # killed before the first checkpoint, the run resumes from its start: still under a period lost
    saved = ck["elapsed"] if ck is not None else 0.0
    assert last_time - saved <= CHECKPOINT_S + 1.5
    with one_torch_thread():
        assert cli(["--db", db, "resume", str(run.id), "--quiet"]) == 0
    assert store.get_run(run.id).status == "finished"
    _contiguous(store, run.id, TOTAL)


_SERVER = r"""
import sys, time
from core.engine.config import make_config
from core.runs.runner import RunManager
from core.runs.store import RunStore
manager = RunManager(RunStore(sys.argv[1]), max_concurrent=1)
cfg = make_config("tiny", "darts", epochs=2, iters_per_epoch=10, checkpoint_seconds=1, log_every=1)
print(manager.start(cfg, name="running"), manager.start(cfg, name="queued"), flush=True)
time.sleep(600)
"""


def test_kill_9_of_the_server_with_a_running_and_a_queued_run(tmp_path):
    db = str(tmp_path / "server.sqlite")
    server = subprocess.Popen([sys.executable, "-c", _SERVER, db], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PRIME_EXPLORER_THREADS": "1"})
    running, queued = map(int, server.stdout.readline().split())
    store = RunStore(db)
    assert _wait_for(lambda: store.get_run(running).iterations >= 3, 120)
    worker = store.get_run(running).pid
    server.send_signal(signal.SIGKILL)
    server.wait()
    # the worker sees its stdin end, writes a checkpoint and stores itself interrupted
    assert _wait_for(lambda: store.get_run(running).status != "running", 60)
    assert _wait_for(lambda: not os.path.exists(f"/proc/{worker}"), 30)
    _intact(db)
    assert {r.id: r.status for r in store.list_runs()} == {running: "interrupted", queued: "interrupted"}
    assert "gone" in store.events(queued, kinds=["interrupted"])["message"].iloc[0]
    stopped_at = _checkpoint(store, running)["step"]
    assert stopped_at == store.get_run(running).iterations  # nothing lost: stopped between iterations
    manager = RunManager(store, max_concurrent=2)
    try:
        for rid in (running, queued):
            manager.resume(rid)
        assert manager.wait(running, 180) and manager.wait(queued, 180)
    finally:
        manager.shutdown()
    for rid in (running, queued):
        assert store.get_run(rid).status == "finished"
        _contiguous(store, rid, 20)


def _wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (sqlite3.OperationalError, AttributeError):
            pass
        time.sleep(0.1)
    return False
