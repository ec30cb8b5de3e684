"""Training a derived architecture from scratch and measuring it on held-out test data.

The discrete network is ``core.engine.evalnet.EvalNetwork`` (DARTS evaluation layout). Test data is
never seen during the search: digits and shapes hold out a fixed test part, CIFAR has its test
batch; the search only ever reads the training part. ``paper`` follows DARTS's evaluation
settings (C=36, 20 layers, auxiliary head 0.4, cutout 16, drop path 0.2, 600 epochs, batch 96).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from core.data import BatchStream, ImageData
from core.engine.device import pick_device
from core.engine.evalnet import EvalNetwork, count_parameters
from core.engine.genotype import Genotype
from core.registry import Registry, UnknownNameError


@dataclass(frozen=True)
class EvalConfig:
    preset: str = "demo"
    C: int = 16                 # initial channels
    layers: int = 5             # cells; reductions at layers//3 and 2*layers//3
    auxiliary: bool = False     # auxiliary head after cell 2*layers//3
    auxiliary_weight: float = 0.4
    cutout: int = 0             # side of the cutout square in pixels; 0 = off
    drop_path_prob: float = 0.0  # ramped linearly from 0 over the epochs, as in DARTS
    epochs: int = 6
    iters_per_epoch: int = 0    # 0 = one pass over the training data
    batch_size: int = 64
    lr: float = 0.025           # SGD, cosine to 0 over the epochs
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    augment: bool | None = None  # None = the dataset's default (crop/flip for CIFAR and folders)
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        for name, lo in (("C", 2), ("layers", 3), ("epochs", 1), ("batch_size", 2)):
            if getattr(self, name) < lo:
                raise ValueError(f"{name}: must be >= {lo}, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if not 0 <= self.drop_path_prob < 1:
            raise ValueError(f"drop_path_prob: must be in [0, 1), got {self.drop_path_prob}")


EVAL_PRESETS: Registry[dict[str, Any]] = Registry("evaluation preset")
EVAL_PRESETS.register("paper")({"C": 36, "layers": 20, "auxiliary": True, "auxiliary_weight": 0.4,
                                "cutout": 16, "drop_path_prob": 0.2, "epochs": 600,
                                "batch_size": 96, "lr": 0.025})
# A few minutes on a 2-core CPU for the digits demo; enough epochs to separate cells.
EVAL_PRESETS.register("demo")({"C": 8, "layers": 5, "auxiliary": False, "cutout": 0,
                               "drop_path_prob": 0.1, "epochs": 4, "iters_per_epoch": 30,
                               "batch_size": 64, "lr": 0.05})
EVAL_PRESETS.register("tiny")({"C": 4, "layers": 3, "epochs": 1, "iters_per_epoch": 4,
                               "batch_size": 32, "lr": 0.05})


def list_eval_presets() -> list[str]:
    return EVAL_PRESETS.names()


def make_eval_config(preset: str = "demo", **overrides: Any) -> EvalConfig:
    try:
        base = EVAL_PRESETS.get(preset)
    except UnknownNameError as e:
        raise ValueError(f"preset: must be one of {', '.join(e.valid)}, got {preset!r}") from None
    cfg = EvalConfig(**{**base, "preset": preset, **overrides})
    cfg.validate()
    return cfg


@dataclass
class EvalResult:
    test_acc: float
    test_loss: float
    train_acc: float
    params: int            # without the auxiliary head: the architecture size
    seconds: float
    epochs: int
    iterations: int
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zeroes one size x size square per image at a random centre (DARTS's Cutout, applied to
    normalized images; squares may fall partly outside). x: (B, C, H, W)."""
    if size <= 0:
        return x
    B, _, H, W = x.shape
    cy = torch.randint(0, H, (B, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, W, (B, 1, 1), generator=generator).to(x.device)
    ys = torch.arange(H, device=x.device)[None, :, None]
    xs = torch.arange(W, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() <= size // 2 - (1 - size % 2) * (ys >= cy)) & \
             ((xs - cx).abs() <= size // 2 - (1 - size % 2) * (xs >= cx))
    return x * (~inside)[:, None].to(x.dtype)


@torch.no_grad()
def test_accuracy(model: EvalNetwork, data: ImageData, device: torch.device,
                  batch_size: int = 256) -> tuple[float, float]:
    model.eval()
    correct, loss_sum = 0.0, 0.0
    n = len(data.test_y)
    for i in range(0, n, batch_size):
        x = data.normalize(data.test_x[i:i + batch_size].to(device))
        y = data.test_y[i:i + batch_size].to(device)
        logits, _ = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
    return correct / n, loss_sum / n


def evaluate_genotype(genotype: Genotype, data: ImageData, config: EvalConfig,
                      progress: Callable[[int, int], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Trains EvalNetwork(genotype) on all of ``data``'s training part, tests on its test part."""
    t0 = time.time()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    model = EvalNetwork(config.C, data.num_classes, config.layers, config.auxiliary, genotype,
                        in_channels=data.in_channels).to(device)
    params = count_parameters(model)
    augment = config.augment if config.augment is not None else data.name in ("cifar10", "cifar100", "folder")
    stream = BatchStream(data, torch.arange(len(data.train_y)), config.batch_size, config.seed,
                         augment, device)
    gen = torch.Generator().manual_seed(config.seed + 7)
    opt = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs)
    ipe = config.iters_per_epoch or stream.batches_per_epoch
    total = config.epochs * ipe
    correct = torch.zeros((), device=device)
    seen = 0
    done = 0
    for epoch in range(config.epochs):
        model.train()
        model.drop_path_prob = config.drop_path_prob * epoch / config.epochs
        correct.zero_()
        seen = 0
        for _ in range(ipe):
            if should_stop is not None and should_stop():
                raise InterruptedError("evaluation stopped")
            x, y = stream.next()
            x = cutout(x, config.cutout, gen)
            opt.zero_grad(set_to_none=True)
            logits, aux = model(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + config.auxiliary_weight * F.cross_entropy(aux, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
            opt.step()
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            done += 1
            if progress is not None:
                progress(done, total)
        sched.step()
    if not math.isfinite(float(loss.detach())):
        raise RuntimeError("evaluation training diverged (loss is not finite); lower lr")
    test_acc, test_loss = test_accuracy(model, data, device)
    return EvalResult(test_acc, test_loss, float(correct) / max(1, seen), params,
                      time.time() - t0, config.epochs, done, dataclasses.asdict(config))


def eval_config_from_dict(values: dict[str, Any]) -> EvalConfig:
    """An EvalConfig from a stored evaluation's config (unknown keys dropped), validated."""
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    cfg = EvalConfig(**{k: v for k, v in values.items() if k in names})
    cfg.validate()
    return cfg
