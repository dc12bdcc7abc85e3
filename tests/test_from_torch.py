"""jadv.models.from_torch: PyTorch state_dict -> jadv Flax model with the same logits.

For every RobustBench architecture, a PyTorch reference model (tests/torch_reference_models.py)
with random weights and calibrated BN statistics is converted, and the jadv model must give the
same logits in eval mode (max abs diff < 1e-4 in float32) on random inputs. A deliberately wrong
conversion must fail the same check, and bad state dicts must give errors naming the keys.
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
