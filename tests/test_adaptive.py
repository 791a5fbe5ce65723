"""Adaptive sampling: draw ranges of the sampler, the sequential PREDICT / CERTIFY rules.

Monte Carlo bounds: the simulated error rates are compared with alpha plus 3 standard
errors (failure probability < 0.0014 each if the rule holds its level; the Bonferroni
rule is far below alpha, so the real margin is much larger). The linear-classifier
radii hold with probability >= 1 - alpha = 0.999 per input (fixed keys).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from fairrobust import smoothing as S
from fairrobust.engine import parallel

T = 8
SIGMA = 0.25


def linear_apply(variables, x):
    w, b = variables
    return x @ w + b[None, :]


def axis_apply(variables, x):
    """Two-class linear model on the first coordinate: class 1 iff x[0] + b > 0."""
    z = x[:, 0] + variables
    return jnp.stack([-z, z], axis=-1)


@pytest.fixture(scope="module")
def linear3():
    w = jax.random.normal(jax.random.key(0), (T, 3))
    x = 0.2 * jax.random.normal(jax.random.key(1), (5, T))
    return (w, jnp.zeros((3,))), x


# ------------------------------------------------------------------ (a) draw ranges


@pytest.mark.parametrize(
    "mode,start",  # start a multiple of chunk_size and not
    [
        ("independent", 32),
        pytest.param("independent", 24, marks=pytest.mark.slow),  # CI time: 7 s
        ("shared_bank", 24),
    ],
)
def test_draw_range_counts_add_up(linear3, mode, start):
    variables, x = linear3
    kw = dict(sigma=SIGMA, num_classes=3, chunk_size=16, mode=mode, input_block=2)
    key = jax.random.key(7)
    m = 40  # not a whole number of chunks: draws >= start + m must not count
    full = S.sample_counts(linear_apply, variables, x, key, num_samples=start + m, **kw)
    head = S.sample_counts(linear_apply, variables, x, key, num_samples=start, **kw)
    tail = S.sample_counts(linear_apply, variables, x, key, num_samples=m, draw_start=start, **kw)
    np.testing.assert_array_equal(np.asarray(head) + np.asarray(tail), np.asarray(full))
    assert np.all(np.asarray(tail).sum(-1) == m)
    # global checkpoints inside the range: counts of draws [start, N_k)
    ck = (start + 10, start + m)
    part = S.sample_counts(
        linear_apply, variables, x, key, num_samples=m, draw_start=start, checkpoints=ck, **kw
    )
    whole = S.sample_counts(
        linear_apply, variables, x, key, num_samples=start + m, checkpoints=ck, **kw
    )
    np.testing.assert_array_equal(np.asarray(part) + np.asarray(head)[None], np.asarray(whole))
    # the engine (one device here) continues the same stream, either split
    mesh = parallel.device_mesh(jax.devices()[:1])
    for split in ("inputs", "draws"):
        eng = parallel.sample_counts(
            linear_apply, variables, x, key, num_samples=m, draw_start=start, split=split,
            mesh=mesh, **kw,
        )  # fmt: skip
        np.testing.assert_array_equal(eng, np.asarray(tail))


def test_draw_range_bad_arguments(linear3):
    variables, x = linear3
    kw = dict(sigma=SIGMA, num_classes=3, chunk_size=16, num_samples=32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="draw_start"):
        S.sample_counts(linear_apply, variables, x, key, draw_start=-1, **kw)
    with pytest.raises(ValueError, match=r"draw_start.*chunk_size"):
        S.sample_counts(linear_apply, variables, x, key, draw_start=8, prng_impl="rbg", **kw)
    with pytest.raises(ValueError, match="checkpoints"):  # checkpoints are global
        S.sample_counts(linear_apply, variables, x, key, draw_start=64, checkpoints=(32,), **kw)
    with pytest.raises(ValueError, match="draw_start"):
        S.sample_counts(linear_apply, variables, x, key, draw_start=2**31 - 8, **kw)


# ------------------------------------------------------------------ (b) simulation

B_SIM = 20_000


def _binomial_looks(rng, looks, b, p):
    """Cumulative successes ``(L, b)`` of Bernoulli(p) draws at the looks (nested)."""
    steps = np.diff(np.asarray((0, *looks)))
    return np.cumsum(rng.binomial(steps[:, None], p, size=(len(looks), b)), axis=0)


def _se(alpha):
    return math.sqrt(alpha * (1 - alpha) / B_SIM)


def test_look_schedule():
    assert S.look_schedule(2000) == (112, 224, 448, 896, 1792, 2000)
    assert S.look_schedule(1000, first=100, chunk_size=100) == (100, 200, 400, 800, 1000)
    assert S.look_schedule(50, first=100) == (50,)
    assert S.check_looks([10, 20, 30], 30) == (10, 20, 30)


def test_predict_rule_holds_alpha_at_the_worst_case():
    # pA = pB = 1/2: every returned class is an error (g(x) is not defined by a margin).
    alpha, looks = 0.05, S.look_schedule(1000, first=100, chunk_size=100)
    rng = np.random.default_rng(0)
    n_a = _binomial_looks(rng, looks, B_SIM, 0.5)
    counts = np.stack([n_a, np.asarray(looks)[:, None] - n_a], axis=-1)
    pred, stop = S.predict_decisions(counts, looks, alpha)
    err = np.mean(pred >= 0)
    assert err <= alpha + 3 * _se(alpha), err
    # the test has power: testing every look at alpha (no Bonferroni) exceeds alpha
    naive, _ = S.predict_decisions(counts, looks, min(1.0, alpha * len(looks)))
    assert np.mean(naive >= 0) > alpha + 3 * _se(alpha)
    # one look is fixed-N PREDICT
    one, _ = S.predict_decisions(counts[-1:], looks[-1:], alpha)
    np.testing.assert_array_equal(one, S.smoothed_predict(counts[-1], alpha))
    assert np.all(stop >= 0) and np.all(stop < len(looks))


def test_predict_rule_stops_early_when_settled():
    alpha, looks = 0.05, S.look_schedule(10_000, first=100, chunk_size=100)
    rng = np.random.default_rng(1)
    n_a = _binomial_looks(rng, looks, B_SIM, 0.9)
    counts = np.stack([np.asarray(looks)[:, None] - n_a, n_a], axis=-1)  # class 1 wins
    pred, stop = S.predict_decisions(counts, looks, alpha)
    draws = np.asarray(looks)[stop]
    assert np.mean(pred == 1) > 0.999
    assert draws.mean() < 0.5 * looks[-1], draws.mean()  # > 50% of draws saved
    # futility: a tie abstains before the end when no later look could decide
    # (1000 draws tied 500 / 500: 10 more could not reach alpha / 3), settled at look 2
    short = (100, 1000, 1010)
    tie = np.stack([np.asarray(short) // 2] * 2, axis=-1)[:, None, :]
    tie_pred, tie_stop = S.predict_decisions(tie, short, alpha)
    assert tie_pred[0] == -1 and tie_stop[0] == 1


@pytest.mark.parametrize(
    "p_a,p_target",
    [(0.5, math.inf), pytest.param(0.6, 0.55, marks=pytest.mark.slow), (0.9, 0.75)],
)
def test_certify_rule_covers_pa(p_a, p_target):
    alpha, looks = 0.05, S.look_schedule(2000, first=100, chunk_size=100)
    rng = np.random.default_rng(2)
    n_a = _binomial_looks(rng, looks, B_SIM, p_a)
    p_lower, stop = S.certify_decisions(n_a, looks, alpha, p_target)
    miss = np.mean(p_lower > p_a)
    assert miss <= alpha + 3 * _se(alpha), miss
    # the bound is that of the stopping look at alpha / L
    b_idx = np.arange(B_SIM)[:50]
    expect = S.clopper_pearson_lower(
        n_a[stop[b_idx], b_idx], np.asarray(looks)[stop[b_idx]], alpha / len(looks)
    )
    np.testing.assert_allclose(p_lower[b_idx], expect)
    if p_a == 0.9:  # settled early: > 50% of the estimation draws saved
        assert np.asarray(looks)[stop].mean() < 0.5 * looks[-1]
        assert np.mean(p_lower >= p_target) > 0.99


def test_certify_rule_one_look_is_clopper_pearson():
    rng = np.random.default_rng(3)
    n_a = rng.binomial(500, 0.7, size=(1, 100))
    p_lower, stop = S.certify_decisions(n_a, (500,), 0.01)
    np.testing.assert_array_equal(p_lower, S.clopper_pearson_lower(n_a[0], 500, 0.01))
    assert np.all(stop == 0)


def _certify_rule_oracle(n_a, looks, alpha, p_target):
    """The documented rule, input by input, with clopper_pearson_lower only: stop when
    the bound and the best later bound are in the same bin of 1/2 < p_target_1 < ..."""
    level, n_max = alpha / len(looks), looks[-1]
    grid = [0.5, *sorted(t for t in np.atleast_1d(p_target) if math.isfinite(t))]

    def bin_of(p):
        return sum(p >= t for t in grid)

    out_p, out_k = [], []
    for i in range(n_a.shape[1]):
        for k, n_k in enumerate(looks):
            p = float(S.clopper_pearson_lower(n_a[k, i], n_k, level))
            best = float(S.clopper_pearson_lower(n_a[k, i] + n_max - n_k, n_max, level))
            settled = bin_of(p) == bin_of(best) if len(grid) > 1 else best < 0.5
            if settled or k == len(looks) - 1:
                out_p.append(p)
                out_k.append(k)
                break
    return np.array(out_p), np.array(out_k)


@pytest.mark.parametrize(
    "p_target",
    [
        pytest.param(math.inf, marks=pytest.mark.slow),
        pytest.param(0.7, marks=pytest.mark.slow),
        (0.6, 0.7, 0.9),  # the grid rule, which covers the one-threshold and futility cases
    ],
)
def test_certify_rule_equals_its_definition(p_target):
    looks = (20, 40, 80, 100)
    rng = np.random.default_rng(4)
    n_a = np.concatenate(
        [_binomial_looks(rng, looks, 40, p) for p in (0.3, 0.5, 0.6, 0.8, 0.95)], axis=1
    )
    p_lower, stop = S.certify_decisions(n_a, looks, 0.05, p_target)
    ref_p, ref_k = _certify_rule_oracle(n_a, looks, 0.05, p_target)
    np.testing.assert_array_equal(stop, ref_k)
    np.testing.assert_allclose(p_lower, ref_p, rtol=1e-12)  # scalar vs batched bisection
    assert len(set(stop.tolist())) > 1  # the rule stops at several looks here


def test_target_probability_inverts_the_certificate():
    p = S.target_probability(0.5, 0.25, T)
    np.testing.assert_allclose(p, st.norm.cdf(2.0), rtol=1e-12)
    r, _ = S.certified_radius(p, 0.25, T)
    assert r >= 0.5


# ------------------------------------------------------------------ (c) linear model

MARGINS = SIGMA * np.array([0.0, 0.5, 1.0, 2.0, 3.0])


def _axis_inputs():
    x = np.zeros((len(MARGINS), T), np.float32)
    x[:, 0] = MARGINS
    return jnp.asarray(x)


def test_adaptive_certify_on_a_linear_classifier():
    x = _axis_inputs()
    kw = dict(n0=100, n=4000, alpha=0.001, sigma=SIGMA, num_classes=2, chunk_size=100)
    r = S.adaptive_certify(
        axis_apply, jnp.float32(0.0), x, jax.random.key(5), target_radius=SIGMA, **kw
    )
    assert r.looks == (100, 200, 400, 800, 1600, 3200, 4000)
    assert np.all(r.radius <= MARGINS + 1e-9), (r.radius, MARGINS)  # true distance
    np.testing.assert_array_equal(r.counts.sum(-1), r.draws)
    assert np.all(r.draws[-2:] < kw["n"])  # margins 2 and 3 sigma: settled early
    assert np.all(r.pred[-2:] == 1) and np.all(r.radius[-2:] >= SIGMA)
    # margin sigma / 2: pA = 0.69 can never reach the target (a bound of 0.84): settled,
    # certified below it, once no later look could reach it
    assert r.pred[1] == 1 and 0 < r.radius[1] < SIGMA
    best = S.clopper_pearson_lower(
        r.counts[1, 1] + kw["n"] - r.draws[1], kw["n"], kw["alpha"] / len(r.looks)
    )
    assert best < S.target_probability(SIGMA, SIGMA, T)
    # the draws used are the first n_k draws of the fixed-n estimation stream
    fixed = S.sample_counts(
        axis_apply, jnp.float32(0.0), x, jax.random.fold_in(jax.random.key(5), 1),
        num_samples=kw["n"], sigma=SIGMA, num_classes=2, chunk_size=100, checkpoints=r.looks,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(fixed)[r.stop_look, np.arange(len(MARGINS))], r.counts)


def test_adaptive_certify_with_one_look_is_certify():
    x = _axis_inputs()
    kw = dict(n0=50, n=1000, alpha=0.01, sigma=SIGMA, num_classes=2, chunk_size=50)
    key = jax.random.key(9)
    a = S.adaptive_certify(axis_apply, jnp.float32(0.0), x, key, looks=(1000,), **kw)
    c = S.certify(axis_apply, jnp.float32(0.0), x, key, **kw)
    for f in ("pred", "radius", "p_a_lower", "top_class", "counts_selection", "counts"):
        np.testing.assert_array_equal(getattr(a, f), getattr(c, f), err_msg=f)
    assert a.norm == c.norm and np.all(a.draws == 1000)
    # the engine's sampler gives the same adaptive result
    eng = functools.partial(parallel.sample_counts, mesh=parallel.device_mesh(jax.devices()[:1]))
    d = S.adaptive_certify(axis_apply, jnp.float32(0.0), x, key, sampler=eng, **kw)
    e = S.adaptive_certify(axis_apply, jnp.float32(0.0), x, key, **kw)
    np.testing.assert_array_equal(d.p_a_lower, e.p_a_lower)
    np.testing.assert_array_equal(d.draws, e.draws)


def test_adaptive_predict_on_a_linear_classifier():
    x = _axis_inputs()
    kw = dict(num_samples=2000, alpha=0.01, sigma=SIGMA, num_classes=2, chunk_size=100)
    key = jax.random.key(4)
    r = S.adaptive_predict(axis_apply, jnp.float32(0.0), x, key, **kw)
    fixed = S.sample_counts(
        axis_apply, jnp.float32(0.0), x, key, num_samples=2000, sigma=SIGMA, num_classes=2,
        chunk_size=100, checkpoints=r.looks,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(fixed)[r.stop_look, np.arange(5)], r.counts)
    np.testing.assert_array_equal(r.pred[1:], 1)  # pA >= 0.69: settled
    assert np.all(r.draws[2:] < 2000)
    one = S.adaptive_predict(axis_apply, jnp.float32(0.0), x, key, looks=(2000,), **kw)
    np.testing.assert_array_equal(one.pred, S.smoothed_predict(np.asarray(fixed)[-1], 0.01))


# ------------------------------------------------------------------ (d) bad arguments


@pytest.mark.parametrize(
    "bad,name",
    [
        ({"looks": (100, 50, 1000)}, "looks"),
        ({"looks": (100, 500)}, "looks"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"sigma": [0.1, 0.2]}, "sigma"),
        ({"n0": 0}, "n0"),
        ({"n": 0}, "n"),
        ({"target_radius": -1.0}, "target_radius"),
        ({"first": 0}, "first"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"noise": "laplace", "norm": "l2"}, "certificate"),
    ],
)
def test_adaptive_certify_bad_arguments(bad, name):
    kw = dict(n0=10, n=1000, alpha=0.01, sigma=SIGMA, num_classes=2) | bad
    with pytest.raises(ValueError, match=name):
        S.adaptive_certify(axis_apply, jnp.float32(0.0), _axis_inputs(), jax.random.key(0), **kw)


def test_adaptive_predict_and_rules_bad_arguments():
    kw = dict(num_samples=100, alpha=0.01, sigma=SIGMA, num_classes=2)
    x = _axis_inputs()
    with pytest.raises(ValueError, match="num_samples"):
        S.adaptive_predict(axis_apply, 0.0, x, jax.random.key(0), **(kw | {"num_samples": 0}))
    with pytest.raises(ValueError, match="alpha"):
        S.adaptive_predict(axis_apply, 0.0, x, jax.random.key(0), **(kw | {"alpha": 2.0}))
    with pytest.raises(ValueError, match="indices"):
        S.adaptive_predict(axis_apply, 0.0, x, jax.random.key(0), indices=[0, 1], **kw)
    with pytest.raises(ValueError, match="counts_at_looks"):
        S.predict_decisions(np.zeros((2, 3), np.int64), (10, 20), 0.05)
    with pytest.raises(ValueError, match="n_a_at_looks"):
        S.certify_decisions(np.zeros((3, 4), np.int64), (10, 20), 0.05)
    with pytest.raises(ValueError, match="looks"):
        S.certify_decisions(np.zeros((2, 4), np.int64), (20, 10), 0.05)
