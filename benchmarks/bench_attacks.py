"""python benchmarks/bench_attacks.py [--quick] [--widths 32 128] [--out DIR]

Epsilon sweep of L-inf PGD (100 steps of eps / 5, batch 64, the six epsilons of the
AISec'23 paper) on M5 over synthetic 1 s / 16 kHz waveforms: ONE vmapped call over
all epsilons (``attacks.robust_correct``) against a loop of one ``attacks.pgd`` call
per epsilon (plus its forward pass), both jitted, in the same process. Reports
examples x steps per second, compile time apart from the steady state, and the
fraction of the compute ceiling: a PGD step costs about 2 forward passes of FLOPs
(forward plus the input-gradient backward pass; no weight gradients), so
``ceiling = matmul_rate / (2 * FLOPs_M5)`` example-steps / s. ``--quick`` uses 20
steps (CPU smoke run); the throughput per step is what is compared.
"""

# Closures below are called inside the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse

from _common import (
    block,
    environment,
    jax,
    jnp,
    m5,
    m5_flops,
    matmul_rate,
    np,
    table,
    time_call,
    waveforms,
    write_results,
)

from fairrobust import attacks

EPSILONS = (0.0001, 0.001, 0.01, 0.1, 0.2, 0.3)
T, C, BATCH = 16000, 10, 64


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    steps = args.steps or (20 if args.quick else 100)
    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    mm = matmul_rate("float32")
    rows = []
    x = waveforms(BATCH)
    y = np.arange(BATCH, dtype=np.int32) % C
    eps = np.asarray(EPSILONS, np.float32)
    key = jax.random.key(0)
    for w in args.widths:
        apply_fn, v = m5(w, C)
        xs, ys = jnp.asarray(x), jnp.asarray(y)
        ceiling = mm["flops_per_s"] / (2 * m5_flops(w, T, C))
        work = len(EPSILONS) * BATCH * steps

        def vmapped():
            return attacks.robust_correct(
                apply_fn, v, x, y, eps, key, num_steps=steps, batch_size=BATCH
            )

        fwd = jax.jit(lambda xa: jnp.argmax(apply_fn(v, xa), -1) == ys)

        def loop():
            out = []
            for e in EPSILONS:
                xa = attacks.pgd(apply_fn, v, xs, ys, e, key, num_steps=steps)
                out.append(fwd(xa))
            return block(out)

        tv = time_call(vmapped, repeats=2)
        tl = time_call(loop, repeats=2)
        same = bool(np.array_equal(vmapped(), np.stack([np.asarray(a) for a in loop()])))
        for name, t in (("vmapped (one call)", tv), ("loop over eps", tl)):
            rate = work / t["steady_s"]
            rows.append(
                {
                    "width": w,
                    "variant": name,
                    "steps": steps,
                    "batch": BATCH,
                    "eps": len(EPSILONS),
                    "ex_steps_per_s": rate,
                    "steady_s": t["steady_s"],
                    "compile_s": t["compile_s"],
                    "frac_ceiling": rate / ceiling,
                    "speedup_vs_loop": tl["steady_s"] / t["steady_s"],
                    "same_result": same,
                }
            )
            print(rows[-1])
    cols = [
        "width",
        "variant",
        "steps",
        "ex_steps_per_s",
        "steady_s",
        "compile_s",
        "frac_ceiling",
        "speedup_vs_loop",
        "same_result",
    ]
    print(table(rows, cols))
    path = write_results(
        "attacks",
        {
            "workload": {
                "epsilons": EPSILONS,
                "steps": steps,
                "batch": BATCH,
                "T": T,
                "classes": C,
                "norm": "linf",
                "rel_step": 0.2,
            },
            "matmul_f32": mm,
            "m5_flops": {w: m5_flops(w, T, C) for w in args.widths},
            "rows": rows,
        },
        args.out,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
