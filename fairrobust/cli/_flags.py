"""Flags shared by the subcommands, each defined once (name, separator, default, help).

Lists are comma-separated (``--at-eps 0,0.01``) except where an item itself
contains commas: preprocessing specs (``;``) and intersections (one spec per
argument, or ``;``-separated). Every flag that exists in several subcommands is
added here, so ``run``, ``study robustness``, ``study rejection``, ``train`` and
``certify`` agree on it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Dataset loaders (the same list as ``fairrobust.data.DATASETS``, kept here so
#: that ``--help`` does not import the loaders; a test keeps the two equal).
DATASETS = ("bundled", "fsdd", "wuw", "audiomnist", "common-voice", "folder")
#: Presets of every study (``tiny``: tests and smoke checks only).
PRESETS = ("quick", "paper", "tiny")
#: ``--resume`` without a value: continue the most recent run folder (``run``)
#: or the ``--out`` folder (``study``).
LATEST = "latest"

_DATASET_HELP = (
    "dataset loader (default: bundled WUW keyword clips, no download needed); "
    "'folder' reads DATA_DIR/metadata.csv (columns path, label, speaker, split and "
    "one column per attribute)"
)


def float_list(text: str) -> tuple[float, ...]:
    """``"0,0.01"`` -> ``(0.0, 0.01)``; argparse reports a malformed value."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def int_list(text: str) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``; argparse reports a malformed value."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def str_list(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def semicolon_list(text: str) -> tuple[str, ...]:
    """``"none;quantize:bits=8"`` -> ``("none", "quantize:bits=8")``."""
    return tuple(v.strip() for v in text.split(";") if v.strip())


def add_data(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-dir``, ``--sample-rate``, ``--duration``."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="bundled", choices=DATASETS, help=_DATASET_HELP)
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="dataset root (for 'folder': the folder holding metadata.csv); not for 'bundled'",
    )
    g.add_argument(
        "--sample-rate", type=int, default=None, help="target sample rate in Hz (default 16000)"
    )
    g.add_argument(
        "--duration", type=float, default=None, help="clip length in seconds (default 1.0)"
    )


def add_study(parser: argparse.ArgumentParser, *, study: str) -> argparse._ArgumentGroup:
    """The settings every study command has; returns the group for more flags.

    ``--preset``, ``--config``, ``--seed``, ``--attributes``, ``--intersections``,
    ``--max-examples``, ``--min-group-size``, ``--min-speakers``, ``--bootstrap-resamples``,
    ``--out``, ``--resume [DIR]`` / ``--no-resume``, ``--no-progress``.
    """
    g = parser.add_argument_group(study)
    g.add_argument(
        "--preset",
        default="quick",
        choices=PRESETS,
        help="quick (default): minutes on a 2-core CPU; paper: the AISec'23 settings "
        "(40 models, 100-step PGD, N up to 10^4, alpha step 1e-3); tiny: tests only "
        "(seconds, meaningless numbers)",
    )
    g.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML file overriding settings, in [robustness], [rejection] and [soundness] "
        "tables (study commands also read top-level keys)",
    )
    g.add_argument("--seed", type=int, default=None, help="seed (default: the preset's, 0)")
    g.add_argument(
        "--attributes",
        type=str_list,
        default=None,
        help="comma-separated attributes to analyse (default: every attribute)",
    )
    g.add_argument(
        "--intersections",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="intersections to analyse, each 'a x b' or 'a,b' (or 'all-pairs')",
    )
    g.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="cap on evaluated test clips, a seeded subset (0 = all; default: the preset's)",
    )
    g.add_argument(
        "--min-group-size",
        type=int,
        default=None,
        help="groups with fewer test clips are reported but left out of parity",
    )
    g.add_argument(
        "--min-speakers",
        type=int,
        default=None,
        help="groups with fewer test speakers get no interval and no comparison (default 2)",
    )
    g.add_argument(
        "--bootstrap-resamples",
        type=int,
        default=None,
        help="bootstrap resamples of every interval (0 = no intervals)",
    )
    add_output(g)
    return g


def add_output(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--out``, ``--resume [DIR]``, ``--no-resume``, ``--no-progress``."""
    group.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder; an existing folder is continued, reusing only results whose "
        "settings still match",
    )
    group.add_argument(
        "--resume",
        nargs="?",
        const=LATEST,
        default=None,
        metavar="DIR",
        help="continue DIR (without a value: --out, or for 'run' the most recent folder "
        "under --runs-dir)",
    )
    group.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute everything instead of reusing matching models and results",
    )
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` alone (commands without an output folder to resume)."""
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def study_overrides(
    args: argparse.Namespace, fields: dict[str, str] | None = None
) -> dict[str, Any]:
    """Config overrides from the shared study flags (and ``fields``: dest -> field)."""
    names = {
        "seed": "seed",
        "attributes": "attributes",
        "intersections": "intersections",
        "max_examples": "max_examples",
        "min_group_size": "min_group_size",
        "min_speakers": "min_speakers",
        "bootstrap_resamples": "bootstrap_resamples",
        **(fields or {}),
    }
    return {
        field: getattr(args, dest)
        for dest, field in names.items()
        if getattr(args, dest, None) is not None
    }


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Loader options given on the command line (``sample_rate``, ``duration``)."""
    return {
        k: getattr(args, k) for k in ("sample_rate", "duration") if getattr(args, k) is not None
    }


def check_data(args: argparse.Namespace) -> None:
    """Refuse a data flag combination before anything is loaded or computed."""
    if args.dataset == "bundled" and args.data_dir is not None:
        raise ValueError("--data-dir: the bundled dataset takes no data folder")
    if args.dataset != "bundled" and args.data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {args.dataset}")


def output_dir(args: argparse.Namespace) -> Path:
    """The study command's output folder: ``--out``, or ``--resume DIR``."""
    resume = getattr(args, "resume", None)
    out = args.out if args.out is not None else (None if resume in (None, LATEST) else resume)
    if out is None:
        raise ValueError("--out: expected an output folder (or --resume DIR)")
    return Path(out)


#: ``FAIRROBUST_COMPILE_CACHE`` values that turn the persistent compilation cache off
#: (any other non-empty value is the cache folder).
CACHE_OFF = ("0", "off", "false", "no")


def add_runtime(
    parser: argparse.ArgumentParser, *, distributed: bool = False, devices: bool = True
) -> None:
    """``--devices`` (with ``devices``), ``--compile-cache DIR`` / ``--no-compile-cache``
    and, with ``distributed``, JAX's coordinator / process-count / process-id settings."""
    g = parser.add_argument_group("devices and compilation")
    if devices:
        g.add_argument(
            "--devices",
            type=int,
            default=None,
            help="number of devices to compute on (default: all visible); results are "
            "identical on any number",
        )
    g.add_argument(
        "--compile-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="persistent compilation cache: later runs reuse compiled programs (default: "
        "$FAIRROBUST_COMPILE_CACHE, else $FAIRROBUST_CACHE/jax or ~/.cache/fairrobust/jax; "
        "runs may share it)",
    )
    g.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile every program afresh (also FAIRROBUST_COMPILE_CACHE=off)",
    )
    if not distributed:
        return
    g.add_argument(
        "--coordinator-address",
        default=None,
        metavar="HOST:PORT",
        help="jax.distributed: process 0's address, the same on every process "
        "(default $JAX_COORDINATOR_ADDRESS; SLURM / Open MPI / TPU set all three)",
    )
    g.add_argument(
        "--num-processes",
        type=int,
        default=None,
        help="jax.distributed: number of processes (default $JAX_NUM_PROCESSES)",
    )
    g.add_argument(
        "--process-id",
        type=int,
        default=None,
        help="jax.distributed: this process's index, 0 .. N-1 (default $JAX_PROCESS_ID)",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="start jax.distributed from the cluster's environment (SLURM, Open MPI, "
        "Cloud TPU) without the three settings above",
    )


def start_runtime(args: argparse.Namespace, log: Callable[[str], Any] = print) -> Any:
    """The compilation cache, ``jax.distributed`` and the devices, before any computation.

    Returns:
      A ``fairrobust.engine.Runtime``; one line names the devices it uses.

    Raises:
      ValueError: ``--devices`` < 1 or more than there are; a process setting < 0.
    """
    devices = getattr(args, "devices", None)
    if devices is not None and devices < 1:
        raise ValueError(f"--devices: expected an integer >= 1, got {devices}")
    for flag in ("num_processes", "process_id"):
        value = getattr(args, flag, None)
        if value is not None and value < (1 if flag == "num_processes" else 0):
            bound = 1 if flag == "num_processes" else 0
            name = flag.replace("_", "-")
            raise ValueError(f"--{name}: expected an integer >= {bound}, got {value}")
    from fairrobust.engine import runtime as rt

    cache = None
    env = os.environ.get("FAIRROBUST_COMPILE_CACHE", "")
    flag = getattr(args, "compile_cache", None)
    if getattr(args, "no_compile_cache", False):
        pass
    elif flag is not None:  # the flag beats the environment
        cache = rt.enable_compilation_cache(flag)
    elif env.lower() not in CACHE_OFF:
        cache = rt.enable_compilation_cache(Path(env) if env else None)
    settings = [getattr(args, n, None) for n in ("coordinator_address", "num_processes")]
    settings.append(getattr(args, "process_id", None))
    if (
        getattr(args, "distributed", False)
        or any(v is not None for v in settings)
        or os.environ.get("JAX_COORDINATOR_ADDRESS")
    ):
        rt.initialize_distributed(*settings)
    runtime = rt.Runtime.create(devices)
    where = f"compiled programs cached in {cache}" if cache else "no compilation cache"
    log(f"devices: {runtime.describe()} ({where})")
    return runtime


Handler = Callable[[argparse.Namespace], int]
