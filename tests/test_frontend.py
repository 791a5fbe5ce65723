"""Audio representations: librosa oracle, a hand-derived bin, shapes, jit, gradients, errors."""

import dataclasses

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from fairrobust import frontend

SR = 16000


def _signals(t=SR):
    """A random waveform and a 440 Hz sine with digital silence in its first 0.1 s."""
    rng = np.random.default_rng(0)
    noise = np.clip(0.3 * rng.standard_normal(t), -1, 1)
    sine = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(t) / SR)
    sine[: SR // 10] = 0.0
    return np.stack([noise, sine]).astype(np.float32)


STFT_CASES = [
    {"n_fft": 512, "hop_length": 160},
    {"n_fft": 512, "hop_length": 160, "win_length": 400},
    {"n_fft": 256, "hop_length": 128, "pad_mode": "reflect"},
    {"n_fft": 400, "hop_length": 160, "center": False, "window": "hamming"},
    {"n_fft": 64, "hop_length": 100},  # hop > n_fft: frames skip samples
]


@pytest.mark.parametrize("kw", STFT_CASES)
def test_stft_magnitude_matches_librosa(kw):
    x = _signals()
    ours = np.asarray(frontend.stft_magnitude(x, **kw))
    ref = np.abs(librosa.stft(x, **kw)).transpose(0, 2, 1)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * ref.max())


def test_power_spectrogram_is_magnitude_squared():
    x = _signals(4000)
    mag = frontend.stft_magnitude(x)
    np.testing.assert_allclose(frontend.power_spectrogram(x), mag * mag, rtol=1e-5, atol=1e-6)


def test_stft_of_a_bin_centred_sine_by_hand():
    # A sine at bin k0 under a rectangular window: |X[k0]| = a * n_fft / 2, other bins 0.
    n_fft, k0, a = 256, 10, 0.5
    x = a * np.sin(2 * np.pi * k0 * np.arange(1024) / n_fft).astype(np.float32)
    mag = np.asarray(
        frontend.stft_magnitude(
            x[None], n_fft=n_fft, hop_length=n_fft, window="boxcar", center=False
        )
    )
    assert mag.shape == (1, 4, n_fft // 2 + 1)
    np.testing.assert_allclose(mag[0, :, k0], a * n_fft / 2, rtol=1e-5)
    np.testing.assert_allclose(np.delete(mag[0], k0, axis=1), 0.0, atol=1e-3)


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [(16000, 512, 40, 0.0, None), (8000, 256, 30, 50.0, 3800.0), (22050, 1024, 128, 0.0, None)],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = frontend.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)
    assert not ours.flags.writeable


def test_mel_scale_matches_librosa_and_inverts():
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(frontend.hz_to_mel(f), librosa.hz_to_mel(f), rtol=1e-12)
    np.testing.assert_allclose(frontend.mel_to_hz(frontend.hz_to_mel(f)), f, atol=1e-9)


@pytest.mark.parametrize("kw", [{}, {"n_mels": 64, "win_length": 400, "fmin": 20.0}])
def test_log_mel_matches_librosa(kw):
    x = _signals()
    ours = np.asarray(frontend.log_mel(x, sample_rate=SR, n_fft=512, hop_length=160, **kw))
    mel = librosa.feature.melspectrogram(
        y=x, sr=SR, n_fft=512, hop_length=160, power=2.0, **{"n_mels": 40, **kw}
    )
    ref = np.log(mel + 1e-6).transpose(0, 2, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    assert ours[1, 0].max() == pytest.approx(np.log(1e-6))  # silence maps to log(eps)


@pytest.mark.parametrize("space", frontend.SPACES)
@pytest.mark.parametrize("normalize", [True, False])
def test_representation_shapes_jit_and_normalisation(space, normalize):
    rep = frontend.Representation(space=space, normalize=normalize)
    x = _signals(12345)
    z = rep(x)
    assert z.shape == (2, *rep.shape(12345)) == (2, 1 + 12345 // 160, rep.bins)
    np.testing.assert_allclose(jax.jit(rep)(x), z, rtol=1e-5, atol=1e-5)
    if normalize:
        np.testing.assert_allclose(z.mean(axis=(1, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(z.std(axis=(1, 2)), 1.0, atol=1e-4)


def test_representation_defaults_and_for_sample_rate():
    rep = frontend.Representation()
    assert (rep.space, rep.n_fft, rep.hop_length, rep.win_length, rep.n_mels) == (
        "mel",
        512,
        160,
        400,
        40,
    )
    assert frontend.Representation.for_sample_rate("mel", 16000) == rep
    r8 = frontend.Representation.for_sample_rate("stft", 8000, normalize=False)
    assert (r8.n_fft, r8.hop_length, r8.win_length, r8.bins) == (256, 80, 200, 129)
    assert r8.shape(8000) == (101, 129)
    assert hash(rep) == hash(dataclasses.replace(rep))
    assert frontend.Representation(**rep.to_dict()) == rep


@pytest.mark.parametrize("space", frontend.SPACES)
def test_gradients_are_finite_including_silence(space):
    rep = frontend.Representation(space=space)
    x = jnp.asarray(_signals(4000))
    x = x.at[0].set(0.0)  # an all-silent waveform: zero bins and a constant representation
    g = jax.grad(lambda v: jnp.sum(jnp.sin(rep(v))))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))
    g_mag = jax.grad(lambda v: frontend.stft_magnitude(v).sum())(x)
    assert bool(jnp.all(jnp.isfinite(g_mag)))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = jnp.asarray(0.3 * rng.standard_normal((1, 2000)), jnp.float32)
    v = jnp.asarray(rng.standard_normal((1, 2000)), jnp.float32)

    def f(a):
        return frontend.log_mel(a, n_fft=256, hop_length=100, n_mels=20).mean()

    g = jax.grad(f)(x)
    h = 1e-2
    fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
    assert float(jnp.vdot(g, v)) == pytest.approx(float(fd), rel=2e-2)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda x: frontend.stft_magnitude(x, n_fft=1), "n_fft"),
        (lambda x: frontend.stft_magnitude(x, hop_length=0), "hop_length"),
        (lambda x: frontend.stft_magnitude(x, n_fft=256, win_length=300), "win_length"),
        (lambda x: frontend.stft_magnitude(x, window="kaiser"), "window"),
        (lambda x: frontend.stft_magnitude(x, pad_mode="edge"), "pad_mode"),
        (lambda x: frontend.stft_magnitude(x[0]), "x"),
        (lambda x: frontend.stft_magnitude(x[:, :100], center=False), "x"),
        (lambda x: frontend.stft_magnitude(jnp.zeros((1, 600), jnp.int32)), "x"),
        (lambda x: frontend.log_mel(x, eps=0.0), "eps"),
        (lambda x: frontend.log_mel(x, sample_rate=8000, fmax=5000.0), "fmax"),
        (lambda x: frontend.mel_filterbank(16000, 512, 0), "n_mels"),
        (lambda x: frontend.mel_filterbank(16000, 512, 40, fmin=-1.0), "fmin"),
        (lambda x: frontend.Representation(space="wave"), "space"),
        (lambda x: frontend.Representation(normalize="yes"), "normalize"),  # type: ignore[arg-type]
        (lambda x: frontend.Representation(sample_rate=0), "sample_rate"),
        (lambda x: frontend.Representation().shape(0), "num_samples"),
    ],
)
def test_bad_parameters_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        call(jnp.zeros((1, 600), jnp.float32))
