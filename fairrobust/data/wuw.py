"""WUW Corpus II loader: headerless 8 kHz mu-law telephone calls, keyword cut, MD5 check.

Layout (see the corpus README): ``<root>/data.json`` with ``{"entries": [...]}``
and ``<root>/calls/<session>/WUWII<session>_<utt>.ulaw``. Each entry gives the
keyword's ``startTime`` / ``endTime`` (s), the MD5 ``checksum`` of the file, the
human ``transcription`` and the speaker's ``gender``, ``dialect`` and
``phonetype``. Utterances 001-005 are the five keywords said alone, 006-010 the
same keywords inside a sentence; the label is ``(utterance - 1) % 5``.

Exclusions (always, listed in the report): keyword times missing or reversed
(``endTime <= startTime``; 26 isolated entries, e.g. 0..0 or 3.343..0.951),
keyword times past the end of the recording; by default (``drop_mismatched``)
clips whose normalised transcription lacks the keyword ("done", "say five",
"-perator"). Speaker = session (one caller per session). Split: whole sessions,
seeded 70/10/20 over every session of the corpus (open-user setting).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust.data.audio import mulaw_decode
from fairrobust.data.cache import Clip, Plan, ReportBuilder, attribute_value, execute, str_option
from fairrobust.data.dataset import AudioDataset
from fairrobust.data.splits import group_disjoint_split
from fairrobust.data.tables import read_json_strict

__all__ = [
    "WUW_ATTRIBUTES",
    "WUW_CLASSES",
    "WUW_SAMPLE_RATE",
    "WuwEntry",
    "keyword_bounds",
    "load_wuw",
    "normalize_transcription",
    "transcription_matches",
]

WUW_CLASSES = ("Operator", "ThinkEngine", "Onword", "Wildfire", "Voyager")
WUW_ATTRIBUTES = ("gender", "dialect", "phonetype")
WUW_SAMPLE_RATE = 8000
UTTERANCES = {
    "isolated": tuple(range(1, 6)),
    "sentence": tuple(range(6, 11)),
    "all": tuple(range(1, 11)),
}
_REQUIRED_KEYS = ("sessionNumber", "utteranceNumber", "filePath", "startTime", "endTime")

REASON_TIMES = "keyword times missing or reversed (endTime <= startTime)"
REASON_BEYOND = "keyword times beyond the end of the recording"
REASON_MISMATCH = "transcription lacks the keyword"
REASON_MISSING = "file not found"
REASON_LABEL = "utterance number outside 001-010"

# Innermost bracketed noise marks of any bracket type, even mismatched: [click],
# {breath}, ((...)), [static\], {static]. Removed repeatedly, innermost first.
_MARK = re.compile(r"[\[{(][^\[\]{}()]*[\]})]")


def normalize_transcription(text: str) -> str:
    """Lower-case letters of a transcription with noise marks removed.

    ``"[click] Ope{breath}rator [static]"`` -> ``"operator"``;
    ``"Think{breath}Engine"`` -> ``"thinkengine"``; ``"-perator"`` -> ``"perator"``.
    """
    prev = None
    while prev != text:
        prev, text = text, _MARK.sub(" ", text)
    return re.sub(r"[^a-z]", "", text.lower())


def transcription_matches(text: str, keyword: str) -> bool:
    """Whether the normalised ``text`` contains the normalised ``keyword``."""
    return normalize_transcription(keyword) in normalize_transcription(text)


def keyword_bounds(start: float, end: float, margin: float, n: int, sr: int = WUW_SAMPLE_RATE):
    """Samples ``[a, b)`` of the keyword ``start..end`` (s) +- ``margin``, clipped to ``[0, n]``."""
    a = max(0, int(np.floor((start - margin) * sr + 0.5)))
    b = min(n, int(np.floor((end + margin) * sr + 0.5)))
    return a, b


@dataclasses.dataclass
class WuwEntry:
    """A checked entry of the WUW ``data.json`` (``parse_entries``; the bundled set too)."""

    row: str  # "data.json entry 17 (calls/...)"
    rel: str
    session: str
    utterance: int
    start: float
    end: float
    transcription: str
    checksum: str
    attributes: dict[str, str]


def parse_entries(entries: Any, source: str) -> list[WuwEntry]:
    """Check the data.json entry list; a bad entry raises naming its index and keys."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise ValueError(f"{source}: expected a list of entries under 'entries'")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise ValueError(f"{source}: entry {i}: expected an object, got {type(e).__name__}")
        missing = [k for k in _REQUIRED_KEYS if k not in e]
        if missing:
            raise ValueError(f"{source}: entry {i}: missing key(s) {missing}")
        row = f"{source} entry {i} ({e['filePath']})"
        try:
            utt = int(str(e["utteranceNumber"]))
            start, end = float(e["startTime"]), float(e["endTime"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{row}: expected integer utteranceNumber and numeric startTime/endTime, got "
                f"{e['utteranceNumber']!r}, {e['startTime']!r}, {e['endTime']!r}"
            ) from None
        out.append(
            WuwEntry(
                row=row,
                rel=str(e["filePath"]),
                session=str(e["sessionNumber"]),
                utterance=utt,
                start=start,
                end=end,
                transcription=str(e.get("transcription") or ""),
                checksum=str(e.get("checksum") or ""),
                attributes={a: attribute_value(e.get(a)) for a in WUW_ATTRIBUTES},
            )
        )
    return out


def plan_clips(
    entries: list[WuwEntry],
    sessions: Sequence[str],
    file_samples: Mapping[str, int | None],
    *,
    utterances: str,
    margin: float,
    drop_mismatched: bool,
    seed: int,
    on_error: str,
    report: ReportBuilder,
    root: Path,
) -> tuple[list[Clip], list[str]]:
    """Select, label, split and cut WUW entries (shared by :func:`load_wuw` and the bundled loader).

    Args:
      entries: parsed entries of the corpus (all utterances).
      sessions: every session of the corpus (the split is over these).
      file_samples: rel path -> number of samples in the recording (None: file missing).
      utterances, margin, drop_mismatched, seed, on_error: see :func:`load_wuw`.
      report: collects exclusions.
      root: data root, to build absolute paths.

    Returns:
      ``(clips, mismatched)``: planned clips, and the kept clips whose transcription
      lacks the keyword (non-empty only with ``drop_mismatched=False``).
    """
    wanted = set(UTTERANCES[str_option("utterances", utterances, tuple(UTTERANCES))])
    if not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a non-negative number of seconds, got {margin!r}")
    split_of = group_disjoint_split(list(sessions), seed=seed)
    clips, mismatched = [], []
    for e in entries:
        if not 1 <= e.utterance <= 10:
            if on_error == "raise":
                raise ValueError(
                    f"{e.row}: utteranceNumber {e.utterance:03d}: expected 001-010 "
                    f"(classes {WUW_CLASSES}, label = (utterance - 1) % 5)"
                )
            report.n_files += 1
            report.exclude(REASON_LABEL, e.rel)
            continue
        if e.utterance not in wanted:
            continue
        report.n_files += 1
        n = file_samples.get(e.rel)
        if n is None:
            if on_error == "raise":
                raise FileNotFoundError(f"{root / e.rel}: file not found (listed in {e.row})")
            report.exclude(REASON_MISSING, e.rel)
            continue
        if not e.end > e.start:
            report.exclude(REASON_TIMES, e.rel)
            continue
        if e.end > n / WUW_SAMPLE_RATE + 1.0 / WUW_SAMPLE_RATE:
            report.exclude(REASON_BEYOND, e.rel)
            continue
        keyword = WUW_CLASSES[(e.utterance - 1) % 5]
        if not transcription_matches(e.transcription, keyword):
            if drop_mismatched:
                report.exclude(REASON_MISMATCH, e.rel)
                continue
            mismatched.append(e.rel)
        a, b = keyword_bounds(e.start, e.end, margin, n)
        clips.append(
            Clip(
                path=root / e.rel,
                rel=e.rel,
                label=(e.utterance - 1) % 5,
                speaker=e.session,
                split=split_of[e.session],
                attributes=dict(e.attributes),
                extra={"a": a, "b": b, "checksum": e.checksum, "row": e.row},
            )
        )
    if mismatched:
        report.note(
            f"{len(mismatched)} clips whose transcription lacks the keyword were kept "
            "(drop_mismatched=False); their paths are in meta['mismatched']"
        )
    return clips, mismatched


def load_wuw(
    data_dir: str | os.PathLike[str],
    *,
    utterances: str = "isolated",
    margin: float = 0.1,
    verify_checksum: bool = True,
    drop_mismatched: bool = True,
    seed: int = 0,
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load WUW Corpus II keyword clips.

    Each clip is the keyword ``startTime..endTime`` plus ``margin`` seconds on
    each side (clipped to the recording), mu-law decoded, resampled from 8 kHz
    and centre cropped / zero padded to ``duration``.

    Args:
      data_dir: corpus root holding ``data.json`` and ``calls/``.
      utterances: ``"isolated"`` (001-005, keyword said alone), ``"sentence"``
        (006-010, keyword inside a sentence) or ``"all"``.
      margin: seconds kept before and after the keyword.
      verify_checksum: compare each file's MD5 with its ``checksum``.
      drop_mismatched: exclude clips whose transcription lacks the keyword.
      seed: seed of the session permutation behind the 70/10/20 split.
      sample_rate: output rate in Hz.
      duration: output length in seconds.
      cache: read / write the preprocessing cache.
      on_error: ``"raise"`` on the first bad file, or ``"skip"`` it (listed in the report).
      num_workers: decoding threads (default ``min(8, cpus)``).

    Returns:
      An :class:`AudioDataset` with classes :data:`WUW_CLASSES`, speakers =
      session numbers, attributes gender / dialect / phonetype.

    Raises:
      FileNotFoundError: missing data.json, or (``on_error="raise"``) a listed file.
      ValueError: malformed data.json, checksum mismatch, undecodable clip; the
        message names the file or entry.
    """
    root = Path(data_dir).expanduser()
    meta_path = root / "data.json"
    raw = read_json_strict(meta_path, "WUW Corpus II metadata (data.json)")
    if not isinstance(raw, Mapping) or "entries" not in raw:
        raise ValueError(f"{meta_path}: expected an object with key 'entries'")
    entries = parse_entries(raw["entries"], str(meta_path.name))
    sizes: dict[str, int | None] = {}
    for e in entries:
        try:
            sizes[e.rel] = os.stat(root / e.rel).st_size  # 1 byte per mu-law sample
        except FileNotFoundError:
            sizes[e.rel] = None
    report = ReportBuilder()
    clips, mismatched = plan_clips(
        entries,
        sorted({e.session for e in entries}),
        sizes,
        utterances=utterances,
        margin=margin,
        drop_mismatched=drop_mismatched,
        seed=seed,
        on_error=on_error,
        report=report,
        root=root,
    )
    if verify_checksum and report.excluded.get(REASON_BEYOND):
        # A recording shorter than its keyword times may be a truncated copy: only the
        # checksum tells a corpus quirk (intact file) from a damaged file, which must
        # raise (or be skipped as such) rather than be dropped as a quirk.
        by_rel = {e.rel: e for e in entries}
        for rel in list(report.excluded[REASON_BEYOND]):
            e = by_rel[rel]
            got = hashlib.md5((root / rel).read_bytes()).hexdigest()
            if e.checksum and got != e.checksum.lower():
                message = (
                    f"{root / rel}: checksum mismatch: expected MD5 {e.checksum} from {e.row}, "
                    f"got {got} (corrupt or truncated file)"
                )
                if on_error == "raise":
                    raise ValueError(message)
                report.excluded[REASON_BEYOND].remove(rel)
                report.exclude("checksum mismatch", rel)
        if not report.excluded[REASON_BEYOND]:
            del report.excluded[REASON_BEYOND]

    def decode(clip: Clip) -> tuple[np.ndarray, int]:
        raw_bytes = clip.path.read_bytes()
        if verify_checksum:
            expected = clip.extra["checksum"].lower()
            got = hashlib.md5(raw_bytes).hexdigest()
            if got != expected:
                raise ValueError(
                    f"{clip.path}: checksum mismatch: expected MD5 {expected or '(none)'} "
                    f"from {clip.extra['row']}, got {got} (corrupt or truncated file)"
                )
        codes = np.frombuffer(raw_bytes, dtype=np.uint8)[clip.extra["a"] : clip.extra["b"]]
        return mulaw_decode(codes), WUW_SAMPLE_RATE

    plan = Plan(
        name="wuw",
        clips=clips,
        class_names=WUW_CLASSES,
        attribute_names=WUW_ATTRIBUTES,
        decode=decode,
        report=report,
        options={
            "data_dir": str(root.resolve()),
            "utterances": utterances,
            "margin": margin,
            "verify_checksum": verify_checksum,
            "drop_mismatched": drop_mismatched,
            "seed": seed,
            "mismatched": mismatched,
        },
        sources=[meta_path] + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)
