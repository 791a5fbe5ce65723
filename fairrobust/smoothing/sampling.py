"""Monte Carlo class counts of a base classifier under additive noise (``sample_counts``).

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
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fairrobust._batching import pad_to
from fairrobust._checks import check_choice, check_int, check_rank, concrete, fail
from fairrobust.models import ApplyFn
from fairrobust.smoothing.noise import NoiseFn, resolve_noise

__all__ = [
    "COMPUTE_DTYPES",
    "DEFAULT_CHECKPOINTS",
    "FORWARD_ROWS",
    "MODES",
    "PRNG_IMPLS",
    "check_sigma",
    "counts_kernel",
    "default_input_block",
    "prepare_counts",
    "sample_counts",
    "unstack_sigmas",
]

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


def check_sigma(sigma: Any) -> None:
    """The smoothing noise std: a finite scalar > 0, or a non-empty 1-D sweep of them
    (a traced sigma is not checked).

    Raises:
      ValueError: ``"sigma: expected a finite scalar > 0 (or a 1-D sweep of them), got ..."``.
    """
    s = concrete(sigma)
    if s is not None:
        ok = s.ndim in (0, 1) and s.size > 0 and np.all(np.isfinite(s)) and np.all(s > 0)
        if not ok:
            fail("sigma", "a finite scalar > 0 (or a 1-D sweep of them)", repr(sigma))


def _check_x(x: Any) -> None:
    """A finite waveform batch ``(batch, time)`` (values checked when concrete)."""
    check_rank("x", x, 2, "a waveform batch of shape (batch, time)")
    host = concrete(x)
    if host is not None and not np.all(np.isfinite(host)):
        fail("x", "finite values", "NaN or infinite values")


def _check_linear_stem(linear_stem: Any, mode: str, compute_dtype: str | None) -> None:
    """``models.linear_stem_fn(model)`` with ``mode="shared_bank"`` and no ``compute_dtype``."""
    if linear_stem is None:
        return
    if mode != "shared_bank":
        fail("linear_stem", "mode='shared_bank' (one noise bank)", f"mode={mode!r}")
    if compute_dtype is not None:
        fail(
            "linear_stem",
            "compute_dtype None (it runs in the dtype of x)",
            f"compute_dtype={compute_dtype!r}",
        )
    try:
        hash(linear_stem)
    except TypeError:
        ok = False
    else:
        ok = all(callable(getattr(linear_stem, a, None)) for a in ("stem", "head", "h1"))
    if not ok:
        fail("linear_stem", "None or models.linear_stem_fn(model)", repr(linear_stem))


def _rekey(key: jax.Array, impl: str) -> jax.Array:
    """A typed key of generator ``impl`` seeded deterministically from ``key``."""
    size = jax.random.key_data(jax.random.key(0, impl=impl)).size
    seed = jax.random.bits(jax.random.fold_in(key, _REKEY_TAG), (size,), jnp.uint32)
    return jax.random.wrap_key_data(seed, impl=impl)


class _Pass(NamedTuple):
    """What one forward pass of the counts kernel needs (static settings and traced arrays)."""

    apply_fn: ApplyFn
    variables: Any
    key: jax.Array
    sigma: jax.Array
    ckpt: jax.Array  # [K] checkpoints
    offsets: jax.Array  # [chunk]
    draw_start: jax.Array
    noise: NoiseFn
    t: int
    dtype: Any
    input_block: int
    chunk_size: int
    num_classes: int
    cdt: Any  # forward-pass dtype, or None
    block_keys: bool  # one key per (block, chunk) for RngBitGenerator-based impls


def _one_draw(p: _Pass, k: jax.Array, j: jax.Array) -> jax.Array:
    """Per-draw key: noise of draw j never depends on chunk_size."""
    return p.noise(jax.random.fold_in(k, j), (p.t,), p.dtype)


def _draws_of(p: _Pass, c: jax.Array) -> jax.Array:
    """Global draw indices ``[chunk]`` of chunk ``c``."""
    return p.draw_start + c * p.chunk_size + p.offsets


def _per_sigma(p: _Pass, counts_at: Any) -> jax.Array:
    """``counts_at(sigma) -> [K, ib, C]`` at the one sigma, or stacked over a sigma sweep
    as ``[S * K, ib, C]`` (sweep-major): the sigmas share the step's noise draws."""
    if p.sigma.ndim == 0:
        return counts_at(p.sigma)
    per = lax.map(counts_at, p.sigma)  # [S, K, ib, C], one forward pass per sigma
    return per.reshape(-1, *per.shape[2:])


def _count(p: _Pass, x1: jax.Array, eps: jax.Array, draw: jax.Array) -> jax.Array:
    """Counts [(S *) K, ib, C] of forward passes over x1 [ib, T] + sigma * eps."""

    def at(sigma: jax.Array) -> jax.Array:
        noisy = (x1[:, None, :] + sigma * eps).reshape(p.input_block * p.chunk_size, p.t)
        if p.cdt is not None:  # noise and sum stay float32; only the forward casts
            noisy = noisy.astype(p.cdt)
        # The barrier keeps XLA from fusing the noise into the forward pass differently
        # in different programs (one device vs a shard, one input block vs several),
        # which would change float rounding and flip nearly tied argmaxes.
        logits = p.apply_fn(p.variables, lax.optimization_barrier(noisy))
        return _tally(p, logits, draw, "apply_fn")

    return _per_sigma(p, at)


def _tally(p: _Pass, logits: jax.Array, draw: jax.Array, source: str) -> jax.Array:
    """Counts [K, ib, C] of the logits [ib * chunk, C] of one forward pass."""
    shape = (p.input_block * p.chunk_size, p.num_classes)
    if logits.shape != shape:
        fail(
            source,
            f"logits of shape {shape} (input_block * chunk_size, num_classes)",
            repr(logits.shape),
        )
    onehot = jax.nn.one_hot(jnp.argmax(logits, axis=-1), p.num_classes, dtype=jnp.int32)
    onehot = onehot.reshape(p.input_block, p.chunk_size, p.num_classes)
    # Draw j counts towards checkpoint k iff j < N_k; this also drops the padding
    # draws of a last partial chunk (j >= num_samples >= every N_k).
    take = (draw[None, :] < p.ckpt[:, None]).astype(jnp.int32)  # [K, chunk]
    return jnp.einsum("kj,bjc->kbc", take, onehot)


def _independent_counts(
    p: _Pass, xg: jax.Array, ig: jax.Array, chunks: jax.Array, init: jax.Array
) -> jax.Array:
    """Mode "independent": per-input noise streams; counts ``[G, K, ib, C]``."""

    def group_counts(args: tuple[jax.Array, jax.Array]) -> jax.Array:
        x1, i1 = args
        # Per-input stream keyed by the global index: independent of batch composition.
        input_keys = jax.vmap(lambda i: jax.random.fold_in(p.key, i))(i1)  # [ib]

        def step(counts: jax.Array, c: jax.Array) -> tuple[jax.Array, None]:
            draw = _draws_of(p, c)
            if p.block_keys:
                # XLA's RngBitGenerator ignores all but the first key of a vmapped
                # batch, so per-draw keys would not give per-draw streams: draw the
                # step's block from one key per (first global input index of the
                # block, global chunk index) instead.
                gchunk = p.draw_start // p.chunk_size + c
                k_step = jax.random.fold_in(jax.random.fold_in(p.key, i1[0]), gchunk)
                eps = p.noise(k_step, (p.input_block, p.chunk_size, p.t), p.dtype)
            else:
                eps = jax.vmap(lambda k: jax.vmap(lambda j: _one_draw(p, k, j))(draw))(input_keys)
            return counts + _count(p, x1, eps, draw), None

        return lax.scan(step, init, chunks)[0]

    return lax.map(group_counts, (xg, ig))


def _shared_bank_counts(
    p: _Pass, xg: jax.Array, n_chunks: int, n_rows: int, linear_stem: Any
) -> jax.Array:
    """Mode "shared_bank": one noise bank for every input of the call; ``[G, K, ib, C]``.

    One scan over (chunk, block) pairs, block fastest: the bank chunk [chunk, T] is
    drawn when a chunk starts (block 0) and carried to the chunk's other blocks. A
    single flat loop keeps the forward pass inside the same loop body for any number
    of blocks (a nested loop of one trip would be inlined by XLA and fused
    differently, changing float rounding between one device and a shard).
    """
    n_groups = xg.shape[0]

    def draw_eps(c: jax.Array) -> jax.Array:
        if p.block_keys:
            gchunk = p.draw_start // p.chunk_size + c
            return p.noise(jax.random.fold_in(p.key, gchunk), (p.chunk_size, p.t), p.dtype)
        return jax.vmap(lambda j: _one_draw(p, p.key, j))(_draws_of(p, c))  # [chunk, T]

    stem = linear_stem
    if stem is not None:
        # Linear first convolution S: S x once per input (in blocks of the fixed
        # shape [ib, T]), S eps once per bank chunk, shared by all inputs. Inputs
        # are centred first when the model standardises (its output does not
        # change; a DC offset then does not cancel against m * ksum).
        if stem.standardize:
            xg = xg - xg.mean(axis=2, keepdims=True)
        sxg = lax.map(lambda x1: stem.stem(p.variables, x1), xg)  # [G, ib, L1, w]

    def draw_bank(c: jax.Array) -> tuple[jax.Array, ...]:
        eps = draw_eps(c)
        return (eps,) if stem is None else (eps, stem.stem(p.variables, eps))

    def bank_count(g: jax.Array, bank: tuple[jax.Array, ...], draw: jax.Array) -> jax.Array:
        x1 = lax.dynamic_index_in_dim(xg, g, keepdims=False)
        if stem is None:
            return _count(p, x1, bank[0][None], draw)  # [K, ib, C]
        sx1 = lax.dynamic_index_in_dim(sxg, g, keepdims=False)
        ls = stem

        def at(sigma: jax.Array) -> jax.Array:
            h1 = ls.h1(p.variables, x1, sx1, bank[0], bank[1], sigma)  # [ib * chunk, L1, w]
            # Barrier: as for the noisy input of _count().
            return _tally(p, ls.head(p.variables, lax.optimization_barrier(h1)), draw, "head")

        return _per_sigma(p, at)

    def bank_step(
        carry: tuple[jax.Array, tuple[jax.Array, ...]], s: jax.Array
    ) -> tuple[tuple[jax.Array, tuple[jax.Array, ...]], None]:
        counts, bank = carry
        c, g = s // n_groups, s % n_groups
        bank = lax.cond(g == 0, draw_bank, lambda _: bank, c)
        add = bank_count(g, bank, _draws_of(p, c))
        return (counts.at[g].add(add), bank), None

    init_g = jnp.zeros((n_groups, n_rows, p.input_block, p.num_classes), jnp.int32)
    bank0 = jax.tree_util.tree_map(
        lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(draw_bank, jnp.int32(0))
    )
    steps = jnp.arange(n_chunks * n_groups, dtype=jnp.int32)
    return lax.scan(bank_step, (init_g, bank0), steps)[0][0]


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
def counts_kernel(
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
    """The jitted kernel of :func:`sample_counts`: running class counts at ``checkpoints``.

    No validation: call it with the arguments :func:`prepare_counts` returns (the
    engine's sharded sampler calls it inside ``shard_map``). Processes draws
    ``draw_start + [0, num_samples)`` (rounded up to whole chunks); a draw counts
    towards checkpoint ``N_k`` iff its global index is ``< N_k``, so the counts of
    disjoint draw ranges add up (``fairrobust.engine.sample_counts`` splits draws over
    devices this way). Inputs are processed ``input_block`` at a time (the last block
    padded with copies of the first input, ``fairrobust._batching``), so every forward
    pass has the shape ``[input_block * chunk_size, T]`` whatever ``b`` is. With
    ``linear_stem`` (shared bank only) the forward pass is ``linear_stem.head`` on the
    first-convolution output assembled from ``stem(x)`` (once per input) and
    ``stem(eps)`` (once per bank chunk).

    Args:
      apply_fn, variables, x, key, sigma, indices: as ``prepare_counts`` returns them
        (x ``[b, T]``, sigma a scalar or a sweep ``[S]`` of x's dtype, indices int32
        ``[b]``).
      num_samples, num_classes, noise, chunk_size, checkpoints, mode, input_block,
        prng_impl, compute_dtype, linear_stem: the static settings ``prepare_counts``
        returns (``noise`` resolved to a ``NoiseFn``, ``checkpoints`` a tuple).
      draw_start: global index of the first draw (traced).

    Returns:
      int32 ``[len(checkpoints), b, C]``; with a sigma sweep ``[S * len(checkpoints),
      b, C]`` (sigma-major; :func:`sample_counts` reshapes it to ``[S, K, b, C]``).
    """
    chex.assert_rank(x, 2)
    chex.assert_shape(indices, (x.shape[0],))
    b, t = x.shape
    n_chunks = -(-num_samples // chunk_size)
    n_groups = -(-b // input_block)
    if prng_impl is not None:
        key = _rekey(key, prng_impl)
    cdt = None
    if compute_dtype is not None:
        cdt = jnp.dtype(compute_dtype)
        variables = jax.tree_util.tree_map(
            lambda a: a.astype(cdt) if jnp.issubdtype(a.dtype, jnp.floating) else a, variables
        )
    draw_start = jnp.asarray(draw_start, jnp.int32)
    ckpt = jnp.asarray(checkpoints, jnp.int32)  # [K]
    sigma = jnp.asarray(sigma, x.dtype)
    offsets = jnp.arange(chunk_size, dtype=jnp.int32)  # [chunk]
    # Rows of the counts: the checkpoints, per sigma of a sweep (sweep-major).
    n_ckpt = len(checkpoints) * (sigma.shape[0] if sigma.ndim == 1 else 1)

    x, indices = pad_to((x, indices), n_groups * input_block)
    xg = x.reshape(n_groups, input_block, t)
    ig = indices.reshape(n_groups, input_block)
    p = _Pass(
        apply_fn=apply_fn,
        variables=variables,
        key=key,
        sigma=sigma,
        ckpt=ckpt,
        offsets=offsets,
        draw_start=draw_start,
        noise=noise,
        t=t,
        dtype=x.dtype,
        input_block=input_block,
        chunk_size=chunk_size,
        num_classes=num_classes,
        cdt=cdt,
        block_keys=prng_impl in ("rbg", "unsafe_rbg"),
    )
    chunks = jnp.arange(n_chunks, dtype=jnp.int32)
    init = jnp.zeros((n_ckpt, input_block, num_classes), jnp.int32)
    if mode == "independent":
        out = _independent_counts(p, xg, ig, chunks, init)  # [G, K, ib, C]
    else:
        out = _shared_bank_counts(p, xg, n_chunks, n_ckpt, linear_stem)
    counts = jnp.moveaxis(out, 1, 0).reshape(n_ckpt, n_groups * input_block, num_classes)
    return counts[:, :b]


def default_input_block(chunk_size: int, num_inputs: int, platform: str | None = None) -> int:
    """Inputs per forward pass that ``sample_counts`` uses when ``input_block`` is None.

    ``min(num_inputs, max(1, FORWARD_ROWS[platform] // chunk_size))``: forward passes of
    about ``FORWARD_ROWS`` rows (32 on CPU, where small batches stay in cache; 8192 on
    accelerators), never padded beyond the inputs of the call. Every call with at
    least ``FORWARD_ROWS // chunk_size`` inputs (2 at the default chunk of 16 on CPU)
    therefore has the same forward shape, and ``fairrobust.engine`` takes this
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
    sigma: float | jax.Array | Sequence[float],
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
    draw_start: int = 0,
) -> jax.Array:
    """Class counts of the base classifier under additive noise, for many inputs at once.

    ``counts[i, c] = #{ j < N : argmax apply_fn(variables, x_i + sigma * eps_ij) = c }``
    with ``eps_ij`` i.i.d. unit-std noise (Cohen et al. 2019, the ``SampleUnderNoise``
    step of PREDICT and CERTIFY). Inputs are processed ``input_block`` and draws
    ``chunk_size`` at a time inside a ``lax.scan``; each step is one forward pass of
    shape ``[input_block * chunk_size, T]``, so memory is
    ``O(input_block * chunk_size * T)`` whatever ``num_samples`` and ``b`` are. On CPU,
    32-64 rows per forward pass ran fastest (``FORWARD_ROWS``).

    Noise for draw ``j`` of input ``i`` comes from
    ``fold_in(fold_in(key, indices[i]), j)`` (mode "independent"), so the noise is
    identical for any ``chunk_size`` and any batch composition as long as each input
    keeps its global index. Counts are bit-identical for any batch composition and any
    device split (``fairrobust.engine``) at a fixed forward shape
    ``input_block * chunk_size`` (pass ``input_block``, or call with at least
    ``FORWARD_ROWS // chunk_size`` inputs); changing that shape can change the float
    rounding of the logits and flip draws whose top-two logits are tied to within
    rounding (the contrived near-tie M5 of ``tests/test_parallel.py``, then with lax
    convolutions, flipped 19 of 960 draws when ``input_block`` went from 4 to 1; trained
    models rarely have such ties). In mode "shared_bank" draw ``j`` uses
    ``fold_in(key, j)`` for every input of the call: each input still sees
    ``num_samples`` i.i.d. draws (same marginal count distribution, so the same
    statistical guarantees per input), noise is generated once per step instead of ``b``
    times, and decisions of different inputs become correlated.

    Jit: ``apply_fn``, ``num_samples``, ``num_classes``, ``noise``, ``chunk_size``,
    ``checkpoints``, ``mode`` and ``linear_stem`` are static; ``sigma``, ``x``, ``key``
    and ``variables`` are traced, so calls at different sigmas of the same shape
    compile once, and a sweep ``sigma=[s1, s2, s3]`` is one program.

    Args:
      apply_fn: ``apply_fn(variables, x [B, T]) -> logits [B, num_classes]``; must be
        hashable and stable across calls (e.g. ``models.logits_fn(model)``).
      variables: model variables pytree.
      x: waveforms in [-1, 1], shape ``(b, T)``.
      key: ``jax.random.key`` or legacy ``PRNGKey``.
      num_samples: N >= 1, number of noise draws per input.
      sigma: per-coordinate standard deviation of the noise, scalar > 0 (traced), or a
        1-D sweep ``[S]`` of them: one program draws each chunk of noise once and runs
        the forward pass at every sigma (common random numbers: the sigmas see the
        same draws ``eps``, scaled), adding a leading ``S`` axis to the counts.
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
        ``jax.random.key``) or one of ``PRNG_IMPLS``. A name re-keys the noise stream: a
        key of that generator is seeded from ``fold_in(key, 0x5EED)`` and the per-input
        / per-draw ``fold_in`` scheme above is applied to it. What changes: only which
        pseudo-random numbers are drawn (counts differ from the default stream draw by
        draw but have the same distribution); "rbg" / "unsafe_rbg" generate bits with
        XLA's RngBitGenerator (Philox on GPU, usually faster there; 2.5-4x slower than
        threefry on the 2-core CPU of ``benchmarks/README.md``); "unsafe_rbg" also
        derives keys with a cheaper, less well-mixed rule. "threefry2x32" keeps the
        per-input / per-draw keying, so its counts stay independent of ``chunk_size``
        and batch composition. With "rbg" / "unsafe_rbg" (whose vmapped generation uses
        only the first key of a batch) each scan step draws one ``[b, chunk_size, T]``
        block from the key ``fold_in(fold_in(k, indices[0]), global chunk index)``:
        draws stay i.i.d. and reproducible for the same call, but counts then depend on
        ``chunk_size`` and on which inputs share a call.
      compute_dtype: None (default: the dtype of ``x``) or one of ``COMPUTE_DTYPES``.
        Noise is drawn and added in float32; the noisy input and the floating variables
        are cast to this dtype for the forward pass only. What changes: logits carry
        bfloat16 / float16 rounding, so a draw whose top-two logits are within that
        rounding may be counted for the other class; the sample stays i.i.d. (each draw
        is still one deterministic function of its noise), so PREDICT / CERTIFY
        guarantees hold for the bf16 base classifier. Meant for accelerators (bf16
        matrix units); on CPU it is usually slower.
      linear_stem: None (default) or ``models.linear_stem_fn(model)`` for the M5 behind
        ``apply_fn``; needs ``mode="shared_bank"`` and ``compute_dtype`` None. The first
        convolution is linear, so with standardisation
        ``conv1(std(x_i + s eps_j)) = (S x_i + s S eps_j - m_ij ksum) * rstd_ij + bias``
        (``models.linear_stem_combine``, per-pair mean and variance from one small
        matmul, ``models.linear_stem_stats``): ``S x_i`` is computed once per input
        (before the loop, memory ``b * L1 * width`` floats, ``L1 ~ T / 16``),
        ``S eps_j`` once per bank chunk, and ``linear_stem.head`` runs the rest of the
        network per (input, draw) pair instead of ``apply_fn`` (which must still be that
        model's ``logits_fn``). What changes: nothing in the noise (the draws are those
        of ``mode="shared_bank"`` with the same key), but the logits differ from
        ``apply_fn``'s by float rounding, so a draw whose top-two logits are tied to
        within rounding may be counted for the other class: counts are not bit-identical
        to the plain shared bank, only statistically indistinguishable
        (``tests/test_sampling_modes.py``). Faster when the first convolution dominates
        the forward pass (about 2/3 of the FLOPs of a width-32 M5 on 1 s of 16 kHz
        audio; less at large widths, where the 3-tap convolutions dominate).
      draw_start: global index of the first draw (default 0): counts draws ``[draw_start,
        draw_start + num_samples)`` of the same streams (rules: :func:`prepare_counts`).

    Returns:
      int32 counts of shape ``(len(checkpoints), b, num_classes)``, or
      ``(b, num_classes)`` when ``checkpoints`` is None, with a leading ``(S,)`` axis
      for a sigma sweep. Rows sum to the checkpoint N (minus ``draw_start``).

    Raises:
      ValueError: bad ``num_samples``, ``draw_start``, ``chunk_size``, ``num_classes``,
        ``sigma``, ``checkpoints``, ``noise``, ``mode``, ``indices``, ``linear_stem`` (or it
        without ``mode="shared_bank"`` or with a ``compute_dtype``), x not
        ``(b, T)`` or containing NaN/inf, or logits of the wrong shape.
    """
    args, kw, squeeze = prepare_counts(
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
        draw_start=draw_start,
    )
    x, sigma, indices = args
    counts = counts_kernel(apply_fn, variables, x, key, sigma, indices, draw_start=draw_start, **kw)
    return unstack_sigmas(counts, sigma, squeeze)


def unstack_sigmas(counts: Any, sigma: Any, squeeze: bool) -> Any:
    """The kernel's ``[(S *) K, b, C]`` counts as ``[(S,) (K,) b, C]``: a sigma sweep
    gets its own leading axis; ``squeeze`` drops the checkpoint axis."""
    if np.ndim(sigma) == 1:
        counts = counts.reshape(np.shape(sigma)[0], -1, *counts.shape[1:])
        return counts[:, 0] if squeeze else counts
    return counts[0] if squeeze else counts


def prepare_counts(
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
    draw_start: int = 0,
) -> tuple[tuple[jax.Array, jax.Array, jax.Array], dict[str, Any], bool]:
    """Checked ``sample_counts`` arguments for :func:`counts_kernel`.

    Shared by ``sample_counts`` and ``fairrobust.engine.sample_counts``, so both
    validate, resolve the noise family and choose ``input_block`` alike.

    Args:
      x, sigma, indices, num_samples, num_classes, noise, chunk_size, checkpoints,
        mode, prng_impl, compute_dtype, input_block, linear_stem: as in
        :func:`sample_counts`.
      draw_start: global index ``s >= 0`` of the first draw: the call counts draws
        ``[s, s + num_samples)`` of the same per-input noise stream, so
        ``counts(N=s) + counts(draw_start=s, num_samples=m) == counts(N=s + m)`` bit
        for bit at a fixed forward shape (pass ``input_block``). ``checkpoints`` are
        then global sample sizes in ``[s + 1, s + num_samples]`` (counts at ``N_k``
        are those of draws ``[s, N_k)``); without them the one checkpoint is ``s +
        num_samples``, so draws of a last partial chunk never count. Any ``s`` is
        exact with per-draw keys (the default threefry); with ``prng_impl="rbg"`` /
        ``"unsafe_rbg"`` (keys per chunk) ``s`` must be a multiple of ``chunk_size``.
        Checked here; the caller passes it to the kernel (traced, not static).

    Returns:
      ``((x, sigma, indices), static kwargs of counts_kernel, squeeze)``; ``squeeze``
      is True when ``checkpoints`` was None (the caller drops the checkpoint axis).
      The checkpoints in the kwargs are global (``draw_start + num_samples`` when
      ``checkpoints`` was None).

    Raises:
      ValueError: as :func:`sample_counts`.
    """
    num_samples = check_int("num_samples", num_samples, 1)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    num_classes = check_int("num_classes", num_classes, 2)
    check_choice("mode", mode, MODES)
    check_choice("prng_impl", prng_impl, (None, *PRNG_IMPLS))
    check_choice("compute_dtype", compute_dtype, (None, *COMPUTE_DTYPES))
    noise_fn = resolve_noise(noise)
    check_sigma(sigma)
    _check_x(x)
    x = jnp.asarray(x)  # NumPy float64 input becomes the default float dtype here
    if compute_dtype is not None and jnp.dtype(compute_dtype) == x.dtype:
        compute_dtype = None
    _check_linear_stem(linear_stem, mode, compute_dtype)
    draw_start = check_int("draw_start", draw_start, 0)
    end = draw_start + num_samples  # one past the last draw counted
    if end > np.iinfo(np.int32).max:  # global draw indices are int32 in the kernel
        fail("draw_start", "draw_start + num_samples < 2^31", f"{draw_start} + {num_samples}")
    if prng_impl in ("rbg", "unsafe_rbg") and draw_start % chunk_size:
        fail(
            "draw_start",
            f"a multiple of chunk_size={chunk_size} with prng_impl={prng_impl!r} (keys per chunk)",
            repr(draw_start),
        )
    squeeze = checkpoints is None
    if checkpoints is None:
        ckpts: tuple[int, ...] = (end,)
    else:
        ckpts = tuple(check_int("checkpoints", int(c), 1) for c in checkpoints)
        if not ckpts or max(ckpts) > end or min(ckpts) <= draw_start:
            span = (
                f"[1, num_samples={num_samples}]"
                if draw_start == 0
                else f"[draw_start + 1, draw_start + num_samples] = [{draw_start + 1}, {end}]"
            )
            fail(
                "checkpoints", f"a non-empty sequence of sample sizes in {span}", repr(checkpoints)
            )
    b = x.shape[0]
    if indices is None:
        indices = jnp.arange(b, dtype=jnp.int32)
    else:
        indices = jnp.asarray(indices)
        if indices.shape != (b,) or not jnp.issubdtype(indices.dtype, jnp.integer):
            fail("indices", f"integers of shape ({b},)", f"{indices.dtype} {indices.shape}")
    if input_block is None:
        input_block = default_input_block(chunk_size, b)
    else:
        input_block = check_int("input_block", input_block, 1)
    # One dtype for every sigma (Python float, NumPy or JAX scalar): no retrace.
    sigma = jnp.asarray(np.asarray(sigma) if concrete(sigma) is not None else sigma, x.dtype)
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
