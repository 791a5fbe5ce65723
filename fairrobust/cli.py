"""The ``fairrobust`` command: train, study robustness / rejection, certify, run.

Every subcommand is a thin layer over the library: parse flags, call the
library, print a short table, write results atomically under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

DATASET_CHOICES = ("bundled", "fsdd", "wuw", "audiomnist", "common-voice", "folder")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default="bundled",
        choices=DATASET_CHOICES,
        help="dataset loader (default: bundled WUW keywords, no download needed)",
    )
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="dataset root (for folder: the CSV file); not needed for 'bundled'",
    )
    g.add_argument("--sample-rate", type=int, default=16000, help="target sample rate in Hz")
    g.add_argument("--duration", type=float, default=1.0, help="clip length in seconds")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--model", default="m5", choices=("m5", "m5-tricks"))
    g.add_argument(
        "--width", type=int, default=32, help="M5 channel width (32 or 128 in the paper)"
    )
    g.add_argument("--at-eps", type=float, default=0.0, help="PGD-AT L-inf budget (0 = no AT)")
    g.add_argument("--noise-std", type=float, default=0.0, help="Gaussian augmentation std")
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--seed", type=int, default=0)


def _load(args: argparse.Namespace):
    from fairrobust.data import load_dataset

    if args.dataset != "bundled" and args.data_dir is None:
        raise SystemExit(f"error: --data-dir is required for --dataset {args.dataset}")
    ds = load_dataset(
        args.dataset, args.data_dir, sample_rate=args.sample_rate, duration=args.duration
    )
    print(
        f"loaded {ds.name}: {len(ds)} clips, {ds.num_classes} classes, "
        f"attributes {sorted(ds.attributes)}"
    )
    return ds


def _cmd_train(args: argparse.Namespace) -> int:
    from fairrobust._io import atomic_write_json
    from fairrobust.evaluation import accuracy_report, format_accuracy_report
    from fairrobust.train import TrainConfig, train

    ds = _load(args)
    config = TrainConfig(
        model=args.model,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        noise_std=args.noise_std,
        at_eps=args.at_eps,
        seed=args.seed,
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    result = train(ds, config, out_dir=out, resume=True, progress=True)
    report = accuracy_report(result.model, result.variables, ds)
    report["train_seconds"] = time.perf_counter() - t0
    report["best_epoch"] = result.best_epoch
    report["config"] = config
    report["data_fingerprint"] = ds.fingerprint()
    atomic_write_json(out / "metrics.json", report)
    print(format_accuracy_report(report))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fairrobust",
        description="For whom do ML security defenses defend? Parity of adversarial training, "
        "noise augmentation, randomized smoothing and neural rejection across groups.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from fairrobust.run import add_run_arguments, run_main

    p = sub.add_parser(
        "run",
        help="the main job: both studies on a dataset (default: bundled) and a report",
        description="Train the model grid, run the robustness and rejection studies and "
        "write a run folder with results/*.csv|json, figures/*.png, report.md and a "
        "self-contained report.html. With no arguments: quick preset on the bundled data.",
    )
    add_run_arguments(p)
    p.set_defaults(func=run_main)

    p = sub.add_parser("train", help="train one M5 / M5-Tricks model")
    _add_data_args(p)
    _add_train_args(p)
    p.add_argument("--out", required=True, help="output folder (checkpoints, metrics.json)")
    p.set_defaults(func=_cmd_train)

    study = sub.add_parser("study", help="run one of the paper's two studies")
    study_sub = study.add_subparsers(dest="study", required=True)
    from fairrobust.studies import rejection, robustness

    p = study_sub.add_parser(
        "robustness",
        help="robustness-training equality: AUC_acc and Defense Parity over a model grid",
    )
    robustness.add_cli_arguments(p)
    p.set_defaults(func=robustness.cli_main)

    p = study_sub.add_parser(
        "rejection",
        help="rejection equality: AUC_FPR and FPR Parity, randomized smoothing vs neural rejection",
    )
    rejection.add_cli_arguments(p)
    p.set_defaults(func=rejection.cli_main)

    p = sub.add_parser(
        "certify", help="Cohen et al. CERTIFY every clip of a split; per-example CSV"
    )
    rejection.add_certify_arguments(p)
    p.set_defaults(func=rejection.certify_main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fairrobust`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fairrobust: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
