"""FSDD, AudioMNIST, Common Voice and folder-CSV loaders on small directories in their layouts."""

import json

import numpy as np
import pytest
from fixtures_data import SHARED, make_audiomnist, make_common_voice, make_folder, make_fsdd

from fairrobust.data import (
    load_audiomnist,
    load_common_voice,
    load_dataset,
    load_folder,
    load_fsdd,
)
from fairrobust.data.audiomnist import age_bucket, normalize_accent
from fairrobust.data.commonvoice import CV_CLASSES, REASON_FIREFOX, normalize_sentence

# ---------------------------------------------------------------- FSDD


def test_fsdd_official_split(tmp_path):
    ds = load_fsdd(make_fsdd(tmp_path))
    assert ds.waveforms.shape == (72, 16000)
    takes = np.array([int(p.rsplit("_", 1)[1][:-4]) for p in ds.paths])
    assert set(ds.splits[takes < 5]) == {"test"}
    assert set(ds.splits[(takes >= 5) & (takes <= 9)]) == {"val"}
    assert set(ds.splits[takes >= 10]) == {"train"}
    acc = dict(zip(ds.speakers, ds.attributes["accent"], strict=True))
    assert acc == {"george": "GRC/Greek", "jackson": "USA/neutral"}
    assert "resampled 72 clips from 8000 Hz to 16000 Hz" in ds.report.notes


def test_fsdd_missing_speakers_json(tmp_path):
    root = make_fsdd(tmp_path, speakers=("george",), takes=1)
    (root / "speakers.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"speakers\.json"):
        load_fsdd(root)


def test_fsdd_real():
    root = SHARED / "data" / "fsdd"
    if not (root / "speakers.json").is_file():
        pytest.skip("../shared/data/fsdd not available")
    ds = load_dataset("fsdd", root, sample_rate=8000)
    assert len(ds) == 3000 and ds.waveforms.shape[1] == 8000
    assert (ds.splits == "test").sum() == 300 and (ds.splits == "val").sum() == 300
    assert set(ds.attributes["accent"]) == {"USA/neutral", "DEU/German", "BEL/French", "GRC/Greek"}


# ---------------------------------------------------------------- AudioMNIST


def test_age_and_accent_normalisation():
    assert [age_bucket(a) for a in (30, "25", "19", "61", "1234", "x")] == [
        "thirties",
        "twenties",
        "teens",
        "sixties",
        None,
        None,
    ]
    assert normalize_accent("german") == normalize_accent("German") == "German"
    assert normalize_accent("Egyptian_American?") == "Egyptian_American?"
    assert normalize_accent("  ") == "unknown"


@pytest.mark.parametrize("data_subdir", [False, True])
def test_audiomnist_layout_and_quirks(tmp_path, data_subdir):
    make_audiomnist(tmp_path, data_subdir=data_subdir)
    with pytest.warns(UserWarning, match=r"speaker 45: impossible age '1234'"):
        ds = load_audiomnist(tmp_path)
    assert ds.waveforms.shape == (90, 16000)
    by_speaker = {
        s: {k: v[ds.speakers == s][0] for k, v in ds.attributes.items()} for s in ("01", "02", "45")
    }
    assert by_speaker["01"] == {
        "gender": "male",
        "age": "thirties",
        "accent": "German",
        "native_speaker": "no",
    }
    assert by_speaker["02"]["accent"] == "German" and by_speaker["02"]["age"] == "twenties"
    assert by_speaker["45"]["age"] == "unknown"
    assert by_speaker["45"]["accent"] == "Egyptian_American?"
    assert any("1234" in n for n in ds.report.notes)
    # closed-user 7:1:2 within every (speaker, digit)
    for s in ("01", "02", "45"):
        for d in range(3):
            sel = (ds.speakers == s) & (ds.labels == d)
            assert sorted(np.unique(ds.splits[sel], return_counts=True)[1]) == [1, 2, 7]
    assert "resampled 90 clips from 48000 Hz to 16000 Hz" in ds.report.notes


def test_audiomnist_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"audioMNIST_meta\.txt"):
        load_audiomnist(tmp_path)
    make_audiomnist(tmp_path, speakers=("01",), digits=(0,), takes=3)
    (tmp_path / "audioMNIST_meta.txt").write_bytes(b'{"01": {"accent": "K\xf6ln"}}')
    with pytest.raises(ValueError, match=r"audioMNIST_meta\.txt: not valid UTF-8"):
        load_audiomnist(tmp_path)
    make_audiomnist(tmp_path, speakers=("01",), digits=(0,), takes=3)
    bad = tmp_path / "01" / "0_01_1.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00JUNK")
    with (
        pytest.warns(UserWarning, match="1234"),
        pytest.raises(ValueError, match=r"0_01_1\.wav: corrupt WAV header"),
    ):
        load_audiomnist(tmp_path)
    with pytest.warns(UserWarning, match="1234"):
        ds = load_audiomnist(tmp_path, on_error="skip")
    assert len(ds) == 2 and ds.report.excluded == {"corrupt WAV header": ("01/0_01_1.wav",)}
    (tmp_path / "01" / "12_01_0.wav").write_bytes(bad.read_bytes())
    with (
        pytest.warns(UserWarning, match="1234"),
        pytest.raises(ValueError, match=r"12_01_0\.wav: digit 12: expected one of"),
    ):
        load_audiomnist(tmp_path)


# ---------------------------------------------------------------- Common Voice


def test_normalize_sentence():
    assert [normalize_sentence(s) for s in ("Yes", " Hey!", "no.", "Firefox")] == [
        "yes",
        "hey",
        "no",
        "firefox",
    ]


@pytest.mark.parametrize("accent_column", ["accent", "accents"])
def test_common_voice(tmp_path, accent_column):
    ds = load_common_voice(make_common_voice(tmp_path, accent_column))
    assert ds.class_names == CV_CLASSES and ds.waveforms.shape == (7, 16000)
    assert ds.report.n_files == 9 and len(ds.report.excluded[REASON_FIREFOX]) == 2
    assert [ds.class_names[i] for i in ds.labels] == [
        "yes",
        "no",
        "hey",
        "three",
        "zero",
        "nine",
        "yes",
    ]
    assert list(ds.splits) == ["train"] * 4 + ["val", "test", "test"]
    assert list(ds.speakers) == ["c1", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert list(ds.attributes["age"]) == [
        "twenties",
        "twenties",
        "unknown",
        "fourties",
        "teens",
        "sixties",
        "unknown",
    ]
    assert list(ds.attributes["accent"])[2:4] == ["unknown", "england"]
    assert ds.attributes["gender"][6] == "other"
    # real MP3 content decoded: a tone, loud and finite
    assert np.isfinite(ds.waveforms).all() and np.abs(ds.waveforms).max() > 0.3
    assert "resampled 7 clips from 48000 Hz to 16000 Hz" in ds.report.notes


def test_common_voice_bad_inputs(tmp_path):
    root = make_common_voice(tmp_path)
    (root / "dev.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv"):
        load_common_voice(root)
    root = make_common_voice(tmp_path)
    text = (root / "test.tsv").read_text().replace("\tgender\t", "\tsex\t")
    (root / "test.tsv").write_text(text.replace("\taccent\t", "\tregion\t"))
    with pytest.raises(ValueError, match=r"test\.tsv: missing column\(s\) \['gender', 'accent/"):
        load_common_voice(root)
    root = make_common_voice(tmp_path)
    (root / "clips" / "d1.mp3").unlink()
    with pytest.raises(FileNotFoundError, match=r"d1\.mp3.*test\.tsv row 2"):
        load_common_voice(root)
    assert load_common_voice(root, on_error="skip").report.excluded["clip not found"] == (
        "clips/d1.mp3",
    )
    root = make_common_voice(tmp_path)
    mp3 = root / "clips" / "a1.mp3"
    mp3.write_bytes(mp3.read_bytes()[:-150])
    with pytest.raises(ValueError, match=r"a1\.mp3: truncated MP3"):
        load_common_voice(root)
    root = make_common_voice(tmp_path)
    text = (root / "test.tsv").read_text().replace("\tnine\t", "\tmaybe\t")
    (root / "test.tsv").write_text(text)
    with pytest.raises(ValueError, match=r"test\.tsv row 2: column 'sentence'.*'maybe'.*--words"):
        load_common_voice(root)
    root = make_common_voice(tmp_path)
    (root / "train.tsv").write_bytes((root / "train.tsv").read_bytes() + b"c9\tz.mp3\t\xff\n")
    with pytest.raises(ValueError, match=r"train\.tsv: not valid UTF-8"):
        load_common_voice(root)


# ---------------------------------------------------------------- folder + CSV


def test_folder_speaker_disjoint_split(tmp_path):
    ds = load_folder(make_folder(tmp_path))
    assert ds.class_names == ("cat", "dog") and ds.waveforms.shape == (20, 16000)
    assert set(ds.attributes) == {"gender"}
    assert (ds.attributes["gender"] == "unknown").sum() == 6
    sp = {s: set(ds.speakers[ds.splits == s]) for s in ("train", "val", "test")}
    assert [len(v) for v in sp.values()] == [7, 1, 2]
    assert not (sp["train"] & sp["val"] or sp["train"] & sp["test"] or sp["val"] & sp["test"])
    assert load_folder(tmp_path / "metadata.csv", seed=0).fingerprint() == ds.fingerprint()
    assert load_folder(tmp_path, seed=1, cache=False).fingerprint() != ds.fingerprint()


def test_folder_split_column_and_errors(tmp_path):
    root = make_folder(tmp_path, with_split=True, n_speakers=3)
    ds = load_dataset("folder", root)
    assert list(ds.splits[::2]) == ["train", "val", "test"]
    with pytest.raises(ValueError, match=r"row 2: column 'label' = 'cat'"):
        load_folder(root, class_names=("dog",))
    skipped = load_folder(root, class_names=("dog",), on_error="skip")
    assert len(skipped) == 3 and len(skipped.report.excluded["label outside the class list"]) == 3
    (root / "other.csv").write_text("file,label\nx.wav,cat\n")
    with pytest.raises(ValueError, match=r"other\.csv: missing column\(s\) \['path', 'speaker'\]"):
        load_folder(root / "other.csv")
    (root / "audio" / "0_cat.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"0_cat\.wav.*metadata\.csv row 2"):
        load_folder(root)


def test_load_dataset_names(tmp_path):
    with pytest.raises(ValueError, match=r"expected one of .*'common-voice'"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("fsdd")


def test_folder_resamples_downmixes_and_rejects_nan(tmp_path):
    from fixtures_data import tone, write_wav

    root = make_folder(tmp_path, n_speakers=3)
    stereo = np.stack([tone(4410, 44100), tone(4410, 44100, 600)], axis=1)
    write_wav(root / "audio" / "0_cat.wav", stereo, 44100)
    ds = load_folder(root)
    assert "down-mixed 1 clips from 2 channels to mono" in ds.report.notes
    assert "resampled 1 clips from 44100 Hz to 16000 Hz" in ds.report.notes
    bad = tone(800, 16000)
    bad[3] = np.inf
    write_wav(root / "audio" / "1_dog.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"audio/1_dog\.wav: 1 NaN/Inf samples"):
        load_folder(root)
    skipped = load_folder(root, on_error="skip")
    assert skipped.report.excluded == {"1 NaN/Inf samples": ("audio/1_dog.wav",)}


def test_audiomnist_missing_metadata_key_is_reported(tmp_path):
    """No speaker has an "age" key: the load report lists it as missing, not just unknown."""
    make_audiomnist(tmp_path, speakers=("01", "02"), digits=(0,), takes=2)
    meta_path = tmp_path / "audioMNIST_meta.txt"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(
        json.dumps({s: {k: v for k, v in m.items() if k != "age"} for s, m in meta.items()})
    )
    ds = load_audiomnist(tmp_path, cache=False)
    assert ds.report.missing_keys == ("age",)
    assert set(ds.attributes["age"]) == {"unknown"}
    assert "metadata key missing (every value 'unknown'): age" in ds.report.summary()
    make_audiomnist(tmp_path / "full", speakers=("01", "02"), digits=(0,), takes=2)
    with pytest.warns(UserWarning, match="impossible age"):
        full = load_audiomnist(tmp_path / "full", cache=False)
    assert full.report.missing_keys == ()
