"""The studies' group-fairness tables (studies.fairness) against fairlearn, their intervals'
coverage, degenerate attributes, and the report's table."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from fairrobust import metrics
from fairrobust.groups import group_masks, with_speakers
from fairrobust.studies import fairness as sf

fm = pytest.importorskip("fairlearn.metrics")


def _groups(labels, speakers, min_size=2, min_speakers=2, attribute="gender"):
    g = group_masks({attribute: np.asarray(labels)}, attribute, min_size=min_size)
    return with_speakers(g, np.asarray(speakers), min_speakers)


def _fairlearn(y, yp, sens, num_classes):
    """One-vs-rest per class with fairlearn, then the mean over classes (the table's definition)."""
    out = {k: [] for k in metrics.FAIRNESS_METRICS}
    for c in range(num_classes):
        yt, yh = (y == c).astype(int), (yp == c).astype(int)
        if yh.sum() == 0:  # nobody selects c: no ratio (the kernel skips the class)
            continue
        dp = fm.demographic_parity_difference(yt, yh, sensitive_features=sens)
        ratio = fm.demographic_parity_ratio(yt, yh, sensitive_features=sens)
        out["demographic_parity_difference"].append(dp)
        out["demographic_parity_ratio"].append(ratio)
        out["p_rule"].append(100 * ratio)
        out["equalized_odds_difference"].append(
            fm.equalized_odds_difference(yt, yh, sensitive_features=sens)
        )
    return {k: float(np.mean(v)) for k, v in out.items()}


def _data(seed, n=240, num_classes=3, n_groups=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    g = np.asarray(["a", "b", "c", "d"], dtype="<U8")[rng.integers(0, n_groups, n)]
    spk = np.char.add(g, rng.integers(0, 6, n).astype(str))
    return rng, y, g, spk


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_match_fairlearn_with_rejections_and_an_excluded_group(seed):
    rng, y, g, spk = _data(seed)
    g[:3] = "tiny"  # a group under the minimum size: excluded from every metric
    spk[:3] = "t0"
    grp = _groups(g, spk, min_size=5)
    pred = np.where(rng.random((2, 3, y.size)) < 0.6, y, rng.integers(-1, 3, (2, 3, y.size)))
    rows = sf.fairness_rows(
        "robustness",
        [{"member": "m0", "role": ""}, {"member": "m1", "role": ""}],
        [("clean", 0.0), ("eps=0.01", 0.01), ("eps=0.1", 0.1)],
        pred,
        y,
        {"gender": grp},
        3,
        speakers=spk,
    )
    assert len(rows) == 2 * 3 * 4 and all(tuple(r) == sf.COLUMNS for r in rows)
    keep = g != "tiny"
    for r in rows:
        i = ["m0", "m1"].index(r["member"])
        j = ["clean", "eps=0.01", "eps=0.1"].index(r["condition"])
        ref = _fairlearn(y[keep], pred[i, j][keep], g[keep], 3)
        np.testing.assert_allclose(r["value"], ref[r["metric"]], rtol=1e-5, err_msg=r["metric"])
        assert r["groups_used"] == ["a", "b", "c"] and r["groups_excluded"][0].startswith("tiny")
        assert r["n_clips"] == keep.sum() and r["n_speakers"] == len(set(spk[keep]))
        assert r["ci_low"] is None  # no bootstrap asked for


def test_binary_task_is_fairlearns_positive_class():
    rng, y, g, spk = _data(3, num_classes=2, n_groups=2)
    pred = np.where(rng.random(y.size) < 0.7, y, 1 - y)[None, None]
    rows = sf.fairness_rows(
        "rejection",
        [{"member": "m", "role": ""}],
        [("no rejection", None)],
        pred,
        y,
        {"gender": _groups(g, spk)},
        2,
    )
    got = {r["metric"]: r["value"] for r in rows}
    sens = g
    np.testing.assert_allclose(
        got["demographic_parity_difference"],
        fm.demographic_parity_difference(y, pred[0, 0], sensitive_features=sens),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        got["equalized_odds_difference"],
        fm.equalized_odds_difference(y, pred[0, 0], sensitive_features=sens),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        got["p_rule"],
        100 * fm.demographic_parity_ratio(y, pred[0, 0], sensitive_features=sens),
        rtol=1e-5,
    )


def test_one_usable_group_is_reported_not_computable():
    _, y, _, spk = _data(4)
    grp = _groups(np.where(np.arange(y.size) < 200, "big", "small"), spk, min_size=60)
    empty = _groups(np.full(y.size, "unknown"), spk, attribute="age")  # no group at all
    assert empty.num_groups == 0
    pred = y[None, None]
    boot = {"key": jax.random.key(0), "num_resamples": 20, "speakers": spk, "min_clusters": 2}
    rows = sf.fairness_rows(
        "robustness",
        [{"member": "m", "role": ""}],
        [("clean", 0.0)],
        pred,
        y,
        {"gender": grp, "age": empty},
        3,
        speakers=spk,
        bootstrap=boot,
    )
    assert [(r["attribute"], r["metric"]) for r in rows] == [
        ("gender", "not computable"),
        ("age", "not computable"),
    ]
    assert rows[0]["value"] is None and "1 group(s)" in rows[0]["note"]
    assert rows[0]["groups_used"] == ["big"] and rows[0]["groups_excluded"][0].startswith("small")


def test_intervals_contain_the_estimate_and_bootstrap_rows_are_finite():
    rng, y, g, spk = _data(5, n=300)
    pred = np.where(rng.random((1, 2, y.size)) < 0.7, y, rng.integers(-1, 3, (1, 2, y.size)))
    boot = {"key": jax.random.key(1), "num_resamples": 100, "speakers": spk, "min_clusters": 2}
    rows = sf.fairness_rows(
        "robustness",
        [{"member": "m", "role": ""}],
        [("clean", 0.0), ("eps=0.1", 0.1)],
        pred,
        y,
        {"gender": _groups(g, spk)},
        3,
        speakers=spk,
        bootstrap=boot,
    )
    for r in rows:
        assert r["ci_low"] <= r["value"] <= r["ci_high"], r
        top = 100.0 if r["metric"] == "p_rule" else 1.0
        assert 0.0 <= r["ci_low"] and r["ci_high"] <= top * (1 + 1e-6)


def test_fairness_intervals_values_equal_fairness_metrics():
    rng, y, g, spk = _data(6)
    masks = np.stack([g == v for v in ("a", "b", "c")])
    yp = np.where(rng.random((2, y.size)) < 0.6, y, rng.integers(-1, 3, (2, y.size)))
    res = metrics.bootstrap_ci(
        metrics.FairnessStat(3),
        {"y_true": y, "y_pred": yp},
        masks,
        key=jax.random.key(0),
        num_resamples=50,
        speakers=spk,
        return_samples=True,
    )
    for average in ("mean", "worst", None):
        ref = metrics.fairness_metrics(np.broadcast_to(y, yp.shape), yp, masks, 3, average=average)
        got = metrics.fairness_intervals(res.estimate, res.samples, average=average)
        for k in ("demographic_parity_difference", "equalized_odds_difference", "p_rule"):
            np.testing.assert_allclose(got[k][0], ref[k], rtol=1e-5, err_msg=f"{k} {average}")
    with pytest.raises(ValueError, match="average"):
        metrics.fairness_intervals(res.estimate, res.samples, average="median")


def _simulate(rng, acc, rej, num_classes=3, speakers=12, clips=8):
    """Groups with speaker-level accuracy ``acc_s + U(-0.1, 0.1)`` and rejection rate ``rej_s``."""
    y, yp, g, spk = [], [], [], []
    for s, (a, r) in enumerate(zip(acc, rej, strict=True)):
        for k in range(speakers):
            a_k = a + rng.uniform(-0.1, 0.1)
            yy = rng.integers(0, num_classes, clips)
            u = rng.random(clips)
            wrong = (yy + 1 + rng.integers(0, num_classes - 1, clips)) % num_classes
            yp.append(np.where(u < a_k, yy, np.where(u < a_k + r, -1, wrong)))
            y.append(yy)
            g += [s] * clips
            spk += [f"{s}-{k}"] * clips
    return np.concatenate(y), np.concatenate(yp), np.asarray(g), np.asarray(spk)


def _truth(acc, rej, c):
    """Population values: P(yhat=c|s) = (1 - rej_s) / C, TPR_s = acc_s,
    FPR_s = (1 - acc_s - rej_s) / (C - 1) for every class (uniform labels)."""
    sel = (1 - np.asarray(rej)) / c
    fpr = (1 - np.asarray(acc) - np.asarray(rej)) / (c - 1)
    return {
        "demographic_parity_difference": np.ptp(sel),
        "equalized_odds_difference": max(np.ptp(acc), np.ptp(fpr)),
        "p_rule": 100 * sel.min() / sel.max(),
    }


@pytest.mark.parametrize(
    "acc, rej", [((0.6, 0.6), (0.1, 0.1)), ((0.5, 0.7, 0.6), (0.2, 0.05, 0.1))]
)
def test_interval_coverage_simulation(acc, rej):
    # 60 simulated studies, 200 resamples each. The intervals are simultaneous (conservative);
    # with true coverage >= 0.95, P(fewer than 51 of 60 covered) < 0.5%.
    rng = np.random.default_rng(0)
    truth = _truth(acc, rej, 3)
    covered = dict.fromkeys(truth, 0)
    reps = 60
    for r in range(reps):
        y, yp, g, spk = _simulate(rng, acc, rej)
        masks = np.stack([g == s for s in range(len(acc))])
        res = metrics.bootstrap_ci(
            metrics.FairnessStat(3),
            {"y_true": y, "y_pred": yp},
            masks,
            key=jax.random.key(r),
            num_resamples=200,
            speakers=spk,
            return_samples=True,
        )
        out = metrics.fairness_intervals(res.estimate, res.samples, clusters=res.clusters_per_group)
        for k, t in truth.items():
            covered[k] += bool(out[k][1] - 1e-9 <= t <= out[k][2] + 1e-9)
    for k, c in covered.items():
        assert c >= 51, (k, c, reps)


def test_rejection_fairness_thresholds_and_abstentions():
    rng, y, g, spk = _data(7)
    nr_stat = rng.random(y.size)
    pv = rng.random((2, y.size))
    top = np.where(rng.random((2, y.size)) < 0.8, y, (y + 1) % 3)
    thresholds = np.round(np.arange(0.01, 1.0 + 1e-9, 0.01), 2)
    assert sf.rejection_conditions(thresholds) == (0.01, 0.5, 1.0)
    rows = sf.rejection_fairness(
        y,
        y,
        (y + 1) % 3,
        nr_stat,
        y,
        top,
        pv,
        (10, 100),
        thresholds,
        {"gender": _groups(g, spk)},
        3,
        labels=("NR base", "RS base"),
        speakers=spk,
        bootstrap=None,
    )
    members = list(dict.fromkeys(r["member"] for r in rows))
    assert members == ["NR base", "RS base", "RS N=10", "RS N=100", "NR"]
    pick = {(r["member"], r["condition"], r["metric"]): r["value"] for r in rows}
    assert pick[("NR base", "no rejection", "demographic_parity_difference")] is not None
    # RS N=100 at alpha 0.5: the top class unless the p-value exceeds 0.5
    want = _fairlearn(y, np.where(pv[1] > 0.5, -1, top[1]), g, 3)
    got = pick[("RS N=100", "threshold=0.5", "equalized_odds_difference")]
    np.testing.assert_allclose(got, want["equalized_odds_difference"], rtol=1e-5)
    # NR at t = 0.5: rejected iff its score is below t
    want = _fairlearn(y, np.where(nr_stat < 0.5, -1, (y + 1) % 3), g, 3)
    got = pick[("NR", "threshold=0.5", "demographic_parity_difference")]
    np.testing.assert_allclose(got, want["demographic_parity_difference"], rtol=1e-5)


def test_report_table_renders_from_the_files(tmp_path):
    from fairrobust.report.fairness import fairness_section
    from fairrobust.studies.results import RunData

    rng, y, g, spk = _data(8)
    pred = np.where(rng.random((2, 2, y.size)) < 0.7, y, -1)
    grp = _groups(g, spk)
    rows = sf.fairness_rows(
        "robustness",
        [{"member": "base", "role": "baseline"}, {"member": "at", "role": "most robust"}],
        [("clean", 0.0), ("eps=0.1", 0.1)],
        pred,
        y,
        {"gender": grp},
        3,
        speakers=spk,
    )
    rows += sf.fairness_rows(
        "robustness",
        [{"member": "base", "role": "baseline"}],
        [("clean", 0.0)],
        pred[:1, :1],
        y,
        {"age": _groups(np.full(y.size, "x"), spk)},
        3,
    )
    rows = json.loads(json.dumps(rows))  # as read back from the JSON file
    data = RunData(
        run_dir=tmp_path, config={}, rob={"fairness": rows, "prefix": "robustness_d"}, rej=None
    )
    text = "\n".join(fairness_section(data))
    assert "## Group-fairness metrics" in text and "robustness_d_fairness.csv" in text
    assert "base (baseline) | eps=0.1" in text and "at (most robust) | clean" in text
    assert "| age | all models |  | not computable" in text
    assert fairness_section(RunData(run_dir=tmp_path, config={}, rob=None, rej=None)) == []
