"""Simulated coverage of the report's intervals: parity gaps and paired differences.

Not a timing benchmark: it checks that the interval methods of
``fairrobust.metrics`` mean what they say. Data are simulated with a known
population: ``k`` groups whose true rates are ``base + gap * linspace(0, 1, k)``
(so the true parity gap is ``gap``); with ``speakers`` each group has that many
speakers whose own rates are Beta-distributed around the group rate (mean
exact, concentration 20) and ``clips`` clips each, and the bootstrap is
clustered by speaker, as in the studies. For each setting it reports, over
``sims`` simulated data sets:

* ``coverage``: the fraction of parity-gap intervals (``bootstrap_ci`` with
  ``GroupRateStat``: the simultaneous-band interval of ``metrics.gap_interval``)
  that contain the true gap;
* ``percentile_coverage``: the same for the plain percentile interval of the
  max-min replicates (the method used before; it never covers a gap of 0);
* ``outside``: estimates outside their own interval (must be 0);
* for paired differences (two correlated "models" on the same clips):
  coverage of ``metrics.paired_difference`` and the rejection rate of
  ``p < 1 - level`` when the true difference is 0.

Usage::

    python benchmarks/coverage_intervals.py [--quick] [--out DIR]

It writes ``coverage_intervals_<platform>.json`` (commit, settings, results).
``tests/test_comparisons.py`` imports :func:`gap_coverage` and
:func:`difference_coverage` and runs a small grid with a stated tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fairrobust import metrics  # noqa: E402


def _design(k: int, speakers: int, clips: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group of each clip, speaker of each clip and masks ``[k, n]``."""
    group = np.repeat(np.arange(k), speakers * clips)
    speaker = np.repeat(np.arange(k * speakers), clips)
    return group, speaker, np.stack([group == j for j in range(k)])


def _draw(rng: np.random.Generator, rates: np.ndarray, group, speaker, sims: int, clustered: bool):
    """0/1 values ``[sims, n]`` with true group rates ``rates``."""
    if clustered:
        conc = 20.0
        r = rates[group[np.unique(speaker, return_index=True)[1]]]  # rate of each speaker's group
        p_sp = rng.beta(r * conc, (1 - r) * conc, size=(sims, r.size))
        p = p_sp[:, speaker]
    else:
        p = np.broadcast_to(rates[group], (sims, group.size))
    return (rng.random(p.shape) < p).astype(np.float32)


def gap_coverage(
    *,
    k: int,
    gap: float,
    speakers: int,
    clips: int,
    clustered: bool,
    sims: int = 200,
    batch: int = 50,
    resamples: int = 400,
    level: float = 0.95,
    base: float = 0.6,
    seed: int = 0,
) -> dict[str, Any]:
    """Coverage of the parity-gap interval (and of the percentile one) for one setting.

    ``clustered=False`` draws every clip independently (``speakers`` groups of
    ``clips`` clips only set the group size) and bootstraps by clip.
    """
    group, speaker, masks = _design(k, speakers, clips)
    rates = base + gap * np.linspace(0.0, 1.0, k)
    rng = np.random.default_rng(seed)
    hits = pct_hits = outside = zero_low = done = 0
    for b in range(0, sims, batch):
        s = min(batch, sims - b)
        values = _draw(rng, rates, group, speaker, s, clustered)
        res = metrics.bootstrap_ci(
            metrics.GroupRateStat(),
            values,
            masks,
            key=jax.random.key(seed * 1000 + b),
            num_resamples=resamples,
            level=level,
            speakers=speaker if clustered else None,
            return_samples=True,
        )
        est = np.asarray(res.estimate["parity"], np.float64)
        lo = np.asarray(res.lower["parity"], np.float64)
        hi = np.asarray(res.upper["parity"], np.float64)
        rep = np.asarray(res.samples["parity"], np.float64)
        plo, phi = np.quantile(rep, [(1 - level) / 2, (1 + level) / 2], axis=0)
        tol = 1e-6
        hits += int(np.sum((lo - tol <= gap) & (gap <= hi + tol)))
        pct_hits += int(np.sum((plo - tol <= gap) & (gap <= phi + tol)))
        outside += int(np.sum((est < lo - tol) | (est > hi + tol)))
        zero_low += int(np.sum(lo <= tol))
        done += s
    return {
        "k": k,
        "gap": gap,
        "speakers_per_group": speakers if clustered else None,
        "clips_per_group": speakers * clips,
        "clustered": clustered,
        "sims": done,
        "resamples": resamples,
        "level": level,
        "coverage": hits / done,
        "percentile_coverage": pct_hits / done,
        "outside": outside,
        "lower_bound_zero": zero_low / done,
    }


def difference_coverage(
    *,
    diff: float,
    n: int,
    sims: int = 200,
    batch: int = 50,
    resamples: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Coverage and type-I error of ``metrics.paired_difference`` for two correlated models.

    Model A is correct with probability 0.7; model B copies A's outcome with
    probability 0.8 and is otherwise correct with probability ``0.7 - 5 * diff``,
    so ``E[A] - E[B] = diff``. Both are evaluated on the same clips and the same
    resamples (one ``bootstrap_ci`` call over the two models).
    """
    rng = np.random.default_rng(seed)
    masks = np.ones((1, n), bool)
    hits = rejects = outside = done = 0
    for b in range(0, sims, batch):
        s = min(batch, sims - b)
        a = rng.random((s, n)) < 0.7
        own = rng.random((s, n)) < 0.7 - 5 * diff
        copy = rng.random((s, n)) < 0.8
        bb = np.where(copy, a, own)
        values = np.stack([a, bb], axis=1).astype(np.float32)  # [s, 2, n]
        res = metrics.bootstrap_ci(
            metrics.GroupRateStat(),
            values,
            masks,
            key=jax.random.key(seed * 1000 + b),
            num_resamples=resamples,
            level=level,
            return_samples=True,
        )
        est, rep = res.estimate["rates"][..., 0], res.samples["rates"][..., 0]  # [s, 2]
        d = metrics.paired_difference(est[:, 0], rep[:, :, 0], est[:, 1], rep[:, :, 1], level=level)
        hits += int(np.sum((d.low <= diff) & (diff <= d.high)))
        rejects += int(np.sum(d.p_value < 1 - level))
        outside += int(np.sum((d.difference < d.low) | (d.difference > d.high)))
        done += s
    return {
        "diff": diff,
        "n": n,
        "sims": done,
        "resamples": resamples,
        "level": level,
        "coverage": hits / done,
        "rejection_rate": rejects / done,
        "outside": outside,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="200 simulations per setting")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    sims = 200 if args.quick else 1000
    gaps = []
    for clustered, speakers, clips in ((False, 1, 60), (True, 8, 10), (True, 20, 5)):
        for k in (2, 4):
            for gap in (0.0, 0.02, 0.05, 0.15):
                gaps.append(
                    gap_coverage(
                        k=k, gap=gap, speakers=speakers, clips=clips, clustered=clustered, sims=sims
                    )
                )
    diffs = [difference_coverage(diff=d, n=n, sims=sims) for n in (100, 400) for d in (0.0, 0.05)]
    print("| k | gap | clusters | clips/group | coverage | percentile coverage | lower = 0 |")
    print("|---|---|---|---|---|---|---|")
    for r in gaps:
        cl = f"{r['speakers_per_group']} speakers" if r["clustered"] else "clips"
        print(
            f"| {r['k']} | {r['gap']} | {cl} | {r['clips_per_group']} | {r['coverage']:.3f} | "
            f"{r['percentile_coverage']:.3f} | {r['lower_bound_zero']:.3f} |"
        )
    print("\n| difference | n | coverage | rejection rate (p < 0.05) |\n|---|---|---|---|")
    for r in diffs:
        print(f"| {r['diff']} | {r['n']} | {r['coverage']:.3f} | {r['rejection_rate']:.3f} |")
    bad = sum(r["outside"] for r in gaps + diffs)
    print(f"\nestimates outside their own interval: {bad}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = {
        "commit": _commit(),
        "platform": jax.default_backend(),
        "quick": args.quick,
        "gap": gaps,
        "difference": diffs,
    }
    path = out / f"coverage_intervals_{jax.default_backend()}.json"
    path.write_text(json.dumps(rec, indent=2))
    print(f"wrote {path}")
    return 0 if bad == 0 else 1


def _commit() -> dict[str, Any]:
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "sha": git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain")),
    }


if __name__ == "__main__":
    raise SystemExit(main())
