"""Estimates with bootstrap intervals: read them from result rows, compare and format them.

An estimate is a triple ``(value, low, high)`` of floats or None (missing, NaN
and non-numbers read as None). The findings (:mod:`fairrobust.studies.summary`)
and the report (:mod:`fairrobust.report`) share these rules so that a sentence
and a table cell print the same number the same way:

* :func:`compare_intervals` calls two estimates different only when their
  intervals are disjoint; overlapping intervals are "not distinguishable";
* :func:`fmt` prints 4 significant digits, :func:`fmt_ci` adds ``[low, high]``
  or says ``(no CI)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Estimate",
    "as_number",
    "compare_intervals",
    "estimate",
    "fmt",
    "fmt_ci",
    "fmt_estimate",
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


def compare_intervals(a: Estimate, b: Estimate) -> str:
    """How estimate ``a`` compares with ``b``, judged by their intervals.

    Returns:
      ``"lower"`` / ``"higher"`` when the intervals are disjoint;
      ``"not distinguishable"`` when they overlap; ``"lower (no CI)"`` /
      ``"higher (no CI)"`` / ``"equal (no CI)"`` when either interval is missing;
      ``"undefined"`` when either value is missing.
    """
    (av, alo, ahi), (bv, blo, bhi) = a, b
    if av is None or bv is None:
        return "undefined"
    if alo is None or ahi is None or blo is None or bhi is None:
        return ("lower" if av < bv else "higher" if av > bv else "equal") + " (no CI)"
    if ahi < blo:
        return "lower"
    if alo > bhi:
        return "higher"
    return "not distinguishable"
