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
