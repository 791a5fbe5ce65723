"""Which attributes a study can analyse: classified from the data before any training.

:func:`study_attributes` runs :func:`fairrobust.groups.classify_attributes` on a
dataset and the study's evaluated clips, keeps the usable attributes and
intersections (an intersection is classified like an attribute, and left out
with any of its attributes) and fails fast, naming every attribute and why,
when none is usable; each attribute or intersection left out is logged with its reason
(``fairrobust.studies`` logger, so it is printed on the terminal).
:func:`write_attribute_status` writes the records to
``results/<study>_attributes.json`` (the report renders them) and
:func:`format_attribute_status` gives the terminal lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fairrobust import _io
from fairrobust.data import AudioDataset
from fairrobust.groups import SEPARATOR, AttributeStatus, classify_attributes, require_usable
from fairrobust.studies._store import logger

__all__ = [
    "attributes_file",
    "format_attribute_status",
    "study_attributes",
    "write_attribute_status",
]


def study_attributes(
    dataset: AudioDataset,
    evaluated: np.ndarray,
    names: Sequence[str],
    intersections: Sequence[tuple[str, ...]],
    *,
    min_clips: int,
    keep_unknown: bool = False,
    split_name: str = "test",
) -> tuple[list[str], list[tuple[str, ...]], list[AttributeStatus]]:
    """Usable attributes and intersections of a study, and the status of every attribute.

    Args:
      dataset: the loaded dataset (its ``report.missing_keys`` name absent metadata keys).
      evaluated: dataset indices of the evaluated clips.
      names: the attributes the config asks for.
      intersections: attribute-name tuples; one with an unusable component, or
        whose own groups are degenerate (one group, fewer than two of ``min_clips``),
        is dropped and its status says why.
      min_clips: the study's ``min_group_size``.
      keep_unknown: count ``"unknown"`` as a group.
      split_name: the evaluated split, for the messages.

    Returns:
      ``(usable names, kept intersections, statuses)``; statuses of the attributes,
      then of the intersections (named ``"a x b"``).

    Raises:
      ValueError: an attribute the dataset does not have, or no usable attribute
        (each attribute and its reason in the message).
    """
    for a in [*names, *(x for t in intersections for x in t)]:
        if a not in dataset.attributes:
            raise ValueError(
                f"attributes: dataset {dataset.name!r} has no attribute {a!r}; "
                f"available: {sorted(dataset.attributes)}"
            )
    statuses = classify_attributes(
        dataset.attributes,
        dataset.splits,
        dataset.speakers,
        evaluated,
        names=names,
        intersections=intersections,
        min_clips=min_clips,
        keep_unknown=keep_unknown,
        missing_keys=dataset.report.missing_keys,
        split_name=split_name,
    )
    plain = statuses[: len(names)]
    usable = require_usable(plain)
    for line in format_attribute_status(statuses):
        logger.warning("%s", line)  # on the terminal before any training
    kept_names = {s.attribute for s in statuses[len(names) :] if s.usable}
    kept = [t for t in intersections if SEPARATOR.join(t) in kept_names]
    return usable, kept, statuses


def attributes_file(results_dir: str | os.PathLike[str], study: str) -> Path:
    """``results_dir/<study>_attributes.json``."""
    return Path(results_dir) / f"{study}_attributes.json"


def write_attribute_status(
    results_dir: str | os.PathLike[str], study: str, statuses: Sequence[AttributeStatus]
) -> Path:
    """Write ``results/<study>_attributes.json``: ``{"attributes": [record, ...]}``."""
    return _io.atomic_write_json(
        attributes_file(results_dir, study),
        {"study": study, "attributes": [s.to_dict() for s in statuses]},
    )


def format_attribute_status(statuses: Sequence[AttributeStatus]) -> list[str]:
    """Terminal lines: one per attribute left out (with the reason) or reported with a note."""
    lines = []
    for s in statuses:
        kind = "intersection" if SEPARATOR in s.attribute else "attribute"
        if not s.usable:
            lines.append(f"{kind} {s.attribute!r} skipped: {s.reason}")
        elif s.same_as is not None:
            lines.append(f"{kind} {s.attribute!r}: {s.reason}")
    return lines
