"""M5 / M5-Tricks: shapes, parameter counts, the custom-VJP convolution against nn.Conv."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import models

T = 7000  # just above min_input_len() = 6848: tiny but every stage non-empty
W = 8


class ReferenceM5(nn.Module):
    """Independent oracle: plain nn.Conv / nn.max_pool M5 with the same parameter tree."""

    num_classes: int
    width: int = 32
    tricks: bool = False

    @nn.compact
    def __call__(self, x, *, train=False):
        mean = x.mean(axis=1, keepdims=True)
        x = (x - mean) / jnp.sqrt(jnp.square(x - mean).mean(axis=1, keepdims=True) + 1e-8)
        h = x[:, :, None]
        w = self.width
        act = nn.silu if self.tricks else nn.relu
        for i, (f, k, s) in enumerate(((w, 80, 16), (w, 3, 1), (2 * w, 3, 1), (2 * w, 3, 1)), 1):
            h = nn.Conv(f, (k,), (s,), padding="VALID", name=f"conv{i}")(h)
            if not self.tricks:
                h = nn.BatchNorm(
                    use_running_average=not train, momentum=0.9, epsilon=1e-5, name=f"bn{i}"
                )(h)
            h = nn.max_pool(act(h), (4,), (4,), padding="VALID")
        return nn.Dense(self.num_classes, name="dense")(h.mean(axis=1))


def hand_count(w, c, bn=True):
    """Parameters of M5 by hand: conv kernels + biases, BN scale + bias, dense."""
    convs = (
        (80 * 1 * w + w) + (3 * w * w + w) + (3 * w * 2 * w + 2 * w) + (3 * 2 * w * 2 * w + 2 * w)
    )
    bns = 2 * (w + w + 2 * w + 2 * w) if bn else 0
    return convs + bns + (2 * w * c + c)


def _x(key=1, b=3, t=T):
    return jax.random.uniform(jax.random.key(key), (b, t), minval=-0.5, maxval=0.5)


@pytest.mark.parametrize("name", ["m5", "m5-tricks"])
def test_shapes(name):
    model = models.make_model(name, 5, width=W)
    v = models.init_variables(model, jax.random.key(0), T)
    logits = jax.jit(models.logits_fn(model))(v, _x())
    assert logits.shape == (3, 5)
    logits2, feats = jax.jit(models.features_fn(model))(v, _x())
    assert feats.shape == (3, 2 * W)
    np.testing.assert_array_equal(logits, logits2)
    # features -> dense reproduces the logits
    d = v["params"]["dense"]
    np.testing.assert_allclose(feats @ d["kernel"] + d["bias"][None], logits, rtol=1e-5, atol=1e-6)
    assert ("batch_stats" in v) == (name == "m5")


@pytest.mark.parametrize(("w", "c"), [(32, 10), (32, 35), (128, 10), (8, 3)])
def test_param_counts(w, c):
    for name, bn in (("m5", True), ("m5-tricks", False)):
        model = models.make_model(name, c, width=w)
        v = jax.eval_shape(lambda m=model: models.init_variables(m, jax.random.key(0), 16000))
        assert models.count_params(v["params"]) == hand_count(w, c, bn)
    # the torchaudio tutorial prints 26,915 parameters for M5(width 32, 35 classes)
    assert hand_count(32, 35) == 26915


@pytest.mark.parametrize("tricks", [False, True])
def test_matches_nn_conv_reference(tricks):
    model = models.M5(4, width=W, tricks=tricks)
    ref = ReferenceM5(4, width=W, tricks=tricks)
    v = models.init_variables(model, jax.random.key(0), T)
    v_ref = ref.init(jax.random.key(0), jnp.zeros((1, T)))
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(dict(v_ref))
    if not tricks:  # non-trivial running statistics so BN is really exercised
        v["batch_stats"] = jax.tree_util.tree_map(
            lambda a: a + 0.3 * jnp.abs(jax.random.normal(jax.random.key(9), a.shape)),
            v["batch_stats"],
        )
    x = _x(b=2, t=T + 37)  # a length that leaves remainders at every pool
    out = jax.jit(models.logits_fn(model))(v, x)
    np.testing.assert_allclose(out, jax.jit(ref.apply)(v, x), rtol=1e-5, atol=1e-6)

    # input gradients (the custom VJP) agree with autodiff through nn.Conv
    def loss(f):
        return lambda xx: jnp.sum(jnp.sin(f(v, xx)))

    g = jax.jit(jax.grad(loss(models.logits_fn(model))))(x)
    g_ref = jax.jit(jax.grad(loss(ref.apply)))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-6 * float(jnp.abs(g_ref).max()))

    if tricks:  # train-mode parameter gradients: checked on the BatchNorm variant only
        return

    # parameter gradients in train mode agree too (BatchNorm, max-pool ties, kernel VJP)
    def ploss(apply):
        def f(params):
            vv = {**v, "params": params}
            if tricks:
                return jnp.sum(jnp.sin(apply(vv, x, train=True)))
            out, _ = apply(vv, x, train=True, mutable=["batch_stats"])
            return jnp.sum(jnp.sin(out))

        return f

    gp = jax.jit(jax.grad(ploss(model.apply)))(v["params"])
    gp_ref = jax.jit(jax.grad(ploss(ref.apply)))(v["params"])
    # conv biases in front of BatchNorm have zero true gradient: compare on a global scale
    scale = max(float(jnp.abs(b).max()) for b in jax.tree_util.tree_leaves(gp_ref))
    for a, b in zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(gp_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(("k", "s", "cin"), [(80, 16, 1), (3, 1, 5), (4, 3, 2)])
def test_conv1d_vjp_matches_lax(k, s, cin):
    x = jax.random.normal(jax.random.key(0), (2, 101, cin))
    kern = jax.random.normal(jax.random.key(1), (k, cin, 3))

    def lax_conv(a, b):
        return jax.lax.conv_general_dilated(
            a, b, (s,), "VALID", dimension_numbers=models.CONV_DIMENSIONS
        )

    y, vjp = jax.vjp(lambda a, b: models.conv1d(a, b, s), x, kern)
    y_ref, vjp_ref = jax.vjp(lax_conv, x, kern)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = jax.random.normal(jax.random.key(2), y.shape)
    for a, b in zip(vjp(dy), vjp_ref(dy), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_batchnorm_vs_tricks_and_train_mode():
    m5 = models.make_model("m5", 3, width=W)
    v = models.init_variables(m5, jax.random.key(0), T)
    x = _x(b=4)
    # train mode updates the running statistics; eval mode leaves logits deterministic
    _, upd = jax.jit(lambda v, x: m5.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    assert not np.allclose(upd["batch_stats"]["bn1"]["mean"], v["batch_stats"]["bn1"]["mean"])
    tricks = models.make_model("m5-tricks", 3, width=W)
    vt = models.init_variables(tricks, jax.random.key(0), T)
    assert "batch_stats" not in vt and not any(k.startswith("bn") for k in vt["params"])
    # M5-Tricks uses SiLU: a negative pre-activation still passes signal
    assert jax.jit(lambda v, x: tricks.apply(v, x, train=True))(vt, x).shape == (4, 3)


def test_normalize_standardize_is_scale_invariant():
    model = models.make_model("m5", 3, width=W)
    v = models.init_variables(model, jax.random.key(0), T)
    x = _x()
    f = jax.jit(models.logits_fn(model))
    np.testing.assert_allclose(f(v, x), f(v, 0.1 * x + 0.01), rtol=1e-3, atol=1e-4)
    raw = jax.jit(models.logits_fn(models.make_model("m5", 3, width=W, normalize="none")))
    assert not np.allclose(raw(v, x), raw(v, 0.1 * x))
    # silence stays finite
    assert np.all(np.isfinite(f(v, jnp.zeros((1, T)))))


def test_memoised_apply_fns():
    a = models.make_model("m5", 3, width=W)
    b = models.make_model("m5", 3, width=W)
    assert models.logits_fn(a) is models.logits_fn(b)
    assert models.features_fn(a) is models.features_fn(b)
    assert models.logits_fn(a) is not models.logits_fn(models.make_model("m5-tricks", 3, width=W))


def test_bad_input():
    with pytest.raises(ValueError, match="model"):
        models.make_model("resnet", 3)
    with pytest.raises(ValueError, match=r"normalize.*standardize"):
        models.make_model("m5", 3, normalize="peak")
    with pytest.raises(ValueError, match="num_classes"):
        models.make_model("m5", 0)
    model = models.make_model("m5", 3, width=W)
    with pytest.raises(ValueError, match="6848"):
        models.init_variables(model, jax.random.key(0), 4000)
    v = models.init_variables(model, jax.random.key(0), T)
    with pytest.raises(ValueError, match="batch, time"):
        models.logits_fn(model)(v, jnp.zeros((T,)))
    assert models.min_input_len() == 6848
