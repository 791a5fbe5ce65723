"""Group metrics: AUC_acc, Defense Parity, AUC_FPR, FPR Parity, fairness, Pearson, bootstrap.

Every metric is a masked reduction of per-example values ``[..., n]`` with group
masks ``[g, n]`` (``fairrobust.groups.Groups.masks``), written in ``jnp``,
jitted, and batched over any leading axes (epsilons, thresholds, models, N):
``rates = masks @ values / masks.sum(1)``. Sweep parameters (epsilons,
thresholds / alphas) are traced arguments, so a sweep compiles once.

Definitions (Richards, Raff & Matuszek, AISec '23 and the preprint):

* Eq. 1 ``AUC_acc(s) = int_{eps_min}^{eps_max} acc_s(eps) d eps`` (trapezoid on the grid).
* Eq. 2 Defense Parity ``DP = max_{s, s'} (AUC_acc(s) - AUC_acc(s'))`` over valid groups.
* Eq. 3 ``AUC_FPR(s) = int_{alpha_min}^{alpha_max} FPR_s(alpha) d alpha`` where
  ``FPR_s(alpha)`` is the fraction of clean examples of group ``s`` rejected
  (abstained on) at threshold ``alpha``.
* Eq. 4 FPR Parity ``= max_{s, s'} (AUC_FPR(s) - AUC_FPR(s'))`` over valid groups.

Conventions shared by all functions:

* **Empty groups** give NaN rates. The public functions warn (``RuntimeWarning``
  naming the group indices) when they can see the masks (i.e. when called
  outside ``jit``); under ``jit`` / ``vmap`` the NaN is returned silently.
* **Validity**: parity functions take ``valid [g]`` (``Groups.valid``); groups that
  are invalid (under the minimum size) or whose value is NaN are excluded. With
  fewer than two usable groups a parity number is NaN.
* **Weights**: most functions take ``weights`` (per-example multiplicities,
  broadcastable to the values); the bootstrap uses them to resample by
  reweighting instead of copying data.

Index: group reductions (:func:`group_rates`, :func:`by_group`,
:func:`group_min`, :func:`group_max`, :func:`difference`, :func:`ratio`);
parity (:func:`max_gap`, :func:`defense_parity`, :func:`fpr_parity`,
:func:`parity_pair`, :func:`parity_pair_names`); robustness
(:func:`accuracy_curves`, :func:`auc_acc`, :func:`auc_acc_by_attribute`,
:func:`trapezoid`); fairness (:func:`group_confusion`,
:func:`demographic_parity_difference`, :func:`tpr_parity_difference`,
:func:`fpr_parity_difference`, :func:`equalized_odds_difference`, :func:`p_rule`,
:func:`fairness_metrics`); correlation (:func:`pearsonr`,
:func:`correlation_matrix`, :func:`size_correlation`); rejection
(:func:`alpha_grid`, :func:`rejection_curves`, :func:`auc_fpr`,
:func:`auc_fpr_by_attribute`); bootstrap (:func:`resample_weights`,
:func:`bootstrap_ci`, :class:`GroupRateStat`, :class:`AucAccStat`,
:class:`AucFprStat`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "AttributeSummary",
    "AucAccStat",
    "AucFprStat",
    "BootstrapResult",
    "GroupRateStat",
    "accuracy_curves",
    "alpha_grid",
    "auc_acc",
    "auc_acc_by_attribute",
    "auc_fpr",
    "auc_fpr_by_attribute",
    "bootstrap_ci",
    "by_group",
    "correlation_matrix",
    "defense_parity",
    "demographic_parity_difference",
    "difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_metrics",
    "fpr_parity",
    "fpr_parity_difference",
    "group_confusion",
    "group_max",
    "group_min",
    "group_rates",
    "max_gap",
    "p_rule",
    "parity_pair",
    "parity_pair_names",
    "pearsonr",
    "ratio",
    "rejection_curves",
    "resample_weights",
    "size_correlation",
    "tpr_parity_difference",
    "trapezoid",
]

_HI = jax.lax.Precision.HIGHEST  # masks are 0/1: keep float32 exact on GPUs (no TF32)
_EXACT = 1 << 24  # integer counts below this are exact in float32
_DIFF_METHODS = ("between_groups", "to_overall")
_REJECT_IF = ("above", "below")
_AVERAGES = ("mean", "worst", None)


# --------------------------------------------------------------------------- helpers


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)  # pyright: ignore[reportAttributeAccessIssue]


def _float_dtype(x: Any) -> Any:
    """x's dtype if floating, else float32 (bool / int values become float32)."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


# Hot paths hand their inputs to one jitted kernel as they are (NumPy arrays are
# transferred by the jit call itself) and cast inside it: an eager jnp.asarray /
# astype costs 10-200 us each on CPU, more than the reductions. Checks use shapes
# only, or NumPy on host copies of small / cached arrays.


def _array(x: Any) -> Any:
    """``x`` as a jax / NumPy array without a device op (other inputs via NumPy)."""
    if isinstance(x, (jax.Array, np.ndarray)):  # jax.Array includes tracers
        return x
    a = np.asarray(x)
    return jnp.asarray(x) if a.dtype == object else a  # object: jnp's own error


def _host(x: Any) -> np.ndarray:
    """A NumPy copy of a concrete input in the dtype jax would give it (x64 rules)."""
    a = np.asarray(x)
    dt = jax.dtypes.canonicalize_dtype(a.dtype)
    return a if a.dtype == dt else a.astype(dt)


def _as_values(values: Any, name: str = "values", min_ndim: int = 1) -> jax.Array:
    """:func:`_values` as a floating jax array (for callers outside the lean kernels)."""
    v = jnp.asarray(_values(values, name, min_ndim))
    return v.astype(_float_dtype(v))


def _values(values: Any, name: str = "values", min_ndim: int = 1) -> Any:
    """Lean :func:`_as_values`: same check, no cast (the kernels cast with _float_dtype)."""
    v = _array(values)
    if v.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dims, got shape {v.shape}")
    return v


def _as_masks(masks: Any, n: int, fn: str) -> Any:
    """Masks ``[g, n]`` as an array (no device op), shape-checked against the examples axis."""
    m = _array(masks)
    if m.ndim != 2 or m.shape[1] != n:
        raise ValueError(f"{fn}: masks: expected shape (g, n={n}), got {m.shape}")
    return m


def _warn_empty(masks: Any, fn: str, names: Sequence[str] | None = None) -> None:
    """RuntimeWarning naming empty groups, when the masks (or a tuple of masks, stacked
    along groups) are concrete."""
    parts = masks if isinstance(masks, tuple) else (masks,)
    if any(_is_tracer(p) for p in parts):
        return
    # numpy on host: a jax array caches its host copy, so this is one transfer per array
    nonzero = [
        a.any(axis=-1) if a.dtype == np.bool_ else (a != 0).any(axis=-1)
        for a in map(np.asarray, parts)
    ]
    if all(nz.all() for nz in nonzero):
        return
    empty = np.flatnonzero(~np.concatenate(nonzero))
    which = [f"{int(i)} ({names[int(i)]!r})" if names else str(int(i)) for i in empty]
    warnings.warn(
        f"{fn}: group index {', '.join(which)} has no examples; its rate is NaN "
        "and it is excluded from parity numbers",
        RuntimeWarning,
        stacklevel=3,
    )


def _as_weights(weights: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Per-example multiplicities broadcast explicitly to ``shape`` (rank promotion is strict)."""
    w = _weights(weights, shape)
    if w is None:
        return jnp.ones(shape, dtype)
    return jnp.broadcast_to(jnp.asarray(w, dtype), shape)


def _weights(weights: Any, shape: tuple[int, ...]) -> Any:
    """Lean :func:`_as_weights`: None stays None (all ones, never materialised); an
    array is only checked to broadcast to ``shape`` (kernels cast and broadcast it)."""
    if weights is None:
        return None
    w = _array(weights)
    try:
        ok = np.broadcast_shapes(w.shape, shape) == tuple(shape)  # broadcast_to's rule
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"weights: expected a shape broadcastable to {shape}, got {w.shape}")
    return w


def _as_valid(valid: Any, g: int) -> jax.Array:
    if valid is None:
        return jnp.ones((g,), bool)
    v = jnp.asarray(valid)
    if v.shape != (g,):
        raise ValueError(f"valid: expected shape (g={g},), got {v.shape}")
    return v.astype(bool)


def _grid(x: Any, name: str, length: int | None = None) -> Any:
    """1-D, finite, strictly increasing grid (checked when concrete), without a device op.

    Host input comes back as NumPy in jax's dtype (float32 if not floating); a jax
    array or tracer comes back as given: kernels cast it with :func:`_grid_float`.
    """
    if isinstance(x, jax.Array):
        g = x
    else:
        g = _host(_array(x))
        if not jnp.issubdtype(g.dtype, jnp.floating):
            g = g.astype(jnp.float32)
    if g.ndim != 1 or g.shape[0] < 2:
        raise ValueError(f"{name}: expected a 1-D grid of at least 2 points, got shape {g.shape}")
    if length is not None and g.shape[0] != length:
        raise ValueError(f"{name}: expected {length} points to match the values, got {g.shape[0]}")
    if not _is_tracer(g):
        a = np.asarray(g)  # a jax array's host copy is cached: one transfer per array
        if not jnp.issubdtype(a.dtype, jnp.floating):
            a = a.astype(jnp.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: expected finite values, got {a}")
        if not (a[1:] > a[:-1]).all():  # finite: the same as diff > 0
            raise ValueError(f"{name}: expected a strictly increasing grid, got {a}")
    return g


def _grid_float(x: jax.Array) -> jax.Array:
    """Inside a kernel: a grid from :func:`_grid` in the dtype :func:`_as_grid` gives it."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _as_grid(x: Any, name: str, length: int | None = None) -> jax.Array:
    """1-D, finite, strictly increasing grid (checked when concrete), as a float jax array."""
    return _grid_float(jnp.asarray(_grid(x, name, length)))


def _choice(value: Any, name: str, options: Sequence[Any]) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")


# ------------------------------------------------------------------ group reductions


def _counts(values: jax.Array, masks: jax.Array) -> jax.Array:
    """``sum_i m_gi v_i`` of bool values ``[..., n]`` and bool masks ``[g, n]``, float32.

    Exact integer counts (``n < 2**24``) either way: on CPU an int8 x int8 -> int32
    dot (2-3x faster than the float32 einsum), elsewhere the float32 einsum at
    ``_HI`` precision (no TF32 rounding on GPUs).
    """

    def int8(v, m):
        c = jnp.einsum(
            "...n,gn->...g",
            v.astype(jnp.int8),
            m.astype(jnp.int8),
            preferred_element_type=jnp.int32,
        )
        return c.astype(jnp.float32)

    def f32(v, m):
        v, m = v.astype(jnp.float32), m.astype(jnp.float32)
        return jnp.einsum("...n,gn->...g", v, m, precision=_HI)

    return jax.lax.platform_dependent(values, masks, cpu=int8, default=f32)


def _stacked(masks: Any) -> jax.Array:
    """Inside a kernel: masks ``[g, n]``, or a tuple of them concatenated along groups."""
    return jnp.concatenate(masks, axis=0) if isinstance(masks, (tuple, list)) else masks


@jax.jit
def _group_sums(values: jax.Array, masks: Any, weights: jax.Array | None):
    """(sum_i m_gi w_i v_i, sum_i m_gi w_i), each ``[..., g]``.

    ``values [..., n]`` of any dtype (computed in :func:`_float_dtype`), masks
    ``[g, n]`` (or a tuple, stacked), weights broadcastable to the values or None
    (all 1, never materialised for 0/1 masks).
    """
    masks = _stacked(masks)
    dt = _float_dtype(values)
    if weights is None and masks.dtype == jnp.bool_ and values.shape[-1] < _EXACT:
        # 0/1 masks: the sizes are exact integer counts (what the einsum of ones gave),
        # taken as one more row of the counting dot (a reduction of bool masks is slower).
        lead, n = values.shape[:-1], values.shape[-1]
        ones = jnp.ones((1, n), jnp.bool_)
        if values.dtype == jnp.bool_:
            c = _counts(jnp.concatenate([values.reshape((math.prod(lead), n)), ones]), masks)
            num, size = c[:-1].reshape((*lead, masks.shape[0])), c[-1]
        else:
            m = masks.astype(dt)
            num = jnp.einsum("...n,gn->...g", values.astype(dt), m, precision=_HI)
            size = _counts(ones, masks)[0].astype(dt)
        # Materialised at num's shape: XLA turns a division by a broadcast into a
        # multiplication by its reciprocal (1 ulp off); num / den stays a division.
        return num, jax.lax.optimization_barrier(jnp.broadcast_to(size, num.shape))
    v = values.astype(dt)
    if weights is None:
        w = jnp.ones(v.shape, dt)
    else:
        w = jnp.broadcast_to(weights.astype(dt), v.shape)
    m = masks.astype(dt)
    num = jnp.einsum("...n,gn->...g", v * w, m, precision=_HI)
    den = jnp.einsum("...n,gn->...g", w, m, precision=_HI)
    return num, den


@jax.jit
def _group_means(values: jax.Array, masks: Any, weights: jax.Array | None) -> jax.Array:
    num, den = _group_sums(values, masks, weights)
    return num / den  # 0 / 0 = NaN for an empty group


def group_rates(values: Any, masks: Any, *, weights: Any = None) -> jax.Array:
    """Per-group mean of a per-example value (accuracy, rejection, ...).

    ``rate[..., s] = sum_i m_si w_i v_i / sum_i m_si w_i``.

    Args:
      values: per-example values ``[..., n]`` (bool / int / float; e.g. correct).
      masks: group masks ``[g, n]`` (bool, or float memberships).
      weights: optional per-example multiplicities broadcastable to ``values``.

    Returns:
      float ``[..., g]``. An empty group (no members, or zero total weight) gives
      NaN; when ``masks`` is concrete a ``RuntimeWarning`` names its index.

    Raises:
      ValueError: ``masks`` is not ``[g, n]`` with ``n = values.shape[-1]``.
    """
    v = _values(values)
    m = _as_masks(masks, v.shape[-1], "group_rates")
    _warn_empty(m, "group_rates")
    return _group_means(v, m, _weights(weights, v.shape))


def by_group(values: Any, masks: Any, *, weights: Any = None) -> jax.Array:
    """fairlearn's ``MetricFrame.by_group`` for a per-example value: :func:`group_rates`."""
    v = _values(values)
    m = _as_masks(masks, v.shape[-1], "by_group")
    _warn_empty(m, "by_group")
    return _group_means(v, m, _weights(weights, v.shape))


def _masked_extreme(x: jax.Array, valid: jax.Array, kind: str) -> jax.Array:
    ok = jnp.isfinite(x) & jnp.broadcast_to(valid, x.shape)
    fill = -jnp.inf if kind == "max" else jnp.inf
    red = jnp.max if kind == "max" else jnp.min
    out = red(jnp.where(ok, x, fill), axis=-1)
    return jnp.where(jnp.any(ok, axis=-1), out, jnp.nan)


@functools.partial(jax.jit, static_argnames=("kind",))
def _aggregate_groups(values, masks, weights, valid, kind):
    """One fused computation for group_min / group_max / difference / ratio."""
    r = _group_means(values, masks, weights)
    if kind in ("min", "max"):
        return _masked_extreme(r, valid, kind)
    if kind == "difference:between_groups":
        return _max_gap(r, valid)
    if kind == "ratio:between_groups":
        return _masked_extreme(r, valid, "min") / _masked_extreme(r, valid, "max")
    v = values.astype(_float_dtype(values))
    w = jnp.ones(v.shape, v.dtype) if weights is None else jnp.broadcast_to(weights, v.shape)
    # Materialised (as the caller used to): XLA would otherwise reduce the broadcast and
    # turn the division by it into a multiplication by a reciprocal (1 ulp off).
    w = jax.lax.optimization_barrier(w.astype(v.dtype))
    o = (jnp.sum(v * w, axis=-1) / jnp.sum(w, axis=-1))[..., None]
    if kind == "difference:to_overall":
        return _masked_extreme(jnp.abs(r - o), valid, "max")
    return _masked_extreme(jnp.minimum(r, o) / jnp.maximum(r, o), valid, "min")


def _group_aggregate(values, masks, weights, valid, kind, fn):
    v = _values(values)
    m = _as_masks(masks, v.shape[-1], fn)
    _warn_empty(m, fn)
    w = _weights(weights, v.shape)
    return _aggregate_groups(v, m, w, _as_valid(valid, m.shape[0]), kind)


def group_min(values: Any, masks: Any, *, valid: Any = None, weights: Any = None) -> jax.Array:
    """Smallest group rate over valid, non-empty groups (fairlearn ``group_min``).

    Args:
      values: per-example values ``[..., n]``.
      masks: ``[g, n]``.
      valid: optional bool ``[g]`` (``Groups.valid``); invalid groups are ignored.
      weights: optional multiplicities broadcastable to ``values``.

    Returns:
      ``[...]``; NaN when no group is usable.
    """
    return _group_aggregate(values, masks, weights, valid, "min", "group_min")


def group_max(values: Any, masks: Any, *, valid: Any = None, weights: Any = None) -> jax.Array:
    """Largest group rate over valid, non-empty groups (fairlearn ``group_max``); see group_min."""
    return _group_aggregate(values, masks, weights, valid, "max", "group_max")


def difference(
    values: Any,
    masks: Any,
    *,
    method: str = "between_groups",
    valid: Any = None,
    weights: Any = None,
) -> jax.Array:
    """Largest disparity of a per-example value between groups (fairlearn ``difference``).

    ``between_groups``: ``max_s r_s - min_s r_s``; ``to_overall``:
    ``max_s |r_s - r_all|`` where ``r_all`` is the mean over all ``n`` examples
    (including examples in no group, as fairlearn's ``overall``).

    Args:
      values: per-example values ``[..., n]``.
      masks: ``[g, n]``.
      method: ``"between_groups"`` or ``"to_overall"``.
      valid: optional bool ``[g]``; invalid and empty groups are ignored.
      weights: optional multiplicities broadcastable to ``values``.

    Returns:
      ``[...]``; NaN when fewer than two (``between_groups``) or no
      (``to_overall``) groups are usable.

    Raises:
      ValueError: unknown ``method`` (lists the options) or bad shapes.
    """
    _choice(method, "method", _DIFF_METHODS)
    return _group_aggregate(values, masks, weights, valid, f"difference:{method}", "difference")


def ratio(
    values: Any,
    masks: Any,
    *,
    method: str = "between_groups",
    valid: Any = None,
    weights: Any = None,
) -> jax.Array:
    """Smallest ratio of group rates (fairlearn ``ratio``), in [0, 1].

    ``between_groups``: ``min_s r_s / max_s r_s``; ``to_overall``:
    ``min_s min(r_s, r_all) / max(r_s, r_all)``. A 0 / 0 ratio is NaN.

    Args:
      values: per-example values ``[..., n]`` (non-negative rates).
      masks: ``[g, n]``.
      method: ``"between_groups"`` or ``"to_overall"``.
      valid: optional bool ``[g]``; invalid and empty groups are ignored.
      weights: optional multiplicities broadcastable to ``values``.

    Returns:
      ``[...]``.

    Raises:
      ValueError: unknown ``method`` (lists the options) or bad shapes.
    """
    _choice(method, "method", _DIFF_METHODS)
    return _group_aggregate(values, masks, weights, valid, f"ratio:{method}", "ratio")


# ----------------------------------------------------------------------------- parity


@jax.jit
def _max_gap(x: jax.Array, valid: jax.Array) -> jax.Array:
    ok = jnp.isfinite(x) & jnp.broadcast_to(valid, x.shape)
    hi = jnp.max(jnp.where(ok, x, -jnp.inf), axis=-1)
    lo = jnp.min(jnp.where(ok, x, jnp.inf), axis=-1)
    return jnp.where(jnp.sum(ok, axis=-1) >= 2, hi - lo, jnp.nan)


def max_gap(values: Any, valid: Any = None) -> jax.Array:
    """Largest pairwise difference of group values: ``max_{s,s'} (x_s - x_s')``.

    Equals ``max_s x_s - min_s x_s`` over the usable groups: those with
    ``valid[s]`` and a finite value.

    Args:
      values: group values ``[..., g]`` (AUC_acc, AUC_FPR, rates).
      valid: optional bool ``[g]``; ``None`` means all groups.

    Returns:
      ``[...]``, >= 0; NaN where fewer than two groups are usable.
    """
    x = _as_values(values)
    return _max_gap(x, _as_valid(valid, x.shape[-1]))


def defense_parity(auc: Any, valid: Any = None) -> jax.Array:
    """Defense Parity (AISec '23 Eq. 2): largest AUC_acc difference between groups.

    ``DP = max_{s, s' in S} AUC_acc(s) - AUC_acc(s') = max_s AUC_acc(s) - min_s AUC_acc(s)``
    over valid groups (size >= the minimum size; NaN groups are skipped).
    Lower is more equal.

    Args:
      auc: per-group AUC_acc ``[..., g]`` (from :func:`auc_acc`).
      valid: optional bool ``[g]`` (``Groups.valid``).

    Returns:
      ``[...]``; NaN where fewer than two groups are usable.
    """
    return max_gap(auc, valid)


def fpr_parity(auc_fpr_values: Any, valid: Any = None) -> jax.Array:
    """FPR Parity (preprint Eq. 4): largest AUC_FPR difference between groups.

    ``FPR_P = max_{s, s'} AUC_FPR(s) - AUC_FPR(s')`` over valid groups. Lower is
    more equal.

    Args:
      auc_fpr_values: per-group AUC_FPR ``[..., g]`` (from :func:`auc_fpr`).
      valid: optional bool ``[g]``.

    Returns:
      ``[...]``; NaN where fewer than two groups are usable.
    """
    return max_gap(auc_fpr_values, valid)


def parity_pair(values: Any, valid: Any = None) -> tuple[jax.Array, jax.Array]:
    """Which groups realise the parity gap: ``(argmax, argmin)`` over usable groups.

    Args:
      values: group values ``[..., g]``.
      valid: optional bool ``[g]``.

    Returns:
      Two int arrays ``[...]``: index of the best-served (largest value) and of the
      worst-served (smallest value) group; -1 where fewer than two groups are usable.
    """
    x = _as_values(values)
    ok = jnp.isfinite(x) & jnp.broadcast_to(_as_valid(valid, x.shape[-1]), x.shape)
    enough = jnp.sum(ok, axis=-1) >= 2
    hi = jnp.argmax(jnp.where(ok, x, -jnp.inf), axis=-1)
    lo = jnp.argmin(jnp.where(ok, x, jnp.inf), axis=-1)
    return jnp.where(enough, hi, -1), jnp.where(enough, lo, -1)


def parity_pair_names(
    values: Any, names: Sequence[str], valid: Any = None
) -> tuple[str | None, str | None]:
    """Names of the (largest, smallest) groups for one vector of group values ``[g]``.

    For AUC_acc the first is the best-protected and the second the worst-protected
    group; for AUC_FPR the first is the most falsely rejected. ``(None, None)``
    when fewer than two groups are usable.
    """
    x = jnp.asarray(values)
    if x.ndim != 1 or x.shape[0] != len(names):
        raise ValueError(f"values: expected shape ({len(names)},), got {x.shape}")
    hi, lo = parity_pair(x, valid)
    hi, lo = int(hi), int(lo)
    if hi < 0:
        return None, None
    return names[hi], names[lo]


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
    yy = jnp.moveaxis(_as_values(y, "y"), axis, -1)
    xx = _as_grid(x, "x", yy.shape[-1])
    return _trapezoid_last(yy, xx.astype(yy.dtype))


@jax.jit
def _trapezoid_last(y: jax.Array, x: jax.Array) -> jax.Array:
    mid = 0.5 * (y[..., 1:] + y[..., :-1])
    return jnp.einsum("...k,k->...", mid, jnp.diff(x), precision=_HI)


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
    v = _values(correct, "correct")
    m = _as_masks(masks, v.shape[-1], "accuracy_curves")
    _warn_empty(m, "accuracy_curves")
    return _group_means(v, m, _weights(weights, v.shape))


@functools.partial(jax.jit, static_argnames=("normalize",))
def _auc_acc(correct, epsilons, masks, weights, normalize):
    acc = _group_means(correct, masks, weights)  # [..., e, g]
    eps = _grid_float(epsilons).astype(acc.dtype)
    auc = _trapezoid_last(jnp.swapaxes(acc, -1, -2), eps)
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
    v = _values(correct, "correct", min_ndim=2)
    eps = _grid(epsilons, "epsilons", v.shape[-2])
    m = _as_masks(masks, v.shape[-1], "auc_acc")
    _warn_empty(m, "auc_acc")
    return _auc_acc(v, eps, m, _weights(weights, v.shape), bool(normalize))


@dataclasses.dataclass(frozen=True, eq=False)
class AttributeSummary:
    """Per-group values and the parity number of one attribute (or intersection).

    Attributes:
      attribute: attribute name (``"gender"``, ``"gender x dialect"``).
      names: group names ``[g]``.
      values: per-group metric ``[..., g]`` (AUC_acc or AUC_FPR).
      parity: Defense Parity / FPR Parity ``[...]`` over the valid groups.
      valid: numpy bool ``[g]``.
      sizes: numpy int ``[g]``.
      small: names of groups under the minimum size (reported, not in parity).
    """

    attribute: str
    names: tuple[str, ...]
    values: jax.Array
    parity: jax.Array
    valid: np.ndarray
    sizes: np.ndarray
    small: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-able dict (NaN -> None)."""

        def clean(a):
            arr = np.asarray(a, dtype=float)
            return np.where(np.isnan(arr), None, arr).tolist()  # pyright: ignore[reportArgumentType, reportCallIssue]

        return {
            "attribute": self.attribute,
            "names": list(self.names),
            "values": clean(self.values),
            "parity": clean(self.parity),
            "valid": [bool(v) for v in self.valid],
            "sizes": [int(s) for s in self.sizes],
            "small": list(self.small),
        }


def _stack_groups(groups: Mapping[str, Any], n: int, fn: str):
    """The masks of several Groups, as a tuple the kernels concatenate: one reduction
    for all attributes. Returns ``(masks, spans)``, ``spans`` = (key, Groups, start, stop)."""
    if not groups:
        raise ValueError(f"{fn}: groups: expected at least one Groups")
    masks, spans, start = [], [], 0
    for key, gr in groups.items():
        m = _array(gr.masks)
        if m.ndim != 2 or m.shape[1] != n:
            raise ValueError(
                f"{fn}: groups[{key!r}].masks: expected shape (g, n={n}), got {m.shape}"
            )
        masks.append(m)
        spans.append((key, gr, start, start + m.shape[0]))
        start += m.shape[0]
    names = [f"{gr.attribute}={nm}" for _, gr, _, _ in spans for nm in gr.names]
    masks = tuple(masks)
    _warn_empty(masks, fn, names)
    return masks, spans


def _split_parity(values: jax.Array, masks: tuple, valids: tuple) -> list:
    """Inside a kernel: ``values [..., g]`` of stacked masks -> per attribute (values, parity)."""
    out, start = [], 0
    for m, valid in zip(masks, valids, strict=True):
        vals = values[..., start : start + m.shape[0]]
        out.append((vals, _max_gap(vals, valid)))
        start += m.shape[0]
    return out


def _summaries(pieces: list, spans, valids: tuple) -> dict[str, AttributeSummary]:
    out = {}
    for (key, gr, _, _), (vals, parity), valid in zip(spans, pieces, valids, strict=True):
        out[key] = AttributeSummary(
            attribute=gr.attribute,
            names=tuple(gr.names),
            values=vals,
            parity=parity,
            valid=valid,
            sizes=np.asarray(gr.sizes),
            small=tuple(gr.small),
        )
    return out


def _valids(spans) -> tuple:
    return tuple(np.asarray(gr.valid) for _, gr, _, _ in spans)


@functools.partial(jax.jit, static_argnames=("normalize",))
def _auc_acc_split(correct, epsilons, masks, weights, valids, normalize):
    auc = _auc_acc(correct, epsilons, masks, weights, normalize)
    return _split_parity(auc, masks, valids)


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
    v = _values(correct, "correct", min_ndim=2)
    eps = _grid(epsilons, "epsilons", v.shape[-2])
    masks, spans = _stack_groups(groups, v.shape[-1], "auc_acc_by_attribute")
    valids = _valids(spans)
    w = _weights(weights, v.shape)
    pieces = _auc_acc_split(v, eps, masks, w, valids, bool(normalize))
    return _summaries(pieces, spans, valids)


# --------------------------------------------------------------------------- fairness


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _confusion(y_true, y_pred, masks, weights, num_classes):
    t = jax.nn.one_hot(y_true, num_classes, axis=-2, dtype=weights.dtype)  # [..., c, n]
    p = jax.nn.one_hot(y_pred, num_classes, axis=-2, dtype=weights.dtype)  # -1 -> all zeros
    m = masks.astype(weights.dtype)
    w = weights[..., None, :]
    size = jnp.einsum("...n,gn->...g", weights, m, precision=_HI)[..., None, :]
    pos = jnp.einsum("...cn,gn->...cg", t * w, m, precision=_HI)
    pred = jnp.einsum("...cn,gn->...cg", p * w, m, precision=_HI)
    tp = jnp.einsum("...cn,gn->...cg", t * p * w, m, precision=_HI)
    size = jnp.broadcast_to(size, pos.shape)
    return {"size": size, "pos": pos, "pred": pred, "tp": tp, "fp": pred - tp, "neg": size - pos}


def _check_labels(y_true, y_pred, masks, num_classes, fn):
    yt, yp = jnp.asarray(y_true), jnp.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim < 1:
        raise ValueError(f"y_pred: expected the shape of y_true {yt.shape}, got {yp.shape}")
    for name, y, lo in (("y_true", yt, 0), ("y_pred", yp, -1)):
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"{name}: expected integer class indices, got dtype {y.dtype}")
        if not _is_tracer(y) and y.size:
            a = np.asarray(y)
            if a.min() < lo or a.max() >= num_classes:
                raise ValueError(
                    f"{name}: expected values in [{lo}, {num_classes}), "
                    f"got range [{a.min()}, {a.max()}]"
                )
    m = _as_masks(masks, yt.shape[-1], fn)
    _warn_empty(m, fn)
    return yt, yp, m


def group_confusion(
    y_true: Any,
    y_pred: Any,
    masks: Any,
    num_classes: int,
    *,
    weights: Any = None,
) -> dict[str, jax.Array]:
    """One-vs-rest confusion counts per class and group.

    Class ``c`` is "positive" for example ``i`` when ``y_true_i = c`` and
    "predicted" when ``y_pred_i = c``. An abstention / rejection (``y_pred = -1``)
    predicts no class: it is a false negative for its true class and a true
    negative for every other class.

    Args:
      y_true: int labels ``[..., n]`` in ``[0, num_classes)``.
      y_pred: int predictions ``[..., n]`` in ``[-1, num_classes)`` (same shape;
        a leading epsilon axis gives clean and attacked predictions at once).
      masks: ``[g, n]``.
      num_classes: number of classes ``C`` (static).
      weights: optional multiplicities broadcastable to ``y_true``.

    Returns:
      dict of float ``[..., C, g]`` (weighted) counts: ``size`` (group size),
      ``pos`` (true class c), ``neg``, ``pred`` (predicted c), ``tp``, ``fp``.

    Raises:
      ValueError: shape mismatch, ``num_classes < 2``, or (when concrete) labels
        out of range.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    yt, yp, m = _check_labels(y_true, y_pred, masks, int(num_classes), "group_confusion")
    w = _as_weights(weights, yt.shape, jnp.float32)
    return _confusion(yt, yp, m, w, int(num_classes))


def _aggregate(per_class: jax.Array, average: str | None, worst: str) -> jax.Array:
    if average is None:
        return per_class
    if average == "mean":
        return jnp.nanmean(per_class, axis=-1)
    return jnp.nanmax(per_class, axis=-1) if worst == "max" else jnp.nanmin(per_class, axis=-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "average"))
def _fairness_all(y_true, y_pred, masks, weights, valid, num_classes, average):
    c = _confusion(y_true, y_pred, masks, weights, num_classes)
    sel = c["pred"] / c["size"]
    tpr_gap = _max_gap(c["tp"] / c["pos"], valid)
    fpr_gap = _max_gap(c["fp"] / c["neg"], valid)
    prule = 100.0 * _masked_extreme(sel, valid, "min") / _masked_extreme(sel, valid, "max")
    return {
        "demographic_parity_difference": _aggregate(_max_gap(sel, valid), average, "max"),
        "tpr_parity_difference": _aggregate(tpr_gap, average, "max"),
        "fpr_parity_difference": _aggregate(fpr_gap, average, "max"),
        "equalized_odds_difference": _aggregate(jnp.fmax(tpr_gap, fpr_gap), average, "max"),
        "p_rule": _aggregate(prule, average, "min"),
    }


def fairness_metrics(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> dict[str, jax.Array]:
    """All five multiclass group-fairness metrics in one computation.

    Each is computed one-vs-rest per class ``c`` (class ``c`` positive, every
    other class negative; an abstention ``-1`` predicts no class), as a gap (or
    ratio) over the valid, non-empty groups, then aggregated over classes:

    * ``demographic_parity_difference``: ``max_s P(yhat=c|s) - min_s P(yhat=c|s)``;
    * ``tpr_parity_difference`` (equal opportunity): gap of
      ``TPR_s(c) = P(yhat=c | y=c, s)`` (groups without class-c examples skipped);
    * ``fpr_parity_difference``: gap of ``FPR_s(c) = P(yhat=c | y!=c, s)`` (the
      classifier's FPR, not the rejection FPR of :func:`auc_fpr`);
    * ``equalized_odds_difference``: ``max(TPR gap, FPR gap)`` per class (fairlearn);
    * ``p_rule``: ``100 min_s P(yhat=c|s) / max_s P(yhat=c|s)`` in percent (100 =
      parity; below 80 fails the "80% rule"); NaN for a class nobody predicts.

    Args:
      y_true, y_pred, masks, num_classes, weights: as in :func:`group_confusion`.
      valid: optional bool ``[g]`` (``Groups.valid``).
      average: ``"mean"`` (mean over classes, NaN classes skipped), ``"worst"``
        (largest per-class gap; smallest per-class p-rule), or ``None``
        (per-class values ``[..., C]``).

    Returns:
      dict name -> ``[...]`` (``[..., C]`` with ``average=None``); a leading
      epsilon axis of ``y_pred`` gives clean and attacked values at once.

    Raises:
      ValueError: as :func:`group_confusion`; unknown ``average``.
    """
    _choice(average, "average", _AVERAGES)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    yt, yp, m = _check_labels(y_true, y_pred, masks, int(num_classes), "fairness_metrics")
    w = _as_weights(weights, yt.shape, jnp.float32)
    ok = _as_valid(valid, m.shape[0])
    return _fairness_all(yt, yp, m, w, ok, int(num_classes), average)


def demographic_parity_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """Demographic parity difference, one-vs-rest per class, then ``average``.

    Per class ``c``: ``max_s P(yhat = c | s) - min_s P(yhat = c | s)`` over valid
    groups. Abstentions select no class. Arguments and returns as
    :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["demographic_parity_difference"]


def tpr_parity_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """True-positive-rate parity (equal opportunity) difference, one-vs-rest.

    Per class ``c``: ``max_s TPR_s(c) - min_s TPR_s(c)``, ``TPR_s(c) = P(yhat = c |
    y = c, s)``; an abstention is a false negative. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["tpr_parity_difference"]


equal_opportunity_difference = tpr_parity_difference


def fpr_parity_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """False-positive-rate parity difference, one-vs-rest.

    Per class ``c``: ``max_s FPR_s(c) - min_s FPR_s(c)``, ``FPR_s(c) = P(yhat = c |
    y != c, s)``; an abstention is a true negative. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["fpr_parity_difference"]


def equalized_odds_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """Equalized odds difference: per class ``max(TPR gap, FPR gap)``, then ``average``.

    A NaN gap is ignored in the max. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["equalized_odds_difference"]


def p_rule(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """p-rule in percent: per class ``100 min_s P(yhat=c|s) / max_s P(yhat=c|s)``.

    Aggregated over classes by ``average`` (``"worst"`` = smallest class value).
    100 is perfect parity. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["p_rule"]


# ------------------------------------------------------------------------ correlation


@jax.jit
def _pearson(x, y, w):
    """Pearson r and two-sided p over the last axis, examples weighted 0/1 by ``w``."""
    n = jnp.sum(w, axis=-1)
    first = jnp.argmax(w > 0, axis=-1)[..., None]
    # Shift by one included element first so that a constant vector centres to exact zeros.
    xs = x - jnp.take_along_axis(x, first, axis=-1)
    ys = y - jnp.take_along_axis(y, first, axis=-1)
    const = jnp.all((xs == 0) | (w == 0), axis=-1) | jnp.all((ys == 0) | (w == 0), axis=-1)
    nn = jnp.maximum(n, 1.0)[..., None]
    xm = (xs - jnp.sum(xs * w, axis=-1, keepdims=True) / nn) * w
    ym = (ys - jnp.sum(ys * w, axis=-1, keepdims=True) / nn) * w
    # Scale by the largest magnitude first (as scipy) so squares cannot overflow;
    # r = sxy / sqrt(sxx syy) keeps exact linear relations at |r| = 1 in float32.
    tiny = jnp.finfo(xm.dtype).tiny
    xm = xm / jnp.maximum(jnp.max(jnp.abs(xm), axis=-1, keepdims=True), tiny)
    ym = ym / jnp.maximum(jnp.max(jnp.abs(ym), axis=-1, keepdims=True), tiny)
    sxy = jnp.sum(xm * ym, axis=-1)
    den = jnp.sqrt(jnp.sum(xm * xm, axis=-1) * jnp.sum(ym * ym, axis=-1))
    r = jnp.clip(sxy / jnp.maximum(den, tiny), -1.0, 1.0)
    bad = const | (n < 3)
    return jnp.where(bad, jnp.nan, r), jnp.where(bad, jnp.nan, n)


@jax.jit
def _pvalue_flat(r, n):
    # Two-sided p of t = r sqrt(df / (1 - r^2)) with df = n - 2:
    # p = I_{1 - r^2}(df / 2, 1 / 2) (regularised incomplete beta), as scipy's beta form.
    df = jnp.maximum(n - 2.0, 1.0)
    a = jnp.abs(r)
    return jax.scipy.special.betainc(0.5 * df, jnp.full_like(r, 0.5), (1.0 - a) * (1.0 + a))


def _pvalue(r: jax.Array, n: jax.Array) -> jax.Array:
    """p-values of ``r`` with ``n`` points; concrete inputs are padded to a power-of-two
    length so that the (slow to compile) incomplete beta compiles once per size bucket."""
    if _is_tracer(r) or _is_tracer(n):
        return _pvalue_flat(r, n)
    rr, nn = np.asarray(r).reshape(-1), np.asarray(n).reshape(-1)
    k = rr.size
    size = max(8, 1 << max(k - 1, 0).bit_length())
    rp = np.zeros(size, rr.dtype)
    np_ = np.full(size, 3.0, nn.dtype)
    rp[:k], np_[:k] = rr, nn
    return _pvalue_flat(jnp.asarray(rp), jnp.asarray(np_))[:k].reshape(r.shape)


def pearsonr(x: Any, y: Any, *, where: Any = None) -> tuple[jax.Array, jax.Array]:
    """Pearson correlation and two-sided p-value, as ``scipy.stats.pearsonr``.

    ``r = sum (x - xbar)(y - ybar) / sqrt(sum (x - xbar)^2 sum (y - ybar)^2)``;
    the p-value is that of the t-test of zero correlation with ``n - 2``
    degrees of freedom, computed as ``betainc((n - 2) / 2, 1 / 2, 1 - r^2)``
    (the same as scipy's beta-distribution form).

    Args:
      x: ``[..., m]`` (e.g. an intervention code per model).
      y: ``[..., m]`` (e.g. Defense Parity per model); ``x`` and ``y`` broadcast
        over the leading axes, so ``x [m]`` against ``y [g, m]`` gives ``[g]``.
      where: optional bool broadcastable to ``[..., m]``: which of the ``m``
        entries take part (e.g. models not excluded as random guessers).

    Returns:
      ``(r, p)``, each ``[...]``. NaN where a vector is constant or fewer than 3
      entries take part; when that can be seen outside ``jit`` a
      ``RuntimeWarning`` is issued.

    Raises:
      ValueError: the last axes differ or do not broadcast.
    """
    xx, yy = jnp.asarray(x), jnp.asarray(y)
    dt = jnp.result_type(_float_dtype(xx), _float_dtype(yy))
    xx, yy = xx.astype(dt), yy.astype(dt)
    if xx.ndim < 1 or yy.ndim < 1 or xx.shape[-1] != yy.shape[-1]:
        raise ValueError(f"x, y: expected the same last axis, got shapes {xx.shape} and {yy.shape}")
    try:
        shape = np.broadcast_shapes(xx.shape, yy.shape)
        w = jnp.ones(shape, dt) if where is None else jnp.asarray(where).astype(dt)
        shape = np.broadcast_shapes(shape, w.shape)
    except ValueError:
        raise ValueError(
            f"x, y, where: shapes {xx.shape}, {yy.shape} and "
            f"{None if where is None else jnp.shape(where)} do not broadcast"
        ) from None
    xx, yy, w = (jnp.broadcast_to(a, shape) for a in (xx, yy, w))
    r, npts = _pearson(xx, yy, w)
    p = jnp.where(jnp.isnan(npts), jnp.nan, _pvalue(r, npts))
    if xx.shape[-1] < 3:
        warnings.warn(
            f"pearsonr: need at least 3 entries, got {xx.shape[-1]}; returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    elif not any(_is_tracer(a) for a in (xx, yy, w)) and bool(jnp.any(jnp.isnan(r))):
        warnings.warn(
            "pearsonr: an input is constant (or fewer than 3 entries are selected); "
            "the correlation is undefined and returned as NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return r, p


def correlation_matrix(x: Any, y: Any, *, where: Any = None) -> tuple[jax.Array, jax.Array]:
    """Pearson r and p for every pair of rows of ``x [k, m]`` and ``y [j, m]``.

    E.g. ``x`` = interventions (AT applied, tricks, noise) per model and ``y`` =
    each group's AUC_acc (or each attribute's Defense Parity) per model: the
    paper's correlation heatmaps (Figures 2-5) in one batched call.

    Args:
      x: ``[k, m]``.
      y: ``[j, m]``.
      where: optional bool ``[m]`` (models included) or ``[k, j, m]``.

    Returns:
      ``(r, p)`` each ``[k, j]``; NaN (with a warning) for constant rows.
    """
    xx, yy = jnp.asarray(x), jnp.asarray(y)
    if xx.ndim != 2 or yy.ndim != 2 or xx.shape[1] != yy.shape[1]:
        raise ValueError(f"x, y: expected shapes (k, m) and (j, m), got {xx.shape} and {yy.shape}")
    k, j, m = xx.shape[0], yy.shape[0], xx.shape[1]
    xb = jnp.broadcast_to(xx[:, None, :], (k, j, m))
    yb = jnp.broadcast_to(yy[None, :, :], (k, j, m))
    return pearsonr(xb, yb, where=where)


def size_correlation(
    train_sizes: Any, values: Any, valid: Any = None
) -> tuple[jax.Array, jax.Array]:
    """Pearson correlation across groups of training-set size and a group metric.

    The paper's section 5.2 analysis: ``corr(|X_train,s|, AUC_FPR(s))`` over the
    groups ``s`` of one attribute, batched over leading axes (e.g. one r per N).
    Groups that are invalid or have a NaN value are left out.

    Args:
      train_sizes: ``[g]`` (``fairrobust.groups.training_group_sizes``).
      values: ``[..., g]`` (AUC_FPR or AUC_acc per group).
      valid: optional bool ``[g]``.

    Returns:
      ``(r, p)`` each ``[...]``.
    """
    v = _as_values(values)
    s = jnp.asarray(train_sizes).astype(v.dtype)
    if s.shape != (v.shape[-1],):
        raise ValueError(f"train_sizes: expected shape ({v.shape[-1]},), got {s.shape}")
    ok = jnp.broadcast_to(_as_valid(valid, v.shape[-1]), v.shape) & jnp.isfinite(v)
    return pearsonr(jnp.broadcast_to(s, v.shape), jnp.where(ok, v, 0.0), where=ok)


# -------------------------------------------------------------------------- rejection


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
def _rejection(stat, thresholds, masks, weights, reject_if):
    """Cumulative-histogram false-rejection rates; stat / weights ``[B, n]`` -> ``[B, a, g]``.

    ``stat`` and ``thresholds`` float of one dtype; ``weights`` of that dtype, or
    None (all 1).
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
    """Curves ``[..., a, g]`` of ``stat [..., n]`` (any dtype, cast here), a grid from
    :func:`_grid`, masks (or a tuple, stacked) and weights broadcastable to ``stat`` or None."""
    s = stat.astype(_float_dtype(stat))
    t = _grid_float(thresholds).astype(s.dtype)
    masks = _stacked(masks)
    lead, n = s.shape[:-1], s.shape[-1]
    w = None
    if weights is not None:
        w = jnp.broadcast_to(weights.astype(s.dtype), s.shape).reshape((-1, n))
    flat = _rejection(s.reshape((-1, n)), t, masks, w, reject_if)
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
    _choice(reject_if, "reject_if", _REJECT_IF)
    s = _values(stat, "stat")
    t = _grid(thresholds, "thresholds")
    m = _as_masks(masks, s.shape[-1], "rejection_curves")
    _warn_empty(m, "rejection_curves")
    return _rejection_batched(s, t, m, _weights(weights, s.shape), reject_if)


@functools.partial(jax.jit, static_argnames=("reject_if", "normalize"))
def _auc_fpr(stat, thresholds, masks, weights, reject_if, normalize):
    s = stat.astype(_float_dtype(stat))
    t = _grid_float(thresholds).astype(s.dtype)
    curves = _rejection_batched(s, t, masks, weights, reject_if)  # [..., a, g]
    auc = _trapezoid_last(jnp.swapaxes(curves, -1, -2), t)
    return auc / (t[-1] - t[0]) if normalize else auc


@functools.partial(jax.jit, static_argnames=("reject_if", "normalize"))
def _auc_fpr_split(stat, thresholds, masks, weights, valids, reject_if, normalize):
    auc = _auc_fpr(stat, thresholds, masks, weights, reject_if, normalize)
    return _split_parity(auc, masks, valids)


@functools.partial(jax.jit, static_argnames=("normalize",))
def _auc_of_curves(curves, thresholds, normalize):
    c = curves.astype(_float_dtype(curves))
    t = _grid_float(thresholds).astype(c.dtype)
    auc = _trapezoid_last(jnp.swapaxes(c, -1, -2), t)
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
    _choice(reject_if, "reject_if", _REJECT_IF)
    if masks is None:
        c = _values(stat, "curves", min_ndim=2)
        t = _grid(thresholds, "thresholds", c.shape[-2])
        return _auc_of_curves(c, t, bool(normalize))
    s = _values(stat, "stat")
    t = _grid(thresholds, "thresholds")
    m = _as_masks(masks, s.shape[-1], "auc_fpr")
    _warn_empty(m, "auc_fpr")
    return _auc_fpr(s, t, m, _weights(weights, s.shape), reject_if, bool(normalize))


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
    _choice(reject_if, "reject_if", _REJECT_IF)
    s = _values(stat, "stat")
    t = _grid(thresholds, "thresholds")
    masks, spans = _stack_groups(groups, s.shape[-1], "auc_fpr_by_attribute")
    valids = _valids(spans)
    w = _weights(weights, s.shape)
    pieces = _auc_fpr_split(s, t, masks, w, valids, reject_if, bool(normalize))
    return _summaries(pieces, spans, valids)


# -------------------------------------------------------------------------- bootstrap


def _labels_to_ids(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True, axis=0)[1].reshape(-1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Index arrays of a stratified cluster bootstrap (numpy, built once)."""

    cluster_of_example: np.ndarray  # [n] cluster id
    order: np.ndarray  # [C] cluster ids sorted by stratum
    slot_start: np.ndarray  # [C] first slot of the stratum of each slot
    slot_count: np.ndarray  # [C] clusters in the stratum of each slot
    num_strata: int


def _plan(n: int, masks: Any, strata: Any, speakers: Any) -> _Plan:
    if strata is not None:
        st = np.asarray(strata)
        if st.shape != (n,):
            raise ValueError(f"strata: expected shape ({n},), got {st.shape}")
        stratum = _labels_to_ids(st)
    elif masks is not None:
        # The finest partition generated by the groups: examples with the same
        # membership pattern form a stratum, so every group keeps its size.
        stratum = _labels_to_ids(np.asarray(masks).astype(bool).T)
    else:
        stratum = np.zeros(n, np.int64)
    if speakers is None:
        cluster = np.arange(n, dtype=np.int64)
    else:
        sp = np.asarray(speakers).astype(str)
        if sp.shape != (n,):
            raise ValueError(f"speakers: expected shape ({n},), got {sp.shape}")
        # A cluster is a speaker within a stratum.
        cluster = _labels_to_ids(np.stack([stratum.astype(str), sp], axis=1))
    num_clusters = int(cluster.max()) + 1 if n else 0
    cluster_stratum = np.zeros(num_clusters, np.int64)
    cluster_stratum[cluster] = stratum
    order = np.argsort(cluster_stratum, kind="stable")
    sorted_stratum = cluster_stratum[order]
    counts = np.bincount(cluster_stratum)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return _Plan(
        cluster_of_example=cluster,
        order=order.astype(np.int32),
        slot_start=starts[sorted_stratum].astype(np.int32),
        slot_count=counts[sorted_stratum].astype(np.int32),
        num_strata=len(counts),
    )


def _draw(key, cluster_of_example, order, slot_start, slot_count):
    """Multiplicity weights ``[n]`` of one stratified cluster resample."""
    # Uniform cluster index within the stratum: 32 random bits modulo the stratum's
    # cluster count (bias < count / 2**32; far cheaper to compile than randint).
    bits = jax.random.bits(key, order.shape, jnp.uint32)
    u = (bits % slot_count.astype(jnp.uint32)).astype(jnp.int32)
    drawn = order[slot_start + u]
    cw = jnp.zeros(order.shape, jnp.float32).at[drawn].add(1.0)
    return cw[cluster_of_example]


@functools.partial(jax.jit, static_argnames=("num_resamples",))
def _draw_many(key, cluster_of_example, order, slot_start, slot_count, num_resamples):
    keys = jax.random.split(key, num_resamples)
    return jax.vmap(lambda k: _draw(k, cluster_of_example, order, slot_start, slot_count))(keys)


def resample_weights(
    key: jax.Array,
    masks: Any = None,
    *,
    num_resamples: int = 1000,
    speakers: Any = None,
    strata: Any = None,
    n: int | None = None,
) -> jax.Array:
    """Bootstrap multiplicity weights, stratified by group, optionally clustered by speaker.

    Strata are the examples' group-membership patterns (the finest partition
    generated by the rows of ``masks``; examples in no group form their own
    stratum), or the labels in ``strata``. Within each stratum, clusters are
    drawn with replacement, as many as the stratum has; a cluster is one example,
    or, with ``speakers``, one speaker (all of its examples in the stratum). The
    weight of an example is how many times its cluster was drawn. Resample ``r``
    uses ``jax.random.split(key, num_resamples)[r]``; :func:`bootstrap_ci` uses
    exactly these weights.

    Args:
      key: a ``jax.random.key`` or legacy ``PRNGKey``.
      masks: ``[g, n]`` group masks defining the strata (concrete).
      num_resamples: number of resamples ``R`` (static).
      speakers: optional ``[n]`` speaker ids for a cluster bootstrap.
      strata: optional ``[n]`` stratum labels overriding ``masks``.
      n: number of examples when neither ``masks`` nor ``strata`` is given.

    Returns:
      float32 ``[R, n]`` non-negative integer weights; each stratum keeps its
      number of clusters (and, without speakers, its number of examples).
    """
    n_ex, plan = _bootstrap_plan(masks, strata, speakers, n, num_resamples)
    del n_ex
    return _draw_many(
        key,
        plan.cluster_of_example,
        plan.order,
        plan.slot_start,
        plan.slot_count,
        int(num_resamples),
    )


def _bootstrap_plan(masks, strata, speakers, n, num_resamples):
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)):
        raise ValueError(f"num_resamples: expected a positive integer, got {num_resamples!r}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples: expected a positive integer, got {num_resamples}")
    if masks is not None:
        if _is_tracer(masks):
            raise ValueError("masks: the bootstrap plan needs concrete masks (call outside jit)")
        if jnp.ndim(masks) != 2:
            raise ValueError(f"masks: expected shape (g, n), got {jnp.shape(masks)}")
        n = int(jnp.shape(masks)[1])
    elif strata is not None:
        n = int(np.asarray(strata).shape[0])
    elif n is None:
        raise ValueError("n: give masks, strata or n")
    return n, _plan(n, masks, strata, speakers)


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Percentile bootstrap intervals of a statistic (pytrees shaped like its output).

    Attributes:
      estimate: the statistic on the data (all weights 1).
      lower, upper: percentile interval bounds at ``level``.
      level: confidence level.
      num_resamples: number of resamples.
      clusters: ``"example"`` or ``"speaker"``.
      num_strata: number of strata.
      clusters_per_group: numpy int ``[g]``: distinct clusters in each group. A
        group with one cluster (a single example or a single speaker) always
        resamples to itself: its interval has zero width and says nothing about
        uncertainty; such groups should be flagged (they are normally under the
        minimum size).
      samples: the ``R`` bootstrap replicates (leading axis ``R``) if requested.
    """

    estimate: Any
    lower: Any
    upper: Any
    level: float
    num_resamples: int
    clusters: str
    num_strata: int
    clusters_per_group: np.ndarray
    samples: Any = None


@functools.partial(jax.jit, static_argnames=("stat_fn", "num_resamples", "batch_size", "keep"))
def _bootstrap(stat_fn, values, masks, key, plan_arrays, level, num_resamples, batch_size, keep):
    cluster_of_example, order, slot_start, slot_count = plan_arrays

    def one(k, is_estimate):
        # Entry 0 is the estimate itself (all weights 1), so the statistic is traced once.
        w = _draw(k, cluster_of_example, order, slot_start, slot_count)
        return stat_fn(values, masks, jnp.where(is_estimate, jnp.ones_like(w), w))

    keys = jax.random.split(key, num_resamples)
    keys = jnp.concatenate([keys[:1], keys], axis=0)
    flags = jnp.arange(num_resamples + 1) == 0
    if batch_size is None:
        out = jax.vmap(one)(keys, flags)
    else:
        out = jax.lax.map(lambda kf: one(*kf), (keys, flags), batch_size=batch_size)
    estimate = jax.tree_util.tree_map(lambda x: x[0], out)
    samples = jax.tree_util.tree_map(lambda x: x[1:], out)
    q = jnp.stack([(1.0 - level) / 2.0, (1.0 + level) / 2.0])

    def interval(s):
        s = jnp.asarray(s)
        return jnp.nanquantile(s.astype(jnp.promote_types(s.dtype, jnp.float32)), q, axis=0)

    bounds = jax.tree_util.tree_map(interval, samples)  # leaves [2, ...]
    lower = jax.tree_util.tree_map(lambda b: b[0], bounds)
    upper = jax.tree_util.tree_map(lambda b: b[1], bounds)
    return estimate, lower, upper, (samples if keep else None)


def bootstrap_ci(
    stat_fn: Callable[[Any, jax.Array, jax.Array], Any],
    values: Any,
    masks: Any,
    *,
    key: jax.Array,
    num_resamples: int = 1000,
    level: float = 0.95,
    speakers: Any = None,
    strata: Any = None,
    batch_size: int | None = None,
    return_samples: bool = False,
) -> BootstrapResult:
    """Percentile bootstrap confidence intervals for any statistic of per-example values.

    Resampling is by reweighting: resample ``r`` gives every example a
    multiplicity ``w_r[i]`` (:func:`resample_weights`: stratified by group
    membership, and clustered by speaker when ``speakers`` is given) and the
    statistic is evaluated as ``stat_fn(values, masks, w_r)``. All resamples
    are ONE jitted computation, ``vmap``-ped over resample keys (or
    ``lax.map``-ped in batches of ``batch_size`` to bound memory). Because
    every metric here accepts ``weights``, group rates, AUC_acc, Defense
    Parity, AUC_FPR and FPR Parity are all bootstrappable
    (:class:`GroupRateStat`, :class:`AucAccStat`, :class:`AucFprStat`), and a
    weighted statistic equals the statistic on the copied resample.

    Groups under the minimum size are resampled like any group (within their own
    stratum) and get intervals; they are not dropped, and parity statistics
    exclude them through their ``valid`` flags. ``BootstrapResult.clusters_per_group``
    shows which intervals are degenerate (one cluster).

    Args:
      stat_fn: ``stat_fn(values, masks, weights [n]) -> pytree of arrays``; pure
        and jittable; hashable (it is a static argument: pass a module-level
        function or a frozen dataclass such as :class:`AucAccStat` to avoid
        recompiling on every call).
      values: any pytree of per-example arrays (passed through to ``stat_fn``).
      masks: group masks ``[g, n]`` (concrete), defining the strata.
      key: PRNG key.
      num_resamples: ``R`` (default 1000).
      level: confidence level in (0, 1) (default 0.95); intervals are the
        ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the replicates
        (linear interpolation, NaN replicates ignored).
      speakers: optional ``[n]`` speaker ids: cluster bootstrap by speaker within
        stratum.
      strata: optional ``[n]`` stratum labels overriding the mask patterns.
      batch_size: optional number of resamples evaluated at once.
      return_samples: keep the replicates in the result.

    Returns:
      :class:`BootstrapResult`.

    Raises:
      ValueError: ``level`` outside (0, 1), bad ``num_resamples`` / ``batch_size``,
        shapes of ``speakers`` / ``strata`` not ``[n]``.
    """
    if not (isinstance(level, (float, int, np.floating)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    _, plan = _bootstrap_plan(masks, strata, speakers, None, num_resamples)
    m = jnp.asarray(masks)
    mb = np.asarray(m).astype(bool)
    clusters_per_group = np.asarray(
        [len(np.unique(plan.cluster_of_example[row])) for row in mb], dtype=np.int64
    )
    arrays = tuple(
        jnp.asarray(a)
        for a in (
            plan.cluster_of_example.astype(np.int32),
            plan.order,
            plan.slot_start,
            plan.slot_count,
        )
    )
    estimate, lower, upper, samples = _bootstrap(
        stat_fn,
        values,
        m,
        key,
        arrays,
        jnp.float32(level),
        int(num_resamples),
        batch_size,
        bool(return_samples),
    )
    return BootstrapResult(
        estimate=estimate,
        lower=lower,
        upper=upper,
        level=float(level),
        num_resamples=int(num_resamples),
        clusters="example" if speakers is None else "speaker",
        num_strata=plan.num_strata,
        clusters_per_group=clusters_per_group,
        samples=samples,
    )


def _tuple_or_none(x: Any, dtype: type) -> tuple | None:
    if x is None:
        return None
    return tuple(dtype(v) for v in np.asarray(x).reshape(-1).tolist())


def _valid_arg(valid: tuple | None, g: int) -> jax.Array:
    return jnp.ones((g,), bool) if valid is None else jnp.asarray(valid, bool)


@dataclasses.dataclass(frozen=True)
class GroupRateStat:
    """Bootstrap statistic: group rates of per-example values and their parity gap.

    ``GroupRateStat(valid)(values [..., n], masks, weights [n])`` returns
    ``{"rates": [..., g], "parity": [...]}`` (parity = :func:`max_gap` over
    valid groups). Hashable by value, so jit caches across calls.
    """

    valid: tuple[bool, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "valid", _tuple_or_none(self.valid, bool))

    def __call__(self, values, masks, weights):
        v = _as_values(values)
        rates = _group_means(v, masks, _as_weights(weights, v.shape, v.dtype))
        return {"rates": rates, "parity": _max_gap(rates, _valid_arg(self.valid, masks.shape[0]))}


@dataclasses.dataclass(frozen=True)
class AucAccStat:
    """Bootstrap statistic: AUC_acc per group (Eq. 1) and Defense Parity (Eq. 2).

    ``AucAccStat(epsilons, valid)(correct [..., e, n], masks, weights [n])`` returns
    ``{"auc_acc": [..., g], "defense_parity": [...]}``.
    """

    epsilons: tuple[float, ...]
    valid: tuple[bool, ...] | None = None
    normalize: bool = False

    def __post_init__(self):
        object.__setattr__(self, "epsilons", _tuple_or_none(self.epsilons, float))
        object.__setattr__(self, "valid", _tuple_or_none(self.valid, bool))
        _as_grid(np.asarray(self.epsilons), "epsilons")

    def __call__(self, values, masks, weights):
        v = _as_values(values, "correct", min_ndim=2)
        eps = jnp.asarray(self.epsilons, v.dtype)
        auc = _auc_acc(v, eps, masks, _as_weights(weights, v.shape, v.dtype), self.normalize)
        valid = _valid_arg(self.valid, masks.shape[0])
        return {"auc_acc": auc, "defense_parity": _max_gap(auc, valid)}


@dataclasses.dataclass(frozen=True)
class AucFprStat:
    """Bootstrap statistic: AUC_FPR per group (Eq. 3) and FPR Parity (Eq. 4).

    ``AucFprStat(thresholds, valid, reject_if)(stat [..., n], masks, weights [n])``
    returns ``{"auc_fpr": [..., g], "fpr_parity": [...]}``.
    """

    thresholds: tuple[float, ...]
    valid: tuple[bool, ...] | None = None
    reject_if: str = "above"
    normalize: bool = False

    def __post_init__(self):
        # Keep float32 values exactly so thresholds match alpha_grid's.
        t = np.asarray(self.thresholds, np.float32)
        object.__setattr__(self, "thresholds", tuple(t.tolist()))
        object.__setattr__(self, "valid", _tuple_or_none(self.valid, bool))
        _as_grid(t, "thresholds")
        _choice(self.reject_if, "reject_if", _REJECT_IF)

    def __call__(self, values, masks, weights):
        # AUC_FPR is linear in the example weights: with the trapezoid rule,
        # AUC_g(w) = sum_i w_i m_gi c_i / sum_i w_i m_gi, where c_i is example i's
        # area under its own 0/1 rejection curve (``_auc_contribution``). c depends
        # only on the statistic, so under the bootstrap's vmap over resamples it is
        # computed once and each resample costs two small matmuls instead of a
        # histogram over all thresholds (equal to ``_auc_fpr`` up to float rounding;
        # tests/test_bootstrap.py checks both).
        s = _as_values(values, "stat")
        t = jnp.asarray(np.asarray(self.thresholds, np.float32)).astype(s.dtype)
        c = _auc_contribution(s, t, self.reject_if)  # [..., n]
        m = masks.astype(s.dtype)  # [g, n]
        w = jnp.ones(s.shape[-1:], s.dtype) if weights is None else weights.astype(s.dtype)
        w = jnp.broadcast_to(w, s.shape)
        num = jnp.einsum("...n,gn->...g", c * w, m, precision=_HI)
        den = jnp.einsum("...n,gn->...g", w, m, precision=_HI)
        auc = num / den
        if self.normalize:
            auc = auc / (t[-1] - t[0])
        valid = _valid_arg(self.valid, masks.shape[0])
        return {"auc_fpr": auc, "fpr_parity": _max_gap(auc, valid)}


def _auc_contribution(stat: jax.Array, thresholds: jax.Array, reject_if: str) -> jax.Array:
    """Trapezoid area of each example's 0/1 rejection curve over ``thresholds``, ``[..., n]``.

    ``c_i = sum_k (t_{k+1} - t_k) (r_i(t_k) + r_i(t_{k+1})) / 2`` with ``r_i(t) = [s_i > t]``
    ("above") or ``[s_i < t]`` ("below"); the rejected thresholds of one example are a
    prefix (above) or a suffix (below) of the grid, so the sum telescopes to grid values.
    """
    a = thresholds.shape[0]
    t0, t_last = thresholds[0], thresholds[-1]
    if reject_if == "above":
        b = jnp.searchsorted(thresholds, stat, side="left")  # rejected at k < b
        hi = thresholds[jnp.clip(b, 0, a - 1)] - t0  # sum of dt_k over k < min(b, a-1)
        lo = thresholds[jnp.clip(b - 1, 0, a - 1)] - t0  # ... over k < min(b-1, a-1)
    else:
        b = jnp.searchsorted(thresholds, stat, side="right")  # rejected at k >= b
        hi = t_last - thresholds[jnp.clip(b - 1, 0, a - 1)]  # sum of dt_k over k >= b-1
        lo = t_last - thresholds[jnp.clip(b, 0, a - 1)]  # ... over k >= b
    return 0.5 * (hi + lo)
