"""Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient
black-box adversarial attack via random search"), Linf and L2, margin (or CE) loss, as used by
AutoAttack ``standard`` (5000 queries, ``p_init = 0.8``, ``resc_schedule=False``).

Random search: each iteration proposes a random square-shaped update of side ``s`` (from the
fraction ``p`` of pixels, :func:`square_p_schedule`) and keeps it for an example if it lowers the loss
or misclassifies; examples already misclassified (margin <= 0) are not updated any more.

jit/vmap notes: all iterations are one ``lax.fori_loop`` whose body reads the side ``s`` of its
iteration from a table, so the model is compiled once; the square is a mask over the image (Linf)
or a zero-padded ``[s_max, s_max]`` pattern placed on a padded canvas (L2). The square
position and the signs are drawn per example (the reference implementation draws one position per
batch; per-example draws are the paper's algorithm and make the result independent of the batch).
Only the output for the correctly classified points matters for robust accuracy; clean-misclassified
points are returned unchanged, the others as their best (lowest-loss) point.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jadv._checks import check_choice, check_positive_int
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import check_attack_inputs, check_key
from jadv.attacks.losses import cross_entropy
from jadv.attacks.projections import _bcast, per_example_norm

__all__ = ["square", "square_p_schedule", "square_side"]


def square_p_schedule(it: int, p_init: float = 0.8, n_queries: int = 5000, resc_schedule: bool = False) -> float:
    """Fraction ``p`` of pixels changed at iteration ``it`` (0-based), halved after iterations
    10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (of 10000; rescaled to ``n_queries`` only when
    ``resc_schedule=True``)."""
    if resc_schedule:
        it = int(it / n_queries * 10000)
    for k, bound in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= bound:
            return p_init / 2 ** k
    return p_init / 512


def square_side(p: float, h: int, w: int, c: int, norm: str) -> int:
    """Side of the square for fraction ``p``: ``round(sqrt(p * h * w))`` (>= 1 Linf; >= 3 and odd L2),
    at most ``min(h, w)``."""
    n_features = h * w * c
    if norm == "linf":
        s = max(int(round(math.sqrt(p * n_features / c))), 1)
    else:
        s = max(int(round(math.sqrt(p * n_features / c))), 3)
        if s % 2 == 0:
            s += 1
    return min(s, min(h, w))


def _eta_rectangles(a: int, b: int) -> np.ndarray:
    d = np.zeros((a, b), np.float64)
    if a == 0:
        return d
    ca, cb = a // 2 + 1, b // 2 + 1
    pa, pb = ca - 1, cb - 1
    for k in range(max(ca, cb)):
        d[max(pa, 0):min(pa + 2 * k + 1, a), max(pb, 0):min(pb + 2 * k + 1, b)] += 1.0 / (k + 1) ** 2
        pa -= 1
        pb -= 1
    return d / np.sqrt((d ** 2).sum())


def _eta(s: int) -> np.ndarray:
    """L2 square pattern (two rectangles of opposite sign, unit L2 norm), before the random transpose."""
    d = np.zeros((s, s), np.float64)
    d[: s // 2] = _eta_rectangles(s // 2, s)
    d[s // 2:] = -_eta_rectangles(s - s // 2, s)
    return (d / np.sqrt((d ** 2).sum())).astype(np.float32)


def _place(patch, h, w, vh, vw):
    """Put ``patch[B, S, S, C]`` into zeros ``[B, h, w, C]`` at per-example corners (vh, vw); the part
    of the patch that falls outside the image is cut off (the canvas is padded by S, so the corner
    is never moved to make the patch fit)."""
    sp = patch.shape[1]

    def one(p, i, j):
        canvas = jnp.zeros((h + sp, w + sp, p.shape[-1]), p.dtype)
        return lax.dynamic_update_slice(canvas, p, (i, j, 0))[:h, :w]
    return jax.vmap(one)(patch, vh, vw)


def _mask(h, w, s, vh, vw):
    """``[B, h, w, 1]`` indicator of the window (vh:vh+s, vw:vw+s)."""
    ih = jnp.arange(h)[None, :, None, None]
    iw = jnp.arange(w)[None, None, :, None]
    vh = vh[:, None, None, None]
    vw = vw[:, None, None, None]
    return ((ih >= vh) & (ih < vh + s) & (iw >= vw) & (iw < vw + s)).astype(jnp.float32)


def square(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: Scalar, queries: int = 5000,
           norm: str = "linf", p_init: float = 0.8, loss: str = "margin", resc_schedule: bool = False) -> jax.Array:
    """Square Attack, untargeted (Andriushchenko et al. 2020).

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]`` (only evaluated, never differentiated).
      x ``[B, H, W, C]`` in [0, 1]; y ``[B]`` int. key: PRNG key. eps: radius, one scalar
        (may be traced; vmap over eps for several).
      queries: random-search iterations after the initial query (5000 in AutoAttack).
      norm: "linf" or "l2" (L2 needs H, W >= 5). p_init: initial fraction of pixels (0 < p <= 1).
      loss: "margin" (``z_y - max_{i!=y} z_i``, minimised) or "ce" (``-CE``, minimised).
      resc_schedule: rescale the p schedule to ``queries`` (AutoAttack standard: False).
    Returns: ``x_adv [B, H, W, C]`` in the eps-ball and [0, 1].
    """
    check_attack_inputs(logits_fn, x, y, eps, norm)
    check_key(key)
    check_positive_int("queries", queries)
    check_choice("loss", loss, ("margin", "ce"))
    if not (0.0 < float(p_init) <= 1.0):
        raise ValueError(f"p_init must be in (0, 1], got {p_init}")
    b, h, w, c = x.shape
    if norm == "l2" and min(h, w) < 5:
        raise ValueError(f"L2 Square needs images of at least 5x5 pixels, got {h}x{w}")
    x = jnp.asarray(x)
    eps = jnp.asarray(eps, x.dtype)

    def margin_and_loss(xa):
        logits = logits_fn(xa)
        zy = jnp.take_along_axis(logits, y[:, None], -1)[:, 0]
        other = jnp.max(jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits), -1)
        m = zy - other
        return m, (m if loss == "margin" else -cross_entropy(logits, y))

    k_init, k_loop = jax.random.split(key)
    if norm == "linf":
        signs = jax.random.rademacher(k_init, (b, 1, w, c), x.dtype)
        x_best = jnp.clip(x + eps * signs, 0.0, 1.0)
    else:
        x_best = jnp.clip(x + _unit(_l2_init(k_init, x)) * eps, 0.0, 1.0)
    margin_min, loss_min = margin_and_loss(x_best)

    def accept(x_new, carry):
        x_best, margin_min, loss_min = carry
        active = margin_min > 0.0
        m, l = margin_and_loss(x_new)
        improved = (l < loss_min) & active
        loss_min = jnp.where(improved, l, loss_min)
        improved = (improved | (m <= 0.0)) & active
        margin_min = jnp.where(improved, m, margin_min)
        x_best = jnp.where(_bcast(improved, x_new), x_new, x_best)
        return x_best, margin_min, loss_min

    # The side s changes at the schedule's breakpoints only; one loop body takes it from a
    # per-iteration table, so the model's forward is compiled once, not once per side.
    sides_py = [square_side(square_p_schedule(i, p_init, queries, resc_schedule), h, w, c, norm)
                for i in range(queries)]
    smax = max(sides_py)
    side_of_it = jnp.asarray(np.asarray(sides_py, np.int32))
    if norm == "l2":
        # eta(s) for every side used, zero-padded to [smax, smax] in its top-left corner
        etas = np.zeros((smax + 1, smax, smax), np.float32)
        for sd in set(sides_py):
            etas[sd, :sd, :sd] = _eta(sd)
        etas = jnp.asarray(etas, x.dtype)

    def corners(k1, k2, s):
        hi_h, hi_w = jnp.maximum(h - s, 1), jnp.maximum(w - s, 1)
        return jax.random.randint(k1, (b,), 0, hi_h), jax.random.randint(k2, (b,), 0, hi_w)

    def body_linf(i, carry):
        s = side_of_it[i]
        k1, k2, k3 = jax.random.split(jax.random.fold_in(k_loop, i), 3)
        vh, vw = corners(k1, k2, s)
        sg = jax.random.rademacher(k3, (b, 1, 1, c), x.dtype)
        delta = 2.0 * eps * sg * _mask(h, w, s, vh, vw)
        x_new = jnp.clip(jnp.clip(carry[0] + delta, x - eps, x + eps), 0.0, 1.0)
        return accept(x_new, carry)

    def body_l2(i, carry):
        s = side_of_it[i]
        k1, k2, k3, k4, k5, k6 = jax.random.split(jax.random.fold_in(k_loop, i), 6)
        x_best = carry[0]
        delta = x_best - x
        vh, vw = corners(k1, k2, s)
        vh2, vw2 = corners(k3, k4, s)
        mask1 = _mask(h, w, s, vh, vw)
        mask2 = _mask(h, w, s, vh2, vw2)
        win1 = delta * mask1
        norm_win1 = jnp.sqrt(jnp.sum(win1 ** 2, axis=(1, 2), keepdims=True))
        norm_img = _bcast(per_example_norm(delta, "l2"), delta)
        norm_wins = jnp.sqrt(jnp.sum((delta * jnp.maximum(mask1, mask2)) ** 2, axis=(1, 2), keepdims=True))
        e = etas[s]
        flip = jax.random.bernoulli(k5, 0.5, (b, 1, 1))
        eta = _place(jnp.where(flip, e.T[None], e[None])[..., None], h, w, vh, vw)
        new = eta * jax.random.rademacher(k6, (b, 1, 1, c), x.dtype) + win1 / (1e-12 + norm_win1)
        new = new / (1e-12 + jnp.sqrt(jnp.sum(new ** 2, axis=(1, 2), keepdims=True))) * jnp.sqrt(
            jnp.maximum(eps ** 2 - norm_img ** 2, 0.0) / c + norm_wins ** 2)
        delta = delta * (1.0 - mask2)
        delta = delta * (1.0 - mask1) + new
        x_new = jnp.clip(x + _unit(delta) * eps, 0.0, 1.0)
        return accept(x_new, carry)

    # cpu_canonical: a max-pool's forward as a reshape and a max on CPU (jadv._cpu_loops)
    carry = lax.fori_loop(0, queries, cpu_canonical(body_linf if norm == "linf" else body_l2),
                          (x_best, margin_min, loss_min))
    x_best = carry[0]
    clean_wrong = jnp.argmax(logits_fn(x), -1) != y
    return lax.stop_gradient(jnp.where(_bcast(clean_wrong, x), x, x_best))


def _unit(d):
    return d / (_bcast(per_example_norm(d, "l2"), d) + 1e-12)


def _l2_init(key, x):
    """Reference L2 start: tiles of side s = h//5 (grid from offset (h - 5s)//2, clipped to the image)
    each holding eta(s) or its transpose with a random sign per example, tile and channel."""
    b, h, w, c = x.shape
    s = h // 5
    sp = (h - s * 5) // 2
    n_th, n_tw = h // s, w // s
    tid = -np.ones((h, w), np.int64)
    ih = np.zeros((h, w), np.int64)
    iw = np.zeros((h, w), np.int64)
    for i in range(n_th):
        for j in range(n_tw):
            r0, c0 = sp + i * s, sp + j * s
            for a in range(s):
                for bb in range(s):
                    if r0 + a < h and c0 + bb < w:
                        tid[r0 + a, c0 + bb] = i * n_tw + j
                        ih[r0 + a, c0 + bb] = a
                        iw[r0 + a, c0 + bb] = bb
    n_t = n_th * n_tw
    k1, k2 = jax.random.split(key)
    e = jnp.asarray(_eta(s), x.dtype)
    flip = jax.random.bernoulli(k1, 0.5, (b, n_t, 1, 1))
    pats = jnp.where(flip, e.T[None, None], e[None, None])            # [B, T, s, s]
    signs = jax.random.rademacher(k2, (b, n_t, c), x.dtype)            # [B, T, C]
    t = np.maximum(tid, 0)
    vals = pats[:, t, ih, iw][..., None] * signs[:, t, :]              # [B, h, w, C]
    return jnp.where(jnp.asarray(tid >= 0)[None, :, :, None], vals, 0.0)
