"""Evaluators, one per question, each returning a plain record (big_vision style).

Modules (every public name is re-exported here): ``accuracy`` (clean accuracy per
split and group: :func:`accuracy_report`, :func:`accuracy_by_split`), ``checks`` (is
the plain attack strong enough? :func:`attack_convergence`,
:func:`budget_curve_check`, :func:`random_restarts`, the transfer record,
:func:`strongest_attack_correct`), ``smoothed`` (the smoothed classifier under EOT vs
plain PGD: :func:`smoothed_robust_correct`), ``soundness`` (all checks of one model:
:func:`run_soundness_checks` -> :class:`SoundnessReport`). Every check record has
``verdict``, ``all_reasons``, ``to_dict()`` and a one-line ``summary()``.
"""

from fairrobust.evaluation.accuracy import accuracy_by_split as accuracy_by_split
from fairrobust.evaluation.accuracy import accuracy_report as accuracy_report
from fairrobust.evaluation.accuracy import format_accuracy_report as format_accuracy_report
from fairrobust.evaluation.checks import DEFAULT_STEPS as DEFAULT_STEPS
from fairrobust.evaluation.checks import BudgetCheck as BudgetCheck
from fairrobust.evaluation.checks import ConvergenceCheck as ConvergenceCheck
from fairrobust.evaluation.checks import RestartCheck as RestartCheck
from fairrobust.evaluation.checks import TransferCheck as TransferCheck
from fairrobust.evaluation.checks import attack_convergence as attack_convergence
from fairrobust.evaluation.checks import budget_curve_check as budget_curve_check
from fairrobust.evaluation.checks import random_restarts as random_restarts
from fairrobust.evaluation.checks import strongest_attack_correct as strongest_attack_correct
from fairrobust.evaluation.smoothed import SmoothedAttackCheck as SmoothedAttackCheck
from fairrobust.evaluation.smoothed import SmoothingAttackConfig as SmoothingAttackConfig
from fairrobust.evaluation.smoothed import smoothed_robust_correct as smoothed_robust_correct
from fairrobust.evaluation.soundness import SoundnessReport as SoundnessReport
from fairrobust.evaluation.soundness import run_soundness_checks as run_soundness_checks

__all__ = [
    "DEFAULT_STEPS",
    "BudgetCheck",
    "ConvergenceCheck",
    "RestartCheck",
    "SmoothedAttackCheck",
    "SmoothingAttackConfig",
    "SoundnessReport",
    "TransferCheck",
    "accuracy_by_split",
    "accuracy_report",
    "attack_convergence",
    "budget_curve_check",
    "format_accuracy_report",
    "random_restarts",
    "run_soundness_checks",
    "smoothed_robust_correct",
    "strongest_attack_correct",
]
