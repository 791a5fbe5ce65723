"""Verdicts and number formats shared by the soundness records (private to the package)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PASS", "WARN", "eps_label", "fmt_value", "fmt_values", "verdict_of"]

PASS, WARN = "pass", "warn"


def verdict_of(reasons: Sequence[str]) -> str:
    """``"warn"`` when there is any reason, else ``"pass"``."""
    return WARN if reasons else PASS


def fmt_value(v: float) -> str:
    """A number with three decimals (``"nan"`` when not finite), as the summaries print it."""
    return "nan" if not np.isfinite(v) else f"{v:.3f}"


def fmt_values(values: Sequence[float] | np.ndarray) -> str:
    """``[a, b, ...]`` of :func:`fmt_value`."""
    return "[" + ", ".join(fmt_value(v) for v in values) + "]"


def eps_label(e: float) -> str:
    """An epsilon as the reasons name it (``"0.01"``)."""
    return f"{float(e):g}"
