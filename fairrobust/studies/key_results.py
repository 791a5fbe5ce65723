"""The key results of a run: at most six one-sentence statements a reader sees first.

:func:`key_results` picks, by fixed rules, the few statements that matter most
and words each as one sentence of at most :data:`MAX_WORDS` words, numbers to
3 significant digits with their interval (:func:`fairrobust.studies.intervals.fmt`)
and the clips and speakers behind a group claim. Candidates, in order of
priority (the first :data:`MAX_KEY_RESULTS` are kept, then shown in the order
below):

1. a caveat when the baseline or the most robust model is under-trained or every
   model was excluded as a random guesser (no robustness claim can be made);
2. the worst-served group of the most robust model for the attribute whose
   Defense Parity interval lies furthest from 0 (a claim only when the interval
   excludes 0; otherwise one statement that the data cannot tell, naming the
   attributes); a second such attribute has the lowest priority;
3. whether the most robust model changed Defense Parity relative to the clean
   baseline (the paired difference after Holm's correction);
4. FPR Parity of RS at the largest N vs NR (paired difference after Holm);
5. the soundness verdict: does the strongest attack tried move Defense Parity
   from the study's attack, and which checks warn;
6. data caveats: attributes left out, groups too small to count.

AUC_acc and Defense Parity are normalised by the width of the attack-budget range
(:func:`fairrobust.studies.results.auc_acc_width`). Records are
``{"topic", "text", "numbers"}`` like the findings
(:mod:`fairrobust.studies.findings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairrobust import _io
from fairrobust.studies.findings import (
    group_size_words,
    rs_vs_nr,
    soundness_width,
    strongest_cases,
    under_trained,
)
from fairrobust.studies.intervals import (
    as_number,
    comparison_row,
    estimate,
    fmt_estimate,
    gap_verdict,
    join_names,
    p_words,
    scaled,
    verdict,
)
from fairrobust.studies.results import (
    RunData,
    auc_acc_width,
    defense_parity_row,
    group_metric_rows,
    rejection_attributes,
    robustness_attributes,
)
from fairrobust.studies.selection import select_baseline, select_most_robust

__all__ = ["MAX_KEY_RESULTS", "MAX_WORDS", "key_results"]

#: At most this many key results.
MAX_KEY_RESULTS = 6
#: Words (whitespace-separated tokens) per key result, at most.
MAX_WORDS = 40

_AUC = ("auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
_DP = ("defense_parity", "defense_parity_ci_low", "defense_parity_ci_high")


def _record(topic: str, text: str, **numbers: Any) -> dict[str, Any]:
    return {"topic": topic, "text": text, "numbers": _io.to_jsonable(numbers)}


def _fit(*variants: str) -> str:
    """The first variant of at most :data:`MAX_WORDS` words (else the last, shortest)."""
    return next((v for v in variants if len(v.split()) <= MAX_WORDS), variants[-1])


def key_results(data: RunData) -> list[dict[str, Any]]:
    """At most :data:`MAX_KEY_RESULTS` one-sentence statements, chosen by fixed rules.

    Args:
      data: from :func:`fairrobust.studies.results.load_run`.

    Returns:
      Records ``{"topic", "text", "numbers"}`` (see the module docstring for the
      rules and their order); empty when the run has nothing to state.
    """
    # (priority, display order, record); lower priority numbers are kept first
    found: list[tuple[int, int, dict[str, Any]]] = []
    if data.rob is not None:
        models = data.rob["models"]
        base, best = select_baseline(models), select_most_robust(models)
        caveat = _training_caveat(data, base, best)
        if caveat is not None:
            found.append((0, 0, caveat))
        if best is not None and caveat is None:
            gaps = _gap_results(data, best)
            found += [(1 if i == 0 else 6, 1 + i, g) for i, g in enumerate(gaps[:2])]
            if base is not None and base["member_id"] != best["member_id"]:
                dp = _parity_change_result(data, base, best)
                if dp is not None:
                    found.append((2, 3, dp))
    if data.rej is not None:
        rej = _rs_vs_nr_result(data)
        if rej is not None:
            found.append((3, 4, rej))
    if data.soundness is not None:
        sound = _soundness_result(data.soundness)
        if sound is not None:
            found.append((4, 5, sound))
    caveat = _data_caveat(data)
    if caveat is not None:
        found.append((5, 6, caveat))
    kept = sorted(found, key=lambda t: t[0])[:MAX_KEY_RESULTS]
    return [r for _, _, r in sorted(kept, key=lambda t: t[1])]


def _training_caveat(
    data: RunData, base: Mapping[str, Any] | None, best: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """No robustness claim when every model is excluded or the compared ones are weak."""
    weak = under_trained(data)
    names = [m["member_id"] for m in (base, best) if m is not None and m["member_id"] in weak]
    names = list(dict.fromkeys(names))
    if best is not None and not names:
        return None
    assert data.rob is not None
    quoted = [f"`{n}`" for n in names]
    who = (
        f"all {len(data.rob['models'])} models are indistinguishable from random guessing"
        if best is None
        else f"{join_names(quoted, limit=2)} {'is' if len(names) == 1 else 'are'} under-trained"
    )
    return _record(
        "under-trained models",
        f"No robustness claim can be made: {who}, so parity numbers describe those models, "
        "not the defenses (raise the epochs or use the paper preset).",
        models={n: weak.get(n) for n in names},
    )


def _gap_results(data: RunData, best: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Worst-served groups of attributes whose Defense Parity excludes 0 (furthest first),
    or one statement that no attribute's does."""
    w = auc_acc_width(data)
    differ, unclear = [], []
    for attr in robustness_attributes(data):
        rows = [g for g in group_metric_rows(data, best, attr) if g["valid"]]
        if len(rows) < 2:
            continue
        dp = scaled(estimate(defense_parity_row(data, best, attr), *_DP), w)
        gv = gap_verdict(dp)
        if gv == "groups differ":
            differ.append((attr, dp, rows))
        elif gv == "not distinguishable from 0":
            unclear.append(attr)
    differ.sort(key=lambda t: -(t[1][1] or 0.0))  # stable: the study's order breaks ties
    out = [_worst_served(data, best, attr, dp, rows, w) for attr, dp, rows in differ]
    if not differ and unclear:
        out.append(
            _record(
                "no unequal protection shown",
                _fit(
                    f"For {join_names(unclear)}, the Defense Parity interval of "
                    f"`{best['member_id']}` includes 0, so the data cannot tell whether these "
                    "groups are protected unequally under attack.",
                    f"For {len(unclear)} attributes the Defense Parity interval of the most "
                    "robust model includes 0: the data cannot tell whether groups are "
                    "protected unequally.",
                ),
                attributes=unclear,
                member=best["member_id"],
            )
        )
    return out


def _worst_served(
    data: RunData,
    best: Mapping[str, Any],
    attr: str,
    dp: Any,
    rows: list[dict[str, Any]],
    w: float | None,
) -> dict[str, Any]:
    """One attribute's worst- and best-served group and its Defense Parity (excludes 0)."""
    assert data.rob is not None
    ordered = sorted(rows, key=lambda g: g["auc_acc"])
    lo, hi = ordered[0], ordered[-1]
    a, b = scaled(estimate(lo, *_AUC), w), scaled(estimate(hi, *_AUC), w)
    spk = {g["group"]: g.get("n_speakers") for g in data.rob["groups"] if g["attribute"] == attr}
    size = group_size_words(lo.get("n"), spk.get(lo["group"]))
    model = f"`{best['member_id']}`"
    return _record(
        f"worst-served: {attr}",
        _fit(
            f"Under attack, {model} protects {attr} group {lo['group']} least (AUC_acc "
            f"{fmt_estimate(a)}; {size}) and {hi['group']} most ({fmt_estimate(b)}); their "
            f"Defense Parity {fmt_estimate(dp)} excludes 0.",
            f"Under attack, {model} protects {attr} group {lo['group']} least (AUC_acc "
            f"{fmt_estimate(a)}; {size}); Defense Parity {fmt_estimate(dp)} excludes 0.",
        ),
        attribute=attr,
        member=best["member_id"],
        worst=lo["group"],
        worst_auc_acc=a,
        worst_n=lo.get("n"),
        worst_speakers=spk.get(lo["group"]),
        best=hi["group"],
        best_auc_acc=b,
        defense_parity=dp,
    )


def _parity_change_result(
    data: RunData, base: Mapping[str, Any], best: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Did the most robust model change Defense Parity vs the clean baseline (paired)?"""
    assert data.rob is not None
    w = auc_acc_width(data)
    comps = data.rob.get("comparisons", [])
    cases = []
    for attr in robustness_attributes(data):
        c = comparison_row(comps, "defense_parity_vs_baseline", attr, member_id=best["member_id"])
        v = verdict(c)
        if v == "undefined":
            continue
        before = scaled(estimate(defense_parity_row(data, base, attr), *_DP), w)
        after = scaled(estimate(defense_parity_row(data, best, attr), *_DP), w)
        cases.append((attr, v, before, after, c))
    if not cases:
        return None
    n = next((int(c["n_comparisons"]) for _, _, _, _, c in cases), 0)
    sig = sorted((x for x in cases if x[1] != "not distinguishable"), key=lambda x: x[4]["p_holm"])
    rest = [x[0] for x in cases if x[1] == "not distinguishable"]
    model, ref = f"`{best['member_id']}`", f"`{base['member_id']}`"
    if sig:
        attr, v, before, after, c = sig[0]
        word = "raised" if v == "higher" else "lowered"
        others = [x[0] for x in sig[1:]]
        tail = (f"; it also changed for {join_names(others, limit=2)}" if others else "") + (
            f"; for {join_names(rest, limit=2)} the change is not significant" if rest else ""
        )
        text = _fit(
            f"The most robust model {model} {word} Defense Parity for {attr} from "
            f"{fmt_estimate(before)} (baseline {ref}) to {fmt_estimate(after)} (paired, Holm p "
            f"{p_words(c.get('p_holm'))}){tail}.",
            f"The most robust model {model} {word} Defense Parity for {attr} from "
            f"{fmt_estimate(before)} to {fmt_estimate(after)} (paired, Holm p "
            f"{p_words(c.get('p_holm'))}).",
        )
    else:
        attr, _, before, after, c = max(
            cases, key=lambda x: abs(as_number(x[4].get("difference")) or 0.0)
        )
        text = _fit(
            f"The most robust model {model} changed Defense Parity significantly for no "
            f"attribute relative to the baseline {ref} (paired, Holm over {n}); the largest "
            f"change, {attr}, went from {fmt_estimate(before)} to {fmt_estimate(after)}.",
            f"The most robust model {model} changed Defense Parity significantly for no "
            f"attribute relative to the baseline {ref} (paired differences, Holm over {n}).",
        )
    return _record(
        "defense parity: most robust vs baseline",
        text,
        verdicts={x[0]: x[1] for x in cases},
        baseline=base["member_id"],
        robust=best["member_id"],
    )


def _rs_vs_nr_result(data: RunData) -> dict[str, Any] | None:
    """FPR Parity of RS at the largest N vs NR: significant attributes, else the closest."""
    cases = [(a, rs_vs_nr(data, a)) for a in rejection_attributes(data)]
    cases = [(a, x) for a, x in cases if x["verdict"] != "undefined"]
    if not cases:
        return None
    n, m = cases[0][1]["n"], cases[0][1]["n_comparisons"]
    sig = sorted(
        (c for c in cases if c[1]["verdict"] in ("higher", "lower")),
        key=lambda c: c[1]["comparison"]["p_holm"],
    )
    rest = [a for a, x in cases if x["verdict"] == "not distinguishable"]

    def numbers(x: Mapping[str, Any]) -> str:
        return f"RS {fmt_estimate(x['rs'])} vs NR {fmt_estimate(x['nr'])}"

    if sig:
        attr, x = sig[0]
        tail = f"; for {join_names(rest, limit=2)} they cannot be told apart" if rest else ""
        text = _fit(
            f"FPR Parity of RS (N = {n}) is {x['verdict']} than NR's for {attr}: "
            f"{numbers(x)} (paired, Holm p {p_words(x['comparison'].get('p_holm'))}){tail}.",
            f"FPR Parity of RS (N = {n}) is {x['verdict']} than NR's for {attr}: "
            f"{numbers(x)} (paired, Holm p {p_words(x['comparison'].get('p_holm'))}).",
        )
    else:
        attr, x = min(cases, key=lambda c: c[1]["comparison"].get("p_holm") or 1.0)
        text = _fit(
            f"FPR Parity of RS (N = {n}) and NR cannot be told apart for any attribute "
            f"(paired, Holm over {m} comparisons); nearest to a difference is {attr}: "
            f"{numbers(x)}.",
            f"FPR Parity of RS (N = {n}) and NR cannot be told apart for any attribute "
            f"(paired differences, Holm over {m}).",
        )
    return _record(
        "RS vs NR",
        text,
        num_samples=n,
        verdicts={a: x["verdict"] for a, x in cases},
    )


def _soundness_result(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """Does the strongest attack move Defense Parity, and which checks warn."""
    checks = rec.get("checks", [])
    if not checks:
        return None
    changed, same, _ = strongest_cases(rec)
    warned = [c for c in checks if c["verdict"] == "warn"]
    warn = (
        f"{len(warned)} of {len(checks)} soundness checks "
        f"{'warns' if len(warned) == 1 else 'warn'} "
        f"({join_names((c['check'] for c in warned), limit=1)})"
        if warned
        else f"all {len(checks)} soundness checks pass"
    )
    total = len(changed) + len(same)
    if changed:
        mdl, attr, t0, t1, _ = changed[0]
        text = _fit(
            f"The strongest attack tried moves Defense Parity beyond the study attack's in "
            f"{len(changed)} of {total} model x attribute cases (e.g. `{mdl}` / {attr}: "
            f"{fmt_estimate(t1)} vs {fmt_estimate(t0)}), and {warn}.",
            f"The strongest attack tried moves Defense Parity beyond the study attack's in "
            f"{len(changed)} of {total} model x attribute cases, and {warn}.",
        )
    elif total:
        text = _fit(
            f"The strongest attack tried changes no Defense Parity significantly ({total} "
            f"model x attribute cases, paired, Holm), and {warn}.",
            f"The strongest attack tried changes no Defense Parity significantly, and {warn}.",
        )
    else:
        text = f"Soundness: {warn}."
    return _record(
        "soundness",
        text,
        changed=len(changed),
        cases=total,
        warned=[c["check"] for c in warned],
        eps_width=soundness_width(rec),
    )


def _data_caveat(data: RunData) -> dict[str, Any] | None:
    """Attributes left out and groups too small to count (robustness and rejection)."""
    left = [
        r["attribute"]
        for records in data.attributes.values()
        for r in records
        if not r.get("usable")
    ]
    left = list(dict.fromkeys(left))
    small = [
        f"{g['attribute']} {g['group']} ({g['n_test']} test clips)"
        for g in (data.rob or {}).get("groups", [])
        if not g["valid"]
    ]
    if data.rej is not None:
        sizes = {
            (r["attribute"], r["group"]): r["n"]
            for r in data.rej.get("auc_fpr_long", [])
            if r["method"] == "NR"
        }
        for key in ("small_groups", "few_speaker_groups"):
            for a, gs in data.rej["summary"].get(key, {}).items():
                small += [
                    f"{a} {g} ({sizes.get((a, g), '?')} clips in the rejection study)" for g in gs
                ]
    small = list(dict.fromkeys(small))
    if not left and not small:
        return None
    parts = (
        [
            f"attribute {left[0]} is left out"
            if len(left) == 1
            else f"attributes {join_names(left, limit=3)} are left out"
        ]
        if left
        else []
    ) + (
        [
            f"group {small[0]} is too small to count"
            if len(small) == 1
            else f"groups {join_names(small, limit=2)} are too small to count"
        ]
        if small
        else []
    )
    return _record(
        "data caveats",
        _fit(
            f"Data caveats: {' and '.join(parts)} (reasons in the Attributes and Groups sections).",
            f"Data caveats: {len(left)} attributes left out and {len(small)} groups too small "
            "to count (see the Attributes and Groups sections).",
        ),
        left_out=left,
        small_groups=small,
    )
