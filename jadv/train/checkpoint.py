"""Checkpoints with orbax behind a small wrapper: ``save(step, state)``, ``restore(abstract_state)``.

A workdir holds ``checkpoints/`` (the last ``keep`` states) and ``checkpoints_best/`` (the state
with the best value of a held-out metric). Orbax writes each checkpoint to a temporary
directory and renames it when complete, so a run killed mid-save keeps its previous checkpoint;
a new best checkpoint is complete before the old best one is removed. A checkpoint whose files
were damaged later (truncated, garbled) is skipped by
:meth:`Checkpointer.restore_latest_complete`, which falls back to the newest one that restores.
A ``checkpoint_meta.json`` beside the checkpoints records the model's parameter structure;
restoring into a state of a different model raises a ``ValueError`` that names the mismatch.

With several processes (``jax.distributed``) every process calls ``save`` and ``restore`` (orbax
coordinates them and writes each replicated array once); only the primary process writes
``checkpoint_meta.json`` and moves damaged checkpoints aside.
"""
from __future__ import annotations

import json
import os

import jax
import orbax.checkpoint as ocp

from jadv._io import atomic_write_json
from jadv.train import sharding


def _structure(tree) -> dict[str, list[int]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): list(leaf.shape) for path, leaf in flat}


def _savable(state) -> dict:
    """The arrays of a TrainState (static fields dropped; ``None`` EMA kept as absent)."""
    tree = {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
            "opt_state": state.opt_state, "extra": state.extra}
    if state.ema_params is not None:
        tree["ema_params"] = state.ema_params
    return tree


class Checkpointer:
    """Keeps the last ``keep`` checkpoints and, if ``best_metric`` is set, the best one.

    Args:
      directory: the run's workdir (checkpoints go to sub-directories of it).
      keep: how many recent checkpoints to keep.
      best_metric: metric name used to pick the best checkpoint (e.g. "val_robust_accuracy").
      best_mode: "max" or "min".
    """

    def __init__(self, directory: str, *, keep: int = 2, best_metric: str | None = None,
                 best_mode: str = "max"):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.best_metric, self.best_mode = best_metric, best_mode
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                            enable_async_checkpointing=False)
        self._last = ocp.CheckpointManager(os.path.join(self.directory, "checkpoints"), options=opts)
        self._best = None
        if best_metric:
            best_opts = ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, enable_async_checkpointing=False,
                best_fn=lambda m: m[best_metric], best_mode=best_mode)
            self._best = ocp.CheckpointManager(os.path.join(self.directory, "checkpoints_best"),
                                               options=best_opts)
        self._meta_path = os.path.join(self.directory, "checkpoint_meta.json")

    # -- saving ------------------------------------------------------------------------------
    def save(self, step: int, state, metrics: dict[str, float] | None = None) -> None:
        """Save ``state`` as checkpoint ``step`` (and as the best one if its metric improved).

        The new best checkpoint is complete on disk before the old one is removed (orbax commits
        it, then drops the worse one: ``max_to_keep=1`` by ``best_fn``), so a kill at any moment
        leaves at least one best checkpoint.
        """
        tree = _savable(state)
        self._write_meta(tree)
        self._last.save(int(step), args=ocp.args.StandardSave(tree), force=True)
        if self._best is not None and metrics and self.best_metric in metrics:
            value = float(metrics[self.best_metric])
            if self._improves(value) and int(step) not in self._best.all_steps():
                self._best.save(int(step), args=ocp.args.StandardSave(tree),
                                metrics={self.best_metric: value}, force=True)
                self._write_best_value(int(step), value)

    def _improves(self, value: float) -> bool:
        best = self.best_value()
        if best is None:
            return True
        return value > best if self.best_mode == "max" else value < best

    def _write_best_value(self, step: int, value: float) -> None:
        meta = self._read_meta()
        meta["best"] = {"step": step, "metric": self.best_metric, "value": value}
        if sharding.is_primary():
            atomic_write_json(self._meta_path, meta)

    def best_value(self) -> float | None:
        """The metric of the best checkpoint: as orbax stored it with that checkpoint (right even
        after a kill between saving it and updating checkpoint_meta.json), else the meta's."""
        step = self.best_step()
        if step is not None:
            try:
                stored = self._best.metrics(step)
            except Exception:  # noqa: BLE001 - unreadable metrics: fall back to the meta file
                stored = None
            if stored and self.best_metric in stored:
                return float(stored[self.best_metric])
        best = self._read_meta().get("best")
        return None if best is None else float(best["value"])

    def _read_meta(self) -> dict:
        if not os.path.exists(self._meta_path):
            return {}
        with open(self._meta_path) as f:
            return json.load(f)

    def _write_meta(self, tree) -> None:
        meta = self._read_meta()
        structure = _structure({"params": tree["params"], "batch_stats": tree["batch_stats"]})
        if "structure" not in meta and sharding.is_primary():
            meta["structure"] = structure
            atomic_write_json(self._meta_path, meta)

    # -- restoring ---------------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self._last.latest_step()

    def best_step(self) -> int | None:
        return None if self._best is None else self._best.best_step()

    def restore(self, state, *, which: str = "latest", step: int | None = None):
        """Restore into a state shaped like ``state`` (a concrete or abstract TrainState).

        ``which`` is "latest" or "best". Returns ``None`` if there is no checkpoint. Raises
        ``ValueError`` naming the differences if the checkpoint holds a different model.
        """
        manager = {"latest": self._last, "best": self._best}.get(which)
        if which not in ("latest", "best"):
            raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
        if manager is None:
            raise ValueError("this Checkpointer keeps no best checkpoint (best_metric is None)")
        step = (manager.latest_step() if which == "latest" else manager.best_step()) if step is None else step
        if step is None:
            return None
        target = _savable(state)
        self._check_structure(target)
        return self._restore_step(manager, step, state, target)

    def _restore_step(self, manager, step: int, state, target):
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"checkpoint {step} in {manager.directory} does not match the model/"
                             f"optimizer being restored, or is damaged: {err}") from err
        return state.replace(step=restored["step"], params=restored["params"],
                             batch_stats=restored["batch_stats"], opt_state=restored["opt_state"],
                             extra=restored["extra"],
                             ema_params=restored.get("ema_params", state.ema_params))

    def restore_latest_complete(self, state):
        """Restore the newest checkpoint that can be read; returns ``(state or None, skipped)``.

        ``skipped`` lists ``(step, reason)`` for newer checkpoints that could not be restored
        (truncated or garbled files, e.g. a disk that filled up or a copy cut short). Those are
        moved to ``checkpoints_damaged/`` (kept for inspection, out of the way of the resumed run's
        saves). If no checkpoint can be restored, nothing is moved and a ``ValueError`` names every
        step and its reason (a checkpoint of another model or optimizer ends up here too).
        """
        target = _savable(state)
        self._check_structure(target)
        skipped = []
        for step in sorted(self._last.all_steps(), reverse=True):
            try:
                restored = self._restore_step(self._last, step, state, target)
            except Exception as err:  # noqa: BLE001 - damaged files raise many kinds of errors
                skipped.append((int(step), _reason(err.__cause__ or err)))
                continue
            if sharding.is_primary():
                for bad, _ in skipped:
                    self._set_aside(bad)
            if skipped:
                sharding.barrier("jadv.checkpoint: damaged checkpoints set aside")
                self._last.reload()
            return restored, skipped
        if skipped:
            raise ValueError(f"no checkpoint in {self._last.directory} can be restored (from a "
                             "different model or optimizer, or damaged): "
                             + "; ".join(f"step {s}: {r}" for s, r in skipped))
        return None, []

    def _set_aside(self, step: int) -> None:
        src = os.path.join(str(self._last.directory), str(step))
        dest_dir = os.path.join(self.directory, "checkpoints_damaged")
        os.makedirs(dest_dir, exist_ok=True)
        dest = os.path.join(dest_dir, str(step))
        n = 1
        while os.path.exists(dest):
            dest, n = os.path.join(dest_dir, f"{step}.{n}"), n + 1
        os.replace(src, dest)

    def _check_structure(self, target) -> None:
        saved = self._read_meta().get("structure")
        if saved is None:
            return
        wanted = _structure({"params": target["params"], "batch_stats": target["batch_stats"]})
        if saved != wanted:
            missing = sorted(set(saved) - set(wanted))[:5]
            extra = sorted(set(wanted) - set(saved))[:5]
            shape = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])[:5]
            raise ValueError(
                f"the checkpoint in {self.directory} is from a different model: "
                f"in checkpoint only {missing}, in model only {extra}, shape differs at {shape}")

    def close(self) -> None:
        self._last.close()
        if self._best is not None:
            self._best.close()


def _reason(err: BaseException) -> str:
    """One line of an exception, for a warning (tensorstore errors run to pages)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"
