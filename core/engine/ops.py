"""Primitive operations of the DARTS CNN search space and their registry.

Follows DARTS (Liu et al., 2019) `operations.py`: the op keys are the genotype names, and the
module layout (``.op.1.weight`` ...) matches the reference so checkpoints map onto ours. The
supernet's fast path runs these ops batched over edges from their parameters
(``core.engine.batched``); their ``forward`` is the plain path and the evaluation networks'.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

OpFactory = Callable[[int, int, bool], nn.Module]
_OPS: dict[str, OpFactory] = {}

# Alpha-column order of the DARTS search space (docs/algorithms.md "Search space").
DARTS_PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

# What each op does, in a line (the op key on Home).
OP_DESCRIPTIONS: dict[str, str] = {
    "none": "zero: the edge passes nothing",
    "max_pool_3x3": "3x3 max pooling",
    "avg_pool_3x3": "3x3 average pooling",
    "skip_connect": "identity (a factorized reduce at stride 2)",
    "sep_conv_3x3": "3x3 separable convolution, twice",
    "sep_conv_5x5": "5x5 separable convolution, twice",
    "dil_conv_3x3": "3x3 dilated separable convolution (dilation 2)",
    "dil_conv_5x5": "5x5 dilated separable convolution (dilation 2)",
}

# Ops outside the search space, for evaluation networks of published cells only (NASNet-A,
# AmoebaNet-A in DARTS's genotypes.py); DARTS's operations.py builds them the same way.
EVAL_ONLY_OPS: dict[str, str] = {
    "sep_conv_7x7": "7x7 separable convolution, twice",
    "conv_7x1_1x7": "a 1x7 then a 7x1 convolution",
}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    def deco(factory: OpFactory) -> OpFactory:
        _OPS[name] = factory
        return factory

    return deco


def list_ops() -> list[str]:
    return list(_OPS)


def create_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    if name not in _OPS:
        raise KeyError(f"unknown operation {name!r}; valid: {', '.join(list_ops())}")
    return _OPS[name](C, stride, affine)


class ReLUConvBN(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked (depthwise, pointwise, BN) blocks, as in DARTS."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_in, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Conv7x1_1x7(nn.Sequential):
    """DARTS's ``conv_7x1_1x7``: ReLU, a 1x7 conv, a 7x1 conv, BN; a plain Sequential as there,
    so the parameter names (``.1.weight`` ...) match DARTS's checkpoints."""

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` op: multiplies by zero (strided on reduction edges)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset 1x1 stride-2 convolutions (DARTS)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # Pad odd sizes so both branches agree: (B, C, H, W) -> (B, C_out, ceil(H/2), ceil(W/2))
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return self.bn(out)


class Pool(nn.Module):
    """A 3x3 pool; in the search space followed by an affine=False BN (DARTS MixedOp)."""

    def __init__(self, kind: str, C: int, stride: int, affine: bool, with_bn: bool):
        super().__init__()
        if kind == "max":
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)
        else:
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        self.bn = nn.BatchNorm2d(C, affine=False) if with_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.bn(x) if self.bn is not None else x


# Search-space ops (affine=False) get the pool BN; evaluation ops (affine=True) do not,
# exactly as DARTS does in model_search.MixedOp versus model.Cell.
@register_op("none")
def _none(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@register_op("max_pool_3x3")
def _max_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return Pool("max", C, stride, affine, with_bn=not affine)


@register_op("avg_pool_3x3")
def _avg_pool(C: int, stride: int, affine: bool) -> nn.Module:
    return Pool("avg", C, stride, affine, with_bn=not affine)


@register_op("skip_connect")
def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)


@register_op("sep_conv_3x3")
def _sep3(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 3, stride, 1, affine=affine)


@register_op("sep_conv_5x5")
def _sep5(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 5, stride, 2, affine=affine)


@register_op("dil_conv_3x3")
def _dil3(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 3, stride, 2, 2, affine=affine)


@register_op("dil_conv_5x5")
def _dil5(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 5, stride, 4, 2, affine=affine)


@register_op("sep_conv_7x7")
def _sep7(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 7, stride, 3, affine=affine)


@register_op("conv_7x1_1x7")
def _conv7x1(C: int, stride: int, affine: bool) -> nn.Module:
    return Conv7x1_1x7(C, stride, affine=affine)


def reduction_layers(layers: int) -> tuple[int, int]:
    """The cells that halve the resolution, in the supernet and in evaluation networks alike
    (DARTS: one third and two thirds of the way)."""
    return layers // 3, 2 * layers // 3


def cell_plan(layers: int, C: int) -> list[tuple[bool, bool, int]]:
    """Per cell of a network: (reduction, the previous cell was a reduction, its channels C,
    doubled at each reduction)."""
    plan, reduction_prev = [], False
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        C = 2 * C if reduction else C
        plan.append((reduction, reduction_prev, C))
        reduction_prev = reduction
    return plan

