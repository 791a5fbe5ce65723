"""Both studies end to end on the real bundled clips, at tiny scale (default suite).

The bundled WUW keyword clips are subsampled (every split kept, speaker-disjoint
as loaded) and the studies use the run's hidden ``tiny`` settings, so this checks
the real data path -- decoding, splits, groups, training, attacks, sampling,
tables -- in well under a minute; the numbers themselves mean nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairrobust.data import load_bundled
from fairrobust.studies import config as study_config
from fairrobust.studies import rejection as rj
from fairrobust.studies import robustness as rb


@pytest.fixture(scope="module")
def bundled_subset():
    ds = load_bundled()
    rng = np.random.default_rng(0)
    keep = np.concatenate(
        [
            rng.choice(np.flatnonzero(ds.splits == name), size=k, replace=False)
            for name, k in (("train", 120), ("val", 30), ("test", 40))
        ]
    )
    return ds.select(np.sort(keep))


@pytest.mark.slow  # 24 s of CI time; the rejection study below keeps the real-data path
def test_robustness_study_on_bundled_data(bundled_subset, tmp_path):
    cfg = study_config.preset("robustness", "tiny")
    res = rb.run_study(bundled_subset, cfg, tmp_path, progress=False, make_figures=False)
    models = res.tables["models"]
    assert len(models) == 2  # m5 x AT {0, 0.01}
    for row in models:
        assert 0.0 <= row["clean_accuracy"] <= 1.0
        assert row["auc_acc"] >= 0.0
    dp = {row["attribute"] for row in res.tables["defense_parity"]}
    assert dp == set(bundled_subset.attributes)


def test_rejection_study_on_bundled_data(bundled_subset, tmp_path):
    cfg = study_config.preset("rejection", "tiny")
    res = rj.run_study(bundled_subset, cfg, tmp_path, progress=False)
    labels = [r["label"] for r in res.tables["auc_fpr"]]
    assert labels == ["RS N=10", "RS N=100", "NR"]
    overall = {r["label"]: r["overall"] for r in res.tables["auc_fpr"]}
    assert all(0.0 <= v <= 1.0 for v in overall.values())
    assert {r["attribute"] for r in res.tables["fpr_parity"]} == set(bundled_subset.attributes)
