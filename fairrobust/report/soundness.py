"""The soundness section of the report, rendered from ``results/soundness.json``.

This is the one renderer of the attack-soundness checks: ``fairrobust run``
writes its output to ``results/soundness.md`` and the report embeds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairrobust.report.blocks import md_table, settings_line
from fairrobust.studies.intervals import estimate, fmt, fmt_estimate
from fairrobust.studies.results import STRONGEST, soundness_parity

__all__ = ["clips_phrase", "render_soundness", "soundness_settings"]

_DP = ("defense_parity", "ci_low", "ci_high")


def clips_phrase(n: Any, total: Any, study: str = "the study's", what: str = "test clips") -> str:
    """How many clips a number was computed on: ``"200 of the study's 296 test clips"``.

    ``"200 clips"`` when ``total`` (the study's count; records written before it was
    recorded lack it) is unknown, ``"n/a clips"`` when ``n`` is.
    """
    if n is None:
        return "n/a clips"
    return f"{n} clips" if total is None else f"{n} of {study} {total} {what}"


def soundness_settings(rec: Mapping[str, Any]) -> str:
    """The settings line of the soundness checks (attack, restarts, transfer, EOT, bootstrap)."""
    st = rec.get("settings", {})
    items = {
        "PGD L-inf eps": st.get("epsilons"),
        "step size": f"{fmt(st.get('rel_step'))} x eps, clean start",
        "convergence steps": st.get("steps"),
        "restarts": f"{st.get('restarts')} x {st.get('restart_steps')} steps"
        if st.get("restarts")
        else "none",
        "transfer": "from another trained grid member of the same architecture"
        if st.get("transfer")
        else "off",
        "clips": clips_phrase(
            st.get("n_examples"), st.get("study_n_examples"), "the robustness study's"
        ),
        "tolerance": st.get("tolerance"),
        "seed": st.get("seed"),
        "bootstrap": f"{st.get('bootstrap')} resamples, {fmt(100 * (st.get('ci_level') or 0))}% "
        "intervals (stratified by group, clustered by speaker)",
    }
    if st.get("study_steps") is not None:  # records before the stronger attacks lack them
        items["study's steps"] = st["study_steps"]
    if st.get("dlr_steps"):
        items["DLR loss"] = f"{st['dlr_steps']} steps"
    sm = st.get("smoothing")
    if sm:
        items["EOT on smoothing"] = (
            f"sigma {fmt(sm['sigma'])} ({sm['noise']}), M {sm['num_noise']} draws per step, "
            f"{sm['num_steps']} steps, smoothed prediction by majority vote over N "
            f"{sm['num_samples']} draws, "
            + clips_phrase(
                sm["n_examples"],
                sm.get("study_n_examples"),
                "the rejection study's",
                "evaluated clips",
            )
        )
    return settings_line(items)


def render_soundness(rec: Mapping[str, Any]) -> str:
    """The "Soundness of the attack evaluation" section from a ``soundness.json`` record.

    One pass / warn row per check and model with its numbers, Defense Parity under
    the study's attack next to the strongest attack tried (with intervals and the
    paired difference), robust accuracy by attack, the smoothing check
    (EOT vs plain PGD on the base model) and every warning.

    Args:
      rec: the ``results/soundness.json`` record (``verdict``, ``settings``,
        ``checks``, ``parity``, ``models``, ``smoothing``).

    Returns:
      Markdown that starts with ``## Soundness of the attack evaluation`` and
      ends with a newline.
    """
    checks = rec.get("checks", [])
    warned = sum(c["verdict"] == "warn" for c in checks)
    out = [
        "## Soundness of the attack evaluation",
        "",
        "A Defense Parity number is only as good as the attack behind it. These checks "
        "(`fairrobust.evaluation`; Carlini et al. 2019, Athalye et al. 2018) re-attack the "
        "clean baseline and the most robust model with more steps than the study's attack (5x "
        "and 10x by default), FGSM, random restarts of the longest run, the DLR loss of "
        "APGD-DLR (Croce & Hein 2020) and a transfer attack, all on the same clips, and "
        "attack the randomized-smoothing classifier adaptively (EOT).",
        "",
        soundness_settings(rec),
        "",
        f"Overall: **{rec.get('verdict', 'n/a')}** ({warned} of {len(checks)} checks warn).",
        "",
        md_table(
            ["model", "role", "check", "verdict", "numbers"],
            [
                [f"`{c['model']}`", c.get("role") or "-", c["check"], c["verdict"], c["summary"]]
                for c in checks
            ],
        ),
        "",
    ]
    attrs = list(dict.fromkeys(r["attribute"] for r in rec.get("parity", [])))
    if rec.get("models", []):
        out += _strongest_block(rec, attrs)
    if rec.get("smoothing"):
        out += _smoothing_block(rec, attrs)
    reasons = [f"`{c['model']}`, {c['check']}: {r}" for c in checks for r in c.get("reasons", [])]
    if reasons:
        out += ["Warnings:", "", *[f"- {r}" for r in reasons], ""]
    return "\n".join(out).rstrip() + "\n"


def _strongest_row(
    m: Mapping[str, Any], a: str, par: Mapping[tuple[str, str, str], Mapping[str, Any]]
) -> list[str] | None:
    """Defense Parity of one model and attribute: study attack vs strongest (None: neither)."""
    study = m.get("study_attack", "")
    p0 = par.get((m["model"], study, a))
    p1 = par.get((m["model"], STRONGEST, a))
    if p0 is None and p1 is None:
        return None
    t0, t1 = estimate(p0, *_DP), estimate(p1, *_DP)
    worst = (
        "n/a"
        if p1 is None or p1.get("worst_group") is None
        else f"{p1['worst_group']}: "
        + fmt_estimate(
            estimate(p1, "worst_auc_acc", "worst_auc_acc_ci_low", "worst_auc_acc_ci_high")
        )
    )
    beyond = None if p1 is None else p1.get("beyond_study_ci")
    diff = estimate(p1, "difference", "difference_ci_low", "difference_ci_high")
    p_holm = None if p1 is None else p1.get("p_holm")
    return [
        f"`{m['model']}`",
        a,
        f"{study}: {fmt_estimate(t0)}",
        fmt_estimate(t1),
        fmt_estimate(diff) + ("" if p_holm is None else f" (Holm p = {fmt(p_holm)})"),
        "n/a" if beyond is None else ("**yes**" if beyond else "no"),
        worst,
    ]


def _strongest_block(rec: Mapping[str, Any], attrs: list[str]) -> list[str]:
    """Defense Parity under the study's attack vs the strongest one; accuracy by attack."""
    par = soundness_parity(rec)
    models = rec.get("models", [])
    st = rec.get("settings", {})
    n, total = st.get("n_examples"), st.get("study_n_examples")
    clips = clips_phrase(n, total)
    whole = (
        f" The robustness section's Defense Parity is computed on all {total} test clips and is "
        "not compared with these numbers."
        if total is not None and total != n
        else ""
    )
    out = [
        "### Defense Parity under the strongest attack tried",
        "",
        "Per model and attribute: Defense Parity under the study's attack (PGD with the "
        "study's steps, re-run here) and under the strongest attack tried (per clip, the "
        "worst case over every PGD step count, FGSM, the restarts, the DLR loss and the "
        f"transfer attack), both on the same clips ({clips}), with bootstrap intervals; "
        "*strongest - study*: their paired difference (same clips, same resamples) with its "
        "interval and Holm-corrected p-value over the model's attacks x attributes; *moved*: "
        f"that difference is significant after the correction.{whole}",
        "",
    ]
    rows = [r for m in models for a in attrs if (r := _strongest_row(m, a, par)) is not None]
    out += [
        md_table(
            [
                "model",
                "attribute",
                f"Defense Parity: study attack ({n} clips)",
                f"Defense Parity: strongest attack ({n} clips)",
                "strongest - study",
                "moved",
                "worst group (AUC_acc, strongest)",
            ],
            rows,
        ),
        "",
    ]
    out += _convergence_lines(rec)
    for m in models:
        acc = m.get("report", {}).get("accuracy", {})
        eps = m.get("report", {}).get("epsilons", [])
        if not acc:
            continue
        out += [
            f"Robust accuracy by attack, `{m['model']}` "
            f"({clips}; transfer from "
            f"`{m.get('surrogate') or '-'}`):",
            "",
            md_table(
                ["attack", *[f"eps={fmt(e)}" for e in eps]],
                [[name, *[fmt(v) for v in acc[name]]] for name in m.get("attacks", acc)],
            ),
            "",
        ]
    return out


def _convergence_lines(rec: Mapping[str, Any]) -> list[str]:
    """Which models' accuracy still fell between the two largest step counts."""
    steps = rec.get("settings", {}).get("steps") or []
    flagged = [m for m in rec.get("models", []) if "converged" in m]
    if len(steps) < 2 or not flagged:
        return []
    bad = [m for m in flagged if not m["converged"]]
    if not bad:
        return [
            f"Converged: robust accuracy no longer fell materially from {steps[-2]} to "
            f"{steps[-1]} PGD steps for every checked model.",
            "",
        ]
    return [
        f"**Not converged**: robust accuracy still fell from {steps[-2]} to {steps[-1]} PGD "
        "steps for "
        + ", ".join(
            f"`{m['model']}` (eps {', '.join(fmt(e) for e in m.get('not_converged_eps', []))})"
            for m in bad
        )
        + "; even the strongest attack tried may overstate their robustness.",
        "",
    ]


def _smoothing_block(rec: Mapping[str, Any], attrs: list[str]) -> list[str]:
    """The smoothed classifier under the non-adaptive attack and under EOT."""
    par = soundness_parity(rec)
    sm = rec["smoothing"]
    names = list(sm.get("attacks") or sm.get("accuracy", {}))
    eps = rec.get("settings", {}).get("epsilons", [])
    sm_n = rec.get("settings", {}).get("smoothing") or {}
    return [
        "### Adaptive attack on randomized smoothing",
        "",
        "The smoothed classifier of the rejection study's RS base model under PGD on the "
        "base model (the non-adaptive attack) and under EOT (PGD on the expected prediction "
        "over the smoothing noise). An abstention counts as an error. Computed on "
        + clips_phrase(
            sm_n.get("n_examples"),
            sm_n.get("study_n_examples"),
            "the rejection study's",
            "evaluated clips",
        )
        + ".",
        "",
        md_table(
            ["attack", *[f"acc eps={fmt(e)}" for e in eps], *[f"DP {a}" for a in attrs]],
            [
                [
                    name,
                    *[fmt(v) for v in sm["accuracy"][name]],
                    *[fmt_estimate(estimate(par.get((sm["model"], name, a)), *_DP)) for a in attrs],
                ]
                for name in names
            ],
        ),
        "",
    ]
