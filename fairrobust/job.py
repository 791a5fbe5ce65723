"""``fairrobust run``: both studies of the AISec'23 paper, end to end, into one run folder.

The job composes the library's layers: load the data, run the robustness and
rejection studies (:mod:`fairrobust.studies`), the soundness study on their
results, write the summary and findings (:mod:`fairrobust.studies.summary`) and
render the report (:mod:`fairrobust.report`)::

    runs/<YYYYmmdd-HHMMSS>/            (or --out DIR)
      config.json                       dataset, preset, seed, every study config, environment
      run.json                          wall time per step (not a result: differs per run)
      results/robustness_<dataset>_*.{csv,json}   AUC_acc, Defense Parity, CIs, correlations
      results/rejection_*.{csv,json,npz}          AUC_FPR, FPR Parity, CIs, certified accuracy
      results/run_summary.{csv,json}    the summary table printed at the end
      results/run_findings.json         the findings sentences and the numbers they rest on
      results/soundness.{json,md}       attack-soundness checks with settings + input hash
      results/soundness_parity.{csv,json}  Defense Parity per attack tried, with CIs
      figures/*.png                     every figure of the report
      models/, cache/                   checkpoints and sampling caches (resume)
      report.md, report.html            the report (html: figures embedded, no external files)

Resuming: every trained model, attack result and sampling cache is keyed by a
hash of everything it depends on, so reusing a folder never reuses stale
numbers. Without ``out`` each call makes a fresh timestamped folder; ``out=DIR``
reuses whatever in ``DIR`` still matches the settings; ``resume="latest"``
continues the most recent folder under ``runs_dir``. Results files are
byte-identical for the same data, settings, seed and environment.

Settings come from :mod:`fairrobust.studies.config` (presets ``quick``,
``paper``, ``tiny``; a TOML file with ``[robustness]``, ``[rejection]`` and
``[soundness]`` tables).

Python::

    from fairrobust.job import run
    outcome = run(out="runs/demo", preset="quick")
    print(outcome.report_md)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fairrobust import _io, report
from fairrobust.data import AudioDataset, dataset_options, load_bundled, load_dataset
from fairrobust.engine.runtime import Runtime
from fairrobust.studies import environment, library_version
from fairrobust.studies import rejection as rj
from fairrobust.studies import robustness as rb
from fairrobust.studies.config import RunConfigs, SoundnessConfig, load_configs
from fairrobust.studies.soundness import remove_soundness, run_soundness
from fairrobust.studies.summary import write_summary

__all__ = ["LATEST", "STUDIES", "RunOutcome", "resolve_run_dir", "run"]

#: ``resume`` value that continues the most recent run folder under ``runs_dir``.
LATEST = "latest"
#: The studies a run can include.
STUDIES = ("robustness", "rejection")


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
    robustness: rb.RobustnessResults | None
    rejection: rj.RejectionResults | None
    summary: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    report_md: Path
    report_html: Path
    timings: dict[str, float]


def _load(
    dataset: str, data_dir: str | os.PathLike[str] | None, options: Mapping[str, Any]
) -> AudioDataset:
    if dataset == "bundled":
        if data_dir is not None:
            raise ValueError("--data-dir: the bundled dataset takes no data folder")
        return load_bundled(**dataset_options("bundled", options))
    if data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {dataset}")
    return load_dataset(dataset, data_dir, **options)


def run(
    *,
    dataset: str | AudioDataset = "bundled",
    data_dir: str | os.PathLike[str] | None = None,
    preset: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    attributes: Sequence[str] | str | None = None,
    intersections: Sequence[str] | str | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    studies: Sequence[str] = STUDIES,
    overrides: Mapping[str, Any] | None = None,
    reuse: bool = True,
    progress: bool = True,
    load_options: Mapping[str, Any] | None = None,
    log: Callable[[str], Any] = print,
    soundness: bool | SoundnessConfig = True,
    runtime: Runtime | None = None,
) -> RunOutcome:
    """Run both studies into one run folder and write the report.

    Args:
      dataset: loader name (``bundled``, ``fsdd``, ``wuw``, ``audiomnist``,
        ``common-voice``, ``folder``) or an ``AudioDataset``.
      data_dir: dataset root (not for ``bundled``).
      preset, config_file, seed, attributes, intersections: see
        :func:`fairrobust.studies.config.load_configs`.
      out, resume, runs_dir: see :func:`resolve_run_dir`.
      studies: which studies to run (both by default).
      overrides: fields set in both study configs after the file (see
        :func:`~fairrobust.studies.config.load_configs`).
      reuse: reuse finished models and results in the folder whose settings match
        (False recomputes everything).
      progress: show progress bars.
      load_options: extra loader options (``sample_rate``, ``duration``).
      log: where step messages go (``print``; a no-op to silence).
      soundness: run the soundness study with the preset's
        :class:`~fairrobust.studies.config.SoundnessConfig` (and the config file's
        ``[soundness]`` table); False skips it (and removes soundness files of an
        earlier run in the folder); a ``SoundnessConfig`` sets it explicitly. It
        needs the robustness study (its attack is what is checked).
      runtime: the devices and processes (``fairrobust.engine.Runtime``; default all
        devices of this process). In a ``jax.distributed`` run every process calls
        ``run`` with the same arguments and an explicit ``out`` on a shared file
        system; every process computes, process 0 alone logs and writes, and the
        others return a ``RunOutcome`` without summary rows.

    Returns:
      A :class:`RunOutcome`.

    Raises:
      ValueError: bad settings (the message names the flag / field).
      FileNotFoundError: missing data, config file or run folder to resume.
    """
    bad = sorted(set(studies) - set(STUDIES))
    if bad or not studies:
        raise ValueError(f"studies: expected a subset of {list(STUDIES)}, got {studies}")
    rt = runtime if runtime is not None else Runtime.create()
    if rt.process_count > 1 and out is None and (resume is None or str(resume) == LATEST):
        raise ValueError(
            "--out: a run of several processes needs its output folder named (the same "
            "path on every process, on a shared file system)"
        )
    if not rt.writer:  # every process computes; process 0 logs and writes
        log, progress = (lambda *_: None), False
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    run_dir, continuing = resolve_run_dir(out, resume, runs_dir)
    rt.check_shared_folder(run_dir)
    with contextlib.nullcontext() if rt.writer else _io.read_only(run_dir):
        return _run_in(
            run_dir, continuing, rt, dataset, data_dir, preset, config_file, seed, attributes,
            intersections, studies, overrides, reuse, progress, load_options, log, soundness,
            timings, t_all,
        )  # fmt: skip


def _run_in(
    run_dir: Path,
    continuing: bool,
    rt: Runtime,
    dataset: str | AudioDataset,
    data_dir: str | os.PathLike[str] | None,
    preset: str,
    config_file: str | os.PathLike[str] | None,
    seed: int | None,
    attributes: Sequence[str] | str | None,
    intersections: Sequence[str] | str | None,
    studies: Sequence[str],
    overrides: Mapping[str, Any] | None,
    reuse: bool,
    progress: bool,
    load_options: Mapping[str, Any] | None,
    log: Callable[[str], Any],
    soundness: bool | SoundnessConfig,
    timings: dict[str, float],
    t_all: float,
) -> RunOutcome:
    """The body of :func:`run` once the folder and the runtime are settled."""
    settings: dict[str, Any] = dict(seed=seed, attributes=attributes, intersections=intersections)
    if isinstance(dataset, str):  # every setting checked before the data are loaded
        load_configs(preset, config_file, **settings, overrides=overrides)
        t0 = time.perf_counter()
        ds = _load(dataset, data_dir, dict(load_options or {}))
        loader = dataset
        timings["load"] = time.perf_counter() - t0
    else:
        ds, loader = dataset, getattr(dataset, "name", "custom")
    configs = load_configs(
        preset,
        config_file,
        **settings,
        dataset_attributes=sorted(ds.attributes),
        overrides=overrides,
        soundness=soundness if isinstance(soundness, bool) else True,
    )
    if isinstance(soundness, SoundnessConfig):
        configs = configs._replace(soundness=soundness)
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
        "attributes": _as_list(attributes, ","),
        "intersections": _as_list(intersections, ";"),
        "studies": list(studies),
        "robustness": configs.robustness.to_dict(),
        "rejection": _io.to_jsonable(configs.rejection),
        "soundness": _io.to_jsonable(configs.soundness),
        "library_version": library_version(),
        "environment": environment(),
        "runtime": rt.to_dict(),
    }
    if rt.writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_json(run_dir / "config.json", config_record)
    _remove_stale(run_dir, studies)
    rob_res, rej_res = _run_studies(
        ds, configs, run_dir, studies, timings, reuse, progress, log, rt
    )
    _run_soundness(ds, configs, run_dir, rob_res, rej_res, reuse, progress, log, timings)
    if not rt.writer:  # process 0 renders the summary and report from the files it wrote
        rt.barrier("fairrobust run: report written")
        return RunOutcome(
            run_dir=run_dir, robustness=rob_res, rejection=rej_res, summary=[], findings=[],
            report_md=run_dir / "report.md", report_html=run_dir / "report.html",
            timings=timings,
        )  # fmt: skip
    log(f"[{len(studies) + 1}/{len(studies) + 1}] report")
    t0 = time.perf_counter()
    with _stage("the summary and report"):
        summary = write_summary(run_dir)
        md_path, html_path = report.write_report(run_dir)
    timings["report"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    _io.atomic_write_json(
        run_dir / "run.json",
        {"timings_seconds": timings, "finished": _dt.datetime.now().isoformat(timespec="seconds")},
    )
    rt.barrier("fairrobust run: report written")
    return RunOutcome(
        run_dir=run_dir,
        robustness=rob_res,
        rejection=rej_res,
        summary=summary.rows,
        findings=summary.findings,
        report_md=md_path,
        report_html=html_path,
        timings=timings,
    )


def _run_soundness(
    ds: AudioDataset,
    configs: RunConfigs,
    run_dir: Path,
    rob_res: rb.RobustnessResults | None,
    rej_res: rj.RejectionResults | None,
    reuse: bool,
    progress: bool,
    log: Callable[[str], Any],
    timings: dict[str, float],
) -> None:
    if not configs.soundness.enabled:
        remove_soundness(run_dir)
        return
    log(
        "soundness checks: convergence, budget curve, restarts, transfer, EOT on smoothing "
        f"for {list(configs.soundness.models)}"
    )
    t0 = time.perf_counter()
    with _stage("the soundness checks"):
        record = run_soundness(
            ds, run_dir, configs.soundness, rob_res, rej_res, reuse=reuse,
            progress=progress, log=log,
        )  # fmt: skip
    if record is None:
        log("soundness checks: skipped (they check the robustness study's attack)")
        remove_soundness(run_dir)
    else:  # the report section as a results view, rendered from soundness.json
        _io.atomic_write_text(run_dir / "results" / "soundness.md", report.render_soundness(record))
    timings["soundness"] = time.perf_counter() - t0


def _as_list(items: Sequence[str] | str | None, sep: str) -> list[str]:
    """The run-wide list flags as recorded in ``config.json`` (split, stripped)."""
    if items is None:
        return []
    items = [items] if isinstance(items, str) else items
    return [p.strip() for item in items for p in str(item).split(sep) if p.strip()]


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    """Adds ``[during <name>]`` to a ``ValueError`` raised inside, so that a run's one-line
    error says which step failed (the message itself names the file, field or attribute)."""
    try:
        yield
    except ValueError as exc:
        if "[during " in str(exc):
            raise
        raise ValueError(f"{exc} [during {name}]") from exc


def _run_studies(
    ds: AudioDataset,
    configs: RunConfigs,
    run_dir: Path,
    studies: Sequence[str],
    timings: dict[str, float],
    reuse: bool,
    progress: bool,
    log: Callable[[str], Any],
    rt: Runtime,
) -> tuple[rb.RobustnessResults | None, rj.RejectionResults | None]:
    rob_res = rej_res = None
    rob_cfg, rej_cfg = configs.robustness, configs.rejection
    if "robustness" in studies:
        log(
            f"[1/{len(studies) + 1}] robustness study: {rob_cfg.num_models} models "
            f"x {len(rob_cfg.preprocess)} preprocess, PGD {rob_cfg.attack_steps} steps at "
            f"eps {list(rob_cfg.attack_eps)}"
        )
        t0 = time.perf_counter()
        with _stage("the robustness study"):
            rob_res = rb.run_study(
                ds, rob_cfg, run_dir, resume=reuse, progress=progress, runtime=rt
            )
        timings["robustness"] = time.perf_counter() - t0
    if "rejection" in studies:
        step = 1 + ("robustness" in studies)
        log(
            f"[{step}/{len(studies) + 1}] rejection study: RS (sigma {rej_cfg.sigma}, "
            f"N {list(rej_cfg.num_samples)}) vs NR on {rej_cfg.max_examples or 'all'} clips"
        )
        t0 = time.perf_counter()
        with _stage("the rejection study"):
            rej_res = rj.run_study(
                ds, rej_cfg, run_dir, resume=reuse, progress=progress, runtime=rt
            )
        timings["rejection"] = time.perf_counter() - t0
    return rob_res, rej_res


def _remove_stale(run_dir: Path, studies: Sequence[str]) -> None:
    """Drop result files of a study this run does not include (so the report never mixes runs)."""
    results = run_dir / "results"
    for study in ("robustness", "rejection"):
        if study not in studies:
            for p in list(results.glob(f"{study}_*")) + list(
                (run_dir / "figures").glob(f"{study}_*")
            ):
                _io.remove(p)
