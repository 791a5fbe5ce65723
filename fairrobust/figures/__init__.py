"""Figures: plain arrays in, PNG files out (matplotlib, Agg, written atomically).

One module per study; every function takes arrays / records and a path and
returns the path it wrote.
"""

from fairrobust.figures import robustness
from fairrobust.figures.robustness import (
    accuracy_vs_epsilon,
    correlation_heatmap,
    group_auc_bars,
    save_figure,
)

__all__ = [
    "accuracy_vs_epsilon",
    "correlation_heatmap",
    "group_auc_bars",
    "robustness",
    "save_figure",
]
