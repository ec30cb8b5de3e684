"""Image datasets for the architecture search, their registry, and the batch stream.

Every dataset loads into one ``ImageData``: uint8 images ``(N, C, H, W)`` and int64 labels for a
train part and a fixed test part, plus per-channel mean/std of the train part. The search splits
the train part in two (DARTS, Liu et al. 2019, Sec. 2.3: weights on one half, alphas on the
other) with ``ImageData.split_train`` and draws batches with ``BatchStream``.

Datasets: ``digits`` (scikit-learn's bundled 8x8 digits, no download, the default), ``shapes``
(generated 10-class RGB shapes and textures), ``cifar10`` / ``cifar100`` (the standard python
pickle batches, read through a restricted unpickler that loads numpy arrays and plain
containers only), and ``folder`` (``<dir>/<class>/*.png`` image folders).
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.registry import Registry, UnknownNameError

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


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

Loader = Callable[[Path | None, int | None, int], ImageData]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Loader  # (data_dir or None, image_size or None, seed) -> ImageData
    description: str  # one line for the Launch page
    default_image_size: int
    augment: bool  # whether the search should flip/crop its batches (natural images only)
    needs_files: bool  # reads a data_dir the user provides (no download here)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(
    name: str,
    *,
    description: str = "",
    default_image_size: int = 32,
    augment: bool = False,
    needs_files: bool = False,
) -> Callable[[Loader], Loader]:
    def deco(load: Loader) -> Loader:
        DATASETS.register(name)(DatasetSpec(name, load, description, default_image_size, augment, needs_files))
        return load

    return deco


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS.get(name)
    except UnknownNameError as e:
        raise DatasetError(str(e)) from None


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None, seed: int = 0) -> ImageData:
    spec = get_dataset_spec(name)
    return spec.load(None if data_dir is None else Path(data_dir), image_size, seed)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# CIFAR: restricted unpickling of the python batches
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# folder
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


class BatchStream:
    """Endless normalized batches from a fixed subset of ``data.train_x``.

    The subset's uint8 images move to ``device`` once; a batch is a gather, an optional
    flip/crop, and a normalize. Each pass over the subset is a fresh permutation from the
    stream's own ``torch.Generator`` (on the CPU, so a seed gives the same batches on any
    device). Nothing is dropped: the last batch of a pass holds the ``len % batch_size``
    leftovers when the size does not divide, so a pass is exactly ``batches_per_epoch`` batches.
    """

    PAD = 4  # zero padding of the random crop, in pixels (the usual CIFAR augmentation)

    def __init__(
        self,
        data: ImageData,
        indices: torch.Tensor,
        batch_size: int,
        seed: int,
        augment: bool = False,
        device: str | torch.device = "cpu",
    ):
        indices = torch.as_tensor(indices, dtype=torch.int64).flatten().cpu()
        n_train = int(data.train_x.shape[0])
        if len(indices) == 0:
            raise DatasetError("BatchStream needs at least one index")
        if int(indices.min()) < 0 or int(indices.max()) >= n_train:
            raise DatasetError(f"BatchStream indices must lie in 0..{n_train - 1}")
        if batch_size < 1:
            raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data
        self.batch_size = int(batch_size)
        self.augment = augment
        self.device = torch.device(device)
        self.x = data.train_x[indices].to(self.device)  # (n, C, H, W) uint8
        self.y = data.train_y[indices].to(self.device)  # (n,) int64
        self.n = len(indices)
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0  # completed passes
        self.position = 0  # batches of this pass are perm[position : position + batch_size]
        self._perm = torch.randperm(self.n, generator=self.generator)  # (n,) CPU

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) float32 normalized images and (B,) int64 labels on the stream's device."""
        if self.position >= self.n:  # the previous pass is done: reshuffle
            self._perm = torch.randperm(self.n, generator=self.generator)
            self.position = 0
            self.epoch += 1
        idx = self._perm[self.position : self.position + self.batch_size]
        self.position += len(idx)
        idx = idx.to(self.device)
        x = self.x[idx]  # (B, C, H, W) uint8
        if self.augment:
            x = self._flip_crop(x)
        return self.data.normalize(x), self.y[idx]

    def _flip_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random horizontal flip and random crop from a 4 px zero-padded copy, one gather for
        the whole batch. Zero is black before normalization, as in torchvision's RandomCrop."""
        B, C, H, W = x.shape
        p = self.PAD
        flip = torch.rand(B, generator=self.generator) < 0.5  # (B,)
        shift = torch.randint(0, 2 * p + 1, (B, 2), generator=self.generator)  # (B, 2) top, left
        rows = shift[:, 0:1] + torch.arange(H)  # (B, H) rows of the padded image
        cols_in = torch.where(flip[:, None], torch.arange(W - 1, -1, -1), torch.arange(W))  # (B, W)
        cols = shift[:, 1:2] + cols_in  # (B, W) flipping the crop = reading its columns backwards
        padded = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p)
        b = torch.arange(B, device=x.device)[:, None, None]
        rows, cols = rows.to(x.device)[:, :, None], cols.to(x.device)[:, None, :]
        return padded[b, :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)

    def state_dict(self) -> dict:
        """Tensors and ints only, so ``torch.load(weights_only=True)`` accepts it."""
        return {
            "generator": self.generator.get_state(),  # uint8 tensor
            "epoch": self.epoch,
            "position": self.position,
            "perm": self._perm.clone(),  # the current pass's order, needed mid-pass
            "num_samples": self.n,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, d: dict) -> None:
        if int(d["num_samples"]) != self.n or len(d["perm"]) != self.n:
            raise DatasetError(f"BatchStream state is for {int(d['num_samples'])} samples, this stream has {self.n}")
        self.generator.set_state(d["generator"].to(torch.uint8).cpu())
        self.epoch = int(d["epoch"])
        self.position = int(d["position"])
        self._perm = d["perm"].to(torch.int64).cpu().clone()
