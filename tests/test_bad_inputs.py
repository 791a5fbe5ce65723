"""The bad-input matrix: every kind of bad input, its exception, and what the message names.

One table, :data:`CASES`, lists each case with the exception it must raise (or
the warning it must give) and what its message must name -- the file, the
metadata row, the column or the parameter, and what was expected. Many of
these are also tested next to their module (``test_data_*``, ``test_smoothing``,
...); this file is the one place to see them all.

Loading is all-or-nothing by default (``on_error="raise"``: the first bad file
raises and nothing is cached); with ``on_error="skip"`` bad files are left out
and listed in ``LoadReport.excluded`` (:func:`test_skip_mode_reports_bad_files`).
Inputs that are merely unusual -- other sample rates, several channels -- are
handled (resampled, down-mixed) with a note in the ``LoadReport``
(:data:`HANDLED`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fixtures_data import make_common_voice, make_wuw, tone, write_wav

from fairrobust import attacks, models, smoothing
from fairrobust._io import cache_dir
from fairrobust.data import load_common_voice, load_dataset, load_folder, load_wuw
from fairrobust.data.dataset import AudioDataset
from fairrobust.defenses import parse_preprocess
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection as rj
from fairrobust.studies import robustness as rb
from fairrobust.studies.config import RejectionConfig, RobustnessConfig
from fairrobust.train import TrainConfig


@dataclasses.dataclass
class Scenario:
    """A prepared bad input.

    Attributes:
      call: raises (or warns) when called; loader cases accept ``on_error=``.
      needles: substrings the message must contain (file / row / column /
        parameter, and what was wrong).
      skipped: for loader cases, the item ``on_error="skip"`` must report as
        excluded (None: the case is not about one file).
    """

    call: Callable[..., Any]
    needles: tuple[str, ...]
    skipped: str | None = None


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    error: type[BaseException] | type[Warning]
    names: str  # what the message names: "file", "row", "column", "parameter"
    build: Callable[[Path], Scenario]
    skippable: bool = False  # a loader case that on_error="skip" turns into a report entry

    def __str__(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- builders


_QUICK_REJ = study_config.preset("rejection", "quick")


def _folder(tmp: Path, rows: tuple[str, ...] = (), header: str = "path,label,speaker,split"):
    """A 4-clip folder dataset (``metadata.csv``) plus extra CSV ``rows``."""
    root = tmp / "folder"
    lines = [header]
    for s in range(2):
        for label, freq in (("cat", 300.0), ("dog", 500.0)):
            rel = f"audio/{s}_{label}.wav"
            write_wav(root / rel, tone(8000, 16000, freq, seed=s), 16000)
            lines.append(f"{rel},{label},spk{s},train")
    (root / "metadata.csv").write_text("\n".join([*lines, *rows]) + "\n")
    return root


def _bad_clip(write: Callable[[Path], Any], *needles: str, name: str = "bad.wav"):
    """Folder dataset with one bad clip written by ``write``; message names it + ``needles``."""

    def build(tmp: Path) -> Scenario:
        rel = f"audio/{name}"
        root = _folder(tmp, (f"{rel},cat,spk9,test",))
        write(root / rel)
        return Scenario(lambda **kw: load_folder(root, **kw), (rel, *needles), skipped=rel)

    return build


def _corrupt_header(path: Path) -> None:
    path.write_bytes(b"RIFX" + bytes(4) + b"WAVEfmt " + bytes(200))


def _truncated_wav(path: Path) -> None:
    write_wav(path, tone(16000, 16000), 16000)
    path.write_bytes(path.read_bytes()[:-5000])


def _float_wav(value: float) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        x = tone(8000, 16000)
        x[100] = value
        write_wav(path, x, 16000, subtype="FLOAT")

    return write


def _empty_wav(path: Path) -> None:
    write_wav(path, np.zeros(0, np.float32), 16000)


def _missing_row_clip(tmp: Path) -> Scenario:
    root = _folder(tmp, ("audio/gone.wav,cat,spk9,test",))
    return Scenario(
        lambda **kw: load_folder(root, **kw),
        (str(root / "audio/gone.wav"), "row 6", "'path'"),
        skipped="audio/gone.wav",
    )


def _folder_label_outside(tmp: Path) -> Scenario:
    root = _folder(tmp, ("audio/0_cat.wav,bird,spk9,test",))
    return Scenario(
        lambda **kw: load_folder(root, class_names=("cat", "dog"), **kw),
        ("metadata.csv row 6", "column 'label'", "'bird'", "('cat', 'dog')"),
        skipped="audio/0_cat.wav",
    )


def _folder_bad_split(tmp: Path) -> Scenario:
    root = _folder(tmp, ("audio/0_cat.wav,cat,spk9,holdout",))
    return Scenario(
        lambda **kw: load_folder(root, **kw),
        ("metadata.csv row 6", "column 'split'", "'holdout'"),
        skipped="audio/0_cat.wav",
    )


def _folder_missing_csv(tmp: Path) -> Scenario:
    (tmp / "empty").mkdir()
    return Scenario(lambda: load_folder(tmp / "empty"), (str(tmp / "empty" / "metadata.csv"),))


def _folder_missing_column(tmp: Path) -> Scenario:
    root = _folder(tmp, header="path,class,speaker,split")
    return Scenario(
        lambda: load_folder(root), (str(root / "metadata.csv"), "missing column", "'label'")
    )


def _folder_non_utf8(tmp: Path) -> Scenario:
    root = _folder(tmp)
    csv = root / "metadata.csv"
    csv.write_bytes(csv.read_bytes() + "audio/0_cat.wav,cat,Jos\xe9,train\n".encode("latin-1"))
    return Scenario(lambda: load_folder(root), (str(csv), "not valid UTF-8", "line 6"))


def _cv(tmp: Path) -> Path:
    return make_common_voice(tmp / "cv")


def _cv_truncated_mp3(tmp: Path) -> Scenario:
    root = _cv(tmp)
    clip = root / "clips" / "a1.mp3"
    clip.write_bytes(clip.read_bytes()[:-100])
    return Scenario(
        lambda **kw: load_common_voice(root, **kw),
        (str(clip), "truncated MP3"),
        skipped="clips/a1.mp3",
    )


def _cv_missing_tsv(tmp: Path) -> Scenario:
    root = _cv(tmp)
    (root / "dev.tsv").unlink()
    return Scenario(lambda: load_common_voice(root), (str(root / "dev.tsv"), "not found"))


def _cv_renamed_column(tmp: Path) -> Scenario:
    root = _cv(tmp)
    tsv = root / "train.tsv"
    tsv.write_text(tsv.read_text().replace("\tsentence\t", "\ttext\t", 1))
    return Scenario(lambda: load_common_voice(root), (str(tsv), "missing column", "'sentence'"))


def _cv_missing_clip(tmp: Path) -> Scenario:
    root = _cv(tmp)
    (root / "clips" / "b1.mp3").unlink()
    return Scenario(
        lambda **kw: load_common_voice(root, **kw),
        (str(root / "clips" / "b1.mp3"), "dev.tsv row 2"),
        skipped="clips/b1.mp3",
    )


def _cv_label_outside(tmp: Path) -> Scenario:
    root = _cv(tmp)
    tsv = root / "test.tsv"
    tsv.write_text(tsv.read_text().replace("\tnine\t", "\tmaybe\t"))
    return Scenario(
        lambda **kw: load_common_voice(root, **kw),
        ("test.tsv row 2", "column 'sentence'", "'maybe'"),
        skipped="clips/d1.mp3",
    )


WUW_CLIP = "calls/00001/WUWII00001_001.ulaw"


def _wuw(tmp: Path) -> Path:
    return make_wuw(tmp / "wuw", n_sessions=4, utterances=range(1, 6))


def _wuw_truncated_mulaw(keep: int) -> Callable[[Path], Scenario]:
    """WUW call cut to ``keep`` bytes (8 kHz: the keyword spans bytes 6,400-10,400)."""

    def build(tmp: Path) -> Scenario:
        root = _wuw(tmp)
        clip = root / WUW_CLIP
        clip.write_bytes(clip.read_bytes()[:keep])
        return Scenario(
            lambda **kw: load_wuw(root, **kw),
            (str(clip), "checksum mismatch", "truncated", "data.json entry 5"),
            skipped=WUW_CLIP,
        )

    return build


def _wuw_checksum(tmp: Path) -> Scenario:
    root = _wuw(tmp)
    clip = root / WUW_CLIP
    data = bytearray(clip.read_bytes())
    data[7000] ^= 0xFF  # same length, one byte changed
    clip.write_bytes(bytes(data))
    return Scenario(
        lambda **kw: load_wuw(root, **kw),
        (str(clip), "checksum mismatch", "data.json entry 5"),
        skipped=WUW_CLIP,
    )


def _wuw_missing_json(tmp: Path) -> Scenario:
    root = _wuw(tmp)
    (root / "data.json").unlink()
    return Scenario(lambda: load_wuw(root), (str(root / "data.json"), "not found"))


def _wuw_non_utf8(tmp: Path) -> Scenario:
    root = _wuw(tmp)
    meta = root / "data.json"
    meta.write_bytes(meta.read_bytes().replace(b'"male"', b'"m\xe4le"', 1))
    return Scenario(lambda: load_wuw(root), (str(meta), "not valid UTF-8", "line 1"))


def _wuw_missing_clip(tmp: Path) -> Scenario:
    root = _wuw(tmp)
    (root / WUW_CLIP).unlink()
    return Scenario(
        lambda **kw: load_wuw(root, **kw),
        (str(root / WUW_CLIP), "not found", "data.json entry 5"),
        skipped=WUW_CLIP,
    )


def _wuw_missing_key(tmp: Path) -> Scenario:
    root = _wuw(tmp)
    meta = root / "data.json"
    raw = json.loads(meta.read_text())
    del raw["entries"][3]["endTime"]
    meta.write_text(json.dumps(raw))
    return Scenario(lambda: load_wuw(root), ("data.json: entry 3", "missing key", "'endTime'"))


def _bundled_checksum(tmp: Path) -> Scenario:
    from fairrobust.data.bundled import BUNDLED_PATH, verify_bundled

    return Scenario(
        lambda: verify_bundled(BUNDLED_PATH, expected="0" * 64),
        (str(BUNDLED_PATH), "checksum mismatch"),
    )


def _tiny_dataset(splits=("train", "val", "test"), n_per_split: int = 6) -> AudioDataset:
    """Synthetic 2-class dataset, M5-sized clips (6,848 samples), 2 genders."""
    n = n_per_split * len(splits)
    t = np.arange(6848) / 16000.0
    labels = np.arange(n) % 2
    x = 0.5 * np.sin(2 * np.pi * np.where(labels, 700.0, 300.0)[:, None] * t[None, :])
    return AudioDataset(
        name="tiny",
        waveforms=x.astype(np.float32),
        labels=labels.astype(np.int32),
        class_names=("low", "high"),
        speakers=np.array([f"s{i // 2}" for i in range(n)]),
        splits=np.repeat(np.array(splits), n_per_split),
        attributes={"gender": np.array(["f", "m"])[(np.arange(n) // 2) % 2]},
        sample_rate=16000,
        paths=np.array([f"c{i}.wav" for i in range(n)]),
    )


def _empty_group(tmp: Path) -> Scenario:
    from fairrobust import metrics

    masks = np.array([[True, True, False], [False, False, False]])
    return Scenario(
        lambda: metrics.group_rates(np.array([1.0, 0.0, 1.0]), masks),
        ("group index 1", "no examples", "NaN"),
    )


def _study_empty_test_split(tmp: Path) -> Scenario:
    ds = _tiny_dataset(splits=("train", "val"))
    return Scenario(
        lambda: rb.run_study(ds, study_config.preset("robustness", "quick"), tmp, progress=False),
        ("dataset 'tiny'", "test split is empty"),
    )


def _rejection_empty_split(tmp: Path) -> Scenario:
    ds = _tiny_dataset(splits=("train", "val"))
    return Scenario(
        lambda: rj.run_study(ds, study_config.preset("rejection", "quick"), tmp, progress=False),
        ("dataset 'tiny'", "split 'test' is empty"),
    )


def _study_unknown_attribute(tmp: Path) -> Scenario:
    cfg = dataclasses.replace(study_config.preset("robustness", "quick"), attributes=("age",))
    return Scenario(
        lambda: rb.run_study(_tiny_dataset(), cfg, tmp, progress=False),
        ("RobustnessConfig.attributes", "'age'", "available: ['gender']"),
    )


def _raises(fn: Callable[[], Any], *needles: str) -> Callable[[Path], Scenario]:
    return lambda tmp: Scenario(fn, needles)


def _apply(variables, x):  # a fixed 3-class classifier for argument checks
    return x[:, :3] * variables


_X = np.zeros((2, 16), np.float32)
_Y = np.zeros(2, np.int32)
_KEY = np.zeros(2, np.uint32)  # legacy PRNGKey layout; never used, checks come first
_COUNTS = np.array([[8, 2, 0], [5, 5, 0]])
_SC = dict(num_samples=10, sigma=0.5, num_classes=3)  # sample_counts
_CE = dict(n0=5, n=10, alpha=0.01, sigma=0.5, num_classes=3)  # certify


def _toml(text: str) -> Callable[[Path], Scenario]:
    def build(tmp: Path) -> Scenario:
        path = tmp / "study.toml"
        path.write_text(text)
        return Scenario(
            lambda: study_config.load_config("robustness", "quick", path),
            (str(path), text.split("=")[0].strip()),
        )

    return build


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A width-2 M5 trained 1 epoch on the tiny dataset; ``best.ckpt`` path."""
    from fairrobust.train import train

    out = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(width=2, epochs=1, batch_size=4)
    train(_tiny_dataset(), cfg, out_dir=out, progress=False)
    return out / "best.ckpt"


def _ckpt_other_width(tmp: Path) -> Scenario:
    from fairrobust.train import load_checkpoint

    path = tmp / "best.ckpt"
    other = models.make_model("m5", 2, width=8)
    return Scenario(
        lambda: load_checkpoint(path, model=other),
        (str(path), "width=2", "width=8", "cannot be loaded"),
    )


def _ckpt_other_model(tmp: Path) -> Scenario:
    from fairrobust.train import load_checkpoint

    path = tmp / "best.ckpt"
    other = models.make_model("m5-tricks", 2, width=2)
    return Scenario(
        lambda: load_checkpoint(path, model=other),
        (str(path), "tricks=False", "tricks=True"),
    )


def _ckpt_other_classes(tmp: Path) -> Scenario:
    from fairrobust.train import load_checkpoint

    path = tmp / "best.ckpt"
    other = models.make_model("m5", 5, width=2)
    return Scenario(
        lambda: load_checkpoint(path, model=other), (str(path), "num_classes=2", "num_classes=5")
    )


def _ckpt_truncated(tmp: Path) -> Scenario:
    from fairrobust.train import load_checkpoint

    path = tmp / "cut.ckpt"
    path.write_bytes((tmp / "best.ckpt").read_bytes()[:200])
    return Scenario(lambda: load_checkpoint(path), (str(path), "not a readable"))


# ----------------------------------------------------------------------------- the matrix

#: Every bad input: (case, exception, what the message names, builder).
# fmt: off
CASES: list[Case] = [
    # --- audio files (skippable: on_error="skip" leaves the file out and reports it)
    Case("corrupt WAV header", ValueError, "file",
         _bad_clip(_corrupt_header, "corrupt WAV header"), skippable=True),
    Case("truncated WAV", ValueError, "file",
         _bad_clip(_truncated_wav, "truncated WAV"), skippable=True),
    Case("truncated MP3", ValueError, "file", _cv_truncated_mp3, skippable=True),
    Case("truncated mu-law (keyword intact)", ValueError, "file + metadata entry",
         _wuw_truncated_mulaw(12000), skippable=True),
    Case("truncated mu-law (keyword cut off)", ValueError, "file + metadata entry",
         _wuw_truncated_mulaw(9000), skippable=True),
    Case("checksum mismatch (WUW MD5)", ValueError, "file + metadata entry",
         _wuw_checksum, skippable=True),
    Case("checksum mismatch (bundled SHA-256)", ValueError, "file", _bundled_checksum),
    Case("NaN samples", ValueError, "file",
         _bad_clip(_float_wav(np.nan), "NaN/Inf"), skippable=True),
    Case("Inf samples", ValueError, "file",
         _bad_clip(_float_wav(np.inf), "NaN/Inf"), skippable=True),
    Case("zero-length clip", ValueError, "file",
         _bad_clip(_empty_wav, "zero-length"), skippable=True),
    # --- metadata files
    Case("missing metadata CSV", FileNotFoundError, "file", _folder_missing_csv),
    Case("missing metadata TSV (Common Voice)", FileNotFoundError, "file", _cv_missing_tsv),
    Case("missing metadata JSON (WUW)", FileNotFoundError, "file", _wuw_missing_json),
    Case("missing CSV column", ValueError, "file + column", _folder_missing_column),
    Case("renamed TSV column", ValueError, "file + column", _cv_renamed_column),
    Case("missing JSON key", ValueError, "entry + key", _wuw_missing_key),
    Case("non-UTF-8 CSV", ValueError, "file + line", _folder_non_utf8),
    Case("non-UTF-8 JSON", ValueError, "file + line", _wuw_non_utf8),
    Case("row -> missing clip (CSV)", FileNotFoundError, "file + row",
         _missing_row_clip, skippable=True),
    Case("row -> missing clip (TSV)", FileNotFoundError, "file + row",
         _cv_missing_clip, skippable=True),
    Case("entry -> missing clip (JSON)", FileNotFoundError, "file + entry",
         _wuw_missing_clip, skippable=True),
    Case("label outside class list (CSV)", ValueError, "row + column",
         _folder_label_outside, skippable=True),
    Case("label outside class list (TSV)", ValueError, "row + column",
         _cv_label_outside, skippable=True),
    Case("unknown split name", ValueError, "row + column", _folder_bad_split, skippable=True),
    # --- loader options
    Case("unknown dataset name", ValueError, "parameter",
         _raises(lambda: load_dataset("timit", "."), "name", "'timit'", "fsdd")),
    Case("unknown on_error mode", ValueError, "parameter",
         _raises(lambda: load_folder(".", on_error="ignore"), "on_error", "'skip'")),
    Case("sample rate <= 0", ValueError, "parameter",
         _raises(lambda: load_folder(".", sample_rate=0), "sample_rate", "positive")),
    # --- groups
    Case("group with zero examples", RuntimeWarning, "group", _empty_group),
    Case("no test examples (robustness)", ValueError, "dataset + split", _study_empty_test_split),
    Case("no test examples (rejection)", ValueError, "dataset + split", _rejection_empty_split),
    Case("unknown attribute", ValueError, "parameter", _study_unknown_attribute),
    # --- epsilon
    Case("negative epsilon (PGD)", ValueError, "parameter",
         _raises(lambda: attacks.pgd(_apply, 1.0, _X, _Y, -0.1, _KEY, num_steps=1), "eps")),
    Case("NaN epsilon (sweep)", ValueError, "parameter",
         _raises(lambda: attacks.robust_correct(_apply, 1.0, _X, _Y, [0.1, np.nan], _KEY,
                                                num_steps=1), "eps", "finite")),
    Case("negative attack epsilon (study)", ValueError, "parameter",
         _raises(lambda: RobustnessConfig(attack_eps=(-0.1, 0.1)),
                 "RobustnessConfig.attack_eps")),
    Case("negative AT epsilon", ValueError, "parameter",
         _raises(lambda: TrainConfig(at_eps=-0.01), "at_eps", ">= 0")),
    # --- alpha
    Case("alpha > 1 (PREDICT)", ValueError, "parameter",
         _raises(lambda: smoothing.smoothed_predict(_COUNTS, 1.5), "alpha", "0 < alpha <= 1")),
    Case("alpha = 1 (CERTIFY)", ValueError, "parameter",
         _raises(lambda: smoothing.certify(_apply, 1.0, _X, _KEY, **{**_CE, "alpha": 1.0}),
                 "alpha", "0 < alpha < 1")),
    Case("reversed alpha grid", ValueError, "parameter",
         _raises(lambda: RejectionConfig(alpha_min=0.5, alpha_max=0.1), "alpha", "alpha_min")),
    # --- sigma
    Case("sigma <= 0 (sampling)", ValueError, "parameter",
         _raises(lambda: smoothing.sample_counts(_apply, 1.0, _X, _KEY, **{**_SC, "sigma": -1.0}),
                 "sigma", "> 0")),
    Case("sigma = 0 (study)", ValueError, "parameter",
         _raises(lambda: RejectionConfig(sigma=0.0), "sigma", "positive")),
    Case("negative noise-augmentation std", ValueError, "parameter",
         _raises(lambda: TrainConfig(noise_std=-0.1), "noise_std")),
    # --- N
    Case("N = 0 (sampling)", ValueError, "parameter",
         _raises(lambda: smoothing.sample_counts(_apply, 1.0, _X, _KEY,
                                                 **{**_SC, "num_samples": 0}),
                 "num_samples", ">= 1")),
    Case("N not increasing (study)", ValueError, "parameter",
         _raises(lambda: RejectionConfig(num_samples=(100, 10)), "num_samples", "increasing")),
    Case("n = 0 (CERTIFY)", ValueError, "parameter",
         _raises(lambda: smoothing.certify(_apply, 1.0, _X, _KEY, **{**_CE, "n": 0}),
                 "n: expected", ">= 1")),
    # --- step counts
    Case("negative PGD steps", ValueError, "parameter",
         _raises(lambda: attacks.pgd(_apply, 1.0, _X, _Y, 0.1, _KEY, num_steps=-1), "num_steps")),
    Case("zero attack steps (study)", ValueError, "parameter",
         _raises(lambda: RobustnessConfig(attack_steps=0), "RobustnessConfig.attack_steps")),
    Case("zero AT steps", ValueError, "parameter",
         _raises(lambda: TrainConfig(at_steps=0), "at_steps", ">= 1")),
    Case("zero epochs", ValueError, "parameter",
         _raises(lambda: TrainConfig(epochs=0), "epochs", ">= 1")),
    # --- names
    Case("unknown model name", ValueError, "parameter",
         _raises(lambda: models.make_model("resnet", 3), "model", "'resnet'", "m5-tricks")),
    Case("unknown model name (study)", ValueError, "parameter",
         _raises(lambda: RobustnessConfig(models=("resnet",)), "RobustnessConfig.models")),
    Case("unknown noise name (sampling)", ValueError, "parameter",
         _raises(lambda: smoothing.sample_counts(_apply, 1.0, _X, _KEY, **{**_SC, "noise": "pink"}),
                 "noise", "'pink'", "gaussian")),
    Case("unknown noise name (study)", ValueError, "parameter",
         _raises(lambda: rj.run_study(_tiny_dataset(), _QUICK_REJ.replace(noise="pink"), "unused",
                                      progress=False), "noise", "'pink'", "gaussian")),
    Case("unknown preprocessing defense", ValueError, "parameter",
         _raises(lambda: parse_preprocess("blur:radius=2"), "preprocess 'blur:radius=2'")),
    Case("unknown config field (TOML)", ValueError, "file + field", _toml("epoch = 3\n")),
    Case("wrong config type (TOML)", ValueError, "file + field", _toml('epochs = "ten"\n')),
    # --- checkpoints (copied from the trained_checkpoint fixture)
    Case("checkpoint of another width", ValueError, "file + both models", _ckpt_other_width),
    Case("checkpoint of another architecture", ValueError, "file + both", _ckpt_other_model),
    Case("checkpoint with other classes", ValueError, "file + both", _ckpt_other_classes),
    Case("truncated checkpoint", ValueError, "file", _ckpt_truncated),
]
# fmt: on

_NEEDS_CHECKPOINT = {
    _ckpt_other_width,
    _ckpt_other_model,
    _ckpt_other_classes,
    _ckpt_truncated,
}


def _prepare(case: Case, tmp_path: Path, request) -> Scenario:
    if case.build in _NEEDS_CHECKPOINT:
        shutil.copy(request.getfixturevalue("trained_checkpoint"), tmp_path / "best.ckpt")
    return case.build(tmp_path)


def _cached_datasets() -> list[Path]:
    return sorted((cache_dir() / "datasets").glob("*.npz"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_raises_naming_the_culprit(case: Case, tmp_path, request):
    scenario = _prepare(case, tmp_path, request)
    if issubclass(case.error, Warning):
        with pytest.warns(case.error) as record:
            scenario.call()
        message = " ".join(str(w.message) for w in record)
    else:
        with pytest.raises(case.error) as info:
            scenario.call()
        message = str(info.value)
    missing = [n for n in scenario.needles if n not in message]
    assert not missing, f"message does not name {missing}: {message}"
    assert case.skippable == (scenario.skipped is not None)
    if case.skippable:
        assert not _cached_datasets(), "a failed load must cache nothing (all-or-nothing)"


SKIPPABLE = [c for c in CASES if c.skippable]


@pytest.mark.parametrize("case", SKIPPABLE, ids=str)
def test_skip_mode_reports_bad_files(case: Case, tmp_path, request):
    """``on_error="skip"``: the bad item is left out and listed; everything else loads."""
    scenario = _prepare(case, tmp_path, request)
    assert scenario.skipped is not None
    ds = scenario.call(on_error="skip")
    excluded = [item for items in ds.report.excluded.values() for item in items]
    assert scenario.skipped in excluded
    assert len(ds) == ds.report.n_loaded == ds.report.n_files - len(excluded) > 0
    assert "excluded" in ds.report.summary()


# ----------------------------------------------------------------------------- handled inputs


def _odd_clip(sr: int, channels: int) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        rel = "audio/odd.wav"
        root = _folder(tmp, (f"{rel},cat,spk9,test",))
        x = tone(sr // 2, sr, 440.0)
        write_wav(root / rel, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
        return root

    return build


#: Unusual but valid inputs: (name, builder, note the LoadReport must carry).
HANDLED = [
    ("22.05 kHz clip", _odd_clip(22050, 1), "resampled 1 clips from 22050 Hz to 16000 Hz"),
    ("8 kHz clip", _odd_clip(8000, 1), "resampled 1 clips from 8000 Hz to 16000 Hz"),
    ("stereo clip", _odd_clip(16000, 2), "down-mixed 1 clips from 2 channels to mono"),
    ("4-channel 48 kHz clip", _odd_clip(48000, 4), "down-mixed 1 clips from 4 channels to mono"),
]


@pytest.mark.parametrize("name, build, note", HANDLED, ids=[h[0] for h in HANDLED])
def test_unusual_audio_is_converted_with_a_note(name, build, note, tmp_path):
    ds = load_folder(build(tmp_path))
    assert len(ds) == 5 and ds.waveforms.shape == (5, 16000)
    assert note in ds.report.notes and note in ds.report.summary()
    odd = ds.waveforms[list(ds.paths).index("audio/odd.wav")]
    assert np.isfinite(odd).all() and np.abs(odd).max() <= 1.0
    # half a second of a 0.5-amplitude tone, centred in the one-second window
    assert np.abs(odd[6000:10000]).max() == pytest.approx(0.5, abs=0.05)
    assert np.abs(odd[:3000]).max() == 0.0


def test_matrix_covers_the_brief():
    """Each kind of bad input the reliability issue lists has at least one case."""
    names = " | ".join(c.name for c in CASES).lower()
    for kind in (
        "corrupt wav header", "truncated mu-law", "truncated wav", "truncated mp3",
        "checksum mismatch", "missing metadata", "column", "missing clip", "non-utf-8",
        "nan samples", "inf samples", "zero-length", "label outside", "zero examples",
        "epsilon", "alpha", "sigma", "n = 0", "steps", "unknown model", "unknown noise",
        "checkpoint of another architecture",
    ):  # fmt: skip
        assert kind in names, kind
    assert {h[2].split()[0] for h in HANDLED} == {"resampled", "down-mixed"}


def test_loading_is_all_or_nothing_by_default(tmp_path):
    """One bad clip among good ones: raise, return nothing, cache nothing; skip loads the rest."""
    build = _bad_clip(_truncated_wav, "truncated WAV")
    scenario = build(tmp_path)
    with pytest.raises(ValueError, match="truncated WAV"):
        scenario.call()
    assert not _cached_datasets()
    ds = scenario.call(on_error="skip")
    assert len(ds) == 4 and ds.report.n_files == 5
    assert _cached_datasets()  # the partial dataset is cached under the skip-mode key
    with pytest.raises(ValueError, match="truncated WAV"):  # and never served to "raise"
        scenario.call()


def test_sf_can_write_the_fixtures():
    """Guard: the MP3 and FLOAT WAV writers these cases rely on are available."""
    assert "MP3" in sf.available_formats() and "FLOAT" in sf.available_subtypes("WAV")
