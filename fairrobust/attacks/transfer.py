"""Transfer attack: adversarial examples crafted on a surrogate, evaluated on the target.

With an independently trained surrogate this is the black-box transfer attack of
Papernot et al. (2017); a transfer attack that beats the white-box attack is a
symptom of gradient masking (Athalye et al. 2018, section 3.1; Carlini et al. 2019,
section 4.6).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._batching import batch_size_for, iter_batches
from fairrobust._checks import check_epsilons, check_int, check_norm, check_positive, check_xy
from fairrobust._io import progress as _progress
from fairrobust.attacks.pgd import pgd
from fairrobust.models import ApplyFn

__all__ = ["transfer_attack"]


@functools.partial(
    jax.jit,
    static_argnames=("source_apply_fn", "target_apply_fn", "num_steps", "norm", "random_start"),
)
def _transfer_kernel(
    source_apply_fn: ApplyFn,
    source_variables: Any,
    target_apply_fn: ApplyFn,
    target_variables: Any,
    x: jax.Array,
    y: jax.Array,
    epsilons: jax.Array,
    key: jax.Array,
    rel_step: jax.Array,
    *,
    num_steps: int,
    norm: str,
    random_start: bool,
) -> jax.Array:
    """Target correctness ``[e, b]`` on examples crafted by PGD on the source."""

    step: Any = rel_step  # stays traced: attacks.pgd converts it with jnp.asarray

    def one(eps: jax.Array) -> jax.Array:
        x_adv = pgd(
            source_apply_fn, source_variables, x, y, eps, key,
            num_steps=num_steps, norm=norm, rel_step=step, random_start=random_start,
        )  # fmt: skip
        return jnp.argmax(target_apply_fn(target_variables, x_adv), axis=-1) == y

    adv = jax.vmap(one)(epsilons)
    # eps = 0: exactly the clean prediction (as robust_correct).
    clean = jnp.argmax(target_apply_fn(target_variables, x), axis=-1) == y
    return jnp.where((epsilons == 0).reshape(-1, 1), clean.reshape(1, -1), adv)


def transfer_attack(
    source_apply_fn: ApplyFn,
    source_variables: Any,
    target_apply_fn: ApplyFn,
    target_variables: Any,
    x: Any,
    y: Any,
    epsilons: Any,
    key: jax.Array,
    *,
    num_steps: int = 100,
    norm: str = "linf",
    rel_step: float = 0.2,
    random_start: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Target correctness on adversarial examples crafted on a surrogate model.

    ``correct[i, n] = [argmax f_target(PGD^{f_source}_{eps_i}(x_n)) == y_n]``.
    With an independently trained surrogate this is the black-box transfer
    attack of Papernot et al. (2017); a transfer attack that beats the white-box
    attack is a symptom of gradient masking (Athalye et al. 2018, section 3.1;
    Carlini et al. 2019, section 4.6). With ``source = target`` it equals
    :func:`~fairrobust.attacks.pgd.robust_correct` (same batching and keys: batch ``j``
    uses ``fold_in(key, j)``).

    Args:
      source_apply_fn, source_variables: the surrogate that crafts the examples.
      target_apply_fn, target_variables: the model under evaluation.
      x: clean waveforms in [-1, 1], ``(n, T)``.
      y: integer labels ``(n,)``.
      epsilons: budgets ``[e]``, each >= 0 (traced: one compilation per shape).
      key: PRNG key (random starts only).
      num_steps: PGD steps on the surrogate, >= 1.
      norm: "linf" or "l2".
      rel_step: step size as a fraction of eps (> 0).
      random_start: start each attack from a random point of the ball.
      batch_size: examples per call (the last batch is padded; no recompilation).
      progress: show a progress bar (also silenced by ``FAIRROBUST_NO_PROGRESS``).

    Returns:
      NumPy bool ``(e, n)``.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = check_xy(x, y)
    eps = check_epsilons(epsilons)
    num_steps = check_int("num_steps", num_steps, 1)
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    batch_size = check_int("batch_size", batch_size, 1)
    n = x.shape[0]
    out = np.zeros((eps.shape[0], n), bool)
    if n == 0:
        return out
    bs = batch_size_for(batch_size, n)
    with _progress(-(-n // bs), desc=f"transfer PGD-{norm}", enabled=progress) as bar:
        for j, start, m, (xb, yb) in iter_batches((x, y), bs):
            correct = _transfer_kernel(
                source_apply_fn, source_variables, target_apply_fn, target_variables,
                jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(eps),
                jax.random.fold_in(key, j), jnp.asarray(rel_step, jnp.float32),
                num_steps=num_steps, norm=norm, random_start=bool(random_start),
            )  # fmt: skip
            out[:, start : start + m] = np.asarray(correct)[:, :m]
            bar.update(1)
    return out
