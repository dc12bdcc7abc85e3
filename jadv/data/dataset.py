"""The in-memory dataset record returned by :func:`jadv.data.load`."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset held in host memory.

    Attributes:
      images: ``np.uint8`` array ``[N, H, W, C]`` (NHWC, pixel values 0..255).
      labels: ``np.int32`` array ``[N]`` with values in ``[0, num_classes)``.
      class_names: tuple of ``num_classes`` strings; ``class_names[k]`` names label ``k``.
      name: dataset name, e.g. ``"mnist"``.
      split: ``"train"`` or ``"test"`` (or a derived name).

    Convert images to float32 in [0, 1] with :func:`jadv.data.to_float`.

    Raises:
      TypeError: images not uint8 or labels not integer.
      ValueError: wrong ranks, length mismatch or labels outside ``[0, len(class_names))``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    name: str
    split: str

    def __post_init__(self):
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.dtype != np.uint8:
            raise TypeError(f"Dataset images must be uint8, got dtype {images.dtype}")
        if images.ndim != 4:
            raise ValueError(f"Dataset images must be [N, H, W, C], got shape {images.shape}")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"Dataset labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"Dataset has {images.shape[0]} images but {labels.shape[0]} labels")
        names = tuple(str(c) for c in self.class_names)
        if len(names) < 1:
            raise ValueError("Dataset needs at least one class name")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"Dataset labels must lie in [0, {len(names)}), "
                             f"got [{labels.min()}, {labels.max()}]")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        object.__setattr__(self, "class_names", names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, split={self.split!r}, images={self.images.shape} uint8, "
                f"num_classes={self.num_classes})")
