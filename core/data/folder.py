"""``folder``: ``<dir>/<class>/*.png`` image folders, with an optional ``test/`` part."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from core.data.images import (
    IMAGE_EXTENSIONS,
    TEST_FRACTION,
    TEST_SPLIT_SEED,
    DatasetError,
    ImageData,
    _check_size,
    _make,
    _stratified_split,
    default_data_dir,
)
from core.data.sources import register_dataset

_FOLDER_LAYOUT = (
    "expected <dir>/<class>/*.png|jpg|jpeg|bmp (20% of each class held out for test), "
    "or <dir>/train/<class>/... and <dir>/test/<class>/..."
)


def _class_files(root: Path) -> dict[str, list[Path]]:
    """Sorted class folder name -> sorted image files; folders without images and hidden ones
    (``.ipynb_checkpoints``) are skipped."""
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f for f in d.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if files:
            out[d.name] = files
    return out


def _read_images(files: list[Path], size: int) -> torch.Tensor:
    """(n, 3, size, size) uint8; each image converted to RGB and resized (bilinear) to a square."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                out[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DatasetError(f"{f}: cannot read image ({e})") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@register_dataset(
    "folder",
    description="your own images: <dir>/<class>/*.png (or <dir>/train and <dir>/test)",
    default_image_size=32,
    augment=True,
    needs_files=True,
)
def _load_folder(data_dir: Path | None, image_size: int | None, seed: int) -> ImageData:
    size = _check_size("folder", image_size, 32)
    root = Path(os.path.abspath(default_data_dir() if data_dir is None else data_dir))  # absolute in messages
    if not root.is_dir():
        raise DatasetError(f"folder dataset: {root} is not a directory; {_FOLDER_LAYOUT}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files, test_files = _class_files(root / "train"), _class_files(root / "test")
        classes = list(train_files)
        extra = sorted(set(test_files) - set(train_files))
        if extra:
            raise DatasetError(f"folder dataset: {root / 'test'} has classes not in train: {', '.join(extra)}")
        if not test_files:
            raise DatasetError(f"folder dataset: {root / 'test'} has no images; {_FOLDER_LAYOUT}")
    else:
        train_files, test_files = _class_files(root), {}
        classes = list(train_files)
    if len(classes) < 2:
        found = f"found {len(classes)} class folder(s) with images"
        raise DatasetError(f"folder dataset: {root}: {found}, need at least 2; {_FOLDER_LAYOUT}")
    index = {c: i for i, c in enumerate(classes)}

    def read(groups: dict[str, list[Path]]) -> tuple[torch.Tensor, torch.Tensor]:
        files = [f for c in groups for f in groups[c]]
        y = torch.tensor([index[c] for c in groups for _ in groups[c]], dtype=torch.int64)
        return _read_images(files, size), y

    x, y = read(train_files)
    if test_files:
        test_x, test_y = read(test_files)
        return _make("folder", x, y, test_x, test_y, classes)
    tr, te = _stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
    if len(te) == 0:
        raise DatasetError(f"folder dataset: {root}: too few images to hold out a test part; {_FOLDER_LAYOUT}")
    return _make("folder", x[tr], y[tr], x[te], y[te], classes)
