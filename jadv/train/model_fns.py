"""A thin functional view of a jadv model, used by objectives, attacks and analyses.

The attacks only need a ``logits_fn(x) -> logits``; objectives need to choose the batch-norm
behaviour of each forward pass explicitly. ``ModelFns`` names those choices:

- ``train=False``: running statistics, nothing updated (test-time attacks always use this);
- ``train=True, update_stats=True``: batch statistics, running statistics updated;
- ``train=True, update_stats=False``: batch statistics, updates discarded.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from jadv._checks import BN_MODES, check_bn_mode

# the batch-norm modes of attacks and objectives: the library's one vocabulary (jadv._checks)
ATTACK_BN_MODES = BN_MODES


@dataclasses.dataclass(frozen=True)
class ModelFns:
    """Wraps ``apply_fn(variables, x, train=..., bn_set=..., mutable=...)``."""

    apply_fn: Callable

    def logits(self, params: Any, batch_stats: Any, x: jax.Array, *, train: bool, bn_set: str = "clean",
               update_stats: bool = True) -> tuple[jax.Array, Any]:
        """Forward pass. x [B,H,W,C] -> (logits [B,K], new batch_stats)."""
        variables = {"params": params, "batch_stats": batch_stats}
        if not train or not batch_stats:
            return self.apply_fn(variables, x, train=train, bn_set=bn_set), batch_stats
        logits, updates = self.apply_fn(variables, x, train=True, bn_set=bn_set,
                                        mutable=["batch_stats"])
        return logits, (updates["batch_stats"] if update_stats else batch_stats)

    def logits_fn(self, params: Any, batch_stats: Any, *, bn_mode: str = "eval",
                  bn_set: str = "clean") -> Callable[[jax.Array], jax.Array]:
        """A ``logits_fn(x) -> logits`` for attacks, with the batch-norm mode named.

        ``bn_mode``: "eval" (running statistics) or "train_no_update" (batch statistics,
        updates discarded). The mode "train" (statistics updated by every attack step, as in
        fast_adversarial) needs the statistics threaded through the attack and is handled by
        the objectives, not here.
        """
        check_bn_mode("logits_fn bn_mode", bn_mode, ("eval", "train_no_update"))
        train = bn_mode == "train_no_update"

        def fn(x):
            return self.logits(params, batch_stats, x, train=train, bn_set=bn_set,
                               update_stats=False)[0]

        return fn


def logits_fn_from_variables(apply_fn: Callable, variables: Any, *,
                             bn_set: str = "clean") -> Callable[[jax.Array], jax.Array]:
    """Inference-mode ``logits_fn`` (running statistics) for fixed variables."""
    return lambda x: apply_fn(variables, x, train=False, bn_set=bn_set)
