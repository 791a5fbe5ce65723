"""fairrobust: for whom do ML security defenses defend?

Parity metrics for adversarial training, noise augmentation, preprocessing
defenses, randomized smoothing and neural rejection on speech models, in JAX
(Richards, Raff & Matuszek, AISec '23).

The public API below is re-exported explicitly (``fairrobust.train`` is the
training module; its entry point is ``fairrobust.train.train``). Names are resolved on first
access, so ``import fairrobust.smoothing`` does not import the audio loaders
(librosa, soundfile) and ``import fairrobust`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fairrobust.attacks import eot_attack as eot_attack
    from fairrobust.attacks import fgsm as fgsm
    from fairrobust.attacks import pgd as pgd
    from fairrobust.attacks import robust_correct as robust_correct
    from fairrobust.attacks import transfer_attack as transfer_attack
    from fairrobust.data import DATASETS as DATASETS
    from fairrobust.data import AudioDataset as AudioDataset
    from fairrobust.data import LoadReport as LoadReport
    from fairrobust.data import load_audiomnist as load_audiomnist
    from fairrobust.data import load_bundled as load_bundled
    from fairrobust.data import load_common_voice as load_common_voice
    from fairrobust.data import load_dataset as load_dataset
    from fairrobust.data import load_folder as load_folder
    from fairrobust.data import load_fsdd as load_fsdd
    from fairrobust.data import load_wuw as load_wuw
    from fairrobust.defenses import Preprocess as Preprocess
    from fairrobust.defenses import bpda as bpda
    from fairrobust.defenses import lowpass as lowpass
    from fairrobust.defenses import make_preprocess as make_preprocess
    from fairrobust.defenses import quantize as quantize
    from fairrobust.defenses import spectral_denoise as spectral_denoise
    from fairrobust.defenses import with_preprocess as with_preprocess
    from fairrobust.evaluation import SoundnessReport as SoundnessReport
    from fairrobust.evaluation import attack_convergence as attack_convergence
    from fairrobust.evaluation import budget_curve_check as budget_curve_check
    from fairrobust.evaluation import random_restarts as random_restarts
    from fairrobust.evaluation import run_soundness_checks as run_soundness_checks
    from fairrobust.evaluation import strongest_attack_correct as strongest_attack_correct
    from fairrobust.groups import Groups as Groups
    from fairrobust.groups import all_groups as all_groups
    from fairrobust.groups import group_masks as group_masks
    from fairrobust.groups import training_group_sizes as training_group_sizes
    from fairrobust.metrics import accuracy_curves as accuracy_curves
    from fairrobust.metrics import alpha_grid as alpha_grid
    from fairrobust.metrics import auc_acc as auc_acc
    from fairrobust.metrics import auc_acc_by_attribute as auc_acc_by_attribute
    from fairrobust.metrics import auc_fpr as auc_fpr
    from fairrobust.metrics import auc_fpr_by_attribute as auc_fpr_by_attribute
    from fairrobust.metrics import bootstrap_ci as bootstrap_ci
    from fairrobust.metrics import by_group as by_group
    from fairrobust.metrics import defense_parity as defense_parity
    from fairrobust.metrics import demographic_parity_difference as demographic_parity_difference
    from fairrobust.metrics import difference as difference
    from fairrobust.metrics import equalized_odds_difference as equalized_odds_difference
    from fairrobust.metrics import fairness_metrics as fairness_metrics
    from fairrobust.metrics import false_positive_rate_difference as false_positive_rate_difference
    from fairrobust.metrics import fpr_parity as fpr_parity
    from fairrobust.metrics import group_max as group_max
    from fairrobust.metrics import group_min as group_min
    from fairrobust.metrics import group_rates as group_rates
    from fairrobust.metrics import p_rule as p_rule
    from fairrobust.metrics import pearsonr as pearsonr
    from fairrobust.metrics import ratio as ratio
    from fairrobust.metrics import rejection_curves as rejection_curves
    from fairrobust.metrics import true_positive_rate_difference as true_positive_rate_difference
    from fairrobust.models import M5 as M5
    from fairrobust.models import count_params as count_params
    from fairrobust.models import features_fn as features_fn
    from fairrobust.models import init_variables as init_variables
    from fairrobust.models import linear_stem_fn as linear_stem_fn
    from fairrobust.models import logits_fn as logits_fn
    from fairrobust.models import make_model as make_model
    from fairrobust.neural_rejection import NeuralRejection as NeuralRejection
    from fairrobust.report import write_report as write_report
    from fairrobust.report import write_report_from_dir as write_report_from_dir
    from fairrobust.smoothing import CertifyResult as CertifyResult
    from fairrobust.smoothing import binom_test_pvalue as binom_test_pvalue
    from fairrobust.smoothing import certified_accuracy as certified_accuracy
    from fairrobust.smoothing import certify as certify
    from fairrobust.smoothing import clopper_pearson_lower as clopper_pearson_lower
    from fairrobust.smoothing import predict_pvalues as predict_pvalues
    from fairrobust.smoothing import register_noise as register_noise
    from fairrobust.smoothing import sample_counts as sample_counts
    from fairrobust.smoothing import smoothed_predict as smoothed_predict
    from fairrobust.train import Checkpoint as Checkpoint
    from fairrobust.train import TrainConfig as TrainConfig
    from fairrobust.train import TrainResult as TrainResult
    from fairrobust.train import extract_features as extract_features
    from fairrobust.train import load_checkpoint as load_checkpoint
    from fairrobust.train import predict_logits as predict_logits
    from fairrobust.train import save_checkpoint as save_checkpoint

_EXPORTS: dict[str, str] = {
    "AudioDataset": "data",
    "LoadReport": "data",
    "DATASETS": "data",
    "load_dataset": "data",
    "load_bundled": "data",
    "load_wuw": "data",
    "load_fsdd": "data",
    "load_audiomnist": "data",
    "load_common_voice": "data",
    "load_folder": "data",
    "Groups": "groups",
    "group_masks": "groups",
    "all_groups": "groups",
    "training_group_sizes": "groups",
    "M5": "models",
    "make_model": "models",
    "init_variables": "models",
    "linear_stem_fn": "models",
    "logits_fn": "models",
    "features_fn": "models",
    "count_params": "models",
    "Preprocess": "defenses",
    "make_preprocess": "defenses",
    "with_preprocess": "defenses",
    "bpda": "defenses",
    "lowpass": "defenses",
    "quantize": "defenses",
    "spectral_denoise": "defenses",
    "pgd": "attacks",
    "fgsm": "attacks",
    "robust_correct": "attacks",
    "TrainConfig": "train",
    "TrainResult": "train",
    "Checkpoint": "train",
    "save_checkpoint": "train",
    "load_checkpoint": "train",
    "predict_logits": "train",
    "extract_features": "train",
    "sample_counts": "smoothing",
    "binom_test_pvalue": "smoothing",
    "predict_pvalues": "smoothing",
    "smoothed_predict": "smoothing",
    "certify": "smoothing",
    "clopper_pearson_lower": "smoothing",
    "certified_accuracy": "smoothing",
    "register_noise": "smoothing",
    "CertifyResult": "smoothing",
    "NeuralRejection": "neural_rejection",
    "group_rates": "metrics",
    "accuracy_curves": "metrics",
    "auc_acc": "metrics",
    "auc_acc_by_attribute": "metrics",
    "defense_parity": "metrics",
    "alpha_grid": "metrics",
    "rejection_curves": "metrics",
    "auc_fpr": "metrics",
    "auc_fpr_by_attribute": "metrics",
    "fpr_parity": "metrics",
    "pearsonr": "metrics",
    "bootstrap_ci": "metrics",
    "by_group": "metrics",
    "group_min": "metrics",
    "group_max": "metrics",
    "difference": "metrics",
    "ratio": "metrics",
    "demographic_parity_difference": "metrics",
    "true_positive_rate_difference": "metrics",
    "false_positive_rate_difference": "metrics",
    "equalized_odds_difference": "metrics",
    "p_rule": "metrics",
    "fairness_metrics": "metrics",
    "run_soundness_checks": "evaluation",
    "SoundnessReport": "evaluation",
    "attack_convergence": "evaluation",
    "budget_curve_check": "evaluation",
    "random_restarts": "evaluation",
    "eot_attack": "attacks",
    "transfer_attack": "attacks",
    "strongest_attack_correct": "evaluation",
    "write_report": "report",
    "write_report_from_dir": "report",
}
_SUBMODULES = (
    "attacks",
    "data",
    "defenses",
    "evaluation",
    "groups",
    "metrics",
    "models",
    "neural_rejection",
    "report",
    "smoothing",
    "studies",
    "train",
)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"fairrobust.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"fairrobust.{name}")
    raise AttributeError(f"module 'fairrobust' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
