"""Training-time attacks with an explicit batch-norm mode, and epsilon/step-size warm-up.

:func:`craft` maximises a per-example loss of the logits by projected sign (Linf) or normalised
(L2) gradient steps from a named start point, the PGD of Madry et al. 2018 ("Towards Deep
Learning Models Resistant to Adversarial Attacks"). It differs from
:func:`jadv.attacks.pgd_generic` (which it calls for two of the three modes) only in that it
knows about batch norm (``attack_bn_mode``, robustness-libraries.md section 4.5):

- ``"eval"``: running statistics, nothing updated (MadryLab/robustness, TRADES, MART);
- ``"train_no_update"``: batch statistics of each attack iterate, running statistics untouched
  (DeepMind's JAX code, ``test_local_stats=True``);
- ``"train"``: batch statistics, and the running statistics are updated by *every* attack
  forward pass, as PyTorch does for a model left in ``train()`` mode (fast_adversarial,
  robust_overfitting, AWP). The statistics are threaded through the ``lax.fori_loop`` and
  returned.

:func:`warmup_factor` gives the linear warm-up of eps (and the step size) over the first epochs.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jadv._checks import check_bn_mode, check_nonnegative, check_norm, check_positive_int
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, PyTree, Scalar
from jadv.attacks.pgd import pgd_generic
from jadv.attacks.projections import check_init, init_point, project, step_direction
from jadv.train.model_fns import ATTACK_BN_MODES, ModelFns

__all__ = ["craft", "warmup_factor", "ATTACK_BN_MODES"]


def warmup_factor(epoch: ArrayLike, warmup_epochs: float) -> jax.Array:
    """Linear ramp ``min(1, epoch / warmup_epochs)`` (1 when ``warmup_epochs == 0``).

    ``epoch`` is the fractional epoch ``step / steps_per_epoch`` (a scalar, may be traced), so
    eps grows every step, as in the MNIST/CIFAR eps warm-ups of Gowal et al. 2018 (IBP) and
    the "epsilon ramp" of Wong et al. 2020's MNIST runs. Returns a float32 scalar.
    """
    check_nonnegative("warmup_epochs", warmup_epochs)
    if not warmup_epochs:
        return jnp.ones((), jnp.float32)
    return jnp.minimum(jnp.asarray(epoch, jnp.float32) / float(warmup_epochs), 1.0)


def craft(model: ModelFns, params: PyTree, batch_stats: PyTree, x: jax.Array,
          loss_of_logits: Callable[[jax.Array], jax.Array], *, key: jax.Array, eps: Scalar, step_size: Scalar,
          steps: int, norm: str = "linf", init: str = "uniform", bn_mode: str = "eval",
          bn_set: str = "clean") -> tuple[jax.Array, PyTree]:
    """Adversarial inputs for training: maximise ``sum_i loss_of_logits(f(x'))_i`` over the ball.

    Args:
      model: a :class:`~jadv.train.model_fns.ModelFns`.
      params, batch_stats: the model's variables (the attack never differentiates them).
      x: clean images ``[B, H, W, C]`` float in [0, 1].
      loss_of_logits: ``logits[B, K] -> [B]`` per-example loss to maximise (e.g. CE with the
        labels, or the TRADES KL against fixed clean logits).
      key: PRNG key for the start point. eps, step_size: scalars (may be traced, e.g. during an
        eps warm-up). steps: int >= 1. norm: "linf" or "l2". init: a name from
        :data:`jadv.attacks.INITS` ("uniform", "normal_0.001", "zero", ...).
      bn_mode: "eval", "train_no_update" or "train" (see the module docstring).
      bn_set: which BN set the attack runs through ("clean"/"adv", dual-BN models only).
    Returns:
      ``(x_adv [B, H, W, C], batch_stats)``: the last iterate (stop-gradient), inside the ball
      and [0, 1]; ``batch_stats`` updated by every attack step for ``bn_mode="train"``,
      unchanged otherwise.
    """
    check_bn_mode("attack_bn_mode", bn_mode, ATTACK_BN_MODES)
    check_norm(norm)
    check_init(init, norm)
    check_positive_int("steps", steps)
    check_nonnegative("eps", eps)
    check_nonnegative("step_size", step_size)
    if bn_mode != "train" or not batch_stats:
        fn = model.logits_fn(params, batch_stats, bn_mode="eval" if bn_mode == "eval" else "train_no_update",
                             bn_set=bn_set)
        x_adv = pgd_generic(lambda xa: loss_of_logits(fn(xa)), x, key=key, eps=eps,
                            step_size=step_size, steps=steps, norm=norm, init=init)
        return x_adv, batch_stats

    def total(xa, stats):
        logits, new_stats = model.logits(params, stats, xa, train=True, bn_set=bn_set, update_stats=True)
        return jnp.sum(loss_of_logits(logits)), new_stats

    grad_fn = jax.grad(total, has_aux=True)

    def body(_, carry):
        xa, stats = carry
        g, stats = grad_fn(xa, stats)
        return project(xa + step_size * step_direction(g, norm), x, eps, norm), stats

    x0 = init_point(key, x, eps, norm, init)
    # cpu_canonical: the body's convolutions in XLA:CPU's fast layout (see jadv._cpu_loops); no-op off CPU
    xa, stats = lax.fori_loop(0, steps, cpu_canonical(body), (x0, batch_stats))
    return lax.stop_gradient(xa), jax.tree_util.tree_map(lax.stop_gradient, stats)
