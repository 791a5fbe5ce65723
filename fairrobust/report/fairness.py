"""The report's group-fairness table: demographic parity, equalized odds and p-rule.

Renders the ``fairness`` tables of both studies (``results/robustness_<dataset>_fairness``
and ``results/rejection_fairness``, written by :mod:`fairrobust.studies.fairness`)
compactly: for the robustness study the clean baseline and the most robust model,
clean and at the largest attack budget; for the rejection study the base models
without rejection and each method at the middle threshold of the study's grid. Every
number with its interval; the files hold every model, budget and threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fairrobust.report.blocks import md_table
from fairrobust.studies.intervals import as_number, fmt_ci
from fairrobust.studies.results import RunData

__all__ = ["fairness_section"]

#: The metrics shown, with their column headers (the demographic parity ratio is
#: p-rule / 100 and is left to the files).
_SHOWN = (
    ("demographic_parity_difference", "DP difference"),
    ("equalized_odds_difference", "EO difference"),
    ("p_rule", "p-rule (%)"),
)


def _pick(rows: Sequence[Mapping[str, Any]], member: str, condition: str) -> dict[str, Any]:
    """metric -> row of one member and condition."""
    return {r["metric"]: r for r in rows if r["member"] == member and r["condition"] == condition}


def _table(
    rows: Sequence[Mapping[str, Any]], picks: Sequence[tuple[str, str, str]]
) -> list[list[Any]]:
    """Table rows ``attribute, model, condition, metrics..., clips / speakers, groups``."""
    out: list[list[Any]] = []
    for attr in dict.fromkeys(r["attribute"] for r in rows):
        part = [r for r in rows if r["attribute"] == attr]
        blocked = [r for r in part if r["metric"] == "not computable"]
        if blocked:
            out.append([attr, "all models", "", "not computable", "", "", "", blocked[0]["note"]])
            continue
        for member, label, condition in picks:
            got = _pick(part, member, condition)
            if not got:
                continue
            first = next(iter(got.values()))
            spk = first.get("n_speakers")
            out.append(
                [attr, label, condition]
                + [
                    fmt_ci(*(got.get(m, {}).get(k) for k in ("value", "ci_low", "ci_high")))
                    for m, _ in _SHOWN
                ]
                + [
                    f"{first.get('n_clips')} / {'n/a' if spk is None else spk}",
                    ", ".join(first.get("groups_used") or []),
                ]
            )
    return out


def _robustness_picks(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(member, label, condition): baseline and most robust model, clean and largest budget."""
    eps = [(as_number(r["condition_value"]) or 0.0, r["condition"]) for r in rows
           if r["condition"] not in ("", "clean")]  # fmt: skip
    conds = ["clean"] + ([max(eps)[1]] if eps else [])
    roles = {r["member"]: r["role"] for r in rows if r.get("role")}
    return [(m, f"{m} ({role})", c) for m, role in roles.items() for c in conds]


def _rejection_picks(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(member, label, condition): base models unrejected, methods at the middle threshold."""
    picks = [(m, m, "no rejection") for m in dict.fromkeys(
        r["member"] for r in rows if r.get("role") == "base model")]  # fmt: skip
    rej = [r for r in rows if r.get("role") == "rejection" and r["condition"]]
    values = sorted({as_number(r["condition_value"]) or 0.0 for r in rej})
    if values:
        mid = values[(len(values) - 1) // 2]
        cond = next(r["condition"] for r in rej if (as_number(r["condition_value"]) or 0.0) == mid)
        picks += [(m, m, cond) for m in dict.fromkeys(r["member"] for r in rej)]
    return picks


def fairness_section(data: RunData) -> list[str]:
    """The "Group-fairness metrics" section (markdown lines); empty when no study wrote them.

    Args:
      data: from :func:`fairrobust.studies.results.load_run` (``rob["fairness"]``,
        ``rej["fairness"]``).
    """
    rob = list((data.rob or {}).get("fairness") or [])
    rej = list((data.rej or {}).get("fairness") or [])
    if not rob and not rej:
        return []
    head = ["Attribute", "Model", "Condition", *(h for _, h in _SHOWN), "Clips / speakers",
            "Groups used"]  # fmt: skip
    parts = [
        "## Group-fairness metrics",
        "",
        "Demographic parity (DP) difference, equalized odds (EO) difference and p-rule "
        "(fairlearn's definitions) per attribute, from each clip's predicted class. The task "
        "has many classes, so each metric is computed one-vs-rest per class (selected = "
        "predicted that class) and averaged over classes; a rejected clip selects no class. "
        "DP and EO differences: 0 = parity; p-rule = 100 x the smallest over the largest "
        "group selection rate (100 = parity, below 80 fails the 80% rule). Only groups with "
        "the minimum clips and speakers count; brackets are simultaneous bootstrap intervals "
        "(clustered by speaker). Every model, budget and threshold, and the DP ratio "
        "(= p-rule / 100), are in the files.",
        "",
    ]
    if rob:
        prefix = (data.rob or {}).get("prefix", "robustness")
        parts += [
            f"Robustness study (`results/{prefix}_fairness.csv`): clean and at the largest "
            "attack budget.",
            "",
            md_table(head, _table(rob, _robustness_picks(rob))),
            "",
        ]
    if rej:
        parts += [
            "Rejection study (`results/rejection_fairness.csv`): base models without "
            "rejection; RS and NR rejecting at the middle threshold of the grid.",
            "",
            md_table(head, _table(rej, _rejection_picks(rej))),
            "",
        ]
    return parts
