"""Input checks shared by the attacks (on top of :mod:`jadv._checks`)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jadv._checks import (check_labels, check_nonempty_batch, check_nonnegative, check_norm, check_scalar,
                          is_concrete)


def num_classes(logits_fn, x) -> int:
    """Number of classes of ``logits_fn`` from its output shape (no computation: ``eval_shape``)."""
    out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)))
    if len(out.shape) != 2 or out.shape[0] != jnp.shape(x)[0]:
        raise ValueError(f"logits_fn must map x[B, ...] to logits[B, K]; got output shape {out.shape} "
                         f"for input shape {jnp.shape(x)}")
    return int(out.shape[1])


def check_key(key, name: str = "key"):
    if key is None:
        raise TypeError(f"{name} is required: pass a PRNG key, e.g. jax.random.key(0)")
    if not (jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key)
            or (jnp.result_type(key) == jnp.uint32 and jnp.shape(key)[-1:] == (2,))):
        raise TypeError(f"{name} must be a PRNG key from jax.random.key, got {jnp.result_type(key)}")
    return key


def check_eps(eps, norm: str, x) -> None:
    """eps must be finite, >= 0 and not beyond the box (Linf <= 1, L2 <= sqrt(d))."""
    check_nonnegative("eps", eps)
    if is_concrete(eps):
        d = math.prod(jnp.shape(x)[1:])
        bound = 1.0 if norm == "linf" else math.sqrt(d)
        if np.any(np.asarray(eps, np.float64) > bound + 1e-6):
            raise ValueError(f"eps={eps!r} is beyond the [0, 1] box for norm {norm!r} "
                             f"(largest meaningful value {bound:.4g} for inputs of shape {jnp.shape(x)[1:]})")


EPS_SWEEP_HINT = ("an attack takes one radius for the whole batch; for several radii vmap over eps, "
                  "jax.vmap(lambda e: attack(..., eps=e))(eps_grid), or use jadv.attacks.robust_accuracy_curve")


def check_scalar_eps(eps) -> None:
    """eps must be one real scalar (a Python number or a 0-d array, traced under vmap/jit is fine)."""
    check_scalar("eps", eps, EPS_SWEEP_HINT)


def check_images_np(x, name: str = "x", ndim=4) -> None:
    """Like :func:`jadv._checks.check_images`, but the value check runs in NumPy so it also works
    on concrete arrays closed over inside ``jit`` (where ``jnp.min`` would be staged)."""
    if ndim is not None and jnp.ndim(x) != ndim:
        raise ValueError(f"{name} must have {ndim} dims (batch, height, width, channels), got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name} must be a float array in [0, 1], got dtype {jnp.result_type(x)}; "
                        "convert uint8 images with jadv.data.to_float")
    if is_concrete(x) and np.size(x):
        v = np.asarray(x)
        lo, hi = float(v.min()), float(v.max())
        if lo < 0.0 or hi > 1.0 or not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} must lie in [0, 1] (normalisation belongs inside the model), "
                             f"got values in [{lo:.4g}, {hi:.4g}]")


def check_labels_np(y, batch_size: int, k: int | None = None, name: str = "y") -> None:
    """Shape/dtype via :func:`jadv._checks.check_labels`, range check in NumPy (see above)."""
    check_labels(y, batch_size, None, name=name)
    if k is not None and is_concrete(y) and np.size(y):
        v = np.asarray(y)
        lo, hi = int(v.min()), int(v.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"{name} must lie in [0, {k}), got labels in [{lo}, {hi}]")


def check_attack_inputs(logits_fn, x, y, eps, norm, allowed_norms=("linf", "l2")) -> int:
    """Check images (non-empty batch), labels, norm and eps (one scalar); return the number of classes."""
    if not callable(logits_fn):
        raise TypeError(f"logits_fn must be callable x -> logits, got {type(logits_fn).__name__}")
    check_norm(norm, allowed_norms)
    check_images_np(x)
    check_nonempty_batch(x)
    check_scalar_eps(eps)
    k = num_classes(logits_fn, x)
    check_labels_np(y, jnp.shape(x)[0], k)
    check_eps(eps, norm, x)
    return k
