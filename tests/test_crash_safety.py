"""Crash safety: SIGKILL a running study, rerun it, get the uninterrupted results byte for byte.

The CLI runs in a subprocess on a tiny folder dataset (``fixtures_studies``);
it is killed with SIGKILL at seeded random points, checked for partially
written files, rerun to completion in the same folder, and its ``results/``
compared with an uninterrupted run in another folder. Damaged intermediate
files (truncated member ``.npz`` / ``.json``, caches, checkpoints) must be
recomputed or raise an error naming the file, never be used.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fixtures_studies import (
    PREFIX,
    check_no_partial_files,
    reference_run,
    results_bytes,
    run,
    run_killed,
)

from fairrobust.studies import _store

# (study, glob of a file that marks progress, seconds to wait after it appears)
KILL_POINTS = {
    "robustness": ["models/*/robustness-*.json", "models/*/last.ckpt", "results/*config.json"],
    "rejection": [
        "cache/rejection/counts-*.partial.npz",
        "cache/rejection/nr-*.npz",
        "models/rejection-rs-*/last.ckpt",
        "cache/rejection/certify-*.partial.npz",
    ],
}


def _truncate_one_member(out):
    """Cut a finished member's ``.npz`` in half (a reader must not use it)."""
    members = sorted(out.glob("models/*/robustness-*.npz"))
    if members:
        data = members[0].read_bytes()
        members[0].write_bytes(data[: len(data) // 2])
    return members[:1]


@pytest.mark.parametrize(
    "study",
    ["robustness", pytest.param("rejection", marks=pytest.mark.slow)],  # CI time: 30 s
)
def test_killed_study_resumes_to_identical_results(study, tmp_path, tmp_path_factory):
    """One seeded kill mid-run (plus a truncated member file), rerun, byte-identical results."""
    ref = reference_run(tmp_path_factory, study)
    rng = np.random.default_rng(7 if study == "robustness" else 8)
    out = tmp_path / "run"
    marker = KILL_POINTS[study][0]
    run_killed(tmp_path_factory, study, out, marker=marker, delay=float(rng.uniform(0.0, 0.5)))
    check_no_partial_files(out)
    _truncate_one_member(out)
    run(tmp_path_factory, study, out)
    assert results_bytes(out) == results_bytes(ref)
    _store.verify_provenance(out / "results", PREFIX[study])


@pytest.mark.slow
@pytest.mark.parametrize("study", ["robustness", "rejection"])
def test_many_kills_at_random_points(study, tmp_path, tmp_path_factory):
    """Several seeded kills (progress markers and pure time points) in the same folder."""
    ref = reference_run(tmp_path_factory, study)
    rng = np.random.default_rng(11)
    out = tmp_path / "run"
    killed = 0
    for marker in KILL_POINTS[study]:
        killed += run_killed(
            tmp_path_factory, study, out, marker=marker, delay=float(rng.uniform(0.0, 1.0))
        )
        check_no_partial_files(out)
    for _ in range(3):
        killed += run_killed(tmp_path_factory, study, out, delay=float(rng.uniform(1.0, 8.0)))
        check_no_partial_files(out)
    assert killed >= 2, "the kills never hit a running study; the test checked nothing"
    run(tmp_path_factory, study, out)
    assert results_bytes(out) == results_bytes(ref)
    _store.verify_provenance(out / "results", PREFIX[study])


@pytest.mark.slow
def test_rerun_after_truncating_every_kind_of_file(tmp_path, tmp_path_factory):
    """Cut member JSON, member NPZ and a results table of a finished run; rerun repairs all."""
    import shutil

    ref = reference_run(tmp_path_factory, "robustness")
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    jsons = sorted(out.glob("models/*/robustness-*.json"))
    npzs = sorted(out.glob("models/*/robustness-*.npz"))
    jsons[0].write_text(jsons[0].read_text()[:40])
    npzs[-1].write_bytes(npzs[-1].read_bytes()[:100])
    table = out / "results" / "robustness_folder_models.csv"
    table.write_text(table.read_text()[:30])
    with pytest.raises(ValueError, match=r"robustness_folder_models\.csv: changed"):
        _store.verify_provenance(out / "results", "robustness_folder")
    run(tmp_path_factory, "robustness", out)
    assert results_bytes(out) == results_bytes(ref)


# ----------------------------------------------------------------------------- damaged files


def _member(tmp_path):
    arrays = {"correct": np.eye(3, dtype=bool)}
    _store.save_member(tmp_path, "m", spec_hash="abc", meta={"x": 1}, arrays=arrays)
    return tmp_path / "m.json", tmp_path / "m.npz"


@pytest.mark.parametrize("which", ["json", "npz"])
@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_member_is_never_used(tmp_path, caplog, which, keep):
    json_path, npz_path = _member(tmp_path)
    target = json_path if which == "json" else npz_path
    data = target.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    target.write_bytes(data[:n])
    with caplog.at_level(logging.WARNING, logger="fairrobust.studies"):
        assert _store.load_member(tmp_path, "m", spec_hash="abc") is None
    assert target.name in caplog.text  # the log names the damaged file


def test_member_npz_without_its_json_marker_is_not_finished(tmp_path):
    json_path, _ = _member(tmp_path)
    json_path.unlink()  # killed between writing the arrays and the marker
    assert _store.load_member(tmp_path, "m", spec_hash="abc") is None


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_rejection_cache_is_recomputed(tmp_path, keep):
    path = tmp_path / "counts-k.npz"
    _store.save_cached(path, "k", counts=np.arange(12).reshape(3, 4), n_done=np.asarray(3))
    assert _store.load_cached(path, "k") is not None
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    assert _store.load_cached(path, "k") is None


@pytest.mark.parametrize("part", ["npz", "npy"])
def test_truncated_dataset_cache_is_rebuilt(tmp_path, part):
    from fixtures_data import make_folder

    from fairrobust._io import cache_dir
    from fairrobust.data import load_folder

    make_folder(tmp_path / "d", n_speakers=3)
    first = load_folder(tmp_path / "d")
    (entry,) = (cache_dir() / "datasets").glob("folder-*.npz")
    target = entry if part == "npz" else entry.with_suffix(".npy")
    target.write_bytes(target.read_bytes()[:50])
    again = load_folder(tmp_path / "d")
    assert again.meta["from_cache"] is False  # rebuilt, not read back
    np.testing.assert_array_equal(again.waveforms, first.waveforms)
    assert load_folder(tmp_path / "d").meta["from_cache"] is True


def test_truncated_checkpoint_raises_naming_the_file(tmp_path):
    from fairrobust.train import load_checkpoint

    path = tmp_path / "last.ckpt"
    path.write_bytes(b"\x82\xa6header" + bytes(20))
    with pytest.raises(ValueError, match=r"last\.ckpt: not a readable fairrobust checkpoint"):
        load_checkpoint(path)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    """A write that dies before the rename leaves the previous file intact and no temp."""
    from fairrobust import _io

    path = tmp_path / "r.json"
    _io.atomic_write_json(path, {"v": 1})

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_io.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write_json(path, {"v": 2})
    assert _io.read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
