"""Adversarial weight perturbation (Wu et al. 2020, "Adversarial Weight Perturbation Helps
Robust Generalization"; robustness-libraries.md section 4.11).

Per batch, after x_adv is crafted with the unperturbed weights w:

1. proxy <- w; one SGD step (lr ``awp_proxy_lr`` = 0.01, no momentum) on **-loss** at x_adv, with
   the model in train mode (batch statistics; the proxy's running statistics are discarded). For
   AWP around TRADES the loss is the TRADES loss ``CE(clean) + beta KL``.
2. ``v_l = (w_proxy - w)_l * ||w_l|| / (||(w_proxy - w)_l|| + 1e-20)`` per layer (Frobenius norms)
   for kernels only (arrays with ndim > 1); biases and BN scales/offsets get v = 0.
3. ``w <- w + gamma v``, gamma = ``awp_gamma`` (0.01 around PGD-AT, 5e-3 around TRADES).
4. loss and gradients at the perturbed weights; the optimizer step is taken there.
5. ``w <- w - gamma v`` (the same v, removed *after* the step).

Steps 3-5 are done by :func:`jadv.train.step.make_train_step` with the ``perturb`` hook, which
returns ``gamma v``. Warm-up: the reference applies AWP ``if epoch >= awp_warmup`` (0 around PGD-AT,
10 around TRADES), counting epochs as its two scripts do: the AT-AWP script (built on
robust_overfitting) from 0, the TRADES-AWP script (built on TRADES) from 1. So around TRADES, AWP is
on from jadv's 0-based epoch 9, the reference's 10th epoch (:func:`awp_active`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jadv._checks import check_choice, check_nonnegative
from jadv._typing import ArrayLike, PyTree
from jadv.train.registry import OBJECTIVES
from jadv.train.registry import config_value as _get

__all__ = ["make_awp", "awp_direction", "awp_active", "AWP_DEFAULTS", "AWP_EPOCH_BASE", "AWP_EPS"]

AWP_EPS = 1e-20
# inner objective -> (gamma, warm-up epochs) of the reference code
AWP_DEFAULTS = {"pgd_at": (0.01, 0.0), "trades": (5e-3, 10.0)}
# inner objective -> the number the reference's epoch loop gives its first epoch
AWP_EPOCH_BASE = {"pgd_at": 0, "trades": 1}


def awp_active(epoch: ArrayLike, warmup_epochs: float, epoch_base: int = 0) -> jax.Array:
    """1.0 where AWP perturbs the weights, else 0.0: ``floor(epoch) + epoch_base >= warmup_epochs``.

    ``epoch``: jadv's fractional 0-based epoch (scalar, may be traced); ``epoch_base``: what the
    reference's loop calls its first epoch (:data:`AWP_EPOCH_BASE`). Returns a float32 scalar.
    """
    e = jnp.floor(jnp.asarray(epoch, jnp.float32)) + float(epoch_base)
    return (e >= warmup_epochs).astype(jnp.float32)


def awp_direction(params: PyTree, proxy_params: PyTree) -> PyTree:
    """Layer-wise normalised perturbation direction ``v`` (step 2 of the module docstring).

    Args: params, proxy_params: parameter pytrees of the same structure.
    Returns: a pytree like ``params``: ``diff * ||w|| / (||diff|| + 1e-20)`` for leaves with
    ndim > 1 (conv/dense kernels), zeros elsewhere (biases, BN parameters).
    """

    def one(w, wp):
        if w.ndim <= 1:
            return jnp.zeros_like(w)
        diff = wp - w
        return diff * (jnp.linalg.norm(w.ravel()) / (jnp.linalg.norm(diff.ravel()) + AWP_EPS))

    return jax.tree_util.tree_map(one, params, proxy_params)


def make_awp(cfg):
    """AWP objective around ``cfg.awp_inner`` ("pgd_at" default, or "trades").

    Config fields: ``awp_inner``, ``awp_gamma`` (default per inner method), ``awp_warmup_epochs``
    (default per inner method), ``awp_proxy_lr`` (0.01), plus the inner method's own fields.
    """
    inner_name = _get(cfg, "awp_inner", "pgd_at")
    check_choice("objective.awp_inner", inner_name, tuple(AWP_DEFAULTS))
    gamma_default, warm_default = AWP_DEFAULTS[inner_name]
    gamma = float(_get(cfg, "awp_gamma", gamma_default))
    warmup = float(_get(cfg, "awp_warmup_epochs", warm_default))
    proxy_lr = float(_get(cfg, "awp_proxy_lr", 0.01))
    for name, value in (("awp_gamma", gamma), ("awp_warmup_epochs", warmup), ("awp_proxy_lr", proxy_lr)):
        check_nonnegative(f"objective.{name}", value)
    inner = OBJECTIVES[inner_name](cfg)

    def perturb(model, params, batch_stats, x, y, inputs, epoch):
        def proxy_loss(p):
            return inner.loss(model, p, batch_stats, x, y, inputs, epoch)[0]

        g = jax.grad(proxy_loss)(params)
        # one SGD step on -loss: w_proxy = w - lr * grad(-loss) = w + lr * grad(loss)
        proxy = jax.tree_util.tree_map(lambda w, gw: w + proxy_lr * gw, params, g)
        v = awp_direction(params, proxy)
        active = awp_active(epoch, warmup, AWP_EPOCH_BASE[inner_name])
        return jax.tree_util.tree_map(lambda t: (gamma * active) * t, v)

    settings = {**inner.settings, "awp_inner": inner_name, "awp_gamma": gamma,
                "awp_warmup_epochs": warmup, "awp_proxy_lr": proxy_lr}
    return dataclasses.replace(inner, name="awp", perturb=perturb,
                               needs_epoch=inner.needs_epoch or warmup > AWP_EPOCH_BASE[inner_name],
                               settings=settings)
