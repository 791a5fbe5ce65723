"""Every figure keeps its titles and legends inside the figure, with long group and model names.

Each figure function draws with long attribute, group and model names; the
figure it saves is captured, laid out again by Matplotlib's renderer, and the
window extent of every title (figure and panel), axis label and legend text must lie inside
the figure's bounding box. A title cut at the figure edge fails. The list of
cases must name every public figure function, so a new one cannot skip the check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text

from fairrobust.figures import layout
from fairrobust.figures import rejection as rej
from fairrobust.figures import robustness as rob
from fairrobust.figures import summary as summ

ATTR = "recording device and dialect region of the speaker x self-reported age bracket"
GROUPS = [
    "speakers from the north-eastern dialect region (n=120)",
    "speakers from the south-western dialect region (n=98)",
    "speakerphone recorded in a reverberant room (n=3, too small)",
]
MODELS = [
    "m5-tricks_at0.01_noise0.05_quantize-bits-8-and-a-long-suffix",
    "wav2vec2-base-finetuned_at0_noise0.1_mp3-compress-32k",
    "m5_at0.1_noise0",
]
METHODS = ["RS N=10", "RS N=100", "RS N=1000", "NR (SVM on the penultimate layer)"]
TITLE = (
    f"AUC_acc per {ATTR} group for every model of the grid (hatched: excluded as random "
    "guessing; whiskers: 95% bootstrap intervals clustered by speaker)"
)
EPS = np.array([0.001, 0.01, 0.05, 0.1])
RNG = np.random.default_rng(0)


def _u(*shape: int) -> np.ndarray:
    return RNG.uniform(0.05, 0.95, size=shape)


CASES: dict[str, Callable[[Path], Path]] = {
    "robustness.correlation_heatmap": lambda p: rob.correlation_heatmap(
        _u(3, 3) * 2 - 1, [f"{ATTR}: {g}" for g in GROUPS], ["AT", "Tricks", "Noise"], p,
        title=TITLE,
    ),
    "robustness.accuracy_vs_epsilon": lambda p: rob.accuracy_vs_epsilon(
        EPS, _u(3, 4), GROUPS, p, clean_accuracy=_u(3), lower=_u(3, 4) * 0.5,
        upper=_u(3, 4) * 0.5 + 0.5, chance=0.1, valid=[True, True, False], title=TITLE,
    ),
    "robustness.group_auc_bars": lambda p: rob.group_auc_bars(
        _u(3, 3), MODELS, GROUPS, p, lower=_u(3, 3) * 0.5, upper=_u(3, 3) + 1,
        excluded=[False, True, False], valid=[True, True, False], title=TITLE,
        ylabel="normalised AUC_acc (mean accuracy)",
    ),
    "robustness.breaking_eps_cdf": lambda p: rob.breaking_eps_cdf(
        [0.0, *EPS], np.where(_u(2, 12) > 0.8, np.inf, _u(2, 12) * 0.1),
        np.array([[1] * 4 + [0] * 8, [0] * 4 + [1] * 6 + [0] * 2, [0] * 10 + [1] * 2], bool), p,
        panel_labels=[f"baseline: {MODELS[0]}", f"most robust: {MODELS[1]}"],
        group_labels=GROUPS, valid=[True, True, False], title=TITLE,
    ),
    "robustness.accuracy_histograms": lambda p: rob.accuracy_histograms(
        [0.0, *EPS], _u(3, 7, 5), p, series_labels=GROUPS, valid=[True, True, False],
        chance=0.1, title=TITLE,
    ),
    "robustness.model_auc_bars": lambda p: rob.model_auc_bars(
        _u(3), MODELS, p, lower=_u(3) * 0.5, upper=_u(3) + 1, adversarial=[True, False, True],
        noise=[True, True, False], excluded=[False, True, False],
        xlabel="normalised AUC_acc (mean accuracy over epsilon in [0.001, 0.1])", title=TITLE,
    ),
    "rejection.plot_fpr_curves": lambda p: rej.plot_fpr_curves(
        np.linspace(0, 1, 11), _u(4, 11, 3), p, method_labels=METHODS, group_labels=GROUPS,
        ci=np.stack([_u(4, 11, 3) * 0.5, _u(4, 11, 3) * 0.5 + 0.5], -1),
        valid=[True, True, False], title=TITLE,
    ),
    "rejection.plot_fpr_parity_vs_n": lambda p: rej.plot_fpr_parity_vs_n(
        [10, 100, 1000], _u(2, 3), _u(2), p, attribute_labels=[ATTR, f"{ATTR} (second)"],
        title=TITLE,
    ),
    "rejection.plot_auc_fpr_bars": lambda p: rej.plot_auc_fpr_bars(
        _u(4, 3), p, method_labels=METHODS, group_labels=GROUPS,
        ci=np.stack([_u(4, 3) * 0.5, _u(4, 3) * 0.5 + 0.5], -1), valid=[True, True, False],
        title=TITLE,
    ),
    "rejection.plot_certified_accuracy": lambda p: rej.plot_certified_accuracy(
        np.linspace(0, 0.2, 5), _u(5, 3), p, group_labels=GROUPS, lower=_u(5, 3) * 0.5,
        upper=_u(5, 3) * 0.5 + 0.5, valid=[True, True, False], title=TITLE,
    ),
    "summary.interval_bars": lambda p: summ.interval_bars(
        _u(3, 3), _u(3, 3) * 0.5, _u(3, 3) + 1, p, categories=GROUPS, series=MODELS,
        title=TITLE, ylabel="normalised AUC_acc (mean accuracy)", hatched=[False, True, False],
        muted=[False, False, True],
    ),
}  # fmt: skip

_HELPERS = {"save_figure", "no_data_panel"}


def _capture(draw: Callable[[Path], Path], path: Path, monkeypatch) -> Figure:
    """Run ``draw`` and return the Figure it saved (Figure.savefig is spied on)."""
    saved: list[Figure] = []
    original = Figure.savefig

    def spy(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    out = draw(path)
    assert out.is_file() and saved
    return saved[-1]


def _texts_to_check(fig: Figure) -> list[Text]:
    """The figure title, every panel's titles and axis labels, every legend's texts (non-empty)."""
    texts: list[Text] = []
    if fig._suptitle is not None:  # noqa: SLF001 (matplotlib keeps the suptitle artist here)
        texts.append(fig._suptitle)  # noqa: SLF001
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title]  # noqa: SLF001
        texts += [ax.xaxis.label, ax.yaxis.label]
        if ax.get_legend() is not None:
            texts += list(ax.get_legend().get_texts())
    for legend in fig.legends:
        texts += list(legend.get_texts())
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def clipped_texts(fig: Figure) -> list[str]:
    """Texts (titles, legends) whose rendered extent leaves the figure, with their extents."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lay out again at the figure's own DPI
    renderer = canvas.get_renderer()
    box = fig.bbox
    bad = []
    for t in _texts_to_check(fig):
        ext = t.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.x1 > box.x1 + 1 or ext.y0 < box.y0 - 1 or ext.y1 > box.y1 + 1:
            bad.append(f"{t.get_text()!r}: {ext.bounds} outside {box.bounds}")
    return bad


def test_cases_cover_every_figure_function():
    public = {
        f"{mod.__name__.rsplit('.', 1)[1]}.{name}"
        for mod in (rob, rej, summ)
        for name in mod.__all__
        if callable(getattr(mod, name)) and name not in _HELPERS
    }
    assert public == set(CASES), f"add a case for {public - set(CASES)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_titles_and_legends_inside_the_figure(name, tmp_path, monkeypatch):
    fig = _capture(CASES[name], tmp_path / f"{name}.png", monkeypatch)
    assert fig.get_suptitle(), "the figure's title is drawn as its suptitle"
    assert clipped_texts(fig) == []


def test_the_check_fails_on_a_clipped_title():
    """The bbox check is able to fail: an axes title wider than its figure is reported."""
    fig = Figure(figsize=(4, 3), layout="constrained")
    fig.add_subplot().set_title(TITLE)
    assert clipped_texts(fig)
    fig2 = Figure(figsize=(4, 3), layout="constrained")
    layout.fit_axes_title(fig2.add_subplot(), TITLE)
    assert clipped_texts(fig2) == []


def test_wrap_text_lines_fit_and_keep_words():
    fig = Figure(figsize=(3, 2))
    text = "a title with several words " + "x" * 80
    wrapped = layout.wrap_text(fig, text, 120.0, 10.0)
    assert wrapped.replace("\n", "").replace(" ", "") == text.replace(" ", "")
    renderer = FigureCanvasAgg(fig).get_renderer()
    for line in wrapped.split("\n"):
        width = renderer.get_text_width_height_descent(line, FontProperties(size=10), False)[0]
        assert width <= 120.0
    assert layout.wrap_text(fig, "short", 120.0, 10.0) == "short"


def test_group_label():
    assert layout.group_label("f", 12) == "f (n=12)"
    assert layout.group_label("f", 3, valid=False) == "f (n=3, too small)"
    assert layout.group_label("f", 30, False, "too few speakers") == "f (n=30, too few speakers)"
