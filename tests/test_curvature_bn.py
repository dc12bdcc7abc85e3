"""Batch-norm modes and adversarial-loss Hessians of the loss builders in jadv.analysis.curvature."""
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jadv.analysis import curvature as cv
from jadv.analysis import logistic as lg


class BNCNN(nn.Module):
    """conv3x3(4) -> BN -> ReLU -> global mean -> dense(3), with the jadv ``train=`` convention."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3), padding="SAME", use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.relu(x)
        return nn.Dense(3)(jnp.mean(x, axis=(1, 2)))


def ce(logits, y):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


@pytest.fixture
def bn_setup(key):
    model = BNCNN()
    x = jax.random.uniform(key, (6, 5, 5, 2))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    variables = model.init(key, x)
    # non-trivial running statistics, as after some training
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree.map(lambda a: a + 0.3, variables["batch_stats"])}
    return model, variables, x, y


@pytest.mark.slow
def test_bn_modes(key, bn_setup):
    model, variables, x, y = bn_setup
    stats_before = jax.tree.map(np.array, variables["batch_stats"])
    f_eval = cv.make_loss_fn(model.apply, variables, (x, y), bn_mode="eval")
    f_batch = cv.make_loss_fn(model.apply, variables, {"image": x, "label": y}, bn_mode="train_no_update")
    assert f_eval.report["bn_mode"] == "eval" and f_batch.report["bn_mode"] == "train_no_update"
    assert f_eval.report["hessian"] == "clean" and f_eval.report["batch_size"] == 6
    p = variables["params"]
    # eval = running statistics, train_no_update = batch statistics (oracles: direct apply calls)
    ref_eval = jnp.mean(ce(model.apply(variables, x, train=False), y))
    ref_batch = jnp.mean(ce(model.apply(variables, x, train=True, mutable=["batch_stats"])[0], y))
    np.testing.assert_allclose(float(f_eval(p)), float(ref_eval), rtol=1e-6)
    np.testing.assert_allclose(float(f_batch(p)), float(ref_batch), rtol=1e-6)
    assert abs(float(f_eval(p)) - float(f_batch(p))) > 1e-4
    v = jax.tree.map(jnp.ones_like, p)
    h_eval = ravel_pytree(jax.jit(lambda p, v: cv.hvp(f_eval, p, v))(p, v))[0]
    h_batch = ravel_pytree(jax.jit(lambda p, v: cv.hvp(f_batch, p, v))(p, v))[0]
    assert float(jnp.linalg.norm(h_eval - h_batch)) > 1e-3 * float(jnp.linalg.norm(h_eval))
    # the running statistics are untouched by either mode
    chex.assert_trees_all_equal(stats_before, jax.tree.map(np.asarray, variables["batch_stats"]))
    # the eval-mode loss does not depend on the batch composition (per-example = eval of one example)
    per = f_eval.per_example(p)
    single = cv.make_loss_fn(model.apply, variables, (x[:1], y[:1]), bn_mode="eval")
    np.testing.assert_allclose(float(single(p)), float(per[0]), rtol=1e-6)


def test_bn_mode_errors(bn_setup):
    model, variables, x, y = bn_setup
    with pytest.raises(ValueError, match="unknown bn_mode 'train'"):
        cv.make_loss_fn(model.apply, variables, (x, y), bn_mode="train")
    # the analyses' old name for batch statistics: refused with the library's one name for it
    with pytest.raises(ValueError, match="'batch' is now called 'train_no_update'"):
        cv.make_loss_fn(model.apply, variables, (x, y), bn_mode="batch")
    with pytest.raises(ValueError, match="'batch' is now called 'train_no_update'"):
        cv.make_adversarial_loss_fn(model.apply, variables, (x, y), attack=lambda p, x, y: x, bn_mode="batch")
    with pytest.raises(ValueError, match="unknown loss"):
        cv.make_loss_fn(model.apply, variables, (x, y), loss="hinge")
    with pytest.raises(ValueError, match="'params' collection"):
        cv.make_loss_fn(model.apply, {"batch_stats": {}}, (x, y))
    with pytest.raises(ValueError, match="labels must be"):
        cv.make_loss_fn(model.apply, variables, (x, y[:3]))
    with pytest.raises(TypeError, match="batch must be"):
        cv.make_loss_fn(model.apply, variables, x)
    with pytest.raises(ValueError, match="unknown hessian"):
        cv.make_adversarial_loss_fn(model.apply, variables, (x, y), attack=lambda p, x, y: x,
                                    hessian="full")
    with pytest.raises(TypeError, match="attack must be callable"):
        cv.make_adversarial_loss_fn(model.apply, variables, (x, y), attack=None)


# -------------------------------------------------------------------- adversarial Hessians

def linear_apply(variables, x, train=False):
    """Two-class logits [0, w.x]: softmax CE with label 1/0 is softplus(-/+ w.x)."""
    z = x @ variables["params"]["w"]
    return jnp.stack([jnp.zeros_like(z), z], axis=1)


@pytest.mark.slow
def test_adversarial_hessians_match_logistic_closed_form(key):
    """For a linear model with the exact L2 attack, "exact" and "fixed_xadv" are E.2's Hessians."""
    with jax.enable_x64(True):
        n, d, eps = 40, 5, 0.4
        kx, ky, kw = jax.random.split(key, 3)
        y01 = jax.random.bernoulli(ky, 0.5, (n,)).astype(jnp.int32)
        ypm = 2.0 * y01 - 1.0
        X = ypm[:, None] * 0.5 + jax.random.normal(kx, (n, d), jnp.float64)
        w = jax.random.normal(kw, (d,), jnp.float64)
        variables = {"params": {"w": w}}

        def attack(params, x, y):  # the closed-form L2 worst case of a linear classifier
            s = 2.0 * y - 1.0
            return x - eps * s[:, None] * params["w"] / jnp.linalg.norm(params["w"])

        exact = cv.make_adversarial_loss_fn(linear_apply, variables, (X, y01), attack=attack,
                                            hessian="exact")
        fixed = cv.make_adversarial_loss_fn(linear_apply, variables, (X, y01), attack=attack,
                                            hessian="fixed_xadv")
        assert exact.report["hessian"] == "exact" and fixed.report["hessian"] == "fixed_xadv"
        assert fixed.x_adv.shape == X.shape
        loss_cf = lg.adv_logistic_loss(w, X, ypm, eps=eps)
        np.testing.assert_allclose(float(exact(variables["params"])), float(loss_cf), rtol=1e-12)
        np.testing.assert_allclose(float(fixed(variables["params"])), float(loss_cf), rtol=1e-12)
        hess = jax.jit(lambda w: (jax.hessian(lambda v: exact({"w": v}))(w),
                                  jax.hessian(lambda v: fixed({"w": v}))(w)))
        for H, kind in zip(hess(w), ("exact", "fixed_xadv")):
            Hc = lg.adv_logistic_hessian(w, X, ypm, eps=eps, kind=kind)
            assert float(jnp.linalg.norm(H - Hc) / jnp.linalg.norm(Hc)) < 1e-8
        # and the matrix-free solver sees the larger top eigenvalue for the exact Hessian
        tops = jax.jit(lambda p: (cv.top_eigenvalues(exact, p, key=key, iters=d)[0],
                                  cv.top_eigenvalues(fixed, p, key=key, iters=d)[0]))
        le, lf = tops(variables["params"])
        assert float(le[0]) > float(lf[0])
        np.testing.assert_allclose(float(le[0]), np.linalg.eigvalsh(
            lg.adv_logistic_hessian(w, X, ypm, eps=eps, kind="exact"))[-1], rtol=1e-8)
