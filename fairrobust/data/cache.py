"""On-disk cache of preprocessed datasets and the decode loop shared by every loader.

A loader first reads its metadata (cheap, and where metadata errors and
warnings surface), producing a :class:`Plan`: the clips to decode with their
labels, speakers, splits and attributes. :func:`execute` then looks the plan up
in the cache under ``cache_dir()/datasets/<name>-<key>.npz``, where ``key`` is
:func:`fairrobust._io.stable_hash` of every preprocessing parameter, every
loader option, the planned examples and a fingerprint (path, size, mtime) of
every source file. On a miss it decodes the clips (threads; soundfile and soxr
release the GIL) and writes the arrays atomically. The file is an uncompressed
``.npz``: float waveforms compress by only ~10 % and decompression would
dominate the cache-hit time. Checksums of source files are verified when the
clips are decoded, not on a cache hit (the fingerprint changes with the files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust._io import atomic_write_bytes, cache_dir, progress, stable_hash, to_jsonable
from fairrobust.data.audio import preprocess
from fairrobust.data.dataset import SPLITS, UNKNOWN, AudioDataset, LoadReport

__all__ = ["CACHE_VERSION", "ON_ERROR", "Clip", "Plan", "ReportBuilder", "execute", "fingerprint"]

#: Bumped whenever preprocessing changes, so stale cache entries are never read.
CACHE_VERSION = 1
ON_ERROR = ("raise", "skip")

#: A clip decoder: ``(samples [T] or [T, C], sample_rate)``; raises ValueError naming the file.
Decoder = Callable[["Clip"], tuple[np.ndarray, int]]


@dataclasses.dataclass
class Clip:
    """One planned example (before decoding)."""

    path: Path  # absolute source file
    rel: str  # path relative to the data root (or a row id)
    label: int
    speaker: str
    split: str
    attributes: dict[str, str]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # loader-specific (times, md5)


@dataclasses.dataclass
class ReportBuilder:
    """Mutable counterpart of :class:`LoadReport` used while loading."""

    n_files: int = 0
    excluded: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def exclude(self, reason: str, item: str) -> None:
        self.excluded.setdefault(reason, []).append(item)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self, n_loaded: int) -> LoadReport:
        return LoadReport(
            n_files=self.n_files,
            n_loaded=n_loaded,
            excluded={k: tuple(v) for k, v in self.excluded.items()},
            notes=tuple(self.notes),
        )


@dataclasses.dataclass
class Plan:
    """Everything a loader decided from metadata; :func:`execute` turns it into a dataset."""

    name: str
    clips: list[Clip]
    class_names: tuple[str, ...]
    attribute_names: tuple[str, ...]
    decode: Decoder
    report: ReportBuilder
    options: dict[str, Any]  # every loader option and preprocessing parameter (JSON-able)
    sources: Sequence[Path]  # files whose (path, size, mtime) key the cache
    sample_rate: int = 16000
    duration: float = 1.0
    cache: bool = True
    on_error: str = "raise"
    num_workers: int | None = None


def validate_common(sample_rate: int, duration: float, on_error: str) -> int:
    """Validate the shared loader options; return the number of output samples."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive integer (Hz), got {sample_rate!r}")
    if not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"duration: expected a positive number of seconds, got {duration!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error: expected one of {ON_ERROR}, got {on_error!r}")
    length = round(sample_rate * duration)
    if length < 1:
        raise ValueError(f"duration: {duration} s at {sample_rate} Hz is shorter than one sample")
    return length


def fingerprint(paths: Sequence[Path]) -> str:
    """Hash of (path, size, mtime in ns) of every file; a missing file raises FileNotFoundError."""
    rows = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: file not found") from None
        rows.append((str(p), st.st_size, st.st_mtime_ns))
    return stable_hash(rows, length=32)


def _cache_key(plan: Plan) -> str:
    planned = [
        (c.rel, c.label, c.speaker, c.split, [c.attributes.get(a) for a in plan.attribute_names])
        for c in plan.clips
    ]
    # plain JSON types already: hash directly (to_jsonable on 30k rows would cost ~1 s)
    planned_hash = hashlib.sha256(json.dumps(planned).encode()).hexdigest()
    return stable_hash(
        {
            "version": CACHE_VERSION,
            "name": plan.name,
            "options": plan.options,
            "classes": plan.class_names,
            "attributes": plan.attribute_names,
            "planned": planned_hash,
            "report": dataclasses.asdict(plan.report),
            "sources": fingerprint(plan.sources),
        },
        length=24,
    )


def _save(path: Path, ds: AudioDataset) -> None:
    # Waveforms go to a plain .npy (read in one call on a hit); the .npz with the
    # rest is written last, so its presence marks a complete entry.
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(ds.waveforms))
    atomic_write_bytes(path.with_suffix(".npy"), buf.getvalue())
    arrays = {
        "labels": ds.labels,
        "speakers": ds.speakers,
        "splits": ds.splits,
        "paths": ds.paths,
        "header": np.array(
            json.dumps(
                to_jsonable(
                    {
                        "class_names": ds.class_names,
                        "attributes": list(ds.attributes),
                        "report": ds.report,
                        "meta": ds.meta,
                    }
                )
            )
        ),
    }
    for i, key in enumerate(ds.attributes):
        arrays[f"attr_{i}"] = ds.attributes[key]
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # pyright: ignore[reportArgumentType]
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, name: str, sample_rate: int) -> AudioDataset:
    waveforms = np.load(path.with_suffix(".npy"), allow_pickle=False)
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        rep = header["report"]
        report = LoadReport(
            n_files=rep["n_files"],
            n_loaded=rep["n_loaded"],
            excluded={k: tuple(v) for k, v in rep["excluded"].items()},
            notes=tuple(rep["notes"]),
        )
        return AudioDataset(
            name=name,
            waveforms=waveforms,
            labels=z["labels"],
            class_names=tuple(header["class_names"]),
            speakers=z["speakers"],
            splits=z["splits"],
            attributes={k: z[f"attr_{i}"] for i, k in enumerate(header["attributes"])},
            sample_rate=sample_rate,
            paths=z["paths"],
            report=report,
            meta=header["meta"],
        )


def _str_array(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def execute(plan: Plan) -> AudioDataset:
    """Return the dataset of ``plan`` from the cache, or decode, assemble and cache it.

    Under ``on_error="raise"`` the first bad clip raises (nothing is cached);
    under ``"skip"`` bad clips are left out and listed in the report under
    their error message's reason.
    """
    length = validate_common(plan.sample_rate, plan.duration, plan.on_error)
    for c in plan.clips:
        if c.split not in SPLITS:
            raise ValueError(f"{c.rel}: split {c.split!r}: expected one of {SPLITS}")
        if not 0 <= c.label < len(plan.class_names):
            raise ValueError(
                f"{c.rel}: label {c.label}: expected a value in [0, {len(plan.class_names)})"
            )
    options = {
        **plan.options,
        "sample_rate": plan.sample_rate,
        "duration": plan.duration,
        "on_error": plan.on_error,
    }
    plan.options = options
    key = _cache_key(plan) if plan.cache else None
    path = cache_dir() / "datasets" / f"{plan.name}-{key}.npz" if key else None
    if path is not None and path.is_file():
        try:
            ds = _load(path, plan.name, plan.sample_rate)
        # unreadable or truncated entry (empty file, cut zip or .npy): rebuild it below
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            ds = None
        if ds is not None:
            return dataclasses.replace(ds, meta={**ds.meta, "from_cache": True})

    t0 = time.perf_counter()
    report = plan.report
    resampled: dict[int, int] = {}
    downmixed: dict[int, int] = {}

    def work(clip: Clip) -> tuple[np.ndarray | None, str | None, int, int]:
        try:
            samples, sr = plan.decode(clip)
            channels = 1 if samples.ndim == 1 else samples.shape[1]
            y = preprocess(samples, sr, plan.sample_rate, length, clip.rel)
            return y, None, sr, channels
        except (ValueError, FileNotFoundError) as exc:
            if plan.on_error == "raise":
                raise
            return None, str(exc), 0, 0

    workers = plan.num_workers or min(8, os.cpu_count() or 1)
    rows: list[np.ndarray] = []
    kept: list[Clip] = []
    with progress(total=len(plan.clips), desc=f"decoding {plan.name}") as bar:
        if workers > 1 and len(plan.clips) > 16:
            with ThreadPoolExecutor(workers) as pool:
                results = pool.map(work, plan.clips, chunksize=16)
                outcomes = list(_tick(results, bar))
        else:
            outcomes = list(_tick(map(work, plan.clips), bar))
    for clip, (y, err, sr, channels) in zip(plan.clips, outcomes, strict=True):
        if y is None:
            report.exclude(_reason(err or "error"), clip.rel)
            continue
        rows.append(y)
        kept.append(clip)
        if sr != plan.sample_rate:
            resampled[sr] = resampled.get(sr, 0) + 1
        if channels > 1:
            downmixed[channels] = downmixed.get(channels, 0) + 1
    for sr, n in sorted(resampled.items()):
        report.note(f"resampled {n} clips from {sr} Hz to {plan.sample_rate} Hz")
    for ch, n in sorted(downmixed.items()):
        report.note(f"down-mixed {n} clips from {ch} channels to mono")

    waveforms = np.stack(rows) if rows else np.zeros((0, length), np.float32)
    ds = AudioDataset(
        name=plan.name,
        waveforms=waveforms.astype(np.float32, copy=False),
        labels=np.array([c.label for c in kept], dtype=np.int32),
        class_names=tuple(plan.class_names),
        speakers=_str_array([c.speaker for c in kept]),
        splits=_str_array([c.split for c in kept]),
        attributes={
            a: _str_array([c.attributes.get(a) or UNKNOWN for c in kept])
            for a in plan.attribute_names
        },
        sample_rate=plan.sample_rate,
        paths=_str_array([c.rel for c in kept]),
        report=report.build(len(kept)),
        meta={
            **options,
            "loader": plan.name,
            "cache_key": key,
            "from_cache": False,
            "decode_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    if path is not None:
        _save(path, ds)
    return ds


def _tick(results, bar):
    for r in results:
        bar.update(1)
        yield r


def _reason(message: str) -> str:
    """Group skip reasons: the error message without its leading ``<file>: ``."""
    _, sep, rest = message.partition(": ")
    text = rest if sep else message
    return text.split(" (")[0].split(":")[0].strip() or "error"


def str_option(name: str, value: str, valid: Sequence[str]) -> str:
    """Validate a closed-choice option; the error lists the valid values."""
    if value not in valid:
        raise ValueError(f"{name}: expected one of {tuple(valid)}, got {value!r}")
    return value


def attribute_value(value: Any) -> str:
    """A metadata value as an attribute string; blank / None become :data:`UNKNOWN`."""
    if value is None:
        return UNKNOWN
    text = str(value).strip()
    return text if text else UNKNOWN


def as_mapping(obj: Any, source: str) -> Mapping[str, Any]:
    """Check that parsed metadata is a JSON object."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    return obj
