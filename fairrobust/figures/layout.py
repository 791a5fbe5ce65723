"""Layout helpers shared by every figure: titles that fit, the style of groups that do not count.

Constrained layout makes room for titles vertically but never shrinks them, so
a title wider than the figure is cut at its edges. :func:`fit_title` and
:func:`fit_axes_title` wrap a title at word boundaries, measuring each line with
the figure's own renderer (the fonts and DPI it will be drawn with), so that
every line fits the width it is centred on.

Groups under a study's minimum size (or with too few speakers) are drawn in one
recognisable style everywhere: dashed grey lines or grey dashed-outline bars
(:data:`SMALL_LINE`, :data:`SMALL_BAR`), legend labels from :func:`group_label`
(``"speakerphone (n=3, too small)"``), and no interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text

__all__ = [
    "SMALL_BAR",
    "SMALL_LINE",
    "category_ticks",
    "figure_legend",
    "fit_axes_title",
    "fit_axis_labels",
    "fit_title",
    "group_label",
    "wrap_text",
]

#: Line style of a group that does not count (under the minimum size or speakers).
SMALL_LINE: dict[str, Any] = {"color": "0.6", "ls": "--", "lw": 1.0}
#: Bar style of a group that does not count: light grey fill, dashed dark-grey outline.
SMALL_BAR: dict[str, Any] = {"color": "0.88", "edgecolor": "0.35", "ls": "--", "lw": 1.0}

# Share of the width a title may use: constrained layout keeps a 3-point pad at each
# figure edge, and a little slack absorbs kerning differences between measure and draw.
_USABLE = 0.94


def group_label(name: str, n: int | None, valid: bool = True, why: str = "too small") -> str:
    """Legend / tick label of a group: ``"f (n=12)"``, or ``"f (n=3, too small)"``.

    Args:
      name: the group.
      n: its number of clips (None: not shown).
      valid: whether the group counts; when False ``why`` is added.
      why: the reason a group does not count (``"too small"``, ``"too few speakers"``).
    """
    parts = [] if n is None else [f"n={int(n)}"]
    if not valid:
        parts.append(why)
    return f"{name} ({', '.join(parts)})" if parts else name


def _figure_of(ax: Axes) -> Figure:
    """The top-level figure of ``ax`` (``Axes.get_figure(root=True)`` needs Matplotlib 3.10)."""
    fig: Any = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure
    return fig


def _renderer(fig: Figure) -> Any:
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def wrap_text(fig: Figure, text: str, width_px: float, fontsize: float) -> str:
    """``text`` with line breaks so that no line is wider than ``width_px`` when drawn.

    Lines break between words; a single word wider than the width is broken
    between characters. Existing line breaks are kept.

    Args:
      fig: the figure the text will be drawn on (its renderer measures the lines).
      text: the text.
      width_px: the width available, in display pixels at ``fig.dpi``.
      fontsize: the font size in points.

    Returns:
      The wrapped text.
    """
    renderer = _renderer(fig)
    font = FontProperties(size=fontsize)

    def width(s: str) -> float:
        return renderer.get_text_width_height_descent(s, font, ismath=False)[0]

    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = word if not line else f"{line} {word}"
            if width(candidate) <= width_px:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while len(line) > 1 and width(line) > width_px:  # one word too wide: break it
                k = len(line) - 1
                while k > 1 and width(line[:k]) > width_px:
                    k -= 1
                lines.append(line[:k])
                line = line[k:]
        lines.append(line)
    return "\n".join(lines)


def fit_title(fig: Figure, text: str, *, fontsize: float = 11.0) -> Text | None:
    """Set ``text`` as the figure's title (``suptitle``), wrapped to the figure width.

    Constrained layout reserves the rows the wrapped title needs.

    Args:
      fig: the figure.
      text: the title; empty sets none.
      fontsize: font size in points.

    Returns:
      The title artist, or None for an empty title.
    """
    if not text:
        return None
    width_px = fig.get_figwidth() * fig.dpi * _USABLE
    return fig.suptitle(wrap_text(fig, text, width_px, fontsize), fontsize=fontsize)


def fit_axes_title(ax: Axes, text: str, *, fontsize: float = 10.0) -> Text | None:
    """Set ``text`` as the title of one panel, wrapped to the panel's share of the figure width.

    The width is the figure's divided by the panel grid's columns (times the
    columns the panel spans), less the room of tick labels (15%).

    Args:
      ax: the panel.
      text: the title; empty sets none.
      fontsize: font size in points.

    Returns:
      The title artist, or None for an empty title.
    """
    if not text:
        return None
    fig = _figure_of(ax)
    spec = ax.get_subplotspec()
    share = 1.0
    if spec is not None:
        share = (spec.colspan.stop - spec.colspan.start) / spec.get_gridspec().ncols
    width_px = fig.get_figwidth() * fig.dpi * _USABLE * share * 0.85
    return ax.set_title(wrap_text(fig, text, width_px, fontsize), fontsize=fontsize)


def figure_legend(
    fig: Figure,
    handles: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    *,
    fontsize: float = 8.0,
    max_cols: int = 5,
) -> Any:
    """A legend below the panels with as many columns as fit the figure width.

    Labels wider than the figure are wrapped. Without ``handles`` / ``labels``
    the first panel's are used.

    Args:
      fig: the figure (constrained layout reserves the rows below the panels).
      handles, labels: legend entries.
      fontsize: font size in points.
      max_cols: at most this many columns.

    Returns:
      The legend, or None without entries.
    """
    if handles is None or labels is None:
        handles, labels = fig.axes[0].get_legend_handles_labels()
    if not len(labels):
        return None
    avail = fig.get_figwidth() * fig.dpi * _USABLE
    # handle, its gap and the column spacing: about 4.5 font sizes (points -> pixels)
    extra = 4.5 * fontsize * fig.dpi / 72.0
    labels = [wrap_text(fig, str(s), avail - extra, fontsize) for s in labels]
    renderer = _renderer(fig)
    font = FontProperties(size=fontsize)
    widest = max(
        renderer.get_text_width_height_descent(line, font, ismath=False)[0]
        for s in labels
        for line in s.split("\n")
    )
    cols = int(max(1, min(max_cols, len(labels), avail // (widest + extra))))
    return fig.legend(handles, labels, loc="outside lower center", fontsize=fontsize, ncols=cols)


def fit_axis_labels(
    ax: Axes, xlabel: str = "", ylabel: str = "", *, fontsize: float = 10.0
) -> None:
    """Set a panel's axis labels, wrapped to 60% of its share of the figure width / height.

    The axes end up smaller than their grid cell (tick labels, legends, colour
    bars), so the labels are wrapped to a conservative share of it.

    Args:
      ax: the panel.
      xlabel, ylabel: the labels; empty leaves that label unset.
      fontsize: font size in points.
    """
    fig = _figure_of(ax)
    spec = ax.get_subplotspec()
    cols = rows = 1.0
    if spec is not None:
        grid = spec.get_gridspec()
        cols = grid.ncols / (spec.colspan.stop - spec.colspan.start)
        rows = grid.nrows / (spec.rowspan.stop - spec.rowspan.start)
    if xlabel:
        width = fig.get_figwidth() * fig.dpi * 0.6 / cols
        ax.set_xlabel(wrap_text(fig, xlabel, width, fontsize), fontsize=fontsize)
    if ylabel:
        height = fig.get_figheight() * fig.dpi * 0.6 / rows
        ax.set_ylabel(wrap_text(fig, ylabel, height, fontsize), fontsize=fontsize)


def category_ticks(
    ax: Axes, positions: Any, labels: Sequence[str], *, fontsize: float = 9.0
) -> None:
    """Label the categories of a bar chart: each label wrapped to its share of the width.

    With room for at least about six characters per category the labels stay
    horizontal, wrapped between words; otherwise they are rotated 45 degrees.

    Args:
      ax: the panel.
      positions: the ``c`` tick positions.
      labels: the ``c`` labels.
      fontsize: font size in points.
    """
    fig = _figure_of(ax)
    per = fig.get_figwidth() * fig.dpi * 0.75 / max(len(labels), 1)
    if per >= 6 * fontsize * fig.dpi / 72.0 * 0.6:
        wrapped = [wrap_text(fig, str(s), per, fontsize) for s in labels]
        ax.set_xticks(positions, wrapped, fontsize=fontsize)
    else:
        ax.set_xticks(positions, list(labels), fontsize=fontsize, rotation=45, ha="right")
