"""``BatchStream``: batches of one index set of an ``ImageData``, on the device, reshuffled
each pass."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.data.images import DatasetError, ImageData


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
        self._set_perm(torch.randperm(self.n, generator=self.generator))

    def _set_perm(self, perm: torch.Tensor) -> None:
        """The pass's order, (n,) on the CPU (what a checkpoint keeps) and on the device: one
        upload a pass, so a batch's gather needs no copy, and on a GPU no host sync."""
        self._perm = perm
        self._perm_on_device = perm.to(self.device, non_blocking=True)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) float32 normalized images and (B,) int64 labels on the stream's device."""
        if self.position >= self.n:  # the previous pass is done: reshuffle
            self._set_perm(torch.randperm(self.n, generator=self.generator))
            self.position = 0
            self.epoch += 1
        idx = self._perm_on_device[self.position : self.position + self.batch_size]
        self.position += len(idx)
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
        # (uploads from pageable memory that CUDA stages at once: no sync)
        rows = rows.to(x.device, non_blocking=True)[:, :, None]
        cols = cols.to(x.device, non_blocking=True)[:, None, :]
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
        self._set_perm(d["perm"].to(torch.int64).cpu().clone())
