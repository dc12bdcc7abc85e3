"""What a study profile costs: its training runs, their measured step rates, and the time they add up to.

Each study exposes ``training_configs(config) -> {name: jadv.train config}``: every model it trains
at that profile, with the config ``train_and_evaluate`` gets (tradeoff's vmapped sweeps are listed
as one config per model, which the sweep trains side by side).

* :func:`total_steps`: the optimizer steps of one run (``num_steps`` or epochs x steps per epoch).
* :func:`abstract_train_step`: the train step of a run built as the loop builds it and traced
  with ``jax.eval_shape`` on an abstract batch (no data, no compilation): does the recipe build?
* :func:`recipe_key`: runs with equal keys have the same step program (timed or traced once).
* :func:`measure_rate`: steps/s of a run on this machine, timed with the real training loop for a
  few steps after compilation (data pipeline, attack and update included).
* :func:`forwards_per_image`: forward-pass equivalents per image of one train step of an
  objective (an attack step = 2: forward + input gradient; the update = 3: forward, input and
  weight gradients), the unit of :func:`train_flops`, which estimates a run's model FLOPs for
  devices this machine cannot time (the paper profile on a GPU): time = FLOPs / (MFU x peak).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Mapping

import ml_collections


def _train_size(cfg) -> int:
    """Training examples a run iterates over, as the loop counts them (``jadv.train.load_splits``):
    ``train_size`` when set (the loop draws ``train_size + val_size`` and holds the val part out),
    else the dataset's train split (:data:`jadv.data.TRAIN_SIZES`, no data files read) less
    ``val_size``."""
    if cfg.get("train_size") is not None:
        return int(cfg.train_size)
    from jadv.data import TRAIN_SIZES
    if cfg.dataset not in TRAIN_SIZES:
        raise ValueError(f"no training-set size known for dataset {cfg.dataset!r}")
    return TRAIN_SIZES[cfg.dataset] - int(cfg.get("val_size") or 0)


def recipe_key(cfg) -> str:
    """A key equal for runs that differ only in what does not change the train step's cost or
    program (seed, lengths, subset sizes, evaluation and checkpoint settings, eps and step size):
    such runs are timed (or traced) once."""
    d = cfg.to_dict()
    for k in ("seed", "num_epochs", "num_steps", "train_size", "test_size", "val_size", "robust_eval",
              "eval_every_epochs", "log_every_steps", "checkpoint", "early_stop"):
        d.pop(k, None)
    obj = dict(d.get("objective", {}))
    for k in ("eps", "eps_warmup_epochs", "step_size"):
        obj.pop(k, None)
    d["objective"] = obj
    return json.dumps(d, sort_keys=True, default=str)


def total_steps(cfg, train_size: int | None = None) -> int:
    """Optimizer steps of a run: ``num_steps`` if set, else epochs x (train examples // batch)."""
    if cfg.get("num_steps"):
        return int(cfg.num_steps)
    n = _train_size(cfg) if train_size is None else int(train_size)
    return int(cfg.num_epochs) * (n // int(cfg.batch_size))


def forwards_per_image(objective: Mapping) -> float:
    """Forward-pass equivalents per training image of one step of ``objective`` (a config dict).

    standard 3; PGD-AT with k steps 2k + 3; FGSM-RS 5; TRADES / MART 2k + 7 (clean target logits,
    the attack, an update through clean and adversarial forwards); ALP and AdvProp 2k + 6 (update
    through both forwards); ratio / MBN with clean share r: 2k(1 - r) + 3; AWP around PGD-AT: one
    more forward/backward for the weight perturbation (2k + 6); Free-AT m replays: 3 per replay.
    """
    name = objective.get("name", "standard")
    k = int(objective.get("steps") or 10)
    if name == "standard":
        return 3.0
    if name == "fgsm_rs":
        return 5.0
    if name == "pgd_at":
        return 2.0 * k + 3.0
    if name in ("trades", "mart"):
        return 2.0 * k + 7.0
    if name in ("alp", "advprop"):
        return 2.0 * k + 6.0
    if name in ("ratio", "mbn"):
        r = float(objective.get("ratio", 0.5))
        return 2.0 * k * (1.0 - r) + 3.0
    if name in ("awp", "trades_awp"):
        return 2.0 * k + 6.0 + (4.0 if name == "trades_awp" else 0.0)
    if name == "free_at":
        return 3.0
    raise ValueError(f"no forward count for objective {name!r}")


def train_flops(cfg, forward_flops_per_image: float, train_size: int | None = None) -> float:
    """Model FLOPs of a whole run: steps x batch x forwards per image x forward FLOPs."""
    return (total_steps(cfg, train_size) * int(cfg.batch_size) * forwards_per_image(cfg.objective)
            * float(forward_flops_per_image))


def model_forward_flops(cfg) -> float:
    """Forward FLOPs per image of a run's model (built as the loop builds it)."""
    import jax

    from jadv import models as jmodels
    from jadv.models.flops import forward_flops
    from jadv.train import build_model

    c = ml_collections.ConfigDict(cfg.to_dict())
    shape = tuple(c.get("input_shape") or _input_shape(c))
    with c.unlocked():
        c.num_classes = c.get("num_classes") or 10
        c.model.mean = c.model.mean or (0.5,) * shape[-1]
        c.model.std = c.model.std or (0.25,) * shape[-1]
    model = build_model(c)
    variables = jmodels.init_variables(model, jax.random.key(0), (1, *shape))
    return forward_flops(model, variables, (2, *shape))


def _input_shape(cfg) -> tuple:
    from jadv.data import IMAGE_SHAPES

    if cfg.dataset not in IMAGE_SHAPES:
        raise ValueError(f"no input shape known for dataset {cfg.dataset!r}")
    return IMAGE_SHAPES[cfg.dataset]


def abstract_train_step(cfg, batch_size: int | None = None) -> dict:
    """Trace a run's train step as the loop builds it, without data and without compiling.

    The config is resolved as ``jadv.train.resolve_config`` does from the data (``num_classes`` 10,
    100 for cifar100; ``input_shape`` from the dataset's known shape; ``model.mean``/``std``
    filled with placeholders when None; the objective's and robust evaluation's defaults), then the
    model (``jadv.train.build_model``), the state (``jadv.train.loop.create_state``), the
    objective (``make_objective``) and the step (``make_train_step`` with the crop-flip
    augmentation when ``augment.crop_flip``, ``ema_decay`` and ``steps_per_epoch``) are made as in
    the loop, and ``jax.eval_shape`` runs state creation and one step on an abstract uint8 batch
    ``{"image", "label", "mask"}`` of ``batch_size`` rows (default: the run's ``batch_size``; the
    cost of tracing does not depend on it).

    It checks that the recipe builds and traces: config values the model, objective, optimizer
    or augmentation reject, shape and dtype mismatches (input shape, dual BN sets, AWP's weight
    perturbation, Free-AT's batch-shaped state, ...). It does not check numbers (nothing is
    computed: NaNs, accuracy, convergence), nor speed or memory, nor that XLA compiles the program,
    nor the data pipeline, evaluation, checkpoints or sharding.

    Returns ``{"metrics": {name: jax.ShapeDtypeStruct}, "num_params": int, "state": the abstract
    TrainState after the step, "steps_per_epoch": int, "input_shape": tuple, "model": name}``.
    """
    import jax
    import jax.numpy as jnp

    from jadv import data as jdata
    from jadv.train import build_model, make_objective, make_train_step
    from jadv.train.loop import _resolve_objective, create_state

    c = cfg.copy_and_resolve_references()
    shape = tuple(c.get("input_shape") or _input_shape(c))
    with c.unlocked():
        c.num_classes = c.get("num_classes") or (100 if c.dataset == "cifar100" else 10)
        c.input_shape = shape
        if c.model.mean is None or c.model.std is None:
            c.model.mean, c.model.std = (0.5,) * shape[-1], (0.25,) * shape[-1]
        _resolve_objective(c)
    b = int(c.batch_size if batch_size is None else batch_size)
    steps_per_epoch = _train_size(c) // int(c.batch_size)
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {c.batch_size} exceeds the {_train_size(c)} training examples")
    total = int(c.num_steps) if c.num_steps else int(c.num_epochs) * steps_per_epoch
    model = build_model(c)
    objective = make_objective(c.objective)
    state_cfg = c.copy_and_resolve_references()
    with state_cfg.unlocked():
        state_cfg.batch_size = b        # Free-AT's persistent perturbation is batch-shaped
    augment = None
    if c.augment.crop_flip:
        padding = int(c.augment.padding)
        augment = lambda k, x: jdata.random_crop_flip(k, x, padding=padding, flip=True)  # noqa: E731
    step = make_train_step(objective, augment=augment, ema_decay=c.ema_decay, steps_per_epoch=steps_per_epoch)

    def init_and_step(init_key, step_key, batch):
        state, _ = create_state(state_cfg, model, shape, total, init_key, objective)
        return step(state, batch, step_key)

    batch = {"image": jax.ShapeDtypeStruct((b, *shape), jnp.uint8),
             "label": jax.ShapeDtypeStruct((b,), jnp.int32),
             "mask": jax.ShapeDtypeStruct((b,), jnp.bool_)}
    key = jax.eval_shape(lambda: jax.random.key(0))
    state, metrics = jax.eval_shape(init_and_step, key, key, batch)
    num_params = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(state.params))
    return {"metrics": dict(metrics), "num_params": int(num_params), "state": state,
            "steps_per_epoch": steps_per_epoch, "input_shape": shape, "model": c.model.name}


def measure_rate(cfg, *, steps: int = 12, log_every: int = 4) -> dict:
    """Time a run's train step on this machine with the real loop.

    Trains ``steps`` steps of ``cfg`` (evaluation and checkpoints off) in a temporary folder and
    returns ``{"steps_per_sec", "compile_and_first_s"}``: the rate is the loop's own measurement
    over the steps after the first logged window (which holds compilation).
    """
    from jadv.train import train_and_evaluate

    c = ml_collections.ConfigDict(cfg.to_dict())
    with c.unlocked():
        c.num_steps = max(int(steps), 2 * log_every + 1)
        c.log_every_steps = log_every
        c.eval_every_epochs = 10 ** 6
        c.robust_eval.enabled = False
        c.checkpoint.every_steps = 10 ** 9
        if "early_stop" in c:
            c.early_stop.enabled = False
        if c.get("test_size") is None or int(c.test_size) > 64:
            c.test_size = 64
    with tempfile.TemporaryDirectory() as w:
        t = time.perf_counter()
        train_and_evaluate(c, w, stop_after_steps=int(c.num_steps))
        wall = time.perf_counter() - t
        with open(os.path.join(w, "metrics.jsonl")) as f:
            rates = [json.loads(line).get("steps_per_sec") for line in f if '"kind": "train"' in line]
    rates = [r for r in rates if r]
    steady = rates[1:] or rates
    rate = float(sum(steady) / len(steady)) if steady else math.nan
    return {"steps_per_sec": rate, "compile_and_first_s": wall - (c.num_steps - log_every) / rate}
