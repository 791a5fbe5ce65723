"""``fairrobust config``: print a preset's settings as a TOML file that ``--config`` accepts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fairrobust.cli import _flags

__all__ = ["DESCRIPTION", "add_arguments", "main"]

DESCRIPTION = (
    "Print every setting of a preset as TOML: the [robustness], [rejection] and [soundness] "
    "tables, each key with the preset's value and its meaning as a comment. Edit it and pass "
    "it back with 'fairrobust run --config FILE' (study commands read their own table)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust config``."""
    _flags.add(parser, "--preset", command="config")
    parser.add_argument(
        "--out", type=Path, default=None, help="write the TOML to this file (default: stdout)"
    )


def main(args: argparse.Namespace) -> int:
    """Print (or write) the preset's TOML."""
    from fairrobust import _io
    from fairrobust.studies.config import preset_toml

    text = preset_toml(args.preset)
    if args.out is None:
        sys.stdout.write(text)
    else:
        _io.atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0
