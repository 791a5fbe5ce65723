"""Rejection metrics: false-rejection curves and their area, AUC_FPR (preprint Eq. 3).

``AUC_FPR(s) = int_{alpha_min}^{alpha_max} FPR_s(alpha) d alpha``, where
``FPR_s(alpha)`` is the fraction of clean examples of group ``s`` rejected
(abstained on) at threshold ``alpha``. Thresholds are traced, so a sweep compiles once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_choice
from fairrobust.metrics._kernels import split_parity, stack_masks, trapezoid_last
from fairrobust.metrics._validate import (
    as_grid,
    as_masks,
    as_values,
    as_weights,
    checked_grid,
    checked_values,
    checked_weights,
    float_dtype,
    grid_float,
    warn_empty,
)
from fairrobust.metrics.groups import (
    AttributeSummary,
    attribute_summaries,
    attribute_valids,
    stack_groups,
)

__all__ = [
    "REJECT_IF",
    "alpha_grid",
    "auc_fpr",
    "auc_fpr_by_attribute",
    "rejection_curves",
    "rejection_curves_args",
    "rejection_kernel",
]

#: Rejection rules of :func:`rejection_curves`: reject when the statistic is above / below t.
REJECT_IF = ("above", "below")


def alpha_grid(alpha_min: float = 0.001, alpha_max: float = 1.0, step: float = 0.001) -> jax.Array:
    """The paper's grid of rejection thresholds: ``alpha_min, alpha_min + step, ..., alpha_max``.

    Default: alpha in [0.001, 1] with step 1e-3 (1000 points), as in the AISec
    paper's rejection study.

    Returns:
      float32 ``[a]``, strictly increasing, computed in float64 then rounded.

    Raises:
      ValueError: ``alpha_min`` / ``alpha_max`` outside (0, 1], ``alpha_min >=
        alpha_max``, ``step <= 0``, or a range that is not a whole number of steps.
    """
    for name, v in (("alpha_min", alpha_min), ("alpha_max", alpha_max)):
        if not (isinstance(v, (int, float, np.floating)) and 0.0 < float(v) <= 1.0):
            raise ValueError(f"{name}: expected a number in (0, 1], got {v!r}")
    if not float(alpha_min) < float(alpha_max):
        raise ValueError(f"alpha_min: expected < alpha_max={alpha_max}, got {alpha_min}")
    if not (isinstance(step, (int, float, np.floating)) and float(step) > 0):
        raise ValueError(f"step: expected a positive number, got {step!r}")
    k = (float(alpha_max) - float(alpha_min)) / float(step)
    if abs(k - round(k)) > 1e-6 * max(1.0, k):
        raise ValueError(
            f"step: expected (alpha_max - alpha_min) / step to be a whole number, got {k:.6g}"
        )
    grid = np.linspace(float(alpha_min), float(alpha_max), round(k) + 1, dtype=np.float64)
    return jnp.asarray(grid.astype(np.float32))


@functools.partial(jax.jit, static_argnames=("reject_if",))
def rejection_kernel(stat, thresholds, masks, weights, reject_if):
    """Cumulative-histogram false-rejection rates; stat / weights ``[B, n]`` -> ``[B, a, g]``.

    The jitted kernel of :func:`rejection_curves`, without validation (use
    :func:`rejection_curves_args` first). ``stat`` and ``thresholds`` float of one
    dtype; ``masks [g, n]``; ``weights`` of that dtype, or None (all 1).
    """
    a = thresholds.shape[0]
    # above: example i is rejected at t_k iff t_k < s_i iff k < #(t < s_i) (side="left").
    # below: rejected iff s_i < t_k iff k >= #(t <= s_i) (side="right").
    side = "left" if reject_if == "above" else "right"
    m = masks.astype(stat.dtype if weights is None else weights.dtype).T  # [n, g]

    def one(s, w=None):
        bucket = jnp.searchsorted(thresholds, s, side=side)  # [n] in 0..a
        mw = m if w is None else m * w[:, None]
        hist = jax.ops.segment_sum(mw, bucket, num_segments=a + 1)  # [a+1, g]
        cum = jnp.cumsum(hist, axis=0)
        total = cum[-1]
        rejected = total[None, :] - cum[:a] if reject_if == "above" else cum[:a]
        return rejected / total[None, :]

    return jax.vmap(one)(stat) if weights is None else jax.vmap(one)(stat, weights)


@functools.partial(jax.jit, static_argnames=("reject_if",))
def _rejection_batched(stat, thresholds, masks, weights, reject_if):
    """Curves ``[..., a, g]`` of ``stat [..., n]`` (any dtype, cast here), a checked grid,
    masks (or a tuple, stacked) and weights broadcastable to ``stat`` or None."""
    s = stat.astype(float_dtype(stat))
    t = grid_float(thresholds).astype(s.dtype)
    masks = stack_masks(masks)
    lead, n = s.shape[:-1], s.shape[-1]
    w = None
    if weights is not None:
        w = jnp.broadcast_to(weights.astype(s.dtype), s.shape).reshape((-1, n))
    flat = rejection_kernel(s.reshape((-1, n)), t, masks, w, reject_if)
    return flat.reshape((*lead, t.shape[0], masks.shape[0]))


def rejection_curves(
    stat: Any,
    thresholds: Any,
    masks: Any,
    *,
    reject_if: str = "above",
    weights: Any = None,
) -> jax.Array:
    """Group false-rejection rate at every threshold, as one batched computation.

    ``FPR_s(t) = |{i in s : rejected(stat_i, t)}| / |s|`` on clean data, where
    ``reject_if="above"`` rejects iff ``stat > t`` (randomized smoothing:
    ``stat`` = binomial-test p-value, abstain iff ``p > alpha``) and
    ``reject_if="below"`` rejects iff ``stat < t`` (neural rejection: ``stat`` =
    top SVM score, reject iff score < t).

    Formulation (cumulative histogram, no ``[a, g, n]`` tensor): each example's
    bucket among the sorted thresholds is found by binary search
    (``searchsorted``, ``O(n log a)``), per-group bucket counts are summed with
    ``segment_sum`` into ``[a + 1, g]``, and a cumulative sum over buckets gives
    every threshold at once. Memory is ``O(a g + n g)`` per leading index (the
    masks themselves are ``n g``) instead of ``O(a g n)``.

    Args:
      stat: per-example statistic ``[..., n]`` (leading axes, e.g. N, batch).
      thresholds: strictly increasing finite grid ``[a]`` (traced; e.g.
        :func:`alpha_grid`).
      masks: ``[g, n]``.
      reject_if: ``"above"`` or ``"below"``.
      weights: optional multiplicities broadcastable to ``stat``.

    Returns:
      float ``[..., a, g]`` in [0, 1]; NaN for empty groups (with a ``RuntimeWarning``).

    Raises:
      ValueError: unknown ``reject_if`` (lists options), bad shapes, or a grid
        that is not 1-D, finite and strictly increasing.
    """
    check_choice("reject_if", reject_if, REJECT_IF)
    s = checked_values(stat, "stat")
    t = checked_grid(thresholds, "thresholds")
    m = as_masks(masks, s.shape[-1], "rejection_curves")
    warn_empty(m, "rejection_curves")
    return _rejection_batched(s, t, m, checked_weights(weights, s.shape), reject_if)


def rejection_curves_args(
    stat: Any,
    thresholds: Any,
    masks: Any,
    *,
    reject_if: str = "above",
    weights: Any = None,
) -> tuple[jax.Array, jax.Array, Any, jax.Array]:
    """Checked, converted arguments of :func:`rejection_kernel` (as ``rejection_curves`` checks).

    For callers that run the kernel themselves (``fairrobust.engine.rejection_curves``
    splits ``stat``'s rows over devices). Warns about empty groups like
    :func:`rejection_curves`.

    Args:
      stat, thresholds, masks, reject_if, weights: as in :func:`rejection_curves`.

    Returns:
      ``(stat [..., n] float, thresholds [a] in stat's dtype, masks [g, n],
      weights broadcast to stat's shape)``.

    Raises:
      ValueError: as :func:`rejection_curves`.
    """
    check_choice("reject_if", reject_if, REJECT_IF)
    s = as_values(stat, "stat")
    t = as_grid(thresholds, "thresholds").astype(s.dtype)
    m = as_masks(masks, s.shape[-1], "rejection_curves")
    warn_empty(m, "rejection_curves", stacklevel=4)
    return s, t, m, as_weights(weights, s.shape, s.dtype)


@functools.partial(jax.jit, static_argnames=("reject_if", "normalize"))
def _auc_fpr(stat, thresholds, masks, weights, reject_if, normalize):
    s = stat.astype(float_dtype(stat))
    t = grid_float(thresholds).astype(s.dtype)
    curves = _rejection_batched(s, t, masks, weights, reject_if)  # [..., a, g]
    auc = trapezoid_last(jnp.swapaxes(curves, -1, -2), t)
    return auc / (t[-1] - t[0]) if normalize else auc


@functools.partial(jax.jit, static_argnames=("reject_if", "normalize"))
def _auc_fpr_split(stat, thresholds, masks, weights, valids, reject_if, normalize):
    auc = _auc_fpr(stat, thresholds, masks, weights, reject_if, normalize)
    return split_parity(auc, masks, valids)


@functools.partial(jax.jit, static_argnames=("normalize",))
def _auc_of_curves(curves, thresholds, normalize):
    c = curves.astype(float_dtype(curves))
    t = grid_float(thresholds).astype(c.dtype)
    auc = trapezoid_last(jnp.swapaxes(c, -1, -2), t)
    return auc / (t[-1] - t[0]) if normalize else auc


def auc_fpr(
    stat: Any,
    thresholds: Any,
    masks: Any = None,
    *,
    reject_if: str = "above",
    normalize: bool = False,
    weights: Any = None,
) -> jax.Array:
    """Per-group area under false rejection vs threshold (preprint Eq. 3).

    ``AUC_FPR(s) = int_{alpha_min}^{alpha_max} |f*(X_s, alpha) = -1| / |X_s| d alpha``
    by the trapezoid rule over the threshold grid (raw integral, the paper's
    grid alpha in [0.001, 1] step 1e-3). For randomized smoothing
    (``reject_if="above"``, ``stat`` = p-value) it approaches the closed form
    ``mean_i clip(p_i - alpha_min, 0, alpha_max - alpha_min)`` as the step
    shrinks (error at most one step). Lower means fewer false rejections.

    Two forms: with ``masks``, from per-example statistics (one fused sweep);
    without ``masks``, ``stat`` is taken to be precomputed curves ``[..., a, g]``
    from :func:`rejection_curves` and is only integrated.

    Args:
      stat: ``[..., n]`` per-example statistic (leading axes, e.g. N in
        {10, ..., 10000}, batch), or curves ``[..., a, g]`` when ``masks`` is None.
      thresholds: strictly increasing grid ``[a]``.
      masks: ``[g, n]``, or None (see above).
      reject_if: ``"above"`` or ``"below"`` (see :func:`rejection_curves`).
      normalize: divide by the grid's range.
      weights: optional multiplicities broadcastable to ``stat`` (with masks only).

    Returns:
      ``[..., g]``; NaN for empty groups (with a ``RuntimeWarning``).

    Raises:
      ValueError: as :func:`rejection_curves`; curves whose axis -2 is not ``a``.
    """
    check_choice("reject_if", reject_if, REJECT_IF)
    if masks is None:
        c = checked_values(stat, "curves", min_ndim=2)
        t = checked_grid(thresholds, "thresholds", c.shape[-2])
        return _auc_of_curves(c, t, bool(normalize))
    s = checked_values(stat, "stat")
    t = checked_grid(thresholds, "thresholds")
    m = as_masks(masks, s.shape[-1], "auc_fpr")
    warn_empty(m, "auc_fpr")
    return _auc_fpr(s, t, m, checked_weights(weights, s.shape), reject_if, bool(normalize))


def auc_fpr_by_attribute(
    stat: Any,
    thresholds: Any,
    groups: Mapping[str, Any],
    *,
    reject_if: str = "above",
    normalize: bool = False,
    weights: Any = None,
) -> dict[str, AttributeSummary]:
    """AUC_FPR of every group of every attribute and each attribute's FPR Parity.

    One rejection sweep over the concatenated masks of all attributes.

    Returns:
      ``{name: AttributeSummary}`` with ``values`` = AUC_FPR ``[..., g]`` and
      ``parity`` = FPR Parity ``[...]`` (Eq. 4) over valid groups.
    """
    check_choice("reject_if", reject_if, REJECT_IF)
    s = checked_values(stat, "stat")
    t = checked_grid(thresholds, "thresholds")
    masks, spans = stack_groups(groups, s.shape[-1], "auc_fpr_by_attribute")
    valids = attribute_valids(spans)
    w = checked_weights(weights, s.shape)
    pieces = _auc_fpr_split(s, t, masks, w, valids, reject_if, bool(normalize))
    return attribute_summaries(pieces, spans, valids)
