"""Group metrics: hand values, invariants, oracles (numpy loops, scipy, sklearn), jit, errors."""

import itertools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import confusion_matrix

from fairrobust import groups as G
from fairrobust import metrics as M
from fairrobust.metrics import rejection as metrics_rejection
from fairrobust.metrics import robustness as metrics_robustness

# Three groups over 8 examples; group 2 overlaps nothing, example 7 is in no group.
MASKS = np.array(
    [
        [1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 0],
    ],
    dtype=bool,
)


def _loop_rates(values, masks):
    out = np.zeros((*values.shape[:-1], masks.shape[0]))
    for idx in np.ndindex(values.shape[:-1]):
        for g in range(masks.shape[0]):
            out[(*idx, g)] = values[idx][masks[g]].mean()
    return out


def _random_masks(rng, g, n):
    labels = rng.integers(0, g, n)
    return labels[None, :] == np.arange(g)[:, None]


# ------------------------------------------------------------------------- group rates


def test_group_rates_hand_values():
    v = np.array([1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    np.testing.assert_allclose(M.group_rates(v, MASKS), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(M.by_group(v, MASKS), [2 / 3, 1.0, 0.0])


def test_group_rates_oracle_and_batched():
    rng = np.random.default_rng(0)
    v = rng.random((2, 3, 50)).astype(np.float32)
    m = _random_masks(rng, 4, 50)
    r = M.group_rates(v, m)
    assert r.shape == (2, 3, 4)
    np.testing.assert_allclose(r, _loop_rates(v, m), rtol=1e-6)


def test_group_rates_weights_equal_repetition():
    rng = np.random.default_rng(1)
    v = rng.random(20).astype(np.float32)
    m = _random_masks(rng, 3, 20)
    w = rng.integers(0, 4, 20)
    w[m.argmax(0) == 0][:1] = 1
    idx = np.repeat(np.arange(20), w)
    np.testing.assert_allclose(
        M.group_rates(v, m, weights=w), M.group_rates(v[idx], m[:, idx]), rtol=1e-6
    )


def test_empty_group_nan_and_warning():
    m = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    with pytest.warns(RuntimeWarning, match="group index 1 has no examples"):
        r = M.group_rates(np.array([1.0, 0.0, 1.0]), m)
    assert r[0] == 0.5 and np.isnan(r[1])
    # Under jit the NaN is returned silently (the masks are traced).
    rj = jax.jit(M.group_rates)(jnp.array([1.0, 0.0, 1.0]), m)
    assert np.isnan(rj[1])


def test_group_rates_bad_masks():
    with pytest.raises(ValueError, match=r"masks: expected shape \(g, n=3\)"):
        M.group_rates(np.ones(3), np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="weights: expected a shape broadcastable"):
        M.group_rates(np.ones(3), np.ones((2, 3), bool), weights=np.ones(4))


# ----------------------------------------------------------------- fairlearn-style API


def test_fairlearn_style_aggregates_oracle():
    rng = np.random.default_rng(2)
    v = rng.random((3, 40)).astype(np.float32)
    m = _random_masks(rng, 4, 40)
    rates = _loop_rates(v, m)
    overall = v.mean(-1, keepdims=True)
    np.testing.assert_allclose(M.group_min(v, m), rates.min(-1), rtol=1e-6)
    np.testing.assert_allclose(M.group_max(v, m), rates.max(-1), rtol=1e-6)
    np.testing.assert_allclose(M.difference(v, m), rates.max(-1) - rates.min(-1), rtol=1e-5)
    np.testing.assert_allclose(
        M.difference(v, m, method="to_overall"), np.abs(rates - overall).max(-1), rtol=1e-5
    )
    np.testing.assert_allclose(M.ratio(v, m), rates.min(-1) / rates.max(-1), rtol=1e-5)
    to_overall = (np.minimum(rates, overall) / np.maximum(rates, overall)).min(-1)
    np.testing.assert_allclose(M.ratio(v, m, method="to_overall"), to_overall, rtol=1e-5)
    valid = np.array([True, False, True, True])
    r = rates[:, valid]
    np.testing.assert_allclose(M.difference(v, m, valid=valid), r.max(-1) - r.min(-1), rtol=1e-5)
    np.testing.assert_allclose(M.group_min(v, m, valid=valid), r.min(-1), rtol=1e-6)


def test_fairlearn_style_bad_method():
    with pytest.raises(ValueError, match=r"method: expected one of \['between_groups'"):
        M.difference(np.ones(8), MASKS, method="pairwise")
    with pytest.raises(ValueError, match="method"):
        M.ratio(np.ones(8), MASKS, method="x")
    with pytest.raises(ValueError, match=r"valid: expected shape \(g=3,\)"):
        M.group_min(np.ones(8), MASKS, valid=[True])


# ------------------------------------------------------------------ AUC_acc and parity


def test_auc_acc_hand_values():
    # Group 0: acc 1, 2/3, 0 at eps 0, 0.1, 0.3 -> 0.1 * (1 + 2/3) / 2 + 0.2 * (2/3) / 2
    correct = np.array(
        [
            [1, 1, 1, 1, 0, 1, 1, 0],
            [1, 1, 0, 1, 0, 0, 1, 0],
            [0, 0, 0, 1, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    eps = np.array([0.0, 0.1, 0.3])
    auc = M.auc_acc(correct, eps, MASKS)
    g0 = 0.1 * (1 + 2 / 3) / 2 + 0.2 * (2 / 3 + 0) / 2
    g1 = 0.1 * (2 / 3 + 1 / 3) / 2 + 0.2 * (1 / 3 + 1 / 3) / 2
    g2 = 0.1 * (1 + 1) / 2 + 0.2 * (1 + 0) / 2
    np.testing.assert_allclose(auc, [g0, g1, g2], rtol=1e-6)
    np.testing.assert_allclose(M.auc_acc(correct, eps, MASKS, normalize=True), auc / 0.3, rtol=1e-6)
    curves = M.accuracy_curves(correct, MASKS)
    assert curves.shape == (3, 3)
    np.testing.assert_allclose(curves[:, 0], [1, 2 / 3, 0], rtol=1e-6)


def test_auc_acc_vs_numpy_trapezoid_batched():
    rng = np.random.default_rng(3)
    eps = np.array([0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.3])
    correct = rng.random((4, 7, 60)) < 0.6  # [models, eps, n]
    m = _random_masks(rng, 5, 60)
    auc = M.auc_acc(correct, eps, m)
    assert auc.shape == (4, 5)
    acc = _loop_rates(correct.astype(float), m)  # [4, 7, 5]
    np.testing.assert_allclose(auc, np.trapezoid(acc, eps, axis=1), rtol=1e-5, atol=1e-7)
    # invariants: within [0, eps range]; normalised is a mean accuracy
    assert np.all((np.asarray(auc) >= 0) & (np.asarray(auc) <= 0.3 + 1e-7))
    norm = M.auc_acc(correct, eps, m, normalize=True)
    assert np.all((np.asarray(norm) >= 0) & (np.asarray(norm) <= 1 + 1e-6))
    np.testing.assert_allclose(
        M.trapezoid(acc, eps, axis=1), np.trapezoid(acc, eps, axis=1), rtol=1e-6
    )


def test_auc_acc_jit_equals_nojit_and_no_retrace():
    rng = np.random.default_rng(4)
    correct = jnp.asarray(rng.random((6, 30)) < 0.5)
    m = jnp.asarray(_random_masks(rng, 3, 30))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def sweep(eps):
        return M.auc_acc(correct, eps, m)

    for k in range(4):
        eps = jnp.sort(jnp.asarray(rng.random(6), jnp.float32)) + 0.01 * k
        np.testing.assert_allclose(sweep(eps), M.auc_acc(correct, eps, m), rtol=1e-6)
    before = metrics_robustness.auc_acc_kernel._cache_size()  # noqa: SLF001 - the kernel jit cache
    for k in range(3):
        M.auc_acc(correct, jnp.linspace(0.0, 0.1 * (k + 1), 6), m)
    assert metrics_robustness.auc_acc_kernel._cache_size() - before <= 1  # noqa: SLF001 - the kernel jit cache


def test_auc_acc_bad_grid():
    c = np.ones((3, 8), bool)
    with pytest.raises(ValueError, match="epsilons: expected a strictly increasing grid"):
        M.auc_acc(c, [0.0, 0.2, 0.1], MASKS)
    with pytest.raises(ValueError, match="epsilons: expected 3 points"):
        M.auc_acc(c, [0.0, 0.2], MASKS)
    with pytest.raises(ValueError, match="epsilons: expected finite"):
        M.auc_acc(c, [0.0, 0.2, np.inf], MASKS)
    with pytest.raises(ValueError, match="correct: expected at least 2 dims"):
        M.auc_acc(np.ones(8), [0.0, 0.1], MASKS)


def test_defense_parity_hand_values():
    auc = np.array([0.2, 0.5, 0.35])
    np.testing.assert_allclose(M.defense_parity(auc), 0.3, rtol=1e-6)
    np.testing.assert_allclose(M.defense_parity(auc, [True, False, True]), 0.15, rtol=1e-6)
    assert np.isnan(M.defense_parity(auc, [True, False, False]))
    # NaN (empty) groups are excluded
    np.testing.assert_allclose(M.defense_parity([0.2, np.nan, 0.35]), 0.15, rtol=1e-6)
    hi, lo = M.parity_pair(auc)
    assert (int(hi), int(lo)) == (1, 0)
    assert M.parity_pair_names(auc, ["a", "b", "c"], [True, False, True]) == ("c", "a")
    assert M.parity_pair_names(auc, ["a", "b", "c"], [True, False, False]) == (None, None)
    np.testing.assert_allclose(M.fpr_parity(auc), 0.3, rtol=1e-6)


def test_defense_parity_pairwise_oracle_batched():
    rng = np.random.default_rng(5)
    auc = rng.random((3, 4, 6)).astype(np.float32)
    valid = np.array([True, True, False, True, True, False])
    dp = M.defense_parity(auc, valid)
    assert dp.shape == (3, 4)
    idx = np.flatnonzero(valid)
    for i, j in np.ndindex(3, 4):
        pairs = max(auc[i, j, a] - auc[i, j, b] for a, b in itertools.permutations(idx, 2))
        np.testing.assert_allclose(dp[i, j], pairs, rtol=1e-6)
    assert np.all(np.asarray(dp) >= 0)


def test_empty_and_tiny_groups_excluded_from_parity():
    attrs = {"accent": np.array(["a"] * 5 + ["b"] * 4 + ["c"])}
    g = G.group_masks(attrs, "accent", min_size=2)
    assert g.small == ("c",)
    correct = np.zeros((2, 10), bool)
    correct[:, :5] = True  # a: acc 1, b: acc 0, c: acc 0
    correct[:, 9] = True  # c: acc 1 but tiny -> excluded from parity
    auc = M.auc_acc(correct, [0.0, 1.0], g.masks)
    np.testing.assert_allclose(auc, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(M.defense_parity(auc, g.valid), 1.0)
    masks = np.concatenate([np.asarray(g.masks), np.zeros((1, 10), bool)])
    with pytest.warns(RuntimeWarning, match="group index 3 has no examples"):
        auc = M.auc_acc(correct, [0.0, 1.0], masks)
    assert np.isnan(auc[3])
    np.testing.assert_allclose(M.defense_parity(auc, [True, True, False, True]), 1.0)


def test_auc_acc_by_attribute():
    rng = np.random.default_rng(6)
    n = 40
    attrs = {
        "gender": rng.choice(["f", "m"], n),
        "accent": rng.choice(["x", "y", "z"], n, p=[0.45, 0.5, 0.05]),
    }
    groups = G.all_groups(attrs, intersections=[("gender", "accent")], min_size=3)
    correct = rng.random((2, 4, n)) < 0.7
    eps = np.array([0.0, 0.01, 0.1, 0.3])
    out = M.auc_acc_by_attribute(correct, eps, groups)
    assert list(out) == ["accent", "gender", "gender x accent"]
    for name, gr in groups.items():
        s = out[name]
        assert s.names == gr.names and s.small == gr.small
        np.testing.assert_allclose(s.values, M.auc_acc(correct, eps, gr.masks), rtol=1e-6)
        np.testing.assert_allclose(s.parity, M.defense_parity(s.values, gr.valid), rtol=1e-6)
        assert s.values.shape == (2, len(gr.names)) and s.parity.shape == (2,)
    json.dumps(out["accent"].to_dict())


# -------------------------------------------------------------------------- fairness


def _fairness_oracle(yt, yp, masks, C, valid):
    """Per-class gaps with sklearn's confusion_matrix, one-vs-rest, per group."""
    sel = np.full((C, masks.shape[0]), np.nan)
    tpr, fpr = sel.copy(), sel.copy()
    for c in range(C):
        for g in range(masks.shape[0]):
            t, p = yt[masks[g]] == c, yp[masks[g]] == c
            tn, fp, fn, tp = confusion_matrix(t, p, labels=[False, True]).ravel()
            sel[c, g] = (tp + fp) / len(t)
            tpr[c, g] = tp / (tp + fn) if tp + fn else np.nan
            fpr[c, g] = fp / (fp + tn) if fp + tn else np.nan

    def gap(x):
        x = x[:, valid]
        out = np.full(C, np.nan)
        for c in range(C):
            f = x[c][np.isfinite(x[c])]
            if len(f) >= 2:
                out[c] = f.max() - f.min()
        return out

    s = sel[:, valid]
    prule = 100 * s.min(1) / s.max(1)
    return {
        "demographic_parity_difference": gap(sel),
        "true_positive_rate_difference": gap(tpr),
        "false_positive_rate_difference": gap(fpr),
        "equalized_odds_difference": np.fmax(gap(tpr), gap(fpr)),
        "p_rule": prule,
    }


def test_fairness_vs_sklearn_oracle_with_abstain():
    rng = np.random.default_rng(7)
    n, C = 120, 4
    yt = rng.integers(0, C, n)
    yp = np.where(rng.random(n) < 0.7, yt, rng.integers(-1, C, n))  # includes -1 abstain
    masks = _random_masks(rng, 3, n)
    valid = np.array([True, True, True])
    oracle = _fairness_oracle(yt, yp, masks, C, valid)
    per_class = M.fairness_metrics(yt, yp, masks, C, average=None)
    for k, v in oracle.items():
        np.testing.assert_allclose(per_class[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    mean = M.fairness_metrics(yt, yp, masks, C, average="mean")
    worst = M.fairness_metrics(yt, yp, masks, C, average="worst")
    for k, v in oracle.items():
        np.testing.assert_allclose(mean[k], np.nanmean(v), rtol=1e-5, err_msg=k)
        expect = np.nanmin(v) if k == "p_rule" else np.nanmax(v)
        np.testing.assert_allclose(worst[k], expect, rtol=1e-5, err_msg=k)
    # the individual functions agree with the combined one
    np.testing.assert_allclose(
        M.demographic_parity_difference(yt, yp, masks, C), mean["demographic_parity_difference"]
    )
    np.testing.assert_allclose(
        M.true_positive_rate_difference(yt, yp, masks, C), mean["true_positive_rate_difference"]
    )
    np.testing.assert_allclose(
        M.false_positive_rate_difference(yt, yp, masks, C), mean["false_positive_rate_difference"]
    )
    np.testing.assert_allclose(
        M.equalized_odds_difference(yt, yp, masks, C), mean["equalized_odds_difference"]
    )
    np.testing.assert_allclose(M.p_rule(yt, yp, masks, C), mean["p_rule"], rtol=1e-6)
    assert M.equal_opportunity_difference is M.true_positive_rate_difference


@pytest.mark.parametrize("seed", range(6))
def test_fairness_binary_matches_fairlearn(seed):
    # Binary labels with the default average="mean": the positive class only, as fairlearn.
    fm = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(seed)
    n, g = 60 + 20 * seed, 2 + seed % 3
    yt = rng.integers(0, 2, n)
    yp = np.where(rng.random(n) < 0.4 + 0.1 * seed, yt, rng.integers(0, 2, n))
    groups = rng.integers(0, g, n)
    groups[:g] = np.arange(g)  # every group present
    masks = groups[None, :] == np.arange(g)[:, None]
    out = M.fairness_metrics(yt, yp, masks, 2)
    kw = {"sensitive_features": groups}
    ref = {
        "demographic_parity_difference": fm.demographic_parity_difference(yt, yp, **kw),
        "true_positive_rate_difference": fm.equal_opportunity_difference(yt, yp, **kw),
        "false_positive_rate_difference": fm.false_positive_rate_difference(yt, yp, **kw),
        "equalized_odds_difference": fm.equalized_odds_difference(yt, yp, **kw),
        "p_rule": 100 * fm.demographic_parity_ratio(yt, yp, **kw),
    }
    for k, v in ref.items():
        np.testing.assert_allclose(out[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(
        M.equal_opportunity_difference(yt, yp, masks, 2),
        fm.true_positive_rate_difference(yt, yp, **kw),
        rtol=1e-5,
    )


def test_fairness_binary_mean_is_positive_class_multiclass_is_mean():
    # The audit's case: class-0 and class-1 values differ, the binary default is class 1.
    masks = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool)
    yt, yp = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0])
    per_class = M.fairness_metrics(yt, yp, masks, 2, average=None)
    mean = M.fairness_metrics(yt, yp, masks, 2)
    for k, v in per_class.items():
        np.testing.assert_allclose(mean[k], np.asarray(v)[1], err_msg=k)
    np.testing.assert_allclose(mean["true_positive_rate_difference"], 1.0)
    np.testing.assert_allclose(mean["p_rule"], 0.0)
    # The same labels declared 3-class: the mean over (non-NaN) classes, as before.
    mean3 = M.fairness_metrics(yt, yp, masks, 3)
    per3 = M.fairness_metrics(yt, yp, masks, 3, average=None)
    for k, v in per3.items():
        np.testing.assert_allclose(mean3[k], np.nanmean(np.asarray(v)), err_msg=k)


def test_fairness_hand_values_and_abstain_semantics():
    # group 0 = examples 0-1, group 1 = examples 2-3; binary labels
    masks = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool)
    yt = np.array([1, 0, 1, 0])
    yp = np.array([1, 0, -1, 0])  # group 1 abstains on its positive example
    out = M.fairness_metrics(yt, yp, masks, 2, average=None)
    # class 1: TPR 1 vs 0 -> gap 1; selection 0.5 vs 0 -> p-rule 0
    # class 0: abstain is a true negative for class 0: FPR 0 vs 0; TPR 1 vs 1
    np.testing.assert_allclose(out["true_positive_rate_difference"], [0.0, 1.0])
    np.testing.assert_allclose(out["false_positive_rate_difference"], [0.0, 0.0])
    np.testing.assert_allclose(out["demographic_parity_difference"], [0.0, 0.5])
    np.testing.assert_allclose(out["p_rule"], [100.0, 0.0])
    np.testing.assert_allclose(out["equalized_odds_difference"], [0.0, 1.0])


def test_fairness_invariants_and_eps_axis():
    rng = np.random.default_rng(8)
    n, C = 90, 3
    yt = rng.integers(0, C, n)
    masks = _random_masks(rng, 3, n)
    # a perfect classifier has equal TPR (1) and FPR (0) in every group
    perfect = M.fairness_metrics(yt, yt, masks, C)
    assert float(perfect["true_positive_rate_difference"]) == 0.0
    assert float(perfect["equalized_odds_difference"]) == 0.0
    # a leading epsilon axis (clean and attacked predictions) batches
    yp = np.stack([np.where(rng.random(n) < q, yt, -1) for q in (1.0, 0.7, 0.3)])
    ytb = np.broadcast_to(yt, yp.shape)
    batched = M.fairness_metrics(ytb, yp, masks, C)
    for k, v in batched.items():
        assert v.shape == (3,)
        for e in range(3):
            np.testing.assert_allclose(
                v[e], M.fairness_metrics(yt, yp[e], masks, C)[k], rtol=1e-6, err_msg=k
            )
        if k == "p_rule":
            assert np.all((np.asarray(v) >= 0) & (np.asarray(v) <= 100))
        else:
            assert np.all((np.asarray(v) >= 0) & (np.asarray(v) <= 1))
    jitted = jax.jit(M.fairness_metrics, static_argnames=("num_classes", "average"))
    jb = jitted(ytb, yp, masks, num_classes=C)
    for k in batched:
        np.testing.assert_allclose(jb[k], batched[k], rtol=1e-6)


def test_fairness_errors():
    yt = np.array([0, 1, 1, 0])
    masks = np.ones((1, 4), bool)
    with pytest.raises(ValueError, match=r"y_true: expected values in \[0, 2\)"):
        M.fairness_metrics(np.array([0, 2, 1, 0]), yt, masks, 2)
    with pytest.raises(ValueError, match=r"y_pred: expected values in \[-1, 2\)"):
        M.fairness_metrics(yt, np.array([0, -2, 1, 0]), masks, 2)
    with pytest.raises(ValueError, match="y_pred: expected the shape"):
        M.fairness_metrics(yt, yt[:3], masks, 2)
    with pytest.raises(ValueError, match="num_classes"):
        M.p_rule(yt, yt, masks, 1)
    with pytest.raises(ValueError, match=r"average: expected one of \['mean', 'worst', None\]"):
        M.p_rule(yt, yt, masks, 2, average="max")
    with pytest.raises(ValueError, match="y_true: expected integer"):
        M.p_rule(yt.astype(float), yt, masks, 2)


# --------------------------------------------------------------------------- Pearson


@pytest.mark.parametrize("m", [3, 5, 20, 200])
def test_pearsonr_vs_scipy(m):
    rng = np.random.default_rng(m)
    x = rng.normal(size=m)
    y = rng.normal(size=(4, m)) + np.linspace(0, 2, 4)[:, None] * x  # several strengths
    r, p = M.pearsonr(x.astype(np.float32), y.astype(np.float32))
    assert r.shape == p.shape == (4,)
    for i in range(4):
        ref = scipy.stats.pearsonr(x, y[i])
        np.testing.assert_allclose(r[i], ref.statistic, atol=2e-5)
        np.testing.assert_allclose(p[i], ref.pvalue, rtol=2e-3, atol=1e-6)
    with jax.enable_x64(True):
        r64, p64 = M.pearsonr(jnp.asarray(x), jnp.asarray(y))
        ref = scipy.stats.pearsonr(np.broadcast_to(x, y.shape), y, axis=-1)
        np.testing.assert_allclose(r64, ref.statistic, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(p64, ref.pvalue, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("m", [3, 7, 50, 500])
def test_pearsonr_float64_by_default_vs_scipy(m):
    # Concrete inputs are computed in float64 without an x64 context: r and p match
    # scipy to ~1e-12 (float32 p-values were off by up to 3e-4 relative).
    rng = np.random.default_rng(100 + m)
    x = rng.normal(size=m)
    y = rng.normal(size=(5, m)) + np.linspace(0, 1, 5)[:, None] * x
    r, p = M.pearsonr(x, y)
    assert r.dtype == p.dtype == np.float64
    ref = scipy.stats.pearsonr(np.broadcast_to(x, y.shape), y, axis=-1)
    np.testing.assert_allclose(r, ref.statistic, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-11, atol=1e-300)
    keep = rng.random(m) < 0.8
    keep[:3] = True
    rw, pw = M.pearsonr(x, y[0], where=keep)
    refw = scipy.stats.pearsonr(x[keep], y[0, keep])
    np.testing.assert_allclose([rw, pw], [refw.statistic, refw.pvalue], rtol=1e-11)


def test_pearsonr_hand_values_and_where():
    r, p = M.pearsonr(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert float(r) == pytest.approx(1.0) and float(p) == pytest.approx(0.0, abs=1e-6)
    r, _ = M.pearsonr(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    assert float(r) == pytest.approx(-1.0)
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=12), rng.normal(size=12)
    keep = rng.random(12) < 0.7
    r, p = M.pearsonr(x, y, where=keep)
    ref = scipy.stats.pearsonr(x[keep], y[keep])
    np.testing.assert_allclose([r, p], [ref.statistic, ref.pvalue], rtol=1e-4, atol=1e-6)
    rj, pj = jax.jit(M.pearsonr)(x, y)
    rn, pn = M.pearsonr(x, y)
    np.testing.assert_allclose([rj, pj], [rn, pn], rtol=1e-5)  # float32 under jit


def test_pearsonr_nan_cases():
    with pytest.warns(RuntimeWarning, match="constant"):
        r, p = M.pearsonr(np.ones(5), np.arange(5.0))
    assert np.isnan(r) and np.isnan(p)
    with pytest.warns(RuntimeWarning, match="at least 3"):
        r, p = M.pearsonr(np.array([1.0, 2.0]), np.array([2.0, 1.0]))
    assert np.isnan(r) and np.isnan(p)
    with pytest.raises(ValueError, match="same last axis"):
        M.pearsonr(np.ones(4), np.ones(5))


def test_correlation_matrix_and_size_correlation():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 15))  # interventions x models
    y = rng.normal(size=(5, 15))  # groups x models
    r, p = M.correlation_matrix(x, y)
    assert r.shape == (3, 5)
    for i, j in np.ndindex(3, 5):
        ref = scipy.stats.pearsonr(x[i], y[j])
        np.testing.assert_allclose(r[i, j], ref.statistic, atol=2e-5)
        np.testing.assert_allclose(p[i, j], ref.pvalue, rtol=2e-3, atol=1e-6)
    sizes = np.array([10, 40, 25, 5, 60])
    auc = rng.random((4, 5))  # [N, g]
    valid = np.array([True, True, True, False, True])
    r, p = M.size_correlation(sizes, auc, valid)
    for k in range(4):
        ref = scipy.stats.pearsonr(sizes[valid], auc[k, valid])
        np.testing.assert_allclose([r[k], p[k]], [ref.statistic, ref.pvalue], rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------- rejection


def _loop_rejection(stat, thresholds, masks, reject_if):
    out = np.zeros((*stat.shape[:-1], len(thresholds), masks.shape[0]))
    for idx in np.ndindex(stat.shape[:-1]):
        for a, t in enumerate(thresholds):
            for g in range(masks.shape[0]):
                s = stat[idx][masks[g]]
                rej = s > t if reject_if == "above" else s < t
                out[(*idx, a, g)] = rej.mean()
    return out


def test_alpha_grid():
    a = M.alpha_grid()
    assert a.shape == (1000,) and a.dtype == jnp.float32
    assert float(a[0]) == np.float32(0.001) and float(a[-1]) == 1.0
    assert np.all(np.diff(np.asarray(a)) > 0)
    np.testing.assert_allclose(M.alpha_grid(0.01, 0.05, 0.01), [0.01, 0.02, 0.03, 0.04, 0.05])
    with pytest.raises(ValueError, match=r"alpha_min: expected a number in \(0, 1\]"):
        M.alpha_grid(0.0)
    with pytest.raises(ValueError, match="alpha_max"):
        M.alpha_grid(0.1, 1.5)
    with pytest.raises(ValueError, match="alpha_min: expected < alpha_max"):
        M.alpha_grid(0.5, 0.1)
    with pytest.raises(ValueError, match="step: expected a positive"):
        M.alpha_grid(step=0.0)
    with pytest.raises(ValueError, match="whole number"):
        M.alpha_grid(0.001, 1.0, 0.3)


def test_rejection_curves_hand_values():
    p = np.array([0.5, 0.01, 0.2, 0.9, 0.0, 0.3, 1.0, 0.4], dtype=np.float32)
    t = np.array([0.1, 0.3, 0.95], dtype=np.float32)
    c = M.rejection_curves(p, t, MASKS, reject_if="above")
    # group 0 = {0.5, 0.01, 0.2}: > 0.1: 2/3, > 0.3: 1/3, > 0.95: 0
    # group 1 = {0.9, 0.0, 0.3}: 2/3, 1/3 (0.3 is not > 0.3), 0; group 2 = {1.0}: 1, 1, 1
    np.testing.assert_allclose(c, [[2 / 3, 2 / 3, 1], [1 / 3, 1 / 3, 1], [0, 0, 1]], rtol=1e-6)
    b = M.rejection_curves(p, t, MASKS, reject_if="below")
    np.testing.assert_allclose(b, [[1 / 3, 1 / 3, 0], [2 / 3, 1 / 3, 0], [1, 1, 0]], rtol=1e-6)


@pytest.mark.parametrize("reject_if", ["above", "below"])
def test_rejection_curves_vs_loop_with_ties(reject_if):
    rng = np.random.default_rng(11)
    t = np.asarray(M.alpha_grid(0.01, 1.0, 0.01))
    # half the statistics sit exactly on thresholds to exercise strict comparisons
    stat = np.where(
        rng.random((3, 2, 70)) < 0.5, rng.random((3, 2, 70)), rng.choice(t, (3, 2, 70))
    ).astype(np.float32)
    masks = _random_masks(rng, 4, 70)
    c = np.asarray(M.rejection_curves(stat, t, masks, reject_if=reject_if))
    assert c.shape == (3, 2, len(t), 4)
    np.testing.assert_allclose(c, _loop_rejection(stat, t, masks, reject_if), atol=1e-6)
    d = np.diff(c, axis=-2)
    assert np.all(d <= 1e-7) if reject_if == "above" else np.all(d >= -1e-7)
    assert np.all((c >= 0) & (c <= 1))


def test_auc_fpr_closed_form_and_curves_form():
    rng = np.random.default_rng(12)
    p = rng.random((4, 300)).astype(np.float32)  # leading N axis
    p[:, :20] = 0.0  # always accepted at alpha >= alpha_min
    masks = _random_masks(rng, 3, 300)
    alphas = M.alpha_grid()
    auc = np.asarray(M.auc_fpr(p, alphas, masks))
    closed = np.clip(p - 0.001, 0, 0.999).astype(np.float64)
    closed = np.stack([[closed[k, masks[g]].mean() for g in range(3)] for k in range(4)])
    # error of the trapezoid rule on a step function: at most one grid step per example
    assert np.max(np.abs(auc - closed)) <= 0.001 + 1e-6
    curves = M.rejection_curves(p, alphas, masks)
    np.testing.assert_allclose(M.auc_fpr(curves, alphas), auc, rtol=1e-6)
    np.testing.assert_allclose(
        auc, np.trapezoid(np.asarray(curves), np.asarray(alphas), axis=-2), rtol=1e-5
    )
    np.testing.assert_allclose(M.auc_fpr(p, alphas, masks, normalize=True), auc / 0.999, rtol=1e-6)
    np.testing.assert_allclose(M.fpr_parity(auc), auc.max(-1) - auc.min(-1), rtol=1e-6)


def test_auc_fpr_by_attribute_and_weights():
    rng = np.random.default_rng(13)
    n = 50
    attrs = {"gender": rng.choice(["f", "m"], n), "age": rng.choice(["20s", "30s", "40s"], n)}
    groups = G.all_groups(attrs)
    stat = rng.random((2, n)).astype(np.float32)
    alphas = M.alpha_grid(0.01, 1.0, 0.01)
    out = M.auc_fpr_by_attribute(stat, alphas, groups)
    for name, gr in groups.items():
        np.testing.assert_allclose(out[name].values, M.auc_fpr(stat, alphas, gr.masks), rtol=1e-6)
        np.testing.assert_allclose(out[name].parity, M.fpr_parity(out[name].values, gr.valid))
    w = rng.integers(0, 3, n)
    idx = np.repeat(np.arange(n), w)
    m = groups["age"].masks
    np.testing.assert_allclose(
        M.auc_fpr(stat, alphas, m, weights=w),
        M.auc_fpr(stat[:, idx], alphas, np.asarray(m)[:, idx]),
        rtol=1e-5,
    )


def test_rejection_jit_and_no_retrace():
    rng = np.random.default_rng(14)
    stat = jnp.asarray(rng.random((2, 40)), jnp.float32)
    m = jnp.asarray(_random_masks(rng, 3, 40))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def sweep(t):
        return M.auc_fpr(stat, t, m)

    for k in range(3):
        t = jnp.linspace(0.01 * (k + 1), 1.0, 100)
        np.testing.assert_allclose(sweep(t), M.auc_fpr(stat, t, m), rtol=1e-6)
    before = metrics_rejection.rejection_kernel._cache_size()  # noqa: SLF001 - the kernel jit cache
    for k in range(3):
        M.rejection_curves(stat, jnp.linspace(0.1 * k, 1.0, 50), m, reject_if="below")
    assert metrics_rejection.rejection_kernel._cache_size() - before <= 1  # noqa: SLF001 - the kernel jit cache


def test_rejection_errors_and_empty_group():
    p = np.array([0.1, 0.5, 0.9])
    m = np.array([[1, 1, 1], [0, 0, 0]], bool)
    with pytest.raises(ValueError, match=r"reject_if: expected one of \['above', 'below'\]"):
        M.rejection_curves(p, [0.1, 0.2], m[:1], reject_if="over")
    with pytest.raises(ValueError, match="thresholds: expected a strictly increasing grid"):
        M.auc_fpr(p, [0.2, 0.1], m[:1])
    with pytest.raises(ValueError, match="thresholds: expected a 1-D grid"):
        M.rejection_curves(p, [0.2], m[:1])
    with pytest.raises(ValueError, match="thresholds: expected 4 points"):
        M.auc_fpr(np.zeros((2, 4, 1)), [0.1, 0.2, 0.3])
    with pytest.warns(RuntimeWarning, match="group index 1"):
        c = M.rejection_curves(p, [0.2, 0.6], m)
    assert np.all(np.isnan(c[:, 1]))
