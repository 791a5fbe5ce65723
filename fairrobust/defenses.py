"""Preprocessing defenses g(x) composed in front of a model, and BPDA.

The AISec'23 framework (section 3.1) covers defenses of the form
``f(g(x + delta))``: a preprocessing step ``g`` cleans the (possibly attacked)
waveform before the classifier ``f`` sees it. Such a defense is evaluated exactly
like a trained one (AUC_acc, Defense Parity over an epsilon sweep), provided the
attack is run end to end through ``g``. This module ships three simple ``g``:

* :func:`lowpass` -- windowed-sinc FIR low-pass filter (differentiable);
* :func:`quantize` -- uniform amplitude quantisation (zero gradient a.e.);
* :func:`spectral_denoise` -- spectral subtraction with a noise floor estimated
  from the quietest frames (differentiable a.e., but gated / clipped).

Every ``g`` maps a float32 waveform ``[batch, T]`` in [-1, 1] to the same shape,
is pure ``jnp``, batched and jit-able. Outputs are not clipped: a filter may
overshoot [-1, 1] slightly (Gibbs ringing), as a real front end would.

Non-differentiable steps are attacked with BPDA (Athalye, Carlini & Wagner,
"Obfuscated Gradients Give a False Sense of Security", ICML 2018): the forward
pass runs ``g``, the backward pass treats it as the identity. :class:`Preprocess`
records which gradient the attack used; **results computed through BPDA must be
labelled as such** -- store :meth:`Preprocess.describe` (or
:meth:`Preprocess.to_dict`) beside every result.

Typical use::

    pre = make_preprocess("quantize", bits=8)          # gradient="bpda" by default
    apply_fn_pre = with_preprocess(apply_fn, pre)      # memoised: static-jit safe
    x_adv = attacks.pgd(apply_fn_pre, variables, x, y, eps, key, num_steps=100)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "PREPROCESSES",
    "DefenseSpec",
    "Preprocess",
    "bpda",
    "istft",
    "lowpass",
    "lowpass_kernel",
    "make_preprocess",
    "parse_preprocess",
    "quantize",
    "spectral_denoise",
    "stft",
    "with_preprocess",
]

Array = jax.Array
Gradient = Literal["exact", "bpda"]
GRADIENTS: tuple[str, ...] = ("exact", "bpda")


def _check_batch(x: Array, fn: str) -> None:
    """Raise ValueError unless ``x`` is a rank-2 ``[batch, T]`` waveform."""
    if jnp.ndim(x) != 2:
        raise ValueError(
            f"{fn}: x must be a waveform of shape (batch, time); got shape {jnp.shape(x)}"
        )


def _is_concrete(v: Any) -> bool:
    """True for Python / NumPy numbers (not tracers), which can be validated eagerly."""
    return isinstance(v, int | float | np.number)


# --------------------------------------------------------------------------- #
# Low-pass filter
# --------------------------------------------------------------------------- #


def lowpass_kernel(cutoff_hz: float | Array, sample_rate: float | Array, num_taps: int) -> Array:
    """Windowed-sinc (Hamming) low-pass FIR kernel with unit DC gain, shape ``(num_taps,)``.

    ``h[n] = w[n] * 2 fc sinc(2 fc (n - (N-1)/2))`` with ``fc = cutoff_hz / sample_rate``
    and ``w`` the symmetric Hamming window, scaled so ``sum(h) = 1``. This equals
    ``scipy.signal.firwin(num_taps, cutoff_hz, fs=sample_rate)``.
    """
    n = jnp.arange(num_taps, dtype=jnp.float32) - (num_taps - 1) / 2.0
    fc = jnp.asarray(cutoff_hz, jnp.float32) / jnp.asarray(sample_rate, jnp.float32)
    window = jnp.asarray(np.hamming(num_taps), jnp.float32)
    h = 2.0 * fc * jnp.sinc(2.0 * fc * n) * window
    return h / jnp.sum(h)


# The public functions validate eagerly, then call a jitted body: one compiled
# program instead of dozens of op-by-op dispatches when used outside jit.
@functools.partial(jax.jit, static_argnames=("num_taps",))
def _lowpass(x: Array, cutoff_hz: Any, sample_rate: Any, num_taps: int) -> Array:
    """Jitted body of :func:`lowpass`."""
    h = lowpass_kernel(cutoff_hz, sample_rate, num_taps).astype(x.dtype)
    half = num_taps // 2
    # conv_general_dilated is a cross-correlation; flip h (a no-op for the
    # symmetric kernel, kept so the code says "convolution"). HIGHEST precision
    # stops TF32 on GPU from costing ~3 decimal digits.
    y = lax.conv_general_dilated(
        x[:, None, :],
        h[::-1][None, None, :],
        window_strides=(1,),
        padding=[(half, half)],
        dimension_numbers=("NCH", "OIH", "NCH"),
        precision=lax.Precision.HIGHEST,
    )
    return y[:, 0, :]


def lowpass(
    x: Array,
    *,
    cutoff_hz: float | Array,
    sample_rate: float | Array,
    num_taps: int = 101,
) -> Array:
    """Zero-phase windowed-sinc FIR low-pass filter, applied per example.

    The kernel is :func:`lowpass_kernel` (Hamming window, unit DC gain; type-I
    linear phase because ``num_taps`` is odd). It is applied by 'same'
    convolution centred on each sample, so the ``(num_taps - 1) / 2`` samples of
    group delay are removed and the output is aligned with the input (zero
    phase). The signal is zero-padded at both ends, so the first and last
    ``num_taps // 2`` samples see a partial window. Linear in ``x`` and
    differentiable (also in ``cutoff_hz``, which may be traced for a sweep).

    Args:
      x: waveform in [-1, 1], shape ``(batch, T)``, float32.
      cutoff_hz: -6 dB cutoff frequency in Hz, in ``(0, sample_rate / 2)``.
      sample_rate: sampling rate of ``x`` in Hz.
      num_taps: odd filter length >= 3 (static). Transition width is about
        ``3.3 * sample_rate / num_taps`` Hz; stop-band attenuation ~53 dB.

    Returns:
      Filtered waveform, shape ``(batch, T)``, dtype of ``x``.

    Raises:
      ValueError: if ``x`` is not rank 2, ``num_taps`` is not an odd int >= 3, or
        a concrete ``cutoff_hz`` lies outside ``(0, sample_rate / 2)``.

    References:
      Oppenheim & Schafer, *Discrete-Time Signal Processing*, 3rd ed., sec. 7.5
      (window method); ``scipy.signal.firwin``.
    """
    _check_batch(x, "lowpass")
    if not isinstance(num_taps, int) or num_taps < 3 or num_taps % 2 == 0:
        raise ValueError(f"lowpass: num_taps must be an odd int >= 3; got {num_taps!r}")
    if _is_concrete(sample_rate) and not float(sample_rate) > 0:
        raise ValueError(f"lowpass: sample_rate must be > 0; got {sample_rate!r}")
    if (
        _is_concrete(cutoff_hz)
        and _is_concrete(sample_rate)
        and not 0 < float(cutoff_hz) < float(sample_rate) / 2
    ):
        raise ValueError(
            f"lowpass: cutoff_hz must be in (0, sample_rate/2 = {float(sample_rate) / 2}); "
            f"got {cutoff_hz!r}"
        )
    return _lowpass(x, cutoff_hz, sample_rate, num_taps)


# --------------------------------------------------------------------------- #
# Quantisation
# --------------------------------------------------------------------------- #


@functools.partial(jax.jit, static_argnames=("bits",))
def _quantize(x: Array, bits: int) -> Array:
    """Jitted body of :func:`quantize`."""
    step = 2.0 / (2.0 ** int(bits) - 1.0)
    q = jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) / step) * step - 1.0
    return jnp.clip(q, -1.0, 1.0).astype(x.dtype)


def quantize(x: Array, *, bits: int = 8) -> Array:
    """Uniform amplitude quantisation to ``2**bits`` levels spanning [-1, 1].

    ``q(x) = -1 + step * round((clip(x, -1, 1) + 1) / step)`` with
    ``step = 2 / (2**bits - 1)``, so the levels are ``-1, -1 + step, ..., 1``
    (both ends included; 0 is not a level, the level count being even).
    Idempotent (``q(q(x)) = q(x)``) and piecewise constant: its gradient is
    zero almost everywhere, so an attack through it must use
    BPDA (:func:`bpda`; the :class:`Preprocess` default for ``"quantize"``).

    Args:
      x: waveform, shape ``(batch, T)``; values outside [-1, 1] are clipped first.
      bits: bit depth in [1, 16] (static Python int).

    Returns:
      Quantised waveform in [-1, 1], shape ``(batch, T)``, dtype of ``x``.

    Raises:
      ValueError: if ``x`` is not rank 2 or ``bits`` is not an int in [1, 16].

    References:
      Guo et al., "Countering Adversarial Images using Input Transformations",
      ICLR 2018 (bit-depth reduction); Athalye et al., ICML 2018 (BPDA).
    """
    _check_batch(x, "quantize")
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 16:
        raise ValueError(f"quantize: bits must be an int in [1, 16]; got {bits!r}")
    return _quantize(x, int(bits))


# --------------------------------------------------------------------------- #
# STFT / ISTFT and the spectral denoiser
# --------------------------------------------------------------------------- #


def _check_stft_args(n_fft: int, hop: int, fn: str) -> None:
    """Validate static STFT sizes (ValueError naming the parameter)."""
    if not isinstance(n_fft, int) or n_fft < 4:
        raise ValueError(f"{fn}: n_fft must be an int >= 4; got {n_fft!r}")
    if not isinstance(hop, int) or hop < 1 or hop > n_fft // 2 or n_fft % hop != 0:
        raise ValueError(
            f"{fn}: hop must be an int in [1, n_fft/2 = {n_fft // 2}] dividing n_fft = {n_fft}; "
            f"got {hop!r}"
        )


def _num_frames(length: int, n_fft: int, hop: int) -> int:
    """Frames covering a signal of ``length`` samples after centre padding."""
    padded = length + 2 * (n_fft // 2)
    return 1 + max(0, math.ceil((padded - n_fft) / hop))


def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window('hann', n_fft)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def _overlap_add(frames: Array, hop: int) -> Array:
    """Overlap-add ``[..., F, n_fft]`` frames at stride ``hop`` (``n_fft % hop == 0``).

    Deterministic (no scatter-add atomics): each of the ``n_fft / hop`` hop-sized
    slices of every frame is laid end to end and shifted into place.
    """
    *lead, num_frames, n_fft = frames.shape
    r = n_fft // hop
    out_len = (num_frames + r - 1) * hop
    pad_lead = [(0, 0)] * len(lead)
    out = jnp.zeros((*lead, out_len), frames.dtype)
    for j in range(r):  # r is small and static (4 for the defaults)
        block = frames[..., j * hop : (j + 1) * hop].reshape(*lead, num_frames * hop)
        out = out + jnp.pad(block, [*pad_lead, (j * hop, (r - 1 - j) * hop)])
    return out


@functools.partial(jax.jit, static_argnames=("n_fft", "hop"))
def _stft(x: Array, n_fft: int, hop: int) -> Array:
    """Jitted body of :func:`stft`."""
    length = x.shape[1]
    num_frames = _num_frames(length, n_fft, hop)
    half = n_fft // 2
    right = (num_frames - 1) * hop + n_fft - (length + 2 * half)
    xp = jnp.pad(x, [(0, 0), (half, half + right)])
    idx = hop * np.arange(num_frames)[:, None] + np.arange(n_fft)[None, :]
    frames = xp[:, idx]  # [b, F, n_fft]
    window = jnp.asarray(_hann(n_fft), x.dtype)
    return jnp.fft.rfft(frames * window[None, None, :], n=n_fft, axis=-1)


@functools.lru_cache(maxsize=64)
def _inverse_window_sum(num_frames: int, length: int, n_fft: int, hop: int) -> np.ndarray:
    """``1 / sum_t w[n - t hop]^2`` on the original samples (static sizes, so NumPy)."""
    w2 = _hann(n_fft) ** 2
    wsum = np.zeros((num_frames + n_fft // hop - 1) * hop)
    for t in range(num_frames):
        wsum[t * hop : t * hop + n_fft] += w2
    half = n_fft // 2
    wsum = wsum[half : half + length]
    if wsum.shape[0] != length or np.any(wsum <= 1e-8):
        raise ValueError(
            f"istft: {num_frames} frames of hop {hop} cannot cover length={length} samples"
        )
    return 1.0 / wsum


@functools.partial(jax.jit, static_argnames=("length", "n_fft", "hop"))
def _istft(spec: Array, length: int, n_fft: int, hop: int) -> Array:
    """Jitted body of :func:`istft`."""
    frames = jnp.fft.irfft(spec, n=n_fft, axis=-1)
    window = jnp.asarray(_hann(n_fft), frames.dtype)
    num = _overlap_add(frames * window[None, None, :], hop)
    inv = jnp.asarray(_inverse_window_sum(spec.shape[1], length, n_fft, hop), num.dtype)
    half = n_fft // 2
    return num[:, half : half + length] * inv[None, :]


@functools.partial(jax.jit, static_argnames=("n_fft", "hop", "noise_frac"))
def _spectral_denoise(
    x: Array, over_subtraction: Any, floor: Any, n_fft: int, hop: int, noise_frac: float
) -> Array:
    """Jitted body of :func:`spectral_denoise`."""
    length = x.shape[1]
    spec = _stft(x, n_fft, hop)  # [b, F, K]
    # sqrt(re^2 + im^2 + tiny) rather than abs(): finite gradient at 0.
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    mag = jnp.sqrt(power + 1e-20)
    num_frames = spec.shape[1]
    k = max(1, round(noise_frac * num_frames))
    quiet = jnp.argsort(jnp.sum(power, axis=-1), axis=1)[:, :k]  # [b, k] frame ids
    noise = jnp.mean(jnp.take_along_axis(mag, quiet[:, :, None], axis=1), axis=1)  # [b, K]
    gain = 1.0 - over_subtraction * noise[:, None, :] / jnp.maximum(mag, 1e-10)
    gain = jnp.clip(gain, floor, 1.0)
    return _istft(spec * gain, length, n_fft, hop).astype(x.dtype)


def stft(x: Array, *, n_fft: int = 256, hop: int = 64) -> Array:
    """Short-time Fourier transform with a periodic Hann window.

    The signal is zero-padded by ``n_fft // 2`` on both sides (frame ``t`` is
    centred on sample ``t * hop``) and on the right to a whole number of hops,
    framed, windowed and ``rfft``-ed.

    Args:
      x: waveform, shape ``(batch, T)``.
      n_fft: frame length (static int >= 4).
      hop: frame stride (static), ``1 <= hop <= n_fft / 2`` and dividing ``n_fft``.

    Returns:
      Complex spectrogram, shape ``(batch, F, n_fft // 2 + 1)`` with
      ``F = 1 + ceil(T / hop)`` for even ``n_fft``.

    Raises:
      ValueError: if ``x`` is not rank 2 or ``n_fft`` / ``hop`` are invalid.
    """
    _check_batch(x, "stft")
    _check_stft_args(n_fft, hop, "stft")
    return _stft(x, n_fft, hop)


def istft(spec: Array, *, length: int, n_fft: int = 256, hop: int = 64) -> Array:
    """Inverse of :func:`stft` by weighted overlap-add with window-sum normalisation.

    ``x[n] = sum_t w[n - t hop] y_t[n - t hop] / sum_t w[n - t hop]^2`` where ``y_t``
    is the ``irfft`` of frame ``t`` (Griffin & Lim 1984, eq. 6). For an unmodified
    spectrogram this reconstructs ``x`` exactly (up to float rounding), because
    ``hop <= n_fft / 2`` keeps the window sum positive on every original sample.

    Args:
      spec: complex spectrogram, shape ``(batch, F, n_fft // 2 + 1)``.
      length: number of samples ``T`` of the original signal (static).
      n_fft: frame length used by :func:`stft` (static).
      hop: frame stride used by :func:`stft` (static).

    Returns:
      Real waveform, shape ``(batch, length)``.

    References:
      D. Griffin and J. Lim, "Signal estimation from modified short-time Fourier
      transform", IEEE TASSP 32(2), 1984.
    """
    _check_stft_args(n_fft, hop, "istft")
    if jnp.ndim(spec) != 3 or spec.shape[-1] != n_fft // 2 + 1:
        raise ValueError(
            f"istft: spec must have shape (batch, frames, n_fft//2+1 = {n_fft // 2 + 1}); "
            f"got {jnp.shape(spec)}"
        )
    _inverse_window_sum(spec.shape[1], length, n_fft, hop)  # raises if not invertible
    return _istft(spec, length, n_fft, hop)


def spectral_denoise(
    x: Array,
    *,
    n_fft: int = 256,
    hop: int = 64,
    over_subtraction: float | Array = 2.0,
    floor: float | Array = 0.1,
    noise_frac: float = 0.1,
) -> Array:
    """Spectral-subtraction denoiser with a noise floor from the quietest frames.

    1. ``X = stft(x)`` (Hann, ``n_fft``, ``hop``); magnitude ``|X[b, t, k]|``.
    2. Noise magnitude per example and frequency bin: the mean of ``|X[b, t, k]|``
       over the ``max(1, round(noise_frac * F))`` frames of lowest energy
       ``sum_k |X[b, t, k]|^2`` (speech clips start and end in near-silence, so
       these frames are mostly noise).
    3. Soft gain ``G = clip(1 - over_subtraction * N[b, k] / |X[b, t, k]|, floor, 1)``:
       bins near the noise floor are attenuated to ``floor`` (spectral gating),
       bins well above it pass almost unchanged.
    4. ``istft(G * X)``, which keeps the noisy phase. With ``over_subtraction = 0``
       the gain is 1 and the output equals ``x`` (exact reconstruction).

    The frame ranking (argsort) and the clipping make the map piecewise smooth;
    the :class:`Preprocess` default attacks it with BPDA, ``gradient="exact"`` uses
    the a.e. gradient instead.

    Args:
      x: waveform in [-1, 1], shape ``(batch, T)``.
      n_fft: STFT frame length (static; 256 = 16 ms at 16 kHz).
      hop: STFT stride (static), dividing ``n_fft`` and at most ``n_fft / 2``.
      over_subtraction: noise over-estimation factor alpha >= 0 (may be traced).
      floor: spectral floor beta in [0, 1], the smallest gain (may be traced).
      noise_frac: fraction of frames, in (0, 1], used for the noise estimate (static).

    Returns:
      Denoised waveform, shape ``(batch, T)``, dtype of ``x`` (not clipped).

    Raises:
      ValueError: if ``x`` is not rank 2 or a parameter is out of range.

    References:
      S. Boll, "Suppression of acoustic noise in speech using spectral
      subtraction", IEEE TASSP 27(2), 1979; M. Berouti, R. Schwartz, J. Makhoul,
      "Enhancement of speech corrupted by acoustic noise", ICASSP 1979
      (over-subtraction and spectral floor).
    """
    _check_batch(x, "spectral_denoise")
    _check_stft_args(n_fft, hop, "spectral_denoise")
    if not isinstance(noise_frac, int | float) or not 0 < noise_frac <= 1:
        raise ValueError(f"spectral_denoise: noise_frac must be in (0, 1]; got {noise_frac!r}")
    if _is_concrete(over_subtraction) and not float(over_subtraction) >= 0:
        raise ValueError(
            f"spectral_denoise: over_subtraction must be >= 0; got {over_subtraction!r}"
        )
    if _is_concrete(floor) and not 0 <= float(floor) <= 1:
        raise ValueError(f"spectral_denoise: floor must be in [0, 1]; got {floor!r}")
    return _spectral_denoise(x, over_subtraction, floor, n_fft, hop, float(noise_frac))


def _identity(x: Array) -> Array:
    """The "none" preprocessing."""
    _check_batch(x, "none")
    return x


# --------------------------------------------------------------------------- #
# BPDA
# --------------------------------------------------------------------------- #


def bpda(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Backward Pass Differentiable Approximation with the identity (straight-through).

    Returns ``g`` with ``g(x) = fn(x)`` in the forward pass and vector-Jacobian
    product ``v -> v`` (i.e. ``dg/dx`` is replaced by ``I``), implemented with
    ``jax.custom_vjp``. This is the BPDA of Athalye et al. for a preprocessing
    step with ``fn(x) ~ x``: an attack then optimises ``f(fn(x + delta))`` using
    ``grad f`` evaluated at ``fn(x + delta)``. Results obtained this way must be
    reported as "attacked with BPDA" (see :meth:`Preprocess.describe`).

    Reverse mode only (``jax.grad``, ``jax.vjp``); ``jax.jvp`` is not defined
    for ``custom_vjp`` functions.

    Args:
      fn: a function of one array ``x`` returning an array of the same shape.

    Returns:
      The straight-through version of ``fn``.

    Raises:
      ValueError: (when called) if ``fn(x)`` does not have the shape of ``x``.

    References:
      A. Athalye, N. Carlini, D. Wagner, "Obfuscated Gradients Give a False
      Sense of Security", ICML 2018, sec. 4.1; Y. Bengio et al., "Estimating or
      Propagating Gradients Through Stochastic Neurons", 2013 (straight-through).
    """

    def _forward(x: Array) -> Array:
        y = fn(x)
        if jnp.shape(y) != jnp.shape(x):
            raise ValueError(
                f"bpda: fn must preserve the input shape {jnp.shape(x)}; got {jnp.shape(y)}"
            )
        return y

    @jax.custom_vjp
    def g(x: Array) -> Array:
        return _forward(x)

    def g_fwd(x: Array) -> tuple[Array, None]:
        return _forward(x), None

    def g_bwd(_: None, v: Array) -> tuple[Array]:
        return (v,)

    g.defvjp(g_fwd, g_bwd)
    functools.update_wrapper(g, fn)
    return g


# --------------------------------------------------------------------------- #
# Registry and config
# --------------------------------------------------------------------------- #

_REQUIRED = object()  # sentinel: parameter without a default


@dataclasses.dataclass(frozen=True)
class DefenseSpec:
    """Registry entry: the function, whether its true gradient is usable, its params.

    Attributes:
      fn: ``g(x, **params)``, waveform ``(batch, T)`` -> ``(batch, T)``.
      differentiable: True when the exact gradient is informative (the default
        ``gradient`` is then ``"exact"``); False means the default is ``"bpda"``.
      params: parameter name -> (type, default or ``_REQUIRED``, check, message).
    """

    fn: Callable[..., Array]
    differentiable: bool
    params: Mapping[str, tuple[type, Any, Callable[[Any, Mapping[str, Any]], bool], str]]


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool) and math.isfinite(v)


PREPROCESSES: Mapping[str, DefenseSpec] = MappingProxyType(
    {
        "none": DefenseSpec(_identity, True, {}),
        "lowpass": DefenseSpec(
            lowpass,
            True,
            {
                "cutoff_hz": (
                    float,
                    _REQUIRED,
                    lambda v, p: 0 < v < p["sample_rate"] / 2,
                    "a number in (0, sample_rate/2)",
                ),
                "sample_rate": (float, _REQUIRED, lambda v, p: v > 0, "a number > 0 (Hz)"),
                "num_taps": (
                    int,
                    101,
                    lambda v, p: v >= 3 and v % 2 == 1,
                    "an odd int >= 3",
                ),
            },
        ),
        "quantize": DefenseSpec(
            quantize,
            False,
            {"bits": (int, 8, lambda v, p: 1 <= v <= 16, "an int in [1, 16]")},
        ),
        "spectral_denoise": DefenseSpec(
            spectral_denoise,
            False,
            {
                "n_fft": (int, 256, lambda v, p: v >= 4, "an int >= 4"),
                "hop": (
                    int,
                    64,
                    lambda v, p: 1 <= v <= p["n_fft"] // 2 and p["n_fft"] % v == 0,
                    "an int in [1, n_fft/2] dividing n_fft",
                ),
                "over_subtraction": (float, 2.0, lambda v, p: v >= 0, "a number >= 0"),
                "floor": (float, 0.1, lambda v, p: 0 <= v <= 1, "a number in [0, 1]"),
                "noise_frac": (float, 0.1, lambda v, p: 0 < v <= 1, "a number in (0, 1]"),
            },
        ),
    }
)
"""Preprocessing defenses by name, with their ``differentiable`` flag and parameters."""


def _normalise_params(name: str, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Check names/types/ranges, fill defaults, return sorted ``(key, value)`` pairs."""
    spec = PREPROCESSES[name]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ValueError(
            f"preprocess {name!r}: unknown parameter {unknown[0]!r}; "
            f"valid parameters: {sorted(spec.params) or 'none'}"
        )
    out: dict[str, Any] = {}
    for key, (typ, default, _, expected) in spec.params.items():
        value = params.get(key, default)
        if value is _REQUIRED:
            raise ValueError(f"preprocess {name!r}: parameter {key!r} is required ({expected})")
        ok = _is_int(value) if typ is int else _is_real(value)
        if not ok:
            raise ValueError(
                f"preprocess {name!r}: parameter {key!r} must be {expected}; got {value!r}"
            )
        out[key] = typ(value)
    for key, (_, _, check, expected) in spec.params.items():  # cross-parameter checks
        if not check(out[key], out):
            raise ValueError(
                f"preprocess {name!r}: parameter {key!r} must be {expected}; got {out[key]!r}"
            )
    return tuple(sorted(out.items()))


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """A configured preprocessing defense ``g``; hashable, JSON-able, callable.

    Build with :func:`make_preprocess`. ``Preprocess(...)`` validates too, so a
    config read back from JSON (:meth:`from_dict`) is checked the same way.

    Attributes:
      name: ``"none" | "lowpass" | "quantize" | "spectral_denoise"``.
      params: sorted ``(key, value)`` pairs of every parameter, defaults filled.
      gradient: ``"exact"`` (autodiff through ``g``) or ``"bpda"`` (straight-through,
        :func:`bpda`). ``None`` selects the registry default: exact for
        differentiable defenses (``none``, ``lowpass``), BPDA otherwise.

    Calling ``pre(x)`` applies ``g`` to a ``(batch, T)`` waveform, with the
    configured gradient. Label results with :meth:`describe`.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    gradient: Gradient | None = None

    def __post_init__(self) -> None:
        if self.name not in PREPROCESSES:
            raise ValueError(
                f"preprocess: name must be one of {sorted(PREPROCESSES)}; got {self.name!r}"
            )
        keys = [kv[0] for kv in self.params]
        if len(set(keys)) != len(keys):
            raise ValueError(f"preprocess {self.name!r}: params has duplicate keys {keys}")
        object.__setattr__(self, "params", _normalise_params(self.name, dict(self.params)))
        gradient = self.gradient
        if gradient is None:
            gradient = "exact" if PREPROCESSES[self.name].differentiable else "bpda"
        if gradient not in GRADIENTS:
            raise ValueError(
                f"preprocess: gradient must be one of {list(GRADIENTS)}; got {self.gradient!r}"
            )
        object.__setattr__(self, "gradient", gradient)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)

    @property
    def differentiable(self) -> bool:
        """The registry's flag: is the exact gradient of ``g`` informative?"""
        return PREPROCESSES[self.name].differentiable

    def __call__(self, x: Array) -> Array:
        """Apply ``g`` to ``x`` of shape ``(batch, T)``; same shape out."""
        return _build(self)(x)

    def describe(self) -> str:
        """Human-readable label stating how the defense was attacked.

        For example ``"quantize(bits=8), attacked with BPDA (straight-through
        gradient)"``. Every result computed through a preprocessing defense must
        carry this label (or :meth:`to_dict`).
        """
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        head = f"{self.name}({args})"
        if self.name == "none":
            return "none (no preprocessing)"
        if self.gradient == "bpda":
            return f"{head}, attacked with BPDA (straight-through gradient)"
        if not self.differentiable:
            return f"{head}, attacked with the exact gradient (may be masked: zero a.e.)"
        return f"{head}, attacked with the exact gradient"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record ``{"name", "params", "gradient", "description"}``."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "gradient": self.gradient,
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict` (``description`` is ignored)."""
        return cls(
            name=d["name"],
            params=tuple(sorted(dict(d.get("params", {})).items())),
            gradient=d.get("gradient"),
        )


def make_preprocess(name: str, *, gradient: Gradient | None = None, **params: Any) -> Preprocess:
    """Build and validate a :class:`Preprocess`.

    Args:
      name: one of ``"none"``, ``"lowpass"``, ``"quantize"``, ``"spectral_denoise"``.
      gradient: ``"exact"``, ``"bpda"`` or None for the registry default
        (exact for ``lowpass``, BPDA for ``quantize`` and ``spectral_denoise``).
      **params: the defense's keyword parameters; omitted ones take the defaults
        of :func:`lowpass` / :func:`quantize` / :func:`spectral_denoise`
        (``lowpass`` requires ``cutoff_hz`` and ``sample_rate``).

    Returns:
      A frozen, hashable :class:`Preprocess` with every parameter filled in.

    Raises:
      ValueError: unknown name (listing the options), unknown / missing /
        out-of-range parameter (naming it and the expected range), or bad
        ``gradient``.

    Example:
      >>> make_preprocess("quantize", bits=8).describe()
      'quantize(bits=8), attacked with BPDA (straight-through gradient)'
    """
    return Preprocess(name=name, params=tuple(sorted(params.items())), gradient=gradient)


@functools.cache
def _build(pre: Preprocess) -> Callable[[Array], Array]:
    """The (memoised) function applying ``pre``, wrapped in BPDA when configured."""
    fn = functools.partial(PREPROCESSES[pre.name].fn, **pre.kwargs)
    if pre.name == "none":
        return fn
    return bpda(fn) if pre.gradient == "bpda" else fn


def with_preprocess(
    apply_fn: Callable[[Any, Array], Array], preprocess: Preprocess
) -> Callable[[Any, Array], Array]:
    """Compose a preprocessing defense in front of a model: ``f(g(x))``.

    Returns ``(variables, x) -> apply_fn(variables, preprocess(x))``. The result
    is memoised on ``(apply_fn, preprocess)`` (the same object is returned for
    the same pair), so it is a valid static jit argument for the attacks
    (``attacks.pgd(with_preprocess(apply_fn, pre), variables, x, y, eps, key,
    num_steps=...)``) and a sweep does not recompile. ``preprocess.name ==
    "none"`` returns ``apply_fn`` itself. Gradients flow through ``g`` exactly
    or by BPDA as ``preprocess.gradient`` says; label results with
    ``preprocess.describe()``.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits [batch, C]``, ``x`` of shape
        ``(batch, T)``; must be hashable (functions are).
      preprocess: a :class:`Preprocess` from :func:`make_preprocess`.

    Returns:
      The defended ``apply_fn'(variables, x) -> logits [batch, C]``.

    Raises:
      ValueError: if ``preprocess`` is not a :class:`Preprocess`.
    """
    if not isinstance(preprocess, Preprocess):
        raise ValueError(
            f"with_preprocess: preprocess must be a Preprocess (see make_preprocess); "
            f"got {type(preprocess).__name__}"
        )
    if preprocess.name == "none":
        return apply_fn
    return _compose(apply_fn, preprocess)


@functools.cache
def _compose(
    apply_fn: Callable[[Any, Array], Array], preprocess: Preprocess
) -> Callable[[Any, Array], Array]:
    """Memoised body of :func:`with_preprocess`."""
    g = _build(preprocess)

    def defended_apply_fn(variables: Any, x: Array) -> Array:
        return apply_fn(variables, g(x))

    defended_apply_fn.__name__ = f"{getattr(apply_fn, '__name__', 'apply_fn')}_{preprocess.name}"
    defended_apply_fn.__doc__ = f"{apply_fn!r} behind {preprocess.describe()}."
    defended_apply_fn.preprocess = preprocess  # type: ignore[attr-defined]
    return defended_apply_fn


def parse_preprocess(spec: str, sample_rate: int | None = None) -> Preprocess:
    """Parse ``"name"`` / ``"name:key=value,..."`` into a :class:`Preprocess`.

    Values are read as int, then float, else kept as text. ``gradient=exact|bpda``
    selects the attack gradient. For ``lowpass`` the dataset's ``sample_rate``
    is filled in when not given (a placeholder of 16 kHz when validating a
    config without a dataset).

    Raises:
      ValueError: malformed spec, unknown defense or parameter (from
        :func:`make_preprocess`).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"preprocess: expected 'name' or 'name:key=value,...', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"preprocess {spec!r}: expected key=value, got {item!r}")
        params[key.strip()] = _parse_scalar(value.strip())
    gradient = params.pop("gradient", None)
    if name.strip() == "lowpass" and "sample_rate" not in params:
        params["sample_rate"] = float(sample_rate or 16000)
    try:
        return make_preprocess(name.strip(), gradient=gradient, **params)
    except ValueError as exc:
        raise ValueError(f"preprocess {spec!r}: {exc}") from exc


def _parse_scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
