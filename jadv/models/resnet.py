"""Residual networks used in adversarial-robustness work (Flax Linen, NHWC).

- ``PreActResNet`` (He et al. 2016b; the PreActResNet-18 of Rice et al. 2020, Wong et al. 2020,
  RobustBench): 3x3 stem, pre-activation basic blocks, final norm + ReLU, global average pool.
- ``ResNet`` (He et al. 2016a) with basic (18/34) or bottleneck (50/101/152) blocks; ``stem="cifar"``
  is the 3x3 stride-1 stem of CIFAR code, ``stem="imagenet"`` the 7x7 stride-2 stem + max-pool.
- ``CifarResNet`` (He et al. 2016a section 4.2, ResNet-20/32/44/56/110/..., depth = 6n + 2):
  16/32/64 channels, post-activation basic blocks, 1x1 projection shortcuts when the shape
  changes (option B), used for depth sweeps.
- ``WideResNet`` (Zagoruyko & Komodakis 2016; the WRN-28-10/34-10 of Madry, TRADES, RobustBench),
  depth = 6n + 4, widths 16k/32k/64k, pre-activation blocks.

Submodule names follow the PyTorch state-dict names where possible (conv1, bn1, layer1_0, ...)
so that checkpoints can be mapped one to one. Every model: x [B, H, W, C] in [0, 1] ->
logits [B, K]; ``apply(variables, x, train=False, bn_set="clean")``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jadv.models.norm import InputNormalize, Norm, check_model_fields

_he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features, kernel, stride, name, dtype, padding=None):
    if padding is None:
        padding = [(kernel // 2, kernel // 2)] * 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                   use_bias=False, kernel_init=_he_normal, dtype=dtype, name=name)


class PreActBlock(nn.Module):
    planes: int
    stride: int = 1
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train, bn_set):
        out = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        if self.stride != 1 or x.shape[-1] != self.planes:
            shortcut = _conv(self.planes, 1, self.stride, "shortcut", self.dtype, padding="VALID")(out)
        else:
            shortcut = x
        out = _conv(self.planes, 3, self.stride, "conv1", self.dtype)(out)
        out = nn.relu(Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set))
        out = _conv(self.planes, 3, 1, "conv2", self.dtype)(out)
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet; ``depth`` 18 or 34. x [B,H,W,C] -> logits [B,K]."""

    depth: int = 18
    num_classes: int = 10
    norm: str = "batch"
    width: int = 64
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
        if self.depth not in blocks:
            raise ValueError(f"PreActResNet depth must be 18 or 34, got {self.depth}")
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(self.width, 3, 1, "conv1", self.dtype)(x)
        for stage, n in enumerate(blocks[self.depth]):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = PreActBlock(self.width * 2 ** stage, stride, self.norm, self.dtype,
                                name=f"layer{stage + 1}_{i}")(x, train, bn_set)
        x = nn.relu(Norm(self.norm, name="bn")(x, train=train, bn_set=bn_set))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(x).astype(jnp.promote_types(self.dtype, jnp.float32))


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32
    expansion = 1

    @nn.compact
    def __call__(self, x, train, bn_set):
        out = _conv(self.planes, 3, self.stride, "conv1", self.dtype)(x)
        out = nn.relu(Norm(self.norm, name="bn1")(out, train=train, bn_set=bn_set))
        out = _conv(self.planes, 3, 1, "conv2", self.dtype)(out)
        out = Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set)
        if self.stride != 1 or x.shape[-1] != self.planes:
            x = _conv(self.planes, 1, self.stride, "shortcut_conv", self.dtype, padding="VALID")(x)
            x = Norm(self.norm, name="shortcut_bn")(x, train=train, bn_set=bn_set)
        return nn.relu(out + x)


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32
    expansion = 4

    @nn.compact
    def __call__(self, x, train, bn_set):
        out_planes = self.planes * self.expansion
        out = _conv(self.planes, 1, 1, "conv1", self.dtype, padding="VALID")(x)
        out = nn.relu(Norm(self.norm, name="bn1")(out, train=train, bn_set=bn_set))
        out = _conv(self.planes, 3, self.stride, "conv2", self.dtype)(out)
        out = nn.relu(Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set))
        out = _conv(out_planes, 1, 1, "conv3", self.dtype, padding="VALID")(out)
        out = Norm(self.norm, name="bn3")(out, train=train, bn_set=bn_set)
        if self.stride != 1 or x.shape[-1] != out_planes:
            x = _conv(out_planes, 1, self.stride, "shortcut_conv", self.dtype, padding="VALID")(x)
            x = Norm(self.norm, name="shortcut_bn")(x, train=train, bn_set=bn_set)
        return nn.relu(out + x)


class ResNet(nn.Module):
    """ResNet-18/34/50/101/152 (basic or bottleneck blocks). x [B,H,W,C] -> logits [B,K]."""

    depth: int = 18
    num_classes: int = 10
    norm: str = "batch"
    stem: str = "cifar"
    width: int = 64
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        layouts = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                   50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
                   152: (Bottleneck, (3, 8, 36, 3))}
        if self.depth not in layouts:
            raise ValueError(f"ResNet depth must be one of {sorted(layouts)}, got {self.depth}")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"ResNet stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        block, counts = layouts[self.depth]
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        if self.stem == "cifar":
            x = _conv(self.width, 3, 1, "conv1", self.dtype)(x)
        else:
            x = _conv(self.width, 7, 2, "conv1", self.dtype)(x)
        x = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        if self.stem == "imagenet":
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, n in enumerate(counts):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = block(self.width * 2 ** stage, stride, self.norm, self.dtype,
                          name=f"layer{stage + 1}_{i}")(x, train, bn_set)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(x).astype(jnp.promote_types(self.dtype, jnp.float32))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (20, 32, 44, 56, 110, ...). x [B,H,W,C] -> logits [B,K]."""

    depth: int = 20
    num_classes: int = 10
    norm: str = "batch"
    widths: Sequence[int] = (16, 32, 64)
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"CifarResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {self.depth}")
        n = (self.depth - 2) // 6
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(self.widths[0], 3, 1, "conv1", self.dtype)(x)
        x = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        for stage, width in enumerate(self.widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = BasicBlock(width, stride, self.norm, self.dtype,
                               name=f"layer{stage + 1}_{i}")(x, train, bn_set)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="linear")(x).astype(jnp.promote_types(self.dtype, jnp.float32))


class WideBlock(nn.Module):
    out_planes: int
    stride: int
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train, bn_set):
        equal = x.shape[-1] == self.out_planes and self.stride == 1
        act = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, self.stride, "conv1", self.dtype)(act)
        out = nn.relu(Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, 1, "conv2", self.dtype)(out)
        if equal:
            return x + out
        shortcut = _conv(self.out_planes, 1, self.stride, "shortcut", self.dtype, padding="VALID")(act)
        return shortcut + out


class WideResNet(nn.Module):
    """WRN-depth-width (depth = 6n + 4, e.g. 28-10, 34-10). x [B,H,W,C] -> logits [B,K]."""

    depth: int = 28
    width: int = 10
    num_classes: int = 10
    norm: str = "batch"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1 (16, 28, 34, 70), got {self.depth}")
        n = (self.depth - 4) // 6
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(16, 3, 1, "conv1", self.dtype)(x)
        for stage, planes in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = WideBlock(planes, stride, self.norm, self.dtype,
                              name=f"block{stage + 1}_{i}")(x, train, bn_set)
        x = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x).astype(jnp.promote_types(self.dtype, jnp.float32))
