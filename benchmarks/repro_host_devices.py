"""XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/repro_host_devices.py

Reproduces the known issue of ``benchmarks/README.md``: ``parallel.sample_counts`` over
several host CPU devices counted some draws for a wrong class (width-128 M5, 16
synthetic clips, N = 2,000, chunk 16). Prints, for input 0, the class counts of a plain
per-draw reference (each draw's noise from its own key, ``apply_fn``, argmax), of the
one-device ``smoothing.sample_counts`` and of ``parallel.sample_counts`` (three runs),
and the number of differing draws per input.
"""

from __future__ import annotations

import warnings

from _common import jax, jnp, m5, np, waveforms

from fairrobust import parallel
from fairrobust import smoothing as S

N, CHUNK, SIGMA, C = 2000, 16, 0.1, 10


def main() -> None:
    apply_fn, v = m5(128)
    x = jnp.asarray(waveforms(16))
    key = jax.random.key(0)
    k0 = jax.random.fold_in(key, 0)
    f = jax.jit(apply_fn)
    preds = []
    for s in range(0, N, 100):
        draws = jnp.arange(s, s + 100)
        eps = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(k0, j), (16000,)))(draws)
        preds.append(np.asarray(jnp.argmax(f(v, x[0][None] + SIGMA * eps), -1)))
    print("devices:", len(jax.devices()))
    print("reference, input 0:", np.bincount(np.concatenate(preds), minlength=C).tolist())
    kw = dict(num_samples=N, sigma=SIGMA, num_classes=C, chunk_size=CHUNK)
    one = np.asarray(S.sample_counts(apply_fn, v, x, key, **kw))
    print("one device, input 0:", one[0].tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(3):
            par = np.asarray(parallel.sample_counts(apply_fn, v, x, key, **kw))
            diff = (np.abs(one - par).sum(-1) // 2).tolist()
            print("parallel, input 0:", par[0].tolist(), "differing draws per input:", diff)


if __name__ == "__main__":
    main()
