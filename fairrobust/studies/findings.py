"""The findings of a run: short statements of only what the numbers show, each with its numbers.

Each finding is a record ``{"study", "attribute", "topic", "text", "numbers"}``:
``study`` is ``"robustness"``, ``"rejection"`` or ``"soundness"``, ``attribute``
the attribute it is about (None for the whole study); the report prints one
bullet per record, grouped by study and attribute, so every ``text`` is one to
three sentences of at most about 90 words (long lists of groups or models are
cut to a few names and a count; the tables have the rest).

Two numbers are compared only through the interval of their paired difference
on the same clips and bootstrap resamples, written by the studies
(``comparisons`` tables; the soundness record's parity rows), Holm-corrected
within a family whose size the sentence states
(:func:`fairrobust.studies.intervals.verdict`). Whether the groups of one
attribute differ at all is read from the parity gap's own interval
(:func:`fairrobust.studies.intervals.gap_verdict`). Groups with fewer test
speakers than ``min_speakers`` take part in no claim; under-trained models are
named and every conclusion about them says so.

AUC_acc and Defense Parity are stated normalised: divided by the width of the
attack-budget range AUC_acc integrates over
(:func:`fairrobust.studies.results.auc_acc_width`), i.e. the mean accuracy over
the budgets, in [0, 1]; ``numbers`` hold the same normalised estimates. Numbers
are printed by :func:`fairrobust.studies.intervals.fmt` (3 significant digits).

:func:`fairrobust.studies.summary.findings` puts them together (robustness,
rejection, soundness), :mod:`fairrobust.studies.key_results` picks the few
that matter most, and :func:`fairrobust.studies.summary.write_summary` writes
both to ``results/run_findings.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairrobust import _io
from fairrobust.metrics import holm
from fairrobust.studies.intervals import (
    as_number,
    comparison_row,
    diff_text,
    estimate,
    fmt,
    fmt_estimate,
    gap_verdict,
    join_names,
    p_words,
    scaled,
    verdict,
)
from fairrobust.studies.results import (
    STRONGEST,
    RunData,
    auc_acc_width,
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
    "group_size_words",
    "rejection_findings",
    "robustness_findings",
    "rs_vs_nr",
    "soundness_findings",
    "soundness_width",
    "strongest_cases",
    "under_trained",
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


def _finding(
    study: str, attribute: str | None, topic: str, text: str, /, **numbers: Any
) -> dict[str, Any]:
    return {
        "study": study,
        "attribute": attribute,
        "topic": topic,
        "text": text,
        "numbers": _io.to_jsonable(numbers),
    }


def _sized(group: str, n: Any) -> str:
    return f"{group} (n = {n})"


def soundness_width(rec: Mapping[str, Any]) -> float | None:
    """``eps_max - eps_min`` of the soundness checks' budgets (their AUC_acc range)."""
    eps = (rec.get("settings") or {}).get("epsilons") or []
    if len(eps) < 2 or not float(eps[-1]) > float(eps[0]):
        return None
    return float(eps[-1]) - float(eps[0])


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
    what = join_names(f"{c['check']} on `{c['model']}`" for c in warned)
    text = (
        f"The attack-soundness checks pass for all {len(checks)} checks."
        if not warned
        else f"The attack-soundness checks warn in {len(warned)} of {len(checks)} checks "
        f"({what}); see the soundness section."
    )
    out = [
        _finding(
            "soundness", None, "soundness", text, warned=[c["check"] for c in warned], n=len(checks)
        )
    ]
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


def strongest_cases(
    rec: Mapping[str, Any],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """``(changed, same, n_tests)``: per checked model and attribute, whether Defense Parity
    under the strongest attack differs from the study's attack on the same clips (paired
    difference, Holm-corrected per model over ``n_tests``); each case is ``(model, attribute,
    study-attack DP, strongest DP, difference)``, estimates normalised by the budget range."""
    par = soundness_parity(rec)
    w = soundness_width(rec)
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
            t0 = scaled(estimate(par.get((model, m.get("study_attack"), attr)), *_SOUND_DP), w)
            t1 = scaled(estimate(r, *_SOUND_DP), w)
            diff = scaled(estimate(r, "difference", "difference_ci_low", "difference_ci_high"), w)
            (changed if beyond else same).append((model, attr, t0, t1, diff))
    return changed, same, n_tests


def _strongest_findings(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where Defense Parity under the strongest attack differs from the study's attack
    (paired difference on the same clips, Holm-corrected per model)."""
    changed, same, n_tests = strongest_cases(rec)
    words = _strongest_attack_words(rec)
    fam = f"Holm over up to {n_tests} comparisons per model"
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
                None,
                "soundness",
                f"Under the strongest attack tried ({words}), Defense Parity differs from the "
                f"study's attack (paired difference on the same clips, {fam}) for "
                f"{join_names(parts, limit=2)}: the study's attack misjudges parity there.",
                cases=[{"model": c[0], "attribute": c[1], "difference": c[4]} for c in changed],
            )
        )
    if same:
        out.append(
            _finding(
                "soundness",
                None,
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
            None,
            "soundness",
            f"Not converged: robust accuracy still fell from {steps[-2]} to {steps[-1]} PGD "
            f"steps for {join_names(parts, limit=3)}; even the strongest attack tried may "
            "overstate robustness there (raise the step counts).",
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
      Finding records; without ``base`` or ``best`` only those about the models,
      small groups and correlations.
    """
    assert data.rob is not None
    out = _model_findings(data)
    weak = under_trained(data)
    same = _same_partition(data, "robustness")
    out += _same_partition_finding(same, "robustness")
    if base is not None and best is not None and best["member_id"] == base["member_id"]:
        auc = as_number(base.get("auc_acc"))
        w = auc_acc_width(data)
        out.append(
            _finding(
                "robustness",
                None,
                "most robust model",
                f"The clean baseline {describe_member(base)} is also the most robust "
                f"non-excluded model (overall AUC_acc {fmt(auc / w if auc and w else auc)}).",
                member=base["member_id"],
                auc_acc=base["auc_acc"],
            )
        )
    corr = _correlation_finding(data.rob["correlations"])
    out += [] if corr is None else [corr]
    for attr in robustness_attributes(data):
        if attr in same:
            continue
        out += _small_groups_finding(data, attr)
        if base is None or best is None:
            continue
        b_rows = {g["group"]: g for g in group_metric_rows(data, base, attr) if g["valid"]}
        r_rows = {g["group"]: g for g in group_metric_rows(data, best, attr) if g["valid"]}
        new = []
        if best["member_id"] != base["member_id"] and b_rows:
            new += [
                _rise_finding(data, attr, base, best, b_rows, r_rows),
                _parity_change_finding(data, attr, base, best),
            ]
        if len(r_rows) >= 2:
            new.append(_worst_served_finding(data, attr, best, r_rows))
        for f in new:  # conclusions about an under-trained model say so
            for m in sorted({base["member_id"], best["member_id"]} & set(weak)):
                f["text"] += f" (`{m}` is under-trained: see above.)"
        out += new
    return out


def _model_findings(data: RunData) -> list[dict[str, Any]]:
    """Models excluded as random guessers, and under-trained models."""
    assert data.rob is not None
    out = []
    models = data.rob["models"]
    excluded = [r["member_id"] for r in models if r.get("excluded")]
    if excluded:
        out.append(
            _finding(
                "robustness",
                None,
                "excluded models",
                f"{len(excluded)} of {len(models)} models were excluded from the analyses as "
                f"indistinguishable from random guessing (one-sided binomial test): "
                f"{join_names(f'`{m}`' for m in excluded)}.",
                excluded=excluded,
                n_models=len(models),
            )
        )
    weak = under_trained(data)
    if weak:
        out.append(
            _finding(
                "robustness",
                None,
                "under-trained models",
                f"Under-trained (clean accuracy below halfway from chance to 1, or "
                f"indistinguishable from random guessing): "
                f"{join_names(f'`{m}` ({fmt(a)})' for m, a in weak.items())}. Raise the epochs "
                "(or use the paper preset); parity numbers of an under-trained model describe "
                "that model, not the defense.",
                models=weak,
            )
        )
    return out


def _small_groups_finding(data: RunData, attr: str) -> list[dict[str, Any]]:
    """The groups of ``attr`` too small (clips or speakers) to count in the robustness study."""
    assert data.rob is not None
    small = [g for g in data.rob["groups"] if g["attribute"] == attr and not g["valid"]]
    if not small:
        return []
    why = [f"{_sized(g['group'], g['n_test'])}: {g.get('note') or 'small'}" for g in small]
    shown = "; ".join(why[:3]) + (f"; and {len(why) - 3} more" if len(why) > 3 else "")
    return [
        _finding(
            "robustness",
            attr,
            f"small groups (robustness): {attr}",
            f"Reported but left out of Defense Parity and every comparison (too few clips or "
            f"speakers): {shown}.",
            attribute=attr,
            groups={g["group"]: g.get("note", "") for g in small},
        )
    ]


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
    parts = [f"{join_names(v)} split the clips exactly as {k}" for k, v in by.items()]
    return [
        _finding(
            study,
            None,
            f"same partition ({study})",
            f"{'; '.join(parts)}: their numbers repeat those of the attribute they copy, "
            "so their findings are given once, under that attribute.",
            same_as=dict(same),
        )
    ]


def under_trained(data: RunData) -> dict[str, float]:
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


def _family_size(comps: list[dict[str, Any]], family: str) -> int:
    return next((int(r["n_comparisons"]) for r in comps if r.get("family") == family), 0)


def _rise_finding(
    data: RunData,
    attr: str,
    base: Mapping[str, Any],
    best: Mapping[str, Any],
    b_rows: Mapping[str, Mapping[str, Any]],
    r_rows: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Group AUC_acc of the most robust model vs the clean baseline, judged by paired
    differences (same clips and resamples, Holm-corrected); up to 3 groups are listed with
    their numbers, more are summarised by the largest and smallest change."""
    assert data.rob is not None
    w = auc_acc_width(data)
    comps = data.rob.get("comparisons", [])
    fam = "group_auc_acc_robust_vs_baseline"
    verdicts, changes = {}, {}
    for g in b_rows:
        c = comparison_row(comps, fam, attr, group=g, member_id=best["member_id"])
        verdicts[g] = verdict(c)
        before, after = (
            scaled(estimate(b_rows[g], *_AUC), w),
            scaled(estimate(r_rows.get(g), *_AUC), w),
        )
        changes[g] = (before, after, c)
    up = [g for g, v in verdicts.items() if v == "higher"]
    down = [g for g, v in verdicts.items() if v == "lower"]
    tested = [g for g, v in verdicts.items() if v != "undefined"]
    if up or down:

        def names(gs: list[str]) -> str:
            return (
                f"all {len(gs)} {attr} groups"
                if len(gs) == len(tested) > 3
                else join_names(gs, limit=3)
            )

        what = "; ".join(
            ([f"significantly raised AUC_acc for {names(up)}"] if up else [])
            + ([f"significantly lowered AUC_acc for {names(down)}"] if down else [])
        )
        if len(up) + len(down) < len(tested):
            what += f" (of {len(tested)} groups tested)"
    elif tested:
        what = f"changed no {attr} group's AUC_acc significantly"
    else:
        what = f"was not compared with it on {attr} (no bootstrap replicates)"
    if tested:
        n = _family_size(comps, fam)
        what += f" (paired differences, Holm over {n} group comparisons, all attributes)"

    def part(g: str) -> str:
        before, after, c = changes[g]
        return f"{g}: {fmt_estimate(before)} -> {fmt_estimate(after)} ({diff_text(c, w)})"

    if len(changes) <= 3:
        detail = "; ".join(part(g) for g in changes)
    else:  # the two extremes of the paired difference; the table has every group
        by_diff = sorted(
            (g for g in changes if as_number((changes[g][2] or {}).get("difference")) is not None),
            key=lambda g: changes[g][2]["difference"],  # type: ignore[index]
        )
        ends = [by_diff[-1], by_diff[0]] if len(by_diff) >= 2 else by_diff
        detail = "largest and smallest change: " + "; ".join(
            f"{g} ({diff_text(changes[g][2], w)})" for g in ends
        )
    return _finding(
        "robustness",
        attr,
        f"robustness: {attr}",
        f"`{best['member_id']}` vs the clean baseline `{base['member_id']}` {what}: {detail}.",
        attribute=attr,
        baseline=base["member_id"],
        robust=best["member_id"],
        group_verdicts=verdicts,
        auc_acc={g: {"baseline": b, "robust": a} for g, (b, a, _) in changes.items()},
    )


def _parity_change_finding(
    data: RunData, attr: str, base: Mapping[str, Any], best: Mapping[str, Any]
) -> dict[str, Any]:
    """Defense Parity of the most robust model vs the clean baseline (paired difference)."""
    assert data.rob is not None
    w = auc_acc_width(data)
    comps = data.rob.get("comparisons", [])
    dpc = comparison_row(comps, "defense_parity_vs_baseline", attr, member_id=best["member_id"])
    dpb = scaled(estimate(defense_parity_row(data, base, attr), *_DP), w)
    dpr = scaled(estimate(defense_parity_row(data, best, attr), *_DP), w)
    v = verdict(dpc)
    text = (
        f"Defense Parity for {attr} went from {fmt_estimate(dpb)} (`{base['member_id']}`) to "
        f"{fmt_estimate(dpr)} (`{best['member_id']}`)"
    )
    if v == "undefined":
        text += " (not tested: no paired comparison)."
    else:
        n = _family_size(comps, "defense_parity_vs_baseline")
        text += (
            f" ({diff_text(dpc, w)} over {n} comparisons): "
            + ("not significant after Holm's correction" if v == "not distinguishable" else v)
            + "."
        )
    return _finding(
        "robustness",
        attr,
        f"defense parity change: {attr}",
        text,
        attribute=attr,
        baseline=base["member_id"],
        robust=best["member_id"],
        defense_parity={"baseline": dpb, "robust": dpr, "comparison": dpc},
        verdict=v,
    )


def _speakers(data: RunData, attr: str, group: str) -> Any:
    """Test speakers of a robustness group (None when unknown)."""
    assert data.rob is not None
    return next(
        (
            g.get("n_speakers")
            for g in data.rob["groups"]
            if g["attribute"] == attr and g["group"] == group
        ),
        None,
    )


def group_size_words(n: Any, speakers: Any) -> str:
    """``38 clips, 8 speakers`` (without the speakers when unknown)."""
    return f"{n} clips" + ("" if speakers is None else f", {speakers} speakers")


def _worst_served_finding(
    data: RunData, attr: str, best: Mapping[str, Any], r_rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The worst- and best-served group of the most robust model, and whether its groups
    differ at all (Defense Parity's interval, from simultaneous pairwise intervals)."""
    w = auc_acc_width(data)
    ordered = sorted(r_rows.values(), key=lambda g: g["auc_acc"])
    lo_g, hi_g = ordered[0], ordered[-1]
    a = scaled(estimate(lo_g, *_AUC), w)
    b = scaled(estimate(hi_g, *_AUC), w)
    dp = scaled(estimate(defense_parity_row(data, best, attr), *_DP), w)
    gv = gap_verdict(dp)
    tail = {
        "groups differ": f"Defense Parity {fmt_estimate(dp)} excludes 0, so the {attr} groups "
        "are not equally protected",
        "not distinguishable from 0": f"Defense Parity {fmt_estimate(dp)} includes 0, so the "
        f"data do not show unequal protection across {attr} groups",
    }.get(gv, f"Defense Parity {fmt_estimate(dp)} has no interval")
    lo_n = group_size_words(lo_g.get("n"), _speakers(data, attr, lo_g["group"]))
    hi_n = group_size_words(hi_g.get("n"), _speakers(data, attr, hi_g["group"]))
    return _finding(
        "robustness",
        attr,
        f"worst-served: {attr}",
        f"Under attack, the group served worst by `{best['member_id']}` (by point estimate) "
        f"is {lo_g['group']} (AUC_acc {fmt_estimate(a)}; {lo_n}) and the best is "
        f"{hi_g['group']} ({fmt_estimate(b)}; {hi_n}); {tail}.",
        attribute=attr,
        member=best["member_id"],
        worst=lo_g["group"],
        best=hi_g["group"],
        worst_auc_acc=a,
        best_auc_acc=b,
        worst_n=lo_g.get("n"),
        worst_speakers=_speakers(data, attr, lo_g["group"]),
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
            f"{r['intervention']} with {r['attribute']} (r = {fmt(r['r'])}, p {p_words(r['p'])})"
            for r in sig
        ]
        text = (
            f"Of {len(tested)} intervention-vs-Defense-Parity correlations (across "
            f"{n_models} non-excluded models), {len(sig)} remain significant after Holm's "
            f"correction over the {len(tested)} tests: {join_names(items, limit=3)}."
        )
    else:
        text = (
            f"None of {len(tested)} intervention-vs-Defense-Parity correlations is significant "
            f"after Holm's correction over the {len(tested)} tests (across {n_models} "
            "non-excluded models; with this few models only large correlations can be "
            "detected)."
        )
    return _finding(
        "robustness",
        None,
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
      Finding records: the study-wide ones first, then per attribute.
    """
    assert data.rej is not None
    same = _same_partition(data, "rejection")
    out = _same_partition_finding(same, "rejection")
    attrs = [a for a in rejection_attributes(data) if a not in same]
    out += _small_rejection_findings(data)
    size = _training_size_finding(data.rej["correlation"])
    out += [] if size is None else [size]
    for attr in attrs:
        rs_nr = _rs_vs_nr_finding(data, attr)
        if rs_nr is not None:
            out.append(rs_nr)
        trend = _parity_vs_n_finding(data, attr)
        if trend is not None:
            out.append(trend)
        rows = [
            r
            for r in auc_fpr_rows(data, attr, "NR")
            if r["valid"] and as_number(r["auc_fpr"]) is not None
        ]
        if len(rows) >= 2:
            out.append(_most_rejected_finding(data, attr, rows))
    return out


def _small_rejection_findings(data: RunData) -> list[dict[str, Any]]:
    """Groups under the rejection study's minimum size, and groups with too few speakers."""
    assert data.rej is not None
    out = []
    small = {a: g for a, g in data.rej["summary"].get("small_groups", {}).items() if g}
    if small:
        min_size = (data.rej.get("config") or {}).get("config", {}).get("min_group_size")
        sizes = {
            (r["attribute"], r["group"]): r["n"]
            for r in data.rej["auc_fpr_long"]
            if r["method"] == "NR"
        }
        items = [
            f"{a}: {join_names(_sized(g, sizes.get((a, g), '?')) for g in gs)}"
            for a, gs in small.items()
        ]
        out.append(
            _finding(
                "rejection",
                None,
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
                "rejection",
                None,
                "few speakers (rejection)",
                f"Groups with fewer than {k} test speakers get no interval and are left out of "
                f"FPR Parity and every comparison (one speaker is one person, not a group): "
                f"{'; '.join(f'{a}: {join_names(gs)}' for a, gs in few.items())}.",
                groups=few,
            )
        )
    return out


def rs_vs_nr(data: RunData, attr: str) -> dict[str, Any]:
    """FPR Parity of RS at the largest N and of NR for one attribute, and their paired
    comparison: ``{"n", "rs", "nr", "comparison", "verdict", "n_comparisons"}``."""
    assert data.rej is not None
    n_max = largest_rs_n(data)
    comps = data.rej.get("comparisons", [])
    fam = "fpr_parity_rs_vs_nr"
    c = comparison_row(comps, fam, attr, num_samples=n_max)
    return {
        "n": n_max,
        "rs": estimate(fpr_parity_row(data, attr, "RS", n_max), *_FPR_PARITY),
        "nr": estimate(fpr_parity_row(data, attr, "NR"), *_FPR_PARITY),
        "comparison": c,
        "verdict": verdict(c),
        "n_comparisons": _family_size(comps, fam),
    }


def _rs_vs_nr_finding(data: RunData, attr: str) -> dict[str, Any] | None:
    """FPR Parity of RS at the largest N vs NR for one attribute: the paired difference on
    the same clips and resamples, Holm-corrected over every attribute and N."""
    x = rs_vs_nr(data, attr)
    rs, nr, v, c = x["rs"], x["nr"], x["verdict"], x["comparison"]
    head = f"FPR Parity of RS at N = {x['n']} vs NR"
    if rs[0] is None or nr[0] is None:
        text = f"{head}: undefined (fewer than two groups that count)."
    elif v == "undefined":
        text = (
            f"{head}: RS {fmt_estimate(rs)}, NR {fmt_estimate(nr)} (not tested: no paired "
            "comparison)."
        )
    else:
        word = {"higher": "is higher than", "lower": "is lower than"}.get(
            v, "is not distinguishable (after Holm's correction) from"
        )
        text = (
            f"{head}: RS {fmt_estimate(rs)} {word} NR {fmt_estimate(nr)} ({diff_text(c)}; "
            f"paired, Holm over {x['n_comparisons']} comparisons, all attributes and N)."
        )
    return _finding(
        "rejection",
        attr,
        f"RS vs NR: {attr}",
        text,
        attribute=attr,
        num_samples=x["n"],
        rs=rs,
        nr=nr,
        comparison=c,
        verdict=v,
    )


def _parity_vs_n_finding(data: RunData, attr: str) -> dict[str, Any] | None:
    """How the FPR Parity of RS moves from the smallest to the largest N (paired)."""
    assert data.rej is not None
    ns = sorted({r["num_samples"] for r in data.rej["fpr_parity"] if r["method"] == "RS"})
    if len(ns) < 2:
        return None
    comps = data.rej.get("comparisons", [])
    fam = "fpr_parity_largest_vs_smallest_n"
    a = estimate(fpr_parity_row(data, attr, "RS", ns[-1]), *_FPR_PARITY)
    b = estimate(fpr_parity_row(data, attr, "RS", ns[0]), *_FPR_PARITY)
    c = comparison_row(comps, fam, attr)
    v = verdict(c)
    if v == "undefined":
        return None
    word = {"lower": "fell", "higher": "rose"}.get(
        v, "did not change significantly (after Holm's correction)"
    )
    return _finding(
        "rejection",
        attr,
        f"FPR Parity vs N: {attr}",
        f"From N = {ns[0]} to N = {ns[-1]}, the FPR Parity of RS {word}: {fmt_estimate(b)} -> "
        f"{fmt_estimate(a)} ({diff_text(c)}; paired, Holm over {_family_size(comps, fam)} "
        "comparisons).",
        attribute=attr,
        small_n=b,
        large_n=a,
        comparison=c,
        verdict=v,
    )


def _rej_speakers(data: RunData, attr: str, group: str) -> Any:
    """Evaluated speakers of a rejection group (None when unknown)."""
    assert data.rej is not None
    rec = (data.rej.get("groups") or {}).get(attr) or {}
    names, counts = rec.get("names") or [], rec.get("speaker_counts")
    if counts is None or group not in names:
        return None
    return counts[names.index(group)]


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
    hi_n = group_size_words(hi["n"], _rej_speakers(data, attr, hi["group"]))
    lo_n = group_size_words(lo["n"], _rej_speakers(data, attr, lo["group"]))
    return _finding(
        "rejection",
        attr,
        f"most rejected (NR): {attr}",
        f"By point estimate, NR falsely rejects {hi['group']} most (AUC_FPR "
        f"{fmt_estimate(a)}; {hi_n}) and {lo['group']} least ({fmt_estimate(b)}; {lo_n}); "
        f"{tail}.",
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
        "rejection",
        None,
        "training-set size",
        f"Pearson r between a group's training-set size and its AUC_FPR (all attributes "
        f"pooled, {nr_r['n_groups']} groups) is {fmt(nr_r['r'])} for NR (p "
        f"{p_words(nr_r['p_value'])}){rs_text}; with {nr_r['n_groups']} groups this is weak "
        "evidence either way.",
        nr=nr_r,
        rs_mean=rs_r,
    )
