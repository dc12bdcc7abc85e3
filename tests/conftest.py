"""Test set-up: 8 fake CPU devices (so sharding is exercised on one CPU) and a `key` fixture.

The device count must be set before JAX initialises its backends, hence at import time here.
"""
import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def key():
    """A fresh typed PRNG key for every test."""
    return jax.random.key(0)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_by_path(path: str, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_repo_module():
    """``load_repo_module("configs/sharpness.py", "name")``: a repo file loaded by path (configs
    are not a package, and share their names with the study modules)."""
    return _load_by_path
