"""Per-example attack losses, plain functions of logits.

Every loss maps ``logits[B, K]`` (and labels ``y[B]`` int32) to a per-example vector ``[B]``.
Untargeted attacks *maximise* these losses; targeted attacks minimise the loss computed with the
target label (PGD) or maximise the targeted DLR (APGD-T), as documented in each attack.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["cross_entropy", "margin", "dlr", "dlr_targeted", "kl_divergence", "get_loss", "LOSSES"]


def _label_logit(logits, y):
    return jnp.take_along_axis(logits, y[:, None].astype(jnp.int32), axis=-1)[:, 0]


def _max_other(logits, y):
    k = logits.shape[-1]
    mask = jax.nn.one_hot(y, k, dtype=bool)
    return jnp.max(jnp.where(mask, -jnp.inf, logits), axis=-1)


def cross_entropy(logits: jax.Array, y: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Softmax cross-entropy ``-log softmax(z)_y`` per example, optionally with label smoothing.

    The one cross-entropy of jadv: the attacks' "ce" loss and every training objective use it.
    With ``label_smoothing = a`` the target is ``(1 - a) onehot(y) + a / K`` (optax's
    ``smooth_labels``; Szegedy et al. 2016), i.e. ``logsumexp(z) - (1 - a) z_y - a mean_k z_k``.
    Computed in at least float32 (bfloat16 logits are promoted).

    Args: logits ``[B, K]``, y ``[B]`` int, label_smoothing: a in [0, 1] (0: none). Returns ``[B]``.
    """
    logits = jnp.asarray(logits)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    label = _label_logit(logits, y)
    ce = jax.nn.logsumexp(logits, axis=-1) - label
    if isinstance(label_smoothing, numbers.Real) and label_smoothing == 0:
        return ce
    return ce + label_smoothing * (label - jnp.mean(logits, axis=-1))


def margin(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Carlini-Wagner margin ``max_{i != y} z_i - z_y`` per example (Carlini & Wagner 2017).

    Positive exactly when the example is misclassified (up to ties). Returns ``[B]``.
    """
    return _max_other(logits, y) - _label_logit(logits, y)


def dlr(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Difference of Logits Ratio (Croce & Hein 2020, "Reliable evaluation ..."):

    ``DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` with ``z`` sorted descending.
    Needs ``K >= 3``. Returns ``[B]``.
    """
    if logits.shape[-1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, got {logits.shape[-1]}")
    zs = jnp.sort(logits, axis=-1)
    return -(_label_logit(logits, y) - _max_other(logits, y)) / (zs[:, -1] - zs[:, -3] + 1e-12)


def dlr_targeted(logits: jax.Array, y: jax.Array, y_target: jax.Array) -> jax.Array:
    """Targeted DLR (Croce & Hein 2020): ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2 + 1e-12)``.

    Maximised by APGD-T. Needs ``K >= 4``. Returns ``[B]``.
    """
    if logits.shape[-1] < 4:
        raise ValueError(f"the targeted DLR loss needs at least 4 classes, got {logits.shape[-1]}")
    zs = jnp.sort(logits, axis=-1)
    num = _label_logit(logits, y) - _label_logit(logits, y_target)
    return -num / (zs[:, -1] - 0.5 * (zs[:, -3] + zs[:, -4]) + 1e-12)


def kl_divergence(clean_logits: jax.Array, adv_logits: jax.Array) -> jax.Array:
    """Per-example ``KL(p(x) || p(x'))`` with ``p = softmax`` (the TRADES robust term, Zhang et al. 2019).

    Args: clean_logits ``[B, K]`` (of x), adv_logits ``[B, K]`` (of x'). Returns ``[B]``.
    Gradients flow through both arguments (TRADES does not stop them).
    """
    logp = jax.nn.log_softmax(clean_logits, axis=-1)
    logq = jax.nn.log_softmax(adv_logits, axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


LOSSES = {"ce": cross_entropy, "margin": margin, "dlr": dlr}


def get_loss(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Loss function ``(logits, y) -> [B]`` by name: ``"ce"``, ``"dlr"`` or ``"margin"``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(map(repr, LOSSES))}")
    return LOSSES[name]
