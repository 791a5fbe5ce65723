"""The robustness study's figure writer: the paper's per-model figures, intervals, small groups.

The drawn numbers are read back from the saved Matplotlib figures (bar heights,
whisker ends, line data) and compared with plain NumPy computations on the same
table rows.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fairrobust.figures import robustness as rob_figs
from fairrobust.studies.robustness_figures import auc_axis_label, model_figures, write_figures

EPS = [0.01, 0.05, 0.1]
WIDTH = EPS[-1] - EPS[0]


def _models(normalized: bool = True, with_ci: bool = False):
    rng = np.random.default_rng(1)
    rows = []
    for i, (at, noise) in enumerate([(0.0, 0.0), (0.01, 0.0), (0.0, 0.1), (0.01, 0.1), (0.1, 0)]):
        acc = np.sort(rng.uniform(0.05, 0.9, 3))[::-1]
        auc = float(np.trapezoid(acc, EPS))
        row = {
            "member_id": f"m{i}", "at_eps": at, "noise_std": noise, "n_test": 50,
            "clean_accuracy": float(rng.uniform(0.5, 1)), "auc_acc": auc,
            "excluded": i == 4,
            **{f"acc@{e:g}": float(a) for e, a in zip(EPS, acc, strict=True)},
        }  # fmt: skip
        if normalized:
            row["auc_acc_normalized"] = auc / WIDTH
        if with_ci:
            row["auc_acc_ci_low"], row["auc_acc_ci_high"] = auc * 0.8, auc * 1.1
        rows.append(row)
    return rows


def _curves(models):
    """group_curves rows of one attribute with groups a (valid) and b (too small)."""
    rng = np.random.default_rng(2)
    rows = []
    for m in models:
        for g, n, valid in (("a", 30, True), ("b", 3, False)):
            for e in [0.0, *EPS]:
                rows.append(
                    {"member_id": m["member_id"], "attribute": "accent", "group": g, "n": n,
                     "valid": valid, "epsilon": e, "accuracy": float(rng.uniform())}
                )  # fmt: skip
    return rows


@pytest.fixture
def saved(monkeypatch):
    """Figures saved during the test, by the file name they were saved to."""
    figs: dict[str, Figure] = {}
    original = rob_figs.save_figure

    def spy(fig, path):
        figs[Path(path).name] = fig
        return original(fig, path)

    monkeypatch.setattr(rob_figs, "save_figure", spy)
    return figs


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_model_figures_files_and_histogram_counts(tmp_path, saved):
    """Per budget, the overall histogram counts the models in each accuracy bin (numpy oracle)."""
    models = _models()
    out = model_figures(models, _curves(models), EPS, tmp_path, prefix="rob", chance=0.1)
    assert set(out) == {"hist_accuracy", "hist_accent", "models_accuracy", "models_auc"}
    assert all("hist" in p.name for k, p in out.items() if k.startswith("hist"))
    assert all(p.is_file() for p in out.values())
    hist = saved["rob_hist_accuracy.png"]
    acc = np.asarray([[m["clean_accuracy"], *[m[f"acc@{e:g}"] for e in EPS]] for m in models])
    for k, ax in enumerate(hist.axes[: len(EPS) + 1]):
        heights = [b.get_height() for b in _bars(ax)]
        want, _ = np.histogram(acc[:, k], bins=np.linspace(0, 1, 11))
        np.testing.assert_array_equal(heights, want)
    assert "clean" in hist.axes[0].get_title()


def test_models_auc_uses_the_normalised_column_and_scales_raw_intervals(tmp_path, saved):
    models = _models(normalized=True, with_ci=True)
    model_figures(models, [], EPS, tmp_path, prefix="rob")
    fig = saved["rob_models_auc.png"]
    ax = fig.axes[0]
    names = {
        round(float(y)): t.get_text().split(" ")[0]
        for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    }
    widths = {names[round(b.get_y() + b.get_height() / 2)]: b.get_width() for b in _bars(ax)}
    labels = [names[k] for k in sorted(names, reverse=True)]  # top to bottom
    for m in models:
        assert widths[m["member_id"]] == pytest.approx(m["auc_acc_normalized"], rel=1e-6)
    # highest first
    assert [widths[s] for s in labels] == sorted(widths.values(), reverse=True)
    # whiskers: the raw interval divided by the epsilon range
    segs = np.concatenate(
        [c.get_segments() for c in ax.collections if isinstance(c, LineCollection)]
    )
    ends = sorted(float(s[1][0]) for s in segs if s[0][1] == s[1][1])
    want = sorted(m["auc_acc_ci_high"] / WIDTH for m in models)
    np.testing.assert_allclose(ends, want, rtol=1e-6)
    assert "normalised" in ax.get_xlabel() and "[0.01, 0.1]" in ax.get_xlabel()


def test_models_auc_raw_without_the_normalised_column(tmp_path, saved):
    models = _models(normalized=False)
    model_figures(models, [], EPS, tmp_path, prefix="rob")
    ax = saved["rob_models_auc.png"].axes[0]
    got = sorted(b.get_width() for b in _bars(ax))
    assert got == pytest.approx(sorted(m["auc_acc"] for m in models), rel=1e-6)
    assert ax.get_xlabel().startswith("AUC_acc (integral")
    assert auc_axis_label(True, EPS) == "normalised AUC_acc (mean accuracy)"


def test_every_model_curve_and_excluded_models_dashed_grey(tmp_path, saved):
    models = _models()
    model_figures(models, [], EPS, tmp_path, prefix="rob", chance=0.2)
    ax = saved["rob_models_accuracy.png"].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    assert len([k for k in lines if k != "chance"]) == len(models)
    for m in models:
        label = f"{m['member_id']} (excl.)" if m["excluded"] else m["member_id"]
        np.testing.assert_allclose(lines[label].get_ydata(), [m[f"acc@{e:g}"] for e in EPS])
        assert (lines[label].get_linestyle() == "--") == m["excluded"]


def _agg(models, valid_b=False):
    """A minimal ``robustness_tables.aggregate`` output: attribute accent, groups a and b."""
    m = len(models)
    rng = np.random.default_rng(3)
    auc = rng.uniform(0.01, 0.05, (m, 2))
    gm = [
        {"member_id": mm["member_id"], "attribute": "accent", "group": g, "n": n,
         "valid": v, "auc_acc": float(auc[i, j]),
         "auc_acc_ci_low": float(auc[i, j]) * 0.5 if v else None,
         "auc_acc_ci_high": float(auc[i, j]) * 1.5 if v else None}
        for i, mm in enumerate(models)
        for j, (g, n, v) in enumerate((("a", 30, True), ("b", 3, valid_b)))
    ]  # fmt: skip
    curves = rng.uniform(size=(m, 1 + len(EPS), 2))
    return {
        "tables": {"correlations": [], "models": models, "group_metrics": gm,
                   "group_curves": _curves(models)},
        "matrices": {"accent": {"auc": auc, "curves": curves, "valid": np.array([True, valid_b]),
                                "sizes": np.array([30, 3])}},
        "excluded": np.array([bool(mm["excluded"]) for mm in models]),
        "chance": 0.1,
    }, auc  # fmt: skip


def test_write_figures_group_bars_have_whiskers_and_mark_small_groups(tmp_path, saved):
    models = _models(normalized=False)
    agg, auc = _agg(models)
    groups = {"accent": SimpleNamespace(names=("a", "b"), min_size=5)}
    out = write_figures(agg, models, groups, EPS, tmp_path, prefix="rob", num_classes=10)
    assert {"auc_accent", "hist_accent", "models_auc", "curves_accent_m0"} <= set(out)
    fig = saved["rob_auc_accent.png"]
    ax = fig.axes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["a (n=30)", "b (n=3, too small)"]
    segs = np.concatenate(
        [c.get_segments() for c in ax.collections if isinstance(c, LineCollection)]
    )
    tops = sorted(float(s[1][1]) for s in segs if s[0][0] == s[1][0])  # vertical whiskers
    np.testing.assert_allclose(tops, sorted(auc[:, 0] * 1.5), rtol=1e-6)  # only group a
    small = [b for b in _bars(ax) if b.get_linestyle() == "--"]
    assert len(small) == len(models)  # every bar of group b, dashed outline
    curves = saved["rob_curves_accent_m0.png"].axes[0]
    dashed = [ln.get_label() for ln in curves.get_lines() if ln.get_linestyle() == "--"]
    assert "b (n=3, too small)" in dashed
