"""``ImageData``, the one form every dataset loads into, and the helpers loaders share:
resizing, per-channel statistics, a stratified held-out split."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_DATASET = "digits"
DATA_DIR_ENV = "PRIME_EXPLORER_DATA"
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
# Held-out fraction when a dataset ships no test part (digits, folder without test/), drawn with
# this seed whatever the run's seed is, so the test set never changes between runs.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 0


class DatasetError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# The container
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor  # (M, C, H, W) uint8
    test_y: torch.Tensor  # (M,) int64
    classes: list[str]
    mean: tuple[float, ...]  # per channel, of train_x / 255
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        # (C, 1, 1) mean and std per device, so normalizing a batch copies nothing to the device.
        self._stats_on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for part, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DatasetError(f"{self.name}: {part}_x must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DatasetError(f"{self.name}: {part}_y must be int64 ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
        if self.test_x.shape[1:] != self.train_x.shape[1:]:
            raise DatasetError(f"{self.name}: train and test images differ in shape")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise DatasetError(f"{self.name}: mean/std need one value per channel ({self.in_channels})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` as float32 on x's device; x is (B, C, H, W) or (C, H, W)."""
        key = str(x_uint8.device)
        if key not in self._stats_on:
            mean = torch.tensor(self.mean, dtype=torch.float32, device=x_uint8.device)
            std = torch.tensor(self.std, dtype=torch.float32, device=x_uint8.device)
            self._stats_on[key] = (mean.view(-1, 1, 1), std.view(-1, 1, 1))  # (C, 1, 1)
        mean, std = self._stats_on[key]
        return (x_uint8.to(torch.float32) / 255.0 - mean) / std

    def split_train(self, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Index tensors (weight part, arch part) into train_x: a seeded permutation of the
        train indices, the first ``round(fraction * N)`` for weights, the rest for alphas."""
        n = int(self.train_x.shape[0])
        k = round(fraction * n)
        if not 0 < k < n:
            raise DatasetError(
                f"{self.name}: train fraction {fraction} of {n} images leaves an empty part "
                f"({k} for weights, {n - k} for architecture); both need at least one image"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return perm[:k].clone(), perm[k:].clone()


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of ``x / 255`` from a 256-bin histogram per channel, in
    chunks, so CIFAR's 150M pixels never become one float64 copy."""
    C = x.shape[1]
    counts = torch.zeros(C, 256, dtype=torch.float64)  # (C, 256)
    for start in range(0, x.shape[0], 4096):
        chunk = x[start : start + 4096]
        for c in range(C):
            counts[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0  # (256,)
    total = counts.sum(dim=1).clamp_min(1.0)  # (C,)
    mean = (counts * values).sum(dim=1) / total
    var = (counts * values**2).sum(dim=1) / total - mean**2
    # A constant channel would divide by zero; leave it unscaled instead.
    std = var.clamp_min(0.0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _make(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: list[str],
) -> ImageData:
    train_x, test_x = train_x.contiguous(), test_x.contiguous()
    mean, std = _channel_stats(train_x)
    return ImageData(name, train_x, train_y.to(torch.int64), test_x, test_y.to(torch.int64), classes, mean, std)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) uint8 or 0..255 float images to (N, C, size, size) uint8;
    antialiased when shrinking so downsampled stripes do not alias."""
    if x.shape[-2:] == (size, size) and x.dtype == torch.uint8:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    shrink = size < max(x.shape[-2:])
    for start in range(0, x.shape[0], 2048):  # chunks bound the float32 copy
        chunk = x[start : start + 2048].to(torch.float32)
        if chunk.shape[-2:] != (size, size):
            chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
        out[start : start + 2048] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _check_size(name: str, image_size: int | None, default: int) -> int:
    size = default if image_size is None else image_size
    if not isinstance(size, int) or isinstance(size, bool) or not 4 <= size <= 512:
        raise DatasetError(f"{name}: image_size must be an int in 4..512, got {size!r}")
    return size


def _stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices), both sorted: per class, ``round(fraction * n_c)`` drawn
    for test (at least one, and never the class's last image)."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = 0 if len(idx) < 2 else min(max(1, round(fraction * len(idx))), len(idx) - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def default_data_dir() -> Path:
    """``$PRIME_EXPLORER_DATA`` or ``./data``, read at call time."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")
