"""Several processes with ``jax.distributed`` on localhost: results equal one process.

The fast check runs ``tests/distributed_worker.py`` (grid training split over the
processes, an attack sweep, smoothing counts by inputs and by draws) in two processes
with one CPU device each (gloo collectives) and alone; the slow one runs
``fairrobust run --preset tiny`` in two processes and compares every results CSV with
a one-process run.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        FAIRROBUST_NO_PROGRESS="1",
        FAIRROBUST_COMPILE_CACHE="off",
    )
    return env


def _launch(cmds: list[list[str]], timeout: float) -> list[str]:
    procs = [
        subprocess.Popen(c, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in cmds
    ]
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outs.append(out)
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outs


def test_two_processes_compute_what_one_computes(tmp_path):
    port = _free_port()
    two, one = tmp_path / "two.npz", tmp_path / "one.npz"
    _launch(
        [
            [sys.executable, str(WORKER), str(two), f"localhost:{port}", "2", str(i)]
            for i in range(2)
        ],
        timeout=300,
    )
    sys.path.insert(0, str(WORKER.parent))
    try:  # the one-process reference, in this process (one CPU device)
        import distributed_worker

        assert distributed_worker.main([str(one)]) == 0
    finally:
        sys.path.remove(str(WORKER.parent))
    a, b = np.load(two), np.load(one)
    assert (int(a["processes"]), int(a["devices"])) == (2, 2)
    assert (int(b["processes"]), int(b["devices"])) == (1, 1)
    for name in ("correct", "by_inputs", "by_draws"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # Grid members split over the processes (shard_map of lax.map) vs all on one device
    # (lax.map): the same per-member computation; equal up to float32 rounding.
    np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4)


@pytest.mark.slow
def test_fairrobust_run_in_two_processes_writes_the_results_of_one(tmp_path):
    """~3 min on 2 cores: the tiny preset in 2 processes vs 1 (every results CSV)."""
    port = _free_port()
    base = [sys.executable, "-m", "fairrobust", "run", "--preset", "tiny", "--no-progress"]
    base += ["--no-compile-cache"]
    two = tmp_path / "two"
    flags = ["--out", str(two), "--coordinator-address", f"localhost:{port}"]
    flags += ["--num-processes", "2", "--process-id"]
    outs = _launch([[*base, *flags, str(i)] for i in range(2)], timeout=900)
    assert "2 cpu devices in 2 processes" in outs[0]
    assert "process 1 of 2: done" in outs[1]
    one = tmp_path / "one"
    _launch([[*base, "--out", str(one)]], timeout=900)
    csvs = sorted(p.name for p in (one / "results").glob("*.csv"))
    assert csvs and csvs == sorted(p.name for p in (two / "results").glob("*.csv"))
    for name in csvs:
        assert (one / "results" / name).read_bytes() == (two / "results" / name).read_bytes(), name
    assert (two / "report.html").is_file()
    assert not list(two.glob(".fairrobust-process-check-*"))
