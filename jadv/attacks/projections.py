"""Per-example norms, projections onto the eps-ball and the [0, 1] box, step directions and
random initialisations.

All functions act per example: norms reduce over every non-batch axis, so they vmap over
restarts, epsilons and models. ``eps`` may be a Python float or a (traced) scalar.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jadv._typing import Scalar

__all__ = ["per_example_norm", "project", "clip_box", "step_direction", "init_point", "INITS", "DEFAULT_INITS",
           "resolve_init"]

# init name -> norms it is defined for (see robustness-libraries.md section 4.3)
INITS = {
    "zero": ("linf", "l2"),
    "uniform": ("linf",),           # delta ~ U(-eps, eps) i.i.d. (Madry et al., fast_adversarial, ...)
    "sphere": ("l2",),              # eps * n / ||n||, n ~ N(0, I) (MadryLab/robustness)
    "uniform_radius": ("l2",),      # r * eps * n / ||n||, r ~ U(0, 1) (AWP, torchattacks; not uniform in the ball)
    "ball": ("l2",),                # uniform in the L2 ball (Foolbox): radius eps * U^(1/d)
    "apgd": ("linf", "l2"),         # AutoAttack APGD: linf eps * t/||t||_inf, t ~ U(-1,1); l2 eps * n/||n||_2
    "normal_0.001": ("linf", "l2"),  # TRADES / MART training: x + 0.001 * N(0, I)
}

# ``init=None`` in :func:`jadv.attacks.pgd` / :func:`pgd_generic` / :func:`init_point` means the norm's
# default random start: uniform in the Linf box (Madry et al. 2018) and uniform in the L2 ball
# (Foolbox), the same starts as ``robust_accuracy_curve`` and FGSM-RS (``fgsm(random_start=True)``).
DEFAULT_INITS = {"linf": "uniform", "l2": "ball"}


def _bcast(s, v):
    """Reshape a per-example vector ``[B]`` to broadcast against ``v[B, ...]``."""
    return jnp.reshape(s, s.shape + (1,) * (v.ndim - s.ndim))


def per_example_norm(v: jax.Array, norm: str) -> jax.Array:
    """Norm of each example of ``v[B, ...]`` over all non-batch axes; returns ``[B]``."""
    axes = tuple(range(1, v.ndim))
    if norm == "linf":
        return jnp.max(jnp.abs(v), axis=axes)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(v * v, axis=axes))
    if norm == "l1":
        return jnp.sum(jnp.abs(v), axis=axes)
    raise ValueError(f"unknown norm {norm!r}; allowed: 'linf', 'l2', 'l1'")


def clip_box(x):
    """Clip to the image box [0, 1]."""
    return jnp.clip(x, 0.0, 1.0)


def project(x_adv: jax.Array, x: jax.Array, eps: Scalar, norm: str) -> jax.Array:
    """Project ``x_adv`` onto the ``eps``-ball around ``x`` and then onto the [0, 1] box.

    Linf: ``delta = clip(x_adv - x, -eps, eps)``. L2: ``delta * min(1, eps / ||delta||_2)`` (rescale
    only when outside the ball, never onto the sphere). Then ``clip(x + delta, 0, 1)``; the box clip
    moves coordinates toward ``x`` so the norm cannot grow (Madry et al. 2018; section 4.2).
    Shapes: ``x_adv, x [B, ...]``, eps scalar or ``[B]``. Returns ``[B, ...]``.
    """
    delta = x_adv - x
    eps = jnp.asarray(eps, x.dtype)
    if norm == "linf":
        e = _bcast(eps, delta) if eps.ndim else eps
        delta = jnp.clip(delta, -e, e)
    elif norm == "l2":
        n = per_example_norm(delta, "l2")
        factor = jnp.minimum(1.0, eps / jnp.maximum(n, 1e-20))
        delta = delta * _bcast(factor, delta)
    else:
        raise ValueError(f"unknown norm {norm!r}; allowed: 'linf', 'l2'")
    return clip_box(x + delta)


def step_direction(g, norm: str, tiny: float = 1e-10):
    """Steepest-ascent direction: ``sign(g)`` (Linf; 0 where g = 0) or ``g / (||g||_2 + tiny)`` (L2)."""
    if norm == "linf":
        return jnp.sign(g)
    if norm == "l2":
        return g / (_bcast(per_example_norm(g, "l2"), g) + tiny)
    raise ValueError(f"unknown norm {norm!r}; allowed: 'linf', 'l2'")


def _unit_l2(n):
    return n / (_bcast(per_example_norm(n, "l2"), n) + 1e-12)


def init_point(key: jax.Array, x: jax.Array, eps: Scalar, norm: str, init: str | None) -> jax.Array:
    """Starting point of an attack, by name (robustness-libraries.md section 4.3), inside the ball and box.

    ``init`` in :data:`INITS`: "zero", "uniform" (Linf), "sphere", "uniform_radius", "ball" (L2),
    "apgd" (AutoAttack's own), "normal_0.001" (TRADES); ``None``: the norm's default
    (:data:`DEFAULT_INITS`). Returns ``x_init [B, ...]`` clipped to [0, 1]
    (and projected onto the ball, which only matters for "normal_0.001").
    Raises ValueError for an unknown init or one not defined for ``norm``.
    """
    init = resolve_init(init, norm)
    eps = jnp.asarray(eps, x.dtype)
    if init == "zero":
        return x
    if init == "uniform":
        delta = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    elif init == "normal_0.001":
        delta = 0.001 * jax.random.normal(key, x.shape, x.dtype)
        return project(x + delta, x, eps, norm)
    elif init == "apgd" and norm == "linf":
        t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
        delta = eps * t / (_bcast(per_example_norm(t, "linf"), t) + 1e-12)
    else:  # l2 directions
        k1, k2 = jax.random.split(key)
        u = _unit_l2(jax.random.normal(k1, x.shape, x.dtype))
        if init in ("sphere", "apgd"):
            r = jnp.ones((x.shape[0],), x.dtype)
        elif init == "uniform_radius":
            r = jax.random.uniform(k2, (x.shape[0],), x.dtype)
        else:  # ball
            d = math.prod(x.shape[1:])
            r = jax.random.uniform(k2, (x.shape[0],), x.dtype) ** (1.0 / d)
        delta = u * _bcast(r, u) * eps
    return clip_box(x + delta)


def check_init(init: str, norm: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {', '.join(map(repr, INITS))}")
    if norm not in INITS[init]:
        raise ValueError(f"init {init!r} is not defined for norm {norm!r}; it supports {INITS[init]}")


def resolve_init(init: str | None, norm: str) -> str:
    """``init`` itself when it is defined for ``norm``; ``None`` -> the norm's default
    (:data:`DEFAULT_INITS`: "uniform" for Linf, "ball" for L2). An explicit init that does not fit
    the norm (e.g. "uniform" with L2) is a ValueError, never silently replaced."""
    if init is None:
        if norm not in DEFAULT_INITS:
            raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(map(repr, DEFAULT_INITS))}")
        return DEFAULT_INITS[norm]
    if not isinstance(init, str):
        raise TypeError(f"init must be a name from {', '.join(map(repr, INITS))} or None, "
                        f"got {type(init).__name__}")
    if init in INITS and norm in DEFAULT_INITS and norm not in INITS[init]:
        fits = [name for name, norms in INITS.items() if norm in norms]
        raise ValueError(f"init {init!r} is not defined for norm {norm!r}; it supports {INITS[init]}. "
                         f"For {norm!r} use one of {', '.join(map(repr, fits))}, or init=None for the "
                         f"norm's default ({DEFAULT_INITS[norm]!r})")
    check_init(init, norm)
    return init
