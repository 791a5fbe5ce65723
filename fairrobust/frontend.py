"""Audio representations in JAX: magnitude spectrogram and (normalised) log-Mel energies.

Randomized smoothing need not act on the waveform: "Certified robustness for audio
with randomized smoothing" smooths Deep Speaker at the magnitude-spectrogram and
normalised Mel-filterbank representations as well. The functions here compute those
representations as jittable, differentiable JAX functions, so a model can take the
waveform and smoothing (or an attack) can act on either space.

Conventions are librosa's (checked in ``tests/test_frontend.py`` against librosa
0.11): ``center=True`` pads ``n_fft // 2`` samples on both sides with
``pad_mode="constant"`` (zeros; librosa's default since 0.10), the window is the
periodic (``fftbins=True``) window of ``win_length`` samples zero-padded to ``n_fft``
in the middle, there is no scaling of the DFT, and frames are
``1 + T // hop_length`` (centred) or ``1 + (T - n_fft) // hop_length``. The Mel
matrix is librosa's default: Slaney's Mel scale (``htk=False``) with Slaney area
normalisation (``norm="slaney"``). Arrays are laid out frames-first,
``(batch, frames, bins)``, i.e. librosa's ``(bins, frames)`` transposed.

Framing is reshape-based (no gather): the padded signal viewed as rows of
``hop_length`` samples, ``ceil(n_fft / hop_length)`` shifted row views concatenated
and cut to ``n_fft``; its gradient is a sum of pads (fast on CPU).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal
from jax import lax

from fairrobust._checks import check_int, check_positive, fail

__all__ = [
    "PAD_MODES",
    "SPACES",
    "WINDOWS",
    "Representation",
    "hz_to_mel",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "normalize_features",
    "power_spectrogram",
    "stft_magnitude",
]

#: Representation spaces of :class:`Representation`.
SPACES = ("stft", "mel")
#: Analysis windows (``scipy.signal.get_window`` names, periodic as in librosa).
WINDOWS = ("hann", "hamming", "blackman", "boxcar")
#: Padding of ``center=True`` (librosa's ``pad_mode``; ``"constant"`` pads zeros).
PAD_MODES = ("constant", "reflect")

# Variance floor of the per-utterance feature standardisation (a constant
# representation, e.g. the log-Mel energies of digital silence, maps to zeros).
_VAR_EPS = 1e-8


def _check_x(x: Any) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 2:
        fail("x", "a waveform batch of shape (batch, time)", f"shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        fail("x", "a floating-point waveform", f"dtype {x.dtype}")
    return x


def _check_frames(
    t: int,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    window: str,
    center: bool,
    pad_mode: str,
) -> int:
    """Validates the STFT parameters for ``t`` samples; returns ``win_length``."""
    n_fft = check_int("n_fft", n_fft, 2)
    check_int("hop_length", hop_length, 1)
    win = n_fft if win_length is None else check_int("win_length", win_length, 1)
    if win > n_fft:
        fail("win_length", f"an integer <= n_fft ({n_fft})", repr(win_length))
    if window not in WINDOWS:
        fail("window", f"one of {WINDOWS}", repr(window))
    if pad_mode not in PAD_MODES:
        fail("pad_mode", f"one of {PAD_MODES}", repr(pad_mode))
    if center and pad_mode == "reflect" and t <= n_fft // 2:
        fail("x", f"more than n_fft // 2 = {n_fft // 2} samples for reflect padding", f"{t}")
    if not center and t < n_fft:
        fail("x", f"at least n_fft = {n_fft} samples without centring", f"{t}")
    if t < 1:
        fail("x", "at least 1 sample", f"{t}")
    return win


@functools.lru_cache(maxsize=32)
def _window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic window of ``win_length`` zero-padded to ``n_fft`` in the middle (librosa)."""
    w = np.asarray(scipy.signal.get_window(window, win_length, fftbins=True), np.float32)
    lpad = (n_fft - win_length) // 2
    out = np.pad(w, (lpad, n_fft - win_length - lpad))
    out.flags.writeable = False
    return out


def _frame(x: jax.Array, n_fft: int, hop: int) -> jax.Array:
    """Frames ``x[:, f * hop : f * hop + n_fft]``, shape (b, 1 + (T - n_fft) // hop, n_fft)."""
    b, t = x.shape
    frames = 1 + (t - n_fft) // hop
    n = -(-n_fft // hop)  # rows of hop samples a frame touches
    rows = frames + n - 1
    need = rows * hop
    # Samples past the end only enter the part of a row view that is cut off below.
    x = jnp.pad(x, ((0, 0), (0, max(0, need - t))))[:, :need]
    xr = x.reshape(b, rows, hop)
    return jnp.concatenate([xr[:, j : j + frames] for j in range(n)], axis=-1)[..., :n_fft]


def _spectrum(
    x: Any,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    window: str,
    center: bool,
    pad_mode: str,
) -> tuple[jax.Array, jax.Array]:
    """Real and imaginary parts of the STFT, each (b, frames, n_fft // 2 + 1)."""
    x = _check_x(x)
    win = _check_frames(x.shape[1], n_fft, hop_length, win_length, window, center, pad_mode)
    if center:
        p = n_fft // 2
        x = jnp.pad(x, ((0, 0), (p, p)), mode=pad_mode)
    w = jnp.asarray(_window(window, win, n_fft), x.dtype).reshape(1, 1, n_fft)
    spec = jnp.fft.rfft(_frame(x, n_fft, hop_length) * w, axis=-1)
    return spec.real, spec.imag


def power_spectrogram(
    x: Any,
    *,
    n_fft: int = 512,
    hop_length: int = 160,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> jax.Array:
    """Power spectrogram ``|STFT(x)|^2``, frames first.

    Equals ``np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop_length,
    win_length=win_length, window=window, center=center, pad_mode=pad_mode)) ** 2``
    transposed to (frames, bins). Computed as ``re^2 + im^2`` (no square root), so its
    gradient is finite everywhere.

    Args:
      x: waveform in [-1, 1], shape (batch, time).
      n_fft: FFT size (>= 2).
      hop_length: samples between frames (>= 1).
      win_length: window length (<= n_fft; None: n_fft), centred in the frame.
      window: one of :data:`WINDOWS` (periodic, as librosa's ``get_window``).
      center: pad ``n_fft // 2`` samples on both sides so frame f is centred at
        ``f * hop_length``.
      pad_mode: one of :data:`PAD_MODES` (``"constant"``: zeros, librosa's default).

    Returns:
      Shape (batch, frames, n_fft // 2 + 1), ``frames = 1 + time // hop_length``
      when centred, else ``1 + (time - n_fft) // hop_length``.
    """
    re, im = _spectrum(x, n_fft, hop_length, win_length, window, center, pad_mode)
    return re * re + im * im


def stft_magnitude(
    x: Any,
    *,
    n_fft: int = 512,
    hop_length: int = 160,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> jax.Array:
    """Magnitude spectrogram ``|STFT(x)|``, frames first.

    Equals ``np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop_length,
    win_length=win_length, window=window, center=center, pad_mode=pad_mode))``
    transposed to (frames, bins): ``|X[f, k]| = |sum_n w[n] x[f * hop + n]
    exp(-2 pi i k n / n_fft)|`` over the padded signal. The gradient of a zero bin
    (e.g. a frame of digital silence) is defined as 0 instead of ``0 / 0``.

    Args:
      x, n_fft, hop_length, win_length, window, center, pad_mode: as in
        :func:`power_spectrogram`.

    Returns:
      Shape (batch, frames, n_fft // 2 + 1), float32 for float32 input.
    """
    power = power_spectrogram(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
    )
    positive = power > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, power, 1.0)), 0.0)


# ----------------------------------------------------------------------------- Mel scale

_F_SP = 200.0 / 3  # Slaney: linear part, 66.67 Hz per Mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0  # log-spaced part above 1 kHz


def hz_to_mel(freqs: Any) -> np.ndarray:
    """Slaney Mel scale (librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, log above."""
    f = np.asarray(freqs, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(mels: Any) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (librosa ``mel_to_hz(htk=False)``)."""
    m = np.asarray(mels, np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, _F_SP * m)


@functools.lru_cache(maxsize=32)
def _mel_matrix(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # Slaney: constant energy per band
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Mel filterbank matrix, librosa's default (Slaney scale and area normalisation).

    Triangles between ``n_mels + 2`` points equally spaced on the Slaney Mel scale
    from ``fmin`` to ``fmax``, evaluated at the FFT bin frequencies
    ``k * sample_rate / n_fft`` and scaled by ``2 / (f[m + 2] - f[m])`` (equal area).
    Equals ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels,
    fmin=fmin, fmax=fmax)`` (float32).

    Args:
      sample_rate: Hz (> 0).
      n_fft: FFT size (>= 2).
      n_mels: number of bands (>= 1).
      fmin: lowest band edge in Hz (>= 0).
      fmax: highest band edge in Hz (<= sample_rate / 2; None: sample_rate / 2).

    Returns:
      Read-only float32 array, shape (n_mels, n_fft // 2 + 1); ``mel @ power`` with a
      (bins, frames) power spectrogram gives the Mel energies.
    """
    sr = check_int("sample_rate", sample_rate, 1)
    n_fft = check_int("n_fft", n_fft, 2)
    n_mels = check_int("n_mels", n_mels, 1)
    lo = float(fmin)
    if not math.isfinite(lo) or lo < 0:
        fail("fmin", "a finite number >= 0", repr(fmin))
    hi = sr / 2 if fmax is None else float(fmax)
    if not math.isfinite(hi) or not lo < hi <= sr / 2:
        fail("fmax", f"a number in (fmin, sample_rate / 2 = {sr / 2}]", repr(fmax))
    return _mel_matrix(sr, n_fft, n_mels, lo, hi)


def log_mel(
    x: Any,
    *,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop_length: int = 160,
    win_length: int | None = None,
    n_mels: int = 40,
    fmin: float = 0.0,
    fmax: float | None = None,
    eps: float = 1e-6,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> jax.Array:
    """Log Mel-filterbank energies ``log(|STFT(x)|^2 @ M^T + eps)``, frames first.

    Equals ``np.log(librosa.feature.melspectrogram(y=x, sr=sample_rate, n_fft=n_fft,
    hop_length=hop_length, win_length=win_length, n_mels=n_mels, fmin=fmin,
    fmax=fmax, power=2.0, pad_mode=pad_mode) + eps)`` transposed to (frames, n_mels).

    Args:
      x: waveform in [-1, 1], shape (batch, time).
      sample_rate: Hz of ``x``.
      n_fft, hop_length, win_length, window, center, pad_mode: as in
        :func:`power_spectrogram`.
      n_mels, fmin, fmax: as in :func:`mel_filterbank`.
      eps: floor added before the log (> 0); ``log(eps)`` is the value of silence.

    Returns:
      Shape (batch, frames, n_mels).
    """
    eps = check_positive("eps", eps)
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    power = power_spectrogram(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
    )
    energies = jnp.einsum(
        "bfk,mk->bfm", power, jnp.asarray(mel, power.dtype), precision=lax.Precision.HIGHEST
    )
    return jnp.log(energies + eps)


def normalize_features(z: jax.Array, var_eps: float = _VAR_EPS) -> jax.Array:
    """Per-utterance standardisation ``(z - mean(z)) / sqrt(var(z) + var_eps)``.

    Mean and variance are over all frames and bins of each example, so every
    utterance's features have mean 0 and standard deviation 1 (below the floor: 0).

    Args:
      z: features, shape (batch, frames, bins).
      var_eps: variance floor (> 0).

    Returns:
      Same shape as ``z``.
    """
    mean = z.mean(axis=(1, 2), keepdims=True)
    var = jnp.square(z - mean).mean(axis=(1, 2), keepdims=True)
    return (z - mean) * lax.rsqrt(var + var_eps)


@dataclasses.dataclass(frozen=True)
class Representation:
    """A representation space of waveforms: what smoothing in that space adds noise to.

    ``space="stft"`` is the magnitude spectrogram (:func:`stft_magnitude`, ``n_fft // 2
    + 1`` bins), ``space="mel"`` the log Mel-filterbank energies (:func:`log_mel`,
    ``n_mels`` bins); with ``normalize`` each utterance's features are standardised
    (:func:`normalize_features`), the paper's "normalized Mel-filterbank energies".
    The defaults suit 1 s clips at 16 kHz (the bundled WUW data): 25 ms Hann windows
    every 10 ms in a 512-point FFT, 101 frames per second, 40 Mel bands.
    Hashable (a field of a flax module and a static jit argument).

    Attributes:
      space: one of :data:`SPACES`.
      sample_rate: Hz of the waveforms (the Mel matrix depends on it).
      n_fft, hop_length, win_length, window, center, pad_mode: as in
        :func:`power_spectrogram`.
      n_mels, fmin, fmax: as in :func:`mel_filterbank` (``"mel"`` only).
      eps: floor of the log (``"mel"`` only).
      normalize: per-utterance standardisation of the features.
    """

    space: str = "mel"
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    win_length: int | None = 400
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    eps: float = 1e-6
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            fail("space", f"one of {SPACES}", repr(self.space))
        check_int("sample_rate", self.sample_rate, 1)
        if not isinstance(self.normalize, bool):
            fail("normalize", "a bool", repr(self.normalize))
        if not isinstance(self.center, bool):
            fail("center", "a bool", repr(self.center))
        t = max(self.n_fft, self.n_fft // 2 + 1) if isinstance(self.n_fft, int) else 2
        _check_frames(
            t, self.n_fft, self.hop_length, self.win_length, self.window, self.center, self.pad_mode
        )
        check_positive("eps", self.eps)
        if self.space == "mel":
            mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax)

    @classmethod
    def for_sample_rate(
        cls, space: str, sample_rate: int, *, normalize: bool = True, n_mels: int = 40
    ) -> Representation:
        """25 ms windows every 10 ms in the next power-of-two FFT, at ``sample_rate``.

        16 kHz: ``win_length=400, hop_length=160, n_fft=512`` (the class defaults);
        8 kHz: ``200, 80, 256``.
        """
        sr = check_int("sample_rate", sample_rate, 1)
        win = max(2, round(0.025 * sr))
        return cls(
            space=space,
            sample_rate=sr,
            n_fft=1 << (win - 1).bit_length(),
            hop_length=max(1, round(0.010 * sr)),
            win_length=win,
            n_mels=n_mels,
            normalize=normalize,
        )

    @property
    def bins(self) -> int:
        """Feature bins per frame: ``n_fft // 2 + 1`` (``"stft"``) or ``n_mels``."""
        return self.n_fft // 2 + 1 if self.space == "stft" else self.n_mels

    def shape(self, num_samples: int) -> tuple[int, int]:
        """``(frames, bins)`` of a waveform of ``num_samples`` samples."""
        t = check_int("num_samples", num_samples, 1)
        frames = (
            1 + t // self.hop_length if self.center else 1 + (t - self.n_fft) // self.hop_length
        )
        if frames < 1:
            fail("num_samples", f"at least n_fft = {self.n_fft} without centring", repr(t))
        return frames, self.bins

    def __call__(self, x: Any) -> jax.Array:
        """Features of waveforms ``x`` (batch, time) in [-1, 1]: shape (batch, frames, bins)."""
        stft = {
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "win_length": self.win_length,
            "window": self.window,
            "center": self.center,
            "pad_mode": self.pad_mode,
        }
        if self.space == "stft":
            z = stft_magnitude(x, **stft)
        else:
            z = log_mel(
                x,
                sample_rate=self.sample_rate,
                n_mels=self.n_mels,
                fmin=self.fmin,
                fmax=self.fmax,
                eps=self.eps,
                **stft,
            )
        return normalize_features(z) if self.normalize else z

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields (``Representation(**d)`` inverts it)."""
        return dataclasses.asdict(self)
