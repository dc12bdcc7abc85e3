"""On-disk cache of decoded arrays (``.npz``), keyed by the source's path, size and mtime."""
from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

CACHE_VERSION = 1


def cache_root(cache_dir=None) -> str:
    """The cache folder: ``cache_dir``, else env ``JADV_CACHE_DIR``, else ``~/.cache/jadv``."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    env = os.environ.get("JADV_CACHE_DIR")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".cache", "jadv")


def source_fingerprint(path) -> str:
    """A hex digest of a source's resolved path, size and mtime (for a folder: of every file in it)."""
    path = os.path.realpath(os.fspath(path))
    h = hashlib.sha256(f"v{CACHE_VERSION}|{path}".encode())
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                st = os.stat(full)
                h.update(f"|{os.path.relpath(full, path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = os.stat(path)
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def cache_path(cache_dir, tag: str, fingerprint: str, split: str) -> str:
    return os.path.join(cache_root(cache_dir), f"{tag}-{fingerprint}-{split}.npz")


def save_arrays(path, **arrays) -> None:
    """Write an ``.npz`` atomically (temporary file, then rename), creating folders as needed."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_arrays(path):
    """Read an ``.npz`` written by :func:`save_arrays` (no pickles); ``None`` if absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None
