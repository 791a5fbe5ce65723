"""Certified parity and robustness bias metrics: hand values, oracles, invariants, errors."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import groups as G
from fairrobust import metrics as M
from fairrobust.figures import rejection as figs
from fairrobust.figures.robustness import breaking_eps_cdf
from fairrobust.report.rejection import certified_parity_block
from fairrobust.report.robustness import breaking_eps_block
from fairrobust.studies.rejection_certified import certified_parity_rows, certified_range
from fairrobust.studies.results import RunData
from fairrobust.studies.robustness_bias import breaking_eps_rows

# Two groups over 6 clips (group 1: clips 3..5).
MASKS = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], bool)
CORRECT = np.array([1, 1, 0, 1, 0, 1], bool)
RADIUS = np.array([0.1, 0.5, 0.4, 0.05, 0.3, 0.2])


def _loop_cauc(correct, radius, masks, lo, hi):
    out = []
    for m in masks:
        s = sum(
            (min(max(r, lo), hi) - lo) / (hi - lo)
            for c, r in zip(correct[m], radius[m], strict=True)
            if c
        )
        out.append(s / m.sum() if m.sum() else np.nan)
    return np.array(out)


def _trapz_cauc(correct, radius, masks, lo, hi, k=200_001):
    grid = np.linspace(lo, hi, k)
    out = []
    for m in masks:
        ca = (correct[m][None, :] & (radius[m][None, :] >= grid[:, None])).mean(axis=1)
        out.append(np.trapezoid(ca, grid) / (hi - lo))
    return np.array(out)


def test_hand_values():
    # group 0 over [0, 0.4]: clip 0 -> 0.1/0.4, clip 1 -> 0.4/0.4, clip 2 wrong -> 0
    # => (0.25 + 1) / 3; group 1: 0.05/0.4 + 0 + 0.2/0.4 = 0.625 -> / 3
    auc = np.asarray(M.certified_auc(CORRECT, RADIUS, MASKS, 0.0, 0.4))
    np.testing.assert_allclose(auc, [1.25 / 3, 0.625 / 3], rtol=1e-6)
    cp = float(M.certified_parity(CORRECT, RADIUS, MASKS, 0.0, 0.4))
    np.testing.assert_allclose(cp, (1.25 - 0.625) / 3, rtol=1e-6)
    # median certified radius: group 0 {0.1, 0.5, 0} -> 0.1; group 1 {0.05, 0, 0.2} -> 0.05
    med = np.asarray(M.median_certified_radius(CORRECT, RADIUS, MASKS))
    np.testing.assert_allclose(med, [0.1, 0.05], rtol=1e-6)


@pytest.mark.parametrize(("lo", "hi"), [(0.0, 0.5), (0.1, 0.3), (0.25, 1.0)])
def test_oracles_loop_and_numerical_integration(lo, hi):
    rng = np.random.default_rng(0)
    n = 60
    correct = rng.random(n) < 0.7
    radius = np.round(rng.random(n) * 0.8, 3)
    masks = rng.integers(0, 3, n)[None, :] == np.arange(3)[:, None]
    auc = np.asarray(M.certified_auc(correct, radius, masks, lo, hi), np.float64)
    np.testing.assert_allclose(auc, _loop_cauc(correct, radius, masks, lo, hi), atol=1e-6)
    np.testing.assert_allclose(auc, _trapz_cauc(correct, radius, masks, lo, hi), atol=1e-4)
    assert np.all((auc >= 0) & (auc <= 1))
    med = np.asarray(M.median_certified_radius(correct, radius, masks))
    ref = [np.median(np.where(correct, radius, 0.0)[m]) for m in masks]
    np.testing.assert_allclose(med, ref, atol=1e-6)
    cp = float(M.certified_parity(correct, radius, masks, lo, hi, valid=[True, False, True]))
    np.testing.assert_allclose(cp, abs(auc[0] - auc[2]), atol=1e-6)


def test_weighted_median_equals_median_of_copies():
    rng = np.random.default_rng(1)
    v = rng.random(25)
    v[3] = np.inf
    masks = np.stack([np.ones(25, bool), np.arange(25) < 10])
    for _ in range(5):
        w = rng.integers(0, 3, 25)
        got = np.asarray(M.weighted_median(v, masks, weights=w))
        for g in range(2):
            copies = np.repeat(v[masks[g]], w[masks[g]])
            want = np.median(copies) if copies.size else np.nan
            np.testing.assert_allclose(got[g], want, rtol=1e-6)


def test_invariants_and_edge_cases():
    # full range certified: CAUC 1; nothing correct: 0 and median 0
    ones = np.ones(6, bool)
    big = np.full(6, 9.0)
    np.testing.assert_allclose(np.asarray(M.certified_auc(ones, big, MASKS, 0, 1)), [1, 1])
    zeros = np.zeros(6, bool)
    np.testing.assert_allclose(np.asarray(M.certified_auc(zeros, big, MASKS, 0, 1)), [0, 0])
    np.testing.assert_allclose(np.asarray(M.median_certified_radius(zeros, big, MASKS)), [0, 0])
    # one group: parity NaN; empty group: NaN value with a warning
    assert np.isnan(float(M.certified_parity(CORRECT, RADIUS, MASKS[:1], 0, 1)))
    empty = np.vstack([MASKS, np.zeros(6, bool)])
    with pytest.warns(RuntimeWarning):
        auc = np.asarray(M.certified_auc(CORRECT, RADIUS, empty, 0, 1))
    assert np.isnan(auc[2]) and np.isfinite(auc[:2]).all()
    assert np.isnan(np.asarray(M.median_certified_radius(CORRECT, RADIUS, empty))[2])


def test_bad_input():
    with pytest.raises(ValueError, match="r_hi"):
        M.certified_auc(CORRECT, RADIUS, MASKS, 0.5, 0.5)
    with pytest.raises(ValueError, match="r_lo"):
        M.certified_auc(CORRECT, RADIUS, MASKS, -1.0, 0.5)
    with pytest.raises(ValueError, match="radius"):
        M.certified_auc(CORRECT, RADIUS[:3], MASKS, 0.0, 0.5)
    with pytest.raises(ValueError, match="masks"):
        M.certified_auc(CORRECT, RADIUS, MASKS[:, :3], 0.0, 0.5)


def test_bootstrap_stat_matches_functions_and_gap_interval():
    rng = np.random.default_rng(2)
    n = 80
    correct = rng.random(n) < 0.7
    radius = rng.random(n) * 0.5
    masks = rng.integers(0, 2, n)[None, :] == np.arange(2)[:, None]
    speakers = rng.integers(0, 20, n).astype(str)
    res = M.bootstrap_ci(
        M.CertifiedAucStat(0.0, 0.4, (True, True)),
        (correct, radius),
        masks,
        key=jax.random.key(0),
        num_resamples=100,
        speakers=speakers,
        return_samples=True,
    )
    np.testing.assert_allclose(
        res.estimate["certified_auc"], M.certified_auc(correct, radius, masks, 0, 0.4), atol=1e-6
    )
    np.testing.assert_allclose(
        res.estimate["median_radius"], M.median_certified_radius(correct, radius, masks), atol=1e-6
    )
    cp = float(res.estimate["certified_parity"])
    assert float(res.lower["certified_parity"]) <= cp <= float(res.upper["certified_parity"])
    # the gap's interval is gap_interval of the group replicates (as for FPR Parity)
    gi = M.gap_interval(
        res.estimate["certified_auc"],
        res.samples["certified_auc"],
        clusters=res.clusters_per_group,
        level=0.95,
    )
    np.testing.assert_allclose(float(gi[1]), float(res.lower["certified_parity"]), atol=1e-5)
    np.testing.assert_allclose(float(gi[2]), float(res.upper["certified_parity"]), atol=1e-5)
    lo, hi = res.lower["certified_auc"], res.upper["certified_auc"]
    assert np.all(lo <= res.estimate["certified_auc"]) and np.all(
        res.estimate["certified_auc"] <= hi
    )


def _loop_breaking(correct, eps):
    out = np.full(correct.shape[1], np.inf)
    for i in range(correct.shape[1]):
        for k in range(correct.shape[0]):
            if not correct[k, i]:
                out[i] = eps[k]
                break
    return out


def test_breaking_epsilon_hand_and_loop():
    eps = np.array([0.0, 0.01, 0.1])
    c = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1]], bool)  # clean, eps1, eps2
    # example 0 wrong clean -> 0; 1 broken at 0.01; 2 at 0.1; 3 never; a re-correct
    # after breaking (example 0 at eps2) does not matter
    np.testing.assert_array_equal(M.breaking_epsilon(c, eps), [0.0, 0.01, 0.1, np.inf])
    rng = np.random.default_rng(3)
    cc = rng.random((2, 4, 30)) < 0.8
    e4 = np.array([0.0, 0.001, 0.01, 0.1])
    got = M.breaking_epsilon(cc, e4)
    for m in range(2):
        np.testing.assert_array_equal(got[m], _loop_breaking(cc[m], e4))
    with pytest.raises(ValueError, match="correct"):
        M.breaking_epsilon(cc, e4[:3])
    with pytest.raises(ValueError, match="epsilons"):
        M.breaking_epsilon(cc, np.array([0.1, 0.2, 0.3, 0.4]))


def test_breaking_eps_stat_median_with_never_broken():
    b = np.array([0.0, 0.01, np.inf, np.inf, 0.1, 0.1, np.inf, 0.01])
    masks = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]], bool)
    enc = M.encode_never(b, 0.1)
    out = M.BreakingEpsStat(0.1)(np.asarray(enc, np.float32), masks, None)
    med = M.decode_never(out["median"], 0.1)
    want = [np.median(b[m]) for m in masks]  # [inf, 0.1]: (0.01 + inf) / 2 = inf
    np.testing.assert_allclose(med, want, rtol=1e-6)
    np.testing.assert_allclose(out["never"], [0.5, 0.25])
    res = M.bootstrap_ci(
        M.BreakingEpsStat(0.1), np.asarray(enc, np.float32), masks, key=jax.random.key(0),
        num_resamples=50,
    )  # fmt: skip
    assert np.isinf(M.decode_never(res.estimate["median"], 0.1)[0])


def test_certified_parity_rows_hand_values_and_intervals():
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    pred = np.where(np.r_[CORRECT, True, False], labels, -1)  # last two: extra group
    radius = np.r_[RADIUS, 0.3, 0.0]
    attr = np.array(["a", "a", "a", "b", "b", "b", "c", "c"])
    speakers = np.array(["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s6"])
    grp = G.with_speakers(G.group_masks({"g": attr}, "g", min_size=2), speakers, 2)
    rows = certified_parity_rows(pred, radius, labels, {"g": grp}, r_lo=0.0, r_hi=0.4)
    by = {r["group"]: r for r in rows}
    np.testing.assert_allclose(by["a"]["certified_auc"], 1.25 / 3, rtol=1e-6)
    np.testing.assert_allclose(by["b"]["certified_auc"], 0.625 / 3, rtol=1e-6)
    assert not by["c"]["valid"] and by["c"]["speakers"] == 1  # one speaker: not counted
    np.testing.assert_allclose(by["a"]["certified_parity"], 0.625 / 3, rtol=1e-6)
    assert by["a"]["n_valid_groups"] == 2 and by["a"]["certified_parity_ci_low"] is None
    boot = certified_parity_rows(
        pred, radius, labels, {"g": grp}, r_lo=0.0, r_hi=0.4, speakers=speakers,
        bootstrap_resamples=30, key=jax.random.key(0),
    )  # fmt: skip
    b = {r["group"]: r for r in boot}
    assert b["c"]["certified_auc_ci_low"] is None  # under min_speakers: no interval
    assert (
        b["a"]["certified_auc_ci_low"] <= b["a"]["certified_auc"] <= b["a"]["certified_auc_ci_high"]
    )
    assert b["a"]["certified_parity_ci_low"] <= b["a"]["certified_parity"]
    assert certified_range((), (0.0, 0.05, 0.2)) == (0.0, 0.2)
    assert certified_range((0.1, 0.3), (0.0,)) == (0.1, 0.3)
    assert certified_range((), (0.0,)) is None

    data = RunData(run_dir=Path("."), config={}, rob=None, rej={"certified_parity": boot})
    md = "\n".join(certified_parity_block(data))
    assert "[0, 0.4]" in md and "L2" in md and "c (not counted)" in md
    # a sweep's extra columns are shown as keys
    swept = [{"sigma": 0.25, **r} for r in boot]
    md = "\n".join(
        certified_parity_block(RunData(Path("."), {}, None, {"certified_parity": swept}))
    )
    assert "| sigma |" in md and "0.25" in md
    assert certified_parity_block(RunData(Path("."), {}, None, {"certified_parity": []})) == []


def test_certified_figure_marks_groups_that_do_not_count(tmp_path):
    acc = np.array([[0.9, 0.8, 0.5], [0.7, 0.5, 0.5], [0.2, 0.1, 0.0]])
    out = figs.plot_certified_accuracy(
        np.linspace(0, 0.2, 3), acc, tmp_path / "c.png", group_labels=["a", "b", "c"],
        lower=acc - 0.1, upper=acc + 0.1, valid=[True, True, False],
    )  # fmt: skip
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="valid"):
        figs.plot_certified_accuracy(
            np.linspace(0, 0.2, 3), acc, tmp_path / "d.png", group_labels=["a", "b", "c"],
            valid=[True],
        )  # fmt: skip


def test_breaking_eps_rows_vs_loop():
    rng = np.random.default_rng(4)
    n = 40
    eps = np.array([0.0, 0.01, 0.05, 0.1])
    correct = np.cumprod(rng.random((4, n)) < 0.75, axis=0).astype(bool)  # broken stays broken
    b = M.breaking_epsilon(correct, eps)
    attr = np.array(["x", "y"])[rng.integers(0, 2, n)]
    speakers = np.array([f"s{i % 10}" for i in range(n)])
    grp = G.with_speakers(G.group_masks({"g": attr}, "g", min_size=2), speakers, 2)
    boot = {"key": jax.random.key(0), "num_resamples": 40, "speakers": speakers}
    rows = breaking_eps_rows(b, 0.1, {"g": grp}, bootstrap=boot)
    for row in rows:
        m = attr == row["group"]
        want = np.median(_loop_breaking(correct[:, m], eps))
        got = np.inf if row["median_never_broken"] else row["median_breaking_eps"]
        np.testing.assert_allclose(got, want, rtol=1e-6)
        np.testing.assert_allclose(row["never_broken"], np.mean(np.isinf(b[m])), rtol=1e-6)
        assert row["never_broken_ci_low"] <= row["never_broken"] <= row["never_broken_ci_high"]
    fr = [r["never_broken"] for r in rows]
    np.testing.assert_allclose(rows[0]["never_broken_gap"], max(fr) - min(fr), rtol=1e-6)


def test_breaking_eps_cdf_figure(tmp_path):
    b = np.array([[0.0, 0.01, np.inf, 0.1], [0.01, np.inf, np.inf, 0.1]])
    masks = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool)
    out = breaking_eps_cdf(
        [0.0, 0.01, 0.1], b, masks, tmp_path / "b.png", panel_labels=["base", "robust"],
        group_labels=["f", "m"], valid=[True, False],
    )  # fmt: skip
    assert out.read_bytes().startswith(b"\x89PNG")
    bands = np.zeros((2, 3, 2, 2))
    bands[..., 1] = 1.0
    breaking_eps_cdf(
        [0.0, 0.01, 0.1], b, masks, tmp_path / "c.png", panel_labels=["base", "robust"],
        group_labels=["f", "m"], valid=[True, False], bands=bands,
    )  # fmt: skip
    with pytest.raises(ValueError, match="bands: expected shape"):
        breaking_eps_cdf(
            [0.0, 0.01, 0.1], b, masks, tmp_path / "d.png", panel_labels=["base", "robust"],
            group_labels=["f", "m"], bands=bands[:, :2],
        )  # fmt: skip


def test_breaking_cdf_stat_matches_a_numpy_loop_and_its_band_covers():
    """The per-group CDF of the breaking epsilon equals a plain loop (weights too), and its
    speaker-clustered bootstrap interval covers the true CDF value in simulation."""
    eps = (0.0, 0.01, 0.1)
    rng = np.random.default_rng(0)
    b = rng.choice([0.0, 0.01, 0.1, np.inf], size=40)
    masks = np.stack([np.arange(40) < 25, np.arange(40) >= 25])
    w = rng.integers(0, 3, size=40).astype(np.float32)
    got = np.asarray(
        M.BreakingCdfStat(eps)(np.asarray(b, np.float32), masks, jnp.asarray(w))["cdf"]
    )
    want = [[np.sum(w[m] * (b[m] <= e)) / np.sum(w[m]) for m in masks] for e in eps]  # [K, g]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # coverage: 30 speakers x 4 clips, P(broken at <= 0.01) = 0.3 per speaker-level draw
    hits, reps = 0, 100
    spk = np.repeat(np.arange(30), 4)
    one = np.ones((1, 120), bool)
    for r in range(reps):
        rs = np.random.default_rng(100 + r)
        p_spk = np.clip(0.3 + rs.normal(0, 0.1, 30), 0, 1)[spk]  # speaker effect
        br = np.where(rs.random(120) < p_spk, 0.01, np.inf).astype(np.float32)
        res = M.bootstrap_ci(
            M.BreakingCdfStat(eps), br, one, key=jax.random.key(r), num_resamples=200,
            speakers=spk,
        )  # fmt: skip
        lo, hi = float(res.lower["cdf"][1, 0]), float(res.upper["cdf"][1, 0])
        hits += lo <= 0.3 <= hi
    assert hits >= 85, hits


def test_breaking_eps_report_block(tmp_path):
    base_rows = [
        {"member_id": "m5_at0_noise0", "attribute": "g", "group": "x", "n": 5, "valid": True,
         "median_breaking_eps": 0.01, "median_never_broken": False, "median_ci_low": 0.0,
         "median_ci_high": 0.05, "never_broken": 0.2, "never_broken_ci_low": 0.0,
         "never_broken_ci_high": 0.4, "median_gap": None, "never_broken_gap": 0.1},
        {"member_id": "m5_at0_noise0", "attribute": "g", "group": "y", "n": 1, "valid": False,
         "median_breaking_eps": None, "median_never_broken": True, "never_broken": 1.0},
        {"member_id": "other", "attribute": "g", "group": "x", "n": 5, "valid": True},
    ]  # fmt: skip
    rob = {"breaking_eps": base_rows, "summary": {"figures": {"breaking_eps_g": "f/b.png"}}}
    data = RunData(tmp_path, {}, rob, None)
    md = "\n".join(breaking_eps_block(data, {"member_id": "m5_at0_noise0"}, None, _img))
    assert "upper bound" in md and "y (not counted)" in md and "| inf |" in md
    assert "other" not in md and "b.png" in md
    assert breaking_eps_block(RunData(tmp_path, {}, {"summary": {}}, None), None, None, _img) == []


class _Img:
    """Stands in for ``report.blocks.ImageLinks`` without checking that the files exist."""

    def __call__(self, path, alt):
        return f"![{alt}]({path})"

    def figure(self, path, caption):
        return [self(path, caption), "", f"*{caption}*", ""]


_img = _Img()
