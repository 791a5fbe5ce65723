"""``fairrobust run``: parse, call :func:`fairrobust.job.run`, print the summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairrobust.cli import _flags

__all__ = ["add_arguments", "format_summary_table", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``fairrobust run``: data, the shared study flags, and run-only ones."""
    _flags.add_data(parser)
    g = _flags.add_study(parser, study="run")
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
    _flags.add_runtime(parser, distributed=True)


def main(args: argparse.Namespace) -> int:
    """``fairrobust run`` from parsed ``args``; prints the summary table and the report path."""
    from fairrobust.job import run

    overrides = _flags.study_overrides(args)
    for name in ("seed", "attributes", "intersections"):
        overrides.pop(name, None)
    only = args.only
    runtime = _flags.start_runtime(args)
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
        soundness=not args.no_soundness,
        runtime=runtime,
    )
    if not runtime.writer:
        print(
            f"process {runtime.process_index} of {runtime.process_count}: done; process 0 "
            f"wrote {outcome.run_dir}"
        )
        return 0
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


def _fmt_ci(v: Any, low: Any, high: Any) -> str:
    from fairrobust.studies.intervals import fmt_ci

    return fmt_ci(v, low, high)


def _clips(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    """``"200 clips"`` when every row's ``key`` names the same clip count, else ``""``."""
    ns = {r.get(key) for r in rows} - {None}
    return f"{ns.pop()} clips" if len(ns) == 1 else ""


def _label(head: str, *parts: str) -> str:
    """``head (part, part)`` over the non-empty parts (``head`` alone without any)."""
    parts = tuple(p for p in parts if p)
    return f"{head} ({', '.join(parts)})" if parts else head


def format_summary_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The closing summary table as aligned text (one row per attribute)."""

    cols = [
        ("attribute", lambda r: r["attribute"]),
        ("worst-served (AUC_acc)", lambda r: r.get("worst_group_auc_acc") or "-"),
        (
            _label("DP clean baseline", _clips(rows, "dp_baseline_n")),
            lambda r: _fmt_ci(
                r.get("dp_baseline"), r.get("dp_baseline_ci_low"), r.get("dp_baseline_ci_high")
            ),
        ),
        (
            _label("DP most robust", _clips(rows, "dp_robust_n")),
            lambda r: _fmt_ci(
                r.get("dp_robust"), r.get("dp_robust_ci_low"), r.get("dp_robust_ci_high")
            ),
        ),
        ("most rejected (NR)", lambda r: r.get("worst_group_nr") or "-"),
        (
            "FPR Parity NR",
            lambda r: _fmt_ci(
                r.get("fpr_parity_nr"),
                r.get("fpr_parity_nr_ci_low"),
                r.get("fpr_parity_nr_ci_high"),
            ),
        ),
        (
            "FPR Parity RS (largest N)",
            lambda r: _fmt_ci(
                r.get("fpr_parity_rs"),
                r.get("fpr_parity_rs_ci_low"),
                r.get("fpr_parity_rs_ci_high"),
            ),
        ),
    ]
    if any("dp_robust_strongest" in r for r in rows):  # with the soundness checks
        # Both on the soundness checks' clips (a subset of the study's test clips): the
        # study's attack re-run there, then the strongest attack tried.
        n = _clips(rows, "dp_robust_strongest_n")
        for i, (head, key) in enumerate(
            (
                (_label("DP most robust", "study attack", n), "dp_robust_study_attack_same_clips"),
                (_label("DP most robust", "strongest attack", n), "dp_robust_strongest"),
            )
        ):
            cols.insert(
                4 + i,
                (
                    head,
                    lambda r, k=key: _fmt_ci(r.get(k), r.get(f"{k}_ci_low"), r.get(f"{k}_ci_high")),
                ),
            )
    cells = [[fn(r) for _, fn in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _) in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
