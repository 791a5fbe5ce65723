"""Tiny end-to-end study runs through the real CLI, shared by the reliability tests.

The crash-safety, determinism and provenance tests all need the output of an
uninterrupted ``fairrobust study ...`` run on the same tiny data; it is computed
once per pytest session (:func:`reference_run`) and compared against. Every run
is a subprocess (``python -m fairrobust.cli``) on CPU, with a session-wide JAX
persistent compilation cache so that only the first run pays for compilation
(a cached executable computes exactly what a fresh compile does).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

#: TOML of a robustness grid of 2 models x 2 preprocess = 4 members, 4 epochs each.
ROBUSTNESS_TOML = """\
[robustness]
models = ["m5"]
at_eps = [0.0]
noise_std = [0.0, 0.05]
preprocess = ["none", "quantize:bits=8"]
attack_eps = [0.01, 0.1]
attack_steps = 2
epochs = 4
width = 4
batch_size = 8
lr = 0.01
at_steps = 1
min_group_size = 2
bootstrap_resamples = 0
"""

#: TOML of a rejection study: RS with N in {10, 50} over 24 clips in batches of 4
#: (so a partial-sampling checkpoint exists to kill around), CERTIFY, no bootstrap.
#: sigma = 1 so that the noise draws disagree (counts are not all unanimous).
REJECTION_TOML = """\
[rejection]
width = 4
epochs = 6
batch_size = 8
lr = 0.01
sigma = 1.0
num_samples = [10, 50]
chunk_size = 10
sample_batch_size = 4
alpha_min = 0.01
alpha_step = 0.01
certify_n0 = 10
certify_n = 30
radii = [0.0, 0.05]
min_group_size = 2
bootstrap_resamples = 0
"""

TOML = {"robustness": ROBUSTNESS_TOML, "rejection": REJECTION_TOML}
#: File-name prefix of each study's results (the folder dataset is named "folder").
PREFIX = {"robustness": "robustness_folder", "rejection": "rejection"}

_SESSION: dict[str, Path] = {}


def write_folder_dataset(root: Path, n_speakers: int = 12, takes: int = 2) -> Path:
    """``root/metadata.csv`` + 1 s 16 kHz WAVs: 3 tone classes, 2 genders, split by speaker.

    Speakers 0-5 train, 6-7 val, 8-11 test (24 test clips with the defaults).
    """
    rng = np.random.default_rng(0)
    splits = ["train"] * 6 + ["val"] * 2 + ["test"] * 4
    lines = ["path,label,speaker,gender,split"]
    t = np.arange(16000) / 16000.0
    for s in range(n_speakers):
        for label, freq in (("low", 300.0), ("mid", 700.0), ("high", 1500.0)):
            for take in range(takes):
                x = 0.5 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
                x = x + 0.05 * rng.standard_normal(t.size)
                rel = f"audio/{s}_{label}_{take}.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, x.astype(np.float32), 16000)
                gender = ("female", "male")[s % 2]
                lines.append(f"{rel},{label},spk{s},{gender},{splits[s % len(splits)]}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root / "metadata.csv"


def session_dir(tmp_path_factory) -> Path:
    """Folder shared by the whole session: data, caches, reference runs."""
    if "root" not in _SESSION:
        _SESSION["root"] = tmp_path_factory.mktemp("study-runs")
    return _SESSION["root"]


def data_csv(tmp_path_factory) -> Path:
    """The tiny folder dataset (written once per session)."""
    if "csv" not in _SESSION:
        _SESSION["csv"] = write_folder_dataset(session_dir(tmp_path_factory) / "data")
    return _SESSION["csv"]


def config_file(tmp_path_factory, study: str) -> Path:
    path = session_dir(tmp_path_factory) / f"{study}.toml"
    if not path.exists():
        path.write_text(TOML[study])
    return path


def cli_env(tmp_path_factory) -> dict[str, str]:
    """Environment of a CLI subprocess: CPU, no progress bars, shared caches."""
    root = session_dir(tmp_path_factory)
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        FAIRROBUST_NO_PROGRESS="1",
        FAIRROBUST_CACHE=str(root / "fairrobust-cache"),
        JAX_COMPILATION_CACHE_DIR=str(root / "jax-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env


def command(tmp_path_factory, study: str, out: Path, seed: int = 0) -> list[str]:
    """``python -m fairrobust.cli study <study> ...`` on the tiny dataset and config."""
    cmd = [
        sys.executable,
        "-m",
        "fairrobust.cli",
        "study",
        study,
        "--dataset",
        "folder",
        "--data-dir",
        str(data_csv(tmp_path_factory)),
        "--config",
        str(config_file(tmp_path_factory, study)),
        "--out",
        str(out),
        "--seed",
        str(seed),
    ]
    if study == "rejection":
        cmd.append("--no-progress")
    return cmd


def run(tmp_path_factory, study: str, out: Path, seed: int = 0, timeout: float = 600) -> float:
    """Run the CLI to completion; returns wall seconds. Fails with the output on error."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        command(tmp_path_factory, study, out, seed),
        env=cli_env(tmp_path_factory),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"CLI failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return time.perf_counter() - t0


def run_killed(
    tmp_path_factory,
    study: str,
    out: Path,
    *,
    delay: float,
    marker: str | None = None,
    timeout: float = 600,
) -> bool:
    """Start the CLI and SIGKILL it ``delay`` s after ``marker`` (a glob under ``out``) appears.

    Without a marker the delay counts from the start. Returns True when the
    process was killed, False when it finished first.
    """
    proc = subprocess.Popen(
        command(tmp_path_factory, study, out),
        env=cli_env(tmp_path_factory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        if marker is not None:
            while not any(out.glob(marker)) and proc.poll() is None:
                assert time.monotonic() < deadline, f"{marker} never appeared"
                time.sleep(0.02)
        end = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return True
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 0, f"CLI failed before the kill:\n{stderr}"
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def reference_run(tmp_path_factory, study: str) -> Path:
    """Output folder of one uninterrupted run with seed 0 (computed once per session)."""
    key = f"ref-{study}"
    if key not in _SESSION:
        out = session_dir(tmp_path_factory) / key
        shutil.rmtree(out, ignore_errors=True)
        run(tmp_path_factory, study, out)
        _SESSION[key] = out
    return _SESSION[key]


def results_bytes(out: Path) -> dict[str, bytes]:
    """Every results file of a run folder (hidden temporaries excluded) -> its bytes."""
    return {
        p.name: p.read_bytes()
        for p in sorted((out / "results").iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def check_no_partial_files(out: Path) -> None:
    """Every non-hidden JSON / NPZ / CSV / checkpoint under ``out`` is complete and parses.

    Atomic writes mean a killed run leaves at most hidden ``.*.tmp`` files; a
    file under its final name must always be whole.
    """
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                for k in z.files:
                    z[k]
        elif p.suffix == ".csv":
            text = p.read_text()
            assert text.endswith("\n"), f"{p}: CSV does not end with a newline"
        elif p.suffix == ".ckpt":
            from fairrobust.train import load_checkpoint

            load_checkpoint(p)
