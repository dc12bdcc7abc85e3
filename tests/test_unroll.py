"""The attacks' step loops have no ``unroll=`` any more (jadv/_cpu_loops.py says why); configs that
still set ``objective.attack_unroll`` load and train exactly as without it."""
import inspect

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import jadv
from jadv import models, train
from jadv.train.config import check_config
from jadv.train.step import make_train_step


@pytest.mark.parametrize("fn", [jadv.attacks.pgd, jadv.attacks.pgd_generic, train.craft])
def test_attack_loops_take_no_unroll(fn):
    assert "unroll" not in inspect.signature(fn).parameters


def test_attack_unroll_config_key_is_accepted_and_ignored(key):
    model = models.get("small_cnn", num_classes=3, conv1_filters=4, widths=(), hidden=8)
    v = models.init_variables(model, key, (1, 8, 8, 1))
    batch = {"image": jax.random.randint(key, (4, 8, 8, 1), 0, 256).astype(jnp.uint8),
             "label": jnp.array([0, 1, 2, 0], jnp.int32)}
    cfg = {"name": "pgd_at", "eps": 0.1, "steps": 3}
    plain, flagged = train.make_objective(cfg), train.make_objective({**cfg, "attack_unroll": True})
    assert plain.settings == flagged.settings and "attack_unroll" not in plain.settings
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(0.1))
    (sa, ma), (sb, mb) = (jax.jit(make_train_step(o))(state, batch, key) for o in (plain, flagged))
    chex.assert_trees_all_equal((sa.params, ma), (sb.params, mb))
    c = train.base_config()
    c.objective.attack_unroll = True          # what configs/mnist_pgd_at.py and mnist_trades.py still set
    check_config(c)
