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

Python::

    from fairrobust.run import run
    outcome = run(out="runs/demo", preset="quick")
    print(outcome.report_md)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairrobust import _io

__all__ = [
    "RUN_PRESETS",
    "RunOutcome",
    "add_run_arguments",
    "format_summary_table",
    "resolve_run_dir",
    "run",
    "run_main",
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
    """The ``[robustness]`` and ``[rejection]`` tables of a run config file."""
    import tomllib

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: run config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    other = sorted(set(data) - {"robustness", "rejection"})
    if other:
        raise ValueError(f"{path}: expected only [robustness] and [rejection] tables, got {other}")
    return {k: dict(data.get(k, {})) for k in ("robustness", "rejection")}


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


# ----------------------------------------------------------------------------- CLI


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions


def add_run_arguments(parser: argparse.ArgumentParser, *, data_args: bool = True) -> None:
    """Add the flags of ``fairrobust run`` to ``parser``.

    ``--dataset`` and ``--data-dir`` (only with ``data_args`` and when the parser
    does not already define them), ``--preset quick|paper``, ``--config`` (TOML
    with ``[robustness]`` / ``[rejection]`` tables), ``--attributes``,
    ``--intersections``, ``--seed``, ``--out``, ``--resume [DIR]``,
    ``--runs-dir``, ``--only``, ``--no-progress``.
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
