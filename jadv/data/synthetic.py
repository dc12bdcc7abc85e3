"""Generated data: the Tsipras et al. (ICLR 2019) robust/non-robust feature model."""
from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from jadv._checks import check_positive_int, is_concrete
from jadv.data._keys import as_key


def tsipras(key_or_seed: jax.Array | int, n: int, *, d: int = 1000, p: float = 0.95,
            eta: float | None = None) -> tuple[jax.Array, jax.Array]:
    """Sample the data model of Tsipras et al., "Robustness May Be at Odds with Accuracy", eq. 3.

    ``y`` is uniform on {-1, +1}; ``x_1 = +y`` with probability ``p`` and ``-y`` otherwise (the
    robust but only moderately predictive feature); ``x_2 .. x_{d+1}`` are i.i.d. ``N(eta * y, 1)``
    (weakly predictive, non-robust features), independent of ``x_1`` given ``y``.

    Args:
      key_or_seed: ``jax.random.key(...)`` or an int seed.
      n: number of samples (>= 1, static).
      d: number of weak features (>= 1, static); x has ``d + 1`` columns.
      p: probability that ``x_1`` agrees with ``y``; ``0.5 <= p <= 1``.
      eta: mean shift of the weak features; default ``4 / sqrt(d)``. Must be finite.

    Returns:
      ``(x, y)``: ``float32 [n, d + 1]`` and ``int32 [n]`` with values in {-1, +1}. For 0/1 class
      indices use ``(y + 1) // 2``.

    Raises:
      TypeError/ValueError: non-int or < 1 ``n``/``d``, ``p`` outside [0.5, 1], non-finite ``eta``.
    """
    key = as_key(key_or_seed)
    n = check_positive_int("n", n)
    d = check_positive_int("d", d)
    if is_concrete(p):
        pv = float(np.asarray(p))
        if not (0.5 <= pv <= 1.0):
            raise ValueError(f"p must satisfy 0.5 <= p <= 1, got {p!r}")
    if eta is None:
        eta = 4.0 / math.sqrt(d)
    elif is_concrete(eta):
        if not isinstance(eta, (numbers.Real, np.ndarray, jax.Array)) or not np.isfinite(np.asarray(eta)).all():
            raise ValueError(f"eta must be a finite number, got {eta!r}")
    k_y, k_robust, k_weak = jax.random.split(key, 3)
    y = jnp.where(jax.random.bernoulli(k_y, 0.5, (n,)), 1, -1).astype(jnp.int32)
    agree = jax.random.bernoulli(k_robust, p, (n,))
    yf = y.astype(jnp.float32)
    x1 = jnp.where(agree, yf, -yf)
    weak = jnp.asarray(eta, jnp.float32) * yf[:, None] + jax.random.normal(k_weak, (n, d), jnp.float32)
    return jnp.concatenate([x1[:, None], weak], axis=1), y
