"""Device-resident input pipeline: uint8 arrays live on device, batches are gathered there.

Remainder policy (``remainder=``):

- ``"drop"`` (training): ``N // B`` full batches per epoch; the last ``N % B`` examples of the
  (shuffled) order are not used in that epoch. Every mask is all True.
- ``"pad"`` (evaluation): ``ceil(N / B)`` batches; the last one is filled up to ``B`` rows with
  copies of example ``order[0]`` whose ``mask`` is False, so every example is seen exactly once
  and every batch has the same shape (one compilation). Weight metrics by ``mask``.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jadv._checks import check_choice, check_positive_int
from jadv.data.dataset import Dataset

REMAINDERS = ("drop", "pad")


def to_float(images: ArrayLike) -> jax.Array:
    """uint8 images ``[..., H, W, C]`` (0..255) -> float32 in [0, 1] (``x / 255``). Jittable.

    Raises:
      TypeError: ``images`` is not uint8 (float images are already converted; other integer
        types are ambiguous).
    """
    dtype = jnp.result_type(images)
    if dtype != jnp.uint8:
        raise TypeError(f"to_float expects uint8 images (0..255), got dtype {dtype}")
    return jnp.asarray(images).astype(jnp.float32) * jnp.float32(1.0 / 255.0)


def _check_sharding_divides(sharding, n, what):
    if sharding is None:
        return
    spec = getattr(sharding, "spec", None)
    if spec is not None and len(spec) and spec[0] is not None:
        axes = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
        size = int(np.prod([sharding.mesh.shape[a] for a in axes]))
        if n % size:
            raise ValueError(f"{what} {n} is not divisible by the {size} devices of sharding axis "
                             f"{'/'.join(axes)}; use a multiple of {size}")
    try:
        sharding.shard_shape((n,))
    except Exception as e:
        raise ValueError(f"{what} {n} does not divide evenly over the sharding {sharding} ({e})") from None


def device_put_dataset(ds: Dataset, sharding: jax.sharding.Sharding | None = None) -> tuple[jax.Array, jax.Array]:
    """Put a dataset's images and labels on device once.

    Args:
      ds: a :class:`Dataset` (uint8 images, int32 labels).
      sharding: optional ``jax.sharding.Sharding`` applied to both arrays (e.g.
        ``NamedSharding(mesh, P("data"))`` splits examples over devices; ``P()`` replicates).
        Default: the default device.

    Returns:
      ``(images, labels)``: ``jax.Array`` uint8 ``[N, H, W, C]`` and int32 ``[N]``.

    Raises:
      TypeError: ``ds`` is not a Dataset. ValueError: N does not divide over a sharded axis.
    """
    if not isinstance(ds, Dataset):
        raise TypeError(f"device_put_dataset expects a jadv.data.Dataset, got {type(ds).__name__}")
    if sharding is None:
        return jax.device_put(ds.images), jax.device_put(ds.labels)
    _check_sharding_divides(sharding, len(ds), "dataset size")
    return jax.device_put(ds.images, sharding), jax.device_put(ds.labels, sharding)


def num_batches(n: int, batch_size: int, remainder: str = "drop") -> int:
    """Batches per epoch: ``n // batch_size`` for ``"drop"``, ``ceil(n / batch_size)`` for ``"pad"``.

    Raises:
      ValueError: ``n`` < 1, ``batch_size`` < 1, unknown ``remainder``, or ``batch_size > n`` with
        ``"drop"`` (an epoch would have no batch).
    """
    n = check_positive_int("n", n)
    batch_size = check_positive_int("batch_size", batch_size)
    check_choice("remainder", remainder, REMAINDERS)
    if remainder == "drop":
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} is larger than the dataset ({n} examples) with "
                             "remainder='drop', so an epoch has no batch; use a smaller batch or 'pad'")
        return n // batch_size
    return -(-n // batch_size)


def _gather(images, labels, order, valid, start, *, batch_size, out_sharding):
    idx = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
    mask = jax.lax.dynamic_slice_in_dim(valid, start, batch_size)
    if out_sharding is None or not _is_explicit(out_sharding):
        return {"image": jnp.take(images, idx, axis=0), "label": jnp.take(labels, idx, axis=0), "mask": mask}
    # Explicit-sharding meshes (jax.make_mesh's default) need the gather's output sharding spelled out.
    return {"image": images.at[idx].get(out_sharding=out_sharding),
            "label": labels.at[idx].get(out_sharding=out_sharding),
            "mask": jax.sharding.reshard(mask, out_sharding)}


def _is_explicit(sharding) -> bool:
    types = getattr(getattr(sharding, "mesh", None), "axis_types", ())
    return any(t == jax.sharding.AxisType.Explicit for t in types)


@functools.lru_cache(maxsize=32)
def _gather_fn(sharding):
    kw = {} if sharding is None else {"out_shardings": sharding}
    return jax.jit(functools.partial(_gather, out_sharding=sharding), static_argnames=("batch_size",), **kw)


def _output_sharding(images, sharding):
    """The batch sharding: the requested one, else replicated over the mesh of sharded inputs."""
    if sharding is not None:
        return sharding
    s = getattr(images, "sharding", None)
    if isinstance(s, jax.sharding.NamedSharding) and s.mesh.size > 1:
        return jax.sharding.NamedSharding(s.mesh, jax.sharding.PartitionSpec())
    return None


@functools.partial(jax.jit, static_argnames=("n", "total", "shuffle"))
def _epoch_order(key, *, n, total, shuffle):
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    order = order.astype(jnp.int32)
    valid = jnp.arange(total) < n
    if total > n:
        order = jnp.concatenate([order, jnp.full((total - n,), order[0], jnp.int32)])
    return order[:total], valid


def epoch_batches(images: ArrayLike, labels: ArrayLike, *, batch_size: int, key: jax.Array | None = None,
                  remainder: str = "drop", shuffle: bool = True,
                  sharding: jax.sharding.Sharding | None = None,
                  rows: tuple[int, int] | None = None) -> Iterator[dict[str, jax.Array]]:
    """Yield one epoch of fixed-shape batches, gathered on device.

    Args:
      images: ``[N, ...]`` array (typically uint8 ``[N, H, W, C]`` from :func:`device_put_dataset`;
        host arrays are moved to the device once per call).
      labels: int ``[N]``.
      batch_size: rows per batch (``B``).
      key: PRNG key for the permutation (required when ``shuffle``); the same key gives the same
        order, different keys different orders. Use ``jax.random.fold_in(key, epoch)`` per epoch.
      remainder: ``"drop"`` or ``"pad"`` (see the module doc).
      shuffle: permute the examples (default) or keep their order.
      sharding: optional output sharding of every batch array (e.g. ``NamedSharding(mesh,
        P("data"))``); ``B`` must divide over its device axis. Default: the default device, or
        replicated over the mesh when ``images`` is sharded with a ``NamedSharding``.
      rows: ``(start, stop)``: yield only rows ``start:stop`` of every batch (the same examples
        those rows hold in the full batch): the share one process of a multi-process run feeds
        (:func:`jadv.train.sharding.process_rows`). Default: all ``B`` rows.

    Yields:
      dicts ``{"image": [B, ...] (dtype of images), "label": int32 [B], "mask": bool [B]}`` (``B``
      = ``stop - start`` with ``rows``). The
      gather is one jitted program per batch shape, so it compiles once.

    Raises:
      ValueError: length mismatch, bad ``batch_size`` (< 1, or > N with ``"drop"``) or ``rows``, unknown
        ``remainder``, missing key with ``shuffle=True``, a batch that does not divide over the
        sharding. TypeError: non-integer labels.
    """
    if jnp.ndim(images) < 1 or jnp.ndim(labels) != 1:
        raise ValueError(f"images must be [N, ...] and labels [N]; got shapes {jnp.shape(images)} and "
                         f"{jnp.shape(labels)}")
    n = int(jnp.shape(images)[0])
    if int(jnp.shape(labels)[0]) != n:
        raise ValueError(f"images has {n} examples but labels has {jnp.shape(labels)[0]}")
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {jnp.result_type(labels)}")
    steps = num_batches(n, batch_size, remainder)
    if shuffle and key is None:
        raise ValueError("epoch_batches needs key=jax.random.key(...) when shuffle=True")
    lo, hi = (0, batch_size) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= lo < hi <= batch_size:
        raise ValueError(f"rows must be (start, stop) with 0 <= start < stop <= batch_size={batch_size}, got {rows}")
    _check_sharding_divides(sharding, hi - lo, "batch_size" if rows is None else "rows per batch")
    images = images if isinstance(images, jax.Array) else jax.device_put(images)
    labels = labels if isinstance(labels, jax.Array) else jax.device_put(labels)
    if labels.dtype != jnp.int32:
        labels = labels.astype(jnp.int32)
    total = steps * batch_size
    order, valid = _epoch_order(key if shuffle else jax.random.key(0), n=n, total=total, shuffle=shuffle)
    fn = _gather_fn(_output_sharding(images, sharding))
    for i in range(steps):
        yield fn(images, labels, order, valid, np.int32(i * batch_size + lo), batch_size=hi - lo)
