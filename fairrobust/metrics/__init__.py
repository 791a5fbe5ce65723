"""Group metrics: AUC_acc, Defense Parity, AUC_FPR, FPR Parity, Certified Parity, bootstrap.

Every metric is a masked reduction of per-example values ``[..., n]`` with group
masks ``[g, n]`` (``fairrobust.groups.Groups.masks``), written in ``jnp``,
jitted, and batched over any leading axes (epsilons, thresholds, models, N):
``rates = masks @ values / masks.sum(1)``. Sweep parameters (epsilons,
thresholds / alphas) are traced arguments, so a sweep compiles once.

Definitions (Richards, Raff & Matuszek, AISec '23 and the preprint):

* Eq. 1 ``AUC_acc(s) = int_{eps_min}^{eps_max} acc_s(eps) d eps`` (trapezoid on the grid).
* Eq. 2 Defense Parity ``DP = max_{s, s'} (AUC_acc(s) - AUC_acc(s'))`` over valid groups.
* Eq. 3 ``AUC_FPR(s) = int_{alpha_min}^{alpha_max} FPR_s(alpha) d alpha`` where
  ``FPR_s(alpha)`` is the fraction of clean examples of group ``s`` rejected
  (abstained on) at threshold ``alpha``.
* Eq. 4 FPR Parity ``= max_{s, s'} (AUC_FPR(s) - AUC_FPR(s'))`` over valid groups.

Conventions shared by all functions:

* **Empty groups** give NaN rates. The public functions warn (``RuntimeWarning``
  naming the group indices) when they can see the masks (i.e. when called
  outside ``jit``); under ``jit`` / ``vmap`` the NaN is returned silently.
* **Validity**: parity functions take ``valid [g]`` (``Groups.valid``); groups that
  are invalid (under the minimum size) or whose value is NaN are excluded. With
  fewer than two usable groups a parity number is NaN.
* **Weights**: most functions take ``weights`` (per-example multiplicities,
  broadcastable to the values); the bootstrap uses them to resample by
  reweighting instead of copying data.

Modules (every public name is re-exported here): ``groups`` (group reductions
:func:`group_rates`, :func:`by_group`, :func:`group_min`, :func:`group_max`,
:func:`difference`, :func:`ratio`; parity :func:`max_gap`, :func:`defense_parity`,
:func:`fpr_parity`, :func:`parity_pair`, :func:`parity_pair_names`);
``robustness`` (:func:`accuracy_curves`, :func:`auc_acc`, :func:`auc_acc_by_attribute`,
:func:`trapezoid`); ``fairness`` (:func:`group_confusion`,
:func:`demographic_parity_difference`, :func:`true_positive_rate_difference` (alias
:data:`equal_opportunity_difference`), :func:`false_positive_rate_difference`,
:func:`equalized_odds_difference`, :func:`p_rule`, :func:`fairness_metrics`, and their
bootstrap intervals :class:`FairnessStat`, :func:`fairness_intervals`);
``correlation`` (:func:`pearsonr`, :func:`correlation_matrix`,
:func:`size_correlation`); ``rejection`` (:func:`alpha_grid`,
:func:`rejection_curves`, :func:`auc_fpr`, :func:`auc_fpr_by_attribute`);
``bootstrap`` (:func:`resample_weights`, :func:`bootstrap_ci`,
:class:`GroupRateStat`, :class:`AucAccStat`, :class:`AucFprStat`); ``comparisons``
(:func:`gap_interval`, :func:`pairwise_intervals`, :func:`paired_difference`,
:func:`holm`, :func:`clusters_per_group`: intervals of parity gaps and of paired
differences from bootstrap replicates, and the family-wise correction).
"""

from fairrobust.metrics.bias import BreakingCdfStat as BreakingCdfStat
from fairrobust.metrics.bias import BreakingEpsStat as BreakingEpsStat
from fairrobust.metrics.bias import breaking_epsilon as breaking_epsilon
from fairrobust.metrics.bias import decode_never as decode_never
from fairrobust.metrics.bias import encode_never as encode_never
from fairrobust.metrics.bootstrap import AucAccStat as AucAccStat
from fairrobust.metrics.bootstrap import AucFprStat as AucFprStat
from fairrobust.metrics.bootstrap import BootstrapResult as BootstrapResult
from fairrobust.metrics.bootstrap import GroupRateStat as GroupRateStat
from fairrobust.metrics.bootstrap import bootstrap_ci as bootstrap_ci
from fairrobust.metrics.bootstrap import resample_weights as resample_weights
from fairrobust.metrics.certified import CertifiedAucStat as CertifiedAucStat
from fairrobust.metrics.certified import certified_auc as certified_auc
from fairrobust.metrics.certified import certified_parity as certified_parity
from fairrobust.metrics.certified import correct_radius as correct_radius
from fairrobust.metrics.certified import median_certified_radius as median_certified_radius
from fairrobust.metrics.certified import radius_range as radius_range
from fairrobust.metrics.certified import weighted_median as weighted_median
from fairrobust.metrics.comparisons import Difference as Difference
from fairrobust.metrics.comparisons import PairwiseIntervals as PairwiseIntervals
from fairrobust.metrics.comparisons import clusters_per_group as clusters_per_group
from fairrobust.metrics.comparisons import gap_interval as gap_interval
from fairrobust.metrics.comparisons import holm as holm
from fairrobust.metrics.comparisons import paired_difference as paired_difference
from fairrobust.metrics.comparisons import pairwise_intervals as pairwise_intervals
from fairrobust.metrics.correlation import correlation_matrix as correlation_matrix
from fairrobust.metrics.correlation import pearsonr as pearsonr
from fairrobust.metrics.correlation import size_correlation as size_correlation
from fairrobust.metrics.fairness import FAIRNESS_METRICS as FAIRNESS_METRICS
from fairrobust.metrics.fairness import FairnessStat as FairnessStat
from fairrobust.metrics.fairness import (
    demographic_parity_difference as demographic_parity_difference,
)
from fairrobust.metrics.fairness import equal_opportunity_difference as equal_opportunity_difference
from fairrobust.metrics.fairness import equalized_odds_difference as equalized_odds_difference
from fairrobust.metrics.fairness import fairness_intervals as fairness_intervals
from fairrobust.metrics.fairness import fairness_metrics as fairness_metrics
from fairrobust.metrics.fairness import (
    false_positive_rate_difference as false_positive_rate_difference,
)
from fairrobust.metrics.fairness import group_confusion as group_confusion
from fairrobust.metrics.fairness import p_rule as p_rule
from fairrobust.metrics.fairness import (
    true_positive_rate_difference as true_positive_rate_difference,
)
from fairrobust.metrics.groups import AttributeSummary as AttributeSummary
from fairrobust.metrics.groups import by_group as by_group
from fairrobust.metrics.groups import defense_parity as defense_parity
from fairrobust.metrics.groups import difference as difference
from fairrobust.metrics.groups import fpr_parity as fpr_parity
from fairrobust.metrics.groups import group_max as group_max
from fairrobust.metrics.groups import group_min as group_min
from fairrobust.metrics.groups import group_rates as group_rates
from fairrobust.metrics.groups import max_gap as max_gap
from fairrobust.metrics.groups import parity_pair as parity_pair
from fairrobust.metrics.groups import parity_pair_names as parity_pair_names
from fairrobust.metrics.groups import ratio as ratio
from fairrobust.metrics.rejection import alpha_grid as alpha_grid
from fairrobust.metrics.rejection import auc_fpr as auc_fpr
from fairrobust.metrics.rejection import auc_fpr_by_attribute as auc_fpr_by_attribute
from fairrobust.metrics.rejection import rejection_curves as rejection_curves
from fairrobust.metrics.robustness import accuracy_curves as accuracy_curves
from fairrobust.metrics.robustness import auc_acc as auc_acc
from fairrobust.metrics.robustness import auc_acc_by_attribute as auc_acc_by_attribute
from fairrobust.metrics.robustness import trapezoid as trapezoid

__all__ = [
    "FAIRNESS_METRICS",
    "AttributeSummary",
    "AucAccStat",
    "AucFprStat",
    "BootstrapResult",
    "BreakingCdfStat",
    "BreakingEpsStat",
    "CertifiedAucStat",
    "Difference",
    "FairnessStat",
    "GroupRateStat",
    "PairwiseIntervals",
    "accuracy_curves",
    "alpha_grid",
    "auc_acc",
    "auc_acc_by_attribute",
    "auc_fpr",
    "auc_fpr_by_attribute",
    "bootstrap_ci",
    "breaking_epsilon",
    "by_group",
    "certified_auc",
    "certified_parity",
    "clusters_per_group",
    "correct_radius",
    "correlation_matrix",
    "decode_never",
    "defense_parity",
    "demographic_parity_difference",
    "difference",
    "encode_never",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fairness_intervals",
    "fairness_metrics",
    "false_positive_rate_difference",
    "fpr_parity",
    "gap_interval",
    "group_confusion",
    "group_max",
    "group_min",
    "group_rates",
    "holm",
    "max_gap",
    "median_certified_radius",
    "p_rule",
    "paired_difference",
    "pairwise_intervals",
    "parity_pair",
    "parity_pair_names",
    "pearsonr",
    "radius_range",
    "ratio",
    "rejection_curves",
    "resample_weights",
    "size_correlation",
    "trapezoid",
    "true_positive_rate_difference",
    "weighted_median",
]
