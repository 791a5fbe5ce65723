"""Paired comparisons of the rejection study: FPR Parity of RS vs NR, and of RS across N.

Every comparison is a difference of two FPR Parity numbers of the same
attribute on the same clips and the same bootstrap resamples
(``RejectionAnalysis.parity_samples``), with its interval and p-value
(:func:`fairrobust.studies.intervals.comparison_rows`), Holm-corrected within
its family (:func:`fairrobust.studies.intervals.apply_holm`). Written to
``results/rejection_comparisons.{csv,json}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fairrobust.studies.intervals import apply_holm, comparison_rows
from fairrobust.studies.rejection_tables import RejectionAnalysis

__all__ = ["rejection_comparisons"]


def rejection_comparisons(analysis: RejectionAnalysis, level: float) -> list[dict[str, Any]]:
    """FPR Parity comparisons per attribute (empty without bootstrap replicates).

    Families (``family`` column): ``fpr_parity_rs_vs_nr`` (RS at each N minus NR)
    and ``fpr_parity_largest_vs_smallest_n`` (RS at the largest N minus RS at the
    smallest, when there are several N).

    Args:
      analysis: the study's :class:`RejectionAnalysis`.
      level: interval level (Holm at ``1 - level``).

    Returns:
      Rows: family, statistic, attribute, method, reference, num_samples, value,
      reference_value, difference, ci_low, ci_high, p_value, p_holm,
      n_comparisons, significant.
    """
    samples = analysis.parity_samples
    if samples is None:
        return []
    ns = list(analysis.num_samples)
    k = len(ns)
    rows: list[dict[str, Any]] = []
    for i, (attr, a) in enumerate(analysis.attributes.items()):
        est = np.asarray(a.parity, np.float64)  # [m]: RS at each N, then NR
        head = {
            "family": "fpr_parity_rs_vs_nr",
            "statistic": "fpr_parity",
            "attribute": attr,
            "method": "RS",
            "reference": "NR",
            "num_samples": ns,
        }
        rows += comparison_rows(
            head,
            est[:k],
            samples[:, i, :k],
            np.full(k, est[k]),
            np.repeat(samples[:, i, k : k + 1], k, axis=1),
            level=level,
        )
        if k >= 2:
            head = {
                "family": "fpr_parity_largest_vs_smallest_n",
                "statistic": "fpr_parity",
                "attribute": attr,
                "method": "RS",
                "reference": f"RS N={ns[0]}",
                "num_samples": ns[-1],
            }
            rows += comparison_rows(
                head,
                est[k - 1],
                samples[:, i, k - 1],
                est[0],
                samples[:, i, 0],
                level=level,
            )
    return apply_holm(rows, 1.0 - level)
