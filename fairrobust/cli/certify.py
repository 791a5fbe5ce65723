"""``fairrobust certify``: Cohen et al. CERTIFY every clip of a split; per-example CSV."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np

from fairrobust.cli import _flags

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
        "'fairrobust train', ideally trained with --noise-std equal to --sigma",
    )
    model.add_argument(
        "--model",
        metavar="SPEC",
        help="or any trained model: checkpoint path or package.module:callable "
        "returning a fairrobust ExternalModel",
    )
    _flags.add_data(parser)
    g = parser.add_argument_group("certify")
    g.add_argument("--split", default="test", choices=("train", "val", "test"))
    g.add_argument(
        "--sigma",
        type=_flags.float_list,
        default=(0.1,),
        help="smoothing noise std, or several comma-separated (one batched sweep)",
    )
    g.add_argument("--noise", default="gaussian", help="noise family (registered name)")
    g.add_argument(
        "--norm",
        default=None,
        choices=("l1", "l2", "linf"),
        help="certificate norm (default: the family's: l2 gaussian, l1 laplace / uniform)",
    )
    g.add_argument(
        "--adaptive",
        action="store_true",
        help="draw in rounds, stopping each clip once no more draws could certify it at a "
        "larger printed radius (0.25, 0.5, 1, 2 sigma); alpha kept by a union bound",
    )
    g.add_argument("--sampling-mode", default="independent", choices=("independent", "shared_bank"))
    g.add_argument("--prng-impl", default=None, choices=("threefry2x32", "rbg", "unsafe_rbg"))
    g.add_argument("--compute-dtype", default=None, choices=("float32", "bfloat16", "float16"))
    g.add_argument("--n0", type=int, default=100, help="selection draws")
    g.add_argument("--n", type=int, default=10000, help="estimation draws")
    g.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    g.add_argument("--seed", type=int, default=0, help="noise and subset seed")
    g.add_argument(
        "--max-examples",
        type=int,
        default=0,
        help="cap on certified clips, a seeded subset (0 = all)",
    )
    g.add_argument("--batch-size", type=int, default=16, help="clips per certify call")
    g.add_argument("--chunk-size", type=int, default=16, help="noise draws per forward pass")
    g.add_argument("--out", type=Path, required=True, help="per-example CSV to write")
    _flags.add_progress(parser)
    _flags.add_runtime(parser)


def main(args: argparse.Namespace) -> int:
    """CERTIFY every clip of a split, write a per-example CSV, print certified accuracy.

    Columns: index, path, label, prediction (-1 = abstain), radius, correct,
    p_a_lower, the dataset's attributes, then sigma, norm and draws (one row per clip
    and sigma).
    """
    import jax
    import jax.numpy as jnp

    from fairrobust import _io, smoothing
    from fairrobust.data import load_dataset
    from fairrobust.engine import parallel
    from fairrobust.studies import seeded_subset
    from fairrobust.studies.external import ExternalModel
    from fairrobust.studies.rejection_tables import certify_table, write_csv

    for name in ("n0", "n", "batch_size", "chunk_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= 1")
    if args.max_examples < 0:
        raise ValueError("--max-examples: expected an integer >= 0 (0 = all)")
    if any(not (s > 0 and np.isfinite(s)) for s in args.sigma):
        raise ValueError(f"--sigma: expected positive stds, got {args.sigma}")
    norm = smoothing.noise_certificate(args.noise, args.norm).norm  # before loading data
    _flags.check_data(args)
    runtime = _flags.start_runtime(args)  # first: jax.distributed precedes any JAX call
    if args.model is not None:
        model = ExternalModel.load(args.model)
    else:  # a training folder means its selected (best) checkpoint
        model = ExternalModel.from_checkpoint(args.checkpoint)
    ds = load_dataset(args.dataset, args.data_dir, **_flags.load_options(args))
    model.check(ds.num_classes, int(np.shape(ds.waveforms)[1]))
    idx = np.flatnonzero(np.asarray(ds.splits) == args.split)
    idx = seeded_subset(idx, args.max_examples, args.seed)
    if idx.size == 0:
        raise ValueError(f"split {args.split!r} of {ds.name!r} has no examples")
    apply_fn = model.evaluation_fn(runtime)
    sampler = functools.partial(parallel.sample_counts, mesh=runtime.mesh)
    key = jax.random.key(args.seed)
    x = np.asarray(ds.waveforms[idx], np.float32)
    sigmas = np.asarray(args.sigma, np.float64)
    kw = dict(
        n0=args.n0, n=args.n, alpha=args.alpha, sigma=sigmas, num_classes=ds.num_classes,
        noise=args.noise, norm=args.norm, chunk_size=args.chunk_size, sampler=sampler,
        mode=args.sampling_mode, prng_impl=args.prng_impl, compute_dtype=args.compute_dtype,
    )  # fmt: skip
    parts: dict[str, list[np.ndarray]] = {"pred": [], "radius": [], "p_a_lower": [], "draws": []}
    with _io.progress(total=len(idx), desc="CERTIFY", enabled=not args.no_progress) as bar:
        for s in range(0, len(idx), args.batch_size):
            rows = slice(s, s + args.batch_size)
            xb, ib = jnp.asarray(x[rows]), jnp.asarray(idx[rows], jnp.int32)
            if args.adaptive:  # per sigma, settled on the radius grid printed below
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
    print(
        f"certified {len(idx)} clips of {ds.name}/{args.split} (noise={args.noise}, "
        f"{norm.upper()} radii, n0={args.n0}, n={args.n}, alpha={args.alpha}"
        + (
            f"; adaptive: {draws.mean():.0f} estimation draws per clip on average"
            if args.adaptive
            else ""
        )
        + ")"
    )
    for i, sig in enumerate(sigmas):
        radii = RADII * sig
        acc = smoothing.certified_accuracy(pred[i], radius[i], labels, radii, None)[:, 0]
        print(f"sigma {sig:g}: abstained on {np.mean(pred[i] < 0):.1%}")
        print("  radius   " + "  ".join(f"{r:7.4f}" for r in radii))
        print("  cert.acc " + "  ".join(f"{a:7.3f}" for a in acc))
    print(f"wrote {out}")
    return 0
