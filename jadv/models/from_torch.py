"""Import PyTorch checkpoints of the RobustBench architectures into jadv's Flax models.

``from_torch(state_dict, arch)`` maps a PyTorch ``state_dict`` onto the variables of the matching
jadv Linen model, so public robust checkpoints (RobustBench's model zoo, the ``robustness``
library's ImageNet ResNet-50s, Wong/Rice PreActResNet-18s, TRADES/MART WideResNets) can be
attacked and analysed with jadv. The converted model gives the same logits as the PyTorch model
in eval mode (tested to < 1e-4 max abs difference in float32 for every architecture below).

Architectures (``arch``) and the PyTorch state-dict layouts they accept:

- ``"preact_resnet18"`` / ``"preact_resnet34"``: pre-activation ResNet of Wong et al. 2020 /
  Rice et al. 2020 / RobustBench: ``conv1``, ``layer{1-4}.{i}.bn1/conv1/bn2/conv2/shortcut.0``,
  ``bn`` (optional: RobustBench's ``PreActResNet`` without ``bn_before_fc`` has no final BN;
  read from the keys), ``linear``. Which tensor the shortcut convs see is not in the state dict:
  ``shortcut_from="activation"`` (default: Wong/Rice, RobustBench's ``PreActBlockV2`` and
  ``out_shortcut=True``) or ``"input"`` (RobustBench's ``PreActBlock`` with its default
  ``out_shortcut=False``: Andriushchenko2020Understanding, Wong2020Fast in the model zoo).
  -> :class:`jadv.models.PreActResNet`.
- ``"resnet18"`` / ``"resnet34"`` / ``"resnet50"`` / ``"resnet101"`` / ``"resnet152"``: ResNet
  with basic or bottleneck blocks (stride on the 3x3 conv, "v1.5"), in either naming:
  torchvision (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv1/bn1/.../downsample.0/downsample.1``,
  ``fc``; the ``robustness`` library's ImageNet models) or the CIFAR code of Kuang Liu used by
  RobustBench and many papers (``.../shortcut.0/shortcut.1``, ``linear``). The stem is read off
  ``conv1.weight``: 7x7 -> ImageNet stem (stride 2 + 3x3 max-pool), 3x3 -> CIFAR stem (stride 1,
  no pool). -> :class:`jadv.models.ResNet`.
- ``"wrn28_10"`` / ``"wrn34_10"`` / ``"wide_resnet"``: the WideResNet of Zagoruyko & Komodakis as
  written in TRADES/MART/RobustBench code: ``conv1``, ``block{1-3}.layer.{i}.bn1/conv1/bn2/conv2/
  convShortcut``, ``bn1``, ``fc``. ``"wide_resnet"`` infers depth and width from the keys
  (e.g. a tiny WRN-10-1); the named variants check that the checkpoint is that size.
  ``head="cosine"`` reads Pang et al. 2020's normalised head (RobustBench ``BoostingWideResNet``:
  features and ``fc.weight`` rows L2-normalised in the forward pass, no bias; not in the keys).
  -> :class:`jadv.models.WideResNet`.
- ``"robust_wide_resnet"``: the WideResNet with free per-stage channels and depths of Huang et
  al. 2021 ("Exploring architectural ingredients", RobustBench ``RobustWideResNet``: ``stem_conv``,
  ``blocks.{s}.layer.{i}.bn1/conv1/bn2/conv2/convShortcut``, ``bn1``, ``fc``) and Huang et al.
  2022 ("Revisiting residual networks", RobustBench ``robust_resnet`` WRN-A4: the same with
  ``shortcut.0`` and a final ``norm1``). Channels and depths per stage are read from the keys,
  strides are (1, 2, 2); ``activation="relu"`` (default, 2021) or ``"swish"`` (WRN-A4's SiLU).
  -> :class:`jadv.models.RobustWideResNet` (stem ``conv1``).
- ``"dm_wide_resnet"``: DeepMind's WideResNet of Gowal et al. 2020 ("Uncovering the limits of
  adversarial training", WRN-28-10/34-20/70-16 with Swish) and Rebuffi et al. 2021 ("Fixing data
  augmentation to improve adversarial robustness", WRN-28-10/70-16/106-16), RobustBench's
  ``DMWideResNet``: ``init_conv``, ``layer.{0-2}.block.{i}.batchnorm_0/conv_0/batchnorm_1/conv_1/
  shortcut``, ``batchnorm``, ``logits``. Depth (6n + 4) and width are read from the keys.
  -> :class:`jadv.models.DMWideResNet` (its stem is ``conv1``, as in every jadv model).
- ``"dm_preact_resnet"``: DeepMind's PreActResNet-18/34 (Rebuffi et al. 2021), RobustBench's
  ``DMPreActResNet``: ``conv_2d``, ``layer_{0-3}.{i}.batchnorm_0/conv_2d_1/batchnorm_1/conv_2d_2/
  shortcut`` (a 3x3 conv), ``batchnorm``, ``logits``. Depth (18 or 34, from the block counts) and
  the stem width (64 in RobustBench) are read from the keys. -> :class:`jadv.models.DMPreActResNet`
  (stem ``conv1``).

  Both DeepMind architectures pad strided convolutions on the bottom/right only and take an
  ``activation`` that a state dict does not record: ``from_torch(..., activation="swish")`` (the
  default for these archs; ``"silu"`` is the same function, as RobustBench's ``Swish`` and
  ``nn.SiLU``) or ``"relu"`` (the PyTorch class's own default, which no RobustBench entry uses).
  Their input normalisation is a non-persistent buffer (not in the state dict): unless ``mean=``/
  ``std=`` are given or ``mean``/``std`` buffers are in the state dict, the RobustBench model zoo's
  values are used: CIFAR-10's for a 10-class head, CIFAR-100's for a 100-class head (a 3-channel
  model with another class count needs ``mean=``/``std=``; pass ``mean=0, std=1`` for none).

Keys that are accepted and ignored (listed in :attr:`ImportedModel.ignored_keys`):
``*.num_batches_tracked`` (BN bookkeeping); ``sub_block1.*`` in WideResNets (the TRADES /
RobustBench WRN-34-10 code builds a ``sub_block1`` that its ``forward`` never uses, so it is
dead weight in the checkpoint); ``attacker.*`` (the ``robustness`` library stores a second copy
of the model inside its attacker). A missing final-layer bias (RobustBench ``bias_last=False``)
is set to zero. Any other missing or unknown key, or a shape that does not fit, raises a
``ValueError`` naming the keys.

Prefixes ``module.`` (``DataParallel``) and, once normalisation buffers are taken out, ``model.``
(wrappers that hold a normaliser and the network) are stripped.

Input normalisation. jadv models take images in [0, 1] and normalise inside. RobustBench-style
wrappers keep the per-channel mean/std as buffers; pairs named ``mu``/``sigma``,
``mean``/``std`` or ``new_mean``/``new_std`` (any common prefix, e.g.
``normalizer.new_mean``) with one value per input channel are recognised and used. Or pass
``mean=``/``std=``; an explicit value that disagrees with the buffers is a ``ValueError``.
Without either, the model sees the raw [0, 1] pixels (mean 0, std 1), as most RobustBench CIFAR
models expect (the DeepMind archs excepted: they get the model zoo's CIFAR-10/100 values, above).

Conversions: conv kernels OIHW -> HWIO, linear weights (out, in) -> (in, out), batch norm
``weight/bias/running_mean/running_var`` -> ``scale/bias/mean/var`` (epsilon 1e-5 and momentum
0.1 are jadv's defaults, see :mod:`jadv.models.norm`). All arrays become float32 (half-precision
checkpoints are upcast). A NaN or Inf in any converted tensor (weights, BN statistics,
normalisation buffers) is a ``ValueError`` naming the key.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jadv.models.dm_resnet import PREACT_BLOCKS, check_activation
from jadv.models.registry import get as _get_model
from jadv.models.resnet import HEADS as _HEADS
from jadv.models.resnet import PREACT_SHORTCUTS as _PREACT_SHORTCUTS
from jadv.models.registry import init_variables as _init_variables

PREACT_ARCHS = {"preact_resnet18": 18, "preact_resnet34": 34}
RESNET_ARCHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}
WRN_ARCHS = {"wrn28_10": (28, 10), "wrn34_10": (34, 10), "wide_resnet": None}
DM_ARCHS = {"dm_wide_resnet": "init_conv", "dm_preact_resnet": "conv_2d"}     # arch -> stem conv
ARCHS = (tuple(PREACT_ARCHS) + tuple(RESNET_ARCHS) + tuple(WRN_ARCHS) + tuple(DM_ARCHS)
         + ("robust_wide_resnet",))
# the PyTorch name of the stem conv (jadv's is always ``conv1``)
STEM_KEYS = {**DM_ARCHS, "robust_wide_resnet": "stem_conv"}
# archs whose activation a state dict does not record -> the default of ``activation=``
ACTIVATION_ARCHS = {"dm_wide_resnet": "swish", "dm_preact_resnet": "swish", "robust_wide_resnet": "relu"}

# the input normalisation RobustBench's model zoo gives its DMWideResNet / DMPreActResNet models
# (dm_wide_resnet.py CIFAR10_MEAN/STD, CIFAR100_MEAN/STD), by number of classes
DM_DEFAULT_NORMALIZATION = {
    10: ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_NORM_PAIRS = (("mu", "sigma"), ("mean", "std"), ("new_mean", "new_std"))
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")


@dataclasses.dataclass(frozen=True)
class ImportedModel:
    """A converted PyTorch model.

    Attributes:
      model: the jadv Linen module; ``model.apply(variables, x, train=False)`` maps
        x float32 [B, H, W, C] in [0, 1] to logits float32 [B, K].
      variables: ``{"params": ..., "batch_stats": ...}`` (float32 jax arrays).
      name: the jadv registry name (``jadv.models.get(name, **kwargs)`` rebuilds ``model``).
      kwargs: the registry keyword arguments (``num_classes``, ``mean``, ``std`` and the
        architecture's own, e.g. ``depth``, ``width``, ``stem``, ``activation``; not ``dtype``).
      ignored_keys: state-dict keys that were accepted but not used (see the module docstring).
      normalization_keys: the state-dict buffers the input mean/std were read from (or empty).
    """

    model: Any
    variables: dict
    name: str
    kwargs: dict
    ignored_keys: tuple = ()
    normalization_keys: tuple = ()

    def logits_fn(self):
        """Inference-mode ``x [B, H, W, C] -> logits [B, K]`` (running BN statistics)."""
        model, variables = self.model, self.variables
        return lambda x: model.apply(variables, x, train=False)


# -- array conversion ----------------------------------------------------------------------------
def _to_numpy(value, key: str) -> np.ndarray:
    """A torch tensor or array-like -> float32 numpy (torch bfloat16/float16 upcast first)."""
    if hasattr(value, "detach"):                                  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"state_dict[{key!r}] is not an array (got {type(value).__name__})")
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - finite.sum()) - n_nan
        where = tuple(int(i) for i in np.argwhere(~finite)[0]) if arr.ndim else ()
        raise ValueError(f"state_dict[{key!r}] (shape {arr.shape}) holds {n_nan} NaN and {n_inf} Inf values "
                         f"(first at index {where}); every weight and buffer must be finite: the checkpoint is "
                         "corrupt or its training diverged")
    return arr


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch conv weight [O, I, kh, kw] -> Flax kernel [kh, kw, I, O]."""
    return np.transpose(w, (2, 3, 1, 0))


def _dense_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch linear weight [out, in] -> Flax kernel [in, out]."""
    return np.transpose(w, (1, 0))


_BN_LEAVES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


# -- state-dict clean-up -------------------------------------------------------------------------
def load_state_dict(path: str) -> dict:
    """Read a PyTorch checkpoint file into a ``{key: array}`` state dict.

    ``.safetensors`` files are read with ``safetensors.numpy`` (no torch needed); anything else
    with ``torch.load(path, map_location="cpu", weights_only=True)`` (never unpickling arbitrary
    objects), which reads both the zip format of PyTorch >= 1.6 and the legacy pickle format of
    older checkpoints (``torch.save(..., _use_new_zipfile_serialization=False)``) with the same
    restricted unpickler (tensors, dicts/``OrderedDict``s, lists, numbers, strings; any other
    object, e.g. one whose unpickling would run code, is a ``ValueError``). A checkpoint that
    wraps the weights (``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state_dict": ...}``,
    ``{"net": ...}``) is unwrapped by :func:`from_torch`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file {path}")
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as err:
            raise ImportError("reading .safetensors needs the safetensors package: pip install safetensors") from err
        return dict(load_file(path))
    try:
        import torch
    except ImportError as err:
        raise ImportError("reading a PyTorch checkpoint needs torch (CPU build is enough): "
                          "pip install torch, or convert it to .safetensors") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:                                       # UnpicklingError and friends
        raise ValueError(f"could not load {path} with torch.load(weights_only=True): {err}") from err


def _is_array(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _unwrap(state_dict: Mapping) -> dict:
    """The dict of arrays inside a checkpoint (``{"state_dict": {...}, "epoch": 3}`` -> inner dict)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    sd = dict(state_dict)
    for _ in range(3):
        if sd and all(_is_array(v) for v in sd.values()):
            return sd
        inner = [k for k in _CONTAINER_KEYS if isinstance(sd.get(k), Mapping)]
        if not inner:
            break
        sd = dict(sd[inner[0]])
    bad = sorted(k for k, v in sd.items() if not _is_array(v))
    if not sd or bad:
        raise TypeError(f"state_dict must map names to tensors; not tensors: {bad[:10]} "
                        f"(a checkpoint holding the weights under one of {_CONTAINER_KEYS} is unwrapped)")
    return sd


def _strip_prefix(sd: dict, prefix: str) -> dict:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _take_normalization(sd: dict, channels: int) -> tuple[dict, tuple | None, tuple | None, list]:
    """Find and remove mean/std buffers; returns (rest, mean, std, keys used)."""
    found = []
    for key in sd:
        head, _, last = key.rpartition(".")
        for m_name, s_name in _NORM_PAIRS:
            partner = f"{head}.{s_name}" if head else s_name
            if last == m_name and partner in sd:
                found.append((key, partner))
    if not found:
        return sd, None, None, []
    if len(found) > 1:
        raise ValueError(f"several input-normalisation buffer pairs in the state_dict: {found}; "
                         "remove all but one or pass mean=/std= explicitly")
    mkey, skey = found[0]
    mean = _to_numpy(sd[mkey], mkey).reshape(-1)
    std = _to_numpy(sd[skey], skey).reshape(-1)
    for name, arr in ((mkey, mean), (skey, std)):
        if arr.size not in (1, channels):
            raise ValueError(f"normalisation buffer {name!r} has {arr.size} values; expected 1 or "
                             f"{channels} (one per input channel)")
    rest = {k: v for k, v in sd.items() if k not in (mkey, skey)}
    return rest, tuple(float(v) for v in mean), tuple(float(v) for v in std), [mkey, skey]


def _check_stats(name: str, given, found, channels: int) -> tuple | None:
    if given is not None:
        given = tuple(float(v) for v in np.ravel(np.asarray(given, np.float64)))
        if len(given) not in (1, channels):
            raise ValueError(f"{name} has {len(given)} values; expected 1 or {channels} (one per input channel)")
        if found is not None and not np.allclose(np.broadcast_to(given, (channels,)),
                                                 np.broadcast_to(found, (channels,)), rtol=1e-5, atol=1e-7):
            raise ValueError(f"{name}={given} disagrees with the normalisation buffer in the state_dict "
                             f"({found}); drop the argument or fix the checkpoint")
        return given
    return found


# -- per-architecture key mapping ----------------------------------------------------------------
def _layer_index(sd: dict, pattern: str) -> dict[int, set[int]]:
    """{stage: {block indices}} of keys matching ``pattern`` (groups: stage, block)."""
    out: dict[int, set[int]] = {}
    rx = re.compile(pattern)
    for k in sd:
        m = rx.match(k)
        if m:
            out.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return out


def _require(sd: dict, key: str, arch: str) -> np.ndarray:
    if key not in sd:
        raise ValueError(f"missing key {key!r} for arch {arch!r}: this does not look like a {arch} "
                         f"state_dict (first keys: {sorted(sd)[:8]})")
    return sd[key]


def _plan(sd: dict, arch: str, options: dict):
    """(registry name, kwargs, flax-module-path -> torch-prefix function, ignored key predicate).

    ``options``: the architecture choices a state dict does not record (``shortcut_from`` for the
    pre-activation ResNets, ``head`` for the WideResNets), already validated."""
    if arch in PREACT_ARCHS:
        conv1 = _require(sd, "conv1.weight", arch)
        kwargs = {"depth": PREACT_ARCHS[arch], "width": int(conv1.shape[0]),
                  "shortcut_from": options.get("shortcut_from") or "activation",
                  "final_norm": "bn.weight" in sd}

        def module(path):
            out = []
            for p in path:
                if re.fullmatch(r"layer\d+_\d+", p):
                    out.append(p.replace("_", "."))
                elif p == "shortcut":
                    out.append("shortcut.0")
                else:
                    out.append(p)
            return ".".join(out)
        return "preact_resnet", kwargs, module, lambda k: False

    if arch in RESNET_ARCHS:
        conv1 = _require(sd, "conv1.weight", arch)
        stem = {7: "imagenet", 3: "cifar"}.get(int(conv1.shape[-1]))
        if stem is None:
            raise ValueError(f"conv1.weight has a {tuple(conv1.shape[-2:])} kernel; a ResNet stem is 7x7 "
                             "(ImageNet) or 3x3 (CIFAR)")
        kwargs = {"depth": RESNET_ARCHS[arch], "width": int(conv1.shape[0]), "stem": stem}
        torchvision = any(".downsample." in k for k in sd) or "fc.weight" in sd
        short = "downsample" if torchvision else "shortcut"
        head = "fc" if torchvision else "linear"

        def module(path):
            out = []
            for p in path:
                if re.fullmatch(r"layer\d+_\d+", p):
                    out.append(p.replace("_", "."))
                elif p == "shortcut_conv":
                    out.append(f"{short}.0")
                elif p == "shortcut_bn":
                    out.append(f"{short}.1")
                elif p == "linear":
                    out.append(head)
                else:
                    out.append(p)
            return ".".join(out)
        return "resnet", kwargs, module, lambda k: False

    if arch in WRN_ARCHS:
        blocks = _layer_index(sd, r"block(\d+)\.layer\.(\d+)\.")
        if WRN_ARCHS[arch] is None:
            if sorted(blocks) != [1, 2, 3] or len({len(b) for b in blocks.values()}) != 1:
                raise ValueError(f"cannot read a WideResNet's depth from the keys: blocks per stage "
                                 f"{ {s: len(b) for s, b in sorted(blocks.items())} } (expected stages 1-3 "
                                 "with equal counts, keys block{s}.layer.{i}.*)")
            n = len(blocks[1])
            w = _require(sd, "block1.layer.0.conv1.weight", arch)
            if int(w.shape[0]) % 16:
                raise ValueError(f"block1.layer.0.conv1 has {w.shape[0]} filters; a WideResNet has 16 * width")
            depth, width = 6 * n + 4, int(w.shape[0]) // 16
        else:
            depth, width = WRN_ARCHS[arch]

        def module(path):
            out = []
            for p in path:
                m = re.fullmatch(r"block(\d+)_(\d+)", p)
                if m:
                    out.append(f"block{m.group(1)}.layer.{m.group(2)}")
                elif p == "shortcut":
                    out.append("convShortcut")
                else:
                    out.append(p)
            return ".".join(out)
        kwargs = {"depth": depth, "width": width}
        if options.get("head") not in (None, "linear"):
            kwargs["head"] = options["head"]
        return "wide_resnet", kwargs, module, lambda k: k.startswith("sub_block1.")

    if arch == "robust_wide_resnet":
        stages = _layer_index(sd, r"blocks\.(\d+)\.layer\.(\d+)\.")
        if not stages or sorted(stages) != list(range(len(stages))) or any(
                sorted(b) != list(range(len(b))) for b in stages.values()):
            raise ValueError(f"cannot read a RobustWideResNet's stages from the keys: blocks per stage "
                             f"{ {s: sorted(b) for s, b in sorted(stages.items())} } (expected stages 0..S-1, "
                             "keys blocks.{s}.layer.{i}.*)")
        stem = _require(sd, "stem_conv.weight", arch)
        channels = [int(stem.shape[0])]
        for st in range(len(stages)):
            channels.append(int(_require(sd, f"blocks.{st}.layer.0.conv1.weight", arch).shape[0]))
        kwargs = {"channels": tuple(channels), "depths": tuple(len(stages[st]) for st in range(len(stages))),
                  "strides": (1,) + (2,) * (len(stages) - 1)}
        short = "shortcut.0" if any(re.match(r"blocks\.\d+\.layer\.\d+\.shortcut\.0\.", k) for k in sd) \
            else "convShortcut"
        final = "norm1" if "norm1.weight" in sd else "bn1"

        def module(path):                        # jadv conv1 = torch stem_conv; blocks_0_1 = blocks.0.layer.1
            out = []
            for p in path:
                m = re.fullmatch(r"blocks_(\d+)_(\d+)", p)
                if p == "conv1" and not out:
                    out.append("stem_conv")
                elif m:
                    out.append(f"blocks.{m.group(1)}.layer.{m.group(2)}")
                elif p == "shortcut":
                    out.append(short)
                elif p == "bn1" and not out:
                    out.append(final)
                else:
                    out.append(p)
            return ".".join(out)
        return "robust_wide_resnet", kwargs, module, lambda k: False

    if arch == "dm_wide_resnet":
        groups = _layer_index(sd, r"layer\.(\d+)\.block\.(\d+)\.")
        if sorted(groups) != [0, 1, 2] or len({len(b) for b in groups.values()}) != 1:
            hint = (" (keys block{s}.layer.{i}.* are the TRADES/RobustBench WideResNet: arch='wide_resnet')"
                    if any(re.match(r"block\d+\.layer\.", k) for k in sd) else "")
            raise ValueError(f"cannot read a DeepMind WideResNet's depth from the keys: blocks per group "
                             f"{ {g: len(b) for g, b in sorted(groups.items())} } (expected groups 0-2 with "
                             f"equal counts, keys layer.{{g}}.block.{{i}}.*){hint}")
        w = _require(sd, "layer.0.block.0.conv_0.weight", arch)
        if int(w.shape[0]) % 16 or int(w.shape[0]) < 16:
            raise ValueError(f"layer.0.block.0.conv_0 has {w.shape[0]} filters; a DeepMind WideResNet has 16 * width")
        kwargs = {"depth": 6 * len(groups[0]) + 4, "width": int(w.shape[0]) // 16}

        def module(path):                        # jadv conv1 = torch init_conv; layer_0_block_1 = layer.0.block.1
            return ".".join("init_conv" if p == "conv1" else
                            re.sub(r"^layer_(\d+)_block_(\d+)$", r"layer.\1.block.\2", p) for p in path)
        return "dm_wide_resnet", kwargs, module, lambda k: False

    if arch == "dm_preact_resnet":
        stages = _layer_index(sd, r"layer_(\d+)\.(\d+)\.")
        counts = tuple(len(stages.get(s, ())) for s in range(4))
        depths = {blocks: d for d, blocks in PREACT_BLOCKS.items()}
        if sorted(stages) != [0, 1, 2, 3] or counts not in depths:
            raise ValueError(f"cannot read a DeepMind PreActResNet's depth from the keys: blocks per stage "
                             f"{ {s: len(b) for s, b in sorted(stages.items())} } (expected stages 0-3 with "
                             f"{PREACT_BLOCKS[18]} blocks (depth 18) or {PREACT_BLOCKS[34]} (depth 34), keys "
                             "layer_{s}.{i}.*)")
        stem = _require(sd, "conv_2d.weight", arch)
        kwargs = {"depth": depths[counts], "width": int(stem.shape[0])}

        def module(path):                        # jadv conv1 = torch conv_2d; layer_0_1 = layer_0.1
            return ".".join("conv_2d" if p == "conv1" else re.sub(r"^layer_(\d+)_(\d+)$", r"layer_\1.\2", p)
                            for p in path)
        return "dm_preact_resnet", kwargs, module, lambda k: False

    raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHS)}")


def _final_layer(sd: dict, arch: str) -> str:
    for head in ("fc", "linear", "logits"):
        if f"{head}.weight" in sd:
            return head
    raise ValueError(f"missing the final layer (fc.weight, linear.weight or logits.weight) for arch {arch!r}; "
                     f"keys start with: {sorted(sd)[:8]}")


# -- the converter ------------------------------------------------------------------------------
def from_torch(state_dict: Mapping, arch: str, *, mean: tuple[float, ...] | None = None,
               std: tuple[float, ...] | None = None, num_classes: int | None = None,
               activation: str | None = None, shortcut_from: str | None = None, head: str | None = None,
               dtype: Any = jnp.float32) -> ImportedModel:
    """Convert a PyTorch ``state_dict`` of a RobustBench architecture into a jadv model + variables.

    Args:
      state_dict: ``{name: tensor}`` as from ``torch.load(path, weights_only=True)``, a
        ``safetensors`` file (numpy arrays) or :func:`load_state_dict`; a checkpoint dict holding
        it under ``state_dict``/``model``/``model_state_dict``/``net`` is unwrapped.
      arch: one of :data:`ARCHS` (see the module docstring for the key layouts).
      mean, std: per-channel input normalisation of the original model, in [0, 1] pixel units
        (e.g. CIFAR-10's (0.4914, 0.4822, 0.4465) / (0.2471, 0.2435, 0.2616)). Default: read from
        normalisation buffers in the state dict if present, else none (mean 0, std 1); for the
        DeepMind archs, else the RobustBench model zoo's CIFAR-10 / CIFAR-100 values (by class count).
      num_classes: checked against the final layer (default: read from it).
      activation: only for ``"dm_wide_resnet"`` / ``"dm_preact_resnet"`` / ``"robust_wide_resnet"``,
        whose state dicts do not record it: ``"swish"`` (= ``"silu"``; the DM archs' default, every
        RobustBench DM checkpoint, and WRN-A4) or ``"relu"`` (the robust_wide_resnet default).
      shortcut_from: only for the pre-activation ResNets: ``"activation"`` (default) or
        ``"input"`` (RobustBench's ``PreActBlock``; see the module docstring).
      head: only for the WideResNets: ``"linear"`` (default) or ``"cosine"`` (Pang et al. 2020).
      dtype: computation dtype of the jadv model (parameters stay float32).

    Returns:
      :class:`ImportedModel` with ``model``, ``variables``, ``name``, ``kwargs`` and
      ``ignored_keys``. ``model.apply(variables, x, train=False)``: x float32 [B, H, W, C] in
      [0, 1] (NHWC, unnormalised) -> logits float32 [B, K], equal to the PyTorch model's output on
      ``x.transpose(0, 3, 1, 2)`` in eval mode.

    Raises:
      ValueError: unknown arch or activation (or ``activation`` for an arch without the choice);
        missing or unknown keys (named); a shape that does not fit;
        NaN/Inf in a weight or buffer (named); bad or conflicting normalisation. TypeError: not a mapping of tensors.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHS)}")
    if arch in ACTIVATION_ARCHS:
        activation = ACTIVATION_ARCHS[arch] if activation is None else activation
        check_activation(activation)
    elif activation is not None:
        raise ValueError(f"activation={activation!r} is only for the DeepMind archs ({', '.join(DM_ARCHS)}) and "
                         f"robust_wide_resnet; {arch!r} always uses ReLU")
    if shortcut_from is not None:
        if arch not in PREACT_ARCHS:
            raise ValueError(f"shortcut_from={shortcut_from!r} is only for the pre-activation ResNets "
                             f"({', '.join(PREACT_ARCHS)}), not {arch!r}")
        if shortcut_from not in _PREACT_SHORTCUTS:
            raise ValueError(f"unknown shortcut_from {shortcut_from!r}; allowed: {', '.join(_PREACT_SHORTCUTS)}")
    if head is not None:
        if arch not in WRN_ARCHS:
            raise ValueError(f"head={head!r} is only for the WideResNets ({', '.join(WRN_ARCHS)}), not {arch!r}")
        if head not in _HEADS:
            raise ValueError(f"unknown head {head!r}; allowed: {', '.join(_HEADS)}")
    sd = _strip_prefix(_strip_prefix(_unwrap(state_dict), "module."), "module.")
    ignored = sorted(k for k in sd if k.startswith("attacker."))
    sd = {k: v for k, v in sd.items() if not k.startswith("attacker.")}

    stem = f"{STEM_KEYS.get(arch, 'conv1')}.weight"
    stem_key = next((k for k in (stem, f"model.{stem}") if k in sd), None)
    if stem_key is None:
        raise ValueError(f"missing key {stem!r} for arch {arch!r}: this does not look like a {arch} "
                         f"state_dict (first keys: {sorted(sd)[:8]})")
    channels = int(sd[stem_key].shape[1])
    sd, found_mean, found_std, norm_keys = _take_normalization(sd, channels)
    sd = _strip_prefix(sd, "model.")
    mean = _check_stats("mean", mean, found_mean, channels)
    std = _check_stats("std", std, found_std, channels)
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (or neither)")
    if std is not None and min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")

    ignored += sorted(k for k in sd if k.endswith(".num_batches_tracked"))
    sd = {k: v for k, v in sd.items() if not k.endswith(".num_batches_tracked")}
    name, arch_kwargs, module_of, dead = _plan(sd, arch, {"shortcut_from": shortcut_from, "head": head})
    ignored += sorted(k for k in sd if dead(k))
    sd = {k: v for k, v in sd.items() if not dead(k)}

    final = _final_layer(sd, arch)
    k_out = int(sd[f"{final}.weight"].shape[0])
    if num_classes is not None and int(num_classes) != k_out:
        raise ValueError(f"num_classes={num_classes} but the checkpoint's {final}.weight has {k_out} outputs")
    if arch in ACTIVATION_ARCHS:
        arch_kwargs["activation"] = activation
    if arch in DM_ARCHS:
        if mean is None:
            if channels != 3 or k_out not in DM_DEFAULT_NORMALIZATION:
                raise ValueError(f"a {arch} state dict does not hold its input normalisation, and RobustBench's "
                                 f"defaults are for 3-channel CIFAR-10/100 models (10 or 100 classes), not "
                                 f"{channels} channel(s) and {k_out} classes: pass mean=/std= "
                                 "(mean=0, std=1 for a model that takes raw [0, 1] pixels)")
            mean, std = DM_DEFAULT_NORMALIZATION[k_out]
    kwargs = {**arch_kwargs, "num_classes": k_out}
    if mean is not None:
        kwargs.update(mean=mean, std=std)
    model = _get_model(name, dtype=dtype, **kwargs)

    spatial = 64 if arch_kwargs.get("stem") == "imagenet" else 32
    shapes = jax.eval_shape(lambda: _init_variables(model, jax.random.key(0), (1, spatial, spatial, channels)))
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)

    leaves, wanted, shape_errors = [], {}, []
    allow_missing = {f"{final}.bias"}
    for path, leaf in flat:
        names = [p.key for p in path]
        collection, modules, leaf_name = names[0], [m for m in names[1:-1] if m != "BatchNorm_0"], names[-1]
        prefix = module_of(modules)
        if "BatchNorm_0" in names:
            tkey, convert = f"{prefix}.{_BN_LEAVES[leaf_name]}", None
        elif leaf_name == "kernel":
            tkey, convert = f"{prefix}.weight", (_conv_kernel if len(leaf.shape) == 4 else _dense_kernel)
        else:
            tkey, convert = f"{prefix}.{leaf_name}", None
        wanted[tkey] = collection
        if tkey not in sd:
            leaves.append(None if tkey not in allow_missing else np.zeros(leaf.shape, np.float32))
            continue
        arr = _to_numpy(sd[tkey], tkey)
        if convert is not None:
            if arr.ndim != len(leaf.shape):
                shape_errors.append(f"{tkey}: {arr.shape} (expected a {len(leaf.shape)}-d tensor)")
                leaves.append(None)
                continue
            arr = convert(arr)
        if arr.shape != tuple(leaf.shape):
            shape_errors.append(f"{tkey}: {arr.shape} after conversion, jadv expects {tuple(leaf.shape)}")
        leaves.append(arr)

    missing = sorted(k for k in wanted if k not in sd and k not in allow_missing)
    unknown = sorted(k for k in sd if k not in wanted)
    if missing or unknown or shape_errors:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_short(missing)}")
        if unknown:
            parts.append(f"unknown keys ({len(unknown)}): {_short(unknown)}")
        if shape_errors:
            parts.append(f"shape mismatches ({len(shape_errors)}): {_short(shape_errors)}")
        raise ValueError(f"state_dict does not fit jadv's {arch} ({name} {arch_kwargs}): " + "; ".join(parts))

    variables = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in leaves])
    return ImportedModel(model=model, variables={"params": variables["params"],
                                                 "batch_stats": variables["batch_stats"]},
                         name=name, kwargs=kwargs, ignored_keys=tuple(ignored),
                         normalization_keys=tuple(norm_keys))


def _short(items: list, n: int = 12) -> str:
    head = ", ".join(items[:n])
    return head + (f", ... ({len(items) - n} more)" if len(items) > n else "")
