"""The Genotype: the only architecture format that is stored, exported or drawn.

Text form is DARTS's ``Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=range(2, 6),
reduce=[...], reduce_concat=range(2, 6))``; it is parsed with a small grammar, never ``eval``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import networkx as nx

from core.palette import op_color

CELL_TYPES: tuple[str, str] = ("normal", "reduce")
CELL_TITLES = {"normal": "Normal cell", "reduce": "Reduction cell"}  # as the pages and drawings name them
Pair = tuple[str, int]


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

    def __post_init__(self) -> None:
        for name in ("normal", "reduce"):
            pairs = tuple((str(op), int(i)) for op, i in getattr(self, name))
            object.__setattr__(self, name, pairs)
            concat = tuple(int(i) for i in getattr(self, name + "_concat"))
            object.__setattr__(self, name + "_concat", concat)
            object.__setattr__(self, name + "_weights",
                               tuple(float(w) for w in getattr(self, name + "_weights")))

    # ---- text form -------------------------------------------------------------------
    def __str__(self) -> str:
        def pairs(ps: Iterable[Pair]) -> str:
            return "[" + ", ".join(f"('{op}', {i})" for op, i in ps) + "]"

        return (f"Genotype(normal={pairs(self.normal)}, normal_concat={_concat(self.normal_concat)}, "
                f"reduce={pairs(self.reduce)}, reduce_concat={_concat(self.reduce_concat)})")

    @classmethod
    def parse(cls, text: str) -> "Genotype":
        """Reads the DARTS text form (or our JSON) without evaluating anything."""
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
            parts[key] = _parse_concat(value) if key.endswith("concat") else _parse_pairs(value)
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
        if self.normal_weights:
            d["normal_weights"] = list(self.normal_weights)
        if self.reduce_weights:
            d["reduce_weights"] = list(self.reduce_weights)
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

    def choices(self) -> set[tuple[str, int, int, str]]:
        """(cell type, node, input, op) for every chosen edge; the unit of agreement."""
        out = set()
        for ct in CELL_TYPES:
            for k, (op, inp) in enumerate(self.cell(ct)):
                out.add((ct, k // 2, inp, op))
        return out

    def to_networkx(self, cell_type: str) -> nx.MultiDiGraph:
        g = nx.MultiDiGraph()
        pairs = self.cell(cell_type)
        concat = getattr(self, cell_type + "_concat")
        ws = self.weights(cell_type)
        g.add_node("c_{k-2}", kind="input")
        g.add_node("c_{k-1}", kind="input")
        n_nodes = len(pairs) // 2
        for i in range(n_nodes):
            g.add_node(str(i), kind="node")
        g.add_node("c_{k}", kind="output")
        for k, (op, inp) in enumerate(pairs):
            src = _state_name(inp)
            g.add_edge(src, str(k // 2), op=op, weight=ws[k] if ws else None, key=k)
        for s in concat:
            g.add_edge(_state_name(s), "c_{k}", op="concat", weight=None)
        return g

    def to_dot(self, cell_type: str, title: str | None = None, redraw: str | None = None) -> str:
        """Graphviz DOT of one cell; edge colours come from the one op palette.

        ``redraw``: a tag added to every node id (the labels stay the names), for a drawing that
        replaces another in the browser. d3-graphviz, behind ``st.graphviz_chart``, matches a new
        drawing's nodes and edges to the old one's by id and, for each match, samples both paths
        at every pixel to prepare a morph it never plays without a transition: in a throwaway
        app that redrew two cells each second this held Chromium's renderer at 0.33 core, and
        0.10 with ids tagged by the drawing."""
        g = self.to_networkx(cell_type)
        lines = [
            "digraph cell {",
            '  rankdir=LR; bgcolor="transparent";',
            '  node [style="filled", shape=rect, fontname="Helvetica", fontsize=12];',
            '  edge [fontname="Helvetica", fontsize=10];',
        ]
        if title:
            lines.append(f'  label="{_esc(title)}"; labelloc=t; fontname="Helvetica"; fontsize=16;')

        def node(n: str) -> str:
            return f'"{_esc(n)}"' if redraw is None else f'"{_esc(n)}@{_esc(redraw)}"'

        for n, data in g.nodes(data=True):
            if data["kind"] == "input":
                attrs = 'fillcolor="#a1d99b"'
            elif data["kind"] == "output":
                attrs = 'fillcolor="#fdd0a2"'
            else:
                attrs = 'fillcolor="#c6dbef", shape=box'
            if redraw is not None:
                attrs = f'label="{_esc(n)}", {attrs}'
            lines.append(f"  {node(n)} [{attrs}];")
        for u, v, data in g.edges(data=True):
            if data["op"] == "concat":
                lines.append(f'  {node(u)} -> {node(v)} [color="#969696", style=dashed];')
                continue
            label = data["op"] if data["weight"] is None else f"{data['op']}\\n{data['weight']:.2f}"
            c = op_color(data["op"])
            lines.append(f'  {node(u)} -> {node(v)} [label="{label}", color="{c}", '
                         f'fontcolor="{c}", penwidth=2];')
        lines.append("}")
        return "\n".join(lines)


def _state_name(i: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(i, str(i - 2))


def _esc(s: str) -> str:
    return s.replace('"', '\\"')


def _concat(c: Sequence[int]) -> str:
    c = list(c)
    if c and c == list(range(c[0], c[-1] + 1)):
        return f"range({c[0]}, {c[-1] + 1})"
    return "[" + ", ".join(map(str, c)) + "]"


def _parse_pairs(text: str) -> tuple[Pair, ...]:
    inner = text.strip()[1:-1].strip()
    if not inner:
        return ()
    items = re.findall(r"\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*,\s*(\d+)\s*\)", inner)
    rest = re.sub(r"\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*,\s*(\d+)\s*\)", "", inner)
    if rest.replace(",", "").strip():
        raise GenotypeError(f"cannot read pairs in {text!r}; expected [('op', input), ...]")
    return tuple((op, int(i)) for op, i in items)


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
