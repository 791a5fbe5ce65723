"""Tests of the rejection-study figures: each writes a non-empty PNG and checks shapes."""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust.figures import rejection as figs

PNG = b"\x89PNG\r\n\x1a\n"
METHODS = ["RS N=10", "RS N=100", "NR"]


def _is_png(path):
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def test_fpr_curves(tmp_path):
    t = np.linspace(0.01, 1, 100)
    curves = np.random.default_rng(0).uniform(size=(3, 100, 2))
    curves[0, :, 1] = np.nan  # an empty group is simply not drawn
    out = figs.plot_fpr_curves(
        t, curves, tmp_path / "sub" / "c.png", method_labels=METHODS, group_labels=["f", "m"]
    )
    assert out == tmp_path / "sub" / "c.png" and _is_png(out)


def test_fpr_parity_vs_n_with_band(tmp_path):
    rs = np.array([[0.1, 0.05], [0.3, 0.01]])
    ci = np.stack([rs - 0.01, rs + 0.01], axis=-1)
    nr_ci = np.array([[0.1, 0.3], [np.nan, np.nan]])
    out = figs.plot_fpr_parity_vs_n(
        [10, 100], rs, np.array([0.2, np.nan]), tmp_path / "p.png",
        attribute_labels=["gender", "age"], rs_ci=ci, nr_ci=nr_ci,
    )  # fmt: skip
    assert _is_png(out)


def test_auc_bars_and_certified(tmp_path):
    out = figs.plot_auc_fpr_bars(
        np.array([[0.1, np.nan], [0.2, 0.3], [0.05, 0.4]]), tmp_path / "b.png",
        method_labels=METHODS, group_labels=["a", "b"], title="AUC_FPR",
    )  # fmt: skip
    assert _is_png(out)
    out = figs.plot_certified_accuracy(
        np.linspace(0, 0.3, 4), np.array([[0.9, 0.8], [0.7, 0.5], [0.2, 0.1], [0, 0]]),
        tmp_path / "r.png", group_labels=["a", "b"],
    )  # fmt: skip
    assert _is_png(out)


def test_same_numbers_same_bytes(tmp_path):
    t = np.linspace(0.01, 1, 20)
    curves = np.linspace(0, 1, 3 * 20 * 2).reshape(3, 20, 2)
    kw = dict(method_labels=METHODS, group_labels=["f", "m"])
    a = figs.plot_fpr_curves(t, curves, tmp_path / "a.png", **kw).read_bytes()
    b = figs.plot_fpr_curves(t, curves, tmp_path / "b.png", **kw).read_bytes()
    assert a == b


def test_shape_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="curves"):
        figs.plot_fpr_curves(
            np.linspace(0, 1, 5), np.zeros((2, 5, 2)), tmp_path / "x.png",
            method_labels=METHODS, group_labels=["f", "m"],
        )  # fmt: skip
    with pytest.raises(ValueError, match="rs_parity"):
        figs.plot_fpr_parity_vs_n(
            [10, 100], np.zeros((1, 3)), np.zeros(1), tmp_path / "x.png", attribute_labels=["g"]
        )
    with pytest.raises(ValueError, match="accuracy"):
        figs.plot_certified_accuracy(
            np.zeros(3), np.zeros((2, 1)), tmp_path / "x.png", group_labels=["a"]
        )
    assert not (tmp_path / "x.png").exists()
