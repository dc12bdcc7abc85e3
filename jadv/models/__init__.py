"""Flax Linen models with the input normalisation inside.

Every model maps images [B, H, W, C] in [0, 1] to logits [B, K] and is called as
``model.apply(variables, x, train=False, bn_set="clean")``; with ``train=True`` and batch norm,
pass ``mutable=["batch_stats"]``.

``from_torch(state_dict, arch)`` converts PyTorch checkpoints of the RobustBench architectures
(PreActResNet-18, ResNet-18/50, WideResNet-28-10/34-10, DeepMind's WideResNets and
PreActResNet-18 of Gowal et al. 2020 / Rebuffi et al. 2021) into these models; see
:mod:`jadv.models.from_torch` (the module is reached with ``importlib.import_module``, since the
function shadows its name on the package). :mod:`jadv.models.robustbench` maps RobustBench's
CIFAR-10/100 model-zoo names to those conversions (``robustbench.load(name, checkpoint)``).
"""
from jadv.models.dm_resnet import DMPreActResNet, DMWideResNet
from jadv.models.from_torch import ARCHS as TORCH_ARCHS
from jadv.models.from_torch import ImportedModel, from_torch
from jadv.models.from_torch import load_state_dict as load_torch_state_dict
from jadv.models.norm import BN_SETS, NORMS, DualBatchNorm, InputNormalize, Norm
from jadv.models.registry import available, count_params, get, init_variables
from jadv.models.resnet import CifarResNet, PreActResNet, ResNet, RobustWideResNet, WideResNet
from jadv.models.simple import MLP, Linear, SmallCNN
from jadv.models import robustbench  # noqa: E402  (RobustBench model-zoo table; needs from_torch above)

__all__ = [
    "BN_SETS", "NORMS", "DualBatchNorm", "InputNormalize", "Norm",
    "available", "count_params", "get", "init_variables",
    "CifarResNet", "PreActResNet", "ResNet", "WideResNet", "RobustWideResNet", "DMWideResNet", "DMPreActResNet",
    "MLP", "Linear", "SmallCNN",
    "TORCH_ARCHS", "ImportedModel", "from_torch", "load_torch_state_dict", "robustbench",
]
