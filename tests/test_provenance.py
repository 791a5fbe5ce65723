"""Provenance: every results file records, or is vouched for by a sidecar recording,
the configuration, library version and data fingerprint it came from.

Each study writes ``results/<prefix>_provenance.json`` last, with the SHA-256 of
every ``<prefix>_*`` results file of the run; the summary and config files carry
the same fields themselves. Checked on the CLI runs of ``fixtures_studies``.
"""

from __future__ import annotations

import json

import pytest
from fixtures_studies import PREFIX, data_csv, reference_run

import fairrobust
from fairrobust.data import load_folder
from fairrobust.studies import _store

FIELDS = ("config_hash", "library_version", "data_fingerprint")


@pytest.fixture(scope="module")
def fingerprint(tmp_path_factory):
    return load_folder(data_csv(tmp_path_factory)).fingerprint()


def _json(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("study", ["robustness", "rejection"])
def test_every_results_file_is_covered_by_the_provenance_sidecar(
    study, tmp_path_factory, fingerprint
):
    out = reference_run(tmp_path_factory, study)
    results = out / "results"
    prefix = PREFIX[study]
    record = _store.verify_provenance(results, prefix)  # every file listed, hashes match
    assert record["study"] == study
    assert record["dataset"] == "folder"
    assert record["data_fingerprint"] == fingerprint
    assert record["library_version"] == _store.library_version()
    assert record["library_version"] == getattr(fairrobust, "__version__", "0+unknown")
    assert record["config"]["seed"] == 0 and record["config_hash"]
    files = sorted(p.name for p in results.glob(f"{prefix}_*") if not p.name.startswith("."))
    assert sorted(record["files"]) == [f for f in files if not f.endswith("_provenance.json")]
    # the kinds the brief names: tables as CSV and JSON, the summary, the config
    names = set(record["files"])
    assert any(n.endswith(".csv") for n in names) and any(
        n.endswith("_summary.json") for n in names
    )
    assert f"{prefix}_config.json" in names


@pytest.mark.parametrize("study", ["robustness", "rejection"])
def test_summary_and_config_record_their_provenance(study, tmp_path_factory, fingerprint):
    results = reference_run(tmp_path_factory, study) / "results"
    prefix = PREFIX[study]
    sidecar = _json(results / f"{prefix}_provenance.json")
    for name in ("summary", "config"):
        record = _json(results / f"{prefix}_{name}.json")
        for field in FIELDS:
            assert record[field] == sidecar[field], (name, field)
        assert record["config"] == sidecar["config"]
        assert record["data_fingerprint"] == fingerprint


def test_robustness_member_files_record_their_provenance(tmp_path_factory, fingerprint):
    out = reference_run(tmp_path_factory, "robustness")
    summary = _json(out / "results" / "robustness_folder_summary.json")
    members = sorted(out.glob("models/*/robustness-*.json"))
    assert len(members) == len(summary["members"]) == 4
    for path in members:
        meta = _json(path)
        assert meta["data_fingerprint"] == fingerprint
        assert meta["library_version"] == summary["library_version"]
        assert meta["study_config_hash"] == summary["config_hash"]
        assert meta["eval_spec"]["train_spec"]["train_config"]["seed"] == 0


def test_stale_or_foreign_tables_are_detected(tmp_path):
    """A table rewritten after the sidecar, an extra file, a missing one: each is named."""
    results = tmp_path / "results"
    _store.write_table(results / "study_x_models", [{"a": 1.0}])
    _store.write_provenance(
        results,
        "study_x",
        study="x",
        dataset="d",
        data_fingerprint="f" * 16,
        config={"seed": 0},
        config_hash="h",
    )
    _store.verify_provenance(results, "study_x")
    _store.write_table(results / "study_x_models", [{"a": 2.0}])  # a later, unfinished run
    with pytest.raises(ValueError, match=r"study_x_models\.csv: changed"):
        _store.verify_provenance(results, "study_x")
    (results / "study_x_models.csv").unlink()
    (results / "study_x_extra.json").write_text("{}")
    with pytest.raises(ValueError, match=r"study_x_extra\.json: not produced") as info:
        _store.verify_provenance(results, "study_x")
    assert "study_x_models.csv: listed but missing" in str(info.value)
    (results / "study_x_provenance.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"study_x_provenance\.json"):
        _store.verify_provenance(results, "study_x")


def _covered_by_a_sidecar(results) -> list[str]:
    """Files of ``results`` that no ``*_provenance.json`` sidecar vouches for."""
    covered = set()
    for sidecar in results.glob("*_provenance.json"):
        covered |= set(_json(sidecar)["files"]) | {sidecar.name}
    return sorted(
        p.name for p in results.iterdir() if not p.name.startswith(".") and p.name not in covered
    )


def test_report_tables_are_covered_by_a_sidecar(tmp_path, tmp_path_factory):
    import shutil

    from fairrobust import report
    from fairrobust.studies.summary import write_summary

    results = tmp_path / "results"
    for study in ("robustness", "rejection"):
        shutil.copytree(reference_run(tmp_path_factory, study) / "results", results,
                        dirs_exist_ok=True)  # fmt: skip
    assert _covered_by_a_sidecar(results) == []  # the studies' own files are covered
    write_summary(tmp_path)  # run_summary.{csv,json}, run_findings.json + run_provenance.json
    assert (results / "run_summary.csv").is_file()
    report.write_report(tmp_path)
    assert _covered_by_a_sidecar(results) == []


ENVIRONMENT_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "numpy",
    "scipy",
    "scikit-learn",
    "librosa",
)


def _check_environment(env):
    assert env["python"].count(".") == 2
    assert sorted(env["packages"]) == sorted(ENVIRONMENT_PACKAGES)
    assert env["packages"]["jax"] == __import__("jax").__version__
    assert env["packages"]["numpy"] == __import__("numpy").__version__
    assert env["jax_backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
    assert env["jax_devices"] and all(":" in d for d in env["jax_devices"])
    assert env["cpu_model"] and env["platform"]


def test_environment_fields_and_sidecar_is_byte_identical(tmp_path):
    from fairrobust import studies

    env = studies.environment()
    _check_environment(env)
    assert env == studies.environment()
    (tmp_path / "x_table.csv").write_text("a\n1\n")
    kw = dict(study="s", dataset="d", data_fingerprint="f", config={"seed": 0}, config_hash="h")
    first = _store.write_provenance(tmp_path, "x", **kw).read_bytes()
    second = _store.write_provenance(tmp_path, "x", **kw).read_bytes()
    assert first == second
    _check_environment(json.loads(first)["environment"])


@pytest.mark.parametrize("study", ["robustness", "rejection"])
def test_study_sidecar_records_the_environment(study, tmp_path_factory):
    results = reference_run(tmp_path_factory, study) / "results"
    _check_environment(_json(results / f"{PREFIX[study]}_provenance.json")["environment"])
