"""The run report: ``report.md`` and a self-contained ``report.html`` from a run folder.

Everything the report shows is read from the run folder's result files
(``results/*.json``), so a report can be regenerated from disk alone::

    from fairrobust.report import write_report_from_dir
    md_path, html_path = write_report_from_dir("runs/20240101-120000")

Statistical honesty rules the report follows:

* every group rate and parity number in a table is printed with its bootstrap
  interval ``value [low, high]`` (level and resamples stated in the section);
  a number without one says ``(no CI)``;
* groups under a study's minimum size are listed with their size and marked
  "under minimum size", never dropped;
* each section states the settings its numbers depend on (N, alpha grid,
  epsilon grid, PGD steps, seeds, bootstrap resamples / level);
* the findings (:func:`findings`) only state comparisons the numbers support:
  two estimates whose intervals overlap are called "not distinguishable".

The HTML is produced from the markdown by a small converter (headings,
paragraphs, lists, tables, images); images are embedded as base64 PNG data
URIs and no external resource is referenced.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust import _io

__all__ = [
    "RunData",
    "findings",
    "fmt",
    "fmt_ci",
    "load_run",
    "markdown_to_html",
    "render_markdown",
    "render_soundness",
    "summary_rows",
    "write_report",
    "write_report_from_dir",
]

ROB_TABLES = ("models", "groups", "group_metrics", "defense_parity", "correlations")
REJ_TABLES = ("accuracy", "auc_fpr_long", "fpr_parity", "correlation", "certified_accuracy")


# ----------------------------------------------------------------------------- numbers


def _num(v: Any) -> float | None:
    """Float or None (None / NaN / non-numbers -> None)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(v: Any) -> str:
    """A number with 4 significant digits; ``n/a`` for missing / NaN."""
    f = _num(v)
    if f is None:
        return "n/a"
    if f == 0:
        return "0"
    return f"{f:.4g}" if 1e-4 <= abs(f) < 1e5 else f"{f:.3e}"


def fmt_ci(v: Any, low: Any, high: Any) -> str:
    """``value [low, high]``; ``value (no CI)`` without an interval; ``n/a`` without a value."""
    if _num(v) is None:
        return "n/a"
    if _num(low) is None or _num(high) is None:
        return f"{fmt(v)} (no CI)"
    return f"{fmt(v)} [{fmt(low)}, {fmt(high)}]"


def _ci(row: Mapping[str, Any] | None, key: str, lo_key: str, hi_key: str):
    if row is None:
        return (None, None, None)
    return (_num(row.get(key)), _num(row.get(lo_key)), _num(row.get(hi_key)))


def _compare(a: tuple, b: tuple) -> str:
    """``"lower"`` / ``"higher"`` (a vs b, intervals disjoint), ``"not distinguishable"``
    (intervals overlap), ``"lower (no CI)"`` / ``"higher (no CI)"`` / ``"equal (no CI)"``
    without intervals, ``"undefined"`` without values."""
    (av, alo, ahi), (bv, blo, bhi) = a, b
    if av is None or bv is None:
        return "undefined"
    if None in (alo, ahi, blo, bhi):
        return ("lower" if av < bv else "higher" if av > bv else "equal") + " (no CI)"
    if ahi < blo:
        return "lower"
    if alo > bhi:
        return "higher"
    return "not distinguishable"


def _s(t: tuple) -> str:
    return fmt_ci(*t)


# ----------------------------------------------------------------------------- loading


@dataclasses.dataclass
class RunData:
    """The result files of one run folder (see :func:`load_run`).

    Attributes:
      run_dir: the folder.
      config: ``config.json`` of ``fairrobust run`` (empty when absent).
      rob: robustness tables (``models``, ``groups``, ``group_metrics``,
        ``defense_parity``, ``correlations``), ``summary`` and ``prefix``; None
        when the study did not run.
      rej: rejection tables (``accuracy``, ``auc_fpr_long``, ``fpr_parity``,
        ``correlation``, ``certified_accuracy``), ``summary``, ``config``,
        ``groups``; None when the study did not run.
      soundness_md: markdown of ``results/soundness.md`` when present.
      soundness: the ``results/soundness.json`` record of ``fairrobust run``'s
        soundness checks when present (the report renders it with
        :func:`render_soundness`; ``soundness_md`` is the fallback).
    """

    run_dir: Path
    config: dict[str, Any]
    rob: dict[str, Any] | None
    rej: dict[str, Any] | None
    soundness_md: str | None = None
    soundness: dict[str, Any] | None = None


def _read(path: Path, default: Any = None) -> Any:
    return _io.read_json(path) if path.is_file() else default


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read every result file of a run folder.

    Raises:
      FileNotFoundError: ``run_dir`` has no ``results/`` folder with results of
        either study.
    """
    run_dir = Path(run_dir)
    results = run_dir / "results"
    config = _read(run_dir / "config.json", {}) or {}
    rob = None
    summaries = sorted(results.glob("robustness_*_summary.json"))
    if summaries:
        want = f"robustness_{config.get('dataset', '')}_summary.json"
        path = next((p for p in summaries if p.name == want), summaries[0])
        prefix = path.name[: -len("_summary.json")]
        rob = {"summary": _io.read_json(path), "prefix": prefix}
        for t in ROB_TABLES:
            rob[t] = _read(results / f"{prefix}_{t}.json", [])
    rej = None
    if (results / "rejection_summary.json").is_file():
        rej = {
            "summary": _io.read_json(results / "rejection_summary.json"),
            "config": _read(results / "rejection_config.json", {}),
            "groups": _read(results / "rejection_groups.json", {}),
        }
        for t in REJ_TABLES:
            rej[t] = _read(results / f"rejection_{t}.json", [])
    if rob is None and rej is None:
        raise FileNotFoundError(
            f"{results}: no robustness_*_summary.json or rejection_summary.json; "
            "is this a run folder?"
        )
    sound = results / "soundness.md"
    sound_json = _read(results / "soundness.json")
    return RunData(
        run_dir=run_dir,
        config=config,
        rob=rob,
        rej=rej,
        soundness_md=sound.read_text(encoding="utf-8") if sound.is_file() else None,
        soundness=sound_json if isinstance(sound_json, dict) else None,
    )


# ----------------------------------------------------------------------------- selections


def _baseline(models: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The clean baseline: no AT, no noise, no preprocessing (plain M5 first)."""
    plain = [
        r
        for r in models
        if not r.get("at_eps") and not r.get("noise_std") and r.get("preprocess") == "none"
    ]
    plain.sort(key=lambda r: r.get("model") != "m5")
    return plain[0] if plain else (models[0] if models else None)


def _most_robust(models: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The non-excluded model with the largest overall AUC_acc (first on ties)."""
    ok = [(i, r) for i, r in enumerate(models) if not r.get("excluded")]
    if not ok:
        return None
    return max(ok, key=lambda t: (_num(t[1].get("auc_acc")) or -1.0, -t[0]))[1]


def _describe(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "none"
    parts = [str(m["model"]), f"AT eps {fmt(m['at_eps'])}", f"noise std {fmt(m['noise_std'])}"]
    if m.get("preprocess", "none") != "none":
        parts.append(f"preprocess {m['preprocess']}")
    return f"`{m['member_id']}` ({', '.join(parts)})"


def _rob_attrs(data: RunData) -> list[str]:
    return list((data.rob or {}).get("summary", {}).get("groups", {}))


def _rej_attrs(data: RunData) -> list[str]:
    return list((data.rej or {}).get("groups", {}))


def _dp_row(data: RunData, member: Mapping[str, Any] | None, attr: str):
    if data.rob is None or member is None:
        return None
    return next(
        (
            r
            for r in data.rob["defense_parity"]
            if r["member_id"] == member["member_id"] and r["attribute"] == attr
        ),
        None,
    )


def _gm_rows(data: RunData, member: Mapping[str, Any] | None, attr: str) -> list[dict]:
    if data.rob is None or member is None:
        return []
    return [
        r
        for r in data.rob["group_metrics"]
        if r["member_id"] == member["member_id"] and r["attribute"] == attr
    ]


def _largest_n(data: RunData) -> int | None:
    ns = [r["num_samples"] for r in (data.rej or {}).get("fpr_parity", []) if r["method"] == "RS"]
    return max(ns) if ns else None


def _parity_row(data: RunData, attr: str, method: str, n: int | None = None):
    for r in (data.rej or {}).get("fpr_parity", []):
        if (
            r["attribute"] == attr
            and r["method"] == method
            and (method == "NR" or r["num_samples"] == n)
        ):
            return r
    return None


def _auc_rows(data: RunData, attr: str, label: str) -> list[dict]:
    return [
        r
        for r in (data.rej or {}).get("auc_fpr_long", [])
        if r["attribute"] == attr and r["label"] == label
    ]


# ----------------------------------------------------------------------------- summary


def summary_rows(data: RunData) -> list[dict[str, Any]]:
    """One row per attribute: worst-served group, Defense Parity, FPR Parity (with CIs).

    Columns: attribute; ``worst_group_auc_acc`` (lowest AUC_acc of the most robust
    non-excluded model among groups of valid size) with ``worst_auc_acc`` and its
    interval; ``dp_baseline`` / ``dp_robust`` (Defense Parity of the clean baseline
    and of the most robust model, with ``_ci_low`` / ``_ci_high``) and their
    ``member_id``\\ s; ``worst_group_nr`` / ``worst_group_rs`` (highest AUC_FPR);
    ``fpr_parity_nr`` / ``fpr_parity_rs`` (RS at the largest N ``rs_n``) with
    intervals; ``ci_level``; with the soundness checks, ``dp_baseline_strongest`` /
    ``dp_robust_strongest`` (Defense Parity under the strongest attack tried, with
    ``_ci_low`` / ``_ci_high``; None when that model was not checked).
    """
    rows = []
    models = (data.rob or {}).get("models", [])
    base, best = _baseline(models), _most_robust(models)
    n_max = _largest_n(data)
    level = None
    if data.rob:
        level = data.rob["summary"]["config"].get("ci_level")
    elif data.rej:
        level = (data.rej.get("config") or {}).get("config", {}).get("ci_level")
    for attr in list(dict.fromkeys(_rob_attrs(data) + _rej_attrs(data))):
        row: dict[str, Any] = {"attribute": attr, "ci_level": level}
        dpb, dpr = _dp_row(data, base, attr), _dp_row(data, best, attr)
        row["baseline_member"] = None if base is None else base["member_id"]
        row["robust_member"] = None if best is None else best["member_id"]
        for tag, r in (("baseline", dpb), ("robust", dpr)):
            v, lo, hi = _ci(r, "defense_parity", "defense_parity_ci_low", "defense_parity_ci_high")
            row[f"dp_{tag}"], row[f"dp_{tag}_ci_low"], row[f"dp_{tag}_ci_high"] = v, lo, hi
        valid = [g for g in _gm_rows(data, best, attr) if g["valid"]]
        worst = min(valid, key=lambda g: g["auc_acc"]) if valid else None
        if data.soundness is not None:
            spar = _sound_parity(data.soundness)
            for tag, m in (("baseline", base), ("robust", best)):
                r = None if m is None else spar.get((m["member_id"], STRONGEST, attr))
                v, lo, hi = _ci(r, "defense_parity", "ci_low", "ci_high")
                row[f"dp_{tag}_strongest"], row[f"dp_{tag}_strongest_ci_low"] = v, lo
                row[f"dp_{tag}_strongest_ci_high"] = hi
        row["worst_group_auc_acc"] = None if worst is None else worst["group"]
        row["worst_auc_acc"], row["worst_auc_acc_ci_low"], row["worst_auc_acc_ci_high"] = _ci(
            worst, "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high"
        )
        pn, pr = _parity_row(data, attr, "NR"), _parity_row(data, attr, "RS", n_max)
        row["rs_n"] = n_max
        for tag, r in (("nr", pn), ("rs", pr)):
            v, lo, hi = _ci(r, "fpr_parity", "ci_low", "ci_high")
            row[f"fpr_parity_{tag}"], row[f"fpr_parity_{tag}_ci_low"] = v, lo
            row[f"fpr_parity_{tag}_ci_high"] = hi
            row[f"worst_group_{tag}"] = None if r is None else r.get("worst_group")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- findings


def _finding(topic: str, text: str, **numbers: Any) -> dict[str, Any]:
    return {"topic": topic, "text": text, "numbers": _io.to_jsonable(numbers)}


def findings(data: RunData) -> list[dict[str, Any]]:
    """Sentences that state only what the numbers show, each with its numbers.

    Comparisons of two estimates use their bootstrap intervals: disjoint
    intervals -> "lower" / "higher"; overlapping -> "not distinguishable";
    missing intervals -> the direction is stated with "(no CI)".

    Returns:
      Records ``{"topic", "text", "numbers"}``, robustness first, then rejection,
      then the soundness checks.
    """
    out: list[dict[str, Any]] = []
    if data.rob is not None:
        out += _robustness_findings(data)
    if data.rej is not None:
        out += _rejection_findings(data)
    if data.soundness is not None:
        out += _soundness_findings(data.soundness)
    return out


def _soundness_findings(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The soundness verdict, and where the strongest attack changes Defense Parity."""
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
    par = _sound_parity(rec)
    changed, same = [], []
    for m in rec.get("models", []):
        for (model, attack, attr), r in par.items():
            if model != m["model"] or attack != STRONGEST:
                continue
            t1 = _ci(r, "defense_parity", "ci_low", "ci_high")
            t0 = _ci(par.get((model, m.get("study_attack"), attr)), *_SOUND_DP)
            verdict = _compare(t1, t0)
            item = (model, attr, t0, t1, verdict)
            (same if verdict in ("not distinguishable", "equal (no CI)") else changed).append(item)
    if changed:
        parts = [f"`{mdl}` / {a}: {_s(t1)} vs {_s(t0)} ({v})" for mdl, a, t0, t1, v in changed]
        out.append(
            _finding(
                "soundness",
                "Under the strongest attack tried, Defense Parity differs from the study's "
                f"attack for {_join(parts)}.",
                cases=[{"model": c[0], "attribute": c[1], "verdict": c[4]} for c in changed],
            )
        )
    elif same:
        out.append(
            _finding(
                "soundness",
                "Under the strongest attack tried, Defense Parity is not distinguishable from "
                f"the study's attack for every checked model and attribute ({len(same)} cases).",
                n=len(same),
            )
        )
    return out


_SOUND_DP = ("defense_parity", "ci_low", "ci_high")


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sized(group: str, n: Any) -> str:
    return f"{group} (n = {n})"


def _robustness_findings(data: RunData) -> list[dict[str, Any]]:
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
    base, best = _baseline(models), _most_robust(models)
    if base is None or best is None:
        return out
    if best["member_id"] == base["member_id"]:
        out.append(
            _finding(
                "most robust model",
                f"The clean baseline {_describe(base)} is also the most robust non-excluded model "
                f"(overall AUC_acc {fmt(base['auc_acc'])}).",
                member=base["member_id"],
                auc_acc=base["auc_acc"],
            )
        )
    for attr in _rob_attrs(data):
        b_rows = {g["group"]: g for g in _gm_rows(data, base, attr) if g["valid"]}
        r_rows = {g["group"]: g for g in _gm_rows(data, best, attr) if g["valid"]}
        if best["member_id"] != base["member_id"] and b_rows:
            verdicts = {}
            for g in b_rows:
                a = _ci(r_rows.get(g), "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
                b = _ci(b_rows[g], "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
                verdicts[g] = (_compare(a, b), a, b)
            raised = [
                g
                for g, (_, a, b) in verdicts.items()
                if a[0] is not None and b[0] is not None and a[0] > b[0]
            ]
            clear = [g for g, (v, _, _) in verdicts.items() if v == "higher"]
            nums = "; ".join(f"{g}: {_s(b)} -> {_s(a)}" for g, (_, a, b) in verdicts.items())
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
            dpb = _ci(
                _dp_row(data, base, attr),
                "defense_parity",
                "defense_parity_ci_low",
                "defense_parity_ci_high",
            )
            dpr = _ci(
                _dp_row(data, best, attr),
                "defense_parity",
                "defense_parity_ci_low",
                "defense_parity_ci_high",
            )
            cmp = _compare(dpr, dpb)
            dp_text = f"Defense Parity for {attr} went from {_s(dpb)} to {_s(dpr)}" + (
                " (not distinguishable)"
                if cmp == "not distinguishable"
                else f" ({cmp} than the baseline)"
                if cmp != "undefined"
                else ""
            )
            out.append(
                _finding(
                    f"robustness: {attr}",
                    f"Compared with the clean baseline {_describe(base)}, {_describe(best)} "
                    f"{what} ({nums}); {dp_text}.",
                    attribute=attr,
                    baseline=base["member_id"],
                    robust=best["member_id"],
                    auc_acc={g: {"baseline": b, "robust": a} for g, (_, a, b) in verdicts.items()},
                    defense_parity={"baseline": dpb, "robust": dpr, "comparison": cmp},
                )
            )
        if len(r_rows) >= 2:
            ordered = sorted(r_rows.values(), key=lambda g: g["auc_acc"])
            lo_g, hi_g = ordered[0], ordered[-1]
            a = _ci(lo_g, "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
            b = _ci(hi_g, "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
            cmp = _compare(a, b)
            if cmp == "not distinguishable":
                tail = "their intervals overlap, so the groups are not distinguishable"
            elif cmp == "lower":
                tail = "the intervals are disjoint"
            else:
                tail = f"comparison: {cmp}"
            out.append(
                _finding(
                    f"worst-served: {attr}",
                    f"Under attack, the {attr} group served worst by `{best['member_id']}` is "
                    f"{lo_g['group']} (AUC_acc {_s(a)}) and the best is {hi_g['group']} "
                    f"({_s(b)}); {tail}.",
                    attribute=attr,
                    member=best["member_id"],
                    worst=lo_g["group"],
                    best=hi_g["group"],
                    worst_auc_acc=a,
                    best_auc_acc=b,
                    comparison=cmp,
                )
            )
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
    sig = [
        r
        for r in data.rob["correlations"]
        if r["outcome"] == "defense_parity" and _num(r.get("p")) is not None and r["p"] < 0.05
    ]
    tested = [
        r
        for r in data.rob["correlations"]
        if r["outcome"] == "defense_parity" and _num(r.get("r")) is not None
    ]
    if tested:
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
        out.append(
            _finding(
                "correlations",
                text,
                n_tests=len(tested),
                n_models=n_models,
                significant=[(r["intervention"], r["attribute"], r["r"], r["p"]) for r in sig],
            )
        )
    return out


def _rejection_findings(data: RunData) -> list[dict[str, Any]]:
    assert data.rej is not None
    out = []
    n_max = _largest_n(data)
    attrs = _rej_attrs(data)
    by_verdict: dict[str, list[str]] = {}
    numbers = {}
    for attr in attrs:
        rs = _ci(_parity_row(data, attr, "RS", n_max), "fpr_parity", "ci_low", "ci_high")
        nr = _ci(_parity_row(data, attr, "NR"), "fpr_parity", "ci_low", "ci_high")
        v = _compare(rs, nr)
        by_verdict.setdefault(v, []).append(attr)
        numbers[attr] = {"rs": rs, "nr": nr, "comparison": v}
    if numbers:
        parts = []
        for v, names in by_verdict.items():
            nums = "; ".join(
                f"{a}: {_s(numbers[a]['rs'])} vs {_s(numbers[a]['nr'])}" for a in names
            )
            scope = (
                "all attributes" if len(names) == len(attrs) and len(attrs) > 1 else (_join(names))
            )
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
        out.append(
            _finding(
                "RS vs NR",
                text[0].upper() + text[1:] + ".",
                num_samples=n_max,
                per_attribute=numbers,
            )
        )
    ns = sorted({r["num_samples"] for r in data.rej["fpr_parity"] if r["method"] == "RS"})
    if len(ns) >= 2:
        items, nums = [], {}
        for attr in attrs:
            a = _ci(_parity_row(data, attr, "RS", ns[-1]), "fpr_parity", "ci_low", "ci_high")
            b = _ci(_parity_row(data, attr, "RS", ns[0]), "fpr_parity", "ci_low", "ci_high")
            v = _compare(a, b)
            nums[attr] = {"small_n": b, "large_n": a, "comparison": v}
            if v == "undefined":
                continue
            word = {"lower": "fell", "higher": "rose"}.get(v, v)
            if v == "not distinguishable":
                items.append(f"{attr} {_s(b)} -> {_s(a)} (not distinguishable)")
            else:
                items.append(f"{attr} {word} from {_s(b)} to {_s(a)}")
        if items:
            out.append(
                _finding(
                    "FPR Parity vs N",
                    f"From N = {ns[0]} to N = {ns[-1]}, the FPR Parity of RS: {'; '.join(items)}.",
                    per_attribute=nums,
                )
            )
    for attr in attrs:
        rows = [
            r for r in _auc_rows(data, attr, "NR") if r["valid"] and _num(r["auc_fpr"]) is not None
        ]
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: r["auc_fpr"])
        lo, hi = rows[0], rows[-1]
        a, b = _ci(hi, "auc_fpr", "ci_low", "ci_high"), _ci(lo, "auc_fpr", "ci_low", "ci_high")
        cmp = _compare(a, b)
        tail = (
            "their intervals overlap, so the difference is not distinguishable"
            if cmp == "not distinguishable"
            else "the intervals are disjoint"
            if cmp == "higher"
            else f"comparison: {cmp}"
        )
        out.append(
            _finding(
                f"most rejected (NR): {attr}",
                f"NR falsely rejects the {attr} group {hi['group']} most (AUC_FPR {_s(a)}, "
                f"n = {hi['n']}) and {lo['group']} least ({_s(b)}, n = {lo['n']}); {tail}.",
                attribute=attr,
                most=hi["group"],
                least=lo["group"],
                most_auc_fpr=a,
                least_auc_fpr=b,
                comparison=cmp,
            )
        )
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
    corr = [r for r in data.rej["correlation"] if r["attribute"] == "all"]
    nr_r = next((r for r in corr if r["method"] == "NR"), None)
    rs_r = next((r for r in corr if r["method"] == "RS mean"), None)
    if nr_r and _num(nr_r.get("r")) is not None:
        rs_text = (
            f"; for RS the mean over N is {fmt(rs_r['r'])} +- {fmt(rs_r['r_std'])}"
            if rs_r and _num(rs_r.get("r")) is not None
            else ""
        )
        out.append(
            _finding(
                "training-set size",
                f"Pearson r between a group's training-set size and its AUC_FPR (all attributes "
                f"pooled, {nr_r['n_groups']} groups) is {fmt(nr_r['r'])} for NR (p = "
                f"{fmt(nr_r['p_value'])}){rs_text}; with {nr_r['n_groups']} groups this is weak "
                "evidence either way.",
                nr=nr_r,
                rs_mean=rs_r,
            )
        )
    return out


# ----------------------------------------------------------------------------- markdown


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join(" --- " for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _img(run_dir: Path, path: Path | str | None, alt: str) -> str:
    if path is None:
        return ""
    p = Path(path)
    if not p.is_file():
        p = run_dir / p
    if not p.is_file():
        return ""
    return f"![{alt}]({p.resolve().relative_to(run_dir.resolve()).as_posix()})"


def _setting_line(items: Mapping[str, Any]) -> str:
    return "*Settings:* " + "; ".join(f"{k} {v}" for k, v in items.items()) + "."


def _rob_settings(data: RunData, short: bool = False) -> str:
    assert data.rob is not None
    c = data.rob["summary"]["config"]
    s = data.rob["summary"]
    items = {
        "PGD L-inf eps": c["attack_eps"],
        "steps": c["attack_steps"],
        "step size": f"{fmt(c['attack_rel_step'])} x eps",
        "test clips": s.get("n_test"),
        "seed": c["seed"],
        "bootstrap": f"{c['bootstrap']} resamples, {fmt(100 * c['ci_level'])}% percentile "
        "intervals (stratified by group, clustered by speaker)",
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
    return _setting_line(items)


def _rej_cfg(data: RunData) -> dict[str, Any]:
    assert data.rej is not None
    return (data.rej.get("config") or {}).get("config", {})


def _rej_settings(data: RunData, short: bool = False) -> str:
    c = _rej_cfg(data)
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
    return _setting_line(items)


def _cert_settings(data: RunData) -> str:
    c = _rej_cfg(data)
    return _setting_line(
        {
            "sigma": c.get("sigma"),
            "n0": c.get("certify_n0"),
            "n": c.get("certify_n"),
            "alpha": c.get("certify_alpha"),
            "radii": c.get("radii"),
            "seed": c.get("seed"),
        }
    )


def _rob_summary(data: RunData) -> dict[str, Any]:
    return (data.rob or {}).get("summary", {})


def render_markdown(data: RunData, figures: Mapping[str, Path] | None = None) -> str:
    """The report as markdown (figure links relative to the run folder).

    Args:
      data: from :func:`load_run`.
      figures: extra report figures (name -> path), from :func:`write_report_figures`.
    """
    figures = dict(figures or {})
    run_dir = data.run_dir
    used: set[str] = set()

    def img(path: Path | str | None, alt: str) -> str:
        text = _img(run_dir, path, alt)
        if text:
            used.add(Path(text[text.index("(") + 1 : -1]).name)
        return text

    cfg = data.config
    ds = (
        cfg.get("dataset")
        or (data.rob or {}).get("summary", {}).get("dataset")
        or ((data.rej or {}).get("summary", {}).get("dataset", "?"))
    )
    parts = [f"# For whom do the defenses defend? fairrobust report: {ds}", ""]
    parts.append(
        f"Run folder `{run_dir.name}`; preset `{cfg.get('preset', '?')}`; data fingerprint "
        f"`{cfg.get('data_fingerprint', _rob_summary(data).get('data_fingerprint', '?'))}`; "
        f"fairrobust {cfg.get('library_version', '?')}. Every number below is in `results/` "
        "(CSV and JSON); regenerate this report with "
        "`python -c \"from fairrobust.report import write_report_from_dir as w; w('RUN_DIR')\"`."
    )
    parts.append("")
    parts.append(
        "Reading guide: AUC_acc(s) integrates the accuracy of group s under PGD over the attack "
        "budgets (higher = better protected); Defense Parity is the largest AUC_acc gap between "
        "groups (lower = more equal). AUC_FPR(s) integrates the false-rejection rate of clean "
        "clips of group s over the rejection threshold (lower = fewer false rejections); FPR "
        "Parity is the largest AUC_FPR gap (lower = more equal). Brackets are bootstrap "
        "confidence intervals; two numbers whose intervals overlap are not distinguishable."
    )
    parts.append("")

    # summary
    srows = summary_rows(data)
    level = next((r["ci_level"] for r in srows if r.get("ci_level")), None)
    parts += ["## Summary", ""]
    n_max = _largest_n(data)
    models = (data.rob or {}).get("models", [])
    base, best = _baseline(models), _most_robust(models)
    if data.rob is not None:
        parts.append(
            f"Clean baseline: {_describe(base)}. Most robust non-excluded model: {_describe(best)}."
        )
        parts.append("")
    parts.append(
        _table(
            [
                "attribute",
                "worst-served group (AUC_acc, most robust model)",
                "Defense Parity: baseline",
                "Defense Parity: most robust",
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
                    + fmt_ci(
                        r["worst_auc_acc"], r["worst_auc_acc_ci_low"], r["worst_auc_acc_ci_high"]
                    ),
                    fmt_ci(r["dp_baseline"], r["dp_baseline_ci_low"], r["dp_baseline_ci_high"]),
                    fmt_ci(r["dp_robust"], r["dp_robust_ci_low"], r["dp_robust_ci_high"]),
                    r["worst_group_nr"] or "n/a",
                    fmt_ci(
                        r["fpr_parity_nr"], r["fpr_parity_nr_ci_low"], r["fpr_parity_nr_ci_high"]
                    ),
                    fmt_ci(
                        r["fpr_parity_rs"], r["fpr_parity_rs_ci_low"], r["fpr_parity_rs_ci_high"]
                    ),
                ]
                for r in srows
            ],
        )
    )
    parts.append("")
    strongest = [r for r in srows if "dp_robust_strongest" in r]
    if strongest:
        parts += [
            "Defense Parity under the strongest attack tried (soundness checks, same clips; "
            "see the soundness section):",
            "",
            _table(
                ["attribute", "baseline: strongest attack", "most robust: strongest attack"],
                [
                    [
                        r["attribute"],
                        fmt_ci(
                            r["dp_baseline_strongest"],
                            r["dp_baseline_strongest_ci_low"],
                            r["dp_baseline_strongest_ci_high"],
                        ),
                        fmt_ci(
                            r["dp_robust_strongest"],
                            r["dp_robust_strongest_ci_low"],
                            r["dp_robust_strongest_ci_high"],
                        ),
                    ]
                    for r in strongest
                ],
            ),
            "",
        ]
    if level:
        parts.append(
            f"Intervals: {fmt(100 * level)}% bootstrap. "
            + (_rob_settings(data, short=True) if data.rob else "")
        )
        parts.append("")

    # findings
    parts += ["## Findings", ""]
    fs = findings(data)
    if fs:
        parts.append(" ".join(f["text"] for f in fs))
    else:
        parts.append("No findings: the run has no comparable numbers.")
    parts.append("")

    # groups
    parts += [
        "## Groups",
        "",
        "Every group of every analysed attribute, with its size in each study. Groups under a "
        "study's minimum size are listed and marked; they are left out of that study's "
        "parity numbers, never dropped from the tables.",
        "",
    ]
    grows = []
    rob_groups = {(g["attribute"], g["group"]): g for g in (data.rob or {}).get("groups", [])}
    rej_sizes = {
        (r["attribute"], r["group"]): r
        for r in (data.rej or {}).get("auc_fpr_long", [])
        if r["method"] == "NR" and r["attribute"] != "all"
    }
    rob_min = (data.rob or {}).get("summary", {}).get("config", {}).get("min_group_size")
    rej_min = _rej_cfg(data).get("min_group_size") if data.rej else None
    for key in dict.fromkeys(list(rob_groups) + list(rej_sizes)):
        g, r = rob_groups.get(key), rej_sizes.get(key)
        grows.append(
            [
                key[0],
                key[1],
                "-" if g is None else g["n_test"],
                "-" if g is None else ("ok" if g["valid"] else f"under minimum size {rob_min}"),
                "-" if r is None else r["n"],
                "-" if r is None or r.get("n_train") is None else r["n_train"],
                "-" if r is None else ("ok" if r["valid"] else f"under minimum size {rej_min}"),
            ]
        )
    parts.append(
        _table(
            [
                "attribute",
                "group",
                "n (robustness test)",
                "robustness",
                "n (rejection eval)",
                "n (train)",
                "rejection",
            ],
            grows,
        )
    )
    parts.append("")

    if data.rob is not None:
        parts += _robustness_section(data, base, best, img, figures)
    if data.rej is not None:
        parts += _rejection_section(data, img, figures)
    if data.soundness:
        parts += [render_soundness(data.soundness).rstrip(), ""]
    elif data.soundness_md:
        sm = data.soundness_md.strip().splitlines()
        if sm and sm[0].startswith("## "):
            sm = sm[1:]
        parts += ["## Soundness of the attack evaluation", "", *sm, ""]
    else:
        parts += [
            "## Soundness of the attack evaluation",
            "",
            "Not run in this run folder (no `results/soundness.md`). Defense Parity is only "
            "as good as the attack behind it; see `fairrobust.soundness`.",
            "",
        ]

    other = sorted(p for p in (run_dir / "figures").glob("*.png") if p.name not in used)
    if other:
        parts += ["## Other figures", ""]
        for p in other:
            parts += [img(p, p.stem), ""]
    parts += ["## Files", "", "Result tables (CSV and JSON with the same rows):", ""]
    for p in sorted((run_dir / "results").glob("*")):
        if p.suffix in (".csv", ".json", ".npz", ".md") and not p.name.startswith("."):
            parts.append(f"- `results/{p.name}`")
    parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _robustness_section(data, base, best, img, figures) -> list[str]:
    rob = data.rob
    prefix = rob["prefix"]
    figs = {k: Path(v) for k, v in rob["summary"].get("figures", {}).items()}
    c = rob["summary"]["config"]
    out = [
        "## Robustness training: AUC_acc and Defense Parity",
        "",
        _rob_settings(data),
        "",
        f"AUC_acc: {rob['summary'].get('auc_acc', '')}. Defense Parity: "
        f"{rob['summary'].get('defense_parity', '')}. "
        f"{rob['summary'].get('random_guess_test', '')}.",
        "",
    ]
    out += ["### Per-model table", ""]
    eps_cols = [k for k in (rob["models"][0] if rob["models"] else {}) if k.startswith("acc@")]
    out.append(
        _table(
            [
                "model",
                "architecture",
                "AT eps",
                "noise std",
                "preprocess",
                "clean acc",
                "AUC_acc",
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
                    fmt(r["auc_acc"]),
                    *[fmt(r[k]) for k in eps_cols],
                    ("yes" if r["excluded"] else "no") + f" ({fmt(r['random_guess_p'])})",
                ]
                for r in sorted(rob["models"], key=lambda r: r["clean_accuracy"])
            ],
        )
    )
    out += [
        "",
        "Overall (all test clips) numbers are point estimates; group numbers below carry "
        "intervals.",
        "",
    ]
    if "defense_parity" in figures:
        out += [img(figures["defense_parity"], "Defense Parity per model with intervals"), ""]
    for attr in _rob_attrs(data):
        out += [f"### {attr}", "", _rob_settings(data, short=True), ""]
        members = rob["models"]
        gm = [g for g in rob["group_metrics"] if g["attribute"] == attr]
        groups = list(dict.fromkeys(g["group"] for g in gm))
        if not groups:
            out += ["No groups (all values unknown).", ""]
            continue
        idx = {(g["member_id"], g["group"]): g for g in gm}
        sizes = {g["group"]: (g["n"], g["valid"]) for g in gm}
        head = [f"{g} (n={sizes[g][0]}{'' if sizes[g][1] else ', under min size'})" for g in groups]
        out += ["Clean accuracy per group:", ""]
        out.append(
            _table(
                ["model", *head],
                [
                    [
                        f"`{m['member_id']}`" + (" (excluded)" if m["excluded"] else ""),
                        *[
                            fmt_ci(
                                *_ci(
                                    idx.get((m["member_id"], g)),
                                    "clean_accuracy",
                                    "clean_accuracy_ci_low",
                                    "clean_accuracy_ci_high",
                                )
                            )
                            for g in groups
                        ],
                    ]
                    for m in members
                ],
            )
        )
        out += ["", "AUC_acc per group and Defense Parity per model:", ""]
        dps = {r["member_id"]: r for r in rob["defense_parity"] if r["attribute"] == attr}
        out.append(
            _table(
                ["model", *head, "Defense Parity", "worst group", "note"],
                [
                    [
                        f"`{m['member_id']}`" + (" (excluded)" if m["excluded"] else ""),
                        *[
                            fmt_ci(
                                *_ci(
                                    idx.get((m["member_id"], g)),
                                    "auc_acc",
                                    "auc_acc_ci_low",
                                    "auc_acc_ci_high",
                                )
                            )
                            for g in groups
                        ],
                        fmt_ci(
                            *_ci(
                                dps.get(m["member_id"]),
                                "defense_parity",
                                "defense_parity_ci_low",
                                "defense_parity_ci_high",
                            )
                        ),
                        (dps.get(m["member_id"]) or {}).get("worst_group") or "-",
                        (dps.get(m["member_id"]) or {}).get("note") or "",
                    ]
                    for m in members
                ],
            )
        )
        out.append("")
        slug = _slug_rob(attr)
        if f"auc_acc_{attr}" in figures:
            out += [img(figures[f"auc_acc_{attr}"], f"AUC_acc per {attr} group with intervals"), ""]
        for key in (f"auc_{slug}",):
            if key in figs:
                out += [img(figs[key], f"AUC_acc per {attr} group, every model"), ""]
        for m in (base, best):
            if m is None:
                continue
            key = f"curves_{slug}_{_slug_rob(m['member_id'])}"
            if key in figs:
                out += [
                    img(figs[key], f"accuracy vs epsilon by {attr}, {m['member_id']}"),
                    "",
                    "*Shaded bands (and error bars on the clean points) are bootstrap "
                    "intervals of each group's accuracy (`group_curves` table: `ci_low`, "
                    "`ci_high`); their integral (AUC_acc) carries intervals in the table "
                    "above.*",
                    "",
                ]
    out += [
        "### Correlations of interventions with Defense Parity and group AUC_acc",
        "",
        f"Pearson r across the non-excluded models (paper Figures 2-5); p two-sided; "
        f"min group size {c['min_group_size']}.",
        "",
    ]
    corr = [r for r in rob["correlations"] if r["outcome"] == "defense_parity"]
    out.append(
        _table(
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
    for key in ("corr_binary_dp", "corr_levels_dp", "corr_binary_groups", "corr_levels_groups"):
        if key in figs:
            out += [img(figs[key], key.replace("_", " ")), ""]
    del prefix
    return out


def _slug_rob(text: str) -> str:
    from fairrobust.studies._store import slugify

    return slugify(text)


def _slug_rej(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "attr"


def _rejection_section(data, img, figures) -> list[str]:
    rej = data.rej
    fig_dir = data.run_dir / "figures"
    out = [
        "## Rejection: randomized smoothing (RS) vs neural rejection (NR)",
        "",
        _rej_settings(data),
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
    attrs = _rej_attrs(data)
    out.append(
        _table(
            ["attribute", *methods],
            [
                [
                    a,
                    *[
                        fmt_ci(*_ci(par.get((a, m)), "fpr_parity", "ci_low", "ci_high"))
                        for m in methods
                    ],
                ]
                for a in attrs
            ],
        )
    )
    out.append("")
    if "fpr_parity" in figures:
        out += [img(figures["fpr_parity"], "FPR Parity per method with intervals"), ""]
    out += [
        img(fig_dir / "rejection_fpr_parity_vs_n.png", "FPR Parity vs N"),
        "",
        "*RS band and NR shaded span: bootstrap intervals of FPR Parity (numbers in the "
        "table above).*",
        "",
    ]
    out += [img(fig_dir / "rejection_fpr_curves_all.png", "false rejection, all clips"), ""]
    for a in attrs:
        out += [f"### {a}", "", _rej_settings(data, short=True), ""]
        rows = [r for r in rej["auc_fpr_long"] if r["attribute"] == a]
        groups = list(dict.fromkeys(r["group"] for r in rows))
        idx = {(r["label"], r["group"]): r for r in rows}
        head = []
        for g in groups:
            r0 = idx.get((methods[0], g)) if methods else None
            n = "?" if r0 is None else r0["n"]
            small = r0 is not None and not r0["valid"]
            head.append(f"{g} (n={n}{', under min size' if small else ''})")
        out += ["AUC_FPR per group (lower = fewer false rejections):", ""]
        out.append(
            _table(
                ["method", *head, "FPR Parity"],
                [
                    [
                        m,
                        *[
                            fmt_ci(*_ci(idx.get((m, g)), "auc_fpr", "ci_low", "ci_high"))
                            for g in groups
                        ],
                        fmt_ci(*_ci(par.get((a, m)), "fpr_parity", "ci_low", "ci_high")),
                    ]
                    for m in methods
                ],
            )
        )
        out.append("")
        if f"auc_fpr_{a}" in figures:
            out += [img(figures[f"auc_fpr_{a}"], f"AUC_FPR per {a} group with intervals"), ""]
        sl = _slug_rej(a)
        out += [
            img(fig_dir / f"rejection_fpr_curves_{sl}.png", f"FPR vs alpha by {a}"),
            "",
            "*Shaded bands: bootstrap intervals of each group's false-rejection rate at every "
            "threshold (`rejection_fpr_curves.csv`: `ci_low`, `ci_high`); their integral "
            "(AUC_FPR) carries intervals in the table above.*",
            "",
        ]
        acc = [r for r in rej["accuracy"] if r["attribute"] == a]
        if acc:
            am = list(dict.fromkeys(r["model"] for r in acc))
            ai = {(r["model"], r["group"]): r for r in acc}
            out += [
                "Accuracy per group with bootstrap intervals (RS rows count an abstention as "
                "an error; abstention rate and its interval in parentheses):",
                "",
            ]
            out.append(
                _table(
                    ["model", *groups],
                    [
                        [
                            m,
                            *[
                                (
                                    "n/a"
                                    if (m, g) not in ai
                                    else fmt_ci(
                                        *_ci(
                                            ai[(m, g)],
                                            "accuracy",
                                            "accuracy_ci_low",
                                            "accuracy_ci_high",
                                        )
                                    )
                                    + (
                                        ""
                                        if ai[(m, g)].get("abstain_rate") is None
                                        else " ("
                                        + fmt_ci(
                                            *_ci(
                                                ai[(m, g)],
                                                "abstain_rate",
                                                "abstain_rate_ci_low",
                                                "abstain_rate_ci_high",
                                            )
                                        )
                                        + ")"
                                    )
                                )
                                for g in groups
                            ],
                        ]
                        for m in am
                    ],
                )
            )
            out.append("")
    corr = rej["correlation"]
    out += [
        "### Training-set size vs AUC_FPR",
        "",
        "Pearson r between a group's number of training clips and its AUC_FPR (valid groups; "
        "`all` pools the groups of every attribute); `RS mean` is the mean +- std of r over N.",
        "",
    ]
    out.append(
        _table(
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
        )
    )
    out.append("")
    cert = rej.get("certified_accuracy") or []
    if cert:
        out += [
            "### Certified accuracy vs radius per group (Cohen et al. CERTIFY)",
            "",
            _cert_settings(data),
            "",
            "Certified accuracy: fraction of clips certified correct at L2 radius >= r "
            "(abstentions count as errors), with bootstrap intervals (stratified by group, "
            "clustered by speaker).",
            "",
        ]
        radii = sorted({r["radius"] for r in cert})
        keys = list(dict.fromkeys((r["attribute"], r["group"], r["n"], r["valid"]) for r in cert))
        ci = {(r["attribute"], r["group"], r["radius"]): r for r in cert}
        out.append(
            _table(
                ["attribute", "group", "n", *[f"r={fmt(x)}" for x in radii]],
                [
                    [
                        a,
                        g + ("" if v else " (under min size)"),
                        n,
                        *[
                            fmt_ci(
                                *_ci(ci.get((a, g, x)), "certified_accuracy", "ci_low", "ci_high")
                            )
                            for x in radii
                        ],
                    ]
                    for a, g, n, v in keys
                ],
            )
        )
        out.append("")
        for a in attrs:
            out += [
                img(
                    fig_dir / f"rejection_certified_accuracy_{_slug_rej(a)}.png",
                    f"certified accuracy by {a}",
                ),
                "",
            ]
    return out


# ----------------------------------------------------------------------------- soundness


def _sound_settings(rec: Mapping[str, Any]) -> str:
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
        "clips": st.get("n_examples"),
        "tolerance": st.get("tolerance"),
        "seed": st.get("seed"),
        "bootstrap": f"{st.get('bootstrap')} resamples, {fmt(100 * (st.get('ci_level') or 0))}% "
        "intervals (stratified by group, clustered by speaker)",
    }
    sm = st.get("smoothing")
    if sm:
        items["EOT on smoothing"] = (
            f"sigma {fmt(sm['sigma'])} ({sm['noise']}), M {sm['num_noise']} draws per step, "
            f"{sm['num_steps']} steps, smoothed prediction by majority vote over N "
            f"{sm['num_samples']} draws, {sm['n_examples']} clips"
        )
    return _setting_line(items)


def _sound_parity(rec: Mapping[str, Any]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    return {(r["model"], r["attack"], r["attribute"]): r for r in rec.get("parity", [])}


#: Attack name of the per-clip worst case over every base-model attack (fairrobust.soundness).
STRONGEST = "strongest (base model)"


def render_soundness(rec: Mapping[str, Any]) -> str:
    """The "Soundness of the attack evaluation" section from a ``soundness.json`` record.

    One pass / warn row per check and model with its numbers, Defense Parity under
    the study's attack next to the strongest attack tried (with intervals and the
    interval-overlap verdict), robust accuracy by attack, the smoothing check
    (EOT vs plain PGD on the base model) and every warning.
    """
    checks = rec.get("checks", [])
    warned = sum(c["verdict"] == "warn" for c in checks)
    out = [
        "## Soundness of the attack evaluation",
        "",
        "A Defense Parity number is only as good as the attack behind it. These checks "
        "(`fairrobust.soundness`; Carlini et al. 2019, Athalye et al. 2018) re-attack the "
        "clean baseline and the most robust model with more steps, FGSM, random restarts and a "
        "transfer attack, and attack the randomized-smoothing classifier adaptively (EOT).",
        "",
        _sound_settings(rec),
        "",
        f"Overall: **{rec.get('verdict', 'n/a')}** ({warned} of {len(checks)} checks warn).",
        "",
        _table(
            ["model", "role", "check", "verdict", "numbers"],
            [
                [f"`{c['model']}`", c.get("role") or "-", c["check"], c["verdict"], c["summary"]]
                for c in checks
            ],
        ),
        "",
    ]
    par = _sound_parity(rec)
    attrs = list(dict.fromkeys(r["attribute"] for r in rec.get("parity", [])))
    models = rec.get("models", [])
    if models:
        out += [
            "### Defense Parity under the strongest attack tried",
            "",
            "Per model and attribute: Defense Parity under the study's attack (PGD with the "
            "study's steps) and under the strongest attack tried (per clip, the worst case over "
            "every PGD step count, FGSM, the restarts and the transfer attack), on the same "
            "clips, with bootstrap intervals.",
            "",
        ]
        rows = []
        for m in models:
            study = m.get("study_attack", "")
            for a in attrs:
                p0 = par.get((m["model"], study, a))
                p1 = par.get((m["model"], STRONGEST, a))
                if p0 is None and p1 is None:
                    continue
                t0 = _ci(p0, "defense_parity", "ci_low", "ci_high")
                t1 = _ci(p1, "defense_parity", "ci_low", "ci_high")
                rows.append(
                    [
                        f"`{m['model']}`",
                        a,
                        f"{study}: {_s(t0)}",
                        _s(t1),
                        _compare(t1, t0),
                        "n/a"
                        if p1 is None or p1.get("worst_group") is None
                        else f"{p1['worst_group']}: "
                        + _s(
                            _ci(
                                p1, "worst_auc_acc", "worst_auc_acc_ci_low", "worst_auc_acc_ci_high"
                            )
                        ),
                    ]
                )
        out += [
            _table(
                [
                    "model",
                    "attribute",
                    "Defense Parity: study attack",
                    "Defense Parity: strongest attack",
                    "strongest vs study",
                    "worst group (AUC_acc, strongest)",
                ],
                rows,
            ),
            "",
        ]
        for m in models:
            acc = m.get("report", {}).get("accuracy", {})
            eps = m.get("report", {}).get("epsilons", [])
            if not acc:
                continue
            out += [
                f"Robust accuracy by attack, `{m['model']}` "
                f"({rec.get('settings', {}).get('n_examples')} clips; transfer from "
                f"`{m.get('surrogate') or '-'}`):",
                "",
                _table(
                    ["attack", *[f"eps={fmt(e)}" for e in eps]],
                    [[name, *[fmt(v) for v in acc[name]]] for name in m.get("attacks", acc)],
                ),
                "",
            ]
    sm = rec.get("smoothing")
    if sm:
        names = list(sm.get("attacks") or sm.get("accuracy", {}))
        eps = rec.get("settings", {}).get("epsilons", [])
        out += [
            "### Adaptive attack on randomized smoothing",
            "",
            "The smoothed classifier of the rejection study's RS base model under PGD on the "
            "base model (the non-adaptive attack) and under EOT (PGD on the expected prediction "
            "over the smoothing noise). An abstention counts as an error.",
            "",
            _table(
                ["attack", *[f"acc eps={fmt(e)}" for e in eps], *[f"DP {a}" for a in attrs]],
                [
                    [
                        name,
                        *[fmt(v) for v in sm["accuracy"][name]],
                        *[
                            _s(
                                _ci(
                                    par.get((sm["model"], name, a)),
                                    "defense_parity",
                                    "ci_low",
                                    "ci_high",
                                )
                            )
                            for a in attrs
                        ],
                    ]
                    for name in names
                ],
            ),
            "",
        ]
    reasons = [f"`{c['model']}`, {c['check']}: {r}" for c in checks for r in c.get("reasons", [])]
    if reasons:
        out += ["Warnings:", "", *[f"- {r}" for r in reasons], ""]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- report figures


def _ci_array(nested: Sequence[Sequence[tuple]]) -> np.ndarray:
    """``[[(v, lo, hi), ...], ...]`` with None -> float ``[a, b, 3]`` with NaN."""
    return np.asarray(
        [[[np.nan if x is None else x for x in t] for t in row] for row in nested], dtype=float
    ).reshape(len(nested), -1, 3)


def write_report_figures(data: RunData) -> dict[str, Path]:
    """Bar figures with bootstrap error bars for every group / parity number (``report_*.png``).

    Returns:
      Name -> path: ``auc_acc_<attr>`` (baseline and most robust model),
      ``defense_parity`` (every model, per attribute), ``auc_fpr_<attr>`` (every
      method), ``fpr_parity`` (every method, per attribute).
    """
    from fairrobust.figures.summary import interval_bars

    fig_dir = data.run_dir / "figures"
    out: dict[str, Path] = {}
    if data.rob is not None and data.rob["models"]:
        models = data.rob["models"]
        base, best = _baseline(models), _most_robust(models)
        chosen = [m for m in dict.fromkeys(x["member_id"] for x in (base, best) if x is not None)]
        for attr in _rob_attrs(data):
            gm = [g for g in data.rob["group_metrics"] if g["attribute"] == attr]
            groups = list(dict.fromkeys(g["group"] for g in gm))
            if not groups:
                continue
            idx = {(g["member_id"], g["group"]): g for g in gm}
            arr = _ci_array(
                [
                    [
                        _ci(idx.get((m, g)), "auc_acc", "auc_acc_ci_low", "auc_acc_ci_high")
                        for g in groups
                    ]
                    for m in chosen
                ]
            )
            out[f"auc_acc_{attr}"] = interval_bars(
                arr[..., 0],
                arr[..., 1],
                arr[..., 2],
                fig_dir / f"report_auc_acc_{_slug_rob(attr)}.png",
                categories=[
                    f"{g} (n={idx[(chosen[0], g)]['n']})" if (chosen[0], g) in idx else g
                    for g in groups
                ],
                series=chosen,
                title=f"AUC_acc per {attr} group: baseline vs most robust (bootstrap intervals)",
                ylabel="AUC_acc",
            )
        attrs = _rob_attrs(data)
        dp = {(r["member_id"], r["attribute"]): r for r in data.rob["defense_parity"]}
        ids = [m["member_id"] for m in models]
        if attrs:
            arr = _ci_array(
                [
                    [
                        _ci(
                            dp.get((m, a)),
                            "defense_parity",
                            "defense_parity_ci_low",
                            "defense_parity_ci_high",
                        )
                        for m in ids
                    ]
                    for a in attrs
                ]
            )
            out["defense_parity"] = interval_bars(
                arr[..., 0],
                arr[..., 1],
                arr[..., 2],
                fig_dir / "report_defense_parity.png",
                categories=ids,
                series=attrs,
                title="Defense Parity per model (bootstrap intervals; lower = more equal)",
                ylabel="Defense Parity",
            )
    if data.rej is not None and data.rej["fpr_parity"]:
        methods = list(dict.fromkeys(r["label"] for r in data.rej["fpr_parity"]))
        attrs = _rej_attrs(data)
        for attr in attrs:
            rows = [r for r in data.rej["auc_fpr_long"] if r["attribute"] == attr]
            groups = list(dict.fromkeys(r["group"] for r in rows))
            if not groups:
                continue
            idx = {(r["label"], r["group"]): r for r in rows}
            arr = _ci_array(
                [
                    [_ci(idx.get((m, g)), "auc_fpr", "ci_low", "ci_high") for g in groups]
                    for m in methods
                ]
            )
            out[f"auc_fpr_{attr}"] = interval_bars(
                arr[..., 0],
                arr[..., 1],
                arr[..., 2],
                fig_dir / f"report_auc_fpr_{_slug_rej(attr)}.png",
                categories=[f"{g} (n={idx[(methods[0], g)]['n']})" for g in groups],
                series=methods,
                title=f"AUC_FPR per {attr} group (bootstrap intervals; lower = fewer rejections)",
                ylabel="AUC_FPR",
            )
        par = {(r["attribute"], r["label"]): r for r in data.rej["fpr_parity"]}
        arr = _ci_array(
            [
                [_ci(par.get((a, m)), "fpr_parity", "ci_low", "ci_high") for m in methods]
                for a in attrs
            ]
        )
        if arr.size:
            out["fpr_parity"] = interval_bars(
                arr[..., 0],
                arr[..., 1],
                arr[..., 2],
                fig_dir / "report_fpr_parity.png",
                categories=methods,
                series=attrs,
                title="FPR Parity per method (bootstrap intervals; lower = more equal)",
                ylabel="FPR Parity",
            )
    return out


# ----------------------------------------------------------------------------- html


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.86em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2} code{background:#f5f5f5;padding:0 3px;border-radius:3px}
img{max-width:100%;border:1px solid #eee;margin:0.4em 0} h2{border-bottom:1px solid #ddd}
figure{margin:0.8em 0} figcaption{font-size:0.85em;color:#555}
"""


def _inline(text: str) -> str:
    """Escape text and render `code`, **bold** and *italic*."""
    pieces = re.split(r"(`[^`]*`)", text)
    out = []
    for p in pieces:
        if len(p) >= 2 and p.startswith("`") and p.endswith("`"):
            out.append(f"<code>{html.escape(p[1:-1])}</code>")
            continue
        e = html.escape(p, quote=False)
        e = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", e)
        e = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", e)
        out.append(e)
    return "".join(out)


def _split_row(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [c.strip().replace("\\|", "|") for c in cells]


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_to_html(md: str, base_dir: str | os.PathLike[str], title: str = "report") -> str:
    """Convert the report's markdown subset to one self-contained HTML page.

    Supports ``#`` headings, paragraphs, ``-`` lists, pipe tables, images on
    their own line (``![alt](path)``, embedded as base64 PNG data URIs; a missing
    file raises) and inline code / bold / italic. No external resource is referenced.

    Raises:
      FileNotFoundError: an image file does not exist.
    """
    base = Path(base_dir)
    lines = md.splitlines()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        m_img = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", s)
        m_h = re.match(r"^(#{1,6})\s+(.*)$", s)
        if not s:
            flush()
        elif m_h:
            flush()
            level = len(m_h.group(1))
            out.append(f"<h{level}>{_inline(m_h.group(2))}</h{level}>")
        elif m_img:
            flush()
            path = base / m_img.group(2)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: figure referenced by the report is missing")
            alt = html.escape(m_img.group(1))
            out.append(
                f'<figure><img src="{_data_uri(path)}" alt="{alt}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
        elif s.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_split_row(lines[i]))
                i += 1
            header = rows[0]
            body = [r for r in rows[1:] if not all(re.fullmatch(r":?-{3,}:?", c) for c in r)]
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in header)
                + "</tr></thead><tbody>"
            )
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
            out.append("</tbody></table>")
            continue
        elif s.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(lines[i].strip()[2:])
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
            continue
        else:
            para.append(s)
        i += 1
    flush()
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- writers


def write_report(
    run_dir: str | os.PathLike[str],
    robustness: Any = None,
    rejection: Any = None,
    config: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (and the summary / findings tables) for a run.

    The studies write their results under ``run_dir/results``; this reads them
    back from disk, so ``robustness`` / ``rejection`` may be the studies' results
    objects, paths to their results folders, or None (then whatever is in
    ``run_dir/results`` is used). Results objects or folders outside ``run_dir``
    are not copied: pass a run folder that holds them.

    Also writes ``results/run_summary.{csv,json}`` (the summary table),
    ``results/run_findings.json`` and ``figures/report_*.png`` (bars with
    bootstrap error bars), so every number in the report is in a results file.

    Args:
      run_dir: the run folder.
      robustness, rejection: results objects, their results folders, or None.
      config: ``config.json`` content; when given and the file is absent it is written.

    Returns:
      ``(md_path, html_path)``.

    Raises:
      ValueError: a results object / folder that lives outside ``run_dir``.
      FileNotFoundError: no study results in ``run_dir/results``.
    """
    from fairrobust.studies._store import write_provenance, write_table

    run_dir = Path(run_dir)
    for name, res in (("robustness", robustness), ("rejection", rejection)):
        where = _results_dir_of(res)
        if where is not None and where.resolve() != (run_dir / "results").resolve():
            raise ValueError(
                f"{name}: results live in {where}, not in {run_dir / 'results'}; pass the run "
                "folder the study wrote to"
            )
    if config is not None and not (run_dir / "config.json").is_file():
        _io.atomic_write_json(run_dir / "config.json", dict(config))
    data = load_run(run_dir)
    figures = write_report_figures(data)
    write_table(run_dir / "results" / "run_summary", summary_rows(data))
    _io.atomic_write_json(run_dir / "results" / "run_findings.json", findings(data))
    run_config = dict(data.config or {})
    write_provenance(
        run_dir / "results",
        "run",
        study="run",
        dataset=str(run_config.get("dataset", "unknown")),
        data_fingerprint=str(run_config.get("data_fingerprint", "unknown")),
        config=run_config,
        config_hash=_io.stable_hash(run_config),
    )
    md = render_markdown(data, figures)
    md_path = _io.atomic_write_text(run_dir / "report.md", md)
    title = md.splitlines()[0].lstrip("# ").strip()
    html_path = _io.atomic_write_text(run_dir / "report.html", markdown_to_html(md, run_dir, title))
    return md_path, html_path


def _results_dir_of(res: Any) -> Path | None:
    if res is None:
        return None
    if isinstance(res, (str, os.PathLike)):
        p = Path(res)
        return p if p.name == "results" else p / "results"
    files = getattr(res, "files", None) or {}
    for key in ("summary", "config"):
        if key in files:
            return Path(files[key]).parent
    out_dir = getattr(res, "out_dir", None)
    return None if out_dir is None else Path(out_dir) / "results"


def write_report_from_dir(run_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Regenerate ``report.md`` / ``report.html`` of a run folder from its files alone."""
    return write_report(run_dir)
