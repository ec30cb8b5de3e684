"""Discretization rules: projecting operation weights onto a discrete cell.

Two rules share one dispatch (``RULES``), both written on the incoming edges of one node:

* ``darts`` (the default for every method; docs/algorithms.md "Discretization"): rank the node's
  incoming edges by their largest non-`none` weight (ties: lower edge index), keep the top 2,
  and on each kept edge take the best non-`none` op (ties: first index). Two inputs per node.
* ``threshold`` (FairDARTS, xiaomi-automl/FairDARTS ``utils.parse`` with ``threshold_sparse``):
  the same top-2 edges and best op, but an edge is kept only if its best op's weight is
  >= ``threshold`` (0.85 there), so a node keeps 0, 1 or 2 inputs.

The regularizers, the live genotype and the final result all call these, on a copy of the
weights.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from core.engine.device import to_host
from core.engine.genotype import Genotype

EDGES_PER_NODE_KEPT = 2
DEFAULT_RULE = "darts"
DEFAULT_THRESHOLD = 0.85  # FairDARTS's op_threshold


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


# ---- the rules: which of one node's incoming edges are kept ----------------------------------
# Each takes the best usable weight of every incoming edge of one node (-inf where the edge has
# no usable op) and the threshold, and returns the local indices of the kept edges, strongest
# first. The best op of each kept edge is the same under every rule.
EdgeRule = Callable[[np.ndarray, float], list[int]]


def _top_edges(best_w: np.ndarray) -> list[int]:
    # Stable sort on -weight keeps the lower edge index first among ties.
    order = sorted(range(len(best_w)), key=lambda j: -best_w[j])
    return order[:EDGES_PER_NODE_KEPT]


def darts_edges(best_w: np.ndarray, threshold: float) -> list[int]:
    """DARTS: the two strongest edges (an edge with no usable op is never kept)."""
    return [j for j in _top_edges(best_w) if best_w[j] != -np.inf]


def threshold_edges(best_w: np.ndarray, threshold: float) -> list[int]:
    """FairDARTS ``threshold_sparse``: of the two strongest edges, those whose best op's weight
    is >= threshold (so 0, 1 or 2)."""
    return [j for j in _top_edges(best_w) if best_w[j] >= threshold]


RULES: dict[str, EdgeRule] = {"darts": darts_edges, "threshold": threshold_edges}


def _rule(name: str) -> EdgeRule:
    if name not in RULES:
        raise ValueError(f"unknown discretization rule {name!r}; valid: {', '.join(RULES)}")
    return RULES[name]


def select_edges(weights: torch.Tensor | np.ndarray, primitives: Sequence[str],
                 live: np.ndarray | torch.Tensor | None = None, rule: str = DEFAULT_RULE,
                 threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int, float]]:
    """(edge row, op index, weight) kept by ``rule``: node order, strongest edge first.

    ``live``: an optional (edges, ops) mask of ops that may be chosen (ADMM's Z never picks a
    pruned op); an edge with no live op is never kept, so a node may then keep fewer than two.
    ``threshold`` is read by the ``threshold`` rule only.
    """
    edge_rule = _rule(rule)
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
    masked = np.where(usable, w, -np.inf)  # (edges, ops)
    best_op = np.argmax(masked, axis=1)  # (edges,), first index on ties
    best_w = masked[np.arange(len(w)), best_op]  # (edges,), -inf where nothing is usable
    kept = []
    for rows in edge_rows(_nodes_for(len(w))):
        rows = list(rows)
        for j in edge_rule(best_w[rows], threshold):
            e = rows[j]
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
                     live: np.ndarray | torch.Tensor | None = None, rule: str = DEFAULT_RULE,
                     threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """One-hot (edges, ops) tensor of the cell's choices under ``rule``; detached, same
    device/dtype. ``live`` restricts the choice to unpruned ops (see ``select_edges``)."""
    return project_discrete_cells({"cell": weights}, primitives,
                                  None if live is None else {"cell": live}, rule, threshold)["cell"]


def project_discrete_cells(weights: dict[str, torch.Tensor], primitives: Sequence[str],
                           live: dict[str, np.ndarray | torch.Tensor] | None = None,
                           rule: str = DEFAULT_RULE,
                           threshold: float = DEFAULT_THRESHOLD) -> dict[str, torch.Tensor]:
    """``project_discrete`` of each cell type's weights (and live mask). The choice is made on
    the host: the tensors among them come over in one copy, and each one-hot goes back
    in one upload that the host does not wait for (on a GPU, one sync for all cells instead of
    one per cell and a write per kept op)."""
    names = list(weights)
    parts = [weights[n] for n in names] + ([live[n] for n in names] if live is not None else [])
    tensors = [t for t in parts if isinstance(t, torch.Tensor)]
    host = {id(t): c.numpy() for t, c in zip(tensors, to_host(tensors, torch.float64))}

    def as_host(t):
        return host.get(id(t), t) if isinstance(t, torch.Tensor) else t

    out = {}
    for n in names:
        w = weights[n]
        d = np.zeros(tuple(w.shape), dtype=np.float64)
        for e, k, _ in select_edges(as_host(w), primitives,
                                    None if live is None else as_host(live[n]), rule, threshold):
            d[e, k] = 1.0
        onehot = torch.from_numpy(d).to(w.dtype)
        out[n] = onehot if w.device.type == "cpu" else onehot.to(w.device, non_blocking=True)
    return out


def derive_genotype(weights_normal: torch.Tensor | np.ndarray,
                    weights_reduce: torch.Tensor | np.ndarray,
                    primitives: Sequence[str], rule: str = DEFAULT_RULE,
                    threshold: float = DEFAULT_THRESHOLD) -> Genotype:
    """The Genotype ``rule`` picks from both cells' weights, with each pair's weight.

    Each pair carries its node (state index i+2), so a threshold cell whose nodes keep 0, 1 or
    2 inputs is written as FairDARTS triples; ``Genotype`` folds a cell that happens to keep two
    per node back into DARTS's layout, so both rules give equal genotypes when they agree.
    concat = every intermediate node (FairDARTS: range(2, 2 + steps))."""
    cells = {}
    for ct, w in (("normal", weights_normal), ("reduce", weights_reduce)):
        arr = _as_array(w)
        nodes = _nodes_for(arr.shape[0])
        # edge row -> (node's state index, input)
        place = {e: (2 + i, j) for i, rows in enumerate(edge_rows(nodes))
                 for j, e in enumerate(rows)}
        kept = select_edges(arr, primitives, rule=rule, threshold=threshold)
        cells[ct] = dict(pairs=[(primitives[k], place[e][1]) for e, k, _ in kept],
                         nodes=[place[e][0] for e, _, _ in kept],
                         weights=[wt for _, _, wt in kept],
                         concat=tuple(range(2, 2 + nodes)))
    return Genotype(normal=cells["normal"]["pairs"], normal_concat=cells["normal"]["concat"],
                    reduce=cells["reduce"]["pairs"], reduce_concat=cells["reduce"]["concat"],
                    normal_weights=cells["normal"]["weights"],
                    reduce_weights=cells["reduce"]["weights"],
                    normal_nodes=cells["normal"]["nodes"], reduce_nodes=cells["reduce"]["nodes"])
