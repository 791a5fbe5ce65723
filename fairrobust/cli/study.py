"""``fairrobust study robustness|rejection``: one study into an output folder."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fairrobust.cli import _flags

__all__ = [
    "add_rejection_arguments",
    "add_robustness_arguments",
    "config_from_args",
    "rejection_main",
    "robustness_main",
]

#: Robustness-study flags beyond the shared ones: dest -> (flag, parser, help).
_ROBUSTNESS_FLAGS: Mapping[str, tuple[str, Any, str]] = {
    "models": ("--models", _flags.str_list, "architectures, comma-separated (m5,m5-tricks)"),
    "at_eps": ("--at-eps", _flags.float_list, "AT budgets, comma-separated (0 = no AT)"),
    "noise_std": ("--noise-std", _flags.float_list, "noise-augmentation stds, comma-separated"),
    "preprocess": (
        "--preprocess",
        _flags.semicolon_list,
        "preprocessing defenses, ';'-separated, e.g. 'none;quantize:bits=8'",
    ),
    "attack_eps": ("--attack-eps", _flags.float_list, "attack L-inf budgets, comma-separated"),
    "attack_steps": ("--attack-steps", int, "PGD steps of the evaluation attack"),
    "epochs": ("--epochs", int, "training epochs (best validation checkpoint kept)"),
    "width": ("--width", int, "M5 channel width"),
}
#: Rejection-study flags beyond the shared ones.
_REJECTION_FLAGS: Mapping[str, tuple[str, Any, str]] = {
    "num_samples": (
        "--num-samples",
        _flags.int_list,
        "RS sample sizes N, comma-separated and increasing (e.g. 10,100,1000,10000)",
    ),
    "noise": ("--noise", str, "smoothing noise family (a registered name)"),
    "certify_sigmas": (
        "--certify-sigmas",
        _flags.float_list,
        "CERTIFY noise stds, comma-separated, one batched sweep (default: --sigma's)",
    ),
    "certify_norm": (
        "--certify-norm",
        str,
        "certificate norm: l1, l2 or linf (default: the family's)",
    ),
    "representations": (
        "--representations",
        _flags.str_list,
        "also certify a classifier of these representations: stft,mel",
    ),
    "sampling_mode": ("--sampling-mode", str, "independent (default) or shared_bank noise"),
    "prng_impl": ("--prng-impl", str, "noise generator: threefry2x32, rbg or unsafe_rbg"),
    "compute_dtype": ("--compute-dtype", str, "forward dtype: float32, bfloat16 or float16"),
    "epochs": ("--epochs", int, "training epochs of both base models"),
    "width": ("--width", int, "M5 channel width of both base models"),
}
#: Help of a model SPEC (``fairrobust.studies.external.ExternalModel.load``).
_SPEC_HELP = "checkpoint path or package.module:callable"
#: Robustness flags of the trained grid, which ``--model`` replaces.
_GRID_FLAGS = ("models", "at_eps", "noise_std", "epochs", "width")


def _add(parser: argparse.ArgumentParser, study: str, flags: Mapping[str, tuple]) -> None:
    _flags.add_data(parser)
    g = _flags.add_study(parser, study=f"{study} study")
    for dest, (flag, conv, help_text) in flags.items():
        g.add_argument(flag, type=conv, default=None, dest=f"study_{dest}", help=help_text)
    _flags.add_runtime(parser)


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust study robustness``."""
    _add(parser, "robustness", _ROBUSTNESS_FLAGS)
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="SPEC",
        dest="external_models",
        help=f"evaluate this trained model instead of training the grid ({_SPEC_HELP}; repeatable)",
    )


def add_rejection_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust study rejection``."""
    _add(parser, "rejection", _REJECTION_FLAGS)
    parser.add_argument("--no-certify", action="store_true", help="skip CERTIFY")
    parser.add_argument(
        "--certify-adaptive",
        action="store_true",
        help="CERTIFY in rounds, stopping each clip once settled (level kept; see README)",
    )
    parser.add_argument(
        "--linear-stem",
        action="store_true",
        help="M5's first layer once per clip and draw (needs --sampling-mode shared_bank)",
    )
    parser.add_argument(
        "--nr-model",
        metavar="SPEC",
        default=None,
        help=f"NR base model, not trained ({_SPEC_HELP})",
    )
    parser.add_argument(
        "--rs-model",
        metavar="SPEC",
        default=None,
        help=f"RS base model, not trained ({_SPEC_HELP})",
    )


def config_from_args(args: argparse.Namespace) -> Any:
    """The study config of parsed ``study robustness|rejection`` flags.

    The preset, then the ``--config`` file, then every flag given (validated here,
    before any data is loaded).
    """
    from fairrobust.studies.config import load_config

    study = args.study
    flags = _ROBUSTNESS_FLAGS if study == "robustness" else _REJECTION_FLAGS
    overrides = _flags.study_overrides(args, {f"study_{dest}": dest for dest in flags})
    if study == "rejection":
        for flag, field, value in (("no_certify", "certify", False),
                                   ("certify_adaptive", "certify_adaptive", True),
                                   ("linear_stem", "linear_stem", True)):  # fmt: skip
            if getattr(args, flag):
                overrides[field] = value
    return load_config(study, args.preset, args.config, overrides)


def _external(spec: str | None) -> Any:
    """``ExternalModel.load(spec)``, or None without a spec."""
    from fairrobust.studies.external import ExternalModel

    return None if spec is None else ExternalModel.load(spec)


def _load(args: argparse.Namespace) -> Any:
    from fairrobust.data import load_dataset

    _flags.check_data(args)
    return load_dataset(args.dataset, args.data_dir, **_flags.load_options(args))


def robustness_main(args: argparse.Namespace) -> int:
    """``fairrobust study robustness``: run the study, print the model table."""
    from fairrobust.studies.robustness import run_study

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    config = config_from_args(args)
    out = _flags.output_dir(args)
    specs = args.external_models or []
    grid = [
        f"--{n.replace('_', '-')}" for n in _GRID_FLAGS if getattr(args, f"study_{n}") is not None
    ]
    if specs and grid:
        raise ValueError(
            "--model: expected no flag of the trained grid with it (given models are evaluated "
            f"as they are), got {', '.join(grid)}"
        )
    runtime = _flags.start_runtime(args)  # first: jax.distributed precedes any JAX call
    external = [_external(spec) for spec in specs] or None  # before any data is loaded
    dataset = _load(args)
    n_models = len(external) if external else config.num_models
    print(
        f"robustness study on {dataset.name}: {n_models} {'external ' if external else ''}"
        f"models x {len(config.preprocess)} preprocess, attack eps {list(config.attack_eps)}, "
        f"{config.attack_steps} PGD steps"
    )
    results = run_study(
        dataset,
        config,
        out,
        resume=not args.no_resume,
        progress=not args.no_progress,
        runtime=runtime,
        models=external,
    )
    print(format_models_table(results.tables["models"]))
    print(f"excluded as random guessing: {list(results.excluded) or 'none'}")
    print(
        f"results: {results.files['summary'].parent}  figures: {out / 'figures'}  "
        f"({results.seconds:.0f} s)"
    )
    return 0


def rejection_main(args: argparse.Namespace) -> int:
    """``fairrobust study rejection``: run the study, print Table 1 and FPR Parity."""
    from fairrobust.studies.rejection import run_study

    config = config_from_args(args)
    out = _flags.output_dir(args)
    runtime = _flags.start_runtime(args)
    nr_model, rs_model = _external(args.nr_model), _external(args.rs_model)  # before the data
    ds = _load(args)
    print(
        f"rejection study on {ds.name}: {len(ds)} clips, {ds.num_classes} classes; "
        f"N = {list(config.num_samples)}, sigma = {config.sigma}, noise = {config.noise}"
    )
    res = run_study(
        ds,
        config,
        out,
        resume=not args.no_resume,
        progress=not args.no_progress,
        runtime=runtime,
        nr_model=nr_model,
        rs_model=rs_model,
    )
    print("\nAUC_FPR (rows: method; lower = fewer false rejections)")
    table = res.tables["auc_fpr"]
    cols = ["label", "overall", *[c for c in (table[0] if table else {}) if "=" in c][:8]]
    print(format_rows(table, cols))
    print("\nFPR Parity (max - min group AUC_FPR; lower = more equal)")
    print(
        format_rows(res.tables["fpr_parity"], ["attribute", "label", "fpr_parity", "worst_group"])
    )
    print(
        f"\nNR accuracy {res.summary['nr_accuracy']:.3f}; RS base accuracy "
        f"{res.summary['rs_base_accuracy']:.3f}; {res.timings['total']:.0f} s"
    )
    print(f"results: {res.out_dir / 'results'}")
    return 0


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as an aligned text table of ``columns`` (floats to 3 decimals, None as -)."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def format_models_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-model table (paper Tables 1-2) as aligned text, by clean accuracy."""
    from fairrobust.studies import format_value

    header = (
        f"{'model':<10} {'AT':>7} {'noise':>6} {'preprocess':<18} {'clean':>6} "
        f"{'AUC_acc':>9}  excluded"
    )
    lines = [header, "-" * len(header)]
    for r in sorted(rows, key=lambda r: r["clean_accuracy"]):
        lines.append(
            f"{r['model']:<10} {format_value(r['at_eps']):>7} "
            f"{format_value(r['noise_std']):>6} {r['preprocess'][:18]:<18} "
            f"{r['clean_accuracy']:>6.3f} {r['auc_acc']:>9.5f}  "
            f"{'yes' if r['excluded'] else ''}"
        )
    return "\n".join(lines)
