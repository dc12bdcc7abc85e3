"""Training objectives: each method is a pure loss function selected by name in the config.

An objective has the signature::

    loss, (new_batch_stats, metrics) = objective(model, params, batch_stats, x, y, key)

with ``model`` a :class:`~jadv.train.model_fns.ModelFns`, x [B,H,W,C] float32 in [0, 1] (already
augmented), y [B] int32, and ``key`` a PRNG key already folded with the step. ``loss`` is the
scalar mean loss that the step differentiates with respect to ``params``; ``metrics`` is a dict
of scalars logged to ``metrics.jsonl``.

``make_objective(config.objective)`` builds the function from a config section whose ``name``
selects the method.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

OBJECTIVES: dict[str, Callable] = {}


def register(name: str):
    """Decorator adding an objective factory ``factory(cfg) -> objective`` under ``name``."""

    def wrap(factory):
        OBJECTIVES[name] = factory
        return factory

    return wrap


def cross_entropy(logits, y, label_smoothing: float = 0.0):
    """Per-example softmax cross-entropy. logits [B,K], y [B] int -> [B]."""
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax_one_hot(y, num_classes), label_smoothing) if label_smoothing \
        else jax_one_hot(y, num_classes)
    return optax.softmax_cross_entropy(logits, targets)


def jax_one_hot(y, num_classes):
    return (y[:, None] == jnp.arange(num_classes)[None, :]).astype(jnp.float32)


def accuracy(logits, y):
    """Share of rows whose argmax equals the label. logits [B,K], y [B] -> scalar."""
    return jnp.mean(jnp.argmax(logits, -1) == y)


@register("standard")
def standard(cfg) -> Callable:
    """Standard (clean) training with cross-entropy; optional ``label_smoothing``."""
    smoothing = float(cfg.get("label_smoothing", 0.0))

    def objective(model, params, batch_stats, x, y, key):
        logits, new_stats = model.logits(params, batch_stats, x, train=True)
        loss = jnp.mean(cross_entropy(logits, y, smoothing))
        return loss, (new_stats, {"loss": loss, "accuracy": accuracy(logits, y)})

    return objective


def make_objective(cfg) -> Callable:
    """Objective named ``cfg.name`` with its hyperparameters from ``cfg``."""
    name = cfg.get("name", "standard")
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; available: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name](cfg)
