"""PRNG helpers: accept a typed key (or legacy raw key) or an int seed."""
from __future__ import annotations

import numbers

import jax
import numpy as np


def as_key(key_or_seed, name: str = "key_or_seed"):
    """A typed PRNG key from an int seed, a typed key or a legacy ``uint32[2]`` key."""
    if isinstance(key_or_seed, bool):
        raise TypeError(f"{name} must be a jax.random.key or an int seed, got bool")
    if isinstance(key_or_seed, numbers.Integral):
        return jax.random.key(int(key_or_seed))
    if isinstance(key_or_seed, (jax.Array, np.ndarray)) or hasattr(key_or_seed, "dtype"):
        dtype = key_or_seed.dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            if key_or_seed.shape != ():
                raise ValueError(f"{name} must be a single key, got key array of shape {key_or_seed.shape}")
            return key_or_seed
        if dtype == np.uint32 and key_or_seed.shape == (2,):
            return jax.random.wrap_key_data(key_or_seed)
    raise TypeError(f"{name} must be a jax.random.key(...) or an int seed, got {type(key_or_seed).__name__}")


def numpy_rng(key_or_seed, name: str = "key_or_seed") -> np.random.Generator:
    """A numpy Generator seeded deterministically from a key or seed (for host-side sampling)."""
    key = as_key(key_or_seed, name)
    bits = np.asarray(jax.random.bits(key, (4,), dtype=np.uint32))
    return np.random.default_rng([int(b) for b in bits])
