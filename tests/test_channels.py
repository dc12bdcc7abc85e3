"""Channel distances of first-layer kernels (Kaur, Cohen & Lipton)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv.analysis import (channel_distance_histogram, channel_distances, grayscale_images, near_equal_share,
                           sketch_images)


def test_equal_channels_give_zero(key):
    base = jax.random.normal(key, (3, 3, 1, 5))
    kernel = jnp.concatenate([base, base, base], axis=2)
    np.testing.assert_array_equal(np.asarray(channel_distances(kernel)), 0.0)
    np.testing.assert_array_equal(np.asarray(channel_distances(kernel, relative=True)), 0.0)


def test_hand_computed_values():
    # 1x2 filters, 2 output filters. Filter 0: R=(1,0), G=(0,0), B=(0,2).
    k = np.zeros((1, 2, 3, 2), np.float32)
    k[0, :, 0, 0] = [1, 0]
    k[0, :, 2, 0] = [0, 2]
    # Filter 1: R=G=B=(3,4): distances 0, norm sqrt(3*25).
    k[0, :, :, 1] = np.array([3, 4])[:, None]
    d = np.asarray(channel_distances(k))
    np.testing.assert_allclose(d[0], [1.0, np.sqrt(5.0), 2.0], rtol=1e-6)
    np.testing.assert_allclose(d[1], [0, 0, 0], atol=0)
    r = np.asarray(channel_distances(k, relative=True))
    np.testing.assert_allclose(r[0], np.array([1.0, np.sqrt(5.0), 2.0]) / np.sqrt(5.0), rtol=1e-6)


def test_zero_filter_relative_is_zero_and_bound(key):
    k = jax.random.normal(key, (3, 3, 3, 4)).at[..., 2].set(0.0)
    r = np.asarray(channel_distances(k, relative=True))
    assert np.all(np.isfinite(r))
    np.testing.assert_array_equal(r[2], 0.0)
    assert np.all(r <= np.sqrt(2) + 1e-6)
    # relative distances are invariant to the scale of each filter (BN follows conv1)
    scale = jnp.array([0.1, 2.0, 1.0, 7.0])
    np.testing.assert_allclose(np.asarray(channel_distances(k * scale, relative=True)), r, rtol=1e-5)


def test_histogram_and_share():
    d = np.array([[0.0, 0.019, 0.02], [0.05, 0.1, 0.0399]])
    edges, counts = channel_distance_histogram(d)
    np.testing.assert_allclose(edges[:2], [0.0, 0.02])
    assert counts.sum() == d.size
    assert counts[0] == 2 and counts[1] == 2 and counts[2] == 1 and counts[5] == 1
    assert edges[-1] > d.max()
    edges2, counts2 = channel_distance_histogram(d, max_value=0.06)
    assert len(counts2) == 3 and counts2.sum() == d.size and counts2[-1] == 2  # overflow into last bin
    assert near_equal_share(d) == (2, 2 / 6)
    assert near_equal_share(d, threshold=0.1) == (5, 5 / 6)


def test_errors():
    with pytest.raises(ValueError, match="4-D"):
        channel_distances(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="3 input"):
        channel_distances(np.zeros((3, 3, 4, 8)))
    with pytest.raises(TypeError):
        channel_distances(np.zeros((3, 3, 3, 8), np.int32))
    with pytest.raises(ValueError):
        channel_distance_histogram(np.array([-1.0]))
    with pytest.raises(ValueError):
        channel_distance_histogram(np.array([0.1]), bin_width=0.0)
    with pytest.raises(ValueError):
        near_equal_share(np.array([np.nan]))


def test_grayscale_and_sketch():
    x = np.zeros((2, 4, 6, 3), np.float32)
    x[0, :, :, 0] = 1.0          # pure red
    x[1, :, 3:, :] = 1.0         # white right half
    g = np.asarray(grayscale_images(x))
    np.testing.assert_allclose(g[0], 0.299, rtol=1e-6)
    np.testing.assert_array_equal(g[..., 0], g[..., 2])
    sk = np.asarray(sketch_images(x))
    np.testing.assert_array_equal(sk[0], 1.0)  # constant luma: no edges, white
    np.testing.assert_allclose(sk[1, :, 2:4], 0.0, atol=1e-6)  # the edge is black
    np.testing.assert_array_equal(sk[1, :, [0, 5]], 1.0)
    with pytest.raises(ValueError):
        grayscale_images(np.zeros((1, 4, 4, 1), np.float32))
