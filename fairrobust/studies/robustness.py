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
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from fairrobust import _io
from fairrobust.studies._store import (
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
    slugify,
    write_provenance,
    write_table,
)

__all__ = [
    "BINARY_INTERVENTIONS",
    "LEVEL_INTERVENTIONS",
    "PRESETS",
    "MemberResult",
    "MemberSpec",
    "RobustnessConfig",
    "RobustnessResults",
    "add_cli_arguments",
    "aggregate",
    "cli_main",
    "correlation_rows",
    "format_models_table",
    "intervention_codes",
    "load_config",
    "parse_preprocess",
    "plan_members",
    "preset",
    "random_guess_test",
    "resolve_groups",
    "run_study",
    "write_figures",
]

MODELS = ("m5", "m5-tricks")
ALL_PAIRS = "all-pairs"
#: Binary intervention codes (paper Figures 2 and 4), in column order.
BINARY_INTERVENTIONS = ("AT", "Tricks", "Noise", "Preprocess")
#: Intervention levels (paper Figures 3 and 5), in column order.
LEVEL_INTERVENTIONS = ("AT budget", "Noise std")


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
    from fairrobust.train import TrainConfig

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
    """
    test_hash = _io.stable_hash(np.asarray([] if test_index is None else test_index).tolist())
    attack = {
        "attack": "pgd",
        "norm": "linf",
        "epsilons": [0.0, *map(float, config.attack_eps)],
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
                )
            )
    return members


# ============================================================================ aggregation


def random_guess_test(
    n_correct: np.ndarray, n: int, num_classes: int, level: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Is clean accuracy indistinguishable from random guessing?

    One-sided exact binomial test of H0: accuracy = 1 / num_classes against
    H1: accuracy > 1 / num_classes (``scipy.stats.binomtest``,
    ``alternative="greater"``). A model is *excluded* when p > ``level``; such a
    model "withstands" any attack trivially and would distort correlations
    (paper section 5.1: 15 of 40 models on AudioMNIST).

    Args:
      n_correct: int ``[m]``, correct clean predictions per model.
      n: number of evaluated examples (> 0).
      num_classes: number of classes (>= 2).
      level: significance level in (0, 1).

    Returns:
      ``(pvalues [m], excluded [m] bool)``.

    Raises:
      ValueError: ``n < 1``, ``num_classes < 2``, counts outside [0, n].
    """
    k = np.atleast_1d(np.asarray(n_correct))
    if n < 1:
        raise ValueError(f"n: expected >= 1 evaluated examples, got {n}")
    if num_classes < 2:
        raise ValueError(f"num_classes: expected >= 2, got {num_classes}")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"n_correct: expected counts in [0, {n}], got {k.tolist()}")
    p = np.asarray(
        [
            scipy.stats.binomtest(int(ki), n, 1.0 / num_classes, alternative="greater").pvalue
            for ki in k
        ],
        dtype=float,
    )
    return p, p > level


def intervention_codes(members: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Numeric intervention codes per model for the correlation analyses.

    Binary (paper Figures 2, 4): ``AT`` (at_eps > 0), ``Tricks`` (M5-Tricks),
    ``Noise`` (noise_std > 0), ``Preprocess`` (any defense other than "none"),
    plus one ``Preprocess: <spec>`` column per defense when the grid has several.
    Levels (paper Figures 3, 5): ``AT budget`` and ``Noise std``.

    Args:
      members: records with keys ``model``, ``at_eps``, ``noise_std``, ``preprocess``.

    Returns:
      ``{"binary": {name: float [m]}, "level": {name: float [m]}}``.
    """
    at = np.asarray([float(m["at_eps"]) for m in members])
    noise = np.asarray([float(m["noise_std"]) for m in members])
    tricks = np.asarray([m["model"] == "m5-tricks" for m in members], dtype=float)
    pre = [str(m["preprocess"]) for m in members]
    binary = {
        "AT": (at > 0).astype(float),
        "Tricks": tricks,
        "Noise": (noise > 0).astype(float),
        "Preprocess": np.asarray([p != "none" for p in pre], dtype=float),
    }
    kinds = [p for p in dict.fromkeys(pre) if p != "none"]
    if len(kinds) > 1:
        for kind in kinds:
            binary[f"Preprocess: {kind}"] = np.asarray([p == kind for p in pre], dtype=float)
    return {"binary": binary, "level": {"AT budget": at, "Noise std": noise}}


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """Pearson r, two-sided p (``fairrobust.metrics.pearsonr``); NaN and a reason if undefined."""
    from fairrobust.metrics import pearsonr

    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan"), float("nan"), f"fewer than 3 models ({x.size})"
    if np.ptp(x) == 0:
        return float("nan"), float("nan"), "intervention constant across models"
    if np.ptp(y) == 0:
        return float("nan"), float("nan"), "outcome constant across models"
    r, p = pearsonr(np.asarray(x, np.float32), np.asarray(y, np.float32))
    return float(r), float(p), ""


def correlation_rows(
    codes: Mapping[str, Mapping[str, np.ndarray]],
    outcomes: Sequence[tuple[Mapping[str, Any], np.ndarray]],
    include: np.ndarray,
) -> list[dict[str, Any]]:
    """Pearson r, p and n of every intervention code against every outcome.

    Args:
      codes: from :func:`intervention_codes`, arrays ``[m]``.
      outcomes: ``(labels, values [m])`` pairs; ``labels`` (e.g.
        ``{"outcome": "defense_parity", "attribute": "gender", "group": ""}``)
        are copied into each row. NaN values (undefined outcome) are dropped.
      include: bool ``[m]``, models to use (the non-excluded ones).

    Returns:
      Rows with the labels plus ``intervention``, ``kind`` (``"binary"`` or
      ``"level"``), ``r``, ``p``, ``n_models`` and ``note`` (why r is NaN).
    """
    include = np.asarray(include, bool)
    rows = []
    for labels, values in outcomes:
        y = np.asarray(values, float)[include]
        for kind in ("binary", "level"):
            for name, x in codes[kind].items():
                x_in = np.asarray(x, float)[include]
                r, p, note = _pearson(x_in, y)
                rows.append(
                    {
                        **labels,
                        "intervention": name,
                        "kind": kind,
                        "r": r,
                        "p": p,
                        "n_models": int(np.isfinite(y).sum()),
                        "note": note,
                    }
                )
    return rows


def _bootstrap(
    values: jax.Array,
    eps: np.ndarray,
    groups,
    speakers: np.ndarray | None,
    config: RobustnessConfig,
) -> dict[str, np.ndarray] | None:
    """Percentile bootstrap intervals of group AUC_acc, Defense Parity and clean accuracy.

    Resampling is stratified by group and clustered by speaker when speakers are
    known (``fairrobust.metrics.bootstrap_ci``); all models share the resamples.

    Returns:
      ``{"auc_low", "auc_high", "acc_low", "acc_high"}`` ``[m, g]``,
      ``{"dp_low", "dp_high", "gap_low", "gap_high"}`` ``[m]`` and
      ``{"curve_low", "curve_high"}`` ``[m, 1 + e, g]`` (group accuracy at every
      epsilon, clean first; the same resamples), or None when ``config.bootstrap == 0``.
    """
    if config.bootstrap <= 0:
        return None
    from fairrobust.metrics import AucAccStat, GroupRateStat, bootstrap_ci

    key = jax.random.fold_in(jax.random.key(config.seed), 0xB007)
    valid = tuple(bool(v) for v in np.asarray(groups.valid))
    kw = {
        "key": key,
        "num_resamples": config.bootstrap,
        "level": config.ci_level,
        "speakers": speakers,
        "batch_size": min(config.bootstrap, 50),
    }
    auc = bootstrap_ci(AucAccStat(tuple(map(float, eps)), valid), values[:, 1:], groups.masks, **kw)
    acc = bootstrap_ci(GroupRateStat(valid), values[:, 0], groups.masks, **kw)
    curves = bootstrap_ci(GroupRateStat(valid), values, groups.masks, **kw)
    return {
        "curve_low": np.asarray(curves.lower["rates"]),
        "curve_high": np.asarray(curves.upper["rates"]),
        "auc_low": np.asarray(auc.lower["auc_acc"]),
        "auc_high": np.asarray(auc.upper["auc_acc"]),
        "dp_low": np.asarray(auc.lower["defense_parity"]),
        "dp_high": np.asarray(auc.upper["defense_parity"]),
        "acc_low": np.asarray(acc.lower["rates"]),
        "acc_high": np.asarray(acc.upper["rates"]),
        "gap_low": np.asarray(acc.lower["parity"]),
        "gap_high": np.asarray(acc.upper["parity"]),
    }


def aggregate(
    members: Sequence[Mapping[str, Any]],
    correct: np.ndarray,
    attack_eps: Sequence[float],
    groups: Mapping[str, Any],
    *,
    num_classes: int,
    config: RobustnessConfig | None = None,
    speakers: np.ndarray | None = None,
) -> dict[str, Any]:
    """All tables of the study from per-example correctness (pure, no I/O).

    Args:
      members: per model a record with ``member_id``, ``model``, ``at_eps``,
        ``noise_std``, ``preprocess`` (and optionally ``preprocess_description``).
      correct: bool ``[m, 1 + e, n]``: robust correctness of every model on every
        evaluated example, clean first, then each attack epsilon.
      attack_eps: the ``e`` attack budgets, increasing, > 0.
      groups: attribute -> :class:`fairrobust.groups.Groups` built on the same
        ``n`` examples.
      num_classes: number of classes (chance = 1 / num_classes).
      config: supplies ``random_guess_level``, ``bootstrap``, ``ci_level``,
        ``seed`` (default: ``RobustnessConfig()``).
      speakers: optional str ``[n]`` speaker of each example (bootstrap clusters).

    Returns:
      ``{"tables": {name: rows}, "matrices": {...}}`` with tables ``models``,
      ``groups``, ``group_metrics``, ``group_curves``, ``defense_parity``,
      ``correlations`` (see :func:`run_study` for the columns) and matrices for
      the figures: per attribute ``auc [m, g]`` and ``curves [m, 1 + e, g]``.

    Raises:
      ValueError: shapes of ``correct``, ``members`` and ``attack_eps`` disagree.
    """
    from fairrobust.metrics import auc_acc, defense_parity, group_rates

    config = config or RobustnessConfig()
    correct = np.asarray(correct).astype(bool)
    eps = np.asarray(attack_eps, dtype=float)
    m = len(members)
    if correct.ndim != 3 or correct.shape[:2] != (m, 1 + eps.size):
        raise ValueError(
            f"correct: expected shape (models={m}, 1 + n_eps={1 + eps.size}, n), "
            f"got {correct.shape}"
        )
    n = correct.shape[2]
    values = jnp.asarray(correct, jnp.float32)
    eps_j = jnp.asarray(eps, jnp.float32)
    everyone = jnp.ones((1, n), bool)

    clean_acc = correct[:, 0].mean(axis=1) if n else np.full(m, np.nan)
    overall_auc = np.asarray(auc_acc(values[:, 1:], eps_j, everyone))[:, 0]
    overall_auc_norm = np.asarray(auc_acc(values[:, 1:], eps_j, everyone, normalize=True))[:, 0]
    overall_curve = correct.mean(axis=2)  # [m, 1 + e]
    pvals, excluded = random_guess_test(
        correct[:, 0].sum(axis=1), n, num_classes, config.random_guess_level
    )

    def coords(i: int) -> dict[str, Any]:
        rec = members[i]
        return {
            "member_id": rec["member_id"],
            "model": rec["model"],
            "at_eps": float(rec["at_eps"]),
            "noise_std": float(rec["noise_std"]),
            "preprocess": rec["preprocess"],
        }

    models_rows = []
    for i in range(m):
        row = {
            **coords(i),
            "preprocess_description": members[i].get("preprocess_description", ""),
            "bpda": bool(members[i].get("bpda", False)),
            "n_test": n,
            "clean_accuracy": float(clean_acc[i]),
            "auc_acc": float(overall_auc[i]),
            "auc_acc_normalized": float(overall_auc_norm[i]),
        }
        for j, e in enumerate(eps):
            row[f"acc@{format_value(float(e))}"] = float(overall_curve[i, j + 1])
        row["random_guess_p"] = float(pvals[i])
        row["excluded"] = bool(excluded[i])
        models_rows.append(row)

    group_rows, metric_rows, curve_rows, dp_rows, outcomes = [], [], [], [], []
    matrices: dict[str, dict[str, np.ndarray]] = {}
    for attr, grp in groups.items():
        sizes = np.asarray(grp.sizes)
        valid = np.asarray(grp.valid)
        for name, size, ok in zip(grp.names, sizes, valid, strict=True):
            group_rows.append(
                {
                    "attribute": attr,
                    "group": name,
                    "n_test": int(size),
                    "valid": bool(ok),
                    "note": "" if ok else f"under min size {grp.min_size}",
                }
            )
        if grp.num_groups == 0:
            for i in range(m):
                dp_rows.append(
                    {
                        **coords(i),
                        "excluded": bool(excluded[i]),
                        "attribute": attr,
                        "defense_parity": float("nan"),
                        "clean_accuracy_gap": float("nan"),
                        "n_valid_groups": 0,
                        "best_group": "",
                        "worst_group": "",
                        "ignored_groups": [],
                        "note": "no groups (all unknown)",
                    }
                )
            continue
        curves = np.asarray(group_rates(values, grp.masks))  # [m, 1 + e, g]
        auc = np.asarray(auc_acc(values[:, 1:], eps_j, grp.masks))  # [m, g]
        dp = np.asarray(defense_parity(jnp.asarray(auc), jnp.asarray(valid)))  # [m]
        ci = _bootstrap(values, eps, grp, speakers, config)
        matrices[attr] = {"auc": auc, "curves": curves, "valid": valid, "sizes": sizes}
        if ci is not None:
            matrices[attr]["curves_low"] = ci["curve_low"]
            matrices[attr]["curves_high"] = ci["curve_high"]
        ignored = [nm for nm, ok in zip(grp.names, valid, strict=True) if not ok]
        for i in range(m):
            for g, name in enumerate(grp.names):
                row = {
                    **coords(i),
                    "excluded": bool(excluded[i]),
                    "attribute": attr,
                    "group": name,
                    "n": int(sizes[g]),
                    "valid": bool(valid[g]),
                    "clean_accuracy": float(curves[i, 0, g]),
                    "auc_acc": float(auc[i, g]),
                }
                if ci is not None:
                    row["clean_accuracy_ci_low"] = float(ci["acc_low"][i, g])
                    row["clean_accuracy_ci_high"] = float(ci["acc_high"][i, g])
                    row["auc_acc_ci_low"] = float(ci["auc_low"][i, g])
                    row["auc_acc_ci_high"] = float(ci["auc_high"][i, g])
                metric_rows.append(row)
                for j in range(1 + eps.size):
                    curve_row = {
                        "member_id": members[i]["member_id"],
                        "attribute": attr,
                        "group": name,
                        "n": int(sizes[g]),
                        "valid": bool(valid[g]),
                        "epsilon": 0.0 if j == 0 else float(eps[j - 1]),
                        "accuracy": float(curves[i, j, g]),
                    }
                    if ci is not None:
                        curve_row["ci_low"] = float(ci["curve_low"][i, j, g])
                        curve_row["ci_high"] = float(ci["curve_high"][i, j, g])
                    curve_rows.append(curve_row)
            vidx = np.flatnonzero(valid)
            row = {
                **coords(i),
                "excluded": bool(excluded[i]),
                "attribute": attr,
                "defense_parity": float(dp[i]),
                "clean_accuracy_gap": float("nan"),
                "n_valid_groups": int(vidx.size),
                "best_group": "",
                "worst_group": "",
                "ignored_groups": ignored,
                "note": "",
            }
            if vidx.size >= 2:
                a = auc[i, vidx]
                if a.max() > a.min():
                    row["best_group"] = grp.names[vidx[int(np.argmax(a))]]
                    row["worst_group"] = grp.names[vidx[int(np.argmin(a))]]
                else:
                    row["note"] = "all valid groups have the same AUC_acc"
                c = curves[i, 0, vidx]
                row["clean_accuracy_gap"] = float(c.max() - c.min())
            else:
                row["defense_parity"] = float("nan")
                row["note"] = f"fewer than 2 groups of size >= {grp.min_size}"
            if ci is not None:
                row["defense_parity_ci_low"] = float(ci["dp_low"][i])
                row["defense_parity_ci_high"] = float(ci["dp_high"][i])
                row["clean_accuracy_gap_ci_low"] = float(ci["gap_low"][i])
                row["clean_accuracy_gap_ci_high"] = float(ci["gap_high"][i])
            dp_rows.append(row)
        dp_vals = np.asarray([r["defense_parity"] for r in dp_rows[-m:]], float)
        outcomes.append(({"outcome": "defense_parity", "attribute": attr, "group": ""}, dp_vals))
        for g, name in enumerate(grp.names):
            if valid[g]:
                outcomes.append(
                    ({"outcome": "group_auc_acc", "attribute": attr, "group": name}, auc[:, g])
                )

    codes = intervention_codes(members)
    corr_rows = correlation_rows(codes, outcomes, ~excluded)
    return {
        "tables": {
            "models": models_rows,
            "groups": group_rows,
            "group_metrics": metric_rows,
            "group_curves": curve_rows,
            "defense_parity": dp_rows,
            "correlations": corr_rows,
        },
        "matrices": matrices,
        "excluded": excluded,
        "random_guess_p": pvals,
    }


# ============================================================================ figures


def _corr_matrix(rows: Sequence[Mapping[str, Any]], outcome: str, kind: str):
    """One outcome/kind as (r [rows, cols], p, row labels, col labels); constant cols dropped."""
    sel = [r for r in rows if r["outcome"] == outcome and r["kind"] == kind]
    row_keys = list(dict.fromkeys((r["attribute"], r["group"]) for r in sel))
    cols = list(dict.fromkeys(r["intervention"] for r in sel))
    r_mat = np.full((len(row_keys), len(cols)), np.nan)
    p_mat = np.full_like(r_mat, np.nan)
    notes: dict[str, set[str]] = {c: set() for c in cols}
    for r in sel:
        i = row_keys.index((r["attribute"], r["group"]))
        j = cols.index(r["intervention"])
        r_mat[i, j] = r["r"]
        p_mat[i, j] = r["p"]
        notes[r["intervention"]].add(r["note"])
    keep = [j for j, c in enumerate(cols) if notes[c] != {"intervention constant across models"}]
    labels = [a if not g else f"{a}: {g}" for a, g in row_keys]
    return r_mat[:, keep], p_mat[:, keep], labels, [cols[j] for j in keep]


def write_figures(
    agg: Mapping[str, Any],
    members: Sequence[Mapping[str, Any]],
    groups: Mapping[str, Any],
    attack_eps: Sequence[float],
    fig_dir: str | os.PathLike[str],
    *,
    prefix: str,
    num_classes: int,
    focus: Sequence[str] = (),
) -> dict[str, Path]:
    """Draw the study's figures from :func:`aggregate`'s output.

    Figures (``<prefix>`` = ``robustness_<dataset>``):
      * ``<prefix>_corr_{binary,levels}_dp.png``: r of interventions vs Defense
        Parity, one row per attribute (paper Figures 2-5);
      * ``<prefix>_corr_{binary,levels}_groups.png``: r vs each group's AUC_acc;
      * ``<prefix>_curves_<attribute>_<member>.png``: accuracy vs epsilon per group
        for each member in ``focus`` (default: the undefended baseline and the
        most robust non-excluded model);
      * ``<prefix>_auc_<attribute>.png``: AUC_acc per group for every model.

    Returns:
      Figure name -> path.
    """
    from fairrobust.figures import robustness as figs

    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    rows = agg["tables"]["correlations"]
    for outcome, tag in (("defense_parity", "dp"), ("group_auc_acc", "groups")):
        for kind, ktag in (("binary", "binary"), ("level", "levels")):
            r, p, rl, cl = _corr_matrix(rows, outcome, kind)
            if r.size == 0:
                continue
            what = "Defense Parity" if outcome == "defense_parity" else "group AUC_acc"
            name = f"corr_{ktag}_{tag}"
            out[name] = figs.correlation_heatmap(
                r,
                rl,
                cl,
                fig_dir / f"{prefix}_{name}.png",
                pvalues=p,
                title=f"Pearson r: {kind} interventions vs {what} (* p < 0.05)",
            )
    excluded = np.asarray(agg["excluded"], bool)
    ids = [mm["member_id"] for mm in members]
    models_rows = agg["tables"]["models"]
    if not focus:
        chosen = [ids[0]]
        ok = [i for i in range(len(ids)) if not excluded[i]]
        if ok:
            best = max(ok, key=lambda i: (models_rows[i]["auc_acc"], -i))
            chosen.append(ids[best])
        focus = list(dict.fromkeys(chosen))
    eps = np.asarray(attack_eps, float)
    for attr, mats in agg["matrices"].items():
        grp = groups[attr]
        labels = [
            f"{nm} (n={int(s)})" + ("" if v else ", small")
            for nm, s, v in zip(grp.names, mats["sizes"], mats["valid"], strict=True)
        ]
        for mid in focus:
            if mid not in ids:
                raise ValueError(f"focus: unknown member {mid!r}; members: {ids}")
            i = ids.index(mid)
            name = f"curves_{slugify(attr)}_{slugify(mid)}"
            band = {}
            if "curves_low" in mats:  # bootstrap band around every group's curve
                band = {
                    "lower": mats["curves_low"][i, 1:].T,
                    "upper": mats["curves_high"][i, 1:].T,
                    "clean_lower": mats["curves_low"][i, 0],
                    "clean_upper": mats["curves_high"][i, 0],
                }
            out[name] = figs.accuracy_vs_epsilon(
                eps,
                mats["curves"][i, 1:].T,
                labels,
                fig_dir / f"{prefix}_{name}.png",
                clean_accuracy=mats["curves"][i, 0],
                chance=1.0 / num_classes,
                **band,
                title=f"{mid}: accuracy under PGD L-inf by {attr}",
            )
        name = f"auc_{slugify(attr)}"
        out[name] = figs.group_auc_bars(
            mats["auc"],
            ids,
            labels,
            fig_dir / f"{prefix}_{name}.png",
            excluded=excluded,
            title=f"AUC_acc per {attr} group (hatched: excluded as random guessing)",
        )
    return out


# ============================================================================ driver


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One evaluated member: its coordinates, correctness and where it is stored.

    Attributes:
      spec: the :class:`MemberSpec`.
      correct: bool ``[1 + n_eps, n_test]`` (clean first).
      clean_accuracy: mean of ``correct[0]``.
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
        """The coordinate record :func:`aggregate` and :func:`intervention_codes` take."""
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


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextlib.contextmanager
def _bar(enabled: bool, total: int, desc: str) -> Iterator[Any]:
    if not enabled:
        yield _NoBar()
        return
    with _io.progress(total=total, desc=desc, leave=True) as bar:
        yield bar


def _test_index(dataset, config: RobustnessConfig) -> np.ndarray:
    """Indices of the evaluated test examples (all, or a seeded subset, sorted)."""
    idx = np.flatnonzero(np.asarray(dataset.splits) == "test")
    if idx.size == 0:
        raise ValueError(f"dataset {dataset.name!r}: the test split is empty")
    if config.max_test_examples and idx.size > config.max_test_examples:
        rng = np.random.default_rng([config.seed, 0x7E57])
        idx = np.sort(rng.choice(idx, config.max_test_examples, replace=False))
    return idx


def resolve_groups(attributes: Mapping[str, np.ndarray], config: RobustnessConfig):
    """Attribute names and intersections of the config, checked against the data."""
    from fairrobust.groups import all_groups

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


def _member_key(config: RobustnessConfig, spec: MemberSpec) -> jax.Array:
    """Attack key of a member: the study seed folded with the member's eval hash."""
    return jax.random.fold_in(jax.random.key(config.seed), int(spec.eval_hash[:7], 16))


def _train_member(dataset, spec: MemberSpec, models_dir: Path, *, resume: bool, progress: bool):
    """Train (or resume / reuse) the model of ``spec``.

    Returns ``(apply_fn, variables, info)``; ``info`` summarises the run (best
    epoch and its validation metrics) for the member file.
    """
    from fairrobust.train import TrainConfig, train

    tc = TrainConfig(**spec.train_spec["train_config"])
    result = train(
        dataset, tc, out_dir=models_dir / spec.train_id, resume=resume, progress=progress
    )
    best = next((h for h in result.history if h.get("epoch") == result.best_epoch), {})
    info = {
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "val_loss": best.get("val_loss"),
        "val_acc": best.get("val_acc"),
        "train_acc": best.get("train_acc"),
    }
    return result.apply_fn, result.variables, info


def _attack_member(
    apply_fn,
    variables,
    x: np.ndarray,
    y: np.ndarray,
    spec: MemberSpec,
    config: RobustnessConfig,
    sample_rate: int,
    progress: bool = True,
) -> tuple[np.ndarray, Any]:
    """Correctness ``[1 + e, n]`` of one member under the epsilon sweep (clean first)."""
    from fairrobust.attacks import robust_correct
    from fairrobust.defenses import with_preprocess

    pre = parse_preprocess(spec.preprocess, sample_rate)
    fn = with_preprocess(apply_fn, pre)
    eps = jnp.asarray([0.0, *config.attack_eps], jnp.float32)
    correct = robust_correct(
        fn,
        variables,
        jnp.asarray(x),
        jnp.asarray(y),
        eps,
        _member_key(config, spec),
        num_steps=config.attack_steps,
        norm="linf",
        rel_step=config.attack_rel_step,
        random_start=False,
        batch_size=config.attack_batch_size,
        progress=progress,
    )
    return np.asarray(correct, dtype=bool), pre


def run_study(
    dataset,
    config: RobustnessConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    focus: Sequence[str] = (),
    make_figures: bool = True,
) -> RobustnessResults:
    """Train, attack and analyse the grid of ``config`` on ``dataset``; write every result.

    For each trained model (``models x at_eps x noise_std``) the checkpoint under
    ``out_dir/models/<train_id>/`` is reused or trained; for each preprocessing
    defense the model is attacked at every epsilon and the correctness
    ``[1 + n_eps, n_test]`` saved as a member file. With ``resume`` finished
    members are loaded instead of recomputed; files are keyed by a hash of their
    settings, so a changed config recomputes exactly the affected members (a
    message says so) and never reuses stale ones. Then :func:`aggregate` builds
    the tables and :func:`write_figures` the figures.

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
    results_dir, fig_dir, models_dir = out / "results", out / "figures", out / "models"
    prefix = f"robustness_{slugify(dataset.name)}"
    fingerprint = dataset.fingerprint()
    test_index = _test_index(dataset, config)
    test = dataset.select(test_index)
    groups = resolve_groups(test.attributes, config)
    plan = plan_members(config, fingerprint, sample_rate=dataset.sample_rate, test_index=test_index)
    config_hash = config.hash()
    config_path = results_dir / f"{prefix}_config.json"
    message = check_config_change(config_path, config_hash)
    if message:
        logger.warning("%s", message)
    _io.atomic_write_json(
        config_path,
        {
            "config": config.to_dict(),
            "config_hash": config_hash,
            "dataset": dataset.name,
            "data_fingerprint": fingerprint,
            "library_version": library_version(),
        },
    )

    x_test = np.asarray(test.waveforms, np.float32)
    y_test = np.asarray(test.labels, np.int32)
    by_train: dict[str, list[MemberSpec]] = {}
    for spec in plan:
        by_train.setdefault(spec.train_id, []).append(spec)
    done: dict[str, MemberResult] = {}
    with _bar(progress, len(plan), f"{prefix}: models") as bar:
        for train_id, specs in by_train.items():
            todo = []
            for spec in specs:
                loaded = (
                    load_member(models_dir / train_id, spec.file_stem, spec_hash=spec.eval_hash)
                    if resume
                    else None
                )
                if loaded is None:
                    todo.append(spec)
                    continue
                meta, arrays = loaded
                done[spec.member_id] = _member_result(spec, meta, arrays, models_dir, True)
                bar.update(1)
            if not todo:
                continue
            bar.set_postfix_str(f"training {train_id}")
            apply_fn, variables, train_info = _train_member(
                dataset, todo[0], models_dir, resume=resume, progress=progress
            )
            for spec in todo:
                bar.set_postfix_str(f"attacking {spec.member_id}")
                correct, pre = _attack_member(
                    apply_fn,
                    variables,
                    x_test,
                    y_test,
                    spec,
                    config,
                    dataset.sample_rate,
                    progress=progress,
                )
                meta = _member_meta(spec, correct, pre, config, config_hash, dataset, fingerprint)
                meta["training"] = train_info
                arrays = {
                    "correct": correct,
                    "epsilons": np.asarray([0.0, *config.attack_eps], np.float64),
                    "test_index": np.asarray(test_index, np.int64),
                }
                save_member(
                    models_dir / train_id,
                    spec.file_stem,
                    spec_hash=spec.eval_hash,
                    meta=meta,
                    arrays=arrays,
                )
                done[spec.member_id] = _member_result(
                    spec, _io.to_jsonable(meta), arrays, models_dir, False
                )
                bar.update(1)
    members = tuple(done[spec.member_id] for spec in plan)
    return _finish(
        dataset,
        config,
        config_hash,
        fingerprint,
        test_index,
        members,
        groups,
        results_dir,
        fig_dir,
        prefix,
        focus,
        make_figures,
        t0,
    )


def _member_meta(
    spec: MemberSpec,
    correct: np.ndarray,
    pre,
    config: RobustnessConfig,
    config_hash: str,
    dataset,
    fingerprint: str,
) -> dict[str, Any]:
    return {
        "member_id": spec.member_id,
        "train_id": spec.train_id,
        "dataset": dataset.name,
        "data_fingerprint": fingerprint,
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
        "clean_accuracy": float(correct[0].mean()),
        "accuracy": [float(v) for v in correct.mean(axis=1)],
    }


def _member_result(
    spec: MemberSpec,
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    models_dir: Path,
    reused: bool,
) -> MemberResult:
    correct = np.asarray(arrays["correct"], bool)
    d = models_dir / spec.train_id
    return MemberResult(
        spec=spec,
        correct=correct,
        clean_accuracy=float(correct[0].mean()),
        preprocess_description=str(meta.get("preprocess_description", "")),
        bpda=bool(meta.get("bpda", False)),
        reused=reused,
        json_path=d / f"{spec.file_stem}.json",
        npz_path=d / f"{spec.file_stem}.npz",
    )


def _finish(
    dataset,
    config: RobustnessConfig,
    config_hash: str,
    fingerprint: str,
    test_index: np.ndarray,
    members: Sequence[MemberResult],
    groups,
    results_dir: Path,
    fig_dir: Path,
    prefix: str,
    focus: Sequence[str],
    make_figures: bool,
    t0: float,
) -> RobustnessResults:
    """Aggregate, write tables, summary and figures; build the results record."""
    records = [mr.record() for mr in members]
    correct = np.stack([mr.correct for mr in members])
    agg = aggregate(
        records,
        correct,
        config.attack_eps,
        groups,
        num_classes=dataset.num_classes,
        config=config,
        speakers=np.asarray(dataset.speakers)[test_index],
    )
    files: dict[str, Path] = {"config": results_dir / f"{prefix}_config.json"}
    for name, rows in agg["tables"].items():
        csv_path, json_path = write_table(results_dir / f"{prefix}_{name}", rows)
        files[f"{name}_csv"], files[f"{name}_json"] = csv_path, json_path
    excluded = tuple(r["member_id"] for r in agg["tables"]["models"] if r["excluded"])
    figures: dict[str, Path] = {}
    if make_figures:
        figures = write_figures(
            agg,
            records,
            groups,
            config.attack_eps,
            fig_dir,
            prefix=prefix,
            num_classes=dataset.num_classes,
            focus=focus,
        )
    summary = {
        "study": "robustness",
        "dataset": dataset.name,
        "data_fingerprint": fingerprint,
        "config": config.to_dict(),
        "config_hash": config_hash,
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
        "num_classes": dataset.num_classes,
        "chance_accuracy": 1.0 / dataset.num_classes,
        "n_test": len(test_index),
        "n_models": len(members),
        "excluded": [
            {
                "member_id": r["member_id"],
                "clean_accuracy": r["clean_accuracy"],
                "random_guess_p": r["random_guess_p"],
            }
            for r in agg["tables"]["models"]
            if r["excluded"]
        ],
        "random_guess_test": f"one-sided binomial test vs 1/{dataset.num_classes}, "
        f"excluded when p > {config.random_guess_level}",
        "preprocess": {mr.spec.preprocess: mr.preprocess_description for mr in members},
        "groups": {k: g.to_dict() for k, g in groups.items()},
        "members": [
            {**mr.record(), "file": mr.json_path.relative_to(results_dir.parent)} for mr in members
        ],
        "files": {k: v.relative_to(results_dir.parent) for k, v in files.items()},
        "figures": {k: v.relative_to(results_dir.parent) for k, v in figures.items()},
    }
    files["summary"] = _io.atomic_write_json(results_dir / f"{prefix}_summary.json", summary)
    # Written last: vouches for the bytes of every results file of this run.
    files["provenance"] = write_provenance(
        results_dir,
        prefix,
        study="robustness",
        dataset=dataset.name,
        data_fingerprint=fingerprint,
        config=config,
        config_hash=config_hash,
    )
    return RobustnessResults(
        dataset=dataset.name,
        config=config,
        config_hash=config_hash,
        data_fingerprint=fingerprint,
        attack_eps=tuple(config.attack_eps),
        num_classes=dataset.num_classes,
        test_index=np.asarray(test_index),
        members=tuple(members),
        groups={k: g.to_dict() for k, g in groups.items()},
        tables=agg["tables"],
        excluded=excluded,
        files=files,
        figures=figures,
        seconds=time.perf_counter() - t0,
    )


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
