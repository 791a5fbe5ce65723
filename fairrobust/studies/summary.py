"""The run summary: baseline and most robust model, one row per attribute, and the findings.

After both studies (and the soundness checks) have written their results,
``fairrobust run`` calls :func:`write_summary`, which reads the run folder back
(:func:`fairrobust.studies.results.load_run`) and writes::

    results/run_summary.csv, run_summary.json   (summary_rows: one row per attribute)
    results/run_findings.json                   (key results and findings, with numbers)
    results/run_provenance.json                 (SHA-256 of the three files above)

``run_findings.json`` is one JSON object::

    {
      "schema": 2,
      "key_results": [                 # at most 6, fairrobust.studies.key_results
        {"topic": str, "text": str, "numbers": {...}}, ...
      ],
      "findings": [                    # every finding, fairrobust.studies.findings
        {"study": "robustness" | "rejection" | "soundness",
         "attribute": str | null,      # null: about the whole study
         "topic": str, "text": str, "numbers": {...}}, ...
      ]
    }

``text`` is what the report prints (one bullet each; a key result is one
sentence of at most 40 words, a finding at most about 90 words; numbers to 3
significant digits, AUC_acc and Defense Parity normalised by the attack-budget
range); ``numbers`` holds the estimates ``[value, low, high]`` and comparison
rows the text rests on. Files written before schema 2 are a bare list of
findings records (``topic``, ``text``, ``numbers``);
:func:`fairrobust.studies.results.load_run` reads both.

The report (:mod:`fairrobust.report`) renders these files; it computes nothing
of its own.

Example::

    from fairrobust.studies.summary import write_summary
    summary = write_summary("runs/20240101-120000")
    summary.rows[0]["fpr_parity_nr"], summary.key_results[0]["text"]
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from fairrobust import _io
from fairrobust.studies._store import write_provenance, write_table
from fairrobust.studies.findings import (
    rejection_findings,
    robustness_findings,
    soundness_findings,
)
from fairrobust.studies.intervals import estimate
from fairrobust.studies.key_results import key_results
from fairrobust.studies.results import (
    FINDINGS_FILE,
    RUN_PREFIX,
    STRONGEST,
    SUMMARY_STEM,
    RunData,
    auc_acc_width,
    defense_parity_row,
    fpr_parity_row,
    group_metric_rows,
    largest_rs_n,
    load_run,
    rejection_attributes,
    robustness_attributes,
    soundness_parity,
)
from fairrobust.studies.selection import select_baseline, select_most_robust

__all__ = [
    "FINDINGS_SCHEMA",
    "RunSummary",
    "findings",
    "key_results",
    "select_baseline",
    "select_most_robust",
    "summary_rows",
    "write_summary",
]


#: ``schema`` of ``run_findings.json`` (2: an object with key results and findings).
FINDINGS_SCHEMA = 2

# ----------------------------------------------------------------------------- summary


def _ci_level(data: RunData) -> Any:
    if data.rob:
        return data.rob["summary"]["config"].get("ci_level")
    if data.rej:
        return (data.rej.get("config") or {}).get("config", {}).get("ci_level")
    return None


def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """One row per attribute: worst-served group, Defense Parity, FPR Parity (with CIs).

    Columns: attribute; ``worst_group_auc_acc`` (lowest AUC_acc of the most robust
    non-excluded model among groups of valid size) with ``worst_auc_acc`` and its
    interval; ``dp_baseline`` / ``dp_robust`` (Defense Parity of the clean baseline
    and of the most robust model, with ``_ci_low`` / ``_ci_high``) and their
    ``member_id``\\ s; ``worst_group_nr`` / ``worst_group_rs`` (highest AUC_FPR);
    ``fpr_parity_nr`` / ``fpr_parity_rs`` (RS at the largest N ``rs_n``) with
    intervals; ``ci_level``; ``auc_acc_width``, the width ``eps_max - eps_min`` of the
    attack budgets AUC_acc integrates over: the AUC_acc and Defense Parity columns are
    the raw integrals (paper Eq. 1), and divided by this width they are the normalised
    form the report prints (mean accuracy over the budget range, in [0, 1]).

    Clip sets: ``dp_baseline`` / ``dp_robust`` are the study's numbers, computed on
    all of its test clips (``dp_baseline_n`` / ``dp_robust_n`` clips, the model's
    ``n_test``). With the soundness checks, every model they checked also has numbers
    computed on the soundness checks' clips (a seeded subset of the study's test
    clips, ``SoundnessConfig.max_examples``), which are compared only with each other:

    * ``dp_<tag>_strongest`` (with ``_ci_low`` / ``_ci_high``): Defense Parity under
      the strongest attack tried (per clip, the worst case over every attack);
    * ``dp_<tag>_study_attack_same_clips`` (with ``_ci_low`` / ``_ci_high``): Defense
      Parity under the study's attack (PGD with the study's steps) re-run on those
      same clips, the number to set beside ``dp_<tag>_strongest``;
    * ``dp_<tag>_strongest_n``: the number of clips both were computed on;

    where ``<tag>`` is ``baseline`` or ``robust``; all None when that model was not
    checked. A reader compares ``dp_robust_strongest`` with
    ``dp_robust_study_attack_same_clips``, never with ``dp_robust``.

    Args:
      data: from :func:`fairrobust.studies.results.load_run`.

    Returns:
      The rows, attributes of the robustness study first.
    """
    rows = []
    models = (data.rob or {}).get("models", [])
    base, best = select_baseline(models), select_most_robust(models)
    n_max = largest_rs_n(data)
    level = _ci_level(data)
    width = auc_acc_width(data)
    for attr in list(dict.fromkeys(robustness_attributes(data) + rejection_attributes(data))):
        row: dict[str, Any] = {"attribute": attr, "ci_level": level, "auc_acc_width": width}
        dpb, dpr = defense_parity_row(data, base, attr), defense_parity_row(data, best, attr)
        row["baseline_member"] = None if base is None else base["member_id"]
        row["robust_member"] = None if best is None else best["member_id"]
        for tag, r, m in (("baseline", dpb, base), ("robust", dpr, best)):
            v, lo, hi = estimate(
                r, "defense_parity", "defense_parity_ci_low", "defense_parity_ci_high"
            )
            row[f"dp_{tag}"], row[f"dp_{tag}_ci_low"], row[f"dp_{tag}_ci_high"] = v, lo, hi
            row[f"dp_{tag}_n"] = None if m is None else m.get("n_test")
        valid = [g for g in group_metric_rows(data, best, attr) if g["valid"]]
        worst = min(valid, key=lambda g: g["auc_acc"]) if valid else None
        if data.soundness is not None:
            spar = soundness_parity(data.soundness)
            checked = {rec["model"]: rec for rec in data.soundness.get("models", [])}
            n_sound = data.soundness.get("settings", {}).get("n_examples")
            for tag, m in (("baseline", base), ("robust", best)):
                mid = None if m is None else m["member_id"]
                rec = checked.get(mid) or {}
                r = None if mid is None else spar.get((mid, STRONGEST, attr))
                v, lo, hi = estimate(r, "defense_parity", "ci_low", "ci_high")
                row[f"dp_{tag}_strongest"], row[f"dp_{tag}_strongest_ci_low"] = v, lo
                row[f"dp_{tag}_strongest_ci_high"] = hi
                # The study's attack on the same clips (records before issue 13 name it
                # only in the model record).
                study = (r or {}).get("study_attack") or rec.get("study_attack")
                s = None if mid is None or study is None else spar.get((mid, study, attr))
                v, lo, hi = estimate(s, "defense_parity", "ci_low", "ci_high")
                key = f"dp_{tag}_study_attack_same_clips"
                row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = v, lo, hi
                checked_here = bool(rec) or r is not None
                row[f"dp_{tag}_strongest_n"] = (
                    rec.get("n_examples", n_sound) if checked_here else None
                )
        row["worst_group_auc_acc"] = None if worst is None else worst["group"]
        row["worst_auc_acc"], row["worst_auc_acc_ci_low"], row["worst_auc_acc_ci_high"] = estimate(
            worst, "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high"
        )
        pn, pr = fpr_parity_row(data, attr, "NR"), fpr_parity_row(data, attr, "RS", n_max)
        row["rs_n"] = n_max
        for tag, r in (("nr", pn), ("rs", pr)):
            v, lo, hi = estimate(r, "fpr_parity", "ci_low", "ci_high")
            row[f"fpr_parity_{tag}"], row[f"fpr_parity_{tag}_ci_low"] = v, lo
            row[f"fpr_parity_{tag}_ci_high"] = hi
            row[f"worst_group_{tag}"] = None if r is None else r.get("worst_group")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- findings


def findings(data: RunData) -> list[dict[str, Any]]:
    """Sentences that state only what the numbers show, each with its numbers.

    Two numbers are compared through the interval of their paired difference on
    the same clips and resamples, Holm-corrected (see
    :mod:`fairrobust.studies.findings`).

    Args:
      data: from :func:`fairrobust.studies.results.load_run`.

    Returns:
      Records ``{"study", "attribute", "topic", "text", "numbers"}``, robustness
      first, then rejection, then the soundness checks; within a study the
      study-wide records (``attribute`` None) before those of each attribute.
    """
    out: list[dict[str, Any]] = []
    if data.rob is not None:
        models = data.rob["models"]
        out += robustness_findings(data, select_baseline(models), select_most_robust(models))
    if data.rej is not None:
        out += rejection_findings(data)
    if data.soundness is not None:
        out += soundness_findings(data.soundness)
    return out


# ----------------------------------------------------------------------------- writer


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What :func:`write_summary` computed and wrote.

    Attributes:
      rows: :func:`summary_rows`.
      findings: :func:`findings`.
      key_results: :func:`fairrobust.studies.key_results.key_results`.
      files: paths of ``run_summary.csv``, ``run_summary.json``,
        ``run_findings.json`` and ``run_provenance.json``.
    """

    rows: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    files: tuple[Path, ...]
    key_results: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def write_summary(run_dir: str | os.PathLike[str]) -> RunSummary:
    """Compute the summary and findings of a run folder and write them to ``results/``.

    Writes ``results/run_summary.{csv,json}`` (:func:`summary_rows`),
    ``results/run_findings.json`` (:func:`key_results` and :func:`findings`, in the
    schema of the module docstring) and, last, their provenance
    sidecar ``results/run_provenance.json`` (the run's ``config.json`` and its
    hash, the data fingerprint and the SHA-256 of the three files). Call it after
    the studies and the soundness checks have written their results, and before
    the report is rendered.

    Args:
      run_dir: the run folder.

    Returns:
      A :class:`RunSummary`.

    Raises:
      FileNotFoundError: no study results in ``run_dir/results``.
    """
    data = load_run(run_dir)
    results = data.run_dir / "results"
    rows, found, key = summary_rows(data), findings(data), key_results(data)
    csv_path, json_path = write_table(results / SUMMARY_STEM, rows)
    findings_path = _io.atomic_write_json(
        results / FINDINGS_FILE,
        {"schema": FINDINGS_SCHEMA, "key_results": key, "findings": found},
    )
    run_config = dict(data.config or {})
    provenance = write_provenance(
        results,
        RUN_PREFIX,
        study="run",
        dataset=str(run_config.get("dataset", "unknown")),
        data_fingerprint=str(run_config.get("data_fingerprint", "unknown")),
        config=run_config,
        config_hash=_io.stable_hash(run_config),
    )
    return RunSummary(
        rows=rows,
        findings=found,
        files=(csv_path, json_path, findings_path, provenance),
        key_results=key,
    )
