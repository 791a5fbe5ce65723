"""The runtime: devices, the compilation cache, writes from one process, the CLI flags."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fairrobust import _io, cli, models
from fairrobust.engine import Runtime, parallel

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.pop("FAIRROBUST_COMPILE_CACHE", None)
    env.update(JAX_PLATFORMS="cpu", FAIRROBUST_NO_PROGRESS="1", **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_runtime_devices_and_forms():
    rt = Runtime.create()
    assert rt.devices == len(jax.devices()) and rt.process_count == 1 and rt.writer
    assert rt.describe().startswith(f"{rt.devices} cpu device")
    assert rt.train_mesh is None  # CPU: every member on one device
    m5 = models.M5(3, width=4)
    assert rt.eval_model(m5).conv_impl == "matmul" and m5.conv_impl == "lax"
    assert Runtime.create(1).devices == 1
    for bad in (0, -1, len(jax.devices()) + 1, 1.5):
        with pytest.raises(ValueError, match="devices: expected"):
            Runtime.create(bad)  # pyright: ignore[reportArgumentType]


def test_put_and_fetch_keep_values_and_key_types():
    mesh = Runtime.create().mesh
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    key = jax.random.key(3)
    px, pk = parallel.put((x, key), mesh)
    assert jax.dtypes.issubdtype(pk.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(
        jax.random.key_data(pk), jax.random.key_data(key)
    )  # same key, same implementation
    assert parallel.put(px, mesh) is px  # already placed
    out = parallel.fetch({"a": px, "b": [px * 2]})
    assert isinstance(out["a"], np.ndarray)
    np.testing.assert_array_equal(out["b"][0], 2 * x)


def test_read_only_skips_writes_and_removals_under_its_root(tmp_path):
    inside, outside = tmp_path / "run", tmp_path / "other"
    _io.atomic_write_text(inside / "kept.txt", "old")
    with _io.read_only(inside):
        assert not _io.writable(inside / "a" / "b.json") and _io.writable(outside / "c")
        assert _io.atomic_write_text(inside / "new.txt", "x") == inside / "new.txt"
        _io.remove(inside / "kept.txt")
        _io.atomic_write_text(outside / "c.txt", "y")
    assert not (inside / "new.txt").exists()
    assert (inside / "kept.txt").read_text() == "old"
    assert (outside / "c.txt").read_text() == "y"
    assert _io.writable(inside / "new.txt")  # the context ended


_CACHE_SCRIPT = """
import argparse, sys
import jax, jax.numpy as jnp
from fairrobust.cli import _flags
args = argparse.Namespace(devices=None, compile_cache=sys.argv[1] if len(sys.argv) > 1 else None,
                          no_compile_cache=False)
_flags.start_runtime(args)
print(float(jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).sum()))
"""


def test_compile_cache_flag_env_and_off_switch(tmp_path):
    folder = tmp_path / "cc"
    run = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT, str(folder)],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"compiled programs cached in {folder}" in run.stdout
    assert list(folder.glob("*-cache")), "no program was written to the cache"
    env_folder = tmp_path / "env"
    run = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT],
        env=_env(FAIRROBUST_COMPILE_CACHE=str(env_folder)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert list(env_folder.glob("*-cache"))
    run = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT],
        env=_env(FAIRROBUST_COMPILE_CACHE="off", FAIRROBUST_CACHE=str(tmp_path / "fr")),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "no compilation cache" in run.stdout
    assert not (tmp_path / "fr" / "jax").exists()


def test_runtime_flags_are_checked_before_anything_runs(capsys):
    for argv, msg in (
        (["run", "--preset", "tiny", "--devices", "0"], "--devices: expected an integer >= 1"),
        (["run", "--preset", "tiny", "--devices", "99"], "devices: expected at most"),
        (["run", "--preset", "tiny", "--num-processes", "0"], "--num-processes: expected"),
        (["study", "rejection", "--preset", "tiny", "--out", "x", "--devices", "-2"], "--devices"),
    ):
        try:  # a bad number is refused when parsed (argparse exits 2), the rest by main
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        assert msg in capsys.readouterr().err


def test_start_runtime_names_the_devices(capsys):
    from fairrobust.cli import _flags

    args = argparse.Namespace(devices=1, compile_cache=None, no_compile_cache=True)
    rt = _flags.start_runtime(args)
    assert rt.devices == 1
    assert "devices: 1 cpu device (no compilation cache)" in capsys.readouterr().out


@pytest.mark.slow
def test_tiny_run_is_byte_identical_on_one_and_two_host_devices(tmp_path):
    """~2.5 min on 2 cores: every results CSV of `fairrobust run --preset tiny`."""
    base = [sys.executable, "-m", "fairrobust", "run", "--preset", "tiny", "--no-progress"]
    base += ["--no-compile-cache"]
    outs = {}
    for n in (1, 2):
        env = _env(XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        proc = subprocess.run(
            [*base, "--out", str(tmp_path / str(n))], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[n] = proc.stdout
    assert "devices: 2 cpu devices" in outs[2] and "devices: 1 cpu device " in outs[1]
    one, two = tmp_path / "1" / "results", tmp_path / "2" / "results"
    csvs = sorted(p.name for p in one.glob("*.csv"))
    assert len(csvs) > 10 and csvs == sorted(p.name for p in two.glob("*.csv"))
    for name in csvs:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
