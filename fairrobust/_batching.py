"""Batching helpers and the one last-batch padding policy.

Kernels are jitted per input shape, so a last partial batch is padded to the full
batch size (nothing recompiles) and the padded rows' results are dropped. The one
policy: **pad the leading axis with copies of row 0**. Every caller evaluates
each row independently of the others (eval-mode forward passes, per-example
attacks, per-example noise keyed by the example's own index), so the padding
never changes a real row's result; it only has to be a valid input, which a copy
of a real row always is (zeros are not, e.g. for a model that standardises).

NumPy leaves stay NumPy (host batching); JAX arrays and tracers stay JAX (padding
inside a jitted kernel or before a ``shard_map``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["batch_size_for", "iter_batches", "pad_leading", "pad_to", "padded_batches"]


def _pad_leaf(a: Any, size: int) -> Any:
    n = a.shape[0]
    if n == size:
        return a
    if n == 0 or n > size:
        raise ValueError(f"pad: expected 1 to {size} rows, got {n}")
    xp = np if isinstance(a, np.ndarray) else jnp
    fill = xp.broadcast_to(a[:1], (size - n, *a.shape[1:]))
    return xp.concatenate([a, fill])


def pad_to(tree: Any, size: int) -> Any:
    """Pads every leaf's leading axis to ``size`` rows with copies of row 0."""
    return jax.tree_util.tree_map(lambda a: _pad_leaf(a, size), tree)


def pad_leading(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pads every leaf's leading axis to a multiple of ``multiple`` with copies of row 0.

    Leaves that are neither NumPy nor JAX arrays are converted with ``jnp.asarray``.

    Returns:
      ``(padded tree, original length)``.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    n = int(leaves[0].shape[0])
    size = n + (-n) % multiple
    if size == n:
        return tree, n

    def one(a: Any) -> Any:
        return _pad_leaf(a if isinstance(a, np.ndarray) else jnp.asarray(a), size)

    return jax.tree_util.tree_map(one, tree), n


def batch_size_for(batch_size: int, n: int) -> int:
    """The batch size actually used for ``n`` rows: ``batch_size``, at most ``n``, at least 1."""
    return max(1, min(int(batch_size), n))


def iter_batches(tree: Any, batch_size: int) -> Iterator[tuple[int, int, int, Any]]:
    """Batches of the leading axis, the last one padded to ``batch_size``.

    Yields:
      ``(j, start, m, batch)``: batch index, first row, number of real rows (the
      first ``m`` rows of ``batch``), and the batch (every leaf ``[batch_size, ...]``).
    """
    n = int(jax.tree_util.tree_leaves(tree)[0].shape[0])
    for j, start in enumerate(range(0, n, batch_size)):
        part = jax.tree_util.tree_map(lambda a, s=start: a[s : s + batch_size], tree)
        m = min(batch_size, n - start)
        yield j, start, m, pad_to(part, batch_size)


def padded_batches(tree: Any, batch_size: int) -> Any:
    """Every leaf ``[n, ...]`` -> ``[B, batch_size, ...]``, the last batch padded."""
    padded, _ = pad_leading(tree, batch_size)
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, batch_size, *a.shape[1:]), padded)
