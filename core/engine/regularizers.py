"""Penalties added to the architecture loss, pulling the weights toward a discrete cell.

none, proximity (DARTS-PRIME), admm (PRIME v1), and the baselines zero_one (FairDARTS) and
entropy. ``weights`` is a dict cell type -> activated weights A (edges, ops) with gradient;
D(A) is the run's discretization rule (core.engine.discretize: DARTS's top-2 or FairDARTS's threshold),
detached. docs/algorithms.md "Regularizers".

Each class reads its own settings from the config (``config_fields``, core.registry) and
reports its own extra terms and events after each architecture step (``StepReport``). A
regularizer that updates state of its own on a cadence (ADMM) declares what those update events
carry (``UpdateEvents``): the live view collects them and the monitor charts them from that
declaration alone, so nothing outside this module names a regularizer's updates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch

from core.engine.discretize import (DEFAULT_RULE, DEFAULT_THRESHOLD, project_discrete,
                                     project_discrete_cells)
from core.registry import Registry

REGULARIZERS: Registry[type["Regularizer"]] = Registry("regularizer")
register_regularizer = REGULARIZERS.register
Weights = dict[str, torch.Tensor]


def list_regularizers() -> list[str]:
    return REGULARIZERS.names()


@dataclass(frozen=True)
class UpdateEvents:
    """What the events of a regularizer's own updates carry, declared on its class.

    ``series`` are (key in the event's data, legend label) pairs, in drawing order;
    ``every_field`` names the config field that sets the cadence, in architecture steps."""
    kind: str                             # the events' kind in the store
    label: str                            # how charts and captions name the regularizer
    series: tuple[tuple[str, str], ...]
    every_field: str | None = None
    y_title: str = "value"                # the chart's y axis

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.series)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.series)


@dataclass(frozen=True)
class RegularizerEvent:
    """An event the search pushes as is, at the step it happened."""
    kind: str
    message: str
    data: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepReport:
    """What a regularizer reports after an architecture step: ``terms`` recorded with that
    step's penalty terms, and ``event``, or None when nothing happened worth an event."""
    terms: dict[str, float] = field(default_factory=dict)
    event: RegularizerEvent | None = None


class Regularizer:
    name = "base"
    # Constructor keyword -> SearchConfig field, read by REGULARIZERS.create_from_config
    # (``primitives`` is not a config field: the search passes it).
    config_fields: ClassVar[dict[str, str]] = {}
    # What this regularizer's update events carry, or None if it reports none.
    updates: ClassVar[UpdateEvents | None] = None

    def __init__(self, primitives: Sequence[str]):
        self.primitives = list(primitives)

    def setup(self, alphas: Weights, weights: Weights) -> None:
        """Called once with the initial alphas and activated weights (both detached)."""

    def penalty(self, weights: Weights, progress: float, masks: Weights | None = None) -> torch.Tensor:
        """Scalar added to the validation loss; ``progress`` t runs from 0 to 1."""
        any_w = next(iter(weights.values()))
        return any_w.new_zeros(())

    def after_arch_step(self, alphas: Weights, activate: Callable[[torch.Tensor], torch.Tensor],
                        masks: Weights | None = None) -> StepReport:
        """Called after each architecture step with the alphas and the deterministic activation;
        reports terms to record and an event when the regularizer updated its own state."""
        return StepReport()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@register_regularizer("none")
class NoRegularizer(Regularizer):
    name = "none"


@register_regularizer("proximity")
class Proximity(Regularizer):
    """t * rho/2 * ||A - D(A)||_F (norm not squared), D recomputed from the current A under the
    run's discretization ``rule`` (and ``threshold``), the rule its genotype is derived with."""

    name = "proximity"
    config_fields = {"rho": "rho", "rule": "discretization", "threshold": "op_threshold"}

    def __init__(self, primitives: Sequence[str], rho: float = 0.1, rule: str = DEFAULT_RULE,
                 threshold: float = DEFAULT_THRESHOLD):
        super().__init__(primitives)
        self.rho = float(rho)
        self.rule = rule
        self.threshold = float(threshold)

    def penalty(self, weights: Weights, progress: float, masks: Weights | None = None) -> torch.Tensor:
        D = project_discrete_cells({ct: A.detach() for ct, A in weights.items()}, self.primitives,
                                   rule=self.rule, threshold=self.threshold)
        total = sum(torch.linalg.vector_norm(A - D[ct]) for ct, A in weights.items())
        return progress * self.rho / 2.0 * total


@register_regularizer("admm")
class ADMM(Regularizer):
    """rho/2 * ||(A - Z + U) * mask||_F with Z, U updated every ``admm_every`` arch steps:
    Z <- D(activate(alpha + U)) over live ops, then U <- (decay * U + (A - Z)) * mask.

    As in the reference code (``model_admm_hard_statebn.py``): Z starts as the initial alphas
    themselves (not their projection) and U as zeros; U is masked so that a pruned op keeps
    U = 0, and Z chooses among live ops only, so it is always a cell the supernet can compute.
    The reference writes U's update with the raw alphas; docs/algorithms.md ("ADMM") uses
    A = activate(alpha), which is the same for CRB's clamp while alphas stay in [0, 1].
    """

    name = "admm"
    # ADMM ignores the run's discretization rule: Z stays a DARTS two-per-node cell over live
    # ops (PRIME v1's projection), whatever rule the run's genotype is read with.
    config_fields = {"rho": "rho", "admm_every": "admm_every", "admm_decay": "admm_decay"}
    updates: ClassVar[UpdateEvents] = UpdateEvents(
        kind="admm_update", label="ADMM",
        series=(("admm_primal", "primal ||A - Z||"), ("admm_dual", "||U||")),
        every_field="admm_every", y_title="residual")

    def __init__(self, primitives: Sequence[str], rho: float = 0.1, admm_every: int = 10,
                 admm_decay: float = 1.0):
        super().__init__(primitives)
        if admm_every < 1:
            raise ValueError(f"admm_every must be >= 1, got {admm_every}")
        self.rho = float(rho)
        self.every = int(admm_every)
        self.decay = float(admm_decay)
        self.Z: Weights = {}
        self.U: Weights = {}
        self.arch_steps = 0

    def setup(self, alphas: Weights, weights: Weights) -> None:
        for ct, alpha in alphas.items():
            self.Z[ct] = alpha.detach().clone()
            self.U[ct] = torch.zeros_like(alpha.detach())

    def penalty(self, weights: Weights, progress: float, masks: Weights | None = None) -> torch.Tensor:
        total = 0.0
        for ct, A in weights.items():
            diff = A - self.Z[ct] + self.U[ct]
            if masks is not None:
                diff = diff * masks[ct]
            total = total + torch.linalg.vector_norm(diff)
        return self.rho / 2.0 * total

    def after_arch_step(self, alphas: Weights, activate: Callable[[torch.Tensor], torch.Tensor],
                        masks: Weights | None = None) -> StepReport:
        self.arch_steps += 1
        if self.arch_steps % self.every:
            return StepReport()
        norms = []
        with torch.no_grad():
            # both cells' projections from one copy to the host, and one read of the four norms
            Z = project_discrete_cells({ct: activate(alpha + self.U[ct]) for ct, alpha in alphas.items()},
                                       self.primitives, masks)
            for ct, alpha in alphas.items():
                A = activate(alpha)
                live = masks[ct] if masks is not None else None
                self.Z[ct] = Z[ct]
                U = self.decay * self.U[ct] + (A - self.Z[ct])
                self.U[ct] = U * live if live is not None else U
                norms += [torch.linalg.vector_norm(A - self.Z[ct]), torch.linalg.vector_norm(self.U[ct])]
        values = torch.stack(norms).tolist()
        primal, dual = sum(values[0::2]), sum(values[1::2])
        # The residuals are recorded with this step's terms and carried by the update event.
        data = {"admm_primal": primal, "admm_dual": dual}
        return StepReport(terms=data, event=RegularizerEvent(
            self.updates.kind, f"ADMM update: primal {primal:.4f}, ||U|| {dual:.4f}", data))

    def state_dict(self) -> dict[str, Any]:
        return {"Z": {k: v.cpu() for k, v in self.Z.items()},
                "U": {k: v.cpu() for k, v in self.U.items()}, "arch_steps": self.arch_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(iter(self.Z.values())).device if self.Z else "cpu"
        self.Z = {k: v.to(device) for k, v in state["Z"].items()}
        self.U = {k: v.to(device) for k, v in state["U"].items()}
        self.arch_steps = int(state["arch_steps"])


@register_regularizer("zero_one")
class ZeroOne(Regularizer):
    """FairDARTS: -w0 * mean((sigmoid(alpha) - 0.5)^2). Written on the activated weights A,
    which equal sigmoid(alpha) under the sigmoid activation it is meant for."""

    name = "zero_one"
    config_fields = {"zero_one_weight": "zero_one_weight"}

    def __init__(self, primitives: Sequence[str], zero_one_weight: float = 10.0):
        super().__init__(primitives)
        self.w0 = float(zero_one_weight)

    def penalty(self, weights: Weights, progress: float, masks: Weights | None = None) -> torch.Tensor:
        A = torch.cat([w.flatten() for w in weights.values()])
        return -self.w0 * torch.mean((A - 0.5) ** 2)


@register_regularizer("entropy")
class Entropy(Regularizer):
    """weight * mean per-edge entropy of A, each edge's weights renormalised to sum to 1."""

    name = "entropy"
    config_fields = {"entropy_weight": "entropy_weight"}

    def __init__(self, primitives: Sequence[str], entropy_weight: float = 0.1):
        super().__init__(primitives)
        self.weight = float(entropy_weight)

    def penalty(self, weights: Weights, progress: float, masks: Weights | None = None) -> torch.Tensor:
        ents = []
        for A in weights.values():
            p = A.clamp_min(0) / A.clamp_min(0).sum(dim=-1, keepdim=True).clamp_min(1e-12)
            ents.append(-(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1))
        return self.weight * torch.cat(ents).mean()


def discretization_gap(weights: Weights, primitives: Sequence[str], rule: str = DEFAULT_RULE,
                       threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """||A - D(A)||_F summed over cell types: how far the weights are from their cell under
    ``rule``."""
    return sum(torch.linalg.vector_norm(
        A.detach() - project_discrete(A.detach(), primitives, rule=rule, threshold=threshold))
        for A in weights.values())
