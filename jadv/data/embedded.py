"""Datasets that need no download: scikit-learn's 8x8 digits and a coloured 32x32 version.

``digits``: the 1,797 handwritten 8x8 digits shipped inside scikit-learn
(``sklearn.datasets.load_digits``; real data, UCI "Optical Recognition of Handwritten Digits").
Pixel values 0..16 become ``floor(v * 255 / 16 + 0.5)`` (0..255 uint8), shape ``[N, 8, 8, 1]``.
Split: stratified 80/20 with a fixed seed: for each class k = 0..9 in turn, the class's indices are
permuted by one ``numpy.random.default_rng(0)`` generator and the first ``round(0.2 * n_k)`` go
to "test"; both splits keep the original example order. This gives 1,438 train / 359 test.

``colored_digits``: the same split, each digit upsampled 8x8 -> 32x32 by bilinear interpolation
(half-pixel centres, edges clamped, i.e. ``jax.image.resize(..., "linear")`` for upsampling),
then rendered as RGB ``ink * fg + (1 - ink) * bg`` with ink = intensity in [0, 1] and one
foreground and one background colour per image, uniform in {0..255}^3, drawn for all 1,797
images (in original order) from ``numpy.random.default_rng(20190417)``; pairs closer than 96 in
Euclidean RGB distance are redrawn so every digit stays visible. Colour is independent of the
label, so it is a nuisance a model should learn to ignore.

``colored_mnist`` (:func:`colored_mnist`, loaded through ``jadv.data.load`` from the MNIST files):
MNIST rendered the same way at 28x28, with a colour seed per split.
"""
from __future__ import annotations

import functools

import numpy as np

from jadv.data.dataset import Dataset

DIGIT_CLASSES = tuple(str(i) for i in range(10))
_TEST_FRACTION = 0.2
_SPLIT_SEED = 0
_COLOUR_SEED = 20190417
_MIN_COLOUR_DISTANCE = 96.0


@functools.lru_cache(maxsize=1)
def _digits_raw():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    values = np.asarray(bunch.images, dtype=np.float64)  # [N, 8, 8] in 0..16
    labels = np.asarray(bunch.target, dtype=np.int32)
    return values, labels


def split_indices(labels: np.ndarray, split: str, *, test_fraction: float = _TEST_FRACTION,
                  seed: int = _SPLIT_SEED) -> np.ndarray:
    """Indices of ``split`` for the deterministic stratified split described in the module doc."""
    rng = np.random.default_rng(seed)
    test = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        perm = rng.permutation(idx)
        test.append(perm[: int(round(test_fraction * idx.size))])
    test = np.sort(np.concatenate(test))
    if split == "test":
        return test
    mask = np.ones(labels.size, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask)


def _check_split(split):
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; allowed: 'train', 'test'")


def load_digits(split: str) -> Dataset:
    """scikit-learn's 8x8 digits as a :class:`Dataset` (``uint8 [N, 8, 8, 1]``, 10 classes)."""
    _check_split(split)
    values, labels = _digits_raw()
    idx = split_indices(labels, split)
    images = np.floor(values[idx] * (255.0 / 16.0) + 0.5).astype(np.uint8)[..., None]
    return Dataset(images, labels[idx].copy(), DIGIT_CLASSES, "digits", split)


def _linear_upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` matrix of half-pixel-centred linear interpolation with clamped edges."""
    scale = n_in / n_out
    src = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1.0 - frac
    m[np.arange(n_out), hi] += frac
    return m


def _colours(n: int, seed: int = _COLOUR_SEED):
    """``n`` (foreground, background) RGB pairs ``[n, 3]`` each, at least 96 apart."""
    rng = np.random.default_rng(seed)
    fg = rng.integers(0, 256, size=(n, 3)).astype(np.float64)
    bg = rng.integers(0, 256, size=(n, 3)).astype(np.float64)
    bad = np.linalg.norm(fg - bg, axis=1) < _MIN_COLOUR_DISTANCE
    while bad.any():
        k = int(bad.sum())
        fg[bad] = rng.integers(0, 256, size=(k, 3))
        bg[bad] = rng.integers(0, 256, size=(k, 3))
        bad = np.linalg.norm(fg - bg, axis=1) < _MIN_COLOUR_DISTANCE
    return fg, bg


@functools.lru_cache(maxsize=1)
def _colored_all():
    values, labels = _digits_raw()
    m = _linear_upsample_matrix(8, 32)
    ink = np.einsum("ij,njk,lk->nil", m, values / 16.0, m)  # [N, 32, 32] in [0, 1]
    return colorize(ink, _COLOUR_SEED), labels


def colorize(ink: np.ndarray, seed: int) -> np.ndarray:
    """Render ink ``[N, H, W]`` in [0, 1] as RGB ``ink * fg + (1 - ink) * bg`` with one random
    foreground/background colour pair per image (:func:`_colours` with ``seed``); uint8
    ``[N, H, W, 3]``."""
    fg, bg = _colours(ink.shape[0], seed)
    rgb = ink[..., None] * fg[:, None, None, :] + (1.0 - ink[..., None]) * bg[:, None, None, :]
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


# colour seeds of colored_mnist's splits (any fixed pair; train and test get different colours)
COLORED_MNIST_SEEDS = {"train": 20190417, "test": 20190418}


def colored_mnist(mnist: Dataset) -> Dataset:
    """``colored_mnist``: each MNIST digit (28x28, ink = pixel / 255) rendered as RGB with its own
    random foreground/background colour pair (:func:`colorize`, seed per split in
    :data:`COLORED_MNIST_SEEDS`; colours independent of the label). ``uint8 [N, 28, 28, 3]``. The
    3-channel, 60,000-image counterpart of ``colored_digits`` for study 1, whose layer under study
    needs RGB input."""
    ink = mnist.images[..., 0].astype(np.float64) / 255.0
    images = colorize(ink, COLORED_MNIST_SEEDS[mnist.split])
    return Dataset(images, mnist.labels.copy(), mnist.class_names, "colored_mnist", mnist.split)


def load_colored_digits(split: str) -> Dataset:
    """Coloured 32x32 RGB digits (see module doc) as a :class:`Dataset` (``uint8 [N, 32, 32, 3]``)."""
    _check_split(split)
    images, labels = _colored_all()
    idx = split_indices(labels, split)
    return Dataset(images[idx], labels[idx].copy(), DIGIT_CLASSES, "colored_digits", split)
