"""How architecture parameters (alphas) become operation weights.

softmax (DARTS), sigmoid (FairDARTS), crb (DARTS-PRIME v1: clamped, none removed, node-wise
BN, permanent pruning) and gumbel (GDAS/SNAS's Gumbel-softmax relaxation). Each is one small
class in one registry (docs/algorithms.md "Activations"); a class reads its own settings from the
config through ``config_fields`` (core.registry).

Two forms of the weights: ``act(alpha)`` is the deterministic one, which is displayed, stored,
discretized and penalised; ``act.sample(alpha)`` is what a training forward pass uses. They are
the same unless the activation is ``stochastic`` (gumbel: a fresh Gumbel sample per call).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from core.engine.ops import DARTS_PRIMITIVES
from core.registry import Registry

ACTIVATIONS: Registry[type["Activation"]] = Registry("activation")
register_activation = ACTIVATIONS.register


def list_activations() -> list[str]:
    return ACTIVATIONS.names()


def create_activation(name: str, **kw: Any) -> "Activation":
    return ACTIVATIONS.create(name, **kw)


def op_names(activation: "str | Activation | type[Activation]", include_none: bool = True) -> list[str]:
    """The op list in alpha-column order: the DARTS set, without `none` when the config drops it
    (FairDARTS) or the activation does (crb). The one rule the supernet and the pages use."""
    uses_none = (ACTIVATIONS.get(activation) if isinstance(activation, str) else activation).uses_none
    keep_none = include_none and uses_none
    return [p for p in DARTS_PRIMITIVES if keep_none or p != "none"]


class Activation:
    name = "base"
    uses_none = True        # whether `none` stays in the op list
    node_batchnorm = False  # CRB normalises each node's summed input
    prunes = False
    # Whether a training forward pass samples its weights (``sample``) rather than using the
    # deterministic ones: the search then draws a fresh sample for every weight step.
    stochastic = False
    # Range of the activated weights, for plotting: shares or independent values.
    y_range: tuple[float, float] = (0.0, 1.0)
    # Constructor keyword -> SearchConfig field, read by ACTIVATIONS.create_from_config.
    config_fields: ClassVar[dict[str, str]] = {}

    def init(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        return 1e-3 * torch.randn(shape, generator=generator)

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        """Deterministic weights (edges, ops): what is displayed, stored, discretized and
        penalised."""
        raise NotImplementedError

    def sample(self, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Weights (edges, ops) of one training forward pass; the deterministic ones unless the
        activation is stochastic, which draws from ``generator`` (torch's default if None)."""
        return self(alpha)

    def after_step(self, alpha: torch.Tensor, mask: np.ndarray) -> np.ndarray:
        """Called after every alpha update with the current host-side (edges, ops) mask of
        ops still computed; returns the new mask (pruning is permanent: never re-enables)."""
        return mask


@register_activation("softmax")
class Softmax(Activation):
    name = "softmax"

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha, dim=-1)


@register_activation("sigmoid")
class Sigmoid(Activation):
    name = "sigmoid"

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(alpha)


@register_activation("crb")
class ClampedReluBatchnorm(Activation):
    """CRB: weight = clamp(alpha, 0, 1); an alpha that reaches 0 is pruned for good.

    The mask lives on the host and changes only here, after architecture steps, so the
    forward pass never reads a device scalar to decide which ops to run.
    """

    name = "crb"
    uses_none = False
    node_batchnorm = True
    prunes = True

    def init(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        return 1.0 / shape[1] + 1e-4 * torch.randn(shape, generator=generator)

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        # Gradient is zero above 1 too (clamp), as in the paper.
        return torch.clamp(alpha, 0.0, 1.0)

    def after_step(self, alpha: torch.Tensor, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            dead = (alpha <= 0).cpu().numpy()  # one host copy per architecture step
            new_mask = mask & ~dead
            # Re-zero every pruned alpha: Adam's momentum would otherwise nudge some back.
            alpha.masked_fill_(torch.from_numpy(~new_mask).to(alpha.device, non_blocking=True), 0.0)
        return new_mask


@register_activation("gumbel")
class GumbelSoftmax(Activation):
    """Gumbel-softmax (GDAS, SNAS), soft relaxation: a training forward pass uses
    softmax((alpha + g) / tau) with g ~ Gumbel(0, 1) drawn afresh per edge and op from a seeded
    torch generator (the search's own); what is shown, stored, discretized and penalised is
    softmax(alpha), the choice probabilities the samples are drawn from (Gumbel-max: the argmax
    of alpha + g is op k with probability softmax(alpha)_k). A lower ``tau`` gives samples
    closer to one-hot.
    """

    name = "gumbel"
    stochastic = True
    config_fields = {"tau": "gumbel_tau"}

    def __init__(self, tau: float = 1.0):
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = float(tau)

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha, dim=-1)

    def sample(self, alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # -log(E), E ~ Exp(1), is Gumbel(0, 1) (as torch's own gumbel_softmax draws it), drawn
        # on the alpha's device: no host round trip. E is kept off 0, where g would be inf
        # and the softmax NaN.
        e = torch.empty_like(alpha).exponential_(generator=generator)
        e.clamp_min_(torch.finfo(alpha.dtype).tiny)
        g = -e.log()
        return torch.softmax((alpha + g) / self.tau, dim=-1)
