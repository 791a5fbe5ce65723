"""Tests for fairrobust.defenses: low-pass, quantisation, spectral denoiser, BPDA, registry."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from fairrobust import defenses
from fairrobust.defenses import (
    PREPROCESSES,
    Preprocess,
    bpda,
    istft,
    lowpass,
    make_preprocess,
    quantize,
    spectral_denoise,
    stft,
    with_preprocess,
)

SR = 16000


def _tone(freq, n=4000, amp=0.5, batch=1):
    t = np.arange(n) / SR
    return jnp.asarray(np.tile(amp * np.sin(2 * np.pi * freq * t), (batch, 1)), jnp.float32)


def _noise(seed, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _uniform(seed, shape):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, -1.0, 1.0)


# --------------------------------------------------------------------------- lowpass


def test_lowpass_passes_low_and_attenuates_high_tone():
    taps = 101
    inner = slice(taps, -taps)  # ignore the zero-padded edges
    low = _tone(200.0)
    y_low = lowpass(low, cutoff_hz=2000.0, sample_rate=SR, num_taps=taps)
    np.testing.assert_allclose(y_low[:, inner], low[:, inner], atol=2e-3)
    high = _tone(6000.0)
    y_high = lowpass(high, cutoff_hz=2000.0, sample_rate=SR, num_taps=taps)
    ratio_db = 10 * np.log10(np.mean(y_high[:, inner] ** 2) / np.mean(high[:, inner] ** 2))
    assert ratio_db < -30.0, ratio_db


@pytest.mark.parametrize(("cutoff", "taps"), [(1000.0, 101), (3500.0, 31), (7000.0, 5)])
def test_lowpass_matches_scipy_firwin(cutoff, taps):
    x = _uniform(0, (3, 700))
    h = scipy.signal.firwin(taps, cutoff, fs=SR)  # Hamming window, unit DC gain
    np.testing.assert_allclose(defenses.lowpass_kernel(cutoff, SR, taps), h, atol=1e-6)
    ref = np.stack([scipy.signal.convolve(np.asarray(r, np.float64), h, mode="same") for r in x])
    y = lowpass(x, cutoff_hz=cutoff, sample_rate=SR, num_taps=taps)
    np.testing.assert_allclose(y, ref, atol=2e-5)
    # Same as lfilter (causal) advanced by the group delay (taps - 1) / 2.
    causal = scipy.signal.lfilter(h, [1.0], np.pad(np.asarray(x, np.float64), [(0, 0), (0, taps)]))
    np.testing.assert_allclose(y, causal[:, taps // 2 : taps // 2 + 700], atol=2e-5)


def test_lowpass_dc_gain_and_gradient_is_the_filter():
    x = jnp.full((2, 300), 0.25, jnp.float32)
    y = lowpass(x, cutoff_hz=1000.0, sample_rate=SR)
    np.testing.assert_allclose(y[:, 60:-60], 0.25, atol=1e-6)  # unit DC gain
    # Linear and symmetric kernel: the VJP of lowpass is lowpass itself.
    v = _uniform(3, (2, 300))
    _, vjp = jax.vjp(lambda z: lowpass(z, cutoff_hz=1000.0, sample_rate=SR), x)
    np.testing.assert_allclose(vjp(v)[0], lowpass(v, cutoff_hz=1000.0, sample_rate=SR), atol=1e-6)


def test_lowpass_cutoff_sweep_compiles_once():
    x = _uniform(1, (2, 400))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(c):
        return lowpass(x, cutoff_hz=c, sample_rate=SR)

    for c in (500.0, 1000.0, 4000.0):
        np.testing.assert_allclose(
            f(jnp.float32(c)), lowpass(x, cutoff_hz=c, sample_rate=SR), atol=1e-6
        )


# --------------------------------------------------------------------------- quantize


def test_quantize_hand_values():
    # bits=1: levels {-1, 1}; bits=2: levels {-1, -1/3, 1/3, 1}.
    x = jnp.array([[-2.0, -0.2, 0.1, 0.9, 3.0]], jnp.float32)
    np.testing.assert_array_equal(quantize(x, bits=1), [[-1, -1, 1, 1, 1]])
    np.testing.assert_allclose(quantize(x, bits=2), [[-1.0, -1 / 3, 1 / 3, 1.0, 1.0]], atol=1e-7)
    np.testing.assert_allclose(
        quantize(jnp.array([[0.3, 0.34]]), bits=2), [[1 / 3, 1 / 3]], atol=1e-7
    )


@pytest.mark.parametrize("bits", [1, 3, 8, 16])
def test_quantize_invariants(bits):
    x = 1.2 * _uniform(bits, (4, 5000))
    q = quantize(x, bits=bits)
    assert q.shape == x.shape and q.dtype == jnp.float32
    assert float(jnp.min(q)) >= -1.0 and float(jnp.max(q)) <= 1.0
    np.testing.assert_array_equal(quantize(q, bits=bits), q)  # idempotent
    assert len(np.unique(np.asarray(q))) <= 2**bits
    step = 2.0 / (2**bits - 1)
    inside = jnp.abs(x) <= 1
    assert float(jnp.max(jnp.where(inside, jnp.abs(q - x), 0.0))) <= step / 2 + 1e-6


def test_quantize_gradient_is_zero_but_bpda_is_identity():
    x = _uniform(2, (2, 50)) * 0.9
    np.testing.assert_array_equal(jax.grad(lambda z: jnp.sum(quantize(z, bits=4)))(x), 0.0)
    g = jax.grad(lambda z: jnp.sum(make_preprocess("quantize", bits=4)(z)))(x)
    np.testing.assert_array_equal(g, 1.0)


# --------------------------------------------------------------------------- STFT / denoiser


@pytest.mark.parametrize(("n_fft", "hop", "length"), [(256, 64, 1000), (64, 32, 37), (16, 8, 5)])
def test_stft_istft_round_trip_is_exact(n_fft, hop, length):
    x = _uniform(4, (3, length))
    spec = stft(x, n_fft=n_fft, hop=hop)
    assert spec.shape == (3, 1 + -(-length // hop), n_fft // 2 + 1)
    np.testing.assert_allclose(istft(spec, length=length, n_fft=n_fft, hop=hop), x, atol=1e-6)
    # over_subtraction = 0 means gain 1, so the denoiser is the identity.
    y = spectral_denoise(x, n_fft=n_fft, hop=hop, over_subtraction=0.0)
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_stft_matches_scipy():
    x = _uniform(5, (1, 512))
    spec = stft(x, n_fft=64, hop=16)
    _, _, ref = scipy.signal.stft(
        np.asarray(x[0], np.float64),
        window="hann",
        nperseg=64,
        noverlap=48,
        boundary="zeros",
        padded=True,
        scaling="spectrum",
    )
    # scipy scales by 1/sum(window) = 1/32 and puts frequency first.
    n = min(ref.shape[1], spec.shape[1])
    np.testing.assert_allclose(np.asarray(spec[0, :n]).T / 32.0, ref[:, :n], atol=1e-5)


def test_spectral_denoise_improves_snr_and_keeps_the_tone():
    n = 8000
    t = np.arange(n) / SR
    envelope = ((t > 0.125) & (t < 0.375)).astype(np.float64)  # tone burst, silence around it
    clean = np.stack([0.3 * envelope * np.sin(2 * np.pi * f * t) for f in (440.0, 1000.0)])
    clean = jnp.asarray(clean, jnp.float32)
    noisy = clean + _noise(6, clean.shape, 0.03)
    out = spectral_denoise(noisy)

    def snr_db(y):
        return 10 * np.log10(np.sum(clean**2, 1) / np.sum((y - clean) ** 2, 1))

    assert np.all(snr_db(out) > snr_db(noisy) + 6.0), (snr_db(noisy), snr_db(out))
    # The tone survives: most of its energy is kept where it is on.
    on = envelope > 0
    kept = np.sum(np.asarray(out)[:, on] * np.asarray(clean)[:, on], 1) / np.sum(
        np.asarray(clean)[:, on] ** 2, 1
    )
    assert np.all(kept > 0.9), kept
    # Noise-only stretch: power is cut by at least 10 dB.
    off = t < 0.1
    cut = np.mean(np.asarray(out)[:, off] ** 2, 1) / np.mean(np.asarray(noisy)[:, off] ** 2, 1)
    assert np.all(10 * np.log10(cut) < -10.0), cut


def test_spectral_denoise_zero_input_is_finite_with_finite_gradient():
    x = jnp.zeros((2, 300), jnp.float32)
    np.testing.assert_array_equal(spectral_denoise(x), 0.0)
    g = jax.grad(lambda z: jnp.sum(spectral_denoise(z) ** 2))(x)
    assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------- BPDA


def test_bpda_forward_equals_fn_and_vjp_is_identity():
    def fn(z):
        return jnp.sin(3.0 * z) ** 2

    x = _uniform(7, (3, 20))
    g = bpda(fn)
    np.testing.assert_array_equal(g(x), fn(x))
    v = _uniform(8, (3, 20))
    y, vjp = jax.vjp(g, x)
    np.testing.assert_array_equal(y, fn(x))
    np.testing.assert_array_equal(vjp(v)[0], v)
    np.testing.assert_allclose(jax.jit(g)(x), g(x), atol=1e-7)
    np.testing.assert_array_equal(jax.jit(jax.grad(lambda z: jnp.sum(g(z) * v)))(x), v)


def test_bpda_rejects_shape_change():
    with pytest.raises(ValueError, match="shape"):
        bpda(lambda z: z[:, :2])(jnp.ones((2, 5)))


# --------------------------------------------------------------------------- registry


@pytest.fixture(params=["none", "lowpass", "quantize", "spectral_denoise"])
def preprocess(request):
    if request.param == "lowpass":
        return make_preprocess("lowpass", cutoff_hz=3000.0, sample_rate=SR, num_taps=31)
    if request.param == "spectral_denoise":
        return make_preprocess("spectral_denoise", n_fft=64, hop=16)
    return make_preprocess(request.param)


def test_preprocess_shapes_jit_and_batch_independence(preprocess):
    x = 0.8 * _uniform(9, (3, 400))
    y = preprocess(x)
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(preprocess)(x), y, atol=1e-6)
    for i in range(3):  # each example is processed alone
        np.testing.assert_allclose(preprocess(x[i : i + 1]), y[i : i + 1], atol=1e-6)
    y_perm = preprocess(x[::-1])
    np.testing.assert_allclose(y_perm[::-1], y, atol=1e-6)


def test_defaults_and_describe():
    assert make_preprocess("lowpass", cutoff_hz=4000, sample_rate=SR).gradient == "exact"
    assert make_preprocess("quantize").gradient == "bpda"
    assert make_preprocess("spectral_denoise").gradient == "bpda"
    assert PREPROCESSES["lowpass"].differentiable and not PREPROCESSES["quantize"].differentiable
    pre = make_preprocess("quantize", bits=8)
    assert pre.params == (("bits", 8),)
    assert pre.describe() == "quantize(bits=8), attacked with BPDA (straight-through gradient)"
    lp = make_preprocess("lowpass", cutoff_hz=4000, sample_rate=16000)
    assert lp.kwargs == {"cutoff_hz": 4000.0, "num_taps": 101, "sample_rate": 16000.0}
    assert "exact gradient" in lp.describe()
    assert "masked" in make_preprocess("quantize", gradient="exact").describe()
    sd = make_preprocess("spectral_denoise")
    assert sd.kwargs == {
        "floor": 0.1,
        "hop": 64,
        "n_fft": 256,
        "noise_frac": 0.1,
        "over_subtraction": 2.0,
    }


def test_preprocess_is_hashable_and_json_round_trips(preprocess):
    import json

    d = json.loads(json.dumps(preprocess.to_dict()))
    back = Preprocess.from_dict(d)
    assert back == preprocess and hash(back) == hash(preprocess)
    assert d["description"] == preprocess.describe()


def test_exact_gradient_spectral_denoise_differs_from_bpda():
    x = 0.5 * _uniform(10, (1, 300))
    exact = make_preprocess("spectral_denoise", n_fft=64, hop=16, gradient="exact")
    st = make_preprocess("spectral_denoise", n_fft=64, hop=16)
    np.testing.assert_allclose(exact(x), st(x), atol=1e-7)
    g_exact = jax.grad(lambda z: jnp.sum(exact(z) ** 2))(x)
    g_st = jax.grad(lambda z: jnp.sum(st(z) ** 2))(x)
    np.testing.assert_allclose(g_st, 2 * st(x), atol=1e-6)
    assert np.all(np.isfinite(g_exact)) and not np.allclose(g_exact, g_st)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("median", {}, "lowpass"),  # lists the options
        ("lowpass", {"sample_rate": SR}, "cutoff_hz"),  # missing
        ("lowpass", {"cutoff_hz": 9000.0, "sample_rate": SR}, "cutoff_hz"),
        ("lowpass", {"cutoff_hz": 0.0, "sample_rate": SR}, "cutoff_hz"),
        ("lowpass", {"cutoff_hz": 100.0, "sample_rate": -1}, "sample_rate"),
        ("lowpass", {"cutoff_hz": 100.0, "sample_rate": SR, "num_taps": 100}, "num_taps"),
        ("quantize", {"bits": 0}, "bits"),
        ("quantize", {"bits": 17}, "bits"),
        ("quantize", {"bits": 2.5}, "bits"),
        ("quantize", {"bits": 8, "levels": 4}, "levels"),
        ("spectral_denoise", {"hop": 200}, "hop"),
        ("spectral_denoise", {"n_fft": 2}, "n_fft"),
        ("spectral_denoise", {"floor": 1.5}, "floor"),
        ("spectral_denoise", {"over_subtraction": -1.0}, "over_subtraction"),
        ("spectral_denoise", {"noise_frac": 0.0}, "noise_frac"),
        ("quantize", {"gradient": "sign"}, "gradient"),
    ],
)
def test_make_preprocess_bad_input_names_the_parameter(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_preprocess(name, **params)


def test_functions_reject_bad_input():
    with pytest.raises(ValueError, match="batch, time"):
        quantize(jnp.zeros(10))
    with pytest.raises(ValueError, match="batch, time"):
        spectral_denoise(jnp.zeros((1, 2, 300)))
    with pytest.raises(ValueError, match="cutoff_hz"):
        lowpass(jnp.zeros((1, 10)), cutoff_hz=8000.0, sample_rate=SR)
    with pytest.raises(ValueError, match="num_taps"):
        lowpass(jnp.zeros((1, 10)), cutoff_hz=800.0, sample_rate=SR, num_taps=4)
    with pytest.raises(ValueError, match="bits"):
        quantize(jnp.zeros((1, 10)), bits=0)
    with pytest.raises(ValueError, match="hop"):
        stft(jnp.zeros((1, 10)), n_fft=64, hop=24)
    with pytest.raises(ValueError, match="spec must have shape"):
        istft(jnp.zeros((1, 5, 10), jnp.complex64), length=20, n_fft=64, hop=16)
    with pytest.raises(ValueError, match="cannot cover"):
        istft(jnp.zeros((1, 2, 33), jnp.complex64), length=200, n_fft=64, hop=16)
    with pytest.raises(ValueError, match="preprocess"):
        with_preprocess(lambda v, x: x, {"name": "quantize"})


# --------------------------------------------------------------------------- with_preprocess


def _linear_apply_fn(variables, x):
    return x @ variables["w"]


def test_with_preprocess_is_memoised_and_composes(preprocess):
    f1 = with_preprocess(_linear_apply_fn, preprocess)
    f2 = with_preprocess(_linear_apply_fn, Preprocess.from_dict(preprocess.to_dict()))
    assert f1 is f2
    if preprocess.name == "none":
        assert f1 is _linear_apply_fn
    w = _noise(11, (400, 3), 0.1)
    variables = {"w": w}
    x = 0.5 * _uniform(12, (2, 400))
    np.testing.assert_allclose(f1(variables, x), preprocess(x) @ w, atol=1e-5)

    def loss(z):
        return jnp.sum(jax.nn.log_softmax(f1(variables, z))[:, 0])

    g = jax.grad(loss)(x)
    assert g.shape == x.shape and np.all(np.isfinite(g)) and np.any(g != 0)
    if preprocess.gradient == "bpda":  # straight-through: the model's gradient at g(x)
        g_model = jax.grad(lambda z: jnp.sum(jax.nn.log_softmax(z @ w)[:, 0]))(preprocess(x))
        np.testing.assert_allclose(g, g_model, atol=1e-6)


def test_with_preprocess_as_static_jit_argument_compiles_once():
    pre = make_preprocess("quantize", bits=6)
    w = _noise(13, (100, 2))
    x = 0.5 * _uniform(14, (2, 100))

    @chex.assert_max_traces(n=1)
    def step(apply_fn, variables, x, eps):
        grad = jax.grad(lambda z: jnp.sum(apply_fn(variables, z)[:, 0]))(x)
        return x + eps * jnp.sign(grad)

    jstep = jax.jit(step, static_argnames="apply_fn")
    for eps in (0.01, 0.02, 0.05):
        out = jstep(with_preprocess(_linear_apply_fn, pre), {"w": w}, x, jnp.float32(eps))
        np.testing.assert_allclose(out, x + eps * jnp.sign(w[:, 0])[None, :], atol=1e-6)
