"""Flax Linen models with the input normalisation inside.

Every model maps images [B, H, W, C] in [0, 1] to logits [B, K] and is called as
``model.apply(variables, x, train=False, bn_set="clean")``; with ``train=True`` and batch norm,
pass ``mutable=["batch_stats"]``.
"""
from jadv.models.norm import BN_SETS, NORMS, DualBatchNorm, InputNormalize, Norm
from jadv.models.registry import available, count_params, get, init_variables
from jadv.models.resnet import CifarResNet, PreActResNet, ResNet, WideResNet
from jadv.models.simple import MLP, Linear, SmallCNN

__all__ = [
    "BN_SETS", "NORMS", "DualBatchNorm", "InputNormalize", "Norm",
    "available", "count_params", "get", "init_variables",
    "CifarResNet", "PreActResNet", "ResNet", "WideResNet",
    "MLP", "Linear", "SmallCNN",
]
