"""experiments/import_model.py end to end: a random-weight PyTorch WideResNet -> torch.save ->
import_model.py -> a workdir that load_trained, evaluate.py and filter_lens.py read.

The WideResNet is a WRN-10-1 (arch "wide_resnet", depth and width read from the keys): the same
converter code path as WRN-28-10/34-10, small enough for a CPU test. Data: the embedded
colored_digits (32x32 RGB), no download.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the interop tests need torch (pip install -e '.[dev]')")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference_models as R  # noqa: E402

import jadv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = (0.45, 0.42, 0.40), (0.27, 0.26, 0.28)
N_TEST = 16


def _torch_wrn(seed):
    net = R.WideResNet(10, 1, num_classes=10)
    calib = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return R.randomize_(net, calib, seed=seed)


def _torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.array(x.transpose(0, 3, 1, 2), np.float32))).numpy()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Two imported workdirs: "std" via the command line (a torch.save file of a model wrapped
    with mu/sigma buffers), "rob" via main() (a safetensors file, mean/std as arguments)."""
    tmp = tmp_path_factory.mktemp("import")
    std_net = R.Normalized(_torch_wrn(1), MEAN, STD).eval()
    torch.save({"state_dict": std_net.state_dict(), "epoch": 100}, tmp / "standard.pt")
    wd_std = str(tmp / "wd_standard")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "import_model.py"),
                           "--checkpoint", str(tmp / "standard.pt"), "--arch", "wide_resnet",
                           "--workdir", wd_std, "--dataset", "colored_digits"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported" in proc.stdout and "wide_resnet" in proc.stdout

    rob_net = _torch_wrn(2)
    from safetensors.torch import save_file
    save_file(rob_net.state_dict(), str(tmp / "robust.safetensors"))
    wd_rob = str(tmp / "wd_robust")
    return {"tmp": tmp, "std": (std_net, wd_std), "rob": (R.Normalized(rob_net, MEAN, STD).eval(), wd_rob)}


@pytest.fixture(scope="module")
def import_script():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import importlib.util
    spec = importlib.util.spec_from_file_location("jadv_import_model", os.path.join(ROOT, "experiments", "import_model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def both(imported, import_script):
    _, wd_rob = imported["rob"]
    if not os.path.exists(os.path.join(wd_rob, "config.json")):
        import_script.main(["--checkpoint", str(imported["tmp"] / "robust.safetensors"), "--arch", "wide_resnet",
                            "--workdir", wd_rob, "--dataset", "colored_digits",
                            "--mean", *map(str, MEAN), "--std", *map(str, STD)])
    return imported


def _test_images():
    test = jadv.data.load("colored_digits", "test")
    return jadv.data.to_float(test.images[:N_TEST]), test.labels[:N_TEST]


def test_workdir_layout_and_load_trained(both):
    x, _ = _test_images()
    for kind in ("std", "rob"):
        net, wd = both[kind]
        assert sorted(os.listdir(wd)) == ["checkpoint_meta.json", "checkpoints", "config.json", "import.json"]
        config = json.load(open(os.path.join(wd, "config.json")))
        assert config["model"]["name"] == "wide_resnet" and config["model"]["kwargs"] == {"depth": 10, "width": 1}
        np.testing.assert_allclose(config["model"]["mean"], MEAN, rtol=1e-6)
        np.testing.assert_allclose(config["model"]["std"], STD, rtol=1e-6)
        assert config["num_classes"] == 10 and config["input_shape"] == [32, 32, 3]
        assert config["dataset"] == "colored_digits" and config["objective"]["name"] == "standard"
        assert len(config["imported"]["sha256"]) == 64 and config["imported"]["arch"] == "wide_resnet"
        # the workdir rebuilds the PyTorch model: same logits on real images
        model, variables, _ = jadv.train.load_trained(wd)
        out = np.asarray(jax.jit(model.apply)(variables, x))
        assert np.abs(out - _torch_logits(net, x)).max() < 1e-4
        # and import.json's probe logits are the PyTorch model's on the documented probe input
        record = json.load(open(os.path.join(wd, "import.json")))
        probe = np.random.default_rng(record["probe"]["seed"]).random((record["probe"]["batch"], 32, 32, 3),
                                                                      dtype=np.float32)
        assert np.abs(np.asarray(record["probe"]["logits"]) - _torch_logits(net, probe)).max() < 1e-4
    assert json.load(open(os.path.join(both["std"][1], "import.json")))["normalization_keys"] == ["mu", "sigma"]


def test_evaluate_imported_workdir(both, load_repo_module, tmp_path):
    evaluate = load_repo_module("experiments/evaluate.py", "jadv_evaluate_for_import")
    net, wd = both["std"]
    out = str(tmp_path / "eval.json")
    eps = 8 / 255
    result = evaluate.evaluate_workdir(wd, suite="pgd", eps=eps, steps=3, restarts=1, n_test=N_TEST,
                                       batch_size=8, out=out)
    x, y = _test_images()
    torch_acc = float(np.mean(_torch_logits(net, x).argmax(1) == y))
    assert result["clean_accuracy"] == pytest.approx(torch_acc, abs=1e-9)
    assert 0.0 <= result["robust_accuracy"] <= result["clean_accuracy"]
    assert result["n_test"] == N_TEST and result["model"] == "wide_resnet" and result["dataset"] == "colored_digits"
    assert json.load(open(out))["per_attack"] == result["per_attack"]


def test_filter_lens_on_imported_pair(both, load_repo_module, tmp_path):
    from jadv.studies import filter_lens as study
    from jadv.studies.gates import gate_spec
    config = load_repo_module("configs/filter_lens.py", "jadv_config_filter_lens_for_import").get_config("smoke")
    config.pair_workdirs = (f"standard:{both['std'][1]}", f"robust:{both['rob'][1]}")
    config.import_workdirs = (f"robust:{both['rob'][1]}",)
    config.gates["imported/wd_robust"] = gate_spec(clean=0.0, source="converted random-weight checkpoint: "
                                                   "initialisation unknown, so no init cosine gate")
    wd = str(tmp_path / "lens")
    record = study.run(config, wd)
    assert not os.path.exists(os.path.join(wd, "models"))           # nothing was trained
    res = record["results"]
    test = jadv.data.load("colored_digits", "test")
    n = config.train.test_size
    x, y = np.asarray(jadv.data.to_float(test.images[:n])), test.labels[:n]
    for kind, key in (("standard", "std"), ("robust", "rob")):
        layers = res["models"][kind]["layers"]
        assert len(layers) == 7                      # WRN-10-1: conv1 + 3 blocks x 2 3x3 convs (+ 2 1x1 shortcuts)
        assert res["models"][kind]["train"]["workdir"] == os.path.abspath(both[key][1])
        # gates: the study's own clean accuracy of the PyTorch model; a converted checkpoint has no init
        ev = res["models"][kind]["evaluation"]
        assert ev["dataset"] == "colored_digits" and ev["n_clean"] == n
        torch_acc = float(np.mean(_torch_logits(both[key][0], x).argmax(1) == y))
        assert ev["clean_accuracy"] == pytest.approx(torch_acc, abs=1e-9)
        assert res["models"][kind]["init_cosine"]["layers"] is None
        assert res["gate_measurements"][kind]["init_cosine"] is None
        # the measured first layer is the PyTorch conv1 (OIHW -> HWIO)
        sd = both[key][0].state_dict()
        direct = study.depth_metrics(jadv.models.from_torch(sd, "wide_resnet").variables["params"])
        for metric in ("sparsity", "variance_entropy", "orthogonality", "n_filters"):
            assert layers[0][metric] == pytest.approx(direct["layers"][0][metric], rel=1e-6, abs=1e-9)
    assert [c["id"] for c in record["claims"]] == ["4.1", "4.2", "4.3", "4.4"]
    for c in record["claims"]:                   # the smoke gates ask for an init cosine: not measured
        assert c["verdict"] == "inconclusive" and "cos(layer, init) not measured" in c["measured"]
    assert res["imported"][0]["by_depth"] == res["models"]["robust"]["by_depth"]
    assert study.gate_records(config, res)["imported/wd_robust"]["met"]
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"
    with pytest.raises(ValueError, match="needs both kinds"):
        config.pair_workdirs = (f"robust:{both['rob'][1]}",)
        study.run(config, str(tmp_path / "other"))


def test_import_errors(both, import_script, tmp_path):
    ckpt = str(both["tmp"] / "standard.pt")
    wd = both["std"][1]
    with pytest.raises(FileExistsError, match="already holds a config.json"):
        import_script.import_checkpoint(ckpt, "wide_resnet", wd, dataset="colored_digits")
    with pytest.raises(ValueError, match="10 outputs but cifar100 has 100 classes"):
        import_script.import_checkpoint(ckpt, "wide_resnet", str(tmp_path / "a"), dataset="cifar100")
    with pytest.raises(ValueError, match="3 input channels but input_shape is"):
        import_script.import_checkpoint(ckpt, "wide_resnet", str(tmp_path / "b"), dataset="digits")
    with pytest.raises(ValueError, match="missing keys"):
        import_script.import_checkpoint(ckpt, "wrn28_10", str(tmp_path / "c"), dataset="colored_digits")
    # --overwrite replaces a workdir that held another model (its structure record too)
    other = str(tmp_path / "other")
    small = R.WideResNet(10, 1, num_classes=10)
    torch.save(small.state_dict(), tmp_path / "small.pt")
    import_script.import_checkpoint(str(tmp_path / "small.pt"), "wide_resnet", other, dataset="cifar10")
    wide = R.WideResNet(10, 2, num_classes=10)
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    import_script.import_checkpoint(str(tmp_path / "wide.pt"), "wide_resnet", other, dataset="cifar10",
                                    overwrite=True)
    model, _, config = jadv.train.load_trained(other)
    assert model.width == 2 and config.dataset == "cifar10"


@pytest.mark.slow
def test_robustbench_name_end_to_end(import_script, tmp_path, capsys):
    """--robustbench Wong2020Fast: a random-weight PyTorch model of the zoo's own layout (RobustBench
    PreActResNet-18: raw-input shortcuts, no final BN, CIFAR-10 mu/sigma buffers) saved with
    torch.save, imported by name with no --arch/--mean/--std; the workdir gives the PyTorch logits
    and records the zoo entry."""
    calib = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    net = R.Normalized(R.randomize_(R.ZooPreActResNet18(), calib, seed=5), *jadv.models.robustbench.CIFAR10).eval()
    torch.save(net.state_dict(), tmp_path / "wong.pt")
    wd = str(tmp_path / "wd_wong")
    out = import_script.main(["--robustbench", "Wong2020Fast", "--checkpoint", str(tmp_path / "wong.pt"),
                              "--workdir", wd])
    assert "RobustBench cifar10 Linf Wong2020Fast" in capsys.readouterr().out
    assert out["model"] == "preact_resnet" and out["robustbench"]["name"] == "Wong2020Fast"
    assert out["model_kwargs"]["shortcut_from"] == "input" and out["model_kwargs"]["final_norm"] is False
    model, variables, config = jadv.train.load_trained(wd)
    assert config.imported.robustbench.threat_model == "Linf"
    x = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    assert np.abs(np.asarray(jax.jit(model.apply)(variables, x)) - _torch_logits(net, x)).max() < 1e-4

    # an unknown name: a usage error (exit 2) naming close names, before any file is read
    with pytest.raises(SystemExit) as exc:
        import_script.main(["--robustbench", "Wong2020", "--checkpoint", "nonexistent.pt", "--workdir", wd])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown RobustBench cifar10 Linf model 'Wong2020'" in err and "Wong2020Fast" in err
    # an unsupported one says why; a checkpoint of another size is refused; --arch conflicts
    with pytest.raises(SystemExit):
        import_script.main(["--robustbench", "Debenedetti2022Light_XCiT-S12", "--checkpoint", "x.pt", "--workdir", wd])
    assert "XCiT vision transformer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not hold RobustBench's Wong2020Fast.*final_norm=True"):
        torch.save(R.PreActResNet18().state_dict(), tmp_path / "rice.pt")
        import_script.import_checkpoint(str(tmp_path / "rice.pt"), None, str(tmp_path / "wd2"),
                                        robustbench="Wong2020Fast")
    with pytest.raises(ValueError, match="drop --arch"):
        import_script.import_checkpoint(str(tmp_path / "wong.pt"), "preact_resnet18", str(tmp_path / "wd3"),
                                        robustbench="Wong2020Fast")
    with pytest.raises(SystemExit):
        import_script.main(["--checkpoint", str(tmp_path / "wong.pt"), "--workdir", str(tmp_path / "wd4")])
    assert "exactly one of --arch and --robustbench" in capsys.readouterr().err
