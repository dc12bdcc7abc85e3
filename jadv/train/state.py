"""The train state: one pytree holding everything a step reads and writes."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """Parameters, batch-norm statistics, optimizer state and the step counter.

    ``ema_params`` is ``None`` unless an exponential moving average of the weights is kept.
    ``extra`` holds objective-specific state carried between steps (e.g. Free-AT's persistent
    perturbation); an empty dict for most objectives.
    ``apply_fn`` (the model's ``apply``) and ``tx`` (the optax optimizer) are static fields, not
    pytree leaves, so the state can be checkpointed, sharded and donated as a whole.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema_params: Any
    extra: Any
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, apply_fn, variables, tx, ema: bool = False, extra=None) -> "TrainState":
        """A fresh state at step 0 from ``variables = {"params", "batch_stats"}``."""
        params = variables["params"]
        return cls(step=jnp.zeros((), jnp.int32), params=params,
                   batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                   ema_params=jax.tree_util.tree_map(jnp.copy, params) if ema else None,
                   extra={} if extra is None else extra, apply_fn=apply_fn, tx=tx)

    @property
    def variables(self) -> dict:
        """``{"params", "batch_stats"}`` for ``apply_fn``."""
        return {"params": self.params, "batch_stats": self.batch_stats}

    def eval_variables(self, use_ema: bool = True) -> dict:
        """Variables for evaluation: the EMA weights when kept (and ``use_ema``), else the raw ones."""
        params = self.ema_params if (use_ema and self.ema_params is not None) else self.params
        return {"params": params, "batch_stats": self.batch_stats}
