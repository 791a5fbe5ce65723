"""Figures of the robustness study (the paper's Figures 2-5 and per-group curves).

Every function takes plain arrays / lists and an output path, draws one PNG
with matplotlib's object-oriented API (no ``pyplot`` global state, Agg canvas),
writes it atomically and returns the path. Nothing here computes a metric.

Functions:
  * :func:`correlation_heatmap`: Pearson r of interventions (columns) against
    outcomes (rows: Defense Parity per attribute, or AUC_acc per group), the
    paper's layout with a diverging colormap centred at 0 and values printed.
  * :func:`accuracy_vs_epsilon`: accuracy-vs-epsilon curves per group for one
    model, log-x epsilon axis, clean accuracy drawn at the left edge.
  * :func:`group_auc_bars`: grouped bars of AUC_acc per group for each model.
  * :func:`breaking_eps_cdf`: empirical CDF of each example's smallest breaking
    epsilon per group (robustness bias, Nanda et al. 2021), one panel per model.
  * :func:`accuracy_histograms`: per attack budget, the distribution of accuracy
    across models, overall or per group (AISec'23 Figures 8-9).
  * :func:`model_auc_bars`: overall AUC_acc per model, hatched by intervention
    (preprint Figure 7).

Accuracy vs epsilon of every model (preprint Figure 6) is
:func:`accuracy_vs_epsilon` with one series per model. Titles are wrapped to
the figure width (:mod:`fairrobust.figures.layout`); series that do not count
(groups under the minimum size, models excluded as random guessing) are drawn
dashed grey without an interval.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fairrobust._io import atomic_write_bytes
from fairrobust.figures.layout import (
    SMALL_BAR,
    SMALL_LINE,
    figure_legend,
    fit_axes_title,
    fit_axis_labels,
    fit_title,
)

__all__ = [
    "accuracy_histograms",
    "accuracy_vs_epsilon",
    "breaking_eps_cdf",
    "correlation_heatmap",
    "group_auc_bars",
    "model_auc_bars",
    "no_data_panel",
    "save_figure",
]

_DPI = 120


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` to PNG in memory and write it atomically; returns the path.

    PNG metadata is fixed so that the same figure gives the same bytes.
    """
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue())


def _check_2d(name: str, arr: np.ndarray, shape: tuple[int, int]) -> None:
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")


def no_data_panel(ax, text: str = "no data") -> None:
    """Mark ``ax`` as an empty panel: centred ``text``, no ticks (0 series is not an error).

    Args:
      ax: a Matplotlib ``Axes``.
      text: the message drawn in the middle of the panel.
    """
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def correlation_heatmap(
    r: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    pvalues: np.ndarray | None = None,
    title: str = "",
    cbar_label: str = "Pearson r",
    alpha: float = 0.05,
) -> Path:
    """Heatmap of correlation coefficients in the paper's layout (Figures 2-5).

    Rows are outcomes (Defense Parity of an attribute, or one group's AUC_acc),
    columns are interventions (AT, Tricks, Noise, ...). The colormap is
    ``RdBu_r`` fixed to [-1, 1] so that 0 is white; each cell prints r (and a
    ``*`` when ``pvalues`` is given and p < ``alpha``). NaN cells (constant
    intervention, too few models) are grey and print ``n/a``.

    Args:
      r: correlations, shape (rows, cols), values in [-1, 1] or NaN.
      row_labels: one label per row.
      col_labels: one label per column.
      path: output PNG path.
      pvalues: optional p-values, same shape as ``r``.
      title: figure title.
      cbar_label: colour-bar label.
      alpha: significance level for the ``*`` marker.

    Returns:
      The path written.
    """
    r = np.asarray(r, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"r: expected a 2-d array (rows, cols), got shape {r.shape}")
    _check_2d("r", r, (len(row_labels), len(col_labels)))
    if pvalues is not None:
        pvalues = np.asarray(pvalues, dtype=float)
        _check_2d("pvalues", pvalues, r.shape)
    n_rows, n_cols = r.shape
    width = 2.2 + 1.1 * max(n_cols, 1) + 0.07 * max((len(s) for s in row_labels), default=0)
    height = 1.4 + 0.42 * max(n_rows, 1)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    if n_rows == 0 or n_cols == 0:
        no_data_panel(ax, "no data (no outcome or intervention)")
        fit_title(fig, title)
        return save_figure(fig, path)
    masked = np.ma.masked_invalid(r)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(masked, cmap=cmap, vmin=-1.0, vmax=1.0, aspect="auto")
    ax.set_xticks(np.arange(n_cols), labels=list(col_labels))
    ax.set_yticks(np.arange(n_rows), labels=list(row_labels))
    ax.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    for i in range(n_rows):
        for j in range(n_cols):
            v = r[i, j]
            if not np.isfinite(v):
                text, color = "n/a", "#555555"
            else:
                star = "*" if pvalues is not None and pvalues[i, j] < alpha else ""
                text = f"{v:.2f}{star}"
                color = "white" if abs(v) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9)
    cbar = fig.colorbar(im, ax=ax, fraction=0.08)
    cbar.set_label(cbar_label)
    fit_title(fig, title)
    return save_figure(fig, path)


def _series_style(k: int, n: int) -> dict[str, Any]:
    """Colour and marker of series ``k`` of ``n``: tab10 up to 10 series, else tab20 and markers."""
    if n <= 10:
        return {"color": matplotlib.colormaps["tab10"](k % 10), "marker": "o"}
    return {"color": matplotlib.colormaps["tab20"](k % 20), "marker": "osD^v<>p*h"[(k // 20) % 10]}


def _legend(ax, labels: Sequence[str]) -> None:
    """Inside the axes for a few short labels, else outside on the right (one or two columns)."""
    if not len(labels):
        return
    if len(labels) <= 6 and max(len(s) for s in labels) <= 32:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.legend(
            fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
            ncols=1 if len(labels) <= 18 else 2,
        )  # fmt: skip


def accuracy_vs_epsilon(
    epsilons: np.ndarray,
    accuracy: np.ndarray,
    group_labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    clean_accuracy: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    clean_lower: np.ndarray | None = None,
    clean_upper: np.ndarray | None = None,
    chance: float | None = None,
    title: str = "",
    valid: Sequence[bool] | np.ndarray | None = None,
) -> Path:
    """Accuracy under attack against epsilon, one line per series (log-x axis).

    A series is a group (the per-group curves of one model) or a model (every
    model's accuracy on all test clips, the preprint's Figure 6). Epsilon 0
    cannot sit on a log axis, so clean accuracy (when given) is drawn at a tick
    labelled ``clean`` one decade left of the smallest epsilon and joined to the
    curve with a dotted segment.

    Args:
      epsilons: attack budgets, shape (e,), all > 0, increasing.
      accuracy: per-series accuracy, shape (series, e), in [0, 1] (NaN = no data).
      group_labels: one label per series (e.g. ``"female (n=120)"``).
      path: output PNG path.
      clean_accuracy: optional per-series clean accuracy, shape (series,).
      lower, upper: optional confidence band (e.g. bootstrap interval), same
        shape as ``accuracy``; drawn as a shaded band (NaN = no band there).
      clean_lower, clean_upper: optional interval of ``clean_accuracy``, shape
        (series,); drawn as an error bar on the clean marker.
      chance: optional chance level drawn as a horizontal line (1 / n_classes).
      title: figure title (wrapped to the figure width).
      valid: optional bool (series,); series that do not count (groups under the
        minimum size or speakers, models excluded as random guessing) are drawn
        dashed grey without band; their label should say why
        (:func:`fairrobust.figures.layout.group_label`).

    Returns:
      The path written.
    """
    eps = np.asarray(epsilons, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if eps.ndim != 1 or eps.size == 0 or np.any(eps <= 0):
        raise ValueError(f"epsilons: expected a non-empty 1-d array of values > 0, got {eps}")
    _check_2d("accuracy", acc, (len(group_labels), eps.size))
    ok = np.ones(len(group_labels), bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (len(group_labels),):
        raise ValueError(f"valid: expected shape ({len(group_labels)},), got {ok.shape}")
    if (lower is None) != (upper is None):
        raise ValueError("lower, upper: give both bounds of the band or neither")
    if lower is not None and upper is not None:
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        _check_2d("lower", lower, acc.shape)
        _check_2d("upper", upper, acc.shape)
    clean_ci = None
    if clean_accuracy is not None and clean_lower is not None and clean_upper is not None:
        clean_ci = np.stack([np.asarray(clean_lower, float), np.asarray(clean_upper, float)])
        _check_2d("clean_lower / clean_upper", clean_ci, (2, len(group_labels)))
    n = len(group_labels)
    outside = n > 6 or max((len(s) for s in group_labels), default=0) > 32
    fig = Figure(figsize=(6.4 + (2.6 if outside else 0.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x_clean = eps.min() / 10.0
    for g, label in enumerate(group_labels):
        style = _series_style(g, n) if ok[g] else {**SMALL_LINE, "marker": "x"}
        color = style["color"]
        ax.plot(eps, acc[g], ms=4, label=label, **style)
        if lower is not None and upper is not None and ok[g]:
            ax.fill_between(eps, lower[g], upper[g], color=color, alpha=0.15, lw=0)
        if clean_accuracy is not None:
            c = float(np.asarray(clean_accuracy, float)[g])
            ax.plot([x_clean, eps[0]], [c, acc[g, 0]], ls=":", color=color)
            ax.plot([x_clean], [c], marker="s", ms=5, color=color)
            if clean_ci is not None and ok[g] and np.all(np.isfinite(clean_ci[:, g])):
                err = np.abs(np.array([[c - clean_ci[0, g]], [clean_ci[1, g] - c]]))
                ax.errorbar([x_clean], [c], yerr=err, color=color, capsize=3, lw=1)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ticks = list(eps)
    labels = [f"{e:g}" for e in eps]
    if clean_accuracy is not None:
        ticks = [x_clean, *ticks]
        labels = ["clean", *labels]
    ax.set_xticks(ticks, labels=labels)
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("attack budget epsilon (L-inf)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    _legend(ax, [*group_labels, *(["chance"] if chance is not None else [])])
    fit_title(fig, title)
    return save_figure(fig, path)


def group_auc_bars(
    values: np.ndarray,
    model_labels: Sequence[str],
    group_labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    excluded: Sequence[bool] | np.ndarray | None = None,
    valid: Sequence[bool] | np.ndarray | None = None,
    ylabel: str = "AUC_acc",
    title: str = "",
) -> Path:
    """Grouped bars: one cluster per model, one bar per group, with interval whiskers.

    Args:
      values: per-model, per-group AUC_acc, shape (models, groups) (NaN = no bar).
      model_labels: one label per model.
      group_labels: one label per group.
      path: output PNG path.
      lower, upper: optional confidence interval bounds, same shape as ``values``
        (NaN = no whisker).
      excluded: optional per-model flag; excluded models are hatched and their
        label is suffixed with ``(excl.)``.
      valid: optional per-group flag; groups that do not count (under the minimum
        size or speakers) are light grey with a dashed outline and no whisker.
      ylabel: y-axis label.
      title: figure title (wrapped to the figure width).

    Returns:
      The path written.
    """
    vals = np.asarray(values, dtype=float)
    _check_2d("values", vals, (len(model_labels), len(group_labels)))
    n_models, n_groups = vals.shape
    if (lower is None) != (upper is None):
        raise ValueError("lower, upper: give both bounds of the interval or neither")
    if lower is not None and upper is not None:
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        _check_2d("lower", lower, vals.shape)
        _check_2d("upper", upper, vals.shape)
    ok = np.ones(n_groups, bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (n_groups,):
        raise ValueError(f"valid: expected shape ({n_groups},), got {ok.shape}")
    excl = np.zeros(n_models, bool) if excluded is None else np.asarray(excluded, bool)
    # model names are rotated 60 degrees under the bars: their length sets part of the height
    longest = max(
        (len(m) + 8 * bool(e) for m, e in zip(model_labels, excl, strict=True)), default=0
    )
    fig = Figure(
        figsize=(
            min(max(5.5, 2.5 + 0.3 * n_models * max(n_groups, 1)), 30),
            3.8 + 0.055 * max(longest - 10, 0) + 0.25 * (n_groups > 2),
        ),
        layout="constrained",
    )
    ax = fig.add_subplot()
    width = 0.8 / max(n_groups, 1)
    x = np.arange(n_models)
    colors = matplotlib.colormaps["tab10"]
    for g, label in enumerate(group_labels):
        pos = x - 0.4 + width * (g + 0.5)
        style: dict[str, Any] = {"color": colors(g % 10)} if ok[g] else dict(SMALL_BAR)
        bars = ax.bar(pos, np.nan_to_num(vals[:, g]), width, label=label, **style)
        for bar, is_excl in zip(bars, excl, strict=True):
            if is_excl:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
        if lower is not None and upper is not None and ok[g]:
            lo, hi, v = lower[:, g], upper[:, g], vals[:, g]
            has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(v)
            if has.any():
                yerr = np.stack([v[has] - lo[has], hi[has] - v[has]]).clip(min=0.0)
                ax.errorbar(
                    pos[has], v[has], yerr=yerr, fmt="none", ecolor="black", elinewidth=1.0,
                    capsize=2,
                )  # fmt: skip
    ticklabels = [f"{m} (excl.)" if e else m for m, e in zip(model_labels, excl, strict=True)]
    ax.set_xticks(x, labels=ticklabels, rotation=60 if n_models > 1 else 0, ha="right", fontsize=8)
    fit_axis_labels(ax, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    if n_groups:
        figure_legend(fig)
    else:
        no_data_panel(ax, "no group")
    fit_title(fig, title)
    return save_figure(fig, path)


def breaking_eps_cdf(
    epsilons: Sequence[float],
    breaking: np.ndarray,
    masks: np.ndarray,
    path: str | os.PathLike[str],
    *,
    panel_labels: Sequence[str],
    group_labels: Sequence[str],
    valid: Sequence[bool] | None = None,
    bands: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Empirical CDF of the smallest breaking epsilon per group, one panel per model.

    ``F_s(eps_k) = |{i in s : b_i <= eps_k}| / |s|``: the fraction of group ``s``
    broken at budget ``eps_k`` or below (0 = misclassified clean). The sweep is
    discrete, so the CDF is drawn at its points, evenly spaced and labelled; the
    gap between ``F`` at the last budget and 1 is the fraction never broken.
    Groups that do not count (``valid`` False) are dashed grey; their label should
    say why (:func:`fairrobust.figures.layout.group_label`).

    Args:
      epsilons: the sweep ``[1 + e]``, 0 (clean) first.
      breaking: ``[p, n]`` breaking epsilons (``+inf`` = never broken), one row per panel.
      masks: bool ``[g, n]``.
      path: PNG file to write.
      panel_labels: ``p`` panel titles (models).
      group_labels: ``g`` legend entries.
      valid: optional bool ``[g]``.
      bands: optional pointwise intervals ``[p, 1 + e, g, 2]`` (low, high) of each
        curve, e.g. from :class:`fairrobust.metrics.BreakingCdfStat` bootstrapped by
        speaker; drawn as shaded steps (NaN: no band, as for groups too small).
      title: figure title.

    Returns:
      ``Path(path)``.
    """
    eps = np.asarray(epsilons, dtype=float)
    b = np.asarray(breaking, dtype=float)
    if bands is not None:
        bands = np.asarray(bands, dtype=float)
        want = (len(panel_labels), eps.size, len(group_labels), 2)
        if bands.shape != want:
            raise ValueError(f"bands: expected shape {want}, got {bands.shape}")
    m = np.asarray(masks, dtype=bool)
    _check_2d("breaking", b, (len(panel_labels), m.shape[1] if m.ndim == 2 else -1))
    _check_2d("masks", m, (len(group_labels), b.shape[1]))
    ok = np.ones(len(group_labels), bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (len(group_labels),):
        raise ValueError(f"valid: expected shape ({len(group_labels)},), got {ok.shape}")
    p = max(len(panel_labels), 1)
    fig = Figure(figsize=(4.2 * p, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, p, sharey=True))
    x = np.arange(eps.size)
    for k, ax in enumerate(axes):
        if not len(panel_labels) or not len(group_labels):
            no_data_panel(ax, "no model" if not len(panel_labels) else "no group")
            continue
        for j, label in enumerate(group_labels):
            row = b[k, m[j]]
            if not row.size:
                continue
            cdf = (row[None, :] <= eps[:, None]).mean(axis=1)
            style = {} if ok[j] else SMALL_LINE
            (line,) = ax.step(x, cdf, where="post", marker=".", label=label, **style)
            if bands is not None and ok[j] and np.isfinite(bands[k, :, j]).all():
                ax.fill_between(
                    x, bands[k, :, j, 0], bands[k, :, j, 1], step="post", alpha=0.15,
                    color=line.get_color(), linewidth=0,
                )  # fmt: skip
        ax.set_xticks(x, ["clean" if e == 0 else f"{e:g}" for e in eps], rotation=45, fontsize=7)
        ax.set_xlabel("attack budget epsilon")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        fit_axes_title(ax, panel_labels[k], fontsize=9)
    axes[0].set_ylabel("fraction broken at <= epsilon")
    if len(group_labels) and len(panel_labels):
        figure_legend(fig, fontsize=7)
    fit_title(fig, title)
    return save_figure(fig, path)


def accuracy_histograms(
    epsilons: Sequence[float],
    accuracy: np.ndarray,
    path: str | os.PathLike[str],
    *,
    series_labels: Sequence[str] = ("all clips",),
    valid: Sequence[bool] | np.ndarray | None = None,
    chance: float | None = None,
    bins: int = 10,
    title: str = "",
) -> Path:
    """Distribution of model accuracy at each attack budget: one histogram panel per budget.

    The AISec'23 paper's Figures 8-9: for each budget ``eps_k`` the histogram of
    ``acc_j(eps_k)`` over the models ``j``, showing where the grid of models lies
    (how many stay above chance as the budget grows). With several series (the
    groups of one attribute) each panel overlays one step histogram per group.

    Args:
      epsilons: the budgets ``[e]``; 0 is labelled ``clean``.
      accuracy: accuracy ``[s, m, e]`` of ``m`` models for ``s`` series (or
        ``[m, e]`` for one series), in [0, 1]; NaN entries are left out.
      path: output PNG path.
      series_labels: ``s`` legend labels (e.g. ``group_label`` of each group).
      valid: optional bool ``[s]``; series that do not count are drawn dashed grey.
      chance: optional chance level, a vertical dotted line in every panel.
      bins: number of equal-width bins on [0, 1].
      title: figure title (wrapped to the figure width).

    Returns:
      The path written.

    Raises:
      ValueError: shapes that disagree with the labels, or ``bins < 1``.
    """
    eps = np.asarray(epsilons, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if acc.ndim == 2:
        acc = acc[None]
    if acc.ndim != 3 or acc.shape[0] != len(series_labels) or acc.shape[2] != eps.size:
        raise ValueError(
            f"accuracy: expected shape (series={len(series_labels)}, models, "
            f"epsilons={eps.size}), got {np.asarray(accuracy).shape}"
        )
    if bins < 1:
        raise ValueError(f"bins: expected >= 1, got {bins}")
    ok = np.ones(acc.shape[0], bool) if valid is None else np.asarray(valid, bool)
    if ok.shape != (acc.shape[0],):
        raise ValueError(f"valid: expected shape ({acc.shape[0]},), got {ok.shape}")
    cols = max(min(eps.size, 4), 1)
    rows = max(-(-eps.size // cols), 1)
    fig = Figure(figsize=(2.9 * cols + 0.6, 2.4 * rows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    single = acc.shape[0] == 1
    for k, ax in enumerate(axes):
        if k >= eps.size:
            ax.set_visible(eps.size == 0 and k == 0)
            if eps.size == 0 and k == 0:
                no_data_panel(ax, "no attack budget")
            continue
        for j, label in enumerate(series_labels):
            v = acc[j, :, k]
            counts, _ = np.histogram(v[np.isfinite(v)], bins=edges)
            if single:
                ax.bar(
                    edges[:-1], counts, np.diff(edges), align="edge", color="C0", alpha=0.8,
                    edgecolor="white", label=label,
                )  # fmt: skip
            else:
                style = {"color": f"C{j % 10}", "lw": 1.4} if ok[j] else SMALL_LINE
                ax.stairs(counts, edges, label=label, **style)
        if chance is not None:
            ax.axvline(chance, color="0.3", ls=":", lw=1.0, label="chance")
        fit_axes_title(ax, "clean" if eps[k] == 0 else f"epsilon = {eps[k]:g}", fontsize=9)
        ax.set_xlim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.yaxis.get_major_locator().set_params(integer=True)
        if k % cols == 0:
            ax.set_ylabel("models")
        if k // cols == rows - 1 or k + cols >= eps.size:
            ax.set_xlabel("accuracy")
    if eps.size and len(series_labels):
        figure_legend(fig)
    fit_title(fig, title)
    return save_figure(fig, path)


#: Hatches of the preprint's Figure 7: dots = noise augmentation, crossed lines =
#: adversarial training, stars = both.
_HATCH = {(False, False): "", (False, True): "..", (True, False): "xx", (True, True): "**"}


def model_auc_bars(
    values: np.ndarray,
    model_labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    adversarial: Sequence[bool] | np.ndarray | None = None,
    noise: Sequence[bool] | np.ndarray | None = None,
    excluded: Sequence[bool] | np.ndarray | None = None,
    xlabel: str = "AUC_acc",
    title: str = "",
) -> Path:
    """Overall AUC_acc of every model as horizontal bars (the preprint's Figure 7).

    Bars are hatched by intervention as in the paper: dots for noise
    augmentation, crossed lines for adversarial training, stars for both;
    models excluded as random guessing are faded and labelled ``(excl.)``.

    Args:
      values: AUC_acc per model ``[m]`` (NaN = no bar).
      model_labels: ``m`` labels, drawn top to bottom in the given order.
      path: output PNG path.
      lower, upper: optional interval ``[m]`` each (NaN = no whisker).
      adversarial, noise: optional bool ``[m]``: trained adversarially / with
        noise augmentation (hatches).
      excluded: optional bool ``[m]``.
      xlabel: value-axis label (say whether the AUC is normalised).
      title: figure title (wrapped to the figure width).

    Returns:
      The path written.
    """
    v = np.asarray(values, dtype=float)
    m = len(model_labels)
    if v.shape != (m,):
        raise ValueError(f"values: expected shape ({m},), got {v.shape}")
    flags = {}
    for name, arr in (("adversarial", adversarial), ("noise", noise), ("excluded", excluded)):
        f = np.zeros(m, bool) if arr is None else np.asarray(arr, bool)
        if f.shape != (m,):
            raise ValueError(f"{name}: expected shape ({m},), got {f.shape}")
        flags[name] = f
    if (lower is None) != (upper is None):
        raise ValueError("lower, upper: give both bounds of the interval or neither")
    longest = max((len(s) + 8 for s in model_labels), default=0)  # tick labels, 8 pt
    fig = Figure(
        figsize=(min(4.6 + 0.065 * longest, 12.0), 1.9 + 0.28 * max(m, 1)), layout="constrained"
    )
    ax = fig.add_subplot()
    y = np.arange(m)[::-1]
    for i in range(m):
        hatch = _HATCH[(bool(flags["adversarial"][i]), bool(flags["noise"][i]))]
        ax.barh(
            y[i], np.nan_to_num(v[i]), 0.7, color="C0", hatch=hatch, edgecolor="white",
            alpha=0.4 if flags["excluded"][i] else 0.9,
        )  # fmt: skip
    if lower is not None and upper is not None:
        lo, hi = np.asarray(lower, float), np.asarray(upper, float)
        if lo.shape != (m,) or hi.shape != (m,):
            raise ValueError(f"lower, upper: expected shape ({m},), got {lo.shape}, {hi.shape}")
        has = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(v)
        if has.any():
            err = np.stack([v[has] - lo[has], hi[has] - v[has]]).clip(min=0.0)
            ax.errorbar(v[has], y[has], xerr=err, fmt="none", ecolor="black", capsize=2.5, lw=1)
    labels = [
        f"{s} (excl.)" if e else s for s, e in zip(model_labels, flags["excluded"], strict=True)
    ]
    ax.set_yticks(y, labels, fontsize=8)
    fit_axis_labels(ax, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    if not m:
        no_data_panel(ax, "no model")
    kinds = [
        ("none", ""),
        ("noise augmentation", ".."),
        ("adversarial training", "xx"),
        ("both", "**"),
    ]
    present = {
        _HATCH[(bool(a), bool(n))]
        for a, n in zip(flags["adversarial"], flags["noise"], strict=True)
    }
    handles = [
        Patch(facecolor="C0", edgecolor="white", hatch=h, label=name)
        for name, h in kinds
        if h in present
    ]
    if len(handles) > 1:
        figure_legend(fig, handles, [str(h.get_label()) for h in handles])
    fit_title(fig, title)
    return save_figure(fig, path)
