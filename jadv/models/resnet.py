"""Residual networks used in adversarial-robustness work (Flax Linen, NHWC).

- ``PreActResNet`` (He et al. 2016b; the PreActResNet-18 of Rice et al. 2020, Wong et al. 2020,
  RobustBench): 3x3 stem, pre-activation basic blocks, final norm + ReLU, global average pool.
- ``ResNet`` (He et al. 2016a) with basic (18/34) or bottleneck (50/101/152) blocks; ``stem="cifar"``
  is the 3x3 stride-1 stem of CIFAR code, ``stem="imagenet"`` the 7x7 stride-2 stem + max-pool.
- ``CifarResNet`` (He et al. 2016a section 4.2, ResNet-20/32/44/56/110/..., depth = 6n + 2):
  16/32/64 channels, post-activation basic blocks, 1x1 projection shortcuts when the shape
  changes (option B), used for depth sweeps.
- ``WideResNet`` (Zagoruyko & Komodakis 2016; the WRN-28-10/34-10 of Madry, TRADES, RobustBench),
  depth = 6n + 4, widths 16k/32k/64k, pre-activation blocks; ``head="cosine"`` is the normalised
  (cosine-similarity) head of Pang et al. 2020 ("Boosting adversarial training with hypersphere
  embedding", RobustBench ``BoostingWideResNet``).
- ``RobustWideResNet``: the WideResNet with free per-stage channels, depths, strides and
  activation of Huang et al. 2021 ("Exploring architectural ingredients of adversarially robust
  deep neural networks", RobustBench ``RobustWideResNet``) and Huang et al. 2022 ("Revisiting
  residual networks for adversarial robustness", RobustBench ``robust_resnet`` WRN-A4, SiLU).

Submodule names follow the PyTorch state-dict names where possible (conv1, bn1, layer1_0, ...)
so that checkpoints can be mapped one to one. Every model: x [B, H, W, C] in [0, 1] ->
logits [B, K]; ``apply(variables, x, train=False, bn_set="clean")``.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jadv.models.dm_resnet import _activation, check_activation
from jadv.models.norm import InputNormalize, Norm, check_model_fields

_he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features, kernel, stride, name, dtype, padding=None):
    if padding is None:
        padding = [(kernel // 2, kernel // 2)] * 2
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                   use_bias=False, kernel_init=_he_normal, dtype=dtype, name=name)


PREACT_SHORTCUTS = ("activation", "input")


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``BN -> ReLU -> conv1 (3x3, stride) -> BN -> ReLU -> conv2``
    plus the identity, or, where the stride or width changes, a 1x1 ``shortcut`` conv of the
    activated input (``shortcut_from="activation"``: Wong et al. 2020, Rice et al. 2020, Kuang
    Liu's code) or of the raw block input (``"input"``: RobustBench's ``PreActBlock`` with
    ``out_shortcut=False``). x [B, H, W, C_in] -> [B, H/stride, W/stride, planes]."""

    planes: int
    stride: int = 1
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32
    shortcut_from: str = "activation"

    @nn.compact
    def __call__(self, x, train, bn_set):
        out = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        if self.stride != 1 or x.shape[-1] != self.planes:
            source = out if self.shortcut_from == "activation" else x
            shortcut = _conv(self.planes, 1, self.stride, "shortcut", self.dtype, padding="VALID")(source)
        else:
            shortcut = x
        out = _conv(self.planes, 3, self.stride, "conv1", self.dtype)(out)
        out = nn.relu(Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set))
        out = _conv(self.planes, 3, 1, "conv2", self.dtype)(out)
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet; ``depth`` 18 or 34. x [B,H,W,C] -> logits [B,K].

    The default is the layout of Wong et al. 2020 / Rice et al. 2020: shortcut convs of the
    activated block input and a final ``bn`` + ReLU before the pool. RobustBench's own
    ``PreActResNet(PreActBlock, ...)`` (Andriushchenko & Flammarion 2020, Wong et al. 2020 as the
    model zoo defines them) is ``shortcut_from="input", final_norm=False``.
    """

    depth: int = 18
    num_classes: int = 10
    norm: str = "batch"
    width: int = 64
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32
    shortcut_from: str = "activation"       # "activation" or "input" (see PreActBlock)
    final_norm: bool = True                 # BN + ReLU after the last stage

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        if self.shortcut_from not in PREACT_SHORTCUTS:
            raise ValueError(f"PreActResNet shortcut_from must be one of {PREACT_SHORTCUTS}, got {self.shortcut_from!r}")
        if not isinstance(self.final_norm, (bool, np.bool_)):
            raise TypeError(f"PreActResNet final_norm must be a bool, got {self.final_norm!r}")
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
                x = PreActBlock(self.width * 2 ** stage, stride, self.norm, self.dtype, self.shortcut_from,
                                name=f"layer{stage + 1}_{i}")(x, train, bn_set)
        if self.final_norm:
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
    """Pre-activation WideResNet block: ``BN -> act -> conv1 (3x3, stride) -> BN -> act -> conv2``
    plus the identity of the raw input, or, where the shape changes, a 1x1 ``shortcut`` conv of
    the activated input. ``activation`` "relu" (WideResNet) or "swish" (= "silu").
    x [B, H, W, C_in] -> [B, H/stride, W/stride, out_planes]."""

    out_planes: int
    stride: int
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32
    activation: str = "relu"

    @nn.compact
    def __call__(self, x, train, bn_set):
        nonlin = _activation(self.activation)
        equal = x.shape[-1] == self.out_planes and self.stride == 1
        act = nonlin(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, self.stride, "conv1", self.dtype)(act)
        out = nonlin(Norm(self.norm, name="bn2")(out, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, 1, "conv2", self.dtype)(out)
        if equal:
            return x + out
        shortcut = _conv(self.out_planes, 1, self.stride, "shortcut", self.dtype, padding="VALID")(act)
        return shortcut + out


HEADS = ("linear", "cosine")


def per_image_standardize(x: jnp.ndarray) -> jnp.ndarray:
    """Per-image standardisation of Ding et al. 2020 (MMA training; RobustBench ``Ding2020MMANet``):
    ``(x - mean) / max(std, 1 / sqrt(n))`` with the mean and the *unbiased* standard deviation
    (``torch.Tensor.std``) over each image's n = H * W * C values. x [B, H, W, C] -> same shape.
    The gradient is finite for constant images too (their std is 0 and the floor is used)."""
    n = x.shape[1] * x.shape[2] * x.shape[3]
    mu = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    var = jnp.sum(jnp.square(x - mu), axis=(1, 2, 3), keepdims=True) / max(n - 1, 1)
    positive = var > 0
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
    return (x - mu) / jnp.maximum(std, 1.0 / np.sqrt(n))


class CosineDense(nn.Module):
    """The normalised head of Pang et al. 2020 (RobustBench ``BoostingWideResNet``):
    ``logits = normalize(x) @ normalize(kernel)``, both L2-normalised (features per example, the
    kernel per class column, as ``torch.nn.functional.normalize``: ``v / max(||v||, 1e-12)``), no
    bias, so every logit is a cosine similarity in [-1, 1]. x [B, D] -> [B, features]."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features), jnp.float32)
        x = x.astype(jnp.float32)
        x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        kernel = kernel / jnp.maximum(jnp.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)
        return jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))


def _classifier(x, num_classes: int, head: str, dtype):
    if head == "cosine":
        out = CosineDense(num_classes, dtype=dtype, name="fc")(x)
    else:
        out = nn.Dense(num_classes, dtype=dtype, name="fc")(x)
    return out.astype(jnp.promote_types(dtype, jnp.float32))


class WideResNet(nn.Module):
    """WRN-depth-width (depth = 6n + 4, e.g. 28-10, 34-10). x [B,H,W,C] -> logits [B,K].

    ``head``: ``"linear"`` (a dense layer, the default) or ``"cosine"`` (:class:`CosineDense`,
    Pang et al. 2020's normalised features and class weights, no bias).
    ``per_image_standardize``: standardise each image before the network
    (:func:`per_image_standardize`; Ding et al. 2020's MMA WideResNet-28-4 in RobustBench);
    ``mean``/``std`` are then applied after it (leave them at 0/1).
    """

    depth: int = 28
    width: int = 10
    num_classes: int = 10
    norm: str = "batch"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32
    head: str = "linear"
    per_image_standardize: bool = False

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        if self.head not in HEADS:
            raise ValueError(f"WideResNet head must be one of {HEADS}, got {self.head!r}")
        if not isinstance(self.per_image_standardize, (bool, np.bool_)):
            raise TypeError(f"WideResNet per_image_standardize must be a bool, got {self.per_image_standardize!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1 (16, 28, 34, 70), got {self.depth}")
        n = (self.depth - 4) // 6
        if self.per_image_standardize:
            x = per_image_standardize(x)
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(16, 3, 1, "conv1", self.dtype)(x)
        for stage, planes in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = WideBlock(planes, stride, self.norm, self.dtype,
                              name=f"block{stage + 1}_{i}")(x, train, bn_set)
        x = nn.relu(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        x = jnp.mean(x, axis=(1, 2))
        return _classifier(x, self.num_classes, self.head, self.dtype)


def _int_tuple(name: str, value, minimum: int) -> tuple:
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"RobustWideResNet {name} must be a sequence of ints, got {value!r}") from None
    if not out or not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v >= minimum
                          for v in out):
        raise ValueError(f"RobustWideResNet {name} must be ints >= {minimum}, got {value!r}")
    return tuple(int(v) for v in out)


class RobustWideResNet(nn.Module):
    """WideResNet with per-stage channels/depths/strides (Huang et al. 2021 and 2022; RobustBench
    ``RobustWideResNet`` and ``robust_resnet.PreActResNet`` with basic blocks).

    ``channels`` = (stem, stage 1, ..., stage S) filters, ``depths`` = blocks per stage (S values),
    ``strides`` = first-block stride per stage. Stem ``conv1`` (3x3, PyTorch ``stem_conv``),
    stages of :class:`WideBlock` (``blocks_{s}_{i}``), final norm ``bn1`` + activation, global
    average pool, dense ``fc``. Huang et al. 2021's WRN-34-R is ``channels=(16, 320, 640, 512),
    depths=(5, 5, 5)``; Huang et al. 2022's WRN-A4 ``channels=(16, 160, 448, 384),
    depths=(27, 28, 13), activation="swish"``. x float32 [B, H, W, C] in [0, 1] -> logits [B, K].
    """

    channels: tuple = (16, 160, 320, 640)
    depths: tuple = (5, 5, 5)
    strides: tuple = (1, 2, 2)
    num_classes: int = 10
    activation: str = "relu"
    norm: str = "batch"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        check_activation(self.activation)
        channels = _int_tuple("channels", self.channels, 1)
        depths = _int_tuple("depths", self.depths, 1)
        strides = _int_tuple("strides", self.strides, 1)
        if len(channels) != len(depths) + 1 or len(strides) != len(depths):
            raise ValueError(f"RobustWideResNet needs len(channels) = len(depths) + 1 = len(strides) + 1 "
                             f"(stem + one width per stage), got channels {channels}, depths {depths}, "
                             f"strides {strides}")
        for i, stride in enumerate(strides):
            if stride != 1 and channels[i] == channels[i + 1]:
                raise ValueError(f"RobustWideResNet stage {i}: a strided stage must change the channel count "
                                 f"(the PyTorch block has no shortcut conv otherwise), got {channels[i]} -> "
                                 f"{channels[i + 1]} at stride {stride}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(self.channels[0], 3, 1, "conv1", self.dtype)(x)
        for stage, (planes, n, stride) in enumerate(zip(self.channels[1:], self.depths, self.strides)):
            for i in range(n):
                x = WideBlock(planes, stride if i == 0 else 1, self.norm, self.dtype, self.activation,
                              name=f"blocks_{stage}_{i}")(x, train, bn_set)
        x = _activation(self.activation)(Norm(self.norm, name="bn1")(x, train=train, bn_set=bn_set))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x).astype(jnp.promote_types(self.dtype, jnp.float32))
