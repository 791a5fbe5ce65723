"""The robustness section of the report: AUC_acc and Defense Parity per model and group.

AUC_acc and Defense Parity are printed normalised: the raw integral of the
results files divided by the width of the attack-budget range
(:func:`fairrobust.studies.results.auc_acc_width`), the mean accuracy over the
budgets, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairrobust.report.blocks import ImageLinks, md_table, settings_line
from fairrobust.studies.intervals import as_number, estimate, fmt, fmt_ci, fmt_estimate, scaled
from fairrobust.studies.results import (
    RunData,
    auc_acc_width,
    robustness_attributes,
    robustness_slug,
)

__all__ = ["breaking_eps_block", "robustness_section", "robustness_settings"]

_AUC = ("auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
_CLEAN = ("clean_accuracy", "clean_accuracy_ci_low", "clean_accuracy_ci_high")
_DP = ("defense_parity", "defense_parity_ci_low", "defense_parity_ci_high")


def robustness_settings(data: RunData, short: bool = False) -> str:
    """The settings line of the robustness study (attack and bootstrap only when ``short``)."""
    assert data.rob is not None
    c = data.rob["summary"]["config"]
    s = data.rob["summary"]
    items = {
        "PGD L-inf eps": c["attack_eps"],
        "steps": c["attack_steps"],
        "step size": f"{fmt(c['attack_rel_step'])} x eps",
        "test clips": s.get("n_test"),
        "seed": c["seed"],
        "bootstrap": f"{c['bootstrap_resamples']} resamples, "
        f"{fmt(100 * c['ci_level'])}% percentile intervals (stratified by group, clustered by "
        "speaker)",
    }
    if not short:
        items = {
            "models": c["models"],
            "AT budgets": c["at_eps"],
            "noise stds": c["noise_std"],
            "preprocess": c["preprocess"],
            "epochs": c["epochs"],
            "width": c["width"],
            **items,
            "min group size": c["min_group_size"],
            "random-guess test level": c["random_guess_level"],
        }
    return settings_line(items)


def robustness_section(
    data: RunData,
    base: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
    img: ImageLinks,
    figures: Mapping[str, Path],
) -> list[str]:
    """Markdown lines of the section "Robustness training: AUC_acc and Defense Parity".

    Args:
      data: a run with the robustness study.
      base, best: the clean baseline and the most robust model (their accuracy
        curves are shown).
      img: figure links of the report.
      figures: report figures (``write_report_figures``).
    """
    assert data.rob is not None
    rob = data.rob
    figs = {k: Path(v) for k, v in rob["summary"].get("figures", {}).items()}
    eps = rob["summary"]["config"].get("attack_eps") or []
    rng = f"[{fmt(eps[0])}, {fmt(eps[-1])}]" if len(eps) >= 2 else "the attack budgets"
    out = [
        "## Robustness training: AUC_acc and Defense Parity",
        "",
        robustness_settings(data),
        "",
        f"AUC_acc (normalised): the trapezoid integral of accuracy over the attack budgets "
        f"{rng} (paper Eq. 1) divided by the width of that range, i.e. the mean accuracy over "
        "the budgets, in [0, 1]; the results files also keep the raw integral. Defense "
        f"Parity: {rob['summary'].get('defense_parity', '')}, in the same normalised units. "
        f"{rob['summary'].get('random_guess_test', '')}.",
        "",
    ]
    out += ["### Per-model table", "", _model_table(rob["models"], auc_acc_width(data))]
    out += [
        "",
        "Overall (all test clips) numbers are point estimates; group numbers below carry "
        "intervals.",
        "",
    ]
    if "defense_parity" in figures:
        out += img.figure(
            figures["defense_parity"],
            "Defense Parity (the largest AUC_acc gap between the groups that count) of every "
            f"model (x axis), one bar per attribute; whiskers: {_ci(data)}; lower is more equal.",
        )
    out += _models_figures(data, img, figures, figs)
    for attr in robustness_attributes(data):
        out += _attribute_block(data, attr, base, best, img, figures, figs)
    out += breaking_eps_block(data, base, best, img)
    out += _correlations_block(rob, img, figs)
    return out


def breaking_eps_block(
    data: RunData,
    base: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
    img: ImageLinks,
) -> list[str]:
    """Markdown lines: robustness bias (smallest breaking epsilon per group), baseline and best.

    Empty without a ``breaking_eps`` table (runs before it existed).
    """
    assert data.rob is not None
    rows = data.rob.get("breaking_eps") or []
    ids = [m["member_id"] for m in (base, best) if m is not None]
    ids = list(dict.fromkeys(ids))
    rows = [r for r in rows if r.get("member_id") in ids]
    if not rows:
        return []
    out = [
        "### Robustness bias: smallest breaking epsilon per group (Nanda et al. 2021)",
        "",
        "Each clip's smallest breaking epsilon is 0 if it is misclassified clean, else the "
        "first budget of the sweep at which PGD misclassifies it, else never broken (inf). It "
        "is an upper bound of the clip's minimal adversarial distance: PGD may miss an "
        "adversarial example that exists, and the sweep is discrete. Median with a "
        "speaker-clustered bootstrap interval (inf when at least half the group is never "
        "broken); gaps are max - min over the groups that count (no median-gap interval when "
        "a median reaches inf).",
        "",
    ]
    table, seen = [], set()
    for r in rows:
        med = (
            "inf"
            if r.get("median_never_broken")
            else fmt_ci(*estimate(r, "median_breaking_eps", "median_ci_low", "median_ci_high"))
        )
        key = (r["member_id"], r["attribute"])
        first = key not in seen
        seen.add(key)
        table.append(
            [
                r["member_id"],
                r["attribute"],
                r["group"] + ("" if r.get("valid", True) else " (not counted)"),
                r.get("n"),
                med,
                fmt_ci(*estimate(r, "never_broken", "never_broken_ci_low", "never_broken_ci_high")),
                fmt_ci(*estimate(r, "median_gap", "median_gap_ci_low", "median_gap_ci_high"))
                if first
                else "",
                fmt_ci(
                    *estimate(
                        r, "never_broken_gap", "never_broken_gap_ci_low", "never_broken_gap_ci_high"
                    )
                )
                if first
                else "",
            ]
        )
    head = ["model", "attribute", "group", "n", "median breaking eps", "never broken"]
    out += [md_table([*head, "median gap", "never-broken gap"], table), ""]
    figs = {k: Path(v) for k, v in data.rob["summary"].get("figures", {}).items()}
    for key in sorted(k for k in figs if k.startswith("breaking_eps_")):
        attr = next(
            (r["attribute"] for r in rows if robustness_slug(r["attribute"]) == key[13:]), key[13:]
        )
        out += img.figure(
            figs[key],
            f"Fraction of each {attr} group broken at or below each attack budget (empirical "
            "CDF of the smallest breaking epsilon; clean = misclassified without attack), one "
            "panel for the baseline and one for the most robust model; shaded: pointwise "
            "bootstrap intervals (clustered by speaker); dashed grey: groups that do not count.",
        )
    return out


def _model_table(models: list[dict[str, Any]], width: float | None) -> str:
    """One row per model, by clean accuracy: settings, AUC_acc (normalised by ``width``),
    accuracy per epsilon, exclusion."""
    eps_cols = [k for k in (models[0] if models else {}) if k.startswith("acc@")]
    return md_table(
        [
            "model",
            "architecture",
            "AT eps",
            "noise std",
            "preprocess",
            "clean acc",
            "AUC_acc (normalised)",
            *eps_cols,
            "excluded (random guessing p)",
        ],
        [
            [
                f"`{r['member_id']}`",
                r["model"],
                fmt(r["at_eps"]),
                fmt(r["noise_std"]),
                r["preprocess"],
                fmt(r["clean_accuracy"]),
                fmt(scaled((as_number(r["auc_acc"]), None, None), width)[0]),
                *[fmt(r[k]) for k in eps_cols],
                ("yes" if r["excluded"] else "no") + f" ({fmt(r['random_guess_p'])})",
            ]
            for r in sorted(models, key=lambda r: r["clean_accuracy"])
        ],
    )


def _member_name(m: Mapping[str, Any]) -> str:
    return f"`{m['member_id']}`" + (" (excluded)" if m["excluded"] else "")


def _attribute_block(
    data: RunData,
    attr: str,
    base: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
    img: ImageLinks,
    figures: Mapping[str, Path],
    figs: Mapping[str, Path],
) -> list[str]:
    """One attribute: clean accuracy and AUC_acc per group and model, Defense Parity, figures."""
    assert data.rob is not None
    rob = data.rob
    out = [f"### {attr}", "", robustness_settings(data, short=True), ""]
    members = rob["models"]
    gm = [g for g in rob["group_metrics"] if g["attribute"] == attr]
    groups = list(dict.fromkeys(g["group"] for g in gm))
    if not groups:
        return [*out, "No groups (all values unknown).", ""]
    idx = {(g["member_id"], g["group"]): g for g in gm}
    sizes = {g["group"]: (g["n"], g["valid"]) for g in gm}
    head = [f"{g} (n={sizes[g][0]}{'' if sizes[g][1] else ', not counted'})" for g in groups]
    out += ["Clean accuracy per group:", ""]
    out.append(
        md_table(
            ["model", *head],
            [
                [
                    _member_name(m),
                    *[fmt_ci(*estimate(idx.get((m["member_id"], g)), *_CLEAN)) for g in groups],
                ]
                for m in members
            ],
        )
    )
    w = auc_acc_width(data)
    out += ["", "AUC_acc per group and Defense Parity per model (normalised):", ""]
    dps = {r["member_id"]: r for r in rob["defense_parity"] if r["attribute"] == attr}
    out.append(
        md_table(
            ["model", *head, "Defense Parity", "worst group", "note"],
            [
                [
                    _member_name(m),
                    *[
                        fmt_estimate(scaled(estimate(idx.get((m["member_id"], g)), *_AUC), w))
                        for g in groups
                    ],
                    fmt_estimate(scaled(estimate(dps.get(m["member_id"]), *_DP), w)),
                    (dps.get(m["member_id"]) or {}).get("worst_group") or "-",
                    (dps.get(m["member_id"]) or {}).get("note") or "",
                ]
                for m in members
            ],
        )
    )
    out.append("")
    out += _attribute_figures(data, attr, base, best, img, figures, figs)
    return out


def _correlations_block(
    rob: Mapping[str, Any], img: ImageLinks, figs: Mapping[str, Path]
) -> list[str]:
    """Pearson r of each intervention with Defense Parity, and the correlation figures."""
    c = rob["summary"]["config"]
    out = [
        "### Correlations of interventions with Defense Parity and group AUC_acc",
        "",
        f"Pearson r across the non-excluded models (paper Figures 2-5); p two-sided; "
        f"min group size {c['min_group_size']}.",
        "",
    ]
    corr = [r for r in rob["correlations"] if r["outcome"] == "defense_parity"]
    out.append(
        md_table(
            ["attribute", "intervention", "kind", "r", "p", "models", "note"],
            [
                [
                    r["attribute"],
                    r["intervention"],
                    r["kind"],
                    fmt(r["r"]),
                    fmt(r["p"]),
                    r["n_models"],
                    r.get("note") or "",
                ]
                for r in corr
            ],
        )
    )
    out.append("")
    what = {
        "binary": "binary interventions (AT, Tricks, Noise, ...: on or off)",
        "levels": "intervention levels (the AT budget, the noise std, ...)",
        "dp": "the Defense Parity of each attribute (rows)",
        "groups": "the AUC_acc of each group (rows)",
    }
    for key in ("corr_binary_dp", "corr_levels_dp", "corr_binary_groups", "corr_levels_groups"):
        if key in figs:
            _, kind, outcome = key.split("_")
            out += img.figure(
                figs[key],
                f"Pearson r across the non-excluded models between {what[kind]} (columns) and "
                f"{what[outcome]}; red: positive, blue: negative, grey n/a: undefined, a star "
                "marks p < 0.05.",
            )
    return out


def _ci(data: RunData) -> str:
    """How the intervals of the robustness figures were computed, for captions."""
    assert data.rob is not None
    c = data.rob["summary"].get("config", {})
    if not c.get("bootstrap_resamples"):
        return "none (bootstrap off)"
    return f"{fmt(100 * c.get('ci_level', 0.95))}% bootstrap intervals clustered by speaker"


def _clips(data: RunData) -> str:
    assert data.rob is not None
    n = data.rob["summary"].get("n_test")
    return f"{n} test clips" if n else "all test clips"


def _models_figures(
    data: RunData, img: ImageLinks, figures: Mapping[str, Path], figs: Mapping[str, Path]
) -> list[str]:
    """The paper's per-model figures: histograms per budget, every model's curve, AUC_acc."""
    assert data.rob is not None
    find = {**figures, **figs}  # the study's figures first; a report copy for older runs
    out: list[str] = []
    n = len(data.rob["models"])
    if "models_accuracy" in find:
        out += img.figure(
            find["models_accuracy"],
            f"Accuracy of each of the {n} models on {_clips(data)} against the PGD L-inf "
            "budget epsilon (log axis; clean accuracy at the left, chance dashed), the "
            "preprint's Figure 6; dashed grey lines are models excluded as random guessing; "
            "point estimates (the models table has no intervals).",
        )
    if "models_auc" in find:
        rows = data.rob["models"]
        normalized = bool(rows) and all(r.get("auc_acc_normalized") is not None for r in rows)
        has_ci = any(r.get("auc_acc_ci_low") is not None for r in rows)
        out += img.figure(
            find["models_auc"],
            f"Overall AUC_acc of each model on {_clips(data)}"
            + (", divided by the epsilon range (a mean accuracy)" if normalized else "")
            + ", highest first (the preprint's Figure 7); hatches: dots noise augmentation, "
            "crosses adversarial training, stars both; faded: excluded as random guessing"
            + (f"; whiskers: {_ci(data)}." if has_ci else "; point estimates."),
        )
    if "hist_accuracy" in find:
        out += img.figure(
            find["hist_accuracy"],
            f"Histograms of the {n} models' accuracy on {_clips(data)}, one panel per attack "
            "budget (clean first), the AISec'23 paper's Figures 8-9: how many models keep "
            "which accuracy as the budget grows (dotted: chance).",
        )
    return out


def _attribute_figures(
    data: RunData,
    attr: str,
    base: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
    img: ImageLinks,
    figures: Mapping[str, Path],
    figs: Mapping[str, Path],
) -> list[str]:
    """The figures of one attribute, each with its caption."""
    slug = robustness_slug(attr)
    out: list[str] = []
    why = "groups under the minimum size or speakers"
    small, small_lines = f"faded bars: {why}", f"dashed grey lines: {why}"
    if f"auc_acc_{attr}" in figures:
        ids = [f"`{m['member_id']}`" for m in (base, best) if m is not None]
        out += img.figure(
            figures[f"auc_acc_{attr}"],
            f"AUC_acc of each {attr} group for the clean baseline and the most robust model "
            f"({', '.join(dict.fromkeys(ids))}); whiskers: {_ci(data)}; {small} (no interval).",
        )
    if f"auc_{slug}" in figs:
        out += img.figure(
            figs[f"auc_{slug}"],
            f"AUC_acc of each {attr} group for every model (x axis); whiskers: {_ci(data)}; "
            f"hatched: models excluded as random guessing; {small}.",
        )
    for m in (base, best):
        if m is None:
            continue
        key = f"curves_{slug}_{robustness_slug(m['member_id'])}"
        if key in figs:
            out += img.figure(
                figs[key],
                f"Accuracy of each {attr} group of `{m['member_id']}` against the PGD L-inf "
                "budget epsilon (log axis; clean accuracy at the left, chance dashed); bands "
                f"and clean error bars: {_ci(data)} (`group_curves` table); {small_lines}.",
            )
    key = f"hist_{slug}"
    if key in {**figures, **figs}:
        out += img.figure(
            {**figures, **figs}[key],
            f"Histograms of the models' accuracy on each {attr} group, one panel per attack "
            f"budget (clean first), one outline per group; {small_lines}.",
        )
    return out
