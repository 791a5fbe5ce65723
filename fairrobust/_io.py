"""Atomic file writes, stable hashing and small I/O helpers shared by every module.

Nothing here knows about audio or models. Every result, cache entry and
checkpoint in fairrobust is written through :func:`atomic_write_bytes`, so a
reader never sees a partially written file: data go to a temporary file in the
same directory, are flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_npz",
    "atomic_write_text",
    "cache_dir",
    "file_md5",
    "read_json",
    "read_only",
    "remove",
    "stable_hash",
    "to_jsonable",
    "writable",
]


_READ_ONLY: list[Path] = []


@contextlib.contextmanager
def read_only(root: str | os.PathLike[str]) -> Iterator[None]:
    """Inside, writes and removals under ``root`` are skipped (the paths are returned).

    What every process but process 0 of a ``jax.distributed`` run uses: all processes
    compute the same results, one writes them.
    """
    resolved = Path(root).resolve()
    _READ_ONLY.append(resolved)
    try:
        yield
    finally:
        _READ_ONLY.remove(resolved)


def writable(path: str | os.PathLike[str]) -> bool:
    """False inside :func:`read_only` for a path under its root."""
    if not _READ_ONLY:
        return True
    p = Path(path).resolve()
    return not any(p == r or r in p.parents for r in _READ_ONLY)


def remove(path: str | os.PathLike[str]) -> None:
    """``unlink(missing_ok=True)`` unless :func:`writable` says no."""
    if writable(path):
        Path(path).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename). Returns the path.

    Skipped (the path returned) for a path under a :func:`read_only` root.
    """
    path = Path(path)
    if not writable(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy / jax arrays and scalars, paths and tuples to JSON types.

    Non-finite floats become ``None`` so that files stay strict JSON.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if hasattr(obj, "__array__"):
        return to_jsonable(np.asarray(obj).tolist())
    return obj


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (after :func:`to_jsonable`) as sorted, indented JSON, atomically.

    Sorted keys and a fixed float format make files byte-identical across runs.
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; the error names the file when it is missing or malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid UTF-8 JSON ({exc})") from exc


def atomic_write_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Save arrays as a compressed ``.npz`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # pyright: ignore[reportArgumentType]
    return atomic_write_bytes(path, buf.getvalue())


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj`` (order-independent for dict keys)."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_md5(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """MD5 hex digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """Root of the on-disk cache: ``$FAIRROBUST_CACHE`` or ``~/.cache/fairrobust``."""
    root = os.environ.get("FAIRROBUST_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "fairrobust"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The widest progress line (bars are cut to it; the commands' output fits it too).
PROGRESS_WIDTH = 120
_depth = [0]  # plain-line stages open now (nested stages are silent without a terminal)


def interactive() -> bool:
    """Whether progress can redraw in place: stderr is a terminal, or a Jupyter kernel runs."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or "ipykernel" in sys.modules


def _terminal_size() -> tuple[int, int]:
    """``(columns, rows)`` of stderr's terminal: at most :data:`PROGRESS_WIDTH` columns;
    120 x 24 where unknown (a terminal of size 0, as a fresh pseudo-terminal has)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        columns, rows = size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        columns, rows = 0, 0
    return min(columns or PROGRESS_WIDTH, PROGRESS_WIDTH), rows or 24


class _StageLine:
    """Progress without a terminal: one plain line when the stage ends,
    ``<desc> (<done>/<total>) ... done in 41.2 s`` (``stopped after`` on an error)."""

    def __init__(self, iterable: Any, desc: str, total: int | None) -> None:
        self.iterable, self.desc, self.total, self.n = iterable, desc, total, 0
        self.t0 = time.perf_counter()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored: a plain line has no room to redraw."""

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        """Ignored: a plain line has no room to redraw."""

    def close(self, failed: bool = False) -> None:
        seconds = time.perf_counter() - self.t0
        count = f"{self.n:g}" + ("" if self.total is None else f"/{self.total:g}")
        took = f"{seconds:.3g}" if seconds < 1000 else f"{seconds:.0f}"
        tail = f" ({count}) ... " + (f"stopped after {took} s" if failed else f"done in {took} s")
        desc = self.desc
        if len(desc) + len(tail) > PROGRESS_WIDTH:  # shorten the label, keep the outcome
            desc = desc[: max(0, PROGRESS_WIDTH - len(tail) - 3)] + "..."
        print(desc + tail, file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress(
    iterable_or_total: Any = None,
    *,
    desc: str = "",
    total: int | None = None,
    leave: bool = False,
    enabled: bool = True,
) -> Iterator[Any]:
    """Progress of one stage: a tqdm bar on a terminal, one plain line otherwise.

    On a terminal (or in Jupyter) a bar at most :data:`PROGRESS_WIDTH` columns wide,
    nested bars below it. When stderr is not a terminal (a log file, a pipe) no
    control characters: the outermost stage prints one line when it ends
    (``<desc> (<done>/<total>) ... done in 41.2 s``) and nested stages print nothing.
    Silent if ``enabled`` is False or ``FAIRROBUST_NO_PROGRESS`` is set.

    Yields:
      An object with tqdm's ``update``, ``set_postfix``, ``set_postfix_str`` (and
      iteration when given an iterable).
    """
    disable = not enabled or bool(os.environ.get("FAIRROBUST_NO_PROGRESS"))
    if isinstance(iterable_or_total, int):
        total, iterable_or_total = iterable_or_total, None
    bar: Any = None
    if not disable and not interactive():
        if _depth[0] == 0:
            bar = _StageLine(iterable_or_total, desc, total)
        disable = True  # nested stages: silent
    if bar is None:
        columns, rows = _terminal_size()
        bar = tqdm(
            iterable_or_total, desc=desc, total=total, leave=leave, disable=disable,
            ncols=columns, nrows=rows,
        )  # fmt: skip
    line = isinstance(bar, _StageLine)
    _depth[0] += line
    failed = False
    try:
        yield bar
    except BaseException:
        failed = True
        raise
    finally:
        _depth[0] -= line
        bar.close(failed) if line else bar.close()
