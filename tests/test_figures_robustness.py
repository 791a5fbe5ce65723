"""Figures of the robustness study: files are written, non-empty PNGs, bad shapes raise."""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust.figures import robustness as figs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 1000


def test_correlation_heatmap_writes_png_deterministically(tmp_path):
    r = np.array([[0.5, -0.3, np.nan], [0.9, 0.1, -1.0]])
    p = np.array([[0.01, 0.5, np.nan], [0.001, 0.9, 0.0]])
    out = figs.correlation_heatmap(
        r,
        ["gender", "age"],
        ["AT", "Tricks", "Noise"],
        tmp_path / "a" / "h.png",
        pvalues=p,
        title="binary interventions vs Defense Parity",
    )
    assert out == tmp_path / "a" / "h.png" and _is_png(out)
    again = figs.correlation_heatmap(
        r,
        ["gender", "age"],
        ["AT", "Tricks", "Noise"],
        tmp_path / "h2.png",
        pvalues=p,
        title="binary interventions vs Defense Parity",
    )
    assert again.read_bytes() == out.read_bytes()


def test_correlation_heatmap_bad_shape():
    with pytest.raises(ValueError, match=r"r: expected shape \(2, 2\)"):
        figs.correlation_heatmap(np.zeros((2, 3)), ["a", "b"], ["x", "y"], "unused.png")
    with pytest.raises(ValueError, match="pvalues"):
        figs.correlation_heatmap(np.zeros((1, 1)), ["a"], ["x"], "u.png", pvalues=np.zeros(2))


def test_accuracy_vs_epsilon(tmp_path):
    eps = np.array([0.001, 0.01, 0.1])
    acc = np.array([[0.9, 0.5, 0.1], [0.8, np.nan, 0.0]])
    out = figs.accuracy_vs_epsilon(
        eps,
        acc,
        ["f (n=10)", "m (n=12)"],
        tmp_path / "c.png",
        clean_accuracy=np.array([0.95, 0.9]),
        lower=acc - 0.1,
        upper=acc + 0.1,
        chance=0.2,
    )
    assert _is_png(out)
    with pytest.raises(ValueError, match="epsilons"):
        figs.accuracy_vs_epsilon(np.array([0.0, 0.1]), acc[:, :2], ["f", "m"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="accuracy: expected shape"):
        figs.accuracy_vs_epsilon(eps, acc, ["f"], tmp_path / "x.png")


def test_group_auc_bars(tmp_path):
    vals = np.array([[0.01, 0.02], [np.nan, 0.03], [0.0, 0.0]])
    out = figs.group_auc_bars(
        vals,
        ["m5", "m5-tricks", "m5_at0.1"],
        ["f", "m"],
        tmp_path / "b.png",
        lower=vals * 0.5,
        upper=vals * 1.5,
        excluded=[False, False, True],
    )
    assert _is_png(out)
    with pytest.raises(ValueError, match="values: expected shape"):
        figs.group_auc_bars(vals, ["a"], ["f", "m"], tmp_path / "y.png")
