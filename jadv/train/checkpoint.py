"""Checkpoints with orbax behind a small wrapper: ``save(step, state)``, ``restore(abstract_state)``.

A workdir holds ``checkpoints/`` (the last ``keep`` states) and ``checkpoints_best/`` (the state
with the best value of a held-out metric). Orbax writes each checkpoint to a temporary
directory and renames it when complete, so a run killed mid-save keeps its previous checkpoint.
A ``meta.json`` beside the checkpoints records the model's parameter structure; restoring into
a state of a different model raises a ``ValueError`` that names the mismatch.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


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
        """Save ``state`` as checkpoint ``step`` (and as the best one if its metric improved)."""
        tree = _savable(state)
        self._write_meta(tree)
        self._last.save(int(step), args=ocp.args.StandardSave(tree), force=True)
        if self._best is not None and metrics and self.best_metric in metrics:
            value = float(metrics[self.best_metric])
            if self._improves(value):
                # Keep only one best checkpoint: remove the old one before writing the new one.
                for old in self._best.all_steps():
                    self._best.delete(old)
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
        _atomic_write_json(self._meta_path, meta)

    def best_value(self) -> float | None:
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
        if "structure" not in meta:
            meta["structure"] = structure
            _atomic_write_json(self._meta_path, meta)

    # -- restoring ---------------------------------------------------------------------------
    def latest_step(self) -> int | None:
        return self._last.latest_step()

    def best_step(self) -> int | None:
        return None if self._best is None else self._best.latest_step()

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
        step = manager.latest_step() if step is None else step
        if step is None:
            return None
        target = _savable(state)
        self._check_structure(target)
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"checkpoint {step} in {manager.directory} does not match the model/"
                             f"optimizer being restored: {err}") from err
        return state.replace(step=restored["step"], params=restored["params"],
                             batch_stats=restored["batch_stats"], opt_state=restored["opt_state"],
                             extra=restored["extra"],
                             ema_params=restored.get("ema_params", state.ema_params))

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


def _atomic_write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)
