"""The ``fairrobust`` command: ``run``, ``study``, ``train``, ``certify``, ``config``.

Every subcommand is a thin layer over the library (flax ``main.py`` style):
parse and validate flags, call the library, print a short table. Every flag is
defined once in :mod:`fairrobust.cli._flags`; what a command prints goes through
:mod:`fairrobust.cli._term` (at most 120 columns). This
package is the only place with ``argparse`` and with imports inside functions
(so that ``fairrobust --help`` does not import JAX).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from fairrobust.cli import _term, certify, config, run, study, train

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fairrobust`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fairrobust",
        description="For whom do ML security defenses defend? Parity of adversarial training, "
        "noise augmentation, randomized smoothing and neural rejection across groups.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "run",
        help="the main job: both studies on a dataset (default: bundled) and a report",
        description=textwrap.fill(
            "Train the model grid, run the robustness and rejection studies and write a run "
            "folder with results/*.csv|json, figures/*.png, report.md and a self-contained "
            "report.html. With no arguments: quick preset on the bundled data.",
            width=80,
        ),
        epilog=run.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_arguments(p)
    p.set_defaults(func=run.main)

    p = sub.add_parser("train", help="train one M5 / M5-Tricks model")
    train.add_arguments(p)
    p.set_defaults(func=train.main)

    studies = sub.add_parser("study", help="run one of the paper's two studies")
    study_sub = studies.add_subparsers(dest="study", required=True)
    p = study_sub.add_parser(
        "robustness",
        help="robustness-training equality: AUC_acc and Defense Parity over a model grid",
    )
    study.add_robustness_arguments(p)
    p.set_defaults(func=study.robustness_main)
    p = study_sub.add_parser(
        "rejection",
        help="rejection equality: AUC_FPR and FPR Parity, randomized smoothing vs neural rejection",
    )
    study.add_rejection_arguments(p)
    p.set_defaults(func=study.rejection_main)

    p = sub.add_parser(
        "certify", help="Cohen et al. CERTIFY every clip of a split; per-example CSV"
    )
    certify.add_arguments(p)
    p.set_defaults(func=certify.main)

    p = sub.add_parser(
        "config",
        help="print a preset's settings as a TOML file for --config (every key, its default "
        "and meaning)",
        description=config.DESCRIPTION,
    )
    config.add_arguments(p)
    p.set_defaults(func=config.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fairrobust`` console script; errors exit 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _term.installed():
            return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fairrobust: error: {exc}", file=sys.stderr)  # one line, never wrapped
        _abort_other_processes(2)
        return 2
    except BaseException:
        _abort_other_processes(1, traceback=True)
        raise


def _abort_other_processes(code: int, *, traceback: bool = False) -> None:
    """In a ``jax.distributed`` run, a process that fails exits at once (no shutdown
    barrier), so the coordination service stops the others instead of leaving them
    waiting in a collective for the failed process."""
    jax = sys.modules.get("jax")
    if jax is None or not getattr(jax.distributed, "is_initialized", lambda: True)():
        return
    if jax.process_count() < 2:
        return
    if traceback:
        import traceback as tb

        tb.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
