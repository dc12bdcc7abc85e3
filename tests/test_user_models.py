"""A user's own Flax modules -- no ``train`` or ``bn_set`` argument, or ``train`` only -- train and
evaluate through jadv's steps (``jadv.train.ModelFns`` passes only the keywords a module takes)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import train
from jadv.train.model_fns import ModelFns
from jadv.train.step import make_eval_step, make_train_step


class PlainCNN(nn.Module):
    """``__call__(self, x)``: "SAME" convolution, ``nn.max_pool``, no batch norm."""

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(4, (3, 3), padding="SAME")(x)), (2, 2), strides=(2, 2))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


class TrainFlagCNN(nn.Module):
    """``__call__(self, x, train)`` with batch norm."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(4, (3, 3), padding="SAME")(x)))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def _batch(n=8):
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)),
            "label": jnp.asarray(rng.integers(0, 10, n).astype(np.int32))}


@pytest.mark.parametrize("module", [PlainCNN, TrainFlagCNN])
@pytest.mark.parametrize("objective", ["pgd_at", "trades"])
def test_a_user_module_trains_and_evaluates_through_jadv_steps(key, module, objective):
    model = module()
    variables = model.init(key, jnp.zeros((1, 8, 8, 1)))
    state = train.TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.1))
    step = jax.jit(make_train_step(train.make_objective({"name": objective, "eps": 0.1, "steps": 2})))
    new, metrics = step(state, _batch(), key)
    assert np.isfinite(float(metrics["loss"]))
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params, state.params)
    assert max(jax.tree.leaves(moved)) > 0
    if module is TrainFlagCNN:      # batch statistics were updated in train mode
        changed = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.batch_stats, state.batch_stats)
        assert max(jax.tree.leaves(changed)) > 0
    else:
        assert new.batch_stats == {}
    out = jax.jit(make_eval_step(use_ema=False))(new, _batch())
    assert int(out["count"]) == 8 and 0 <= int(out["correct"]) <= 8
    # the same logits as calling the module directly
    fns = ModelFns(model.apply)
    x = _batch()["image"].astype(jnp.float32) / 255
    direct = model.apply({"params": new.params, "batch_stats": new.batch_stats} if new.batch_stats
                         else {"params": new.params}, x)
    np.testing.assert_array_equal(fns.logits(new.params, new.batch_stats, x, train=False)[0], direct)


def test_a_module_without_bn_sets_refuses_the_adversarial_set(key):
    model = PlainCNN()
    variables = model.init(key, jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="bn_set='adv' needs a model with several batch-norm sets.*PlainCNN"):
        ModelFns(model.apply).logits(variables["params"], {}, jnp.zeros((2, 8, 8, 1)), train=False, bn_set="adv")
