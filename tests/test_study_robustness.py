"""Tests of the robustness study: aggregation on hand arrays, config, resume, end to end."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from fairrobust.cli import build_parser
from fairrobust.cli import study as cli_study
from fairrobust.defenses import parse_preprocess
from fairrobust.groups import all_groups, group_masks
from fairrobust.studies import _store
from fairrobust.studies import config as study_config
from fairrobust.studies import robustness as rb
from fairrobust.studies import robustness_tables as rt

# ----------------------------------------------------------------------------- helpers


def _members(codes):
    """Member records from (model, at_eps, noise_std, preprocess) tuples."""
    return [
        {"member_id": f"m{i}", "model": m, "at_eps": a, "noise_std": s, "preprocess": p}
        for i, (m, a, s, p) in enumerate(codes)
    ]


def _hand_case():
    """4 models, 2 attack epsilons, 8 examples; gender f = 0..3, m = 4..7; 10 classes."""
    members = _members(
        [
            ("m5", 0.0, 0.0, "none"),
            ("m5", 0.01, 0.0, "none"),
            ("m5-tricks", 0.0, 0.05, "none"),
            ("m5-tricks", 0.01, 0.05, "none"),
        ]
    )
    # correct[model, eps(0=clean, 0.1, 0.3), example]
    correct = np.zeros((4, 3, 8), bool)
    correct[0, 0] = [1, 1, 1, 1, 1, 1, 1, 1]
    correct[0, 1] = [1, 1, 1, 0, 1, 0, 0, 0]
    correct[0, 2] = [1, 0, 0, 0, 0, 0, 0, 0]
    correct[1, 0] = [1, 1, 1, 1, 1, 1, 1, 0]
    correct[1, 1] = [1, 1, 1, 1, 1, 1, 0, 0]
    correct[1, 2] = [1, 1, 0, 0, 1, 0, 0, 0]
    correct[2, 0] = [1, 1, 1, 1, 1, 1, 1, 1]
    correct[2, 1] = [1, 1, 0, 0, 0, 0, 0, 0]
    correct[2, 2] = [0, 0, 0, 0, 0, 0, 0, 0]
    correct[3, 0] = [1, 1, 1, 0, 1, 1, 1, 1]
    correct[3, 1] = [1, 1, 1, 0, 1, 1, 1, 1]
    correct[3, 2] = [1, 1, 0, 0, 1, 0, 0, 0]
    attrs = {
        "gender": np.array(["f"] * 4 + ["m"] * 4),
        "age": np.array(["20s", "20s", "30s", "30s", "20s", "30s", "unknown", "40s"]),
    }
    return members, correct, (0.1, 0.3), attrs


CFG = study_config.RobustnessConfig(bootstrap_resamples=0, min_group_size=2)


# ----------------------------------------------------------------------------- aggregation


def test_aggregate_hand_values():
    members, correct, eps, attrs = _hand_case()
    groups = all_groups(attrs, ["gender", "age"], min_size=2)
    agg = rt.aggregate(members, correct, eps, groups, num_classes=10, config=CFG)
    t = agg["tables"]
    # per-model table: clean accuracy and AUC over all examples against numpy.trapezoid
    for i, row in enumerate(t["models"]):
        acc = correct[i].mean(axis=1)
        assert row["clean_accuracy"] == pytest.approx(acc[0])
        assert row["auc_acc"] == pytest.approx(np.trapezoid(acc[1:], eps))
        assert row["auc_acc_normalized"] == pytest.approx(np.trapezoid(acc[1:], eps) / 0.2)
        assert row["acc@0.1"] == pytest.approx(acc[1])
        assert row["acc@0.3"] == pytest.approx(acc[2])
        assert row["excluded"] is False
    # group AUC by hand: model 0, gender f: acc (0.75, 0.25) -> 0.2 * 0.5 = 0.1
    gm = {(r["member_id"], r["attribute"], r["group"]): r for r in t["group_metrics"]}
    assert gm[("m0", "gender", "f")]["auc_acc"] == pytest.approx(0.2 * (0.75 + 0.25) / 2)
    assert gm[("m0", "gender", "m")]["auc_acc"] == pytest.approx(0.2 * (0.25 + 0.0) / 2)
    assert gm[("m3", "gender", "f")]["clean_accuracy"] == pytest.approx(0.75)
    # Defense Parity by hand: max - min over valid groups
    dp = {(r["member_id"], r["attribute"]): r for r in t["defense_parity"]}
    assert dp[("m0", "gender")]["defense_parity"] == pytest.approx(0.1 - 0.025)
    assert dp[("m0", "gender")]["best_group"] == "f"
    assert dp[("m0", "gender")]["worst_group"] == "m"
    assert dp[("m0", "gender")]["clean_accuracy_gap"] == pytest.approx(0.0)
    # age: unknown dropped, 40s has 1 example (< min size 2): reported, ignored in DP
    age_groups = {r["group"]: r for r in t["groups"] if r["attribute"] == "age"}
    assert set(age_groups) == {"20s", "30s", "40s"}
    assert age_groups["40s"]["valid"] is False and age_groups["40s"]["n_test"] == 1
    assert dp[("m1", "age")]["ignored_groups"] == ["40s"]
    a20 = np.trapezoid([1.0, 2 / 3], eps)  # m1, 20s = examples 0, 1, 4
    a30 = np.trapezoid([2 / 3, 0.0], eps)  # m1, 30s = examples 2, 3, 5
    assert dp[("m1", "age")]["defense_parity"] == pytest.approx(a20 - a30)
    # curves: clean first, long format
    curves = [r for r in t["group_curves"] if r["member_id"] == "m0" and r["group"] == "f"]
    assert [r["epsilon"] for r in curves] == [0.0, 0.1, 0.3]
    assert [r["accuracy"] for r in curves] == pytest.approx([1.0, 0.75, 0.25])


def test_correlations_match_scipy():
    members, correct, eps, attrs = _hand_case()
    groups = {"gender": group_masks(attrs, "gender", min_size=2)}
    agg = rt.aggregate(members, correct, eps, groups, num_classes=10, config=CFG)
    dp = np.array([r["defense_parity"] for r in agg["tables"]["defense_parity"]])
    rows = {(r["outcome"], r["group"], r["intervention"]): r for r in agg["tables"]["correlations"]}
    for name, code in [
        ("AT", [0, 1, 0, 1]),
        ("Tricks", [0, 0, 1, 1]),
        ("Noise std", [0, 0, 0.05, 0.05]),
    ]:
        ref = scipy.stats.pearsonr(np.asarray(code, float), dp)
        row = rows[("defense_parity", "", name)]
        assert row["r"] == pytest.approx(ref.statistic, abs=1e-5)
        assert row["p"] == pytest.approx(ref.pvalue, abs=1e-4)
        assert row["n_models"] == 4
    auc_f = np.array([r["auc_acc"] for r in agg["tables"]["group_metrics"] if r["group"] == "f"])
    ref = scipy.stats.pearsonr([0.0, 0.01, 0.0, 0.01], auc_f)
    assert rows[("group_auc_acc", "f", "AT budget")]["r"] == pytest.approx(ref.statistic, abs=1e-5)
    # only "none" preprocessing: the Preprocess code is constant -> NaN with a reason
    pre = rows[("defense_parity", "", "Preprocess")]
    assert np.isnan(pre["r"]) and pre["note"] == "intervention constant across models"


def test_random_guess_filter_constructed_accuracies():
    n, c = 200, 5  # chance 0.2
    k = np.array([40, 45, 52, 60, 150, 10])
    p, excluded = rt.random_guess_test(k, n, c, 0.05)
    ref = [scipy.stats.binomtest(int(ki), n, 0.2, alternative="greater").pvalue for ki in k]
    np.testing.assert_allclose(p, ref)
    # 40/200 = chance, 45/200 slightly above (not significant), 10/200 below chance
    assert excluded.tolist() == [True, True, False, False, False, True]
    with pytest.raises(ValueError, match="num_classes"):
        rt.random_guess_test(k, n, 1)
    with pytest.raises(ValueError, match="n_correct"):
        rt.random_guess_test(np.array([201]), n, 5)


def test_excluded_models_left_out_of_correlations():
    members, correct, eps, attrs = _hand_case()
    correct = np.concatenate([correct, np.zeros((1, 3, 8), bool)])  # a model at 0 accuracy
    members = [*members, *_members([("m5", 0.1, 0.1, "none")])]
    members[-1]["member_id"] = "dead"
    groups = {"gender": group_masks(attrs, "gender", min_size=2)}
    agg = rt.aggregate(members, correct, eps, groups, num_classes=10, config=CFG)
    models = {r["member_id"]: r for r in agg["tables"]["models"]}
    assert models["dead"]["excluded"] is True
    assert not any(models[f"m{i}"]["excluded"] for i in range(4))
    assert {r["n_models"] for r in agg["tables"]["correlations"]} == {4}


def test_tiny_and_empty_groups():
    members, correct, eps, attrs = _hand_case()
    attrs = {**attrs, "accent": np.array(["unknown"] * 8), "dialect": np.array(["a"] * 7 + ["b"])}
    groups = all_groups(attrs, ["accent", "dialect"], min_size=2)
    agg = rt.aggregate(members, correct, eps, groups, num_classes=10, config=CFG)
    dp = {(r["member_id"], r["attribute"]): r for r in agg["tables"]["defense_parity"]}
    assert np.isnan(dp[("m0", "accent")]["defense_parity"])
    assert dp[("m0", "accent")]["note"] == "no groups (all unknown)"
    assert np.isnan(dp[("m0", "dialect")]["defense_parity"])
    assert "fewer than 2 groups" in dp[("m0", "dialect")]["note"]
    corr = [r for r in agg["tables"]["correlations"] if r["outcome"] == "defense_parity"]
    assert all(np.isnan(r["r"]) for r in corr)
    assert "accent" not in agg["matrices"]


def test_aggregate_bootstrap_intervals_bracket_estimates():
    members, correct, eps, attrs = _hand_case()
    groups = {"gender": group_masks(attrs, "gender", min_size=2)}
    cfg = dataclasses.replace(CFG, bootstrap_resamples=50)
    speakers = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])
    agg = rt.aggregate(members, correct, eps, groups, num_classes=10, config=cfg, speakers=speakers)
    for r in agg["tables"]["group_metrics"]:
        assert r["auc_acc_ci_low"] - 1e-6 <= r["auc_acc_ci_high"]
        assert 0.0 <= r["clean_accuracy_ci_low"] <= r["clean_accuracy_ci_high"] <= 1.0
    for r in agg["tables"]["defense_parity"]:
        assert "defense_parity_ci_low" in r and "clean_accuracy_gap_ci_high" in r


def test_aggregate_shape_error():
    members, correct, eps, _ = _hand_case()
    with pytest.raises(ValueError, match="correct: expected shape"):
        rt.aggregate(members, correct[:, :2], eps, {}, num_classes=10, config=CFG)


def test_intervention_codes():
    members = _members(
        [
            ("m5", 0.0, 0.0, "none"),
            ("m5-tricks", 0.01, 0.05, "quantize:bits=8"),
            ("m5", 0.1, 0.0, "lowpass:cutoff_hz=4000"),
        ]
    )
    codes = rt.intervention_codes(members)
    assert codes["binary"]["AT"].tolist() == [0, 1, 1]
    assert codes["binary"]["Tricks"].tolist() == [0, 1, 0]
    assert codes["binary"]["Noise"].tolist() == [0, 1, 0]
    assert codes["binary"]["Preprocess"].tolist() == [0, 1, 1]
    assert codes["binary"]["Preprocess: quantize:bits=8"].tolist() == [0, 1, 0]
    assert codes["level"]["AT budget"].tolist() == [0.0, 0.01, 0.1]


# ----------------------------------------------------------------------------- config


def test_presets_and_paper_grid():
    paper = study_config.preset("robustness", "paper")
    assert paper.num_models == 40
    assert paper.attack_eps == (0.0001, 0.001, 0.01, 0.1, 0.2, 0.3)
    assert paper.attack_steps == 100 and paper.attack_rel_step == pytest.approx(0.2)
    assert study_config.preset("robustness", "quick").num_models == 8
    with pytest.raises(ValueError, match="preset"):
        study_config.preset("robustness", "huge")
    members = rb.plan_members(paper, "fp")
    assert len(members) == 40 and len({m.member_id for m in members}) == 40


def test_config_validation_names_field():
    with pytest.raises(ValueError, match=r"RobustnessConfig\.models"):
        study_config.RobustnessConfig(models=("resnet",))
    with pytest.raises(ValueError, match=r"RobustnessConfig\.attack_eps"):
        study_config.RobustnessConfig(attack_eps=(0.1, 0.01))
    # one budget: AUC_acc has nothing to integrate over (refused before any training)
    with pytest.raises(ValueError, match=r"attack_eps: expected .*at least two budgets"):
        study_config.RobustnessConfig(attack_eps=(0.1,))
    with pytest.raises(ValueError, match="preprocess 'blur'"):
        study_config.RobustnessConfig(preprocess=("blur",))
    with pytest.raises(ValueError, match="preprocess 'quantize:bits=99'"):
        study_config.RobustnessConfig(preprocess=("quantize:bits=99",))


def test_parse_preprocess():
    pre = parse_preprocess("quantize:bits=6")
    assert pre.name == "quantize" and pre.kwargs == {"bits": 6} and pre.gradient == "bpda"
    low = parse_preprocess("lowpass:cutoff_hz=2000,gradient=exact", sample_rate=8000)
    assert low.kwargs["sample_rate"] == 8000.0 and low.gradient == "exact"
    with pytest.raises(ValueError, match="key=value"):
        parse_preprocess("quantize:bits")


def test_toml_override(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        "[robustness]\nat_eps = [0, 0.01]\npreprocess = ['none', 'quantize:bits=8']\n"
        "epochs = 3\nattributes = ['gender']\n"
    )
    cfg = study_config.load_config("robustness", "quick", path, {"seed": 7})
    assert cfg.at_eps == (0.0, 0.01) and isinstance(cfg.at_eps[0], float)
    assert cfg.preprocess == ("none", "quantize:bits=8")
    assert cfg.epochs == 3 and cfg.attributes == ("gender",) and cfg.seed == 7
    assert (
        cfg.attack_steps == study_config.preset("robustness", "quick").attack_steps
    )  # untouched fields kept
    path.write_text("epohcs = 3\n")
    with pytest.raises(ValueError, match="epohcs: unknown field"):
        study_config.load_config("robustness", "quick", path)
    path.write_text("epochs = 'ten'\n")
    with pytest.raises(ValueError, match=r"grid\.toml: epochs: expected an integer"):
        study_config.load_config("robustness", "quick", path)
    path.write_text("epochs = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        study_config.load_config("robustness", "quick", path)
    with pytest.raises(FileNotFoundError):
        study_config.load_config("robustness", "quick", tmp_path / "missing.toml")


def test_cli_arguments_override_preset(tmp_path):
    args = build_parser().parse_args(
        [
            "study",
            "robustness",
            "--preset",
            "quick",
            "--out",
            str(tmp_path),
            "--at-eps",
            "0,0.005",
            "--preprocess",
            "none,quantize:bits=8",
            "--epochs",
            "2",
        ]
    )
    assert args.dataset == "bundled" and args.epochs == 2
    cfg = cli_study.config_from_args(args)
    assert cfg.at_eps == (0.0, 0.005) and cfg.preprocess == ("none", "quantize:bits=8")
    assert cfg.epochs == 2


def test_member_ids_track_what_results_depend_on():
    cfg = study_config.preset("robustness", "quick")
    base = {m.member_id: m for m in rb.plan_members(cfg, "fp")}
    more_steps = {
        m.member_id: m for m in rb.plan_members(dataclasses.replace(cfg, attack_steps=20), "fp")
    }
    longer = {m.member_id: m for m in rb.plan_members(dataclasses.replace(cfg, epochs=9), "fp")}
    other_data = {m.member_id: m for m in rb.plan_members(cfg, "fp2")}
    for mid, m in base.items():
        assert more_steps[mid].train_id == m.train_id  # same checkpoint reused
        assert more_steps[mid].eval_hash != m.eval_hash  # but re-attacked
        assert longer[mid].train_id != m.train_id
        assert other_data[mid].train_id != m.train_id
    # attributes / bootstrap change only the analysis, never a member
    same = rb.plan_members(
        dataclasses.replace(cfg, attributes=("gender",), bootstrap_resamples=0), "fp"
    )
    assert [m.eval_hash for m in same] == [m.eval_hash for m in base.values()]


# ----------------------------------------------------------------------------- _store


def test_expand_grid_order():
    grid = _store.expand_grid({"a": [1, 2], "b": ["x", "y", "x"]})
    assert grid == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    with pytest.raises(ValueError, match="grid axis 'b'"):
        _store.expand_grid({"a": [1], "b": []})


def test_save_load_member_checks_spec_and_checksum(tmp_path, caplog):
    arrays = {"correct": np.eye(3, dtype=bool)}
    _store.save_member(tmp_path, "mem", spec_hash="h1", meta={"x": 1}, arrays=arrays)
    meta, got = _store.load_member(tmp_path, "mem", spec_hash="h1")
    assert meta["x"] == 1 and np.array_equal(got["correct"], arrays["correct"])
    assert _store.load_member(tmp_path, "absent", spec_hash="h1") is None
    with caplog.at_level(logging.WARNING, logger="fairrobust.studies"):
        assert _store.load_member(tmp_path, "mem", spec_hash="h2") is None
    assert "not reusing it" in caplog.text
    np.savez(tmp_path / "mem.npz", correct=np.zeros((3, 3), bool))  # tampered arrays
    assert _store.load_member(tmp_path, "mem", spec_hash="h1") is None


def test_write_table_csv_and_json(tmp_path):
    rows = [{"a": 1, "b": 0.1, "c": [1, 2]}, {"a": 2, "b": float("nan"), "d": True}]
    csv_path, json_path = _store.write_table(tmp_path / "t", rows)
    assert csv_path.read_text() == "a,b,c,d\n1,0.1,1;2,\n2,,,true\n"
    import json

    assert json.loads(json_path.read_text()) == [
        {"a": 1, "b": 0.1, "c": [1, 2], "d": None},
        {"a": 2, "b": None, "c": None, "d": True},
    ]


def test_check_config_change(tmp_path):
    path = tmp_path / "config.json"
    assert _store.check_config_change(path, "abc") is None
    path.write_text('{"config_hash": "abc"}')
    assert _store.check_config_change(path, "abc") is None
    assert "changed" in _store.check_config_change(path, "def")


def test_seeded_subset_is_numpys_choice_sorted():
    idx = np.arange(5, 205, 2)  # sorted candidates, as a split's indices
    for cap in (0, None, idx.size, idx.size + 3):
        np.testing.assert_array_equal(_store.seeded_subset(idx, cap, 3), idx)  # all kept
    # oracle: numpy's generator used directly, as the three former copies did
    want = np.sort(np.random.default_rng([3, 0x7E57]).choice(idx, 10, replace=False))
    np.testing.assert_array_equal(_store.seeded_subset(idx, 10, 3, 0x7E57), want)
    want = np.sort(np.random.default_rng(3).choice(idx, size=10, replace=False))
    np.testing.assert_array_equal(_store.seeded_subset(idx, 10, 3), want)
    want = np.sort(np.random.default_rng([3, 0x5E0]).choice(40, size=7, replace=False))
    np.testing.assert_array_equal(_store.seeded_subset(np.arange(40), 7, 3, 0x5E0), want)
    got = _store.seeded_subset(idx, 10, 3, 0x7E57)
    assert got.size == 10 and np.all(np.diff(got) > 0) and np.isin(got, idx).all()
    with pytest.raises(ValueError, match="indices"):
        _store.seeded_subset(np.zeros((2, 2)), 1, 0)
    with pytest.raises(ValueError, match="cap"):
        _store.seeded_subset(idx, -1, 0)


def test_select_test_uses_the_salted_subset():
    ds = synthetic_dataset()
    cfg = dataclasses.replace(study_config.preset("robustness", "quick"), max_examples=5, seed=4)
    test = np.flatnonzero(ds.splits == "test")
    want = _store.seeded_subset(test, 5, 4, rb.TEST_SUBSET_SALT)
    np.testing.assert_array_equal(rb.select_test(ds, cfg), want)
    np.testing.assert_array_equal(
        rb.select_test(ds, dataclasses.replace(cfg, max_examples=0)), test
    )


def test_cached_batches_resumes_then_reuses(tmp_path):
    calls, fail = [], {"at": 3}

    def fn(rows):
        calls.append(rows.tolist())
        if len(calls) == fail["at"]:
            raise KeyboardInterrupt("killed mid-way")
        return {"sq": rows**2, "pair": np.stack([rows, -rows], 1)}

    path = tmp_path / "c.npz"
    run = dict(resume=True, progress=False)
    with pytest.raises(KeyboardInterrupt):
        _store.cached_batches(path, "k", 10, 3, fn, **run)
    assert (tmp_path / "c.partial.npz").exists() and not path.exists()
    calls.clear()
    fail["at"] = -1
    out, reused = _store.cached_batches(path, "k", 10, 3, fn, **run)
    assert not reused and calls == [[6, 7, 8], [9]]  # the first two batches were kept
    np.testing.assert_array_equal(out["sq"], np.arange(10) ** 2)
    assert out["pair"].shape == (10, 2) and not (tmp_path / "c.partial.npz").exists()
    calls.clear()
    again, reused = _store.cached_batches(path, "k", 10, 3, fn, **run)
    assert reused and calls == [] and np.array_equal(again["pair"], out["pair"])
    _, reused = _store.cached_batches(path, "other-key", 10, 3, fn, **run)
    assert not reused and len(calls) == 4  # inputs changed: recomputed
    calls.clear()
    _store.cached_batches(path, "other-key", 10, 3, fn, resume=False, progress=False)
    assert len(calls) == 4


def test_train_or_load_reads_a_finished_run_back(tmp_path, monkeypatch):
    import jax

    from fairrobust.train import TrainConfig

    ds = synthetic_dataset(n_per_class=12, length=8000)
    tc = TrainConfig(model="m5", width=4, epochs=1, batch_size=16)
    first = _store.train_or_load(ds, tc, tmp_path / "m", resume=True, progress=False)
    assert first.info["best_epoch"] == 1 and first.info["epochs"] == 1
    assert {"val_loss", "val_acc", "train_acc"} <= set(first.info)

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a finished checkpoint exists")

    monkeypatch.setattr(_store, "train", no_training)
    again = _store.train_or_load(ds, tc, tmp_path / "m", resume=True, progress=False)
    assert again.info == first.info and again.apply_fn is first.apply_fn
    leaves = zip(*map(jax.tree_util.tree_leaves, (first.variables, again.variables)), strict=True)
    assert all(np.array_equal(a, b) for a, b in leaves)
    with pytest.raises(AssertionError, match="trained"):  # resume=False always trains
        _store.train_or_load(ds, tc, tmp_path / "m", resume=False, progress=False)
    with pytest.raises(AssertionError, match="trained"):  # more epochs: train() resumes
        _store.train_or_load(
            ds, dataclasses.replace(tc, epochs=2), tmp_path / "m", resume=True, progress=False
        )


def test_sweep_epsilons_is_the_one_place_of_the_clean_pass():
    assert rt.sweep_epsilons((0.01, 0.1)) == (0.0, 0.01, 0.1)
    correct = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # [models, 1 + e, n]
    np.testing.assert_array_equal(rt.clean_part(correct), correct[:, 0])
    np.testing.assert_array_equal(rt.attacked_part(correct), correct[:, 1:])
    spec = rb.plan_members(study_config.preset("robustness", "quick"), "fp")[0]
    assert spec.epsilons == rt.sweep_epsilons(study_config.preset("robustness", "quick").attack_eps)
    assert spec.eval_spec["attack"]["epsilons"] == list(spec.epsilons)


# ----------------------------------------------------------------------------- driver


def synthetic_dataset(n_per_class: int = 24, num_classes: int = 3, length: int = 1600, seed=0):
    """Sinusoid clips (one frequency per class) with gender / age attributes and speakers."""
    from fairrobust.data.dataset import AudioDataset

    rng = np.random.default_rng(seed)
    sr = 8000
    t = np.arange(length) / sr
    waves, labels, speakers = [], [], []
    for c in range(num_classes):
        for i in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            x = 0.5 * np.sin(2 * np.pi * (300 + 400 * c) * t + phase)
            waves.append(x + 0.05 * rng.standard_normal(length))
            labels.append(c)
            speakers.append(f"s{i % 8}")
    n = len(labels)
    speakers = np.asarray(speakers)
    spk_num = np.asarray([int(s[1:]) for s in speakers])
    order = rng.permutation(n)
    splits = np.empty(n, dtype="<U5")
    splits[order[: n // 2]] = "train"
    splits[order[n // 2 : (7 * n) // 10]] = "val"
    splits[order[(7 * n) // 10 :]] = "test"
    return AudioDataset(
        name="synthetic",
        waveforms=np.clip(np.asarray(waves, np.float32), -1, 1),
        labels=np.asarray(labels, np.int32),
        class_names=tuple(f"c{c}" for c in range(num_classes)),
        speakers=speakers,
        splits=splits,
        attributes={
            "gender": np.where(spk_num % 2 == 0, "female", "male"),
            "age": np.asarray(["20s", "30s", "40s", "unknown"])[spk_num % 4],
        },
        sample_rate=sr,
        paths=np.asarray([f"clip{i}.wav" for i in range(n)]),
    )


class _FakeModules:
    """Stand-ins for training and attacking: deterministic, fast, count their calls."""

    def __init__(self):
        self.trained: list[str] = []
        self.attacked: list[str] = []

    def train(self, dataset, configs, folders, *, resume, progress, runtime=None):
        out = []
        for folder in folders:
            train_id = Path(folder).name
            self.trained.append(train_id)
            out.append(_store.TrainedModel(None, {"train_id": train_id}, None, {"best_epoch": 1}))
        return out

    def attack_members(self, trained, specs, x, y, config, *, sample_rate, runtime=None):
        return [
            self.attack(t, s, x, y, config, sample_rate=sample_rate)
            for t, s in zip(trained, specs, strict=True)
        ]

    def attack(self, trained, spec, x, y, config, *, sample_rate, runtime=None):
        self.attacked.append(spec.member_id)
        seed = int(spec.eval_hash[:8], 16)
        rng = np.random.default_rng(seed)
        n = x.shape[0]
        eps = np.asarray(spec.epsilons)
        assert spec.epsilons == (0.0, *config.attack_eps)  # the clean pass comes first
        base = 0.95 - 10 * spec.at_eps - 2 * spec.noise_std
        p = base * np.exp(-eps / (0.02 + spec.at_eps))[:, None]
        correct = rng.random((eps.size, n)) < p
        # a wrong class of synthetic_dataset's 3 (the fairness table's input)
        wrong = (np.asarray(y)[None] + 1 + rng.integers(0, 2, correct.shape)) % 3
        pred = np.where(correct, np.asarray(y)[None], wrong).astype(np.int32)
        return correct, pred, parse_preprocess(spec.preprocess, sample_rate)


@pytest.fixture
def fake(monkeypatch):
    f = _FakeModules()
    monkeypatch.setattr(rb, "train_models", f.train)
    monkeypatch.setattr(rb, "attack_members", f.attack_members)
    return f


FAKE_CFG = dataclasses.replace(
    study_config.preset("robustness", "quick"),
    at_eps=(0.0, 0.01),
    noise_std=(0.0, 0.05),
    preprocess=("none", "quantize:bits=8"),
    attack_eps=(0.001, 0.01, 0.1),
    min_group_size=3,
    bootstrap_resamples=0,
)


def _results_bytes(out):
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "results").glob("*"))
    }


def test_run_study_with_stubs_writes_every_table(tmp_path, fake):
    ds = synthetic_dataset()
    res = rb.run_study(ds, FAKE_CFG, tmp_path, progress=False)
    assert len(res.members) == 16 and len(fake.trained) == 8 and len(fake.attacked) == 16
    names = {"models", "groups", "group_metrics", "group_curves", "defense_parity", "correlations"}
    for name in names | {"breaking_eps"}:
        assert res.files[f"{name}_csv"].exists() and res.files[f"{name}_json"].exists()
    assert res.files["summary"].name == "robustness_synthetic_summary.json"
    # robustness bias (values checked against loops in tests/test_certified_parity.py)
    be = res.tables["breaking_eps"]
    assert len(be) == len(res.members) * sum(len(g["names"]) for g in res.groups.values())
    for row in be:
        assert row["eps_max"] == FAKE_CFG.attack_eps[-1] and 0.0 <= row["never_broken"] <= 1.0
        assert (row["median_breaking_eps"] is None) == row["median_never_broken"]
    assert {"breaking_eps_gender", "breaking_eps_age"} <= set(res.figures)
    models = res.tables["models"]
    assert [r["member_id"] for r in models][:2] == [
        "m5_at0_noise0",
        "m5_at0_noise0+quantize-bits=8",
    ]
    q = [r for r in models if r["preprocess"] == "quantize:bits=8"]
    assert all(r["bpda"] and "BPDA" in r["preprocess_description"] for r in q)
    corr = {r["intervention"] for r in res.tables["correlations"]}
    assert {"AT", "Tricks", "Noise", "Preprocess", "AT budget", "Noise std"} <= corr
    for path in res.figures.values():
        assert path.read_bytes().startswith(b"\x89PNG")
    assert {"corr_binary_dp", "corr_levels_dp", "auc_gender", "auc_age"} <= set(res.figures)
    # member files: correctness [1 + n_eps, n_test] plus metadata
    m0 = res.members[0]
    with np.load(m0.npz_path) as z:
        assert z["correct"].shape == (4, len(res.test_index))
    meta = __import__("json").loads(m0.json_path.read_text())
    assert meta["study_config_hash"] == res.config_hash
    assert meta["data_fingerprint"] == ds.fingerprint()
    assert meta["eval_spec"]["train_spec"]["train_config"]["model"] == "m5"


def test_resume_after_crash_gives_identical_results(tmp_path, fake, monkeypatch):
    ds = synthetic_dataset()
    fresh = rb.run_study(ds, FAKE_CFG, tmp_path / "fresh", progress=False, make_figures=False)

    real_save = rb.save_member
    calls = {"n": 0}

    def crashing_save(*args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash between members")
        calls["n"] += 1
        return real_save(*args, **kwargs)

    monkeypatch.setattr(rb, "save_member", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        rb.run_study(ds, FAKE_CFG, tmp_path / "crash", progress=False, make_figures=False)
    monkeypatch.setattr(rb, "save_member", real_save)
    fake.attacked.clear()
    resumed = rb.run_study(ds, FAKE_CFG, tmp_path / "crash", progress=False, make_figures=False)
    assert len(fake.attacked) == 16 - 3  # finished members were not recomputed
    assert sum(m.reused for m in resumed.members) == 3
    assert _results_bytes(tmp_path / "crash") == _results_bytes(tmp_path / "fresh")
    assert [r["auc_acc"] for r in resumed.tables["models"]] == [
        r["auc_acc"] for r in fresh.tables["models"]
    ]
    # a complete rerun recomputes nothing
    fake.attacked.clear()
    fake.trained.clear()
    rb.run_study(ds, FAKE_CFG, tmp_path / "crash", progress=False, make_figures=False)
    assert fake.attacked == [] and fake.trained == []


def test_config_change_never_reuses_stale_members(tmp_path, fake, caplog):
    ds = synthetic_dataset()
    rb.run_study(ds, FAKE_CFG, tmp_path, progress=False, make_figures=False)
    fake.attacked.clear()
    fake.trained.clear()
    changed = dataclasses.replace(FAKE_CFG, attack_steps=FAKE_CFG.attack_steps + 1)
    with caplog.at_level(logging.WARNING, logger="fairrobust.studies"):
        res = rb.run_study(ds, changed, tmp_path, progress=False, make_figures=False)
    assert "config changed" in caplog.text
    assert len(fake.attacked) == 16 and not any(m.reused for m in res.members)
    summary = __import__("json").loads(res.files["summary"].read_text())
    assert summary["config"]["attack_steps"] == FAKE_CFG.attack_steps + 1
    # analysis-only change: members reused, tables rewritten
    fake.attacked.clear()
    res2 = rb.run_study(
        ds,
        dataclasses.replace(changed, attributes=("gender",)),
        tmp_path,
        progress=False,
        make_figures=False,
    )
    assert fake.attacked == [] and {r["attribute"] for r in res2.tables["groups"]} == {"gender"}
    # no resume: everything recomputed
    rb.run_study(ds, changed, tmp_path, resume=False, progress=False, make_figures=False)
    assert len(fake.attacked) == 16


def test_run_study_rejects_unknown_attribute(tmp_path, fake):
    cfg = dataclasses.replace(FAKE_CFG, attributes=("accent",))
    with pytest.raises(ValueError, match="'accent'"):
        rb.run_study(synthetic_dataset(), cfg, tmp_path, progress=False, make_figures=False)


def test_intersections_all_pairs(tmp_path, fake):
    cfg = dataclasses.replace(FAKE_CFG, intersections=("all-pairs",), preprocess=("none",))
    res = rb.run_study(synthetic_dataset(), cfg, tmp_path, progress=False, make_figures=False)
    attrs = {r["attribute"] for r in res.tables["defense_parity"]}
    assert attrs == {"age", "gender", "age x gender"}


# ----------------------------------------------------------------------------- end to end


TINY = dataclasses.replace(
    study_config.preset("robustness", "quick"),
    models=("m5",),
    at_eps=(0.0,),
    noise_std=(0.0,),
    attack_eps=(0.01, 0.1),
    attack_steps=2,
    epochs=1,
    width=4,
    batch_size=16,
    at_steps=2,
    min_group_size=2,
    max_examples=16,
    bootstrap_resamples=0,
)


def test_run_study_end_to_end_tiny(tmp_path):
    """Real training and attacks at tiny scale; a rerun reuses everything, identically."""
    ds = synthetic_dataset(n_per_class=12, length=8000)
    res = rb.run_study(ds, TINY, tmp_path, progress=False, make_figures=False)
    n_test = int((ds.splits == "test").sum())
    assert len(res.members) == 1 and len(res.test_index) == min(16, n_test)
    for m in res.members:
        assert m.correct.shape == (3, len(res.test_index)) and m.correct.dtype == bool
        assert m.spec.train_id and (tmp_path / "models" / m.spec.train_id / "best.ckpt").exists()
    row = res.tables["models"][0]
    assert 0.0 <= row["clean_accuracy"] <= 1.0 and row["auc_acc"] <= 0.09 + 1e-9
    before = _results_bytes(tmp_path)
    again = rb.run_study(ds, TINY, tmp_path, progress=False, make_figures=False)
    assert all(m.reused for m in again.members)
    assert _results_bytes(tmp_path) == before


@pytest.mark.slow
def test_run_study_end_to_end_with_preprocess_and_figures(tmp_path):
    ds = synthetic_dataset(n_per_class=24, length=8000)
    cfg = dataclasses.replace(
        TINY,
        epochs=3,
        noise_std=(0.0, 0.05),
        preprocess=("none", "quantize:bits=8"),
        bootstrap_resamples=50,
        max_examples=0,
    )
    res = rb.run_study(ds, cfg, tmp_path, progress=False)
    grid = (cfg.models, cfg.at_eps, cfg.noise_std, cfg.preprocess)
    assert len(res.members) == np.prod([len(a) for a in grid]) == 4 and res.figures
    again = rb.run_study(ds, cfg, tmp_path / "second", progress=False)
    assert _results_bytes(tmp_path / "second") == _results_bytes(tmp_path)
    assert [r["auc_acc"] for r in again.tables["models"]] == [
        r["auc_acc"] for r in res.tables["models"]
    ]


def test_normalized_auc_acc_and_defense_parity():
    """``*_normalized`` = the raw integral / (eps_max - eps_min): mean accuracy over the budgets,
    with intervals scaled by the same constant (hand values: trapezoid over 2 points)."""
    members, correct, eps, attrs = _hand_case()
    groups = all_groups(attrs, ["gender"], min_size=2)
    cfg = study_config.RobustnessConfig(bootstrap_resamples=20, min_group_size=2)
    t = rt.aggregate(members, correct, eps, groups, num_classes=10, config=cfg)["tables"]
    gm = {(r["member_id"], r["group"]): r for r in t["group_metrics"]}
    # m0, f: accuracy 0.75 at eps 0.1 and 0.25 at 0.3 -> mean over the range 0.5
    assert gm[("m0", "f")]["auc_acc_normalized"] == pytest.approx(0.5)
    assert gm[("m0", "m")]["auc_acc_normalized"] == pytest.approx(0.125)
    for r in t["group_metrics"]:
        assert 0.0 <= r["auc_acc_normalized"] <= 1.0
        for k in ("", "_ci_low", "_ci_high"):
            assert r[f"auc_acc_normalized{k}"] == pytest.approx(r[f"auc_acc{k}"] / 0.2)
    dp = {r["member_id"]: r for r in t["defense_parity"]}
    assert dp["m0"]["defense_parity_normalized"] == pytest.approx(0.5 - 0.125)
    for r in t["defense_parity"]:
        for k in ("", "_ci_low", "_ci_high"):
            assert r[f"defense_parity_normalized{k}"] == pytest.approx(
                r[f"defense_parity{k}"] / 0.2
            )
    assert t["comparisons"]
    for r in t["comparisons"]:
        for k in ("value", "difference", "ci_low", "ci_high"):
            assert r[f"{k}_normalized"] == pytest.approx(r[k] / 0.2)


def test_run_study_fairness_table_matches_fairlearn_on_member_predictions(tmp_path, fake):
    fm = pytest.importorskip("fairlearn.metrics")
    ds = synthetic_dataset()
    cfg = dataclasses.replace(FAKE_CFG, preprocess=("none",), bootstrap_resamples=20)
    res = rb.run_study(ds, cfg, tmp_path, progress=False, make_figures=False)
    rows = res.tables["fairness"]
    assert res.files["fairness_csv"].name == "robustness_synthetic_fairness.csv"
    assert len(rows) == len(res.members) * 2 * (1 + len(cfg.attack_eps)) * 4
    assert {r["role"] for r in rows} >= {"baseline"}
    y = ds.labels[res.test_index]
    sens = np.asarray(ds.attributes["gender"])[res.test_index]
    by_id = {m.spec.member_id: m for m in res.members}
    for r in rows:
        if r["attribute"] != "gender" or r["metric"] != "demographic_parity_difference":
            continue
        j = 0 if r["condition"] == "clean" else 1 + list(cfg.attack_eps).index(r["condition_value"])
        pred = by_id[r["member"]].pred[j]
        ref = np.mean(
            [
                fm.demographic_parity_difference(y == c, pred == c, sensitive_features=sens)
                for c in range(3)
                if (pred == c).any()
            ]
        )
        np.testing.assert_allclose(r["value"], ref, rtol=1e-5)
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
