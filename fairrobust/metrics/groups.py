"""Group reductions and parity: group rates, fairlearn's aggregations, Defense / FPR Parity.

Every metric is a masked reduction of per-example values ``[..., n]`` with group
masks ``[g, n]``: ``rates = masks @ values / masks.sum(1)``. An empty group gives
NaN (and a ``RuntimeWarning`` naming it when the masks are concrete); parity
numbers skip invalid and NaN groups and are NaN with fewer than two usable groups.

* Eq. 2 Defense Parity ``DP = max_{s, s'} (AUC_acc(s) - AUC_acc(s'))`` over valid groups.
* Eq. 4 FPR Parity ``= max_{s, s'} (AUC_FPR(s) - AUC_FPR(s'))`` over valid groups.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_choice, check_shape
from fairrobust.metrics._kernels import (
    group_means,
    masked_extreme,
    masked_max_gap,
)
from fairrobust.metrics._validate import (
    as_array,
    as_masks,
    as_valid,
    as_values,
    checked_values,
    checked_weights,
    float_dtype,
    warn_empty,
)

__all__ = [
    "AttributeSummary",
    "attribute_summaries",
    "attribute_valids",
    "by_group",
    "defense_parity",
    "difference",
    "fpr_parity",
    "group_max",
    "group_min",
    "group_rates",
    "max_gap",
    "parity_pair",
    "parity_pair_names",
    "ratio",
    "stack_groups",
]

_DIFF_METHODS = ("between_groups", "to_overall")


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
    v = checked_values(values)
    m = as_masks(masks, v.shape[-1], "group_rates")
    warn_empty(m, "group_rates")
    return group_means(v, m, checked_weights(weights, v.shape))


def by_group(values: Any, masks: Any, *, weights: Any = None) -> jax.Array:
    """fairlearn's ``MetricFrame.by_group`` for a per-example value: :func:`group_rates`."""
    v = checked_values(values)
    m = as_masks(masks, v.shape[-1], "by_group")
    warn_empty(m, "by_group")
    return group_means(v, m, checked_weights(weights, v.shape))


@functools.partial(jax.jit, static_argnames=("kind",))
def _aggregate_groups(values, masks, weights, valid, kind):
    """One fused computation for group_min / group_max / difference / ratio."""
    r = group_means(values, masks, weights)
    if kind in ("min", "max"):
        return masked_extreme(r, valid, kind)
    if kind == "difference:between_groups":
        return masked_max_gap(r, valid)
    if kind == "ratio:between_groups":
        return masked_extreme(r, valid, "min") / masked_extreme(r, valid, "max")
    v = values.astype(float_dtype(values))
    w = jnp.ones(v.shape, v.dtype) if weights is None else jnp.broadcast_to(weights, v.shape)
    # Materialised (as the caller used to): XLA would otherwise reduce the broadcast and
    # turn the division by it into a multiplication by a reciprocal (1 ulp off).
    w = jax.lax.optimization_barrier(w.astype(v.dtype))
    o = (jnp.sum(v * w, axis=-1) / jnp.sum(w, axis=-1))[..., None]
    if kind == "difference:to_overall":
        return masked_extreme(jnp.abs(r - o), valid, "max")
    return masked_extreme(jnp.minimum(r, o) / jnp.maximum(r, o), valid, "min")


def _group_aggregate(values, masks, weights, valid, kind, fn):
    v = checked_values(values)
    m = as_masks(masks, v.shape[-1], fn)
    warn_empty(m, fn)
    w = checked_weights(weights, v.shape)
    return _aggregate_groups(v, m, w, as_valid(valid, m.shape[0]), kind)


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
    check_choice("method", method, _DIFF_METHODS)
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
    check_choice("method", method, _DIFF_METHODS)
    return _group_aggregate(values, masks, weights, valid, f"ratio:{method}", "ratio")


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
    x = as_values(values)
    return masked_max_gap(x, as_valid(valid, x.shape[-1]))


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
    x = as_values(values)
    ok = jnp.isfinite(x) & jnp.broadcast_to(as_valid(valid, x.shape[-1]), x.shape)
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
    check_shape("values", x, (len(names),))
    hi, lo = parity_pair(x, valid)
    hi, lo = int(hi), int(lo)
    if hi < 0:
        return None, None
    return names[hi], names[lo]


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


def stack_groups(groups: Mapping[str, Any], n: int, fn: str) -> tuple[tuple, list]:
    """The masks of several ``Groups``, as a tuple the kernels concatenate.

    One reduction then serves every attribute (``auc_acc_by_attribute``,
    ``auc_fpr_by_attribute``); empty groups are warned about by name.

    Args:
      groups: ``{name: Groups}`` (``fairrobust.groups.all_groups``).
      n: number of examples (the masks' second axis).
      fn: the calling function's name, for messages.

    Returns:
      ``(masks, spans)``: the tuple of masks ``[g_k, n]`` and per attribute
      ``(key, Groups, start, stop)``, its rows in the stacked groups axis.

    Raises:
      ValueError: no groups, or masks that are not ``[g, n]``.
    """
    if not groups:
        raise ValueError(f"{fn}: groups: expected at least one Groups")
    masks, spans, start = [], [], 0
    for key, gr in groups.items():
        m = as_array(gr.masks)
        if m.ndim != 2 or m.shape[1] != n:
            raise ValueError(
                f"{fn}: groups[{key!r}].masks: expected shape (g, n={n}), got {m.shape}"
            )
        masks.append(m)
        spans.append((key, gr, start, start + m.shape[0]))
        start += m.shape[0]
    names = [f"{gr.attribute}={nm}" for _, gr, _, _ in spans for nm in gr.names]
    masks = tuple(masks)
    warn_empty(masks, fn, names)
    return masks, spans


def attribute_summaries(pieces: list, spans: list, valids: tuple) -> dict[str, AttributeSummary]:
    """:class:`AttributeSummary` per attribute from the kernels' per-attribute pieces.

    Args:
      pieces: ``[(values [..., g_k], parity [...])]`` in the order of ``spans``
        (``split_parity`` of the stacked masks).
      spans: from :func:`stack_groups`.
      valids: from :func:`attribute_valids`.
    """
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


def attribute_valids(spans: list) -> tuple:
    """Per attribute of ``spans`` (:func:`stack_groups`), its groups' validity ``[g_k]``."""
    return tuple(np.asarray(gr.valid) for _, gr, _, _ in spans)
