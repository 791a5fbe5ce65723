"""Figures of the rejection study, drawn from a ``rejection_tables.RejectionAnalysis``.

FPR-vs-threshold curves per group (with bootstrap bands), AUC_FPR bars, FPR
Parity against N, and certified accuracy per group against the radius;
``fairrobust.figures.rejection`` draws them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust.figures import rejection as figs
from fairrobust.studies._store import attribute_slug
from fairrobust.studies.rejection_tables import RejectionAnalysis

__all__ = ["write_figures"]


def write_figures(
    analysis: RejectionAnalysis,
    fig_dir: str | os.PathLike[str],
    *,
    certified: Sequence[Mapping[str, Any]] = (),
    radii: Sequence[float] = (),
) -> dict[str, Path]:
    """All rejection figures of ``analysis`` (and certified accuracy rows) as PNGs.

    Returns name -> path: ``fig_fpr_curves_all``, ``fig_fpr_curves_<attr>``,
    ``fig_auc_fpr_<attr>``, ``fig_fpr_parity_vs_n``, ``fig_certified_<attr>``.
    """
    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    out["fig_fpr_curves_all"] = figs.plot_fpr_curves(
        analysis.thresholds,
        analysis.overall_curves[..., None],
        fig_dir / "rejection_fpr_curves_all.png",
        method_labels=analysis.methods,
        group_labels=["all"],
        title="False rejection on clean data (all examples)",
        ci=None
        if analysis.overall_curves_ci is None or not analysis.num_resamples
        else analysis.overall_curves_ci[:, :, None],
    )
    attrs = list(analysis.attributes.values())
    for a in attrs:
        s = attribute_slug(a.attribute)
        labels = [f"{g} (n={int(n)})" for g, n in zip(a.names, a.sizes, strict=True)]
        out[f"fig_fpr_curves_{s}"] = figs.plot_fpr_curves(
            analysis.thresholds,
            a.curves,
            fig_dir / f"rejection_fpr_curves_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"False rejection rate by {a.attribute}",
            ci=a.curves_ci if analysis.num_resamples else None,
        )
        out[f"fig_auc_fpr_{s}"] = figs.plot_auc_fpr_bars(
            a.auc,
            fig_dir / f"rejection_auc_fpr_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"AUC_FPR by {a.attribute}",
        )
    if attrs:
        k = len(analysis.num_samples)
        out["fig_fpr_parity_vs_n"] = figs.plot_fpr_parity_vs_n(
            analysis.num_samples,
            np.stack([a.parity[:k] for a in attrs]),
            np.asarray([a.parity[k] for a in attrs]),
            fig_dir / "rejection_fpr_parity_vs_n.png",
            attribute_labels=[a.attribute for a in attrs],
            rs_ci=np.stack([a.parity_ci[:k] for a in attrs]) if analysis.num_resamples else None,
            nr_ci=np.stack([a.parity_ci[k] for a in attrs]) if analysis.num_resamples else None,
        )
    if certified:
        radii_arr = np.asarray(radii, dtype=np.float64)
        by_attr: dict[str, dict[str, dict[float, tuple[float, float, float]]]] = {}
        valid: dict[tuple[str, str], bool] = {}
        for row in certified:
            valid[(row["attribute"], row["group"])] = bool(row.get("valid", True))
            cell = tuple(
                math.nan if row.get(k) is None else float(row[k])
                for k in ("certified_accuracy", "ci_low", "ci_high")
            )
            by_group = by_attr.setdefault(row["attribute"], {}).setdefault(row["group"], {})
            by_group[row["radius"]] = cell  # type: ignore[assignment]
        missing = (math.nan, math.nan, math.nan)
        for attr, grp_rows in by_attr.items():
            s = attribute_slug(attr)
            names = list(grp_rows)
            arr = np.asarray(
                [[grp_rows[g].get(float(r), missing) for g in names] for r in radii_arr]
            ).reshape(len(radii_arr), len(names), 3)
            acc = arr[..., 0]
            has_band = bool(np.isfinite(arr[..., 1:]).any())  # bootstrap intervals present
            out[f"fig_certified_{s}"] = figs.plot_certified_accuracy(
                radii_arr,
                acc,
                fig_dir / f"rejection_certified_accuracy_{s}.png",
                group_labels=names,
                title=f"Certified accuracy by {attr}",
                valid=[valid[(attr, g)] for g in names],
                lower=arr[..., 1] if has_band else None,
                upper=arr[..., 2] if has_band else None,
            )
    return out
