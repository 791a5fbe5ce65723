"""What ``fairrobust`` writes to a terminal and to a log: at most 120 columns, and no
control characters unless stderr is a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: Nested stages with long labels, as a run makes them.
_STAGES = """
from fairrobust import _io
with _io.progress(3, desc="robustness: attacks " + "x" * 150, leave=True) as outer:
    for i in range(3):
        outer.set_postfix_str("m5-tricks_at0.01_noise0.05 +3" * 3)
        with _io.progress(4, desc="PGD-linf x2 eps") as inner:
            for _ in range(4):
                inner.update(1)
        outer.update(1)
print("after")
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FAIRROBUST_NO_PROGRESS"}
    env["PYTHONPATH"] = str(ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("COLUMNS", None)
    return env


def _in_pty(argv: list[str], columns: int = 0, timeout: float = 600) -> str:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal (``columns`` wide;
    0 = the size unknown); returns everything it wrote."""
    master, slave = pty.openpty()
    if columns:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=_env(), cwd=ROOT)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def _columns(text: str) -> int:
    """The widest line on a terminal: lines split on \\r and \\n, escape codes removed."""
    return max(len(ANSI.sub("", line)) for line in re.split(r"[\r\n]", text))


@pytest.mark.parametrize("columns", [0, 80, 200])
def test_bars_on_a_terminal_fit_120_columns(columns):
    out = _in_pty([sys.executable, "-c", _STAGES], columns)
    assert "\r" in out and "PGD-linf x2 eps" in out  # bars, nested ones included
    assert _columns(out) <= min(columns or 120, 120)


def test_without_a_terminal_one_plain_line_per_stage():
    proc = subprocess.run(
        [sys.executable, "-c", _STAGES], capture_output=True, text=True, env=_env(), check=True
    )
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # the outer stage only; nested ones are silent
    assert re.fullmatch(
        r"robustness: attacks x+\.\.\. \(3/3\) \.\.\. done in [0-9.e-]+ s", lines[0]
    )
    assert len(lines[0]) == 120 and "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert proc.stdout == "after\n"


def test_no_progress_prints_nothing_and_no_blank_line():
    proc = subprocess.run(
        [sys.executable, "-c", _STAGES.replace("desc=", "enabled=False, desc=")],
        capture_output=True, text=True, env=_env(), check=True,
    )  # fmt: skip
    assert proc.stderr == "" and proc.stdout == "after\n"


def _check_run_output(text: str, terminal: bool) -> None:
    if terminal:
        assert _columns(text) <= 120
    else:
        assert "\r" not in text and "\x1b" not in text
        assert max(len(line) for line in text.splitlines()) <= 120
        assert "\n\n\n" not in text
    assert "Summary per attribute" in text and "report:" in text
    for title in ("Robustness study", "Rejection study", "Soundness checks"):
        assert title in text


@pytest.mark.slow
def test_run_output_fits_120_columns_in_a_log_and_on_a_terminal(tmp_path):
    """``fairrobust run --preset tiny``: a pipe gets plain lines (no \\r, no escape codes),
    a terminal gets bars; either way no line is wider than 120 columns."""
    argv = [sys.executable, "-m", "fairrobust", "run", "--preset", "tiny"]
    proc = subprocess.run(
        [*argv, "--out", str(tmp_path / "pipe")],
        capture_output=True, text=True, env=_env(), cwd=ROOT, check=True,
    )  # fmt: skip
    _check_run_output(proc.stdout + proc.stderr, terminal=False)
    assert "robustness: attacks (2/2) ... done in" in proc.stderr
    out = _in_pty([*argv, "--out", str(tmp_path / "tty")], columns=200)
    _check_run_output(out, terminal=True)
    assert "\r" in out  # bars on the terminal
