"""Atomic file writes: a kill at any moment leaves the old file or the new one, never a part.

Every file a run keeps (metrics, configs, results, claims, reports, checkpoint metadata) is written
through :func:`atomic_write_text`: a temporary file with a unique name in the same folder (so two
processes never share one), flushed and fsynced, then renamed over the target with ``os.replace``.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Any


def atomic_write_text(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (see the module docstring)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj: Any, indent: int = 1) -> None:
    """``obj`` as JSON into ``path``, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent))
