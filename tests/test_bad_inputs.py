"""Bad inputs from an audit that used to be accepted silently (or failed with an unclear error)
now get a ValueError/TypeError that says what is wrong and what is allowed (DESIGN.md section 3).

Each check is cheap and trace-safe: it looks at shapes and Python values only, so attacks still
jit and vmap (over eps in particular).
"""
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jadv
import jadv.data as D
from jadv import attacks as A
from jadv.attacks import projections as _projections
from jadv.data import registry as _registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------- attacks
# the attacks with small valid defaults, as in tests/test_attacks_errors.py
from test_attacks_errors import ATTACKS, KEY, X, Y, f  # noqa: E402


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_non_scalar_eps_is_refused(name):
    run = ATTACKS[name]
    # one eps per example (B = 3) used to broadcast silently
    with pytest.raises(ValueError, match=r"eps must be a scalar.*shape \(3,\).*vmap"):
        run(eps=jnp.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="eps must be a scalar"):
        run(eps=[0.1])
    with pytest.raises(ValueError, match="eps must be a scalar"):
        run(eps=np.full((1, 1), 0.1))
    with pytest.raises(TypeError, match="eps must be a real number"):
        run(eps="0.1")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_scalar_eps_forms_and_vmap_over_eps_still_work(name):
    run = ATTACKS[name]
    for eps in (0.1, np.float32(0.1), jnp.asarray(0.1), np.asarray(0.1), 0):
        assert run(eps=eps).shape == X.shape
    grid = jnp.array([0.0, 0.05, 0.1])
    out = jax.jit(jax.vmap(lambda e: run(eps=e)))(grid)
    assert out.shape == (3, *X.shape)
    for i, e in enumerate(np.asarray(grid)):
        assert float(jnp.max(jnp.abs(out[i] - X))) <= e + 1e-6
    # a traced scalar under jit alone
    assert jax.jit(lambda e: run(eps=e))(0.1).shape == X.shape


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_empty_batch_is_refused(name):
    x0, y0 = jnp.zeros((0, 2, 2, 3)), jnp.zeros((0,), jnp.int32)
    with pytest.raises(ValueError, match=r"empty batch.*shape \(0, 2, 2, 3\).*at least one example"):
        ATTACKS[name](x=x0, y=y0)


def test_empty_batch_pgd_generic():
    with pytest.raises(ValueError, match="empty batch"):
        A.pgd_generic(lambda xa: jnp.sum(xa, axis=(1, 2, 3)), jnp.zeros((0, 2, 2, 3)), key=KEY, eps=0.1,
                      step_size=0.01, steps=1)


def test_non_scalar_eps_and_step_size_pgd_generic():
    loss = lambda xa: jnp.sum(f(xa), -1)  # noqa: E731
    with pytest.raises(ValueError, match="eps must be a scalar"):
        A.pgd_generic(loss, X, key=KEY, eps=jnp.array([0.1, 0.2, 0.3]), step_size=0.01, steps=1)
    with pytest.raises(ValueError, match="step_size must be a scalar"):
        A.pgd_generic(loss, X, key=KEY, eps=0.1, step_size=jnp.array([0.1, 0.2, 0.3]), steps=1)
    with pytest.raises(ValueError, match="step_size must be a scalar"):
        ATTACKS["pgd"](step_size=jnp.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="step_size must be a scalar"):
        ATTACKS["fgsm"](step_size=jnp.array([0.1, 0.2, 0.3]))


# ---------------------------------------------------------------------------- PGD default init
def test_pgd_default_init_follows_the_norm():
    kw = dict(key=KEY, step_size=0.1, steps=3)
    # L2 with the default init used to raise "init 'uniform' is not defined for norm 'l2'"
    l2 = A.pgd(f, X, Y, eps=0.5, norm="l2", **kw)
    np.testing.assert_array_equal(l2, A.pgd(f, X, Y, eps=0.5, norm="l2", init="ball", **kw))
    np.testing.assert_array_equal(l2, A.pgd(f, X, Y, eps=0.5, norm="l2", init=None, **kw))
    assert float(jnp.max(A.per_example_norm(l2 - X, "l2"))) <= 0.5 + 1e-5
    linf = A.pgd(f, X, Y, eps=0.1, **kw)
    np.testing.assert_array_equal(linf, A.pgd(f, X, Y, eps=0.1, init="uniform", **kw))
    assert _projections.DEFAULT_INITS == {"linf": "uniform", "l2": "ball"}
    # pgd_generic follows the same rule
    loss = lambda xa: jnp.sum(f(xa), -1)  # noqa: E731
    g = A.pgd_generic(loss, X, eps=0.5, norm="l2", **kw)
    np.testing.assert_array_equal(g, A.pgd_generic(loss, X, eps=0.5, norm="l2", init="ball", **kw))
    # the spec layer (robust_accuracy dicts) gets the same default
    _, attack = A.make_attack({"name": "pgd", "eps": 0.5, "norm": "l2", "step_size": 0.1, "steps": 3})
    np.testing.assert_array_equal(attack(f, X, Y, KEY), l2)
    res = A.robust_accuracy(f, X, Y, [{"name": "pgd", "eps": 0.5, "norm": "l2", "step_size": 0.1, "steps": 3}],
                            key=KEY, progress=False)
    assert 0.0 <= res["robust_accuracy"] <= 1.0


def test_pgd_explicit_init_that_does_not_fit_the_norm_is_still_an_error():
    with pytest.raises(ValueError, match=r"init 'uniform' is not defined for norm 'l2'.*init=None"):
        ATTACKS["pgd"](init="uniform", norm="l2", eps=0.5)
    with pytest.raises(ValueError, match="init 'ball' is not defined for norm 'linf'"):
        ATTACKS["pgd"](init="ball")
    with pytest.raises(ValueError, match="unknown init"):
        ATTACKS["pgd"](init="gaussian")
    with pytest.raises(ValueError, match="init 'sphere' is not defined for norm 'linf'"):
        A.pgd_generic(lambda xa: jnp.sum(f(xa), -1), X, key=KEY, eps=0.1, step_size=0.01, steps=1, init="sphere")


# ---------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", jadv.models.available())
@pytest.mark.parametrize("k", [0, -3])
def test_num_classes_not_positive_in_registry(name, k):
    with pytest.raises(ValueError, match=rf"num_classes must be an int >= 1.*got {k}"):
        jadv.models.get(name, num_classes=k)


@pytest.mark.parametrize("cls", [jadv.models.Linear, jadv.models.MLP, jadv.models.SmallCNN,
                                 jadv.models.PreActResNet, jadv.models.ResNet, jadv.models.CifarResNet,
                                 jadv.models.WideResNet])
def test_num_classes_and_normalisation_in_module_classes(cls):
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        cls(num_classes=0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        cls(num_classes=2.5)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        cls(num_classes=True)
    with pytest.raises(ValueError, match=r"std must be > 0.*got \(0\.0,\)"):
        cls(std=(0.0,))
    assert cls(num_classes=1).num_classes == 1      # logistic regression head is allowed


def test_normalisation_std_and_mean_checks():
    get = jadv.models.get
    for std in ((0.0,), (0.2, 0.0, 0.2), (-1.0,), (float("nan"),), (float("inf"),)):
        with pytest.raises(ValueError, match="std must be > 0 and finite"):
            get("small_cnn", std=std)
    with pytest.raises(ValueError, match="mean must be finite"):
        get("small_cnn", mean=(float("nan"),))
    with pytest.raises(ValueError, match="mean has 3 values but std has 2"):
        get("small_cnn", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2))
    with pytest.raises(ValueError, match="std needs at least one value"):
        get("small_cnn", std=())
    with pytest.raises(ValueError, match="std must be > 0"):
        jadv.models.InputNormalize(mean=(0.0,), std=(0.0,))
    # a 3-channel mean for a 1-channel input used to broadcast the image to 3 channels
    model = get("small_cnn", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), widths=())
    with pytest.raises(ValueError, match=r"mean has 3 values but the input has 1 channel.*give 1 value"):
        jadv.models.init_variables(model, jax.random.key(0), (1, 8, 8, 1))
    v = jadv.models.init_variables(model, jax.random.key(0), (1, 8, 8, 3))   # fits 3 channels
    with pytest.raises(ValueError, match="std has 3 values"):
        jadv.models.InputNormalize(mean=(0.0,), std=(1.0, 1.0, 1.0)).apply({}, jnp.zeros((1, 4, 4, 2)))
    # the checks are static: the model still jits and vmaps
    out = jax.jit(lambda x: model.apply(v, x))(jnp.zeros((2, 8, 8, 3)))
    assert out.shape == (2, 10)
    # one value broadcast over every channel stays allowed
    m1 = get("small_cnn", mean=(0.5,), std=(0.25,), widths=())
    jadv.models.init_variables(m1, jax.random.key(0), (1, 8, 8, 3))


# ---------------------------------------------------------------------------- from_torch
def _torch_wrn():
    torch = pytest.importorskip("torch", reason="the interop tests need torch (pip install -e '.[dev]')")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference_models as R
    torch.manual_seed(0)
    return torch, R.WideResNet(10, 1, num_classes=10).eval()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_from_torch_refuses_non_finite_weights(bad):
    torch, net = _torch_wrn()
    sd = {k: v.clone() for k, v in net.state_dict().items()}   # state_dict() shares memory
    sd["block2.layer.0.conv1.weight"][0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"'block2\.layer\.0\.conv1\.weight'.*(NaN|Inf)"):
        jadv.models.from_torch(sd, "wide_resnet")
    sd = {k: v.clone() for k, v in net.state_dict().items()}   # state_dict() shares memory
    sd["bn1.running_var"][3] = bad        # a batch-norm buffer
    with pytest.raises(ValueError, match=r"'bn1\.running_var'"):
        jadv.models.from_torch(sd, "wide_resnet")
    # numpy arrays (a safetensors file) are checked too
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    sd["fc.bias"][2] = bad
    with pytest.raises(ValueError, match=r"'fc\.bias'"):
        jadv.models.from_torch(sd, "wide_resnet")
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    jadv.models.from_torch(sd, "wide_resnet")   # the clean state dict converts


def test_from_torch_refuses_non_finite_normalisation_buffer():
    torch, net = _torch_wrn()
    sd = dict(net.state_dict())
    sd = {f"model.{k}": v for k, v in sd.items()}
    sd["mu"] = torch.tensor([0.5, float("nan"), 0.5]).reshape(1, 3, 1, 1)
    sd["sigma"] = torch.tensor([0.2, 0.2, 0.2]).reshape(1, 3, 1, 1)
    with pytest.raises(ValueError, match=r"'mu'.*NaN"):
        jadv.models.from_torch(sd, "wide_resnet")


def test_import_model_cli_refuses_nan_weights(tmp_path):
    torch, net = _torch_wrn()
    sd = {k: v.clone() for k, v in net.state_dict().items()}   # state_dict() shares memory
    sd["conv1.weight"][1, 2, 0, 0] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    spec = importlib.util.spec_from_file_location("import_model_cli",
                                                  os.path.join(ROOT, "experiments", "import_model.py"))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(ValueError, match=r"'conv1\.weight'.*NaN"):
        cli.main(["--checkpoint", str(tmp_path / "nan.pt"), "--arch", "wide_resnet",
                  "--workdir", str(tmp_path / "wd"), "--dataset", "colored_digits"])
    assert not (tmp_path / "wd" / "config.json").exists()


# ---------------------------------------------------------------------------- image folders


def _png(array):
    import io

    from PIL import Image
    buf = io.BytesIO()
    arr = np.asarray(array)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def _write_tree(root, classes, splits=("train", "test"), n=2, channels=3, skip=()):
    """``root/<split>/<class>/<i>.png``, one distinct image per file; ``skip``: (split, class) left out.
    Returns {split: {class: [arrays]}}."""
    rng = np.random.default_rng(0)
    tree = {}
    for split in splits:
        tree[split] = {}
        for c in classes:
            if (split, c) in skip:
                continue
            d = os.path.join(root, split, c)
            os.makedirs(d, exist_ok=True)
            tree[split][c] = []
            for i in range(n):
                im = rng.integers(0, 256, (4, 4, channels), dtype=np.uint8)
                tree[split][c].append(im)
                with open(os.path.join(d, f"{i:04d}.png"), "wb") as fh:
                    fh.write(_png(im))
    return tree


def test_cifar10_folder_missing_a_class_is_refused(env):
    # the README's copy: train/<class>/, test/<class>/; "truck" left out everywhere
    _write_tree(env / "cifar10", D.CIFAR10_CLASSES[:9])
    with pytest.raises(ValueError, match=r"cifar10.*missing.*'truck'.*10 classes") as e:
        D.load("cifar10", "test", data_dir=env)
    assert "airplane" in str(e.value)          # the message lists what is expected
    # the same tree as an archive (the real copy is cifar10-jpeg.tar.xz)
    import tarfile
    with tarfile.open(env / "cifar10-jpeg.tar.gz", "w:gz") as tf:
        tf.add(env / "cifar10", arcname="cifar10")
    import shutil
    shutil.rmtree(env / "cifar10")
    with pytest.raises(ValueError, match="missing.*'truck'"):
        D.load("cifar10", "train", data_dir=env)


def test_cifar10_folder_missing_a_class_in_one_split_is_refused(env):
    _write_tree(env / "cifar10", D.CIFAR10_CLASSES, skip={("test", "cat"), ("test", "dog")})
    with pytest.raises(ValueError, match=r"split 'test'.*missing.*'cat', 'dog'"):
        D.load("cifar10", "test", data_dir=env)
    # train has every class and loads
    ds = D.load("cifar10", "train", data_dir=env)
    assert ds.class_names == D.CIFAR10_CLASSES and len(ds) == 20


def test_cifar10_folder_with_unknown_class_is_refused(env):
    _write_tree(env / "cifar10", (*D.CIFAR10_CLASSES, "zebra"))
    with pytest.raises(ValueError, match=r"unknown class folder.*'zebra'"):
        D.load("cifar10", "train", data_dir=env)


def test_complete_folders_keep_canonical_labels(env):
    tree = _write_tree(env / "cifar10", D.CIFAR10_CLASSES)
    ds = D.load("cifar10", "test", data_dir=env)
    assert ds.class_names == D.CIFAR10_CLASSES and ds.num_classes == 10
    for k, c in enumerate(D.CIFAR10_CLASSES):
        got = ds.images[ds.labels == k]
        assert len(got) == 2
        assert {im.tobytes() for im in got} == {im.tobytes() for im in tree["test"][c]}
    # loading again from the .npz cache gives the same
    again = D.load("cifar10", "test", data_dir=env)
    np.testing.assert_array_equal(again.labels, ds.labels)
    # MNIST with digit folders: label = the digit, even though 9 of 10 would renumber today
    _write_tree(env / "mnist", [str(d) for d in range(10)], channels=1)
    m = D.load("mnist", "train", data_dir=env)
    assert m.class_names == tuple("0123456789") and m.images.shape[-1] == 1
    # Fashion-MNIST: folder names are the class names with '/' and ' ' written as '_' (or digits)
    names = [c.replace("/", "_").replace(" ", "_") for c in _registry.FASHION_MNIST_CLASSES]
    _write_tree(env / "fashion_mnist", names, channels=1)
    fm = D.load("fashion_mnist", "test", data_dir=env)
    assert fm.class_names == _registry.FASHION_MNIST_CLASSES


def test_mnist_folder_missing_a_digit_is_refused(env):
    _write_tree(env / "mnist", [str(d) for d in range(10) if d != 7], channels=1)
    with pytest.raises(ValueError, match=r"mnist.*missing.*'7'"):
        D.load("mnist", "train", data_dir=env)


def test_generic_image_folder_stays_free_form(env):
    """A folder read without a known class list keeps its own classes (sorted folder names)."""
    _write_tree(env / "pets", ("dog", "cat"))
    ds = D.load_image_folder(env / "pets", "train", name="pets")
    assert ds.class_names == ("cat", "dog")
    with pytest.raises(ValueError, match=r"missing.*'bird'"):
        D.load_image_folder(env / "pets", "train", name="pets", classes=("bird", "cat", "dog"))
    with pytest.raises(ValueError, match="classes must be"):
        D.load_image_folder(env / "pets", "train", name="pets", classes=("cat", "cat"))
