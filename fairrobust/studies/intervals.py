"""Estimates with bootstrap intervals and the comparisons the findings cite.

An estimate is a triple ``(value, low, high)`` of floats or None (missing, NaN
and non-numbers read as None). The findings (:mod:`fairrobust.studies.summary`)
and the report (:mod:`fairrobust.report`) share these rules so that a sentence
and a table cell print the same number the same way:

* two numbers are compared only through the interval of their *difference*
  on the same clips and the same bootstrap resamples
  (:func:`comparison_rows`, ``fairrobust.metrics.paired_difference``), never by
  the overlap of their own intervals; a family of comparisons is corrected with
  Holm's method (:func:`apply_holm`), and :func:`verdict` calls a difference
  "higher" / "lower" only when it is significant after that correction;
* a parity gap's own interval (``fairrobust.metrics.gap_interval``) says whether
  the groups of one attribute differ at all (:func:`gap_verdict`);
* :func:`fmt` prints 4 significant digits, :func:`fmt_ci` adds ``[low, high]``
  or says ``(no CI)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fairrobust.metrics import holm, paired_difference

__all__ = [
    "Estimate",
    "apply_holm",
    "as_number",
    "comparison_rows",
    "estimate",
    "fmt",
    "fmt_ci",
    "fmt_estimate",
    "gap_replicates",
    "gap_verdict",
    "scaled_replicates",
    "verdict",
]

#: ``(value, low, high)``; None where a number is missing.
Estimate = tuple[float | None, float | None, float | None]


def as_number(v: Any) -> float | None:
    """Float or None (None / NaN / infinities / bools / non-numbers -> None)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(v: Any) -> str:
    """A number with 4 significant digits; ``n/a`` for missing / NaN."""
    f = as_number(v)
    if f is None:
        return "n/a"
    if f == 0:
        return "0"
    return f"{f:.4g}" if 1e-4 <= abs(f) < 1e5 else f"{f:.3e}"


def fmt_ci(v: Any, low: Any, high: Any) -> str:
    """``value [low, high]``; ``value (no CI)`` without an interval; ``n/a`` without a value."""
    if as_number(v) is None:
        return "n/a"
    if as_number(low) is None or as_number(high) is None:
        return f"{fmt(v)} (no CI)"
    return f"{fmt(v)} [{fmt(low)}, {fmt(high)}]"


def fmt_estimate(t: Estimate) -> str:
    """:func:`fmt_ci` of an estimate triple."""
    return fmt_ci(*t)


def estimate(row: Mapping[str, Any] | None, key: str, lo_key: str, hi_key: str) -> Estimate:
    """``(row[key], row[lo_key], row[hi_key])`` as numbers; all None without a row.

    Args:
      row: a result row (a dict of one results table) or None.
      key, lo_key, hi_key: column names of the value and its interval bounds.
    """
    if row is None:
        return (None, None, None)
    return (as_number(row.get(key)), as_number(row.get(lo_key)), as_number(row.get(hi_key)))


def scaled_replicates(estimate: Any, samples: Any, clusters: Any) -> np.ndarray:
    """Replicates ``[R, ..., g]`` with each group's deviations from the estimate scaled by
    ``sqrt(C / (C - 1))`` (C = its speakers; 1 for C < 2 or unknown speakers).

    A bootstrap that resamples C speakers has ``(C - 1) / C`` of the sampling variance;
    the paired differences of group statistics use these replicates, as the parity-gap
    intervals do (``fairrobust.metrics.gap_interval``'s ``clusters``).
    """
    est = np.asarray(estimate, np.float64)
    smp = np.asarray(samples, np.float64)
    if clusters is None:
        return smp
    c = np.asarray(clusters, np.float64)
    scale = np.where(c >= 2, np.sqrt(c / np.maximum(c - 1.0, 1.0)), 1.0)
    return est[None] + (smp - est[None]) * scale


def gap_replicates(samples: Any, valid: Any) -> np.ndarray:
    """``max - min`` over valid, finite groups of replicates ``[R, ..., g]`` -> ``[R, ...]``
    (NaN with fewer than two)."""
    smp = np.asarray(samples, np.float64)
    ok = np.isfinite(smp) & np.asarray(valid, bool)
    with np.errstate(invalid="ignore"):
        hi = np.where(ok, smp, -np.inf).max(-1, initial=-np.inf)
        lo = np.where(ok, smp, np.inf).min(-1, initial=np.inf)
    return np.where(ok.sum(-1) >= 2, hi - lo, np.nan)


def comparison_rows(
    base: Mapping[str, Any],
    value: Any,
    samples: Any,
    ref_value: Any,
    ref_samples: Any,
    *,
    level: float,
) -> list[dict[str, Any]]:
    """Rows of paired differences ``value - ref_value`` (one per entry of the ``[k]`` arrays).

    Args:
      base: fields shared by every row (family, attribute, ...); per-row fields may
        be given as lists of length ``k`` under the same keys.
      value, ref_value: ``[k]`` estimates on the same clips.
      samples, ref_samples: ``[R, k]`` replicates on the same resamples.
      level: interval level.

    Returns:
      Rows with ``value``, ``reference_value``, ``difference``, ``ci_low``,
      ``ci_high``, ``p_value`` (``fairrobust.metrics.paired_difference``); call
      :func:`apply_holm` on the whole family afterwards.
    """
    v = np.atleast_1d(np.asarray(value, np.float64))
    r = np.atleast_1d(np.asarray(ref_value, np.float64))
    vs = np.asarray(samples, np.float64).reshape(-1, v.size)
    rs = np.asarray(ref_samples, np.float64).reshape(-1, r.size)
    d = paired_difference(v, vs, r, rs, level=level)
    rows = []
    for i in range(v.size):
        row = {k: (x[i] if isinstance(x, list) else x) for k, x in base.items()}
        row.update(
            value=as_number(v[i]),
            reference_value=as_number(r[i]),
            difference=as_number(d.difference[i]),
            ci_low=as_number(d.low[i]),
            ci_high=as_number(d.high[i]),
            p_value=as_number(d.p_value[i]),
            ci_level=float(level),
        )
        rows.append(row)
    return rows


def apply_holm(rows: list[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """Adds ``p_holm``, ``n_comparisons`` and ``significant`` to each family of rows, in place.

    A family is the rows sharing ``row["family"]``; ``n_comparisons`` counts its rows
    with a p-value; ``significant`` is ``p_holm < alpha`` (False without a p-value).
    """
    families: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        families.setdefault(str(r.get("family", "")), []).append(r)
    for fam in families.values():
        p = np.asarray([np.nan if r.get("p_value") is None else r["p_value"] for r in fam])
        adj = holm(p)
        m = int(np.isfinite(p).sum())
        for r, a in zip(fam, adj, strict=True):
            r["p_holm"] = as_number(a)
            r["n_comparisons"] = m
            r["significant"] = bool(np.isfinite(a) and a < alpha)
    return rows


def verdict(row: Mapping[str, Any] | None) -> str:
    """``"higher"`` / ``"lower"`` (significant after Holm), ``"not distinguishable"``,
    or ``"undefined"`` (no row, or no interval: e.g. a group with too few speakers)."""
    if row is None or as_number(row.get("difference")) is None:
        return "undefined"
    if row.get("p_value") is None:
        return "undefined"
    if not row.get("significant"):
        return "not distinguishable"
    return "higher" if row["difference"] > 0 else "lower"


def gap_verdict(t: Estimate) -> str:
    """Whether a parity gap's interval excludes 0: ``"groups differ"`` /
    ``"not distinguishable from 0"`` / ``"no interval"`` / ``"undefined"``."""
    v, lo, hi = t
    if v is None:
        return "undefined"
    if lo is None or hi is None:
        return "no interval"
    return "groups differ" if lo > 0 else "not distinguishable from 0"
