"""``fairrobust study robustness|rejection``: one study into an output folder."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from fairrobust.cli import _flags, _term

__all__ = [
    "add_rejection_arguments",
    "add_robustness_arguments",
    "config_from_args",
    "rejection_main",
    "robustness_main",
]

#: Robustness-study flags beyond the shared ones: flag -> config field.
_ROBUSTNESS_FLAGS: Mapping[str, str] = {
    "--arch": "models",
    "--at-eps": "at_eps",
    "--noise-std": "noise_std",
    "--preprocess": "preprocess",
    "--attack-eps": "attack_eps",
    "--attack-steps": "attack_steps",
    "--epochs": "epochs",
    "--width": "width",
}
#: Rejection-study flags beyond the shared ones: flag -> config field.
_REJECTION_FLAGS: Mapping[str, str] = {
    "--arch": "model",
    "--num-samples": "num_samples",
    "--noise": "noise",
    "--certify-sigmas": "certify_sigmas",
    "--certify-norm": "certify_norm",
    "--representations": "representations",
    "--sampling-mode": "sampling_mode",
    "--prng-impl": "prng_impl",
    "--compute-dtype": "compute_dtype",
    "--epochs": "epochs",
    "--width": "width",
}
#: Robustness flags of the trained grid, which ``--model`` replaces.
_GRID_FLAGS = ("--arch", "--at-eps", "--noise-std", "--epochs", "--width")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _add(
    parser: argparse.ArgumentParser, study: str, flags: Mapping[str, str]
) -> argparse._ArgumentGroup:
    _flags.add_data(parser, command=study)
    g = _flags.add_study(parser, command=study)
    _flags.add(g, *(f for f in flags if f in _flags.FLAGS), command=study)
    _flags.add_runtime(parser, command=study)
    return g


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust study robustness``."""
    _add(parser, "robustness", _ROBUSTNESS_FLAGS)
    _flags.add(parser, "--model", command="robustness")


def add_rejection_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust study rejection``."""
    g = _add(parser, "rejection", _REJECTION_FLAGS)
    g.add_argument(
        "--representations",
        type=_flags.choice_list(("stft", "mel")),
        default=None,
        help="also certify a classifier of these representations, comma-separated: stft, mel",
    )
    _flags.add(g, "--certify-adaptive", command="rejection")
    g.add_argument("--no-certify", action="store_true", help="skip CERTIFY")
    g.add_argument(
        "--linear-stem",
        action="store_true",
        help="M5's first layer once per clip and draw (needs --sampling-mode shared_bank)",
    )
    spec = "checkpoint path or package.module:callable"
    g.add_argument("--nr-model", metavar="SPEC", default=None,
                   help=f"NR base model, not trained ({spec})")  # fmt: skip
    g.add_argument("--rs-model", metavar="SPEC", default=None,
                   help=f"RS base model, not trained ({spec})")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> Any:
    """The study config of parsed ``study robustness|rejection`` flags.

    The preset, then the ``--config`` file, then every flag given (validated here,
    before any data is loaded).
    """
    from fairrobust.studies.config import load_config

    study = args.study
    flags = _ROBUSTNESS_FLAGS if study == "robustness" else _REJECTION_FLAGS
    overrides = _flags.study_overrides(args, {_dest(f): field for f, field in flags.items()})
    if study == "rejection":
        if args.arch is not None and len(args.arch) != 1:
            raise ValueError(f"--arch: the rejection study trains one, got {list(args.arch)}")
        if args.arch is not None:
            overrides["model"] = args.arch[0]
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

    config = config_from_args(args)
    out = _flags.output_dir(args)
    _flags.check_data(args)
    specs = args.external_models or []
    grid = [f for f in _GRID_FLAGS if getattr(args, _dest(f)) is not None]
    if specs and grid:
        raise ValueError(
            "--model: expected no flag of the trained grid with it (given models are evaluated "
            f"as they are), got {', '.join(grid)}"
        )
    runtime = _flags.start_runtime(args, log=_term.echo)  # first: jax.distributed first
    external = [_external(spec) for spec in specs] or None  # before any data is loaded
    dataset = _load(args)
    n_models = len(external) if external else config.num_models
    _term.echo(
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
    _term.echo(format_models_table(results.tables["models"]))
    _term.echo(f"excluded as random guessing: {list(results.excluded) or 'none'}")
    _term.echo(
        f"results: {results.files['summary'].parent}  figures: {out / 'figures'}  "
        f"({_term.num(results.seconds)} s)"
    )
    return 0


def rejection_main(args: argparse.Namespace) -> int:
    """``fairrobust study rejection``: run the study, print Table 1 and FPR Parity."""
    from fairrobust.studies.rejection import run_study

    config = config_from_args(args)
    out = _flags.output_dir(args)
    _flags.check_data(args)
    runtime = _flags.start_runtime(args, log=_term.echo)
    nr_model, rs_model = _external(args.nr_model), _external(args.rs_model)  # before the data
    ds = _load(args)
    _term.echo(
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
    _term.echo("AUC_FPR (rows: method; lower = fewer false rejections)")
    table = res.tables["auc_fpr"]
    cols = ["label", "overall", *[c for c in (table[0] if table else {}) if "=" in c][:8]]
    _term.echo(format_rows(table, cols))
    _term.echo("FPR Parity (max - min group AUC_FPR; lower = more equal)")
    _term.echo(
        format_rows(res.tables["fpr_parity"], ["attribute", "label", "fpr_parity", "worst_group"])
    )
    _term.echo(
        f"NR accuracy {_term.num(res.summary['nr_accuracy'])}; RS base accuracy "
        f"{_term.num(res.summary['rs_base_accuracy'])}; {_term.num(res.timings['total'])} s"
    )
    _term.echo(f"results: {res.out_dir / 'results'}")
    return 0


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as an aligned table of ``columns`` (numbers to 3 significant digits, None as
    -), at most 120 columns wide."""
    cells = [["-" if r.get(c) is None else _term.num(r.get(c)) for c in columns] for r in rows]
    return _term.table(list(columns), cells)


def format_models_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-model table (paper Tables 1-2) as aligned text, by clean accuracy."""
    from fairrobust.studies import format_value

    cells = [
        [r["model"], format_value(r["at_eps"]), format_value(r["noise_std"]), r["preprocess"],
         _term.num(r["clean_accuracy"]), _term.num(r["auc_acc"]), "yes" if r["excluded"] else ""]
        for r in sorted(rows, key=lambda r: r["clean_accuracy"])
    ]  # fmt: skip
    headers = ["model", "AT", "noise", "preprocess", "clean", "AUC_acc", "excluded"]
    return _term.table(headers, cells)
