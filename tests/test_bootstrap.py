"""Bootstrap intervals: resampling invariants, equality with a looped bootstrap, coverage."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from fairrobust import groups as G
from fairrobust import metrics as M
from fairrobust.metrics import bootstrap as metrics_bootstrap


def _masks(labels, g):
    return np.asarray(labels)[None, :] == np.arange(g)[:, None]


def test_resample_weights_stratified_invariants():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)  # group 3 is left out of the masks: "no group" stratum
    masks = _masks(labels, 3)
    w = np.asarray(M.resample_weights(jax.random.key(0), masks, num_resamples=50))
    assert w.shape == (50, 60) and w.dtype == np.float32
    assert np.all(w >= 0) and np.all(w == np.round(w))
    for g in range(4):  # every stratum keeps its size in every resample
        np.testing.assert_array_equal(w[:, labels == g].sum(1), (labels == g).sum())
    # not the identity: resamples differ from each other and from all-ones
    assert np.any(w != 1) and len({tuple(r) for r in w}) == 50
    # same key, same weights
    w2 = M.resample_weights(jax.random.key(0), masks, num_resamples=50)
    np.testing.assert_array_equal(w, w2)


def test_resample_weights_overlapping_groups_use_membership_patterns():
    rng = np.random.default_rng(1)
    n = 80
    attrs = {"gender": rng.choice(["f", "m"], n), "age": rng.choice(["20s", "30s", "40s"], n)}
    gs = G.all_groups(attrs)
    masks = np.concatenate([np.asarray(g.masks) for g in gs.values()])
    w = np.asarray(M.resample_weights(jax.random.key(1), masks, num_resamples=20))
    sizes = masks.sum(1)
    np.testing.assert_array_equal(w @ masks.T.astype(np.float32), np.broadcast_to(sizes, (20, 5)))


def test_cluster_bootstrap_by_speaker():
    labels = np.repeat([0, 0, 0, 1, 1], 4)  # 5 speakers x 4 clips; 3 speakers in group 0
    speakers = np.repeat(["s1", "s2", "s3", "s4", "s5"], 4)
    masks = _masks(labels, 2)
    w = np.asarray(
        M.resample_weights(jax.random.key(2), masks, num_resamples=200, speakers=speakers)
    )
    per_speaker = w.reshape(200, 5, 4)
    assert np.all(per_speaker == per_speaker[..., :1])  # whole speakers are drawn
    draws = per_speaker[..., 0]
    np.testing.assert_array_equal(draws[:, :3].sum(1), 3)  # 3 speaker draws in group 0
    np.testing.assert_array_equal(draws[:, 3:].sum(1), 2)
    assert draws.max() >= 2  # some speaker drawn twice


def _numpy_gap_interval(est, reps, level):
    """Plain-NumPy loop of the parity-gap interval: sup-t band over group pairs, then
    [max distance of a pair interval from 0, max |bound|] (per leading index)."""
    lows, highs = [], []
    for m in range(est.shape[0]):
        pairs = [(i, j) for i in range(est.shape[1]) for j in range(est.shape[1]) if i != j]
        d = np.array([est[m, i] - est[m, j] for i, j in pairs])
        ds = np.array([[reps[r, m, i] - reps[r, m, j] for i, j in pairs] for r in range(len(reps))])
        se = ds.std(axis=0)
        t = np.where(se > 0, np.abs(ds - d) / np.where(se > 0, se, 1), 0).max(axis=1)
        c = np.quantile(t, level)
        lo, hi = d - c * se, d + c * se
        dist0 = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))
        lows.append(dist0.max())
        highs.append(np.maximum(np.abs(lo), np.abs(hi)).max())
    return np.array(lows), np.array(highs)


def test_bootstrap_equals_looped_bootstrap_with_same_indices():
    rng = np.random.default_rng(3)
    n = 40
    labels = rng.integers(0, 3, n)
    masks = _masks(labels, 3)
    eps = (0.0, 0.01, 0.1)
    correct = rng.random((2, 3, n)) < 0.6  # [models, eps, n]
    stat = M.AucAccStat(eps, valid=[True, True, True])
    key = jax.random.key(4)
    res = M.bootstrap_ci(
        stat, correct, masks, key=key, num_resamples=32, level=0.9, return_samples=True
    )
    w = np.asarray(M.resample_weights(key, masks, num_resamples=32)).astype(int)
    loop_auc, loop_dp = [], []
    for r in range(32):
        idx = np.repeat(np.arange(n), w[r])  # copy the data, no weights
        auc = np.asarray(M.auc_acc(correct[..., idx], np.asarray(eps), masks[:, idx]))
        loop_auc.append(auc)
        loop_dp.append(np.asarray(M.defense_parity(auc)))
    loop_auc, loop_dp = np.stack(loop_auc), np.stack(loop_dp)
    np.testing.assert_allclose(res.samples["auc_acc"], loop_auc, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.samples["defense_parity"], loop_dp, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        res.lower["auc_acc"], np.quantile(loop_auc, 0.05, axis=0), rtol=1e-5, atol=1e-7
    )
    est_auc = np.asarray(M.auc_acc(correct, np.asarray(eps), masks), np.float64)
    ref_lo, ref_hi = _numpy_gap_interval(est_auc, loop_auc.astype(np.float64), 0.9)
    np.testing.assert_allclose(res.lower["defense_parity"], ref_lo, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.upper["defense_parity"], ref_hi, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.estimate["auc_acc"], est_auc, rtol=1e-6)
    assert res.estimate["defense_parity"].shape == (2,)
    assert np.all(np.asarray(res.lower["auc_acc"]) <= np.asarray(res.upper["auc_acc"]))
    # batched evaluation (lax.map) gives the same replicates for the same key
    res_b = M.bootstrap_ci(
        stat, correct, masks, key=key, num_resamples=32, batch_size=8, return_samples=True
    )
    np.testing.assert_allclose(res_b.samples["auc_acc"], res.samples["auc_acc"], rtol=1e-6)


def test_bootstrap_auc_fpr_and_group_rates():
    rng = np.random.default_rng(5)
    n = 50
    masks = _masks(rng.integers(0, 2, n), 2)
    p = rng.random((2, n)).astype(np.float32)
    alphas = M.alpha_grid(0.01, 1.0, 0.01)
    res = M.bootstrap_ci(M.AucFprStat(alphas), p, masks, key=jax.random.key(6), num_resamples=100)
    np.testing.assert_allclose(res.estimate["auc_fpr"], M.auc_fpr(p, alphas, masks), rtol=1e-6)
    assert res.lower["fpr_parity"].shape == (2,)
    assert np.all(np.asarray(res.lower["auc_fpr"]) <= np.asarray(res.estimate["auc_fpr"]) + 1e-6)
    sig = inspect.signature(M.bootstrap_ci)
    assert sig.parameters["num_resamples"].default == 1000
    assert sig.parameters["level"].default == 0.95


def test_bootstrap_does_not_recompile_across_keys():
    rng = np.random.default_rng(8)
    masks = _masks(np.repeat([0, 1], 120), 2)
    v = rng.random(240) < 0.5
    res = M.bootstrap_ci(M.GroupRateStat(), v, masks, key=jax.random.key(0), num_resamples=200)
    assert res.samples is None and res.level == 0.95
    np.testing.assert_allclose(res.estimate["rates"], M.group_rates(v, masks))
    before = metrics_bootstrap._bootstrap._cache_size()  # noqa: SLF001 - the kernel jit cache
    for k in range(1, 4):
        M.bootstrap_ci(
            M.GroupRateStat(),  # equal by value: same compiled computation
            v,
            masks,
            key=jax.random.key(k),
            num_resamples=200,
            level=0.8 + 0.05 * k,
        )
    assert metrics_bootstrap._bootstrap._cache_size() == before  # noqa: SLF001 - the kernel jit cache


def test_small_groups_listed_with_degenerate_intervals():
    attrs = {"accent": np.array(["a"] * 10 + ["b"] * 10 + ["c"])}
    g = G.group_masks(attrs, "accent", min_size=2)
    v = np.r_[np.ones(6), np.zeros(4), np.ones(3), np.zeros(7), 1.0]
    res = M.bootstrap_ci(
        M.GroupRateStat(g.valid), v, g.masks, key=jax.random.key(9), num_resamples=200
    )
    np.testing.assert_array_equal(res.clusters_per_group, [10, 10, 1])
    assert res.estimate["rates"].shape == (3,)  # the small group is kept
    # one cluster: no interval (a zero-width one would say nothing about uncertainty)
    assert np.isnan(res.lower["rates"][2]) and np.isnan(res.upper["rates"][2])
    # parity excludes it: 0.6 - 0.3 rather than 1.0 - 0.3
    np.testing.assert_allclose(res.estimate["parity"], 0.3, rtol=1e-6)


def test_bootstrap_coverage_of_group_rates():
    """95% percentile intervals cover the true rate at about the nominal level.

    200 seeded synthetic datasets, two groups each (n = 120, true rates 0.3 and
    0.8), 200 bootstrap resamples: 400 independent intervals. If the true coverage
    is anywhere in [0.935, 0.96], the count lies in [358, 395] except with
    probability < 1.3e-3 (binomial tails, checked below with scipy).
    """
    k, lo_count, hi_count = 400, 358, 395
    assert scipy.stats.binom.cdf(lo_count - 1, k, 0.935) < 1e-3
    assert scipy.stats.binom.sf(hi_count, k, 0.96) < 1e-3
    rates = np.array([0.3, 0.8])
    labels = np.repeat([0, 1], 120)
    masks = _masks(labels, 2)
    stat = M.GroupRateStat()
    covered = 0
    for seed in range(200):
        data_rng = np.random.default_rng(1000 + seed)
        v = data_rng.random(240) < rates[labels]
        res = M.bootstrap_ci(stat, v, masks, key=jax.random.key(seed), num_resamples=200)
        lower, upper = np.asarray(res.lower["rates"]), np.asarray(res.upper["rates"])
        covered += int(np.sum((lower <= rates) & (rates <= upper)))
    assert lo_count <= covered <= hi_count, covered


def test_cluster_bootstrap_is_wider_with_speaker_effects():
    rng = np.random.default_rng(10)
    speakers = np.repeat(np.arange(12), 20)
    labels = (speakers >= 6).astype(int)
    masks = _masks(labels, 2)
    ability = rng.uniform(0.1, 0.9, 12)[speakers]  # strong per-speaker effect
    v = rng.random(240) < ability
    iid = M.bootstrap_ci(M.GroupRateStat(), v, masks, key=jax.random.key(11), num_resamples=200)
    clu = M.bootstrap_ci(
        M.GroupRateStat(),
        v,
        masks,
        key=jax.random.key(11),
        num_resamples=200,
        speakers=speakers.astype(str),
    )
    assert clu.clusters == "speaker" and iid.clusters == "example"
    width_iid = np.asarray(iid.upper["rates"]) - np.asarray(iid.lower["rates"])
    width_clu = np.asarray(clu.upper["rates"]) - np.asarray(clu.lower["rates"])
    assert np.all(width_clu > 1.3 * width_iid)


def test_bootstrap_errors():
    masks = np.ones((1, 5), bool)
    v = np.ones(5)
    stat = M.GroupRateStat()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"level: expected a number in \(0, 1\)"):
        M.bootstrap_ci(stat, v, masks, key=key, level=1.5)
    with pytest.raises(ValueError, match="num_resamples: expected a positive integer"):
        M.bootstrap_ci(stat, v, masks, key=key, num_resamples=0)
    with pytest.raises(ValueError, match="batch_size"):
        M.bootstrap_ci(stat, v, masks, key=key, batch_size=0)
    with pytest.raises(ValueError, match=r"speakers: expected shape \(5,\)"):
        M.bootstrap_ci(stat, v, masks, key=key, speakers=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"strata: expected shape \(5,\)"):
        M.resample_weights(key, masks, strata=[0, 1])
    with pytest.raises(ValueError, match="epsilons: expected a strictly increasing"):
        M.AucAccStat((0.1, 0.0))
    with pytest.raises(ValueError, match="reject_if"):
        M.AucFprStat((0.1, 0.2), reject_if="over")
    with pytest.raises(ValueError, match="n: give masks, strata or n"):
        M.resample_weights(key)
    w = M.resample_weights(jnp.asarray(jax.random.PRNGKey(0)), n=5, num_resamples=3)
    assert w.shape == (3, 5) and np.all(np.asarray(w).sum(1) == 5)


@pytest.mark.parametrize("reject_if", ["above", "below"])
@pytest.mark.parametrize("normalize", [False, True])
def test_auc_fpr_stat_linear_form_equals_histogram_form(reject_if, normalize):
    # AucFprStat uses AUC_g(w) = sum_i w_i m_gi c_i / sum_i w_i m_gi; the histogram
    # sweep (auc_fpr) is the reference, on stats that hit grid points exactly,
    # fall outside the grid, and with integer bootstrap multiplicities.
    rng = np.random.default_rng(11)
    n = 400
    alphas = np.asarray(M.alpha_grid(0.01, 0.9, 0.01), np.float32)
    p = rng.random((3, n)).astype(np.float32) * 1.2 - 0.1
    p[:, :40] = rng.choice(alphas, (3, 40))
    masks = _masks(rng.integers(0, 3, n), 3)
    stat = M.AucFprStat(tuple(alphas), reject_if=reject_if, normalize=normalize)
    t = jnp.asarray(alphas)
    for w in (None, rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float32)):
        got = stat(jnp.asarray(p), jnp.asarray(masks), None if w is None else jnp.asarray(w))
        ref_w = jnp.ones((3, n)) if w is None else jnp.broadcast_to(jnp.asarray(w), (3, n))
        ref = M.auc_fpr(
            jnp.asarray(p),
            t,
            jnp.asarray(masks),
            reject_if=reject_if,
            normalize=normalize,
            weights=ref_w,
        )
        np.testing.assert_allclose(
            np.asarray(got["auc_fpr"]), np.asarray(ref), rtol=2e-5, atol=1e-6
        )
