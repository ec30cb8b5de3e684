"""The Learn page's toys: a few dozen numbers pushed through the engine's real parts.

Each toy computes its whole trajectory at once (tens of steps, a few milliseconds), so that
the page's Step, Play and scrub slider only choose which step to show. Nothing here
re-implements the engine: activations, pruning, schedules, regularizers and the
discretization rule are the ones a search calls (docs/algorithms.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from core.engine.activations import ACTIVATIONS, op_names
from core.engine.discretize import (DEFAULT_RULE, DEFAULT_THRESHOLD, derive_genotype, edge_rows,
                                    num_edges, project_discrete, select_edges)
from core.engine.genotype import Genotype
from core.engine.ops import DARTS_PRIMITIVES
from core.engine.regularizers import REGULARIZERS, discretization_gap
from core.engine.schedules import SCHEDULES

CT = "normal"  # the toys hold one cell type; the engine's dicts are keyed by it

# ---- 1. how alpha becomes operation weights -------------------------------------------------
ALPHA_TOY_ACTIVATIONS: tuple[str, ...] = ("softmax", "sigmoid", "crb")
# A made-up usefulness per op (how much more the loss falls per unit of its weight): the toy's
# stand-in for the gradient a real batch gives.
DEFAULT_USEFULNESS: dict[str, float] = {
    "none": 0.0, "max_pool_3x3": -0.6, "avg_pool_3x3": -0.3, "skip_connect": 0.3,
    "sep_conv_3x3": 0.8, "sep_conv_5x5": 0.5, "dil_conv_3x3": 0.2, "dil_conv_5x5": -0.1,
}


@dataclass(frozen=True)
class AlphaRun:
    """One activation's trajectory on one edge: step 0 is the initial state."""
    activation: str
    ops: tuple[str, ...]
    alphas: np.ndarray          # (steps + 1, ops)
    weights: np.ndarray         # (steps + 1, ops): the activated weights, pruned ops at 0
    pruned_at: dict[str, int]   # op -> the step after which it was pruned

    def live(self, step: int) -> list[bool]:
        return [op not in self.pruned_at or self.pruned_at[op] > step for op in self.ops]


def usefulness_noise(steps: int, noise: float, seed: int) -> np.ndarray:
    """(steps, len(DARTS_PRIMITIVES)) noise added to the usefulness, one draw per step and op,
    shared by every activation so that all see the same gradients."""
    rng = np.random.default_rng(seed)
    return noise * rng.standard_normal((steps, len(DARTS_PRIMITIVES)))


def alpha_run(activation: str, usefulness: Mapping[str, float], lr: float = 0.1,
              noise: float = 0.0, steps: int = 60, seed: int = 0) -> AlphaRun:
    """Gradient steps on one edge's alphas under the loss -sum_k u_k w_k, w = act(alpha).

    ``usefulness`` maps op -> u_k (ops it leaves out count 0). Plain gradient steps of size
    ``lr``; after each, the activation's own post-step rule (CRB prunes an alpha that reached
    0, for good), and a pruned op's weight is 0 as the supernet skips it."""
    if lr <= 0:
        raise ValueError(f"lr: must be > 0, got {lr}")
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    act = ACTIVATIONS.create(activation)
    ops = tuple(op_names(activation))
    gen = torch.Generator().manual_seed(seed)
    alpha = act.init((1, len(ops)), gen).double().requires_grad_(True)
    mask = np.ones((1, len(ops)), dtype=bool)
    cols = [DARTS_PRIMITIVES.index(op) for op in ops]
    base = torch.tensor([[float(usefulness.get(op, 0.0)) for op in ops]], dtype=torch.float64)
    jitter = torch.from_numpy(usefulness_noise(steps, noise, seed)[:, cols])
    alphas, weights, pruned_at = [], [], {}

    def record() -> None:
        with torch.no_grad():
            alphas.append(alpha.detach()[0].numpy().copy())
            weights.append((act(alpha) * torch.from_numpy(mask))[0].numpy().copy())

    record()
    for t in range(steps):
        w = act(alpha) * torch.from_numpy(mask)  # (1, ops)
        loss = -(w * (base + jitter[t])).sum()
        (grad,) = torch.autograd.grad(loss, alpha)
        with torch.no_grad():
            alpha -= lr * grad
        new_mask = act.after_step(alpha.data, mask)
        for k in np.flatnonzero(mask[0] & ~new_mask[0]):
            pruned_at[ops[k]] = t + 1
        mask = new_mask
        record()
    return AlphaRun(activation, ops, np.array(alphas), np.array(weights), pruned_at)


def alpha_toy(usefulness: Mapping[str, float], activations: Sequence[str] = ALPHA_TOY_ACTIVATIONS,
              lr: float = 0.1, noise: float = 0.0, steps: int = 60,
              seed: int = 0) -> dict[str, AlphaRun]:
    """``alpha_run`` of each activation under the same usefulness, noise and learning rate."""
    if not activations:
        raise ValueError(f"activations: pick at least one of {', '.join(ACTIVATIONS.names())}")
    return {a: alpha_run(a, usefulness, lr, noise, steps, seed) for a in activations}


# ---- 2. when to take an architecture step ---------------------------------------------------
@dataclass(frozen=True)
class ScheduleTrace:
    fi: np.ndarray            # (n,) the FI each iteration observed
    fi_ewma: np.ndarray       # (n,) its moving average after the iteration
    threshold: np.ndarray     # (n,) the threshold the iteration's decision was made against
    stepped: np.ndarray       # (n,) bool: an architecture step at this iteration
    period: int

    @property
    def target(self) -> float:
        """The share of iterations with an architecture step at equilibrium: 1/(period+1)."""
        return 1.0 / (self.period + 1)

    @property
    def ratio(self) -> np.ndarray:
        """(n,) architecture steps so far over iterations so far."""
        return np.cumsum(self.stepped) / np.arange(1, len(self.stepped) + 1)


def synthetic_fi(n: int = 300, level: float = 1.0, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """A stationary FI sequence: ``level`` times log-normal noise of spread ``noise`` (FI, a
    squared gradient norm, is positive and right-skewed)."""
    if level <= 0:
        raise ValueError(f"level: must be > 0, got {level}")
    if noise < 0:
        raise ValueError(f"noise: must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    return level * np.exp(noise * rng.standard_normal(n) - noise ** 2 / 2)


def schedule_trace(fi: Sequence[float], period: int = 10, multiplier: float = 1.05,
                   ewma: float = 0.2, init_threshold: float = 1.0,
                   seed_threshold: bool = False) -> ScheduleTrace:
    """The informed schedule over ``fi``, called as the search loop calls it: ``should_step()``
    at the start of an iteration, ``observe(fi)`` after its weight step."""
    sched = SCHEDULES.create("informed", period=period, multiplier=multiplier, ewma=ewma,
                             init_threshold=init_threshold, seed_threshold=seed_threshold)
    fi = np.asarray(fi, dtype=np.float64)
    ewmas, thresholds, stepped = np.empty(len(fi)), np.empty(len(fi)), np.zeros(len(fi), bool)
    for i, f in enumerate(fi):
        thresholds[i] = sched.threshold  # what should_step compares the average against
        stepped[i] = sched.should_step()
        sched.observe(f)
        ewmas[i] = np.nan if sched.fi_ewma is None else sched.fi_ewma
    return ScheduleTrace(fi, ewmas, thresholds, stepped, int(period))


# ---- 3. pulled toward a cell: proximity and ADMM --------------------------------------------
PULL_TOY_OPS: tuple[str, ...] = ("max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3")
PULL_TOY_NODES = 2  # 5 edges: node 0 takes 2, node 1 takes 3, of which the rule keeps 2


@dataclass(frozen=True)
class PullTrace:
    regularizer: str
    ops: tuple[str, ...]
    A: np.ndarray                  # (steps + 1, edges, ops) activated weights
    D: np.ndarray                  # (steps + 1, edges, ops) their projection D(A)
    gap: np.ndarray                # (steps + 1,) ||A - D(A)||
    Z: np.ndarray | None = None    # ADMM only: (steps + 1, edges, ops)
    U: np.ndarray | None = None
    updates: tuple[int, ...] = field(default=())  # ADMM: the steps after which Z, U changed


def pull_start(activation: str, ops: Sequence[str] = PULL_TOY_OPS, nodes: int = PULL_TOY_NODES,
               seed: int = 0, spread: float = 0.15) -> torch.Tensor:
    """Initial alphas: the activation's own init plus a seeded spread, so that D(A) has a
    choice to make from the first step."""
    gen = torch.Generator().manual_seed(seed)
    shape = (num_edges(nodes), len(ops))
    act = ACTIVATIONS.create(activation)
    return (act.init(shape, gen) + spread * torch.rand(shape, generator=gen)).double()


def pull_trace(regularizer: str = "proximity", activation: str = "crb", rho: float = 1.0,
               admm_every: int = 3, progress: float = 1.0, lr: float = 0.05, steps: int = 40,
               seed: int = 0, ops: Sequence[str] = PULL_TOY_OPS,
               nodes: int = PULL_TOY_NODES) -> PullTrace:
    """Architecture steps whose only loss is the regularizer's penalty, so what moves the
    weights is its pull alone. ``progress`` is the search's t (proximity scales with it)."""
    if regularizer not in ("proximity", "admm"):
        raise ValueError(f"regularizer: must be proximity or admm, got {regularizer!r}")
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress: must be in [0, 1], got {progress}")
    act = ACTIVATIONS.create(activation)
    ops = list(ops)
    kw = {"rho": rho, "admm_every": admm_every} if regularizer == "admm" else {"rho": rho}
    reg = REGULARIZERS.create(regularizer, primitives=ops, **kw)
    alpha = pull_start(activation, ops, nodes, seed).requires_grad_(True)
    mask = np.ones(tuple(alpha.shape), dtype=bool)
    with torch.no_grad():
        reg.setup({CT: alpha.detach()}, {CT: act(alpha).detach()})
    A, D, Z, U, gap, updates = [], [], [], [], [], []

    def masks() -> dict[str, torch.Tensor] | None:
        return {CT: torch.from_numpy(mask).double()} if act.prunes else None

    def record() -> None:
        with torch.no_grad():
            a = act(alpha) * torch.from_numpy(mask)
            A.append(a.numpy().copy())
            D.append(project_discrete(a, ops).numpy())
            gap.append(float(discretization_gap({CT: a}, ops)))
            if regularizer == "admm":
                Z.append(reg.Z[CT].numpy().copy())
                U.append(reg.U[CT].numpy().copy())

    record()
    for t in range(steps):
        weights = {CT: act(alpha) * torch.from_numpy(mask)}
        penalty = reg.penalty(weights, progress, masks())
        if penalty.requires_grad:
            (grad,) = torch.autograd.grad(penalty, alpha)
            with torch.no_grad():
                alpha -= lr * grad
        mask = act.after_step(alpha.data, mask)
        report = reg.after_arch_step({CT: alpha.detach()}, act, masks())
        if report.event is not None:
            updates.append(t + 1)
        record()
    return PullTrace(regularizer, tuple(ops), np.array(A), np.array(D), np.array(gap),
                     np.array(Z) if Z else None, np.array(U) if U else None, tuple(updates))


# ---- 4. from weights to a cell --------------------------------------------------------------
def toy_cell_weights(nodes: int = 4, seed: int = 0, ops: Sequence[str] | None = None,
                     spread: float = 1.5) -> np.ndarray:
    """A (edges, ops) softmax weight matrix to start the editor from, as a search's edges
    look midway: softmax of seeded random alphas."""
    ops = list(ops or op_names("softmax"))
    gen = torch.Generator().manual_seed(seed)
    alpha = spread * torch.randn((num_edges(nodes), len(ops)), generator=gen, dtype=torch.float64)
    return ACTIVATIONS.create("softmax")(alpha).numpy().round(3)


@dataclass(frozen=True)
class CellChoice:
    kept: tuple[tuple[int, int, float], ...]   # (edge row, op index, weight) the rule keeps
    genotype: Genotype                         # the cell (normal; reduce drawn from the same)
    nodes: int

    def decided(self, upto_node: int) -> list[tuple[int, int, float]]:
        """The kept (edge, op, weight) of the first ``upto_node`` nodes: the page steps
        through the rule one node at a time."""
        rows = edge_rows(self.nodes)
        last = rows[upto_node - 1].stop if upto_node > 0 else 0
        return [k for k in self.kept if k[0] < last]


def cell_choice(weights: np.ndarray, ops: Sequence[str], rule: str = DEFAULT_RULE,
                threshold: float = DEFAULT_THRESHOLD) -> CellChoice:
    """What the discretization rule keeps of ``weights`` (edges, ops), and the cell it makes."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError("weights: every entry must be a number")
    if (w < 0).any():
        raise ValueError("weights: must be >= 0 (they are activated weights)")
    kept = tuple(select_edges(w, ops, rule=rule, threshold=threshold))
    genotype = derive_genotype(w, w, list(ops), rule=rule, threshold=threshold)
    return CellChoice(kept, genotype, genotype.steps("normal"))


def edge_labels(nodes: int) -> list[str]:
    """'node 0 <- c_{k-2}' ... one label per edge row, inputs named as the cell drawing names
    them."""
    names = lambda j: {0: "c_{k-2}", 1: "c_{k-1}"}.get(j, f"node {j - 2}")  # noqa: E731
    return [f"node {i} ← {names(j)}" for i, rows in enumerate(edge_rows(nodes))
            for j in range(len(rows))]
