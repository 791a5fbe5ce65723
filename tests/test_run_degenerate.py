"""``fairrobust run`` end to end on degenerate real-world layouts: a report naming each case.

Both runs use the ``tiny`` preset trimmed further by a config file, 0.5 s clips
and a few dozen clips: the numbers mean nothing, the run must complete and say
which attributes and groups are degenerate and why.
"""

from __future__ import annotations

import json

import pytest
from fixtures_data import cv_rows, make_common_voice, make_folder

from fairrobust import cli

# random_guess_level near 1 keeps models at chance in the analyses, so that the
# paths after the random-guess filter (most robust model, its soundness checks)
# run on the degenerate groups too.
TOML = """
[robustness]
random_guess_level = 0.999

[rejection]
num_samples = [10, 20]
certify_n = 20

[soundness]
step_multipliers = [2]
restarts = 0
num_samples = 4
smoothing_examples = 4
"""
WORDS = ("yes", "no", "zero")


def _run(tmp_path, dataset, data_dir, *extra):
    """``fairrobust run --preset tiny`` on ``data_dir``; the run folder."""
    toml = tmp_path / "run.toml"
    toml.write_text(TOML)
    out = tmp_path / "run"
    argv = ["run", "--dataset", dataset, "--data-dir", str(data_dir), "--duration", "0.5"]
    argv += ["--preset", "tiny", "--config", str(toml), "--out", str(out), "--no-progress"]
    assert cli.main([*argv, *extra]) == 0
    for name in ("report.md", "report.html", "results/run_summary.json"):
        assert (out / name).is_file(), name
    return out


def _status(out, prefix):
    """``results/<prefix>_attributes.json`` as ``{attribute: record}``."""
    records = json.loads((out / "results" / f"{prefix}_attributes.json").read_text())
    return {r["attribute"]: r for r in records["attributes"]}


_CLAIMS = (
    "significantly raised", "significantly lowered", "is lower than", "is higher than",
    "excludes 0", "differs from", " fell:", " rose:", "raised Defense Parity",
    "lowered Defense Parity", "moves Defense Parity beyond",
)  # fmt: skip


def _no_claim_on_one_speaker(out, prefix):
    """No finding claims a difference; every one-speaker test group is left out, with the
    reason, in the groups table and the findings."""
    written = json.loads((out / "results" / "run_findings.json").read_text())
    texts = [f["text"] for f in written["findings"] + written["key_results"]]
    for t in texts:
        assert not any(c in t for c in _CLAIMS), t
    groups = json.loads((out / "results" / f"{prefix}_groups.json").read_text())
    one = [g for g in groups if g["n_speakers"] == 1]
    assert one and all(not g["valid"] and "1 speaker (fewer than 2" in g["note"] for g in one)
    assert any("1 speaker (fewer than 2" in t for t in texts)
    return texts


def _small(record):
    return {(g["group"], g["split"]): (g["clips"], g["speakers"]) for g in record["small_groups"]}


@pytest.mark.slow
def test_common_voice_with_two_test_speakers(tmp_path):
    """Official test split of 2 speakers: every test group is one speaker, the three
    attributes (and their intersections) are one partition, sixties / canada never trained."""
    rows = {
        "train.tsv": cv_rows("t1", WORDS, 3, "twenties", "male", "us")
        + cv_rows("t2", WORDS, 3, "twenties", "female", "us")
        + cv_rows("t3", WORDS, 3, "thirties", "male", "england")
        + cv_rows("t4", WORDS, 3, "thirties", "female", "")
        + [("t4", "ff.mp3", "firefox", "2", "0", "thirties", "female", "", "en", "")],
        "dev.tsv": cv_rows("v1", WORDS, 2, "twenties", "female", "us"),
        "test.tsv": cv_rows("c5", WORDS, 4, "sixties", "male", "canada")
        + cv_rows("c6", WORDS, 4, "twenties", "female", "us"),
    }
    make_common_voice(tmp_path / "cv", rows=rows, n=8000, sr=16000)
    out = _run(tmp_path, "common-voice", tmp_path / "cv", "--intersections", "all-pairs")
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for study, prefix in (("robustness", "robustness_common-voice"), ("rejection", "rejection")):
        st = _status(out, prefix)
        assert st["accent"]["usable"] and st["accent"]["same_as"] is None
        for name in ("age", "gender", "accent x age", "accent x gender", "age x gender"):
            assert st[name]["usable"] and st[name]["same_as"] == "accent", name
            assert st[name]["reason"] == "same partition of the test clips as 'accent'"
        # one speaker per test group; groups absent from training
        assert _small(st["gender"]) == {("female", "test"): (12, 1), ("male", "test"): (12, 1)}
        assert _small(st["age"])[("sixties", "train")] == (0, 0)
        assert _small(st["accent"])[("canada", "train")] == (0, 0)
        assert _small(st["accent x age"])[("canada x sixties", "train")] == (0, 0)
        line = (
            f"- {study}: `age`: analysed (same partition of the test clips as 'accent'); groups "
            "under the minimum clips or speakers: sixties in train (0 clips, 0 speakers), "
            "sixties in test (12 clips, 1 speaker), twenties in test (12 clips, 1 speaker)"
        )
        assert line in md
    assert (
        "<li>rejection: <code>gender</code>: analysed (same partition of the test clips as "
        "'accent'); groups under the minimum clips or speakers: female in test (12 clips, "
        "1 speaker), male in test (12 clips, 1 speaker)</li>" in html
    )
    texts = _no_claim_on_one_speaker(out, "robustness_common-voice")
    assert any(t.startswith("age, gender") and "split the clips exactly as accent" in t
               for t in texts)  # fmt: skip
    summary = json.loads((out / "results" / "run_summary.json").read_text())
    assert all(r["dp_baseline"] is None and r["fpr_parity_nr"] is None for r in summary)
    assert {r["attribute"] for r in summary} == {
        "accent", "age", "gender", "accent x age", "accent x gender", "age x gender",
    }  # fmt: skip


@pytest.mark.slow
def test_folder_with_one_gender_in_test(tmp_path):
    """Folder CSV whose test split is all male: gender (and gender x age) left out, age analysed."""
    root = make_folder(
        tmp_path / "d", with_split=True, n_speakers=12, genders=("female", "male"),
        splits=("train", "train", "dev", "test"), columns={"age": ("young", "old", "old")},
        takes=3,
    )  # fmt: skip
    out = _run(tmp_path, "folder", root, "--intersections", "gender x age")
    md = (out / "report.md").read_text()
    for study, prefix in (("robustness", "robustness_folder"), ("rejection", "rejection")):
        st = _status(out, prefix)
        assert st["gender"]["status"] == "one_group" and not st["gender"]["usable"]
        assert st["gender"]["reason"] == "one known group in test ('male')"
        assert st["gender x age"]["status"] == "component_left_out"
        assert st["age"]["usable"] and _small(st["age"]) == {("young", "test"): (6, 1)}
        assert f"- {study}: `gender`: left out: one known group in test ('male')" in md
        assert (
            f"- {study}: `gender x age`: left out: its attribute 'gender' is left out "
            "(one known group in test ('male'))" in md
        )
    _no_claim_on_one_speaker(out, "robustness_folder")
    summary = json.loads((out / "results" / "run_summary.json").read_text())
    assert [r["attribute"] for r in summary] == ["age"]
    assert not list((out / "figures").glob("*gender*"))
    groups = json.loads((out / "results" / "rejection_groups.json").read_text())
    assert set(groups) == {"age"}


def test_folder_with_gender_only_fails_before_training(tmp_path, capsys):
    """The same layout without another attribute: nothing to analyse, stop naming why."""
    root = make_folder(
        tmp_path / "d", with_split=True, n_speakers=8, genders=("female", "male"),
        splits=("train", "train", "dev", "test"),
    )  # fmt: skip
    out = tmp_path / "run"
    argv = ["run", "--dataset", "folder", "--data-dir", str(root), "--duration", "0.5"]
    argv += ["--preset", "tiny", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fairrobust: error: attributes: no usable attribute to analyse")
    assert "gender: one known group in test ('male')" in err
    assert not (out / "models").exists()
