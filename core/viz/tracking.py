"""A stored run exported where NAS users already look: TensorBoard event files and an MLflow run.

Both read the store through the mapping of ``core.runs.scalars``, as the live TensorBoard writer
does: losses and accuracies, FI, its average, the threshold, architecture steps, each penalty
term, the discretization gap, the regularizer's update values (ADMM's residuals), architecture
size, live and pruned ops, the learning rate, and every op weight of every edge.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.engine.genotype import CELL_TYPES
from core.runs.evaluation import run_genotype
from core.runs.scalars import RunLayout, event_scalars, size_scalars, step_scalars, weight_scalars
from core.runs.tensorboard import TensorBoardLog, events_of
from core.viz.cells import genotype_dot
from core.viz.export import export_run, run_figures

DEFAULT_MLFLOW_DIR = "mlruns"
MLFLOW_EXPERIMENT = "prime-explorer"
_MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FAILED", "stopped": "KILLED",
                  "interrupted": "KILLED"}


def _hparam(v: Any) -> Any:
    """TensorBoard's hparams take numbers, strings and booleans only."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v)


def final_metrics(store: Any, run_id: int) -> dict[str, float]:
    """The run's final figures (accuracy, size, pruning, separation, settling, time)."""
    run = store.get_run(run_id)
    figures = {**(run.summary or {}), **run_figures(store, run)}
    keep = ("val_acc", "best_val_acc", "train_acc", "test_acc", "size", "pruned_ops", "pruned_pct",
            "separation", "separated_edges", "last_genotype_change", "arch_steps", "seconds",
            "cpu_seconds")
    out = {}
    for k in keep:
        v = figures.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def stored_scalars(store: Any, run_id: int) -> list[tuple[str, int, float]]:
    """Every scalar of a stored run, in the live writer's tags."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    layout = RunLayout.of(run.config)
    out = step_scalars(store.steps(run_id).to_dict("records"), layout)
    for ct in CELL_TYPES:
        steps, w = store.alphas(run_id, ct)
        for s, wi in zip(steps, w):
            out += weight_scalars(int(s), {ct: wi}, layout)
    for row in store.genotypes(run_id).itertuples():
        size = None if row.size is None or row.size != row.size else int(row.size)
        out += size_scalars(int(row.step), size)
    out += event_scalars(events_of(store, run_id), layout)
    return out


def _cell_png(dot: str) -> np.ndarray | None:
    """The cell as an RGB image through Graphviz's ``dot``; None where it is not installed."""
    if shutil.which("dot") is None:
        return None
    import graphviz
    from PIL import Image

    png = graphviz.Source(dot).pipe(format="png")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def export_tensorboard(store: Any, run_id: int, out_dir: str) -> list[str]:
    """Writes the run's event files into ``out_dir``; returns notes (e.g. what was skipped)."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    notes: list[str] = []
    log = TensorBoardLog(out_dir, RunLayout.of(run.config))
    try:
        log.steps(store.steps(run_id).to_dict("records"))
        for ct in CELL_TYPES:
            steps, w = store.alphas(run_id, ct)
            for s, wi in zip(steps, w):
                log.weights(int(s), {ct: wi})
        for row in store.genotypes(run_id).itertuples():
            size = None if row.size is None or row.size != row.size else int(row.size)
            log.genotype(int(row.step), row.genotype, size)
        log.events(events_of(store, run_id))
        try:
            genotype = run_genotype(store, run_id)
        except ValueError:
            genotype = None
            notes.append("no genotype yet: no cell images")
        if genotype is not None:
            last = int(store.last_step(run_id))
            for ct in CELL_TYPES:
                img = _cell_png(genotype_dot(genotype, ct, title=f"{run.name}: {ct} cell"))
                if img is None:
                    notes.append("Graphviz's `dot` is not installed: cell images skipped")
                    break
                log.writer.add_image(f"cells/{ct}", img, last, dataformats="HWC")
        hparams = {k: _hparam(v) for k, v in sorted(run.config.items())}
        log.writer.add_hparams(hparams, {f"final/{k}": v for k, v in final_metrics(store, run_id).items()},
                               run_name="hparams")
    finally:
        log.close()
    return notes


def default_mlflow_uri(folder: str = DEFAULT_MLFLOW_DIR) -> str:
    """A local tracking store: ``folder/mlflow.db`` (SQLite), artifacts beside it."""
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def mlflow_uri(where: str | None) -> str:
    """What the user typed as an MLflow destination: a tracking URI as MLflow takes it
    (``http://host:5000``, ``sqlite:///path.db``, ``file:...``), or a local folder."""
    where = (where or "").strip() or DEFAULT_MLFLOW_DIR
    return where if "://" in where or where.startswith(("sqlite:", "file:")) else default_mlflow_uri(where)


def tensorboard_zip(store: Any, run_id: int) -> bytes:
    """The run's TensorBoard event files as a zip holding its folder (``run-ID-NAME``): unzip
    it under a log root and ``tensorboard --logdir ROOT`` shows it beside the others."""
    import tempfile
    import zipfile

    from core.runs.tensorboard import run_logdir

    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    with tempfile.TemporaryDirectory(prefix="prime-tb-") as tmp:
        logdir = Path(run_logdir(tmp, run.id, run.name))
        export_tensorboard(store, run_id, str(logdir))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(logdir.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(tmp).as_posix())
        return buf.getvalue()


def export_mlflow(store: Any, run_id: int, tracking_uri: str | None = None,
                  experiment: str = MLFLOW_EXPERIMENT) -> str:
    """Logs the run as an MLflow run (metrics with their steps, the config as params, the
    genotype, the JSON export and the cells' DOT as artifacts); returns the MLflow run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    uri = tracking_uri or default_mlflow_uri()
    # MLflow's own defaults retry an unreachable server for minutes; a page or a CLI user waits
    # on this call, so fail within seconds unless the user has chosen otherwise.
    for var, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                       ("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")):
        os.environ.setdefault(var, value)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        artifacts = None
        if uri.startswith("sqlite:///"):  # artifacts next to the database, not in the cwd
            artifacts = (Path(uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
        exp_id = client.create_experiment(experiment, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    tags = {"prime_explorer.run_id": str(run.id), "prime_explorer.store": os.path.abspath(store.path),
            "method": str(run.method or ""), "dataset": str(run.dataset or "")}
    mrun = client.create_run(exp_id, run_name=run.name, tags=tags)
    rid = mrun.info.run_id
    t0 = int((run.started or run.created or time.time()) * 1000)
    params = [Param(k, str(v)[:6000]) for k, v in sorted(run.config.items())]
    for i in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
        client.log_batch(rid, params=params[i:i + 100])
    metrics = [Metric(tag, value, t0, step) for tag, step, value in stored_scalars(store, run_id)]
    metrics += [Metric(f"final/{k}", v, t0, 0) for k, v in final_metrics(store, run_id).items()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i:i + 1000])
    client.log_batch(rid, tags=[RunTag("status", run.status)])
    client.log_text(rid, export_run(store, run_id, "json"), "run.json")
    try:
        genotype = run_genotype(store, run_id)
    except ValueError:
        genotype = None
    if genotype is not None:
        client.log_text(rid, str(genotype) + "\n", "genotype.txt")
        for ct in CELL_TYPES:
            client.log_text(rid, genotype_dot(genotype, ct, title=f"{run.name}: {ct} cell"),
                            f"cells/{ct}.dot")
    client.set_terminated(rid, status=_MLFLOW_STATUS.get(run.status, "RUNNING"))
    return rid
