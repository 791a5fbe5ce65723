"""Training of M5, M5-Tricks and SpecCNN with optax: clean, noise augmentation, PGD-AT.

The recipe of the AISec'23 paper (Sec. 4 and appendix A): Adam with initial
learning rate 1e-3, multiplied by 0.9 every 5 epochs (a staircase schedule),
cross-entropy loss; optional Gaussian noise augmentation ``x + N(0,
noise_std^2)`` on training batches only; optional PGD adversarial training
(L-inf budget ``at_eps``, 10 steps of ``eps / 5``) with the joint loss

    L = lam * CE(f(x), y) + (1 - lam) * CE(f(x_adv), y),   lam = 0.5,

clean and adversarial examples in the same batch (one forward pass, so
BatchNorm sees both). The adversarial examples are crafted against the model
in eval mode (BatchNorm running statistics) and not differentiated through.
After every epoch the model is evaluated on the validation split (clean, or
with Gaussian noise of ``val_noise_std`` under a fixed key, for randomized
smoothing base models), and the variables with the lowest validation loss are
kept.

Checkpoints (``last.ckpt`` after every epoch, ``best.ckpt`` on improvement)
are msgpack files (``flax.serialization``) holding the arrays and a JSON
header (config, model spec, history, dataset fingerprint), written atomically
through :mod:`fairrobust._io`. ``train`` with an ``out_dir`` that holds a
``last.ckpt`` resumes from it; the result equals that of an uninterrupted run
because every random draw is ``fold_in(key(seed), epoch or step)``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization
from flax.training import train_state

from fairrobust import _io, attacks, models
from fairrobust._batching import batch_size_for, iter_batches
from fairrobust._checks import check_int, fail
from fairrobust._io import atomic_write_bytes, to_jsonable
from fairrobust.data.dataset import AudioDataset
from fairrobust.frontend import Representation

__all__ = [
    "TAG_INIT",
    "TAG_SHUFFLE",
    "TAG_STEP",
    "TAG_VAL_NOISE",
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "check_resumable",
    "create_train_state",
    "evaluate",
    "extract_features",
    "load_checkpoint",
    "lr_schedule",
    "make_train_step",
    "model_variables",
    "predict_logits",
    "restore_state",
    "save_checkpoint",
    "save_epoch",
    "train",
    "training_arrays",
    "write_timings",
]

_FORMAT = "fairrobust-checkpoint"
_FORMAT_VERSION = 1
#: Key-derivation tags: ``fold_in(key(seed), tag)`` gives the initialisation, shuffling,
#: per-step and validation-noise streams of one seed, which never collide
#: (``fairrobust.engine.grid`` derives its members' streams with the same tags).
TAG_INIT, TAG_SHUFFLE, TAG_STEP, TAG_VAL_NOISE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the paper's defaults).

    Attributes:
      model: one of ``models.MODEL_NAMES``: ``"m5"``, ``"m5-tricks"``, ``"spec-stft"``
        or ``"spec-mel"`` (:class:`~fairrobust.models.SpecCNN`).
      width: base width (M5: 32 torchaudio size, 128 large).
      normalize: in-model input normalisation, ``"standardize"`` or ``"none"`` (for
        SpecCNN: per-utterance standardisation of the representation or none).
      epochs: total number of epochs (a resumed run may raise it).
      batch_size: training batch size (clean examples per step).
      lr: initial Adam learning rate (paper: 1e-3).
      lr_decay: staircase factor applied every ``lr_decay_every`` epochs (0.9).
      lr_decay_every: epochs between decays (5).
      noise_std: std of Gaussian augmentation on training batches (0 = off).
      at_eps: L-inf PGD adversarial-training budget (0 = no adversarial training).
      at_steps: PGD steps of adversarial training (10).
      at_rel_step: PGD step as a fraction of ``at_eps`` (1/5).
      at_lam: weight of the clean loss in the joint loss (0.5).
      val_noise_std: std of Gaussian noise on validation inputs (fixed key).
      seed: seed of initialisation, shuffling, augmentation and attacks.
    """

    model: str = "m5"
    width: int = 32
    normalize: str = "standardize"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    lr_decay: float = 0.9
    lr_decay_every: int = 5
    noise_std: float = 0.0
    at_eps: float = 0.0
    at_steps: int = 10
    at_rel_step: float = 0.2
    at_lam: float = 0.5
    val_noise_std: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(field: str, expected: str) -> None:
            fail(field, expected, repr(getattr(self, field)))

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

        if self.model not in models.MODEL_NAMES:
            bad("model", f"one of {models.MODEL_NAMES}")
        if self.normalize not in models.NORMALIZE_OPTIONS:
            bad("normalize", f"one of {models.NORMALIZE_OPTIONS}")
        for name in ("width", "epochs", "batch_size", "lr_decay_every", "at_steps"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        if not is_int(self.seed):
            bad("seed", "an integer")
        for name in ("lr", "lr_decay", "noise_std", "at_eps", "at_rel_step", "at_lam"):
            v = getattr(self, name)
            if not is_num(v) or not math.isfinite(v):
                bad(name, "a finite number")
        if self.val_noise_std is None or not is_num(self.val_noise_std):
            bad("val_noise_std", "a finite number >= 0")
        if not self.lr > 0:
            bad("lr", "> 0")
        if not 0 < self.lr_decay <= 1:
            bad("lr_decay", "a number in (0, 1]")
        for name in ("noise_std", "at_eps", "val_noise_std"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                bad(name, "a finite number >= 0")
        if not self.at_rel_step > 0:
            bad("at_rel_step", "> 0")
        if not 0 <= self.at_lam <= 1:
            bad("at_lam", "a number in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {sorted(unknown)}")
        return cls(**d)

    def make_model(self, num_classes: int, sample_rate: int = 16000) -> models.Model:
        """The model this config trains (``sample_rate``: Hz, used by SpecCNN only)."""
        return models.make_model(
            self.model,
            num_classes,
            width=self.width,
            normalize=self.normalize,
            sample_rate=sample_rate,
        )


class TrainState(train_state.TrainState):
    """``flax.training.train_state.TrainState`` plus BatchNorm statistics (empty for M5-Tricks)."""

    batch_stats: Any = None


def model_variables(params: Any, batch_stats: Any) -> dict[str, Any]:
    """The model's variables ``{"params", "batch_stats"?}`` (without BatchNorm: params only)."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """The staircase learning rate ``lr * lr_decay ** floor(epoch / lr_decay_every)`` of a step.

    Args:
      config: the :class:`TrainConfig` (``lr``, ``lr_decay``, ``lr_decay_every``).
      steps_per_epoch: optimizer steps per epoch.

    Returns:
      An ``optax.Schedule``: step -> learning rate.
    """
    return optax.exponential_decay(
        init_value=config.lr,
        transition_steps=config.lr_decay_every * steps_per_epoch,
        decay_rate=config.lr_decay,
        staircase=True,
    )


@functools.lru_cache(maxsize=64)
def _adam(
    lr: float, lr_decay: float, lr_decay_every: int, steps_per_epoch: int
) -> optax.GradientTransformation:
    """Adam with the staircase schedule; memoised because the optimizer is a static
    field of :class:`TrainState`, so a new object would recompile the train step."""
    config = TrainConfig(lr=lr, lr_decay=lr_decay, lr_decay_every=lr_decay_every)
    return optax.adam(lr_schedule(config, steps_per_epoch))


def create_train_state(
    model: models.Model, config: TrainConfig, input_len: int, steps_per_epoch: int
) -> TrainState:
    """Initial state: params from ``fold_in(key(seed), 0)``; Adam with the staircase schedule.

    ``state.apply_fn`` is the eval-mode ``models.logits_fn(model)``.
    """
    key = jax.random.fold_in(jax.random.key(config.seed), TAG_INIT)
    variables = models.init_variables(model, key, input_len)
    state = TrainState.create(
        # memoised per model: a static field of the state, so it must not change between runs
        apply_fn=models.logits_fn(model),  # pyright: ignore[reportArgumentType]
        params=variables["params"],
        tx=_adam(config.lr, config.lr_decay, config.lr_decay_every, steps_per_epoch),
        batch_stats=variables.get("batch_stats", {}),
    )
    # A concrete int32 step (not a Python int) so the jitted step compiles once.
    return state.replace(step=jnp.asarray(0, jnp.int32))


def make_train_step(
    model: models.Model, config: TrainConfig
) -> Callable[[TrainState, tuple[jax.Array, jax.Array], jax.Array], tuple[TrainState, dict]]:
    """The jitted ``train_step(state, (x, y), key) -> (state, metrics)`` of a config.

    One step: Gaussian augmentation (``noise_std > 0``), PGD-AT examples
    (``at_eps > 0``, crafted in eval mode, no gradient through the attack),
    joint loss ``lam * CE(clean) + (1 - lam) * CE(adv)`` in one batch, one Adam
    update. ``metrics`` holds ``loss`` and ``accuracy`` (on the clean half).
    Memoised per model and step-relevant fields (learning rate, epochs, seed
    and validation settings live elsewhere), so runs reuse the compiled step.
    """
    return _make_train_step(
        model,  # pyright: ignore[reportArgumentType]
        float(config.noise_std),
        float(config.at_eps),
        int(config.at_steps),
        float(config.at_rel_step),
        float(config.at_lam),
    )


@functools.lru_cache(maxsize=32)
def _make_train_step(
    model: models.Model,
    noise_std: float,
    at_eps: float,
    at_steps: int,
    at_rel_step: float,
    lam: float,
) -> Callable[[TrainState, tuple[jax.Array, jax.Array], jax.Array], tuple[TrainState, dict]]:
    """Cached builder behind :func:`make_train_step`."""
    apply_eval = models.logits_fn(model)  # pyright: ignore[reportArgumentType]

    def train_step(state: TrainState, batch: tuple[jax.Array, jax.Array], key: jax.Array):
        x, y = batch
        k_noise, k_adv = jax.random.split(key)
        if noise_std > 0:
            x = x + noise_std * jax.random.normal(k_noise, x.shape, x.dtype)
        inputs, labels = x, y
        if at_eps > 0:
            x_adv = attacks.pgd_kernel(
                apply_eval,
                model_variables(state.params, state.batch_stats),
                x,
                y,
                jnp.asarray(at_eps, x.dtype),
                k_adv,
                jnp.asarray(at_rel_step, x.dtype),
                jnp.asarray(-1.0, x.dtype),
                jnp.asarray(1.0, x.dtype),
                num_steps=at_steps,
                norm="linf",
                random_start=False,
            )
            inputs = jnp.concatenate([x, jax.lax.stop_gradient(x_adv)])
            labels = jnp.concatenate([y, y])

        def loss_fn(params):
            variables = model_variables(params, state.batch_stats)
            if state.batch_stats:
                logits, updates = model.apply(
                    variables, inputs, train=True, mutable=["batch_stats"]
                )
            else:
                logits, updates = model.apply(variables, inputs, train=True), {}
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # pyright: ignore[reportArgumentType]
            b = x.shape[0]
            loss = lam * ce[:b].mean() + (1 - lam) * ce[b:].mean() if at_eps > 0 else ce.mean()
            return loss, (logits[:b], updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(
            grads=grads, batch_stats=updates.get("batch_stats", state.batch_stats)
        )
        accuracy = jnp.mean(jnp.argmax(logits, -1) == y)
        return state, {"loss": loss, "accuracy": accuracy}

    return jax.jit(train_step)


@functools.partial(jax.jit, static_argnums=0)
def _apply_jit(apply_fn: Callable, variables: Any, x: jax.Array) -> Any:
    return apply_fn(variables, x)


def _batched(apply_fn: Callable, variables: Any, x: np.ndarray, batch_size: int) -> Any:
    """Apply in batches (last one padded, so one compile), concatenated as numpy."""
    x = np.asarray(x, np.float32)
    n = x.shape[0]
    bs = batch_size_for(check_int("batch_size", batch_size, 1), n)
    outs = []
    for _, _, m, xb in iter_batches(x, bs):
        out = jax.tree_util.tree_map(np.asarray, _apply_jit(apply_fn, variables, jnp.asarray(xb)))
        outs.append(jax.tree_util.tree_map(lambda a, m=m: a[:m], out))
    if not outs:  # n == 0: shapes from a one-example call
        out = _apply_jit(apply_fn, variables, jnp.zeros((1, *x.shape[1:]), jnp.float32))
        return jax.tree_util.tree_map(lambda a: np.asarray(a)[:0], out)
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *outs)


def predict_logits(
    apply_fn: Callable, variables: Any, x: np.ndarray, *, batch_size: int = 256
) -> np.ndarray:
    """Eval-mode logits in batches.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits``, e.g. ``models.logits_fn(model)``.
      variables: model variables.
      x: waveforms, shape (n, time).
      batch_size: examples per jitted call.

    Returns:
      float32 array, shape (n, C).
    """
    return _batched(apply_fn, variables, x, batch_size)


def extract_features(
    model: models.Model, variables: Any, x: np.ndarray, *, batch_size: int = 256
) -> np.ndarray:
    """Penultimate features (after global average pooling), shape (n, 2 * width)."""
    return _batched(models.features_fn(model), variables, x, batch_size)[1]  # pyright: ignore[reportArgumentType]


# ----------------------------------------------------------------------------- checkpoints


@dataclasses.dataclass(frozen=True, eq=False)
class Checkpoint:
    """A saved model and, for training checkpoints, the state needed to resume.

    Attributes:
      model: the :class:`~fairrobust.models.M5` / ``SpecCNN`` the variables belong to.
      variables: ``{"params", "batch_stats"?}`` of the model (for a training
        checkpoint: the current, not the best, variables).
      config: the :class:`TrainConfig` of the run.
      history: one record per finished epoch (see :func:`train`).
      epoch: number of finished epochs.
      best_epoch: epoch (1-based) of the lowest validation loss, 0 if none.
      best_val_loss: that loss (``inf`` if none).
      best_variables: variables at ``best_epoch`` (None in a variables-only file).
      opt_state: optax state (None in a variables-only file).
      step: optimizer steps taken.
      input_len: waveform length (samples) the model was trained on.
      class_names: class names, index = label.
      sample_rate: Hz of the training data.
      dataset_fingerprint: :meth:`AudioDataset.fingerprint` of the training data.
    """

    model: models.Model
    variables: dict[str, Any]
    config: TrainConfig
    history: tuple[dict[str, Any], ...] = ()
    epoch: int = 0
    best_epoch: int = 0
    best_val_loss: float = math.inf
    best_variables: dict[str, Any] | None = None
    opt_state: Any = None
    step: int = 0
    input_len: int = 0
    class_names: tuple[str, ...] = ()
    sample_rate: int = 0
    dataset_fingerprint: str = ""


def _describe(model: models.Model) -> str:
    spec = ", ".join(f"{k}={v!r}" for k, v in _model_spec(model).items())
    return f"{type(model).__name__}({spec})"


def _model_spec(model: models.Model) -> dict[str, Any]:
    if isinstance(model, models.SpecCNN):
        return {
            "num_classes": int(model.num_classes),
            "width": int(model.width),
            "representation": model.representation.to_dict(),
        }
    return {
        "num_classes": int(model.num_classes),
        "width": int(model.width),
        "tricks": bool(model.tricks),
        "normalize": str(model.normalize),
    }


def _model_from_spec(spec: Mapping[str, Any]) -> models.Model:
    """Inverse of :func:`_model_spec` (a spec with a representation is a SpecCNN)."""
    if "representation" in spec:
        rep = Representation(**spec["representation"])
        return models.SpecCNN(spec["num_classes"], rep, width=spec["width"])
    return models.M5(
        spec["num_classes"], width=spec["width"], tricks=spec["tricks"], normalize=spec["normalize"]
    )


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically as msgpack (arrays) + a JSON header.

    Returns:
      The path written.
    """
    header = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "model": _model_spec(checkpoint.model),
        "config": checkpoint.config.to_dict(),
        "history": list(checkpoint.history),
        "epoch": int(checkpoint.epoch),
        "best_epoch": int(checkpoint.best_epoch),
        "best_val_loss": float(checkpoint.best_val_loss),
        "step": int(checkpoint.step),
        "input_len": int(checkpoint.input_len),
        "class_names": list(checkpoint.class_names),
        "sample_rate": int(checkpoint.sample_rate),
        "dataset_fingerprint": checkpoint.dataset_fingerprint,
    }
    arrays: dict[str, Any] = {"variables": serialization.to_state_dict(checkpoint.variables)}
    if checkpoint.best_variables is not None:
        arrays["best_variables"] = serialization.to_state_dict(checkpoint.best_variables)
    if checkpoint.opt_state is not None:
        arrays["opt_state"] = serialization.to_state_dict(checkpoint.opt_state)
    arrays = jax.tree_util.tree_map(np.asarray, arrays)
    payload = {"header": json.dumps(to_jsonable(header), sort_keys=True), "arrays": arrays}
    return atomic_write_bytes(path, serialization.msgpack_serialize(payload))


def _shape_mismatches(expected: Any, got: Any) -> list[str]:
    flat_e = {jax.tree_util.keystr(k): np.shape(v) for k, v in _flatten(expected)}
    flat_g = {jax.tree_util.keystr(k): np.shape(v) for k, v in _flatten(got)}
    out = [
        f"{k}: missing in checkpoint (model expects {flat_e[k]})" for k in flat_e if k not in flat_g
    ]
    out += [f"{k}: in checkpoint but not in the model" for k in flat_g if k not in flat_e]
    out += [
        f"{k}: model expects shape {flat_e[k]}, checkpoint has {flat_g[k]}"
        for k in flat_e
        if k in flat_g and flat_e[k] != flat_g[k]
    ]
    return out


def _flatten(tree: Any) -> list[tuple[Any, Any]]:
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _as_jax(tree: Any) -> Any:
    return jax.tree_util.tree_map(jnp.asarray, tree)


def load_checkpoint(
    path: str | os.PathLike[str], *, model: models.Model | None = None
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` / :func:`train`.

    Args:
      path: a ``.ckpt`` file.
      model: if given, the architecture the caller wants to load into; a
        different architecture (model name, width, classes, normalisation) or
        parameter shapes raise ``ValueError`` naming both.

    Returns:
      The :class:`Checkpoint`; ``opt_state`` is returned as a raw state dict
      (``train`` restores it into the optimizer's structure).

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a fairrobust checkpoint, or the architecture mismatch above.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        header = json.loads(payload["header"])  # pyright: ignore[reportArgumentType]
        arrays = payload["arrays"]
        if header.get("format") != _FORMAT:
            raise KeyError("format")
    except Exception as exc:  # msgpack / json / key errors: all mean "not our file"
        raise ValueError(f"{path}: not a readable fairrobust checkpoint ({exc!r})") from exc
    spec = header["model"]
    config = TrainConfig.from_dict(header["config"])
    saved_model = _model_from_spec(spec)
    variables = _as_jax(arrays["variables"])
    if model is not None:
        if _model_spec(model) != spec:
            raise ValueError(
                f"{path}: checkpoint holds {_describe(saved_model)} but the requested "
                f"architecture is {_describe(model)}; its parameters cannot be loaded into a "
                "different model"
            )
        input_len = header["input_len"] or 16000
        expected = jax.eval_shape(
            lambda: models.init_variables(model, jax.random.key(0), input_len)
        )
        bad = _shape_mismatches(expected, variables)
        if bad:
            raise ValueError(f"{path}: variables do not fit {_describe(model)}: " + "; ".join(bad))
    best = arrays.get("best_variables")  # pyright: ignore[reportAttributeAccessIssue]
    return Checkpoint(
        model=saved_model,
        variables=variables,
        config=config,
        history=tuple(header["history"]),
        epoch=header["epoch"],
        best_epoch=header["best_epoch"],
        best_val_loss=math.inf if header["best_val_loss"] is None else header["best_val_loss"],
        best_variables=None if best is None else _as_jax(best),
        opt_state=arrays.get("opt_state"),  # pyright: ignore[reportAttributeAccessIssue]
        step=header["step"],
        input_len=header["input_len"],
        class_names=tuple(header["class_names"]),
        sample_rate=header["sample_rate"],
        dataset_fingerprint=header["dataset_fingerprint"],
    )


# ----------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True, eq=False)
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      model: the trained :class:`~fairrobust.models.M5` / ``SpecCNN``.
      variables: the variables with the lowest validation loss.
      history: one dict per epoch: ``epoch``, ``lr``, ``train_loss``,
        ``train_acc``, ``val_loss``, ``val_acc`` (no wall-clock times, so that
        same-seed checkpoints are byte-identical).
      best_epoch: 1-based epoch of ``variables``.
      config: the :class:`TrainConfig`.
      out_dir: checkpoint directory, or None.
      epoch_seconds: wall-clock seconds of the epochs run by this call (also in
        ``out_dir/timings.json``, kept apart from the checkpoints).
    """

    model: models.Model
    variables: dict[str, Any]
    history: tuple[dict[str, Any], ...]
    best_epoch: int
    config: TrainConfig
    out_dir: Path | None = None
    epoch_seconds: tuple[float, ...] = ()

    @property
    def apply_fn(self) -> Callable[[Any, jax.Array], jax.Array]:
        """``models.logits_fn(self.model)``."""
        return models.logits_fn(self.model)  # pyright: ignore[reportArgumentType]


@functools.partial(jax.jit, static_argnums=0)
def _val_metrics(apply_fn: Callable, variables: Any, x: jax.Array, y: jax.Array, w: jax.Array):
    """Summed CE and correct count over a padded batch (``w`` masks the padding)."""
    logits = apply_fn(variables, x)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(ce * w), jnp.sum((jnp.argmax(logits, -1) == y) * w)


def evaluate(
    apply_fn: Callable, variables: Any, x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (eval mode) over ``(x, y)``: the validation metrics.

    Batches of ``batch_size`` (the last padded and its padding weighted 0), summed on
    the device and divided by ``n`` on the host.

    Args:
      apply_fn: ``apply_fn(variables, x) -> logits`` (eval mode).
      variables: model variables.
      x: waveforms ``[n, T]`` (float32 NumPy).
      y: integer labels ``[n]``.
      batch_size: examples per jitted call.

    Returns:
      ``(mean cross-entropy, accuracy)`` as floats.
    """
    n = x.shape[0]
    bs = batch_size_for(batch_size, n)
    loss = correct = 0.0
    for _, _, m, (xb, yb) in iter_batches((x, y), bs):
        w = (np.arange(bs) < m).astype(np.float32)
        l, c = _val_metrics(apply_fn, variables, jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(w))
        loss += float(l)
        correct += float(c)
    return loss / n, correct / n


def _resume_key(config: TrainConfig) -> dict[str, Any]:
    """Fields that must match to resume (``epochs`` may grow)."""
    d = config.to_dict()
    d.pop("epochs")
    return d


def check_resumable(
    ckpt: Checkpoint,
    path: Path,
    config: TrainConfig,
    dataset_name: str,
    fingerprint: str,
    input_len: int,
) -> None:
    """Raises ``ValueError`` unless ``train`` may resume from ``ckpt`` (same config but
    ``epochs``, same data)."""
    if _resume_key(ckpt.config) != _resume_key(config):
        diff = {
            k: (v, _resume_key(config)[k])
            for k, v in _resume_key(ckpt.config).items()
            if _resume_key(config)[k] != v
        }
        raise ValueError(
            f"{path}: checkpoint config differs from the requested config "
            f"(field: (checkpoint, requested)) {diff}; use another out_dir or resume=False"
        )
    if ckpt.dataset_fingerprint != fingerprint or ckpt.input_len != input_len:
        raise ValueError(
            f"{path}: checkpoint was trained on different data (fingerprint "
            f"{ckpt.dataset_fingerprint}, length {ckpt.input_len}) than dataset "
            f"{dataset_name!r} ({fingerprint}, length {input_len}); use another out_dir"
        )


def restore_state(state: TrainState, ckpt: Checkpoint) -> TrainState:
    """``state`` (from :func:`create_train_state`) with the step, variables and optimizer
    state of a training checkpoint (``last.ckpt``), as :func:`train` resumes it."""
    return state.replace(
        step=jnp.asarray(ckpt.step, jnp.int32),
        params=ckpt.variables["params"],
        batch_stats=ckpt.variables.get("batch_stats", {}),
        opt_state=serialization.from_state_dict(state.opt_state, ckpt.opt_state),
    )


def save_epoch(out_dir: Path, last: Checkpoint, improved: bool) -> None:
    """The files of a finished epoch: ``last.ckpt`` (``last``, with its best variables and
    optimizer state) and, when ``improved``, ``best.ckpt`` (the best variables alone)."""
    save_checkpoint(out_dir / "last.ckpt", last)
    if improved:
        best = dataclasses.replace(
            last, variables=last.best_variables, best_variables=None, opt_state=None
        )
        save_checkpoint(out_dir / "best.ckpt", best)


def training_arrays(
    dataset: AudioDataset, batch_size: int, *, stacklevel: int
) -> tuple[AudioDataset, np.ndarray, np.ndarray, int, int]:
    """What a training run takes from a dataset, as :func:`train` takes it.

    Args:
      dataset: with a ``train`` (and normally a ``val``) split.
      batch_size: the configured batch size.
      stacklevel: ``warnings.warn`` stack level of the no-validation warning.

    Returns:
      ``(val split, x_train float32 [n, T], y_train int32 [n], batch size, steps per
      epoch)``; the batch size is at most ``n`` and the last incomplete batch is dropped.

    Raises:
      ValueError: no training examples (a missing ``val`` split only warns).
    """
    train_ds = dataset.split("train")
    val_ds = dataset.split("val")
    if len(train_ds) == 0:
        raise ValueError(f"dataset {dataset.name!r}: no examples in split 'train'")
    if len(val_ds) == 0:
        warnings.warn(
            f"dataset {dataset.name!r} has no 'val' examples; selecting on the training loss",
            UserWarning,
            stacklevel=stacklevel,
        )
    x_train = np.asarray(train_ds.waveforms, np.float32)
    y_train = np.asarray(train_ds.labels, np.int32)
    bs = min(batch_size, len(x_train))
    return val_ds, x_train, y_train, bs, len(x_train) // bs


def train(
    dataset: AudioDataset,
    config: TrainConfig = TrainConfig(),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train a model of ``config.model`` on the ``train`` split, selecting on the ``val`` split.

    Each epoch: a permutation ``permutation(fold_in(k_shuffle, epoch))`` of the
    training examples in batches of ``batch_size`` (the last incomplete batch
    is dropped; with fewer examples than ``batch_size`` one batch holds them
    all), step ``s`` using ``fold_in(k_step, s)``; then validation loss and
    accuracy, and selection of the lowest validation loss. Without validation
    examples the training loss selects (with a warning).

    Args:
      dataset: an :class:`AudioDataset` with ``train`` (and normally ``val``) examples.
      config: the :class:`TrainConfig`.
      out_dir: directory for ``last.ckpt`` / ``best.ckpt`` (None: no files).
      resume: continue from ``out_dir/last.ckpt`` when it exists. Its config
        must equal ``config`` except for ``epochs``, and its dataset
        fingerprint must match, else ``ValueError``.
      progress: show a progress bar (also silenced by ``FAIRROBUST_NO_PROGRESS``).

    Returns:
      A :class:`TrainResult` with the best variables.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
    val_ds, x_train, y_train, bs, steps_per_epoch = training_arrays(
        dataset, config.batch_size, stacklevel=3
    )
    model = config.make_model(dataset.num_classes, int(dataset.sample_rate))
    n, input_len = x_train.shape
    fingerprint = dataset.fingerprint()
    root = jax.random.key(config.seed)
    k_shuffle = jax.random.fold_in(root, TAG_SHUFFLE)
    k_step = jax.random.fold_in(root, TAG_STEP)

    x_val = np.asarray(val_ds.waveforms, np.float32)
    y_val = np.asarray(val_ds.labels, np.int32)
    if config.val_noise_std > 0 and len(val_ds):
        noise = jax.random.normal(jax.random.fold_in(root, TAG_VAL_NOISE), x_val.shape)
        x_val = x_val + config.val_noise_std * np.asarray(noise, np.float32)

    state = create_train_state(model, config, input_len, steps_per_epoch)
    history: list[dict[str, Any]] = []
    epoch, best_epoch, best_loss = 0, 0, math.inf
    best_variables = model_variables(state.params, state.batch_stats)
    out = Path(out_dir) if out_dir is not None else None
    last_path = out / "last.ckpt" if out is not None else None
    if resume and last_path is not None and last_path.exists():
        ckpt = load_checkpoint(last_path)
        check_resumable(ckpt, last_path, config, dataset.name, fingerprint, input_len)
        state = restore_state(state, ckpt)
        history = list(ckpt.history)
        epoch, best_epoch, best_loss = ckpt.epoch, ckpt.best_epoch, ckpt.best_val_loss
        if ckpt.best_variables is not None:
            best_variables = ckpt.best_variables

    train_step = make_train_step(model, config)
    apply_eval = models.logits_fn(model)  # pyright: ignore[reportArgumentType]
    eval_bs = max(bs, 256)

    def checkpoint(variables: dict[str, Any], opt_state: Any, step: int, with_best: bool):
        return Checkpoint(
            model=model,
            variables=variables,
            config=config,
            history=tuple(history),
            epoch=epoch,
            best_epoch=best_epoch,
            best_val_loss=best_loss,
            best_variables=best_variables if with_best else None,
            opt_state=opt_state,
            step=step,
            input_len=input_len,
            class_names=tuple(dataset.class_names),
            sample_rate=int(dataset.sample_rate),
            dataset_fingerprint=fingerprint,
        )

    total = max(0, config.epochs - epoch) * steps_per_epoch
    step, epoch_seconds = int(state.step), list[float]()  # wall-clock: timings.json only
    with _io.progress(total, desc=f"train {config.model} w{config.width}", enabled=progress) as bar:
        while epoch < config.epochs:
            t0 = time.perf_counter()
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(k_shuffle, epoch), n))
            losses, accs = [], []
            for i in range(steps_per_epoch):
                idx = perm[i * bs : (i + 1) * bs]
                step_key = jax.random.fold_in(k_step, step)
                step += 1
                batch = (jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
                state, metrics = train_step(state, batch, step_key)
                losses.append(metrics["loss"])
                accs.append(metrics["accuracy"])
                bar.update(1)
            train_loss = float(np.mean(jax.device_get(losses)))
            train_acc = float(np.mean(jax.device_get(accs)))
            variables = model_variables(state.params, state.batch_stats)
            if len(y_val):
                val_loss, val_acc = evaluate(apply_eval, variables, x_val, y_val, eval_bs)
            else:
                val_loss, val_acc = math.nan, math.nan
            lr = float(lr_schedule(config, steps_per_epoch)(step - 1))  # pyright: ignore[reportArgumentType]
            epoch += 1
            select = val_loss if len(y_val) else train_loss
            improved = select < best_loss or best_epoch == 0
            if improved:
                best_epoch, best_loss, best_variables = epoch, float(select), variables
            history.append(
                {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "val_loss": val_loss,
                    "val_acc": val_acc,
                }
            )
            epoch_seconds.append(time.perf_counter() - t0)
            bar.set_postfix(epoch=epoch, val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
            if out is not None:
                save_epoch(out, checkpoint(variables, state.opt_state, step, True), improved)
                write_timings(out, {"epoch_seconds": epoch_seconds})
    return TrainResult(
        model=model,
        variables=best_variables,
        history=tuple(history),
        best_epoch=best_epoch,
        config=config,
        out_dir=out,
        epoch_seconds=tuple(epoch_seconds),
    )


def write_timings(out_dir: str | os.PathLike[str], timings: Mapping[str, Any]) -> Path:
    """Merge ``timings`` into ``out_dir/timings.json`` (wall-clock seconds).

    Wall-clock times live only here, never in ``metrics.json`` or checkpoints, so
    that two same-seed runs in the same environment write byte-identical results.

    Args:
      out_dir: the training output folder.
      timings: JSON-serialisable entries (e.g. ``epoch_seconds``, ``train_seconds``)
        replacing entries of the same name.

    Returns:
      The path written.
    """
    path = Path(out_dir) / "timings.json"
    old = _io.read_json(path) if path.exists() else {}
    return _io.atomic_write_json(path, {**(old if isinstance(old, dict) else {}), **timings})
