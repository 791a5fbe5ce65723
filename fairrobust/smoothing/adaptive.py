"""Adaptive (sequential) sampling for PREDICT and CERTIFY: stop an input once it is settled.

Fixed-N smoothing gives every input all N draws, even when its decision is settled
after a few hundred. Here draws come in rounds at a *look schedule*
``looks = (n_1 < n_2 < ... < n_L = N)`` (default :func:`look_schedule`: ``first``
rounded up to whole chunks, doubling up to N). After round k every still-active
input has the counts of its first ``n_k`` draws, and

* PREDICT (:func:`adaptive_predict`) returns the top class as soon as the two-sided
  binomial p-value of the top two counts is ``<= alpha / L``, abstains as soon as
  even N - n_k further draws all for the top class could not bring it to
  ``alpha / L`` (futility), and abstains at look L otherwise;
* CERTIFY (:func:`adaptive_certify`) bounds ``pA_lower_k = clopper_pearson_lower(nA_k,
  n_k, alpha / L)`` and stops when no later look could certify a larger radius of the
  caller's grid ``target_radius`` (the bounds at which the family's certificate reaches
  each radius: :func:`target_probability`), e.g. once the bound reaches the largest, or
  for futility when even ``nA_k + (N - n_k)`` successes in N could not give a bound of
  1/2; the radius is the certificate at the stopping look's bound.

"Settled" means: continuing could not change the decision the caller asked about
(a returned class; the largest radius of the grid certified; abstention that no
later look could undo). Inputs are sampled only while active, in blocks of the fixed forward
shape, so the cost is the draws actually used.

Guarantee (union bound over the looks). The draws are nested: input i's draws at
look k are the first ``n_k`` draws of the fixed-N stream (``sample_counts`` keys draw
j of input i by ``(indices[i], j)`` and ``draw_start`` continues the stream). For
each fixed k, the fixed-``n_k`` PREDICT at level ``alpha / L`` returns a class other
than g(x) with probability <= ``alpha / L`` (Cohen et al. 2019, Theorem 2), and the
fixed-``n_k`` Clopper-Pearson bound at level ``alpha / L`` exceeds pA with
probability <= ``alpha / L``. The adaptive rule can only err at the look where it
stops, and that error is the fixed-``n_k`` event of that look, so

    P(error) <= P(some look errs) <= sum_k alpha / L = alpha,

whatever the stopping rule (it may depend on all counts seen so far). Abstaining
never breaks either guarantee; the futility rules abstain only when no later look
could decide (both statistics are monotone in further successes), so they save draws
without changing a decision.

Cost of Bonferroni: at the last look the test runs at ``alpha / L`` instead of
alpha, so a few borderline inputs that fixed-N would predict or certify abstain (and
certified radii at the last look are slightly smaller). With ``looks = (N,)`` (one
look) both functions equal their fixed-N counterparts exactly.

Reference: J. Cohen, E. Rosenfeld, Z. Kolter. Certified adversarial robustness via
randomized smoothing. ICML 2019 (PREDICT, CERTIFY); sequential testing with
Bonferroni-split levels, e.g. C. Jennison, B. Turnbull, Group Sequential Methods, 2000.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._checks import check_int, concrete, fail
from fairrobust.models import ApplyFn
from fairrobust.smoothing.certification import (
    PVALUE_RTOL,
    binom_test_pvalue,
    certified_radius,
    clopper_pearson_lower,
    predict_pvalues,
)
from fairrobust.smoothing.noise import NoiseFn, noise_certificate
from fairrobust.smoothing.sampling import check_sigma, default_input_block, sample_counts

__all__ = [
    "DEFAULT_FIRST_LOOK",
    "AdaptiveCertifyResult",
    "AdaptivePredictResult",
    "adaptive_certify",
    "adaptive_predict",
    "certify_decisions",
    "check_looks",
    "look_schedule",
    "predict_decisions",
    "target_probability",
]

DEFAULT_FIRST_LOOK = 100
"""Draws before the first look of the default schedule (rounded up to whole chunks)."""


def look_schedule(num_samples: int, *, first: int = DEFAULT_FIRST_LOOK, chunk_size: int = 16):
    """The default looks: ``first`` rounded up to a multiple of ``chunk_size``, doubling to N.

    ``n_1 = ceil(first / chunk_size) * chunk_size``, ``n_{k+1} = 2 n_k`` while below N,
    then ``n_L = N`` (every look but the last is a whole number of chunks, so no round
    computes draws it does not count). ``first >= N`` gives the one look ``(N,)``.

    Args:
      num_samples: N >= 1, the largest number of draws per input.
      first: draws before the first look, >= 1.
      chunk_size: the sampler's draws per scan step, >= 1.

    Returns:
      tuple of ints, strictly increasing, ending at N. E.g. N = 2000, first = 100,
      chunk 16: ``(112, 224, 448, 896, 1792, 2000)``.

    Raises:
      ValueError: a bad ``num_samples``, ``first`` or ``chunk_size``.
    """
    n = check_int("num_samples", num_samples, 1)
    first = check_int("first", first, 1)
    chunk = check_int("chunk_size", chunk_size, 1)
    looks = []
    k = -(-first // chunk) * chunk
    while k < n:
        looks.append(k)
        k *= 2
    return (*looks, n)


def check_looks(looks: Sequence[int], num_samples: int, name: str = "looks") -> tuple[int, ...]:
    """Validated looks: integers ``1 <= n_1 < ... < n_L = num_samples``.

    Raises:
      ValueError: ``"looks: expected strictly increasing integers >= 1 ending at N ..."``.
    """
    what = f"strictly increasing integers >= 1 ending at num_samples={num_samples}"
    try:
        out = tuple(check_int(name, v, 1) for v in looks)
    except (TypeError, ValueError):
        fail(name, what, repr(looks))
    if not out or out[-1] != num_samples or any(a >= b for a, b in itertools.pairwise(out)):
        fail(name, what, repr(looks))
    return out


def _check_level(alpha: Any, allow_one: bool) -> float:
    """A concrete level in (0, 1) or (0, 1] (decisions are made on the host)."""
    a = concrete(alpha)
    hi = "1]" if allow_one else "1)"
    if a is None or a.ndim != 0 or not np.issubdtype(a.dtype, np.number):
        fail("alpha", f"a number in (0, {hi}", repr(alpha))
    v = float(a)
    if not (math.isfinite(v) and 0 < v and (v <= 1 if allow_one else v < 1)):
        fail("alpha", f"a number in (0, {hi}", repr(alpha))
    return v


# ------------------------------------------------------------------ decision rules


def _predict_look(
    counts: np.ndarray, k: int, looks: tuple[int, ...], level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PREDICT at look k: ``(top, pvalue, wins, stops)`` of cumulative counts ``(b, C)``."""
    top, p = predict_pvalues(counts)
    top2 = -np.sort(-counts, axis=-1)[..., :2]
    tol = level * (1.0 + PVALUE_RTOL)
    # Futility: the final p-value is at least that of the top class taking every
    # remaining draw (p decreases in nA, increases in nB; another class cannot do better).
    best = binom_test_pvalue(top2[..., 0] + (looks[-1] - looks[k]), top2[..., 1])
    wins = p <= tol
    stops = wins | (best > tol) | (k == len(looks) - 1)
    return top, p, wins, stops


def _half_tail(k: np.ndarray, n: int) -> np.ndarray:
    """``P(Bin(n, 1/2) >= k)`` from the two-sided p-value (symmetry at p = 1/2)."""
    k = np.asarray(k, np.int64)
    upper = k > n - k  # tail < 1/2: the p-value is twice it, unclipped
    kk = np.where(upper, k, n - k + 1)  # else P(X >= k) = 1 - P(X >= n - k + 1)
    t = binom_test_pvalue(np.clip(kk, 0, n), np.clip(n - kk, 0, n)) / 2.0
    return np.where(k <= 0, 1.0, np.where(upper, t, 1.0 - t))


def _p_grid(p_target: Any) -> np.ndarray:
    """The finite success thresholds of ``p_target`` (a bound or several), sorted."""
    p = np.atleast_1d(np.asarray(p_target, np.float64))
    return np.sort(p[np.isfinite(p)])


def _certify_look(
    n_a: np.ndarray, k: int, looks: tuple[int, ...], level: float, p_grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CERTIFY at look k: ``(pA_lower, stops)`` of cumulative counts of A ``(b,)``; the
    bound is computed where it is needed (for the settled test, or where an input stops)."""
    n_k, n_max = looks[k], looks[-1]
    # Futility: the bound increases with further successes, so nA_k + (N - n_k) of N is
    # the best any later look can reach, and clopper_pearson_lower(m, N, level) < 1/2 iff
    # P(Bin(N, 1/2) >= m) >= level (the bisection's first midpoint is 1/2): one betainc.
    stops = (_half_tail(n_a + (n_max - n_k), n_max) >= level) | (k == len(looks) - 1)
    p_lower = np.zeros(n_a.shape, np.float64)
    need = np.ones_like(stops) if p_grid.size else stops
    if np.any(need):
        p_lower[need] = clopper_pearson_lower(n_a[need], np.full(int(need.sum()), n_k), level)
    if p_grid.size:
        # Settled: the best bound any later look can reach falls in the same bin of the
        # radius grid (thresholds 1/2 < p(r_1) < ...) as this look's bound, so no later
        # look could certify a larger radius of the grid.
        live = ~stops
        best = clopper_pearson_lower(
            n_a[live] + (n_max - n_k), np.full(int(live.sum()), n_max), level
        )
        grid = np.concatenate([[0.5], p_grid])
        now = np.searchsorted(grid, p_lower[live], side="right")
        stops[live] = now == np.searchsorted(grid, best, side="right")
    return p_lower, stops


def predict_decisions(
    counts_at_looks: Any, looks: Sequence[int], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The adaptive PREDICT rule applied to cumulative counts at every look (no model).

    Input i stops at the first look k with ``pvalue(nA_k, nB_k) <= alpha / L`` (returns
    its top class), or ``pvalue(nA_k + N - n_k, nB_k) > alpha / L`` (futility: abstains),
    or at look L (abstains unless significant). Counts after an input's stopping look
    are ignored, so simulating with all draws gives exactly the live rule's decisions
    (:func:`adaptive_predict` applies the same per-look rule to the draws it makes).

    Args:
      counts_at_looks: int ``(L, b, C)``, the counts of the first ``n_k`` draws.
      looks: the schedule ``(n_1 < ... < n_L)``.
      alpha: level in (0, 1]; each look tests at ``alpha / L``.

    Returns:
      ``(pred int64 (b,), -1 = abstain; stop_look int64 (b,), index into looks)``.

    Raises:
      ValueError: bad ``looks``, ``alpha`` or counts shape.
    """
    c = np.asarray(counts_at_looks)
    looks = check_looks(looks, int(looks[-1]) if len(looks) else 0)
    level = _check_level(alpha, allow_one=True) / len(looks)
    if c.ndim != 3 or c.shape[0] != len(looks):
        fail("counts_at_looks", f"shape (L={len(looks)}, b, C)", repr(c.shape))
    pred = np.full(c.shape[1], -1, np.int64)
    stop = np.full(c.shape[1], -1, np.int64)
    for k in range(len(looks)):
        act = np.flatnonzero(stop < 0)
        top, _, wins, stops = _predict_look(c[k, act], k, looks, level)
        pred[act] = np.where(wins, top, -1)
        stop[act[stops]] = k
    return pred, stop


def certify_decisions(
    n_a_at_looks: Any, looks: Sequence[int], alpha: float, p_target: Any = math.inf
) -> tuple[np.ndarray, np.ndarray]:
    """The adaptive CERTIFY rule applied to counts of class A at every look (no model).

    Input i stops at the first look k where its decision is settled, or at look L; its
    bound is ``pA_lower_k = clopper_pearson_lower(nA_k, n_k, alpha / L)`` of that look
    (certified iff ``>= 1/2``). Settled: with ``best_k = clopper_pearson_lower(nA_k +
    N - n_k, N, alpha / L)`` the best bound any later look can reach, ``best_k < 1/2``
    (futility: never certified), or ``pA_lower_k`` and ``best_k`` fall in the same bin
    of the thresholds ``1/2 < p_target_1 < ...`` (no later look could reach a larger
    radius of the grid; with one threshold this includes ``pA_lower_k >= p_target``).

    Args:
      n_a_at_looks: int ``(L, b)``, counts of A in the first ``n_k`` estimation draws.
      looks: the schedule ``(n_1 < ... < n_L)``.
      alpha: level in (0, 1); each look bounds at ``alpha / L``.
      p_target: the bound(s) at which the certificate reaches each radius of a study's
        grid (:func:`target_probability`; inf entries are dropped); default inf: only
        futility stops early.

    Returns:
      ``(p_a_lower float64 (b,), stop_look int64 (b,))``.

    Raises:
      ValueError: bad ``looks``, ``alpha`` or counts.
    """
    c = np.asarray(n_a_at_looks)
    looks = check_looks(looks, int(looks[-1]) if len(looks) else 0)
    level = _check_level(alpha, allow_one=False) / len(looks)
    if c.ndim != 2 or c.shape[0] != len(looks):
        fail("n_a_at_looks", f"shape (L={len(looks)}, b)", repr(c.shape))
    p_lower = np.zeros(c.shape[1], np.float64)
    stop = np.full(c.shape[1], -1, np.int64)
    for k in range(len(looks)):
        act = np.flatnonzero(stop < 0)
        p_k, stops = _certify_look(c[k, act], k, looks, level, _p_grid(p_target))
        p_lower[act] = p_k
        stop[act[stops]] = k
    return p_lower, stop


def target_probability(
    target_radius: float,
    sigma: float,
    dim: int,
    *,
    noise: str | NoiseFn = "gaussian",
    norm: str | None = None,
) -> float:
    """The smallest ``pA_lower`` whose certificate reaches ``target_radius``.

    Bisection (float64, 200 halvings) on ``certified_radius``, which increases in p;
    the returned p satisfies ``certified_radius(p) >= target_radius``. ``inf`` when the
    family's radius never reaches the target for p < 1 (e.g. a bounded certificate).

    Args:
      target_radius: radius > 0 in the certificate's norm.
      sigma: noise std > 0.
      dim: coordinates the noise is added to (>= 1).
      noise, norm: the family and which of its certificates (as ``certify``).

    Returns:
      float in [1/2, 1), or ``math.inf``.

    Raises:
      ValueError: a bad radius, or a family without a certificate in ``norm``.
    """
    r = concrete(target_radius)
    if r is None or r.ndim != 0 or not (np.isfinite(r) and r > 0):
        fail("target_radius", "a finite radius > 0 (or None)", repr(target_radius))

    def reaches(p: float) -> bool:
        return bool(certified_radius(p, sigma, dim, noise=noise, norm=norm)[0] >= r)

    lo, hi = 0.5, float(np.nextafter(1.0, 0.0))
    if not reaches(hi):
        return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return hi


# ------------------------------------------------------------------ sampling in rounds


def _bucket(n_active: int, block: int, b: int) -> int:
    """Rows of a round: ``block * 2^j >= n_active`` (capped at b), so a shrinking active
    set reuses a few compiled shapes; the forward shape ``block * chunk`` never changes."""
    rows = block
    while rows < n_active:
        rows *= 2
    return min(rows, max(b, n_active))


def _rounds(
    count: Callable[..., Any],
    x: jax.Array,
    indices: np.ndarray,
    looks: tuple[int, ...],
    block: int,
    num_classes: int,
    on_look: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``[n_{k-1}, n_k)`` for the active inputs at each look; ``on_look(k, active,
    counts[active])`` returns which of them stop. Returns ``(counts (b, C), stop_look)``."""
    b = x.shape[0]
    counts = np.zeros((b, num_classes), np.int64)
    stop = np.full(b, -1, np.int64)
    prev = 0
    for k, n_k in enumerate(looks):
        act = np.flatnonzero(stop < 0)
        if act.size == 0:
            break
        rows = _bucket(act.size, block, b)
        sel = np.concatenate([act, np.full(rows - act.size, act[0])])  # pad: copies, dropped
        c = count(x[jnp.asarray(sel)], indices[sel], draw_start=prev, num_samples=n_k - prev)
        counts[act] += np.asarray(c)[: act.size]
        stop[act[on_look(k, act, counts[act])]] = k
        prev = n_k
    return counts, stop


def _sampler(
    sampler: Callable[..., Any] | None, apply_fn: ApplyFn, variables: Any, **kw: Any
) -> Callable[..., Any]:
    """``count(x, indices, *, draw_start, num_samples, key)`` with the fixed options bound."""
    fn = sample_counts if sampler is None else sampler

    def count(x: Any, idx: Any, **more: Any) -> Any:
        return fn(apply_fn, variables, x, more.pop("key"), indices=idx, **kw, **more)

    return count


def _setup(
    x: Any, indices: Any, sigma: Any, chunk_size: int, input_block: int | None
) -> tuple[jax.Array, np.ndarray, int]:
    """``(x, global indices, input_block)`` shared by both adaptive functions."""
    check_sigma(sigma)
    s = concrete(sigma)
    if s is None or s.ndim != 0:
        fail("sigma", "a concrete scalar > 0 (adaptive sampling takes one sigma)", repr(sigma))
    chunk_size = check_int("chunk_size", chunk_size, 1)
    x = jnp.asarray(x)
    if x.ndim != 2:
        fail("x", "a waveform batch of shape (batch, time)", repr(x.shape))
    b = x.shape[0]
    idx = np.arange(b, dtype=np.int32) if indices is None else np.asarray(indices)
    if idx.shape != (b,) or not np.issubdtype(idx.dtype, np.integer):
        fail("indices", f"integers of shape ({b},)", f"{idx.dtype} {idx.shape}")
    # The block of the whole call, as sample_counts would choose it: every round then
    # has the forward shape of the fixed-N run (bit-identical counts).
    if input_block is None:
        block = default_input_block(chunk_size, b)
    else:
        block = check_int("input_block", input_block, 1)
    return x, idx.astype(np.int32), block


class AdaptivePredictResult(NamedTuple):
    """Output of :func:`adaptive_predict` (host NumPy arrays, b inputs).

    Attributes:
      pred: int64 ``(b,)`` smoothed prediction, -1 = abstain.
      top_class: int64 ``(b,)`` top class at the stopping look.
      pvalue: float64 ``(b,)`` PREDICT p-value at the stopping look.
      counts: int64 ``(b, C)`` counts of the draws used.
      draws: int64 ``(b,)`` draws used (``looks[stop_look]``).
      stop_look: int64 ``(b,)`` index of the look each input stopped at.
      looks: the schedule.
    """

    pred: np.ndarray
    top_class: np.ndarray
    pvalue: np.ndarray
    counts: np.ndarray
    draws: np.ndarray
    stop_look: np.ndarray
    looks: tuple[int, ...]


def adaptive_predict(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    key: jax.Array,
    *,
    num_samples: int,
    alpha: float,
    sigma: float,
    num_classes: int,
    looks: Sequence[int] | None = None,
    first: int = DEFAULT_FIRST_LOOK,
    noise: str | NoiseFn = "gaussian",
    chunk_size: int = 16,
    indices: Any = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
    sampler: Callable[..., Any] | None = None,
) -> AdaptivePredictResult:
    """PREDICT of Cohen et al. (2019) with sequential looks: stop each input once settled.

    Draws ``[n_{k-1}, n_k)`` of every active input are counted at look k (the first
    ``n_k`` draws of ``sample_counts(key, num_samples=N)``); the rule is
    :func:`predict_decisions`: return the top class once ``pvalue <= alpha / L``,
    abstain once no remaining draws could get there, abstain at look L otherwise.

    Guarantee: P(return a class other than g(x)) <= alpha, by the union bound over
    the L looks of Cohen et al.'s Theorem 2 at level alpha / L each (module docstring).
    Cost: at look L the test is at alpha / L, so some inputs that fixed-N PREDICT at
    alpha answers abstain here. ``looks=(N,)`` is fixed-N PREDICT exactly.

    Args:
      apply_fn, variables, x, key, num_classes, noise, chunk_size, indices, mode,
        prng_impl, compute_dtype, input_block, linear_stem: as in ``sample_counts``
        (``input_block`` defaults to that of the whole call, kept in every round).
      num_samples: N, the most draws per input, >= 1.
      alpha: level in (0, 1].
      sigma: noise std, a scalar > 0.
      looks: the schedule ``(n_1 < ... < n_L = N)`` (default :func:`look_schedule`).
      first: first look of the default schedule.
      sampler: the counting function (default ``sample_counts``; e.g. a partial of
        ``engine.parallel.sample_counts``); must accept ``draw_start``.

    Returns:
      ``AdaptivePredictResult``; ``draws.sum()`` against ``b * N`` is the saving.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    n_max = check_int("num_samples", num_samples, 1)
    level = _check_level(alpha, allow_one=True)
    x, idx, block = _setup(x, indices, sigma, chunk_size, input_block)
    looks = (
        look_schedule(n_max, first=first, chunk_size=chunk_size)
        if looks is None
        else check_looks(looks, n_max)
    )
    level /= len(looks)
    b = x.shape[0]
    pred = np.full(b, -1, np.int64)
    top = np.zeros(b, np.int64)
    pval = np.ones(b, np.float64)

    def on_look(k: int, act: np.ndarray, counts: np.ndarray) -> np.ndarray:
        top[act], pval[act], wins, stops = _predict_look(counts, k, looks, level)
        pred[act] = np.where(wins, top[act], -1)
        return stops

    count = _sampler(
        sampler, apply_fn, variables, sigma=sigma, num_classes=num_classes, noise=noise,
        chunk_size=chunk_size, mode=mode, prng_impl=prng_impl, compute_dtype=compute_dtype,
        input_block=block, linear_stem=linear_stem,
    )  # fmt: skip
    counts, stop = _rounds(
        lambda xs, i, **kw: count(xs, i, key=key, **kw), x, idx, looks, block, num_classes,
        on_look,
    )  # fmt: skip
    draws = np.asarray(looks, np.int64)[stop]
    return AdaptivePredictResult(pred, top, pval, counts, draws, stop, looks)


class AdaptiveCertifyResult(NamedTuple):
    """Output of :func:`adaptive_certify` (host NumPy arrays, b inputs).

    Attributes:
      pred: int64 ``(b,)`` certified class, -1 = abstain.
      radius: float64 ``(b,)`` certified radius in ``norm`` at ``p_a_lower``, 0 when
        abstaining.
      p_a_lower: float64 ``(b,)`` Clopper-Pearson bound at level alpha / L of the
        stopping look.
      top_class: int64 ``(b,)`` class A from the selection draws.
      counts_selection: int32 ``(b, C)`` counts of the ``n0`` selection draws.
      counts: int64 ``(b, C)`` counts of the estimation draws used.
      draws: int64 ``(b,)`` estimation draws used (``looks[stop_look]``; every input
        also used the ``n0`` selection draws).
      stop_look: int64 ``(b,)`` index of the look each input stopped at.
      looks: the schedule.
      norm: the norm of the radius.
      p_target: float64 ``(t,)`` the bounds at which the certificate reaches each radius
        of ``target_radius`` (empty: only futility stopped inputs early).
    """

    pred: np.ndarray
    radius: np.ndarray
    p_a_lower: np.ndarray
    top_class: np.ndarray
    counts_selection: np.ndarray
    counts: np.ndarray
    draws: np.ndarray
    stop_look: np.ndarray
    looks: tuple[int, ...]
    norm: str
    p_target: np.ndarray


def adaptive_certify(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    key: jax.Array,
    *,
    n0: int,
    n: int,
    alpha: float,
    sigma: float,
    num_classes: int,
    noise: str | NoiseFn = "gaussian",
    norm: str | None = None,
    looks: Sequence[int] | None = None,
    first: int = DEFAULT_FIRST_LOOK,
    target_radius: float | Sequence[float] | None = None,
    chunk_size: int = 16,
    indices: Any = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
    sampler: Callable[..., Any] | None = None,
) -> AdaptiveCertifyResult:
    """CERTIFY of Cohen et al. (2019) with sequential looks on the estimation draws.

    1. ``A = argmax`` of ``n0`` selection draws (key ``fold_in(key, 0)``, as ``certify``);
    2. estimation draws (key ``fold_in(key, 1)``, the stream of ``certify``) in rounds
       at ``looks``; at look k ``pA_lower_k = clopper_pearson_lower(nA_k, n_k, alpha/L)``;
    3. an input stops when its decision on the radius grid is settled
       (:func:`certify_decisions`: ``pA_lower_k`` and the best bound a later look could
       reach fall between the same two radii of ``target_radius``; e.g. ``pA_lower_k``
       reaches the largest radius), for futility when even all remaining draws for A
       could not lift the bound at N to 1/2 (abstain), or at look L;
    4. ``pred = A`` and radius = the family's certificate at the stopping look's bound
       if it is >= 1/2, else abstain.

    Guarantee: with probability >= 1 - alpha the returned bound is <= pA, so g is
    constant on the returned ball: each look's bound exceeds pA with probability <=
    alpha / L (Clopper-Pearson at fixed n_k; draws are nested prefixes), and the union
    over the L looks is <= alpha. Cost: a bound at alpha / L is lower than at alpha,
    so inputs run to N get slightly smaller radii than fixed-N CERTIFY, and a few
    borderline ones abstain. With ``target_radius=None`` only futility stops early.
    ``looks=(n,)`` equals ``certify`` exactly. A family without a certificate is
    refused before sampling.

    Args:
      apply_fn, variables, x, key, num_classes, noise, norm, chunk_size, indices,
        mode, prng_impl, compute_dtype, input_block, linear_stem, sampler: as in
        ``certify`` (``sampler`` must accept ``draw_start``).
      n0: selection draws, >= 1.
      n: the most estimation draws per input, >= 1.
      alpha: failure probability in (0, 1).
      sigma: noise std, a scalar > 0.
      looks: the schedule ``(n_1 < ... < n_L = n)`` (default :func:`look_schedule`).
      first: first look of the default schedule.
      target_radius: the radii a study reports (a radius > 0 or a grid of them; 0 is
        dropped): an input is settled once no later look could certify it at a larger
        radius of the grid (or it reaches the largest); None: only futility stops.

    Returns:
      ``AdaptiveCertifyResult``; ``n0 * b + draws.sum()`` against ``(n0 + n) * b`` is
      the saving.

    Raises:
      ValueError: a bad parameter (the message names it), or a noise family without a
        certificate in ``norm``.
    """
    noise_certificate(noise, norm)  # refuse an uncertified family before sampling
    n0 = check_int("n0", n0, 1)
    n = check_int("n", n, 1)
    level = _check_level(alpha, allow_one=False)
    x, idx, block = _setup(x, indices, sigma, chunk_size, input_block)
    dim = int(x.shape[-1])
    radii = np.atleast_1d(np.asarray(() if target_radius is None else target_radius, float))
    if radii.ndim != 1 or not np.all(np.isfinite(radii) & (radii >= 0)):
        fail("target_radius", "None, a radius >= 0 or a 1-D grid of them", repr(target_radius))
    p_target = np.asarray(
        [target_probability(r, float(sigma), dim, noise=noise, norm=norm) for r in radii if r > 0]
    )
    looks = (
        look_schedule(n, first=first, chunk_size=chunk_size)
        if looks is None
        else check_looks(looks, n)
    )
    level /= len(looks)
    count = _sampler(
        sampler, apply_fn, variables, sigma=sigma, num_classes=num_classes, noise=noise,
        chunk_size=chunk_size, mode=mode, prng_impl=prng_impl, compute_dtype=compute_dtype,
        input_block=block, linear_stem=linear_stem,
    )  # fmt: skip
    counts0 = np.asarray(count(x, idx, key=jax.random.fold_in(key, 0), num_samples=n0))
    top = np.argmax(counts0, axis=-1)
    p_lower = np.zeros(x.shape[0], np.float64)

    def on_look(k: int, act: np.ndarray, counts: np.ndarray) -> np.ndarray:
        n_a = np.take_along_axis(counts, top[act, None], axis=-1)[:, 0]
        p_lower[act], stops = _certify_look(n_a, k, looks, level, _p_grid(p_target))
        return stops

    k1 = jax.random.fold_in(key, 1)
    counts, stop = _rounds(
        lambda xs, i, **kw: count(xs, i, key=k1, **kw), x, idx, looks, block, num_classes,
        on_look,
    )  # fmt: skip
    radius, used = certified_radius(p_lower, float(sigma), dim, noise=noise, norm=norm)
    return AdaptiveCertifyResult(
        pred=np.where(p_lower >= 0.5, top, -1),
        radius=radius,
        p_a_lower=p_lower,
        top_class=top,
        counts_selection=counts0,
        counts=counts,
        draws=np.asarray(looks, np.int64)[stop],
        stop_look=stop,
        looks=looks,
        norm=used,
        p_target=p_target,
    )
