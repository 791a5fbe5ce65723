"""Soundness checks of a plain attack: convergence, budget curve, random restarts, transfer.

A Defense Parity number is only as good as the attack that produced the robust
accuracies it integrates. Following Carlini et al. (2019, "On Evaluating
Adversarial Robustness", sections 3-5), Athalye, Carlini & Wagner (2018,
"Obfuscated Gradients Give a False Sense of Security") and the checklist of
Tekwani & Parmar ("Critical Checkpoints for Evaluating Defence Models"), each
evaluator answers one question and returns a plain record with a ``"pass"`` /
``"warn"`` verdict, the reasons, the numbers and a one-line :meth:`summary`:

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
* :class:`TransferCheck` -- the transfer attack (``attacks.transfer_attack``) vs
  white-box PGD.
* :func:`strongest_attack_correct` -- per-example AND over attacks, so Defense
  Parity can be computed under the strongest attack tried.

Plain attacks use :mod:`fairrobust.attacks` (the attack the studies use), so the
verdicts are about that exact attack. Keys: sub-keys are ``fold_in(key, i)`` with a
fixed ``i`` per check / restart, so results are deterministic for a given key and
batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import numpy as np

from fairrobust._checks import (
    check_epsilons,
    check_fraction,
    check_int,
    check_norm,
    check_positive,
    check_xy,
    fail,
)
from fairrobust._io import to_jsonable
from fairrobust.attacks import robust_correct
from fairrobust.evaluation._verdicts import (
    PASS,
    WARN,
    eps_label,
    fmt_value,
    fmt_values,
    verdict_of,
)
from fairrobust.models import ApplyFn

__all__ = [
    "DEFAULT_STEPS",
    "BudgetCheck",
    "ConvergenceCheck",
    "RestartCheck",
    "TransferCheck",
    "attack_convergence",
    "budget_curve_check",
    "check_steps",
    "random_restarts",
    "restart_record",
    "strongest_attack_correct",
    "transfer_record",
]

#: PGD step counts of the convergence check (issue 7; the paper uses 100).
DEFAULT_STEPS: tuple[int, ...] = (1, 10, 50, 100)


def check_steps(steps: Any) -> tuple[int, ...]:
    """Distinct step counts >= 1, sorted; at least two are needed to judge convergence."""
    try:
        values = [check_int("steps", s, 1) for s in steps]
    except TypeError:
        fail("steps", "a sequence of integers >= 1", repr(steps))
    out = tuple(sorted(set(values)))
    if len(out) < 2:
        fail("steps", "at least two distinct step counts", repr(steps))
    return out


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

    def summary(self) -> str:
        """One line of numbers for a report table: the longest run and FGSM per epsilon."""
        return (
            f"steps {list(self.steps)}; PGD-{self.steps[-1]} acc "
            f"{fmt_values(self.accuracy[-1])}; FGSM acc {fmt_values(self.fgsm_accuracy)}"
        )

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

    def summary(self) -> str:
        """One line of numbers: accuracy at the largest budget and chance."""
        return (
            f"acc {fmt_value(self.accuracy[-1])} at eps={eps_label(self.epsilons[-1])}; "
            f"chance {fmt_value(self.chance)}"
        )


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

    def summary(self) -> str:
        """One line of numbers: single-run vs worst-case accuracy per epsilon."""
        return (
            f"{self.restarts} restarts x {self.num_steps} steps; single "
            f"{fmt_values(self.single_accuracy)} -> worst {fmt_values(self.worst_accuracy)}"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class TransferCheck(_CheckRecord):
    """Transfer attack from a surrogate vs the white-box attack (``attacks.transfer_attack``).

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

    def summary(self) -> str:
        """One line of numbers: transfer vs white-box accuracy per epsilon."""
        return (
            f"transfer {fmt_values(self.accuracy)} vs white-box "
            f"{fmt_values(self.whitebox_accuracy)}"
        )


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
        fail("correct_arrays", "at least one correctness array", "none")
    arrays = [np.asarray(a, dtype=bool) for a in correct_arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        fail("correct_arrays", "one common shape", repr([a.shape for a in arrays]))
    return np.logical_and.reduce(arrays, axis=0) if len(arrays) > 1 else arrays[0].copy()


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
    progress: bool = True,
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
      progress: show the attacks' progress bars.

    Returns:
      :class:`ConvergenceCheck` with accuracies ``[S, e]``, per-example
      correctness ``[S, e, n]`` and per-epsilon verdicts.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = check_xy(x, y)
    eps = check_epsilons(epsilons)
    step_counts = check_steps(steps)
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    tolerance = check_fraction("tolerance", tolerance)
    batch_size = check_int("batch_size", batch_size, 1)

    def run(num_steps: int, rs: float, k: int) -> np.ndarray:
        return robust_correct(
            apply_fn, variables, x, y, eps, jax.random.fold_in(key, k),
            num_steps=num_steps, norm=norm, rel_step=rs, batch_size=batch_size,
            progress=progress,
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
                f"not_converged: eps={eps_label(e)}: {s_last} steps lowered accuracy by "
                f"{prev - last:.3f} vs {s_prev} steps (> {tolerance:g}); run more steps"
            )
        if last - prev > tolerance:
            rs.append(
                f"steps_raise_accuracy: eps={eps_label(e)}: {s_last} steps gave "
                f"{last - prev:.3f} higher accuracy than {s_prev} steps (> {tolerance:g}); "
                f"step size too large or the last iterate oscillates"
            )
        if last - one > tolerance:
            rs.append(
                f"weaker_than_fgsm: eps={eps_label(e)}: PGD-{s_last} accuracy {last:.3f} "
                f"exceeds FGSM accuracy {one:.3f} by more than {tolerance:g}; the "
                f"iterative attack is broken (step size, gradients)"
            )
        verdicts.append(verdict_of(rs))
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
    eps = check_epsilons(epsilons)
    acc = np.asarray(accuracies, np.float64).reshape(-1)
    if acc.shape != eps.shape:
        fail("accuracies", f"shape {eps.shape} (one per epsilon)", repr(acc.shape))
    if np.any(np.isfinite(acc) & ((acc < 0) | (acc > 1))):
        fail("accuracies", "values in [0, 1]", repr(acc.tolist()))
    if len(np.unique(eps)) != eps.size:
        fail("epsilons", "distinct values", repr(eps.tolist()))
    num_classes = check_int("num_classes", num_classes, 2)
    chance_margin = check_fraction("chance_margin", chance_margin)
    tolerance = check_fraction("tolerance", tolerance)
    order = np.argsort(eps, kind="stable")
    eps, acc = eps[order], acc[order]
    chance = 1.0 / num_classes
    reasons = []
    if np.isfinite(acc[-1]) and acc[-1] > chance + chance_margin:
        reasons.append(
            f"plateau_above_chance: accuracy {acc[-1]:.3f} at the largest eps="
            f"{eps_label(eps[-1])} is above chance {chance:.3f} + {chance_margin:g}; "
            f"suspect gradient masking (try more steps, restarts, BPDA / EOT) or extend "
            f"the epsilon grid"
        )
    rises = np.diff(acc)
    for i in np.flatnonzero(rises > tolerance):
        reasons.append(
            f"non_monotone: accuracy rose by {rises[i]:.3f} from eps={eps_label(eps[i])} to "
            f"eps={eps_label(eps[i + 1])} (> {tolerance:g}); the attack is not optimising well"
        )
    return BudgetCheck(
        epsilons=eps,
        accuracy=acc,
        chance=chance,
        chance_margin=chance_margin,
        tolerance=tolerance,
        verdict=verdict_of(reasons),
        reasons=tuple(reasons),
    )


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
    progress: bool = True,
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
      progress: show the attacks' progress bars.

    Returns:
      NumPy bool correctness, ``(n,)`` for a scalar eps, ``(e, n)`` for ``[e]``.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = check_xy(x, y)
    scalar = np.ndim(eps) == 0
    eps_arr = check_epsilons(eps, "eps")
    restarts = check_int("restarts", restarts, 1)
    num_steps = check_int("num_steps", num_steps, 1)
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    batch_size = check_int("batch_size", batch_size, 1)
    runs = [(r + 1, True) for r in range(restarts)]
    if include_clean_start:
        runs.insert(0, (0, False))
    out = np.ones((eps_arr.shape[0], x.shape[0]), bool)
    for k, random_start in runs:
        out &= robust_correct(
            apply_fn, variables, x, y, eps_arr, jax.random.fold_in(key, k),
            num_steps=num_steps, norm=norm, rel_step=rel_step,
            random_start=random_start, batch_size=batch_size, progress=progress,
        )  # fmt: skip
    return out[0] if scalar else out


def restart_record(
    epsilons: np.ndarray,
    single: np.ndarray,
    worst: np.ndarray,
    restarts: int,
    num_steps: int,
    tolerance: float,
) -> RestartCheck:
    """The :class:`RestartCheck` of a single clean-start run and its worst case over restarts.

    Warns ``restarts_lower_accuracy`` at every epsilon where the worst case is more than
    ``tolerance`` below the single run (report the worst case; consider more restarts
    or steps).

    Args:
      epsilons: budgets ``[e]``.
      single: correctness ``[e, n]`` of the clean-start run.
      worst: per-example worst case ``[e, n]`` over the restarts and the single run.
      restarts: number of random restarts.
      num_steps: PGD steps of each run.
      tolerance: material accuracy difference in [0, 1].
    """
    n = max(single.shape[-1], 1)
    single_acc, worst_acc = single.sum(-1) / n, worst.sum(-1) / n
    rs = tuple(
        f"restarts_lower_accuracy: eps={eps_label(e)}: {restarts} random restarts "
        f"lowered accuracy from {s:.3f} to {w:.3f} (> {tolerance:g}); report the "
        f"worst case and consider more restarts / steps"
        for e, s, w in zip(epsilons, single_acc, worst_acc, strict=True)
        if s - w > tolerance
    )
    return RestartCheck(
        epsilons=epsilons, restarts=restarts, num_steps=num_steps, single_accuracy=single_acc,
        worst_accuracy=worst_acc, correct=worst, verdict=verdict_of(rs), reasons=rs,
        tolerance=tolerance,
    )  # fmt: skip


def transfer_record(
    epsilons: np.ndarray, correct: np.ndarray, whitebox_correct: np.ndarray, tolerance: float
) -> TransferCheck:
    """The :class:`TransferCheck` of a transfer attack next to the white-box attack.

    Warns ``transfer_stronger_than_whitebox`` at every epsilon where the transfer attack
    beats white-box PGD by more than ``tolerance`` (a gradient-masking symptom).

    Args:
      epsilons: budgets ``[e]``.
      correct: target correctness ``[e, n]`` under the transfer attack.
      whitebox_correct: target correctness ``[e, n]`` under white-box PGD.
      tolerance: material accuracy difference in [0, 1].
    """
    n = max(correct.shape[-1], 1)
    t_acc, wb_acc = correct.sum(-1) / n, whitebox_correct.sum(-1) / n
    rs = tuple(
        f"transfer_stronger_than_whitebox: eps={eps_label(e)}: transfer accuracy "
        f"{t:.3f} < white-box {w:.3f} - {tolerance:g}; the white-box gradients "
        f"are likely masked"
        for e, t, w in zip(epsilons, t_acc, wb_acc, strict=True)
        if w - t > tolerance
    )
    return TransferCheck(
        epsilons=epsilons, accuracy=t_acc, whitebox_accuracy=wb_acc, correct=correct,
        verdict=verdict_of(rs), reasons=rs, tolerance=tolerance,
    )  # fmt: skip
