"""Every figure function draws 0 or 1 series (and all-zero values on a log axis) without raising."""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust.figures import rejection as rej
from fairrobust.figures import robustness as rob
from fairrobust.figures import summary as summ

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.read_bytes().startswith(PNG)


@pytest.mark.parametrize("g", [0, 1])
def test_fpr_curves_zero_or_one_group(tmp_path, g):
    t = np.linspace(0.01, 1, 5)
    out = rej.plot_fpr_curves(
        t, np.zeros((2, 5, g)), tmp_path / "c.png", method_labels=["RS", "NR"],
        group_labels=["only"][:g],
    )  # fmt: skip
    assert _is_png(out)


def test_fpr_curves_no_method(tmp_path):
    out = rej.plot_fpr_curves(
        np.linspace(0, 1, 3), np.zeros((0, 3, 2)), tmp_path / "c.png", method_labels=[],
        group_labels=["a", "b"],
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("p", [0, 1])
def test_fpr_parity_vs_n_zero_or_one_attribute(tmp_path, p):
    out = rej.plot_fpr_parity_vs_n(
        [10, 100], np.zeros((p, 2)), np.zeros(p), tmp_path / "p.png",
        attribute_labels=["gender"][:p],
    )  # fmt: skip
    assert _is_png(out)


def test_fpr_parity_vs_n_all_nan_and_zero(tmp_path):
    rs = np.array([[np.nan, np.nan], [0.0, 0.0]])
    out = rej.plot_fpr_parity_vs_n(
        [10, 100], rs, np.array([np.nan, 0.0]), tmp_path / "p.png",
        attribute_labels=["one group", "zero"], rs_ci=np.full((2, 2, 2), np.nan),
    )  # fmt: skip
    assert _is_png(out)


def test_fpr_parity_vs_n_nr_only(tmp_path):
    """RS undefined at every N (one group), NR parity 0: the log axis still has limits."""
    out = rej.plot_fpr_parity_vs_n(
        [10, 100], np.array([[np.nan, np.nan]]), np.array([0.0]), tmp_path / "p.png",
        attribute_labels=["a"],
    )  # fmt: skip
    assert _is_png(out)


def test_fpr_parity_vs_n_no_samples(tmp_path):
    out = rej.plot_fpr_parity_vs_n(
        [], np.zeros((1, 0)), np.array([0.1]), tmp_path / "p.png", attribute_labels=["a"]
    )
    assert _is_png(out)


@pytest.mark.parametrize("m,g", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_auc_fpr_bars_degenerate(tmp_path, m, g):
    out = rej.plot_auc_fpr_bars(
        np.full((m, g), np.nan), tmp_path / "b.png", method_labels=["NR"][:m],
        group_labels=["a"][:g],
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("g", [0, 1])
def test_certified_accuracy_degenerate(tmp_path, g):
    out = rej.plot_certified_accuracy(
        np.linspace(0, 0.3, 3), np.zeros((3, g)), tmp_path / "r.png",
        group_labels=["a"][:g], lower=np.zeros((3, g)), upper=np.zeros((3, g)),
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("rows,cols", [(0, 0), (0, 2), (2, 0), (1, 1)])
def test_correlation_heatmap_degenerate(tmp_path, rows, cols):
    out = rob.correlation_heatmap(
        np.full((rows, cols), np.nan), [f"r{i}" for i in range(rows)],
        [f"c{j}" for j in range(cols)], tmp_path / "h.png", pvalues=np.ones((rows, cols)),
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("g", [0, 1])
def test_accuracy_vs_epsilon_degenerate(tmp_path, g):
    out = rob.accuracy_vs_epsilon(
        np.array([0.001, 0.01]), np.zeros((g, 2)), ["a"][:g], tmp_path / "a.png",
        clean_accuracy=np.zeros(g), lower=np.zeros((g, 2)), upper=np.zeros((g, 2)),
        chance=0.1,
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("m,g", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_group_auc_bars_degenerate(tmp_path, m, g):
    out = rob.group_auc_bars(
        np.zeros((m, g)), ["m"][:m], ["a"][:g], tmp_path / "b.png",
        lower=np.zeros((m, g)), upper=np.zeros((m, g)),
    )  # fmt: skip
    assert _is_png(out)


@pytest.mark.parametrize("s,c", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_interval_bars_degenerate(tmp_path, s, c):
    z = np.full((s, c), np.nan)
    out = summ.interval_bars(
        z, z, z, tmp_path / "i.png", categories=["a"][:c], series=["x"][:s], title="t", ylabel="y"
    )
    assert _is_png(out)
