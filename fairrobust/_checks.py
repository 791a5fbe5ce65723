"""Argument validators shared by the kernels: one message form for every bad input.

Every check raises ``ValueError("<name>: expected <what>, got <value>")``, so a
message always starts with the parameter it is about (tests match ``^<name>``).
Checks run on the host, before anything is traced; a value that is already a
tracer (inside ``jit`` / ``vmap``) cannot be inspected and is let through where
noted. Shape contracts use ``chex`` (:func:`check_shape`, :func:`check_rank`) and
re-raise its ``AssertionError`` in the same form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn

import chex
import jax
import numpy as np

__all__ = [
    "NORMS",
    "check_budgets",
    "check_choice",
    "check_epsilons",
    "check_fraction",
    "check_int",
    "check_norm",
    "check_positive",
    "check_rank",
    "check_shape",
    "check_xy",
    "concrete",
    "fail",
    "is_tracer",
]

#: Threat-model norms accepted by the attacks.
NORMS: tuple[str, ...] = ("linf", "l2")


def fail(name: str, what: str, got: str) -> NoReturn:
    """Raises ``ValueError(f"{name}: expected {what}, got {got}")`` (``got`` already formatted)."""
    raise ValueError(f"{name}: expected {what}, got {got}")


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (its values cannot be checked on the host)."""
    return isinstance(x, jax.core.Tracer)  # pyright: ignore[reportAttributeAccessIssue]


def concrete(x: Any) -> np.ndarray | None:
    """Host copy of ``x``, or None when it is traced (value checks are then skipped)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """A Python / NumPy integer (not a bool), at least ``minimum`` when given."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or (minimum is not None and value < minimum):
        fail(name, "an integer" if minimum is None else f"an integer >= {minimum}", repr(value))
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0, as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        fail(name, "a finite number > 0", repr(value))
    if not math.isfinite(v) or v <= 0:
        fail(name, "a finite number > 0", repr(value))
    return v


def check_fraction(name: str, value: Any) -> float:
    """A number in [0, 1], as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        fail(name, "a number in [0, 1]", repr(value))
    if not 0.0 <= v <= 1.0:
        fail(name, "a number in [0, 1]", repr(value))
    return v


def check_choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """One of a closed set of options; the message lists them."""
    if value not in options:
        fail(name, f"one of {list(options)}", repr(value))
    return value


def check_norm(norm: Any) -> str:
    """A threat-model norm of :data:`NORMS`."""
    return check_choice("norm", norm, NORMS)


def check_epsilons(epsilons: Any, name: str = "epsilons") -> np.ndarray:
    """A non-empty set of finite budgets >= 0 as float32 ``[e]`` (a scalar becomes ``[1]``)."""
    what = "a non-empty set of finite values >= 0"
    if is_tracer(epsilons):
        fail(name, what + " (concrete, not traced)", "a tracer")
    try:
        arr = np.asarray(epsilons, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        fail(name, what, repr(epsilons))
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        fail(name, what, repr(arr.tolist()))
    return arr.astype(np.float32)


def check_budgets(eps: Any, name: str = "eps") -> None:
    """Attack budgets (any shape, possibly empty) are finite and >= 0.

    A tracer (e.g. an epsilon vmapped over a sweep) cannot be checked and passes.
    """
    if is_tracer(eps):
        return
    arr = np.asarray(eps, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        fail(name, "finite values >= 0", repr(arr.tolist()))


def check_shape(name: str, x: Any, shape: Sequence[int | None]) -> None:
    """``chex.assert_shape`` contract: ``None`` in ``shape`` matches any size."""
    try:
        chex.assert_shape(x if hasattr(x, "shape") else np.asarray(x), tuple(shape))
    except AssertionError:
        dims = ["_" if s is None else str(s) for s in shape]
        want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        fail(name, f"shape {want}", repr(np.shape(x)))


def check_rank(name: str, x: Any, rank: int | set[int], what: str | None = None) -> None:
    """``chex.assert_rank`` contract; ``what`` describes the expected layout."""
    try:
        chex.assert_rank(x if hasattr(x, "shape") else np.asarray(x), rank)
    except AssertionError:
        fail(name, what or f"rank {rank}", f"shape {np.shape(x)}")


def check_xy(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms ``(n, time)`` (finite, as float32) and integer labels ``(n,)``, on the host."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        fail("x, y", "shapes (n, time) and (n,)", f"{x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        fail("y", "integer labels", f"dtype {y.dtype}")
    if not np.all(np.isfinite(x)):
        fail("x", "finite values", "NaN or infinite values")
    return x, y
