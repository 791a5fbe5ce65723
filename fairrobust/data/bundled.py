"""The bundled dataset: WUW Corpus II isolated-keyword clips shipped inside the package.

``bundled/wuw_isolated.npz`` (built by :mod:`fairrobust.data.make_bundled`)
holds the 1,557 isolated-keyword recordings (utterances 001-005) of WUW Corpus
II, each cut to the keyword +- :data:`BUNDLED_MARGIN` s (clipped to the file),
as the original 8 kHz mu-law bytes: ``audio`` (uint8, all clips concatenated),
``offsets`` (int64 ``[n + 1]``) and ``metadata`` (UTF-8 JSON: per clip the
session, utterance, gender, dialect, phonetype, transcription, original MD5,
keyword start/end, file length, and where the stored cut begins). Entries whose
keyword times are unusable are stored with an empty cut so that the loader
reports them exactly as :func:`load_wuw` does. See ``bundled/README.md`` for
attribution and ``bundled/LICENSE.md`` (CC BY-SA 4.0).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from fairrobust.data.audio import mulaw_decode
from fairrobust.data.cache import Clip, Plan, ReportBuilder, execute, validate_common
from fairrobust.data.dataset import AudioDataset
from fairrobust.data.wuw import (
    WUW_ATTRIBUTES,
    WUW_CLASSES,
    WUW_SAMPLE_RATE,
    WuwEntry,
    keyword_bounds,
    plan_clips,
)

__all__ = ["BUNDLED_MARGIN", "BUNDLED_PATH", "BUNDLED_SHA256", "load_bundled", "verify_bundled"]

BUNDLED_PATH = Path(__file__).parent / "bundled" / "wuw_isolated.npz"
#: SHA-256 of ``BUNDLED_PATH``; printed by ``python -m fairrobust.cli.make_bundled``.
BUNDLED_SHA256 = "d7f628cf8c508de59a6cfe1695c7284e197479ae18669cc08afef0d1c9665a99"
#: Seconds of audio stored before and after each keyword; ``load_bundled(margin=...)`` <= this.
BUNDLED_MARGIN = 0.25


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_bundled(path: Path = BUNDLED_PATH, expected: str | None = None) -> None:
    """Raise ``ValueError`` naming the asset if its SHA-256 differs from the recorded one."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bundled dataset not found (reinstall fairrobust)")
    expected = expected or BUNDLED_SHA256
    got = sha256_file(path)
    if got != expected:
        raise ValueError(
            f"{path}: checksum mismatch: expected SHA-256 {expected}, got {got} "
            "(corrupt asset; reinstall fairrobust or rebuild it with "
            "`python -m fairrobust.cli.make_bundled`)"
        )


def read_bundled(
    path: Path = BUNDLED_PATH, members: tuple[str, ...] = ("audio", "offsets", "metadata")
):
    """Asset members: ``audio`` uint8 ``[N]``, ``offsets`` int64 ``[n + 1]``, ``metadata`` dict."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in members}
        if "metadata" in out:
            out["metadata"] = json.loads(out["metadata"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: unreadable bundled dataset ({exc})") from exc
    return out


def load_bundled(
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
    path: str | Path | None = None,
    expected_sha256: str | None = None,
) -> AudioDataset:
    """Load the bundled WUW Corpus II isolated-keyword clips (no network, no corpus needed).

    Applies the labels, exclusions and session split of :func:`load_wuw` with
    the same options, so ``load_bundled(**o)`` equals ``load_wuw(root, **o)``
    clip for clip (paths are the corpus-relative ``calls/...`` paths).

    Args:
      utterances: only ``"isolated"`` is bundled.
      margin: seconds kept around the keyword, at most :data:`BUNDLED_MARGIN`.
      verify_checksum: check the asset's SHA-256 against :data:`BUNDLED_SHA256`.
      drop_mismatched, seed, sample_rate, duration, cache, on_error, num_workers:
        as in :func:`load_wuw`.
      path: alternative asset file (tests); ``expected_sha256`` its checksum.

    Returns:
      An :class:`AudioDataset` named ``"bundled"``.

    Raises:
      ValueError: checksum mismatch (names the asset), margin too large, or
        ``utterances`` other than ``"isolated"``.
    """
    validate_common(sample_rate, duration, on_error)
    if utterances != "isolated":
        raise ValueError(
            f"utterances: the bundled data holds only 'isolated' clips, got {utterances!r}; "
            "use load_wuw on the full corpus for 'sentence' / 'all'"
        )
    if not 0 <= margin <= BUNDLED_MARGIN + 1e-9:
        raise ValueError(
            f"margin: expected 0..{BUNDLED_MARGIN} s for the bundled data, got {margin}"
        )
    asset = Path(path) if path is not None else BUNDLED_PATH
    if verify_checksum:
        verify_bundled(asset, expected_sha256)
    meta = read_bundled(asset, ("metadata",))["metadata"]
    loaded: dict[str, np.ndarray] = {}  # audio is decompressed only on a cache miss
    rows = meta["entries"]
    entries = [
        WuwEntry(
            row=f"bundled entry {i} ({r['filePath']})",
            rel=r["filePath"],
            session=r["session"],
            utterance=int(r["utterance"]),
            start=float(r["start"]),
            end=float(r["end"]),
            transcription=r["transcription"],
            checksum=r["md5"],
            attributes={a: r[a] for a in WUW_ATTRIBUTES},
        )
        for i, r in enumerate(rows)
    ]
    lock = threading.Lock()
    index = {r["filePath"]: i for i, r in enumerate(rows)}
    report = ReportBuilder()
    clips, mismatched = plan_clips(
        entries,
        meta["sessions"],
        {r["filePath"]: int(r["file_samples"]) for r in rows},
        utterances=utterances,
        margin=margin,
        drop_mismatched=drop_mismatched,
        seed=seed,
        on_error=on_error,
        report=report,
        root=Path("bundled"),
    )

    def decode(clip: Clip) -> tuple[np.ndarray, int]:
        if not loaded:
            with lock:
                if not loaded:
                    loaded.update(read_bundled(asset, ("audio", "offsets")))
        audio, offsets = loaded["audio"], loaded["offsets"]
        i = index[clip.rel]
        r = rows[i]
        a, b = keyword_bounds(r["start"], r["end"], margin, int(r["file_samples"]))
        lo = int(offsets[i]) + a - int(r["cut_start"])
        hi = int(offsets[i]) + b - int(r["cut_start"])
        if lo < offsets[i] or hi > offsets[i + 1]:
            raise ValueError(f"{asset}: clip {clip.rel} does not cover the requested margin")
        return mulaw_decode(audio[lo:hi]), WUW_SAMPLE_RATE

    plan = Plan(
        name="bundled",
        clips=clips,
        class_names=WUW_CLASSES,
        attribute_names=WUW_ATTRIBUTES,
        decode=decode,
        report=report,
        options={
            "asset_sha256": expected_sha256 or BUNDLED_SHA256,
            "utterances": utterances,
            "margin": margin,
            "verify_checksum": verify_checksum,
            "drop_mismatched": drop_mismatched,
            "seed": seed,
            "mismatched": mismatched,
        },
        sources=[asset],
        sample_rate=sample_rate,
        duration=duration,
        cache=cache,
        on_error=on_error,
        num_workers=num_workers,
    )
    return execute(plan)
