"""Where a study computes: its devices, its processes, and the compiled-program cache.

A :class:`Runtime` is what the studies take to run on the batched engine: a 1-D mesh
over the devices a run uses (``--devices``; default all), the processes of a
``jax.distributed`` run (only process 0 writes files), the form in which models are
evaluated, and the mesh grid training uses.

* **Evaluation form.** On CPU, every evaluation program (attack sweeps, smoothing)
  uses the im2col-matmul convolution (``conv_impl="matmul"`` of M5 and SpecCNN), whatever
  the number of devices: XLA:CPU computes ``lax.conv`` wrongly when programs run
  concurrently on several host devices (``parallel.host_conv_hazard``), and one form
  on every device count is what makes results identical on 1 and N devices. It
  costs 1.0-1.4x the time of ``lax.conv`` on one CPU device (width 16-32; see
  ``benchmarks/README.md``). On accelerators the model is evaluated as trained.
* **Grid training** is split over the mesh on accelerators (members padded to a
  multiple of the device count; per-member results equal one device's up to float32
  rounding of the batched step). On CPU every process trains every member on one
  device: one device already keeps every core busy, the convolution issue above
  applies to training too, and results then equal a one-device run bit for bit, also
  with several processes.
* **Several processes** (``initialize_distributed``): every process runs the same
  program on the same inputs; sharded results are gathered
  (``parallel.fetch``) so every process holds them; only process 0 writes
  (``writer``). Run folders must be on a file system every process sees (checked by
  ``fairrobust.job``), so that all processes resume from the same files.
* **Compiled programs** are kept across runs by JAX's persistent compilation cache
  (:func:`enable_compilation_cache`), which serialises concurrent readers and
  writers with a file lock (set through its size limit), so two runs may share it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from fairrobust import models
from fairrobust._checks import fail
from fairrobust._io import cache_dir
from fairrobust.engine import parallel

__all__ = [
    "COMPILATION_CACHE_MAX_BYTES",
    "Runtime",
    "compilation_cache_dir",
    "enable_compilation_cache",
    "initialize_distributed",
]

#: Size limit of the persistent compilation cache (least recently used entries go
#: first); setting one also turns on JAX's file lock around every cache read and write.
COMPILATION_CACHE_MAX_BYTES = 4 << 30


@dataclasses.dataclass(frozen=True, eq=False)
class Runtime:
    """The devices and processes a study runs on.

    Attributes:
      mesh: 1-D mesh (axis ``parallel.AXIS``) over the devices used.
    """

    mesh: Mesh

    @classmethod
    def create(cls, devices: int | None = None) -> Runtime:
        """The first ``devices`` of ``jax.devices()`` (None: all of them).

        Raises:
          ValueError: ``devices`` < 1, more than there are, or fewer than all in a
            run of several processes (each process must hold a part of the mesh).
        """
        found = jax.devices()
        if devices is None:
            return cls(parallel.device_mesh(found))
        if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
            fail("devices", "an integer >= 1 (or None: all)", repr(devices))
        if devices > len(found):
            fail("devices", f"at most the {len(found)} visible devices", str(devices))
        if jax.process_count() > 1 and devices != len(found):
            fail(
                "devices",
                f"all {len(found)} devices of the {jax.process_count()} processes "
                "(a multi-process run uses every device)",
                str(devices),
            )
        return cls(parallel.device_mesh(found[:devices]))

    @property
    def devices(self) -> int:
        """Number of devices in the mesh."""
        return int(self.mesh.devices.size)

    @property
    def platform(self) -> str:
        """``"cpu"``, ``"gpu"``/``"cuda"``, ``"tpu"``: the platform of the mesh's devices."""
        return str(self.mesh.devices.flat[0].platform)

    @property
    def process_index(self) -> int:
        """This process's index (0 without ``jax.distributed``)."""
        return int(jax.process_index())

    @property
    def process_count(self) -> int:
        """Number of processes (1 without ``jax.distributed``)."""
        return int(jax.process_count())

    @property
    def writer(self) -> bool:
        """Whether this process writes files (process 0)."""
        return self.process_index == 0

    @property
    def train_mesh(self) -> Mesh | None:
        """The mesh grid training splits members over: None (each process trains every
        member on one device) on CPU, the whole mesh on accelerators."""
        if self.platform == "cpu":
            return None
        return self.mesh

    def eval_model(self, model: Any) -> Any:
        """``model`` in the form evaluation programs use here (see the module docstring)."""
        if self.platform == "cpu" and isinstance(model, (models.M5, models.SpecCNN)):
            return model.clone(conv_impl="matmul")
        return model

    def barrier(self, name: str) -> None:
        """Waits until every process reaches the barrier ``name`` (no-op in one process)."""
        if self.process_count > 1:
            multihost_utils.sync_global_devices(name)

    def check_shared_folder(self, folder: str | os.PathLike[str]) -> None:
        """Raises unless every process sees the files process 0 writes in ``folder``.

        A multi-process run writes from process 0 only and resumes on every process
        from the same files, so its folder must be on a shared file system. Every
        process raises the same error (none is left waiting in a collective).

        Raises:
          ValueError: naming the folder and the processes that do not see it.
        """
        if self.process_count == 1:
            return
        folder = Path(folder)
        nonce = int(np.random.default_rng().integers(1, 2**31 - 1))
        nonce = int(multihost_utils.broadcast_one_to_all(np.int32(nonce)))
        marker = folder / f".fairrobust-process-check-{nonce}"
        if self.writer:
            folder.mkdir(parents=True, exist_ok=True)
            marker.write_text(str(nonce))
        self.barrier("fairrobust: shared-folder marker written")
        seen = marker.is_file() and marker.read_text() == str(nonce)
        flags = np.asarray(multihost_utils.process_allgather(np.asarray([int(seen)], np.int32)))
        self.barrier("fairrobust: shared-folder marker read")
        if self.writer:
            marker.unlink(missing_ok=True)
        blind = [int(i) for i in np.flatnonzero(flags.reshape(-1) == 0)]
        if blind:
            raise ValueError(
                f"{folder}: processes {blind} do not see the files process 0 writes there; a "
                "run of several processes needs its output folder on a file system every "
                "process shares (the same path on each)"
            )

    def describe(self) -> str:
        """One line for logs: ``"2 cpu devices"``, ``"8 gpu devices in 2 processes"``."""
        text = f"{self.devices} {self.platform} device{'s' if self.devices != 1 else ''}"
        if self.process_count > 1:
            text += f" in {self.process_count} processes"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (devices, platform, processes)."""
        return {
            "devices": self.devices,
            "platform": self.platform,
            "processes": self.process_count,
            "device_kinds": sorted({d.device_kind for d in self.mesh.devices.flat}),
        }


def compilation_cache_dir() -> Path:
    """Default folder of the persistent compilation cache: ``<fairrobust cache>/jax``
    (``$FAIRROBUST_CACHE`` or ``~/.cache/fairrobust``)."""
    return cache_dir() / "jax"


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Turns on JAX's persistent compilation cache in ``path`` (default
    :func:`compilation_cache_dir`), for every program however fast it compiles.

    Call it before the first compilation. Two processes may share the folder: a size
    limit (:data:`COMPILATION_CACHE_MAX_BYTES`) makes JAX lock the folder around
    every read and write.

    Returns:
      The folder.
    """
    folder = Path(path) if path is not None else compilation_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", COMPILATION_CACHE_MAX_BYTES)
    return folder


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
) -> tuple[int, int]:
    """``jax.distributed.initialize`` with JAX's standard settings; call it first.

    Arguments left None are read from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` when set, otherwise detected by JAX
    (SLURM, Open MPI, Cloud TPU, Kubernetes). On CPU, collectives between processes
    use gloo (JAX's default).

    Returns:
      ``(process_index, process_count)``.

    Raises:
      ValueError: a malformed environment value.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    num_processes = _env_int("JAX_NUM_PROCESSES", num_processes)
    process_id = _env_int("JAX_PROCESS_ID", process_id)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
    )
    return int(jax.process_index()), int(jax.process_count())


def _env_int(name: str, value: int | None) -> int | None:
    if value is not None:
        return value
    text = os.environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        fail(name, "an integer", repr(text))
        raise  # unreachable: fail raises
