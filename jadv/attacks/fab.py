"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack"; targeted version from "Reliable
evaluation of adversarial robustness ...", as run by AutoAttack ``standard``), Linf and L2.

Per target class ``t`` (the 2nd..10th largest clean logits) and per example, starting at ``x1 = x0``:

1. linearise ``f(z) = z_t - z_y`` at ``x1``: hyperplane ``{z : grad . z = grad . x1 - f(x1)}``;
2. ``d1``, ``d2`` = minimal-norm steps from ``x1`` and from ``x0`` onto that hyperplane within the
   [0, 1] box (:func:`box_hyperplane_projection`, exact; when the hyperplane cannot be reached inside
   the box, the box corner that moves furthest toward it);
3. ``alpha = min(||d1|| / (||d1|| + ||d2||), alpha_max)``;
   ``x1 = clip((1 - alpha)(x1 + eta d1) + alpha (x0 + eta d2), 0, 1)``;
4. if ``x1`` is misclassified, remember it when it is the closest so far to ``x0`` and step back:
   ``x1 = x0 + beta (x1 - x0)``.

Defaults are AutoAttack's: 100 iterations, ``alpha_max = 0.1``, ``eta = 1.05``, ``beta = 0.9``, one
restart without random start (so the attack is deterministic; ``key`` is accepted for a uniform
attack interface). A point counts as broken when the closest adversarial point found for some target
is within ``eps``; the first such target gives the output. Other points are returned as ``x``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jadv._checks import check_positive_int
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import check_attack_inputs, check_key
from jadv.attacks.apgd import top_targets
from jadv.attacks.projections import _bcast, per_example_norm

__all__ = ["fab_targeted", "box_hyperplane_projection"]


def _orient(t, w, b, norm):
    """The common set-up of both solvers: orient ``w`` so that ``w . t >= b`` and describe the
    piecewise-linear equation ``phi(mu) = sum_i min(mu slope_i, sat_i) = c`` by its breakpoints
    ``r_i = sat_i / slope_i`` (the ``mu`` at which coordinate ``i`` hits the box)."""
    c = jnp.sum(w * t, axis=1) - b
    sgn = jnp.where(c >= 0, 1.0, -1.0).astype(t.dtype)
    w = w * sgn[:, None]
    c = c * sgn
    aw = jnp.abs(w)
    room = jnp.where(w > 0, t, 1.0 - t)
    if norm == "linf":
        active = w != 0
        r = room
        slope = aw
        scale = jnp.ones_like(aw)
    else:
        active = aw > 1e-8
        big = jnp.asarray(1e12, t.dtype)
        r = jnp.where(active, room / jnp.where(active, aw, 1.0), big)
        slope = jnp.where(active, aw * aw, 0.0)
        scale = aw
    sat = jnp.where(active, aw * room, 0.0)
    slope = jnp.where(active, slope, 0.0)
    return c, w, room, active, r, slope, scale, sat


def _mu_sort(r, sat, slope, c):
    """``(mu, feasible)`` by sorting the breakpoints (the first implementation; kept as the oracle of
    the tests and the "before" of BENCHMARKS.md: two [B, D] sorts per FAB step were 80% of FAB-T's
    time on XLA:CPU)."""
    order = jnp.argsort(r, axis=1)
    r_s = jnp.take_along_axis(r, order, 1)
    a_s = jnp.take_along_axis(sat, order, 1)
    s_s = jnp.take_along_axis(slope, order, 1)
    a_excl = jnp.cumsum(a_s, axis=1) - a_s
    s_tail = jnp.sum(s_s, axis=1, keepdims=True) - jnp.cumsum(s_s, axis=1) + s_s
    phi = a_excl + r_s * s_tail
    n = r.shape[1]
    kstar = jnp.sum(phi < c[:, None], axis=1)
    feasible = kstar < n
    kk = jnp.minimum(kstar, n - 1)[:, None]
    a_at = jnp.take_along_axis(a_excl, kk, 1)[:, 0]
    s_at = jnp.take_along_axis(s_tail, kk, 1)[:, 0]
    mu = jnp.maximum((c - a_at) / jnp.where(s_at > 0, s_at, 1.0), 0.0)
    return mu, feasible


def _mu_newton(r, sat, slope, c):
    """``(mu, feasible)`` without sorting: Newton's method from ``mu = 0`` on the concave,
    nondecreasing, piecewise-linear ``phi``.

    On the piece that starts at ``lo``, ``phi(mu) = A + mu S`` with ``A`` the saturated terms
    (``r_i <= lo``) and ``S`` the slopes of the others; concavity puts that line above ``phi``, so
    the step ``mu = (c - A) / S`` never passes the root: the iterates rise monotonically, each step
    that does not land on the final piece crosses at least one breakpoint, and the first step that
    crosses none has found the root exactly (the set ``{r_i <= mu}`` is the one the sorted solve
    finds, so ``A``, ``S`` and ``mu`` are the same up to float summation order). At most ``D + 1``
    steps, in practice a handful; each is one fused pass over ``[B, D]`` (no sort). Rows that cannot
    reach the hyperplane (``sum sat < c``) are not iterated.
    """
    feasible = jnp.sum(sat, axis=1) >= c
    zero = jnp.zeros_like(c)

    def body(st):
        lo, cnt_prev, _, a, s = st
        below = r <= lo[:, None]
        cnt = jnp.sum(below, axis=1, dtype=jnp.int32)
        a = jnp.sum(jnp.where(below, sat, 0.0), axis=1)
        s = jnp.sum(jnp.where(below, 0.0, slope), axis=1)
        done = (cnt == cnt_prev) | ~feasible
        mu = jnp.where(s > 0, (c - a) / jnp.where(s > 0, s, 1.0), lo)
        return jnp.where(done, lo, jnp.maximum(mu, lo)), cnt, done, a, s

    init = (zero, jnp.full(c.shape, -1, jnp.int32), jnp.zeros(c.shape, bool), zero, zero)
    _, _, _, a, s = lax.while_loop(lambda st: ~jnp.all(st[2]), body, init)
    mu = jnp.maximum((c - a) / jnp.where(s > 0, s, 1.0), 0.0)
    return mu, feasible


def box_hyperplane_projection(t: jax.Array, w: jax.Array, b: jax.Array, norm: str, *,
                              method: str = "newton") -> jax.Array:
    """Minimal-norm ``d`` with ``w . (t + d) = b`` and ``t + d`` in [0, 1]^D, per row.

    Args: ``t, w [B, D]``, ``b [B]``, norm "linf" or "l2"; ``method`` "newton" (default, sort-free)
    or "sort" (the breakpoints sorted; same result up to float summation order). Returns ``d [B, D]``.
    The solution is ``d_i = -sign(w_i) min(mu s_i, m_i)`` where ``m_i`` is the room in the box in the
    direction ``-sign(w_i)`` (after orienting ``w`` so that ``w . t >= b``), ``s_i = 1`` (Linf) or
    ``|w_i|`` (L2), and ``mu >= 0`` solves the piecewise-linear equation ``sum_i |w_i| min(mu s_i, m_i)
    = w . t - b`` exactly (:func:`_mu_newton` / :func:`_mu_sort`). If even the full move to the box
    corner does not reach the hyperplane, that corner move is returned (as in the reference).
    Coordinates with ``w_i = 0`` (L2: ``|w_i| < 1e-8``) are not moved.
    """
    if method not in ("newton", "sort"):
        raise ValueError(f"method must be 'newton' or 'sort', got {method!r}")
    c, w, room, active, r, slope, scale, sat = _orient(t, w, b, norm)
    mu, feasible = (_mu_newton if method == "newton" else _mu_sort)(r, sat, slope, c)
    mag = jnp.where(feasible[:, None], jnp.minimum(mu[:, None] * scale, room), room)
    return jnp.where(active, -jnp.sign(w) * mag, 0.0)


def _fab_one_target(logits_fn, x0, y, yt, steps, norm, alpha_max, eta, beta, projection="newton"):
    b = x0.shape[0]
    flat0 = x0.reshape(b, -1)

    def diff(xa):
        z = logits_fn(xa)
        d = jnp.take_along_axis(z, yt[:, None], 1)[:, 0] - jnp.take_along_axis(z, y[:, None], 1)[:, 0]
        return jnp.sum(d), d

    grad_fn = jax.grad(diff, has_aux=True)

    def body(_, carry):
        x1, adv, res = carry
        g, df = grad_fn(x1)
        w = g.reshape(b, -1)
        f1 = x1.reshape(b, -1)
        bb = -df + jnp.sum(w * f1, axis=1)
        # both projections (from x1 and from x0) in one [2B, D] solve, as the reference does
        d12 = box_hyperplane_projection(jnp.concatenate([f1, flat0]), jnp.concatenate([w, w]),
                                        jnp.concatenate([bb, bb]), norm, method=projection)
        d1, d2 = d12[:b], d12[b:]
        a1 = jnp.maximum(per_example_norm(d1, norm), 1e-8)
        a2 = jnp.maximum(per_example_norm(d2, norm), 1e-8)
        alpha = jnp.clip(a1 / (a1 + a2), 0.0, alpha_max)[:, None]
        f_new = jnp.clip((f1 + eta * d1) * (1 - alpha) + (flat0 + eta * d2) * alpha, 0.0, 1.0)
        x1 = f_new.reshape(x0.shape).astype(x0.dtype)  # logits may be of another precision
        is_adv = jnp.argmax(logits_fn(x1), -1) != y
        dist = per_example_norm(x1 - x0, norm).astype(res.dtype)
        better = is_adv & (dist < res)
        adv = jnp.where(_bcast(better, x1), x1, adv)
        res = jnp.where(better, dist, res)
        x1 = jnp.where(_bcast(is_adv, x1), x0 + (x1 - x0) * beta, x1)
        return x1, adv, res

    init = (x0, x0, jnp.full((b,), 1e10, x0.dtype))
    # cpu_canonical: the body's convolutions in XLA:CPU's fast layout (see jadv._cpu_loops); no-op off CPU
    _, adv, res = lax.fori_loop(0, steps, cpu_canonical(body), init)
    return adv, res


def fab_targeted(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: Scalar,
                 steps: int = 100, norm: str = "linf", n_targets: int = 9, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, projection: str = "newton") -> jax.Array:
    """FAB-T (Croce & Hein 2020), the targeted minimum-norm attack of AutoAttack; see module docstring.

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]``. x ``[B, H, W, C]`` in [0, 1]; y ``[B]`` int.
      key: PRNG key (unused: one deterministic restart, as in AutoAttack standard).
      eps: one scalar radius (may be traced); a found point counts only if its distance is ``<= eps``.
      steps: iterations per target.
      norm: "linf" or "l2". n_targets: number of targets (< K). alpha_max, eta, beta: FAB constants.
      projection: how :func:`box_hyperplane_projection` solves for the step, "newton" (default,
        sort-free) or "sort" (the first implementation; same result up to float rounding, 5-10x
        slower on CPU: BENCHMARKS.md, issue #19).
    Returns: ``x_adv [B, H, W, C]``: the closest adversarial point (within eps) for broken points,
    ``x`` otherwise.
    """
    k = check_attack_inputs(logits_fn, x, y, eps, norm)
    check_key(key)
    check_positive_int("steps", steps)
    check_positive_int("n_targets", n_targets)
    if n_targets >= k:
        raise ValueError(f"n_targets must be < number of classes ({k}), got {n_targets}")
    if projection not in ("newton", "sort"):
        raise ValueError(f"projection must be 'newton' or 'sort', got {projection!r}")
    x = jnp.asarray(x)
    clean_logits = logits_fn(x)
    clean_wrong = jnp.argmax(clean_logits, -1) != y
    targets = top_targets(clean_logits, n_targets)

    def one(carry, yt):
        broken, x_out = carry
        adv, res = _fab_one_target(logits_fn, x, y, yt, steps, norm, alpha_max, eta, beta, projection)
        ok = (res <= eps) & (jnp.argmax(logits_fn(adv), -1) != y)
        new = ok & ~broken
        return (broken | ok, jnp.where(_bcast(new, x), adv, x_out)), None

    (_, x_out), _ = lax.scan(one, (clean_wrong, x), targets)
    return lax.stop_gradient(x_out)
