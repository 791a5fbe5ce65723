"""Evaluation soundness checks: is the attack behind a fairness verdict strong enough?

A Defense Parity number is only as good as the attack that produced the robust
accuracies it integrates. Following Carlini et al. (2019, "On Evaluating
Adversarial Robustness", sections 3-5), Athalye, Carlini & Wagner (2018,
"Obfuscated Gradients Give a False Sense of Security") and the checklist of
Tekwani & Parmar ("Critical Checkpoints for Evaluating Defence Models"), this
module runs one evaluator per question and returns plain records with a
``"pass"`` / ``"warn"`` verdict, the reasons and the numbers:

* :func:`attack_convergence` -- robust accuracy vs number of PGD steps
  (1, 10, 50, 100 by default) per epsilon. Warns when the last step count still
  lowers accuracy materially (not converged), when more steps *raise* it (the
  last iterate oscillates), or when PGD is weaker than one-step FGSM (a broken
  attack). The AISec'23 paper (section 4.2) states that 100 steps "were
  sufficient for attack convergence"; this check verifies it per model.
* :func:`budget_curve_check` -- robust accuracy must fall towards chance as
  epsilon grows; warns on a plateau well above chance at the largest budget
  (gradient masking) and on a non-monotone curve.
* :func:`random_restarts` -- k random restarts, worst case per example.
* :func:`eot_attack` / :func:`smoothed_robust_correct` -- an adaptive attack on
  the randomized-smoothing classifier (PGD on the expected prediction under the
  smoothing noise, expectation over transformation with M draws per step),
  reported next to the plain PGD-on-the-base-model attack.
* :func:`transfer_attack` -- adversarial examples crafted on an independently
  trained surrogate, evaluated on the target.
* :func:`strongest_attack_correct` -- per-example AND over attacks, so Defense
  Parity can be computed under the strongest attack tried.

:func:`run_soundness_checks` runs the applicable checks and returns a
:class:`SoundnessReport` (``to_dict()`` for results files, ``to_markdown()``
for the report). Plain attacks use :mod:`fairrobust.attacks` (the attack the
studies use), so the verdicts are about that exact attack.

Keys: every function takes an explicit key; sub-keys are ``fold_in(key, i)``
with a fixed ``i`` per check / restart / role, so results are deterministic for
a given key and batch size.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fairrobust import attacks, metrics, smoothing
from fairrobust._io import progress, to_jsonable
from fairrobust.smoothing import resolve_noise

__all__ = [
    "DEFAULT_STEPS",
    "OBJECTIVES",
    "BudgetCheck",
    "ConvergenceCheck",
    "RestartCheck",
    "SmoothedAttackCheck",
    "SmoothingAttackConfig",
    "SoundnessReport",
    "TransferCheck",
    "attack_convergence",
    "budget_curve_check",
    "eot_attack",
    "eot_gradient",
    "random_restarts",
    "run_soundness_checks",
    "smoothed_robust_correct",
    "strongest_attack_correct",
    "transfer_attack",
]

ApplyFn = Callable[[Any, jax.Array], jax.Array]

#: PGD step counts of the convergence check (issue 7; the paper uses 100).
DEFAULT_STEPS: tuple[int, ...] = (1, 10, 50, 100)
#: EOT objectives: cross-entropy of the mean softmax (SmoothAdv) or mean cross-entropy.
OBJECTIVES: tuple[str, ...] = ("mean_softmax", "mean_loss")
PASS, WARN = "pass", "warn"

_TINY = 1e-12  # guards L2 normalisations against a zero gradient / perturbation


# ----------------------------------------------------------------------------- validation


def _check_epsilons(epsilons: Any, name: str = "epsilons") -> np.ndarray:
    """Finite budgets >= 0 as float32 ``[e]`` (a scalar becomes ``[1]``)."""
    try:
        arr = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected finite numbers >= 0, got {epsilons!r}") from exc
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: expected a non-empty set of finite values >= 0, got {arr}")
    return arr.astype(np.float32)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_steps(steps: Any) -> tuple[int, ...]:
    """Distinct step counts >= 1, sorted; at least two are needed to judge convergence."""
    try:
        values = [_check_int("steps", s, 1) for s in steps]
    except TypeError:
        raise ValueError(f"steps: expected a sequence of integers >= 1, got {steps!r}") from None
    out = tuple(sorted(set(values)))
    if len(out) < 2:
        raise ValueError(f"steps: expected at least two distinct step counts, got {steps!r}")
    return out


def _check_positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def _check_fraction(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return v


def _check_norm(norm: str) -> str:
    if norm not in attacks.NORMS:
        raise ValueError(f"norm: expected one of {attacks.NORMS}, got {norm!r}")
    return norm


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    return objective


def _check_xy(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x, y: expected shapes (n, time) and (n,), got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected integer labels, got dtype {y.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: contains NaN or infinite values")
    return x, y


def _verdict(reasons: Sequence[str]) -> str:
    return WARN if reasons else PASS


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3f}"


def _eps_label(e: float) -> str:
    return f"{float(e):g}"


# ----------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True, eq=False)
class ConvergenceCheck:
    """Robust accuracy vs number of PGD steps, per epsilon (see :func:`attack_convergence`).

    Attributes:
      epsilons: float ``[e]``.
      steps: sorted step counts ``[S]``.
      accuracy: robust accuracy ``[S, e]``.
      fgsm_accuracy: one-step FGSM accuracy ``[e]``.
      correct: per-example correctness ``[S, e, n]``.
      fgsm_correct: ``[e, n]``.
      verdicts: per epsilon, "pass" or "warn".
      reasons: per epsilon, the reasons for a warning (``"code: text"``).
      tolerance: accuracy difference (absolute, in [0, 1]) that counts as material.
    """

    epsilons: np.ndarray
    steps: tuple[int, ...]
    accuracy: np.ndarray
    fgsm_accuracy: np.ndarray
    correct: np.ndarray
    fgsm_correct: np.ndarray
    verdicts: tuple[str, ...]
    reasons: tuple[tuple[str, ...], ...]
    tolerance: float

    name = "attack convergence"

    @property
    def verdict(self) -> str:
        return WARN if WARN in self.verdicts else PASS

    @property
    def all_reasons(self) -> tuple[str, ...]:
        return tuple(r for rs in self.reasons for r in rs)

    @property
    def strongest_correct(self) -> np.ndarray:
        """Per-example worst case over every step count and FGSM, ``[e, n]``."""
        return strongest_attack_correct(*self.correct, self.fgsm_correct)

    def to_dict(self, include_examples: bool = False) -> dict:
        d = {
            "check": self.name,
            "verdict": self.verdict,
            "epsilons": self.epsilons,
            "steps": list(self.steps),
            "accuracy": self.accuracy,
            "fgsm_accuracy": self.fgsm_accuracy,
            "verdicts": list(self.verdicts),
            "reasons": [list(r) for r in self.reasons],
            "tolerance": self.tolerance,
        }
        if include_examples:
            d["correct"] = self.correct
            d["fgsm_correct"] = self.fgsm_correct
        return to_jsonable(d)


class _CheckRecord:
    """Shared behaviour of the simple check records: reasons and a JSON form.

    ``to_dict`` leaves out the per-example arrays named in ``_per_example``
    unless ``include_examples``.
    """

    name: ClassVar[str] = ""
    _per_example: ClassVar[tuple[str, ...]] = ("correct",)

    @property
    def all_reasons(self) -> tuple[str, ...]:
        return self.reasons  # pyright: ignore[reportAttributeAccessIssue]

    def to_dict(self, include_examples: bool = False) -> dict:
        d = {"check": self.name, **dataclasses.asdict(self)}  # pyright: ignore[reportArgumentType]
        if not include_examples:
            for key in self._per_example:
                d.pop(key, None)
        return to_jsonable(d)


@dataclasses.dataclass(frozen=True, eq=False)
class BudgetCheck(_CheckRecord):
    """Robust accuracy vs attack budget (see :func:`budget_curve_check`).

    Attributes:
      epsilons: float ``[e]``, sorted increasing.
      accuracy: robust accuracy ``[e]`` in the same order.
      chance: ``1 / num_classes``.
      chance_margin: accuracy above chance still counted as "at chance".
      tolerance: rise that counts as non-monotone.
      verdict: "pass" or "warn".
      reasons: ``"code: text"`` strings.
    """

    epsilons: np.ndarray
    accuracy: np.ndarray
    chance: float
    chance_margin: float
    tolerance: float
    verdict: str
    reasons: tuple[str, ...]

    name = "budget curve"


@dataclasses.dataclass(frozen=True, eq=False)
class RestartCheck(_CheckRecord):
    """Worst case over random restarts vs a single run (see :func:`random_restarts`).

    Attributes:
      epsilons: float ``[e]``.
      restarts: number of random restarts.
      num_steps: PGD steps of each restart.
      single_accuracy: accuracy of the single (clean-start) run ``[e]``.
      worst_accuracy: accuracy of the per-example worst case ``[e]``.
      correct: worst-case per-example correctness ``[e, n]``.
      verdict, reasons, tolerance: as in :class:`ConvergenceCheck`.
    """

    epsilons: np.ndarray
    restarts: int
    num_steps: int
    single_accuracy: np.ndarray
    worst_accuracy: np.ndarray
    correct: np.ndarray
    verdict: str
    reasons: tuple[str, ...]
    tolerance: float

    name = "random restarts"


@dataclasses.dataclass(frozen=True, eq=False)
class TransferCheck(_CheckRecord):
    """Transfer attack from a surrogate vs the white-box attack (:func:`transfer_attack`).

    Attributes:
      epsilons: float ``[e]``.
      accuracy: target accuracy on surrogate-crafted examples ``[e]``.
      whitebox_accuracy: white-box PGD accuracy of the target ``[e]``.
      correct: per-example target correctness under transfer ``[e, n]``.
      verdict, reasons, tolerance: as in :class:`ConvergenceCheck`.
    """

    epsilons: np.ndarray
    accuracy: np.ndarray
    whitebox_accuracy: np.ndarray
    correct: np.ndarray
    verdict: str
    reasons: tuple[str, ...]
    tolerance: float

    name = "transfer attack"


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

    def to_dict(self, include_examples: bool = False) -> dict:
        d = {"check": self.name, **dataclasses.asdict(self)}
        if not include_examples:
            d.pop("eot_correct")
            d.pop("plain_correct")
        return to_jsonable(d)


# ----------------------------------------------------------------------------- combinators


def strongest_attack_correct(*correct_arrays: Any) -> np.ndarray:
    """Per-example worst case over attacks: elementwise AND of correctness arrays.

    An example counts as robust at a budget only if every attack tried failed on
    it (Carlini et al. 2019, section 5.2: report the minimum over attacks, per
    example). Feed the result to ``metrics.auc_acc`` / ``metrics.defense_parity``
    to get Defense Parity under the strongest attack tried.

    Args:
      *correct_arrays: boolean arrays of one common shape, e.g. ``[e, n]``.

    Returns:
      NumPy bool array of that shape.

    Raises:
      ValueError: no arrays, or shapes differ.
    """
    if not correct_arrays:
        raise ValueError("correct_arrays: expected at least one correctness array")
    arrays = [np.asarray(a, dtype=bool) for a in correct_arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(
            f"correct_arrays: expected one common shape, got {[a.shape for a in arrays]}"
        )
    return np.logical_and.reduce(arrays, axis=0) if len(arrays) > 1 else arrays[0].copy()


# ----------------------------------------------------------------------------- convergence


def attack_convergence(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    epsilons: Any,
    key: jax.Array,
    *,
    steps: Sequence[int] = DEFAULT_STEPS,
    norm: str = "linf",
    rel_step: float = 0.2,
    tolerance: float = 0.02,
    batch_size: int = 64,
) -> ConvergenceCheck:
    """Robust accuracy vs number of PGD steps per epsilon, with a verdict.

    For each step count ``s`` in ``steps`` runs ``attacks.robust_correct`` (PGD,
    clean start, step ``alpha = rel_step * eps``), and once FGSM (one step of size
    eps). Per epsilon, with ``acc[s]`` the robust accuracy after ``s`` steps and
    ``s_1 < ... < s_S``, the check warns when (Carlini et al. 2019, sections
    4.4 and 5.2; Tekwani & Parmar, section III-F/I):

    * ``not_converged``: ``acc[s_{S-1}] - acc[s_S] > tolerance`` (the last extra
      steps still lowered accuracy materially: more steps are needed);
    * ``steps_raise_accuracy``: ``acc[s_S] - acc[s_{S-1}] > tolerance`` (the last
      iterate got *worse* for the attacker: step size too large / oscillation);
    * ``weaker_than_fgsm``: ``acc[s_S] - acc_FGSM > tolerance`` (the iterative
      attack is weaker than the one-step attack: a broken attack).

    Cost: ``sum(steps) + 1`` gradient steps per example and epsilon.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits [b, C]`` (static: stable object).
      variables: model variables.
      x: clean waveforms in [-1, 1], shape ``(n, T)``.
      y: integer labels ``(n,)``.
      epsilons: budgets ``[e]``, each >= 0.
      key: PRNG key (the attacks are deterministic; kept for API symmetry).
      steps: at least two distinct step counts >= 1 (default 1, 10, 50, 100).
      norm: "linf" or "l2".
      rel_step: PGD step size as a fraction of eps (> 0; paper: 0.2).
      tolerance: material accuracy difference in [0, 1] (default 0.02).
      batch_size: examples per vmapped attack call.

    Returns:
      :class:`ConvergenceCheck` with accuracies ``[S, e]``, per-example
      correctness ``[S, e, n]`` and per-epsilon verdicts.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = _check_xy(x, y)
    eps = _check_epsilons(epsilons)
    step_counts = _check_steps(steps)
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    tolerance = _check_fraction("tolerance", tolerance)
    batch_size = _check_int("batch_size", batch_size, 1)

    def run(num_steps: int, rs: float, k: int) -> np.ndarray:
        return attacks.robust_correct(
            apply_fn, variables, x, y, eps, jax.random.fold_in(key, k),
            num_steps=num_steps, norm=norm, rel_step=rs, batch_size=batch_size,
        )  # fmt: skip

    correct = np.stack([run(s, rel_step, i) for i, s in enumerate(step_counts)])  # [S, e, n]
    fgsm_correct = run(1, 1.0, len(step_counts))  # FGSM: one step of size eps
    acc = correct.mean(axis=-1) if x.shape[0] else np.full(correct.shape[:2], np.nan)
    fgsm_acc = fgsm_correct.mean(axis=-1) if x.shape[0] else np.full(eps.shape, np.nan)

    verdicts, reasons = [], []
    s_prev, s_last = step_counts[-2], step_counts[-1]
    for j, e in enumerate(eps):
        prev, last, one = float(acc[-2, j]), float(acc[-1, j]), float(fgsm_acc[j])
        rs = []
        if prev - last > tolerance:
            rs.append(
                f"not_converged: eps={_eps_label(e)}: {s_last} steps lowered accuracy by "
                f"{prev - last:.3f} vs {s_prev} steps (> {tolerance:g}); run more steps"
            )
        if last - prev > tolerance:
            rs.append(
                f"steps_raise_accuracy: eps={_eps_label(e)}: {s_last} steps gave "
                f"{last - prev:.3f} higher accuracy than {s_prev} steps (> {tolerance:g}); "
                f"step size too large or the last iterate oscillates"
            )
        if last - one > tolerance:
            rs.append(
                f"weaker_than_fgsm: eps={_eps_label(e)}: PGD-{s_last} accuracy {last:.3f} "
                f"exceeds FGSM accuracy {one:.3f} by more than {tolerance:g}; the "
                f"iterative attack is broken (step size, gradients)"
            )
        verdicts.append(_verdict(rs))
        reasons.append(tuple(rs))
    return ConvergenceCheck(
        epsilons=eps,
        steps=step_counts,
        accuracy=acc,
        fgsm_accuracy=fgsm_acc,
        correct=correct,
        fgsm_correct=fgsm_correct,
        verdicts=tuple(verdicts),
        reasons=tuple(reasons),
        tolerance=tolerance,
    )


# ----------------------------------------------------------------------------- budget curve


def budget_curve_check(
    accuracies: Any,
    epsilons: Any,
    num_classes: int,
    *,
    chance_margin: float = 0.1,
    tolerance: float = 0.02,
) -> BudgetCheck:
    """Robust accuracy must fall towards chance as the budget grows.

    With the points sorted by epsilon and ``chance = 1 / num_classes``, warns when
    (Carlini et al. 2019, section 5.4: "verify that accuracy reaches chance /
    0% as the distortion bound increases"; Athalye et al. 2018, section 3.1):

    * ``plateau_above_chance``: ``acc(eps_max) > chance + chance_margin`` -- an
      unbounded attack must succeed, so a curve that stays well above chance
      at the largest budget points to gradient masking (or a too small grid);
    * ``non_monotone``: ``acc(eps_{i+1}) - acc(eps_i) > tolerance`` for some i --
      a larger budget contains every smaller one, so accuracy can only rise if
      the attack is failing to optimise.

    An untargeted attack usually drives accuracy *below* chance; that passes.

    Args:
      accuracies: robust accuracy per budget ``[e]`` in [0, 1].
      epsilons: budgets ``[e]`` (any order; distinct).
      num_classes: C >= 2.
      chance_margin: allowed excess over chance at the largest budget, in [0, 1].
      tolerance: allowed rise between consecutive budgets, in [0, 1].

    Returns:
      :class:`BudgetCheck`.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    eps = _check_epsilons(epsilons)
    acc = np.asarray(accuracies, np.float64).reshape(-1)
    if acc.shape != eps.shape:
        raise ValueError(
            f"accuracies: expected shape {eps.shape} (one per epsilon), got {acc.shape}"
        )
    if np.any(np.isfinite(acc) & ((acc < 0) | (acc > 1))):
        raise ValueError(f"accuracies: expected values in [0, 1], got {acc}")
    if len(np.unique(eps)) != eps.size:
        raise ValueError(f"epsilons: expected distinct values, got {eps}")
    num_classes = _check_int("num_classes", num_classes, 2)
    chance_margin = _check_fraction("chance_margin", chance_margin)
    tolerance = _check_fraction("tolerance", tolerance)
    order = np.argsort(eps, kind="stable")
    eps, acc = eps[order], acc[order]
    chance = 1.0 / num_classes
    reasons = []
    if np.isfinite(acc[-1]) and acc[-1] > chance + chance_margin:
        reasons.append(
            f"plateau_above_chance: accuracy {acc[-1]:.3f} at the largest eps="
            f"{_eps_label(eps[-1])} is above chance {chance:.3f} + {chance_margin:g}; "
            f"suspect gradient masking (try more steps, restarts, BPDA / EOT) or extend "
            f"the epsilon grid"
        )
    rises = np.diff(acc)
    for i in np.flatnonzero(rises > tolerance):
        reasons.append(
            f"non_monotone: accuracy rose by {rises[i]:.3f} from eps={_eps_label(eps[i])} to "
            f"eps={_eps_label(eps[i + 1])} (> {tolerance:g}); the attack is not optimising well"
        )
    return BudgetCheck(
        epsilons=eps,
        accuracy=acc,
        chance=chance,
        chance_margin=chance_margin,
        tolerance=tolerance,
        verdict=_verdict(reasons),
        reasons=tuple(reasons),
    )


# ----------------------------------------------------------------------------- restarts


def random_restarts(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    eps: Any,
    key: jax.Array,
    *,
    restarts: int = 5,
    num_steps: int = 100,
    norm: str = "linf",
    rel_step: float = 0.2,
    include_clean_start: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-example worst case of PGD over random restarts.

    ``correct[i] = AND_r [f(PGD_r(x_i)) == y_i]``: an example is robust only if
    every run failed on it (Madry et al. 2018; Carlini et al. 2019, section
    4.4). Restart ``r`` (0-based) starts from a uniform random point of the
    eps-ball drawn from ``fold_in(key, r + 1)``; with ``include_clean_start`` the
    plain clean-start run of the studies is included too, so the result is never
    less strict than that run (worst case <= single run, elementwise).

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits`` (static: stable object).
      variables: model variables.
      x: clean waveforms in [-1, 1], ``(n, T)``.
      y: integer labels ``(n,)``.
      eps: budget >= 0, a scalar, or budgets ``[e]``.
      key: PRNG key of the random starts.
      restarts: number of random restarts k >= 1.
      num_steps: PGD steps per run, >= 1.
      norm: "linf" or "l2".
      rel_step: PGD step size as a fraction of eps (> 0).
      include_clean_start: also AND in the clean-start run.
      batch_size: examples per vmapped attack call.

    Returns:
      NumPy bool correctness, ``(n,)`` for a scalar eps, ``(e, n)`` for ``[e]``.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = _check_xy(x, y)
    scalar = np.ndim(eps) == 0
    eps_arr = _check_epsilons(eps, "eps")
    restarts = _check_int("restarts", restarts, 1)
    num_steps = _check_int("num_steps", num_steps, 1)
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    batch_size = _check_int("batch_size", batch_size, 1)
    runs = [(r + 1, True) for r in range(restarts)]
    if include_clean_start:
        runs.insert(0, (0, False))
    out = np.ones((eps_arr.shape[0], x.shape[0]), bool)
    for k, random_start in runs:
        out &= attacks.robust_correct(
            apply_fn, variables, x, y, eps_arr, jax.random.fold_in(key, k),
            num_steps=num_steps, norm=norm, rel_step=rel_step,
            random_start=random_start, batch_size=batch_size,
        )  # fmt: skip
    return out[0] if scalar else out


# ----------------------------------------------------------------------------- transfer


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
        x_adv = attacks.pgd(
            source_apply_fn, source_variables, x, y, eps, key,
            num_steps=num_steps, norm=norm, rel_step=step, random_start=random_start,
        )  # fmt: skip
        return jnp.argmax(target_apply_fn(target_variables, x_adv), axis=-1) == y

    adv = jax.vmap(one)(epsilons)
    # eps = 0: exactly the clean prediction (as attacks.robust_correct).
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
) -> np.ndarray:
    """Target correctness on adversarial examples crafted on a surrogate model.

    ``correct[i, n] = [argmax f_target(PGD^{f_source}_{eps_i}(x_n)) == y_n]``.
    With an independently trained surrogate this is the black-box transfer
    attack of Papernot et al. (2017); a transfer attack that beats the white-box
    attack is a symptom of gradient masking (Athalye et al. 2018, section 3.1;
    Carlini et al. 2019, section 4.6). With ``source = target`` it equals
    ``attacks.robust_correct`` (same batching and keys: batch ``j`` uses
    ``fold_in(key, j)``).

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

    Returns:
      NumPy bool ``(e, n)``.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = _check_xy(x, y)
    eps = _check_epsilons(epsilons)
    num_steps = _check_int("num_steps", num_steps, 1)
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    batch_size = _check_int("batch_size", batch_size, 1)
    n = x.shape[0]
    out = np.zeros((eps.shape[0], n), bool)
    if n == 0:
        return out
    bs = min(batch_size, n)
    starts = range(0, n, bs)
    with progress(len(starts), desc=f"transfer PGD-{norm}") as bar:
        for j, start in enumerate(starts):
            xb, yb = _pad(x[start : start + bs], bs, x), _pad(y[start : start + bs], bs, y)
            correct = _transfer_kernel(
                source_apply_fn, source_variables, target_apply_fn, target_variables,
                jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(eps),
                jax.random.fold_in(key, j), jnp.asarray(rel_step, jnp.float32),
                num_steps=num_steps, norm=norm, random_start=bool(random_start),
            )  # fmt: skip
            m = min(bs, n - start)
            out[:, start : start + m] = np.asarray(correct)[:, :m]
            bar.update(1)
    return out


def _pad(block: np.ndarray, size: int, full: np.ndarray) -> np.ndarray:
    """Pad a last partial batch with the first rows of ``full`` (results are dropped)."""
    if block.shape[0] == size:
        return block
    return np.concatenate([block, full[: size - block.shape[0]]])


# ----------------------------------------------------------------------------- EOT


def _eot_objective(
    apply_fn: ApplyFn,
    variables: Any,
    x: jax.Array,
    y: jax.Array,
    noise: jax.Array,
    objective: str,
) -> jax.Array:
    """Summed per-example EOT loss; ``noise`` is ``[b, M, T]`` (already scaled by sigma)."""
    b, m, t = noise.shape
    logits = apply_fn(variables, (x[:, None, :] + noise).reshape(b * m, t))
    logp = jax.nn.log_softmax(logits.reshape(b, m, -1), axis=-1)
    onehot = jax.nn.one_hot(y, logp.shape[-1], dtype=logp.dtype)  # [b, C]
    logp_y = jnp.sum(logp * onehot[:, None, :], axis=-1)  # [b, M]
    if objective == "mean_softmax":
        # -log (1/M) sum_j softmax(f(x + d_j))_y, via logsumexp for stability.
        per_example = math.log(m) - jax.nn.logsumexp(logp_y, axis=-1)
    else:
        per_example = -jnp.mean(logp_y, axis=-1)
    return per_example.sum()  # sum: each example's gradient is its own


def _eot_noise(
    noise_fn: Any, keys: jax.Array, t: Any, num_noise: int, length: int, dtype: Any
) -> jax.Array:
    """Unit-std noise ``[b, M, T]`` of step ``t``; example i uses ``fold_in(keys[i], t)``."""
    return jax.vmap(lambda k: noise_fn(jax.random.fold_in(k, t), (num_noise, length), dtype))(keys)


def _example_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)


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
    t = x.shape[1]
    alpha = rel_step * eps
    noise_keys = _example_keys(jax.random.fold_in(key, 0), indices)
    start_keys = _example_keys(jax.random.fold_in(key, 1), indices)
    grad_fn = jax.grad(
        lambda xa, nz: _eot_objective(apply_fn, variables, xa, y, sigma * nz, objective)
    )

    def l2(v: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(jnp.square(v), axis=1, keepdims=True))

    def project(delta: jax.Array) -> jax.Array:
        if norm == "linf":
            return jnp.clip(delta, -eps, eps)
        n = l2(delta)
        return delta * jnp.where(n > eps, eps / jnp.maximum(n, _TINY), 1.0)

    def step(i: jax.Array, xa: jax.Array) -> jax.Array:
        nz = _eot_noise(noise_fn, noise_keys, 0 if fixed_noise else i, num_noise, t, x.dtype)
        g = grad_fn(xa, nz)
        direction = jnp.sign(g) if norm == "linf" else g / jnp.maximum(l2(g), _TINY)
        return jnp.clip(x + project(xa + alpha * direction - x), -1.0, 1.0)

    x0 = x
    if random_start:
        if norm == "linf":
            u = jax.vmap(lambda k: jax.random.uniform(k, (t,), x.dtype, -1.0, 1.0))(start_keys)
            delta0 = u * eps
        else:
            d = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (t,), x.dtype))(
                start_keys
            )
            r = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 1), (1,), x.dtype))(
                start_keys
            )
            delta0 = d / jnp.maximum(l2(d), _TINY) * (r ** (1.0 / t)) * eps
        x0 = jnp.clip(x + delta0, -1.0, 1.0)
    return lax.fori_loop(0, num_steps, step, x0)


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_noise", "noise_fn", "objective"))
def _eot_grad_kernel(apply_fn, variables, x, y, key, sigma, indices, *, num_noise, noise_fn,
                     objective):  # fmt: skip
    """Gradient of the EOT objective at x with the step-0 noise of :func:`_eot_kernel`."""
    keys = _example_keys(jax.random.fold_in(key, 0), indices)
    nz = _eot_noise(noise_fn, keys, 0, num_noise, x.shape[1], x.dtype)
    return jax.grad(lambda xa: _eot_objective(apply_fn, variables, xa, y, sigma * nz, objective))(x)


def _eot_common(x, y, sigma, num_noise, noise, objective, indices):
    """Validation shared by :func:`eot_attack` and :func:`eot_gradient`."""
    x, y = _check_xy(x, y)
    sigma = _check_positive("sigma", sigma)
    num_noise = _check_int("num_noise", num_noise, 1)
    noise_fn = resolve_noise(noise)
    _check_objective(objective)
    n = x.shape[0]
    if indices is None:
        idx = np.arange(n, dtype=np.int32)
    else:
        idx = np.asarray(indices)
        if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices: expected integers of shape ({n},), got {idx.shape}")
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
    section 4.3). Each PGD step (as in :mod:`fairrobust.attacks`: sign step for
    L-inf, unit-L2 step for L2, step ``alpha = rel_step * eps``, projection onto
    the ball and [-1, 1]) follows the gradient of a Monte Carlo objective over M
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
    so results do not depend on batching. ``fixed_noise=True`` reuses the step-0
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
      noise: a noise family name of :mod:`fairrobust.smoothing` (unit std, scaled by sigma).
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
    eps_arr = _check_epsilons(eps, "eps")
    if eps_arr.shape != (1,) or np.ndim(eps) != 0:
        raise ValueError(f"eps: expected a scalar budget, got shape {np.shape(eps)}")
    num_steps = _check_int("num_steps", num_steps, 1)
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    n = x.shape[0]
    bs = n if batch_size is None else _check_int("batch_size", batch_size, 1)
    bs = max(1, min(bs, n))
    outs = []
    for start in range(0, n, bs):
        m = min(bs, n - start)
        xb = _pad(x[start : start + bs], bs, x)
        yb = _pad(y[start : start + bs], bs, y)
        ib = _pad(idx[start : start + bs], bs, idx)
        adv = _eot_kernel(
            apply_fn, variables, jnp.asarray(xb), jnp.asarray(yb),
            jnp.asarray(eps_arr[0]), key, jnp.asarray(sigma, jnp.float32),
            jnp.asarray(rel_step, jnp.float32), jnp.asarray(ib),
            num_steps=num_steps, num_noise=num_noise, norm=norm, noise_fn=noise_fn,
            objective=objective, random_start=bool(random_start), fixed_noise=bool(fixed_noise),
        )  # fmt: skip
        outs.append(adv[:m])
    return jnp.concatenate(outs) if outs else jnp.asarray(x)


# ----------------------------------------------------------------------------- smoothed evaluation


def _as_smoothing_config(smoothing_cfg: Any) -> SmoothingAttackConfig:
    if isinstance(smoothing_cfg, SmoothingAttackConfig):
        cfg = smoothing_cfg
    elif isinstance(smoothing_cfg, (tuple, list)) and 1 <= len(smoothing_cfg) <= 3:
        cfg = SmoothingAttackConfig(*smoothing_cfg)
    elif isinstance(smoothing_cfg, dict):
        cfg = SmoothingAttackConfig(**smoothing_cfg)
    else:
        raise ValueError(
            "smoothing: expected a SmoothingAttackConfig, a dict of its fields or a tuple "
            f"(sigma, num_noise, num_samples), got {smoothing_cfg!r}"
        )
    _check_positive("sigma", cfg.sigma)
    _check_int("num_noise", cfg.num_noise, 1)
    _check_int("num_samples", cfg.num_samples, 1)
    _check_int("chunk_size", cfg.chunk_size, 1)
    resolve_noise(cfg.noise)
    _check_objective(cfg.objective)
    if cfg.alpha is not None and not 0.0 < float(cfg.alpha) < 1.0:
        raise ValueError(f"alpha: expected None or a number in (0, 1), got {cfg.alpha!r}")
    return cfg


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
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        # Pad the last batch (no recompilation); padded rows are dropped.
        sel = _pad(idx[start : start + batch_size], min(batch_size, n), idx)
        counts = smoothing.sample_counts(
            apply_fn, variables, x[jnp.asarray(sel)], key, num_samples=cfg.num_samples,
            sigma=cfg.sigma, num_classes=num_classes, noise=cfg.noise,
            chunk_size=cfg.chunk_size, indices=jnp.asarray(sel),
        )  # fmt: skip
        counts = np.asarray(counts)[:m]
        if cfg.alpha is None:
            preds[start : start + m] = np.argmax(counts, axis=-1)
        else:
            preds[start : start + m] = smoothing.smoothed_predict(counts, cfg.alpha)
    return preds == y


def _pgd_examples(apply_fn, variables, x, y, eps, key, *, num_steps, norm, rel_step, batch_size):
    """Plain PGD adversarial examples on the base model, batched: ``(n, T)``."""
    n, outs = x.shape[0], []
    bs = max(1, min(batch_size, n))
    for start in range(0, n, bs):
        xb = jnp.asarray(_pad(x[start : start + bs], bs, x))
        yb = jnp.asarray(_pad(y[start : start + bs], bs, y))
        adv = attacks.pgd(
            apply_fn, variables, xb, yb, float(eps), key,
            num_steps=num_steps, norm=norm, rel_step=rel_step,
        )  # fmt: skip
        outs.append(adv[: min(bs, n - start)])
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
) -> SmoothedAttackCheck:
    """Smoothed-classifier robust accuracy under the adaptive (EOT) and the plain attack.

    For each eps, the smoothed classifier ``g`` (majority vote over N noise draws
    with :func:`fairrobust.smoothing.sample_counts`, or PREDICT's abstention at
    ``alpha``; an abstention is wrong) classifies

    * ``x_eot = eot_attack(...)`` (adaptive: PGD on the expected prediction), and
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

    Returns:
      :class:`SmoothedAttackCheck`.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = _check_xy(x, y)
    eps = _check_epsilons(epsilons)
    cfg = _as_smoothing_config(smoothing_config)
    num_classes = _check_int("num_classes", num_classes, 2)
    num_steps = _check_int("num_steps", num_steps, 1)
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    tolerance = _check_fraction("tolerance", tolerance)
    batch_size = _check_int("batch_size", batch_size, 1)
    k_eot, k_eval = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    eot_c = np.zeros((eps.shape[0], x.shape[0]), bool)
    plain_c = np.zeros_like(eot_c)
    with progress(eps.shape[0], desc="EOT on smoothing") as bar:
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
                f"plain_overestimates: eps={_eps_label(e)}: smoothed accuracy {pa:.3f} under "
                f"plain PGD on the base model vs {ea:.3f} under EOT; the non-adaptive "
                f"evaluation overstates robustness (report the EOT numbers)"
            )
        if ea - pa > tolerance:
            reasons.append(
                f"eot_weaker: eps={_eps_label(e)}: EOT accuracy {ea:.3f} exceeds plain-attack "
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
        verdict=_verdict(reasons),
        reasons=tuple(reasons),
        tolerance=tolerance,
    )


# ----------------------------------------------------------------------------- report


@dataclasses.dataclass(frozen=True, eq=False)
class SoundnessReport:
    """All soundness checks of one attacked model (see :func:`run_soundness_checks`).

    Attributes:
      epsilons: float ``[e]``.
      num_classes: C.
      convergence: :class:`ConvergenceCheck`.
      budget: :class:`BudgetCheck` of the longest PGD run.
      restarts: :class:`RestartCheck` or None (not run).
      transfer: :class:`TransferCheck` or None (no surrogate).
      smoothing: :class:`SmoothedAttackCheck` or None (no smoothing config).
      strongest_correct: base-model per-example worst case over every attack ``[e, n]``.
      correct: per-example correctness ``[e, n]`` per attack name (base and smoothed),
        in table order; the input of ``metrics.auc_acc`` / ``defense_parity``.
      accuracy: robust accuracy ``[e]`` per attack name.
      group_accuracy: per-group robust accuracy ``[e, g]`` per attack name (None
        without ``masks``).
      parity: Defense Parity per attack name (None without group masks or with
        fewer than two distinct epsilons).
      group_names: names of the groups of ``masks`` (or None).
      config: the settings the checks ran with.
    """

    epsilons: np.ndarray
    num_classes: int
    convergence: ConvergenceCheck
    budget: BudgetCheck
    restarts: RestartCheck | None
    transfer: TransferCheck | None
    smoothing: SmoothedAttackCheck | None
    strongest_correct: np.ndarray
    correct: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]
    group_accuracy: dict[str, np.ndarray] | None
    parity: dict[str, float] | None
    group_names: tuple[str, ...] | None
    config: dict

    @property
    def checks(self) -> tuple[Any, ...]:
        """The checks that ran, in report order."""
        return tuple(
            c
            for c in (self.convergence, self.budget, self.restarts, self.transfer, self.smoothing)
            if c is not None
        )

    @property
    def verdict(self) -> str:
        return WARN if any(c.verdict == WARN for c in self.checks) else PASS

    def to_dict(self, include_examples: bool = False) -> dict:
        """JSON-able dict (NaN -> None); per-example arrays only with ``include_examples``."""
        d = {
            "verdict": self.verdict,
            "epsilons": self.epsilons,
            "num_classes": self.num_classes,
            "checks": [c.to_dict(include_examples) for c in self.checks],
            "accuracy": self.accuracy,
            "group_accuracy": self.group_accuracy,
            "parity": self.parity,
            "group_names": self.group_names,
            "config": self.config,
        }
        if include_examples:
            d["strongest_correct"] = self.strongest_correct
            d["correct"] = self.correct
        return to_jsonable(d)

    def to_markdown(self) -> str:
        """A report section: one pass/warn row per check, robust accuracy per attack, reasons."""
        warned = sum(c.verdict == WARN for c in self.checks)
        lines = [
            "## Evaluation soundness",
            "",
            f"Overall: **{self.verdict}** ({warned} of {len(self.checks)} checks warn).",
            "",
            "| check | verdict | summary |",
            "| --- | --- | --- |",
        ]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.verdict} | {_summary(c)} |")
        eps_cols = " | ".join(f"eps={_eps_label(e)}" for e in self.epsilons)
        has_parity = self.parity is not None
        header = f"| attack | {eps_cols} |" + (" Defense Parity |" if has_parity else "")
        lines += ["", "Robust accuracy by attack:", "", header]
        lines.append("| --- " * (len(self.epsilons) + 1 + has_parity) + "|")
        for name, acc in self.accuracy.items():
            row = f"| {name} | " + " | ".join(_fmt(float(a)) for a in acc) + " |"
            if has_parity:
                assert self.parity is not None
                row += f" {_fmt(float(self.parity.get(name, np.nan)))} |"
            lines.append(row)
        reasons = [r for c in self.checks for r in c.all_reasons]
        if reasons:
            lines += ["", "Warnings:", ""] + [f"- {r}" for r in reasons]
        return "\n".join(lines) + "\n"


def _summary(check: Any) -> str:
    """One-line numbers of a check for the markdown table."""
    if isinstance(check, ConvergenceCheck):
        last = ", ".join(_fmt(a) for a in check.accuracy[-1])
        return (
            f"steps {list(check.steps)}; PGD-{check.steps[-1]} acc [{last}]; "
            f"FGSM acc [{', '.join(_fmt(a) for a in check.fgsm_accuracy)}]"
        )
    if isinstance(check, BudgetCheck):
        return (
            f"acc {_fmt(check.accuracy[-1])} at eps={_eps_label(check.epsilons[-1])}; "
            f"chance {_fmt(check.chance)}"
        )
    if isinstance(check, RestartCheck):
        return (
            f"{check.restarts} restarts x {check.num_steps} steps; single "
            f"[{', '.join(_fmt(a) for a in check.single_accuracy)}] -> worst "
            f"[{', '.join(_fmt(a) for a in check.worst_accuracy)}]"
        )
    if isinstance(check, TransferCheck):
        return (
            f"transfer [{', '.join(_fmt(a) for a in check.accuracy)}] vs white-box "
            f"[{', '.join(_fmt(a) for a in check.whitebox_accuracy)}]"
        )
    assert isinstance(check, SmoothedAttackCheck)
    return (
        f"sigma={check.config.sigma:g}, M={check.config.num_noise}, "
        f"N={check.config.num_samples}; EOT [{', '.join(_fmt(a) for a in check.eot_accuracy)}]"
        f" vs plain [{', '.join(_fmt(a) for a in check.plain_accuracy)}]"
    )


def _parity(correct: np.ndarray, eps: np.ndarray, masks: Any, valid: Any) -> float:
    """Defense Parity of one attack from per-example correctness ``[e, n]``."""
    order = np.argsort(eps, kind="stable")
    auc = metrics.auc_acc(correct[order], eps[order], masks)
    return float(metrics.defense_parity(auc, valid))


def run_soundness_checks(
    apply_fn: ApplyFn,
    variables: Any,
    x: Any,
    y: Any,
    epsilons: Any,
    key: jax.Array,
    *,
    num_classes: int,
    steps: Sequence[int] = DEFAULT_STEPS,
    restarts: int | None = 5,
    restart_steps: int | None = None,
    surrogate: tuple[ApplyFn, Any] | None = None,
    smoothing_config: SmoothingAttackConfig | tuple | dict | None = None,
    masks: Any = None,
    valid: Any = None,
    group_names: Sequence[str] | None = None,
    norm: str = "linf",
    rel_step: float = 0.2,
    tolerance: float = 0.02,
    chance_margin: float = 0.1,
    batch_size: int = 64,
) -> SoundnessReport:
    """Runs every applicable soundness check on one attacked model.

    1. :func:`attack_convergence` over ``steps`` (key ``fold_in(key, 0)``);
    2. :func:`budget_curve_check` on the longest PGD run;
    3. :func:`random_restarts` with ``restarts`` random starts of
       ``restart_steps`` (default ``max(steps)``) steps, ANDed with the clean-start
       run of the same length; warns ``restarts_lower_accuracy`` when the worst
       case is more than ``tolerance`` below the single run (key ``fold_in(key, 1)``);
    4. with ``surrogate = (apply_fn, variables)`` of an independently trained
       model: :func:`transfer_attack`, warning ``transfer_stronger_than_whitebox``
       when the transfer attack beats white-box PGD by more than ``tolerance``
       (a gradient-masking symptom; key ``fold_in(key, 2)``);
    5. with ``smoothing_config``: :func:`smoothed_robust_correct` (key ``fold_in(key, 3)``).

    The base-model strongest attack is the per-example AND over every PGD step
    count, FGSM, the restarts and the transfer attack
    (:func:`strongest_attack_correct`); with ``masks`` Defense Parity
    (``metrics.auc_acc`` + ``metrics.defense_parity``) is reported per attack so the
    report can show parity under the strongest attack tried.

    Args:
      apply_fn, variables: the model under evaluation (``apply_fn`` static).
      x: clean waveforms in [-1, 1], ``(n, T)``.
      y: integer labels ``(n,)``.
      epsilons: budgets ``[e]``, each >= 0 (include 0 for clean accuracy).
      key: PRNG key.
      num_classes: C >= 2 (chance level ``1 / C``).
      steps: PGD step counts of the convergence check (>= 2 distinct, each >= 1).
      restarts: number of random restarts >= 1, or None to skip.
      restart_steps: PGD steps per restart (default ``max(steps)``).
      surrogate: ``(apply_fn, variables)`` of a surrogate model, or None.
      smoothing_config: :class:`SmoothingAttackConfig` / ``(sigma, M, N)``, or None.
      masks: group masks ``[g, n]`` for Defense Parity, or None.
      valid: bool ``[g]`` groups counted in parity (``Groups.valid``).
      group_names: names of the groups (recorded in the report).
      norm: "linf" or "l2".
      rel_step: PGD step size as a fraction of eps.
      tolerance: material accuracy difference in [0, 1].
      chance_margin: allowed excess over chance at the largest budget.
      batch_size: examples per attack call.

    Returns:
      :class:`SoundnessReport`.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = _check_xy(x, y)
    eps = _check_epsilons(epsilons)
    step_counts = _check_steps(steps)
    num_classes = _check_int("num_classes", num_classes, 2)
    if restarts is not None:
        restarts = _check_int("restarts", restarts, 1)
    r_steps = step_counts[-1] if restart_steps is None else restart_steps
    r_steps = _check_int("restart_steps", r_steps, 1)
    cfg = None if smoothing_config is None else _as_smoothing_config(smoothing_config)
    if surrogate is not None and not (isinstance(surrogate, tuple) and len(surrogate) == 2):
        raise ValueError(f"surrogate: expected (apply_fn, variables), got {type(surrogate)}")
    _check_norm(norm)
    rel_step = _check_positive("rel_step", rel_step)
    tolerance = _check_fraction("tolerance", tolerance)
    chance_margin = _check_fraction("chance_margin", chance_margin)
    if masks is not None:
        masks = np.asarray(masks, bool)
        if masks.ndim != 2 or masks.shape[1] != x.shape[0]:
            raise ValueError(f"masks: expected shape (g, {x.shape[0]}), got {masks.shape}")
    n = max(x.shape[0], 1)
    attack_kw = {"norm": norm, "rel_step": rel_step, "batch_size": batch_size}
    total = 2 + (restarts is not None) + (surrogate is not None) + (cfg is not None)
    with progress(total, desc="soundness checks") as bar:
        conv = attack_convergence(
            apply_fn, variables, x, y, eps, jax.random.fold_in(key, 0),
            steps=step_counts, tolerance=tolerance, **attack_kw,
        )  # fmt: skip
        bar.update(1)
        main = conv.correct[-1]  # the longest PGD run: the attack the study uses
        # Per-example correctness of every attack, in table order; accuracies and
        # Defense Parity are derived from it.
        correct_by_attack = {f"PGD-{s}": conv.correct[i] for i, s in enumerate(conv.steps)}
        correct_by_attack["FGSM"] = conv.fgsm_correct
        strongest = [conv.strongest_correct]
        budget = budget_curve_check(
            conv.accuracy[-1], eps, num_classes, chance_margin=chance_margin, tolerance=tolerance
        )
        bar.update(1)

        restart_check = None
        if restarts is not None:
            worst = random_restarts(
                apply_fn, variables, x, y, eps, jax.random.fold_in(key, 1), restarts=restarts,
                num_steps=r_steps, include_clean_start=False, **attack_kw,
            )  # fmt: skip
            single = main
            if r_steps != step_counts[-1]:  # the clean-start run of the restart length
                single = attacks.robust_correct(
                    apply_fn, variables, x, y, eps, key, num_steps=r_steps, **attack_kw
                )
            worst = worst & single
            single_acc, worst_acc = single.sum(-1) / n, worst.sum(-1) / n
            rs = tuple(
                f"restarts_lower_accuracy: eps={_eps_label(e)}: {restarts} random restarts "
                f"lowered accuracy from {s:.3f} to {w:.3f} (> {tolerance:g}); report the "
                f"worst case and consider more restarts / steps"
                for e, s, w in zip(eps, single_acc, worst_acc, strict=True)
                if s - w > tolerance
            )
            restart_check = RestartCheck(
                epsilons=eps, restarts=restarts, num_steps=r_steps, single_accuracy=single_acc,
                worst_accuracy=worst_acc, correct=worst, verdict=_verdict(rs), reasons=rs,
                tolerance=tolerance,
            )  # fmt: skip
            name = f"PGD-{r_steps} x{restarts} restarts"
            correct_by_attack[name] = worst
            strongest.append(worst)
            bar.update(1)

        transfer_check = None
        if surrogate is not None:
            t_correct = transfer_attack(
                surrogate[0], surrogate[1], apply_fn, variables, x, y, eps,
                jax.random.fold_in(key, 2), num_steps=step_counts[-1], **attack_kw,
            )  # fmt: skip
            t_acc, wb_acc = t_correct.sum(-1) / n, main.sum(-1) / n
            rs = tuple(
                f"transfer_stronger_than_whitebox: eps={_eps_label(e)}: transfer accuracy "
                f"{t:.3f} < white-box {w:.3f} - {tolerance:g}; the white-box gradients "
                f"are likely masked"
                for e, t, w in zip(eps, t_acc, wb_acc, strict=True)
                if w - t > tolerance
            )
            transfer_check = TransferCheck(
                epsilons=eps, accuracy=t_acc, whitebox_accuracy=wb_acc, correct=t_correct,
                verdict=_verdict(rs), reasons=rs, tolerance=tolerance,
            )  # fmt: skip
            correct_by_attack["transfer"] = t_correct
            strongest.append(t_correct)
            bar.update(1)

        strongest_correct = strongest_attack_correct(*strongest)
        correct_by_attack["strongest (base model)"] = strongest_correct

        smooth_check = None
        if cfg is not None:
            smooth_check = smoothed_robust_correct(
                apply_fn, variables, x, y, eps, jax.random.fold_in(key, 3),
                num_classes=num_classes, smoothing_config=cfg, num_steps=step_counts[-1],
                tolerance=tolerance, **attack_kw,
            )  # fmt: skip
            for name, c in (
                ("smoothed: plain PGD on base", smooth_check.plain_correct),
                ("smoothed: EOT", smooth_check.eot_correct),
                ("smoothed: strongest", smooth_check.strongest_correct),
            ):
                correct_by_attack[name] = c
            bar.update(1)

    accuracy = {name: c.sum(-1) / n for name, c in correct_by_attack.items()}
    group_accuracy = parity = None
    if masks is not None:
        group_accuracy = {
            name: np.asarray(metrics.group_rates(c, masks)) for name, c in correct_by_attack.items()
        }
    if masks is not None and eps.shape[0] >= 2 and len(np.unique(eps)) == eps.shape[0]:
        parity = {name: _parity(c, eps, masks, valid) for name, c in correct_by_attack.items()}
    config = {
        "steps": list(step_counts),
        "restarts": restarts,
        "restart_steps": r_steps if restarts is not None else None,
        "surrogate": surrogate is not None,
        "smoothing": None if cfg is None else dataclasses.asdict(cfg),
        "norm": norm,
        "rel_step": rel_step,
        "tolerance": tolerance,
        "chance_margin": chance_margin,
        "batch_size": batch_size,
        "num_examples": int(x.shape[0]),
    }
    return SoundnessReport(
        epsilons=eps,
        num_classes=num_classes,
        convergence=conv,
        budget=budget,
        restarts=restart_check,
        transfer=transfer_check,
        smoothing=smooth_check,
        strongest_correct=strongest_correct,
        correct=correct_by_attack,
        accuracy=accuracy,
        group_accuracy=group_accuracy,
        parity=parity,
        group_names=None if group_names is None else tuple(group_names),
        config=config,
    )
