"""All soundness checks of one attacked model: ``run_soundness_checks`` -> ``SoundnessReport``.

Runs the applicable evaluators of :mod:`fairrobust.evaluation.checks` and
:mod:`fairrobust.evaluation.smoothed` on one model and collects their plain records,
the per-example correctness of every attack, robust accuracy per attack and, with
group masks, Defense Parity per attack (so a report can show parity under the
strongest attack tried). ``SoundnessReport.to_dict()`` is the results-file form;
the markdown section is rendered by the report (``fairrobust.report``) from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from fairrobust._checks import (
    check_epsilons,
    check_fraction,
    check_int,
    check_norm,
    check_positive,
    check_shape,
    check_xy,
    fail,
)
from fairrobust._io import progress as _progress
from fairrobust._io import to_jsonable
from fairrobust.attacks import robust_correct, transfer_attack
from fairrobust.evaluation._verdicts import PASS, WARN
from fairrobust.evaluation.checks import (
    DEFAULT_STEPS,
    BudgetCheck,
    ConvergenceCheck,
    RestartCheck,
    TransferCheck,
    attack_convergence,
    budget_curve_check,
    check_steps,
    random_restarts,
    restart_record,
    strongest_attack_correct,
    transfer_record,
)
from fairrobust.evaluation.smoothed import (
    SmoothedAttackCheck,
    SmoothingAttackConfig,
    smoothed_robust_correct,
)
from fairrobust.metrics import auc_acc, defense_parity, group_rates
from fairrobust.models import ApplyFn

__all__ = ["SoundnessReport", "run_soundness_checks"]


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
        """``"warn"`` when any check warns, else ``"pass"``."""
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


def _parity(correct: np.ndarray, eps: np.ndarray, masks: Any, valid: Any) -> float:
    """Defense Parity of one attack from per-example correctness ``[e, n]``."""
    order = np.argsort(eps, kind="stable")
    auc = auc_acc(correct[order], eps[order], masks)
    return float(defense_parity(auc, valid))


def _group_metrics(
    correct_by_attack: dict[str, np.ndarray], eps: np.ndarray, masks: Any, valid: Any
) -> tuple[dict[str, np.ndarray] | None, dict[str, float] | None]:
    """Per attack: group accuracy ``[e, g]`` (with masks) and Defense Parity (also >= 2
    distinct epsilons), else None."""
    if masks is None:
        return None, None
    group_accuracy = {
        name: np.asarray(group_rates(c, masks)) for name, c in correct_by_attack.items()
    }
    if eps.shape[0] < 2 or len(np.unique(eps)) != eps.shape[0]:
        return group_accuracy, None
    parity = {name: _parity(c, eps, masks, valid) for name, c in correct_by_attack.items()}
    return group_accuracy, parity


def _base_model_checks(
    apply_fn: ApplyFn,
    variables: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: np.ndarray,
    key: jax.Array,
    *,
    step_counts: tuple[int, ...],
    restarts: int | None,
    r_steps: int,
    surrogate: tuple[ApplyFn, Any] | None,
    dlr: bool,
    num_classes: int,
    tolerance: float,
    chance_margin: float,
    attack_kw: dict[str, Any],
    bar: Any,
) -> tuple[Any, ...]:
    """Steps 1-5 of :func:`run_soundness_checks`: the base model's checks, in report order.

    Returns:
      ``(convergence, budget, restarts or None, transfer or None, correct by attack,
      the correctness arrays whose AND is the strongest attack)``.
    """
    conv = attack_convergence(
        apply_fn, variables, x, y, eps, jax.random.fold_in(key, 0),
        steps=step_counts, tolerance=tolerance, **attack_kw,
    )  # fmt: skip
    bar.update(1)
    main = conv.correct[-1]  # the longest PGD run: the strongest cross-entropy PGD
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
            single = robust_correct(
                apply_fn, variables, x, y, eps, key, num_steps=r_steps, **attack_kw
            )
        restart_check = restart_record(eps, single, worst & single, restarts, r_steps, tolerance)
        correct_by_attack[f"PGD-{r_steps} x{restarts} restarts"] = restart_check.correct
        strongest.append(restart_check.correct)
        bar.update(1)

    transfer_check = None
    if surrogate is not None:
        t_correct = transfer_attack(
            surrogate[0], surrogate[1], apply_fn, variables, x, y, eps,
            jax.random.fold_in(key, 2), num_steps=step_counts[-1], **attack_kw,
        )  # fmt: skip
        transfer_check = transfer_record(eps, t_correct, main, tolerance)
        correct_by_attack["transfer"] = t_correct
        strongest.append(t_correct)
        bar.update(1)

    if dlr:  # a second loss through the same PGD loop (APGD-DLR's objective)
        d_correct = robust_correct(
            apply_fn, variables, x, y, eps, jax.random.fold_in(key, 4),
            num_steps=step_counts[-1], loss="dlr", **attack_kw,
        )  # fmt: skip
        correct_by_attack[f"PGD-DLR-{step_counts[-1]}"] = d_correct
        strongest.append(d_correct)
        bar.update(1)
    return conv, budget, restart_check, transfer_check, correct_by_attack, strongest


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
    dlr: bool = True,
    smoothing_config: SmoothingAttackConfig | tuple | dict | None = None,
    masks: Any = None,
    valid: Any = None,
    group_names: Sequence[str] | None = None,
    norm: str = "linf",
    rel_step: float = 0.2,
    tolerance: float = 0.02,
    chance_margin: float = 0.1,
    batch_size: int = 64,
    progress: bool = True,
) -> SoundnessReport:
    """Runs every applicable soundness check on one attacked model.

    1. :func:`attack_convergence` over ``steps`` (key ``fold_in(key, 0)``);
    2. :func:`budget_curve_check` on the longest PGD run;
    3. :func:`random_restarts` with ``restarts`` random starts of
       ``restart_steps`` (default ``max(steps)``) steps, ANDed with the clean-start
       run of the same length; warns ``restarts_lower_accuracy`` when the worst
       case is more than ``tolerance`` below the single run (key ``fold_in(key, 1)``);
    4. with ``surrogate = (apply_fn, variables)`` of an independently trained
       model: ``attacks.transfer_attack``, warning ``transfer_stronger_than_whitebox``
       when the transfer attack beats white-box PGD by more than ``tolerance``
       (a gradient-masking symptom; key ``fold_in(key, 2)``);
    5. with ``dlr``: PGD-DLR-``max(steps)``, the same PGD loop on APGD-DLR's loss
       (``attacks.dlr_margin``; Croce & Hein 2020; key ``fold_in(key, 4)``);
    6. with ``smoothing_config``: ``smoothed_robust_correct`` (key ``fold_in(key, 3)``).

    The base-model strongest attack is the per-example AND over every PGD step
    count, FGSM, the restarts, the transfer attack and the DLR attack
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
      dlr: also run PGD on the DLR loss (``max(steps)`` steps).
      smoothing_config: :class:`SmoothingAttackConfig` / ``(sigma, M, N)``, or None.
      masks: group masks ``[g, n]`` for Defense Parity, or None.
      valid: bool ``[g]`` groups counted in parity (``Groups.valid``).
      group_names: names of the groups (recorded in the report).
      norm: "linf" or "l2".
      rel_step: PGD step size as a fraction of eps.
      tolerance: material accuracy difference in [0, 1].
      chance_margin: allowed excess over chance at the largest budget.
      batch_size: examples per attack call.
      progress: show progress bars (the checks' and their attacks'; also silenced by
        ``FAIRROBUST_NO_PROGRESS``).

    Returns:
      :class:`SoundnessReport`.

    Raises:
      ValueError: a bad parameter (the message names it).
    """
    x, y = check_xy(x, y)
    eps = check_epsilons(epsilons)
    step_counts = check_steps(steps)
    num_classes = check_int("num_classes", num_classes, 2)
    if restarts is not None:
        restarts = check_int("restarts", restarts, 1)
    r_steps = step_counts[-1] if restart_steps is None else restart_steps
    r_steps = check_int("restart_steps", r_steps, 1)
    cfg = None if smoothing_config is None else SmoothingAttackConfig.coerce(smoothing_config)
    if surrogate is not None and not (isinstance(surrogate, tuple) and len(surrogate) == 2):
        fail("surrogate", "(apply_fn, variables)", repr(type(surrogate)))
    check_norm(norm)
    rel_step = check_positive("rel_step", rel_step)
    tolerance = check_fraction("tolerance", tolerance)
    chance_margin = check_fraction("chance_margin", chance_margin)
    if masks is not None:
        masks = np.asarray(masks, bool)
        check_shape("masks", masks, (None, x.shape[0]))
    n = max(x.shape[0], 1)
    attack_kw = {"norm": norm, "rel_step": rel_step, "batch_size": batch_size, "progress": progress}
    total = 2 + (restarts is not None) + (surrogate is not None) + dlr + (cfg is not None)
    with _progress(total, desc="soundness checks", enabled=progress) as bar:
        base = _base_model_checks(
            apply_fn, variables, x, y, eps, key, step_counts=step_counts, restarts=restarts,
            r_steps=r_steps, surrogate=surrogate, dlr=bool(dlr), num_classes=num_classes,
            tolerance=tolerance,
            chance_margin=chance_margin, attack_kw=attack_kw, bar=bar,
        )  # fmt: skip
        conv, budget, restart_check, transfer_check, correct_by_attack, strongest = base
        strongest_correct = strongest_attack_correct(*strongest)
        correct_by_attack["strongest (base model)"] = strongest_correct

        smooth_check = None
        if cfg is not None:
            smooth_check = smoothed_robust_correct(
                apply_fn, variables, x, y, eps, jax.random.fold_in(key, 3),
                num_classes=num_classes, smoothing_config=cfg, num_steps=step_counts[-1],
                tolerance=tolerance, **attack_kw,
            )  # fmt: skip
            correct_by_attack["smoothed: plain PGD on base"] = smooth_check.plain_correct
            correct_by_attack["smoothed: EOT"] = smooth_check.eot_correct
            correct_by_attack["smoothed: strongest"] = smooth_check.strongest_correct
            bar.update(1)

    accuracy = {name: c.sum(-1) / n for name, c in correct_by_attack.items()}
    group_accuracy, parity = _group_metrics(correct_by_attack, eps, masks, valid)
    config = {
        "steps": list(step_counts), "restarts": restarts,
        "restart_steps": r_steps if restarts is not None else None,
        "surrogate": surrogate is not None, "dlr_steps": step_counts[-1] if dlr else None,
        "smoothing": None if cfg is None else dataclasses.asdict(cfg), "norm": norm,
        "rel_step": rel_step, "tolerance": tolerance, "chance_margin": chance_margin,
        "batch_size": batch_size, "num_examples": int(x.shape[0]),
    }  # fmt: skip
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
