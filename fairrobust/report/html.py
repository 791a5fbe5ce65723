"""``report.html``: the markdown report as one self-contained HTML page.

The markdown is rendered by markdown-it-py (CommonMark plus pipe tables, raw
HTML disabled so text is always escaped) into the page template
``templates/report.html.j2`` (Jinja2, inline CSS). Every image is embedded as a
base64 PNG data URI; an image alone in its paragraph becomes a ``<figure>``
whose caption is its alt text. The page references no external resource.
"""

from __future__ import annotations

import base64
import os
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jinja2
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

__all__ = ["markdown_to_html"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("fairrobust.report", "templates"),
    autoescape=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def _mark_figures(state: StateCore) -> None:
    """Core rule: a paragraph holding only an image renders as a figure, not as ``<p>``."""
    tokens = state.tokens
    for i in range(len(tokens) - 2):
        opening, inline, closing = tokens[i], tokens[i + 1], tokens[i + 2]
        if (
            opening.type == "paragraph_open"
            and inline.type == "inline"
            and closing.type == "paragraph_close"
            and inline.children is not None
            and len(inline.children) == 1
            and inline.children[0].type == "image"
        ):
            opening.hidden = closing.hidden = True
            inline.children[0].meta["figure"] = True


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _render_image(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: MutableMapping[str, Any],
) -> str:
    """An image as an embedded PNG (``env["base_dir"]`` resolves its path); missing -> raise."""
    token = tokens[idx]
    alt = escapeHtml(self.renderInlineAsText(token.children or [], options, env))
    path = Path(env["base_dir"]) / unquote(str(token.attrGet("src") or ""))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: figure referenced by the report is missing")
    img = f'<img src="{_data_uri(path)}" alt="{alt}">'
    if token.meta.get("figure"):
        return f"<figure>{img}<figcaption>{alt}</figcaption></figure>\n"
    return img


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "xhtmlOut": False}).enable("table")
    md.core.ruler.push("figures", _mark_figures)
    md.add_render_rule("image", _render_image)
    return md


_MARKDOWN = _parser()


def markdown_to_html(md: str, base_dir: str | os.PathLike[str], title: str = "report") -> str:
    """Convert the report's markdown to one self-contained HTML page.

    Args:
      md: markdown (CommonMark with pipe tables); raw HTML in it is shown as text.
      base_dir: the folder image paths are relative to (the run folder).
      title: the page title.

    Returns:
      The page: inline CSS, every image a base64 PNG data URI, no external resource.

    Raises:
      FileNotFoundError: an image file does not exist.
    """
    body = _MARKDOWN.render(md, {"base_dir": str(base_dir)})
    page = _TEMPLATES.get_template("report.html.j2")
    return page.render(title=title, body=body.rstrip("\n"))
