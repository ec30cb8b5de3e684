"""The DARTS CNN search supernet: MixedOp, search Cell, Supernet (the alphas live here).

Layout and parameter names follow DARTS ``model_search.py`` (``cells.{i}._ops.{edge}._ops.{op}``).
Two forward paths give the same numbers (tests hold them to 1e-5):

- plain: each MixedOp sums w_k * op_k(x) over its ops, `none` included, like the reference code;
- fast (training mode): the edges leaving each state computed together, `none` and the ops
  masked by the activation (CRB pruning) skipped, from a plan that only changes with the mask
  (``core.engine.batched``). Channels-last memory is chosen by the caller (``Search``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.engine.activations import Activation, create_activation, op_names
from core.engine.arena import WeightArena
from core.engine.batched import CellPlan, arena_order, build_plan, forward_cell
from core.engine.discretize import num_edges
from core.engine.genotype import CELL_TYPES
from core.engine.ops import (
    FactorizedReduce,
    ReLUConvBN,
    cell_plan,
    create_op,
)


class MixedOp(nn.Module):
    def __init__(self, C: int, stride: int, primitives: Sequence[str]):
        super().__init__()
        self._ops = nn.ModuleList(create_op(p, C, stride, affine=False) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: Sequence[int] | None = None) -> torch.Tensor:
        """Plain path. weights: (ops,) for this edge; ``active`` lists op indices to compute."""
        ks = range(len(self._ops)) if active is None else active
        out = None
        for k in ks:
            y = weights[k] * self._ops[k](x)
            out = y if out is None else out + y
        return out


class Cell(nn.Module):
    def __init__(self, nodes: int, C_pp: int, C_p: int, C: int, reduction: bool,
                 reduction_prev: bool, primitives: Sequence[str], node_batchnorm: bool):
        super().__init__()
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        self._nodes = nodes
        self.preprocess0 = (FactorizedReduce(C_pp, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_pp, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList()
        self._stride_of: list[int] = []
        for i in range(nodes):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self._ops.append(MixedOp(C, stride, primitives))
                self._stride_of.append(stride)
        # CRB normalises each node's summed input (affine=False: no parameters).
        self.node_bns = (nn.ModuleList(nn.BatchNorm2d(C, affine=False) for _ in range(nodes))
                         if node_batchnorm else None)
        self._C = C
        self._arena: WeightArena | None = None  # set by Supernet.use_weight_arena

    def _zeros_like_edge(self, x: torch.Tensor, edge: int) -> torch.Tensor:
        s = self._stride_of[edge]
        B, _, H, W = x.shape
        return x.new_zeros(B, self._C, -(-H // s), -(-W // s))

    def _finish_node(self, i: int, acc: torch.Tensor) -> torch.Tensor:
        return self.node_bns[i](acc) if self.node_bns is not None else acc

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                active: list[list[int]], plan: CellPlan | None = None,
                weight_grads: bool = True) -> torch.Tensor:
        """weights: (edges, ops) activated; active[edge] = op indices to compute. With a plan,
        the fast path (``core.engine.batched``; ``weight_grads=False``: no gradient for its ops'
        weights); without, the plain one."""
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        if plan is not None:
            return forward_cell(self, s0, s1, weights, plan, weight_grads)
        return self._forward_plain(s0, s1, weights, active)

    def _forward_plain(self, s0, s1, weights, active):
        states = [s0, s1]
        offset = 0
        for i in range(self._nodes):
            parts = []
            for j, h in enumerate(states):
                e = offset + j
                y = self._ops[e](h, weights[e], active[e]) if active[e] else None
                parts.append(self._zeros_like_edge(h, e) if y is None else y)
            offset += len(states)
            states.append(self._finish_node(i, sum(parts)))
        return torch.cat(states[-self._nodes:], dim=1)


class Supernet(nn.Module):
    """Stem, ``layers`` search cells (reductions at layers//3 and 2*layers//3), classifier.

    Alphas: ``alphas_normal`` and ``alphas_reduce``, (edges, ops), shared by every cell of the
    type. ``weights_parameters()`` excludes them; ``arch_parameters()`` is only them.
    """

    def __init__(self, C: int, num_classes: int, layers: int, activation: str | Activation = "softmax",
                 nodes: int = 4, primitives: Sequence[str] | None = None, *,
                 in_channels: int = 3, stem_multiplier: int = 3, fast: bool = True,
                 generator: torch.Generator | None = None, include_none: bool = True):
        """``activation``: an Activation built with its settings (the search builds it from the
        config), or a registered name, built with its defaults."""
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be >= 3 (two reductions need three cells), got {layers}")
        self.act: Activation = (activation if isinstance(activation, Activation)
                                else create_activation(activation))
        if primitives is None:
            primitives = op_names(self.act, include_none)
        self.primitives = list(primitives)
        self.activation_name = self.act.name
        self._C, self._num_classes, self._layers, self._nodes = C, num_classes, layers, nodes
        self.fast = fast

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p = C_curr, C_curr
        self.cells = nn.ModuleList()
        for reduction, reduction_prev, C_curr in cell_plan(layers, C):
            cell = Cell(nodes, C_pp, C_p, C_curr, reduction, reduction_prev, self.primitives,
                        self.act.node_batchnorm)
            self.cells.append(cell)
            C_pp, C_p = C_p, nodes * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

        shape = (num_edges(nodes), len(self.primitives))
        self.alphas_normal = nn.Parameter(self.act.init(shape, generator))
        self.alphas_reduce = nn.Parameter(self.act.init(shape, generator))
        self.masks: dict[str, np.ndarray] = {ct: np.ones(shape, dtype=bool) for ct in CELL_TYPES}
        # Where a stochastic activation draws its samples: the search sets a generator of its
        # own (seeded, on the alphas' device, saved with checkpoints); None is torch's default.
        self.sample_generator: torch.Generator | None = None
        self._active: dict[str, list[list[int]]] = {}
        self._arena: WeightArena | None = None  # the fast path's, once the search asks for it
        self._refresh_active()

    # ---- parameters ------------------------------------------------------------------
    def alphas(self) -> dict[str, nn.Parameter]:
        return {"normal": self.alphas_normal, "reduce": self.alphas_reduce}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weights_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alphas_")]

    def arch_weights(self, cell_type: str) -> torch.Tensor:
        """Deterministic activated weights (edges, ops) of one cell type, with gradient to its
        alphas: what is displayed, stored, discretized and penalised."""
        return self.act(self.alphas()[cell_type])

    def all_arch_weights(self) -> dict[str, torch.Tensor]:
        return {ct: self.arch_weights(ct) for ct in CELL_TYPES}

    def sampled_arch_weights(self) -> dict[str, torch.Tensor]:
        """Weights of one training forward pass, with gradient to the alphas: a fresh sample
        per call for a stochastic activation (gumbel), else the deterministic weights."""
        return {ct: self.act.sample(self.alphas()[ct], self.sample_generator) for ct in CELL_TYPES}

    # ---- pruning mask ----------------------------------------------------------------
    def after_arch_update(self) -> list[tuple[str, int, int]]:
        """Applies the activation's post-step rule; returns newly pruned (cell, edge, op)."""
        newly = []
        for ct, alpha in self.alphas().items():
            old = self.masks[ct]
            new = self.act.after_step(alpha, old)
            for e, k in np.argwhere(old & ~new):
                newly.append((ct, int(e), int(k)))
            self.masks[ct] = new
        if newly:
            self._refresh_active()
        return newly

    def set_masks(self, masks: dict[str, np.ndarray]) -> None:
        self.masks = {ct: np.asarray(m, dtype=bool).copy() for ct, m in masks.items()}
        self._refresh_active()

    def _refresh_active(self) -> None:
        self._active = {ct: [list(np.flatnonzero(row)) for row in m] for ct, m in self.masks.items()}
        none = [k for k, p in enumerate(self.primitives) if p == "none"]  # adds exactly zero
        self._plans = {ct: build_plan(self._nodes, a, none) for ct, a in self._active.items()}
        self._active_count = int(sum(m.sum() for m in self.masks.values()))
        if self._arena is not None:
            self._arena.bind_grads(self._used_op_parameters())

    def use_weight_arena(self) -> WeightArena:
        """Holds the cells' op weights in one tensor for the fast path (``core.engine.arena``).
        Call it once the model is on its device and in its memory layout: a move afterwards
        would give the modules copies of their own, so it is refused (``_apply``)."""
        arena = WeightArena(arena_order(self.cells, self._plans))
        for cell in self.cells:
            cell._arena = arena
        self._arena = arena
        arena.bind_grads(self._used_op_parameters())
        return arena

    def _apply(self, fn, recurse=True):
        # .to(), .cuda(), .half() ... replace each Parameter's data: the modules would hold
        # copies while the fast path goes on reading the arena. Refused rather than diverging.
        if self._arena is not None:
            raise RuntimeError("the supernet's weights live in its weight arena: move or convert "
                               "it before use_weight_arena()")
        return super()._apply(fn, recurse)

    def _used_op_parameters(self) -> list[nn.Parameter]:
        """The cell-op weights the current mask computes."""
        return [p for cell in self.cells for e, ks in enumerate(self._active[cell.cell_type])
                for k in ks for p in cell._ops[e]._ops[k].parameters()]

    def active_op_count(self) -> int:
        """Ops still computed; kept with the mask so the loop reads it for free each iteration."""
        return self._active_count

    def mask_tensors(self) -> dict[str, torch.Tensor]:
        dev = self.alphas_normal.device
        # non_blocking: CUDA stages a pageable upload at once, so the host need not wait for it
        return {ct: torch.from_numpy(m).to(dev, self.alphas_normal.dtype, non_blocking=True)
                for ct, m in self.masks.items()}

    # ---- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None,
                weight_grads: bool = True) -> torch.Tensor:
        """x: (B, C_in, H, W) -> logits (B, classes). ``weights``: activated weights per cell
        type; pass them detached for a weight step so no gradient reaches the alphas. Without
        them, a module in training mode samples its weights, one in eval mode does not.
        ``weight_grads=False`` (an architecture step): the fast path's cell ops need no weight
        gradient, so their weights enter detached."""
        if weights is None:
            weights = self.sampled_arch_weights() if self.training else self.all_arch_weights()
        s0 = s1 = self.stem(x)
        fast = self.fast and self.training  # the fast path keeps no BN running statistics
        for cell in self.cells:
            ct = cell.cell_type
            s0, s1 = s1, cell(s0, s1, weights[ct], self._active[ct],
                              self._plans[ct] if fast else None, weight_grads)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))
