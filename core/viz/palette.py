"""The one colour map of operations, used by every chart and cell drawing.

Colours follow op families (pools, skip, separable convs, dilated convs, none) so a
reader learns them once; shades within a family tell kernel sizes apart.
"""
from __future__ import annotations

from typing import Any

OP_COLORS: dict[str, str] = {
    "none": "#9e9e9e",
    "max_pool_3x3": "#1f77b4",
    "avg_pool_3x3": "#6baed6",
    "skip_connect": "#2ca02c",
    "sep_conv_3x3": "#d62728",
    "sep_conv_5x5": "#ff7f7f",
    "dil_conv_3x3": "#9467bd",
    "dil_conv_5x5": "#c5b0d5",
}
PRUNED_COLOR = "#d0d0d0"
_FALLBACK = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def op_color(name: str) -> str:
    """Colour of an op; ops outside the DARTS set get a stable fallback colour."""
    if name in OP_COLORS:
        return OP_COLORS[name]
    return _FALLBACK[sum(map(ord, name)) % len(_FALLBACK)]


def op_key_spec(descriptions: dict[str, str]) -> dict[str, Any]:
    """A Vega-Lite key of the ops: each op's name, a square in its colour and what it does, in
    the order given (``{op: description}``). Plain data, no chart library needed to build it."""
    ops = list(descriptions)
    rows = [{"op": op, "description": text} for op, text in descriptions.items()]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": {"text": "Operations and their colours", "anchor": "start", "fontSize": 14,
                  "fontWeight": "normal"},
        "config": {"background": "white", "view": {"stroke": None}, "font": "Helvetica, Arial, sans-serif"},
        "data": {"values": rows},
        "width": 300, "height": {"step": 24},
        "encoding": {"y": {"field": "op", "type": "nominal", "sort": None, "title": None,
                           "axis": {"ticks": False, "domain": False, "labelFontSize": 12, "labelPadding": 6}}},
        "layer": [
            {"mark": {"type": "square", "size": 170, "filled": True, "opacity": 1},
             "encoding": {"x": {"value": 9},
                          "color": {"field": "op", "type": "nominal", "legend": None,
                                    "scale": {"domain": ops, "range": [op_color(op) for op in ops]}}}},
            {"mark": {"type": "text", "align": "left", "baseline": "middle", "fontSize": 11, "color": "#555555"},
             "encoding": {"x": {"value": 24}, "text": {"field": "description", "type": "nominal"}}},
        ],
    }
