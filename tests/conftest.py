"""Test set-up: CPU JAX, strict rank promotion, silenced progress bars, isolated caches."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("FAIRROBUST_NO_PROGRESS", "1")
# In-process CLI calls must not turn on JAX's persistent cache for the whole session;
# the cache is tested in subprocesses (tests/test_runtime.py).
os.environ.setdefault("FAIRROBUST_COMPILE_CACHE", "off")

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache so tests never share state."""
    monkeypatch.setenv("FAIRROBUST_CACHE", str(tmp_path_factory.mktemp("cache")))
