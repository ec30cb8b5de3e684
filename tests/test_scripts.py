"""The measurement scripts' own logic: app_vs_cli's arithmetic and process tree, monitor_cost's
replay and scheduler counters (marked `perf`: the default run skips them; `python -m pytest -m
perf` runs them), and demo_targets' verdicts."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from core.engine.config import make_config
from core.runs.store import RunStore
from scripts.perf.app_vs_cli import cli_sequences, descendants, pooled, watch_cost
from scripts.perf.monitor_cost import Replay


@pytest.mark.perf
def test_watch_cost_compares_like_iterations_in_watched_and_unwatched_windows(tmp_path):
    """Iterations take 1.0 s (architecture steps 2.0 s, the one after an epoch end 3.0 s) with
    the browser stopped and 25% longer watched; windows of 10 s alternate. The ratio must be
    0.8 although the watched windows hold a different mix of slow iterations."""
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(make_config("tiny", "darts-prime"))
    store.mark_started(run_id, "cpu")
    started = store.get_run(run_id).started
    switches = [(started + 10.0 * k, k % 2 == 0) for k in range(40)]

    def watched_at(t: float) -> bool:
        return switches[int((t - started) // 10.0)][1]

    rows, t = [], 0.0
    for step in range(200):
        arch = step % (6 if watched_at(started + t) else 2) == 0  # more slow ones when not watched
        after_epoch = step % 50 == 1
        base = 3.0 if after_epoch else 2.0 if arch else 1.0
        t += base * (1.25 if watched_at(started + t) else 1.0)
        rows.append({"step": step, "time": t, "arch_step": int(arch)})
        if step % 50 == 0:
            store.add_event(run_id, "epoch_end", "end", step=step)
    store.add_steps(run_id, rows)
    out = watch_cost(store, run_id, switches)
    assert out["ratio_watched"] == pytest.approx(0.8, abs=1e-3)
    assert out["iterations_watched"] > 20 and out["iterations_not_watched"] > 20
    assert out["s_per_iter_watched"] > out["s_per_iter_not_watched"]


@pytest.mark.perf
def test_pooling_saved_batches_pairs_each_app_run_with_the_cli_runs_around_it():
    """Two saved batches, as the script prints them: a bracketed one (its recap lines, a medians
    line) and one without a closing run, with a stray text line. Each app run is compared with
    the CLI run before it and, where one followed in its batch, with the mean of both; each CLI
    run with the one before it in its own batch only."""
    import json

    def pair(cli, app):
        return json.dumps({"cli_iters_per_s": cli, "app_iters_per_s": app, "ratio": round(app / cli, 3)})

    bracketed = [pair(0.60, 0.57), pair(0.64, 0.50), json.dumps({"closing_cli_iters_per_s": 0.56}),
                 json.dumps({"pair": 1, "ratio": 0.95, "ratio_bracketed": 0.919}),
                 json.dumps({"pairs": 2, "median_ratio": 0.866})]
    plain = ["a line of text between the batches", pair(0.50, 0.50), pair(0.55, 0.44),
             json.dumps({"pairs": 2, "median_ratio": 0.9})]
    batches = cli_sequences(bracketed + plain)
    assert batches == [[{"cli": 0.60, "app": 0.57}, {"cli": 0.64, "app": 0.50}, {"cli": 0.56}],
                       [{"cli": 0.50, "app": 0.50}, {"cli": 0.55, "app": 0.44}]]
    out = pooled(batches)
    assert out["pairs"] == 4
    app_cli = out["app_vs_cli"]
    assert app_cli["n"] == 4 and app_cli["min"] == 0.781 and app_cli["max"] == 1.0
    assert app_cli["mean"] == round((0.95 + 0.50 / 0.64 + 1.0 + 0.8) / 4, 3)
    assert app_cli["under_0.9"] == 2
    lo, hi = app_cli["mean_95"]
    assert app_cli["min"] <= lo <= app_cli["mean"] <= hi <= app_cli["max"]
    assert pooled(batches) == out  # the interval is seeded
    # the last app run of the plain batch has no CLI run after it
    assert out["app_vs_bracketing_cli"]["n"] == 3
    assert out["app_vs_bracketing_cli"]["max"] == round(0.50 / 0.525, 3)
    # 0.64/0.60, 0.56/0.64, 0.55/0.50: never across the two batches (0.50/0.56)
    cli = out["cli_vs_previous_cli"]
    assert cli["n"] == 3 and cli["min"] == 0.875 and cli["max"] == 1.1


@pytest.mark.perf
def test_pool_on_the_command_line_reads_saved_batches_and_names_a_missing_file(tmp_path):
    """``--pool`` prints the pooled line for the files given, and a missing file or one
    without pairs is named in the error, not a traceback."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "batch.jsonl"
    log.write_text("\n".join(json.dumps(d) for d in (
        {"cli_iters_per_s": 0.6, "app_iters_per_s": 0.6}, {"cli_iters_per_s": 0.5, "app_iters_per_s": 0.45},
        {"closing_cli_iters_per_s": 0.5})) + "\n")
    script = [sys.executable, str(root / "scripts" / "perf" / "app_vs_cli.py"), "--pool"]
    ok = subprocess.run(script + [str(log)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["pairs"] == 2 and out["app_vs_cli"]["mean"] == 0.95
    assert out["cli_vs_previous_cli"] == {"n": 2, "mean": 0.917, "min": 0.833, "max": 1.0, "under_0.9": 1,
                                          "sd": 0.118, "mean_95": [0.833, 1.0]}
    missing = subprocess.run(script + [str(log), str(tmp_path / "gone.jsonl")], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "--pool: no such file" in missing.stderr and "gone.jsonl" in missing.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not a batch\n")
    none = subprocess.run(script + [str(empty)], capture_output=True, text=True, timeout=120)
    assert none.returncode == 2 and "--pool: no pairs" in none.stderr


@pytest.mark.perf
def test_replay_writes_a_stored_run_again_iteration_by_iteration(finished_template, tmp_path):
    """The Monitor reads a replayed run as a live one: running, written by a live process,
    each table growing one iteration at a time with the source's rows; past the source's end
    its rows come again under new iteration numbers."""
    import os
    import socket
    import sqlite3

    from core.viz.live import RunView

    src_path, src_id = finished_template
    src = RunStore(src_path)
    steps = src.steps(src_id)
    last = int(steps["step"].iloc[-1])
    replay = Replay(Path(src_path), src_id, tmp_path / "app.sqlite")
    dst = RunStore(replay.dst)
    run = dst.get_run(replay.run_id)
    # written by this (live) process on this host: the app's server will not call it interrupted
    assert (run.host, run.pid) == (socket.gethostname(), os.getpid())
    view = RunView(dst, replay.run_id)
    view.refresh()
    assert view.run.status == "running" and view.steps.empty

    with sqlite3.connect(replay.dst) as con:
        for _ in range(3):
            replay.write_next(con)
    view.refresh()
    assert list(view.steps["step"]) == [0, 1, 2]
    assert view.steps["train_loss"].tolist() == steps["train_loss"].iloc[:3].tolist()
    assert dst.get_run(replay.run_id).iterations == 3
    assert len(view.events) >= 1  # "started" comes with the first iteration

    with sqlite3.connect(replay.dst) as con:
        while replay.done < last + 3:
            replay.write_next(con)
    view.refresh()
    assert list(view.steps["step"]) == list(range(last + 3))
    again = view.steps.set_index("step")
    assert again.loc[last + 1, "train_loss"] == steps.set_index("step").loc[0, "train_loss"]
    src_view = RunView(src, src_id)
    src_view.refresh()
    assert len(view.genotypes) >= len(src_view.genotypes)  # every genotype, the first again
    assert view.events["kind"].tolist() == src_view.events["kind"].tolist()  # events once only


@pytest.mark.perf
def test_descendants_are_the_processes_this_one_started():
    """The scripts sample the CPU of what they started only, not of other browsers or servers."""
    import os
    import subprocess
    import sys

    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code])
    started: list[int] = []
    try:
        for _ in range(100):
            mine = descendants()
            # the child's own child (a pytest run may have started other processes before)
            started = [child.pid, *(p for p in mine if _parent(p) == child.pid)]
            if len(started) == 2:
                break
            time.sleep(0.05)
        assert len(started) == 2 and all(p in mine for p in started)
        assert os.getpid() not in mine and os.getppid() not in mine
    finally:
        for p in started or [child.pid]:
            with contextlib.suppress(OSError):
                os.kill(p, 9)
        child.wait()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.perf
@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="Linux scheduler counters")
def test_sched_times_counts_the_busy_threads_of_a_process():
    """--beside-search reads the search's time on a core and its wait over all its threads: read
    twice during the spin of a process's second thread (its main thread asleep), the process was
    on a core or waiting for one for the whole time between the reads."""
    import subprocess
    import sys

    from scripts.perf.monitor_cost import sched_times

    code = ("import sys, threading, time\n"
            "def spin():\n"
            "    end = time.thread_time() + 3\n"
            "    while time.thread_time() < end: pass\n"
            "t = threading.Thread(target=spin); t.start(); print('spinning', flush=True); t.join()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "spinning"
        t0 = time.monotonic()
        ran0, waited0, preempted0 = sched_times(child.pid)
        time.sleep(0.5)
        ran1, waited1, preempted1 = sched_times(child.pid)
        wall = time.monotonic() - t0
        # on a core or waiting for one, all along: the spinning thread is never asleep
        assert (ran1 - ran0) + (waited1 - waited0) == pytest.approx(wall, abs=0.1)
        assert ran1 - ran0 >= 0.2 and preempted1 >= preempted0
    finally:
        child.kill()
        child.wait()


def test_demo_targets_medians_and_verdicts():
    from scripts.demo_targets import check_targets

    def run(method, seed, **kw):
        return {"method": method, "seed": seed, "iterations": 200, **kw}

    runs = [run("prime-crb", s, seconds=t, arch_steps=a, pruned_pct=p, separated_edges=1.0,
                separation=7.0, last_genotype_change=c)
            for s, (t, a, p, c) in enumerate([(120, 60, 80, 50), (190, 20, 10, 199), (130, 61, 70, 60)])]
    runs += [run("darts", s, seconds=150, arch_steps=120, pruned_pct=0, separated_edges=e,
                 separation=2.0, last_genotype_change=199) for s, e in enumerate([0.4, 0.6, 0.45])]
    crb, darts = check_targets(runs)
    assert crb["seconds"] == 130 and crb["arch_steps"] == 60 and crb["pruned_pct"] == 70
    assert crb["settled_at"] == 0.3
    assert (crb["time_ok"], crb["arch_steps_ok"], crb["pruned_ok"], crb["settled_ok"]) == (True,) * 4
    assert crb["separated_ok"] is None  # a CRB target it is not
    assert darts["separated_edges"] == 0.45 and darts["separated_ok"] is False
    slow = check_targets([run("darts", 0, seconds=260, cpu_seconds=150, arch_steps=120)])[0]
    assert slow["time_ok"] is True  # judged on CPU seconds where the store has them
    assert darts["pruned_ok"] is None and darts["settled_ok"] is None and darts["arch_steps_ok"] is None
