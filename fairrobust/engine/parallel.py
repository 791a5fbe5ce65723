"""Data parallelism over all visible devices: smoothing, attack sweeps, metric sweeps.

Every function here computes exactly what its one-device counterpart computes for
the same key (``smoothing.sample_counts``, ``attacks.robust_correct``,
``metrics.rejection_curves``; ``fairrobust.engine.grid`` does the same for grid training),
splitting one axis of independent work over a 1-D device mesh with
``jax.shard_map``:

* ``sample_counts(split="inputs")`` gives each device a slice of the inputs; their
  noise streams are keyed by *global* input index, so counts are identical to one
  device. ``split="draws"`` gives each device a contiguous range of draw indices
  of every input (for few inputs with large N, e.g. N = 10^6 on one clip) and adds
  the integer counts with ``psum``: identical counts too.
* ``robust_correct`` runs ``D`` attack batches at once, one per device, each with
  the key ``fold_in(key, batch_index)`` that ``attacks.robust_correct`` uses.
* ``rejection_curves`` splits the leading (N / model / sweep) axis of the statistic.

Arrays whose split axis does not divide by the device count are padded (with copies
of row 0, ``fairrobust._batching``) and the padding is dropped from the result.

Host-side CPU devices: the flag below splits one CPU into several JAX devices. It
must be set before JAX initialises (before ``import jax`` in a fresh process)::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python my_script.py

On the 2-core machine of ``benchmarks/README.md`` this no longer speeds sampling up
(one device already keeps both cores busy), and **XLA:CPU computes wrong values when
programs containing ``lax.conv`` run concurrently on several host devices** (jaxlib
0.6.2 to 0.10.2 for a 128-channel convolution, on 0.6.2 and 0.7.2 also for its
im2col-matmul form; 0.4.38 and 0.5.3 were correct; plain-JAX reproduction in
``benchmarks/repro_host_devices.py``). ``sample_counts``,
``robust_correct`` and ``grid.make_grid_step`` therefore warn (``RuntimeWarning``,
:data:`HOST_DEVICES_WARNING`) when :func:`host_conv_hazard` finds ``lax.conv`` in the
program and the mesh has several CPU devices; a model without ``lax.conv``
(``models.M5(conv_impl="matmul")``) matched one device in the same checks
(``tests/test_parallel.py``). The check covers CPU meshes only (the issue is in XLA:CPU).

Multi-host (several machines, each with local devices): start every process with
``runtime.initialize_distributed`` (``jax.distributed.initialize`` with the
coordinator address, process count and id, read from ``JAX_COORDINATOR_ADDRESS`` /
``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` or detected under SLURM, Open MPI and
Cloud TPU) before any other JAX call. ``jax.devices()`` then lists the devices of all
processes and ``device_mesh()`` spans them. Every process must call these functions
with the same arguments (same inputs, same key): inputs are placed with :func:`put`
(each process supplies the shards of its devices), and results come back through
:func:`fetch` (``multihost_utils.process_allgather``), so every process returns the
full result. ``tests/test_distributed.py`` checks two processes against one.

Reference: JAX docs, "Distributed arrays and automatic parallelization",
"Manual parallelism with shard_map", and "Multi-host and multi-process environments".
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fairrobust import attacks, smoothing
from fairrobust._batching import pad_leading, padded_batches
from fairrobust._checks import check_choice, fail
from fairrobust.metrics.rejection import rejection_curves_args, rejection_kernel

__all__ = [
    "AXIS",
    "HOST_DEVICES_WARNING",
    "HOST_DOT_BAD_VERSIONS",
    "MEMBER_STRATEGIES",
    "SPLITS",
    "device_mesh",
    "fetch",
    "host_conv_hazard",
    "pad_leading",
    "put",
    "rejection_curves",
    "replicate",
    "resolve_members",
    "robust_correct",
    "robust_correct_members",
    "robust_predict_members",
    "sample_counts",
    "shard_leading",
    "warn_host_conv",
]

#: Name of the mesh axis every function here splits over.
AXIS = "data"
#: What ``sample_counts`` can split over devices.
SPLITS = ("inputs", "draws")


def device_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh named ``AXIS`` over ``devices`` (default: all of ``jax.devices()``).

    Args:
      devices: devices to use, e.g. ``jax.devices()[:2]``; must be non-empty.

    Returns:
      ``jax.sharding.Mesh`` with one axis ``"data"``.

    Raises:
      ValueError: empty device list.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        fail("devices", "at least one device", "none")
    return Mesh(np.asarray(devs), (AXIS,))


def _mesh(mesh: Mesh | None) -> Mesh:
    if mesh is None:
        return device_mesh()
    if not isinstance(mesh, Mesh) or AXIS not in mesh.axis_names or len(mesh.axis_names) != 1:
        fail("mesh", f"a 1-D jax.sharding.Mesh with axis {AXIS!r}", repr(mesh))
    return mesh


def _put_leaf(a: Any, sharding: NamedSharding) -> Any:
    if isinstance(a, jax.Array) and a.sharding.is_equivalent_to(sharding, a.ndim):
        return a
    if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(a)
        return jax.random.wrap_key_data(_put_leaf(jax.random.key_data(a), sharding), impl=impl)
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return jax.device_put(a, sharding)  # already global: a reshard on the same devices
    # Host values (or one process's committed arrays) go through NumPy: device_put of a
    # host array onto a mesh that spans several processes is the documented multi-process
    # path (every process passes the same value).
    return jax.device_put(np.asarray(a), sharding)


def put(tree: Any, mesh: Mesh | None = None, spec: P | None = None) -> Any:
    """Places every leaf of ``tree`` on the mesh with ``spec`` (default: replicated).

    Works within one process and across ``jax.distributed`` processes (every process
    must pass the same values); leaves already placed that way are kept, PRNG key
    arrays keep their implementation.
    """
    sharding = NamedSharding(_mesh(mesh), P() if spec is None else spec)
    return jax.tree_util.tree_map(lambda a: _put_leaf(a, sharding), tree)


def shard_leading(tree: Any, mesh: Mesh | None = None) -> Any:
    """Places every leaf with its leading axis split over the mesh (must divide)."""
    return put(tree, mesh, P(AXIS))


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Places a full copy of every leaf on every device of the mesh."""
    return put(tree, mesh, P())


def fetch(tree: Any) -> Any:
    """NumPy copies of every leaf; arrays spread over several processes are gathered.

    The one way results leave the devices: within one process this is
    ``jax.device_get``; across ``jax.distributed`` processes every process receives
    the whole array (``multihost_utils.process_allgather``), so every process holds
    the same result.
    """

    def one(a: Any) -> Any:
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(jax.device_get(a))

    return jax.tree_util.tree_map(one, tree)


# ----------------------------------------------------------------------------- smoothing

#: Warned (``RuntimeWarning``) when a program with a convolution is split over several
#: host CPU devices; see :func:`host_conv_hazard`.
HOST_DEVICES_WARNING = (
    "{where}: XLA:CPU known issue — programs containing lax.conv that run concurrently "
    "on several host CPU devices returned wrong values for some rows of a 128-channel "
    "convolution (jaxlib 0.6.2 to 0.10.2; on 0.6/0.7 also its matmul form), so results "
    "can differ from one device; this program has such an op and the mesh has "
    "{devices} CPU devices. Use one device (on CPU one device already keeps every core "
    "busy) or, on jaxlib >= 0.8, a model without lax.conv, e.g. "
    "models.M5(conv_impl='matmul'), which matched one device in the same checks. "
    "Plain-JAX reproduction: benchmarks/repro_host_devices.py; details: "
    "benchmarks/README.md, 'Known issue'."
)


def _subjaxprs(param: Any) -> list[Any]:
    """The jaxprs held by one equation parameter (closed or open, alone or in a list)."""
    items = param if isinstance(param, (tuple, list)) else (param,)
    out = []
    for item in items:
        if hasattr(item, "eqns"):
            out.append(item)
        elif hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
            out.append(item.jaxpr)
    return out


def _has_primitive(jaxpr: Any, name: str) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == name:
            return True
        for param in eqn.params.values():
            if any(_has_primitive(sub, name) for sub in _subjaxprs(param)):
                return True
    return False


def _jaxlib_version() -> tuple[int, ...]:
    return tuple(int(p) for p in jaxlib.version.__version__.split(".")[:2] if p.isdigit())


#: jaxlib (major, minor) versions whose host-device runs also went wrong for a program
#: whose only contractions are matmuls (``dot_general``), not just for ``lax.conv``.
HOST_DOT_BAD_VERSIONS = ((0, 6), (0, 7))


def host_conv_hazard(mesh: Mesh | None, apply_fn: Callable, variables: Any, x: Any) -> bool:
    """Whether ``apply_fn(variables, x)`` on ``mesh`` meets the host-device XLA:CPU issue.

    True iff the mesh has more than one CPU device in this process (devices of other
    ``jax.distributed`` processes run in their own runtime) and the traced program of
    ``apply_fn`` (on abstract values of ``variables`` and ``x``, nothing computed)
    contains ``lax.conv_general_dilated`` at any depth (custom VJP, scan, ...), or,
    with jaxlib 0.6 / 0.7, a ``dot_general``. Such programs running concurrently on
    several host CPU devices returned wrong values for some rows
    (``benchmarks/repro_host_devices.py``: the conv program on jaxlib 0.6.2-0.10.2,
    its im2col-matmul form on 0.6.2 and 0.7.2; both correct on 0.4.38 and 0.5.3).
    ``sample_counts``, ``robust_correct`` and ``grid.make_grid_step`` warn with
    :data:`HOST_DEVICES_WARNING` when this is True.

    Args:
      mesh: the mesh (None: all devices).
      apply_fn: ``(variables, x) -> logits``.
      variables: the model's variables (only shapes and dtypes are used).
      x: an example input batch (array or ``jax.ShapeDtypeStruct``).
    """
    m = _mesh(mesh)
    local = sum(d.process_index == jax.process_index() for d in m.devices.flat)
    if local < 2 or m.devices.flat[0].platform != "cpu":
        return False
    spec = jax.tree_util.tree_map(_abstract, (variables, x))
    jaxpr = jax.make_jaxpr(apply_fn)(*spec).jaxpr
    if _has_primitive(jaxpr, "conv_general_dilated"):
        return True
    return _jaxlib_version() in HOST_DOT_BAD_VERSIONS and _has_primitive(jaxpr, "dot_general")


def _abstract(a: Any) -> jax.ShapeDtypeStruct:
    if hasattr(a, "shape") and hasattr(a, "dtype"):
        return jax.ShapeDtypeStruct(a.shape, a.dtype)
    return jax.ShapeDtypeStruct(np.shape(a), np.result_type(a))


def warn_host_conv(where: str, mesh: Mesh, apply_fn: Callable, variables: Any, x: Any) -> None:
    """Warns :data:`HOST_DEVICES_WARNING` (``RuntimeWarning``) when :func:`host_conv_hazard`.

    Args:
      where: the calling function, named in the message (``"grid.make_grid_step"``).
      mesh, apply_fn, variables, x: as in :func:`host_conv_hazard`.
    """
    if host_conv_hazard(mesh, apply_fn, variables, x):
        msg = HOST_DEVICES_WARNING.format(where=where, devices=mesh.devices.size)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


@functools.lru_cache(maxsize=64)
def _counts_program(mesh: Mesh, apply_fn: Callable, split: str, per_device: int, kw: tuple):
    """Jitted shard_map of the smoothing kernel (cached per mesh / model / static args)."""
    kwargs = dict(kw)

    def by_inputs(variables, x, key, sigma, idx, draw_start):
        return smoothing.counts_kernel(
            apply_fn, variables, x, key, sigma, idx, draw_start=draw_start, **kwargs
        )

    def by_draws(variables, x, key, sigma, idx, draw_start):
        start = draw_start + jax.lax.axis_index(AXIS) * per_device
        counts = smoothing.counts_kernel(
            apply_fn, variables, x, key, sigma, idx, draw_start=start, **kwargs
        )
        return jax.lax.psum(counts, AXIS)

    if split == "inputs":
        body = by_inputs
        in_specs = (P(), P(AXIS), P(), P(), P(AXIS), P())
        out_specs = P(None, AXIS)
    else:
        kwargs["num_samples"] = per_device
        body = by_draws
        in_specs = (P(), P(), P(), P(), P(), P())
        out_specs = P()
    return jax.jit(
        jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    )


def sample_counts(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    x: Any,
    key: jax.Array,
    *,
    num_samples: int,
    sigma: Any,
    num_classes: int,
    split: str = "inputs",
    mesh: Mesh | None = None,
    noise: Any = "gaussian",
    chunk_size: int = 16,
    checkpoints: Sequence[int] | None = None,
    indices: Any = None,
    mode: str = "independent",
    prng_impl: str | None = None,
    compute_dtype: str | None = None,
    input_block: int | None = None,
    linear_stem: Any = None,
    draw_start: int = 0,
) -> np.ndarray:
    """``smoothing.sample_counts`` split over the devices of ``mesh``; identical counts.

    ``split="inputs"``: device ``d`` handles a contiguous slice of the inputs (padded
    to a multiple of the device count). Each input's noise is keyed by its global
    index (``indices``), and in ``mode="shared_bank"`` every device draws the same
    bank, so the counts equal those of one device.

    ``split="draws"``: every device sees all inputs and handles draws
    ``[d * M, (d + 1) * M)`` with ``M = ceil(ceil(N / D) / chunk_size) * chunk_size``;
    the integer counts are summed with ``psum``. A draw's noise depends only on its
    global index, and it counts towards checkpoint ``N_k`` iff that index is
    ``< N_k``, so counts (all checkpoints) equal those of one device. Use it when
    there are fewer inputs than devices or N is large.

    ``draw_start = s`` (either split) counts draws ``[s, s + N)`` of the same streams,
    as ``smoothing.sample_counts(draw_start=s)`` does: with ``split="draws"`` device
    ``d`` handles ``s + [d * M, (d + 1) * M)``, and draws past the checkpoint
    ``s + N`` are not counted.

    Args:
      apply_fn, variables, x, key, num_samples, sigma, num_classes, noise,
        chunk_size, checkpoints, indices, mode, prng_impl, compute_dtype,
        input_block, linear_stem, draw_start: as in ``smoothing.sample_counts``.
        Bit-identical counts need the same forward-pass shape on every device as
        on one: the default ``input_block`` is computed from the whole call's inputs,
        exactly as
        ``smoothing.sample_counts`` computes it, and every shard is padded to
        whole blocks.
      split: "inputs" (default) or "draws".
      mesh: a 1-D mesh from ``device_mesh`` (default: all devices).

    Returns:
      int32 counts ``(len(checkpoints), b, C)`` or ``(b, C)``, as ``sample_counts``.

    Raises:
      ValueError: as ``smoothing.sample_counts``, or an unknown ``split`` / bad mesh.
    """
    check_choice("split", split, SPLITS)
    m = _mesh(mesh)
    d = m.devices.size
    (x, sigma_arr, idx), kw, squeeze = smoothing.prepare_counts(
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
    b = x.shape[0]
    warn_host_conv("parallel.sample_counts", m, apply_fn, variables, x[:1])
    per_device = 0
    if split == "inputs":
        (x, idx), _ = pad_leading((x, idx), d)
    else:
        chunk = kw["chunk_size"]
        per_device = math.ceil(math.ceil(kw["num_samples"] / d) / chunk) * chunk
    prog = _counts_program(m, apply_fn, split, per_device, tuple(sorted(kw.items())))
    start = jnp.asarray(draw_start, jnp.int32)
    variables, key, sigma_arr, start = replicate((variables, key, sigma_arr, start), m)
    x, idx = shard_leading((x, idx), m) if split == "inputs" else replicate((x, idx), m)
    counts = fetch(prog(variables, x, key, sigma_arr, idx, start))[:, :b]
    return smoothing.unstack_sigmas(counts, sigma_arr, squeeze)


# ----------------------------------------------------------------------------- attacks


def robust_correct(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    x: Any,
    y: Any,
    epsilons: Any,
    key: jax.Array,
    *,
    num_steps: int,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    batch_size: int = 64,
    block_rows: int | None = None,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """``attacks.robust_correct`` with its batches spread over the devices; identical result.

    The examples are cut into batches of ``batch_size`` exactly as
    ``attacks.robust_correct`` cuts them (the last padded with copies of row 0, batch
    ``j`` attacked with ``fold_in(key, j)``, all epsilons in one call with the same
    ``block_rows``); ``D``
    batches run at once, batch ``j`` on device ``j mod D``. It is
    :func:`robust_correct_members` of one member.

    Args:
      apply_fn, variables, x, y, epsilons, key, num_steps, norm, rel_step,
        random_start, batch_size, block_rows: as in ``attacks.robust_correct``.
      mesh: a 1-D mesh (default: all devices).

    Returns:
      Boolean array ``(e, n)``: ``correct[i, k] = [f(PGD_{eps_i}(x_k)) == y_k]``.
    """
    return robust_correct_members(
        apply_fn, [variables], x, y, epsilons, [key], num_steps=num_steps, norm=norm,
        rel_step=rel_step, random_start=random_start, batch_size=batch_size,
        block_rows=block_rows, members="map", mesh=mesh,
    )[0]  # fmt: skip


@functools.lru_cache(maxsize=64)
def _members_program(
    mesh: Mesh,
    apply_fn: Callable,
    num_steps: int,
    norm: str,
    random_start: bool,
    block_rows: int,
    strategy: str,
):
    """Jitted shard_map: per device, its batches (``lax.map``) x the K members (predictions)."""

    def body(variables, xb, yb, eps, keys, rel_step):
        # variables [K, ...] (replicated); xb [d_b, bs, T]; keys [d_b, K].
        def one_batch(x1, y1, k1):
            def one_member(v, k):
                return attacks.sweep_predict(
                    apply_fn, v, x1, y1, eps, k, rel_step,
                    num_steps=num_steps, norm=norm, random_start=random_start,
                    block_rows=block_rows,
                )  # fmt: skip

            if strategy == "vmap":
                return jax.vmap(one_member)(variables, k1)
            return jax.lax.map(lambda a: one_member(*a), (variables, k1))

        return jax.lax.map(lambda a: one_batch(*a), (xb, yb, keys))  # [d_b, K, e', bs]

    specs = (P(), P(AXIS), P(AXIS), P(), P(AXIS), P())
    return jax.jit(
        jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P(AXIS), check_vma=False)
    )


#: How the members of one device share a program (``robust_correct_members``,
#: ``grid.make_grid_step``): vmapped, ``lax.map``-ped, or ``"auto"``.
MEMBER_STRATEGIES = ("auto", "vmap", "map")


def resolve_members(members: str) -> str:
    """``"auto"`` -> ``"map"`` on CPU, ``"vmap"`` elsewhere; other strategies unchanged.

    Raises:
      ValueError: not one of :data:`MEMBER_STRATEGIES`.
    """
    check_choice("members", members, MEMBER_STRATEGIES)
    if members == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return members


def robust_correct_members(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Sequence[Any],
    x: Any,
    y: Any,
    epsilons: Any,
    keys: Sequence[jax.Array],
    *,
    num_steps: int,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    batch_size: int = 64,
    block_rows: int | None = None,
    members: str = "auto",
    mesh: Mesh | None = None,
) -> np.ndarray:
    """:func:`robust_correct` of K models of one architecture in one program.

    ``robust_predict_members(...) == y``: member ``k``'s correctness ``[e, n]`` under
    PGD, exactly as ``robust_correct(apply_fn, variables[k], ..., keys[k])``
    (:func:`robust_predict_members` documents the arguments and the strategies).

    Returns:
      Boolean ``(K, e, n)``.
    """
    pred = robust_predict_members(
        apply_fn, variables, x, y, epsilons, keys, num_steps=num_steps, norm=norm,
        rel_step=rel_step, random_start=random_start, batch_size=batch_size,
        block_rows=block_rows, members=members, mesh=mesh,
    )  # fmt: skip
    return pred == np.asarray(y).reshape(1, 1, -1)


def robust_predict_members(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Sequence[Any],
    x: Any,
    y: Any,
    epsilons: Any,
    keys: Sequence[jax.Array],
    *,
    num_steps: int,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    batch_size: int = 64,
    block_rows: int | None = None,
    members: str = "auto",
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Predicted classes under PGD of K models of one architecture, in one program.

    ``pred[k, i, j] = argmax f_k(PGD_{eps_i}(x_j))``; ``pred == y`` is the correctness
    of :func:`robust_correct_members`. Member ``k`` (``variables[k]``, key ``keys[k]``)
    is attacked exactly as
    ``robust_correct(apply_fn, variables[k], ..., keys[k])`` attacks it: batch ``j``
    with ``fold_in(keys[k], j)``, eps = 0 rows by the clean forward pass. The batches
    are spread over the devices and, on each device, the members are vmapped
    (``members="vmap"``: one K-times larger attack, what accelerators want) or
    ``lax.map``-ped (``"map"``: one member after another inside the program);
    ``"auto"`` picks ``"map"`` on CPU and ``"vmap"`` elsewhere. The result does not
    depend on the number of devices; vmapped members equal one-member calls up to
    float32 rounding of the batched forward pass.

    Args:
      apply_fn: the shared model function (static).
      variables: one variables pytree per member (equal structure).
      x, y, epsilons, num_steps, norm, rel_step, random_start, batch_size,
        block_rows: as in :func:`robust_correct`.
      keys: one PRNG key per member.
      members: ``"auto"``, ``"vmap"`` or ``"map"``.
      mesh: a 1-D mesh (default: all devices).

    Returns:
      int32 ``(K, e, n)``.

    Raises:
      ValueError: no members, ``keys`` of another length, an unknown strategy.
    """
    strategy = resolve_members(members)
    k_members = len(variables)
    if k_members == 0 or len(keys) != k_members:
        fail("variables, keys", "equal non-zero lengths", f"{k_members} and {len(keys)}")
    x, y, eps, bs, rows = attacks.prepare_sweep(
        x, y, epsilons, num_steps, norm, batch_size, block_rows
    )
    m = _mesh(mesh)
    d = m.devices.size
    n = x.shape[0]
    out = np.full((k_members, eps.shape[0], n), -1, dtype=np.int32)
    if n == 0:
        return out
    warn_host_conv("parallel.robust_predict_members", m, apply_fn, variables[0], x[:1])
    zero = np.asarray(eps) == 0
    if zero.any():
        for k, v in enumerate(variables):
            out[k, zero] = attacks.clean_predict(apply_fn, v, x, bs)[None]
    attacked = np.flatnonzero(~zero)
    if attacked.size == 0:
        return out
    xb, yb = padded_batches((x, y), bs)
    n_batches = xb.shape[0]
    batch_ids = jnp.arange(n_batches)
    fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    bkeys = jnp.stack([fold(k, batch_ids) for k in keys], axis=1)  # [n_batches, K]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *variables)
    prog = _members_program(m, apply_fn, int(num_steps), norm, bool(random_start), rows, strategy)
    stacked, eps_a, rel = replicate((stacked, eps[attacked], jnp.asarray(rel_step, jnp.float32)), m)
    for start in range(0, n_batches, d):
        group = slice(start, min(start + d, n_batches))
        (gx, gy, gk), kb = pad_leading(
            (jnp.asarray(xb[group]), jnp.asarray(yb[group]), bkeys[group]), d
        )
        gx, gy, gk = shard_leading((gx, gy, gk), m)
        pred = fetch(prog(stacked, gx, gy, eps_a, gk, rel))[:kb]  # [kb, K, e', bs]
        flat = np.moveaxis(pred, 0, 2).reshape(k_members, attacked.size, kb * bs)
        lo = start * bs
        hi = min(lo + kb * bs, n)
        out[:, attacked, lo:hi] = flat[:, :, : hi - lo]
    return out


# ----------------------------------------------------------------------------- metrics


@functools.lru_cache(maxsize=32)
def _rejection_program(mesh: Mesh, reject_if: str):
    def body(stat, thresholds, masks, weights):
        return rejection_kernel(stat, thresholds, masks, weights, reject_if)

    specs = (P(AXIS), P(), P(), P(AXIS))
    return jax.jit(
        jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P(AXIS), check_vma=False)
    )


def rejection_curves(
    stat: Any,
    thresholds: Any,
    masks: Any,
    *,
    reject_if: str = "above",
    weights: Any = None,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """``metrics.rejection_curves`` with the leading axes of ``stat`` split over devices.

    ``stat [..., n]`` is flattened to ``[B, n]`` (e.g. B = checkpoints x models) and
    the ``B`` rows are spread over the devices; each row's curves are computed as in
    ``metrics.rejection_curves`` (identical values).

    Returns:
      float ``[..., a, g]`` in [0, 1]; NaN for empty groups (with a ``RuntimeWarning``).
    """
    s, t, msk, w = rejection_curves_args(
        stat, thresholds, masks, reject_if=reject_if, weights=weights
    )
    m = _mesh(mesh)
    lead, n = s.shape[:-1], s.shape[-1]
    (flat, wflat), rows = pad_leading((s.reshape(-1, n), w.reshape(-1, n)), m.devices.size)
    flat, wflat = shard_leading((flat, wflat), m)
    t, msk = replicate((t, msk), m)
    out = fetch(_rejection_program(m, reject_if)(flat, t, msk, wflat))[:rows]
    return out.reshape((*lead, t.shape[0], msk.shape[0]))
