"""Figures of the rejection study, drawn from a ``rejection_tables.RejectionAnalysis``.

FPR-vs-threshold curves per group (with bootstrap bands), AUC_FPR bars per group
(with bootstrap whiskers), FPR Parity against N, and certified accuracy per
group against the radius; ``fairrobust.figures.rejection`` draws them. Groups
that do not count (under the minimum size or speakers) are drawn dashed grey /
faded, without an interval, and their label says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust.figures import rejection as figs
from fairrobust.figures.layout import group_label
from fairrobust.studies._store import attribute_slug
from fairrobust.studies.rejection_tables import RejectionAnalysis

__all__ = ["write_figures"]


def _why(n: Any, min_size: int | None) -> str:
    """Why a group does not count: under the minimum size, else too few speakers."""
    if min_size is None or n is None:
        return "not counted"
    return "too small" if int(n) < min_size else "too few speakers"


def write_figures(
    analysis: RejectionAnalysis,
    fig_dir: str | os.PathLike[str],
    *,
    certified: Sequence[Mapping[str, Any]] = (),
    radii: Sequence[float] = (),
    min_group_size: int | None = None,
) -> dict[str, Path]:
    """All rejection figures of ``analysis`` (and certified accuracy rows) as PNGs.

    Args:
      analysis: the study's group reductions.
      fig_dir: output folder.
      certified: rows of the ``certified_accuracy`` table of one certification
        (one model, sigma and space); their ``norm`` and ``space`` name the x axis.
      radii: the radius grid.
      min_group_size: the study's minimum group size; labels of groups that do
        not count say "too small" under it, else "too few speakers".

    Returns name -> path: ``fig_fpr_curves_all``, ``fig_fpr_curves_<attr>``,
    ``fig_auc_fpr_<attr>``, ``fig_fpr_parity_vs_n``, ``fig_certified_<attr>``
    (``<attr>`` includes ``all`` for the certified accuracy of every clip).
    """
    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    boot = bool(analysis.num_resamples)
    out["fig_fpr_curves_all"] = figs.plot_fpr_curves(
        analysis.thresholds,
        analysis.overall_curves[..., None],
        fig_dir / "rejection_fpr_curves_all.png",
        method_labels=analysis.methods,
        group_labels=[f"all clips (n={analysis.num_examples})" if analysis.num_examples else "all"],
        title="False rejection on clean data (all examples)",
        ci=None
        if analysis.overall_curves_ci is None or not boot
        else analysis.overall_curves_ci[:, :, None],
    )
    attrs = list(analysis.attributes.values())
    for a in attrs:
        s = attribute_slug(a.attribute)
        valid = np.asarray(a.valid, bool)
        labels = [
            group_label(g, int(n), bool(v), _why(n, min_group_size))
            for g, n, v in zip(a.names, a.sizes, valid, strict=True)
        ]
        out[f"fig_fpr_curves_{s}"] = figs.plot_fpr_curves(
            analysis.thresholds,
            a.curves,
            fig_dir / f"rejection_fpr_curves_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"False rejection rate by {a.attribute}",
            ci=a.curves_ci if boot else None,
            valid=valid,
        )
        out[f"fig_auc_fpr_{s}"] = figs.plot_auc_fpr_bars(
            a.auc,
            fig_dir / f"rejection_auc_fpr_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"AUC_FPR by {a.attribute}"
            + (" (whiskers: bootstrap intervals)" if boot else ""),
            ci=a.auc_ci if boot else None,
            valid=valid,
        )
    if attrs:
        k = len(analysis.num_samples)
        out["fig_fpr_parity_vs_n"] = figs.plot_fpr_parity_vs_n(
            analysis.num_samples,
            np.stack([a.parity[:k] for a in attrs]),
            np.asarray([a.parity[k] for a in attrs]),
            fig_dir / "rejection_fpr_parity_vs_n.png",
            attribute_labels=[a.attribute for a in attrs],
            rs_ci=np.stack([a.parity_ci[:k] for a in attrs]) if boot else None,
            nr_ci=np.stack([a.parity_ci[k] for a in attrs]) if boot else None,
        )
    if certified:
        out.update(_certified_figures(certified, radii, fig_dir, min_group_size))
    return out


def _certified_figures(
    certified: Sequence[Mapping[str, Any]],
    radii: Sequence[float],
    fig_dir: Path,
    min_group_size: int | None,
) -> dict[str, Path]:
    """``fig_certified_<attr>``: certified accuracy vs radius per group of each attribute."""
    out: dict[str, Path] = {}
    radii_arr = np.asarray(radii, dtype=np.float64)
    by_attr: dict[str, dict[str, dict[float, tuple[float, float, float]]]] = {}
    info: dict[tuple[str, str], tuple[bool, Any]] = {}
    for row in certified:
        info[(row["attribute"], row["group"])] = (bool(row.get("valid", True)), row.get("n"))
        cell = tuple(
            math.nan if row.get(k) is None else float(row[k])
            for k in ("certified_accuracy", "ci_low", "ci_high")
        )
        by_group = by_attr.setdefault(row["attribute"], {}).setdefault(row["group"], {})
        by_group[float(row["radius"])] = cell  # type: ignore[assignment]
    first = certified[0]
    norm, space = str(first.get("norm", "l2")).upper(), first.get("space", "waveform")
    what = " ".join(str(first[k]) for k in ("model",) if first.get(k))
    missing = (math.nan, math.nan, math.nan)
    for attr, grp_rows in by_attr.items():
        s = attribute_slug(attr)
        names = list(grp_rows)
        arr = np.asarray(
            [[grp_rows[g].get(float(r), missing) for g in names] for r in radii_arr]
        ).reshape(len(radii_arr), len(names), 3)
        has_band = bool(np.isfinite(arr[..., 1:]).any())  # bootstrap intervals present
        valid = [info[(attr, g)][0] for g in names]
        labels = [
            group_label(g, info[(attr, g)][1], v, _why(info[(attr, g)][1], min_group_size))
            for g, v in zip(names, valid, strict=True)
        ]
        out[f"fig_certified_{s}"] = figs.plot_certified_accuracy(
            radii_arr,
            arr[..., 0],
            fig_dir / f"rejection_certified_accuracy_{s}.png",
            group_labels=labels,
            title=f"Certified accuracy by {attr}" + (f" ({what})" if what else ""),
            valid=valid,
            lower=arr[..., 1] if has_band else None,
            upper=arr[..., 2] if has_band else None,
            xlabel=f"{norm} radius ({space} space)",
        )
    return out
