"""Data-parallel adversarial training: the same jitted train step on 1 and on 8 (fake CPU) devices.

What is well defined, and what is not. Sharding changes the order of the cross-device sums (the
gradient all-reduce, the batch-norm statistics), so one float32 step from the same state agrees to
~1e-7 and no better. Over several steps that noise is amplified, not by sharding but by the sign
step of the attacks: TRADES' inner maximisation starts at ``x + 0.001 N(0, I)``, where the KL
gradient is second-order small (median |g| ~2e-6 on the model below, its smallest entries ~5e-10),
so parameters 2e-7 apart after one step flip the sign of a few of those entries at the next step's
first iteration, and each flip moves a pixel by the full step (0.25 here): 2 of 1,024 pixels moved,
and the parameters after step 2 were 1e-3 apart (the CI failure of the float32 version of this
test). Hence two checks: one float32 step from an identical state (the attack sees identical
inputs, only the reduction order differs), and several steps in float64, where the reduction-order
noise (~1e-16) is far below the smallest gradient entries, so every sign agrees.

benchmarks/bench_scale.py times the same comparison (and its overhead) at full size.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.train import sharding
from jadv.train.step import make_train_step

OBJECTIVES = [
    ({"name": "pgd_at", "eps": 0.3, "steps": 3}, "none"),
    ({"name": "pgd_at", "eps": 0.3, "steps": 3}, "batch"),
    ({"name": "trades", "eps": 0.3, "steps": 3}, "batch"),
]


def _batches(steps):
    rng = np.random.default_rng(0)
    return [{"image": rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
             "label": rng.integers(0, 10, 16).astype(np.int32)} for _ in range(steps)]


def _state(key, norm, dtype):
    model = models.get("small_cnn", num_classes=10, conv1_filters=4, widths=(8,), hidden=16, norm=norm,
                       dtype=dtype)
    variables = models.init_variables(model, key, (1, 8, 8, 1))
    variables = jax.tree.map(lambda a: jnp.asarray(a, dtype), variables)
    return train.TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.1, momentum=0.9))


def _run(objective, state, num_devices, batches, key):
    mesh = sharding.make_mesh(num_devices)
    state = sharding.replicate(state, mesh)
    step = jax.jit(make_train_step(train.make_objective(objective)))
    for batch in batches:
        batch = sharding.shard_batch(batch, mesh)
        assert len(batch["image"].sharding.device_set) == num_devices
        state, metrics = step(state, batch, key)
    return jax.device_get(state), jax.device_get(metrics)


def _assert_states_close(one, eight, tol):
    chex.assert_trees_all_close((one.params, one.batch_stats, one.opt_state),
                                (eight.params, eight.batch_stats, eight.opt_state), rtol=tol, atol=tol)


@pytest.mark.parametrize("objective,norm", OBJECTIVES)
def test_one_adversarial_train_step_on_8_devices_matches_1_device(key, objective, norm):
    assert jax.device_count() >= 8, "conftest should fake 8 CPU devices"
    state = _state(key, norm, jnp.float32)
    batches = _batches(1)
    one, m1 = _run(objective, state, 1, batches, key)
    eight, m8 = _run(objective, state, 8, batches, key)
    _assert_states_close(one, eight, 1e-5)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)


@pytest.mark.parametrize("objective,norm", OBJECTIVES)
def test_adversarial_training_on_8_devices_matches_1_device_in_float64(key, objective, norm):
    with jax.enable_x64(True):
        state = _state(key, norm, jnp.float64)
        batches = _batches(3)
        one, m1 = _run(objective, state, 1, batches, key)
        eight, m8 = _run(objective, state, 8, batches, key)
    assert one.params["conv1"]["kernel"].dtype == np.float64
    _assert_states_close(one, eight, 1e-9)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-9)


def test_replicated_state_and_sharded_batch_placement(key):
    mesh = sharding.make_mesh(8)
    state = sharding.replicate({"w": np.ones((3, 3), np.float32)}, mesh)
    assert state["w"].sharding.is_fully_replicated
    batch = sharding.shard_batch({"image": np.zeros((16, 2), np.float32)}, mesh)
    assert batch["image"].addressable_shards[0].data.shape == (2, 2)
    with pytest.raises(ValueError, match="not divisible by the number of devices 8"):
        sharding.shard_batch({"image": np.zeros((12, 2), np.float32)}, mesh)


def test_one_process_feeds_every_row_and_local_batches_are_checked():
    mesh = sharding.make_mesh(4)
    assert sharding.process_rows(mesh, 16) == (0, 16)
    with pytest.raises(ValueError, match="not divisible"):
        sharding.process_rows(mesh, 10)
    batch = {"image": np.zeros((16, 2), np.float32), "label": np.arange(16)}
    placed = sharding.shard_batch(batch, mesh, global_size=16)
    np.testing.assert_array_equal(sharding.to_host(placed["label"]), np.arange(16))
    with pytest.raises(ValueError, match="expected 16"):
        sharding.shard_batch({"label": np.arange(8)}, mesh, global_size=16)
    assert sharding.is_primary()


def test_distributed_initialize_rejects_bad_arguments_before_starting():
    with pytest.raises(ValueError, match="needs num_processes and process_id"):
        sharding.initialize("127.0.0.1:1234")
    with pytest.raises(ValueError, match="HOST:PORT"):
        sharding.initialize("localhost", 2, 0)
    with pytest.raises(ValueError, match=r"process_id must be in \[0, 2\)"):
        sharding.initialize("127.0.0.1:1234", 2, 2)


def test_studies_refuse_to_run_under_several_processes(monkeypatch):
    from jadv.studies import common, tradeoff
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(RuntimeError, match="not multi-process programs"):
        common.check_single_process("tradeoff")
    with pytest.raises(RuntimeError, match="study 'tradeoff'"):
        tradeoff.run(None, "/nonexistent")


class _UserCNN:
    """A user's Flax CNN (not one of jadv's models): "SAME" convolutions and ``nn.max_pool``."""

    @staticmethod
    def make():
        import flax.linen as nn

        class UserCNN(nn.Module):
            @nn.compact
            def __call__(self, x):
                for width in (4, 8):
                    x = nn.max_pool(nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x)), (2, 2), strides=(2, 2))
                return nn.Dense(10)(nn.relu(nn.Dense(16)(x.reshape((x.shape[0], -1)))))
        return UserCNN()


@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_attack_on_a_user_cnn_with_its_batch_sharded_over_devices_matches_one_device(key, attack):
    """What ``use_cpu_cores`` relies on: a jitted attack whose batch is placed with
    ``shard_batch`` is partitioned over the devices (one shard per device) and gives the same
    adversarial examples as on one device (float64, where reduction-order noise cannot flip a
    sign step)."""
    from jadv import attacks

    with jax.enable_x64(True):
        model = _UserCNN.make()
        x = jax.random.uniform(jax.random.key(1), (16, 12, 12, 1), jnp.float64)
        y = jnp.arange(16) % 10
        variables = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(key, x[:1]))
        kwargs = {"pgd": {"eps": 0.1, "step_size": 0.02, "steps": 4}, "apgd": {"eps": 0.1, "steps": 6}}[attack]
        run = jax.jit(lambda v, x, y: getattr(attacks, attack)(lambda z: model.apply(v, z), x, y, key=key, **kwargs))
        one = np.asarray(run(variables, x, y))
        mesh = sharding.make_mesh(8)
        sharded = run(sharding.replicate(variables, mesh), sharding.shard_batch(np.asarray(x), mesh),
                      sharding.shard_batch(np.asarray(y), mesh))
        assert len(sharded.sharding.device_set) == 8 and sharded.addressable_shards[0].data.shape[0] == 2
        np.testing.assert_allclose(np.asarray(sharded), one, rtol=0, atol=1e-12)
        assert np.abs(one - np.asarray(x)).max() > 0.05      # the attack did move the inputs


def _python(code: str, env: dict):
    import os
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JADV_CPU_DEVICES")}
    full.update(env, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def test_use_cpu_cores_exposes_one_device_per_core_and_refuses_a_started_backend():
    show = "import jadv, jax; print(len(jax.devices()))"
    assert _python(show, {"JADV_CPU_DEVICES": "3"}).stdout.strip() == "3"
    auto = _python("import jadv, jax; print(len(jax.devices()), jadv.train.sharding.cpu_core_count())",
                   {"JADV_CPU_DEVICES": "auto"}).stdout.split()
    assert len(auto) == 2 and auto[0] == auto[1]
    assert _python(show, {}).stdout.strip() == "1"
    bad = _python(show, {"JADV_CPU_DEVICES": "0"})
    assert bad.returncode != 0 and "JADV_CPU_DEVICES must be a positive integer or 'auto', got '0'" in bad.stderr
    late = _python("import jax; jax.numpy.zeros(1); import jadv; print(jadv.train.use_cpu_cores(1)); "
                   "jadv.train.use_cpu_cores(2)", {})
    assert late.stdout.strip() == "1"       # already the running count: nothing to change
    assert late.returncode != 0 and "must run before the first JAX computation" in late.stderr
    with pytest.raises(ValueError, match="num_devices must be >= 1"):
        sharding.use_cpu_cores(0)
