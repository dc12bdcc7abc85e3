"""The TFDS data source under ``tfds.testing.mock_data`` (no download, no TensorFlow needed).

``tfds.load`` goes through ``tf.data`` and so needs TensorFlow, even when mocked; jadv reads
through TFDS's TensorFlow-free ``tfds.data_source`` when TensorFlow is absent, which is what CI
runs (tensorflow-datasets is in the dev extra, TensorFlow is not: it is ~600 MB).
"""
import numpy as np
import pytest

import jadv
from jadv.data import registry as _registry
from jadv.data import tfds_source as _tfds

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is in the dev extra")

SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3)}
CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


@pytest.fixture
def no_tensorflow(monkeypatch):
    """The TensorFlow-free reader, whatever is installed."""
    monkeypatch.setattr(_tfds, "tensorflow_available", lambda: False)


@pytest.mark.parametrize("name,split", [("mnist", "train"), ("cifar10", "test"), ("cifar100", "train"),
                                        ("fashion_mnist", "test")])
def test_mock_shapes_dtypes_labels(no_tensorflow, name, split):
    with tfds.testing.mock_data(num_examples=7):
        ds = jadv.data.load_tfds(name, split)
    assert ds.images.shape == (7, *SHAPES[name]) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (7,) and ds.labels.dtype == np.int32
    assert ds.labels.min() >= 0 and ds.labels.max() < CLASSES[name]
    assert ds.num_classes == CLASSES[name] and ds.name == name and ds.split == split
    assert ds.images.std() > 10                         # random mock pixels, not an empty array
    if name == "cifar10":
        assert ds.class_names == jadv.data.CIFAR10_CLASSES
    if name == "cifar100":
        assert ds.class_names[:2] == ("apple", "aquarium_fish")
    # deterministic: the same examples on a second read
    with tfds.testing.mock_data(num_examples=7):
        again = jadv.data.load_tfds(name, split)
    np.testing.assert_array_equal(again.images, ds.images)
    np.testing.assert_array_equal(again.labels, ds.labels)
    # the images feed jadv's pipeline: float32 in [0, 1]
    x = jadv.data.to_float(ds.images)
    assert x.dtype == np.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_default_reader_under_mock():
    """Whichever reader the installation selects (CI: the TensorFlow-free one) reads the mock."""
    with tfds.testing.mock_data(num_examples=3):
        ds = jadv.data.load_tfds("mnist", "test")
    assert ds.images.shape == (3, 28, 28, 1)


def test_registry_falls_back_to_tfds(no_tensorflow, tmp_path, monkeypatch):
    """jadv.data.load finds no files anywhere, then reads the (mocked) TFDS dataset."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("JADV_DATA_DIR", raising=False)
    monkeypatch.setenv("JADV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_registry, "_REPO_ROOT", str(tmp_path / "repo"))
    with tfds.testing.mock_data(num_examples=5):
        ds = jadv.data.load("cifar10", "train", data_dir=tmp_path / "empty")
    assert ds.images.shape == (5, 32, 32, 3) and ds.num_classes == 10


def test_download_switch(no_tensorflow, monkeypatch):
    monkeypatch.delenv(_tfds.DOWNLOAD_ENV, raising=False)
    assert not _tfds.download_requested()
    for value, expected in (("1", True), ("yes", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv(_tfds.DOWNLOAD_ENV, value)
        assert _tfds.download_requested() is expected
    # preparing MNIST/CIFAR needs TensorFlow: a clear error, not a failed download half-way
    with pytest.raises(ImportError, match="needs TensorFlow"):
        jadv.data.load_tfds("mnist", "train", download=True)
    monkeypatch.setenv(_tfds.DOWNLOAD_ENV, "1")
    with pytest.raises(ImportError, match="pip install 'jadv\\[tfds\\]'"):
        jadv.data.load_tfds("cifar10", "test")
    with pytest.raises(ValueError, match="no TFDS mapping for 'svhn'"):
        jadv.data.load_tfds("svhn", "train")
