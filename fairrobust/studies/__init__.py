"""The paper's two studies as library calls: grids, resume, results files.

* :mod:`~fairrobust.studies.config` -- every study setting: configs, presets
  (``quick``, ``paper``, ``tiny``), TOML files.
* :mod:`~fairrobust.studies.robustness` -- adversarial training / noise
  augmentation / preprocessing defenses: AUC_acc, Defense Parity, correlations
  (tables in ``robustness_tables``, figures in ``robustness_figures``).
* :mod:`~fairrobust.studies.rejection` -- neural rejection vs randomized
  smoothing: AUC_FPR, FPR Parity, certified accuracy (``rejection_tables``,
  ``rejection_accuracy``, ``rejection_comparisons``, ``rejection_figures``).
* :mod:`~fairrobust.studies.soundness` -- on the two studies' results: is the
  attack strong enough (convergence, restarts, transfer, EOT on smoothing)?
* :mod:`~fairrobust.studies.summary` -- after the studies: the clean baseline and
  most robust model, one summary row per attribute and the findings, written to
  ``results/run_summary.*`` and ``run_findings.json`` by ``write_summary``
  (:mod:`~fairrobust.studies.findings` words them; :mod:`~fairrobust.studies.results`
  reads a run folder back; :mod:`~fairrobust.studies.intervals` builds the paired
  comparisons (Holm-corrected) and formats estimates with their intervals;
  :mod:`~fairrobust.studies.selection` picks the baseline and most robust model).
* :mod:`~fairrobust.studies.external` -- bring your own model: ``ExternalModel``
  (a Flax module, an ``apply_fn`` with variables, or a checkpoint) that both studies
  evaluate instead of training.

The package itself re-exports the store helpers other layers use; the study
modules are imported as submodules (``from fairrobust.studies import robustness``).
"""

from fairrobust.studies._store import attribute_slug as attribute_slug
from fairrobust.studies._store import environment as environment
from fairrobust.studies._store import format_value as format_value
from fairrobust.studies._store import library_version as library_version
from fairrobust.studies._store import seeded_subset as seeded_subset
from fairrobust.studies._store import verify_provenance as verify_provenance
from fairrobust.studies.external import ExternalModel as ExternalModel

__all__ = [
    "ExternalModel",
    "attribute_slug",
    "environment",
    "format_value",
    "library_version",
    "seeded_subset",
    "verify_provenance",
]
