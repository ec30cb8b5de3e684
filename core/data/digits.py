"""``digits``: scikit-learn's bundled 8x8 handwritten digits (no download), the default."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import torch

from core.data.images import (
    TEST_FRACTION,
    TEST_SPLIT_SEED,
    ImageData,
    _check_size,
    _make,
    _resize,
    _stratified_split,
)
from core.data.sources import register_dataset


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) pixels in 0..16 and (1797,) labels: scikit-learn's bundled digits.

    ``load_digits`` only reads ``sklearn/datasets/data/digits.csv.gz`` (64 pixels + label per
    row), but ``import sklearn`` costs ~2 s (scipy); read the file directly when it is where
    load_digits keeps it, and fall back to load_digits otherwise."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    for root in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")  # (1797, 65)
            if table.shape == (1797, 65):
                return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


@register_dataset(
    "digits",
    description="scikit-learn's 1797 handwritten 8x8 digits, upsampled; bundled, no download",
    default_image_size=16,
)
def _load_digits(data_dir: Path | None, image_size: int | None, seed: int) -> ImageData:
    size = _check_size("digits", image_size, 16)
    images, target = _digits_arrays()
    x = torch.from_numpy(images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)  # (1797, 1, 8, 8)
    x = _resize(x, size)
    y = torch.from_numpy(target.astype(np.int64))
    # The data never changes, so neither does the split: `seed` is ignored on purpose.
    tr, te = _stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
    return _make("digits", x[tr], y[tr], x[te], y[te], [str(c) for c in range(10)])
