"""``fairrobust certify``: Cohen et al. CERTIFY every clip of a split; per-example CSV."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np

from fairrobust.cli import _flags, _term

__all__ = ["RADII", "add_arguments", "main"]

#: Radii printed per sigma (and the grid ``--adaptive`` settles on), in units of sigma.
RADII = np.asarray([0.0, 0.25, 0.5, 1.0, 2.0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust certify``."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint (.ckpt, or a training folder: its best.ckpt) written by "
        "'fairrobust train', ideally trained with --noise-std equal to the sigma certified",
    )
    _flags.add(model, "--model", command="certify")
    _flags.add_data(parser, command="certify")
    g = parser.add_argument_group("certify")
    g.add_argument("--split", default="test", choices=("train", "val", "test"))
    _flags.add(g, "--certify-sigmas", "--noise", "--certify-norm", "--certify-adaptive",
               "--sampling-mode", "--prng-impl", "--compute-dtype", command="certify")  # fmt: skip
    g.add_argument("--n0", type=_flags.number(int, 1), default=100, help="selection draws")
    g.add_argument("--n", type=_flags.number(int, 1), default=10000, help="estimation draws")
    g.add_argument(
        "--alpha", type=_flags.number(float, 0, strict=True), default=0.001,
        help="failure probability, in (0, 1)",
    )  # fmt: skip
    _flags.add(g, "--seed", "--max-examples", "--sample-batch-size", "--chunk-size",
               command="certify")  # fmt: skip
    g.add_argument("--out", type=Path, required=True, help="per-example CSV to write")
    _flags.add(g, "--no-progress", command="certify")
    _flags.add_runtime(parser, command="certify")


def main(args: argparse.Namespace) -> int:
    """CERTIFY every clip of a split, write a per-example CSV, print certified accuracy.

    Columns: index, path, label, prediction (-1 = abstain), radius, correct,
    p_a_lower, the dataset's attributes, then sigma, norm and draws (one row per clip
    and sigma).
    """
    if args.external_models and len(args.external_models) != 1:
        raise ValueError(f"--model: certify takes one model, got {args.external_models}")
    if not args.alpha < 1:
        raise ValueError(f"--alpha: expected a number in (0, 1), got {args.alpha}")
    sigmas = np.asarray(args.certify_sigmas or (0.1,), np.float64)
    noise, seed = args.noise or "gaussian", args.seed or 0
    batch_size, chunk_size = args.sample_batch_size or 16, args.chunk_size or 16
    _flags.check_data(args)  # the flags above and the data flags, before any import
    import jax
    import jax.numpy as jnp

    from fairrobust import _io, smoothing
    from fairrobust.data import load_dataset
    from fairrobust.engine import parallel
    from fairrobust.studies import seeded_subset
    from fairrobust.studies.external import ExternalModel
    from fairrobust.studies.rejection_tables import certify_table, write_csv

    norm = smoothing.noise_certificate(noise, args.certify_norm).norm  # before loading data
    runtime = _flags.start_runtime(args)  # first: jax.distributed precedes any JAX call
    if args.external_models:
        model = ExternalModel.load(args.external_models[0])
    else:  # a training folder means its selected (best) checkpoint
        model = ExternalModel.from_checkpoint(args.checkpoint)
    ds = load_dataset(args.dataset, args.data_dir, **_flags.load_options(args))
    model.check(ds.num_classes, int(np.shape(ds.waveforms)[1]))
    idx = np.flatnonzero(np.asarray(ds.splits) == args.split)
    idx = seeded_subset(idx, args.max_examples or 0, seed)
    if idx.size == 0:
        raise ValueError(f"split {args.split!r} of {ds.name!r} has no examples")
    apply_fn = model.evaluation_fn(runtime)
    sampler = functools.partial(parallel.sample_counts, mesh=runtime.mesh)
    key = jax.random.key(seed)
    x = np.asarray(ds.waveforms[idx], np.float32)
    kw = dict(
        n0=args.n0, n=args.n, alpha=args.alpha, sigma=sigmas, num_classes=ds.num_classes,
        noise=noise, norm=args.certify_norm, chunk_size=chunk_size, sampler=sampler,
        mode=args.sampling_mode or "independent", prng_impl=args.prng_impl,
        compute_dtype=args.compute_dtype,
    )  # fmt: skip
    parts: dict[str, list[np.ndarray]] = {"pred": [], "radius": [], "p_a_lower": [], "draws": []}
    with _io.progress(total=len(idx), desc="CERTIFY", enabled=not args.no_progress) as bar:
        for s in range(0, len(idx), batch_size):
            rows = slice(s, s + batch_size)
            xb, ib = jnp.asarray(x[rows]), jnp.asarray(idx[rows], jnp.int32)
            if args.certify_adaptive:  # per sigma, settled on the radius grid printed below
                rs = [
                    smoothing.adaptive_certify(
                        apply_fn,
                        model.variables,
                        xb,
                        key,
                        indices=ib,
                        **(kw | {"sigma": float(sig), "target_radius": RADII * sig}),
                    )
                    for sig in sigmas
                ]
                for k in parts:
                    parts[k].append(np.stack([np.asarray(getattr(q, k)) for q in rs]))
            else:
                r = smoothing.certify(apply_fn, model.variables, xb, key, indices=ib, **kw)
                for k in ("pred", "radius", "p_a_lower"):
                    parts[k].append(np.asarray(getattr(r, k)))  # [S, b]
                parts["draws"].append(np.full(np.shape(r.pred), args.n))
            bar.update(int(xb.shape[0]))
    pred, radius, p_a, draws = (np.concatenate(parts[k], axis=-1) for k in parts)
    labels = np.asarray(ds.labels[idx])
    rows_out: list[dict] = []
    attrs = {k: np.asarray(v)[idx] for k, v in ds.attributes.items()}
    for i, sig in enumerate(sigmas):
        part = certify_table(
            index=idx, paths=np.asarray(ds.paths)[idx], labels=labels, pred=pred[i],
            radius=radius[i], p_a_lower=p_a[i], attributes=attrs,
        )  # fmt: skip
        rows_out += [
            {**r, "sigma": float(sig), "norm": norm, "draws": int(d)}
            for r, d in zip(part, draws[i], strict=True)
        ]
    out = write_csv(args.out, rows_out)
    _term.echo(
        f"certified {len(idx)} clips of {ds.name}/{args.split} (noise={noise}, "
        f"{norm.upper()} radii, n0={args.n0}, n={args.n}, alpha={args.alpha}"
        + (
            f"; adaptive: {draws.mean():.0f} estimation draws per clip on average"
            if args.certify_adaptive
            else ""
        )
        + ")"
    )
    for i, sig in enumerate(sigmas):
        radii = RADII * sig
        acc = smoothing.certified_accuracy(pred[i], radius[i], labels, radii, None)[:, 0]
        _term.echo(f"sigma {sig:g}: abstained on {100 * np.mean(pred[i] < 0):.3g}% of the clips")
        _term.echo("  radius   " + "  ".join(f"{r:7.4f}" for r in radii))
        _term.echo("  cert.acc " + "  ".join(f"{a:7.3f}" for a in acc))
    _term.echo(f"wrote {out}")
    return 0
