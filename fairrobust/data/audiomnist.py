"""AudioMNIST loader: ``<root>/NN/{digit}_{NN}_{take}.wav`` at 48 kHz plus ``audioMNIST_meta.txt``.

The metadata file is JSON keyed by two-digit speaker id, kept with its
original quirks: ``age`` is an int for speaker 01 and a string elsewhere,
speaker 45's age is ``"1234"`` (impossible: becomes ``"unknown"`` with a
warning), accents differ in case (``"german"`` / ``"German"``: each word is
capitalised) and include values like ``"Egyptian_American?"`` (kept).
Attributes: gender, age (bucketed by decade: teens, twenties, ...), accent,
native_speaker (the metadata's ``native speaker``). Split: the paper's random
7:1:2 split within every (speaker, digit) pair, so every speaker and digit is
in every split (closed-user setting).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairrobust.data.audio import read_audio
from fairrobust.data.cache import (
    Clip,
    Plan,
    ReportBuilder,
    as_mapping,
    attribute_value,
    execute,
    validate_common,
)
from fairrobust.data.dataset import UNKNOWN, AudioDataset
from fairrobust.data.splits import stratified_split
from fairrobust.data.tables import read_json_strict

__all__ = [
    "AUDIOMNIST_ATTRIBUTES",
    "AUDIOMNIST_CLASSES",
    "age_bucket",
    "load_audiomnist",
    "normalize_accent",
]

AUDIOMNIST_CLASSES = tuple(str(d) for d in range(10))
AUDIOMNIST_ATTRIBUTES = ("gender", "age", "accent", "native_speaker")
META_NAME = "audioMNIST_meta.txt"
_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)\.wav$")
_DECADES = (
    "teens",
    "twenties",
    "thirties",
    "forties",
    "fifties",
    "sixties",
    "seventies",
    "eighties",
    "nineties",
)
#: Plausible ages of a recorded speaker; anything else is treated as a data-entry error.
AGE_RANGE = (5, 110)


def age_bucket(age: Any) -> str | None:
    """Decade name of an age (int or digit string): 10-19 teens, 20-29 twenties, ..., <10 children.

    Returns ``None`` when the value is not an integer in :data:`AGE_RANGE`.
    """
    try:
        value = int(str(age).strip())
    except ValueError:
        return None
    if not AGE_RANGE[0] <= value <= AGE_RANGE[1]:
        return None
    if value < 10:
        return "children"
    return _DECADES[min(value // 10 - 1, len(_DECADES) - 1)] if value < 100 else "centenarians"


def normalize_accent(value: Any) -> str:
    """Case-normalise an accent: each word capitalised (``"german"`` -> ``"German"``)."""
    text = attribute_value(value)
    if text == UNKNOWN:
        return text
    return re.sub(r"[^\W\d_]+", lambda m: m[0].capitalize(), text)


#: Attribute -> its key in ``audioMNIST_meta.txt``.
_META_KEYS = {
    "gender": "gender",
    "age": "age",
    "accent": "accent",
    "native_speaker": "native speaker",
}


def _speaker_attributes(
    info: Mapping[str, Any], speaker: str, source: str, report: ReportBuilder
) -> dict[str, str]:
    age = info.get("age")
    bucket = age_bucket(age) if age not in (None, "") else None
    if bucket is None and age not in (None, ""):
        msg = (
            f"{source}: speaker {speaker}: impossible age {age!r} (expected an integer in "
            f"{AGE_RANGE[0]}-{AGE_RANGE[1]}); age set to {UNKNOWN!r}"
        )
        warnings.warn(msg, UserWarning, stacklevel=3)
        report.note(msg)
    return {
        "gender": attribute_value(info.get("gender")).lower(),
        "age": bucket or UNKNOWN,
        "accent": normalize_accent(info.get("accent")),
        "native_speaker": attribute_value(info.get("native speaker")).lower(),
    }


def load_audiomnist(
    data_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load AudioMNIST (60 speakers x 10 digits x 50 takes in the full release).

    Args:
      data_dir: folder holding ``audioMNIST_meta.txt`` and the ``NN/`` speaker
        folders, or a folder containing ``data/`` with them (the git layout).
      seed: seed of the stratified 7:1:2 split.
      sample_rate, duration, cache, on_error, num_workers: see :func:`load_wuw`.

    Returns:
      An :class:`AudioDataset` with classes ``"0"``..``"9"``, speakers = ``"01"``..,
      attributes gender, age, accent, native_speaker.

    Raises:
      FileNotFoundError: missing metadata file.
      ValueError: non-UTF-8 / malformed metadata, a file whose speaker differs
        from its folder or whose digit is outside 0-9, bad WAV files.

    Warns:
      UserWarning: for each impossible age (also recorded in the report notes).
    """
    validate_common(sample_rate, duration, on_error)
    root = Path(data_dir).expanduser()
    if not (root / META_NAME).is_file() and (root / "data" / META_NAME).is_file():
        root = root / "data"
    meta_path = root / META_NAME
    meta = as_mapping(read_json_strict(meta_path, "AudioMNIST metadata"), str(meta_path))
    report = ReportBuilder()
    attrs: dict[str, dict[str, str]] = {}
    for speaker in sorted(meta):
        info = as_mapping(meta[speaker], f"{meta_path} speaker {speaker}")
        attrs[speaker] = _speaker_attributes(info, speaker, str(meta_path), report)
    items: list[tuple[Path, str, int, str]] = []
    unknown = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(folder.glob("*.wav")):
            report.n_files += 1
            rel = f"{folder.name}/{path.name}"
            m = _NAME.match(path.name)
            problem = None
            if not m:
                problem = (
                    "file name not {digit}_{speaker}_{take}.wav",
                    f"{path}: expected a file name {{digit}}_{folder.name}_{{take}}.wav",
                )
            elif m[2] != folder.name:
                problem = (
                    "speaker in file name differs from its folder",
                    f"{path}: speaker {m[2]!r} in the file name, expected {folder.name!r}",
                )
            elif int(m[1]) > 9:
                problem = (
                    "label outside the class list",
                    f"{path}: digit {m[1]}: expected one of {AUDIOMNIST_CLASSES}",
                )
            if problem:
                if on_error == "raise":
                    raise ValueError(problem[1])
                report.exclude(problem[0], rel)
                continue
            assert m is not None
            if folder.name not in attrs:
                unknown.add(folder.name)
            items.append((path, rel, int(m[1]), folder.name))
    if not items and report.n_files == 0:
        raise FileNotFoundError(f"{root}: no speaker folders NN/ with .wav files found")
    if unknown:
        report.note(
            f"speakers missing from {META_NAME} (attributes {UNKNOWN!r}): {sorted(unknown)}"
        )
    splits = stratified_split([(spk, digit) for _, _, digit, spk in items], seed=seed)
    blank: dict[str, str] = dict.fromkeys(AUDIOMNIST_ATTRIBUTES, UNKNOWN)
    clips = [
        Clip(
            path=p,
            rel=rel,
            label=digit,
            speaker=spk,
            split=str(s),
            attributes=dict(attrs.get(spk, blank)),
        )
        for (p, rel, digit, spk), s in zip(items, splits, strict=True)
    ]
    plan = Plan(
        name="audiomnist",
        clips=clips,
        class_names=AUDIOMNIST_CLASSES,
        attribute_names=AUDIOMNIST_ATTRIBUTES,
        decode=lambda clip: read_audio(clip.path),
        report=report,
        options={"data_dir": str(root.resolve()), "seed": seed},
        sources=[meta_path] + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    ds = execute(plan)
    # A key no speaker has (e.g. no "age" in the file) is reported as missing, not just unknown;
    # set after execute so that cached and fresh loads agree and the cache key is unchanged.
    missing = tuple(
        a for a, key in _META_KEYS.items() if not any(key in dict(v) for v in meta.values())
    )
    return dataclasses.replace(ds, report=dataclasses.replace(ds.report, missing_keys=missing))
