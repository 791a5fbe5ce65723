"""The soundness checks of ``fairrobust run`` (issue 7): settings, target choice, report section.

The end-to-end part (checks run inside a tiny ``fairrobust run``, files written,
reused on a rerun, ``--no-soundness``) is in ``tests/test_run.py``, which shares
the run fixture; these tests are fast and need no training.
"""

from __future__ import annotations

import dataclasses
import types

import pytest

from fairrobust import report
from fairrobust.cli import build_parser
from fairrobust.cli import run as cli_run
from fairrobust.studies import config as cfg_mod
from fairrobust.studies import results, summary
from fairrobust.studies import soundness as sound_study
from fairrobust.studies.findings import soundness_findings

# ----------------------------------------------------------------------------- settings


def test_soundness_presets_and_toml_overrides(tmp_path):
    quick = cfg_mod.preset("soundness", "quick")
    assert quick.enabled and quick.models == ("baseline", "most_robust")
    assert quick.restarts == 2 and quick.transfer and quick.smoothing
    paper = cfg_mod.preset("soundness", "paper")
    assert paper.restarts == 5 and paper.max_examples == 0 and paper.num_samples == 100
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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("restarts", -1),
        ("num_noise", 0),
        ("num_samples", 0),
        ("steps", (0, 5)),
        ("tolerance", 1.5),
        ("models", ()),
        ("max_examples", True),
    ],
)
def test_soundness_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"SoundnessConfig.{field}"):
        cfg_mod.SoundnessConfig(**{field: value})


def test_soundness_steps_always_include_the_study_attack():
    cfg = cfg_mod.SoundnessConfig()
    assert sound_study.soundness_steps(cfg, 10, "quick") == (1, 5, 10)
    assert sound_study.soundness_steps(cfg, 2, "tiny") == (1, 2)
    assert sound_study.soundness_steps(cfg, 100, "paper") == (1, 10, 50, 100)
    assert sound_study.soundness_steps(cfg, 1, "quick") == (1, 2)  # two distinct counts needed
    custom = dataclasses.replace(cfg, steps=(1, 20, 200))
    assert sound_study.soundness_steps(custom, 100, "paper") == (1, 20, 100, 200)


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
    # Study attack vs strongest, with intervals and the overlap verdict (disjoint -> higher).
    assert "PGD-10: 0.01 [0.005, 0.02] | 0.05 [0.03, 0.08] | higher |" in md
    assert "### Adaptive attack on randomized smoothing" in md
    assert "| smoothed: EOT | 0.6 | 0.1 | 0.02 [0.01, 0.03] |" in md
    assert "- `base`, attack convergence: not_converged" in md
    assert "M 4 draws per step" in md and "N 32" in md


def test_summary_rows_and_findings_use_the_strongest_attack(tmp_path):
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
                }
            ],
            "defense_parity": [],
            "group_metrics": [],
        },
        rej=None,
        soundness=_record(),
    )
    (row,) = summary.summary_rows(data)
    assert row["dp_baseline_strongest"] == 0.05
    assert (row["dp_baseline_strongest_ci_low"], row["dp_baseline_strongest_ci_high"]) == (
        0.03,
        0.08,
    )
    texts = [f["text"] for f in soundness_findings(data.soundness)]
    assert "warn in 1 of 2 checks" in texts[0]
    assert "differs from the study's attack" in texts[1] and "(higher)" in texts[1]
    table = cli_run.format_summary_table([row])
    assert "DP most robust (strongest attack)" in table
