"""RS answerability: the smallest alpha RS can answer per N, and AUC_FPR over the
threshold range every rejection method can answer.

With N draws the smallest PREDICT p-value is ``2 * 0.5^N``, so at smaller alpha RS
abstains on every input and its FPR is 1 by construction (N = 10: alpha < 0.00195),
which inflates AUC_FPR over the paper's grid ``[0.001, 1]``. These helpers give the
floors and the AUC_FPR / FPR Parity over the common range, written beside (never in
place of) the full-range tables. NR's threshold axis is a probability (top SVM
score) and RS's a p-value: different scales even over a common range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fairrobust import smoothing
from fairrobust.studies.rejection_tables import RejectionAnalysis, finite_or_none

__all__ = ["answerable_range", "answerable_summary", "common_range_table"]


def answerable_range(analysis: RejectionAnalysis) -> tuple[np.ndarray, float, float]:
    """Smallest alpha RS can answer per N, and the threshold range every method answers.

    RS with N draws abstains on every input for ``alpha < 2 * 0.5^N``
    (``smoothing.smallest_answerable_alpha``; N = 10: 0.00195), so its FPR is 1 there
    by construction and its AUC_FPR is inflated. NR (a threshold on a probability) can
    answer at every grid point. The common range is ``[lo, alpha_max]`` with ``lo``
    the first grid threshold at or above every N's floor (scipy's relative tolerance
    1e-7).

    Returns:
      ``(floors [k] float64, lo, hi)``; ``lo = hi = NaN`` when fewer than two grid
      points are answerable by every method.
    """
    floors = smoothing.smallest_answerable_alpha(np.asarray(analysis.num_samples, np.int64))
    t = analysis.thresholds
    ok = t * (1.0 + smoothing.PVALUE_RTOL) >= (floors.max() if floors.size else 0.0)
    if ok.sum() < 2:
        return floors, math.nan, math.nan
    return floors, float(t[ok][0]), float(t[-1])


def common_range_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """AUC_FPR and FPR Parity over the threshold range every method can answer.

    The same curves and trapezoid rule as ``auc_fpr`` (raw integral, not
    normalised), restricted to the grid thresholds in :func:`answerable_range`, so
    RS is not charged for thresholds below its floor ``2 * 0.5^N``. Note that NR's
    threshold axis is a probability (top SVM score) and RS's a p-value: the two
    methods' AUC_FPR are on different scales even over a common range.

    Columns: method, num_samples, label, smallest_answerable_alpha (RS: ``2 * 0.5^N``;
    NR: the grid's first threshold), common_alpha_min, common_alpha_max, attribute
    (``"all"`` for every evaluated example), group (``"all"`` / a group name, or
    ``"(parity)"`` for the attribute's FPR Parity over valid groups), auc_fpr_common
    (AUC_FPR of the group, or the FPR Parity on ``"(parity)"`` rows), auc_fpr (the
    full-range value of the same cell, for comparison).
    """
    floors, lo, hi = answerable_range(analysis)
    t = analysis.thresholds
    sel = (t >= lo) & (t <= hi) if math.isfinite(lo) else np.zeros(t.shape, bool)

    def integral(curves: np.ndarray) -> np.ndarray:  # [..., a, g] -> [..., g]
        if sel.sum() < 2:
            return np.full(curves.shape[:-2] + curves.shape[-1:], np.nan)
        return np.trapezoid(np.swapaxes(curves[..., sel, :], -1, -2), t[sel], axis=-1)

    cells: list[tuple[str, str, np.ndarray, np.ndarray]] = [
        ("all", "all", integral(analysis.overall_curves[:, :, None])[:, 0], analysis.overall_auc)
    ]
    for attr in analysis.attributes.values():
        auc = integral(attr.curves)  # [m, g]
        for j, name in enumerate(attr.names):
            cells.append((attr.attribute, name, auc[:, j], attr.auc[:, j]))
        v = auc[:, attr.valid]
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(v)
            hi_v = np.where(finite, v, -np.inf).max(1, initial=-np.inf)
            lo_v = np.where(finite, v, np.inf).min(1, initial=np.inf)
            # fewer than two valid groups (e.g. every group one speaker): no parity
            gap = np.where(finite.sum(1) >= 2, hi_v - lo_v, np.nan)
        cells.append((attr.attribute, "(parity)", gap, attr.parity))
    k = len(analysis.num_samples)
    rows = []
    for attribute, group, common, full in cells:
        for i in range(len(analysis.methods)):
            rows.append(
                {
                    "method": "NR" if i == k else "RS",
                    "num_samples": None if i == k else analysis.num_samples[i],
                    "label": analysis.methods[i],
                    "smallest_answerable_alpha": float(floors[i] if i < k else t[0]),
                    "common_alpha_min": finite_or_none(lo),
                    "common_alpha_max": finite_or_none(hi),
                    "attribute": attribute,
                    "group": group,
                    "auc_fpr_common": finite_or_none(common[i]),
                    "auc_fpr": finite_or_none(full[i]),
                }
            )
    return rows


def answerable_summary(analysis: RejectionAnalysis) -> dict[str, Any]:
    """The summary field ``rs_answerable``: floors per N, the common range, and the N
    whose floor lies above the grid's first threshold (unanswerable there)."""
    floors, lo, hi = answerable_range(analysis)
    pairs = list(zip(analysis.num_samples, floors.tolist(), strict=True))
    return {
        "smallest_alpha": {str(n): f for n, f in pairs},
        "common_range": [finite_or_none(lo), finite_or_none(hi)],
        "unanswerable_n": [int(n) for n, f in pairs if f > analysis.thresholds[0]],
    }
