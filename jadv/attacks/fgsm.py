"""Fast gradient sign method (Goodfellow et al. 2015, "Explaining and Harnessing Adversarial
Examples") and its L2 variant (fast gradient method), with the optional random start of
Wong et al. 2020 ("Fast is better than free", FGSM-RS)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jadv._checks import check_choice, check_nonnegative, check_scalar
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import check_attack_inputs, check_key, check_labels_np
from jadv.attacks.pgd import attack_objective
from jadv.attacks.projections import DEFAULT_INITS, init_point, project, step_direction

__all__ = ["fgsm"]


def fgsm(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, eps: Scalar, norm: str = "linf",
         key: jax.Array | None = None, random_start: bool = False, step_size: Scalar | None = None,
         loss: str = "ce", targeted: bool = False, y_target: ArrayLike | None = None) -> jax.Array:
    """One gradient step: ``x_adv = P(x0 + a * sign(grad))`` (Linf) or ``P(x0 + a * g/||g||_2)`` (L2).

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]``. x: ``[B, H, W, C]`` in [0, 1]. y: ``[B]`` int.
      eps: radius, one scalar (may be traced; vmap over eps for several). norm: "linf" or "l2".
      key, random_start: with ``random_start=True`` (needs ``key``), ``x0`` is drawn uniformly in
        the Linf box / L2 ball around x ("uniform" / "ball" init) as in FGSM-RS; else ``x0 = x``.
      step_size: ``a``; defaults to ``eps`` (plain FGSM). FGSM-RS uses ``1.25 * eps``.
      loss: "ce", "margin" or "dlr". targeted/y_target: step toward ``y_target`` (minimise its loss).
    Returns: ``x_adv [B, H, W, C]`` in the eps-ball and [0, 1] (``stop_gradient`` applied).
    """
    k = check_attack_inputs(logits_fn, x, y, eps, norm)
    check_choice("loss", loss, ("ce", "margin", "dlr"))
    if step_size is None:
        step_size = eps
    check_scalar("step_size", step_size, "FGSM takes one step size for the whole batch")
    check_nonnegative("step_size", step_size)
    if targeted:
        if y_target is None:
            raise ValueError("targeted=True needs y_target (target labels [B])")
        check_labels_np(y_target, x.shape[0], k, name="y_target")
    elif y_target is not None:
        raise ValueError("y_target was given but targeted=False; pass targeted=True for a targeted attack")
    x = jnp.asarray(x)
    if random_start:
        check_key(key, "key (needed for random_start=True)")
        x0 = init_point(key, x, eps, norm, DEFAULT_INITS[norm])
    else:
        x0 = x
    objective = attack_objective(logits_fn, y, loss=loss, targeted=targeted, y_target=y_target)
    g = jax.grad(lambda xa: jnp.sum(objective(xa)[0]))(x0)
    return lax.stop_gradient(project(x0 + step_size * step_direction(g, norm), x, eps, norm))
