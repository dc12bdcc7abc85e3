"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"), APGD-CE / APGD-DLR and the targeted APGD-T, Linf and L2.

Per example, in one ``lax.fori_loop`` (robustness-libraries.md section 4.7):

* start ``x_0 = clip(x + eps * t/||t||)`` (Linf: ``t ~ U(-1,1)``, normalised by its Linf norm;
  L2: ``t ~ N(0, I)``); step ``eta = 2 eps``;
* ``z = P(x_k + eta * sign(g))`` (L2: ``g/(||g||+1e-12)``),
  ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))`` with ``a = 1`` at the first step and 0.75
  after; ``P`` = ball then box;
* checkpoints after the iterations given by :func:`apgd_checkpoints` (22, 41, 57, 70, 80, 87, 93, 99 for
  100 steps); at a checkpoint the step of an example is halved if (1) the loss increased in at most
  ``rho * k`` of the ``k`` steps of the window, or (2) its step was not halved at the previous checkpoint
  and its best loss did not improve since; a halved example restarts from its best point with the
  gradient stored there. As in the reference, the first increase test of the first window compares
  the first loss with 0 (the reference reads an unwritten zero entry of its loss buffer);
* a point counts as broken if *any* iterate is misclassified, and the last misclassified iterate is
  returned. Points misclassified on clean input are returned unchanged (they are not attacked), as in
  AutoAttack. For points never broken :func:`apgd` returns the highest-loss iterate and
  :func:`apgd_targeted` returns ``x`` (the reference returns ``x`` in both cases; accuracy is unaffected).

Restarts are vmapped (restart ``r`` uses ``fold_in(key, r)``); the first restart that breaks a point
gives its output, matching the reference's sequential restarts on the still-robust points.

On CPU the step loop's body has its convolutions rewritten into XLA:CPU's fast layout at trace time
(the same values; :mod:`jadv._cpu_loops` explains why and how to switch it off).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jadv._checks import check_choice, check_positive_int
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import check_attack_inputs, check_key
from jadv.attacks.losses import dlr_targeted, get_loss
from jadv.attacks.projections import _bcast, init_point, project, step_direction

__all__ = ["apgd", "apgd_targeted", "apgd_checkpoints", "apgd_run", "top_targets"]

def apgd_checkpoints(steps: int) -> list[int]:
    """Iteration counts after which APGD checks its step size (Croce & Hein 2020, Sec. 3.2).

    First window ``max(floor(0.22 N), 1)`` iterations, each next window ``max(floor(0.03 N), 1)`` shorter,
    never below ``max(floor(0.06 N), 1)``. ``apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    check_positive_int("steps", steps)
    k = max(int(0.22 * steps), 1)
    k_min = max(int(0.06 * steps), 1)
    decr = max(int(0.03 * steps), 1)
    out, counter = [], 0
    for i in range(steps):
        counter += 1
        if counter == k:
            out.append(i + 1)
            k = max(k - decr, k_min)
            counter = 0
    return out


def _schedule(steps):
    """Static per-iteration arrays: is this iteration a checkpoint, and the window length there."""
    is_check = np.zeros(steps, bool)
    window = np.ones(steps, np.float32)
    prev = 0
    for c in apgd_checkpoints(steps):
        is_check[c - 1] = True
        window[c - 1] = c - prev
        prev = c
    return jnp.asarray(is_check), jnp.asarray(window)


def apgd_run(objective, x, key, eps, steps, norm, rho=0.75):
    """One APGD restart on all examples.

    ``objective(x_adv) -> (loss[B], success[B])`` is maximised. Returns a dict with ``x_adv`` (last
    successful iterate, or the start point), ``success[B]`` (any iterate succeeded), ``x_best`` and
    ``loss_best`` (highest-loss iterate). Low-level: no input checks.
    """
    def total(xa):
        l, s = objective(xa)
        return jnp.sum(l), (l, s)

    grad_fn = jax.grad(total, has_aux=True)
    is_check, window = _schedule(steps)
    b = x.shape[0]
    eps = jnp.asarray(eps, x.dtype)

    x_adv = init_point(key, x, eps, norm, "apgd")
    g, (l, s) = grad_fn(x_adv)
    state = dict(
        x_adv=x_adv, x_old=x_adv, grad=g,
        x_best=x_adv, grad_best=g, loss_best=l,
        x_best_adv=x_adv, success=s,
        step=jnp.full((b,), 2.0, x.dtype) * eps,
        loss_prev=jnp.zeros((b,), x.dtype), n_inc=jnp.zeros((b,), x.dtype),
        loss_best_last_check=l, reduced_last_check=jnp.ones((b,), bool),
    )

    def body(i, st):
        xk = st["x_adv"]
        momentum = xk - st["x_old"]
        a = jnp.where(i > 0, 0.75, 1.0).astype(x.dtype)
        z = project(xk + _bcast(st["step"], xk) * step_direction(st["grad"], norm, 1e-12), x, eps, norm)
        x_new = project(xk + a * (z - xk) + (1.0 - a) * momentum, x, eps, norm)
        g, (l, s) = grad_fn(x_new)
        st = dict(st)
        st["x_old"] = xk
        st["x_best_adv"] = jnp.where(_bcast(s, x_new), x_new, st["x_best_adv"])
        st["success"] = st["success"] | s
        st["n_inc"] = st["n_inc"] + (l > st["loss_prev"]).astype(x.dtype)
        st["loss_prev"] = l
        improved = l > st["loss_best"]
        imp = _bcast(improved, x_new)
        st["x_best"] = jnp.where(imp, x_new, st["x_best"])
        st["grad_best"] = jnp.where(imp, g, st["grad_best"])
        st["loss_best"] = jnp.where(improved, l, st["loss_best"])
        # checkpoint
        chk = is_check[i]
        osc = st["n_inc"] <= window[i] * rho
        no_impr = (~st["reduced_last_check"]) & (st["loss_best_last_check"] >= st["loss_best"])
        reduce = chk & (osc | no_impr)
        st["reduced_last_check"] = jnp.where(chk, osc | no_impr, st["reduced_last_check"])
        st["loss_best_last_check"] = jnp.where(chk, st["loss_best"], st["loss_best_last_check"])
        st["n_inc"] = jnp.where(chk, 0.0, st["n_inc"])
        st["step"] = jnp.where(reduce, st["step"] / 2.0, st["step"])
        red = _bcast(reduce, x_new)
        st["x_adv"] = jnp.where(red, st["x_best"], x_new)
        st["grad"] = jnp.where(red, st["grad_best"], g)
        return st

    # cpu_canonical: the body's convolutions in XLA:CPU's fast layout (see jadv._cpu_loops); no-op off CPU
    st = lax.fori_loop(0, steps, cpu_canonical(body), state)
    return {"x_adv": st["x_best_adv"], "success": st["success"], "x_best": st["x_best"],
            "loss_best": st["loss_best"]}


def _restarts(objective, x, key, eps, steps, norm, restarts):
    """vmapped restarts, combined: first restart that succeeds, else the highest-loss x_best."""
    res = jax.vmap(lambda r: apgd_run(objective, x, jax.random.fold_in(key, r), eps, steps, norm))(
        jnp.arange(restarts))
    success = res["success"][0]
    x_succ = res["x_adv"][0]
    x_best, loss_best = res["x_best"][0], res["loss_best"][0]
    for r in range(1, restarts):
        new = res["success"][r] & ~success
        x_succ = jnp.where(_bcast(new, x), res["x_adv"][r], x_succ)
        success = success | res["success"][r]
        better = res["loss_best"][r] > loss_best
        x_best = jnp.where(_bcast(better, x), res["x_best"][r], x_best)
        loss_best = jnp.where(better, res["loss_best"][r], loss_best)
    return success, x_succ, x_best


def _check(logits_fn, x, y, key, eps, steps, norm, restarts):
    k = check_attack_inputs(logits_fn, x, y, eps, norm)
    check_key(key)
    check_positive_int("steps", steps)
    check_positive_int("restarts", restarts)
    return k


def apgd(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: Scalar, steps: int = 100,
         norm: str = "linf", loss: str = "ce", restarts: int = 1) -> jax.Array:
    """APGD-CE / APGD-DLR, untargeted (Croce & Hein 2020). See the module docstring for the algorithm.

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]``. x ``[B, H, W, C]`` in [0, 1]; y ``[B]`` int.
      key: PRNG key. eps: radius, one scalar (may be traced; vmap over eps for several).
      steps: iterations (100 in AutoAttack). norm: "linf" or "l2".
      loss: "ce", "dlr" (needs K >= 3) or "margin". restarts: >= 1, vmapped.
    Returns: ``x_adv [B, H, W, C]`` (``stop_gradient``), in the eps-ball and [0, 1].
    """
    k = _check(logits_fn, x, y, key, eps, steps, norm, restarts)
    check_choice("loss", loss, ("ce", "dlr", "margin"))
    if loss == "dlr" and k < 3:
        raise ValueError(f"loss 'dlr' needs at least 3 classes, the model has {k}")
    lf = get_loss(loss)
    x = jnp.asarray(x)

    def objective(xa):
        logits = logits_fn(xa)
        return lf(logits, y), jnp.argmax(logits, -1) != y

    clean_wrong = jnp.argmax(logits_fn(x), -1) != y
    success, x_succ, x_best = _restarts(objective, x, key, eps, steps, norm, restarts)
    out = jnp.where(_bcast(success, x), x_succ, x_best)
    return lax.stop_gradient(jnp.where(_bcast(clean_wrong, x), x, out))


def top_targets(logits, n_targets):
    """Targets of APGD-T / FAB-T: the 2nd, 3rd, ..., (n_targets+1)-th largest clean logits.

    ``logits [B, K] -> [n_targets, B]`` int32 (``argsort(logits)[:, -t]`` for t = 2..n_targets+1).
    """
    order = jnp.argsort(logits, axis=-1)
    return jnp.stack([order[:, -t] for t in range(2, n_targets + 2)]).astype(jnp.int32)


def apgd_targeted(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: Scalar,
                  steps: int = 100, norm: str = "linf", n_targets: int = 9, restarts: int = 1) -> jax.Array:
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss, for each of ``n_targets`` targets.

    Targets are the 2nd..(n_targets+1)-th largest clean logits; the targets are run one after another
    (``lax.scan``), a point counts as broken if any iterate for any target is misclassified (as any
    class != y), and the first target that breaks it gives the output. Needs ``K >= 4`` and
    ``n_targets <= K - 1``. Returns ``x_adv [B, H, W, C]``; unbroken points are returned as ``x``.
    """
    k = _check(logits_fn, x, y, key, eps, steps, norm, restarts)
    check_positive_int("n_targets", n_targets)
    if n_targets >= k:
        raise ValueError(f"n_targets must be < number of classes ({k}), got {n_targets}")
    if k < 4:
        raise ValueError(f"APGD-T (targeted DLR loss) needs at least 4 classes, the model has {k}")
    x = jnp.asarray(x)
    clean_logits = logits_fn(x)
    clean_wrong = jnp.argmax(clean_logits, -1) != y
    targets = top_targets(clean_logits, n_targets)

    def one_target(carry, inp):
        broken, x_out = carry
        t_idx, yt = inp

        def objective(xa):
            logits = logits_fn(xa)
            return dlr_targeted(logits, y, yt), jnp.argmax(logits, -1) != y

        success, x_succ, _ = _restarts(objective, x, jax.random.fold_in(key, t_idx), eps, steps, norm, restarts)
        new = success & ~broken
        x_out = jnp.where(_bcast(new, x), x_succ, x_out)
        return (broken | success, x_out), None

    (broken, x_out), _ = lax.scan(one_target, (clean_wrong, x), (jnp.arange(n_targets), targets))
    return lax.stop_gradient(x_out)
