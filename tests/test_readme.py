"""README: the two set-up commands, CI's use of them, and the library example."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _setup_section() -> str:
    return README.split("## Set-up", 1)[1].split("\n## ", 1)[0]


def test_setup_has_exactly_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", _setup_section(), flags=re.S)
    commands = [line for b in blocks for line in b.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    assert commands[0].endswith("pip install -e . && fairrobust run")
    assert commands[1].endswith('pip install -e ".[test]" && pytest')


def test_ci_runs_readme_test_command_verbatim():
    script = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in script
    marker = README.split("<!-- test-command -->", 1)[1]
    first = next(line for line in marker.splitlines() if line.strip() and "```" not in line)
    extracted = subprocess.run(
        ["awk", r"/<!-- test-command -->/{getline; while ($0 ~ /^```/) getline; print; exit}",
         "README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert extracted == first.strip()


@pytest.mark.slow
def test_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    # A real module, so that classes defined in the examples (a Flax module is a
    # dataclass) can resolve their module as a user's script would.
    module = types.ModuleType("readme")
    monkeypatch.setitem(sys.modules, "readme", module)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), module.__dict__)
    assert (tmp_path / "runs" / "readme").is_dir()
