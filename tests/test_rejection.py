"""Tests for fairrobust.neural_rejection (RBF-SVM neural rejection on features)."""

import numpy as np
import pytest

from fairrobust.neural_rejection import NeuralRejection


def blobs(n_per=60, d=4, k=3, spread=0.5, seed=0):
    """k well-separated Gaussian blobs in d dimensions."""
    rng = np.random.default_rng(seed)
    centers = 4.0 * np.eye(k, d)
    x = np.concatenate([c + spread * rng.standard_normal((n_per, d)) for c in centers])
    y = np.repeat(np.arange(k), n_per)
    return x, y


@pytest.fixture(scope="module")
def fitted():
    x, y = blobs()
    return NeuralRejection().fit(x, y, seed=0), x, y


def test_separable_blobs_high_accuracy(fitted):
    nr, _, _ = fitted
    xt, yt = blobs(n_per=40, seed=1)
    assert nr.accuracy(xt, yt) > 0.95
    s = nr.scores(xt)
    assert s.shape == (120, 3)
    np.testing.assert_allclose(s.sum(1), 1.0, atol=1e-9)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_array_equal(nr.predict(xt, 0.0), np.argmax(s, 1))


def test_rejection_rate_monotone_in_threshold(fitted):
    nr, _, _ = fitted
    xt, _ = blobs(n_per=40, spread=1.2, seed=2)  # noisier, so scores spread out
    thresholds = np.linspace(0.0, 1.0, 21)
    rates = [np.mean(nr.predict(xt, t) == -1) for t in thresholds]
    assert np.all(np.diff(rates) >= 0)
    assert rates[0] == 0.0 and rates[-1] > 0.9
    stat = nr.rejection_stat(xt)
    np.testing.assert_array_equal(nr.predict(xt, 0.7) == -1, stat < 0.7)


def test_subsample_is_seeded_and_deterministic():
    x, y = blobs(n_per=100)
    a = NeuralRejection().fit(x, y, max_train=90, seed=3)
    b = NeuralRejection().fit(x, y, max_train=90, seed=3)
    c = NeuralRejection().fit(x, y, max_train=90, seed=4)
    assert a.num_train == 90
    xt, _ = blobs(n_per=10, seed=5)
    np.testing.assert_array_equal(a.scores(xt), b.scores(xt))
    assert not np.array_equal(a.scores(xt), c.scores(xt))


def test_far_points_get_lower_scores(fitted):
    # CAP behaviour of the RBF kernel: far from all training data every kernel term
    # vanishes, the SVM scores abate to their intercepts (so they no longer depend on x)
    # and the top score falls below that of in-distribution points.
    nr, x, _ = fitted
    rng = np.random.default_rng(7)
    far = 40.0 + 5.0 * rng.standard_normal((30, 4))
    far_stat = nr.rejection_stat(far)
    in_stat = nr.rejection_stat(x)
    assert far_stat.max() < np.median(in_stat)
    np.testing.assert_allclose(far_stat, far_stat[0], atol=1e-9)
    assert np.mean(in_stat > far_stat[0]) > 0.9


def test_errors():
    nr = NeuralRejection()
    with pytest.raises(ValueError, match="not fitted"):
        nr.scores(np.zeros((2, 4)))
    x, y = blobs(n_per=10)
    with pytest.raises(ValueError, match="labels"):
        nr.fit(x, y[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nr.fit(bad, y)
    with pytest.raises(ValueError, match="two classes"):
        nr.fit(x, np.zeros_like(y))
    with pytest.raises(ValueError, match="max_train"):
        nr.fit(x, y, max_train=1)
    nr.fit(x, y)
    with pytest.raises(ValueError, match="columns"):
        nr.scores(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        nr.predict(bad, 0.5)
    with pytest.raises(ValueError, match="shape"):
        nr.rejection_stat(np.zeros(4))
