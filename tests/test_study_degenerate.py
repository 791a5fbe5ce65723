"""Degenerate attributes in a study: reported and skipped, or failing fast before training."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from fixtures_data import make_fsdd

from fairrobust import cli
from fairrobust.data.dataset import AudioDataset, LoadReport
from fairrobust.report.markdown import render_markdown
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection as rj
from fairrobust.studies import robustness as rb
from fairrobust.studies.results import load_run

T = 6848  # M5's shortest input
TINY = dict(
    width=4, epochs=1, batch_size=16, num_samples=(10, 100), chunk_size=10,
    sample_batch_size=12, alpha_step=0.01, alpha_min=0.01, certify=False,
    min_group_size=2, bootstrap_resamples=0,
)  # fmt: skip


def _dataset(attributes, missing_keys=()):
    """60 sinusoid clips, 3 classes, speakers of 3 clips; split 36 / 6 / 18."""
    rng = np.random.default_rng(0)
    n = 60
    labels = np.arange(n) % 3
    t = np.arange(T) / 16000.0
    freqs = np.array([300.0, 700.0, 1500.0])[labels]
    waves = 0.5 * np.sin(2 * np.pi * freqs[:, None] * t[None, :])
    waves = (waves + 0.05 * rng.standard_normal((n, T))).astype(np.float32)
    return AudioDataset(
        name="degenerate",
        waveforms=waves,
        labels=labels.astype(np.int32),
        class_names=("low", "mid", "high"),
        speakers=np.array([f"s{i // 3}" for i in range(n)]),
        splits=np.array(["train"] * 36 + ["val"] * 6 + ["test"] * 18),
        attributes={k: np.asarray(v) for k, v in attributes.items()},
        sample_rate=16000,
        paths=np.array([f"clip{i:03d}.wav" for i in range(n)]),
        report=LoadReport(n_files=n, n_loaded=n, missing_keys=tuple(missing_keys)),
    )


SPK = np.arange(60) // 3
GENDER = np.array(["female", "male"])[SPK % 2]


def test_constant_and_unknown_attributes_are_reported_and_skipped(tmp_path, caplog):
    ds = _dataset(
        {"gender": GENDER, "constant": ["x"] * 60, "age": ["unknown"] * 60,
         "sex": np.where(GENDER == "female", "f", "m")},
        missing_keys=["age"],
    )  # fmt: skip
    cfg = study_config.preset("rejection", "quick").replace(
        **TINY, intersections=(("gender", "constant"),)
    )
    with caplog.at_level(logging.WARNING, logger="fairrobust.studies"):
        res = rj.run_study(ds, cfg, tmp_path, progress=False)
    status = {
        r["attribute"]: r
        for r in json.loads((tmp_path / "results/rejection_attributes.json").read_text())[
            "attributes"
        ]
    }
    assert status["gender"]["status"] == "usable"
    assert status["constant"]["status"] == "one_group" and "'x'" in status["constant"]["reason"]
    assert status["age"]["status"] == "missing_key"
    assert status["sex"]["usable"] and status["sex"]["same_as"] == "gender"
    assert status["gender x constant"]["status"] == "component_left_out"
    assert res.files["attributes"].name == "rejection_attributes.json"
    with open(tmp_path / "results/rejection_fpr_parity.csv") as f:
        assert {r["attribute"] for r in csv.DictReader(f)} == {"gender", "sex"}
    groups = json.loads((tmp_path / "results/rejection_groups.json").read_text())
    assert set(groups) == {"gender", "sex"}  # the intersection with "constant" is dropped
    assert not list((tmp_path / "figures").glob("*constant*"))
    assert "attribute 'constant' skipped: one known group" in caplog.text
    assert "attribute 'age' skipped: metadata key missing" in caplog.text
    assert "intersection 'gender x constant' skipped: its attribute 'constant'" in caplog.text
    # the report renders the reasons from the results files
    md = render_markdown(load_run(tmp_path))
    assert "## Attributes" in md
    assert "- rejection: `constant`: left out: one known group in test ('x')" in md
    assert "- rejection: `age`: left out: metadata key missing" in md
    assert "- rejection: `sex`: analysed (same partition of the test clips as 'gender')" in md
    assert (
        "- rejection: `gender x constant`: left out: its attribute 'constant' is left out "
        "(one known group in test ('x'))" in md
    )


def test_no_usable_attribute_fails_before_training(tmp_path):
    ds = _dataset({"constant": ["x"] * 60, "age": ["unknown"] * 60})
    cfg = study_config.preset("rejection", "quick").replace(**TINY)
    with pytest.raises(ValueError, match=r"no usable attribute.*age: every test clip.*constant:"):
        rj.run_study(ds, cfg, tmp_path, progress=False)
    assert not (tmp_path / "models").exists()


def test_robustness_eval_set_keeps_usable_attributes_only():
    ds = _dataset({"gender": GENDER, "constant": ["x"] * 60, "age": ["unknown"] * 60})
    cfg = study_config.preset("robustness", "tiny")
    test = rb.load_eval_set(ds, cfg)
    assert list(test.groups) == ["gender"]
    status = {s.attribute: s.status for s in test.attribute_status}
    assert status == {"age": "all_unknown", "constant": "one_group", "gender": "usable"}


def test_robustness_no_usable_attribute_fails_before_training(tmp_path):
    ds = _dataset({"constant": ["x"] * 60})
    cfg = study_config.preset("robustness", "tiny")
    with pytest.raises(
        ValueError, match=r"no usable attribute to analyse \(constant: one known group"
    ):
        rb.run_study(ds, cfg, tmp_path, progress=False, make_figures=False)
    assert not (tmp_path / "models").exists()


def test_cli_fails_fast_naming_each_attribute(tmp_path, capsys):
    """FSDD layout where every speaker is male and English: the command stops before training."""
    make_fsdd(tmp_path / "fsdd", takes=4)
    out = tmp_path / "run"
    argv = ["study", "rejection", "--dataset", "fsdd", "--data-dir", str(tmp_path / "fsdd")]
    argv += ["--preset", "tiny", "--attributes", "gender,language", "--out", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fairrobust: error: attributes: no usable attribute to analyse")
    assert "gender: one known group in test ('male')" in err
    assert "language: one known group in test ('english')" in err
    assert not (out / "models").exists()
