"""Split helpers: sizes, determinism, disjointness, stratification."""

import numpy as np
import pytest

from fairrobust.data.splits import group_disjoint_split, split_counts, stratified_split


def test_split_counts():
    assert split_counts(312, (0.7, 0.1, 0.2)) == (219, 31, 62)
    assert split_counts(50, (0.7, 0.1, 0.2)) == (35, 5, 10)
    assert split_counts(3, (0.7, 0.1, 0.2)) == (1, 1, 1)
    assert split_counts(10, (0.7, 0.1, 0.2)) == (7, 1, 2)
    with pytest.raises(ValueError, match="fractions"):
        split_counts(10, (0.5, 0.1, 0.1))


def test_group_disjoint_split_deterministic():
    groups = [f"s{i % 20}" for i in range(100)]
    a = group_disjoint_split(groups, seed=0)
    assert a == group_disjoint_split(list(reversed(groups)), seed=0)
    assert a != group_disjoint_split(groups, seed=1)
    assert sorted(a.values()).count("train") == 14


def test_stratified_split_every_stratum_in_every_split():
    strata = [(s, d) for s in range(4) for d in range(3) for _ in range(10)]
    out = stratified_split(strata, seed=0)
    for key in set(strata):
        idx = [i for i, k in enumerate(strata) if k == key]
        assert sorted(np.unique(out[idx], return_counts=True)[1]) == [1, 2, 7]
    np.testing.assert_array_equal(out, stratified_split(strata, seed=0))
