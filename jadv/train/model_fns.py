"""A thin functional view of a jadv model, used by objectives, attacks and analyses.

The attacks only need a ``logits_fn(x) -> logits``; objectives need to choose the batch-norm
behaviour of each forward pass explicitly. ``ModelFns`` names those choices:

- ``train=False``: running statistics, nothing updated (test-time attacks always use this);
- ``train=True, update_stats=True``: batch statistics, running statistics updated;
- ``train=True, update_stats=False``: batch statistics, updates discarded.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import jax

from jadv._checks import BN_MODES, check_bn_mode

# the batch-norm modes of attacks and objectives: the library's one vocabulary (jadv._checks)
ATTACK_BN_MODES = BN_MODES


@functools.lru_cache(maxsize=256)
def _call_keywords(module_call: Callable) -> frozenset[str] | None:
    """The keyword arguments a Flax module's ``__call__`` takes, or None when it takes ``**kwargs``
    (or its signature cannot be read): then every keyword is passed."""
    try:
        params = inspect.signature(module_call).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _model_keywords(apply_fn: Callable) -> frozenset[str] | None:
    module = getattr(apply_fn, "__self__", None)       # Flax: apply_fn is model.apply
    call = getattr(type(module), "__call__", None) if module is not None else None
    return None if call is None else _call_keywords(call)


@dataclasses.dataclass(frozen=True)
class ModelFns:
    """Wraps ``apply_fn(variables, x, train=..., bn_set=..., mutable=...)``.

    jadv's models take ``train`` and ``bn_set``; a user's Flax module that takes neither (a plain
    ``__call__(self, x)``) or only ``train`` works too: the keywords its ``__call__`` does not
    take are not passed. Such a model has one set of batch-norm statistics, so asking it for
    ``bn_set="adv"`` (mixture BN, AdvProp) is a ValueError.
    """

    apply_fn: Callable

    def _apply(self, variables, x, *, train: bool, bn_set: str = "clean", **kwargs):
        accepted = _model_keywords(self.apply_fn)
        if accepted is not None:
            if "bn_set" not in accepted:
                if bn_set != "clean":
                    raise ValueError(f"bn_set={bn_set!r} needs a model with several batch-norm sets (a "
                                     f"`bn_set` argument, e.g. norm='dual_batch'); "
                                     f"{type(self.apply_fn.__self__).__name__}.__call__ takes none")
            else:
                kwargs["bn_set"] = bn_set
            if "train" in accepted:
                kwargs["train"] = train
            return self.apply_fn(variables, x, **kwargs)
        return self.apply_fn(variables, x, train=train, bn_set=bn_set, **kwargs)

    def logits(self, params: Any, batch_stats: Any, x: jax.Array, *, train: bool, bn_set: str = "clean",
               update_stats: bool = True) -> tuple[jax.Array, Any]:
        """Forward pass. x [B,H,W,C] -> (logits [B,K], new batch_stats)."""
        variables = {"params": params, "batch_stats": batch_stats}
        if not train or not batch_stats:
            return self._apply(variables, x, train=train, bn_set=bn_set), batch_stats
        logits, updates = self._apply(variables, x, train=True, bn_set=bn_set, mutable=["batch_stats"])
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
    fns = ModelFns(apply_fn)
    return lambda x: fns._apply(variables, x, train=False, bn_set=bn_set)
