"""Noise families of randomized smoothing: a registry of unit-std additive noises.

A noise family is a ``NoiseFn``: ``fn(key, shape, dtype)`` with zero mean and unit
per-coordinate standard deviation; samplers scale it by ``sigma``. Built in:
``"gaussian"`` (Cohen et al. 2019), ``"laplace"`` and ``"uniform"``;
:func:`register_noise` adds more, :func:`resolve_noise` maps a name to its function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from fairrobust._checks import fail

__all__ = ["NoiseFn", "available_noises", "register_noise", "resolve_noise"]

NoiseFn = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]
"""Plug-in noise: ``fn(key, shape, dtype) -> array`` of that shape and dtype with zero
mean and unit per-coordinate standard deviation. The sampler multiplies it by ``sigma``
and adds it to the input, so ``sigma`` is always the per-coordinate std."""


def _gaussian(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Standard normal, std 1."""
    return jax.random.normal(key, shape, dtype)


def _laplace(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Laplace with scale 1/sqrt(2), so std 1 (variance of Laplace(b) is 2 b^2)."""
    return jax.random.laplace(key, shape, dtype) * jnp.asarray(1.0 / math.sqrt(2.0), dtype)


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Uniform on [-sqrt(3), sqrt(3)], so std 1 (variance of U(-a, a) is a^2 / 3)."""
    a = math.sqrt(3.0)
    return jax.random.uniform(key, shape, dtype, minval=-a, maxval=a)


_NOISES: dict[str, NoiseFn] = {
    "gaussian": _gaussian,
    "laplace": _laplace,
    "uniform": _uniform,
}


def register_noise(name: str, fn: NoiseFn, *, overwrite: bool = False) -> None:
    """Registers a noise family usable as ``noise=name`` in the sampler.

    A new smoothing variant is a few lines::

        def rademacher(key, shape, dtype):  # zero mean, unit std
            return jax.random.rademacher(key, shape, dtype)

        register_noise("rademacher", rademacher)
        counts = sample_counts(apply_fn, variables, x, key, num_samples=1000,
                               sigma=0.1, num_classes=10, noise="rademacher")

    A callable can also be passed directly as ``noise=fn`` (it is a static jit
    argument, so pass the same function object to avoid recompiling).

    Args:
      name: registry key.
      fn: ``NoiseFn``: ``fn(key, shape, dtype) -> array`` of that shape and dtype with
        zero mean and unit per-coordinate standard deviation (the sampler scales it by
        ``sigma``). It must be traceable by JAX (it runs inside jit).
      overwrite: allow replacing an existing entry (the built-ins included).

    Raises:
      ValueError: if ``name`` exists and ``overwrite`` is False, or ``fn`` is not
        callable.
    """
    if not callable(fn):
        fail("fn", f"a callable NoiseFn for noise {name!r}", repr(fn))
    if name in _NOISES and not overwrite:
        fail("name", "a new noise name (or overwrite=True)", f"{name!r}, already registered")
    _NOISES[name] = fn


def available_noises() -> tuple[str, ...]:
    """Names of the registered noise families."""
    return tuple(sorted(_NOISES))


def resolve_noise(noise: str | NoiseFn) -> NoiseFn:
    """The ``NoiseFn`` of a registered noise name, or ``noise`` itself when it is callable.

    Used by every sampler of smoothing noise (``sample_counts``,
    ``fairrobust.attacks.eot_attack``), so one registry serves them all.

    Raises:
      ValueError: an unknown name (the message lists the registered ones).
    """
    if callable(noise):
        return noise
    if isinstance(noise, str) and noise in _NOISES:
        return _NOISES[noise]
    fail(
        "noise",
        f"one of {list(available_noises())} or a callable fn(key, shape, dtype)",
        repr(noise),
    )
