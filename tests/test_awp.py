"""AWP (Wu et al. 2020): layer-wise direction, perturb-step-restore order, warm-up."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.train.step import make_train_step

SHAPE = (8, 4, 4, 1)


def _setup(key):
    model = models.get("mlp", num_classes=3, hidden=(6,), norm="batch")
    v = models.init_variables(model, key, SHAPE)
    x = jax.random.uniform(jax.random.fold_in(key, 1), SHAPE)
    y = jnp.arange(8, dtype=jnp.int32) % 3
    return model, v, x, y


def _leaves(t):
    return jax.tree_util.tree_leaves(t)


def test_awp_direction_is_layerwise_normalised_on_kernels_only(key):
    params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3) + 1, "bias": jnp.ones(3)},
              "bn": {"scale": jnp.ones(3)}}
    proxy = {"dense": {"kernel": params["dense"]["kernel"] + jnp.array([[3.0, 0, 0], [0, 0, 4.0]]),
                       "bias": jnp.zeros(3)}, "bn": {"scale": 2 * jnp.ones(3)}}
    v = train.awp_direction(params, proxy)
    w_norm = float(np.linalg.norm(np.arange(6.0) + 1))
    np.testing.assert_allclose(v["dense"]["kernel"], np.array([[3.0, 0, 0], [0, 0, 4.0]]) / 5.0 * w_norm, rtol=1e-6)
    np.testing.assert_array_equal(v["dense"]["bias"], 0)
    np.testing.assert_array_equal(v["bn"]["scale"], 0)


def _awp_state(model, v, tx):
    return train.TrainState.create(apply_fn=model.apply, variables=v, tx=tx)


@pytest.mark.slow
def test_awp_restores_exact_weights_when_the_update_is_zero(key):
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "awp", "awp_inner": "pgd_at", "eps": 0.1, "steps": 2, "awp_gamma": 0.05})
    new, metrics = jax.jit(make_train_step(obj, steps_per_epoch=4))(
        _awp_state(model, v, optax.sgd(0.0)), {"image": x, "label": y}, key)
    assert float(metrics["awp_norm"]) > 0.0           # the weights really were perturbed
    chex.assert_trees_all_close(new.params, v["params"], rtol=0, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("inner", ["pgd_at", "trades"])
def test_awp_update_is_the_gradient_at_the_perturbed_weights(key, inner):
    model, v, x, y = _setup(key)
    gamma, lr = 0.02, 0.1
    # eps = 0 makes x_adv = x (deterministic), so the hand computation needs no attack
    cfg = {"name": "awp", "awp_inner": inner, "eps": 0.0, "steps": 1, "awp_gamma": gamma,
           "awp_warmup_epochs": 0.0, "attack_bn_mode": "eval"}
    obj = train.make_objective(cfg)
    assert obj.settings["awp_gamma"] == gamma and obj.settings["awp_proxy_lr"] == 0.01
    new, _ = jax.jit(make_train_step(obj))(_awp_state(model, v, optax.sgd(lr)), {"image": x, "label": y}, key)

    stats = v["batch_stats"]

    def loss(p):
        zc, _ = model.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
        ce = jnp.mean(train.cross_entropy(zc, y))
        return ce if inner == "pgd_at" else ce + 6.0 * 0.0   # KL(p(x)||p(x)) = 0 at x_adv = x

    w = v["params"]
    g0 = jax.grad(loss)(w)
    proxy = jax.tree_util.tree_map(lambda a, g: a + 0.01 * g, w, g0)   # SGD on -loss
    vdir = train.awp_direction(w, proxy)
    w_pert = jax.tree_util.tree_map(lambda a, d: a + gamma * d, w, vdir)
    g1 = jax.grad(loss)(w_pert)
    expected = jax.tree_util.tree_map(lambda a, g, d: a - lr * g - gamma * d, w_pert, g1, vdir)
    chex.assert_trees_all_close(new.params, expected, rtol=1e-5, atol=1e-6)
    # and this differs from the plain gradient step at w
    plain = jax.tree_util.tree_map(lambda a, g: a - lr * g, w, g0)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(_leaves(new.params), _leaves(plain))) > 1e-5


@pytest.mark.slow
def test_awp_defaults_and_warmup(key):
    at = train.make_objective({"name": "awp", "eps": 0.1})
    tr = train.make_objective({"name": "awp", "awp_inner": "trades", "eps": 0.031})
    assert (at.settings["awp_gamma"], at.settings["awp_warmup_epochs"]) == (0.01, 0.0)
    assert (tr.settings["awp_gamma"], tr.settings["awp_warmup_epochs"]) == (5e-3, 10.0)
    assert tr.settings["beta"] == 6.0 and tr.settings["attack_bn_mode"] == "eval"
    # during warm-up AWP is exactly its inner method
    model, v, x, y = _setup(key)
    cfg = {"eps": 0.1, "steps": 2, "attack_bn_mode": "eval"}
    awp = train.make_objective({"name": "awp", "awp_inner": "pgd_at", "awp_warmup_epochs": 1.0, **cfg})
    ref = train.make_objective({"name": "pgd_at", **cfg})
    a, ma = jax.jit(make_train_step(awp, steps_per_epoch=4))(_awp_state(model, v, optax.sgd(0.1)),
                                                             {"image": x, "label": y}, key)
    b, _ = jax.jit(make_train_step(ref, steps_per_epoch=4))(_awp_state(model, v, optax.sgd(0.1)),
                                                            {"image": x, "label": y}, key)
    assert float(ma["awp_norm"]) == 0.0
    chex.assert_trees_all_equal(a.params, b.params)


def test_awp_warmup_counts_epochs_as_the_reference_scripts(key):
    """TRADES-AWP's script loops ``for epoch in range(1, epochs + 1)`` and perturbs ``if epoch >=
    awp_warmup`` (10): on from its 10th epoch, jadv's 0-based epoch 9. AT-AWP's loop counts from 0."""
    from jadv.train.awp import AWP_EPOCH_BASE, awp_active
    trades = [float(awp_active(e, 10.0, AWP_EPOCH_BASE["trades"])) for e in (8.0, 8.99, 9.0, 9.5, 10.0)]
    assert trades == [0.0, 0.0, 1.0, 1.0, 1.0]
    at = [float(awp_active(e, 1.0, AWP_EPOCH_BASE["pgd_at"])) for e in (0.0, 0.99, 1.0)]
    assert at == [0.0, 0.0, 1.0]
    assert float(awp_active(0.0, 0.0, 0)) == 1.0      # the AT-AWP default: on from the first step
    # the train step: around TRADES with the default warm-up, the first perturbed step is the first
    # step of (0-based) epoch 9
    tr = train.make_objective({"name": "awp", "awp_inner": "trades", "eps": 0.1, "steps": 1})
    step = jax.jit(make_train_step(tr, steps_per_epoch=2))
    model, v, x, y = _setup(key)
    norms = {}
    for s in (17, 18):
        state = _awp_state(model, v, optax.sgd(0.1)).replace(step=s)
        norms[s] = float(step(state, {"image": x, "label": y}, key)[1]["awp_norm"])
    assert norms[17] == 0.0 and norms[18] > 0.0
