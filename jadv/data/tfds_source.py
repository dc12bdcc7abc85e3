"""Optional TensorFlow Datasets source (``pip install jadv[tfds]``); imported lazily.

Two ways to read, chosen by what is installed:

- with TensorFlow: ``tfds.load(name, split=split, batch_size=-1)`` (any prepared format);
- without TensorFlow: ``tfds.data_source(name, split=split)``, TFDS's TensorFlow-free random
  access reader (data prepared in the ``array_record`` format), one example at a time.

Downloading. TFDS prepares MNIST/CIFAR-10/CIFAR-100 (download, decode, write) with TensorFlow,
so a download needs ``tensorflow`` (the ``tfds`` extra installs it). It happens only when asked:
``load_tfds(..., download=True)``, or ``JADV_TFDS_DOWNLOAD=1`` in the environment, which makes
``jadv.data.load`` fetch a dataset that is found nowhere else on first use (into TFDS's data
folder, ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``) and read it from there afterwards.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from jadv.data.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES
from jadv.data.dataset import Dataset

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "cifar100": "cifar100"}
DOWNLOAD_ENV = "JADV_TFDS_DOWNLOAD"
_CLASS_NAMES = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}


def tfds_available() -> bool:
    """True when ``tensorflow_datasets`` can be imported."""
    try:
        importlib.import_module("tensorflow_datasets")
    except ImportError:
        return False
    return True


def tensorflow_available() -> bool:
    """True when TensorFlow can be imported (TFDS then reads through ``tf.data``)."""
    try:
        importlib.import_module("tensorflow")
    except ImportError:
        return False
    return True


def download_requested() -> bool:
    """True when ``$JADV_TFDS_DOWNLOAD`` is set to something other than ``""``/``0``/``false``."""
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def load_tfds(name: str, split: str, *, data_dir: str | None = None, download: bool | None = None) -> Dataset:
    """Load a whole split from TFDS as numpy.

    Works with prepared TFDS data in ``data_dir`` (or TFDS's default folder) and under
    ``tfds.testing.mock_data``, with or without TensorFlow (see the module docstring).
    CIFAR-100 uses the fine ``label`` feature.

    Args:
      name: mnist, fashion_mnist, cifar10 or cifar100. split: "train" or "test".
      data_dir: TFDS data folder (default: TFDS's own).
      download: download and prepare the dataset if it is not there (needs TensorFlow and
        internet). Default: ``$JADV_TFDS_DOWNLOAD`` (off when unset).

    Returns:
      :class:`Dataset` with ``uint8 [N, H, W, C]`` images and int32 labels.

    Raises:
      ImportError: ``tensorflow_datasets`` is not installed, or a download was asked for without
        TensorFlow. ValueError: unknown name. Any TFDS error (e.g. data not prepared) propagates.
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"no TFDS mapping for {name!r}; allowed: {', '.join(TFDS_NAMES)}")
    import tensorflow_datasets as tfds

    if download is None:
        download = download_requested()
    data_dir = None if data_dir is None else str(data_dir)
    if tensorflow_available():
        ds, info = tfds.load(TFDS_NAMES[name], split=split, batch_size=-1, download=bool(download),
                             data_dir=data_dir, with_info=True)
        arrays = tfds.as_numpy(ds)
        images, labels = np.asarray(arrays["image"]), np.asarray(arrays["label"])
        names = tuple(info.features["label"].names)
    else:
        if download:
            raise ImportError(f"downloading {name!r} with TFDS needs TensorFlow (TFDS prepares MNIST/CIFAR "
                              "with it): pip install 'jadv[tfds]' (or pip install tensorflow)")
        source = tfds.data_source(TFDS_NAMES[name], split=split, data_dir=data_dir, download=False)
        examples = [source[i] for i in range(len(source))]
        if not examples:
            raise ValueError(f"TFDS {name!r} split {split!r} is empty")
        images = np.stack([np.asarray(e["image"]) for e in examples])
        labels = np.asarray([np.asarray(e["label"]) for e in examples])
        names = tuple(tfds.builder(TFDS_NAMES[name], data_dir=data_dir).info.features["label"].names)
    if name in _CLASS_NAMES and names == tuple(str(i) for i in range(len(names))):
        names = _CLASS_NAMES[name]          # TFDS knows CIFAR's names only once the data is prepared
    images = np.asarray(images, dtype=np.uint8)
    labels = labels.astype(np.int32)
    if images.ndim == 3:
        images = images[..., None]
    return Dataset(images, labels, names, name, split)
