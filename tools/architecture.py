"""Regenerate the layer table of ARCHITECTURE.md from the import-linter contract.

Usage (from the repository root)::

    python tools/architecture.py          # rewrite ARCHITECTURE.md in place
    python tools/architecture.py --check  # exit 1 if it is out of date (tests run this)

The table lists the layers of ``[[tool.importlinter.contracts]]`` (the first
contract, of type ``layers``) from the top down; each row names the modules of
that layer and the first line of each module's docstring. It is written between
the markers ``<!-- layers:begin -->`` and ``<!-- layers:end -->``.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- layers:begin -->", "<!-- layers:end -->"


def _summary(module: str) -> str:
    """First docstring line of ``module`` (a package's ``__init__`` or a module file)."""
    path = ROOT.joinpath(*module.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(file.read_text())) or ""
    line = doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""
    return line.replace("``", "`").replace("|", "\\|")


def layers() -> list[list[str]]:
    """The layers contract, top layer first; each layer is a list of module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = config["tool"]["importlinter"]["contracts"][0]
    if contract["type"] != "layers":
        raise ValueError("pyproject.toml: the first import-linter contract must be 'layers'")
    out = []
    for layer in contract["layers"]:
        names = [n.strip() for n in layer.replace("|", ":").split(":") if n.strip()]
        out.append([f"{contract['containers'][0]}.{n}" for n in names])
    return out


def table() -> str:
    """The Markdown layer table."""
    rows = ["| layer | module | what it is |", "| --- | --- | --- |"]
    for i, modules in enumerate(layers()):
        for module in modules:
            rows.append(f"| {i + 1} | `{module}` | {_summary(module)} |")
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` (ARCHITECTURE.md) with the table between the markers replaced."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table() + "\n" + text[end:]


def main(argv: list[str]) -> int:
    path = ROOT / "ARCHITECTURE.md"
    old = path.read_text()
    new = render(old)
    if "--check" in argv:
        if new != old:
            print("ARCHITECTURE.md is out of date: run python tools/architecture.py")
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
