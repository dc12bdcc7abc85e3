"""TensorBoard event files of a training run, through clu's metric writers (optional).

With ``config.tensorboard = True`` the training loop writes every numeric field of each
``metrics.jsonl`` record also as a TensorBoard scalar, under ``<workdir>/tensorboard/``, tagged
``<kind>/<field>`` (``train/loss``, ``train/steps_per_sec``, ``eval/test_accuracy``,
``early_stop/robust_accuracy``, ...) at the record's ``step``. ``metrics.jsonl`` stays the record
of the run; the event files are a view of it (``tensorboard --logdir <workdir>/tensorboard``).

The writer is ``clu.metric_writers.SummaryWriter`` (google/CommonLoopUtils), which writes with
``tf.summary``: it needs the ``clu`` and ``tensorflow`` packages (``pip install 'jadv[tensorboard]'``,
tensorflow-cpu where a CPU build exists). Neither is a dependency of jadv itself; a run with
``tensorboard=True`` without them stops at setup with an ImportError saying what to install.
Only the primary process writes (as for every file of a workdir).
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Mapping

SUBDIR = "tensorboard"
# record kinds that hold no per-step scalars (settings and provenance)
SKIP_KINDS = ("setup", "config_change")


def create_writer(logdir: str):
    """A ``clu.metric_writers.SummaryWriter`` writing event files into ``logdir``.

    Raises:
      ImportError: clu or TensorFlow is not installed (the message names the extra to install).
    """
    try:
        from clu import metric_writers
    except ImportError as err:
        raise ImportError(
            "config.tensorboard=True writes TensorBoard event files with clu's metric writers, which need the "
            f"clu and tensorflow packages ({err}); install them with pip install 'jadv[tensorboard]' "
            "(or pip install clu tensorflow-cpu), or set tensorboard=False (metrics.jsonl is written either way)"
        ) from err
    os.makedirs(logdir, exist_ok=True)
    return metric_writers.SummaryWriter(logdir)


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one metrics.jsonl record: ``{"<kind>/<field>": value}`` for
    every finite int/float field except ``step`` (booleans, strings, lists, dicts and None are
    left out); empty for ``setup``/``config_change`` records. A record without ``kind`` counts as
    ``train``."""
    kind = str(record.get("kind", "train"))
    if kind in SKIP_KINDS:
        return {}
    out = {}
    for key, value in record.items():
        if key in ("step", "kind") or isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        value = float(value)
        if math.isfinite(value):
            out[f"{kind}/{key}"] = value
    return out


class TensorBoardLog:
    """Writes metrics.jsonl records as TensorBoard scalars (see the module docstring)."""

    def __init__(self, logdir: str):
        self.logdir = logdir
        self._writer = create_writer(logdir)

    def write(self, record: Mapping[str, Any]) -> None:
        """Write the record's scalars and flush (records come every ``log_every_steps``, so a run
        that dies leaves every event it logged on disk)."""
        values = scalars(record)
        if values and "step" in record:
            self._writer.write_scalars(int(record["step"]), values)
            self._writer.flush()

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
