"""The dataset registry: a loader registers with ``@register_dataset``; ``load_dataset``
loads by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.data.images import DatasetError, ImageData
from core.registry import Registry, UnknownNameError

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
