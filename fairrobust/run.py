"""``fairrobust run``: both studies of the AISec'23 paper, end to end, into one run folder.

With no arguments the command loads the bundled WUW keyword clips, runs the
robustness-training study and the rejection study at the ``quick`` preset and
writes a self-contained run folder::

    runs/<YYYYmmdd-HHMMSS>/            (or --out DIR)
      config.json                       dataset, preset, seed and both study configs
      run.json                          wall time per step (not a result: differs per run)
      results/robustness_<dataset>_*.{csv,json}   AUC_acc, Defense Parity, CIs, correlations
      results/rejection_*.{csv,json,npz}          AUC_FPR, FPR Parity, CIs, certified accuracy
      results/run_summary.{csv,json}    the summary table printed at the end
      results/run_findings.json         the findings sentences and the numbers they rest on
      results/soundness.{json,md}       attack-soundness checks (convergence, restarts,
                                        transfer, EOT on smoothing) with settings + input hash
      results/soundness_parity.{csv,json}  Defense Parity per attack tried, with CIs
      figures/*.png                     every figure of the report
      models/, cache/                   checkpoints and sampling caches (resume)
      report.md, report.html            the report (html: figures embedded, no external files)

Resuming: every trained model, attack result and sampling cache is keyed by a
hash of everything it depends on, so reusing a folder never reuses stale
numbers. Without ``--out`` each call makes a fresh timestamped folder;
``--out DIR`` reuses whatever in ``DIR`` still matches the settings (a changed
setting recomputes only what depends on it); ``--resume`` continues the most
recent folder under ``--runs-dir`` (or ``--resume DIR`` that folder).
Results files are byte-identical for the same data, settings and seed.

Presets: ``quick`` (default; a 2-core CPU in minutes), ``paper`` (the AISec'23
settings). A third, ``tiny``, exists for tests and smoke checks only (seconds;
the numbers mean nothing). ``--config run.toml`` overrides fields of either
study from ``[robustness]`` and ``[rejection]`` tables, e.g.::

    [robustness]
    at_eps = [0.0, 0.01]
    epochs = 10

    [rejection]
    num_samples = [10, 100, 1000, 10000]

    [soundness]          # fields of SoundnessConfig; --no-soundness skips the checks
    restarts = 5
    models = ["baseline", "most_robust"]

Python::

    from fairrobust.run import run
    outcome = run(out="runs/demo", preset="quick")
    print(outcome.report_md)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust import _io

__all__ = [
    "RUN_PRESETS",
    "SOUNDNESS_PRESETS",
    "RunOutcome",
    "SoundnessConfig",
    "add_run_arguments",
    "format_summary_table",
    "resolve_run_dir",
    "run",
    "run_main",
    "run_soundness",
    "soundness_config",
    "soundness_steps",
    "study_configs",
]

#: Presets of ``fairrobust run`` (``tiny`` is for tests: seconds, meaningless numbers).
RUN_PRESETS = ("quick", "paper", "tiny")

#: ``tiny`` overrides of the robustness ``quick`` preset (two 1-epoch width-4 models).
TINY_ROBUSTNESS: Mapping[str, Any] = {
    "models": ("m5",),
    "at_eps": (0.0, 0.01),
    "noise_std": (0.0,),
    "attack_eps": (0.01, 0.1),
    "attack_steps": 2,
    "epochs": 1,
    "width": 4,
    "batch_size": 16,
    "at_steps": 2,
    "min_group_size": 2,
    "max_test_examples": 24,
    "bootstrap": 20,
}
#: ``tiny`` overrides of the rejection ``quick`` preset.
TINY_REJECTION: Mapping[str, Any] = {
    "width": 4,
    "epochs": 1,
    "batch_size": 16,
    "num_samples": (10, 100),
    "chunk_size": 10,
    "sample_batch_size": 12,
    "alpha_min": 0.01,
    "alpha_step": 0.01,
    "certify_n0": 10,
    "certify_n": 50,
    "radii": (0.0, 0.05, 0.1),
    "min_group_size": 2,
    "max_test": 24,
    "bootstrap_resamples": 20,
}
LATEST = "latest"


# ----------------------------------------------------------------------------- configs


def _split_list(items: Sequence[str] | str | None, seps: str = ",") -> list[str]:
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out = [str(i) for i in items]
    for sep in seps:
        out = [p for item in out for p in item.split(sep)]
    return [p.strip() for p in out if p.strip()]


def _intersection_tuples(specs: Sequence[str], attributes: Sequence[str]) -> list[tuple[str, ...]]:
    """``["gender x dialect", "a,b"]`` or ``["all-pairs"]`` -> attribute tuples."""
    out: list[tuple[str, ...]] = []
    for spec in specs:
        if spec.strip() == "all-pairs":
            out += [(a, b) for i, a in enumerate(attributes) for b in attributes[i + 1 :]]
            continue
        parts = [p.strip() for p in spec.replace("+", ",").replace(" x ", ",").split(",")]
        parts = [p for p in parts if p]
        if len(parts) < 2:
            raise ValueError(
                f"--intersections: expected 'a x b', 'a,b' or 'all-pairs', got {spec!r}"
            )
        out.append(tuple(parts))
    return list(dict.fromkeys(out))


def _read_run_toml(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``[robustness]``, ``[rejection]`` and ``[soundness]`` tables of a run config file."""
    import tomllib

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: run config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    other = sorted(set(data) - {"robustness", "rejection", "soundness"})
    if other:
        raise ValueError(
            f"{path}: expected only [robustness] and [rejection] tables (and optionally "
            f"[soundness]), got {other}"
        )
    return {k: dict(data.get(k, {})) for k in ("robustness", "rejection", "soundness")}


def study_configs(
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    *,
    seed: int | None = None,
    attributes: Sequence[str] | None = None,
    intersections: Sequence[str] | None = None,
    dataset_attributes: Sequence[str] | None = None,
) -> tuple[Any, Any]:
    """The ``(RobustnessConfig, RejectionConfig)`` of a run.

    Order of precedence (later wins): the preset of each study, the TOML file's
    ``[robustness]`` / ``[rejection]`` tables, then ``seed``, ``attributes`` and
    ``intersections``, which apply to both studies so their groups agree.

    Args:
      preset: ``"quick"``, ``"paper"`` or ``"tiny"`` (tests only).
      config_file: optional TOML file with ``[robustness]`` and / or ``[rejection]``.
      seed: seed of both studies (training, subsets, attacks, noise, bootstrap).
      attributes: attributes to analyse (default: every attribute of the dataset).
      intersections: ``"a x b"`` (or ``"a,b"``) specs, or ``["all-pairs"]``.
      dataset_attributes: the dataset's attribute names, used to expand
        ``all-pairs`` (default: ``attributes``).

    Returns:
      ``(robustness_config, rejection_config)``.

    Raises:
      ValueError: unknown preset, bad TOML field, malformed intersection.
      FileNotFoundError: ``config_file`` does not exist.
    """
    from fairrobust.studies import _common
    from fairrobust.studies import rejection as rj
    from fairrobust.studies import robustness as rb

    if preset not in RUN_PRESETS:
        raise ValueError(f"preset: expected one of {list(RUN_PRESETS[:2])}, got {preset!r}")
    if preset == "tiny":
        rob = dataclasses.replace(rb.preset("quick"), preset="tiny", **TINY_ROBUSTNESS)
        rej = rj.preset("quick", **TINY_REJECTION)
    else:
        rob, rej = rb.preset(preset), rj.preset(preset)
    if config_file is not None:
        tables = _read_run_toml(config_file)
        rob = _common.apply_overrides(rob, tables["robustness"], source=str(config_file))
        rej = _common.apply_overrides(rej, tables["rejection"], source=str(config_file))
    rob_changes: dict[str, Any] = {}
    rej_changes: dict[str, Any] = {}
    if seed is not None:
        rob_changes["seed"] = rej_changes["seed"] = int(seed)
    attrs = _split_list(attributes)
    if attrs:
        rob_changes["attributes"] = tuple(attrs)
        rej_changes["attributes"] = tuple(attrs)
    specs = _split_list(intersections, seps=";")
    if specs:
        base = attrs or list(dataset_attributes or [])
        tuples = _intersection_tuples(specs, base)
        rob_changes["intersections"] = tuple(" x ".join(t) for t in tuples)
        rej_changes["intersections"] = tuple(tuples)
    if rob_changes:
        rob = dataclasses.replace(rob, **rob_changes)
    if rej_changes:
        rej = rej.replace(**rej_changes)
    return rob, rej


# ----------------------------------------------------------------------------- run folder


def resolve_run_dir(
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    *,
    now: _dt.datetime | None = None,
) -> tuple[Path, bool]:
    """Where a run writes, and whether it continues an existing folder.

    * ``resume`` a folder: that folder (must exist);
    * ``resume == "latest"``: ``out`` if given, else the most recent folder under
      ``runs_dir`` (``FileNotFoundError`` if there is none);
    * ``out`` only: ``out`` (an existing folder is continued: everything in it is
      keyed by hashes, so only what still matches is reused);
    * neither: a fresh ``runs_dir/<YYYYmmdd-HHMMSS>`` (``-2``, ``-3`` ... appended
      if taken).

    Returns:
      ``(run_dir, continues_existing)``.
    """
    runs = Path(runs_dir)
    if resume is not None and str(resume) != LATEST:
        path = Path(resume)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume: run folder {path} does not exist")
        return path, True
    if resume is not None:
        if out is not None:
            return Path(out), Path(out).is_dir()
        candidates = sorted(p for p in runs.glob("*") if (p / "config.json").is_file())
        if not candidates:
            raise FileNotFoundError(f"--resume: no run folder with a config.json under {runs}")
        return max(candidates, key=lambda p: (p / "config.json").stat().st_mtime), True
    if out is not None:
        path = Path(out)
        return path, (path / "config.json").is_file()
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, k = runs / stamp, 1
    while path.exists():
        k += 1
        path = runs / f"{stamp}-{k}"
    return path, False


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What :func:`run` returns.

    Attributes:
      run_dir: the run folder.
      robustness: the ``RobustnessResults`` (None if the study was skipped).
      rejection: the ``RejectionResults`` (None if skipped).
      summary: rows of the summary table (also ``results/run_summary.json``).
      findings: the findings records (also ``results/run_findings.json``).
      report_md, report_html: the report files.
      timings: seconds per step.
    """

    run_dir: Path
    robustness: Any
    rejection: Any
    summary: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    report_md: Path
    report_html: Path
    timings: dict[str, float]


def _load(dataset: str, data_dir: str | os.PathLike[str] | None, options: Mapping[str, Any]):
    from fairrobust.data import load_bundled, load_dataset

    if dataset == "bundled":
        if data_dir is not None:
            raise ValueError("--data-dir: the bundled dataset takes no data folder")
        return load_bundled()
    if data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {dataset}")
    return load_dataset(dataset, data_dir, **options)


def run(
    *,
    dataset: Any = "bundled",
    data_dir: str | os.PathLike[str] | None = None,
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    attributes: Sequence[str] | None = None,
    intersections: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    studies: Sequence[str] = ("robustness", "rejection"),
    progress: bool = True,
    load_options: Mapping[str, Any] | None = None,
    log: Any = print,
    soundness: bool | SoundnessConfig = True,
) -> RunOutcome:
    """Run both studies into one run folder and write the report.

    Args:
      dataset: loader name (``bundled``, ``fsdd``, ``wuw``, ``audiomnist``,
        ``common-voice``, ``folder``) or an ``AudioDataset``.
      data_dir: dataset root (not for ``bundled``).
      preset, config_file, seed, attributes, intersections: see :func:`study_configs`.
      out, resume, runs_dir: see :func:`resolve_run_dir`.
      studies: which studies to run (both by default).
      progress: show progress bars.
      load_options: extra loader options (``sample_rate``, ``duration``).
      log: where step messages go (``print``; a no-op to silence).
      soundness: run the attack-soundness checks (:func:`run_soundness`) with the
        preset's :class:`SoundnessConfig` (and the config file's ``[soundness]``
        table); False skips them (and removes soundness files of an earlier run in
        the folder); a :class:`SoundnessConfig` sets them explicitly.

    Returns:
      A :class:`RunOutcome`.

    Raises:
      ValueError: bad settings (the message names the flag / field).
      FileNotFoundError: missing data, config file or run folder to resume.
    """
    from fairrobust import report
    from fairrobust.studies import rejection as rj
    from fairrobust.studies import robustness as rb

    bad = sorted(set(studies) - {"robustness", "rejection"})
    if bad or not studies:
        raise ValueError(
            f"studies: expected a subset of ['robustness', 'rejection'], got {studies}"
        )
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    run_dir, continuing = resolve_run_dir(out, resume, runs_dir)
    if isinstance(dataset, str):
        t0 = time.perf_counter()
        ds = _load(dataset, data_dir, dict(load_options or {}))
        loader = dataset
        timings["load"] = time.perf_counter() - t0
    else:
        ds, loader = dataset, getattr(dataset, "name", "custom")
    rob_cfg, rej_cfg = study_configs(
        preset,
        config_file,
        seed=seed,
        attributes=attributes,
        intersections=intersections,
        dataset_attributes=sorted(ds.attributes),
    )
    if isinstance(soundness, SoundnessConfig):
        sound_cfg = soundness
    else:
        sound_cfg = soundness_config(preset, config_file, enabled=bool(soundness))
    log(
        f"{'continuing' if continuing else 'new'} run folder {run_dir} "
        f"({'finished steps whose settings match are reused' if continuing else 'fresh'})"
    )
    log(
        f"dataset {ds.name}: {len(ds)} clips, {ds.num_classes} classes, "
        f"attributes {sorted(ds.attributes)}; preset {preset}"
    )
    config_record = {
        "dataset": ds.name,
        "loader": loader,
        "data_dir": None if data_dir is None else str(data_dir),
        "data_fingerprint": ds.fingerprint(),
        "preset": preset,
        "config_file": None if config_file is None else str(config_file),
        "seed": seed,
        "attributes": list(_split_list(attributes)),
        "intersections": list(_split_list(intersections, seps=";")),
        "studies": list(studies),
        "robustness": rob_cfg.to_dict(),
        "rejection": _io.to_jsonable(rej_cfg),
        "soundness": _io.to_jsonable(sound_cfg),
        "library_version": _library_version(),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_json(run_dir / "config.json", config_record)
    _remove_stale(run_dir, studies)

    rob_res = rej_res = None
    if "robustness" in studies:
        log(
            f"[1/{len(studies) + 1}] robustness study: {rob_cfg.num_models} models "
            f"x {len(rob_cfg.preprocess)} preprocess, PGD {rob_cfg.attack_steps} steps at "
            f"eps {list(rob_cfg.attack_eps)}"
        )
        t0 = time.perf_counter()
        rob_res = rb.run_study(ds, rob_cfg, run_dir, resume=True, progress=progress)
        timings["robustness"] = time.perf_counter() - t0
    if "rejection" in studies:
        step = 1 + ("robustness" in studies)
        log(
            f"[{step}/{len(studies) + 1}] rejection study: RS (sigma {rej_cfg.sigma}, "
            f"N {list(rej_cfg.num_samples)}) vs NR on {rej_cfg.max_test or 'all'} clips"
        )
        t0 = time.perf_counter()
        rej_res = rj.run_study(ds, rej_cfg, run_dir, resume=True, progress=progress)
        timings["rejection"] = time.perf_counter() - t0

    if sound_cfg.enabled:
        log(
            "soundness checks: convergence, budget curve, restarts, transfer, EOT on smoothing "
            f"for {list(sound_cfg.models)}"
        )
        t0 = time.perf_counter()
        record = run_soundness(
            ds,
            run_dir,
            sound_cfg,
            rob_cfg,
            rob_res,
            rej_cfg if rej_res is not None else None,
            preset=preset,
            progress=progress,
            log=log,
        )
        if record is None:
            _remove_soundness(run_dir)
        timings["soundness"] = time.perf_counter() - t0
    else:
        _remove_soundness(run_dir)

    log(f"[{len(studies) + 1}/{len(studies) + 1}] report")
    t0 = time.perf_counter()
    md_path, html_path = report.write_report(run_dir, rob_res, rej_res, config_record)
    data = report.load_run(run_dir)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    _io.atomic_write_json(
        run_dir / "run.json",
        {"timings_seconds": timings, "finished": _dt.datetime.now().isoformat(timespec="seconds")},
    )
    return RunOutcome(
        run_dir=run_dir,
        robustness=rob_res,
        rejection=rej_res,
        summary=report.summary_rows(data),
        findings=report.findings(data),
        report_md=md_path,
        report_html=html_path,
        timings=timings,
    )


def _remove_stale(run_dir: Path, studies: Sequence[str]) -> None:
    """Drop result files of a study this run does not include (so the report never mixes runs)."""
    results = run_dir / "results"
    for study in ("robustness", "rejection"):
        if study not in studies:
            for p in list(results.glob(f"{study}_*")) + list(
                (run_dir / "figures").glob(f"{study}_*")
            ):
                p.unlink(missing_ok=True)


def _library_version() -> str:
    from fairrobust.studies._common import library_version

    return library_version()


# ----------------------------------------------------------------------------- soundness


@dataclasses.dataclass(frozen=True)
class SoundnessConfig:
    """Settings of the attack-soundness checks ``fairrobust run`` adds (issue 7).

    The checks (``fairrobust.soundness``) run on the attacked models of the
    robustness study named in ``models`` and, with ``smoothing``, on the rejection
    study's randomized-smoothing base model; ``--no-soundness`` skips them and a
    ``[soundness]`` table of the ``--config`` file overrides these fields.

    Attributes:
      enabled: run the checks.
      models: robustness-study members to check: member ids, ``"baseline"`` (the
        clean baseline), ``"most_robust"`` (the non-excluded model with the largest
        AUC_acc) or ``"all"``.
      steps: PGD step counts of the convergence check; empty = automatic
        (``quick`` / ``tiny``: 1, attack_steps // 2, attack_steps; ``paper``: 1, 10,
        50, attack_steps). The study's ``attack_steps`` is always included, so the
        study's own attack is one of the attacks tried.
      restarts: random restarts of the study's attack (``attack_steps`` steps each,
        worst case per example); 0 = none.
      transfer: transfer attack from another trained grid member of the same
        architecture (a clean-trained one when there is one).
      smoothing: EOT attack on the smoothed classifier of the rejection study's RS
        base model (sigma and noise of the rejection study), next to plain PGD on
        the base model, both judged by the smoothed classifier.
      num_noise: M, noise draws per EOT step.
      num_samples: N, noise draws of the majority vote that evaluates the smoothed
        classifier.
      smoothing_examples: clips of the smoothing check (seeded subset of the
        rejection study's clips; 0 = all).
      max_examples: clips of the base-model checks (seeded subset of the
        robustness study's test clips; 0 = all of them, as the study). The
        study's attack and the stronger ones are compared on the same clips.
      tolerance: material accuracy difference in [0, 1] (warnings).
      chance_margin: allowed excess over chance at the largest budget.
      batch_size: examples per attack call (memory only).
    """

    enabled: bool = True
    models: tuple[str, ...] = ("baseline", "most_robust")
    steps: tuple[int, ...] = ()
    restarts: int = 2
    transfer: bool = True
    smoothing: bool = True
    num_noise: int = 4
    num_samples: int = 32
    smoothing_examples: int = 32
    max_examples: int = 200
    tolerance: float = 0.02
    chance_margin: float = 0.1
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("restarts", "max_examples", "smoothing_examples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"SoundnessConfig.{name}: expected an integer >= 0, got {v!r}")
        for name in ("num_noise", "num_samples", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SoundnessConfig.{name}: expected an integer >= 1, got {v!r}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.steps):
            raise ValueError(
                f"SoundnessConfig.steps: expected integers >= 1 (or [] = automatic), "
                f"got {self.steps!r}"
            )
        for name in ("tolerance", "chance_margin"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"SoundnessConfig.{name}: expected a number in [0, 1], got {v!r}")
        if not self.models:
            raise ValueError("SoundnessConfig.models: expected at least one member id or alias")


#: Soundness settings per run preset (``tiny``: tests; the numbers mean nothing).
SOUNDNESS_PRESETS: Mapping[str, SoundnessConfig] = {
    "quick": SoundnessConfig(),
    "paper": SoundnessConfig(
        restarts=5, num_noise=8, num_samples=100, smoothing_examples=0, max_examples=0
    ),
    "tiny": SoundnessConfig(
        restarts=1,
        num_noise=2,
        num_samples=8,
        smoothing_examples=12,
        max_examples=0,
        batch_size=32,
    ),
}
SOUNDNESS_ALIASES = ("baseline", "most_robust", "all")


def soundness_config(
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    *,
    enabled: bool = True,
) -> SoundnessConfig:
    """The :class:`SoundnessConfig` of a run: the preset's, then the file's ``[soundness]``.

    Raises:
      ValueError: unknown preset, bad field in the ``[soundness]`` table.
      FileNotFoundError: ``config_file`` does not exist.
    """
    from fairrobust.studies import _common

    if preset not in SOUNDNESS_PRESETS:
        raise ValueError(f"preset: expected one of {list(RUN_PRESETS[:2])}, got {preset!r}")
    cfg = SOUNDNESS_PRESETS[preset]
    if config_file is not None:
        table = _read_run_toml(config_file)["soundness"]
        cfg = _common.apply_overrides(cfg, table, source=f"{config_file} [soundness]")
    return cfg if enabled else dataclasses.replace(cfg, enabled=False)


def soundness_steps(cfg: SoundnessConfig, attack_steps: int, preset: str) -> tuple[int, ...]:
    """PGD step counts of the convergence check (see :attr:`SoundnessConfig.steps`)."""
    if cfg.steps:
        base = set(cfg.steps)
    elif preset == "paper":
        base = {1, 10, 50}
    else:
        base = {1, max(1, attack_steps // 2)}
    out = sorted(base | {int(attack_steps)})
    return tuple(out) if len(out) >= 2 else (out[0], out[0] + 1)


def _resolve_targets(cfg: SoundnessConfig, rob_res: Any) -> list[tuple[Any, str]]:
    """``[(MemberResult, role)]`` of the members named by ``cfg.models``, deduplicated."""
    from fairrobust import report

    rows = rob_res.tables["models"]
    by_id = {m.spec.member_id: m for m in rob_res.members}
    out: dict[str, str] = {}
    for name in cfg.models:
        if name == "all":
            for r in rows:
                out.setdefault(r["member_id"], "")
            continue
        if name in ("baseline", "most_robust"):
            row = report._baseline(rows) if name == "baseline" else report._most_robust(rows)
            if row is not None:
                role = "clean baseline" if name == "baseline" else "most robust"
                prev = out.get(row["member_id"])
                out[row["member_id"]] = role if not prev else f"{prev}, {role}"
            continue
        if name not in by_id:
            raise ValueError(
                f"SoundnessConfig.models: unknown member {name!r}; expected one of "
                f"{list(SOUNDNESS_ALIASES)} or a member id {sorted(by_id)}"
            )
        out.setdefault(name, "")
    return [(by_id[mid], role) for mid, role in out.items()]


def _pick_surrogate(target: Any, members: Sequence[Any]) -> Any | None:
    """Another trained grid member of the same architecture (clean-trained preferred)."""
    others = {}
    for m in members:
        s = m.spec
        if s.model == target.spec.model and s.train_id != target.spec.train_id:
            others.setdefault(s.train_id, m)
    if not others:
        return None
    clean = [m for m in others.values() if m.spec.at_eps == 0 and m.spec.noise_std == 0]
    return (clean or list(others.values()))[0]


def _load_model(dataset: Any, train_config: Mapping[str, Any], folder: Path, progress: bool):
    """``(apply_fn, variables)`` of a trained model in ``folder`` (trains only if missing)."""
    from fairrobust import models
    from fairrobust.studies import rejection as rj
    from fairrobust.train import TrainConfig

    tc = train_config if isinstance(train_config, TrainConfig) else TrainConfig(**train_config)
    trained = rj.train_model(
        dataset, tc, folder, fingerprint=dataset.fingerprint(), resume=True, show=progress
    )
    return models.logits_fn(trained.model), trained.variables


def _subset(n: int, cap: int, seed: int, salt: int) -> np.ndarray:
    """Sorted seeded subset of ``range(n)`` of size ``cap`` (all when ``cap`` is 0 or >= n)."""
    if not cap or cap >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, salt])
    return np.sort(rng.choice(n, size=cap, replace=False))


def _parity_rows(
    correct: Mapping[str, np.ndarray],
    eps: np.ndarray,
    groups: Mapping[str, Any],
    speakers: np.ndarray,
    rob_cfg: Any,
    key: Any,
    base: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Defense Parity (and the worst group's AUC_acc) per attack and attribute, with CIs.

    ``correct``: attack name -> per-example correctness ``[e, n]``. Per attribute, every
    attack's AUC_acc / Defense Parity and their bootstrap intervals are one vmapped
    computation (``metrics.bootstrap_ci`` with ``AucAccStat``; stratified by group,
    clustered by speaker; the study's resamples and level).
    """
    import jax
    import jax.numpy as jnp

    from fairrobust import metrics

    names = list(correct)
    stack = np.stack([np.asarray(correct[a], np.float32) for a in names])  # [A, e, n]
    rows: list[dict[str, Any]] = []
    for i_attr, (attr, grp) in enumerate(groups.items()):
        if grp.num_groups == 0:
            continue
        valid = tuple(bool(v) for v in np.asarray(grp.valid))
        stat = metrics.AucAccStat(tuple(float(e) for e in eps), valid)
        if rob_cfg.bootstrap > 0:
            res = metrics.bootstrap_ci(
                stat, stack, grp.masks, key=jax.random.fold_in(key, i_attr),
                num_resamples=rob_cfg.bootstrap, level=rob_cfg.ci_level, speakers=speakers,
                batch_size=min(rob_cfg.bootstrap, 50),
            )  # fmt: skip
            est, lo, hi = (
                {k: np.asarray(v, np.float64) for k, v in d.items()}
                for d in (res.estimate, res.lower, res.upper)
            )
        else:
            est = {
                k: np.asarray(v, np.float64)
                for k, v in stat(jnp.asarray(stack), jnp.asarray(grp.masks), None).items()
            }
            lo = hi = {k: np.full_like(v, np.nan) for k, v in est.items()}
        vidx = np.flatnonzero(np.asarray(grp.valid))
        for a, name in enumerate(names):
            auc = est["auc_acc"][a]
            ok = vidx[np.isfinite(auc[vidx])]
            w = int(ok[np.argmin(auc[ok])]) if ok.size >= 2 else None
            rows.append(
                {
                    **base,
                    "attack": name,
                    "attribute": attr,
                    "defense_parity": _finite(est["defense_parity"][a]),
                    "ci_low": _finite(lo["defense_parity"][a]),
                    "ci_high": _finite(hi["defense_parity"][a]),
                    "n_valid_groups": int(ok.size),
                    "worst_group": None if w is None else grp.names[w],
                    "worst_auc_acc": None if w is None else _finite(auc[w]),
                    "worst_auc_acc_ci_low": None if w is None else _finite(lo["auc_acc"][a, w]),
                    "worst_auc_acc_ci_high": None if w is None else _finite(hi["auc_acc"][a, w]),
                }
            )
    return rows


def _finite(v: Any) -> float | None:
    f = float(v)
    return f if np.isfinite(f) else None


def _check_rows(model: str, role: str, checks: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "role": role,
            "check": c.name,
            "verdict": c.verdict,
            "summary": c.summary(),
            "reasons": list(c.all_reasons),
        }
        for c in checks
    ]


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """Silence ``fairrobust._io.progress`` bars (the soundness checks') when ``progress`` is off."""
    if progress:
        yield
        return
    old = os.environ.get("FAIRROBUST_NO_PROGRESS")
    os.environ["FAIRROBUST_NO_PROGRESS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FAIRROBUST_NO_PROGRESS", None)
        else:
            os.environ["FAIRROBUST_NO_PROGRESS"] = old


#: Columns of ``results/soundness_parity.{csv,json}``.
PARITY_COLUMNS = (
    "model",
    "role",
    "attack",
    "attribute",
    "defense_parity",
    "ci_low",
    "ci_high",
    "n_valid_groups",
    "worst_group",
    "worst_auc_acc",
    "worst_auc_acc_ci_low",
    "worst_auc_acc_ci_high",
)
SOUNDNESS_FILES = (
    "soundness.json",
    "soundness.md",
    "soundness_parity.csv",
    "soundness_parity.json",
)


def run_soundness(
    dataset: Any,
    run_dir: str | os.PathLike[str],
    cfg: SoundnessConfig,
    rob_cfg: Any,
    rob_res: Any,
    rej_cfg: Any = None,
    *,
    preset: str = "quick",
    progress: bool = True,
    log: Any = print,
) -> dict[str, Any] | None:
    """Run the soundness checks of a run and write ``results/soundness.{json,md}``.

    For each robustness-study member of ``cfg.models``:
    :func:`fairrobust.soundness.run_soundness_checks` on the study's test clips and
    attack budgets (PGD L-inf, the study's step size, clean start): convergence over
    :func:`soundness_steps`, FGSM, the budget curve, ``cfg.restarts`` random restarts
    of the study's attack and a transfer attack from :func:`_pick_surrogate`. With
    ``rej_cfg`` and ``cfg.smoothing``: the EOT attack on the rejection study's RS
    base model (:func:`fairrobust.soundness.smoothed_robust_correct`). For every
    attack and attribute, Defense Parity with bootstrap intervals
    (:func:`_parity_rows`), so the report can show parity under the strongest
    attack tried next to the study's attack.

    Files (``results/``, atomic): ``soundness.json`` (settings, input hash,
    verdicts, numbers, per-model reports), ``soundness.md`` (the report section)
    and ``soundness_parity.{csv,json}`` (model, role, attack, attribute,
    defense_parity, ci_low, ci_high, n_valid_groups, worst_group, worst_auc_acc
    and its interval). Skipped when ``soundness.json`` holds the same input hash
    (models, data, test clips, attack and check settings, seed).

    Returns:
      The ``soundness.json`` record, or None when there is nothing to check.
    """
    import jax

    from fairrobust import evaluation as soundness
    from fairrobust.defenses import with_preprocess
    from fairrobust.studies import rejection as rj
    from fairrobust.studies import robustness as rb
    from fairrobust.studies._common import library_version

    results = Path(run_dir) / "results"
    rcfg: Any = rej_cfg  # used only when the rejection study ran (do_smooth)
    rres: Any = rob_res
    targets = [] if rob_res is None else _resolve_targets(cfg, rob_res)
    do_smooth = cfg.smoothing and rej_cfg is not None
    if not targets and not do_smooth:
        return None
    attack_steps = int(rob_cfg.attack_steps)
    steps = soundness_steps(cfg, attack_steps, preset)
    eps = np.asarray(rob_cfg.attack_eps, np.float32)
    fp = dataset.fingerprint()
    plan = []
    for member, role in targets:
        sur = _pick_surrogate(member, rres.members) if cfg.transfer else None
        plan.append((member, role, sur))
    rs_tcfg = rs_dir = eval_idx = None
    if do_smooth:
        rs_tcfg = rj.train_configs(rcfg)[1]
        rs_dir = (
            Path(run_dir)
            / "models"
            / f"rejection-rs-{_io.stable_hash({'data': fp, 'train': rs_tcfg})}"
        )
        eval_idx = rj.select_eval(dataset, rcfg)
        eval_idx = eval_idx[_subset(len(eval_idx), cfg.smoothing_examples, rcfg.seed, 0x5E0)]
    test_index = None if rob_res is None else np.asarray(rob_res.test_index)
    sel = (
        None
        if test_index is None
        else _subset(len(test_index), cfg.max_examples, rob_cfg.seed, 0x5E1)
    )
    settings = {
        "models": list(cfg.models),
        "steps": list(steps),
        "restarts": cfg.restarts,
        "restart_steps": attack_steps if cfg.restarts else None,
        "transfer": cfg.transfer,
        "norm": "linf",
        "epsilons": [float(e) for e in rob_cfg.attack_eps],
        "rel_step": float(rob_cfg.attack_rel_step),
        "random_start": False,
        "tolerance": cfg.tolerance,
        "chance_margin": cfg.chance_margin,
        "n_examples": None if sel is None else int(sel.size),
        "bootstrap": int(rob_cfg.bootstrap),
        "ci_level": float(rob_cfg.ci_level),
        "seed": int(rob_cfg.seed),
        "min_group_size": int(rob_cfg.min_group_size),
        "smoothing": None
        if not do_smooth
        else {
            "sigma": float(rcfg.sigma),
            "noise": rcfg.noise,
            "num_noise": cfg.num_noise,
            "num_samples": cfg.num_samples,
            "objective": "mean_softmax",
            "num_steps": attack_steps,
            "n_examples": int(eval_idx.size),  # type: ignore[union-attr]
            "seed": int(rcfg.seed),
        },
    }
    inputs = {
        "format": 1,
        "settings": settings,
        "batch_size": cfg.batch_size,
        "data_fingerprint": fp,
        "attributes": [list(rob_cfg.attributes), list(rob_cfg.intersections)],
        "targets": [
            [m.spec.eval_hash, role, None if s is None else s.spec.train_id] for m, role, s in plan
        ],
        "test_index": None if test_index is None else _io.stable_hash(test_index[sel].tolist()),
        "smoothing": None
        if not do_smooth
        else [str(rs_dir.name), _io.stable_hash(eval_idx.tolist())],  # type: ignore[union-attr]
    }
    inputs_hash = _io.stable_hash(inputs)
    json_path = results / "soundness.json"
    if json_path.is_file():
        try:
            old = _io.read_json(json_path)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("inputs_hash") == inputs_hash:
            log("soundness checks: up to date (inputs unchanged), reused results/soundness.json")
            _write_soundness_views(results, old)
            return old

    key = jax.random.fold_in(jax.random.key(int(rob_cfg.seed)), 0x50D)
    checks: list[dict[str, Any]] = []
    parity: list[dict[str, Any]] = []
    model_records: list[dict[str, Any]] = []
    with _quiet(progress):
        if plan:
            idx = test_index[sel]  # type: ignore[index]
            x = np.asarray(dataset.waveforms[idx], np.float32)
            y = np.asarray(dataset.labels[idx], np.int32)
            attrs = {k: np.asarray(v)[idx] for k, v in dataset.attributes.items()}
            groups = rb.resolve_groups(attrs, rob_cfg)
            speakers = np.asarray(dataset.speakers)[idx]
            for member, role, sur in plan:
                spec = member.spec
                log(
                    f"  soundness: {spec.member_id} ({role or 'requested'}): PGD steps "
                    f"{list(steps)}, {cfg.restarts} restarts, transfer from "
                    f"{'-' if sur is None else sur.spec.member_id}"
                )
                apply_fn, variables = _load_model(
                    dataset,
                    spec.train_spec["train_config"],
                    Path(run_dir) / "models" / spec.train_id,
                    progress,
                )
                fn = with_preprocess(
                    apply_fn, rb.parse_preprocess(spec.preprocess, dataset.sample_rate)
                )
                surrogate = None
                if sur is not None:
                    surrogate = _load_model(
                        dataset,
                        sur.spec.train_spec["train_config"],
                        Path(run_dir) / "models" / sur.spec.train_id,
                        progress,
                    )
                mkey = jax.random.fold_in(key, int(spec.eval_hash[:7], 16))
                rep = soundness.run_soundness_checks(
                    fn, variables, x, y, eps, mkey, num_classes=dataset.num_classes,
                    steps=steps, restarts=cfg.restarts or None, restart_steps=attack_steps,
                    surrogate=surrogate, rel_step=float(rob_cfg.attack_rel_step),
                    tolerance=cfg.tolerance, chance_margin=cfg.chance_margin,
                    batch_size=cfg.batch_size,
                )  # fmt: skip
                base = {"model": spec.member_id, "role": role}
                checks += _check_rows(spec.member_id, role, rep.checks)
                parity += _parity_rows(
                    rep.correct, eps, groups, speakers, rob_cfg, jax.random.fold_in(mkey, 7), base
                )
                model_records.append(
                    {
                        **base,
                        "surrogate": None if sur is None else sur.spec.member_id,
                        "study_attack": f"PGD-{attack_steps}",
                        "attacks": list(rep.correct),
                        "verdict": rep.verdict,
                        "report": rep.to_dict(),
                    }
                )
        smooth_record = None
        if do_smooth:
            log(
                f"  soundness: EOT attack on the RS base model (sigma {rcfg.sigma:g}, "
                f"M {cfg.num_noise}, N {cfg.num_samples}) on {eval_idx.size} clips"  # type: ignore[union-attr]
            )
            apply_fn, variables = _load_model(dataset, rs_tcfg, rs_dir, progress)  # type: ignore[arg-type]
            xs = np.asarray(dataset.waveforms[eval_idx], np.float32)
            ys = np.asarray(dataset.labels[eval_idx], np.int32)
            skey = jax.random.fold_in(key, 0x5A)
            sc = soundness.SmoothingAttackConfig(
                sigma=float(rcfg.sigma), num_noise=cfg.num_noise, num_samples=cfg.num_samples,
                noise=rcfg.noise, chunk_size=min(int(rcfg.chunk_size), cfg.num_samples),
            )  # fmt: skip
            check = soundness.smoothed_robust_correct(
                apply_fn, variables, xs, ys, eps, skey, num_classes=dataset.num_classes,
                smoothing_config=sc, num_steps=attack_steps,
                rel_step=float(rob_cfg.attack_rel_step), tolerance=cfg.tolerance,
                batch_size=cfg.batch_size,
            )  # fmt: skip
            name = "RS base (rejection study)"
            base = {"model": name, "role": "smoothed classifier"}
            checks += _check_rows(name, base["role"], [check])
            correct = {
                "smoothed: plain PGD on base": check.plain_correct,
                "smoothed: EOT": check.eot_correct,
                "smoothed: strongest": check.strongest_correct,
            }
            s_attrs = {k: np.asarray(v)[eval_idx] for k, v in dataset.attributes.items()}
            parity += _parity_rows(
                correct, eps, rb.resolve_groups(s_attrs, rob_cfg),
                np.asarray(dataset.speakers)[eval_idx], rob_cfg, jax.random.fold_in(skey, 7), base,
            )  # fmt: skip
            n = max(int(eval_idx.size), 1)  # type: ignore[union-attr]
            smooth_record = {
                **base,
                "verdict": check.verdict,
                "attacks": list(correct),
                "accuracy": {k: (np.asarray(v).sum(-1) / n).tolist() for k, v in correct.items()},
                "check": check.to_dict(),
            }
    record = {
        "study": "soundness",
        "inputs_hash": inputs_hash,
        "verdict": "warn" if any(c["verdict"] == "warn" for c in checks) else "pass",
        "dataset": dataset.name,
        "data_fingerprint": fp,
        "library_version": library_version(),
        "settings": settings,
        "checks": checks,
        "parity": parity,
        "models": model_records,
        "smoothing": smooth_record,
    }
    _io.atomic_write_json(json_path, record)
    record = _io.read_json(json_path)  # views from the file, exactly as a rerun sees it
    _write_soundness_views(results, record)
    return record


def _write_soundness_views(results: Path, record: Mapping[str, Any]) -> None:
    """``soundness.md`` and ``soundness_parity.{csv,json}`` from the ``soundness.json`` record."""
    from fairrobust import report
    from fairrobust.studies._common import write_table

    write_table(results / "soundness_parity", record.get("parity", []), PARITY_COLUMNS)
    _io.atomic_write_text(results / "soundness.md", report.render_soundness(record))


def _remove_soundness(run_dir: Path) -> None:
    for name in SOUNDNESS_FILES:
        (run_dir / "results" / name).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- CLI


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions


def add_run_arguments(parser: argparse.ArgumentParser, *, data_args: bool = True) -> None:
    """Add the flags of ``fairrobust run`` to ``parser``.

    ``--dataset`` and ``--data-dir`` (only with ``data_args`` and when the parser
    does not already define them), ``--preset quick|paper``, ``--config`` (TOML
    with ``[robustness]`` / ``[rejection]`` tables), ``--attributes``,
    ``--intersections``, ``--seed``, ``--out``, ``--resume [DIR]``,
    ``--runs-dir``, ``--only``, ``--no-soundness``, ``--no-progress``.
    """
    from fairrobust.data import DATASETS

    if data_args and not _has(parser, "--dataset"):
        parser.add_argument(
            "--dataset",
            default="bundled",
            choices=DATASETS,
            help="dataset loader (default: bundled WUW keyword clips, no download needed)",
        )
    if data_args and not _has(parser, "--data-dir"):
        parser.add_argument(
            "--data-dir", type=Path, default=None, help="dataset root (not for 'bundled')"
        )
    g = parser.add_argument_group("run")
    g.add_argument(
        "--preset",
        default="quick",
        help="quick (default): minutes on a 2-core CPU; paper: the AISec'23 settings "
        "(40 models, 100-step PGD, N up to 10^4, alpha step 1e-3)",
    )
    g.add_argument(
        "--config",
        type=Path,
        default=None,
        dest="run_config",
        help="TOML file overriding study settings in [robustness] and [rejection] tables",
    )
    g.add_argument(
        "--attributes",
        default=None,
        help="comma-separated attributes to analyse (default: every attribute)",
    )
    g.add_argument(
        "--intersections",
        nargs="+",
        default=None,
        help="intersections to analyse, each 'a x b' or 'a,b' (or 'all-pairs')",
    )
    g.add_argument("--seed", type=int, default=None, help="seed of both studies (default 0)")
    g.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (default: a fresh runs/<date-time>/); an existing folder is "
        "continued, reusing only results whose settings still match",
    )
    g.add_argument(
        "--resume",
        nargs="?",
        const=LATEST,
        default=None,
        metavar="RUN_DIR",
        help="continue RUN_DIR, or with no value the most recent folder under --runs-dir",
    )
    g.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="parent of timestamped run folders (default: runs)",
    )
    g.add_argument(
        "--only",
        choices=("robustness", "rejection"),
        default=None,
        help="run only one of the two studies",
    )
    g.add_argument(
        "--no-soundness",
        action="store_true",
        help="skip the attack-soundness checks (convergence, restarts, transfer, EOT on "
        "smoothing) of the clean baseline and the most robust model",
    )
    if not _has(parser, "--no-progress"):
        g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def format_summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The closing summary table as aligned text (one row per attribute)."""
    from fairrobust.report import fmt_ci

    cols = [
        ("attribute", lambda r: r["attribute"]),
        ("worst-served (AUC_acc)", lambda r: r.get("worst_group_auc_acc") or "-"),
        (
            "DP clean baseline",
            lambda r: fmt_ci(
                r.get("dp_baseline"), r.get("dp_baseline_ci_low"), r.get("dp_baseline_ci_high")
            ),
        ),
        (
            "DP most robust",
            lambda r: fmt_ci(
                r.get("dp_robust"), r.get("dp_robust_ci_low"), r.get("dp_robust_ci_high")
            ),
        ),
        ("most rejected (NR)", lambda r: r.get("worst_group_nr") or "-"),
        (
            "FPR Parity NR",
            lambda r: fmt_ci(
                r.get("fpr_parity_nr"),
                r.get("fpr_parity_nr_ci_low"),
                r.get("fpr_parity_nr_ci_high"),
            ),
        ),
        (
            "FPR Parity RS (largest N)",
            lambda r: fmt_ci(
                r.get("fpr_parity_rs"),
                r.get("fpr_parity_rs_ci_low"),
                r.get("fpr_parity_rs_ci_high"),
            ),
        ),
    ]
    if any("dp_robust_strongest" in r for r in rows):  # with the soundness checks
        cols.insert(
            4,
            (
                "DP most robust (strongest attack)",
                lambda r: fmt_ci(
                    r.get("dp_robust_strongest"),
                    r.get("dp_robust_strongest_ci_low"),
                    r.get("dp_robust_strongest_ci_high"),
                ),
            ),
        )
    cells = [[fn(r) for _, fn in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def run_main(args: argparse.Namespace) -> int:
    """``fairrobust run`` from parsed ``args``; prints the summary table and the report path.

    Returns 0 on success; ``ValueError`` / ``FileNotFoundError`` propagate to the
    CLI's error handler.
    """
    preset = getattr(args, "preset", "quick") or "quick"
    if preset not in RUN_PRESETS:
        raise ValueError(f"--preset: expected 'quick' or 'paper', got {preset!r}")
    options = {
        k: getattr(args, k)
        for k in ("sample_rate", "duration")
        if getattr(args, k, None) is not None and getattr(args, "dataset", "bundled") != "bundled"
    }
    only = getattr(args, "only", None)
    outcome = run(
        dataset=getattr(args, "dataset", "bundled") or "bundled",
        data_dir=getattr(args, "data_dir", None),
        preset=preset,
        config_file=getattr(args, "run_config", None),
        seed=getattr(args, "seed", None),
        attributes=getattr(args, "attributes", None),
        intersections=getattr(args, "intersections", None),
        out=getattr(args, "out", None),
        resume=getattr(args, "resume", None),
        runs_dir=getattr(args, "runs_dir", Path("runs")),
        studies=(only,) if only else ("robustness", "rejection"),
        progress=not getattr(args, "no_progress", False),
        load_options=options,
        soundness=not getattr(args, "no_soundness", False),
    )
    print()
    level = next((r["ci_level"] for r in outcome.summary if r.get("ci_level")), None)
    what = f"{100 * level:g}% bootstrap intervals" if level else "bootstrap intervals"
    print(f"Summary ({what} in brackets; DP = Defense Parity, lower = more equal)")
    print(format_summary_table(outcome.summary))
    print()
    print(f"report: {outcome.report_md}")
    print(f"        {outcome.report_html}")
    print(f"({outcome.timings['total']:.0f} s)")
    sys.stdout.flush()
    return 0


def _main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - for manual use
    parser = argparse.ArgumentParser(prog="fairrobust run")
    add_run_arguments(parser)
    return run_main(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
