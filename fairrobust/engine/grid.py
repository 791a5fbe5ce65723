"""Training K grid members of equal architecture together: vmap over stacked parameters.

A study grid (e.g. M5 x adversarial-training epsilon x noise augmentation) holds
many models of one architecture that differ only in hyper-parameters and seed.
Training them one after another leaves a CPU core or an accelerator mostly idle on
small per-step work; here the K members' parameters, BatchNorm statistics and Adam
states are stacked along a leading axis and ONE jitted step updates all of them
(``jax.vmap`` of the per-member step), optionally split over devices
(``jax.shard_map`` over the member axis, see ``fairrobust.engine.parallel``).

Each member follows exactly the recipe of ``fairrobust.train.train`` (same
initialisation key, shuffling, per-step keys, Gaussian augmentation, PGD-AT joint
loss, staircase Adam, validation and best-epoch selection), so member k's result
equals ``train.train(dataset, configs[k])`` up to float32 rounding of the batched
computation (``tests/test_grid.py`` checks this against ``train.make_train_step``).

What may differ between members of one vmapped group (traced per member):
``noise_std``, ``at_eps`` (all > 0 or all 0), ``at_rel_step``, ``at_lam``,
``val_noise_std`` and ``seed``. Everything else (model, width, normalize,
epochs, batch_size, lr, lr_decay, lr_decay_every, at_steps, and whether
adversarial training is on) must be equal: ``structure_key``. ``train_grid``
groups the configs by that key and trains each group as one stack.

Checkpoints and resume: ``train_grid(out_dirs=...)`` writes every member's
``last.ckpt`` / ``best.ckpt`` / ``timings.json`` as ``train.train`` does, and a
killed grid resumes each member from its own last epoch.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from fairrobust import _io, attacks, models, train
from fairrobust._checks import fail
from fairrobust.engine import parallel

__all__ = [
    "MEMBER_STRATEGIES",
    "Hyper",
    "group_configs",
    "init_states",
    "make_grid_step",
    "stack",
    "structure_key",
    "train_grid",
    "unstack",
]

_STRUCTURE_FIELDS = (
    "model",
    "width",
    "normalize",
    "epochs",
    "batch_size",
    "lr",
    "lr_decay",
    "lr_decay_every",
    "at_steps",
)


class Hyper(NamedTuple):
    """Per-member traced hyper-parameters, each float32 ``[K]``."""

    noise_std: jax.Array
    at_eps: jax.Array
    at_rel_step: jax.Array
    at_lam: jax.Array

    @classmethod
    def from_configs(cls, configs: Sequence[train.TrainConfig]) -> Hyper:
        """Stacks the traced fields of ``configs``."""

        def col(name: str) -> jax.Array:
            return jnp.asarray([float(getattr(c, name)) for c in configs], jnp.float32)

        return cls(col("noise_std"), col("at_eps"), col("at_rel_step"), col("at_lam"))


def structure_key(config: train.TrainConfig) -> tuple:
    """Fields that must be equal for members to share one vmapped step."""
    return (*(getattr(config, f) for f in _STRUCTURE_FIELDS), config.at_eps > 0)


def group_configs(configs: Sequence[train.TrainConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``structure_key``, in first-appearance order."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(structure_key(c), []).append(i)
    return list(groups.values())


def _check_group(configs: Sequence[train.TrainConfig]) -> None:
    if not configs:
        raise ValueError("configs: expected at least one TrainConfig, got none")
    for c in configs:
        if not isinstance(c, train.TrainConfig):
            raise ValueError(f"configs: expected TrainConfig entries, got {type(c).__name__}")
    keys = {structure_key(c) for c in configs}
    if len(keys) > 1:
        names = (*_STRUCTURE_FIELDS, "at_eps > 0")
        diff = [n for i, n in enumerate(names) if len({k[i] for k in keys}) > 1]
        raise ValueError(
            f"configs: members of one vmapped group must agree on {diff} "
            "(use train_grid, which groups them, or train them separately)"
        )


def stack(trees: Sequence[Any]) -> Any:
    """Stacks pytrees of equal structure along a new leading axis."""
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def unstack(tree: Any, k: int) -> Any:
    """Member ``k`` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda a: a[k], tree)


def init_states(
    model: models.M5,
    configs: Sequence[train.TrainConfig],
    input_len: int,
    steps_per_epoch: int,
) -> train.TrainState:
    """Stacked ``train.create_train_state`` of every member (its own seed): leaves ``[K, ...]``."""
    _check_group(configs)
    states = [train.create_train_state(model, c, input_len, steps_per_epoch) for c in configs]
    return stack(states)


@functools.lru_cache(maxsize=32)
def _member_step(model: models.M5, adversarial: bool, at_steps: int):
    """The per-member step of ``train.make_train_step`` with traced hyper-parameters."""
    apply_eval = models.logits_fn(model)  # pyright: ignore[reportArgumentType]

    def step(state: train.TrainState, hp: Hyper, x: jax.Array, y: jax.Array, key: jax.Array):
        k_noise, k_adv = jax.random.split(key)
        # noise_std = 0 adds exact zeros: the same input as train.py's noise-free path.
        x = x + hp.noise_std.astype(x.dtype) * jax.random.normal(k_noise, x.shape, x.dtype)
        inputs, labels = x, y
        if adversarial:
            x_adv = attacks.pgd_kernel(
                apply_eval,
                train.model_variables(state.params, state.batch_stats),
                x,
                y,
                hp.at_eps.astype(x.dtype),
                k_adv,
                hp.at_rel_step.astype(x.dtype),
                jnp.asarray(-1.0, x.dtype),
                jnp.asarray(1.0, x.dtype),
                num_steps=at_steps,
                norm="linf",
                random_start=False,
            )
            inputs = jnp.concatenate([x, jax.lax.stop_gradient(x_adv)])
            labels = jnp.concatenate([y, y])
        b = x.shape[0]

        def loss_fn(params):
            variables = train.model_variables(params, state.batch_stats)
            if state.batch_stats:
                logits, updates = model.apply(
                    variables, inputs, train=True, mutable=["batch_stats"]
                )
            else:
                logits, updates = model.apply(variables, inputs, train=True), {}
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # pyright: ignore[reportArgumentType]
            if adversarial:
                loss = hp.at_lam * ce[:b].mean() + (1 - hp.at_lam) * ce[b:].mean()
            else:
                loss = ce.mean()
            return loss, (logits[:b], updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        state = state.apply_gradients(
            grads=grads, batch_stats=updates.get("batch_stats", state.batch_stats)
        )
        return state, {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}

    return step


MEMBER_STRATEGIES = parallel.MEMBER_STRATEGIES
_resolve_strategy = parallel.resolve_members


@functools.lru_cache(maxsize=32)
def _grid_program(
    model: models.M5, adversarial: bool, at_steps: int, mesh: Mesh | None, members: str = "vmap"
):
    member = _member_step(model, adversarial, at_steps)  # pyright: ignore[reportArgumentType]

    def grid_step(state, hp, x_all, y_all, idx, keys):
        # idx [K, b]: member k's batch rows of the shared training set.
        def one(s, h, i, k):
            return member(s, h, x_all[i], y_all[i], k)

        if members == "vmap":
            return jax.vmap(one)(state, hp, idx, keys)
        return jax.lax.map(lambda a: one(*a), (state, hp, idx, keys))

    if mesh is None:
        return jax.jit(grid_step, donate_argnums=0)
    sharded = jax.shard_map(
        grid_step,
        mesh=mesh,
        in_specs=(P(parallel.AXIS), P(parallel.AXIS), P(), P(), P(parallel.AXIS), P(parallel.AXIS)),
        out_specs=P(parallel.AXIS),
        check_vma=False,
    )
    return jax.jit(sharded, donate_argnums=0)


def make_grid_step(
    model: models.M5,
    configs: Sequence[train.TrainConfig],
    *,
    mesh: Mesh | None = None,
    members: str = "auto",
):
    """The jitted step of a group: ``step(state, hp, x_all, y_all, idx, keys)``.

    Member ``k`` takes one step of ``train.make_train_step(model, configs[k])`` on the
    batch ``(x_all[idx[k]], y_all[idx[k]])`` with key ``keys[k]``.

    Args:
      model: the shared architecture.
      configs: the K members' configs (equal ``structure_key``).
      mesh: optional 1-D mesh (``parallel.device_mesh``): the member axis is split
        over its devices (K must then be a multiple of the device count; the
        ``state`` argument is donated).
      members: how the members of one device share the step: ``"vmap"`` (one
        batched computation: K times larger matmuls, what accelerators want),
        ``"map"`` (``lax.map``: the members' steps one after another inside one
        jitted program, each at its own batch size) or ``"auto"`` (``"map"`` on
        CPU, ``"vmap"`` elsewhere). On the 2-core CPU of ``benchmarks/README.md``
        one member's step already keeps both cores busy and a K-times larger
        working set falls out of cache, so vmapping was slower than sequential
        steps there (see ``benchmarks/bench_train.py``).

    Returns:
      ``step(state [K], hp: Hyper [K], x_all [n, T], y_all [n], idx int [K, b],
      keys [K]) -> (state, {"loss": [K], "accuracy": [K]})``.
    """
    _check_group(configs)
    c = configs[0]
    strategy = _resolve_strategy(members)
    if mesh is not None:
        t = models.min_input_len()
        variables = jax.eval_shape(lambda: models.init_variables(model, jax.random.key(0), t))
        apply_fn = models.logits_fn(model)  # pyright: ignore[reportArgumentType]
        x = jax.ShapeDtypeStruct((1, t), jnp.float32)
        parallel.warn_host_conv("grid.make_grid_step", mesh, apply_fn, variables, x)
    return _grid_program(model, c.at_eps > 0, int(c.at_steps), mesh, strategy)  # pyright: ignore[reportArgumentType]


def train_grid(
    dataset: Any,
    configs: Sequence[train.TrainConfig],
    *,
    mesh: Mesh | None = None,
    progress: bool = True,
    members: str = "auto",
    out_dirs: Sequence[str | os.PathLike[str] | None] | None = None,
    resume: bool = True,
) -> list[train.TrainResult]:
    """Trains every config of a grid, members of equal structure together.

    Member ``k`` follows ``train.train(dataset, configs[k])`` step for step: the same
    initial parameters, shuffling ``permutation(fold_in(k_shuffle, epoch))``, step
    keys ``fold_in(k_step, step)``, validation (clean or with ``val_noise_std``
    noise under the fixed key) and lowest-validation-loss selection. Results match
    a sequential run up to float32 rounding of the batched computation
    (``tests/test_grid.py``: logits within 2e-3 after two epochs).

    With ``out_dirs``, every member keeps the files ``train.train`` keeps in its
    ``out_dir``: ``last.ckpt`` (with optimizer state and best variables) and
    ``best.ckpt`` after every epoch, and ``timings.json``. With ``resume``, a member
    whose ``last.ckpt`` has run every epoch is read back, not trained, and an
    unfinished one continues from its last epoch: members are grouped by structure
    and by the epoch they resume from, so a grid killed between two members'
    checkpoint writes resumes each member where it stopped, with the steps and keys
    it would have used.

    Args:
      dataset: an ``AudioDataset`` with ``train`` (and normally ``val``) examples.
      configs: one ``train.TrainConfig`` per member; grouped by ``structure_key``.
      mesh: optional 1-D device mesh: each group's member axis is split over its
        devices (members are padded with copies of the first to a multiple of the
        device count; the copies are dropped).
      progress: show a progress bar (also silenced by ``FAIRROBUST_NO_PROGRESS``).
      members: ``"auto"``, ``"vmap"`` or ``"map"``, see :func:`make_grid_step`.
      out_dirs: one checkpoint folder per config (None entries, or None: no files).
      resume: continue from the members' ``last.ckpt`` files (as ``train.train``:
        a checkpoint of another config but ``epochs``, or of other data, raises).

    Returns:
      ``train.TrainResult`` per config, in the order of ``configs``.

    Raises:
      ValueError: no configs, a non-TrainConfig entry, no training examples,
        ``out_dirs`` of another length, or a checkpoint that cannot be resumed.
    """
    if not configs:
        raise ValueError("configs: expected at least one TrainConfig, got none")
    strategy = _resolve_strategy(members)
    dirs = [None] * len(configs) if out_dirs is None else [_as_path(d) for d in out_dirs]
    if len(dirs) != len(configs):
        fail("out_dirs", f"{len(configs)} folders (one per config)", f"{len(dirs)}")
    for c in configs:
        if not isinstance(c, train.TrainConfig):
            fail("configs", "TrainConfig entries", type(c).__name__)
    results: list[train.TrainResult | None] = [None] * len(configs)
    starts: list[train.Checkpoint | None] = [None] * len(configs)
    for i, (c, d) in enumerate(zip(configs, dirs, strict=True)):
        ck = _resume_point(dataset, c, d) if resume and d is not None else None
        if ck is not None and ck.epoch >= c.epochs:
            results[i] = _finished(dataset, c, d, ck)  # pyright: ignore[reportArgumentType]
        else:
            starts[i] = ck
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        if results[i] is None:
            start = 0 if starts[i] is None else starts[i].epoch  # pyright: ignore[reportOptionalMemberAccess]
            groups.setdefault((structure_key(c), start), []).append(i)
    for member_ids in groups.values():
        trained = _train_group(
            dataset,
            [configs[i] for i in member_ids],
            mesh,
            progress,
            strategy,
            [starts[i] for i in member_ids],
            [dirs[i] for i in member_ids],
        )
        for i, res in zip(member_ids, trained, strict=True):
            results[i] = res
    return results  # type: ignore[return-value]


def _as_path(d: str | os.PathLike[str] | None) -> Path | None:
    return None if d is None else Path(d)


def _resume_point(dataset: Any, config: train.TrainConfig, out: Path) -> train.Checkpoint | None:
    """``out/last.ckpt`` checked as ``train.train`` checks it, or None when absent."""
    last = out / "last.ckpt"
    if not last.exists():
        return None
    ck = train.load_checkpoint(last)
    input_len = int(np.shape(dataset.waveforms)[-1])
    train.check_resumable(ck, last, config, dataset.name, dataset.fingerprint(), input_len)
    return ck


def _finished(
    dataset: Any, config: train.TrainConfig, out: Path, ck: train.Checkpoint
) -> train.TrainResult:
    """The result of a member whose ``last.ckpt`` has run every epoch (as ``train.train``)."""
    best = ck.best_variables
    if best is None:
        best = train.load_checkpoint(out / "best.ckpt").variables
    return train.TrainResult(
        model=config.make_model(dataset.num_classes, int(dataset.sample_rate)),
        variables=best,
        history=tuple(ck.history),
        best_epoch=ck.best_epoch,
        config=config,
        out_dir=out,
    )


class _Member:
    """Host-side record of one member while its group trains (history, best, files)."""

    def __init__(self, config: train.TrainConfig, out: Path | None, ck: train.Checkpoint | None):
        self.config, self.out = config, out
        self.history: list[dict[str, Any]] = [] if ck is None else list(ck.history)
        self.best_epoch = 0 if ck is None else ck.best_epoch
        self.best_loss = math.inf if ck is None else ck.best_val_loss
        self.best_vars: Any = None if ck is None else ck.best_variables

    def update(self, epoch: int, variables: Any, select: float, record: dict[str, Any]) -> bool:
        improved = select < self.best_loss or self.best_epoch == 0
        if improved:
            self.best_epoch, self.best_loss, self.best_vars = epoch, float(select), variables
        self.history.append(record)
        return improved


def _initial_state(model, padded, starts, input_len, steps_per_epoch) -> train.TrainState:
    """Stacked initial states; a member with a checkpoint continues from it."""
    states = []
    for c, ck in zip(padded, starts, strict=True):
        s = train.create_train_state(model, c, input_len, steps_per_epoch)
        states.append(s if ck is None else train.restore_state(s, ck))
    return stack(states)


def _train_group(dataset, configs, mesh, show_progress, strategy, starts, out_dirs):
    _check_group(configs)
    k_real = len(configs)
    d = 1 if mesh is None else mesh.devices.size
    pad = (-k_real) % d
    padded = list(configs) + [configs[0]] * pad
    padded_starts = list(starts) + [starts[0]] * pad
    c0 = configs[0]
    val_ds, x_train, y_train, bs, steps_per_epoch = train.training_arrays(
        dataset, c0.batch_size, stacklevel=4
    )
    model = c0.make_model(dataset.num_classes, int(dataset.sample_rate))
    n, input_len = x_train.shape
    fingerprint = dataset.fingerprint() if any(o is not None for o in out_dirs) else ""

    roots = [jax.random.key(c.seed) for c in padded]
    k_shuffle = [jax.random.fold_in(r, train.TAG_SHUFFLE) for r in roots]
    k_step = jnp.stack([jax.random.fold_in(r, train.TAG_STEP) for r in roots])
    x_val = np.asarray(val_ds.waveforms, np.float32)
    y_val = np.asarray(val_ds.labels, np.int32)
    x_vals = []
    for c, r in zip(configs, roots, strict=False):
        if c.val_noise_std > 0 and len(val_ds):
            noise = jax.random.normal(jax.random.fold_in(r, train.TAG_VAL_NOISE), x_val.shape)
            x_vals.append(x_val + c.val_noise_std * np.asarray(noise, np.float32))
        else:
            x_vals.append(x_val)

    state = _initial_state(model, padded, padded_starts, input_len, steps_per_epoch)
    hp = Hyper.from_configs(padded)
    step_fn = make_grid_step(model, padded, mesh=mesh, members=strategy)
    x_all, y_all = jnp.asarray(x_train), jnp.asarray(y_train)
    if mesh is not None:
        state, hp = parallel.shard_leading((state, hp), mesh)
        x_all, y_all = parallel.replicate((x_all, y_all), mesh)
    fold_steps = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
    apply_eval = models.logits_fn(model)
    eval_bs = max(bs, 256)

    mem = [_Member(c, o, ck) for c, o, ck in zip(configs, out_dirs, starts, strict=True)]
    first = 0 if starts[0] is None else starts[0].epoch
    step = 0 if starts[0] is None else starts[0].step
    epoch_seconds: list[float] = []
    total = max(0, c0.epochs - first) * steps_per_epoch
    with _io.progress(
        total, desc=f"grid x{k_real} {c0.model} w{c0.width}", enabled=show_progress
    ) as bar:
        for epoch in range(first, c0.epochs):
            t0 = time.perf_counter()
            perms = np.stack(
                [
                    np.asarray(jax.random.permutation(jax.random.fold_in(ks, epoch), n))
                    for ks in k_shuffle
                ]
            )
            losses, accs = [], []
            for i in range(steps_per_epoch):
                idx = jnp.asarray(perms[:, i * bs : (i + 1) * bs])
                keys = fold_steps(k_step, step)
                step += 1
                if mesh is not None:
                    idx, keys = parallel.shard_leading((idx, keys), mesh)
                state, met = step_fn(state, hp, x_all, y_all, idx, keys)
                losses.append(met["loss"])
                accs.append(met["accuracy"])
                bar.update(1)
            train_loss = np.mean(np.stack(parallel.fetch(losses)), axis=0)
            train_acc = np.mean(np.stack(parallel.fetch(accs)), axis=0)
            lr = float(train.lr_schedule(c0, steps_per_epoch)(step - 1))  # pyright: ignore[reportArgumentType]
            saving = any(m.out is not None for m in mem)
            host = parallel.fetch(
                (state.params, state.batch_stats, state.opt_state if saving else None)
            )
            for k, m in enumerate(mem):
                params, stats, opt = (unstack(t, k) if t is not None else None for t in host)
                variables = train.model_variables(
                    jax.tree_util.tree_map(jnp.asarray, params),
                    jax.tree_util.tree_map(jnp.asarray, stats),
                )
                if len(y_val):
                    val_loss, val_acc = train.evaluate(
                        apply_eval, variables, x_vals[k], y_val, eval_bs
                    )
                else:
                    val_loss, val_acc = math.nan, math.nan
                select = val_loss if len(y_val) else float(train_loss[k])
                record = {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": float(train_loss[k]),
                    "train_acc": float(train_acc[k]),
                    "val_loss": val_loss,
                    "val_acc": val_acc,
                }
                improved = m.update(epoch + 1, variables, select, record)
                if m.out is not None:
                    last = train.Checkpoint(
                        model=model,
                        variables=variables,
                        config=m.config,
                        history=tuple(m.history),
                        epoch=epoch + 1,
                        best_epoch=m.best_epoch,
                        best_val_loss=m.best_loss,
                        best_variables=m.best_vars,
                        opt_state=opt,
                        step=step,
                        input_len=input_len,
                        class_names=tuple(dataset.class_names),
                        sample_rate=int(dataset.sample_rate),
                        dataset_fingerprint=fingerprint,
                    )
                    train.save_epoch(m.out, last, improved)
            epoch_seconds.append(time.perf_counter() - t0)
            for m in mem:
                if m.out is not None:
                    timings = {"epoch_seconds": epoch_seconds, "grid_size": k_real}
                    train.write_timings(m.out, timings)
    return [
        train.TrainResult(
            model=model,
            variables=m.best_vars,
            history=tuple(m.history),
            best_epoch=m.best_epoch,
            config=m.config,
            out_dir=m.out,
            epoch_seconds=tuple(epoch_seconds),
        )
        for m in mem
    ]
