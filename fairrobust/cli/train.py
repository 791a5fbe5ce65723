"""``fairrobust train``: train one M5 / M5-Tricks model, print accuracy per split and group."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fairrobust.cli import _flags

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust train``."""
    _flags.add_data(parser)
    g = parser.add_argument_group("model and training")
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
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (checkpoints, metrics.json)"
    )
    _flags.add_progress(parser)
    _flags.add_runtime(parser, devices=False)


def main(args: argparse.Namespace) -> int:
    """Train (or resume) into ``--out``; write ``metrics.json``; print the accuracy report.

    Wall-clock times go to ``timings.json``, so ``metrics.json`` and the checkpoints
    of two same-seed runs in the same environment are byte-identical.
    """
    from fairrobust._io import atomic_write_json
    from fairrobust.data import load_dataset
    from fairrobust.evaluation import accuracy_report, format_accuracy_report
    from fairrobust.train import TrainConfig, train, write_timings

    config = TrainConfig(  # validates every field before the data is loaded
        model=args.model,
        width=args.width,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        noise_std=args.noise_std,
        at_eps=args.at_eps,
        seed=args.seed,
    )
    _flags.check_data(args)
    _flags.start_runtime(args)
    ds = load_dataset(args.dataset, args.data_dir, **_flags.load_options(args))
    print(
        f"loaded {ds.name}: {len(ds)} clips, {ds.num_classes} classes, "
        f"attributes {sorted(ds.attributes)}"
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    result = train(ds, config, out_dir=out, resume=True, progress=not args.no_progress)
    report = accuracy_report(result.model, result.variables, ds)
    write_timings(out, {"train_seconds": time.perf_counter() - t0})
    report["best_epoch"] = result.best_epoch
    report["config"] = config
    report["data_fingerprint"] = ds.fingerprint()
    atomic_write_json(out / "metrics.json", report)
    print(format_accuracy_report(report))
    print(f"wrote {out / 'metrics.json'}")
    return 0
