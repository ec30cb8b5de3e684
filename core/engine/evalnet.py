"""The discrete evaluation network built from a Genotype, and its parameter count.

Follows DARTS (Liu et al., 2019) `model.py` (`Cell`, `AuxiliaryHeadCIFAR`, `NetworkCIFAR`):
stem conv3x3 (in_channels -> 3C) + BN, `layers` cells with reductions at layers//3 and
2*layers//3 (channels double there), an optional auxiliary head after cell 2*layers//3,
global average pool, linear classifier. Module names match DARTS (`stem`, `cells.{i}._ops.{k}`,
`cells.{i}.preprocess0`, `auxiliary_head`, `global_pooling`, `classifier`) so DARTS
checkpoints map onto ours. `architecture_size` is the "size" of a genotype shown next to it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.engine.genotype import Genotype
from core.engine.ops import (
    FactorizedReduce,
    Identity,
    ReLUConvBN,
    cell_plan,
    create_op,
    list_ops,
    reduction_layers,
)

STEM_MULTIPLIER = 3  # DARTS: the stem widens to 3C
MIN_LAYERS = 3  # fewer would make the first cell (or every cell) a reduction cell
AUX_PREFIX = "auxiliary_head"


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """DARTS drop path: zero whole samples with prob `drop_prob`, scale survivors by 1/keep.

    Out of place (DARTS works in place), so it is safe on tensors autograd still needs.
    """
    if drop_prob <= 0.0:
        return x
    keep_prob = 1.0 - drop_prob
    # One Bernoulli draw per sample, broadcast over (C, H, W): (B, 1, 1, 1)
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep_prob)
    return x * mask / keep_prob


def validate_genotype(genotype: Genotype) -> None:
    """Raises ValueError unless both cells can be built: known ops, inputs that point at
    earlier states, concat indices that exist, and per layout: 2 pairs per node (DARTS), or
    nodes >= 2 and at least one computed node in concat (FairDARTS triples)."""
    valid_ops = list_ops()
    for cell_type in ("normal", "reduce"):
        pairs = genotype.cell(cell_type)
        concat = genotype.concat(cell_type)
        darts = genotype.is_darts_layout(cell_type)
        if darts and (not pairs or len(pairs) % 2):
            raise ValueError(f"{cell_type} cell has {len(pairs)} (op, input) pairs; a genotype "
                             f"needs exactly 2 per node (an even, non-zero count), or FairDARTS "
                             f"(op, node, input) triples with at least one computed node")
        steps = genotype.steps(cell_type)
        for k, ((op, inp), node) in enumerate(zip(pairs, genotype.nodes_of(cell_type))):
            if op not in valid_ops:
                raise ValueError(f"{cell_type} cell, pair {k}: unknown operation {op!r}; "
                                 f"valid: {', '.join(valid_ops)}")
            if node < 2:
                raise ValueError(f"{cell_type} cell, pair {k}: node {node} is a cell input; "
                                 f"intermediate nodes are states 2 and up")
            if not 0 <= inp < node:
                raise ValueError(f"{cell_type} cell, pair {k}: node {node - 2} can only take inputs "
                                 f"0..{node - 1} (0 = c_{{k-2}}, 1 = c_{{k-1}}), got {inp}")
        if not concat:
            raise ValueError(f"{cell_type}_concat is empty")
        bad = [i for i in concat if not 0 <= i < 2 + steps]
        if bad:
            raise ValueError(f"{cell_type}_concat has indices {bad} outside 0..{1 + steps}")
        if not genotype.output_states(cell_type):
            raise ValueError(f"{cell_type} cell computes no node of its concat {list(concat)} "
                             f"(no kept input reaches them): the cell would output nothing")


def _used_pairs(genotype: Genotype, cell_type: str) -> list[tuple[str, int, int]]:
    """(op, node, input) of each pair the cell computes, in genotype order: a pair whose input
    is a node that is never computed is left out. DCOCell builds such an op and never calls it;
    building it would only add dead parameters to the count (in the seven published FairDARTS
    cells every such op is a skip_connect, so the counts agree either way)."""
    exists = {0, 1, *genotype.computed_nodes(cell_type)}
    return [(op, node, inp)
            for (op, inp), node in zip(genotype.cell(cell_type), genotype.nodes_of(cell_type))
            if inp in exists]


class Cell(nn.Module):
    """One discrete cell: each node sums the ops applied to its inputs.

    DARTS layout: DARTS model.Cell, two ops per node, drop path on each non-identity edge.
    FairDARTS triples: model.DCOCell, any number of ops per node, a node without a computed
    input is skipped, drop path on each node's output, and the output concatenates the
    computed nodes of concat (``Genotype.output_states``), so ``multiplier`` is their count.
    A FairDARTS cell that keeps two inputs on every node is held in the DARTS layout
    (``Genotype``) and built as DARTS's Cell: the same parameters and eval-mode function, drop
    path per edge instead of per node.
    """

    def __init__(self, genotype: Genotype, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        # The previous cell halved the resolution, so c_{k-2} must be halved too.
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=True)
        self.reduction = reduction
        cell_type = "reduce" if reduction else "normal"
        used = _used_pairs(genotype, cell_type)
        self._darts_layout = genotype.is_darts_layout(cell_type)
        self._concat = genotype.output_states(cell_type)
        self.multiplier = len(self._concat)
        self._indices = tuple(inp for _, _, inp in used)
        # (node, indices of its ops) in node order: a node's inputs are always earlier nodes.
        self._plan = tuple((node, tuple(k for k, (_, n, _) in enumerate(used) if n == node))
                           for node in sorted({n for _, n, _ in used}))
        self._ops = nn.ModuleList(
            # Only edges from the two cell inputs are strided in a reduction cell.
            create_op(op, C, 2 if reduction and inp < 2 else 1, affine=True)
            for op, _, inp in used
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}  # each (B, C, H, W)
        drop = self.training and drop_prob > 0.0
        for node, ks in self._plan:
            out = 0
            for k in ks:
                op = self._ops[k]
                h = op(states[self._indices[k]])
                # DARTS: identity edges are never dropped, so a skip always carries signal.
                if drop and self._darts_layout and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                out = out + h
            if drop and not self._darts_layout:
                out = drop_path(out, drop_prob)  # DCOCell drops the node's output
            states[node] = out
        return torch.cat([states[i] for i in self._concat], dim=1)  # (B, multiplier*C, H, W)


class _AuxPool(nn.Module):
    """DARTS's AvgPool2d(5, stride=3) where it yields 2x2, else AdaptiveAvgPool2d(2).

    The head's 2x2 conv and Linear(768) need exactly a 2x2 map after this pool. DARTS's pool
    gives that only for 8..10-pixel maps (CIFAR's 32x32 input gives 8x8 here); a map smaller
    than 5x5 (16x16 or 8x8 inputs) would make it fail, and 5..7 or >10 would too. The adaptive
    pool has no parameters, so the count and the checkpoint keys (`features.1` has none) are
    unchanged; the choice is made per call from the actual map size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.darts_pool = nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if 8 <= h <= 10 and 8 <= w <= 10:
            return self.darts_pool(x)
        return F.adaptive_avg_pool2d(x, 2)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS AuxiliaryHeadCIFAR: a small classifier on the 8x8 (for CIFAR) features."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        # ReLUs are not in place (DARTS's are): the head's input is s1, which later cells still
        # read. Same values either way (those cells start with a ReLU), but no aliasing.
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            _AuxPool(),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 768, 1, 1)
        return self.classifier(x.flatten(1))


class EvalNetwork(nn.Module):
    """DARTS NetworkCIFAR built from a genotype; `drop_path_prob` is set by the trainer."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool,
                 genotype: Genotype, in_channels: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        if layers < MIN_LAYERS:
            raise ValueError(f"layers must be >= {MIN_LAYERS} (reductions sit at layers//3 and "
                             f"2*layers//3), got {layers}")
        if C < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError(f"C, num_classes and in_channels must be positive, got "
                             f"{C}, {num_classes}, {in_channels}")
        validate_genotype(genotype)
        self.genotype = genotype
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)

        C_curr = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr),
        )
        C_prev_prev, C_prev = C_curr, C_curr
        self._aux_index = reduction_layers(layers)[1]
        C_to_auxiliary = C_prev
        self.cells = nn.ModuleList()
        for i, (reduction, reduction_prev, C_curr) in enumerate(cell_plan(layers, C)):
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self._aux_index:
                C_to_auxiliary = C_prev
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_to_auxiliary, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, logits_aux); logits_aux is None unless training with the auxiliary head."""
        logits_aux = None
        s0 = s1 = self.stem(x)  # (B, 3C, H, W)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_index and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)  # (B, num_classes)
        out = self.global_pooling(s1)  # (B, C_prev, 1, 1)
        logits = self.classifier(out.flatten(1))  # (B, num_classes)
        return logits, logits_aux


def count_parameters(module: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Trainable parameters; the auxiliary head is left out by default, as DARTS reports."""
    return sum(
        p.numel()
        for name, p in module.named_parameters()
        if p.requires_grad and not (exclude_auxiliary and name.split(".")[0] == AUX_PREFIX)
    )


_SIZE_CACHE: dict[tuple[str, int, int, int, int], int] = {}
_SIZE_CACHE_MAX = 256  # the search asks once per genotype change; a few hundred is plenty


def architecture_size(genotype: Genotype, C: int = 36, num_classes: int = 10,
                      layers: int = 20, in_channels: int = 3) -> int:
    """Parameters of the EvalNetwork (no auxiliary head) for this genotype, cached.

    Counted part by part (stem, preprocessing, each chosen op, classifier) from per-op counts
    that are themselves cached, so a genotype change during a search costs microseconds;
    tests hold it equal to ``count_parameters(EvalNetwork(...))``.
    """
    key = (str(genotype), C, num_classes, layers, in_channels)  # in_channels sizes the stem
    if key in _SIZE_CACHE:
        return _SIZE_CACHE[key]
    validate_genotype(genotype)
    C_curr = STEM_MULTIPLIER * C
    total = in_channels * C_curr * 9 + 2 * C_curr  # stem conv + affine BN
    C_pp, C_p = C_curr, C_curr
    for reduction, _, C_curr in cell_plan(layers, C):
        cell_type = "reduce" if reduction else "normal"
        # preprocess0: ReLUConvBN 1x1, or FactorizedReduce after a reduction (two 1x1 convs to
        # C/2 each): the same count either way, plus the affine BN
        total += C_pp * C_curr + 2 * C_curr
        total += C_p * C_curr + 2 * C_curr  # preprocess1
        for op, _, inp in _used_pairs(genotype, cell_type):
            stride = 2 if reduction and inp < 2 else 1
            total += _op_size(op, C_curr, stride)
        C_pp, C_p = C_p, len(genotype.output_states(cell_type)) * C_curr
    total += C_p * num_classes + num_classes  # classifier
    if len(_SIZE_CACHE) >= _SIZE_CACHE_MAX:
        _SIZE_CACHE.pop(next(iter(_SIZE_CACHE)))  # oldest first
    _SIZE_CACHE[key] = total
    return total


_OP_SIZE_CACHE: dict[tuple[str, int, int], int] = {}


def _op_size(op: str, C: int, stride: int) -> int:
    key = (op, C, stride)
    if key not in _OP_SIZE_CACHE:
        _OP_SIZE_CACHE[key] = count_parameters(create_op(op, C, stride, affine=True))
    return _OP_SIZE_CACHE[key]
