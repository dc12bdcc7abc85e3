"""Training: train state, objectives, pure steps, the loop, checkpoints and sharding.

``state, metrics = train_step(state, batch, key)`` where the objective (standard, and the
adversarial methods) is chosen by name in the config, not by a fork of the loop.
"""
from jadv.train.adversarial import craft, warmup_factor
from jadv.train.awp import awp_direction
from jadv.train.checkpoint import Checkpointer
from jadv.train.config import PROFILES, base_config, check_profile
from jadv.train.loop import (NonFiniteLossError, build_model, evaluate, evaluate_robust, initial_variables,
                             load_splits, load_trained, resolve_config, run_keys, train_and_evaluate)
from jadv.train.model_fns import ModelFns, logits_fn_from_variables
from jadv.train.objectives import (OBJECTIVES, Objective, accuracy, as_objective, cross_entropy,
                                   make_objective, mart_loss, register)
from jadv.train.optim import make_optimizer, make_schedule
from jadv.train.sharding import (batch_sharding, check_divisible, make_mesh, replicate,
                                 replicated_sharding, shard_batch, use_cpu_cores)
from jadv.train.state import TrainState
from jadv.train.step import images_to_float, make_eval_step, make_robust_eval_step, make_train_step
from jadv.train.sweeps import over_models, stacking_mode

__all__ = [
    "over_models", "stacking_mode", "craft", "warmup_factor", "awp_direction",
    "Checkpointer", "PROFILES", "base_config", "check_profile",
    "NonFiniteLossError", "build_model", "evaluate", "evaluate_robust", "initial_variables", "load_splits",
    "load_trained", "resolve_config", "run_keys", "train_and_evaluate",
    "ModelFns", "logits_fn_from_variables",
    "OBJECTIVES", "Objective", "accuracy", "as_objective", "cross_entropy", "make_objective", "mart_loss",
    "register",
    "make_optimizer", "make_schedule",
    "batch_sharding", "check_divisible", "make_mesh", "replicate", "replicated_sharding", "shard_batch", "use_cpu_cores",
    "TrainState", "images_to_float", "make_eval_step", "make_robust_eval_step", "make_train_step",
]
