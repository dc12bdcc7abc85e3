"""Image-folder trees ``<root>/<split>/<class>/<file>.{jpg,jpeg,png}``, as a folder or a tar archive.

Classes are the sorted class-folder names (over all splits, so every split shares one label
numbering; for CIFAR-10 this gives the canonical order). A known dataset has a fixed class list
(``classes=``, passed by :func:`jadv.data.load` for mnist, fashion_mnist, cifar10 and cifar100):
then the split must hold one folder per class, named after the class (compared case-insensitively,
with " ", "/" and "-" read as "_") or by its index "0".."K-1"; labels are the indices in that list,
and a missing or unknown class folder is a ``ValueError`` naming it (never a silent renumbering
of the remaining classes). Images are decoded with Pillow, the
decoded arrays of every split are cached as ``.npz`` (see :mod:`jadv.data.cache`), so only the
first load pays for decoding.

Example order: an image folder has no canonical example order, and sorted order (all of class 0
first) makes every prefix such as ``images[:1000]`` a one-class sample. So the examples of each
split are sorted by ``(class, file path)`` and then put in the fixed pseudo-random order
``numpy.random.default_rng(0).permutation(n)`` (``order="shuffled"``, the default), the same on
every machine; ``order="sorted"`` keeps the sorted order.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jadv.data import archive as _archive
from jadv.data import cache as _cache
from jadv.data.dataset import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_CHUNK = 512


def _parse(name: str):
    """``(split, class, name)`` from ``.../<split>/<class>/<file>``, or ``None`` for other files."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_EXTENSIONS) or parts[-1].startswith("."):
        return None
    return parts[-3], parts[-2], "/".join(parts)


def _decode_chunk(source, chunk, mode):
    from PIL import Image

    out = []
    for split, cls, name, data in chunk:
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert(mode))
        except Exception as e:  # Pillow raises many types for bad data
            raise ValueError(f"{source}: cannot decode image {name!r} ({type(e).__name__}: {e})") from None
        if arr.ndim == 2:
            arr = arr[..., None]
        out.append((split, cls, name, arr))
    return out


def _iter_folder(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if _parse(rel) is None:
                continue
            with open(full, "rb") as f:
                yield rel, f.read()


def decode_image_folder(source: str | os.PathLike, *, mode: str = "RGB", order: str = "shuffled",
                        workers: int | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Decode every split of an image-folder tree (folder or tar archive) without caching.

    Args:
      source: a folder holding ``<split>/<class>/<file>`` or a ``.tar``/``.tar.gz``/``.tar.xz``
        archive holding the same tree (optionally under one top-level folder). Archives are read
        as a stream with unsafe members (absolute paths, ``..``, escaping links) rejected.
      mode: Pillow mode, ``"RGB"`` (C=3) or ``"L"`` (C=1).
      order: ``"shuffled"`` (fixed seed-0 permutation, see module doc) or ``"sorted"``.
      workers: decoding threads (default: number of CPUs, at most 8).

    Returns:
      ``(splits, class_names)`` where ``splits`` maps a split name to ``(images uint8 [N,H,W,C],
      labels int32 [N])`` and ``class_names`` is the sorted tuple of class folders.

    Raises:
      FileNotFoundError: ``source`` does not exist.
      ValueError: unsafe archive member, undecodable image, images of different sizes, no images.
    """
    source = os.fspath(source)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if order not in ("shuffled", "sorted"):
        raise ValueError(f"order must be 'shuffled' or 'sorted', got {order!r}")
    if not os.path.exists(source):
        raise FileNotFoundError(f"image folder source {source!r} does not exist")
    files = _iter_folder(source) if os.path.isdir(source) else _archive.iter_files(source)
    workers = workers or min(8, os.cpu_count() or 1)
    futures, chunk = [], []
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for name, data in files:
            parsed = _parse(name)
            if parsed is None:
                continue
            chunk.append((*parsed, data))
            if len(chunk) >= _CHUNK:
                futures.append(ex.submit(_decode_chunk, source, chunk, mode))
                chunk = []
        if chunk:
            futures.append(ex.submit(_decode_chunk, source, chunk, mode))
        decoded = [item for f in futures for item in f.result()]
    if not decoded:
        raise ValueError(f"{source}: no images found; expected <split>/<class>/<file> with extension "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    shape = decoded[0][3].shape
    for split, cls, name, arr in decoded:
        if arr.shape != shape:
            raise ValueError(f"{source}: image {name!r} has shape {arr.shape}, but {decoded[0][2]!r} "
                             f"has {shape}; all images must have the same size")
    class_names = tuple(sorted({cls for _, cls, _, _ in decoded}))
    index = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for split in sorted({s for s, _, _, _ in decoded}):
        items = sorted((x for x in decoded if x[0] == split), key=lambda x: (x[1], x[2]))
        images = np.stack([x[3] for x in items]).astype(np.uint8, copy=False)
        labels = np.array([index[x[1]] for x in items], dtype=np.int32)
        if order == "shuffled":
            perm = np.random.default_rng(0).permutation(len(items))
            images, labels = images[perm], labels[perm]
        splits[split] = (images, labels)
    return splits, class_names


def _folder_key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("/", "_").replace("-", "_")


def _check_class_list(classes) -> tuple:
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"classes must be a sequence of distinct, non-empty class names, got {classes!r}")
    classes = tuple(classes)
    keys = [_folder_key(c) for c in classes]
    if not classes or len(set(keys)) != len(keys):
        raise ValueError(f"classes must be a sequence of distinct, non-empty class names, got {classes!r}")
    return classes


def apply_class_list(ds: Dataset, classes, source, name: str | None = None) -> Dataset:
    """Relabel a split read with folder-name classes onto a fixed class list, refusing gaps.

    ``ds.class_names`` are the class folders found; each must be a class of ``classes`` (by name,
    see the module doc, or by index "0".."K-1"), and every class must have images in this split.
    Returns a :class:`Dataset` with ``class_names=classes`` and labels indexing it.

    Raises:
      ValueError: a class folder that is not in ``classes`` (named), or classes without a folder /
        without images in the split (named, with the full expected list).
    """
    classes = _check_class_list(classes)
    name = name or ds.name
    by_name = {_folder_key(c): i for i, c in enumerate(classes)}
    by_index = {str(i): i for i in range(len(classes))}
    found = list(ds.class_names)
    candidates = [(by_name, False), (by_index, True)]
    mapping, numeric = next(((m, num) for m, num in candidates
                             if all((_folder_key(c) if not num else c.strip()) in m for c in found)), (None, None))
    if mapping is None:
        unknown = [c for c in found if _folder_key(c) not in by_name and c.strip() not in by_index]
        if not unknown:   # a mix of names and indices
            unknown = [c for c in found if _folder_key(c) not in by_name]
        raise ValueError(f"{source}: unknown class folder(s) {', '.join(map(repr, unknown))} for {name}; "
                         f"expected one folder per class, named {', '.join(map(repr, classes))} "
                         f"(or by index 0..{len(classes) - 1})")
    lut = np.array([mapping[c.strip() if numeric else _folder_key(c)] for c in found], dtype=np.int32)
    labels = lut[ds.labels] if len(ds.labels) else np.zeros((0,), np.int32)
    present = set(np.unique(labels).tolist())
    missing = [i for i in range(len(classes)) if i not in present]
    if missing:
        shown = [str(i) if numeric else classes[i] for i in missing]
        raise ValueError(f"{source}: split {ds.split!r} of {name} is missing class folder(s) "
                         f"{', '.join(map(repr, shown))} ({len(missing)} of the {len(classes)} classes have no "
                         f"images under {ds.split}/<class>/); a copy of {name} must hold every class: "
                         f"{', '.join(map(repr, classes))}")
    return Dataset(ds.images, labels, classes, ds.name, ds.split)


def load_image_folder(source: str | os.PathLike, split: str, *, name: str = "images", mode: str = "RGB",
                      order: str = "shuffled", cache_dir: str | None = None, use_cache: bool = True,
                      classes: Sequence[str] | None = None) -> Dataset:
    """Load one split of an image-folder tree, decoding once and caching every split as ``.npz``.

    The cache file is ``<cache_dir>/<name>-<fingerprint>-<split>.npz`` where the fingerprint hashes
    the source's real path, size and mtime (for a folder: of every file in it), so a changed source
    is decoded again. ``cache_dir`` defaults to env ``JADV_CACHE_DIR`` or ``~/.cache/jadv``.

    ``classes``: the fixed class list of a known dataset (e.g. :data:`jadv.data.CIFAR10_CLASSES`);
    the split must then hold a folder with images for every class and no other folder (see
    :func:`apply_class_list`), and labels index this list. ``None`` (default): the classes are the
    sorted folder names found.

    Returns:
      :class:`Dataset` with images ``uint8 [N, H, W, 3]`` (``mode="RGB"``) or ``[N, H, W, 1]``.

    Raises:
      ValueError: ``split`` not present in the tree (the message lists the splits found), a class
        folder missing or unknown for ``classes`` (named), or any :func:`decode_image_folder` error.
    """
    if classes is not None:
        classes = _check_class_list(classes)
    ds = _load_image_folder(source, split, name=name, mode=mode, order=order, cache_dir=cache_dir,
                            use_cache=use_cache)
    return ds if classes is None else apply_class_list(ds, classes, os.fspath(source), name)


def _load_image_folder(source, split, *, name, mode, order, cache_dir, use_cache) -> Dataset:
    source = os.fspath(source)
    fp = _cache.source_fingerprint(source)
    tag = f"{name}-{mode}-{order}"
    if use_cache:
        hit = _cache.load_arrays(_cache.cache_path(cache_dir, tag, fp, split))
        if hit is not None:
            return Dataset(hit["images"], hit["labels"], tuple(hit["class_names"].tolist()), name, split)
    splits, class_names = decode_image_folder(source, mode=mode, order=order)
    if use_cache:
        for s, (images, labels) in splits.items():
            try:
                _cache.save_arrays(_cache.cache_path(cache_dir, tag, fp, s), images=images, labels=labels,
                                   class_names=np.array(class_names))
            except OSError:  # a read-only cache is not fatal
                pass
    if split not in splits:
        raise ValueError(f"{source}: split {split!r} not found; splits present: {', '.join(sorted(splits))}")
    images, labels = splits[split]
    return Dataset(images, labels, class_names, name, split)


def is_image_folder(path) -> bool:
    """True if ``path`` is a folder with at least one ``<split>/<class>/`` sub-folder."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    for split in os.scandir(path):
        if split.is_dir():
            for cls in os.scandir(split.path):
                if cls.is_dir():
                    return True
    return False


