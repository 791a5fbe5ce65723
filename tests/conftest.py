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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    A whole-suite session otherwise keeps every executable it ever compiled; each maps
    memory regions, and near ``vm.max_map_count`` (65,530 by default) XLA:CPU's compiler
    crashed (SIGSEGV in ``backend_compile_and_load``) late in the suite.
    """
    yield
    jax.clear_caches()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache so tests never share state."""
    monkeypatch.setenv("FAIRROBUST_CACHE", str(tmp_path_factory.mktemp("cache")))
