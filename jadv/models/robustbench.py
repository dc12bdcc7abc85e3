"""RobustBench's CIFAR-10 / CIFAR-100 model zoo as jadv reads it: names -> (arch, kwargs, mean/std).

RobustBench (Croce et al. 2021, https://github.com/RobustBench/robustbench) serves its leaderboard
models as PyTorch checkpoints whose architecture is a Python entry in
``robustbench/model_zoo/cifar10.py`` / ``cifar100.py`` (a class and its constructor arguments,
the input normalisation often hidden in a ``forward``). This module records, for every CIFAR-10
and CIFAR-100 L-inf and L2 entry, either how :func:`jadv.models.from_torch` converts it
(:class:`ZooEntry`: the ``arch``, the options a state dict does not record, the mean/std, the
model size the checkpoint must convert to) or why jadv cannot (:data:`UNSUPPORTED`). The table
was written from the model zoo at RobustBench commit 78fcc9e (2025-03-31): CIFAR-10 L-inf 76
entries (64 convert), CIFAR-10 L2 21 (20), CIFAR-100 L-inf 38 (31); the 73-entry CIFAR-10 L-inf
leaderboard of mid-2024 (commit 91089a2) has 62 convertible entries. RobustBench has no CIFAR-100
L2 track.

Usage (the checkpoint file is what ``robustbench.utils.load_model`` downloads into
``models/cifar10/Linf/<name>.pt``; this machine-independent table needs no internet)::

    imported = jadv.models.robustbench.load("Carmon2019Unlabeled", "models/cifar10/Linf/Carmon2019Unlabeled.pt")
    logits = imported.logits_fn()(x)          # x float32 [B, 32, 32, 3] in [0, 1] -> [B, 10]

or ``python experiments/import_model.py --robustbench Carmon2019Unlabeled --checkpoint FILE --workdir DIR``.

The table holds facts about the zoo (names, architectures, sizes, normalisation constants), not
its code. Entries not tested here against the real checkpoints (no internet on the machines this
was written on): every architecture is tested against own PyTorch definitions with random
weights (tests/test_from_torch.py), and :func:`load` checks that a checkpoint converts to the
size the zoo says (a WRN-34-20 file under a WRN-28-10 name is an error).
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
from typing import Any, Mapping

from jadv.models.registry import get as _get_model

_ft = importlib.import_module("jadv.models.from_torch")     # the module (the function shadows its name)

# RobustBench commit the table follows
ROBUSTBENCH_COMMIT = "78fcc9e"
DATASETS = ("cifar10", "cifar100")
THREAT_MODELS = ("Linf", "L2")

# input normalisation constants the zoo uses (robustbench/model_zoo/cifar10.py, cifar100.py,
# architectures/dm_wide_resnet.py), in [0, 1] pixel units
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
CIFAR10_ENGSTROM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR10_AUGUSTIN = ((0.4913997551666284, 0.48215855929893703, 0.4465309133731618),
                    (0.24703225141799082, 0.24348516474564, 0.26158783926049628))
CIFAR10_RONY = ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
CIFAR100_DM = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
CIFAR100_LONG = ((0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
                 (0.2673342858792401, 0.2564384629170883, 0.27615047132568404))
CIFAR100_CHEN = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))               # x -> 2x - 1


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One convertible RobustBench model.

    Attributes:
      name: the RobustBench model name (``robustbench.utils.load_model(model_name=...)``).
      dataset: "cifar10" or "cifar100".
      threat_model: "Linf" or "L2".
      arch: the :func:`jadv.models.from_torch` arch.
      expect: registry kwargs the conversion must produce (the zoo's depth/width/..., and
        ``num_classes``); :func:`load` refuses a checkpoint of another size.
      mean, std: the model's input normalisation in [0, 1] pixel units (None: raw pixels).
      options: :func:`jadv.models.from_torch` keyword options the state dict does not record
        (``activation``, ``shortcut_from``, ``head``).
      model_kwargs: fields of the jadv model that hold no variables, set after conversion
        (``per_image_standardize`` for Ding et al. 2020's MMA model).
      checkpoint_key: the key of the checkpoint dict that holds the weights where it is not one
        from_torch unwraps by itself (``"last"`` for Andriushchenko2020Understanding, as
        RobustBench's loader takes).
      source: the RobustBench class the entry uses.
    """

    name: str
    dataset: str
    threat_model: str
    arch: str
    expect: Mapping[str, Any]
    mean: tuple | None = None
    std: tuple | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    checkpoint_key: str | None = None
    source: str = ""

    @property
    def registry_name(self) -> str:
        """The jadv registry name the conversion produces (``jadv.models.get(name, **kwargs)``)."""
        if self.arch in _ft.PREACT_ARCHS:
            return "preact_resnet"
        if self.arch in _ft.RESNET_ARCHS:
            return "resnet"
        if self.arch in _ft.WRN_ARCHS:
            return "wide_resnet"
        return self.arch


# -- entry builders ------------------------------------------------------------------------------
def _classes(dataset: str) -> int:
    return {"cifar10": 10, "cifar100": 100}[dataset]


def _wrn(depth, width, norm=None, *, source="WideResNet", head=None, **model_kwargs):
    def make(name, dataset, threat):
        options = {"head": head} if head else {}
        expect = {"depth": depth, "width": width, "num_classes": _classes(dataset)}
        if head:
            expect["head"] = head
        mean, std = norm if norm else (None, None)
        return ZooEntry(name, dataset, threat, "wide_resnet", expect, mean, std, options, model_kwargs,
                        source=source)
    return make


def _dm(depth, width, *, source="DMWideResNet"):
    def make(name, dataset, threat):
        mean, std = CIFAR10 if dataset == "cifar10" else CIFAR100_DM
        return ZooEntry(name, dataset, threat, "dm_wide_resnet",
                        {"depth": depth, "width": width, "activation": "swish", "num_classes": _classes(dataset)},
                        mean, std, {"activation": "swish"}, source=source)
    return make


def _dm_preact(*, source="DMPreActResNet"):
    def make(name, dataset, threat):
        mean, std = CIFAR10 if dataset == "cifar10" else CIFAR100_DM
        return ZooEntry(name, dataset, threat, "dm_preact_resnet",
                        {"depth": 18, "width": 64, "activation": "swish", "num_classes": _classes(dataset)},
                        mean, std, {"activation": "swish"}, source=source)
    return make


def _preact18(norm=None, *, shortcut_from, final_norm, checkpoint_key=None, source="PreActResNet"):
    def make(name, dataset, threat):
        mean, std = norm if norm else (None, None)
        return ZooEntry(name, dataset, threat, "preact_resnet18",
                        {"depth": 18, "width": 64, "shortcut_from": shortcut_from, "final_norm": final_norm,
                         "num_classes": _classes(dataset)},
                        mean, std, {"shortcut_from": shortcut_from}, checkpoint_key=checkpoint_key, source=source)
    return make


def _resnet(depth, norm=None, *, source):
    def make(name, dataset, threat):
        mean, std = norm if norm else (None, None)
        return ZooEntry(name, dataset, threat, f"resnet{depth}",
                        {"depth": depth, "width": 64, "stem": "cifar", "num_classes": _classes(dataset)},
                        mean, std, source=source)
    return make


def _robust_wrn(channels, depths, activation, norm=None, *, source):
    def make(name, dataset, threat):
        mean, std = norm if norm else (None, None)
        return ZooEntry(name, dataset, threat, "robust_wide_resnet",
                        {"channels": tuple(channels), "depths": tuple(depths), "strides": (1, 2, 2),
                         "activation": activation, "num_classes": _classes(dataset)},
                        mean, std, {"activation": activation}, source=source)
    return make


# shorthands of the zoo's most common entries
_W28_10, _W34_10, _W34_20 = _wrn(28, 10), _wrn(34, 10), _wrn(34, 20)

# -- the table: (dataset, threat model) -> {name: builder or unsupported reason} ------------------------
# In the zoo's order. A str value is the reason jadv cannot read the entry.
_XCIT = "XCiT vision transformer (timm's xcit_*_12); jadv has no transformer models"
_MIXED = ("mixed classifier: a standard and a robust network combined by a (learned) mixing policy; jadv "
          "converts single networks")
_MEANSPARSE = ("MeanSparse: per-channel sparsification operators inserted after the activations of {}; "
               "not a jadv layer")
_RAWRN = ("RaWideResNet of Peng et al. 2023 (robust-architecture WRN-70-16: configurable stem, "
          "squeeze-and-excitation bottleneck stages); no jadv equivalent")

_ZOO: dict[tuple[str, str], dict[str, Any]] = {
    ("cifar10", "Linf"): {
        "Andriushchenko2020Understanding": _preact18(shortcut_from="input", final_norm=False, checkpoint_key="last"),
        "Carmon2019Unlabeled": _W28_10,
        "Sehwag2020Hydra": _W28_10,
        "Wang2020Improving": _W28_10,
        "Hendrycks2019Using": _wrn(28, 10, HALF, source="Hendrycks2019UsingNet (x -> 2x - 1)"),
        "Rice2020Overfitting": _wrn(34, 20, CIFAR10, source="Rice2020OverfittingNet"),
        "Zhang2019Theoretically": _W34_10,
        "Engstrom2019Robustness": _resnet(50, CIFAR10_ENGSTROM, source="Engstrom2019RobustnessNet (ResNet-50)"),
        "Chen2020Adversarial": ("ensemble of three ResNet-50s with pre-activated bottlenecks whose output is the "
                                "mean of their softmax probabilities, not logits"),
        "Huang2020Self": _W34_10,
        "Pang2020Boosting": _wrn(34, 20, CIFAR10, head="cosine", source="BoostingWideResNet (normalised head)"),
        "Wong2020Fast": _preact18(CIFAR10, shortcut_from="input", final_norm=False, source="Wong2020FastNet"),
        "Ding2020MMA": _wrn(28, 4, source="Ding2020MMANet (per-image standardisation)", per_image_standardize=True),
        "Zhang2019You": _W34_10,
        "Zhang2020Attacks": _W34_10,
        "Wu2020Adversarial_extra": _W28_10,
        "Wu2020Adversarial": _W34_10,
        "Gowal2020Uncovering_70_16": _dm(70, 16),
        "Gowal2020Uncovering_70_16_extra": _dm(70, 16),
        "Gowal2020Uncovering_34_20": _dm(34, 20),
        "Gowal2020Uncovering_28_10_extra": _dm(28, 10),
        "Sehwag2021Proxy": _W34_10,
        "Sehwag2021Proxy_R18": _resnet(18, source="ResNet18"),
        "Sehwag2021Proxy_ResNest152": "ResNeSt-152 (split-attention bottlenecks); no jadv equivalent",
        "Sitawarin2020Improving": _W34_10,
        "Chen2020Efficient": _wrn(34, 10, CIFAR10, source="Chen2020EfficientNet"),
        "Cui2020Learnable_34_20": _W34_20,
        "Cui2020Learnable_34_10": _W34_10,
        "Zhang2020Geometry": _W28_10,
        "Rebuffi2021Fixing_28_10_cutmix_ddpm": _dm(28, 10),
        "Rebuffi2021Fixing_106_16_cutmix_ddpm": _dm(106, 16),
        "Rebuffi2021Fixing_70_16_cutmix_ddpm": _dm(70, 16),
        "Rebuffi2021Fixing_70_16_cutmix_extra": _dm(70, 16),
        "Sridhar2021Robust": _W28_10,
        "Sridhar2021Robust_34_15": _wrn(34, 15),
        "Rebuffi2021Fixing_R18_ddpm": _dm_preact(),
        "Rade2021Helper_R18_extra": _dm_preact(),
        "Rade2021Helper_R18_ddpm": _dm_preact(),
        "Rade2021Helper_extra": _dm(34, 10),
        "Rade2021Helper_ddpm": _dm(28, 10),
        "Huang2021Exploring": _robust_wrn((16, 320, 640, 512), (5, 5, 5), "relu", source="RobustWideResNet"),
        "Huang2021Exploring_ema": _robust_wrn((16, 320, 640, 512), (5, 5, 5), "relu", source="RobustWideResNet"),
        "Addepalli2021Towards_RN18": _resnet(18, source="ResNet18"),
        "Addepalli2021Towards_WRN34": _W34_10,
        "Gowal2021Improving_70_16_ddpm_100m": _dm(70, 16),
        "Dai2021Parameterizing": ("WideResNet-28-10 with PSSiLU, a parametric activation with learned per-layer "
                                  "parameters; not a jadv activation"),
        "Gowal2021Improving_28_10_ddpm_100m": _dm(28, 10),
        "Gowal2021Improving_R18_ddpm_100m": _dm_preact(),
        "Chen2021LTD_WRN34_10": _W34_10,
        "Chen2021LTD_WRN34_20": _W34_20,
        "Standard": _W28_10,
        "Kang2021Stable": ("SODEF: a DMWideResNet-70-16 feature extractor followed by a neural-ODE block and an "
                           "orthogonal MLP head; jadv has no ODE layers"),
        "Jia2022LAS-AT_34_10": _W34_10,
        "Jia2022LAS-AT_70_16": _wrn(70, 16),
        "Pang2022Robustness_WRN28_10": _dm(28, 10),
        "Pang2022Robustness_WRN70_16": _dm(70, 16),
        "Addepalli2022Efficient_RN18": _resnet(18, source="ResNet18"),
        "Addepalli2022Efficient_WRN_34_10": _W34_10,
        "Debenedetti2022Light_XCiT-S12": _XCIT,
        "Debenedetti2022Light_XCiT-M12": _XCIT,
        "Debenedetti2022Light_XCiT-L12": _XCIT,
        "Huang2022Revisiting_WRN-A4": _robust_wrn((16, 160, 448, 384), (27, 28, 13), "swish", CIFAR10,
                                                  source="robust_resnet.PreActResNet WRN-A4 (SiLU)"),
        "Wang2023Better_WRN-28-10": _dm(28, 10),
        "Wang2023Better_WRN-70-16": _dm(70, 16),
        "Xu2023Exploring_WRN-28-10": _dm(28, 10),
        "Cui2023Decoupled_WRN-28-10": _dm(28, 10),
        "Cui2023Decoupled_WRN-34-10": _W34_10,
        "Bai2023Improving_edm": _MIXED,
        "Peng2023Robust": _RAWRN,
        "Bai2024MixedNUTS": _MIXED,
        "Chen2024Data_WRN_34_10": _W34_10,
        "Chen2024Data_WRN_34_20": _W34_20,
        "Amini2024MeanSparse_Ra_WRN_70_16": _MEANSPARSE.format("a RaWideResNet-70-16"),
        "Amini2024MeanSparse_S-WRN-94-16": _MEANSPARSE.format("a WideResNet-94-16"),
        "Bartoldson2024Adversarial_WRN-94-16": _dm(94, 16),
        "Bartoldson2024Adversarial_WRN-82-8": _dm(82, 8),
    },
    ("cifar10", "L2"): {
        "Augustin2020Adversarial": _resnet(50, CIFAR10_AUGUSTIN, source="Augustin2020AdversarialNet (ResNet-50)"),
        "Engstrom2019Robustness": _resnet(50, CIFAR10_ENGSTROM, source="Engstrom2019RobustnessNet (ResNet-50)"),
        "Rice2020Overfitting": _preact18(CIFAR10, shortcut_from="activation", final_norm=True,
                                         source="Rice2020OverfittingNetL2 (PreActBlockV2, bn_before_fc)"),
        "Rony2019Decoupling": _wrn(28, 10, CIFAR10_RONY, source="Rony2019DecouplingNet"),
        "Standard": _W28_10,
        "Ding2020MMA": _wrn(28, 4, source="Ding2020MMANet (per-image standardisation)", per_image_standardize=True),
        "Wu2020Adversarial": _W34_10,
        "Gowal2020Uncovering": _dm(70, 16),
        "Gowal2020Uncovering_extra": _dm(70, 16),
        "Sehwag2021Proxy": _W34_10,
        "Sehwag2021Proxy_R18": _resnet(18, source="ResNet18"),
        "Rebuffi2021Fixing_70_16_cutmix_ddpm": _dm(70, 16),
        "Rebuffi2021Fixing_28_10_cutmix_ddpm": _dm(28, 10),
        "Rebuffi2021Fixing_70_16_cutmix_extra": _dm(70, 16),
        "Augustin2020Adversarial_34_10": _wrn(34, 10, CIFAR10_AUGUSTIN, source="Augustin2020AdversarialWideNet"),
        "Augustin2020Adversarial_34_10_extra": _wrn(34, 10, CIFAR10_AUGUSTIN, source="Augustin2020AdversarialWideNet"),
        "Rebuffi2021Fixing_R18_cutmix_ddpm": _dm_preact(),
        "Rade2021Helper_R18_ddpm": _dm_preact(),
        "Wang2023Better_WRN-28-10": _dm(28, 10),
        "Wang2023Better_WRN-70-16": _dm(70, 16),
        "Amini2024MeanSparse_S-WRN-70-16": _MEANSPARSE.format("a WideResNet-70-16"),
    },
    ("cifar100", "Linf"): {
        "Gowal2020Uncovering": _dm(70, 16),
        "Gowal2020Uncovering_extra": _dm(70, 16),
        "Cui2020Learnable_34_20_LBGAT6": _W34_20,
        "Cui2020Learnable_34_10_LBGAT0": _W34_10,
        "Cui2020Learnable_34_10_LBGAT6": _W34_10,
        "Chen2020Efficient": _wrn(34, 10, CIFAR100_CHEN, source="Chen2020EfficientNet"),
        "Wu2020Adversarial": _wrn(34, 10, CIFAR100_LONG, source="Wu2020AdversarialNet"),
        "Sehwag2021Proxy": _W34_10,
        "Sitawarin2020Improving": _W34_10,
        "Hendrycks2019Using": _wrn(28, 10, HALF, source="Hendrycks2019UsingNet (x -> 2x - 1)"),
        "Rice2020Overfitting": _preact18(CIFAR100_LONG, shortcut_from="activation", final_norm=True,
                                         source="Rice2020OverfittingNet (out_shortcut, bn_before_fc)"),
        "Rebuffi2021Fixing_70_16_cutmix_ddpm": _dm(70, 16),
        "Rebuffi2021Fixing_28_10_cutmix_ddpm": _dm(28, 10),
        "Rebuffi2021Fixing_R18_ddpm": _dm_preact(),
        "Rade2021Helper_R18_ddpm": _dm_preact(),
        "Addepalli2021Towards_PARN18": _preact18(shortcut_from="activation", final_norm=True,
                                                 source="PreActResNet (PreActBlockV2, bn_before_fc)"),
        "Addepalli2021Towards_WRN34": _W34_10,
        "Chen2021LTD_WRN34_10": _W34_10,
        "Pang2022Robustness_WRN28_10": _dm(28, 10),
        "Pang2022Robustness_WRN70_16": _dm(70, 16),
        "Jia2022LAS-AT_34_10": _W34_10,
        "Jia2022LAS-AT_34_20": _W34_20,
        "Addepalli2022Efficient_RN18": _resnet(18, source="ResNet (BasicBlock, [2, 2, 2, 2])"),
        "Addepalli2022Efficient_WRN_34_10": _W34_10,
        "Debenedetti2022Light_XCiT-S12": _XCIT,
        "Debenedetti2022Light_XCiT-M12": _XCIT,
        "Debenedetti2022Light_XCiT-L12": _XCIT,
        "Cui2020Learnable_34_10_LBGAT9_eps_8_255": _W34_10,
        "Wang2023Better_WRN-28-10": _dm(28, 10),
        "Wang2023Better_WRN-70-16": _dm(70, 16),
        "Bai2023Improving_edm": _MIXED,
        "Bai2023Improving_trades": _MIXED,
        "Cui2023Decoupled_WRN-28-10": _dm(28, 10),
        "Cui2023Decoupled_WRN-34-10": _W34_10,
        "Cui2023Decoupled_WRN-34-10_autoaug": _W34_10,
        "Bai2024MixedNUTS": _MIXED,
        "Chen2024Data_WRN_34_10": _W34_10,
        "Amini2024MeanSparse_S-WRN-70-16": _MEANSPARSE.format("a WideResNet-70-16"),
    },
}

ENTRIES: dict[tuple[str, str, str], ZooEntry] = {}
UNSUPPORTED: dict[tuple[str, str, str], str] = {}
for (_dataset, _threat), _table in _ZOO.items():
    for _name, _value in _table.items():
        if isinstance(_value, str):
            UNSUPPORTED[(_dataset, _threat, _name)] = _value
        else:
            ENTRIES[(_dataset, _threat, _name)] = _value(_name, _dataset, _threat)

# the CIFAR-10 L-inf entries the mid-2024 73-model leaderboard (RobustBench commit 91089a2) had and
# the current zoo does not; it had neither the two Bartoldson2024 nor the two Amini2024MeanSparse_*
# entries of today (both unsupported / both convertible respectively: see the table)
LEGACY_CIFAR10_LINF = {"Amini2024MeanSparse": _MEANSPARSE.format("a RaWideResNet-70-16")}
_LATER_CIFAR10_LINF = ("Amini2024MeanSparse_Ra_WRN_70_16", "Amini2024MeanSparse_S-WRN-94-16",
                       "Bartoldson2024Adversarial_WRN-94-16", "Bartoldson2024Adversarial_WRN-82-8")


def _check_track(dataset: str, threat_model: str) -> tuple[str, str]:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; RobustBench tracks jadv reads: {', '.join(DATASETS)}")
    threat = {"linf": "Linf", "l2": "L2"}.get(str(threat_model).lower())
    if threat is None:
        raise ValueError(f"unknown threat model {threat_model!r}; allowed: {', '.join(THREAT_MODELS)}")
    if (dataset, threat) not in _ZOO:
        raise ValueError(f"RobustBench has no {dataset} {threat} track (tracks: "
                         f"{', '.join(f'{d} {t}' for d, t in _ZOO)})")
    return dataset, threat


def names(dataset: str = "cifar10", threat_model: str = "Linf", *, supported_only: bool = False) -> tuple[str, ...]:
    """The RobustBench model names of one track, in the zoo's order (only convertible ones with
    ``supported_only``)."""
    dataset, threat = _check_track(dataset, threat_model)
    return tuple(n for n, v in _ZOO[(dataset, threat)].items() if not (supported_only and isinstance(v, str)))


def coverage(dataset: str = "cifar10", threat_model: str = "Linf") -> dict:
    """``{"total": n, "convertible": k, "unsupported": {name: reason}}`` for one track."""
    dataset, threat = _check_track(dataset, threat_model)
    table = _ZOO[(dataset, threat)]
    unsupported = {n: v for n, v in table.items() if isinstance(v, str)}
    return {"total": len(table), "convertible": len(table) - len(unsupported), "unsupported": unsupported}


def entry(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> ZooEntry:
    """The :class:`ZooEntry` of a RobustBench model name.

    Raises:
      ValueError: an unknown name (the message lists close names of the track, and the tracks
        that do hold the name), or a name jadv cannot convert (the message says why).
    """
    dataset, threat = _check_track(dataset, threat_model)
    key = (dataset, threat, name)
    if key in ENTRIES:
        return ENTRIES[key]
    if key in UNSUPPORTED:
        raise ValueError(f"RobustBench's {dataset} {threat} model {name!r} is not supported by jadv.models.from_torch: "
                         f"{UNSUPPORTED[key]}")
    if dataset == "cifar10" and threat == "Linf" and name in LEGACY_CIFAR10_LINF:
        raise ValueError(f"{name!r} was a cifar10 Linf RobustBench entry before 2024-11 (now "
                         f"Amini2024MeanSparse_Ra_WRN_70_16); not supported: {LEGACY_CIFAR10_LINF[name]}")
    pool = list(_ZOO[(dataset, threat)])
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
    if not close:                                     # e.g. "Carmon2019" -> names starting like it
        close = [n for n in pool if n.lower().startswith(name.lower()[:6])][:5]
    elsewhere = [f"{d} {t}" for (d, t), table in _ZOO.items() if name in table and (d, t) != (dataset, threat)]
    msg = f"unknown RobustBench {dataset} {threat} model {name!r}"
    if elsewhere:
        msg += f" (it is a {' and '.join(elsewhere)} model: pass that dataset/threat model)"
    msg += f"; close names: {', '.join(close)}" if close else f"; {len(pool)} names, e.g. {', '.join(pool[:4])}"
    msg += " (jadv.models.robustbench.names() lists them all)"
    raise ValueError(msg)


def _weights(checkpoint, e: ZooEntry) -> Mapping:
    sd = _ft.load_state_dict(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    if not isinstance(sd, Mapping):
        raise TypeError(f"checkpoint must be a file path or a state dict, got {type(sd).__name__}")
    if e.checkpoint_key is not None and isinstance(sd.get(e.checkpoint_key), Mapping):
        sd = sd[e.checkpoint_key]
    return sd


def load(name: str, checkpoint, *, dataset: str = "cifar10", threat_model: str = "Linf",
         dtype: Any = None) -> _ft.ImportedModel:
    """Convert a RobustBench checkpoint of model ``name`` into a jadv model.

    Args:
      name: the RobustBench model name (see :func:`names`).
      checkpoint: the checkpoint file (as ``robustbench.utils.load_model`` downloads it; read with
        ``torch.load(weights_only=True)`` or safetensors) or an already loaded state dict.
      dataset, threat_model: the RobustBench track ("cifar10"/"cifar100", "Linf"/"L2").
      dtype: computation dtype of the jadv model (default float32).

    Returns:
      :class:`jadv.models.ImportedModel`: ``model.apply(variables, x, train=False)`` maps x
      float32 [B, 32, 32, 3] in [0, 1] to logits [B, 10 or 100], with the entry's input
      normalisation inside the model.

    Raises:
      ValueError: unknown or unsupported name (see :func:`entry`); a checkpoint that does not
        convert to the entry's architecture and size; normalisation buffers that disagree with
        the zoo's mean/std; and every error of :func:`jadv.models.from_torch`.
    """
    return convert(entry(name, dataset, threat_model), checkpoint, dtype=dtype)


def convert(e: ZooEntry, checkpoint, *, dtype: Any = None) -> _ft.ImportedModel:
    """:func:`load` for a :class:`ZooEntry` (e.g. one of :data:`ENTRIES`, or a copy with another
    ``expect`` for a smaller checkpoint of the same layout)."""
    kwargs = {} if dtype is None else {"dtype": dtype}
    imported = _ft.from_torch(_weights(checkpoint, e), e.arch, mean=e.mean, std=e.std, **e.options, **kwargs)
    wrong = {k: (imported.kwargs.get(k), v) for k, v in e.expect.items() if imported.kwargs.get(k) != v}
    if wrong:
        got = ", ".join(f"{k}={g!r} (RobustBench: {w!r})" for k, (g, w) in wrong.items())
        raise ValueError(f"the checkpoint does not hold RobustBench's {e.name} ({e.source or e.arch}): it converts "
                         f"to {imported.name} with {got}")
    if not e.model_kwargs:
        return imported
    model_kwargs = {**imported.kwargs, **e.model_kwargs}
    model = _get_model(imported.name, **model_kwargs, **kwargs)
    return dataclasses.replace(imported, model=model, kwargs=model_kwargs)
