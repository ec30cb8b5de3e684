"""The supernet, the search loop, the store, the runner and the CLI, on tiny configs."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from core.engine.config import ConfigError, make_config
from core.engine.device import available_cores
from core.engine.genotype import Genotype
from core.engine.search import Search
from core.engine.supernet import Supernet
from core.runs.runner import RunManager
from core.runs.store import RunStore

METHODS = ["darts", "fairdarts", "darts-prime", "prime-crb", "prime-admm"]


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def test_supernet_parameter_count_matches_darts():
    m = Supernet(16, 10, 8)
    assert sum(p.numel() for p in m.weights_parameters()) == 1_930_618
    assert [tuple(a.shape) for a in m.arch_parameters()] == [(14, 8), (14, 8)]
    names = dict(m.named_parameters())
    assert "cells.0._ops.0._ops.4.op.1.weight" in names  # DARTS layout: edge 0, sep_conv_3x3


@pytest.mark.parametrize("activation", ["softmax", "crb"])
def test_fast_path_matches_plain_path(activation):
    torch.manual_seed(0)
    m = Supernet(4, 10, 5, activation=activation, in_channels=1)
    if activation == "crb":  # prune a few ops so both paths skip them
        with torch.no_grad():
            m.alphas_normal[0, :3] = -1.0
            m.alphas_normal[9, :] = -1.0  # a fully pruned edge
        m.after_arch_update()
    x = torch.randn(6, 1, 16, 16)
    outs, grads = [], []
    for fast in (False, True):
        m.fast = fast
        m.zero_grad(set_to_none=True)
        xx = x.contiguous(memory_format=torch.channels_last) if fast else x
        mm = m.to(memory_format=torch.channels_last if fast else torch.contiguous_format)
        y = mm(xx)
        y.square().mean().backward()
        outs.append(y.detach())
        grads.append([None if p.grad is None else p.grad.clone() for p in m.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    for g_fast, g_plain in zip(grads[1], grads[0]):
        if g_plain is None or g_fast is None:  # pruned ops get no gradient on either path
            assert g_fast is None or not g_fast.any()
            assert g_plain is None or not g_plain.any()
            continue
        torch.testing.assert_close(g_fast, g_plain, atol=1e-5, rtol=1e-4)


def test_pruned_ops_never_run():
    torch.manual_seed(0)
    m = Supernet(4, 10, 3, activation="crb", in_channels=1)
    with torch.no_grad():
        m.alphas_normal[:, 3] = -1.0  # sep_conv_3x3 (index 3 without `none`) everywhere
    newly = m.after_arch_update()
    assert len(newly) == 14
    pruned_mods = [cell._ops[e]._ops[3] for cell in m.cells if cell.cell_type == "normal" for e in range(14)]
    live_mods = [cell._ops[e]._ops[4] for cell in m.cells if cell.cell_type == "normal" for e in range(14)]
    for fast in (True, False):
        m.fast = fast
        m.zero_grad(set_to_none=True)
        calls = {"pruned": 0, "live": 0}
        hooks = [mod.register_forward_hook(lambda *a, kind=kind: calls.__setitem__(kind, calls[kind] + 1))
                 for kind, mods in (("pruned", pruned_mods), ("live", live_mods)) for mod in mods]
        m(torch.randn(2, 1, 8, 8)).sum().backward()
        for h in hooks:
            h.remove()
        # The plain path calls each live op's module; the fast one reads their weights into
        # batched convolutions (no module call). On both, a pruned op's weights are never used.
        assert calls["pruned"] == 0 and calls["live"] == (0 if fast else len(live_mods))
        assert all(p.grad is None for mod in pruned_mods for p in mod.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0
                   for mod in live_mods for p in mod.parameters())
        assert m.alphas_normal.grad[:, 3].abs().sum() == 0  # no gradient reaches a pruned alpha


@pytest.mark.parametrize("method", METHODS)
def test_search_records_everything(store, method):
    cfg = make_config("tiny", method, epochs=2, iters_per_epoch=4, period=1, admm_every=2,
                      alpha_lr={"fairdarts": 0.5}.get(method, 0.2 if method.startswith("prime-")
                                                      else 3e-3))  # fairdarts: weights must pass 0.85
    run_id = store.create_run(cfg)
    result = Search(cfg, store, run_id).run()
    assert result.status == "finished" and result.iterations == 8
    assert result.arch_steps >= 3
    run = store.get_run(run_id)
    assert run.status == "finished" and run.iterations == 8 and run.size > 0
    assert Genotype.parse(run.genotype) == result.genotype
    steps = store.steps(run_id)
    assert list(steps["step"]) == list(range(8))
    assert steps["arch_step"].sum() == result.arch_steps
    assert steps["train_loss"].notna().all() and steps["gap"].notna().all()
    arch_rows = steps[steps["arch_step"] == 1]
    assert arch_rows["val_loss"].notna().all() and arch_rows["penalty"].notna().all()
    a_steps, a = store.alphas(run_id, "normal")
    assert a.shape[1:] == (14, 7 if method in ("prime-crb", "prime-admm", "fairdarts") else 8)
    assert len(a_steps) >= 1
    assert len(store.genotypes(run_id)) >= 1
    kinds = set(store.events(run_id)["kind"])
    assert {"started", "epoch_end", "finished"} <= kinds
    summary = run.summary
    assert summary["pruned_ops"] == int((store.events(run_id)["kind"] == "pruned").sum())
    assert summary["total_ops"] == 2 * 14 * a.shape[2]
    assert summary["arch_steps"] == result.arch_steps
    assert summary["separation"] is not None and summary["separation"] >= 1.0
    assert 0 <= summary["last_genotype_change"] < 8
    if method == "prime-crb":
        assert "pruned" in kinds and result.pruned > 0
        assert summary["pruned_pct"] == pytest.approx(100 * result.pruned / (2 * 14 * 7), abs=0.01)
        assert steps["active_ops"].iloc[-1] < 2 * 14 * 7
    if method == "prime-admm":
        terms = [json.loads(t) for t in steps["terms"].dropna()]
        assert "admm_update" in kinds and any("admm_primal" in t for t in terms)
    if steps["fi_ewma"].notna().any():
        assert method in ("darts-prime", "prime-crb", "prime-admm")


def test_admm_real_run_with_forced_pruning_keeps_z_and_u_off_pruned_ops(store):
    """A large alpha_lr prunes many ops; ADMM updates after every architecture step must then
    never choose a pruned op for Z, and never give one a dual value."""
    cfg = make_config("tiny", "prime-admm", epochs=2, iters_per_epoch=8, period=1, admm_every=1,
                      alpha_lr=0.3, seed=1)
    search = Search(cfg, store, store.create_run(cfg))
    result = search.run()
    assert result.pruned > 0 and len(store.events(search.run_id, kinds=["admm_update"])) >= 3
    for ct, mask in search.model.masks.items():
        dead = torch.from_numpy(~mask)
        assert dead.any()
        assert not search.regularizer.Z[ct][dead].any()
        assert not search.regularizer.U[ct][dead].any()


def test_same_seed_same_genotype(store):
    cfg = make_config("tiny", "darts-prime", epochs=1, iters_per_epoch=5, seed=3, alpha_lr=0.05)
    g = [Search(cfg, store, store.create_run(cfg)).run().genotype for _ in range(2)]
    assert g[0] == g[1]
    s = [store.steps(r.id)["train_loss"].tolist() for r in store.list_runs()]
    assert s[0] == s[1]


def test_resume_from_checkpoint_continues_identically(store):
    cfg = make_config("tiny", "prime-admm", epochs=2, iters_per_epoch=3, admm_every=2, alpha_lr=0.05)
    full = Search(cfg, store, store.create_run(cfg)).run()

    run_id = store.create_run(cfg)
    stop = threading.Event()

    class StopAfterEpoch:
        def on_epoch_end(self, s, epoch, *a):
            if epoch == 0:
                stop.set()

    for name in ("on_search_start", "on_epoch_start", "on_step_end", "on_search_end"):
        setattr(StopAfterEpoch, name, lambda *a: None)
    first = Search(cfg, store, run_id, callbacks=[StopAfterEpoch()]).run(stop)
    assert first.status == "stopped" and first.iterations == 3
    resumed = Search(cfg, store, run_id, resume=True).run()
    assert resumed.status == "finished" and resumed.iterations == 6
    assert resumed.genotype == full.genotype
    a = store.steps(run_id)["train_loss"].to_numpy()
    b = store.steps(store.list_runs()[-1].id)["train_loss"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_checkpoints_belong_to_their_store_and_go_with_their_run(tmp_path):
    a, b = RunStore(tmp_path / "a.sqlite"), RunStore(tmp_path / "b.sqlite")
    cfg = make_config("tiny", "darts")
    ra, rb = a.create_run(cfg), b.create_run(cfg)
    assert ra == rb and a.checkpoint_path(ra) != b.checkpoint_path(rb)  # same id, two stores
    Search(cfg, a, ra).run()
    assert os.path.exists(a.checkpoint_path(ra)) and not os.path.exists(b.checkpoint_path(rb))
    a.delete_run(ra)
    assert not os.path.exists(a.checkpoint_path(ra))


def test_store_readable_while_another_thread_writes(store):
    cfg = make_config("tiny", "darts")
    run_id = store.create_run(cfg)
    stop = threading.Event()
    seen = []

    def write():
        step = 0
        while not stop.is_set():
            store.add_steps(run_id, [{"step": step + i, "train_loss": 1.0, "arch_step": 0} for i in range(5)])
            step += 5

    t = threading.Thread(target=write)
    t.start()
    reader = RunStore(store.path)
    last = -1
    try:
        deadline = time.time() + 1.0
        while time.time() < deadline:
            df = reader.steps(run_id, after=last)
            if len(df):
                assert list(df["step"]) == list(range(last + 1, last + 1 + len(df)))
                last = int(df["step"].iloc[-1])
                seen.append(len(df))
    finally:
        stop.set()
        t.join()
    assert len(seen) >= 2 and last > 0


def test_runner_marks_crash_failed_and_other_runs_go_on(store, tmp_path):
    empty = tmp_path / "empty_images"
    empty.mkdir()
    mgr = RunManager(store, max_concurrent=2)
    try:
        good = mgr.start(make_config("tiny", "darts-prime", epochs=1, iters_per_epoch=3))
        bad = mgr.start(make_config("tiny", "darts", dataset="folder", data_dir=str(empty)))
        assert mgr.wait(bad, 120) and mgr.wait(good, 300)
        assert store.get_run(good).status == "finished"
        bad_run = store.get_run(bad)
        assert bad_run.status == "failed"
        assert str(empty) in bad_run.error and "Traceback" in bad_run.error
        assert "failed" in set(store.events(bad)["kind"])
    finally:
        mgr.shutdown()


def test_nan_loss_stops_run_with_clear_error(store, monkeypatch):
    cfg = make_config("tiny", "darts", epochs=1, iters_per_epoch=6)
    run_id = store.create_run(cfg)
    s = Search(cfg, store, run_id)
    s.setup()
    orig = s.w_stream.next
    monkeypatch.setattr(s.w_stream, "next", lambda: (orig()[0] * float("nan"), orig()[1]))
    from core.engine.search import NonFiniteError
    with pytest.raises(NonFiniteError, match="NaN|nan"):
        s.run()


def test_runner_stop_pause_resume(store):
    mgr = RunManager(store)
    try:
        rid = mgr.start(make_config("tiny", "darts", epochs=50, iters_per_epoch=10, log_every=1))
        deadline = time.time() + 60
        while store.get_run(rid).iterations < 2 and time.time() < deadline:
            time.sleep(0.1)
        mgr.pause(rid)
        time.sleep(1.0)
        n = store.get_run(rid).iterations
        time.sleep(1.0)
        assert store.get_run(rid).iterations <= n + 2 and store.get_run(rid).status == "paused"
        mgr.resume(rid)
        time.sleep(1.0)
        mgr.stop(rid)
        assert mgr.wait(rid, 60)
        assert store.get_run(rid).status == "stopped"
    finally:
        mgr.shutdown()


def _wait_for_iterations(store, run_id, n, timeout=90):
    deadline = time.time() + timeout
    while (store.get_run(run_id).iterations or 0) < n:
        assert time.time() < deadline, f"run {run_id} did not reach {n} iterations"
        time.sleep(0.1)


def test_runner_runs_each_search_in_its_own_process(store):
    """A search in the app's process would share its interpreter lock with the page refreshes."""
    mgr = RunManager(store)
    try:
        rid = mgr.start(make_config("tiny", "darts", epochs=1, iters_per_epoch=3))
        assert mgr.is_live(rid) and mgr.wait(rid, 120) and not mgr.is_live(rid)
        run = store.get_run(rid)
        assert run.status == "finished" and run.pid not in (None, os.getpid())
    finally:
        mgr.shutdown()


def test_runner_spare_process_takes_the_next_run_and_is_replaced_once_idle(store):
    mgr = RunManager(store, spare=True)
    try:
        spare = mgr._spare
        assert spare is not None and spare.poll() is None
        rid = mgr.start(make_config("tiny", "darts", epochs=1, iters_per_epoch=3))
        # no second torch import next to the starting search
        assert mgr.is_live(rid) and mgr._spare is None
        assert mgr.wait(rid, 120)
        assert store.get_run(rid).status == "finished" and store.get_run(rid).pid == spare.pid
        deadline = time.monotonic() + 10
        while mgr._spare is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mgr._spare is not None and mgr._spare.pid != spare.pid  # idle again: a new one waits
        waiting = mgr._spare
        mgr.prepare_spare()
        assert mgr._spare is waiting  # one spare at most
    finally:
        mgr.shutdown()
    assert waiting.wait(10) == 0 and mgr._spare is None  # closed at shutdown, store untouched
    assert [r.id for r in store.list_runs()] == [rid]


def test_runner_marks_a_killed_search_process_failed(store):
    mgr = RunManager(store)
    try:
        rid = mgr.start(make_config("tiny", "darts", epochs=50, iters_per_epoch=10, log_every=1))
        _wait_for_iterations(store, rid, 2)
        os.kill(store.get_run(rid).pid, signal.SIGKILL)
        assert mgr.wait(rid, 30)
        run = store.get_run(rid)
        assert run.status == "failed" and "exited with code -9" in run.error
    finally:
        mgr.shutdown()


def test_search_process_whose_parent_is_gone_is_interrupted_and_resumes(store):
    """The end of the worker's stdin means its app went away: it stops, resumable."""
    cfg = make_config("tiny", "darts", epochs=3, iters_per_epoch=4, log_every=1)
    rid = store.create_run(cfg, status="queued")
    proc = subprocess.Popen([sys.executable, "-m", "core.runs.worker", "--db", store.path, "--run", str(rid)],
                            stdin=subprocess.PIPE)
    _wait_for_iterations(store, rid, 5)  # past the first epoch's checkpoint
    proc.stdin.close()
    assert proc.wait(60) == 0
    assert store.get_run(rid).status == "interrupted"
    assert "interrupted" in set(store.events(rid)["kind"])
    mgr = RunManager(store)
    try:
        mgr.resume(rid)
        assert mgr.wait(rid, 120)
        run = store.get_run(rid)
        assert run.status == "finished" and run.iterations == 12
        assert list(store.steps(rid, columns=["step"])["step"]) == list(range(12))
    finally:
        mgr.shutdown()


# ---- configuration and CLI ---------------------------------------------------------------
def test_demo_departures_table_and_presets():
    """The demo is the departures table; the paper preset keeps the paper's values; FairDARTS's
    preset follows its own code."""
    from core.engine.config import DEMO_DEPARTURES, departure_table

    for method in METHODS:
        demo, paper = make_config("demo", method), make_config("paper", method)
        for d in DEMO_DEPARTURES:
            if not d.methods or method in d.methods:
                assert getattr(demo, d.field) == d.value, (method, d.field)
        assert paper.rho == 0.1 and paper.epochs == 50 and paper.dataset == "cifar10"
        assert paper.period == (10 if method in ("darts-prime", "prime-crb", "prime-admm") else 1)
    assert make_config("paper", "darts-prime").alpha_lr == 3e-4
    fair = make_config("paper", "fairdarts")
    assert (fair.include_none, fair.discretization, fair.op_threshold) == (False, "threshold", 0.85)
    assert (fair.w_lr, fair.alpha_lr, fair.alpha_beta1, fair.zero_one_weight) == (0.005, 3e-3, 0.9, 10.0)
    rows = departure_table()
    assert len(rows) == len(DEMO_DEPARTURES) and all(r["why"] and r["paper"] for r in rows)
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    for r in rows:  # the README's table is this one
        assert f"| `{r['field']}` | {r['methods']} | {r['paper']} | {r['demo']} |" in readme
    rho = next(r for r in rows if r["field"] == "rho")
    assert rho["paper"] == "0.1" and rho["demo"] == make_config("demo", "prime-crb").rho


@pytest.mark.parametrize("kw, field", [
    ({"method": "dartz"}, "method"), ({"w_lr": -0.1}, "w_lr"), ({"layers": 2}, "layers"),
    ({"data_dir": "/no/such/folder"}, "data_dir"), ({"activation": "relu"}, "activation"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as e:
        make_config("tiny", **kw) if "method" in kw else make_config("tiny", "darts", **kw)
    assert e.value.field == field and field in str(e.value)


def _cli(*args, db):
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, field", [
    (["--method", "dartz"], "method"), (["--set", "w_lr=-1"], "w_lr"), (["--set", "layers=2"], "layers"),
    (["--data-dir", "/no/such/dir", "--dataset", "cifar10"], "data_dir"),
])
def test_cli_bad_config_one_line(tmp_path, args, field):
    r = _cli("search", "--preset", "tiny", *args, db=tmp_path / "x.sqlite")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "must" in lines[0]


def test_cli_every_method_end_to_end(tmp_path):
    db = tmp_path / "cli.sqlite"
    for m in METHODS:
        r = _cli("search", "--preset", "tiny", "--method", m, "--set", "epochs=1", "--set",
                 "iters_per_epoch=3", "--json", db=db)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        g = Genotype.parse(out["genotype"])
        assert out["iterations"] == 3
        if m == "fairdarts":  # three steps leave every sigmoid weight under the 0.85 threshold
            assert len(g.normal) == 0 and out["architecture_size"] == 0
        else:
            assert len(g.normal) == 8 and out["architecture_size"] > 0
    r = _cli("list", "--json", db=db)
    runs = json.loads(r.stdout)
    assert sorted(x["method"] for x in runs) == sorted(METHODS)
    # A search alone on the machine (the CLI's) uses every core it may; the env var overrides.
    store = RunStore(db)
    started = store.events(runs[0]["id"], kinds=["started"])["message"].iloc[0]
    cores = available_cores()
    assert f"on cpu ({cores} thread{'s' * (cores != 1)})" in started or os.environ.get("PRIME_EXPLORER_THREADS")
    r = subprocess.run([sys.executable, "-m", "core", "--db", str(db), "search", "--preset", "tiny",
                        "--set", "epochs=1", "--set", "iters_per_epoch=1", "--json"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PRIME_EXPLORER_THREADS": "1"})
    one = json.loads(r.stdout)["run_id"]
    assert "on cpu (1 thread)" in store.events(one, kinds=["started"])["message"].iloc[0]
    rid = runs[0]["id"]
    for fmt, check in (("genotype", "Genotype("), ("dot", "digraph"), ("csv", "train_loss"),
                       ("json", '"config"')):
        r = _cli("export", str(rid), "--format", fmt, db=db)
        assert r.returncode == 0 and check in r.stdout
    r = _cli("bench", "--preset", "tiny", "--iters", "2", "--warmup", "1", "--json", db=db)
    b = json.loads(r.stdout)
    assert b["iters_per_s"] > 0 and b["images_per_s"] > 0 and b["peak_rss_mb"] > 0
