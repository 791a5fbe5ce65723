"""Classic multiclass group-fairness metrics (fairlearn vocabulary), one-vs-rest per class.

Demographic parity, true / false positive rate differences (equal opportunity),
equalized odds and the p-rule, from one-vs-rest confusion counts per class and
group; an abstention (``y_pred = -1``) predicts no class. These are the
classifier's rates, not the rejection FPR of :func:`fairrobust.metrics.auc_fpr`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_choice, check_int, is_tracer
from fairrobust.metrics._kernels import HI, masked_extreme, masked_max_gap
from fairrobust.metrics._validate import as_masks, as_valid, as_weights, warn_empty

__all__ = [
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_metrics",
    "false_positive_rate_difference",
    "group_confusion",
    "p_rule",
    "true_positive_rate_difference",
]

_AVERAGES = ("mean", "worst", None)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _confusion(y_true, y_pred, masks, weights, num_classes):
    t = jax.nn.one_hot(y_true, num_classes, axis=-2, dtype=weights.dtype)  # [..., c, n]
    p = jax.nn.one_hot(y_pred, num_classes, axis=-2, dtype=weights.dtype)  # -1 -> all zeros
    m = masks.astype(weights.dtype)
    w = weights[..., None, :]
    size = jnp.einsum("...n,gn->...g", weights, m, precision=HI)[..., None, :]
    pos = jnp.einsum("...cn,gn->...cg", t * w, m, precision=HI)
    pred = jnp.einsum("...cn,gn->...cg", p * w, m, precision=HI)
    tp = jnp.einsum("...cn,gn->...cg", t * p * w, m, precision=HI)
    size = jnp.broadcast_to(size, pos.shape)
    return {"size": size, "pos": pos, "pred": pred, "tp": tp, "fp": pred - tp, "neg": size - pos}


def _check_labels(y_true, y_pred, masks, num_classes, fn):
    yt, yp = jnp.asarray(y_true), jnp.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim < 1:
        raise ValueError(f"y_pred: expected the shape of y_true {yt.shape}, got {yp.shape}")
    for name, y, lo in (("y_true", yt, 0), ("y_pred", yp, -1)):
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"{name}: expected integer class indices, got dtype {y.dtype}")
        if not is_tracer(y) and y.size:
            a = np.asarray(y)
            if a.min() < lo or a.max() >= num_classes:
                raise ValueError(
                    f"{name}: expected values in [{lo}, {num_classes}), "
                    f"got range [{a.min()}, {a.max()}]"
                )
    m = as_masks(masks, yt.shape[-1], fn)
    warn_empty(m, fn)
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
    check_int("num_classes", num_classes, 2)
    yt, yp, m = _check_labels(y_true, y_pred, masks, int(num_classes), "group_confusion")
    w = as_weights(weights, yt.shape, jnp.float32)
    return _confusion(yt, yp, m, w, int(num_classes))


def _aggregate(per_class: jax.Array, average: str | None, worst: str) -> jax.Array:
    """Reduce the class axis; binary ``"mean"`` keeps the positive class 1 (fairlearn)."""
    if average is None:
        return per_class
    if average == "mean" and per_class.shape[-1] == 2:
        return per_class[..., 1]
    if average == "mean":
        return jnp.nanmean(per_class, axis=-1)
    return jnp.nanmax(per_class, axis=-1) if worst == "max" else jnp.nanmin(per_class, axis=-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "average"))
def _fairness_all(y_true, y_pred, masks, weights, valid, num_classes, average):
    c = _confusion(y_true, y_pred, masks, weights, num_classes)
    sel = c["pred"] / c["size"]
    tpr_gap = masked_max_gap(c["tp"] / c["pos"], valid)
    fpr_gap = masked_max_gap(c["fp"] / c["neg"], valid)
    prule = 100.0 * masked_extreme(sel, valid, "min") / masked_extreme(sel, valid, "max")
    return {
        "demographic_parity_difference": _aggregate(masked_max_gap(sel, valid), average, "max"),
        "true_positive_rate_difference": _aggregate(tpr_gap, average, "max"),
        "false_positive_rate_difference": _aggregate(fpr_gap, average, "max"),
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
    * ``true_positive_rate_difference`` (equal opportunity): gap of
      ``TPR_s(c) = P(yhat=c | y=c, s)`` (groups without class-c examples skipped);
    * ``false_positive_rate_difference``: gap of ``FPR_s(c) = P(yhat=c | y!=c, s)`` (the
      classifier's FPR, not the rejection FPR of :func:`auc_fpr`);
    * ``equalized_odds_difference``: ``max(TPR gap, FPR gap)`` per class (fairlearn);
    * ``p_rule``: ``100 min_s P(yhat=c|s) / max_s P(yhat=c|s)`` in percent (100 =
      parity; below 80 fails the "80% rule"); NaN for a class nobody predicts.

    Binary data (``num_classes = 2``) with the default ``average="mean"`` follows
    fairlearn: only the positive class 1 counts, so the values equal fairlearn's
    ``demographic_parity_difference``, ``true_positive_rate_difference`` (=
    ``equal_opportunity_difference``), ``false_positive_rate_difference``,
    ``equalized_odds_difference`` and ``100 * demographic_parity_ratio`` (p-rule)
    with ``pos_label=1`` (on data without abstentions, which fairlearn cannot
    express). Multiclass data (``num_classes > 2``) has no positive class: the
    one-vs-rest values are averaged over classes (a choice of ours; fairlearn's
    rates are binary only). ``"worst"`` and ``None`` treat every class alike for
    any ``num_classes``.

    Args:
      y_true, y_pred, masks, num_classes, weights: as in :func:`group_confusion`.
      valid: optional bool ``[g]`` (``Groups.valid``).
      average: ``"mean"`` (mean over classes, NaN classes skipped; the positive
        class 1 alone when ``num_classes = 2``), ``"worst"`` (largest per-class
        gap; smallest per-class p-rule), or ``None`` (per-class values ``[..., C]``).

    Returns:
      dict name -> ``[...]`` (``[..., C]`` with ``average=None``); a leading
      epsilon axis of ``y_pred`` gives clean and attacked values at once.

    Raises:
      ValueError: as :func:`group_confusion`; unknown ``average``.
    """
    check_choice("average", average, _AVERAGES)
    check_int("num_classes", num_classes, 2)
    yt, yp, m = _check_labels(y_true, y_pred, masks, int(num_classes), "fairness_metrics")
    w = as_weights(weights, yt.shape, jnp.float32)
    ok = as_valid(valid, m.shape[0])
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


def true_positive_rate_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """True-positive-rate difference (equal opportunity difference), one-vs-rest.

    fairlearn's ``true_positive_rate_difference``; :data:`equal_opportunity_difference`
    is the same function under its other common name. Binary data with the default
    ``average="mean"`` uses the positive class 1 only (= fairlearn's
    ``equal_opportunity_difference``); multiclass data averages over classes.

    Per class ``c``: ``max_s TPR_s(c) - min_s TPR_s(c)``, ``TPR_s(c) = P(yhat = c |
    y = c, s)``; an abstention is a false negative. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["true_positive_rate_difference"]


#: Alias of :func:`true_positive_rate_difference` (equal opportunity difference).
equal_opportunity_difference = true_positive_rate_difference


def false_positive_rate_difference(
    y_true, y_pred, masks, num_classes, *, valid=None, weights=None, average="mean"
) -> jax.Array:
    """False-positive-rate difference, one-vs-rest (fairlearn's name).

    Per class ``c``: ``max_s FPR_s(c) - min_s FPR_s(c)``, ``FPR_s(c) = P(yhat = c |
    y != c, s)``; an abstention is a true negative. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["false_positive_rate_difference"]


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

    Aggregated over classes by ``average`` (``"worst"`` = smallest class value);
    binary data with the default ``average="mean"`` uses the positive class 1 only,
    i.e. ``100 * fairlearn.metrics.demographic_parity_ratio``; multiclass data
    averages over classes. 100 is perfect parity. As :func:`fairness_metrics`.
    """
    return fairness_metrics(
        y_true, y_pred, masks, num_classes, valid=valid, weights=weights, average=average
    )["p_rule"]
