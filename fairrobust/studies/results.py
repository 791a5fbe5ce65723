"""The results files of a run folder: where they are, how to read them, how to look rows up.

A run folder (written by ``fairrobust run``) holds ``config.json`` and a
``results/`` folder with the tables of each study that ran::

    results/robustness_<dataset>_{models,groups,group_metrics,defense_parity,
                                  correlations,summary}.json
    results/rejection_{accuracy,auc_fpr_long,fpr_parity,correlation,
                       certified_accuracy,summary,config,groups}.json
    results/soundness.json, soundness.md          (the attack-soundness checks)
    results/run_summary.{csv,json}, run_findings.json, run_provenance.json
                                                  (written by studies.summary)

:func:`load_run` reads them into a :class:`RunData`; the functions below look
rows up in it. Both the analysis (:mod:`fairrobust.studies.summary`) and the
report (:mod:`fairrobust.report`) read a run through this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairrobust import _io
from fairrobust.studies._store import slugify

__all__ = [
    "FINDINGS_FILE",
    "REJ_TABLES",
    "ROB_TABLES",
    "RUN_PREFIX",
    "STRONGEST",
    "SUMMARY_STEM",
    "RunData",
    "auc_acc_width",
    "auc_fpr_rows",
    "defense_parity_row",
    "fpr_parity_row",
    "group_metric_rows",
    "largest_rs_n",
    "load_run",
    "rejection_attributes",
    "rejection_config",
    "robustness_attributes",
    "robustness_slug",
    "soundness_parity",
]

#: Tables of the robustness study: ``results/robustness_<dataset>_<table>.json``.
ROB_TABLES = (
    "models", "groups", "group_metrics", "defense_parity", "correlations", "comparisons",
    "breaking_eps", "fairness",
)  # fmt: skip
#: Tables of the rejection study: ``results/rejection_<table>.json``.
REJ_TABLES = (
    "accuracy", "auc_fpr_long", "fpr_parity", "common_range", "correlation",
    "certified_accuracy", "certified_parity", "comparisons", "fairness",
)  # fmt: skip
#: File-name prefix of the run-level results (``run_summary``, ``run_findings``) and
#: of their provenance sidecar ``run_provenance.json``.
RUN_PREFIX = "run"
#: ``results/run_summary.{csv,json}``: one row per attribute (``summary_rows``).
SUMMARY_STEM = f"{RUN_PREFIX}_summary"
#: ``results/run_findings.json``: the key results and findings with their numbers (schema in
#: :mod:`fairrobust.studies.summary`).
FINDINGS_FILE = f"{RUN_PREFIX}_findings.json"
#: Attack name of the per-clip worst case over every base-model attack (fairrobust.evaluation).
STRONGEST = "strongest (base model)"


@dataclasses.dataclass
class RunData:
    """The result files of one run folder (see :func:`load_run`).

    Attributes:
      run_dir: the folder.
      config: ``config.json`` of ``fairrobust run`` (empty when absent).
      rob: robustness tables (``models``, ``groups``, ``group_metrics``,
        ``defense_parity``, ``correlations``), ``summary`` and ``prefix``; None
        when the study did not run.
      rej: rejection tables (``accuracy``, ``auc_fpr_long``, ``fpr_parity``,
        ``correlation``, ``certified_accuracy``, ``certified_parity``), ``summary``, ``config``,
        ``groups``; None when the study did not run.
      soundness_md: markdown of ``results/soundness.md`` when present.
      soundness: the ``results/soundness.json`` record of ``fairrobust run``'s
        soundness checks when present (the report renders it with
        ``fairrobust.report.render_soundness``; ``soundness_md`` is the fallback).
      run_summary: rows of ``results/run_summary.json`` when present.
      run_findings: the findings records of ``results/run_findings.json`` when present
        (its ``findings`` list; files written before the key results hold only that list).
      run_key_results: the key-results records of ``results/run_findings.json``
        (None when absent, also for files written before them).
      attributes: study -> attribute status records of ``results/<study>_attributes.json``
        (usable, or why an attribute was left out; empty for runs without them).
    """

    run_dir: Path
    config: dict[str, Any]
    rob: dict[str, Any] | None
    rej: dict[str, Any] | None
    soundness_md: str | None = None
    soundness: dict[str, Any] | None = None
    run_summary: list[dict[str, Any]] | None = None
    run_findings: list[dict[str, Any]] | None = None
    run_key_results: list[dict[str, Any]] | None = None
    attributes: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)


def _read(path: Path, default: Any = None) -> Any:
    return _io.read_json(path) if path.is_file() else default


def _load_robustness(results: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The robustness tables (the dataset of ``config.json`` first when several exist)."""
    summaries = sorted(results.glob("robustness_*_summary.json"))
    if not summaries:
        return None
    want = f"robustness_{config.get('dataset', '')}_summary.json"
    path = next((p for p in summaries if p.name == want), summaries[0])
    prefix = path.name[: -len("_summary.json")]
    rob = {"summary": _io.read_json(path), "prefix": prefix}
    for t in ROB_TABLES:
        rob[t] = _read(results / f"{prefix}_{t}.json", [])
    return rob


def _load_rejection(results: Path) -> dict[str, Any] | None:
    if not (results / "rejection_summary.json").is_file():
        return None
    rej = {
        "summary": _io.read_json(results / "rejection_summary.json"),
        "config": _read(results / "rejection_config.json", {}),
        "groups": _read(results / "rejection_groups.json", {}),
    }
    for t in REJ_TABLES:
        rej[t] = _read(results / f"rejection_{t}.json", [])
    return rej


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read every result file of a run folder.

    Args:
      run_dir: a run folder with a ``results/`` folder.

    Returns:
      A :class:`RunData`.

    Raises:
      FileNotFoundError: ``run_dir`` has no ``results/`` folder with results of
        either study.
    """
    run_dir = Path(run_dir)
    results = run_dir / "results"
    config = _read(run_dir / "config.json", {}) or {}
    rob = _load_robustness(results, config)
    rej = _load_rejection(results)
    if rob is None and rej is None:
        raise FileNotFoundError(
            f"{results}: no robustness_*_summary.json or rejection_summary.json; "
            "is this a run folder?"
        )
    sound = results / "soundness.md"
    sound_json = _read(results / "soundness.json")
    found = _read(results / FINDINGS_FILE)
    if isinstance(found, dict):  # {"key_results": [...], "findings": [...]}
        key_results, found = found.get("key_results"), found.get("findings")
    else:  # a list of findings records (files written before the key results)
        key_results = None
    return RunData(
        run_dir=run_dir,
        config=config,
        rob=rob,
        rej=rej,
        soundness_md=sound.read_text(encoding="utf-8") if sound.is_file() else None,
        soundness=sound_json if isinstance(sound_json, dict) else None,
        run_summary=_read(results / f"{SUMMARY_STEM}.json"),
        run_findings=found,
        run_key_results=key_results,
        attributes={
            p.name[: -len("_attributes.json")]: list(_io.read_json(p).get("attributes", []))
            for p in sorted(results.glob("*_attributes.json"))
        },
    )


# ----------------------------------------------------------------------------- row look-ups


def robustness_attributes(data: RunData) -> list[str]:
    """Attributes the robustness study analysed (empty without that study)."""
    return list((data.rob or {}).get("summary", {}).get("groups", {}))


def rejection_attributes(data: RunData) -> list[str]:
    """Attributes the rejection study analysed (empty without that study)."""
    return list((data.rej or {}).get("groups", {}))


def rejection_config(data: RunData) -> dict[str, Any]:
    """The rejection study's config fields (``rejection_config.json``'s ``config``)."""
    assert data.rej is not None
    return (data.rej.get("config") or {}).get("config", {})


def defense_parity_row(
    data: RunData, member: Mapping[str, Any] | None, attr: str
) -> dict[str, Any] | None:
    """The ``defense_parity`` row of one model and attribute (None when absent)."""
    if data.rob is None or member is None:
        return None
    return next(
        (
            r
            for r in data.rob["defense_parity"]
            if r["member_id"] == member["member_id"] and r["attribute"] == attr
        ),
        None,
    )


def group_metric_rows(
    data: RunData, member: Mapping[str, Any] | None, attr: str
) -> list[dict[str, Any]]:
    """The ``group_metrics`` rows (one per group) of one model and attribute."""
    if data.rob is None or member is None:
        return []
    return [
        r
        for r in data.rob["group_metrics"]
        if r["member_id"] == member["member_id"] and r["attribute"] == attr
    ]


def auc_acc_width(data: RunData) -> float | None:
    """``eps_max - eps_min`` of the robustness study's attack budgets (None without it).

    AUC_acc (paper Eq. 1) integrates a group's accuracy over ``[eps_min, eps_max]``;
    divided by this width it is the mean accuracy over the budget range, in [0, 1]
    (``auc_acc_normalized`` / ``defense_parity_normalized`` of the results tables).
    The report and the findings print that normalised form.
    """
    eps = (data.rob or {}).get("summary", {}).get("config", {}).get("attack_eps") or []
    if len(eps) < 2 or not float(eps[-1]) > float(eps[0]):
        return None
    return float(eps[-1]) - float(eps[0])


def largest_rs_n(data: RunData) -> int | None:
    """The largest number of noise samples N of the RS rows of ``fpr_parity``."""
    ns = [r["num_samples"] for r in (data.rej or {}).get("fpr_parity", []) if r["method"] == "RS"]
    return max(ns) if ns else None


def fpr_parity_row(
    data: RunData, attr: str, method: str, n: int | None = None
) -> dict[str, Any] | None:
    """The ``fpr_parity`` row of one attribute and method (``"NR"``, or ``"RS"`` at N = ``n``)."""
    for r in (data.rej or {}).get("fpr_parity", []):
        if (
            r["attribute"] == attr
            and r["method"] == method
            and (method == "NR" or r["num_samples"] == n)
        ):
            return r
    return None


def auc_fpr_rows(data: RunData, attr: str, label: str) -> list[dict[str, Any]]:
    """The ``auc_fpr_long`` rows (one per group) of one attribute and method label."""
    return [
        r
        for r in (data.rej or {}).get("auc_fpr_long", [])
        if r["attribute"] == attr and r["label"] == label
    ]


def soundness_parity(rec: Mapping[str, Any]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    """The ``parity`` rows of a ``soundness.json`` record by ``(model, attack, attribute)``."""
    return {(r["model"], r["attack"], r["attribute"]): r for r in rec.get("parity", [])}


# ----------------------------------------------------------------------------- file names


def robustness_slug(text: str) -> str:
    """The slug the robustness study puts in figure names (``curves_<slug>_...``)."""
    return slugify(text)
