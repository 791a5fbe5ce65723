"""The rejection equality study: randomized smoothing (RS) vs neural rejection (NR).

This is the second case study of "Measuring Equality in Machine Learning
Security Defenses" (AISec'23, sections 3.2, 4.3 and 5.2; the preprint's Table 1).
Both defenses may *reject* (abstain on) an input; on clean data every rejection
is a false rejection, and the study asks whether some demographic groups are
falsely rejected more often than others:

* **RS** (Cohen et al., 2019): an M5 trained with Gaussian noise (sigma = 0.1)
  and selected on equally noisy validation data; for each clean test clip, class
  counts over N noisy copies (N in {10, 100, 1000, 10000}, prefixes of one
  sample stream); PREDICT abstains iff the two-sided binomial p-value of the
  top-two counts exceeds alpha.
* **NR** (Sotgiu et al., 2020): an RBF-SVM on the penultimate features of a
  clean-trained M5; reject iff the top SVM score is below t.

For each method and group ``s`` the false-rejection rate is swept over the
threshold grid ``[alpha_min, alpha_max]`` (step 1e-3 in the paper) and
summarised by

    AUC_FPR(s) = integral_{alpha_min}^{alpha_max} |f*(X_s, alpha) = -1| / |X_s| d alpha  (Eq. 3)
    FPR Parity = max_{s_i, s_j} AUC_FPR(s_i) - AUC_FPR(s_j)                      (Eq. 4)

(lower FPR Parity = more equal), plus the Pearson correlation between a group's
training-set size and its AUC_FPR (section 5.2) and Cohen et al.'s certified
accuracy per group.

Usage::

    from fairrobust.data import load_bundled
    from fairrobust.studies import config, rejection
    res = rejection.run_study(load_bundled(), config.preset("rejection", "quick"), "runs/rej")
    print(res.tables["auc_fpr"])          # the Table-1 layout

Result files (``<out>/results/``, every table also as ``.json``; :data:`RESULT_FILES`;
columns in the ``rejection_tables`` builders): ``rejection_auc_fpr.csv`` (Table 1
layout), ``rejection_auc_fpr_long.csv`` (per method and group, with intervals),
``rejection_fpr_parity.csv``, ``rejection_common_range.csv`` (smallest alpha RS
answers per N; AUC_FPR / FPR Parity over the range every method answers),
``rejection_correlation.csv`` (training-set size vs AUC_FPR),
``rejection_accuracy.csv`` (accuracy and abstention per model and group),
``rejection_certified_accuracy.csv`` and ``rejection_certify_per_example.csv``,
``rejection_certified_parity.csv`` (per attribute and group: normalised area under
the certified-accuracy curve over ``config.certified_range``, median certified
radius, and the attribute's Certified Parity, with intervals;
``rejection_certified``),
``rejection_fairness.csv`` (demographic parity difference / ratio, equalized
odds difference and p-rule per attribute, base models and each method with
rejection; ``studies.fairness``), ``rejection_fpr_curves.csv`` (CSV only),
``rejection_per_example.npz`` (p-values, counts, NR scores, labels, attributes: every
metric can be recomputed with ``rejection_tables.analyze``), ``rejection_attributes.json``, and
``rejection_config.json``, ``rejection_groups.json``, ``rejection_summary.json``
(each with the dataset, data fingerprint, config hash and library version);
``rejection_provenance.json``, written last, holds the environment, training configs
and the SHA-256 of every ``rejection_*`` results file of the run
(``fairrobust.studies.verify_provenance`` checks them).

Figures (``<out>/figures/``): ``rejection_fpr_curves_<attr>.png``,
``rejection_auc_fpr_<attr>.png``, ``rejection_fpr_parity_vs_n.png``,
``rejection_certified_accuracy_<attr>.png``.

The study has three layers. :mod:`fairrobust.studies.rejection_tables`
(``analyze`` and the ``*_table`` builders) works on plain arrays (per-example
p-values and NR scores, group masks) and is what the tests check against closed
forms; :mod:`fairrobust.studies.rejection_figures` draws the figures; this
module runs the pipeline as stages with typed outputs -- :func:`load_eval_set`
(:class:`EvalSet`), :func:`train_base_models` (:class:`BaseModels`),
:func:`score_nr` (:class:`NeuralRejectionScores`), :func:`sample_rs`
(:class:`SmoothingSamples`), :func:`certify_rs` (:class:`Certification`),
`analyse` (tables) and :func:`write_results` (every file in
``RESULT_FILES``) -- which :func:`run_study` composes. The stages up to CERTIFY live
in :mod:`fairrobust.studies.rejection_stages` (re-exported here).

Models trained elsewhere: ``run_study(..., nr_model=..., rs_model=...)`` uses
:class:`fairrobust.studies.external.ExternalModel` base models instead of training
them (the NR model needs a ``features_fn``; ``--nr-model`` / ``--rs-model`` on the
command line).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fairrobust import _io, metrics, smoothing
from fairrobust.data import AudioDataset
from fairrobust.engine.runtime import Runtime
from fairrobust.studies._store import (
    attribute_slug,
    library_version,
    logger,
    write_provenance,
    write_table,
)
from fairrobust.studies.attributes import write_attribute_status
from fairrobust.studies.config import RejectionConfig
from fairrobust.studies.external import ExternalModel, check_models
from fairrobust.studies.fairness import rejection_fairness
from fairrobust.studies.rejection_accuracy import accuracy_table, certified_accuracy_table
from fairrobust.studies.rejection_answerability import answerable_summary, common_range_table
from fairrobust.studies.rejection_certified import certified_parity_rows, certified_range
from fairrobust.studies.rejection_comparisons import rejection_comparisons
from fairrobust.studies.rejection_figures import write_figures
from fairrobust.studies.rejection_stages import (
    BaseModels,
    Certification,
    EvalSet,
    NeuralRejectionScores,
    SmoothingSamples,
    base_model_dir,
    base_model_key,
    certify_representations,
    certify_rs,
    load_eval_set,
    sample_rs,
    score_nr,
    select_eval,
    train_base_models,
    train_configs,
)
from fairrobust.studies.rejection_tables import (
    RejectionAnalysis,
    analyze,
    auc_fpr_long_table,
    auc_fpr_table,
    certify_table,
    correlation_table,
    finite_or_none,
    fpr_curve_table,
    fpr_parity_table,
    write_csv,
)
from fairrobust.train import TrainConfig

__all__ = [
    "RESULT_FILES",
    "BaseModels",
    "Certification",
    "EvalSet",
    "NeuralRejectionScores",
    "RejectionResults",
    "SmoothingSamples",
    "analyse",
    "base_model_dir",
    "base_model_key",
    "certification_columns",
    "certify_rs",
    "load_eval_set",
    "run_study",
    "sample_rs",
    "score_nr",
    "select_eval",
    "threshold_grid",
    "train_base_models",
    "train_configs",
    "write_results",
]

# ----------------------------------------------------------------------------- config


def threshold_grid(config: RejectionConfig) -> np.ndarray:
    """The alpha / t grid ``[alpha_min, alpha_max]`` with step ``alpha_step``, float64 ``[a]``."""
    return np.asarray(
        metrics.alpha_grid(config.alpha_min, config.alpha_max, config.alpha_step), dtype=np.float64
    )


# ----------------------------------------------------------------------------- records


#: Result files written by :func:`run_study` under ``<out>/results/`` (figures under
#: ``<out>/figures/``); keys are those of ``RejectionResults.files``.
RESULT_FILES: dict[str, str] = {
    "config": "rejection_config.json",
    "summary": "rejection_summary.json",
    "provenance": "rejection_provenance.json",
    "accuracy": "rejection_accuracy.csv",
    "auc_fpr": "rejection_auc_fpr.csv",
    "auc_fpr_long": "rejection_auc_fpr_long.csv",
    "fpr_parity": "rejection_fpr_parity.csv",
    "common_range": "rejection_common_range.csv",
    "correlation": "rejection_correlation.csv",
    "comparisons": "rejection_comparisons.csv",
    "fpr_curves": "rejection_fpr_curves.csv",
    "groups": "rejection_groups.json",
    "per_example": "rejection_per_example.npz",
    "certified_accuracy": "rejection_certified_accuracy.csv",
    "certify_per_example": "rejection_certify_per_example.csv",
    "certified_parity": "rejection_certified_parity.csv",
    "fairness": "rejection_fairness.csv",
}


@dataclasses.dataclass(frozen=True)
class RejectionResults:
    """What :func:`run_study` returns: plain tables, file paths and a few scalars.

    Attributes:
      config: the study config.
      out_dir: the run folder.
      tables: name -> list of row dicts (same content as the CSV of that name in
        ``RESULT_FILES``): ``accuracy``, ``auc_fpr`` (Table 1 layout),
        ``auc_fpr_long``, ``fpr_parity``, ``correlation``, ``certified_accuracy``,
        ``certified_parity`` (both empty when certification is off).
      files: name -> path of every result file and figure (``fig_*`` keys).
      summary: headline numbers (also in ``rejection_summary.json``).
      timings: seconds per stage (not written to result files, which stay
        byte-identical across reruns).
      reused: stages loaded from a matching cache instead of recomputed.
      eval_index: dataset indices of the evaluated examples.
      model_dirs: ``"nr"`` / ``"rs"`` -> the base model's folder (trained models only).
      train_configs: ``"nr"`` / ``"rs"`` -> the base model's ``TrainConfig`` (trained
        models only).
    """

    config: RejectionConfig
    out_dir: Path
    tables: dict[str, list[dict[str, Any]]]
    files: dict[str, Path]
    summary: dict[str, Any]
    timings: dict[str, float]
    reused: tuple[str, ...]
    eval_index: np.ndarray
    model_dirs: Mapping[str, Path]
    train_configs: Mapping[str, TrainConfig]


def analyse(
    ev: EvalSet,
    nr: NeuralRejectionScores,
    rs: SmoothingSamples,
    cert: Sequence[Certification],
    config: RejectionConfig,
    *,
    labels: tuple[str, str] | None = None,
) -> tuple[RejectionAnalysis, dict[str, list[dict[str, Any]]]]:
    """Group reductions (``rejection_tables.analyze``) and every table of the study.

    Bootstrap keys: ``fold_in(seed, 3)`` for the rejection intervals, 4 for the
    accuracy table, 5 for certified accuracy, 6 for Certified Parity, 7 for the
    fairness metrics (``studies.fairness.rejection_fairness``). ``labels``: the
    accuracy table's rows of the NR and RS base models (default the trained M5s',
    ``BaseModels.labels``).

    Returns:
      ``(analysis, tables)``; tables ``accuracy``, ``auc_fpr``, ``auc_fpr_long``,
      ``fpr_parity``, ``correlation``, ``certified_accuracy``, ``certified_parity``
      (both empty without CERTIFY), ``fairness`` (``studies.fairness``).
    """
    base_key = jax.random.key(config.seed)
    boot = {
        "bootstrap_resamples": config.bootstrap_resamples,
        "ci_level": config.ci_level,
        "speakers": ev.speakers,
    }
    analysis = analyze(
        rs.pvalues, nr.stat, threshold_grid(config), ev.groups,
        num_samples=config.num_samples, train_sizes=ev.train_sizes,
        key=jax.random.fold_in(base_key, 3), min_speakers=config.min_speakers, **boot,
    )  # fmt: skip
    y = ev.y
    boot_kw = {}
    if config.bootstrap_resamples:
        boot_kw = {"num_resamples": config.bootstrap_resamples, "level": config.ci_level,
                   "speakers": ev.speakers, "min_clusters": config.min_speakers,
                   "batch_size": min(config.bootstrap_resamples, 50)}  # fmt: skip
    nr_label, rs_label = labels or (
        "M5 clean (NR base)", f"M5 sigma={config.sigma:g} (RS base)"
    )  # fmt: skip
    models = [
        (nr_label, nr.base_pred == y, None),
        ("NR (SVM)", nr.pred == y, None),
        (rs_label, rs.base_pred == y, None),
    ]
    for i, n in enumerate(config.num_samples):
        abstain = rs.pvalues[i] > config.certify_alpha
        label = f"RS N={n} alpha={config.certify_alpha:g}"
        models.append((label, (~abstain) & (rs.top[i] == y), abstain))
    tables: dict[str, list[dict[str, Any]]] = {
        "accuracy": accuracy_table(models, ev.groups, key=jax.random.fold_in(base_key, 4), **boot),
        "auc_fpr": auc_fpr_table(analysis),
        "auc_fpr_long": auc_fpr_long_table(analysis),
        "fpr_parity": fpr_parity_table(analysis),
        "comparisons": rejection_comparisons(analysis, config.ci_level),
        "common_range": common_range_table(analysis),
        "correlation": correlation_table(analysis),
        "certified_accuracy": [],
        "certified_parity": [],
        "fairness": rejection_fairness(
            y,
            nr.base_pred,
            nr.pred,
            nr.stat,
            rs.base_pred,
            rs.top,
            rs.pvalues,
            config.num_samples,
            threshold_grid(config),
            ev.groups,
            ev.num_classes,
            labels=(nr_label, rs_label),
            speakers=ev.speakers,
            bootstrap={**boot_kw, "key": jax.random.fold_in(base_key, 7)} if boot_kw else None,
        ),
    }
    rng = certified_range(config.certified_range, config.radii)
    for i, c in enumerate(cert):
        key = jax.random.fold_in(base_key, 5)
        rows = certified_accuracy_table(
            c.pred, c.radius, y, config.radii, ev.groups,
            key=key if i == 0 else jax.random.fold_in(key, i), **boot,
        )  # fmt: skip
        tables["certified_accuracy"] += [{**certification_columns(c), **r} for r in rows]
        if rng is not None:
            tables["certified_parity"] += [
                {**certification_columns(c), **r}
                for r in certified_parity_rows(
                    c.pred, c.radius, y, ev.groups, r_lo=rng[0], r_hi=rng[1],
                    key=jax.random.fold_in(jax.random.fold_in(base_key, 6), i),
                    min_speakers=config.min_speakers, **boot,
                )
            ]  # fmt: skip
    return analysis, tables


def certification_columns(c: Certification) -> dict[str, Any]:
    """The columns naming one certification in every certification table: the smoothed
    model, the space the noise is added in, the certificate's norm and sigma."""
    return {"model": c.model, "space": c.space, "norm": c.norm, "sigma": float(c.sigma)}


def _summary(
    provenance: Mapping[str, Any],
    config: RejectionConfig,
    ev: EvalSet,
    nr: NeuralRejectionScores,
    rs: SmoothingSamples,
    cert: Sequence[Certification],
    analysis: RejectionAnalysis,
) -> dict[str, Any]:
    """The ``rejection_summary.json`` record: headline numbers of the run."""
    y = ev.y
    return {
        **provenance,
        "config": _io.to_jsonable(config),
        "num_eval": len(ev.index),
        "num_classes": ev.num_classes,
        "methods": list(analysis.methods),
        "nr_accuracy": float(np.mean(nr.pred == y)),
        "nr_base_accuracy": float(np.mean(nr.base_pred == y)),
        "rs_base_accuracy": float(np.mean(rs.base_pred == y)),
        "overall_auc_fpr": {
            m: finite_or_none(v)
            for m, v in zip(analysis.methods, analysis.overall_auc, strict=True)
        },
        "fpr_parity": {
            a.attribute: {
                m: finite_or_none(v) for m, v in zip(analysis.methods, a.parity, strict=True)
            }
            for a in analysis.attributes.values()
        },
        "small_groups": {name: list(g.small) for name, g in ev.groups.items()},
        "few_speaker_groups": {name: list(g.few_speakers) for name, g in ev.groups.items()},
        "rs_answerable": answerable_summary(analysis),
        "threshold_grid": [config.alpha_min, config.alpha_max, config.alpha_step],
        "certify": None
        if not cert
        else {
            "n0": config.certify_n0,
            "n": config.certify_n,
            "alpha": config.certify_alpha,
            "sigma": cert[0].sigma,
            "norm": cert[0].norm,
            "abstain_rate": float(np.mean(cert[0].pred < 0)),
            "accuracy": float(np.mean(cert[0].pred == y)),
            "adaptive": config.certify_adaptive,
            "certifications": [
                {
                    **certification_columns(c),
                    "abstain_rate": float(np.mean(c.pred < 0)),
                    "accuracy": float(np.mean(c.pred == y)),
                    "mean_draws": None if c.draws is None else float(np.mean(c.draws)),
                }
                for c in cert
            ],
            "space": cert[0].space,
            "certified_range": certified_range(config.certified_range, config.radii),
        },
    }


def _write_per_example(
    path: Path,
    config: RejectionConfig,
    ev: EvalSet,
    nr: NeuralRejectionScores,
    rs: SmoothingSamples,
    thresholds: np.ndarray,
) -> None:
    """``rejection_per_example.npz``: every per-example value the metrics derive from."""
    attr_arrays = {f"attr_{attribute_slug(k)}": v.astype(str) for k, v in ev.attributes.items()}
    _io.atomic_write_npz(
        path,
        index=ev.index,
        labels=ev.y,
        num_samples=np.asarray(config.num_samples),
        thresholds=thresholds,
        pvalues=rs.pvalues,
        rs_top=rs.top,
        counts=rs.counts,
        nr_scores=nr.scores,
        nr_stat=nr.stat,
        nr_pred=nr.pred,
        rs_base_pred=rs.base_pred,
        nr_base_pred=nr.base_pred,
        paths=ev.paths.astype(str),
        **attr_arrays,
    )


def _write_certification(
    results_dir: Path, ev: EvalSet, cert: Sequence[Certification], tables: Mapping[str, Any]
) -> dict[str, Path]:
    """Certified-accuracy tables and the per-example CERTIFY CSV (removed without CERTIFY)."""
    table = results_dir / RESULT_FILES["certified_accuracy"]
    per_example = results_dir / RESULT_FILES["certify_per_example"]
    parity = results_dir / RESULT_FILES["certified_parity"]
    if not cert:  # never leave certification files of an earlier config behind
        for path in (table, per_example, table.with_suffix(".json"), parity,
                     parity.with_suffix(".json")):  # fmt: skip
            _io.remove(path)
        return {}
    _, json_path = write_table(table.with_suffix(""), tables["certified_accuracy"])
    _, parity_json = write_table(parity.with_suffix(""), tables["certified_parity"])
    rows = []
    for c in cert:
        part = certify_table(
            index=ev.index,
            paths=ev.paths,
            labels=ev.y,
            pred=c.pred,
            radius=c.radius,
            p_a_lower=c.p_a_lower,
            attributes=ev.attributes,
        )
        draws = np.full(len(ev.index), -1) if c.draws is None else c.draws
        cols = certification_columns(c)
        rows += [{**r, **cols, "draws": int(d)} for r, d in zip(part, draws, strict=True)]
    write_csv(per_example, rows)
    return {
        "certified_accuracy": table,
        "certified_accuracy_json": json_path,
        "certify_per_example": per_example,
        "certified_parity": parity,
        "certified_parity_json": parity_json,
    }


def write_results(
    out_dir: str | os.PathLike[str],
    config: RejectionConfig,
    ev: EvalSet,
    base: BaseModels,
    nr: NeuralRejectionScores,
    rs: SmoothingSamples,
    cert: Sequence[Certification],
    analysis: RejectionAnalysis,
    tables: Mapping[str, list[dict[str, Any]]],
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write every results file (``RESULT_FILES``) and figure; the provenance sidecar last.

    Returns:
      ``(files, summary)``: name -> path of every file and figure (``fig_*``), and
      the ``rejection_summary.json`` record.
    """
    out = Path(out_dir)
    results_dir, fig_dir = out / "results", out / "figures"
    files = {"config": results_dir / RESULT_FILES["config"]}
    config_hash = _io.stable_hash(config)
    provenance = {
        "study": "rejection",
        "dataset": ev.dataset,
        "data_fingerprint": ev.data_fingerprint,
        "config_hash": config_hash,
        "library_version": library_version(),
    }
    trained = base.sources()
    _io.atomic_write_json(files["config"], {**provenance, "config": config, **trained})
    for name in ("accuracy", "auc_fpr", "auc_fpr_long", "fpr_parity", "common_range",
                 "correlation", "comparisons", "fairness"):  # fmt: skip
        files[name] = results_dir / RESULT_FILES[name]
        _, files[f"{name}_json"] = write_table(files[name].with_suffix(""), tables[name])
    files["fpr_curves"] = write_csv(
        results_dir / RESULT_FILES["fpr_curves"], fpr_curve_table(analysis)
    )
    files["groups"] = _io.atomic_write_json(
        results_dir / RESULT_FILES["groups"], {n: g.to_dict() for n, g in ev.groups.items()}
    )
    files["attributes"] = write_attribute_status(results_dir, "rejection", ev.attribute_status)
    files["per_example"] = results_dir / RESULT_FILES["per_example"]
    _write_per_example(files["per_example"], config, ev, nr, rs, analysis.thresholds)
    files.update(_write_certification(results_dir, ev, cert, tables))
    primary = certification_columns(cert[0]) if cert else {}
    certified = [  # the figures show the first certification (the RS base model at sigma)
        r for r in tables["certified_accuracy"] if all(r[k] == v for k, v in primary.items())
    ]
    figures = write_figures(
        analysis, fig_dir, certified=certified, radii=config.radii,
        min_group_size=config.min_group_size,
    )  # fmt: skip
    for stale in set(fig_dir.glob("rejection_*.png")) - set(figures.values()):
        _io.remove(stale)
    files.update(figures)
    summary = _summary(provenance, config, ev, nr, rs, cert, analysis)
    files["summary"] = _io.atomic_write_json(results_dir / RESULT_FILES["summary"], summary)
    # Written last: vouches for the bytes of every rejection_* results file of this run.
    files["provenance"] = write_provenance(
        results_dir,
        "rejection",
        study="rejection",
        dataset=ev.dataset,
        data_fingerprint=ev.data_fingerprint,
        config=config,
        config_hash=config_hash,
        extra=trained,
    )
    return files, summary


def run_study(
    dataset: AudioDataset,
    config: RejectionConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    runtime: Runtime | None = None,
    nr_model: ExternalModel | None = None,
    rs_model: ExternalModel | None = None,
) -> RejectionResults:
    """Run the rejection study on ``dataset`` and write results and figures under ``out_dir``.

    Stages (each cached under ``out_dir`` by the hash of everything it depends on,
    so a rerun reuses trained models, NR scores, noise counts and CERTIFY results
    whose inputs did not change, and a changed setting recomputes only what
    depends on it):

    1. :func:`train_base_models`: the clean M5 (NR base) and the Gaussian-noise M5
       (RS base, selected on noisy validation data) on the training split;
    2. :func:`score_nr`: RBF-SVM on training penultimate features (seeded
       subsample), top score of every evaluated example;
    3. :func:`sample_rs`: class counts over ``max(num_samples)`` noise draws,
       counts at every N from prefixes of the same stream, PREDICT p-values;
    4. :func:`certify_rs` (if ``config.certify``) with ``certify_n0`` / ``certify_n`` draws;
    5. :func:`analyse` (group reductions, tables) and :func:`write_results`
       (files, figures).

    Args:
      dataset: a ``fairrobust.data.AudioDataset`` with train / val / test splits.
      config: the study settings.
      out_dir: run folder; results go to ``results/``, figures to ``figures/``,
        models to ``models/`` and caches to ``cache/rejection/``.
      resume: reuse matching cached models / samples (False recomputes everything).
      progress: show progress bars.
      runtime: devices and processes (``fairrobust.engine.Runtime``; default all
        devices of this process); sampling is split over its devices.
      nr_model: an external NR base model (with ``features_fn``) instead of the clean M5.
      rs_model: an external RS base model instead of the Gaussian-noise M5 (ideally
        trained with noise of std ``config.sigma``).

    Returns:
      A :class:`RejectionResults`.

    Raises:
      ValueError: unknown noise family, invalid data, an external model without
        ``features_fn`` (NR) or whose logits are not ``[b, num_classes]``.
    """
    if config.noise not in smoothing.available_noises():
        raise ValueError(
            f"noise: unknown noise family {config.noise!r}; registered: "
            f"{list(smoothing.available_noises())}"
        )
    _check_external(dataset, config, nr_model, rs_model)
    if config.certify:  # a family without a certificate (in certify_norm) fails here, first
        smoothing.noise_certificate(config.noise, config.certify_norm or None)
    out = Path(out_dir)
    cache = out / "cache" / "rejection"
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    ev = load_eval_set(dataset, config)
    t0 = time.perf_counter()
    rt = runtime if runtime is not None else Runtime.create()
    base = train_base_models(
        dataset, config, out / "models", resume=resume, progress=progress, runtime=rt,
        nr_model=nr_model, rs_model=rs_model,
    )  # fmt: skip
    timings["train"], t0 = time.perf_counter() - t0, time.perf_counter()
    nr = score_nr(dataset, base, ev, config, cache, resume=resume)
    timings["nr"], t0 = time.perf_counter() - t0, time.perf_counter()
    rs = sample_rs(base, ev, config, cache, resume=resume, progress=progress, runtime=rt)
    timings["rs_sampling"], t0 = time.perf_counter() - t0, time.perf_counter()
    cert: list[Certification] = []
    if config.certify:
        cert = certify_rs(base, ev, config, cache, resume=resume, progress=progress, runtime=rt)
        cert += certify_representations(
            dataset, ev, config, out / "models", cache, resume=resume, progress=progress,
            runtime=rt,
        )  # fmt: skip
        timings["certify"], t0 = time.perf_counter() - t0, time.perf_counter()
    analysis, tables = analyse(ev, nr, rs, cert, config, labels=base.labels(config.sigma))
    files, summary = write_results(out, config, ev, base, nr, rs, cert, analysis, tables)
    timings["analysis"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    stages = (("nr", nr), ("rs_counts", rs), ("certify", cert[0] if cert else None))
    return RejectionResults(
        config=config,
        out_dir=out,
        tables=tables,
        files=files,
        summary=summary,
        timings=timings,
        reused=tuple(name for name, stage in stages if stage is not None and stage.reused),
        eval_index=ev.index,
        model_dirs={
            kind: base_model_dir(out / "models", kind, key)
            for kind, key, cfg in (("nr", base.nr_key, base.nr_config),
                                   ("rs", base.rs_key, base.rs_config))
            if cfg is not None
        },
        train_configs={
            kind: cfg for kind, cfg in (("nr", base.nr_config), ("rs", base.rs_config)) if cfg
        },
    )  # fmt: skip


def _check_external(
    dataset: AudioDataset,
    config: RejectionConfig,
    nr_model: ExternalModel | None,
    rs_model: ExternalModel | None,
) -> None:
    """Check external base models on the data's shapes before anything is computed."""
    shape = (int(dataset.num_classes), int(np.shape(dataset.waveforms)[1]))
    if nr_model is not None:
        check_models([nr_model], *shape, name="nr_model", features=True)
    if rs_model is not None:
        check_models([rs_model], *shape, name="rs_model")
        if rs_model.noise_std != config.sigma:
            logger.warning(
                "rs_model %r: trained with noise std %g (as stated), smoothed with sigma %g; "
                "randomized smoothing works best with a base model trained at sigma",
                rs_model.name, rs_model.noise_std, config.sigma,
            )  # fmt: skip
