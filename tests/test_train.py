"""Training: step semantics, resume equality, 1 vs 8 devices, NaN stop, clear errors."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.train.step import make_train_step


def smoke_config(**overrides):
    c = train.base_config()
    c.dataset = "digits"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 8, "widths": (), "hidden": 16, "norm": "batch"}
    c.batch_size = 32
    c.train_size = 256
    c.test_size = 64
    c.num_epochs = 2
    c.log_every_steps = 4
    c.checkpoint.every_steps = 5
    c.optimizer.update(lr=0.05, schedule="cosine", weight_decay=5e-4)
    c.augment.crop_flip = True
    c.augment.padding = 1
    c.num_devices = 1
    for k, v in overrides.items():
        c[k] = v
    return c


def _params(workdir):
    model, variables, _ = train.load_trained(workdir)
    return variables


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    config = smoke_config()
    full = train.train_and_evaluate(config, str(tmp_path / "full"))
    # "kill" after 7 steps (mid-epoch: 8 steps per epoch), then again after 5 more, then finish.
    part = str(tmp_path / "part")
    assert train.train_and_evaluate(config, part, stop_after_steps=7) == {"stopped_at_step": 7}
    assert train.train_and_evaluate(config, part, stop_after_steps=5) == {"stopped_at_step": 12}
    resumed = train.train_and_evaluate(config, part)
    assert resumed["step"] == full["step"] == 16
    a, b = _params(str(tmp_path / "full")), _params(part)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bitwise on CPU
    assert resumed["test_accuracy"] == full["test_accuracy"]
    # metrics.jsonl has each train log step once, even though the run was interrupted twice
    steps = [json.loads(l)["step"] for l in open(os.path.join(part, "metrics.jsonl")) if '"train"' in l]
    assert steps == sorted(set(steps))


def test_one_device_and_eight_devices_give_the_same_parameters(tmp_path):
    assert jax.device_count() >= 8, "conftest should fake 8 CPU devices"
    train.train_and_evaluate(smoke_config(num_devices=1, num_epochs=1), str(tmp_path / "one"))
    eight = train.train_and_evaluate(smoke_config(num_devices=8, num_epochs=1), str(tmp_path / "eight"))
    assert eight["devices"] == 8
    a, b = _params(str(tmp_path / "one")), _params(str(tmp_path / "eight"))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-5)


def test_standard_training_learns_digits(tmp_path):
    config = smoke_config(num_epochs=6, train_size=None, test_size=None, batch_size=64)
    config.augment.crop_flip = False  # flipped digits are other digits
    results = train.train_and_evaluate(config, str(tmp_path / "w"))
    assert results["test_accuracy"] > 0.9
    for name in ("config.json", "metrics.jsonl", "results.json"):
        assert os.path.exists(tmp_path / "w" / name)
    cfg = json.load(open(tmp_path / "w" / "config.json"))
    assert cfg["num_classes"] == 10 and len(cfg["model"]["mean"]) == 1


def test_nan_loss_stops_with_the_step_named(tmp_path):
    config = smoke_config(num_epochs=1)
    config.optimizer.lr = 1e30
    with pytest.raises(train.NonFiniteLossError, match="at step"):
        train.train_and_evaluate(config, str(tmp_path / "nan"))


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not divisible by the number of devices 8"):
        train.train_and_evaluate(smoke_config(num_devices=8, batch_size=36), str(tmp_path / "x"))


def test_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown objective 'madry'"):
        train.make_objective(train.base_config().objective.copy_and_resolve_references().unlock()
                             .__class__({"name": "madry"}))
    with pytest.raises(ValueError, match="unknown schedule"):
        cfg = train.base_config().optimizer
        cfg.schedule = "exp"
        train.make_optimizer(cfg, 10)
    with pytest.raises(ValueError, match="unknown dataset|unknown name|not a known"):
        train.train_and_evaluate(smoke_config(dataset="imagenet"), str(tmp_path / "y"))
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        train.check_profile("gpu")
    with pytest.raises(ValueError, match="'cpu' is now 'medium'"):
        train.check_profile("cpu")
    with pytest.raises(ValueError, match="no 'small' profile"):
        train.check_profile("small", allowed=("smoke", "medium", "paper"))


def test_train_step_matches_a_hand_written_sgd_step(key):
    """One step of the standard objective equals params - lr * grad(mean CE) for plain SGD."""
    model = models.get("mlp", num_classes=3, hidden=(5,))
    variables = models.init_variables(model, key, (4, 2, 2, 1))
    state = train.TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.1))
    x = jax.random.randint(key, (4, 2, 2, 1), 0, 256).astype(jnp.uint8)
    y = jnp.array([0, 1, 2, 1])
    step = jax.jit(make_train_step(train.make_objective({"name": "standard"})))
    new_state, metrics = step(state, {"image": x, "label": y}, key)

    def loss(p):
        logits = model.apply({"params": p}, x.astype(jnp.float32) / 255.0)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    grads = jax.grad(loss)(variables["params"])
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, variables["params"], grads)
    for a, b in zip(jax.tree_util.tree_leaves(new_state.params), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(new_state.step) == 1 and float(metrics["finite"]) == 1.0
    np.testing.assert_allclose(metrics["loss"], loss(variables["params"]), rtol=1e-5)


@pytest.mark.parametrize("schedule", ["constant", "piecewise", "cosine", "onecycle"])
def test_schedules_start_and_end_where_documented(schedule):
    cfg = train.base_config().optimizer
    cfg.update(schedule=schedule, lr=0.2)
    sched = train.make_schedule(cfg, 100)
    values = np.array([float(sched(i)) for i in range(100)])
    assert values.max() <= 0.2 + 1e-7
    if schedule == "piecewise":
        np.testing.assert_allclose(values[[0, 49, 50, 75]], [0.2, 0.2, 0.02, 0.002], rtol=1e-6)
    if schedule == "onecycle":
        assert values[0] == 0.0 and values[40] == pytest.approx(0.2) and values[-1] < 0.01
    if schedule == "cosine":
        assert values[0] == pytest.approx(0.2) and values[-1] < 0.001
