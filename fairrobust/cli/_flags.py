"""Flags of the subcommands, each defined once (name, dest, type, separator, default, help).

One vocabulary: every flag is an entry of :data:`FLAGS`, and a subcommand adds
the entries it has with :func:`add` -- so ``run``, ``study robustness``,
``study rejection``, ``train`` and ``certify`` agree on every flag they share,
by construction (``tests/test_cli_flags.py`` checks it). Rules:

* one name per concept, the config field's name where there is one
  (``--max-examples`` -> ``max_examples``, ``--certify-norm`` -> ``certify_norm``);
* lists are comma-separated everywhere (``--at-eps 0,0.01``,
  ``--preprocess none,lowpass:cutoff_hz=4000,gradient=bpda``,
  ``--intersections "a x b, a x c"``);
* a setting a preset provides defaults to None, meaning "the preset's" (for
  ``train`` / ``certify``, which have no preset, the default their help names);
* a value is checked when it is parsed (``--epochs 0`` is refused by argparse),
  so a bad flag fails before anything is imported, loaded or computed.

An earlier spelling (``--max-test-examples``, ``certify --sigma``, ``;`` between
list items) still works, hidden from ``--help``, and prints one line
``fairrobust: warning: ... is deprecated; use ...`` on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

#: Dataset loaders (the same list as ``fairrobust.data.DATASETS``, kept here so
#: that ``--help`` does not import the loaders; a test keeps the two equal).
DATASETS = ("bundled", "fsdd", "wuw", "audiomnist", "common-voice", "folder")
#: Presets of every study with their one-line meaning (``tiny``: tests and smoke checks
#: only; a test keeps the names equal to ``fairrobust.studies.config.PRESETS``).
PRESET_HELP: Mapping[str, str] = {
    "quick": "the default: 8 small models and a 100-clip rejection study, minutes on a 2-core CPU",
    "paper": "the AISec'23 settings: 40 models, 100-step PGD, N up to 10^4, alpha step 1e-3",
    "tiny": "tests and smoke checks only: seconds, meaningless numbers",
}
PRESETS = tuple(PRESET_HELP)
#: Architectures of ``--arch`` (``fairrobust.studies.config.MODELS``).
ARCHS = ("m5", "m5-tricks")
#: ``--resume`` without a value: continue the most recent run folder (``run``)
#: or the ``--out`` folder (``study``).
LATEST = "latest"
#: ``FAIRROBUST_COMPILE_CACHE`` values that turn the persistent compilation cache off
#: (any other non-empty value is the cache folder).
CACHE_OFF = ("0", "off", "false", "no")

Handler = Callable[[argparse.Namespace], int]


def deprecated(message: str) -> None:
    """One line on stderr: ``fairrobust: warning: <message>``."""
    print(f"fairrobust: warning: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------- value types


def _number(text: str, kind: type, low: float | None, strict: bool) -> Any:
    """``text`` as ``kind`` (int or float), finite and above ``low`` (``>``, or ``>=``)."""
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        what = "an integer" if kind is int else "a number"
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise argparse.ArgumentTypeError(f"expected {what}{bound}, got {text!r}")
    return value


def number(kind: type = float, low: float | None = None, *, strict: bool = False) -> Any:
    """An argparse ``type``: one int / float, ``>= low`` (``> low`` with ``strict``)."""

    def parse(text: str) -> Any:
        return _number(text, kind, low, strict)

    parse.__name__ = kind.__name__
    return parse


def numbers(kind: type = float, low: float | None = None, *, strict: bool = False) -> Any:
    """An argparse ``type``: comma-separated ints / floats, each checked as in :func:`number`."""

    def parse(text: str) -> tuple[Any, ...]:
        items = [v.strip() for v in text.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        try:
            return tuple(_number(v, kind, low, strict) for v in items)
        except argparse.ArgumentTypeError as exc:
            if len(items) == 1:
                raise
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r}, comma-separated)") from None

    parse.__name__ = f"{kind.__name__}_list"
    return parse


def float_list(text: str) -> tuple[float, ...]:
    """``"0,0.01"`` -> ``(0.0, 0.01)``; argparse reports a malformed value."""
    return numbers(float)(text)


def int_list(text: str) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``; argparse reports a malformed value."""
    return numbers(int)(text)


def str_list(text: str) -> tuple[str, ...]:
    """``"a, b"`` -> ``("a", "b")``."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def choice_list(options: Sequence[str]) -> Any:
    """An argparse ``type``: comma-separated names, each one of ``options``."""

    def parse(text: str) -> tuple[str, ...]:
        items = str_list(text)
        bad = [v for v in items if v not in options]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated names of {list(options)}, got {text!r}"
            )
        return items

    parse.__name__ = "name_list"
    return parse


def preprocess_list(text: str) -> tuple[str, ...]:
    """``"none,lowpass:cutoff_hz=4000,gradient=bpda"`` -> ``("none", "lowpass:cutoff_hz=4000,
    gradient=bpda")``: an item ``key=value`` without ``:`` is an option of the spec before it.
    The earlier ``;`` separator is accepted with a deprecation warning."""
    if ";" in text:
        deprecated("--preprocess: ';' between specs is deprecated; separate them with commas")
        return tuple(v.strip() for v in text.split(";") if v.strip())
    out: list[str] = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        if out and "=" in item and ":" not in item:  # an option of the previous spec
            out[-1] += f",{item}"
        else:
            out.append(item)
    return tuple(out)


def intersection_list(text: str) -> tuple[str, ...]:
    """``"gender x age, gender x accent"`` -> ``("gender x age", "gender x accent")``.

    Each item is ``a x b`` (or ``a+b``), or ``all-pairs``. The earlier forms are
    accepted with a deprecation warning: ``;`` between specs, and ``a,b`` for one
    intersection (recognised when no item names an intersection by itself).
    """
    if ";" in text:
        deprecated("--intersections: ';' between specs is deprecated; separate them with commas")
        return tuple(v.strip() for v in text.split(";") if v.strip())
    items = [v.strip() for v in text.split(",") if v.strip()]
    whole = [v for v in items if " x " in v or "+" in v or v == "all-pairs"]
    if len(items) > 1 and not whole:
        deprecated(f"--intersections: {text!r} for one intersection is deprecated; write "
                   f"{' x '.join(items)!r}")  # fmt: skip
        return (" x ".join(items),)
    return tuple(items)


class _Extend(argparse.Action):
    """Appends the items of every value (``--intersections "a x b" "c x d, e x f"``)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values if isinstance(values, list) else [values]:
            items += list(value) if isinstance(value, tuple) else [value]
        setattr(namespace, self.dest, items)


class _Deprecated(argparse.Action):
    """A hidden earlier spelling of a flag: stores like the flag and prints one warning."""

    def __init__(self, option_strings: Any, dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        deprecated(f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


# ----------------------------------------------------------------------------- the vocabulary


class Flag(NamedTuple):
    """One flag: its name, argparse keywords and earlier (deprecated) spellings.

    ``old`` maps an earlier spelling to the commands that had it (empty: every command
    with the flag), so no command gains a spelling it never had.
    """

    name: str
    kwargs: Mapping[str, Any]
    old: Mapping[str, tuple[str, ...]]


_PRESET_DEFAULT = "(default: the preset's)"


def _flag(name: str, *old: str, **kwargs: Any) -> Flag:
    """``old``: earlier spellings, each ``"--x"`` (every command) or ``"--x@cmd,cmd"``."""
    spellings = {}
    for item in old:
        spelling, _, commands = item.partition("@")
        spellings[spelling] = tuple(commands.split(",")) if commands else ()
    return Flag(name, kwargs, spellings)


def _flag_table() -> dict[str, Flag]:
    """Every flag of the ``fairrobust`` subcommands (the one place they are defined)."""
    pos_int, nonneg_int = number(int, 1), number(int, 0)
    flags = [
        # data
        _flag("--dataset", default="bundled", choices=DATASETS,
              help="dataset loader (default: bundled WUW keyword clips, no download needed); "
              "'folder' reads DATA_DIR/metadata.csv (see 'fairrobust run --help')"),
        _flag("--data-dir", type=Path, default=None,
              help="dataset root (for 'folder': the folder holding metadata.csv); not for "
              "'bundled'"),
        _flag("--sample-rate", type=pos_int, default=None,
              help="target sample rate in Hz (default 16000)"),
        _flag("--duration", type=number(float, 0, strict=True), default=None,
              help="clip length in seconds (default 1.0)"),
        _flag("--locale", default=None,
              help="common-voice: the locale folder under a release root (default: en when "
              "present)"),
        _flag("--words", type=str_list, default=None,
              help="common-voice: target words, comma-separated (default: the loader's list)"),
        # study settings
        _flag("--preset", default="quick", choices=PRESETS,
              help="settings preset: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items())),
        _flag("--config", type=Path, default=None,
              help="TOML file overriding settings, in [robustness], [rejection] and "
              "[soundness] tables (study commands also read top-level keys; 'fairrobust "
              "config --preset quick' prints every key)"),
        _flag("--seed", type=nonneg_int, default=None,
              help="seed of training, subsets, attacks, noise and bootstrap (default: the "
              "preset's, 0)"),
        _flag("--attributes", type=str_list, default=None,
              help="attributes to analyse, comma-separated (default: every attribute)"),
        _flag("--intersections", type=intersection_list, nargs="+", action=_Extend,
              default=None, metavar="SPEC",
              help="intersections to analyse, comma-separated, each 'a x b' (or 'all-pairs')"),
        _flag("--max-examples", "--max-test-examples", "--max-test", type=nonneg_int,
              default=None,
              help="cap on evaluated test clips, a seeded subset (0 = all; default: the "
              "preset's; certify: all)"),
        _flag("--min-group-size", type=pos_int, default=None,
              help="groups with fewer test clips are reported but left out of parity "
              + _PRESET_DEFAULT),
        _flag("--min-speakers", type=pos_int, default=None,
              help="groups with fewer test speakers get no interval and no comparison "
              "(default 2)"),
        _flag("--bootstrap-resamples", "--bootstrap", type=nonneg_int, default=None,
              help="bootstrap resamples of every interval (0 = no intervals) " + _PRESET_DEFAULT),
        # output
        _flag("--resume", nargs="?", const=LATEST, default=None, metavar="DIR",
              help="continue DIR (without a value: --out, or for 'run' the most recent folder "
              "under --runs-dir)"),
        _flag("--no-resume", action="store_true",
              help="recompute everything instead of reusing matching models and results"),
        _flag("--no-progress", action="store_true",
              help="no progress output (bars on a terminal, one line per stage otherwise)"),
        # models and training
        _flag("--arch", "--models@robustness", "--model@train", type=choice_list(ARCHS),
              default=None,
              help="architectures, comma-separated: m5, m5-tricks (train and study rejection: "
              "one; default: the preset's, train: m5)"),
        _flag("--width", type=pos_int, default=None,
              help="M5 channel width (default: the preset's; train: 32)"),
        _flag("--epochs", type=pos_int, default=None,
              help="training epochs, the best-validation checkpoint kept (default: the "
              "preset's; train: 30)"),
        _flag("--at-eps", type=numbers(float, 0), default=None,
              help="adversarial-training L-inf budgets, comma-separated; 0 = no AT (train: one; "
              "default: the preset's, train: 0)"),
        _flag("--noise-std", type=numbers(float, 0), default=None,
              help="Gaussian noise-augmentation stds, comma-separated; 0 = none (train: one; "
              "default: the preset's, train: 0)"),
        _flag("--batch-size", type=pos_int, default=32, help="training batch size"),
        _flag("--lr", type=number(float, 0, strict=True), default=1e-3,
              help="Adam learning rate"),
        _flag("--model", action="append", default=None, metavar="SPEC", dest="external_models",
              help="a trained model instead of training one: checkpoint path or "
              "package.module:callable returning a fairrobust ExternalModel"),
        # robustness study
        _flag("--preprocess", type=preprocess_list, default=None,
              help="preprocessing defenses, comma-separated, e.g. "
              "'none,lowpass:cutoff_hz=4000,gradient=bpda'"),
        _flag("--attack-eps", type=numbers(float, 0, strict=True), default=None,
              help="attack L-inf budgets, comma-separated, increasing"),
        _flag("--attack-steps", type=pos_int, default=None,
              help="PGD steps of the evaluation attack"),
        # randomized smoothing
        _flag("--num-samples", type=numbers(int, 1), default=None,
              help="RS sample sizes N, comma-separated and increasing (e.g. 10,100,1000)"),
        _flag("--noise", default=None,
              help="smoothing noise family, a registered name (default gaussian)"),
        _flag("--certify-sigmas", "--sigma@certify", type=numbers(float, 0, strict=True),
              default=None,
              help="CERTIFY noise stds, comma-separated, one batched sweep (default: the "
              "config's sigma; certify: 0.1)"),
        _flag("--certify-norm", "--norm@certify", default=None, choices=("l1", "l2", "linf"),
              help="certificate norm (default: the family's: l2 gaussian, l1 laplace / uniform)"),
        _flag("--certify-adaptive", "--adaptive@certify", action="store_true",
              help="CERTIFY in rounds, stopping each clip once settled (level kept by a union "
              "bound; see README)"),
        _flag("--sampling-mode", default=None, choices=("independent", "shared_bank"),
              help="noise draws per clip (independent, the default) or one bank shared by the "
              "clips of a call"),
        _flag("--prng-impl", default=None, choices=("threefry2x32", "rbg", "unsafe_rbg"),
              help="noise generator (default threefry2x32)"),
        _flag("--compute-dtype", default=None, choices=("float32", "bfloat16", "float16"),
              help="forward-pass dtype (default float32)"),
        _flag("--sample-batch-size", "--batch-size@certify", type=pos_int, default=None,
              help="clips per sampling / CERTIFY call (memory only; default 16)"),
        _flag("--chunk-size", type=pos_int, default=None,
              help="noise draws per forward pass (memory only; default 16)"),
        # devices, processes and compilation
        _flag("--devices", type=pos_int, default=None,
              help="number of devices to compute on (default: all visible); results are "
              "identical on any number"),
        _flag("--compile-cache", type=Path, default=None, metavar="DIR",
              help="persistent compilation cache: later runs reuse compiled programs (default: "
              "$FAIRROBUST_COMPILE_CACHE, else $FAIRROBUST_CACHE/jax or "
              "~/.cache/fairrobust/jax; runs may share it)"),
        _flag("--no-compile-cache", action="store_true",
              help="compile every program afresh (also FAIRROBUST_COMPILE_CACHE=off)"),
        _flag("--coordinator-address", default=None, metavar="HOST:PORT",
              help="jax.distributed: process 0's address, the same on every process "
              "(default $JAX_COORDINATOR_ADDRESS; SLURM / Open MPI / TPU set all three)"),
        _flag("--num-processes", type=pos_int, default=None,
              help="jax.distributed: number of processes (default $JAX_NUM_PROCESSES)"),
        _flag("--process-id", type=nonneg_int, default=None,
              help="jax.distributed: this process's index, 0 .. N-1 (default $JAX_PROCESS_ID)"),
        _flag("--distributed", action="store_true",
              help="start jax.distributed from the cluster's environment (SLURM, Open MPI, "
              "Cloud TPU) without the three settings above"),
    ]  # fmt: skip
    return {f.name: f for f in flags}


#: Every flag, by name.
FLAGS: Mapping[str, Flag] = _flag_table()


def add(
    group: argparse._ArgumentGroup | argparse.ArgumentParser, *names: str, command: str
) -> None:
    """Add the flags ``names`` of :data:`FLAGS` to ``command``'s parser (or group), with
    the hidden earlier spellings ``command`` had."""
    for name in names:
        flag = FLAGS[name]
        kwargs = dict(flag.kwargs)
        action = group.add_argument(flag.name, **kwargs)
        for old, commands in flag.old.items():
            if commands and command not in commands:
                continue
            extra = {"nargs": 0, "const": True} if kwargs.get("action") == "store_true" else {}
            if "type" in kwargs:
                extra["type"] = kwargs["type"]
            if "choices" in kwargs:
                extra["choices"] = kwargs["choices"]
            group.add_argument(
                old, action=_Deprecated, new=flag.name, dest=action.dest, default=argparse.SUPPRESS,
                **extra,
            )  # fmt: skip


#: Flags of every study command's dataset group.
DATA_FLAGS = ("--dataset", "--data-dir", "--sample-rate", "--duration", "--locale", "--words")


def add_data(parser: argparse.ArgumentParser, *, command: str) -> None:
    """The data group: ``--dataset``, ``--data-dir``, ``--sample-rate``, ``--duration``,
    ``--locale``, ``--words``."""
    add(parser.add_argument_group("data"), *DATA_FLAGS, command=command)


def add_study(parser: argparse.ArgumentParser, *, command: str) -> argparse._ArgumentGroup:
    """The settings every study command (``run``, ``robustness``, ``rejection``) has;
    returns the group for more flags."""
    g = parser.add_argument_group("run" if command == "run" else f"{command} study")
    add(g, "--preset", "--config", "--seed", "--attributes", "--intersections", "--max-examples",
        "--min-group-size", "--min-speakers", "--bootstrap-resamples", command=command)  # fmt: skip
    add_output(g, command=command)
    return g


def add_output(group: argparse._ArgumentGroup | argparse.ArgumentParser, *, command: str) -> None:
    """``--out`` (a folder), ``--resume [DIR]``, ``--no-resume``, ``--no-progress``."""
    group.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder; an existing folder is continued, reusing only results whose "
        "settings still match",
    )
    add(group, "--resume", "--no-resume", "--no-progress", command=command)


def study_overrides(
    args: argparse.Namespace, fields: Mapping[str, str] | None = None
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
    """Loader options given on the command line (``sample_rate``, ``duration``, ``locale``,
    ``words``); a flag not given is left out, so every loader keeps its default."""
    return {
        k: getattr(args, k)
        for k in ("sample_rate", "duration", "locale", "words")
        if getattr(args, k, None) is not None
    }


def check_data(args: argparse.Namespace) -> None:
    """Refuse a data flag combination before anything is loaded or computed."""
    if args.dataset == "bundled" and args.data_dir is not None:
        raise ValueError("--data-dir: the bundled dataset takes no data folder")
    for flag in ("locale", "words"):
        if getattr(args, flag, None) is not None and args.dataset != "common-voice":
            raise ValueError(
                f"--{flag}: only for --dataset common-voice, got --dataset {args.dataset}"
            )
    if args.words is not None and not args.words:
        raise ValueError("--words: expected at least one comma-separated word")
    if args.dataset != "bundled" and args.data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {args.dataset}")


def output_dir(args: argparse.Namespace) -> Path:
    """The study command's output folder: ``--out``, or ``--resume DIR``."""
    resume = getattr(args, "resume", None)
    out = args.out if args.out is not None else (None if resume in (None, LATEST) else resume)
    if out is None:
        raise ValueError("--out: expected an output folder (or --resume DIR)")
    return Path(out)


def add_runtime(
    parser: argparse.ArgumentParser,
    *,
    command: str,
    distributed: bool = False,
    devices: bool = True,
) -> None:
    """``--devices`` (with ``devices``), ``--compile-cache DIR`` / ``--no-compile-cache``
    and, with ``distributed``, JAX's coordinator / process-count / process-id settings."""
    g = parser.add_argument_group("devices and compilation")
    names = ["--devices"] if devices else []
    names += ["--compile-cache", "--no-compile-cache"]
    if distributed:
        names += ["--coordinator-address", "--num-processes", "--process-id", "--distributed"]
    add(g, *names, command=command)


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
