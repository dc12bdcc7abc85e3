"""The real datasets in the shared data folder (``../shared/data`` or ``JADV_DATA_DIR``).

Skipped, with the reason, when that folder or the file is absent. The CIFAR-10 check decodes the
JPEG archive once (tens of seconds) and then reads the ``.npz`` cache (``JADV_CACHE_DIR`` or
``~/.cache/jadv``), so it is marked ``slow``.
"""
import os

import numpy as np
import pytest

import jadv.data as D
from jadv.data import registry as _registry


def _shared_root():
    for root in _registry.data_roots():
        if os.path.isdir(root):
            return root
    return None


ROOT = _shared_root()
needs_data = pytest.mark.skipif(ROOT is None, reason="no shared data folder (set JADV_DATA_DIR or provide "
                                                     "../shared/data); see jadv.data.load")


def _require(path):
    if not os.path.exists(os.path.join(ROOT, path)):
        pytest.skip(f"{path} not in {ROOT}")


@needs_data
def test_mnist_train():
    _require("mnist")
    ds = D.load("mnist", "train")
    assert ds.images.shape == (60000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32
    assert ds.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(ds.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert ds.images.max() == 255 and ds.images.min() == 0


@needs_data
def test_mnist_test():
    _require("mnist")
    ds = D.load("mnist", "test")
    assert ds.images.shape == (10000, 28, 28, 1)
    assert ds.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@needs_data
@pytest.mark.slow
def test_cifar10_test_from_jpeg_archive():
    if not any(os.path.exists(os.path.join(ROOT, p)) for p in
               ("cifar10-jpeg.tar.xz", "cifar-10-batches-bin", "cifar-10-binary.tar.gz", "cifar10")):
        pytest.skip(f"no CIFAR-10 in {ROOT}")
    ds = D.load("cifar10", "test")
    assert ds.images.shape == (10000, 32, 32, 3) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                              "ship", "truck")
    # the fixed example order mixes classes, so a prefix is not one class
    assert len(set(ds.labels[:100].tolist())) == 10
    # real photos: per-channel means near the published CIFAR-10 test means (0.49, 0.48, 0.45)
    mean = ds.images.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, [0.4942, 0.4851, 0.4504], atol=0.02)
