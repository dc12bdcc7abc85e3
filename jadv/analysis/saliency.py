"""Input-gradient saliency and how well it aligns with image edges (study 2).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019), Fig. 2: loss gradients with respect to the input of adversarially trained models look like
the object (edges, shapes), those of standard models look like noise. The paper shows them
clipped to +-3 standard deviations and rescaled to [0, 1] (:func:`saliency_display`);
:func:`saliency_alignment` turns "more interpretable" into a number: the Pearson correlation
between ``|grad|`` and a Sobel edge map of the image.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jadv._checks import check_choice, check_images, check_labels
from jadv._typing import ArrayLike, LogitsFn
from jadv.attacks.losses import get_loss

__all__ = ["input_gradients", "saliency_display", "sobel_edges", "saliency_alignment"]

_LOSSES = ("ce", "margin", "dlr")


def input_gradients(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, loss: str = "ce") -> jax.Array:
    """Gradient of each example's loss with respect to its input.

    Args:
      logits_fn: ``x [B,H,W,C] -> logits [B,K]``; it must not mix examples (batch norm in eval
        mode), so the gradient of the summed loss is the per-example gradient.
      x: ``[B, H, W, C]`` float images in [0, 1].
      y: ``[B]`` int labels.
      loss: "ce" (cross-entropy, as in the paper), "margin" (``max_{j!=y} z_j - z_y``) or "dlr"
        (the per-example losses of :mod:`jadv.attacks.losses`).

    Returns:
      ``[B, H, W, C]`` float32 gradients (pointing towards higher loss).
    """
    check_images(x)
    check_labels(y, jnp.shape(x)[0])
    check_choice("loss", loss, _LOSSES)

    def total(xx):
        logits = logits_fn(xx)
        if jnp.ndim(logits) != 2 or logits.shape[0] != xx.shape[0]:
            raise ValueError(f"logits_fn must return [B, K] logits, got shape {jnp.shape(logits)}")
        return jnp.sum(get_loss(loss)(logits.astype(jnp.float32), y))

    return jax.grad(total)(jnp.asarray(x, jnp.float32))


def _check_batch(a, name):
    if jnp.ndim(a) != 4:
        raise ValueError(f"{name} must be [B, H, W, C], got shape {jnp.shape(a)}")
    if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
        raise TypeError(f"{name} must be a float array, got dtype {jnp.result_type(a)}")


def saliency_display(grad: ArrayLike, *, n_std: float = 3.0) -> jax.Array:
    """The paper's display of a gradient: per image, clip to mean +- ``n_std`` standard deviations
    (over all pixels and channels), then rescale linearly so the clipped range maps to [0, 1]
    (min -> 0, max -> 1). A constant gradient becomes 0.5 everywhere.

    Args:
      grad: ``[B, H, W, C]`` gradients. n_std: clipping width (> 0; the paper: 3).

    Returns:
      ``[B, H, W, C]`` float32 images in [0, 1].
    """
    _check_batch(grad, "grad")
    if not n_std > 0:
        raise ValueError(f"n_std must be > 0, got {n_std}")
    g = jnp.asarray(grad, jnp.float32)
    axes = (1, 2, 3)
    mu = jnp.mean(g, axis=axes, keepdims=True)
    sd = jnp.std(g, axis=axes, keepdims=True)
    g = jnp.clip(g, mu - n_std * sd, mu + n_std * sd)
    lo, hi = jnp.min(g, axis=axes, keepdims=True), jnp.max(g, axis=axes, keepdims=True)
    span = hi - lo
    return jnp.where(span > 0, (g - lo) / jnp.where(span > 0, span, 1.0), 0.5)


def _gray(x):
    c = x.shape[-1]
    if c == 3:
        return x @ jnp.array([0.299, 0.587, 0.114], x.dtype)  # ITU-R BT.601 luma
    return jnp.mean(x, axis=-1)


def sobel_edges(x: ArrayLike) -> jax.Array:
    """Sobel gradient magnitude of the grey-scale image (replicate padding at the border).

    Args:
      x: ``[B, H, W, C]`` images; RGB (C = 3) is converted with BT.601 luma weights, other channel
        counts are averaged.

    Returns:
      ``[B, H, W]`` float32 edge magnitudes ``sqrt(gx^2 + gy^2)``.
    """
    _check_batch(x, "x")
    g = _gray(jnp.asarray(x, jnp.float32))
    p = jnp.pad(g, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = g.shape[1], g.shape[2]

    def s(di, dj):
        return p[:, 1 + di:1 + di + h, 1 + dj:1 + dj + w]

    gx = (s(-1, 1) + 2 * s(0, 1) + s(1, 1)) - (s(-1, -1) + 2 * s(0, -1) + s(1, -1))
    gy = (s(1, -1) + 2 * s(1, 0) + s(1, 1)) - (s(-1, -1) + 2 * s(-1, 0) + s(-1, 1))
    return jnp.sqrt(gx ** 2 + gy ** 2)


def saliency_alignment(grad: ArrayLike, x: ArrayLike) -> jax.Array:
    """Per-example Pearson correlation between ``|grad|`` and the Sobel edge map of ``x``.

    ``|grad|`` is summed over channels; the edge map is :func:`sobel_edges` of the grey-scale
    image. Higher means the saliency concentrates on edges (the "perceptually aligned" gradients of
    robust models); noise-like gradients give values near 0. If either map is constant the
    correlation is undefined and 0 is returned.

    Args:
      grad: ``[B, H, W, C]`` input gradients (e.g. from :func:`input_gradients`).
      x: ``[B, H, W, C']`` the images (same B, H, W).

    Returns:
      ``[B]`` float32 correlations in [-1, 1].
    """
    _check_batch(grad, "grad")
    _check_batch(x, "x")
    if jnp.shape(grad)[:3] != jnp.shape(x)[:3]:
        raise ValueError(f"grad and x must share batch and spatial shape, got {jnp.shape(grad)} and {jnp.shape(x)}")
    a = jnp.sum(jnp.abs(jnp.asarray(grad, jnp.float32)), axis=-1).reshape(grad.shape[0], -1)
    e = sobel_edges(x).reshape(grad.shape[0], -1)
    a = a - jnp.mean(a, axis=1, keepdims=True)
    e = e - jnp.mean(e, axis=1, keepdims=True)
    num = jnp.sum(a * e, axis=1)
    den = jnp.sqrt(jnp.sum(a ** 2, axis=1) * jnp.sum(e ** 2, axis=1))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)
