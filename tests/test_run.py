"""Tests of ``fairrobust run``: configs, run folder rules, end to end at tiny scale, determinism."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil

import numpy as np
import pytest
from report_checks import check_short_report

from fairrobust import job
from fairrobust.cli import build_parser
from fairrobust.cli import run as cli_run
from fairrobust.studies import config as cfg

T = 6848  # M5's shortest input


def _synthetic_dataset():
    """90 sinusoid clips, 3 classes, 2 attributes; split 54 / 12 / 24; 3 clips per speaker."""
    from fairrobust.data.dataset import AudioDataset

    rng = np.random.default_rng(0)
    n = 90
    labels = np.arange(n) % 3
    t = np.arange(T) / 16000.0
    freqs = np.array([300.0, 700.0, 1500.0])[labels]
    phase = rng.uniform(0, 2 * np.pi, size=n)
    waves = 0.5 * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phase[:, None])
    waves = (waves + 0.05 * rng.standard_normal((n, T))).astype(np.float32)
    spk = np.arange(n) // 3
    return AudioDataset(
        name="synthetic",
        waveforms=waves,
        labels=labels.astype(np.int32),
        class_names=("low", "mid", "high"),
        speakers=np.array([f"s{i}" for i in spk]),
        splits=np.array(["train"] * 54 + ["val"] * 12 + ["test"] * 24),
        attributes={
            "gender": np.array(["female", "male"])[spk % 2],
            "accent": np.array(["a", "b", "c"])[(spk // 2) % 3],
        },
        sample_rate=16000,
        paths=np.array([f"clip{i:03d}.wav" for i in range(n)]),
    )


# Tinier still than the "tiny" preset, through the documented --config route.
TOML = """
[robustness]
attack_eps = [0.01, 0.1]
max_examples = 0

[rejection]
num_samples = [10, 50]
certify_n = 30
max_examples = 24
"""


def _parse(argv):
    return build_parser().parse_args(["run", *argv])


# ----------------------------------------------------------------------------- configs


def test_load_configs_presets_toml_and_shared_flags(tmp_path):
    rob, rej, sound = cfg.load_configs("quick")
    assert rob == cfg.preset("robustness", "quick") and rej.num_samples == (10, 100, 1000)
    assert sound == cfg.SOUNDNESS_PRESETS["quick"]
    paper_rob, paper_rej, _ = cfg.load_configs("paper")
    assert paper_rob.num_models == 40 and paper_rej.num_samples[-1] == 10000
    toml = tmp_path / "run.toml"
    toml.write_text(TOML)
    rob, rej, _ = cfg.load_configs(
        "tiny",
        toml,
        seed=3,
        attributes="gender,accent",
        intersections=["gender x accent"],
    )
    assert rob.attack_eps == (0.01, 0.1) and rob.epochs == 1 and rob.seed == 3
    assert rej.num_samples == (10, 50) and rej.seed == 3
    assert rob.attributes == ("gender", "accent") == rej.attributes
    assert rob.intersections == (("gender", "accent"),)
    assert rej.intersections == (("gender", "accent"),)
    _, rej, _ = cfg.load_configs(
        "quick", intersections=["all-pairs"], dataset_attributes=["a", "b", "c"]
    )
    assert rej.intersections == (("a", "b"), ("a", "c"), ("b", "c"))
    rob, rej, _ = cfg.load_configs("quick", overrides={"max_examples": 7})
    assert rob.max_examples == 7 == rej.max_examples


def test_load_configs_errors(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        cfg.load_configs("huge")
    with pytest.raises(FileNotFoundError, match="not found"):
        cfg.load_configs("quick", tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\n")
    with pytest.raises(ValueError, match=r"\[robustness\] and \[rejection\]"):
        cfg.load_configs("quick", bad)
    bad.write_text("[robustness]\nnot_a_field = 1\n")
    with pytest.raises(ValueError, match="not_a_field"):
        cfg.load_configs("quick", bad)
    with pytest.raises(ValueError, match="intersections"):
        cfg.load_configs("quick", intersections=["gender"])


@pytest.mark.parametrize(
    ("table", "old", "new"),
    [
        ("robustness", "max_test_examples", "max_examples"),
        ("robustness", "bootstrap", "bootstrap_resamples"),
        ("rejection", "max_test", "max_examples"),
    ],
)
def test_old_field_names_are_refused_with_the_new_name(tmp_path, table, old, new):
    path = tmp_path / "old.toml"
    path.write_text(f"[{table}]\n{old} = 3\n")
    with pytest.raises(ValueError, match=f"{old}.*renamed to '{new}'") as info:
        cfg.load_configs("quick", path)
    assert str(path) in str(info.value)


def test_resolve_run_dir_rules(tmp_path):
    now = dt.datetime(2024, 5, 6, 7, 8, 9)
    runs = tmp_path / "runs"
    fresh, cont = job.resolve_run_dir(runs_dir=runs, now=now)
    assert fresh == runs / "20240506-070809" and not cont
    fresh.mkdir(parents=True)
    again, _ = job.resolve_run_dir(runs_dir=runs, now=now)
    assert again == runs / "20240506-070809-2"
    with pytest.raises(FileNotFoundError, match="no run folder"):
        job.resolve_run_dir(resume="latest", runs_dir=runs)
    (fresh / "config.json").write_text("{}")
    assert job.resolve_run_dir(resume="latest", runs_dir=runs) == (fresh, True)
    assert job.resolve_run_dir(out=fresh) == (fresh, True)
    assert job.resolve_run_dir(out=tmp_path / "new") == (tmp_path / "new", False)
    assert job.resolve_run_dir(resume=fresh) == (fresh, True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        job.resolve_run_dir(resume=tmp_path / "nope")


def test_cli_flags_parse():
    args = _parse([])
    assert args.dataset == "bundled" and args.preset == "quick" and args.out is None
    assert args.resume is None and not args.no_resume
    args = _parse(
        [
            "--dataset",
            "fsdd",
            "--data-dir",
            "d",
            "--preset",
            "paper",
            "--attributes",
            "a,b",
            "--intersections",
            "a x b",
            "--seed",
            "2",
            "--out",
            "o",
            "--resume",
        ]
    )
    assert args.resume == "latest" and args.intersections == ["a x b"] and args.seed == 2
    assert args.attributes == ("a", "b")


# The flag vocabulary (one definition per flag, earlier spellings) is tested in
# tests/test_cli_flags.py.


def test_run_main_rejects_bad_preset_and_missing_data_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse(["--preset", "huge", "--out", str(tmp_path)])
    assert "--preset" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--data-dir"):
        cli_run.main(_parse(["--dataset", "fsdd", "--out", str(tmp_path)]))


def test_a_failing_step_is_named_in_the_error(tmp_path, monkeypatch, capsys):
    """A ValueError raised inside a step says which step (the message keeps its start)."""
    from fairrobust import cli
    from fairrobust.studies import rejection as rj

    monkeypatch.setattr(job, "load_bundled", lambda **_: _synthetic_dataset())

    def boom(*_, **__):
        raise ValueError("attributes: something the data cannot do")

    monkeypatch.setattr(rj, "run_study", boom)
    argv = ["run", "--preset", "tiny", "--only", "rejection", "--out", str(tmp_path / "r")]
    assert cli.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "fairrobust: error: attributes: something the data cannot do [during the rejection study]"
    )


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One ``fairrobust run`` call on the synthetic dataset with the tiny preset + TOML."""
    mp = pytest.MonkeyPatch()
    ds = _synthetic_dataset()
    mp.setattr(job, "load_bundled", lambda **_: ds)
    root = tmp_path_factory.mktemp("run")
    toml = root / "run.toml"
    toml.write_text(TOML)
    out = root / "r1"
    argv = [
        "--preset",
        "tiny",
        "--config",
        str(toml),
        "--out",
        str(out),
        "--no-progress",
        "--intersections",
        "gender x accent",
    ]
    code = cli_run.main(_parse(argv))
    yield ds, out, argv
    mp.undo()
    assert code == 0


def _results_bytes(run_dir):
    return {
        p.name: p.read_bytes()
        for p in sorted((run_dir / "results").iterdir())
        if p.suffix in (".csv", ".json", ".npz")
    }


def test_run_folder_layout(tiny_run):
    _, out, _ = tiny_run
    for name in ("config.json", "run.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "tiny" and config["dataset"] == "synthetic"
    assert config["robustness"]["attack_eps"] == [0.01, 0.1]
    assert config["rejection"]["num_samples"] == [10, 50]
    env = config["environment"]  # what the numbers depend on besides config, data, seed
    assert {"python", "packages", "jax_backend", "jax_devices", "cpu_model"} <= set(env)
    assert {"jax", "jaxlib", "flax", "optax", "numpy", "scipy", "scikit-learn", "librosa"} == set(
        env["packages"]
    )
    results = {p.name for p in (out / "results").iterdir()}
    for name in (
        "robustness_synthetic_models.csv",
        "robustness_synthetic_defense_parity.json",
        "robustness_synthetic_group_metrics.csv",
        "rejection_fpr_parity.csv",
        "rejection_auc_fpr_long.json",
        "rejection_certified_accuracy.csv",
        "rejection_common_range.csv",
        "run_summary.csv",
        "run_summary.json",
        "run_findings.json",
    ):
        assert name in results, name
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "rejection_fpr_parity_vs_n.png" in figures and "report_fpr_parity.png" in figures
    assert any(f.startswith("robustness_synthetic_corr") for f in figures)
    summary = json.loads((out / "results" / "run_summary.json").read_text())
    assert {r["attribute"] for r in summary} == {"accent", "gender", "gender x accent"}
    for r in summary:
        assert r["rs_n"] == 50
        assert r["fpr_parity_nr"] is None or r["fpr_parity_nr_ci_low"] is not None


def test_run_prints_summary_and_report_path(tiny_run, capsys, monkeypatch):
    ds, out, argv = tiny_run
    monkeypatch.setattr(job, "load_bundled", lambda **_: ds)
    before = _results_bytes(out)
    assert cli_run.main(_parse(argv)) == 0  # continues: everything reused
    text = capsys.readouterr().out
    assert "continuing run folder" in text
    assert "FPR Parity RS (N=50)" in text and "worst-served" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert f"report: {out / 'report.md'}" in text
    assert "soundness checks: up to date" in text  # resumed: inputs hash unchanged
    assert _results_bytes(out) == before


def test_report_sections_present(tiny_run):
    _, out, _ = tiny_run
    md = (out / "report.md").read_text()
    for heading in (
        "## Summary",
        "## Findings",
        "## Groups",
        "## Robustness training: AUC_acc and Defense Parity",
        "### Per-model table",
        "### gender x accent",
        "### Correlations of interventions",
        "## Rejection: randomized smoothing (RS) vs neural rejection (NR)",
        "### FPR Parity per attribute and method",
        "### Training-set size vs AUC_FPR",
        "### Certified accuracy vs radius per group",
        "## Soundness of the attack evaluation",
        "*Settings:*",
    ):
        assert heading in md, heading
    written = json.loads((out / "results" / "run_findings.json").read_text())
    findings = written["findings"]
    assert written["key_results"] and "## Key results" in md
    assert findings and all(f["text"] and "numbers" in f for f in findings)
    assert any("FPR Parity" in f["text"] for f in findings)
    para = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    check_short_report(md)
    assert findings[0]["text"] in para


def test_soundness_section_and_records(tiny_run):
    ds, out, _ = tiny_run
    rec = json.loads((out / "results" / "soundness.json").read_text())
    assert rec["verdict"] in ("pass", "warn") and len(rec["inputs_hash"]) == 16
    assert rec["data_fingerprint"] == ds.fingerprint() and rec["library_version"]
    st = rec["settings"]
    # Issue 13: 5x and 10x the study's 2 steps are added; restarts and DLR use the longest.
    assert st["steps"] == [1, 2, 10, 20] and st["restarts"] == 1 and st["epsilons"] == [0.01, 0.1]
    assert st["study_steps"] == 2 and st["restart_steps"] == 20 and st["dlr_steps"] == 20
    assert st["smoothing"]["num_noise"] == 2 and st["smoothing"]["num_samples"] == 8
    assert rec["checks"] and all(c["verdict"] in ("pass", "warn") for c in rec["checks"])
    checks = {c["check"] for c in rec["checks"]}
    assert {"attack convergence", "budget curve", "random restarts"} <= checks
    assert {"transfer attack", "adaptive attack on smoothing"} <= checks
    base = rec["models"][0]
    assert base["role"].startswith("clean baseline") and base["surrogate"]
    # The study's own attack is among those tried and reproduces the study's numbers.
    models = json.loads((out / "results" / "robustness_synthetic_models.json").read_text())
    row = next(r for r in models if r["member_id"] == base["model"])
    acc = base["report"]["accuracy"][base["study_attack"]]
    assert acc == pytest.approx([row["acc@0.01"], row["acc@0.1"]])
    strongest = base["report"]["accuracy"]["strongest (base model)"]
    assert all(s <= a + 1e-9 for s, a in zip(strongest, acc, strict=True))
    parity = json.loads((out / "results" / "soundness_parity.json").read_text())
    attacks = {(r["model"], r["attack"]) for r in parity}
    assert (base["model"], "strongest (base model)") in attacks
    assert ("RS base (rejection study)", "smoothed: EOT") in attacks
    for r in parity:
        assert r["defense_parity"] is None or r["ci_low"] is not None
        assert r["study_attack"] in (base["study_attack"], "smoothed: plain PGD on base")
        assert r["beyond_study_ci"] in (True, False, None)
    assert "PGD-DLR-20" in base["attacks"] and isinstance(base["converged"], bool)
    md = (out / "report.md").read_text()
    section = md.split("## Soundness of the attack evaluation", 1)[1].split("\n## ", 1)[0]
    assert "| pass |" in section or "| warn |" in section
    assert "### Defense Parity under the strongest attack tried" in section
    assert "### Adaptive attack on randomized smoothing" in section
    assert (out / "results" / "soundness.md").read_text().startswith("## Soundness")


def test_ci_columns_in_run_tables(tiny_run):
    _, out, _ = tiny_run
    results = out / "results"

    def check(rows, value, lo, hi):
        seen = 0
        for r in rows:
            v, a, b = r.get(value), r.get(lo), r.get(hi)
            assert lo in r and hi in r
            if v is None or v == "":
                continue
            if a in (None, "") or b in (None, ""):
                # no interval only for groups that do not count (too few speakers)
                assert str(r.get("valid")).lower() in ("false", "0"), r
                continue
            assert float(a) - 1e-6 <= float(v) <= float(b) + 1e-6
            seen += 1
        assert seen

    check(
        json.loads((results / "robustness_synthetic_group_curves.json").read_text()),
        "accuracy",
        "ci_low",
        "ci_high",
    )
    acc = json.loads((results / "rejection_accuracy.json").read_text())
    check(acc, "accuracy", "accuracy_ci_low", "accuracy_ci_high")
    check([r for r in acc if r["abstain_rate"] is not None], *_ABSTAIN)
    cert = json.loads((results / "rejection_certified_accuracy.json").read_text())
    check(cert, "certified_accuracy", "ci_low", "ci_high")
    with open(results / "rejection_fpr_curves.csv") as fh:
        check(list(csv.DictReader(fh)), "fpr", "ci_low", "ci_high")
    md = (out / "report.md").read_text()
    cert_md = md.split("### Certified accuracy vs radius per group", 1)[1]
    assert "[" in cert_md.split("\n## ", 1)[0]  # intervals printed in the table


_ABSTAIN = ("abstain_rate", "abstain_rate_ci_low", "abstain_rate_ci_high")

#: The value that a row's plain ``ci_low`` / ``ci_high`` belong to, by the keys present.
_PLAIN_CI_VALUE = (
    "difference", "fpr", "certified_accuracy", "accuracy", "auc_fpr", "fpr_parity",
    "defense_parity", "value",
)  # fmt: skip


def _rows_with_intervals(obj):
    """Every dict in a JSON document (nested lists and dicts)."""
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _rows_with_intervals(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _rows_with_intervals(v)


def test_no_results_file_holds_an_estimate_outside_its_interval(tiny_run):
    """Issue 13: every ``x`` with ``x_ci_low`` / ``x_ci_high`` (or a row's ``ci_low`` /
    ``ci_high`` with its value) lies inside its interval, in every results JSON file."""
    _, out, _ = tiny_run
    checked = 0
    for path in sorted((out / "results").glob("*.json")):
        for row in _rows_with_intervals(json.loads(path.read_text())):
            pairs = [
                (k[: -len("_ci_low")], k, k[: -len("_ci_low")] + "_ci_high")
                for k in row
                if k.endswith("_ci_low") and k != "ci_low"
            ]
            if "ci_low" in row:
                value = next(
                    (k for k in _PLAIN_CI_VALUE if k in row and f"{k}_ci_low" not in row), None
                )
                assert value is not None, (path.name, sorted(row))
                pairs.append((value, "ci_low", "ci_high"))
            for v, lo, hi in pairs:
                x, a, b = row.get(v), row.get(lo), row.get(hi)
                if not all(isinstance(t, (int, float)) for t in (x, a, b)):
                    continue
                assert a - 1e-6 <= x <= b + 1e-6, (path.name, v, x, a, b)
                checked += 1
    assert checked > 100


def test_no_soundness_removes_and_skips(tiny_run, tmp_path, monkeypatch, capsys):
    ds, out, argv = tiny_run
    monkeypatch.setattr(job, "load_bundled", lambda **_: ds)
    copy = tmp_path / "r"
    shutil.copytree(out, copy)
    argv2 = list(argv)
    argv2[argv2.index("--out") + 1] = str(copy)
    assert cli_run.main(_parse([*argv2, "--no-soundness"])) == 0
    assert "soundness checks:" not in capsys.readouterr().out
    assert not (copy / "results" / "soundness.json").exists()
    config = json.loads((copy / "config.json").read_text())
    assert config["soundness"]["enabled"] is False
    md = (copy / "report.md").read_text()
    assert "Not run in this run folder" in md
    summary = json.loads((copy / "results" / "run_summary.json").read_text())
    assert all("dp_robust_strongest" not in r for r in summary)


@pytest.mark.slow
def test_fresh_rerun_same_seed_gives_identical_results(tiny_run, tmp_path, monkeypatch):
    ds, out, argv = tiny_run
    monkeypatch.setattr(job, "load_bundled", lambda **_: ds)
    argv2 = list(argv)
    argv2[argv2.index("--out") + 1] = str(tmp_path / "r2")
    assert cli_run.main(_parse(argv2)) == 0
    assert _results_bytes(tmp_path / "r2") == _results_bytes(out)
