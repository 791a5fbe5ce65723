"""One process of the multi-process checks in ``tests/test_distributed.py`` (not a test).

``python tests/distributed_worker.py OUT.npz [COORDINATOR PROCESSES PROCESS_ID]``: with
the three settings, joins a ``jax.distributed`` run on localhost (one CPU device per
process, gloo collectives); without them, runs alone. Either way it computes, through
the engine, the three kinds of work a study shards: grid training of two members (split
over the processes when there are several), an attack sweep (``parallel.robust_correct``)
and smoothing counts split over inputs and over draws (``parallel.sample_counts``).
Process 0 writes every result to OUT.npz.
"""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

from fairrobust.engine import runtime


def main(argv: list[str]) -> int:
    out = argv[0]
    if len(argv) == 4:
        runtime.initialize_distributed(argv[1], int(argv[2]), int(argv[3]))
    import dataclasses

    import numpy as np

    from fairrobust import models, train
    from fairrobust.data.dataset import AudioDataset
    from fairrobust.engine import grid, parallel

    rt = runtime.Runtime.create()
    rng = np.random.default_rng(0)
    n, t = 24, 7000
    labels = np.arange(n) % 3
    tt = np.arange(t) / 8000
    waves = np.sin(2 * np.pi * 300.0 * (labels[:, None] + 1) * tt) * 0.5
    waves = (waves + 0.05 * rng.standard_normal((n, t))).astype(np.float32)
    ds = AudioDataset(
        name="tones",
        waveforms=waves,
        labels=labels.astype(np.int32),
        class_names=("a", "b", "c"),
        speakers=np.asarray([f"s{i % 4}" for i in range(n)]),
        splits=np.asarray(["train"] * 18 + ["val"] * 6),
        attributes={"gender": np.asarray(["f", "m"] * (n // 2))},
        sample_rate=8000,
        paths=np.asarray([f"{i}.wav" for i in range(n)]),
    )
    base = train.TrainConfig(model="m5-tricks", width=4, epochs=2, batch_size=6, lr=3e-3)
    configs = [dataclasses.replace(base, seed=0), dataclasses.replace(base, seed=1, noise_std=0.05)]
    # The members split over the processes (what accelerators do; on CPU the studies
    # train on one device per process, rt.train_mesh is None).
    mesh = rt.mesh if rt.process_count > 1 else None
    trained = grid.train_grid(ds, configs, mesh=mesh, progress=False)
    variables = trained[0].variables
    apply_fn = models.logits_fn(rt.eval_model(trained[0].model))
    x, y = waves[:10], labels[:10].astype(np.int32)
    key = jax.random.key(3)
    correct = parallel.robust_correct(
        apply_fn, variables, x, y, np.asarray([0.0, 0.01, 0.05], np.float32), key,
        num_steps=3, batch_size=4, mesh=rt.mesh,
    )  # fmt: skip
    by_inputs = parallel.sample_counts(
        apply_fn, variables, x[:5], key, num_samples=40, sigma=0.1, num_classes=3,
        checkpoints=(10, 40), mesh=rt.mesh,
    )  # fmt: skip
    by_draws = parallel.sample_counts(
        apply_fn, variables, x[:1], key, num_samples=40, sigma=0.1, num_classes=3,
        split="draws", mesh=rt.mesh,
    )  # fmt: skip
    logits = [np.asarray(r.apply_fn(r.variables, waves)) for r in trained]
    if rt.writer:
        np.savez(
            out,
            correct=correct,
            by_inputs=by_inputs,
            by_draws=by_draws,
            logits=np.stack(logits),
            devices=rt.devices,
            processes=rt.process_count,
        )
    rt.barrier("worker done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
