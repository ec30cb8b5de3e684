"""Image datasets for the architecture search, their registry, and the batch stream.

Every dataset loads into one ``ImageData`` (``images``): uint8 images ``(N, C, H, W)`` and int64
labels for a train part and a fixed test part, plus per-channel mean/std of the train part. The
search splits the train part in two (DARTS, Liu et al. 2019, Sec. 2.3: weights on one half,
alphas on the other) with ``ImageData.split_train`` and draws batches with ``BatchStream``
(``stream``).

One module per source, each registering its loader (``sources``): ``digits`` (scikit-learn's
bundled 8x8 digits, no download, the default), ``shapes`` (generated 10-class RGB shapes and
textures), ``cifar10`` / ``cifar100`` (``cifar``: the standard python pickle batches, read
through a restricted unpickler that loads numpy arrays and plain containers only), and
``folder`` (``<dir>/<class>/*.png`` image folders).
"""
from __future__ import annotations

from core.data.images import (
    DATA_DIR_ENV,
    DEFAULT_DATASET,
    IMAGE_EXTENSIONS,
    TEST_FRACTION,
    TEST_SPLIT_SEED,
    DatasetError,
    ImageData,
    default_data_dir,
)
from core.data.sources import (
    DATASETS,
    DatasetSpec,
    get_dataset_spec,
    list_datasets,
    load_dataset,
    register_dataset,
)
from core.data.stream import BatchStream

# the sources register themselves on import, in the order the Launch page lists them
from core.data import digits, shapes, cifar, folder  # noqa: E402,F401  (isort: skip)

__all__ = [
    "BatchStream", "DATASETS", "DATA_DIR_ENV", "DEFAULT_DATASET", "DatasetError", "DatasetSpec",
    "IMAGE_EXTENSIONS", "ImageData", "TEST_FRACTION", "TEST_SPLIT_SEED", "default_data_dir",
    "get_dataset_spec", "list_datasets", "load_dataset", "register_dataset",
]
