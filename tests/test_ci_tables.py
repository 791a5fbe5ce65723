"""Bootstrap intervals on every group rate the report shows (issue 5, "Statistical honesty").

Covers the tables that used to carry point estimates only: accuracy-vs-epsilon
curves (robustness ``group_curves``), FPR-vs-threshold curves, certified accuracy
per group vs radius, and the rejection study's per-group accuracy table; plus the
figure bands drawn from them.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from fairrobust import metrics, smoothing
from fairrobust.figures import rejection as rej_figs
from fairrobust.figures import robustness as rob_figs
from fairrobust.groups import all_groups
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection_accuracy as rja
from fairrobust.studies import rejection_tables as rjt
from fairrobust.studies import robustness_tables as rt

GRID = np.round(np.arange(1, 101) * 0.01, 10)


def _attrs(n):
    return {
        "gender": np.array(["f", "m"])[np.arange(n) % 2],
        "age": np.array(["young", "old", "mid"])[(np.arange(n) // 5) % 3],
    }


def _within(est, lo, hi, tol=1e-6):
    est, lo, hi = (np.asarray(a, float) for a in (est, lo, hi))
    ok = np.isfinite(est)
    assert np.all(np.isfinite(lo[ok])) and np.all(np.isfinite(hi[ok]))
    assert np.all(lo[ok] <= est[ok] + tol) and np.all(est[ok] <= hi[ok] + tol)


# ----------------------------------------------------------------------------- helper


def test_group_rate_intervals_hand_values_and_oracle():
    n = 40
    groups = all_groups(_attrs(n), min_size=1)
    ones = np.ones((2, n))
    lo, hi = rja.group_rate_intervals(ones, groups, key=jax.random.key(0), num_resamples=30)
    g_all = 1 + sum(g.num_groups for g in groups.values())
    assert lo.shape == hi.shape == (2, g_all)
    np.testing.assert_array_equal(lo, 1.0)  # a constant rate has a zero-width interval
    np.testing.assert_array_equal(hi, 1.0)
    rng = np.random.default_rng(0)
    vals = (rng.uniform(size=(3, n)) < 0.6).astype(np.float32)
    spk = np.array([f"s{i // 2}" for i in range(n)])
    lo, hi = rja.group_rate_intervals(
        vals, groups, key=jax.random.key(1), num_resamples=50, speakers=spk
    )
    # Oracle: the same bootstrap called directly, once for "all" and once per attribute
    # (each stratified by its own groups, not by the joint cells of every attribute).
    parts = [np.ones((1, n), bool)] + [np.asarray(g.masks) for g in groups.values()]
    ref_lo, ref_hi = [], []
    for m in parts:
        res = metrics.bootstrap_ci(
            metrics.GroupRateStat(), vals, m, key=jax.random.key(1), num_resamples=50,
            speakers=spk,
        )  # fmt: skip
        ref_lo.append(np.asarray(res.lower["rates"]))
        ref_hi.append(np.asarray(res.upper["rates"]))
    np.testing.assert_allclose(lo, np.concatenate(ref_lo, -1), rtol=1e-6)
    np.testing.assert_allclose(hi, np.concatenate(ref_hi, -1), rtol=1e-6)
    masks = np.concatenate(parts)
    est = (vals @ masks.T.astype(np.float32)) / masks.sum(1)
    _within(est, lo, hi)


def test_intervals_resample_speakers_within_each_attribute_not_the_joint_cells():
    """Reviewer's case: 6 speakers, 3 per gender, each with its own age. Stratifying by
    the joint (gender, age) cells would leave every speaker alone in its stratum and give
    zero-width intervals; per attribute, the speakers of a gender are resampled."""
    n = 60
    spk = np.repeat(np.arange(6), 10).astype(str)
    attrs = {"gender": np.repeat(["f", "m"], 30), "age": np.array(list("abcdef"))[spk.astype(int)]}
    groups = all_groups(attrs, ["gender", "age"], min_size=1)
    rng = np.random.default_rng(5)
    p_spk = rng.uniform(0.2, 0.9, 6)
    vals = (rng.uniform(size=n) < p_spk[spk.astype(int)]).astype(np.float32)
    lo, hi = rja.group_rate_intervals(
        vals, groups, key=jax.random.key(2), num_resamples=200, speakers=spk
    )
    names = ["all", *[f"{a}={g}" for a, grp in groups.items() for g in grp.names]]
    width = dict(zip(names, hi - lo, strict=True))
    assert width["gender=f"] > 0.05 and width["gender=m"] > 0.05
    # one speaker per age group: no interval
    assert all(np.isnan(width[f"age={a}"]) for a in "abcdef")
    # the rejection analysis: gender's FPR Parity interval is not a zero-width artefact
    # of stacking age beside it (the methods stay paired within gender)
    pvals = rng.uniform(size=(2, n))
    nr = rng.uniform(size=n)
    an = rjt.analyze(
        pvals, nr, np.linspace(0.01, 1.0, 20), groups, num_samples=[10, 100],
        bootstrap_resamples=200, key=jax.random.key(3), speakers=spk,
    )  # fmt: skip
    g = an.attributes["gender"]
    assert np.all(g.parity_ci[:, 1] - g.parity_ci[:, 0] > 0.01), g.parity_ci
    assert np.all(np.isnan(an.attributes["age"].auc_ci))
    assert np.isfinite(an.parity_samples[:, 0]).all()  # gender's replicates (span 0)


# ----------------------------------------------------------------------------- rejection


def test_fpr_curve_table_has_intervals_around_every_point():
    rng = np.random.default_rng(0)
    n = 60
    pvalues = rng.uniform(size=(2, n))
    nr_stat = rng.uniform(size=n)
    groups = all_groups(_attrs(n), min_size=1)
    res = rjt.analyze(
        pvalues, nr_stat, GRID, groups, num_samples=(10, 100), bootstrap_resamples=40,
        key=jax.random.key(0),
    )  # fmt: skip
    a = res.attributes["gender"]
    assert a.curves_ci is not None and a.curves_ci.shape == (*a.curves.shape, 2)
    assert res.overall_curves_ci is not None
    assert res.overall_curves_ci.shape == (*res.overall_curves.shape, 2)
    _within(a.curves, a.curves_ci[..., 0], a.curves_ci[..., 1])
    rows = rjt.fpr_curve_table(res)
    assert {"ci_low", "ci_high"} <= set(rows[0])
    for r in rows:
        assert r["ci_low"] is not None and r["ci_low"] - 1e-6 <= r["fpr"] <= r["ci_high"] + 1e-6
    # Without bootstrap the columns exist and are empty.
    plain = rjt.analyze(pvalues, nr_stat, GRID, groups, num_samples=(10, 100))
    rows = rjt.fpr_curve_table(plain)
    assert all(r["ci_low"] is None and r["ci_high"] is None for r in rows)


def test_fpr_curve_intervals_match_auc_intervals_resamples():
    """Curves and AUC_FPR come from the same resamples: integrating the replicate curves
    gives the replicate AUCs, so a constant-FPR group has a zero-width curve interval."""
    n = 20
    p = np.full((1, n), 0.995)  # every example rejected at every alpha < 0.995
    groups = all_groups({"g": np.array(["a", "b"])[np.arange(n) % 2]}, min_size=1)
    res = rjt.analyze(
        p, np.full(n, 2.0), GRID, groups, num_samples=(10,), bootstrap_resamples=20,
        key=jax.random.key(3),
    )  # fmt: skip
    ci = res.attributes["g"].curves_ci
    np.testing.assert_array_equal(ci[..., 0], ci[..., 1])


def test_certified_accuracy_table_intervals():
    rng = np.random.default_rng(1)
    n = 50
    labels = rng.integers(0, 3, n)
    pred = np.where(rng.uniform(size=n) < 0.7, labels, -1)
    radius = rng.uniform(0, 0.3, n)
    radii = (0.0, 0.1, 0.2)
    groups = all_groups(_attrs(n), min_size=1)
    rows = rja.certified_accuracy_table(
        pred, radius, labels, radii, groups, bootstrap_resamples=40, key=jax.random.key(0),
        speakers=np.array([f"s{i // 5}" for i in range(n)]),
    )  # fmt: skip
    assert {"ci_low", "ci_high"} <= set(rows[0])
    _within(
        [r["certified_accuracy"] for r in rows],
        [r["ci_low"] for r in rows],
        [r["ci_high"] for r in rows],
    )
    # The estimates are still smoothing.certified_accuracy's.
    want = smoothing.certified_accuracy(pred, radius, labels, np.asarray(radii), None)[:, 0]
    got = [r["certified_accuracy"] for r in rows if r["attribute"] == "all"]
    np.testing.assert_allclose(got, want)
    plain = rja.certified_accuracy_table(pred, radius, labels, radii, groups)
    assert all(r["ci_low"] is None for r in plain)
    with pytest.raises(ValueError, match="key"):
        rja.certified_accuracy_table(pred, radius, labels, radii, groups, bootstrap_resamples=5)


def test_accuracy_rows_with_intervals():
    n = 30
    groups = all_groups(_attrs(n), min_size=1)
    correct = np.arange(n) % 3 != 0
    abstain = np.arange(n) % 5 == 0
    lo, hi = rja.group_rate_intervals(
        np.stack([correct, abstain]), groups, key=jax.random.key(0), num_resamples=30
    )
    rows = rja.accuracy_rows(
        "m", correct, groups, abstain=abstain, ci={"accuracy": (lo[0], hi[0]),
                                                   "abstain_rate": (lo[1], hi[1])},
    )  # fmt: skip
    for name in ("accuracy", "abstain_rate"):
        _within(
            [r[name] for r in rows],
            [r[f"{name}_ci_low"] for r in rows],
            [r[f"{name}_ci_high"] for r in rows],
        )
    rows = rja.accuracy_rows("m", correct, groups)
    assert all(r["accuracy_ci_low"] is None and r["abstain_rate_ci_high"] is None for r in rows)


# ----------------------------------------------------------------------------- robustness


def test_robustness_group_curves_have_intervals():
    n, e = 40, 2
    rng = np.random.default_rng(0)
    correct = rng.uniform(size=(2, 1 + e, n)) < np.array([0.9, 0.5, 0.2])[None, :, None]
    members = [
        {"member_id": f"m{i}", "model": "m5", "at_eps": 0.0, "noise_std": 0.0, "preprocess": "none"}
        for i in range(2)
    ]
    groups = all_groups(_attrs(n), min_size=2)
    cfg = study_config.RobustnessConfig(bootstrap_resamples=30, attack_eps=(0.01, 0.1))
    agg = rt.aggregate(members, correct, (0.01, 0.1), groups, num_classes=3, config=cfg)
    rows = agg["tables"]["group_curves"]
    assert {"ci_low", "ci_high"} <= set(rows[0])
    _within(
        [r["accuracy"] for r in rows], [r["ci_low"] for r in rows], [r["ci_high"] for r in rows]
    )
    # Clean-accuracy intervals of group_metrics come from the same resamples.
    gm = {(r["member_id"], r["attribute"], r["group"]): r for r in agg["tables"]["group_metrics"]}
    for r in rows:
        if r["epsilon"] == 0.0:
            m = gm[(r["member_id"], r["attribute"], r["group"])]
            assert r["ci_low"] == pytest.approx(m["clean_accuracy_ci_low"])
            assert r["ci_high"] == pytest.approx(m["clean_accuracy_ci_high"])
    mats = agg["matrices"]["gender"]
    assert mats["curves_low"].shape == mats["curves"].shape
    no_ci = rt.aggregate(
        members, correct, (0.01, 0.1), groups, num_classes=3,
        config=study_config.RobustnessConfig(bootstrap_resamples=0, attack_eps=(0.01, 0.1)),
    )  # fmt: skip
    assert "ci_low" not in no_ci["tables"]["group_curves"][0]


# ----------------------------------------------------------------------------- figures


def test_figures_draw_bands_and_check_shapes(tmp_path):
    eps = np.array([0.01, 0.1])
    acc = np.array([[0.6, 0.2], [0.5, 0.1]])
    p = rob_figs.accuracy_vs_epsilon(
        eps, acc, ["f", "m"], tmp_path / "a.png", clean_accuracy=np.array([0.9, 0.8]),
        lower=acc - 0.1, upper=acc + 0.1, clean_lower=np.array([0.8, 0.7]),
        clean_upper=np.array([0.95, 0.9]),
    )  # fmt: skip
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="lower"):
        rob_figs.accuracy_vs_epsilon(eps, acc, ["f", "m"], tmp_path / "b.png", lower=acc)
    with pytest.raises(ValueError, match="upper"):
        rob_figs.accuracy_vs_epsilon(
            eps, acc, ["f", "m"], tmp_path / "b.png", lower=acc, upper=acc[:1]
        )
    curves = np.random.default_rng(0).uniform(size=(2, 5, 3))
    ci = np.stack([curves - 0.05, curves + 0.05], -1)
    rej_figs.plot_fpr_curves(
        np.linspace(0.1, 1, 5), curves, tmp_path / "c.png", method_labels=["RS", "NR"],
        group_labels=["a", "b", "c"], ci=ci,
    )  # fmt: skip
    with pytest.raises(ValueError, match="ci"):
        rej_figs.plot_fpr_curves(
            np.linspace(0.1, 1, 5), curves, tmp_path / "c.png", method_labels=["RS", "NR"],
            group_labels=["a", "b", "c"], ci=ci[..., :1],
        )  # fmt: skip
    radii = np.array([0.0, 0.1, 0.2])
    cert = np.array([[0.8, 0.7], [0.5, 0.4], [0.2, 0.1]])
    rej_figs.plot_certified_accuracy(
        radii, cert, tmp_path / "d.png", group_labels=["a", "b"], lower=cert - 0.1,
        upper=cert + 0.1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="lower"):
        rej_figs.plot_certified_accuracy(
            radii, cert, tmp_path / "d.png", group_labels=["a", "b"], lower=cert[:2],
            upper=cert[:2],
        )  # fmt: skip
