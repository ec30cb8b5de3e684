"""``cifar10`` / ``cifar100``: the standard python pickle batches the user already has, read
through a restricted unpickler that loads numpy arrays and plain containers only."""
from __future__ import annotations

import importlib
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.images import (
    DATA_DIR_ENV,
    DatasetError,
    ImageData,
    _check_size,
    _make,
    _resize,
    default_data_dir,
)
from core.data.sources import register_dataset


def _numpy_global(modules: tuple[str, ...], name: str) -> Any:
    for module in modules:  # numpy 2 moved numpy.core to numpy._core
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise DatasetError(f"numpy has no {name} in {modules}")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Exactly the globals numpy arrays pickle with (protocols 0..5, numpy 1.x and 2.x names),
    plus ``_codecs.encode``, which Python 3 uses for bytes at protocols 0..2. Each maps to the
    object in the installed numpy, so old ``numpy.core`` names never touch the deprecated shim."""
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for submodule, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")):
        obj = _numpy_global((f"numpy._core.{submodule}", f"numpy.core.{submodule}"), name)
        table[(f"numpy._core.{submodule}", name)] = table[(f"numpy.core.{submodule}", name)] = obj
    table[("_codecs", "encode")] = _latin1_encode
    return table


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes (``encode(str, 'latin1')``), no other codec."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise DatasetError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads numpy arrays, lists, dicts, bytes, strings and numbers; refuses every other
    global, so a tampered batch file cannot run code when it is read."""

    def __init__(self, file: io.BufferedIOBase, path: Path):
        super().__init__(file, encoding="bytes")  # the batches were pickled by Python 2
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise DatasetError(
            f"{self.path}: the file tried to load the callable {module}.{name} and was refused; "
            "CIFAR batches hold only numpy arrays, lists, dicts, bytes and numbers"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError(f"{self.path}: the file uses persistent ids and was refused")


def _read_batch(path: Path) -> dict[str, Any]:
    """One pickled batch as a dict with str keys (py2 files have bytes keys)."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, path).load()
    except DatasetError:
        raise
    # A corrupt file fails in many ways (bad opcodes, lengths, memo keys); all mean "unreadable".
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
            MemoryError, OverflowError, RecursionError) as e:
        raise DatasetError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _text(s: Any) -> str:
    return s.decode("utf-8", errors="replace") if isinstance(s, bytes) else str(s)


def _batch_arrays(path: Path, batch: dict[str, Any], label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 32, 32) uint8 images and (n,) int64 labels of one batch, checked."""
    if "data" not in batch or label_key not in batch:
        raise DatasetError(f"{path}: missing key 'data' or {label_key!r} (has {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or data.dtype.kind not in "ui":
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be an integer array (n, 3072), got {desc}")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise DatasetError(f"{path}: pixel values outside 0..255")
    labels = np.asarray(batch[label_key])
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "ui":
        raise DatasetError(f"{path}: {label_key!r} must be {data.shape[0]} integers")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: labels outside 0..{num_classes - 1}")
    # Rows are channel-major: 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return x, torch.from_numpy(labels.astype(np.int64))


@dataclass(frozen=True)
class _CifarLayout:
    name: str
    title: str
    folder: str  # the folder the archive extracts to
    archive: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str
    num_classes: int


CIFAR10 = _CifarLayout(
    "cifar10", "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
    tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta", "labels", "label_names", 10,
)
CIFAR100 = _CifarLayout(
    "cifar100", "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
    ("train",), "test", "meta", "fine_labels", "fine_label_names", 100,
)


def _find_cifar(layout: _CifarLayout, data_dir: Path | None) -> Path:
    root = Path(os.path.abspath(default_data_dir() if data_dir is None else data_dir))  # absolute in messages
    candidates = [root, root / layout.folder]
    needed = (*layout.train, layout.test)
    for d in candidates:
        if all((d / f).is_file() for f in needed):
            return d
    looked = "\n".join(
        f"  {d}" + ("" if not d.is_dir() else f" (missing: {', '.join(f for f in needed if not (d / f).is_file())})")
        for d in candidates
    )
    raise DatasetError(
        f"{layout.title} not found. Looked in:\n{looked}\n"
        f"Download the {layout.title} python version ({layout.archive} from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html), extract it so that "
        f"{root / layout.folder / needed[0]} exists, or pass --data-dir (or set ${DATA_DIR_ENV}) "
        f"to the folder that holds {layout.folder}."
    )


def _load_cifar(layout: _CifarLayout, data_dir: Path | None, image_size: int | None) -> ImageData:
    size = _check_size(layout.name, image_size, 32)
    folder = _find_cifar(layout, data_dir)
    parts = [_batch_arrays(folder / f, _read_batch(folder / f), layout.label_key, layout.num_classes) for f in layout.train]
    train_x, train_y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    test_x, test_y = _batch_arrays(folder / layout.test, _read_batch(folder / layout.test), layout.label_key, layout.num_classes)
    classes = [str(i) for i in range(layout.num_classes)]  # if the meta file is absent
    if (folder / layout.meta).is_file():
        names = _read_batch(folder / layout.meta).get(layout.names_key)
        if not isinstance(names, list) or len(names) != layout.num_classes:
            raise DatasetError(f"{folder / layout.meta}: {layout.names_key!r} must list {layout.num_classes} names")
        classes = [_text(s) for s in names]
    return _make(layout.name, _resize(train_x, size), train_y, _resize(test_x, size), test_y, classes)


@register_dataset(
    "cifar10",
    description="CIFAR-10 (50k/10k 32x32 RGB, 10 classes) from your cifar-10-batches-py folder",
    default_image_size=32,
    augment=True,
    needs_files=True,
)
def _load_cifar10(data_dir: Path | None, image_size: int | None, seed: int) -> ImageData:
    return _load_cifar(CIFAR10, data_dir, image_size)


@register_dataset(
    "cifar100",
    description="CIFAR-100 (50k/10k 32x32 RGB, 100 fine classes) from your cifar-100-python folder",
    default_image_size=32,
    augment=True,
    needs_files=True,
)
def _load_cifar100(data_dir: Path | None, image_size: int | None, seed: int) -> ImageData:
    return _load_cifar(CIFAR100, data_dir, image_size)
