"""Which models a run's findings are about: the clean baseline and the most robust model.

Both studies' tables and the findings use these two rules, so that a comparison
computed in a study (``robustness_<dataset>_comparisons.json``) is about the
same pair of models as the sentence that cites it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fairrobust.studies.intervals import as_number

__all__ = ["select_baseline", "select_most_robust"]


def select_baseline(models: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The clean baseline among the robustness study's models.

    The clean baseline has no adversarial training, no noise augmentation and no
    preprocessing defense; among several, a plain M5 comes first.

    Args:
      models: rows of the ``models`` table (``model``, ``at_eps``, ``noise_std``,
        ``preprocess``).

    Returns:
      The baseline row; the first row when no model is clean; None without rows.
    """
    plain = [
        r
        for r in models
        if not r.get("at_eps") and not r.get("noise_std") and r.get("preprocess") == "none"
    ]
    plain.sort(key=lambda r: r.get("model") != "m5")
    return plain[0] if plain else (models[0] if models else None)


def select_most_robust(models: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most robust model: the non-excluded row with the largest overall AUC_acc.

    Args:
      models: rows of the ``models`` table (``auc_acc``, ``excluded``).

    Returns:
      That row (the first on ties; a missing AUC_acc counts as -1); None when
      every model is excluded (indistinguishable from random guessing).
    """
    ok = [(i, r) for i, r in enumerate(models) if not r.get("excluded")]
    if not ok:
        return None
    return max(ok, key=lambda t: (as_number(t[1].get("auc_acc")) or -1.0, -t[0]))[1]
