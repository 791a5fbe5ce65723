"""The soundness study: is the robustness study's attack strong enough to trust its parity?

It takes the two studies' *results* (never their configs): the robustness
study's members (model folders, test clips, attack settings) and the rejection
study's randomized-smoothing base model (folder, sigma, evaluated clips), and runs
:func:`fairrobust.evaluation.run_soundness_checks` on the members named by
:attr:`SoundnessConfig.models` plus the EOT attack on the smoothed classifier
(:func:`fairrobust.evaluation.smoothed_robust_correct`). For every attack tried and
every attribute it reports Defense Parity with bootstrap intervals, so a reader
can see whether the study's parity holds under the strongest attack tried. The
attacks tried include ones strictly stronger than the study's by construction: 5x
and 10x its PGD steps (paper preset: 5x), random restarts of the longest run and
the DLR loss of APGD-DLR, all on the same clips as the study's attack.

Files (``results/``, atomic): ``soundness.json`` (settings, input hash, verdicts,
numbers, per-model reports) and ``soundness_parity.{csv,json}``; the settings
record the clip counts (``n_examples`` of the study's ``study_n_examples`` test
clips), so every number can be read with the clips it was computed on; the report
renders ``soundness.md`` from ``soundness.json``. A rerun with the same inputs
(models, data, clips, attack and check settings, seed) reuses ``soundness.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fairrobust import _io
from fairrobust.defenses import parse_preprocess, with_preprocess
from fairrobust.evaluation import (
    SmoothingAttackConfig,
    run_soundness_checks,
    smoothed_robust_correct,
)
from fairrobust.groups import with_speakers
from fairrobust.metrics import AucAccStat, bootstrap_ci
from fairrobust.studies._store import library_version, seeded_subset, train_or_load, write_table
from fairrobust.studies.config import SOUNDNESS_ALIASES, RobustnessConfig, SoundnessConfig
from fairrobust.studies.intervals import apply_holm, comparison_rows
from fairrobust.studies.rejection import RejectionResults
from fairrobust.studies.robustness import MemberResult, RobustnessResults, resolve_groups
from fairrobust.studies.robustness_tables import bootstrap_options
from fairrobust.studies.selection import select_baseline, select_most_robust
from fairrobust.train import TrainConfig

__all__ = [
    "PARITY_COLUMNS",
    "SOUNDNESS_FILES",
    "check_model",
    "convergence_flags",
    "parity_rows",
    "pick_surrogate",
    "remove_soundness",
    "resolve_targets",
    "run_soundness",
    "soundness_steps",
]

#: Columns of ``results/soundness_parity.{csv,json}``; ``beyond_study_ci`` (name kept for
#: existing readers): the paired difference from the study attack is significant after
#: Holm's correction over the model's attacks x attributes.
PARITY_COLUMNS = (
    "model",
    "role",
    "attack",
    "attribute",
    "defense_parity",
    "ci_low",
    "ci_high",
    "n_valid_groups",
    "worst_group",
    "worst_auc_acc",
    "worst_auc_acc_ci_low",
    "worst_auc_acc_ci_high",
    "study_attack",
    "study_defense_parity",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "p_value",
    "p_holm",
    "n_comparisons",
    "beyond_study_ci",
)
#: Every file of the soundness study under ``results/``.
SOUNDNESS_FILES = (
    "soundness.json",
    "soundness.md",
    "soundness_parity.csv",
    "soundness_parity.json",
)
#: Salts of the seeded clip subsets (smoothing check, base-model checks).
_SALT_SMOOTH, _SALT_BASE = 0x5E0, 0x5E1


def soundness_steps(cfg: SoundnessConfig, attack_steps: int, preset: str) -> tuple[int, ...]:
    """PGD step counts of the convergence check, sorted.

    ``cfg.steps`` (or the preset's automatic counts, see
    :attr:`SoundnessConfig.steps`), the study's ``attack_steps`` and
    ``m * attack_steps`` for every ``m`` in ``cfg.step_multipliers`` (each >= 2): the
    largest counts are strictly above the study's, so the strongest attack tried is
    stronger than the study's by construction (quick: 10 -> 50, 100).
    """
    attack_steps = int(attack_steps)
    if cfg.steps:
        base = set(cfg.steps)
    elif preset == "paper":
        base = {1, 10, 50}
    else:
        base = {1, max(1, attack_steps // 2)}
    more = {int(m) * attack_steps for m in cfg.step_multipliers}
    return tuple(sorted(base | {attack_steps} | more))


def resolve_targets(cfg: SoundnessConfig, rob_res: RobustnessResults) -> list[tuple[Any, str]]:
    """``[(MemberResult, role)]`` of the members named by ``cfg.models``, deduplicated."""
    rows = rob_res.tables["models"]
    by_id = {m.spec.member_id: m for m in rob_res.members}
    out: dict[str, str] = {}
    for name in cfg.models:
        if name == "all":
            for r in rows:
                out.setdefault(r["member_id"], "")
            continue
        if name in ("baseline", "most_robust"):
            row = select_baseline(rows) if name == "baseline" else select_most_robust(rows)
            if row is not None:
                role = "clean baseline" if name == "baseline" else "most robust"
                prev = out.get(row["member_id"])
                out[row["member_id"]] = role if not prev else f"{prev}, {role}"
            continue
        if name not in by_id:
            raise ValueError(
                f"SoundnessConfig.models: unknown member {name!r}; expected one of "
                f"{list(SOUNDNESS_ALIASES)} or a member id {sorted(by_id)}"
            )
        out.setdefault(name, "")
    return [(by_id[mid], role) for mid, role in out.items()]


def pick_surrogate(target: MemberResult, members: Sequence[MemberResult]) -> MemberResult | None:
    """Another trained grid member of the same architecture (clean-trained preferred)."""
    others: dict[str, MemberResult] = {}
    for m in members:
        s = m.spec
        if s.model == target.spec.model and s.train_id != target.spec.train_id:
            others.setdefault(s.train_id, m)
    if not others:
        return None
    clean = [m for m in others.values() if m.spec.at_eps == 0 and m.spec.noise_std == 0]
    return (clean or list(others.values()))[0]


def _finite(v: Any) -> float | None:
    f = float(v)
    return f if np.isfinite(f) else None


def parity_rows(
    correct: Mapping[str, np.ndarray],
    eps: np.ndarray,
    groups: Mapping[str, Any],
    speakers: np.ndarray,
    rob_cfg: RobustnessConfig,
    key: jax.Array,
    base: Mapping[str, Any],
    study_attack: str | None = None,
) -> list[dict[str, Any]]:
    """Defense Parity (and the worst group's AUC_acc) per attack and attribute, with CIs.

    ``correct``: attack name -> per-example correctness ``[e, n]``. Per attribute, every
    attack's AUC_acc / Defense Parity and their bootstrap intervals are one vmapped
    computation (``metrics.bootstrap_ci`` with ``AucAccStat``; stratified by group,
    clustered by speaker; the robustness study's resamples and level). With
    ``study_attack`` (a key of ``correct``), every row also carries that attack's
    Defense Parity on the same clips (``study_defense_parity``), the paired
    difference ``defense_parity - study_defense_parity`` on the same resamples
    (``difference``, ``difference_ci_low`` / ``_high``, ``p_value``; see
    ``fairrobust.metrics.paired_difference``), Holm-corrected over this call's
    attacks x attributes (``p_holm``, ``n_comparisons``), and ``beyond_study_ci``:
    whether that difference is significant after the correction (None for the
    study attack's own rows and when a number or the intervals are missing).
    """
    names = list(correct)
    stack = np.stack([np.asarray(correct[a], np.float32) for a in names])  # [A, e, n]
    rows: list[dict[str, Any]] = []
    for i_attr, (attr, grp) in enumerate(groups.items()):
        if grp.num_groups == 0:
            continue
        valid = tuple(bool(v) for v in np.asarray(grp.valid))
        stat = AucAccStat(tuple(float(e) for e in eps), valid)
        dp_samples = None
        if rob_cfg.bootstrap_resamples > 0:
            kw = bootstrap_options(rob_cfg, jax.random.fold_in(key, i_attr), speakers)
            res = bootstrap_ci(stat, stack, grp.masks, return_samples=True, **kw)
            est, lo, hi = (
                {k: np.asarray(v, np.float64) for k, v in d.items()}
                for d in (res.estimate, res.lower, res.upper)
            )
            dp_samples = np.asarray(res.samples["defense_parity"], np.float64)  # [R, A]
        else:
            est = {
                k: np.asarray(v, np.float64)
                for k, v in stat(jnp.asarray(stack), jnp.asarray(grp.masks), None).items()
            }
            lo = hi = {k: np.full_like(v, np.nan) for k, v in est.items()}
        vidx = np.flatnonzero(np.asarray(grp.valid))
        for a, name in enumerate(names):
            auc = est["auc_acc"][a]
            ok = vidx[np.isfinite(auc[vidx])]
            w = int(ok[np.argmin(auc[ok])]) if ok.size >= 2 else None
            rows.append(
                {
                    **base,
                    "attack": name,
                    "attribute": attr,
                    "defense_parity": _finite(est["defense_parity"][a]),
                    "ci_low": _finite(lo["defense_parity"][a]),
                    "ci_high": _finite(hi["defense_parity"][a]),
                    "n_valid_groups": int(ok.size),
                    "worst_group": None if w is None else grp.names[w],
                    "worst_auc_acc": None if w is None else _finite(auc[w]),
                    "worst_auc_acc_ci_low": None if w is None else _finite(lo["auc_acc"][a, w]),
                    "worst_auc_acc_ci_high": None if w is None else _finite(hi["auc_acc"][a, w]),
                }
            )
        if study_attack is not None:
            _compare_with_study(rows[-len(names) :], names, est, dp_samples, study_attack, rob_cfg)
    if study_attack is not None:
        apply_holm([r for r in rows if "p_value" in r], 1.0 - rob_cfg.ci_level)
        for r in rows:
            sig = r.pop("significant", None)
            r["beyond_study_ci"] = sig if r.get("p_value") is not None else None
            r.pop("family", None)
    return rows


def _compare_with_study(
    rows: list[dict[str, Any]],
    names: list[str],
    est: Mapping[str, np.ndarray],
    dp_samples: np.ndarray | None,
    study_attack: str,
    rob_cfg: RobustnessConfig,
) -> None:
    """Adds the paired difference with the study attack to one attribute's rows, in place."""
    s = names.index(study_attack)
    dp = est["defense_parity"]
    for a, r in enumerate(rows):
        r.update(study_attack=study_attack, study_defense_parity=_finite(dp[s]))
        if a == s or dp_samples is None:  # no comparison: beyond_study_ci is None
            r.update(difference=None, difference_ci_low=None, difference_ci_high=None, p_value=None)
            continue
        (c,) = comparison_rows(
            {"family": "strongest_vs_study"},
            dp[a],
            dp_samples[:, a],
            dp[s],
            dp_samples[:, s],
            level=rob_cfg.ci_level,
        )
        r.update(
            family=c["family"],
            difference=c["difference"],
            difference_ci_low=c["ci_low"],
            difference_ci_high=c["ci_high"],
            p_value=c["p_value"],
        )


def convergence_flags(conv: Any) -> dict[str, Any]:
    """``converged`` and the epsilons where accuracy still fell between the two largest
    step counts (``not_converged_eps``) of a ``ConvergenceCheck``."""
    eps = [
        float(e)
        for e, rs in zip(conv.epsilons, conv.reasons, strict=True)
        if any(r.startswith("not_converged") for r in rs)
    ]
    return {"converged": not eps, "not_converged_eps": eps}


def _check_rows(model: str, role: str, checks: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "model": model,
            "role": role,
            "check": c.name,
            "verdict": c.verdict,
            "summary": c.summary(),
            "reasons": list(c.all_reasons),
        }
        for c in checks
    ]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the checks run on, and the settings / inputs record that keys the cache."""

    targets: list[tuple[MemberResult, str, MemberResult | None]]
    steps: tuple[int, ...]
    eps: np.ndarray
    test_idx: np.ndarray | None  # dataset indices of the base-model checks
    smooth_idx: np.ndarray | None  # dataset indices of the smoothing check
    settings: dict[str, Any]
    inputs_hash: str
    attributes: frozenset[str]  # the robustness study's analysed (usable) attributes


def _plan(
    dataset: Any,
    cfg: SoundnessConfig,
    rob_res: RobustnessResults,
    rej_res: RejectionResults | None,
) -> _Plan:
    rob_cfg = rob_res.config
    attack_steps = int(rob_cfg.attack_steps)
    steps = soundness_steps(cfg, attack_steps, rob_cfg.preset)
    targets = [
        (m, role, pick_surrogate(m, rob_res.members) if cfg.transfer else None)
        for m, role in resolve_targets(cfg, rob_res)
    ]
    test_index = np.asarray(rob_res.test_index)
    sel = seeded_subset(np.arange(len(test_index)), cfg.max_examples, rob_cfg.seed, _SALT_BASE)
    smooth_idx = None
    if cfg.smoothing and rej_res is not None:
        ev = np.asarray(rej_res.eval_index)
        pos = seeded_subset(
            np.arange(len(ev)), cfg.smoothing_examples, rej_res.config.seed, _SALT_SMOOTH
        )
        smooth_idx = ev[pos]
    settings = {
        "models": list(cfg.models),
        "study_steps": attack_steps,
        "steps": list(steps),
        "step_multipliers": list(cfg.step_multipliers),
        "restarts": cfg.restarts,
        "restart_steps": steps[-1] if cfg.restarts else None,
        "dlr_steps": steps[-1] if cfg.dlr else None,
        "transfer": cfg.transfer,
        "norm": "linf",
        "epsilons": [float(e) for e in rob_cfg.attack_eps],
        "rel_step": float(rob_cfg.attack_rel_step),
        "random_start": False,
        "tolerance": cfg.tolerance,
        "chance_margin": cfg.chance_margin,
        "n_examples": int(sel.size),
        "study_n_examples": len(test_index),
        "bootstrap": int(rob_cfg.bootstrap_resamples),
        "ci_level": float(rob_cfg.ci_level),
        "seed": int(rob_cfg.seed),
        "min_group_size": int(rob_cfg.min_group_size),
        "smoothing": None
        if smooth_idx is None or rej_res is None
        else {
            "sigma": float(rej_res.config.sigma),
            "noise": rej_res.config.noise,
            "num_noise": cfg.num_noise,
            "num_samples": cfg.num_samples,
            "objective": "mean_softmax",
            "num_steps": attack_steps,
            "n_examples": int(smooth_idx.size),
            "study_n_examples": len(rej_res.eval_index),
            "seed": int(rej_res.config.seed),
        },
    }
    inputs = {
        "format": 1,
        "settings": settings,
        "batch_size": cfg.batch_size,
        "data_fingerprint": dataset.fingerprint(),
        "attributes": [list(rob_cfg.attributes), list(rob_cfg.intersections)],
        "targets": [
            [m.spec.eval_hash, role, None if s is None else s.spec.train_id]
            for m, role, s in targets
        ],
        "test_index": _io.stable_hash(test_index[sel].tolist()),
        "smoothing": None
        if smooth_idx is None or rej_res is None
        else [str(rej_res.model_dirs["rs"].name), _io.stable_hash(smooth_idx.tolist())],
    }
    return _Plan(
        targets=targets,
        steps=steps,
        eps=np.asarray(rob_cfg.attack_eps, np.float32),
        test_idx=test_index[sel] if targets else None,
        smooth_idx=smooth_idx,
        settings=settings,
        inputs_hash=_io.stable_hash(inputs),
        attributes=frozenset(rob_res.groups),
    )


def _groups(dataset: Any, idx: np.ndarray, rob_cfg: RobustnessConfig, analysed: frozenset[str]):
    """The robustness study's groups on clips ``idx``: only the attributes it analysed."""
    attrs = {k: np.asarray(v)[idx] for k, v in dataset.attributes.items()}
    speakers = np.asarray(dataset.speakers)[idx]
    return {
        k: with_speakers(g, speakers, rob_cfg.min_speakers)
        for k, g in resolve_groups(attrs, rob_cfg).items()
        if k in analysed
    }


def _member_model(dataset: Any, member: MemberResult, run_dir: Path, progress: bool):
    trained = train_or_load(
        dataset,
        TrainConfig(**member.spec.train_spec["train_config"]),
        run_dir / "models" / member.spec.train_id,
        resume=True,
        progress=progress,
    )
    return trained.apply_fn, trained.variables


def check_model(
    apply_fn: Any,
    variables: Any,
    x: np.ndarray,
    y: np.ndarray,
    groups: Mapping[str, Any],
    speakers: np.ndarray,
    key: jax.Array,
    *,
    cfg: SoundnessConfig,
    rob_cfg: RobustnessConfig,
    steps: Sequence[int],
    num_classes: int,
    base: Mapping[str, Any],
    surrogate: tuple[Any, Any] | None = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The soundness checks of one robustness-study model on the soundness clips.

    What :func:`run_soundness` runs per checked member:
    :func:`fairrobust.evaluation.run_soundness_checks` with the study's budgets and step
    size over ``steps`` (:func:`soundness_steps`: the study's ``attack_steps`` and more),
    ``cfg``'s restarts and DLR loss, then :func:`parity_rows` of every attack against
    the study's attack (``PGD-<attack_steps>``) re-run on the same clips, and
    :func:`convergence_flags`.

    Args:
      apply_fn, variables: the model (preprocessing defense already composed in).
      x: the soundness clips, float32 ``[n, T]``; y: their labels ``[n]``.
      groups: attribute -> ``Groups`` of the same clips; speakers: ``[n]``.
      key: PRNG key of this model's checks.
      cfg: the :class:`SoundnessConfig`; rob_cfg: the robustness study's config
        (``attack_eps``, ``attack_steps``, ``attack_rel_step``, bootstrap settings).
      steps: PGD step counts of the convergence check, sorted.
      num_classes: C.
      base: fields every row and the record start with (``model``, ``role``).
      surrogate: ``(apply_fn, variables)`` of the transfer attack's source, or None.
      progress: show progress bars.

    Returns:
      ``(check rows, parity rows, model record)``; the record holds ``study_attack``,
      ``strongest_steps`` (the largest step count), ``n_examples`` (clips),
      ``converged`` / ``not_converged_eps``, ``attacks``, ``verdict`` and ``report``.
    """
    steps = tuple(int(s) for s in steps)
    eps = np.asarray(rob_cfg.attack_eps, np.float32)
    study_attack = f"PGD-{int(rob_cfg.attack_steps)}"
    rep = run_soundness_checks(
        apply_fn, variables, x, y, eps, key, num_classes=num_classes, steps=steps,
        restarts=cfg.restarts or None, restart_steps=None, surrogate=surrogate, dlr=cfg.dlr,
        rel_step=float(rob_cfg.attack_rel_step), tolerance=cfg.tolerance,
        chance_margin=cfg.chance_margin, batch_size=cfg.batch_size, progress=progress,
    )  # fmt: skip
    model, role = base["model"], base["role"]
    parity = parity_rows(
        rep.correct, eps, groups, speakers, rob_cfg, jax.random.fold_in(key, 7), base,
        study_attack=study_attack,
    )  # fmt: skip
    record = {
        **base,
        "study_attack": study_attack,
        "strongest_steps": max(steps),
        "n_examples": int(np.shape(x)[0]),
        **convergence_flags(rep.convergence),
        "attacks": list(rep.correct),
        "verdict": rep.verdict,
        "report": rep.to_dict(),
    }
    return _check_rows(model, role, rep.checks), parity, record


def _check_members(
    dataset: Any,
    run_dir: Path,
    cfg: SoundnessConfig,
    plan: _Plan,
    rob_cfg: RobustnessConfig,
    key: jax.Array,
    *,
    progress: bool,
    log: Callable[[str], Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Checks of the robustness-study members: (check rows, parity rows, model records)."""
    checks: list[dict[str, Any]] = []
    parity: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    if not plan.targets or plan.test_idx is None:
        return checks, parity, records
    idx = plan.test_idx
    x = np.asarray(dataset.waveforms[idx], np.float32)
    y = np.asarray(dataset.labels[idx], np.int32)
    groups = _groups(dataset, idx, rob_cfg, plan.attributes)
    speakers = np.asarray(dataset.speakers)[idx]
    attack_steps = int(rob_cfg.attack_steps)
    for member, role, sur in plan.targets:
        spec = member.spec
        log(
            f"  soundness: {spec.member_id} ({role or 'requested'}): PGD steps "
            f"{list(plan.steps)} (study: {attack_steps}), {cfg.restarts} restarts x "
            f"{plan.steps[-1]} steps, DLR {'on' if cfg.dlr else 'off'}, transfer from "
            f"{'-' if sur is None else sur.spec.member_id}, on {idx.size} of the study's "
            f"{plan.settings['study_n_examples']} test clips"
        )
        apply_fn, variables = _member_model(dataset, member, run_dir, progress)
        fn = with_preprocess(apply_fn, parse_preprocess(spec.preprocess, dataset.sample_rate))
        surrogate = None if sur is None else _member_model(dataset, sur, run_dir, progress)
        c, p, record = check_model(
            fn, variables, x, y, groups, speakers,
            jax.random.fold_in(key, int(spec.eval_hash[:7], 16)), cfg=cfg, rob_cfg=rob_cfg,
            steps=plan.steps, num_classes=dataset.num_classes,
            base={"model": spec.member_id, "role": role}, surrogate=surrogate,
            progress=progress,
        )  # fmt: skip
        checks += c
        parity += p
        records.append({**record, "surrogate": None if sur is None else sur.spec.member_id})
    return checks, parity, records


def _check_smoothed(
    dataset: Any,
    cfg: SoundnessConfig,
    plan: _Plan,
    rob_cfg: RobustnessConfig,
    rej_res: RejectionResults,
    key: jax.Array,
    *,
    progress: bool,
    log: Callable[[str], Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """EOT vs plain PGD on the rejection study's smoothed classifier."""
    idx = np.asarray(plan.smooth_idx)
    rcfg = rej_res.config
    log(
        f"  soundness: EOT attack on the RS base model (sigma {rcfg.sigma:g}, "
        f"M {cfg.num_noise}, N {cfg.num_samples}) on {idx.size} clips"
    )
    trained = train_or_load(
        dataset, rej_res.train_configs["rs"], rej_res.model_dirs["rs"], resume=True,
        progress=progress,
    )  # fmt: skip
    xs = np.asarray(dataset.waveforms[idx], np.float32)
    ys = np.asarray(dataset.labels[idx], np.int32)
    skey = jax.random.fold_in(key, 0x5A)
    sc = SmoothingAttackConfig(
        sigma=float(rcfg.sigma), num_noise=cfg.num_noise, num_samples=cfg.num_samples,
        noise=rcfg.noise, chunk_size=min(int(rcfg.chunk_size), cfg.num_samples),
    )  # fmt: skip
    check = smoothed_robust_correct(
        trained.apply_fn, trained.variables, xs, ys, plan.eps, skey,
        num_classes=dataset.num_classes, smoothing_config=sc,
        num_steps=int(rob_cfg.attack_steps), rel_step=float(rob_cfg.attack_rel_step),
        tolerance=cfg.tolerance, batch_size=cfg.batch_size, progress=progress,
    )  # fmt: skip
    name = "RS base (rejection study)"
    base = {"model": name, "role": "smoothed classifier"}
    correct = {
        "smoothed: plain PGD on base": check.plain_correct,
        "smoothed: EOT": check.eot_correct,
        "smoothed: strongest": check.strongest_correct,
    }
    groups = _groups(dataset, idx, rob_cfg, plan.attributes)
    parity = parity_rows(
        correct, plan.eps, groups, np.asarray(dataset.speakers)[idx], rob_cfg,
        jax.random.fold_in(skey, 7), base, study_attack="smoothed: plain PGD on base",
    )  # fmt: skip
    n = max(int(idx.size), 1)
    record = {
        **base,
        "verdict": check.verdict,
        "attacks": list(correct),
        "accuracy": {k: (np.asarray(v).sum(-1) / n).tolist() for k, v in correct.items()},
        "check": check.to_dict(),
    }
    return _check_rows(name, base["role"], [check]), parity, record


def run_soundness(
    dataset: Any,
    run_dir: str | Path,
    cfg: SoundnessConfig,
    robustness: RobustnessResults | None,
    rejection: RejectionResults | None = None,
    *,
    reuse: bool = True,
    progress: bool = True,
    log: Callable[[str], Any] = print,
) -> dict[str, Any] | None:
    """Run the soundness checks of a run and write ``results/soundness*.{json,csv}``.

    For each robustness-study member of ``cfg.models``:
    :func:`fairrobust.evaluation.run_soundness_checks` on the study's test clips and
    attack budgets (PGD L-inf, the study's step size, clean start): convergence over
    :func:`soundness_steps` (the study's steps and 5x / 10x more), FGSM, the budget
    curve, ``cfg.restarts`` random restarts of the longest run, PGD on the DLR loss
    and a transfer attack from :func:`pick_surrogate`. With
    ``rejection`` and ``cfg.smoothing``: the EOT attack on the rejection study's RS
    base model. For every attack and attribute, Defense Parity with bootstrap
    intervals (:func:`parity_rows`), and whether it lies outside the study attack's
    interval on the same clips (``beyond_study_ci``); each model record says whether
    accuracy still fell between the two largest step counts (``converged``).

    Args:
      dataset: the ``AudioDataset`` both studies ran on.
      run_dir: the run folder (models are read from ``models/``).
      cfg: the :class:`SoundnessConfig`.
      robustness: the robustness study's results (its members, clips and attack
        settings). Without it there is no attack to check: returns None.
      rejection: the rejection study's results (RS base model folder, sigma,
        evaluated clips), or None.
      reuse: reuse ``soundness.json`` when its inputs are unchanged.
      progress: show progress bars.
      log: where step messages go.

    Returns:
      The ``soundness.json`` record, or None when there is nothing to check.

    Raises:
      ValueError: results of external models (``studies.external``): the checks
        reload the studies' own trained models from ``models/``.
    """
    if robustness is None:
        return None
    external = [m.spec.member_id for m in robustness.members if m.spec.external]
    if rejection is not None and "rs" not in rejection.train_configs:
        external.append("the rejection study's RS base model")
    if external:
        raise ValueError(
            f"run_soundness: expected results of the studies' trained models, got external "
            f"models {external}"
        )
    run_dir = Path(run_dir)
    results = run_dir / "results"
    plan = _plan(dataset, cfg, robustness, rejection)
    if not plan.targets and plan.smooth_idx is None:
        return None
    json_path = results / "soundness.json"
    if reuse and json_path.is_file():
        try:
            old = _io.read_json(json_path)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("inputs_hash") == plan.inputs_hash:
            log("soundness checks: up to date (inputs unchanged), reused results/soundness.json")
            _write_parity(results, old)
            return old
    rob_cfg = robustness.config
    key = jax.random.fold_in(jax.random.key(int(rob_cfg.seed)), 0x50D)
    checks, parity, models = _check_members(
        dataset, run_dir, cfg, plan, rob_cfg, key, progress=progress, log=log
    )
    smooth_record = None
    if plan.smooth_idx is not None and rejection is not None:
        s_checks, s_parity, smooth_record = _check_smoothed(
            dataset, cfg, plan, rob_cfg, rejection, key, progress=progress, log=log
        )
        checks += s_checks
        parity += s_parity
    record = {
        "study": "soundness",
        "inputs_hash": plan.inputs_hash,
        "verdict": "warn" if any(c["verdict"] == "warn" for c in checks) else "pass",
        "dataset": dataset.name,
        "data_fingerprint": dataset.fingerprint(),
        "library_version": library_version(),
        "settings": plan.settings,
        "checks": checks,
        "parity": parity,
        "models": models,
        "smoothing": smooth_record,
    }
    _io.atomic_write_json(json_path, record)
    if _io.writable(json_path):  # views from the file, exactly as a rerun sees it
        record = _io.read_json(json_path)
    _write_parity(results, record)
    return record


def _write_parity(results: Path, record: Mapping[str, Any]) -> None:
    """``soundness_parity.{csv,json}`` from the ``soundness.json`` record."""
    write_table(results / "soundness_parity", record.get("parity", []), PARITY_COLUMNS)


def remove_soundness(run_dir: str | Path) -> None:
    """Delete the soundness files of an earlier run in ``run_dir`` (checks skipped now)."""
    for name in SOUNDNESS_FILES:
        _io.remove(Path(run_dir) / "results" / name)
