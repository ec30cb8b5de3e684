"""How architecture parameters (alphas) become operation weights.

softmax (DARTS), sigmoid (FairDARTS) and crb (DARTS-PRIME v1: clamped, none removed, node-wise
BN, permanent pruning). Each is one small class in one registry (ALGORITHMS.md "Activations").
"""
from __future__ import annotations

import numpy as np
import torch

from core.ops import DARTS_PRIMITIVES
from core.registry import Registry

ACTIVATIONS: Registry[type["Activation"]] = Registry("activation")
register_activation = ACTIVATIONS.register


def list_activations() -> list[str]:
    return ACTIVATIONS.names()


def create_activation(name: str) -> "Activation":
    return ACTIVATIONS.create(name)


def op_names(activation: str, include_none: bool = True) -> list[str]:
    """The op list in alpha-column order: the DARTS set, without `none` when the config drops it
    (FairDARTS) or the activation does (crb). The one rule the supernet and the pages use."""
    keep_none = include_none and ACTIVATIONS.get(activation).uses_none
    return [p for p in DARTS_PRIMITIVES if keep_none or p != "none"]


class Activation:
    name = "base"
    uses_none = True        # whether `none` stays in the op list
    node_batchnorm = False  # CRB normalises each node's summed input
    prunes = False
    # Range of the activated weights, for plotting: shares or independent values.
    y_range: tuple[float, float] = (0.0, 1.0)

    def init(self, shape: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        return 1e-3 * torch.randn(shape, generator=generator)

    def __call__(self, alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
            alpha.masked_fill_(torch.from_numpy(~new_mask).to(alpha.device), 0.0)
        return new_mask
