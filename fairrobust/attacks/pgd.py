"""Projected gradient descent (PGD) and FGSM evasion attacks, L-inf and L2.

PGD (Madry et al., 2018) maximises the cross-entropy of the true label inside
an eps-ball around the clean waveform x and inside the valid range [-1, 1]:

    x^0     = x                      (or a uniform random point of the ball)
    x^{t+1} = Proj_{B(x, eps) ∩ [-1, 1]^T}(x^t + alpha * s(grad_x CE(f(x^t), y)))

with ``s = sign`` for L-inf and ``s(g) = g / ||g||_2`` for L2, and step size
``alpha = rel_step * eps`` (``eps / 5`` in the AISec'23 paper, Sec. 4: "100
steps, and alpha = eps/5"). FGSM is the single step of size eps. The last
iterate is returned.

The iteration is :func:`pgd_loop`, which takes the per-example objective it ascends
(an :data:`Objective`): cross-entropy for PGD and FGSM (:func:`cross_entropy`), the
expectation-over-transformation objective for the attack on a smoothed classifier
(``fairrobust.attacks.eot``). Projection, step direction and random start exist once,
here.

Everything is jitted with ``apply_fn``, ``num_steps``, ``norm`` and
``random_start`` static, and eps traced: an epsilon sweep compiles once and
the attack can be ``jax.vmap``-ed over a vector of epsilons
(:func:`robust_correct` does exactly that). ``apply_fn(variables, x) -> logits``
must be a stable object (``fairrobust.models.logits_fn(model)`` is memoised).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from fairrobust._batching import batch_size_for, pad_to, padded_batches
from fairrobust._checks import (
    NORMS,
    check_budgets,
    check_int,
    check_norm,
    check_shape,
    check_xy,
    fail,
)
from fairrobust._io import progress as _progress
from fairrobust.models import ApplyFn

__all__ = [
    "ATTACK_ROWS",
    "LOSSES",
    "NORMS",
    "Objective",
    "clean_correct",
    "clean_predict",
    "cross_entropy",
    "default_block_rows",
    "dlr_loss",
    "dlr_margin",
    "fgsm",
    "pgd",
    "pgd_kernel",
    "pgd_loop",
    "prepare_sweep",
    "robust_correct",
    "sweep_correct",
    "sweep_predict",
    "uniform_ball",
]

Objective = Callable[[jax.Array, jax.Array], jax.Array]
"""A per-example attack objective: ``objective(x_adv [b, T], step) -> loss [b]``.

:func:`pgd_loop` ascends the sum (each example's gradient is its own); ``step`` is
the iteration index (traced), for objectives that redraw randomness per step."""

# Guards the L2 normalisations against division by zero (a zero gradient or a
# zero perturbation); far below any float32 perturbation that matters.
_TINY = 1e-12


def _l2_norm(v: jax.Array) -> jax.Array:
    """Per-example L2 norm over all but the batch axis, shape (batch, 1)."""
    return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(1, v.ndim)))).reshape(-1, 1)


def _project(delta: jax.Array, eps: jax.Array, norm: str) -> jax.Array:
    """Projection of the perturbation onto the eps-ball of ``norm``."""
    if norm == "linf":
        return jnp.clip(delta, -eps, eps)
    n = _l2_norm(delta)
    scale = jnp.where(n > eps, eps / jnp.maximum(n, _TINY), 1.0)
    return delta * scale


def uniform_ball(key: jax.Array, x: jax.Array, eps: jax.Array, norm: str) -> jax.Array:
    """A uniform random point of the eps-ball around 0 (L-inf cube or L2 ball), x's shape.

    L-inf: i.i.d. ``U(-eps, eps)`` per coordinate. L2: a uniform direction times a
    radius ``eps * u^(1/d)`` (``u ~ U(0, 1)``, ``d`` the per-example dimension), i.e.
    uniform in the ball. One key for the whole batch; vmap it over per-example keys
    for draws that do not depend on batching (as ``eot_attack`` does).

    Args:
      key: PRNG key.
      x: the clean batch ``[b, ...]`` (only its shape and dtype are used).
      eps: budget, a scalar or per-row ``[b, 1]``.
      norm: ``"linf"`` or ``"l2"``.

    Returns:
      The perturbation ``delta``, x's shape and dtype (add it to x and clip).
    """
    if norm == "linf":
        return jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    k_dir, k_rad = jax.random.split(key)
    direction = jax.random.normal(k_dir, x.shape, x.dtype)
    direction = direction / jnp.maximum(_l2_norm(direction), _TINY)
    d = x.shape[1] if x.ndim == 2 else int(np.prod(x.shape[1:]))
    radius = jax.random.uniform(k_rad, (x.shape[0], 1), x.dtype) ** (1.0 / d)
    return direction * radius * eps


def cross_entropy(apply_fn: ApplyFn, variables: Any, y: jax.Array) -> Objective:
    """The PGD / FGSM objective: per-example ``CE(f(x_adv), y)`` (the step is ignored).

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits [b, C]``.
      variables: model variables.
      y: integer labels ``[b]``.

    Returns:
      An :data:`Objective`.
    """

    def objective(xa: jax.Array, step: jax.Array) -> jax.Array:
        del step
        logits = apply_fn(variables, xa)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)

    return objective


def pgd_loop(
    objective: Objective,
    x: jax.Array,
    eps: jax.Array,
    x0: jax.Array,
    rel_step: jax.Array,
    clip_min: jax.Array,
    clip_max: jax.Array,
    num_steps: int,
    norm: str,
) -> jax.Array:
    """The PGD iteration from ``x0``, ascending the sum of a per-example objective.

    ``x^{t+1} = clip(x + Proj_eps(x^t + alpha * s(grad sum_i objective(x^t, t)_i) - x))``
    with ``alpha = rel_step * eps``, ``s = sign`` (L-inf) or the per-example unit-L2
    gradient (L2), projection onto the eps-ball of ``norm`` and clipping to
    ``[clip_min, clip_max]``; ``lax.fori_loop`` over ``num_steps``, last iterate
    returned. Not jitted: call it inside a jitted kernel (:func:`pgd_kernel`,
    :func:`sweep_correct`, ``eot_attack``'s kernel, a train step).

    Args:
      objective: per-example loss to ascend (:data:`Objective`).
      x: clean batch ``[b, T]``.
      eps: budget, a scalar or per-row ``[b, 1]`` (traced).
      x0: starting point (x, or x plus a :func:`uniform_ball` draw, clipped).
      rel_step: step size as a fraction of eps.
      clip_min, clip_max: the valid input range.
      num_steps: iterations (static).
      norm: ``"linf"`` or ``"l2"`` (static).

    Returns:
      The adversarial batch, x's shape.
    """
    alpha = rel_step * eps

    def step(i: jax.Array, xa: jax.Array) -> jax.Array:
        # Sum (not mean) over the batch: each example's gradient is its own.
        g = jax.grad(lambda v: objective(v, i).sum())(xa)
        if norm == "linf":
            direction = jnp.sign(g)
        else:
            direction = g / jnp.maximum(_l2_norm(g), _TINY)
        delta = _project(xa + alpha * direction - x, eps, norm)
        return jnp.clip(x + delta, clip_min, clip_max)

    return lax.fori_loop(0, num_steps, step, x0)


def dlr_loss(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example Difference of Logits Ratio loss (Croce & Hein 2020, APGD-DLR).

    ``DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` with
    ``z_pi1 >= z_pi2 >= ...`` the logits sorted in decreasing order. It is a margin
    loss (positive exactly when the example is misclassified) normalised by the
    spread of the top logits, so it is invariant to shifting the logits and, up to
    the ``1e-12``, to scaling them by a positive factor; it does not saturate as
    cross-entropy does on confident models. The ratio needs C >= 3; with two classes
    it would be the constant ``+-1`` (no gradient), so the plain margin
    ``-(z_y - z_other)`` is used instead (shift- but not scale-invariant).

    Args:
      logits: ``[b, C]``, C >= 2 (the ratio for C >= 3).
      y: integer labels ``[b]``.

    Returns:
      ``[b]``: larger is better for the attacker.

    References:
      F. Croce and M. Hein, "Reliable evaluation of adversarial robustness with an
      ensemble of diverse parameter-free attacks", ICML 2020, Eq. (6).
    """
    num_classes = logits.shape[-1]
    z_y = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), -jnp.inf, logits)
    margin = z_y - jnp.max(others, axis=-1)
    if num_classes < 3:
        return -margin
    z_sorted = jnp.sort(logits, axis=-1)
    spread = z_sorted[:, -1] - z_sorted[:, -3]  # z_pi1 - z_pi3
    return -margin / (spread + 1e-12)


def dlr_margin(apply_fn: ApplyFn, variables: Any, y: jax.Array) -> Objective:
    """The APGD-DLR objective: per-example :func:`dlr_loss` of ``f(x_adv)`` (step ignored).

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits [b, C]``.
      variables: model variables.
      y: integer labels ``[b]``.

    Returns:
      An :data:`Objective`.
    """

    def objective(xa: jax.Array, step: jax.Array) -> jax.Array:
        del step
        return dlr_loss(apply_fn(variables, xa), y)

    return objective


#: The per-example losses a sweep can ascend (``robust_correct(..., loss=...)``):
#: ``"ce"`` (cross-entropy, the studies' PGD) and ``"dlr"`` (:func:`dlr_margin`).
LOSSES: dict[str, Callable[[ApplyFn, Any, jax.Array], Objective]] = {
    "ce": cross_entropy,
    "dlr": dlr_margin,
}


def _check_loss(loss: str) -> str:
    """``loss`` if it names one of :data:`LOSSES`, else ``ValueError`` listing them."""
    if loss not in LOSSES:
        fail("loss", f"one of {sorted(LOSSES)}", repr(loss))
    return loss


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_steps", "norm", "random_start"))
def pgd_kernel(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    eps: jax.Array,
    key: jax.Array,
    rel_step: jax.Array,
    clip_min: jax.Array,
    clip_max: jax.Array,
    *,
    num_steps: int,
    norm: str,
    random_start: bool,
) -> jax.Array:
    """Jitted cross-entropy PGD on arrays, no validation: what :func:`pgd` runs.

    For callers inside their own jitted code (the adversarial-training steps of
    ``fairrobust.train`` and ``fairrobust.engine.grid``). Arguments as in :func:`pgd`,
    with ``eps``, ``rel_step``, ``clip_min`` and ``clip_max`` already arrays of x's dtype.

    Returns:
      Adversarial waveforms, x's shape.
    """
    x0 = x
    if random_start:
        x0 = jnp.clip(x + uniform_ball(key, x, eps, norm), clip_min, clip_max)
    objective = cross_entropy(apply_fn, variables, y)
    return pgd_loop(objective, x, eps, x0, rel_step, clip_min, clip_max, num_steps, norm)


def pgd(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    eps: float | jax.Array,
    key: jax.Array,
    *,
    num_steps: int,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    clip_min: float = -1.0,
    clip_max: float = 1.0,
) -> jax.Array:
    """Untargeted PGD on the cross-entropy (Madry et al., 2018).

    ``x_adv = x^num_steps`` of the iteration in the module docstring, with
    step ``alpha = rel_step * eps``. L-inf steps follow the gradient sign; L2
    steps follow the per-example unit-norm gradient and project by rescaling.
    Every iterate lies in ``{x' : ||x' - x|| <= eps} ∩ [clip_min, clip_max]^T``.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits [b, C]`` (static: hashable
        and stable, e.g. ``models.logits_fn(model)``).
      variables: model variables (traced).
      x: clean waveforms in [clip_min, clip_max], shape (batch, time).
      y: integer labels, shape (batch,).
      eps: attack budget >= 0, a scalar (traced: sweeps compile once and the
        call can be vmapped over a vector of epsilons).
      key: PRNG key for the random start (unused otherwise).
      num_steps: number of PGD iterations (static); 0 returns x (or the
        random start).
      norm: ``"linf"`` or ``"l2"`` (static).
      rel_step: step size as a fraction of eps (paper: 1/5).
      random_start: start from a uniform random point of the eps-ball (static).
      clip_min: lower bound of the valid input range.
      clip_max: upper bound of the valid input range.

    Returns:
      Adversarial waveforms, shape (batch, time), dtype of x.

    Raises:
      ValueError: ``norm`` not one of :data:`NORMS`, a concrete ``eps`` < 0 or
        not finite, a negative ``num_steps``, or ``y`` not one label per row of ``x``.
    """
    check_norm(norm)
    check_budgets(eps, "eps")
    num_steps = check_int("num_steps", num_steps, 0)
    x = jnp.asarray(x)
    if x.ndim < 2:
        fail("x", "shape (batch, time)", repr(x.shape))
    y = jnp.asarray(y)
    check_shape("y", y, (x.shape[0],))
    dtype = x.dtype
    return pgd_kernel(
        apply_fn,
        variables,
        x,
        y,
        jnp.asarray(eps, dtype),
        key,
        jnp.asarray(rel_step, dtype),
        jnp.asarray(clip_min, dtype),
        jnp.asarray(clip_max, dtype),
        num_steps=num_steps,
        norm=norm,
        random_start=bool(random_start),
    )


def fgsm(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    eps: float | jax.Array,
    *,
    norm: str = "linf",
    clip_min: float = -1.0,
    clip_max: float = 1.0,
) -> jax.Array:
    """Fast gradient (sign) method: one PGD step of size eps from x (Goodfellow et al., 2015).

    ``x_adv = clip(x + eps * sign(grad_x CE), clip_min, clip_max)`` for L-inf,
    ``x + eps * g / ||g||_2`` (then clipped) for L2. Arguments as in :func:`pgd`.

    Returns:
      Adversarial waveforms, shape (batch, time).
    """
    return pgd(
        apply_fn,
        variables,
        x,
        y,
        eps,
        jax.random.key(0),  # no randomness in FGSM
        num_steps=1,
        norm=norm,
        rel_step=1.0,
        random_start=False,
        clip_min=clip_min,
        clip_max=clip_max,
    )


ATTACK_ROWS: dict[str, int] = {"cpu": 32}
"""Rows (example x epsilon pairs) per PGD batch in ``robust_correct`` per platform;
platforms not listed run all ``len(epsilons) * batch_size`` rows as one batch. On the
2-core CPU of ``benchmarks/README.md`` a PGD step ran 1.45x faster per example at 32
rows than at 384 (the sweep's six epsilons x 64), because activations stay in cache."""


def default_block_rows(num_rows: int, platform: str | None = None) -> int:
    """Rows per PGD batch ``robust_correct`` uses when ``block_rows`` is None."""
    platform = platform or jax.default_backend()
    return max(1, min(num_rows, ATTACK_ROWS.get(platform, num_rows)))


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "num_steps", "norm", "random_start", "block_rows", "loss"),
)
def sweep_predict(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    epsilons: jax.Array,
    key: jax.Array,
    rel_step: jax.Array,
    *,
    num_steps: int,
    norm: str,
    random_start: bool,
    block_rows: int | None = None,
    loss: str = "ce",
) -> jax.Array:
    """Predicted classes ``[e, b]`` under PGD at every epsilon (the kernel of ``sweep_correct``).

    The ``e * b`` (epsilon, example) pairs become rows of one attack with a per-row
    budget, run ``block_rows`` rows at a time in a ``lax.map`` (default: all rows,
    i.e. one batch; the last block is padded with copies of row 0, whose results are
    dropped). Row ``(i, n)`` starts from the random point of example ``n`` scaled by
    ``eps_i``, exactly as ``pgd(x, eps_i, key)`` would. No validation: callers check
    with :func:`prepare_sweep`, pass only epsilons > 0 and answer eps = 0 rows with
    the clean forward pass (:func:`clean_correct`); ``fairrobust.engine.robust_correct``
    runs it per device.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits`` (static).
      variables: model variables.
      x: one batch of clean waveforms ``[b, T]``.
      y: its integer labels ``[b]``.
      epsilons: budgets > 0, ``[e]`` (traced).
      key: PRNG key of this batch's random starts.
      rel_step: step size as a fraction of eps (a float32 scalar array).
      num_steps, norm, random_start: as in :func:`pgd` (static).
      block_rows: (epsilon, example) rows per ``lax.map`` step (static).
      loss: the objective ascended, a key of :data:`LOSSES` (static; default
        cross-entropy).

    Returns:
      int32 ``[e, b]``: ``argmax f(PGD_{eps_i}(x_n))``.
    """
    chex.assert_rank(x, 2)
    chex.assert_shape(y, (x.shape[0],))
    chex.assert_rank(epsilons, 1)
    one = jnp.asarray(1.0, x.dtype)
    n_eps, b = epsilons.shape[0], x.shape[0]
    rows = n_eps * b
    block = rows if block_rows is None else min(int(block_rows), rows)
    n_blocks = -(-rows // block)
    unit = uniform_ball(key, x, one, norm) if random_start else jnp.zeros_like(x)

    def tile(a: jax.Array) -> jax.Array:
        a = jnp.broadcast_to(a[None], (n_eps, *a.shape)).reshape(rows, *a.shape[1:])
        return pad_to(a, n_blocks * block)

    er = jnp.broadcast_to(epsilons.astype(x.dtype)[:, None], (n_eps, b)).reshape(rows, 1)
    er = pad_to(er, n_blocks * block)
    xr, yr, ur = tile(x), tile(y), tile(unit)

    def attack(args: tuple[jax.Array, ...]) -> jax.Array:
        xb, yb, eb, ub = args
        x0 = jnp.clip(xb + ub * eb, -one, one) if random_start else xb
        objective = LOSSES[loss](apply_fn, variables, yb)
        x_adv = pgd_loop(objective, xb, eb, x0, rel_step, -one, one, num_steps, norm)
        return jnp.argmax(apply_fn(variables, x_adv), axis=-1).astype(jnp.int32)

    def blocks(a: jax.Array) -> jax.Array:
        return a.reshape(n_blocks, block, *a.shape[1:])

    adv = lax.map(attack, (blocks(xr), blocks(yr), blocks(er), blocks(ur)))
    return adv.reshape(-1)[:rows].reshape(n_eps, b)


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "num_steps", "norm", "random_start", "block_rows", "loss"),
)
def sweep_correct(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    epsilons: jax.Array,
    key: jax.Array,
    rel_step: jax.Array,
    *,
    num_steps: int,
    norm: str,
    random_start: bool,
    block_rows: int | None = None,
    loss: str = "ce",
) -> jax.Array:
    """Correctness ``[e, b]`` under PGD at every epsilon: the jitted kernel of ``robust_correct``.

    ``sweep_predict(...) == y`` (:func:`sweep_predict` documents the arguments).

    Returns:
      Boolean ``[e, b]``.
    """
    pred = sweep_predict(
        apply_fn, variables, x, y, epsilons, key, rel_step, num_steps=num_steps, norm=norm,
        random_start=random_start, block_rows=block_rows, loss=loss,
    )  # fmt: skip
    return pred == y[None]


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _clean_predict(apply_fn: ApplyFn, variables: Any, x: jax.Array) -> jax.Array:
    """``argmax f(x)`` for one batch (the eps = 0 rows of a sweep), int32."""
    return jnp.argmax(apply_fn(variables, x), axis=-1).astype(jnp.int32)


def clean_predict(apply_fn: ApplyFn, variables: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Clean predictions ``argmax f(x)``, int32 ``[n]``, in padded batches (one compiled shape).

    The eps = 0 rows of :func:`sweep_predict`'s callers; :func:`clean_correct` compares
    them with the labels.
    """
    (xb,) = padded_batches((x,), batch_size)
    out = [np.asarray(_clean_predict(apply_fn, variables, jnp.asarray(a))) for a in xb]
    return np.concatenate(out)[: x.shape[0]]


def clean_correct(
    apply_fn: ApplyFn, variables: Any, x: np.ndarray, y: np.ndarray, batch_size: int
) -> np.ndarray:
    """Clean correctness ``argmax f(x) == y``, ``[n]``, in padded batches (one compiled shape).

    What ``robust_correct`` (and the engine's sharded version) answer for eps = 0 rows:
    exactly the clean predictions, no attack.

    Args:
      apply_fn, variables: the model (``apply_fn`` static).
      x: clean waveforms ``[n, T]`` (NumPy).
      y: integer labels ``[n]``.
      batch_size: rows per call (the last batch padded, ``fairrobust._batching``).

    Returns:
      NumPy bool ``[n]``.
    """
    return clean_predict(apply_fn, variables, x, batch_size) == np.asarray(y)


def prepare_sweep(
    x: Any,
    y: Any,
    epsilons: Any,
    num_steps: int,
    norm: str,
    batch_size: int,
    block_rows: int | None,
) -> tuple[np.ndarray, np.ndarray, jax.Array, int, int]:
    """Checked ``robust_correct`` arguments: ``(x, y, eps [e], batch size, block_rows)``.

    Shared by ``fairrobust.engine.robust_correct`` so both cut batches and blocks alike.

    Args:
      x, y, epsilons, num_steps, norm, batch_size, block_rows: as in
        :func:`robust_correct`.

    Returns:
      ``(x float32 [n, T], y [n], eps float32 jax [e], batch size, block_rows)`` with the
      batch size at most ``n`` and ``block_rows`` resolved by :func:`default_block_rows`.

    Raises:
      ValueError: as :func:`robust_correct`.
    """
    check_norm(norm)
    check_budgets(epsilons, "epsilons")
    check_int("num_steps", num_steps, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    if block_rows is not None:
        block_rows = check_int("block_rows", block_rows, 1)
    x, y = check_xy(x, y)
    eps = jnp.asarray(np.asarray(epsilons, np.float32).reshape(-1))
    bs = batch_size_for(batch_size, x.shape[0])
    rows = default_block_rows(eps.shape[0] * bs) if block_rows is None else block_rows
    return x, y, eps, bs, rows


def robust_correct(
    apply_fn: ApplyFn,
    variables: Any,
    x: np.ndarray | jax.Array,
    y: np.ndarray | jax.Array,
    epsilons: np.ndarray | jax.Array,
    key: jax.Array,
    *,
    num_steps: int,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    batch_size: int = 64,
    block_rows: int | None = None,
    progress: bool = True,
    loss: str = "ce",
) -> np.ndarray:
    """Per-example correctness under PGD for a sweep of budgets.

    ``correct[i, n] = [argmax f(PGD_{eps_i}(x_n)) == y_n]``, the integrand of
    AUC_acc (paper Eq. 1). For each batch, all epsilons run as ONE jitted
    computation: the ``len(epsilons) * batch_size`` (epsilon, example) pairs are
    rows of one attack with per-row budgets, processed ``block_rows`` rows at a
    time; batches are looped on the host (the last one padded to ``batch_size``
    so nothing recompiles). ``eps = 0`` rows are exactly the clean predictions
    (one forward pass; no attack is run for them). Batch ``j`` uses
    ``fold_in(key, j)``, and row ``(i, n)`` equals ``pgd(x_n, eps_i, fold_in(key, j))``
    up to the float rounding of the batch shape.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits`` (static, see :func:`pgd`).
      variables: model variables.
      x: clean waveforms in [-1, 1], shape (n, time).
      y: integer labels, shape (n,).
      epsilons: budgets >= 0, shape (e,).
      key: PRNG key (random starts).
      num_steps: PGD iterations (paper: 100).
      norm: ``"linf"`` or ``"l2"``.
      rel_step: step size as a fraction of eps (paper: 1/5).
      random_start: random start inside the ball.
      batch_size: examples per call.
      block_rows: (epsilon, example) rows per PGD batch (default
        ``default_block_rows``: 32 on CPU, where small batches stay in cache; all
        rows on accelerators).
      progress: show a progress bar over the batches (also silenced by
        ``FAIRROBUST_NO_PROGRESS``).
      loss: the objective PGD ascends: ``"ce"`` (cross-entropy, the studies' attack)
        or ``"dlr"`` (:func:`dlr_margin`, APGD-DLR's loss run through the same loop).

    Returns:
      Boolean array, shape (e, n).
    """
    _check_loss(loss)
    x, y, eps, bs, rows = prepare_sweep(x, y, epsilons, num_steps, norm, batch_size, block_rows)
    n = x.shape[0]
    out = np.zeros((eps.shape[0], n), dtype=bool)
    if n == 0:
        return out
    # eps = 0 rows are the clean predictions: no attack is run for them.
    zero = np.asarray(eps) == 0
    if zero.any():
        out[zero] = clean_correct(apply_fn, variables, x, y, bs)[None]
    attacked = np.flatnonzero(~zero)
    eps_a = eps[attacked]
    xb, yb = padded_batches((x, y), bs) if attacked.size else (x[:0], y[:0])
    desc = f"PGD-{norm}{'' if loss == 'ce' else '-' + loss} x{attacked.size} eps"
    with _progress(len(xb), desc=desc, enabled=progress) as bar:
        for j in range(len(xb)):
            correct = sweep_correct(
                apply_fn,
                variables,
                jnp.asarray(xb[j]),
                jnp.asarray(yb[j]),
                eps_a,
                jax.random.fold_in(key, j),
                jnp.asarray(rel_step, jnp.float32),
                num_steps=int(num_steps),
                norm=norm,
                random_start=bool(random_start),
                block_rows=rows,
                loss=loss,
            )
            start = j * bs
            m = min(bs, n - start)
            out[attacked, start : start + m] = np.asarray(correct)[:, :m]
            bar.update(1)
    return out
