"""Comparisons from bootstrap replicates: parity-gap intervals, group and paired differences, Holm.

Every function here takes the estimate of a statistic and its ``R`` bootstrap
replicates (``bootstrap_ci(..., return_samples=True)``; the replicates of two
statistics computed in one ``bootstrap_ci`` call, or in two calls with the same
key, masks and speakers, share their resamples, so they are *paired*).

* :func:`pairwise_intervals`: simultaneous intervals of every difference
  ``theta_i - theta_j`` between valid groups (bootstrap sup-t band: the
  half-width of pair ``ij`` is ``c * se_ij``, ``se_ij`` the bootstrap standard
  error of the difference and ``c`` the ``level`` quantile over resamples of
  ``max_ij |d*_ij - d_ij| / se_ij``; Montiel Olea & Plagborg-Moller 2019).
* :func:`gap_interval`: the interval of a parity gap ``max_ij |theta_i - theta_j|``
  (Defense Parity, Eq. 2; FPR Parity, Eq. 4) derived from those simultaneous
  intervals: ``[max_ij dist(0, I_ij), max_ij max|I_ij|]``. Whenever every pairwise
  interval covers its difference, this interval covers the gap, so its coverage
  is at least the band's, including at gap 0, where the percentile interval of
  the max-min statistic never covers (its replicates are all > 0). The estimate
  always lies inside. Simulated coverage: ``tests/test_comparisons.py`` and
  ``benchmarks/README.md``.
* :func:`paired_difference`: the interval and two-sided p-value of a difference
  of two statistics on the same resamples (a model vs the baseline, RS vs NR, a
  stronger attack vs the study's): the normal bootstrap interval
  ``d +- z_{(1+level)/2} se*`` (``se*`` the standard deviation of the paired
  replicate differences; Efron & Tibshirani 1993, eq. 13.3) and the matching
  ``p = 2 (1 - Phi(|d| / se*))``, so ``p < 1 - level`` exactly when the interval
  excludes 0. The p-value is continuous (a resample-count p-value cannot go below
  ``1 / (1 + R)``, which with 200 resamples and Holm over 12 comparisons could
  never be significant).
* :func:`holm`: Holm's step-down adjustment of a family of p-values.
* :func:`clusters_per_group`: independent clusters (speakers) per group, the
  number behind an interval.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from fairrobust._checks import check_shape
from fairrobust.metrics._kernels import cluster_scale, gap_from_band, pairwise_band

__all__ = [
    "Difference",
    "PairwiseIntervals",
    "clusters_per_group",
    "gap_interval",
    "holm",
    "paired_difference",
    "pairwise_intervals",
]


def _level(level: Any) -> float:
    if not (isinstance(level, (float, int, np.floating)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    return float(level)


def _samples(estimate: Any, samples: Any, name: str) -> tuple[jax.Array, jax.Array]:
    est = jnp.asarray(estimate, jnp.float32)
    s = jnp.asarray(samples, jnp.float32)
    if s.ndim != est.ndim + 1 or s.shape[1:] != est.shape:
        raise ValueError(
            f"{name}: expected replicates of shape (R, *{est.shape}) for an estimate of "
            f"shape {est.shape}, got {s.shape}"
        )
    return est, s


@dataclasses.dataclass(frozen=True)
class PairwiseIntervals:
    """Simultaneous intervals of group differences ``theta_i - theta_j``.

    Attributes:
      difference: ``[..., g, g]`` estimate of ``theta_i - theta_j``; NaN for pairs
        with an invalid or non-finite group and on the diagonal.
      low, high: ``[..., g, g]`` simultaneous interval bounds (NaN where the
        difference is).
      critical: ``[...]`` the band's critical value ``c``.
    """

    difference: jax.Array
    low: jax.Array
    high: jax.Array
    critical: jax.Array


def pairwise_intervals(
    estimate: Any,
    samples: Any,
    valid: Any = None,
    *,
    level: float = 0.95,
    clusters: Any = None,
) -> PairwiseIntervals:
    """Simultaneous bootstrap intervals of every pairwise group difference (sup-t band).

    Args:
      estimate: ``[..., g]`` per-group statistic on the data (e.g. AUC_acc).
      samples: ``[R, ..., g]`` its bootstrap replicates.
      valid: optional bool ``[g]``; invalid groups take part in no pair.
      level: simultaneous confidence level in (0, 1).
      clusters: optional int ``[g]`` clusters each group's replicates resampled
        (speakers of a cluster bootstrap); deviations are scaled by
        ``sqrt(C / (C - 1))``.

    Returns:
      :class:`PairwiseIntervals`; with probability about ``level`` every interval
      covers its difference at once.
    """
    lv = _level(level)
    est, s = _samples(estimate, samples, "samples")
    g = est.shape[-1]
    v = jnp.ones((g,), bool) if valid is None else jnp.asarray(valid, bool)
    check_shape("valid", v, (g,))
    d, lo, hi, c = pairwise_band(est, s, v, jnp.float32(lv), _scale(clusters, g))
    return PairwiseIntervals(difference=d, low=lo, high=hi, critical=c)


def gap_interval(
    estimate: Any,
    samples: Any,
    valid: Any = None,
    *,
    level: float = 0.95,
    clusters: Any = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Parity gap ``max_ij |theta_i - theta_j|`` over valid groups, with its interval.

    The interval comes from the simultaneous pairwise intervals ``I_ij`` of
    :func:`pairwise_intervals`: ``low = max_ij dist(0, I_ij)``,
    ``high = max_ij max(|lo_ij|, |hi_ij|)``. It contains the estimate by construction
    and covers the true gap whenever the band covers every difference, so also when
    the gap is 0 (then ``low`` is 0 with probability about ``level``).

    Args:
      estimate: ``[..., g]`` per-group statistic.
      samples: ``[R, ..., g]`` bootstrap replicates.
      valid: optional bool ``[g]`` groups that count.
      level: confidence level in (0, 1).
      clusters: optional int ``[g]`` (see :func:`pairwise_intervals`).

    Returns:
      ``(gap, low, high)``, each ``[...]``; NaN with fewer than two valid, finite groups.
    """
    p = pairwise_intervals(estimate, samples, valid, level=level, clusters=clusters)
    return gap_from_band(p.difference, p.low, p.high, p.critical)


def _scale(clusters: Any, g: int) -> jax.Array:
    if clusters is None:
        return jnp.ones((g,), jnp.float32)
    c = np.asarray(clusters)
    check_shape("clusters", c, (g,))
    return cluster_scale(jnp.asarray(c))


@dataclasses.dataclass(frozen=True)
class Difference:
    """A paired difference ``a - b`` with its interval and p-value (numpy arrays).

    Attributes:
      difference: ``a - b`` on the data.
      low, high: normal bootstrap interval ``d +- z se*``.
      p_value: two-sided p-value of ``d = 0``, ``2 (1 - Phi(|d| / se*))``; NaN where
        undefined.
      level: confidence level.
    """

    difference: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    level: float


@jax.jit
def _paired(d, ds, level):
    ok = jnp.isfinite(ds)
    n_ok = jnp.sum(ok, axis=0)
    mean = jnp.sum(jnp.where(ok, ds, 0.0), axis=0) / jnp.maximum(n_ok, 1)
    var = jnp.sum(jnp.where(ok, (ds - mean[None]) ** 2, 0.0), axis=0) / jnp.maximum(n_ok - 1, 1)
    se = jnp.sqrt(var)
    half = norm.ppf((1.0 + level) / 2.0) * se
    z = jnp.abs(d) / jnp.where(se > 0, se, 1.0)
    # se = 0 (every resample gives the same difference): p = 1 for d = 0, else 0
    p = jnp.where(se > 0, 2.0 * norm.sf(z), jnp.where(d == 0, 1.0, 0.0))
    defined = jnp.isfinite(d) & (n_ok > 1)
    nan = jnp.full_like(d, jnp.nan)
    return (
        jnp.where(defined, d - half, nan),
        jnp.where(defined, d + half, nan),
        jnp.where(defined, p, nan),
    )


def paired_difference(
    a: Any, a_samples: Any, b: Any, b_samples: Any, *, level: float = 0.95
) -> Difference:
    """Interval and p-value of ``a - b`` from replicates on the same resamples.

    Args:
      a, b: estimates of the same shape ``[...]``.
      a_samples, b_samples: ``[R, ...]`` replicates; replicate ``r`` of both must
        come from the same resample (same key, masks and speakers), or the interval
        is not that of the paired difference.
      level: confidence level in (0, 1).

    Returns:
      A :class:`Difference`; ``d`` is always inside its interval.
    """
    lv = _level(level)
    ea, sa = _samples(a, a_samples, "a_samples")
    eb, sb = _samples(b, b_samples, "b_samples")
    if ea.shape != eb.shape or sa.shape != sb.shape:
        raise ValueError(
            f"a, b: expected the same shapes, got {ea.shape} / {sa.shape} and {eb.shape} / "
            f"{sb.shape}"
        )
    d = ea - eb
    lo, hi, p = _paired(d, sa - sb, jnp.float32(lv))
    return Difference(
        difference=np.asarray(d, np.float64),
        low=np.asarray(lo, np.float64),
        high=np.asarray(hi, np.float64),
        p_value=np.asarray(p, np.float64),
        level=lv,
    )


def holm(pvalues: Any) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values of one family of tests.

    ``p_(k)`` sorted ascending becomes ``max_{j <= k} min(1, (m - j + 1) p_(j))``; rejecting
    where the adjusted p-value is below ``alpha`` controls the family-wise error rate
    at ``alpha``. NaN p-values are left out of the family (and stay NaN).

    Args:
      pvalues: p-values of the family, any shape.

    Returns:
      float64 array of the same shape.
    """
    p = np.asarray(pvalues, np.float64)
    out = np.full(p.shape, np.nan)
    flat = p.reshape(-1)
    idx = np.flatnonzero(np.isfinite(flat))
    if idx.size:
        order = idx[np.argsort(flat[idx], kind="stable")]
        m = idx.size
        adj = np.minimum(1.0, (m - np.arange(m)) * flat[order])
        out.reshape(-1)[order] = np.maximum.accumulate(adj)
    return out


def clusters_per_group(masks: Any, speakers: Any = None) -> np.ndarray:
    """Independent clusters in each group: distinct speakers, or examples without speakers.

    Args:
      masks: bool ``[g, n]`` group masks.
      speakers: optional ``[n]`` speaker ids.

    Returns:
      numpy int ``[g]``.
    """
    m = np.asarray(masks).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"masks: expected shape (g, n), got {m.shape}")
    if speakers is None:
        return m.sum(axis=1).astype(np.int64)
    sp = np.asarray(speakers).astype(str)
    check_shape("speakers", sp, (m.shape[1],))
    return np.asarray([len(np.unique(sp[row])) for row in m], np.int64)
