"""Optax optimizers and learning-rate schedules built from a config section.

Schedules (all in optimizer steps): ``constant``; ``piecewise`` (multiply by ``decay_factor`` at
the given fractions of training, e.g. 0.5 and 0.75 as in Rice et al. 2020); ``cosine`` (with
linear warm-up); ``onecycle`` (linear 0 -> lr -> 0, the cyclic schedule of Wong et al. 2020).
Weight decay is coupled (added to the gradient before momentum), as PyTorch's SGD does, and
applies to every parameter unless ``weight_decay_kernels_only``.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import optax

SCHEDULES = ("constant", "piecewise", "cosine", "onecycle")
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_schedule(cfg: Mapping, total_steps: int) -> optax.Schedule:
    """Learning-rate schedule over ``total_steps`` optimizer steps."""
    name, lr = cfg.get("schedule", "constant"), float(cfg.lr)
    warmup = int(round(float(cfg.get("warmup_fraction", 0.0)) * total_steps))
    if name == "constant":
        sched = optax.constant_schedule(lr)
    elif name == "piecewise":
        bounds = {int(f * total_steps): float(cfg.get("decay_factor", 0.1))
                  for f in cfg.get("decay_at", (0.5, 0.75))}
        sched = optax.piecewise_constant_schedule(lr, bounds)
    elif name == "cosine":
        sched = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
    elif name == "onecycle":
        peak = max(int(float(cfg.get("peak_fraction", 0.4)) * total_steps), 1)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, lr, peak), optax.linear_schedule(lr, 0.0, max(total_steps - peak, 1))],
            [peak])
    else:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    if warmup:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched


def _kernel_mask(params):
    return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg: Mapping, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optimizer, schedule) from ``cfg`` with fields name, lr, momentum, nesterov,
    weight_decay, weight_decay_kernels_only, schedule and its parameters, grad_clip."""
    name = cfg.get("name", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    schedule = make_schedule(cfg, total_steps)
    wd = float(cfg.get("weight_decay", 0.0))
    mask = _kernel_mask if cfg.get("weight_decay_kernels_only", False) else None
    parts = []
    if cfg.get("grad_clip"):
        parts.append(optax.clip_by_global_norm(float(cfg.grad_clip)))
    if name == "adamw":
        parts.append(optax.adamw(schedule, weight_decay=wd, mask=mask))
        return optax.chain(*parts), schedule
    if wd:
        parts.append(optax.add_decayed_weights(wd, mask))
    if name == "sgd":
        parts.append(optax.sgd(schedule, momentum=float(cfg.get("momentum", 0.9)) or None,
                               nesterov=bool(cfg.get("nesterov", False))))
    else:
        parts.append(optax.adam(schedule))
    return optax.chain(*parts), schedule
