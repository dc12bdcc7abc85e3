"""Projected gradient descent (Madry et al. 2018, "Towards Deep Learning Models Resistant to
Adversarial Attacks"), Linf and L2, with random restarts and per-example worst-case selection.

Two entry points:

* :func:`pgd` attacks a classifier ``logits_fn`` with a named loss, untargeted or targeted.
* :func:`pgd_generic` maximises any per-example objective ``loss_fn(x_adv) -> [B]`` (e.g. the TRADES
  KL term, whose clean logits the caller closes over) and returns the last iterate. Training
  objectives build on it.

Step (section 4.2 of the reference notes): Linf ``x <- x + a*sign(g)``; L2 ``x <- x + a*g/(||g||+1e-10)``;
then projection onto the eps-ball and the [0, 1] box. Steps run in ``lax.fori_loop`` (on CPU its body's
convolutions are rewritten into XLA:CPU's fast layout at trace time, the same values:
:mod:`jadv._cpu_loops`); restarts are ``vmap``-ped, restart ``r`` uses ``jax.random.fold_in(key, r)``
(so restart 0 is the same draw for any number of restarts).

**Which iterate is returned** (``select``):

* ``"best"`` (default, AutoAttack semantics): every iterate of every restart is a candidate, including
  the start point. An example counts as broken if *any* candidate is adversarial (misclassified, or
  classified as ``y_target`` when targeted); then a successful candidate is returned (the one with the
  highest loss among the successful ones). Otherwise the candidate with the highest attack loss is
  returned. Formally: the candidate maximising the pair (success, loss) lexicographically.
* ``"last"``: only the last iterate of each restart is a candidate; restarts are combined by the same
  (success, loss) rule (MadryLab/robustness keeps a restart where it misclassifies; fast_adversarial
  keeps the max-loss restart: both are special cases).

The output is wrapped in ``lax.stop_gradient`` (as every reference implementation detaches ``x_adv``):
adversarial training differentiates the loss *at* x_adv with respect to the parameters, and
TRADES/MART treat x' as a constant too. Pass ``stop_gradient=False`` to :func:`pgd_generic` to
differentiate through the unrolled attack instead (expensive; sign steps have zero derivative).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jadv._checks import (check_choice, check_nonempty_batch, check_nonnegative, check_norm, check_positive_int,
                          check_scalar)
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import (check_attack_inputs, check_eps, check_images_np, check_key, check_labels_np,
                                    check_scalar_eps)
from jadv.attacks.losses import get_loss
from jadv.attacks.projections import _bcast, init_point, project, resolve_init, step_direction

__all__ = ["pgd", "pgd_generic", "attack_objective", "select_better"]

def select_better(new, old):
    """Per-example choice between candidates ``(x, loss, success)``: the new one wins if it succeeds
    and the old one did not, or if both agree on success and its loss is strictly higher."""
    xn, ln, sn = new
    xo, lo, so = old
    better = (sn & ~so) | ((sn == so) & (ln > lo))
    return (jnp.where(_bcast(better, xn), xn, xo), jnp.where(better, ln, lo), jnp.where(better, sn, so))


def attack_objective(logits_fn, y, *, loss="ce", targeted=False, y_target=None):
    """``objective(x_adv) -> (loss[B], success[B])`` to maximise.

    Untargeted: ``loss(logits, y)``, success = ``argmax != y``. Targeted: ``-loss(logits, y_target)``
    (the loss toward the target is minimised), success = ``argmax == y_target``.
    """
    lf = get_loss(loss)

    def objective(x_adv):
        logits = logits_fn(x_adv)
        pred = jnp.argmax(logits, axis=-1)
        if targeted:
            return -lf(logits, y_target), pred == y_target
        return lf(logits, y), pred != y

    return objective


def _pgd_single(objective, x, key, eps, step_size, steps, norm, init, select):
    """One restart. Returns the chosen candidate ``(x, loss, success)``."""
    x_start = init_point(key, x, eps, norm, init)

    def total(xa):
        l, s = objective(xa)
        return jnp.sum(l), (l, s)

    grad_fn = jax.grad(total, has_aux=True)
    b = x.shape[0]
    best0 = (x_start, jnp.full((b,), -jnp.inf, x.dtype), jnp.zeros((b,), bool))

    def body(_, carry):
        xa, best = carry
        g, (l, s) = grad_fn(xa)
        if select == "best":
            best = select_better((xa, l, s), best)
        xa = project(xa + step_size * step_direction(g, norm), x, eps, norm)
        return xa, best

    # cpu_canonical: the body's convolutions in XLA:CPU's fast layout (see jadv._cpu_loops); no-op off CPU
    xa, best = lax.fori_loop(0, steps, cpu_canonical(body), (x_start, best0))
    l, s = objective(xa)
    if select == "best":
        return select_better((xa, l, s), best)
    return xa, l, s


def _check_common(eps, step_size, steps, norm, init, restarts) -> str:
    """Check the hyperparameters shared by :func:`pgd` and :func:`pgd_generic`; return the init name
    (``None`` resolved to the norm's default)."""
    check_norm(norm)
    check_scalar("step_size", step_size, "PGD takes one step size for the whole batch")
    check_nonnegative("step_size", step_size)
    check_positive_int("steps", steps)
    check_positive_int("restarts", restarts)
    return resolve_init(init, norm)


def pgd(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: Scalar, step_size: Scalar,
        steps: int, norm: str = "linf", restarts: int = 1, init: str | None = None, loss: str = "ce",
        targeted: bool = False, y_target: ArrayLike | None = None, select: str = "best") -> jax.Array:
    """PGD attack on ``logits_fn`` (Madry et al. 2018).

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]``.
      x: images ``[B, H, W, C]`` float in [0, 1]. y: labels ``[B]`` int.
      key: PRNG key (restart ``r`` uses ``fold_in(key, r)``).
      eps: radius, one scalar (may be traced: vmap over eps for several radii; an array
        of radii is a ValueError). step_size: step length alpha.
      steps: number of gradient steps (>= 1). norm: "linf" or "l2". restarts: >= 1 (vmapped).
      init: start point, a name from :data:`jadv.attacks.INITS` that is defined for ``norm``, or
        ``None`` (default) for the norm's default random start
        (:data:`jadv.attacks.projections.DEFAULT_INITS`): "uniform" in the Linf box for
        ``norm="linf"``, "ball" (uniform in the L2 ball) for ``norm="l2"``. An explicit init that
        does not fit the norm (e.g. "uniform" with L2) is a ValueError.
      loss: "ce", "margin" or "dlr". targeted: minimise the loss toward ``y_target[B]`` instead.
      select: "best" (any iterate counts, default) or "last"; see the module docstring.
    Returns:
      ``x_adv [B, H, W, C]`` inside the eps-ball and [0, 1], wrapped in ``stop_gradient``.
    """
    k = check_attack_inputs(logits_fn, x, y, eps, norm)
    check_key(key)
    init = _check_common(eps, step_size, steps, norm, init, restarts)
    check_choice("loss", loss, ("ce", "margin", "dlr"))
    check_choice("select", select, ("best", "last"))
    if loss == "dlr" and k < 3:
        raise ValueError(f"loss 'dlr' needs at least 3 classes, the model has {k}")
    if targeted:
        if y_target is None:
            raise ValueError("targeted=True needs y_target (target labels [B])")
        check_labels_np(y_target, x.shape[0], k, name="y_target")
    elif y_target is not None:
        raise ValueError("y_target was given but targeted=False; pass targeted=True for a targeted attack")
    objective = attack_objective(logits_fn, y, loss=loss, targeted=targeted, y_target=y_target)
    x = jnp.asarray(x)

    def run(r):
        return _pgd_single(objective, x, jax.random.fold_in(key, r), eps, step_size, steps, norm, init, select)

    xs, ls, ss = jax.vmap(run)(jnp.arange(restarts))
    best = (xs[0], ls[0], ss[0])
    for r in range(1, restarts):
        best = select_better((xs[r], ls[r], ss[r]), best)
    return lax.stop_gradient(best[0])


def pgd_generic(loss_fn: Callable[[jax.Array], jax.Array], x: ArrayLike, *, key: jax.Array, eps: Scalar,
                step_size: Scalar, steps: int, norm: str = "linf", init: str | None = None,
                stop_gradient: bool = True) -> jax.Array:
    """Maximise a per-example objective by projected gradient ascent and return the last iterate.

    For training objectives, e.g. the TRADES inner maximisation (Zhang et al. 2019)::

        clean = logits_fn(x)
        x_adv = pgd_generic(lambda xa: kl_divergence(clean, logits_fn(xa)), x, key=k, eps=0.031,
                            step_size=0.007, steps=10, init="normal_0.001")

    Args:
      loss_fn: ``x_adv[B, ...] -> [B]`` per-example objective (its sum is differentiated; per-example
        normalisation of the step makes the batch size irrelevant).
      x: ``[B, ...]`` float in [0, 1], B >= 1. key, eps, step_size, steps, norm, init: as in :func:`pgd`
        (``init=None``: "uniform" for Linf, "ball" for L2).
      stop_gradient: wrap the result in ``lax.stop_gradient`` (default, as the references detach x').
    Returns: ``x_adv [B, ...]``, the last iterate (the TRADES/MART/PGD-AT convention).
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable x_adv -> per-example loss, got {type(loss_fn).__name__}")
    check_images_np(x, ndim=None)
    if jnp.ndim(x) < 1:
        raise ValueError(f"x must be a batch [B, ...], got shape {jnp.shape(x)}")
    check_nonempty_batch(x)
    check_key(key)
    init = _check_common(eps, step_size, steps, norm, init, 1)
    check_scalar_eps(eps)
    check_eps(eps, norm, x)

    def objective(xa):
        l = loss_fn(xa)
        if jnp.shape(l) != (x.shape[0],):
            raise ValueError(f"loss_fn must return one value per example, shape ({x.shape[0]},), got {jnp.shape(l)}")
        return l, jnp.zeros((x.shape[0],), bool)

    xa, _, _ = _pgd_single(objective, jnp.asarray(x), key, eps, step_size, steps, norm, init, "last")
    return lax.stop_gradient(xa) if stop_gradient else xa
