"""The findings of a run: sentences that state only what the numbers show, each with its numbers.

Each finding is a record ``{"topic", "text", "numbers"}``. Comparisons of two
estimates use their bootstrap intervals (:func:`fairrobust.studies.intervals.
compare_intervals`): disjoint intervals -> "lower" / "higher"; overlapping ->
"not distinguishable"; missing intervals -> the direction with "(no CI)".

:func:`fairrobust.studies.summary.findings` puts them together (robustness,
rejection, soundness) and :func:`fairrobust.studies.summary.write_summary`
writes them to ``results/run_findings.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fairrobust import _io
from fairrobust.studies.intervals import (
    Estimate,
    as_number,
    compare_intervals,
    estimate,
    fmt,
    fmt_estimate,
)
from fairrobust.studies.results import (
    STRONGEST,
    RunData,
    auc_fpr_rows,
    defense_parity_row,
    fpr_parity_row,
    group_metric_rows,
    largest_rs_n,
    rejection_attributes,
    robustness_attributes,
    soundness_parity,
)

__all__ = [
    "describe_member",
    "rejection_findings",
    "robustness_findings",
    "soundness_findings",
]

_AUC = ("auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
_DP = ("defense_parity", "defense_parity_ci_low", "defense_parity_ci_high")
_SOUND_DP = ("defense_parity", "ci_low", "ci_high")
_FPR_PARITY = ("fpr_parity", "ci_low", "ci_high")


def describe_member(m: Mapping[str, Any] | None) -> str:
    """```member_id` (model, AT eps, noise std[, preprocess])`` of a ``models`` row; ``none``."""
    if m is None:
        return "none"
    parts = [str(m["model"]), f"AT eps {fmt(m['at_eps'])}", f"noise std {fmt(m['noise_std'])}"]
    if m.get("preprocess", "none") != "none":
        parts.append(f"preprocess {m['preprocess']}")
    return f"`{m['member_id']}` ({', '.join(parts)})"


def _finding(topic: str, text: str, **numbers: Any) -> dict[str, Any]:
    return {"topic": topic, "text": text, "numbers": _io.to_jsonable(numbers)}


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sized(group: str, n: Any) -> str:
    return f"{group} (n = {n})"


# ----------------------------------------------------------------------------- soundness


def soundness_findings(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The soundness verdict, and where the strongest attack changes Defense Parity.

    Args:
      rec: the ``results/soundness.json`` record.

    Returns:
      Finding records (empty when the record has no checks).
    """
    checks = rec.get("checks", [])
    if not checks:
        return []
    warned = [c for c in checks if c["verdict"] == "warn"]
    what = _join(f"{c['check']} on `{c['model']}`" for c in warned)
    text = (
        f"The attack-soundness checks pass for all {len(checks)} checks."
        if not warned
        else f"The attack-soundness checks warn in {len(warned)} of {len(checks)} checks "
        f"({what}); see the soundness section."
    )
    out = [_finding("soundness", text, warned=[c["check"] for c in warned], n=len(checks))]
    out += _strongest_findings(rec)
    out += _convergence_findings(rec)
    return out


def _strongest_attack_words(rec: Mapping[str, Any]) -> str:
    """What the strongest attack tried was made of (from the settings)."""
    st = rec.get("settings", {})
    steps = st.get("steps") or []
    parts = [f"PGD up to {max(steps)} steps" if steps else "PGD"]
    if st.get("study_steps") is not None:
        parts[0] += f" (the study's: {st['study_steps']})"
    if st.get("restarts"):
        parts.append(f"{st['restarts']} random restarts x {st.get('restart_steps')} steps")
    if st.get("dlr_steps"):
        parts.append(f"the DLR loss ({st['dlr_steps']} steps)")
    return ", ".join(parts)


def _strongest_findings(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where Defense Parity under the strongest attack left the study attack's interval."""
    par = soundness_parity(rec)
    changed, same = [], []
    for m in rec.get("models", []):
        for (model, attack, attr), r in par.items():
            if model != m["model"] or attack != STRONGEST:
                continue
            t1 = estimate(r, *_SOUND_DP)
            t0 = estimate(par.get((model, m.get("study_attack"), attr)), *_SOUND_DP)
            verdict = compare_intervals(t1, t0)
            if "beyond_study_ci" in r:
                beyond = r["beyond_study_ci"]
                if beyond is None:
                    continue  # a number or the study attack's interval is missing
            else:  # records written before the field: judge by the intervals
                beyond = verdict not in ("not distinguishable", "equal (no CI)")
            item = (model, attr, t0, t1, verdict)
            (changed if beyond else same).append(item)
    words = _strongest_attack_words(rec)
    out = []
    if changed:
        parts = [
            f"`{mdl}` / {a}: {fmt_estimate(t1)} vs {fmt_estimate(t0)} ({v})"
            for mdl, a, t0, t1, v in changed
        ]
        out.append(
            _finding(
                "soundness",
                f"Under the strongest attack tried ({words}), Defense Parity differs from the "
                f"study's attack (moved beyond its interval, same clips) for {_join(parts)}.",
                cases=[{"model": c[0], "attribute": c[1], "verdict": c[4]} for c in changed],
            )
        )
    if same:
        out.append(
            _finding(
                "soundness",
                f"Under the strongest attack tried ({words}), Defense Parity is not "
                f"distinguishable from the study's attack (within its interval, same clips) in "
                f"{len(same)} "
                f"{'case' if len(same) == 1 else 'cases'} (model x attribute)"
                + (f" of {len(same) + len(changed)}." if changed else "."),
                n=len(same),
            )
        )
    return out


def _convergence_findings(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Models whose accuracy still fell between the two largest step counts."""
    steps = rec.get("settings", {}).get("steps") or []
    bad = [m for m in rec.get("models", []) if m.get("converged") is False]
    if not bad or len(steps) < 2:
        return []
    parts = [
        f"`{m['model']}` (eps {', '.join(fmt(e) for e in m.get('not_converged_eps', []))})"
        for m in bad
    ]
    return [
        _finding(
            "soundness",
            f"Not converged: robust accuracy still fell from {steps[-2]} to {steps[-1]} PGD "
            f"steps for {_join(parts)}; even the strongest attack tried may overstate "
            "robustness there (raise the step counts).",
            models=[m["model"] for m in bad],
            steps=steps[-2:],
        )
    ]


# ----------------------------------------------------------------------------- robustness


def robustness_findings(
    data: RunData, base: Mapping[str, Any] | None, best: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Excluded models, baseline vs most robust model, worst-served groups, small groups,
    correlations.

    Args:
      data: a run with the robustness study (``data.rob`` not None).
      base, best: the clean baseline and the most robust non-excluded model
        (``select_baseline`` / ``select_most_robust`` of ``data.rob["models"]``).

    Returns:
      Finding records; only the excluded-models finding when ``base`` or ``best``
      is None.
    """
    assert data.rob is not None
    out = []
    models = data.rob["models"]
    excluded = [r["member_id"] for r in models if r.get("excluded")]
    if excluded:
        out.append(
            _finding(
                "excluded models",
                f"{len(excluded)} of {len(models)} models were excluded from the analyses as "
                f"indistinguishable from random guessing (one-sided binomial test): "
                f"{_join(f'`{m}`' for m in excluded)}.",
                excluded=excluded,
                n_models=len(models),
            )
        )
    if base is None or best is None:
        return out
    if best["member_id"] == base["member_id"]:
        out.append(
            _finding(
                "most robust model",
                f"The clean baseline {describe_member(base)} is also the most robust "
                f"non-excluded model (overall AUC_acc {fmt(base['auc_acc'])}).",
                member=base["member_id"],
                auc_acc=base["auc_acc"],
            )
        )
    for attr in robustness_attributes(data):
        b_rows = {g["group"]: g for g in group_metric_rows(data, base, attr) if g["valid"]}
        r_rows = {g["group"]: g for g in group_metric_rows(data, best, attr) if g["valid"]}
        if best["member_id"] != base["member_id"] and b_rows:
            out.append(_rise_finding(data, attr, base, best, b_rows, r_rows))
        if len(r_rows) >= 2:
            out.append(_worst_served_finding(attr, best, r_rows))
        small = [g for g in data.rob["groups"] if g["attribute"] == attr and not g["valid"]]
        if small:
            min_size = data.rob["summary"]["config"].get("min_group_size")
            out.append(
                _finding(
                    f"small groups (robustness): {attr}",
                    f"{attr} groups under the minimum size {min_size} are reported but left out of "
                    f"Defense Parity: {_join(_sized(g['group'], g['n_test']) for g in small)}.",
                    attribute=attr,
                    groups={g["group"]: g["n_test"] for g in small},
                )
            )
    corr = _correlation_finding(data.rob["correlations"])
    return out + ([] if corr is None else [corr])


def _rise_text(attr: str, verdicts: Mapping[str, tuple[str, Estimate, Estimate]]) -> str:
    """Which groups the most robust model raised AUC_acc for, and how clearly."""
    raised = [
        g
        for g, (_, a, b) in verdicts.items()
        if a[0] is not None and b[0] is not None and a[0] > b[0]
    ]
    clear = [g for g, (v, _, _) in verdicts.items() if v == "higher"]
    if len(raised) == len(verdicts):
        what = f"raised AUC_acc for every {attr} group"
    elif raised:
        what = f"raised AUC_acc for {len(raised)} of {len(verdicts)} {attr} groups"
    else:
        what = f"raised AUC_acc for no {attr} group"
    if raised:
        if len(clear) == len(raised):
            what += " (every rise with disjoint intervals)"
        elif clear:
            what += f" (disjoint intervals only for {_join(clear)})"
        else:
            what += " (no rise with disjoint intervals: not distinguishable)"
    return what


def _rise_finding(
    data: RunData,
    attr: str,
    base: Mapping[str, Any],
    best: Mapping[str, Any],
    b_rows: Mapping[str, Mapping[str, Any]],
    r_rows: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Group AUC_acc and Defense Parity of the most robust model vs the clean baseline."""
    verdicts = {}
    for g in b_rows:
        a = estimate(r_rows.get(g), *_AUC)
        b = estimate(b_rows[g], *_AUC)
        verdicts[g] = (compare_intervals(a, b), a, b)
    what = _rise_text(attr, verdicts)
    nums = "; ".join(
        f"{g}: {fmt_estimate(b)} -> {fmt_estimate(a)}" for g, (_, a, b) in verdicts.items()
    )
    dpb = estimate(defense_parity_row(data, base, attr), *_DP)
    dpr = estimate(defense_parity_row(data, best, attr), *_DP)
    cmp = compare_intervals(dpr, dpb)
    dp_text = f"Defense Parity for {attr} went from {fmt_estimate(dpb)} to {fmt_estimate(dpr)}" + (
        " (not distinguishable)"
        if cmp == "not distinguishable"
        else f" ({cmp} than the baseline)"
        if cmp != "undefined"
        else ""
    )
    return _finding(
        f"robustness: {attr}",
        f"Compared with the clean baseline {describe_member(base)}, {describe_member(best)} "
        f"{what} ({nums}); {dp_text}.",
        attribute=attr,
        baseline=base["member_id"],
        robust=best["member_id"],
        auc_acc={g: {"baseline": b, "robust": a} for g, (_, a, b) in verdicts.items()},
        defense_parity={"baseline": dpb, "robust": dpr, "comparison": cmp},
    )


def _worst_served_finding(
    attr: str, best: Mapping[str, Any], r_rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The worst- and best-served group of the most robust model."""
    ordered = sorted(r_rows.values(), key=lambda g: g["auc_acc"])
    lo_g, hi_g = ordered[0], ordered[-1]
    a = estimate(lo_g, *_AUC)
    b = estimate(hi_g, *_AUC)
    cmp = compare_intervals(a, b)
    if cmp == "not distinguishable":
        tail = "their intervals overlap, so the groups are not distinguishable"
    elif cmp == "lower":
        tail = "the intervals are disjoint"
    else:
        tail = f"comparison: {cmp}"
    return _finding(
        f"worst-served: {attr}",
        f"Under attack, the {attr} group served worst by `{best['member_id']}` is "
        f"{lo_g['group']} (AUC_acc {fmt_estimate(a)}) and the best is {hi_g['group']} "
        f"({fmt_estimate(b)}); {tail}.",
        attribute=attr,
        member=best["member_id"],
        worst=lo_g["group"],
        best=hi_g["group"],
        worst_auc_acc=a,
        best_auc_acc=b,
        comparison=cmp,
    )


def _correlation_finding(correlations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How many intervention-vs-Defense-Parity correlations have p < 0.05 (None: none tested)."""
    sig = [
        r
        for r in correlations
        if r["outcome"] == "defense_parity" and as_number(r.get("p")) is not None and r["p"] < 0.05
    ]
    tested = [
        r
        for r in correlations
        if r["outcome"] == "defense_parity" and as_number(r.get("r")) is not None
    ]
    if not tested:
        return None
    n_models = max(r["n_models"] for r in tested)
    if sig:
        items = [
            f"{r['intervention']} with {r['attribute']} (r = {fmt(r['r'])}, p = {fmt(r['p'])})"
            for r in sig
        ]
        text = (
            f"Of {len(tested)} intervention-vs-Defense-Parity correlations (across "
            f"{n_models} non-excluded models, uncorrected for multiple comparisons), "
            f"{len(sig)} have p < 0.05: {_join(items)}."
        )
    else:
        text = (
            f"None of {len(tested)} intervention-vs-Defense-Parity correlations has p < 0.05 "
            f"(across {n_models} non-excluded models; with this few models only large "
            f"correlations can be detected)."
        )
    return _finding(
        "correlations",
        text,
        n_tests=len(tested),
        n_models=n_models,
        significant=[(r["intervention"], r["attribute"], r["r"], r["p"]) for r in sig],
    )


# ----------------------------------------------------------------------------- rejection


def rejection_findings(data: RunData) -> list[dict[str, Any]]:
    """RS vs NR, FPR Parity vs N, the most rejected groups, small groups, training-set size.

    Args:
      data: a run with the rejection study (``data.rej`` not None).

    Returns:
      Finding records.
    """
    assert data.rej is not None
    out = []
    attrs = rejection_attributes(data)
    rs_nr = _rs_vs_nr_finding(data, attrs)
    if rs_nr is not None:
        out.append(rs_nr)
    trend = _parity_vs_n_finding(data, attrs)
    if trend is not None:
        out.append(trend)
    for attr in attrs:
        rows = [
            r
            for r in auc_fpr_rows(data, attr, "NR")
            if r["valid"] and as_number(r["auc_fpr"]) is not None
        ]
        if len(rows) >= 2:
            out.append(_most_rejected_finding(attr, rows))
    small = {a: g for a, g in data.rej["summary"].get("small_groups", {}).items() if g}
    if small:
        min_size = (data.rej.get("config") or {}).get("config", {}).get("min_group_size")
        sizes = {
            (r["attribute"], r["group"]): r["n"]
            for r in data.rej["auc_fpr_long"]
            if r["method"] == "NR"
        }
        items = [
            f"{a}: {_join(_sized(g, sizes.get((a, g), '?')) for g in gs)}"
            for a, gs in small.items()
        ]
        out.append(
            _finding(
                "small groups (rejection)",
                f"Groups under the rejection study's minimum size {min_size} are reported but left "
                f"out of FPR Parity and the size correlation: {'; '.join(items)}.",
                groups=small,
            )
        )
    size = _training_size_finding(data.rej["correlation"])
    return out + ([] if size is None else [size])


def _rs_vs_nr_finding(data: RunData, attrs: list[str]) -> dict[str, Any] | None:
    """FPR Parity of RS at the largest N vs NR, grouped by verdict (None without attributes)."""
    n_max = largest_rs_n(data)
    by_verdict: dict[str, list[str]] = {}
    numbers = {}
    for attr in attrs:
        rs = estimate(fpr_parity_row(data, attr, "RS", n_max), *_FPR_PARITY)
        nr = estimate(fpr_parity_row(data, attr, "NR"), *_FPR_PARITY)
        v = compare_intervals(rs, nr)
        by_verdict.setdefault(v, []).append(attr)
        numbers[attr] = {"rs": rs, "nr": nr, "comparison": v}
    if not numbers:
        return None
    parts = []
    for v, names in by_verdict.items():
        nums = "; ".join(
            f"{a}: {fmt_estimate(numbers[a]['rs'])} vs {fmt_estimate(numbers[a]['nr'])}"
            for a in names
        )
        scope = "all attributes" if len(names) == len(attrs) and len(attrs) > 1 else _join(names)
        if v == "undefined":
            parts.append(
                f"FPR Parity is undefined for {scope} (fewer than two groups of minimum size)"
            )
        elif v == "not distinguishable":
            parts.append(
                f"for {scope} RS at N = {n_max} and NR have FPR Parity that is not "
                f"distinguishable (intervals overlap; RS vs NR: {nums})"
            )
        else:
            parts.append(
                f"RS at N = {n_max} has {v} FPR Parity than NR for {scope} (RS vs NR: {nums})"
            )
    text = "; ".join(parts)
    return _finding(
        "RS vs NR",
        text[0].upper() + text[1:] + ".",
        num_samples=n_max,
        per_attribute=numbers,
    )


def _parity_vs_n_finding(data: RunData, attrs: list[str]) -> dict[str, Any] | None:
    """How the FPR Parity of RS moves from the smallest to the largest N."""
    assert data.rej is not None
    ns = sorted({r["num_samples"] for r in data.rej["fpr_parity"] if r["method"] == "RS"})
    if len(ns) < 2:
        return None
    items, nums = [], {}
    for attr in attrs:
        a = estimate(fpr_parity_row(data, attr, "RS", ns[-1]), *_FPR_PARITY)
        b = estimate(fpr_parity_row(data, attr, "RS", ns[0]), *_FPR_PARITY)
        v = compare_intervals(a, b)
        nums[attr] = {"small_n": b, "large_n": a, "comparison": v}
        if v == "undefined":
            continue
        word = {"lower": "fell", "higher": "rose"}.get(v, v)
        if v == "not distinguishable":
            items.append(f"{attr} {fmt_estimate(b)} -> {fmt_estimate(a)} (not distinguishable)")
        else:
            items.append(f"{attr} {word} from {fmt_estimate(b)} to {fmt_estimate(a)}")
    if not items:
        return None
    return _finding(
        "FPR Parity vs N",
        f"From N = {ns[0]} to N = {ns[-1]}, the FPR Parity of RS: {'; '.join(items)}.",
        per_attribute=nums,
    )


def _most_rejected_finding(attr: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The group NR falsely rejects most and least (``rows``: valid NR ``auc_fpr_long`` rows)."""
    rows = sorted(rows, key=lambda r: r["auc_fpr"])
    lo, hi = rows[0], rows[-1]
    a = estimate(hi, "auc_fpr", "ci_low", "ci_high")
    b = estimate(lo, "auc_fpr", "ci_low", "ci_high")
    cmp = compare_intervals(a, b)
    tail = (
        "their intervals overlap, so the difference is not distinguishable"
        if cmp == "not distinguishable"
        else "the intervals are disjoint"
        if cmp == "higher"
        else f"comparison: {cmp}"
    )
    return _finding(
        f"most rejected (NR): {attr}",
        f"NR falsely rejects the {attr} group {hi['group']} most (AUC_FPR {fmt_estimate(a)}, "
        f"n = {hi['n']}) and {lo['group']} least ({fmt_estimate(b)}, n = {lo['n']}); {tail}.",
        attribute=attr,
        most=hi["group"],
        least=lo["group"],
        most_auc_fpr=a,
        least_auc_fpr=b,
        comparison=cmp,
    )


def _training_size_finding(correlation: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pearson r between a group's training-set size and its AUC_FPR (all attributes pooled)."""
    corr = [r for r in correlation if r["attribute"] == "all"]
    nr_r = next((r for r in corr if r["method"] == "NR"), None)
    rs_r = next((r for r in corr if r["method"] == "RS mean"), None)
    if not nr_r or as_number(nr_r.get("r")) is None:
        return None
    rs_text = (
        f"; for RS the mean over N is {fmt(rs_r['r'])} +- {fmt(rs_r['r_std'])}"
        if rs_r and as_number(rs_r.get("r")) is not None
        else ""
    )
    return _finding(
        "training-set size",
        f"Pearson r between a group's training-set size and its AUC_FPR (all attributes "
        f"pooled, {nr_r['n_groups']} groups) is {fmt(nr_r['r'])} for NR (p = "
        f"{fmt(nr_r['p_value'])}){rs_text}; with {nr_r['n_groups']} groups this is weak "
        "evidence either way.",
        nr=nr_r,
        rs_mean=rs_r,
    )
