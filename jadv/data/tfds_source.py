"""Optional TensorFlow Datasets source (``pip install jadv[tfds]``); imported lazily."""
from __future__ import annotations

import numpy as np

from jadv.data.dataset import Dataset

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "cifar100": "cifar100"}


def tfds_available() -> bool:
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        return False
    return True


def load_tfds(name: str, split: str, *, data_dir=None) -> Dataset:
    """Load a whole split from TFDS as numpy, never downloading (``download=False``).

    Works with prepared TFDS data in ``data_dir`` (or TFDS's default folder) and under
    ``tfds.testing.mock_data``. CIFAR-100 uses the fine ``label`` feature.

    Returns:
      :class:`Dataset` with ``uint8 [N, H, W, C]`` images.

    Raises:
      ImportError: ``tensorflow_datasets`` is not installed. ValueError: unknown name. Any TFDS
        error (e.g. data not prepared) propagates.
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"no TFDS mapping for {name!r}; allowed: {', '.join(TFDS_NAMES)}")
    import tensorflow_datasets as tfds

    ds, info = tfds.load(TFDS_NAMES[name], split=split, batch_size=-1, download=False,
                         data_dir=None if data_dir is None else str(data_dir), with_info=True)
    arrays = tfds.as_numpy(ds)
    images = np.asarray(arrays["image"], dtype=np.uint8)
    labels = np.asarray(arrays["label"]).astype(np.int32)
    if images.ndim == 3:
        images = images[..., None]
    names = tuple(info.features["label"].names)
    return Dataset(images, labels, names, name, split)
