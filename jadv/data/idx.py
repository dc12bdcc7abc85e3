"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzipped).

An IDX file is a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32 sizes,
then the data. MNIST images have magic number 2051 (ubyte, 3 dims), labels 2049 (ubyte, 1 dim).
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def _read_maybe_gzip(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str | os.PathLike, *, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes and return its array.

    Args:
      path: file path; gzip-compressed files are detected by content, not by name.
      magic: the expected magic number (2051 for images, 2049 for labels).

    Returns:
      ``np.uint8`` array with the shape given by the header (``[N, H, W]`` or ``[N]``).

    Raises:
      ValueError: wrong magic number, a header shorter than its dimensions, or a file length that
        does not match the header (truncated or with trailing bytes). The message names the file.
    """
    path = os.fspath(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: bad IDX magic number {found} (0x{found:08x}); expected {magic} "
                         f"(0x{magic:08x}). Is this the right file (images 2051, labels 2049)?")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, need {header_len})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise ValueError(f"{path}: truncated IDX file: header says shape {dims} "
                         f"({expected} bytes) but the file has {len(data)} bytes")
    if len(data) > expected:
        raise ValueError(f"{path}: IDX file has {len(data) - expected} bytes after the data "
                         f"announced by its header (shape {dims})")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file and its label file.

    Returns:
      ``(images, labels)``: ``np.uint8 [N, H, W, 1]`` and ``np.int32 [N]``.

    Raises:
      ValueError: any :func:`read_idx` error, or image and label counts that differ.
    """
    images = read_idx(images_path, magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected 3 dims [N, H, W], got shape {images.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                         f"{labels.shape[0]} labels")
    return images[..., None].copy(), labels.astype(np.int32)


_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def find_idx_files(directory, split):
    """Locate the images/labels pair for ``split`` in ``directory``.

    Accepts the canonical names ``train-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (and the
    ``train-images.idx3-ubyte`` spelling), each raw or with ``.gz``.

    Returns:
      ``(images_path, labels_path)`` or ``None`` when no complete pair is present.
    """
    for prefix in _PREFIXES[split]:
        pair = []
        for kind, nd in (("images", 3), ("labels", 1)):
            found = None
            for sep in ("-", "."):
                for ext in (".gz", ""):
                    cand = os.path.join(directory, f"{prefix}-{kind}{sep}idx{nd}-ubyte{ext}")
                    if os.path.isfile(cand):
                        found = cand
                        break
                if found:
                    break
            pair.append(found)
        if all(pair):
            return tuple(pair)
    return None
