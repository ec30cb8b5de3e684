"""The one colour map of operations, used by every chart and cell drawing.

Colours follow op families (pools, skip, separable convs, dilated convs, none) so a
reader learns them once; shades within a family tell kernel sizes apart.
"""
from __future__ import annotations

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
