"""DeepMind's WideResNet and PreActResNet (Flax Linen, NHWC), as in RobustBench's model zoo.

The architectures of Gowal et al. 2020 "Uncovering the limits of adversarial training against
norm-bounded adversarial examples" (arXiv:2010.03593) and Rebuffi et al. 2021 "Fixing data
augmentation to improve adversarial robustness" / "Data augmentation can improve robustness"
(arXiv:2103.01946), whose checkpoints RobustBench serves through its ``DMWideResNet`` and
``DMPreActResNet`` classes (``robustbench/model_zoo/architectures/dm_wide_resnet.py``, a PyTorch
port of deepmind-research ``adversarial_robustness``). They differ from the TRADES WideResNet and
the Wong/Rice PreActResNet in :mod:`jadv.models.resnet` in ways that change the logits:

- Strided 3x3 convolutions pad TensorFlow-"SAME"-style: one row/column of zeros at the bottom and
  right only (PyTorch ``F.pad(x, (0, 1, 0, 1))`` + ``padding=0``); stride-1 3x3 convolutions pad
  one on every side. jadv pads explicitly, so odd input sizes agree with PyTorch too.
- The activation is a choice: ``"relu"`` or ``"swish"`` (``x * sigmoid(x)``, a.k.a. SiLU; the
  RobustBench DM checkpoints use Swish).
- ``DMWideResNet``: a shortcut convolution (1x1) exists only where the channel count changes,
  and it sees the activated input; otherwise the identity sees the raw input.
- ``DMPreActResNet``: the shortcut is a 3x3 convolution (padded like the block's first conv) of
  the *raw* block input, not of the activated one; it exists where the stride or width changes.

Submodule names follow the PyTorch state-dict names (``layer_0_block_1`` for ``layer.0.block.1``,
``batchnorm_0``, ``conv_0``, ..., ``logits``) so checkpoints map one to one
(:func:`jadv.models.from_torch` with ``arch="dm_wide_resnet"`` / ``"dm_preact_resnet"``), except
the stem convolution: it is ``conv1`` as in every jadv model (first-layer analyses and
``experiments/import_model.py`` read ``params["conv1"]``), PyTorch's ``init_conv`` / ``conv_2d``.
Every model: x float32 [B, H, W, C] in [0, 1] -> logits float32 [B, K];
``apply(variables, x, train=False, bn_set="clean")``. The input normalisation (RobustBench passes
the CIFAR-10 or CIFAR-100 mean/std) is the ``mean``/``std`` fields, inside the model.
"""
from __future__ import annotations

import numbers

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jadv.models.norm import InputNormalize, Norm, check_model_fields

ACTIVATIONS = ("relu", "swish", "silu")      # "silu" is another name for "swish"
PREACT_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}   # blocks per stage of DMPreActResNet-depth

_he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def check_activation(activation) -> None:
    """ValueError unless ``activation`` is one of :data:`ACTIVATIONS`."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(map(repr, ACTIVATIONS))} "
                         "('silu' is the same function as 'swish', x * sigmoid(x))")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _activation(name: str):
    check_activation(name)
    return nn.relu if name == "relu" else nn.swish


def _same_padding(kernel: int, stride: int):
    """The padding of DeepMind's convolutions: 3x3 stride 1 -> 1 each side; 3x3 stride 2 -> (0, 1)
    (bottom/right only, TensorFlow "SAME" for even sizes); 1x1 -> none."""
    if kernel == 1:
        return "VALID"
    if stride == 1:
        return [(kernel // 2, kernel // 2)] * 2
    if stride == 2 and kernel == 3:
        return [(0, 1), (0, 1)]
    raise ValueError(f"DeepMind blocks use strides 1 and 2 with 3x3 kernels, got kernel {kernel}, stride {stride}")


def _conv(features: int, kernel: int, stride: int, name: str, dtype) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=_same_padding(kernel, stride),
                   use_bias=False, kernel_init=_he_normal, dtype=dtype, name=name)


def _head(x, num_classes: int, dtype):
    x = jnp.mean(x, axis=(1, 2))                  # the 8x8 (WRN) / 4x4 (PreAct) average pool of 32x32 inputs
    return nn.Dense(num_classes, dtype=dtype, name="logits")(x).astype(jnp.promote_types(dtype, jnp.float32))


class DMWideBlock(nn.Module):
    """One block of :class:`DMWideResNet`: x [B, H, W, C_in] -> [B, H/stride, W/stride, out_planes].

    ``BN -> act -> conv_0 (3x3, stride) -> BN -> act -> conv_1 (3x3)`` plus the identity of the raw
    input, or, where ``C_in != out_planes``, a 1x1 strided ``shortcut`` conv of the activated input.
    """

    out_planes: int
    stride: int = 1
    activation: str = "swish"
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train, bn_set):
        act = _activation(self.activation)
        has_shortcut = x.shape[-1] != self.out_planes
        pre = act(Norm(self.norm, name="batchnorm_0")(x, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, self.stride, "conv_0", self.dtype)(pre)
        out = act(Norm(self.norm, name="batchnorm_1")(out, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, 1, "conv_1", self.dtype)(out)
        if has_shortcut:
            return _conv(self.out_planes, 1, self.stride, "shortcut", self.dtype)(pre) + out
        if self.stride != 1:
            raise ValueError("DMWideBlock: a strided block must change the channel count (the DeepMind "
                             f"WideResNet has no shortcut conv otherwise), got {x.shape[-1]} -> {self.out_planes}")
        return x + out


class DMWideResNet(nn.Module):
    """DeepMind WideResNet-depth-width (Gowal et al. 2020; Rebuffi et al. 2021; RobustBench ``DMWideResNet``).

    Stem ``conv1`` (PyTorch ``init_conv``, 16 filters); depth = 6n + 4 (28, 34, 70, 94, 106, ...),
    widths 16k / 32k / 64k in three groups ``layer_{g}_block_{i}``, pre-activation
    blocks (:class:`DMWideBlock`), final BN + activation, global average pool, linear ``logits``.
    ``activation``: ``"swish"`` (= ``"silu"``, the RobustBench checkpoints) or ``"relu"``.
    x float32 [B, H, W, C] in [0, 1] (32x32 for CIFAR) -> logits float32 [B, num_classes].
    """

    depth: int = 28
    width: int = 10
    num_classes: int = 10
    activation: str = "swish"
    norm: str = "batch"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        check_activation(self.activation)
        if not _is_int(self.depth) or self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"DMWideResNet depth must be 6n+4 with n >= 1 (10, 16, 28, 34, 70, ...), "
                             f"got {self.depth!r}")
        if not _is_int(self.width) or self.width < 1:
            raise ValueError(f"DMWideResNet width must be an int >= 1, got {self.width!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        n = (self.depth - 4) // 6
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(16, 3, 1, "conv1", self.dtype)(x)                 # PyTorch: init_conv
        for group, planes in enumerate((16 * self.width, 32 * self.width, 64 * self.width)):
            for i in range(n):
                stride = 2 if (group > 0 and i == 0) else 1
                x = DMWideBlock(planes, stride, self.activation, self.norm, self.dtype,
                                name=f"layer_{group}_block_{i}")(x, train, bn_set)
        x = _activation(self.activation)(Norm(self.norm, name="batchnorm")(x, train=train, bn_set=bn_set))
        return _head(x, self.num_classes, self.dtype)


class DMPreActBlock(nn.Module):
    """One block of :class:`DMPreActResNet`: x [B, H, W, C_in] -> [B, H/stride, W/stride, out_planes].

    ``BN -> act -> conv_2d_1 (3x3, stride) -> BN -> act -> conv_2d_2 (3x3)`` plus the raw input, or,
    where the stride or width changes, a 3x3 strided ``shortcut`` conv of the raw (not activated) input.
    """

    out_planes: int
    stride: int = 1
    activation: str = "swish"
    norm: str = "batch"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train, bn_set):
        act = _activation(self.activation)
        out = act(Norm(self.norm, name="batchnorm_0")(x, train=train, bn_set=bn_set))
        if self.stride != 1 or x.shape[-1] != self.out_planes:
            shortcut = _conv(self.out_planes, 3, self.stride, "shortcut", self.dtype)(x)
        else:
            shortcut = x
        out = _conv(self.out_planes, 3, self.stride, "conv_2d_1", self.dtype)(out)
        out = act(Norm(self.norm, name="batchnorm_1")(out, train=train, bn_set=bn_set))
        out = _conv(self.out_planes, 3, 1, "conv_2d_2", self.dtype)(out)
        return out + shortcut


class DMPreActResNet(nn.Module):
    """DeepMind pre-activation ResNet-18/34 (Rebuffi et al. 2021; RobustBench ``DMPreActResNet``).

    3x3 stem ``conv1`` (PyTorch ``conv_2d``) with ``width`` filters (64 in RobustBench), four stages
    ``layer_0 .. layer_3`` of :class:`DMPreActBlock` with width, 2x, 4x, 8x channels (blocks
    (2, 2, 2, 2) for depth 18, (3, 4, 6, 3) for 34), final BN + activation, global average pool,
    linear ``logits``. ``activation``: ``"swish"`` (= ``"silu"``) or ``"relu"``.
    x float32 [B, H, W, C] in [0, 1] (32x32 for CIFAR) -> logits float32 [B, num_classes].
    """

    depth: int = 18
    width: int = 64
    num_classes: int = 10
    activation: str = "swish"
    norm: str = "batch"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        check_activation(self.activation)
        if not _is_int(self.depth) or self.depth not in PREACT_BLOCKS:
            raise ValueError(f"DMPreActResNet depth must be 18 or 34, got {self.depth!r}")
        if not _is_int(self.width) or self.width < 1:
            raise ValueError(f"DMPreActResNet width must be an int >= 1 (64 in RobustBench), got {self.width!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        x = _conv(self.width, 3, 1, "conv1", self.dtype)(x)         # PyTorch: conv_2d
        for stage, n in enumerate(PREACT_BLOCKS[self.depth]):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = DMPreActBlock(self.width * 2 ** stage, stride, self.activation, self.norm, self.dtype,
                                  name=f"layer_{stage}_{i}")(x, train, bn_set)
        x = _activation(self.activation)(Norm(self.norm, name="batchnorm")(x, train=train, bn_set=bn_set))
        return _head(x, self.num_classes, self.dtype)
