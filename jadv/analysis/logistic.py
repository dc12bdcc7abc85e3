"""Adversarial linear logistic regression in closed form (Yamada et al. 2021, arXiv:2102.02950).

Labels are y in {-1, +1}, the classifier is ``sign(w.x + b)`` and the clean loss is
``softplus(-y (w.x + b))``. The worst-case perturbation of norm eps is known in closed form:
``delta* = -eps y w/||w||_2`` (L2) or ``-eps y sign(w)`` (Linf), so the adversarial loss is

    l_eps(w) = mean_i softplus(m_i),   m_i = -y_i (w.x_i + b) + eps ||w||_*,

with ``||w||_* = ||w||_2`` (L2 threat) or ``||w||_1`` (Linf threat), the dual norm.

Its Hessian in w (b held fixed), with ``s_i = sigmoid(m_i)``:

* L2, ``kind="exact"``: ``mean_i s_i (1 - s_i) g_i g_i^T + mean_i s_i (eps/||w||)(I - w_hat w_hat^T)``,
  ``g_i = -y_i x_i + eps w_hat``. The second, positive semi-definite term exists because the
  perturbation direction moves with w; it makes adversarial training sharpen the landscape.
* L2, ``kind="fixed_xadv"``: x_adv crafted at w and held fixed (what PyHessian-style tools compute
  for adversarial training): only the first term.
* Linf: ``||w||_1`` has zero Hessian almost everywhere, so both kinds give the first term with
  ``g_i = -y_i x_i + eps sign(w)``.

Sources: analysis-methods E.2 (derived and checked against finite differences), Yamada et al. 2021.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jadv._checks import check_choice, check_nonnegative, check_norm, check_positive_int, is_concrete
from jadv._typing import ArrayLike, Scalar

__all__ = [
    "adv_logistic_loss",
    "adv_logistic_hessian",
    "fit_adv_logistic",
    "adv_logistic_sweep",
]

KINDS = ("exact", "fixed_xadv")


def _check_inputs(w, X, y, eps, norm, b=None):
    check_norm(norm, ("l2", "linf"))
    check_nonnegative("eps", eps)
    if jnp.ndim(X) != 2:
        raise ValueError(f"X must be [n, d], got shape {jnp.shape(X)}")
    n, d = jnp.shape(X)
    if w is not None and jnp.shape(w) != (d,):
        raise ValueError(f"w must have shape ({d},) to match X [n, d], got {jnp.shape(w)}")
    if jnp.ndim(y) != 1 or jnp.shape(y)[0] != n:
        raise ValueError(f"y must be [n] = [{n}] labels in {{-1, +1}}, got shape {jnp.shape(y)}")
    if is_concrete(y) and n > 0:
        vals = np.unique(np.asarray(y))
        if not np.all(np.abs(vals) == 1):
            raise ValueError(f"y must hold labels in {{-1, +1}}, got values {vals[:5]}")
    if b is not None and jnp.ndim(b) != 0:
        raise ValueError(f"b must be a scalar, got shape {jnp.shape(b)}")


def _safe_l2(w):
    """||w||_2 with gradient 0 (a subgradient) at w = 0 instead of NaN."""
    s = jnp.sum(w * w)
    nz = s > 0
    return jnp.where(nz, jnp.sqrt(jnp.where(nz, s, 1.0)), 0.0)


def _margins(w, X, y, eps, norm, b):
    y = jnp.asarray(y, w.dtype)
    z = X @ w + (0.0 if b is None else b)
    pen = _safe_l2(w) if norm == "l2" else jnp.sum(jnp.abs(w))
    return -y * z + eps * pen


def adv_logistic_loss(w: ArrayLike, X: ArrayLike, y: ArrayLike, *, eps: Scalar, norm: str = "l2",
                      b: ArrayLike | None = None) -> jax.Array:
    """Closed-form adversarial logistic loss ``mean_i softplus(-y_i (w.x_i + b) + eps ||w||_*)``.

    Args:
      w: weights [d].
      X: inputs [n, d] (any real features; not clipped to a box, as in the theory).
      y: labels [n] in {-1, +1}.
      eps: perturbation radius >= 0 (scalar; vmap over it for a sweep).
      norm: threat model ``"l2"`` (dual norm ||w||_2) or ``"linf"`` (dual norm ||w||_1).
      b: optional scalar bias (not perturbed).

    Returns:
      scalar mean loss (Yamada et al. 2021; analysis-methods E.2).
    """
    _check_inputs(w, X, y, eps, norm, b)
    return jnp.mean(jax.nn.softplus(_margins(w, X, y, eps, norm, b)))


def adv_logistic_hessian(w: ArrayLike, X: ArrayLike, y: ArrayLike, *, eps: Scalar, norm: str = "l2",
                         kind: str = "exact", b: ArrayLike | None = None) -> jax.Array:
    """Closed-form Hessian in w of :func:`adv_logistic_loss` (b held fixed).

    Args:
      w, X, y, eps, norm, b: as in :func:`adv_logistic_loss`.
      kind: ``"exact"`` (the Hessian of the adversarial loss, with the perturbation direction
        depending on w) or ``"fixed_xadv"`` (x_adv = x - eps y w_hat computed at w and held
        fixed). For ``norm="linf"`` both are the a.e. Hessian ``mean s'(m) g g^T``,
        ``g = -y x + eps sign(w)``.

    Returns:
      [d, d] symmetric matrix. For L2 with eps > 0 the Hessian is undefined at w = 0 (a concrete
      w = 0 raises ValueError).
    """
    _check_inputs(w, X, y, eps, norm, b)
    check_choice("kind", kind, KINDS)
    w = jnp.asarray(w)
    yv = jnp.asarray(y, w.dtype)
    m = _margins(w, X, y, eps, norm, b)
    s = jax.nn.sigmoid(m)
    c = s * (1.0 - s)
    n, d = X.shape
    if norm == "l2":
        r = _safe_l2(w)
        if is_concrete(r) and is_concrete(eps) and float(r) == 0.0 and float(eps) > 0:
            raise ValueError("the L2 adversarial Hessian is undefined at w = 0 (eps / ||w|| blows up)")
        w_hat = w / jnp.where(r > 0, r, 1.0)
        G = -yv[:, None] * X + eps * w_hat
    else:
        G = -yv[:, None] * X + eps * jnp.sign(w)
    H = (G * c[:, None]).T @ G / n
    if norm == "l2" and kind == "exact":
        H = H + jnp.mean(s) * (eps / jnp.where(r > 0, r, 1.0)) * (jnp.eye(d, dtype=w.dtype)
                                                                  - jnp.outer(w_hat, w_hat))
    return H


def _lbfgs_solve(obj, w0, iters, memory):
    opt = optax.lbfgs(memory_size=memory)
    vg = optax.value_and_grad_from_state(obj)

    def step(carry, _):
        w, state = carry
        value, grad = vg(w, state=state)
        updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=obj)
        return (optax.apply_updates(w, updates), state), None

    (w, _), _ = lax.scan(step, (w0, opt.init(w0)), None, length=iters)
    return w


def fit_adv_logistic(X: ArrayLike, y: ArrayLike, *, eps: Scalar, norm: str = "l2", l2_reg: float = 0.0,
                     iters: int = 200, memory: int = 10, w0: ArrayLike | None = None) -> jax.Array:
    """Minimise the adversarial logistic loss (+ ``l2_reg/2 ||w||^2``) by L-BFGS (optax).

    A fixed number of L-BFGS iterations (zoom line search) inside ``lax.scan``: pure, jit-able,
    and vmappable over ``eps`` (see :func:`adv_logistic_sweep`), so an eps grid is one program.
    Run it with ``jax.enable_x64(True)`` and float64 data for a minimiser accurate to ~1e-10 in
    the gradient. No bias (use centred, symmetric data, or append a constant feature).

    Args:
      X: [n, d] inputs; y: [n] labels in {-1, +1}.
      eps: radius >= 0 (scalar or traced scalar).
      norm: ``"l2"`` or ``"linf"``. The Linf objective is not smooth where a coordinate of w is 0;
        L-BFGS then leaves such coordinates small but not exactly 0.
      l2_reg: weight-decay coefficient >= 0 (needed on separable data, where the unregularised
        standard minimiser diverges).
      iters: L-BFGS iterations; memory: L-BFGS history size.
      w0: start point [d] (default: a small constant vector; w = 0 is a kink of ||w||).

    Returns:
      the minimiser w* [d]. Beyond the collapse radius the minimiser is w* = 0 (not
      differentiable there); the iterate then shrinks toward 0.
    """
    _check_inputs(None, X, y, eps, norm)
    check_nonnegative("l2_reg", l2_reg)
    check_positive_int("iters", iters)
    check_positive_int("memory", memory)
    d = X.shape[1]
    if w0 is None:
        w0 = jnp.full((d,), 1e-2, X.dtype)
    elif jnp.shape(w0) != (d,):
        raise ValueError(f"w0 must have shape ({d},), got {jnp.shape(w0)}")

    def obj(w):
        return (jnp.mean(jax.nn.softplus(_margins(w, X, y, eps, norm, None)))
                + 0.5 * l2_reg * jnp.sum(w * w))

    return _lbfgs_solve(obj, jnp.asarray(w0, X.dtype), iters, memory)


def adv_logistic_sweep(X: ArrayLike, y: ArrayLike, eps_grid: ArrayLike, *, norm: str = "l2", l2_reg: float = 0.0,
                       iters: int = 200) -> jax.Array:
    """Fit and measure adversarial logistic regression for every eps in a grid, as one vmap.

    Args:
      X: [n, d]; y: [n] in {-1, +1}; eps_grid: [E] radii >= 0.
      norm, l2_reg, iters: as in :func:`fit_adv_logistic`.

    Returns:
      dict of arrays with a leading axis E: ``w`` [E, d] minimisers, ``w_norm`` [E] (||w*||_2),
      ``loss`` [E] (adversarial loss at w*), ``grad_norm`` [E] (||grad|| at w*, a convergence
      check), ``lambda_max_exact`` / ``lambda_max_fixed`` [E] (top eigenvalue of the exact and the
      fixed-x_adv Hessian, closed form + ``eigh``) and ``trace_exact`` / ``trace_fixed`` [E].
      Jit it at the call site for one compiled program.
    """
    if jnp.ndim(eps_grid) != 1:
        raise ValueError(f"eps_grid must be 1-D, got shape {jnp.shape(eps_grid)}")
    check_nonnegative("eps_grid", eps_grid)
    _check_inputs(None, X, y, 0.0, norm)

    def one(eps):
        w = fit_adv_logistic(X, y, eps=eps, norm=norm, l2_reg=l2_reg, iters=iters)
        obj = lambda v: adv_logistic_loss(v, X, y, eps=eps, norm=norm) + 0.5 * l2_reg * jnp.sum(v * v)
        He = adv_logistic_hessian(w, X, y, eps=eps, norm=norm, kind="exact")
        Hf = adv_logistic_hessian(w, X, y, eps=eps, norm=norm, kind="fixed_xadv")
        return {"w": w, "w_norm": jnp.linalg.norm(w), "loss": adv_logistic_loss(w, X, y, eps=eps, norm=norm),
                "grad_norm": jnp.linalg.norm(jax.grad(obj)(w)),
                "lambda_max_exact": jnp.linalg.eigvalsh(He)[-1],
                "lambda_max_fixed": jnp.linalg.eigvalsh(Hf)[-1],
                "trace_exact": jnp.trace(He), "trace_fixed": jnp.trace(Hf)}

    return jax.vmap(one)(jnp.asarray(eps_grid, X.dtype))
