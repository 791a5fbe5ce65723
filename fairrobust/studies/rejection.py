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
    from fairrobust.studies import rejection
    ds = load_bundled()
    res = rejection.run_study(ds, rejection.preset("quick"), "runs/rej")
    print(res.tables["auc_fpr"])          # the Table-1 layout

Result files (``<out>/results/``; every table also as ``.json``, a list of rows):

* ``rejection_auc_fpr.csv`` -- Table 1 layout: method, num_samples, label,
  overall, ``<attribute>=<group>``...
* ``rejection_auc_fpr_long.csv`` -- method, num_samples, label, attribute, group,
  n, n_train, valid, auc_fpr, ci_low, ci_high.
* ``rejection_fpr_parity.csv`` -- method, num_samples, label, attribute,
  fpr_parity, worst_group, worst_auc_fpr, best_group, best_auc_fpr,
  n_valid_groups, ci_low, ci_high.
* ``rejection_correlation.csv`` -- attribute (or ``all``), method (NR / RS /
  RS mean), num_samples, r, r_std, p_value, n_groups.
* ``rejection_accuracy.csv`` -- model, attribute, group, n, accuracy, abstain_rate,
  accuracy_ci_low / _high, abstain_rate_ci_low / _high (bootstrap intervals).
* ``rejection_certified_accuracy.csv`` -- attribute, group, n, valid, radius,
  certified_accuracy, ci_low, ci_high; ``rejection_certify_per_example.csv`` as
  ``fairrobust certify``.
* ``rejection_fpr_curves.csv`` -- method, num_samples, label, attribute, group,
  threshold, fpr, ci_low, ci_high (CSV only).
* ``rejection_per_example.npz`` -- pvalues [k, n], counts [k, n, C], nr_scores,
  nr_stat, labels, thresholds, attributes (``attr_<name>``): every metric can be
  recomputed with :func:`analyze`.
* ``rejection_config.json``, ``rejection_groups.json``, ``rejection_summary.json``
  (each with the dataset, data fingerprint, config hash and library version).
* ``rejection_provenance.json`` -- written last: dataset, data fingerprint, config
  and hash, library version, training configs and the SHA-256 of every
  ``rejection_*`` results file of the run
  (``fairrobust.studies._common.verify_provenance`` checks them).

Figures (``<out>/figures/``): ``rejection_fpr_curves_<attr>.png``,
``rejection_auc_fpr_<attr>.png``, ``rejection_fpr_parity_vs_n.png``,
``rejection_certified_accuracy_<attr>.png``.

The module has two layers. ``analyze`` and the ``*_table`` builders work on
plain arrays (per-example p-values and NR scores, group masks) and are what
the tests check against closed forms; ``run_study`` trains, samples and
certifies with the library and writes every result file (see ``RESULT_FILES``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import math
import os
import re
import time
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fairrobust import _io

__all__ = [
    "PRESETS",
    "RESULT_FILES",
    "AttributeRejection",
    "RejectionAnalysis",
    "RejectionConfig",
    "RejectionResults",
    "accuracy_rows",
    "add_certify_arguments",
    "add_cli_arguments",
    "analyze",
    "auc_fpr_long_table",
    "auc_fpr_table",
    "certified_accuracy_table",
    "certify_main",
    "certify_table",
    "cli_main",
    "config_from_args",
    "config_from_toml",
    "correlation_table",
    "fpr_curve_table",
    "fpr_parity_table",
    "group_rate_intervals",
    "method_labels",
    "preset",
    "run_study",
    "select_eval",
    "threshold_grid",
    "train_configs",
    "train_model",
    "write_csv",
    "write_figures",
]

# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class RejectionConfig:
    """Settings of the rejection study (defaults = the AISec'23 paper, preset ``paper``).

    Attributes:
      model, width, epochs, batch_size, lr: base-model training (both base models).
      sigma: Gaussian noise std of the RS base-model training, validation and smoothing.
      noise: smoothing noise family, any name registered in ``fairrobust.smoothing``
        (the RS base model is always trained with Gaussian noise of std ``sigma``).
      num_samples: nested N of the RS sweep, increasing; one pass of the largest.
      chunk_size: noise draws per input per forward pass (memory / speed only).
      sample_batch_size: test clips per sampling call (memory / progress only).
      alpha_min, alpha_max, alpha_step: the threshold grid, shared by RS (alpha on
        the p-value, reject iff p > alpha) and NR (t on the top SVM score, reject
        iff score < t).
      nr_max_train: subsample of training features for the SVM (None = all), seeded.
      certify: run CERTIFY for certified accuracy per group.
      certify_n0, certify_n, certify_alpha: CERTIFY selection / estimation draws, level.
      radii: radius grid of the certified-accuracy curves (L2, waveform units).
      attributes: attributes to group by (None = every attribute of the dataset).
      intersections: attribute tuples whose intersections are also groups.
      min_group_size: groups smaller than this are reported but left out of parity
        and correlations.
      keep_unknown: keep groups whose attribute value is ``"unknown"``.
      max_test: cap on evaluated test clips (seeded subsample; None = all).
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
    radii: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(15))
    attributes: tuple[str, ...] | None = None
    intersections: tuple[tuple[str, ...], ...] = ()
    min_group_size: int = 5
    keep_unknown: bool = False
    max_test: int | None = None
    split: str = "test"
    bootstrap_resamples: int = 1000
    ci_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise sequences (TOML / CLI give lists) so the config stays hashable.
        set_ = object.__setattr__
        set_(self, "num_samples", tuple(int(v) for v in self.num_samples))
        set_(self, "radii", tuple(float(v) for v in self.radii))
        if self.attributes is not None:
            set_(self, "attributes", tuple(str(a) for a in self.attributes))
        set_(self, "intersections", tuple(tuple(str(a) for a in t) for t in self.intersections))
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
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        for name in ("nr_max_train", "max_test"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
                raise ValueError(f"{name}: expected None or an integer >= 2, got {v!r}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma: expected a positive float, got {self.sigma!r}")
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
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split: expected 'train', 'val' or 'test', got {self.split!r}")
        if not isinstance(self.noise, str) or not self.noise:
            raise ValueError(f"noise: expected a registered noise name, got {self.noise!r}")

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


#: Named configurations. ``paper`` follows the AISec'23 paper; ``quick`` is sized
#: for the bundled data (~1,500 one-second clips) on a 2-core CPU in a few minutes.
PRESETS: dict[str, RejectionConfig] = {
    "paper": RejectionConfig(),
    # Cost on a 2-core CPU is dominated by RS sampling: max_test * max(N) forward passes
    # (100 * 1000 here), then CERTIFY (100 * (20 + 200)); see the README for timings.
    "quick": RejectionConfig(
        epochs=6,
        num_samples=(10, 100, 1000),
        certify_n0=20,
        certify_n=200,
        max_test=100,
        min_group_size=5,
        bootstrap_resamples=200,
        radii=tuple(round(0.02 * i, 3) for i in range(11)),
    ),
}


def preset(name: str, **overrides: Any) -> RejectionConfig:
    """The named preset (``"paper"`` or ``"quick"``) with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name].replace(**overrides)


def config_from_toml(
    path: str | os.PathLike[str], base: RejectionConfig | str = "paper"
) -> RejectionConfig:
    """A config from a TOML file of overrides on ``base`` (a config or preset name).

    The file holds field names of :class:`RejectionConfig` (``-`` or ``_``), either at
    top level or in a ``[rejection]`` table (so one file can also configure the
    robustness study). Unknown keys or wrong types raise ``ValueError`` naming the file.
    """
    from fairrobust.studies._common import apply_overrides

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    if isinstance(data.get("rejection"), dict):
        data = data["rejection"]
    else:  # top-level keys; tables of other studies ([robustness], ...) are not ours
        data = {k: v for k, v in data.items() if not isinstance(v, dict)}
    cfg = preset(base) if isinstance(base, str) else base
    return apply_overrides(cfg, data, source=str(path))


def threshold_grid(config: RejectionConfig) -> np.ndarray:
    """The alpha / t grid ``[alpha_min, alpha_max]`` with step ``alpha_step``, float64 ``[a]``."""
    from fairrobust import metrics

    return np.asarray(
        metrics.alpha_grid(config.alpha_min, config.alpha_max, config.alpha_step), dtype=np.float64
    )


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass(frozen=True, eq=False)
class AttributeRejection:
    """False-rejection results of every method for the groups of one attribute.

    Methods are ordered as ``RejectionAnalysis.methods`` (RS at each N, then NR).

    Attributes:
      attribute: attribute name (intersections joined by ``" x "``).
      names: group names ``[g]``.
      sizes: evaluated examples per group ``[g]``.
      valid: groups counted in parity / correlation (``size >= min_size``) ``[g]``.
      train_sizes: training examples per group ``[g]`` (None when unknown).
      curves: FPR ``[m, a, g]`` over the threshold grid.
      auc: AUC_FPR ``[m, g]``.
      parity: FPR Parity ``[m]`` over valid groups (NaN with fewer than 2).
      auc_ci: bootstrap interval of ``auc``, ``[m, g, 2]`` (NaN without bootstrap).
      parity_ci: bootstrap interval of ``parity``, ``[m, 2]`` (NaN without bootstrap).
      curves_ci: bootstrap interval of ``curves``, ``[m, a, g, 2]`` (NaN without
        bootstrap; the same resamples as ``auc_ci``).
    """

    attribute: str
    names: tuple[str, ...]
    sizes: np.ndarray
    valid: np.ndarray
    train_sizes: np.ndarray | None
    curves: np.ndarray
    auc: np.ndarray
    parity: np.ndarray
    auc_ci: np.ndarray
    parity_ci: np.ndarray
    curves_ci: np.ndarray | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class RejectionAnalysis:
    """Group reductions of per-example rejection statistics (output of :func:`analyze`).

    Attributes:
      thresholds: threshold grid ``[a]``.
      num_samples: the RS sample sizes N ``[k]``.
      methods: ``k + 1`` labels: ``"RS N=10"``, ..., ``"NR"``.
      overall_curves: FPR of all evaluated examples ``[m, a]``.
      overall_auc: AUC_FPR of all evaluated examples ``[m]``.
      attributes: attribute name -> :class:`AttributeRejection`.
      overall_curves_ci: bootstrap interval of ``overall_curves``, ``[m, a, 2]``
        (NaN without bootstrap).
      ci_level: level of the bootstrap intervals (None without bootstrap).
      num_resamples: bootstrap resamples (0 without bootstrap).
      num_examples: n, the number of evaluated examples.
    """

    thresholds: np.ndarray
    num_samples: tuple[int, ...]
    methods: tuple[str, ...]
    overall_curves: np.ndarray
    overall_auc: np.ndarray
    attributes: dict[str, AttributeRejection]
    ci_level: float | None = None
    num_resamples: int = 0
    num_examples: int = 0
    overall_curves_ci: np.ndarray | None = None


def method_labels(num_samples: Sequence[int]) -> tuple[str, ...]:
    """``("RS N=10", ..., "NR")``: the method axis of every rejection array."""
    return (*(f"RS N={int(n)}" for n in num_samples), "NR")


def analyze(
    pvalues: np.ndarray,
    nr_stat: np.ndarray,
    thresholds: np.ndarray,
    groups: Mapping[str, Any],
    *,
    num_samples: Sequence[int],
    train_sizes: Mapping[str, np.ndarray] | None = None,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    speakers: np.ndarray | None = None,
) -> RejectionAnalysis:
    """FPR curves, AUC_FPR and FPR Parity per group for RS at every N and for NR.

    RS rejects example i at alpha iff ``pvalues[k, i] > alpha`` (PREDICT abstains);
    NR rejects iff ``nr_stat[i] < t`` (top SVM score below t). Per attribute, the
    curves ``[m, a, g]`` are one batched computation over methods x thresholds x
    groups (``fairrobust.metrics.rejection_curves``, no Python loop over thresholds
    or groups); ``AUC_FPR = trapezoid(FPR, thresholds)`` (Eq. 3, raw integral, so
    for RS it approaches ``mean_i clip(p_i - alpha_min, 0, alpha_max - alpha_min)``);
    FPR Parity is the largest AUC_FPR gap between valid groups (Eq. 4).

    Args:
      pvalues: PREDICT p-values in [0, 1], shape ``(k, n)``, row k for ``num_samples[k]``.
      nr_stat: top NR (SVM) score per example, shape ``(n,)``.
      thresholds: increasing threshold grid ``(a,)`` (e.g. :func:`threshold_grid`).
      groups: attribute name -> ``fairrobust.groups.Groups`` over the same n examples.
      num_samples: the k values of N.
      train_sizes: attribute name -> training examples per group ``(g,)`` (optional).
      bootstrap_resamples: resamples for percentile intervals on AUC_FPR and FPR
        Parity (``fairrobust.metrics.bootstrap_ci``: stratified by group, clustered
        by ``speakers`` when given); 0 skips them.
      ci_level: interval level.
      key: PRNG key of the bootstrap (required when ``bootstrap_resamples > 0``).
      speakers: optional speaker id per example ``(n,)``.

    Returns:
      A :class:`RejectionAnalysis`.

    Raises:
      ValueError: shapes that do not agree (the message gives expected vs actual).
    """
    from fairrobust import metrics

    pvalues = np.asarray(pvalues, dtype=np.float64)
    nr_stat = np.asarray(nr_stat, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    k = len(num_samples)
    if pvalues.ndim != 2 or pvalues.shape[0] != k:
        raise ValueError(f"pvalues: expected shape ({k}, n), got {pvalues.shape}")
    n = pvalues.shape[1]
    if nr_stat.shape != (n,):
        raise ValueError(f"nr_stat: expected shape ({n},), got {nr_stat.shape}")
    if thresholds.ndim != 1 or thresholds.size < 2:
        raise ValueError(f"thresholds: expected shape (a >= 2,), got {thresholds.shape}")
    if bootstrap_resamples and key is None:
        raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")

    # Every group of every attribute, plus one "all" row, as one mask matrix, so the
    # whole study is one rejection sweep per method (and one bootstrap).
    names = list(groups)
    blocks = [np.ones((1, n), dtype=bool)]
    valid_list = [np.ones(1, dtype=bool)]
    for name in names:
        masks = np.asarray(groups[name].masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != n:
            raise ValueError(f"groups[{name!r}].masks: expected shape (g, {n}), got {masks.shape}")
        blocks.append(masks)
        valid_list.append(np.asarray(groups[name].valid, dtype=bool))
    all_masks = np.concatenate(blocks, axis=0)  # [G, n]
    stops = np.cumsum([b.shape[0] for b in blocks])
    spans = tuple(zip((int(v) for v in stops[:-1]), (int(v) for v in stops[1:]), strict=True))
    all_valid = np.concatenate(valid_list)

    rs = np.asarray(metrics.rejection_curves(pvalues, thresholds, all_masks, reject_if="above"))
    nr = np.asarray(metrics.rejection_curves(nr_stat, thresholds, all_masks, reject_if="below"))
    curves = np.concatenate([rs, nr[None]], axis=0).astype(np.float64)  # [m, a, G]
    auc = np.asarray(metrics.trapezoid(curves, thresholds, axis=1), dtype=np.float64)  # [m, G]
    parity = np.asarray(
        metrics.fpr_parity(_per_attribute(auc, spans, all_valid)), dtype=np.float64
    )  # [p, m]

    m = k + 1
    auc_ci = np.full((m, all_masks.shape[0], 2), np.nan)
    parity_ci = np.full((len(spans), m, 2), np.nan)
    curves_ci = np.full((*curves.shape, 2), np.nan)  # [m, a, G, 2]
    if bootstrap_resamples:
        stat_fn = _AucFprBootstrap(
            tuple(float(t) for t in thresholds.astype(np.float32)),
            spans,
            tuple(bool(v) for v in all_valid),
        )
        res = metrics.bootstrap_ci(
            stat_fn,
            {"rs": pvalues, "nr": nr_stat},
            all_masks,
            key=key,
            num_resamples=int(bootstrap_resamples),
            level=float(ci_level),
            speakers=speakers,
        )
        auc_ci = np.stack([np.asarray(res.lower["auc"]), np.asarray(res.upper["auc"])], -1)
        parity_ci = np.stack([np.asarray(res.lower["parity"]), np.asarray(res.upper["parity"])], -1)
        curves_ci = np.stack([np.asarray(res.lower["curves"]), np.asarray(res.upper["curves"])], -1)

    per_attr: dict[str, AttributeRejection] = {}
    for i, name in enumerate(names):
        grp = groups[name]
        lo, hi = spans[i]
        ts = (
            None
            if train_sizes is None or name not in train_sizes
            else np.asarray(train_sizes[name])
        )
        per_attr[name] = AttributeRejection(
            attribute=name,
            names=tuple(grp.names),
            sizes=np.asarray(grp.sizes),
            valid=all_valid[lo:hi],
            train_sizes=ts,
            curves=curves[:, :, lo:hi],
            auc=auc[:, lo:hi],
            parity=parity[i],
            auc_ci=auc_ci[:, lo:hi],
            parity_ci=parity_ci[i],
            curves_ci=curves_ci[:, :, lo:hi],
        )
    overall_curves, overall_auc = curves[:, :, :1], auc[:, :1]
    return RejectionAnalysis(
        thresholds=thresholds,
        num_samples=tuple(int(v) for v in num_samples),
        methods=method_labels(num_samples),
        overall_curves=overall_curves[..., 0],
        overall_auc=overall_auc[..., 0],
        attributes=per_attr,
        ci_level=float(ci_level) if bootstrap_resamples else None,
        num_resamples=int(bootstrap_resamples),
        num_examples=int(n),
        overall_curves_ci=curves_ci[:, :, 0],
    )


def _per_attribute(auc: Any, spans: Sequence[tuple[int, int]], valid: np.ndarray) -> Any:
    """``[..., G]`` group values -> ``[p, ..., g_max]`` per attribute, NaN for invalid / padding.

    Works on NumPy and (inside jit) on JAX arrays; ``metrics.fpr_parity`` then gives
    every attribute's parity in one call (NaN groups are skipped).
    """
    import jax.numpy as jnp

    xp = np if isinstance(auc, np.ndarray) else jnp
    if not spans:
        return xp.full((0, *auc.shape[:-1], 2), xp.nan)
    g_max = max(hi - lo for lo, hi in spans)
    out = []
    for lo, hi in spans:
        ok = np.asarray(valid[lo:hi]).reshape((1,) * (auc.ndim - 1) + (hi - lo,))
        block = xp.where(xp.asarray(ok), auc[..., lo:hi], xp.nan)
        pad = [(0, 0)] * (block.ndim - 1) + [(0, g_max - (hi - lo))]
        out.append(xp.pad(block, pad, constant_values=xp.nan))
    return xp.stack(out)


@dataclasses.dataclass(frozen=True)
class _AucFprBootstrap:
    """Bootstrap statistic: AUC_FPR of every group and FPR Parity of every attribute.

    ``values = {"rs": pvalues [k, n], "nr": nr_stat [n]}``; returns ``auc [m, G]``,
    ``parity [p, m]`` (m = k + 1 methods) and the FPR curves ``curves [m, a, G]``
    (``metrics.rejection_curves``: a cumulative histogram, no ``[a, G, n]`` tensor).
    Hashable, so the bootstrap compiles once.
    """

    thresholds: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]
    valid: tuple[bool, ...]

    def __call__(self, values: Any, masks: Any, weights: Any) -> dict[str, Any]:
        import jax.numpy as jnp

        from fairrobust import metrics

        t = jnp.asarray(self.thresholds, jnp.float32)
        rs = metrics.auc_fpr(values["rs"], t, masks, reject_if="above", weights=weights[None])
        nr = metrics.auc_fpr(values["nr"], t, masks, reject_if="below", weights=weights)
        auc = jnp.concatenate([rs, nr[None]], axis=0)
        parity = metrics.fpr_parity(_per_attribute(auc, self.spans, np.asarray(self.valid)))
        rs_c = metrics.rejection_curves(values["rs"], t, masks, weights=weights[None])
        nr_c = metrics.rejection_curves(values["nr"], t, masks, reject_if="below", weights=weights)
        curves = jnp.concatenate([rs_c, nr_c[None]], axis=0)
        return {"auc": auc, "parity": parity, "curves": curves}


def _f(x: Any) -> float | None:
    """Float for a table cell; NaN / inf become None (empty in CSV, null in JSON)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _method_fields(analysis: RejectionAnalysis, i: int) -> dict[str, Any]:
    k = len(analysis.num_samples)
    return {
        "method": "NR" if i == k else "RS",
        "num_samples": None if i == k else analysis.num_samples[i],
        "label": analysis.methods[i],
    }


def auc_fpr_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """The paper's Table 1 layout: one row per method (RS N=10..., NR), AUC_FPR columns.

    Columns: ``method``, ``num_samples``, ``label``, ``overall``, then one column
    ``"<attribute>=<group>"`` per group of every attribute (None = empty group).
    """
    rows = []
    for i in range(len(analysis.methods)):
        row = _method_fields(analysis, i)
        row["overall"] = _f(analysis.overall_auc[i])
        for attr in analysis.attributes.values():
            for j, g in enumerate(attr.names):
                row[f"{attr.attribute}={g}"] = _f(attr.auc[i, j])
        rows.append(row)
    return rows


def auc_fpr_long_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """AUC_FPR in long form: one row per (method, attribute, group), overall included.

    Columns: method, num_samples, label, attribute, group, n, n_train, valid, auc_fpr,
    ci_low, ci_high (bootstrap interval; empty without bootstrap). The overall rows
    have attribute ``"all"`` and group ``"all"``.
    """
    rows = []
    n_all = analysis.num_examples
    for i in range(len(analysis.methods)):
        base = _method_fields(analysis, i)
        rows.append(
            {
                **base,
                "attribute": "all",
                "group": "all",
                "n": n_all,
                "n_train": None,
                "valid": True,
                "auc_fpr": _f(analysis.overall_auc[i]),
                "ci_low": None,
                "ci_high": None,
            }
        )
        for attr in analysis.attributes.values():
            for j, g in enumerate(attr.names):
                rows.append(
                    {
                        **base,
                        "attribute": attr.attribute,
                        "group": g,
                        "n": int(attr.sizes[j]),
                        "n_train": None if attr.train_sizes is None else int(attr.train_sizes[j]),
                        "valid": bool(attr.valid[j]),
                        "auc_fpr": _f(attr.auc[i, j]),
                        "ci_low": _f(attr.auc_ci[i, j, 0]),
                        "ci_high": _f(attr.auc_ci[i, j, 1]),
                    }
                )
    return rows


def fpr_parity_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """FPR Parity per (method, attribute) with the groups that realise it.

    Columns: method, num_samples, label, attribute, fpr_parity, worst_group
    (highest AUC_FPR among valid groups), worst_auc_fpr, best_group, best_auc_fpr,
    n_valid_groups, ci_low, ci_high (bootstrap interval of the parity; empty without).
    """
    rows = []
    for attr in analysis.attributes.values():
        idx = np.flatnonzero(attr.valid)
        for i in range(len(analysis.methods)):
            row = {
                **_method_fields(analysis, i),
                "attribute": attr.attribute,
                "fpr_parity": _f(attr.parity[i]),
                "worst_group": None,
                "worst_auc_fpr": None,
                "best_group": None,
                "best_auc_fpr": None,
                "n_valid_groups": int(idx.size),
                "ci_low": _f(attr.parity_ci[i, 0]),
                "ci_high": _f(attr.parity_ci[i, 1]),
            }
            vals = attr.auc[i, idx]
            ok = idx[np.isfinite(vals)]
            if ok.size:
                hi = ok[np.argmax(attr.auc[i, ok])]
                lo = ok[np.argmin(attr.auc[i, ok])]
                row.update(
                    worst_group=attr.names[hi],
                    worst_auc_fpr=_f(attr.auc[i, hi]),
                    best_group=attr.names[lo],
                    best_auc_fpr=_f(attr.auc[i, lo]),
                )
            rows.append(row)
    return rows


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and p of ``x [g]`` against each row of ``y [m, g]``, in one call.

    Groups with a non-finite value in any row are left out; a row is NaN (no
    warning) when fewer than three groups remain or ``x`` or the row is constant.
    """
    from fairrobust import metrics

    cols = np.isfinite(x) & np.all(np.isfinite(y), axis=0)
    x, y = x[cols].astype(np.float64), y[:, cols].astype(np.float64)
    r = np.full(y.shape[0], np.nan)
    p = np.full(y.shape[0], np.nan)
    rows = np.flatnonzero(np.ptp(y, axis=1) > 0) if x.size >= 3 and np.ptp(x) > 0 else []
    if len(rows):
        xb = np.broadcast_to(x, (len(rows), x.size))
        rr, pp = metrics.pearsonr(xb, y[rows])
        r[rows], p[rows] = np.asarray(rr), np.asarray(pp)
    return r, p


def correlation_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """Pearson r between group training-set size and AUC_FPR (paper section 5.2).

    Per attribute (valid groups only) and for ``"all"`` (the groups of every plain
    attribute pooled): one row for NR, one row per RS N, and one ``RS mean`` row
    with the mean and (population) std of r over N, as the paper reports
    "-0.499 +- 0.08 (averaged over all sampling)". r is None with fewer than three
    groups or a constant size / AUC_FPR (undefined).

    Columns: attribute, method (``NR`` / ``RS`` / ``RS mean``), num_samples, r, r_std,
    p_value, n_groups.
    """
    k = len(analysis.num_samples)
    pools: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # attr -> (train sizes [g], auc [m, g])
    for attr in analysis.attributes.values():
        if attr.train_sizes is None:
            continue
        v = attr.valid
        pools[attr.attribute] = (attr.train_sizes[v].astype(np.float64), attr.auc[:, v])
    plain = [
        a
        for a in analysis.attributes.values()
        if a.train_sizes is not None and " x " not in a.attribute
    ]
    if len(plain) > 1:
        pools["all"] = (
            np.concatenate([a.train_sizes[a.valid].astype(np.float64) for a in plain]),  # type: ignore[index]
            np.concatenate([a.auc[:, a.valid] for a in plain], axis=1),
        )
    rows = []
    for name, (sizes, auc) in pools.items():
        rs_r = []
        r_all, p_all = _pearson_rows(sizes, auc)
        for i in range(k + 1):
            r, p = r_all[i], p_all[i]
            meth = _method_fields(analysis, i)
            rows.append(
                {
                    "attribute": name,
                    "method": meth["method"],
                    "num_samples": meth["num_samples"],
                    "r": _f(r),
                    "r_std": None,
                    "p_value": _f(p),
                    "n_groups": int(sizes.size),
                }
            )
            if i < k:
                rs_r.append(r)
        arr = np.asarray(rs_r)
        fin = arr[np.isfinite(arr)]
        rows.append(
            {
                "attribute": name,
                "method": "RS mean",
                "num_samples": None,
                "r": _f(fin.mean()) if fin.size else None,
                "r_std": _f(fin.std()) if fin.size else None,
                "p_value": None,
                "n_groups": int(sizes.size),
            }
        )
    return rows


def fpr_curve_table(analysis: RejectionAnalysis) -> list[dict[str, Any]]:
    """Every FPR-vs-threshold point, long form.

    Columns: method, num_samples, label, attribute, group, threshold, fpr, ci_low,
    ci_high (bootstrap interval of the group's FPR at that threshold; empty without
    bootstrap).
    """
    rows = []
    th = analysis.thresholds
    nan_ci = np.full((*analysis.overall_curves.shape, 2), np.nan)
    overall_ci = nan_ci if analysis.overall_curves_ci is None else analysis.overall_curves_ci
    for i in range(len(analysis.methods)):
        base = _method_fields(analysis, i)
        for a, t in enumerate(th):
            rows.append(
                {
                    **base,
                    "attribute": "all",
                    "group": "all",
                    "threshold": float(t),
                    "fpr": _f(analysis.overall_curves[i, a]),
                    "ci_low": _f(overall_ci[i, a, 0]),
                    "ci_high": _f(overall_ci[i, a, 1]),
                }
            )
        for attr in analysis.attributes.values():
            cis = (
                np.full((*attr.curves.shape, 2), np.nan)
                if attr.curves_ci is None
                else attr.curves_ci
            )
            for j, g in enumerate(attr.names):
                col, ci = attr.curves[i, :, j], cis[i, :, j]
                rows.extend(
                    {
                        **base,
                        "attribute": attr.attribute,
                        "group": g,
                        "threshold": float(t),
                        "fpr": _f(col[a]),
                        "ci_low": _f(ci[a, 0]),
                        "ci_high": _f(ci[a, 1]),
                    }
                    for a, t in enumerate(th)
                )
    return rows


def group_rate_intervals(
    values: np.ndarray,
    groups: Mapping[str, Any],
    *,
    key: Any,
    num_resamples: int,
    level: float = 0.95,
    speakers: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap intervals of the rate of ``values`` in every group, as one computation.

    The groups are those of the tables: one ``all`` group of every example, then
    the groups of each attribute in order. ``fairrobust.metrics.bootstrap_ci``
    with :class:`fairrobust.metrics.GroupRateStat` (reweighting, stratified by
    group membership, clustered by ``speakers``) evaluates every row of ``values``
    on the same resamples in one vmapped computation.

    Args:
      values: per-example values in [0, 1] (e.g. 0/1 correctness), ``(..., n)``.
      groups: attribute -> ``fairrobust.groups.Groups`` over the same n examples.
      key: PRNG key of the resamples.
      num_resamples: resamples >= 1.
      level: interval level in (0, 1).
      speakers: optional speaker id per example ``(n,)``.

    Returns:
      ``(lower, upper)``, each ``(..., 1 + sum of group counts)`` (NaN for empty groups).
    """
    from fairrobust import metrics

    values = np.asarray(values, dtype=np.float32)
    n = values.shape[-1]
    masks = np.concatenate(
        [np.ones((1, n), bool)]
        + [np.asarray(g.masks, dtype=bool).reshape(-1, n) for g in groups.values()],
        axis=0,
    )
    res = metrics.bootstrap_ci(
        metrics.GroupRateStat(),
        values,
        masks,
        key=key,
        num_resamples=int(num_resamples),
        level=float(level),
        speakers=speakers,
    )
    return np.asarray(res.lower["rates"], np.float64), np.asarray(res.upper["rates"], np.float64)


def certified_accuracy_table(
    pred: np.ndarray,
    radius: np.ndarray,
    labels: np.ndarray,
    radii: Sequence[float],
    groups: Mapping[str, Any],
    *,
    bootstrap_resamples: int = 0,
    ci_level: float = 0.95,
    key: Any = None,
    speakers: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Certified accuracy per group at each radius (Cohen et al. 2019).

    Columns: attribute, group, n, valid, radius, certified_accuracy, ci_low, ci_high
    (bootstrap interval, :func:`group_rate_intervals` over the per-example indicator
    ``pred == label and radius >= r`` at every r at once; empty without bootstrap).
    The overall rows have attribute and group ``"all"``.
    """
    from fairrobust import smoothing

    radii_arr = np.asarray(radii, dtype=np.float64)
    n_groups = 1 + sum(len(g.names) for g in groups.values())
    lower = upper = np.full((radii_arr.size, n_groups), np.nan)
    if bootstrap_resamples:
        if key is None:
            raise ValueError("key: a PRNG key is required when bootstrap_resamples > 0")
        ok = (np.asarray(pred) == np.asarray(labels))[None, :] & (
            np.asarray(radius, np.float64)[None, :] >= radii_arr[:, None]
        )  # [r, n], as smoothing.certified_accuracy
        lower, upper = group_rate_intervals(
            ok, groups, key=key, num_resamples=bootstrap_resamples, level=ci_level,
            speakers=speakers,
        )  # fmt: skip
    rows = []
    all_acc = smoothing.certified_accuracy(pred, radius, labels, radii_arr, None)[:, 0]
    for ri, (r, acc) in enumerate(zip(radii_arr, all_acc, strict=True)):
        rows.append(
            {
                "attribute": "all",
                "group": "all",
                "n": len(labels),
                "valid": True,
                "radius": float(r),
                "certified_accuracy": _f(acc),
                "ci_low": _f(lower[ri, 0]),
                "ci_high": _f(upper[ri, 0]),
            }
        )
    col = 1
    for grp in groups.values():
        acc = smoothing.certified_accuracy(pred, radius, labels, radii_arr, np.asarray(grp.masks))
        for j, g in enumerate(grp.names):
            for ri, r in enumerate(radii_arr):
                rows.append(
                    {
                        "attribute": grp.attribute,
                        "group": g,
                        "n": int(grp.sizes[j]),
                        "valid": bool(grp.valid[j]),
                        "radius": float(r),
                        "certified_accuracy": _f(acc[ri, j]),
                        "ci_low": _f(lower[ri, col + j]),
                        "ci_high": _f(upper[ri, col + j]),
                    }
                )
        col += len(grp.names)
    return rows


def accuracy_rows(
    model: str,
    correct: np.ndarray,
    groups: Mapping[str, Any],
    *,
    abstain: np.ndarray | None = None,
    ci: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Accuracy (and abstention rate) of one model overall and per group.

    Args:
      model: row label (e.g. ``"NR (SVM)"``).
      correct: bool ``[n]`` per-example correctness (an abstention is not correct).
      groups: attribute -> Groups.
      abstain: optional bool ``[n]`` abstentions.
      ci: optional bootstrap intervals ``{"accuracy": (low, high), "abstain_rate":
        (low, high)}``, each ``[1 + sum of group counts]`` in row order (from
        :func:`group_rate_intervals`).

    Returns:
      Rows with columns model, attribute, group, n, accuracy, abstain_rate,
      accuracy_ci_low, accuracy_ci_high, abstain_rate_ci_low, abstain_rate_ci_high
      (None where no interval was given).
    """
    correct = np.asarray(correct, dtype=np.float64)
    ab = None if abstain is None else np.asarray(abstain, dtype=np.float64)
    rows = [
        {
            "model": model,
            "attribute": "all",
            "group": "all",
            "n": int(correct.size),
            "accuracy": _f(correct.mean()) if correct.size else None,
            "abstain_rate": None if ab is None else _f(ab.mean()),
        }
    ]
    for grp in groups.values():
        m = np.asarray(grp.masks, dtype=np.float64)
        sizes = m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = (m @ correct) / sizes
            abr = None if ab is None else (m @ ab) / sizes
        for j, g in enumerate(grp.names):
            rows.append(
                {
                    "model": model,
                    "attribute": grp.attribute,
                    "group": g,
                    "n": int(sizes[j]),
                    "accuracy": _f(acc[j]),
                    "abstain_rate": None if abr is None else _f(abr[j]),
                }
            )
    for c, row in enumerate(rows):  # row c is column c of the interval arrays
        for name in ("accuracy", "abstain_rate"):
            lo_hi = (ci or {}).get(name)
            ok = lo_hi is not None and row[name] is not None
            row[f"{name}_ci_low"] = _f(lo_hi[0][c]) if ok else None  # type: ignore[index]
            row[f"{name}_ci_high"] = _f(lo_hi[1][c]) if ok else None  # type: ignore[index]
    return rows


def certify_table(
    *,
    index: np.ndarray,
    paths: np.ndarray,
    labels: np.ndarray,
    pred: np.ndarray,
    radius: np.ndarray,
    p_a_lower: np.ndarray,
    attributes: Mapping[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Per-example CERTIFY table.

    Columns: index (position in the dataset), path, label, prediction (-1 = abstain),
    radius, correct (0/1), p_a_lower, then one column per attribute (sorted).
    """
    n = len(labels)
    for name, arr in (
        ("index", index),
        ("paths", paths),
        ("pred", pred),
        ("radius", radius),
        ("p_a_lower", p_a_lower),
    ):
        if np.shape(arr) != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {np.shape(arr)}")
    rows = []
    for i in range(n):
        row = {
            "index": int(index[i]),
            "path": str(paths[i]),
            "label": int(labels[i]),
            "prediction": int(pred[i]),
            "radius": float(radius[i]),
            "correct": int(pred[i] == labels[i]),
            "p_a_lower": float(p_a_lower[i]),
        }
        for a in sorted(attributes):
            row[a] = str(attributes[a][i])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- files


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return repr(float(v)) if math.isfinite(v) else ""
    return str(v)


def write_csv(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` as CSV atomically (None / NaN as empty cells, floats via ``repr``)."""
    if columns is None:
        columns = list(rows[0]) if rows else []
        for r in rows:
            columns.extend(c for c in r if c not in columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return _io.atomic_write_text(path, buf.getvalue())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "attr"


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
    "correlation": "rejection_correlation.csv",
    "fpr_curves": "rejection_fpr_curves.csv",
    "groups": "rejection_groups.json",
    "per_example": "rejection_per_example.npz",
    "certified_accuracy": "rejection_certified_accuracy.csv",
    "certify_per_example": "rejection_certify_per_example.csv",
}


@dataclasses.dataclass(frozen=True)
class RejectionResults:
    """What :func:`run_study` returns: plain tables, file paths and a few scalars.

    Attributes:
      config: the study config.
      out_dir: the run folder.
      tables: name -> list of row dicts (same content as the CSV of that name in
        ``RESULT_FILES``): ``accuracy``, ``auc_fpr`` (Table 1 layout),
        ``auc_fpr_long``, ``fpr_parity``, ``correlation``, ``certified_accuracy``
        (empty when certification is off).
      files: name -> path of every result file and figure (``fig_*`` keys).
      summary: headline numbers (also in ``rejection_summary.json``).
      timings: seconds per stage (not written to result files, which stay
        byte-identical across reruns).
      reused: stages loaded from a matching cache instead of recomputed.
    """

    config: RejectionConfig
    out_dir: Path
    tables: dict[str, list[dict[str, Any]]]
    files: dict[str, Path]
    summary: dict[str, Any]
    timings: dict[str, float]
    reused: tuple[str, ...]


# ----------------------------------------------------------------------------- caching


def _load_cached(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """Arrays of a cache file whose stored key equals ``key``; None otherwise."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "cache_key" not in z.files or str(z["cache_key"]) != key:
                return None
            return {k: z[k] for k in z.files if k != "cache_key"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # damaged or truncated cache entry: recompute


def _save_cached(path: Path, key: str, **arrays: np.ndarray) -> None:
    _io.atomic_write_npz(path, cache_key=np.asarray(key), **arrays)


class _NoBar:
    def update(self, _n: int = 1) -> None:
        pass


def _batched(
    desc: str,
    path: Path,
    key: str,
    n: int,
    batch: int,
    fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    *,
    resume: bool,
    show: bool,
) -> tuple[dict[str, np.ndarray], bool]:
    """Run ``fn(rows)`` over ``range(n)`` in batches of ``batch`` with a checkpoint file.

    ``fn`` returns arrays whose first axis is the batch; the result concatenates
    them to ``[n, ...]`` and is cached at ``path`` under ``key``. A partial result
    is saved after every batch (``*.partial.npz``), so an interrupted run resumes
    where it stopped. Returns ``(arrays, reused)``.
    """
    done = _load_cached(path, key) if resume else None
    if done is not None and "n_done" in done and int(done["n_done"]) == n:
        return {k: v for k, v in done.items() if k != "n_done"}, True
    partial = path.with_name(path.name.replace(".npz", ".partial.npz"))
    merged: dict[str, np.ndarray] = {}
    start = 0
    prev = _load_cached(partial, key) if resume else None
    if prev is not None and "n_done" in prev:
        start = int(prev["n_done"])
        merged = {k: v for k, v in prev.items() if k != "n_done"}
    ctx = _io.progress(total=n, desc=desc) if show else contextlib.nullcontext(_NoBar())
    with ctx as bar:
        bar.update(start)
        for s in range(start, n, batch):
            rows = np.arange(s, min(s + batch, n))
            out = fn(rows)
            merged = {
                k: np.concatenate([merged[k], np.asarray(v)]) if k in merged else np.asarray(v)
                for k, v in out.items()
            }
            if rows[-1] + 1 < n:
                _save_cached(partial, key, n_done=np.asarray(rows[-1] + 1), **merged)
            bar.update(len(rows))
    _save_cached(path, key, n_done=np.asarray(n), **merged)
    partial.unlink(missing_ok=True)
    return merged, False


# ----------------------------------------------------------------------------- the study


def train_configs(config: RejectionConfig) -> tuple[Any, Any]:
    """(clean NR base config, noisy RS base config) as ``fairrobust.train.TrainConfig``."""
    from fairrobust.train import TrainConfig

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


def select_eval(dataset: Any, config: RejectionConfig) -> np.ndarray:
    """Dataset indices of the evaluated examples (the split, seeded cap), sorted."""
    idx = np.flatnonzero(np.asarray(dataset.splits) == config.split)
    if idx.size == 0:
        raise ValueError(f"dataset {dataset.name!r}: split {config.split!r} is empty")
    if config.max_test is not None and idx.size > config.max_test:
        rng = np.random.default_rng(config.seed)
        idx = np.sort(rng.choice(idx, size=config.max_test, replace=False))
    return idx


def _build_groups(
    dataset: Any, eval_idx: np.ndarray, config: RejectionConfig
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from fairrobust import groups as groups_mod

    attrs = {k: np.asarray(v)[eval_idx] for k, v in dataset.attributes.items()}
    names = sorted(attrs) if config.attributes is None else list(config.attributes)
    for a in names + [x for t in config.intersections for x in t]:
        if a not in attrs:
            raise ValueError(
                f"attributes: dataset {dataset.name!r} has no attribute {a!r}; "
                f"available: {sorted(attrs)}"
            )
    grps = groups_mod.all_groups(
        attrs,
        names,
        config.intersections,
        min_size=config.min_group_size,
        keep_unknown=config.keep_unknown,
    )
    train_mask = np.asarray(dataset.splits) == "train"
    train_attrs = {k: np.asarray(v)[train_mask] for k, v in dataset.attributes.items()}
    sizes = {name: groups_mod.training_group_sizes(train_attrs, g) for name, g in grps.items()}
    return grps, sizes


@dataclasses.dataclass(frozen=True)
class _Trained:
    model: Any
    variables: Any


def train_model(
    dataset: Any, tcfg: Any, out: Path, *, fingerprint: str, resume: bool, show: bool
) -> _Trained:
    """Train (or resume) a base model in ``out``; a finished run is loaded, not rebuilt.

    ``train(resume=True)`` would also return a finished run, but it first builds
    (and compiles) a fresh train state; reading ``last.ckpt`` is instant.
    """
    from fairrobust.train import load_checkpoint, train

    last = out / "last.ckpt"
    if resume and last.is_file():
        try:
            ck = load_checkpoint(last)
        except (ValueError, FileNotFoundError):
            ck = None
        if (
            ck is not None
            and ck.config == tcfg
            and ck.epoch >= tcfg.epochs
            and ck.dataset_fingerprint == fingerprint
        ):
            if ck.best_variables is not None:
                return _Trained(ck.model, ck.best_variables)
            best = load_checkpoint(out / "best.ckpt")
            return _Trained(best.model, best.variables)
    res = train(dataset, tcfg, out_dir=out, resume=resume, progress=show)
    return _Trained(res.model, res.variables)


def run_study(
    dataset: Any,
    config: RejectionConfig,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
) -> RejectionResults:
    """Run the rejection study on ``dataset`` and write results and figures under ``out_dir``.

    Steps (each cached under ``out_dir`` by the hash of everything it depends on,
    so a rerun reuses trained models, NR scores, noise counts and CERTIFY results
    whose inputs did not change, and a changed setting recomputes only what
    depends on it):

    1. train the clean M5 (NR base) and the Gaussian-noise M5 (RS base, selected on
       noisy validation data) on the training split;
    2. NR: RBF-SVM on training penultimate features (seeded subsample), top score
       of every evaluated example;
    3. RS: class counts over ``max(num_samples)`` noise draws, counts at every N
       from prefixes of the same stream, PREDICT p-values;
    4. CERTIFY (if ``config.certify``) with ``certify_n0`` / ``certify_n`` draws;
    5. group reductions (:func:`analyze`), tables, figures.

    Args:
      dataset: a ``fairrobust.data.AudioDataset`` with train / val / test splits.
      config: the study settings.
      out_dir: run folder; results go to ``results/``, figures to ``figures/``,
        models to ``models/`` and caches to ``cache/rejection/``.
      resume: reuse matching cached models / samples (False recomputes everything).
      progress: show progress bars.

    Returns:
      A :class:`RejectionResults`.
    """
    import jax
    import jax.numpy as jnp

    from fairrobust import models, smoothing
    from fairrobust.neural_rejection import NeuralRejection
    from fairrobust.studies._common import library_version, write_provenance, write_table
    from fairrobust.train import extract_features, predict_logits

    if config.noise not in smoothing.available_noises():
        raise ValueError(
            f"noise: unknown noise family {config.noise!r}; registered: "
            f"{list(smoothing.available_noises())}"
        )
    out = Path(out_dir)
    results_dir, fig_dir = out / "results", out / "figures"
    cache = out / "cache" / "rejection"
    timings: dict[str, float] = {}
    reused: list[str] = []
    files: dict[str, Path] = {}
    t_start = time.perf_counter()

    eval_idx = select_eval(dataset, config)
    grps, train_sizes = _build_groups(dataset, eval_idx, config)
    x_eval = np.asarray(dataset.waveforms[eval_idx], dtype=np.float32)
    y_eval = np.asarray(dataset.labels[eval_idx])
    data_fp = dataset.fingerprint()
    num_classes = int(dataset.num_classes)
    base_key = jax.random.key(config.seed)

    # 1. base models ------------------------------------------------------------
    nr_tcfg, rs_tcfg = train_configs(config)
    nr_hash = _io.stable_hash({"data": data_fp, "train": nr_tcfg})
    rs_hash = _io.stable_hash({"data": data_fp, "train": rs_tcfg})
    t0 = time.perf_counter()
    nr_model = train_model(
        dataset,
        nr_tcfg,
        out / "models" / f"rejection-nr-{nr_hash}",
        fingerprint=data_fp,
        resume=resume,
        show=progress,
    )
    rs_model = train_model(
        dataset,
        rs_tcfg,
        out / "models" / f"rejection-rs-{rs_hash}",
        fingerprint=data_fp,
        resume=resume,
        show=progress,
    )
    timings["train"] = time.perf_counter() - t0
    nr_apply = models.logits_fn(nr_model.model)
    rs_apply = models.logits_fn(rs_model.model)

    # 2. neural rejection ---------------------------------------------------------
    t0 = time.perf_counter()
    nr_key = _io.stable_hash(
        {"model": nr_hash, "max_train": config.nr_max_train, "seed": config.seed, "eval": eval_idx}
    )
    nr_path = cache / f"nr-{nr_key}.npz"
    nr_cached = _load_cached(nr_path, nr_key) if resume else None
    if nr_cached is None:
        train_idx = np.flatnonzero(np.asarray(dataset.splits) == "train")
        f_train = extract_features(
            nr_model.model, nr_model.variables, np.asarray(dataset.waveforms[train_idx], np.float32)
        )
        f_eval = extract_features(nr_model.model, nr_model.variables, x_eval)
        nr = NeuralRejection().fit(
            f_train,
            np.asarray(dataset.labels[train_idx]),
            max_train=config.nr_max_train,
            seed=config.seed,
        )
        scores = np.asarray(nr.scores(f_eval), dtype=np.float64)
        stat = np.asarray(nr.rejection_stat(f_eval), dtype=np.float64)
        base_logits = np.asarray(predict_logits(nr_apply, nr_model.variables, x_eval))
        classes = np.asarray(nr.classes_)
        nr_cached = {
            "scores": scores,
            "stat": stat,
            "pred": classes[scores.argmax(-1)],
            "base_pred": base_logits.argmax(-1),
        }
        _save_cached(nr_path, nr_key, **nr_cached)
    else:
        reused.append("nr")
    nr_scores, nr_stat, nr_pred = nr_cached["scores"], nr_cached["stat"], nr_cached["pred"]
    timings["nr"] = time.perf_counter() - t0

    # 3. randomized smoothing: counts at every N from one stream --------------------
    t0 = time.perf_counter()
    n_max = max(config.num_samples)
    rs_key = _io.stable_hash(
        {
            "model": rs_hash,
            "noise": config.noise,
            "sigma": config.sigma,
            "num_samples": config.num_samples,
            "seed": config.seed,
            "eval": eval_idx,
        }
    )
    key_sample = jax.random.fold_in(base_key, 1)

    def sample(rows: np.ndarray) -> dict[str, np.ndarray]:
        c = smoothing.sample_counts(
            rs_apply,
            rs_model.variables,
            jnp.asarray(x_eval[rows]),
            key_sample,
            num_samples=n_max,
            sigma=config.sigma,
            num_classes=num_classes,
            noise=config.noise,
            chunk_size=config.chunk_size,
            checkpoints=config.num_samples,
            indices=jnp.asarray(eval_idx[rows], jnp.int32),
        )
        return {"counts": np.swapaxes(np.asarray(c), 0, 1)}  # [b, k, C]

    sampled, was_reused = _batched(
        "RS sampling",
        cache / f"counts-{rs_key}.npz",
        rs_key,
        len(eval_idx),
        config.sample_batch_size,
        sample,
        resume=resume,
        show=progress,
    )
    if was_reused:
        reused.append("rs_counts")
    counts = np.swapaxes(sampled["counts"], 0, 1)  # [k, n, C]
    rs_top, pvalues = smoothing.predict_pvalues(counts)
    rs_base_pred = np.asarray(predict_logits(rs_apply, rs_model.variables, x_eval)).argmax(-1)
    timings["rs_sampling"] = time.perf_counter() - t0

    # 4. CERTIFY ----------------------------------------------------------------------
    cert = None
    if config.certify:
        t0 = time.perf_counter()
        c_key = _io.stable_hash(
            {
                "model": rs_hash,
                "noise": config.noise,
                "sigma": config.sigma,
                "n0": config.certify_n0,
                "n": config.certify_n,
                "alpha": config.certify_alpha,
                "seed": config.seed,
                "eval": eval_idx,
            }
        )
        key_cert = jax.random.fold_in(base_key, 2)

        def run_certify(rows: np.ndarray) -> dict[str, np.ndarray]:
            r = smoothing.certify(
                rs_apply,
                rs_model.variables,
                jnp.asarray(x_eval[rows]),
                key_cert,
                n0=config.certify_n0,
                n=config.certify_n,
                alpha=config.certify_alpha,
                sigma=config.sigma,
                num_classes=num_classes,
                noise=config.noise,
                chunk_size=config.chunk_size,
                indices=jnp.asarray(eval_idx[rows], jnp.int32),
            )
            return {"pred": r.pred, "radius": r.radius, "p_a_lower": r.p_a_lower}

        cert, was_reused = _batched(
            "CERTIFY",
            cache / f"certify-{c_key}.npz",
            c_key,
            len(eval_idx),
            config.sample_batch_size,
            run_certify,
            resume=resume,
            show=progress,
        )
        if was_reused:
            reused.append("certify")
        timings["certify"] = time.perf_counter() - t0

    # 5. reductions, tables, files ----------------------------------------------------
    t0 = time.perf_counter()
    thresholds = threshold_grid(config)
    analysis = analyze(
        pvalues,
        nr_stat,
        thresholds,
        grps,
        num_samples=config.num_samples,
        train_sizes=train_sizes,
        bootstrap_resamples=config.bootstrap_resamples,
        ci_level=config.ci_level,
        key=jax.random.fold_in(base_key, 3),
        speakers=np.asarray(dataset.speakers)[eval_idx],
    )
    speakers_eval = np.asarray(dataset.speakers)[eval_idx]
    models_correct = [
        ("M5 clean (NR base)", nr_cached["base_pred"] == y_eval, None),
        ("NR (SVM)", nr_pred == y_eval, None),
        (f"M5 sigma={config.sigma:g} (RS base)", rs_base_pred == y_eval, None),
    ]
    for i, n in enumerate(config.num_samples):
        abstain = pvalues[i] > config.certify_alpha
        label = f"RS N={n} alpha={config.certify_alpha:g}"
        models_correct.append((label, (~abstain) & (rs_top[i] == y_eval), abstain))
    # Intervals of every model's group accuracy (and RS abstention rate) on one set of
    # resamples: one bootstrap computation over the stacked per-example indicators.
    acc_ci: list[dict[str, tuple[np.ndarray, np.ndarray]] | None] = [None] * len(models_correct)
    if config.bootstrap_resamples:
        stacked = [c for _, c, _ in models_correct] + [
            a for _, _, a in models_correct if a is not None
        ]
        lo, hi = group_rate_intervals(
            np.stack(stacked), grps, key=jax.random.fold_in(base_key, 4),
            num_resamples=config.bootstrap_resamples, level=config.ci_level,
            speakers=speakers_eval,
        )  # fmt: skip
        j = len(models_correct)
        for i, (_, _, a) in enumerate(models_correct):
            acc_ci[i] = {"accuracy": (lo[i], hi[i])}
            if a is not None:
                acc_ci[i]["abstain_rate"] = (lo[j], hi[j])  # type: ignore[index]
                j += 1
    acc_rows: list[dict[str, Any]] = []
    for (label, correct, abstain), ci in zip(models_correct, acc_ci, strict=True):
        acc_rows += accuracy_rows(label, correct, grps, abstain=abstain, ci=ci)
    tables: dict[str, list[dict[str, Any]]] = {
        "accuracy": acc_rows,
        "auc_fpr": auc_fpr_table(analysis),
        "auc_fpr_long": auc_fpr_long_table(analysis),
        "fpr_parity": fpr_parity_table(analysis),
        "correlation": correlation_table(analysis),
        "certified_accuracy": [],
    }
    if cert is not None:
        tables["certified_accuracy"] = certified_accuracy_table(
            cert["pred"], cert["radius"], y_eval, config.radii, grps,
            bootstrap_resamples=config.bootstrap_resamples, ci_level=config.ci_level,
            key=jax.random.fold_in(base_key, 5), speakers=speakers_eval,
        )  # fmt: skip

    def path(name: str) -> Path:
        files[name] = results_dir / RESULT_FILES[name]
        return files[name]

    config_hash = _io.stable_hash(config)
    provenance = {
        "study": "rejection",
        "dataset": dataset.name,
        "data_fingerprint": data_fp,
        "config_hash": config_hash,
        "library_version": library_version(),
    }
    _io.atomic_write_json(
        path("config"),
        {**provenance, "config": config, "train_nr": nr_tcfg, "train_rs": rs_tcfg},
    )
    for name in ("accuracy", "auc_fpr", "auc_fpr_long", "fpr_parity", "correlation"):
        _, json_path = write_table(path(name).with_suffix(""), tables[name])
        files[f"{name}_json"] = json_path
    write_csv(path("fpr_curves"), fpr_curve_table(analysis))
    _io.atomic_write_json(path("groups"), {name: g.to_dict() for name, g in grps.items()})
    attr_arrays = {
        f"attr_{_slug(k)}": np.asarray(v)[eval_idx].astype(str)
        for k, v in dataset.attributes.items()
    }
    _io.atomic_write_npz(
        path("per_example"),
        index=eval_idx,
        labels=y_eval,
        num_samples=np.asarray(config.num_samples),
        thresholds=thresholds,
        pvalues=pvalues,
        rs_top=rs_top,
        counts=counts,
        nr_scores=nr_scores,
        nr_stat=nr_stat,
        nr_pred=nr_pred,
        rs_base_pred=rs_base_pred,
        nr_base_pred=nr_cached["base_pred"],
        paths=np.asarray(dataset.paths)[eval_idx].astype(str),
        **attr_arrays,
    )
    if cert is not None:
        _, files["certified_accuracy_json"] = write_table(
            path("certified_accuracy").with_suffix(""), tables["certified_accuracy"]
        )
        write_csv(
            path("certify_per_example"),
            certify_table(
                index=eval_idx,
                paths=np.asarray(dataset.paths)[eval_idx],
                labels=y_eval,
                pred=cert["pred"],
                radius=cert["radius"],
                p_a_lower=cert["p_a_lower"],
                attributes={k: np.asarray(v)[eval_idx] for k, v in dataset.attributes.items()},
            ),
        )

    if cert is None:  # never leave certification files of an earlier config behind
        for name in ("certified_accuracy", "certify_per_example"):
            (results_dir / RESULT_FILES[name]).unlink(missing_ok=True)
        (results_dir / RESULT_FILES["certified_accuracy"]).with_suffix(".json").unlink(
            missing_ok=True
        )
    figures = write_figures(
        analysis, fig_dir, certified=tables["certified_accuracy"], radii=config.radii
    )
    for stale in set(fig_dir.glob("rejection_*.png")) - set(figures.values()):
        stale.unlink(missing_ok=True)
    files.update(figures)
    nr_acc = float(np.mean(nr_pred == y_eval))
    summary = {
        **provenance,
        "config": _io.to_jsonable(config),
        "num_eval": len(eval_idx),
        "num_classes": num_classes,
        "methods": list(analysis.methods),
        "nr_accuracy": nr_acc,
        "nr_base_accuracy": float(np.mean(nr_cached["base_pred"] == y_eval)),
        "rs_base_accuracy": float(np.mean(rs_base_pred == y_eval)),
        "overall_auc_fpr": {
            m: _f(v) for m, v in zip(analysis.methods, analysis.overall_auc, strict=True)
        },
        "fpr_parity": {
            a.attribute: {m: _f(v) for m, v in zip(analysis.methods, a.parity, strict=True)}
            for a in analysis.attributes.values()
        },
        "small_groups": {name: list(g.small) for name, g in grps.items()},
        "threshold_grid": [config.alpha_min, config.alpha_max, config.alpha_step],
        "certify": None
        if cert is None
        else {
            "n0": config.certify_n0,
            "n": config.certify_n,
            "alpha": config.certify_alpha,
            "sigma": config.sigma,
            "abstain_rate": float(np.mean(cert["pred"] < 0)),
            "accuracy": float(np.mean(cert["pred"] == y_eval)),
        },
    }
    _io.atomic_write_json(path("summary"), summary)
    # Written last: vouches for the bytes of every rejection_* results file of this run.
    write_provenance(
        results_dir,
        "rejection",
        study="rejection",
        dataset=dataset.name,
        data_fingerprint=data_fp,
        config=config,
        config_hash=config_hash,
        extra={"train_nr": nr_tcfg, "train_rs": rs_tcfg},
    )
    path("provenance")
    timings["analysis"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return RejectionResults(
        config=config,
        out_dir=out,
        tables=tables,
        files=files,
        summary=summary,
        timings=timings,
        reused=tuple(reused),
    )


def write_figures(
    analysis: RejectionAnalysis,
    fig_dir: str | os.PathLike[str],
    *,
    certified: Sequence[Mapping[str, Any]] = (),
    radii: Sequence[float] = (),
) -> dict[str, Path]:
    """All rejection figures of ``analysis`` (and certified accuracy rows) as PNGs.

    Returns name -> path: ``fig_fpr_curves_all``, ``fig_fpr_curves_<attr>``,
    ``fig_auc_fpr_<attr>``, ``fig_fpr_parity_vs_n``, ``fig_certified_<attr>``.
    """
    from fairrobust.figures import rejection as figs

    fig_dir = Path(fig_dir)
    out: dict[str, Path] = {}
    out["fig_fpr_curves_all"] = figs.plot_fpr_curves(
        analysis.thresholds,
        analysis.overall_curves[..., None],
        fig_dir / "rejection_fpr_curves_all.png",
        method_labels=analysis.methods,
        group_labels=["all"],
        title="False rejection on clean data (all examples)",
        ci=None
        if analysis.overall_curves_ci is None or not analysis.num_resamples
        else analysis.overall_curves_ci[:, :, None],
    )
    attrs = list(analysis.attributes.values())
    for a in attrs:
        s = _slug(a.attribute)
        labels = [f"{g} (n={int(n)})" for g, n in zip(a.names, a.sizes, strict=True)]
        out[f"fig_fpr_curves_{s}"] = figs.plot_fpr_curves(
            analysis.thresholds,
            a.curves,
            fig_dir / f"rejection_fpr_curves_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"False rejection rate by {a.attribute}",
            ci=a.curves_ci if analysis.num_resamples else None,
        )
        out[f"fig_auc_fpr_{s}"] = figs.plot_auc_fpr_bars(
            a.auc,
            fig_dir / f"rejection_auc_fpr_{s}.png",
            method_labels=analysis.methods,
            group_labels=labels,
            title=f"AUC_FPR by {a.attribute}",
        )
    if attrs:
        k = len(analysis.num_samples)
        out["fig_fpr_parity_vs_n"] = figs.plot_fpr_parity_vs_n(
            analysis.num_samples,
            np.stack([a.parity[:k] for a in attrs]),
            np.asarray([a.parity[k] for a in attrs]),
            fig_dir / "rejection_fpr_parity_vs_n.png",
            attribute_labels=[a.attribute for a in attrs],
            rs_ci=np.stack([a.parity_ci[:k] for a in attrs]) if analysis.num_resamples else None,
            nr_ci=np.stack([a.parity_ci[k] for a in attrs]) if analysis.num_resamples else None,
        )
    if certified:
        radii_arr = np.asarray(radii, dtype=np.float64)
        by_attr: dict[str, dict[str, dict[float, tuple[float, float, float]]]] = {}
        for row in certified:
            cell = tuple(
                math.nan if row.get(k) is None else float(row[k])
                for k in ("certified_accuracy", "ci_low", "ci_high")
            )
            by_group = by_attr.setdefault(row["attribute"], {}).setdefault(row["group"], {})
            by_group[row["radius"]] = cell  # type: ignore[assignment]
        missing = (math.nan, math.nan, math.nan)
        for attr, grp_rows in by_attr.items():
            s = _slug(attr)
            names = list(grp_rows)
            arr = np.asarray(
                [[grp_rows[g].get(float(r), missing) for g in names] for r in radii_arr]
            ).reshape(len(radii_arr), len(names), 3)
            acc = arr[..., 0]
            band = {}
            if np.isfinite(arr[..., 1:]).any():  # bootstrap intervals present
                band = {"lower": arr[..., 1], "upper": arr[..., 2]}
            out[f"fig_certified_{s}"] = figs.plot_certified_accuracy(
                radii_arr,
                acc,
                fig_dir / f"rejection_certified_accuracy_{s}.png",
                group_labels=names,
                title=f"Certified accuracy by {attr}",
                **band,
            )
    return out


# ----------------------------------------------------------------------------- CLI


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions


def _add(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """Add ``flag`` unless the caller's parser already defines it (shared data flags)."""
    if not _has(parser, flag):
        parser.add_argument(flag, **kwargs)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    _add(
        parser,
        "--dataset",
        default="bundled",
        help="dataset loader: bundled (default, no download), fsdd, wuw, audiomnist, "
        "common-voice, folder",
    )
    _add(parser, "--data-dir", type=Path, default=None, help="dataset root (not for bundled)")


def add_cli_arguments(parser: argparse.ArgumentParser, *, data_args: bool = True) -> None:
    """Add the flags of ``fairrobust study rejection`` to ``parser``.

    ``--dataset`` / ``--data-dir`` (with ``data_args``), ``--preset``, ``--config``
    (TOML, stored as ``args.study_config``), ``--out``, ``--seed``, ``--attributes``,
    ``--intersections``, ``--max-test``, ``--num-samples``, ``--noise``,
    ``--no-certify``, ``--no-resume``, ``--no-progress``. A flag the parser already
    defines (e.g. shared data flags of ``cli.py``) is left as it is.
    """
    if data_args:
        _add_data_arguments(parser)
    _add(
        parser,
        "--preset",
        default="quick",
        choices=sorted(PRESETS),
        help="quick: minutes on CPU (bundled data); paper: AISec'23 settings",
    )
    _add(
        parser,
        "--config",
        type=Path,
        default=None,
        dest="study_config",
        help="TOML file of RejectionConfig overrides (top level or [rejection] table)",
    )
    _add(parser, "--out", type=Path, required=True, help="run folder (results/, figures/)")
    _add(parser, "--seed", type=int, default=None, help="override the config seed")
    _add(
        parser,
        "--attributes",
        default=None,
        help="comma-separated attributes to group by (default: all)",
    )
    _add(
        parser,
        "--intersections",
        nargs="*",
        default=None,
        help="intersections, each 'a,b' or 'a x b' (e.g. gender,age)",
    )
    _add(parser, "--max-test", type=int, default=None, help="cap on evaluated test clips")
    _add(
        parser,
        "--num-samples",
        default=None,
        help="comma-separated RS sample sizes N (e.g. 10,100,1000,10000)",
    )
    _add(parser, "--noise", default=None, help="smoothing noise family (registered name)")
    _add(parser, "--no-certify", action="store_true", help="skip CERTIFY")
    _add(
        parser,
        "--no-resume",
        action="store_true",
        help="recompute everything instead of reusing matching models and samples",
    )
    _add(parser, "--no-progress", action="store_true", help="hide progress bars")


def _load_dataset(args: argparse.Namespace) -> Any:
    from fairrobust import data

    name = getattr(args, "dataset", "bundled")
    data_dir = getattr(args, "data_dir", None)
    if name == "bundled":
        return data.load_bundled()
    if data_dir is None:
        raise ValueError(f"--data-dir is required for --dataset {name}")
    opts: dict[str, Any] = {}
    for attr in ("sample_rate", "duration"):
        if getattr(args, attr, None) is not None:
            opts[attr] = getattr(args, attr)
    return data.load_dataset(name, data_dir, **opts)


def _parse_intersections(items: Sequence[str] | None) -> tuple[tuple[str, ...], ...] | None:
    if items is None:
        return None
    out = []
    for item in items:
        parts = [p.strip() for p in re.split(r",| x ", item) if p.strip()]
        if len(parts) < 2:
            raise ValueError(f"--intersections: expected 'a,b' or 'a x b', got {item!r}")
        out.append(tuple(parts))
    return tuple(out)


def config_from_args(args: argparse.Namespace) -> RejectionConfig:
    """The study config of parsed ``study rejection`` arguments (preset, TOML, flags)."""
    cfg = preset(getattr(args, "preset", "quick") or "quick")
    toml = getattr(args, "study_config", None)
    if toml is not None:
        cfg = config_from_toml(toml, cfg)
    changes: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    if getattr(args, "attributes", None):
        attrs = args.attributes
        attrs = (
            attrs.split(",")
            if isinstance(attrs, str)
            else [a for item in attrs for a in str(item).split(",")]
        )
        changes["attributes"] = tuple(a.strip() for a in attrs if a.strip())
    inter = _parse_intersections(getattr(args, "intersections", None))
    if inter is not None:
        changes["intersections"] = inter
    if getattr(args, "max_test", None) is not None:
        changes["max_test"] = args.max_test
    if getattr(args, "num_samples", None):
        try:
            changes["num_samples"] = tuple(int(v) for v in str(args.num_samples).split(","))
        except ValueError:
            raise ValueError(
                f"--num-samples: expected comma-separated integers, got {args.num_samples!r}"
            ) from None
    if getattr(args, "noise", None):
        changes["noise"] = args.noise
    if getattr(args, "no_certify", False):
        changes["certify"] = False
    return cfg.replace(**changes)


def _print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def cli_main(args: argparse.Namespace) -> int:
    """``fairrobust study rejection``: run the study, print Table 1 and FPR Parity."""
    config = config_from_args(args)
    ds = _load_dataset(args)
    print(
        f"rejection study on {ds.name}: {len(ds)} clips, {ds.num_classes} classes; "
        f"N = {list(config.num_samples)}, sigma = {config.sigma}, noise = {config.noise}"
    )
    res = run_study(
        ds,
        config,
        args.out,
        resume=not getattr(args, "no_resume", False),
        progress=not getattr(args, "no_progress", False),
    )
    print("\nAUC_FPR (rows: method; lower = fewer false rejections)")
    table = res.tables["auc_fpr"]
    cols = ["label", "overall", *[c for c in (table[0] if table else {}) if "=" in c][:8]]
    _print_rows(table, cols)
    print("\nFPR Parity (max - min group AUC_FPR; lower = more equal)")
    _print_rows(res.tables["fpr_parity"], ["attribute", "label", "fpr_parity", "worst_group"])
    print(
        f"\nNR accuracy {res.summary['nr_accuracy']:.3f}; RS base accuracy "
        f"{res.summary['rs_base_accuracy']:.3f}; {res.timings['total']:.0f} s"
    )
    print(f"results: {res.out_dir / 'results'}")
    return 0


def add_certify_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairrobust certify`` (flags the parser already has are kept)."""
    _add(
        parser,
        "--checkpoint",
        type=Path,
        required=True,
        help="checkpoint (.ckpt, or a training folder: its best.ckpt) written by "
        "'fairrobust train', ideally trained with --noise-std equal to --sigma",
    )
    _add_data_arguments(parser)
    _add(parser, "--split", default="test", choices=("train", "val", "test"))
    _add(parser, "--sigma", type=float, default=0.1, help="smoothing noise std")
    _add(parser, "--noise", default="gaussian", help="noise family (registered name)")
    _add(parser, "--n0", type=int, default=100, help="selection draws")
    _add(parser, "--n", type=int, default=10000, help="estimation draws")
    _add(parser, "--alpha", type=float, default=0.001, help="failure probability")
    _add(parser, "--seed", type=int, default=0, help="noise seed")
    _add(parser, "--max-examples", type=int, default=None, help="certify the first K examples")
    _add(parser, "--batch-size", type=int, default=16, help="clips per certify call")
    _add(parser, "--chunk-size", type=int, default=16, help="noise draws per forward pass")
    _add(parser, "--out", type=Path, required=True, help="per-example CSV to write")


def certify_main(args: argparse.Namespace) -> int:
    """``fairrobust certify``: CERTIFY every clip of a split, write a per-example CSV.

    Columns: index, path, label, prediction (-1 = abstain), radius, correct,
    p_a_lower, then the dataset's attributes. Prints certified accuracy at a few radii.
    """
    import jax
    import jax.numpy as jnp

    from fairrobust import models, smoothing
    from fairrobust.train import load_checkpoint

    ckpt_path = Path(args.checkpoint)
    if ckpt_path.is_dir():  # a training folder: use its selected (best) checkpoint
        ckpt_path = ckpt_path / "best.ckpt"
    ckpt = load_checkpoint(ckpt_path)
    ds = _load_dataset(args)
    split = getattr(args, "split", "test")
    idx = np.flatnonzero(np.asarray(ds.splits) == split)
    if getattr(args, "max_examples", None) is not None:
        idx = idx[: args.max_examples]
    if idx.size == 0:
        raise ValueError(f"split {split!r} of {ds.name!r} has no examples")
    apply_fn = models.logits_fn(ckpt.model)  # pyright: ignore[reportArgumentType]
    key = jax.random.key(getattr(args, "seed", 0))
    batch = getattr(args, "batch_size", 16) or 16
    x = np.asarray(ds.waveforms[idx], np.float32)
    parts: dict[str, list[np.ndarray]] = {"pred": [], "radius": [], "p_a_lower": []}
    with _io.progress(total=len(idx), desc="CERTIFY") as bar:
        for s in range(0, len(idx), batch):
            rows = slice(s, s + batch)
            r = smoothing.certify(
                apply_fn,
                ckpt.variables,
                jnp.asarray(x[rows]),
                key,
                n0=args.n0,
                n=args.n,
                alpha=args.alpha,
                sigma=args.sigma,
                num_classes=ds.num_classes,
                noise=getattr(args, "noise", "gaussian"),
                chunk_size=getattr(args, "chunk_size", 16) or 16,
                indices=jnp.asarray(idx[rows], jnp.int32),
            )
            parts["pred"].append(r.pred)
            parts["radius"].append(r.radius)
            parts["p_a_lower"].append(r.p_a_lower)
            bar.update(len(r.pred))
    pred, radius, p_a = (np.concatenate(parts[k]) for k in ("pred", "radius", "p_a_lower"))
    labels = np.asarray(ds.labels[idx])
    rows = certify_table(
        index=idx,
        paths=np.asarray(ds.paths)[idx],
        labels=labels,
        pred=pred,
        radius=radius,
        p_a_lower=p_a,
        attributes={k: np.asarray(v)[idx] for k, v in ds.attributes.items()},
    )
    out = write_csv(args.out, rows)
    radii = np.asarray([0.0, 0.25 * args.sigma, 0.5 * args.sigma, args.sigma, 2 * args.sigma])
    acc = smoothing.certified_accuracy(pred, radius, labels, radii, None)[:, 0]
    print(
        f"certified {len(idx)} clips of {ds.name}/{split} (sigma={args.sigma}, n0={args.n0}, "
        f"n={args.n}, alpha={args.alpha}); abstained on {np.mean(pred < 0):.1%}"
    )
    print("radius   " + "  ".join(f"{r:7.4f}" for r in radii))
    print("cert.acc " + "  ".join(f"{a:7.3f}" for a in acc))
    print(f"wrote {out}")
    return 0
