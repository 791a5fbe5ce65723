"""Report figures with confidence intervals: grouped bars with bootstrap error bars.

The study figures draw point estimates; the report adds these so that every
group rate and parity number shown as a bar carries its interval. Nothing here
computes a metric: values and intervals come from the results tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fairrobust.figures.layout import category_ticks, figure_legend, fit_axis_labels, fit_title
from fairrobust.figures.robustness import no_data_panel, save_figure

__all__ = ["interval_bars"]


def interval_bars(
    values: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    path: str | os.PathLike[str],
    *,
    categories: Sequence[str],
    series: Sequence[str],
    title: str,
    ylabel: str,
    hatched: Sequence[bool] | None = None,
    muted: Sequence[bool] | None = None,
) -> Path:
    """Grouped bars ``values[s, c]`` (series x categories) with interval whiskers.

    Args:
      values: point estimates, shape ``(s, c)``; NaN draws no bar.
      low, high: interval ends, shape ``(s, c)``; NaN draws no whisker.
      path: PNG file to write.
      categories: ``c`` x-axis labels (e.g. groups).
      series: ``s`` legend labels (e.g. models or methods).
      title, ylabel: texts (the title is wrapped to the figure width).
      hatched: optional ``s`` flags; hatched series are drawn with ``//`` (e.g.
        models excluded as random guessing).
      muted: optional ``c`` flags; the bars of muted categories (groups that do
        not count: under the minimum size or speakers) are faded with a dashed
        outline and get no whisker; their label should say why.

    Returns:
      ``Path(path)``.

    Raises:
      ValueError: shapes that disagree with the labels.
    """
    v = np.asarray(values, dtype=float)
    lo = np.asarray(low, dtype=float)
    hi = np.asarray(high, dtype=float)
    shape = (len(series), len(categories))
    for name, arr in (("values", v), ("low", lo), ("high", hi)):
        if arr.shape != shape:
            raise ValueError(
                f"{name}: expected shape {shape} (series, categories), got {arr.shape}"
            )
    s, c = shape
    mute = np.zeros(c, bool) if muted is None else np.asarray(muted, bool)
    if mute.shape != (c,):
        raise ValueError(f"muted: expected shape ({c},), got {mute.shape}")
    width = 0.8 / max(s, 1)
    fig = Figure(
        figsize=(max(5.0, 1.0 + 0.35 * s * c + 0.6 * c), 4.0 + 0.2 * (s > 3)), layout="constrained"
    )
    ax = fig.subplots()
    x = np.arange(c)
    for i in range(s):
        pos = x - 0.4 + width * (i + 0.5)
        ok = np.isfinite(v[i])
        bars = ax.bar(
            pos[ok],
            v[i, ok],
            width,
            label=series[i],
            color=f"C{i % 10}",
            hatch="//" if hatched is not None and hatched[i] else None,
            edgecolor="white" if hatched is None or not hatched[i] else "black",
        )
        for bar, is_muted in zip(bars, mute[ok], strict=True):
            if is_muted:
                bar.set_alpha(0.35)
                bar.set_edgecolor("0.2")
                bar.set_linestyle("--")
        ci_ok = ok & ~mute & np.isfinite(lo[i]) & np.isfinite(hi[i])
        if ci_ok.any():
            yerr = np.stack([v[i, ci_ok] - lo[i, ci_ok], hi[i, ci_ok] - v[i, ci_ok]]).clip(min=0.0)
            ax.errorbar(
                pos[ci_ok],
                v[i, ci_ok],
                yerr=yerr,
                fmt="none",
                ecolor="black",
                elinewidth=1.0,
                capsize=2.5,
            )
    category_ticks(ax, x, categories)
    fit_axis_labels(ax, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    if s and c:
        figure_legend(fig)
    else:
        no_data_panel(ax, "no data (no series or category)")
    fit_title(fig, title)
    return save_figure(fig, path)
