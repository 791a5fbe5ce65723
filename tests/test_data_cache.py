"""The preprocessing cache: identical arrays, no re-decoding, invalidation on any change."""

import os

import numpy as np
import pytest
from fixtures_data import make_folder, write_wav

from fairrobust.data import folder as folder_mod
from fairrobust.data import load_folder


def _no_decode(path):
    raise AssertionError(f"decoded {path} on a cache hit")


def test_cache_hit_identical_without_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path, n_speakers=4)
    first = load_folder(root, sample_rate=8000, duration=0.5)
    monkeypatch.setattr(folder_mod, "read_audio", _no_decode)
    second = load_folder(root, sample_rate=8000, duration=0.5)
    assert second.meta["from_cache"] and not first.meta["from_cache"]
    np.testing.assert_array_equal(second.waveforms, first.waveforms)
    for field in ("labels", "speakers", "splits", "paths"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert second.attributes.keys() == first.attributes.keys()
    assert second.report == first.report and second.class_names == first.class_names
    assert second.waveforms.shape == (8, 4000)
    # any preprocessing parameter change is a miss
    with pytest.raises(AssertionError, match="cache hit"):
        load_folder(root, sample_rate=16000, duration=0.5)
    with pytest.raises(AssertionError, match="cache hit"):
        load_folder(root, sample_rate=8000, duration=0.5, cache=False)


def test_cache_invalidated_by_changed_source(tmp_path):
    root = make_folder(tmp_path, n_speakers=4)
    first = load_folder(root)
    path = root / "audio" / "0_cat.wav"
    write_wav(path, np.full(800, 0.5, np.float32), 16000)
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse-grained file systems
    second = load_folder(root)
    assert not second.meta["from_cache"]
    assert not np.array_equal(first.waveforms, second.waveforms)
