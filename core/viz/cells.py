"""A cell drawn as Graphviz DOT (``st.graphviz_chart`` renders it in the browser; exports
write it), its edges coloured by the one op palette."""
from __future__ import annotations

from core.engine.genotype import Genotype
from core.viz.palette import op_color


def genotype_dot(genotype: Genotype, cell_type: str, title: str | None = None,
                 redraw: str | None = None) -> str:
    """Graphviz DOT of one cell; edge colours come from the one op palette.

    A node the evaluation cell does not compute (a FairDARTS node left without inputs) is
    drawn greyed and dashed, not left out, so cells of both layouts show the same nodes;
    an edge whose input is such a node is dotted, and only computed nodes in concat get an
    edge into c_{k}.

    ``redraw``: a tag added to every node id (the labels stay the names), for a drawing that
    replaces another in the browser. d3-graphviz, behind ``st.graphviz_chart``, matches a new
    drawing's nodes and edges to the old one's by id and, for each match, prepares a morph
    it never plays without a transition, which costs more than drawing the cell afresh."""
    g = genotype.to_networkx(cell_type)
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
        elif not data["computed"]:
            attrs = ('fillcolor="#f0f0f0", fontcolor="#969696", color="#bdbdbd", '
                     'style="filled,dashed", shape=box')
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
        style = "" if data["used"] else ", style=dotted"
        lines.append(f'  {node(u)} -> {node(v)} [label="{label}", color="{c}", '
                     f'fontcolor="{c}", penwidth=2{style}];')
    lines.append("}")
    return "\n".join(lines)


def _esc(s: str) -> str:
    return s.replace('"', '\\"')
