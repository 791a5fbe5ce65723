"""classify_attributes: each degenerate attribute case in tiny synthetic tables."""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust.groups import classify_attributes, require_usable

U = "unknown"
#: 12 clips, 6 speakers (2 clips each); train = 0..5, test = 6..11.
SPLITS = np.array(["train"] * 6 + ["test"] * 6)
SPEAKERS = np.array(["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4", "s5", "s5", "s6", "s6"])
TEST = np.arange(6, 12)
ATTRS = {
    "gender": np.array(["f", "f", "m", "m", "f", "f", "f", "f", "f", "f", "m", "m"]),
    "sex": np.array(["a", "a", "b", "b", "a", "a", "a", "a", "a", "a", "b", "b"]),  # = gender
    "constant": np.array(["x"] * 12),
    "age": np.array([U] * 12),
    "missing": np.array([U] * 12),
    "test_one": np.array(["p", "q", "p", "q", "p", "q"] + ["p"] * 5 + [U]),
    "tiny": np.array(["big"] * 6 + ["big"] * 5 + ["rare"]),
    "absent": np.array(["y"] * 6 + ["y", "y", "z", "z", "z", "z"]),
}


def _by_name(**kw):
    recs = classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST, missing_keys=["missing"], **kw)
    return {r.attribute: r for r in recs}


def test_each_case_classified():
    r = _by_name(min_clips=2)
    assert r["gender"].status == "usable" and r["gender"].same_as is None
    assert r["gender"].groups == ("f", "m") and r["gender"].usable
    assert r["sex"].usable and r["sex"].same_as == "gender"
    assert "'gender'" in r["sex"].reason
    assert r["constant"].status == "one_group" and not r["constant"].usable
    assert r["age"].status == "all_unknown"
    assert r["missing"].status == "missing_key" and "metadata key missing" in r["missing"].reason
    assert r["test_one"].status == "one_group" and "'p'" in r["test_one"].reason
    assert r["tiny"].status == "too_few_groups"
    assert r["absent"].usable
    # z is absent from training; y has one speaker (s4) in test
    small = {(g["group"], g["split"]): g for g in r["absent"].small_groups}
    assert small["z", "train"] == {"group": "z", "split": "train", "clips": 0, "speakers": 0}
    assert small["y", "test"] == {"group": "y", "split": "test", "clips": 2, "speakers": 1}
    assert set(small) == {("z", "train"), ("y", "test")}


def test_keep_unknown_makes_unknown_a_group():
    r = _by_name(min_clips=1, keep_unknown=True)
    assert r["test_one"].usable and r["test_one"].groups == ("p", U)


def test_bool_mask_equals_indices_and_order_follows_names():
    mask = np.zeros(12, bool)
    mask[TEST] = True
    a = classify_attributes(ATTRS, SPLITS, SPEAKERS, mask, names=["sex", "gender"])
    b = classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST, names=["sex", "gender"])
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    assert a[0].same_as is None and a[1].same_as == "sex"  # the first one named keeps it


def test_require_usable_fails_naming_each_attribute():
    recs = classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST, names=["constant", "age"])
    with pytest.raises(ValueError, match=r"constant: one known group.*age: every test clip"):
        require_usable(recs)
    # min_clips=1: "tiny" has two groups of >= 1 clip
    assert require_usable(classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST)) == [
        "absent", "gender", "sex", "tiny",
    ]  # fmt: skip


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="unknown attribute 'nope'"):
        classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST, names=["nope"])


def test_intersections_classified_after_the_attributes():
    # usable alone (u: 3, v: 2 test clips); with gender only f x u has 2 clips
    attrs = {**ATTRS, "pair": np.array(["u"] * 6 + ["u", "u", "v", "w", "u", "v"])}
    recs = classify_attributes(
        attrs, SPLITS, SPEAKERS, TEST, names=["gender", "constant", "pair", "absent"],
        intersections=[("gender", "sex"), ("gender", "constant"), "gender x pair",
                       ("gender", "absent")],
        min_clips=2,
    )  # fmt: skip
    assert [r.attribute for r in recs][4:] == [
        "gender x sex", "gender x constant", "gender x pair", "gender x absent",
    ]  # fmt: skip
    r = {x.attribute: x for x in recs}
    # two attributes of one partition: their intersection is that partition again
    assert r["gender x sex"].usable and r["gender x sex"].same_as == "gender"
    assert r["gender x sex"].groups == ("f x a", "m x b")
    left = r["gender x constant"]
    assert left.status == "component_left_out" and not left.usable
    assert left.reason == "its attribute 'constant' is left out (one known group in test ('x'))"
    assert r["pair"].usable and r["gender x pair"].status == "too_few_groups"
    assert "'f x u': 2, 'f x v': 1" in r["gender x pair"].reason
    both = r["gender x absent"]
    assert both.usable and both.same_as is None
    assert both.groups == ("f x y", "f x z", "m x z")
    small = {(g["group"], g["split"]): (g["clips"], g["speakers"]) for g in both.small_groups}
    assert small[("f x z", "train")] == (0, 0) and small[("m x z", "train")] == (0, 0)
    assert small[("m x z", "test")] == (2, 1)
    with pytest.raises(ValueError, match="unknown attribute 'nope'"):
        classify_attributes(ATTRS, SPLITS, SPEAKERS, TEST, intersections=[("gender", "nope")])
