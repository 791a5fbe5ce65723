"""What the commands print: lines of at most :data:`WIDTH` columns, numbers to 3 significant digits.

Every message of a command goes through :func:`echo` (wrapped, continuation
lines indented), every table through :func:`table` (aligned columns, or one
block per row when the columns would not fit), and Python warnings and log
records through :func:`installed` (one wrapped ``warning: ...`` line instead of
the file, line and source). Progress output is :func:`fairrobust._io.progress`'s
(bars on a terminal, one line per stage otherwise).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

#: The widest line a command prints.
WIDTH = 120


def num(value: Any) -> str:
    """A number to 3 significant digits, as the report writes it but in ASCII
    (``0.000221``, ``12.3``, ``1230``, ``2.21e-05``: ``studies.intervals.fmt``);
    integers (counts) as they are; ``n/a`` for None / NaN; other values as text."""
    from fairrobust.studies.intervals import fmt  # imports JAX: only once there are results

    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    return fmt(value, ascii=True)


def ci(value: Any, low: Any, high: Any) -> str:
    """``value [low, high]`` to 3 significant digits; ``value (no CI)``; ``n/a``."""
    if num(value) == "n/a":
        return "n/a"
    if num(low) == "n/a" or num(high) == "n/a":
        return f"{num(value)} (no CI)"
    return f"{num(value)} [{num(low)}, {num(high)}]"


def wrap(text: str, width: int = WIDTH, indent: str = "  ") -> str:
    """Every line of ``text`` wrapped at ``width`` columns (continuations indented)."""
    out: list[str] = []
    for line in str(text).split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(
            line,
            width=width,
            subsequent_indent=lead + indent,
            break_on_hyphens=False,
            drop_whitespace=True,
        ) or [line[:width]]
    return "\n".join(out)


def echo(text: str = "", file: TextIO | None = None) -> None:
    """Print ``text`` wrapped at :data:`WIDTH` columns and flush (so it interleaves with
    progress lines on stderr in order)."""
    stream = file if file is not None else sys.stdout
    print(wrap(text), file=stream, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int = WIDTH) -> str:
    """``rows`` under ``headers`` as aligned columns of at most ``width`` columns.

    When the aligned table would be wider, each row becomes a block instead: its
    first cell, then one ``  header: value`` line per other cell (wrapped).
    """
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if sum(widths) + 2 * (len(widths) - 1) <= width:
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join(lines)
    lines = []
    for r in rows:
        lines.append(f"{headers[0]} {r[0]}")
        lines += [f"  {h}: {c}" for h, c in zip(headers[1:], r[1:], strict=True)]
    return wrap("\n".join(lines), width, indent="    ")


class _Wrapped(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        return wrap(prefix + record.getMessage())


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    echo(f"warning: {message}", file=file if file is not None else sys.stderr)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Within: Python warnings and log records of WARNING and above as wrapped
    ``warning: ...`` messages on stderr (restored on exit)."""
    root = logging.getLogger()
    handler = None
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Wrapped())
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        warnings.showwarning = shown
        if handler is not None:
            root.removeHandler(handler)
