"""Common Voice single-word target segment loader (``clips/*.mp3`` + train/dev/test TSVs).

Columns used: ``client_id`` (speaker), ``path`` (clip under ``clips/``),
``sentence`` (the word: label after lower-casing and stripping punctuation),
``age``, ``gender`` and ``accent`` (``accents`` in newer releases). Blank
demographics become ``"unknown"``; Common Voice age names are kept as they are
(``teens``, ``twenties``, ..., ``fourties`` sic). The ``firefox`` class is
dropped, as in the paper (rows counted in the report). Splits are the official
ones, ``dev.tsv`` -> ``val``.
"""

from __future__ import annotations

import os
import re
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
from fairrobust.data.tables import read_table

__all__ = ["CV_ATTRIBUTES", "CV_CLASSES", "load_common_voice", "normalize_sentence"]

#: The single-word target segment's words without "firefox" (dropped, as in the paper).
CV_CLASSES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "yes",
    "no",
    "hey",
)
CV_ATTRIBUTES = ("gender", "age", "accent")
CV_SPLITS = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}
REASON_FIREFOX = "firefox class dropped (paper)"
REASON_LABEL = "sentence not in the class list"
REASON_MISSING = "clip not found"


def normalize_sentence(text: str) -> str:
    """Lower-case, punctuation and surrounding whitespace stripped: ``" Yes!"`` -> ``"yes"``."""
    return " ".join(re.sub(r"[^\w\s']|_", " ", text.lower()).split()).strip("'")


def load_common_voice(
    data_dir: str | os.PathLike[str],
    *,
    class_names: Sequence[str] = CV_CLASSES,
    drop_firefox: bool = True,
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load the Common Voice single-word target segment.

    Args:
      data_dir: release folder holding ``clips/``, ``train.tsv``, ``dev.tsv`` and ``test.tsv``.
      class_names: the words to classify, in label order; a row whose
        normalised sentence is not among them is an error (``on_error="raise"``)
        or skipped and reported.
      drop_firefox: drop rows of the word "firefox" (the paper does); with
        ``False`` add ``"firefox"`` to ``class_names`` yourself.
      sample_rate, duration, cache, on_error, num_workers: see :func:`load_wuw`.

    Returns:
      An :class:`AudioDataset`; speakers = ``client_id``, attributes gender, age, accent.

    Raises:
      FileNotFoundError: a missing TSV, or (``on_error="raise"``) a row whose clip is missing.
      ValueError: non-UTF-8 TSV, missing columns (listed), a sentence outside
        ``class_names``, undecodable or truncated MP3s; messages name file and row.
    """
    validate_common(sample_rate, duration, on_error)
    root = Path(data_dir).expanduser()
    classes = tuple(class_names)
    index = {c: i for i, c in enumerate(classes)}
    report = ReportBuilder()
    clips = []
    tables = []
    seen: set[str] = set()
    for split, name in CV_SPLITS.items():
        table = root / name
        tables.append(table)
        header, rows = read_table(
            table,
            "Common Voice split table",
            ("client_id", "path", "sentence", "age", "gender"),
            delimiter="\t",
            any_of=(("accent", "accents"),),
        )
        accent_col = "accent" if "accent" in header else "accents"
        for row in rows:
            report.n_files += 1
            rel = f"clips/{row['path']}"
            where = f"{table} row {row['_row']}"
            if rel in seen:
                raise ValueError(f"{where}: clip {row['path']!r} is listed twice (in two splits?)")
            seen.add(rel)
            word = normalize_sentence(row["sentence"])
            if word == "firefox" and drop_firefox:
                report.exclude(REASON_FIREFOX, rel)
                continue
            if word not in index:
                if on_error == "raise":
                    raise ValueError(
                        f"{where}: column 'sentence' = {row['sentence']!r} -> {word!r}: "
                        f"expected one of {classes}"
                    )
                report.exclude(REASON_LABEL, rel)
                continue
            path = root / rel
            if not row["path"] or not path.is_file():
                if on_error == "raise":
                    raise FileNotFoundError(f"{path}: clip not found (column 'path' of {where})")
                report.exclude(REASON_MISSING, rel)
                continue
            clips.append(
                Clip(
                    path=path,
                    rel=rel,
                    label=index[word],
                    speaker=attribute_value(row["client_id"]),
                    split=split,
                    attributes={
                        "gender": attribute_value(row["gender"]),
                        "age": attribute_value(row["age"]),
                        "accent": attribute_value(row[accent_col]),
                    },
                )
            )
    plan = Plan(
        name="common-voice",
        clips=clips,
        class_names=classes,
        attribute_names=CV_ATTRIBUTES,
        decode=lambda clip: read_audio(clip.path),
        report=report,
        options={
            "data_dir": str(root.resolve()),
            "class_names": list(classes),
            "drop_firefox": drop_firefox,
        },
        sources=tables + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)
