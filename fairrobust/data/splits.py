"""Deterministic splits: speaker-disjoint (open-user) and stratified (closed-user)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["group_disjoint_split", "split_counts", "stratified_split"]


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes ``(train, val, test)`` for ``n`` items; each split gets >= 1 item when ``n >= 3``.

    Val and test are rounded (half up) and train takes the rest, so 312 WUW
    sessions give (219, 31, 62) and 50 takes give (35, 5, 10).
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(
            f"fractions: expected 3 non-negative numbers summing to 1, got {fractions}"
        )
    n_val = int(np.floor(n * f[1] + 0.5))
    n_test = int(np.floor(n * f[2] + 0.5))
    if n >= 3:
        n_val = max(n_val, 1) if f[1] > 0 else n_val
        n_test = max(n_test, 1) if f[2] > 0 else n_test
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    return n - n_val - n_test, n_val, n_test


def group_disjoint_split(
    groups: Sequence[Hashable], seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)
) -> dict[Hashable, str]:
    """Assign whole groups (speakers, sessions) to splits so none is in two splits.

    The sorted unique groups are permuted with ``np.random.default_rng(seed)``;
    the first ``train`` of them go to train, the next ``val`` to val, the rest
    to test (sizes from :func:`split_counts`).

    Args:
      groups: group id of each item (any hashable, compared as strings for sorting).
      seed: permutation seed.
      fractions: (train, val, test) fractions of groups.

    Returns:
      group id -> ``"train" | "val" | "test"``.
    """
    unique = sorted(set(groups), key=str)
    n_train, n_val, _ = split_counts(len(unique), fractions)
    order = np.random.default_rng(seed).permutation(len(unique))
    names = np.array(
        ["train"] * n_train + ["val"] * n_val + ["test"] * (len(unique) - n_train - n_val)
    )
    return {unique[i]: str(names[rank]) for rank, i in enumerate(order)}


def stratified_split(
    strata: Sequence[Hashable], seed: int = 0, fractions: Sequence[float] = (0.7, 0.1, 0.2)
) -> np.ndarray:
    """Split items at random within each stratum (e.g. each (speaker, digit) pair).

    Within every stratum of ``m`` items, a seeded permutation assigns
    :func:`split_counts` ``(m)`` items to train, val and test, so every stratum
    with at least 3 items appears in all three splits (closed-user setting).

    Args:
      strata: stratum of each item, length ``n``.
      seed: seed of ``np.random.default_rng``.
      fractions: (train, val, test).

    Returns:
      str ``[n]`` split names.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(len(strata), dtype="<U5")
    index: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        index.setdefault(s, []).append(i)
    for s in sorted(index, key=str):
        members = np.array(index[s])
        n_train, n_val, _ = split_counts(len(members), fractions)
        members = members[rng.permutation(len(members))]
        out[members[:n_train]] = "train"
        out[members[n_train : n_train + n_val]] = "val"
        out[members[n_train + n_val :]] = "test"
    return out
