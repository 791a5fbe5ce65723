"""Randomized smoothing: Monte Carlo class counts, PREDICT, CERTIFY and noise families.

The smoothed classifier of Cohen et al. (2019) is

    g(x) = argmax_c  P_{eps ~ D_sigma}( f(x + eps) = c ),

where ``f`` is the base classifier (``apply_fn`` followed by argmax) and ``D_sigma``
an additive noise distribution with per-coordinate standard deviation ``sigma``
(the paper uses ``N(0, sigma^2 I)``, sigma = 0.1). The probabilities are estimated
from class counts over N noisy copies of each input; see ``sample_counts``.

PREDICT (Cohen et al., Alg. "PREDICT"; the rejection mechanism of the AISec'23
paper, section 4.3): take the top-two counts ``nA >= nB``; abstain (-1) iff the
two-sided binomial test of ``nA`` successes in ``nA + nB`` trials at p = 0.5 has
p-value > alpha. Sweeping alpha gives the false-rejection curves of section 3.2.

CERTIFY (Cohen et al., Alg. "CERTIFY"): pick the top class A from ``n0`` selection
draws, count A on ``n`` fresh estimation draws, take the one-sided
Clopper-Pearson lower bound ``pA_lower`` at level alpha, and return radius
``sigma * Phi^-1(pA_lower)`` (L2), or abstain when ``pA_lower < 0.5``.

Sampling design (speed is the point of this module):
  * noise is generated inside jit from an explicit key; the draw ``j`` of input ``i``
    uses the key ``fold_in(fold_in(key, i), j)`` where ``i`` is the input's *global*
    index (``indices``), so the *noise* does not depend on ``chunk_size`` or on
    which other inputs share the batch;
  * inputs are processed ``input_block`` at a time and draws ``chunk_size`` at a
    time in a ``lax.scan``: each step runs ONE forward pass of the fixed shape
    ``[input_block * chunk_size, T]``, so memory is bounded whatever
    ``num_samples`` or the number of inputs is, the batch stays small enough for
    the CPU caches (``FORWARD_ROWS``), and the float rounding of the logits does
    not depend on how many inputs a device shard holds: counts are bit-identical
    across device splits and across batch compositions of the same block shape;
  * counts for nested N (``checkpoints``, e.g. ``DEFAULT_CHECKPOINTS``) are the
    running counts at the prefix boundaries of one sample stream, so a whole N
    sweep costs one largest-N pass;
  * ``mode="shared_bank"`` shares the noise bank across the inputs of a call
    (noise generated once per step instead of once per input): each input still
    sees ``num_samples`` i.i.d. draws from ``D_sigma`` (identical marginal count
    distributions), but decisions of different inputs become correlated;
  * with a shared bank, a model whose first layer is linear (M5: standardisation and
    an 80-tap stride-16 convolution ``S``) can skip that layer per (input, draw) pair:
    ``linear_stem=models.linear_stem_fn(model)`` computes ``S x_i`` once per input and
    ``S eps_j`` once per draw and assembles the first layer's output of every pair
    from them (``models.linear_stem_combine``); same draws, logits equal up to float
    rounding.

Float64: the binomial p-values and the Clopper-Pearson bound need float64 (p-values
down to 1e-12 at n = 10^6, bounds within 1e-6). They are computed with
``jax.scipy.special.betainc`` inside ``with jax.enable_x64(True):`` (the current JAX
context manager; ``jax.experimental.enable_x64`` no longer exists in JAX 0.10) and
returned as host NumPy float64 arrays, because a float64 ``jax.Array`` escaping the
context would be silently truncated (with a warning) by later float32 JAX code.

Reference: J. Cohen, E. Rosenfeld, Z. Kolter. Certified adversarial robustness via
randomized smoothing. ICML 2019.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "COMPUTE_DTYPES",
    "DEFAULT_CHECKPOINTS",
    "FORWARD_ROWS",
    "MODES",
    "PRNG_IMPLS",
    "CertifyResult",
    "NoiseFn",
    "available_noises",
    "binom_test_pvalue",
    "certified_accuracy",
    "certify",
    "clopper_pearson_lower",
    "default_input_block",
    "predict_pvalues",
    "register_noise",
    "sample_counts",
    "smoothed_predict",
]

ApplyFn = Callable[[Any, jax.Array], jax.Array]

NoiseFn = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]
"""Plug-in noise: ``fn(key, shape, dtype) -> array`` of that shape and dtype with zero
mean and unit per-coordinate standard deviation. The sampler multiplies it by ``sigma``
and adds it to the input, so ``sigma`` is always the per-coordinate std."""

DEFAULT_CHECKPOINTS: tuple[int, ...] = (10, 100, 1000, 10000)
"""Nested sample sizes N of the AISec'23 rejection study (section 4.3)."""

MODES: tuple[str, ...] = ("independent", "shared_bank")

PRNG_IMPLS: tuple[str, ...] = ("threefry2x32", "rbg", "unsafe_rbg")
"""Generator implementations accepted as ``prng_impl`` (see ``sample_counts``)."""

COMPUTE_DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""Forward-pass dtypes accepted as ``compute_dtype`` (see ``sample_counts``)."""

FORWARD_ROWS: dict[str, int] = {"cpu": 32, "gpu": 8192, "tpu": 8192}
"""Target rows of one forward pass per platform (``default_input_block``). On the
2-core CPU of ``benchmarks/README.md`` 32-64 rows ran fastest (noise and activations
stay in cache); large batches were up to 1.5x slower. GPUs want thousands of rows."""

# fold_in tag deriving the seed of a re-keyed generator (prng_impl) from the caller's key.
_REKEY_TAG = 0x5EED


def _gaussian(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Standard normal, std 1."""
    return jax.random.normal(key, shape, dtype)


def _laplace(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Laplace with scale 1/sqrt(2), so std 1 (variance of Laplace(b) is 2 b^2)."""
    return jax.random.laplace(key, shape, dtype) * jnp.asarray(1.0 / math.sqrt(2.0), dtype)


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Uniform on [-sqrt(3), sqrt(3)], so std 1 (variance of U(-a, a) is a^2 / 3)."""
    a = math.sqrt(3.0)
    return jax.random.uniform(key, shape, dtype, minval=-a, maxval=a)


_NOISES: dict[str, NoiseFn] = {
    "gaussian": _gaussian,
    "laplace": _laplace,
    "uniform": _uniform,
}


def register_noise(name: str, fn: NoiseFn, *, overwrite: bool = False) -> None:
    """Registers a noise family usable as ``noise=name`` in the sampler.

    A new smoothing variant is a few lines::

        def rademacher(key, shape, dtype):  # zero mean, unit std
            return jax.random.rademacher(key, shape, dtype)

        register_noise("rademacher", rademacher)
        counts = sample_counts(apply_fn, variables, x, key, num_samples=1000,
                               sigma=0.1, num_classes=10, noise="rademacher")

    A callable can also be passed directly as ``noise=fn`` (it is a static jit
    argument, so pass the same function object to avoid recompiling).

    Args:
      name: registry key.
      fn: ``NoiseFn``: ``fn(key, shape, dtype) -> array`` of that shape and dtype with
        zero mean and unit per-coordinate standard deviation (the sampler scales it by
        ``sigma``). It must be traceable by JAX (it runs inside jit).
      overwrite: allow replacing an existing entry (the built-ins included).

    Raises:
      ValueError: if ``name`` exists and ``overwrite`` is False, or ``fn`` is not
        callable.
    """
    if not callable(fn):
        raise ValueError(f"register_noise: fn for {name!r} must be callable, got {fn!r}")
    if name in _NOISES and not overwrite:
        raise ValueError(f"register_noise: noise {name!r} already registered; pass overwrite=True")
    _NOISES[name] = fn


def available_noises() -> tuple[str, ...]:
    """Names of the registered noise families."""
    return tuple(sorted(_NOISES))


def _resolve_noise(noise: str | NoiseFn) -> NoiseFn:
    """Maps a noise name or callable to a ``NoiseFn``; unknown names raise."""
    if callable(noise):
        return noise
    if isinstance(noise, str) and noise in _NOISES:
        return _NOISES[noise]
    raise ValueError(
        f"noise must be one of {list(available_noises())} or a callable "
        f"fn(key, shape, dtype), got {noise!r}"
    )


# ----------------------------------------------------------------------------- validation


def _concrete(x: Any) -> np.ndarray | None:
    """Host copy of ``x``, or None when it is traced (checks are then skipped)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_sigma(sigma: Any) -> None:
    s = _concrete(sigma)
    if s is not None:
        if s.shape != () or not np.isfinite(s) or s <= 0:
            raise ValueError(f"sigma must be a finite scalar > 0, got {sigma!r}")


def _check_alpha(alpha: Any, *, allow_one: bool) -> None:
    a = _concrete(alpha)
    if a is not None:
        a = a.astype(np.float64)
        hi_ok = (a <= 1) if allow_one else (a < 1)
        if a.size == 0 or not np.all(np.isfinite(a) & (a > 0) & hi_ok):
            bound = "0 < alpha <= 1" if allow_one else "0 < alpha < 1"
            raise ValueError(f"alpha must satisfy {bound}, got {alpha!r}")


def _check_x(x: Any) -> None:
    if getattr(x, "ndim", None) != 2:
        raise ValueError(
            f"x must be a waveform batch of shape (batch, time), got shape "
            f"{getattr(x, 'shape', None)}"
        )
    host = _concrete(x)
    if host is not None and not np.all(np.isfinite(host)):
        raise ValueError("x contains NaN or infinite values")


def _check_linear_stem(linear_stem: Any, mode: str, compute_dtype: str | None) -> None:
    if linear_stem is None:
        return
    if mode != "shared_bank":
        raise ValueError(f"linear_stem needs mode='shared_bank' (one bank), got mode={mode!r}")
    if compute_dtype is not None:
        raise ValueError(
            f"linear_stem runs in the dtype of x; compute_dtype must be None, got {compute_dtype!r}"
        )
    try:
        hash(linear_stem)
    except TypeError:
        ok = False
    else:
        ok = all(callable(getattr(linear_stem, a, None)) for a in ("stem", "head", "h1"))
    if not ok:
        raise ValueError(
            f"linear_stem must be None or models.linear_stem_fn(model), got {linear_stem!r}"
        )


def _check_counts(counts: Any) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim < 1 or c.shape[-1] < 2:
        raise ValueError(f"counts must have shape (..., num_classes >= 2), got {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) or np.any(c < 0):
        raise ValueError("counts must be non-negative integers")
    return c


# ----------------------------------------------------------------------------- sampling


def _rekey(key: jax.Array, impl: str) -> jax.Array:
    """A typed key of generator ``impl`` seeded deterministically from ``key``."""
    size = jax.random.key_data(jax.random.key(0, impl=impl)).size
    seed = jax.random.bits(jax.random.fold_in(key, _REKEY_TAG), (size,), jnp.uint32)
    return jax.random.wrap_key_data(seed, impl=impl)


@functools.partial(
    jax.jit,
    static_argnames=(
        "apply_fn",
        "num_samples",
        "num_classes",
        "noise",
        "chunk_size",
        "checkpoints",
        "mode",
        "prng_impl",
        "compute_dtype",
        "input_block",
        "linear_stem",
    ),
)
def _counts_kernel(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    key: jax.Array,
    sigma: jax.Array,
    indices: jax.Array,
    *,
    num_samples: int,
    num_classes: int,
    noise: NoiseFn,
    chunk_size: int,
    checkpoints: tuple[int, ...],
    mode: str,
    input_block: int,
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    linear_stem: Any = None,
    draw_start: jax.Array | int = 0,
) -> jax.Array:
    """Running class counts at ``checkpoints``: int32 ``[len(checkpoints), b, C]``.

    Processes draws ``draw_start + [0, num_samples)`` (rounded up to whole chunks);
    a draw counts towards checkpoint ``N_k`` iff its global index is ``< N_k``, so
    the counts of disjoint draw ranges add up (``fairrobust.parallel`` splits draws
    over devices this way). Inputs are processed ``input_block`` at a time (the
    last block padded with copies of the first input), so every forward pass has
    the shape ``[input_block * chunk_size, T]`` whatever ``b`` is. With
    ``linear_stem`` (shared bank only) the forward pass is ``linear_stem.head`` on the
    first-convolution output assembled from ``stem(x)`` (once per input) and
    ``stem(eps)`` (once per bank chunk).
    """
    b, t = x.shape
    n_chunks = -(-num_samples // chunk_size)
    n_groups = -(-b // input_block)
    if prng_impl is not None:
        key = _rekey(key, prng_impl)
    if compute_dtype is not None:
        cdt = jnp.dtype(compute_dtype)
        variables = jax.tree_util.tree_map(
            lambda a: a.astype(cdt) if jnp.issubdtype(a.dtype, jnp.floating) else a, variables
        )
    draw_start = jnp.asarray(draw_start, jnp.int32)
    ckpt = jnp.asarray(checkpoints, jnp.int32)  # [K]
    sigma = jnp.asarray(sigma, x.dtype)
    offsets = jnp.arange(chunk_size, dtype=jnp.int32)  # [chunk]
    n_ckpt = len(checkpoints)

    pad = n_groups * input_block - b
    if pad:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, t))])
        indices = jnp.concatenate([indices, jnp.broadcast_to(indices[:1], (pad,))])
    xg = x.reshape(n_groups, input_block, t)
    ig = indices.reshape(n_groups, input_block)
    block_keys = prng_impl in ("rbg", "unsafe_rbg")

    def one_draw(k: jax.Array, j: jax.Array) -> jax.Array:
        # Per-draw key: noise of draw j never depends on chunk_size.
        return noise(jax.random.fold_in(k, j), (t,), x.dtype)

    def draws_of(c: jax.Array) -> jax.Array:
        return draw_start + c * chunk_size + offsets  # [chunk] global draw indices

    def count(x1: jax.Array, eps: jax.Array, draw: jax.Array) -> jax.Array:
        """Counts [K, ib, C] of one forward pass over x1 [ib, T] + sigma * eps."""
        noisy = (x1[:, None, :] + sigma * eps).reshape(input_block * chunk_size, t)
        if compute_dtype is not None:  # noise and sum stay float32; only the forward casts
            noisy = noisy.astype(cdt)
        # The barrier keeps XLA from fusing the noise into the forward pass differently
        # in different programs (one device vs a shard, one input block vs several),
        # which would change float rounding and flip nearly tied argmaxes.
        logits = apply_fn(variables, lax.optimization_barrier(noisy))
        return tally(logits, draw, "apply_fn")

    def tally(logits: jax.Array, draw: jax.Array, source: str) -> jax.Array:
        """Counts [K, ib, C] of the logits [ib * chunk, C] of one forward pass."""
        if logits.shape != (input_block * chunk_size, num_classes):
            raise ValueError(
                f"{source} returned logits of shape {logits.shape}, expected "
                f"{(input_block * chunk_size, num_classes)} (input_block * chunk_size, "
                "num_classes)"
            )
        onehot = jax.nn.one_hot(jnp.argmax(logits, axis=-1), num_classes, dtype=jnp.int32)
        onehot = onehot.reshape(input_block, chunk_size, num_classes)
        # Draw j counts towards checkpoint k iff j < N_k; this also drops the padding
        # draws of a last partial chunk (j >= num_samples >= every N_k).
        take = (draw[None, :] < ckpt[:, None]).astype(jnp.int32)  # [K, chunk]
        return jnp.einsum("kj,bjc->kbc", take, onehot)

    chunks = jnp.arange(n_chunks, dtype=jnp.int32)
    init = jnp.zeros((n_ckpt, input_block, num_classes), jnp.int32)

    if mode == "independent":

        def group_counts(args: tuple[jax.Array, jax.Array]) -> jax.Array:
            x1, i1 = args
            # Per-input stream keyed by the global index: independent of batch composition.
            input_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(i1)  # [ib]

            def step(counts: jax.Array, c: jax.Array) -> tuple[jax.Array, None]:
                draw = draws_of(c)
                if block_keys:
                    # XLA's RngBitGenerator ignores all but the first key of a vmapped
                    # batch, so per-draw keys would not give per-draw streams: draw the
                    # step's block from one key per (first global input index of the
                    # block, global chunk index) instead.
                    gchunk = draw_start // chunk_size + c
                    k_step = jax.random.fold_in(jax.random.fold_in(key, i1[0]), gchunk)
                    eps = noise(k_step, (input_block, chunk_size, t), x.dtype)
                else:
                    eps = jax.vmap(lambda k: jax.vmap(lambda j: one_draw(k, j))(draw))(input_keys)
                return counts + count(x1, eps, draw), None

            return lax.scan(step, init, chunks)[0]

        out = lax.map(group_counts, (xg, ig))  # [G, K, ib, C]
    else:
        # One scan over (chunk, block) pairs, block fastest: the bank chunk [chunk, T]
        # is drawn when a chunk starts (block 0) and carried to the chunk's other
        # blocks. A single flat loop keeps the forward pass inside the same loop
        # body for any number of blocks (a nested loop of one trip would be inlined
        # by XLA and fused differently, changing float rounding between one device
        # and a shard).
        def draw_eps(c: jax.Array) -> jax.Array:
            if block_keys:
                gchunk = draw_start // chunk_size + c
                return noise(jax.random.fold_in(key, gchunk), (chunk_size, t), x.dtype)
            return jax.vmap(lambda j: one_draw(key, j))(draws_of(c))  # [chunk, T]

        stem = linear_stem
        if stem is not None:
            # Linear first convolution S: S x once per input (in blocks of the fixed
            # shape [ib, T]), S eps once per bank chunk, shared by all inputs. Inputs
            # are centred first when the model standardises (its output does not
            # change; a DC offset then does not cancel against m * ksum).
            if stem.standardize:
                xg = xg - xg.mean(axis=2, keepdims=True)
            sxg = lax.map(lambda x1: stem.stem(variables, x1), xg)  # [G, ib, L1, w]

        def draw_bank(c: jax.Array) -> tuple[jax.Array, ...]:
            eps = draw_eps(c)
            return (eps,) if stem is None else (eps, stem.stem(variables, eps))

        def bank_count(g: jax.Array, bank: tuple[jax.Array, ...], draw: jax.Array) -> jax.Array:
            x1 = lax.dynamic_index_in_dim(xg, g, keepdims=False)
            if stem is None:
                return count(x1, bank[0][None], draw)  # [K, ib, C]
            sx1 = lax.dynamic_index_in_dim(sxg, g, keepdims=False)
            h1 = stem.h1(variables, x1, sx1, bank[0], bank[1], sigma)  # [ib * chunk, L1, w]
            # Barrier: as for the noisy input of count().
            return tally(stem.head(variables, lax.optimization_barrier(h1)), draw, "head")

        def bank_step(
            carry: tuple[jax.Array, tuple[jax.Array, ...]], s: jax.Array
        ) -> tuple[tuple[jax.Array, tuple[jax.Array, ...]], None]:
            counts, bank = carry
            c, g = s // n_groups, s % n_groups
            bank = lax.cond(g == 0, draw_bank, lambda _: bank, c)
            add = bank_count(g, bank, draws_of(c))
            return (counts.at[g].add(add), bank), None

        init_g = jnp.zeros((n_groups, n_ckpt, input_block, num_classes), jnp.int32)
        bank0 = jax.tree_util.tree_map(
            lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(draw_bank, jnp.int32(0))
        )
        steps = jnp.arange(n_chunks * n_groups, dtype=jnp.int32)
        out = lax.scan(bank_step, (init_g, bank0), steps)[0][0]
    counts = jnp.moveaxis(out, 1, 0).reshape(n_ckpt, n_groups * input_block, num_classes)
    return counts[:, :b]


def default_input_block(chunk_size: int, num_inputs: int, platform: str | None = None) -> int:
    """Inputs per forward pass that ``sample_counts`` uses when ``input_block`` is None.

    ``min(num_inputs, max(1, FORWARD_ROWS[platform] // chunk_size))``: forward passes of
    about ``FORWARD_ROWS`` rows (32 on CPU, where small batches stay in cache; 8192 on
    accelerators), never padded beyond the inputs of the call. Every call with at
    least ``FORWARD_ROWS // chunk_size`` inputs (2 at the default chunk of 16 on CPU)
    therefore has the same forward shape, and ``fairrobust.parallel`` takes this
    default from the whole call's inputs, so a device split never changes it.
    """
    platform = platform or jax.default_backend()
    rows = FORWARD_ROWS.get(platform, FORWARD_ROWS["gpu"])
    return max(1, min(num_inputs, rows // chunk_size))


def sample_counts(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    key: jax.Array,
    *,
    num_samples: int,
    sigma: float | jax.Array,
    num_classes: int,
    noise: str | NoiseFn = "gaussian",
    chunk_size: int = 16,
    checkpoints: Sequence[int] | None = None,
    indices: jax.Array | None = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
) -> jax.Array:
    """Class counts of the base classifier under additive noise, for many inputs at once.

    ``counts[i, c] = #{ j < N : argmax apply_fn(variables, x_i + sigma * eps_ij) = c }``
    with ``eps_ij`` i.i.d. unit-std noise (Cohen et al. 2019, the ``SampleUnderNoise``
    step of PREDICT and CERTIFY). Inputs are processed ``input_block`` and draws
    ``chunk_size`` at a time inside a ``lax.scan``; each step is one forward pass of
    shape ``[input_block * chunk_size, T]``, so memory is
    ``O(input_block * chunk_size * T)`` whatever ``num_samples`` and ``b`` are. On
    CPU, 32-64 rows per forward pass ran fastest (``FORWARD_ROWS``).

    Noise for draw ``j`` of input ``i`` comes from ``fold_in(fold_in(key, indices[i]), j)``
    (mode "independent"), so the noise is identical for any ``chunk_size`` and any
    batch composition as long as each input keeps its global index. Counts are
    bit-identical for any batch composition and any device split
    (``fairrobust.parallel``) at a fixed forward shape ``input_block * chunk_size``
    (pass ``input_block``, or call with at least ``FORWARD_ROWS // chunk_size``
    inputs); changing that shape can change the float rounding of the
    logits and flip draws whose top-two logits are tied to within rounding (the
    contrived near-tie M5 of ``tests/test_parallel.py``, then with lax convolutions,
    flipped 19 of 960 draws when
    ``input_block`` went from 4 to 1; trained models rarely have such ties). In mode
    "shared_bank"
    draw ``j`` uses ``fold_in(key, j)`` for every input of the call: each input still
    sees ``num_samples`` i.i.d. draws (same marginal count distribution, so the same
    statistical guarantees per input), noise is generated once per step instead of
    ``b`` times, and decisions of different inputs become correlated.

    Jit: ``apply_fn``, ``num_samples``, ``num_classes``, ``noise``, ``chunk_size``,
    ``checkpoints``, ``mode`` and ``linear_stem`` are static; ``sigma``, ``x``, ``key``
    and ``variables`` are traced, so a sigma sweep compiles once.

    Args:
      apply_fn: ``apply_fn(variables, x [B, T]) -> logits [B, num_classes]``; must be
        hashable and stable across calls (e.g. ``models.logits_fn(model)``).
      variables: model variables pytree.
      x: waveforms in [-1, 1], shape ``(b, T)``.
      key: ``jax.random.key`` or legacy ``PRNGKey``.
      num_samples: N >= 1, number of noise draws per input.
      sigma: per-coordinate standard deviation of the noise, scalar > 0 (traced).
      num_classes: C, number of classes (logits width).
      noise: "gaussian" (default), "laplace", "uniform", a name registered with
        ``register_noise``, or a ``NoiseFn`` callable (unit std; scaled by sigma).
      chunk_size: draws per input per scan step, >= 1.
      input_block: inputs per forward pass, >= 1 (default
        ``default_input_block(chunk_size, b)``: ``min(b, 32 // chunk_size)`` on CPU,
        ``min(b, 8192 // chunk_size)`` on accelerators). The last block is padded
        with copies of the first input (its results are dropped).
      checkpoints: nested sample sizes, each in [1, num_samples] (e.g.
        ``DEFAULT_CHECKPOINTS`` with ``num_samples=10_000``); the counts at
        checkpoint ``N_k`` are those of the first ``N_k`` draws of the same stream.
      indices: global input indices, int ``[b]`` (default ``arange(b)``); pass the
        dataset indices when splitting a dataset into batches.
      mode: "independent" (default) or "shared_bank".
      prng_impl: None (default: the generator of ``key``, threefry for
        ``jax.random.key``) or one of ``PRNG_IMPLS``. A name re-keys the noise
        stream: a key of that generator is seeded from ``fold_in(key, 0x5EED)``
        and the per-input / per-draw ``fold_in`` scheme above is applied to it.
        What changes: only which pseudo-random numbers are drawn (counts differ
        from the default stream draw by draw but have the same distribution);
        "rbg" / "unsafe_rbg" generate bits with XLA's RngBitGenerator (Philox
        on GPU, usually faster there; 2.5-4x slower than threefry on the
        2-core CPU of ``benchmarks/README.md``); "unsafe_rbg" also derives
        keys with a cheaper, less well-mixed rule. "threefry2x32" keeps the
        per-input / per-draw keying, so its counts stay independent of
        ``chunk_size`` and batch composition. With "rbg" / "unsafe_rbg"
        (whose vmapped generation uses only the first key of a batch) each scan
        step draws one ``[b, chunk_size, T]`` block from the key
        ``fold_in(fold_in(k, indices[0]), global chunk index)``: draws stay
        i.i.d. and reproducible for the same call, but counts then depend on
        ``chunk_size`` and on which inputs share a call.
      compute_dtype: None (default: the dtype of ``x``) or one of
        ``COMPUTE_DTYPES``. Noise is drawn and added in float32; the noisy
        input and the floating variables are cast to this dtype for the forward
        pass only. What changes: logits carry bfloat16 / float16 rounding, so a
        draw whose top-two logits are within that rounding may be counted for
        the other class; the sample stays i.i.d. (each draw is still one
        deterministic function of its noise), so PREDICT / CERTIFY guarantees
        hold for the bf16 base classifier. Meant for accelerators (bf16 matrix
        units); on CPU it is usually slower.
      linear_stem: None (default) or ``models.linear_stem_fn(model)`` for the M5
        behind ``apply_fn``; needs ``mode="shared_bank"`` and ``compute_dtype``
        None. The first convolution is linear, so with standardisation
        ``conv1(std(x_i + s eps_j)) = (S x_i + s S eps_j - m_ij ksum) * rstd_ij +
        bias`` (``models.linear_stem_combine``, per-pair mean and variance from one
        small matmul, ``models.linear_stem_stats``): ``S x_i`` is computed once per
        input (before the loop, memory ``b * L1 * width`` floats, ``L1 ~ T / 16``),
        ``S eps_j`` once per bank chunk, and ``linear_stem.head`` runs the rest of
        the network per (input, draw) pair instead of ``apply_fn`` (which must
        still be that model's ``logits_fn``). What changes: nothing in the noise
        (the draws are those of ``mode="shared_bank"`` with the same key), but the
        logits differ from ``apply_fn``'s by float rounding, so a draw whose
        top-two logits are tied to within rounding may be counted for the other
        class: counts are not bit-identical to the plain shared bank, only
        statistically indistinguishable (``tests/test_sampling_modes.py``).
        Faster when the first convolution dominates the forward pass (about 2/3
        of the FLOPs of a width-32 M5 on 1 s of 16 kHz audio; less at large
        widths, where the 3-tap convolutions dominate).

    Returns:
      int32 counts of shape ``(len(checkpoints), b, num_classes)``, or
      ``(b, num_classes)`` when ``checkpoints`` is None. Rows sum to the checkpoint N.

    Raises:
      ValueError: bad ``num_samples``, ``chunk_size``, ``num_classes``, ``sigma``,
        ``checkpoints``, ``noise``, ``mode``, ``indices``, ``linear_stem`` (or it
        without ``mode="shared_bank"`` or with a ``compute_dtype``), x not
        ``(b, T)`` or containing NaN/inf, or logits of the wrong shape.
    """
    args, kw, squeeze = _prepare_counts(
        x,
        sigma,
        indices,
        num_samples=num_samples,
        num_classes=num_classes,
        noise=noise,
        chunk_size=chunk_size,
        checkpoints=checkpoints,
        mode=mode,
        prng_impl=prng_impl,
        compute_dtype=compute_dtype,
        input_block=input_block,
        linear_stem=linear_stem,
    )
    x, sigma, indices = args
    counts = _counts_kernel(apply_fn, variables, x, key, sigma, indices, **kw)
    return counts[0] if squeeze else counts


def _prepare_counts(
    x: Any,
    sigma: Any,
    indices: Any,
    *,
    num_samples: int,
    num_classes: int,
    noise: str | NoiseFn,
    chunk_size: int,
    checkpoints: Sequence[int] | None,
    mode: str,
    prng_impl: str | None,
    compute_dtype: str | None,
    input_block: int | None = None,
    linear_stem: Any = None,
) -> tuple[tuple[jax.Array, jax.Array, jax.Array], dict[str, Any], bool]:
    """Validates ``sample_counts`` arguments: ``((x, sigma, indices), static kwargs, squeeze)``."""
    num_samples = _check_int("num_samples", num_samples, 1)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    num_classes = _check_int("num_classes", num_classes, 2)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if prng_impl is not None and prng_impl not in PRNG_IMPLS:
        raise ValueError(f"prng_impl must be None or one of {list(PRNG_IMPLS)}, got {prng_impl!r}")
    if compute_dtype is not None and compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"compute_dtype must be None or one of {list(COMPUTE_DTYPES)}, got {compute_dtype!r}"
        )
    noise_fn = _resolve_noise(noise)
    _check_sigma(sigma)
    _check_x(x)
    x = jnp.asarray(x)  # NumPy float64 input becomes the default float dtype here
    if compute_dtype is not None and jnp.dtype(compute_dtype) == x.dtype:
        compute_dtype = None
    _check_linear_stem(linear_stem, mode, compute_dtype)
    squeeze = checkpoints is None
    if checkpoints is None:
        ckpts: tuple[int, ...] = (num_samples,)
    else:
        ckpts = tuple(_check_int("checkpoints", int(c), 1) for c in checkpoints)
        if not ckpts or max(ckpts) > num_samples:
            raise ValueError(
                f"checkpoints must be a non-empty sequence of sample sizes in "
                f"[1, num_samples={num_samples}], got {checkpoints!r}"
            )
    b = x.shape[0]
    if indices is None:
        indices = jnp.arange(b, dtype=jnp.int32)
    else:
        indices = jnp.asarray(indices)
        if indices.shape != (b,) or not jnp.issubdtype(indices.dtype, jnp.integer):
            raise ValueError(f"indices must be integers of shape ({b},), got {indices.shape}")
    if input_block is None:
        input_block = default_input_block(chunk_size, b)
    else:
        input_block = _check_int("input_block", input_block, 1)
    # One dtype for every sigma (Python float, NumPy or JAX scalar): no retrace.
    sigma = jnp.asarray(sigma, dtype=x.dtype)
    kw = dict(
        num_samples=num_samples,
        num_classes=num_classes,
        noise=noise_fn,
        chunk_size=chunk_size,
        checkpoints=ckpts,
        mode=mode,
        prng_impl=prng_impl,
        compute_dtype=compute_dtype,
        input_block=input_block,
    )
    if linear_stem is not None:  # absent otherwise: same jit cache key as before
        kw["linear_stem"] = linear_stem
    return (x, sigma, indices.astype(jnp.int32)), kw, squeeze


# ----------------------------------------------------------------------------- statistics


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
            raise ValueError(f"{name} must be non-negative integers, got {v!r}")
    with jax.enable_x64(True):
        p = _binom_pvalue_f64(jnp.asarray(a, jnp.int64), jnp.asarray(b, jnp.int64))
        return np.asarray(p, dtype=np.float64)


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
    probability of returning a class other than g(x) is at most alpha. Known floor:
    with N <= 10 draws the smallest possible p-value is ``2 * 0.5^10 ~ 0.00195``, so at
    alpha = 0.001 every input abstains.

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
    return np.where(p > np.asarray(alpha, np.float64), -1, top)


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
        raise ValueError("k and n must be integers")
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("clopper_pearson_lower needs n >= 1 and 0 <= k <= n")
    with jax.enable_x64(True):
        out = _cp_lower_f64(
            jnp.asarray(k_arr, jnp.int64),
            jnp.asarray(n_arr, jnp.int64),
            jnp.asarray(alpha, jnp.float64),
        )
        return np.asarray(out, dtype=np.float64)


class CertifyResult(NamedTuple):
    """Output of ``certify`` (host NumPy arrays, b = number of inputs).

    Attributes:
      pred: int64 ``(b,)`` certified class, -1 = abstain.
      radius: float64 ``(b,)`` certified L2 radius ``sigma * Phi^-1(p_a_lower)``, 0 when
        abstaining.
      p_a_lower: float64 ``(b,)`` Clopper-Pearson lower bound on P(f(x + eps) = A).
      top_class: int64 ``(b,)`` class A chosen from the selection draws.
      counts_selection: int32 ``(b, C)`` counts of the ``n0`` selection draws.
      counts: int32 ``(b, C)`` counts of the ``n`` estimation draws.
    """

    pred: np.ndarray
    radius: np.ndarray
    p_a_lower: np.ndarray
    top_class: np.ndarray
    counts_selection: np.ndarray
    counts: np.ndarray


def certify(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    key: jax.Array,
    *,
    n0: int,
    n: int,
    alpha: float,
    sigma: float,
    num_classes: int,
    noise: str | NoiseFn = "gaussian",
    chunk_size: int = 16,
    indices: jax.Array | None = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
) -> CertifyResult:
    """CERTIFY of Cohen et al. (2019) for a batch of inputs.

    1. ``A = argmax counts0`` from ``n0`` selection draws (key ``fold_in(key, 0)``);
    2. ``nA = counts[A]`` from ``n`` fresh estimation draws (key ``fold_in(key, 1)``);
    3. ``pA_lower = clopper_pearson_lower(nA, n, alpha)``;
    4. if ``pA_lower < 0.5`` abstain (pred -1, radius 0), else predict A with certified
       L2 radius ``sigma * Phi^-1(pA_lower)``: with probability >= 1 - alpha the smoothed
       classifier g is constant on that ball.

    The radius formula is the Gaussian one; for other noise families ``radius`` is
    still ``sigma * Phi^-1(pA_lower)`` but has no L2 guarantee. Known floor: even with
    ``nA = n`` the bound is ``alpha^(1/n)``, so at alpha = 0.001 nothing is certified
    unless ``n >= 10``.

    Args:
      apply_fn, variables, x, key, num_classes, noise, chunk_size, indices, mode,
        prng_impl, compute_dtype, input_block, linear_stem: as in ``sample_counts``
        (both streams use the same sampling options).
      n0: selection draws, >= 1 (Cohen et al. use 100; the audio paper 500).
      n: estimation draws, >= 1 (e.g. 10^4 or 10^5).
      alpha: failure probability in (0, 1) (e.g. 0.001).
      sigma: noise standard deviation > 0.

    Returns:
      ``CertifyResult`` with per-input ``pred``, ``radius``, ``p_a_lower``, the chosen
      class and both count tables.

    Raises:
      ValueError: invalid parameter (message names it) or NaN input.
    """
    n0 = _check_int("n0", n0, 1)
    n = _check_int("n", n, 1)
    _check_alpha(alpha, allow_one=False)
    _check_sigma(sigma)

    def run(k: jax.Array, num: int) -> jax.Array:
        return sample_counts(
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
    n_a = np.take_along_axis(counts_np, top[:, None], axis=-1)[:, 0]
    p_lower = clopper_pearson_lower(n_a, np.full_like(n_a, n), alpha)
    ok = p_lower >= 0.5
    with jax.enable_x64(True):
        z = np.asarray(jax.scipy.special.ndtri(jnp.asarray(np.where(ok, p_lower, 0.5))))
    radius = np.where(ok, float(sigma) * z, 0.0)
    return CertifyResult(
        pred=np.where(ok, top, -1),
        radius=radius,
        p_a_lower=p_lower,
        top_class=top,
        counts_selection=counts0_np,
        counts=counts_np,
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
        raise ValueError(
            f"pred, radius, labels must have equal shape (n,), got {pred.shape}, "
            f"{radius.shape}, {labels.shape}"
        )
    m = np.ones((1, n_ex), bool) if masks is None else np.asarray(masks, bool)
    if radii.ndim != 1 or m.ndim != 2 or m.shape[1] != n_ex:
        raise ValueError(f"radii must be (r,) and masks (g, {n_ex}); got {radii.shape}, {m.shape}")
    ok = (pred == labels)[None, :] & (radius[None, :] >= radii[:, None])  # [r, n]
    sizes = m.sum(axis=1).astype(np.float64)  # [g]
    hits = ok.astype(np.float64) @ m.T.astype(np.float64)  # [r, g]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes[None, :] > 0, hits / sizes[None, :], np.nan)
