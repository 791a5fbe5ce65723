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
* :func:`fmt` prints 3 significant digits, :func:`fmt_ci` adds ``[low, high]``
  or says ``(no CI)``, :func:`fmt_p` prints a p-value (``< 0.001`` below 0.001).

Number format (report tables, findings and the terminal summary): 3 significant
digits, trailing zeros dropped; plain decimals for ``1e-4 <= |x| < 1e6``
(``0.000221``, ``0.5``, ``12300``); outside that range a power of ten written
out, never e-notation: ``2.21×10⁻⁵``, ``3.1×10⁷``. Exact counts (clips,
speakers, N) are printed as integers by the callers, not through :func:`fmt`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fairrobust.metrics import holm, paired_difference

__all__ = [
    "Estimate",
    "apply_holm",
    "as_number",
    "comparison_row",
    "comparison_rows",
    "diff_text",
    "estimate",
    "fmt",
    "fmt_ci",
    "fmt_estimate",
    "fmt_p",
    "gap_replicates",
    "gap_verdict",
    "join_names",
    "p_words",
    "scaled",
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


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(v: Any, *, ascii: bool = False) -> str:
    """A number with 3 significant digits; ``n/a`` for missing / NaN.

    Plain decimals for ``1e-4 <= |x| < 1e6`` (``0.000221``, ``0.0123``, ``12300``),
    else ``2.21×10⁻⁵`` (``2.21e-05`` with ``ascii``, the terminal's form for streams
    that may not be UTF-8); trailing zeros are dropped (``0.5``, ``1``).
    """
    f = as_number(v)
    if f is None:
        return "n/a"
    if f == 0:
        return "0"
    mant, exp = f"{f:.2e}".split("e")  # rounds to 3 significant digits first
    k = int(exp)
    if -4 <= k < 6:
        text = f"{float(f'{mant}e{k}'):.{max(0, 2 - k)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mant = mant.rstrip("0").rstrip(".")
    if ascii:
        return f"{mant}e{k:+03d}"
    return f"{mant}×10{str(k).translate(_SUPERSCRIPT)}"


def fmt_p(p: Any) -> str:
    """A p-value: ``< 0.001`` below 0.001, else :func:`fmt` (``0.0638``, ``1``); ``n/a``."""
    f = as_number(p)
    if f is None:
        return "n/a"
    return "< 0.001" if f < 0.001 else fmt(f)


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


def p_words(p: Any) -> str:
    """``= 0.0123`` or ``< 0.001`` (:func:`fmt_p` after ``p``)."""
    t = fmt_p(p)
    return t if t.startswith("<") else f"= {t}"


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def join_names(items: Iterable[str], *, limit: int = 4) -> str:
    """``a, b and c``; past ``limit`` items ``a, b, c and 5 more`` (the tables list all)."""
    items = list(items)
    if len(items) <= limit:
        return _join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def scaled(t: Estimate, width: float | None) -> Estimate:
    """An estimate divided by ``width`` (unchanged when ``width`` is None)."""
    if not width:
        return t
    return (
        None if t[0] is None else t[0] / width,
        None if t[1] is None else t[1] / width,
        None if t[2] is None else t[2] / width,
    )


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


def comparison_row(
    rows: list[dict[str, Any]], family: str, attr: str, **match: Any
) -> dict[str, Any] | None:
    """The comparisons-table row of ``family`` for ``attr`` matching ``match`` (None: absent)."""
    for r in rows:
        if r.get("family") == family and r.get("attribute") == attr:
            if all(r.get(k) == v for k, v in match.items()):
                return r
    return None


def diff_text(r: Mapping[str, Any] | None, width: float | None = None) -> str:
    """``difference d [lo, hi], Holm p = q`` of a comparison row (difference / ``width``)."""
    if r is None:
        return "no comparison"
    t = scaled(estimate(r, "difference", "ci_low", "ci_high"), width)
    p = fmt_p(r.get("p_holm"))
    if p == "n/a":
        return f"difference {fmt_estimate(t)}"
    return f"difference {fmt_estimate(t)}, Holm p {p if p.startswith('<') else '= ' + p}"


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
