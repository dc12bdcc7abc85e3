"""jadv.data: datasets as in-memory uint8 arrays, device-resident batching, augmentation.

>>> ds = jadv.data.load("mnist", "train")          # Dataset: uint8 [60000, 28, 28, 1], int32 labels
>>> images, labels = jadv.data.device_put_dataset(ds)
>>> for batch in jadv.data.epoch_batches(images, labels, batch_size=128, key=key):
...     x = jadv.data.to_float(batch["image"])      # float32 in [0, 1]
"""
from jadv.data.archive import safe_extract
from jadv.data.augment import random_crop_flip
from jadv.data.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES, restricted_load
from jadv.data.dataset import Dataset
from jadv.data.embedded import load_colored_digits, load_digits
from jadv.data.idx import read_idx, read_idx_pair
from jadv.data.image_folder import decode_image_folder, load_image_folder
from jadv.data.pipeline import device_put_dataset, epoch_batches, num_batches, to_float
from jadv.data.registry import DATASETS, SPLITS, IMAGE_SHAPES, TRAIN_SIZES, data_roots, load
from jadv.data.synthetic import tsipras
from jadv.data.tfds_source import load_tfds
from jadv.data.transforms import binary_task, subset

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "DATASETS",
    "Dataset",
    "SPLITS",
    "IMAGE_SHAPES",
    "TRAIN_SIZES",
    "binary_task",
    "data_roots",
    "decode_image_folder",
    "device_put_dataset",
    "epoch_batches",
    "load",
    "load_colored_digits",
    "load_digits",
    "load_image_folder",
    "load_tfds",
    "num_batches",
    "random_crop_flip",
    "read_idx",
    "read_idx_pair",
    "restricted_load",
    "safe_extract",
    "subset",
    "to_float",
    "tsipras",
]
