"""Group masks: hand values, invariants, a plain-loop oracle, errors."""

import collections
import json

import numpy as np
import pytest

from fairrobust import groups as G


@pytest.fixture
def attrs():
    return {
        "gender": np.array(["male", "female", "female", "unknown", "male", "female"]),
        "dialect": np.array(["north", "south", "north", "north", "unknown", "north"]),
        "age": np.array(["20s", "20s", "30s", "30s", "20s", "20s"]),
    }


def test_single_attribute_hand_values(attrs):
    g = G.group_masks(attrs, "gender")
    assert g.attribute == "gender"
    assert g.components == ("gender",)
    assert g.names == ("female", "male")  # sorted; "unknown" dropped
    np.testing.assert_array_equal(
        np.asarray(g.masks),
        [[0, 1, 1, 0, 0, 1], [1, 0, 0, 0, 1, 0]],
    )
    np.testing.assert_array_equal(g.sizes, [3, 2])
    assert g.masks.dtype == bool
    assert g.small == ()
    assert g.valid.tolist() == [True, True]
    assert not g.unknown_kept
    assert g.num_groups == 2 and g.num_examples == 6
    assert g.index("male") == 1


def test_keep_unknown(attrs):
    g = G.group_masks(attrs, "gender", keep_unknown=True)
    assert g.names == ("female", "male", "unknown")
    assert g.unknown_kept
    # With unknown kept, the groups of one attribute partition the examples.
    np.testing.assert_array_equal(np.asarray(g.masks).sum(0), np.ones(6))


def test_intersection_hand_values(attrs):
    g = G.group_masks(attrs, ("gender", "dialect"))
    assert g.attribute == "gender x dialect"
    # Only combinations that occur, none with "unknown" in any component.
    assert g.names == ("female x north", "female x south", "male x north")
    assert g.values == (("female", "north"), ("female", "south"), ("male", "north"))
    np.testing.assert_array_equal(g.sizes, [2, 1, 1])
    g2 = G.group_masks(attrs, "gender x dialect")
    assert g2.names == g.names
    np.testing.assert_array_equal(np.asarray(g2.masks), np.asarray(g.masks))
    gk = G.group_masks(attrs, ("gender", "dialect"), keep_unknown=True)
    assert gk.names == (
        "female x north",
        "female x south",
        "male x north",
        "male x unknown",
        "unknown x north",
    )


def test_intersection_is_and_of_components(attrs):
    gi = G.group_masks(attrs, ("gender", "age"), keep_unknown=True)
    ga = G.group_masks(attrs, "gender", keep_unknown=True)
    gb = G.group_masks(attrs, "age", keep_unknown=True)
    for name, mask in zip(gi.names, np.asarray(gi.masks), strict=True):
        a, b = name.split(" x ")
        expected = np.asarray(ga.masks)[ga.index(a)] & np.asarray(gb.masks)[gb.index(b)]
        np.testing.assert_array_equal(mask, expected)


def test_sizes_match_counter_oracle():
    rng = np.random.default_rng(0)
    n = 500
    attrs = {
        "a": rng.choice(["x", "y", "z", "unknown"], n),
        "b": rng.choice(["p", "q"], n),
        "c": rng.choice(["u", "v", "w"], n),
    }
    g = G.group_masks(attrs, ["a", "b", "c"], keep_unknown=True)
    counts = collections.Counter(zip(attrs["a"], attrs["b"], attrs["c"], strict=True))
    expected = {" x ".join(k): v for k, v in counts.items()}
    assert g.names == tuple(sorted(expected))
    assert dict(zip(g.names, g.sizes.tolist(), strict=True)) == expected
    np.testing.assert_array_equal(np.asarray(g.masks).sum(1), g.sizes)
    np.testing.assert_array_equal(np.asarray(g.masks).sum(0), np.ones(n))


def test_deterministic_under_permutation(attrs):
    perm = np.array([5, 3, 1, 0, 2, 4])
    g = G.group_masks(attrs, "gender")
    gp = G.group_masks({k: v[perm] for k, v in attrs.items()}, "gender")
    assert gp.names == g.names
    np.testing.assert_array_equal(np.asarray(gp.masks), np.asarray(g.masks)[:, perm])


def test_min_size_flags_but_keeps(attrs):
    g = G.group_masks(attrs, "gender", min_size=3)
    assert g.names == ("female", "male")  # small group still present
    assert g.small == ("male",)
    assert g.valid.tolist() == [True, False]
    assert g.min_size == 3


def test_all_groups(attrs):
    d = G.all_groups(attrs, intersections=[("gender", "age")], min_size=2)
    assert list(d) == ["age", "dialect", "gender", "gender x age"]
    assert all(v.min_size == 2 for v in d.values())
    d2 = G.all_groups(attrs, ["gender"])
    assert list(d2) == ["gender"]


def test_training_group_sizes(attrs):
    g = G.group_masks(attrs, ("gender", "age"))
    train = {
        "gender": np.array(["female", "female", "male", "male", "male"]),
        "age": np.array(["20s", "30s", "20s", "20s", "40s"]),
        "dialect": np.array(["x"] * 5),
    }
    # g.names: female x 20s, female x 30s, male x 20s
    assert g.names == ("female x 20s", "female x 30s", "male x 20s")
    np.testing.assert_array_equal(G.training_group_sizes(train, g), [1, 1, 2])
    gd = G.group_masks(attrs, "dialect")
    assert gd.names == ("north", "south")
    np.testing.assert_array_equal(G.training_group_sizes(train, gd), [0, 0])
    with pytest.raises(ValueError, match="train_attributes: missing attribute 'age'"):
        G.training_group_sizes({"gender": train["gender"]}, g)


def test_to_dict_is_json(attrs):
    d = G.group_masks(attrs, "gender", min_size=3).to_dict()
    assert json.loads(json.dumps(d))["small"] == ["male"]


def test_errors(attrs):
    with pytest.raises(ValueError, match=r"unknown attribute 'accent'; available: \['age'"):
        G.group_masks(attrs, "accent")
    with pytest.raises(ValueError, match="unknown attribute 'accent'"):
        G.group_masks(attrs, ("gender", "accent"))
    with pytest.raises(ValueError, match="min_size"):
        G.group_masks(attrs, "gender", min_size=0)
    with pytest.raises(ValueError, match="repeated"):
        G.group_masks(attrs, ("gender", "gender"))
    with pytest.raises(ValueError, match=r"attributes\['age'\]: expected length 6"):
        G.group_masks({**attrs, "age": attrs["age"][:4]}, ("gender", "age"))
    with pytest.raises(ValueError, match="group 'other' not in attribute 'gender'"):
        G.group_masks(attrs, "gender").index("other")


def test_empty_data():
    g = G.group_masks({"gender": np.array([], dtype=str)}, "gender")
    assert g.names == () and g.masks.shape == (0, 0)
