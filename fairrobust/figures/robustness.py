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
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fairrobust._io import atomic_write_bytes

__all__ = [
    "accuracy_vs_epsilon",
    "breaking_eps_cdf",
    "correlation_heatmap",
    "group_auc_bars",
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
        if title:
            ax.set_title(title, fontsize=10)
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
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


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
) -> Path:
    """Accuracy under attack against epsilon, one line per group (log-x axis).

    Epsilon 0 cannot sit on a log axis, so clean accuracy (when given) is drawn
    at a tick labelled ``clean`` one decade left of the smallest epsilon and
    joined to the curve with a dotted segment.

    Args:
      epsilons: attack budgets, shape (e,), all > 0, increasing.
      accuracy: per-group accuracy, shape (groups, e), in [0, 1] (NaN = no data).
      group_labels: one label per group (e.g. ``"female (n=120)"``).
      path: output PNG path.
      clean_accuracy: optional per-group clean accuracy, shape (groups,).
      lower, upper: optional confidence band (e.g. bootstrap interval), same
        shape as ``accuracy``; drawn as a shaded band (NaN = no band there).
      clean_lower, clean_upper: optional interval of ``clean_accuracy``, shape
        (groups,); drawn as an error bar on the clean marker.
      chance: optional chance level drawn as a horizontal line (1 / n_classes).
      title: figure title.

    Returns:
      The path written.
    """
    eps = np.asarray(epsilons, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    if eps.ndim != 1 or eps.size == 0 or np.any(eps <= 0):
        raise ValueError(f"epsilons: expected a non-empty 1-d array of values > 0, got {eps}")
    _check_2d("accuracy", acc, (len(group_labels), eps.size))
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
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x_clean = eps.min() / 10.0
    colors = matplotlib.colormaps["tab10"]
    for g, label in enumerate(group_labels):
        color = colors(g % 10)
        ax.plot(eps, acc[g], marker="o", ms=4, color=color, label=label)
        if lower is not None and upper is not None:
            ax.fill_between(eps, lower[g], upper[g], color=color, alpha=0.15, lw=0)
        if clean_accuracy is not None:
            c = float(np.asarray(clean_accuracy, float)[g])
            ax.plot([x_clean, eps[0]], [c, acc[g, 0]], ls=":", color=color)
            ax.plot([x_clean], [c], marker="s", ms=5, color=color)
            if clean_ci is not None and np.all(np.isfinite(clean_ci[:, g])):
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
    if len(group_labels):
        ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
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
    ylabel: str = "AUC_acc",
    title: str = "",
) -> Path:
    """Grouped bars: one cluster per model, one bar per group.

    Args:
      values: per-model, per-group AUC_acc, shape (models, groups) (NaN = no bar).
      model_labels: one label per model.
      group_labels: one label per group.
      path: output PNG path.
      lower, upper: optional confidence interval bounds, same shape as ``values``.
      excluded: optional per-model flag; excluded models are hatched and their
        label is suffixed with ``(excl.)``.
      ylabel: y-axis label.
      title: figure title.

    Returns:
      The path written.
    """
    vals = np.asarray(values, dtype=float)
    _check_2d("values", vals, (len(model_labels), len(group_labels)))
    n_models, n_groups = vals.shape
    # wide enough for the bars and for the legend (up to 4 columns of group labels)
    longest = max((len(str(g)) for g in group_labels), default=0)
    legend_w = min(n_groups, 4) * (0.07 * longest + 0.6) + 0.5
    fig = Figure(
        figsize=(min(max(2.0 + 0.55 * n_models * max(n_groups, 1) ** 0.5, legend_w), 30), 4.4),
        layout="constrained",
    )
    ax = fig.add_subplot()
    width = 0.8 / max(n_groups, 1)
    x = np.arange(n_models)
    colors = matplotlib.colormaps["tab10"]
    excl = np.zeros(n_models, bool) if excluded is None else np.asarray(excluded, bool)
    for g, label in enumerate(group_labels):
        pos = x - 0.4 + width * (g + 0.5)
        yerr = None
        if lower is not None and upper is not None:
            lo = np.asarray(lower, float)[:, g]
            hi = np.asarray(upper, float)[:, g]
            yerr = np.nan_to_num(np.stack([vals[:, g] - lo, hi - vals[:, g]]).clip(min=0.0))
        bars = ax.bar(
            pos,
            np.nan_to_num(vals[:, g]),
            width,
            color=colors(g % 10),
            label=label,
            yerr=yerr,
            capsize=2 if yerr is not None else 0,
        )
        for bar, is_excl in zip(bars, excl, strict=True):
            if is_excl:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    ticklabels = [f"{m} (excl.)" if e else m for m, e in zip(model_labels, excl, strict=True)]
    ax.set_xticks(x, labels=ticklabels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if n_groups:
        ax.legend(fontsize=8, ncols=min(n_groups, 4), loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
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
    title: str = "",
) -> Path:
    """Empirical CDF of the smallest breaking epsilon per group, one panel per model.

    ``F_s(eps_k) = |{i in s : b_i <= eps_k}| / |s|``: the fraction of group ``s``
    broken at budget ``eps_k`` or below (0 = misclassified clean). The sweep is
    discrete, so the CDF is drawn at its points, evenly spaced and labelled; the
    gap between ``F`` at the last budget and 1 is the fraction never broken.
    Groups that do not count (``valid`` False) are dashed grey with ``(n<min)``.

    Args:
      epsilons: the sweep ``[1 + e]``, 0 (clean) first.
      breaking: ``[p, n]`` breaking epsilons (``+inf`` = never broken), one row per panel.
      masks: bool ``[g, n]``.
      path: PNG file to write.
      panel_labels: ``p`` panel titles (models).
      group_labels: ``g`` legend entries.
      valid: optional bool ``[g]``.
      title: figure title.

    Returns:
      ``Path(path)``.
    """
    eps = np.asarray(epsilons, dtype=float)
    b = np.asarray(breaking, dtype=float)
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
            style = {} if ok[j] else {"color": "0.6", "ls": "--", "lw": 1.0}
            name = label if ok[j] else f"{label} (n<min)"
            ax.step(x, cdf, where="post", marker=".", label=name, **style)
        ax.set_xticks(x, ["clean" if e == 0 else f"{e:g}" for e in eps], rotation=45, fontsize=7)
        ax.set_xlabel("attack budget epsilon")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(panel_labels[k], fontsize=9)
    axes[0].set_ylabel("fraction broken at <= epsilon")
    if len(group_labels) and len(panel_labels):
        axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
