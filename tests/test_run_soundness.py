"""The soundness checks of ``fairrobust run`` (issue 7): settings, target choice, report section.

The end-to-end part (checks run inside a tiny ``fairrobust run``, files written,
reused on a rerun, ``--no-soundness``) is in ``tests/test_run.py``, which shares
the run fixture; these tests are fast and need no training.
"""

from __future__ import annotations

import dataclasses
import types

import jax
import numpy as np
import pytest

from fairrobust import report
from fairrobust.cli import build_parser
from fairrobust.cli import run as cli_run
from fairrobust.report import markdown as report_markdown
from fairrobust.studies import config as cfg_mod
from fairrobust.studies import results, summary
from fairrobust.studies import soundness as sound_study
from fairrobust.studies.findings import soundness_findings
from fairrobust.studies.robustness import resolve_groups

# ----------------------------------------------------------------------------- settings


def test_soundness_presets_and_toml_overrides(tmp_path):
    quick = cfg_mod.preset("soundness", "quick")
    assert quick.enabled and quick.models == ("baseline", "most_robust")
    assert quick.restarts == 2 and quick.transfer and quick.smoothing
    paper = cfg_mod.preset("soundness", "paper")
    # Restarts now run at the largest step count (5x the study's 100): 2, not 5, keep the
    # paper preset affordable (issue 13).
    assert paper.restarts == 2 and paper.max_examples == 0 and paper.num_samples == 100
    assert paper.step_multipliers == (5,) and quick.step_multipliers == (5, 10)
    assert not cfg_mod.load_configs("quick", soundness=False).soundness.enabled
    toml = tmp_path / "run.toml"
    toml.write_text('[soundness]\nrestarts = 3\nmodels = ["all"]\nsteps = [1, 4]\n')
    cfg = cfg_mod.load_configs("tiny", toml).soundness
    assert cfg.restarts == 3 and cfg.models == ("all",) and cfg.steps == (1, 4)
    # The other study tables are still accepted next to [soundness].
    rob, _, _ = cfg_mod.load_configs("tiny", toml)
    assert rob.preset == "tiny"
    toml.write_text("[soundness]\nnot_a_field = 1\n")
    with pytest.raises(ValueError, match="not_a_field"):
        cfg_mod.load_configs("quick", toml)
    with pytest.raises(ValueError, match="preset"):
        cfg_mod.preset("soundness", "huge")


@pytest.mark.parametrize("name", sorted(cfg_mod.SOUNDNESS_PRESETS))
def test_soundness_steps_exceed_the_study_attack_in_every_preset(name):
    """The strongest PGD tried has >= 5x the study's steps; the study's own is included."""
    study = cfg_mod.preset("robustness", name).attack_steps
    sound = cfg_mod.preset("soundness", name)
    steps = sound_study.soundness_steps(sound, study, name)
    assert study in steps and steps == tuple(sorted(set(steps)))
    assert steps[-1] >= 5 * study and steps[-2] >= study
    assert [s for s in steps if s > study] == [m * study for m in sound.step_multipliers]
    expected = {
        "quick": (1, 5, 10, 50, 100),
        "tiny": (1, 2, 10, 20),
        "paper": (1, 10, 50, 100, 500),
    }
    assert steps == expected[name]
    # Explicit step counts never drop the stronger ones.
    explicit = dataclasses.replace(sound, steps=(1, 3))
    assert sound_study.soundness_steps(explicit, study, name)[-1] == steps[-1]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("restarts", -1),
        ("num_noise", 0),
        ("num_samples", 0),
        ("steps", (0, 5)),
        ("step_multipliers", (1,)),
        ("step_multipliers", ()),
        ("tolerance", 1.5),
        ("models", ()),
        ("max_examples", True),
    ],
)
def test_soundness_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"SoundnessConfig.{field}"):
        cfg_mod.SoundnessConfig(**{field: value})


def test_soundness_steps_always_include_the_study_attack():
    # Issue 13: 5x and 10x the study's steps are always added (the default multipliers).
    cfg = cfg_mod.SoundnessConfig()
    assert sound_study.soundness_steps(cfg, 10, "quick") == (1, 5, 10, 50, 100)
    assert sound_study.soundness_steps(cfg, 2, "tiny") == (1, 2, 10, 20)
    assert sound_study.soundness_steps(cfg, 100, "paper") == (1, 10, 50, 100, 500, 1000)
    assert sound_study.soundness_steps(cfg, 1, "quick") == (1, 5, 10)
    custom = dataclasses.replace(cfg, steps=(1, 20, 200))
    assert sound_study.soundness_steps(custom, 100, "paper") == (1, 20, 100, 200, 500, 1000)


def test_no_soundness_flag_parses():
    p = build_parser()
    assert not p.parse_args(["run"]).no_soundness
    assert p.parse_args(["run", "--no-soundness"]).no_soundness


# ----------------------------------------------------------------------------- targets


def _member(mid, model="m5", at=0.0, noise=0.0):
    spec = types.SimpleNamespace(
        member_id=mid, train_id=f"{mid}-t", model=model, at_eps=at, noise_std=noise
    )
    return types.SimpleNamespace(spec=spec)


def _rob_res():
    members = [
        _member("m5_at0_noise0"),
        _member("m5_at0.01_noise0", at=0.01),
        _member("tricks_at0_noise0", model="m5-tricks"),
        _member("tricks_at0.01_noise0", model="m5-tricks", at=0.01),
    ]
    rows = [
        {
            "member_id": m.spec.member_id,
            "model": m.spec.model,
            "at_eps": m.spec.at_eps,
            "noise_std": m.spec.noise_std,
            "preprocess": "none",
            "auc_acc": auc,
            "excluded": excl,
        }
        for m, auc, excl in zip(
            members, (0.01, 0.05, 0.02, 0.09), (False, False, False, True), strict=True
        )
    ]
    return types.SimpleNamespace(members=members, tables={"models": rows})


def test_targets_resolve_aliases_and_ids():
    res = _rob_res()
    cfg = cfg_mod.SoundnessConfig()
    got = [(m.spec.member_id, role) for m, role in sound_study.resolve_targets(cfg, res)]
    # The excluded tricks model is never "most robust".
    assert got == [("m5_at0_noise0", "clean baseline"), ("m5_at0.01_noise0", "most robust")]
    cfg = dataclasses.replace(cfg, models=("tricks_at0_noise0", "baseline"))
    got = [m.spec.member_id for m, _ in sound_study.resolve_targets(cfg, res)]
    assert got == ["tricks_at0_noise0", "m5_at0_noise0"]
    all_cfg = dataclasses.replace(cfg, models=("all",))
    assert len(sound_study.resolve_targets(all_cfg, res)) == 4
    with pytest.raises(ValueError, match="unknown member 'nope'"):
        sound_study.resolve_targets(dataclasses.replace(cfg, models=("nope",)), res)


def test_surrogate_is_another_member_of_the_same_architecture():
    res = _rob_res()
    base, robust, tricks, tricks_at = res.members
    assert sound_study.pick_surrogate(robust, res.members) is base  # clean-trained preferred
    assert sound_study.pick_surrogate(base, res.members) is robust
    assert sound_study.pick_surrogate(tricks_at, res.members) is tricks
    assert sound_study.pick_surrogate(base, [base]) is None


# ----------------------------------------------------------------------------- report


def _record():
    parity = []
    for model, attack, dp, lo, hi in (
        ("base", "PGD-10", 0.01, 0.005, 0.02),
        ("base", results.STRONGEST, 0.05, 0.03, 0.08),
        ("RS base (rejection study)", "smoothed: EOT", 0.02, 0.01, 0.03),
    ):
        parity.append(
            {
                "model": model,
                "role": "",
                "attack": attack,
                "attribute": "gender",
                "defense_parity": dp,
                "ci_low": lo,
                "ci_high": hi,
                "n_valid_groups": 2,
                "worst_group": "f",
                "worst_auc_acc": 0.1,
                "worst_auc_acc_ci_low": 0.05,
                "worst_auc_acc_ci_high": 0.15,
            }
        )
    # The paired difference strongest - study attack (same clips, same resamples).
    parity[1].update(
        study_attack="PGD-10",
        study_defense_parity=0.01,
        difference=0.04,
        difference_ci_low=0.02,
        difference_ci_high=0.06,
        p_value=0.002,
        p_holm=0.004,
        n_comparisons=2,
        beyond_study_ci=True,
    )
    return {
        "verdict": "warn",
        "settings": {
            "epsilons": [0.01, 0.1],
            "steps": [1, 5, 10],
            "restarts": 2,
            "restart_steps": 10,
            "transfer": True,
            "rel_step": 0.2,
            "n_examples": 40,
            "tolerance": 0.02,
            "seed": 0,
            "bootstrap": 50,
            "ci_level": 0.95,
            "smoothing": {
                "sigma": 0.1,
                "noise": "gaussian",
                "num_noise": 4,
                "num_samples": 32,
                "num_steps": 10,
                "n_examples": 16,
            },
        },
        "checks": [
            {
                "model": "base",
                "role": "clean baseline",
                "check": "attack convergence",
                "verdict": "warn",
                "summary": "steps [1, 5, 10]",
                "reasons": ["not_converged: eps=0.01: run more steps"],
            },
            {
                "model": "base",
                "role": "clean baseline",
                "check": "budget curve",
                "verdict": "pass",
                "summary": "acc 0 at eps=0.1",
                "reasons": [],
            },
        ],
        "parity": parity,
        "models": [
            {
                "model": "base",
                "role": "clean baseline",
                "surrogate": "other",
                "study_attack": "PGD-10",
                "attacks": ["PGD-10", results.STRONGEST],
                "verdict": "warn",
                "report": {
                    "epsilons": [0.01, 0.1],
                    "accuracy": {"PGD-10": [0.5, 0.0], results.STRONGEST: [0.4, 0.0]},
                },
            }
        ],
        "smoothing": {
            "model": "RS base (rejection study)",
            "role": "smoothed classifier",
            "verdict": "pass",
            "attacks": ["smoothed: EOT"],
            "accuracy": {"smoothed: EOT": [0.6, 0.1]},
        },
    }


def test_render_soundness_section():
    md = report.render_soundness(_record())
    assert md.startswith("## Soundness of the attack evaluation")
    assert "Overall: **warn** (1 of 2 checks warn)" in md
    assert "| `base` | clean baseline | attack convergence | warn |" in md
    assert "| `base` | clean baseline | budget curve | pass |" in md
    assert "### Defense Parity under the strongest attack tried" in md
    # Study attack vs strongest, with intervals and their paired difference (Holm).
    assert (
        "PGD-10: 0.01 [0.005, 0.02] | 0.05 [0.03, 0.08] | 0.04 [0.02, 0.06] (Holm p = 0.004) "
        "| **yes** |" in md
    )
    assert "### Adaptive attack on randomized smoothing" in md
    assert "| smoothed: EOT | 0.6 | 0.1 | 0.02 [0.01, 0.03] |" in md
    assert "- `base`, attack convergence: not_converged" in md
    assert "M 4 draws per step" in md and "N 32" in md


def test_summary_rows_and_findings_use_the_strongest_attack(tmp_path):
    rec = _record()
    rec["settings"]["study_n_examples"] = 296  # the study's test clips; the checks use 40
    data = results.RunData(
        run_dir=tmp_path,
        config={},
        rob={
            "summary": {"groups": {"gender": {}}, "config": {"ci_level": 0.95}},
            "models": [
                {
                    "member_id": "base",
                    "model": "m5",
                    "at_eps": 0.0,
                    "noise_std": 0.0,
                    "preprocess": "none",
                    "auc_acc": 0.01,
                    "excluded": False,
                    "n_test": 296,
                }
            ],
            "defense_parity": [],
            "group_metrics": [],
        },
        rej=None,
        soundness=rec,
    )
    (row,) = summary.summary_rows(data)
    assert row["dp_baseline_strongest"] == 0.05
    assert (row["dp_baseline_strongest_ci_low"], row["dp_baseline_strongest_ci_high"]) == (
        0.03,
        0.08,
    )
    # Issue 13: beside the strongest attack, the study's attack on the same 40 clips, and
    # the clip count of every Defense Parity number (the study's own: all 296).
    assert row["dp_baseline_study_attack_same_clips"] == 0.01
    assert (
        row["dp_baseline_study_attack_same_clips_ci_low"],
        row["dp_baseline_study_attack_same_clips_ci_high"],
    ) == (0.005, 0.02)
    assert row["dp_baseline_strongest_n"] == 40 and row["dp_baseline_n"] == 296
    assert row["dp_robust_strongest_n"] == 40 and row["dp_robust_n"] == 296
    texts = [f["text"] for f in soundness_findings(data.soundness)]
    assert "warn in 1 of 2 checks" in texts[0]
    assert "differs from the study's attack" in texts[1]
    # normalised by the budget range [0.01, 0.1]: 0.04 / 0.09
    assert "(difference 0.444 [0.222, 0.667])" in texts[1]
    table = cli_run.format_summary([row])
    assert "Defense Parity (DP, normalised AUC_acc gap) on 296 clips" in table
    assert "strongest attack tried (same 40 clips)" in table
    assert "0.01 [0.005, 0.02]" in table and "0.05 [0.03, 0.08]" in table
    assert max(len(line) for line in table.splitlines()) <= 120
    # with the budget width the terminal prints Defense Parity normalised, as the report does
    wide = cli_run.format_summary([{**row, "auc_acc_width": 0.5}])
    assert "0.02 [0.01, 0.04]" in wide and "0.1 [0.06, 0.16]" in wide
    # The report: the summary's tables and the soundness section say how many clips.
    md = report_markdown.render_markdown(
        dataclasses.replace(data, rob=None, run_summary=[row], run_findings=[])
    )
    assert "| Defense Parity: baseline (296 clips) |" in md
    assert "clips (40 of the study's 296 test clips)" in md and "not with the table above" in md
    assert "| baseline: study attack (40 clips) | baseline: strongest attack (40 clips) |" in md
    assert "| gender | 0.111 [0.0556, 0.222] | 0.556 [0.333, 0.889] |" in md  # / 0.09
    sec = report.render_soundness(rec)
    assert "clips 40 of the robustness study's 296 test clips" in sec
    assert "both on the same clips (40 of the study's 296 test clips)" in sec
    assert "Defense Parity: study attack (40 clips)" in sec
    assert "computed on all 296 test clips" in sec
    assert "Robust accuracy by attack, `base` (40 of the study's 296 test clips;" in sec


def test_summary_rows_without_a_checked_model_or_older_records(tmp_path):
    """A model the checks skipped gets None; a record without ``study_n_examples`` (written
    before it) still renders, with the soundness clip count alone."""
    rec = _record()
    rec["models"][0]["model"] = "other"  # the baseline was not checked
    data = results.RunData(
        run_dir=tmp_path,
        config={},
        rob={
            "summary": {"groups": {"gender": {}}, "config": {"ci_level": 0.95}},
            "models": [{"member_id": "b", "preprocess": "none", "auc_acc": 0.01}],
            "defense_parity": [],
            "group_metrics": [],
        },
        rej=None,
        soundness=rec,
    )
    (row,) = summary.summary_rows(data)
    for key in (
        "dp_baseline_strongest",
        "dp_baseline_study_attack_same_clips",
        "dp_baseline_strongest_n",
        "dp_baseline_n",
    ):
        assert row[key] is None, key
    sec = report.render_soundness(_record())
    assert "clips 40 clips;" in sec and "both on the same clips (40 clips)" in sec
    assert "computed on all" not in sec


def test_findings_and_report_flag_moved_parity_and_non_converged_models():
    """Issue 13: ``beyond_study_ci`` decides the finding; non-converged models are named."""
    rec = _record()
    rec["settings"].update(
        steps=[1, 5, 10, 50, 100], study_steps=10, restart_steps=100, dlr_steps=100
    )
    for r in rec["parity"]:
        r.update(study_attack="PGD-10", study_defense_parity=0.01)
        r["beyond_study_ci"] = r["attack"] == results.STRONGEST and r["model"] == "base"
    rec["models"][0].update(converged=False, not_converged_eps=[0.01], strongest_steps=100)
    texts = [f["text"] for f in soundness_findings(rec)]
    moved = next(t for t in texts if "differs from the study's attack" in t)
    assert "PGD up to 100 steps (the study's: 10)" in moved and "the DLR loss (100 steps)" in moved
    assert "`base` / gender" in moved
    flagged = next(t for t in texts if t.startswith("Not converged"))
    assert "from 50 to 100 PGD steps for `base` (eps 0.01)" in flagged
    md = report.render_soundness(rec)
    assert "(Holm p = 0.004) | **yes** |" in md
    assert "**Not converged**: robust accuracy still fell from 50 to 100 PGD steps" in md
    assert "study's steps 10" in md and "DLR loss 100 steps" in md
    # Not significant after Holm: no claim of a change, and converged models say so.
    for r in rec["parity"]:
        r["beyond_study_ci"] = False
    rec["models"][0].update(converged=True, not_converged_eps=[])
    texts = [f["text"] for f in soundness_findings(rec)]
    assert any("change in Defense Parity from the study's attack is not significant" in t
               for t in texts)  # fmt: skip
    assert not any(t.startswith("Not converged") for t in texts)
    md = report.render_soundness(rec)
    assert "(Holm p = 0.004) | no |" in md and "Converged: robust accuracy no longer fell" in md


def test_parity_rows_mark_parity_beyond_the_study_attack_interval():
    """``beyond_study_ci``: an attack that breaks one group only leaves the study's interval."""
    n = 40
    gender = np.array(["f"] * 20 + ["m"] * 20)
    speakers = np.arange(n) // 2  # 10 speakers per group
    eps = np.array([0.0, 0.1], np.float32)
    study = np.ones((2, n), bool)  # every clip survives the study's attack: parity 0
    strongest = study.copy()
    strongest[1, :20] = False  # the stronger attack breaks every "f" clip at eps 0.1
    rob_cfg = cfg_mod.RobustnessConfig(
        attributes=("gender",), bootstrap_resamples=50, min_group_size=2
    )
    groups = resolve_groups({"gender": gender}, rob_cfg)
    rows = sound_study.parity_rows(
        {"PGD-2": study, results.STRONGEST: strongest, "PGD-20": study},
        eps, groups, speakers, rob_cfg, jax.random.key(0), {"model": "m", "role": ""},
        study_attack="PGD-2",
    )  # fmt: skip
    by = {r["attack"]: r for r in rows}
    # the study attack's own row: no comparison
    assert by["PGD-2"]["defense_parity"] == 0.0 and by["PGD-2"]["beyond_study_ci"] is None
    assert by[results.STRONGEST]["defense_parity"] == pytest.approx(0.05)
    assert by[results.STRONGEST]["beyond_study_ci"] is True
    assert by[results.STRONGEST]["study_defense_parity"] == 0.0
    assert by[results.STRONGEST]["difference"] == pytest.approx(0.05)
    lo, hi = by[results.STRONGEST]["difference_ci_low"], by[results.STRONGEST]["difference_ci_high"]
    assert 0 < lo <= hi and lo - 1e-6 <= 0.05 <= hi + 1e-6
    assert by[results.STRONGEST]["n_comparisons"] == 2  # strongest and PGD-20, one attribute
    assert by["PGD-20"]["beyond_study_ci"] is False and by["PGD-20"]["difference"] == 0.0
    assert all(r["study_attack"] == "PGD-2" for r in rows)
    assert set(sound_study.PARITY_COLUMNS) <= set(rows[0])
