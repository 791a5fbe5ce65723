"""The rejection study's stages: evaluated set, base models, NR scores, RS counts, CERTIFY.

Each stage takes typed inputs and returns a typed record, cached under the run folder
by the hash of everything it depends on (``fairrobust.studies._store``);
:func:`fairrobust.studies.rejection.run_study` composes them. Models train as one grid
(``engine.grid`` through ``_store.train_models``) and smoothing draws are split over the
runtime's devices (``engine.parallel.sample_counts``: identical counts on any number of
devices). Either base model may be an external one
(:class:`fairrobust.studies.external.ExternalModel`), used as it is: not trained, no
model folder, its caches keyed by ``external-<fingerprint>``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fairrobust import _io, models, smoothing
from fairrobust.data import AudioDataset
from fairrobust.engine import parallel
from fairrobust.engine.runtime import Runtime
from fairrobust.groups import (
    AttributeStatus,
    Groups,
    all_groups,
    parse_intersections,
    training_group_sizes,
    with_speakers,
)
from fairrobust.neural_rejection import NeuralRejection
from fairrobust.studies._store import (
    TrainedModel,
    cached_batches,
    load_cached,
    save_cached,
    seeded_subset,
    train_models,
)
from fairrobust.studies.attributes import study_attributes
from fairrobust.studies.config import RejectionConfig
from fairrobust.studies.external import ExternalModel
from fairrobust.train import TrainConfig, extract_features, predict_logits

__all__ = [
    "BaseModels",
    "Certification",
    "EvalSet",
    "NeuralRejectionScores",
    "SmoothingSamples",
    "base_model_dir",
    "base_model_key",
    "certify_batches",
    "certify_representations",
    "certify_rs",
    "external_key",
    "load_eval_set",
    "per_sigma",
    "representation_train_config",
    "sample_rs",
    "sampling_options",
    "score_nr",
    "select_eval",
    "train_base_models",
    "train_configs",
]


@dataclasses.dataclass(frozen=True, eq=False)
class EvalSet:
    """The evaluated examples of a rejection study run and the data they come from.

    Attributes:
      dataset: dataset name.
      data_fingerprint: ``AudioDataset.fingerprint()``.
      num_classes: number of classes.
      index: sorted dataset indices ``[n]`` (:func:`select_eval`).
      x: float32 waveforms ``[n, T]``.
      y: labels ``[n]``.
      speakers: speaker of each example ``[n]`` (bootstrap clusters).
      paths: clip path of each example ``[n]``.
      attributes: every dataset attribute at the evaluated examples, ``[n]`` each.
      groups: attribute (or intersection) -> ``fairrobust.groups.Groups`` over ``n``.
      train_sizes: the same keys -> training examples per group ``[g]``.
      attribute_status: every requested attribute, usable or why not (``groups`` has the usable).
    """

    dataset: str
    data_fingerprint: str
    num_classes: int
    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    paths: np.ndarray
    attributes: Mapping[str, np.ndarray]
    groups: Mapping[str, Groups]
    train_sizes: Mapping[str, np.ndarray]
    attribute_status: tuple[AttributeStatus, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class BaseModels:
    """The two base models: clean M5 (NR) and Gaussian-noise M5 (RS), or external ones.

    Attributes:
      nr, rs: the models, ready to evaluate.
      nr_config, rs_config: their ``fairrobust.train.TrainConfig`` (:func:`train_configs`),
        None for an external model.
      nr_key, rs_key: stable hash of data fingerprint and training config; names
        the model folder (``models/rejection-<nr|rs>-<key>``) and keys every cache
        computed from the model (``external-<fingerprint>`` for an external model).
      nr_external, rs_external: the external models, or None (trained by the study).
    """

    nr: TrainedModel
    rs: TrainedModel
    nr_config: TrainConfig | None
    rs_config: TrainConfig | None
    nr_key: str
    rs_key: str
    nr_external: ExternalModel | None = None
    rs_external: ExternalModel | None = None

    def sources(self) -> dict[str, Any]:
        """Where each model comes from, for the results files: ``train_<kind>`` (its
        ``TrainConfig``) or ``external_<kind>`` (``ExternalModel.record``)."""
        out: dict[str, Any] = {}
        for kind, cfg, ext in (("nr", self.nr_config, self.nr_external),
                               ("rs", self.rs_config, self.rs_external)):  # fmt: skip
            if ext is not None:
                out[f"external_{kind}"] = ext.record()
            else:
                out[f"train_{kind}"] = cfg
        return out

    def labels(self, sigma: float) -> tuple[str, str]:
        """Row labels of the two base models in the accuracy table ``(nr, rs)``."""
        nr = "M5 clean" if self.nr_external is None else self.nr_external.name
        rs = f"M5 sigma={sigma:g}" if self.rs_external is None else self.rs_external.name
        return f"{nr} (NR base)", f"{rs} (RS base)"


@dataclasses.dataclass(frozen=True, eq=False)
class NeuralRejectionScores:
    """NR outputs on the evaluated examples (:func:`score_nr`).

    Attributes:
      scores: SVM scores ``[n, C]``.
      stat: top score, the rejection statistic ``[n]`` (reject iff below t).
      pred: the SVM's predicted class ``[n]``.
      base_pred: the clean M5's predicted class ``[n]``.
      reused: read from the cache.
    """

    scores: np.ndarray
    stat: np.ndarray
    pred: np.ndarray
    base_pred: np.ndarray
    reused: bool


@dataclasses.dataclass(frozen=True, eq=False)
class SmoothingSamples:
    """RS outputs on the evaluated examples at every N (:func:`sample_rs`).

    Attributes:
      counts: class counts ``[k, n, C]`` at each N of ``num_samples`` (prefixes of
        one noise stream).
      top: the top class ``[k, n]``.
      pvalues: PREDICT p-values ``[k, n]`` (abstain iff p > alpha).
      base_pred: the RS base model's prediction on clean inputs ``[n]``.
      reused: the counts were read from the cache.
    """

    counts: np.ndarray
    top: np.ndarray
    pvalues: np.ndarray
    base_pred: np.ndarray
    reused: bool


@dataclasses.dataclass(frozen=True, eq=False)
class Certification:
    """CERTIFY outputs of one model at one sigma on the evaluated examples (:func:`certify_rs`).

    Attributes:
      pred: certified class ``[n]`` (-1 = abstain).
      radius: certified radius ``[n]`` in ``norm``, in the units of ``space``.
      p_a_lower: lower confidence bound of the top-class probability ``[n]``.
      reused: read from the cache.
      sigma: the smoothing noise std.
      norm: the certificate's norm (``"l1"``, ``"l2"``, ``"linf"``).
      space: where the noise is added: ``"waveform"`` or a representation name.
      model: row label of the smoothed base model.
      draws: estimation draws used per example ``[n]`` (``certify_n`` unless adaptive).
    """

    pred: np.ndarray
    radius: np.ndarray
    p_a_lower: np.ndarray
    reused: bool
    sigma: float = 0.0
    norm: str = "l2"
    space: str = "waveform"
    model: str = "RS base"
    draws: np.ndarray | None = None


# ----------------------------------------------------------------------------- stages


def train_configs(config: RejectionConfig) -> tuple[TrainConfig, TrainConfig]:
    """(clean NR base config, noisy RS base config) as ``fairrobust.train.TrainConfig``."""
    nr = TrainConfig(
        model=config.model,
        width=config.width,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        noise_std=0.0,
        at_eps=0.0,
        val_noise_std=0.0,
        seed=config.seed,
    )
    # RS base model: Gaussian augmentation at the smoothing sigma, selected on equally
    # noisy validation data (paper section 4.3); its own seed.
    rs = dataclasses.replace(
        nr, noise_std=config.sigma, val_noise_std=config.sigma, seed=config.seed + 1
    )
    return nr, rs


def select_eval(dataset: AudioDataset, config: RejectionConfig) -> np.ndarray:
    """Dataset indices of the evaluated examples: the split, seeded cap, sorted.

    ``seeded_subset(split indices, config.max_examples, config.seed)`` (no salt).
    """
    idx = np.flatnonzero(np.asarray(dataset.splits) == config.split)
    if idx.size == 0:
        raise ValueError(f"dataset {dataset.name!r}: split {config.split!r} is empty")
    return seeded_subset(idx, config.max_examples, config.seed)


def load_eval_set(dataset: AudioDataset, config: RejectionConfig) -> EvalSet:
    """The :class:`EvalSet` of ``config``: examples, groups and their training sizes.

    Raises:
      ValueError: empty split, or an attribute the dataset does not have.
    """
    idx = select_eval(dataset, config)
    attrs = {k: np.asarray(v)[idx] for k, v in dataset.attributes.items()}
    names = list(config.attributes) or sorted(attrs)
    inter = parse_intersections(config.intersections, names)
    # before any training: unknown names raise, unusable attributes are left out, none usable
    # fails here
    names, inter, status = study_attributes(
        dataset, idx, names, inter, min_clips=config.min_group_size,
        keep_unknown=config.keep_unknown, split_name=config.split,
    )  # fmt: skip
    speakers = np.asarray(dataset.speakers)[idx]
    grps = {
        name: with_speakers(g, speakers, config.min_speakers)
        for name, g in all_groups(
            attrs, names, inter, min_size=config.min_group_size, keep_unknown=config.keep_unknown
        ).items()
    }
    train_mask = np.asarray(dataset.splits) == "train"
    train_attrs = {k: np.asarray(v)[train_mask] for k, v in dataset.attributes.items()}
    return EvalSet(
        dataset=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        num_classes=int(dataset.num_classes),
        index=idx,
        x=np.asarray(dataset.waveforms[idx], dtype=np.float32),
        y=np.asarray(dataset.labels[idx]),
        speakers=speakers,
        paths=np.asarray(dataset.paths)[idx],
        attributes=attrs,
        groups=grps,
        train_sizes={n: training_group_sizes(train_attrs, g) for n, g in grps.items()},
        attribute_status=tuple(status),
    )


def base_model_key(data_fingerprint: str, train_config: TrainConfig) -> str:
    """Hash of a base model's data and training config: ``models/rejection-<kind>-<key>``."""
    return _io.stable_hash({"data": data_fingerprint, "train": train_config})


def base_model_dir(models_dir: str | os.PathLike[str], kind: str, key: str) -> Path:
    """Folder of a base model: ``models_dir/rejection-<nr|rs>-<key>``."""
    return Path(models_dir) / f"rejection-{kind}-{key}"


def external_key(model: ExternalModel) -> str:
    """Cache key of an external base model: ``external-<fingerprint>``."""
    return f"external-{model.fingerprint()}"


def train_base_models(
    dataset: AudioDataset,
    config: RejectionConfig,
    models_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
    nr_model: ExternalModel | None = None,
    rs_model: ExternalModel | None = None,
) -> BaseModels:
    """Train (or load) the NR and RS base models in ``models_dir/rejection-<kind>-<key>/``
    (one grid, ``fairrobust.studies._store.train_models``); an external ``nr_model`` /
    ``rs_model`` is used instead of training that one (no folder is created for it)."""
    configs: dict[str, TrainConfig] = dict(zip(("nr", "rs"), train_configs(config), strict=True))
    external = {"nr": nr_model, "rs": rs_model}
    fp = dataset.fingerprint()
    keys = {
        kind: base_model_key(fp, configs[kind]) if ext is None else external_key(ext)
        for kind, ext in external.items()
    }
    todo = [kind for kind, ext in external.items() if ext is None]
    models_dir = Path(models_dir)
    trained = train_models(
        dataset,
        [configs[kind] for kind in todo],
        [base_model_dir(models_dir, kind, keys[kind]) for kind in todo],
        resume=resume,
        progress=progress,
        runtime=runtime,
    )
    got = dict(zip(todo, trained, strict=True))
    got.update({kind: ext.trained(runtime) for kind, ext in external.items() if ext is not None})
    return BaseModels(
        nr=got["nr"],
        rs=got["rs"],
        nr_config=configs["nr"] if nr_model is None else None,
        rs_config=configs["rs"] if rs_model is None else None,
        nr_key=keys["nr"],
        rs_key=keys["rs"],
        nr_external=nr_model,
        rs_external=rs_model,
    )


def score_nr(
    dataset: AudioDataset,
    base: BaseModels,
    ev: EvalSet,
    config: RejectionConfig,
    cache_dir: str | os.PathLike[str],
    *,
    resume: bool,
) -> NeuralRejectionScores:
    """Neural rejection: an RBF-SVM on the clean model's penultimate features.

    Fitted on the training split's features (seeded subsample ``nr_max_train``);
    scores every evaluated example. Cached in ``cache_dir/nr-<key>.npz``, keyed by
    the model, ``nr_max_train``, the seed and the evaluated examples. An external NR
    model gives its features through its ``features_fn``.
    """
    nr_key = _io.stable_hash(
        {"model": base.nr_key, "max_train": config.nr_max_train, "seed": config.seed,
         "eval": ev.index}
    )  # fmt: skip
    path = Path(cache_dir) / f"nr-{nr_key}.npz"
    cached = load_cached(path, nr_key) if resume else None
    reused = cached is not None
    if cached is None:
        model, variables, ext = base.nr.model, base.nr.variables, base.nr_external
        train_idx = np.flatnonzero(np.asarray(dataset.splits) == "train")
        x_train = np.asarray(dataset.waveforms[train_idx], np.float32)
        if ext is not None:
            f_train, f_eval = ext.features(x_train), ext.features(ev.x)
        else:
            f_train = extract_features(model, variables, x_train)
            f_eval = extract_features(model, variables, ev.x)
        nr = NeuralRejection().fit(
            f_train,
            np.asarray(dataset.labels[train_idx]),
            max_train=config.nr_max_train,
            seed=config.seed,
        )
        scores = np.asarray(nr.scores(f_eval), dtype=np.float64)
        classes = np.asarray(nr.classes_)
        cached = {
            "scores": scores,
            "stat": np.asarray(nr.rejection_stat(f_eval), dtype=np.float64),
            "pred": classes[scores.argmax(-1)],
            "base_pred": np.asarray(predict_logits(base.nr.apply_fn, variables, ev.x)).argmax(-1),
        }
        save_cached(path, nr_key, **cached)
    return NeuralRejectionScores(
        scores=cached["scores"],
        stat=cached["stat"],
        pred=cached["pred"],
        base_pred=cached["base_pred"],
        reused=reused,
    )


def sampling_options(config: RejectionConfig, model: TrainedModel) -> dict[str, Any]:
    """The sampler's speed options of ``config`` as ``sample_counts`` keywords.

    Raises:
      ValueError: ``linear_stem`` with a model that is not an M5 (an external one).
    """
    stem = None
    if config.linear_stem:
        if not isinstance(model.model, models.M5):
            raise ValueError(
                "linear_stem: expected an M5 base model (its first layer is linear), got "
                f"{type(model.model).__name__}"
            )
        stem = models.linear_stem_fn(model.model)  # pyright: ignore[reportArgumentType]
    return {
        "mode": config.sampling_mode,
        "prng_impl": config.prng_impl or None,
        "compute_dtype": config.compute_dtype or None,
        "linear_stem": stem,
    }


def _sampling_record(config: RejectionConfig) -> dict[str, Any]:
    """What of the sampling options changes the draws (part of every smoothing cache key)."""
    return {
        "mode": config.sampling_mode,
        "linear_stem": config.linear_stem,
        "prng_impl": config.prng_impl,
        "compute_dtype": config.compute_dtype,
    }


def sample_rs(
    base: BaseModels,
    ev: EvalSet,
    config: RejectionConfig,
    cache_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
) -> SmoothingSamples:
    """Randomized smoothing: class counts at every N from one noise stream, PREDICT p-values.

    ``max(num_samples)`` noisy copies per example (key ``fold_in(seed, 1)``, one
    stream per dataset index); the counts at each N are prefixes of it. Resumable
    batches of ``sample_batch_size`` examples, cached in ``counts-<key>.npz``.
    """
    rs_key = _rs_cache_key(base.rs_key, ev, config, num_samples=config.num_samples)
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    model = base.rs
    options = sampling_options(config, model)

    mesh = (runtime if runtime is not None else Runtime.create()).mesh

    def sample(rows: np.ndarray) -> dict[str, np.ndarray]:
        c = parallel.sample_counts(
            model.apply_fn,
            model.variables,
            np.asarray(ev.x[rows], np.float32),
            key,
            mesh=mesh,
            num_samples=max(config.num_samples),
            sigma=config.sigma,
            num_classes=ev.num_classes,
            noise=config.noise,
            chunk_size=config.chunk_size,
            checkpoints=config.num_samples,
            indices=np.asarray(ev.index[rows], np.int32),
            **options,
        )
        return {"counts": np.swapaxes(np.asarray(c), 0, 1)}  # [b, k, C]

    sampled, reused = cached_batches(
        Path(cache_dir) / f"counts-{rs_key}.npz", rs_key, len(ev.index),
        config.sample_batch_size, sample, resume=resume, progress=progress, desc="RS sampling",
    )  # fmt: skip
    counts = np.swapaxes(sampled["counts"], 0, 1)  # [k, n, C]
    top, pvalues = smoothing.predict_pvalues(counts)
    base_pred = np.asarray(predict_logits(model.apply_fn, model.variables, ev.x)).argmax(-1)
    return SmoothingSamples(counts, np.asarray(top), np.asarray(pvalues), base_pred, reused)


def _rs_cache_key(model_key: str, ev: EvalSet, config: RejectionConfig, **draws: Any) -> str:
    """Hash of what smoothing draws depend on: the smoothed model, noise, sigma, seed,
    clips, and ``draws`` (the sample sizes / CERTIFY settings)."""
    return _io.stable_hash(
        {
            "model": model_key,
            "noise": config.noise,
            "sigma": config.sigma,
            **draws,
            **(
                {"sampling": _sampling_record(config)}
                if config.sampling_mode != "independent" or config.prng_impl or config.compute_dtype
                else {}
            ),
            "seed": config.seed,
            "eval": ev.index,
        }
    )


def _certify_draws(config: RejectionConfig, norm: str) -> dict[str, Any]:
    """The CERTIFY settings every certification cache key holds."""
    draws = {
        "n0": config.certify_n0,
        "n": config.certify_n,
        "alpha": config.certify_alpha,
        "sigmas": config.sigmas,
        "norm": norm,
        "adaptive": config.certify_adaptive,
    }
    if config.certify_adaptive:
        draws["target_radius"] = config.radii
    return draws


def certify_rs(
    base: BaseModels,
    ev: EvalSet,
    config: RejectionConfig,
    cache_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
) -> list[Certification]:
    """CERTIFY (Cohen et al. 2019) every evaluated example with the RS base model.

    ``certify_n0`` selection and ``certify_n`` estimation draws at level
    ``certify_alpha`` (key ``fold_in(seed, 2)``) at every sigma of
    ``config.sigmas`` in one batched sweep (the sigmas share the draws); the
    certificate of ``config.noise`` in ``certify_norm``; with ``certify_adaptive``
    the estimation draws come in rounds (``smoothing.adaptive_certify``). Resumable
    batches cached in ``certify-<key>.npz``.

    Returns:
      One :class:`Certification` per sigma, in the order of ``config.sigmas``.
    """
    norm = smoothing.noise_certificate(config.noise, config.certify_norm or None).norm
    c_key = _rs_cache_key(base.rs_key, ev, config, **_certify_draws(config, norm))
    model = base.rs
    mesh = (runtime if runtime is not None else Runtime.create()).mesh
    run_certify = certify_batches(
        model.apply_fn, model.variables, ev, config,
        sampler=functools.partial(parallel.sample_counts, mesh=mesh),
        **sampling_options(config, model),
    )  # fmt: skip
    cert, reused = cached_batches(
        Path(cache_dir) / f"certify-{c_key}.npz", c_key, len(ev.index),
        config.sample_batch_size, run_certify, resume=resume, progress=progress, desc="CERTIFY",
    )  # fmt: skip
    label = base.labels(config.sigma)[1].removesuffix(" (RS base)")
    return per_sigma(cert, reused, config.sigmas, norm=norm, space="waveform", model=label)


def per_sigma(
    cert: Mapping[str, np.ndarray],
    reused: bool,
    sigmas: tuple[float, ...],
    *,
    norm: str,
    space: str,
    model: str,
) -> list[Certification]:
    """One :class:`Certification` per sigma of the ``[n, S]`` arrays of :func:`certify_batches`."""
    return [
        Certification(
            cert["pred"][:, i],
            cert["radius"][:, i],
            cert["p_a_lower"][:, i],
            reused,
            sigma=s,
            norm=norm,
            space=space,
            model=model,
            draws=cert["draws"][:, i],
        )
        for i, s in enumerate(sigmas)
    ]


#: The per-example CERTIFY outputs the study keeps (``draws``: estimation draws used).
_CERTIFY_FIELDS = ("pred", "radius", "p_a_lower", "draws")


def certify_batches(
    apply_fn: Any,
    variables: Any,
    ev: EvalSet,
    config: RejectionConfig,
    *,
    inputs: np.ndarray | None = None,
    **options: Any,
) -> Any:
    """The per-batch CERTIFY of the study: ``rows -> {pred, radius, p_a_lower, draws}``,
    each ``[b, S]`` over ``config.sigmas`` (inputs default to the waveforms ``ev.x``)."""
    key = jax.random.fold_in(jax.random.key(config.seed), 2)
    x_all = ev.x if inputs is None else inputs
    kw: dict[str, Any] = dict(
        n0=config.certify_n0, alpha=config.certify_alpha, sigma=np.asarray(config.sigmas),
        num_classes=ev.num_classes, noise=config.noise, norm=config.certify_norm or None,
        chunk_size=config.chunk_size, **options,
    )  # fmt: skip

    def run(rows: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(x_all[rows], np.float32)
        idx = np.asarray(ev.index[rows], np.int32)
        if config.certify_adaptive:  # one sigma at a time: settled on the radius grid
            parts = [
                smoothing.adaptive_certify(
                    apply_fn,
                    variables,
                    x,
                    key,
                    n=config.certify_n,
                    indices=idx,
                    target_radius=config.radii,
                    **{**kw, "sigma": s},
                )
                for s in config.sigmas
            ]
            out = {f: np.stack([getattr(p, f) for p in parts]) for f in _CERTIFY_FIELDS}
        else:
            r = smoothing.certify(
                apply_fn, variables, x, key, n=config.certify_n, indices=idx, **kw
            )
            out = {f: getattr(r, f) for f in _CERTIFY_FIELDS[:-1]}
            out["draws"] = np.full(r.pred.shape, config.certify_n)
        return {name: np.moveaxis(np.asarray(v), 0, -1) for name, v in out.items()}  # [S,b]->[b,S]

    return run


def representation_train_config(config: RejectionConfig, space: str) -> TrainConfig:
    """Training config of the classifier of representation ``space`` (``spec-<space>``):
    the NR base model's settings (no noise augmentation: the audio-certification paper
    found noise-augmented training gave worse certificates at the representation), seed
    ``seed + 2``."""
    nr, _ = train_configs(config)
    return dataclasses.replace(nr, model=f"spec-{space}", seed=config.seed + 2)


def certify_representations(
    dataset: AudioDataset,
    ev: EvalSet,
    config: RejectionConfig,
    models_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
) -> list[Certification]:
    """Representation-domain smoothing (O'Reilly, "Towards certified adversarial
    robustness for audio classification"): train a classifier of each of
    ``config.representations`` (``models/rejection-repr-<space>-<key>``), then CERTIFY
    it at every sigma of ``config.sigmas`` with the noise added to the representation
    ``z`` (``models.representation_fn``: radii in ``z``'s units), to the waveform, or
    both (``representation_smoothing``). Same keys, draws and alpha as :func:`certify_rs`.

    Returns:
      One :class:`Certification` per (representation, space smoothed, sigma).
    """
    if not config.representations:
        return []
    rt = runtime if runtime is not None else Runtime.create()
    norm = smoothing.noise_certificate(config.noise, config.certify_norm or None).norm
    cfgs = [representation_train_config(config, s) for s in config.representations]
    fp = dataset.fingerprint()
    keys = [base_model_key(fp, c) for c in cfgs]
    trained = train_models(
        dataset,
        cfgs,
        [
            base_model_dir(models_dir, f"repr-{s}", k)
            for s, k in zip(config.representations, keys, strict=True)
        ],
        resume=resume,
        progress=progress,
        runtime=rt,
    )
    where = {"representation": ("rep",), "waveform": ("waveform",), "both": ("waveform", "rep")}
    sampler = functools.partial(parallel.sample_counts, mesh=rt.mesh)
    options = sampling_options(config.replace(linear_stem=False), trained[0])
    out: list[Certification] = []
    for space, key, tm in zip(config.representations, keys, trained, strict=True):
        eval_model = rt.eval_model(tm.model)
        for target in where[config.representation_smoothing]:
            inputs, apply_fn, smoothed = None, tm.apply_fn, "waveform"
            if target == "rep":
                to_z = jax.jit(models.representation_fn(eval_model))
                inputs = np.concatenate(
                    [
                        np.asarray(to_z(tm.variables, ev.x[i : i + 64]))
                        for i in range(0, len(ev.x), 64)
                    ]
                )
                apply_fn, smoothed = models.representation_logits_fn(eval_model), space
            c_key = _rs_cache_key(key, ev, config, space=smoothed, **_certify_draws(config, norm))
            run = certify_batches(
                apply_fn, tm.variables, ev, config, inputs=inputs, sampler=sampler, **options
            )
            cert, reused = cached_batches(
                Path(cache_dir) / f"certify-{smoothed}-{c_key}.npz", c_key, len(ev.index),
                config.sample_batch_size, run, resume=resume, progress=progress,
                desc=f"CERTIFY {space} ({smoothed})",
            )  # fmt: skip
            out += per_sigma(
                cert, reused, config.sigmas, norm=norm, space=smoothed, model=f"SpecCNN {space}"
            )
    return out
