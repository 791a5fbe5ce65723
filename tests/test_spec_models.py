"""SpecCNN: training through train.train, representation-space split, smoothing, checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fairrobust import frontend, models, smoothing, train
from fairrobust.data.dataset import AudioDataset

T, SR = 4000, 8000


def tone_dataset(n_per_class=(4, 2, 2), classes=3, seed=0):
    """Sinusoids whose frequency depends on the class (as tests/test_train.py)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / SR
    waves, labels, splits = [], [], []
    for split, n in zip(("train", "val", "test"), n_per_class, strict=True):
        for c in range(classes):
            for _ in range(n):
                w = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * 300.0 * (c + 1) * t)
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


@pytest.fixture(scope="module")
def ds():
    return tone_dataset()


@pytest.fixture(scope="module", params=sorted(models.SPEC_MODELS))
def trained(request, ds, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    config = train.TrainConfig(model=request.param, width=4, epochs=2, batch_size=4, lr=3e-3)
    return train.train(ds, config, out_dir=out, progress=False)


def test_make_model_builds_speccnn_at_the_data_rate():
    m = models.make_model("spec-mel", 3, width=4, sample_rate=8000, normalize="none")
    assert isinstance(m, models.SpecCNN)
    assert m.representation == frontend.Representation.for_sample_rate("mel", 8000, normalize=False)
    assert models.make_model("spec-stft", 3).representation.bins == 257
    assert models.input_len_minimum(m) == m.min_input_len() == 17 * 80
    assert models.input_len_minimum(models.make_model("m5", 3)) == models.min_input_len()


def test_training_runs_and_learns(trained, ds):
    assert isinstance(trained.model, models.SpecCNN)
    assert trained.model.representation.sample_rate == SR
    assert len(trained.history) == 2 and np.isfinite(trained.history[-1]["train_loss"])
    logits = train.predict_logits(models.logits_fn(trained.model), trained.variables, ds.waveforms)
    assert logits.shape == (len(ds), 3) and np.isfinite(logits).all()


def test_checkpoint_round_trip(trained):
    ckpt = train.load_checkpoint(trained.out_dir / "best.ckpt", model=trained.model)
    assert ckpt.model == trained.model
    other = models.make_model("m5", 3, width=4)
    with pytest.raises(ValueError, match="SpecCNN"):
        train.load_checkpoint(trained.out_dir / "best.ckpt", model=other)


def test_logits_equal_classifier_of_representation(trained, ds):
    model, v = trained.model, trained.variables
    x = jnp.asarray(ds.waveforms[:5])
    z = models.representation_fn(model)(v, x)
    frames, bins = model.representation.shape(T)
    assert z.shape == (5, frames * bins)
    np.testing.assert_allclose(
        models.representation_logits_fn(model)(v, z),
        models.logits_fn(model)(v, x),
        rtol=1e-5,
        atol=1e-5,
    )
    logits, feats = models.features_fn(model)(v, x)
    assert feats.shape == (5, 8)
    # the CPU evaluation form (Runtime.eval_model) gives the same logits
    matmul = models.logits_fn(model.clone(conv_impl="matmul"))(v, x)
    np.testing.assert_allclose(matmul, logits, rtol=1e-4, atol=1e-4)


def test_representation_functions_are_memoised():
    m = models.make_model("spec-mel", 3, width=4, sample_rate=SR)
    same = models.make_model("spec-mel", 3, width=4, sample_rate=SR)
    assert models.representation_logits_fn(m) is models.representation_logits_fn(same)
    assert models.representation_fn(m) is models.representation_fn(same)


def test_certify_in_representation_space(trained, ds):
    model, v = trained.model, trained.variables
    z = models.representation_fn(model)(v, jnp.asarray(ds.waveforms[:3]))
    apply_fn = models.representation_logits_fn(model)
    key = jax.random.key(0)
    counts = smoothing.sample_counts(
        apply_fn, v, z, key, num_samples=8, sigma=0.1, num_classes=3, chunk_size=4
    )
    assert counts.shape == (3, 3) and bool(jnp.all(counts.sum(1) == 8))
    res = smoothing.certify(
        apply_fn, v, z, key, n0=4, n=8, alpha=0.1, sigma=0.1, num_classes=3, chunk_size=4
    )
    pred = np.asarray(res.pred)
    radius = np.asarray(res.radius)
    assert pred.shape == (3,) and ((pred >= -1) & (pred < 3)).all()
    assert np.isfinite(radius[pred >= 0]).all()


def test_speccnn_refusals(trained):
    model, v = trained.model, trained.variables
    with pytest.raises(ValueError, match=r"^model: expected an M5"):
        models.linear_stem_fn(model)
    with pytest.raises(ValueError, match=r"^model: expected a SpecCNN"):
        models.representation_fn(models.make_model("m5", 3))
    with pytest.raises(ValueError, match=r"^z: expected"):
        models.representation_logits_fn(model)(v, jnp.zeros((2, 41)))
    with pytest.raises(ValueError, match=r"^x: expected"):
        models.logits_fn(model)(v, jnp.zeros((2, 100)))
    with pytest.raises(ValueError, match=r"^input_len"):
        models.init_variables(model, jax.random.key(0), 100)
    with pytest.raises(ValueError, match=r"^representation: expected"):
        models.SpecCNN(3, "mel").validate()  # type: ignore[arg-type]
