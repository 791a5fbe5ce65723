"""Audio datasets with demographic attributes: loaders, preprocessing, cache, bundled data.

Every loader returns an :class:`AudioDataset` (float32 waveforms ``[n, T]`` in
[-1, 1] at ``sample_rate``, labels, speakers, splits, attributes, a
:class:`LoadReport`) and takes ``sample_rate=16000, duration=1.0, cache=True,
on_error="raise"``. :func:`load_dataset` dispatches on a name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fairrobust.data.audio import (
    fix_length,
    mulaw_decode,
    mulaw_encode,
    read_audio,
    resample,
)
from fairrobust.data.audiomnist import AUDIOMNIST_CLASSES, load_audiomnist
from fairrobust.data.bundled import BUNDLED_PATH, BUNDLED_SHA256, load_bundled
from fairrobust.data.commonvoice import CV_CLASSES, load_common_voice
from fairrobust.data.dataset import SPLITS, UNKNOWN, AudioDataset, LoadReport
from fairrobust.data.folder import load_folder
from fairrobust.data.fsdd import FSDD_CLASSES, load_fsdd
from fairrobust.data.splits import group_disjoint_split, stratified_split
from fairrobust.data.wuw import WUW_CLASSES, load_wuw, normalize_transcription

__all__ = [
    "AUDIOMNIST_CLASSES",
    "BUNDLED_PATH",
    "BUNDLED_SHA256",
    "CV_CLASSES",
    "DATASETS",
    "DATASET_OPTIONS",
    "FSDD_CLASSES",
    "SPLITS",
    "UNKNOWN",
    "WUW_CLASSES",
    "AudioDataset",
    "LoadReport",
    "dataset_options",
    "fix_length",
    "group_disjoint_split",
    "load_audiomnist",
    "load_bundled",
    "load_common_voice",
    "load_dataset",
    "load_folder",
    "load_fsdd",
    "load_wuw",
    "mulaw_decode",
    "mulaw_encode",
    "normalize_transcription",
    "read_audio",
    "resample",
    "stratified_split",
]

#: Dataset names accepted by :func:`load_dataset`.
DATASETS = ("bundled", "fsdd", "wuw", "audiomnist", "common-voice", "folder")
#: Options that only one dataset takes -> that dataset.
DATASET_OPTIONS = {"locale": "common-voice", "words": "common-voice"}
_LOADERS = {
    "fsdd": load_fsdd,
    "wuw": load_wuw,
    "audiomnist": load_audiomnist,
    "common-voice": load_common_voice,
    "folder": load_folder,
}


def dataset_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as loader ``name`` takes them: an option of another dataset
    (:data:`DATASET_OPTIONS`) is dropped when None and refused otherwise.

    Raises:
      ValueError: ``"option 'locale' applies only to common-voice, not to dataset 'fsdd'"``.
    """
    out = dict(options)
    for option, owner in DATASET_OPTIONS.items():
        if option in out and owner != name:
            if out[option] is not None:
                raise ValueError(
                    f"option {option!r} applies only to {owner}, not to dataset {name!r}"
                )
            del out[option]
    return out


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, **options: Any
) -> AudioDataset:
    """Load a dataset by name.

    Args:
      name: one of :data:`DATASETS` (``"common_voice"`` is accepted for ``"common-voice"``).
      data_dir: the dataset's root folder (for ``"folder"``: the CSV or its
        folder); must be ``None`` for ``"bundled"``.
      **options: loader keyword arguments (``sample_rate``, ``duration``,
        ``cache``, ``on_error`` and the loader's own, such as common-voice's
        ``locale`` and ``words``). An option of :data:`DATASET_OPTIONS` set to
        ``None`` is dropped for the other datasets, so a caller may always pass it.

    Returns:
      The :class:`AudioDataset`.

    Raises:
      ValueError: unknown name (valid names listed), a missing / extra ``data_dir``,
        or an option of another dataset (``"option 'locale' applies only to common-voice"``).
    """
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
    options = dataset_options(key, options)
    if key == "bundled":
        if data_dir is not None:
            raise ValueError(
                f"data_dir: the bundled dataset ships with fairrobust and takes no data_dir, "
                f"got {str(data_dir)!r} (use name='wuw' to load the full corpus from a folder)"
            )
        return load_bundled(**options)
    if data_dir is None:
        raise ValueError(f"data_dir: dataset {key!r} needs the folder it is stored in")
    return _LOADERS[key](data_dir, **options)
