"""Tables of the rejection study, from per-example rejection statistics (pure, no I/O).

:func:`analyze` reduces the per-example PREDICT p-values of randomized smoothing
(RS, one row per sample size N) and the top neural-rejection (NR) scores to
false-rejection curves, AUC_FPR per group (paper Eq. 3) and FPR Parity per
attribute (Eq. 4), with bootstrap intervals; the ``*_table`` builders turn a
:class:`RejectionAnalysis` (and accuracy / certification arrays) into the rows
of the results files, and :func:`write_csv` writes them. These are what the
tests check against closed forms.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust import _io, metrics
from fairrobust.studies.intervals import gap_replicates, scaled_replicates

__all__ = [
    "AttributeRejection",
    "RejectionAnalysis",
    "analyze",
    "auc_fpr_long_table",
    "auc_fpr_table",
    "certify_table",
    "correlation_table",
    "finite_or_none",
    "fpr_curve_table",
    "fpr_parity_table",
    "method_labels",
    "write_csv",
]


@dataclasses.dataclass(frozen=True, eq=False)
class AttributeRejection:
    """False-rejection results of every method for the groups of one attribute.

    Methods are ordered as ``RejectionAnalysis.methods`` (RS at each N, then NR).

    Attributes:
      attribute: attribute name (intersections joined by ``" x "``).
      names: group names ``[g]``.
      sizes: evaluated examples per group ``[g]``.
      valid: groups counted in parity / correlation (``size >= min_size``) ``[g]``.
      train_sizes: training examples per group ``[g]`` (None when unknown).
      curves: FPR ``[m, a, g]`` over the threshold grid.
      auc: AUC_FPR ``[m, g]``.
      parity: FPR Parity ``[m]`` over valid groups (NaN with fewer than 2).
      auc_ci: bootstrap interval of ``auc``, ``[m, g, 2]`` (NaN without bootstrap).
      parity_ci: bootstrap interval of ``parity``, ``[m, 2]`` (NaN without bootstrap).
      curves_ci: bootstrap interval of ``curves``, ``[m, a, g, 2]`` (NaN without
        bootstrap; the same resamples as ``auc_ci``).
    """

    attribute: str
    names: tuple[str, ...]
    sizes: np.ndarray
    valid: np.ndarray
    train_sizes: np.ndarray | None
    curves: np.ndarray
    auc: np.ndarray
    parity: np.ndarray
    auc_ci: np.ndarray
    parity_ci: np.ndarray
    curves_ci: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class RejectionAnalysis:
    """Group reductions of per-example rejection statistics (output of :func:`analyze`).

    Attributes:
      thresholds: threshold grid ``[a]``.
      num_samples: the RS sample sizes N ``[k]``.
      methods: ``k + 1`` labels: ``"RS N=10"``, ..., ``"NR"``.
      overall_curves: FPR of all evaluated examples ``[m, a]``.
      overall_auc: AUC_FPR of all evaluated examples ``[m]``.
      attributes: attribute name -> :class:`AttributeRejection`.
      overall_curves_ci: bootstrap interval of ``overall_curves``, ``[m, a, 2]``
        (NaN without bootstrap).
      ci_level: level of the bootstrap intervals (None without bootstrap).
      num_resamples: bootstrap resamples (0 without bootstrap).
      num_examples: n, the number of evaluated examples.
      parity_samples: bootstrap replicates of FPR Parity ``[R, p, m]`` (attribute,
        method) on shared resamples, for paired comparisons (None without bootstrap).
    """

    thresholds: np.ndarray
    num_samples: tuple[int, ...]
    methods: tuple[str, ...]
    overall_curves: np.ndarray
    overall_auc: np.ndarray
    attributes: dict[str, AttributeRejection]
    ci_level: float | None = None
    num_resamples: int = 0
    num_examples: int = 0
    overall_curves_ci: np.ndarray | None = None
    parity_samples: np.ndarray | None = None


def method_labels(num_samples: Sequence[int]) -> tuple[str, ...]:
    """``("RS N=10", ..., "NR")``: the method axis of every rejection array."""
    return (*(f"RS N={int(n)}" for n in num_samples), "NR")


def _stacked_masks(
    groups: Mapping[str, Any], n: int
) -> tuple[np.ndarray, tuple[tuple[int, int], ...], np.ndarray]:
    """One ``all`` row then every group of every attribute: ``(masks [G, n], spans, valid [G])``.

    ``spans[i]`` is the ``[lo, hi)`` column range of the i-th attribute.
    """
    blocks = [np.ones((1, n), dtype=bool)]
    valid = [np.ones(1, dtype=bool)]
    for name, grp in groups.items():
        masks = np.asarray(grp.masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != n:
            raise ValueError(f"groups[{name!r}].masks: expected shape (g, {n}), got {masks.shape}")
        blocks.append(masks)
        valid.append(np.asarray(grp.valid, dtype=bool))
    stops = np.cumsum([b.shape[0] for b in blocks])
    spans = tuple(zip((int(v) for v in stops[:-1]), (int(v) for v in stops[1:]), strict=True))
    return np.concatenate(blocks, axis=0), spans, np.concatenate(valid)


def _attribute_parity(auc: jax.Array, spans: Sequence[tuple[int, int]], valid: jax.Array):
    """Inside the bootstrap: FPR Parity of every attribute span of ``auc [m, G]`` -> ``[p, m]``.

    ``metrics.fpr_parity`` over the valid groups of each span; NaN for an attribute
    without groups.
    """
    m = auc.shape[0]
    if not spans:
        return jnp.zeros((0, m), auc.dtype)
    return jnp.stack(
        [
            metrics.fpr_parity(auc[:, lo:hi], valid[lo:hi]) if hi > lo else jnp.full(m, jnp.nan)
            for lo, hi in spans
        ]
    )


@dataclasses.dataclass(frozen=True)
class _BootstrapStat:
    """Bootstrap statistic of :func:`analyze`: AUC_FPR, FPR Parity and FPR curves of every method.

    ``values = {"rs": pvalues [k, n], "nr": nr_stat [n]}``; returns ``auc [m, G]``
    (``metrics.AucFprStat``, the linear O(n) form), ``parity [p, m]`` per attribute
    span and ``curves [m, a, G]`` (``metrics.rejection_curves``), m = k + 1 methods.
    Hashable, so the bootstrap compiles once.
    """

    thresholds: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]
    valid: tuple[bool, ...]

    def __call__(self, values: Any, masks: Any, weights: Any) -> dict[str, Any]:
        t = jnp.asarray(self.thresholds, jnp.float32)
        rs = metrics.AucFprStat(self.thresholds, reject_if="above")(values["rs"], masks, weights)
        nr = metrics.AucFprStat(self.thresholds, reject_if="below")(values["nr"], masks, weights)
        auc = jnp.concatenate([rs["auc_fpr"], nr["auc_fpr"][None]], axis=0)
        parity = _attribute_parity(auc, self.spans, jnp.asarray(self.valid))
        rs_c = metrics.rejection_curves(values["rs"], t, masks, weights=weights[None])
        nr_c = metrics.rejection_curves(values["nr"], t, masks, reject_if="below", weights=weights)
        curves = jnp.concatenate([rs_c, nr_c[None]], axis=0)
        return {"auc": auc, "parity": parity, "curves": curves}


def _point_auc(
    pvalues: np.ndarray, nr_stat: np.ndarray, thresholds: np.ndarray, groups: Mapping[str, Any]
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """AUC_FPR of everyone ``[m]`` and, per attribute, ``(auc [m, g], parity [m])``.

    ``metrics.auc_fpr`` for the ``all`` group and one ``metrics.auc_fpr_by_attribute``
    per method for every attribute with groups (``m = k + 1``: RS at each N, then NR).
    """
    everyone = np.ones((1, pvalues.shape[1]), dtype=bool)
    overall = np.concatenate(
        [
            np.asarray(metrics.auc_fpr(pvalues, thresholds, everyone, reject_if="above"))[:, 0],
            np.asarray(metrics.auc_fpr(nr_stat, thresholds, everyone, reject_if="below")),
        ]
    ).astype(np.float64)
    present = {name: grp for name, grp in groups.items() if np.shape(grp.masks)[0]}
    by_attr: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if present:
        rs = metrics.auc_fpr_by_attribute(pvalues, thresholds, present, reject_if="above")
        nr = metrics.auc_fpr_by_attribute(nr_stat, thresholds, present, reject_if="below")
        for name in present:
            auc = np.concatenate([np.asarray(rs[name].values), np.asarray(nr[name].values)[None]])
            parity = np.concatenate([np.asarray(rs[name].parity), [np.asarray(nr[name].parity)]])
            by_attr[name] = (auc.astype(np.float64), parity.astype(np.float64))
    m = pvalues.shape[0] + 1
    for name in groups:
        by_attr.setdefault(name, (np.zeros((m, 0)), np.full(m, np.nan)))
    return overall, by_attr


def _intervals(
    pvalues: np.ndarray,
    nr_stat: np.ndarray,
    thresholds: np.ndarray,
    all_masks: np.ndarray,
    spans: tuple[tuple[int, int], ...],
    all_valid: np.ndarray,
    curves_shape: tuple[int, ...],
    *,
    bootstrap_resamples: int,
    ci_level: float,
    key: Any,
    speakers: np.ndarray | None,
    min_speakers: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Bootstrap intervals of :func:`analyze`: ``auc_ci [m, G, 2]``, ``parity_ci [p, m, 2]``,
    ``curves_ci [m, a, G, 2]`` and the (small-cluster corrected) FPR Parity replicates
    ``[R, p, m]`` (None without bootstrap); NaN where there is no interval."""
    m = pvalues.shape[0] + 1
    n = pvalues.shape[1]
    auc_ci = np.full((m, all_masks.shape[0], 2), np.nan)
    parity_ci = np.full((len(spans), m, 2), np.nan)
    curves_ci = np.full((*curves_shape, 2), np.nan)  # [m, a, G, 2]
    parity_samples = None
    if bootstrap_resamples:
        stat_fn = _BootstrapStat(
            tuple(float(t) for t in thresholds.astype(np.float32)),
            spans,
            tuple(bool(v) for v in all_valid),
        )
        kw = {
            "key": key,
            "num_resamples": int(bootstrap_resamples),
            "level": float(ci_level),
            "speakers": speakers,
            "min_clusters": int(min_speakers),
            "return_samples": True,
        }
        values = {"rs": pvalues, "nr": nr_stat}
        # The "all" row: one stratum. Each attribute: its own call, stratified by its own
        # groups only (stacked masks would stratify by the joint cells of every attribute,
        # where a speaker is often alone, and resample nothing); the same key keeps the
        # methods of one attribute paired.
        res = metrics.bootstrap_ci(stat_fn, values, all_masks, strata=np.zeros(n), **kw)
        auc_ci[:, 0] = np.stack([res.lower["auc"][:, 0], res.upper["auc"][:, 0]], -1)
        curves_ci[:, :, 0] = np.stack(
            [res.lower["curves"][:, :, 0], res.upper["curves"][:, :, 0]], -1
        )
        parity_samples = np.full((bootstrap_resamples, len(spans), m), np.nan)
        for i, (lo, hi) in enumerate(spans):
            if hi == lo:
                continue
            sub = all_masks[lo:hi]
            strata = np.where(sub.any(0), sub.argmax(0), -1)
            res = metrics.bootstrap_ci(stat_fn, values, all_masks, strata=strata, **kw)
            cols = slice(lo, hi)
            few = res.clusters_per_group[cols] < min_speakers  # no interval for these groups
            a_lo, a_hi = (
                np.asarray(res.lower["auc"])[:, cols],
                np.asarray(res.upper["auc"])[:, cols],
            )
            auc_ci[:, cols] = np.where(few[..., None], np.nan, np.stack([a_lo, a_hi], -1))
            c_lo = np.asarray(res.lower["curves"])[:, :, cols]
            c_hi = np.asarray(res.upper["curves"])[:, :, cols]
            curves_ci[:, :, cols] = np.where(few[..., None], np.nan, np.stack([c_lo, c_hi], -1))
            clusters = None if speakers is None else res.clusters_per_group[cols]
            auc_s = scaled_replicates(
                res.estimate["auc"][:, cols], res.samples["auc"][:, :, cols], clusters
            )
            parity_samples[:, i] = gap_replicates(auc_s, all_valid[cols])  # paired comparisons
            if hi - lo < 2:
                continue  # fewer than two groups: no parity, no interval
            _, p_lo, p_hi = metrics.gap_interval(
                res.estimate["auc"][:, cols],
                res.samples["auc"][:, :, cols],
                all_valid[cols],
                level=float(ci_level),
                clusters=clusters,
            )
            parity_ci[i] = np.stack([np.asarray(p_lo), np.asarray(p_hi)], -1)
    return auc_ci, parity_ci, curves_ci, parity_samples


def analyze(
    pvalues: np.ndarray,
    nr_stat: np.ndarray,
    thresholds: np.ndarray,
    groups: Mapping[str, Any],
    *,
    num_samples: Sequence[int],
    train_sizes: Mapping[str, np.ndarray] | None = None,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    speakers: np.ndarray | None = None,
    min_speakers: int = 2,
) -> RejectionAnalysis:
    """FPR curves, AUC_FPR and FPR Parity per group for RS at every N and for NR.

    RS rejects example i at alpha iff ``pvalues[k, i] > alpha`` (PREDICT abstains);
    NR rejects iff ``nr_stat[i] < t`` (top SVM score below t). The curves ``[m, a, G]``
    of every group of every attribute (plus an ``all`` group) are one batched
    computation per method (``fairrobust.metrics.rejection_curves``, no Python loop
    over thresholds or groups); AUC_FPR (Eq. 3, raw trapezoid integral, so for RS
    it approaches ``mean_i clip(p_i - alpha_min, 0, alpha_max - alpha_min)``) and
    FPR Parity, the largest AUC_FPR gap between valid groups (Eq. 4), come from
    ``fairrobust.metrics.auc_fpr_by_attribute``; their bootstrap intervals from
    ``_BootstrapStat`` (``metrics.AucFprStat`` per method) and ``metrics.gap_interval``.

    Args:
      pvalues: PREDICT p-values in [0, 1], shape ``(k, n)``, row k for ``num_samples[k]``.
      nr_stat: top NR (SVM) score per example, shape ``(n,)``.
      thresholds: increasing threshold grid ``(a,)`` (e.g. ``rejection.threshold_grid``).
      groups: attribute name -> ``fairrobust.groups.Groups`` over the same n examples.
      num_samples: the k values of N.
      train_sizes: attribute name -> training examples per group ``(g,)`` (optional).
      bootstrap_resamples: resamples for the intervals on AUC_FPR and the curves
        (percentile) and on FPR Parity (``fairrobust.metrics.gap_interval``): one
        ``fairrobust.metrics.bootstrap_ci`` per attribute, stratified by its groups and
        clustered by ``speakers`` when given; 0 skips them.
      ci_level: interval level.
      key: PRNG key of the bootstrap (required when ``bootstrap_resamples > 0``).
      speakers: optional speaker id per example ``(n,)``.
      min_speakers: groups with fewer speakers get no interval; FPR Parity
        intervals are ``fairrobust.metrics.gap_interval``'s (valid groups).

    Returns:
      A :class:`RejectionAnalysis`.

    Raises:
      ValueError: shapes that do not agree (the message gives expected vs actual).
    """
    pvalues = np.asarray(pvalues, dtype=np.float64)
    nr_stat = np.asarray(nr_stat, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    k = len(num_samples)
    if pvalues.ndim != 2 or pvalues.shape[0] != k:
        raise ValueError(f"pvalues: expected shape ({k}, n), got {pvalues.shape}")
    n = pvalues.shape[1]
    if nr_stat.shape != (n,):
        raise ValueError(f"nr_stat: expected shape ({n},), got {nr_stat.shape}")
    if thresholds.ndim != 1 or thresholds.size < 2:
        raise ValueError(f"thresholds: expected shape (a >= 2,), got {thresholds.shape}")
    if bootstrap_resamples and key is None:
        raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")
    if list(num_samples) != sorted(set(num_samples)):
        raise ValueError(f"num_samples: expected increasing values, got {list(num_samples)}")

    all_masks, spans, all_valid = _stacked_masks(groups, n)
    rs = np.asarray(metrics.rejection_curves(pvalues, thresholds, all_masks, reject_if="above"))
    nr = np.asarray(metrics.rejection_curves(nr_stat, thresholds, all_masks, reject_if="below"))
    curves = np.concatenate([rs, nr[None]], axis=0).astype(np.float64)  # [m, a, G]
    overall_auc, by_attr = _point_auc(pvalues, nr_stat, thresholds, groups)

    auc_ci, parity_ci, curves_ci, parity_samples = _intervals(
        pvalues, nr_stat, thresholds, all_masks, spans, all_valid, curves.shape,
        bootstrap_resamples=bootstrap_resamples, ci_level=ci_level, key=key,
        speakers=speakers, min_speakers=min_speakers,
    )  # fmt: skip

    per_attr: dict[str, AttributeRejection] = {}
    for i, (name, grp) in enumerate(groups.items()):
        lo, hi = spans[i]
        ts = None if train_sizes is None or name not in train_sizes else train_sizes[name]
        per_attr[name] = AttributeRejection(
            attribute=name,
            names=tuple(grp.names),
            sizes=np.asarray(grp.sizes),
            valid=all_valid[lo:hi],
            train_sizes=None if ts is None else np.asarray(ts),
            curves=curves[:, :, lo:hi],
            auc=by_attr[name][0],
            parity=by_attr[name][1],
            auc_ci=auc_ci[:, lo:hi],
            parity_ci=parity_ci[i],
            curves_ci=curves_ci[:, :, lo:hi],
        )
    return RejectionAnalysis(
        thresholds=thresholds,
        num_samples=tuple(int(v) for v in num_samples),
        methods=method_labels(num_samples),
        overall_curves=curves[:, :, 0],
        overall_auc=overall_auc,
        attributes=per_attr,
        ci_level=float(ci_level) if bootstrap_resamples else None,
        num_resamples=int(bootstrap_resamples),
        num_examples=int(n),
        overall_curves_ci=curves_ci[:, :, 0],
        parity_samples=parity_samples,
    )


def finite_or_none(x: Any) -> float | None:
    """Float for a table cell; NaN / inf become None (empty in CSV, null in JSON)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _method_fields(analysis: RejectionAnalysis, i: int) -> dict[str, Any]:
    k = len(analysis.num_samples)
    return {
        "method": "NR" if i == k else "RS",
        "num_samples": None if i == k else analysis.num_samples[i],
        "label": analysis.methods[i],
    }


def auc_fpr_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """The paper's Table 1 layout: one row per method (RS N=10..., NR), AUC_FPR columns.

    Columns: ``method``, ``num_samples``, ``label``, ``overall``, then one column
    ``"<attribute>=<group>"`` per group of every attribute (None = empty group).
    """
    rows = []
    for i in range(len(analysis.methods)):
        row = _method_fields(analysis, i)
        row["overall"] = finite_or_none(analysis.overall_auc[i])
        for attr in analysis.attributes.values():
            for j, g in enumerate(attr.names):
                row[f"{attr.attribute}={g}"] = finite_or_none(attr.auc[i, j])
        rows.append(row)
    return rows


def auc_fpr_long_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """AUC_FPR in long form: one row per (method, attribute, group), overall included.

    Columns: method, num_samples, label, attribute, group, n, n_train, valid, auc_fpr,
    ci_low, ci_high (bootstrap interval; empty without bootstrap). The overall rows
    have attribute ``"all"`` and group ``"all"``.
    """
    rows = []
    n_all = analysis.num_examples
    for i in range(len(analysis.methods)):
        base = _method_fields(analysis, i)
        rows.append(
            {
                **base,
                "attribute": "all",
                "group": "all",
                "n": n_all,
                "n_train": None,
                "valid": True,
                "auc_fpr": finite_or_none(analysis.overall_auc[i]),
                "ci_low": None,
                "ci_high": None,
            }
        )
        for attr in analysis.attributes.values():
            for j, g in enumerate(attr.names):
                rows.append(
                    {
                        **base,
                        "attribute": attr.attribute,
                        "group": g,
                        "n": int(attr.sizes[j]),
                        "n_train": None if attr.train_sizes is None else int(attr.train_sizes[j]),
                        "valid": bool(attr.valid[j]),
                        "auc_fpr": finite_or_none(attr.auc[i, j]),
                        "ci_low": finite_or_none(attr.auc_ci[i, j, 0]),
                        "ci_high": finite_or_none(attr.auc_ci[i, j, 1]),
                    }
                )
    return rows


def fpr_parity_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """FPR Parity per (method, attribute) with the groups that realise it.

    Columns: method, num_samples, label, attribute, fpr_parity, worst_group
    (highest AUC_FPR among valid groups), worst_auc_fpr, best_group, best_auc_fpr,
    n_valid_groups, ci_low, ci_high (bootstrap interval of the parity; empty without).
    """
    rows = []
    for attr in analysis.attributes.values():
        idx = np.flatnonzero(attr.valid)
        for i in range(len(analysis.methods)):
            row = {
                **_method_fields(analysis, i),
                "attribute": attr.attribute,
                "fpr_parity": finite_or_none(attr.parity[i]),
                "worst_group": None,
                "worst_auc_fpr": None,
                "best_group": None,
                "best_auc_fpr": None,
                "n_valid_groups": int(idx.size),
                "ci_low": finite_or_none(attr.parity_ci[i, 0]),
                "ci_high": finite_or_none(attr.parity_ci[i, 1]),
            }
            vals = attr.auc[i, idx]
            ok = idx[np.isfinite(vals)]
            if ok.size:
                hi = ok[np.argmax(attr.auc[i, ok])]
                lo = ok[np.argmin(attr.auc[i, ok])]
                row.update(
                    worst_group=attr.names[hi],
                    worst_auc_fpr=finite_or_none(attr.auc[i, hi]),
                    best_group=attr.names[lo],
                    best_auc_fpr=finite_or_none(attr.auc[i, lo]),
                )
            rows.append(row)
    return rows


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and p of ``x [g]`` against each row of ``y [m, g]``, in one call.

    Groups with a non-finite value in any row are left out; a row is NaN (no
    warning) when fewer than three groups remain or ``x`` or the row is constant.
    """
    cols = np.isfinite(x) & np.all(np.isfinite(y), axis=0)
    x, y = x[cols].astype(np.float64), y[:, cols].astype(np.float64)
    r = np.full(y.shape[0], np.nan)
    p = np.full(y.shape[0], np.nan)
    rows = np.flatnonzero(np.ptp(y, axis=1) > 0) if x.size >= 3 and np.ptp(x) > 0 else []
    if len(rows):
        xb = np.broadcast_to(x, (len(rows), x.size))
        rr, pp = metrics.pearsonr(xb, y[rows])
        r[rows], p[rows] = np.asarray(rr), np.asarray(pp)
    return r, p


def correlation_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """Pearson r between group training-set size and AUC_FPR (paper section 5.2).

    Per attribute (valid groups only) and for ``"all"`` (the groups of every plain
    attribute pooled, each partition of the clips once): one row for NR, one row per
    RS N, and one ``RS mean`` row with the mean and (population) std of r over N, as
    the paper reports "-0.499 +- 0.08 (averaged over all sampling)". r is None with fewer than three
    groups or a constant size / AUC_FPR (undefined).

    Columns: attribute, method (``NR`` / ``RS`` / ``RS mean``), num_samples, r, r_std,
    p_value, n_groups.
    """
    k = len(analysis.num_samples)
    pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # attr -> (train sizes [g], auc [m, g])
    for attr in analysis.attributes.values():
        if attr.train_sizes is None:
            continue
        v = attr.valid
        pools[attr.attribute] = (attr.train_sizes[v].astype(np.float64), attr.auc[:, v])
    plain, seen = [], set()
    for a in analysis.attributes.values():  # one copy of each partition of the clips
        sig = tuple(sorted(zip(a.sizes.tolist(), np.round(a.auc[-1], 12).tolist(), strict=True)))
        if a.train_sizes is not None and " x " not in a.attribute and sig not in seen:
            seen.add(sig)
            plain.append(a)
    if len(plain) > 1:
        pools["all"] = (
            np.concatenate([a.train_sizes[a.valid].astype(np.float64) for a in plain]),  # type: ignore[index]
            np.concatenate([a.auc[:, a.valid] for a in plain], axis=1),
        )
    rows = []
    for name, (sizes, auc) in pools.items():
        rs_r = []
        r_all, p_all = _pearson_rows(sizes, auc)
        for i in range(k + 1):
            r, p = r_all[i], p_all[i]
            meth = _method_fields(analysis, i)
            rows.append(
                {
                    "attribute": name,
                    "method": meth["method"],
                    "num_samples": meth["num_samples"],
                    "r": finite_or_none(r),
                    "r_std": None,
                    "p_value": finite_or_none(p),
                    "n_groups": int(sizes.size),
                }
            )
            if i < k:
                rs_r.append(r)
        arr = np.asarray(rs_r)
        fin = arr[np.isfinite(arr)]
        rows.append(
            {
                "attribute": name,
                "method": "RS mean",
                "num_samples": None,
                "r": finite_or_none(fin.mean()) if fin.size else None,
                "r_std": finite_or_none(fin.std()) if fin.size else None,
                "p_value": None,
                "n_groups": int(sizes.size),
            }
        )
    return rows


def fpr_curve_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """Every FPR-vs-threshold point, long form.

    Columns: method, num_samples, label, attribute, group, threshold, fpr, ci_low,
    ci_high (bootstrap interval of the group's FPR at that threshold; empty without
    bootstrap).
    """
    rows = []
    th = analysis.thresholds
    nan_ci = np.full((*analysis.overall_curves.shape, 2), np.nan)
    overall_ci = nan_ci if analysis.overall_curves_ci is None else analysis.overall_curves_ci
    for i in range(len(analysis.methods)):
        base = _method_fields(analysis, i)
        for a, t in enumerate(th):
            rows.append(
                {
                    **base,
                    "attribute": "all",
                    "group": "all",
                    "valid": True,
                    "threshold": float(t),
                    "fpr": finite_or_none(analysis.overall_curves[i, a]),
                    "ci_low": finite_or_none(overall_ci[i, a, 0]),
                    "ci_high": finite_or_none(overall_ci[i, a, 1]),
                }
            )
        for attr in analysis.attributes.values():
            cis = (
                np.full((*attr.curves.shape, 2), np.nan)
                if attr.curves_ci is None
                else attr.curves_ci
            )
            for j, g in enumerate(attr.names):
                col, ci = attr.curves[i, :, j], cis[i, :, j]
                rows.extend(
                    {
                        **base,
                        "attribute": attr.attribute,
                        "group": g,
                        "valid": bool(attr.valid[j]),
                        "threshold": float(t),
                        "fpr": finite_or_none(col[a]),
                        "ci_low": finite_or_none(ci[a, 0]),
                        "ci_high": finite_or_none(ci[a, 1]),
                    }
                    for a, t in enumerate(th)
                )
    return rows


def certify_table(
    *,
    index: np.ndarray,
    paths: np.ndarray,
    labels: np.ndarray,
    pred: np.ndarray,
    radius: np.ndarray,
    p_a_lower: np.ndarray,
    attributes: Mapping[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Per-example CERTIFY table.

    Columns: index (position in the dataset), path, label, prediction (-1 = abstain),
    radius, correct (0/1), p_a_lower, then one column per attribute (sorted).
    """
    n = len(labels)
    for name, arr in (
        ("index", index),
        ("paths", paths),
        ("pred", pred),
        ("radius", radius),
        ("p_a_lower", p_a_lower),
    ):
        if np.shape(arr) != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {np.shape(arr)}")
    rows = []
    for i in range(n):
        row = {
            "index": int(index[i]),
            "path": str(paths[i]),
            "label": int(labels[i]),
            "prediction": int(pred[i]),
            "radius": float(radius[i]),
            "correct": int(pred[i] == labels[i]),
            "p_a_lower": float(p_a_lower[i]),
        }
        for a in sorted(attributes):
            row[a] = str(attributes[a][i])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- files


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return repr(float(v)) if math.isfinite(v) else ""
    return str(v)


def write_csv(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` as CSV atomically (None / NaN as empty cells, floats via ``repr``)."""
    if columns is None:
        columns = list(rows[0]) if rows else []
        for r in rows:
            columns.extend(c for c in r if c not in columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return _io.atomic_write_text(path, buf.getvalue())


#: Result files written by :func:`run_study` under ``<out>/results/`` (figures under
