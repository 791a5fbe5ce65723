"""``fairrobust train``: train one M5 / M5-Tricks model, print accuracy per split and group."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from fairrobust.cli import _flags, _term

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust train``."""
    _flags.add_data(parser, command="train")
    g = parser.add_argument_group("model and training")
    _flags.add(g, "--arch", "--width", "--at-eps", "--noise-std", "--epochs", "--batch-size",
               "--lr", "--seed", command="train")  # fmt: skip
    g.add_argument(
        "--out", type=Path, required=True, help="output folder (checkpoints, metrics.json)"
    )
    _flags.add(g, "--no-resume", "--no-progress", command="train")
    _flags.add_runtime(parser, command="train", devices=False)


def _one(args: argparse.Namespace, name: str, default: Any) -> Any:
    """The single value of a list flag (``train`` trains one model)."""
    values = getattr(args, name)
    if values is None:
        return default
    if len(values) != 1:
        flag = "--" + name.replace("_", "-")
        raise ValueError(
            f"{flag}: train trains one model, expected one value, got {list(values)} "
            "(a grid is 'fairrobust study robustness')"
        )
    return values[0]


def main(args: argparse.Namespace) -> int:
    """Train (or resume) into ``--out``; write ``metrics.json``; print the accuracy report.

    Wall-clock times go to ``timings.json``, so ``metrics.json`` and the checkpoints
    of two same-seed runs in the same environment are byte-identical.
    """
    arch, at_eps = _one(args, "arch", "m5"), _one(args, "at_eps", 0.0)
    noise_std = _one(args, "noise_std", 0.0)
    _flags.check_data(args)  # every flag is checked before anything is imported or loaded
    from fairrobust._io import atomic_write_json
    from fairrobust.data import load_dataset
    from fairrobust.evaluation import accuracy_report, format_accuracy_report
    from fairrobust.train import TrainConfig, train, write_timings

    config = TrainConfig(  # validates every field before the data is loaded
        model=arch,
        width=32 if args.width is None else args.width,
        epochs=30 if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        noise_std=noise_std,
        at_eps=at_eps,
        seed=0 if args.seed is None else args.seed,
    )
    _flags.start_runtime(args)
    ds = load_dataset(args.dataset, args.data_dir, **_flags.load_options(args))
    _term.echo(
        f"loaded {ds.name}: {len(ds)} clips, {ds.num_classes} classes, "
        f"attributes {sorted(ds.attributes)}"
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    resume, progress = not args.no_resume, not args.no_progress
    result = train(ds, config, out_dir=out, resume=resume, progress=progress)
    report = accuracy_report(result.model, result.variables, ds)
    write_timings(out, {"train_seconds": time.perf_counter() - t0})
    report["best_epoch"] = result.best_epoch
    report["config"] = config
    report["data_fingerprint"] = ds.fingerprint()
    atomic_write_json(out / "metrics.json", report)
    _term.echo(format_accuracy_report(report))
    _term.echo(f"wrote {out / 'metrics.json'}")
    return 0
