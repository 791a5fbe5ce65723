"""``report.md``: the whole report as markdown, from the results files of a run folder.

Statistical honesty rules the report follows:

* every group rate and parity number in a table is printed with its bootstrap
  interval ``value [low, high]`` (level and resamples stated in the section);
  a number without one says ``(no CI)``;
* groups under a study's minimum size are listed with their size and marked
  "under minimum size", never dropped;
* each section states the settings its numbers depend on (N, alpha grid,
  epsilon grid, PGD steps, seeds, bootstrap resamples / level);
* the key results and findings (``results/run_findings.json``, written by
  :func:`fairrobust.studies.summary.write_summary`) only state comparisons the
  numbers support: a difference is called one only when the interval of the
  paired difference (same clips, same resamples) says so after Holm's correction;
* the page reads in five minutes: a "Key results" block of at most six
  one-sentence bullets comes first, the findings are bullets grouped by study
  and attribute, and no paragraph runs past about 120 words;
* AUC_acc and Defense Parity are printed normalised by the width of the attack
  budget range (mean accuracy over the budgets, in [0, 1]); numbers have 3
  significant digits (:func:`fairrobust.studies.intervals.fmt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairrobust.report.blocks import ImageLinks, md_table
from fairrobust.report.fairness import fairness_section
from fairrobust.report.rejection import rejection_section
from fairrobust.report.robustness import robustness_section, robustness_settings
from fairrobust.report.soundness import clips_phrase, render_soundness
from fairrobust.studies.findings import describe_member, soundness_width
from fairrobust.studies.intervals import estimate, fmt, fmt_ci, fmt_estimate, fmt_p, scaled
from fairrobust.studies.results import RunData, auc_acc_width, largest_rs_n, rejection_config
from fairrobust.studies.summary import (
    findings,
    key_results,
    select_baseline,
    select_most_robust,
    summary_rows,
)

__all__ = ["render_markdown"]


def render_markdown(data: RunData, figures: Mapping[str, Path] | None = None) -> str:
    """The report as markdown (figure links relative to the run folder).

    The summary table and the findings are read from ``results/run_summary.json``
    and ``results/run_findings.json`` (``data.run_summary`` / ``data.run_findings``);
    a folder without them (the studies' results only) gets them computed in
    memory with :func:`fairrobust.studies.summary.summary_rows` / ``findings``.

    Args:
      data: from :func:`fairrobust.studies.results.load_run`.
      figures: extra report figures (name -> path), from
        :func:`fairrobust.report.figures.write_report_figures`.

    Returns:
      The markdown, ending with a newline.
    """
    figures = dict(figures or {})
    img = ImageLinks(data.run_dir)
    srows = data.run_summary if data.run_summary is not None else summary_rows(data)
    found = data.run_findings if data.run_findings is not None else findings(data)
    key = data.run_key_results if data.run_key_results is not None else key_results(data)
    models = (data.rob or {}).get("models", [])
    base, best = select_baseline(models), select_most_robust(models)
    parts = _header(data)
    parts += _key_results_section(key)
    parts += [*_reading_guide(data), ""]
    parts += _summary_section(data, srows, base, best)
    parts += _findings_section(found)
    parts += _comparisons_section(data)
    parts += _attributes_section(data)
    parts += _groups_section(data)
    parts += fairness_section(data)
    if data.rob is not None:
        parts += robustness_section(data, base, best, img, figures)
    if data.rej is not None:
        parts += rejection_section(data, img, figures)
    parts += _soundness_section(data)
    parts += _files_section(data.run_dir, img)
    return "\n".join(parts).rstrip() + "\n"


def _header(data: RunData) -> list[str]:
    """Title, run folder and provenance."""
    cfg = data.config
    rob_summary = (data.rob or {}).get("summary", {})
    ds = (
        cfg.get("dataset")
        or rob_summary.get("dataset")
        or ((data.rej or {}).get("summary", {}).get("dataset", "?"))
    )
    return [
        f"# For whom do the defenses defend? fairrobust report: {ds}",
        "",
        f"Run folder `{data.run_dir.name}`; preset `{cfg.get('preset', '?')}`; data fingerprint "
        f"`{cfg.get('data_fingerprint', rob_summary.get('data_fingerprint', '?'))}`; "
        f"fairrobust {cfg.get('library_version', '?')}. Every number below is in `results/` "
        "(CSV and JSON); regenerate this report with "
        "`python -c \"from fairrobust.report import write_report_from_dir as w; w('RUN_DIR')\"`.",
        "",
    ]


def _reading_guide(data: RunData) -> list[str]:
    """The definitions every number of the report rests on, one bullet each."""
    eps = (data.rob or {}).get("summary", {}).get("config", {}).get("attack_eps") or []
    rng = f" [{fmt(eps[0])}, {fmt(eps[-1])}]" if len(eps) >= 2 else ""
    return [
        "## Reading guide",
        "",
        f"- **AUC_acc(s)**: the accuracy of group s under PGD integrated over the attack "
        f"budgets{rng} (AISec'23 Eq. 1), divided by the width eps_max - eps_min of that "
        "range, so it is the mean accuracy over the budgets, in [0, 1] (higher = better "
        "protected). The results files keep the raw integral (`auc_acc`) beside the "
        "normalised one (`auc_acc_normalized`).",
        "- **Defense Parity**: the largest gap in normalised AUC_acc between groups (lower = "
        "more equal; `defense_parity_normalized` in the results, the raw gap in "
        "`defense_parity`).",
        "- **AUC_FPR(s)**: the false-rejection rate of clean clips of group s integrated over "
        "the rejection threshold (lower = fewer false rejections); **FPR Parity** is the "
        "largest AUC_FPR gap (lower = more equal).",
        "- **Brackets** are bootstrap confidence intervals, clustered by speaker; a parity "
        "gap's interval comes from simultaneous intervals of every group difference, so it "
        "can include 0. Groups with fewer test speakers than the minimum get no interval and "
        "take part in no comparison.",
        "- **Comparisons**: two numbers are compared only through the interval of their "
        "difference on the same clips and resamples, never by whether their own intervals "
        "overlap; families of comparisons are Holm-corrected and their size is given.",
        "- **Numbers** have 3 significant digits; very small or large ones are written "
        "2.21×10⁻⁵, and p-values below 0.001 as < 0.001.",
    ]


def _key_results_section(key: list[dict[str, Any]]) -> list[str]:
    """At most six one-sentence bullets (``fairrobust.studies.key_results``)."""
    parts = ["## Key results", ""]
    if not key:
        return [*parts, "- No key result: the run has no comparable numbers.", ""]
    return [*parts, *(f"- {r['text']}" for r in key), ""]


_STUDY_HEADINGS = {
    "robustness": "Robustness training",
    "rejection": "Rejection: RS vs NR",
    "soundness": "Attack soundness checks",
}


def _findings_section(found: list[dict[str, Any]]) -> list[str]:
    """Every finding as a bullet, grouped by study (sub-headings) and attribute (bold
    lead-ins); records without a ``study`` (files before schema 2) as plain bullets."""
    parts = ["## Findings", ""]
    if not found:
        return [*parts, "No findings: the run has no comparable numbers.", ""]
    studies = list(dict.fromkeys(f.get("study") for f in found))
    for study in studies:
        mine = [f for f in found if f.get("study") == study]
        if study is not None:
            parts += [f"### {_STUDY_HEADINGS.get(study, str(study))}", ""]
        attrs = list(dict.fromkeys(f.get("attribute") for f in mine))
        for attr in sorted(attrs, key=lambda a: a is not None):  # study-wide ones first
            for f in (f for f in mine if f.get("attribute") == attr):
                parts.append(f"- {'' if attr is None else f'**{attr}**: '}{f['text']}")
        parts.append("")
    return parts


def _clips(srows: list[dict[str, Any]], key: str) -> str:
    """`` (296 clips)`` when every row's ``key`` names the same clip count, else ``""``."""
    ns = {r.get(key) for r in srows} - {None}
    return f" ({ns.pop()} clips)" if len(ns) == 1 else ""


def _scaled_ci(r: Mapping[str, Any], key: str, width: float | None) -> str:
    """``fmt_ci`` of ``r[key]`` and its ``_ci_low`` / ``_ci_high`` divided by ``width``."""
    return fmt_estimate(scaled(estimate(r, key, f"{key}_ci_low", f"{key}_ci_high"), width))


def _summary_table(srows: list[dict[str, Any]], n_max: int | None, width: float | None) -> str:
    """One row per attribute; AUC_acc and Defense Parity normalised by ``width``."""
    return md_table(
        [
            "attribute",
            "worst-served group (AUC_acc, most robust model)",
            "Defense Parity: baseline" + _clips(srows, "dp_baseline_n"),
            "Defense Parity: most robust" + _clips(srows, "dp_robust_n"),
            "most rejected (NR)",
            "FPR Parity: NR",
            f"FPR Parity: RS N = {n_max}",
        ],
        [
            [
                r["attribute"],
                "n/a"
                if r["worst_group_auc_acc"] is None
                else f"{r['worst_group_auc_acc']}: "
                + _scaled_ci(r, "worst_auc_acc", r.get("auc_acc_width", width)),
                _scaled_ci(r, "dp_baseline", r.get("auc_acc_width", width)),
                _scaled_ci(r, "dp_robust", r.get("auc_acc_width", width)),
                r["worst_group_nr"] or "n/a",
                fmt_ci(r["fpr_parity_nr"], r["fpr_parity_nr_ci_low"], r["fpr_parity_nr_ci_high"]),
                fmt_ci(r["fpr_parity_rs"], r["fpr_parity_rs_ci_low"], r["fpr_parity_rs_ci_high"]),
            ]
            for r in srows
        ],
    )


def _strongest_table(strongest: list[dict[str, Any]], width: float | None) -> str:
    """Per attribute and model: the study's attack and the strongest one, on the same clips
    (Defense Parity normalised by ``width``, the soundness checks' budget range)."""

    def cell(r: Mapping[str, Any], key: str) -> str:
        if key not in r:  # summaries written before the same-clips numbers
            return "n/a"
        return _scaled_ci(r, key, width)

    heads, keys = ["attribute"], []
    for tag, who in (("baseline", "baseline"), ("robust", "most robust")):
        n = _clips(strongest, f"dp_{tag}_strongest_n")
        heads += [f"{who}: study attack{n}", f"{who}: strongest attack{n}"]
        keys += [f"dp_{tag}_study_attack_same_clips", f"dp_{tag}_strongest"]
    return md_table(heads, [[r["attribute"], *[cell(r, k) for k in keys]] for r in strongest])


def _summary_section(
    data: RunData,
    srows: list[dict[str, Any]],
    base: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
) -> list[str]:
    """Baseline and most robust model, the per-attribute summary table, the interval level."""
    level = next((r["ci_level"] for r in srows if r.get("ci_level")), None)
    parts = ["## Summary", ""]
    if data.rob is not None:
        parts += [
            f"Clean baseline: {describe_member(base)}. Most robust non-excluded model: "
            f"{describe_member(best)}.",
            "",
        ]
    width = auc_acc_width(data)
    if width is not None:
        parts += [
            "AUC_acc and Defense Parity are normalised by the attack-budget range (mean "
            "accuracy over the budgets, in [0, 1]); see the reading guide.",
            "",
        ]
    parts += [_summary_table(srows, largest_rs_n(data), width), ""]
    strongest = [r for r in srows if "dp_robust_strongest" in r]
    if strongest:
        sound = (data.soundness or {}).get("settings", {})
        n, total = sound.get("n_examples"), sound.get("study_n_examples")
        subset = total is None or n != total  # a subset of the study's clips (or unknown)
        parts += [
            "Defense Parity under the study's attack re-run on the soundness checks' clips "
            f"({clips_phrase(n, total)}) and under the strongest attack tried on the same "
            "clips; compare these two with each other"
            + (", not with the table above (all test clips)" if subset else "")
            + ". See the soundness section:",
            "",
            _strongest_table(strongest, soundness_width(data.soundness or {})),
            "",
        ]
    if level:
        parts += [
            f"Intervals: {fmt(100 * level)}% bootstrap. "
            + (robustness_settings(data, short=True) if data.rob else ""),
            "",
        ]
    return parts


_COMPARISON_HEADERS = [
    "study", "family", "attribute", "group / N", "difference of", "difference", "Holm p", "n",
    "significant",
]  # fmt: skip


def _comparisons_section(data: RunData) -> list[str]:
    """Every paired comparison the findings may cite, with its interval and Holm p-value."""
    rows = []
    width = auc_acc_width(data)  # robustness differences are of normalised AUC_acc / parity
    for study, tables in (("robustness", data.rob), ("rejection", data.rej)):
        for r in (tables or {}).get("comparisons", []):
            what = r.get("group") or (
                f"N = {r['num_samples']}" if r.get("num_samples") is not None else ""
            )
            subject = r.get("member_id") or r.get("method") or ""
            reference = r.get("reference_id") or r.get("reference") or ""
            rows.append(
                [
                    study,
                    r["family"].replace("_", " "),
                    r["attribute"],
                    what or "-",
                    f"{subject} - {reference}",
                    fmt_estimate(
                        scaled(
                            estimate(r, "difference", "ci_low", "ci_high"),
                            width if study == "robustness" else None,
                        )
                    ),
                    fmt_p(r.get("p_holm")),
                    r.get("n_comparisons", "-"),
                    "**yes**" if r.get("significant") else "no",
                ]
            )
    if not rows:
        return []
    return [
        "## Paired comparisons",
        "",
        "Each difference is computed on the same clips and the same bootstrap resamples "
        "(robustness: of normalised AUC_acc or Defense Parity); p-values are Holm-corrected "
        "within each family (n = its size); *significant*: Holm p below 1 - the interval "
        "level. The findings cite only these.",
        "",
        md_table(_COMPARISON_HEADERS, rows),
        "",
    ]


def _attributes_section(data: RunData) -> list[str]:
    """Each study's attributes: analysed, or left out with the reason (``*_attributes.json``)."""
    if not data.attributes:
        return []
    parts = [
        "## Attributes",
        "",
        "Classified from the data before any training. An attribute left out has no parity "
        "number, table row or figure; the reason is given.",
        "",
    ]
    for prefix, records in data.attributes.items():
        study = prefix.split("_")[0]  # robustness_<dataset> -> robustness
        for r in records:
            line = f"- {study}: `{r['attribute']}`: "
            if r.get("usable"):
                line += "analysed" + (f" ({r['reason']})" if r.get("reason") else "")
            else:
                line += f"left out: {r.get('reason') or r.get('status')}"
            small = [
                f"{g['group']} in {g['split']} ({g['clips']} clip{'' if g['clips'] == 1 else 's'}, "
                f"{g['speakers']} speaker{'' if g['speakers'] == 1 else 's'})"
                for g in r.get("small_groups", [])
            ]
            if small:
                line += "; groups under the minimum clips or speakers: " + ", ".join(small)
            parts.append(line)
    return [*parts, ""]


def _groups_section(data: RunData) -> list[str]:
    """Every group of every analysed attribute with its size in each study."""
    parts = [
        "## Groups",
        "",
        "Every group of every analysed attribute, with its size in each study. Groups under a "
        "study's minimum size, or with fewer test speakers than its minimum, are listed and "
        "marked with the reason; they get no interval and are left out of that study's "
        "parity numbers and comparisons, never dropped from the tables.",
        "",
    ]
    rob_groups = {(g["attribute"], g["group"]): g for g in (data.rob or {}).get("groups", [])}
    rej_sizes = {
        (r["attribute"], r["group"]): r
        for r in (data.rej or {}).get("auc_fpr_long", [])
        if r["method"] == "NR" and r["attribute"] != "all"
    }
    rob_min = (data.rob or {}).get("summary", {}).get("config", {}).get("min_group_size")
    rej_min = rejection_config(data).get("min_group_size") if data.rej else None
    rej_spk = rejection_config(data).get("min_speakers") if data.rej else None

    def rob_status(g: dict[str, Any]) -> str:
        return "ok" if g["valid"] else (g.get("note") or f"under minimum size {rob_min}")

    def rej_status(r: dict[str, Any]) -> str:
        if r["valid"]:
            return "ok"
        small = rej_min is not None and r["n"] < rej_min
        return f"under minimum size {rej_min}" if small else f"fewer than {rej_spk} speakers"

    grows = []
    for key in dict.fromkeys(list(rob_groups) + list(rej_sizes)):
        g, r = rob_groups.get(key), rej_sizes.get(key)
        grows.append(
            [
                key[0],
                key[1],
                "-" if g is None else g["n_test"],
                "-" if g is None or g.get("n_speakers") is None else g["n_speakers"],
                "-" if g is None else rob_status(g),
                "-" if r is None else r["n"],
                "-" if r is None or r.get("n_train") is None else r["n_train"],
                "-" if r is None else rej_status(r),
            ]
        )
    headers = [
        "attribute",
        "group",
        "n (robustness test)",
        "speakers (test)",
        "robustness",
        "n (rejection eval)",
        "n (train)",
        "rejection",
    ]
    return [*parts, md_table(headers, grows), ""]


def _soundness_section(data: RunData) -> list[str]:
    """The soundness checks (``soundness.json``, else ``soundness.md``), or a "not run" note."""
    if data.soundness:
        return [render_soundness(data.soundness).rstrip(), ""]
    if data.soundness_md:
        sm = data.soundness_md.strip().splitlines()
        if sm and sm[0].startswith("## "):
            sm = sm[1:]
        return ["## Soundness of the attack evaluation", "", *sm, ""]
    return [
        "## Soundness of the attack evaluation",
        "",
        "Not run in this run folder (no `results/soundness.md`). Defense Parity is only "
        "as good as the attack behind it; see `fairrobust.evaluation`.",
        "",
    ]


def _files_section(run_dir: Path, img: ImageLinks) -> list[str]:
    """Figures not shown above (nor replaced by one shown above), then the results files.

    A figure counts as shown when a figure of the same file name was linked, by
    whatever path (``ImageLinks.used`` holds file names), or was covered by
    ``ImageLinks.cover``.
    """
    parts: list[str] = []
    shown = {Path(name).name for name in img.used}
    other = sorted(p for p in (run_dir / "figures").glob("*.png") if p.name not in shown)
    if other:
        parts += ["## Other figures", ""]
        for p in other:
            parts += img.figure(
                p, f"`{p.name}`: a figure this run wrote that the sections above do not discuss."
            )
    parts += ["## Files", "", "Result tables (CSV and JSON with the same rows):", ""]
    for p in sorted((run_dir / "results").glob("*")):
        if p.suffix in (".csv", ".json", ".npz", ".md") and not p.name.startswith("."):
            parts.append(f"- `results/{p.name}`")
    parts.append("")
    return parts
