"""Flax linen models: M5 / M5-Tricks on raw waveforms, SpecCNN on a representation.

M5 (Dai et al., 2017, "Very deep convolutional neural networks for raw
waveforms"), in the size of the torchaudio speech-command tutorial, is the
model of the AISec'23 case study ("Measuring Equality in Machine Learning
Security Defenses", Sec. 4): a strided convolution over the waveform followed
by three small convolution blocks, global average pooling and a dense layer.
M5-Tricks is the same network without BatchNorm (Wang et al., 2022, "Removing
Batch Normalization Boosts Adversarial Training") and with SiLU activations.

Layout (``w = width``, all convolutions ``VALID``, every pool non-overlapping)::

    x [b, T] -> normalise -> conv(k=80, s=16, 1 -> w)   -> BN -> act -> maxpool 4
             -> conv(k=3, w -> w)     -> BN -> act -> maxpool 4
             -> conv(k=3, w -> 2w)    -> BN -> act -> maxpool 4
             -> conv(k=3, 2w -> 2w)   -> BN -> act -> maxpool 4
             -> mean over time (features [b, 2w]) -> dense -> logits [b, C]

The optional per-example standardisation lives inside the model, so attacks
and smoothing noise act on the raw waveform in [-1, 1], as in the paper.

Performance: on XLA:CPU the input gradient of a strided ``lax.conv`` (and of
``reduce_window`` max pooling) is several times slower than the forward pass,
which makes PGD slow. Convolutions here therefore use a ``jax.custom_vjp``:
the forward pass is the ordinary ``lax.conv_general_dilated`` (fastest
forward), the backward pass is written as matmuls (``dy @ K^T`` followed by an
overlap-add of ``kernel / stride`` shifted slabs for the input gradient, and
``frames^T @ dy`` for the kernel gradient). Max pooling is a reshape + ``max``
(window == stride) whose gradient is an elementwise first-maximum mask. Logits are
bit-for-bit those of ``flax.linen.Conv`` + ``nn.max_pool`` on the same
parameters (checked in ``tests/test_models.py``); parameter names and shapes
are those of ``nn.Conv`` / ``nn.BatchNorm`` / ``nn.Dense``.

:class:`SpecCNN` (``"spec-stft"``, ``"spec-mel"``) classifies a representation of the
waveform (``fairrobust.frontend``: magnitude spectrogram or normalised log-Mel
energies), computed inside the model so that training, attacks and waveform smoothing
use it like M5; :func:`representation_fn` and :func:`representation_logits_fn` split
it at the representation, for smoothing in that space.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fairrobust._checks import check_int, fail
from fairrobust.frontend import Representation

__all__ = [
    "CONV_DIMENSIONS",
    "CONV_IMPLS",
    "M5",
    "MODEL_NAMES",
    "NORMALIZE_OPTIONS",
    "SPEC_MODELS",
    "ApplyFn",
    "LinearStem",
    "Model",
    "SpecCNN",
    "count_params",
    "features_fn",
    "init_variables",
    "input_len_minimum",
    "linear_stem_combine",
    "linear_stem_fn",
    "linear_stem_stats",
    "logits_fn",
    "make_model",
    "min_input_len",
    "representation_fn",
    "representation_logits_fn",
]

#: Model names accepted by :func:`make_model`.
MODEL_NAMES = ("m5", "m5-tricks", "spec-stft", "spec-mel")
#: The :class:`SpecCNN` names among them and the representation space of each.
SPEC_MODELS = {"spec-stft": "stft", "spec-mel": "mel"}
#: Convolution formulations accepted by :class:`M5` (``conv_impl``).
CONV_IMPLS = ("lax", "matmul")
#: Input normalisations accepted by :class:`M5`.
NORMALIZE_OPTIONS = ("standardize", "none")

# Variance floor of the per-example standardisation: a standard deviation of
# 1e-4 (-80 dBFS) or less is not amplified further, and digital silence maps
# to zeros instead of NaN.
_VAR_EPS = 1e-8
# BatchNorm hyper-parameters of torch.nn.BatchNorm1d (momentum 0.1 in torch's
# convention is 0.9 in flax's), as in the torchaudio M5.
_BN_MOMENTUM = 0.9
_BN_EPS = 1e-5
_POOL = 4
#: ``lax.conv_general_dilated`` layout of every M5 convolution: (input, kernel, output).
CONV_DIMENSIONS = ("NWC", "WIO", "NWC")

ApplyFn = Callable[[Any, jax.Array], jax.Array]
"""A model as the kernels use it: ``apply_fn(variables, x [b, T]) -> logits [b, C]``.

Kernels take it as a static jit argument, so it must be hashable and stable across
calls (:func:`logits_fn` is memoised per model)."""


def _frames(x: jax.Array, k: int, stride: int, length: int) -> jax.Array:
    """im2col: frame l = x[l*stride : l*stride + k] flattened (tap, channel), [b, L, k*I].

    Built from ``k // stride`` shifted row views of x reshaped by ``stride`` (no gather).
    """
    b, _, c_in = x.shape
    n = k // stride
    rows = length + n - 1
    x_rows = x[:, : rows * stride].reshape(b, rows, stride * c_in)
    return jnp.concatenate([x_rows[:, j : j + length] for j in range(n)], axis=-1)


def _conv_forward(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "lax") -> jax.Array:
    """VALID 1-D convolution, x [b, T, I], kernel [K, I, O] -> [b, L, O]."""
    k, c_in, c_out = kernel.shape
    if impl == "matmul" and k % stride == 0:
        length = (x.shape[1] - k) // stride + 1
        return _frames(x, k, stride, length) @ kernel.reshape(k * c_in, c_out)
    return lax.conv_general_dilated(
        x, kernel, (stride,), "VALID", dimension_numbers=CONV_DIMENSIONS
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv1d(x: jax.Array, kernel: jax.Array, stride: int, impl: str = "lax") -> jax.Array:
    """VALID 1-D convolution with a matmul backward pass (fast input gradients on CPU).

    Same values as ``lax.conv_general_dilated(x, kernel, (stride,), "VALID")``
    in NWC / WIO layout.

    Args:
      x: input, shape (batch, time, in_channels).
      kernel: shape (K, in_channels, out_channels).
      stride: convolution stride (static).
      impl: forward formulation (static): ``"lax"`` (``lax.conv``, fastest for one
        model) or ``"matmul"`` (im2col frames @ kernel; under ``jax.vmap`` over
        stacked kernels this is a batched matmul instead of XLA:CPU's slow grouped
        convolution, see ``fairrobust.engine.grid``). Equal up to float rounding.

    Returns:
      Shape (batch, (time - K) // stride + 1, out_channels).
    """
    return _conv_forward(x, kernel, stride, impl)


def _conv1d_fwd(x, kernel, stride, impl):
    return _conv_forward(x, kernel, stride, impl), (x, kernel)


def _conv1d_bwd(stride, impl, res, dy):
    x, kernel = res
    k, c_in, c_out = kernel.shape
    if k % stride:  # no reshape-based frame layout: fall back to XLA's transpose rules
        _, vjp = jax.vjp(lambda a, b: _conv_forward(a, b, stride), x, kernel)
        return vjp(dy)
    b, t, _ = x.shape
    length = dy.shape[1]
    n = k // stride  # kernel taps per stride: frame l = rows l .. l+n-1 of x reshaped by stride
    rows = length + n - 1
    # Input gradient: per-frame gradient dy @ K^T, then overlap-add of the n
    # sub-blocks into the [rows, stride * I] view of x (no scatter, no strided conv).
    dframes = (dy @ kernel.reshape(k * c_in, c_out).T).reshape(b, length, n, stride * c_in)
    dx_rows = sum(jnp.pad(dframes[:, :, j], ((0, 0), (j, n - 1 - j), (0, 0))) for j in range(n))
    dx = dx_rows.reshape(b, rows * stride, c_in)  # pyright: ignore[reportAttributeAccessIssue]
    dx = jnp.pad(dx, ((0, 0), (0, t - rows * stride), (0, 0)))
    # Kernel gradient: frames^T @ dy, frames built from n shifted row views.
    frames = _frames(x, k, stride, length)
    dkernel = jnp.einsum("blf,blo->fo", frames, dy).reshape(k, c_in, c_out)
    return dx, dkernel


conv1d.defvjp(_conv1d_fwd, _conv1d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(h: jax.Array, window: int = _POOL) -> jax.Array:
    """Non-overlapping VALID max pool over time, [b, L, C] -> [b, L // window, C].

    The gradient goes to the first maximum of each window, as in
    ``nn.max_pool`` / ``torch.nn.MaxPool1d`` (ties are common early in training:
    windows of equal post-ReLU values), computed as an elementwise mask instead
    of XLA's slow ``select_and_scatter``.
    """
    return _pool_windows(h, window).max(axis=2)


def _pool_windows(h: jax.Array, window: int) -> jax.Array:
    b, length, c = h.shape
    out = length // window
    return h[:, : out * window].reshape(b, out, window, c)


def _max_pool_fwd(h, window):
    return _max_pool(h, window), h


def _max_pool_bwd(window, h, dy):
    windows = _pool_windows(h, window)
    first = jax.nn.one_hot(jnp.argmax(windows, axis=2), window, axis=2, dtype=dy.dtype)
    dh = (first * dy[:, :, None, :]).reshape(dy.shape[0], -1, dy.shape[-1])
    return (jnp.pad(dh, ((0, 0), (0, h.shape[1] - dh.shape[1]), (0, 0))),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


class Conv1D(nn.Module):
    """``nn.Conv`` (1-D, VALID, with bias) whose backward pass is matmul-based.

    Parameters ``kernel`` [K, in, out] and ``bias`` [out] have the names, shapes
    and initialisers of ``flax.linen.Conv``.
    """

    features: int
    kernel_size: int
    stride: int = 1
    impl: str = "lax"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (self.kernel_size, x.shape[-1], self.features),
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv1d(x, kernel, self.stride, self.impl) + bias.reshape(1, 1, -1)  # pyright: ignore[reportOperatorIssue]


def _stage_lengths(input_len: int) -> list[int]:
    """Time lengths after each conv and each pool: [L1, P1, L2, P2, L3, P3, L4, P4]."""
    lengths = []
    length = (input_len - 80) // 16 + 1
    for i in range(4):
        if i:
            length = length - 2
        lengths.append(length)
        length = length // _POOL if length > 0 else 0
        lengths.append(length)
    return lengths


@functools.cache
def min_input_len() -> int:
    """Shortest waveform (samples) M5 accepts: every pooled stage keeps >= 1 step (6,848)."""
    t = 80
    while min(_stage_lengths(t)) < 1:
        t += 16
    return t


class M5(nn.Module):
    """M5 / M5-Tricks on raw waveforms (see the module docstring for the layout).

    Attributes:
      num_classes: number of output classes C.
      width: channels of the first two convolutions (``2 * width`` for the last
        two); 32 is the torchaudio tutorial size, 128 the large variant.
      tricks: M5-Tricks when True: no BatchNorm, SiLU instead of ReLU.
      normalize: ``"standardize"`` (per-example zero mean, unit variance over
        time, inside the model) or ``"none"``.
      conv_impl: forward formulation of the convolutions, ``"lax"`` (default) or
        ``"matmul"`` (see :func:`conv1d`); same parameters, logits equal up to
        float rounding. ``fairrobust.engine.grid`` uses ``"matmul"`` on CPU.
    """

    num_classes: int
    width: int = 32
    tricks: bool = False
    normalize: str = "standardize"
    conv_impl: str = "lax"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.normalize not in NORMALIZE_OPTIONS:
            raise ValueError(
                f"normalize: expected one of {NORMALIZE_OPTIONS}, got {self.normalize!r}"
            )
        if int(self.num_classes) < 1:
            raise ValueError(f"num_classes: expected >= 1, got {self.num_classes}")
        if int(self.width) < 1:
            raise ValueError(f"width: expected >= 1, got {self.width}")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl: expected one of {CONV_IMPLS}, got {self.conv_impl!r}")

    @nn.compact
    def __call__(
        self, x: jax.Array, *, train: bool = False, return_features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Classify waveforms.

        Args:
          x: waveform in [-1, 1], shape (batch, time), time >= :func:`min_input_len`.
          train: use batch statistics and update the BatchNorm running averages
            (apply with ``mutable=["batch_stats"]``); eval mode otherwise.
          return_features: also return the penultimate features.

        Returns:
          logits, shape (batch, num_classes); with ``return_features`` the pair
          ``(logits, features)``, features of shape (batch, 2 * width) taken
          after the global average pool, before the dense layer.
        """
        self.validate()
        if x.ndim != 2:
            raise ValueError(f"x: expected shape (batch, time), got {x.shape}")
        if x.shape[1] < min_input_len():
            raise ValueError(
                f"x: M5 needs at least {min_input_len()} samples per waveform "
                f"(four VALID conv + pool-4 stages), got shape {x.shape}"
            )
        if self.normalize == "standardize":
            mean = x.mean(axis=1, keepdims=True)
            var = jnp.square(x - mean).mean(axis=1, keepdims=True)
            x = (x - mean) * lax.rsqrt(var + _VAR_EPS)
        act = nn.silu if self.tricks else nn.relu
        h = x[:, :, None]
        w = self.width
        stages = ((w, 80, 16), (w, 3, 1), (2 * w, 3, 1), (2 * w, 3, 1))
        for i, (features, kernel, stride) in enumerate(stages, start=1):
            h = Conv1D(features, kernel, stride, self.conv_impl, name=f"conv{i}")(h)  # pyright: ignore[reportArgumentType]
            if not self.tricks:
                h = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=_BN_MOMENTUM,
                    epsilon=_BN_EPS,
                    name=f"bn{i}",
                )(h)
            h = _max_pool(act(h))
        features = h.mean(axis=1)  # pyright: ignore[reportAttributeAccessIssue]
        logits = nn.Dense(self.num_classes, name="dense")(features)
        return (logits, features) if return_features else logits


# ----------------------------------------------------------------------------- SpecCNN

# SpecCNN: three k=3 convolutions over frames, the first two followed by max pool 2.
_SPEC_POOL = 2
_SPEC_STAGES = 3


def _spec_min_frames() -> int:
    """Fewest frames SpecCNN accepts: every stage keeps >= 1 frame (18)."""
    f = 3
    while True:
        length = f
        for i in range(_SPEC_STAGES):
            length -= 2
            if i < _SPEC_STAGES - 1 and length >= 1:
                length //= _SPEC_POOL
        if length >= 1:
            return f
        f += 1


class SpecCNN(nn.Module):
    """A small CNN on a representation of the waveform (``fairrobust.frontend``).

    ``logits = classify(representation(x))``: the representation (magnitude
    spectrogram or log-Mel energies, per-utterance standardised by default) is
    computed inside the model from the waveform in [-1, 1], so training, attacks and
    waveform-space smoothing use it like :class:`M5`; :func:`representation_logits_fn`
    applies ``classify`` alone, for smoothing in representation space. Layout
    (frequency bins are the input channels, convolutions over frames, ``VALID``)::

        z [b, F, bins] -> conv(k=3, bins -> w)  -> BN -> ReLU -> maxpool 2
                       -> conv(k=3, w -> 2w)    -> BN -> ReLU -> maxpool 2
                       -> conv(k=3, 2w -> 2w)   -> BN -> ReLU
                       -> mean over frames (features [b, 2w]) -> dense -> logits [b, C]

    Attributes:
      num_classes: number of output classes C.
      representation: the :class:`~fairrobust.frontend.Representation` (space,
        frame parameters, normalisation).
      width: channels of the first convolution (``2 * width`` for the others).
      conv_impl: ``"lax"`` or ``"matmul"``, as in :class:`M5` (``Runtime.eval_model``
        uses ``"matmul"`` on CPU).
    """

    num_classes: int
    representation: Representation = Representation()
    width: int = 32
    conv_impl: str = "lax"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if not isinstance(self.representation, Representation):
            fail("representation", "a frontend.Representation", repr(self.representation))
        check_int("num_classes", self.num_classes, 1)
        check_int("width", self.width, 1)
        if self.conv_impl not in CONV_IMPLS:
            fail("conv_impl", f"one of {CONV_IMPLS}", repr(self.conv_impl))

    def min_input_len(self) -> int:
        """Shortest waveform (samples) giving the 18 frames the three stages need."""
        rep = self.representation
        t = (_spec_min_frames() - 1) * rep.hop_length + (0 if rep.center else rep.n_fft)
        return max(t, rep.n_fft // 2 + 1 if rep.pad_mode == "reflect" else 1)

    def __call__(
        self, x: jax.Array, *, train: bool = False, return_features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Classify waveforms ``x`` (batch, time) in [-1, 1]; as :meth:`M5.__call__`."""
        self.validate()
        if x.ndim != 2 or x.shape[1] < self.min_input_len():
            fail(
                "x",
                f"shape (batch, time) with time >= {self.min_input_len()} "
                f"({_spec_min_frames()} frames of {self.representation.space})",
                f"shape {x.shape}",
            )
        return self.classify(self.representation(x), train=train, return_features=return_features)

    @nn.compact
    def classify(
        self, z: jax.Array, *, train: bool = False, return_features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Classify representations ``z`` (batch, frames >= 18, bins).

        Returns:
          logits (batch, num_classes); with ``return_features`` also the features
          (batch, 2 * width) after the mean over frames.
        """
        bins = self.representation.bins
        if z.ndim != 3 or z.shape[2] != bins or z.shape[1] < _spec_min_frames():
            fail(
                "z",
                f"shape (batch, frames >= {_spec_min_frames()}, {bins})",
                f"shape {z.shape}",
            )
        h = z
        for i, features in enumerate((self.width, 2 * self.width, 2 * self.width), start=1):
            h = Conv1D(features, 3, 1, self.conv_impl, name=f"conv{i}")(h)  # pyright: ignore[reportArgumentType]
            h = nn.BatchNorm(
                use_running_average=not train,
                momentum=_BN_MOMENTUM,
                epsilon=_BN_EPS,
                name=f"bn{i}",
            )(h)
            h = nn.relu(h)
            if i < _SPEC_STAGES:
                h = _max_pool(h, _SPEC_POOL)
        features = h.mean(axis=1)  # pyright: ignore[reportAttributeAccessIssue]
        logits = nn.Dense(self.num_classes, name="dense")(features)
        return (logits, features) if return_features else logits


#: A model of :data:`MODEL_NAMES`.
Model = M5 | SpecCNN


def make_model(
    name: str,
    num_classes: int,
    *,
    width: int = 32,
    normalize: str = "standardize",
    sample_rate: int = 16000,
) -> Model:
    """Build M5 (``"m5"``), M5-Tricks (``"m5-tricks"``) or a :class:`SpecCNN`.

    ``"spec-stft"`` / ``"spec-mel"`` classify the magnitude spectrogram / log-Mel
    energies of :meth:`Representation.for_sample_rate` (25 ms windows every 10 ms),
    standardised per utterance when ``normalize="standardize"``.

    Args:
      name: one of :data:`MODEL_NAMES`.
      num_classes: number of classes C >= 1.
      width: base channel count (32 = torchaudio tutorial, 128 = large).
      normalize: one of :data:`NORMALIZE_OPTIONS`.
      sample_rate: Hz of the waveforms (SpecCNN's frames and Mel bands; M5 ignores it).

    Returns:
      An unbound :class:`M5` or :class:`SpecCNN` module.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"model: expected one of {MODEL_NAMES}, got {name!r}")
    if normalize not in NORMALIZE_OPTIONS:
        fail("normalize", f"one of {NORMALIZE_OPTIONS}", repr(normalize))
    model: Model
    if name in SPEC_MODELS:
        rep = Representation.for_sample_rate(
            SPEC_MODELS[name], sample_rate, normalize=normalize == "standardize"
        )
        model = SpecCNN(int(num_classes), rep, width=int(width))
    else:
        model = M5(
            int(num_classes), width=int(width), tricks=name == "m5-tricks", normalize=normalize
        )
    model.validate()
    return model


def input_len_minimum(model: Model) -> int:
    """Shortest waveform (samples) ``model`` accepts (:func:`min_input_len` for M5)."""
    return model.min_input_len() if isinstance(model, SpecCNN) else min_input_len()


def init_variables(model: Model, key: jax.Array, input_len: int) -> dict[str, Any]:
    """Initialise variables for waveforms of ``input_len`` samples.

    Returns:
      ``{"params": ..., "batch_stats": ...}`` (no ``batch_stats`` for M5-Tricks),
      as plain nested dicts.
    """
    model.validate()
    if input_len < input_len_minimum(model):
        raise ValueError(
            f"input_len: {type(model).__name__} needs at least {input_len_minimum(model)} "
            f"samples per waveform, got {input_len}"
        )
    return dict(_init(model, key, int(input_len)))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init(model: Model, key: jax.Array, input_len: int) -> Any:
    """Jitted init (eager flax init dispatches and compiles op by op), cached per model."""
    return model.init(key, jnp.zeros((1, input_len), jnp.float32), train=False)


@functools.cache
def logits_fn(model: Model) -> ApplyFn:
    """Eval-mode ``apply_fn(variables, x) -> logits [b, C]``, memoised per (equal) model.

    The same function object is returned for equal models, so it can be passed
    as a static argument to ``jax.jit`` without recompiling.
    """

    def apply_fn(variables: Any, x: jax.Array) -> jax.Array:
        return model.apply(variables, x, train=False)  # pyright: ignore[reportReturnType]

    apply_fn.__qualname__ = f"logits_fn({model!r})"
    return apply_fn


@functools.cache
def features_fn(model: Model) -> Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]:
    """Eval-mode ``apply_fn(variables, x) -> (logits [b, C], features [b, 2*width])``, memoised."""

    def apply_fn(variables: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return model.apply(variables, x, train=False, return_features=True)  # pyright: ignore[reportReturnType]

    apply_fn.__qualname__ = f"features_fn({model!r})"
    return apply_fn


def count_params(params: Any) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


# ----------------------------------------------------------------------------- linear stem

# conv1 of M5's stage table (kernel 80, stride 16): the only stage before any nonlinearity.
_STEM_STRIDE = 16


def linear_stem_stats(
    x: jax.Array, eps: jax.Array, sigma: jax.Array | float, var_eps: float = _VAR_EPS
) -> tuple[jax.Array, jax.Array]:
    """Mean and inverse std of every ``z_ij = x_i + sigma * eps_j``, without forming z.

    ``m_ij = mean(x_i) + sigma mean(eps_j)`` and ``rstd_ij = rsqrt(v_ij + var_eps)``
    with ``v_ij = var(x_i) + 2 sigma cov(x_i, eps_j) + sigma^2 var(eps_j)``,
    ``cov(x_i, eps_j) = mean((x_i - mean x_i) * eps_j)`` (one ``[b, T] @ [T, n]``
    matmul at full float32 precision).

    Args:
      x: inputs, shape (b, T).
      eps: unit-std noise draws, shape (n, T).
      sigma: noise scale (scalar).
      var_eps: variance floor of the standardisation.

    Returns:
      ``(m, rstd)``, each of shape (b, n).
    """
    t = x.shape[-1]
    x_mean = x.mean(axis=1)
    xc = x - x_mean[:, None]
    x_var = jnp.square(xc).mean(axis=1)
    e_mean = eps.mean(axis=1)
    e_var = jnp.square(eps - e_mean[:, None]).mean(axis=1)
    cov = jnp.matmul(xc, eps.T, precision=lax.Precision.HIGHEST) / t
    v = x_var[:, None] + 2 * sigma * cov + sigma * sigma * e_var[None, :]
    m = x_mean[:, None] + sigma * e_mean[None, :]
    return m, lax.rsqrt(jnp.maximum(v, 0.0) + var_eps)


def linear_stem_combine(
    sx: jax.Array,
    seps: jax.Array,
    m: jax.Array | None,
    rstd: jax.Array | None,
    ksum: jax.Array | None,
    sigma: jax.Array | float,
) -> jax.Array:
    """conv1 (before its bias) of every standardised ``x_i + sigma * eps_j``, from S x and S eps.

    ``h1[i * n + j] = (sx[i] + sigma * seps[j] - m[i, j] * ksum) * rstd[i, j]``; with ``m``
    and ``rstd`` None (``normalize="none"``) ``sx[i] + sigma * seps[j]``.

    Args:
      sx: ``S x``, shape (b, L1, w).
      seps: ``S eps``, shape (n, L1, w).
      m, rstd: per-pair mean and inverse std (``linear_stem_stats``), shape (b, n), or None.
      ksum: ``ksum[o] = sum(kernel[:, :, o])``, shape (w,); unused when ``m`` is None.
      sigma: noise scale (scalar).

    Returns:
      Shape (b * n, L1, w), input-major.
    """
    h = sx[:, None] + sigma * seps[None]
    if m is not None:
        if ksum is None:
            raise ValueError("linear_stem_combine: ksum is needed with m")
        h = h - m[:, :, None, None] * ksum[None, None, None, :]
    if rstd is not None:
        h = h * rstd[:, :, None, None]
    return h.reshape(-1, *h.shape[2:])


class LinearStem(NamedTuple):
    """M5 split after the linear part of its first convolution (``linear_stem_fn``).

    With ``std(z) = (z - mean z) * rsqrt(var z + var_eps)`` and ``S`` = conv1 without
    bias, ``conv1(std(x_i + s eps_j)) = combine(S x_i, S eps_j, stats(x_i, eps_j)) +
    bias`` (``linear_stem_combine``, ``linear_stem_stats``): ``S x`` once per input and
    ``S eps`` once per draw replace the 80-tap convolution of every (input, draw) pair.
    Hashable (a static ``jax.jit`` argument); equal models give the same object.

    Attributes:
      stem: ``stem(variables, x [b, T]) -> S x [b, L1, w]``: conv1 without bias on the
        raw (unstandardised) input.
      head: ``head(variables, h1 [b, L1, w]) -> logits [b, C]``: conv1 bias, BN1 (eval),
        activation, pool, the conv2..conv4 blocks, mean over time and dense.
      ksum: ``ksum(variables) -> [w]``, the sum of conv1's kernel over taps and input
        channel.
      standardize: whether the model standardises its input (``normalize``).
      var_eps: variance floor of that standardisation.
    """

    stem: Callable[[Any, jax.Array], jax.Array]
    head: Callable[[Any, jax.Array], jax.Array]
    ksum: Callable[[Any], jax.Array]
    standardize: bool
    var_eps: float = _VAR_EPS

    def h1(
        self,
        variables: Any,
        x: jax.Array,
        sx: jax.Array,
        eps: jax.Array,
        seps: jax.Array,
        sigma: jax.Array | float,
    ) -> jax.Array:
        """``[b * n, L1, w]`` head input of every (input, draw) pair, bias not added.

        ``x`` [b, T] and ``eps`` [n, T] feed the statistics, ``sx = stem(x)`` and
        ``seps = stem(eps)`` the convolution.
        """
        if not self.standardize:
            return linear_stem_combine(sx, seps, None, None, None, sigma)
        m, rstd = linear_stem_stats(x, eps, sigma, self.var_eps)
        return linear_stem_combine(sx, seps, m, rstd, self.ksum(variables), sigma)


def _bn_eval(h: jax.Array, params: Any, stats: Any) -> jax.Array:
    """``nn.BatchNorm(use_running_average=True)`` on [b, L, C], flax's operation order."""
    y = h - stats["mean"].reshape(1, 1, -1)
    mul = lax.rsqrt(stats["var"] + _BN_EPS) * params["scale"]
    return y * mul.reshape(1, 1, -1) + params["bias"].reshape(1, 1, -1)


@functools.cache
def linear_stem_fn(model: M5) -> LinearStem:
    """``LinearStem`` of an M5 / M5-Tricks (eval mode), memoised per (equal) model.

    ``head(variables, h1(variables, x, stem(variables, x), eps, stem(variables, eps),
    s))`` equals ``logits_fn(model)`` on every ``x_i + s * eps_j`` up to float rounding
    (``tests/test_sampling_modes.py``). Other models raise ``ValueError``.
    """
    if not isinstance(model, M5):
        fail("model", "an M5 / M5-Tricks (the linear stem is M5's first convolution)", repr(model))
    model.validate()
    impl = getattr(model, "conv_impl", "lax")
    extra: tuple[str, ...] = () if impl == "lax" else (impl,)
    act = nn.silu if model.tricks else nn.relu

    def stem(variables: Any, x: jax.Array) -> jax.Array:
        kernel = variables["params"]["conv1"]["kernel"]
        return conv1d(x[:, :, None], kernel, _STEM_STRIDE, *extra)

    def ksum(variables: Any) -> jax.Array:
        return variables["params"]["conv1"]["kernel"].sum(axis=(0, 1))

    def head(variables: Any, h1: jax.Array) -> jax.Array:
        params = variables["params"]
        stats = variables.get("batch_stats", {})
        h: jax.Array = h1 + params["conv1"]["bias"].reshape(1, 1, -1)
        for i in range(1, 5):
            if i > 1:
                conv = params[f"conv{i}"]
                h = conv1d(h, conv["kernel"], 1, *extra) + conv["bias"].reshape(1, 1, -1)  # pyright: ignore[reportAssignmentType]
            if not model.tricks:
                h = _bn_eval(h, params[f"bn{i}"], stats[f"bn{i}"])
            h = _max_pool(act(h))
        dense = params["dense"]
        return h.mean(axis=1) @ dense["kernel"] + dense["bias"].reshape(1, -1)

    for fn, name in ((stem, "stem"), (ksum, "ksum"), (head, "head")):
        fn.__qualname__ = f"linear_stem_fn({model!r}).{name}"
    return LinearStem(stem, head, ksum, model.normalize == "standardize")


# ----------------------------------------------------------------------------- representation space


def _check_spec(model: Any) -> SpecCNN:
    if not isinstance(model, SpecCNN):
        fail("model", f"a SpecCNN ({tuple(SPEC_MODELS)})", repr(model))
    model.validate()
    return model


@functools.cache
def representation_fn(model: SpecCNN) -> Callable[[Any, jax.Array], jax.Array]:
    """``fn(variables, x [b, T]) -> z [b, D]``: the model's representation, flattened.

    ``z`` is ``model.representation(x)`` (standardised when the representation
    normalises) reshaped from (b, frames, bins) to ``D = frames * bins``, frame-major:
    the space in which representation-domain smoothing adds ``N(0, sigma^2 I_D)``
    (the paper's magnitude-spectrogram / normalised Mel-filterbank smoothing). The
    frontend has no parameters; ``variables`` is accepted for a uniform signature.
    Memoised per (equal) model.

    Args:
      model: a :class:`SpecCNN`.

    Returns:
      The function; ``representation_logits_fn(model)(variables, fn(variables, x))``
      equals ``logits_fn(model)(variables, x)`` up to float rounding.
    """
    rep = _check_spec(model).representation

    def fn(variables: Any, x: jax.Array) -> jax.Array:
        del variables
        z = rep(x)
        return z.reshape(z.shape[0], z.shape[1] * z.shape[2])

    fn.__qualname__ = f"representation_fn({model!r})"
    return fn


@functools.cache
def representation_logits_fn(model: SpecCNN) -> ApplyFn:
    """Eval-mode ``apply_fn(variables, z [B, D]) -> logits [B, C]`` in representation space.

    The classifier of a :class:`SpecCNN` on flattened representations ``z`` (as
    :func:`representation_fn` returns them, ``D = frames * bins``), so
    ``smoothing.sample_counts`` / ``smoothing.certify`` with this ``apply_fn`` smooth
    in that space: ``g(z) = argmax_c P(f(z + eps) = c)``, ``eps ~ N(0, sigma^2 I_D)``.
    Memoised per (equal) model, so it is a stable static jit argument.

    Args:
      model: a :class:`SpecCNN`.

    Returns:
      The function; ``z`` of another rank, or whose ``D`` is not a multiple of the
      bins, raises ``ValueError`` naming ``z``.
    """
    bins = _check_spec(model).representation.bins

    def apply_fn(variables: Any, z: jax.Array) -> jax.Array:
        if z.ndim != 2 or z.shape[1] % bins:
            fail("z", f"shape (batch, frames * {bins})", f"shape {z.shape}")
        z3 = z.reshape(z.shape[0], z.shape[1] // bins, bins)
        return model.apply(variables, z3, train=False, method=SpecCNN.classify)  # pyright: ignore[reportReturnType]

    apply_fn.__qualname__ = f"representation_logits_fn({model!r})"
    return apply_fn
