"""Certificates per noise family, sigma sweeps of sampling / PREDICT / CERTIFY."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as opt
import scipy.stats as st

from fairrobust import smoothing as S

T = 16
P = np.array([0.5, 0.5001, 0.6, 0.75, 0.9, 0.99, 0.999999])


def axis_apply(variables, x):
    """Two-class linear model on the first coordinate: class 1 iff x[0] + b > 0."""
    b = variables
    z = x[:, 0] + b
    return jnp.stack([-z, z], axis=-1)


# ---------------------------------------------------------------- independent formulas
# Each reference solves the 1-D Neyman-Pearson problem directly with scipy's
# distributions: the worst set A of mass p under the noise, shifted by delta along one
# coordinate, keeps mass > 1/2 iff delta < the radius. For L1 under Laplace and uniform
# noise the worst L1 shift is along one coordinate (Teng et al. 2020; Yang et al. 2020).


def laplace_ref(p, sigma):
    # likelihood ratio f(z - d) / f(z) increases in z: A = (-inf, t], t = F^-1(p);
    # shifted mass F(t - d) > 1/2 iff d < t.
    return st.laplace.ppf(p, scale=sigma / math.sqrt(2))


def uniform_l1_ref(p, sigma):
    lam = sigma * math.sqrt(3)
    # A takes the strip [-lam, -lam + d) that leaves the support first: mass d / (2 lam)
    # lost; solve p - d / (2 lam) = 1/2 with a root finder.
    return np.array(
        [
            0.0
            if q == 0.5
            else opt.brentq(
                lambda d, q=q: q - st.uniform.cdf(-lam + d, -lam, 2 * lam) - 0.5, 0, 2 * lam
            )
            for q in p
        ]
    )


def uniform_linf_ref(p, sigma, d):
    lam = sigma * math.sqrt(3)
    # shift every coordinate by r: the shifted cube keeps (1 - r / 2 lam)^d of the mass.
    return np.array(
        [
            0.0
            if q == 0.5
            else opt.brentq(lambda r, q=q: q - (1 - (1 - r / (2 * lam)) ** d) - 0.5, 0, 2 * lam)
            for q in p
        ]
    )


@pytest.mark.parametrize("sigma", [0.05, 0.25, 1.0])
def test_builtin_certificates_match_independent_formulas(sigma):
    r, norm = S.certified_radius(P, sigma, T, noise="gaussian")
    assert norm == "l2"
    np.testing.assert_allclose(r, sigma * st.norm.ppf(P), rtol=1e-12, atol=1e-15)
    r, norm = S.certified_radius(P, sigma, T, noise="gaussian", norm="linf")
    assert norm == "linf"
    np.testing.assert_allclose(r, sigma * st.norm.ppf(P) / math.sqrt(T), rtol=1e-12)
    r, norm = S.certified_radius(P, sigma, T, noise="laplace")
    assert norm == "l1"
    np.testing.assert_allclose(r, laplace_ref(P, sigma), rtol=1e-9, atol=1e-12)
    # the two-branch formula, written out
    lam = sigma / math.sqrt(2)
    two_branch = np.maximum(lam / 2 * np.log(P / (1 - P)), -lam * np.log(2 * (1 - P)))
    np.testing.assert_allclose(r, two_branch, rtol=1e-12)
    r, norm = S.certified_radius(P, sigma, T, noise="uniform")
    assert norm == "l1"
    np.testing.assert_allclose(r, uniform_l1_ref(P, sigma), rtol=1e-8, atol=1e-12)
    for d in (1, 3, 8000):
        r, norm = S.certified_radius(P, sigma, d, noise="uniform", norm="linf")
        assert norm == "linf"
        np.testing.assert_allclose(r, uniform_linf_ref(P, sigma, d), rtol=1e-7, atol=1e-12)


def test_radius_is_zero_below_one_half_and_monotone():
    p = np.linspace(0.0, 0.999, 400)
    for noise in ("gaussian", "laplace", "uniform"):
        r, _ = S.certified_radius(p, 0.1, T, noise=noise)
        assert np.all(r[p < 0.5] == 0) and np.all(np.diff(r) >= 0) and np.all(np.isfinite(r))


def _exact_pa(noise, margin, sigma):
    """P(x0 + b + sigma * eps_0 > 0) for the axis classifier, closed form per family."""
    if noise == "gaussian":
        return st.norm.cdf(margin / sigma)
    if noise == "laplace":
        return st.laplace.cdf(margin, scale=sigma / math.sqrt(2))
    return st.uniform.cdf(margin, -sigma * math.sqrt(3), 2 * sigma * math.sqrt(3))


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
def test_axis_linear_classifier_radius_is_its_distance(noise):
    """With the exact pA, every certificate is tight for an axis-aligned hyperplane: the
    certified radius equals the distance to the boundary (the same in L1, L2, L-inf)."""
    sigma = 0.3
    margin = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
    pa = _exact_pa(noise, margin, sigma)
    ok = pa < 1  # uniform noise certifies exactly up to its support
    r, _ = S.certified_radius(pa[ok], sigma, 1, noise=noise)
    np.testing.assert_allclose(r, margin[ok], rtol=1e-9)


@pytest.mark.parametrize("noise, norm", [("gaussian", "l2"), ("laplace", "l1"), ("uniform", "l1")])
def test_certify_per_family_is_valid_and_close_on_a_linear_classifier(noise, norm):
    sigma = 0.3
    margins = np.array([0.1, 0.2, 0.4])
    x = np.zeros((3, T), np.float32)
    x[:, 0] = margins
    r = S.certify(
        axis_apply, jnp.float32(0.0), jnp.asarray(x), jax.random.key(3), n0=200, n=20_000,
        alpha=0.001, sigma=sigma, num_classes=2, noise=noise, chunk_size=500,
    )  # fmt: skip
    assert r.norm == norm
    assert np.all(r.pred == 1)
    # valid (below the distance, w.p. >= 1 - alpha) and close (within 20%)
    assert np.all(r.radius <= margins + 1e-9)
    assert np.all(r.radius >= 0.8 * margins), (r.radius, margins)
    expect, _ = S.certified_radius(r.p_a_lower, sigma, T, noise=noise)
    np.testing.assert_allclose(r.radius, expect)


def test_certify_refuses_a_family_without_certificate():
    S.register_noise(
        "test-rademacher", lambda k, s, d: jax.random.rademacher(k, s, d), overwrite=True
    )
    x = jnp.zeros((2, T))
    with pytest.raises(ValueError, match=r"test-rademacher.*certificate"):
        S.certify(axis_apply, jnp.float32(0.1), x, jax.random.key(0), n0=5, n=10, alpha=0.01,
                  sigma=0.1, num_classes=2, noise="test-rademacher")  # fmt: skip
    with pytest.raises(ValueError, match="certificate"):
        S.certify(axis_apply, jnp.float32(0.1), x, jax.random.key(0), n0=5, n=10, alpha=0.01,
                  sigma=0.1, num_classes=2, noise="laplace", norm="l2")  # fmt: skip
    # sampling still works without a certificate
    c = S.sample_counts(axis_apply, jnp.float32(0.1), x, jax.random.key(0), num_samples=8,
                        sigma=0.1, num_classes=2, noise="test-rademacher")  # fmt: skip
    assert c.shape == (2, 2)
    # registering a certificate makes certify accept it (here: Rademacher noise of
    # std sigma is bounded by sigma per coordinate, so the uniform-cube L1 bound is NOT
    # its certificate; a test certificate that certifies nothing is still valid).
    zero = S.Certificate("l1", lambda p, s, d: np.zeros_like(p), "certifies nothing")
    S.register_noise("test-rademacher", lambda k, s, d: jax.random.rademacher(k, s, d),
                     certificate=zero, overwrite=True)  # fmt: skip
    r = S.certify(axis_apply, jnp.float32(0.1), x, jax.random.key(0), n0=5, n=50, alpha=0.01,
                  sigma=0.1, num_classes=2, noise="test-rademacher")  # fmt: skip
    assert r.norm == "l1" and np.all(r.radius == 0)
    with pytest.raises(ValueError, match=r"certificate\.norm"):
        bad = S.Certificate("l3", lambda p, s, d: p)
        S.register_noise("test-bad", lambda k, s, d: jax.random.normal(k, s, d),
                         certificate=bad, overwrite=True)  # fmt: skip


def test_sigma_sweep_compiles_once_and_equals_per_sigma_calls():
    traced = chex.assert_max_traces(n=1)(lambda v, x: axis_apply(v, x))
    x = jnp.asarray(
        np.linspace(-0.2, 0.3, 6, dtype=np.float32)[:, None] * np.ones((1, T), np.float32)
    )
    sigmas = [0.05, 0.2, 0.5]
    sweep = S.sample_counts(traced, jnp.float32(0.0), x, jax.random.key(1), num_samples=64,
                            sigma=sigmas, num_classes=2, checkpoints=(16, 64))  # fmt: skip
    assert sweep.shape == (3, 2, 6, 2)
    # a second sweep with other values: same program, no retrace
    S.sample_counts(traced, jnp.float32(0.0), x, jax.random.key(1), num_samples=64,
                    sigma=[0.1, 0.3, 0.7], num_classes=2, checkpoints=(16, 64))  # fmt: skip
    for i, s in enumerate(sigmas):
        one = S.sample_counts(axis_apply, jnp.float32(0.0), x, jax.random.key(1), num_samples=64,
                              sigma=s, num_classes=2, checkpoints=(16, 64))  # fmt: skip
        np.testing.assert_array_equal(sweep[i], one)
    # PREDICT over the sweep: shapes broadcast
    pred = S.smoothed_predict(np.asarray(sweep), 0.05)
    assert pred.shape == (3, 2, 6)


def test_certify_sigma_sweep_equals_per_sigma_certify():
    x = jnp.asarray(
        np.linspace(0.02, 0.3, 4, dtype=np.float32)[:, None] * np.ones((1, T), np.float32)
    )
    kw = dict(n0=20, n=400, alpha=0.01, num_classes=2, noise="laplace", chunk_size=50)
    sweep = S.certify(
        axis_apply, jnp.float32(0.0), x, jax.random.key(5), sigma=[0.1, 0.3, 0.6], **kw
    )
    assert sweep.radius.shape == (3, 4) and sweep.norm == "l1"
    np.testing.assert_array_equal(sweep.sigma, [0.1, 0.3, 0.6])
    for i, s in enumerate((0.1, 0.3, 0.6)):
        one = S.certify(axis_apply, jnp.float32(0.0), x, jax.random.key(5), sigma=s, **kw)
        np.testing.assert_array_equal(sweep.pred[i], one.pred)
        np.testing.assert_allclose(sweep.radius[i], one.radius, rtol=1e-12)


@pytest.mark.parametrize("bad", [[], [0.1, -0.2], [[0.1]], [0.1, float("nan")]])
def test_bad_sigma_sweep_raises(bad):
    with pytest.raises(ValueError, match="sigma"):
        S.sample_counts(axis_apply, jnp.float32(0.0), jnp.zeros((2, T)), jax.random.key(0),
                        num_samples=4, sigma=bad, num_classes=2)  # fmt: skip
