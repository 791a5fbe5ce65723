"""Test set-up: CPU JAX, strict rank promotion, silenced progress bars, isolated caches."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("FAIRROBUST_NO_PROGRESS", "1")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache so tests never share state."""
    monkeypatch.setenv("FAIRROBUST_CACHE", str(tmp_path_factory.mktemp("cache")))
