"""Reading metadata files (JSON, CSV, TSV) with errors that name the file, row and column."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_json_strict", "read_table", "require_file"]


def require_file(path: Path, what: str) -> Path:
    """Raise ``FileNotFoundError`` naming ``path`` and what it should contain if it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    return path


def _read_text(path: Path, what: str) -> str:
    require_file(path, what)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at line {line}); "
            f"expected a UTF-8 {what}"
        ) from None


def read_json_strict(path: Path, what: str) -> Any:
    """Parse a UTF-8 JSON file; missing / non-UTF-8 / malformed files raise naming the file."""
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON {what} ({exc})") from None


def read_table(
    path: Path,
    what: str,
    required: Sequence[str],
    *,
    delimiter: str = ",",
    any_of: Sequence[Sequence[str]] = (),
) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV / TSV file with a header row.

    Args:
      path: the file.
      what: description used in error messages (``"Common Voice split table"``).
      required: columns that must be present.
      delimiter: ``","`` or ``"\\t"``; TSVs are read without quote processing
        (Common Voice sentences contain bare quotes).
      any_of: groups of alternative column names of which one must be present.

    Returns:
      ``(columns, rows)``; rows map column -> stripped string (missing cells ``""``).

    Raises:
      FileNotFoundError: the file is missing.
      ValueError: non-UTF-8 text, no header, missing columns (all listed), or a
        row with more cells than the header (row number given).
    """
    text = _read_text(path, what)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty {what}: expected a header row") from None
    missing = [c for c in required if c not in header]
    missing += ["/".join(alts) for alts in any_of if not any(a in header for a in alts)]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} in the {what}; found columns {header}"
        )
    rows = []
    for lineno, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise ValueError(
                f"{path}: row {lineno} has {len(cells)} cells, the header has {len(header)}"
            )
        cells = cells + [""] * (len(header) - len(cells))
        rows.append(
            {h: c.strip() for h, c in zip(header, cells, strict=True)} | {"_row": str(lineno)}
        )
    return header, rows
