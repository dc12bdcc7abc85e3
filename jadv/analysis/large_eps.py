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

__all__ = ["large_eps_examples", "interpolate"]

_INITS = ("zero", "uniform")


def _per_example_norm(v, norm):
    flat = v.reshape(v.shape[0], -1)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(flat ** 2, axis=1))
    return jnp.max(jnp.abs(flat), axis=1)


def _bcast(a, x):
    return a.reshape((-1,) + (1,) * (x.ndim - 1))


def _project(xa, x, eps, norm):
    d = xa - x
    if norm == "linf":
        d = jnp.clip(d, -eps, eps)
    else:
        n = _per_example_norm(d, "l2")
        d = d * _bcast(jnp.minimum(1.0, eps / jnp.maximum(n, 1e-12)), d)
    # clipping to the box only shrinks |delta| coordinate-wise, so the result stays in the ball
    return jnp.clip(x + d, 0.0, 1.0)


def _random_start(key, x, eps, norm):
    if norm == "linf":
        d = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps
    else:  # uniform in the L2 ball: Gaussian direction, radius eps * U^(1/n)
        k1, k2 = jax.random.split(key)
        g = jax.random.normal(k1, x.shape, x.dtype)
        n = x[0].size
        r = eps * jax.random.uniform(k2, (x.shape[0],), x.dtype) ** (1.0 / n)
        d = g * _bcast(r / jnp.maximum(_per_example_norm(g, "l2"), 1e-12), g)
    return _project(x + d, x, eps, norm)


def large_eps_examples(logits_fn, x, y_target, *, key, eps, step_size, steps, norm: str = "l2",
                       init: str = "zero", keep_best: bool = True):
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
    x0 = x if init == "zero" else _random_start(key, x, eps, norm)

    def keep(xa, l, best_x, best_l):
        better = l < best_l
        return jnp.where(_bcast(better, xa), xa, best_x), jnp.where(better, l, best_l)

    def body(_, carry):
        xa, best_x, best_l = carry
        g, l = grad_fn(xa)
        best_x, best_l = keep(xa, l, best_x, best_l)
        if norm == "linf":
            direction = jnp.sign(g)
        else:
            direction = g / _bcast(jnp.maximum(_per_example_norm(g, "l2"), 1e-12), g)
        xa = _project(xa - step_size * direction, x, eps, norm)
        return xa, best_x, best_l

    init_carry = (x0, x0, jnp.full((x.shape[0],), jnp.inf, jnp.float32))
    xa, best_x, best_l = lax.fori_loop(0, steps, body, init_carry)
    if not keep_best:
        return lax.stop_gradient(xa)
    best_x, _ = keep(xa, losses(xa), best_x, best_l)
    return lax.stop_gradient(best_x)


def interpolate(x, x_adv, alphas):
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
