"""Data-parallel adversarial training: the same jitted train step on 1 and on 8 (fake CPU) devices.

benchmarks/bench_scale.py times the same comparison (and its overhead) at full size.
"""
import jax
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.train import sharding
from jadv.train.step import make_train_step


def _run(objective, num_devices, steps, key, norm="none"):
    mesh = sharding.make_mesh(num_devices)
    model = models.get("small_cnn", num_classes=10, conv1_filters=4, widths=(8,), hidden=16, norm=norm)
    variables = models.init_variables(model, key, (1, 8, 8, 1))
    state = train.TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.1, momentum=0.9))
    state = sharding.replicate(state, mesh)
    step = jax.jit(make_train_step(train.make_objective(objective)), donate_argnums=0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        batch = {"image": rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
                 "label": rng.integers(0, 10, 16).astype(np.int32)}
        batch = sharding.shard_batch(batch, mesh)
        assert len(batch["image"].sharding.device_set) == num_devices
        state, metrics = step(state, batch, key)
    return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize("objective,norm", [
    ({"name": "pgd_at", "eps": 0.3, "steps": 3}, "none"),
    ({"name": "pgd_at", "eps": 0.3, "steps": 3, "attack_unroll": True}, "batch"),
    ({"name": "trades", "eps": 0.3, "steps": 3}, "batch"),
])
def test_adversarial_train_step_on_8_devices_matches_1_device(key, objective, norm):
    assert jax.device_count() >= 8, "conftest should fake 8 CPU devices"
    one, m1 = _run(objective, 1, 3, key, norm)
    eight, m8 = _run(objective, 8, 3, key, norm)
    for a, b in zip(jax.tree.leaves((one.params, one.batch_stats)), jax.tree.leaves((eight.params, eight.batch_stats))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)


def test_replicated_state_and_sharded_batch_placement(key):
    mesh = sharding.make_mesh(8)
    state = sharding.replicate({"w": np.ones((3, 3), np.float32)}, mesh)
    assert state["w"].sharding.is_fully_replicated
    batch = sharding.shard_batch({"image": np.zeros((16, 2), np.float32)}, mesh)
    assert batch["image"].addressable_shards[0].data.shape == (2, 2)
    with pytest.raises(ValueError, match="not divisible by the number of devices 8"):
        sharding.shard_batch({"image": np.zeros((12, 2), np.float32)}, mesh)
