"""Classic group-fairness metrics of both studies, with speaker-clustered bootstrap intervals.

Per attribute, from the predicted classes of every evaluated clip: demographic
parity difference and ratio, equalized odds difference and the p-rule
(``fairrobust.metrics.fairness_metrics``, fairlearn's vocabulary), clean and under
each attack budget (robustness study) or with rejection (rejection study).

What "positive" means. The tasks are multi-class keyword recognition, so there is
no single positive class: every metric is computed one-vs-rest per class ``c``
(selected = "predicted class c", positive = "true class c") and averaged over the
classes (``average="mean"``; for two classes, fairlearn's positive class 1 alone).
A rejected (abstained) clip predicts no class: it selects nothing, is a false
negative for its true class and a true negative for every other one. So:

* demographic parity difference = mean over classes of ``max_s P(yhat=c|s) -
  min_s P(yhat=c|s)``; ratio = mean of ``min_s / max_s``; p-rule = 100 x ratio;
* equalized odds difference = mean over classes of ``max(TPR gap, FPR gap)``, with
  ``TPR_s(c) = P(yhat=c | y=c, s)``, ``FPR_s(c) = P(yhat=c | y!=c, s)``.

Rejection lowers the selection rates and TPRs of the groups it rejects more, which
these metrics then show; the binary readings of rejection ("accepted" or "accepted
and correct" as the positive outcome, every clean clip a legitimate user) are the
false-rejection rates and accuracies the rejection study already reports per group
(FPR Parity, ``rejection_accuracy``), so they are not repeated here.

Groups: only an attribute's valid groups (``Groups.valid``: at least
``min_group_size`` clips and ``min_speakers`` speakers) enter a metric; the others
are named in ``groups_excluded``. An attribute with fewer than two valid groups gets
one row per model with ``metric = "not computable"`` and a note, never an error.

Intervals: one ``metrics.bootstrap_ci`` per (model, attribute) with
:class:`fairrobust.metrics.FairnessStat` (resampling speakers within the attribute's
groups, the same key for every model of a study, so resamples are shared), turned
into metric intervals by :func:`fairrobust.metrics.fairness_intervals` (sup-t bands,
the small-cluster correction of the parity intervals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairrobust import metrics
from fairrobust.studies._store import format_value
from fairrobust.studies.rejection_tables import finite_or_none
from fairrobust.studies.selection import select_baseline, select_most_robust

__all__ = [
    "AVERAGE",
    "COLUMNS",
    "fairness_rows",
    "rejection_conditions",
    "rejection_fairness",
    "robustness_fairness",
]

#: How the per-class values are combined (``metrics.fairness_metrics(average=...)``).
AVERAGE = "mean"

#: Columns of ``results/*_fairness.{csv,json}``, in order.
COLUMNS = (
    "study",
    "member",
    "role",
    "attribute",
    "condition",
    "condition_value",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n_clips",
    "n_speakers",
    "n_groups",
    "groups_used",
    "groups_excluded",
    "average",
    "note",
)


def _used(grp: Any, speakers: np.ndarray | None) -> dict[str, Any]:
    """Clips, speakers and names of the valid groups of ``grp`` (the ones a metric uses)."""
    valid = np.asarray(grp.valid, bool)
    masks = np.asarray(grp.masks, bool)
    clips = masks[valid].any(axis=0) if valid.any() else np.zeros(masks.shape[1], bool)
    n_spk = None if speakers is None else int(np.unique(np.asarray(speakers)[clips]).size)
    return {
        "n_clips": int(clips.sum()),
        "n_speakers": n_spk,
        "n_groups": int(valid.sum()),
        "groups_used": [n for n, ok in zip(grp.names, valid, strict=True) if ok],
        "groups_excluded": [
            f"{n} ({grp.reason(j)})" for j, (n, ok) in enumerate(zip(grp.names, valid, strict=True))
            if not ok
        ],
    }  # fmt: skip


def fairness_rows(
    study: str,
    members: Sequence[Mapping[str, Any]],
    conditions: Sequence[tuple[str, float | None]],
    pred: np.ndarray,
    y: np.ndarray,
    groups: Mapping[str, Any],
    num_classes: int,
    *,
    speakers: np.ndarray | None = None,
    bootstrap: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the fairness table: every member x attribute x condition x metric.

    Point values of every member and condition are one batched
    ``metrics.fairness_metrics`` reduction per attribute over ``pred [m, k, n]``;
    intervals one ``bootstrap_ci`` (:class:`~fairrobust.metrics.FairnessStat`) per
    member and attribute, on the same resamples for every member.

    Args:
      study: ``"robustness"`` or ``"rejection"`` (the ``study`` column).
      members: per member ``{"member": name, "role": ...}`` (``m`` entries).
      conditions: ``k`` pairs ``(label, value)``: ``("clean", 0.0)``,
        ``("eps=0.01", 0.01)``, ``("threshold=0.5", 0.5)``, ``("no rejection", None)``.
      pred: int predictions ``[m, k, n]`` in ``[-1, num_classes)`` (-1 = rejected).
      y: int labels ``[n]``.
      groups: attribute -> ``fairrobust.groups.Groups`` over the ``n`` clips.
      num_classes: number of classes ``C``.
      speakers: speaker of each clip ``[n]`` (bootstrap clusters, ``n_speakers``).
      bootstrap: keyword arguments of ``metrics.bootstrap_ci`` (``key``,
        ``num_resamples``, ``level``, ``speakers``, ...; ``min_clusters`` is the
        fewest speakers a used group needs for an interval); None: no intervals.

    Returns:
      Rows with the :data:`COLUMNS`.

    Raises:
      ValueError: ``pred`` not ``[len(members), len(conditions), n]``.
    """
    pred = np.asarray(pred)
    y = np.asarray(y)
    m, k, n = len(members), len(conditions), y.shape[0]
    if pred.shape != (m, k, n):
        raise ValueError(f"pred: expected shape ({m}, {k}, {n}), got {pred.shape}")
    rows: list[dict[str, Any]] = []
    for attr, grp in groups.items():
        used = _used(grp, speakers)
        head = {"study": study, "attribute": attr, "average": AVERAGE}
        if used["n_groups"] < 2:
            note = (
                f"not computable: {used['n_groups']} group(s) with >= {grp.min_size} clips "
                f"and >= {grp.min_speakers} speakers (2 needed)"
            )
            rows += [
                {**head, **mem, "condition": "", "condition_value": None,
                 "metric": "not computable", "value": None, "ci_low": None, "ci_high": None,
                 **used, "note": note}
                for mem in members
            ]  # fmt: skip
            continue
        valid = np.asarray(grp.valid, bool)
        masks = np.asarray(grp.masks, bool)
        point = metrics.fairness_metrics(
            np.broadcast_to(y.astype(np.int32), pred.shape), pred.astype(np.int32), masks,
            num_classes, valid=valid, average=AVERAGE,
        )  # fmt: skip
        point["demographic_parity_ratio"] = point["p_rule"] / 100.0
        ci = _intervals(pred, y, masks, valid, num_classes, bootstrap)
        for i, mem in enumerate(members):
            for j, (label, cval) in enumerate(conditions):
                for name in metrics.FAIRNESS_METRICS:
                    lo = hi = None
                    if ci is not None:
                        lo, hi = (finite_or_none(ci[i][name][b][j]) for b in (1, 2))
                    rows.append(
                        {**head, **mem, "condition": label, "condition_value": cval,
                         "metric": name, "value": finite_or_none(np.asarray(point[name])[i, j]),
                         "ci_low": lo, "ci_high": hi, **used, "note": ""}
                    )  # fmt: skip
    return [{c: r.get(c) for c in COLUMNS} for r in rows]


def _intervals(
    pred: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    valid: np.ndarray,
    num_classes: int,
    bootstrap: Mapping[str, Any] | None,
) -> list[dict[str, tuple[np.ndarray, ...]]] | None:
    """Per member, ``fairness_intervals`` of its ``[k]`` conditions; None without bootstrap
    or when a used group has fewer than ``min_clusters`` clusters."""
    if not bootstrap or not bootstrap.get("num_resamples"):
        return None
    kw = dict(bootstrap)
    min_clusters = int(kw.pop("min_clusters", 2))
    stat = metrics.FairnessStat(int(num_classes))
    out = []
    for p in pred:
        res = metrics.bootstrap_ci(
            stat, {"y_true": y.astype(np.int32), "y_pred": p.astype(np.int32)}, masks,
            return_samples=True, min_clusters=min_clusters, **kw,
        )  # fmt: skip
        if np.any(res.clusters_per_group[valid] < min_clusters):
            return None
        clusters = res.clusters_per_group if kw.get("speakers") is not None else None
        out.append(
            metrics.fairness_intervals(
                res.estimate, res.samples, valid, level=res.level, clusters=clusters,
                average=AVERAGE,
            )
        )  # fmt: skip
    return out


# ============================================================================ the studies


def robustness_fairness(
    members: Sequence[Any],
    models_rows: Sequence[Mapping[str, Any]],
    attack_eps: Sequence[float],
    y: np.ndarray,
    groups: Mapping[str, Any],
    num_classes: int,
    *,
    speakers: np.ndarray | None,
    bootstrap: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The robustness study's fairness table: every member, clean and at every budget.

    Args:
      members: ``robustness.MemberResult`` s (``pred [1 + e, n]``, ``spec.member_id``).
      models_rows: the ``models`` table (``role``: ``studies.selection``'s baseline and
        most robust model, for the report).
      attack_eps: the ``e`` budgets (conditions ``clean``, then ``eps=<v>``).
      y, groups, num_classes, speakers, bootstrap: as :func:`fairness_rows`.
    """
    from_rows = _roles(models_rows)
    subjects = [
        {"member": mr.spec.member_id, "role": from_rows.get(mr.spec.member_id, "")}
        for mr in members
    ]
    conditions = [("clean", 0.0)] + [(f"eps={format_value(float(e))}", float(e))
                                     for e in attack_eps]  # fmt: skip
    pred = np.stack([np.asarray(mr.pred) for mr in members]) if members else np.zeros((0, 0, 0))
    return fairness_rows(
        "robustness", subjects, conditions, pred, y, groups, num_classes,
        speakers=speakers, bootstrap=bootstrap,
    )  # fmt: skip


def _roles(models_rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """member_id -> ``"baseline"``, ``"most robust"`` or ``"baseline; most robust"``
    (``studies.selection``)."""
    roles: dict[str, list[str]] = {}
    for role, row in (("baseline", select_baseline(models_rows)),
                      ("most robust", select_most_robust(models_rows))):  # fmt: skip
        if row is not None:
            roles.setdefault(str(row["member_id"]), []).append(role)
    return {k: "; ".join(v) for k, v in roles.items()}


def rejection_conditions(thresholds: np.ndarray) -> tuple[float, ...]:
    """The thresholds the rejection study's fairness rows use: the smallest, the middle
    and the largest of its threshold grid (the range AUC_FPR integrates over)."""
    t = np.asarray(thresholds, np.float64)
    return tuple(dict.fromkeys(float(v) for v in (t[0], t[(t.size - 1) // 2], t[-1])))


def rejection_fairness(
    y: np.ndarray,
    nr_base_pred: np.ndarray,
    nr_pred: np.ndarray,
    nr_stat: np.ndarray,
    rs_base_pred: np.ndarray,
    rs_top: np.ndarray,
    rs_pvalues: np.ndarray,
    num_samples: Sequence[int],
    thresholds: np.ndarray,
    groups: Mapping[str, Any],
    num_classes: int,
    *,
    labels: tuple[str, str],
    speakers: np.ndarray | None,
    bootstrap: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The rejection study's fairness table: base models, then each method with rejection.

    Members: the NR and RS base models (condition ``no rejection``), NR (the SVM's
    class, rejected iff its top score ``< t``) and RS at each N (the top class of the
    noisy counts, rejected iff PREDICT's p-value ``> alpha``), each at
    :func:`rejection_conditions` of the threshold grid (conditions ``threshold=<v>``:
    alpha for RS, t for NR, the grid both share).

    Args:
      y: labels ``[n]``; ``nr_base_pred``, ``nr_pred``, ``rs_base_pred``: ``[n]``;
        ``nr_stat``: top SVM score ``[n]``; ``rs_top``, ``rs_pvalues``: ``[k, n]``.
      num_samples: the k values of N.
      thresholds: the study's threshold grid.
      labels: names of the NR and RS base models.
      groups, num_classes, speakers, bootstrap: as :func:`fairness_rows`.
    """
    rows: list[dict[str, Any]] = []
    base = np.stack([nr_base_pred, rs_base_pred])[:, None]  # [2, 1, n]
    rows += fairness_rows(
        "rejection", [{"member": lab, "role": "base model"} for lab in labels],
        [("no rejection", None)], base, y, groups, num_classes, speakers=speakers,
        bootstrap=bootstrap,
    )  # fmt: skip
    ts = rejection_conditions(thresholds)
    t = np.asarray(ts)[:, None]
    nr = np.where(np.asarray(nr_stat)[None] < t, -1, np.asarray(nr_pred)[None])  # [a, n]
    rs = np.where(np.asarray(rs_pvalues)[:, None] > t[None], -1, np.asarray(rs_top)[:, None])
    members = [{"member": f"RS N={int(v)}", "role": "rejection"} for v in num_samples]
    members.append({"member": "NR", "role": "rejection"})
    rows += fairness_rows(
        "rejection", members, [(f"threshold={format_value(v)}", v) for v in ts],
        np.concatenate([rs, nr[None]]), y, groups, num_classes, speakers=speakers,
        bootstrap=bootstrap,
    )  # fmt: skip
    return rows
