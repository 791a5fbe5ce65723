"""WUW Corpus II loader on a synthetic corpus in the published layout, and on real sessions."""

import json
import shutil

import numpy as np
import pytest
from fixtures_data import SHARED, make_wuw

from fairrobust.data import load_dataset, load_wuw
from fairrobust.data.audio import mulaw_decode
from fairrobust.data.wuw import (
    REASON_MISMATCH,
    REASON_TIMES,
    WUW_CLASSES,
    normalize_transcription,
    transcription_matches,
)


@pytest.fixture(scope="module")
def wuw_root(tmp_path_factory):
    return make_wuw(tmp_path_factory.mktemp("wuw"))


@pytest.mark.parametrize(
    ("text", "keyword", "ok"),
    [
        ("Ope{breath}rator", "Operator", True),
        ("{click} {breath} Think{breath}Engine {breath}", "ThinkEngine", True),
        ("[static\\] Onword [\\static]", "Onword", True),
        ("{static] Operator", "Operator", True),
        ("[phone fuzz/] [background talking/] {breath Onword [/phone fuzz]", "Onword", True),
        ("Wild [click] fire [static] ", "Wildfire", True),
        ("(( )) ((Wild))", "Wildfire", False),
        ("done", "Onword", False),
        ("say five", "Operator", False),
        ("-perator", "Operator", False),
        ("", "ThinkEngine", False),
    ],
)
def test_transcription_matching(text, keyword, ok):
    assert transcription_matches(text, keyword) is ok


def test_normalize_transcription():
    assert normalize_transcription("[click] Ope{breath}rator [static]") == "operator"


def test_load_isolated(wuw_root):
    ds = load_wuw(wuw_root)
    assert ds.class_names == WUW_CLASSES
    assert ds.waveforms.shape == (len(ds), 16000) and ds.waveforms.dtype == np.float32
    assert np.abs(ds.waveforms).max() <= 1
    rep = ds.report
    assert rep.n_files == 50 and rep.n_loaded == 48 == len(ds)
    assert rep.excluded[REASON_TIMES] == ("calls/00001/WUWII00001_002.ulaw",)
    assert rep.excluded[REASON_MISMATCH] == ("calls/00002/WUWII00002_001.ulaw",)
    assert "calls/00003/WUWII00003_002.ulaw" in ds.paths  # Think{breath}Engine kept
    assert "calls/00004/WUWII00004_001.ulaw" in ds.paths  # Ope{breath}rator kept
    assert set(ds.attributes) == {"gender", "dialect", "phonetype"}
    labels = {p: lab for p, lab in zip(ds.paths, ds.labels, strict=True)}
    assert labels["calls/00000/WUWII00000_004.ulaw"] == 3  # Wildfire
    # open-user: no session in two splits; 10 sessions -> 7 / 1 / 2
    per_split = {s: set(ds.speakers[ds.splits == s]) for s in ("train", "val", "test")}
    assert [len(v) for v in per_split.values()] == [7, 1, 2]
    assert not (
        per_split["train"] & per_split["val"]
        or per_split["train"] & per_split["test"]
        or per_split["val"] & per_split["test"]
    )
    assert any("resampled" in n for n in rep.notes)


def test_keyword_cut_with_margin(wuw_root):
    ds = load_wuw(wuw_root, sample_rate=8000, duration=1.0, margin=0.1, cache=False)
    # keyword 0.8..1.3 s + 0.1 s each side = 0.7 s = 5600 samples, centred in 8000
    raw = (wuw_root / ds.paths[0]).read_bytes()
    expected = mulaw_decode(np.frombuffer(raw, np.uint8)[5600:11200])
    np.testing.assert_array_equal(ds.waveforms[0, 1200:6800], expected)
    assert np.all(ds.waveforms[0, :1200] == 0) and np.all(ds.waveforms[0, 6800:] == 0)
    assert ds.report.notes == ()  # no resampling at 8 kHz


def test_utterance_options(wuw_root):
    sent = load_wuw(wuw_root, utterances="sentence")
    assert sent.report.n_files == 50 and len(sent) == 50
    assert all(int(p[-8:-5]) >= 6 for p in sent.paths)
    both = load_wuw(wuw_root, utterances="all", drop_mismatched=False)
    assert len(both) == 99 and both.meta["mismatched"] == ["calls/00002/WUWII00002_001.ulaw"]
    iso = load_wuw(wuw_root)
    iso_split = dict(zip(iso.speakers, iso.splits, strict=True))
    assert all(iso_split[s] == sp for s, sp in zip(both.speakers, both.splits, strict=True))
    with pytest.raises(ValueError, match=r"utterances.*isolated"):
        load_wuw(wuw_root, utterances="some")
    assert len(load_dataset("wuw", wuw_root)) == 48


def test_checksum_mismatch(tmp_path):
    root = make_wuw(tmp_path, n_sessions=3, utterances=range(1, 3))
    bad = root / "calls/00000/WUWII00000_001.ulaw"
    bad.write_bytes(bad.read_bytes()[:-10])  # truncated
    with pytest.raises(ValueError, match=r"WUWII00000_001\.ulaw: checksum mismatch"):
        load_wuw(root)
    ds = load_wuw(root, on_error="skip")
    assert ds.report.excluded["checksum mismatch"] == ("calls/00000/WUWII00000_001.ulaw",)
    assert len(ds) == 3 and len(load_wuw(root, verify_checksum=False)) == 4


def test_missing_metadata_and_clip(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.json"):
        load_wuw(tmp_path)
    root = make_wuw(tmp_path / "c", n_sessions=3, utterances=range(1, 3))
    (root / "calls/00002/WUWII00002_002.ulaw").unlink()
    with pytest.raises(FileNotFoundError, match=r"WUWII00002_002\.ulaw.*data\.json entry 5"):
        load_wuw(root)
    assert load_wuw(root, on_error="skip").report.excluded["file not found"] == (
        "calls/00002/WUWII00002_002.ulaw",
    )


def test_bad_metadata(tmp_path):
    root = make_wuw(tmp_path, n_sessions=3, utterances=range(1, 3))
    meta = json.loads((root / "data.json").read_text())
    meta["entries"][0]["utteranceNumber"] = "011"
    (root / "data.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"entry 0 .*utteranceNumber 011: expected 001-010"):
        load_wuw(root)
    del meta["entries"][1]["startTime"]
    (root / "data.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"data\.json: entry 1: missing key\(s\) \['startTime'\]"):
        load_wuw(root)
    (root / "data.json").write_bytes(b'{"entries": ["\xff\xfe"]}')
    with pytest.raises(ValueError, match=r"data\.json: not valid UTF-8"):
        load_wuw(root)


def test_real_sessions(tmp_path):
    src = SHARED / "data" / "wuw-corpus-ii"
    if not (src / "data.json").is_file():
        pytest.skip("../shared/data/wuw-corpus-ii not available")
    entries = json.loads((src / "data.json").read_text())["entries"]
    keep = {"00000", "00001", "00002", "00048", "00081"}  # 00048: 0..0 times, 00081: mismatch
    sub = [e for e in entries if e["sessionNumber"] in keep]
    for e in sub:
        (tmp_path / e["filePath"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / e["filePath"], tmp_path / e["filePath"])
    (tmp_path / "data.json").write_text(json.dumps({"entries": sub}))
    ds = load_wuw(tmp_path)
    assert ds.report.n_files == 25
    assert "calls/00048/WUWII00048_001.ulaw" in ds.report.excluded[REASON_TIMES]
    assert "calls/00081/WUWII00081_001.ulaw" in ds.report.excluded[REASON_MISMATCH]
    assert ds.report.n_loaded + sum(map(len, ds.report.excluded.values())) == 25
    assert np.isfinite(ds.waveforms).all() and np.abs(ds.waveforms).max() > 0.05
