"""Figures: plain arrays in, PNG files out (matplotlib, Agg, written atomically).

One module per study (``robustness``, ``rejection``, ``summary`` for the report's
interval bars); every function takes arrays / records and a path and returns
the path it wrote. ``layout`` holds what every figure shares: titles, axis
labels and legends wrapped to fit the figure, and the style of groups that do
not count.
"""

from fairrobust.figures import layout, robustness
from fairrobust.figures.robustness import (
    accuracy_histograms,
    accuracy_vs_epsilon,
    correlation_heatmap,
    group_auc_bars,
    model_auc_bars,
    save_figure,
)

__all__ = [
    "accuracy_histograms",
    "accuracy_vs_epsilon",
    "correlation_heatmap",
    "group_auc_bars",
    "layout",
    "model_auc_bars",
    "robustness",
    "save_figure",
]
