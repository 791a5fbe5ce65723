"""Training: loss decreases, PGD-AT and noise steps, checkpoints, resume, determinism, errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import evaluation, models, train
from fairrobust.data.dataset import AudioDataset

T = 7000
SR = 8000


def tone_dataset(n_per_class=(4, 2, 2), classes=3, seed=0):
    """Sinusoids whose frequency depends on the class, with random phase and amplitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / SR
    waves, labels, splits = [], [], []
    for split, n in zip(("train", "val", "test"), n_per_class, strict=True):
        for c in range(classes):
            for _ in range(n):
                f = 300.0 * (c + 1) * (1 + 0.03 * rng.standard_normal())
                a = rng.uniform(0.2, 0.8)
                w = a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
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


CFG = train.TrainConfig(width=4, epochs=2, batch_size=4, lr=3e-3, seed=0)


@pytest.fixture(scope="module")
def ds():
    return tone_dataset()


def _state_and_batch(ds, config):
    model = config.make_model(ds.num_classes)
    tr = ds.split("train")
    state = train.create_train_state(model, config, T, steps_per_epoch=3)
    batch = (jnp.asarray(tr.waveforms[:4]), jnp.asarray(tr.labels[:4]))
    return model, state, batch


def test_loss_decreases(ds):
    config = dataclasses.replace(CFG, lr=1e-2)
    model, state, batch = _state_and_batch(ds, config)
    step = train.make_train_step(model, config)
    losses = []
    for i in range(8):
        state, m = step(state, batch, jax.random.key(i))
        losses.append(float(m["loss"]))
    assert losses[-1] < losses[0]
    assert int(state.step) == 8
    assert train.make_train_step(model, config) is step  # memoised: compiled once


def test_adversarial_step_finite(ds):
    config = dataclasses.replace(CFG, at_eps=0.01, at_steps=2, noise_std=0.05)
    model, state, batch = _state_and_batch(ds, config)
    new, m = train.make_train_step(model, config)(state, batch, jax.random.key(0))
    assert np.isfinite(float(m["loss"]))
    leaves = jax.tree_util.tree_leaves(new.params)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in leaves)
    assert not np.array_equal(new.params["conv1"]["kernel"], state.params["conv1"]["kernel"])
    # the joint loss includes the adversarial half: it exceeds the clean loss of the step
    _, m_clean = train.make_train_step(model, dataclasses.replace(config, at_eps=0.0))(
        state, batch, jax.random.key(0)
    )
    assert float(m["loss"]) != float(m_clean["loss"])


def test_noise_only_on_training_batches(ds):
    noisy = dataclasses.replace(CFG, noise_std=0.3, epochs=1)
    model, state, batch = _state_and_batch(ds, noisy)
    _, a = train.make_train_step(model, CFG)(state, batch, jax.random.key(0))
    _, b = train.make_train_step(model, noisy)(state, batch, jax.random.key(0))
    assert float(a["loss"]) != float(b["loss"])  # the train step sees noise
    # validation is clean: the val metrics of a noisy run equal a direct clean evaluation
    res = train.train(ds, noisy, progress=False)
    val = ds.split("val")
    loss, acc = train.evaluate(res.apply_fn, res.variables, val.waveforms, val.labels, 256)
    assert res.history[0]["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert res.history[0]["val_acc"] == pytest.approx(acc)
    # ... unless val_noise_std asks for noisy validation (fixed key: deterministic)
    vn = dataclasses.replace(noisy, val_noise_std=0.3)
    r1 = train.train(ds, vn, progress=False)
    r2 = train.train(ds, vn, progress=False)
    assert r1.history[0]["val_loss"] == r2.history[0]["val_loss"] != res.history[0]["val_loss"]


def test_train_checkpoint_resume_and_determinism(ds, tmp_path):
    full = train.train(ds, CFG, out_dir=tmp_path / "full", progress=False)
    assert len(full.history) == 2 and 1 <= full.best_epoch <= 2
    for rec in full.history:
        assert {"epoch", "lr", "train_loss", "val_loss", "val_acc"} <= set(rec)
        assert "time_s" not in rec  # wall-clock times live in timings.json only
    assert len(full.epoch_seconds) == 2
    timings = json.loads((tmp_path / "full" / "timings.json").read_text())
    assert timings["epoch_seconds"] == list(full.epoch_seconds)
    assert (tmp_path / "full" / "last.ckpt").exists() and (tmp_path / "full" / "best.ckpt").exists()

    # same seed, no out_dir: identical parameters
    again = train.train(ds, CFG, progress=False)
    chex_equal(again.variables, full.variables)

    # interrupted after 1 epoch, then resumed to 2: same final state as uninterrupted
    one = dataclasses.replace(CFG, epochs=1)
    train.train(ds, one, out_dir=tmp_path / "resumed", progress=False)
    resumed = train.train(ds, CFG, out_dir=tmp_path / "resumed", progress=False)
    chex_equal(resumed.variables, full.variables)
    last_full = train.load_checkpoint(tmp_path / "full" / "last.ckpt")
    last_res = train.load_checkpoint(tmp_path / "resumed" / "last.ckpt")
    chex_equal(last_res.variables, last_full.variables)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    assert last_res.step == last_full.step == 2 * 3

    # checkpoint round trip: identical logits
    best = train.load_checkpoint(tmp_path / "full" / "best.ckpt", model=full.model)
    assert best.model == full.model and best.config == CFG
    x = ds.split("test").waveforms
    np.testing.assert_array_equal(
        train.predict_logits(full.apply_fn, full.variables, x),
        train.predict_logits(models.logits_fn(best.model), best.variables, x),
    )
    path = train.save_checkpoint(tmp_path / "copy.ckpt", best)
    np.testing.assert_array_equal(
        train.predict_logits(full.apply_fn, train.load_checkpoint(path).variables, x),
        train.predict_logits(full.apply_fn, full.variables, x),
    )

    # resuming with a different config is an error, never a silent mix
    with pytest.raises(ValueError, match="lr"):
        train.train(ds, dataclasses.replace(CFG, lr=1e-4), out_dir=tmp_path / "full")
    # loading into another architecture is an error naming both
    with pytest.raises(ValueError, match="width=8"):
        train.load_checkpoint(tmp_path / "full" / "best.ckpt", model=models.M5(3, width=8))
    with pytest.raises(ValueError, match="tricks=True"):
        train.load_checkpoint(
            tmp_path / "full" / "best.ckpt", model=models.make_model("m5-tricks", 3, width=4)
        )
    bad = tmp_path / "junk.ckpt"
    bad.write_bytes(b"not msgpack")
    with pytest.raises(ValueError, match=r"junk\.ckpt"):
        train.load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        train.load_checkpoint(tmp_path / "missing.ckpt")


def chex_equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_tricks_model_trains_and_helpers(ds):
    config = dataclasses.replace(CFG, model="m5-tricks", epochs=1)
    res = train.train(ds, config, progress=False)
    assert "batch_stats" not in res.variables
    feats = train.extract_features(res.model, res.variables, ds.waveforms, batch_size=5)
    assert feats.shape == (len(ds), 8)
    logits = train.predict_logits(res.apply_fn, res.variables, ds.waveforms, batch_size=5)
    assert logits.shape == (len(ds), 3)
    np.testing.assert_allclose(
        logits, train.predict_logits(res.apply_fn, res.variables, ds.waveforms), atol=1e-5
    )
    acc = evaluation.accuracy_by_split(res.apply_fn, res.variables, ds)
    assert set(acc) == {"train", "val", "test"} and all(0 <= a <= 1 for a in acc.values())


def test_learns_separable_tones(ds):
    config = dataclasses.replace(CFG, width=8, epochs=6, lr=1e-2)
    res = train.train(ds, config, progress=False)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert evaluation.accuracy_by_split(res.apply_fn, res.variables, ds)["train"] >= 0.75


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "resnet"),
        ("normalize", "peak"),
        ("width", 0),
        ("epochs", 0),
        ("batch_size", 1.5),
        ("lr", 0.0),
        ("lr_decay", 1.5),
        ("lr_decay_every", 0),
        ("noise_std", -0.1),
        ("at_eps", -1.0),
        ("at_steps", 0),
        ("at_lam", 2.0),
        ("val_noise_std", float("nan")),
        ("seed", "zero"),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        train.TrainConfig(**{field: value})


def test_config_round_trip_and_schedule():
    cfg = train.TrainConfig(at_eps=0.005, noise_std=0.01)
    assert train.TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        train.TrainConfig.from_dict({"bogus": 1})
    sched = train.lr_schedule(cfg, steps_per_epoch=10)
    # lr * 0.9 ** floor(epoch / 5): epochs 0-4 at 1e-3, 5-9 at 9e-4, 10 at 8.1e-4
    assert float(sched(0)) == pytest.approx(1e-3)
    assert float(sched(49)) == pytest.approx(1e-3)
    assert float(sched(50)) == pytest.approx(9e-4)
    assert float(sched(100)) == pytest.approx(8.1e-4)


def test_dataset_errors(ds):
    no_val = ds.select(ds.splits != "val")
    with pytest.warns(UserWarning, match="val"):
        res = train.train(no_val, dataclasses.replace(CFG, epochs=1), progress=False)
    assert np.isnan(res.history[0]["val_loss"])
    with pytest.raises(ValueError, match="train"):
        train.train(ds.select(ds.splits != "train"), CFG, progress=False)
