"""Classic multiclass group-fairness metrics (fairlearn vocabulary), one-vs-rest per class.

Demographic parity, true / false positive rate differences (equal opportunity),
equalized odds and the p-rule, from one-vs-rest confusion counts per class and
group; an abstention (``y_pred = -1``) predicts no class. These are the
classifier's rates, not the rejection FPR of :func:`fairrobust.metrics.auc_fpr`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_choice, check_int, is_tracer
from fairrobust.metrics._kernels import (
    HI,
    cluster_scale,
    gap_from_band,
    masked_extreme,
    masked_max_gap,
    pairwise_band,
)
from fairrobust.metrics._validate import as_masks, as_valid, as_weights, warn_empty

__all__ = [
    "FAIRNESS_METRICS",
    "FairnessStat",
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_intervals",
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
        # a ratio <= 1; the float32 class mean of ratios of 1 can round just above it
        "p_rule": jnp.minimum(_aggregate(prule, average, "min"), 100.0),
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


#: The metrics :func:`fairness_intervals` returns, in table order.
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "p_rule",
)


@dataclasses.dataclass(frozen=True)
class FairnessStat:
    """Bootstrap statistic: one-vs-rest group rates behind the fairness metrics.

    ``FairnessStat(C)({"y_true": [n], "y_pred": [..., n]}, masks [g, n], weights [n])``
    returns ``{"selection", "tpr", "fpr"}``, each ``[..., C, g]``: ``P(yhat=c | s)``,
    ``P(yhat=c | y=c, s)`` and ``P(yhat=c | y!=c, s)`` (an abstention ``-1`` predicts
    no class), weighted by the resample's multiplicities (as :func:`group_confusion`).
    Use with ``metrics.bootstrap_ci(..., return_samples=True)`` and turn estimate and
    replicates into metric intervals with :func:`fairness_intervals`. Hashable.
    """

    num_classes: int

    def __call__(self, values, masks, weights):
        yp = jnp.asarray(values["y_pred"])
        yt = jnp.broadcast_to(jnp.asarray(values["y_true"]), yp.shape)
        w = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), yp.shape)
        c = _confusion(yt, yp, masks, w, int(self.num_classes))
        return {
            "selection": c["pred"] / c["size"],
            "tpr": c["tp"] / c["pos"],
            "fpr": c["fp"] / c["neg"],
        }


def _level_band(est, samples, level, scale):
    """Sup-t intervals of every group rate ``est [..., C, g]``, simultaneous over (C, g)."""
    dev = (samples - est[None]) * jnp.broadcast_to(scale, est.shape)[None]
    se = jnp.sqrt(jnp.nanmean((dev - jnp.nanmean(dev, axis=0)[None]) ** 2, axis=0))
    t = jnp.where(se[None] > 0, jnp.abs(dev) / jnp.where(se > 0, se, 1.0)[None], 0.0)
    t_max = jnp.max(jnp.where(jnp.isfinite(t), t, 0.0), axis=(-2, -1))  # [R, ...]
    half = jnp.quantile(t_max, level, axis=0)[..., None, None] * se
    return jnp.clip(est - half, 0.0, 1.0), jnp.clip(est + half, 0.0, 1.0)


def _class_mean(est, lo, hi):
    """Mean over the classes with a finite estimate; NaN if one of them has no interval."""
    use = jnp.isfinite(est)
    n = jnp.sum(use, axis=-1)
    bad = jnp.any(use & ~(jnp.isfinite(lo) & jnp.isfinite(hi)), axis=-1) | (n == 0)

    def mean(x):
        return jnp.where(bad, jnp.nan, jnp.sum(jnp.where(use, x, 0.0), axis=-1) / n)

    return mean(lo), mean(hi)


def _class_extreme(est, lo, hi, kind):
    """Largest (``"max"``) / smallest per-class value: its bounds are the bounds' extremes."""
    use = jnp.isfinite(est)
    bad = jnp.any(use & ~(jnp.isfinite(lo) & jnp.isfinite(hi)), axis=-1)
    out = [masked_extreme(x, use, kind) for x in (lo, hi)]
    return tuple(jnp.where(bad, jnp.nan, x) for x in out)


@functools.partial(jax.jit, static_argnames=("average",))
def _fairness_intervals(est, samples, level, scale, average):
    sel, tpr, fpr = est["selection"], est["tpr"], est["fpr"]
    g, c = sel.shape[-1], sel.shape[-2]
    ok = jnp.ones((g,), bool)
    # demographic parity: pairwise selection-rate differences, one band over all classes
    _, dp_lo, dp_hi = gap_from_band(
        *pairwise_band(sel, samples["selection"], ok, level, scale, joint=1)
    )
    # equalized odds: TPR and FPR differences of every class in one band
    both = jnp.concatenate([tpr, fpr], axis=-2)
    both_s = jnp.concatenate([samples["tpr"], samples["fpr"]], axis=-2)
    _, eo_lo, eo_hi = gap_from_band(*pairwise_band(both, both_s, ok, level, scale, joint=1))
    tpr_gap, fpr_gap = masked_max_gap(tpr, ok), masked_max_gap(fpr, ok)
    per_class = {
        "demographic_parity_difference": (masked_max_gap(sel, ok), dp_lo, dp_hi),
        "equalized_odds_difference": (
            jnp.fmax(tpr_gap, fpr_gap),
            jnp.fmax(eo_lo[..., :c], eo_lo[..., c:]),
            jnp.fmax(eo_hi[..., :c], eo_hi[..., c:]),
        ),
    }
    # ratio min_s / max_s of selection rates: simultaneous bands of the rates themselves
    s_lo, s_hi = _level_band(sel, samples["selection"], level, scale)
    ratio = masked_extreme(sel, ok, "min") / masked_extreme(sel, ok, "max")
    max_lo = jnp.max(s_lo, axis=-1)
    r_lo = jnp.min(s_lo, axis=-1) / jnp.max(s_hi, axis=-1)
    r_hi = jnp.where(max_lo > 0, jnp.minimum(1.0, jnp.min(s_hi, axis=-1) / max_lo), 1.0)
    per_class["demographic_parity_ratio"] = (ratio, jnp.minimum(r_lo, ratio), r_hi)
    out = {}
    for name, (v, lo, hi) in per_class.items():
        worst = "min" if name == "demographic_parity_ratio" else "max"
        if average is None:
            out[name] = (v, lo, hi)
        elif average == "mean" and c == 2:
            out[name] = (v[..., 1], lo[..., 1], hi[..., 1])
        elif average == "mean":
            out[name] = (jnp.nanmean(v, axis=-1), *_class_mean(v, lo, hi))
        else:
            vw = masked_extreme(v, jnp.isfinite(v), worst)
            out[name] = (vw, *_class_extreme(v, lo, hi, worst))
    # a ratio <= 1; the float32 class mean of ratios of 1 can round just above it
    v, lo, hi = out["demographic_parity_ratio"]
    out["demographic_parity_ratio"] = (jnp.minimum(v, 1.0), lo, jnp.minimum(hi, 1.0))
    out["p_rule"] = tuple(100.0 * x for x in out["demographic_parity_ratio"])
    return out


def fairness_intervals(
    estimate: dict[str, Any],
    samples: dict[str, Any],
    valid: Any = None,
    *,
    level: float = 0.95,
    clusters: Any = None,
    average: str | None = "mean",
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The fairness metrics and their bootstrap intervals from :class:`FairnessStat` replicates.

    Values are those of :func:`fairness_metrics` (same ``average``) over the ``valid``
    groups. Intervals come from sup-t bands on the bootstrap replicates, in the
    project's style (``metrics.gap_interval``; group deviations scaled by
    ``sqrt(C / (C - 1))`` with ``clusters``):

    * demographic parity / equalized odds difference: simultaneous intervals of every
      pairwise difference of selection rates (of TPRs and FPRs), with one critical
      value over all pairs and classes; each class's gap interval is
      ``[max_ij dist(0, I_ij), max_ij max |I_ij|]`` (equalized odds: the larger of the
      TPR and FPR bounds), so every per-class gap is covered at once with probability
      >= ``level``, and so is their mean (``average="mean"``) or maximum (``"worst"``);
    * demographic parity ratio (``min_s / max_s`` of selection rates) and p-rule
      (``100 x`` ratio): simultaneous intervals ``[lo_s, hi_s]`` of every group's
      selection rate of every class give ``[min lo / max hi, min(1, min hi / max lo)]``.

    Coverage of these intervals is simulated in ``tests/test_fairness_study.py``.

    Args:
      estimate: ``FairnessStat`` output on the data (``BootstrapResult.estimate``):
        ``selection``, ``tpr``, ``fpr`` ``[..., C, g]``.
      samples: the replicates (``BootstrapResult.samples``), ``[R, ..., C, g]``.
      valid: optional bool ``[g]``: the groups that count (concrete).
      level: confidence level in (0, 1).
      clusters: optional int ``[g]`` independent clusters (speakers) per group.
      average: ``"mean"``, ``"worst"`` or ``None`` (per class), as :func:`fairness_metrics`.

    Returns:
      name (:data:`FAIRNESS_METRICS`) -> ``(value, low, high)``, numpy ``[...]``
      (``[..., C]`` with ``average=None``); NaN with fewer than two valid groups.
    """
    check_choice("average", average, _AVERAGES)
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    keys = ("selection", "tpr", "fpr")
    g = int(np.shape(estimate["selection"])[-1])
    ok = np.ones(g, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
    if ok.shape != (g,):
        raise ValueError(f"valid: expected shape ({g},), got {ok.shape}")
    idx = np.flatnonzero(ok)
    est = {k: jnp.asarray(estimate[k], jnp.float32)[..., idx] for k in keys}
    smp = {k: jnp.asarray(samples[k], jnp.float32)[..., idx] for k in keys}
    if clusters is None:
        scale = jnp.ones((idx.size,), jnp.float32)
    else:
        scale = cluster_scale(jnp.asarray(np.asarray(clusters).reshape(-1)[idx]))
    out = _fairness_intervals(est, smp, jnp.float32(level), scale, average)
    return {
        k: (np.asarray(v, np.float64), np.asarray(lo, np.float64), np.asarray(hi, np.float64))
        for k, (v, lo, hi) in ((k, out[k]) for k in FAIRNESS_METRICS)
    }
