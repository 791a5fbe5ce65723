"""The rejection section of the report: RS vs NR, AUC_FPR and FPR Parity, certified accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairrobust.report.blocks import ImageLinks, md_table, settings_line
from fairrobust.studies import attribute_slug
from fairrobust.studies.intervals import estimate, fmt, fmt_ci
from fairrobust.studies.results import (
    RunData,
    rejection_attributes,
    rejection_config,
)

__all__ = [
    "certified_parity_block",
    "certify_settings",
    "rejection_section",
    "rejection_settings",
]

_PARITY = ("fpr_parity", "ci_low", "ci_high")


def rejection_settings(data: RunData, short: bool = False) -> str:
    """The settings line of the rejection study (sampling and bootstrap only when ``short``)."""
    c = rejection_config(data)
    s = data.rej["summary"] if data.rej else {}
    items = {
        "N": c.get("num_samples"),
        "alpha grid": f"[{c.get('alpha_min')}, {c.get('alpha_max')}] step {c.get('alpha_step')}",
        "sigma": c.get("sigma"),
        "noise": c.get("noise"),
        "clips": s.get("num_eval"),
        "seed": c.get("seed"),
        "bootstrap": f"{c.get('bootstrap_resamples')} resamples, "
        f"{fmt(100 * (c.get('ci_level') or 0))}% intervals",
    }
    if not short:
        items = {
            "model": c.get("model"),
            "width": c.get("width"),
            "epochs": c.get("epochs"),
            **items,
            "NR SVM train subsample": c.get("nr_max_train") or "all",
            "min group size": c.get("min_group_size"),
        }
    return settings_line(items)


def certify_settings(data: RunData) -> str:
    """The settings line of CERTIFY (noise, sigmas, n0, n, alpha, radii, seed; with adaptive
    sampling the estimation draws it used, from the summary)."""
    c = rejection_config(data)
    summary = ((data.rej or {}).get("summary") or {}).get("certify") or {}
    items: dict[str, Any] = {
        "noise": c.get("noise"),
        "sigma": c.get("certify_sigmas") or c.get("sigma"),
        "n0": c.get("certify_n0"),
        "n": c.get("certify_n"),
        "alpha": c.get("certify_alpha"),
        "radii": c.get("radii"),
        "seed": c.get("seed"),
    }
    certs = summary.get("certifications") or []
    if summary.get("adaptive") and certs and c.get("certify_n"):
        used = sum(x.get("mean_draws") or 0.0 for x in certs) / len(certs)
        items["adaptive"] = (
            f"{used:.0f} estimation draws per clip on average, "
            f"{1 - used / c['certify_n']:.0%} saved (union bound over the looks)"
        )
    return settings_line(items)


def rejection_section(data: RunData, img: ImageLinks, figures: Mapping[str, Path]) -> list[str]:
    """Markdown lines of the section "Rejection: randomized smoothing (RS) vs neural rejection".

    Args:
      data: a run with the rejection study.
      img: figure links of the report.
      figures: report figures (``write_report_figures``).
    """
    assert data.rej is not None
    rej = data.rej
    fig_dir = data.run_dir / "figures"
    out = [
        "## Rejection: randomized smoothing (RS) vs neural rejection (NR)",
        "",
        rejection_settings(data),
        "",
        "RS abstains when the two-sided binomial p-value of the top-two noise counts exceeds "
        "alpha; NR rejects when the top SVM score is below t; both thresholds sweep the same "
        "grid. On clean data every rejection is a false rejection.",
        "",
    ]
    s = rej["summary"]
    out += [
        f"Accuracy on the evaluated clips: NR base M5 {fmt(s.get('nr_base_accuracy'))}, NR "
        f"(SVM) {fmt(s.get('nr_accuracy'))}, RS base M5 {fmt(s.get('rs_base_accuracy'))}.",
        "",
    ]
    methods = list(dict.fromkeys(r["label"] for r in rej["fpr_parity"]))
    out += ["### FPR Parity per attribute and method", ""]
    par = {(r["attribute"], r["label"]): r for r in rej["fpr_parity"]}
    attrs = rejection_attributes(data)
    out.append(
        md_table(
            ["attribute", *methods],
            [[a, *[fmt_ci(*estimate(par.get((a, m)), *_PARITY)) for m in methods]] for a in attrs],
        )
    )
    out.append("")
    ci = _ci(data)
    if "fpr_parity" in figures:
        out += img.figure(
            figures["fpr_parity"],
            "FPR Parity (the largest AUC_FPR gap between the groups that count) of each "
            f"method (x axis), one bar per attribute; whiskers: {ci}; lower is more equal.",
        )
    out += img.figure(
        fig_dir / "rejection_fpr_parity_vs_n.png",
        "FPR Parity of randomized smoothing against its number of noise samples N (log axis, "
        "blue) and of neural rejection (red dashed line), one panel per attribute; RS band "
        f"and NR shaded span: {ci}.",
    )
    out += _answerable_block(rej, attrs)
    n = s.get("num_eval")
    out += img.figure(
        fig_dir / "rejection_fpr_curves_all.png",
        f"False-rejection rate of all {f'{n} ' if n else ''}evaluated clean clips against the "
        "threshold (RS: alpha on the binomial p-value; NR: t on the top SVM score), one panel "
        f"per method; band: {ci}.",
    )
    for a in attrs:
        out += _attribute_block(data, a, methods, par, img, figures)
    out += _size_correlation_block(rej["correlation"])
    out += _certified_block(data, attrs, img)
    out += certified_parity_block(data)
    return out


def _answerable_block(rej: Mapping[str, Any], attrs: Sequence[str]) -> list[str]:
    """Smallest alpha RS answers per N, and AUC_FPR / FPR Parity over the common range."""
    rows = rej.get("common_range") or []
    answerable = rej["summary"].get("rs_answerable") or {}
    if not rows or not answerable:
        return []
    floors = answerable.get("smallest_alpha", {})
    lo, hi = answerable.get("common_range", [None, None])
    out = [
        "### Where RS can answer",
        "",
        "With N noise draws the smallest PREDICT p-value is 2 * 0.5^N, so below that alpha "
        "RS abstains on every clip and its false rejection rate is 1 by construction, which "
        "inflates its AUC_FPR over the full grid. Smallest alpha RS can answer: "
        + ", ".join(f"N = {n}: {fmt(f)}" for n, f in floors.items())
        + ". NR's threshold axis is a probability (the top SVM score) and RS's a p-value: "
        "the two are different scales, so AUC_FPR compares each method with itself across "
        "groups, not NR with RS.",
        "",
    ]
    if lo is None:
        return [*out, "No grid threshold is answerable by every method.", ""]
    methods = list(dict.fromkeys(r["label"] for r in rows))
    cell = {(r["attribute"], r["group"], r["label"]): r for r in rows}

    def both(r: Mapping[str, Any] | None) -> str:
        if r is None:
            return ""
        return f"{fmt(r.get('auc_fpr_common'))} ({fmt(r.get('auc_fpr'))})"

    out += [
        f"AUC_FPR of all clips and FPR Parity per attribute over the range every method can "
        f"answer, alpha / t in [{fmt(lo)}, {fmt(hi)}] (full-grid value in parentheses; "
        "`results/rejection_common_range.csv`):",
        "",
        md_table(
            ["", *methods],
            [["AUC_FPR, all clips", *[both(cell.get(("all", "all", m))) for m in methods]]]
            + [
                [f"FPR Parity, {a}", *[both(cell.get((a, "(parity)", m))) for m in methods]]
                for a in attrs
            ],
        ),
        "",
    ]
    return out


def _attribute_block(
    data: RunData,
    a: str,
    methods: list[str],
    par: Mapping[tuple[str, str], Mapping[str, Any]],
    img: ImageLinks,
    figures: Mapping[str, Path],
) -> list[str]:
    """One attribute: AUC_FPR per group and method, FPR Parity, figures, accuracy per group."""
    assert data.rej is not None
    fig_dir = data.run_dir / "figures"
    out = [f"### {a}", "", rejection_settings(data, short=True), ""]
    rows = [r for r in data.rej["auc_fpr_long"] if r["attribute"] == a]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    idx = {(r["label"], r["group"]): r for r in rows}
    head = []
    for g in groups:
        r0 = idx.get((methods[0], g)) if methods else None
        n = "?" if r0 is None else r0["n"]
        small = r0 is not None and not r0["valid"]
        head.append(f"{g} (n={n}{', not counted' if small else ''})")
    out += ["AUC_FPR per group (lower = fewer false rejections):", ""]
    out.append(
        md_table(
            ["method", *head, "FPR Parity"],
            [
                [
                    m,
                    *[
                        fmt_ci(*estimate(idx.get((m, g)), "auc_fpr", "ci_low", "ci_high"))
                        for g in groups
                    ],
                    fmt_ci(*estimate(par.get((a, m)), *_PARITY)),
                ]
                for m in methods
            ],
        )
    )
    out.append("")
    ci = _ci(data)
    why = "groups under the minimum size or speakers"
    small, small_lines = f"faded bars: {why}", f"dashed grey lines: {why}"
    study_bars = fig_dir / f"rejection_auc_fpr_{attribute_slug(a)}.png"
    if f"auc_fpr_{a}" in figures:
        out += img.figure(
            figures[f"auc_fpr_{a}"],
            f"AUC_FPR (area under the false-rejection curve over the threshold grid) of each "
            f"{a} group, one bar per method; whiskers: {ci}; {small} (no interval); lower "
            "is fewer false rejections.",
        )
        img.cover(study_bars)  # the study's copy of these bars
    else:
        out += img.figure(
            study_bars,
            f"AUC_FPR of each {a} group, one bar per method; whiskers: {ci}; {small}.",
        )
    out += img.figure(
        fig_dir / f"rejection_fpr_curves_{attribute_slug(a)}.png",
        f"False-rejection rate of each {a} group on clean clips against the threshold (RS: "
        "alpha on the binomial p-value; NR: t on the top SVM score), one panel per method; "
        f"bands: {ci} (`rejection_fpr_curves.csv`); {small_lines}.",
    )
    acc = [r for r in data.rej["accuracy"] if r["attribute"] == a]
    if acc:
        out += [
            "Accuracy per group with bootstrap intervals (RS rows count an abstention as "
            "an error; abstention rate and its interval in parentheses):",
            "",
            _accuracy_table(acc, groups),
            "",
        ]
    return out


def _accuracy_cell(r: Mapping[str, Any] | None) -> str:
    """``accuracy [lo, hi]``, with `` (abstain rate [lo, hi])`` for RS rows; ``n/a`` without one."""
    if r is None:
        return "n/a"
    text = fmt_ci(*estimate(r, "accuracy", "accuracy_ci_low", "accuracy_ci_high"))
    if r.get("abstain_rate") is None:
        return text
    rate = fmt_ci(*estimate(r, "abstain_rate", "abstain_rate_ci_low", "abstain_rate_ci_high"))
    return f"{text} ({rate})"


def _accuracy_table(acc: list[dict[str, Any]], groups: list[str]) -> str:
    models = list(dict.fromkeys(r["model"] for r in acc))
    by = {(r["model"], r["group"]): r for r in acc}
    return md_table(
        ["model", *groups],
        [[m, *[_accuracy_cell(by.get((m, g))) for g in groups]] for m in models],
    )


def _size_correlation_block(corr: list[dict[str, Any]]) -> list[str]:
    """Pearson r between a group's number of training clips and its AUC_FPR."""
    return [
        "### Training-set size vs AUC_FPR",
        "",
        "Pearson r between a group's number of training clips and its AUC_FPR (valid groups; "
        "`all` pools the groups of every attribute); `RS mean` is the mean +- std of r over N.",
        "",
        md_table(
            ["attribute", "method", "N", "r", "r std", "p", "groups"],
            [
                [
                    r["attribute"],
                    r["method"],
                    r["num_samples"] or "-",
                    fmt(r["r"]),
                    fmt(r["r_std"]) if r.get("r_std") is not None else "-",
                    fmt(r["p_value"]) if r.get("p_value") is not None else "-",
                    r["n_groups"],
                ]
                for r in corr
            ],
        ),
        "",
    ]


def _certified_block(data: RunData, attrs: list[str], img: ImageLinks) -> list[str]:
    """Certified accuracy vs radius per group (empty without CERTIFY results): one table
    per smoothed model and space, rows sigma x group, columns radii (the table shape of
    the audio-certification paper, per demographic group)."""
    assert data.rej is not None
    cert = data.rej.get("certified_accuracy") or []
    if not cert:
        return []
    out = [
        "### Certified accuracy vs radius per group (Cohen et al. CERTIFY)",
        "",
        certify_settings(data),
        "",
        "Certified accuracy: fraction of clips certified correct at radius >= r in the "
        "certificate's norm, in the units of the space the noise is added to "
        "(abstentions count as errors), with bootstrap intervals (stratified by group, "
        "clustered by speaker).",
        "",
    ]
    radii = sorted({r["radius"] for r in cert})
    blocks = dict.fromkeys(
        (r.get("model", "RS base"), r.get("space", "waveform"), r.get("norm", "l2")) for r in cert
    )
    for model, space, norm in blocks:
        rows = [
            r for r in cert
            if (r.get("model", "RS base"), r.get("space", "waveform"), r.get("norm", "l2"))
            == (model, space, norm)
        ]  # fmt: skip
        keys = list(
            dict.fromkeys(
                (r.get("sigma"), r["attribute"], r["group"], r["n"], r["valid"]) for r in rows
            )
        )
        ci = {(r.get("sigma"), r["attribute"], r["group"], r["radius"]): r for r in rows}
        if len(blocks) > 1 or len({k[0] for k in keys}) > 1:
            out += [f"**{model}**, smoothed in the {space} space, {norm.upper()} radii:", ""]
        out.append(
            md_table(
                ["sigma", "attribute", "group", "n", *[f"r={fmt(x)}" for x in radii]],
                [
                    [
                        fmt(sig) if sig is not None else "",
                        a,
                        g + ("" if v else " (not counted)"),
                        n,
                        *[
                            fmt_ci(
                                *estimate(
                                    ci.get((sig, a, g, x)),
                                    "certified_accuracy",
                                    "ci_low",
                                    "ci_high",
                                )
                            )
                            for x in radii
                        ],
                    ]
                    for sig, a, g, n, v in keys
                ],
            )
        )
        out.append("")
    fig_dir = data.run_dir / "figures"
    first = cert[0]
    what = (
        f"{first.get('model', 'the RS base model')}"
        + (f", sigma {fmt(first['sigma'])}" if first.get("sigma") is not None else "")
        + f", {str(first.get('norm', 'l2')).upper()} radius in the "
        + f"{first.get('space', 'waveform')} space"
    )
    for a in ["all", *attrs]:
        who = "all evaluated clips" if a == "all" else f"each {a} group"
        out += img.figure(
            fig_dir / f"rejection_certified_accuracy_{attribute_slug(a)}.png",
            f"Certified accuracy of {who} against the certified radius ({what}): the fraction "
            f"of clips CERTIFY classifies correctly with at least that radius; bands: "
            f"{_ci(data)}"
            + ("." if a == "all" else "; dashed grey: groups under the minimum size or speakers."),
        )
    return out


def _ci(data: RunData) -> str:
    """How the intervals of the rejection figures were computed, for captions."""
    c = rejection_config(data)
    if not c.get("bootstrap_resamples"):
        return "none (bootstrap off)"
    return f"{fmt(100 * (c.get('ci_level') or 0.95))}% bootstrap intervals clustered by speaker"


def _radius_units(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the radii of certification rows measure: each (norm, space) present."""
    pairs = dict.fromkeys((r.get("norm", "l2"), r.get("space", "waveform")) for r in rows)
    return "; ".join(
        f"{norm.upper()} distances in "
        + ("waveform units (samples in [-1, 1])" if space == "waveform"
           else f"the standardised {space} representation's units")
        + ("" if len(pairs) == 1 else f" ({space} rows)")
        for norm, space in pairs
    )  # fmt: skip


def certified_parity_block(data: RunData) -> list[str]:
    """Markdown lines: Certified Parity per attribute, its groups' CAUC and median radius.

    Empty without a ``certified_parity`` table. Columns of the table this block does
    not know (e.g. ``sigma``, ``space`` of a sweep) are shown first, as keys.
    """
    assert data.rej is not None
    rows = data.rej.get("certified_parity") or []
    if not rows:
        return []
    r_lo, r_hi = rows[0].get("r_lo"), rows[0].get("r_hi")
    # Columns the table does not name (e.g. sigma, space added by a sweep) become keys.
    known = {"attribute", "group", "n", "speakers", "valid", "r_lo", "r_hi", "n_valid_groups"}
    extra = [k for k in rows[0] if k not in known and not k.startswith(("certified", "median"))]
    out = [
        "### Certified Parity (area under the certified-accuracy curve per group)",
        "",
        f"CAUC: the area under a group's certified-accuracy curve over radii [{fmt(r_lo)}, "
        f"{fmt(r_hi)}] divided by the range length (1 = every clip certified correct at every "
        f"radius of the range); radii are {_radius_units(rows)}. "
        "Median radius: abstentions and misclassifications "
        "count as 0. Certified Parity = max - min of CAUC over the groups that count, with the "
        "simultaneous-pairwise interval used for FPR Parity.",
        "",
    ]
    table, seen = [], set()
    for r in rows:
        note = "" if r.get("valid", True) else " (not counted)"
        first = (*[str(r.get(k)) for k in extra], r["attribute"]) not in seen
        seen.add((*[str(r.get(k)) for k in extra], r["attribute"]))
        table.append(
            [
                *[r.get(k) for k in extra],
                r["attribute"],
                f"{r['group']}{note}",
                r.get("n"),
                r.get("speakers"),
                fmt_ci(*estimate(r, "certified_auc", "certified_auc_ci_low",
                                 "certified_auc_ci_high")),
                fmt_ci(*estimate(r, "median_radius", "median_radius_ci_low",
                                 "median_radius_ci_high")),
                fmt_ci(*estimate(r, "certified_parity", "certified_parity_ci_low",
                                 "certified_parity_ci_high")) if first else "",
            ]
        )  # fmt: skip
    head = [*extra, "attribute", "group", "n", "speakers", "CAUC", "median radius"]
    out.append(md_table([*head, "Certified Parity"], table))
    out.append("")
    return out
