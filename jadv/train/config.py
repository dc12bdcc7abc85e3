"""The base training config shared by every config file in ``configs/``.

Config files call :func:`base_config` and override fields; the variants ``smoke`` (seconds, for
tests), ``cpu`` (minutes on a 2-core CPU) and ``full`` (the published recipe, for a GPU/TPU)
are chosen by the ``:variant`` suffix of ``--config configs/X.py:variant``.
"""
from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

VARIANTS = ("smoke", "cpu", "full")


def check_variant(variant: str) -> str:
    """The config variant name ("cpu" when empty); ValueError for anything but smoke/cpu/full."""
    variant = variant or "cpu"
    if variant not in VARIANTS:
        raise ValueError(f"unknown config variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    return variant


def base_config() -> ml_collections.ConfigDict:
    """Every field the loop reads, with defaults; config files override what they need."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # data
    c.dataset = "mnist"
    c.data_dir = placeholder(str)              # falls back to $JADV_DATA_DIR, then ../shared/data
    c.train_size = placeholder(int)            # class-balanced subset of the training split (None: all)
    c.val_size = 0                  # held out from train for checkpoint selection (never test)
    c.test_size = placeholder(int)             # evaluate on the first N test images (None: all)
    c.augment = ml_collections.ConfigDict({"crop_flip": False, "padding": 4})
    # model
    c.model = ml_collections.ConfigDict({"name": "small_cnn", "kwargs": {}, "mean": None,
                                         "std": None, "dtype": "float32"})
    # objective (see jadv.train.objectives)
    c.objective = ml_collections.ConfigDict({"name": "standard", "label_smoothing": 0.0})
    # optimisation
    c.batch_size = 128
    c.num_epochs = 1
    c.num_steps = placeholder(int)             # overrides num_epochs when set
    c.optimizer = ml_collections.ConfigDict({
        "name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
        "weight_decay_kernels_only": False, "schedule": "onecycle", "decay_at": (0.5, 0.75),
        "decay_factor": 0.1, "warmup_fraction": 0.0, "peak_fraction": 0.4, "grad_clip": placeholder(float)})
    c.ema_decay = placeholder(float)
    # devices
    c.num_devices = placeholder(int)           # data parallel over this many devices (None: all)
    # logging, evaluation, checkpoints
    c.log_every_steps = 50
    c.eval_every_epochs = 1
    c.eval_batch_size = 500
    c.checkpoint = ml_collections.ConfigDict({"every_steps": 500, "keep": 2,
                                              "best_metric": placeholder(str), "best_mode": "max"})
    return c
