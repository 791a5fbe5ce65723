"""RS answerability: the smallest alpha RS can answer per N (closed form ``2 * 0.5^N``)
and AUC_FPR / FPR Parity over the threshold range every method can answer (checked
against a plain-NumPy computation)."""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust import smoothing
from fairrobust.groups import all_groups
from fairrobust.studies import rejection_answerability as ra
from fairrobust.studies import rejection_tables as rjt

GRID = np.round(np.arange(1, 1001) * 1e-3, 10)  # the paper's grid [0.001, 1]
NS = (5, 10, 12)


def _analysis(seed=0, n=48):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, np.array(NS)[:, None, None] + 1, size=(len(NS), n, 1))
    # PREDICT p-values of real top-two splits of N draws (so p >= 2 * 0.5^N).
    pvalues = smoothing.binom_test_pvalue(counts[..., 0], np.array(NS)[:, None] - counts[..., 0])
    nr_stat = rng.uniform(0, 1, size=n)
    attrs = {"gender": np.array(["f", "m", "x"])[np.arange(n) % 3]}
    groups = all_groups(attrs, min_size=1)
    return rjt.analyze(pvalues, nr_stat, GRID, groups, num_samples=NS), pvalues, nr_stat, groups


def test_smallest_answerable_alpha_closed_form():
    analysis, pvalues, _, _ = _analysis()
    floors, lo, hi = ra.answerable_range(analysis)
    np.testing.assert_array_equal(floors, [2 * 0.5**5, 2 * 0.5**10, 2 * 0.5**12])
    assert floors[1] == pytest.approx(0.002, abs=5e-5)
    assert lo == pytest.approx(0.063) and hi == pytest.approx(1.0)  # first grid point >= 1/16
    assert np.all(pvalues >= floors[:, None] * (1 - 1e-12))  # no p-value below its floor
    summary = ra.answerable_summary(analysis)
    assert summary["smallest_alpha"] == {"5": 0.0625, "10": 2 * 0.5**10, "12": 2 * 0.5**12}
    assert summary["unanswerable_n"] == [5, 10]  # above the grid's first threshold 0.001


def test_common_range_auc_fpr_matches_numpy():
    analysis, pvalues, nr_stat, groups = _analysis(seed=1)
    _, lo, _ = ra.answerable_range(analysis)
    t = GRID[GRID >= lo - 1e-12]
    rows = ra.common_range_table(analysis)
    masks = np.asarray(groups["gender"].masks)
    names = list(groups["gender"].names)

    def plain(reject):  # reject [a, n] bool -> per group raw trapezoid integral
        rates = [reject[:, m].mean(1) for m in masks]
        return np.array([np.trapezoid(r, t) for r in rates])

    expect = {}
    for i, label in enumerate(analysis.methods):
        rej = pvalues[i][None, :] > t[:, None] if i < len(NS) else nr_stat[None, :] < t[:, None]
        per_group = plain(rej)
        expect[(label, "all")] = np.trapezoid(rej.mean(1), t)
        for j, g in enumerate(names):
            expect[(label, g)] = per_group[j]
        expect[(label, "(parity)")] = per_group.max() - per_group.min()
    got = {(r["label"], r["group"]): r["auc_fpr_common"] for r in rows}
    assert set(got) == set(expect)
    for k, v in expect.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k  # curves are float32 rates
    # The full-range column keeps the study's values; RS at N = 5 loses its
    # unanswerable stretch [0.001, 0.0625) where FPR is 1 by construction.
    full = {(r["label"], r["group"]): r["auc_fpr"] for r in rows}
    assert full[("RS N=5", "all")] == pytest.approx(float(analysis.overall_auc[0]))
    # FPR = 1 on [0.001, 0.062]; the trapezoid to the first common point 0.063 adds < 0.001.
    assert 0.061 <= full[("RS N=5", "all")] - got[("RS N=5", "all")] <= 0.062 + 1e-6
    nr = next(r for r in rows if r["label"] == "NR")
    assert nr["smallest_answerable_alpha"] == GRID[0] and nr["num_samples"] is None


def test_no_common_range_gives_empty_cells():
    analysis, *_ = _analysis()
    short = rjt.RejectionAnalysis(
        **{**analysis.__dict__, "thresholds": GRID[:50]}  # [0.001, 0.05]: N = 5 never answers
    )
    _, lo, hi = ra.answerable_range(short)
    assert np.isnan(lo) and np.isnan(hi)
    assert all(r["auc_fpr_common"] is None for r in ra.common_range_table(short))
