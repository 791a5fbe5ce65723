"""Tests for fairrobust.smoothing: sampling invariants, statistics vs scipy, closed forms."""

import itertools
import math
import warnings

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from fairrobust import smoothing as S

T = 32  # tiny "waveform" length for the linear models


def linear_apply(variables, x):
    """Linear classifier logits = x @ W + b."""
    w, b = variables
    return x @ w + b[None, :]


def two_class_linear(margin_dir_norm=2.0, seed=0):
    """Two-class linear model whose logit difference is (w1 - w0) . x + (b1 - b0)."""
    w = jax.random.normal(jax.random.key(seed), (T, 2))
    w = w / jnp.linalg.norm(w[:, 1] - w[:, 0]) * margin_dir_norm
    return (w, jnp.zeros((2,)))


class TinyConv(nn.Module):
    """A tiny conv net standing in for M5."""

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(4, (5,), strides=(2,))(x[..., None])
        h = nn.relu(h).mean(axis=1)
        return nn.Dense(3)(h)


_CONV = TinyConv()


def conv_apply(variables, x):
    return _CONV.apply(variables, x)


def conv_setup():
    variables = _CONV.init(jax.random.key(3), jnp.zeros((1, T)))
    x = jax.random.uniform(jax.random.key(4), (5, T), minval=-1.0, maxval=1.0)
    return variables, x


# ----------------------------------------------------------------------------- p-values


def _pvalue_grid():
    pairs = set()
    for n in [1, 2, 3, 4, 5, 10, 11, 20, 37, 100, 1000, 10_000, 99_999, 10**6]:
        s = int(np.sqrt(n)) + 1
        ks = {0, 1, n // 2, (n + 1) // 2, n - 1, n}
        ks |= {int(n / 2 + d * s) for d in np.linspace(-7, 7, 57)}
        pairs |= {(k, n - k) for k in ks if 0 <= k <= n}
    return np.array(sorted(pairs))


def test_binom_pvalue_matches_scipy_on_grid():
    g = _pvalue_grid()
    p = S.binom_test_pvalue(g[:, 0], g[:, 1])
    ref = np.array([st.binomtest(int(a), int(a + b), 0.5).pvalue for a, b in g])
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, ref, atol=1e-6)
    big = ref > 1e-12
    np.testing.assert_allclose(p[big], ref[big], rtol=1e-4)
    assert big.sum() > 200 and (g.sum(1) == 10**6).sum() > 10


def test_binom_pvalue_hand_values():
    # 10 of 10: 2 * 0.5^10; equal counts: 1; no trials: 1; symmetric in its arguments.
    p = S.binom_test_pvalue(np.array([10, 5, 0, 3, 7]), np.array([0, 5, 0, 7, 3]))
    np.testing.assert_allclose(p, [2 * 0.5**10, 1.0, 1.0, p[4], p[3]], rtol=1e-12)
    assert np.all((p >= 0) & (p <= 1))


def test_predict_floor_alpha_0001_small_n():
    # All possible count vectors of N <= 10 draws over 3 classes abstain at alpha=1e-3.
    counts = np.array(
        [c for n in range(1, 11) for c in itertools.product(range(n + 1), repeat=3) if sum(c) == n]
    )
    with pytest.warns(UserWarning, match=r"N = 10 cannot reach alpha = 0\.001"):
        assert np.all(S.smoothed_predict(counts, 0.001) == -1)
    # ... whereas N = 11 unanimous draws do not (2 * 0.5^11 < 1e-3).
    assert S.smoothed_predict(np.array([[0, 11, 0]]), 0.001)[0] == 1


def test_predict_pvalues_top_two_and_sweep_shapes():
    counts = np.array([[[3, 90, 7], [50, 50, 0]], [[0, 0, 5], [1, 2, 3]]])  # [K=2, b=2, C]
    top, p = S.predict_pvalues(counts)
    assert top.shape == p.shape == (2, 2)
    assert top[0, 0] == 1 and p[0, 1] == 1.0
    np.testing.assert_allclose(p[0, 0], st.binomtest(90, 97, 0.5).pvalue, rtol=1e-9)
    alphas = np.array([0.001, 0.5, 1.0])[:, None, None]
    with pytest.warns(UserWarning, match="N = 5 cannot reach"):  # [0, 0, 5] at 0.001
        pred = S.smoothed_predict(counts, alphas)
    assert pred.shape == (3, 2, 2)
    assert np.all(pred[2] == top)  # alpha = 1 never abstains


def test_predict_at_exact_pvalue_alpha_predicts():
    # Exact p-values (k/2^m): binom_test_pvalue may land a few ulp above them, so the
    # rule compares with scipy's relative tolerance and predicts at alpha == p.
    rows = [(6, 1), (5, 0), (4, 1), (7, 1), (3, 0), (9, 3), (10, 0), (12, 4), (8, 0)]
    for a_cnt, b_cnt in rows:
        exact = st.binomtest(a_cnt, a_cnt + b_cnt, 0.5).pvalue
        num = sum(math.comb(a_cnt + b_cnt, k) for k in range(max(a_cnt, b_cnt), a_cnt + b_cnt + 1))
        assert exact == min(1.0, 2 * num / 2 ** (a_cnt + b_cnt))  # an exact binary fraction
        np.testing.assert_allclose(S.binom_test_pvalue([a_cnt], [b_cnt]), exact, rtol=1e-12)
        # Alone and inside a mixed batch (the float error depends on the batch).
        batch = np.array([[a_cnt, b_cnt, 0], [1000, 3, 2], [0, a_cnt, b_cnt]])
        for counts in (batch[:1], batch):
            pred = S.smoothed_predict(counts, exact)
            assert pred[0] == 0 and pred[-1] == (1 if len(counts) > 1 else 0)
        # Just below the exact p-value (beyond the tolerance) it abstains.
        with warnings.catch_warnings():  # (5, 0) and (3, 0): below N's floor
            warnings.simplefilter("ignore", UserWarning)
            assert S.smoothed_predict(batch[:1], exact * (1 - 1e-6))[0] == -1
    assert S.smoothed_predict(np.array([[6, 1]]), 0.125)[0] == 0


def test_smallest_answerable_alpha_closed_form_and_warning():
    n = np.array([0, 1, 2, 10, 11, 20])
    np.testing.assert_array_equal(
        S.smallest_answerable_alpha(n), np.minimum(1.0, 2 * 0.5 ** n.astype(float))
    )
    # It is the p-value of N unanimous draws, and alpha at the floor answers silently.
    for k in [1, 5, 10, 20]:
        floor = float(S.smallest_answerable_alpha(k))
        np.testing.assert_allclose(S.binom_test_pvalue([k], [0]), floor, rtol=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert S.smoothed_predict(np.array([[k, 0]]), floor)[0] == 0
        with pytest.warns(UserWarning, match=rf"N = {k} cannot reach alpha"):
            assert S.smoothed_predict(np.array([[k, 0]]), floor / 2)[0] == -1
    with warnings.catch_warnings():  # N = 11 reaches 1e-3: silent
        warnings.simplefilter("error")
        S.smoothed_predict(np.array([[0, 11, 0]]), 0.001)
    with pytest.raises(ValueError, match="num_samples"):
        S.smallest_answerable_alpha(-1)


# ----------------------------------------------------------------------------- Clopper-Pearson


def test_clopper_pearson_matches_scipy():
    rows = [(k, n) for n in [1, 2, 10, 100, 1000, 10**5] for k in {0, 1, n // 3, n // 2, n - 1, n}]
    k, n = np.array(rows).T
    for alpha in [0.001, 0.05, 0.5]:
        got = S.clopper_pearson_lower(k, n, alpha)
        ref = np.where(k == 0, 0.0, st.beta.ppf(alpha, np.maximum(k, 1), n - k + 1))
        np.testing.assert_allclose(got, ref, atol=1e-6)
    # k = n has the closed form alpha^(1/n).
    np.testing.assert_allclose(S.clopper_pearson_lower(7, 7, 0.01), 0.01 ** (1 / 7), atol=1e-12)


def test_certify_floor_needs_n_ge_10():
    assert S.clopper_pearson_lower(9, 9, 0.001) < 0.5 <= S.clopper_pearson_lower(10, 10, 0.001)
    # A constant classifier: unanimous counts, so only n >= 10 can certify.
    const = two_class_linear()
    const = (jnp.zeros_like(const[0]), jnp.array([0.0, 5.0]))
    x = jnp.zeros((3, T))
    for n, certified in [(9, False), (10, True)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = S.certify(
                linear_apply,
                const,
                x,
                jax.random.key(0),
                n0=9,  # shares the compiled sampler with n = 9
                n=n,
                alpha=0.001,
                sigma=0.25,
                num_classes=2,
            )
        # The answerability warning fires exactly when nothing can be certified.
        assert [str(w.message) for w in caught if w.category is UserWarning] == (
            [] if certified else ["randomized smoothing abstains on every input: N = 9 cannot "
                                  "reach alpha = 0.001 (smallest answerable alpha 0.00195312)"]
        )  # fmt: skip
        assert np.all((r.pred == 1) == certified)
        assert np.all((r.radius > 0) == certified)


# ----------------------------------------------------------------------------- sampling invariants


@pytest.mark.parametrize("chunk", [1, 7, 16])
def test_counts_identical_across_chunk_sizes(chunk):
    variables, x = conv_setup()
    kw = dict(num_samples=45, sigma=0.3, num_classes=3)  # 45 is no multiple of 7 or 16
    ref = S.sample_counts(conv_apply, variables, x, jax.random.key(7), chunk_size=45, **kw)
    got = S.sample_counts(conv_apply, variables, x, jax.random.key(7), chunk_size=chunk, **kw)
    chex.assert_trees_all_equal(got, ref)
    assert got.dtype == jnp.int32 and got.shape == (5, 3)
    assert np.all(np.asarray(got).sum(-1) == 45)


def test_counts_independent_of_batch_composition():
    variables, x = conv_setup()
    kw = dict(num_samples=30, sigma=0.5, num_classes=3, chunk_size=8)
    full = S.sample_counts(conv_apply, variables, x, jax.random.key(1), **kw)
    sub = S.sample_counts(
        conv_apply, variables, x[jnp.array([3, 1])], jax.random.key(1), indices=[3, 1], **kw
    )
    chex.assert_trees_all_equal(sub, full[jnp.array([3, 1])])
    single = S.sample_counts(conv_apply, variables, x[4:], jax.random.key(1), indices=[4], **kw)
    chex.assert_trees_all_equal(single[0], full[4])


def test_checkpoints_are_prefixes_of_one_stream():
    variables, x = conv_setup()
    kw = dict(sigma=0.5, num_classes=3, chunk_size=6)
    nested = S.sample_counts(
        conv_apply, variables, x, jax.random.key(2), num_samples=50, checkpoints=(5, 13, 50), **kw
    )
    assert nested.shape == (3, 5, 3)
    for i, n in enumerate((5, 13, 50)):
        alone = S.sample_counts(conv_apply, variables, x, jax.random.key(2), num_samples=n, **kw)
        chex.assert_trees_all_equal(nested[i], alone)
    assert np.all(np.diff(np.asarray(nested), axis=0) >= 0)


def test_jit_no_retrace_across_sigma():
    traced = chex.assert_max_traces(n=1)(lambda v, x: linear_apply(v, x))
    variables = two_class_linear()
    x = jnp.zeros((2, T))
    outs = [
        S.sample_counts(
            traced, variables, x, jax.random.key(0), num_samples=8, sigma=s, num_classes=2
        )
        for s in [0.1, 0.2, np.float32(0.3), jnp.asarray(0.4)]
    ]
    assert all(o.shape == (2, 2) for o in outs)


def test_numpy_float64_input_equals_float32():
    variables, x = conv_setup()
    kw = dict(num_samples=10, num_classes=3, chunk_size=5)
    a = S.sample_counts(
        conv_apply,
        variables,
        np.asarray(x, np.float64),
        jax.random.key(0),
        sigma=np.float64(0.2),
        **kw,
    )
    b = S.sample_counts(conv_apply, variables, x, jax.random.key(0), sigma=0.2, **kw)
    chex.assert_trees_all_equal(a, b)


def test_sample_counts_under_outer_jit_matches_eager():
    variables, x = conv_setup()

    @jax.jit
    def run(sigma):
        return S.sample_counts(
            conv_apply, variables, x, jax.random.key(5), num_samples=20, sigma=sigma, num_classes=3
        )

    eager = S.sample_counts(
        conv_apply, variables, x, jax.random.key(5), num_samples=20, sigma=0.4, num_classes=3
    )
    chex.assert_trees_all_equal(run(0.4), eager)


# ----------------------------------------------------------------------------- noise families


@pytest.mark.parametrize("name", ["gaussian", "laplace", "uniform"])
def test_noise_families_unit_std(name):
    fn = S.resolve_noise(name)
    z = np.asarray(fn(jax.random.key(0), (200_000,), jnp.float32))
    # std error of the sample variance is < 0.01 for these families at n = 2e5.
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1.0) < 0.03
    kurt = {"gaussian": 3.0, "laplace": 6.0, "uniform": 1.8}[name]
    assert abs(st.kurtosis(z, fisher=False) - kurt) < 0.3


@pytest.mark.parametrize("name", ["gaussian", "laplace", "uniform"])
def test_noise_families_through_sampler(name):
    # P(x0 + sigma * eps > t) with a threshold classifier, vs the family's closed form.
    w = jnp.zeros((T, 2)).at[0, 1].set(1.0)
    variables = (w, jnp.array([0.0, -0.1]))  # class 1 iff x0 + eps0 > 0.1
    sigma, n = 0.2, 20_000
    counts = S.sample_counts(
        linear_apply,
        variables,
        jnp.zeros((1, T)),
        jax.random.key(9),
        num_samples=n,
        sigma=sigma,
        num_classes=2,
        noise=name,
        chunk_size=500,
    )
    z = 0.1 / sigma
    p = {
        "gaussian": st.norm.sf(z),
        "laplace": st.laplace.sf(z, scale=1 / np.sqrt(2)),
        "uniform": st.uniform.sf(z, loc=-np.sqrt(3), scale=2 * np.sqrt(3)),
    }[name]
    se = np.sqrt(p * (1 - p) / n)
    # 4 standard errors: failure probability ~6e-5 per family.
    assert abs(int(counts[0, 1]) / n - p) < 4 * se


def test_plugin_noise_and_registry():
    def zero_noise(key, shape, dtype):
        return jnp.zeros(shape, dtype)

    variables, x = conv_setup()
    clean = jnp.argmax(conv_apply(variables, x), axis=-1)
    counts = S.sample_counts(
        conv_apply,
        variables,
        x,
        jax.random.key(0),
        num_samples=9,
        sigma=1.0,
        num_classes=3,
        noise=zero_noise,
    )
    chex.assert_trees_all_equal(counts, 9 * jax.nn.one_hot(clean, 3, dtype=jnp.int32))
    S.register_noise("test_zero", zero_noise, overwrite=True)
    assert "test_zero" in S.available_noises()
    by_name = S.sample_counts(
        conv_apply,
        variables,
        x,
        jax.random.key(0),
        num_samples=9,
        sigma=1.0,
        num_classes=3,
        noise="test_zero",
    )
    chex.assert_trees_all_equal(by_name, counts)
    with pytest.raises(ValueError, match="already registered"):
        S.register_noise("gaussian", zero_noise)


# ----------------------------------------------------------------------------- closed forms


def test_linear_classifier_matches_closed_form_and_radius():
    # f(x) = argmax(x @ W + b), two classes: class 1 iff d . x + c > 0 with d = w1 - w0.
    variables = two_class_linear(margin_dir_norm=2.0)
    w, _ = variables
    d = np.asarray(w[:, 1] - w[:, 0])
    xs = np.stack([d / np.dot(d, d) * m for m in (0.05, 0.2, 0.4)]).astype(np.float32)
    sigma, n = 0.25, 20_000
    counts = np.asarray(
        S.sample_counts(
            linear_apply,
            variables,
            jnp.asarray(xs),
            jax.random.key(11),
            num_samples=n,
            sigma=sigma,
            num_classes=2,
            chunk_size=250,
        )
    )
    margin = xs @ d  # the logit gap; distance to the boundary is margin / ||d||
    p_true = st.norm.cdf(margin / (sigma * np.linalg.norm(d)))
    p_hat = counts[:, 1] / n
    se = np.sqrt(p_true * (1 - p_true) / n)
    # Four standard errors per input: failure probability < 2e-4 for the three inputs.
    assert np.all(np.abs(p_hat - p_true) < 4 * se)

    # CERTIFY: radius = sigma * Phi^-1(pA_lower) from the counts, below the true
    # distance |margin| / ||d|| (w.p. >= 1 - alpha) and approaching it as n grows.
    true_radius = np.abs(margin) / np.linalg.norm(d)
    gaps = []
    for n_est in (100, 1000, 20_000):
        r = S.certify(
            linear_apply,
            variables,
            jnp.asarray(xs),
            jax.random.key(12),
            n0=50,
            n=n_est,
            alpha=0.001,
            sigma=sigma,
            num_classes=2,
            chunk_size=250,
        )
        n_a = r.counts[np.arange(3), r.top_class]
        expect = np.where(
            r.p_a_lower >= 0.5, sigma * st.norm.ppf(st.beta.ppf(0.001, n_a, n_est - n_a + 1)), 0.0
        )
        np.testing.assert_allclose(r.radius, expect, atol=1e-6)
        assert np.all(r.radius <= true_radius + 1e-9)
        assert np.all((r.pred == -1) | (r.pred == 1))
        gaps.append(true_radius[-1] - r.radius[-1])
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.25 * true_radius[-1]


def test_certified_accuracy_by_group():
    pred = np.array([0, 1, -1, 2, 1])
    radius = np.array([0.5, 0.1, 0.0, 1.0, 0.3])
    labels = np.array([0, 1, 1, 2, 0])
    masks = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    acc = S.certified_accuracy(pred, radius, labels, np.array([0.0, 0.2, 0.8]), masks)
    np.testing.assert_allclose(acc[:, :2], [[2 / 3, 1 / 2], [1 / 3, 1 / 2], [0.0, 1 / 2]])
    assert np.all(np.isnan(acc[:, 2]))
    np.testing.assert_allclose(S.certified_accuracy(pred, radius, labels, [0.0]), [[3 / 5]])


# ----------------------------------------------------------------------------- shared bank


def test_shared_bank_counts_statistically_match_independent():
    # Same marginal law: for each input, counts of class 1 are Binomial(n, p_i) in both
    # modes. Compare the two independent estimates with a two-sample z bound of 4.5
    # standard errors (failure probability ~7e-6 per input, ~3e-5 over 4 inputs).
    variables = two_class_linear(margin_dir_norm=1.0, seed=3)
    w, _ = variables
    d = np.asarray(w[:, 1] - w[:, 0])
    xs = jnp.asarray(np.stack([d / np.dot(d, d) * m for m in (-0.1, 0.0, 0.1, 0.3)]), jnp.float32)
    kw = dict(num_samples=20_000, sigma=0.3, num_classes=2, chunk_size=200)
    ind = np.asarray(S.sample_counts(linear_apply, variables, xs, jax.random.key(1), **kw))
    bank = np.asarray(
        S.sample_counts(linear_apply, variables, xs, jax.random.key(2), mode="shared_bank", **kw)
    )
    n = kw["num_samples"]
    p_true = st.norm.cdf(np.asarray(xs) @ d / (0.3 * np.linalg.norm(d)))
    pooled = (ind[:, 1] + bank[:, 1]) / (2 * n)
    se = np.sqrt(2 * pooled * (1 - pooled) / n)
    assert np.all(np.abs(ind[:, 1] - bank[:, 1]) / n < 4.5 * se)
    assert np.all(np.abs(bank[:, 1] / n - p_true) < 4.5 * np.sqrt(p_true * (1 - p_true) / n))
    # The bank really is shared: the noise of draw j is the same for every input, so with
    # identical inputs the counts are identical.
    same = jnp.broadcast_to(xs[:1], (3, T))
    shared = S.sample_counts(
        linear_apply, variables, same, jax.random.key(0), mode="shared_bank", **kw
    )
    assert np.all(np.asarray(shared) == np.asarray(shared)[0])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(num_samples=0), "num_samples"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(num_classes=1), "num_classes"),
        (dict(noise="pink"), "gaussian"),
        (dict(mode="fast"), "mode"),
        (dict(checkpoints=(10, 1000)), "checkpoints"),
        (dict(num_classes=3), "logits"),
    ],
)
def test_sample_counts_bad_input(kwargs, match):
    base = dict(num_samples=100, sigma=0.1, num_classes=2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        S.sample_counts(
            linear_apply, two_class_linear(), jnp.zeros((2, T)), jax.random.key(0), **base
        )


def test_bad_inputs_raise():
    v = two_class_linear()
    with pytest.raises(ValueError, match="NaN"):
        S.sample_counts(
            linear_apply,
            v,
            jnp.full((1, T), jnp.nan),
            jax.random.key(0),
            num_samples=2,
            sigma=0.1,
            num_classes=2,
        )
    with pytest.raises(ValueError, match="shape"):
        S.sample_counts(
            linear_apply,
            v,
            jnp.zeros((T,)),
            jax.random.key(0),
            num_samples=2,
            sigma=0.1,
            num_classes=2,
        )
    common = dict(n0=1, n=10, alpha=0.01, sigma=0.1, num_classes=2)
    for bad, match in [(dict(n0=0), "n0"), (dict(alpha=1.0), "alpha"), (dict(alpha=0.0), "alpha")]:
        with pytest.raises(ValueError, match=match):
            S.certify(linear_apply, v, jnp.zeros((1, T)), jax.random.key(0), **{**common, **bad})
    with pytest.raises(ValueError, match="alpha"):
        S.smoothed_predict(np.array([[3, 1]]), 1.5)
    with pytest.raises(ValueError, match="alpha"):
        S.clopper_pearson_lower(3, 5, 1.0)
    with pytest.raises(ValueError, match="k <= n"):
        S.clopper_pearson_lower(6, 5, 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        S.binom_test_pvalue(np.array([-1]), np.array([2]))
    with pytest.raises(ValueError, match="masks"):
        S.certified_accuracy([0], [0.1], [0], [0.0], np.ones((2, 3), bool))
