"""python benchmarks/repro_host_devices.py [--fairrobust]

Reproduces the known XLA:CPU issue of ``benchmarks/README.md`` ("Known issue: host
CPU devices"): two jitted programs that contain a 128-channel ``lax.conv`` and run
*concurrently* on two host CPU devices return wrong values for the first row of some
of their convolutions, while the same programs run one after the other agree bit for
bit. Nothing of fairrobust is involved in the first part (plain JAX); the script sets
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` itself when it is unset.

Prints, for the plain-JAX program (a scan of 40 steps inside a ``lax.map`` over 4
seeds: random batch [32, 16000] -> frame sums -> ReLU -> max pool 4 -> conv 3 x 128 ->
128 -> time mean), the number of output rows (of 160 per device) that differ between
a concurrent and a sequential run, for ``lax.conv`` and for the same convolution
written as an im2col matmul. Seen on jaxlib 0.9.2 and 0.10.2 (2-core AMD EPYC): about
half of the conv rows differ, none of the matmul rows.

``--fairrobust`` also runs ``parallel.sample_counts`` with a width-128 M5 (16 clips,
N = 2,000) for ``conv_impl="lax"`` and ``"matmul"`` against ``smoothing.sample_counts``
on one device and prints the differing draws per input.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

W, STEPS, BATCH = 128, 40, 32
DIMS = ("NWC", "WIO", "NWC")


def program(conv: str):
    """Jitted ``seeds [G] -> [G, STEPS, BATCH, W]`` (see the module docstring)."""
    rng = np.random.default_rng(0)
    kernel = jnp.asarray(rng.standard_normal((3, W, W)).astype(np.float32) / np.sqrt(3 * W))

    def net(x: jax.Array) -> jax.Array:
        h = x[:, : 996 * 16].reshape(BATCH, 996, 16).sum(-1, keepdims=True) * jnp.ones((W,))
        h = jax.nn.relu(h)[:, :996].reshape(BATCH, 249, 4, W).max(2)
        if conv == "lax":
            h = lax.conv_general_dilated(h, kernel, (1,), "VALID", dimension_numbers=DIMS)
        else:
            frames = jnp.concatenate([h[:, j : j + 247] for j in range(3)], axis=-1)
            h = frames @ kernel.reshape(3 * W, W)
        return h.mean(1)

    def per_seed(s: jax.Array) -> jax.Array:
        def step(carry: int, i: jax.Array) -> tuple[int, jax.Array]:
            k = jax.random.fold_in(jax.random.key(0), s * 1000 + i)
            return carry, net(jax.random.normal(k, (BATCH, 16000)))

        return lax.scan(step, 0, jnp.arange(STEPS))[1]

    return jax.jit(lambda seeds: lax.map(per_seed, seeds))


def plain_jax() -> None:
    devs = jax.devices()
    if len(devs) < 2:
        raise SystemExit("needs 2 host devices: XLA_FLAGS=--xla_force_host_platform_device_count=2")
    s0 = jax.device_put(jnp.arange(4), devs[0])
    s1 = jax.device_put(jnp.arange(4, 8), devs[1])
    for conv in ("lax", "matmul"):
        f = program(conv)
        seq = [np.asarray(f(s0)), np.asarray(f(s1))]  # one after the other
        diffs = []
        for _ in range(3):
            a, b = f(s0), f(s1)  # dispatched together: the two devices run concurrently
            out = [np.asarray(a), np.asarray(b)]
            pairs = zip(out, seq, strict=True)
            diffs.append([int((np.abs(o - r).max(-1) > 0).sum()) for o, r in pairs])
        print(f"jax {jax.__version__}, {conv:6s}: rows differing (device 0, device 1) in 3 "
              f"concurrent runs: {diffs}")  # fmt: skip


def with_fairrobust() -> None:
    import warnings

    sys.path.insert(0, os.path.dirname(__file__))
    from _common import waveforms

    from fairrobust import models
    from fairrobust import smoothing as S
    from fairrobust.engine import parallel

    x = jnp.asarray(waveforms(16))
    kw = dict(num_samples=2000, sigma=0.1, num_classes=10, chunk_size=16)
    for impl in ("lax", "matmul"):
        model = models.M5(num_classes=10, width=128, conv_impl=impl)
        v = models.init_variables(model, jax.random.key(0), 16000)
        f = models.logits_fn(model)
        one = np.asarray(S.sample_counts(f, v, x, jax.random.key(0), **kw))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for _ in range(2):
                par = np.asarray(parallel.sample_counts(f, v, x, jax.random.key(0), **kw))
                diff = (np.abs(one - par).sum(-1) // 2).tolist()
                print(f"M5 width 128, conv_impl={impl!r}: differing draws per input {diff}")


if __name__ == "__main__":
    plain_jax()
    if "--fairrobust" in sys.argv[1:]:
        with_fairrobust()
