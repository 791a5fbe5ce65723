"""Robustness bias (Nanda et al. 2021) from the robustness study's epsilon sweep.

Each evaluated example's smallest breaking epsilon
(``fairrobust.metrics.breaking_epsilon``: 0 if misclassified clean, the first
budget of the sweep at which PGD breaks it, ``+inf`` if never broken within the
sweep) is an UPPER BOUND of its minimal adversarial distance (PGD is an
upper-bound attack, the sweep is discrete). Per model, attribute and group: the
median breaking epsilon and the fraction never broken, with speaker-clustered
bootstrap intervals (``fairrobust.metrics.BreakingEpsStat``, the study's
``bootstrap_options``), and the gap between valid groups of each (max - min, with
``gap_interval``). Table ``robustness_<dataset>_breaking_eps``; figures
``<prefix>_breaking_eps_<attribute>.png``: the empirical CDF per group for the
clean baseline and the most robust model (``studies.selection``, the pair the
findings compare; the full grid would be dozens of panels).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust import metrics
from fairrobust.figures.layout import group_label
from fairrobust.figures.robustness import breaking_eps_cdf
from fairrobust.studies._store import attribute_slug
from fairrobust.studies.config import RobustnessConfig
from fairrobust.studies.robustness_tables import bootstrap_options, sweep_epsilons
from fairrobust.studies.selection import select_baseline, select_most_robust

__all__ = ["breaking_eps_figures", "breaking_eps_rows", "breaking_eps_table"]

_COORDS = ("member_id", "model", "at_eps", "noise_std", "preprocess")


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def breaking_eps_rows(
    breaking: np.ndarray,
    eps_max: float,
    groups: Mapping[str, Any],
    *,
    speakers: np.ndarray | None = None,
    bootstrap: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Per attribute and group: median breaking epsilon and fraction never broken, with gaps.

    Args:
      breaking: float ``[n]`` breaking epsilons of one model (``+inf`` = never broken).
      eps_max: the largest budget of the sweep.
      groups: attribute -> ``fairrobust.groups.Groups`` over the ``n`` examples.
      speakers: optional speaker id per example (bootstrap clusters).
      bootstrap: keyword arguments of ``metrics.bootstrap_ci`` (``bootstrap_options``),
        or None for no intervals.

    Returns:
      Rows with columns attribute, group, n, speakers, valid, median_breaking_eps
      (None when infinite: ``median_never_broken`` is then True), median_ci_low,
      median_ci_high (``+inf`` bounds written as None), never_broken,
      never_broken_ci_low, never_broken_ci_high, and the attribute's median_gap,
      median_gap_ci_low, median_gap_ci_high (None when a valid group's median or
      interval reaches ``+inf``), never_broken_gap, never_broken_gap_ci_low,
      never_broken_gap_ci_high.
    """
    del speakers  # carried by ``bootstrap``
    enc = np.asarray(metrics.encode_never(breaking, eps_max), np.float32)
    rows: list[dict[str, Any]] = []
    for grp in groups.values():
        masks = np.asarray(grp.masks, bool).reshape(-1, enc.shape[0])
        if masks.shape[0] == 0:
            continue
        valid = np.asarray(grp.valid, bool)
        stat = metrics.BreakingEpsStat(eps_max, tuple(valid.tolist()))
        if bootstrap:
            res = metrics.bootstrap_ci(stat, enc, masks, **bootstrap)
            est, low, high = res.estimate, res.lower, res.upper
        else:
            est, low, high = stat(enc, masks, None), None, None
        med = metrics.decode_never(np.asarray(est["median"]), eps_max)
        med_lo = None if low is None else metrics.decode_never(np.asarray(low["median"]), eps_max)
        med_hi = None if high is None else metrics.decode_never(np.asarray(high["median"]), eps_max)
        reaches_inf = bool(np.any(np.isinf(med[valid])))
        if med_hi is not None:
            reaches_inf |= bool(np.any(np.isinf(med_hi[valid])))
        gap = {
            "median_gap": None if reaches_inf else _num(est["median_gap"]),
            "median_gap_ci_low": None if reaches_inf or low is None else _num(low["median_gap"]),
            "median_gap_ci_high": None if reaches_inf or high is None else _num(high["median_gap"]),
            "never_broken_gap": _num(est["never_gap"]),
            "never_broken_gap_ci_low": None if low is None else _num(low["never_gap"]),
            "never_broken_gap_ci_high": None if high is None else _num(high["never_gap"]),
        }
        counts = grp.speaker_counts
        for j, name in enumerate(grp.names):
            rows.append(
                {
                    "attribute": grp.attribute,
                    "group": name,
                    "n": int(grp.sizes[j]),
                    "speakers": None if counts is None else int(counts[j]),
                    "valid": bool(valid[j]),
                    "median_breaking_eps": _num(med[j]),
                    "median_never_broken": bool(np.isinf(med[j])),
                    "median_ci_low": None if med_lo is None else _num(med_lo[j]),
                    "median_ci_high": None if med_hi is None else _num(med_hi[j]),
                    "never_broken": _num(np.asarray(est["never"])[j]),
                    "never_broken_ci_low": None if low is None else _num(low["never"][j]),
                    "never_broken_ci_high": None if high is None else _num(high["never"][j]),
                    **gap,
                }
            )
    return rows


def breaking_eps_table(
    members: Sequence[Mapping[str, Any]],
    correct: np.ndarray,
    attack_eps: Sequence[float],
    groups: Mapping[str, Any],
    *,
    config: RobustnessConfig,
    speakers: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The ``breaking_eps`` table: :func:`breaking_eps_rows` of every model.

    Args:
      members: member records (``member_id``, ``model``, ``at_eps``, ``noise_std``,
        ``preprocess``), in the order of ``correct``.
      correct: bool ``[m, 1 + e, n]`` (clean first; ``sweep_epsilons``).
      attack_eps: the ``e`` budgets.
      groups: attribute -> Groups.
      config: supplies ``bootstrap_resamples``, ``ci_level``, ``min_speakers``, ``seed``.
      speakers: optional speaker id per example.

    Returns:
      Rows: the member's coordinates, eps_max, then :func:`breaking_eps_rows`'s columns.
    """
    eps = sweep_epsilons(attack_eps)
    breaking = metrics.breaking_epsilon(correct, eps)  # [m, n]
    boot = None
    if config.bootstrap_resamples > 0:
        key = jax.random.fold_in(jax.random.key(config.seed), 0xB1A5)
        boot = bootstrap_options(config, key, speakers)
    rows: list[dict[str, Any]] = []
    for rec, b in zip(members, breaking, strict=True):
        coords = {k: rec.get(k) for k in _COORDS}
        for row in breaking_eps_rows(b, eps[-1], groups, speakers=speakers, bootstrap=boot):
            rows.append({**coords, "eps_max": eps[-1], **row})
    return rows


def breaking_eps_figures(
    models_rows: Sequence[Mapping[str, Any]],
    members: Sequence[Mapping[str, Any]],
    correct: np.ndarray,
    attack_eps: Sequence[float],
    groups: Mapping[str, Any],
    fig_dir: str | os.PathLike[str],
    *,
    prefix: str,
    config: RobustnessConfig | None = None,
    speakers: np.ndarray | None = None,
) -> dict[str, Path]:
    """``<prefix>_breaking_eps_<attribute>.png``: CDF per group, baseline and most robust model.

    With ``config`` (``bootstrap_resamples`` > 0) each curve gets pointwise bootstrap
    intervals (:class:`fairrobust.metrics.BreakingCdfStat`, clustered by ``speakers``,
    the study's resamples and level); groups with too few speakers get none.

    Returns:
      ``{"breaking_eps_<attribute>": path}``.
    """
    eps = sweep_epsilons(attack_eps)
    ids = [r["member_id"] for r in members]
    chosen: list[str] = []
    for pick in (select_baseline(models_rows), select_most_robust(models_rows)):
        if pick is not None and pick["member_id"] in ids and pick["member_id"] not in chosen:
            chosen.append(pick["member_id"])
    idx = [ids.index(c) for c in chosen]
    breaking = metrics.breaking_epsilon(np.asarray(correct)[idx], eps)
    roles = ["baseline", "most robust"] if len(idx) == 2 else ["baseline = most robust"][: len(idx)]
    labels = [f"{role}: {mid}" for role, mid in zip(roles, chosen, strict=True)]
    out: dict[str, Path] = {}
    for attr, grp in groups.items():
        if not grp.num_groups:
            continue
        s = attribute_slug(attr)
        names = [
            group_label(g, int(n), bool(v), "too small" if n < grp.min_size else "too few speakers")
            for g, n, v in zip(grp.names, grp.sizes, np.asarray(grp.valid), strict=True)
        ]
        path = Path(fig_dir) / f"{prefix}_breaking_eps_{s}.png"
        bands = None
        if config is not None and config.bootstrap_resamples > 0:
            key = jax.random.fold_in(jax.random.key(config.seed), 0xCDF)
            stat = metrics.BreakingCdfStat(tuple(eps))
            res = [
                metrics.bootstrap_ci(
                    stat, jnp.asarray(b), grp.masks, **bootstrap_options(config, key, speakers)
                )
                for b in breaking
            ]
            bands = np.stack(
                [
                    np.stack([np.asarray(r.lower["cdf"]), np.asarray(r.upper["cdf"])], -1)
                    for r in res
                ]
            )
        out[f"breaking_eps_{s}"] = breaking_eps_cdf(
            eps, breaking, np.asarray(grp.masks, bool), path,
            panel_labels=labels, group_labels=names, valid=list(np.asarray(grp.valid, bool)),
            bands=bands,
            title=f"Smallest breaking epsilon by {attr} (upper bound; PGD)",
        )  # fmt: skip
    return out
