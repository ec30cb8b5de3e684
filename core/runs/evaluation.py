"""Evaluations of stored runs: the genotype a run ends with, trained from scratch
(``core.engine.evaluate``) with its result written to the run's store. The CLI calls
``evaluate_run``; an evaluation worker (``core.runs.worker``) calls ``run_evaluation``."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from core.data import load_dataset
from core.engine.evaluate import EvalConfig, EvalResult, eval_config_from_dict, evaluate_genotype
from core.engine.genotype import Genotype


def run_genotype(store: Any, run_id: int) -> Genotype:
    """The last genotype a stored run recorded (its final one once it has ended)."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path}")
    g = store.genotypes(run_id)
    if len(g):
        return Genotype.from_json(g["genotype"].iloc[-1])
    if run.genotype:
        return Genotype.parse(run.genotype)
    raise ValueError(f"run {run_id} has no genotype yet")


def evaluate_run(store: Any, run_id: int, config: EvalConfig,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 eval_id: int | None = None) -> EvalResult:
    """Evaluates a stored run's final genotype on its own dataset; the result goes to the store.

    Without ``eval_id`` a new evaluation row is made (the CLI); with it, that queued row is
    taken (a worker process started by the RunManager). A stop (``should_stop``) leaves the row
    ``stopped`` and raises InterruptedError; any other error leaves it ``failed`` with the
    message, and is raised again."""
    run = store.get_run(run_id)
    if run is None:
        if eval_id is not None:
            store.finish_evaluation(eval_id, status="failed", error=f"no run {run_id}")
        raise KeyError(f"no run {run_id} in {store.path}")
    genotype = None
    if eval_id is None:
        genotype = run_genotype(store, run_id)  # the CLI: a run without a genotype makes no row
        eval_id = store.create_evaluation(run_id, dataclasses.asdict(config))
    else:
        store.start_evaluation(eval_id)
    cfg = run.config
    try:
        if genotype is None:
            genotype = run_genotype(store, run_id)
        data = load_dataset(cfg["dataset"], cfg.get("data_dir") or None, cfg.get("image_size"),
                            cfg.get("seed", 0))
        result = evaluate_genotype(genotype, data, config, progress, should_stop)
    except InterruptedError:
        store.finish_evaluation(eval_id, status="stopped", error="evaluation stopped")
        raise
    except BaseException as exc:
        store.finish_evaluation(eval_id, status="failed", error=str(exc) or type(exc).__name__)
        raise
    store.finish_evaluation(eval_id, status="finished", result=result.to_dict())
    store.merge_summary(run_id, test_acc=result.test_acc, eval_params=result.params,
                        eval_seconds=result.seconds, eval_preset=config.preset)
    return result


def run_evaluation(store: Any, eval_id: int,
                   should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Runs a queued evaluation row (its run and settings are in the row): a worker's job."""
    row = store.get_evaluation(eval_id)
    if row is None:
        raise KeyError(f"no evaluation {eval_id} in {store.path}")
    try:
        config = eval_config_from_dict(row["config"])
    except (TypeError, ValueError) as exc:
        store.finish_evaluation(eval_id, status="failed", error=f"evaluation settings: {exc}")
        raise
    return evaluate_run(store, row["run_id"], config, should_stop=should_stop, eval_id=eval_id)
