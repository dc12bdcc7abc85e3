"""jadv.models.robustbench: RobustBench model-zoo names -> (arch, options, mean/std, expected size).

The table is checked for consistency (every entry names a from_torch arch, options from_torch
takes and a model the registry builds; the coverage counts the README quotes), its errors
(unknown names list close ones, unsupported ones say why), and load() on small random PyTorch
checkpoints of the zoo's layouts (checkpoint unwrapping, the size check, the normalisation).
"""
import importlib
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jadv
from jadv.models import robustbench as rb

ft = importlib.import_module("jadv.models.from_torch")     # the module (the function shadows its name)
ft_archs = jadv.models.TORCH_ARCHS


def test_every_entry_resolves_to_a_supported_arch_with_valid_kwargs():
    assert len(rb.ENTRIES) + len(rb.UNSUPPORTED) == 76 + 21 + 38
    for (dataset, threat, name), e in rb.ENTRIES.items():
        assert (e.dataset, e.threat_model, e.name) == (dataset, threat, name)
        assert e.arch in ft_archs, e
        assert set(e.options) <= {"activation", "shortcut_from", "head"}, e
        assert e.expect["num_classes"] == {"cifar10": 10, "cifar100": 100}[dataset]
        assert (e.mean is None) == (e.std is None) and (e.mean is None or len(e.mean) == len(e.std) == 3)
        # the registry builds the model the conversion must produce (constructor checks run here)
        kwargs = {**e.expect, **e.model_kwargs}
        if e.mean is not None:
            kwargs.update(mean=e.mean, std=e.std)
        model = jadv.models.get(e.registry_name, **kwargs)
        if e.registry_name in ("wide_resnet", "dm_wide_resnet"):
            assert (model.depth - 4) % 6 == 0 and model.depth >= 10
        if e.arch in ("dm_wide_resnet", "dm_preact_resnet"):   # the zoo's DM normalisation = from_torch's default
            assert (e.mean, e.std) == ft.DM_DEFAULT_NORMALIZATION[e.expect["num_classes"]]
    for key, reason in rb.UNSUPPORTED.items():
        assert key not in rb.ENTRIES and len(reason) > 20


def test_coverage_counts():
    """The README's coverage numbers: CIFAR-10 L-inf 64 of 76 (62 of the mid-2024 73), L2 20 of 21,
    CIFAR-100 L-inf 31 of 38."""
    c = rb.coverage("cifar10", "Linf")
    assert (c["convertible"], c["total"]) == (64, 76)
    assert sorted(c["unsupported"]) == sorted([
        "Chen2020Adversarial", "Sehwag2021Proxy_ResNest152", "Dai2021Parameterizing", "Kang2021Stable",
        "Debenedetti2022Light_XCiT-S12", "Debenedetti2022Light_XCiT-M12", "Debenedetti2022Light_XCiT-L12",
        "Bai2023Improving_edm", "Peng2023Robust", "Bai2024MixedNUTS", "Amini2024MeanSparse_Ra_WRN_70_16",
        "Amini2024MeanSparse_S-WRN-94-16"])
    legacy = [n for n in rb.names("cifar10", "Linf") if n not in rb._LATER_CIFAR10_LINF] + list(rb.LEGACY_CIFAR10_LINF)
    assert len(legacy) == 73 and sum(("cifar10", "Linf", n) in rb.ENTRIES for n in legacy) == 62
    assert (rb.coverage("cifar10", "L2")["convertible"], rb.coverage("cifar10", "L2")["total"]) == (20, 21)
    assert (rb.coverage("cifar100", "Linf")["convertible"], rb.coverage("cifar100", "Linf")["total"]) == (31, 38)
    archs = [rb.ENTRIES[("cifar10", "Linf", n)].arch for n in rb.names("cifar10", "Linf", supported_only=True)]
    assert {a: archs.count(a) for a in set(archs)} == {
        "wide_resnet": 31, "dm_wide_resnet": 20, "dm_preact_resnet": 4, "resnet18": 3, "robust_wide_resnet": 3,
        "preact_resnet18": 2, "resnet50": 1}


def test_errors_name_close_entries_and_reasons():
    with pytest.raises(ValueError, match=r"unknown RobustBench cifar10 Linf model 'Carmon2019'; close names: "
                                         r"Carmon2019Unlabeled"):
        rb.entry("Carmon2019")
    with pytest.raises(ValueError, match=r"'Rony2019Decoupling' \(it is a cifar10 L2 model"):
        rb.entry("Rony2019Decoupling")
    with pytest.raises(ValueError, match="not supported by jadv.models.from_torch: SODEF"):
        rb.entry("Kang2021Stable")
    with pytest.raises(ValueError, match="before 2024-11"):
        rb.entry("Amini2024MeanSparse")
    with pytest.raises(ValueError, match="no cifar100 L2 track"):
        rb.entry("Standard", "cifar100", "L2")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        rb.entry("Standard", "imagenet")
    with pytest.raises(ValueError, match="unknown threat model 'l1'"):
        rb.names("cifar10", "l1")
    assert rb.entry("Standard", "cifar10", "l2").threat_model == "L2"       # case-insensitive track names


torch = pytest.importorskip("torch", reason="load() on PyTorch checkpoints needs torch (pip install -e '.[dev]')")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference_models as R  # noqa: E402


def _logits(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()


def test_load_unwraps_checks_size_and_normalisation(tmp_path):
    """Andriushchenko2020Understanding's checkpoint holds {"last": ..., "best": ...} (RobustBench
    loads "last"); its jadv model has raw-input shortcuts, no final BN, no normalisation. A
    checkpoint of another size under a zoo name, or buffers that disagree with the zoo's mean/std,
    are errors."""
    calib = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    last = R.randomize_(R.ZooPreActResNet18(), calib, seed=3)
    best = R.randomize_(R.ZooPreActResNet18(), calib, seed=4)
    torch.save({"last": last.state_dict(), "best": best.state_dict()}, tmp_path / "andriushchenko.pt")
    imported = rb.load("Andriushchenko2020Understanding", str(tmp_path / "andriushchenko.pt"))
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    out = np.asarray(jax.jit(imported.model.apply)(imported.variables, jnp.asarray(x)))
    assert np.abs(out - _logits(last, x)).max() < 1e-4
    assert "mean" not in imported.kwargs and imported.kwargs["final_norm"] is False

    with pytest.raises(ValueError, match=r"does not hold RobustBench's Carmon2019Unlabeled.*depth=10 "
                                         r"\(RobustBench: 28\), width=1 \(RobustBench: 10\)"):
        rb.load("Carmon2019Unlabeled", R.WideResNet(10, 1).state_dict())
    wrong_norm = R.Normalized(R.ZooPreActResNet18(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).state_dict()
    with pytest.raises(ValueError, match="disagrees with the normalisation buffer"):
        rb.load("Wong2020Fast", wrong_norm)


def test_load_sets_model_only_fields():
    """Ding2020MMA: the WideResNet-28-4 weights convert as a plain WideResNet; the entry's
    per-image standardisation (no variables) is set on the returned model and its kwargs. A small
    checkpoint fails the size check, so the entry is checked on a WRN-10-1 (a copy of the entry
    expecting that size, through rb.convert)."""
    import dataclasses
    e = rb.ENTRIES[("cifar10", "Linf", "Ding2020MMA")]
    assert e.model_kwargs == {"per_image_standardize": True} and e.expect["width"] == 4
    small = dataclasses.replace(e, expect={"depth": 10, "width": 1, "num_classes": 10})
    calib = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    inner = R.randomize_(R.WideResNet(10, 1), calib, seed=6)
    net = R.PerImageStandardized(inner).eval()
    imported = rb.convert(small, inner.state_dict())
    assert imported.model.per_image_standardize and imported.kwargs["per_image_standardize"] is True
    assert jadv.models.get(imported.name, **imported.kwargs) == imported.model
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    out = np.asarray(jax.jit(imported.model.apply)(imported.variables, jnp.asarray(x)))
    assert np.abs(out - _logits(net, x)).max() < 1e-4
