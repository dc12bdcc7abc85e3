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


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data folder where only the files a test creates are found: no shared data, no TFDS, a
    private cache. Returns the data folder (``tmp_path / "data"``)."""
    from jadv.data import registry, tfds_source

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("JADV_DATA_DIR", raising=False)
    monkeypatch.setenv("JADV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "_REPO_ROOT", str(tmp_path / "repo"))
    monkeypatch.setattr(registry, "DEBIAN_FASHION_MNIST", str(tmp_path / "debian-fashion"))
    monkeypatch.setattr(tfds_source, "tfds_available", lambda: False)
    data = tmp_path / "data"
    data.mkdir()
    return data
