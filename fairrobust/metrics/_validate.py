"""Argument checks and conversions shared by the metric modules (private to the package).

Hot paths hand their inputs to one jitted kernel as they are (NumPy arrays are
transferred by the jit call itself) and cast inside it: an eager ``jnp.asarray`` /
``astype`` costs 10-200 us each on CPU, more than the reductions. The ``checked_*``
helpers therefore check without converting; the ``as_*`` helpers also convert, for
callers outside the lean kernels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import is_tracer

__all__ = [
    "as_array",
    "as_grid",
    "as_masks",
    "as_valid",
    "as_values",
    "as_weights",
    "checked_grid",
    "checked_values",
    "checked_weights",
    "float_dtype",
    "grid_float",
    "host_copy",
    "warn_empty",
]


def float_dtype(x: Any) -> Any:
    """x's dtype if floating, else float32 (bool / int values become float32)."""
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


def as_array(x: Any) -> Any:
    """``x`` as a jax / NumPy array without a device op (other inputs via NumPy)."""
    if isinstance(x, (jax.Array, np.ndarray)):  # jax.Array includes tracers
        return x
    a = np.asarray(x)
    return jnp.asarray(x) if a.dtype == object else a  # object: jnp's own error


def host_copy(x: Any) -> np.ndarray:
    """A NumPy copy of a concrete input in the dtype jax would give it (x64 rules)."""
    a = np.asarray(x)
    dt = jax.dtypes.canonicalize_dtype(a.dtype)
    return a if a.dtype == dt else a.astype(dt)


def as_values(values: Any, name: str = "values", min_ndim: int = 1) -> jax.Array:
    """:func:`checked_values` as a floating jax array (for callers outside the lean kernels)."""
    v = jnp.asarray(checked_values(values, name, min_ndim))
    return v.astype(float_dtype(v))


def checked_values(values: Any, name: str = "values", min_ndim: int = 1) -> Any:
    """Lean :func:`as_values`: same check, no cast (the kernels cast with float_dtype)."""
    v = as_array(values)
    if v.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dims, got shape {v.shape}")
    return v


def as_masks(masks: Any, n: int, fn: str) -> Any:
    """Masks ``[g, n]`` as an array (no device op), shape-checked against the examples axis."""
    m = as_array(masks)
    if m.ndim != 2 or m.shape[1] != n:
        raise ValueError(f"{fn}: masks: expected shape (g, n={n}), got {m.shape}")
    return m


def warn_empty(
    masks: Any, fn: str, names: Sequence[str] | None = None, *, stacklevel: int = 3
) -> None:
    """RuntimeWarning naming empty groups, when the masks (or a tuple of masks, stacked
    along groups) are concrete; ``stacklevel`` 3 points at the caller of ``fn``."""
    parts = masks if isinstance(masks, tuple) else (masks,)
    if any(is_tracer(p) for p in parts):
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
        stacklevel=stacklevel,
    )


def as_weights(weights: Any, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Per-example multiplicities broadcast explicitly to ``shape`` (rank promotion is strict)."""
    w = checked_weights(weights, shape)
    if w is None:
        return jnp.ones(shape, dtype)
    return jnp.broadcast_to(jnp.asarray(w, dtype), shape)


def checked_weights(weights: Any, shape: tuple[int, ...]) -> Any:
    """Lean :func:`as_weights`: None stays None (all ones, never materialised); an
    array is only checked to broadcast to ``shape`` (kernels cast and broadcast it)."""
    if weights is None:
        return None
    w = as_array(weights)
    try:
        ok = np.broadcast_shapes(w.shape, shape) == tuple(shape)  # broadcast_to's rule
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"weights: expected a shape broadcastable to {shape}, got {w.shape}")
    return w


def as_valid(valid: Any, g: int) -> jax.Array:
    """Validity flags ``[g]`` as a bool jax array (None: every group valid)."""
    if valid is None:
        return jnp.ones((g,), bool)
    v = jnp.asarray(valid)
    if v.shape != (g,):
        raise ValueError(f"valid: expected shape (g={g},), got {v.shape}")
    return v.astype(bool)


def checked_grid(x: Any, name: str, length: int | None = None) -> Any:
    """1-D, finite, strictly increasing grid (checked when concrete), without a device op.

    Host input comes back as NumPy in jax's dtype (float32 if not floating); a jax
    array or tracer comes back as given: kernels cast it with :func:`grid_float`.
    """
    if isinstance(x, jax.Array):
        g = x
    else:
        g = host_copy(as_array(x))
        if not jnp.issubdtype(g.dtype, jnp.floating):
            g = g.astype(jnp.float32)
    if g.ndim != 1 or g.shape[0] < 2:
        raise ValueError(f"{name}: expected a 1-D grid of at least 2 points, got shape {g.shape}")
    if length is not None and g.shape[0] != length:
        raise ValueError(f"{name}: expected {length} points to match the values, got {g.shape[0]}")
    if not is_tracer(g):
        a = np.asarray(g)  # a jax array's host copy is cached: one transfer per array
        if not jnp.issubdtype(a.dtype, jnp.floating):
            a = a.astype(jnp.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: expected finite values, got {a}")
        if not (a[1:] > a[:-1]).all():  # finite: the same as diff > 0
            raise ValueError(f"{name}: expected a strictly increasing grid, got {a}")
    return g


def grid_float(x: jax.Array) -> jax.Array:
    """Inside a kernel: a grid from :func:`checked_grid` in the dtype :func:`as_grid` gives it."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def as_grid(x: Any, name: str, length: int | None = None) -> jax.Array:
    """1-D, finite, strictly increasing grid (checked when concrete), as a float jax array."""
    return grid_float(jnp.asarray(checked_grid(x, name, length)))
