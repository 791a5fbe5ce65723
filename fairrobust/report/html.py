"""``report.html``: the markdown report as one self-contained HTML page.

The markdown is rendered by markdown-it-py (CommonMark plus pipe tables, raw
HTML disabled so text is always escaped) into the page template
``templates/report.html.j2`` (Jinja2, inline CSS). Every image is embedded as a
base64 PNG data URI; an image alone in its paragraph becomes a ``<figure>``
whose caption is the emphasised paragraph right after it (``*caption*``, which
then is not repeated), else its alt text. The page references no external resource.
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


def _only(tokens: Sequence[Token], i: int) -> list[Token] | None:
    """The inline children of a paragraph starting at ``tokens[i]``, else None."""
    if i + 2 >= len(tokens):
        return None
    opening, inline, closing = tokens[i], tokens[i + 1], tokens[i + 2]
    if (
        opening.type == "paragraph_open"
        and inline.type == "inline"
        and closing.type == "paragraph_close"
        and inline.children
    ):
        return inline.children
    return None


def _is_caption(children: Sequence[Token] | None) -> bool:
    """A paragraph that is one emphasised span (``*...*``)."""
    if not children or children[0].type != "em_open" or children[-1].type != "em_close":
        return False
    depth = 0
    for k, tok in enumerate(children):
        depth += tok.type == "em_open"
        depth -= tok.type == "em_close"
        if depth == 0 and k < len(children) - 1:
            return False  # ``*a* b *c*``: two spans, not one caption
    return True


def _mark_figures(state: StateCore) -> None:
    """Core rule: a paragraph holding only an image renders as a figure, not as ``<p>``.

    An emphasised paragraph right after it becomes the figure's caption (and is
    not rendered again).
    """
    tokens = state.tokens
    for i in range(len(tokens) - 2):
        children = _only(tokens, i)
        if children is None or len(children) != 1 or children[0].type != "image":
            continue
        tokens[i].hidden = tokens[i + 2].hidden = True
        children[0].meta["figure"] = True
        following = _only(tokens, i + 3)
        if _is_caption(following):
            assert following is not None
            children[0].meta["caption"] = following[1:-1]
            tokens[i + 3].hidden = tokens[i + 5].hidden = True
            tokens[i + 4].children = []


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
        caption = token.meta.get("caption")
        text = alt if caption is None else self.renderInline(caption, options, env)
        return f"<figure>{img}<figcaption>{text}</figcaption></figure>\n"
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
