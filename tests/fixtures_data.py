"""Builders of small datasets in the published layouts (AudioMNIST, CV, WUW, FSDD, CSV)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from fairrobust.data.audio import mulaw_encode

SHARED = Path(__file__).resolve().parents[2] / "shared"


def tone(n: int, sr: int, freq: float = 440.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A float32 sine plus a little seeded noise, ``[n]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype=subtype)
    return path


AUDIOMNIST_META = {
    "01": {
        "accent": "german",
        "age": 30,
        "gender": "male",
        "native speaker": "no",
        "origin": "Europe, Germany, Wuerzburg",
        "recordingdate": "17-06-22-11-04-28",
        "recordingroom": "Kino",
    },
    "02": {
        "accent": "German",
        "age": "25",
        "gender": "female",
        "native speaker": "no",
        "origin": "Europe, Germany, Hamburg",
        "recordingdate": "17-06-26-17-57-29",
        "recordingroom": "Kino",
    },
    "45": {
        "accent": "Egyptian_American?",
        "age": "1234",
        "gender": "male",
        "native speaker": "yes",
        "origin": "Africa, Egypt, Alexandria",
        "recordingdate": "17-07-12-17-03-59",
        "recordingroom": "library",
    },
}


def make_audiomnist(
    root: Path,
    speakers=("01", "02", "45"),
    digits=(0, 1, 2),
    takes=10,
    n: int = 4800,
    sr: int = 48000,
    data_subdir: bool = False,
) -> Path:
    """``root/[data/]audioMNIST_meta.txt`` + ``NN/{digit}_{NN}_{take}.wav`` (0.1 s at 48 kHz)."""
    base = root / "data" if data_subdir else root
    base.mkdir(parents=True, exist_ok=True)
    # the original file's formatting: 4-space indent, "key": value with a space before newline
    (base / "audioMNIST_meta.txt").write_text(json.dumps(AUDIOMNIST_META, indent=4))
    for s in speakers:
        for d in digits:
            for t in range(takes):
                write_wav(base / s / f"{d}_{s}_{t}.wav", tone(n, sr, 200 + 50 * d, seed=t), sr)
    return root


def cv_rows(client, words, takes, age, gender, accent, prefix=None):
    """Common Voice TSV rows of one speaker: every word in ``words`` ``takes`` times."""
    prefix = prefix or client
    return [
        (client, f"{prefix}_{w}_{t}.mp3", w, "2", "0", age, gender, accent, "en", "")
        for w in words
        for t in range(takes)
    ]


def make_common_voice(
    root: Path,
    accent_column: str = "accent",
    rows: dict | None = None,
    n: int = 24000,
    sr: int = 48000,
) -> Path:
    """A CV single-word release: real MP3s in ``clips/`` and TSVs with blanks and firefox rows.

    ``rows`` maps ``train.tsv`` / ``dev.tsv`` / ``test.tsv`` to rows of
    ``(client_id, path, sentence, up, down, age, gender, accent, locale, segment)``
    (see :func:`cv_rows`); the default is a small release with quirks. Clips are
    tones of ``n`` samples at ``sr`` Hz, one frequency per word.
    """
    (root / "clips").mkdir(parents=True, exist_ok=True)
    cols = [
        "client_id",
        "path",
        "sentence",
        "up_votes",
        "down_votes",
        "age",
        "gender",
        accent_column,
        "locale",
        "segment",
    ]
    rows = rows or {
        "train.tsv": [
            ("c1", "a1.mp3", "Yes", "2", "0", "twenties", "male", "us", "en", "Single Word Target"),
            ("c1", "a2.mp3", "no.", "2", "0", "twenties", "male", "us", "en", "Single Word Target"),
            ("c2", "a3.mp3", "Firefox", "2", "0", "", "", "", "en", "Single Word Target"),
            ("c2", "a4.mp3", " Hey!", "2", "0", "", "", "", "en", "Single Word Target"),
            ("c3", "a5.mp3", "three", "2", "1", "fourties", "female", "england", "en", ""),
        ],
        "dev.tsv": [
            ("c4", "b1.mp3", "Zero", "2", "0", "teens", "female", "", "en", ""),
            ("c4", "b2.mp3", "firefox", "2", "0", "teens", "female", "", "en", ""),
        ],
        "test.tsv": [
            ("c5", "d1.mp3", "nine", "3", "0", "sixties", "male", "canada", "en", ""),
            ("c6", "d2.mp3", "yes", "3", "0", "", "other", "", "en", ""),
        ],
    }
    words: dict[str, int] = {}  # one tone per word, so that a model can learn the words
    for i, (name, table) in enumerate(rows.items()):
        lines = ["\t".join(cols)] + ["\t".join(r) for r in table]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        for j, r in enumerate(table):
            k = words.setdefault(r[2].strip(" .!?").lower(), len(words))
            x = tone(n, sr, 300 + 150 * k, seed=1000 * i + j)
            sf.write(root / "clips" / r[1], x, sr, format="MP3")
    return root


def make_wuw(root: Path, n_sessions: int = 10, utterances=range(1, 11), sr: int = 8000) -> Path:
    """A WUW Corpus II layout: 2 s mu-law calls with the keyword at 0.8-1.3 s, plus data.json.

    Quirks: session 00001 utterance 002 has reversed times (-2.39 s), 00002/001 says
    "done" (mismatch), 00003/002 is "Think{breath}Engine" and 00004/001 "Ope{breath}rator".
    """
    entries = []
    genders, dialects, phones = (
        ("male", "female"),
        ("native", "nonNative"),
        ("landlinephone", "cellphone", "speakerphone"),
    )
    keywords = ("Operator", "ThinkEngine", "Onword", "Wildfire", "Voyager")
    for s in range(n_sessions):
        session = f"{s:05d}"
        for u in utterances:
            x = np.zeros(2 * sr, np.float32)
            x[int(0.8 * sr) : int(1.3 * sr)] = tone(int(0.5 * sr), sr, 300 + 60 * u, seed=s)
            data = mulaw_encode(x).tobytes()
            rel = f"calls/{session}/WUWII{session}_{u:03d}.ulaw"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            kw = keywords[(u - 1) % 5]
            text = kw if u <= 5 else f"please wake up my {kw} now"
            start, end = 0.8, 1.3
            if (s, u) == (1, 2):
                start, end = 3.343, 0.951
            if (s, u) == (2, 1):
                text = "{lip smack} done"
            if (s, u) == (3, 2):
                text = "{click} {breath} Think{breath}Engine {breath}"
            if (s, u) == (4, 1):
                text = "[static/] Ope{breath}rator [/static]"
            entries.append(
                {
                    "dateRecorded": "2001-12-21T03:50:15.000Z",
                    "gender": genders[s % 2],
                    "dialect": dialects[(s // 2) % 2],
                    "phonetype": phones[s % 3],
                    "sessionNumber": session,
                    "utteranceNumber": f"{u:03d}",
                    "fileName": Path(rel).name,
                    "filePath": rel,
                    "checksum": hashlib.md5(data).hexdigest(),
                    "startTime": start,
                    "endTime": end,
                    "transcription": text,
                }
            )
    (root / "data.json").write_text(json.dumps({"entries": entries}))
    return root


def make_fsdd(root: Path, speakers=("george", "jackson"), takes=12, sr: int = 8000) -> Path:
    """``root/recordings/{digit}_{speaker}_{take}.wav`` for digits 0-2 + speakers.json."""
    for sp in speakers:
        for d in range(3):
            for t in range(takes):
                write_wav(
                    root / "recordings" / f"{d}_{sp}_{t}.wav",
                    tone(2000, sr, 200 + 100 * d, seed=t),
                    sr,
                )
    info = {
        "george": {"accent": "GRC/Greek", "gender": "male", "language": "english"},
        "jackson": {"accent": "USA/neutral", "gender": "male", "language": "english"},
    }
    (root / "speakers.json").write_text(json.dumps(info))
    return root


def make_folder(
    root: Path,
    with_split: bool = False,
    n_speakers: int = 10,
    genders=("female", "male", ""),
    splits=("train", "dev", "test"),
    columns: dict | None = None,
    takes: int = 1,
    n: int = 8000,
) -> Path:
    """``root/metadata.csv`` (path, label, speaker, gender, [columns], [split]) + ``root/audio``.

    Speaker ``s`` gets ``genders[s % len(genders)]``, ``splits[s % len(splits)]``
    and, for each extra column, ``values[s % len(values)]``; each says "cat" and
    "dog" ``takes`` times (``n`` samples at 16 kHz).
    """
    columns = dict(columns or {})
    lines = [",".join(["path", "label", "speaker", "gender", *columns] + ["split"] * with_split)]
    for s in range(n_speakers):
        for lab in ("cat", "dog"):
            for t in range(takes):
                rel = f"audio/{s}_{lab}.wav" if takes == 1 else f"audio/{s}_{lab}_{t}.wav"
                x = tone(n, 16000, 300 if lab == "cat" else 500, seed=s + 1000 * t)
                write_wav(root / rel, x, 16000)
                row = [rel, lab, f"spk{s}", genders[s % len(genders)]]
                row += [v[s % len(v)] for v in columns.values()]
                row += [splits[s % len(splits)]] * with_split
                lines.append(",".join(row))
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root
