"""Input gradients, the paper's display transform, Sobel edges and the alignment score."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv.analysis import input_gradients, saliency_alignment, saliency_display, sobel_edges


def _model(key):
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (12, 5)) * 0.5
    w2 = jax.random.normal(k2, (5, 3))

    def logits_fn(x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2

    logits_fn.numpy = lambda x: np.tanh(x.reshape(x.shape[0], -1) @ np.asarray(w1, np.float64)) @ np.asarray(
        w2, np.float64)
    return logits_fn


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_gradients_match_finite_differences(key, loss):
    f = _model(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (2, 2, 3, 2), minval=0.2, maxval=0.8)
    y = jnp.array([0, 2], jnp.int32)
    g = np.asarray(input_gradients(f, x, y, loss=loss))
    assert g.shape == x.shape

    def per_example(xx):
        z = f.numpy(xx)
        if loss == "ce":
            z = z - z.max(1, keepdims=True)
            return np.log(np.exp(z).sum(1)) - z[np.arange(2), np.asarray(y)]
        true = z[np.arange(2), np.asarray(y)]
        z[np.arange(2), np.asarray(y)] = -np.inf
        return z.max(1) - true

    h = 1e-4
    xn = np.asarray(x, np.float64)
    fd = np.zeros_like(xn)
    for idx in np.ndindex(*xn.shape[1:]):
        for b in range(2):
            e = np.zeros_like(xn)
            e[(b,) + idx] = h
            fd[(b,) + idx] = (per_example(xn + e)[b] - per_example(xn - e)[b]) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-5)


def test_display_hand_computed():
    g = np.zeros((2, 4, 5, 1), np.float32)
    g[0] = np.arange(20, dtype=np.float32).reshape(4, 5, 1)
    g[0, 0, 0, 0] = -1000.0  # an outlier, clipped to mean - 3 sd
    out = np.asarray(saliency_display(g))
    v = g[0].ravel().astype(np.float64)
    lo, hi = v.mean() - 3 * v.std(), v.mean() + 3 * v.std()
    c = np.clip(v, lo, hi)
    np.testing.assert_allclose(out[0].ravel(), (c - c.min()) / (c.max() - c.min()), rtol=1e-4, atol=1e-5)
    assert out[0].min() == 0.0 and out[0].max() == pytest.approx(1.0)
    np.testing.assert_array_equal(out[1], 0.5)  # constant gradient


def test_sobel_hand_computed():
    x = np.zeros((1, 4, 6, 1), np.float32)
    x[..., 3:, 0] = 1.0
    e = np.asarray(sobel_edges(x))[0]
    want = np.zeros((4, 6))
    want[:, 2:4] = 4.0
    np.testing.assert_allclose(e, want, atol=1e-6)
    # RGB goes through luma (weights sum to 1): a grey RGB image equals the 1-channel result
    np.testing.assert_allclose(np.asarray(sobel_edges(np.repeat(x, 3, -1)))[0], want, atol=1e-5)


def test_alignment(key):
    x = jax.random.uniform(key, (3, 8, 8, 3))
    edges = jax.jit(sobel_edges)(x)
    align = jax.jit(saliency_alignment)
    grad = jnp.zeros_like(x).at[..., 0].set(-edges)  # |grad| summed over channels = edge map
    np.testing.assert_allclose(np.asarray(align(grad, x)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(align(-2.0 * jnp.repeat(edges[..., None], 3, -1), x)),
                               1.0, rtol=1e-5)
    noise = jax.random.normal(jax.random.fold_in(key, 1), (3, 8, 8, 3))
    assert np.all(np.abs(np.asarray(align(noise, x))) < 0.5)
    assert np.all(np.asarray(align(jnp.ones_like(x), x)) == 0.0)  # constant map


def test_errors(key):
    f = _model(key)
    x = jnp.full((2, 2, 3, 2), 0.5)
    with pytest.raises(ValueError):
        input_gradients(f, x, jnp.array([0, 1]), loss="kl")
    with pytest.raises(ValueError):
        input_gradients(f, x + 1.0, jnp.array([0, 1]))
    with pytest.raises(ValueError):
        input_gradients(f, x, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError):
        saliency_display(jnp.ones((2, 3)))
    with pytest.raises(ValueError):
        saliency_alignment(jnp.ones((2, 4, 4, 1)), jnp.ones((2, 5, 4, 1)))
