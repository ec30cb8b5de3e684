"""TensorBoard and MLflow: a tiny ADMM run recorded live to TensorBoard, then exported to
TensorBoard and MLflow from the store, and read back with each tool's own reader."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.engine.config import make_config
from core.engine.search import Search
from core.runs.scalars import PRUNED_TAG, RunLayout
from core.runs.store import RunStore
from core.runs.tensorboard import TensorBoardTee
from core.viz.tracking import export_mlflow, export_tensorboard, stored_scalars
from tests.conftest import one_torch_thread

ROOT = Path(__file__).resolve().parents[1]
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(logdir: Path) -> "event_accumulator.EventAccumulator":
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0, event_accumulator.IMAGES: 0})
    acc.Reload()
    return acc


def _steps_by_tag(acc) -> dict[str, list[int]]:
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(store, run id, live log dir): prime-admm with an architecture step every iteration and
    an ADMM update every 2, so 12 iterations hold weights, updates and genotype changes."""
    tmp = tmp_path_factory.mktemp("tracking")
    store = RunStore(tmp / "runs.sqlite")
    cfg = make_config("tiny", "prime-admm", schedule="fixed", period=1, admm_every=2, alpha_lr=0.05)
    rid = store.create_run(cfg, name="admm live")
    live = tmp / "live"
    with one_torch_thread():
        assert Search(cfg, TensorBoardTee(store, rid, str(live)), rid).run().status == "finished"
    return store, rid, live


def test_live_events_hold_what_the_store_holds(recorded):
    store, rid, live = recorded
    steps = _steps_by_tag(_read(live))
    rows = store.steps(rid)
    assert steps["loss/train"] == rows["step"].tolist()
    assert steps["schedule/architecture_step"] == rows["step"].tolist()
    admm = store.events(rid, kinds=["admm_update"])
    assert len(admm) >= 3
    residual_tags = [t for t in steps if t.startswith("regularizer/ADMM/")]
    assert residual_tags and all(steps[t] == admm["step"].tolist() for t in residual_tags)
    # one weight series per (cell, edge, op), one point per stored alphas row
    layout = RunLayout.of(store.get_run(rid).config)
    weight_tags = [t for t in steps if t.startswith("weights/")]
    assert len(weight_tags) == 2 * layout.edges * len(layout.primitives)
    alpha_steps, _ = store.alphas(rid, "normal")
    assert steps["weights/normal/e00 n0 from c_k-2/" + layout.primitives[0]] == alpha_steps.tolist()
    assert steps["architecture/size_params"] == store.genotypes(rid)["step"].tolist()
    summary = store.get_run(rid).summary
    assert _read(live).Scalars(PRUNED_TAG)[-1].value == summary["pruned_ops"]
    assert any(t.startswith("regularizer/terms/") for t in steps)


def test_export_equals_the_live_events(recorded, tmp_path):
    store, rid, live = recorded
    notes = export_tensorboard(store, rid, str(tmp_path / "export"))
    exported, written = _read(tmp_path / "export"), _read(live)
    assert _steps_by_tag(exported) == _steps_by_tag(written)
    for tag in ("loss/train", "weights/reduce/e13 n3 from n2/skip_connect", "regularizer/discretization_gap"):
        assert [e.value for e in exported.Scalars(tag)] == pytest.approx([e.value for e in written.Scalars(tag)])
    # the genotype as text at each change; the config and final figures as hparams
    assert "genotype/text_summary" in exported.Tags()["tensors"]
    texts = exported.Tensors("genotype/text_summary")
    assert len(texts) == len(store.genotypes(rid))
    assert "Genotype(" in texts[-1].tensor_proto.string_val[0].decode()
    hp = list((tmp_path / "export" / "hparams").glob("events.out.tfevents.*"))
    assert hp, "hparams written"
    assert all("dot" in n for n in notes)  # Graphviz's dot is the only thing that can be missing
    # the custom scalars layout draws each edge's ops in one chart
    layout = exported.PluginTagToContent("custom_scalars")
    assert layout


def test_stored_scalars_count_as_the_store_rows(recorded):
    store, rid, _ = recorded
    counts = Counter(tag for tag, _, _ in stored_scalars(store, rid))
    assert counts["loss/train"] == len(store.steps(rid))
    assert counts["architecture/size_params"] == len(store.genotypes(rid))


def test_mlflow_export_reads_back(recorded, tmp_path):
    from mlflow.tracking import MlflowClient

    store, rid, _ = recorded
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_id = export_mlflow(store, rid, tracking_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(mlflow_id)
    cfg = store.get_run(rid).config
    assert run.data.params["regularizer"] == "admm" and set(run.data.params) == set(cfg)
    history = client.get_metric_history(mlflow_id, "loss/train")
    assert [m.step for m in history] == store.steps(rid)["step"].tolist()
    admm = store.events(rid, kinds=["admm_update"])
    residual = [k for k in run.data.metrics if k.startswith("regularizer/ADMM/")]
    assert residual and len(client.get_metric_history(mlflow_id, residual[0])) == len(admm)
    assert run.data.metrics["final/pruned_ops"] == store.get_run(rid).summary["pruned_ops"]
    artifacts = {a.path for a in client.list_artifacts(mlflow_id)}
    assert {"run.json", "genotype.txt", "cells"} <= artifacts
    assert run.info.status == "FINISHED" and run.info.run_name == "admm live"


def test_cli_search_with_tensorboard_then_both_exports(tmp_path, capsys):
    """The CLI path: ``search --tensorboard DIR`` writes live through the store's recorder
    (prime-crb, an architecture step every 4th iteration); ``export --format tensorboard`` writes the same
    scalars; ``export --format mlflow --out FOLDER`` makes a tracking store there."""
    from core.__main__ import main as cli

    db = str(tmp_path / "cli.sqlite")
    with one_torch_thread():
        assert cli(["--db", db, "search", "--preset", "tiny", "--method", "prime-crb", "--set", "epochs=1",
                    "--set", "iters_per_epoch=8", "--set", "log_every=2", "--name", "crb cli",
                    "--tensorboard", str(tmp_path / "live"), "--quiet"]) == 0
    store = RunStore(db)
    (run,) = store.list_runs()
    assert run.config["tensorboard_dir"] == str(tmp_path / "live")
    (live,) = (tmp_path / "live").iterdir()
    assert live.name == f"run-{run.id}-crb-cli"
    assert cli(["--db", db, "export", str(run.id), "--format", "tensorboard", "--out", str(tmp_path / "tb")]) == 0
    assert f"tensorboard --logdir {tmp_path / 'tb'}" in capsys.readouterr().out
    exported = _steps_by_tag(_read(tmp_path / "tb" / live.name))
    assert exported == _steps_by_tag(_read(live))
    assert exported["loss/train"] == store.steps(run.id)["step"].tolist()
    # terms only on the rows of architecture steps: the others store none (read back as NaN)
    term_tags = [t for t in exported if t.startswith("regularizer/terms/")]
    assert term_tags and all(len(exported[t]) < len(exported["loss/train"]) for t in term_tags)

    from mlflow.tracking import MlflowClient
    assert cli(["--db", db, "export", str(run.id), "--format", "mlflow", "--out", str(tmp_path / "ml")]) == 0
    out = capsys.readouterr().out
    uri = f"sqlite:///{(tmp_path / 'ml' / 'mlflow.db').resolve()}"
    assert uri in out
    (mlrun,) = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("prime-explorer").experiment_id])
    assert mlrun.info.run_name == "crb cli" and mlrun.data.params["activation"] == "crb"


def test_cli_tracking_errors_name_the_field(tmp_path, capsys):
    from core.__main__ import main as cli

    db = str(tmp_path / "e.sqlite")
    RunStore(db)
    assert cli(["--db", db, "export", "7", "--format", "tensorboard"]) == 2
    assert "run_id: no run 7" in capsys.readouterr().err
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert cli(["--db", db, "search", "--preset", "tiny", "--tensorboard", str(a_file)]) == 2
    assert "tensorboard_dir: must be a folder" in capsys.readouterr().err
    assert RunStore(db).list_runs() == []
