"""PyTorch reference definitions of the RobustBench architectures (test oracle for from_torch).

Written from the architecture descriptions, with the module names (and so the state-dict keys)
of the code the public checkpoints come from:

- ``PreActResNet18``: Wong et al. 2020 / Rice et al. 2020 / RobustBench pre-activation ResNet
  (``conv1``, ``layerN.M.bn1/conv1/bn2/conv2/shortcut.0``, ``bn``, ``linear``; 4x4 average pool
  for 32x32 inputs).
- ``TorchvisionResNet``: torchvision's ResNet-18/50 ("v1.5": stride on the 3x3 conv)
  (``conv1, bn1, layerN.M.conv1/bn1/.../downsample.0/1, fc``), with an optional CIFAR stem
  (3x3 stride-1 conv, no max-pool).
- ``KuangLiuResNet``: the CIFAR ResNet of Kuang Liu's pytorch-cifar used by RobustBench
  (``shortcut.0/1``, ``linear``, 3x3 stem, 4x4 average pool).
- ``WideResNet``: the TRADES/RobustBench WideResNet (``conv1``,
  ``blockN.layer.M.bn1/relu1/conv1/bn2/relu2/conv2/convShortcut``, ``bn1``, ``fc``), with the
  unused ``sub_block1`` of the WRN-34-10 code as an option.
- ``DMWideResNet`` / ``DMPreActResNet``: DeepMind's models of Gowal et al. 2020 ("Uncovering the
  limits of adversarial training") and Rebuffi et al. 2021 (data augmentation), as RobustBench's
  ``dm_wide_resnet.py`` lays them out (``init_conv``, ``layer.{g}.block.{i}.batchnorm_0/conv_0/
  batchnorm_1/conv_1/shortcut``, ``batchnorm``, ``logits``; ``conv_2d``, ``layer_{s}.{i}.batchnorm_0/
  conv_2d_1/batchnorm_1/conv_2d_2/shortcut``, ``batchnorm``, ``logits``): bottom/right-only padding
  of strided convs, ReLU or Swish/SiLU, input mean/std as non-persistent buffers.
- ``ZooPreActResNet18``: RobustBench's own ``PreActResNet(PreActBlock, [2, 2, 2, 2])`` (the model
  zoo's Andriushchenko2020Understanding / Wong2020Fast): the shortcut conv sees the *raw* block
  input (``out_shortcut=False``) and there is no final BN unless ``bn_before_fc=True``.
- ``BoostingWideResNet``: Pang et al. 2020's WideResNet (RobustBench ``BoostingWideResNet``):
  L2-normalised features and ``fc`` rows, no bias.
- ``RobustWideResNet``: Huang et al. 2021's per-stage WideResNet (RobustBench ``RobustWideResNet``:
  ``stem_conv``, ``blocks.{s}.layer.{i}.*`` with ``convShortcut``, ``bn1``, ``fc``), and with
  ``layout="a4"`` the basic-block ``robust_resnet.PreActResNet`` of Huang et al. 2022 (WRN-A4:
  ``shortcut.0``, final ``norm1``, ReLU or SiLU).
- ``Normalized``: a wrapper holding ``mu``/``sigma`` buffers, ``model((x - mu) / sigma)``.

Every model takes NCHW float32 input. ``randomize_`` gives BN layers non-trivial statistics so that
a wrong mapping of BN tensors shows up in the logits.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)        # pytest -n 2 on 2 cores: one thread per worker, beside XLA's


# -- PreActResNet-18 --------------------------------------------------------------------------
class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    shortcut_from_input = False      # the 1x1 shortcut conv sees relu(bn1(x)) (Kaiming He's v2)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        if hasattr(self, "shortcut"):
            shortcut = self.shortcut(x if self.shortcut_from_input else out)
        else:
            shortcut = x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.flatten(1))


# -- torchvision-style ResNet -----------------------------------------------------------------
class TvBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class TorchvisionResNet(nn.Module):
    """depth 18 (basic blocks) or 50 (bottlenecks); ``stem="imagenet"`` or ``"cifar"``."""

    def __init__(self, depth=18, num_classes=1000, stem="imagenet", in_channels=3):
        super().__init__()
        block, counts = {18: (TvBasicBlock, (2, 2, 2, 2)), 50: (TvBottleneck, (3, 4, 6, 3))}[depth]
        self.inplanes = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 64, counts[0], 1)
        self.layer2 = self._make_layer(block, 128, counts[1], 2)
        self.layer3 = self._make_layer(block, 256, counts[2], 2)
        self.layer4 = self._make_layer(block, 512, counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, n, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


# -- Kuang Liu's CIFAR ResNet ------------------------------------------------------------------
class KlBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class KuangLiuResNet18(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(KlBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.flatten(1))


# -- WideResNet (TRADES / RobustBench) ---------------------------------------------------------
class WrnBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride,
                                                                     padding=0, bias=False)

    def forward(self, x):
        if self.equal_in_out:
            out = self.relu1(self.bn1(x))
            out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
            return x + out
        x = self.relu1(self.bn1(x))                  # the shortcut sees the activated input
        out = self.conv2(self.relu2(self.bn2(self.conv1(x))))
        return self.convShortcut(x) + out


class NetworkBlock(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WrnBlock(in_planes if i == 0 else out_planes, out_planes,
                                              stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-width; ``sub_block1=True`` adds the unused block of the WRN-34-10 code."""

    def __init__(self, depth=28, width=10, num_classes=10, sub_block1=False, bias_last=True, in_channels=3):
        super().__init__()
        ch = [16, 16 * width, 32 * width, 64 * width]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, ch[0], ch[1], 1)       # built, never called in forward
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes, bias=bias_last)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)                     # 8x8 maps of 32x32 inputs
        return self.fc(out.flatten(1))


# -- DeepMind WideResNet / PreActResNet (Gowal et al. 2020, Rebuffi et al. 2021; RobustBench DM*) --
class Swish(nn.Module):
    """x * sigmoid(x) (RobustBench's ``Swish``; the same function as ``nn.SiLU``)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


def dm_activation(name: str) -> nn.Module:
    """``"relu"``, ``"swish"`` (own module) or ``"silu"`` (``nn.SiLU``)."""
    return {"relu": nn.ReLU, "swish": Swish, "silu": nn.SiLU}[name]()


def dm_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """DeepMind's "SAME" padding before a 3x3 conv: 1 each side (stride 1), bottom/right only (stride 2)."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class DMWideBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, activation):
        super().__init__()
        self.stride = stride
        self.batchnorm_0 = nn.BatchNorm2d(in_planes)
        self.relu_0 = dm_activation(activation)
        self.conv_0 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_planes)
        self.relu_1 = dm_activation(activation)
        self.conv_1 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        # a 1x1 projection only where the channel count changes; it sees the activated input
        self.shortcut = (nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
                         if in_planes != out_planes else None)

    def forward(self, x):
        pre = self.relu_0(self.batchnorm_0(x))
        out = self.conv_0(dm_pad(pre, self.stride))
        out = self.conv_1(self.relu_1(self.batchnorm_1(out)))
        return (x if self.shortcut is None else self.shortcut(pre)) + out


class DMBlockGroup(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride, activation):
        super().__init__()
        self.block = nn.Sequential(*[DMWideBlock(in_planes if i == 0 else out_planes, out_planes,
                                                 stride if i == 0 else 1, activation) for i in range(n)])

    def forward(self, x):
        return self.block(x)


class _DMNormalize(nn.Module):
    """Input normalisation of the DM models: ``mean``/``std`` buffers [C, 1, 1], not in the state
    dict unless ``persistent`` (RobustBench's code of Jan 2022 saved them)."""

    def _register_stats(self, mean, std, channels, persistent):
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(channels, 1, 1),
                             persistent=persistent)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(channels, 1, 1),
                             persistent=persistent)


class DMWideResNet(_DMNormalize):
    """DeepMind WRN-depth-width: ``init_conv``, ``layer.{g}.block.{i}.*``, ``batchnorm``, ``logits``."""

    def __init__(self, depth=28, width=10, num_classes=10, activation="swish", mean=CIFAR10_MEAN,
                 std=CIFAR10_STD, in_channels=3, persistent_stats=False):
        super().__init__()
        self._register_stats(mean, std, in_channels, persistent_stats)
        ch = [16, 16 * width, 32 * width, 64 * width]
        n = (depth - 4) // 6
        self.init_conv = nn.Conv2d(in_channels, ch[0], 3, stride=1, padding=1, bias=False)
        self.layer = nn.Sequential(DMBlockGroup(n, ch[0], ch[1], 1, activation),
                                   DMBlockGroup(n, ch[1], ch[2], 2, activation),
                                   DMBlockGroup(n, ch[2], ch[3], 2, activation))
        self.batchnorm = nn.BatchNorm2d(ch[3])
        self.relu = dm_activation(activation)
        self.logits = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        out = self.layer(self.init_conv((x - self.mean) / self.std))
        out = self.relu(self.batchnorm(out))
        out = F.avg_pool2d(out, 8)                     # 8x8 maps of 32x32 inputs
        return self.logits(out.flatten(1))


class DMPreActBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, activation):
        super().__init__()
        self.stride = stride
        self.batchnorm_0 = nn.BatchNorm2d(in_planes)
        self.relu_0 = dm_activation(activation)
        self.conv_2d_1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_planes)
        self.relu_1 = dm_activation(activation)
        self.conv_2d_2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        # a 3x3 projection of the raw (not activated) input where the stride or width changes
        self.has_shortcut = stride != 1 or in_planes != out_planes
        if self.has_shortcut:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=0, bias=False)

    def forward(self, x):
        out = self.relu_0(self.batchnorm_0(x))
        skip = self.shortcut(dm_pad(x, self.stride)) if self.has_shortcut else x
        out = self.conv_2d_1(dm_pad(out, self.stride))
        return self.conv_2d_2(self.relu_1(self.batchnorm_1(out))) + skip


class DMPreActResNet(_DMNormalize):
    """DeepMind PreActResNet-18/34: ``conv_2d``, ``layer_{s}.{i}.*``, ``batchnorm``, ``logits``;
    ``width`` is the stem width (64 in RobustBench, smaller here for fast tests)."""

    def __init__(self, depth=18, num_classes=10, activation="swish", width=64, mean=CIFAR10_MEAN,
                 std=CIFAR10_STD, in_channels=3, persistent_stats=False):
        super().__init__()
        self._register_stats(mean, std, in_channels, persistent_stats)
        counts = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
        self.conv_2d = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        in_planes = width
        for s, n in enumerate(counts):
            planes = width * 2 ** s
            blocks = []
            for i in range(n):
                blocks.append(DMPreActBlock(in_planes, planes, 2 if (s > 0 and i == 0) else 1, activation))
                in_planes = planes
            setattr(self, f"layer_{s}", nn.Sequential(*blocks))
        self.batchnorm = nn.BatchNorm2d(in_planes)
        self.relu = dm_activation(activation)
        self.logits = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.conv_2d((x - self.mean) / self.std)
        out = self.layer_3(self.layer_2(self.layer_1(self.layer_0(out))))
        out = F.avg_pool2d(self.relu(self.batchnorm(out)), 4)     # 4x4 maps of 32x32 inputs
        return self.logits(out.flatten(1))


# -- RobustBench's own PreActResNet-18 (model zoo resnet.py) ----------------------------------
class ZooPreActBlock(PreActBlock):
    """Pre-activation block whose 1x1 shortcut conv sees the raw input x (RobustBench default)."""

    shortcut_from_input = True


class ZooPreActResNet18(nn.Module):
    def __init__(self, num_classes=10, bn_before_fc=False):
        super().__init__()
        self.in_planes = 64
        self.bn_before_fc = bn_before_fc
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        layers = []
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            blocks = []
            for s in (stride, 1):
                blocks.append(ZooPreActBlock(self.in_planes, planes, s))
                self.in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        if bn_before_fc:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.bn_before_fc:
            out = F.relu(self.bn(out))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


# -- Pang et al. 2020's normalised WideResNet -------------------------------------------------
class BoostingWideResNet(WideResNet):
    """WideResNet with ``fc`` bias off and a cosine head: normalize(features) @ normalize(W).T."""

    def __init__(self, depth=34, width=20, num_classes=10, sub_block1=True):
        super().__init__(depth, width, num_classes=num_classes, sub_block1=sub_block1, bias_last=False)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8).flatten(1)
        return F.linear(F.normalize(out, p=2, dim=1), F.normalize(self.fc.weight, p=2, dim=1))


# -- Huang et al. 2021 / 2022 per-stage WideResNets -------------------------------------------
class A4Block(nn.Module):
    """robust_resnet.PreActBasicBlock: act(bn1) -> conv1 -> act(bn2) -> conv2, shortcut.0 (1x1) of
    the activated input where the shape changes."""

    def __init__(self, in_planes, planes, stride, activation):
        super().__init__()
        self.act = dm_activation(activation)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, padding=0, bias=False))

    def forward(self, x):
        out = self.act(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(self.act(self.bn2(self.conv1(out))))
        return out + shortcut


class _A4Stage(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride, activation):
        super().__init__()
        self.layer = nn.Sequential(*[A4Block(in_planes if i == 0 else out_planes, out_planes,
                                             stride if i == 0 else 1, activation) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class RobustWideResNet(nn.Module):
    """``layout="2021"``: RobustWideResNet (WrnBlock stages, ``bn1``, ReLU); ``"a4"``: WRN-A4's
    layout (A4Block stages, final ``norm1``, ``activation`` "relu" or "silu")."""

    def __init__(self, channels=(16, 160, 320, 640), depths=(5, 5, 5), strides=(1, 2, 2), num_classes=10,
                 layout="2021", activation="relu"):
        super().__init__()
        self.layout = layout
        self.stem_conv = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)
        if layout == "2021":
            self.blocks = nn.ModuleList([NetworkBlock(n, channels[i], channels[i + 1], s)
                                         for i, (n, s) in enumerate(zip(depths, strides))])
            self.bn1 = nn.BatchNorm2d(channels[-1])
            self.act1 = nn.ReLU()
        else:
            self.blocks = nn.ModuleList([_A4Stage(n, channels[i], channels[i + 1], s, activation)
                                         for i, (n, s) in enumerate(zip(depths, strides))])
            self.norm1 = nn.BatchNorm2d(channels[-1])
            self.act1 = dm_activation(activation)
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x):
        out = self.stem_conv(x)
        for block in self.blocks:
            out = block(out)
        out = self.act1(self.bn1(out) if self.layout == "2021" else self.norm1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


# -- normalisation wrapper ---------------------------------------------------------------------
class Normalized(nn.Module):
    """``model((x - mu) / sigma)`` with ``mu``/``sigma`` buffers of shape [1, C, 1, 1]."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("sigma", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.model = model

    def forward(self, x):
        return self.model((x - self.mu) / self.sigma)


def randomize_(model: nn.Module, calibration: torch.Tensor | None = None, seed: int = 0,
               branch_scale: float = 0.3) -> nn.Module:
    """Random weights with trained-network-like batch norm; returns the model in eval mode.

    Conv/linear weights are He-normal; BN scale/bias are random (scale in [0.5, 1.5]). BN running
    statistics are then set from ``calibration`` (NCHW inputs: one train-mode pass with cumulative
    averaging, as "recalibrating BN" does), so that each BN roughly normalises, as in a trained
    network, and the logits stay O(10) even for WRN-34-10; without ``calibration`` they are random
    (mean ~ N(0, 0.1), var in [0.5, 1.5]). Every BN tensor differs from its default, so a wrong
    mapping of any of them shows up in the logits.

    The last layer of every residual branch (``conv2`` of pre-activation blocks, the last BN's
    scale of post-activation blocks) is multiplied by ``branch_scale``, as trained residual
    networks have branches that are small next to the identity. Without it, a random BN-calibrated
    ReLU network is chaotic: float32 rounding alone grows ~1.5x per block, and two correct
    float32 implementations of a random ResNet-50 differ by ~1e-4 (both vs float64; measured).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / m.in_features) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
        for m in model.modules():
            if isinstance(m, (PreActBlock, WrnBlock, A4Block)):
                m.conv2.weight.mul_(branch_scale)
            elif isinstance(m, DMWideBlock):
                m.conv_1.weight.mul_(branch_scale)
            elif isinstance(m, DMPreActBlock):
                m.conv_2d_2.weight.mul_(branch_scale)
            elif isinstance(m, (TvBasicBlock, KlBasicBlock)):
                m.bn2.weight.mul_(branch_scale)
            elif isinstance(m, TvBottleneck):
                m.bn3.weight.mul_(branch_scale)
        if calibration is not None:
            bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None                    # cumulative average over the calibration pass
            model.train()
            model(calibration)
            for m in bns:
                m.momentum = 0.1
                # a channel that is (almost) never active has variance ~0, and BN would multiply
                # float32 rounding noise by up to 1/sqrt(eps) ~ 300: floor it as trained nets rarely hit it
                m.running_var.clamp_(min=0.05)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.num_batches_tracked.fill_(7)
    return model.eval()


class PerImageStandardized(nn.Module):
    """``model((x - mean) / max(std, 1/sqrt(n)))`` per image (Ding et al. 2020's MMA wrapper;
    unbiased std over C, H, W as ``torch.Tensor.std``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        floor = torch.ones_like(std) / (x.shape[1] * x.shape[2] * x.shape[3]) ** 0.5
        return self.model((x - mu) / torch.max(std, floor))
