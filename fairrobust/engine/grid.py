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

Not supported here (use ``train.train``): checkpoint files and resuming.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from fairrobust import _io, attacks, models, train
from fairrobust._checks import check_choice
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


MEMBER_STRATEGIES = ("auto", "vmap", "map")


def _resolve_strategy(members: str) -> str:
    check_choice("members", members, MEMBER_STRATEGIES)
    if members == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return members


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
) -> list[train.TrainResult]:
    """Trains every config of a grid, members of equal structure together.

    Member ``k`` follows ``train.train(dataset, configs[k])`` step for step: the same
    initial parameters, shuffling ``permutation(fold_in(k_shuffle, epoch))``, step
    keys ``fold_in(k_step, step)``, validation (clean or with ``val_noise_std``
    noise under the fixed key) and lowest-validation-loss selection. Results match
    a sequential run up to float32 rounding of the batched computation.

    Args:
      dataset: an ``AudioDataset`` with ``train`` (and normally ``val``) examples.
      configs: one ``train.TrainConfig`` per member; grouped by ``structure_key``.
      mesh: optional 1-D device mesh: each group's member axis is split over its
        devices (members are padded with copies of the first to a multiple of the
        device count; the copies are dropped).
      progress: show a progress bar (also silenced by ``FAIRROBUST_NO_PROGRESS``).
      members: ``"auto"``, ``"vmap"`` or ``"map"``, see :func:`make_grid_step`.

    Returns:
      ``train.TrainResult`` per config, in the order of ``configs`` (``out_dir`` None;
      ``history`` records carry ``time_s`` of the whole group's epoch).

    Raises:
      ValueError: no configs, a non-TrainConfig entry, or no training examples.
    """
    if not configs:
        raise ValueError("configs: expected at least one TrainConfig, got none")
    strategy = _resolve_strategy(members)
    results: list[train.TrainResult | None] = [None] * len(configs)
    for member_ids in group_configs(configs):
        group = [configs[i] for i in member_ids]
        trained = _train_group(dataset, group, mesh, progress, strategy)
        for i, res in zip(member_ids, trained, strict=True):
            results[i] = res
    return results  # type: ignore[return-value]


def _train_group(dataset, configs, mesh, show_progress, strategy="vmap"):
    _check_group(configs)
    k_real = len(configs)
    d = 1 if mesh is None else mesh.devices.size
    padded = list(configs) + [configs[0]] * ((-k_real) % d)
    c0 = configs[0]
    val_ds, x_train, y_train, bs, steps_per_epoch = train.training_arrays(
        dataset, c0.batch_size, stacklevel=4
    )
    model = c0.make_model(dataset.num_classes)
    n, input_len = x_train.shape

    roots = [jax.random.key(c.seed) for c in padded]
    k_shuffle = [jax.random.fold_in(r, train.TAG_SHUFFLE) for r in roots]
    k_step = jnp.stack([jax.random.fold_in(r, train.TAG_STEP) for r in roots])
    x_val = np.asarray(val_ds.waveforms, np.float32)
    y_val = np.asarray(val_ds.labels, np.int32)
    x_vals = []
    for c, r in zip(padded, roots, strict=True):
        if c.val_noise_std > 0 and len(val_ds):
            noise = jax.random.normal(jax.random.fold_in(r, train.TAG_VAL_NOISE), x_val.shape)
            x_vals.append(x_val + c.val_noise_std * np.asarray(noise, np.float32))
        else:
            x_vals.append(x_val)

    state = init_states(model, padded, input_len, steps_per_epoch)
    hp = Hyper.from_configs(padded)
    step_fn = make_grid_step(model, padded, mesh=mesh, members=strategy)
    x_all, y_all = jnp.asarray(x_train), jnp.asarray(y_train)
    if mesh is not None:
        state, hp = parallel.shard_leading((state, hp), mesh)
        x_all, y_all = parallel.replicate((x_all, y_all), mesh)
    fold_steps = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
    apply_eval = models.logits_fn(model)
    eval_bs = max(bs, 256)

    history: list[list[dict[str, Any]]] = [[] for _ in range(k_real)]
    best_epoch = [0] * k_real
    best_loss = [math.inf] * k_real
    best_vars: list[Any] = [None] * k_real
    total = c0.epochs * steps_per_epoch
    step = 0
    with _io.progress(
        total, desc=f"grid x{k_real} {c0.model} w{c0.width}", enabled=show_progress
    ) as bar:
        for epoch in range(c0.epochs):
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
            train_loss = np.mean(np.stack(jax.device_get(losses)), axis=0)
            train_acc = np.mean(np.stack(jax.device_get(accs)), axis=0)
            lr = float(train.lr_schedule(c0, steps_per_epoch)(step - 1))  # pyright: ignore[reportArgumentType]
            host_state = jax.device_get((state.params, state.batch_stats))
            for m in range(k_real):
                variables = train.model_variables(
                    jax.tree_util.tree_map(lambda a, m=m: jnp.asarray(a[m]), host_state[0]),
                    jax.tree_util.tree_map(lambda a, m=m: jnp.asarray(a[m]), host_state[1]),
                )
                if len(y_val):
                    val_loss, val_acc = train.evaluate(
                        apply_eval, variables, x_vals[m], y_val, eval_bs
                    )
                else:
                    val_loss, val_acc = math.nan, math.nan
                select = val_loss if len(y_val) else float(train_loss[m])
                if select < best_loss[m] or best_epoch[m] == 0:
                    best_epoch[m], best_loss[m], best_vars[m] = epoch + 1, float(select), variables
                history[m].append(
                    {
                        "epoch": epoch + 1,
                        "lr": lr,
                        "train_loss": float(train_loss[m]),
                        "train_acc": float(train_acc[m]),
                        "val_loss": val_loss,
                        "val_acc": val_acc,
                        "time_s": time.perf_counter() - t0,
                    }
                )
    return [
        train.TrainResult(
            model=model,
            variables=best_vars[m],
            history=tuple(history[m]),
            best_epoch=best_epoch[m],
            config=configs[m],
            out_dir=None,
        )
        for m in range(k_real)
    ]
