"""Demographic group masks ``[g, n]`` for attributes and their intersections.

Every group metric in :mod:`fairrobust.metrics` is a masked reduction over a
boolean matrix ``masks[g, n]`` (``masks[j, i]`` is true when example ``i``
belongs to group ``j``). This module builds those matrices from the string
attribute table of a dataset (``AudioDataset.attributes``), with group names,
sizes, a minimum-size rule and a choice about ``"unknown"`` values.

Conventions:

* Groups are listed in sorted order of their names, so the same data always
  gives the same matrix.
* An intersection of attributes (``("gender", "dialect")``) is named
  ``"gender x dialect"`` and its groups ``"female x native"``; only the
  combinations that occur in the data are listed.
* A group whose (any) component value is ``"unknown"`` is dropped unless
  ``keep_unknown=True``; when kept it is an ordinary group.
* Groups with fewer than ``min_size`` examples stay in the masks (their rates
  are still computed and reported) but are flagged in ``small`` and
  ``valid[j] = False``, which excludes them from parity numbers (Defense Parity,
  FPR Parity, fairness gaps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ALL_PAIRS",
    "SEPARATOR",
    "UNKNOWN",
    "UNUSABLE_STATUSES",
    "USABLE",
    "AttributeStatus",
    "Groups",
    "all_groups",
    "classify_attributes",
    "group_masks",
    "parse_intersections",
    "require_usable",
    "training_group_sizes",
    "with_speakers",
]

#: Value of a missing demographic attribute (same as ``fairrobust.data.dataset.UNKNOWN``).
UNKNOWN = "unknown"
#: Joins attribute names and values of an intersection: ``"gender x dialect"``.
SEPARATOR = " x "
#: Intersection spec meaning every pair of the analysed attributes.
ALL_PAIRS = "all-pairs"


@dataclasses.dataclass(frozen=True, eq=False)
class Groups:
    """Group masks of one attribute (or one intersection of attributes).

    Attributes:
      attribute: attribute name, or names joined by ``" x "`` for an intersection.
      components: the attribute names making up ``attribute`` (one for a plain
        attribute).
      names: group names, sorted; intersection names join values by ``" x "``.
      values: per group, the tuple of component values (``names[j]`` split).
      masks: jnp bool ``[g, n]``; ``masks[j, i]`` iff example ``i`` is in group ``j``.
      sizes: numpy int ``[g]``, number of examples in each group.
      min_size: the minimum group size for a group to count in parity numbers.
      small: names of the groups with ``sizes < min_size`` (kept, flagged).
      unknown_kept: whether groups with an ``"unknown"`` value were kept.
      speaker_counts: numpy int ``[g]`` distinct speakers in each group, or None
        when not known (:func:`with_speakers`).
      min_speakers: the fewest speakers (independent clusters) for a group to
        count in parity numbers and comparisons (1 without speaker counts).
    """

    attribute: str
    components: tuple[str, ...]
    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    masks: jax.Array
    sizes: np.ndarray
    min_size: int
    small: tuple[str, ...]
    unknown_kept: bool
    speaker_counts: np.ndarray | None = None
    min_speakers: int = 1

    @property
    def valid(self) -> np.ndarray:
        """numpy bool ``[g]``: groups that count for parity and comparisons
        (``size >= min_size`` and, with speaker counts, ``speakers >= min_speakers``)."""
        ok = np.asarray(self.sizes) >= self.min_size
        if self.speaker_counts is not None:
            ok &= np.asarray(self.speaker_counts) >= self.min_speakers
        return ok

    @property
    def few_speakers(self) -> tuple[str, ...]:
        """Names of the groups with fewer than ``min_speakers`` speakers."""
        if self.speaker_counts is None:
            return ()
        return tuple(
            n
            for n, c in zip(self.names, np.asarray(self.speaker_counts), strict=True)
            if c < self.min_speakers
        )

    def reason(self, j: int) -> str:
        """Why group ``j`` is left out of parity ("" when it counts)."""
        why = []
        if int(np.asarray(self.sizes)[j]) < self.min_size:
            why.append(f"under min size {self.min_size}")
        if self.speaker_counts is not None and self.speaker_counts[j] < self.min_speakers:
            k = int(self.speaker_counts[j])
            why.append(
                f"{k} speaker{'' if k == 1 else 's'} (fewer than {self.min_speakers}: "
                "no interval, no comparison)"
            )
        return "; ".join(why)

    @property
    def num_groups(self) -> int:
        """Number of groups ``g``."""
        return len(self.names)

    @property
    def num_examples(self) -> int:
        """Number of examples ``n`` (columns of ``masks``)."""
        return int(self.masks.shape[1])

    def index(self, name: str) -> int:
        """Position of group ``name``; ``ValueError`` listing the names if absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(
                f"group {name!r} not in attribute {self.attribute!r}; groups: {list(self.names)}"
            ) from None

    def to_dict(self) -> dict:
        """JSON-able summary (no masks): names, sizes, validity, flags."""
        return {
            "attribute": self.attribute,
            "components": list(self.components),
            "names": list(self.names),
            "sizes": [int(s) for s in self.sizes],
            "valid": [bool(v) for v in self.valid],
            "min_size": int(self.min_size),
            "small": list(self.small),
            "unknown_kept": bool(self.unknown_kept),
            "speaker_counts": None
            if self.speaker_counts is None
            else [int(c) for c in self.speaker_counts],
            "min_speakers": int(self.min_speakers),
            "few_speakers": list(self.few_speakers),
        }


def _components(attributes: Mapping[str, np.ndarray], attribute: str | Sequence[str]) -> tuple:
    """Normalise ``attribute`` to a tuple of attribute names and check they exist."""
    if isinstance(attribute, str):
        if attribute not in attributes and SEPARATOR in attribute:
            names = tuple(a.strip() for a in attribute.split(SEPARATOR))
        else:
            names = (attribute,)
    else:
        names = tuple(attribute)
    if not names:
        raise ValueError("attribute: expected an attribute name or a non-empty sequence of names")
    available = sorted(attributes)
    for name in names:
        if not isinstance(name, str) or name not in attributes:
            raise ValueError(f"attribute: unknown attribute {name!r}; available: {available}")
    if len(set(names)) != len(names):
        raise ValueError(f"attribute: repeated attribute in intersection {list(names)}")
    return names


def _column(attributes: Mapping[str, np.ndarray], name: str, n: int | None) -> np.ndarray:
    """Attribute column as a 1-D str array, checked against the expected length."""
    col = np.asarray(attributes[name]).astype(str)
    if col.ndim != 1:
        raise ValueError(f"attributes[{name!r}]: expected shape (n,), got {col.shape}")
    if n is not None and col.shape[0] != n:
        raise ValueError(f"attributes[{name!r}]: expected length {n}, got {col.shape[0]}")
    return col


def group_masks(
    attributes: Mapping[str, np.ndarray],
    attribute: str | Sequence[str],
    *,
    min_size: int = 1,
    keep_unknown: bool = False,
) -> Groups:
    """Boolean group masks for one attribute or an intersection of attributes.

    Example: ``group_masks(ds.attributes, "gender")`` gives one row per gender;
    ``group_masks(ds.attributes, ("gender", "dialect"))`` (or the string
    ``"gender x dialect"``) one row per (gender, dialect) combination that occurs.

    Args:
      attributes: attribute name -> str array ``[n]`` (``AudioDataset.attributes``);
        missing values are ``"unknown"``.
      attribute: an attribute name, or a sequence of names for their intersection.
      min_size: groups with fewer examples are kept in the masks but listed in
        ``Groups.small`` and have ``valid = False`` (excluded from parity). >= 1.
      keep_unknown: keep groups having ``"unknown"`` in any component (default:
        drop them, so their examples are in no group).

    Returns:
      A :class:`Groups` with masks jnp bool ``[g, n]`` and groups in sorted name order.

    Raises:
      ValueError: unknown attribute name (the message lists the available ones),
        columns of different lengths, or ``min_size < 1``.
    """
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size: expected an integer >= 1, got {min_size!r}")
    comps = _components(attributes, attribute)
    n = None
    cols = []
    for name in comps:
        col = _column(attributes, name, n)
        n = col.shape[0]
        cols.append(col)
    assert n is not None
    table = np.stack(cols, axis=1)
    combos = sorted({tuple(str(v) for v in row) for row in table}, key=SEPARATOR.join)
    if not keep_unknown:
        combos = [c for c in combos if UNKNOWN not in c]
    masks = np.zeros((len(combos), n), dtype=bool)
    for j, combo in enumerate(combos):
        masks[j] = np.all(table == np.asarray(combo, dtype=str)[None, :], axis=1)
    sizes = masks.sum(axis=1).astype(np.int64)
    names = tuple(SEPARATOR.join(c) for c in combos)
    small = tuple(nm for nm, s in zip(names, sizes, strict=True) if s < min_size)
    return Groups(
        attribute=SEPARATOR.join(comps),
        components=comps,
        names=names,
        values=tuple(combos),
        masks=jnp.asarray(masks),
        sizes=sizes,
        min_size=int(min_size),
        small=small,
        unknown_kept=bool(keep_unknown),
    )


def all_groups(
    attributes: Mapping[str, np.ndarray],
    names: Iterable[str] | None = None,
    intersections: Iterable[str | Sequence[str]] = (),
    **kwargs,
) -> dict[str, Groups]:
    """Groups for several attributes and intersections at once.

    Args:
      attributes: attribute name -> str array ``[n]``.
      names: attributes to include (default: every attribute, sorted).
      intersections: each a sequence of attribute names (or a ``"a x b"`` string).
      **kwargs: passed to :func:`group_masks` (``min_size``, ``keep_unknown``).

    Returns:
      ``{groups.attribute: groups}`` in the order given (plain attributes first).
    """
    names = sorted(attributes) if names is None else list(names)
    out: dict[str, Groups] = {}
    for spec in [*names, *intersections]:
        g = group_masks(attributes, spec, **kwargs)
        out[g.attribute] = g
    return out


def with_speakers(groups: Groups, speakers: Any, min_speakers: int) -> Groups:
    """``groups`` with its speaker counts: groups under ``min_speakers`` stop counting.

    A group of one speaker is one independent unit: its examples are not
    independent evidence about the group, a bootstrap resamples it to itself, and a
    difference between two one-speaker groups is a difference between two people.

    Args:
      groups: groups over ``n`` examples.
      speakers: ``[n]`` speaker id of each example.
      min_speakers: integer >= 1.

    Returns:
      A copy with ``speaker_counts`` and ``min_speakers`` set.
    """
    if isinstance(min_speakers, bool) or not isinstance(min_speakers, int) or min_speakers < 1:
        raise ValueError(f"min_speakers: expected an integer >= 1, got {min_speakers!r}")
    sp = np.asarray(speakers).astype(str)
    m = np.asarray(groups.masks).astype(bool)
    if sp.shape != (m.shape[1],):
        raise ValueError(f"speakers: expected shape ({m.shape[1]},), got {sp.shape}")
    counts = np.asarray([len(np.unique(sp[row])) for row in m], np.int64).reshape(-1)
    return dataclasses.replace(groups, speaker_counts=counts, min_speakers=int(min_speakers))


def training_group_sizes(train_attributes: Mapping[str, np.ndarray], groups: Groups) -> np.ndarray:
    """Number of training examples in each group of ``groups``.

    Used for the paper's correlation between group representation in training,
    ``|X_train,s|``, and the group's AUC_FPR (AISec paper section 5.2).

    Args:
      train_attributes: attribute table of the training split (name -> str ``[n_train]``),
        e.g. ``{k: v[ds.splits == "train"] for k, v in ds.attributes.items()}``.
      groups: groups built on the evaluation data.

    Returns:
      numpy int64 ``[g]``; 0 for a group absent from training.

    Raises:
      ValueError: an attribute of ``groups`` is missing from ``train_attributes``.
    """
    n = None
    cols = []
    for name in groups.components:
        if name not in train_attributes:
            raise ValueError(
                f"train_attributes: missing attribute {name!r}; available: "
                f"{sorted(train_attributes)}"
            )
        col = _column(train_attributes, name, n)
        n = col.shape[0]
        cols.append(col)
    table = np.stack(cols, axis=1)
    return np.asarray(
        [
            int(np.all(table == np.asarray(combo, dtype=str)[None, :], axis=1).sum())
            for combo in groups.values
        ],
        dtype=np.int64,
    )


def parse_intersections(
    specs: str | Iterable[str | Sequence[str]] | None,
    attributes: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], ...]:
    """The one parser of intersection specs: ``"a x b"``, ``"a,b"``, ``"a+b"``, ``"all-pairs"``.

    A string may hold several specs separated by ``;``; a sequence may mix
    strings and tuples of attribute names. ``"all-pairs"`` expands to every pair
    of ``attributes`` (in their order); without ``attributes`` it is kept as the
    one-element marker ``("all-pairs",)`` to be expanded once the attributes are
    known. Duplicates are dropped, order is kept.

    Args:
      specs: ``None``, one string, or a sequence of strings / name tuples.
      attributes: the analysed attribute names (expands ``all-pairs``).

    Returns:
      A tuple of attribute-name tuples, each of length >= 2 (or the marker).

    Raises:
      ValueError: a spec with fewer than two attribute names, or a repeated name.
    """
    if specs is None:
        return ()
    items: list[str | Sequence[str]] = [specs] if isinstance(specs, str) else list(specs)
    out: list[tuple[str, ...]] = []
    for item in items:
        if not isinstance(item, str):
            names = tuple(str(a).strip() for a in item)
            if names == (ALL_PAIRS,):
                item = ALL_PAIRS
            else:
                out.append(_checked_spec(names, item))
                continue
        for spec in (s.strip() for s in item.split(";")):
            if not spec:
                continue
            if spec == ALL_PAIRS:
                if attributes is None:
                    out.append((ALL_PAIRS,))
                else:
                    names_ = list(attributes)
                    out += [(a, b) for i, a in enumerate(names_) for b in names_[i + 1 :]]
                continue
            parts = spec.replace("+", ",").replace(SEPARATOR, ",").split(",")
            out.append(_checked_spec(tuple(p.strip() for p in parts if p.strip()), spec))
    return tuple(dict.fromkeys(out))


def _checked_spec(names: tuple[str, ...], spec: object) -> tuple[str, ...]:
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(
            f"intersections: expected 'a x b', 'a,b' or 'all-pairs' (two or more different "
            f"attributes), got {spec!r}"
        )
    return names


#: Status of an attribute that the studies analyse.
USABLE = "usable"
#: Statuses of attributes left out of every analysis and figure (with their reason).
UNUSABLE_STATUSES = (
    "missing_key",
    "all_unknown",
    "one_group",
    "too_few_groups",
    "component_left_out",
)


@dataclasses.dataclass(frozen=True)
class AttributeStatus:
    """Whether one attribute can be analysed, and why not.

    Attributes:
      attribute: attribute name.
      status: ``"usable"``; or, left out of analyses, ``"missing_key"`` (the
        metadata has no such key: every value ``"unknown"``), ``"all_unknown"``,
        ``"one_group"`` (one known group in the evaluated split),
        ``"too_few_groups"`` (fewer than two groups with ``min_clips`` evaluated clips),
        ``"component_left_out"`` (an intersection one of whose attributes is left out).
      reason: one human-readable sentence (empty for a plain usable attribute).
      groups: known group names in the evaluated split, sorted.
      same_as: an earlier attribute inducing the same partition of the evaluated
        clips (the attribute is still analysed; its numbers repeat that one's), or None.
      small_groups: records ``{"group", "split", "clips", "speakers"}`` of groups
        with fewer than ``min_clips`` clips or ``min_speakers`` speakers in the
        training or the evaluated split (0 clips = absent from that split).
    """

    attribute: str
    status: str
    reason: str = ""
    groups: tuple[str, ...] = ()
    same_as: str | None = None
    small_groups: tuple[dict, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether the attribute is analysed (``status == "usable"``)."""
        return self.status == USABLE

    def to_dict(self) -> dict:
        """JSON-able record."""
        return {
            "attribute": self.attribute,
            "status": self.status,
            "usable": self.usable,
            "reason": self.reason,
            "groups": list(self.groups),
            "same_as": self.same_as,
            "small_groups": [dict(g) for g in self.small_groups],
        }


def _first_seen_labels(col: np.ndarray) -> tuple[int, ...]:
    """Partition labels numbered in order of first appearance (equal iff same partition)."""
    seen: dict[str, int] = {}
    return tuple(seen.setdefault(str(v), len(seen)) for v in col)


def _small_groups(
    col: np.ndarray,
    speakers: np.ndarray,
    mask: np.ndarray,
    split: str,
    groups: Sequence[str],
    min_clips: int,
    min_speakers: int,
) -> list[dict]:
    """Groups of ``groups`` under ``min_clips`` clips or ``min_speakers`` speakers in ``mask``."""
    out = []
    for g in groups:
        in_g = mask & (col == g)
        clips, spk = int(in_g.sum()), len(set(speakers[in_g].tolist()))
        if clips < min_clips or spk < min_speakers:
            out.append({"group": g, "split": split, "clips": clips, "speakers": spk})
    return out


def classify_attributes(
    attributes: Mapping[str, np.ndarray],
    splits: np.ndarray,
    speakers: np.ndarray,
    evaluated: np.ndarray,
    *,
    names: Iterable[str] | None = None,
    intersections: Iterable[str | Sequence[str]] = (),
    min_clips: int = 1,
    min_speakers: int = 2,
    keep_unknown: bool = False,
    missing_keys: Iterable[str] = (),
    split_name: str = "test",
) -> list[AttributeStatus]:
    """Classify each attribute before any training: usable, or why it cannot be analysed.

    An attribute is analysed only when its evaluated clips fall into at least
    two known groups with ``min_clips`` clips or more each (FPR Parity and Defense
    Parity are gaps between groups). Otherwise its status says why: the
    metadata key is missing (``missing_keys``, from the loader), every value is
    ``"unknown"``, one known group, or fewer than two groups of ``min_clips``.
    Usable attributes are also checked for a partition of the evaluated clips
    identical to an earlier one's (``same_as``) and for groups under the
    minimum clips / speakers in the training or the evaluated split
    (``small_groups``); these are reported, not dropped. Intersections are
    classified after the plain attributes by the same rules (their groups join
    the component values with ``" x "``; a clip unknown in any component is
    unknown), or ``"component_left_out"`` when one of their attributes is not
    usable; an intersection inducing the partition of one of its attributes
    (e.g. of two attributes with one partition) gets ``same_as``.

    Args:
      attributes: attribute name -> str ``[n]`` over the whole dataset.
      splits: str ``[n]``, ``"train"`` / ``"val"`` / ``"test"``.
      speakers: str ``[n]`` speaker ids.
      evaluated: int indices (or bool mask ``[n]``) of the evaluated clips.
      names: attributes to classify (default every attribute, sorted).
      intersections: attribute-name tuples (or ``"a x b"`` strings), after ``names``.
      min_clips: the study's minimum group size (``min_group_size``), >= 1.
      min_speakers: groups with fewer speakers are listed in ``small_groups``.
      keep_unknown: count ``"unknown"`` as a group (as :func:`group_masks` does).
      missing_keys: attributes the loader found absent from the metadata.
      split_name: name of the evaluated split in the records.

    Returns:
      One :class:`AttributeStatus` per attribute, in the order of ``names``, then
      one per intersection (named ``"a x b"``), in the order given.

    Raises:
      ValueError: an attribute name the table does not have.
    """
    names = sorted(attributes) if names is None else list(names)
    splits, speakers = np.asarray(splits).astype(str), np.asarray(speakers).astype(str)
    n = splits.shape[0]
    ev = np.zeros(n, dtype=bool)
    ev[np.asarray(evaluated)] = True
    train = splits == "train"
    missing = set(missing_keys)
    out: list[AttributeStatus] = []
    partitions: dict[tuple[int, ...], str] = {}

    def classify(name: str, col: np.ndarray, status: str, reason: str) -> AttributeStatus:
        values = sorted(set(col[ev].tolist()))
        known = [v for v in values if keep_unknown or v != UNKNOWN]
        sizes = {g: int((col[ev] == g).sum()) for g in known}
        big = [g for g in known if sizes[g] >= min_clips]
        if status == USABLE and not known:
            status, reason = "all_unknown", f"every {split_name} clip is 'unknown'"
        elif status == USABLE and len(known) == 1:
            status, reason = "one_group", f"one known group in {split_name} ({known[0]!r})"
        elif status == USABLE and len(big) < 2:
            status = "too_few_groups"
            reason = f"fewer than two groups with >= {min_clips} {split_name} clips (sizes {sizes})"
        same_as = None
        small: list[dict] = []
        if status == USABLE:
            key = _first_seen_labels(col[ev])
            same_as = partitions.setdefault(key, name)
            same_as = None if same_as == name else same_as
            if same_as is not None:
                reason = f"same partition of the {split_name} clips as {same_as!r}"
            small = _small_groups(col, speakers, train, "train", known, min_clips, min_speakers)
            small += _small_groups(col, speakers, ev, split_name, known, min_clips, min_speakers)
        return AttributeStatus(name, status, reason, tuple(known), same_as, tuple(small))

    for name in names:
        if name not in attributes:
            raise ValueError(
                f"attribute: unknown attribute {name!r}; available: {sorted(attributes)}"
            )
        status, reason = USABLE, ""
        if name in missing:
            status, reason = "missing_key", "metadata key missing: every value is 'unknown'"
        out.append(classify(name, _column(attributes, name, n), status, reason))
    by_name = {s.attribute: s for s in out}
    for spec in intersections:
        comps = _components(attributes, spec)
        name = SEPARATOR.join(comps)
        table = np.stack([_column(attributes, a, n) for a in comps], axis=1)
        col = np.asarray([SEPARATOR.join(row) for row in table.tolist()], dtype=str)
        if not keep_unknown:  # as group_masks: a clip unknown in any component is in no group
            col = np.where((table == UNKNOWN).any(axis=1), UNKNOWN, col)
        status, reason = USABLE, ""
        left_out = [by_name[a] for a in comps if a in by_name and not by_name[a].usable]
        if left_out:
            status = "component_left_out"
            reason = "; ".join(
                f"its attribute {c.attribute!r} is left out ({c.reason})" for c in left_out
            )
        out.append(classify(name, col, status, reason))
    return out


def require_usable(statuses: Sequence[AttributeStatus]) -> list[str]:
    """Names of the usable attributes; ``ValueError`` naming each attribute and why if none.

    Args:
      statuses: records of :func:`classify_attributes`.

    Returns:
      The usable attribute names, in order.

    Raises:
      ValueError: no attribute is usable (the message lists every attribute and its reason).
    """
    usable = [s.attribute for s in statuses if s.usable]
    if not usable:
        why = "; ".join(f"{s.attribute}: {s.reason}" for s in statuses) or "no attribute given"
        raise ValueError(f"attributes: no usable attribute to analyse ({why})")
    return usable
