"""Depthwise convolutions as the fast path runs them on the CPU: the same numbers as
``F.conv2d(..., groups=C)``, with two rewrites that oneDNN's kernels reward.

- Taps that only ever meet the zero padding on a small map are dropped (a dilation-2 5x5 on a
  4x4 map is a dilation-2 3x3): their products are zero and so are their gradients.
- The weight gradient of a kernel 5 wide: oneDNN's depthwise weight-gradient kernel is fast for
  kernels up to 3 wide and several times slower beyond (micro-benchmarks of the kernel alone:
  docs/performance.md). It is computed as two narrower ones, columns 0-2 and 3-4, each on the
  input shifted and padded on one side only.
- The weight gradient on 2x2 maps (a 3x3 there: the polyphase dilated convs of 4x4 maps), where
  oneDNN's kernel is slowest: every (output pixel, input pixel) product of the gradient and the
  input, summed over the batch, is one broadcast multiply and sum; a fixed 0/1 matrix then adds
  up the pairs each tap joins.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# The split weight gradient pays from 8x8 maps up; below, its two pads and calls cost more.
SPLIT_WGRAD_MIN_PIXELS = 64
# The weight gradient from all pixel products pays on maps this small (a 3x3 on 2x2 maps: five
# times faster); on 4x4 maps the products fill megabytes and the real step gained nothing.
TINY_MAX_PIXELS = 4


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-d tensor laid out so (the search's on the CPU), else the default."""
    return (torch.channels_last if t.is_contiguous(memory_format=torch.channels_last)
            and not t.is_contiguous() else torch.contiguous_format)


def cut_taps(k: int, dilation: int, padding: int, stride: int, n: int) -> int:
    """Taps to drop from each side of a k x k kernel because, on an n x n map, they only ever
    meet the zero padding."""
    out = (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1

    def reaches(a: int) -> bool:
        o = a * dilation - padding  # where tap a reads, from the output pixel's own position
        return o <= n - 1 and o + (out - 1) * stride >= 0

    cut = 0
    while cut < (k - 1) // 2 and not reaches(cut) and not reaches(k - 1 - cut):
        cut += 1
    return cut


def depthwise(x: torch.Tensor, weight: torch.Tensor, *, stride: int = 1, padding: int = 0,
              dilation: int = 1) -> torch.Tensor:
    """A depthwise conv (square kernel, one channel per group). x: (B, C, H, W); weight: (C, 1,
    k, k)."""
    k, H, W = weight.shape[-1], x.shape[-2], x.shape[-1]
    cut = cut_taps(k, dilation, padding, stride, H) if H == W else 0
    if cut:
        weight = weight[:, :, cut:k - cut, cut:k - cut]
        padding -= cut * dilation
        k -= 2 * cut
    if (k == 5 and dilation == 1 and padding == 2 and weight.requires_grad and x.device.type == "cpu"
            and H * W >= SPLIT_WGRAD_MIN_PIXELS and x.dtype == weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")):  # (autocast would change the dtypes inside)
        return _Depthwise5.apply(x, weight, stride)
    if (H * W <= TINY_MAX_PIXELS and H * W < k * k and weight.requires_grad and x.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")):
        return _DepthwiseTiny.apply(x, weight, stride, padding, dilation)
    return F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation,
                    groups=weight.shape[0])


def _wgrad(g: torch.Tensor, x: torch.Tensor, shape: tuple[int, ...], stride: int,
           padding: tuple[int, int]) -> torch.Tensor:
    C = shape[0]
    return torch.ops.aten.convolution_backward(
        g, x, x.new_empty(shape), None, [stride, stride], list(padding), [1, 1], False, [0, 0], C,
        [False, True, False])[1]


class _Depthwise5(torch.autograd.Function):
    """A 5x5 depthwise conv, padding 2, whose weight gradient is two narrower ones."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return F.conv2d(x, weight, stride=stride, padding=2, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        s, C = ctx.stride, weight.shape[0]
        fmt = memory_format_of(x)
        g = g.contiguous(memory_format=fmt)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                g, x, weight, None, [s, s], [2, 2], [1, 1], False, [0, 0], C,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            # columns 0-2 read offsets -2..0: the input padded 2 on the left only; columns 3-4
            # read +1..+2: the input from its second column, padded 2 on the right only
            left = F.pad(x, (2, 0, 0, 0)).contiguous(memory_format=fmt)
            right = F.pad(x[..., 1:], (0, 2, 0, 0)).contiguous(memory_format=fmt)
            gw = torch.cat([_wgrad(g, left, (C, 1, 5, 3), s, (2, 0)),
                            _wgrad(g, right, (C, 1, 5, 2), s, (2, 0))], -1)
        return gx, gw, None


@functools.lru_cache(maxsize=64)
def _tap_pairs(H: int, W: int, k: int, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """(Ho*Wo*H*W, k*k) 0/1: which (output pixel, input pixel) pair each tap of the kernel joins."""
    Ho = (H + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    Wo = (W + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    pairs = torch.zeros(Ho * Wo, H * W, k * k)
    for oh in range(Ho):
        for ow in range(Wo):
            for i in range(k):
                for j in range(k):
                    ih, iw = oh * stride + i * dilation - padding, ow * stride + j * dilation - padding
                    if 0 <= ih < H and 0 <= iw < W:
                        pairs[oh * Wo + ow, ih * W + iw, i * k + j] = 1.0
    return pairs.view(-1, k * k)


class _DepthwiseTiny(torch.autograd.Function):
    """A depthwise conv on a map with fewer pixels than taps, its weight gradient from the
    products of every output pixel's gradient with every input pixel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        return F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation,
                        groups=weight.shape[0])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        s, p, d = ctx.geometry
        N, C, H, W = x.shape
        k = weight.shape[-1]
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                g.contiguous(memory_format=memory_format_of(x)), x, weight, None, [s, s], [p, p],
                [d, d], False, [0, 0], C, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            # (N, Ho*Wo, 1, C) * (N, 1, H*W, C), summed over the batch: views of channels-last
            # tensors, so the only pass over memory is the product's
            gp = g.permute(0, 2, 3, 1).reshape(N, -1, 1, C)
            xp = x.permute(0, 2, 3, 1).reshape(N, 1, H * W, C)
            products = (gp * xp).sum(0).view(-1, C)
            pairs = _tap_pairs(H, W, k, s, p, d).to(products.device)
            gw = (pairs.t() @ products).t().reshape(C, 1, k, k)
        return gx, gw, None, None, None
