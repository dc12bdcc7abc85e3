"""jadv.models.from_torch: PyTorch state_dict -> jadv Flax model with the same logits.

For every RobustBench architecture, a PyTorch reference model (tests/torch_reference_models.py)
with random weights and calibrated BN statistics is converted, and the jadv model must give the
same logits in eval mode (max abs diff < 1e-4 in float32) on random inputs. A deliberately wrong
conversion must fail the same check, and bad state dicts must give errors naming the keys.
DeepMind's WideResNet / PreActResNet (RobustBench DMWideResNet / DMPreActResNet; Gowal et al. 2020,
Rebuffi et al. 2021) are checked with ReLU and Swish/SiLU at two depths/widths each, and legacy
(pre-1.6, non-zip) checkpoint files load with the same weights_only=True restrictions.
"""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interop tests need torch (pip install -e '.[dev]')")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference_models as R  # noqa: E402

import importlib  # noqa: E402

import jadv  # noqa: E402

ft = importlib.import_module("jadv.models.from_torch")     # the module (the function shadows its name)

TOL = 1e-4
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def _calibrated(model, hw, seed=0, channels=3):
    calib = torch.rand(8, channels, hw, hw, generator=torch.Generator().manual_seed(100 + seed))
    return R.randomize_(model, calib, seed=seed)


def _inputs(batch, hw, channels=3, seed=1):
    return np.random.default_rng(seed).random((batch, hw, hw, channels), dtype=np.float32)


def _torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()


def _jax_logits(imported, x):
    return np.asarray(jax.jit(imported.model.apply)(imported.variables, jnp.asarray(x)))


def _max_diff(torch_model, arch, x, **kwargs):
    imported = jadv.models.from_torch(torch_model.state_dict(), arch, **kwargs)
    ref = _torch_logits(torch_model, x)
    out = _jax_logits(imported, x)
    assert out.shape == ref.shape and out.dtype == np.float32
    # the oracle is not trivial: the logits differ between classes and between inputs
    assert ref.std() > 0.05 and np.abs(ref[0] - ref[1]).max() > 1e-2
    return float(np.abs(out - ref).max()), imported


SLOW = pytest.mark.slow
# (torch model factory, arch, input size, batch, expected registry name and kwargs)
CASES = [
    pytest.param(lambda: R.PreActResNet18(num_classes=10), "preact_resnet18", 32, 4,
                 ("preact_resnet", {"depth": 18, "width": 64}), id="preact_resnet18"),
    pytest.param(lambda: R.KuangLiuResNet18(num_classes=10), "resnet18", 32, 4,
                 ("resnet", {"depth": 18, "stem": "cifar"}), id="resnet18_kuangliu_cifar"),
    pytest.param(lambda: R.TorchvisionResNet(18, 10, stem="cifar"), "resnet18", 32, 4,
                 ("resnet", {"depth": 18, "stem": "cifar"}), id="resnet18_torchvision_cifar_stem"),
    pytest.param(lambda: R.TorchvisionResNet(18, 1000), "resnet18", 64, 3,
                 ("resnet", {"depth": 18, "stem": "imagenet"}), id="resnet18_torchvision_imagenet"),
    pytest.param(lambda: R.TorchvisionResNet(50, 1000), "resnet50", 64, 2,
                 ("resnet", {"depth": 50, "stem": "imagenet"}), id="resnet50_torchvision_imagenet", marks=SLOW),
    pytest.param(lambda: R.WideResNet(28, 10, num_classes=10), "wrn28_10", 32, 2,
                 ("wide_resnet", {"depth": 28, "width": 10}), id="wrn28_10", marks=SLOW),
    pytest.param(lambda: R.WideResNet(34, 10, num_classes=10, sub_block1=True), "wrn34_10", 32, 2,
                 ("wide_resnet", {"depth": 34, "width": 10}), id="wrn34_10_sub_block1", marks=SLOW),
    pytest.param(lambda: R.WideResNet(10, 1, num_classes=10), "wide_resnet", 32, 4,
                 ("wide_resnet", {"depth": 10, "width": 1}), id="wide_resnet_10_1"),
]


@pytest.mark.parametrize("factory,arch,hw,batch,expected", CASES)
def test_logits_match_torch(request, factory, arch, hw, batch, expected):
    case_id = request.node.callspec.id
    model = _calibrated(factory(), hw)
    x = _inputs(batch, hw)
    diff, imported = _max_diff(model, arch, x)
    print(f"{case_id}: max abs diff {diff:.2e}")
    assert diff < TOL, f"{case_id}: max abs logit difference {diff:.3g} >= {TOL}"
    name, kwargs = expected
    assert imported.name == name
    assert {k: imported.kwargs[k] for k in kwargs} == kwargs
    # the registry rebuilds the same model from (name, kwargs), as a workdir's config.json does
    assert jadv.models.get(imported.name, **imported.kwargs) == imported.model
    # ignored keys: BN counters always; the WRN-34-10's unused sub_block1
    assert all(k.endswith("num_batches_tracked") or k.startswith("sub_block1.") for k in imported.ignored_keys)
    assert any(k.startswith("sub_block1.") for k in imported.ignored_keys) == ("sub_block1" in case_id)


def test_wrong_conversion_fails_the_check(monkeypatch):
    """The equivalence check can fail: a conv kernel with H and W swapped (OIHW -> WHIO instead of
    HWIO), BN mean/var swapped, or a linear weight not transposed give different logits."""
    # WRN-10-1 with a square 64 x 64 head, so that an untransposed linear weight still fits
    model = _calibrated(R.WideResNet(10, 1, num_classes=64), 32)
    x = _inputs(2, 32)
    good, _ = _max_diff(model, "wide_resnet", x)
    assert good < TOL
    monkeypatch.setattr(ft, "_conv_kernel", lambda w: np.transpose(w, (3, 2, 1, 0)))
    bad, _ = _max_diff(model, "wide_resnet", x)
    assert bad > 100 * TOL, bad
    monkeypatch.undo()
    # BN running mean and variance swapped: negative "variances" give NaN, or the logits differ
    monkeypatch.setitem(ft._BN_LEAVES, "mean", "running_var")
    monkeypatch.setitem(ft._BN_LEAVES, "var", "running_mean")
    bad, _ = _max_diff(model, "wide_resnet", x)
    assert not bad < TOL
    monkeypatch.undo()
    monkeypatch.setattr(ft, "_dense_kernel", lambda w: w)
    bad, _ = _max_diff(model, "wide_resnet", x)
    assert bad > 100 * TOL, bad


def test_normalisation_buffers_and_arguments():
    """mu/sigma buffers of a wrapper are found; explicit mean/std give the same model."""
    inner = _calibrated(R.WideResNet(10, 1, num_classes=10), 32, seed=2)
    wrapped = R.Normalized(inner, CIFAR_MEAN, CIFAR_STD).eval()
    x = _inputs(3, 32)
    diff, imported = _max_diff(wrapped, "wide_resnet", x)
    assert diff < TOL
    np.testing.assert_allclose(imported.kwargs["mean"], CIFAR_MEAN, rtol=1e-6)
    np.testing.assert_allclose(imported.kwargs["std"], CIFAR_STD, rtol=1e-6)
    assert set(imported.normalization_keys) == {"mu", "sigma"}
    # the same numbers given as arguments to the bare network's state dict
    imported2 = jadv.models.from_torch(inner.state_dict(), "wide_resnet", mean=CIFAR_MEAN, std=CIFAR_STD)
    assert np.abs(_jax_logits(imported2, x) - _torch_logits(wrapped, x)).max() < TOL
    # agreeing argument + buffer is fine; disagreeing is an error
    jadv.models.from_torch(wrapped.state_dict(), "wide_resnet", mean=CIFAR_MEAN, std=CIFAR_STD)
    with pytest.raises(ValueError, match="disagrees with the normalisation buffer"):
        jadv.models.from_torch(wrapped.state_dict(), "wide_resnet", mean=(0.5, 0.5, 0.5), std=CIFAR_STD)
    with pytest.raises(ValueError, match="expected 1 or 3"):
        jadv.models.from_torch(inner.state_dict(), "wide_resnet", mean=(0.5, 0.5), std=(1.0, 1.0))
    with pytest.raises(ValueError, match="both mean and std"):
        jadv.models.from_torch(inner.state_dict(), "wide_resnet", mean=CIFAR_MEAN)
    # without buffers or arguments: raw [0, 1] pixels
    assert "mean" not in jadv.models.from_torch(inner.state_dict(), "wide_resnet").kwargs


def test_robustness_library_layout_and_checkpoint_file(tmp_path):
    """DataParallel 'module.' prefix, 'model.' wrapper, 'normalizer.new_mean/new_std' buffers and
    the attacker's duplicate weights (the robustness library's ImageNet checkpoints), saved with
    torch.save and read back with weights_only=True through load_state_dict."""
    net = _calibrated(R.WideResNet(10, 1, num_classes=10), 32, seed=3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    sd = {}
    for k, v in net.state_dict().items():
        sd[f"module.model.{k}"] = v
        sd[f"module.attacker.model.{k}"] = v
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        sd[prefix + "new_mean"] = torch.tensor(mean).view(3, 1, 1)
        sd[prefix + "new_std"] = torch.tensor(std).view(3, 1, 1)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": sd, "epoch": 90, "optimizer": {"lr": 0.1}}, path)
    imported = jadv.models.from_torch(ft.load_state_dict(path), "wide_resnet")
    x = _inputs(3, 32)
    ref = _torch_logits(R.Normalized(net, mean, std).eval(), x)
    assert np.abs(_jax_logits(imported, x) - ref).max() < TOL
    assert imported.normalization_keys == ("normalizer.new_mean", "normalizer.new_std")
    assert any(k.startswith("attacker.") for k in imported.ignored_keys)


def test_safetensors_file(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="safetensors is in the dev extra")
    net = _calibrated(R.WideResNet(10, 1, num_classes=7), 32, seed=4)
    path = str(tmp_path / "model.safetensors")
    safetensors_numpy.save_file({k: v.numpy() for k, v in net.state_dict().items()}, path)
    imported = jadv.models.from_torch(ft.load_state_dict(path), "wide_resnet")
    x = _inputs(2, 32)
    assert imported.kwargs["num_classes"] == 7
    assert np.abs(_jax_logits(imported, x) - _torch_logits(net, x)).max() < TOL


def test_half_precision_and_missing_final_bias():
    """bfloat16 checkpoints are upcast; RobustBench's bias_last=False WRN gets a zero bias."""
    net = _calibrated(R.WideResNet(10, 1, num_classes=10, bias_last=False), 32, seed=5)
    sd = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    assert "fc.bias" not in sd
    imported = jadv.models.from_torch(sd, "wide_resnet")
    leaves = jax.tree_util.tree_leaves(imported.variables)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    np.testing.assert_array_equal(imported.variables["params"]["fc"]["bias"], 0.0)
    np.testing.assert_array_equal(imported.variables["params"]["conv1"]["kernel"],
                                  sd["conv1.weight"].float().numpy().transpose(2, 3, 1, 0))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    x = _inputs(2, 32)
    assert np.abs(_jax_logits(imported, x) - _torch_logits(net, x)).max() < TOL


def test_errors_name_the_keys():
    sd = R.WideResNet(10, 1).state_dict()
    with pytest.raises(ValueError, match="unknown arch 'vgg16'; allowed: preact_resnet18"):
        jadv.models.from_torch(sd, "vgg16")
    missing = {k: v for k, v in sd.items() if k != "block2.layer.0.conv2.weight"}
    with pytest.raises(ValueError, match=r"missing keys \(1\): block2\.layer\.0\.conv2\.weight"):
        jadv.models.from_torch(missing, "wide_resnet")
    extra = {**sd, "head.extra.weight": torch.zeros(3), "block1.layer.0.bn3.weight": torch.zeros(16)}
    with pytest.raises(ValueError, match=r"unknown keys \(2\): block1\.layer\.0\.bn3\.weight, head\.extra\.weight"):
        jadv.models.from_torch(extra, "wide_resnet")
    wrong = {**sd, "block3.layer.0.conv1.weight": torch.zeros(64, 32, 5, 5)}
    with pytest.raises(ValueError, match=r"shape mismatches \(1\): block3\.layer\.0\.conv1\.weight: \(5, 5, 32, 64\)"):
        jadv.models.from_torch(wrong, "wide_resnet")
    # a WRN-10-1 is not a WRN-28-10: the missing blocks and mismatched widths are named
    with pytest.raises(ValueError, match=r"wrn28_10.*missing keys \(\d+\): .*block1\.layer\.1\.bn1\.bias"):
        jadv.models.from_torch(sd, "wrn28_10")
    with pytest.raises(ValueError, match="num_classes=100 but the checkpoint's fc.weight has 10 outputs"):
        jadv.models.from_torch(sd, "wide_resnet", num_classes=100)
    with pytest.raises(ValueError, match="missing key 'conv1.weight'"):
        jadv.models.from_torch({"fc.weight": torch.zeros(10, 64)}, "resnet18")
    with pytest.raises(ValueError, match="ResNet stem is 7x7"):
        jadv.models.from_torch(R.PreActResNet18().state_dict() | {"conv1.weight": torch.zeros(64, 3, 5, 5)},
                               "resnet18")
    with pytest.raises(TypeError, match="not tensors"):
        jadv.models.from_torch({"conv1.weight": torch.zeros(1), "note": "hello"}, "resnet18")
    with pytest.raises(TypeError, match="mapping"):
        jadv.models.from_torch([1, 2], "resnet18")
    with pytest.raises(FileNotFoundError):
        ft.load_state_dict("/nonexistent/model.pt")


class Payload:
    """An arbitrary class: torch.load(weights_only=True) must refuse to build it."""


def test_unsafe_pickle_is_refused(tmp_path):
    """load_state_dict uses weights_only=True: a checkpoint holding an arbitrary object fails."""
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": Payload()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        ft.load_state_dict(path)


# -- DeepMind WideResNet / PreActResNet (RobustBench DMWideResNet, DMPreActResNet) -------------
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# (torch factory, arch, expected kwargs); activation "silu" is torch's nn.SiLU, "swish" R.Swish
DM_CASES = [
    pytest.param(lambda: R.DMWideResNet(10, 1, activation="relu"), "dm_wide_resnet", "relu",
                 {"depth": 10, "width": 1}, id="dm_wrn_10_1_relu"),
    pytest.param(lambda: R.DMWideResNet(16, 2, activation="relu"), "dm_wide_resnet", "relu",
                 {"depth": 16, "width": 2}, id="dm_wrn_16_2_relu"),
    pytest.param(lambda: R.DMWideResNet(10, 2, activation="swish"), "dm_wide_resnet", "swish",
                 {"depth": 10, "width": 2}, id="dm_wrn_10_2_swish"),
    pytest.param(lambda: R.DMWideResNet(16, 1, activation="swish"), "dm_wide_resnet", "swish",
                 {"depth": 16, "width": 1}, id="dm_wrn_16_1_swish"),
    pytest.param(lambda: R.DMWideResNet(10, 1, activation="silu"), "dm_wide_resnet", "silu",
                 {"depth": 10, "width": 1}, id="dm_wrn_10_1_silu"),
    pytest.param(lambda: R.DMPreActResNet(18, activation="relu", width=8), "dm_preact_resnet", "relu",
                 {"depth": 18, "width": 8}, id="dm_preact_18_w8_relu"),
    pytest.param(lambda: R.DMPreActResNet(34, activation="relu", width=4), "dm_preact_resnet", "relu",
                 {"depth": 34, "width": 4}, id="dm_preact_34_w4_relu"),
    pytest.param(lambda: R.DMPreActResNet(18, activation="swish", width=4), "dm_preact_resnet", "swish",
                 {"depth": 18, "width": 4}, id="dm_preact_18_w4_swish"),
    pytest.param(lambda: R.DMPreActResNet(34, activation="silu", width=8), "dm_preact_resnet", "swish",
                 {"depth": 34, "width": 8}, id="dm_preact_34_w8_swish"),
]


@pytest.mark.parametrize("factory,arch,activation,expected", DM_CASES)
def test_dm_logits_match_torch(request, factory, arch, activation, expected):
    """DeepMind models (Gowal et al. 2020, Rebuffi et al. 2021) of two depths and widths each, ReLU
    and Swish/SiLU, random weights and calibrated BN: the jadv logits equal PyTorch's in eval mode.
    The CIFAR-10 normalisation the torch model applies (a non-persistent buffer, so not in the state
    dict) is RobustBench's default for a 10-class DM model."""
    case_id = request.node.callspec.id
    model = _calibrated(factory(), 32)
    assert not any(k in ("mean", "std") for k in model.state_dict())
    diff, imported = _max_diff(model, arch, _inputs(4, 32), activation=activation)
    print(f"{case_id}: max abs diff {diff:.2e}")
    assert diff < TOL, f"{case_id}: max abs logit difference {diff:.3g} >= {TOL}"
    assert imported.name == arch
    assert {k: imported.kwargs[k] for k in expected} == expected
    assert imported.kwargs["activation"] == activation
    np.testing.assert_allclose(imported.kwargs["mean"], CIFAR_MEAN)
    np.testing.assert_allclose(imported.kwargs["std"], CIFAR_STD)
    assert imported.normalization_keys == ()
    assert jadv.models.get(imported.name, **imported.kwargs) == imported.model
    assert imported.ignored_keys and all(k.endswith("num_batches_tracked") for k in imported.ignored_keys)
    # the state-dict layout: shortcuts are 1x1 (WRN) / 3x3 (PreAct); jadv's kernels are HWIO; the
    # stem is conv1 as in every jadv model (first-layer analyses and import_model.py read it)
    params = imported.variables["params"]
    stem = model.state_dict()["init_conv.weight" if arch == "dm_wide_resnet" else "conv_2d.weight"]
    np.testing.assert_array_equal(params["conv1"]["kernel"], stem.numpy().transpose(2, 3, 1, 0))
    if arch == "dm_wide_resnet":
        assert params["layer_1_block_0"]["shortcut"]["kernel"].shape[:2] == (1, 1)
        assert ("shortcut" in params["layer_0_block_0"]) == (expected["width"] != 1)
    else:
        assert params["layer_1_0"]["shortcut"]["kernel"].shape[:2] == (3, 3)
        assert "shortcut" not in params["layer_0_0"]


def test_dm_default_activation_is_swish_and_cifar100_normalisation():
    """activation defaults to "swish" (every RobustBench DM entry); a 100-class head gets the
    CIFAR-100 mean/std RobustBench passes to its CIFAR-100 DM models."""
    net = _calibrated(R.DMWideResNet(10, 1, num_classes=100, activation="swish", mean=CIFAR100_MEAN,
                                     std=CIFAR100_STD), 32, seed=6)
    diff, imported = _max_diff(net, "dm_wide_resnet", _inputs(3, 32))
    assert diff < TOL
    assert imported.kwargs["activation"] == "swish" and imported.kwargs["num_classes"] == 100
    np.testing.assert_allclose(imported.kwargs["mean"], CIFAR100_MEAN)
    np.testing.assert_allclose(imported.kwargs["std"], CIFAR100_STD)


def test_dm_normalisation_arguments_and_persistent_buffers():
    """Explicit mean/std override the zoo default; mean/std buffers saved in the state dict (as
    RobustBench's code of early 2022 did) are read; an argument that disagrees with them is an error;
    a class count without a zoo default needs mean/std."""
    x = _inputs(3, 32)
    raw = _calibrated(R.DMPreActResNet(18, activation="relu", width=4, mean=(0.0,) * 3, std=(1.0,) * 3), 32, seed=7)
    diff, imported = _max_diff(raw, "dm_preact_resnet", x, activation="relu", mean=0.0, std=1.0)
    assert diff < TOL and imported.kwargs["mean"] == (0.0,)
    # the zoo default (CIFAR-10) would be wrong for this model
    wrong = jadv.models.from_torch(raw.state_dict(), "dm_preact_resnet", activation="relu")
    assert np.abs(_jax_logits(wrong, x) - _torch_logits(raw, x)).max() > 100 * TOL

    saved = _calibrated(R.DMWideResNet(10, 1, activation="swish", mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25),
                                       persistent_stats=True), 32, seed=8)
    assert {"mean", "std"} <= set(saved.state_dict())
    diff, imported = _max_diff(saved, "dm_wide_resnet", x)
    assert diff < TOL and set(imported.normalization_keys) == {"mean", "std"}
    np.testing.assert_allclose(imported.kwargs["mean"], (0.5, 0.4, 0.3), rtol=1e-6)
    with pytest.raises(ValueError, match="disagrees with the normalisation buffer"):
        jadv.models.from_torch(saved.state_dict(), "dm_wide_resnet", mean=CIFAR_MEAN, std=CIFAR_STD)

    seven = R.DMWideResNet(10, 1, num_classes=7).state_dict()
    with pytest.raises(ValueError, match="does not hold its input normalisation.*7 classes: pass mean=/std="):
        jadv.models.from_torch(seven, "dm_wide_resnet")
    assert jadv.models.from_torch(seven, "dm_wide_resnet", mean=CIFAR_MEAN, std=CIFAR_STD).kwargs["num_classes"] == 7
    gray = R.DMWideResNet(10, 1, in_channels=1, mean=(0.5,), std=(0.5,)).state_dict()
    with pytest.raises(ValueError, match=r"not 1 channel\(s\) and 10 classes"):
        jadv.models.from_torch(gray, "dm_wide_resnet")


def test_dm_wrong_conversion_fails_the_check(monkeypatch):
    """The DM check can fail: symmetric padding of the strided convs (the TRADES WRN's), ReLU for a
    Swish model, or the PreAct shortcut fed the activated input give different logits."""
    dm_resnet = importlib.import_module("jadv.models.dm_resnet")
    x = _inputs(2, 32)
    wrn = _calibrated(R.DMWideResNet(10, 1, activation="swish"), 32, seed=9)
    preact = _calibrated(R.DMPreActResNet(18, activation="swish", width=4), 32, seed=9)
    for model, arch in ((wrn, "dm_wide_resnet"), (preact, "dm_preact_resnet")):
        assert _max_diff(model, arch, x)[0] < TOL
        bad, _ = _max_diff(model, arch, x, activation="relu")
        assert bad > 100 * TOL, (arch, bad)
        with monkeypatch.context() as m:
            m.setattr(dm_resnet, "_same_padding", lambda k, s: "VALID" if k == 1 else [(k // 2, k // 2)] * 2)
            bad, _ = _max_diff(model, arch, x)
        assert bad > 100 * TOL, (arch, bad)
    # the PreAct shortcut sees the raw block input: wiring it to the activated input changes the logits
    imported = jadv.models.from_torch(preact.state_dict(), "dm_preact_resnet")
    with monkeypatch.context() as m:
        m.setattr(dm_resnet, "DMPreActBlock", _activated_shortcut_block(dm_resnet))
        bad = np.abs(_jax_logits(imported, x) - _torch_logits(preact, x)).max()
    assert bad > 100 * TOL, bad


def _activated_shortcut_block(dm_resnet):
    """A deliberately wrong DMPreActBlock (shortcut of the activated input), for the test above."""
    import flax.linen as nn

    class ActivatedShortcutBlock(dm_resnet.DMPreActBlock):
        @nn.compact
        def __call__(self, x, train, bn_set):
            conv, norm = dm_resnet._conv, jadv.models.Norm
            out = nn.swish(norm(self.norm, name="batchnorm_0")(x, train=train, bn_set=bn_set))
            shortcut = x
            if self.stride != 1 or x.shape[-1] != self.out_planes:
                shortcut = conv(self.out_planes, 3, self.stride, "shortcut", self.dtype)(out)
            out = conv(self.out_planes, 3, self.stride, "conv_2d_1", self.dtype)(out)
            out = nn.swish(norm(self.norm, name="batchnorm_1")(out, train=train, bn_set=bn_set))
            return conv(self.out_planes, 3, 1, "conv_2d_2", self.dtype)(out) + shortcut

    return ActivatedShortcutBlock


def test_dm_errors():
    wrn = R.DMWideResNet(10, 1).state_dict()
    preact = R.DMPreActResNet(18, width=4).state_dict()
    with pytest.raises(ValueError, match="unknown activation 'gelu'; allowed: 'relu', 'swish', 'silu'"):
        jadv.models.from_torch(wrn, "dm_wide_resnet", activation="gelu")
    with pytest.raises(ValueError, match="activation='swish' is only for the DeepMind archs"):
        jadv.models.from_torch(R.WideResNet(10, 1).state_dict(), "wide_resnet", activation="swish")
    with pytest.raises(ValueError, match=r"missing key 'init_conv\.weight' for arch 'dm_wide_resnet'"):
        jadv.models.from_torch(R.WideResNet(10, 1).state_dict(), "dm_wide_resnet")
    trades_like = {"init_conv.weight": wrn["init_conv.weight"], **R.WideResNet(10, 1).state_dict()}
    with pytest.raises(ValueError, match="DeepMind WideResNet's depth.*arch='wide_resnet'"):
        jadv.models.from_torch(trades_like, "dm_wide_resnet")
    with pytest.raises(ValueError, match="missing key 'conv1.weight' for arch 'wide_resnet'"):
        jadv.models.from_torch(wrn, "wide_resnet")
    missing = {k: v for k, v in wrn.items() if k != "layer.1.block.0.shortcut.weight"}
    with pytest.raises(ValueError, match=r"missing keys \(1\): layer\.1\.block\.0\.shortcut\.weight"):
        jadv.models.from_torch(missing, "dm_wide_resnet")
    extra = {**wrn, "layer.0.block.0.shortcut.weight": torch.zeros(16, 16, 1, 1)}    # WRN-10-1 has none there
    with pytest.raises(ValueError, match=r"unknown keys \(1\): layer\.0\.block\.0\.shortcut\.weight"):
        jadv.models.from_torch(extra, "dm_wide_resnet")
    wrong = {**preact, "layer_1.0.shortcut.weight": torch.zeros(8, 4, 1, 1)}       # 1x1 where DM has 3x3
    with pytest.raises(ValueError, match=r"shape mismatches \(1\): layer_1\.0\.shortcut\.weight: \(1, 1, 4, 8\)"):
        jadv.models.from_torch(wrong, "dm_preact_resnet")
    short = {k: v for k, v in preact.items() if not k.startswith("layer_2.1.")}
    with pytest.raises(ValueError, match=r"DeepMind PreActResNet's depth.*\{0: 2, 1: 2, 2: 1, 3: 2\}"):
        jadv.models.from_torch(short, "dm_preact_resnet")
    with pytest.raises(ValueError, match=r"missing the final layer \(fc\.weight, linear\.weight or logits\.weight\)"):
        jadv.models.from_torch({k: v for k, v in wrn.items() if not k.startswith("logits.")}, "dm_wide_resnet")


def test_dm_models_in_the_registry(key):
    """jadv.models.get builds the DM models with depth/width/activation keywords; bad values are
    ValueErrors at construction."""
    for name, kwargs in (("dm_wide_resnet", {"depth": 10, "width": 1, "activation": "relu"}),
                         ("dm_preact_resnet", {"depth": 18, "width": 4, "activation": "silu"})):
        model = jadv.models.get(name, num_classes=5, **kwargs)
        x = jax.random.uniform(key, (2, 16, 16, 3))
        # variable shapes without running the (slow to compile) random initialisers
        shapes = jax.eval_shape(lambda x: model.init(key, x, train=False), x)
        variables = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, 0.05, s.dtype), shapes)
        assert set(variables) == {"params", "batch_stats"}
        logits, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
        assert logits.shape == (2, 5) and logits.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(logits))) and set(updates) == {"batch_stats"}
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        jadv.models.get("dm_wide_resnet", activation="tanh")
    with pytest.raises(ValueError, match="depth must be 6n\\+4"):
        jadv.models.get("dm_wide_resnet", depth=12)
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        jadv.models.get("dm_wide_resnet", width=0)
    with pytest.raises(ValueError, match="DMPreActResNet depth must be 18 or 34"):
        jadv.models.get("dm_preact_resnet", depth=50)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        jadv.models.get("dm_preact_resnet", num_classes=0)


# -- legacy (pre-1.6, non-zip) checkpoint files ------------------------------------------------
class _RunsCode:
    """Unpickling this calls ``open(path, "w")``: a stand-in for an exploit (it creates a file)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_legacy_format_checkpoint_loads_with_weights_only(tmp_path):
    """A checkpoint in PyTorch's legacy pickle format (written by torch < 1.6, as many public robust
    checkpoints were) loads through load_torch_state_dict (torch.load(weights_only=True)) and
    converts to the same logits."""
    import collections

    net = _calibrated(R.DMWideResNet(10, 1, activation="swish"), 32, seed=10)
    path = tmp_path / "legacy.pt"
    torch.save({"state_dict": collections.OrderedDict(net.state_dict()), "epoch": 3, "best_acc": 0.5},
               path, _use_new_zipfile_serialization=False)
    import zipfile
    assert not zipfile.is_zipfile(path)                      # really the legacy format
    sd = jadv.models.load_torch_state_dict(path)
    imported = jadv.models.from_torch(sd, "dm_wide_resnet")
    x = _inputs(2, 32)
    assert np.abs(_jax_logits(imported, x) - _torch_logits(net, x)).max() < TOL


def test_legacy_format_unsafe_pickle_is_refused(tmp_path):
    """The legacy format goes through the same restricted unpickler: an object whose unpickling
    would run code is refused, and the code does not run."""
    marker = tmp_path / "ran"
    path = tmp_path / "unsafe_legacy.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="weights_only=True"):
        jadv.models.load_torch_state_dict(path)
    assert not marker.exists()


# -- further RobustBench architectures -------------------------------------------------------------
# (torch model factory, arch, from_torch options, jadv model fields set after conversion, expected kwargs)
ZOO_CASES = [
    pytest.param(lambda: R.ZooPreActResNet18(), "preact_resnet18", {"shortcut_from": "input"}, {},
                 {"depth": 18, "shortcut_from": "input", "final_norm": False}, id="zoo_preact18_input_shortcut"),
    pytest.param(lambda: R.ZooPreActResNet18(bn_before_fc=True), "preact_resnet18", {"shortcut_from": "input"}, {},
                 {"depth": 18, "shortcut_from": "input", "final_norm": True}, id="zoo_preact18_input_shortcut_bn"),
    pytest.param(lambda: R.BoostingWideResNet(10, 2), "wide_resnet", {"head": "cosine"}, {},
                 {"depth": 10, "width": 2, "head": "cosine"}, id="boosting_wrn_10_2_cosine"),
    pytest.param(lambda: R.RobustWideResNet((16, 32, 64, 48), (1, 2, 1)), "robust_wide_resnet", {}, {},
                 {"channels": (16, 32, 64, 48), "depths": (1, 2, 1), "activation": "relu"}, id="robust_wrn_2021"),
    pytest.param(lambda: R.RobustWideResNet((16, 32, 56, 40), (2, 1, 1), layout="a4", activation="silu"),
                 "robust_wide_resnet", {"activation": "swish"}, {},
                 {"channels": (16, 32, 56, 40), "depths": (2, 1, 1), "activation": "swish"}, id="robust_wrn_a4_silu"),
    pytest.param(lambda: R.PerImageStandardized(R.WideResNet(10, 2)), "wide_resnet", {},
                 {"per_image_standardize": True}, {"depth": 10, "width": 2}, id="mma_wrn_10_2_per_image"),
]


@pytest.mark.parametrize("factory,arch,options,model_fields,expected", ZOO_CASES)
def test_zoo_architectures_match_torch(request, factory, arch, options, model_fields, expected):
    """RobustBench's own PreActResNet-18 (raw-input shortcuts, with and without a final BN), Pang
    et al. 2020's cosine-head WideResNet, Huang et al. 2021/2022's per-stage WideResNets (ReLU;
    WRN-A4 layout with SiLU) and Ding et al. 2020's per-image standardised WideResNet, at small
    widths/depths: random weights, calibrated BN, eval-mode logits equal PyTorch's to 1e-4. Without
    the option the state dict does not record, the logits differ (the option is needed)."""
    case_id = request.node.callspec.id
    model = _calibrated(factory(), 32)
    x = _inputs(4, 32)
    sd = model.state_dict()
    if model_fields:                          # the MMA wrapper holds no weights: convert the inner network
        sd = {k[len("model."):]: v for k, v in sd.items()}
    imported = jadv.models.from_torch(sd, arch, **options)
    assert {k: imported.kwargs[k] for k in expected} == expected
    net = jadv.models.get(imported.name, **{**imported.kwargs, **model_fields})
    ref = _torch_logits(model, x)
    assert ref.std() > 0.05 and np.abs(ref[0] - ref[1]).max() > 1e-2
    out = np.asarray(jax.jit(net.apply)(imported.variables, jnp.asarray(x)))
    diff = float(np.abs(out - ref).max())
    print(f"{case_id}: max abs diff {diff:.2e}")
    assert diff < TOL, f"{case_id}: max abs logit difference {diff:.3g} >= {TOL}"
    assert jadv.models.get(imported.name, **imported.kwargs) == imported.model
    # the option matters: the default (activation shortcut / linear head / no standardisation) differs
    if options.get("shortcut_from") or options.get("head") or model_fields:
        plain = jadv.models.from_torch(sd, arch)
        assert not np.abs(_jax_logits(plain, x) - ref).max() < 100 * TOL


def test_zoo_option_errors():
    wrn = R.WideResNet(10, 1).state_dict()
    preact = R.ZooPreActResNet18().state_dict()
    with pytest.raises(ValueError, match="shortcut_from='input' is only for the pre-activation ResNets"):
        jadv.models.from_torch(wrn, "wide_resnet", shortcut_from="input")
    with pytest.raises(ValueError, match="unknown shortcut_from 'output'; allowed: activation, input"):
        jadv.models.from_torch(preact, "preact_resnet18", shortcut_from="output")
    with pytest.raises(ValueError, match="head='cosine' is only for the WideResNets"):
        jadv.models.from_torch(preact, "preact_resnet18", head="cosine")
    with pytest.raises(ValueError, match="unknown head 'arcface'; allowed: linear, cosine"):
        jadv.models.from_torch(wrn, "wide_resnet", head="arcface")
    with pytest.raises(ValueError, match=r"unknown keys \(1\): fc\.bias"):            # a cosine head has no bias
        jadv.models.from_torch(wrn, "wide_resnet", head="cosine")
    with pytest.raises(ValueError, match="missing key 'stem_conv.weight' for arch 'robust_wide_resnet'"):
        jadv.models.from_torch(wrn, "robust_wide_resnet")
    rwrn = R.RobustWideResNet((16, 32, 64, 48), (1, 2, 1)).state_dict()
    gap = {k: v for k, v in rwrn.items() if not k.startswith("blocks.1.layer.0.")}
    with pytest.raises(ValueError, match=r"RobustWideResNet's stages from the keys.*1: \[1\]"):
        jadv.models.from_torch(gap, "robust_wide_resnet")
    with pytest.raises(ValueError, match="strided stage must change the channel count"):
        jadv.models.get("robust_wide_resnet", channels=(16, 32, 32), depths=(1, 1), strides=(1, 2))
    with pytest.raises(ValueError, match=r"len\(channels\) = len\(depths\) \+ 1"):
        jadv.models.get("robust_wide_resnet", channels=(16, 32), depths=(1, 1))
    with pytest.raises(ValueError, match="shortcut_from must be one of"):
        jadv.models.get("preact_resnet18", shortcut_from="x")


def test_per_image_standardize_matches_torch_and_has_finite_gradients():
    """jadv.models.resnet.per_image_standardize equals the torch formula (unbiased std, floor
    1/sqrt(n)); a constant image (std 0) has a finite input gradient."""
    from jadv.models.resnet import per_image_standardize
    x = _inputs(3, 8)
    x[2] = 0.25                                                   # a constant image: the floor is used
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    std = torch.max(xt.std(dim=(1, 2, 3), keepdim=True), torch.full((3, 1, 1, 1), 1 / (3 * 64) ** 0.5))
    ref = ((xt - xt.mean(dim=(1, 2, 3), keepdim=True)) / std).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(per_image_standardize(jnp.asarray(x))), ref, atol=1e-5)
    g = jax.grad(lambda v: jnp.sum(per_image_standardize(v) * jnp.arange(3.0)))(jnp.asarray(x))
    assert np.all(np.isfinite(np.asarray(g)))
