"""Figures of the robustness study, drawn from the output of ``robustness_tables.aggregate``.

Correlation heat maps (paper Figures 2-5), accuracy-vs-epsilon curves per group
(with bootstrap bands), AUC_acc bars per group for every model (with bootstrap
whiskers), and the paper's per-model figures (:func:`model_figures`: accuracy
histograms per attack budget, accuracy vs epsilon of every model, overall
AUC_acc per model); ``fairrobust.figures.robustness`` draws them. Groups under
the minimum size or speakers are drawn dashed grey / faded and labelled with why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust.figures import robustness as figs
from fairrobust.figures.layout import group_label
from fairrobust.studies._store import slugify
from fairrobust.studies.robustness_tables import attacked_part, clean_part

__all__ = ["auc_axis_label", "model_figures", "write_figures"]


def _corr_matrix(rows: Sequence[Mapping[str, Any]], outcome: str, kind: str):
    """One outcome/kind as (r [rows, cols], p, row labels, col labels); constant cols dropped."""
    sel = [r for r in rows if r["outcome"] == outcome and r["kind"] == kind]
    row_keys = list(dict.fromkeys((r["attribute"], r["group"]) for r in sel))
    cols = list(dict.fromkeys(r["intervention"] for r in sel))
    r_mat = np.full((len(row_keys), len(cols)), np.nan)
    p_mat = np.full_like(r_mat, np.nan)
    notes: dict[str, set[str]] = {c: set() for c in cols}
    for r in sel:
        i = row_keys.index((r["attribute"], r["group"]))
        j = cols.index(r["intervention"])
        r_mat[i, j] = r["r"]
        p_mat[i, j] = r["p"]
        notes[r["intervention"]].add(r["note"])
    keep = [j for j, c in enumerate(cols) if notes[c] != {"intervention constant across models"}]
    labels = [a if not g else f"{a}: {g}" for a, g in row_keys]
    return r_mat[:, keep], p_mat[:, keep], labels, [cols[j] for j in keep]


def write_figures(
    agg: Mapping[str, Any],
    members: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Any],
    attack_eps: Sequence[float],
    fig_dir: str | os.PathLike[str],
    *,
    prefix: str,
    num_classes: int,
    focus: Sequence[str] = (),
) -> dict[str, Path]:
    """Draw the study's figures from ``robustness_tables.aggregate``'s output.

    Figures (``<prefix>`` = ``robustness_<dataset>``):
      * ``<prefix>_corr_{binary,levels}_dp.png``: r of interventions vs Defense
        Parity, one row per attribute (paper Figures 2-5);
      * ``<prefix>_corr_{binary,levels}_groups.png``: r vs each group's AUC_acc;
      * ``<prefix>_curves_<attribute>_<member>.png``: accuracy vs epsilon per group
        for each member in ``focus`` (default: the undefended baseline and the
        most robust non-excluded model);
      * ``<prefix>_auc_<attribute>.png``: AUC_acc per group for every model, with
        bootstrap whiskers (normalised by the epsilon range when the
        ``group_metrics`` table has ``auc_acc_normalized``);
      * the per-model figures of :func:`model_figures`.

    Returns:
      Figure name -> path.
    """
    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    rows = agg["tables"]["correlations"]
    for outcome, tag in (("defense_parity", "dp"), ("group_auc_acc", "groups")):
        for kind, ktag in (("binary", "binary"), ("level", "levels")):
            r, p, rl, cl = _corr_matrix(rows, outcome, kind)
            if r.size == 0:
                continue
            what = "Defense Parity" if outcome == "defense_parity" else "group AUC_acc"
            name = f"corr_{ktag}_{tag}"
            out[name] = figs.correlation_heatmap(
                r,
                rl,
                cl,
                fig_dir / f"{prefix}_{name}.png",
                pvalues=p,
                title=f"Pearson r: {kind} interventions vs {what} (* p < 0.05)",
            )
    excluded = np.asarray(agg["excluded"], bool)
    ids = [mm["member_id"] for mm in members]
    models_rows = agg["tables"]["models"]
    if not focus:
        chosen = [ids[0]]
        ok = [i for i in range(len(ids)) if not excluded[i]]
        if ok:
            best = max(ok, key=lambda i: (models_rows[i]["auc_acc"], -i))
            chosen.append(ids[best])
        focus = list(dict.fromkeys(chosen))
    eps = np.asarray(attack_eps, float)
    width = float(eps.max() - eps.min()) if eps.size else 0.0
    metrics_idx = {
        (r["member_id"], r["attribute"], r["group"]): r for r in agg["tables"]["group_metrics"]
    }
    min_sizes = {}
    for attr, mats in agg["matrices"].items():
        grp = groups[attr]
        min_sizes[attr] = grp.min_size
        valid = np.asarray(mats["valid"], bool)
        labels = [
            group_label(
                nm, int(s), bool(v), "too small" if s < grp.min_size else "too few speakers"
            )
            for nm, s, v in zip(grp.names, mats["sizes"], valid, strict=True)
        ]
        for mid in focus:
            if mid not in ids:
                raise ValueError(f"focus: unknown member {mid!r}; members: {ids}")
            i = ids.index(mid)
            name = f"curves_{slugify(attr)}_{slugify(mid)}"
            band = {}
            if "curves_low" in mats:  # bootstrap band around every group's curve
                band = {
                    "lower": attacked_part(mats["curves_low"][i]).T,
                    "upper": attacked_part(mats["curves_high"][i]).T,
                    "clean_lower": clean_part(mats["curves_low"][i]),
                    "clean_upper": clean_part(mats["curves_high"][i]),
                }
            out[name] = figs.accuracy_vs_epsilon(
                eps,
                attacked_part(mats["curves"][i]).T,
                labels,
                fig_dir / f"{prefix}_{name}.png",
                clean_accuracy=clean_part(mats["curves"][i]),
                chance=1.0 / num_classes,
                valid=valid,
                **band,
                title=f"{mid}: accuracy under PGD L-inf by {attr}",
            )
        cells = [
            [_norm_auc(metrics_idx.get((mid, attr, g)), width) for g in grp.names] for mid in ids
        ]
        normalized = bool(cells) and all(c[3] for row in cells for c in row)
        arr = np.asarray([[c[:3] for c in row] for row in cells], float).reshape(
            len(ids), len(grp.names), 3
        )
        if not normalized:  # the raw AUC_acc of the aggregate (its interval when tabled)
            arr[..., 0] = np.asarray(mats["auc"], float)
            arr[..., 1:] = [
                [
                    [
                        _num(metrics_idx.get((mid, attr, g)), k)
                        for k in ("auc_acc_ci_low", "auc_acc_ci_high")
                    ]
                    for g in grp.names
                ]
                for mid in ids
            ]
        name = f"auc_{slugify(attr)}"
        out[name] = figs.group_auc_bars(
            arr[..., 0],
            ids,
            labels,
            fig_dir / f"{prefix}_{name}.png",
            lower=arr[..., 1],
            upper=arr[..., 2],
            excluded=excluded,
            valid=valid,
            ylabel=auc_axis_label(normalized, attack_eps),
            title=f"AUC_acc per {attr} group, every model (whiskers: bootstrap intervals; "
            "hatched: excluded as random guessing)",
        )
    out.update(
        model_figures(
            models_rows, agg["tables"]["group_curves"], attack_eps, fig_dir, prefix=prefix,
            chance=agg.get("chance", 1.0 / num_classes), min_group_size=min_sizes,
        )
    )  # fmt: skip
    return out


def _norm_auc(row: Mapping[str, Any] | None, width: float) -> tuple[float, float, float, bool]:
    """``(value, low, high, normalised)`` of a row's AUC_acc: normalised when the row has it.

    The normalised AUC_acc is the raw one divided by the epsilon range ``width``
    (``fairrobust.metrics.auc_acc(normalize=True)``), so an interval the row gives
    only for the raw value is divided by ``width`` too.
    """
    if row is None:
        return math.nan, math.nan, math.nan, False

    def num(key: str) -> float:
        v = row.get(key)
        return math.nan if v is None else float(v)

    if row.get("auc_acc_normalized") is not None:
        lo, hi = num("auc_acc_normalized_ci_low"), num("auc_acc_normalized_ci_high")
        if math.isnan(lo) and width > 0:
            lo, hi = num("auc_acc_ci_low") / width, num("auc_acc_ci_high") / width
        return num("auc_acc_normalized"), lo, hi, True
    return num("auc_acc"), num("auc_acc_ci_low"), num("auc_acc_ci_high"), False


def auc_axis_label(normalized: bool, attack_eps: Sequence[float], *, short: bool = True) -> str:
    """Axis label of AUC_acc values: normalised (a mean accuracy) or the raw integral.

    Args:
      normalized: whether the values are divided by the epsilon range.
      attack_eps: the attack budgets (their range is named when ``short`` is False).
      short: a label short enough for a vertical axis.
    """
    eps = sorted(float(e) for e in attack_eps)
    span = f" over epsilon in [{eps[0]:g}, {eps[-1]:g}]" if eps and not short else ""
    if normalized:
        return f"normalised AUC_acc (mean accuracy{span})"
    return f"AUC_acc (integral{span or ' over epsilon'})"


def _eps_columns(row: Mapping[str, Any]) -> list[tuple[float, str]]:
    """``[(epsilon, "acc@<epsilon>")]`` of a models row, by epsilon."""
    return sorted((float(k[4:]), k) for k in row if k.startswith("acc@"))


def model_figures(
    models: Sequence[Mapping[str, Any]],
    group_curves: Sequence[Mapping[str, Any]],
    attack_eps: Sequence[float],
    fig_dir: str | os.PathLike[str],
    *,
    prefix: str,
    chance: float | None = None,
    min_group_size: Mapping[str, int] | None = None,
) -> dict[str, Path]:
    """The paper's per-model figures, drawn from the ``models`` and ``group_curves`` tables.

    Figures (``<prefix>`` = ``robustness_<dataset>``):
      * ``<prefix>_hist_accuracy.png``: per attack budget (clean first), the
        histogram of every model's accuracy on all test clips (AISec'23 Figures 8-9);
      * ``<prefix>_hist_<attribute>.png``: the same per group of the attribute;
      * ``<prefix>_models_accuracy.png``: accuracy vs epsilon of every model on all
        test clips (preprint Figure 6);
      * ``<prefix>_models_auc.png``: overall AUC_acc per model, normalised by the
        epsilon range when the table has ``auc_acc_normalized`` (preprint Figure 7).

    Args:
      models: rows of the ``models`` table (``member_id``, ``clean_accuracy``,
        ``acc@<eps>``, ``auc_acc`` [, ``auc_acc_normalized``, ``*_ci_low/high``],
        ``at_eps``, ``noise_std``, ``excluded``).
      group_curves: rows of the ``group_curves`` table (``member_id``,
        ``attribute``, ``group``, ``epsilon`` (0 = clean), ``accuracy``, ``n``, ``valid``).
      attack_eps: the study's attack budgets (> 0).
      fig_dir: output folder.
      prefix: file-name prefix.
      chance: optional chance accuracy (a reference line).
      min_group_size: optional attribute -> minimum group size; a group that does
        not count is labelled "too small" under it, else "too few speakers"
        (without it: "not counted").

    Returns:
      Figure name -> path (``hist_accuracy``, ``hist_<attribute slug>``,
      ``models_accuracy``, ``models_auc``); empty without models.
    """
    fig_dir = Path(fig_dir)
    if not models:
        return {}
    out: dict[str, Path] = {}
    cols = _eps_columns(models[0])
    ids = [str(r["member_id"]) for r in models]
    excluded = np.asarray([bool(r.get("excluded")) for r in models])
    acc = np.asarray(
        [
            [r.get("clean_accuracy", math.nan), *[r.get(k, math.nan) for _, k in cols]]
            for r in models
        ],
        dtype=float,
    )  # [m, 1 + e]
    budgets = [0.0, *[e for e, _ in cols]]
    n_test = models[0].get("n_test")
    clips = f"{n_test} test clips" if n_test else "all test clips"
    out["hist_accuracy"] = figs.accuracy_histograms(
        budgets, acc, fig_dir / f"{prefix}_hist_accuracy.png",
        series_labels=[f"all models ({len(models)})"], chance=chance,
        title=f"Accuracy of the {len(models)} models at each attack budget ({clips})",
    )  # fmt: skip
    by_attr: dict[str, list[Mapping[str, Any]]] = {}
    for r in group_curves:
        by_attr.setdefault(str(r["attribute"]), []).append(r)
    for attr, rows in by_attr.items():
        names = list(dict.fromkeys(str(r["group"]) for r in rows))
        cell = {(str(r["member_id"]), str(r["group"]), float(r["epsilon"])): r for r in rows}
        first = {str(r["group"]): r for r in reversed(rows)}
        g_acc = np.asarray(
            [
                [[_num(cell.get((mid, g, e)), "accuracy") for e in budgets] for mid in ids]
                for g in names
            ],
            dtype=float,
        ).reshape(len(names), len(ids), len(budgets))
        valid = [bool(first[g].get("valid", True)) for g in names]
        labels = [
            group_label(
                g, first[g].get("n"), v, _why(first[g].get("n"), (min_group_size or {}).get(attr))
            )
            for g, v in zip(names, valid, strict=True)
        ]
        name = f"hist_{slugify(attr)}"
        out[name] = figs.accuracy_histograms(
            budgets, g_acc, fig_dir / f"{prefix}_{name}.png", series_labels=labels,
            valid=valid, chance=chance,
            title=f"Accuracy of the {len(models)} models at each attack budget, by {attr}",
        )  # fmt: skip
    order = sorted(range(len(models)), key=lambda i: (-np.nan_to_num(acc[i, 1:].mean(), nan=-1), i))
    out["models_accuracy"] = figs.accuracy_vs_epsilon(
        np.asarray([e for e, _ in cols]) if cols else np.asarray(attack_eps, float),
        acc[order, 1:],
        [f"{ids[i]} (excl.)" if excluded[i] else ids[i] for i in order],
        fig_dir / f"{prefix}_models_accuracy.png",
        clean_accuracy=acc[order, 0],
        chance=chance,
        valid=~excluded[order],
        title=f"Accuracy under PGD L-inf of every model ({clips}; dashed grey: excluded as "
        "random guessing)",
    )
    width = float(max(attack_eps) - min(attack_eps)) if len(attack_eps) else 0.0
    auc = [_norm_auc(r, width) for r in models]
    normalized = all(a[3] for a in auc)
    if not normalized:  # mixed tables: every bar raw
        auc = [
            (_num(r, "auc_acc"), _num(r, "auc_acc_ci_low"), _num(r, "auc_acc_ci_high"), False)
            for r in models
        ]
    vals = np.asarray([a[:3] for a in auc], dtype=float)
    rank = sorted(range(len(models)), key=lambda i: (-np.nan_to_num(vals[i, 0], nan=-np.inf), i))
    has_ci = bool(np.isfinite(vals[:, 1:]).any())
    out["models_auc"] = figs.model_auc_bars(
        vals[rank, 0],
        [ids[i] for i in rank],
        fig_dir / f"{prefix}_models_auc.png",
        lower=vals[rank, 1] if has_ci else None,
        upper=vals[rank, 2] if has_ci else None,
        adversarial=[float(models[i].get("at_eps") or 0) > 0 for i in rank],
        noise=[float(models[i].get("noise_std") or 0) > 0 for i in rank],
        excluded=excluded[rank],
        xlabel=auc_axis_label(normalized, attack_eps, short=False),
        title=f"Overall AUC_acc per model ({clips}; highest first)",
    )
    return out


def _num(row: Mapping[str, Any] | None, key: str) -> float:
    v = None if row is None else row.get(key)
    return math.nan if v is None else float(v)


def _why(n: Any, min_size: int | None) -> str:
    """Why a group does not count: under the minimum size, else too few speakers."""
    if min_size is None or n is None:
        return "not counted"
    return "too small" if int(n) < min_size else "too few speakers"
