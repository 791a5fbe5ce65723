"""The loaded-dataset record every loader returns and every later stage consumes."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["SPLITS", "UNKNOWN", "AudioDataset", "LoadReport"]

#: Split names, in order.
SPLITS = ("train", "val", "test")
#: Value used for a missing or unusable demographic attribute.
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a loader kept, dropped and changed, with reasons.

    Attributes:
      n_files: files listed by the dataset's metadata / layout.
      n_loaded: examples in the returned dataset.
      excluded: reason -> list of file paths (or row ids) left out.
      notes: human-readable remarks (resampled, down-mixed, unknown ages, ...).
      missing_keys: attributes whose metadata key no speaker / row has (every
        value :data:`UNKNOWN` because the key is absent, not because it was blank).
    """

    n_files: int = 0
    n_loaded: int = 0
    excluded: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    missing_keys: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line per exclusion reason and note."""
        lines = [f"{self.n_loaded} of {self.n_files} files loaded"]
        lines += [f"excluded ({reason}): {len(paths)}" for reason, paths in self.excluded.items()]
        lines += list(self.notes)
        lines += [f"metadata key missing (every value {UNKNOWN!r}): {k}" for k in self.missing_keys]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True, eq=False)
class AudioDataset:
    """A preprocessed audio classification dataset with demographic attributes.

    Attributes:
      name: dataset name (``"wuw"``, ``"fsdd"``, ...).
      waveforms: float32 ``[n, T]`` in [-1, 1], all at ``sample_rate``.
      labels: int32 ``[n]`` in ``[0, len(class_names))``.
      class_names: class names, index = label.
      speakers: str ``[n]`` speaker (or session) id of each example.
      splits: str ``[n]``, each one of :data:`SPLITS`.
      attributes: attribute name -> str ``[n]``; missing values are :data:`UNKNOWN`.
      sample_rate: Hz.
      paths: str ``[n]`` source file of each example (relative to the data root).
      report: the :class:`LoadReport` of the load.
      meta: loader options and preprocessing parameters (JSON-able).
    """

    name: str
    waveforms: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    speakers: np.ndarray
    splits: np.ndarray
    attributes: Mapping[str, np.ndarray]
    sample_rate: int
    paths: np.ndarray
    report: LoadReport = dataclasses.field(default_factory=LoadReport)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.waveforms.ndim != 2 or self.waveforms.shape[0] != n:
            raise ValueError(f"waveforms: expected shape (n={n}, T), got {self.waveforms.shape}")
        for field in ("speakers", "splits", "paths"):
            arr = getattr(self, field)
            if arr.shape != (n,):
                raise ValueError(f"{field}: expected shape ({n},), got {arr.shape}")
        for key, arr in self.attributes.items():
            if arr.shape != (n,):
                raise ValueError(f"attributes[{key!r}]: expected shape ({n},), got {arr.shape}")
        bad = set(np.unique(self.splits)) - set(SPLITS)
        if bad:
            raise ValueError(f"splits: unexpected split names {sorted(bad)}; expected {SPLITS}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels: expected values in [0, {len(self.class_names)}), "
                f"got [{self.labels.min()}, {self.labels.max()}]"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> AudioDataset:
        """The examples of one split (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {name!r}")
        return self.select(self.splits == name)

    def select(self, index: np.ndarray) -> AudioDataset:
        """A new dataset with the examples at ``index`` (boolean mask or integer indices)."""
        index = np.asarray(index)
        return dataclasses.replace(
            self,
            waveforms=self.waveforms[index],
            labels=self.labels[index],
            speakers=self.speakers[index],
            splits=self.splits[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
            paths=self.paths[index],
        )

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of waveforms, labels, splits, speakers and attributes."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.waveforms, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        for arr in (self.splits, self.speakers, self.paths):
            h.update("\x00".join(map(str, arr)).encode())
        for key in sorted(self.attributes):
            h.update(key.encode())
            h.update("\x00".join(map(str, self.attributes[key])).encode())
        h.update("\x00".join(self.class_names).encode())
        return h.hexdigest()[:16]
