"""PREDICT and CERTIFY of randomized smoothing (Cohen et al. 2019) from class counts.

PREDICT: take the top-two counts ``nA >= nB``; abstain (-1) iff the two-sided binomial
test of ``nA`` successes in ``nA + nB`` trials at p = 0.5 has p-value > alpha (the
rejection mechanism of the AISec'23 paper, section 4.3).

CERTIFY: pick the top class A from ``n0`` selection draws, count A on ``n`` fresh
estimation draws, take the one-sided Clopper-Pearson lower bound ``pA_lower`` at level
alpha, and return the noise family's certified radius at ``pA_lower`` (Gaussian: L2
``sigma * Phi^-1(pA_lower)``; Laplace and uniform: L1; see
``fairrobust.smoothing.noise``), or abstain when ``pA_lower < 0.5``. A family without
a certificate is refused.

Float64: the binomial p-values and the Clopper-Pearson bound need float64 (p-values
down to 1e-12 at n = 10^6, bounds within 1e-6). They are computed with
``jax.scipy.special.betainc`` inside ``with jax.enable_x64(True):`` and returned as host
NumPy float64 arrays, because a float64 ``jax.Array`` escaping the context would be
silently truncated (with a warning) by later float32 JAX code.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fairrobust._checks import check_int, concrete, fail
from fairrobust.models import ApplyFn
from fairrobust.smoothing.noise import NoiseFn, noise_certificate
from fairrobust.smoothing.sampling import check_sigma, sample_counts

__all__ = [
    "PVALUE_RTOL",
    "CertifyResult",
    "binom_test_pvalue",
    "certified_accuracy",
    "certified_radius",
    "certify",
    "clopper_pearson_lower",
    "predict_pvalues",
    "smallest_answerable_alpha",
    "smoothed_predict",
]

# Relative tolerance of the PREDICT rule ``p <= alpha``: the float64 p-value lands a
# few ulp from exact values such as 1/8, so ``p <= alpha * (1 + 1e-7)`` keeps Cohen's
# rule at alpha equal to an exact p-value (scipy.stats.binomtest uses the same 1e-7).
PVALUE_RTOL = 1e-7


def _check_alpha(alpha: Any, *, allow_one: bool) -> None:
    """Levels in (0, 1] (``allow_one``) or (0, 1); traced values are not checked."""
    a = concrete(alpha)
    if a is not None:
        a = a.astype(np.float64)
        hi_ok = (a <= 1) if allow_one else (a < 1)
        if a.size == 0 or not np.all(np.isfinite(a) & (a > 0) & hi_ok):
            fail("alpha", "0 < alpha <= 1" if allow_one else "0 < alpha < 1", repr(alpha))


def _check_counts(counts: Any) -> np.ndarray:
    """Non-negative integer class counts ``(..., C >= 2)``."""
    c = np.asarray(counts)
    if c.ndim < 1 or c.shape[-1] < 2:
        fail("counts", "shape (..., num_classes >= 2)", repr(c.shape))
    if not np.issubdtype(c.dtype, np.integer) or np.any(c < 0):
        fail("counts", "non-negative integers", f"dtype {c.dtype}, min {c.min(initial=0)}")
    return c


@jax.jit
def _binom_pvalue_f64(n_a: jax.Array, n_b: jax.Array) -> jax.Array:
    """Two-sided binomial p-value at p = 1/2 (call under ``jax.enable_x64``)."""
    n_a = n_a.astype(jnp.float64)
    n_b = n_b.astype(jnp.float64)
    n = n_a + n_b
    m = jnp.maximum(n_a, n_b)
    # P(X >= m) for X ~ Bin(n, 1/2) equals I_{1/2}(m, n - m + 1) for m >= 1.
    tail = jax.scipy.special.betainc(jnp.maximum(m, 1.0), n - m + 1.0, 0.5)
    tail = jnp.where(m > 0, tail, 1.0)
    return jnp.clip(2.0 * tail, 0.0, 1.0)


def binom_test_pvalue(n_a: Any, n_b: Any) -> np.ndarray:
    """Two-sided exact binomial test p-value of ``n_a`` successes in ``n_a + n_b`` trials.

    Under H0: p = 1/2 the distribution is symmetric, so scipy's two-sided rule ("sum
    the probabilities of all outcomes no more likely than the observed one") reduces to

        pvalue = min(1, 2 * P(X >= max(n_a, n_b))),   X ~ Binomial(n_a + n_b, 1/2),

    with ``P(X >= m) = I_{1/2}(m, n - m + 1)`` (regularized incomplete beta). Equal
    counts give 1 (as scipy), and ``n_a + n_b = 0`` gives 1 (no evidence). Computed in
    float64 with ``jax.scipy.special.betainc`` under ``jax.enable_x64(True)``; matches
    ``scipy.stats.binomtest(n_a, n_a + n_b, 0.5).pvalue`` to ~1e-9 for n up to 10^6.

    Args:
      n_a: non-negative integer counts, any shape.
      n_b: non-negative integer counts, broadcastable with ``n_a`` (same rank).

    Returns:
      float64 NumPy array of p-values in [0, 1], broadcast shape of the inputs.

    Raises:
      ValueError: negative or non-integer counts.
    """
    a = np.asarray(n_a)
    b = np.asarray(n_b)
    for name, v in (("n_a", a), ("n_b", b)):
        if not np.issubdtype(v.dtype, np.integer) or np.any(v < 0):
            fail(name, "non-negative integers", repr(v))
    with jax.enable_x64(True):
        p = _binom_pvalue_f64(jnp.asarray(a, jnp.int64), jnp.asarray(b, jnp.int64))
        return np.asarray(p, dtype=np.float64)


def smallest_answerable_alpha(num_samples: Any) -> np.ndarray:
    """Smallest alpha at which PREDICT with N draws can return a class.

    The smallest two-sided p-value of N draws is that of ``nA = N, nB = 0``:
    ``2 * 0.5^N`` (capped at 1), so for ``alpha < 2 * 0.5^N`` every input abstains
    (N = 10: 0.00195). N = 0 gives 1 (the p-value is always 1).

    Args:
      num_samples: non-negative integer N, any shape.

    Returns:
      float64 NumPy array ``min(1, 2 * 0.5^N)`` of the shape of ``num_samples``.

    Raises:
      ValueError: negative or non-integer N.
    """
    n = np.asarray(num_samples)
    if not np.issubdtype(n.dtype, np.integer) or np.any(n < 0):
        fail("num_samples", "non-negative integers", repr(num_samples))
    return np.minimum(1.0, np.ldexp(1.0, 1 - n.astype(np.int64)))


def _warn_unanswerable(num_samples: np.ndarray, alpha: np.ndarray, floor: np.ndarray) -> None:
    """UserWarning naming each N whose floor (smallest answerable alpha) exceeds alpha."""
    n_b, a_b, f_b = np.broadcast_arrays(num_samples, alpha, floor)
    bad = a_b < f_b / (1.0 + PVALUE_RTOL)
    if not np.any(bad):
        return
    parts = [
        f"N = {n} cannot reach alpha = {a_b[bad & (n_b == n)].min():g} "
        f"(smallest answerable alpha {f_b[bad & (n_b == n)].max():g})"
        for n in np.unique(n_b[bad])
    ]
    warnings.warn(
        "randomized smoothing abstains on every input: " + "; ".join(parts),
        UserWarning,
        stacklevel=3,
    )


def predict_pvalues(counts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top class and PREDICT p-value from class counts (Cohen et al. 2019, PREDICT).

    With ``nA >= nB`` the two largest counts, ``pvalue = binom_test_pvalue(nA, nB)``.
    Ties for the top class resolve to the lowest class index (as ``argmax``).

    Args:
      counts: non-negative integer counts, shape ``(..., b, C)`` (e.g. the
        ``(K, b, C)`` output of ``sample_counts`` with checkpoints).

    Returns:
      ``(top_class int64 (..., b), pvalue float64 (..., b))`` as NumPy arrays.
    """
    c = _check_counts(counts)
    top = np.argmax(c, axis=-1)
    top2 = -np.sort(-c, axis=-1)[..., :2]
    return top, binom_test_pvalue(top2[..., 0], top2[..., 1])


def smoothed_predict(counts: Any, alpha: Any) -> np.ndarray:
    """PREDICT of Cohen et al. (2019): the smoothed prediction or -1 (abstain).

    ``pred = top class`` if ``binom_test_pvalue(nA, nB) <= alpha`` else ``-1``. The
    probability of returning a class other than g(x) is at most alpha. The comparison
    uses a relative tolerance ``p <= alpha * (1 + 1e-7)`` (as scipy.stats.binomtest),
    so at alpha equal to an exact p-value such as 1/8 the rule predicts although the
    float64 p-value is a few ulp above it. Known floor: with N draws the smallest
    possible p-value is ``2 * 0.5^N`` (``smallest_answerable_alpha``; N = 10: 0.00195),
    so at a smaller alpha every input abstains; a ``UserWarning`` naming N and alpha
    says so.

    Args:
      counts: integer counts ``(..., b, C)``.
      alpha: significance level(s) in (0, 1], scalar or broadcastable with
        ``counts.shape[:-1]`` (same rank), e.g. ``alpha[:, None]`` for a sweep.

    Returns:
      int64 NumPy predictions of shape ``counts.shape[:-1]`` (broadcast with alpha),
      -1 meaning abstain.
    """
    _check_alpha(alpha, allow_one=True)
    top, p = predict_pvalues(counts)
    a = np.asarray(alpha, np.float64)
    n = np.asarray(counts).sum(axis=-1)
    _warn_unanswerable(n, a, smallest_answerable_alpha(n))
    return np.where(p > a * (1.0 + PVALUE_RTOL), -1, top)


@functools.partial(jax.jit, static_argnames=("iters",))
def _cp_lower_f64(k: jax.Array, n: jax.Array, alpha: jax.Array, iters: int = 64) -> jax.Array:
    """Bisection for ``I_p(k, n - k + 1) = alpha`` in float64 (call under enable_x64)."""
    k = k.astype(jnp.float64)
    n = n.astype(jnp.float64)
    a = jnp.maximum(k, 1.0)
    bb = n - k + 1.0

    # I_p(k, n-k+1) = P(Bin(n, p) >= k) increases in p: bisect on [0, 1]; 64 halvings
    # reach float64 resolution, far inside the 1e-6 target.
    def body(_: int, lohi: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = jax.scipy.special.betainc(a, bb, mid) < alpha
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo0 = jnp.zeros(jnp.broadcast_shapes(k.shape, n.shape, alpha.shape))
    lo, hi = lax.fori_loop(0, iters, body, (lo0, jnp.ones_like(lo0)))
    return jnp.where(k > 0, 0.5 * (lo + hi), 0.0)


def clopper_pearson_lower(k: Any, n: Any, alpha: Any) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial p.

    ``p_lower = Beta.ppf(alpha; k, n - k + 1)`` (= ``scipy.stats.beta.ppf``), and 0
    when ``k = 0``; i.e. the p solving ``P(Bin(n, p) >= k) = alpha``. Used by CERTIFY
    (Cohen et al. 2019) as ``pA_lower``. Computed by float64 bisection on
    ``jax.scipy.special.betainc`` under ``jax.enable_x64(True)`` (accuracy ~1e-15).

    Args:
      k: successes, integers in [0, n], any shape.
      n: trials, integers >= 1, broadcastable with ``k`` (same rank or scalar).
      alpha: level in (0, 1), scalar or broadcastable.

    Returns:
      float64 NumPy array of lower bounds in [0, 1).

    Raises:
      ValueError: k outside [0, n], n < 1, or alpha outside (0, 1).
    """
    _check_alpha(alpha, allow_one=False)
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    if not np.issubdtype(k_arr.dtype, np.integer) or not np.issubdtype(n_arr.dtype, np.integer):
        fail("k, n", "integers", f"dtypes {k_arr.dtype} and {n_arr.dtype}")
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        fail("k, n", "n >= 1 and 0 <= k <= n", f"k={k_arr.tolist()}, n={n_arr.tolist()}")
    with jax.enable_x64(True):
        out = _cp_lower_f64(
            jnp.asarray(k_arr, jnp.int64),
            jnp.asarray(n_arr, jnp.int64),
            jnp.asarray(alpha, jnp.float64),
        )
        return np.asarray(out, dtype=np.float64)


class CertifyResult(NamedTuple):
    """Output of ``certify`` (host NumPy arrays, b = number of inputs; with a sigma
    sweep of S values every per-input array gains a leading ``S`` axis).

    Attributes:
      pred: int64 ``(b,)`` certified class, -1 = abstain.
      radius: float64 ``(b,)`` certified radius in ``norm`` (the noise family's
        certificate at ``p_a_lower``), 0 when abstaining.
      p_a_lower: float64 ``(b,)`` Clopper-Pearson lower bound on P(f(x + eps) = A).
      top_class: int64 ``(b,)`` class A chosen from the selection draws.
      counts_selection: int32 ``(b, C)`` counts of the ``n0`` selection draws.
      counts: int32 ``(b, C)`` counts of the ``n`` estimation draws.
      norm: ``"l1"``, ``"l2"`` or ``"linf"``: the norm of the certified radius.
      sigma: float64, the noise std (scalar) or the sweep ``(S,)``.
    """

    pred: np.ndarray
    radius: np.ndarray
    p_a_lower: np.ndarray
    top_class: np.ndarray
    counts_selection: np.ndarray
    counts: np.ndarray
    norm: str = "l2"
    sigma: Any = None


def certified_radius(
    p_a_lower: Any,
    sigma: Any,
    dim: int,
    *,
    noise: str | NoiseFn = "gaussian",
    norm: str | None = None,
) -> tuple[np.ndarray, str]:
    """The certified radius of ``noise`` at ``pA_lower`` (0 where ``pA_lower < 1/2``).

    Args:
      p_a_lower: float lower bounds in [0, 1), any shape.
      sigma: noise std, broadcastable with ``p_a_lower``.
      dim: number of coordinates the noise is added to (the L-inf radii need it).
      noise: a registered family (or its sampler) with a certificate.
      norm: which of the family's certificates (default its first).

    Returns:
      ``(radius float64 of the broadcast shape, norm)``.

    Raises:
      ValueError: a family without a certificate (in ``norm``), or ``dim < 1``.
    """
    cert = noise_certificate(noise, norm)
    dim = check_int("dim", dim, 1)
    p = np.asarray(p_a_lower, np.float64)
    sig = np.asarray(sigma, np.float64)
    ok = p >= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.asarray(cert.radius(np.where(ok, p, 0.5), sig, dim), np.float64)
    return np.where(ok, np.maximum(r, 0.0), 0.0), cert.norm


def certify(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    key: jax.Array,
    *,
    n0: int,
    n: int,
    alpha: float,
    sigma: float | Any,
    num_classes: int,
    noise: str | NoiseFn = "gaussian",
    norm: str | None = None,
    chunk_size: int = 16,
    indices: Any = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
    sampler: Callable[..., Any] | None = None,
) -> CertifyResult:
    """CERTIFY of Cohen et al. (2019) for a batch of inputs.

    1. ``A = argmax counts0`` from ``n0`` selection draws (key ``fold_in(key, 0)``);
    2. ``nA = counts[A]`` from ``n`` fresh estimation draws (key ``fold_in(key, 1)``);
    3. ``pA_lower = clopper_pearson_lower(nA, n, alpha)``;
    4. if ``pA_lower < 0.5`` abstain (pred -1, radius 0), else predict A with the noise
       family's certified radius at ``pA_lower`` (Gaussian: L2 ``sigma *
       Phi^-1(pA_lower)``; Laplace, uniform: L1; ``fairrobust.smoothing.noise``):
       with probability >= 1 - alpha the smoothed classifier g is constant on that ball.

    A family registered without a certificate is refused before any sampling (a
    radius without a proof is no guarantee). A sigma sweep (``sigma=[s1, ..., sS]``)
    certifies at every sigma in one program per stream, the sigmas sharing the noise
    draws (common random numbers); each sigma's result is that of CERTIFY at that
    sigma (the guarantee holds per sigma, at level alpha each). Known floor: even with
    ``nA = n`` the bound is ``alpha^(1/n)``, so nothing is certified when
    ``alpha < 0.5^n`` (at alpha = 0.001 unless ``n >= 10``); a ``UserWarning`` naming
    n and alpha says so.

    Args:
      apply_fn, variables, x, key, num_classes, noise, chunk_size, indices, mode,
        prng_impl, compute_dtype, input_block, linear_stem: as in ``sample_counts``
        (both streams use the same sampling options).
      n0: selection draws, >= 1 (Cohen et al. use 100; the audio paper 500).
      n: estimation draws, >= 1 (e.g. 10^4 or 10^5).
      alpha: failure probability in (0, 1) (e.g. 0.001).
      sigma: noise standard deviation > 0, or a 1-D sweep of them (adds a leading
        ``S`` axis to every per-input result).
      norm: which certificate of the family (``"l1"``, ``"l2"``, ``"linf"``; default
        the family's first: L2 for Gaussian, L1 for Laplace and uniform).
      sampler: the counting function, called as ``sample_counts`` is (default
        ``sample_counts``); e.g. ``functools.partial(engine.parallel.sample_counts,
        mesh=mesh)`` draws on every device of ``mesh`` (identical counts).

    Returns:
      ``CertifyResult`` with per-input ``pred``, ``radius``, ``p_a_lower``, the chosen
      class and both count tables.

    Raises:
      ValueError: invalid parameter (message names it), NaN input, or a noise family
        without a certificate in ``norm``.
    """
    noise_certificate(noise, norm)  # refuse an uncertified family before sampling
    n0 = check_int("n0", n0, 1)
    n = check_int("n", n, 1)
    _check_alpha(alpha, allow_one=False)
    check_sigma(sigma)
    # pA_lower <= alpha^(1/n) < 1/2 when alpha < 0.5^n: every input abstains.
    _warn_unanswerable(np.asarray(n), np.asarray(alpha, np.float64), np.ldexp(1.0, -n))

    count = sample_counts if sampler is None else sampler

    def run(k: jax.Array, num: int) -> jax.Array:
        return count(
            apply_fn,
            variables,
            x,
            k,
            num_samples=num,
            sigma=sigma,
            num_classes=num_classes,
            noise=noise,
            chunk_size=chunk_size,
            indices=indices,
            mode=mode,
            prng_impl=prng_impl,
            compute_dtype=compute_dtype,
            input_block=input_block,
            linear_stem=linear_stem,
        )

    counts0 = run(jax.random.fold_in(key, 0), n0)  # selection stream
    counts = run(jax.random.fold_in(key, 1), n)  # estimation stream
    counts0_np = np.asarray(counts0)
    counts_np = np.asarray(counts)
    top = np.argmax(counts0_np, axis=-1)
    n_a = np.take_along_axis(counts_np, top[..., None], axis=-1)[..., 0]
    p_lower = clopper_pearson_lower(n_a, np.full_like(n_a, n), alpha)
    sig = np.asarray(sigma, np.float64)
    radius, used = certified_radius(
        p_lower,
        sig[:, None] if sig.ndim == 1 else sig,
        int(np.shape(x)[-1]),
        noise=noise,
        norm=norm,
    )
    return CertifyResult(
        pred=np.where(p_lower >= 0.5, top, -1),
        radius=radius,
        p_a_lower=p_lower,
        top_class=top,
        counts_selection=counts0_np,
        counts=counts_np,
        norm=used,
        sigma=sig,
    )


def certified_accuracy(
    pred: Any,
    radius: Any,
    labels: Any,
    radii: Any,
    masks: Any | None = None,
) -> np.ndarray:
    """Certified accuracy per group at a grid of radii (Cohen et al. 2019, Fig. 1).

    ``acc[r, g] = sum_i masks[g, i] * [pred_i == labels_i and radius_i >= radii[r]]
    / sum_i masks[g, i]``. Abstentions (pred -1) never count as correct. An empty
    group gives NaN (no warning).

    Args:
      pred: int ``(n,)`` predictions, -1 = abstain (``CertifyResult.pred``).
      radius: float ``(n,)`` certified radii.
      labels: int ``(n,)`` true labels.
      radii: float ``(r,)`` radius grid.
      masks: bool ``(g, n)`` group masks; None means one group of everyone.

    Returns:
      float64 NumPy array ``(r, g)``.

    Raises:
      ValueError: shape mismatch.
    """
    pred = np.asarray(pred)
    radius = np.asarray(radius, np.float64)
    labels = np.asarray(labels)
    radii = np.atleast_1d(np.asarray(radii, np.float64))
    n_ex = pred.shape[0] if pred.ndim == 1 else -1
    if pred.ndim != 1 or radius.shape != (n_ex,) or labels.shape != (n_ex,):
        fail(
            "pred, radius, labels",
            "equal shapes (n,)",
            f"{pred.shape}, {radius.shape}, {labels.shape}",
        )
    m = np.ones((1, n_ex), bool) if masks is None else np.asarray(masks, bool)
    if radii.ndim != 1 or m.ndim != 2 or m.shape[1] != n_ex:
        fail("radii, masks", f"shapes (r,) and (g, {n_ex})", f"{radii.shape} and {m.shape}")
    ok = (pred == labels)[None, :] & (radius[None, :] >= radii[:, None])  # [r, n]
    sizes = m.sum(axis=1).astype(np.float64)  # [g]
    hits = ok.astype(np.float64) @ m.T.astype(np.float64)  # [r, g]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes[None, :] > 0, hits / sizes[None, :], np.nan)
