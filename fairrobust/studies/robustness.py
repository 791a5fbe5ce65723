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
(``list[MemberSpec]``) -> :func:`load_members` (finished ones) ->
:func:`train_members` (``train_id -> TrainedModel``) -> :func:`evaluate_members`
(``member_id -> MemberResult``, correctness per member) ->
``robustness_tables.aggregate`` (tables) -> :func:`write_results`;
:func:`run_study` composes them. Tables live in
:mod:`fairrobust.studies.robustness_tables`, figures in
:mod:`fairrobust.studies.robustness_figures`.

Typical use::

    from fairrobust.data import load_bundled
    from fairrobust.studies import robustness
    config = robustness.preset("quick")
    results = robustness.run_study(load_bundled(), config, "out/")
    results.tables["models"]          # the paper's Tables 1-2

Command line: ``fairrobust study robustness --preset quick --out out/``.

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

import argparse
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust import _io
from fairrobust.attacks import robust_correct
from fairrobust.data import AudioDataset
from fairrobust.defenses import Preprocess, with_preprocess
from fairrobust.groups import Groups, all_groups
from fairrobust.studies._store import (
    TrainedModel,
    apply_overrides,
    check_config_change,
    expand_grid,
    format_value,
    library_version,
    load_member,
    load_toml_overrides,
    logger,
    member_id,
    save_member,
    seeded_subset,
    slugify,
    train_or_load,
    write_provenance,
    write_table,
)
from fairrobust.studies.robustness_figures import write_figures
from fairrobust.studies.robustness_tables import aggregate, clean_part, sweep_epsilons
from fairrobust.train import TrainConfig

__all__ = [
    "PRESETS",
    "TEST_SUBSET_SALT",
    "EvalSet",
    "MemberResult",
    "MemberSpec",
    "RobustnessConfig",
    "RobustnessResults",
    "add_cli_arguments",
    "attack_member",
    "cli_main",
    "evaluate_members",
    "format_models_table",
    "load_config",
    "load_eval_set",
    "load_members",
    "parse_preprocess",
    "plan_members",
    "preset",
    "resolve_groups",
    "run_study",
    "select_test",
    "train_members",
    "write_results",
]

MODELS = ("m5", "m5-tricks")
ALL_PAIRS = "all-pairs"


def parse_preprocess(spec: str, sample_rate: int | None = None):
    """Parse ``"name"`` / ``"name:key=value,..."`` into a :class:`fairrobust.defenses.Preprocess`.

    Values are read as int, then float, else kept as text. ``gradient=exact|bpda``
    selects the attack gradient. For ``lowpass`` the dataset's ``sample_rate``
    is filled in when not given (a placeholder of 16 kHz when validating a
    config without a dataset).

    Raises:
      ValueError: malformed spec, unknown defense or parameter (from
        :func:`fairrobust.defenses.make_preprocess`).
    """
    from fairrobust.defenses import make_preprocess

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"preprocess: expected 'name' or 'name:key=value,...', got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"preprocess {spec!r}: expected key=value, got {item!r}")
        params[key.strip()] = _parse_scalar(value.strip())
    gradient = params.pop("gradient", None)
    if name.strip() == "lowpass" and "sample_rate" not in params:
        params["sample_rate"] = float(sample_rate or 16000)
    try:
        return make_preprocess(name.strip(), gradient=gradient, **params)
    except ValueError as exc:
        raise ValueError(f"preprocess {spec!r}: {exc}") from exc


def _parse_scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# ============================================================================ config


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    """Settings of the robustness study; defaults are the paper's (``preset("paper")``).

    Grid (every combination is one trained model; ``preprocess`` multiplies the
    evaluations of each model, not the training):

    Attributes:
      preset: name of the preset this config started from (documentation only).
      models: architectures, each ``"m5"`` or ``"m5-tricks"``.
      at_eps: PGD adversarial-training L-inf budgets; 0 = no adversarial training.
      noise_std: Gaussian noise-augmentation std during training; 0 = none.
      preprocess: test-time preprocessing defenses ``g`` in front of every model,
        as ``"name"`` or ``"name:key=value,key=value"`` (``"none"``,
        ``"quantize:bits=8"``, ``"lowpass:cutoff_hz=4000"``,
        ``"spectral_denoise"``; add ``gradient=exact|bpda`` to choose the attack
        gradient; ``lowpass`` gets the dataset's sample rate). Attacked end to
        end; BPDA where the defense is not differentiable (stated in results).
      attack_eps: L-inf attack budgets (> 0); epsilon 0 (clean) is always added.
      attack_steps: PGD steps per attack (paper: 100).
      attack_rel_step: PGD step size as a fraction of epsilon (paper: 1/5).
      attack_batch_size: examples per attack batch (memory only, not results).
      epochs: training epochs; the checkpoint with the best validation loss is
        kept. The paper trained 1000 epochs with best-validation selection; 100
        is the paper preset here (M5 converges well before on these datasets).
      width: M5 channel width.
      batch_size: training batch size.
      lr: Adam learning rate.
      at_steps: PGD steps when crafting adversarial training examples (paper: 10).
      at_lam: weight of the adversarial loss in the joint loss (paper: 0.5).
      attributes: attributes to analyse; empty = every attribute of the dataset.
      intersections: intersections to analyse, each ``"a x b"`` (or ``"a+b"``),
        or the single entry ``"all-pairs"``; default none (the paper analyses
        attributes one at a time, and intersections of these small datasets are
        mostly under any sensible minimum size).
      min_group_size: groups with fewer test examples are reported but ignored
        in Defense Parity.
      random_guess_level: models whose clean accuracy is not significantly above
        chance at this level (binomial test) are excluded from correlations.
      max_test_examples: cap on evaluated test examples (seeded random subset);
        0 = the whole test split.
      bootstrap: bootstrap resamples for confidence intervals on group AUC_acc
        and Defense Parity; 0 = none.
      ci_level: confidence level of the intervals.
      seed: seed of training, test subsetting, attacks and bootstrap.
    """

    preset: str = "paper"
    models: tuple[str, ...] = MODELS
    at_eps: tuple[float, ...] = (0.0, 0.001, 0.005, 0.01, 0.1)
    noise_std: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1)
    preprocess: tuple[str, ...] = ("none",)
    attack_eps: tuple[float, ...] = (0.0001, 0.001, 0.01, 0.1, 0.2, 0.3)
    attack_steps: int = 100
    attack_rel_step: float = 0.2
    attack_batch_size: int = 64
    epochs: int = 100
    width: int = 32
    batch_size: int = 32
    lr: float = 1e-3
    at_steps: int = 10
    at_lam: float = 0.5
    attributes: tuple[str, ...] = ()
    intersections: tuple[str, ...] = ()
    min_group_size: int = 10
    random_guess_level: float = 0.05
    max_test_examples: int = 0
    bootstrap: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return _io.to_jsonable(self)

    def hash(self) -> str:
        """Stable 16-hex hash of every field."""
        return _io.stable_hash(self.to_dict())

    @property
    def num_models(self) -> int:
        """Trained models in the grid."""
        return len(self.models) * len(self.at_eps) * len(self.noise_std)


def _validate(c: RobustnessConfig) -> None:
    """Check every field; ``ValueError`` names the field and what was expected."""

    def need(ok: bool, field: str, expected: str) -> None:
        if not ok:
            raise ValueError(
                f"RobustnessConfig.{field}: expected {expected}, got {getattr(c, field)!r}"
            )

    need(
        len(c.models) > 0 and all(m in MODELS for m in c.models),
        "models",
        f"a non-empty list of {list(MODELS)}",
    )
    need(
        len(c.at_eps) > 0 and all(e >= 0 for e in c.at_eps),
        "at_eps",
        "a non-empty list of budgets >= 0",
    )
    need(
        len(c.noise_std) > 0 and all(s >= 0 for s in c.noise_std),
        "noise_std",
        "a non-empty list of stds >= 0",
    )
    need(len(c.preprocess) > 0, "preprocess", "a non-empty list of defense specs")
    for spec in c.preprocess:
        parse_preprocess(spec)  # raises with the spec in the message
    need(
        len(c.attack_eps) > 0
        and all(e > 0 for e in c.attack_eps)
        and list(c.attack_eps) == sorted(set(c.attack_eps)),
        "attack_eps",
        "a non-empty increasing list of budgets > 0",
    )
    need(c.attack_steps >= 1, "attack_steps", "an integer >= 1")
    need(0 < c.attack_rel_step <= 1, "attack_rel_step", "a number in (0, 1]")
    need(c.attack_batch_size >= 1, "attack_batch_size", "an integer >= 1")
    need(c.epochs >= 1, "epochs", "an integer >= 1")
    need(c.width >= 1, "width", "an integer >= 1")
    need(c.batch_size >= 1, "batch_size", "an integer >= 1")
    need(c.lr > 0, "lr", "a number > 0")
    need(c.at_steps >= 1, "at_steps", "an integer >= 1")
    need(0 <= c.at_lam <= 1, "at_lam", "a number in [0, 1]")
    need(c.min_group_size >= 1, "min_group_size", "an integer >= 1")
    need(0 < c.random_guess_level < 1, "random_guess_level", "a number in (0, 1)")
    need(c.max_test_examples >= 0, "max_test_examples", "an integer >= 0 (0 = all)")
    need(c.bootstrap >= 0, "bootstrap", "an integer >= 0 (0 = no intervals)")
    need(0 < c.ci_level < 1, "ci_level", "a number in (0, 1)")
    need(
        ALL_PAIRS not in c.intersections or len(c.intersections) == 1,
        "intersections",
        f"either [{ALL_PAIRS!r}] alone or a list of 'a x b' specs",
    )


#: The two presets. ``paper`` is the AISec'23 grid (40 models, 100-step PGD at
#: six budgets); ``quick`` is 8 small models trained for a few epochs and
#: attacked at three budgets on at most 300 test clips, a few minutes on a
#: 2-core CPU on the bundled data.
PRESETS: Mapping[str, RobustnessConfig] = {
    "paper": RobustnessConfig(preset="paper"),
    "quick": RobustnessConfig(
        preset="quick",
        at_eps=(0.0, 0.01),
        noise_std=(0.0, 0.05),
        attack_eps=(0.001, 0.01, 0.1),
        attack_steps=10,
        epochs=6,
        width=16,
        batch_size=32,
        at_steps=3,
        max_test_examples=300,
        bootstrap=200,
    ),
}


def preset(name: str) -> RobustnessConfig:
    """The named preset (``"quick"`` or ``"paper"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]


def load_config(
    preset_name: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RobustnessConfig:
    """Preset, then the TOML file's fields, then ``overrides`` (later wins).

    The TOML file holds :class:`RobustnessConfig` fields at top level or in a
    ``[robustness]`` table, e.g.::

        at_eps = [0.0, 0.01]
        preprocess = ["none", "quantize:bits=8"]
        epochs = 20

    Raises:
      ValueError: unknown preset or field, wrong type, invalid value.
      FileNotFoundError: ``config_file`` does not exist.
    """
    config = preset(preset_name)
    if config_file is not None:
        config = load_toml_overrides(config_file, config, table="robustness")
    if overrides:
        config = apply_overrides(config, overrides, source="command line")
    return config


# ============================================================================ grid


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One evaluation of the grid: a trained model behind one preprocessing defense.

    Attributes:
      member_id: ``<train label>[+<preprocess>]`` -- unique, readable, stable.
      train_id: folder of the trained model, ``<label>-<hash of training spec>``.
      model, at_eps, noise_std, preprocess: the grid coordinates.
      train_spec: everything the trained weights depend on (hashed in ``train_id``).
      eval_spec: everything the correctness array depends on.
      eval_hash: hash of ``eval_spec`` (in the member's file name).
      epsilons: the evaluated epsilons, ``robustness_tables.sweep_epsilons`` of
        the attack budgets: 0 (the clean pass) first. The member's correctness
        is ``[len(epsilons), n_test]`` in this order.
    """

    member_id: str
    train_id: str
    model: str
    at_eps: float
    noise_std: float
    preprocess: str
    train_spec: Mapping[str, Any]
    eval_spec: Mapping[str, Any]
    eval_hash: str
    epsilons: tuple[float, ...]

    @property
    def file_stem(self) -> str:
        """Member file name without suffix, inside ``models/<train_id>/``."""
        return f"robustness-{slugify(self.preprocess)}-{self.eval_hash}"


def _train_label(model: str, at_eps: float, noise_std: float) -> str:
    return f"{model}_at{format_value(float(at_eps))}_noise{format_value(float(noise_std))}"


def _train_config_dict(
    config: RobustnessConfig, model: str, at_eps: float, noise_std: float
) -> dict[str, Any]:
    """Every field of the member's ``fairrobust.train.TrainConfig`` (defaults filled in)."""
    tc = TrainConfig(
        model=model,
        width=config.width,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        noise_std=float(noise_std),
        at_eps=float(at_eps),
        at_steps=config.at_steps,
        at_rel_step=0.2,
        at_lam=config.at_lam,
        val_noise_std=0.0,
        seed=config.seed,
    )
    return _io.to_jsonable(dataclasses.asdict(tc))


def plan_members(
    config: RobustnessConfig,
    data_fingerprint: str,
    *,
    sample_rate: int = 16000,
    test_index: np.ndarray | None = None,
) -> list[MemberSpec]:
    """The grid as a list of :class:`MemberSpec`, models varying slowest, preprocess fastest.

    Args:
      config: the study config.
      data_fingerprint: ``AudioDataset.fingerprint()`` (part of every hash).
      sample_rate: the dataset's sample rate (for ``lowpass``).
      test_index: indices of the evaluated test examples (hashed into the eval spec).

    Returns:
      One :class:`MemberSpec` per (model, at_eps, noise_std, preprocess), each
      evaluated at ``sweep_epsilons(config.attack_eps)`` (clean pass first).
    """
    test_hash = _io.stable_hash(np.asarray([] if test_index is None else test_index).tolist())
    epsilons = sweep_epsilons(config.attack_eps)
    attack = {
        "attack": "pgd",
        "norm": "linf",
        "epsilons": list(epsilons),
        "num_steps": config.attack_steps,
        "rel_step": config.attack_rel_step,
        "random_start": False,
        "seed": config.seed,
    }
    members = []
    grid = expand_grid(
        {"model": config.models, "at_eps": config.at_eps, "noise_std": config.noise_std}
    )
    for point in grid:
        train_cfg = _train_config_dict(config, point["model"], point["at_eps"], point["noise_std"])
        train_spec = {"train_config": train_cfg, "data_fingerprint": data_fingerprint}
        label = _train_label(point["model"], point["at_eps"], point["noise_std"])
        train_id = member_id(label, train_spec)
        for pre_spec in dict.fromkeys(config.preprocess):
            pre = parse_preprocess(pre_spec, sample_rate)
            eval_spec = {
                "train_id": train_id,
                "train_spec": train_spec,
                "preprocess": pre.to_dict(),
                "attack": attack,
                "test_index_hash": test_hash,
            }
            mid = label if pre.name == "none" else f"{label}+{slugify(pre_spec)}"
            members.append(
                MemberSpec(
                    member_id=mid,
                    train_id=train_id,
                    model=point["model"],
                    at_eps=float(point["at_eps"]),
                    noise_std=float(point["noise_std"]),
                    preprocess=pre_spec,
                    train_spec=train_spec,
                    eval_spec=eval_spec,
                    eval_hash=_io.stable_hash(eval_spec, 12),
                    epsilons=epsilons,
                )
            )
    return members


# ============================================================================ records


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One evaluated member: its coordinates, correctness and where it is stored.

    Attributes:
      spec: the :class:`MemberSpec`.
      correct: bool ``[1 + n_eps, n_test]`` at ``spec.epsilons`` (clean first).
      clean_accuracy: mean of the clean pass of ``correct``.
      preprocess_description: how the defense was attacked (BPDA or exact).
      reused: True when loaded from a previous run.
      json_path, npz_path: the member's files.
    """

    spec: MemberSpec
    correct: np.ndarray
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
      groups: attribute -> :class:`fairrobust.groups.Groups` over the ``n`` examples.
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


# ============================================================================ stages

#: Salt of the seeded test subset (``max_test_examples``).
TEST_SUBSET_SALT = 0x7E57


def select_test(dataset: AudioDataset, config: RobustnessConfig) -> np.ndarray:
    """Sorted indices of the evaluated test examples: all, or a seeded subset.

    ``seeded_subset(test indices, config.max_test_examples, config.seed,
    TEST_SUBSET_SALT)``.

    Raises:
      ValueError: the test split is empty.
    """
    idx = np.flatnonzero(np.asarray(dataset.splits) == "test")
    if idx.size == 0:
        raise ValueError(f"dataset {dataset.name!r}: the test split is empty")
    return seeded_subset(idx, config.max_test_examples, config.seed, TEST_SUBSET_SALT)


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
    if list(config.intersections) == [ALL_PAIRS]:
        inter = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    else:
        inter = []
        for spec in config.intersections:
            parts = [p.strip() for p in spec.replace("+", " x ").split(" x ") if p.strip()]
            if len(parts) < 2:
                raise ValueError(
                    f"RobustnessConfig.intersections: expected 'a x b' (or 'a+b'), got {spec!r}"
                )
            inter.append(tuple(parts))
    return all_groups(attributes, names, inter, min_size=config.min_group_size)


def load_eval_set(dataset: AudioDataset, config: RobustnessConfig) -> EvalSet:
    """The :class:`EvalSet` of ``config`` (:func:`select_test`, :func:`resolve_groups`).

    Raises:
      ValueError: empty test split, unknown attribute, malformed intersection.
    """
    index = select_test(dataset, config)
    test = dataset.select(index)
    return EvalSet(
        dataset=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        sample_rate=int(dataset.sample_rate),
        num_classes=int(dataset.num_classes),
        index=index,
        x=np.asarray(test.waveforms, np.float32),
        y=np.asarray(test.labels, np.int32),
        speakers=np.asarray(dataset.speakers)[index],
        groups=resolve_groups(test.attributes, config),
    )


def _member_paths(spec: MemberSpec, models_dir: Path) -> tuple[Path, Path]:
    d = models_dir / spec.train_id
    return d / f"{spec.file_stem}.json", d / f"{spec.file_stem}.npz"


def _member_result(
    spec: MemberSpec, meta: Mapping[str, Any], correct: np.ndarray, models_dir: Path, reused: bool
) -> MemberResult:
    correct = np.asarray(correct, bool)
    json_path, npz_path = _member_paths(spec, models_dir)
    return MemberResult(
        spec=spec,
        correct=correct,
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
    (``fairrobust.studies._store.load_member`` logs why): it is recomputed.
    """
    models_dir = Path(models_dir)
    done = {}
    for spec in specs:
        loaded = load_member(models_dir / spec.train_id, spec.file_stem, spec_hash=spec.eval_hash)
        if loaded is not None:
            meta, arrays = loaded
            done[spec.member_id] = _member_result(spec, meta, arrays["correct"], models_dir, True)
    return done


def train_members(
    dataset: AudioDataset,
    specs: Sequence[MemberSpec],
    models_dir: str | os.PathLike[str],
    *,
    resume: bool,
    progress: bool,
) -> dict[str, TrainedModel]:
    """Train (or load) the model of every distinct ``train_id`` of ``specs``, in order.

    Each model lives in ``models_dir/<train_id>/``
    (:func:`fairrobust.studies._store.train_or_load`).

    Returns:
      ``train_id`` -> :class:`~fairrobust.studies._store.TrainedModel` (with the
      training ``info``: best epoch and its metrics).
    """
    models_dir = Path(models_dir)
    trained: dict[str, TrainedModel] = {}
    for spec in specs:
        if spec.train_id not in trained:
            trained[spec.train_id] = train_or_load(
                dataset,
                TrainConfig(**spec.train_spec["train_config"]),
                models_dir / spec.train_id,
                resume=resume,
                progress=progress,
            )
    return trained


def _member_key(config: RobustnessConfig, spec: MemberSpec) -> jax.Array:
    """Attack key of a member: the study seed folded with the member's eval hash."""
    return jax.random.fold_in(jax.random.key(config.seed), int(spec.eval_hash[:7], 16))


def attack_member(
    trained: TrainedModel,
    spec: MemberSpec,
    x: np.ndarray,
    y: np.ndarray,
    config: RobustnessConfig,
    *,
    sample_rate: int,
    progress: bool = True,
) -> tuple[np.ndarray, Preprocess]:
    """Robust correctness of one member at ``spec.epsilons`` (clean pass first).

    The model behind the member's preprocessing defense is attacked with L-inf PGD
    (``fairrobust.attacks.robust_correct``, the member's own key).

    Returns:
      ``(correct bool [1 + e, n], the parsed preprocessing defense)``.
    """
    pre = parse_preprocess(spec.preprocess, sample_rate)
    correct = robust_correct(
        with_preprocess(trained.apply_fn, pre),
        trained.variables,
        jnp.asarray(x),
        jnp.asarray(y),
        jnp.asarray(spec.epsilons, jnp.float32),
        _member_key(config, spec),
        num_steps=config.attack_steps,
        norm="linf",
        rel_step=config.attack_rel_step,
        random_start=False,
        batch_size=config.attack_batch_size,
        progress=progress,
    )
    return np.asarray(correct, dtype=bool), pre


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
) -> dict[str, MemberResult]:
    """Attack every member of ``specs`` on ``test`` and save each member file when done.

    A member file (``models/<train_id>/robustness-<pre>-<eval hash>.{npz,json}``)
    holds ``correct`` ``[1 + e, n]``, ``epsilons`` and ``test_index``; the JSON,
    written last, holds the member's coordinates, settings and training record.
    Saving member by member means an interrupted study loses one member at most.

    Args:
      specs: the members to evaluate.
      models: ``train_id`` -> trained model (from :func:`train_members`).
      test: the evaluated examples.
      config: the study config (attack settings, seed).
      models_dir: the ``models/`` folder.
      progress: show progress bars.

    Returns:
      member id -> :class:`MemberResult`, in the order of ``specs``.
    """
    models_dir = Path(models_dir)
    config_hash = config.hash()
    done: dict[str, MemberResult] = {}
    with _io.progress(
        total=len(specs), desc="robustness: attacks", leave=True, enabled=progress
    ) as bar:
        for spec in specs:
            bar.set_postfix_str(spec.member_id)
            trained = models[spec.train_id]
            correct, pre = attack_member(
                trained,
                spec,
                test.x,
                test.y,
                config,
                sample_rate=test.sample_rate,
                progress=progress,
            )
            meta = _member_meta(spec, correct, pre, test, config_hash, trained.info)
            arrays = {
                "correct": correct,
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
                spec, _io.to_jsonable(meta), correct, models_dir, False
            )
            bar.update(1)
    return done


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
      * ``groups``: attribute, group, n_test, valid (>= min_group_size), note.
      * ``group_metrics``: member coordinates, excluded, attribute, group, n,
        valid, clean_accuracy, auc_acc [, auc_acc_ci_low, auc_acc_ci_high].
      * ``group_curves``: member_id, attribute, group, n, valid, epsilon (0 = clean),
        accuracy [, ci_low, ci_high: bootstrap interval of the group accuracy].
      * ``defense_parity``: member coordinates, excluded, attribute,
        defense_parity, clean_accuracy_gap, n_valid_groups, best_group,
        worst_group, ignored_groups, note [, defense_parity_ci_low / _high].
      * ``correlations``: outcome (``defense_parity`` | ``group_auc_acc``),
        attribute, group, intervention, kind (``binary`` | ``level``), r, p,
        n_models, note (why r is undefined); non-excluded models only.
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

    Returns:
      A :class:`RobustnessResults`.

    Raises:
      ValueError: unknown attribute, empty test split, invalid config.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    models_dir = out / "models"
    prefix = f"robustness_{slugify(dataset.name)}"
    test = load_eval_set(dataset, config)
    plan = plan_members(
        config, test.data_fingerprint, sample_rate=test.sample_rate, test_index=test.index
    )
    _write_config(out / "results" / f"{prefix}_config.json", config, test)
    done = load_members(plan, models_dir) if resume else {}
    todo = [spec for spec in plan if spec.member_id not in done]
    models = train_members(dataset, todo, models_dir, resume=resume, progress=progress)
    done.update(evaluate_members(todo, models, test, config, models_dir, progress=progress))
    members = tuple(done[spec.member_id] for spec in plan)
    agg = aggregate(
        [mr.record() for mr in members],
        np.stack([mr.correct for mr in members]),
        config.attack_eps,
        test.groups,
        num_classes=test.num_classes,
        config=config,
        speakers=test.speakers,
    )
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
        "defense_parity": "max - min of AUC_acc over groups with n >= min_group_size",
        "num_classes": test.num_classes,
        "chance_accuracy": 1.0 / test.num_classes,
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
        "random_guess_test": f"one-sided binomial test vs 1/{test.num_classes}, "
        f"excluded when p > {config.random_guess_level}",
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
    summary = _summary(config, test, members, agg["tables"]["models"], root, files, figures)
    files["summary"] = _io.atomic_write_json(results_dir / f"{prefix}_summary.json", summary)
    # Written last: vouches for the bytes of every results file of this run.
    files["provenance"] = write_provenance(
        results_dir,
        prefix,
        study="robustness",
        dataset=test.dataset,
        data_fingerprint=test.data_fingerprint,
        config=config,
        config_hash=config.hash(),
    )
    return files, figures


# ============================================================================ CLI


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _semicolon_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(";") if v.strip()]


#: CLI flag -> (RobustnessConfig field, parser, help).
_FLAGS: Mapping[str, tuple[str, Callable[[str], Any], str]] = {
    "--models": ("models", _str_list, "architectures, comma-separated (m5,m5-tricks)"),
    "--at-eps": ("at_eps", _float_list, "AT budgets, comma-separated (0 = no AT)"),
    "--noise-std": ("noise_std", _float_list, "noise-augmentation stds, comma-separated"),
    "--preprocess": (
        "preprocess",
        _semicolon_list,
        "preprocessing defenses, ';'-separated, e.g. 'none;quantize:bits=8'",
    ),
    "--attack-eps": ("attack_eps", _float_list, "attack L-inf budgets, comma-separated"),
    "--attack-steps": ("attack_steps", int, "PGD steps of the evaluation attack"),
    "--epochs": ("epochs", int, "training epochs (best validation checkpoint kept)"),
    "--width": ("width", int, "M5 channel width"),
    "--attributes": ("attributes", _str_list, "attributes to analyse (default: all)"),
    "--intersections": (
        "intersections",
        _semicolon_list,
        "';'-separated intersections ('gender x dialect') or 'all-pairs'",
    ),
    "--min-group-size": ("min_group_size", int, "minimum test examples for a group to count"),
    "--max-test-examples": ("max_test_examples", int, "cap on evaluated test clips (0 = all)"),
    "--bootstrap": ("bootstrap", int, "bootstrap resamples for intervals (0 = none)"),
    "--seed": ("seed", int, "seed of training, subsetting, attacks and bootstrap"),
}


def add_cli_arguments(parser: argparse.ArgumentParser, *, data_args: bool = True) -> None:
    """Add the flags of ``fairrobust study robustness`` to ``parser``.

    ``--dataset``, ``--data-dir`` (only with ``data_args``; skip them when the
    caller adds its own data flags), ``--preset``, ``--config`` (TOML),
    ``--out``, ``--no-resume`` and one flag per grid setting (``--at-eps``,
    ``--noise-std``, ``--preprocess``, ...) overriding the preset and the TOML
    file.
    """
    if data_args:
        g = parser.add_argument_group("data")
        g.add_argument(
            "--dataset",
            default="bundled",
            help="dataset loader name (default: bundled, no download needed)",
        )
        g.add_argument(
            "--data-dir", type=Path, default=None, help="dataset root (not needed for bundled)"
        )
    s = parser.add_argument_group("robustness study")
    s.add_argument(
        "--preset",
        default="quick",
        choices=sorted(PRESETS),
        help="quick: 8 small models for a CPU; paper: the AISec'23 40-model grid",
    )
    s.add_argument(
        "--config",
        type=Path,
        default=None,
        dest="study_config",
        help="TOML file overriding preset fields (top level or [robustness])",
    )
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument(
        "--no-resume",
        action="store_true",
        help="recompute every member instead of reusing finished ones",
    )
    for flag, (field, conv, help_text) in _FLAGS.items():
        s.add_argument(flag, type=conv, default=None, dest=f"rb_{field}", help=help_text)


def cli_main(args: argparse.Namespace) -> int:
    """Run ``fairrobust study robustness`` from parsed ``args``; prints the model table.

    Returns 0 on success. ``ValueError`` / ``FileNotFoundError`` propagate to the
    CLI's error handler.
    """
    from fairrobust.data import load_dataset

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    overrides = {
        field: getattr(args, f"rb_{field}")
        for field, _, _ in _FLAGS.values()
        if getattr(args, f"rb_{field}", None) is not None
    }
    config = load_config(args.preset, getattr(args, "study_config", None), overrides)
    dataset_name = getattr(args, "dataset", "bundled")
    data_dir = getattr(args, "data_dir", None)
    if dataset_name != "bundled" and data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {dataset_name}")
    opts = {
        k: getattr(args, k)
        for k in ("sample_rate", "duration")
        if getattr(args, k, None) is not None
    }
    dataset = load_dataset(dataset_name, data_dir, **opts)
    print(
        f"robustness study on {dataset.name}: {config.num_models} models x "
        f"{len(config.preprocess)} preprocess, attack eps {list(config.attack_eps)}, "
        f"{config.attack_steps} PGD steps"
    )
    results = run_study(dataset, config, args.out, resume=not args.no_resume, progress=True)
    print(format_models_table(results.tables["models"]))
    print(f"excluded as random guessing: {list(results.excluded) or 'none'}")
    print(
        f"results: {results.files['summary'].parent}  figures: {Path(args.out) / 'figures'}  "
        f"({results.seconds:.0f} s)"
    )
    return 0


def format_models_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-model table (paper Tables 1-2) as aligned text, by clean accuracy."""
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
