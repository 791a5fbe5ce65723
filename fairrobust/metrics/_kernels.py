"""Jitted reductions shared by the metric modules (private to the package).

Group sums and means of per-example values under masks, the masked extreme / gap
over valid groups, and the trapezoid rule; the public metrics are thin wrappers.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from fairrobust.metrics._validate import float_dtype

__all__ = [
    "EXACT",
    "HI",
    "count_members",
    "group_means",
    "group_sums",
    "masked_extreme",
    "masked_max_gap",
    "split_parity",
    "stack_masks",
    "trapezoid_last",
]

HI = jax.lax.Precision.HIGHEST  # masks are 0/1: keep float32 exact on GPUs (no TF32)
EXACT = 1 << 24  # integer counts below this are exact in float32


def count_members(values: jax.Array, masks: jax.Array) -> jax.Array:
    """``sum_i m_gi v_i`` of bool values ``[..., n]`` and bool masks ``[g, n]``, float32.

    Exact integer counts (``n < 2**24``) either way: on CPU an int8 x int8 -> int32
    dot (2-3x faster than the float32 einsum), elsewhere the float32 einsum at
    ``HI`` precision (no TF32 rounding on GPUs).
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
        return jnp.einsum("...n,gn->...g", v, m, precision=HI)

    return jax.lax.platform_dependent(values, masks, cpu=int8, default=f32)


def stack_masks(masks: Any) -> jax.Array:
    """Inside a kernel: masks ``[g, n]``, or a tuple of them concatenated along groups."""
    return jnp.concatenate(masks, axis=0) if isinstance(masks, (tuple, list)) else masks


@jax.jit
def group_sums(values: jax.Array, masks: Any, weights: jax.Array | None):
    """(sum_i m_gi w_i v_i, sum_i m_gi w_i), each ``[..., g]``.

    ``values [..., n]`` of any dtype (computed in :func:`float_dtype`), masks
    ``[g, n]`` (or a tuple, stacked), weights broadcastable to the values or None
    (all 1, never materialised for 0/1 masks).
    """
    masks = stack_masks(masks)
    dt = float_dtype(values)
    if weights is None and masks.dtype == jnp.bool_ and values.shape[-1] < EXACT:
        # 0/1 masks: the sizes are exact integer counts (what the einsum of ones gave),
        # taken as one more row of the counting dot (a reduction of bool masks is slower).
        lead, n = values.shape[:-1], values.shape[-1]
        ones = jnp.ones((1, n), jnp.bool_)
        if values.dtype == jnp.bool_:
            c = count_members(jnp.concatenate([values.reshape((math.prod(lead), n)), ones]), masks)
            num, size = c[:-1].reshape((*lead, masks.shape[0])), c[-1]
        else:
            m = masks.astype(dt)
            num = jnp.einsum("...n,gn->...g", values.astype(dt), m, precision=HI)
            size = count_members(ones, masks)[0].astype(dt)
        # Materialised at num's shape: XLA turns a division by a broadcast into a
        # multiplication by its reciprocal (1 ulp off); num / den stays a division.
        return num, jax.lax.optimization_barrier(jnp.broadcast_to(size, num.shape))
    v = values.astype(dt)
    if weights is None:
        w = jnp.ones(v.shape, dt)
    else:
        w = jnp.broadcast_to(weights.astype(dt), v.shape)
    m = masks.astype(dt)
    num = jnp.einsum("...n,gn->...g", v * w, m, precision=HI)
    den = jnp.einsum("...n,gn->...g", w, m, precision=HI)
    return num, den


@jax.jit
def group_means(values: jax.Array, masks: Any, weights: jax.Array | None) -> jax.Array:
    """Weighted group means ``[..., g]`` (:func:`group_sums`); NaN for an empty group."""
    num, den = group_sums(values, masks, weights)
    return num / den  # 0 / 0 = NaN for an empty group


def masked_extreme(x: jax.Array, valid: jax.Array, kind: str) -> jax.Array:
    """Max or min (``kind``) of ``x [..., g]`` over valid, finite groups; NaN if none."""
    ok = jnp.isfinite(x) & jnp.broadcast_to(valid, x.shape)
    fill = -jnp.inf if kind == "max" else jnp.inf
    red = jnp.max if kind == "max" else jnp.min
    out = red(jnp.where(ok, x, fill), axis=-1)
    return jnp.where(jnp.any(ok, axis=-1), out, jnp.nan)


@jax.jit
def masked_max_gap(x: jax.Array, valid: jax.Array) -> jax.Array:
    """``max - min`` of ``x [..., g]`` over valid, finite groups; NaN with fewer than two."""
    ok = jnp.isfinite(x) & jnp.broadcast_to(valid, x.shape)
    hi = jnp.max(jnp.where(ok, x, -jnp.inf), axis=-1)
    lo = jnp.min(jnp.where(ok, x, jnp.inf), axis=-1)
    return jnp.where(jnp.sum(ok, axis=-1) >= 2, hi - lo, jnp.nan)


@jax.jit
def trapezoid_last(y: jax.Array, x: jax.Array) -> jax.Array:
    """Trapezoid integral of ``y [..., K]`` over the grid ``x [K]`` (last axis)."""
    mid = 0.5 * (y[..., 1:] + y[..., :-1])
    return jnp.einsum("...k,k->...", mid, jnp.diff(x), precision=HI)


def split_parity(values: jax.Array, masks: tuple, valids: tuple) -> list:
    """Inside a kernel: ``values [..., g]`` of stacked masks -> per attribute (values, parity)."""
    out, start = [], 0
    for m, valid in zip(masks, valids, strict=True):
        vals = values[..., start : start + m.shape[0]]
        out.append((vals, masked_max_gap(vals, valid)))
        start += m.shape[0]
    return out


def cluster_scale(clusters: jax.Array) -> jax.Array:
    """``sqrt(C / (C - 1))`` per group (1 for C < 2): the small-sample variance correction
    of a bootstrap that resamples C clusters (its variance is ``(C - 1) / C`` times too small)."""
    c = jnp.asarray(clusters, jnp.float32)
    return jnp.where(c >= 2, jnp.sqrt(c / jnp.maximum(c - 1.0, 1.0)), 1.0)


@functools.partial(jax.jit, static_argnames=("joint",))
def pairwise_band(
    est: jax.Array,
    samples: jax.Array,
    valid: jax.Array,
    level: jax.Array,
    scale: jax.Array,
    joint: int = 0,
):
    """Sup-t simultaneous intervals of ``est_i - est_j`` (``est [..., g]``, ``samples [R, ...]``).

    ``scale [g]`` multiplies each group's replicate deviations from the estimate
    (:func:`cluster_scale`). The band is simultaneous over the pairs and over the
    last ``joint`` leading axes (one critical value for all of them; 0: per row).
    Returns ``(difference, low, high [..., g, g], critical [...])`` (``critical``
    without the joint axes); NaN for pairs with an invalid or non-finite group and
    on the diagonal (see ``metrics.comparisons``).
    """
    samples = est[None] + (samples - est[None]) * jnp.broadcast_to(scale, est.shape)[None]
    g = est.shape[-1]
    ok = jnp.isfinite(est) & jnp.broadcast_to(valid, est.shape)  # [..., g]
    pair_ok = (
        ok[..., :, None]
        & ok[..., None, :]
        & jnp.broadcast_to(~jnp.eye(g, dtype=bool), (*est.shape, g))
    )
    d = est[..., :, None] - est[..., None, :]  # [..., g, g]
    ds = samples[..., :, None] - samples[..., None, :]  # [R, ..., g, g]
    se = jnp.sqrt(jnp.nanmean((ds - jnp.nanmean(ds, axis=0)[None]) ** 2, axis=0))
    use = (pair_ok & (se > 0))[None]
    t = jnp.where(use, jnp.abs(ds - d[None]) / jnp.where(se > 0, se, 1.0)[None], 0.0)
    axes = tuple(range(-2 - joint, 0))
    t_max = jnp.max(jnp.where(jnp.isfinite(t), t, 0.0), axis=axes)  # [R, ...]
    c = jnp.quantile(t_max, level, axis=0)  # [...] without the joint axes
    half = c.reshape(c.shape + (1,) * (joint + 2)) * se
    nan = jnp.full_like(d, jnp.nan)
    return (
        jnp.where(pair_ok, d, nan),
        jnp.where(pair_ok, d - half, nan),
        jnp.where(pair_ok, d + half, nan),
        c,
    )


def gap_from_band(d: jax.Array, low: jax.Array, high: jax.Array, critical: jax.Array):
    """``(gap, low, high) [...]`` of ``max_ij |d_ij|`` from simultaneous pair intervals."""
    del critical
    ok = jnp.isfinite(d)
    dist0 = jnp.where(low > 0, low, jnp.where(high < 0, -high, 0.0))
    far = jnp.maximum(jnp.abs(low), jnp.abs(high))
    any_ok = jnp.any(ok, axis=(-2, -1))

    def pmax(x):
        return jnp.where(any_ok, jnp.max(jnp.where(ok, x, -jnp.inf), axis=(-2, -1)), jnp.nan)

    return pmax(jnp.abs(d)), pmax(dist0), pmax(far)
