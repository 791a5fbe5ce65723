"""Noise families of randomized smoothing: a sampler and, optionally, its certificates.

A noise family is a ``NoiseFn`` sampler — ``fn(key, shape, dtype)`` with zero mean and
unit per-coordinate standard deviation, scaled by ``sigma`` in the samplers — plus the
:class:`Certificate` s that turn CERTIFY's ``pA_lower`` into a radius in some norm.
Built in (``sigma`` is always the per-coordinate standard deviation):

- ``gaussian``: ``N(0, sigma^2 I)``. L2 radius ``sigma * Phi^-1(p)`` (Cohen et al.
  2019, Theorem 1); L-inf radius ``sigma * Phi^-1(p) / sqrt(d)`` (from the L2 ball).
- ``laplace``: i.i.d. Laplace of scale ``lam = sigma / sqrt(2)``. L1 radius
  ``max(lam/2 * log(p / (1-p)), -lam * log(2 (1-p)))`` (Teng et al. 2020; the rs4a
  code of Yang et al. 2020 uses the same).
- ``uniform``: i.i.d. ``U[-lam, lam]`` with ``lam = sigma * sqrt(3)``. L1 radius
  ``2 lam (p - 1/2)`` (Yang et al. 2020); L-inf radius ``2 lam (1 - (3/2 - p)^(1/d))``
  (total variation, below).

Here ``p = pA_lower >= 1/2`` (CERTIFY abstains below) and ``d`` the input dimension.
The first certificate of a family is its default. The L-inf radii are derived, not
tight: for Gaussian noise ``||delta||_2 <= sqrt(d) ||delta||_inf`` turns the L2 ball
into an L-inf one; for the uniform cube, shifting by ``delta`` with
``||delta||_inf <= r`` keeps a fraction ``prod_i (1 - |delta_i| / (2 lam)) >=
(1 - r / (2 lam))^d`` of the cube, so the total variation distance between the two
noise distributions is at most ``1 - (1 - r/(2 lam))^d`` and the top class keeps
probability ``> 1/2`` while that is below ``p - 1/2``. Both shrink like ``1/d``:
at ``d = 8000`` samples they are tiny, which is the honest answer for waveforms.

:func:`register_noise` adds a family (with ``certificate=`` to make ``certify``
accept it), :func:`resolve_noise` maps a name to its sampler,
:func:`noise_certificate` to a certificate.

References: J. Cohen, E. Rosenfeld, Z. Kolter, ICML 2019; J. Teng, G.-H. Lee, Y. Yuan,
"l1 adversarial robustness certificates: a randomized smoothing approach", 2020;
G. Yang, T. Duan, J. E. Hu, H. Salman, I. Razenshteyn, J. Li, "Randomized smoothing
of all shapes and sizes", ICML 2020 (the rs4a code uses the same Laplace and uniform
L1 radii).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from fairrobust._checks import check_choice, fail

__all__ = [
    "NORMS",
    "Certificate",
    "NoiseFn",
    "RadiusFn",
    "available_noises",
    "noise_certificate",
    "noise_certificates",
    "register_noise",
    "resolve_noise",
]

NoiseFn = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]
"""Plug-in noise: ``fn(key, shape, dtype) -> array`` of that shape and dtype with zero
mean and unit per-coordinate standard deviation. The sampler multiplies it by ``sigma``
and adds it to the input, so ``sigma`` is always the per-coordinate std."""

RadiusFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``radius(p_lower, sigma, dim) -> radius``: float64 NumPy arrays broadcast together;
``p_lower`` in [1/2, 1) (CERTIFY abstains below 1/2), ``sigma`` the per-coordinate std,
``dim`` the number of coordinates the noise is added to."""

NORMS: tuple[str, ...] = ("l1", "l2", "linf")


class Certificate(NamedTuple):
    """A certified radius of a noise family: the norm and the radius as a function of
    ``pA_lower``, ``sigma`` and the input dimension.

    Attributes:
      norm: ``"l1"``, ``"l2"`` or ``"linf"``: the norm of the certified ball.
      radius: :data:`RadiusFn`; must be non-decreasing in ``p_lower`` and 0 at 1/2.
      reference: where the bound comes from (printed in results and the report).
    """

    norm: str
    radius: RadiusFn
    reference: str = ""


class _Family(NamedTuple):
    sampler: NoiseFn
    certificates: tuple[Certificate, ...]


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


def _gaussian_l2(p: np.ndarray, sigma: np.ndarray, dim: int) -> np.ndarray:
    """Cohen et al. (2019), Theorem 1: ``sigma * Phi^-1(p)``."""
    return sigma * special.ndtri(p)


def _gaussian_linf(p: np.ndarray, sigma: np.ndarray, dim: int) -> np.ndarray:
    """The L2 ball of radius R contains the L-inf ball of radius ``R / sqrt(d)``."""
    return sigma * special.ndtri(p) / math.sqrt(dim)


def _laplace_l1(p: np.ndarray, sigma: np.ndarray, dim: int) -> np.ndarray:
    """Teng et al. (2020) with scale ``lam = sigma / sqrt(2)``."""
    lam = sigma / math.sqrt(2.0)
    return np.maximum(0.5 * lam * np.log(p / (1.0 - p)), -lam * np.log(2.0 * (1.0 - p)))


def _uniform_l1(p: np.ndarray, sigma: np.ndarray, dim: int) -> np.ndarray:
    """Yang et al. (2020): ``2 lam (p - 1/2)`` with half-width ``lam = sigma * sqrt(3)``."""
    return 2.0 * sigma * math.sqrt(3.0) * (p - 0.5)


def _uniform_linf(p: np.ndarray, sigma: np.ndarray, dim: int) -> np.ndarray:
    """Total-variation bound of two shifted cubes: ``2 lam (1 - (3/2 - p)^(1/d))``."""
    lam = sigma * math.sqrt(3.0)
    # 1 - (3/2 - p)^(1/d) = -expm1(log(3/2 - p) / d): accurate for large d.
    return -2.0 * lam * np.expm1(np.log(1.5 - p) / dim)


_NOISES: dict[str, _Family] = {
    "gaussian": _Family(
        _gaussian,
        (
            Certificate("l2", _gaussian_l2, "Cohen et al. 2019, Theorem 1"),
            Certificate(
                "linf", _gaussian_linf, "Cohen et al. 2019 with ||d||_2 <= sqrt(d) ||d||_inf"
            ),
        ),
    ),
    "laplace": _Family(
        _laplace,
        (Certificate("l1", _laplace_l1, "Teng et al. 2020; Yang et al. 2020 (rs4a)"),),
    ),
    "uniform": _Family(
        _uniform,
        (
            Certificate("l1", _uniform_l1, "Yang et al. 2020, uniform cube"),
            Certificate("linf", _uniform_linf, "total variation of shifted uniform cubes"),
        ),
    ),
}


def _check_certificate(name: str, cert: Any) -> Certificate:
    if not isinstance(cert, Certificate):
        if isinstance(cert, tuple) and len(cert) in (2, 3):
            cert = Certificate(*cert)
        else:
            fail(
                "certificate",
                f"a Certificate(norm, radius_fn) for noise {name!r}",
                repr(cert),
            )
    check_choice("certificate.norm", cert.norm, NORMS)
    if not callable(cert.radius):
        fail("certificate.radius", "a callable radius(p_lower, sigma, dim)", repr(cert.radius))
    return cert


def register_noise(
    name: str,
    fn: NoiseFn,
    *,
    certificate: Certificate | Sequence[Certificate] | None = None,
    overwrite: bool = False,
) -> None:
    """Registers a noise family usable as ``noise=name`` in the samplers and ``certify``.

    A new smoothing variant with its certificate is a few lines (Rademacher noise
    ``+-sigma`` per coordinate; its L1 certificate below is the uniform cube's, which
    the Rademacher distribution does *not* satisfy — derive your own)::

        def rademacher(key, shape, dtype):  # zero mean, unit std
            return jax.random.rademacher(key, shape, dtype)

        register_noise("rademacher", rademacher,
                       certificate=Certificate("l1", my_radius, "my derivation"))
        counts = sample_counts(apply_fn, variables, x, key, num_samples=1000,
                               sigma=0.1, num_classes=10, noise="rademacher")

    Without a certificate the family samples, predicts and is used by the studies'
    PREDICT, but :func:`fairrobust.smoothing.certify` refuses it: a radius without a
    proof would be a false guarantee. A callable can also be passed directly as
    ``noise=fn`` to the samplers (a static jit argument: pass the same object).

    Args:
      name: registry key.
      fn: ``NoiseFn``: ``fn(key, shape, dtype) -> array`` of that shape and dtype with
        zero mean and unit per-coordinate standard deviation (the sampler scales it by
        ``sigma``). It must be traceable by JAX (it runs inside jit).
      certificate: a :class:`Certificate` (or several, the first the default) whose
        ``radius(p_lower, sigma, dim)`` holds for ``sigma * fn`` noise.
      overwrite: allow replacing an existing entry (the built-ins included).

    Raises:
      ValueError: if ``name`` exists and ``overwrite`` is False, ``fn`` is not
        callable, or a certificate has an unknown norm or no radius function.
    """
    if not callable(fn):
        fail("fn", f"a callable NoiseFn for noise {name!r}", repr(fn))
    if name in _NOISES and not overwrite:
        fail("name", "a new noise name (or overwrite=True)", f"{name!r}, already registered")
    certs: Sequence[Any] = (
        () if certificate is None
        else (certificate,) if isinstance(certificate, Certificate)
        else tuple(certificate)
    )  # fmt: skip
    checked = tuple(_check_certificate(name, c) for c in certs)
    if len({c.norm for c in checked}) != len(checked):
        fail("certificate", f"one certificate per norm for noise {name!r}", repr(certs))
    _NOISES[name] = _Family(fn, checked)


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
        return _NOISES[noise].sampler
    fail(
        "noise",
        f"one of {list(available_noises())} or a callable fn(key, shape, dtype)",
        repr(noise),
    )


def noise_certificates(noise: str | NoiseFn) -> tuple[Certificate, ...]:
    """Every certificate of a noise family (empty for a family registered without one
    and for an unregistered callable)."""
    if isinstance(noise, str):
        resolve_noise(noise)  # unknown names fail with the registry listed
        return _NOISES[noise].certificates
    for fam in _NOISES.values():
        if fam.sampler is noise:
            return fam.certificates
    resolve_noise(noise)
    return ()


def noise_certificate(noise: str | NoiseFn, norm: str | None = None) -> Certificate:
    """The certificate of ``noise`` in ``norm`` (default: the family's first).

    Raises:
      ValueError: unknown family or norm, or a family without a certificate in that
        norm; the message says how to register one.
    """
    if norm is not None:
        check_choice("norm", norm, NORMS)
    certs = noise_certificates(noise)
    name = noise if isinstance(noise, str) else getattr(noise, "__name__", repr(noise))
    for c in certs:
        if norm is None or c.norm == norm:
            return c
    have = [c.norm for c in certs]
    fail(
        "noise",
        f"a noise family with a certificate{'' if norm is None else ' in ' + norm} "
        f"(register one: smoothing.register_noise({name!r}, fn, "
        "certificate=smoothing.Certificate(norm, radius_fn, reference), overwrite=True))",
        f"{name!r}, whose certificates are {have or 'none'}",
    )
