"""Rebuild the bundled WUW Corpus II asset from the full corpus.

Run from the repository root::

    python -m fairrobust.cli.make_bundled --wuw-root ../shared/data/wuw-corpus-ii

It verifies every file's MD5, cuts each isolated-keyword recording (utterances
001-005) to the keyword +- ``BUNDLED_MARGIN`` s (clipped to the file), stores
the original mu-law bytes, copies the corpus LICENSE.md and prints the SHA-256
to record in ``fairrobust/data/bundled.py``. The output is byte-reproducible.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fairrobust._io import atomic_write_bytes
from fairrobust.data.bundled import BUNDLED_MARGIN, BUNDLED_PATH, sha256_file
from fairrobust.data.tables import read_json_strict
from fairrobust.data.wuw import UTTERANCES, WUW_ATTRIBUTES, keyword_bounds, parse_entries

__all__ = ["build_bundled"]


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A compressed .npz with fixed member timestamps, so rebuilds are byte-identical."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def build_bundled(wuw_root: Path, out: Path = BUNDLED_PATH, margin: float = BUNDLED_MARGIN) -> str:
    """Write the bundled asset from the corpus at ``wuw_root``; return its SHA-256."""
    wuw_root = Path(wuw_root)
    raw = read_json_strict(wuw_root / "data.json", "WUW Corpus II metadata (data.json)")
    entries = parse_entries(raw["entries"], "data.json")
    sessions = sorted({e.session for e in entries})
    wanted = set(UTTERANCES["isolated"])
    chunks, offsets, rows = [], [0], []
    for e in sorted(entries, key=lambda e: e.rel):
        if e.utterance not in wanted:
            continue
        data = (wuw_root / e.rel).read_bytes()
        got = hashlib.md5(data).hexdigest()
        if got != e.checksum.lower():
            raise ValueError(
                f"{wuw_root / e.rel}: checksum mismatch: expected {e.checksum}, got {got}"
            )
        n = len(data)
        if e.end > e.start:
            a, b = keyword_bounds(e.start, e.end, margin, n)
            b = max(a, b)
        else:
            a = b = 0  # unusable keyword times: the loader excludes the entry
        chunks.append(np.frombuffer(data[a:b], dtype=np.uint8))
        offsets.append(offsets[-1] + (b - a))
        rows.append(
            {
                "filePath": e.rel,
                "session": e.session,
                "utterance": f"{e.utterance:03d}",
                **{k: e.attributes[k] for k in WUW_ATTRIBUTES},
                "transcription": e.transcription,
                "md5": e.checksum,
                "start": e.start,
                "end": e.end,
                "file_samples": n,
                "cut_start": a,
            }
        )
    metadata = {
        "format": 1,
        "source": "WUW Corpus II (Dr. Veton Kepuska), CC BY-SA 4.0",
        "sample_rate": 8000,
        "encoding": "G.711 mu-law, 8 bit",
        "margin": margin,
        "sessions": sessions,
        "entries": rows,
    }
    payload = _npz_bytes(
        {
            "audio": np.concatenate(chunks),
            "offsets": np.array(offsets, dtype=np.int64),
            "metadata": np.frombuffer(
                json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode(), np.uint8
            ),
        }
    )
    atomic_write_bytes(out, payload)
    lic = wuw_root / "LICENSE.md"
    if lic.is_file():
        shutil.copyfile(lic, out.parent / "LICENSE.md")
    return sha256_file(out)
