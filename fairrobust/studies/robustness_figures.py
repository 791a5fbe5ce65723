"""Figures of the robustness study, drawn from the output of ``robustness_tables.aggregate``.

Correlation heat maps (paper Figures 2-5), accuracy-vs-epsilon curves per group
(with bootstrap bands) and AUC_acc bars per group; ``fairrobust.figures.robustness``
draws them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust.figures import robustness as figs
from fairrobust.studies._store import slugify
from fairrobust.studies.robustness_tables import attacked_part, clean_part

__all__ = ["write_figures"]


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
      * ``<prefix>_auc_<attribute>.png``: AUC_acc per group for every model.

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
    for attr, mats in agg["matrices"].items():
        grp = groups[attr]
        labels = [
            f"{nm} (n={int(s)})"
            + ("" if v else ", small" if s < grp.min_size else ", few speakers")
            for nm, s, v in zip(grp.names, mats["sizes"], mats["valid"], strict=True)
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
                **band,
                title=f"{mid}: accuracy under PGD L-inf by {attr}",
            )
        name = f"auc_{slugify(attr)}"
        out[name] = figs.group_auc_bars(
            mats["auc"],
            ids,
            labels,
            fig_dir / f"{prefix}_{name}.png",
            excluded=excluded,
            title=f"AUC_acc per {attr} group (hatched: excluded as random guessing)",
        )
    return out
