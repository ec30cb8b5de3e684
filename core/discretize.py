"""The one discretization rule: projecting operation weights onto a discrete cell.

Per node, rank incoming edges by their largest non-`none` weight (ties: lower edge index),
keep the top 2, and on each kept edge take the best non-`none` op (ties: first index).
This is DARTS's genotype rule (ALGORITHMS.md "Discretization"); the regularizers, the live
genotype and the final result all call it, on a copy of the weights.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from core.genotype import Genotype

EDGES_PER_NODE_KEPT = 2


def edge_rows(nodes: int) -> list[range]:
    """Rows of the alpha matrix for each node: node i has 2+i incoming edges."""
    rows, start = [], 0
    for i in range(nodes):
        rows.append(range(start, start + 2 + i))
        start += 2 + i
    return rows


def num_edges(nodes: int) -> int:
    return sum(2 + i for i in range(nodes))


def _as_array(weights: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().to("cpu", torch.float64).numpy()
    return np.asarray(weights, dtype=np.float64)


def select_edges(weights: torch.Tensor | np.ndarray, primitives: Sequence[str],
                 live: np.ndarray | torch.Tensor | None = None) -> list[tuple[int, int, float]]:
    """(edge row, op index, weight) kept by the rule: two per node, node order, strongest first.

    ``live``: an optional (edges, ops) mask of ops that may be chosen (ADMM's Z never picks a
    pruned op); an edge with no live op is never kept, so a node may then keep fewer than two.
    """
    w = _as_array(weights)  # (edges, ops)
    ops = list(primitives)
    if w.ndim != 2 or w.shape[1] != len(ops):
        raise ValueError(f"weights must be (edges, {len(ops)}), got {tuple(w.shape)}")
    usable = np.array([op != "none" for op in ops])
    if not usable.any():
        raise ValueError("the op list has no operation besides 'none'")
    usable = np.broadcast_to(usable[None, :], w.shape)
    if live is not None:
        usable = usable & (_as_array(live) > 0)
    masked = np.where(usable, w, -np.inf)
    best_op = np.argmax(masked, axis=1)  # first index on ties
    best_w = masked[np.arange(len(w)), best_op]
    nodes = _nodes_for(len(w))
    kept = []
    for rows in edge_rows(nodes):
        rows = list(rows)
        # Stable sort on -weight keeps the lower edge index first among ties.
        order = sorted(range(len(rows)), key=lambda j: -best_w[rows[j]])
        for j in order[:EDGES_PER_NODE_KEPT]:
            e = rows[j]
            if best_w[e] == -np.inf:
                continue  # no live op on this edge
            kept.append((e, int(best_op[e]), float(w[e, best_op[e]])))
    return kept


def _nodes_for(n_edges: int) -> int:
    nodes, total = 0, 0
    while total < n_edges:
        total += 2 + nodes
        nodes += 1
    if total != n_edges:
        raise ValueError(f"{n_edges} edges is not a DARTS cell (2+3+...); expected 14 for 4 nodes")
    return nodes


def project_discrete(weights: torch.Tensor, primitives: Sequence[str],
                     live: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """One-hot (edges, ops) tensor of the genotype's choices; detached, same device/dtype.
    ``live`` restricts the choice to unpruned ops (see ``select_edges``)."""
    d = torch.zeros_like(weights, requires_grad=False)
    for e, k, _ in select_edges(weights, primitives, live):
        d[e, k] = 1.0
    return d


def derive_genotype(weights_normal: torch.Tensor | np.ndarray,
                    weights_reduce: torch.Tensor | np.ndarray,
                    primitives: Sequence[str]) -> Genotype:
    cells = {}
    for ct, w in (("normal", weights_normal), ("reduce", weights_reduce)):
        arr = _as_array(w)
        nodes = _nodes_for(arr.shape[0])
        input_of = {e: j for rows in edge_rows(nodes) for j, e in enumerate(rows)}
        kept = select_edges(arr, primitives)
        cells[ct] = ([(primitives[k], input_of[e]) for e, k, _ in kept], [wt for _, _, wt in kept],
                     tuple(range(2, 2 + nodes)))
    return Genotype(normal=cells["normal"][0], normal_concat=cells["normal"][2],
                    reduce=cells["reduce"][0], reduce_concat=cells["reduce"][2],
                    normal_weights=cells["normal"][1], reduce_weights=cells["reduce"][1])
