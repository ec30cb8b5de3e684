"""The fast path's cell-op weights held in one tensor.

The fast path runs an op on all the edges leaving a state as one grouped convolution whose
weights are the edges' own, side by side. Laid out so that each such set is a contiguous run of
one tensor, those weights are a view of it: no concatenation per forward and no split of the
gradient per backward; each run is a leaf whose gradient is the matching view of the arena's
gradient, so a backward adds into the arena in place. The search's optimizer and gradient clip
then step the one tensor instead of the ~900 it holds.

The modules' Parameters stay what the rest of the code sees (the plain path, checkpoints,
evaluation): their data are views of the arena, and so are the gradients of those the current
mask computes; a pruned op's Parameters have none, as on the plain path.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn as nn


class WeightArena:
    def __init__(self, order: Sequence[nn.Parameter]):
        """``order``: the Parameters, in the order that makes the fast path's runs contiguous."""
        self.params = list(order)
        with torch.no_grad():
            self.flat = torch.cat([p.detach().reshape(-1) for p in self.params]).requires_grad_()
        self.flat.grad = torch.zeros_like(self.flat)
        self._span: dict[int, tuple[int, int]] = {}
        start = 0
        data = self.flat.detach()
        for p in self.params:
            n = p.numel()
            self._span[id(p)] = (start, n)
            p.data = data[start:start + n].view(p.shape)
            start += n
        self._runs: dict[int, tuple[Sequence[nn.Parameter], torch.Tensor | None,
                                    torch.Tensor | None]] = {}

    def holds(self, p: nn.Parameter) -> bool:
        return id(p) in self._span

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor it keeps (on the search's device)."""
        kept = [self.flat, self.flat.grad]
        return kept + [t for _, leaf, data in self._runs.values() for t in (leaf, data) if t is not None]

    def part(self, t: torch.Tensor, p: nn.Parameter) -> torch.Tensor:
        """p's piece of a tensor laid out as the arena (its momentum, say), as a view."""
        start, n = self._span[id(p)]
        return t[start:start + n].view(p.shape)

    def bind_grads(self, used: Iterable[nn.Parameter]) -> None:
        """Gives each Parameter that a forward uses its view of the arena's gradient, and the
        others none (the optimizer then leaves them as they are)."""
        used_ids = {id(p) for p in used}
        grad = self.flat.grad
        for p in self.params:
            if id(p) in used_ids:
                start, n = self._span[id(p)]
                p.grad = grad[start:start + n].view(p.shape)
            else:
                p.grad = None

    def zero_grad(self) -> None:
        """One fill for every gradient the arena holds (the views stay bound)."""
        self.flat.grad.zero_()

    def run(self, params: Sequence[nn.Parameter], detach: bool) -> torch.Tensor | None:
        """``torch.cat(params)`` as a view of the arena when they lie side by side in it, in
        that order (None otherwise): a leaf of its own whose gradient is the view of the arena's
        gradient, so a backward adds into it in place; ``detach``: without a gradient."""
        hit = self._runs.get(id(params))
        if hit is None or hit[0] is not params:  # (the entry keeps the list alive: ids stay unique)
            hit = (params, *self._leaves(params))
            self._runs[id(params)] = hit
        return hit[2] if detach else hit[1]

    def _leaves(self, params: Sequence[nn.Parameter]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        spans = [self._span.get(id(p)) for p in params]
        if not spans or any(s is None for s in spans):
            return None, None
        tail = params[0].shape[1:]
        if any(p.shape[1:] != tail for p in params):
            return None, None
        for (a, n), (b, _) in zip(spans, spans[1:]):
            if a + n != b:
                return None, None
        shape = torch.Size([sum(p.shape[0] for p in params), *tail])
        start, end = spans[0][0], spans[0][0] + shape.numel()
        data = self.flat.detach()[start:end].view(shape)
        leaf = data.detach().requires_grad_()
        leaf.grad = self.flat.grad[start:end].view(shape)
        return leaf, data
