"""The package's structural rules, checked on its source (ARCHITECTURE.md).

* no module over 900 lines and no function over 150 lines, except the kernels
  listed below with their reason;
* private names (``_x``) stay inside their module: no ``from m import _x`` and no
  ``m._x`` across modules (private *modules* such as ``fairrobust._io`` may be
  imported anywhere, a sub-package's private module only inside it);
* imports at module top, except in ``fairrobust/cli/`` (so ``--help`` is fast);
* ``argparse`` only in ``fairrobust/cli/``;
* one public list: ``fairrobust.__all__`` is exactly the stub's imports, and
  every name resolves; ``fairrobust --help`` imports no JAX.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fairrobust"
FILES = sorted(PKG.rglob("*.py"))
MAX_MODULE_LINES = 900
MAX_FUNCTION_LINES = 150
#: Kernel modules allowed over MAX_MODULE_LINES (one concept each); none today.
LONG_MODULES: dict[str, str] = {}
#: Functions allowed over MAX_FUNCTION_LINES: jitted kernels whose body is one program.
LONG_FUNCTIONS: dict[str, str] = {}


def _module(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in FILES}


def _in_cli(path: Path) -> bool:
    return path.relative_to(PKG).parts[0] == "cli"


def _rel(path: Path) -> str:
    return str(path.relative_to(PKG.parent))


def _private_module_ok(importer: str, target: str) -> bool:
    """May ``importer`` import the (possibly private) module ``target``?"""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])  # the package that owns the private module
            if owner != "fairrobust" and not (importer + ".").startswith(owner + "."):
                return False
    return True


def _resolve(importer_path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _module(importer_path).split(".")
    if importer_path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def test_module_sizes() -> None:
    too_long = {
        _rel(p): n
        for p in FILES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES and _rel(p) not in LONG_MODULES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_function_sizes() -> None:
    too_long = {}
    for p in FILES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                name = f"{_rel(p)}:{node.name}"
                if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    too_long[name] = n
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_private_names_stay_in_their_module() -> None:
    bad = []
    for p in FILES:
        me = _module(p)
        tree = ast.parse(p.read_text())
        aliases: dict[str, str] = {}  # local name -> fairrobust module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _resolve(p, node)
                if not src.startswith("fairrobust"):
                    continue
                if not _private_module_ok(me, src):
                    bad.append(f"{_rel(p)}:{node.lineno} imports private module {src}")
                for a in node.names:
                    full = f"{src}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
                        if not _private_module_ok(me, full):
                            bad.append(f"{_rel(p)}:{node.lineno} imports private module {full}")
                    elif a.name.startswith("_") and not a.name.startswith("__") and src != me:
                        bad.append(f"{_rel(p)}:{node.lineno} imports {full}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("fairrobust") and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and f"{aliases[node.value.id]}.{node.attr}" not in MODULES
            ):
                bad.append(f"{_rel(p)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_imports_at_module_top_outside_cli() -> None:
    bad = []
    for p in FILES:
        if _in_cli(p):
            continue
        for fn in ast.walk(ast.parse(p.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bad += [
                    f"{_rel(p)}:{n.lineno}"
                    for n in ast.walk(fn)
                    if isinstance(n, (ast.Import, ast.ImportFrom))
                ]
    assert not bad, f"function-level imports outside fairrobust/cli/: {bad}"


def test_argparse_only_in_cli() -> None:
    users = [
        _rel(p)
        for p in FILES
        if not _in_cli(p)
        and any(
            (isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert not users, f"argparse outside fairrobust/cli/: {users}"


def test_public_api_is_one_list() -> None:
    import fairrobust

    stub = ast.parse((PKG / "__init__.pyi").read_text())
    names = [
        a.asname or a.name for n in stub.body if isinstance(n, ast.ImportFrom) for a in n.names
    ]
    assert len(names) == len(set(names)), "a name is imported twice in __init__.pyi"
    assert sorted(fairrobust.__all__) == sorted(names)
    for name in names:  # every listed name resolves to a real object
        assert getattr(fairrobust, name) is not None, name
    with pytest.raises(AttributeError):
        _ = fairrobust.no_such_name  # type: ignore[attr-defined]


def test_cli_dataset_choices_match_the_loaders() -> None:
    from fairrobust.cli import build_parser
    from fairrobust.data import DATASETS

    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    assert tuple(run._option_string_actions["--dataset"].choices) == tuple(DATASETS)  # noqa: SLF001


def test_cli_help_imports_no_jax() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from fairrobust.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    build_parser().parse_args(['run', '--help'])\n"
        "print('jax' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]


def test_architecture_md_matches_the_contract() -> None:
    """ARCHITECTURE.md's layer table is the import-linter contract (tools/architecture.py)."""
    tool = PKG.parent / "tools" / "architecture.py"
    proc = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
