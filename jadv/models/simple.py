"""Linear, MLP and small CNN classifiers (Flax Linen).

All models take images [B, H, W, C] in [0, 1] (or features [B, D]) and return logits [B, K].
Call signature shared by every jadv model: ``model.apply(variables, x, train=False, bn_set="clean")``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jadv.models.norm import InputNormalize, Norm, check_model_fields


def max_pool_2x2(x):
    """2x2 max-pool with stride 2 (floor of odd sizes, like ``nn.max_pool(x, (2, 2), (2, 2))``).

    x [B, H, W, C] -> [B, H // 2, W // 2, C]. Written as a reshape and a max rather than
    ``lax.reduce_window`` because XLA:CPU runs the gradient of reduce_window about 2.7x slower
    (measured in benchmarks/bench_pool.py); the forward values are identical.
    """
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2, :]
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class Linear(nn.Module):
    """Softmax (or, with ``num_classes=1``, logistic) regression on flattened inputs.

    x [B, ...] -> logits [B, num_classes].
    """

    num_classes: int = 10
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        x = InputNormalize(self.mean, self.std)(x) if x.ndim == 4 else x
        x = x.reshape((x.shape[0], -1)).astype(self.dtype)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="dense")(x).astype(jnp.promote_types(self.dtype, jnp.float32))


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU: x [B, ...] -> logits [B, num_classes]."""

    num_classes: int = 10
    hidden: Sequence[int] = (256, 256)
    norm: str = "none"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        x = InputNormalize(self.mean, self.std)(x) if x.ndim == 4 else x
        x = x.reshape((x.shape[0], -1)).astype(self.dtype)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(x)
            x = Norm(self.norm, name=f"norm_{i}")(x, train=train, bn_set=bn_set)
            x = nn.relu(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.promote_types(self.dtype, jnp.float32))


class SmallCNN(nn.Module):
    """Small convnet for MNIST/CIFAR-sized images.

    conv3x3(conv1_filters) -> norm -> ReLU -> maxpool2, then for each width in ``widths``:
    conv3x3(width) -> norm -> ReLU -> maxpool2; flatten -> dense(hidden) -> ReLU -> dense(K).
    The first conv has 3x3 kernels and ``conv1_filters`` (64 by default) output filters, the
    layer studied by the "sketchy channels" analysis.

    x [B, H, W, C] in [0, 1] -> logits [B, num_classes].
    """

    num_classes: int = 10
    conv1_filters: int = 64
    widths: Sequence[int] = (128,)
    hidden: int = 256
    norm: str = "none"
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    dtype: jnp.dtype = jnp.float32

    def __post_init__(self):
        check_model_fields(self)   # num_classes >= 1, std > 0, ...
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False, bn_set: str = "clean"):
        x = InputNormalize(self.mean, self.std)(x).astype(self.dtype)
        for i, width in enumerate((self.conv1_filters, *self.widths)):
            x = nn.Conv(width, (3, 3), padding="SAME", use_bias=self.norm == "none",
                        dtype=self.dtype, name=f"conv{i + 1}")(x)
            x = Norm(self.norm, name=f"norm{i + 1}")(x, train=train, bn_set=bn_set)
            x = nn.relu(x)
            x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc")(x))
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.promote_types(self.dtype, jnp.float32))
