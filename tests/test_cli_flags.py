"""The command line's one vocabulary, its help, its early checks and its config files.

Fast: parsing only, or subprocesses that must fail before any data is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
import tomllib

import pytest

from fairrobust.cli import _flags, build_parser, main
from fairrobust.cli import run as cli_run


def _commands() -> dict[str, argparse.ArgumentParser]:
    subs = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001 - no argparse API
    study = subs["study"]._subparsers._group_actions[0].choices  # noqa: SLF001
    return {
        "run": subs["run"],
        "robustness": study["robustness"],
        "rejection": study["rejection"],
        "train": subs["train"],
        "certify": subs["certify"],
        "config": subs["config"],
    }


def _visible(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        flag: a
        for a in parser._actions  # noqa: SLF001
        for flag in a.option_strings
        if a.help is not argparse.SUPPRESS and flag not in ("-h", "--help")
    }


#: Flags that are deliberately not one definition: what ``--out`` is differs per command
#: (a run folder, a study folder, a training folder, certify's CSV, config's TOML file).
_PER_COMMAND = {"--out"}
#: Earlier spellings: each must be hidden (deprecated) wherever it still parses.
_OLD = {
    "--max-test",
    "--max-test-examples",
    "--bootstrap",
    "--models",
    "--sigma",
    "--norm",
    "--adaptive",
}


def test_every_shared_flag_is_one_definition():
    """A flag in several commands has the same dest, help, default, type, choices and
    nargs everywhere, and is the one entry of ``_flags.FLAGS``."""
    seen: dict[str, tuple] = {}
    where: dict[str, list[str]] = {}
    for name, parser in _commands().items():
        for flag, a in _visible(parser).items():
            key = (a.dest, a.help, a.default, a.type, a.choices, a.nargs, type(a).__name__)
            where.setdefault(flag, []).append(name)
            if flag in _PER_COMMAND:
                continue
            assert seen.setdefault(flag, key) == key, f"{flag} differs in {name}"
    shared = {f for f, names in where.items() if len(names) > 1} - _PER_COMMAND
    assert shared, "no shared flags found"
    for flag in shared:
        assert flag in _flags.FLAGS, f"{flag} is shared but not defined in _flags.FLAGS"
    # the vocabulary the issue names, in every command that has the concept
    for name in ("run", "robustness", "rejection", "certify"):
        assert "--max-examples" in where and name in where["--max-examples"]
    for name in ("run", "robustness", "rejection", "train"):
        assert name in where["--no-resume"] and name in where["--no-progress"]
    for name in ("run", "robustness", "rejection"):
        assert name in where["--resume"]


def test_no_two_spellings_of_one_concept():
    """No visible flag is an earlier spelling; one flag per config field (the flag's dest
    is the field's name); every list flag is comma-separated."""
    for name, parser in _commands().items():
        flags = _visible(parser)
        assert not _OLD & set(flags), (name, _OLD & set(flags))
        dests = [a.dest for a in {id(a): a for a in flags.values()}.values()]
        assert len(dests) == len(set(dests)), (name, dests)
        for flag, a in flags.items():
            assert "';'" not in (a.help or ""), (name, flag)
    assert "--model" not in _visible(_commands()["train"])  # --model is always a SPEC


@pytest.mark.parametrize(
    ("argv", "dest", "value", "old"),
    [
        (["study", "robustness", "--max-test", "5"], "max_examples", 5, "--max-test"),
        (["study", "rejection", "--max-test-examples", "5"], "max_examples", 5, "--max-test-"),
        (["run", "--bootstrap", "7"], "bootstrap_resamples", 7, "--bootstrap"),
        (["study", "robustness", "--models", "m5"], "arch", ("m5",), "--models"),
        (["train", "--model", "m5-tricks"], "arch", ("m5-tricks",), "--model"),
        (["certify", "--checkpoint", "c", "--sigma", "0.1,0.2"], "certify_sigmas", (0.1, 0.2),
         "--sigma"),
        (["certify", "--checkpoint", "c", "--norm", "l1"], "certify_norm", "l1", "--norm"),
        (["certify", "--checkpoint", "c", "--adaptive"], "certify_adaptive", True, "--adaptive"),
        (["certify", "--checkpoint", "c", "--batch-size", "4"], "sample_batch_size", 4,
         "--batch-size"),
        (["study", "robustness", "--preprocess", "none;quantize:bits=8"], "preprocess",
         ("none", "quantize:bits=8"), "';'"),
        (["run", "--intersections", "a x b;c x d"], "intersections", ["a x b", "c x d"], "';'"),
        (["run", "--intersections", "a,b"], "intersections", ["a x b"], "'a,b'"),
    ],
)  # fmt: skip
def test_earlier_spellings_still_work_with_one_warning(capsys, argv, dest, value, old):
    args = build_parser().parse_args([*argv, "--out", "o"])
    assert getattr(args, dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fairrobust: warning:") and old in err[0]
    assert "deprecated" in err[0]


def test_comma_lists_everywhere():
    p = build_parser()
    args = p.parse_args(
        ["study", "robustness", "--preprocess", "none,lowpass:cutoff_hz=4000,gradient=bpda",
         "--intersections", "a x b, c x d", "e+f", "--at-eps", "0,0.01", "--out", "o"]
    )  # fmt: skip
    assert args.preprocess == ("none", "lowpass:cutoff_hz=4000,gradient=bpda")
    assert args.intersections == ["a x b", "c x d", "e+f"]
    assert args.at_eps == (0.0, 0.01)
    args = p.parse_args(
        ["certify", "--checkpoint", "c", "--certify-sigmas", "0.05,0.1", "--out", "o"]
    )
    assert args.certify_sigmas == (0.05, 0.1)


def test_run_help_documents_the_folder_layout_and_the_presets():
    out = subprocess.run(
        [sys.executable, "-m", "fairrobust", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "metadata.csv" in out
    for column in ("path", "label", "speaker", "split"):
        assert f"\n  {column} " in out
    assert "path,label,speaker,split," in out  # an example header and line
    for name in _flags.PRESETS:
        assert f"\n  {name} " in out, name
    assert max(len(line) for line in out.splitlines()) <= 120


def test_cli_presets_are_the_configs_presets():
    from fairrobust.studies import config

    assert _flags.PRESETS == config.PRESETS
    assert _flags.ARCHS == config.MODELS


# ----------------------------------------------------------------------------- early checks


def _fails_fast(argv: list[str], *expected: str) -> str:
    """Run ``fairrobust ARGV`` in a fresh process; it must exit 2 within a second or two,
    without importing JAX (the check comes before any import of the computation)."""
    wrapped = (
        "import sys\n"
        "from fairrobust.cli import main\n"
        "try:\n"
        f"    rc = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "print('JAX' if 'jax' in sys.modules else 'NOJAX', rc)\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert proc.stdout.split()[-2:] == ["NOJAX", "2"], proc.stdout + proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr
    assert seconds < 5, seconds  # a Python start; no JAX import, no data
    return proc.stderr


def test_train_rejects_a_negative_noise_std_before_loading_data():
    _fails_fast(
        ["train", "--noise-std", "-1", "--out", "o"], "--noise-std", "expected a number >= 0"
    )


def test_an_unknown_dataset_is_named_before_the_data_dir():
    err = _fails_fast(["study", "robustness", "--dataset", "nosuchset"], "nosuchset", "bundled")
    assert "--data-dir" not in err.split("error:")[-1]
    assert "invalid choice" in err and "common-voice" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--max-examples", "-1"], "--max-examples"),
        (["run", "--epochs", "3"], "unrecognized arguments"),
        (["study", "robustness", "--epochs", "0", "--out", "o"], "--epochs"),
        (["study", "robustness", "--arch", "resnet", "--out", "o"], "--arch"),
        (["study", "rejection", "--num-samples", "10,x", "--out", "o"], "--num-samples"),
        (["certify", "--checkpoint", "c", "--certify-sigmas", "0", "--out", "o"], "> 0"),
        (["train", "--at-eps", "0,0.1", "--out", "o"], "one value"),
        (["run", "--words", "yes,no"], "--words: only for --dataset common-voice"),
        (["run", "--dataset", "fsdd", "--locale", "de", "--data-dir", "d"], "--locale"),
        (["run", "--dataset", "fsdd"], "--data-dir is required"),
    ],
)
def test_bad_flags_fail_before_anything_is_loaded(argv, expected):
    _fails_fast(argv, expected)


def test_loader_options_only_when_given():
    p = build_parser()
    args = p.parse_args(["run", "--dataset", "common-voice", "--data-dir", "cv"])
    assert _flags.load_options(args) == {}
    args = p.parse_args(
        ["run", "--dataset", "common-voice", "--data-dir", "cv", "--locale", "de",
         "--words", "ja, nein", "--sample-rate", "8000"]
    )  # fmt: skip
    assert _flags.load_options(args) == {
        "locale": "de",
        "words": ("ja", "nein"),
        "sample_rate": 8000,
    }
    _flags.check_data(args)  # accepted with common-voice


# ----------------------------------------------------------------------------- config files


@pytest.mark.parametrize("name", _flags.PRESETS)
def test_config_command_round_trips_every_preset(tmp_path, capsys, name):
    """``fairrobust config --preset NAME`` is valid TOML with every key of every table,
    each under a comment; ``--config`` reads it back to exactly the preset's configs (also
    on top of another preset: the file is complete)."""
    from fairrobust.studies import config

    assert main(["config", "--preset", name]) == 0
    text = capsys.readouterr().out
    data = tomllib.loads(text)
    presets = [config.preset(t, name) for t in config.STUDY_TABLES]
    for table, cfg in zip(config.STUDY_TABLES, presets, strict=True):
        fields = {f.name for f in dataclasses.fields(cfg)}
        set_ = {f for f in fields if getattr(cfg, f) is not None}
        assert set(data[table]) == set_, table
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("# "), line  # each key has its meaning above it
    assert max(len(line) for line in lines) <= 120
    path = tmp_path / "preset.toml"
    path.write_text(text)
    for base in _flags.PRESETS:
        assert tuple(config.load_configs(base, path)) == tuple(presets), (name, base)
    # the study commands read their own table of the same file
    assert config.load_config("rejection", "quick", path) == presets[1]


def test_every_config_field_is_documented():
    from fairrobust.studies import config
    from fairrobust.studies.config_toml import field_docs

    for cls in (config.RobustnessConfig, config.RejectionConfig, config.SoundnessConfig):
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            assert len(docs.get(f.name, "")) > 8, f"{cls.__name__}.{f.name} has no meaning"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[rejection]\nsigma = -1\n", "[rejection] sigma: expected a positive number, got -1"),
        ("[rejection]\nsigma = 'x'\n", "[rejection] sigma: expected a number, got 'x'"),
        ("[robustness]\nepochs = 0\n", "[robustness] epochs: expected an integer >= 1"),
        ("[robustness]\nat_eps = [0, 'a']\n", "[robustness] at_eps[1]: expected a number"),
        ("[soundness]\nrestarts = -2\n", "[soundness] restarts: expected an integer >= 0"),
        ("[rejection]\nsigmaa = 1\n", "[rejection] sigmaa: unknown field; valid fields:"),
        ("[robustness]\nmax_test = 3\n", "[robustness] max_test: renamed to 'max_examples'"),
    ],
)
def test_config_errors_name_the_file_the_table_and_the_key(tmp_path, toml, expected):
    from fairrobust.studies import config

    path = tmp_path / "run.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as info:
        config.load_configs("quick", path)
    assert str(info.value).startswith(f"{path}: "), info.value
    assert expected in str(info.value)


def test_a_bad_config_value_fails_before_the_data(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[rejection]\nsigma = -1\n")
    # --dataset folder with a folder that does not exist: the config error comes first
    proc = subprocess.run(
        [sys.executable, "-m", "fairrobust", "run", "--dataset", "folder", "--data-dir",
         str(tmp_path / "missing"), "--config", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "run.toml: [rejection] sigma: expected a positive number, got -1" in proc.stderr


# ----------------------------------------------------------------------------- the summary


def test_summary_fits_120_columns_with_3_significant_digits():
    row = {
        "attribute": "gender x phone type",
        "ci_level": 0.95,
        "baseline_member": "m5_at0_noise0",
        "robust_member": "m5_at0.01_noise0",
        "worst_group_auc_acc": "female x cellphone",
        "dp_baseline_n": 296,
        "dp_robust_n": 296,
        "rs_n": 1000,
        "worst_group_nr": "female x landline",
    }
    keys = ["dp_baseline", "dp_robust", "fpr_parity_nr", "fpr_parity_rs"]
    keys += [f"dp_{m}_{k}" for m in ("baseline", "robust")
             for k in ("strongest", "study_attack_same_clips")]  # fmt: skip
    for key in keys:
        row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = 0.0002208, 3.314e-05, 0.001299
    row["dp_baseline_strongest_n"] = row["dp_robust_strongest_n"] = 40
    text = cli_run.format_summary([row, {**row, "attribute": "dialect"}])
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "0.000221 [3.31e-05, 0.0013]" in text
    assert "0.0002208" not in text
    assert "FPR Parity RS (N=1000)" in text and "(same 40 clips)" in text
    narrow = cli_run.format_summary([row], width=60)  # too narrow for columns: one block per row
    assert max(len(line) for line in narrow.splitlines()) <= 60
