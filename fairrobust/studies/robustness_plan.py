"""The robustness study's grid: one member spec per model and preprocessing defense.

A member is a model behind one preprocessing defense. The models are either the
grid the config trains (architecture x AT budget x noise std) or external models
(:class:`fairrobust.studies.external.ExternalModel`) evaluated as they are. Every
member's files are keyed by a hash of everything its results depend on
(:attr:`MemberSpec.eval_hash`). :mod:`fairrobust.studies.robustness` re-exports both
names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairrobust import _io
from fairrobust.defenses import parse_preprocess
from fairrobust.studies._store import expand_grid, format_value, member_id, slugify
from fairrobust.studies.config import RobustnessConfig
from fairrobust.studies.external import ExternalModel
from fairrobust.studies.robustness_tables import sweep_epsilons
from fairrobust.train import TrainConfig

__all__ = ["MemberSpec", "plan_members"]


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One evaluation of the grid: a trained model behind one preprocessing defense.

    Attributes:
      member_id: ``<train label>[+<preprocess>]`` -- unique, readable, stable (an
        external model's label is its name).
      train_id: folder of the trained model, ``<label>-<hash of training spec>``
        (``external-<name>-<fingerprint[:8]>`` for an external model).
      model, at_eps, noise_std, preprocess: the grid coordinates (an external
        model's name and stated interventions).
      train_spec: everything the trained weights depend on (hashed in ``train_id``):
        ``{"train_config", "data_fingerprint"}``, or ``{"external": record,
        "data_fingerprint"}`` (``ExternalModel.record``).
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

    @property
    def external(self) -> bool:
        """Whether the member's model is an external one (not trained by the study)."""
        return "external" in self.train_spec


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


def _trained_models(config: RobustnessConfig, data_fingerprint: str) -> list[dict[str, Any]]:
    """The trained grid: label, train_id, coordinates and train_spec per model."""
    grid = expand_grid(
        {"model": config.models, "at_eps": config.at_eps, "noise_std": config.noise_std}
    )
    out = []
    for point in grid:
        train_cfg = _train_config_dict(config, point["model"], point["at_eps"], point["noise_std"])
        train_spec = {"train_config": train_cfg, "data_fingerprint": data_fingerprint}
        label = _train_label(point["model"], point["at_eps"], point["noise_std"])
        out.append({**point, "label": label, "train_id": member_id(label, train_spec),
                    "train_spec": train_spec})  # fmt: skip
    return out


def _identity(model: ExternalModel) -> dict[str, Any]:
    """What an external model's results depend on: its record less the free text."""
    return {k: v for k, v in model.record().items() if k != "description"}


def _external_models(
    external: Sequence[ExternalModel], data_fingerprint: str
) -> list[dict[str, Any]]:
    """External models: their names, stated interventions and fingerprints."""
    return [
        {
            "model": m.name,
            "at_eps": m.at_eps,
            "noise_std": m.noise_std,
            "label": m.name,
            "train_id": m.train_id,
            "train_spec": {"external": _identity(m), "data_fingerprint": data_fingerprint},
        }
        for m in external
    ]


def plan_members(
    config: RobustnessConfig,
    data_fingerprint: str,
    *,
    sample_rate: int = 16000,
    test_index: np.ndarray | None = None,
    external: Sequence[ExternalModel] | None = None,
) -> list[MemberSpec]:
    """The grid as a list of :class:`MemberSpec`, models varying slowest, preprocess fastest.

    Args:
      config: the study config.
      data_fingerprint: ``AudioDataset.fingerprint()`` (part of every hash).
      sample_rate: the dataset's sample rate (for ``lowpass``).
      test_index: indices of the evaluated test examples (hashed into the eval spec).
      external: models to evaluate instead of the config's trained grid (their
        fingerprints enter every hash; the config's training fields are unused).

    Returns:
      One :class:`MemberSpec` per (model, at_eps, noise_std, preprocess), or per
      (external model, preprocess), each evaluated at
      ``sweep_epsilons(config.attack_eps)`` (clean pass first).
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
    if external is None:
        points = _trained_models(config, data_fingerprint)
    else:
        points = _external_models(external, data_fingerprint)
    members = []
    for point in points:
        label, train_id, train_spec = point["label"], point["train_id"], point["train_spec"]
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
