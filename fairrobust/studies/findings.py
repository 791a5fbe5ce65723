"""The findings of a run: sentences that state only what the numbers show, each with its numbers.

Each finding is a record ``{"topic", "text", "numbers"}``. Two numbers are
compared only through the interval of their paired difference on the same clips
and bootstrap resamples, written by the studies (``comparisons`` tables; the
soundness record's parity rows), Holm-corrected within a family whose size the
sentence states (:func:`fairrobust.studies.intervals.verdict`). Whether the
groups of one attribute differ at all is read from the parity gap's own interval
(:func:`fairrobust.studies.intervals.gap_verdict`). Groups with fewer test
speakers than ``min_speakers`` take part in no claim; under-trained models are
named and every conclusion about them says so.

:func:`fairrobust.studies.summary.findings` puts them together (robustness,
rejection, soundness) and :func:`fairrobust.studies.summary.write_summary`
writes them to ``results/run_findings.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fairrobust import _io
from fairrobust.metrics import holm
from fairrobust.studies.intervals import (
    as_number,
    estimate,
    fmt,
    fmt_estimate,
    gap_verdict,
    verdict,
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
    rejection_config,
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
    """Where Defense Parity under the strongest attack differs from the study's attack
    (paired difference on the same clips, Holm-corrected per model)."""
    par = soundness_parity(rec)
    changed, same = [], []
    n_tests = 0
    for m in rec.get("models", []):
        for (model, attack, attr), r in par.items():
            if model != m["model"] or attack != STRONGEST:
                continue
            beyond = r.get("beyond_study_ci")
            if beyond is None:
                continue  # a number or the intervals are missing
            n_tests = max(n_tests, int(r.get("n_comparisons") or 0))
            t0 = estimate(par.get((model, m.get("study_attack"), attr)), *_SOUND_DP)
            t1 = estimate(r, *_SOUND_DP)
            diff = estimate(r, "difference", "difference_ci_low", "difference_ci_high")
            (changed if beyond else same).append((model, attr, t0, t1, diff))
    words = _strongest_attack_words(rec)
    fam = f"Holm-corrected over up to {n_tests} comparisons per model"
    out = []
    if changed:
        parts = [
            f"`{mdl}` / {a}: {fmt_estimate(t1)} vs {fmt_estimate(t0)} (difference "
            f"{fmt_estimate(d)})"
            for mdl, a, t0, t1, d in changed
        ]
        out.append(
            _finding(
                "soundness",
                f"Under the strongest attack tried ({words}), Defense Parity differs from the "
                f"study's attack (paired difference on the same clips, {fam}) for "
                f"{_join(parts)}: the study's attack misjudges parity there.",
                cases=[{"model": c[0], "attribute": c[1], "difference": c[4]} for c in changed],
            )
        )
    if same:
        out.append(
            _finding(
                "soundness",
                f"Under the strongest attack tried ({words}), the change in Defense Parity from "
                f"the study's attack is not significant (paired difference on the same clips, "
                f"{fam}) in {len(same)} {'case' if len(same) == 1 else 'cases'} "
                "(model x attribute)" + (f" of {len(same) + len(changed)}." if changed else "."),
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
    weak = _under_trained(data)
    if weak:
        out.append(
            _finding(
                "under-trained models",
                f"Under-trained (clean accuracy below halfway from chance to 1, or "
                f"indistinguishable from random guessing): "
                f"{_join(f'`{m}` ({fmt(a)})' for m, a in weak.items())}. Raise the epochs "
                "(or use the paper preset); parity numbers of an under-trained model describe "
                "that model, not the defense.",
                models=weak,
            )
        )
    same = _same_partition(data, "robustness")
    out += _same_partition_finding(same, "robustness")
    for attr in robustness_attributes(data):
        small = [g for g in data.rob["groups"] if g["attribute"] == attr and not g["valid"]]
        if small and attr not in same:
            why = [f"{_sized(g['group'], g['n_test'])}: {g.get('note') or 'small'}" for g in small]
            out.append(
                _finding(
                    f"small groups (robustness): {attr}",
                    f"{attr} groups reported but left out of Defense Parity and every "
                    f"comparison (too few clips or speakers): {'; '.join(why)}.",
                    attribute=attr,
                    groups={g["group"]: g.get("note", "") for g in small},
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
        if attr in same:
            continue
        b_rows = {g["group"]: g for g in group_metric_rows(data, base, attr) if g["valid"]}
        r_rows = {g["group"]: g for g in group_metric_rows(data, best, attr) if g["valid"]}
        new = []
        if best["member_id"] != base["member_id"] and b_rows:
            new.append(_rise_finding(data, attr, base, best, b_rows, r_rows))
        if len(r_rows) >= 2:
            new.append(_worst_served_finding(data, attr, best, r_rows))
        for f in new:  # conclusions about an under-trained model say so
            for m in sorted({base["member_id"], best["member_id"]} & set(weak)):
                f["text"] += f" (`{m}` is under-trained: see above.)"
        out += new
    corr = _correlation_finding(data.rob["correlations"])
    return out + ([] if corr is None else [corr])


def _same_partition(data: RunData, study: str) -> dict[str, str]:
    """``attribute -> earlier attribute`` with the same partition of the evaluated clips."""
    out: dict[str, str] = {}
    for name, records in data.attributes.items():
        if name.startswith(study):
            out.update({r["attribute"]: r["same_as"] for r in records if r.get("same_as")})
    return out


def _same_partition_finding(same: Mapping[str, str], study: str) -> list[dict[str, Any]]:
    """One finding naming attributes whose findings would repeat another's (empty: none)."""
    if not same:
        return []
    by: dict[str, list[str]] = {}
    for a, b in same.items():
        by.setdefault(b, []).append(a)
    parts = [f"{_join(v)} split the clips exactly as {k}" for k, v in by.items()]
    return [
        _finding(
            f"same partition ({study})",
            f"{'; '.join(parts)}: their numbers repeat those of the attribute they copy, "
            "so their findings are given once, under that attribute.",
            same_as=dict(same),
        )
    ]


def _under_trained(data: RunData) -> dict[str, float]:
    """``member_id -> clean accuracy`` of models below halfway from chance (the majority-class
    rate of the evaluated clips) to 1, or excluded."""
    assert data.rob is not None
    k = as_number(data.rob["summary"].get("num_classes"))
    chance = as_number(data.rob["summary"].get("chance_accuracy")) or (1.0 / k if k else 0.0)
    out = {}
    for r in data.rob["models"]:
        acc = as_number(r.get("clean_accuracy"))
        if r.get("excluded") or (acc is not None and acc < chance + 0.5 * (1.0 - chance)):
            out[r["member_id"]] = acc if acc is not None else float("nan")
    return out


def _comparison(
    rows: list[dict[str, Any]], family: str, attr: str, **match: Any
) -> dict[str, Any] | None:
    """The comparisons-table row of ``family`` for ``attr`` matching ``match`` (None: absent)."""
    for r in rows:
        if r.get("family") == family and r.get("attribute") == attr:
            if all(r.get(k) == v for k, v in match.items()):
                return r
    return None


def _diff_text(r: Mapping[str, Any] | None) -> str:
    """``difference d [lo, hi], Holm p = q`` of a comparison row."""
    if r is None:
        return "no comparison"
    t = estimate(r, "difference", "ci_low", "ci_high")
    p = as_number(r.get("p_holm"))
    return f"difference {fmt_estimate(t)}" + ("" if p is None else f", Holm p = {fmt(p)}")


def _rise_finding(
    data: RunData,
    attr: str,
    base: Mapping[str, Any],
    best: Mapping[str, Any],
    b_rows: Mapping[str, Mapping[str, Any]],
    r_rows: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Group AUC_acc and Defense Parity of the most robust model vs the clean baseline,
    judged by paired differences (same clips and resamples, Holm-corrected)."""
    assert data.rob is not None
    comps = data.rob.get("comparisons", [])
    fam = "group_auc_acc_robust_vs_baseline"
    verdicts, parts = {}, []
    for g in b_rows:
        c = _comparison(comps, fam, attr, group=g, member_id=best["member_id"])
        a, b = estimate(r_rows.get(g), *_AUC), estimate(b_rows[g], *_AUC)
        verdicts[g] = verdict(c)
        parts.append(f"{g}: {fmt_estimate(b)} -> {fmt_estimate(a)} ({_diff_text(c)})")
    up = [g for g, v in verdicts.items() if v == "higher"]
    down = [g for g, v in verdicts.items() if v == "lower"]
    n_fam = next((int(r["n_comparisons"]) for r in comps if r.get("family") == fam), 0)
    tested = [g for g, v in verdicts.items() if v != "undefined"]
    if up or down:
        what = "; ".join(
            ([f"significantly raised AUC_acc for {_join(up)}"] if up else [])
            + ([f"significantly lowered AUC_acc for {_join(down)}"] if down else [])
        )
    elif tested:
        what = f"changed no {attr} group's AUC_acc significantly"
    else:
        what = f"was not compared with it on {attr} (no bootstrap replicates)"
    if tested:
        what += f" (paired differences, Holm over {n_fam} group comparisons, all attributes)"
    dpc = _comparison(comps, "defense_parity_vs_baseline", attr, member_id=best["member_id"])
    dpb = estimate(defense_parity_row(data, base, attr), *_DP)
    dpr = estimate(defense_parity_row(data, best, attr), *_DP)
    v = verdict(dpc)
    dp_text = f"Defense Parity for {attr} went from {fmt_estimate(dpb)} to {fmt_estimate(dpr)}"
    if v == "undefined":
        dp_text += " (not tested: no paired comparison)"
    else:
        dp_text += (
            f" ({_diff_text(dpc)}: "
            + ("not significant after Holm's correction" if v == "not distinguishable" else v)
            + ")"
        )
    return _finding(
        f"robustness: {attr}",
        f"Compared with the clean baseline {describe_member(base)}, {describe_member(best)} "
        f"{what}: {'; '.join(parts)}. {dp_text}.",
        attribute=attr,
        baseline=base["member_id"],
        robust=best["member_id"],
        group_verdicts=verdicts,
        defense_parity={"baseline": dpb, "robust": dpr, "comparison": dpc},
    )


def _worst_served_finding(
    data: RunData, attr: str, best: Mapping[str, Any], r_rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The worst- and best-served group of the most robust model, and whether its groups
    differ at all (Defense Parity's interval, from simultaneous pairwise intervals)."""
    ordered = sorted(r_rows.values(), key=lambda g: g["auc_acc"])
    lo_g, hi_g = ordered[0], ordered[-1]
    a = estimate(lo_g, *_AUC)
    b = estimate(hi_g, *_AUC)
    dp = estimate(defense_parity_row(data, best, attr), *_DP)
    gv = gap_verdict(dp)
    tail = {
        "groups differ": f"Defense Parity {fmt_estimate(dp)} excludes 0, so the {attr} groups "
        "are not equally protected",
        "not distinguishable from 0": f"Defense Parity {fmt_estimate(dp)} includes 0, so the "
        f"data do not show unequal protection across {attr} groups",
    }.get(gv, f"Defense Parity {fmt_estimate(dp)} has no interval")
    return _finding(
        f"worst-served: {attr}",
        f"Under attack, the {attr} group served worst by `{best['member_id']}` (by point "
        f"estimate) is {lo_g['group']} (AUC_acc {fmt_estimate(a)}) and the best is "
        f"{hi_g['group']} ({fmt_estimate(b)}); {tail}.",
        attribute=attr,
        member=best["member_id"],
        worst=lo_g["group"],
        best=hi_g["group"],
        worst_auc_acc=a,
        best_auc_acc=b,
        defense_parity=dp,
        comparison=gv,
    )


def _correlation_finding(correlations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How many intervention-vs-Defense-Parity correlations have p < 0.05 (None: none tested)."""
    tested = [
        r
        for r in correlations
        if r["outcome"] == "defense_parity"
        and as_number(r.get("r")) is not None
        and as_number(r.get("p")) is not None
    ]
    if not tested:
        return None
    adj = holm([r["p"] for r in tested])
    sig = [r for r, p in zip(tested, adj, strict=True) if p < 0.05]
    n_models = max(r["n_models"] for r in tested)
    if sig:
        items = [
            f"{r['intervention']} with {r['attribute']} (r = {fmt(r['r'])}, p = {fmt(r['p'])})"
            for r in sig
        ]
        text = (
            f"Of {len(tested)} intervention-vs-Defense-Parity correlations (across "
            f"{n_models} non-excluded models), {len(sig)} remain significant after Holm's "
            f"correction over the {len(tested)} tests: {_join(items)}."
        )
    else:
        text = (
            f"None of {len(tested)} intervention-vs-Defense-Parity correlations is significant "
            f"after Holm's correction over the {len(tested)} tests (across {n_models} "
            "non-excluded models; with this few models only large correlations can be "
            "detected)."
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
    same = _same_partition(data, "rejection")
    out = _same_partition_finding(same, "rejection")
    attrs = [a for a in rejection_attributes(data) if a not in same]
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
            out.append(_most_rejected_finding(data, attr, rows))
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
    few = {a: g for a, g in data.rej["summary"].get("few_speaker_groups", {}).items() if g}
    if few:
        k = rejection_config(data).get("min_speakers")
        out.append(
            _finding(
                "few speakers (rejection)",
                f"Groups with fewer than {k} test speakers get no interval and are left out of "
                f"FPR Parity and every comparison (one speaker is one person, not a group): "
                f"{'; '.join(f'{a}: {_join(gs)}' for a, gs in few.items())}.",
                groups=few,
            )
        )
    size = _training_size_finding(data.rej["correlation"])
    return out + ([] if size is None else [size])


def _rs_vs_nr_finding(data: RunData, attrs: list[str]) -> dict[str, Any] | None:
    """FPR Parity of RS at the largest N vs NR per attribute: paired differences on the
    same clips and resamples, Holm-corrected (None without attributes)."""
    assert data.rej is not None
    n_max = largest_rs_n(data)
    comps = data.rej.get("comparisons", [])
    fam = "fpr_parity_rs_vs_nr"
    items, numbers = [], {}
    for attr in attrs:
        rs = estimate(fpr_parity_row(data, attr, "RS", n_max), *_FPR_PARITY)
        nr = estimate(fpr_parity_row(data, attr, "NR"), *_FPR_PARITY)
        c = _comparison(comps, fam, attr, num_samples=n_max)
        v = verdict(c)
        numbers[attr] = {"rs": rs, "nr": nr, "comparison": c, "verdict": v}
        if rs[0] is None or nr[0] is None:
            items.append(f"{attr}: undefined (fewer than two groups that count)")
            continue
        if v == "undefined":
            items.append(
                f"{attr}: RS {fmt_estimate(rs)}, NR {fmt_estimate(nr)} (not tested: no paired "
                "comparison)"
            )
            continue
        word = {"higher": "higher than", "lower": "lower than"}.get(
            v, "not distinguishable (after Holm's correction) from"
        )
        items.append(
            f"{attr}: RS {fmt_estimate(rs)} is {word} NR {fmt_estimate(nr)} ({_diff_text(c)})"
        )
    if not numbers:
        return None
    n_fam = next((int(r["n_comparisons"]) for r in comps if r.get("family") == fam), 0)
    return _finding(
        "RS vs NR",
        f"FPR Parity of RS at N = {n_max} vs NR (paired differences on the same clips, Holm over "
        f"{n_fam} comparisons, all attributes and N): {'; '.join(items)}.",
        num_samples=n_max,
        per_attribute=numbers,
    )


def _parity_vs_n_finding(data: RunData, attrs: list[str]) -> dict[str, Any] | None:
    """How the FPR Parity of RS moves from the smallest to the largest N (paired)."""
    assert data.rej is not None
    ns = sorted({r["num_samples"] for r in data.rej["fpr_parity"] if r["method"] == "RS"})
    if len(ns) < 2:
        return None
    comps = data.rej.get("comparisons", [])
    fam = "fpr_parity_largest_vs_smallest_n"
    items, nums = [], {}
    for attr in attrs:
        a = estimate(fpr_parity_row(data, attr, "RS", ns[-1]), *_FPR_PARITY)
        b = estimate(fpr_parity_row(data, attr, "RS", ns[0]), *_FPR_PARITY)
        c = _comparison(comps, fam, attr)
        v = verdict(c)
        nums[attr] = {"small_n": b, "large_n": a, "comparison": c, "verdict": v}
        if v == "undefined":
            continue
        word = {"lower": "fell", "higher": "rose"}.get(
            v, "did not change significantly (after Holm's correction)"
        )
        items.append(f"{attr} {word}: {fmt_estimate(b)} -> {fmt_estimate(a)} ({_diff_text(c)})")
    if not items:
        return None
    n_fam = next((int(r["n_comparisons"]) for r in comps if r.get("family") == fam), 0)
    return _finding(
        "FPR Parity vs N",
        f"From N = {ns[0]} to N = {ns[-1]} (paired differences, Holm over {n_fam} "
        f"comparisons), the FPR Parity of RS: {'; '.join(items)}.",
        per_attribute=nums,
    )


def _most_rejected_finding(data: RunData, attr: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The group NR falsely rejects most and least, and whether NR's groups differ at all
    (its FPR Parity interval; ``rows``: valid NR ``auc_fpr_long`` rows)."""
    rows = sorted(rows, key=lambda r: r["auc_fpr"])
    lo, hi = rows[0], rows[-1]
    a = estimate(hi, "auc_fpr", "ci_low", "ci_high")
    b = estimate(lo, "auc_fpr", "ci_low", "ci_high")
    par = estimate(fpr_parity_row(data, attr, "NR"), *_FPR_PARITY)
    gv = gap_verdict(par)
    tail = {
        "groups differ": f"NR's FPR Parity {fmt_estimate(par)} excludes 0, so its false "
        f"rejections differ between {attr} groups",
        "not distinguishable from 0": f"NR's FPR Parity {fmt_estimate(par)} includes 0, so the "
        f"data do not show unequal false rejection across {attr} groups",
    }.get(gv, f"NR's FPR Parity {fmt_estimate(par)} has no interval")
    return _finding(
        f"most rejected (NR): {attr}",
        f"By point estimate, NR falsely rejects the {attr} group {hi['group']} most (AUC_FPR "
        f"{fmt_estimate(a)}, n = {hi['n']}) and {lo['group']} least ({fmt_estimate(b)}, "
        f"n = {lo['n']}); {tail}.",
        attribute=attr,
        most=hi["group"],
        least=lo["group"],
        most_auc_fpr=a,
        least_auc_fpr=b,
        fpr_parity=par,
        comparison=gv,
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
