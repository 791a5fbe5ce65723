"""The robustness study's attacks: the members of one model architecture in one program.

Members whose models share an architecture and a preprocessing defense (so one
``apply_fn``) and the same epsilon sweep are attacked together by
``engine.parallel.robust_predict_members``: their batches spread over the runtime's
devices, the members ``lax.map``-ped on CPU (each member's predictions equal its own
sweep bit for bit) and vmapped on accelerators (equal up to float32 rounding of the
batched forward pass), at most :data:`MEMBERS_PER_CALL` per call so that member files
are saved as they finish. Each member keeps its own key (:func:`member_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from fairrobust.defenses import Preprocess, parse_preprocess, with_preprocess
from fairrobust.engine import parallel
from fairrobust.engine.runtime import Runtime
from fairrobust.studies._store import TrainedModel
from fairrobust.studies.config import RobustnessConfig

__all__ = ["MEMBERS_PER_CALL", "attack_members", "member_groups", "member_key"]

#: Members attacked in one call (one program run); their files are saved after it.
MEMBERS_PER_CALL = 8


def member_key(config: RobustnessConfig, spec: Any) -> jax.Array:
    """Attack key of a member: the study seed folded with its eval hash (``spec.eval_hash``)."""
    return jax.random.fold_in(jax.random.key(config.seed), int(spec.eval_hash[:7], 16))


def member_groups(
    specs: Sequence[Any], models: dict[str, TrainedModel], sample_rate: int
) -> list[list[Any]]:
    """``specs`` grouped by attacked function (model behind its defense) and epsilons,
    in first-appearance order, each group cut into calls of :data:`MEMBERS_PER_CALL`."""
    groups: dict[tuple, list[Any]] = {}
    for spec in specs:
        pre = parse_preprocess(spec.preprocess, sample_rate)
        fn = with_preprocess(models[spec.train_id].apply_fn, pre)
        groups.setdefault((fn, tuple(spec.epsilons)), []).append(spec)
    return [
        group[i : i + MEMBERS_PER_CALL]
        for group in groups.values()
        for i in range(0, len(group), MEMBERS_PER_CALL)
    ]


def attack_members(
    trained: Sequence[TrainedModel],
    specs: Sequence[Any],
    x: np.ndarray,
    y: np.ndarray,
    config: RobustnessConfig,
    *,
    sample_rate: int,
    runtime: Runtime | None = None,
) -> list[tuple[np.ndarray, np.ndarray, Preprocess]]:
    """Robust correctness and predictions of members sharing one attacked function.

    Args:
      trained: each member's trained model (one architecture).
      specs: the members (``robustness.MemberSpec``: ``preprocess``, ``epsilons``,
        ``eval_hash``), all with the same preprocessing and epsilons.
      x, y: the evaluated clips ``[n, T]`` and labels ``[n]``.
      config: the study config (attack steps, step size, batch size, seed).
      sample_rate: the data's sample rate (for the preprocessing defense).
      runtime: the devices (default: all).

    Returns:
      Per member ``(correct bool [1 + e, n], pred int32 [1 + e, n], the parsed
      preprocessing defense)``: ``pred`` the predicted class of each (attacked) clip
      (the fairness metrics' input), ``correct = pred == y``.
    """
    rt = runtime if runtime is not None else Runtime.create()
    pre = parse_preprocess(specs[0].preprocess, sample_rate)
    pred = parallel.robust_predict_members(
        with_preprocess(trained[0].apply_fn, pre),
        [t.variables for t in trained],
        np.asarray(x, np.float32),
        np.asarray(y),
        np.asarray(specs[0].epsilons, np.float32),
        [member_key(config, s) for s in specs],
        num_steps=config.attack_steps,
        norm="linf",
        rel_step=config.attack_rel_step,
        random_start=False,
        batch_size=config.attack_batch_size,
        mesh=rt.mesh,
    )
    y_row = np.asarray(y).reshape(1, -1)
    return [(np.asarray(p == y_row, dtype=bool), np.asarray(p, np.int32), pre) for p in pred]
