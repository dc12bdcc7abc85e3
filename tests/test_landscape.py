"""Filter-normalised directions and 1-D/2-D loss landscapes (Li et al. 2018; AWP's rho(w + a d))."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv.analysis import curvature as cv
from jadv.analysis import landscape as ls
from jadv.analysis import logistic as lg


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(4, (3, 3), padding="SAME", name="conv1")(x))
        x = nn.Conv(5, (3, 3), padding="SAME", name="conv2")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        x = nn.relu(x)
        return nn.Dense(3, name="head")(jnp.mean(x, axis=(1, 2)))


@pytest.fixture
def net(key):
    model = ConvNet()
    x = jax.random.uniform(key, (4, 6, 6, 2))
    y = jnp.array([0, 1, 2, 1])
    return model, model.init(key, x), x, y


def test_filter_normalisation_norms(key, net):
    model, variables, _, _ = net
    params = variables["params"]
    d = ls.filter_normalized_direction(params, jax.random.key(3))
    assert jax.tree.structure(d) == jax.tree.structure(params)
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        dl = d
        for k in path:
            dl = dl[k.key]
        p, dl = np.asarray(p), np.asarray(dl)
        if p.ndim > 1:  # HWIO conv or (in, out) dense kernel: one slice per output filter (last axis)
            axes = tuple(range(p.ndim - 1))
            np.testing.assert_allclose(np.sqrt((dl ** 2).sum(axes)), np.sqrt((p ** 2).sum(axes)), rtol=1e-5)
            assert not np.allclose(dl, p)
        else:  # biases, BN scale and bias
            np.testing.assert_array_equal(dl, 0.0)
    d_keep = ls.filter_normalized_direction(params, jax.random.key(3), ignore=None)
    np.testing.assert_array_equal(np.asarray(d_keep["bn"]["scale"]), np.asarray(params["bn"]["scale"]))
    np.testing.assert_array_equal(np.asarray(d_keep["conv1"]["kernel"]), np.asarray(d["conv1"]["kernel"]))
    # same key -> same direction; another key -> another one
    d2 = ls.filter_normalized_direction(params, jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(d2["head"]["kernel"]), np.asarray(d["head"]["kernel"]))
    d3 = ls.filter_normalized_direction(params, jax.random.key(4))
    assert not np.allclose(np.asarray(d3["head"]["kernel"]), np.asarray(d["head"]["kernel"]))


def test_landscape_invariant_to_relu_rescaling(key, net):
    """Scale conv1 (kernel, bias) by c and conv2's kernel by 1/c: same function, same curve."""
    model, variables, x, y = net
    c = 7.0
    p = variables["params"]
    q = {**p, "conv1": {"kernel": c * p["conv1"]["kernel"], "bias": c * p["conv1"]["bias"]},
         "conv2": {"kernel": p["conv2"]["kernel"] / c, "bias": p["conv2"]["bias"]}}

    def curve(params):
        loss_fn = cv.make_loss_fn(model.apply, {**variables, "params": params}, (x, y), bn_mode="eval")
        d = ls.filter_normalized_direction(params, jax.random.key(11))
        return ls.landscape_1d(loss_fn, params, d, jnp.linspace(-1, 1, 9))[1]

    run = jax.jit(curve)
    a, b = np.asarray(run(p)), np.asarray(run(q))
    np.testing.assert_allclose(a, b, rtol=2e-5)
    assert np.ptp(a) > 1e-3  # the curve is not flat, so the check has teeth
    # without filter normalisation the rescaled network's curve differs
    raw = lambda params: ls.landscape_1d(
        cv.make_loss_fn(model.apply, {**variables, "params": params}, (x, y)), params,
        jax.tree.map(lambda l: jax.random.normal(jax.random.key(11), l.shape), params),
        jnp.linspace(-1, 1, 9))[1]
    assert not np.allclose(np.asarray(raw(p)), np.asarray(raw(q)), rtol=1e-3)


def test_landscape_values_and_2d(key, net):
    model, variables, x, y = net
    params = variables["params"]
    loss_fn = cv.make_loss_fn(model.apply, variables, (x, y))
    d1 = ls.filter_normalized_direction(params, jax.random.key(1))
    d2 = ls.filter_normalized_direction(params, jax.random.key(2))
    alphas = ls.default_alphas(5)
    betas = jnp.array([-0.5, 0.0, 0.25])

    @jax.jit
    def both(params, d1, d2):
        return (ls.landscape_1d(loss_fn, params, d1, alphas),
                ls.landscape_1d(loss_fn, params, d1, alphas, batch_size=2),
                ls.landscape_2d(loss_fn, params, d1, d2, alphas, betas))

    (a, l1), (_, l1b), (a2, b2, l2) = both(params, d1, d2)
    assert l1.shape == (5,) and l2.shape == (5, 3)
    np.testing.assert_allclose(np.asarray(l1), np.asarray(l1b), rtol=1e-6)
    np.testing.assert_allclose(float(l1[2]), float(loss_fn(params)), rtol=1e-6)  # alpha = 0
    np.testing.assert_allclose(np.asarray(l2[:, 1]), np.asarray(l1), rtol=1e-6)   # beta = 0 column
    i, j = 4, 0
    moved = jax.tree.map(lambda p, u, v: p + alphas[i] * u + betas[j] * v, params, d1, d2)
    np.testing.assert_allclose(float(l2[i, j]), float(loss_fn(moved)), rtol=1e-5)


def test_robust_landscape_reattacks(key):
    """rho(w + a d) with the exact linear L2 attack equals the closed-form adversarial loss."""
    with jax.enable_x64(True):
        n, d, eps = 30, 4, 0.3
        kx, ky, kw, kd = jax.random.split(key, 4)
        y01 = jax.random.bernoulli(ky, 0.5, (n,)).astype(jnp.int32)
        ypm = 2.0 * y01 - 1.0
        X = ypm[:, None] * 0.5 + jax.random.normal(kx, (n, d), jnp.float64)
        w = jax.random.normal(kw, (d,), jnp.float64)
        apply = lambda v, x, train=False: jnp.stack([jnp.zeros(x.shape[0]), x @ v["params"]["w"]], 1)
        attack = lambda p, x, y: x - eps * (2.0 * y - 1.0)[:, None] * p["w"] / jnp.linalg.norm(p["w"])
        variables = {"params": {"w": w}}
        robust = cv.make_adversarial_loss_fn(apply, variables, (X, y01), attack=attack, hessian="exact")
        fixed = cv.make_adversarial_loss_fn(apply, variables, (X, y01), attack=attack, hessian="fixed_xadv")
        u = {"w": jax.random.normal(kd, (d,), jnp.float64)}
        alphas = jnp.linspace(-0.5, 0.5, 5)
        _, lr = ls.landscape_1d(robust, variables["params"], u, alphas)
        _, lf = ls.landscape_1d(fixed, variables["params"], u, alphas)
        ref = [float(lg.adv_logistic_loss(w + a * u["w"], X, ypm, eps=eps)) for a in alphas]
        np.testing.assert_allclose(np.asarray(lr), ref, rtol=1e-12)
        assert np.all(np.asarray(lr) >= np.asarray(lf) - 1e-12)  # the worst case is worse
        assert not np.allclose(np.asarray(lr), np.asarray(lf))


def test_errors(key):
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    loss_fn = lambda p: jnp.sum(p["w"])
    with pytest.raises(ValueError, match="unknown ignore"):
        ls.filter_normalized_direction(params, key, ignore="bn")
    with pytest.raises(TypeError, match="floating"):
        ls.filter_normalized_direction({"w": jnp.ones((2, 2), jnp.int32)}, key)
    with pytest.raises(ValueError, match="same pytree structure"):
        ls.landscape_1d(loss_fn, params, {"w": jnp.ones((3, 2))}, jnp.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        ls.landscape_1d(loss_fn, params, {"w": jnp.ones((2, 3)), "b": jnp.ones(2)}, jnp.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        ls.landscape_1d(loss_fn, params, params, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="betas"):
        ls.landscape_2d(loss_fn, params, params, params, jnp.zeros(2), jnp.zeros(()))
    with pytest.raises(ValueError, match="num must be"):
        ls.default_alphas(0)
