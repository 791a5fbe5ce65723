"""Soundness of the smoothing evaluation: the smoothed classifier under EOT vs plain PGD.

Randomized smoothing must be attacked adaptively: the smoothed classifier is
evaluated on examples of ``attacks.eot_attack`` (PGD on its expected prediction over
the smoothing noise) next to those of plain PGD on the base model, the non-adaptive
attack (Athalye et al. 2018; Salman et al. 2019, section 3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust._batching import batch_size_for, iter_batches
from fairrobust._checks import (
    check_choice,
    check_epsilons,
    check_fraction,
    check_int,
    check_norm,
    check_positive,
    check_xy,
    fail,
)
from fairrobust._io import progress as _progress
from fairrobust._io import to_jsonable
from fairrobust.attacks import OBJECTIVES, eot_attack, pgd
from fairrobust.evaluation._verdicts import eps_label, fmt_values, verdict_of
from fairrobust.evaluation.checks import strongest_attack_correct
from fairrobust.models import ApplyFn
from fairrobust.smoothing import resolve_noise, sample_counts, smoothed_predict

__all__ = ["SmoothedAttackCheck", "SmoothingAttackConfig", "smoothed_robust_correct"]


@dataclasses.dataclass(frozen=True)
class SmoothingAttackConfig:
    """Settings of the adaptive attack on a randomized-smoothing classifier.

    Attributes:
      sigma: smoothing noise standard deviation (> 0).
      num_noise: M, noise draws per EOT step (>= 1).
      num_samples: N, noise draws of the majority vote that evaluates g (>= 1).
      noise: noise family (a name of :func:`fairrobust.smoothing.available_noises`).
      objective: one of :data:`OBJECTIVES`.
      alpha: if set, PREDICT's binomial-test abstention at level alpha (an
        abstention counts as wrong); None means a plain majority vote.
      chunk_size: draws per scan step of :func:`fairrobust.smoothing.sample_counts`.
    """

    sigma: float
    num_noise: int = 8
    num_samples: int = 100
    noise: str = "gaussian"
    objective: str = "mean_softmax"
    alpha: float | None = None
    chunk_size: int = 16

    @classmethod
    def coerce(cls, value: Any) -> SmoothingAttackConfig:
        """The checked config of a config, a dict of its fields or ``(sigma, M, N)``.

        Raises:
          ValueError: another type, or a field out of range (the message names it).
        """
        if isinstance(value, SmoothingAttackConfig):
            cfg = value
        elif isinstance(value, (tuple, list)) and 1 <= len(value) <= 3:
            cfg = SmoothingAttackConfig(*value)
        elif isinstance(value, dict):
            cfg = SmoothingAttackConfig(**value)
        else:
            fail(
                "smoothing",
                "a SmoothingAttackConfig, a dict of its fields or a tuple "
                "(sigma, num_noise, num_samples)",
                repr(value),
            )
        check_positive("sigma", cfg.sigma)
        check_int("num_noise", cfg.num_noise, 1)
        check_int("num_samples", cfg.num_samples, 1)
        check_int("chunk_size", cfg.chunk_size, 1)
        resolve_noise(cfg.noise)
        check_choice("objective", cfg.objective, OBJECTIVES)
        if cfg.alpha is not None and not 0.0 < float(cfg.alpha) < 1.0:
            fail("alpha", "None or a number in (0, 1)", repr(cfg.alpha))
        return cfg


@dataclasses.dataclass(frozen=True, eq=False)
class SmoothedAttackCheck:
    """Smoothed-classifier accuracy under EOT vs plain PGD (:func:`smoothed_robust_correct`).

    Attributes:
      epsilons: float ``[e]``.
      config: the :class:`SmoothingAttackConfig`.
      num_steps: PGD / EOT steps.
      eot_correct: smoothed correctness on EOT examples ``[e, n]``.
      plain_correct: smoothed correctness on plain-PGD-on-the-base-model examples ``[e, n]``.
      eot_accuracy, plain_accuracy: ``[e]``.
      verdict, reasons, tolerance: as in :class:`ConvergenceCheck`.
    """

    epsilons: np.ndarray
    config: SmoothingAttackConfig
    num_steps: int
    eot_correct: np.ndarray
    plain_correct: np.ndarray
    eot_accuracy: np.ndarray
    plain_accuracy: np.ndarray
    verdict: str
    reasons: tuple[str, ...]
    tolerance: float

    name = "adaptive attack on smoothing"

    @property
    def all_reasons(self) -> tuple[str, ...]:
        return self.reasons

    @property
    def strongest_correct(self) -> np.ndarray:
        """Per-example worst case of the smoothed classifier over both attacks, ``[e, n]``."""
        return strongest_attack_correct(self.eot_correct, self.plain_correct)

    def summary(self) -> str:
        """One line of numbers: the smoothing settings and EOT vs plain accuracy per epsilon."""
        return (
            f"sigma={self.config.sigma:g}, M={self.config.num_noise}, "
            f"N={self.config.num_samples}; EOT {fmt_values(self.eot_accuracy)}"
            f" vs plain {fmt_values(self.plain_accuracy)}"
        )

    def to_dict(self, include_examples: bool = False) -> dict:
        d = {"check": self.name, **dataclasses.asdict(self)}
        if not include_examples:
            d.pop("eot_correct")
            d.pop("plain_correct")
        return to_jsonable(d)


def _smoothed_correct(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: np.ndarray,
    key: jax.Array,
    cfg: SmoothingAttackConfig,
    num_classes: int,
    batch_size: int,
) -> np.ndarray:
    """Correctness ``(n,)`` of the smoothed classifier (majority vote or PREDICT) on x."""
    n = x.shape[0]
    idx = np.arange(n, dtype=np.int32)
    preds = np.empty(n, np.int64)
    # The last batch is padded (no recompilation); padded rows are dropped.
    for _, start, m, sel in iter_batches(idx, batch_size_for(batch_size, n)):
        counts = sample_counts(
            apply_fn, variables, x[jnp.asarray(sel)], key, num_samples=cfg.num_samples,
            sigma=cfg.sigma, num_classes=num_classes, noise=cfg.noise,
            chunk_size=cfg.chunk_size, indices=jnp.asarray(sel),
        )  # fmt: skip
        counts = np.asarray(counts)[:m]
        if cfg.alpha is None:
            preds[start : start + m] = np.argmax(counts, axis=-1)
        else:
            preds[start : start + m] = smoothed_predict(counts, cfg.alpha)
    return preds == y


def _pgd_examples(apply_fn, variables, x, y, eps, key, *, num_steps, norm, rel_step, batch_size):
    """Plain PGD adversarial examples on the base model, batched: ``(n, T)``."""
    outs = []
    for _, _, m, (xb, yb) in iter_batches((x, y), batch_size_for(batch_size, x.shape[0])):
        adv = pgd(
            apply_fn, variables, jnp.asarray(xb), jnp.asarray(yb), float(eps), key,
            num_steps=num_steps, norm=norm, rel_step=rel_step,
        )  # fmt: skip
        outs.append(adv[:m])
    return jnp.concatenate(outs) if outs else jnp.asarray(x)


def smoothed_robust_correct(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    epsilons: Any,
    key: jax.Array,
    *,
    num_classes: int,
    smoothing_config: SmoothingAttackConfig | tuple | dict,
    num_steps: int = 100,
    norm: str = "linf",
    rel_step: float = 0.2,
    tolerance: float = 0.02,
    batch_size: int = 64,
    progress: bool = True,
) -> SmoothedAttackCheck:
    """Smoothed-classifier robust accuracy under the adaptive (EOT) and the plain attack.

    For each eps, the smoothed classifier ``g`` (majority vote over N noise draws
    with :func:`fairrobust.smoothing.sample_counts`, or PREDICT's abstention at
    ``alpha``; an abstention is wrong) classifies

    * ``x_eot = attacks.eot_attack(...)`` (adaptive: PGD on the expected prediction), and
    * ``x_pgd = attacks.pgd(base model)`` (the plain, non-adaptive attack),

    giving ``eot_correct`` and ``plain_correct`` ``[e, n]`` side by side (feed both
    to ``metrics.auc_acc`` / ``defense_parity`` for per-group parity). Keys:
    ``fold_in(key, 0)`` EOT noise, ``fold_in(key, 1)`` the evaluation draws, shared
    by both attacks (common random numbers) and independent of the attack noise.
    Warns (Athalye et al. 2018; Salman et al. 2019, section 3) when

    * ``plain_overestimates``: ``plain_acc - eot_acc > tolerance`` -- evaluating the
      smoothed classifier with the base-model attack overstates its robustness;
    * ``eot_weaker``: ``eot_acc - plain_acc > tolerance`` -- the adaptive attack is
      weaker than the plain one (raise M or the number of steps).

    Args:
      apply_fn, variables: the base classifier f.
      x: clean waveforms in [-1, 1], ``(n, T)``.
      y: integer labels ``(n,)``.
      epsilons: budgets ``[e]``, each >= 0.
      key: PRNG key.
      num_classes: C >= 2.
      smoothing_config: :class:`SmoothingAttackConfig` (or a tuple
        ``(sigma, num_noise, num_samples)`` / a dict of its fields).
      num_steps: PGD / EOT steps >= 1.
      norm: "linf" or "l2".
      rel_step: step size as a fraction of eps (> 0).
      tolerance: material accuracy difference in [0, 1].
      batch_size: examples per call.
      progress: show a progress bar over the epsilons.

    Returns:
      :class:`SmoothedAttackCheck`.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = check_xy(x, y)
    eps = check_epsilons(epsilons)
    cfg = SmoothingAttackConfig.coerce(smoothing_config)
    num_classes = check_int("num_classes", num_classes, 2)
    num_steps = check_int("num_steps", num_steps, 1)
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    tolerance = check_fraction("tolerance", tolerance)
    batch_size = check_int("batch_size", batch_size, 1)
    k_eot, k_eval = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    eot_c = np.zeros((eps.shape[0], x.shape[0]), bool)
    plain_c = np.zeros_like(eot_c)
    with _progress(eps.shape[0], desc="EOT on smoothing", enabled=progress) as bar:
        for i, e in enumerate(eps):
            x_eot = eot_attack(
                apply_fn, variables, x, y, float(e), k_eot, sigma=cfg.sigma,
                num_noise=cfg.num_noise, num_steps=num_steps, noise=cfg.noise, norm=norm,
                rel_step=rel_step, objective=cfg.objective, batch_size=batch_size,
            )  # fmt: skip
            x_pgd = _pgd_examples(
                apply_fn, variables, x, y, e, k_eot, num_steps=num_steps, norm=norm,
                rel_step=rel_step, batch_size=batch_size,
            )  # fmt: skip
            for adv, out in ((x_eot, eot_c), (x_pgd, plain_c)):
                out[i] = _smoothed_correct(
                    apply_fn, variables, adv, y, k_eval, cfg, num_classes, batch_size
                )
            bar.update(1)
    n = max(x.shape[0], 1)
    eot_acc, plain_acc = eot_c.sum(-1) / n, plain_c.sum(-1) / n
    reasons = []
    for e, ea, pa in zip(eps, eot_acc, plain_acc, strict=True):
        if pa - ea > tolerance:
            reasons.append(
                f"plain_overestimates: eps={eps_label(e)}: smoothed accuracy {pa:.3f} under "
                f"plain PGD on the base model vs {ea:.3f} under EOT; the non-adaptive "
                f"evaluation overstates robustness (report the EOT numbers)"
            )
        if ea - pa > tolerance:
            reasons.append(
                f"eot_weaker: eps={eps_label(e)}: EOT accuracy {ea:.3f} exceeds plain-attack "
                f"accuracy {pa:.3f}; raise num_noise or num_steps"
            )
    return SmoothedAttackCheck(
        epsilons=eps,
        config=cfg,
        num_steps=num_steps,
        eot_correct=eot_c,
        plain_correct=plain_c,
        eot_accuracy=eot_acc,
        plain_accuracy=plain_acc,
        verdict=verdict_of(reasons),
        reasons=tuple(reasons),
        tolerance=tolerance,
    )
