"""Certified Parity of one certification: the ``rejection_certified_parity`` table.

Per attribute and group: the normalised area under the certified-accuracy curve
over a stated radius range ``[r_lo, r_hi]`` (``CAUC``), the median certified radius
(abstentions and misclassifications count as radius 0) and, per attribute,
Certified Parity = max - min of CAUC over valid groups
(``fairrobust.metrics.certified``). Intervals: one ``bootstrap_ci`` call per
attribute with :class:`fairrobust.metrics.CertifiedAucStat` (stratified by that
attribute's groups, clustered by speaker): percentile intervals per group (none
under ``min_speakers`` speakers) and ``gap_interval`` for Certified Parity, the
method of FPR Parity and Defense Parity.

:func:`certified_parity_rows` takes the per-example arrays of ONE certification
(one noise level, one space) and returns rows, so a caller sweeping sigmas or
spaces calls it per certification and adds its own columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairrobust import metrics
from fairrobust.studies.rejection_tables import finite_or_none

__all__ = ["certified_parity_rows", "certified_range"]


def certified_range(
    configured: Sequence[float], radii: Sequence[float]
) -> tuple[float, float] | None:
    """The radius range of Certified Parity: ``configured``, or ``[0, max(radii)]`` when empty.

    Returns:
      ``(r_lo, r_hi)``, or None when the default range is empty (``max(radii) == 0``).
    """
    if len(configured):
        lo, hi = (float(v) for v in configured)
        return metrics.radius_range(lo, hi)
    hi = max((float(r) for r in radii), default=0.0)
    return (0.0, hi) if hi > 0 else None


def certified_parity_rows(
    pred: np.ndarray,
    radius: np.ndarray,
    labels: np.ndarray,
    groups: Mapping[str, Any],
    *,
    r_lo: float,
    r_hi: float,
    speakers: np.ndarray | None = None,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    min_speakers: int = 2,
) -> list[dict[str, Any]]:
    """Rows of ``rejection_certified_parity``: CAUC and median radius per group, Certified Parity.

    Args:
      pred: int ``[n]`` CERTIFY predictions (-1 = abstain).
      radius: float ``[n]`` certified radii.
      labels: int ``[n]`` true labels.
      groups: attribute -> ``fairrobust.groups.Groups`` over the same ``n`` clips.
      r_lo, r_hi: the radius range (``0 <= r_lo < r_hi``).
      speakers: optional speaker id per clip (bootstrap clusters).
      bootstrap_resamples: resamples (0: no intervals).
      ci_level: interval level.
      key: PRNG key (required with resamples).
      min_speakers: fewest speakers for a group's interval.

    Returns:
      One row per attribute and group, columns: attribute, group, n, speakers,
      valid, r_lo, r_hi, certified_auc, certified_auc_ci_low, certified_auc_ci_high,
      median_radius, median_radius_ci_low, median_radius_ci_high, and the
      attribute's certified_parity, certified_parity_ci_low, certified_parity_ci_high,
      n_valid_groups (the same on every row of the attribute). Intervals are None
      without bootstrap; Certified Parity is None with fewer than two valid groups.
    """
    lo, hi = metrics.radius_range(r_lo, r_hi)
    if bootstrap_resamples and key is None:
        raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")
    correct = np.asarray(pred) == np.asarray(labels)
    rad = np.asarray(radius, np.float32)
    rows: list[dict[str, Any]] = []
    for grp in groups.values():
        masks = np.asarray(grp.masks, bool).reshape(-1, correct.shape[0])
        if masks.shape[0] == 0:
            continue
        valid = tuple(bool(v) for v in np.asarray(grp.valid))
        stat = metrics.CertifiedAucStat(lo, hi, valid)
        if bootstrap_resamples:
            res = metrics.bootstrap_ci(
                stat, (correct, rad), masks, key=key, num_resamples=int(bootstrap_resamples),
                level=float(ci_level), speakers=speakers, min_clusters=int(min_speakers),
            )  # fmt: skip
            est, low, high = res.estimate, res.lower, res.upper
        else:
            est = stat((correct, rad), masks, None)
            low = high = None
        rows += _attribute_rows(grp, est, low, high, lo, hi)
    return rows


def _cell(tree: Any, name: str, j: int | None = None) -> float | None:
    if tree is None:
        return None
    v = np.asarray(tree[name])
    return finite_or_none(v if j is None else v[j])


def _attribute_rows(grp, est, low, high, lo: float, hi: float) -> list[dict[str, Any]]:
    """The rows of one attribute from the statistic's estimate and interval bounds."""
    counts = grp.speaker_counts
    parity = {
        "certified_parity": _cell(est, "certified_parity"),
        "certified_parity_ci_low": _cell(low, "certified_parity"),
        "certified_parity_ci_high": _cell(high, "certified_parity"),
        "n_valid_groups": int(np.sum(grp.valid)),
    }
    rows = []
    for j, name in enumerate(grp.names):
        rows.append(
            {
                "attribute": grp.attribute,
                "group": name,
                "n": int(grp.sizes[j]),
                "speakers": None if counts is None else int(counts[j]),
                "valid": bool(grp.valid[j]),
                "r_lo": lo,
                "r_hi": hi,
                "certified_auc": _cell(est, "certified_auc", j),
                "certified_auc_ci_low": _cell(low, "certified_auc", j),
                "certified_auc_ci_high": _cell(high, "certified_auc", j),
                "median_radius": _cell(est, "median_radius", j),
                "median_radius_ci_low": _cell(low, "median_radius", j),
                "median_radius_ci_high": _cell(high, "median_radius", j),
                **parity,
            }
        )
    return rows
