"""The NNX and Equinox examples (examples/*.py) on tiny settings: jadv's attacks and curvature
functions work on models of other JAX frameworks.

For each framework: the example's command line trains a small model on the embedded 8x8 digits,
attacks it with PGD (eps-ball and box hold, accuracy drops, loss rises), evaluates it with
robust_accuracy and computes its Hessian spectrum; on a tiny
model the Lanczos top eigenvalues, HVPs and the Hutchinson trace over the framework's parameter
pytree match ``jax.hessian`` + ``numpy.linalg.eigh``.
"""
import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jadv

pytest.importorskip("equinox", reason="the Equinox example needs equinox (pip install -e '.[dev]')")

EPS = 0.2


@pytest.fixture(scope="module")
def digits():
    train = jadv.data.load("digits", "train")
    return jadv.data.to_float(train.images), train.labels


def _load(load_repo_module, name):
    return load_repo_module(f"examples/{name}.py", f"jadv_example_{name}")


FRAMEWORKS = {
    # example module, kwargs of a tiny model for the exact Hessian
    "nnx": ("nnx_example", {"channels": 2}),
    "equinox": ("equinox_example", {"hidden": 4, "depth": 1}),
}


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_example_attacks_framework_model(framework, load_repo_module, capsys):
    """The example's command line on tiny settings; its returned results are checked."""
    ex = _load(load_repo_module, FRAMEWORKS[framework][0])
    res = ex.main(["--steps", "150", "--eps", str(EPS), "--attack_steps", "10", "--n_test", "128",
                   "--curvature_examples", "32", "--lanczos_iters", "8", "--trace_samples", "4"])
    out = capsys.readouterr().out
    for line in ("clean test accuracy", f"PGD-10 Linf {EPS:g} accuracy", "robust_accuracy:", "top Hessian eigenvalues"):
        assert line in out
    model, x, y, x_adv = res["model"], res["x"], res["y"], np.asarray(res["x_adv"])
    clean = res["clean_accuracy"]
    assert clean > 0.8, f"{framework}: the trained model is too weak to test attacks ({clean:.3f})"

    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= EPS + 1e-6                    # inside the Linf ball
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0                 # inside the image box
    assert res["pgd_accuracy"] == pytest.approx(ex.accuracy(model, x_adv, y))
    assert res["pgd_accuracy"] < clean - 0.3, f"{framework}: PGD barely hurts ({clean:.3f} -> {res['pgd_accuracy']:.3f})"
    loss_fn_clean, params = ex.make_loss_fn(model, x, y)
    loss_fn_adv, _ = ex.make_loss_fn(model, x_adv, y)
    assert float(loss_fn_adv(params)) > float(loss_fn_clean(params)) + 0.5

    report = res["report"]
    assert report["n"] == len(x)
    assert report["clean_accuracy"] == pytest.approx(clean, abs=1e-6)
    assert set(report["per_attack"]) == {"pgd", "apgd-ce"}
    assert report["robust_accuracy"] <= min(report["per_attack"].values()) + 1e-9
    assert report["robust_accuracy"] < clean - 0.3

    curv = res["curvature"]
    assert curv["num_params"] == jadv.models.count_params(params)
    assert np.all(np.isfinite(curv["eigenvalues"])) and curv["eigenvalues"][0] >= curv["eigenvalues"][1] > 0
    assert np.isfinite(curv["trace"])


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_curvature_matches_dense_hessian(framework, digits, load_repo_module, key):
    name, tiny = FRAMEWORKS[framework]
    ex = _load(load_repo_module, name)
    xtr, ytr = digits
    model = ex.train(ex.make_model(**tiny), xtr, ytr, steps=60, batch_size=64)
    x, y = xtr[:64], ytr[:64]
    loss_fn, params = ex.make_loss_fn(model, x, y)
    flat, unravel = ravel_pytree(params)
    n = flat.size
    assert 250 < n < 500                                             # small enough for a dense Hessian
    hessian = np.asarray(jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))(flat), np.float64)
    hessian = (hessian + hessian.T) / 2
    exact = np.linalg.eigvalsh(hessian)[::-1]

    curv = ex.curvature(model, x, y, key=key, k=2, iters=100, trace_samples=100)
    np.testing.assert_allclose(curv["eigenvalues"], exact[:2], rtol=2e-3, atol=1e-4)
    # the eigenvector of the top eigenvalue: H v = lambda v, with H v from jadv.analysis.hvp
    v = jax.tree.map(lambda leaf: leaf[0], curv["eigenvectors"])
    hv = jadv.analysis.hvp(loss_fn, params, v)
    np.testing.assert_allclose(ravel_pytree(hv)[0], exact[0] * ravel_pytree(v)[0], atol=2e-3 * abs(exact[0]))
    # hvp of a random direction against the dense Hessian
    u = jax.random.normal(key, (n,))
    np.testing.assert_allclose(ravel_pytree(jadv.analysis.hvp(loss_fn, params, unravel(u)))[0],
                               hessian @ np.asarray(u), rtol=1e-3, atol=1e-4)
    # Hutchinson trace within 4 standard errors of the exact trace
    assert abs(curv["trace"] - np.trace(hessian)) < 4 * curv["trace_stderr"] + 1e-3
