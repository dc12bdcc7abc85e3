"""Robust accuracy as a function of eps, and the eps-curve sanity checks of Carlini et al. 2019
("On evaluating adversarial robustness"): robust accuracy must not increase with eps, and must
reach ~0 at a very large eps.

* :func:`robust_accuracy_curve` computes robust accuracy for a grid of eps in one program (vmap
  over eps); jit it at the call site.
* :func:`eps_curve_flags` runs that curve on a grid plus one very large eps and flags the two
  failures (the per-check functions live in :mod:`jadv.attacks.masking_checks`).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jadv._checks import check_choice, check_norm
from jadv.attacks._validate import check_attack_inputs, check_eps, check_key
from jadv.attacks.apgd import apgd
from jadv.attacks.fgsm import fgsm
from jadv.attacks.masking_checks import accuracy_increases_with_eps, not_broken_at_large_eps
from jadv.attacks.pgd import pgd

__all__ = ["robust_accuracy_curve", "eps_curve_flags", "CURVE_ATTACKS"]

CURVE_ATTACKS = ("pgd", "fgsm", "apgd")


def robust_accuracy_curve(logits_fn: Callable, x: ArrayLike, y: ArrayLike, *, key: jax.Array,
                          eps_grid: ArrayLike, attack: str = "pgd", norm: str = "linf", steps: int = 10,
                          step_size_factor: float = 2.5, restarts: int = 1, loss: str = "ce",
                          init: str | None = None) -> jax.Array:
    """Robust accuracy at every eps of ``eps_grid``, vmapped over eps (one program; jit at the call site).

    Args:
      logits_fn: ``x -> logits``. x ``[B, H, W, C]``; y ``[B]``. key: PRNG key (the same key for every
        eps, so the curve equals separate calls with that key).
      eps_grid: ``[E]`` radii. attack: "pgd" (step ``step_size_factor * eps / steps``, init "uniform"
        for Linf / "ball" for L2 unless ``init`` is given), "fgsm" or "apgd" (``steps`` iterations).
      norm, steps, restarts, loss: passed to the attack.
    Returns: ``[E]`` float32 robust accuracies (clean errors count as errors).
    """
    check_choice("attack", attack, CURVE_ATTACKS)
    check_norm(norm)
    check_key(key)
    eps_grid = jnp.asarray(eps_grid, jnp.float32)
    if eps_grid.ndim != 1 or eps_grid.shape[0] < 1:
        raise ValueError(f"eps_grid must be a non-empty 1-D array of radii, got shape {eps_grid.shape}")
    check_attack_inputs(logits_fn, x, y, 0.0, norm)
    check_eps(eps_grid, norm, x)
    if init is None:
        init = "uniform" if norm == "linf" else "ball"

    def one(eps):
        if attack == "pgd":
            xa = pgd(logits_fn, x, y, key=key, eps=eps, step_size=step_size_factor * eps / steps, steps=steps,
                     norm=norm, restarts=restarts, init=init, loss=loss)
        elif attack == "fgsm":
            xa = fgsm(logits_fn, x, y, eps=eps, norm=norm, loss=loss)
        else:
            xa = apgd(logits_fn, x, y, key=key, eps=eps, steps=steps, norm=norm, loss=loss, restarts=restarts)
        return jnp.mean((jnp.argmax(logits_fn(xa), -1) == y).astype(jnp.float32))

    return jax.vmap(one)(eps_grid)


def eps_curve_flags(logits_fn: Callable, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps_grid: ArrayLike,
                    norm: str = "linf", attack: str = "pgd", steps: int = 10, large_eps: float | None = None,
                    init: str | None = None, warn: bool = True) -> dict:
    """Robust-accuracy curve sanity checks (Carlini et al. 2019), in one vmapped program.

    Runs :func:`robust_accuracy_curve` on ``eps_grid`` plus ``large_eps`` (default: the whole box,
    1.0 for Linf and sqrt(d) for L2) and returns ``{"eps_grid", "curve", "flags"}`` where ``flags``
    holds "accuracy_increases_with_eps" and "not_broken_at_large_eps" (see
    :func:`jadv.attacks.masking_checks.masking_flags`). ``init`` is passed to PGD (default:
    uniform / ball start).
    """
    if large_eps is None:
        large_eps = 1.0 if norm == "linf" else math.sqrt(math.prod(jnp.shape(x)[1:]))
    grid = jnp.concatenate([jnp.asarray(eps_grid, jnp.float32).reshape(-1), jnp.asarray([large_eps], jnp.float32)])
    curve = jax.jit(lambda xx, yy: robust_accuracy_curve(logits_fn, xx, yy, key=key, eps_grid=grid, attack=attack,
                                                         norm=norm, steps=steps, init=init))(jnp.asarray(x), jnp.asarray(y))
    curve = np.asarray(curve)
    flags = {}
    inc = accuracy_increases_with_eps(grid, curve)
    flags["accuracy_increases_with_eps"] = {"flag": inc, "value": [float(c) for c in curve],
                                            "message": "robust accuracy increases with eps somewhere on the curve"}
    nb = not_broken_at_large_eps(curve[-1])
    flags["not_broken_at_large_eps"] = {"flag": nb, "value": float(curve[-1]),
                                        "message": f"robust accuracy {float(curve[-1]):.2%} at eps={large_eps:g}, not ~0"}
    if warn:
        for name, v in flags.items():
            if v["flag"]:
                warnings.warn(f"gradient-masking check {name!r}: {v['message']}", stacklevel=2)
    return {"eps_grid": [float(e) for e in np.asarray(grid)], "curve": curve, "flags": flags}
