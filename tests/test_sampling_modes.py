"""Faster sampling modes (prng_impl, compute_dtype, shared bank): same count distribution.

Each mode's counts are compared with the default mode's (fresh, independent keys) by a
two-sample z bound of 4.5 standard errors per input, and with the closed form of a
linear classifier under Gaussian noise, P(class 1) = Phi(d.x / (sigma |d|)). Failure
probability ~7e-6 per comparison, < 1e-3 over this file.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from fairrobust import models
from fairrobust import smoothing as S

T = 32
N = 20_000
SIGMA = 0.3


def linear_apply(variables, x):
    w, b = variables
    return x @ w.astype(x.dtype) + b.astype(x.dtype)[None, :]


@pytest.fixture(scope="module")
def setup():
    w = jax.random.normal(jax.random.key(3), (T, 2))
    w = w / jnp.linalg.norm(w[:, 1] - w[:, 0])
    variables = (w, jnp.zeros((2,)))
    d = np.asarray(w[:, 1] - w[:, 0])
    xs = jnp.asarray(np.stack([d / np.dot(d, d) * m for m in (-0.1, 0.0, 0.1, 0.3)]), jnp.float32)
    p_true = st.norm.cdf(np.asarray(xs) @ d / (SIGMA * np.linalg.norm(d)))
    kw = dict(num_samples=N, sigma=SIGMA, num_classes=2, chunk_size=250)
    default = np.asarray(S.sample_counts(linear_apply, variables, xs, jax.random.key(1), **kw))
    return variables, xs, p_true, kw, default


def _indistinguishable(a, b, p_true):
    pooled = (a[:, 1] + b[:, 1]) / (2 * N)
    se = np.sqrt(2 * pooled * (1 - pooled) / N)
    assert np.all(np.abs(a[:, 1] - b[:, 1]) / N < 4.5 * se), (a[:, 1], b[:, 1])
    assert np.all(np.abs(b[:, 1] / N - p_true) < 4.5 * np.sqrt(p_true * (1 - p_true) / N))
    assert np.all(b.sum(-1) == N)


@pytest.mark.parametrize(
    "opts",
    [
        {"prng_impl": "rbg"},
        {"prng_impl": "unsafe_rbg"},
        {"prng_impl": "threefry2x32"},
        {"compute_dtype": "bfloat16"},
        {"mode": "shared_bank", "prng_impl": "rbg", "compute_dtype": "bfloat16"},
    ],
    ids=lambda o: "+".join(f"{v}" for v in o.values()),
)
def test_mode_counts_match_default(setup, opts):
    variables, xs, p_true, kw, default = setup
    out = np.asarray(S.sample_counts(linear_apply, variables, xs, jax.random.key(2), **kw, **opts))
    _indistinguishable(default, out, p_true)


def test_rekeyed_threefry_stream_is_chunk_and_batch_invariant(setup):
    variables, xs, _, _, _ = setup
    kw = dict(num_samples=300, sigma=SIGMA, num_classes=2, prng_impl="threefry2x32")
    a = S.sample_counts(linear_apply, variables, xs, jax.random.key(0), chunk_size=7, **kw)
    b = S.sample_counts(linear_apply, variables, xs, jax.random.key(0), chunk_size=100, **kw)
    c = S.sample_counts(
        linear_apply, variables, xs[2:], jax.random.key(0), chunk_size=13,
        indices=jnp.arange(2, 4), **kw,
    )  # fmt: skip
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a)[2:], np.asarray(c))
    # A re-keyed generator is a different stream (same law, different draws).
    d = S.sample_counts(linear_apply, variables, xs, jax.random.key(0), chunk_size=7,
                        num_samples=300, sigma=SIGMA, num_classes=2)  # fmt: skip
    assert not np.array_equal(np.asarray(a), np.asarray(d))


def test_rbg_inputs_get_distinct_noise_and_calls_reproduce(setup):
    # Identical inputs must not share noise in mode "independent" (the block of a step
    # is one stream, row i for input i), and the same call gives the same counts.
    variables, xs, _, _, _ = setup
    same = jnp.broadcast_to(xs[1:2], (4, T))
    kw = dict(num_samples=400, sigma=SIGMA, num_classes=2, chunk_size=50, prng_impl="rbg")
    a = np.asarray(S.sample_counts(linear_apply, variables, same, jax.random.key(0), **kw))
    b = np.asarray(S.sample_counts(linear_apply, variables, same, jax.random.key(0), **kw))
    np.testing.assert_array_equal(a, b)
    assert len({int(v) for v in a[:, 1]}) > 1


def test_float32_compute_dtype_is_default(setup):
    variables, xs, _, _, _ = setup
    kw = dict(num_samples=64, sigma=SIGMA, num_classes=2)
    a = S.sample_counts(linear_apply, variables, xs, jax.random.key(0), **kw)
    b = S.sample_counts(
        linear_apply, variables, xs, jax.random.key(0), compute_dtype="float32", **kw
    )
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "opts, match",
    [({"prng_impl": "philox"}, "prng_impl"), ({"compute_dtype": "int8"}, "compute_dtype")],
)
def test_bad_mode_options_raise(setup, opts, match):
    variables, xs, _, _, _ = setup
    with pytest.raises(ValueError, match=match):
        S.sample_counts(linear_apply, variables, xs, jax.random.key(0), num_samples=10,
                        sigma=SIGMA, num_classes=2, **opts)  # fmt: skip


# ----------------------------------------------------------------------------- linear stem

TM = 6848  # models.min_input_len(): the shortest input M5 takes


def _randomised(variables, seed):
    """Every parameter and BatchNorm statistic perturbed, so the head's formulas are tested."""
    rng = np.random.default_rng(seed)

    def one(path, a):
        z = rng.standard_normal(a.shape).astype(np.float32)
        return jnp.asarray(np.exp(0.3 * z) if path[-1].key == "var" else np.asarray(a) + 0.1 * z)

    return jax.tree_util.tree_map_with_path(one, variables)


def _stem_models():
    cases = [
        (name, w, norm)
        for name in ("m5", "m5-tricks")
        for w in (8, 32)
        for norm in ("standardize", "none")
    ]
    out = [models.make_model(n, 5, width=w, normalize=z) for n, w, z in cases]
    if "conv_impl" in models.M5.__dataclass_fields__:  # the stem follows the model's conv
        out.append(models.M5(5, width=8, conv_impl="matmul"))
    return out


@pytest.mark.parametrize(
    "model",
    _stem_models(),
    ids=lambda m: f"{m.tricks}-{m.width}-{m.normalize}-{getattr(m, 'conv_impl', 'lax')}",
)
def test_linear_stem_reproduces_logits(model):
    v = _randomised(models.init_variables(model, jax.random.key(0), TM), 5)
    ls = models.linear_stem_fn(model)
    assert ls is models.linear_stem_fn(model.clone())  # memoised: equal models, one object
    x = jax.random.uniform(jax.random.key(1), (3, TM), minval=-0.5, maxval=0.5) + 0.05
    eps = jax.random.normal(jax.random.key(2), (4, TM))
    sigma = 0.25
    ref = jax.jit(models.logits_fn(model))(v, (x[:, None] + sigma * eps[None]).reshape(12, TM))

    @jax.jit
    def via_stem(v, x, eps):
        return ls.head(v, ls.h1(v, x, ls.stem(v, x), eps, ls.stem(v, eps), sigma))

    np.testing.assert_allclose(via_stem(v, x, eps), ref, rtol=1e-4, atol=1e-4)
    # The pieces by hand: S is conv1 without bias, h1 = (Sx + s Seps - m ksum) * rstd.
    k1 = v["params"]["conv1"]["kernel"]
    sx = ls.stem(v, x)
    np.testing.assert_allclose(sx, models.conv1d(x[:, :, None], k1, 16), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ls.ksum(v), k1.sum(axis=(0, 1)), rtol=1e-6)
    z = np.asarray(x[:, None] + sigma * eps[None], np.float64)  # [3, 4, T]
    m, rstd = models.linear_stem_stats(x, eps, sigma)
    np.testing.assert_allclose(m, z.mean(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(z.var(-1) + 1e-8), rtol=1e-4)
    assert ls.standardize == (model.normalize == "standardize")


def test_linear_stem_combine_shapes_and_order():
    sx = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
    seps = -jnp.ones((4, 3, 2))
    m = jnp.arange(8, dtype=jnp.float32).reshape(2, 4)
    rstd = jnp.full((2, 4), 2.0)
    ksum = jnp.asarray([1.0, 0.0])
    h = models.linear_stem_combine(sx, seps, m, rstd, ksum, 0.5)
    assert h.shape == (8, 3, 2)
    i, j = 1, 2  # row i * n + j
    np.testing.assert_allclose(h[i * 4 + j], (sx[i] - 0.5 - m[i, j] * ksum[None, :]) * 2.0)
    np.testing.assert_allclose(models.linear_stem_combine(sx, seps, None, None, None, 0.5)[5],
                               sx[1] - 0.5)  # fmt: skip


@pytest.fixture(scope="module")
def stem_setup():
    """Width-8 M5, 2 classes, dense bias set so that input 0 is near p = 1/2 under noise."""
    model = models.make_model("m5", 2, width=8)
    v = _randomised(models.init_variables(model, jax.random.key(0), TM), 7)
    f = models.logits_fn(model)
    x = jax.random.uniform(jax.random.key(1), (4, TM), minval=-0.5, maxval=0.5)
    x = x * jnp.asarray([1.0, 0.8, 0.6, 1.2])[:, None]
    pilot = x[:, None] + SIGMA_M5 * jax.random.normal(jax.random.key(3), (1, 64, TM))
    logits = jax.jit(f)(v, pilot.reshape(-1, TM))
    diff = np.asarray(logits[:, 1] - logits[:, 0])
    v["params"]["dense"]["bias"] = jnp.asarray([0.0, -float(np.median(diff))])
    return model, v, f, x


SIGMA_M5 = 0.25


def test_linear_stem_counts_match_shared_bank_draw_by_draw(stem_setup):
    # Same key, same bank: per-draw classes (from a checkpoint at every draw) agree
    # except where the float rounding of the two formulations flips a near tie.
    model, v, f, x = stem_setup
    n = 320
    kw = dict(num_samples=n, sigma=SIGMA_M5, num_classes=2, mode="shared_bank",
              checkpoints=tuple(range(1, n + 1)))  # fmt: skip
    ref = np.asarray(S.sample_counts(f, v, x, jax.random.key(0), **kw))
    out = np.asarray(
        S.sample_counts(f, v, x, jax.random.key(0), linear_stem=models.linear_stem_fn(model), **kw)
    )
    per_ref = np.diff(ref[..., 1], axis=0, prepend=0)  # [n, b] class of every draw
    per_out = np.diff(out[..., 1], axis=0, prepend=0)
    assert 0.05 < per_ref.mean() < 0.95, per_ref.mean(0)  # both classes occur
    assert np.mean(per_ref != per_out) <= 0.01, np.sum(per_ref != per_out)
    assert np.all(out.sum(-1) == np.arange(1, n + 1)[:, None])
    # Batch composition and input_block do not change the stem path's counts: the
    # bank is shared by the inputs of a call, S x is computed per input block.
    part = S.sample_counts(f, v, x[2:], jax.random.key(0), linear_stem=models.linear_stem_fn(model),
                           **kw)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(part), out[:, 2:])


def test_certify_passes_sampling_options(stem_setup):
    # certify's two streams are sample_counts with the same options (here the shared
    # bank with the linear stem): selection key fold_in(key, 0), estimation fold_in(key, 1).
    model, v, f, x = stem_setup
    ls = models.linear_stem_fn(model)
    opts = dict(mode="shared_bank", linear_stem=ls, input_block=2, chunk_size=8)
    res = S.certify(f, v, x, jax.random.key(5), n0=16, n=96, alpha=0.01, sigma=SIGMA_M5,
                    num_classes=2, **opts)  # fmt: skip
    kw = dict(sigma=SIGMA_M5, num_classes=2, **opts)
    c0 = np.asarray(S.sample_counts(f, v, x, jax.random.fold_in(jax.random.key(5), 0),
                                    num_samples=16, **kw))  # fmt: skip
    c1 = np.asarray(S.sample_counts(f, v, x, jax.random.fold_in(jax.random.key(5), 1),
                                    num_samples=96, **kw))  # fmt: skip
    np.testing.assert_array_equal(res.counts_selection, c0)
    np.testing.assert_array_equal(res.counts, c1)
    with pytest.raises(ValueError, match="linear_stem"):
        S.certify(f, v, x, jax.random.key(5), n0=4, n=8, alpha=0.01, sigma=SIGMA_M5,
                  num_classes=2, linear_stem=ls)  # independent mode: refused  # fmt: skip


def test_linear_stem_counts_statistically_match_independent(stem_setup):
    # Two-sample z bound of 4.5 standard errors per input (as above), against the
    # default mode with another key; p_true has no closed form for M5.
    model, v, f, x = stem_setup
    n = 8000
    kw = dict(num_samples=n, sigma=SIGMA_M5, num_classes=2, chunk_size=16)
    a = np.asarray(S.sample_counts(f, v, x, jax.random.key(1), **kw))
    b = np.asarray(S.sample_counts(f, v, x, jax.random.key(2), mode="shared_bank",
                                   linear_stem=models.linear_stem_fn(model), **kw))  # fmt: skip
    assert np.all(b.sum(-1) == n)
    assert 0.05 < b[0, 1] / n < 0.95, b
    pooled = (a[:, 1] + b[:, 1]) / (2 * n)
    se = np.sqrt(2 * pooled * (1 - pooled) / n)
    assert np.all(np.abs(a[:, 1] - b[:, 1]) / n <= 4.5 * se + 1e-12), (a[:, 1], b[:, 1])


@pytest.mark.parametrize(
    "opts, match",
    [
        ({}, "shared_bank"),
        ({"mode": "independent"}, "shared_bank"),
        ({"mode": "shared_bank", "compute_dtype": "bfloat16"}, "compute_dtype"),
    ],
)
def test_linear_stem_bad_options_raise(stem_setup, opts, match):
    model, v, f, x = stem_setup
    with pytest.raises(ValueError, match=f"linear_stem.*{match}"):
        S.sample_counts(f, v, x, jax.random.key(0), num_samples=10, sigma=0.1, num_classes=2,
                        linear_stem=models.linear_stem_fn(model), **opts)  # fmt: skip
    with pytest.raises(ValueError, match="linear_stem"):
        S.sample_counts(f, v, x, jax.random.key(0), num_samples=10, sigma=0.1, num_classes=2,
                        mode="shared_bank", linear_stem=[1])  # fmt: skip
