"""Large-epsilon targeted adversarial examples and interpolations (study 2).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019), Fig. 4: a targeted PGD attack with an epsilon far beyond the training radius turns images
of robust models into images with visible features of the target class, and the straight path
``x -> x_adv`` looks like a semantic morph. For standard models the same attack produces noise.

:func:`large_eps_examples` is a targeted PGD that *minimises* the cross-entropy towards
``y_target`` and returns, per example, the iterate with the lowest target loss (the start point
and every iterate are candidates). It is self-contained (rather than calling
``jadv.attacks.pgd``, whose "best" rule prefers successful iterates first): with a large eps the
question is how far towards the target class the image can be pushed, which the lowest loss
measures directly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jadv._checks import check_choice, check_images, check_labels, check_nonnegative, check_norm, check_positive_int
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks.projections import _bcast, init_point, project, step_direction

__all__ = ["large_eps_examples", "interpolate"]

_INITS = ("zero", "uniform")


def large_eps_examples(logits_fn: LogitsFn, x: ArrayLike, y_target: ArrayLike, *, key: jax.Array, eps: Scalar,
                       step_size: Scalar, steps: int, norm: str = "l2", init: str = "zero",
                       keep_best: bool = True) -> jax.Array:
    """Targeted PGD with a large radius that keeps each example's best iterate.

    Minimises ``CE(logits_fn(x_adv), y_target)`` over ``||x_adv - x|| <= eps`` and
    ``x_adv in [0, 1]``. L2 step: ``x <- x - step_size * g / ||g||``; L-inf step:
    ``x <- x - step_size * sign(g)``; then projection onto the ball and the box. The loop is a
    ``lax.fori_loop`` (the caller may jit).

    Args:
      logits_fn: ``x [B,H,W,C] -> logits [B,K]`` (batch norm in eval mode).
      x: ``[B, H, W, C]`` images in [0, 1]. y_target: ``[B]`` int target classes.
      key: PRNG key, used by ``init="uniform"`` (may be None with ``init="zero"``).
      eps: radius (>= 0), e.g. L2 40 for 224x224 images or 4 for MNIST in the paper's figures.
      step_size: step length (>= 0). steps: number of steps (>= 1). norm: "l2" or "linf".
      init: "zero" (start at x, the MadryLab default for these figures) or "uniform" (random
        point in the ball).
      keep_best: return, per example, the iterate with the lowest target loss among the start
        point and all ``steps`` iterates (default); False returns the last iterate.

    Returns:
      ``[B, H, W, C]`` float32 adversarial images inside the eps-ball around x and [0, 1].
    """
    check_images(x)
    check_labels(y_target, jnp.shape(x)[0], name="y_target")
    check_norm(norm)
    check_choice("init", init, _INITS)
    check_nonnegative("eps", eps)
    check_nonnegative("step_size", step_size)
    steps = check_positive_int("steps", steps)
    if init == "uniform" and key is None:
        raise ValueError("init='uniform' needs a PRNG key")
    x = jnp.asarray(x, jnp.float32)

    def losses(xa):
        logits = logits_fn(xa)
        if jnp.ndim(logits) != 2 or logits.shape[0] != xa.shape[0]:
            raise ValueError(f"logits_fn must return [B, K] logits, got shape {jnp.shape(logits)}")
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y_target)

    def total(xa):
        l = losses(xa)
        return jnp.sum(l), l

    grad_fn = jax.grad(total, has_aux=True)
    # random start: uniform in the Linf box, uniform in the L2 ball
    x0 = x if init == "zero" else init_point(key, x, eps, norm, "uniform" if norm == "linf" else "ball")

    def keep(xa, l, best_x, best_l):
        better = l < best_l
        return jnp.where(_bcast(better, xa), xa, best_x), jnp.where(better, l, best_l)

    def body(_, carry):
        xa, best_x, best_l = carry
        g, l = grad_fn(xa)
        best_x, best_l = keep(xa, l, best_x, best_l)
        xa = project(xa - step_size * step_direction(g, norm), x, eps, norm)
        return xa, best_x, best_l

    init_carry = (x0, x0, jnp.full((x.shape[0],), jnp.inf, jnp.float32))
    xa, best_x, best_l = lax.fori_loop(0, steps, body, init_carry)
    if not keep_best:
        return lax.stop_gradient(xa)
    best_x, _ = keep(xa, losses(xa), best_x, best_l)
    return lax.stop_gradient(best_x)


def interpolate(x: ArrayLike, x_adv: ArrayLike, alphas: ArrayLike) -> jax.Array:
    """Images on the straight path ``(1 - alpha) x + alpha x_adv``.

    Args:
      x, x_adv: ``[B, H, W, C]`` images of the same shape. alphas: ``[A]`` coefficients (usually
        in [0, 1]; values outside extrapolate and may leave [0, 1]).

    Returns:
      ``[A, B, H, W, C]`` float32.
    """
    if jnp.shape(x) != jnp.shape(x_adv):
        raise ValueError(f"x and x_adv must have the same shape, got {jnp.shape(x)} and {jnp.shape(x_adv)}")
    if jnp.ndim(alphas) != 1:
        raise ValueError(f"alphas must be 1-D [A], got shape {jnp.shape(alphas)}")
    a = jnp.asarray(alphas, jnp.float32).reshape((-1,) + (1,) * jnp.ndim(x))
    x = jnp.asarray(x, jnp.float32)
    return (1.0 - a) * x[None] + a * jnp.asarray(x_adv, jnp.float32)[None]
