"""Evasion attacks: PGD / FGSM (L-inf, L2), epsilon sweeps, EOT on smoothing, transfer.

Modules (every public name is re-exported here): ``pgd`` (the PGD loop over a
per-example objective -- cross-entropy or APGD-DLR's :func:`dlr_margin` --, :func:`pgd`,
:func:`fgsm`, the sweep :func:`robust_correct` and its kernels), ``eot``
(:func:`eot_attack` / :func:`eot_gradient`: PGD with the expectation-over-transformation
objective on a randomized-smoothing classifier),
``transfer`` (:func:`transfer_attack`: examples crafted on a surrogate).
"""

from fairrobust.attacks.eot import OBJECTIVES as OBJECTIVES
from fairrobust.attacks.eot import eot_attack as eot_attack
from fairrobust.attacks.eot import eot_gradient as eot_gradient
from fairrobust.attacks.eot import eot_objective as eot_objective
from fairrobust.attacks.pgd import ATTACK_ROWS as ATTACK_ROWS
from fairrobust.attacks.pgd import LOSSES as LOSSES
from fairrobust.attacks.pgd import NORMS as NORMS
from fairrobust.attacks.pgd import Objective as Objective
from fairrobust.attacks.pgd import clean_correct as clean_correct
from fairrobust.attacks.pgd import clean_predict as clean_predict
from fairrobust.attacks.pgd import cross_entropy as cross_entropy
from fairrobust.attacks.pgd import default_block_rows as default_block_rows
from fairrobust.attacks.pgd import dlr_loss as dlr_loss
from fairrobust.attacks.pgd import dlr_margin as dlr_margin
from fairrobust.attacks.pgd import fgsm as fgsm
from fairrobust.attacks.pgd import pgd as pgd
from fairrobust.attacks.pgd import pgd_kernel as pgd_kernel
from fairrobust.attacks.pgd import pgd_loop as pgd_loop
from fairrobust.attacks.pgd import prepare_sweep as prepare_sweep
from fairrobust.attacks.pgd import robust_correct as robust_correct
from fairrobust.attacks.pgd import sweep_correct as sweep_correct
from fairrobust.attacks.pgd import sweep_predict as sweep_predict
from fairrobust.attacks.pgd import uniform_ball as uniform_ball
from fairrobust.attacks.transfer import transfer_attack as transfer_attack

__all__ = [
    "ATTACK_ROWS",
    "LOSSES",
    "NORMS",
    "OBJECTIVES",
    "Objective",
    "clean_correct",
    "clean_predict",
    "cross_entropy",
    "default_block_rows",
    "dlr_loss",
    "dlr_margin",
    "eot_attack",
    "eot_gradient",
    "eot_objective",
    "fgsm",
    "pgd",
    "pgd_kernel",
    "pgd_loop",
    "prepare_sweep",
    "robust_correct",
    "sweep_correct",
    "sweep_predict",
    "transfer_attack",
    "uniform_ball",
]
