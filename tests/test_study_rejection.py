"""Tests of the rejection study: aggregation on hand arrays, tables, config, resume, CLI."""

from __future__ import annotations

import csv
import json
import math
import shutil

import jax
import numpy as np
import pytest
import scipy.stats

import fairrobust.data
from fairrobust import smoothing
from fairrobust.cli import build_parser
from fairrobust.cli import certify as cli_certify
from fairrobust.cli import study as cli_study
from fairrobust.groups import all_groups
from fairrobust.report import write_report
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection as rj
from fairrobust.studies import rejection_accuracy as rja
from fairrobust.studies import rejection_tables as rjt

STEP = 0.01
GRID = np.round(np.arange(1, 101) * STEP, 10)  # [0.01, 1.0]


def _groups(attrs, **kw):
    return all_groups(attrs, **{"min_size": 1, **kw})


def _hand_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    pvalues = rng.uniform(0, 1, size=(2, n)) ** np.array([[1.0], [3.0]])
    nr_stat = rng.uniform(0, 1, size=n)
    attrs = {
        "gender": np.array(["f", "m", "o"])[np.arange(n) % 3],
        "age": np.array(["young", "old"])[(np.arange(n) // 7) % 2],
    }
    return pvalues, nr_stat, attrs


# ----------------------------------------------------------------------------- aggregation


def test_auc_fpr_matches_closed_form_within_grid_step():
    pvalues, nr_stat, attrs = _hand_data()
    groups = _groups(attrs)
    res = rjt.analyze(pvalues, nr_stat, GRID, groups, num_samples=(10, 100))
    lo, hi = GRID[0], GRID[-1]
    # RS: reject iff p > alpha  =>  integral of 1[p > alpha] = clip(p - lo, 0, hi - lo).
    closed_rs = np.clip(pvalues - lo, 0, hi - lo)
    # NR: reject iff s < t  =>  integral of 1[s < t] = clip(hi - s, 0, hi - lo).
    closed_nr = np.clip(hi - nr_stat, 0, hi - lo)
    np.testing.assert_allclose(res.overall_auc[:2], closed_rs.mean(1), atol=STEP)
    np.testing.assert_allclose(res.overall_auc[2], closed_nr.mean(), atol=STEP)
    g = groups["gender"]
    masks = np.asarray(g.masks)
    for j in range(g.num_groups):
        want = [*closed_rs[:, masks[j]].mean(1), closed_nr[masks[j]].mean()]
        np.testing.assert_allclose(res.attributes["gender"].auc[:, j], want, atol=STEP)
    # Curves are rejection rates in [0, 1], monotone in the threshold in the right direction.
    curves = res.attributes["gender"].curves
    assert curves.shape == (3, GRID.size, 3)
    assert np.all((curves >= 0) & (curves <= 1))
    assert np.all(np.diff(curves[:2], axis=1) <= 1e-12)  # RS: fewer rejections as alpha grows
    assert np.all(np.diff(curves[2], axis=0) >= -1e-12)  # NR: more rejections as t grows


def test_fpr_curve_hand_example():
    # 4 examples, 2 groups; p-values chosen between grid points.
    p = np.array([[0.005, 0.505, 0.255, 0.995]])
    s = np.array([0.5, 0.5, 0.5, 0.5])
    groups = _groups({"g": np.array(["a", "a", "b", "b"])})
    res = rjt.analyze(p, s, GRID, groups, num_samples=(10,))
    curves = res.attributes["g"].curves
    a_at = {t: i for i, t in enumerate(np.round(GRID, 2))}
    # alpha = 0.5: group a rejects 0.505 only; group b rejects 0.995 only.
    assert curves[0, a_at[0.5], 0] == pytest.approx(0.5)
    assert curves[0, a_at[0.5], 1] == pytest.approx(0.5)
    # alpha = 0.3: group b rejects both 0.255? no, 0.255 < 0.3 so only 0.995.
    assert curves[0, a_at[0.3], 1] == pytest.approx(0.5)
    # alpha = 0.2: group b rejects both.
    assert curves[0, a_at[0.2], 1] == pytest.approx(1.0)
    # NR with every score 0.5: rejected iff t > 0.5.
    assert curves[1, a_at[0.5], 0] == 0.0 and curves[1, a_at[0.51], 0] == 1.0


def test_fpr_parity_hand_example_and_table():
    # Group a: p = 0.9 (AUC ~ 0.89); b: p = 0.4 (~0.39); c: p = 0.01 (~0), but c is small.
    p = np.array([[0.9, 0.9, 0.4, 0.4, 0.01]])
    s = np.array([0.2, 0.2, 0.9, 0.9, 0.5])
    groups = _groups({"g": np.array(["a", "a", "b", "b", "c"])}, min_size=2)
    res = rjt.analyze(p, s, GRID, groups, num_samples=(100,))
    attr = res.attributes["g"]
    assert list(attr.valid) == [True, True, False]
    np.testing.assert_allclose(attr.auc[0], [0.89, 0.39, 0.0], atol=STEP)
    assert attr.parity[0] == pytest.approx(0.5, abs=STEP)  # c excluded (too small)
    # NR: a has score 0.2 -> AUC ~ 0.8; b 0.9 -> ~0.1.
    assert attr.parity[1] == pytest.approx(0.7, abs=STEP)
    rows = rjt.fpr_parity_table(res)
    assert [(r["label"], r["worst_group"], r["best_group"]) for r in rows] == [
        ("RS N=100", "a", "b"),
        ("NR", "a", "b"),
    ]
    assert rows[0]["n_valid_groups"] == 2 and rows[0]["ci_low"] is None


def test_parity_is_nan_with_one_valid_group():
    p = np.array([[0.9, 0.4, 0.1]])
    groups = _groups({"g": np.array(["a", "a", "b"])}, min_size=2)
    res = rjt.analyze(p, np.zeros(3), GRID, groups, num_samples=(10,))
    assert np.all(np.isnan(res.attributes["g"].parity))
    assert rjt.fpr_parity_table(res)[0]["fpr_parity"] is None


def test_auc_fpr_table_layout():
    pvalues, nr_stat, attrs = _hand_data()
    res = rjt.analyze(pvalues, nr_stat, GRID, _groups(attrs), num_samples=(10, 100))
    table = rjt.auc_fpr_table(res)
    assert [r["label"] for r in table] == ["RS N=10", "RS N=100", "NR"]
    assert [r["method"] for r in table] == ["RS", "RS", "NR"]
    assert table[2]["num_samples"] is None
    assert list(table[0])[3:] == [
        "overall",
        "age=old",
        "age=young",
        "gender=f",
        "gender=m",
        "gender=o",
    ]
    long = rjt.auc_fpr_long_table(res)
    assert len(long) == 3 * (1 + 2 + 3)
    assert long[0]["attribute"] == "all" and long[0]["n"] == 60
    assert {r["auc_fpr"] for r in long if r["label"] == "NR" and r["group"] == "f"} == {
        table[2]["gender=f"]
    }


def test_correlation_matches_scipy():
    rng = np.random.default_rng(3)
    n = 80
    attrs = {"accent": np.array(list("abcde"))[rng.integers(0, 5, n)]}
    groups = _groups(attrs)
    pvalues = rng.uniform(size=(3, n))
    nr_stat = rng.uniform(size=n)
    train = {"accent": np.array([5, 40, 12, 30, 22])}
    res = rjt.analyze(
        pvalues, nr_stat, GRID, groups, num_samples=(10, 100, 1000), train_sizes=train
    )
    rows = rjt.correlation_table(res)
    auc = res.attributes["accent"].auc
    by = {(r["method"], r["num_samples"]): r for r in rows}
    want_nr = scipy.stats.pearsonr(train["accent"], auc[3])
    assert by[("NR", None)]["r"] == pytest.approx(want_nr.statistic, abs=1e-5)
    assert by[("NR", None)]["p_value"] == pytest.approx(want_nr.pvalue, abs=1e-4)
    rs = [scipy.stats.pearsonr(train["accent"], auc[i]).statistic for i in range(3)]
    assert by[("RS", 100)]["r"] == pytest.approx(rs[1], abs=1e-5)
    assert by[("RS mean", None)]["r"] == pytest.approx(np.mean(rs), abs=1e-5)
    assert by[("RS mean", None)]["r_std"] == pytest.approx(np.std(rs), abs=1e-5)
    assert by[("NR", None)]["n_groups"] == 5


def test_correlation_undefined_with_two_groups_and_pooled_all():
    pvalues, nr_stat, attrs = _hand_data()
    train = {"gender": np.array([10, 20, 30]), "age": np.array([5, 50])}
    res = rjt.analyze(
        pvalues, nr_stat, GRID, _groups(attrs), num_samples=(10, 100), train_sizes=train
    )
    rows = rjt.correlation_table(res)
    age = [r for r in rows if r["attribute"] == "age"]
    assert all(r["r"] is None for r in age)  # two points: undefined, no warning
    pooled = [r for r in rows if r["attribute"] == "all" and r["method"] == "NR"]
    assert pooled[0]["n_groups"] == 5 and pooled[0]["r"] is not None


def test_bootstrap_intervals_contain_estimate():
    pvalues, nr_stat, attrs = _hand_data(n=90)
    import jax

    res = rjt.analyze(
        pvalues,
        nr_stat,
        GRID,
        _groups(attrs),
        num_samples=(10, 100),
        bootstrap_resamples=50,
        key=jax.random.key(0),
    )
    attr = res.attributes["gender"]
    assert attr.auc_ci.shape == (3, 3, 2)
    assert np.all(attr.auc_ci[..., 0] <= attr.auc + 1e-6)
    assert np.all(attr.auc_ci[..., 1] >= attr.auc - 1e-6)
    assert np.all(np.isfinite(attr.parity_ci))
    rows = rjt.fpr_parity_table(res)
    assert all(r["ci_low"] is not None for r in rows)


def test_analyze_is_the_general_metrics():
    """AUC_FPR / FPR Parity are metrics.auc_fpr_by_attribute's; intervals AucFprStat's."""
    import jax

    from fairrobust import metrics

    pvalues, nr_stat, attrs = _hand_data(n=90)
    groups = _groups(attrs, min_size=20)
    res = rjt.analyze(
        pvalues, nr_stat, GRID, groups, num_samples=(10, 100), bootstrap_resamples=40,
        key=jax.random.key(0),
    )  # fmt: skip
    rs = metrics.auc_fpr_by_attribute(pvalues, GRID, groups, reject_if="above")
    nr = metrics.auc_fpr_by_attribute(nr_stat, GRID, groups, reject_if="below")
    for name in groups:
        attr = res.attributes[name]
        np.testing.assert_array_equal(attr.auc[:2], np.asarray(rs[name].values))
        np.testing.assert_array_equal(attr.auc[2], np.asarray(nr[name].values))
        np.testing.assert_array_equal(attr.parity[:2], np.asarray(rs[name].parity))
        # the intervals hold the point estimate (linear-form replicates, same resamples)
        assert np.all(attr.auc_ci[..., 0] <= attr.auc + 1e-6)
        assert np.all(attr.auc_ci[..., 1] >= attr.auc - 1e-6)
        ok = np.isfinite(attr.parity)
        assert np.all(attr.parity_ci[ok, 0] <= attr.parity[ok] + 1e-6)
        assert np.all(attr.parity_ci[ok, 1] >= attr.parity[ok] - 1e-6)
    # the curves integrate to the same AUC_FPR up to float rounding
    curves_auc = np.asarray(metrics.auc_fpr(res.attributes["gender"].curves, GRID))
    np.testing.assert_allclose(res.attributes["gender"].auc, curves_auc, atol=1e-6)


def test_attribute_without_groups_gives_nan_parity():
    import jax

    pvalues, nr_stat, attrs = _hand_data(n=30)
    attrs["accent"] = np.array(["unknown"] * 30)  # every value unknown: no group
    groups = _groups(attrs)
    assert groups["accent"].num_groups == 0
    res = rjt.analyze(
        pvalues, nr_stat, GRID, groups, num_samples=(10, 100), bootstrap_resamples=10,
        key=jax.random.key(0),
    )  # fmt: skip
    accent = res.attributes["accent"]
    assert accent.auc.shape == (3, 0) and np.all(np.isnan(accent.parity))
    assert np.all(np.isnan(accent.parity_ci))
    assert np.all(np.isfinite(res.attributes["gender"].parity))
    assert [r["fpr_parity"] for r in rjt.fpr_parity_table(res) if r["attribute"] == "accent"] == [
        None
    ] * 3


def test_analyze_rejects_bad_shapes():
    groups = _groups({"g": np.array(["a", "b", "a"])})
    with pytest.raises(ValueError, match="pvalues"):
        rjt.analyze(np.zeros((1, 3)), np.zeros(3), GRID, groups, num_samples=(10, 100))
    with pytest.raises(ValueError, match="nr_stat"):
        rjt.analyze(np.zeros((1, 3)), np.zeros(4), GRID, groups, num_samples=(10,))
    with pytest.raises(ValueError, match="key"):
        rjt.analyze(
            np.zeros((1, 3)), np.zeros(3), GRID, groups, num_samples=(10,), bootstrap_resamples=5
        )


def test_certified_accuracy_and_certify_tables():
    labels = np.array([0, 1, 1, 0])
    pred = np.array([0, 1, -1, 1])
    radius = np.array([0.2, 0.05, 0.0, 0.3])
    groups = _groups({"g": np.array(["a", "a", "b", "b"])})
    rows = rja.certified_accuracy_table(pred, radius, labels, [0.0, 0.1], groups)
    got = {(r["group"], r["radius"]): r["certified_accuracy"] for r in rows}
    assert got == {
        ("all", 0.0): 0.5,
        ("all", 0.1): 0.25,
        ("a", 0.0): 1.0,
        ("a", 0.1): 0.5,
        ("b", 0.0): 0.0,
        ("b", 0.1): 0.0,
    }
    table = rjt.certify_table(
        index=np.array([3, 5, 8, 9]),
        paths=np.array(["w.wav", "x.wav", "y.wav", "z.wav"]),
        labels=labels,
        pred=pred,
        radius=radius,
        p_a_lower=np.array([0.99, 0.7, 0.4, 0.999]),
        attributes={
            "gender": np.array(["f", "m", "f", "m"]),
            "age": np.array(["1", "2", "3", "4"]),
        },
    )
    assert list(table[0]) == [
        "index",
        "path",
        "label",
        "prediction",
        "radius",
        "correct",
        "p_a_lower",
        "age",
        "gender",
    ]
    assert [r["correct"] for r in table] == [1, 1, 0, 0]
    assert table[2]["prediction"] == -1


def test_accuracy_rows():
    groups = _groups({"g": np.array(["a", "a", "b", "b"])})
    rows = rja.accuracy_rows(
        "RS", np.array([1, 0, 1, 1], bool), groups, abstain=np.array([0, 1, 0, 0], bool)
    )
    assert [(r["group"], r["accuracy"], r["abstain_rate"]) for r in rows] == [
        ("all", 0.75, 0.25),
        ("a", 0.5, 0.5),
        ("b", 1.0, 0.0),
    ]


def test_write_csv_atomic_and_nan(tmp_path):
    path = rjt.write_csv(tmp_path / "t.csv", [{"a": 1, "b": math.nan}, {"a": None, "c": True}])
    assert path.read_text() == "a,b,c\n1,,\n,,true\n"


# ----------------------------------------------------------------------------- config


def test_presets_and_validation(tmp_path):
    paper = study_config.preset("rejection", "paper")
    assert paper.num_samples == (10, 100, 1000, 10000)
    assert (paper.alpha_min, paper.alpha_max, paper.alpha_step) == (0.001, 1.0, 0.001)
    assert paper.sigma == 0.1 and paper.certify_n0 == 100 and paper.certify_n == 10000
    assert rj.threshold_grid(paper).shape == (1000,)
    quick = study_config.preset("rejection", "quick")
    assert max(quick.num_samples) <= 1000 and quick.max_examples > 0
    with pytest.raises(ValueError, match="preset"):
        study_config.preset("rejection", "huge")
    with pytest.raises(ValueError, match="num_samples"):
        study_config.RejectionConfig(num_samples=(100, 10))
    with pytest.raises(ValueError, match="unknown"):
        paper.replace(sigmaa=0.2)
    toml = tmp_path / "c.toml"
    toml.write_text(
        "[robustness]\nepochs = 3\n[rejection]\nnum-samples = [10, 100]\nsigma = 0.25\n"
    )
    cfg = study_config.load_config("rejection", "quick", toml)
    assert cfg.num_samples == (10, 100) and cfg.sigma == 0.25 and cfg.epochs == quick.epochs
    toml.write_text("sigma = 0.2\nbogus = 1\n")
    with pytest.raises(ValueError, match="bogus"):
        study_config.load_config("rejection", "paper", toml)


def test_config_from_args():
    def parse(flags):
        return build_parser().parse_args(["study", "rejection", *flags])

    args = parse(
        ["--out", "x", "--preset", "quick", "--attributes", "gender,age", "--intersections",
         "gender,age", "--seed", "3", "--max-examples", "40"]
    )  # fmt: skip
    cfg = cli_study.config_from_args(args)
    assert cfg.attributes == ("gender", "age") and cfg.certify
    flags = ["--out", "x", "--num-samples", "10,1000", "--noise", "laplace", "--no-certify"]
    want = study_config.preset("rejection", "quick").replace(
        num_samples=(10, 1000), noise="laplace", certify=False
    )
    assert cli_study.config_from_args(parse(flags)) == want
    assert cfg.intersections == (("gender", "age"),)
    assert cfg.seed == 3 and cfg.max_examples == 40
    a2 = build_parser().parse_args(["certify", "--checkpoint", "c", "--out", "o.csv"])
    # certify's sigma default (0.1) is filled in by the command, not the shared flag
    assert (a2.certify_sigmas, a2.n0, a2.n, a2.alpha, a2.split) == (None, 100, 10000, 0.001, "test")


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _json(path):
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- end to end

T = 6848  # M5's shortest input (four VALID conv + pool-4 stages)


def _synthetic_dataset():
    """90 sinusoid clips, 3 classes, 2 attributes; split 54 / 12 / 24, speakers of 3 clips."""
    from fairrobust.data.dataset import AudioDataset

    rng = np.random.default_rng(0)
    n = 90
    labels = np.arange(n) % 3
    t = np.arange(T) / 16000.0
    freqs = np.array([300.0, 700.0, 1500.0])[labels]
    phase = rng.uniform(0, 2 * np.pi, size=n)
    waves = 0.5 * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phase[:, None])
    waves = (waves + 0.05 * rng.standard_normal((n, T))).astype(np.float32)
    speakers = np.array([f"s{i // 3}" for i in range(n)])
    splits = np.array(["train"] * 54 + ["val"] * 12 + ["test"] * 24)
    spk = np.arange(n) // 3
    attributes = {
        "gender": np.array(["female", "male"])[spk % 2],
        "accent": np.array(["a", "b", "c"])[(spk // 2) % 3],
    }
    return AudioDataset(
        name="synthetic",
        waveforms=waves,
        labels=labels.astype(np.int32),
        class_names=("low", "mid", "high"),
        speakers=speakers,
        splits=splits,
        attributes=attributes,
        sample_rate=16000,
        paths=np.array([f"clip{i:03d}.wav" for i in range(n)]),
    )


TINY = dict(
    width=4,
    epochs=1,
    batch_size=16,
    num_samples=(10, 100),
    chunk_size=10,
    sample_batch_size=12,
    alpha_step=0.01,
    alpha_min=0.01,
    certify_n0=10,
    certify_n=50,
    radii=(0.0, 0.05, 0.1),
    min_group_size=2,
    bootstrap_resamples=0,  # intervals are tested on hand arrays above
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    ds = _synthetic_dataset()
    cfg = study_config.preset("rejection", "quick").replace(**TINY)
    out = tmp_path_factory.mktemp("rejection")
    res = rj.run_study(ds, cfg, out, progress=False)
    return ds, cfg, out, res


def test_run_study_end_to_end(tiny_run):
    _, _, out, res = tiny_run
    results = out / "results"
    for name, fname in rj.RESULT_FILES.items():
        assert (results / fname).exists(), name
    table = _read_csv(results / "rejection_auc_fpr.csv")
    assert [r["label"] for r in table] == ["RS N=10", "RS N=100", "NR"]
    assert {"overall", "gender=female", "gender=male", "accent=a"} <= set(table[0])
    # N = 10 can never reach p <= 0.002, so AUC_FPR(N=10) >= AUC_FPR(N=100) - noise is
    # not guaranteed per group, but the overall N=10 rate is at least the grid's floor.
    assert float(table[0]["overall"]) >= 0.0
    with np.load(results / "rejection_per_example.npz") as z:
        assert z["pvalues"].shape == (2, 24)
        assert z["nr_scores"].shape == (24, 3)
        assert z["counts"].shape == (2, 24, 3)
        np.testing.assert_array_equal(z["counts"].sum(-1), [[10] * 24, [100] * 24])
        # Every metric can be recomputed from the saved per-example values.
        from fairrobust.groups import all_groups

        groups = all_groups({"gender": z["attr_gender"], "accent": z["attr_accent"]}, min_size=2)
        again = rjt.analyze(
            z["pvalues"], z["nr_stat"], z["thresholds"], groups, num_samples=(10, 100)
        )
    assert again.overall_auc[0] == pytest.approx(float(table[0]["overall"]), abs=1e-6)
    parity = _read_csv(results / "rejection_fpr_parity.csv")
    assert {r["attribute"] for r in parity} == {"accent", "gender"}
    cert = _read_csv(results / "rejection_certify_per_example.csv")
    assert len(cert) == 24 and list(cert[0])[:7] == [
        "index", "path", "label", "prediction", "radius", "correct", "p_a_lower"
    ]  # fmt: skip
    assert _json(results / "rejection_config.json")["config"]["num_samples"] == [10, 100]
    cp = _read_csv(results / "rejection_certified_parity.csv")
    assert {r["attribute"] for r in cp} == {"accent", "gender"}
    assert {float(r["r_lo"]) for r in cp} == {0.0} and {float(r["r_hi"]) for r in cp} == {0.1}
    assert all(0.0 <= float(r["certified_auc"]) <= 1.0 for r in cp)
    assert list(res.summary["certify"]["certified_range"]) == [0.0, 0.1]
    assert _json(results / "rejection_auc_fpr.json")[0]["label"] == "RS N=10"
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "rejection_fpr_parity_vs_n.png" in figures
    assert "rejection_fpr_curves_gender.png" in figures
    assert "rejection_auc_fpr_accent.png" in figures
    assert "rejection_certified_accuracy_gender.png" in figures
    assert all((out / "figures" / f).stat().st_size > 1000 for f in figures)
    assert res.tables["auc_fpr"][2]["label"] == "NR"
    assert 0.0 <= res.summary["nr_accuracy"] <= 1.0


def test_resume_reuses_counts_and_config_change_invalidates(tiny_run, monkeypatch):
    ds, cfg, out, _ = tiny_run
    from fairrobust import smoothing

    before = (out / "results" / "rejection_auc_fpr.csv").read_bytes()

    def fail(*args, **kwargs):
        raise AssertionError("resampled although a matching cache exists")

    from fairrobust.engine import parallel

    monkeypatch.setattr(smoothing, "sample_counts", fail)
    monkeypatch.setattr(parallel, "sample_counts", fail)  # the studies' sampler
    monkeypatch.setattr(smoothing, "certify", fail)
    again = rj.run_study(ds, cfg, out, progress=False)
    assert {"nr", "rs_counts", "certify"} <= set(again.reused)
    assert (out / "results" / "rejection_auc_fpr.csv").read_bytes() == before
    # A change that affects the samples must not reuse them.
    with pytest.raises(AssertionError, match="resampled"):
        rj.run_study(ds, cfg.replace(noise="laplace"), out, progress=False)
    with pytest.raises(AssertionError, match="resampled"):
        rj.run_study(ds, cfg.replace(num_samples=(10, 50)), out, progress=False)


def test_certify_main_writes_csv(tiny_run, tmp_path, monkeypatch):
    ds, _, out, _ = tiny_run
    ckpts = sorted((out / "models").glob("rejection-rs-*"))
    assert ckpts
    monkeypatch.setattr(fairrobust.data, "load_dataset", lambda *_, **__: ds)
    target = tmp_path / "cert.csv"
    args = build_parser().parse_args(
        # Same n0 / n / batch / chunk as the study: the compiled sampler is reused.
        [
            "certify",
            "--checkpoint",
            str(ckpts[0]),
            "--n0",
            "10",
            "--n",
            "50",
            "--batch-size",
            "12",
            "--chunk-size",
            "10",
            "--out",
            str(target),
            "--no-progress",
        ]
    )
    assert cli_certify.main(args) == 0
    rows = _read_csv(target)
    assert len(rows) == 24
    assert list(rows[0]) == [
        "index", "path", "label", "prediction", "radius", "correct", "p_a_lower", "accent",
        "gender", "sigma", "norm", "draws",
    ]  # fmt: skip
    for r in rows:
        assert int(r["prediction"]) >= -1 and float(r["radius"]) >= 0
        assert r["correct"] == str(int(int(r["prediction"]) == int(r["label"])))
        assert (r["sigma"], r["norm"], r["draws"]) == ("0.1", "l2", "50")
    # a sigma sweep under Laplace noise: one row per clip and sigma, L1 radii
    sweep = [*args_list(ckpts[0], target), "--sigma", "0.05,0.2", "--noise", "laplace"]
    assert cli_certify.main(build_parser().parse_args(sweep)) == 0
    rows = _read_csv(target)
    assert len(rows) == 48 and {(r["sigma"], r["norm"]) for r in rows} == {
        ("0.05", "l1"), ("0.2", "l1")
    }  # fmt: skip
    adaptive = [*args_list(ckpts[0], target), "--adaptive", "--n", "400", "--sigma", "0.1"]
    assert cli_certify.main(build_parser().parse_args(adaptive)) == 0
    rows = _read_csv(target)
    assert len(rows) == 24 and {r["draws"] for r in rows} <= {"100", "200", "400"}
    bad = [*args_list(ckpts[0], target), "--noise", "uniform", "--norm", "l2"]
    with pytest.raises(ValueError, match="uniform"):
        cli_certify.main(build_parser().parse_args(bad))


def args_list(ckpt, target):
    """``fairrobust certify`` flags of the tiny run's RS model (the study's draws)."""
    return ["certify", "--checkpoint", str(ckpt), "--n0", "10", "--n", "50", "--batch-size",
            "12", "--chunk-size", "10", "--out", str(target), "--no-progress"]  # fmt: skip


def test_cli_main_with_toml_reuses_the_run(tiny_run, tmp_path, monkeypatch, capsys):
    ds, _, out, _ = tiny_run
    from fairrobust import smoothing

    def fail(*args, **kwargs):
        raise AssertionError("resampled although a matching cache exists")

    monkeypatch.setattr(smoothing, "sample_counts", fail)
    monkeypatch.setattr(fairrobust.data, "load_dataset", lambda *_, **__: ds)
    toml = tmp_path / "tiny.toml"
    lines = [
        f"{k} = {list(v) if isinstance(v, tuple) else v}".replace("'", '"') for k, v in TINY.items()
    ]
    toml.write_text("[rejection]\n" + "\n".join(lines) + "\n")
    args = build_parser().parse_args(
        ["study", "rejection", "--preset", "quick", "--config", str(toml), "--out", str(out),
         "--no-progress"]
    )  # fmt: skip
    assert cli_study.rejection_main(args) == 0
    text = capsys.readouterr().out
    assert "AUC_FPR" in text and "RS N=100" in text and "FPR Parity" in text


@pytest.mark.slow
def test_quick_study_on_bundled_data_tiny(tmp_path):
    """The quick preset on the real bundled clips, shrunk (run with ``-m slow``)."""
    from fairrobust.data import load_bundled

    ds = load_bundled()
    cfg = study_config.preset("rejection", "quick").replace(
        **{**TINY, "max_examples": 30, "num_samples": (10, 100)}
    )
    res = rj.run_study(ds, cfg, tmp_path, progress=False)
    assert res.summary["num_eval"] == 30
    assert [r["label"] for r in res.tables["auc_fpr"]] == ["RS N=10", "RS N=100", "NR"]
    assert {r["attribute"] for r in res.tables["fpr_parity"]} == set(ds.attributes)


def test_certify_sweep_representations_and_certified_parity(tiny_run, tmp_path):
    """A run with a sigma sweep, the Laplace certificate and a log-Mel classifier smoothed
    in its representation and in the waveform: one certification per (model, space,
    sigma) in the tables, the per-example file and the report; Certified Parity per
    certification; an uncertified family is refused before anything is trained."""
    ds, _, tiny_out, _ = tiny_run
    shutil.copytree(tiny_out / "models", tmp_path / "run" / "models")  # same base models
    cfg = study_config.preset("rejection", "quick").replace(
        **{**TINY, "certify_n": 200}, noise="laplace",
        certify_sigmas=(0.05, 0.2),
        representations=("mel",), representation_smoothing="both", sampling_mode="shared_bank",
        certify_adaptive=True,
    )  # fmt: skip
    res = rj.run_study(ds, cfg, tmp_path / "run", progress=False)
    results = tmp_path / "run" / "results"
    acc = _read_csv(results / "rejection_certified_accuracy.csv")
    blocks = {(r["model"], r["space"], r["norm"], float(r["sigma"])) for r in acc}
    assert blocks == {
        (m, sp, "l1", s)
        for m, sp in (
            ("M5 sigma=0.1", "waveform"),
            ("SpecCNN mel", "waveform"),
            ("SpecCNN mel", "mel"),
        )
        for s in (0.05, 0.2)
    }
    per_ex = _read_csv(results / "rejection_certify_per_example.csv")
    # adaptive CERTIFY: looks at 100 and 200 draws, clips settled at 100 stop there
    assert len(per_ex) == 6 * 24 and {r["draws"] for r in per_ex} <= {"100", "200"}
    # the certificate in each row is the Laplace L1 radius of its p_a_lower and sigma
    for r in per_ex[::7]:
        p, sig = float(r["p_a_lower"]), float(r["sigma"])
        lam = sig / np.sqrt(2)
        expect = -lam * np.log(2 * (1 - p)) if p >= 0.5 else 0.0
        assert float(r["radius"]) == pytest.approx(expect, rel=1e-9, abs=1e-12)
    parity = _read_csv(results / "rejection_certified_parity.csv")
    assert {(r["space"], float(r["sigma"])) for r in parity} == {
        (sp, s) for sp in ("waveform", "mel") for s in (0.05, 0.2)
    }
    cert = res.summary["certify"]
    assert cert["norm"] == "l1" and len(cert["certifications"]) == 6 and cert["adaptive"]
    md, _ = write_report(tmp_path / "run", rejection=res)
    text = md.read_text()
    assert "**SpecCNN mel**, smoothed in the mel space, L1 radii" in text
    assert "Certified Parity" in text
    smoothing.register_noise("uncertified-test", lambda k, s, d: jax.random.normal(k, s, d),
                             overwrite=True)  # fmt: skip
    with pytest.raises(ValueError, match="uncertified-test"):
        rj.run_study(ds, cfg.replace(noise="uncertified-test"), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "models").exists()
