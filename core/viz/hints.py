"""One sentence per Monitor panel saying what to watch for in this run: worded from the run's
config (activation, schedule, regularizer and their settings) and from its data so far.

Pure functions of a ``core.viz.live.RunView``: no store query, no Streamlit. The Monitor calls
``panel_hints`` when its view took in new rows and shows each sentence under its panel.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from core.engine.genotype import CELL_TYPES, Genotype
from core.engine.measures import edge_separation
from core.viz.live import RunView

# The Monitor's panels, in page order, that get a sentence.
PANELS = ("weights", "schedule", "regularizer", "cell", "size", "losses")


# ---- small helpers -------------------------------------------------------------------------------
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _num(x: float) -> str:
    """A value as the sentences show it: three significant digits."""
    return f"{x:.3g}"


def _trend(now: float, start: float) -> str:
    """'down from 3.1' / 'up from 3.1' / 'as at the start' for a value against its first one."""
    if _num(now) == _num(start):  # equal as shown
        return "as at the start"
    return f"{'down' if now < start else 'up'} from {_num(start)}"


def _values(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the finite entries of one column."""
    if col not in df or df.empty:
        return np.zeros(0, np.int64), np.zeros(0)
    v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(v)
    return df["step"].to_numpy()[ok], v[ok]


def _latest_weights(view: RunView) -> dict[str, np.ndarray]:
    """{cell type: the newest activated weights (edges, ops)} of the cells that have a row and
    whose columns are the run's ops."""
    n_ops = len(view.primitives)
    return {ct: view.alphas[ct][-1] for ct in CELL_TYPES
            if len(view.alphas.get(ct, ())) and view.alphas[ct].shape[2] == n_ops}


def _iterations(view: RunView) -> int:
    return len(view.steps)


# ---- 1 · operation weights -----------------------------------------------------------------------
def weights_hint(view: RunView) -> str:
    act = str(view.config.get("activation", "softmax"))
    latest = _latest_weights(view)
    prims = view.primitives
    if act == "crb":
        return _crb_hint(view, latest)
    if act == "softmax":
        head = "Softmax: the ops of an edge compete for a share that sums to 1"
        if not latest:
            return f"{head}; no weights recorded yet"
        ratios = np.concatenate([edge_separation(w, prims) for w in latest.values()])
        text = (f"{head}; the top op now holds {np.median(ratios):.2f}x the uniform share "
                f"(median over edges)")
        if "none" in prims:
            k = prims.index("none")
            leads = sum(int((w.argmax(axis=1) == k).sum()) for w in latest.values())
            edges = sum(len(w) for w in latest.values())
            if leads:
                text += f"; `none` leads on {leads} of {edges} edges, and the cell never takes it"
        return text
    if act == "sigmoid":
        reg = str(view.config.get("regularizer", "none"))
        push = {"zero_one": "the zero-one loss pushes them to 0 or 1",
                "proximity": "the proximity term pulls them toward their discrete cell's 0s and 1s",
                "admm": "ADMM pulls them toward its discrete cell Z's 0s and 1s",
                "none": "with no regularizer, only the loss moves them toward 0 or 1",
                }.get(reg, f"the {reg} regularizer acts on them, not the zero-one loss")
        head = f"Sigmoid: each op's weight moves on its own; {push}"
        if not latest:
            return f"{head}; no weights recorded yet"
        # FairDARTS's parse keeps an op at op_threshold: the same line marks "decided" near 1.
        hi = float(view.config.get("op_threshold", 0.85))
        lo = 1.0 - hi
        w = np.concatenate([a.ravel() for a in latest.values()])
        share = float(((w < lo) | (w > hi)).mean())
        return f"{head} — {share:.0%} of weights are now below {lo:.2f} or above {hi:.2f}"
    steps = len(view.alpha_steps.get(CELL_TYPES[0], ()))
    return (f"{act}: {_count(len(prims), 'op')} per edge on {_count(view.n_edges, 'edge')} per cell; "
            f"weights recorded at {_count(steps, 'architecture step')}")


def _crb_hint(view: RunView, latest: dict[str, np.ndarray]) -> str:
    head = "CRB: an op whose weight reaches 0 is pruned for good"
    total = len(CELL_TYPES) * view.n_edges * len(view.primitives)
    pruned = view.pruned
    n = len(pruned)
    if n:
        text = f"{head}; {n} of {total} pruned so far (last at iteration {int(pruned['step'].max())})"
        # An edge with every op pruned adds nothing to its node and the rule ranks it last.
        empty = sum(int((~(w > 0)).all(axis=1).sum()) for w in latest.values())
        if empty:
            text += f"; {_count(empty, 'edge')} lost every op"
        return text
    if not latest:
        return f"{head}; none of {total} pruned yet, no weights recorded yet"
    w = np.concatenate([a.ravel() for a in latest.values()])
    live = w[w > 0]
    low = f", the lowest weight is {_num(float(live.min()))}" if len(live) else ""
    return f"{head}; none of {total} pruned yet{low}"


# ---- 2 · schedule --------------------------------------------------------------------------------
def schedule_hint(view: RunView) -> str:
    cfg = view.config
    sched = str(cfg.get("schedule", "fixed"))
    period = int(cfg.get("period", 1))
    n_it, k = _iterations(view), view.arch_steps
    so_far = f"{_count(k, 'architecture step')} in {_count(n_it, 'iteration')}"
    if sched == "informed":
        head = "Informed: an architecture step runs when the FI average falls below the threshold"
        if n_it == 0:
            return f"{head}; no iterations yet"
        if k:
            return (f"{head}; {so_far} (1 in {n_it / k:.1f}; target 1 in period+1 = {period + 1})")
        _, fi = _values(view.steps, "fi_ewma")
        _, thr = _values(view.steps, "threshold")
        mult = float(cfg.get("multiplier", 1.05))
        wait = (f": the threshold ({_num(thr[-1])}) grows x{mult:g} an iteration until it passes the "
                f"FI average ({_num(fi[-1])})") if len(fi) and len(thr) else ""
        return f"{head}; none yet in {_count(n_it, 'iteration')}{wait}"
    if sched == "fixed":
        every = "every iteration" if period == 1 else f"every {period} iterations"
        head = f"Fixed: an architecture step {every}, whatever the gradient signal (FI) does"
        return f"{head}; {so_far}" if n_it else f"{head}; no iterations yet"
    return f"{sched}: {so_far}" + (f" (1 in {n_it / k:.1f})" if k else "")


# ---- 3 · regularizer -----------------------------------------------------------------------------
def regularizer_hint(view: RunView) -> str:
    cfg = view.config
    reg = str(cfg.get("regularizer", "none"))
    steps = view.steps
    _, gap = _values(steps, "gap")
    _, pen = _values(steps, "penalty")
    gap_text = f"gap {_num(gap[-1])}, {_trend(gap[-1], gap[0])}" if len(gap) else "no gap recorded yet"
    if reg == "proximity":
        rho = float(cfg.get("rho", 0.1))
        _, t = _values(steps, "progress")
        now = f"now t={t[-1]:.2f}, rho {rho:g}" if len(t) else f"rho {rho:g}"
        return (f"Proximity pulls the weights toward their discrete cell with strength t·rho/2 "
                f"({now}): {gap_text}")
    if reg == "admm":
        every = int(cfg.get("admm_every", 10))
        head = (f"ADMM: every {_count(every, 'architecture step')} Z is re-projected onto a "
                f"discrete cell and U accumulates the gap")
        updates = view.updates  # its update events, as the ADMM class declares them
        if len(updates) and "admm_primal" in updates:
            primal = updates["admm_primal"].to_numpy(np.float64)
            return f"{head}; {_count(len(updates), 'update')}, last primal {_num(primal[-1])}"
        return f"{head}; no update yet ({view.arch_steps} of {every} architecture steps)"
    if reg == "zero_one":
        w0 = float(cfg.get("zero_one_weight", 10.0))
        floor = -0.25 * w0  # every weight at 0 or 1: (A - 0.5)^2 = 1/4
        head = f"Zero-one loss (weight {w0:g}) rewards weights far from 0.5"
        if not len(pen):
            return f"{head}; no penalty recorded yet"
        if floor == 0:
            return f"{head}; with weight 0 it does nothing (penalty {_num(pen[-1])})"
        return (f"{head}; the penalty is {_num(pen[-1])} now, {pen[-1] / floor:.0%} of the way to its "
                f"floor {_num(floor)} (every weight at 0 or 1)")
    if reg == "entropy":
        w = float(cfg.get("entropy_weight", 0.1))
        head = f"Entropy penalty (weight {w:g}) pushes each edge toward a single op"
        if not len(pen):
            return f"{head}; no penalty recorded yet"
        return f"{head}: penalty {_num(pen[-1])}, {_trend(pen[-1], pen[0])}; {gap_text}"
    if reg == "none":
        return f"No regularizer: nothing pulls the weights toward their discrete cell; {gap_text}"
    text = f"{reg}: " + (f"penalty {_num(pen[-1])}; " if len(pen) else "") + gap_text
    decl = view.update_events  # a regularizer of its own with update events: how many so far
    if decl is not None:
        text += f"; {_count(len(view.updates), f'{decl.label} update')}"
    return text


# ---- 4 · the derived cell and its size -----------------------------------------------------------
def _genotype_changes(view: RunView) -> list[int]:
    """Steps at which the derived cell changed (cells compared without their weights: a resumed
    run writes its current cell again, unchanged)."""
    changes, prev = [], None
    steps = view.genotypes["step"].to_numpy()
    for i in range(len(steps)):
        g = view.genotype(i)
        if g is None:
            continue
        # A reordering of a node's kept edges is not a change (as the search counts it).
        if prev is not None and g.choices() != prev.choices():
            changes.append(int(steps[i]))
        prev = g
    return changes


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def cell_hint(view: RunView) -> str:
    n_it = _iterations(view)
    if not len(view.genotypes):
        return "No cell derived yet: the first comes once the supernet is built"
    changes = _genotype_changes(view)
    if not changes:
        first = int(view.genotypes["step"].iloc[0])
        text = (f"The cell has not changed since it was first derived at iteration {first} "
                f"({_count(n_it, 'iteration')} so far)")
    else:
        quiet = max(0, view.last_step - changes[-1])
        text = (f"The cell changed {_times(len(changes))}, last at iteration {changes[-1]} (of {n_it}); "
                + ("still changing at the newest architecture step" if quiet == 0 else
                   f"unchanged for {_count(quiet, 'iteration')} since"))
    latest = view.genotype(-1)
    if view.config.get("discretization") == "threshold" and latest is not None:
        # FairDARTS's parse: a node keeps an input only where its best op clears the threshold.
        kept = sum(len(latest.cell(ct)) for ct in CELL_TYPES)
        most = len(CELL_TYPES) * view.nodes * 2
        thr = float(view.config.get("op_threshold", 0.85))
        text += f"; the threshold rule ({thr:g}) keeps {kept} of the {most} inputs the DARTS rule would"
    return text


def _parameter_free(op: str) -> bool:
    # Pooling, skip and none carry no weights; convolutions do.
    return op in ("none", "skip_connect") or "pool" in op


def size_hint(view: RunView) -> str:
    g = view.genotypes
    latest: Genotype | None = view.genotype(-1)
    if latest is None:
        return "No size yet: it is counted for each derived cell"
    ops = [op for ct in CELL_TYPES for op, _ in latest.cell(ct)]
    if not ops:  # the threshold rule may keep nothing while the weights sit near 0.5
        return "The cell keeps no operation yet, so there is no network to count"
    sizes = pd.to_numeric(g["size"], errors="coerce").dropna()
    text = ""
    if len(sizes):
        now, first = int(sizes.iloc[-1]), int(sizes.iloc[0])
        text = (f"{now:,} parameters now, {'as' if now == first else 'against'} {first:,} for the "
                f"first cell; ")
    free = sum(_parameter_free(op) for op in ops)
    text += (f"{free} of {len(ops)} chosen ops are parameter-free (pooling, skip), which is what "
             f"shrinks a cell")
    normal = latest.cell("normal")
    skips = sum(op == "skip_connect" for op, _ in normal)
    if skips:
        text += (f"; {skips} of {len(normal)} normal-cell edges {'is' if skips == 1 else 'are'} "
                 f"skip_connect (a normal cell filling with skips is the collapse DARTS is known for)")
    return text[0].upper() + text[1:]


# ---- 5 · losses and accuracies -------------------------------------------------------------------
def losses_hint(view: RunView) -> str:
    ep = view.epochs
    ep = ep[ep["val_acc"].notna()] if len(ep) else ep
    if len(ep):
        last = ep.iloc[-1]
        epoch, va, tr = int(last["epoch"]), float(last["val_acc"]), last.get("train_acc")
        text = f"Epoch {epoch} ended at validation accuracy {va:.2f}"
        if tr is not None and tr == tr:
            gap = float(tr) - va
            text += f", train {float(tr):.2f} (gap {gap:+.2f})"
            if gap > 0:  # train accuracy is on the weight split, validation on the architecture one
                text += ": a gap that widens means the weights fit their own split, not the task"
        if len(ep) > 1:
            first = float(ep["val_acc"].iloc[0])
            text += f"; validation was {first:.2f} after epoch {int(ep['epoch'].iloc[0])}"
        return text
    _, loss = _values(view.steps, "train_loss")
    if not len(loss):
        return "No iterations yet"
    ipe = view.config.get("iters_per_epoch")
    per = f" ({_count(int(ipe), 'iteration')} each)" if ipe else ""
    return (f"No epoch has ended yet{per}; the training loss (batch) is {_num(loss[-1])}, "
            f"{_trend(loss[-1], loss[0])}")


HINTS: dict[str, Callable[[RunView], str]] = {
    "weights": weights_hint, "schedule": schedule_hint, "regularizer": regularizer_hint,
    "cell": cell_hint, "size": size_hint, "losses": losses_hint,
}


def panel_hints(view: RunView) -> dict[str, str]:
    """{panel: sentence} for every panel of ``PANELS``; empty before the view has read the run."""
    if view.run is None:
        return {}
    return {panel: HINTS[panel](view) for panel in PANELS}
