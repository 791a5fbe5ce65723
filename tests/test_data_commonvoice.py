"""Common Voice layouts (release roots, locales), word lists and demographic mappings."""

import numpy as np
import pytest
from fixtures_data import make_common_voice, make_fsdd

from fairrobust.data import load_common_voice, load_dataset
from fairrobust.data.commonvoice import (
    CV_AGES,
    CV_CLASSES,
    CV_GENDERS,
    MULTIPLE_ACCENTS,
    REASON_FIREFOX,
    REASON_WORD,
    find_locale_dir,
    map_accents,
    map_age,
    map_gender,
    normalize_words,
)
from fairrobust.groups import group_masks

US_CA = "United States English|Canadian English"
ENGLAND_TWICE = "England English|england english "
SOUTH_ASIA = "India and South Asia (India, Pakistan, Sri Lanka)"


def _row(client, path, word, age="", gender="", accent="", locale="en"):
    return (client, path, word, "2", "0", age, gender, accent, locale, "")


def _cv17(root, locale="en"):
    """A small Common Voice 17 locale: ``accents`` column, new gender values, pipes."""
    w = ("yes", "no") if locale == "en" else ("ja", "nein")
    rows = {
        "train.tsv": [
            _row("c1", "a1.mp3", w[0], "twenties", "male_masculine", US_CA, locale),
            _row("c1", "a2.mp3", w[1], "twenties", "male_masculine", US_CA, locale),
            _row("c2", "a3.mp3", w[0], "forties", "female_feminine", SOUTH_ASIA, locale),
            _row("c3", "a4.mp3", "Firefox", "", "non-binary", "", locale),
        ],
        "dev.tsv": [
            _row("c4", "b1.mp3", w[1], "teens", "do_not_wish_to_say", "Scottish English", locale),
        ],
        "test.tsv": [
            _row("c5", "d1.mp3", w[0], "", "transgender", ENGLAND_TWICE, locale),
            _row("c6", "d2.mp3", w[1], "nineties", "Female", " | ", locale),
            _row("c6", "d3.mp3", "hey", "nineties", "female", "", locale),
        ],
    }
    return make_common_voice(root, "accents", rows=rows, n=1600, sr=16000)


@pytest.fixture
def release(tmp_path):
    """``cv-corpus-17.0-2024-03-15/`` holding ``en/`` and ``de/``."""
    root = tmp_path / "cv-corpus-17.0-2024-03-15"
    _cv17(root / "en")
    _cv17(root / "de", "de")
    return root


# ---------------------------------------------------------------- layouts


def test_release_root_defaults_to_en_and_locale_picks(release):
    en = load_common_voice(release, words=["yes", "no", "hey"])
    direct = load_common_voice(release / "en", words=["yes", "no", "hey"])
    assert en.fingerprint() == direct.fingerprint() and len(en) == 7
    assert f"Common Voice locale folder: {release / 'en'}" in en.report.notes
    assert en.meta["data_dir"] == str((release / "en").resolve())
    de = load_dataset("common_voice", release, locale="de", words=["ja", "nein", "hey"])
    assert de.class_names == ("ja", "nein", "hey") and len(de) == 7
    assert [de.class_names[i] for i in de.labels[:3]] == ["ja", "nein", "ja"]
    # one more level: a folder holding the release root
    assert find_locale_dir(release.parent) == release / "en"
    assert find_locale_dir(release.parent, "de") == release / "de"


def test_release_root_errors_name_the_folders(release, tmp_path):
    with pytest.raises(ValueError, match=r"locale: 'fr' is not a locale folder.*\['de', 'en'\]"):
        load_common_voice(release, locale="fr")
    (release / "en").rename(release / "it")
    with pytest.raises(ValueError, match=r"without an 'en' folder.*--locale.*\['de', 'it'\]"):
        load_common_voice(release)
    _cv17(tmp_path / "cv-corpus-16.1-2023-12-06" / "en")
    with pytest.raises(ValueError, match=r"several Common Voice releases \['cv-corpus-16\.1-"):
        load_common_voice(tmp_path)
    empty = tmp_path / "empty"
    (empty / "audio").mkdir(parents=True)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"empty: not a Common Voice folder: expected .*"):
        load_common_voice(empty)
    with pytest.raises(FileNotFoundError, match=r"found: audio/, notes\.txt"):
        load_common_voice(empty)
    with pytest.raises(FileNotFoundError, match=r"nothere: Common Voice folder not found"):
        load_common_voice(tmp_path / "nothere")
    with pytest.raises(ValueError, match=r"locale: expected a locale folder name"):
        load_common_voice(release, locale="")
    # a locale given for a locale folder is checked against the rows
    with pytest.raises(ValueError, match=r"row 2: column 'locale' = 'de', but locale='en'"):
        load_common_voice(release / "de", locale="en")
    # clips/ without its tables: a locale folder whose missing table is named
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        (release / "de" / name).unlink()
    with pytest.raises(FileNotFoundError, match=r"de/train\.tsv: Common Voice split table not"):
        load_common_voice(release / "de")


def test_layout_error_comes_before_decoding(release, monkeypatch):
    import fairrobust.data.commonvoice as cv

    def boom(*_args, **_kw):
        raise AssertionError("audio decoded")

    monkeypatch.setattr(cv, "read_audio", boom)
    with pytest.raises(ValueError, match="locale folders found"):
        load_common_voice(release, locale="xx")
    with pytest.raises(ValueError, match=r"no row of train\.tsv, dev\.tsv, test\.tsv has a word"):
        load_common_voice(release, words=["maybe"])


# ---------------------------------------------------------------- demographics


@pytest.mark.parametrize(
    ("raw", "group"),
    [
        ("male", "male"),
        ("male_masculine", "male"),
        ("Male", "male"),
        ("female", "female"),
        ("female_feminine", "female"),
        ("other", "other"),
        ("non-binary", "other"),
        ("intersex", "other"),
        ("transgender", "other"),
        ("do_not_wish_to_say", "unknown"),
        ("", "unknown"),
        ("  ", "unknown"),
        ("agender", "agender"),
    ],
)
def test_gender_table(raw, group):
    assert map_gender(raw) == group


def test_age_and_accent_tables():
    assert set(CV_GENDERS.values()) == {"male", "female", "other", "unknown"}
    assert [map_age(a) for a in ("teens", "fourties", "forties", "Nineties", "", "100")] == [
        "teens",
        "fourties",
        "fourties",
        "nineties",
        "unknown",
        "100",
    ]
    assert len(set(CV_AGES.values())) == 9
    assert map_accents(US_CA) == (MULTIPLE_ACCENTS, ("United States English", "Canadian English"))
    assert map_accents(SOUTH_ASIA) == (SOUTH_ASIA, (SOUTH_ASIA,))
    assert map_accents(" us | US|") == ("us", ("us",))
    assert map_accents("") == ("unknown", ()) and map_accents("|") == ("unknown", ())


def test_new_genders_and_multi_value_accents_loaded(release):
    ds = load_common_voice(release / "en", words=["yes", "no", "hey"])
    assert list(ds.attributes["gender"]) == [
        "male",
        "male",
        "female",
        "unknown",
        "other",
        "female",
        "female",
    ]
    assert list(ds.attributes["age"]) == [
        "twenties",
        "twenties",
        "fourties",
        "teens",
        "unknown",
        "nineties",
        "nineties",
    ]
    assert list(ds.attributes["accent"]) == [
        MULTIPLE_ACCENTS,
        MULTIPLE_ACCENTS,
        SOUTH_ASIA,
        "Scottish English",
        "England English",
        "unknown",
        "unknown",
    ]
    notes = ds.report.notes
    assert (
        "accent: 2 clips (1 speakers) name several accents (such as "
        "'United States English|Canadian English'); they form the group 'multiple'" in notes
    )
    # firefox (dropped) is not counted; transgender is
    assert "gender: values grouped as 'other' (clips): 'transgender' (1)" in notes
    assert "gender: 'do_not_wish_to_say' read as 'unknown' (1 clips)" in notes
    # the groups stay a partition: every clip in at most one accent group
    groups = group_masks(ds.attributes, "accent")
    assert groups.names == ("England English", SOUTH_ASIA, "Scottish English", MULTIPLE_ACCENTS)
    assert np.asarray(groups.masks).sum(axis=0).tolist() == [1, 1, 1, 1, 1, 0, 0]


# ---------------------------------------------------------------- words


def test_words_select_and_order_the_labels(release):
    ds = load_common_voice(release / "en", words=["No", "FIREFOX!"])
    assert ds.class_names == ("no", "firefox")
    assert [ds.class_names[i] for i in ds.labels] == ["no", "firefox", "no", "no"]
    assert ds.report.excluded[REASON_WORD] == (
        "clips/a1.mp3",
        "clips/a3.mp3",
        "clips/d1.mp3",
        "clips/d3.mp3",
    )
    assert REASON_FIREFOX not in ds.report.excluded
    assert ds.meta["words"] == ["no", "firefox"]
    # a listed word without clips is reported; default list drops firefox
    ds = load_common_voice(release / "en", words=["yes", "no", "hey", "zero"])
    assert "words with no clip: ['zero']" in ds.report.notes
    assert ds.report.excluded[REASON_FIREFOX] == ("clips/a4.mp3",)


def test_words_validation_and_sentence_errors(release):
    for bad, msg in [
        ("yes", "expected a sequence of words, got the string 'yes'"),
        ([], "expected at least one word"),
        (["yes", " Yes!"], r"'yes' and ' Yes!' are the same word 'yes'"),
        (["?"], r"'\?' is empty after normalisation"),
        ([3], "expected strings"),
    ]:
        with pytest.raises(ValueError, match=f"words: {msg}"):
            normalize_words(bad)
        with pytest.raises(ValueError, match=f"words: {msg}"):
            load_common_voice(release, words=bad)
    assert normalize_words(None) == CV_CLASSES
    # default words: German words are an error that names the row and --words
    with pytest.raises(ValueError, match=r"de/train\.tsv row 2: .*'ja'.*--words"):
        load_common_voice(release, locale="de")
    # a sentence of several words is an error even with an explicit list
    tsv = release / "en" / "dev.tsv"
    tsv.write_text(tsv.read_text().replace("\tno\t", "\tNo thank you.\t"))
    with pytest.raises(ValueError, match=r"dev\.tsv row 2: .*'no thank you'.*single-word"):
        load_common_voice(release, words=["yes"])


def test_load_dataset_options_only_for_common_voice(tmp_path):
    root = make_fsdd(tmp_path, speakers=("george",), takes=1)
    for option in ("locale", "words"):
        with pytest.raises(ValueError, match=f"option '{option}' applies only to common-voice"):
            load_dataset("fsdd", root, **{option: ["en"]})
    with pytest.raises(ValueError, match="option 'locale' applies only to common-voice"):
        load_dataset("bundled", locale="en")
    assert len(load_dataset("fsdd", root, locale=None, words=None)) == 3


def test_run_refuses_common_voice_options_for_the_bundled_data(tmp_path):
    """``fairrobust.job`` loads the bundled data through ``load_dataset`` too, so a
    ``locale`` / ``words`` meant for Common Voice is refused, not silently ignored."""
    from fairrobust import job

    with pytest.raises(ValueError, match="'words' applies only to common-voice"):
        job.run(
            dataset="bundled", load_options={"words": ["yes"]}, preset="tiny", out=tmp_path / "r"
        )
