"""Studies: a group of 2-5 methods x 1-5 seeds on one data and supernet configuration.

A method is a preset name (``darts``, ``prime-crb`` ...) or a custom combination
``{"name": ..., "activation": ..., "schedule": ..., "regularizer": ..., ...}`` of SearchConfig
fields. Runs go through the RunManager's queue (its concurrency limit). With ``evaluate=True``
the manager queues an evaluation of each run of the study as it finishes (``evaluation_due``,
called by ``core.runs.runner``): it runs in a worker process under the same limit, like a search; the
app server trains nothing. The spec is stored with the group name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.engine.config import ConfigError, SearchConfig, make_config
from core.engine.evaluate import make_eval_config
from core.runs.store import EVAL_ACTIVE_STATUSES

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


def launch_study(manager: Any, spec: StudySpec) -> list[int]:
    """Stores the study and queues its runs; returns the run ids at once. With
    ``spec.evaluate`` the manager evaluates each run once it finishes (``evaluation_due``)."""
    spec.validate()
    store = manager.store
    if store.get_study(spec.name) is not None or spec.name in store.groups():
        raise ConfigError("name", f"a study or group named {spec.name!r} already exists; choose another")
    store.save_study(spec.name, spec.to_dict())
    ids = []
    for label, cfg in spec.configs():
        ids.append(manager.start(cfg, name=f"{label}-s{cfg.seed}", group=spec.name))
    return ids


def evaluation_due(store: Any, run_id: int) -> Any:
    """The EvalConfig to evaluate a just finished run with, or None: the run is finished, it
    belongs to a study stored with ``evaluate=True``, and it has no evaluation finished, queued
    or running yet (a resumed run is not evaluated twice)."""
    run = store.get_run(run_id)
    if run is None or run.status != "finished" or not run.group:
        return None
    spec = store.get_study(run.group)
    if not spec or not spec.get("evaluate"):
        return None
    evals = store.evaluations([run_id])
    if len(evals) and evals["status"].isin(("finished", *EVAL_ACTIVE_STATUSES)).any():
        return None
    return make_eval_config(spec.get("eval_preset") or "demo")
