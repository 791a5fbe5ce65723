"""PGD / FGSM: ball and box invariants, loss increase, jit, vmapped sweeps, no retrace, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fairrobust import attacks, models

T = 7000
B = 4


@pytest.fixture(scope="module")
def setup():
    model = models.make_model("m5", 3, width=4)
    v = models.init_variables(model, jax.random.key(0), T)
    x = jax.random.uniform(jax.random.key(1), (B, T), minval=-0.99, maxval=0.99)
    x = x.at[0, :10].set(1.0)  # samples on the box boundary
    y = jnp.arange(B) % 3
    return models.logits_fn(model), v, x, y


def _ce(apply_fn, v, x, y):
    logits = jax.jit(apply_fn)(v, x)
    return np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, y))


@pytest.mark.parametrize("random_start", [False, True])
def test_linf_invariants(setup, random_start):
    f, v, x, y = setup
    eps = 0.02
    x_adv = attacks.pgd(f, v, x, y, eps, jax.random.key(3), num_steps=5, random_start=random_start)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(jnp.max(jnp.abs(x_adv - x))) <= eps + 1e-6
    assert float(x_adv.min()) >= -1.0 and float(x_adv.max()) <= 1.0
    assert np.all(_ce(f, v, x_adv, y) >= _ce(f, v, x, y) - 1e-5)
    assert np.all(np.isfinite(np.asarray(x_adv)))


def test_l2_invariants(setup):
    f, v, x, y = setup
    eps = 0.5
    for rs in (False, True):
        x_adv = attacks.pgd(f, v, x, y, eps, jax.random.key(4), num_steps=5, norm="l2",
                            random_start=rs)  # fmt: skip
        norms = np.linalg.norm(np.asarray(x_adv - x), axis=1)
        assert np.all(norms <= eps * (1 + 1e-5))
        assert float(jnp.abs(x_adv).max()) <= 1.0
        assert np.all(_ce(f, v, x_adv, y) >= _ce(f, v, x, y) - 1e-5)
    # a single L2 step of a budget well inside the box moves by exactly rel_step * eps
    x_mid = 0.5 * x
    one = attacks.pgd(f, v, x_mid, y, 0.1, jax.random.key(0), num_steps=1, norm="l2")
    np.testing.assert_allclose(np.linalg.norm(np.asarray(one - x_mid), axis=1), 0.02, rtol=1e-3)


def test_fgsm_is_one_full_step(setup):
    f, v, x, y = setup
    eps = 0.01
    x_mid = 0.5 * x
    adv = attacks.fgsm(f, v, x_mid, y, eps)
    g = jax.jit(
        jax.grad(lambda xx: optax.softmax_cross_entropy_with_integer_labels(f(v, xx), y).sum())
    )(x_mid)
    np.testing.assert_allclose(adv, x_mid + eps * jnp.sign(g), atol=1e-7)
    # and equals PGD with one step of size eps
    same = attacks.pgd(f, v, x_mid, y, eps, jax.random.key(0), num_steps=1, rel_step=1.0)
    np.testing.assert_array_equal(adv, same)


def test_eps_zero_is_identity(setup):
    f, v, x, y = setup
    for norm in attacks.NORMS:
        for rs in (False, True):
            out = attacks.pgd(f, v, x, y, 0.0, jax.random.key(1), num_steps=3, norm=norm,
                              random_start=rs)  # fmt: skip
            np.testing.assert_array_equal(out, x)


def test_jit_equals_no_jit(setup):
    f, v, x, y = setup
    kw = {"num_steps": 1, "random_start": True}
    fast = attacks.pgd(f, v, x, y, 0.01, jax.random.key(5), **kw)
    with jax.disable_jit():
        slow = attacks.pgd(f, v, x, y, 0.01, jax.random.key(5), **kw)
    np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_vmapped_sweep_equals_calls_and_no_retrace(setup):
    f, v, x, y = setup
    epsilons = jnp.array([0.0, 0.005, 0.05])
    key = jax.random.key(6)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def one(eps):
        return attacks.pgd(f, v, x, y, eps, key, num_steps=3, norm="linf")

    per_eps = [one(e) for e in epsilons]  # three epsilons, one trace
    swept = jax.vmap(lambda e: attacks.pgd(f, v, x, y, e, key, num_steps=3))(epsilons)
    for i in range(len(epsilons)):
        np.testing.assert_allclose(swept[i], per_eps[i], atol=1e-6)
    # the library's own jit cache grows by one entry over a sweep of Python floats
    before = attacks.pgd_kernel._cache_size()  # noqa: SLF001 - the kernel jit cache
    for e in (0.011, 0.012, 0.013):
        attacks.pgd(f, v, x, y, e, key, num_steps=4, norm="linf")
    assert attacks.pgd_kernel._cache_size() == before + 1  # noqa: SLF001 - the kernel jit cache


def test_robust_correct(setup):
    f, v, x, y = setup
    xs = jnp.concatenate([x, x[:1]])  # n = 5 with batch_size 2: a padded last batch
    ys = jnp.concatenate([y, y[:1]])
    eps = np.array([0.0, 0.01, 0.5])
    out = attacks.robust_correct(f, v, xs, ys, eps, jax.random.key(0), num_steps=3, batch_size=2)
    assert out.shape == (3, 5) and out.dtype == bool
    f_jit = jax.jit(f)
    clean = np.asarray(jnp.argmax(f_jit(v, xs), -1) == ys)
    np.testing.assert_array_equal(out[0], clean)
    # per-batch results equal direct pgd calls with the per-batch key
    adv = attacks.pgd(f, v, xs[:2], ys[:2], 0.01, jax.random.fold_in(jax.random.key(0), 0),
                      num_steps=3)  # fmt: skip
    np.testing.assert_array_equal(out[1, :2], np.asarray(jnp.argmax(f_jit(v, adv), -1) == ys[:2]))
    before = attacks.sweep_correct._cache_size()  # noqa: SLF001 - the kernel jit cache
    attacks.robust_correct(f, v, xs, ys, eps * 0.5, jax.random.key(1), num_steps=3, batch_size=2)
    assert attacks.sweep_correct._cache_size() == before  # noqa: SLF001 - the kernel jit cache


def test_bad_arguments(setup):
    f, v, x, y = setup
    with pytest.raises(ValueError, match="eps"):
        attacks.pgd(f, v, x, y, -0.1, jax.random.key(0), num_steps=1)
    with pytest.raises(ValueError, match="eps"):
        attacks.robust_correct(f, v, x, y, [0.1, -1.0], jax.random.key(0), num_steps=1)
    with pytest.raises(ValueError, match=r"norm.*linf"):
        attacks.pgd(f, v, x, y, 0.1, jax.random.key(0), num_steps=1, norm="l1")
    with pytest.raises(ValueError, match="norm"):
        attacks.fgsm(f, v, x, y, 0.1, norm="inf")
    with pytest.raises(ValueError, match="num_steps"):
        attacks.pgd(f, v, x, y, 0.1, jax.random.key(0), num_steps=-1)


def test_robust_correct_progress_flag(monkeypatch, capsys):
    """progress=False silences the sweep's bar even without FAIRROBUST_NO_PROGRESS."""
    monkeypatch.delenv("FAIRROBUST_NO_PROGRESS", raising=False)

    def lin(v, x):
        return x @ v

    v = jnp.stack([jnp.ones(8), -jnp.ones(8)], axis=1)
    x = np.linspace(-0.5, 0.5, 24, dtype=np.float32).reshape(3, 8)
    y = np.asarray([0, 1, 0])
    kw = dict(num_steps=2, batch_size=2)
    eps, key = [0.0, 0.1], jax.random.key(0)
    quiet = attacks.robust_correct(lin, v, x, y, eps, key, progress=False, **kw)
    assert "PGD-linf" not in capsys.readouterr().err
    loud = attacks.robust_correct(lin, v, x, y, eps, key, **kw)
    assert "PGD-linf" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet, loud)


def test_robust_correct_skips_attack_for_zero_eps(setup):
    f, v, x, y = setup
    kw = dict(num_steps=3, batch_size=2)
    clean = np.asarray(jnp.argmax(jax.jit(f)(v, x), -1) == y)
    before = attacks.sweep_correct._cache_size()  # noqa: SLF001 - the kernel jit cache
    only_zero = attacks.robust_correct(f, v, x, y, [0.0, 0.0], jax.random.key(0), **kw)
    assert attacks.sweep_correct._cache_size() == before  # no attack compiled or run  # noqa: SLF001 - the kernel jit cache
    np.testing.assert_array_equal(only_zero, np.stack([clean, clean]))
    mixed = attacks.robust_correct(f, v, x, y, [0.0, 0.3, 0.0], jax.random.key(0), **kw)
    alone = attacks.robust_correct(f, v, x, y, [0.3], jax.random.key(0), **kw)
    np.testing.assert_array_equal(mixed[[0, 2]], np.stack([clean, clean]))
    np.testing.assert_array_equal(mixed[1], alone[0])  # same attack rows, same blocks


# ----------------------------------------------------------------------------- DLR loss


def _dlr_numpy(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Croce & Hein (2020) Eq. 6 by a plain loop: -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)."""
    out = []
    for zi, yi in zip(z.astype(np.float64), y, strict=True):
        s = np.sort(zi)[::-1]
        other = max(v for i, v in enumerate(zi) if i != yi)
        out.append(-(zi[yi] - other) / (s[0] - s[2] + 1e-12))
    return np.asarray(out)


def test_dlr_loss_matches_numpy_on_hand_logits():
    z = np.array(
        [[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 5.0], [1.0, 1.0, 0.5, 0.0], [-2.0, 4.0, 4.0, 1.0]],
        np.float32,
    )
    y = np.array([0, 1, 1, 3], np.int32)
    got = np.asarray(attacks.dlr_loss(jnp.asarray(z), jnp.asarray(y)))
    # By hand: row 0 -(3-1)/(3-0) = -2/3; row 1 -(2-5)/(5-1) = 3/4; row 2 -(1-1)/(1-0.5) = 0;
    # row 3 -(1-4)/(4-1) = 1 (misclassified examples have DLR > 0).
    np.testing.assert_allclose(got, [-2 / 3, 0.75, 0.0, 1.0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, _dlr_numpy(z, y), rtol=1e-6, atol=1e-7)
    rng = np.random.default_rng(0)
    zr = rng.normal(size=(32, 10)).astype(np.float32)
    yr = rng.integers(0, 10, 32).astype(np.int32)
    np.testing.assert_allclose(
        np.asarray(attacks.dlr_loss(jnp.asarray(zr), jnp.asarray(yr))),
        _dlr_numpy(zr, yr),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(("shift", "scale"), [(7.5, 1.0), (-3.0, 1.0), (0.0, 0.25), (2.0, 40.0)])
def test_dlr_loss_is_shift_and_scale_invariant(shift, scale):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 5, 16).astype(np.int32)
    base = np.asarray(attacks.dlr_loss(jnp.asarray(z), jnp.asarray(y)))
    moved = np.asarray(attacks.dlr_loss(jnp.asarray(scale * z + shift), jnp.asarray(y)))
    np.testing.assert_allclose(moved, base, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(base))


def test_dlr_attack_runs_through_the_pgd_loop():
    """PGD on the DLR loss of a 3-class linear model finds the L-inf optimum, like CE."""
    w = np.zeros((4, 3), np.float32)
    w[:, 0], w[:, 1] = [0.25, -0.25, 0.25, 0.25], [-0.25, 0.25, -0.25, -0.25]

    def apply_fn(v, x):
        return x @ v["w"] + jnp.array([[0.0, 0.0, -10.0]])

    x = np.array([[0.1, 0.0, 0.0, 0.0], [0.4, -0.4, 0.4, 0.4]], np.float32)
    y = np.array([0, 0], np.int32)  # margins u.x = 0.025 and 0.4
    v = {"w": jnp.asarray(w)}
    eps = np.array([0.0, 0.1, 0.5], np.float32)
    kw = {"num_steps": 10, "rel_step": 0.2, "batch_size": 2, "progress": False}
    dlr = attacks.robust_correct(apply_fn, v, x, y, eps, jax.random.key(0), loss="dlr", **kw)
    ce = attacks.robust_correct(apply_fn, v, x, y, eps, jax.random.key(0), **kw)
    np.testing.assert_array_equal(dlr, [[True, True], [False, True], [False, False]])
    np.testing.assert_array_equal(dlr, ce)
    with pytest.raises(ValueError, match="loss"):
        attacks.robust_correct(apply_fn, v, x, y, eps, jax.random.key(0), loss="hinge", **kw)
