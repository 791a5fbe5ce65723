"""python benchmarks/bench_train.py [--quick] [--k 8] [--out DIR]

Training throughput of M5 (width 32) on synthetic 1 s / 16 kHz batches of 32:
steps per second of ``train.make_train_step`` for clean training and for PGD
adversarial training (10 steps of eps / 5, joint loss), and K grid members trained
together (``fairrobust.engine.grid``: one jitted step over stacked parameters, the members
either vmapped or ``lax.map``-ped; ``members="auto"`` picks map on CPU and vmap
elsewhere) against the same K members stepped one after another (K calls of each
member's ``train.make_train_step``), in the same process. ``--quick`` uses 2 PGD steps and
K = 4 for a CPU smoke run. Compile time is reported apart from the steady state.
"""

# Closures below are called inside the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import dataclasses

from _common import block, environment, jax, jnp, np, table, time_call, waveforms, write_results

from fairrobust import train
from fairrobust.engine import grid

T, C, BATCH = 16000, 10, 32


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    k = args.k or (4 if args.quick else 8)
    at_steps = 2 if args.quick else 10
    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    x_all = jnp.asarray(waveforms(4 * BATCH))
    y_all = jnp.asarray(np.arange(4 * BATCH, dtype=np.int32) % C)
    rows = []
    for kind, extra in (("clean", {}), ("adversarial", {"at_eps": 0.01, "at_steps": at_steps})):
        base = train.TrainConfig(width=args.width, batch_size=BATCH, **extra)
        configs = [
            dataclasses.replace(
                base,
                seed=s,
                noise_std=0.01 * s if kind == "clean" else 0.0,
                at_eps=base.at_eps * (1 + s) if kind != "clean" else 0.0,
            )
            for s in range(k)
        ]
        model = base.make_model(C)
        # Sequential: each member its own state and (cached per config) train step.
        states = [train.create_train_state(model, c, T, 4) for c in configs]
        steps = [train.make_train_step(model, c) for c in configs]
        idx = np.stack([np.roll(np.arange(BATCH), s) for s in range(k)])
        keys = [jax.random.key(s) for s in range(k)]

        def sequential(states=states):
            out = []
            for m in range(k):
                batch = (x_all[idx[m]], y_all[idx[m]])
                out.append(steps[m](states[m], batch, keys[m]))
            return block(out)

        one = time_call(
            lambda: block(steps[0](states[0], (x_all[idx[0]], y_all[idx[0]]), keys[0])), repeats=3
        )
        seq = time_call(sequential, repeats=2)
        hp = grid.Hyper.from_configs(configs)
        gkeys = jnp.stack(keys)
        jidx = jnp.asarray(idx)
        grid_rows = []
        for strategy in ("map", "vmap"):
            gstep = grid.make_grid_step(model, configs, members=strategy)
            holder = {"s": grid.init_states(model, configs, T, 4)}

            def grid_call():
                s, m = gstep(holder["s"], hp, x_all, y_all, jidx, gkeys)
                holder["s"] = s  # the step donates its state argument
                return block(m)

            gt = time_call(grid_call, repeats=2)
            grid_rows.append(
                {
                    "training": kind,
                    "variant": f"{k} models grid ({strategy})",
                    "models": k,
                    "steps_per_s": k / gt["steady_s"],
                    "steady_s": gt["steady_s"],
                    "compile_s": gt["compile_s"],
                    "speedup": seq["steady_s"] / gt["steady_s"],
                }
            )
        rows.append(
            {
                "training": kind,
                "variant": "1 model, train_step",
                "models": 1,
                "steps_per_s": 1 / one["steady_s"],
                "steady_s": one["steady_s"],
                "compile_s": one["compile_s"],
                "speedup": float("nan"),
            }
        )
        rows.append(
            {
                "training": kind,
                "variant": f"{k} models sequential",
                "models": k,
                "steps_per_s": k / seq["steady_s"],
                "steady_s": seq["steady_s"],
                "compile_s": seq["compile_s"],
                "speedup": 1.0,
            }
        )
        rows += grid_rows
        for r in rows[-4:]:
            print(r)
    print(
        table(
            rows,
            ["training", "variant", "models", "steps_per_s", "steady_s", "compile_s", "speedup"],
        )
    )
    path = write_results(
        "train",
        {
            "workload": {
                "width": args.width,
                "batch": BATCH,
                "T": T,
                "classes": C,
                "K": k,
                "at_steps": at_steps,
                "optimizer": "adam (paper schedule)",
                "grid_auto_strategy": "map" if jax.default_backend() == "cpu" else "vmap",
            },
            "rows": rows,
        },
        args.out,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
