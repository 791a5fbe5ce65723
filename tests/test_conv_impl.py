"""``M5(conv_impl="matmul")``: im2col forward equals the ``lax.conv`` forward."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import models


@pytest.mark.parametrize("name", ["m5"])
def test_matmul_forward_matches_lax(name):
    model = models.make_model(name, 5, width=4)
    mm = dataclasses.replace(model, conv_impl="matmul")
    v = models.init_variables(model, jax.random.key(0), 6848)
    x = jax.random.uniform(jax.random.key(1), (2, 6848), minval=-0.5, maxval=0.5)
    a = models.logits_fn(model)(v, x)
    b = models.logits_fn(mm)(v, x)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)

    def loss(m):
        return lambda p, xx: jnp.sum(jnp.tanh(models.logits_fn(m)({**v, "params": p}, xx)))

    ga = jax.grad(loss(model), argnums=(0, 1))(v["params"], x)
    gb = jax.grad(loss(mm), argnums=(0, 1))(v["params"], x)
    for p, q in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb), strict=True):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-4, atol=1e-5)
    # under vmap over stacked kernels (the grid's use) the two agree as well
    vs = jax.tree_util.tree_map(lambda t: jnp.stack([t, 1.1 * t]), v)
    va = jax.vmap(models.logits_fn(model), in_axes=(0, None))(vs, x)
    vb = jax.vmap(models.logits_fn(mm), in_axes=(0, None))(vs, x)
    np.testing.assert_allclose(np.asarray(va), np.asarray(vb), rtol=1e-5, atol=1e-5)


def test_bad_conv_impl():
    with pytest.raises(ValueError, match="conv_impl"):
        models.M5(3, conv_impl="fft").validate()
