"""python benchmarks/bench_adaptive.py [--clips 64] [--n 2000] [--epochs 2] [--once] [--out DIR]

Adaptive CERTIFY (``smoothing.adaptive_certify``: estimation draws in rounds at the
default look schedule, alpha / L per look, an input stops once no later look could
certify it at a larger radius of the grid ``RADII``, or once it cannot be certified)
against fixed-N CERTIFY (``smoothing.certify``, the baseline) in the same process, at
the same alpha, sigma, n0 and N, on the first ``--clips`` test clips of the bundled data
(``fairrobust.data.load_bundled()``) with an M5 (width 32) trained for 2 epochs
here. Reported: total draws (selection + estimation), wall time (first call with
compilation, then one steady call after ``block_until_ready``), and decision
agreement: same prediction, and the same "certified at radius r" verdict at every r
of the grid, plus certified accuracy of both. ``--futility`` also runs the
futility-only variant (``target_radius=None``); ``--once`` times a single call of
each (compilation included: a steady-state time is then not measured).
JSON: ``benchmarks/results/``.
"""

# Closures below are called inside the loop iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import time

from _common import environment, jax, np, table, time_call, write_results

from fairrobust import models, smoothing, train
from fairrobust.data import load_bundled

SIGMA = 0.1
ALPHA = 0.001
RADII = (0.0, 0.05, 0.1, 0.15, 0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--futility", action="store_true")
    ap.add_argument("--once", action="store_true", help="one timed call each (with compile)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    ds = load_bundled()
    t0 = time.perf_counter()
    cfg = train.TrainConfig(width=32, epochs=args.epochs, seed=0)
    res = train.train(ds, cfg, progress=False)
    train_s = time.perf_counter() - t0
    print(f"trained {args.epochs} epochs in {train_s:.1f} s", flush=True)
    apply_fn, variables = models.logits_fn(res.model), res.variables
    test = np.flatnonzero(ds.splits == "test")[: args.clips]
    x = ds.waveforms[test].astype(np.float32)
    y = ds.labels[test]
    key = jax.random.key(0)
    kw = dict(n0=args.n0, n=args.n, alpha=ALPHA, sigma=SIGMA, num_classes=ds.num_classes)
    runs = {
        "fixed-N certify": lambda: smoothing.certify(apply_fn, variables, x, key, **kw),
        f"adaptive (target r={RADII[-1]:g})": lambda: smoothing.adaptive_certify(
            apply_fn, variables, x, key, target_radius=RADII, **kw
        ),
    }
    if args.futility:
        runs["adaptive (futility only)"] = lambda: smoothing.adaptive_certify(
            apply_fn, variables, x, key, **kw
        )
    b = len(test)
    results, rows = {}, []
    for name, fn in runs.items():
        out: list = []
        if args.once:  # one call: wall time includes compilation
            t0 = time.perf_counter()
            out.append(fn())
            wall = time.perf_counter() - t0
            t = {"first_s": wall, "steady_s": wall, "compile_s": float("nan")}
        else:
            t = time_call(lambda: out.append(fn()) or out[-1], repeats=1)  # first + 1 steady
        r = results[name] = out[-1]
        print(f"{name}: {t['first_s']:.1f} s", flush=True)
        est = np.asarray(getattr(r, "draws", np.full(b, args.n)))
        rows.append(
            {
                "variant": name,
                "draws": int(b * args.n0 + est.sum()),
                "est_draws_mean": float(est.mean()),
                "first_s": t["first_s"],
                "steady_s": t["steady_s"],
                "compile_s": t["compile_s"],
            }
        )
    base = results["fixed-N certify"]
    for row in rows:
        r = results[row["variant"]]
        row["draws_saved"] = 1.0 - row["draws"] / rows[0]["draws"]
        row["speedup"] = rows[0]["steady_s"] / row["steady_s"]
        row["same_pred"] = float(np.mean(r.pred == base.pred))
        for rad in RADII:
            cert = (r.pred >= 0) & (r.radius >= rad)
            ref = (base.pred >= 0) & (base.radius >= rad)
            row[f"agree@{rad:g}"] = float(np.mean(cert == ref))
        acc = smoothing.certified_accuracy(r.pred, r.radius, y, RADII)[:, 0]
        row["cert_acc"] = [round(float(a), 4) for a in acc]
        print(row)
    cols = ["variant", "draws", "draws_saved", "steady_s", "compile_s", "speedup", "same_pred"]
    cols += [f"agree@{rad:g}" for rad in RADII]
    print(table(rows, cols))
    print("certified accuracy at", RADII, {r["variant"]: r["cert_acc"] for r in rows})
    path = write_results(
        "adaptive",
        {
            "workload": {
                "data": "bundled (test split)",
                "clips": b,
                "n0": args.n0,
                "n": args.n,
                "alpha": ALPHA,
                "sigma": SIGMA,
                "radii": RADII,
                "looks": list(results[rows[1]["variant"]].looks),
                "model": f"M5 width 32, {args.epochs} epochs (train {train_s:.1f} s)",
                "baseline": "smoothing.certify (fixed N), same keys",
            },
            "rows": rows,
        },
        args.out,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
