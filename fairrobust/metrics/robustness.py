"""Robustness metrics: accuracy vs attack budget and its area, AUC_acc (paper Eq. 1).

``AUC_acc(s) = int_{eps_min}^{eps_max} acc_s(eps) d eps`` (trapezoid on the grid),
with ``acc_s(eps) = |f(X_s + delta_eps) = Y_s| / |X_s|``. Epsilons are traced, so a
sweep compiles once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from fairrobust.metrics._kernels import group_means, split_parity, trapezoid_last
from fairrobust.metrics._validate import (
    as_grid,
    as_masks,
    as_values,
    checked_grid,
    checked_values,
    checked_weights,
    grid_float,
    warn_empty,
)
from fairrobust.metrics.groups import (
    AttributeSummary,
    attribute_summaries,
    attribute_valids,
    stack_groups,
)

__all__ = ["accuracy_curves", "auc_acc", "auc_acc_by_attribute", "auc_acc_kernel", "trapezoid"]


# ------------------------------------------------------------------------- robustness


def trapezoid(y: Any, x: Any, axis: int = -1) -> jax.Array:
    """Trapezoid-rule integral of ``y`` over the grid ``x`` along ``axis``.

    ``sum_k (x_{k+1} - x_k) (y_k + y_{k+1}) / 2`` (same as ``numpy.trapezoid``).

    Args:
      y: values ``[..., K, ...]`` with ``K = len(x)`` on ``axis``.
      x: 1-D strictly increasing grid ``[K]``.
      axis: the grid axis of ``y``.

    Returns:
      ``y`` with ``axis`` removed.
    """
    yy = jnp.moveaxis(as_values(y, "y"), axis, -1)
    xx = as_grid(x, "x", yy.shape[-1])
    return trapezoid_last(yy, xx.astype(yy.dtype))


def accuracy_curves(correct: Any, masks: Any, *, weights: Any = None) -> jax.Array:
    """Group accuracy at each epsilon of a sweep.

    ``acc_s(eps) = |f(X_s + delta_eps) = Y_s| / |X_s|`` (the integrand of Eq. 1).

    Args:
      correct: per-example robust correctness ``[..., e, n]`` (bool or 0/1).
      masks: ``[g, n]``.
      weights: optional per-example multiplicities broadcastable to ``correct``.

    Returns:
      float ``[..., e, g]``; NaN for empty groups (with a ``RuntimeWarning``).
    """
    v = checked_values(correct, "correct")
    m = as_masks(masks, v.shape[-1], "accuracy_curves")
    warn_empty(m, "accuracy_curves")
    return group_means(v, m, checked_weights(weights, v.shape))


@functools.partial(jax.jit, static_argnames=("normalize",))
def auc_acc_kernel(correct, epsilons, masks, weights, normalize):
    """Jitted AUC_acc ``[..., g]`` of checked arguments (see :func:`auc_acc`); no validation.

    ``correct [..., e, n]``, ``epsilons [e]`` (any dtype, cast here), masks ``[g, n]`` or
    a tuple of them (stacked), weights broadcastable to ``correct`` or None.
    """
    acc = group_means(correct, masks, weights)  # [..., e, g]
    eps = grid_float(epsilons).astype(acc.dtype)
    auc = trapezoid_last(jnp.swapaxes(acc, -1, -2), eps)
    return auc / (eps[-1] - eps[0]) if normalize else auc


def auc_acc(
    correct: Any,
    epsilons: Any,
    masks: Any,
    *,
    normalize: bool = False,
    weights: Any = None,
) -> jax.Array:
    """Per-group area under accuracy vs attack budget (AISec '23 Eq. 1).

    ``AUC_acc(s) = int_{eps_min}^{eps_max} |f(X_s + delta_eps) = Y_s| / |X_s| d eps``,
    the raw integral by the trapezoid rule on the given epsilon grid (``eps_min``
    and ``eps_max`` are its first and last points; include 0 for clean accuracy).
    Higher means the group stays protected over a wider range of budgets.

    Args:
      correct: per-example correctness ``[..., e, n]``; leading axes (models, ...) batch.
      epsilons: strictly increasing grid ``[e]`` (traced: a sweep compiles once).
      masks: ``[g, n]``.
      normalize: divide by ``eps_max - eps_min`` (a mean accuracy in [0, 1]).
      weights: optional per-example multiplicities broadcastable to ``correct``.

    Returns:
      ``[..., g]``; NaN for empty groups (with a ``RuntimeWarning``).

    Raises:
      ValueError: bad shapes, or a grid that is not 1-D, finite, strictly
        increasing with ``e`` points.
    """
    v = checked_values(correct, "correct", min_ndim=2)
    eps = checked_grid(epsilons, "epsilons", v.shape[-2])
    m = as_masks(masks, v.shape[-1], "auc_acc")
    warn_empty(m, "auc_acc")
    return auc_acc_kernel(v, eps, m, checked_weights(weights, v.shape), bool(normalize))


@functools.partial(jax.jit, static_argnames=("normalize",))
def _auc_acc_split(correct, epsilons, masks, weights, valids, normalize):
    auc = auc_acc_kernel(correct, epsilons, masks, weights, normalize)
    return split_parity(auc, masks, valids)


def auc_acc_by_attribute(
    correct: Any,
    epsilons: Any,
    groups: Mapping[str, Any],
    *,
    normalize: bool = False,
    weights: Any = None,
) -> dict[str, AttributeSummary]:
    """AUC_acc of every group of every attribute, and each attribute's Defense Parity.

    One reduction over the concatenated masks of all attributes and intersections.

    Args:
      correct: ``[..., e, n]`` per-example correctness.
      epsilons: grid ``[e]``.
      groups: ``{name: Groups}`` (``fairrobust.groups.all_groups``).
      normalize: as in :func:`auc_acc`.
      weights: optional multiplicities broadcastable to ``correct``.

    Returns:
      ``{name: AttributeSummary}`` with ``values`` = AUC_acc ``[..., g]`` and
      ``parity`` = Defense Parity ``[...]`` (groups under the minimum size listed
      in ``small`` and excluded from parity).
    """
    v = checked_values(correct, "correct", min_ndim=2)
    eps = checked_grid(epsilons, "epsilons", v.shape[-2])
    masks, spans = stack_groups(groups, v.shape[-1], "auc_acc_by_attribute")
    valids = attribute_valids(spans)
    w = checked_weights(weights, v.shape)
    pieces = _auc_acc_split(v, eps, masks, w, valids, bool(normalize))
    return attribute_summaries(pieces, spans, valids)
