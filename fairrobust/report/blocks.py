"""Markdown building blocks of the report: pipe tables, figure links, settings lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ImageLinks", "image_link", "md_table", "settings_line"]


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A pipe table; ``|`` in a cell is escaped and newlines become spaces."""

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join(" --- " for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def image_link(run_dir: Path, path: Path | str | None, alt: str) -> str:
    """``![alt](path relative to run_dir)``; empty when there is no such file.

    Args:
      run_dir: the run folder.
      path: an absolute path, or one relative to the working directory or to ``run_dir``.
      alt: the alternative text (also the caption in ``report.html``).
    """
    if path is None:
        return ""
    p = Path(path)
    if not p.is_file():
        p = run_dir / p
    if not p.is_file():
        return ""
    return f"![{alt}]({p.resolve().relative_to(run_dir.resolve()).as_posix()})"


class ImageLinks:
    """:func:`image_link` for one run folder that remembers the file names it linked.

    Attributes:
      run_dir: the run folder.
      used: names of the figure files linked so far (the report lists the others
        under "Other figures").
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.used: set[str] = set()

    def __call__(self, path: Path | str | None, alt: str) -> str:
        text = image_link(self.run_dir, path, alt)
        if text:
            self.used.add(Path(text[text.rindex("(") + 1 : -1]).name)
        return text

    def figure(self, path: Path | str | None, caption: str) -> list[str]:
        """Markdown lines of a figure and its caption; ``[]`` when there is no such file.

        The image (alt text: the caption's first clause, without markup) is followed
        by the caption as an emphasised paragraph, which markdown viewers show under
        the image and ``report.html`` turns into the figure's ``<figcaption>``.
        """
        depth, end = 0, len(caption)
        for k, ch in enumerate(caption):  # the first ";" outside parentheses
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if ch == ";" and depth == 0:
                end = k
                break
        alt = caption[:end].rstrip(".")
        alt = alt.replace("`", "").replace("[", "(").replace("]", ")").replace("*", "")
        link = self(path, alt)
        if not link:
            return []
        return [link, "", f"*{caption.replace('*', '')}*", ""]

    def cover(self, path: Path | str | None) -> None:
        """Count ``path`` as shown (a figure another one replaces, e.g. the same bars
        with intervals), so that "Other figures" does not list it."""
        if path is not None:
            self.used.add(Path(path).name)


def settings_line(items: Mapping[str, Any]) -> str:
    """``*Settings:* k1 v1; k2 v2.``: the settings a section's numbers depend on."""
    return "*Settings:* " + "; ".join(f"{k} {v}" for k, v in items.items()) + "."
