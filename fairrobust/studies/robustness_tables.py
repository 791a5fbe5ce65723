"""Tables of the robustness study, from per-example robust correctness (pure, no I/O).

Every array of the study has an epsilon axis whose first entry is the clean
pass: per-example correctness ``[..., 1 + e, n]`` (and group accuracy curves
``[..., 1 + e, g]``) hold epsilon 0 first, then each attack budget.
:func:`sweep_epsilons` is the one place where epsilon 0 is added to the attack
budgets, and :func:`clean_part` / :func:`attacked_part` the one place where the
axis is taken apart again.

From the correctness of every member, :func:`aggregate` builds the study's
tables: per model clean accuracy, AUC_acc and the random-guessing test
(:func:`random_guess_test`); per group AUC_acc (paper Eq. 1) and per attribute
Defense Parity (Eq. 2), through ``fairrobust.metrics.auc_acc_by_attribute``,
with bootstrap intervals (``AucAccStat`` / ``GroupRateStat``); accuracy-vs-epsilon
curves; and the Pearson correlations of the interventions
(:func:`intervention_codes`) with Defense Parity and each group's AUC_acc
(:func:`correlation_rows`, paper Figures 2-5).

AUC_acc is written twice: ``auc_acc`` is the raw integral of Eq. 1 over the
attack budgets ``[eps_min, eps_max]`` (its size depends on that range: over
[0.001, 0.1] it is at most 0.099), and ``auc_acc_normalized`` is the same divided
by ``eps_max - eps_min``, the mean accuracy over the budget range, in [0, 1], so
runs with different budget grids can be compared. Its interval bounds and
Defense Parity (``defense_parity_normalized``) are scaled by the same constant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from fairrobust.metrics import (
    AucAccStat,
    GroupRateStat,
    auc_acc,
    auc_acc_by_attribute,
    bootstrap_ci,
    group_rates,
    pearsonr,
)
from fairrobust.studies._store import format_value
from fairrobust.studies.config import RobustnessConfig
from fairrobust.studies.intervals import (
    apply_holm,
    comparison_rows,
    gap_replicates,
    scaled_replicates,
)
from fairrobust.studies.selection import select_baseline, select_most_robust

__all__ = [
    "BINARY_INTERVENTIONS",
    "LEVEL_INTERVENTIONS",
    "aggregate",
    "attacked_part",
    "bootstrap_options",
    "clean_part",
    "comparisons",
    "correlation_rows",
    "intervention_codes",
    "majority_rate",
    "random_guess_test",
    "sweep_epsilons",
]

#: Binary intervention codes (paper Figures 2 and 4), in column order.
BINARY_INTERVENTIONS = ("AT", "Tricks", "Noise", "Preprocess")
#: Intervention levels (paper Figures 3 and 5), in column order.
LEVEL_INTERVENTIONS = ("AT budget", "Noise std")


# ============================================================================ the epsilon axis


def sweep_epsilons(attack_eps: Iterable[float]) -> tuple[float, ...]:
    """The evaluated epsilon grid: 0 (the clean pass), then the attack budgets.

    The only place where the clean pass joins the sweep: members are attacked at
    these epsilons, their correctness arrays and member files follow this order,
    and the tables read it back with :func:`clean_part` / :func:`attacked_part`.

    Args:
      attack_eps: the attack budgets ``[e]`` (> 0, increasing).

    Returns:
      ``(0.0, *attack_eps)`` as floats, length ``1 + e``.
    """
    return (0.0, *(float(e) for e in attack_eps))


def clean_part(values: Any) -> Any:
    """The clean pass (epsilon 0) of an array ``[..., 1 + e, k]`` -> ``[..., k]``."""
    return values[..., 0, :]


def attacked_part(values: Any) -> Any:
    """The attacked passes of an array ``[..., 1 + e, k]`` -> ``[..., e, k]``."""
    return values[..., 1:, :]


# ============================================================================ models


def random_guess_test(
    n_correct: np.ndarray,
    n: int,
    num_classes: int,
    level: float = 0.05,
    *,
    chance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Is clean accuracy indistinguishable from random guessing?

    One-sided exact binomial test of H0: accuracy = chance against H1: accuracy >
    chance, where chance is ``1 / num_classes`` or the given ``chance`` (the
    studies pass the majority-class rate of the evaluated clips, which is larger
    when some classes are rare or absent) (``scipy.stats.binomtest``,
    ``alternative="greater"``). A model is *excluded* when p > ``level``; such a
    model "withstands" any attack trivially and would distort correlations
    (paper section 5.1: 15 of 40 models on AudioMNIST).

    Args:
      n_correct: int ``[m]``, correct clean predictions per model.
      n: number of evaluated examples (> 0).
      num_classes: number of classes (>= 2).
      level: significance level in (0, 1).
      chance: accuracy of the guesser in H0 (default ``1 / num_classes``).

    Returns:
      ``(pvalues [m], excluded [m] bool)``.

    Raises:
      ValueError: ``n < 1``, ``num_classes < 2``, counts outside [0, n].
    """
    k = np.atleast_1d(np.asarray(n_correct))
    if n < 1:
        raise ValueError(f"n: expected >= 1 evaluated examples, got {n}")
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"n_correct: expected counts in [0, {n}], got {k.tolist()}")
    c = 1.0 / num_classes if chance is None else float(chance)
    if not 0.0 < c < 1.0:
        raise ValueError(f"chance: expected a number in (0, 1), got {chance!r}")
    p = np.asarray(
        [scipy.stats.binomtest(int(ki), n, c, alternative="greater").pvalue for ki in k],
        dtype=float,
    )
    return p, p > level


def majority_rate(labels: np.ndarray) -> float:
    """The accuracy of always guessing the most frequent label (>= 1 / classes present)."""
    y = np.asarray(labels).reshape(-1)
    if y.size == 0:
        raise ValueError("labels: expected at least one label")
    return float(np.unique(y, return_counts=True)[1].max() / y.size)


def _coords(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The grid coordinates of a member record (the first columns of most tables)."""
    return {
        "member_id": rec["member_id"],
        "model": rec["model"],
        "at_eps": float(rec["at_eps"]),
        "noise_std": float(rec["noise_std"]),
        "preprocess": rec["preprocess"],
    }


def _models_rows(
    members: Sequence[Mapping[str, Any]],
    correct: np.ndarray,
    eps: np.ndarray,
    pvals: np.ndarray,
    excluded: np.ndarray,
) -> list[dict[str, Any]]:
    """The ``models`` table: one row per member over all evaluated examples."""
    m, n = correct.shape[0], correct.shape[-1]
    values = jnp.asarray(attacked_part(correct), jnp.float32)
    eps_j = jnp.asarray(eps, jnp.float32)
    everyone = jnp.ones((1, n), bool)
    clean_acc = clean_part(correct).mean(axis=1) if n else np.full(m, np.nan)
    overall_auc = np.asarray(auc_acc(values, eps_j, everyone))[:, 0]
    overall_auc_norm = np.asarray(auc_acc(values, eps_j, everyone, normalize=True))[:, 0]
    attacked_acc = attacked_part(correct).mean(axis=-1)  # [m, e]
    rows = []
    for i, rec in enumerate(members):
        row = {
            **_coords(rec),
            "preprocess_description": rec.get("preprocess_description", ""),
            "bpda": bool(rec.get("bpda", False)),
            "n_test": n,
            "clean_accuracy": float(clean_acc[i]),
            "auc_acc": float(overall_auc[i]),
            "auc_acc_normalized": float(overall_auc_norm[i]),
        }
        for j, e in enumerate(eps):
            row[f"acc@{format_value(float(e))}"] = float(attacked_acc[i, j])
        row["random_guess_p"] = float(pvals[i])
        row["excluded"] = bool(excluded[i])
        rows.append(row)
    return rows


# ============================================================================ correlations


def intervention_codes(members: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Numeric intervention codes per model for the correlation analyses.

    Binary (paper Figures 2, 4): ``AT`` (at_eps > 0), ``Tricks`` (M5-Tricks),
    ``Noise`` (noise_std > 0), ``Preprocess`` (any defense other than "none"),
    plus one ``Preprocess: <spec>`` column per defense when the grid has several.
    Levels (paper Figures 3, 5): ``AT budget`` and ``Noise std``.

    Args:
      members: records with keys ``model``, ``at_eps``, ``noise_std``, ``preprocess``.

    Returns:
      ``{"binary": {name: float [m]}, "level": {name: float [m]}}``.
    """
    at = np.asarray([float(m["at_eps"]) for m in members])
    noise = np.asarray([float(m["noise_std"]) for m in members])
    tricks = np.asarray([m["model"] == "m5-tricks" for m in members], dtype=float)
    pre = [str(m["preprocess"]) for m in members]
    binary = {
        "AT": (at > 0).astype(float),
        "Tricks": tricks,
        "Noise": (noise > 0).astype(float),
        "Preprocess": np.asarray([p != "none" for p in pre], dtype=float),
    }
    kinds = [p for p in dict.fromkeys(pre) if p != "none"]
    if len(kinds) > 1:
        for kind in kinds:
            binary[f"Preprocess: {kind}"] = np.asarray([p == kind for p in pre], dtype=float)
    return {"binary": binary, "level": {"AT budget": at, "Noise std": noise}}


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """Pearson r, two-sided p (``fairrobust.metrics.pearsonr``); NaN and a reason if undefined."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan"), float("nan"), f"fewer than 3 models ({x.size})"
    if np.ptp(x) == 0:
        return float("nan"), float("nan"), "intervention constant across models"
    if np.ptp(y) == 0:
        return float("nan"), float("nan"), "outcome constant across models"
    r, p = pearsonr(np.asarray(x, np.float32), np.asarray(y, np.float32))
    return float(r), float(p), ""


def correlation_rows(
    codes: Mapping[str, Mapping[str, np.ndarray]],
    outcomes: Sequence[tuple[Mapping[str, Any], np.ndarray]],
    include: np.ndarray,
) -> list[dict[str, Any]]:
    """Pearson r, p and n of every intervention code against every outcome.

    Args:
      codes: from :func:`intervention_codes`, arrays ``[m]``.
      outcomes: ``(labels, values [m])`` pairs; ``labels`` (e.g.
        ``{"outcome": "defense_parity", "attribute": "gender", "group": ""}``)
        are copied into each row. NaN values (undefined outcome) are dropped.
      include: bool ``[m]``, models to use (the non-excluded ones).

    Returns:
      Rows with the labels plus ``intervention``, ``kind`` (``"binary"`` or
      ``"level"``), ``r``, ``p``, ``n_models`` and ``note`` (why r is NaN).
    """
    include = np.asarray(include, bool)
    rows = []
    for labels, values in outcomes:
        y = np.asarray(values, float)[include]
        for kind in ("binary", "level"):
            for name, x in codes[kind].items():
                x_in = np.asarray(x, float)[include]
                r, p, note = _pearson(x_in, y)
                rows.append(
                    {
                        **labels,
                        "intervention": name,
                        "kind": kind,
                        "r": r,
                        "p": p,
                        "n_models": int(np.isfinite(y).sum()),
                        "note": note,
                    }
                )
    return rows


# ============================================================================ groups


def bootstrap_options(
    config: RobustnessConfig, key: jax.Array, speakers: np.ndarray | None
) -> dict[str, Any]:
    """Keyword arguments of ``metrics.bootstrap_ci`` for the robustness study's intervals.

    ``config.bootstrap_resamples`` resamples at ``config.ci_level``, clustered by
    ``speakers`` when given, in batches of at most 50; groups with fewer than
    ``config.min_speakers`` speakers get no interval. The soundness
    study uses the same, so its intervals are comparable with the study's.
    """
    return {
        "key": key,
        "num_resamples": config.bootstrap_resamples,
        "level": config.ci_level,
        "speakers": speakers,
        "batch_size": min(config.bootstrap_resamples, 50),
        "min_clusters": config.min_speakers,
    }


def _bootstrap(
    values: jax.Array,
    eps: np.ndarray,
    groups: Any,
    speakers: np.ndarray | None,
    config: RobustnessConfig,
) -> dict[str, np.ndarray] | None:
    """Bootstrap intervals of group AUC_acc, Defense Parity and clean accuracy, and replicates.

    Resampling is stratified by this attribute's groups and clustered by speaker when
    speakers are known (``fairrobust.metrics.bootstrap_ci``); all models share the
    resamples, so their replicates are paired. Group intervals are percentile
    intervals (none for groups under ``config.min_speakers`` speakers); Defense
    Parity and the clean-accuracy gap get ``fairrobust.metrics.gap_interval``.

    Returns:
      ``{"auc_low", "auc_high", "acc_low", "acc_high"}`` ``[m, g]``,
      ``{"dp_low", "dp_high", "gap_low", "gap_high"}`` ``[m]``,
      ``{"curve_low", "curve_high"}`` ``[m, 1 + e, g]`` (group accuracy at every
      epsilon, clean first), and for paired comparisons the estimates and replicates
      ``auc_est [m, g]``, ``auc_samples [R, m, g]``, ``dp_est [m]``,
      ``dp_samples [R, m]``; None when ``config.bootstrap_resamples == 0``.
    """
    if config.bootstrap_resamples <= 0:
        return None
    key = jax.random.fold_in(jax.random.key(config.seed), 0xB007)
    valid = tuple(bool(v) for v in np.asarray(groups.valid))
    kw = bootstrap_options(config, key, speakers)
    stat = AucAccStat(tuple(map(float, eps)), valid)
    auc = bootstrap_ci(stat, attacked_part(values), groups.masks, return_samples=True, **kw)
    acc = bootstrap_ci(GroupRateStat(valid), clean_part(values), groups.masks, **kw)
    curves = bootstrap_ci(GroupRateStat(valid), values, groups.masks, **kw)
    return {
        "curve_low": np.asarray(curves.lower["rates"]),
        "curve_high": np.asarray(curves.upper["rates"]),
        "auc_low": np.asarray(auc.lower["auc_acc"]),
        "auc_high": np.asarray(auc.upper["auc_acc"]),
        "dp_low": np.asarray(auc.lower["defense_parity"]),
        "dp_high": np.asarray(auc.upper["defense_parity"]),
        "acc_low": np.asarray(acc.lower["rates"]),
        "acc_high": np.asarray(acc.upper["rates"]),
        "gap_low": np.asarray(acc.lower["parity"]),
        "gap_high": np.asarray(acc.upper["parity"]),
        # replicates on the same resamples for every model: paired comparisons
        "auc_est": np.asarray(auc.estimate["auc_acc"]),
        "auc_samples": np.asarray(auc.samples["auc_acc"]),
        "dp_est": np.asarray(auc.estimate["defense_parity"]),
        "dp_samples": np.asarray(auc.samples["defense_parity"]),
    }


def _group_rows(attr: str, grp: Any) -> list[dict[str, Any]]:
    """The ``groups`` table rows of one attribute: size and validity of each group."""
    speakers = grp.speaker_counts
    return [
        {
            "attribute": attr,
            "group": name,
            "n_test": int(size),
            "n_speakers": None if speakers is None else int(speakers[j]),
            "valid": bool(ok),
            "note": grp.reason(j),
        }
        for j, (name, size, ok) in enumerate(
            zip(grp.names, np.asarray(grp.sizes), grp.valid, strict=True)
        )
    ]


def _no_group_rows(attr: str, coords: Sequence[Mapping[str, Any]], excluded: np.ndarray):
    """``defense_parity`` rows of an attribute without any group (every value unknown)."""
    return [
        {
            **c,
            "excluded": bool(excluded[i]),
            "attribute": attr,
            "defense_parity": float("nan"),
            "defense_parity_normalized": float("nan"),
            "clean_accuracy_gap": float("nan"),
            "n_valid_groups": 0,
            "best_group": "",
            "worst_group": "",
            "ignored_groups": [],
            "note": "no groups (all unknown)",
        }
        for i, c in enumerate(coords)
    ]


def _parity_row(
    base: Mapping[str, Any],
    grp: Any,
    auc: np.ndarray,
    clean: np.ndarray,
    dp: float,
    ci: Mapping[str, np.ndarray] | None,
    i: int,
) -> dict[str, Any]:
    """One ``defense_parity`` row: model ``i``, one attribute (``auc``, ``clean`` ``[g]``)."""
    valid = np.asarray(grp.valid)
    vidx = np.flatnonzero(valid)
    row = {
        **base,
        "defense_parity": float(dp),
        "clean_accuracy_gap": float("nan"),
        "n_valid_groups": int(vidx.size),
        "best_group": "",
        "worst_group": "",
        "ignored_groups": [nm for nm, ok in zip(grp.names, valid, strict=True) if not ok],
        "note": "",
    }
    if vidx.size >= 2:
        a = auc[vidx]
        if a.max() > a.min():
            row["best_group"] = grp.names[vidx[int(np.argmax(a))]]
            row["worst_group"] = grp.names[vidx[int(np.argmin(a))]]
        else:
            row["note"] = "all valid groups have the same AUC_acc"
        c = clean[vidx]
        row["clean_accuracy_gap"] = float(c.max() - c.min())
    else:
        row["defense_parity"] = float("nan")
        row["note"] = (
            f"fewer than 2 groups with >= {grp.min_size} clips and >= {grp.min_speakers} speakers"
        )
    if ci is not None:
        row["defense_parity_ci_low"] = float(ci["dp_low"][i])
        row["defense_parity_ci_high"] = float(ci["dp_high"][i])
        row["clean_accuracy_gap_ci_low"] = float(ci["gap_low"][i])
        row["clean_accuracy_gap_ci_high"] = float(ci["gap_high"][i])
    return row


def _normalized(row: dict[str, Any], width: float) -> dict[str, Any]:
    """``row`` with ``defense_parity_normalized`` (and its interval): Defense Parity / ``width``."""
    for key in ("defense_parity", "defense_parity_ci_low", "defense_parity_ci_high"):
        if key in row:
            row[key.replace("defense_parity", "defense_parity_normalized")] = row[key] / width
    return row


def _attribute_tables(
    attr: str,
    grp: Any,
    auc: np.ndarray,
    dp: np.ndarray,
    curves: np.ndarray,
    ci: Mapping[str, np.ndarray] | None,
    coords: Sequence[Mapping[str, Any]],
    excluded: np.ndarray,
    eps: np.ndarray,
) -> dict[str, list[dict[str, Any]]]:
    """``group_metrics``, ``group_curves`` and ``defense_parity`` rows of one attribute.

    ``auc`` ``[m, g]``, ``dp`` ``[m]`` and ``curves`` ``[m, 1 + e, g]`` hold every model;
    ``eps`` ``[e]`` are the attack budgets. Besides the raw AUC_acc and Defense Parity,
    rows carry ``auc_acc_normalized`` / ``defense_parity_normalized`` (with scaled
    intervals): the raw numbers divided by ``eps[-1] - eps[0]``.
    """
    sizes, valid = np.asarray(grp.sizes), np.asarray(grp.valid)
    grid = sweep_epsilons(eps)
    width = float(eps[-1] - eps[0])  # the range AUC_acc integrates over (> 0: >= 2 budgets)
    clean = clean_part(curves)  # [m, g]
    metric_rows, curve_rows, dp_rows = [], [], []
    for i, c in enumerate(coords):
        base = {**c, "excluded": bool(excluded[i]), "attribute": attr}
        for g, name in enumerate(grp.names):
            row = {
                **base,
                "group": name,
                "n": int(sizes[g]),
                "valid": bool(valid[g]),
                "clean_accuracy": float(clean[i, g]),
                "auc_acc": float(auc[i, g]),
                "auc_acc_normalized": float(auc[i, g]) / width,
            }
            if ci is not None:
                row["clean_accuracy_ci_low"] = float(ci["acc_low"][i, g])
                row["clean_accuracy_ci_high"] = float(ci["acc_high"][i, g])
                row["auc_acc_ci_low"] = float(ci["auc_low"][i, g])
                row["auc_acc_ci_high"] = float(ci["auc_high"][i, g])
                row["auc_acc_normalized_ci_low"] = float(ci["auc_low"][i, g]) / width
                row["auc_acc_normalized_ci_high"] = float(ci["auc_high"][i, g]) / width
            metric_rows.append(row)
            for j, epsilon in enumerate(grid):
                curve_row = {
                    "member_id": c["member_id"],
                    "attribute": attr,
                    "group": name,
                    "n": int(sizes[g]),
                    "valid": bool(valid[g]),
                    "epsilon": epsilon,
                    "accuracy": float(curves[i, j, g]),
                }
                if ci is not None:
                    curve_row["ci_low"] = float(ci["curve_low"][i, j, g])
                    curve_row["ci_high"] = float(ci["curve_high"][i, j, g])
                curve_rows.append(curve_row)
        dp_rows.append(_normalized(_parity_row(base, grp, auc[i], clean[i], dp[i], ci, i), width))
    return {"group_metrics": metric_rows, "group_curves": curve_rows, "defense_parity": dp_rows}


def comparisons(
    models: Sequence[Mapping[str, Any]],
    cis: Mapping[str, Mapping[str, np.ndarray]],
    groups: Mapping[str, Any],
    level: float,
    *,
    width: float = 1.0,
) -> list[dict[str, Any]]:
    """Paired comparisons with the clean baseline, per attribute, Holm-corrected per family.

    Families (``family`` column): ``defense_parity_vs_baseline`` (every other
    non-excluded model's Defense Parity minus the baseline's) and
    ``group_auc_acc_robust_vs_baseline`` (each valid group's AUC_acc, most robust
    model minus baseline). Every difference is on the same clips and the same
    bootstrap resamples (:func:`fairrobust.studies.intervals.comparison_rows`), with the
    small-cluster correction of :func:`~fairrobust.studies.intervals.scaled_replicates`; the
    baseline and most robust model are :mod:`fairrobust.studies.selection`'s.

    Args:
      models: the ``models`` table.
      cis: attribute -> the study's bootstrap record (``auc_est [m, g]``,
        ``auc_samples [R, m, g]``, ``dp_est [m]``, ``dp_samples [R, m]``).
      groups: attribute -> ``fairrobust.groups.Groups``.
      level: interval level (Holm at ``1 - level``).
      width: ``eps_max - eps_min`` of the attack budgets; each row also gets
        ``value``, ``reference_value``, ``difference``, ``ci_low`` and ``ci_high``
        divided by it (``*_normalized``: the difference of normalised AUC_acc or
        Defense Parity; p-values do not change).
    """
    base, best = select_baseline(models), select_most_robust(models)
    if base is None:
        return []
    ids = [m["member_id"] for m in models]
    b = ids.index(base["member_id"])
    others = [i for i, m in enumerate(models) if i != b and not m.get("excluded")]
    rows: list[dict[str, Any]] = []
    for attr, ci in cis.items():
        grp = groups[attr]
        # small-cluster correction, as for the parity intervals; the Defense Parity
        # replicates are recomputed from the corrected group replicates
        auc_s = scaled_replicates(ci["auc_est"], ci["auc_samples"], grp.speaker_counts)
        dp_s = gap_replicates(auc_s, np.asarray(grp.valid))
        if others:
            head = {
                "family": "defense_parity_vs_baseline",
                "statistic": "defense_parity",
                "attribute": attr,
                "group": "",
                "member_id": [ids[i] for i in others],
                "reference_id": ids[b],
            }
            ref = [b] * len(others)
            rows += comparison_rows(
                head,
                ci["dp_est"][others],
                dp_s[:, others],
                ci["dp_est"][ref],
                dp_s[:, ref],
                level=level,
            )
        if best is not None and best["member_id"] != base["member_id"]:
            r = ids.index(best["member_id"])
            gv = np.flatnonzero(np.asarray(grp.valid))
            if gv.size:
                head = {
                    "family": "group_auc_acc_robust_vs_baseline",
                    "statistic": "auc_acc",
                    "attribute": attr,
                    "group": [grp.names[g] for g in gv],
                    "member_id": ids[r],
                    "reference_id": ids[b],
                }
                rows += comparison_rows(
                    head,
                    ci["auc_est"][r, gv],
                    auc_s[:, r, gv],
                    ci["auc_est"][b, gv],
                    auc_s[:, b, gv],
                    level=level,
                )
    for row in rows:
        for k in ("value", "reference_value", "difference", "ci_low", "ci_high"):
            row[f"{k}_normalized"] = None if row[k] is None else row[k] / width
    return apply_holm(rows, 1.0 - level)


def aggregate(
    members: Sequence[Mapping[str, Any]],
    correct: np.ndarray,
    attack_eps: Sequence[float],
    groups: Mapping[str, Any],
    *,
    num_classes: int,
    config: RobustnessConfig,
    speakers: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """All tables of the study from per-example correctness (pure, no I/O).

    Per attribute, AUC_acc of every group and Defense Parity come from one
    ``fairrobust.metrics.auc_acc_by_attribute`` reduction over every model.

    Args:
      members: per model a record with ``member_id``, ``model``, ``at_eps``,
        ``noise_std``, ``preprocess`` (and optionally ``preprocess_description``).
      correct: bool ``[m, 1 + e, n]``: robust correctness of every model on every
        evaluated example at :func:`sweep_epsilons` (clean first).
      attack_eps: the ``e`` attack budgets, increasing, > 0.
      groups: attribute -> :class:`fairrobust.groups.Groups` built on the same
        ``n`` examples.
      num_classes: number of classes (chance = 1 / num_classes).
      config: the :class:`fairrobust.studies.config.RobustnessConfig`; supplies
        ``random_guess_level``, ``bootstrap``, ``ci_level`` and ``seed``.
      speakers: optional str ``[n]`` speaker of each example (bootstrap clusters).
      labels: optional int ``[n]`` labels; the random-guessing test then uses their
        majority-class rate as chance (else ``1 / num_classes``).

    Returns:
      ``{"tables": {name: rows}, "matrices": {...}}`` with tables ``models``,
      ``groups``, ``group_metrics``, ``group_curves``, ``defense_parity``,
      ``correlations`` (see ``fairrobust.studies.robustness.run_study`` for the
      columns) and matrices for the figures: per attribute ``auc [m, g]`` and
      ``curves [m, 1 + e, g]``.

    Raises:
      ValueError: shapes of ``correct``, ``members`` and ``attack_eps`` disagree.
    """
    correct = np.asarray(correct).astype(bool)
    eps = np.asarray(attack_eps, dtype=float)
    m = len(members)
    steps = len(sweep_epsilons(eps))
    if correct.ndim != 3 or correct.shape[:2] != (m, steps):
        raise ValueError(
            f"correct: expected shape (models={m}, 1 + n_eps={steps}, n), got {correct.shape}"
        )
    n = correct.shape[2]
    values = jnp.asarray(correct, jnp.float32)
    chance = majority_rate(labels) if labels is not None else 1.0 / num_classes
    pvals, excluded = random_guess_test(
        clean_part(correct).sum(axis=1), n, num_classes, config.random_guess_level,
        chance=min(chance, 1.0 - 1e-9),
    )  # fmt: skip
    coords = [_coords(rec) for rec in members]
    present = {attr: grp for attr, grp in groups.items() if grp.num_groups}
    by_attr = (
        auc_acc_by_attribute(attacked_part(values), jnp.asarray(eps, jnp.float32), present)
        if present
        else {}
    )
    tables: dict[str, list[dict[str, Any]]] = {
        "models": _models_rows(members, correct, eps, pvals, excluded),
        "groups": [row for attr, grp in groups.items() for row in _group_rows(attr, grp)],
        "group_metrics": [],
        "group_curves": [],
        "defense_parity": [],
    }
    outcomes: list[tuple[Mapping[str, Any], np.ndarray]] = []
    matrices: dict[str, dict[str, np.ndarray]] = {}
    cis: dict[str, dict[str, np.ndarray]] = {}
    for attr, grp in groups.items():
        if attr not in by_attr:
            tables["defense_parity"] += _no_group_rows(attr, coords, excluded)
            continue
        auc = np.asarray(by_attr[attr].values)  # [m, g]
        dp = np.asarray(by_attr[attr].parity)  # [m]
        curves = np.asarray(group_rates(values, grp.masks))  # [m, 1 + e, g]
        ci = _bootstrap(values, eps, grp, speakers, config)
        valid = np.asarray(grp.valid)
        matrices[attr] = {
            "auc": auc,
            "curves": curves,
            "valid": valid,
            "sizes": np.asarray(grp.sizes),
        }
        if ci is not None:
            matrices[attr]["curves_low"] = ci["curve_low"]
            matrices[attr]["curves_high"] = ci["curve_high"]
            cis[attr] = ci
        parts = _attribute_tables(attr, grp, auc, dp, curves, ci, coords, excluded, eps)
        for name, rows in parts.items():
            tables[name] += rows
        dp_vals = np.asarray([r["defense_parity"] for r in parts["defense_parity"]], float)
        outcomes.append(({"outcome": "defense_parity", "attribute": attr, "group": ""}, dp_vals))
        outcomes += [
            ({"outcome": "group_auc_acc", "attribute": attr, "group": name}, auc[:, g])
            for g, name in enumerate(grp.names)
            if valid[g]
        ]
    tables["correlations"] = correlation_rows(intervention_codes(members), outcomes, ~excluded)
    tables["comparisons"] = comparisons(
        tables["models"], cis, groups, config.ci_level, width=float(eps[-1] - eps[0])
    )
    return {
        "tables": tables,
        "matrices": matrices,
        "excluded": excluded,
        "random_guess_p": pvals,
        "chance": float(chance),
    }
