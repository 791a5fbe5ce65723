"""The paper's two studies as library calls: grids, resume, results files.

* :mod:`fairrobust.studies.robustness` -- adversarial training / noise
  augmentation / preprocessing defenses: AUC_acc, Defense Parity, correlations.
* :mod:`fairrobust.studies.rejection` -- neural rejection vs randomized
  smoothing: AUC_FPR, FPR Parity.
* :mod:`fairrobust.studies.summary` -- after the studies: the clean baseline and
  most robust model, one summary row per attribute and the findings, written to
  ``results/run_summary.*`` and ``run_findings.json`` by ``write_summary``
  (:mod:`~fairrobust.studies.findings` words them; :mod:`~fairrobust.studies.results`
  reads a run folder back; :mod:`~fairrobust.studies.intervals` compares and
  formats estimates with their bootstrap intervals).

Submodules are imported on first access (``fairrobust.studies.robustness``), so
importing the package does not pull in training and attack code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fairrobust.studies import findings, intervals, rejection, results, robustness, summary

__all__ = ["findings", "intervals", "rejection", "results", "robustness", "summary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
