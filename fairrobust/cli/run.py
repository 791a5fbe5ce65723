"""``fairrobust run``: parse, call :func:`fairrobust.job.run`, print the summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairrobust.cli import _flags, _term

__all__ = ["EPILOG", "add_arguments", "epilog", "format_summary", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``fairrobust run``: data, the shared study flags, and run-only ones."""
    _flags.add_data(parser, command="run")
    g = _flags.add_study(parser, command="run")
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
    _flags.add_runtime(parser, command="run", distributed=True)


#: ``fairrobust run --help``'s closing text: the folder layout and the presets.
EPILOG = """\
--dataset folder reads DATA_DIR/metadata.csv: one row per clip, columns
  path     audio file, relative to DATA_DIR (WAV, FLAC, OGG, MP3)
  label    class name (numbers sort numerically)
  speaker  speaker id (splits are speaker-disjoint; intervals are clustered by speaker)
  split    optional: train, val (or dev, validation) or test; without it the speakers
           are split 70/10/20 at random (seeded)
  every other column is a demographic attribute (blank = "unknown"), e.g.
    path,label,speaker,split,gender,accent
    clips/s01_yes_1.wav,yes,s01,train,female,scottish

presets (--preset; 'fairrobust config --preset NAME' prints every setting as TOML):
{presets}

examples:
  fairrobust run                                   # quick preset, bundled data
  fairrobust run --dataset folder --data-dir my_clips --attributes gender,accent
  fairrobust run --preset paper --out runs/paper   # rerun the same command to resume
"""


def epilog() -> str:
    """:data:`EPILOG` with the presets filled in."""
    presets = "\n".join(f"  {k:<6} {v}" for k, v in _flags.PRESET_HELP.items())
    return EPILOG.format(presets=presets)


def main(args: argparse.Namespace) -> int:
    """``fairrobust run`` from parsed ``args``; prints the summary tables and the report path."""
    _flags.check_data(args)  # before any import of the computation
    from fairrobust.job import run

    overrides = _flags.study_overrides(args)
    for name in ("seed", "attributes", "intersections"):
        overrides.pop(name, None)
    only = args.only
    runtime = _flags.start_runtime(args, log=_term.echo)
    outcome = run(
        dataset=args.dataset,
        data_dir=args.data_dir,
        preset=args.preset,
        config_file=args.config,
        seed=args.seed,
        attributes=args.attributes,
        intersections=args.intersections,
        out=args.out,
        resume=args.resume,
        runs_dir=args.runs_dir,
        studies=(only,) if only else ("robustness", "rejection"),
        overrides=overrides,
        reuse=not args.no_resume,
        progress=not args.no_progress,
        load_options=_flags.load_options(args),
        log=_term.echo,
        soundness=not args.no_soundness,
        runtime=runtime,
    )
    if not runtime.writer:
        _term.echo(
            f"process {runtime.process_index} of {runtime.process_count}: done; process 0 "
            f"wrote {outcome.run_dir}"
        )
        return 0
    _term.echo(format_summary(outcome.summary))
    _term.echo(f"report: {outcome.report_md}")
    _term.echo(f"        {outcome.report_html}")
    _term.echo(f"({_term.num(outcome.timings['total'])} s)")
    sys.stdout.flush()
    return 0


def _clips(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    """``"200 clips"`` when every row's ``key`` names the same clip count, else ``""``."""
    ns = {r.get(key) for r in rows} - {None}
    return f"{ns.pop()} clips" if len(ns) == 1 else ""


def _ci(row: Mapping[str, Any], key: str) -> str:
    return _term.ci(row.get(key), row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high"))


def _dp(row: Mapping[str, Any], key: str) -> str:
    """Defense Parity ``key`` normalised by the budget range (``auc_acc_width``), as the
    report prints it; the raw integral when the row has no width (older summaries)."""
    width = row.get("auc_acc_width")
    scale = 1.0 / width if isinstance(width, (int, float)) and width > 0 else 1.0
    vals = [row.get(k) for k in (key, f"{key}_ci_low", f"{key}_ci_high")]
    return _term.ci(*[None if v is None else v * scale for v in vals])


def _has(rows: Sequence[Mapping[str, Any]], *keys: str) -> bool:
    return any(r.get(k) is not None for r in rows for k in keys)


def format_summary(rows: Sequence[Mapping[str, Any]], width: int = _term.WIDTH) -> str:
    """The closing summary: one table per study (and one of the soundness checks), each
    at most ``width`` columns, numbers to 3 significant digits with their intervals."""
    level = next((r["ci_level"] for r in rows if r.get("ci_level")), None)
    what = f"{100 * level:g}% bootstrap intervals" if level else "bootstrap intervals"
    head = f"Summary per attribute ({what} in brackets; lower parity = more equal)\n"
    blocks: list[str] = []
    if _has(rows, "baseline_member", "robust_member"):
        n = _clips(rows, "dp_baseline_n")
        blocks.append(
            "Robustness study: Defense Parity (DP, normalised AUC_acc gap)"
            f"{f' on {n}' if n else ''}; "
            "worst-served = lowest AUC_acc under the most robust model\n"
            + _term.table(
                ["attribute", "worst-served", "DP clean baseline", "DP most robust"],
                [
                    [
                        r["attribute"],
                        str(r.get("worst_group_auc_acc") or "-"),
                        _dp(r, "dp_baseline"),
                        _dp(r, "dp_robust"),
                    ]
                    for r in rows
                ],
                width,
            )
        )
    if _has(rows, "dp_baseline_strongest_n", "dp_robust_strongest_n"):
        n = _clips(rows, "dp_baseline_strongest_n") or _clips(rows, "dp_robust_strongest_n")
        cells = [
            [r["attribute"], label, _dp(r, f"dp_{tag}_study_attack_same_clips"),
             _dp(r, f"dp_{tag}_strongest")]
            for r in rows
            for tag, label in (("baseline", "clean baseline"), ("robust", "most robust"))
            if r.get(f"dp_{tag}_strongest_n") is not None
        ]  # fmt: skip
        blocks.append(
            f"Soundness checks: DP under the study's attack and the strongest attack tried"
            f"{f' (same {n})' if n else ''}\n"
            + _term.table(["attribute", "model", "study attack", "strongest attack"], cells, width)
        )
    if _has(rows, "fpr_parity_nr", "fpr_parity_rs", "worst_group_nr"):
        ns = {r.get("rs_n") for r in rows} - {None}
        rs = f"FPR Parity RS (N={ns.pop()})" if len(ns) == 1 else "FPR Parity RS (largest N)"
        blocks.append(
            "Rejection study: FPR Parity of neural rejection (NR) and randomized smoothing (RS)\n"
            + _term.table(
                ["attribute", "most rejected (NR)", "FPR Parity NR", rs],
                [
                    [
                        r["attribute"],
                        str(r.get("worst_group_nr") or "-"),
                        _ci(r, "fpr_parity_nr"),
                        _ci(r, "fpr_parity_rs"),
                    ]
                    for r in rows
                ],
                width,
            )
        )
    return _term.wrap(head + "\n\n".join(blocks or ["(no study results)"]), width)
