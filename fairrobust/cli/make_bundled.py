"""Maintainers' command: rebuild the bundled WUW Corpus II asset from the full corpus.

Run from the repository root::

    python -m fairrobust.cli.make_bundled --wuw-root ../shared/data/wuw-corpus-ii

See :func:`fairrobust.data.make_bundled.build_bundled`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fairrobust.data.bundled import BUNDLED_PATH
from fairrobust.data.make_bundled import build_bundled

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse ``--wuw-root`` / ``--out``, rebuild the asset, print its size and SHA-256."""
    parser = argparse.ArgumentParser(description="Rebuild the bundled WUW Corpus II asset.")
    parser.add_argument("--wuw-root", type=Path, required=True, help="WUW Corpus II root")
    parser.add_argument("--out", type=Path, default=BUNDLED_PATH)
    args = parser.parse_args(argv)
    digest = build_bundled(args.wuw_root, args.out)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    print(f"SHA-256 {digest}  (record it as BUNDLED_SHA256 in fairrobust/data/bundled.py)")


if __name__ == "__main__":
    main()
