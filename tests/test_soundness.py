"""Soundness checks (fairrobust.evaluation), EOT and transfer attacks on tiny models.

The models are chosen so that their optimal attacks are known.

Models (all pure jnp, binary, T = 16 samples):

* ``linear``: margin ``m(x) = w.x + b``, logits ``(-m/2, m/2)``. Inside the
  box the L-inf optimum is ``x - eps * sign(w) * (2y - 1)``, so an example is
  robust iff ``(2y - 1) m(x) > eps * ||w||_1`` (no clipping: |x| <= 0.5,
  eps <= 0.3).
* ``masked``: ``linear(round(8 x) / 8)``; zero input gradient everywhere
  (gradient masking by quantisation).
* ``wiggly``: ``linear(x) + A * sum_t s_t sin(omega x_t)``: the oscillating term
  barely moves the decision (|A sum| << margins) but dominates the gradient,
  so PGD on the base model is weak; Gaussian smoothing with sigma * omega >> 1
  averages the oscillation out (E sin(omega (x + sigma d)) = sin(omega x)
  exp(-omega^2 sigma^2 / 2) ~ 0), so EOT on the smoothed classifier sees the
  linear direction. This is the "smoothing matters" model.

Expensive results are module fixtures, and tests reuse the same static
arguments (steps 1, 10, 20) so compilations are shared.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import attacks, evaluation
from fairrobust.attacks import eot as attacks_eot
from fairrobust.studies import config as cfg_mod
from fairrobust.studies import soundness as sound_study
from fairrobust.studies.robustness import resolve_groups

T = 16
N = 48
STEPS = (1, 10, 20)
EPS = np.array([0.0, 0.02, 0.05, 0.1, 0.3], np.float32)


def linear_apply(v, x):
    m = x @ v["w"] + v["b"]
    return jnp.stack([-0.5 * m, 0.5 * m], axis=-1)


def masked_apply(v, x):
    return linear_apply(v, jnp.round(x * 8.0) / 8.0)


def wiggly_apply(v, x):
    m = x @ v["w"] + v["b"] + v["amp"] * (jnp.sin(v["omega"] * x) @ v["s"])
    return jnp.stack([-0.5 * m, 0.5 * m], axis=-1)


def _weights(seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=T).astype(np.float32)
    return w / np.abs(w).sum()  # ||w||_1 = 1


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    w = _weights(1)
    x = rng.uniform(-0.5, 0.5, size=(N, T)).astype(np.float32)
    m = x @ w
    # Keep margins away from every eps * ||w||_1 so float rounding cannot flip the oracle.
    ok = np.all(np.abs(np.abs(m)[:, None] - EPS[None, :]) > 1e-3, axis=1)
    x, m = x[ok], m[ok]
    y = (m > 0).astype(np.int32)
    y[:4] = 1 - y[:4]  # a few clean errors
    variables = {"w": jnp.asarray(w), "b": jnp.float32(0.0)}
    closed = ((2 * y - 1) * m)[None, :] > EPS[:, None] * np.abs(w).sum()  # [e, n]
    wiggly = {
        **variables,
        "amp": jnp.float32(0.002),
        "omega": jnp.float32(200.0),
        "s": jnp.asarray(np.sign(rng.normal(size=T)).astype(np.float32)),
    }
    return {"x": x, "y": y, "v": variables, "closed": closed, "wiggly": wiggly}


@pytest.fixture(scope="module")
def conv(data):
    return evaluation.attack_convergence(
        linear_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(0), steps=STEPS
    )


# ----------------------------------------------------------------------------- convergence


def test_convergence_matches_closed_form_and_passes(conv, data):
    assert conv.steps == STEPS
    assert conv.accuracy.shape == (3, EPS.size) and conv.correct.shape == (
        3,
        EPS.size,
        len(data["y"]),
    )
    # 10 steps of eps/5 reach the optimal corner exactly; so does FGSM (one step of eps).
    np.testing.assert_array_equal(conv.correct[1], data["closed"])
    np.testing.assert_array_equal(conv.correct[2], data["closed"])
    np.testing.assert_array_equal(conv.fgsm_correct, data["closed"])
    np.testing.assert_array_equal(conv.strongest_correct, data["closed"])
    np.testing.assert_allclose(conv.accuracy[-1], data["closed"].mean(-1))
    assert conv.verdict == "pass" and conv.verdicts == ("pass",) * EPS.size
    assert conv.accuracy[-1, -1] == 0.0  # eps * ||w||_1 = 0.3 exceeds every margin


def test_convergence_warns_on_broken_attack(data):
    # rel_step 0.01: 20 steps move only 0.2 eps, 10 steps 0.1 eps -> PGD weaker than
    # FGSM (broken) and still improving (not converged).
    check = evaluation.attack_convergence(
        linear_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(0),
        steps=STEPS, rel_step=0.01,
    )  # fmt: skip
    assert check.verdict == "warn"
    assert check.verdicts[0] == "pass"  # eps = 0: nothing to attack
    codes = {r.split(":")[0] for r in check.all_reasons}
    assert codes == {"weaker_than_fgsm", "not_converged"}
    assert all(any(r.startswith("weaker_than_fgsm") for r in rs) for rs in check.reasons[1:])
    assert any(r.startswith("not_converged: eps=0.3") for r in check.reasons[-1])


# ----------------------------------------------------------------------------- budget curve


def test_budget_curve_rules():
    eps = [0.0, 0.1, 0.2, 0.3]
    good = evaluation.budget_curve_check([0.9, 0.5, 0.2, 0.0], eps, num_classes=2)
    assert good.verdict == "pass" and good.reasons == () and good.chance == 0.5
    near_chance = evaluation.budget_curve_check([0.9, 0.7, 0.6, 0.55], eps, num_classes=2)
    assert near_chance.verdict == "pass"  # within chance + 0.1
    plateau = evaluation.budget_curve_check([0.9, 0.8, 0.8, 0.8], eps, num_classes=2)
    assert [r.split(":")[0] for r in plateau.reasons] == ["plateau_above_chance"]
    bumpy = evaluation.budget_curve_check([0.9, 0.3, 0.5, 0.0], eps, num_classes=10)
    assert [r.split(":")[0] for r in bumpy.reasons] == ["non_monotone"]
    assert "eps=0.1 to eps=0.2" in bumpy.reasons[0]
    # unsorted input is sorted by epsilon first
    shuffled = evaluation.budget_curve_check([0.0, 0.9, 0.2, 0.5], [0.3, 0.0, 0.2, 0.1], 2)
    np.testing.assert_allclose(shuffled.accuracy, [0.9, 0.5, 0.2, 0.0])
    assert shuffled.verdict == "pass"


def test_gradient_masked_model_plateaus(data):
    check = evaluation.attack_convergence(
        masked_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(0), steps=STEPS
    )
    # Zero gradients: every attack leaves x unchanged, so the step-count check cannot
    # see anything wrong ...
    assert check.verdict == "pass"
    assert np.all(check.accuracy == check.accuracy[0, 0])
    # ... but the budget curve stays at clean accuracy, far above chance.
    budget = evaluation.budget_curve_check(check.accuracy[-1], EPS, num_classes=2)
    assert budget.verdict == "warn"
    assert budget.reasons[0].startswith("plateau_above_chance")


# ----------------------------------------------------------------------------- restarts


def test_restarts_closed_form_and_determinism(data):
    worst = evaluation.random_restarts(
        linear_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(3),
        restarts=2, num_steps=20,
    )  # fmt: skip
    np.testing.assert_array_equal(worst, data["closed"])  # the optimum from any start
    single = evaluation.random_restarts(
        linear_apply, data["v"], data["x"], data["y"], 0.05, jax.random.key(3),
        restarts=2, num_steps=20,
    )  # fmt: skip
    assert single.shape == (len(data["y"]),)  # scalar eps -> (n,)
    np.testing.assert_array_equal(single, worst[2])


def test_restarts_never_increase_accuracy(data):
    x, y, v = data["x"], data["y"], data["wiggly"]
    kw = {"num_steps": 20, "restarts": 3}
    worst = evaluation.random_restarts(wiggly_apply, v, x, y, EPS, jax.random.key(5), **kw)
    single = attacks.robust_correct(wiggly_apply, v, x, y, EPS, jax.random.key(0), num_steps=20)
    assert np.all(worst <= single)  # worst case implies the single run, elementwise
    again = evaluation.random_restarts(wiggly_apply, v, x, y, EPS, jax.random.key(5), **kw)
    np.testing.assert_array_equal(worst, again)  # same key, same result
    # On the wiggly model the restarts find examples the single run missed.
    assert worst.sum() < single.sum()


# ----------------------------------------------------------------------------- transfer


def test_transfer_from_same_model_equals_whitebox(data, conv):
    x, y, v = data["x"], data["y"], data["v"]
    same = attacks.transfer_attack(
        linear_apply, v, linear_apply, v, x, y, EPS, jax.random.key(0), num_steps=20,
        batch_size=20,
    )  # fmt: skip
    whitebox = attacks.robust_correct(
        linear_apply, v, x, y, EPS, jax.random.key(0), num_steps=20, batch_size=20
    )
    np.testing.assert_array_equal(same, whitebox)
    np.testing.assert_array_equal(same, conv.correct[-1])
    # An independent surrogate never beats the white-box optimum of a linear model.
    surrogate = {"w": jnp.asarray(_weights(7)), "b": jnp.float32(0.0)}
    transfer = attacks.transfer_attack(
        linear_apply, surrogate, linear_apply, v, x, y, EPS, jax.random.key(0), num_steps=20,
        batch_size=20,
    )  # fmt: skip
    assert transfer.shape == (EPS.size, len(y))
    assert np.all(transfer >= data["closed"])
    assert transfer[-1].sum() > 0  # a different w: the transfer attack is weaker


# ----------------------------------------------------------------------------- EOT


def test_eot_with_vanishing_noise_is_pgd(data):
    x, y, v = jnp.asarray(data["x"]), jnp.asarray(data["y"]), data["wiggly"]
    eot = attacks.eot_attack(
        wiggly_apply, v, x, y, 0.05, jax.random.key(1), sigma=1e-7, num_noise=1, num_steps=20
    )
    pgd = attacks.pgd(wiggly_apply, v, x, y, 0.05, jax.random.key(1), num_steps=20)
    np.testing.assert_allclose(eot, pgd, atol=1e-6)


@pytest.mark.parametrize(("norm", "random_start"), [("linf", False), ("l2", True)])
def test_eot_invariants_batching_and_keys(data, norm, random_start):
    x, y, v = data["x"], data["y"], data["wiggly"]
    # linf settings as in the smoothing tests, so the compiled kernel is shared.
    kw = {"sigma": 0.1, "num_noise": 16, "num_steps": 20, "norm": norm}
    kw["random_start"] = random_start
    key = jax.random.key(2)
    adv = np.asarray(attacks.eot_attack(wiggly_apply, v, x, y, 0.1, key, **kw))
    assert adv.shape == x.shape and np.all(np.isfinite(adv))
    assert np.all(np.abs(adv) <= 1.0)
    dist = np.abs(adv - x).max(1) if norm == "linf" else np.linalg.norm(adv - x, axis=1)
    assert np.all(dist <= 0.1 + 1e-5) and np.any(dist > 0.05)
    other = attacks.eot_attack(wiggly_apply, v, x, y, 0.1, jax.random.key(3), **kw)
    assert not np.allclose(other, adv)
    if norm == "linf":
        # Per-example noise keys: the result does not depend on the batch size.
        batched = attacks.eot_attack(wiggly_apply, v, x, y, 0.1, key, batch_size=7, **kw)
        np.testing.assert_allclose(batched, adv, atol=1e-6)


def test_eot_eps_sweep_compiles_once(data):
    x, y, v = data["x"], data["y"], data["wiggly"]
    kw = {"sigma": 0.1, "num_noise": 16, "num_steps": 20}  # as in the smoothing tests: cached
    attacks.eot_attack(wiggly_apply, v, x, y, 0.01, jax.random.key(0), **kw)
    before = attacks_eot._eot_kernel._cache_size()  # noqa: SLF001 - the kernel jit cache
    for eps in (0.02, 0.05, 0.3):
        attacks.eot_attack(wiggly_apply, v, x, y, eps, jax.random.key(0), **kw)
    assert attacks_eot._eot_kernel._cache_size() == before  # noqa: SLF001 - the kernel jit cache


def _linear_eot_gradient_oracle(w, x, y, sigma, objective, draws=200_000, seed=0):
    """NumPy oracle: for the linear model the gradient is ``c_i * w``; returns ``c [n]``.

    With ``s = 2y - 1`` and ``m_j = w.(x + sigma d_j) + b``, ``log p_y = log sigmoid(s m_j)``:
    mean_loss gives ``c = -s E[1 - sigmoid(s m)]``; mean_softmax gives
    ``c = -s E[sigmoid'(s m)] / E[sigmoid(s m)]``. ``w.d ~ N(0, ||w||_2^2)`` exactly.
    """
    z = np.random.default_rng(seed).normal(size=(1, draws)) * np.linalg.norm(w) * sigma
    s = (2 * y - 1)[:, None].astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-s * ((x @ w)[:, None] + z)))  # sigmoid(s m), [n, draws]
    if objective == "mean_loss":
        return -s[:, 0] * (1.0 - p).mean(1)
    return -s[:, 0] * (p * (1.0 - p)).mean(1) / p.mean(1)


@pytest.mark.parametrize("objective", attacks.OBJECTIVES)
def test_eot_gradient_converges_to_oracle(data, objective):
    x, y, v = data["x"][:8], data["y"][:8], data["v"]
    w = np.asarray(v["w"], np.float64)
    c_ref = _linear_eot_gradient_oracle(w, x.astype(np.float64), y, 0.2, objective)
    ref = c_ref[:, None] * w[None, :]

    def err(m: int) -> float:
        g = attacks.eot_gradient(
            linear_apply, v, x, y, jax.random.key(1), sigma=0.2, num_noise=m, objective=objective
        )
        g = np.asarray(g)
        return float(np.linalg.norm(g - ref) / np.linalg.norm(ref))

    e1, e256 = err(1), err(256)
    # Monte Carlo error shrinks like 1/sqrt(M): 16x from M=1 to M=256 in expectation.
    assert e256 < e1 / 4
    assert e256 < 0.1


def test_eot_beats_plain_attack_when_smoothing_matters(data):
    x, y, v = data["x"], data["y"], data["wiggly"]
    cfg = evaluation.SmoothingAttackConfig(sigma=0.1, num_noise=16, num_samples=32)
    eps = np.array([0.0, 0.1], np.float32)
    check = evaluation.smoothed_robust_correct(
        wiggly_apply, v, x, y, eps, jax.random.key(0), num_classes=2,
        smoothing_config=cfg, num_steps=20,
    )  # fmt: skip
    assert check.eot_correct.shape == check.plain_correct.shape == (2, len(y))
    # eps = 0: both are the clean smoothed prediction with the same evaluation draws.
    np.testing.assert_array_equal(check.eot_correct[0], check.plain_correct[0])
    assert check.eot_accuracy[1] <= check.plain_accuracy[1] - 0.2
    assert check.verdict == "warn"
    assert check.reasons[0].startswith("plain_overestimates: eps=0.1")
    np.testing.assert_array_equal(check.strongest_correct, check.eot_correct & check.plain_correct)
    # Noise and evaluation draws are keyed by example index: batching changes nothing.
    rebatched = evaluation.smoothed_robust_correct(
        wiggly_apply, v, x, y, eps[1:], jax.random.key(0), num_classes=2,
        smoothing_config=cfg, num_steps=20, batch_size=7,
    )  # fmt: skip
    np.testing.assert_array_equal(rebatched.eot_correct, check.eot_correct[1:])
    np.testing.assert_array_equal(rebatched.plain_correct, check.plain_correct[1:])


# ----------------------------------------------------------------------------- combinators


def test_strongest_attack_correct():
    a = np.array([[True, True, False], [True, False, False]])
    b = np.array([[True, False, True], [True, True, False]])
    np.testing.assert_array_equal(evaluation.strongest_attack_correct(a, b), a & b)
    np.testing.assert_array_equal(evaluation.strongest_attack_correct(a), a)
    with pytest.raises(ValueError, match="correct_arrays"):
        evaluation.strongest_attack_correct()
    with pytest.raises(ValueError, match="correct_arrays"):
        evaluation.strongest_attack_correct(a, b[:, :2])


# ----------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report(data):
    masks = np.stack([data["y"] == 0, data["y"] == 1])

    def run():
        return evaluation.run_soundness_checks(
            linear_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(4),
            num_classes=2, steps=STEPS, restarts=2,
            surrogate=(linear_apply, {"w": jnp.asarray(_weights(7)), "b": jnp.float32(0.0)}),
            smoothing_config=(0.1, 16, 32), masks=masks, group_names=("neg", "pos"),
        )  # fmt: skip

    return run(), run()


def test_report_linear_model_passes(report, data):
    rep, _ = report
    assert rep.verdict == "pass", [c.summary() for c in rep.checks]
    assert [c.name for c in rep.checks] == [
        "attack convergence", "budget curve", "random restarts", "transfer attack",
        "adaptive attack on smoothing",
    ]  # fmt: skip
    np.testing.assert_array_equal(rep.strongest_correct, data["closed"])
    np.testing.assert_allclose(rep.accuracy["strongest (base model)"], data["closed"].mean(-1))
    assert list(rep.parity) == list(rep.accuracy) == list(rep.correct) == list(rep.group_accuracy)
    assert all(np.isfinite(p) and p >= 0 for p in rep.parity.values())
    # Groups are the two labels: per-group accuracy and parity by hand from the oracle.
    closed, y = data["closed"], data["y"]
    by_hand = np.stack([closed[:, y == 0].mean(1), closed[:, y == 1].mean(1)], axis=1)
    np.testing.assert_allclose(rep.group_accuracy["strongest (base model)"], by_hand, rtol=1e-6)
    auc = np.trapezoid(by_hand, EPS, axis=0)
    assert rep.parity["strongest (base model)"] == pytest.approx(abs(auc[0] - auc[1]), rel=1e-5)
    # For a linear model EOT and plain PGD find the same corner: identical smoothed results.
    np.testing.assert_array_equal(rep.smoothing.eot_correct, rep.smoothing.plain_correct)


def test_report_serialises_and_is_deterministic(report):
    rep, again = report
    d = rep.to_dict()
    text = json.dumps(d, allow_nan=False, sort_keys=True)
    assert json.loads(text)["verdict"] == "pass"
    assert text == json.dumps(again.to_dict(), allow_nan=False, sort_keys=True)
    full = rep.to_dict(include_examples=True)
    assert np.array_equal(np.asarray(full["strongest_correct"]), rep.strongest_correct)
    json.dumps(full, allow_nan=False)
    # What the report renders (fairrobust.report): one verdict and summary line per
    # check, accuracy and Defense Parity per attack, and no warnings.
    assert [c.verdict for c in rep.checks] == ["pass"] * 5
    assert all(c.summary() for c in rep.checks)
    assert rep.convergence.summary().startswith("steps [1, 10, 20]; PGD-20 acc [")
    assert rep.parity is not None and "smoothed: EOT" in rep.accuracy
    assert [r for c in rep.checks for r in c.all_reasons] == []


def test_report_shows_warnings(data):
    rep = evaluation.run_soundness_checks(
        masked_apply, data["v"], data["x"], data["y"], EPS, jax.random.key(0),
        num_classes=2, steps=STEPS, restarts=None,
    )  # fmt: skip
    assert rep.verdict == "warn" and rep.budget.verdict == "warn"
    assert rep.restarts is None and rep.transfer is None and rep.smoothing is None
    assert rep.parity is None
    budget = rep.checks[1]
    assert budget.name == "budget curve" and budget.verdict == "warn"
    assert budget.summary().startswith("acc ") and "chance 0.500" in budget.summary()
    assert any(r.startswith("plateau_above_chance") for r in budget.all_reasons)
    json.dumps(rep.to_dict(), allow_nan=False)


# ------------------------------------------------------------------- stronger than the study


def three_class_apply(v, x):
    """Logits ``(u.x, -u.x, -10)``: class 2 never wins; the L-inf optimum is ``-eps sign(u)``."""
    m = x @ v["u"]
    return jnp.stack([m, -m, jnp.full_like(m, -10.0)], axis=-1)


def test_soundness_run_is_stronger_than_an_unconverged_study_attack():
    """Issue 13: the study's 2-step PGD at step eps / 5 moves at most 0.4 eps, so it has not
    converged; the soundness run (tiny preset's step counts, 5x and 10x the study's) reaches
    the L-inf optimum and lowers accuracy, and its strongest attack matches the closed form."""
    study_steps, rel_step = 2, 0.2
    steps = sound_study.soundness_steps(cfg_mod.preset("soundness", "tiny"), study_steps, "tiny")
    assert steps == (1, 2, 10, 20) and max(steps) > study_steps
    rng = np.random.default_rng(3)
    u = _weights(5)  # ||u||_1 = 1
    x = rng.uniform(-0.5, 0.5, size=(64, T)).astype(np.float32)
    margin = np.abs(x @ u)
    eps = np.array([0.0, 0.05, 0.1, 0.2], np.float32)
    # Keep margins away from both thresholds (0.4 eps after 2 steps, eps at the optimum).
    ok = np.all(np.abs(margin[:, None] - np.concatenate([eps, 0.4 * eps])[None]) > 1e-3, 1)
    x, margin = x[ok], margin[ok]
    y = (x @ u < 0).astype(np.int32)  # the clean prediction: every clip starts correct
    v = {"u": jnp.asarray(u)}
    # The study's own check (steps 1, 2) already says it has not converged.
    old = evaluation.attack_convergence(
        three_class_apply, v, x, y, eps, jax.random.key(0), steps=(1, study_steps),
        rel_step=rel_step, progress=False,
    )  # fmt: skip
    assert any(r.startswith("not_converged") for r in old.all_reasons)
    rep = evaluation.run_soundness_checks(
        three_class_apply, v, x, y, eps, jax.random.key(1), num_classes=3, steps=steps,
        restarts=1, rel_step=rel_step, progress=False,
    )  # fmt: skip
    study = rep.accuracy[f"PGD-{study_steps}"]
    strongest = rep.accuracy["strongest (base model)"]
    np.testing.assert_allclose(study, (margin[None] > 0.4 * eps[:, None]).mean(-1))
    np.testing.assert_allclose(strongest, (margin[None] > eps[:, None]).mean(-1))
    assert np.all(strongest <= study) and np.all(strongest[1:] < study[1:])
    # The stronger attacks tried: 10x steps, restarts of the longest run, the DLR loss.
    assert rep.config["steps"][-1] == 20 and rep.config["restart_steps"] == 20
    assert rep.config["dlr_steps"] == 20 and "PGD-DLR-20" in rep.correct
    np.testing.assert_allclose(rep.accuracy["PGD-DLR-20"], strongest)
    # Between 10 and 20 steps accuracy no longer falls: the new check has converged.
    assert not any(r.startswith("not_converged") for r in rep.convergence.all_reasons)


def test_soundness_model_check_flags_a_study_attack_that_had_not_converged():
    """Issue 13 (done-when): the study's attack, 2 PGD steps of eps / 100, moves at most
    0.02 eps and has not converged. The soundness run of that model
    (:func:`fairrobust.studies.soundness.check_model`, what ``run_soundness`` runs per
    member) attacks the same clips with 5x and 10x the study's steps: its longest PGD lowers
    robust accuracy below the study attack's, and because even 20 steps (0.2 eps) have not
    converged, the model is flagged ``converged: False`` at the epsilons where accuracy still
    fell from 10 to 20 steps. All accuracies match the closed form of the linear margin."""
    rel_step, study_steps = 0.01, 2
    eps = np.array([0.25, 0.5, 1.0], np.float32)
    rob_cfg = cfg_mod.RobustnessConfig(
        attributes=("gender",), attack_eps=tuple(float(e) for e in eps),
        attack_steps=study_steps, attack_rel_step=rel_step, bootstrap_resamples=20,
        min_group_size=2,
    )  # fmt: skip
    cfg = cfg_mod.SoundnessConfig(steps=(1,), restarts=1, transfer=False, smoothing=False)
    steps = sound_study.soundness_steps(cfg, study_steps, "tiny")
    assert steps == (1, 2, 10, 20)
    u = _weights(5)  # ||u||_1 = 1: k steps lower the margin by k * rel_step * eps
    x = np.random.default_rng(4).uniform(-0.5, 0.5, size=(96, T)).astype(np.float32)
    margin = np.abs(x @ u)
    moves = np.concatenate([k * rel_step * eps for k in (1, *steps)] + [eps])  # + FGSM
    x = x[np.all(np.abs(margin[:, None] - moves[None]) > 1e-3, 1)][:64]
    margin = np.abs(x @ u)
    y = (x @ u < 0).astype(np.int32)  # the clean prediction of three_class_apply
    n = len(y)
    gender = np.where(np.arange(n) % 2 == 0, "f", "m")
    groups = resolve_groups({"gender": gender}, rob_cfg)
    checks, parity, rec = sound_study.check_model(
        three_class_apply, {"u": jnp.asarray(u)}, x, y, groups, np.arange(n) // 2,
        jax.random.key(2), cfg=cfg, rob_cfg=rob_cfg, steps=steps, num_classes=3,
        base={"model": "m", "role": "most robust"}, progress=False,
    )  # fmt: skip

    def closed(k: float) -> np.ndarray:  # accuracy after k steps of rel_step * eps
        return (margin[None] > k * rel_step * eps[:, None]).mean(-1)

    # The strongest attack has more steps than the study's and is computed on the same clips.
    assert rec["study_attack"] == "PGD-2" and rec["strongest_steps"] == 20 > study_steps
    assert rec["n_examples"] == n
    acc = {k: np.asarray(v) for k, v in rec["report"]["accuracy"].items()}
    np.testing.assert_allclose(acc["PGD-2"], closed(2))
    np.testing.assert_allclose(acc["PGD-20"], closed(20))
    # ... and lowers accuracy materially where the study's attack had not converged.
    assert np.all(acc["PGD-20"] <= acc["PGD-2"])
    assert np.max(acc["PGD-2"] - acc["PGD-20"]) > 0.2
    assert np.all(acc["strongest (base model)"] <= acc["PGD-20"])
    # Still falling from 10 to 20 steps: flagged, with the epsilons.
    still = [float(e) for e, d in zip(eps, closed(10) - closed(20), strict=True) if d > 0.02]
    assert still == [0.25, 0.5, 1.0]
    assert rec["converged"] is False and rec["not_converged_eps"] == still
    conv = next(c for c in checks if c["check"] == "attack convergence")
    assert conv["verdict"] == "warn"
    assert any(r.startswith("not_converged: eps=0.5") for r in conv["reasons"])
    # Parity rows set the strongest attack beside the study's attack on the same clips.
    by = {r["attack"]: r for r in parity}
    assert set(by) == set(rec["attacks"]) and "PGD-20" in by
    assert by["strongest (base model)"]["study_attack"] == "PGD-2"
    assert by["strongest (base model)"]["study_defense_parity"] == by["PGD-2"]["defense_parity"]


# ----------------------------------------------------------------------------- bad input


def _x_y():
    return np.zeros((2, T), np.float32), np.zeros(2, np.int32)


_V = {"w": jnp.zeros(T), "b": jnp.float32(0.0)}


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x, y, [-0.1], jax.random.key(0)), "epsilons"),
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), steps=(0, 10)), "steps"),
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), steps=(10,)), "steps"),
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), norm="l3"), "norm"),
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), tolerance=2), "tolerance"),
        (lambda x, y: evaluation.random_restarts(
            linear_apply, _V, x, y, -1.0, jax.random.key(0)), "eps"),
        (lambda x, y: evaluation.random_restarts(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), restarts=0), "restarts"),
        (lambda x, y: evaluation.random_restarts(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), num_steps=0), "num_steps"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), sigma=0.0), "sigma"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), sigma=-1.0), "sigma"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), sigma=0.1, num_noise=0),
         "num_noise"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, [0.1, 0.2], jax.random.key(0), sigma=0.1), "eps"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), sigma=0.1, objective="x"),
         "objective"),
        (lambda x, y: attacks.eot_attack(
            linear_apply, _V, x, y, 0.1, jax.random.key(0), sigma=0.1, noise="pink"), "noise"),
        (lambda x, y: attacks.eot_gradient(
            linear_apply, _V, x, y, jax.random.key(0), sigma=0.1, num_noise=0), "num_noise"),
        (lambda x, y: attacks.transfer_attack(
            linear_apply, _V, linear_apply, _V, x, y, [float("nan")], jax.random.key(0)),
         "epsilons"),
        (lambda x, y: evaluation.smoothed_robust_correct(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), num_classes=2,
            smoothing_config=(0.0, 4, 10)), "sigma"),
        (lambda x, y: evaluation.smoothed_robust_correct(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), num_classes=2,
            smoothing_config=(0.1, 4, 0)), "num_samples"),
        (lambda x, y: evaluation.budget_curve_check([0.5], [0.1], num_classes=1), "num_classes"),
        (lambda x, y: evaluation.budget_curve_check([0.5, 0.2], [0.1], 2), "accuracies"),
        (lambda x, y: evaluation.budget_curve_check([1.5], [0.1], 2), "accuracies"),
        (lambda x, y: evaluation.run_soundness_checks(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), num_classes=2, restarts=0),
         "restarts"),
        (lambda x, y: evaluation.run_soundness_checks(
            linear_apply, _V, x, y, [0.1], jax.random.key(0), num_classes=2,
            masks=np.ones((2, 3), bool)), "masks"),
        (lambda x, y: evaluation.attack_convergence(
            linear_apply, _V, x[0], y, [0.1], jax.random.key(0)), "x, y"),
    ],
)  # fmt: skip
def test_bad_input_names_parameter(call, param):
    x, y = _x_y()
    with pytest.raises(ValueError, match=f"^{param}"):
        call(x, y)


# ----------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_m5_convergence_and_report():
    from fairrobust import models

    model = models.make_model("m5", 3, width=4)
    length = models.min_input_len()
    variables = models.init_variables(model, jax.random.key(0), length)
    apply_fn = models.logits_fn(model)
    x = np.asarray(jax.random.uniform(jax.random.key(1), (6, length), minval=-0.5, maxval=0.5))
    y = np.asarray(jnp.argmax(apply_fn(variables, jnp.asarray(x)), -1)).astype(np.int32)
    rep = evaluation.run_soundness_checks(
        apply_fn, variables, x, y, [0.0, 0.01, 0.1], jax.random.key(2), num_classes=3,
        steps=(1, 5, 10), restarts=1, smoothing_config=(0.05, 2, 8), batch_size=3,
    )  # fmt: skip
    assert rep.convergence.accuracy.shape == (3, 3)
    assert np.all(rep.convergence.accuracy[:, 0] == 1.0)  # labels are the clean predictions
    assert rep.accuracy["strongest (base model)"][-1] <= rep.accuracy["PGD-10"][-1]
    json.dumps(rep.to_dict(), allow_nan=False)
