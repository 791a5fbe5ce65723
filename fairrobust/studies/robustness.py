"""The robustness-training equality study (AISec'23 sections 3.1, 4.2, 5.1, appendix B).

A grid of models -- architecture (M5, M5-Tricks) x PGD adversarial-training
budget x Gaussian noise-augmentation std, optionally x a preprocessing defense
``g`` composed in front of each model -- is trained (or checkpoints reused) and
attacked with L-inf PGD over an epsilon grid. From the per-example robust
correctness of every model the study derives, per attribute (and chosen
intersections):

* per group, AUC_acc(s) = integral over [eps_min, eps_max] of the accuracy of
  group s under attack (paper Eq. 1, trapezoid rule on the attack grid);
* Defense Parity = max over valid groups of AUC_acc - min over valid groups
  (the largest gap between two groups; higher = less equal);
* Pearson correlations across models between the interventions (binary: AT,
  Tricks, Noise, Preprocess applied; levels: AT budget, noise std) and Defense
  Parity / each group's AUC_acc (paper Figures 2-5), excluding models whose
  clean accuracy is indistinguishable from random guessing (one-sided binomial
  test against 1 / n_classes).

The pipeline is a chain of stages with typed inputs and outputs, so each can
later run batched or sharded: :func:`load_eval_set` -> :func:`plan_members`
(``list[MemberSpec]``, :mod:`fairrobust.studies.robustness_plan`) ->
:func:`load_members` (finished ones) ->
:func:`train_members` (``train_id -> TrainedModel``) -> :func:`evaluate_members`
(``member_id -> MemberResult``, correctness per member) ->
``robustness_tables.aggregate`` (tables) -> :func:`write_results`;
:func:`run_study` composes them. Tables live in
:mod:`fairrobust.studies.robustness_tables`, figures in
:mod:`fairrobust.studies.robustness_figures`.

Typical use::

    from fairrobust.data import load_bundled
    from fairrobust.studies import config, robustness
    cfg = config.preset("robustness", "quick")
    results = robustness.run_study(load_bundled(), cfg, "out/")
    results.tables["models"]          # the paper's Tables 1-2

Command line: ``fairrobust study robustness --preset quick --out out/``.

Models trained elsewhere: ``run_study(..., models=[ExternalModel, ...])``
(:mod:`fairrobust.studies.external`; ``--model SPEC`` on the command line) evaluates
them, each behind every preprocessing defense of the config, instead of training
the grid; their member files live in ``models/external-<name>-<fingerprint>/``.

Layout of ``out_dir``::

    models/<train_id>/                         training checkpoints (fairrobust.train)
    models/<train_id>/robustness-<pre>-<hash>.{npz,json}
                                               per-member correctness [1 + n_eps, n_test]
    results/robustness_<dataset>_<table>.{csv,json}
    results/robustness_<dataset>_summary.json  config, hashes, excluded models, groups
    results/robustness_<dataset>_provenance.json
                                               written last: dataset, data fingerprint,
                                               config + hash, library version, SHA-256
                                               of every results file above
    figures/robustness_<dataset>_*.png

Member files are keyed by a hash of everything they depend on (training
config, preprocessing, attack settings, test selection, data fingerprint), so
a changed setting recomputes exactly the affected members; results tables are
always recomputed from the member files and are byte-identical across reruns.
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

from fairrobust import _io
from fairrobust.data import AudioDataset
from fairrobust.defenses import Preprocess
from fairrobust.engine.runtime import Runtime
from fairrobust.groups import (
    AttributeStatus,
    Groups,
    all_groups,
    parse_intersections,
    with_speakers,
)
from fairrobust.studies._store import (
    TrainedModel,
    check_config_change,
    library_version,
    load_member,
    logger,
    save_member,
    seeded_subset,
    slugify,
    train_models,
    write_provenance,
    write_table,
)
from fairrobust.studies.attributes import study_attributes, write_attribute_status
from fairrobust.studies.config import RobustnessConfig
from fairrobust.studies.external import ExternalModel, check_models
from fairrobust.studies.fairness import robustness_fairness
from fairrobust.studies.robustness_attacks import attack_members, member_groups
from fairrobust.studies.robustness_bias import breaking_eps_figures, breaking_eps_table
from fairrobust.studies.robustness_figures import write_figures
from fairrobust.studies.robustness_plan import MemberSpec, plan_members
from fairrobust.studies.robustness_tables import (
    aggregate,
    bootstrap_options,
    clean_part,
    majority_rate,
)
from fairrobust.train import TrainConfig

__all__ = [
    "TEST_SUBSET_SALT",
    "EvalSet",
    "MemberResult",
    "MemberSpec",
    "RobustnessResults",
    "attack_member",
    "evaluate_members",
    "load_eval_set",
    "load_members",
    "plan_members",
    "resolve_groups",
    "run_study",
    "select_test",
    "train_members",
    "write_results",
]

# ============================================================================ records


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One evaluated member: its coordinates, correctness and where it is stored.

    Attributes:
      spec: the :class:`MemberSpec`.
      correct: bool ``[1 + n_eps, n_test]`` at ``spec.epsilons`` (clean first).
      pred: int32 ``[1 + n_eps, n_test]``: the predicted class of each clip at each
        epsilon (``correct = pred == y``; the fairness metrics' input).
      clean_accuracy: mean of the clean pass of ``correct``.
      preprocess_description: how the defense was attacked (BPDA or exact).
      reused: True when loaded from a previous run.
      json_path, npz_path: the member's files.
    """

    spec: MemberSpec
    correct: np.ndarray
    pred: np.ndarray
    clean_accuracy: float
    preprocess_description: str
    bpda: bool
    reused: bool
    json_path: Path
    npz_path: Path

    def record(self) -> dict[str, Any]:
        """The coordinate record ``aggregate`` and ``intervention_codes`` take."""
        s = self.spec
        return {
            "member_id": s.member_id,
            "train_id": s.train_id,
            "model": s.model,
            "at_eps": s.at_eps,
            "noise_std": s.noise_std,
            "preprocess": s.preprocess,
            "preprocess_description": self.preprocess_description,
            "bpda": self.bpda,
        }


@dataclasses.dataclass(frozen=True)
class RobustnessResults:
    """What :func:`run_study` returns (plain data for the report writer).

    Attributes:
      dataset: dataset name.
      config: the :class:`RobustnessConfig`.
      config_hash: ``config.hash()``.
      data_fingerprint: ``AudioDataset.fingerprint()``.
      attack_eps: the attack budgets (epsilon 0 = clean is column 0 of ``correct``).
      num_classes: number of classes.
      test_index: indices (into the dataset) of the evaluated test examples.
      members: one :class:`MemberResult` per grid member, in grid order.
      groups: attribute -> ``Groups.to_dict()`` (names, sizes, validity).
      tables: table name -> list of row dicts (same content as the files).
      excluded: member ids excluded as random guessing.
      files: ``"<table>_csv"``, ``"<table>_json"``, ``"summary"``, ``"config"``,
        ``"provenance"`` -> path.
      figures: figure name -> path.
      seconds: wall time of the call.
    """

    dataset: str
    config: RobustnessConfig
    config_hash: str
    data_fingerprint: str
    attack_eps: tuple[float, ...]
    num_classes: int
    test_index: np.ndarray
    members: tuple[MemberResult, ...]
    groups: Mapping[str, Any]
    tables: Mapping[str, list[dict[str, Any]]]
    excluded: tuple[str, ...]
    files: Mapping[str, Path]
    figures: Mapping[str, Path]
    seconds: float


@dataclasses.dataclass(frozen=True, eq=False)
class EvalSet:
    """The evaluated test examples of a study run and the data they come from.

    Attributes:
      dataset: dataset name.
      data_fingerprint: ``AudioDataset.fingerprint()``.
      sample_rate: Hz (``lowpass`` defenses need it).
      num_classes: number of classes.
      index: sorted dataset indices of the evaluated examples ``[n]``.
      x: float32 waveforms ``[n, T]``.
      y: int32 labels ``[n]``.
      speakers: speaker of each example ``[n]`` (bootstrap clusters).
      groups: attribute -> :class:`fairrobust.groups.Groups` over the ``n`` examples
        (usable attributes only).
      attribute_status: every requested attribute, usable or why not.
    """

    dataset: str
    data_fingerprint: str
    sample_rate: int
    num_classes: int
    index: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    groups: Mapping[str, Groups]
    attribute_status: tuple[AttributeStatus, ...] = ()


# ============================================================================ stages

#: Salt of the seeded test subset (``max_examples``).
TEST_SUBSET_SALT = 0x7E57


def select_test(dataset: AudioDataset, config: RobustnessConfig) -> np.ndarray:
    """Sorted indices of the evaluated test examples: all, or a seeded subset.

    ``seeded_subset(test indices, config.max_examples, config.seed,
    TEST_SUBSET_SALT)``.

    Raises:
      ValueError: the test split is empty.
    """
    idx = np.flatnonzero(np.asarray(dataset.splits) == "test")
    if idx.size == 0:
        raise ValueError(f"dataset {dataset.name!r}: the test split is empty")
    return seeded_subset(idx, config.max_examples, config.seed, TEST_SUBSET_SALT)


def resolve_groups(
    attributes: Mapping[str, np.ndarray], config: RobustnessConfig
) -> dict[str, Groups]:
    """Attribute names and intersections of the config, checked against the data."""
    names = list(config.attributes) or sorted(attributes)
    missing = [a for a in names if a not in attributes]
    if missing:
        raise ValueError(
            f"RobustnessConfig.attributes: {missing} not in the dataset; "
            f"available: {sorted(attributes)}"
        )
    inter = parse_intersections(config.intersections, names)
    return all_groups(attributes, names, inter, min_size=config.min_group_size)


def load_eval_set(dataset: AudioDataset, config: RobustnessConfig) -> EvalSet:
    """The :class:`EvalSet` of ``config`` (:func:`select_test`, :func:`resolve_groups`).

    Raises:
      ValueError: empty test split, unknown attribute, malformed intersection, no
        usable attribute (:func:`fairrobust.studies.attributes.study_attributes`).
    """
    index = select_test(dataset, config)
    test = dataset.select(index)
    groups = resolve_groups(test.attributes, config)  # checks the names first
    names = list(config.attributes) or sorted(test.attributes)
    inter = parse_intersections(config.intersections, names)
    # before any training: unusable attributes are left out, none usable fails here
    _, _, status = study_attributes(dataset, index, names, inter, min_clips=config.min_group_size)
    usable = {s.attribute for s in status if s.usable}
    speakers = np.asarray(dataset.speakers)[index]
    return EvalSet(
        dataset=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        sample_rate=int(dataset.sample_rate),
        num_classes=int(dataset.num_classes),
        index=index,
        x=np.asarray(test.waveforms, np.float32),
        y=np.asarray(test.labels, np.int32),
        speakers=speakers,
        groups={
            k: with_speakers(g, speakers, config.min_speakers)
            for k, g in groups.items()
            if k in usable
        },
        attribute_status=tuple(status),
    )


def _member_paths(spec: MemberSpec, models_dir: Path) -> tuple[Path, Path]:
    d = models_dir / spec.train_id
    return d / f"{spec.file_stem}.json", d / f"{spec.file_stem}.npz"


def _member_result(
    spec: MemberSpec,
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    models_dir: Path,
    reused: bool,
) -> MemberResult:
    correct = np.asarray(arrays["correct"], bool)
    json_path, npz_path = _member_paths(spec, models_dir)
    return MemberResult(
        spec=spec,
        correct=correct,
        pred=np.asarray(arrays["pred"], np.int32),
        clean_accuracy=float(clean_part(correct).mean()),
        preprocess_description=str(meta.get("preprocess_description", "")),
        bpda=bool(meta.get("bpda", False)),
        reused=reused,
        json_path=json_path,
        npz_path=npz_path,
    )


def load_members(
    specs: Sequence[MemberSpec], models_dir: str | os.PathLike[str]
) -> dict[str, MemberResult]:
    """The members of ``specs`` already finished under ``models_dir`` (member id -> result).

    A member file written for other settings, unfinished or damaged is left out
    (``fairrobust.studies._store.load_member`` logs why): it is recomputed; so is one
    written before member files held the predictions (``pred``).
    """
    models_dir = Path(models_dir)
    done = {}
    for spec in specs:
        loaded = load_member(models_dir / spec.train_id, spec.file_stem, spec_hash=spec.eval_hash)
        if loaded is not None and "pred" not in loaded[1]:
            logger.warning("%s: no predictions (older file); recomputing", spec.file_stem)
        elif loaded is not None:
            meta, arrays = loaded
            done[spec.member_id] = _member_result(spec, meta, arrays, models_dir, True)
    return done


def train_members(
    dataset: AudioDataset,
    specs: Sequence[MemberSpec],
    models_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
    runtime: Runtime | None = None,
) -> dict[str, TrainedModel]:
    """Train (or load) the model of every distinct ``train_id`` of ``specs`` as one grid.

    Members of external models (``MemberSpec.external``) are left out.

    Members of equal structure train together (``fairrobust.engine.grid``); each
    keeps its checkpoints in ``models_dir/<train_id>/``, so a killed grid resumes
    member by member (:func:`fairrobust.studies._store.train_models`).

    Returns:
      ``train_id`` -> :class:`~fairrobust.studies._store.TrainedModel` (with the
      training ``info``: best epoch and its metrics).
    """
    models_dir = Path(models_dir)
    specs = [spec for spec in specs if not spec.external]  # external models are not trained
    ids = list(dict.fromkeys(spec.train_id for spec in specs))
    configs = {spec.train_id: TrainConfig(**spec.train_spec["train_config"]) for spec in specs}
    trained = train_models(
        dataset,
        [configs[i] for i in ids],
        [models_dir / i for i in ids],
        resume=resume,
        progress=progress,
        runtime=runtime,
    )
    return dict(zip(ids, trained, strict=True))


def attack_member(
    trained: TrainedModel,
    spec: MemberSpec,
    x: np.ndarray,
    y: np.ndarray,
    config: RobustnessConfig,
    *,
    sample_rate: int,
    runtime: Runtime | None = None,
) -> tuple[np.ndarray, np.ndarray, Preprocess]:
    """Robust correctness and predictions of one member at ``spec.epsilons`` (clean first).

    The model behind the member's preprocessing defense is attacked with L-inf PGD
    with the member's own key, its batches spread over the runtime's devices
    (``robustness_attacks.attack_members`` of one member; the study attacks the
    members of one architecture together).

    Returns:
      ``(correct bool [1 + e, n], pred int32 [1 + e, n], the parsed preprocessing
      defense)``.
    """
    return attack_members(
        [trained], [spec], x, y, config, sample_rate=sample_rate, runtime=runtime
    )[0]


def _member_meta(
    spec: MemberSpec,
    correct: np.ndarray,
    pre: Preprocess,
    test: EvalSet,
    config_hash: str,
    training: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "member_id": spec.member_id,
        "train_id": spec.train_id,
        "dataset": test.dataset,
        "data_fingerprint": test.data_fingerprint,
        "model": spec.model,
        "at_eps": spec.at_eps,
        "noise_std": spec.noise_std,
        "preprocess": spec.preprocess,
        "preprocess_config": pre.to_dict(),
        "preprocess_description": pre.describe(),
        "bpda": pre.gradient == "bpda" and pre.name != "none",
        "eval_spec": spec.eval_spec,
        "study_config_hash": config_hash,
        "library_version": library_version(),
        "n_test": int(correct.shape[1]),
        "clean_accuracy": float(clean_part(correct).mean()),
        "accuracy": [float(v) for v in correct.mean(axis=1)],
        "training": training,
    }


def evaluate_members(
    specs: Sequence[MemberSpec],
    models: Mapping[str, TrainedModel],
    test: EvalSet,
    config: RobustnessConfig,
    models_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    runtime: Runtime | None = None,
) -> dict[str, MemberResult]:
    """Attack every member of ``specs`` on ``test`` and save each member file when done.

    Members of one architecture, defense and sweep are attacked together
    (``robustness_attacks.attack_members``, up to ``MEMBERS_PER_CALL`` per program run).

    A member file (``models/<train_id>/robustness-<pre>-<eval hash>.{npz,json}``)
    holds ``correct`` and ``pred`` ``[1 + e, n]``, ``epsilons`` and ``test_index``; the JSON,
    written last, holds the member's coordinates, settings and training record.
    Saving member by member means an interrupted study loses one member at most.

    Args:
      specs: the members to evaluate.
      models: ``train_id`` -> trained model (from :func:`train_members`).
      test: the evaluated examples.
      config: the study config (attack settings, seed).
      models_dir: the ``models/`` folder.
      progress: show progress bars.
      runtime: the devices to attack on (default: all, ``Runtime.create()``).

    Returns:
      member id -> :class:`MemberResult`, in the order of ``specs``.
    """
    models_dir = Path(models_dir)
    config_hash = config.hash()
    done: dict[str, MemberResult] = {}
    calls = member_groups(specs, dict(models), test.sample_rate)
    with _io.progress(
        total=len(specs), desc="robustness: attacks", leave=True, enabled=progress
    ) as bar:
        for call in calls:
            bar.set_postfix_str(call[0].member_id + (f" +{len(call) - 1}" if len(call) > 1 else ""))
            outs = attack_members(
                [models[spec.train_id] for spec in call],
                call,
                test.x,
                test.y,
                config,
                sample_rate=test.sample_rate,
                runtime=runtime,
            )
            for spec, (correct, pred, pre) in zip(call, outs, strict=True):
                trained = models[spec.train_id]
                meta = _member_meta(spec, correct, pre, test, config_hash, trained.info)
                arrays = {
                    "correct": correct,
                    "pred": pred,
                    "epsilons": np.asarray(spec.epsilons, np.float64),
                    "test_index": np.asarray(test.index, np.int64),
                }
                save_member(
                    models_dir / spec.train_id,
                    spec.file_stem,
                    spec_hash=spec.eval_hash,
                    meta=meta,
                    arrays=arrays,
                )
                done[spec.member_id] = _member_result(
                    spec, _io.to_jsonable(meta), arrays, models_dir, False
                )
                bar.update(1)
    return {spec.member_id: done[spec.member_id] for spec in specs}


def _write_config(path: Path, config: RobustnessConfig, test: EvalSet) -> None:
    """``<prefix>_config.json``; warns when it differs from the previous run's."""
    config_hash = config.hash()
    message = check_config_change(path, config_hash)
    if message:
        logger.warning("%s", message)
    _io.atomic_write_json(
        path,
        {
            "config": config.to_dict(),
            "config_hash": config_hash,
            "dataset": test.dataset,
            "data_fingerprint": test.data_fingerprint,
            "library_version": library_version(),
        },
    )


def run_study(
    dataset: AudioDataset,
    config: RobustnessConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    focus: Sequence[str] = (),
    make_figures: bool = True,
    runtime: Runtime | None = None,
    models: Sequence[ExternalModel] | None = None,
) -> RobustnessResults:
    """Train, attack and analyse the grid of ``config`` on ``dataset``; write every result.

    The stages: :func:`load_eval_set`, :func:`plan_members`, :func:`load_members`
    (finished members, with ``resume``), :func:`train_members` (checkpoints under
    ``out_dir/models/<train_id>/`` reused or trained, only for members still to
    do), :func:`evaluate_members` (each member attacked at every epsilon and its
    correctness ``[1 + n_eps, n_test]`` saved as a member file), then
    ``robustness_tables.aggregate`` and :func:`write_results`. Member files are
    keyed by a hash of their settings, so a changed config recomputes exactly the
    affected members (a message says so) and never reuses stale ones.

    Result files (``results/robustness_<dataset>_<name>.csv`` and ``.json``):
      * ``models``: member_id, model, at_eps, noise_std, preprocess,
        preprocess_description, bpda, n_test, clean_accuracy, auc_acc (over all
        evaluated examples, raw integral), auc_acc_normalized (divided by the
        epsilon range), acc@<eps> per attack budget, random_guess_p, excluded.
      * ``groups``: attribute, group, n_test, n_speakers, valid (>= min_group_size
        clips and >= min_speakers speakers), note (why a group does not count).
      * ``group_metrics``: member coordinates, excluded, attribute, group, n,
        valid, clean_accuracy, auc_acc, auc_acc_normalized (divided by the epsilon
        range: mean accuracy over the budgets) [, auc_acc_ci_low / _high and
        auc_acc_normalized_ci_low / _high].
      * ``group_curves``: member_id, attribute, group, n, valid, epsilon (0 = clean),
        accuracy [, ci_low, ci_high: bootstrap interval of the group accuracy].
      * ``defense_parity``: member coordinates, excluded, attribute,
        defense_parity, defense_parity_normalized, clean_accuracy_gap, n_valid_groups,
        best_group, worst_group, ignored_groups, note [, defense_parity_ci_low / _high,
        defense_parity_normalized_ci_low / _high].
      * ``correlations``: outcome (``defense_parity`` | ``group_auc_acc``),
        attribute, group, intervention, kind (``binary`` | ``level``), r, p,
        n_models, note (why r is undefined); non-excluded models only.
      * ``breaking_eps``: robustness bias (Nanda et al. 2021; ``studies.robustness_bias``):
        member coordinates, eps_max, attribute, group, n, speakers, valid, median
        smallest breaking epsilon (an upper bound: PGD, discrete sweep) with interval,
        fraction never broken with interval, their gaps between valid groups, excluded.
      * ``fairness``: demographic parity difference / ratio, equalized odds difference
        and p-rule of every member per attribute, clean and at each budget, with
        intervals (``studies.fairness``: columns ``studies.fairness.COLUMNS``).
      * ``comparisons``: paired differences with the clean baseline on the same
        clips and resamples (``robustness_tables.comparisons``): family,
        statistic, attribute, group, member_id, reference_id, value,
        reference_value, difference, ci_low, ci_high (each also ``*_normalized``:
        divided by the epsilon range), p_value, p_holm, n_comparisons, significant.
      * ``summary.json``: dataset, fingerprint, config and hash, library version,
        epsilons, n_test, excluded members, groups, preprocess descriptions, files.

    Args:
      dataset: a :class:`fairrobust.data.AudioDataset` with train / val / test splits.
      config: the :class:`RobustnessConfig`.
      out_dir: output folder (created).
      resume: reuse finished members and checkpoints (False recomputes all).
      progress: show progress bars (per model and per attack sweep).
      focus: member ids for the accuracy-vs-epsilon figures (default: baseline
        and most robust model).
      make_figures: draw the figures (False: tables only, e.g. in tests).
      runtime: devices and processes (``fairrobust.engine.Runtime``; default all
        devices of this process). Results are identical on 1 and N devices.
      models: external models evaluated instead of the trained grid (each behind
        every ``config.preprocess``); checked on the data's shapes first.

    Returns:
      A :class:`RobustnessResults`.

    Raises:
      ValueError: unknown attribute, empty test split, invalid config, a model whose
        logits are not ``[b, num_classes]`` (``ExternalModel.check``).
    """
    t0 = time.perf_counter()
    if models is not None:  # before anything is computed
        check_models(models, int(dataset.num_classes), int(np.shape(dataset.waveforms)[1]))
    out = Path(out_dir)
    models_dir = out / "models"
    prefix = f"robustness_{slugify(dataset.name)}"
    test = load_eval_set(dataset, config)
    plan = plan_members(
        config,
        test.data_fingerprint,
        sample_rate=test.sample_rate,
        test_index=test.index,
        external=models,
    )
    _write_config(out / "results" / f"{prefix}_config.json", config, test)
    done = load_members(plan, models_dir) if resume else {}
    todo = [spec for spec in plan if spec.member_id not in done]
    rt = runtime if runtime is not None else Runtime.create()
    trained = train_members(dataset, todo, models_dir, resume=resume, progress=progress, runtime=rt)
    trained.update({m.train_id: m.trained(rt) for m in models or ()})
    done.update(
        evaluate_members(todo, trained, test, config, models_dir, progress=progress, runtime=rt)
    )
    members = tuple(done[spec.member_id] for spec in plan)
    agg = aggregate(
        [mr.record() for mr in members],
        np.stack([mr.correct for mr in members]),
        config.attack_eps,
        test.groups,
        num_classes=test.num_classes,
        config=config,
        speakers=test.speakers,
        labels=test.y,
    )
    excluded = {mr.spec.member_id for mr, ex in zip(members, agg["excluded"], strict=True) if ex}
    agg["tables"]["breaking_eps"] = [
        {**row, "excluded": row["member_id"] in excluded}
        for row in breaking_eps_table(
            [mr.record() for mr in members], np.stack([mr.correct for mr in members]),
            config.attack_eps, test.groups, config=config, speakers=test.speakers,
        )
    ]  # fmt: skip
    key = jax.random.fold_in(jax.random.key(config.seed), 0xFA1E)
    agg["tables"]["fairness"] = robustness_fairness(
        members, agg["tables"]["models"], config.attack_eps, test.y, test.groups,
        test.num_classes, speakers=test.speakers,
        bootstrap=bootstrap_options(config, key, test.speakers)
        if config.bootstrap_resamples else None,
    )  # fmt: skip
    files, figures = write_results(
        out, prefix, config, test, members, agg, focus=focus, make_figures=make_figures
    )
    return RobustnessResults(
        dataset=test.dataset,
        config=config,
        config_hash=config.hash(),
        data_fingerprint=test.data_fingerprint,
        attack_eps=tuple(config.attack_eps),
        num_classes=test.num_classes,
        test_index=np.asarray(test.index),
        members=members,
        groups={k: g.to_dict() for k, g in test.groups.items()},
        tables=agg["tables"],
        excluded=tuple(r["member_id"] for r in agg["tables"]["models"] if r["excluded"]),
        files=files,
        figures=figures,
        seconds=time.perf_counter() - t0,
    )


def _summary(
    config: RobustnessConfig,
    test: EvalSet,
    members: Sequence[MemberResult],
    models_rows: Sequence[Mapping[str, Any]],
    root: Path,
    files: Mapping[str, Path],
    figures: Mapping[str, Path],
) -> dict[str, Any]:
    """The ``summary.json`` record; paths relative to the run folder ``root``."""
    return {
        "study": "robustness",
        "dataset": test.dataset,
        "data_fingerprint": test.data_fingerprint,
        "config": config.to_dict(),
        "config_hash": config.hash(),
        "library_version": library_version(),
        "attack": {
            "norm": "linf",
            "epsilons": list(config.attack_eps),
            "num_steps": config.attack_steps,
            "rel_step": config.attack_rel_step,
            "random_start": False,
        },
        "auc_acc": "trapezoid integral of accuracy over the attack epsilons "
        f"[{config.attack_eps[0]}, {config.attack_eps[-1]}] (raw, paper Eq. 1)",
        "defense_parity": "max - min of AUC_acc over groups with n >= min_group_size and "
        ">= min_speakers speakers",
        "num_classes": test.num_classes,
        "chance_accuracy": majority_rate(test.y),
        "n_test": len(test.index),
        "n_models": len(members),
        "excluded": [
            {
                "member_id": r["member_id"],
                "clean_accuracy": r["clean_accuracy"],
                "random_guess_p": r["random_guess_p"],
            }
            for r in models_rows
            if r["excluded"]
        ],
        "random_guess_test": "one-sided binomial test vs the majority-class rate of the "
        f"evaluated clips ({majority_rate(test.y):.3g}; 1/{test.num_classes} with balanced "
        f"classes), excluded when p > {config.random_guess_level}",
        "preprocess": {mr.spec.preprocess: mr.preprocess_description for mr in members},
        "groups": {k: g.to_dict() for k, g in test.groups.items()},
        "members": [{**mr.record(), "file": mr.json_path.relative_to(root)} for mr in members],
        "files": {k: v.relative_to(root) for k, v in files.items()},
        "figures": {k: v.relative_to(root) for k, v in figures.items()},
    }


def write_results(
    out_dir: str | os.PathLike[str],
    prefix: str,
    config: RobustnessConfig,
    test: EvalSet,
    members: Sequence[MemberResult],
    agg: Mapping[str, Any],
    *,
    focus: Sequence[str] = (),
    make_figures: bool = True,
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Write the tables, figures, summary and (last) the provenance sidecar of a run.

    Args:
      out_dir: the run folder (``results/``, ``figures/`` inside).
      prefix: file-name prefix, ``robustness_<dataset>``.
      config: the study config.
      test: the evaluated examples.
      members: every member, in grid order.
      agg: ``robustness_tables.aggregate`` of the members.
      focus: member ids for the accuracy-vs-epsilon figures.
      make_figures: draw the figures.

    Returns:
      ``(files, figures)``: name -> path (see :class:`RobustnessResults`).
    """
    root = Path(out_dir)
    results_dir = root / "results"
    files: dict[str, Path] = {"config": results_dir / f"{prefix}_config.json"}
    for name, rows in agg["tables"].items():
        csv_path, json_path = write_table(results_dir / f"{prefix}_{name}", rows)
        files[f"{name}_csv"], files[f"{name}_json"] = csv_path, json_path
    figures: dict[str, Path] = {}
    if make_figures:
        figures = write_figures(
            agg,
            [mr.record() for mr in members],
            test.groups,
            config.attack_eps,
            root / "figures",
            prefix=prefix,
            num_classes=test.num_classes,
            focus=focus,
        )
        figures.update(
            breaking_eps_figures(
                agg["tables"]["models"], [mr.record() for mr in members],
                np.stack([mr.correct for mr in members]), config.attack_eps, test.groups,
                root / "figures", prefix=prefix, config=config, speakers=test.speakers,
            )
        )  # fmt: skip
    summary = _summary(config, test, members, agg["tables"]["models"], root, files, figures)
    files["summary"] = _io.atomic_write_json(results_dir / f"{prefix}_summary.json", summary)
    files["attributes"] = write_attribute_status(results_dir, prefix, test.attribute_status)
    external = {m.spec.train_id: m.spec.train_spec["external"] for m in members if m.spec.external}
    # Written last: vouches for the bytes of every results file of this run.
    files["provenance"] = write_provenance(
        results_dir,
        prefix,
        study="robustness",
        dataset=test.dataset,
        data_fingerprint=test.data_fingerprint,
        config=config,
        config_hash=config.hash(),
        extra={"external_models": list(external.values())} if external else None,
    )
    return files, figures
