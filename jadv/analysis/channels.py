"""First-layer colour-channel distances (study 1).

Kaur, Cohen & Lipton, "Investigating the Sketchy Effects of Adversarial Training" (poster): in
adversarially trained models, some first-layer filters have (almost) the same weights on the R, G
and B input channels, i.e. they are luminance (grey-scale) filters, and vanilla models never do.

For a first-layer kernel ``W`` in Flax's HWIO layout ``[kh, kw, 3, C_out]`` and every output
filter ``o`` the distance between input channels ``c`` and ``c'`` is

    d_o(c, c') = || W[:, :, c, o] - W[:, :, c', o] ||_F

for the pairs (R, G), (R, B), (G, B), in that order. This per-filter reading (64 x 3 = 192 values
for a 64-filter conv1) is the one that can be histogrammed with the poster's bin width 0.02; the
paper itself was not available (see ``reference/analysis-methods.md``, section A).

Because batch norm follows conv1 in a ResNet, the scale of every output filter is arbitrary, so a
raw threshold of 0.02 depends on the weight-decay equilibrium. ``relative=True`` divides by the
filter's own norm ``||W[:, :, :, o]||_F``; report both.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jadv._checks import check_images, is_concrete
from jadv._typing import ArrayLike
from jadv.analysis.saliency import sobel_edges

__all__ = ["CHANNEL_PAIRS", "channel_distances", "channel_distance_histogram", "near_equal_share",
           "grayscale_images", "sketch_images"]

#: The input-channel pairs, in the order of the columns returned by :func:`channel_distances`.
CHANNEL_PAIRS = ((0, 1), (0, 2), (1, 2))  # (R, G), (R, B), (G, B)


def channel_distances(kernel: ArrayLike, *, relative: bool = False) -> jax.Array:
    """Per-filter Frobenius distances between the R, G and B slices of a first-layer kernel.

    Args:
      kernel: conv kernel in HWIO layout ``[kh, kw, 3, C_out]`` (Flax ``nn.Conv``). A PyTorch
        ``[C_out, 3, kh, kw]`` weight must first be transposed with ``w.transpose(2, 3, 1, 0)``.
      relative: if True, divide each filter's distances by its norm ``||W[:, :, :, o]||_F``. A
        filter that is exactly zero has identical channels; its relative distances are defined as
        0 (not 0/0 = NaN). A relative distance is at most sqrt(2).

    Returns:
      ``[C_out, 3]`` float32 array; column j is the pair ``CHANNEL_PAIRS[j]`` = (R,G), (R,B), (G,B).

    Pure jnp, so it can be jitted or vmapped over models by the caller.
    Reference: Kaur, Cohen & Lipton, "Investigating the Sketchy Effects of Adversarial Training".
    """
    if jnp.ndim(kernel) != 4:
        raise ValueError(f"kernel must be a 4-D HWIO conv kernel [kh, kw, 3, C_out], got shape {jnp.shape(kernel)}")
    if jnp.shape(kernel)[2] != 3:
        raise ValueError(f"kernel must have 3 input (RGB) channels on axis 2 (HWIO layout), got shape "
                         f"{jnp.shape(kernel)}; a PyTorch [C_out, C_in, kh, kw] weight needs .transpose(2, 3, 1, 0)")
    if not jnp.issubdtype(jnp.result_type(kernel), jnp.floating):
        raise TypeError(f"kernel must be a float array, got dtype {jnp.result_type(kernel)}")
    w = jnp.asarray(kernel, jnp.float32)
    cols = [jnp.sqrt(jnp.sum((w[:, :, a, :] - w[:, :, b, :]) ** 2, axis=(0, 1))) for a, b in CHANNEL_PAIRS]
    dist = jnp.stack(cols, axis=-1)  # [C_out, 3]
    if relative:
        norm = jnp.sqrt(jnp.sum(w ** 2, axis=(0, 1, 2)))[:, None]
        safe = jnp.where(norm > 0, norm, 1.0)
        dist = jnp.where(norm > 0, dist / safe, 0.0)
    return dist


def _check_dist(dist) -> np.ndarray:
    if not is_concrete(dist):
        raise TypeError("dist must be a concrete array (histograms are computed outside jit)")
    d = np.asarray(dist, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("dist is empty")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("dist must hold finite distances >= 0")
    return d


def channel_distance_histogram(dist: ArrayLike, *, bin_width: float = 0.02,
                               max_value: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of channel distances with bins ``[0, w), [w, 2w), ...`` (the first is [0, 0.02)).

    Args:
      dist: any array of distances (e.g. ``[C_out, 3]`` from :func:`channel_distances`).
      bin_width: width of every bin (> 0).
      max_value: upper end of the histogram range. Default: just past ``max(dist)``, so every value
        falls in a bin. Give the same value for two models to get identical edges; values at or
        above the last edge are counted in the last bin (an overflow bin), so counts always sum to
        ``dist.size``.

    Returns:
      ``(edges [n_bins + 1], counts [n_bins])`` numpy arrays; bin i is ``[edges[i], edges[i+1])``.
    """
    d = _check_dist(dist)
    if not np.isfinite(bin_width) or bin_width <= 0:
        raise ValueError(f"bin_width must be > 0, got {bin_width}")
    top = float(d.max()) if max_value is None else float(max_value)
    if not np.isfinite(top) or top < 0:
        raise ValueError(f"max_value must be finite and >= 0, got {max_value}")
    if max_value is None:
        n_bins = int(np.floor(top / bin_width)) + 1  # the last edge lies strictly above max(dist)
    else:
        n_bins = max(1, int(np.ceil(top / bin_width - 1e-9)))
    edges = np.arange(n_bins + 1, dtype=np.float64) * bin_width
    idx = np.floor(d / bin_width).astype(np.int64)
    idx = np.clip(idx, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)[:n_bins]
    return edges, counts


def near_equal_share(dist: ArrayLike, threshold: float = 0.02) -> tuple[int, float]:
    """Count and fraction of channel pairs with distance strictly below ``threshold``.

    Returns ``(count: int, fraction: float)``; with the default threshold this is the first
    histogram bin [0, 0.02) of Kaur et al.
    """
    d = _check_dist(dist)
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    count = int(np.sum(d < threshold))
    return count, count / d.size


def grayscale_images(x: ArrayLike) -> jax.Array:
    """Colourless copies of RGB images for the "does the model ignore colour?" test of study 1.

    Each pixel is replaced by its ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` in all three
    channels, so the shape (and the model input) is unchanged. A first-layer filter with
    ``W[:,:,R] = W[:,:,G] = W[:,:,B]`` only sees the intensity ``R + G + B``, not colour, so the
    poster's reading predicts that models with many such filters lose less accuracy here.

    Args:
      x: ``[B, H, W, 3]`` float images in [0, 1].
    Returns:
      ``[B, H, W, 3]`` float32 grey images in [0, 1].
    """
    check_images(x)
    if jnp.shape(x)[-1] != 3:
        raise ValueError(f"x must be RGB [B, H, W, 3], got shape {jnp.shape(x)}")
    y = jnp.asarray(x, jnp.float32) @ jnp.array([0.299, 0.587, 0.114], jnp.float32)
    return jnp.clip(jnp.repeat(y[..., None], 3, axis=-1), 0.0, 1.0)


def sketch_images(x: ArrayLike) -> jax.Array:
    """Sketch-like versions of images (dark edges on white), a stand-in for ImageNet-Sketch
    (Wang, Ge, Lipton & Xing 2019), which the Kaur et al. poster cites.

    ``1 - e / max(e)`` per image, with ``e`` the Sobel gradient magnitude of the grey image
    (:func:`jadv.analysis.sobel_edges`), repeated over the input's channels. A constant image
    becomes all white.

    Args:
      x: ``[B, H, W, C]`` float images in [0, 1].
    Returns:
      ``[B, H, W, C]`` float32 images in [0, 1].
    """
    check_images(x)
    e = sobel_edges(x)
    m = jnp.max(e, axis=(1, 2), keepdims=True)
    s = jnp.where(m > 0, 1.0 - e / jnp.where(m > 0, m, 1.0), 1.0)
    return jnp.repeat(s[..., None], jnp.shape(x)[-1], axis=-1)
