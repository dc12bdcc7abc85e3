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

import flax.linen as nn
import jax.numpy as jnp

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


class InputNormalize(nn.Module):
    """(x - mean) / std per channel; x is [B, H, W, C] in [0, 1]. No parameters."""

    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def __call__(self, x):
        mean = jnp.asarray(self.mean, x.dtype)
        std = jnp.asarray(self.std, x.dtype)
        return (x - mean) / std
