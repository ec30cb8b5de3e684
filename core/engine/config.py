"""SearchConfig: every knob of a search, its presets, and its validation.

A config is frozen and validated on construction; a bad value raises ``ConfigError`` naming the
field and what is allowed, which the app and the CLI show as is. Presets come in two families
that compose: a data/budget preset (``demo``, ``paper``, ``tiny``) and a method preset
(``darts``, ``fairdarts``, ``darts-prime``, ``prime-crb``, ``prime-admm``; docs/algorithms.md).
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from core.registry import Registry, UnknownNameError


MAX_TEXT_CHARS = 1024  # a text field (a folder path, a name of a part)


class ConfigError(ValueError):
    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


# Field groups, in the order the Launch page shows them.
GROUPS: dict[str, str] = {
    "data": "Data",
    "supernet": "Supernet",
    "w_opt": "Weight optimiser",
    "a_opt": "Architecture optimiser",
    "activation": "Activation",
    "schedule": "Schedule",
    "regularizer": "Regularizer",
    "budget": "Budget and run",
}


def _f(default: Any, group: str, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"group": group, "help": help, **kw})


@dataclass(frozen=True)
class SearchConfig:
    # ---- labels
    method: str = _f("darts-prime", "budget", "Method preset this config started from (label).")
    preset: str = _f("demo", "budget", "Data/budget preset this config started from (label).")
    # ---- data
    dataset: str = _f("digits", "data", "Dataset: digits and shapes are built in; cifar10/100 and "
                      "folder read local files.")
    data_dir: str = _f("", "data", "Folder holding the dataset files (cifar10/100, folder); empty "
                       "means $PRIME_EXPLORER_DATA or ./data.")
    image_size: int = _f(16, "data", "Images are resized to this side length (pixels).", min=8, max=256)
    split: Literal["half", "matched"] = _f("matched", "data", "half: 50/50 weight/architecture data "
                                           "(DARTS); matched: period k gives k:1 (DARTS-PRIME).")
    augment: bool = _f(False, "data", "Random crop and flip for weight batches (CIFAR-style data).")
    # ---- supernet
    C: int = _f(8, "supernet", "Initial channels (even: reduction cells halve the resolution "
                "with two C/2 branches).", min=4, max=128)
    layers: int = _f(5, "supernet", "Cells in the supernet; reductions at layers//3 and 2*layers//3.",
                     min=3, max=20)
    nodes: int = _f(4, "supernet", "Intermediate nodes per cell.", min=2, max=6)
    batch_size: int = _f(32, "supernet", "Images per weight and per architecture batch.", min=2, max=1024)
    # ---- weight optimiser (SGD, cosine)
    w_lr: float = _f(0.025, "w_opt", "SGD learning rate of the network weights.", gt=0, max=1.0)
    w_lr_min: float = _f(0.001, "w_opt", "Cosine schedule floor, reached at the last epoch.", min=0, max=1.0)
    w_momentum: float = _f(0.9, "w_opt", "SGD momentum.", min=0, max=0.999)
    w_weight_decay: float = _f(3e-4, "w_opt", "SGD weight decay.", min=0, max=0.1)
    grad_clip: float = _f(5.0, "w_opt", "Gradient-norm clip of the weights.", gt=0, max=1000)
    # ---- architecture optimiser (Adam, first order)
    alpha_lr: float = _f(3e-4, "a_opt", "Adam learning rate of the alphas.", gt=0, max=1.0)
    alpha_beta1: float = _f(0.5, "a_opt", "Adam beta1.", min=0, max=0.999)
    alpha_beta2: float = _f(0.999, "a_opt", "Adam beta2.", min=0, max=0.9999)
    alpha_weight_decay: float = _f(1e-3, "a_opt", "Adam weight decay of the alphas.", min=0, max=0.1)
    # ---- activation
    activation: str = _f("softmax", "activation", "softmax (DARTS), sigmoid (FairDARTS), crb "
                         "(clamped, node-wise BN, permanent pruning) or gumbel (Gumbel-softmax "
                         "samples, GDAS/SNAS).")
    include_none: bool = _f(True, "activation", "Keep the `none` op in the op list (DARTS); "
                            "FairDARTS drops it, and crb always does.")
    discretization: Literal["darts", "threshold"] = _f(
        "darts", "activation", "darts: top-2 edges per node, best op per edge (one rule for every "
        "method); threshold: FairDARTS's parse, a kept edge's best op only if its weight >= "
        "op_threshold, so a node may keep 0, 1 or 2 inputs.")
    op_threshold: float = _f(0.85, "activation", "Threshold discretization: the weight an op "
                             "needs to be kept (FairDARTS: 0.85).", gt=0, max=1.0)
    gumbel_tau: float = _f(1.0, "activation", "Gumbel: temperature tau of the Gumbel-softmax "
                           "samples softmax((alpha + g)/tau) the forward pass uses (GDAS, SNAS); "
                           "lower is closer to one-hot.", gt=0, max=100.0)
    # ---- schedule
    schedule: str = _f("informed", "schedule", "fixed: an architecture step every `period` "
                       "iterations; informed: DARTS-PRIME's FI-driven schedule.")
    period: int = _f(10, "schedule", "Fixed period, or the informed schedule's target period.",
                     min=1, max=1000)
    multiplier: float = _f(1.05, "schedule", "Informed: threshold growth per waiting iteration.",
                           gt=1.0, max=2.0)
    ewma: float = _f(0.2, "schedule", "Informed: weight of the newest FI in its moving average.",
                     gt=0, max=1.0)
    init_threshold: float = _f(1.0, "schedule", "Informed: starting threshold.", gt=0, max=1e9)
    seed_threshold: bool = _f(False, "schedule", "Informed: start the threshold at the first FI "
                              "(not in the paper; lets short runs step from the start).")
    # ---- regularizer
    regularizer: str = _f("proximity", "regularizer", "Penalty on the architecture loss.")
    rho: float = _f(0.1, "regularizer", "Proximity and ADMM strength.", min=0, max=100)
    admm_every: int = _f(10, "regularizer", "ADMM: update Z and U every this many architecture steps.",
                         min=1, max=10000)
    admm_decay: float = _f(1.0, "regularizer", "ADMM: decay of the dual variable U.", min=0, max=1.0)
    zero_one_weight: float = _f(10.0, "regularizer", "Zero-one loss weight (FairDARTS).", min=0, max=1000)
    entropy_weight: float = _f(0.1, "regularizer", "Entropy penalty weight.", min=0, max=1000)
    # ---- budget and run
    epochs: int = _f(50, "budget", "Passes over the weight data (cosine schedule length).", min=1,
                     max=10000)
    iters_per_epoch: int = _f(0, "budget", "Iterations per epoch; 0 = one pass over the weight data.",
                              min=0, max=1000000)
    seed: int = _f(0, "budget", "Random seed (data split, init, batches).", min=0, max=2**31 - 1)
    device: str = _f("auto", "budget", "auto picks cuda, then mps, then cpu.")
    threads: int = _f(0, "budget", "Torch CPU threads; 0 = automatic (docs/performance.md).", min=0, max=256)
    fast: bool = _f(True, "budget", "Use the fast supernet path (same numbers as the plain one).")
    precision: Literal["fp32", "tf32", "bf16"] = _f(
        "fp32", "budget", "Arithmetic of the forward passes. fp32: full float32 (TF32 off on "
        "GPUs, so numbers agree across devices); tf32: NVIDIA GPUs' TF32 matmuls and convolutions; "
        "bf16: bfloat16 autocast (GPUs with bf16; on a CPU it runs, usually slower). Weights, "
        "alphas and optimizers stay float32.")
    log_every: int = _f(10, "budget", "Iterations per batch of rows written to the store.", min=1,
                        max=10000)
    checkpoint_seconds: int = _f(60, "budget", "A checkpoint at most this many seconds apart "
                                 "within an epoch (and at every epoch end): what a crash can cost.",
                                 min=1, max=86400)
    tensorboard_dir: str = _f("", "budget", "Also write TensorBoard event files as the search "
                              "runs, into a folder per run under this one; empty: none.")

    def __post_init__(self) -> None:
        self.validate()

    # ---- validation --------------------------------------------------------------------
    def validate(self) -> None:
        from core.data import list_datasets
        from core.engine.activations import list_activations
        from core.engine.regularizers import list_regularizers
        from core.engine.schedules import list_schedules

        hints = typing.get_type_hints(SearchConfig)
        for f in fields(self):
            v = getattr(self, f.name)
            t = hints[f.name]
            if t is bool:
                if not isinstance(v, bool):
                    raise ConfigError(f.name, f"must be true or false, got {v!r}")
                continue
            if t is int and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f.name, f"must be a whole number, got {v!r}")
            if t is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                    raise ConfigError(f.name, f"must be a number, got {v!r}")
            if t is str and (not isinstance(v, str) or len(v) > MAX_TEXT_CHARS):
                raise ConfigError(f.name, f"must be text of at most {MAX_TEXT_CHARS} characters, got "
                                  + (f"{len(v)} characters" if isinstance(v, str) else repr(v)))
            md = f.metadata
            if ("gt" in md and not v > md["gt"] or "min" in md and v < md["min"]
                    or "max" in md and v > md["max"]):
                raise ConfigError(f.name, f"must be {_allowed(md)}, got {v}")
            if typing.get_origin(t) is Literal and v not in typing.get_args(t):
                raise ConfigError(f.name, f"must be one of {', '.join(typing.get_args(t))}, got {v!r}")
        for name, valid in (("activation", list_activations()), ("schedule", list_schedules()),
                            ("regularizer", list_regularizers()), ("dataset", list_datasets()),
                            ("method", METHODS.names() + ["custom"]),
                            ("preset", PRESETS.names() + ["custom"]),
                            ("device", ["auto", "cpu", "cuda", "mps"])):
            v = getattr(self, name)
            if v not in valid and not (name == "device" and v.startswith("cuda:")):
                raise ConfigError(name, f"must be one of {', '.join(valid)}, got {v!r}")
        if self.C % 2:
            raise ConfigError("C", f"must be an even number between 4 and 128, got {self.C}")
        if self.w_lr_min > self.w_lr:
            raise ConfigError("w_lr_min", f"must be <= w_lr ({self.w_lr}), got {self.w_lr_min}")
        if self.data_dir and not os.path.isdir(self.data_dir):
            raise ConfigError("data_dir", f"must be an existing folder or empty for the default; "
                              f"{self.data_dir!r} does not exist")
        if self.tensorboard_dir and os.path.exists(self.tensorboard_dir) and not os.path.isdir(
                self.tensorboard_dir):
            raise ConfigError("tensorboard_dir", f"must be a folder (made if missing) or empty for "
                              f"none; {self.tensorboard_dir!r} is a file")

    # ---- forms -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown setting; valid: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "SearchConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **kw: Any) -> "SearchConfig":
        known = {f.name for f in fields(self)}
        for k in kw:
            if k not in known:
                raise ConfigError(k, f"unknown setting; valid: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **kw)

    @property
    def train_fraction(self) -> float:
        from core.engine.schedules import train_fraction
        return train_fraction(self.split, self.period)


def _allowed(md: dict[str, Any]) -> str:
    """A field's range in words, from its bounds (gt, min, max); none of them reads None."""
    low = f"> {md['gt']}" if "gt" in md else f">= {md['min']}" if "min" in md else None
    if low and "max" in md:
        return (f"between {md['min']} and {md['max']}" if "min" in md
                else f"{low} and <= {md['max']}")
    return low or f"<= {md['max']}"


def field_info() -> list[dict[str, Any]]:
    """Name, type, default, group, help and bounds of each field, for forms and docs."""
    hints = typing.get_type_hints(SearchConfig)
    out = []
    for f in fields(SearchConfig):
        t = hints[f.name]
        kind = ("choice" if typing.get_origin(t) is Literal else
                {bool: "bool", int: "int", float: "float"}.get(t, "str"))
        out.append({"name": f.name, "kind": kind, "default": f.default,
                    "choices": list(typing.get_args(t)) if kind == "choice" else None,
                    **dict(f.metadata)})
    return out


def parse_value(name: str, text: str) -> Any:
    """Converts a CLI/text value to the field's type; errors name the field."""
    info = {f["name"]: f for f in field_info()}
    if name not in info:
        raise ConfigError(name, f"unknown setting; valid: {', '.join(sorted(info))}")
    kind = info[name]["kind"]
    try:
        if kind == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(text.strip())  # "1e30" or "2.5" is no whole number: refused, not rounded
        if kind == "float":
            return float(text)
    except ValueError:
        what = {"bool": "true or false", "int": "a whole number", "float": "a number"}[kind]
        raise ConfigError(name, f"must be {what}, got {text!r}") from None
    return text


# ---- presets ---------------------------------------------------------------------------
PRESETS: Registry[dict[str, Any]] = Registry("preset")
METHODS: Registry[dict[str, Any]] = Registry("method")

PRESETS.register("paper")({
    # DARTS-PRIME search settings on CIFAR-10 (docs/algorithms.md "Optimisation defaults").
    "dataset": "cifar10", "image_size": 32, "augment": True, "C": 16, "layers": 8, "nodes": 4,
    "batch_size": 64, "epochs": 50, "iters_per_epoch": 0, "alpha_lr": 3e-4,
    "seed_threshold": False, "log_every": 20,
})


@dataclass(frozen=True)
class Departure:
    """One way the demo preset departs from the paper: a field, the methods it applies to
    (empty: all), the demo's value, and why. The paper's value is what the `paper` preset
    gives for that method."""
    field: str
    value: Any
    why: str
    methods: tuple[str, ...] = ()


INFORMED = ("darts-prime", "prime-crb", "prime-admm")
FIXED = ("darts", "fairdarts")

# The demo preset is this table. Each method runs on bundled digits within 180 s on one CPU
# thread (aimed at about 150 s), with enough architecture steps to show what it does: CRB and
# ADMM prune, softmax ops separate, proximity and ADMM settle the cell before the end.
DEMO_DEPARTURES: tuple[Departure, ...] = (
    Departure("dataset", "digits", "ships with scikit-learn: nothing to download"),
    Departure("image_size", 16, "8x8 digits upscaled; 32 px would cost 4x per iteration"),
    Departure("augment", False, "digits are centred; crops and flips would only add noise"),
    Departure("C", 8, "a small but real supernet: every op on every edge is computed"),
    Departure("layers", 5, "one normal cell between each pair of reductions, as the paper's 8 do"),
    Departure("batch_size", 32, "smaller batches, more iterations within the time budget"),
    Departure("iters_per_epoch", 20, "short epochs so that the cosine schedule and the "
              "epoch-end validation show within minutes"),
    Departure("log_every", 5, "rows reach the Monitor every few seconds"),
    Departure("seed_threshold", True, "the informed schedule steps from the start instead of "
              "waiting ~100 iterations for its threshold to pass FI", INFORMED),
    Departure("epochs", 10, "200 iterations: about 130 s at one thread, since CRB's pruned "
              "ops cost nothing", ("prime-crb", "prime-admm")),
    Departure("epochs", 8, "160 iterations: softmax prunes nothing, so its iterations stay "
              "dearest (about 130 s at one thread)", ("darts-prime",)),
    Departure("period", 3, "an architecture step every ~4 iterations gives 40-70 steps in "
              "160-200 iterations instead of ~15", INFORMED),
    Departure("alpha_lr", 0.03, "100x the paper's: tens of steps must do what thousands do "
              "on CIFAR", INFORMED),
    Departure("rho", 1.0, "10x the paper's, so that the pull toward the discrete cell (t*rho/2) "
              "settles the cell within the short run", INFORMED),
    Departure("admm_every", 3, "an ADMM update every 3 architecture steps gives ~20 updates "
              "instead of ~6", ("prime-admm",)),
    Departure("epochs", 6, "an architecture step every iteration costs about 1.6x an informed "
              "iteration: 120 iterations fit the same budget", FIXED),
    Departure("alpha_lr", 0.3, "1000x DARTS's: without a regularizer, 120 noisy steps must "
              "separate the softmax weights (0.1 left most edges under 2x uniform)", ("darts",)),
    Departure("alpha_lr", 0.1, "30x FairDARTS's: 120 steps must push sigmoid weights past the "
              "0.85 threshold (0.03 left every node of every seed empty)", ("fairdarts",)),
)


def demo_departures(method: str) -> dict[str, Any]:
    """The demo's values for one method preset (later rows win)."""
    return {d.field: d.value for d in DEMO_DEPARTURES if not d.methods or method in d.methods}


def departure_table() -> list[dict[str, Any]]:
    """Rows of the demo's departures from the paper: field, methods, paper value(s), demo
    value, why; for the README."""
    rows = []
    for d in DEMO_DEPARTURES:
        methods = list(d.methods) or METHODS.names()
        paper = sorted({str(_paper_value(m, d.field)) for m in methods})
        rows.append({"field": d.field, "methods": ", ".join(d.methods) or "all",
                     "paper": " / ".join(paper), "demo": d.value, "why": d.why})
    return rows


def _paper_value(method: str, name: str) -> Any:
    merged = {**PRESETS.get("paper"), **METHODS.get(method)}
    return merged.get(name, SearchConfig.__dataclass_fields__[name].default)


PRESETS.register("demo")({d.field: d.value for d in DEMO_DEPARTURES if not d.methods})
PRESETS.register("tiny")({
    # For tests and smoke checks: seconds on one CPU core.
    "dataset": "digits", "image_size": 8, "augment": False, "C": 4, "layers": 3, "nodes": 4,
    "batch_size": 16, "epochs": 2, "iters_per_epoch": 6, "alpha_lr": 3e-3,
    "seed_threshold": True, "log_every": 2,
})

METHODS.register("darts")({"activation": "softmax", "schedule": "fixed", "period": 1,
                           "split": "half", "regularizer": "none"})
METHODS.register("fairdarts")({
    # FairDARTS's own code (xiaomi-automl/FairDARTS, fairdarts/train_search.py): no `none` op,
    # SGD lr 0.005, Adam lr 3e-3 with betas (0.9, 0.999), zero-one loss weight 10, an
    # architecture step every iteration on a 50/50 split, and its `threshold_sparse` parse at
    # 0.85. Its batch (128) is left to the data preset, like every method's.
    "activation": "sigmoid", "schedule": "fixed", "period": 1, "split": "half",
    "regularizer": "zero_one", "zero_one_weight": 10.0, "include_none": False,
    "discretization": "threshold", "op_threshold": 0.85, "w_lr": 0.005, "alpha_lr": 3e-3,
    "alpha_beta1": 0.9})
METHODS.register("darts-prime")({"activation": "softmax", "schedule": "informed", "period": 10,
                                 "split": "matched", "regularizer": "proximity"})
METHODS.register("prime-crb")({"activation": "crb", "schedule": "informed", "period": 10,
                               "split": "matched", "regularizer": "proximity"})
METHODS.register("prime-admm")({"activation": "crb", "schedule": "informed", "period": 10,
                                "split": "matched", "regularizer": "admm"})


def list_presets() -> list[str]:
    return PRESETS.names()


def list_methods() -> list[str]:
    return METHODS.names()


def method_fields(preset: str, method: str) -> dict[str, Any]:
    """What choosing a method sets on a form: the method's fields and the preset's departures
    for it (the demo's per-method tuning)."""
    tuned = {k: v for k, v in demo_departures(method).items()
             if preset == "demo" and k not in PRESETS.get("demo")}
    return {**METHODS.get(method), **tuned}


def preset_fields(preset: str, method: str) -> dict[str, Any]:
    """What choosing a data/budget preset sets on a form, with its departures for the method."""
    return {**PRESETS.get(preset), **(demo_departures(method) if preset == "demo" else {})}


def make_config(preset: str = "demo", method: str = "darts-prime", **overrides: Any) -> SearchConfig:
    """Preset, then method, then the preset's per-method departures (the demo's table), then
    overrides. Unknown names raise ConfigError naming the field."""
    try:
        p = PRESETS.get(preset)
    except UnknownNameError as e:
        raise ConfigError("preset", f"must be one of {', '.join(e.valid)}, got {preset!r}") from None
    try:
        m = METHODS.get(method)
    except UnknownNameError as e:
        raise ConfigError("method", f"must be one of {', '.join(e.valid)}, got {method!r}") from None
    known = {f.name for f in fields(SearchConfig)}
    for k in overrides:
        if k not in known:
            raise ConfigError(k, f"unknown setting; valid: {', '.join(sorted(known))}")
    tuned = demo_departures(method) if preset == "demo" else {}
    return SearchConfig(**{**p, **m, **tuned, "preset": preset, "method": method, **overrides})
