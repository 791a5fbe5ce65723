"""python benchmarks/bench_study.py [--k 8] [--epochs 3] [--cache-runs] [--paper] [--out DIR]

The robustness study of K members (M5, noise-augmentation grid: one structure group)
on a synthetic data set, end to end through ``studies.robustness.run_study``, two ways
in the same process and on the same data:

Each variant runs in a fresh process, so each pays its own compilations:

* ``grid``: what the study does (``_store.train_models``: the K members train as one
  grid, ``engine.grid``; attacks through ``engine.parallel`` on every device);
* ``one by one``: the same study with training swapped for one ``train.train`` per
  member (``_store.train_or_load``, the study's path before the engine).

Both write member results; the record says whether their clean accuracies agree (the
grid equals one-by-one training up to float32 rounding of the batched computation).

``--cache-runs``: ``fairrobust run --preset tiny`` twice into new folders with a fresh
persistent compilation cache (subprocesses): the wall time of the second run over the
first (issue target: at most 0.6).

``--paper`` (on an accelerator): ``fairrobust run --preset paper --dataset DATASET``
end to end, wall time per stage (issue target: at most 15 minutes on one H100).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, environment, jax, np, table, write_results

from fairrobust.data.dataset import AudioDataset
from fairrobust.engine.runtime import Runtime
from fairrobust.studies import _store, robustness
from fairrobust.studies import config as study_config


def synthetic(n_speakers: int = 24, per_speaker: int = 10, seed: int = 0) -> AudioDataset:
    """Tones of 4 classes, 1 s at 8 kHz, speakers with gender / age, 60/20/20 splits."""
    rng = np.random.default_rng(seed)
    sr, t = 8000, 8000
    tt = np.arange(t) / sr
    waves, labels, speakers, splits = [], [], [], []
    for s in range(n_speakers):
        split = "train" if s % 5 < 3 else ("val" if s % 5 == 3 else "test")
        pitch = 1 + 0.05 * rng.standard_normal()
        for _ in range(per_speaker):
            c = int(rng.integers(4))
            f = 220.0 * (c + 1) * pitch
            w = 0.5 * np.sin(2 * np.pi * f * tt + rng.uniform(0, 6.28))
            waves.append(w + 0.05 * rng.standard_normal(t))
            labels.append(c)
            speakers.append(f"spk{s}")
            splits.append(split)
    spk = np.asarray([int(x[3:]) for x in speakers])
    return AudioDataset(
        name="synthetic-tones",
        waveforms=np.clip(np.asarray(waves, np.float32), -1, 1),
        labels=np.asarray(labels, np.int32),
        class_names=("c0", "c1", "c2", "c3"),
        speakers=np.asarray(speakers),
        splits=np.asarray(splits),
        attributes={
            "gender": np.where(spk % 2 == 0, "female", "male"),
            "age": np.asarray(["20s", "40s", "60s"])[spk % 3],
        },
        sample_rate=sr,
        paths=np.asarray([f"clip{i}.wav" for i in range(len(labels))]),
    )


def _one_by_one(dataset, configs, folders, *, resume, progress, runtime=None):
    """``_store.train_models`` as the study trained before the engine: one run each."""
    rt = runtime if runtime is not None else Runtime.create()
    out = []
    for c, f in zip(configs, folders, strict=True):
        t = _store.train_or_load(dataset, c, f, resume=resume, progress=progress)
        out.append(dataclasses.replace(t, apply_fn=_logits(rt.eval_model(t.model))))
    return out


def _logits(model):
    from fairrobust import models

    return models.logits_fn(model)


def bench_config(k: int, epochs: int):
    """The K-member robustness config of the benchmark (one structure group)."""
    cfg = dataclasses.replace(
        study_config.preset("robustness", "tiny"),
        models=("m5",),
        at_eps=(0.0,),
        noise_std=tuple(float(v) for v in np.linspace(0.0, 0.07, k)),
        preprocess=("none",),
        epochs=epochs,
        width=16,
        attack_steps=10,
        attack_eps=(0.001, 0.01, 0.05),
        max_examples=64,
        bootstrap_resamples=0,
    )
    return cfg


def run_variant(variant: str, k: int, epochs: int) -> dict:
    """One variant in this (fresh) process: wall time and the members' clean accuracy."""
    cfg = bench_config(k, epochs)
    if variant == "one by one":
        robustness.train_models = _one_by_one  # the study's training step, swapped
    ds = synthetic()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = robustness.run_study(ds, cfg, tmp, progress=False, make_figures=False)
        wall = time.perf_counter() - t0
    return {
        "variant": variant,
        "members": len(res.members),
        "wall_s": wall,
        "clean_accuracy": [m.clean_accuracy for m in res.members],
    }


def study_rows(k: int, epochs: int) -> tuple[list[dict], dict]:
    """Both variants, each in a fresh process (each pays its own compilations)."""
    rows = []
    for variant in ("one by one", "grid"):
        cmd = [sys.executable, __file__, "--variant", variant, "--k", str(k)]
        proc = subprocess.run(
            [*cmd, "--epochs", str(epochs)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "FAIRROBUST_NO_PROGRESS": "1"},
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for r in rows:
        r["speedup"] = rows[0]["wall_s"] / r["wall_s"]
    accs = [np.asarray(r.pop("clean_accuracy")) for r in rows]
    diff = float(np.max(np.abs(accs[1] - accs[0])))
    return rows, {
        "max_abs_clean_accuracy_diff": diff,
        "config": bench_config(k, epochs).to_dict(),
    }


def _timed_run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fairrobust", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.perf_counter() - t0


def cache_rows() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FAIRROBUST_NO_PROGRESS": "1"}
        env["FAIRROBUST_COMPILE_CACHE"] = str(Path(tmp) / "jax-cache")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        first = _timed_run(["--preset", "tiny", "--out", f"{tmp}/a", "--no-progress"], env)
        second = _timed_run(["--preset", "tiny", "--out", f"{tmp}/b", "--no-progress"], env)
        entries = len(list((Path(tmp) / "jax-cache").glob("*-cache")))
    rows.append({"run": "first (cache empty)", "wall_s": first, "ratio": 1.0})
    rows.append({"run": "second (new folder)", "wall_s": second, "ratio": second / first})
    print(f"cache entries: {entries}")
    return rows


def paper_rows(dataset: str, data_dir: str | None) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "paper"
        args = ["--preset", "paper", "--out", str(out), "--no-progress", "--dataset", dataset]
        if data_dir:
            args += ["--data-dir", data_dir]
        wall = _timed_run(args, {**os.environ, "FAIRROBUST_NO_PROGRESS": "1"})
        timings = json.loads((out / "run.json").read_text())["timings_seconds"]
    return [{"stage": k, "seconds": v} for k, v in timings.items()] + [
        {"stage": "process wall", "seconds": wall}
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cache-runs", action="store_true")
    ap.add_argument("--paper", action="store_true")
    ap.add_argument("--dataset", default="bundled")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:  # a child process of study_rows
        print(json.dumps(run_variant(args.variant, args.k, args.epochs)))
        return
    env = environment()
    print(f"device: {env['device']}  load: {env['load_avg_1m_start']:.2f}")
    payload: dict = {"devices": len(jax.devices())}
    rows, info = study_rows(args.k, args.epochs)
    print(table(rows, ["variant", "members", "wall_s", "speedup"]))
    print(f"max |clean accuracy grid - one by one| = {info['max_abs_clean_accuracy_diff']:.3g}")
    payload.update(study=rows, **info)
    if args.cache_runs:
        crows = cache_rows()
        print(table(crows, ["run", "wall_s", "ratio"]))
        payload["compile_cache"] = crows
    if args.paper:
        prows = paper_rows(args.dataset, args.data_dir)
        print(table(prows, ["stage", "seconds"]))
        payload["paper"] = prows
    print(write_results("study", payload, args.out))


if __name__ == "__main__":
    main()
