"""Certified parity: area under the certified-accuracy curve per group and its gap.

Randomized smoothing's CERTIFY (Cohen et al. 2019) gives each example a
prediction (``-1`` = abstain) and a certified radius. With ``correct_i = [pred_i ==
y_i]`` (an abstention is never correct), the certified accuracy of group ``s`` at
radius ``r`` is the step function

    CA_s(r) = |{i in s : correct_i and radius_i >= r}| / |s|.

Definitions used here (all exact, no grid):

* **Certified radius** of an example: ``radius_i`` if ``correct_i`` else 0
  (abstentions and misclassifications are certified at no radius).
* **Normalised certified AUC** over ``[r_lo, r_hi]`` (``CAUC`` in [0, 1]):
  ``CAUC(s) = 1 / (r_hi - r_lo) * int_{r_lo}^{r_hi} CA_s(r) dr
  = mean_{i in s} correct_i * (clip(radius_i, r_lo, r_hi) - r_lo) / (r_hi - r_lo)``,
  because ``int_{r_lo}^{r_hi} [radius_i >= r] dr = clip(radius_i, r_lo, r_hi) - r_lo``.
* **Median certified radius** of a group: the median of its certified radii
  (``numpy.median``: the mean of the two middle values for an even count).
* **Certified Parity** = ``max_{s, s'} CAUC(s) - CAUC(s')`` over valid groups
  (``Groups.valid``: at least the minimum size and speakers), in the style of
  Defense Parity (AISec '23 Eq. 2) and FPR Parity (Eq. 4); NaN with fewer than
  two valid groups. Lower = more equal protection.

Group reductions follow the package conventions (masks ``[g, n]``, optional
per-example ``weights``; an empty group gives NaN). :class:`CertifiedAucStat` is
the bootstrap statistic (``fairrobust.metrics.bootstrap_ci``): percentile intervals
for the per-group values and ``gap_interval`` (simultaneous pairwise intervals)
for Certified Parity.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust.metrics._kernels import group_means, masked_max_gap
from fairrobust.metrics._validate import as_masks, warn_empty

__all__ = [
    "CertifiedAucStat",
    "certified_auc",
    "certified_parity",
    "correct_radius",
    "median_certified_radius",
    "radius_range",
    "weighted_median",
    "weighted_median_kernel",
]


def radius_range(r_lo: float, r_hi: float) -> tuple[float, float]:
    """A checked radius range ``(r_lo, r_hi)``: finite, ``0 <= r_lo < r_hi``.

    Raises:
      ValueError: naming the bad bound.
    """
    for name, v in (("r_lo", r_lo), ("r_hi", r_hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
        if not (math.isfinite(float(v)) and float(v) >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    if not float(r_lo) < float(r_hi):
        raise ValueError(f"r_hi: expected > r_lo={r_lo}, got {r_hi}")
    return float(r_lo), float(r_hi)


def _arrays(correct: Any, radius: Any) -> tuple[jax.Array, jax.Array]:
    c = jnp.asarray(correct)
    r = jnp.asarray(radius)
    if c.ndim != 1 or r.shape != c.shape:
        raise ValueError(
            f"radius: expected the shape of correct, 1-D; got correct {c.shape}, radius {r.shape}"
        )
    return c.astype(bool), r.astype(jnp.float32)


def correct_radius(correct: Any, radius: Any) -> jax.Array:
    """Per-example certified radius: ``radius_i`` if ``correct_i`` else 0.

    Args:
      correct: bool ``[n]``: ``pred == label`` (abstentions, pred -1, are not correct).
      radius: float ``[n]`` CERTIFY radii (>= 0).

    Returns:
      float32 ``[n]``.
    """
    c, r = _arrays(correct, radius)
    return jnp.where(c, jnp.maximum(r, 0.0), 0.0)


def _contribution(correct: jax.Array, radius: jax.Array, r_lo: float, r_hi: float) -> jax.Array:
    """``correct_i (clip(radius_i, r_lo, r_hi) - r_lo) / (r_hi - r_lo)``: example i's area."""
    cr = jnp.where(correct, jnp.clip(radius, r_lo, r_hi) - r_lo, 0.0)
    return cr / (r_hi - r_lo)


def certified_auc(
    correct: Any,
    radius: Any,
    masks: Any,
    r_lo: float,
    r_hi: float,
    *,
    weights: Any = None,
) -> jax.Array:
    """Normalised area under each group's certified-accuracy curve over ``[r_lo, r_hi]``.

    ``CAUC(s) = 1 / (r_hi - r_lo) int_{r_lo}^{r_hi} CA_s(r) dr``, with
    ``CA_s(r) = |{i in s : correct_i and radius_i >= r}| / |s|`` (Cohen et al. 2019),
    computed exactly as ``mean_{i in s} correct_i (clip(radius_i, r_lo, r_hi) - r_lo)
    / (r_hi - r_lo)``. 1 means every clip of the group is certified correct at
    every radius of the range; 0 means none at any radius above ``r_lo``.

    Args:
      correct: bool ``[n]``: ``pred == label`` (abstentions are not correct).
      radius: float ``[n]`` CERTIFY radii.
      masks: ``[g, n]`` group masks.
      r_lo, r_hi: the radius range, ``0 <= r_lo < r_hi``.
      weights: optional per-example multiplicities ``[n]``.

    Returns:
      float32 ``[g]`` in [0, 1]; NaN for an empty group (with a ``RuntimeWarning``).

    Raises:
      ValueError: bad shapes or range.
    """
    lo, hi = radius_range(r_lo, r_hi)
    c, r = _arrays(correct, radius)
    m = as_masks(masks, c.shape[0], "certified_auc")
    warn_empty(m, "certified_auc")
    w = None if weights is None else jnp.broadcast_to(jnp.asarray(weights, jnp.float32), c.shape)
    return group_means(_contribution(c, r, lo, hi), m, w)


@jax.jit
def weighted_median_kernel(values: jax.Array, masks: jax.Array, weights: jax.Array) -> jax.Array:
    """Jitted weighted median ``[g]`` of ``values [n]``, integer weights ``[n]``; no checks."""
    order = jnp.argsort(values)
    v = values[order]
    w = (masks.astype(jnp.float32) * weights[None, :])[:, order]  # [g, n]
    cum = jnp.cumsum(w, axis=1)
    total = cum[:, -1]
    # The multiset of W = total copies, sorted: element k is the first v with cum > k;
    # numpy's median is the mean of elements floor((W - 1) / 2) and floor(W / 2).
    k_lo = jnp.floor((total - 1.0) / 2.0)
    k_hi = jnp.floor(total / 2.0)

    def pick(c, k):
        return v[jnp.clip(jnp.searchsorted(c, k, side="right"), 0, v.shape[0] - 1)]

    lo = jax.vmap(pick)(cum, k_lo)
    hi = jax.vmap(pick)(cum, k_hi)
    return jnp.where(total > 0, 0.5 * (lo + hi), jnp.nan)


def weighted_median(values: Any, masks: Any, *, weights: Any = None) -> jax.Array:
    """Median of ``values`` in each group, with integer multiplicities ``weights``.

    Equals ``numpy.median`` of the group's values repeated ``weights`` times (the
    mean of the two middle values for an even count), so bootstrap resamples by
    reweighting give the median of the copied resample.

    Args:
      values: float ``[n]`` (may contain ``+inf``, never NaN).
      masks: ``[g, n]``.
      weights: optional non-negative integer multiplicities ``[n]`` (default 1).

    Returns:
      float32 ``[g]``; NaN for an empty group.
    """
    v = jnp.asarray(values, jnp.float32)
    if v.ndim != 1:
        raise ValueError(f"values: expected shape (n,), got {v.shape}")
    m = as_masks(masks, v.shape[0], "weighted_median")
    w = jnp.ones_like(v) if weights is None else jnp.asarray(weights, jnp.float32)
    return weighted_median_kernel(v, m, jnp.broadcast_to(w, v.shape))


def median_certified_radius(
    correct: Any, radius: Any, masks: Any, *, weights: Any = None
) -> jax.Array:
    """Median certified radius per group; abstentions and misclassifications count as 0.

    ``median_{i in s} (radius_i if correct_i else 0)`` (:func:`correct_radius`),
    so a group with at most half of its clips certified correct has median 0.

    Args:
      correct: bool ``[n]``; radius: float ``[n]``; masks: ``[g, n]``;
      weights: optional integer multiplicities ``[n]``.

    Returns:
      float32 ``[g]``; NaN for an empty group.
    """
    return weighted_median(correct_radius(correct, radius), masks, weights=weights)


def certified_parity(
    correct: Any,
    radius: Any,
    masks: Any,
    r_lo: float,
    r_hi: float,
    *,
    valid: Any = None,
    weights: Any = None,
) -> jax.Array:
    """Certified Parity: the largest gap in normalised certified AUC between valid groups.

    ``CP = max_{s, s'} CAUC(s) - CAUC(s')`` (:func:`certified_auc`) over the groups
    with ``valid`` (``Groups.valid``: groups under the minimum size or speakers are
    left out, as in Defense Parity and FPR Parity) and a finite CAUC.

    Args:
      correct, radius, masks, r_lo, r_hi, weights: as in :func:`certified_auc`.
      valid: optional bool ``[g]`` (default all).

    Returns:
      float32 scalar in [0, 1]; NaN with fewer than two usable groups.
    """
    auc = certified_auc(correct, radius, masks, r_lo, r_hi, weights=weights)
    v = jnp.ones(auc.shape, bool) if valid is None else jnp.asarray(valid, bool)
    if v.shape != auc.shape:
        raise ValueError(f"valid: expected shape {auc.shape}, got {v.shape}")
    return masked_max_gap(auc, v)


@dataclasses.dataclass(frozen=True)
class CertifiedAucStat:
    """Bootstrap statistic: CAUC and median certified radius per group, Certified Parity.

    ``CertifiedAucStat(r_lo, r_hi, valid)((correct [n], radius [n]), masks, weights [n])``
    returns ``{"certified_auc": [g], "median_radius": [g], "certified_parity": []}``.
    With :func:`fairrobust.metrics.bootstrap_ci`, the per-group values get percentile
    intervals and Certified Parity the ``gap_interval`` of the simultaneous pairwise
    intervals over ``valid`` groups (the method of Defense Parity and FPR Parity).
    """

    r_lo: float
    r_hi: float
    valid: tuple[bool, ...] | None = None
    gap_of: ClassVar[tuple[tuple[str, str], ...]] = (("certified_parity", "certified_auc"),)
    group_keys: ClassVar[tuple[str, ...]] = ("certified_auc", "median_radius")

    def __post_init__(self):
        lo, hi = radius_range(self.r_lo, self.r_hi)
        object.__setattr__(self, "r_lo", lo)
        object.__setattr__(self, "r_hi", hi)
        if self.valid is not None:
            valid = tuple(bool(v) for v in np.asarray(self.valid).reshape(-1).tolist())
            object.__setattr__(self, "valid", valid)

    def __call__(self, values, masks, weights):
        correct, radius = values
        c = jnp.asarray(correct).astype(bool)
        r = jnp.asarray(radius).astype(jnp.float32)
        w = jnp.ones(c.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
        auc = group_means(_contribution(c, r, self.r_lo, self.r_hi), masks, w)
        med = weighted_median_kernel(jnp.where(c, jnp.maximum(r, 0.0), 0.0), masks, w)
        valid = jnp.ones((masks.shape[0],), bool) if self.valid is None else jnp.asarray(self.valid)
        return {
            "certified_auc": auc,
            "median_radius": med,
            "certified_parity": masked_max_gap(auc, valid),
        }
