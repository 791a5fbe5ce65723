"""Bring your own model: external models through both studies and ``fairrobust certify``."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fairrobust
import fairrobust.data
from fairrobust.cli import build_parser, main
from fairrobust.data.dataset import AudioDataset
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection as rj
from fairrobust.studies import robustness as rb
from fairrobust.studies import soundness
from fairrobust.studies.external import ExternalModel, check_models
from fairrobust.studies.selection import select_baseline

T = 8000  # samples per clip: above M5's shortest input (6848)
N_CLASSES = 3


def _dataset() -> AudioDataset:
    """60 noisy tones (one frequency per class), 2 genders, split by speaker 30 / 12 / 18."""
    rng = np.random.default_rng(0)
    n = 60
    labels = np.arange(n) % N_CLASSES
    t = np.arange(T) / 16000.0
    freqs = np.array([300.0, 700.0, 1500.0])[labels]
    phase = rng.uniform(0, 2 * np.pi, size=n)
    waves = 0.5 * np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phase[:, None])
    waves = (waves + 0.05 * rng.standard_normal((n, T))).astype(np.float32)
    spk = np.arange(n) // 3
    splits = np.array(["train"] * 30 + ["val"] * 12 + ["test"] * 18)
    return AudioDataset(
        name="synthetic",
        waveforms=waves,
        labels=labels.astype(np.int32),
        class_names=("low", "mid", "high"),
        speakers=np.array([f"s{s}" for s in spk]),
        splits=splits,
        attributes={"gender": np.array(["female", "male"])[spk % 2]},
        sample_rate=16000,
        paths=np.array([f"clip{i:02d}.wav" for i in range(n)]),
    )


class SpectrumMLP(nn.Module):
    """Not an M5: log-magnitude spectrum max-pooled to 40 bands -> Dense -> ReLU -> Dense."""

    hidden: int = 16

    def setup(self) -> None:
        self.hidden_layer = nn.Dense(self.hidden)
        self.out = nn.Dense(N_CLASSES)

    def embed(self, x: jax.Array) -> jax.Array:
        """Features ``[b, hidden]`` of waveforms ``[b, T]``."""
        spec = jnp.log1p(jnp.abs(jnp.fft.rfft(x, axis=-1))[:, :4000])
        pooled = spec.reshape(x.shape[0], 40, -1).max(-1)
        return nn.relu(self.hidden_layer(pooled))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.embed(x))


def _fit(ds: AudioDataset, seed: int, noise_std: float = 0.0, steps: int = 30):
    """SpectrumMLP variables after ``steps`` full-batch Adam steps on the training split."""
    module = SpectrumMLP()
    train = np.asarray(ds.splits) == "train"
    x, y = jnp.asarray(ds.waveforms[train]), jnp.asarray(ds.labels[train])
    key = jax.random.key(seed)
    params = module.init(key, x[:1])
    opt = optax.adam(0.02)

    @jax.jit
    def step(params, state, key):
        xn = x + noise_std * jax.random.normal(key, x.shape)

        def loss(p):
            logits = module.apply(p, xn)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    for i in range(steps):
        params, state = step(params, state, jax.random.fold_in(key, i))
    return module, params


@pytest.fixture(scope="module")
def ds():
    return _dataset()


@pytest.fixture(scope="module")
def mlps(ds):
    """Two trained SpectrumMLPs: clean, and with noise augmentation 0.1 (stated)."""
    module, clean = _fit(ds, seed=0)
    _, noisy = _fit(ds, seed=1, noise_std=0.1)
    a = ExternalModel.from_flax(module, clean, name="mlp", feature_method="embed")
    b = ExternalModel.from_flax(
        SpectrumMLP(), noisy, name="mlp-noisy", feature_method="embed", noise_std=0.1
    )
    return a, b


ROB = dataclasses.replace(
    study_config.preset("robustness", "tiny"),
    at_eps=(0.0,),
    bootstrap_resamples=0,
    max_examples=0,
)
#: CERTIFY with an external model is exercised through ``fairrobust certify --model`` below.
REJ = study_config.preset("rejection", "tiny").replace(
    bootstrap_resamples=0, max_examples=0, certify=False
)


# ----------------------------------------------------------------------------- the model


def test_fingerprint_tracks_the_weights_and_functions_are_shared(mlps):
    a, b = mlps
    same = ExternalModel.from_flax(SpectrumMLP(), a.variables, name="mlp", feature_method="embed")
    assert same.fingerprint() == a.fingerprint() and len(a.fingerprint()) == 16
    # one compiled program per module: equal modules share their functions
    assert same.apply_fn is a.apply_fn is b.apply_fn and same.features_fn is a.features_fn
    moved = jax.tree_util.tree_map(lambda v: v.at[(0,) * v.ndim].add(1e-3), a.variables)
    changed = dataclasses.replace(a, variables=moved)
    assert changed.fingerprint() != a.fingerprint()
    assert dataclasses.replace(a, name="other").fingerprint() != a.fingerprint()
    assert a.train_id == f"external-mlp-{a.fingerprint()[:8]}"
    a.check(N_CLASSES, T, features=True)


def test_bad_models_raise_naming_the_problem(ds, tmp_path):
    def five(variables, x):
        return x[:, :5]

    bad = ExternalModel("five-out", five, {})
    with pytest.raises(ValueError, match=r"'five-out'.*logits of shape \(1, 3\).*\(1, 5\)"):
        bad.check(N_CLASSES, T)
    with pytest.raises(ValueError, match=r"'five-out'.*logits"):  # before anything is written
        rb.run_study(ds, ROB, tmp_path / "rob", progress=False, models=[bad])
    assert not (tmp_path / "rob").exists()

    def logits(variables, x):
        return x[:, :N_CLASSES] * variables["w"]

    plain = ExternalModel("no-features", logits, {"w": jnp.ones(())})
    with pytest.raises(ValueError, match=r"'no-features'.*features_fn"):
        rj.run_study(ds, REJ, tmp_path / "rej", progress=False, nr_model=plain)
    assert not (tmp_path / "rej").exists()
    with pytest.raises(ValueError, match="distinct names"):
        check_models([plain, plain], N_CLASSES, T)
    for name in ("", "a/b", ".."):
        with pytest.raises(ValueError, match=r"ExternalModel\.name"):
            ExternalModel(name, logits, {})
    with pytest.raises(ValueError, match=r"ExternalModel\.noise_std"):
        ExternalModel("m", logits, {}, noise_std=-1.0)


def test_bad_specs_raise_naming_the_spec(tmp_path, monkeypatch):
    (tmp_path / "not_a.ckpt").write_bytes(b"nonsense")
    (tmp_path / "byo_wrong.py").write_text("def make():\n    return 3\n\nVALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = {
        "": "checkpoint path",
        str(tmp_path / "missing.ckpt"): "no such path",
        "not a spec": "no such path",
        "no_such_module_xyz:make": "cannot import module 'no_such_module_xyz'",
        "byo_wrong:missing": "attribute 'missing'",
        "byo_wrong:VALUE": "a callable returning one",
        "byo_wrong:make": "to return a fairrobust ExternalModel, got int",
        str(tmp_path / "not_a.ckpt"): "not a readable fairrobust checkpoint",
        str(tmp_path): "best.ckpt: checkpoint not found",
    }
    for spec, message in cases.items():
        with pytest.raises(ValueError, match="model spec") as err:
            ExternalModel.load(spec)
        assert message in str(err.value), (spec, str(err.value))


# ----------------------------------------------------------------------------- the studies


def test_checkpoint_model_matches_its_trained_member(ds, tmp_path):
    cfg = dataclasses.replace(ROB, max_examples=12)
    grid = rb.run_study(ds, cfg, tmp_path / "grid", progress=False, make_figures=False)
    member = grid.members[0]
    folder = tmp_path / "grid" / "models" / member.spec.train_id
    ext = ExternalModel.from_checkpoint(folder)
    assert (ext.name, ext.at_eps, ext.noise_std) == (member.spec.train_id, 0.0, 0.0)
    res = rb.run_study(ds, cfg, tmp_path / "ext", progress=False, make_figures=False, models=[ext])
    (got,) = res.members
    assert got.spec.external and got.spec.train_id == ext.train_id
    assert not (tmp_path / "ext" / "models" / member.spec.train_id).exists()  # nothing trained
    # same clips; PGD without random start does not use the member's key
    assert got.spec.eval_spec["attack"]["random_start"] is False
    np.testing.assert_array_equal(res.test_index, grid.test_index)
    np.testing.assert_array_equal(got.correct, member.correct)
    meta = json.loads(got.json_path.read_text())
    assert meta["training"]["fingerprint"] == ext.fingerprint()


def test_flax_models_through_both_studies(ds, mlps, tmp_path):
    a, b = mlps
    cfg = dataclasses.replace(ROB, preprocess=("none", "quantize:bits=8"))
    out = tmp_path / "rob"
    res = rb.run_study(ds, cfg, out, progress=False, make_figures=False, models=[b, a])
    ids = [r["member_id"] for r in res.tables["models"]]
    assert ids == ["mlp-noisy", "mlp-noisy+quantize-bits=8", "mlp", "mlp+quantize-bits=8"]
    assert res.tables["models"][2]["clean_accuracy"] > 0.8  # a real, trained model
    for name in ("models", "groups", "group_metrics", "defense_parity", "correlations"):
        assert res.files[f"{name}_csv"].exists() and res.files[f"{name}_json"].exists()
    # the clean baseline is the model stated without AT or noise, not the first
    assert select_baseline(res.tables["models"])["member_id"] == "mlp"
    prov = json.loads(res.files["provenance"].read_text())
    assert [m["name"] for m in prov["external_models"]] == ["mlp-noisy", "mlp"]
    assert "Noise std" in {r["intervention"] for r in res.tables["correlations"]}
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted([a.train_id, b.train_id])
    with pytest.raises(ValueError, match="external models"):  # it reloads trained models
        soundness.run_soundness(ds, out, study_config.preset("soundness", "tiny"), res)

    # a rerun reuses every member; changed weights recompute under a new folder
    again = rb.run_study(ds, cfg, out, progress=False, make_figures=False, models=[b, a])
    assert all(m.reused for m in again.members)
    moved = jax.tree_util.tree_map(lambda v: v * 1.01, a.variables)
    a2 = dataclasses.replace(a, variables=moved)
    third = rb.run_study(ds, cfg, out, progress=False, make_figures=False, models=[b, a2])
    assert [m.reused for m in third.members] == [True, True, False, False]
    assert third.members[2].spec.train_id == a2.train_id != a.train_id

    # rejection: NR on the MLP's features, RS on the noisy MLP; nothing trained
    rej = rj.run_study(ds, REJ, tmp_path / "rej", progress=False, nr_model=a, rs_model=b)
    assert not (tmp_path / "rej" / "models").exists() and dict(rej.model_dirs) == {}
    labels = list(dict.fromkeys(r["model"] for r in rej.tables["accuracy"]))
    assert labels[:3] == ["mlp (NR base)", "NR (SVM)", "mlp-noisy (RS base)"]
    assert rej.summary["nr_base_accuracy"] > 0.8 and rej.summary["rs_base_accuracy"] > 0.8
    cfg_json = json.loads(rej.files["config"].read_text())
    assert cfg_json["external_nr"]["fingerprint"] == a.fingerprint()
    assert cfg_json["external_rs"]["noise_std"] == 0.1 and "train_nr" not in cfg_json
    caches = [p.name for p in (tmp_path / "rej" / "cache" / "rejection").iterdir()]
    assert any(name.startswith("nr-") for name in caches)


# ----------------------------------------------------------------------------- command line

_MODULE = """
import jax
import jax.numpy as jnp
import flax.linen as nn

from fairrobust import ExternalModel


class Pooled(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense({classes})(x.reshape(x.shape[0], 80, -1).std(-1))


def make():
    module = Pooled()
    variables = module.init(jax.random.key(0), jnp.zeros((1, {length})))
    return ExternalModel.from_flax(module, variables, name="pooled")
"""


def test_cli_with_a_model_spec(ds, tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "byo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text(textwrap.dedent(_MODULE.format(classes=N_CLASSES, length=T)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fairrobust.data, "load_dataset", lambda *_, **__: ds)
    target = tmp_path / "cert.csv"
    # n0 = n: selection and estimation draws share one compiled sampler
    argv = ["certify", "--model", "byo_pkg.net:make", "--n0", "20", "--n", "20", "--batch-size",
            "18", "--chunk-size", "10", "--out", str(target), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and list(rows[0])[:3] == ["index", "path", "label"]
    assert all(int(r["prediction"]) >= -1 and float(r["radius"]) >= 0 for r in rows)
    assert "certified 18 clips" in capsys.readouterr().out
    # a bad spec: one line, exit code 2, before any data is loaded
    assert main(["certify", "--model", "byo_pkg.net:nothing", "--out", str(target)]) == 2
    assert "model spec 'byo_pkg.net:nothing'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # exactly one of --checkpoint / --model
        build_parser().parse_args(["certify", "--checkpoint", "c", "--model", "m", "--out", "o"])
    # the robustness study of the same model from the command line
    out = tmp_path / "study"
    argv = ["study", "robustness", "--model", "byo_pkg.net:make", "--preset", "tiny",
            "--out", str(out), "--max-examples", "6", "--bootstrap-resamples", "0",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "1 external models x 1 preprocess" in capsys.readouterr().out
    rows = json.loads((out / "results" / "robustness_synthetic_models.json").read_text())
    assert [r["member_id"] for r in rows] == ["pooled"]
    sys.modules.pop("byo_pkg.net", None)
    sys.modules.pop("byo_pkg", None)


def test_study_flags(capsys):
    args = build_parser().parse_args(
        ["study", "robustness", "--model", "a:b", "--model", "c.ckpt", "--out", "o"]
    )
    assert args.external_models == ["a:b", "c.ckpt"]
    args = build_parser().parse_args(
        ["study", "rejection", "--nr-model", "a:b", "--rs-model", "c:d", "--out", "o"]
    )
    assert (args.nr_model, args.rs_model) == ("a:b", "c:d")
    code = main(["study", "robustness", "--model", "a:b", "--at-eps", "0,0.01", "--out", "o"])
    assert code == 2 and "--at-eps" in capsys.readouterr().err
