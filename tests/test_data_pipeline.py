"""Device-resident batching (epoch_batches, num_batches, device_put_dataset, to_float) and augmentation."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import jadv.data as D
from jadv.data import pipeline as _pipeline


def _indexed(n, hw=3):
    """Images whose pixels encode their index; labels are the index (so a batch can be checked)."""
    images = (np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, hw, hw, 1), np.uint8))
    return images, np.arange(n, dtype=np.int32)


def test_to_float():
    x = np.array([[[[0], [51]], [[255], [128]]]], np.uint8)
    out = D.to_float(x)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0], [[0, 0.2], [1, 128 / 255]], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(D.to_float)(x), out)
    with pytest.raises(TypeError, match="uint8"):
        D.to_float(out)
    with pytest.raises(TypeError, match="uint8"):
        D.to_float(np.zeros((1, 2, 2, 1), np.int32))


def test_num_batches():
    assert D.num_batches(10, 3) == 3 and D.num_batches(10, 3, "pad") == 4
    assert D.num_batches(9, 3, "pad") == 3 and D.num_batches(5, 10, "pad") == 1
    with pytest.raises(ValueError, match="larger than the dataset"):
        D.num_batches(5, 10, "drop")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        D.num_batches(5, 0)
    with pytest.raises(ValueError, match="unknown remainder 'keep'"):
        D.num_batches(5, 2, "keep")
    with pytest.raises(TypeError):
        D.num_batches(5, 2.0)


def test_epoch_drop_covers_distinct_examples(key):
    images, labels = _indexed(10)
    batches = list(D.epoch_batches(images, labels, batch_size=3, key=key))
    assert len(batches) == 3
    seen = []
    for b in batches:
        assert b["image"].shape == (3, 3, 3, 1) and b["image"].dtype == jnp.uint8
        assert b["label"].dtype == jnp.int32 and b["mask"].dtype == jnp.bool_ and bool(b["mask"].all())
        np.testing.assert_array_equal(np.asarray(b["image"])[:, 0, 0, 0], np.asarray(b["label"]))  # rows match
        seen.extend(np.asarray(b["label"]).tolist())
    assert len(set(seen)) == 9 and set(seen) <= set(range(10))
    # the order is the key's permutation
    perm = np.asarray(jax.random.permutation(key, 10))
    np.testing.assert_array_equal(seen, perm[:9])


def test_epoch_pad_sees_every_example_once(key):
    images, labels = _indexed(10)
    batches = list(D.epoch_batches(images, labels, batch_size=4, key=key, remainder="pad"))
    assert len(batches) == 3 and all(b["image"].shape[0] == 4 for b in batches)
    mask = np.concatenate([np.asarray(b["mask"]) for b in batches])
    lab = np.concatenate([np.asarray(b["label"]) for b in batches])
    assert mask.tolist() == [True] * 10 + [False] * 2
    assert sorted(lab[mask].tolist()) == list(range(10))
    # a batch larger than the dataset is fine with pad
    (only,) = list(D.epoch_batches(images, labels, batch_size=16, key=key, remainder="pad"))
    assert int(only["mask"].sum()) == 10


def test_epoch_determinism_and_shuffle_off(key):
    images, labels = _indexed(12)
    order = lambda **kw: np.concatenate([np.asarray(b["label"]) for b in D.epoch_batches(images, labels, batch_size=4, **kw)])
    a, b = order(key=key), order(key=jax.random.key(0))
    np.testing.assert_array_equal(a, b)
    others = [order(key=jax.random.fold_in(key, e)) for e in range(1, 4)]
    assert any(not np.array_equal(a, o) for o in others)
    np.testing.assert_array_equal(order(shuffle=False), np.arange(12))


def test_epoch_compiles_once_per_shape(key):
    images, labels = _indexed(20)
    x, y = jax.device_put(images), jax.device_put(labels)
    fn = _pipeline._gather_fn(None)
    list(D.epoch_batches(x, y, batch_size=5, key=key))
    size = fn._cache_size()
    for e in range(3):
        list(D.epoch_batches(x, y, batch_size=5, key=jax.random.fold_in(key, e)))
    assert fn._cache_size() == size  # same batch shape: no new compilation
    list(D.epoch_batches(x, y, batch_size=4, key=key))
    assert fn._cache_size() == size + 1


def test_epoch_errors(key):
    images, labels = _indexed(6)
    with pytest.raises(ValueError, match="larger than the dataset"):
        next(D.epoch_batches(images, labels, batch_size=7, key=key))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(D.epoch_batches(images, labels, batch_size=0, key=key))
    with pytest.raises(ValueError, match="6 examples but labels has 5"):
        next(D.epoch_batches(images, labels[:5], batch_size=2, key=key))
    with pytest.raises(ValueError, match="needs key"):
        next(D.epoch_batches(images, labels, batch_size=2))
    with pytest.raises(TypeError, match="integer"):
        next(D.epoch_batches(images, labels.astype(np.float32), batch_size=2, key=key))
    with pytest.raises(ValueError, match="unknown remainder"):
        next(D.epoch_batches(images, labels, batch_size=2, key=key, remainder="keep"))


@pytest.mark.parametrize("axis_type", ["explicit", "auto"])
def test_device_put_dataset_and_sharded_batches(key, axis_type):
    images, labels = _indexed(16)
    ds = D.Dataset(images, labels, tuple("abcdefghijklmnop"), "toy", "train")
    x, y = D.device_put_dataset(ds)
    assert isinstance(x, jax.Array) and x.dtype == jnp.uint8 and y.dtype == jnp.int32
    np.testing.assert_array_equal(x, images)
    types = (jax.sharding.AxisType.Explicit if axis_type == "explicit" else jax.sharding.AxisType.Auto,)
    mesh = jax.make_mesh((8,), ("data",), axis_types=types)
    sharding = NamedSharding(mesh, P("data"))
    xs, ys = D.device_put_dataset(ds, sharding)
    assert xs.sharding.is_equivalent_to(sharding, 4) and len(xs.addressable_shards) == 8
    batch = next(D.epoch_batches(xs, ys, batch_size=8, key=key, sharding=sharding))
    assert batch["image"].sharding.is_equivalent_to(sharding, 4)
    assert batch["label"].sharding.is_equivalent_to(sharding, 1)
    np.testing.assert_array_equal(np.asarray(batch["image"])[:, 0, 0, 0], np.asarray(batch["label"]))
    assert batch["mask"].sharding.is_equivalent_to(sharding, 1)
    # a sharded dataset without an output sharding gives replicated batches with the right rows
    batches = list(D.epoch_batches(xs, ys, batch_size=6, key=key, remainder="pad"))
    lab = np.concatenate([np.asarray(b["label"])[np.asarray(b["mask"])] for b in batches])
    assert sorted(lab.tolist()) == list(range(16))
    for b in batches:
        np.testing.assert_array_equal(np.asarray(b["image"])[:, 0, 0, 0], np.asarray(b["label"]))
    with pytest.raises(ValueError, match="batch_size 12 is not divisible by the 8 devices"):
        next(D.epoch_batches(xs, ys, batch_size=12, key=key, sharding=sharding))
    odd = D.Dataset(images[:12], labels[:12], ds.class_names, "toy", "train")
    with pytest.raises(ValueError, match="dataset size 12"):
        D.device_put_dataset(odd, sharding)
    with pytest.raises(TypeError, match="Dataset"):
        D.device_put_dataset((images, labels))


# ---------------------------------------------------------------------------- augmentation
# one compiled program per shape/option (eager op-by-op dispatch is slow on a busy CPU)
_rcf = jax.jit(D.random_crop_flip, static_argnames=("padding", "flip"))

def _windows(x, padding):
    """Every (dy, dx, flipped) crop of the zero-padded image x [H, W, C]."""
    h, w, _ = x.shape
    padded = np.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    for dy, dx in itertools.product(range(2 * padding + 1), repeat=2):
        win = padded[dy:dy + h, dx:dx + w]
        yield (dy, dx, False), win
        yield (dy, dx, True), win[:, ::-1]


def test_random_crop_flip_is_a_window_of_the_padded_image(key):
    rng = np.random.default_rng(0)
    x = rng.random((48, 5, 6, 2)).astype(np.float32) + 0.01  # no zeros: padding is recognisable
    out = np.asarray(_rcf(key, x, padding=2))
    assert out.shape == x.shape and out.dtype == np.float32
    found = []
    for xi, oi in zip(x, out):
        matches = [m for m, win in _windows(xi, 2) if np.array_equal(win, oi)]
        assert len(matches) == 1  # an exact window, and exactly one
        found.append(matches[0])
    flips = [f for _, _, f in found]
    assert 0 < sum(flips) < len(flips)
    assert len({(dy, dx) for dy, dx, _ in found}) > 10  # offsets vary over {0..4}^2


def test_flip_only_and_crop_only(key):
    rng = np.random.default_rng(1)
    x = rng.random((32, 4, 4, 3)).astype(np.float32)
    out = np.asarray(_rcf(key, x, padding=0))
    fired = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(fired, kept)) and any(fired) and any(kept)
    batched_flip = np.asarray(x)[:, :, ::-1]
    np.testing.assert_array_equal(out[np.array(fired)], batched_flip[np.array(fired)])
    noflip = np.asarray(_rcf(key, x + 0.01, padding=1, flip=False))
    for xi, oi in zip(x + 0.01, noflip):
        assert any(np.array_equal(win, oi) for (dy, dx, f), win in _windows(xi, 1) if not f)
    np.testing.assert_array_equal(_rcf(key, x, padding=0, flip=False), x)


def test_crop_flip_determinism_jit_vmap(key):
    x = jnp.asarray(np.random.default_rng(2).random((8, 6, 6, 3)), jnp.float32)
    a = D.random_crop_flip(key, x)  # eager
    np.testing.assert_array_equal(a, _rcf(jax.random.key(0), x, padding=4))  # jitted, same key
    assert not np.array_equal(a, _rcf(jax.random.key(1), x, padding=4))
    keys = jax.random.split(key, 3)
    v = jax.jit(jax.vmap(lambda k: D.random_crop_flip(k, x, padding=1)))(keys)
    assert v.shape == (3, *x.shape)
    np.testing.assert_array_equal(v[1], _rcf(keys[1], x, padding=1))


def test_crop_flip_errors(key):
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        D.random_crop_flip(key, jnp.zeros((4, 4, 3)))
    with pytest.raises(TypeError, match="float"):
        D.random_crop_flip(key, jnp.zeros((1, 4, 4, 3), jnp.uint8))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        D.random_crop_flip(key, jnp.zeros((1, 4, 4, 3)), padding=-1)


@pytest.mark.parametrize("remainder", ["drop", "pad"])
def test_epoch_rows_are_the_same_rows_of_the_full_batches(key, remainder):
    images = np.arange(50 * 2, dtype=np.uint8).reshape(50, 2, 1, 1)
    labels = np.arange(50, dtype=np.int32)
    full = list(D.epoch_batches(images, labels, batch_size=8, key=key, remainder=remainder))
    part = list(D.epoch_batches(images, labels, batch_size=8, key=key, remainder=remainder, rows=(2, 6)))
    assert len(part) == len(full)
    for f, p in zip(full, part):
        for k in ("image", "label", "mask"):
            np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(f[k])[2:6])
    for bad in [(0, 0), (3, 2), (-1, 4), (0, 9)]:
        with pytest.raises(ValueError, match="rows must be"):
            next(D.epoch_batches(images, labels, batch_size=8, key=key, rows=bad))
