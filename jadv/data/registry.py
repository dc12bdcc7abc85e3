"""``load(name, split)``: find a dataset in the known places and formats, return a :class:`Dataset`.

Search order, first hit wins (a file that is found but corrupt raises; it is not skipped):

1. data roots, in order: the ``data_dir`` argument, env ``JADV_DATA_DIR`` (one folder or several
   joined by ``os.pathsep``), ``../shared/data`` relative to the current working directory, and
   ``../shared/data`` relative to the repository root (the folder holding the ``jadv`` package).
   In each root, per dataset:

   - mnist: IDX files (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
     ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``) in ``<root>/mnist/`` or
     ``<root>/MNIST/raw/``; fashion_mnist: the same names in ``<root>/fashion_mnist/``,
     ``<root>/fashion-mnist/`` or ``<root>/FashionMNIST/raw/``.
   - cifar10: ``cifar-10-batches-bin/`` then ``cifar-10-batches-py/`` (in ``<root>/`` or
     ``<root>/cifar10/``), then the archives ``cifar-10-binary.tar.gz`` / ``cifar-10-python.tar.gz``
     (safely extracted once into the cache folder); cifar100 likewise with ``cifar-100-binary``,
     ``cifar-100-python``.
   - any of the four: an image-folder tree ``<root>/<name>/<split>/<class>/*.{jpg,png}`` or an
     archive ``<root>/<name>[-jpeg|-png].tar[.gz|.xz|...]`` holding ``<split>/<class>/*``,
     e.g. ``cifar10-jpeg.tar.xz`` (decoded once, cached as ``.npz``). The tree must hold one
     folder per class of the dataset's fixed class list (by name, e.g. ``airplane`` ... ``truck``,
     or by index ``0``..``9``); a missing or unknown class folder is a ``ValueError`` naming it.
2. fashion_mnist only: Debian's ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install dataset-fashion-mnist``).
3. TensorFlow Datasets, when ``tensorflow_datasets`` is importable and the data is prepared
   (never downloads).

``digits`` and ``colored_digits`` are built from the data inside scikit-learn (no files needed);
``colored_mnist`` is MNIST (found as above) with a random colour pair per image
(:func:`jadv.data.embedded.colored_mnist`).
"""
from __future__ import annotations

import os

from jadv.data import archive as _archive
from jadv.data import cache as _cache
from jadv.data import cifar as _cifar
from jadv.data import embedded as _embedded
from jadv.data import idx as _idx
from jadv.data import image_folder as _image_folder
from jadv.data import tfds_source as _tfds
from jadv.data.dataset import Dataset

DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "colored_digits", "colored_mnist")
SPLITS = ("train", "test")
# training examples of each dataset's train split (the sizes of the standard releases; digits and
# colored_digits: the 80% train part of scikit-learn's 1797 digits, jadv.data.embedded), so that
# step counts can be computed without the data files (jadv.studies.cost)
TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "colored_mnist": 60000, "cifar10": 50000,
               "cifar100": 50000, "digits": 1438, "colored_digits": 1438}
# image shape (H, W, C) of each dataset's examples
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "colored_mnist": (28, 28, 3),
                "cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "digits": (8, 8, 1), "colored_digits": (32, 32, 3)}
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

_IDX_DIRS = {"mnist": ("mnist", os.path.join("MNIST", "raw")),
             "fashion_mnist": ("fashion_mnist", "fashion-mnist", os.path.join("FashionMNIST", "raw"))}
_MODES = {"mnist": "L", "fashion_mnist": "L", "cifar10": "RGB", "cifar100": "RGB"}
_HOW_TO = {
    "mnist": "put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
             "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; raw or gzipped) in <data_dir>/mnist/",
    "fashion_mnist": "put the four Fashion-MNIST IDX files in <data_dir>/fashion_mnist/, or "
                     "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)",
    "cifar10": "put cifar-10-binary.tar.gz or cifar-10-python.tar.gz (or their extracted "
               "cifar-10-batches-bin/ or cifar-10-batches-py/ folders) in <data_dir>/, or an image "
               "tree <data_dir>/cifar10/<split>/<class>/*.png or <data_dir>/cifar10-jpeg.tar.xz",
    "cifar100": "put cifar-100-binary.tar.gz or cifar-100-python.tar.gz (or their extracted "
                "cifar-100-binary/ or cifar-100-python/ folders) in <data_dir>/, or an image tree "
                "<data_dir>/cifar100/<split>/<class>/*.png",
}


def data_roots(data_dir: str | None = None) -> list:
    """The data folders searched, in order (existing or not), without duplicates."""
    roots = []
    if data_dir is not None:
        roots.append(os.fspath(data_dir))
    env = os.environ.get("JADV_DATA_DIR")
    if env:
        roots.extend(p for p in env.split(os.pathsep) if p)
    roots.append(os.path.join(os.getcwd(), "..", "shared", "data"))
    roots.append(os.path.join(_REPO_ROOT, "..", "shared", "data"))
    out, seen = [], set()
    for r in roots:
        key = os.path.realpath(r)
        if key not in seen:
            seen.add(key)
            out.append(os.path.normpath(os.path.abspath(r)))
    return out


def _image_folder_candidates(root, name):
    yield os.path.join(root, name), "folder"
    for stem in (name, f"{name}-jpeg", f"{name}-png"):
        for suffix in _archive.ARCHIVE_SUFFIXES:
            yield os.path.join(root, stem + suffix), "archive"


def _try_root(root, name, split, cache_dir, looked):
    """Load from ``root`` or return ``None``; append every path checked to ``looked``."""
    if name in _IDX_DIRS:
        for sub in _IDX_DIRS[name]:
            d = os.path.join(root, sub)
            looked.append(d + os.sep + " (IDX files)")
            if os.path.isdir(d):
                pair = _idx.find_idx_files(d, split)
                if pair:
                    images, labels = _idx.read_idx_pair(*pair)
                    classes = MNIST_CLASSES if name == "mnist" else FASHION_MNIST_CLASSES
                    return Dataset(images, labels, classes, name, split)
    if name in _cifar.LAYOUTS:
        for base in (root, os.path.join(root, name)):
            for layout, fmt in _cifar.LAYOUTS[name]:
                d = os.path.join(base, layout)
                looked.append(d + os.sep)
                if os.path.isdir(d) and _cifar.has_cifar_dir(d, name, fmt, split):
                    images, labels, classes = _cifar.load_cifar_dir(d, name, fmt, split)
                    return Dataset(images, labels, classes, name, split)
        for base in (root, os.path.join(root, name)):
            for arch, (layout, fmt) in zip(_cifar.ARCHIVES[name], _cifar.LAYOUTS[name]):
                a = os.path.join(base, arch)
                looked.append(a)
                if os.path.isfile(a):
                    fp = _cache.source_fingerprint(a)
                    dest = os.path.join(_cache.cache_root(cache_dir), "extracted", f"{name}-{fmt}-{fp}")
                    _archive.safe_extract(a, dest)
                    d = os.path.join(dest, layout)
                    images, labels, classes = _cifar.load_cifar_dir(d, name, fmt, split)
                    return Dataset(images, labels, classes, name, split)
    looked.append(os.path.join(root, name, "<split>", "<class>", "*.{jpg,png}"))
    looked.append(os.path.join(root, f"{{{name},{name}-jpeg,{name}-png}}"
                                     f"{{{','.join(_archive.ARCHIVE_SUFFIXES)}}}"))
    for path, kind in _image_folder_candidates(root, name):
        ok = _image_folder.is_image_folder(path) if kind == "folder" else os.path.isfile(path)
        if ok:
            return _image_folder.load_image_folder(path, split, name=name, mode=_MODES[name],
                                                   cache_dir=cache_dir, classes=_CLASSES[name])
    return None


MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
# the fixed class list an image-folder copy of each known dataset must match (all classes present)
_CLASSES = {"mnist": MNIST_CLASSES, "fashion_mnist": FASHION_MNIST_CLASSES,
            "cifar10": _cifar.CIFAR10_CLASSES, "cifar100": _cifar.CIFAR100_CLASSES}


def load(name: str, split: str, *, data_dir: str | None = None, cache_dir: str | None = None) -> Dataset:
    """Load a dataset split into host memory.

    Args:
      name: one of ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"cifar100"``, ``"digits"``,
        ``"colored_digits"``, ``"colored_mnist"``.
      split: ``"train"`` or ``"test"``.
      data_dir: an extra data folder searched first (see the module doc for the search order).
      cache_dir: folder for decoded ``.npz`` caches and extracted archives (default env
        ``JADV_CACHE_DIR`` or ``~/.cache/jadv``).

    Returns:
      :class:`Dataset`: ``images`` uint8 ``[N, H, W, C]`` (MNIST ``[N, 28, 28, 1]``, CIFAR
      ``[N, 32, 32, 3]``, digits ``[N, 8, 8, 1]``, colored_digits ``[N, 32, 32, 3]``, colored_mnist ``[N, 28, 28, 3]``), ``labels``
      int32 ``[N]``, ``class_names``.

    Raises:
      ValueError: unknown name or split (lists the allowed ones); a corrupt data file.
      FileNotFoundError: the dataset is in none of the searched places; the message lists every
        place looked at and how to provide the data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(map(repr, DATASETS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(map(repr, SPLITS))}")
    if name == "digits":
        return _embedded.load_digits(split)
    if name == "colored_digits":
        return _embedded.load_colored_digits(split)
    if name == "colored_mnist":
        return _embedded.colored_mnist(load("mnist", split, data_dir=data_dir, cache_dir=cache_dir))
    looked = []
    for root in data_roots(data_dir):
        if not os.path.isdir(root):
            looked.append(f"{root} (does not exist)")
            continue
        ds = _try_root(root, name, split, cache_dir, looked)
        if ds is not None:
            return ds
    if name == "fashion_mnist":
        looked.append(DEBIAN_FASHION_MNIST + os.sep)
        pair = _idx.find_idx_files(DEBIAN_FASHION_MNIST, split) if os.path.isdir(DEBIAN_FASHION_MNIST) else None
        if pair:
            images, labels = _idx.read_idx_pair(*pair)
            return Dataset(images, labels, FASHION_MNIST_CLASSES, name, split)
    if _tfds.tfds_available():
        try:
            return _tfds.load_tfds(name, split, data_dir=data_dir)
        except Exception as e:  # TFDS raises many error types when data is not prepared
            looked.append(f"TensorFlow Datasets {name!r} (failed: {type(e).__name__}: {e})")
    else:
        looked.append("TensorFlow Datasets (not installed)")
    raise FileNotFoundError(
        f"dataset {name!r} split {split!r} not found. Looked in:\n  " + "\n  ".join(looked)
        + f"\nTo provide it: {_HOW_TO[name]}; pass data_dir=... or set JADV_DATA_DIR to that folder; "
          "or `pip install jadv[tfds]` and prepare the TFDS dataset.")
