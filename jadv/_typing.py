"""Names used in the public signatures' type hints (annotations only: the modules use
``from __future__ import annotations``, so none of this is evaluated at run time).

Arrays that come out of a function are ``jax.Array``; arrays a caller may pass as NumPy arrays are
``jax.typing.ArrayLike``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.typing import ArrayLike

__all__ = ["ArrayLike", "LogitsFn", "PyTree", "Scalar"]

# x [B, H, W, C] float in [0, 1] -> logits [B, K]: a Linen apply closure, an NNX module, ...
LogitsFn = Callable[[jax.Array], jax.Array]
# a pytree of arrays: parameters, batch statistics, directions in parameter space
PyTree = Any
# a real scalar that may be traced (eps, step sizes under vmap or a warm-up schedule)
Scalar = float | jax.Array
