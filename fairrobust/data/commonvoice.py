"""Common Voice single-word target segment loader (``clips/*.mp3`` + train/dev/test TSVs).

Layout. ``data_dir`` may be

* a locale folder holding ``clips/``, ``train.tsv``, ``dev.tsv`` and ``test.tsv``
  (``cv-corpus-17.0-2024-03-15/en``, ``cv-corpus-17.0-singleword/en``);
* a release root holding locale folders (``en/``, ``de/``, ...: any subfolder with a
  ``train.tsv`` or a ``clips/`` folder); ``locale`` picks one, default ``en`` when
  present (otherwise the error lists the locale folders found);
* a folder holding exactly one ``cv-corpus-*`` release root (several: the error
  lists them).

A locale given for a locale folder is checked against the TSVs' ``locale`` column.
Every layout error names the folder and what was expected, before any audio is read.

Columns used: ``client_id`` (speaker), ``path`` (clip under ``clips/``),
``sentence`` (the word: label after lower-casing and stripping punctuation,
:func:`normalize_sentence`), ``age``, ``gender`` and ``accent`` (``accents`` in
newer releases). Splits are the official ones, ``dev.tsv`` -> ``val``.

Words. The label set is ``words`` in the order given (default :data:`CV_CLASSES`,
the paper's 13 words). ``firefox`` is dropped, as in the paper, unless listed (rows
counted in the report). With the default list any other sentence is an error (a
wrong folder or a full-sentence release); with an explicit list the segment's
other words are a selection: their rows are left out and counted in the report
(a sentence of several words is still an error). A listed word with no clip is
named in the report.

Demographics (blank values become ``"unknown"``):

* gender: :data:`CV_GENDERS` maps the values of every release to stable group
  names. Releases up to 16 use ``male``, ``female``, ``other``; Common Voice 17+
  uses ``male_masculine``, ``female_feminine``, ``intersex``, ``transgender``,
  ``non-binary`` and ``do_not_wish_to_say``. The three identities outside the
  binary become ``other`` (the old releases' catch-all, and groups of a few
  speakers each in the English release), ``do_not_wish_to_say`` becomes
  ``unknown`` (declining is missing data, not a group). The raw values merged into
  ``other`` are counted in the report; an unlisted value is kept as its own group
  and named in the report.
* age: :data:`CV_AGES`; Common Voice names are kept (``teens``, ``twenties``,
  ..., ``fourties`` sic, ..., ``nineties``); ``forties`` is read as ``fourties`` so
  the group keeps one name. Unlisted values are kept and named in the report.
* accent: Common Voice 10+ stores self-described accents, several joined by
  ``|`` (``United States English|Canadian English``); commas are part of a
  label (``India and South Asia (India, Pakistan, Sri Lanka)``), not separators.
  Group masks (:mod:`fairrobust.groups`) partition the clips: every clip has one
  value per attribute, and parity gaps, speaker-clustered bootstrap intervals
  and paired comparisons assume that no clip is in two groups. So a clip naming
  one accent (after stripping blanks and repeats) is in that accent's group, and a
  clip naming several distinct accents is in the group :data:`MULTIPLE_ACCENTS`
  (``"multiple"``) rather than counted in each group it names (overlapping groups)
  or assigned to its first value (the order is the speaker's, not a ranking). The
  report counts the multi-accent clips and speakers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from fairrobust.data.audio import read_audio
from fairrobust.data.cache import (
    Clip,
    Plan,
    ReportBuilder,
    attribute_value,
    execute,
    validate_common,
)
from fairrobust.data.dataset import UNKNOWN, AudioDataset
from fairrobust.data.tables import read_table

__all__ = [
    "ACCENT_SEPARATOR",
    "CV_AGES",
    "CV_ATTRIBUTES",
    "CV_CLASSES",
    "CV_GENDERS",
    "MULTIPLE_ACCENTS",
    "find_locale_dir",
    "load_common_voice",
    "map_accents",
    "map_age",
    "map_gender",
    "normalize_sentence",
    "normalize_words",
]

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
#: Raw ``gender`` value (lower-cased) -> group name; blank is ``"unknown"``.
CV_GENDERS: Mapping[str, str] = MappingProxyType(
    {
        "male": "male",
        "male_masculine": "male",
        "female": "female",
        "female_feminine": "female",
        "other": "other",
        "non-binary": "other",
        "intersex": "other",
        "transgender": "other",
        "do_not_wish_to_say": UNKNOWN,
    }
)
#: Raw ``age`` value (lower-cased) -> group name (Common Voice's names, ``fourties`` sic).
CV_AGES: Mapping[str, str] = MappingProxyType(
    {
        "teens": "teens",
        "twenties": "twenties",
        "thirties": "thirties",
        "fourties": "fourties",
        "forties": "fourties",
        "fifties": "fifties",
        "sixties": "sixties",
        "seventies": "seventies",
        "eighties": "eighties",
        "nineties": "nineties",
    }
)
#: Joins the accents of one clip in the ``accents`` column (Common Voice 10+).
ACCENT_SEPARATOR = "|"
#: Group of the clips naming several distinct accents.
MULTIPLE_ACCENTS = "multiple"
REASON_FIREFOX = "firefox class dropped (paper)"
REASON_WORD = "word not in the word list"
REASON_LABEL = "sentence not in the class list"
REASON_MISSING = "clip not found"


def normalize_sentence(text: str) -> str:
    """Lower-case, punctuation and surrounding whitespace stripped: ``" Yes!"`` -> ``"yes"``."""
    return " ".join(re.sub(r"[^\w\s']|_", " ", text.lower()).split()).strip("'")


def normalize_words(words: Sequence[str] | None) -> tuple[str, ...]:
    """The label set: ``words`` normalised like sentences, in order (``None``: :data:`CV_CLASSES`).

    Raises:
      ValueError: a bare string, an empty list, a non-string or blank entry, or two
        entries equal after normalisation (both named).
    """
    if words is None:
        return CV_CLASSES
    if isinstance(words, (str, bytes)):
        raise ValueError(f"words: expected a sequence of words, got the string {words!r}")
    out: list[str] = []
    for w in words:
        if not isinstance(w, str):
            raise ValueError(f"words: expected strings, got {w!r} ({type(w).__name__})")
        norm = normalize_sentence(w)
        if not norm:
            raise ValueError(f"words: {w!r} is empty after normalisation")
        if norm in out:
            first = list(words)[out.index(norm)]
            raise ValueError(f"words: {first!r} and {w!r} are the same word {norm!r}")
        out.append(norm)
    if not out:
        raise ValueError("words: expected at least one word, got an empty list")
    return tuple(out)


def map_gender(value: str) -> str:
    """Group name of a raw ``gender`` value (:data:`CV_GENDERS`; unlisted values kept)."""
    text = attribute_value(value)
    return CV_GENDERS.get(text.lower(), text)


def map_age(value: str) -> str:
    """Group name of a raw ``age`` value (:data:`CV_AGES`; unlisted values kept)."""
    text = attribute_value(value)
    return CV_AGES.get(text.lower(), text)


def map_accents(value: str) -> tuple[str, tuple[str, ...]]:
    """Group name of a raw ``accent(s)`` value and the distinct accents it names.

    ``"a|b"`` -> ``("multiple", ("a", "b"))``; ``" a | a|"`` -> ``("a", ("a",))``;
    ``""`` -> ``("unknown", ())``. Repeats are found case-insensitively (first
    spelling kept); commas are not separators.
    """
    seen: dict[str, str] = {}
    for part in value.split(ACCENT_SEPARATOR):
        part = part.strip()
        if part:
            seen.setdefault(part.casefold(), part)
    names = tuple(seen.values())
    if not names:
        return UNKNOWN, ()
    return (names[0] if len(names) == 1 else MULTIPLE_ACCENTS), names


def _has_tables(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CV_SPLITS.values())


def _locale_dirs(folder: Path) -> list[str]:
    """Names of the subfolders that look like locale folders (a split table or ``clips/``)."""
    return sorted(
        d.name
        for d in folder.iterdir()
        if d.is_dir() and (_has_tables(d) or (d / "clips").is_dir())
    )


def _contents(folder: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) if names else "nothing"


def find_locale_dir(data_dir: str | os.PathLike[str], locale: str | None = None) -> Path:
    """The Common Voice locale folder (split tables + ``clips/``) under ``data_dir``.

    Args:
      data_dir: a locale folder, a release root holding locale folders, or a folder
        holding one ``cv-corpus-*`` release root (see the module docstring).
      locale: the locale folder to use under a release root (``"en"``, ``"de"``);
        default ``"en"`` when present. Ignored for a locale folder (the loader
        checks it against the ``locale`` column).

    Returns:
      The locale folder's path.

    Raises:
      FileNotFoundError: ``data_dir`` is missing or holds no Common Voice layout
        (the message says what was expected and what was found).
      ValueError: a release root without ``en`` and no ``locale``, a ``locale``
        that is not there (the locale folders found are listed), or several
        ``cv-corpus-*`` roots.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Common Voice folder not found")
    if _has_tables(root) or (root / "clips").is_dir():
        return root  # a locale folder (a missing table is named when it is read)
    release = root
    locales = _locale_dirs(root)
    if not locales:
        releases = sorted(
            d.name for d in root.glob("cv-corpus-*") if d.is_dir() and _locale_dirs(d)
        )
        if len(releases) > 1:
            raise ValueError(
                f"{root}: holds several Common Voice releases {releases}; "
                "pass one of them as the data folder"
            )
        if releases:
            release = root / releases[0]
            locales = _locale_dirs(release)
    if not locales:
        raise FileNotFoundError(
            f"{root}: not a Common Voice folder: expected a locale folder with train.tsv, "
            "dev.tsv, test.tsv and clips/ (such as cv-corpus-17.0-2024-03-15/en), or a "
            f"release root holding locale folders (en/, de/, ...); found: {_contents(root)}"
        )
    if locale is None:
        if "en" not in locales:
            raise ValueError(
                f"{release}: a Common Voice release root without an 'en' folder; choose "
                f"a locale (locale=..., --locale) among the locale folders found: {locales}"
            )
        locale = "en"
    if locale not in locales:
        raise ValueError(
            f"locale: {locale!r} is not a locale folder of {release}; "
            f"locale folders found: {locales}"
        )
    return release / locale


_TALLIES = (
    "gender_other",
    "gender_declined",
    "gender_unlisted",
    "age_unlisted",
    "multi_accent",
    "multi_accent_speakers",
)


def _demographics(row: Mapping[str, str], accent_col: str, tally: dict[str, Counter]) -> dict:
    """Mapped gender, age and accent of one row; raw values of note go to ``tally``."""
    raw_gender = attribute_value(row["gender"])
    gender = map_gender(raw_gender)
    if gender == "other" and raw_gender.lower() != "other":
        tally["gender_other"][raw_gender] += 1
    elif raw_gender.lower() == "do_not_wish_to_say":
        tally["gender_declined"][raw_gender] += 1
    elif raw_gender.lower() not in CV_GENDERS and gender != UNKNOWN:
        tally["gender_unlisted"][raw_gender] += 1
    age = map_age(row["age"])
    if age != UNKNOWN and age not in CV_AGES.values():
        tally["age_unlisted"][age] += 1
    accent, names = map_accents(row[accent_col])
    if len(names) > 1:
        tally["multi_accent"][ACCENT_SEPARATOR.join(names)] += 1
        tally["multi_accent_speakers"][row["client_id"]] += 1
    return {"gender": gender, "age": age, "accent": accent}


def _report_tally(report: ReportBuilder, tally: dict[str, Counter]) -> None:
    def listing(c: Counter) -> str:
        return ", ".join(f"{k!r} ({n})" for k, n in sorted(c.items()))

    if tally["gender_other"]:
        report.note(f"gender: values grouped as 'other' (clips): {listing(tally['gender_other'])}")
    if tally["gender_declined"]:
        n = sum(tally["gender_declined"].values())
        report.note(f"gender: 'do_not_wish_to_say' read as {UNKNOWN!r} ({n} clips)")
    if tally["gender_unlisted"]:
        report.note(f"gender: unlisted values kept as groups: {listing(tally['gender_unlisted'])}")
    if tally["age_unlisted"]:
        report.note(f"age: unlisted values kept as groups: {listing(tally['age_unlisted'])}")
    multi = tally["multi_accent"]
    if multi:
        example = multi.most_common(1)[0][0]
        report.note(
            f"accent: {sum(multi.values())} clips ({len(tally['multi_accent_speakers'])} "
            f"speakers) name several accents (such as {example!r}); they form the group "
            f"{MULTIPLE_ACCENTS!r}"
        )


def _word_error(where: str, sentence: str, word: str, classes: tuple[str, ...]) -> str:
    hint = (
        "; the sentence has several words: is this the single-word target segment?"
        if " " in word
        else "; pass words=[...] (--words) to choose the words"
    )
    return f"{where}: column 'sentence' = {sentence!r} -> {word!r}: expected one of {classes}{hint}"


def load_common_voice(
    data_dir: str | os.PathLike[str],
    *,
    locale: str | None = None,
    words: Sequence[str] | None = None,
    sample_rate: int = 16000,
    duration: float = 1.0,
    cache: bool = True,
    on_error: str = "raise",
    num_workers: int | None = None,
) -> AudioDataset:
    """Load the Common Voice single-word target segment.

    Args:
      data_dir: a locale folder (``clips/``, ``train.tsv``, ``dev.tsv``,
        ``test.tsv``), a release root holding locale folders, or a folder holding
        one ``cv-corpus-*`` release (module docstring).
      locale: locale folder under a release root (default ``"en"`` when present);
        for a locale folder, checked against the TSVs' ``locale`` column.
      words: the words to classify, in label order, normalised like sentences
        (default :data:`CV_CLASSES`). ``firefox`` rows are dropped unless it is
        listed. With the default, a sentence outside the list is an error
        (``on_error="raise"``) or skipped and reported; with an explicit list,
        rows of other single words are left out and counted in the report.
      sample_rate, duration, cache, on_error, num_workers: see :func:`load_wuw`.

    Returns:
      An :class:`AudioDataset`; class_names = the normalised words, speakers =
      ``client_id``, attributes gender, age, accent (mapped as in the module docstring).

    Raises:
      FileNotFoundError: no Common Voice layout under ``data_dir``, a missing TSV,
        or (``on_error="raise"``) a row whose clip is missing.
      ValueError: bad ``words`` or ``locale`` (the locales found are listed),
        non-UTF-8 TSV, missing columns (listed), a sentence outside ``words``, no
        row with a listed word, undecodable or truncated MP3s; messages name file and row.
    """
    validate_common(sample_rate, duration, on_error)
    classes = normalize_words(words)
    if locale is not None and (not isinstance(locale, str) or not locale.strip()):
        raise ValueError(f"locale: expected a locale folder name such as 'en', got {locale!r}")
    given = Path(data_dir).expanduser()
    root = find_locale_dir(given, locale)
    report = ReportBuilder()
    if root != given:
        report.note(f"Common Voice locale folder: {root}")
    clips, tables, found = _plan_clips(root, locale, classes, words is not None, on_error, report)
    if report.n_files and not any(found[w] for w in classes):
        common = [w for w, _ in found.most_common(10)]
        raise ValueError(
            f"{root}: no row of {', '.join(CV_SPLITS.values())} has a word of words={list(classes)}"
            f"; most frequent sentences: {common}"
        )
    plan = Plan(
        name="common-voice",
        clips=clips,
        class_names=classes,
        attribute_names=CV_ATTRIBUTES,
        decode=lambda clip: read_audio(clip.path),
        report=report,
        options={"data_dir": str(root.resolve()), "locale": locale, "words": list(classes)},
        sources=tables + [c.path for c in clips],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)


def _plan_clips(
    root: Path,
    locale: str | None,
    classes: tuple[str, ...],
    explicit: bool,
    on_error: str,
    report: ReportBuilder,
) -> tuple[list[Clip], list[Path], Counter]:
    """Read the split tables: planned clips, the tables, and the count of each sentence."""
    index = {c: i for i, c in enumerate(classes)}
    clips: list[Clip] = []
    tables: list[Path] = []
    found: Counter = Counter()
    tally: dict[str, Counter] = {k: Counter() for k in _TALLIES}
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
            if locale is not None and row.get("locale") and row["locale"] != locale:
                raise ValueError(
                    f"{where}: column 'locale' = {row['locale']!r}, but locale={locale!r} "
                    "was asked for"
                )
            word = normalize_sentence(row["sentence"])
            found[word] += 1
            if word not in index:
                if word == "firefox":
                    report.exclude(REASON_FIREFOX, rel)
                elif explicit and word and " " not in word:
                    report.exclude(REASON_WORD, rel)
                elif on_error == "raise":
                    raise ValueError(_word_error(where, row["sentence"], word, classes))
                else:
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
                    attributes=_demographics(row, accent_col, tally),
                )
            )
    _report_tally(report, tally)
    absent = [w for w in classes if not found[w]]
    if absent and any(found[w] for w in classes):
        report.note(f"words with no clip: {absent}")
    return clips, tables, found
