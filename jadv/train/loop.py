"""``train_and_evaluate(config, workdir)``: the training loop shared by every experiment.

What a workdir holds after a run: ``config.json`` (the resolved config), ``metrics.jsonl`` (one
JSON object per log step and per evaluation), ``checkpoints/`` (+ ``checkpoints_best/`` when a
best metric is configured) and ``results.json``; while a run is going, ``train.lock`` (its pid,
host and start time); after an allowed config change, ``config.<step>.json`` (the config before
it); after a resume that had to skip damaged checkpoints, ``checkpoints_damaged/``. A run
started on a workdir that has a checkpoint resumes from it and ends with the same parameters as
an uninterrupted run: the data order of epoch e is drawn from ``fold_in(data_key, e)`` and the
step key from ``fold_in(step_key, step)``, so nothing depends on where the run stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jadv import _workdir_lock
from jadv import data as jdata
from jadv import models as jmodels
from jadv._checks import check_bn_mode
from jadv._io import atomic_write_json, atomic_write_text
from jadv.progress import Progress
from jadv.train import sharding
from jadv.train.checkpoint import Checkpointer
from jadv.train.config import check_config
from jadv.train.objectives import make_objective
from jadv.train.optim import make_optimizer
from jadv.train.state import TrainState
from jadv.train.step import images_to_float, make_eval_step, make_robust_eval_step, make_train_step

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN/Inf."""


# -- data -------------------------------------------------------------------------------------
def load_splits(config: ml_collections.ConfigDict) -> tuple[jdata.Dataset, jdata.Dataset | None, jdata.Dataset]:
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


def resolve_config(config: ml_collections.ConfigDict, train: jdata.Dataset) -> ml_collections.ConfigDict:
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
    _resolve_objective(config)
    return config


def _resolve_objective(config) -> None:
    """Write the objective's resolved defaults (attack BN mode, step size, ...) and the robust
    evaluation settings into ``config`` so that config.json records what ran."""
    objective = make_objective(config.objective)
    for k, v in objective.settings.items():
        if k in config.objective and config.objective[k] is None:
            config.objective[k] = v
    if config.eval_bn_set not in ("clean", "adv"):
        raise ValueError(f"unknown eval_bn_set {config.eval_bn_set!r}; allowed: 'clean', 'adv'")
    re = config.robust_eval
    if re.eps is None:
        re.eps = objective.settings.get("eps")
    if re.norm is None:
        re.norm = objective.settings.get("norm", "linf")
    if re.enabled is None:
        re.enabled = objective.name != "standard" and re.eps is not None
    if re.enabled:
        if re.eps is None:
            raise ValueError("robust_eval.enabled needs robust_eval.eps (or an adversarial objective's eps)")
        if int(re.steps) < 1:
            raise ValueError(f"robust_eval.steps must be >= 1, got {re.steps}")
        if re.step_size is None:
            re.step_size = 2.5 * float(re.eps) / int(re.steps)
    es = config.early_stop
    if es.enabled:
        eps = objective.settings.get("eps")
        if eps is None:
            raise ValueError("early_stop needs an adversarial objective with eps (e.g. fgsm_rs)")
        if es.step_size is None:
            es.step_size = float(eps) / 4.0
        check_bn_mode("early_stop.bn_mode", es.bn_mode, ("eval", "train_no_update"))


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
    """The model a resolved config describes."""
    if config.model.dtype not in DTYPES:
        raise ValueError(f"unknown model dtype {config.model.dtype!r}; allowed: {', '.join(DTYPES)}")
    return jmodels.get(config.model.name, num_classes=config.num_classes, mean=tuple(config.model.mean),
                       std=tuple(config.model.std), dtype=DTYPES[config.model.dtype],
                       **dict(config.model.kwargs))


# -- evaluation -------------------------------------------------------------------------------
def evaluate(state: TrainState, eval_step: Callable, ds: jdata.Dataset, *, batch_size: int,
             mesh: jax.sharding.Mesh) -> dict:
    """Clean accuracy and mean loss of ``state`` on a Dataset (every example counted once)."""
    batch_size = min(batch_size, _round_up(len(ds), mesh.devices.size))
    batch_size = _round_up(batch_size, mesh.devices.size)
    images, labels = jax.device_put(ds.images), jax.device_put(ds.labels)
    totals = {"correct": 0, "count": 0, "loss_sum": 0.0}
    rows = sharding.process_rows(mesh, batch_size)
    for batch in jdata.epoch_batches(images, labels, batch_size=batch_size, key=None,
                                     remainder="pad", shuffle=False, rows=rows):
        out = sharding.to_host(eval_step(state, sharding.shard_batch(batch, mesh, global_size=batch_size)))
        for k in totals:
            totals[k] += out[k].item()
    return {"accuracy": totals["correct"] / totals["count"],
            "loss": totals["loss_sum"] / totals["count"], "count": int(totals["count"])}


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


# -- the loop ---------------------------------------------------------------------------------
class MetricsWriter:
    """Appends JSON lines to ``metrics.jsonl``; on resume, drops lines past the restored step.

    The file is only ever replaced whole (a temporary file in the same folder, fsynced, then
    ``os.replace``), so a kill while it is rewritten leaves the old file. A final line that is not
    complete JSON (the run was killed while appending it) is dropped with a warning; a damaged
    line before the last one is a ``ValueError`` naming it (that is not what a kill leaves).
    ``enabled=False`` (the non-primary processes of a multi-process run) writes nothing.

    ``tensorboard_dir``: also write each record's numbers as TensorBoard scalars there
    (:mod:`jadv.train.tensorboard`, clu's ``SummaryWriter``; ImportError at construction when clu
    or TensorFlow is missing). On resume the event files are appended to, not trimmed: TensorBoard
    shows the latest value written for a step.
    """

    def __init__(self, path: str, resume_step: int, *, enabled: bool = True, tensorboard_dir: str | None = None):
        self.path, self.enabled = path, enabled
        self.tensorboard = None
        if enabled and tensorboard_dir is not None:
            from jadv.train.tensorboard import TensorBoardLog
            self.tensorboard = TensorBoardLog(tensorboard_dir)
        if not enabled or not os.path.exists(path):
            return
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        lines = [(i + 1, line) for i, line in enumerate(text.split("\n")) if line.strip()]
        keep, changed = [], not text.endswith("\n") and bool(text)
        for k, (number, line) in enumerate(lines):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as err:
                if k == len(lines) - 1:
                    warnings.warn(f"{path}: dropping line {number}, the last one, which is not a complete "
                                  f"JSON record ({err}); a run killed while writing it leaves this",
                                  stacklevel=3)
                    changed = True
                    continue
                raise ValueError(f"{path}: line {number} is not a JSON record ({err}); only the last line "
                                 "can be cut short by a kill. Repair or remove that line.") from err
            if record.get("step", 0) <= resume_step:
                keep.append(line + "\n")
            else:
                changed = True
        if changed:
            atomic_write_text(path, "".join(keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def flush(self) -> None:
        """Flush the TensorBoard events (metrics.jsonl lines are written through at once)."""
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def create_state(config, model, image_shape, total_steps, init_key, objective=None):
    """A fresh TrainState; the LR schedule runs over ``total_steps * objective.replays`` optimizer
    updates, and ``state.extra`` is the objective's (Free-AT: a zero batch-shaped delta)."""
    objective = make_objective(config.objective) if objective is None else objective
    tx, schedule = make_optimizer(config.optimizer, total_steps * objective.replays)
    variables = jmodels.init_variables(model, init_key, (1, *image_shape))
    extra = None
    if objective.init_extra is not None:
        extra = objective.init_extra((int(config.batch_size), *image_shape))
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                              ema=config.ema_decay is not None, extra=extra)
    return state, schedule


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, stop_after_steps: int | None = None,
                       allow_config_change: bool = False) -> dict:
    """Train per ``config``, evaluate, checkpoint and log into ``workdir``; returns results.

    ``stop_after_steps`` ends the run early after that many steps of *this call*, with a
    checkpoint written, as a kill would; a later call resumes (used by tests).

    Safety (README, "Reliability"):

    * The config is checked (:func:`jadv.train.config.check_config`: unknown keys, sizes and
      periods < 1) before anything is written; a bad one is a ``ValueError`` naming the field.
    * One run per workdir: the run holds ``workdir/train.lock`` (pid, host, start time) until it
      ends, exceptions included. A second run on the same workdir while the first lives is a
      ``RuntimeError`` naming the workdir and the holder's pid and host; a lock left by a killed
      process on this host is taken over (:mod:`jadv._workdir_lock`).
    * No silent config change: a workdir with a ``config.json`` is only continued with the same
      resolved config; otherwise a ``ValueError`` names every key that differs (old -> new).
      ``allow_config_change=True`` continues anyway: the old config is kept as
      ``config.<step>.json`` and ``metrics.jsonl`` gets a ``{"kind": "config_change", "step": N,
      "config_change": {key: {"old", "new"}}}`` record. Keys that may change freely:
      :data:`CONFIG_KEYS_FREE_TO_CHANGE`.
    * Resume skips a damaged newest checkpoint (with a warning naming its step and why) and
      continues from the newest one that restores; a cut-short last line of metrics.jsonl is
      dropped with a warning. metrics.jsonl, config.json and results.json are replaced atomically.

    Each evaluation record (``kind: "eval"``) holds ``val_accuracy``/``test_accuracy`` and, when
    ``config.robust_eval`` is enabled, ``val_robust_accuracy`` (PGD on the first
    ``robust_eval.val_examples`` held-out validation images, the same images and attack key every
    time) and optionally ``test_subset_robust_accuracy`` (first ``robust_eval.test_examples`` test
    images; for logging only). ``checkpoint.best_metric = "val_robust_accuracy"`` keeps the best
    checkpoint by held-out robust accuracy beside the last ones.

    With ``config.early_stop.enabled`` (FGSM-RS, Wong et al. 2020) every epoch end runs PGD on
    that epoch's first training batch, as its train step saw it (augmented), with the batch's own
    BN statistics (``early_stop.bn_mode`` "train_no_update": the reference's model stays in train
    mode; its check's forward passes also move the running statistics, which jadv leaves alone)
    and logs a ``kind: "early_stop"`` record; if robust accuracy fell by more than ``early_stop.drop`` since the previous epoch the
    run stops, the previous epoch's weights (kept in ``early_stop_ref/``) become the final state,
    and ``early_stop.json`` marks the workdir so that a later call does not train further.
    """
    check_config(config)
    if stop_after_steps is not None and not (isinstance(stop_after_steps, int) and stop_after_steps >= 1):
        raise ValueError(f"stop_after_steps must be None or an integer >= 1, got {stop_after_steps!r}")
    os.makedirs(workdir, exist_ok=True)
    # with jax.distributed every process of the run works on the same workdir: process 0 holds it
    lock = (_workdir_lock.hold(workdir, LOCK_NAME, what="a jadv training run") if jax.process_index() == 0
            else contextlib.nullcontext())
    with lock:
        return _train_and_evaluate(config, workdir, stop_after_steps=stop_after_steps,
                                   allow_config_change=allow_config_change)


LOCK_NAME = "train.lock"

# Keys of config.json that may differ when a workdir is continued, and why:
CONFIG_KEYS_FREE_TO_CHANGE = {
    # where the raw files live, not what they are: a moved data folder (or another machine's
    # mount) is the same data, and a different data set shows up as changed model.mean/std,
    # num_classes or input_shape, which do count
    "data_dir": "location of the data files only",
    # data parallelism over more or fewer devices gives the same parameters up to float
    # reassociation (tests/test_train.py: 1 vs 8 devices); None means "all", which already
    # differs between machines
    "num_devices": "placement only",
    # TensorBoard event files are a second view of metrics.jsonl, not part of the run
    "tensorboard": "logging only",
}


def _flatten(tree, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_ABSENT = "<absent>"


def config_changes(saved: dict, config) -> dict:
    """``{key: {"old": ..., "new": ...}}`` for every key whose value in the resolved ``config``
    differs from the ``saved`` config.json (keys in :data:`CONFIG_KEYS_FREE_TO_CHANGE` aside)."""
    old = _flatten(saved)
    new = _flatten(json.loads(config.to_json_best_effort()))
    changes = {}
    for key in sorted(set(old) | set(new)):
        if key in CONFIG_KEYS_FREE_TO_CHANGE or key.split(".")[0] in CONFIG_KEYS_FREE_TO_CHANGE:
            continue
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if a != b:
            changes[key] = {"old": a, "new": b}
    return changes


def _check_config_change(workdir: str, config, allow: bool) -> dict:
    """The changes against ``workdir/config.json`` (empty if none or no config.json); raises
    ``ValueError`` listing them unless ``allow``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            saved = json.load(f)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        if not allow:
            raise ValueError(f"{path} cannot be read ({err}), so this run cannot check that it continues "
                             "with the same config; pass allow_config_change=True (experiments/train.py "
                             "--allow_config_change) to continue anyway, or use a fresh workdir") from err
        return {"config.json": {"old": f"unreadable ({err})", "new": "the config of this run"}}
    changes = config_changes(saved, config)
    if changes and not allow:
        listed = "; ".join(f"{k}: {v['old']!r} -> {v['new']!r}" for k, v in changes.items())
        raise ValueError(
            f"{workdir} holds a run with a different config; changed keys (old -> new): {listed}. "
            "Use a fresh workdir, or pass allow_config_change=True (experiments/train.py "
            "--allow_config_change) to continue this run with the new config (the change is recorded "
            "in metrics.jsonl and the old config kept as config.<step>.json)")
    return changes


def _archive_config(workdir: str, step: int) -> str:
    """Keep the current config.json as config.<step>.json (config.<step>.<n>.json if taken)."""
    name, n = f"config.{step}.json", 1
    while os.path.exists(os.path.join(workdir, name)):
        name, n = f"config.{step}.{n}.json", n + 1
    with open(os.path.join(workdir, "config.json"), "rb") as f:
        old = f.read().decode("utf-8", errors="replace")
    atomic_write_text(os.path.join(workdir, name), old)
    return name


def _train_and_evaluate(config, workdir: str, *, stop_after_steps: int | None,
                        allow_config_change: bool) -> dict:
    os.makedirs(workdir, exist_ok=True)
    t_start = time.time()
    # with several processes (jax.distributed) every process runs this loop on its share of each
    # batch and only the primary one writes the workdir's files and prints
    primary = sharding.is_primary()
    say = print if primary else _quiet
    train, val, test = load_splits(config)
    config = resolve_config(config, train)
    changes = _check_config_change(workdir, config, allow_config_change)
    model = build_model(config)
    objective = make_objective(config.objective)
    mesh = sharding.make_mesh(config.num_devices)
    sharding.check_divisible(config.batch_size, mesh)
    if config.batch_size > len(train):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(train)} training examples")
    steps_per_epoch = len(train) // config.batch_size
    total_steps = int(config.num_steps) if config.num_steps else int(config.num_epochs) * steps_per_epoch

    root = jax.random.key(config.seed)
    init_key, step_key, data_key = run_keys(config.seed)
    eval_key = jax.random.fold_in(root, 7)
    state, schedule = create_state(config, model, train.images.shape[1:], total_steps, init_key, objective)
    ckpt = Checkpointer(workdir, keep=config.checkpoint.keep, best_metric=config.checkpoint.best_metric,
                        best_mode=config.checkpoint.best_mode)
    restored, skipped = ckpt.restore_latest_complete(state)
    for bad_step, reason in skipped:
        warnings.warn(f"checkpoint of step {bad_step} in {workdir} cannot be restored ({reason}); "
                      f"moved to checkpoints_damaged/, resuming from step "
                      f"{int(restored.step)} instead", stacklevel=2)
    if restored is not None:
        state = restored
        say(f"resumed from step {int(state.step)} in {workdir}", flush=True)
    start_step = int(state.step)
    stop_marker = os.path.join(workdir, "early_stop.json")
    stopped = None
    if os.path.exists(stop_marker):
        with open(stop_marker) as f:
            stopped = json.load(f)
        start_step = int(stopped["step"])
    state = sharding.replicate(state, mesh)
    writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"), start_step, enabled=primary,
                           tensorboard_dir=os.path.join(workdir, "tensorboard") if config.tensorboard else None)
    if changes and primary:
        archived = _archive_config(workdir, start_step)
        writer.write({"step": start_step, "kind": "config_change", "config_change": changes,
                      "previous_config": archived})
        print(f"config changed at step {start_step} ({', '.join(changes)}); old config kept as "
              f"{archived}", flush=True)
    if primary:
        atomic_write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=1))
    # the other processes read metrics.jsonl (early stop) only after the primary has trimmed it
    sharding.barrier("jadv.train: workdir set up")
    writer.write({"step": start_step, "kind": "setup", "objective": objective.name,
                  **{f"objective.{k}": v for k, v in objective.settings.items()},
                  "eval_bn_set": config.eval_bn_set, "robust_eval": config.robust_eval.to_dict(),
                  "early_stop": config.early_stop.to_dict()})

    augment = None
    if config.augment.crop_flip:
        padding = int(config.augment.padding)
        augment = lambda k, x: jdata.random_crop_flip(k, x, padding=padding, flip=True)  # noqa: E731
    train_step = jax.jit(make_train_step(objective, augment=augment, ema_decay=config.ema_decay,
                                         steps_per_epoch=steps_per_epoch), donate_argnums=0)
    eval_step = jax.jit(make_eval_step(bn_set=config.eval_bn_set))
    re = config.robust_eval
    robust_sets = []
    if re.enabled:
        robust_step = jax.jit(make_robust_eval_step(eps=float(re.eps), step_size=float(re.step_size),
                                                    steps=int(re.steps), norm=re.norm,
                                                    bn_set=config.eval_bn_set))
        if val is not None and int(re.val_examples) > 0:
            robust_sets.append(("val_robust", _take(val, np.arange(min(int(re.val_examples), len(val))), "val")))
        if int(re.test_examples) > 0:
            robust_sets.append(("test_subset_robust",
                                _take(test, np.arange(min(int(re.test_examples), len(test))), test.split)))
    train_images, train_labels = jax.device_put(train.images), jax.device_put(train.labels)
    train_rows = sharding.process_rows(mesh, int(config.batch_size))

    def run_eval(step: int, epoch: float, **fields) -> dict:
        record = {"step": step, "epoch": epoch, "kind": "eval", **fields}
        for name, ds in (("val", val), ("test", test)):
            if ds is not None:
                res = evaluate(state, eval_step, ds, batch_size=config.eval_batch_size, mesh=mesh)
                record[f"{name}_accuracy"], record[f"{name}_loss"] = res["accuracy"], res["loss"]
        for name, ds in robust_sets:
            res = evaluate_robust(state, robust_step, ds, batch_size=int(re.batch_size), mesh=mesh, key=eval_key)
            record[f"{name}_accuracy"] = res["robust_accuracy"]
            record[f"{name}_count"] = res["count"]
        writer.write(record)
        say(f"eval step {step} epoch {epoch:.2f}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in record.items() if k.endswith(("accuracy", "loss"))), flush=True)
        return record

    es = config.early_stop
    es_ckpt, es_prev = None, None
    if es.enabled and stopped is None:
        es_ckpt = Checkpointer(os.path.join(workdir, "early_stop_ref"), keep=1)
        es_step = jax.jit(make_robust_eval_step(eps=float(config.objective.eps), step_size=float(es.step_size),
                                                steps=int(es.steps), norm=config.objective.norm,
                                                use_ema=False, bn_set=config.eval_bn_set,
                                                bn_mode=es.bn_mode))
        es_prev = _last_early_stop_value(os.path.join(workdir, "metrics.jsonl"))

        def es_batch_of(epoch):
            """The epoch's first training batch as its train step saw it (augmented)."""
            first = next(iter(jdata.epoch_batches(train_images, train_labels, batch_size=config.batch_size,
                                                  key=jax.random.fold_in(data_key, epoch), remainder="drop")))
            first = sharding.shard_batch(first, mesh)
            return dict(first, image=augmented_first(first["image"], epoch * steps_per_epoch))

        @jax.jit
        def augmented_first(images, first_step):
            x = images_to_float(images)
            if augment is None:
                return x
            aug_key, _ = jax.random.split(jax.random.fold_in(step_key, first_step))
            return augment(aug_key, x)

    step, pending = start_step, []
    # "step 50/4212 epoch 0.19 loss ... acc ... | 3.1 steps/s | ETA 0:22:03" (jadv.progress), primary only
    progress = Progress(total_steps, desc="step", unit="step", start=start_step, enabled=primary)
    last_eval = None
    steps_this_call = 0
    eval_every = max(int(config.eval_every_epochs * steps_per_epoch), 1)
    replays = objective.replays
    while step < total_steps and stopped is None:
        epoch = step // steps_per_epoch
        skip = step - epoch * steps_per_epoch
        batches = jdata.epoch_batches(train_images, train_labels, batch_size=config.batch_size,
                                      key=jax.random.fold_in(data_key, epoch), remainder="drop",
                                      rows=train_rows)
        for i, batch in enumerate(batches):
            if i < skip:
                continue
            if step >= total_steps:
                break
            batch = sharding.shard_batch(batch, mesh, global_size=int(config.batch_size))
            state, metrics = train_step(state, batch, step_key)
            step += 1
            steps_this_call += 1
            pending.append((step, metrics))
            last_of_epoch = step % steps_per_epoch == 0
            if step % config.log_every_steps == 0 or last_of_epoch or step == total_steps:
                rate = progress.set(step, emit=False).rate      # steps/s since the previous log line
                record = _summarise(pending, step, steps_per_epoch, float(schedule(step * replays - 1)), rate)
                pending = []
                writer.write(record)
                progress.emit(epoch=f"{record['epoch']:.2f}", loss=record["loss"],
                              acc=float(record.get("accuracy", record.get("adv_accuracy", float("nan")))))
            if es_ckpt is not None and last_of_epoch:
                out = jax.device_get(es_step(state, es_batch_of(step // steps_per_epoch - 1), eval_key))
                rob = float(out["robust"]) / float(out["count"])
                drop = es_prev is not None and rob - es_prev < -float(es.drop)
                writer.write({"step": step, "epoch": step / steps_per_epoch, "kind": "early_stop",
                              "robust_accuracy": rob, "previous_robust_accuracy": es_prev,
                              "stopped": bool(drop)})
                if drop:
                    _check_pending_finite(pending)
                    prev = es_ckpt.restore(jax.device_get(state))
                    state = sharding.replicate(prev, mesh)
                    stopped = {"step": step, "restored_step": int(prev.step), "robust_accuracy": rob,
                               "previous_robust_accuracy": es_prev}
                    say(f"early stop at step {step}: PGD accuracy on the first batch fell from "
                          f"{es_prev:.3f} to {rob:.3f}; keeping the weights of step {int(prev.step)}", flush=True)
                    last_eval = run_eval(step, step / steps_per_epoch, early_stopped=True,
                                         restored_step=int(prev.step))
                    ckpt.save(step, state, _best_metrics(last_eval))
                    if primary:
                        atomic_write_json(stop_marker, stopped)
                    break
                es_prev = rob
                es_ckpt.save(step, state)
            eval_record = None
            if step % eval_every == 0 or step == total_steps:
                eval_record = last_eval = run_eval(step, step / steps_per_epoch)
            if step % config.checkpoint.every_steps == 0 or eval_record is not None or step == total_steps \
                    or (stop_after_steps and steps_this_call >= stop_after_steps):
                _check_pending_finite(pending)
                ckpt.save(step, state, _best_metrics(eval_record))
            if stop_after_steps and steps_this_call >= stop_after_steps:
                ckpt.close()
                if es_ckpt is not None:
                    es_ckpt.close()
                writer.close()
                return {"stopped_at_step": step}
    if es_ckpt is not None:
        es_ckpt.close()
    if last_eval is None:  # resumed a run that had already finished
        last_eval = run_eval(step, step / steps_per_epoch)
    results = {"step": step, "wall_time_s": time.time() - t_start, "model": config.model.name,
               "num_params": jmodels.count_params(state.params), "dataset": config.dataset,
               "objective": config.objective.name, "devices": int(mesh.devices.size),
               **{k: v for k, v in last_eval.items() if k.endswith("accuracy")}}
    if stopped is not None:
        results["early_stop"] = stopped
    if config.checkpoint.best_metric and ckpt.best_step() is not None:
        results["best_step"] = int(ckpt.best_step())
        results[f"best_{config.checkpoint.best_metric}"] = ckpt.best_value()
    if primary:
        atomic_write_json(os.path.join(workdir, "results.json"), results)
    ckpt.close()
    writer.close()
    return results


def _quiet(*args, **kwargs) -> None:
    """``print`` of the non-primary processes: nothing."""


def evaluate_robust(state: TrainState, robust_step: Callable, ds: jdata.Dataset, *, batch_size: int,
                    mesh: jax.sharding.Mesh, key: jax.Array) -> dict:
    """Clean and PGD robust accuracy of ``state`` on a Dataset (``make_robust_eval_step``);
    batch ``i`` is attacked with ``fold_in(key, i)`` so the numbers depend only on the weights."""
    batch_size = min(batch_size, _round_up(len(ds), mesh.devices.size))
    batch_size = _round_up(batch_size, mesh.devices.size)
    images, labels = jax.device_put(ds.images), jax.device_put(ds.labels)
    totals = {"correct": 0, "robust": 0, "count": 0}
    rows = sharding.process_rows(mesh, batch_size)
    for i, batch in enumerate(jdata.epoch_batches(images, labels, batch_size=batch_size, key=None,
                                                  remainder="pad", shuffle=False, rows=rows)):
        batch = sharding.shard_batch(batch, mesh, global_size=batch_size)
        out = sharding.to_host(robust_step(state, batch, jax.random.fold_in(key, i)))
        for k in totals:
            totals[k] += int(out[k])
    return {"accuracy": totals["correct"] / totals["count"],
            "robust_accuracy": totals["robust"] / totals["count"], "count": totals["count"]}


def _last_early_stop_value(path):
    """The robust accuracy of the last ``early_stop`` record in metrics.jsonl (after a resume)."""
    value = None
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if '"early_stop"' in line:
                    rec = json.loads(line)
                    if rec.get("kind") == "early_stop":
                        value = rec["robust_accuracy"]
    return value


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


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init_key, step_key, data_key)`` of a training run with this seed."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def initial_variables(workdir: str) -> dict:
    """The variables a run in ``workdir`` started from (rebuilt from its config's seed, exactly
    as :func:`train_and_evaluate` initialised them), ``{"params", "batch_stats"}``. Used to measure
    how far a trained layer has moved from its initialisation (``jadv.studies.gates``)."""
    config = _saved_config(workdir)
    model = build_model(config)
    return jmodels.init_variables(model, run_keys(int(config.seed))[0], (1, *config.input_shape))


def _saved_config(workdir: str) -> ml_collections.ConfigDict:
    """The resolved config a run wrote to ``workdir/config.json``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {workdir}: not a jadv training workdir")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_trained(workdir: str, *, which: str = "latest") -> tuple[nn.Module, dict, ml_collections.ConfigDict]:
    """(model, variables, config) of a finished or interrupted run in ``workdir``."""
    config = _saved_config(workdir)
    model = build_model(config)
    state, _ = create_state(config, model, tuple(config.input_shape), 1, jax.random.key(0))
    ckpt = Checkpointer(workdir, best_metric=config.checkpoint.best_metric)
    restored = ckpt.restore(state, which=which)
    ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
    return model, restored.eval_variables(), config
