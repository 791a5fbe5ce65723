"""Tests of the report and of the run summary it renders: number formatting, findings wording
on hand-built results, the soundness section, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from report_checks import check_short_report

from fairrobust import report
from fairrobust.report.html import markdown_to_html
from fairrobust.studies import intervals, results, summary


def test_fmt_and_fmt_ci():
    assert intervals.fmt(None) == "n/a" and intervals.fmt(float("nan")) == "n/a"
    assert intervals.fmt(0.0) == "0" and intervals.fmt(0.123456) == "0.123"
    # 3 significant digits, plain decimals in [1e-4, 1e6), else a written-out power of ten
    cases = {0.0002208: "0.000221", 3.314e-05: "3.31×10⁻⁵", 1234.5: "1230", 0.5: "0.5",
             1.0: "1", -0.0045: "-0.0045", 999.6: "1000", 2.5e7: "2.5×10⁷", 95.0: "95"}  # fmt: skip
    for v, text in cases.items():
        assert intervals.fmt(v) == text, v
    # the terminal's ASCII form: the same digits, e-notation outside [1e-4, 1e6)
    ascii_cases = {3.314e-05: "3.31e-05", 2.5e7: "2.5e+07", 1234.5: "1230", 0.0002208: "0.000221"}
    for v, text in ascii_cases.items():
        assert intervals.fmt(v, ascii=True) == text, v
    # oracle: the printed number reads back as Python's own 3-significant-digit rounding
    rng = np.random.default_rng(0)
    for v in rng.lognormal(0.0, 6.0, 300) * rng.choice([-1.0, 1.0], 300):
        text = intervals.fmt(v)
        mantissa = text.split("×")[0].lstrip("-").replace(".", "").strip("0")
        assert "e" not in text and len(mantissa) <= 3, text
        back = text.replace("×10", "e").translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789"))
        assert float(back) == pytest.approx(float(f"{v:.2e}"), rel=1e-12), (v, text)
    assert intervals.fmt_p(3e-14) == "< 0.001" and intervals.fmt_p(0.0638) == "0.0638"
    assert intervals.fmt_p(None) == "n/a" and intervals.p_words(0.5) == "= 0.5"
    assert intervals.fmt_ci(0.5, 0.4, 0.6) == "0.5 [0.4, 0.6]"
    assert intervals.fmt_ci(0.5, None, 0.6) == "0.5 (no CI)"
    assert intervals.fmt_ci(None, 0.1, 0.2) == "n/a"


def test_verdicts_use_the_paired_difference_after_holm_not_overlap():
    # Overlapping marginal intervals, but a significant paired difference: "higher".
    rows = [
        {"family": "f", "difference": 0.02, "p_value": 0.001},
        {"family": "f", "difference": -0.01, "p_value": 0.03},
        {"family": "f", "difference": 0.01, "p_value": 0.04},
        {"family": "g", "difference": 0.01, "p_value": None},
    ]
    intervals.apply_holm(rows, 0.05)
    assert [r["n_comparisons"] for r in rows] == [3, 3, 3, 0]
    assert [intervals.verdict(r) for r in rows] == [
        "higher", "not distinguishable", "not distinguishable", "undefined"
    ]  # fmt: skip
    assert rows[1]["p_holm"] == pytest.approx(0.06)  # 2 x 0.03, then monotone
    assert intervals.verdict(None) == "undefined"
    assert intervals.gap_verdict((0.01, 0.002, 0.02)) == "groups differ"
    assert intervals.gap_verdict((0.01, 0.0, 0.02)) == "not distinguishable from 0"
    assert intervals.gap_verdict((0.01, None, None)) == "no interval"


# ----------------------------------------------------------------------------- hand-built run


def _member(mid, at, noise, auc, excluded=False):
    return {
        "member_id": mid,
        "model": "m5",
        "at_eps": at,
        "noise_std": noise,
        "preprocess": "none",
        "clean_accuracy": 0.9,
        "auc_acc": auc,
        "acc@0.01": 0.5,
        "random_guess_p": 0.0,
        "excluded": excluded,
    }


def _comp(family, attr, diff, significant, **extra):
    lo, hi = (diff - 0.001, diff + 0.001) if significant else (diff - 1.0, diff + 1.0)
    return {
        "family": family, "attribute": attr, "difference": diff, "ci_low": lo, "ci_high": hi,
        "p_value": 0.001 if significant else 0.5, "p_holm": 0.002 if significant else 1.0,
        "n_comparisons": 2, "significant": significant, **extra,
    }  # fmt: skip


def _rob(gm_robust, dp_base, dp_robust, sig_groups=(), dp_sig=False):
    """Two models (baseline, AT) and one attribute (gender: f, m; plus a small group x).

    ``sig_groups``: groups whose AUC_acc change is significant (paired, after Holm);
    ``dp_sig``: whether the Defense Parity change is."""
    models = [_member("base", 0.0, 0.0, 0.01), _member("at", 0.01, 0.0, 0.05)]
    gm = []
    for mid, vals in (
        ("base", {"f": (0.01, 0.005, 0.015), "m": (0.012, 0.008, 0.016)}),
        ("at", gm_robust),
    ):
        for g, (v, lo, hi) in vals.items():
            gm.append(
                {
                    "member_id": mid,
                    "attribute": "gender",
                    "group": g,
                    "n": 40,
                    "valid": True,
                    "clean_accuracy": 0.9,
                    "clean_accuracy_ci_low": 0.8,
                    "clean_accuracy_ci_high": 0.95,
                    "auc_acc": v,
                    "auc_acc_ci_low": lo,
                    "auc_acc_ci_high": hi,
                    "excluded": False,
                }
            )
    dp = []
    for mid, (v, lo, hi) in (("base", dp_base), ("at", dp_robust)):
        dp.append(
            {
                "member_id": mid,
                "attribute": "gender",
                "defense_parity": v,
                "defense_parity_ci_low": lo,
                "defense_parity_ci_high": hi,
                "worst_group": "f",
                "note": "",
                "excluded": False,
            }
        )
    return {
        "prefix": "robustness_hand",
        "summary": {
            "dataset": "hand",
            "config": {
                "min_group_size": 10,
                "ci_level": 0.95,
                "attack_eps": [0.1, 0.6],  # width 0.5: normalised AUC_acc = 2 x raw
                "attack_steps": 10,
                "attack_rel_step": 0.2,
                "seed": 0,
                "bootstrap_resamples": 200,
                "models": ["m5"],
                "at_eps": [0.0, 0.01],
                "noise_std": [0.0],
                "preprocess": ["none"],
                "epochs": 6,
                "width": 16,
                "random_guess_level": 0.05,
            },
            "groups": {"gender": {}},
            "figures": {},
            "n_test": 83,
        },
        "models": models,
        "groups": [
            {"attribute": "gender", "group": "f", "n_test": 40, "valid": True},
            {"attribute": "gender", "group": "m", "n_test": 40, "valid": True},
            {"attribute": "gender", "group": "x", "n_test": 3, "valid": False},
        ],
        "group_metrics": gm,
        "defense_parity": dp,
        "correlations": [],
        "comparisons": [
            _comp(
                "group_auc_acc_robust_vs_baseline",
                "gender",
                gm_robust[g][0] - base,
                g in sig_groups,
                group=g,
                member_id="at",
                reference_id="base",
            )
            for g, base in (("f", 0.01), ("m", 0.012))
        ]
        + [
            _comp(
                "defense_parity_vs_baseline",
                "gender",
                dp_robust[0] - dp_base[0],
                dp_sig,
                group="",
                member_id="at",
                reference_id="base",
            )
        ],
    }


def _rej(parity, sig=()):
    """``parity``: attribute -> {label: (v, lo, hi)} for labels 'RS N=10', 'RS N=1000', 'NR';
    ``sig``: ``(family, attribute)`` pairs whose paired difference is significant."""
    rows, long = [], []
    for attr, by_label in parity.items():
        for label, (v, lo, hi) in by_label.items():
            method = "NR" if label == "NR" else "RS"
            n = None if method == "NR" else int(label.split("=")[1])
            rows.append(
                {
                    "method": method,
                    "num_samples": n,
                    "label": label,
                    "attribute": attr,
                    "fpr_parity": v,
                    "ci_low": lo,
                    "ci_high": hi,
                    "worst_group": "g1",
                }
            )
            for g, auc in (("g1", 0.3), ("g2", 0.1)):
                long.append(
                    {
                        "method": method,
                        "num_samples": n,
                        "label": label,
                        "attribute": attr,
                        "group": g,
                        "n": 30,
                        "n_train": 100,
                        "valid": True,
                        "auc_fpr": auc,
                        "ci_low": auc - 0.05,
                        "ci_high": auc + 0.05,
                    }
                )
    return {
        "summary": {"dataset": "hand", "small_groups": {a: [] for a in parity}, "num_eval": 60},
        "config": {
            "config": {
                "num_samples": [10, 1000],
                "alpha_min": 0.001,
                "alpha_max": 1.0,
                "alpha_step": 0.001,
                "sigma": 0.1,
                "noise": "gaussian",
                "seed": 0,
                "bootstrap_resamples": 200,
                "ci_level": 0.95,
                "min_group_size": 5,
            }
        },
        "groups": {a: {} for a in parity},
        "accuracy": [],
        "auc_fpr_long": long,
        "fpr_parity": rows,
        "common_range": [],
        "correlation": [],
        "certified_accuracy": [],
        "comparisons": [
            _comp(
                "fpr_parity_rs_vs_nr",
                a,
                p[f"RS N={n}"][0] - p["NR"][0],
                ("fpr_parity_rs_vs_nr", a) in sig,
                method="RS",
                reference="NR",
                num_samples=n,
            )
            for a, p in parity.items()
            for n in (10, 1000)
            if f"RS N={n}" in p
        ]
        + [
            _comp(
                "fpr_parity_largest_vs_smallest_n",
                a,
                p["RS N=1000"][0] - p["RS N=10"][0],
                ("fpr_parity_largest_vs_smallest_n", a) in sig,
                method="RS",
                reference="RS N=10",
                num_samples=1000,
            )
            for a, p in parity.items()
            if "RS N=1000" in p and "RS N=10" in p
        ],
    }


def _data(tmp_path, rob=None, rej=None):
    return results.RunData(run_dir=tmp_path, config={"dataset": "hand"}, rob=rob, rej=rej)


_ALL = {
    "gender": {
        "RS N=10": (0.2, 0.15, 0.25),
        "RS N=1000": (0.01, 0.0, 0.02),
        "NR": (0.1, 0.05, 0.15),
    },
    "dialect": {
        "RS N=10": (0.2, 0.15, 0.25),
        "RS N=1000": (0.02, 0.0, 0.03),
        "NR": (0.2, 0.1, 0.3),
    },
}


def test_rs_vs_nr_uses_significant_paired_differences(tmp_path):
    sig = {
        ("fpr_parity_rs_vs_nr", "gender"),
        ("fpr_parity_rs_vs_nr", "dialect"),
        ("fpr_parity_largest_vs_smallest_n", "gender"),
    }
    fs = summary.findings(_data(tmp_path, rej=_rej(_ALL, sig)))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR: gender")
    assert text.startswith("FPR Parity of RS at N = 1000 vs NR: RS 0.01 [0, 0.02] is lower than")
    assert "NR 0.1 [0.05, 0.15] (difference -0.09 [-0.091, -0.089], Holm p = 0.002" in text
    assert "paired, Holm over 2 comparisons, all attributes and N" in text
    assert next(f for f in fs if f["topic"] == "RS vs NR: gender")["attribute"] == "gender"
    trend = next(f["text"] for f in fs if f["topic"] == "FPR Parity vs N: gender")
    assert "the FPR Parity of RS fell: 0.2 [0.15, 0.25] -> 0.01 [0, 0.02]" in trend
    trend = next(f["text"] for f in fs if f["topic"] == "FPR Parity vs N: dialect")
    assert "did not change significantly" in trend
    (key,) = [k for k in summary.key_results(_data(tmp_path, rej=_rej(_ALL, sig)))]
    assert key["text"].startswith("FPR Parity of RS (N = 1000) is lower than NR's for")


def test_rs_vs_nr_disjoint_marginal_intervals_are_not_a_test(tmp_path):
    # dialect: RS 0.02 [0, 0.03] and NR 0.2 [0.1, 0.3] are disjoint, but the paired
    # difference is not significant after Holm: no difference is claimed.
    fs = summary.findings(_data(tmp_path, rej=_rej(_ALL, {("fpr_parity_rs_vs_nr", "gender")})))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR: dialect")
    assert (
        "RS 0.02 [0, 0.03] is not distinguishable (after Holm's correction) from NR "
        "0.2 [0.1, 0.3]" in text
    )
    assert "RS 0.01 [0, 0.02] is lower than NR" in next(
        f["text"] for f in fs if f["topic"] == "RS vs NR: gender"
    )
    numbers = next(f["numbers"] for f in fs if f["topic"] == "RS vs NR: dialect")
    assert numbers["verdict"] == "not distinguishable"
    # the key result names the significant attribute and says dialect cannot be told apart
    (key,) = summary.key_results(
        _data(tmp_path, rej=_rej(_ALL, {("fpr_parity_rs_vs_nr", "gender")}))
    )
    assert (
        "lower than NR's for gender" in key["text"]
        and "for dialect they cannot be told apart" in key["text"]
    )


def test_rs_vs_nr_without_comparisons_claims_nothing(tmp_path):
    rej = _rej({"gender": {"RS N=10": (0.2, None, None), "RS N=1000": (0.01, None, None),
                           "NR": (0.1, None, None)}})  # fmt: skip
    rej["comparisons"] = []  # no bootstrap: no paired differences
    fs = summary.findings(_data(tmp_path, rej=rej))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR: gender")
    assert "not tested: no paired comparison" in text
    assert "lower than" not in text and "not distinguishable" not in text
    assert summary.key_results(_data(tmp_path, rej=rej)) == []  # nothing tested: no claim


def test_adversarial_training_findings(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
        sig_groups=("f", "m"),
    )
    fs = summary.findings(_data(tmp_path, rob=rob))
    # AUC_acc and Defense Parity normalised by the budget range [0.1, 0.6]: 2 x raw
    text = next(f["text"] for f in fs if f["topic"] == "robustness: gender")
    assert "significantly raised AUC_acc for f and m" in text
    assert "Holm over 2 group comparisons" in text
    assert "f: 0.02 [0.01, 0.03] -> 0.1 [0.08, 0.12] (difference 0.08 [0.078, 0.082]" in text
    dp = next(f["text"] for f in fs if f["topic"] == "defense parity change: gender")
    assert "Defense Parity for gender went from 0.004 [0, 0.02] (`base`) to 0.02 [0, 0.06]" in dp
    assert "not significant" in dp
    worst = next(f["text"] for f in fs if f["topic"] == "worst-served: gender")
    assert "is f (AUC_acc 0.1 [0.08, 0.12]; 40 clips)" in worst
    assert "includes 0, so the data do not show unequal protection" in worst
    small = next(f for f in fs if f["topic"].startswith("small groups"))
    assert "x (n = 3)" in small["text"] and small["attribute"] == "gender"
    key = [k["text"] for k in summary.key_results(_data(tmp_path, rob=rob))]
    assert key[0].startswith("For gender, the Defense Parity interval of `at` includes 0")
    assert "changed Defense Parity significantly for no attribute" in key[1]
    assert "Data caveats: group gender x (3 test clips) is too small to count" in key[2]


def test_adversarial_training_partial_rise_and_parity_that_excludes_zero(tmp_path):
    rob = _rob(
        {"f": (0.011, 0.004, 0.02), "m": (0.02, 0.015, 0.025)},
        dp_base=(0.002, 0.0, 0.004),
        dp_robust=(0.04, 0.03, 0.05),
        sig_groups=("m",),
        dp_sig=True,
    )
    fs = summary.findings(_data(tmp_path, rob=rob))
    text = next(f["text"] for f in fs if f["topic"] == "robustness: gender")
    assert "significantly raised AUC_acc for m (of 2 groups tested)" in text
    dp = next(f["text"] for f in fs if f["topic"] == "defense parity change: gender")
    assert "(difference 0.076 [0.074, 0.078], Holm p = 0.002 over 2 comparisons): higher" in dp
    worst = next(f["text"] for f in fs if f["topic"] == "worst-served: gender")
    assert "0.08 [0.06, 0.1] excludes 0, so the gender groups are not equally protected" in worst
    key = [k["text"] for k in summary.key_results(_data(tmp_path, rob=rob))]
    assert key[0] == (
        "Under attack, `at` protects gender group f least (AUC_acc 0.022 [0.008, 0.04]; 40 "
        "clips) and m most (0.04 [0.03, 0.05]); their Defense Parity 0.08 [0.06, 0.1] "
        "excludes 0."
    )
    assert key[1].startswith(
        "The most robust model `at` raised Defense Parity for gender from 0.004 [0, 0.008] "
        "(baseline `base`) to 0.08 [0.06, 0.1] (paired, Holm p = 0.002)"
    )


def test_under_trained_models_are_named(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    rob["summary"]["num_classes"] = 10
    rob["models"][1]["clean_accuracy"] = 0.3  # chance 0.1: below 0.55
    fs = summary.findings(_data(tmp_path, rob=rob))
    text = next(f["text"] for f in fs if f["topic"] == "under-trained models")
    assert "`at` (0.3)" in text and "Raise the epochs" in text
    assert "`base`" not in text
    assert any("`at` is under-trained" in f["text"] for f in fs)
    (key, *_) = summary.key_results(_data(tmp_path, rob=rob))
    assert key["text"].startswith("No robustness claim can be made: `at` is under-trained")


def test_summary_rows_pick_baseline_and_most_robust(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    rej = _rej(
        {
            "gender": {
                "RS N=10": (0.2, 0.1, 0.3),
                "RS N=1000": (0.01, 0.0, 0.02),
                "NR": (0.1, 0.05, 0.15),
            }
        }
    )
    (row,) = summary.summary_rows(_data(tmp_path, rob=rob, rej=rej))
    assert row["baseline_member"] == "base" and row["robust_member"] == "at"
    assert row["worst_group_auc_acc"] == "f" and row["worst_auc_acc"] == 0.05
    assert (row["dp_robust"], row["dp_robust_ci_low"], row["dp_robust_ci_high"]) == (0.01, 0, 0.03)
    assert row["rs_n"] == 1000 and row["fpr_parity_rs"] == 0.01 and row["fpr_parity_nr"] == 0.1


def _write_hand_run(run_dir: Path, rob, rej) -> Path:
    res = run_dir / "results"
    res.mkdir(parents=True)
    for t in results.ROB_TABLES:
        (res / f"robustness_hand_{t}.json").write_text(json.dumps(rob.get(t, [])))
    (res / "robustness_hand_summary.json").write_text(json.dumps(rob["summary"]))
    (res / "rejection_summary.json").write_text(json.dumps(rej["summary"]))
    (res / "rejection_config.json").write_text(json.dumps(rej["config"]))
    (res / "rejection_groups.json").write_text(json.dumps(rej["groups"]))
    for t in results.REJ_TABLES:
        (res / f"rejection_{t}.json").write_text(json.dumps(rej.get(t, [])))
    (run_dir / "config.json").write_text(json.dumps({"dataset": "hand", "preset": "quick"}))
    return run_dir


@pytest.fixture
def hand_run(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    rej = _rej(
        {
            "gender": {
                "RS N=10": (0.2, 0.1, 0.3),
                "RS N=1000": (0.01, 0.0, 0.02),
                "NR": (0.1, 0.05, 0.15),
            }
        }
    )
    return _write_hand_run(tmp_path / "run", rob, rej)


def test_write_report_from_dir_on_hand_run(hand_run):
    summary.write_summary(hand_run)
    md_path, html_path = report.write_report_from_dir(hand_run)
    md = md_path.read_text()
    assert "## Findings" in md and "FPR Parity of RS at N = 1000 vs NR" in md
    assert md.index("## Key results") < md.index("## Summary") < md.index("## Findings")
    # every comparison the findings may cite, with its interval and Holm p-value
    assert "## Paired comparisons" in md
    assert "| rejection | fpr parity rs vs nr | gender | N = 1000 | RS - NR |" in md
    assert "| robustness | defense parity vs baseline | gender | - | at - base |" in md
    assert "x | 3 | - | under minimum size 10" in md  # small group listed, not dropped
    assert "0.1 [0.08, 0.12]" in md  # normalised group AUC_acc with its interval
    assert "*Settings:*" in md and "N [10, 1000]" in md and "alpha grid [0.001, 1.0]" in md
    assert (hand_run / "figures" / "report_fpr_parity.png").is_file()
    assert (hand_run / "results" / "run_summary.csv").is_file()
    assert "<img" in html_path.read_text()
    # deterministic: regenerating gives the same markdown
    assert report.write_report_from_dir(hand_run)[0].read_text() == md


def test_report_shows_rs_answerability_and_common_range(tmp_path):
    rej = _rej({"gender": {"RS N=10": (0.2, 0.1, 0.3), "NR": (0.1, 0.05, 0.15)}})
    rej["summary"]["rs_answerable"] = {
        "smallest_alpha": {"10": 2 * 0.5**10},
        "common_range": [0.002, 1.0],
        "unanswerable_n": [10],
    }
    for label, common, full in (("RS N=10", 0.25, 0.26), ("NR", 0.125, 0.126)):
        for attr, group in (("all", "all"), ("gender", "(parity)")):
            rej["common_range"].append(
                {"label": label, "attribute": attr, "group": group,
                 "auc_fpr_common": common, "auc_fpr": full}
            )  # fmt: skip
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    run = _write_hand_run(tmp_path / "run", rob, rej)
    summary.write_summary(run)
    md = report.write_report_from_dir(run)[0].read_text()
    assert "### Where RS can answer" in md and "N = 10: 0.00195" in md
    assert "different scales" in md and "[0.002, 1]" in md
    assert "| FPR Parity, gender | 0.25 (0.26) | 0.125 (0.126) |" in md


def test_write_summary_files_and_provenance(hand_run):
    out = summary.write_summary(hand_run)
    res = hand_run / "results"
    names = {p.name for p in out.files}
    assert names == {"run_summary.csv", "run_summary.json", "run_findings.json",
                     "run_provenance.json"}  # fmt: skip
    assert json.loads((res / "run_summary.json").read_text()) == out.rows
    written = json.loads((res / "run_findings.json").read_text())
    assert written == {"schema": 2, "key_results": out.key_results, "findings": out.findings}
    data = results.load_run(hand_run)
    assert out.rows == summary.summary_rows(data) and out.findings == summary.findings(data)
    assert data.run_findings == out.findings and data.run_key_results == out.key_results
    assert out.key_results == summary.key_results(data) and out.key_results
    # a file of the old schema (a bare list of findings) still loads
    (res / "run_findings.json").write_text(json.dumps(out.findings))
    old = results.load_run(hand_run)
    assert old.run_findings == out.findings and old.run_key_results is None
    summary.write_summary(hand_run)
    prov = json.loads((res / "run_provenance.json").read_text())
    assert prov["study"] == "run" and prov["config"] == {"dataset": "hand", "preset": "quick"}
    assert sorted(prov["files"]) == ["run_findings.json", "run_summary.csv", "run_summary.json"]
    # rewriting gives the same bytes
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    summary.write_summary(hand_run)
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before


def test_report_writes_only_report_files(hand_run):
    res = hand_run / "results"
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    md_path, _ = report.write_report_from_dir(hand_run)
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before  # no run_summary written
    assert {p.name for p in hand_run.iterdir()} == {
        "config.json", "results", "figures", "report.md", "report.html"
    }  # fmt: skip
    assert all(p.name.startswith("report_") for p in (hand_run / "figures").iterdir())
    # Without run_summary / run_findings the report computes them in memory: same content.
    md = md_path.read_text()
    summary.write_summary(hand_run)
    assert (
        report.write_report_from_dir(hand_run)[0]
        .read_text()
        .replace(
            "- `results/run_findings.json`\n- `results/run_provenance.json`\n"
            "- `results/run_summary.csv`\n- `results/run_summary.json`\n",
            "",
        )
        == md
    )


def test_report_renders_the_summary_files(hand_run):
    summary.write_summary(hand_run)
    res = hand_run / "results"
    found = json.loads((res / "run_findings.json").read_text())
    found["findings"][0]["text"] = "A finding read from run_findings.json."
    found["key_results"][0]["text"] = "A key result read from run_findings.json."
    (res / "run_findings.json").write_text(json.dumps(found))
    rows = json.loads((res / "run_summary.json").read_text())
    rows[0]["worst_group_nr"] = "group-from-run-summary"
    (res / "run_summary.json").write_text(json.dumps(rows))
    md = report.write_report_from_dir(hand_run)[0].read_text()
    assert "A finding read from run_findings.json." in md
    assert "- A key result read from run_findings.json." in md
    assert "| group-from-run-summary |" in md


def test_write_report_errors(tmp_path, hand_run):
    with pytest.raises(FileNotFoundError, match="run folder"):
        report.write_report_from_dir(tmp_path / "empty")
    with pytest.raises(ValueError, match="not in"):
        report.write_report(hand_run, tmp_path / "elsewhere")


def test_markdown_to_html_subset(tmp_path):
    md = (
        "# T\n\npara with `code` and **bold** <x>\n\n- a\n- b\n\n"
        "| h1 | h2 |\n| --- | --- |\n| 1 | 2 |\n"
    )
    out = markdown_to_html(md, tmp_path)
    assert "<h1>T</h1>" in out and "<code>code</code>" in out and "<strong>bold</strong>" in out
    assert "&lt;x&gt;" in out and "<li>a</li>" in out and "<td>2</td>" in out
    with pytest.raises(FileNotFoundError, match="missing"):
        markdown_to_html("![x](nope.png)\n", tmp_path)


# ----------------------------------------------------------------------------- soundness section
# The properties the tests of the removed ``SoundnessReport.to_markdown`` asserted
# (tests/test_soundness.py), asserted here of the one renderer ``fairrobust run`` uses.


def _check(check, verdict, reasons=(), model="base", role="clean baseline"):
    return {
        "model": model,
        "role": role,
        "check": check,
        "verdict": verdict,
        "summary": f"numbers of {check}",
        "reasons": list(reasons),
    }


def _parity_row(model, attack, dp, lo, hi):
    return {
        "model": model,
        "role": "",
        "attack": attack,
        "attribute": "gender",
        "defense_parity": dp,
        "ci_low": lo,
        "ci_high": hi,
        "worst_group": "f",
        "worst_auc_acc": 0.1,
        "worst_auc_acc_ci_low": 0.05,
        "worst_auc_acc_ci_high": 0.15,
    }


def _passing_record():
    """Every check passes (no reasons); parity for the base model and the smoothed classifier."""
    rs = "RS base (rejection study)"
    return {
        "verdict": "pass",
        "settings": {"epsilons": [0.01, 0.1], "steps": [1, 2], "restarts": 1, "n_examples": 8},
        "checks": [
            _check("attack convergence", "pass"),
            _check("budget curve", "pass"),
            _check("random restarts", "pass"),
            _check("transfer attack", "pass"),
            _check("adaptive attack on smoothing", "pass", model=rs, role="smoothed classifier"),
        ],
        "parity": [
            _parity_row("base", "PGD-2", 0.01, 0.0, 0.02),
            {
                **_parity_row("base", results.STRONGEST, 0.015, 0.005, 0.03),
                "difference": 0.005,
                "difference_ci_low": -0.002,
                "difference_ci_high": 0.012,
                "p_holm": 0.4,
                "beyond_study_ci": False,
            },
            _parity_row(rs, "smoothed: plain PGD on base", 0.02, 0.01, 0.03),
            _parity_row(rs, "smoothed: EOT", 0.025, 0.01, 0.04),
        ],
        "models": [
            {
                "model": "base",
                "role": "clean baseline",
                "surrogate": "other",
                "study_attack": "PGD-2",
                "attacks": ["PGD-2", "FGSM", results.STRONGEST],
                "report": {
                    "epsilons": [0.01, 0.1],
                    "accuracy": {
                        "PGD-2": [0.5, 0.25],
                        "FGSM": [0.625, 0.375],
                        results.STRONGEST: [0.5, 0.125],
                    },
                },
            }
        ],
        "smoothing": {
            "model": rs,
            "attacks": ["smoothed: plain PGD on base", "smoothed: EOT"],
            "accuracy": {"smoothed: plain PGD on base": [0.75, 0.5], "smoothed: EOT": [0.75, 0.25]},
        },
    }


def test_render_soundness_all_checks_pass():
    rec = _passing_record()
    md = report.render_soundness(rec)
    assert md.startswith("## Soundness of the attack evaluation\n") and md.endswith("|\n")
    assert "Overall: **pass** (0 of 5 checks warn)." in md
    for check in ("attack convergence", "budget curve", "random restarts", "transfer attack"):
        assert f"| `base` | clean baseline | {check} | pass | numbers of {check} |" in md
    assert "| adaptive attack on smoothing | pass |" in md
    # Defense Parity of each attack with its interval, study attack vs strongest.
    assert "Defense Parity" in md
    assert "| `base` | gender | PGD-2: 0.01 [0, 0.02] | 0.015 [0.005, 0.03] | " in md
    assert "| 0.005 [-0.002, 0.012] (Holm p = 0.4) | no |" in md
    # Robust accuracy by attack, one column per epsilon, one row per attack in order.
    assert "| attack | eps=0.01 | eps=0.1 |" in md
    rows = [
        "| PGD-2 | 0.5 | 0.25 |",
        "| FGSM | 0.625 | 0.375 |",
        "| strongest (base model) | 0.5 | 0.125 |",
    ]
    assert all(r in md for r in rows)
    assert [md.index(r) for r in rows] == sorted(md.index(r) for r in rows)
    # The smoothed classifier: accuracy and Defense Parity per attack, EOT included.
    assert "| smoothed: EOT | 0.75 | 0.25 | 0.025 [0.01, 0.04] |" in md
    assert "| smoothed: plain PGD on base | 0.75 | 0.5 | 0.02 [0.01, 0.03] |" in md
    assert "Warnings:" not in md  # no check has a reason
    # Deterministic: the same record renders the same text.
    assert report.render_soundness(json.loads(json.dumps(rec))) == md


def test_render_soundness_warnings_without_parity_or_smoothing():
    """Like a report without restarts, transfer, smoothing or group masks: no parity rows."""
    rec = {
        "verdict": "warn",
        "settings": {"epsilons": [0.01, 0.1], "steps": [1, 2], "restarts": 0},
        "checks": [
            _check("attack convergence", "pass"),
            _check("budget curve", "warn", ["plateau_above_chance: acc 0.5 at eps=0.1"]),
        ],
        "parity": [],
        "models": [
            {
                "model": "base",
                "study_attack": "PGD-2",
                "attacks": ["PGD-2", results.STRONGEST],
                "report": {
                    "epsilons": [0.01, 0.1],
                    "accuracy": {"PGD-2": [0.75, 0.5], results.STRONGEST: [0.75, 0.5]},
                },
            }
        ],
    }
    md = report.render_soundness(rec)
    assert "Overall: **warn** (1 of 2 checks warn)." in md
    assert "| `base` | clean baseline | budget curve | warn |" in md
    assert "| `base` | clean baseline | attack convergence | pass |" in md
    assert "Warnings:" in md and "- `base`, budget curve: plateau_above_chance" in md
    assert "restarts none" in md
    assert "| PGD-2 | 0.75 | 0.5 |" in md and "| strongest (base model) | 0.75 | 0.5 |" in md
    assert "### Adaptive attack on randomized smoothing" not in md
    assert "smoothed" not in md


def test_scaled_and_gap_replicates_match_a_loop():
    import numpy as np

    rng = np.random.default_rng(0)
    est = rng.uniform(size=(2, 3))
    smp = est[None] + rng.normal(scale=0.1, size=(50, 2, 3))
    clusters = np.array([1, 2, 5])
    out = intervals.scaled_replicates(est, smp, clusters)
    for g, c in enumerate(clusters):
        s = 1.0 if c < 2 else (c / (c - 1)) ** 0.5
        np.testing.assert_allclose(
            out[..., g], est[None, :, g] + (smp[..., g] - est[None, :, g]) * s
        )
    np.testing.assert_array_equal(intervals.scaled_replicates(est, smp, None), smp)
    valid = np.array([True, False, True])
    gap = intervals.gap_replicates(out, valid)
    ref = [[max(out[r, m, [0, 2]]) - min(out[r, m, [0, 2]]) for m in range(2)] for r in range(50)]
    np.testing.assert_allclose(gap, ref)
    assert np.isnan(intervals.gap_replicates(out, [True, False, False])).all()


# ----------------------------------------------------------------------------- a short read


def test_report_reads_in_five_minutes(hand_run):
    """Key results first (<= 6 one-sentence bullets of <= 45 words), findings as bullets of
    <= 90 words, no paragraph over 120 words, 3 significant digits and no e-notation."""
    summary.write_summary(hand_run)
    md = report.write_report_from_dir(hand_run)[0].read_text()
    check_short_report(md)
    assert "### Robustness training" in md and "- **gender**: " in md


def _many_groups(k: int) -> dict:
    """The hand robustness run with ``k`` groups of long names (every change significant)."""
    names = [f"group with a rather long name number {i}" for i in range(k)]
    rob = _rob({"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)}, (0.002, 0.0, 0.01),
               (0.04, 0.03, 0.05), dp_sig=True)  # fmt: skip
    rob["group_metrics"] = [
        {**rob["group_metrics"][0], "member_id": mid, "group": g, "auc_acc": v,
         "auc_acc_ci_low": v - 0.001, "auc_acc_ci_high": v + 0.001}
        for mid, scale in (("base", 0.1), ("at", 1.0))
        for i, g in enumerate(names)
        for v in [scale * (0.01 + 0.001 * i)]
    ]  # fmt: skip
    rob["groups"] = [{"attribute": "gender", "group": g, "n_test": 40, "n_speakers": 9,
                      "valid": True} for g in names]  # fmt: skip
    rob["groups"] += [{"attribute": "gender", "group": f"tiny {i}", "n_test": 1,
                       "n_speakers": 1, "valid": False, "note": "1 speaker (fewer than 2)"}
                      for i in range(k)]  # fmt: skip
    rob["comparisons"] = [
        c for c in rob["comparisons"] if c["family"] == "defense_parity_vs_baseline"
    ] + [
        _comp("group_auc_acc_robust_vs_baseline", "gender", 0.009 + 0.0009 * i, True,
              group=g, member_id="at", reference_id="base")
        for i, g in enumerate(names)
    ]  # fmt: skip
    return rob


def test_findings_stay_short_with_many_groups(tmp_path):
    rob = _many_groups(12)
    parity = {"RS N=10": (0.2, 0.1, 0.3), "RS N=1000": (0.01, 0.0, 0.02), "NR": (0.1, 0.05, 0.15)}
    rej = _rej({"gender": parity}, {("fpr_parity_rs_vs_nr", "gender")})
    run = _write_hand_run(tmp_path / "run", rob, rej)
    (run / "results" / "robustness_hand_attributes.json").write_text(json.dumps({"attributes": [
        {"attribute": f"accent {i}", "usable": False, "reason": "one group"} for i in range(5)
    ]}))  # fmt: skip
    out = summary.write_summary(run)
    rise = next(f["text"] for f in out.findings if f["topic"] == "robustness: gender")
    assert "significantly raised AUC_acc for all 12 gender groups" in rise
    assert (
        "largest and smallest change: group with a rather long name number 11 (difference" in rise
    )
    md = report.write_report_from_dir(run)[0].read_text()
    check_short_report(md)
    key = [k["text"] for k in out.key_results]
    assert len(key) == 4 and key[-1].startswith("Data caveats: 5 attributes left out and 12 groups")
