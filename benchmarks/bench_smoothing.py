"""python benchmarks/bench_smoothing.py [--quick] [--widths 32 128] [--out DIR]

Randomized-smoothing sampler throughput (noisy forward passes per second) for M5 on
1 s of 16 kHz audio, many inputs at once, N in {10^3, 10^4, 10^5} (``--quick``: N
in {10^3, 10^4} with fewer inputs), against the reference algorithm's structure
run in the same process: a per-input Python loop over noise batches (draw a batch
of ``BASE_BATCH`` noises, forward, count, repeat) with the same jitted model.

Also measured in the same run: the dense float32 (and on GPUs bfloat16) matmul
rate and the normal-generation rate, giving the combined ceiling

    ceiling = 1 / (FLOPs_M5 / matmul_rate + T / rng_rate)   forwards / s

(16,000 normals per forward; the shared-bank mode needs T / b per forward); the
sampling modes (shared bank, alone and with the linear-stem shortcut, rbg / unsafe_rbg
generators, bfloat16 forward);
the split over host devices (a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` on CPU, all devices on
accelerators); and, in a subprocess, the peak RSS of N = 10^6 draws on one clip.
Compile time (first call minus steady state) is reported apart from the steady
state (median after ``block_until_ready``). JSON: ``benchmarks/results/``.
"""

# Closures below are called inside the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import (
    ROOT,
    block,
    environment,
    jax,
    jnp,
    m5,
    m5_flops,
    matmul_rate,
    np,
    peak_rss_mb,
    rng_rate,
    table,
    time_call,
    waveforms,
    write_results,
)

from fairrobust import models, smoothing
from fairrobust.engine import parallel

T = 16000
C = 10
SIGMA = 0.1
BASE_BATCH = 500  # noise batch of the per-input baseline (divides every N here)


def baseline_fn(apply_fn, variables, batch):
    """The reference structure: per input, loop over noise batches (draw, forward, count)."""

    @jax.jit
    def draw_forward_count(x1, key):
        noise = jax.random.normal(key, (batch, T), jnp.float32)
        logits = apply_fn(variables, x1[None, :] + SIGMA * noise)
        return jnp.bincount(jnp.argmax(logits, -1), length=C)

    def run(x, n, key):
        counts = np.zeros((x.shape[0], C), np.int64)
        for i in range(x.shape[0]):
            ki = jax.random.fold_in(key, i)
            for j in range(n // batch):
                counts[i] += np.asarray(draw_forward_count(x[i], jax.random.fold_in(ki, j)))
        return counts

    return run


def run_counts(apply_fn, variables, x, n, chunk, **kw):
    return lambda: smoothing.sample_counts(
        apply_fn,
        variables,
        x,
        jax.random.key(0),
        num_samples=n,
        sigma=SIGMA,
        num_classes=C,
        chunk_size=chunk,
        **kw,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--out", default=None)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--devices-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory-check", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--no-subprocess", action="store_true")
    args = ap.parse_args()
    platform = jax.devices()[0].platform
    gpu = platform == "gpu"
    chunk = args.chunk or (64 if gpu else 16)

    if args.memory_check:
        apply_fn, v = m5(args.widths[0])
        x = jnp.asarray(waveforms(1))
        rss0 = peak_rss_mb()
        t0 = time.perf_counter()
        ck = tuple(c for c in (10, 100, 1000, 10_000, 100_000, 1_000_000) if c <= args.memory_check)
        block(run_counts(apply_fn, v, x, args.memory_check, chunk, checkpoints=ck)())
        print(
            json.dumps(
                {
                    "n": args.memory_check,
                    "width": args.widths[0],
                    "seconds": time.perf_counter() - t0,
                    "peak_rss_mb": peak_rss_mb(),
                    "rss_before_mb": rss0,
                }
            )
        )
        return

    if args.devices_only:  # run inside a process whose XLA_FLAGS give several host devices
        rows = []
        for w in args.widths:
            apply_fn, v = m5(w)
            b, n = (8, 1000) if args.quick else (16, 2000)
            x = jnp.asarray(waveforms(b))
            one = time_call(run_counts(apply_fn, v, x, n, chunk), repeats=2)
            mesh = parallel.device_mesh()

            def split_counts():
                return parallel.sample_counts(
                    apply_fn,
                    v,
                    x,
                    jax.random.key(0),
                    num_samples=n,
                    sigma=SIGMA,
                    num_classes=C,
                    chunk_size=chunk,
                    mesh=mesh,
                )

            par = time_call(split_counts, repeats=2)
            same = bool(
                np.array_equal(
                    np.asarray(run_counts(apply_fn, v, x, n, chunk)()),
                    np.asarray(split_counts()),
                )
            )
            for name, t in (("1 device", one), (f"{len(jax.devices())} devices", par)):
                rows.append(
                    {
                        "width": w,
                        "variant": name,
                        "inputs": b,
                        "N": n,
                        "fwd_per_s": b * n / t["steady_s"],
                        "compile_s": t["compile_s"],
                        "steady_s": t["steady_s"],
                        "identical_counts": same,
                    }
                )
        print("JSON" + json.dumps(rows))
        return

    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    mm = matmul_rate("float32")
    mm_bf16 = matmul_rate("bfloat16") if gpu else None
    rngs = {impl: rng_rate(impl) for impl in ("threefry2x32", "rbg", "unsafe_rbg")}
    mm_rate = mm["flops_per_s"]
    rng_tf = rngs["threefry2x32"]["normals_per_s"]
    print(
        f"f32 matmul {mm_rate / 1e9:,.0f} GFLOP/s; normals/s "
        + ", ".join(f"{k} {r['normals_per_s'] / 1e6:,.0f}M" for k, r in rngs.items())
    )

    if gpu:
        plan = {1000: 512, 10_000: 128, 100_000: 16}
    elif args.quick:
        plan = {1000: 16, 10_000: 2}
    else:
        plan = {1000: 32, 10_000: 8, 100_000: 1}
    rows: list[dict] = []
    for w in args.widths:
        apply_fn, v = m5(w)
        flops = m5_flops(w, T, C)

        def ceiling(b_share: int = 1, rng: float = rng_tf, rate: float = mm_rate) -> float:
            return 1.0 / (flops / rate + (T / b_share) / rng)

        for n, b in plan.items():
            x = jnp.asarray(waveforms(b))
            t = time_call(run_counts(apply_fn, v, x, n, chunk), repeats=1 if n * b >= 1e5 else 2)
            rate = b * n / t["steady_s"]
            rows.append(
                {
                    "width": w,
                    "variant": "library (independent)",
                    "N": n,
                    "inputs": b,
                    "fwd_per_s": rate,
                    "compile_s": t["compile_s"],
                    "steady_s": t["steady_s"],
                    "ceiling_fwd_per_s": ceiling(),
                    "frac_ceiling": rate / ceiling(),
                }
            )
            print(rows[-1])
        # Baseline: the per-input loop, measured on a few inputs at N = 10^3 (rate per forward).
        nb, bb = 1000, 2 if not gpu else 8
        xb = waveforms(bb)
        run = baseline_fn(apply_fn, v, BASE_BATCH)
        tb = time_call(lambda: run(xb, nb, jax.random.key(0)), repeats=2)
        base_rate = bb * nb / tb["steady_s"]
        rows.append(
            {
                "width": w,
                "variant": f"baseline per-input loop (batch {BASE_BATCH})",
                "N": nb,
                "inputs": bb,
                "fwd_per_s": base_rate,
                "compile_s": tb["compile_s"],
                "steady_s": tb["steady_s"],
                "ceiling_fwd_per_s": ceiling(),
                "frac_ceiling": base_rate / ceiling(),
            }
        )
        print(rows[-1])
        lib = [r for r in rows if r["width"] == w and r["variant"].startswith("library")]
        for r in lib:
            r["speedup_vs_baseline"] = r["fwd_per_s"] / base_rate
        # Sampling modes at the middle N.
        n_mode, b_mode = (10_000, 128) if gpu else ((1000, 16) if args.quick else (2000, 16))
        x = jnp.asarray(waveforms(b_mode))
        modes = [
            ("library (independent)", {}, ceiling()),
            ("shared_bank", {"mode": "shared_bank"}, ceiling(b_mode)),
            ("prng rbg", {"prng_impl": "rbg"}, ceiling(rng=rngs["rbg"]["normals_per_s"])),
            (
                "prng unsafe_rbg",
                {"prng_impl": "unsafe_rbg"},
                ceiling(rng=rngs["unsafe_rbg"]["normals_per_s"]),
            ),
            (
                "bfloat16 forward",
                {"compute_dtype": "bfloat16"},
                ceiling(rate=mm_bf16["flops_per_s"]) if mm_bf16 else ceiling(),
            ),
            (
                "shared_bank + bf16",
                {"mode": "shared_bank", "compute_dtype": "bfloat16"},
                ceiling(b_mode, rate=mm_bf16["flops_per_s"]) if mm_bf16 else ceiling(b_mode),
            ),
            (
                "shared_bank + linear stem",
                # The model of m5(w) (same config, so the stem matches apply_fn).
                {
                    "mode": "shared_bank",
                    "linear_stem": models.linear_stem_fn(models.make_model("m5", C, width=w)),
                },
                # The shared-bank formula counts the full M5 FLOPs per forward, an upper
                # bound here: conv1 runs once per input and per bank draw, not per pair,
                # so frac_ceiling can exceed 1 for this row.
                ceiling(b_mode),
            ),
        ]
        for name, kw, ceil in modes:
            t = time_call(run_counts(apply_fn, v, x, n_mode, chunk, **kw), repeats=2)
            rate = b_mode * n_mode / t["steady_s"]
            rows.append(
                {
                    "width": w,
                    "variant": f"mode: {name}",
                    "N": n_mode,
                    "inputs": b_mode,
                    "fwd_per_s": rate,
                    "compile_s": t["compile_s"],
                    "steady_s": t["steady_s"],
                    "ceiling_fwd_per_s": ceil,
                    "frac_ceiling": rate / ceil,
                    "speedup_vs_baseline": rate / base_rate,
                }
            )
            print(rows[-1])

    # Several devices: all visible accelerators here, or 2 host devices in a subprocess.
    dev_rows = []
    if not args.no_subprocess or gpu:
        cmd = [sys.executable, __file__, "--devices-only", "--widths", *map(str, args.widths)]
        cmd += ["--chunk", str(chunk)] + (["--quick"] if args.quick else [])
        env_vars = dict(os.environ)
        if not gpu:
            env_vars["XLA_FLAGS"] = (
                env_vars.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
            ).strip()
        if gpu and len(jax.devices()) == 1:
            cmd = None
        if cmd:
            out = subprocess.run(cmd, env=env_vars, capture_output=True, text=True, cwd=ROOT)
            line = [s for s in out.stdout.splitlines() if s.startswith("JSON")]
            dev_rows = json.loads(line[0][4:]) if line else [{"error": out.stderr[-2000:]}]
            print(dev_rows)
    # Memory: N = 10^6 draws on one clip, in a fresh process (peak RSS of that process).
    mem = None
    if not args.no_subprocess:
        n_mem = 100_000 if args.quick else 1_000_000
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-check",
                str(n_mem),
                "--widths",
                str(args.widths[0]),
                "--chunk",
                str(chunk),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        try:
            mem = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            mem = {"error": out.stderr[-2000:]}
        print("memory:", mem)

    cols = [
        "width",
        "variant",
        "N",
        "inputs",
        "fwd_per_s",
        "compile_s",
        "frac_ceiling",
        "speedup_vs_baseline",
    ]
    print(table(rows, cols))
    if dev_rows and "error" not in dev_rows[0]:
        print(
            table(
                dev_rows,
                ["width", "variant", "N", "inputs", "fwd_per_s", "compile_s", "identical_counts"],
            )
        )
    path = write_results(
        "smoothing",
        {
            "workload": {
                "T": T,
                "classes": C,
                "sigma": SIGMA,
                "chunk_size": chunk,
                "plan_N_to_inputs": plan,
                "baseline_batch": BASE_BATCH,
                "quick": args.quick,
            },
            "matmul_f32": mm,
            "matmul_bf16": mm_bf16,
            "rng": rngs,
            "m5_flops": {w: m5_flops(w, T, C) for w in args.widths},
            "rows": rows,
            "devices": dev_rows,
            "memory": mem,
            "peak_rss_mb": peak_rss_mb(),
        },
        args.out,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
