"""``train_and_evaluate(config, workdir)``: the training loop shared by every experiment.

What a workdir holds after a run: ``config.json`` (the resolved config), ``metrics.jsonl`` (one
JSON object per log step and per evaluation), ``checkpoints/`` (+ ``checkpoints_best/`` when a
best metric is configured) and ``results.json``. A run started on a workdir that has a
checkpoint resumes from it and ends with the same parameters as an uninterrupted run: the data
order of epoch e is drawn from ``fold_in(data_key, e)`` and the step key from
``fold_in(step_key, step)``, so nothing depends on where the run stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jadv import data as jdata
from jadv import models as jmodels
from jadv.train import sharding
from jadv.train.checkpoint import Checkpointer
from jadv.train.objectives import make_objective
from jadv.train.optim import make_optimizer
from jadv.train.state import TrainState
from jadv.train.step import make_eval_step, make_train_step

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/Inf."""


# -- data -------------------------------------------------------------------------------------
def load_splits(config):
    """(train, val, test) Datasets per the config (val is a held-out part of train, or None)."""
    train = jdata.load(config.dataset, "train", data_dir=config.data_dir)
    test = jdata.load(config.dataset, "test", data_dir=config.data_dir)
    if config.train_size:
        train = jdata.subset(train, int(config.train_size) + int(config.val_size),
                             key_or_seed=config.seed)
    val = None
    if config.val_size:
        n_val = int(config.val_size)
        if n_val >= len(train):
            raise ValueError(f"val_size {n_val} leaves no training data ({len(train)} examples)")
        order = np.random.default_rng(config.seed + 1).permutation(len(train))
        val = _take(train, order[:n_val], "val")
        train = _take(train, order[n_val:], train.split)
    if config.test_size:
        test = _take(test, np.arange(min(int(config.test_size), len(test))), test.split)
    return train, val, test


def _take(ds, indices, split):
    return dataclasses.replace(ds, images=ds.images[indices], labels=ds.labels[indices], split=split)


def input_stats(config, train) -> tuple[tuple, tuple]:
    """Per-channel mean/std for the model's input normalisation (config values or train data)."""
    if config.model.mean is not None and config.model.std is not None:
        return tuple(config.model.mean), tuple(config.model.std)
    x = train.images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2)) + 1e-8
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def resolve_config(config, train):
    """Fill in what the data decides (input statistics, classes, input shape) and return a copy.

    The resolved config is what ``config.json`` records, so a model can be rebuilt from the
    workdir alone (:func:`load_trained`).
    """
    config = config.copy_and_resolve_references()
    mean, std = input_stats(config, train)
    with config.unlocked():
        config.model.mean, config.model.std = mean, std
        config.num_classes = int(train.num_classes)
        config.input_shape = tuple(int(s) for s in train.images.shape[1:])
    return config


def build_model(config):
    """The model a resolved config describes."""
    if config.model.dtype not in DTYPES:
        raise ValueError(f"unknown model dtype {config.model.dtype!r}; allowed: {', '.join(DTYPES)}")
    return jmodels.get(config.model.name, num_classes=config.num_classes, mean=tuple(config.model.mean),
                       std=tuple(config.model.std), dtype=DTYPES[config.model.dtype],
                       **dict(config.model.kwargs))


# -- evaluation -------------------------------------------------------------------------------
def evaluate(state, eval_step: Callable, ds, *, batch_size: int, mesh) -> dict:
    """Clean accuracy and mean loss of ``state`` on a Dataset (every example counted once)."""
    batch_size = min(batch_size, _round_up(len(ds), mesh.devices.size))
    batch_size = _round_up(batch_size, mesh.devices.size)
    images, labels = jax.device_put(ds.images), jax.device_put(ds.labels)
    totals = {"correct": 0, "count": 0, "loss_sum": 0.0}
    for batch in jdata.epoch_batches(images, labels, batch_size=batch_size, key=None,
                                     remainder="pad", shuffle=False):
        out = jax.device_get(eval_step(state, sharding.shard_batch(batch, mesh)))
        for k in totals:
            totals[k] += out[k].item()
    return {"accuracy": totals["correct"] / totals["count"],
            "loss": totals["loss_sum"] / totals["count"], "count": int(totals["count"])}


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


# -- the loop ---------------------------------------------------------------------------------
class MetricsWriter:
    """Appends JSON lines to ``metrics.jsonl``; on resume, drops lines past the restored step."""

    def __init__(self, path: str, resume_step: int):
        self.path = path
        if os.path.exists(path):
            with open(path) as f:
                keep = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            with open(path, "w") as f:
                f.writelines(keep)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def create_state(config, model, image_shape, total_steps, init_key):
    tx, schedule = make_optimizer(config.optimizer, total_steps)
    variables = jmodels.init_variables(model, init_key, (1, *image_shape))
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                              ema=config.ema_decay is not None)
    return state, schedule


def train_and_evaluate(config, workdir: str, *, stop_after_steps: int | None = None) -> dict:
    """Train per ``config``, evaluate, checkpoint and log into ``workdir``; returns results.

    ``stop_after_steps`` ends the run early after that many steps of *this call*, with a
    checkpoint written, as a kill would; a later call resumes (used by tests).
    """
    os.makedirs(workdir, exist_ok=True)
    t_start = time.time()
    train, val, test = load_splits(config)
    config = resolve_config(config, train)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=1))
    model = build_model(config)
    mesh = sharding.make_mesh(config.num_devices)
    sharding.check_divisible(config.batch_size, mesh)
    if config.batch_size > len(train):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(train)} training examples")
    steps_per_epoch = len(train) // config.batch_size
    total_steps = int(config.num_steps) if config.num_steps else int(config.num_epochs) * steps_per_epoch

    root = jax.random.key(config.seed)
    init_key, step_key, data_key = jax.random.split(root, 3)
    state, schedule = create_state(config, model, train.images.shape[1:], total_steps, init_key)
    ckpt = Checkpointer(workdir, keep=config.checkpoint.keep, best_metric=config.checkpoint.best_metric,
                        best_mode=config.checkpoint.best_mode)
    restored = ckpt.restore(state)
    if restored is not None:
        state = restored
        print(f"resumed from step {int(state.step)} in {workdir}", flush=True)
    start_step = int(state.step)
    state = sharding.replicate(state, mesh)
    writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"), start_step)

    augment = None
    if config.augment.crop_flip:
        padding = int(config.augment.padding)
        augment = lambda k, x: jdata.random_crop_flip(k, x, padding=padding, flip=True)  # noqa: E731
    train_step = jax.jit(make_train_step(make_objective(config.objective), augment=augment,
                                         ema_decay=config.ema_decay), donate_argnums=0)
    eval_step = jax.jit(make_eval_step())
    train_images, train_labels = jax.device_put(train.images), jax.device_put(train.labels)

    def run_eval(step: int, epoch: float) -> dict:
        record = {"step": step, "epoch": epoch, "kind": "eval"}
        for name, ds in (("val", val), ("test", test)):
            if ds is not None:
                res = evaluate(state, eval_step, ds, batch_size=config.eval_batch_size, mesh=mesh)
                record[f"{name}_accuracy"], record[f"{name}_loss"] = res["accuracy"], res["loss"]
        writer.write(record)
        print(f"eval step {step} epoch {epoch:.2f}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in record.items() if k.endswith(("accuracy", "loss"))), flush=True)
        return record

    step, pending, last_log_t, last_log_step = start_step, [], time.time(), start_step
    last_eval = None
    steps_this_call = 0
    eval_every = max(int(config.eval_every_epochs * steps_per_epoch), 1)
    while step < total_steps:
        epoch = step // steps_per_epoch
        skip = step - epoch * steps_per_epoch
        batches = jdata.epoch_batches(train_images, train_labels, batch_size=config.batch_size,
                                      key=jax.random.fold_in(data_key, epoch), remainder="drop")
        for i, batch in enumerate(batches):
            if i < skip:
                continue
            if step >= total_steps:
                break
            state, metrics = train_step(state, sharding.shard_batch(batch, mesh), step_key)
            step += 1
            steps_this_call += 1
            pending.append((step, metrics))
            last_of_epoch = step % steps_per_epoch == 0
            if step % config.log_every_steps == 0 or last_of_epoch or step == total_steps:
                now = time.time()
                rate = (step - last_log_step) / max(now - last_log_t, 1e-9)
                record = _summarise(pending, step, steps_per_epoch, float(schedule(step - 1)), rate)
                pending, last_log_t, last_log_step = [], now, step
                writer.write(record)
                print(f"step {step}/{total_steps} epoch {record['epoch']:.2f} loss {record['loss']:.4f} "
                      f"acc {record.get('accuracy', float('nan')):.4f} | {rate:.1f} steps/s | "
                      f"ETA {_format_eta((total_steps - step) / max(rate, 1e-9))}", flush=True)
            eval_record = None
            if step % eval_every == 0 or step == total_steps:
                eval_record = last_eval = run_eval(step, step / steps_per_epoch)
            if step % config.checkpoint.every_steps == 0 or eval_record is not None or step == total_steps \
                    or (stop_after_steps and steps_this_call >= stop_after_steps):
                _check_pending_finite(pending)
                ckpt.save(step, state, _best_metrics(eval_record))
            if stop_after_steps and steps_this_call >= stop_after_steps:
                ckpt.close()
                return {"stopped_at_step": step}
    if last_eval is None:  # resumed a run that had already finished
        last_eval = run_eval(step, step / steps_per_epoch)
    results = {"step": step, "wall_time_s": time.time() - t_start, "model": config.model.name,
               "num_params": jmodels.count_params(state.params), "dataset": config.dataset,
               "objective": config.objective.name, "devices": int(mesh.devices.size),
               **{k: v for k, v in last_eval.items() if k.endswith("accuracy")}}
    _atomic_write_json(os.path.join(workdir, "results.json"), results)
    ckpt.close()
    return results


def _best_metrics(eval_record):
    if eval_record is None:
        return None
    return {k: v for k, v in eval_record.items() if isinstance(v, float)}


def _check_pending_finite(pending):
    for step, metrics in pending:
        if float(metrics["finite"]) != 1.0:
            raise NonFiniteLossError(f"loss or gradient became NaN/Inf at step {step}")


def _summarise(pending, step, steps_per_epoch, lr, rate) -> dict:
    host = jax.device_get([m for _, m in pending])
    for (s, _), m in zip(pending, host):
        if float(m["finite"]) != 1.0:
            raise NonFiniteLossError(f"loss or gradient became NaN/Inf at step {s} "
                                     f"(loss={float(m['loss'])}); stopping. The last checkpoint is intact.")
    record = {"step": step, "epoch": step / steps_per_epoch, "kind": "train", "lr": lr,
              "steps_per_sec": rate}
    for k in host[0]:
        if k != "finite":
            record[k] = float(np.mean([float(m[k]) for m in host]))
    return record


def _atomic_write_json(path, obj):
    with open(f"{path}.tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(f"{path}.tmp", path)


def load_trained(workdir: str, *, which: str = "latest"):
    """(model, variables, config) of a finished or interrupted run in ``workdir``."""
    import ml_collections

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {workdir}: not a jadv training workdir")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    model = build_model(config)
    state, _ = create_state(config, model, tuple(config.input_shape), 1, jax.random.key(0))
    ckpt = Checkpointer(workdir, best_metric=config.checkpoint.best_metric)
    restored = ckpt.restore(state, which=which)
    ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
    return model, restored.eval_variables(), config
