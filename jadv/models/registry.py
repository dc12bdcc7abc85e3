"""Model registry: ``jadv.models.get(name, **kwargs)`` and variable initialisation."""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jadv.models.dm_resnet import DMPreActResNet, DMWideResNet
from jadv.models.resnet import CifarResNet, PreActResNet, ResNet, RobustWideResNet, WideResNet
from jadv.models.simple import MLP, Linear, SmallCNN

_MODELS = {
    "linear": Linear,
    "mlp": MLP,
    "small_cnn": SmallCNN,
    "preact_resnet": PreActResNet,
    "preact_resnet18": functools.partial(PreActResNet, depth=18),
    "preact_resnet34": functools.partial(PreActResNet, depth=34),
    "resnet": ResNet,
    "resnet18": functools.partial(ResNet, depth=18),
    "resnet34": functools.partial(ResNet, depth=34),
    "resnet50": functools.partial(ResNet, depth=50),
    "cifar_resnet": CifarResNet,
    **{f"resnet{d}": functools.partial(CifarResNet, depth=d) for d in (20, 32, 44, 56, 110)},
    "wide_resnet": WideResNet,
    "wrn28_10": functools.partial(WideResNet, depth=28, width=10),
    "wrn34_10": functools.partial(WideResNet, depth=34, width=10),
    "dm_wide_resnet": DMWideResNet,          # Gowal et al. 2020 / Rebuffi et al. 2021 (RobustBench DM models)
    "dm_preact_resnet": DMPreActResNet,
    "robust_wide_resnet": RobustWideResNet,  # Huang et al. 2021 / 2022 (RobustBench RobustWideResNet, WRN-A4)
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`."""
    return tuple(sorted(_MODELS))


def get(name: str, **kwargs) -> nn.Module:
    """Build a model by name, e.g. ``get("small_cnn", num_classes=10, conv1_filters=64)``.

    Common keyword arguments: ``num_classes``, ``norm`` ("batch", "dual_batch", "group", "none"),
    ``mean``/``std`` (per-channel input normalisation applied inside the model), ``dtype``
    (computation dtype, e.g. ``jnp.bfloat16``; parameters stay float32).

    Raises ValueError for an unknown name, ``num_classes < 1``, a ``std`` that is not > 0 and finite,
    or ``mean``/``std`` of incompatible lengths (a mean/std that does not fit the input's channel
    count is refused when the model is first applied); TypeError for bad argument types.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    for stat in ("mean", "std"):
        if stat in kwargs:
            try:
                kwargs[stat] = tuple(float(v) for v in np.ravel(np.asarray(kwargs[stat], np.float64)))
            except (TypeError, ValueError):
                raise TypeError(f"{stat} must be a number or a sequence of numbers (one per input channel), "
                                f"got {kwargs[stat]!r}") from None
    # sequences read back from a config.json are lists; module fields hold tuples (hashable)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return _MODELS[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for model {name!r}: {err}") from None


def init_variables(model: nn.Module, key: jax.Array, input_shape: tuple[int, ...]) -> dict:
    """Initialise a model's variables for inputs of shape ``input_shape`` = (B, H, W, C).

    Returns ``{"params": ..., "batch_stats": ...}`` (``batch_stats`` is an empty dict for models
    without batch norm), with every array float32.
    """
    variables = model.init(key, jnp.zeros(input_shape, jnp.float32), train=False)
    variables = dict(variables)
    variables.setdefault("batch_stats", {})
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}


def count_params(params: Any) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
