"""Notebooks: stored without outputs, library calls only, and executed at tiny scale.

The execution tests are slow (a kernel start, training and sampling per notebook):
``pytest -m slow tests/test_notebooks.py``. They set ``FAIRROBUST_NOTEBOOK_SCALE=tiny``,
which the first code cell of every notebook reads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
ALLOWED_IMPORTS = {"os", "jax", "numpy", "scipy", "fairrobust", "IPython"}


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_rejection.ipynb",
        "03_new_smoothing_variant.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stored_without_outputs_and_only_calls(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "FAIRROBUST_NOTEBOOK_SCALE" in code[0].source
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef), (
                f"{path.name}: notebooks define nothing (found {type(node).__name__})"
            )
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    assert name.split(".")[0] in ALLOWED_IMPORTS, f"{path.name}: imports {name}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_at_tiny_scale(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("FAIRROBUST_NOTEBOOK_SCALE", "tiny")
    monkeypatch.setenv("FAIRROBUST_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("FAIRROBUST_NO_PROGRESS", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert outputs  # something was printed or displayed


def test_new_smoothing_variant_takes_at_most_15_lines_of_user_code():
    """Issue 15: registration to the per-group certified-accuracy figure in <= 15 lines
    (the parameters cell every notebook shares excluded)."""
    nb = nbformat.read(NOTEBOOKS[2], as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"][1:]
    lines = [ln for src in code for ln in src.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) <= 15, lines
    text = "\n".join(code)
    assert "certificate=" in text and "fig_certified_" in text
