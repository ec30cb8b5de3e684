"""Training a derived cell from scratch: accuracy on held-out test data and parameter count."""
import json
import subprocess
import sys

import pytest
import torch

from core.data import load_dataset
from core.engine.config import make_config
from core.engine.evalnet import EvalNetwork, count_parameters
from core.engine.evaluate import cutout, evaluate_genotype, make_eval_config
from core.engine.genotype import DARTS_V2
from core.engine.search import Search
from core.runs.evaluation import evaluate_run, run_evaluation
from core.runs.store import RunStore


def test_evaluate_genotype_tiny():
    data = load_dataset("digits", image_size=8)
    cfg = make_eval_config("tiny")
    r = evaluate_genotype(DARTS_V2, data, cfg)
    assert 0.0 <= r.test_acc <= 1.0 and r.iterations == cfg.epochs * cfg.iters_per_epoch
    net = EvalNetwork(cfg.C, 10, cfg.layers, False, DARTS_V2, in_channels=1)
    assert r.params == count_parameters(net)


def test_evaluate_learns_on_digits():
    """A few hundred steps of the demo-sized network beat chance by far on held-out digits."""
    data = load_dataset("digits", image_size=8)
    cfg = make_eval_config("tiny", epochs=3, iters_per_epoch=30, C=8, lr=0.05)
    r = evaluate_genotype(DARTS_V2, data, cfg)
    assert r.test_acc > 0.5


def test_cutout_zeroes_one_square():
    x = torch.ones(4, 3, 16, 16)
    y = cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (y == 0).all(1).sum((1, 2))
    assert (zeros > 0).all() and (zeros <= 64).all()
    assert torch.equal(cutout(x, 0, torch.Generator()), x)


def test_bad_eval_preset_names_field():
    with pytest.raises(ValueError, match="preset"):
        make_eval_config("huge")
    with pytest.raises(ValueError, match="layers"):
        make_eval_config("tiny", layers=2)


def test_cli_evaluate_stores_result(tmp_path):
    db = tmp_path / "e.sqlite"
    store = RunStore(db)
    cfg = make_config("tiny", "darts", epochs=1, iters_per_epoch=2)
    rid = store.create_run(cfg)
    Search(cfg, store, rid).run()
    r = subprocess.run([sys.executable, "-m", "core", "--db", str(db), "evaluate", str(rid),
                        "--preset", "tiny", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 <= out["test_acc"] <= 1 and out["params"] > 0
    ev = store.evaluations([rid])
    assert list(ev["status"]) == ["finished"] and ev["test_acc"].iloc[0] == pytest.approx(out["test_acc"])
    assert store.get_run(rid).summary["test_acc"] == pytest.approx(out["test_acc"])
    bad = subprocess.run([sys.executable, "-m", "core", "--db", str(db), "evaluate", "999"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "run_id" in bad.stderr


def test_a_queued_evaluation_row_is_taken_stopped_or_failed_in_place(tmp_path):
    """What a worker does with a queued row (RunManager.evaluate): running with its pid, then
    stopped (InterruptedError) or failed (the message), in the same row."""
    import dataclasses
    import os

    store = RunStore(tmp_path / "q.sqlite")
    cfg = make_config("tiny", "darts", epochs=1, iters_per_epoch=2)
    rid = store.create_run(cfg)
    Search(cfg, store, rid).run()
    eid = store.create_evaluation(rid, dataclasses.asdict(make_eval_config("tiny")), status="queued")
    assert store.get_evaluation(eid)["status"] == "queued"
    with pytest.raises(InterruptedError):
        run_evaluation(store, eid, should_stop=lambda: True)
    row = store.get_evaluation(eid)
    assert row["status"] == "stopped" and row["pid"] == os.getpid() and row["started"] is not None
    bad = store.create_evaluation(rid, {"preset": "tiny", "layers": 1}, status="queued")
    with pytest.raises(ValueError, match="layers"):
        run_evaluation(store, bad)
    assert store.get_evaluation(bad)["status"] == "failed" and "layers" in store.get_evaluation(bad)["error"]
    with pytest.raises(KeyError):
        evaluate_run(store, 999, make_eval_config("tiny"))
    assert len(store.evaluations([rid])) == 2 and "test_acc" not in store.get_run(rid).summary
