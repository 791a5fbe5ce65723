"""python benchmarks/bench_metrics.py [--quick] [--out DIR]

Metric sweeps on 10,000 examples against plain Python / NumPy loops in the same
process:

* FPR vs alpha: ``metrics.rejection_curves`` for 1,000 thresholds x all groups x
  four N (p-values ``[4, n]``), vs a loop over N, thresholds and groups computing
  ``mean(p[mask] > alpha)`` with NumPy;
* AUC_acc over 6 epsilons (+ clean) x groups: ``metrics.auc_acc`` vs a loop over
  groups (NumPy means per epsilon, then ``np.trapezoid``), for one model and for
  the 40 models of the paper grid at once (leading axis);
* bootstrap: ``metrics.bootstrap_ci`` (1,000 resamples, vmapped) of the AUC_FPR per
  group vs a loop of 1,000 NumPy resamples (``rng.choice`` within each group,
  the AUC_FPR of each resample).

Groups: 12 (e.g. gender x 6 age bands). ``--quick`` uses 100 bootstrap resamples
in the loop baseline (its time is scaled to 1,000). Compile time is reported apart.
"""

# Closures below are called inside the loop iteration that defines them.

from __future__ import annotations

import argparse

from _common import environment, jax, jnp, np, table, time_call, write_results

from fairrobust import metrics

N_EX, G, A = 10_000, 12, 1000
EPS = np.asarray([0.0, 0.0001, 0.001, 0.01, 0.1, 0.2, 0.3], np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    rng = np.random.default_rng(0)
    group_of = rng.integers(0, G, N_EX)
    masks = np.stack([group_of == g for g in range(G)])  # [G, n]
    pvals = rng.beta(0.3, 2.0, (4, N_EX)).astype(np.float32)  # four N
    thresholds = np.asarray(metrics.alpha_grid(0.001, 1.0, 0.001))  # 1,000 alphas
    correct = rng.random((len(EPS), N_EX)) < np.linspace(0.9, 0.2, len(EPS))[:, None]
    rows = []

    # --- FPR vs alpha
    jm = jnp.asarray(masks)
    lib = time_call(lambda: metrics.rejection_curves(pvals, thresholds, jm), repeats=20)

    def loop_fpr():
        out = np.zeros((4, A, G))
        for k in range(4):
            for i, t in enumerate(thresholds):
                for g in range(G):
                    out[k, i, g] = np.mean(pvals[k][masks[g]] > t)
        return out

    ref = time_call(loop_fpr, repeats=1)
    agree = float(
        np.max(np.abs(np.asarray(metrics.rejection_curves(pvals, thresholds, jm)) - loop_fpr()))
    )
    rows += _pair("FPR vs alpha (1000 thr x 12 groups x 4 N)", lib, ref, agree)

    # --- AUC_acc
    libacc = time_call(lambda: metrics.auc_acc(correct, EPS, jm), repeats=50)

    def loop_auc():
        out = np.zeros(G)
        for g in range(G):
            acc = [np.mean(correct[e][masks[g]]) for e in range(len(EPS))]
            out[g] = np.trapezoid(acc, EPS)
        return out

    refacc = time_call(loop_auc, repeats=20)
    agree = float(np.max(np.abs(np.asarray(metrics.auc_acc(correct, EPS, jm)) - loop_auc())))
    rows += _pair("AUC_acc (7 eps x 12 groups)", libacc, refacc, agree)

    # --- AUC_acc for a whole study grid (40 models, the paper preset) in one call
    correct40 = rng.random((40, len(EPS), N_EX)) < np.linspace(0.9, 0.2, len(EPS))[None, :, None]
    lib40 = time_call(lambda: metrics.auc_acc(correct40, EPS, jm), repeats=20)

    def loop_auc40():
        out = np.zeros((40, G))
        for k in range(40):
            for g in range(G):
                acc = [np.mean(correct40[k, e][masks[g]]) for e in range(len(EPS))]
                out[k, g] = np.trapezoid(acc, EPS)
        return out

    ref40 = time_call(loop_auc40, repeats=2)
    agree = float(np.max(np.abs(np.asarray(metrics.auc_acc(correct40, EPS, jm)) - loop_auc40())))
    rows += _pair("AUC_acc (40 models x 7 eps x 12 groups)", lib40, ref40, agree)

    # --- bootstrap of AUC_FPR per group (one N)
    stat = metrics.AucFprStat(thresholds=tuple(map(float, thresholds)))
    p1 = pvals[-1]
    libbs = time_call(
        lambda: metrics.bootstrap_ci(stat, p1, jm, key=jax.random.key(0), num_resamples=1000),
        repeats=2,
    )
    n_loop = 100 if args.quick else 1000
    members = [np.flatnonzero(m) for m in masks]

    def loop_boot():
        r = np.random.default_rng(1)
        out = np.zeros((n_loop, G))
        for b in range(n_loop):
            for g in range(G):
                s = p1[r.choice(members[g], members[g].size)]
                fpr = (s[None, :] > thresholds[:, None]).mean(1)
                out[b, g] = np.trapezoid(fpr, thresholds)
        return np.quantile(out, [0.025, 0.975], axis=0)

    refbs = time_call(loop_boot, repeats=1)
    scale = 1000 / n_loop
    refbs = {k: (v * scale if k.endswith("_s") else v) for k, v in refbs.items()}
    rows += _pair("bootstrap AUC_FPR, 1000 resamples", libbs, refbs, float("nan"))
    cols = ["metric", "variant", "steady_s", "compile_s", "speedup", "max_abs_diff"]
    print(table(rows, cols))
    path = write_results(
        "metrics",
        {
            "workload": {
                "examples": N_EX,
                "groups": G,
                "thresholds": A,
                "N_values": 4,
                "epsilons": EPS.tolist(),
                "resamples": 1000,
                "loop_resamples_timed": n_loop,
            },
            "rows": rows,
        },
        args.out,
    )
    print("wrote", path)


def _pair(name, lib, ref, agree):
    sp = ref["steady_s"] / lib["steady_s"]
    return [
        {
            "metric": name,
            "variant": "library (jit, batched)",
            "steady_s": lib["steady_s"],
            "compile_s": lib["compile_s"],
            "speedup": sp,
            "max_abs_diff": agree,
        },
        {
            "metric": name,
            "variant": "Python/NumPy loop",
            "steady_s": ref["steady_s"],
            "compile_s": 0.0,
            "speedup": 1.0,
            "max_abs_diff": agree,
        },
    ]


if __name__ == "__main__":
    main()
