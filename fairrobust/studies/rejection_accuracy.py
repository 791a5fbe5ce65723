"""Accuracy, abstention and certified accuracy per group, with bootstrap intervals.

The rejection study's ``accuracy`` table (every model: the NR and RS base models,
NR, RS at each N with its abstentions) and ``certified_accuracy`` table (CERTIFY,
Cohen et al. 2019), overall and per group; every group rate of a table and its
interval come from one ``bootstrap_ci`` call (:func:`group_rate_intervals`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairrobust import metrics, smoothing
from fairrobust.studies.rejection_tables import finite_or_none

__all__ = [
    "accuracy_rows",
    "accuracy_table",
    "certified_accuracy_table",
    "group_rate_intervals",
]


def group_rate_intervals(
    values: np.ndarray,
    groups: Mapping[str, Any],
    *,
    key: Any,
    num_resamples: int,
    level: float = 0.95,
    speakers: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap intervals of the rate of ``values`` in every group, as one computation.

    The groups are those of the tables: one ``all`` group of every example, then
    the groups of each attribute in order. ``fairrobust.metrics.bootstrap_ci``
    with :class:`fairrobust.metrics.GroupRateStat` (reweighting, clustered by
    ``speakers``) evaluates every row of ``values`` in one vmapped computation per
    attribute, stratified by that attribute's groups (groups with fewer than 2
    speakers get NaN).

    Args:
      values: per-example values in [0, 1] (e.g. 0/1 correctness), ``(..., n)``.
      groups: attribute -> ``fairrobust.groups.Groups`` over the same n examples.
      key: PRNG key of the resamples.
      num_resamples: resamples >= 1.
      level: interval level in (0, 1).
      speakers: optional speaker id per example ``(n,)``.

    Returns:
      ``(lower, upper)``, each ``(..., 1 + sum of group counts)`` (NaN for empty groups).
    """
    values = np.asarray(values, dtype=np.float32)
    n = values.shape[-1]
    # One call for the "all" row and one per attribute, each stratified by that
    # attribute's groups only (stacked masks would stratify by the joint cells of every
    # attribute, where a speaker is often alone and never resampled).
    parts = [np.ones((1, n), bool)]
    parts += [np.asarray(g.masks, dtype=bool).reshape(-1, n) for g in groups.values()]
    lows, highs = [], []
    for masks in parts:
        if masks.shape[0] == 0:
            continue
        res = metrics.bootstrap_ci(
            metrics.GroupRateStat(),
            values,
            masks,
            key=key,
            num_resamples=int(num_resamples),
            level=float(level),
            speakers=speakers,
        )
        lows.append(np.asarray(res.lower["rates"], np.float64))
        highs.append(np.asarray(res.upper["rates"], np.float64))
    return np.concatenate(lows, axis=-1), np.concatenate(highs, axis=-1)


def certified_accuracy_table(
    pred: np.ndarray,
    radius: np.ndarray,
    labels: np.ndarray,
    radii: Sequence[float],
    groups: Mapping[str, Any],
    *,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    speakers: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Certified accuracy per group at each radius (Cohen et al. 2019).

    Columns: attribute, group, n, valid, radius, certified_accuracy, ci_low, ci_high
    (bootstrap interval, :func:`group_rate_intervals` over the per-example indicator
    ``pred == label and radius >= r`` at every r at once; empty without bootstrap).
    The overall rows have attribute and group ``"all"``.
    """
    radii_arr = np.asarray(radii, dtype=np.float64)
    n_groups = 1 + sum(len(g.names) for g in groups.values())
    lower = upper = np.full((radii_arr.size, n_groups), np.nan)
    if bootstrap_resamples:
        if key is None:
            raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")
        ok = (np.asarray(pred) == np.asarray(labels))[None, :] & (
            np.asarray(radius, np.float64)[None, :] >= radii_arr[:, None]
        )  # [r, n], as smoothing.certified_accuracy
        lower, upper = group_rate_intervals(
            ok, groups, key=key, num_resamples=bootstrap_resamples, level=ci_level,
            speakers=speakers,
        )  # fmt: skip
    rows = []
    all_acc = smoothing.certified_accuracy(pred, radius, labels, radii_arr, None)[:, 0]
    for ri, (r, acc) in enumerate(zip(radii_arr, all_acc, strict=True)):
        rows.append(
            {
                "attribute": "all",
                "group": "all",
                "n": len(labels),
                "valid": True,
                "radius": float(r),
                "certified_accuracy": finite_or_none(acc),
                "ci_low": finite_or_none(lower[ri, 0]),
                "ci_high": finite_or_none(upper[ri, 0]),
            }
        )
    col = 1
    for grp in groups.values():
        acc = smoothing.certified_accuracy(pred, radius, labels, radii_arr, np.asarray(grp.masks))
        for j, g in enumerate(grp.names):
            for ri, r in enumerate(radii_arr):
                rows.append(
                    {
                        "attribute": grp.attribute,
                        "group": g,
                        "n": int(grp.sizes[j]),
                        "valid": bool(grp.valid[j]),
                        "radius": float(r),
                        "certified_accuracy": finite_or_none(acc[ri, j]),
                        "ci_low": finite_or_none(lower[ri, col + j]),
                        "ci_high": finite_or_none(upper[ri, col + j]),
                    }
                )
        col += len(grp.names)
    return rows


def accuracy_rows(
    model: str,
    correct: np.ndarray,
    groups: Mapping[str, Any],
    *,
    abstain: np.ndarray | None = None,
    ci: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Accuracy (and abstention rate) of one model overall and per group.

    Args:
      model: row label (e.g. ``"NR (SVM)"``).
      correct: bool ``[n]`` per-example correctness (an abstention is not correct).
      groups: attribute -> Groups.
      abstain: optional bool ``[n]`` abstentions.
      ci: optional bootstrap intervals ``{"accuracy": (low, high), "abstain_rate":
        (low, high)}``, each ``[1 + sum of group counts]`` in row order (from
        :func:`group_rate_intervals`).

    Returns:
      Rows with columns model, attribute, group, n, valid, accuracy, abstain_rate,
      accuracy_ci_low, accuracy_ci_high, abstain_rate_ci_low, abstain_rate_ci_high
      (None where no interval was given).
    """
    correct = np.asarray(correct, dtype=np.float64)
    ab = None if abstain is None else np.asarray(abstain, dtype=np.float64)
    rows = [
        {
            "model": model,
            "attribute": "all",
            "group": "all",
            "n": int(correct.size),
            "valid": True,
            "accuracy": finite_or_none(correct.mean()) if correct.size else None,
            "abstain_rate": None if ab is None else finite_or_none(ab.mean()),
        }
    ]
    for grp in groups.values():
        m = np.asarray(grp.masks, dtype=np.float64)
        sizes = m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = (m @ correct) / sizes
            abr = None if ab is None else (m @ ab) / sizes
        for j, g in enumerate(grp.names):
            rows.append(
                {
                    "model": model,
                    "attribute": grp.attribute,
                    "group": g,
                    "n": int(sizes[j]),
                    "valid": bool(grp.valid[j]),
                    "accuracy": finite_or_none(acc[j]),
                    "abstain_rate": None if abr is None else finite_or_none(abr[j]),
                }
            )
    for c, row in enumerate(rows):  # row c is column c of the interval arrays
        for name in ("accuracy", "abstain_rate"):
            lo_hi = (ci or {}).get(name)
            ok = lo_hi is not None and row[name] is not None
            row[f"{name}_ci_low"] = finite_or_none(lo_hi[0][c]) if ok else None  # type: ignore[index]
            row[f"{name}_ci_high"] = finite_or_none(lo_hi[1][c]) if ok else None  # type: ignore[index]
    return rows


def accuracy_table(
    models: Sequence[tuple[str, np.ndarray, np.ndarray | None]],
    groups: Mapping[str, Any],
    *,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    speakers: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The ``accuracy`` table: :func:`accuracy_rows` of several models, one after another.

    The intervals of every model's group accuracy (and abstention rate) come from
    one set of resamples: one :func:`group_rate_intervals` computation over the
    stacked per-example indicators (accuracies first, then abstentions).

    Args:
      models: ``(label, correct bool [n], abstain bool [n] or None)`` per model.
      groups: attribute -> Groups over the same n examples.
      bootstrap_resamples: resamples (0: no intervals).
      ci_level: interval level.
      key: PRNG key (required when ``bootstrap_resamples > 0``).
      speakers: optional speaker id per example ``(n,)`` (cluster bootstrap).

    Returns:
      The rows of every model (columns of :func:`accuracy_rows`).
    """
    cis: list[dict[str, tuple[np.ndarray, np.ndarray]] | None] = [None] * len(models)
    if bootstrap_resamples:
        if key is None:
            raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")
        stacked = [c for _, c, _ in models] + [a for _, _, a in models if a is not None]
        lo, hi = group_rate_intervals(
            np.stack(stacked), groups, key=key, num_resamples=bootstrap_resamples,
            level=ci_level, speakers=speakers,
        )  # fmt: skip
        j = len(models)
        for i, (_, _, abstain) in enumerate(models):
            ci = {"accuracy": (lo[i], hi[i])}
            if abstain is not None:
                ci["abstain_rate"] = (lo[j], hi[j])
                j += 1
            cis[i] = ci
    rows: list[dict[str, Any]] = []
    for (label, correct, abstain), ci in zip(models, cis, strict=True):
        rows += accuracy_rows(label, correct, groups, abstain=abstain, ci=ci)
    return rows
