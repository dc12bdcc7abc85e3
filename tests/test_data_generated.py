"""Embedded digits, coloured digits, the Tsipras data model, binary tasks and subsets."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jadv.data as D
from jadv.data import embedded as _embedded


# ---------------------------------------------------------------------------- digits
def test_digits_match_sklearn_and_split():
    from sklearn.datasets import load_digits

    raw = load_digits()
    train, test = D.load("digits", "train"), D.load("digits", "test")
    assert train.images.shape == (1438, 8, 8, 1) and test.images.shape == (359, 8, 8, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    assert train.class_names == tuple("0123456789")
    tr = _embedded.split_indices(raw.target, "train")
    te = _embedded.split_indices(raw.target, "test")
    assert np.intersect1d(tr, te).size == 0 and np.union1d(tr, te).size == 1797
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)  # original order kept
    np.testing.assert_array_equal(test.labels, raw.target[te])
    expect = np.floor(raw.images[te] * 255 / 16 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(test.images[..., 0], expect)
    assert train.images.max() == 255 and train.images.min() == 0
    # stratified: every class has round(20%) of its examples in test
    for k in range(10):
        n_k = int(np.sum(raw.target == k))
        assert np.sum(test.labels == k) == round(0.2 * n_k)
    # deterministic
    np.testing.assert_array_equal(D.load("digits", "test").images, test.images)


def test_upsample_matrix_matches_jax_linear_resize():
    rng = np.random.default_rng(1)
    x = rng.random((8, 8))
    m = _embedded._linear_upsample_matrix(8, 32)
    ours = m @ x @ m.T
    ref = np.asarray(jax.image.resize(jnp.asarray(x, jnp.float32), (32, 32), "linear"))
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_colored_digits_render_ink_with_per_image_colours():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = D.load("colored_digits", "train")
    assert ds.images.shape == (1438, 32, 32, 3) and ds.images.dtype == np.uint8
    idx = _embedded.split_indices(raw.target, "train")
    np.testing.assert_array_equal(ds.labels, raw.target[idx])
    fg, bg = _embedded._colours(1797)
    fg, bg = fg[idx], bg[idx]
    assert np.all(np.linalg.norm(fg - bg, axis=1) >= 96)
    # colours vary per image and are independent of the label
    assert len({tuple(c) for c in fg}) > 1000
    m = _embedded._linear_upsample_matrix(8, 32)
    ink = np.einsum("ij,njk,lk->nil", m, raw.images[idx] / 16.0, m)
    diff = (fg - bg)[:, None, None, :]
    ink_hat = np.sum((ds.images - bg[:, None, None, :]) * diff, -1) / np.sum(diff**2, -1)
    # rounding to uint8 moves each channel by <= 0.5, so the ink error is <= 0.5*sqrt(3)/|fg-bg|
    bound = 0.5 * math.sqrt(3) / np.linalg.norm(fg - bg, axis=1)[:, None, None] + 1e-9
    assert np.all(np.abs(ink_hat - ink) <= bound)
    np.testing.assert_array_equal(D.load("colored_digits", "train").images, ds.images)


# ---------------------------------------------------------------------------- Tsipras
_tsipras_jit = jax.jit(D.tsipras, static_argnums=(1,), static_argnames=("d",))

def test_tsipras_moments():
    n, d, p, eta = 20000, 9, 0.8, 0.5
    x, y = _tsipras_jit(jax.random.key(3), n, d=d, p=p, eta=eta)
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == (n, d + 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert set(np.unique(y)) == {-1, 1} and set(np.unique(x[:, 0])) == {-1.0, 1.0}
    z = 5.0  # tolerance in standard errors
    assert abs(np.mean(y == 1) - 0.5) < z * math.sqrt(0.25 / n)
    assert abs(np.mean(x[:, 0] == y) - p) < z * math.sqrt(p * (1 - p) / n)
    weak = x[:, 1:] * y[:, None]  # ~ N(eta, 1)
    assert abs(weak.mean() - eta) < z / math.sqrt(n * d)
    assert abs(weak.var() - 1.0) < z * math.sqrt(2.0 / (n * d))
    assert np.all(np.abs(weak.mean(0) - eta) < z / math.sqrt(n))  # every weak feature has mean eta*y
    # weak features are independent of x1 given y: no correlation between x1*y and weak*y
    corr = np.corrcoef(x[:, 0] * y, weak.mean(1))[0, 1]
    assert abs(corr) < z / math.sqrt(n)


def test_tsipras_defaults_seed_and_determinism():
    n, d = 4000, 100
    x, y = _tsipras_jit(jax.random.key(0), n, d=d)
    weak = np.asarray(x[:, 1:] * y[:, None])
    assert abs(weak.mean() - 4 / math.sqrt(d)) < 5 / math.sqrt(n * d)
    assert abs(np.mean(np.asarray(x[:, 0] == y)) - 0.95) < 5 * math.sqrt(0.95 * 0.05 / n)
    x2, y2 = D.tsipras(0, 50, d=d)  # eager with an int seed: the same numbers as jitted with key(0)
    x2j, y2j = _tsipras_jit(jax.random.key(0), 50, d=d)
    np.testing.assert_array_equal(y2, y2j)
    np.testing.assert_allclose(x2, x2j, atol=1e-6)  # jit may fuse eta*y + noise into an FMA
    x3, _ = _tsipras_jit(jax.random.key(1), n, d=d)
    assert not np.array_equal(x, x3)
    x4, _ = _tsipras_jit(jax.random.key(0), 5, d=2, p=1.0)
    assert x4.shape == (5, 3)


def test_tsipras_jit_with_traced_p():
    f = jax.jit(lambda k, p: D.tsipras(k, 64, d=3, p=p))
    x, y = f(jax.random.key(0), 1.0)
    np.testing.assert_array_equal(x[:, 0], y)  # p = 1: x1 always equals y


@pytest.mark.parametrize("kw,err", [(dict(p=0.4), ValueError), (dict(p=1.01), ValueError), (dict(d=0), ValueError),
                                    (dict(d=2.5), TypeError), (dict(eta=float("nan")), ValueError)])
def test_tsipras_validation(kw, err):
    with pytest.raises(err):
        D.tsipras(0, 10, **kw)
    with pytest.raises(ValueError, match="n must be >= 1"):
        D.tsipras(0, 0)
    with pytest.raises(TypeError, match="key_or_seed"):
        D.tsipras("seed", 3)


# ---------------------------------------------------------------------------- binary_task / subset
def _toy(counts=(5, 7, 3, 6), hw=2):
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    labels = np.random.default_rng(0).permutation(labels)
    images = np.arange(labels.size, dtype=np.uint8)[:, None, None, None] * np.ones((1, hw, hw, 1), np.uint8)
    return D.Dataset(images, labels, ("a", "b", "c", "d"), "toy", "train")


def test_binary_task():
    ds = _toy()
    bt = D.binary_task(ds, "d", 1)  # positive by name, negative by index
    keep = np.flatnonzero((ds.labels == 3) | (ds.labels == 1))
    np.testing.assert_array_equal(bt.images[:, 0, 0, 0], keep)  # originals, in order
    np.testing.assert_array_equal(bt.labels, (ds.labels[keep] == 3).astype(np.int32))
    assert bt.class_names == ("b", "d") and bt.num_classes == 2 and bt.labels.dtype == np.int32
    assert bt.name == "toy:d_vs_b" and bt.split == "train"
    with pytest.raises(ValueError, match="'z' is not a class"):
        D.binary_task(ds, "z", "a")
    with pytest.raises(ValueError, match="out of range"):
        D.binary_task(ds, 4, 0)
    with pytest.raises(ValueError, match="different"):
        D.binary_task(ds, 2, "c")
    with pytest.raises(TypeError):
        D.binary_task(ds, 1.0, 0)
    empty = D.Dataset(ds.images, np.where(ds.labels == 2, 0, ds.labels), ds.class_names, "toy", "train")
    with pytest.raises(ValueError, match="'c' has no examples"):
        D.binary_task(empty, "c", "a")


def test_subset_stratified_balanced_nested_deterministic():
    ds = _toy(counts=(5, 7, 3, 6))
    s = D.subset(ds, 10, key_or_seed=0)
    counts = np.bincount(s.labels, minlength=4)
    assert counts.sum() == 10 and counts.max() - counts.min() <= 1 and counts.min() == 2
    ids = s.images[:, 0, 0, 0].astype(int)
    assert np.all(np.diff(ids) > 0)  # original order, no repeats
    np.testing.assert_array_equal(ds.labels[ids], s.labels)
    np.testing.assert_array_equal(D.subset(ds, 10, key_or_seed=jax.random.key(0)).images, s.images)
    assert any(not np.array_equal(D.subset(ds, 10, key_or_seed=k).images, s.images) for k in range(1, 6))
    small = set(D.subset(ds, 4, key_or_seed=7).images[:, 0, 0, 0])
    big = set(D.subset(ds, 8, key_or_seed=7).images[:, 0, 0, 0])
    assert small <= big  # nested for multiples of the class count
    assert s.class_names == ds.class_names


def test_subset_uniform_and_errors():
    ds = _toy()
    u = D.subset(ds, 21, key_or_seed=1, stratified=False)
    assert sorted(u.images[:, 0, 0, 0]) == list(range(21))
    with pytest.raises(ValueError, match="larger than the dataset"):
        D.subset(ds, 22, key_or_seed=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        D.subset(ds, 0, key_or_seed=0)
    with pytest.raises(ValueError, match="'c' has 3 examples, fewer than its balanced share 4"):
        D.subset(ds, 16, key_or_seed=0)
    with pytest.raises(TypeError):
        D.subset(ds, 4, key_or_seed=1.5)
