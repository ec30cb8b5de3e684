"""Groups of runs that differ in one setting: the configs of a "vary one field" group (Home's
"Compare activations", Launch's vary-one-field), their start through the manager's queue, and
how long the group takes on this machine before it starts."""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

from core.engine.config import (
    METHODS,
    PRESETS,
    ConfigError,
    SearchConfig,
    field_info,
    method_fields,
    parse_value,
)

MIN_VALUES, MAX_VALUES = 2, 4
# The activations "Compare activations" puts side by side, in column order.
ACTIVATION_GROUP = ("softmax", "sigmoid", "crb")
# Fields a group cannot vary: labels the group sets itself, and what names or places the run.
NOT_VARIED = ("method", "preset", "data_dir", "device", "threads", "tensorboard_dir")
# CPU seconds of a search at one torch thread per data/budget preset, (setup, per iteration), on
# this project's 2-core CPU machine (docs/performance.md, "Compare live" and "Demo runs"). A preset not here
# (paper, custom) gets no figure: its time depends on hardware the app cannot guess.
CPU_SECONDS = {"demo": (2.0, 0.45), "tiny": (1.4, 0.19)}


def varied_fields() -> list[str]:
    """The config fields a group may vary, in the Launch form's order."""
    return [f["name"] for f in field_info() if f["name"] not in NOT_VARIED]


def method_label(config: SearchConfig) -> str:
    """The method preset a config still is (every field the method sets for its data preset
    unchanged), else "custom": the rule the Launch form labels its runs by."""
    if config.method not in METHODS.names() or (config.preset not in PRESETS.names()
                                                and config.preset != "custom"):
        return "custom"
    want = method_fields(config.preset, config.method)
    return config.method if all(getattr(config, k) == v for k, v in want.items()) else "custom"


def parse_values(name: str, texts: Sequence[Any]) -> list[Any]:
    """2-4 distinct values of one field from text (or typed values); ConfigError names the
    field and what is allowed."""
    if name not in varied_fields():
        raise ConfigError(name, f"cannot be varied; choose one of {', '.join(varied_fields())}")
    values: list[Any] = []
    for t in texts:
        if isinstance(t, str) and not t.strip():
            continue
        v = parse_value(name, t.strip()) if isinstance(t, str) else t
        if v not in values:
            values.append(v)
    if not MIN_VALUES <= len(values) <= MAX_VALUES:
        raise ConfigError(name, f"needs {MIN_VALUES} to {MAX_VALUES} different values, got {len(values)}")
    return values


def vary(base: SearchConfig, name: str, values: Sequence[Any]) -> list[tuple[str, SearchConfig]]:
    """(label "field=value", config) per value: the base config with one field changed, each
    validated (a bad value raises ConfigError naming the field) and its method label redone."""
    values = parse_values(name, values)
    out = []
    for v in values:
        cfg = dataclasses.replace(base, **{name: v})
        cfg = dataclasses.replace(cfg, method=method_label(cfg))
        out.append((f"{name}={v}", cfg))
    return out


def activation_group(base: SearchConfig) -> list[tuple[str, SearchConfig]]:
    """The base config once per activation of ACTIVATION_GROUP, everything else the same."""
    return vary(base, "activation", list(ACTIVATION_GROUP))


def free_group_name(store: Any, stem: str) -> str:
    """``stem`` or ``stem-2``, ``stem-3``, ...: a name no study or group of the store has."""
    taken = set(store.groups()) | set(store.studies())
    if stem not in taken:
        return stem
    return next(f"{stem}-{n}" for n in range(2, 10_000) if f"{stem}-{n}" not in taken)


def start_group(manager: Any, stem: str, configs: Sequence[tuple[str, SearchConfig]]) -> tuple[str, list[int]]:
    """Queues every config as one group (the manager starts them in turn, within its limit of
    runs at once); returns (group name, run ids). Runs are named "<label>-s<seed>", so Compare
    tells them apart by their label."""
    if not MIN_VALUES <= len(configs) <= MAX_VALUES:
        raise ConfigError("values", f"a group holds {MIN_VALUES} to {MAX_VALUES} runs, got {len(configs)}")
    group = free_group_name(manager.store, stem)
    ids = [manager.start(cfg, name=f"{label}-s{cfg.seed}", group=group) for label, cfg in configs]
    return group, ids


def planned_iterations(config: SearchConfig) -> int | None:
    """Iterations the search will run, or None where an epoch is one pass over unknown data."""
    return config.epochs * config.iters_per_epoch if config.iters_per_epoch else None


def run_cpu_seconds(config: SearchConfig) -> float | None:
    """CPU seconds of one search of the config at one thread, from CPU_SECONDS; None where
    the preset or the number of iterations is unknown."""
    cost = CPU_SECONDS.get(config.preset)
    n = planned_iterations(config)
    return None if cost is None or n is None else cost[0] + cost[1] * n


def group_seconds(cpu_seconds: Sequence[float], max_concurrent: int, cores: int | None = None) -> float:
    """Wall seconds until the last of the runs ends when they start in order, at most
    ``max_concurrent`` at once, and the runs going share ``cores`` cores (each a core at most)."""
    cores = max(1, cores or os.cpu_count() or 1)
    left = [float(s) for s in cpu_seconds]
    queue = list(range(len(left)))
    live: list[int] = []
    t = 0.0
    while queue or live:
        while queue and len(live) < max(1, max_concurrent):
            live.append(queue.pop(0))
        rate = min(1.0, cores / len(live))  # CPU seconds per wall second of each live run
        step = min(left[i] for i in live) / rate
        t += step
        for i in live:
            left[i] -= step * rate
        live = [i for i in live if left[i] > 1e-9]
    return t


def rounds(n: int, max_concurrent: int) -> int:
    """How many turns n queued runs take at ``max_concurrent`` at once."""
    return math.ceil(n / max(1, max_concurrent))
