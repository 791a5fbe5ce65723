"""Pearson correlation (as ``scipy.stats.pearsonr``), batched, for the paper's heatmaps.

Correlations of interventions with group metrics across models (Figures 2-5) and
of training-set group size with a group metric (section 5.2).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_shape, is_tracer
from fairrobust.metrics._validate import as_valid, as_values, float_dtype

__all__ = ["correlation_matrix", "pearsonr", "size_correlation"]


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
    if is_tracer(r) or is_tracer(n):
        return _pvalue_flat(r, n)
    rr, nn = np.asarray(r).reshape(-1), np.asarray(n).reshape(-1)
    k = rr.size
    size = max(8, 1 << max(k - 1, 0).bit_length())
    rp = np.zeros(size, rr.dtype)
    np_ = np.full(size, 3.0, nn.dtype)
    rp[:k], np_[:k] = rr, nn
    return _pvalue_flat(jnp.asarray(rp), jnp.asarray(np_))[:k].reshape(r.shape)


def pearsonr(x: Any, y: Any, *, where: Any = None) -> tuple[Any, Any]:
    """Pearson correlation and two-sided p-value, as ``scipy.stats.pearsonr``.

    ``r = sum (x - xbar)(y - ybar) / sqrt(sum (x - xbar)^2 sum (y - ybar)^2)``;
    the p-value is that of the t-test of zero correlation with ``n - 2``
    degrees of freedom, computed as ``betainc((n - 2) / 2, 1 / 2, 1 - r^2)``
    (the same as scipy's beta-distribution form). Concrete inputs are computed in
    float64 (under ``jax.enable_x64(True)``, returned as NumPy float64, matching
    scipy to ~1e-12); traced inputs (inside ``jit``) stay in their float dtype.

    Args:
      x: ``[..., m]`` (e.g. an intervention code per model).
      y: ``[..., m]`` (e.g. Defense Parity per model); ``x`` and ``y`` broadcast
        over the leading axes, so ``x [m]`` against ``y [g, m]`` gives ``[g]``.
      where: optional bool broadcastable to ``[..., m]``: which of the ``m``
        entries take part (e.g. models not excluded as random guessers).

    Returns:
      ``(r, p)``, each ``[...]`` (NumPy float64 for concrete inputs). NaN where a
      vector is constant or fewer than 3 entries take part; when that can be seen
      outside ``jit`` a ``RuntimeWarning`` is issued.

    Raises:
      ValueError: the last axes differ or do not broadcast.
    """
    if not any(is_tracer(a) for a in (x, y, where)):
        # A float64 jax.Array escaping the x64 context would be truncated: return NumPy.
        with jax.enable_x64(True):
            r, p = _pearsonr(np.asarray(x), np.asarray(y), where, jnp.float64)
            return np.asarray(r, np.float64), np.asarray(p, np.float64)
    xx, yy = jnp.asarray(x), jnp.asarray(y)
    return _pearsonr(xx, yy, where, jnp.result_type(float_dtype(xx), float_dtype(yy)))


def _pearsonr(x: Any, y: Any, where: Any, dt: Any) -> tuple[jax.Array, jax.Array]:
    """``pearsonr`` in dtype ``dt`` (float64 only under ``jax.enable_x64``)."""
    xx, yy = jnp.asarray(x).astype(dt), jnp.asarray(y).astype(dt)
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
            stacklevel=3,
        )
    elif not any(is_tracer(a) for a in (xx, yy, w)) and bool(jnp.any(jnp.isnan(r))):
        warnings.warn(
            "pearsonr: an input is constant (or fewer than 3 entries are selected); "
            "the correlation is undefined and returned as NaN",
            RuntimeWarning,
            stacklevel=3,
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
    v = as_values(values)
    s = jnp.asarray(train_sizes).astype(v.dtype)
    check_shape("train_sizes", s, (v.shape[-1],))
    ok = jnp.broadcast_to(as_valid(valid, v.shape[-1]), v.shape) & jnp.isfinite(v)
    return pearsonr(jnp.broadcast_to(s, v.shape), jnp.where(ok, v, 0.0), where=ok)
