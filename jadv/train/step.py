"""Pure train and eval steps: ``state, metrics = train_step(state, batch, key)``.

The caller jits the step (``jax.jit(step, donate_argnums=0)``). The key passed in is the run's
base key; the step folds in ``state.step``, so a resumed run draws exactly the same numbers.
A batch is ``{"image": uint8 [B,H,W,C], "label": int32 [B]}`` (optionally ``"mask"`` bool [B]);
conversion to float and augmentation happen inside the compiled step.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jadv._checks import check_bn_mode
from jadv.attacks.losses import cross_entropy
from jadv.attacks.pgd import pgd
from jadv.train.model_fns import ModelFns
from jadv.train.objectives import Objective, as_objective


def images_to_float(images: jax.Array) -> jax.Array:
    """uint8 [B,H,W,C] -> float32 in [0, 1]; float input is passed through."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(tree)))


def make_train_step(objective: Objective | Callable, *, augment: Callable | None = None, ema_decay: float | None = None,
                    steps_per_epoch: int | None = None) -> Callable:
    """Build ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      objective: an :class:`~jadv.train.objectives.Objective` (from ``make_objective``) or a
        plain ``objective(model, params, batch_stats, x, y, key) -> (loss, (stats, metrics))``.
      augment: optional ``augment(key, x) -> x`` on float images [B,H,W,C] (e.g. random crop +
        flip), applied before the objective.
      ema_decay: keep ``state.ema_params`` as an exponential moving average with this decay
        (updated once per train step, i.e. once per minibatch also for Free-AT).
      steps_per_epoch: gives the objective the fractional epoch ``state.step / steps_per_epoch``
        (needed by eps warm-up and AWP warm-up; a ValueError if such an objective gets None).

    One step: ``inputs = prepare(params)`` (attack, not differentiated); if the objective has a
    ``perturb`` hook (AWP), ``v = perturb(...)`` and ``w <- w + v``; loss and gradient at ``w``;
    optimizer update at ``w``; then ``w <- w - v``. Free-AT (``objective.replays = m``) instead
    replays the batch m times, each replay one optimizer update sharing one backward pass for
    the parameters and the persistent perturbation in ``state.extra["delta"]``.

    metrics always hold ``loss``, ``grad_norm`` and ``finite`` (1.0 when loss and gradients are
    finite), plus whatever the objective reports (AWP adds ``awp_norm``, the norm of ``v``).
    """
    obj = as_objective(objective)
    if obj.needs_epoch and not steps_per_epoch:
        raise ValueError(f"objective {obj.name!r} has an eps or AWP warm-up and needs steps_per_epoch")
    free = obj.update_extra is not None

    def train_step(state, batch, key):
        key = jax.random.fold_in(key, state.step)
        aug_key, obj_key = jax.random.split(key)
        x = images_to_float(batch["image"])
        y = batch["label"]
        if augment is not None:
            x = augment(aug_key, x)
        model = ModelFns(state.apply_fn)
        epoch = (state.step.astype(jnp.float32) / float(steps_per_epoch)) if steps_per_epoch \
            else jnp.zeros((), jnp.float32)
        if free:
            return _free_step(obj, state, model, x, y, epoch, ema_decay)

        inputs, stats = obj.prepare(model, state.params, state.batch_stats, x, y, obj_key, epoch)
        params_at, v = state.params, None
        if obj.perturb is not None:
            v = obj.perturb(model, state.params, stats, x, y, inputs, epoch)
            params_at = jax.tree_util.tree_map(jnp.add, state.params, v)

        def loss_fn(params):
            return obj.loss(model, params, stats, x, y, inputs, epoch)

        (loss, (new_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params_at)
        updates, opt_state = state.tx.update(grads, state.opt_state, params_at)
        params = optax.apply_updates(params_at, updates)
        if v is not None:
            params = jax.tree_util.tree_map(jnp.subtract, params, v)
            metrics = dict(metrics, awp_norm=_tree_norm(v))
        ema = _ema(state.ema_params, params, ema_decay)
        grad_norm = _tree_norm(grads)
        metrics = dict(metrics, loss=loss, grad_norm=grad_norm,
                       finite=(jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.float32))
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=new_stats,
                                  opt_state=opt_state, ema_params=ema)
        return new_state, metrics

    return train_step


def _ema(ema, params, decay):
    if decay is None or ema is None:
        return ema
    return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def _free_step(obj, state, model, x, y, epoch, ema_decay):
    """Free-AT: ``obj.replays`` optimizer updates on one batch, delta carried in ``state.extra``."""
    extra = state.extra if isinstance(state.extra, dict) else {}
    if "delta" not in extra:
        raise ValueError(f"objective {obj.name!r} keeps its perturbation in state.extra['delta']; create the "
                         "state with TrainState.create(..., extra=objective.init_extra(batch_shape))")
    if extra["delta"].shape != x.shape:
        raise ValueError(f"state.extra['delta'] has shape {extra['delta'].shape} but the batch has shape "
                         f"{x.shape}; Free-AT needs batches of one fixed shape")

    def replay(carry, _):
        params, opt_state, stats, delta = carry

        def loss_fn(p, d):
            return obj.loss(model, p, stats, x, y, d, epoch)

        (loss, (new_stats, metrics)), (g_p, g_d) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(params, delta)
        delta = obj.update_extra(delta, g_d, x, epoch)
        updates, opt_state = state.tx.update(g_p, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = dict(metrics, loss=loss, grad_norm=_tree_norm(g_p))
        return (params, opt_state, new_stats, delta), metrics

    carry = (state.params, state.opt_state, state.batch_stats, extra["delta"])
    (params, opt_state, stats, delta), per_replay = jax.lax.scan(replay, carry, None, length=obj.replays)
    metrics = jax.tree_util.tree_map(jnp.mean, per_replay)
    finite = jnp.all(jnp.isfinite(per_replay["loss"])) & jnp.all(jnp.isfinite(per_replay["grad_norm"]))
    metrics["finite"] = finite.astype(jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=stats, opt_state=opt_state,
                              ema_params=_ema(state.ema_params, params, ema_decay),
                              extra=dict(extra, delta=delta))
    return new_state, metrics


def make_eval_step(*, use_ema: bool = True, bn_set: str = "clean") -> Callable:
    """Build ``eval_step(state, batch) -> {"correct", "count", "loss_sum"}`` (running BN stats).

    Padded rows (``batch["mask"] == False``) are not counted.
    """

    def eval_step(state, batch):
        x = images_to_float(batch["image"])
        y = batch["label"]
        mask = batch.get("mask", jnp.ones(y.shape, bool))
        logits = ModelFns(state.apply_fn)._apply(state.eval_variables(use_ema), x, train=False, bn_set=bn_set)
        nll = cross_entropy(logits, y)
        correct = (jnp.argmax(logits, -1) == y) & mask
        return {"correct": jnp.sum(correct), "count": jnp.sum(mask),
                "loss_sum": jnp.sum(jnp.where(mask, nll, 0.0))}

    return eval_step


def make_robust_eval_step(*, eps: float, step_size: float, steps: int, norm: str = "linf",
                          use_ema: bool = True, bn_set: str = "clean", bn_mode: str = "eval") -> Callable:
    """Build ``robust_eval_step(state, batch, key) -> {"correct", "robust", "count"}``.

    A cheap PGD (:func:`jadv.attacks.pgd`, the norm's default random start: uniform for Linf,
    ball for L2; any-iterate success) through BN set ``bn_set``; an example counts as robust when
    it is classified correctly both clean and under attack. ``bn_mode`` "eval" (default, the
    test-time convention) uses running BN statistics; "train_no_update" uses the batch's own
    statistics and leaves the running ones alone (the catastrophic-overfitting check of Wong et al.
    2020, whose model stays in train mode). Padded rows (``batch["mask"] == False``) are not
    counted. Used by the loop for the per-epoch ``val_robust_accuracy`` on a fixed held-out
    subset and for the FGSM-RS early stop. ``batch["image"]`` may be uint8 or float in [0, 1].
    """
    check_bn_mode("robust_eval_step bn_mode", bn_mode, ("eval", "train_no_update"))

    def robust_eval_step(state, batch, key):
        x = images_to_float(batch["image"])
        y = batch["label"]
        mask = batch.get("mask", jnp.ones(y.shape, bool))
        variables = state.eval_variables(use_ema)
        logits_fn = ModelFns(state.apply_fn).logits_fn(variables["params"], variables.get("batch_stats", {}),
                                                       bn_mode=bn_mode, bn_set=bn_set)
        x_adv = pgd(logits_fn, x, y, key=key, eps=eps, step_size=step_size, steps=steps, norm=norm)
        clean_ok = (jnp.argmax(logits_fn(x), -1) == y) & mask
        adv_ok = (jnp.argmax(logits_fn(x_adv), -1) == y) & clean_ok
        return {"correct": jnp.sum(clean_ok), "robust": jnp.sum(adv_ok), "count": jnp.sum(mask)}

    return robust_eval_step
