"""Interval methods of fairrobust.metrics.comparisons: simulated coverage and references.

The coverage grid here is a small version of ``benchmarks/coverage_intervals.py``
(whose full table is in ``benchmarks/README.md``). Tolerance: 200 simulated data
sets per setting, so a true coverage of 0.95 gives an observed one below 0.90 with
probability < 0.2 %; the tests require >= 0.90.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from fairrobust import metrics

_SPEC = importlib.util.spec_from_file_location(
    "coverage_intervals", Path(__file__).parent.parent / "benchmarks" / "coverage_intervals.py"
)
assert _SPEC is not None and _SPEC.loader is not None
coverage = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(coverage)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("gap", [0.0, 0.05])
@pytest.mark.parametrize("clustered", [False, True])
def test_parity_gap_interval_covers_the_true_gap(k, gap, clustered):
    r = coverage.gap_coverage(
        k=k,
        gap=gap,
        speakers=20 if clustered else 1,
        clips=5 if clustered else 60,
        clustered=clustered,
        sims=200,
        resamples=300,
        seed=k * 10 + int(clustered),
    )
    assert r["outside"] == 0
    assert r["coverage"] >= 0.90, r
    if gap == 0.0 and k == 4:
        # The percentile interval of the max-min replicates never covers a gap of 0:
        # this test fails for the method it replaces.
        assert r["percentile_coverage"] < 0.5, r


@pytest.mark.parametrize("diff", [0.0, 0.05])
def test_paired_difference_coverage_and_type_one_error(diff):
    r = coverage.difference_coverage(diff=diff, n=200, sims=200, resamples=300, seed=3)
    assert r["outside"] == 0
    assert r["coverage"] >= 0.90, r
    if diff == 0.0:
        assert r["rejection_rate"] <= 0.09, r  # nominal 0.05


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 17):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(metrics.holm(p), multipletests(p, method="holm")[1])
    p = np.array([0.01, np.nan, 0.04, 0.03])
    ref = multipletests(p[[0, 2, 3]], method="holm")[1]
    out = metrics.holm(p)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], ref)


def test_gap_interval_equals_the_bootstrap_ci_gap_and_contains_its_estimate():
    rng = np.random.default_rng(1)
    n = 300
    g = rng.integers(0, 3, n)
    masks = np.stack([g == j for j in range(3)])
    vals = (rng.random(n) < np.array([0.5, 0.6, 0.9])[g]).astype(np.float32)
    res = metrics.bootstrap_ci(
        metrics.GroupRateStat(),
        vals,
        masks,
        key=jax.random.key(0),
        num_resamples=400,
        return_samples=True,
    )
    gap, lo, hi = metrics.gap_interval(res.estimate["rates"], res.samples["rates"])
    np.testing.assert_allclose(gap, res.estimate["parity"], rtol=1e-6)
    np.testing.assert_allclose([lo, hi], [res.lower["parity"], res.upper["parity"]], rtol=1e-6)
    assert lo <= gap <= hi and lo > 0  # a 0.4 gap with ~100 clips per group is clear
    # pairwise: the diagonal is NaN; the band is symmetric around each difference
    p = metrics.pairwise_intervals(res.estimate["rates"], res.samples["rates"])
    d = np.asarray(p.difference)
    assert np.isnan(np.diag(d)).all()
    np.testing.assert_allclose(d, -d.T)
    np.testing.assert_allclose(np.asarray(p.high) - d, d - np.asarray(p.low), atol=1e-6)


def test_groups_with_too_few_speakers_get_no_interval():
    n = 40
    masks = np.stack([np.arange(n) < 20, np.arange(n) >= 20])
    speakers = np.where(np.arange(n) < 20, "solo", np.array([f"s{i % 5}" for i in range(n)]))
    vals = (np.arange(n) % 3 == 0).astype(np.float32)
    res = metrics.bootstrap_ci(
        metrics.GroupRateStat(), vals, masks, key=jax.random.key(0), speakers=speakers
    )
    assert list(res.clusters_per_group) == [1, 5]
    lo, hi = np.asarray(res.lower["rates"]), np.asarray(res.upper["rates"])
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and lo[1] <= hi[1]
    # the gap rests on the one-speaker group: no interval
    assert np.isnan(res.lower["parity"]) and np.isnan(res.upper["parity"])
    # ... unless that group is not valid for the statistic (then < 2 groups: NaN estimate)
    res2 = metrics.bootstrap_ci(
        metrics.GroupRateStat(valid=(False, True)),
        vals,
        masks,
        key=jax.random.key(0),
        speakers=speakers,
    )
    assert np.isnan(res2.estimate["parity"])
    with pytest.raises(ValueError, match="min_clusters"):
        metrics.bootstrap_ci(
            metrics.GroupRateStat(), vals, masks, key=jax.random.key(0), min_clusters=0
        )


def test_percentile_intervals_contain_their_estimate():
    # A skewed statistic whose percentile interval misses the estimate: the square of
    # a near-zero mean. Widened intervals always contain it.
    rng = np.random.default_rng(2)
    vals = rng.normal(0.0, 1.0, 50).astype(np.float32)
    vals -= vals.mean() - 0.01

    def sq_mean(v, masks, w):
        m = (v * w).sum() / w.sum()
        return {"sq": m * m}

    res = metrics.bootstrap_ci(
        sq_mean, vals, np.ones((1, 50), bool), key=jax.random.key(0), num_resamples=500
    )
    assert res.lower["sq"] <= res.estimate["sq"] <= res.upper["sq"]


def test_clusters_per_group_matches_a_loop():
    rng = np.random.default_rng(3)
    sp = rng.integers(0, 7, 50).astype(str)
    masks = rng.random((4, 50)) < 0.4
    ref = [len(set(sp[m])) for m in masks]
    assert list(metrics.clusters_per_group(masks, sp)) == ref
    assert list(metrics.clusters_per_group(masks)) == list(masks.sum(1))


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="level"):
        metrics.gap_interval(np.zeros(2), np.zeros((5, 2)), level=1.5)
    with pytest.raises(ValueError, match="samples"):
        metrics.gap_interval(np.zeros(2), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="a, b"):
        metrics.paired_difference(np.zeros(2), np.zeros((5, 2)), np.zeros(3), np.zeros((5, 3)))
