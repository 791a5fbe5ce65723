"""Figures of the rejection study: FPR curves, FPR Parity vs N, AUC_FPR bars, certified accuracy.

Every function takes plain arrays (NumPy or JAX) and an output path, draws one
PNG with Matplotlib's Agg canvas (no global backend or pyplot state is touched,
so the functions are safe in tests, notebooks and worker threads) and returns
the path. Files are written atomically through :mod:`fairrobust._io` and carry
no software-version metadata, so a rerun with the same numbers gives the same
bytes.

The figures follow the AISec'23 paper "Measuring Equality in Machine Learning
Security Defenses" (section 5.2, Figures 5-7): FPR Parity of randomized
smoothing (RS) against the number of noise samples N on a log axis, with
neural rejection (NR) as a horizontal line, one panel per attribute.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fairrobust._io import atomic_write_bytes
from fairrobust.figures.layout import (
    SMALL_LINE,
    category_ticks,
    figure_legend,
    fit_axes_title,
    fit_title,
)
from fairrobust.figures.robustness import no_data_panel

__all__ = [
    "plot_auc_fpr_bars",
    "plot_certified_accuracy",
    "plot_fpr_curves",
    "plot_fpr_parity_vs_n",
]

_DPI = 110


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue())


def _check(name: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """Raise ValueError naming ``name`` when ``arr`` does not have ``shape`` (None = any)."""
    ok = arr.ndim == len(shape) and all(
        s is None or s == a for s, a in zip(shape, arr.shape, strict=False)
    )
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = max(min(n, max_cols), 1)
    return max(math.ceil(n / cols), 1), cols


def plot_fpr_curves(
    thresholds: np.ndarray,
    curves: np.ndarray,
    path: str | os.PathLike[str],
    *,
    method_labels: Sequence[str],
    group_labels: Sequence[str],
    title: str = "",
    xlabel: str = "threshold α (RS: p-value, NR: SVM score)",
    ci: np.ndarray | None = None,
    valid: Sequence[bool] | np.ndarray | None = None,
) -> Path:
    """False-rejection rate against the threshold, one panel per method, one line per group.

    Args:
      thresholds: threshold grid, shape ``(a,)`` (alpha for RS, t for NR).
      curves: FPR in [0, 1], shape ``(m, a, g)`` for ``m`` methods and ``g`` groups;
        NaN entries (empty groups) are not drawn.
      path: PNG file to write.
      method_labels: ``m`` panel titles (e.g. ``"RS N=100"``, ``"NR"``).
      group_labels: ``g`` legend entries.
      title: figure title.
      xlabel: x-axis label.
      ci: optional confidence band (e.g. bootstrap interval), shape ``(m, a, g, 2)``
        (low, high), drawn shaded around each curve.
      valid: optional bool ``(g,)``; groups that do not count (under the minimum
        size or speakers) are drawn dashed grey without band; their label should
        say why (:func:`fairrobust.figures.layout.group_label`).

    Returns:
      ``Path(path)``.
    """
    thresholds = np.asarray(thresholds, dtype=float)
    curves = np.asarray(curves, dtype=float)
    _check("thresholds", thresholds, (None,))
    _check("curves", curves, (len(method_labels), thresholds.shape[0], len(group_labels)))
    if ci is not None:
        ci = np.asarray(ci, dtype=float)
        _check("ci", ci, (*curves.shape, 2))
    ok = np.ones(len(group_labels), bool) if valid is None else np.asarray(valid, bool)
    _check("valid", ok, (len(group_labels),))
    rows, cols = _grid(len(method_labels))
    fig = Figure(figsize=(3.4 * cols, 2.9 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    if not method_labels or not group_labels or thresholds.size == 0:
        no_data_panel(axes[0], "no data (no method, group or threshold)")
        fit_title(fig, title)
        return _save(fig, path)
    for i, ax in enumerate(axes):
        if i >= len(method_labels):
            ax.set_visible(False)
            continue
        for j, label in enumerate(group_labels):
            style = {"color": f"C{j % 10}", "linewidth": 1.3} if ok[j] else SMALL_LINE
            ax.plot(thresholds, curves[i, :, j], label=label, **style)
            if ci is not None and ok[j]:
                ax.fill_between(
                    thresholds, ci[i, :, j, 0], ci[i, :, j, 1], color=f"C{j % 10}",
                    alpha=0.15, lw=0,
                )  # fmt: skip
        fit_axes_title(ax, method_labels[i])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("false rejection rate")
        if i // cols == rows - 1:
            ax.set_xlabel(xlabel, fontsize=8)
    figure_legend(fig)
    fit_title(fig, title)
    return _save(fig, path)


def plot_fpr_parity_vs_n(
    num_samples: Sequence[int],
    rs_parity: np.ndarray,
    nr_parity: np.ndarray,
    path: str | os.PathLike[str],
    *,
    attribute_labels: Sequence[str],
    rs_ci: np.ndarray | None = None,
    nr_ci: np.ndarray | None = None,
    title: str = "FPR Parity: randomized smoothing vs neural rejection",
) -> Path:
    """FPR Parity of RS against N (log x axis) with NR as a horizontal line, a panel per attribute.

    FPR Parity is ``max_s AUC_FPR(s) - min_s AUC_FPR(s)`` over the groups of one
    attribute (paper Eq. 4); lower is more equal.

    Args:
      num_samples: the ``k`` values of N.
      rs_parity: RS FPR Parity, shape ``(p, k)`` for ``p`` attributes (NaN = undefined).
      nr_parity: NR FPR Parity, shape ``(p,)``.
      path: PNG file to write.
      attribute_labels: ``p`` panel titles.
      rs_ci: optional confidence band for RS, shape ``(p, k, 2)`` (low, high).
      nr_ci: optional confidence band for NR, shape ``(p, 2)``.
      title: figure title.

    Returns:
      ``Path(path)``.
    """
    n = np.asarray(num_samples, dtype=float)
    rs = np.asarray(rs_parity, dtype=float)
    nr = np.asarray(nr_parity, dtype=float)
    p = len(attribute_labels)
    _check("num_samples", n, (None,))
    _check("rs_parity", rs, (p, n.shape[0]))
    _check("nr_parity", nr, (p,))
    if rs_ci is not None:
        rs_ci = np.asarray(rs_ci, dtype=float)
        _check("rs_ci", rs_ci, (p, n.shape[0], 2))
    if nr_ci is not None:
        nr_ci = np.asarray(nr_ci, dtype=float)
        _check("nr_ci", nr_ci, (p, 2))
    rows, cols = _grid(max(p, 1))
    fig = Figure(figsize=(3.6 * cols, 3.0 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= p:
            if p:
                ax.set_visible(False)
            else:
                no_data_panel(ax, "no attribute with two or more groups")
            continue
        if not (np.isfinite(rs[i]).any() or np.isfinite(nr[i])) or n.size == 0 or np.any(n <= 0):
            fit_axes_title(ax, attribute_labels[i])
            no_data_panel(ax, "no data (FPR Parity undefined)")
            continue
        ax.plot(n, rs[i], marker="o", color="C0", label="RS")
        if rs_ci is not None:
            ax.fill_between(n, rs_ci[i, :, 0], rs_ci[i, :, 1], color="C0", alpha=0.2)
        if np.isfinite(nr[i]):
            ax.axhline(nr[i], color="C3", linestyle="--", label="NR")
            if nr_ci is not None and np.all(np.isfinite(nr_ci[i])):
                ax.axhspan(nr_ci[i, 0], nr_ci[i, 1], color="C3", alpha=0.12)
        if not np.isfinite(rs[i]).any():
            # no RS point gives the x axis no data limits, which a log scale rejects
            ax.set_xlim(n.min() / 1.5, n.max() * 1.5)
        ax.set_xscale("log")
        ax.set_xticks(n, [f"{int(v):d}" for v in n])
        fit_axes_title(ax, attribute_labels[i])
        ax.set_xlabel("noise samples N")
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("FPR Parity (AUC_FPR gap)")
        ax.legend(fontsize=8)
    fit_title(fig, title)
    return _save(fig, path)


def plot_auc_fpr_bars(
    auc: np.ndarray,
    path: str | os.PathLike[str],
    *,
    method_labels: Sequence[str],
    group_labels: Sequence[str],
    title: str = "",
    ci: np.ndarray | None = None,
    valid: Sequence[bool] | np.ndarray | None = None,
) -> Path:
    """Per-group AUC_FPR as grouped bars: one cluster per group, one bar per method.

    Args:
      auc: AUC_FPR per method and group, shape ``(m, g)`` (NaN bars are left empty).
      path: PNG file to write.
      method_labels: ``m`` legend entries.
      group_labels: ``g`` x-tick labels.
      title: figure title (wrapped to the figure width).
      ci: optional interval, shape ``(m, g, 2)`` (low, high), drawn as whiskers
        (NaN = none).
      valid: optional bool ``(g,)``; the bars of groups that do not count are
        faded with a dashed outline and get no whisker.

    Returns:
      ``Path(path)``.
    """
    auc = np.asarray(auc, dtype=float)
    m, g = len(method_labels), len(group_labels)
    _check("auc", auc, (m, g))
    if ci is not None:
        ci = np.asarray(ci, dtype=float)
        _check("ci", ci, (m, g, 2))
    ok = np.ones(g, bool) if valid is None else np.asarray(valid, bool)
    _check("valid", ok, (g,))
    fig = Figure(figsize=(max(5.5, 0.45 * m * g + 2.5), 3.9), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(m, 1)
    x = np.arange(g, dtype=float)
    if m == 0 or g == 0:
        no_data_panel(ax, "no data (no method or group)")
        fit_title(fig, title)
        return _save(fig, path)
    for i, label in enumerate(method_labels):
        pos = x + (i - (m - 1) / 2) * width
        bars = ax.bar(pos, np.nan_to_num(auc[i], nan=0.0), width, label=label, color=f"C{i % 10}")
        for bar, counts in zip(bars, ok, strict=True):
            if not counts:
                bar.set_alpha(0.35)
                bar.set_edgecolor("0.2")
                bar.set_linestyle("--")
        if ci is not None:
            has = ok & np.isfinite(ci[i, :, 0]) & np.isfinite(ci[i, :, 1]) & np.isfinite(auc[i])
            if has.any():
                err = np.stack([auc[i, has] - ci[i, has, 0], ci[i, has, 1] - auc[i, has]])
                ax.errorbar(
                    pos[has], auc[i, has], yerr=err.clip(min=0.0), fmt="none", ecolor="black",
                    elinewidth=1.0, capsize=2,
                )  # fmt: skip
    category_ticks(ax, x, group_labels)
    ax.set_ylabel("AUC_FPR")
    ax.grid(axis="y", alpha=0.3)
    figure_legend(fig)
    fit_title(fig, title)
    return _save(fig, path)


def plot_certified_accuracy(
    radii: np.ndarray,
    accuracy: np.ndarray,
    path: str | os.PathLike[str],
    *,
    group_labels: Sequence[str],
    title: str = "",
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    valid: Sequence[bool] | None = None,
    min_label: str | None = None,
    xlabel: str = "L2 radius",
) -> Path:
    """Certified accuracy against the radius, one line per group.

    Certified accuracy at radius r is the fraction of a group's examples that
    CERTIFY (Cohen et al., 2019) classifies correctly with a radius of at least r.

    Args:
      radii: radius grid, shape ``(r,)``.
      accuracy: certified accuracy in [0, 1], shape ``(r, g)``.
      path: PNG file to write.
      group_labels: ``g`` legend entries.
      title: figure title (wrapped to the figure width).
      lower, upper: optional confidence band (e.g. bootstrap interval), shape
        ``(r, g)`` each, drawn as a shaded step band.
      valid: optional bool ``(g,)``; groups that do not count (under the minimum
        size or speakers) are drawn dashed grey, without a band.
      min_label: optional legend note added to groups that do not count, as
        ``"<label> (<min_label>)"`` (None: the label already says why, e.g.
        :func:`fairrobust.figures.layout.group_label`).
      xlabel: x-axis label (the certificate's norm and space).

    Returns:
      ``Path(path)``.
    """
    radii = np.asarray(radii, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    _check("radii", radii, (None,))
    _check("accuracy", accuracy, (radii.shape[0], len(group_labels)))
    ok = np.ones(len(group_labels), bool) if valid is None else np.asarray(valid, bool)
    _check("valid", ok, (len(group_labels),))
    if (lower is None) != (upper is None):
        raise ValueError("lower, upper: give both bounds of the band or neither")
    if lower is not None and upper is not None:
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        _check("lower", lower, accuracy.shape)
        _check("upper", upper, accuracy.shape)
    fig = Figure(figsize=(5.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for j, label in enumerate(group_labels):
        if not ok[j]:
            name = f"{label} ({min_label})" if min_label else label
            ax.step(radii, accuracy[:, j], where="post", label=name, **SMALL_LINE)
            continue
        (line,) = ax.step(radii, accuracy[:, j], where="post", label=label)
        if lower is not None and upper is not None:
            ax.fill_between(
                radii, lower[:, j], upper[:, j], step="post", color=line.get_color(),
                alpha=0.15, lw=0,
            )  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if len(group_labels):
        ax.legend(fontsize=8)
    else:
        no_data_panel(ax, "no group")
    fit_title(fig, title)
    return _save(fig, path)
