"""Robustness bias (Nanda et al. 2021): each example's smallest breaking epsilon per group.

Nanda, Dooley, Singla, Feizi & Dickerson, "Fairness Through Robustness:
Investigating Robustness Disparity in Deep Learning" (FAccT 2021) compare groups
by the distribution of each example's distance to the decision boundary. From an
attack sweep ``eps_1 < ... < eps_e`` with per-example correctness ``correct [1 + e,
n]`` (clean first), an example's **smallest breaking epsilon** is

* 0 if it is misclassified clean;
* else the first ``eps_k`` of the sweep at which it is misclassified;
* else ``+inf`` (never broken within the sweep).

It is an *upper bound* of the example's true minimal adversarial distance in the
attack's norm: PGD finds an adversarial example of budget ``eps`` only when one
exists (a failed attack proves nothing), and the sweep is discrete (the true
distance lies in ``(eps_{k-1}, eps_k]`` or below).

Per group: the median breaking epsilon (``numpy.median``; ``+inf`` when at least
half of the group is never broken) and the fraction never broken;
:class:`BreakingEpsStat` is their bootstrap statistic.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from fairrobust.metrics._kernels import group_means, masked_max_gap
from fairrobust.metrics._validate import as_grid
from fairrobust.metrics.certified import weighted_median_kernel

__all__ = [
    "BreakingCdfStat",
    "BreakingEpsStat",
    "breaking_epsilon",
    "decode_never",
    "encode_never",
]


def breaking_epsilon(correct: Any, epsilons: Any) -> np.ndarray:
    """Smallest epsilon of a sweep at which each example is misclassified.

    ``b_i = 0`` if ``correct[0, i]`` is False (misclassified clean), else
    ``epsilons[k]`` for the first ``k >= 1`` with ``correct[k, i]`` False, else
    ``+inf``. An upper bound of the minimal adversarial distance (PGD is an
    upper-bound attack and the grid is discrete).

    Args:
      correct: bool ``[..., 1 + e, n]``: clean pass first, then each epsilon.
      epsilons: the sweep ``[1 + e]`` with 0 first (``sweep_epsilons``), increasing.

    Returns:
      float64 ``[..., n]`` in ``{0, eps_1, ..., eps_e, +inf}``.

    Raises:
      ValueError: shapes disagree, or the grid is not increasing from 0.
    """
    c = np.asarray(correct).astype(bool)
    eps = np.asarray(epsilons, np.float64)
    if c.ndim < 2 or eps.ndim != 1 or c.shape[-2] != eps.shape[0]:
        raise ValueError(
            f"correct: expected shape (..., {eps.shape[0] if eps.ndim == 1 else '1 + e'}, n) "
            f"for epsilons of shape {eps.shape}, got {c.shape}"
        )
    if eps[0] != 0 or np.any(np.diff(eps) <= 0):
        raise ValueError(f"epsilons: expected 0 then increasing budgets, got {eps.tolist()}")
    broken = ~c
    first = np.argmax(broken, axis=-2)  # first broken pass (0 if never: fixed below)
    out = eps[first]
    return np.where(broken.any(axis=-2), out, np.inf)


def encode_never(b: Any, eps_max: float) -> np.ndarray:
    """Breaking epsilons with ``+inf`` replaced by the finite ``2 * eps_max`` (for the bootstrap).

    Every order statistic and interpolated quantile of the encoded values above
    ``eps_max`` corresponds to ``+inf`` of the original (:func:`decode_never`).
    """
    return np.where(np.isinf(b), 2.0 * float(eps_max), np.asarray(b, np.float64))


def decode_never(x: Any, eps_max: float) -> np.ndarray:
    """Inverse of :func:`encode_never` on medians / quantiles: values above ``eps_max`` -> inf."""
    x = np.asarray(x, np.float64)
    return np.where(x > float(eps_max) * (1 + 1e-6), np.inf, x)


@dataclasses.dataclass(frozen=True)
class BreakingEpsStat:
    """Bootstrap statistic: median breaking epsilon and fraction never broken per group.

    ``BreakingEpsStat(eps_max, valid)(encoded [n], masks, weights [n])``, where
    ``encoded = encode_never(breaking_epsilon(...), eps_max)``, returns
    ``{"median": [g], "never": [g], "median_gap": [], "never_gap": []}``; medians
    above ``eps_max`` mean ``+inf`` (:func:`decode_never`). Gaps are max - min over
    ``valid`` groups; with :func:`fairrobust.metrics.bootstrap_ci` they get
    ``gap_interval`` (the median gap's interval is meaningful only when every valid
    group's median and interval stay within the sweep; the caller checks).
    """

    eps_max: float
    valid: tuple[bool, ...] | None = None
    gap_of: ClassVar[tuple[tuple[str, str], ...]] = (
        ("median_gap", "median"),
        ("never_gap", "never"),
    )
    group_keys: ClassVar[tuple[str, ...]] = ("median", "never")

    def __post_init__(self):
        as_grid(np.asarray([0.0, float(self.eps_max)]), "eps_max")
        object.__setattr__(self, "eps_max", float(self.eps_max))
        if self.valid is not None:
            valid = tuple(bool(v) for v in np.asarray(self.valid).reshape(-1).tolist())
            object.__setattr__(self, "valid", valid)

    def __call__(self, values, masks, weights):
        v = jnp.asarray(values, jnp.float32)
        w = jnp.ones(v.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
        never = (v > self.eps_max).astype(jnp.float32)
        med = weighted_median_kernel(v, masks, w)
        fr = group_means(never, masks, w)
        valid = jnp.ones((masks.shape[0],), bool) if self.valid is None else jnp.asarray(self.valid)
        return {
            "median": med,
            "never": fr,
            "median_gap": masked_max_gap(med, valid),
            "never_gap": masked_max_gap(fr, valid),
        }


@dataclasses.dataclass(frozen=True)
class BreakingCdfStat:
    """Bootstrap statistic: the empirical CDF of the breaking epsilon per group.

    ``BreakingCdfStat(epsilons)(breaking [n], masks, weights [n])`` returns
    ``{"cdf": [K, g]}`` with ``cdf[k, s] = sum_{i in s} w_i [b_i <= eps_k] / sum_{i in s} w_i``,
    the fraction of group ``s`` broken at budget ``eps_k`` or below (Nanda et al. 2021's
    robustness-bias curve at the sweep's budgets). With
    :func:`fairrobust.metrics.bootstrap_ci` (clustered by speaker) it gives pointwise
    intervals of the curve; groups with too few speakers get none (NaN).
    """

    epsilons: tuple[float, ...]
    group_keys: ClassVar[tuple[str, ...]] = ("cdf",)

    def __post_init__(self):
        eps = as_grid(np.asarray(self.epsilons, dtype=float), "epsilons")
        object.__setattr__(self, "epsilons", tuple(float(e) for e in np.asarray(eps)))

    def __call__(self, values, masks, weights):
        v = jnp.asarray(values, jnp.float32)
        w = jnp.ones(v.shape, jnp.float32) if weights is None else weights.astype(jnp.float32)
        eps = jnp.asarray(self.epsilons, jnp.float32)
        broken = (v[None, :] <= eps[:, None]).astype(jnp.float32)  # [K, n]
        return {"cdf": group_means(broken, masks, w)}
