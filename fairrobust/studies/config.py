"""The one home of every study setting: config dataclasses, presets, TOML files.

Three configs, one per study of ``fairrobust run``:

* :class:`RobustnessConfig` -- the robustness-training grid (paper section 3.1);
* :class:`RejectionConfig` -- neural rejection vs randomized smoothing (section 3.2);
* :class:`SoundnessConfig` -- the attack-soundness checks of a run.

Presets (:data:`PRESETS`): ``quick`` (a 2-core CPU in minutes), ``paper`` (the
AISec'23 settings) and ``tiny`` (tests and smoke checks: seconds, meaningless
numbers). :func:`load_configs` gives the three configs of a run: the preset, then
a TOML file's ``[robustness]`` / ``[rejection]`` / ``[soundness]`` tables, then
the run-wide settings (seed, attributes, intersections). :func:`load_config`
gives one study's config for ``fairrobust study`` (TOML fields at top level or in
that study's table). Every TOML value is type-checked against the dataclass
annotations by :func:`apply_overrides`; errors name the file, table and field.
Example: ``rob, rej, sound = config.load_configs("quick", "run.toml", seed=1)``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from fairrobust import _io, smoothing
from fairrobust.defenses import parse_preprocess
from fairrobust.frontend import SPACES
from fairrobust.groups import ALL_PAIRS, parse_intersections
from fairrobust.studies.config_toml import RENAMED_FIELDS, apply_overrides, read_toml, to_toml

__all__ = [
    "PRESETS",
    "REJECTION_PRESETS",
    "RENAMED_FIELDS",
    "ROBUSTNESS_PRESETS",
    "SOUNDNESS_ALIASES",
    "SOUNDNESS_PRESETS",
    "STUDY_TABLES",
    "RejectionConfig",
    "RobustnessConfig",
    "RunConfigs",
    "SoundnessConfig",
    "apply_overrides",
    "load_config",
    "load_configs",
    "preset",
    "preset_toml",
    "read_toml",
]

#: Presets every study has (``tiny`` is for tests: seconds, meaningless numbers).
PRESETS = ("quick", "paper", "tiny")
#: Tables of a run config file, one per study.
STUDY_TABLES = ("robustness", "rejection", "soundness")
#: Architectures of the robustness grid.
MODELS = ("m5", "m5-tricks")

# ----------------------------------------------------------------------------- robustness


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
      attack_eps: L-inf attack budgets (> 0, at least two: AUC_acc integrates over
        them); epsilon 0 (clean) is always added.
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
      intersections: intersections to analyse, as attribute-name tuples (TOML and
        the CLI also take ``"a x b"`` / ``"a,b"`` strings, parsed by
        :func:`fairrobust.groups.parse_intersections`), or ``"all-pairs"``;
        default none (the paper analyses
        attributes one at a time, and intersections of these small datasets are
        mostly under any sensible minimum size).
      min_group_size: groups with fewer test examples are reported but ignored
        in Defense Parity.
      min_speakers: groups with fewer distinct test speakers (independent units;
        clips when speakers are unknown) get no interval and are left out of
        parity and of every comparison (default 2; 5 or more recommended: the
        intervals' simulated coverage is near nominal from about 5 speakers per
        group, see ``benchmarks/README.md``).
      random_guess_level: models whose clean accuracy is not significantly above
        chance at this level (binomial test) are excluded from correlations.
      max_examples: cap on evaluated test examples (seeded random subset);
        0 = the whole test split.
      bootstrap_resamples: bootstrap resamples for confidence intervals on group AUC_acc
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
    intersections: tuple[tuple[str, ...], ...] = ()
    min_group_size: int = 10
    min_speakers: int = 2
    random_guess_level: float = 0.05
    max_examples: int = 0
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(str(a) for a in self.attributes))
        object.__setattr__(self, "intersections", parse_intersections(self.intersections))
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
    # AUC_acc integrates over the attack budgets (paper Eq. 1): one budget has no integral,
    # and the analysis would fail only after every model is trained and attacked.
    need(
        len(c.attack_eps) >= 2
        and all(e > 0 for e in c.attack_eps)
        and list(c.attack_eps) == sorted(set(c.attack_eps)),
        "attack_eps",
        "an increasing list of at least two budgets > 0 (AUC_acc integrates over them)",
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
    need(c.min_speakers >= 1, "min_speakers", "an integer >= 1")
    need(0 < c.random_guess_level < 1, "random_guess_level", "a number in (0, 1)")
    need(c.max_examples >= 0, "max_examples", "an integer >= 0 (0 = all)")
    need(c.bootstrap_resamples >= 0, "bootstrap_resamples", "an integer >= 0 (0 = no intervals)")
    need(0 < c.ci_level < 1, "ci_level", "a number in (0, 1)")
    need(
        (ALL_PAIRS,) not in c.intersections or len(c.intersections) == 1,
        "intersections",
        f"either [{ALL_PAIRS!r}] alone or a list of 'a x b' specs",
    )


#: ``paper`` is the AISec'23 grid (40 models, 100-step PGD at six budgets);
#: ``quick`` is 8 small models trained for a few epochs and attacked at three
#: budgets on at most 300 test clips, a few minutes on a 2-core CPU on the
#: bundled data; ``tiny`` (below) is for tests.
ROBUSTNESS_PRESETS: dict[str, RobustnessConfig] = {
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
        max_examples=300,
        bootstrap_resamples=200,
    ),
}


# ----------------------------------------------------------------------------- rejection


@dataclasses.dataclass(frozen=True)
class RejectionConfig:
    """Settings of the rejection study (defaults = the AISec'23 paper, preset ``paper``).

    Attributes:
      model: architecture of both base models (``"m5"`` or ``"m5-tricks"``).
      width: M5 channel width of both base models.
      epochs: training epochs of both base models (best validation checkpoint kept).
      batch_size: training batch size of both base models.
      lr: Adam learning rate of both base models.
      sigma: Gaussian noise std of the RS base-model training, validation and smoothing.
      noise: smoothing noise family, any name registered in ``fairrobust.smoothing``
        (the RS base model is always trained with Gaussian noise of std ``sigma``).
      num_samples: nested N of the RS sweep, increasing; one pass of the largest.
      chunk_size: noise draws per input per forward pass (memory / speed only).
      sample_batch_size: test clips per sampling call (memory / progress only).
      alpha_min: smallest threshold of the grid shared by RS (alpha on the p-value,
        reject iff p > alpha) and NR (t on the top SVM score, reject iff score < t).
      alpha_max: largest threshold of that grid.
      alpha_step: step of that grid.
      nr_max_train: subsample of training features for the SVM (None = all), seeded.
      certify: run CERTIFY for certified accuracy per group.
      certify_n0: CERTIFY selection draws per clip.
      certify_n: CERTIFY estimation draws per clip.
      certify_alpha: CERTIFY failure probability (the certificates' level is 1 - alpha).
      certify_sigmas: noise stds of CERTIFY, one batched sweep with the RS base model
        (trained at ``sigma``; empty = ``(sigma,)``), as the audio-certification paper
        certifies one model at several sigmas; results per sigma x radius x group.
      certify_norm: which certificate of the noise family (``"l1"``, ``"l2"``,
        ``"linf"``; empty = the family's first: L2 Gaussian, L1 Laplace / uniform).
      certify_adaptive: CERTIFY in rounds, stopping an input once its decision is
        settled (``fairrobust.smoothing.adaptive_certify``; level alpha kept by a
        union bound over the looks); default off, so results match the paper's fixed n.
      radii: radius grid of the certified-accuracy curves (in the certificate's norm
        and the space smoothed: waveform units for the M5).
      representations: also train a classifier of each representation (``"stft"``
        magnitude, ``"mel"`` log-Mel energies; ``fairrobust.frontend``, model
        ``spec-<name>``, trained without noise) and CERTIFY it at ``certify_sigmas``.
      representation_smoothing: where their noise is added: ``"representation"``
        (radii in the normalised representation's units), ``"waveform"`` or ``"both"``.
      sampling_mode: ``"independent"`` noise per input or ``"shared_bank"``, a bank
        shared by the inputs of a call (same per-input guarantees, correlated decisions
        across inputs); the sampler's speed options are in README "Sampling options".
      linear_stem: the M5's linear first layer computed once per input and draw
        (``shared_bank`` only).
      prng_impl: the noise generator (empty = threefry2x32; or rbg, unsafe_rbg).
      compute_dtype: the forward-pass dtype (empty = float32; or bfloat16, float16).
      certified_range: ``(r_lo, r_hi)`` radius range of Certified Parity (the
        normalised area under each group's certified-accuracy curve over it);
        empty = ``(0, max(radii))``.
      attributes: attributes to group by (empty = every attribute of the dataset).
      intersections: attribute tuples whose intersections are also groups (see
        :func:`fairrobust.groups.parse_intersections` for the string forms).
      min_group_size: groups smaller than this are reported but left out of parity
        and correlations.
      min_speakers: groups with fewer distinct test speakers (independent units;
        clips when speakers are unknown) get no interval and are left out of
        parity and of every comparison (default 2; 5 or more recommended: the
        intervals' simulated coverage is near nominal from about 5 speakers per
        group, see ``benchmarks/README.md``).
      keep_unknown: keep groups whose attribute value is ``"unknown"``.
      max_examples: cap on evaluated test clips (seeded subsample; 0 = all).
      split: evaluated split.
      bootstrap_resamples: bootstrap resamples for confidence intervals on AUC_FPR
        and FPR Parity (stratified by group, clustered by speaker; 0 = none).
      ci_level: confidence level of those intervals.
      seed: seeds training, subsampling, noise and the bootstrap.
    """

    model: str = "m5"
    width: int = 32
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    sigma: float = 0.1
    noise: str = "gaussian"
    num_samples: tuple[int, ...] = (10, 100, 1000, 10000)
    chunk_size: int = 16
    sample_batch_size: int = 16
    alpha_min: float = 0.001
    alpha_max: float = 1.0
    alpha_step: float = 0.001
    nr_max_train: int | None = None
    certify: bool = True
    certify_n0: int = 100
    certify_n: int = 10000
    certify_alpha: float = 0.001
    certify_sigmas: tuple[float, ...] = ()
    certify_norm: str = ""
    certify_adaptive: bool = False
    radii: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(15))
    representations: tuple[str, ...] = ()
    representation_smoothing: str = "representation"
    sampling_mode: str = "independent"
    linear_stem: bool = False
    prng_impl: str = ""
    compute_dtype: str = ""
    certified_range: tuple[float, ...] = ()
    attributes: tuple[str, ...] = ()
    intersections: tuple[tuple[str, ...], ...] = ()
    min_group_size: int = 5
    min_speakers: int = 2
    keep_unknown: bool = False
    max_examples: int = 0
    split: str = "test"
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise sequences (TOML / CLI give lists) so the config stays hashable.
        set_ = object.__setattr__
        set_(self, "num_samples", tuple(int(v) for v in self.num_samples))
        set_(self, "radii", tuple(float(v) for v in self.radii))
        set_(self, "certify_sigmas", tuple(float(v) for v in self.certify_sigmas))
        set_(self, "representations", tuple(str(v) for v in self.representations))
        set_(self, "certified_range", tuple(float(v) for v in self.certified_range))
        set_(self, "attributes", tuple(str(a) for a in self.attributes))
        set_(self, "intersections", parse_intersections(self.intersections))
        ns = self.num_samples
        if not ns or any(n < 1 for n in ns) or list(ns) != sorted(set(ns)):
            raise ValueError(f"num_samples: expected increasing positive integers, got {ns}")
        for name in (
            "width",
            "epochs",
            "batch_size",
            "chunk_size",
            "sample_batch_size",
            "certify_n0",
            "certify_n",
            "min_group_size",
            "min_speakers",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        v = self.nr_max_train
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
            raise ValueError(f"nr_max_train: expected None or an integer >= 2, got {v!r}")
        v = self.max_examples
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"max_examples: expected an integer >= 0 (0 = all), got {v!r}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma: expected a positive number, got {self.sigma:g}")
        if not 0 < self.alpha_min < self.alpha_max <= 1 or not 0 < self.alpha_step:
            raise ValueError(
                "alpha grid: expected 0 < alpha_min < alpha_max <= 1 and alpha_step > 0, got "
                f"({self.alpha_min}, {self.alpha_max}, {self.alpha_step})"
            )
        if isinstance(self.bootstrap_resamples, bool) or self.bootstrap_resamples < 0:
            raise ValueError(
                f"bootstrap_resamples: expected an integer >= 0, got {self.bootstrap_resamples!r}"
            )
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level: expected a value in (0, 1), got {self.ci_level}")
        if not 0 < self.certify_alpha < 1:
            raise ValueError(f"certify_alpha: expected a value in (0, 1), got {self.certify_alpha}")
        if any(r < 0 for r in self.radii) or list(self.radii) != sorted(self.radii):
            raise ValueError(f"radii: expected increasing non-negative radii, got {self.radii}")
        cr = self.certified_range
        if cr and not (len(cr) == 2 and 0 <= cr[0] < cr[1] and math.isfinite(cr[1])):
            raise ValueError(
                f"certified_range: expected () or (r_lo, r_hi) with 0 <= r_lo < r_hi, got {cr}"
            )
        if not isinstance(self.noise, str) or not self.noise:
            raise ValueError(f"noise: expected a registered noise name, got {self.noise!r}")
        s = self.certify_sigmas
        if any(not (v > 0 and math.isfinite(v)) for v in s) or len(set(s)) != len(s):
            raise ValueError(f"certify_sigmas: expected distinct positive floats, got {s}")
        if any(r not in SPACES for r in self.representations):
            raise ValueError(
                f"representations: expected names in {SPACES}, got {self.representations}"
            )
        for name, options in (
            ("split", ("train", "val", "test")),
            ("representation_smoothing", ("representation", "waveform", "both")),
            ("certify_norm", ("", *smoothing.NORMS)),
            ("sampling_mode", smoothing.MODES),
            ("prng_impl", ("", *smoothing.PRNG_IMPLS)),
            ("compute_dtype", ("", *smoothing.COMPUTE_DTYPES)),
        ):
            if (v := getattr(self, name)) not in options:
                raise ValueError(f"{name}: expected one of {list(options)}, got {v!r}")
        if self.linear_stem and (self.sampling_mode != "shared_bank" or self.compute_dtype):
            raise ValueError(
                "linear_stem: expected sampling_mode = 'shared_bank' and no compute_dtype, got "
                f"sampling_mode = {self.sampling_mode!r}, compute_dtype = {self.compute_dtype!r}"
            )

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The CERTIFY sigmas: ``certify_sigmas``, or ``(sigma,)`` when empty."""
        return self.certify_sigmas or (self.sigma,)

    def replace(self, **changes: Any) -> RejectionConfig:
        """A copy with ``changes``; unknown field names raise ``ValueError``."""
        _check_fields(changes, "RejectionConfig")
        return dataclasses.replace(self, **changes)


def _check_fields(changes: Mapping[str, Any], where: str) -> None:
    names = {f.name for f in dataclasses.fields(RejectionConfig)}
    bad = sorted(set(changes) - names)
    if bad:
        raise ValueError(
            f"{where}: unknown rejection-study setting(s) {bad}; valid: {sorted(names)}"
        )


#: ``paper`` follows the AISec'23 paper; ``quick`` is sized for the bundled data
#: (~1,500 one-second clips) on a 2-core CPU in a few minutes; ``tiny`` is below.
REJECTION_PRESETS: dict[str, RejectionConfig] = {
    "paper": RejectionConfig(),
    # Cost on a 2-core CPU is dominated by RS sampling: max_examples * max(N) forward passes
    # (100 * 1000 here), then CERTIFY (100 * (20 + 200)); see the README for timings.
    "quick": RejectionConfig(
        epochs=6,
        num_samples=(10, 100, 1000),
        certify_n0=20,
        certify_n=200,
        max_examples=100,
        min_group_size=5,
        bootstrap_resamples=200,
        radii=tuple(round(0.02 * i, 3) for i in range(11)),
    ),
}


# ----------------------------------------------------------------------------- soundness


@dataclasses.dataclass(frozen=True)
class SoundnessConfig:
    """Settings of the attack-soundness checks ``fairrobust run`` adds (issue 7).

    The checks (``fairrobust.evaluation``) run on the attacked models of the
    robustness study named in ``models`` and, with ``smoothing``, on the rejection
    study's randomized-smoothing base model; ``--no-soundness`` skips them and a
    ``[soundness]`` table of the ``--config`` file overrides these fields.

    Attributes:
      enabled: run the checks.
      models: robustness-study members to check: member ids, ``"baseline"`` (the
        clean baseline), ``"most_robust"`` (the non-excluded model with the largest
        AUC_acc) or ``"all"``.
      steps: extra PGD step counts of the convergence check; empty = automatic
        (``quick`` / ``tiny``: 1, attack_steps // 2; ``paper``: 1, 10, 50). The
        study's ``attack_steps`` and ``step_multipliers`` times it are always added,
        so the study's own attack is one of the attacks tried and the longest runs
        are strictly stronger than it by construction.
      step_multipliers: multiples (each >= 2) of the study's ``attack_steps`` always
        in the convergence check (``quick`` / ``tiny``: 5 and 10, e.g. 50 and 100
        steps for quick's 10; ``paper``: 5 only, 500 steps for the paper's 100, which
        keeps the check at a few times the cost of one grid member's attack). The
        convergence verdict compares the two largest step counts.
      restarts: random restarts of the longest PGD run (the largest step count,
        worst case per example); 0 = none.
      dlr: also run PGD on the margin-ratio loss of APGD-DLR (Croce & Hein 2020)
        with the largest step count, through the same PGD loop.
      transfer: transfer attack from another trained grid member of the same
        architecture (a clean-trained one when there is one).
      smoothing: EOT attack on the smoothed classifier of the rejection study's RS
        base model (sigma and noise of the rejection study), next to plain PGD on
        the base model, both judged by the smoothed classifier.
      num_noise: M, noise draws per EOT step.
      num_samples: N, noise draws of the majority vote that evaluates the smoothed
        classifier.
      smoothing_examples: clips of the smoothing check (seeded subset of the
        rejection study's clips; 0 = all).
      max_examples: clips of the base-model checks (seeded subset of the
        robustness study's test clips; 0 = all of them, as the study). The
        study's attack and the stronger ones are compared on the same clips.
      tolerance: material accuracy difference in [0, 1] (warnings).
      chance_margin: allowed excess over chance at the largest budget.
      batch_size: examples per attack call (memory only).
    """

    enabled: bool = True
    models: tuple[str, ...] = ("baseline", "most_robust")
    steps: tuple[int, ...] = ()
    step_multipliers: tuple[int, ...] = (5, 10)
    restarts: int = 2
    dlr: bool = True
    transfer: bool = True
    smoothing: bool = True
    num_noise: int = 4
    num_samples: int = 32
    smoothing_examples: int = 32
    max_examples: int = 200
    tolerance: float = 0.02
    chance_margin: float = 0.1
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("restarts", "max_examples", "smoothing_examples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"SoundnessConfig.{name}: expected an integer >= 0, got {v!r}")
        for name in ("num_noise", "num_samples", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SoundnessConfig.{name}: expected an integer >= 1, got {v!r}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.steps):
            raise ValueError(
                f"SoundnessConfig.steps: expected integers >= 1 (or [] = automatic), "
                f"got {self.steps!r}"
            )
        if not self.step_multipliers or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 2 for m in self.step_multipliers
        ):
            raise ValueError(
                f"SoundnessConfig.step_multipliers: expected at least one integer >= 2 (more "
                f"steps than the study's attack), got {self.step_multipliers!r}"
            )
        for name in ("tolerance", "chance_margin"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"SoundnessConfig.{name}: expected a number in [0, 1], got {v!r}")
        if not self.models:
            raise ValueError("SoundnessConfig.models: expected at least one member id or alias")


#: Soundness settings per run preset (``tiny``: tests; the numbers mean nothing).
SOUNDNESS_PRESETS: Mapping[str, SoundnessConfig] = {
    "quick": SoundnessConfig(),
    # 5x only and 2 restarts: 1 + 10 + 50 + 100 + 500 steps, 2 x 500 restarts, 500 DLR
    # and 500 transfer steps per checked model, about 27 times one member's attack.
    "paper": SoundnessConfig(
        step_multipliers=(5,),
        restarts=2,
        num_noise=8,
        num_samples=100,
        smoothing_examples=0,
        max_examples=0,
    ),
    "tiny": SoundnessConfig(
        restarts=1,
        num_noise=2,
        num_samples=8,
        smoothing_examples=12,
        max_examples=0,
        batch_size=32,
    ),
}
SOUNDNESS_ALIASES = ("baseline", "most_robust", "all")


# ----------------------------------------------------------------------------- tiny


#: ``tiny`` overrides of the robustness ``quick`` preset (two 1-epoch width-4 models).
TINY_ROBUSTNESS: Mapping[str, Any] = {
    "models": ("m5",),
    "at_eps": (0.0, 0.01),
    "noise_std": (0.0,),
    "attack_eps": (0.01, 0.1),
    "attack_steps": 2,
    "epochs": 1,
    "width": 4,
    "batch_size": 16,
    "at_steps": 2,
    "min_group_size": 2,
    "max_examples": 24,
    "bootstrap_resamples": 20,
}
#: ``tiny`` overrides of the rejection ``quick`` preset.
TINY_REJECTION: Mapping[str, Any] = {
    "width": 4,
    "epochs": 1,
    "batch_size": 16,
    "num_samples": (10, 100),
    "chunk_size": 10,
    "sample_batch_size": 12,
    "alpha_min": 0.01,
    "alpha_step": 0.01,
    "certify_n0": 10,
    "certify_n": 50,
    "radii": (0.0, 0.05, 0.1),
    "min_group_size": 2,
    "max_examples": 24,
    "bootstrap_resamples": 20,
}
ROBUSTNESS_PRESETS["tiny"] = dataclasses.replace(
    ROBUSTNESS_PRESETS["quick"], preset="tiny", **TINY_ROBUSTNESS
)
REJECTION_PRESETS["tiny"] = REJECTION_PRESETS["quick"].replace(**TINY_REJECTION)

_BY_STUDY: Mapping[str, Mapping[str, Any]] = {
    "robustness": ROBUSTNESS_PRESETS,
    "rejection": REJECTION_PRESETS,
    "soundness": SOUNDNESS_PRESETS,
}


# ----------------------------------------------------------------------------- loading


def preset(study: str, name: str = "quick") -> Any:
    """The named preset (``quick``, ``paper`` or ``tiny``) of ``study``.

    Args:
      study: ``"robustness"``, ``"rejection"`` or ``"soundness"``.
      name: the preset.

    Raises:
      ValueError: unknown study or preset.
    """
    if study not in _BY_STUDY:
        raise ValueError(f"study: expected one of {list(STUDY_TABLES)}, got {study!r}")
    if name not in _BY_STUDY[study]:
        raise ValueError(f"preset: expected one of {list(PRESETS)}, got {name!r}")
    return _BY_STUDY[study][name]


def load_config(
    study: str,
    preset_name: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """One study's config: the preset, then the TOML file, then ``overrides`` (later wins).

    The file holds fields of the study's config either in a ``[<study>]`` table
    (so one file can configure every study) or at top level, e.g.::

        [robustness]
        at_eps = [0.0, 0.01]
        epochs = 20

    Raises:
      ValueError: unknown study, preset or field, wrong type, invalid value (the
        message names the file, table and field).
      FileNotFoundError: ``config_file`` does not exist.
    """
    config = preset(study, preset_name)
    if config_file is not None:
        data = read_toml(config_file)
        if isinstance(data.get(study), dict):
            table, source = data[study], f"{config_file}: [{study}]"
        else:  # top-level keys; tables of other studies are not ours
            table = {k: v for k, v in data.items() if not isinstance(v, dict)}
            source = str(config_file)
        config = apply_overrides(config, table, source=source)
    if overrides:
        config = apply_overrides(config, overrides, source="command line")
    return config


class RunConfigs(typing.NamedTuple):
    """The three configs of one ``fairrobust run``."""

    robustness: RobustnessConfig
    rejection: RejectionConfig
    soundness: SoundnessConfig


def _run_tables(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``[robustness]``, ``[rejection]`` and ``[soundness]`` tables of a run config file."""
    data = read_toml(path)
    other = sorted(set(data) - set(STUDY_TABLES))
    if other:
        raise ValueError(
            f"{path}: expected only [robustness] and [rejection] tables (and optionally "
            f"[soundness]), got {other}"
        )
    return {k: dict(data.get(k, {})) for k in STUDY_TABLES}


def _split_list(items: Sequence[str] | str | None) -> list[str]:
    if items is None:
        return []
    items = [items] if isinstance(items, str) else items
    parts = [p for item in items for p in str(item).split(",")]
    return [p.strip() for p in parts if p.strip()]


def load_configs(
    preset_name: str = "quick",
    config_file: str | os.PathLike[str] | None = None,
    *,
    seed: int | None = None,
    attributes: Sequence[str] | str | None = None,
    intersections: Sequence[str] | str | None = None,
    dataset_attributes: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    soundness: bool = True,
) -> RunConfigs:
    """The configs of a run: each study's preset, then the file's tables, then run-wide settings.

    ``seed``, ``attributes`` and ``intersections`` apply to both studies so their
    groups agree.

    Args:
      preset_name: ``"quick"``, ``"paper"`` or ``"tiny"`` (tests only).
      config_file: optional TOML file with ``[robustness]``, ``[rejection]`` and
        ``[soundness]`` tables.
      seed: seed of both studies (training, subsets, attacks, noise, bootstrap).
      attributes: attributes to analyse, a list or one comma-separated string
        (default: every attribute of the dataset).
      intersections: specs for :func:`fairrobust.groups.parse_intersections`.
      dataset_attributes: the dataset's attribute names, used to expand
        ``all-pairs`` when ``attributes`` is not given.
      overrides: fields set in both study configs (e.g. ``max_examples``,
        ``min_group_size``, ``bootstrap_resamples``), after the file.
      soundness: False disables the soundness checks.

    Raises:
      ValueError: unknown preset, bad TOML field, malformed intersection.
      FileNotFoundError: ``config_file`` does not exist.
    """
    rob = preset("robustness", preset_name)
    rej = preset("rejection", preset_name)
    sound = preset("soundness", preset_name)
    if config_file is not None:
        tables = _run_tables(config_file)
        rob, rej, sound = (
            apply_overrides(c, tables[t], source=f"{config_file}: [{t}]")
            for c, t in ((rob, "robustness"), (rej, "rejection"), (sound, "soundness"))
        )
    if overrides:
        rob = apply_overrides(rob, overrides, source="command line")
        rej = apply_overrides(rej, overrides, source="command line")
    rob_changes: dict[str, Any] = {}
    rej_changes: dict[str, Any] = {}
    if seed is not None:
        rob_changes["seed"] = rej_changes["seed"] = int(seed)
    attrs = _split_list(attributes)
    if attrs:
        rob_changes["attributes"] = tuple(attrs)
        rej_changes["attributes"] = tuple(attrs)
    tuples = parse_intersections(intersections, attrs or list(dataset_attributes or []))
    if tuples:
        rob_changes["intersections"] = rej_changes["intersections"] = tuples
    if rob_changes:
        rob = dataclasses.replace(rob, **rob_changes)
    if rej_changes:
        rej = rej.replace(**rej_changes)
    if not soundness:
        sound = dataclasses.replace(sound, enabled=False)
    return RunConfigs(rob, rej, sound)


def preset_toml(name: str = "quick") -> str:
    """The preset ``name`` as a run config file: every field of ``[robustness]``,
    ``[rejection]`` and ``[soundness]`` with its value and meaning (a comment from
    the config's docstring), for ``--config`` (``fairrobust config --preset NAME``)."""
    header = (
        f"fairrobust settings of the {name!r} preset ('fairrobust config --preset {name}').\n"
        "Every key with its value in this preset and its meaning. Edit and pass back with\n"
        f"'fairrobust run --preset {name} --config FILE'; a key left out keeps the preset's value."
    )
    return to_toml({t: preset(t, name) for t in STUDY_TABLES}, header)
