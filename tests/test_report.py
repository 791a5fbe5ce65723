"""Tests of the report and of the run summary it renders: number formatting, findings wording
on hand-built results, the soundness section, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairrobust import report
from fairrobust.report.html import markdown_to_html
from fairrobust.studies import intervals, results, summary


def test_fmt_and_fmt_ci():
    assert intervals.fmt(None) == "n/a" and intervals.fmt(float("nan")) == "n/a"
    assert intervals.fmt(0.0) == "0" and intervals.fmt(0.123456) == "0.1235"
    assert intervals.fmt_ci(0.5, 0.4, 0.6) == "0.5 [0.4, 0.6]"
    assert intervals.fmt_ci(0.5, None, 0.6) == "0.5 (no CI)"
    assert intervals.fmt_ci(None, 0.1, 0.2) == "n/a"


def test_compare_uses_interval_overlap():
    assert intervals.compare_intervals((0.1, 0.05, 0.15), (0.3, 0.2, 0.4)) == "lower"
    assert intervals.compare_intervals((0.3, 0.2, 0.4), (0.1, 0.05, 0.15)) == "higher"
    assert intervals.compare_intervals((0.1, 0.05, 0.25), (0.3, 0.2, 0.4)) == "not distinguishable"
    assert intervals.compare_intervals((0.1, None, None), (0.3, 0.2, 0.4)) == "lower (no CI)"
    assert intervals.compare_intervals((None, None, None), (0.3, 0.2, 0.4)) == "undefined"


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


def _rob(gm_robust, dp_base, dp_robust):
    """Two models (baseline, AT) and one attribute (gender: f, m; plus a small group x)."""
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
                "attack_eps": [0.01, 0.1],
                "attack_steps": 10,
                "attack_rel_step": 0.2,
                "seed": 0,
                "bootstrap": 200,
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
    }


def _rej(parity):
    """``parity``: attribute -> {label: (v, lo, hi)} for labels 'RS N=10', 'RS N=1000', 'NR'."""
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
        "correlation": [],
        "certified_accuracy": [],
    }


def _data(tmp_path, rob=None, rej=None):
    return results.RunData(run_dir=tmp_path, config={"dataset": "hand"}, rob=rob, rej=rej)


def test_rs_vs_nr_all_attributes_lower(tmp_path):
    rej = _rej(
        {
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
    )
    fs = summary.findings(_data(tmp_path, rej=rej))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR")
    assert text.startswith("RS at N = 1000 has lower FPR Parity than NR for all attributes")
    assert "gender: 0.01 [0, 0.02] vs 0.1 [0.05, 0.15]" in text
    trend = next(f["text"] for f in fs if f["topic"] == "FPR Parity vs N")
    assert "gender fell from 0.2 [0.15, 0.25] to 0.01 [0, 0.02]" in trend


def test_rs_vs_nr_overlap_is_not_distinguishable(tmp_path):
    rej = _rej(
        {
            "gender": {
                "RS N=10": (0.2, 0.15, 0.25),
                "RS N=1000": (0.05, 0.0, 0.12),
                "NR": (0.1, 0.05, 0.15),
            },
            "dialect": {
                "RS N=10": (0.2, 0.15, 0.25),
                "RS N=1000": (0.02, 0.0, 0.03),
                "NR": (0.2, 0.1, 0.3),
            },
        }
    )
    fs = summary.findings(_data(tmp_path, rej=rej))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR")
    assert "For gender RS at N = 1000 and NR have FPR Parity that is not distinguishable" in text
    assert "lower FPR Parity than NR for dialect" in text
    assert "all attributes" not in text
    numbers = next(f["numbers"] for f in fs if f["topic"] == "RS vs NR")
    assert numbers["per_attribute"]["gender"]["comparison"] == "not distinguishable"


def test_rs_vs_nr_without_intervals_says_no_ci(tmp_path):
    rej = _rej(
        {
            "gender": {
                "RS N=10": (0.2, None, None),
                "RS N=1000": (0.01, None, None),
                "NR": (0.1, None, None),
            }
        }
    )
    fs = summary.findings(_data(tmp_path, rej=rej))
    text = next(f["text"] for f in fs if f["topic"] == "RS vs NR")
    assert "lower (no CI) FPR Parity" in text and "(no CI)" in text


def test_adversarial_training_findings(tmp_path):
    rob = _rob(
        {"f": (0.05, 0.04, 0.06), "m": (0.06, 0.05, 0.07)},
        dp_base=(0.002, 0.0, 0.01),
        dp_robust=(0.01, 0.0, 0.03),
    )
    fs = summary.findings(_data(tmp_path, rob=rob))
    text = next(f["text"] for f in fs if f["topic"] == "robustness: gender")
    assert "raised AUC_acc for every gender group (every rise with disjoint intervals)" in text
    assert (
        "Defense Parity for gender went from 0.002 [0, 0.01] to 0.01 [0, 0.03] "
        "(not distinguishable)" in text
    )
    worst = next(f["text"] for f in fs if f["topic"] == "worst-served: gender")
    assert "is f (AUC_acc 0.05 [0.04, 0.06])" in worst and "not distinguishable" in worst
    small = next(f["text"] for f in fs if f["topic"].startswith("small groups"))
    assert "x (n = 3)" in small


def test_adversarial_training_partial_rise(tmp_path):
    rob = _rob(
        {"f": (0.011, 0.004, 0.02), "m": (0.011, 0.009, 0.02)},
        dp_base=(0.002, 0.0, 0.004),
        dp_robust=(0.04, 0.03, 0.05),
    )
    fs = summary.findings(_data(tmp_path, rob=rob))
    text = next(f["text"] for f in fs if f["topic"] == "robustness: gender")
    assert "raised AUC_acc for 1 of 2 gender groups" in text
    assert "not distinguishable" in text and "(higher than the baseline)" in text


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
        (res / f"robustness_hand_{t}.json").write_text(json.dumps(rob[t]))
    (res / "robustness_hand_summary.json").write_text(json.dumps(rob["summary"]))
    (res / "rejection_summary.json").write_text(json.dumps(rej["summary"]))
    (res / "rejection_config.json").write_text(json.dumps(rej["config"]))
    (res / "rejection_groups.json").write_text(json.dumps(rej["groups"]))
    for t in results.REJ_TABLES:
        (res / f"rejection_{t}.json").write_text(json.dumps(rej[t]))
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
    assert "## Findings" in md and "RS at N = 1000 has lower FPR Parity than NR" in md
    assert "x | 3 | under minimum size 10" in md  # small group listed, not dropped
    assert "0.05 [0.04, 0.06]" in md  # group AUC_acc with its interval
    assert "*Settings:*" in md and "N [10, 1000]" in md and "alpha grid [0.001, 1.0]" in md
    assert (hand_run / "figures" / "report_fpr_parity.png").is_file()
    assert (hand_run / "results" / "run_summary.csv").is_file()
    assert "<img" in html_path.read_text()
    # deterministic: regenerating gives the same markdown
    assert report.write_report_from_dir(hand_run)[0].read_text() == md


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
