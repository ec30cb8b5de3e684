"""Numbers that say what a search did to its operation weights: separation and pruning.

They go into every run's summary, the study tables and the Compare page, so that a run that
left its weights where they started reads as such, next to one that pruned and separated them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def edge_separation(weights: np.ndarray, primitives: Sequence[str]) -> np.ndarray:
    """Per edge: the strongest non-`none` op's weight over the uniform weight, i.e. over the
    edge's mean weight across all its ops (1/n_ops under softmax; pruned ops count as 0).
    1 means no op stands out; edges whose weights are all zero are left out. (edges,) -> ratios."""
    w = np.asarray(weights, dtype=np.float64)  # (edges, ops)
    usable = np.array([p != "none" for p in primitives])
    top = w[:, usable].max(axis=1)
    mean = w.mean(axis=1)
    ok = mean > 0
    return top[ok] / mean[ok]


def separation(weights: Mapping[str, np.ndarray], primitives: Sequence[str]) -> float | None:
    """Median over the edges of both cells of ``edge_separation``; None without weights."""
    ratios = np.concatenate([edge_separation(w, primitives) for w in weights.values()]) \
        if weights else np.array([])
    return float(np.median(ratios)) if len(ratios) else None


def separated_share(weights: Mapping[str, np.ndarray], primitives: Sequence[str],
                    factor: float = 2.0) -> float | None:
    """Share of edges whose top op is at least ``factor`` times the uniform weight."""
    ratios = np.concatenate([edge_separation(w, primitives) for w in weights.values()]) \
        if weights else np.array([])
    return float((ratios >= factor).mean()) if len(ratios) else None
