"""Studies: a group of 2-5 methods x 1-5 seeds on one data and supernet configuration.

A method is a preset name (``darts``, ``prime-crb`` ...) or a custom combination
``{"name": ..., "activation": ..., "schedule": ..., "regularizer": ..., ...}`` of SearchConfig
fields. Runs go through the RunManager's queue (its concurrency limit); a coordinator thread
evaluates each finished run when asked. The spec is stored with the group name.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from core.config import ConfigError, SearchConfig, make_config
from core.evaluate import evaluate_run, make_eval_config

MIN_METHODS, MAX_METHODS = 2, 5
MIN_SEEDS, MAX_SEEDS = 1, 5


@dataclass
class StudySpec:
    name: str
    methods: list[Any]                 # preset names or {"name": ..., field: value ...}
    seeds: int = 3
    preset: str = "demo"
    overrides: dict[str, Any] = field(default_factory=dict)  # applied to every run
    evaluate: bool = False
    eval_preset: str = "demo"

    def method_label(self, m: Any) -> str:
        return m if isinstance(m, str) else str(m.get("name") or "custom")

    def validate(self) -> None:
        if not self.name.strip():
            raise ConfigError("name", "must not be empty")
        if not MIN_METHODS <= len(self.methods) <= MAX_METHODS:
            raise ConfigError("methods", f"must list {MIN_METHODS} to {MAX_METHODS} methods, got "
                              f"{len(self.methods)}")
        labels = [self.method_label(m) for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ConfigError("methods", f"names must differ, got {labels}")
        if not MIN_SEEDS <= self.seeds <= MAX_SEEDS:
            raise ConfigError("seeds", f"must be between {MIN_SEEDS} and {MAX_SEEDS}, got {self.seeds}")
        self.configs()  # every run's config validates
        if self.evaluate:
            try:
                make_eval_config(self.eval_preset)
            except ValueError as e:
                raise ConfigError("eval_preset", str(e).split(": ", 1)[-1]) from None

    def configs(self) -> list[tuple[str, SearchConfig]]:
        """(method label, config) for every run, method-major, seeds 0..n-1."""
        out = []
        for m in self.methods:
            if isinstance(m, str):
                base, extra = m, {}
            else:
                extra = {k: v for k, v in m.items() if k not in ("name", "base")}
                base = m.get("base", "darts-prime")
            for seed in range(self.seeds):
                cfg = make_config(self.preset, base, **{**self.overrides, **extra, "seed": seed})
                if not isinstance(m, str):
                    cfg = cfg.replace(method="custom")
                out.append((self.method_label(m), cfg))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def launch_study(manager: Any, spec: StudySpec,
                 on_evaluated: Callable[[int], None] | None = None) -> list[int]:
    """Stores the study and queues its runs; evaluation (if asked) happens in a coordinator
    thread as runs finish. Returns the run ids at once."""
    spec.validate()
    store = manager.store
    if store.get_study(spec.name) is not None or spec.name in store.groups():
        raise ConfigError("name", f"a study or group named {spec.name!r} already exists; choose another")
    store.save_study(spec.name, spec.to_dict())
    ids = []
    for label, cfg in spec.configs():
        ids.append(manager.start(cfg, name=f"{label}-s{cfg.seed}", group=spec.name))
    if spec.evaluate:
        stop = threading.Event()
        manager.register_stop_hook(stop.set)
        t = threading.Thread(target=_evaluate_as_they_finish,
                             args=(manager, ids, spec.eval_preset, stop, on_evaluated),
                             daemon=True, name=f"study-{spec.name}")
        t.start()
    return ids


def _evaluate_as_they_finish(manager: Any, ids: list[int], eval_preset: str, stop: threading.Event,
                             on_evaluated: Callable[[int], None] | None) -> None:
    cfg = make_eval_config(eval_preset)
    pending = list(ids)
    while pending and not stop.is_set():
        for rid in list(pending):
            run = manager.store.get_run(rid)
            if run is None or run.status in ("failed", "stopped", "interrupted"):
                pending.remove(rid)
            elif run.status == "finished" and not manager.is_live(rid):
                pending.remove(rid)
                try:
                    evaluate_run(manager.store, rid, cfg, should_stop=stop.is_set)
                except Exception as exc:  # recorded in the evaluations table; others go on
                    manager.store.add_event(rid, "warning", f"evaluation failed: {exc}")
                if on_evaluated is not None:
                    on_evaluated(rid)
        time.sleep(0.5)


def run_study(store: Any, spec: StudySpec, max_concurrent: int = 2,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Runs a whole study to the end (the CLI's path); returns the comparison summary."""
    from core.compare import study_summary
    from core.runner import RunManager

    manager = RunManager(store, max_concurrent=max_concurrent)
    t0 = time.time()
    done = set()
    try:
        ids = launch_study(manager, spec, on_evaluated=done.add)
        for rid in ids:
            manager.wait(rid)
            if progress:
                r = store.get_run(rid)
                progress(f"run {rid} ({r.name}) {r.status} in {r.duration or 0:.0f}s")
        if spec.evaluate:
            while len(done) < sum(1 for r in ids if store.get_run(r).status == "finished"):
                time.sleep(0.5)
    finally:
        manager.shutdown()
    summary = study_summary(store, ids)
    summary["seconds"] = time.time() - t0
    return summary
