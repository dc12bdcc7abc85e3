"""CIFAR-10 / CIFAR-100 in their canonical binary and python (pickle) formats.

Binary: ``cifar-10-batches-bin/data_batch_{1..5}.bin``, ``test_batch.bin`` (records of 1 label
byte + 3072 pixel bytes, channel-major 3x32x32), names in ``batches.meta.txt``;
``cifar-100-binary/train.bin``, ``test.bin`` (coarse label byte, fine label byte, 3072 pixels),
names in ``fine_label_names.txt``. Python: ``cifar-10-batches-py/data_batch_*``, ``test_batch``,
``batches.meta``; ``cifar-100-python/train``, ``test``, ``meta``. The pickles are read with
:func:`restricted_load`, which only rebuilds dicts, lists, strings, bytes and numpy arrays.
CIFAR-100 uses the fine (100-class) labels.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid
otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray
road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle
wardrobe whale willow_tree wolf woman worm""".split())
assert len(CIFAR100_CLASSES) == 100

_PIXELS = 3 * 32 * 32


# ----------------------------------------------------------------------------- restricted pickle
def _numpy_core(sub: str):
    import importlib

    for pkg in ("numpy._core", "numpy.core"):
        try:
            return importlib.import_module(f"{pkg}.{sub}")
        except ImportError:
            continue
    raise ImportError(f"numpy core module {sub!r} not found")


def _allowed_globals():
    import _codecs

    multiarray = _numpy_core("multiarray")
    numeric = _numpy_core("numeric")
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): _codecs.encode}
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves numpy array/dtype reconstruction (and ``_codecs.encode``).

    Containers, strings, bytes and numbers need no globals; any other global (``os.system``,
    ``builtins.eval``, arbitrary classes) raises ``pickle.UnpicklingError``.
    """

    def find_class(self, module, name):
        allowed = _allowed_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")


def restricted_load(path: str | os.PathLike) -> Any:
    """Unpickle a CIFAR python-format file safely (``encoding="bytes"``, restricted globals).

    Raises:
      ValueError: the file references a forbidden global or is not a valid pickle (names the file).
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{os.fspath(path)}: rejected or corrupt pickle ({e})") from None


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


# ----------------------------------------------------------------------------- readers
def _to_nhwc(flat: np.ndarray, path) -> np.ndarray:
    flat = np.asarray(flat, dtype=np.uint8)
    if flat.ndim != 2 or flat.shape[1] != _PIXELS:
        raise ValueError(f"{path}: expected image rows of {_PIXELS} bytes, got array of shape {flat.shape}")
    return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def read_binary_batch(path, *, label_bytes: int, label_index: int):
    """Read one CIFAR binary file of records ``label_bytes`` + 3072 pixel bytes.

    Returns:
      ``(images uint8 [N,32,32,3], labels int32 [N])`` (label taken from byte ``label_index``).

    Raises:
      ValueError: empty file or a length that is not a whole number of records (truncated).
    """
    raw = np.fromfile(path, dtype=np.uint8)
    rec = label_bytes + _PIXELS
    if raw.size == 0 or raw.size % rec:
        raise ValueError(f"{path}: length {raw.size} bytes is not a positive multiple of the "
                         f"{rec}-byte CIFAR record (truncated or wrong file)")
    rows = raw.reshape(-1, rec)
    return _to_nhwc(rows[:, label_bytes:], path), rows[:, label_index].astype(np.int32)


def read_python_batch(path, *, label_key: str):
    """Read one CIFAR python-format (pickled dict) file with :func:`restricted_load`.

    Returns:
      ``(images uint8 [N,32,32,3], labels int32 [N])``.
    """
    d = restricted_load(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    try:
        data, labels = _get(d, "data"), _get(d, label_key)
    except KeyError as e:
        raise ValueError(f"{path}: missing key {e} in CIFAR batch") from None
    images = _to_nhwc(data, path)
    labels = np.asarray(labels, dtype=np.int32)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{path}: {images.shape[0]} images but {labels.size} labels")
    return images, labels


def _names_txt(path, default):
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        names = tuple(line.strip() for line in f if line.strip())
    return names or default


def _names_pickle(path, key, default):
    if not os.path.isfile(path):
        return default
    d = restricted_load(path)
    try:
        names = _get(d, key)
    except (KeyError, TypeError):
        return default
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


# (layout folder name, format, variant)
LAYOUTS = {
    "cifar10": (("cifar-10-batches-bin", "binary"), ("cifar-10-batches-py", "python")),
    "cifar100": (("cifar-100-binary", "binary"), ("cifar-100-python", "python")),
}
ARCHIVES = {
    "cifar10": ("cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-binary.tar.gz", "cifar-100-python.tar.gz"),
}


def _files(directory, name, fmt, split):
    if name == "cifar10":
        if fmt == "binary":
            names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
        else:
            names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    else:
        names = [f"{split}.bin"] if fmt == "binary" else [split]
    return [os.path.join(directory, n) for n in names]


def has_cifar_dir(directory, name: str, fmt: str, split: str) -> bool:
    return all(os.path.isfile(p) for p in _files(directory, name, fmt, split))


def load_cifar_dir(directory, name: str, fmt: str, split: str):
    """Load a split from an extracted CIFAR folder.

    Args:
      directory: e.g. ``.../cifar-10-batches-bin`` or ``.../cifar-100-python``.
      name: ``"cifar10"`` or ``"cifar100"``. fmt: ``"binary"`` or ``"python"``.
      split: ``"train"`` or ``"test"``.

    Returns:
      ``(images uint8 [N,32,32,3], labels int32 [N], class_names)``.

    Raises:
      FileNotFoundError: a batch file is missing. ValueError: corrupt/truncated/rejected file or
        labels outside the class range.
    """
    if name not in LAYOUTS or fmt not in ("binary", "python"):
        raise ValueError(f"unknown CIFAR variant {name!r}/{fmt!r}")
    paths = _files(directory, name, fmt, split)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"CIFAR files missing: {', '.join(missing)}")
    parts = []
    for p in paths:
        if fmt == "binary":
            parts.append(read_binary_batch(p, label_bytes=1 if name == "cifar10" else 2,
                                           label_index=0 if name == "cifar10" else 1))
        else:
            parts.append(read_python_batch(p, label_key="labels" if name == "cifar10" else "fine_labels"))
    images = np.concatenate([a for a, _ in parts])
    labels = np.concatenate([b for _, b in parts])
    if name == "cifar10":
        classes = (_names_txt(os.path.join(directory, "batches.meta.txt"), CIFAR10_CLASSES) if fmt == "binary"
                   else _names_pickle(os.path.join(directory, "batches.meta"), "label_names", CIFAR10_CLASSES))
    else:
        classes = (_names_txt(os.path.join(directory, "fine_label_names.txt"), CIFAR100_CLASSES) if fmt == "binary"
                   else _names_pickle(os.path.join(directory, "meta"), "fine_label_names", CIFAR100_CLASSES))
    if labels.size and labels.max() >= len(classes):
        raise ValueError(f"{directory}: label {labels.max()} out of range for {len(classes)} classes")
    return images, labels, classes
