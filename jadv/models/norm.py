"""Normalisation layers, selectable by name: batch, dual (mixture) batch norm, group, none.

Batch norm follows PyTorch's defaults (momentum 0.1 -> Flax momentum 0.9, epsilon 1e-5) so
weights imported from PyTorch behave the same.

Dual batch norm (Xie & Yuille 2020 "mixture BN"; Xie et al. 2020 AdvProp "auxiliary BN") keeps
two sets of BN parameters and statistics: ``bn_clean`` for clean inputs and ``bn_adv`` for
adversarial inputs. The set used by a forward pass is chosen by the ``bn_set`` argument
("clean" or "adv"); only that set's running statistics are updated in train mode.
"""
from __future__ import annotations

import math
import numbers

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

NORMS = ("batch", "dual_batch", "group", "none")
BN_SETS = ("clean", "adv")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def check_norm_kind(kind: str) -> None:
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; allowed: {', '.join(map(repr, NORMS))}")


def check_bn_set(bn_set: str) -> None:
    if bn_set not in BN_SETS:
        raise ValueError(f"unknown bn_set {bn_set!r}; allowed: {', '.join(map(repr, BN_SETS))}")


class DualBatchNorm(nn.Module):
    """Two batch-norm sets (``bn_clean``, ``bn_adv``); ``bn_set`` selects the one to use.

    Input/output: [..., C]. Both sets are created at initialisation.
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON

    @nn.compact
    def __call__(self, x, *, train: bool, bn_set: str = "clean"):
        check_bn_set(bn_set)
        layers = {s: nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                                  epsilon=self.epsilon, name=f"bn_{s}") for s in BN_SETS}
        if self.is_initializing():
            outputs = {s: layer(x) for s, layer in layers.items()}
            return outputs[bn_set]
        return layers[bn_set](x)


def _num_groups(channels: int, max_groups: int = 32) -> int:
    return math.gcd(channels, max_groups)


class Norm(nn.Module):
    """Normalisation selected by ``kind`` (one of ``NORMS``). Input/output: [..., C]."""

    kind: str = "batch"
    max_groups: int = 32

    @nn.compact
    def __call__(self, x, *, train: bool, bn_set: str = "clean"):
        check_norm_kind(self.kind)
        if self.kind == "batch":
            return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                                epsilon=BN_EPSILON)(x)
        if self.kind == "dual_batch":
            return DualBatchNorm()(x, train=train, bn_set=bn_set)
        if self.kind == "group":
            return nn.GroupNorm(num_groups=_num_groups(x.shape[-1], self.max_groups),
                                epsilon=BN_EPSILON)(x)
        return x


def check_num_classes(num_classes) -> None:
    """A classifier head needs an int ``num_classes >= 1`` (1 = one logistic-regression logit)."""
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an int >= 1, got {type(num_classes).__name__} {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1 (the number of logits; 1 gives a single "
                         f"logistic-regression logit), got {num_classes}")


def _values(name: str, v) -> tuple:
    try:
        arr = np.ravel(np.asarray(v, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of numbers (one per input channel), "
                        f"got {v!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} needs at least one value (one per input channel, or one for every channel)")
    return tuple(float(a) for a in arr)


def check_mean_std(mean, std) -> None:
    """Input normalisation ``(x - mean) / std``: finite means, ``std > 0`` (and finite), and as many
    values in each as input channels, or one value broadcast over every channel. The channel count
    is checked against the input in :class:`InputNormalize`."""
    m, s = _values("mean", mean), _values("std", std)
    if not all(math.isfinite(v) for v in m):
        raise ValueError(f"mean must be finite, got {m}")
    if not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"std must be > 0 and finite (the input is divided by it), got {s}")
    if len(m) != len(s) and 1 not in (len(m), len(s)):
        raise ValueError(f"mean has {len(m)} values but std has {len(s)}; give one value per input "
                         "channel in both (or one value to use for every channel)")


def check_model_fields(module) -> None:
    """Constructor checks shared by the jadv classifiers (``num_classes``, ``mean``/``std``)."""
    check_num_classes(module.num_classes)
    check_mean_std(module.mean, module.std)


class InputNormalize(nn.Module):
    """(x - mean) / std per channel; x is [B, H, W, C] in [0, 1]. No parameters.

    ``mean``/``std`` hold one value per channel or one value for every channel; ``std > 0``.
    Raises ValueError at construction for a non-positive/non-finite std, and at call time when the
    number of values fits neither 1 nor the input's channel count (checked on the static shape).
    """

    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def __post_init__(self):
        check_mean_std(self.mean, self.std)
        super().__post_init__()

    def __call__(self, x):
        c = x.shape[-1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            n = int(np.size(v))
            if n not in (1, c):
                fits = "1 value" if c == 1 else f"1 or {c} values"
                raise ValueError(f"input normalisation: {name} has {n} values but the input has {c} "
                                 f"channel(s) (x of shape {tuple(x.shape)}); give {fits} (one per channel, "
                                 "or one for every channel)")
        mean = jnp.asarray(self.mean, x.dtype)
        std = jnp.asarray(self.std, x.dtype)
        return (x - mean) / std
