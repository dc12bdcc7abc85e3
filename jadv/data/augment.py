"""Data augmentation in JAX: pure, jittable and vmappable."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jadv._checks import check_positive_int


def _crop_flip_one(key, image, padding, flip):
    h, w, c = image.shape
    k_y, k_x, k_f = jax.random.split(key, 3)
    padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    dy = jax.random.randint(k_y, (), 0, 2 * padding + 1)
    dx = jax.random.randint(k_x, (), 0, 2 * padding + 1)
    out = jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, c))
    if flip:
        out = jnp.where(jax.random.bernoulli(k_f, 0.5), out[:, ::-1, :], out)
    return out


def random_crop_flip(key: jax.Array, images: jax.Array, *, padding: int = 4, flip: bool = True) -> jax.Array:
    """Random crop with zero padding, then random horizontal flip (torchvision's
    ``RandomCrop(H, padding=padding)`` + ``RandomHorizontalFlip(0.5)``).

    Each image gets its own key (``jax.random.split(key, B)``): its padded copy (``padding`` zero
    pixels on every side) is cropped back to ``H x W`` at offsets ``dy, dx`` uniform in
    ``{0, ..., 2 * padding}``, then mirrored left-right with probability 0.5 when ``flip``.

    Args:
      key: PRNG key (typed ``jax.random.key``).
      images: float ``[B, H, W, C]`` (values are only moved, never rescaled).
      padding: zero padding per side (int >= 0, static).
      flip: also apply the random horizontal flip.

    Returns:
      Array with the shape and dtype of ``images``; deterministic for a given key.

    Raises:
      ValueError: ``images`` not 4-D, negative ``padding``. TypeError: non-float images or a
        non-int padding.
    """
    if jnp.ndim(images) != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {jnp.shape(images)}")
    if not jnp.issubdtype(jnp.result_type(images), jnp.floating):
        raise TypeError(f"images must be float (use jadv.data.to_float first), got {jnp.result_type(images)}")
    padding = check_positive_int("padding", padding, minimum=0)
    keys = jax.random.split(key, jnp.shape(images)[0])
    return jax.vmap(lambda k, x: _crop_flip_one(k, x, padding, bool(flip)))(keys, images)
