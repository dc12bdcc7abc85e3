"""Host-side dataset transforms: two-class tasks and (class-balanced) subsets."""
from __future__ import annotations

import numbers

import jax
import numpy as np

from jadv._checks import check_positive_int
from jadv.data._keys import numpy_rng
from jadv.data.dataset import Dataset


def _class_index(ds: Dataset, c, what: str) -> int:
    if isinstance(c, str):
        if c not in ds.class_names:
            raise ValueError(f"{what} class {c!r} is not a class of {ds.name!r}; classes: {ds.class_names}")
        return ds.class_names.index(c)
    if isinstance(c, bool) or not isinstance(c, numbers.Integral):
        raise TypeError(f"{what} must be a class index or class name, got {type(c).__name__}")
    if not 0 <= int(c) < ds.num_classes:
        raise ValueError(f"{what} class index {c} out of range [0, {ds.num_classes}) for {ds.name!r}")
    return int(c)


def binary_task(ds: Dataset, positive: int | str, negative: int | str) -> Dataset:
    """Keep only two classes: label 1 for ``positive``, 0 for ``negative`` (e.g. MNIST 5 vs 7).

    Args:
      ds: a :class:`Dataset`.
      positive, negative: class indices or class names (must differ).

    Returns:
      :class:`Dataset` with the examples of the two classes in their original order, labels
      int32 in {0, 1}, ``class_names == (negative_name, positive_name)`` and name
      ``"<name>:<positive>_vs_<negative>"``.

    Raises:
      ValueError: unknown class, the same class twice, or a class with no examples in ``ds``.
    """
    pos = _class_index(ds, positive, "positive")
    neg = _class_index(ds, negative, "negative")
    if pos == neg:
        raise ValueError(f"positive and negative must be different classes, got {positive!r} twice")
    for k, what in ((pos, "positive"), (neg, "negative")):
        if not np.any(ds.labels == k):
            raise ValueError(f"{what} class {ds.class_names[k]!r} has no examples in {ds.name!r}/{ds.split!r}")
    keep = (ds.labels == pos) | (ds.labels == neg)
    labels = (ds.labels[keep] == pos).astype(np.int32)
    names = (ds.class_names[neg], ds.class_names[pos])
    return Dataset(ds.images[keep], labels, names, f"{ds.name}:{names[1]}_vs_{names[0]}", ds.split)


def subset(ds: Dataset, n: int, *, key_or_seed: jax.Array | int, stratified: bool = True) -> Dataset:
    """A random subset of ``n`` examples, class-balanced by default (training-set-size sweeps).

    With ``stratified=True`` every class present gets ``n // K`` examples and ``n % K`` randomly
    chosen classes get one more. Each class's examples are taken as a prefix of one random
    permutation per class, so for a fixed key the subsets are nested when ``n`` grows by multiples
    of ``K``. With ``stratified=False`` ``n`` examples are drawn uniformly without replacement.
    The chosen examples keep their original order.

    Args:
      ds: a :class:`Dataset`. n: subset size, ``1 <= n <= len(ds)``.
      key_or_seed: ``jax.random.key(...)`` or int seed (deterministic).
      stratified: class-balanced (default) or uniform.

    Returns:
      :class:`Dataset` with ``n`` examples, same class names, name and split.

    Raises:
      ValueError: ``n`` out of range, or a class with fewer examples than its balanced share.
    """
    n = check_positive_int("n", n)
    if n > len(ds):
        raise ValueError(f"n={n} is larger than the dataset ({len(ds)} examples)")
    rng = numpy_rng(key_or_seed)
    if not stratified:
        idx = rng.choice(len(ds), size=n, replace=False)
    else:
        present = np.unique(ds.labels)
        perms = [rng.permutation(np.flatnonzero(ds.labels == k)) for k in present]
        quota = np.full(present.size, n // present.size)
        quota[rng.choice(present.size, size=n % present.size, replace=False)] += 1
        for k, q, perm in zip(present, quota, perms):
            if q > perm.size:
                raise ValueError(f"class {ds.class_names[k]!r} has {perm.size} examples, fewer than its "
                                 f"balanced share {q} of n={n}; use a smaller n or stratified=False")
        idx = np.concatenate([perm[:q] for q, perm in zip(quota, perms)])
    idx = np.sort(idx)
    return Dataset(ds.images[idx], ds.labels[idx], ds.class_names, ds.name, ds.split)
