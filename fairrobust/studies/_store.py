"""Helpers shared by the studies: grids, member ids, resume bookkeeping, caches, configs, tables.

Nothing here knows about a particular study. A study is a grid of *members*
(one trained model, or one model evaluated one way); each member's outcome is
saved as an ``.npz`` of arrays plus a ``.json`` of metadata, the JSON written
last so that its presence marks the member finished. Member file names carry a
hash of everything the outcome depends on (the member's *spec*), so a changed
setting can never pick up a stale result: it looks for a different file.

Public functions:
  * :func:`expand_grid` -- cartesian product of named axes, in a fixed order.
  * :func:`member_id` -- ``<readable-label>-<hash of spec>``.
  * :func:`save_member` / :func:`load_member` -- atomic write / validated read.
  * :func:`seeded_subset` -- the sorted seeded subset of evaluated examples.
  * :func:`train_or_load` -- a study's trained model (:class:`TrainedModel`): a
    finished checkpoint is loaded, anything else trained or resumed;
    :func:`train_models` -- several at once as one grid (``engine.grid``), each
    with its own checkpoints.
  * :func:`save_cached` / :func:`load_cached` -- arrays in an ``.npz`` keyed by a
    hash of their inputs; :func:`cached_batches` -- a resumable batched loop over
    examples whose partial result is such a cache entry.
  * :func:`apply_overrides` / :func:`load_toml_overrides` -- config fields from a
    mapping or a TOML file, validated against the dataclass's annotations.
  * :func:`write_table` -- a list of dicts to ``.csv`` and ``.json`` atomically.
  * :func:`check_config_change` -- compare with the config a previous run saved.
  * :func:`write_provenance` / :func:`verify_provenance` -- the provenance sidecar
    ``results/<prefix>_provenance.json`` of a study's results files.
  * :func:`library_version`; :func:`environment` -- Python, library versions, JAX
    backend and devices, CPU model.

Provenance: every results file of a study (``results/<prefix>_*``) is vouched for by
the sidecar ``<prefix>_provenance.json``, written last: the study, dataset name, data
fingerprint, full config and its hash, the library version, the environment
(:func:`environment`), and the SHA-256 of every results file of that run. A table
whose bytes do not match the sidecar (e.g. left by a run that was killed while
rewriting the tables) is detected by
:func:`verify_provenance`. The sidecar holds no timestamps, so it is byte-identical
across reruns like the tables it describes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import itertools
import logging
import os
import platform
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from fairrobust import _io, models
from fairrobust._io import (
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    file_md5,
    read_json,
    stable_hash,
    to_jsonable,
)
from fairrobust._version import __version__
from fairrobust.engine.grid import train_grid
from fairrobust.engine.runtime import Runtime
from fairrobust.train import TrainConfig, load_checkpoint, train

__all__ = [
    "TrainedModel",
    "attribute_slug",
    "cached_batches",
    "check_config_change",
    "environment",
    "expand_grid",
    "format_value",
    "library_version",
    "load_cached",
    "load_member",
    "logger",
    "member_id",
    "save_cached",
    "save_member",
    "seeded_subset",
    "slugify",
    "train_info",
    "train_models",
    "train_or_load",
    "verify_provenance",
    "write_provenance",
    "write_table",
]

#: Suffix of the provenance sidecar: ``results/<prefix>_provenance.json``.
PROVENANCE_SUFFIX = "_provenance.json"

logger = logging.getLogger("fairrobust.studies")

C = TypeVar("C")


def library_version() -> str:
    """The fairrobust version (``fairrobust.__version__``)."""
    return __version__


#: Distributions whose versions :func:`environment` records.
ENVIRONMENT_PACKAGES = (
    "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "scikit-learn", "librosa",
)  # fmt: skip


def _cpu_model() -> str:
    """``model name`` of ``/proc/cpuinfo`` (Linux), else ``platform``'s description."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict[str, Any]:
    """What the numbers of a run depend on besides config, data and seed.

    Recorded in every provenance sidecar (:func:`write_provenance`) and in a run's
    ``config.json``, so that results that differ from another machine's can be
    traced to a version, backend or CPU. Deterministic on one machine (no times,
    no host names), so sidecars stay byte-identical across reruns.

    Returns:
      ``{"python": "3.11.x", "packages": {name: version or "not installed"}`` for
      jax, jaxlib, flax, optax, numpy, scipy, scikit-learn, librosa, ``"platform"``
      (OS and machine), ``"jax_backend"`` (``jax.default_backend()``),
      ``"jax_devices"`` (``"<platform>: <device kind>"`` per device) and
      ``"cpu_model"`` (``/proc/cpuinfo``'s model name, else ``platform``'s).
    """
    packages = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "python": platform.python_version(),
        "packages": packages,
        "platform": f"{platform.system()} {platform.machine()}",
        "jax_backend": jax.default_backend(),
        "jax_devices": [f"{d.platform}: {d.device_kind}" for d in jax.devices()],
        "cpu_model": _cpu_model(),
    }


def format_value(value: Any) -> str:
    """Compact, stable text of a grid value: ``0.001`` -> ``"0.001"``, ``1e-4`` -> ``"0.0001"``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = np.format_float_positional(value, trim="-")
        return text
    return str(value)


def attribute_slug(name: str) -> str:
    """File-name form of an attribute name (``"gender x age"`` -> ``"gender_x_age"``).

    The rejection study's figure and per-example array names use it; the report finds
    those figures with it.
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "attr"


def slugify(text: str) -> str:
    """File-name-safe version of ``text`` (letters, digits, ``.``, ``_``, ``-``, ``+``, ``=``)."""
    slug = re.sub(r"[^A-Za-z0-9._+=-]+", "-", str(text)).strip("-")
    return slug or "x"


def expand_grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of named axes, the first axis varying slowest.

    Args:
      axes: axis name -> values (order kept; duplicates removed, first kept).

    Returns:
      One dict per grid point, ``len = prod(len(values))``.

    Raises:
      ValueError: an axis is empty.
    """
    names = list(axes)
    values = []
    for name in names:
        vals = list(dict.fromkeys(axes[name]))
        if not vals:
            raise ValueError(f"grid axis {name!r}: expected at least one value, got none")
        values.append(vals)
    return [dict(zip(names, point, strict=True)) for point in itertools.product(*values)]


def member_id(label: str, spec: Any, length: int = 8) -> str:
    """``<slugified label>-<stable hash of spec>``: readable and unique per spec."""
    return f"{slugify(label)}-{stable_hash(spec, length)}"


def save_member(
    directory: str | os.PathLike[str],
    name: str,
    *,
    spec_hash: str,
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
) -> tuple[Path, Path]:
    """Write a finished member: ``<name>.npz`` first, then ``<name>.json`` (the marker).

    The JSON holds ``meta`` plus ``spec_hash`` and the MD5 of the npz, which
    :func:`load_member` checks.

    Returns:
      ``(json_path, npz_path)``.
    """
    directory = Path(directory)
    if not _io.writable(directory / f"{name}.npz"):  # not process 0 of a multi-process run
        return directory / f"{name}.json", directory / f"{name}.npz"
    npz_path = atomic_write_npz(directory / f"{name}.npz", **arrays)
    record = dict(meta)
    record["spec_hash"] = spec_hash
    record["arrays_file"] = npz_path.name
    record["arrays_md5"] = file_md5(npz_path)
    json_path = atomic_write_json(directory / f"{name}.json", record)
    return json_path, npz_path


def load_member(
    directory: str | os.PathLike[str], name: str, *, spec_hash: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read a member saved by :func:`save_member` if it is finished and matches ``spec_hash``.

    Returns ``None`` (and logs why) when the member is missing, unfinished, was
    written for another spec, or its arrays do not match the recorded checksum;
    the caller then recomputes it. Never returns a result for a different spec.

    Returns:
      ``(meta, arrays)`` or ``None``.
    """
    directory = Path(directory)
    json_path = directory / f"{name}.json"
    npz_path = directory / f"{name}.npz"
    if not json_path.exists():
        return None
    try:
        meta = read_json(json_path)
    except ValueError as exc:
        logger.warning("%s: unreadable (%s); recomputing this member", json_path, exc)
        return None
    if meta.get("spec_hash") != spec_hash:
        logger.warning(
            "%s: written for settings %s, now %s; not reusing it, recomputing",
            json_path,
            meta.get("spec_hash"),
            spec_hash,
        )
        return None
    if not npz_path.exists() or file_md5(npz_path) != meta.get("arrays_md5"):
        logger.warning("%s: missing or does not match %s; recomputing", npz_path, json_path.name)
        return None
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return meta, arrays


# ----------------------------------------------------------------------------- evaluated examples


def seeded_subset(indices: Any, cap: int | None, seed: int, salt: int | None = None) -> np.ndarray:
    """A sorted, seeded random subset of ``indices`` of size ``cap``.

    Every study evaluates "at most ``cap`` examples" this way, so a subset is a
    pure function of ``(indices, cap, seed, salt)``: the generator is
    ``numpy.random.default_rng(seed)`` without a salt, ``default_rng([seed, salt])``
    with one (a salt keeps subsets of different uses of one seed independent), and
    the subset is ``sort(rng.choice(indices, cap, replace=False))``.

    Args:
      indices: 1-D array of candidates (e.g. the dataset indices of a split).
      cap: subset size; 0 or None (or ``cap >= len(indices)``) keeps all.
      seed: the study seed.
      salt: optional integer mixed into the seed.

    Returns:
      ``indices`` itself when everything is kept, else the sorted subset ``[cap]``.

    Raises:
      ValueError: ``indices`` is not 1-D or ``cap`` is negative.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"indices: expected a 1-D array, got shape {idx.shape}")
    if cap is not None and cap < 0:
        raise ValueError(f"cap: expected None or an integer >= 0, got {cap!r}")
    if not cap or cap >= idx.size:
        return idx
    rng = np.random.default_rng(seed if salt is None else [seed, salt])
    return np.sort(rng.choice(idx, cap, replace=False))


# ----------------------------------------------------------------------------- trained models


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedModel:
    """A trained model of a study, ready to evaluate (what :func:`train_or_load` returns).

    Attributes:
      model: the :class:`fairrobust.models.M5`.
      variables: its selected variables (lowest validation loss).
      apply_fn: ``fairrobust.models.logits_fn(model)``, eval-mode logits.
      info: the selected epoch's record (:func:`train_info`), an external model's
        record (``studies.external.ExternalModel.record``), or None when unknown.
    """

    model: Any
    variables: Any
    apply_fn: Callable[[Any, Any], Any]
    info: Mapping[str, Any] | None = None


def train_info(history: Sequence[Mapping[str, Any]], best_epoch: int) -> dict[str, Any]:
    """Summary of a training history: best_epoch, epochs run, and the best epoch's metrics."""
    best = next((h for h in history if h.get("epoch") == best_epoch), {})
    return {
        "best_epoch": best_epoch,
        "epochs": len(history),
        "val_loss": best.get("val_loss"),
        "val_acc": best.get("val_acc"),
        "train_acc": best.get("train_acc"),
    }


def train_or_load(
    dataset: Any,
    train_config: TrainConfig,
    folder: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
) -> TrainedModel:
    """Train (or resume) ``train_config`` on ``dataset`` in ``folder``; a finished run is loaded.

    With ``resume``, a ``folder/last.ckpt`` of the same config and data that has run
    every epoch is read back (its best variables; ``best.ckpt`` if it lacks them)
    without building a train state. Otherwise :func:`fairrobust.train.train` runs
    (it resumes an unfinished ``last.ckpt`` when ``resume``, and raises when that
    checkpoint is for another config or data). Either way the result is the same
    variables and history.

    Args:
      dataset: the :class:`fairrobust.data.AudioDataset` (train / val splits).
      train_config: the :class:`fairrobust.train.TrainConfig`.
      folder: checkpoint folder of this model.
      resume: reuse / continue checkpoints in ``folder`` (False trains from scratch).
      progress: show the training progress bar.

    Returns:
      A :class:`TrainedModel` with ``info`` from the training history.
    """
    out = Path(folder)
    last = out / "last.ckpt"
    ck = None
    if resume and last.is_file():
        try:
            ck = load_checkpoint(last)
        except (ValueError, FileNotFoundError):
            ck = None
    if (
        ck is not None
        and ck.config == train_config
        and ck.epoch >= train_config.epochs
        and ck.dataset_fingerprint == dataset.fingerprint()
    ):
        info = train_info(ck.history, ck.best_epoch)
        if ck.best_variables is not None:
            model, variables = ck.model, ck.best_variables
        else:
            best = load_checkpoint(out / "best.ckpt")
            model, variables = best.model, best.variables
    else:
        res = train(dataset, train_config, out_dir=out, resume=resume, progress=progress)
        model, variables = res.model, res.variables
        info = train_info(res.history, res.best_epoch)
    apply_fn = models.logits_fn(model)  # pyright: ignore[reportArgumentType]
    return TrainedModel(model, variables, apply_fn, info)


def train_models(
    dataset: Any,
    configs: Sequence[TrainConfig],
    folders: Sequence[str | os.PathLike[str]],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
) -> list[TrainedModel]:
    """Train (or read back) ``configs`` as one grid, each in its folder.

    ``fairrobust.engine.grid.train_grid`` trains the members of equal structure in
    one jitted step (vmapped on accelerators, ``lax.map`` on CPU, split over the
    runtime's ``train_mesh``); every member writes the checkpoints ``train.train``
    writes, so a finished member is read back and a killed grid resumes each member
    from its own last epoch. Each model's ``apply_fn`` is its evaluation form on
    this runtime (``Runtime.eval_model``).

    Returns:
      One :class:`TrainedModel` per config, in order.
    """
    if not configs:
        return []
    rt = runtime if runtime is not None else Runtime.create()
    results = train_grid(
        dataset,
        list(configs),
        mesh=rt.train_mesh,
        progress=progress,
        out_dirs=[Path(f) for f in folders],
        resume=resume,
    )
    return [
        TrainedModel(
            r.model,
            r.variables,
            models.logits_fn(rt.eval_model(r.model)),  # pyright: ignore[reportArgumentType]
            train_info(r.history, r.best_epoch),
        )
        for r in results
    ]


# ----------------------------------------------------------------------------- keyed cache


def load_cached(path: str | os.PathLike[str], key: str) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file ``path`` if it was saved under ``key``, else None.

    A missing, damaged or truncated file, or one saved under another key (its
    inputs changed), gives None: the caller recomputes.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "cache_key" not in z.files or str(z["cache_key"]) != key:
                return None
            return {k: z[k] for k in z.files if k != "cache_key"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # damaged or truncated cache entry: recompute


def save_cached(path: str | os.PathLike[str], key: str, **arrays: np.ndarray) -> Path:
    """Save ``arrays`` atomically as the cache entry ``path`` under ``key``; returns the path."""
    return atomic_write_npz(path, cache_key=np.asarray(key), **arrays)


def cached_batches(
    path: str | os.PathLike[str],
    key: str,
    n: int,
    batch_size: int,
    fn: Callable[[np.ndarray], Mapping[str, Any]],
    *,
    resume: bool,
    progress: bool,
    desc: str = "",
) -> tuple[dict[str, np.ndarray], bool]:
    """Run ``fn(rows)`` over ``range(n)`` in batches, cached at ``path`` under ``key``.

    ``fn`` returns arrays whose first axis is the batch; the result concatenates
    them to ``[n, ...]``. After every batch but the last, the rows done so far are
    saved as ``<stem>.partial.npz`` (same key), so an interrupted run resumes
    where it stopped; the finished result replaces the partial file.

    Args:
      path: the cache file (``.npz``).
      key: hash of everything the result depends on.
      n: number of rows.
      batch_size: rows per call of ``fn``.
      fn: ``rows [b] -> {name: array [b, ...]}``.
      resume: reuse a finished or partial entry with this key (False recomputes).
      progress: show a progress bar.
      desc: its label.

    Returns:
      ``(arrays, reused)``; ``reused`` is True when the finished entry was read back.
    """
    path = Path(path)
    done = load_cached(path, key) if resume else None
    if done is not None and "n_done" in done and int(done["n_done"]) == n:
        return {k: v for k, v in done.items() if k != "n_done"}, True
    partial = path.with_name(path.name.replace(".npz", ".partial.npz"))
    merged: dict[str, np.ndarray] = {}
    start = 0
    prev = load_cached(partial, key) if resume else None
    if prev is not None and "n_done" in prev:
        start = int(prev["n_done"])
        merged = {k: v for k, v in prev.items() if k != "n_done"}
    with _io.progress(total=n, desc=desc, enabled=progress) as bar:
        bar.update(start)
        for s in range(start, n, batch_size):
            rows = np.arange(s, min(s + batch_size, n))
            out = fn(rows)
            merged = {
                k: np.concatenate([merged[k], np.asarray(v)]) if k in merged else np.asarray(v)
                for k, v in out.items()
            }
            if rows[-1] + 1 < n:
                save_cached(partial, key, n_done=np.asarray(rows[-1] + 1), **merged)
            bar.update(len(rows))
    save_cached(path, key, n_done=np.asarray(n), **merged)
    _io.remove(partial)
    return merged, False


def check_config_change(path: str | os.PathLike[str], config_hash: str) -> str | None:
    """Compare ``config_hash`` with the one a previous run saved at ``path`` (JSON).

    Returns a message when a previous config exists and differs (the caller
    prints it), else ``None``. The file itself is not modified.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        old = read_json(path).get("config_hash")
    except (ValueError, AttributeError):
        old = None
    if old == config_hash:
        return None
    return (
        f"{path}: the study config changed since the last run in this folder "
        f"({old} -> {config_hash}); members whose settings changed are recomputed "
        "(their files are keyed by a settings hash), unchanged ones are reused, and "
        "all results tables are rewritten for the new config"
    )


# ----------------------------------------------------------------------------- tables


def _csv_cell(value: Any) -> str:
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ";".join(_csv_cell(v) for v in value)
    return str(value)


def write_table(
    stem: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Write ``rows`` as ``<stem>.csv`` and ``<stem>.json`` (a list of objects), atomically.

    CSV: header = ``columns`` (default: keys of the first row, then any new keys
    in order of appearance); floats in shortest round-trip form, NaN / None as
    an empty cell, lists joined with ``;``. JSON: NaN becomes ``null``.

    Returns:
      ``(csv_path, json_path)``.
    """
    stem = Path(stem)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    csv_path = atomic_write_text(stem.with_name(stem.name + ".csv"), buf.getvalue())
    json_rows = [{c: row.get(c) for c in columns} for row in rows]
    json_path = atomic_write_json(stem.with_name(stem.name + ".json"), json_rows)
    return csv_path, json_path


# ----------------------------------------------------------------------------- provenance


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _study_files(results_dir: Path, prefix: str) -> list[Path]:
    """Results files of one study: ``<prefix>_*`` (not hidden temporaries, not the sidecar)."""
    return sorted(
        p
        for p in results_dir.glob(f"{prefix}_*")
        if p.is_file() and not p.name.startswith(".") and p.name != prefix + PROVENANCE_SUFFIX
    )


def write_provenance(
    results_dir: str | os.PathLike[str],
    prefix: str,
    *,
    study: str,
    dataset: str,
    data_fingerprint: str,
    config: Any,
    config_hash: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<prefix>_provenance.json`` for every ``<prefix>_*`` file in ``results_dir``.

    Call it after the study has written all its results files (it hashes them).

    Args:
      results_dir: the study's ``results/`` folder.
      prefix: file-name prefix of the study's results (``"rejection"``,
        ``"robustness_<dataset>"``).
      study, dataset, data_fingerprint, config, config_hash: what the results came from.
      extra: further JSON-able provenance (e.g. training configs).

    Returns:
      The sidecar's path.
    """
    results_dir = Path(results_dir)
    if not _io.writable(results_dir):  # its hashes are of files process 0 writes
        return results_dir / f"{prefix}{PROVENANCE_SUFFIX}"
    record = {
        "study": study,
        "dataset": dataset,
        "data_fingerprint": data_fingerprint,
        "config": to_jsonable(config),
        "config_hash": config_hash,
        "library_version": library_version(),
        "environment": environment(),
        "files": {p.name: _sha256(p) for p in _study_files(results_dir, prefix)},
        "note": "SHA-256 of every results file of this run; a file that is missing or "
        "differs was not produced by this run (verify with "
        "fairrobust.studies._store.verify_provenance)",
    }
    if extra:
        record.update(to_jsonable(dict(extra)))
    return atomic_write_json(results_dir / f"{prefix}{PROVENANCE_SUFFIX}", record)


def verify_provenance(results_dir: str | os.PathLike[str], prefix: str) -> dict[str, Any]:
    """Check the results files of one study against its provenance sidecar.

    Returns:
      The sidecar record.

    Raises:
      FileNotFoundError: no sidecar (the study never finished in this folder).
      ValueError: a results file is not listed in the sidecar, is missing, or its
        SHA-256 differs (each named in the message).
    """
    results_dir = Path(results_dir)
    path = results_dir / f"{prefix}{PROVENANCE_SUFFIX}"
    record = read_json(path)
    listed = dict(record.get("files") or {})
    problems = []
    for p in _study_files(results_dir, prefix):
        if p.name not in listed:
            problems.append(f"{p.name}: not produced by the run {path.name} describes")
        elif _sha256(p) != listed[p.name]:
            problems.append(f"{p.name}: changed since the run {path.name} describes")
    problems += [
        f"{name}: listed but missing" for name in listed if not (results_dir / name).is_file()
    ]
    if problems:
        raise ValueError(f"{path}: results do not match their provenance: " + "; ".join(problems))
    return record
