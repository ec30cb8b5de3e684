"""The depthwise weight gradient alone, per kernel width, channels-last, one thread: oneDNN's
5x5 against the split the fast path uses (core/engine/depthwise.py), ms per call.

    python scripts/perf/depthwise_wgrad.py [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.engine.depthwise import _Depthwise5  # noqa: E402

CL = torch.channels_last


def _ms(f, n: int = 30) -> float:
    for _ in range(3):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e3


def _wgrad(g, x, kh, kw):
    C = x.shape[1]
    w = torch.empty(C, 1, kh, kw)
    return torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [kh // 2, kw // 2], [1, 1],
                                               False, [0, 0], C, [False, True, False])[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(ap.parse_args().threads)
    for B, C, H in [(32, 32, 16), (32, 64, 8), (32, 128, 4), (64, 64, 32)]:
        x = torch.randn(B, C, H, H).contiguous(memory_format=CL)
        g = torch.randn(B, C, H, H).contiguous(memory_format=CL)
        w = torch.randn(C, 1, 5, 5, requires_grad=True)

        def split():
            y = _Depthwise5.apply(x, w, 1)
            torch.autograd.grad(y, w, g)

        row = {f"{kh}x{kw}": _ms(lambda: _wgrad(g, x, kh, kw)) for kh, kw in [(3, 3), (5, 3), (3, 5), (5, 5)]}
        row["5x5 split (fwd+wgrad)"] = _ms(split)
        print((B, C, H, H), " ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
