"""``shapes``: generated 10-class RGB shapes and textures (no download)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from core.data.images import TEST_SPLIT_SEED, ImageData, _check_size, _make
from core.data.sources import register_dataset

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "ring",
    "square",
    "square_outline",
    "triangle",
    "cross",
    "horizontal_stripes",
    "vertical_stripes",
    "diagonal_stripes",
    "checkerboard",
)
SHAPES_TRAIN, SHAPES_TEST = 3000, 1000


def _shape_masks(cls: int, n: int, S: int, rng: np.random.Generator) -> np.ndarray:
    """(n, S, S) float32 foreground masks in [0, 1] for class ``cls``, drawn at 2x resolution
    and average-pooled so edges are antialiased at 16 px."""
    R = 2 * S
    coords = (np.arange(R, dtype=np.float32) + 0.5) / R  # pixel centres in [0, 1]
    u = coords[None, None, :]  # (1, 1, R) x
    v = coords[None, :, None]  # (1, R, 1) y
    px = 1.0 / S  # one output pixel in unit coordinates
    if cls < 6:  # an object at a random place and size on a plain background
        r = rng.uniform(0.22, 0.40, n).astype(np.float32)[:, None, None]  # (n, 1, 1)
        cx = rng.uniform(0.0, 1.0, n).astype(np.float32)[:, None, None] * (1 - 1.8 * r) + 0.9 * r
        cy = rng.uniform(0.0, 1.0, n).astype(np.float32)[:, None, None] * (1 - 1.8 * r) + 0.9 * r
        dx, dy = u - cx, v - cy  # (n, R, R)
        if cls == 0:
            m = dx**2 + dy**2 <= r**2
        elif cls == 1:
            t = np.maximum(0.28 * r, 1.3 * px)  # ring thickness, never under ~1 px
            m = np.abs(np.sqrt(dx**2 + dy**2) - (r - t / 2)) <= t / 2
        elif cls == 2:
            m = np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
        elif cls == 3:
            t = np.maximum(0.28 * r, 1.3 * px)
            cheb = np.maximum(np.abs(dx), np.abs(dy))
            m = (cheb <= 0.85 * r) & (cheb >= 0.85 * r - t)
        elif cls == 4:  # apex up, base below the centre
            m = (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= 0.62 * (dy + r))
        else:  # plus sign
            w = np.maximum(0.22 * r, 0.75 * px)
            m = ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    else:  # a texture over the whole image, random period and phase
        # 3..5 px at 16x16; in image units, so a 32x32 set is the same scene drawn finer.
        period = (rng.uniform(3.0, 5.0, n) / 16.0).astype(np.float32)[:, None, None]
        phase = rng.uniform(0.0, 1.0, (2, n)).astype(np.float32)[:, :, None, None]
        if cls == 6:
            m = (v / period + phase[0]) % 1.0 < 0.5
        elif cls == 7:
            m = (u / period + phase[0]) % 1.0 < 0.5
        elif cls == 8:  # either diagonal direction
            sign = np.where(rng.random(n) < 0.5, 1.0, -1.0).astype(np.float32)[:, None, None]
            m = ((u + sign * v) / (period * math.sqrt(2.0)) + phase[0]) % 1.0 < 0.5
        else:
            cell = period * 0.6  # squares of ~2..3 px at 16x16
            m = (np.floor(u / cell + phase[0]) + np.floor(v / cell + phase[1])) % 2 == 0
    m = np.broadcast_to(m, (n, R, R)).astype(np.float32)  # (n, 2S, 2S)
    # 2x2 average pool as four strided views: much faster than a reshape-mean in numpy.
    return (m[:, 0::2, 0::2] + m[:, 0::2, 1::2] + m[:, 1::2, 0::2] + m[:, 1::2, 1::2]) * 0.25  # (n, S, S)


def _generate_shapes(n: int, S: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, S, S) uint8 images and (n,) int64 labels, classes balanced and shuffled."""
    y = rng.permutation(np.arange(n) % len(SHAPE_CLASSES)).astype(np.int64)
    masks = np.empty((n, S, S), dtype=np.float32)
    for c in range(len(SHAPE_CLASSES)):
        idx = np.nonzero(y == c)[0]
        masks[idx] = _shape_masks(c, len(idx), S, rng)
    # Colours: light on dark or dark on light, any hue, so the contrast is always visible.
    dark = rng.uniform(0.0, 0.4, (n, 3)).astype(np.float32)
    light = rng.uniform(0.6, 1.0, (n, 3)).astype(np.float32)
    flip = (rng.random(n) < 0.5)[:, None]
    fg, bg = np.where(flip, dark, light), np.where(flip, light, dark)  # (n, 3)
    img = (fg - bg)[:, :, None, None] * masks[:, None] + bg[:, :, None, None]  # (n, 3, S, S)
    img += 0.03 * rng.standard_normal(img.shape, dtype=np.float32)  # a little sensor noise
    img *= 255.0
    return np.clip(np.rint(img, out=img), 0, 255, out=img).astype(np.uint8), y


@register_dataset(
    "shapes",
    description="generated 10-class RGB shapes and stripe textures at random place, size and colour",
    default_image_size=16,
)
def _load_shapes(data_dir: Path | None, image_size: int | None, seed: int) -> ImageData:
    size = _check_size("shapes", image_size, 16)
    # The train part follows `seed`; the test part comes from a fixed stream so test accuracy is
    # comparable across seeds. Distinct spawn keys keep the two streams apart for every seed.
    train_x, train_y = _generate_shapes(SHAPES_TRAIN, size, np.random.default_rng([seed, 1]))
    test_x, test_y = _generate_shapes(SHAPES_TEST, size, np.random.default_rng([TEST_SPLIT_SEED, 2]))
    return _make(
        "shapes",
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        list(SHAPE_CLASSES),
    )
