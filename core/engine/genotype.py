"""The Genotype: the only architecture format that is stored, exported or drawn.

Two layouts of a cell, both from the papers' genotypes.py files:

* DARTS: ``[('sep_conv_3x3', 1), ...]``, two (op, input) pairs per intermediate node in node
  order, so pair k belongs to node k // 2 (state k // 2 + 2).
* FairDARTS: ``[('sep_conv_3x3', 2, 0), ...]``, (op, node, input) triples where node is the
  state index i + 2; a node may take any number of inputs, none included (its threshold parse
  and DCO cells).

Both are held the same way: ``normal``/``reduce`` are (op, input) pairs and ``normal_nodes``/
``reduce_nodes`` give each pair's node, empty for the DARTS layout. A cell whose nodes happen
to list two pairs each in node order is folded into the DARTS layout, so each cell has one
form, and equality, text and JSON do not depend on the rule that produced it. The text form
is DARTS's ``Genotype(normal=[...], normal_concat=range(2, 6), reduce=[...],
reduce_concat=range(2, 6))`` with pairs or triples; it is parsed with a small grammar, never
``eval``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import networkx as nx

CELL_TYPES: tuple[str, str] = ("normal", "reduce")
CELL_TITLES = {"normal": "Normal cell", "reduce": "Reduction cell"}  # as the pages and drawings name them
Pair = tuple[str, int]
FIRST_NODE = 2  # states 0 and 1 are the cell inputs c_{k-2} and c_{k-1}


class GenotypeError(ValueError):
    pass


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]
    # Weight of each chosen (op, input) pair, in the same order; drawing only, not compared.
    normal_weights: tuple[float, ...] = field(default=(), compare=False)
    reduce_weights: tuple[float, ...] = field(default=(), compare=False)
    # State index (i + 2) of each pair's node; empty: DARTS's layout, pair k -> k // 2 + 2.
    normal_nodes: tuple[int, ...] = ()
    reduce_nodes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in CELL_TYPES:
            items = [tuple(p) for p in getattr(self, name)]
            nodes = tuple(int(n) for n in getattr(self, name + "_nodes"))
            if items and all(len(p) == 3 for p in items) and not nodes:
                # FairDARTS triples given directly: (op, node, input).
                nodes = tuple(int(n) for _, n, _ in items)
                items = [(op, inp) for op, _, inp in items]
            if any(len(p) != 2 for p in items):
                raise GenotypeError(f"{name} cell: expected (op, input) pairs or (op, node, input) "
                                    f"triples, got {items!r}")
            pairs = tuple((str(op), int(i)) for op, i in items)
            if nodes and len(nodes) != len(pairs):
                raise GenotypeError(f"{name}_nodes has {len(nodes)} entries for {len(pairs)} pairs")
            concat = tuple(int(i) for i in getattr(self, name + "_concat"))
            # Two per node in node order, with no node after the last pair's in concat (the
            # DARTS layout has no node without inputs): the DARTS layout, one form per cell.
            if nodes and nodes == _darts_nodes(len(pairs)) and max(concat, default=0) <= nodes[-1]:
                nodes = ()
            object.__setattr__(self, name, pairs)
            object.__setattr__(self, name + "_nodes", nodes)
            object.__setattr__(self, name + "_concat", concat)
            object.__setattr__(self, name + "_weights",
                               tuple(float(w) for w in getattr(self, name + "_weights")))

    # ---- text form -------------------------------------------------------------------
    def __str__(self) -> str:
        def cell(ct: str) -> str:
            if self.is_darts_layout(ct):
                items = (f"('{op}', {i})" for op, i in self.cell(ct))
            else:
                items = (f"('{op}', {n}, {i})"
                         for (op, i), n in zip(self.cell(ct), self.nodes_of(ct)))
            return "[" + ", ".join(items) + "]"

        return (f"Genotype(normal={cell('normal')}, normal_concat={_concat(self.normal_concat)}, "
                f"reduce={cell('reduce')}, reduce_concat={_concat(self.reduce_concat)})")

    @classmethod
    def parse(cls, text: str) -> "Genotype":
        """Reads the DARTS or FairDARTS text form (or our JSON) without evaluating anything."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(text)
        m = re.fullmatch(r"Genotype\s*\((.*)\)", text, flags=re.S)
        if not m:
            raise GenotypeError("genotype text must look like Genotype(normal=[...], "
                                "normal_concat=..., reduce=[...], reduce_concat=...)")
        body = m.group(1)
        parts: dict[str, Any] = {}
        for key in ("normal_concat", "reduce_concat", "normal", "reduce"):
            km = re.search(rf"(?<![\w]){key}\s*=\s*(\[[^\]]*\]|range\s*\([^)]*\))", body)
            if not km:
                raise GenotypeError(f"genotype text has no {key}=...")
            value = km.group(1)
            if key.endswith("concat"):
                parts[key] = _parse_concat(value)
            else:
                parts[key], parts[key + "_nodes"] = _parse_pairs(value)
            body = body.replace(km.group(0), "", 1)
        return cls(**parts)

    # ---- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }
        for ct in CELL_TYPES:
            if self.weights(ct):
                d[ct + "_weights"] = list(self.weights(ct))
            if not self.is_darts_layout(ct):
                d[ct + "_nodes"] = list(self.nodes_of(ct))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Genotype":
        try:
            return cls(
                normal=tuple(tuple(p) for p in d["normal"]),
                normal_concat=tuple(d["normal_concat"]),
                reduce=tuple(tuple(p) for p in d["reduce"]),
                reduce_concat=tuple(d["reduce_concat"]),
                normal_weights=tuple(d.get("normal_weights", ())),
                reduce_weights=tuple(d.get("reduce_weights", ())),
                normal_nodes=tuple(d.get("normal_nodes", ())),
                reduce_nodes=tuple(d.get("reduce_nodes", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GenotypeError(f"not a genotype JSON object: {e}") from e

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise GenotypeError(f"not valid JSON: {e}") from e

    # ---- structure -------------------------------------------------------------------
    def cell(self, cell_type: str) -> tuple[Pair, ...]:
        if cell_type not in CELL_TYPES:
            raise KeyError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        return getattr(self, cell_type)

    def weights(self, cell_type: str) -> tuple[float, ...]:
        return getattr(self, cell_type + "_weights")

    def concat(self, cell_type: str) -> tuple[int, ...]:
        return getattr(self, cell_type + "_concat")

    def is_darts_layout(self, cell_type: str) -> bool:
        """True when pair k belongs to node k // 2 (no explicit nodes)."""
        self.cell(cell_type)  # checks the name
        return not getattr(self, cell_type + "_nodes")

    def nodes_of(self, cell_type: str) -> tuple[int, ...]:
        """State index (i + 2) of the node each pair feeds, in pair order, for either layout."""
        if self.is_darts_layout(cell_type):
            return _darts_nodes(len(self.cell(cell_type)))
        return getattr(self, cell_type + "_nodes")

    def steps(self, cell_type: str) -> int:
        """Intermediate nodes of the cell. DARTS layout: pairs // 2. Triples, or a cell that
        kept no pair at all: up to the highest node named by a pair or by concat, so a node
        left without inputs still counts."""
        if self.is_darts_layout(cell_type) and self.cell(cell_type):
            return len(self.cell(cell_type)) // 2
        return max([FIRST_NODE - 1, *self.nodes_of(cell_type), *self.concat(cell_type)]) - 1

    def pairs_by_node(self, cell_type: str) -> dict[int, tuple[Pair, ...]]:
        """Node state index -> its (op, input) pairs in genotype order; every node of the cell
        is a key, a node without inputs maps to ()."""
        out: dict[int, list[Pair]] = {FIRST_NODE + i: [] for i in range(self.steps(cell_type))}
        for pair, node in zip(self.cell(cell_type), self.nodes_of(cell_type)):
            out.setdefault(node, []).append(pair)
        return {n: tuple(ps) for n, ps in sorted(out.items())}

    def computed_nodes(self, cell_type: str) -> tuple[int, ...]:
        """State indices of the nodes the evaluation cell computes: a node is computed when at
        least one of its inputs is a cell input or a computed node (FairDARTS's DCOCell skips
        inputs from nodes that never got a value). In the DARTS layout: every node."""
        computed: list[int] = []
        for node, pairs in self.pairs_by_node(cell_type).items():
            if any(inp < FIRST_NODE or inp in computed for _, inp in pairs if inp < node):
                computed.append(node)
        return tuple(computed)

    def output_states(self, cell_type: str) -> tuple[int, ...]:
        """States concatenated into the cell's output: concat, less nodes that are not computed
        (the FairDARTS cells all list range(2, 6), so this is DCOCell's "every computed node")."""
        exists = {0, 1, *self.computed_nodes(cell_type)}
        return tuple(s for s in self.concat(cell_type) if s in exists)

    def choices(self) -> set[tuple[str, int, int, str]]:
        """(cell type, node, input, op) for every chosen edge; the unit of agreement. ``node``
        counts intermediate nodes from 0 in either layout."""
        out = set()
        for ct in CELL_TYPES:
            for (op, inp), node in zip(self.cell(ct), self.nodes_of(ct)):
                out.add((ct, node - FIRST_NODE, inp, op))
        return out

    def to_networkx(self, cell_type: str) -> nx.MultiDiGraph:
        """The cell as a graph: every intermediate node (``computed`` False for one the
        evaluation cell skips), each pair as an edge (``used`` False when its input is not
        computed), and concat edges into c_{k} only from ``output_states``."""
        g = nx.MultiDiGraph()
        ws = self.weights(cell_type)
        computed = set(self.computed_nodes(cell_type))
        g.add_node("c_{k-2}", kind="input", computed=True)
        g.add_node("c_{k-1}", kind="input", computed=True)
        for node in range(FIRST_NODE, FIRST_NODE + self.steps(cell_type)):
            g.add_node(_state_name(node), kind="node", computed=node in computed)
        g.add_node("c_{k}", kind="output", computed=True)
        for k, ((op, inp), node) in enumerate(zip(self.cell(cell_type), self.nodes_of(cell_type))):
            g.add_edge(_state_name(inp), _state_name(node), op=op, weight=ws[k] if ws else None,
                       used=inp < FIRST_NODE or inp in computed, key=k)
        for s in self.output_states(cell_type):
            g.add_edge(_state_name(s), "c_{k}", op="concat", weight=None, used=True)
        return g


def _darts_nodes(n_pairs: int) -> tuple[int, ...]:
    """Each pair's node in the DARTS layout; () where that layout cannot hold n_pairs."""
    if n_pairs == 0 or n_pairs % 2:
        return ()
    return tuple(FIRST_NODE + k // 2 for k in range(n_pairs))


def _state_name(i: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(i, str(i - 2))


def _concat(c: Sequence[int]) -> str:
    c = list(c)
    if c and c == list(range(c[0], c[-1] + 1)):
        return f"range({c[0]}, {c[-1] + 1})"
    return "[" + ", ".join(map(str, c)) + "]"


_ITEM = re.compile(r"\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*,\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def _parse_pairs(text: str) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    """A list of DARTS pairs ('op', input) or FairDARTS triples ('op', node, input):
    returns the pairs and each pair's node (empty for pairs)."""
    inner = text.strip()[1:-1].strip()
    if not inner:
        return (), ()
    items = _ITEM.findall(inner)
    if _ITEM.sub("", inner).replace(",", "").strip():
        raise GenotypeError(f"cannot read pairs in {text!r}; expected [('op', input), ...] "
                            "or [('op', node, input), ...]")
    triples = [bool(third) for _, _, third in items]
    if any(triples) and not all(triples):
        raise GenotypeError(f"{text!r} mixes (op, input) pairs and (op, node, input) triples")
    if all(triples):
        return (tuple((op, int(inp)) for op, _, inp in items),
                tuple(int(node) for _, node, _ in items))
    return tuple((op, int(i)) for op, i, _ in items), ()


def _parse_concat(text: str) -> tuple[int, ...]:
    text = text.strip()
    m = re.fullmatch(r"range\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", text)
    if m:
        return tuple(range(int(m.group(1)), int(m.group(2))))
    m = re.fullmatch(r"\[\s*((?:\d+\s*,\s*)*\d*)\s*\]", text)
    if m:
        return tuple(int(x) for x in re.findall(r"\d+", m.group(1)))
    raise GenotypeError(f"cannot read concat {text!r}; expected range(a, b) or [..]")


# Reference genotypes from DARTS (genotypes.py), used as checks.
DARTS_V1 = Genotype.parse(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = Genotype.parse(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
# Published cells in DARTS's text form, as their papers' code lists them (DARTS's genotypes.py
# for NASNet-A and AmoebaNet-A, whose five nodes and concat lists the evaluation network builds
# as DARTS's model.Cell does; P-DARTS's and PC-DARTS's for theirs).
NASNET_A = Genotype.parse(
    "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), "
    "('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), "
    "('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], "
    "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), "
    "('max_pool_3x3', 1), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), "
    "('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[4, 5, 6])")
AMOEBANET_A = Genotype.parse(
    "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), "
    "('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), "
    "('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), "
    "('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])")
P_DARTS = Genotype.parse(
    "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), "
    "('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), "
    "('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), "
    "('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))")
PC_DARTS = Genotype.parse(
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), "
    "('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), "
    "('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), "
    "('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))")
# Name shown -> genotype, in the order the Learn page lists them.
PUBLISHED: dict[str, Genotype] = {
    "DARTS V1 (first order)": DARTS_V1, "DARTS V2 (second order)": DARTS_V2,
    "NASNet-A": NASNET_A, "AmoebaNet-A": AMOEBANET_A, "P-DARTS": P_DARTS, "PC-DARTS": PC_DARTS,
}
