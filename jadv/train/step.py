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

from jadv.train.model_fns import ModelFns


def images_to_float(images):
    """uint8 [B,H,W,C] -> float32 in [0, 1]; float input is passed through."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


def make_train_step(objective: Callable, *, augment: Callable | None = None,
                    ema_decay: float | None = None) -> Callable:
    """Build ``train_step(state, batch, key) -> (state, metrics)``.

    Args:
      objective: ``objective(model, params, batch_stats, x, y, key) -> (loss, (stats, metrics))``
        (see :mod:`jadv.train.objectives`).
      augment: optional ``augment(key, x) -> x`` on float images [B,H,W,C] (e.g. random crop +
        flip), applied before the objective.
      ema_decay: keep ``state.ema_params`` as an exponential moving average with this decay.

    metrics always hold ``loss``, ``grad_norm`` and ``finite`` (1.0 when loss and gradients are
    finite), plus whatever the objective reports.
    """

    def train_step(state, batch, key):
        key = jax.random.fold_in(key, state.step)
        aug_key, obj_key = jax.random.split(key)
        x = images_to_float(batch["image"])
        y = batch["label"]
        if augment is not None:
            x = augment(aug_key, x)
        model = ModelFns(state.apply_fn)

        def loss_fn(params):
            return objective(model, params, state.batch_stats, x, y, obj_key)

        (loss, (new_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema_decay is not None and ema is not None:
            ema = jax.tree_util.tree_map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
        grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads)))
        metrics = dict(metrics, loss=loss, grad_norm=grad_norm,
                       finite=(jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.float32))
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=new_stats,
                                  opt_state=opt_state, ema_params=ema)
        return new_state, metrics

    return train_step


def make_eval_step(*, use_ema: bool = True, bn_set: str = "clean") -> Callable:
    """Build ``eval_step(state, batch) -> {"correct", "count", "loss_sum"}`` (running BN stats).

    Padded rows (``batch["mask"] == False``) are not counted.
    """

    def eval_step(state, batch):
        x = images_to_float(batch["image"])
        y = batch["label"]
        mask = batch.get("mask", jnp.ones(y.shape, bool))
        logits = state.apply_fn(state.eval_variables(use_ema), x, train=False, bn_set=bn_set)
        logp = jax.nn.log_softmax(logits)
        nll = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
        correct = (jnp.argmax(logits, -1) == y) & mask
        return {"correct": jnp.sum(correct), "count": jnp.sum(mask),
                "loss_sum": jnp.sum(jnp.where(mask, nll, 0.0))}

    return eval_step
