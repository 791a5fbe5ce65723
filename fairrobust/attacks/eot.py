"""Expectation over transformation (EOT): PGD on a randomized-smoothing classifier.

The smoothed classifier ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ sigma * D``, is
attacked through its soft version ``G(x) = E_d[softmax(f(x + d))]`` (Salman et al.
2019, "Provably Robust Deep Learning via Adversarially Trained Smoothed Classifiers"
(SmoothAdv), section 3; EOT: Athalye et al. 2018, section 4.3). The attack is the PGD
of :mod:`fairrobust.attacks.pgd` (:func:`~fairrobust.attacks.pgd.pgd_loop`: same
step, projection and random start) with a Monte Carlo objective over M noise draws
per step, :data:`OBJECTIVES`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._batching import batch_size_for, iter_batches
from fairrobust._checks import (
    check_choice,
    check_epsilons,
    check_int,
    check_norm,
    check_positive,
    check_xy,
    fail,
)
from fairrobust.attacks.pgd import Objective, pgd_loop, uniform_ball
from fairrobust.models import ApplyFn
from fairrobust.smoothing import NoiseFn, resolve_noise

__all__ = ["OBJECTIVES", "eot_attack", "eot_gradient", "eot_objective"]

#: EOT objectives: cross-entropy of the mean softmax (SmoothAdv) or mean cross-entropy.
OBJECTIVES: tuple[str, ...] = ("mean_softmax", "mean_loss")


def _per_example_loss(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    noise: jax.Array,
    objective: str,
) -> jax.Array:
    """Per-example EOT loss ``[b]``; ``noise`` is ``[b, M, T]`` (already scaled by sigma)."""
    b, m, t = noise.shape
    logits = apply_fn(variables, (x[:, None, :] + noise).reshape(b * m, t))
    logp = jax.nn.log_softmax(logits.reshape(b, m, -1), axis=-1)
    onehot = jax.nn.one_hot(y, logp.shape[-1], dtype=logp.dtype)  # [b, C]
    logp_y = jnp.sum(logp * onehot[:, None, :], axis=-1)  # [b, M]
    if objective == "mean_softmax":
        # -log (1/M) sum_j softmax(f(x + d_j))_y, via logsumexp for stability.
        return math.log(m) - jax.nn.logsumexp(logp_y, axis=-1)
    return -jnp.mean(logp_y, axis=-1)


def _example_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    """One key per example, ``fold_in(key, index)``: draws do not depend on batching."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)


def eot_objective(
    apply_fn: ApplyFn,
    variables: Any,
    y: jax.Array,
    noise_keys: jax.Array,
    sigma: jax.Array,
    *,
    num_noise: int,
    noise_fn: NoiseFn,
    objective: str,
    fixed_noise: bool = False,
) -> Objective:
    """The per-example EOT :data:`~fairrobust.attacks.pgd.Objective` of :func:`eot_attack`.

    At step ``s`` example ``i`` draws ``M`` unit-std noises
    ``noise_fn(fold_in(noise_keys[i], s), (M, T))`` (step 0 at every step with
    ``fixed_noise``), scales them by ``sigma`` and returns the loss of
    :data:`OBJECTIVES` over ``x_i + sigma * noise``.

    Args:
      apply_fn, variables: the base classifier (it sees batches of ``b * M`` rows).
      y: integer labels ``[b]``.
      noise_keys: one key per example ``[b]``.
      sigma: noise standard deviation (traced).
      num_noise: M draws per step.
      noise_fn: unit-std noise family (``fairrobust.smoothing.resolve_noise``).
      objective: one of :data:`OBJECTIVES`.
      fixed_noise: reuse the step-0 draws at every step.

    Returns:
      ``objective(x_adv [b, T], step) -> loss [b]``.
    """

    def loss(xa: jax.Array, step: jax.Array) -> jax.Array:
        s = 0 if fixed_noise else step
        t = xa.shape[1]
        nz = jax.vmap(lambda k: noise_fn(jax.random.fold_in(k, s), (num_noise, t), xa.dtype))(
            noise_keys
        )  # [b, M, T], unit std
        return _per_example_loss(apply_fn, variables, xa, y, sigma * nz, objective)

    return loss


@functools.partial(
    jax.jit,
    static_argnames=(
        "apply_fn", "num_steps", "num_noise", "norm", "noise_fn", "objective",
        "random_start", "fixed_noise",
    ),
)  # fmt: skip
def _eot_kernel(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    eps: jax.Array,
    key: jax.Array,
    sigma: jax.Array,
    rel_step: jax.Array,
    indices: jax.Array,
    *,
    num_steps: int,
    num_noise: int,
    norm: str,
    noise_fn: Any,
    objective: str,
    random_start: bool,
    fixed_noise: bool,
) -> jax.Array:
    """EOT-PGD iterate after ``num_steps`` steps; see :func:`eot_attack`."""
    noise_keys = _example_keys(jax.random.fold_in(key, 0), indices)
    start_keys = _example_keys(jax.random.fold_in(key, 1), indices)
    loss = eot_objective(
        apply_fn, variables, y, noise_keys, sigma, num_noise=num_noise, noise_fn=noise_fn,
        objective=objective, fixed_noise=fixed_noise,
    )  # fmt: skip
    one = jnp.asarray(1.0, x.dtype)
    x0 = x
    if random_start:
        # Per-example keys: the start of example i does not depend on batching.
        delta0 = jax.vmap(lambda k, xi: uniform_ball(k, xi[None], eps, norm)[0])(start_keys, x)
        x0 = jnp.clip(x + delta0, -one, one)
    return pgd_loop(loss, x, eps, x0, rel_step, -one, one, num_steps, norm)


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_noise", "noise_fn", "objective"))
def _eot_grad_kernel(apply_fn, variables, x, y, key, sigma, indices, *, num_noise, noise_fn,
                     objective):  # fmt: skip
    """Gradient of the EOT objective at x with the step-0 noise of :func:`_eot_kernel`."""
    keys = _example_keys(jax.random.fold_in(key, 0), indices)
    loss = eot_objective(
        apply_fn, variables, y, keys, sigma, num_noise=num_noise, noise_fn=noise_fn,
        objective=objective,
    )  # fmt: skip
    return jax.grad(lambda xa: loss(xa, jnp.int32(0)).sum())(x)


def _eot_common(x, y, sigma, num_noise, noise, objective, indices):
    """Validation shared by :func:`eot_attack` and :func:`eot_gradient`."""
    x, y = check_xy(x, y)
    sigma = check_positive("sigma", sigma)
    num_noise = check_int("num_noise", num_noise, 1)
    noise_fn = resolve_noise(noise)
    check_choice("objective", objective, OBJECTIVES)
    n = x.shape[0]
    if indices is None:
        idx = np.arange(n, dtype=np.int32)
    else:
        idx = np.asarray(indices)
        if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
            fail("indices", f"integers of shape ({n},)", f"{idx.dtype} {idx.shape}")
        idx = idx.astype(np.int32)
    return x, y, sigma, num_noise, noise_fn, idx


def eot_gradient(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    key: jax.Array,
    *,
    sigma: float,
    num_noise: int,
    noise: str = "gaussian",
    objective: str = "mean_softmax",
    indices: Any = None,
) -> jax.Array:
    """Monte Carlo gradient of the EOT objective at x (the first step of :func:`eot_attack`).

    ``grad_x L(x)`` with ``L`` the per-example objective of :func:`eot_attack`
    estimated from M draws ``d_j = sigma * eps_j``; it converges to the gradient of
    the expectation as M grows (tested against a large-M reference).

    Args:
      apply_fn, variables, x, y, key, sigma, num_noise, noise, objective, indices:
        as in :func:`eot_attack`.

    Returns:
      float ``(n, T)``.
    """
    x, y, sigma, num_noise, noise_fn, idx = _eot_common(
        x, y, sigma, num_noise, noise, objective, indices
    )
    return _eot_grad_kernel(
        apply_fn, variables, jnp.asarray(x), jnp.asarray(y), key,
        jnp.asarray(sigma, jnp.float32), jnp.asarray(idx),
        num_noise=num_noise, noise_fn=noise_fn, objective=objective,
    )  # fmt: skip


def eot_attack(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    eps: Any,
    key: jax.Array,
    *,
    sigma: float,
    num_noise: int = 8,
    num_steps: int = 100,
    noise: str = "gaussian",
    norm: str = "linf",
    rel_step: float = 0.2,
    objective: str = "mean_softmax",
    random_start: bool = False,
    fixed_noise: bool = False,
    indices: Any = None,
    batch_size: int | None = None,
) -> jax.Array:
    """Adaptive PGD on a randomized-smoothing classifier (expectation over transformation).

    The smoothed classifier ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ sigma * D``,
    is attacked through its soft version ``G(x) = E_d[softmax(f(x + d))]``
    (Salman et al. 2019, "Provably Robust Deep Learning via Adversarially Trained
    Smoothed Classifiers" (SmoothAdv), section 3; EOT: Athalye et al. 2018,
    section 4.3). It is :func:`~fairrobust.attacks.pgd.pgd_loop` (sign step for
    L-inf, unit-L2 step for L2, step ``alpha = rel_step * eps``, projection onto
    the ball and [-1, 1]) on :func:`eot_objective`, a Monte Carlo objective over M
    noise draws ``d_1..d_M``:

    * ``"mean_softmax"`` (default, SmoothAdv):
      ``L(x) = -log( (1/M) sum_j softmax(f(x + d_j))_y )``, the cross-entropy of
      the estimated soft smoothed classifier. Salman et al. show this attacks g
      better than the average of per-draw losses, whose gradient is dominated
      by draws that are already misclassified confidently;
    * ``"mean_loss"``: ``L(x) = (1/M) sum_j CE(f(x + d_j), y)``, the plain EOT
      average of Athalye et al.

    Noise: draw j of example i at step s is ``noise(fold_in(fold_in(k0, idx_i), s))``
    row j, with ``k0 = fold_in(key, 0)`` and ``idx_i`` the example's global index,
    so results do not depend on batching (nor does the random start, drawn per
    example from ``fold_in(fold_in(key, 1), idx_i)``). ``fixed_noise=True`` reuses the step-0
    draws at every step (as SmoothAdv's implementation does); the default draws
    fresh noise each step (stochastic EOT).

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits`` (static: stable object); it
        sees batches of ``b * M`` noisy waveforms.
      variables: model variables.
      x: clean waveforms in [-1, 1], ``(n, T)``.
      y: integer labels ``(n,)``.
      eps: budget, a scalar >= 0 (traced: a sweep compiles once).
      key: PRNG key of the noise and the random start.
      sigma: smoothing noise standard deviation, > 0.
      num_noise: M >= 1 noise draws per step.
      num_steps: PGD steps >= 1.
      noise: a noise family of :func:`fairrobust.smoothing.resolve_noise` (unit std,
        scaled by sigma).
      norm: "linf" or "l2".
      rel_step: step size as a fraction of eps (> 0).
      objective: one of :data:`OBJECTIVES`.
      random_start: start from a uniform random point of the ball.
      fixed_noise: reuse the same M draws at every step.
      indices: global example indices ``(n,)`` (default ``arange(n)``).
      batch_size: examples per call (None: all at once); memory is
        ``O(batch_size * M * T)``.

    Returns:
      Adversarial waveforms ``(n, T)``, ``||x_adv - x|| <= eps`` and in [-1, 1].

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y, sigma, num_noise, noise_fn, idx = _eot_common(
        x, y, sigma, num_noise, noise, objective, indices
    )
    eps_arr = check_epsilons(eps, "eps")
    if eps_arr.shape != (1,) or np.ndim(eps) != 0:
        fail("eps", "a scalar budget", f"shape {np.shape(eps)}")
    num_steps = check_int("num_steps", num_steps, 1)
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    n = x.shape[0]
    bs = n if batch_size is None else check_int("batch_size", batch_size, 1)
    bs = batch_size_for(bs, n)
    outs = []
    for _, _, m, (xb, yb, ib) in iter_batches((x, y, idx), bs):
        adv = _eot_kernel(
            apply_fn, variables, jnp.asarray(xb), jnp.asarray(yb),
            jnp.asarray(eps_arr[0]), key, jnp.asarray(sigma, jnp.float32),
            jnp.asarray(rel_step, jnp.float32), jnp.asarray(ib),
            num_steps=num_steps, num_noise=num_noise, norm=norm, noise_fn=noise_fn,
            objective=objective, random_start=bool(random_start), fixed_noise=bool(fixed_noise),
        )  # fmt: skip
        outs.append(adv[:m])
    return jnp.concatenate(outs) if outs else jnp.asarray(x)
