"""Free Spoken Digit Dataset (FSDD) loader: official split, validation carved from training takes.

Layout: ``<root>/recordings/{digit}_{speaker}_{take}.wav`` (8 kHz mono) and
``<root>/speakers.json`` (speaker -> gender, accent, language). Split: takes
0-4 are the official test set; of the official training takes 5-49, the takes
in ``val_takes`` (default 5-9, i.e. 10 % of all takes, every speaker and digit)
form the validation set and the rest (10-49) the training set. Closed-user:
every speaker is in every split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

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
from fairrobust.data.tables import read_json_strict

__all__ = ["FSDD_ATTRIBUTES", "FSDD_CLASSES", "load_fsdd"]

FSDD_CLASSES = tuple(str(d) for d in range(10))
FSDD_ATTRIBUTES = ("accent", "gender", "language")
_NAME = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.wav$")
REASON_NAME = "file name not {digit}_{speaker}_{take}.wav"


def load_fsdd(
    data_dir: str | os.PathLike[str],
    *,
    val_takes: Sequence[int] = (5, 6, 7, 8, 9),
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load FSDD with its official split (takes 0-4 test).

    Args:
      data_dir: root holding ``recordings/`` and ``speakers.json`` (or the
        ``recordings`` folder itself, with ``speakers.json`` beside it).
      val_takes: training takes (>= 5) moved to the validation split.
      sample_rate, duration, cache, on_error, num_workers: see :func:`load_wuw`.

    Returns:
      An :class:`AudioDataset` with classes ``"0"``..``"9"``, speakers = names,
      attributes accent, gender, language.

    Raises:
      FileNotFoundError: missing ``recordings/`` or ``speakers.json``.
      ValueError: a digit outside 0-9 (``on_error="raise"``), bad WAV files.
    """
    validate_common(sample_rate, duration, on_error)
    root = Path(data_dir).expanduser()
    rec = root / "recordings"
    if not rec.is_dir() and root.name == "recordings" and root.is_dir():
        rec, root = root, root.parent
    if not rec.is_dir():
        raise FileNotFoundError(f"{rec}: FSDD recordings folder not found")
    val = {int(t) for t in val_takes}
    if any(t < 5 for t in val):
        raise ValueError(f"val_takes: expected training takes (>= 5), got {sorted(val)}")
    speakers_path = root / "speakers.json"
    speakers = as_mapping(
        read_json_strict(speakers_path, "FSDD speaker metadata"), str(speakers_path)
    )
    report = ReportBuilder()
    clips = []
    unknown_speakers = set()
    for path in sorted(rec.iterdir()):
        if path.is_dir() or path.name.startswith("."):
            continue
        report.n_files += 1
        rel = f"recordings/{path.name}"
        m = _NAME.match(path.name)
        if not m:
            report.exclude(REASON_NAME, rel)
            continue
        digit, speaker, take = int(m[1]), m[2], int(m[3])
        if digit > 9:
            if on_error == "raise":
                raise ValueError(f"{path}: digit label {digit}: expected one of {FSDD_CLASSES}")
            report.exclude("label outside the class list", rel)
            continue
        info = speakers.get(speaker)
        if not isinstance(info, Mapping):
            unknown_speakers.add(speaker)
            info = {}
        split = "test" if take < 5 else "val" if take in val else "train"
        clips.append(
            Clip(
                path=path,
                rel=rel,
                label=digit,
                speaker=speaker,
                split=split,
                attributes={a: attribute_value(info.get(a)) for a in FSDD_ATTRIBUTES},
            )
        )
    if unknown_speakers:
        report.note(
            f"speakers missing from speakers.json (attributes {UNKNOWN!r}): "
            f"{sorted(unknown_speakers)}"
        )
    plan = Plan(
        name="fsdd",
        clips=clips,
        class_names=FSDD_CLASSES,
        attribute_names=FSDD_ATTRIBUTES,
        decode=lambda clip: read_audio(clip.path),
        report=report,
        options={"data_dir": str(root.resolve()), "val_takes": sorted(val)},
        sources=[speakers_path] + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)
