"""Input validation shared by every public function.

Each check raises a ``ValueError``/``TypeError`` that says what was wrong and what is allowed.
Checks on array *values* (range of pixels, label range) need concrete arrays: they are skipped
when called on tracers inside ``jit``, where only shapes can be checked.
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ("linf", "l2", "l1")


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def check_norm(norm: str, allowed=("linf", "l2")) -> str:
    if norm not in allowed:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(map(repr, allowed))}")
    return norm


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(repr, allowed))}")


def check_nonnegative(name: str, value) -> None:
    """A scalar (or array of scalars, e.g. an eps grid) must be >= 0 and finite."""
    if is_concrete(value):
        v = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def check_scalar(name: str, value, hint: str = "") -> None:
    """``value`` must be a real scalar: a Python/NumPy number or a 0-d (possibly traced) array.

    Only the type and the static shape are looked at, so this is safe on tracers inside
    ``jit``/``vmap`` (a vmapped eps is a 0-d tracer per call). ``hint`` is appended to the
    shape error (e.g. how to sweep several values).
    """
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a real number (a float or a 0-d array), got {type(value).__name__} {value!r}")
    try:
        shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
    except Exception:  # objects NumPy cannot size
        raise TypeError(f"{name} must be a real number (a float or a 0-d array), got {type(value).__name__}") from None
    if shape != ():
        raise ValueError(f"{name} must be a scalar, got an array of shape {shape}" + (f"; {hint}" if hint else ""))
    try:
        dtype = jnp.result_type(value)
    except Exception:
        raise TypeError(f"{name} must be a real number (a float or a 0-d array), got {type(value).__name__}") from None
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)) \
            or jnp.issubdtype(dtype, jnp.bool_):
        raise TypeError(f"{name} must be a real number (integer or floating dtype), got dtype {dtype}")


def check_nonempty_batch(x, name: str = "x") -> None:
    """The leading (batch) axis of ``x`` must hold at least one example (a static shape check)."""
    shape = tuple(jnp.shape(x))
    if len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); an attack needs at least one example, "
                         "so drop empty batches before calling it")


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_images(x, name: str = "x", ndim: int | None = 4) -> None:
    """Images must be floating point, NHWC (when ``ndim=4``) and, if concrete, inside [0, 1]."""
    if ndim is not None and jnp.ndim(x) != ndim:
        raise ValueError(f"{name} must have {ndim} dims (batch, height, width, channels), got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name} must be a float array in [0, 1], got dtype {jnp.result_type(x)}; "
                        "convert uint8 images with jadv.data.to_float")
    if is_concrete(x):
        # numpy, not jnp: inside a traced function jnp ops on a closed-over constant give tracers.
        arr = np.asarray(x)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0 or not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} must lie in [0, 1] (normalisation belongs inside the model), "
                             f"got values in [{lo:.4g}, {hi:.4g}]")


def check_labels(y, batch_size: int, num_classes: int | None = None, name: str = "y") -> None:
    """Labels must be a 1-D integer array of length ``batch_size`` with values in [0, num_classes)."""
    if jnp.ndim(y) != 1:
        raise ValueError(f"{name} must be 1-D integer class indices, got shape {jnp.shape(y)}")
    if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {jnp.result_type(y)}")
    if jnp.shape(y)[0] != batch_size:
        raise ValueError(f"{name} has {jnp.shape(y)[0]} labels but the batch has {batch_size} examples")
    if num_classes is not None and is_concrete(y) and jnp.size(y) > 0:
        arr = np.asarray(y)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got labels in [{lo}, {hi}]")


# The batch-norm modes, one vocabulary for attacks, objectives, evaluation and analyses:
# "eval": running statistics, nothing updated (every test-time attack);
# "train_no_update": batch statistics of each forward pass, running statistics left unchanged;
# "train": batch statistics, running statistics updated by every forward pass (training attacks only).
BN_MODES = ("eval", "train_no_update", "train")
# names used before the vocabulary was unified -> the current name (for a clear error)
_RENAMED_BN_MODES = {"batch": "train_no_update"}


def check_bn_mode(name: str, value, allowed=BN_MODES) -> str:
    """``value`` if it is one of ``allowed`` (a subset of :data:`BN_MODES`); else a ValueError naming
    what is allowed, and the new name of an old one ("batch" is now "train_no_update")."""
    if value in allowed:
        return value
    options = ", ".join(map(repr, allowed))
    new = _RENAMED_BN_MODES.get(value) if isinstance(value, str) else None
    if new is not None:
        raise ValueError(f"{name} {value!r} is now called {new!r} (batch statistics, running statistics "
                         f"left unchanged); allowed: {options}")
    why = (" ('train', running statistics updated by every forward pass, exists for the training attacks "
           "only)") if value == "train" else ""
    raise ValueError(f"unknown {name} {value!r}; allowed here: {options}{why}")
