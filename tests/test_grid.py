"""Grid training: one vmapped step equals each member's train.py step; train_grid == train.train."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import train
from fairrobust.data.dataset import AudioDataset
from fairrobust.engine import grid

T = 7000
SR = 8000


def tone_dataset(n_per_class=(4, 2, 0), classes=3, seed=0):
    """Class-dependent sinusoids (as tests/test_train.py)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / SR
    waves, labels, splits = [], [], []
    for split, n in zip(("train", "val", "test"), n_per_class, strict=True):
        for c in range(classes):
            for _ in range(n):
                f = 300.0 * (c + 1) * (1 + 0.03 * rng.standard_normal())
                w = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                waves.append(w + 0.01 * rng.standard_normal(T))
                labels.append(c)
                splits.append(split)
    n = len(labels)
    return AudioDataset(
        name="tones",
        waveforms=np.clip(np.asarray(waves, np.float32), -1, 1),
        labels=np.asarray(labels, np.int32),
        class_names=tuple(f"f{c}" for c in range(classes)),
        speakers=np.asarray([f"s{i % 4}" for i in range(n)]),
        splits=np.asarray(splits),
        attributes={"gender": np.asarray(["female", "male"] * (n // 2) + ["male"] * (n % 2))},
        sample_rate=SR,
        paths=np.asarray([f"{i}.wav" for i in range(n)]),
    )


BASE = train.TrainConfig(width=4, epochs=2, batch_size=6, lr=3e-3, at_steps=1)


@pytest.fixture(scope="module")
def ds():
    return tone_dataset()


def _close(a, b, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4)


@pytest.mark.parametrize("members", ["vmap", "map"])
@pytest.mark.parametrize("arch", ["m5-tricks"])
def test_grid_step_equals_member_steps(ds, arch, members):
    # Adam's first step is lr * g / (|g| + 1e-8): for a convolution bias followed by
    # BatchNorm, g is pure rounding noise (BatchNorm removes it), so its update and the
    # eval-mode running means differ at float32 rounding amplified to ~lr. Parameters
    # are therefore compared on M5-Tricks (no BatchNorm) and M5 on the loss.
    configs = [
        dataclasses.replace(BASE, model=arch, at_eps=0.01, noise_std=0.0, seed=0),
        dataclasses.replace(BASE, model=arch, at_eps=0.03, noise_std=0.05, at_lam=0.3, seed=1),
    ]
    model = configs[0].make_model(ds.num_classes)
    tr = ds.split("train")
    x_all, y_all = jnp.asarray(tr.waveforms), jnp.asarray(tr.labels)
    state = grid.init_states(model, configs, T, steps_per_epoch=3)
    step = grid.make_grid_step(model, configs, members=members)
    idx = jnp.asarray([[0, 3, 6, 9, 2, 5], [1, 4, 7, 10, 11, 8]])
    keys = jnp.stack([jax.random.key(5), jax.random.key(6)])
    ref = []
    for k, c in enumerate(configs):
        s0 = train.create_train_state(model, c, T, steps_per_epoch=3)
        batch = (x_all[idx[k]], y_all[idx[k]])
        ref.append(train.make_train_step(model, c)(s0, batch, keys[k]))
    new, met = step(state, grid.Hyper.from_configs(configs), x_all, y_all, idx, keys)
    apply_fn = model.apply
    for k in range(2):
        np.testing.assert_allclose(float(met["loss"][k]), float(ref[k][1]["loss"]), rtol=1e-5)
        mine = train.model_variables(grid.unstack(new.params, k), grid.unstack(new.batch_stats, k))
        theirs = train.model_variables(ref[k][0].params, ref[k][0].batch_stats)
        if arch == "m5-tricks":
            _close(mine, theirs, atol=1e-5)
            np.testing.assert_allclose(
                np.asarray(apply_fn(mine, x_all)), np.asarray(apply_fn(theirs, x_all)), atol=1e-4
            )
    assert new.step.shape == (2,)


def test_train_grid_matches_sequential_train(ds):
    tricks = dataclasses.replace(BASE, model="m5-tricks")
    configs = [
        dataclasses.replace(tricks, seed=0),
        dataclasses.replace(tricks, seed=1, noise_std=0.05),
    ]
    results = grid.train_grid(ds, configs, progress=False)
    assert [r.config for r in results] == configs
    for cfg, res in zip(configs, results, strict=True):
        ref = train.train(ds, cfg, progress=False)
        assert res.best_epoch == ref.best_epoch
        x = jnp.asarray(ds.waveforms)
        np.testing.assert_allclose(
            np.asarray(res.apply_fn(res.variables, x)),
            np.asarray(ref.apply_fn(ref.variables, x)),
            atol=2e-3,
        )
        for h, g in zip(res.history, ref.history, strict=True):
            np.testing.assert_allclose(h["val_loss"], g["val_loss"], rtol=1e-3)


def test_grouping_and_errors(ds):
    a = dataclasses.replace(BASE, seed=0)
    b = dataclasses.replace(BASE, seed=1, at_eps=0.02)
    c = dataclasses.replace(BASE, seed=2, noise_std=0.1)
    assert grid.group_configs([a, b, c]) == [[0, 2], [1]]
    model = BASE.make_model(3)
    with pytest.raises(ValueError, match="at_eps > 0"):
        grid.make_grid_step(model, [a, b])
    with pytest.raises(ValueError, match="at least one"):
        grid.train_grid(ds, [])
    with pytest.raises(ValueError, match="members: expected one of"):
        grid.make_grid_step(model, [a, c], members="pmap")
    with pytest.raises(ValueError, match="TrainConfig"):
        grid.init_states(model, [a, "x"], T, 3)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".ckpt"}


def test_train_grid_writes_member_checkpoints_and_resumes_after_a_kill(ds, tmp_path, monkeypatch):
    """A grid killed between two members' checkpoint writes resumes each member where it
    stopped, and ends with the files and variables of an uninterrupted grid."""
    tricks = dataclasses.replace(BASE, model="m5-tricks", epochs=3)
    configs = [
        dataclasses.replace(tricks, seed=0),
        dataclasses.replace(tricks, seed=1, noise_std=0.05),
        dataclasses.replace(tricks, seed=2, at_eps=0.01),  # its own structure group
    ]
    ref_dirs = [tmp_path / "ref" / str(k) for k in range(3)]
    ref = grid.train_grid(ds, configs, progress=False, out_dirs=ref_dirs)
    for d, r in zip(ref_dirs, ref, strict=True):
        ck = train.load_checkpoint(d / "last.ckpt")
        assert ck.epoch == 3 and ck.opt_state is not None and r.out_dir == d
        assert train.load_checkpoint(d / "best.ckpt").epoch == r.best_epoch
        assert "epoch_seconds" in (d / "timings.json").read_text()

    # Kill: the 4th checkpoint write raises (member 0 has epoch 1 last+best, member 1
    # epoch 1 last, then dies before member 1's best.ckpt of epoch 1 ... ).
    dirs = [tmp_path / "run" / str(k) for k in range(3)]
    real = train.save_checkpoint
    calls = {"n": 0}

    def dying(path, ck):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt("killed")
        return real(path, ck)

    monkeypatch.setattr(train, "save_checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        grid.train_grid(ds, configs, progress=False, out_dirs=dirs)
    monkeypatch.setattr(train, "save_checkpoint", real)
    epochs = [
        train.load_checkpoint(d / "last.ckpt").epoch if (d / "last.ckpt").exists() else 0
        for d in dirs
    ]
    assert epochs[0] > epochs[1] or epochs[1] > epochs[2], epochs  # stopped in the middle
    resumed = grid.train_grid(ds, configs, progress=False, out_dirs=dirs)
    x = jnp.asarray(ds.waveforms)
    for r, g in zip(resumed, ref, strict=True):
        assert r.best_epoch == g.best_epoch
        assert [h["epoch"] for h in r.history] == [1, 2, 3]
        np.testing.assert_allclose(
            np.asarray(r.apply_fn(r.variables, x)),
            np.asarray(g.apply_fn(g.variables, x)),
            atol=1e-5,
        )
    # A finished grid is read back, not trained: no checkpoint is written again.
    monkeypatch.setattr(train, "save_checkpoint", lambda *a: pytest.fail("retrained"))
    again = grid.train_grid(ds, configs, progress=False, out_dirs=dirs)
    assert [a.best_epoch for a in again] == [g.best_epoch for g in ref]
    monkeypatch.setattr(train, "save_checkpoint", real)
    # Another config in the same folder is refused, as train.train refuses it.
    with pytest.raises(ValueError, match="checkpoint config differs"):
        grid.train_grid(
            ds, [dataclasses.replace(configs[0], lr=1e-2)], progress=False, out_dirs=dirs[:1]
        )
    with pytest.raises(ValueError, match="out_dirs"):
        grid.train_grid(ds, configs, progress=False, out_dirs=dirs[:2])


def test_train_grid_checkpoints_equal_train_train(ds, tmp_path):
    """A one-member grid writes the checkpoint bytes train.train writes (same computation)."""
    cfg = dataclasses.replace(BASE, model="m5-tricks")
    grid.train_grid(ds, [cfg], progress=False, out_dirs=[tmp_path / "g"])
    train.train(ds, cfg, out_dir=tmp_path / "t", progress=False)
    g, t = _files(tmp_path / "g"), _files(tmp_path / "t")
    assert set(g) == {"best.ckpt", "last.ckpt"} == set(t)
    for name in g:
        a = train.load_checkpoint(tmp_path / "g" / name)
        b = train.load_checkpoint(tmp_path / "t" / name)
        assert a.history == b.history or np.allclose(
            [h["val_loss"] for h in a.history], [h["val_loss"] for h in b.history], rtol=1e-4
        )
        assert (a.epoch, a.best_epoch, a.step) == (b.epoch, b.best_epoch, b.step)
        assert a.config == b.config
