"""The report's own figures: bars with bootstrap error bars for every group and parity number.

These ``figures/report_*.png`` compare the baseline with the most robust model
(and every rejection method) with intervals. Values and intervals come from the
results tables; nothing here computes a metric. Groups that do not count are
faded and labelled with why. A run folder written before the robustness study
drew the paper's per-model figures (accuracy histograms per budget, accuracy vs
epsilon of every model, AUC_acc per model) gets them here, from its tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust import _io
from fairrobust.figures.layout import group_label
from fairrobust.figures.summary import interval_bars
from fairrobust.studies import attribute_slug
from fairrobust.studies.intervals import Estimate, estimate
from fairrobust.studies.results import (
    RunData,
    rejection_attributes,
    rejection_config,
    robustness_attributes,
    robustness_slug,
)
from fairrobust.studies.robustness_figures import auc_axis_label, model_figures
from fairrobust.studies.summary import select_baseline, select_most_robust

__all__ = ["write_report_figures"]

_DP = ("defense_parity", "defense_parity_ci_low", "defense_parity_ci_high")


def _ci_array(nested: Sequence[Sequence[Estimate]]) -> np.ndarray:
    """``[[(v, lo, hi), ...], ...]`` with None -> float ``[a, b, 3]`` with NaN."""
    return np.asarray(
        [[[np.nan if x is None else x for x in t] for t in row] for row in nested], dtype=float
    ).reshape(len(nested), -1, 3)


def _why(row: Mapping[str, Any], min_size: int | None) -> str:
    """Why a group does not count: under the minimum size, else too few speakers."""
    if min_size is None or row.get("n") is None:
        return "not counted"
    return "too small" if int(row["n"]) < int(min_size) else "too few speakers"


def _bars(arr: np.ndarray, path: Path, **kwargs: Any) -> Path:
    return interval_bars(arr[..., 0], arr[..., 1], arr[..., 2], path, **kwargs)


def write_report_figures(data: RunData) -> dict[str, Path]:
    """Bar figures with bootstrap error bars for every group / parity number (``report_*.png``).

    Args:
      data: from :func:`fairrobust.studies.results.load_run`; the figures go to
        ``data.run_dir / "figures"``.

    Returns:
      Name -> path: ``auc_acc_<attr>`` (baseline and most robust model),
      ``defense_parity`` (every model, per attribute), ``auc_fpr_<attr>`` (every
      method), ``fpr_parity`` (every method, per attribute); for a run whose
      robustness summary lists no ``models_auc`` figure also ``hist_accuracy``,
      ``hist_<attr>``, ``models_accuracy`` and ``models_auc``
      (:func:`fairrobust.studies.robustness_figures.model_figures`).
    """
    out: dict[str, Path] = {}
    if data.rob is not None and data.rob["models"]:
        out.update(_robustness_figures(data))
    if data.rej is not None and data.rej["fpr_parity"]:
        out.update(_rejection_figures(data))
    return out


def _robustness_figures(data: RunData) -> dict[str, Path]:
    """AUC_acc per group (baseline vs most robust model) and Defense Parity per model."""
    assert data.rob is not None
    fig_dir = data.run_dir / "figures"
    out: dict[str, Path] = {}
    models = data.rob["models"]
    base, best = select_baseline(models), select_most_robust(models)
    chosen = list(dict.fromkeys(x["member_id"] for x in (base, best) if x is not None))
    attrs = robustness_attributes(data)
    config = data.rob["summary"].get("config", {})
    eps = config.get("attack_eps") or []
    for attr in attrs:
        gm = [g for g in data.rob["group_metrics"] if g["attribute"] == attr]
        groups = list(dict.fromkeys(g["group"] for g in gm))
        if not groups:
            continue
        idx = {(g["member_id"], g["group"]): g for g in gm}
        normalized = all(g.get("auc_acc_normalized") is not None for g in gm)
        key = "auc_acc_normalized" if normalized else "auc_acc"
        arr = _ci_array(
            [
                [estimate(idx.get((m, g)), key, f"{key}_ci_low", f"{key}_ci_high") for g in groups]
                for m in chosen
            ]
        )
        first = {g: idx.get((chosen[0], g)) or {} for g in groups}
        lo = config.get("min_group_size")
        out[f"auc_acc_{attr}"] = _bars(
            arr,
            fig_dir / f"report_auc_acc_{robustness_slug(attr)}.png",
            categories=[
                group_label(g, first[g].get("n"), first[g].get("valid", True), _why(first[g], lo))
                for g in groups
            ],
            series=chosen,
            title=f"AUC_acc per {attr} group: baseline vs most robust (bootstrap intervals)",
            ylabel=auc_axis_label(normalized, eps),
            muted=[not first[g].get("valid", True) for g in groups],
        )
    if attrs:
        dp = {(r["member_id"], r["attribute"]): r for r in data.rob["defense_parity"]}
        ids = [m["member_id"] for m in models]
        norm = all(r.get("defense_parity_normalized") is not None for r in dp.values())
        cols = tuple(k.replace("defense_parity", "defense_parity_normalized") for k in _DP)
        arr = _ci_array(
            [[estimate(dp.get((m, a)), *(cols if norm else _DP)) for m in ids] for a in attrs]
        )
        out["defense_parity"] = _bars(
            arr,
            fig_dir / "report_defense_parity.png",
            categories=ids,
            series=attrs,
            title="Defense Parity per model (bootstrap intervals; lower = more equal)",
            ylabel="Defense Parity (normalised AUC_acc gap)" if norm else "Defense Parity",
        )
    if "models_auc" not in data.rob["summary"].get("figures", {}):
        prefix = data.rob.get("prefix", "robustness")
        curves = data.run_dir / "results" / f"{prefix}_group_curves.json"
        out.update(
            model_figures(
                models, _io.read_json(curves) if curves.is_file() else [], eps, fig_dir,
                prefix="report_robustness", chance=data.rob["summary"].get("chance_accuracy"),
            )
        )  # fmt: skip
    return out


def _rejection_figures(data: RunData) -> dict[str, Path]:
    """AUC_FPR per group (every method) and FPR Parity per method."""
    assert data.rej is not None
    fig_dir = data.run_dir / "figures"
    out: dict[str, Path] = {}
    methods = list(dict.fromkeys(r["label"] for r in data.rej["fpr_parity"]))
    attrs = rejection_attributes(data)
    for attr in attrs:
        rows = [r for r in data.rej["auc_fpr_long"] if r["attribute"] == attr]
        groups = list(dict.fromkeys(r["group"] for r in rows))
        if not groups:
            continue
        idx: Mapping[tuple[str, str], Mapping[str, Any]] = {
            (r["label"], r["group"]): r for r in rows
        }
        arr = _ci_array(
            [
                [estimate(idx.get((m, g)), "auc_fpr", "ci_low", "ci_high") for g in groups]
                for m in methods
            ]
        )
        first = {g: idx.get((methods[0], g)) or {} for g in groups}
        lo = rejection_config(data).get("min_group_size")
        out[f"auc_fpr_{attr}"] = _bars(
            arr,
            fig_dir / f"report_auc_fpr_{attribute_slug(attr)}.png",
            categories=[
                group_label(g, first[g].get("n"), first[g].get("valid", True), _why(first[g], lo))
                for g in groups
            ],
            muted=[not first[g].get("valid", True) for g in groups],
            series=methods,
            title=f"AUC_FPR per {attr} group (bootstrap intervals; lower = fewer rejections)",
            ylabel="AUC_FPR",
        )
    par = {(r["attribute"], r["label"]): r for r in data.rej["fpr_parity"]}
    arr = _ci_array(
        [
            [estimate(par.get((a, m)), "fpr_parity", "ci_low", "ci_high") for m in methods]
            for a in attrs
        ]
    )
    if arr.size:
        out["fpr_parity"] = _bars(
            arr,
            fig_dir / "report_fpr_parity.png",
            categories=methods,
            series=attrs,
            title="FPR Parity per method (bootstrap intervals; lower = more equal)",
            ylabel="FPR Parity",
        )
    return out
