"""Generic loader for your own data: a CSV with ``path, label, speaker`` and attribute columns.

``path`` is relative to the CSV's folder; ``label`` is a class name; every
other column except an optional ``split`` (train / val / test; ``dev`` and
``validation`` mean val) is a demographic attribute (blank -> ``"unknown"``).
Without a ``split`` column the speakers are split 70/10/20 at random (seeded),
so no speaker is in two splits (open-user setting).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fairrobust.data.audio import read_audio
from fairrobust.data.cache import (
    Clip,
    Plan,
    ReportBuilder,
    attribute_value,
    execute,
    validate_common,
)
from fairrobust.data.dataset import AudioDataset
from fairrobust.data.splits import group_disjoint_split
from fairrobust.data.tables import read_table

__all__ = ["load_folder"]

_SPLIT_NAMES = {"train": "train", "val": "val", "dev": "val", "validation": "val", "test": "test"}


def _sort_classes(labels: set[str]) -> tuple[str, ...]:
    """Numeric order when every label is an integer, else alphabetical."""
    if all(s.lstrip("-").isdigit() for s in labels):
        return tuple(sorted(labels, key=int))
    return tuple(sorted(labels))


def load_folder(
    data_dir: str | os.PathLike[str],
    *,
    csv_name: str = "metadata.csv",
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load audio files listed in a CSV.

    Args:
      data_dir: the CSV file, or the folder holding ``csv_name``.
      csv_name: CSV file name when ``data_dir`` is a folder.
      class_names: class names in label order; default: the sorted labels
        found (numerically when all are integers). A label outside a given list
        is an error (or skipped with ``on_error="skip"``).
      seed: seed of the speaker-disjoint split (used without a ``split`` column).
      sample_rate, duration, cache, on_error, num_workers: see :func:`load_wuw`.

    Returns:
      An :class:`AudioDataset` named ``"folder"``; attributes = the extra columns.

    Raises:
      FileNotFoundError: missing CSV, or (``on_error="raise"``) a row's missing file.
      ValueError: non-UTF-8 CSV, missing columns (listed), bad split names or
        labels (row and column named), undecodable audio (file named).
    """
    validate_common(sample_rate, duration, on_error)
    path = Path(data_dir).expanduser()
    table = path if path.is_file() else path / csv_name
    header, rows = read_table(table, "dataset CSV", ("path", "label", "speaker"))
    base = table.parent
    attr_names = tuple(h for h in header if h not in ("path", "label", "speaker", "split") and h)
    has_split = "split" in header
    if class_names is None:
        classes = _sort_classes({r["label"] for r in rows if r["label"]})
    else:
        classes = tuple(class_names)
    index = {c: i for i, c in enumerate(classes)}
    speaker_split = (
        {} if has_split else group_disjoint_split([r["speaker"] or "unknown" for r in rows], seed)
    )
    report = ReportBuilder()
    clips = []
    for r in rows:
        report.n_files += 1
        where = f"{table} row {r['_row']}"
        rel = r["path"]
        problem = None
        if r["label"] not in index:
            problem = (
                "label outside the class list",
                ValueError(f"{where}: column 'label' = {r['label']!r}: expected one of {classes}"),
            )
        elif has_split and r["split"].lower() not in _SPLIT_NAMES:
            problem = (
                "unknown split name",
                ValueError(
                    f"{where}: column 'split' = {r['split']!r}: expected one of "
                    f"{tuple(_SPLIT_NAMES)}"
                ),
            )
        elif not rel or not (base / rel).is_file():
            problem = (
                "file not found",
                FileNotFoundError(f"{base / rel}: file not found (column 'path' of {where})"),
            )
        if problem:
            if on_error == "raise":
                raise problem[1]
            report.exclude(problem[0], rel or where)
            continue
        speaker = attribute_value(r["speaker"])
        split = (
            _SPLIT_NAMES[r["split"].lower()]
            if has_split
            else speaker_split[r["speaker"] or "unknown"]
        )
        clips.append(
            Clip(
                path=base / rel,
                rel=rel,
                label=index[r["label"]],
                speaker=speaker,
                split=split,
                attributes={a: attribute_value(r[a]) for a in attr_names},
            )
        )
    plan = Plan(
        name="folder",
        clips=clips,
        class_names=classes,
        attribute_names=attr_names,
        decode=lambda clip: read_audio(clip.path),
        report=report,
        options={"csv": str(table.resolve()), "class_names": list(classes), "seed": seed},
        sources=[table] + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)
