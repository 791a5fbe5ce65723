"""The bundled WUW asset end to end: checksum, counts, splits, cache, equality with load_wuw."""

import time

import numpy as np
import pytest
from fixtures_data import SHARED

from fairrobust.data import BUNDLED_PATH, load_bundled, load_dataset, load_wuw
from fairrobust.data.bundled import BUNDLED_SHA256, read_bundled, sha256_file


@pytest.fixture(scope="module")
def bundled():
    return load_bundled(cache=False)


def test_asset_checksum_and_size():
    assert sha256_file(BUNDLED_PATH) == BUNDLED_SHA256
    assert BUNDLED_PATH.stat().st_size < 12e6
    meta = read_bundled(members=("metadata",))["metadata"]
    assert len(meta["entries"]) == 1557
    assert (BUNDLED_PATH.parent / "LICENSE.md").is_file()
    assert "Kepuska" in (BUNDLED_PATH.parent / "README.md").read_text()


def test_load_bundled(bundled):
    ds = bundled
    assert ds.waveforms.shape == (1502, 16000) and ds.waveforms.dtype == np.float32
    assert ds.report.n_files == 1557
    assert ds.report.n_loaded + sum(map(len, ds.report.excluded.values())) == 1557
    assert len(ds.report.excluded["transcription lacks the keyword"]) == 29
    assert np.isfinite(ds.waveforms).all() and np.abs(ds.waveforms).max() <= 1
    sessions = {s: set(ds.speakers[ds.splits == s]) for s in ("train", "val", "test")}
    assert not (sessions["train"] & sessions["test"] or sessions["train"] & sessions["val"])
    assert all(np.bincount(ds.split(s).labels, minlength=5).min() > 20 for s in sessions)
    for key in ("gender", "dialect", "phonetype"):
        assert "unknown" not in set(ds.attributes[key])


def test_cache_hit_fast_and_identical(bundled):
    first = load_bundled()
    t = time.perf_counter()
    second = load_bundled()
    elapsed = time.perf_counter() - t
    assert second.meta["from_cache"] and not first.meta["from_cache"]
    assert second.fingerprint() == first.fingerprint() == bundled.fingerprint()
    assert elapsed < 2.0  # typically ~0.15 s
    assert load_dataset("bundled").fingerprint() == first.fingerprint()
    with pytest.raises(ValueError, match="takes no data_dir"):
        load_dataset("bundled", "somewhere")


def test_corrupt_asset_checksum(tmp_path):
    copy = tmp_path / "asset.npz"
    data = bytearray(BUNDLED_PATH.read_bytes())
    data[5000] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"asset\.npz: checksum mismatch"):
        load_bundled(path=copy)


def test_bundled_options():
    with pytest.raises(ValueError, match="margin"):
        load_bundled(margin=0.5)
    with pytest.raises(ValueError, match="isolated"):
        load_bundled(utterances="sentence")


def test_equals_load_wuw_on_the_corpus(bundled):
    root = SHARED / "data" / "wuw-corpus-ii"
    if not (root / "data.json").is_file():
        pytest.skip("../shared/data/wuw-corpus-ii not available")
    assert load_wuw(root, cache=False).fingerprint() == bundled.fingerprint()
