"""The bilevel search loop of docs/algorithms.md: a weight step every iteration, an architecture
step (first order) when the schedule says, cosine lr stepped per epoch, gradient clipping.

Everything the loop learns reaches the store through one ``Recorder`` callback; the loop itself
does no I/O. Hooks (``Callback``) follow Lightning's: on_search_start, on_epoch_start,
on_step_end, on_epoch_end, on_search_end (and on_checkpoint, before each checkpoint: the
recorder writes its rows first). Resume = load the latest checkpoint, written at epoch ends, at
most every ``checkpoint_seconds`` within an epoch, and when the run is stopped.

Hot-loop rules (docs/design.md "Rules the code keeps"): no host sync per op or parameter. Per
iteration the loop reads one scalar (FI, only for the informed schedule); losses and accuracies
stay on the device until the recorder flushes every ``log_every`` iterations; the weights are
copied to the host once per architecture step (for the genotype, the pruning mask and the alpha
record).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.data import BatchStream, ImageData, load_dataset
from core.engine.activations import ACTIVATIONS
from core.engine.config import SearchConfig
from core.engine.device import keep_freed_memory, pick_device, to_host
from core.engine.discretize import derive_genotype
from core.engine.evalnet import architecture_size
from core.engine.genotype import CELL_TYPES, Genotype
from core.engine.measures import separated_share, separation
from core.engine.regularizers import REGULARIZERS, discretization_gap
from core.engine.schedules import SCHEDULES
from core.engine.supernet import Supernet

# A warning event when the schedule has been quiet this many times its expected gap.
_QUIET_ITERATIONS = 20


class NonFiniteError(RuntimeError):
    """A loss or an alpha became NaN or infinite; the run stops with this message."""


def _step_counters_on_cpu(optimizer: torch.optim.Optimizer) -> None:
    """Adam keeps its step counter on the CPU unless it is capturable or fused; a checkpoint
    loaded onto a GPU would put it there, and every step would then sync to read it."""
    if any(g.get("capturable") or g.get("fused") for g in optimizer.param_groups):
        return
    for st in optimizer.state.values():
        step = st.get("step")
        if isinstance(step, torch.Tensor) and step.device.type != "cpu":
            st["step"] = step.cpu()


class SearchStopped(Exception):
    """Raised between iterations; args: (epoch, iteration within it) where the loop stopped."""


@dataclass
class SearchResult:
    run_id: int | None
    status: str
    genotype: Genotype
    iterations: int
    arch_steps: int
    train_acc: float | None
    val_acc: float | None
    size: int
    seconds: float
    pruned: int = 0
    total_ops: int = 0                     # ops of both cells at the start (none excluded by CRB)
    separation: float | None = None        # core.engine.measures.separation of the final weights
    separated_edges: float | None = None   # share of edges whose top op is >= 2x uniform
    last_genotype_change: int = 0          # iteration of the last change (0: never changed)
    # CPU seconds of this process during the run (one search per worker process): what a run
    # costs, which a busy machine moves far less than its wall time.
    cpu_seconds: float | None = None
    # Seconds inside checkpoint writes in this attempt, and how many were written: what
    # crash safety costs, against ``seconds``.
    checkpoint_time: float = 0.0
    checkpoints: int = 0

    def to_dict(self) -> dict[str, Any]:
        pct = 100.0 * self.pruned / self.total_ops if self.total_ops else 0.0
        return {"run_id": self.run_id, "status": self.status, "genotype": str(self.genotype),
                "iterations": self.iterations, "arch_steps": self.arch_steps,
                "train_acc": self.train_acc, "val_acc": self.val_acc, "architecture_size": self.size,
                "seconds": round(self.seconds, 3), "pruned_ops": self.pruned,
                "total_ops": self.total_ops, "pruned_pct": round(pct, 2),
                "separation": None if self.separation is None else round(self.separation, 4),
                "separated_edges": (None if self.separated_edges is None
                                    else round(self.separated_edges, 4)),
                "last_genotype_change": self.last_genotype_change,
                "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 3),
                "checkpoint_time": round(self.checkpoint_time, 4), "checkpoints": self.checkpoints}


class Callback:
    def on_search_start(self, search: "Search") -> None: ...
    def on_epoch_start(self, search: "Search", epoch: int) -> None: ...
    def on_step_end(self, search: "Search", row: dict[str, Any]) -> None: ...
    def on_epoch_end(self, search: "Search", epoch: int, val_acc: float, val_loss: float) -> None: ...
    def on_search_end(self, search: "Search", result: SearchResult) -> None: ...
    def on_checkpoint(self, search: "Search") -> None: ...


@dataclass
class _ArchState:
    """What the last architecture step left on the host: weights, gap, genotype."""
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    gap: float | None = None
    genotype: Genotype | None = None
    size: int | None = None


class Search:
    def __init__(self, config: SearchConfig, store: Any = None, run_id: int | None = None,
                 callbacks: list[Callback] | None = None, data: ImageData | None = None,
                 resume: bool = False):
        self.config = config
        self.store = store
        self.run_id = run_id
        self.callbacks: list[Callback] = list(callbacks or [])
        if store is not None and run_id is not None:
            # the store hands out the one callback that writes to it: the engine never imports
            # the runs layer
            self.callbacks.insert(0, store.recorder(run_id, config.log_every))
        self._data = data
        self._keep_events = bool(self.callbacks)
        self.resume = resume
        self.device = pick_device(config.device)
        self._ready = False

    # ---- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        keep_freed_memory()  # a search allocates and frees the same blocks every iteration
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.data = self._data or load_dataset(cfg.dataset, cfg.data_dir or None, cfg.image_size, cfg.seed)
        w_idx, a_idx = self.data.split_train(cfg.train_fraction, cfg.seed)
        self.a_idx = a_idx
        self.w_stream = BatchStream(self.data, w_idx, cfg.batch_size, cfg.seed, cfg.augment, self.device)
        self.a_stream = BatchStream(self.data, a_idx, cfg.batch_size, cfg.seed + 1, False, self.device)
        # Each part is built by its registry from the config fields its class declares.
        activation = ACTIVATIONS.create_from_config(cfg.activation, cfg)
        self.model = Supernet(cfg.C, self.data.num_classes, cfg.layers, activation, cfg.nodes,
                              in_channels=self.data.in_channels, fast=cfg.fast, generator=gen,
                              include_none=cfg.include_none)
        self.model.to(self.device)
        # A stochastic activation samples from a generator of the run's own: torch's default one
        # is also drawn from by code whose draws depend on the process's history (modules built
        # once and cached), which would make the samples, and so the run, differ between runs
        # of the same seed.
        self.sample_generator: torch.Generator | None = None
        if self.model.act.stochastic:
            self.sample_generator = torch.Generator(self.device).manual_seed(cfg.seed)
            self.model.sample_generator = self.sample_generator
        # Channels-last makes the small depthwise convolutions of the cell faster on CPU
        # (measured by `python -m core bench`); the plain path and other devices keep the
        # default layout, and cuDNN picks its own kernels for the fixed batch shape.
        on_cpu = self.device.type == "cpu"
        self.memory_format = torch.channels_last if cfg.fast and on_cpu else torch.contiguous_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            # TF32 (cuDNN's default for convolutions) is ~1e-3 off float32: only when asked.
            tf32 = cfg.precision == "tf32"
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
        self.model.to(memory_format=self.memory_format)
        self.primitives = self.model.primitives
        self.w_params = self.model.weights_parameters()
        # The fast path reads each op's weights on all of a state's edges as one view of a
        # single tensor and accumulates their gradients there, and the optimizer and the
        # gradient clip step that tensor instead of the ~900 it holds. A pruned op's weights are
        # stepped too (zero gradient: decay and momentum), where the plain path leaves them;
        # nothing reads them again.
        self.weight_arena = self.model.use_weight_arena() if cfg.fast else None
        arena = self.weight_arena
        self._outside_arena = [p for p in self.w_params if arena is None or not arena.holds(p)]
        self._stepped_params = self.w_params if arena is None else [arena.flat, *self._outside_arena]
        self.w_optimizer = torch.optim.SGD(self._stepped_params, cfg.w_lr, momentum=cfg.w_momentum,
                                           weight_decay=cfg.w_weight_decay,
                                           fused=self.device.type in ("cpu", "cuda") or None)
        self.alpha_optimizer = torch.optim.Adam(self.model.arch_parameters(), lr=cfg.alpha_lr,
                                                betas=(cfg.alpha_beta1, cfg.alpha_beta2),
                                                weight_decay=cfg.alpha_weight_decay)
        self.lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optimizer, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
        self.schedule = SCHEDULES.create_from_config(cfg.schedule, cfg)
        self.regularizer = REGULARIZERS.create_from_config(cfg.regularizer, cfg,
                                                           primitives=self.primitives)
        with torch.no_grad():
            self.regularizer.setup({ct: a.detach() for ct, a in self.model.alphas().items()},
                                   self.model.all_arch_weights())
        self.iters_per_epoch = cfg.iters_per_epoch or self.w_stream.batches_per_epoch
        self.total_iterations = cfg.epochs * self.iters_per_epoch
        self.step = 0
        self.start_epoch = 0
        self.arch_steps = 0
        self.pruned = 0
        self.total_ops = int(sum(m.size for m in self.model.masks.values()))
        self.last_genotype_change = 0
        self.last_val_acc: float | None = None
        self.last_train_acc: float | None = None
        self._weights_detached: dict[str, torch.Tensor] | None = None
        self.arch = _ArchState()
        self.pending_events: list[dict[str, Any]] = []
        self._last_arch_iter = 0
        self._epoch_acc_sum: torch.Tensor | None = None
        self._epoch_acc_n = 0
        self.start_iter = 0            # iterations of start_epoch already done (a resume)
        self.elapsed_before = 0.0      # seconds earlier attempts ran (a resume)
        self._clock0 = time.time()
        self.checkpoint_time = 0.0
        self.checkpoints = 0
        # Seconds this process spent in weight and in architecture steps (host time: on a GPU
        # the per-iteration FI read waits for the device, so it counts the device's work too).
        self.time_split = {"weight": 0.0, "architecture": 0.0}
        if self.resume and self.store is not None and self.run_id is not None:
            self._load_checkpoint()
        self._refresh_arch_state()
        self._ready = True

    def autocast(self) -> torch.autocast:
        """The forward passes' arithmetic: bfloat16 autocast when the config asks for it."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.precision == "bf16")

    # ---- one iteration --------------------------------------------------------------------
    def iteration(self, epoch: int) -> dict[str, Any]:
        """One weight step, preceded by an architecture step when the schedule says so.
        Returns the row to record (device tensors for what is not yet on the host)."""
        cfg, model = self.config, self.model
        t0 = time.perf_counter()
        progress = self.step / max(1, self.total_iterations)
        row: dict[str, Any] = {"step": self.step, "epoch": epoch, "progress": progress}
        if not model.training:  # train() walks every module (milliseconds); the search never leaves it
            model.train()

        arch = self.schedule.should_step()
        row["arch_step"] = int(arch)
        t_arch = 0.0
        if arch:
            self._arch_step(progress, row)
            self._last_arch_iter = self.step
            t_arch = time.perf_counter() - t0
        elif (self.step - self._last_arch_iter == _QUIET_ITERATIONS * (self.schedule.period + 1)):
            self.push_event({"kind": "warning", "step": self.step, "message":
                             f"no architecture step for {self.step - self._last_arch_iter} "
                             f"iterations (FI average {self.schedule.fi_ewma}, threshold "
                             f"{self.schedule.threshold}); the informed schedule starts after about "
                             "ln(FI/threshold)/ln(multiplier) iterations"})

        x, y = self.w_stream.next()
        x = x.contiguous(memory_format=self.memory_format)
        self._zero_weight_grads()
        if cfg.fast:
            # Detached weights: the weight step sends no gradient to the alphas. They change
            # only at architecture steps, so they are kept until the next one; a stochastic
            # activation's sample is drawn afresh for every weight step instead, as the plain
            # path's forward does (the same draws, in the same order, from the run's generator).
            if model.act.stochastic:
                with torch.no_grad():
                    weights = model.sampled_arch_weights()
            else:
                if self._weights_detached is None:
                    with torch.no_grad():
                        self._weights_detached = model.all_arch_weights()
                weights = self._weights_detached
            with self.autocast():
                logits = model(x, weights)
                loss = F.cross_entropy(logits, y)
            loss.backward()
            # FI = sum of squared weight gradients before clipping: the clip's own fused norm.
            fi = torch.nn.utils.clip_grad_norm_(self._stepped_params, cfg.grad_clip,
                                                foreach=True).square()
        else:
            with self.autocast():
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            loss.backward()
            fi = sum((p.grad.detach() ** 2).sum() for p in self.w_params if p.grad is not None)
            torch.nn.utils.clip_grad_norm_(self.w_params, cfg.grad_clip, foreach=False)
        if getattr(self.schedule, "needs_fi", False):
            self.schedule.observe(float(fi))  # the loop's one host read per iteration
        self.w_optimizer.step()

        train_acc = (logits.argmax(1) == y).float().mean()
        self._epoch_acc_sum = train_acc if self._epoch_acc_sum is None else self._epoch_acc_sum + train_acc
        self._epoch_acc_n += 1
        row.update(train_loss=loss.detach(), train_acc=train_acc,
                   fi=fi.detach(), lr=self.w_optimizer.param_groups[0]["lr"],
                   fi_ewma=self.schedule.fi_ewma, threshold=self.schedule.threshold,
                   gap=self.arch.gap, active_ops=model.active_op_count())
        self.step += 1
        self.time_split["architecture"] += t_arch
        self.time_split["weight"] += time.perf_counter() - t0 - t_arch
        return row

    def _zero_weight_grads(self) -> None:
        if self.weight_arena is None:
            self.w_optimizer.zero_grad(set_to_none=True)
            return
        self.weight_arena.zero_grad()  # the arena's views stay the ops' gradients
        for p in self._outside_arena:
            p.grad = None

    def _arch_step(self, progress: float, row: dict[str, Any]) -> None:
        model = self.model
        xv, yv = self.a_stream.next()
        xv = xv.contiguous(memory_format=self.memory_format)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        # The penalty acts on the deterministic weights; the forward pass on a sample of them
        # when the activation is stochastic (the same tensors otherwise: one activation pass).
        weights = model.all_arch_weights()
        with self.autocast():
            logits = model(xv, model.sampled_arch_weights() if model.act.stochastic else weights,
                           weight_grads=False)
            val_loss = F.cross_entropy(logits, yv)
        masks = model.mask_tensors() if model.act.prunes else None
        penalty = self.regularizer.penalty(weights, progress, masks)
        total = val_loss + penalty
        if self.config.fast:
            total.backward(inputs=model.arch_parameters())  # no weight gradients are needed
        else:
            total.backward()
        self.alpha_optimizer.step()
        self.arch_steps += 1
        for ct, e, k in model.after_arch_update():
            self.pruned += 1
            self.push_event({"kind": "pruned", "step": self.step, "message":
                             f"{ct} edge {e}: {self.primitives[k]} pruned",
                             "data": {"cell_type": ct, "edge": e, "op": self.primitives[k]}})
            if not model.masks[ct][e].any():
                self.push_event({"kind": "warning", "step": self.step, "message":
                                 f"{ct} edge {e} has every operation pruned; it adds nothing "
                                 "and the rule ranks it last"})
        report = self.regularizer.after_arch_step(model.alphas(), model.act,
                                                  model.mask_tensors() if model.act.prunes else None)
        terms: dict[str, Any] = {"val_ce": val_loss.detach(), self.regularizer.name: penalty.detach(),
                                 **report.terms}
        if report.event is not None:
            self.push_event({"kind": report.event.kind, "step": self.step,
                             "message": report.event.message, "data": dict(report.event.data)})
        self._weights_detached = None
        self._refresh_arch_state()
        row.update(val_loss=val_loss.detach(), val_acc=(logits.argmax(1) == yv).float().mean(),
                   penalty=penalty.detach(), terms=terms, gap=self.arch.gap)

    def _refresh_arch_state(self) -> None:
        """Host copy of the weights after they changed: gap, genotype, NaN check."""
        with torch.no_grad():
            on_device = self.model.all_arch_weights()
            w = dict(zip(on_device, to_host(list(on_device.values()), torch.float32)))
        arrays = {ct: t.numpy() for ct, t in w.items()}
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise NonFiniteError(f"an architecture weight became NaN or infinite at iteration "
                                 f"{self.step}; lower alpha_lr or rho")
        self.arch.weights = arrays
        rule, threshold = self.config.discretization, self.config.op_threshold
        self.arch.gap = float(discretization_gap(w, self.primitives, rule, threshold))
        g = derive_genotype(arrays["normal"], arrays["reduce"], self.primitives, rule, threshold)
        if self.arch.genotype is None or g != self.arch.genotype:
            # A reordering of a node's kept edges (their strength ranking) is not a change of
            # the cell; the change log (core.viz.figures) reads it the same way.
            if self.arch.genotype is not None and g.choices() != self.arch.genotype.choices():
                self.last_genotype_change = self.step
            self.arch.genotype = g
            # A threshold cell can keep no op a cell's output depends on (sigmoid weights start
            # near 0.5, below 0.85): no evaluation network exists, so no size until ops pass.
            buildable = all(g.output_states(ct) for ct in CELL_TYPES)
            self.arch.size = (architecture_size(g, 36, self.data.num_classes, 20) if buildable
                              else None)
            self.push_event({"kind": "genotype", "step": self.step, "message": "genotype changed",
                             "_genotype": g, "_size": self.arch.size})
        self.push_event({"kind": "alphas", "step": self.step, "_weights": arrays})

    # ---- epochs and the whole run ----------------------------------------------------------
    @torch.no_grad()
    def evaluate_arch_split(self, max_batches: int = 10) -> tuple[float, float]:
        """Accuracy and loss of the supernet on the architecture (validation) data.

        Batch statistics, not running ones: the search ops' affine-free BNs see few updates in a
        short search, and eval-mode numbers after a few dozen iterations mislead (DARTS's
        `infer` has the same trap). Nothing else reads those running statistics."""
        self.model.train()
        stream = BatchStream(self.data, self.a_idx, self.config.batch_size * 2, 0, False,
                             self.device)
        # The deterministic weights (what the run shows), not a stochastic activation's samples.
        weights = self.model.all_arch_weights()
        correct, loss_sum, n = 0.0, 0.0, 0
        for _ in range(min(max_batches, stream.batches_per_epoch)):
            x, y = stream.next()
            with self.autocast():
                logits = self.model(x.contiguous(memory_format=self.memory_format), weights)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
            n += len(y)
        return correct / max(1, n), loss_sum / max(1, n)

    def elapsed(self) -> float:
        """Seconds the run has searched, over all its attempts (what its rows' time reads)."""
        return self.elapsed_before + time.time() - self._clock0

    def run(self, stop_event: threading.Event | None = None,
            pause_event: threading.Event | None = None) -> SearchResult:
        stop_event = stop_event or threading.Event()
        t0, cpu0 = time.time(), time.process_time()
        if not self._ready:
            self.setup()
        self._clock0 = self._last_checkpoint = time.time()
        for cb in self.callbacks:
            cb.on_search_start(self)
        status = "finished"
        epoch = self.start_epoch
        every = self.config.checkpoint_seconds
        try:
            for epoch in range(self.start_epoch, self.config.epochs):
                for cb in self.callbacks:
                    cb.on_epoch_start(self, epoch)
                first = self.start_iter if epoch == self.start_epoch else 0
                for i in range(first, self.iters_per_epoch):
                    if pause_event is not None and pause_event.is_set():
                        self._wait_while_paused(pause_event, stop_event)
                    if stop_event.is_set():
                        raise SearchStopped(epoch, i)
                    row = self.iteration(epoch)
                    for cb in self.callbacks:
                        cb.on_step_end(self, row)
                    if i + 1 < self.iters_per_epoch and time.time() - self._last_checkpoint >= every:
                        self.checkpoint(epoch, i + 1)  # the epoch end writes one anyway
                self.lr_scheduler.step()
                if self._epoch_acc_n:
                    self.last_train_acc = float(self._epoch_acc_sum) / self._epoch_acc_n
                self._epoch_acc_sum, self._epoch_acc_n = None, 0
                val_acc, val_loss = self.evaluate_arch_split()
                self.last_val_acc = val_acc
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, val_acc, val_loss)
                self.checkpoint(epoch + 1, 0)
        except SearchStopped as stopped:
            status = "stopped"
            self.checkpoint(*stopped.args)  # a stopped run resumes where it stopped
        except BaseException as exc:
            for cb in self.callbacks:
                getattr(cb, "on_search_error", lambda s, e: None)(self, exc)
            raise
        result = SearchResult(self.run_id, status, self.arch.genotype, self.step, self.arch_steps,
                              self.last_train_acc, self.last_val_acc, int(self.arch.size or 0),
                              time.time() - t0, self.pruned, self.total_ops,
                              separation(self.arch.weights, self.primitives),
                              separated_share(self.arch.weights, self.primitives),
                              self.last_genotype_change, time.process_time() - cpu0,
                              self.checkpoint_time, self.checkpoints)
        for cb in self.callbacks:
            cb.on_search_end(self, result)
        return result

    def push_event(self, event: dict[str, Any]) -> None:
        if self._keep_events:
            self.pending_events.append(event)

    def take_events(self) -> list[dict[str, Any]]:
        events, self.pending_events = self.pending_events, []
        return events

    def _wait_while_paused(self, pause_event: threading.Event, stop_event: threading.Event) -> None:
        for cb in self.callbacks:
            getattr(cb, "on_pause", lambda s, p: None)(self, True)
        while pause_event.is_set() and not stop_event.is_set():
            time.sleep(0.05)
        for cb in self.callbacks:
            getattr(cb, "on_pause", lambda s, p: None)(self, False)

    # ---- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, next_epoch: int, epoch_iter: int = 0) -> None:
        """The callbacks write what they hold (rows up to this iteration), then the checkpoint:
        a resume redoes at most the iterations since, and never finds a gap in the rows."""
        if self.store is None or self.run_id is None:
            return
        for cb in self.callbacks:
            getattr(cb, "on_checkpoint", lambda s: None)(self)
        self.save_checkpoint(next_epoch, epoch_iter)

    def save_checkpoint(self, next_epoch: int, epoch_iter: int = 0) -> None:
        """Written to a temporary file, synced, then renamed over the last one: a crash at any
        moment leaves the previous checkpoint or this one, whole."""
        if self.store is None or self.run_id is None:
            return
        t0 = time.perf_counter()
        path = self.store.checkpoint_path(self.run_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        acc_sum = self._epoch_acc_sum
        state = {
            "next_epoch": next_epoch, "epoch_iter": epoch_iter, "elapsed": self.elapsed(),
            "epoch_acc_sum": 0.0 if acc_sum is None else float(acc_sum),
            "epoch_acc_n": self._epoch_acc_n, "last_arch_iter": self._last_arch_iter,
            "last_train_acc": -1.0 if self.last_train_acc is None else self.last_train_acc,
            "step": self.step, "arch_steps": self.arch_steps,
            "pruned": self.pruned, "last_genotype_change": self.last_genotype_change,
            "last_val_acc": -1.0 if self.last_val_acc is None else self.last_val_acc,
            "model": self.model.state_dict(), "w_optimizer": self._w_optimizer_state(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(), "schedule": self.schedule.state_dict(),
            "regularizer": self.regularizer.state_dict(),
            "masks": {ct: torch.from_numpy(m.copy()) for ct, m in self.model.masks.items()},
            "w_stream": self.w_stream.state_dict(), "a_stream": self.a_stream.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.sample_generator is not None:
            state["sample_rng"] = self.sample_generator.get_state()
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._last_checkpoint = time.time()
        self.checkpoint_time += time.perf_counter() - t0
        self.checkpoints += 1

    def _w_optimizer_state(self) -> dict[str, Any]:
        """The weight optimizer's state per Parameter, as the plain path writes it (with the
        weight arena, the arena's momentum as views): checkpoints of either path load in
        either."""
        sd = self.w_optimizer.state_dict()
        arena = self.weight_arena
        if arena is None:
            return sd
        stepped = {id(p): i for i, p in enumerate(self._stepped_params)}
        flat_buf = sd["state"].get(0, {}).get("momentum_buffer")
        state = {}
        for j, p in enumerate(self.w_params):
            if arena.holds(p):
                if flat_buf is not None:
                    state[j] = {"momentum_buffer": arena.part(flat_buf, p)}
            elif stepped[id(p)] in sd["state"]:
                state[j] = sd["state"][stepped[id(p)]]
        group = dict(sd["param_groups"][0], params=list(range(len(self.w_params))))
        return {"state": state, "param_groups": [group]}

    def _load_w_optimizer_state(self, sd: dict[str, Any]) -> None:
        arena = self.weight_arena
        if arena is None:
            self.w_optimizer.load_state_dict(sd)
            return
        # A Parameter with no momentum yet gets zeros: SGD's first step from zeros is the same
        # as from none (the buffer becomes the gradient).
        flat_buf = torch.zeros_like(arena.flat)
        stepped = {id(p): i for i, p in enumerate(self._stepped_params)}
        state: dict[int, Any] = {}
        for j, p in enumerate(self.w_params):
            buf = sd["state"].get(j, {}).get("momentum_buffer")
            if buf is None:
                continue
            if arena.holds(p):
                arena.part(flat_buf, p).copy_(buf)
            else:
                state[stepped[id(p)]] = {"momentum_buffer": buf}
        state[0] = {"momentum_buffer": flat_buf}
        group = dict(sd["param_groups"][0], params=list(range(len(self._stepped_params))))
        self.w_optimizer.load_state_dict({"state": state, "param_groups": [group]})

    def _load_checkpoint(self) -> None:
        path = self.store.checkpoint_path(self.run_id)
        if not os.path.exists(path):
            self.store.truncate_after(self.run_id, -1)
            self.push_event({"kind": "resumed", "step": 0, "message": "resumed from the start: "
                             "no checkpoint had been written"})
            return  # nothing saved yet: start over
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.model.set_masks({ct: m.cpu().numpy() for ct, m in state["masks"].items()})
        self._load_w_optimizer_state(state["w_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        for opt in (self.w_optimizer, self.alpha_optimizer):
            _step_counters_on_cpu(opt)
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.schedule.load_state_dict(state["schedule"])
        self.regularizer.load_state_dict(state["regularizer"])
        self.w_stream.load_state_dict(state["w_stream"])
        self.a_stream.load_state_dict(state["a_stream"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.sample_generator is not None:
            self.sample_generator.set_state(state["sample_rng"].cpu())
        self.start_epoch = int(state["next_epoch"])
        self.step = int(state["step"])
        self.arch_steps = int(state["arch_steps"])
        self.pruned = int(state["pruned"])
        self.last_genotype_change = int(state.get("last_genotype_change", 0))
        v = float(state["last_val_acc"])
        self.last_val_acc = None if v < 0 else v
        # checkpoints of older versions were written at epoch ends only
        self.start_iter = int(state.get("epoch_iter", 0))
        self.elapsed_before = float(state.get("elapsed", 0.0))
        n = int(state.get("epoch_acc_n", 0))
        self._epoch_acc_n = n
        self._epoch_acc_sum = (torch.tensor(float(state["epoch_acc_sum"]), device=self.device)
                               if n else None)
        self._last_arch_iter = int(state.get("last_arch_iter", 0))
        t = float(state.get("last_train_acc", -1.0))
        self.last_train_acc = None if t < 0 else t
        self.store.truncate_after(self.run_id, self.step - 1)
        where = f"iteration {self.step} (epoch {self.start_epoch + 1}, iteration {self.start_iter + 1})"
        self.push_event({"kind": "resumed", "step": self.step, "message": f"resumed from {where}",
                         "data": {"elapsed": self.elapsed_before}})
