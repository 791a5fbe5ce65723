"""Shared helpers of the benchmark scripts: timing, ceilings, environment record, tables.

Not part of the library. Every script imports this first (``from _common import ...``
with ``benchmarks/`` on ``sys.path``, as when run as ``python benchmarks/bench_x.py``).
Nothing here imports ``fairrobust.data`` (its audio decoders are not installed on the
GPU image): workloads are synthetic waveforms.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .` (GPU image)
    sys.path.insert(0, str(ROOT))

# fairrobust.train imports fairrobust.data, whose decoders need soundfile / soxr; the
# GPU image lacks them and no benchmark decodes audio, so empty stand-ins suffice.
for _name in ("soundfile", "soxr"):
    try:
        __import__(_name)
    except ImportError:
        import types

        sys.modules[_name] = types.ModuleType(_name)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
_LOAD_AT_START = os.getloadavg()[0]  # 1-minute load average when the script started


def block(tree: Any) -> Any:
    """``block_until_ready`` on every array leaf; returns the tree.

    Dataclass results (e.g. ``metrics.BootstrapResult``, not a pytree) are blocked
    field by field, so their computation is inside the timed region.
    """
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        for f in dataclasses.fields(tree):
            block(getattr(tree, f.name))
        return tree
    return jax.tree_util.tree_map(
        lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, tree
    )


def time_call(
    fn: Callable[[], Any], *, repeats: int = 3, min_time: float = 0.0
) -> dict[str, float]:
    """First-call and steady-state wall time of ``fn()`` (results blocked on).

    The first call includes tracing and compilation; ``compile_s`` is first minus the
    steady-state median (an upper bound on compile time plus one-off set-up).
    ``repeats`` steady calls are made (more while their total is below ``min_time``).

    Returns:
      ``{"first_s", "steady_s" (median), "steady_min_s", "compile_s", "repeats"}``.
    """
    t0 = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t0
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_time:
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    steady = statistics.median(times)
    return {
        "first_s": first,
        "steady_s": steady,
        "steady_min_s": min(times),
        "compile_s": max(first - steady, 0.0),
        "repeats": len(times),
    }


def matmul_rate(dtype: str = "float32", n: int | None = None, repeats: int = 5) -> dict[str, Any]:
    """Measured dense matmul rate (FLOP/s) of ``[n, n] @ [n, n]`` through XLA, on random data.

    Without ``n``: the best rate over n in (1024, 2048, 4096) on CPU (cache effects
    make the rate depend on n there), n = 8192 on accelerators.
    """
    platform_ = jax.devices()[0].platform
    sizes = [n] if n is not None else ([8192] if platform_ != "cpu" else [1024, 2048, 4096])
    # HIGHEST keeps float32 at full precision on GPUs (no TF32), the rate our f32 code gets.
    prec = jax.lax.Precision.HIGHEST if dtype == "float32" else None
    f = jax.jit(lambda x, y: jnp.matmul(x, y, precision=prec))
    per_n = {}
    for m in sizes:
        k1, k2 = jax.random.split(jax.random.key(0))
        a = jax.random.normal(k1, (m, m), jnp.float32).astype(dtype)
        b = jax.random.normal(k2, (m, m), jnp.float32).astype(dtype)
        t = time_call(lambda a=a, b=b: f(a, b), repeats=repeats)
        per_n[m] = 2.0 * m**3 / t["steady_min_s"]
    best = max(per_n, key=lambda m: per_n[m])
    out = {"dtype": dtype, "n": best, "flops_per_s": per_n[best], "per_n": per_n}
    if platform_ == "gpu" and dtype == "float32":  # also the default (TF32-eligible) precision
        g = jax.jit(lambda x, y: jnp.matmul(x, y))
        t2 = time_call(lambda: g(a, b), repeats=repeats)
        out["default_precision_flops_per_s"] = 2.0 * sizes[-1] ** 3 / t2["steady_min_s"]
    return out


def rng_rate(impl: str = "threefry2x32", n: int | None = None, repeats: int = 5) -> dict[str, Any]:
    """Measured standard-normal generation rate (normals / s) of one generator.

    Without ``n``: the best rate over blocks of 2^18 .. 2^24 normals on CPU (a block
    that fits the caches was 2.5x faster than 2^24 on the 2-core CPU here), 2^24 and
    2^26 on accelerators.
    """
    platform_ = jax.devices()[0].platform
    if n is not None:
        sizes = [n]
    else:
        sizes = [1 << 18, 1 << 20, 1 << 22, 1 << 24] if platform_ == "cpu" else [1 << 24, 1 << 26]
    key = jax.random.key(0, impl=impl)
    per_n = {}
    for m in sizes:
        f = jax.jit(lambda k, m=m: jax.random.normal(k, (m,), jnp.float32))
        t = time_call(lambda f=f: f(key), repeats=repeats)
        per_n[m] = m / t["steady_min_s"]
    best = max(per_n, key=lambda m: per_n[m])
    return {"impl": impl, "n": best, "normals_per_s": per_n[best], "per_n": per_n}


def m5_flops(width: int, input_len: int = 16000, num_classes: int = 10) -> int:
    """Multiply-add FLOPs (2 per MAC) of one M5 forward pass (convolutions and dense)."""
    w = width
    stages = ((1, w, 80, 16), (w, w, 3, 1), (w, 2 * w, 3, 1), (2 * w, 2 * w, 3, 1))
    length = input_len
    flops = 0
    for cin, cout, k, s in stages:
        length = (length - k) // s + 1
        flops += 2 * k * cin * cout * length
        length //= 4
    return flops + 2 * 2 * w * num_classes


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def environment() -> dict[str, Any]:
    """Commit, device, versions and machine load: the header of every JSON record."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):  # e.g. a copy without .git (GPU machine)
        commit, dirty = os.environ.get("FAIRROBUST_COMMIT", "unknown"), True
    versions = {"python": platform.python_version(), "jax": jax.__version__}
    for mod in ("jaxlib", "flax", "optax", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    devs = jax.devices()
    return {
        "commit": commit,
        "dirty": dirty,
        "device": {
            "platform": devs[0].platform,
            "kind": devs[0].device_kind,
            "count": len(devs),
        },
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_avg_1m_start": _LOAD_AT_START,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_results(name: str, payload: dict[str, Any], out_dir: str | None = None) -> Path:
    """Writes ``payload`` (plus ``environment()`` and end load) as JSON; returns the path."""
    env = environment()
    env["load_avg_1m_end"] = os.getloadavg()[0]
    d = Path(out_dir) if out_dir else RESULTS
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}_{env['device']['platform']}.json"
    path.write_text(json.dumps({"benchmark": name, "environment": env, **payload}, indent=2))
    return path


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-markdown table of ``rows`` restricted to ``columns``."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:
                return "nan"
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def m5(width: int, num_classes: int = 10, input_len: int = 16000, seed: int = 0):
    """(apply_fn, variables) of an initialised M5 (BatchNorm, eval mode)."""
    from fairrobust import models

    model = models.make_model("m5", num_classes, width=width)
    variables = models.init_variables(model, jax.random.key(seed), input_len)
    return models.logits_fn(model), variables


def waveforms(n: int, input_len: int = 16000, seed: int = 0) -> np.ndarray:
    """Synthetic float32 waveforms in [-1, 1] (decaying chirps plus noise), shape (n, T)."""
    rng = np.random.default_rng(seed)
    t = np.arange(input_len, dtype=np.float32) / 16000.0
    f0 = rng.uniform(100, 800, (n, 1)).astype(np.float32)
    wave = np.sin(2 * np.pi * f0 * t * (1 + t)) * np.exp(-2 * t)
    wave = 0.5 * wave + 0.05 * rng.standard_normal((n, input_len)).astype(np.float32)
    return np.clip(wave, -1, 1).astype(np.float32)
