"""The loop with adversarial objectives: held-out robust accuracy, best checkpoint, FGSM-RS early
stop, Free-AT step counting, resolved settings in config.json, mixed precision."""
import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.train.step import make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def adv_config(name="pgd_at", **objective):
    c = train.base_config()
    c.dataset = "digits"
    c.model.name = "mlp"
    c.model.kwargs = {"hidden": (16,), "norm": "batch"}
    c.batch_size, c.train_size, c.val_size, c.test_size = 32, 256, 64, 64
    c.num_epochs, c.log_every_steps = 2, 4
    c.checkpoint.every_steps = 100
    c.optimizer.update(lr=0.05, schedule="constant", weight_decay=5e-4)
    c.num_devices = 1
    c.objective.name, c.objective.eps = name, 0.1
    c.objective.update(objective)
    c.robust_eval.val_examples, c.robust_eval.steps = 64, 3
    return c


def _records(workdir, kind):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("kind") == kind]


def _leaves(variables):
    return jax.tree_util.tree_leaves(variables)


@pytest.mark.slow
def test_pgd_at_run_logs_val_robust_accuracy_and_keeps_a_best_checkpoint(tmp_path):
    c = adv_config("pgd_at", steps=2)
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.test_examples = 64
    wd = str(tmp_path / "w")
    results = train.train_and_evaluate(c, wd)
    evals = _records(wd, "eval")
    assert len(evals) == 2
    for r in evals:
        assert 0.0 <= r["val_robust_accuracy"] <= r["val_accuracy"] + 1e-9   # same 64 held-out images
        assert r["val_robust_count"] == 64 and r["test_subset_robust_count"] == 64
    best = max(evals, key=lambda r: r["val_robust_accuracy"])
    assert results["best_step"] == best["step"] and results["best_val_robust_accuracy"] == best["val_robust_accuracy"]
    assert os.path.isdir(os.path.join(wd, "checkpoints_best"))
    _, best_vars, _ = train.load_trained(wd, which="best")
    assert len(_leaves(best_vars)) > 0
    cfg = json.load(open(os.path.join(wd, "config.json")))
    assert cfg["objective"]["attack_bn_mode"] == "train" and cfg["objective"]["step_size"] == pytest.approx(0.125)
    assert cfg["robust_eval"]["enabled"] is True and cfg["robust_eval"]["step_size"] == pytest.approx(2.5 * 0.1 / 3)
    setup = _records(wd, "setup")[0]
    assert setup["objective.attack_bn_mode"] == "train" and setup["objective"] == "pgd_at"


@pytest.mark.slow
def test_fgsm_rs_early_stop_keeps_the_previous_epoch_weights(tmp_path):
    # drop = -1 forces a "collapse" at the second epoch end: the run must stop there and keep the
    # weights of the first epoch, which equal those of a 1-epoch run (constant LR, same keys).
    c = adv_config("fgsm_rs", attack_bn_mode="eval")
    c.early_stop.update(enabled=True, drop=-1.0)
    c.num_epochs = 3
    stopped_dir = str(tmp_path / "stopped")
    results = train.train_and_evaluate(c, stopped_dir)
    assert results["early_stop"]["step"] == 16 and results["early_stop"]["restored_step"] == 8
    events = _records(stopped_dir, "early_stop")
    assert [e["stopped"] for e in events] == [False, True] and events[0]["previous_robust_accuracy"] is None
    cfg = json.load(open(os.path.join(stopped_dir, "config.json")))
    assert cfg["early_stop"]["step_size"] == pytest.approx(0.1 / 4)

    one = adv_config("fgsm_rs", attack_bn_mode="eval")
    one.num_epochs = 1
    train.train_and_evaluate(one, str(tmp_path / "one"))
    _, a, _ = train.load_trained(stopped_dir)
    _, b, _ = train.load_trained(str(tmp_path / "one"))
    for x, y in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # a second call on the stopped workdir does not train further
    n_train = len(_records(stopped_dir, "train"))
    again = train.train_and_evaluate(c, stopped_dir)
    assert again["step"] == 16 and again["early_stop"] == results["early_stop"]
    assert len(_records(stopped_dir, "train")) == n_train
    _, c2, _ = train.load_trained(stopped_dir)
    for x, y in zip(_leaves(a), _leaves(c2)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_early_stop_without_collapse_runs_to_the_end(tmp_path):
    c = adv_config("fgsm_rs", attack_bn_mode="eval")
    c.early_stop.update(enabled=True, drop=2.0)   # a drop > 1 can never happen
    c.num_epochs, c.train_size = 2, 128
    wd = str(tmp_path / "w")
    results = train.train_and_evaluate(c, wd)
    assert "early_stop" not in results and results["step"] == 8
    assert [e["stopped"] for e in _records(wd, "early_stop")] == [False, False]


@pytest.mark.slow
def test_free_at_in_the_loop_counts_minibatches_and_schedules_over_replays(tmp_path):
    c = adv_config("free_at", replays=3)
    c.num_epochs, c.train_size = 1, 128
    c.optimizer.schedule = "onecycle"
    wd = str(tmp_path / "w")
    results = train.train_and_evaluate(c, wd)
    assert results["step"] == 4                      # 128 / 32 minibatches, each replayed 3 times
    # the onecycle schedule ends at 0 after 4 * 3 optimizer updates: the last logged lr is its
    # value at update 11
    total = 12
    sched = train.make_schedule(c.optimizer, total)
    assert _records(wd, "train")[-1]["lr"] == pytest.approx(float(sched(total - 1)))


@pytest.mark.slow
def test_killed_and_resumed_free_at_run_equals_uninterrupted_run(tmp_path):
    """The persistent Free-AT perturbation (state.extra) is checkpointed with the weights."""
    c = adv_config("free_at", replays=2)
    c.num_epochs, c.train_size = 1, 128
    full = train.train_and_evaluate(c, str(tmp_path / "full"))
    part = str(tmp_path / "part")
    assert train.train_and_evaluate(c, part, stop_after_steps=2) == {"stopped_at_step": 2}
    resumed = train.train_and_evaluate(c, part)
    assert resumed["step"] == full["step"] == 4
    _, a, _ = train.load_trained(str(tmp_path / "full"))
    _, b, _ = train.load_trained(part)
    for x, y in zip(_leaves(a), _leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_unknown_eval_bn_set_is_a_clear_error(tmp_path):
    c = adv_config("pgd_at")
    c.eval_bn_set = "aux"
    with pytest.raises(ValueError, match="eval_bn_set"):
        train.train_and_evaluate(c, str(tmp_path / "bad"))


@pytest.mark.slow
def test_bfloat16_model_trains_with_attacks(key):
    """Mixed precision (config.model.dtype="bfloat16"): attacks and TRADES run, params stay f32."""
    model = models.get("mlp", num_classes=3, hidden=(8,), norm="batch", dtype=jnp.bfloat16)
    v = models.init_variables(model, key, (8, 4, 4, 1))
    x = jax.random.uniform(key, (8, 4, 4, 1))
    y = jnp.arange(8, dtype=jnp.int32) % 3
    obj = train.make_objective({"name": "trades", "eps": 0.1, "steps": 2})
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(0.1))
    new, metrics = jax.jit(make_train_step(obj))(state, {"image": x, "label": y}, key)
    assert float(metrics["finite"]) == 1.0 and float(metrics["robust_loss"]) >= 0.0
    assert all(leaf.dtype == jnp.float32 for leaf in _leaves(new.params))


def test_robust_eval_step_counts_clean_and_robust_correct(key):
    model = models.get("mlp", num_classes=3, hidden=(8,))
    v = models.init_variables(model, key, (8, 4, 4, 1))
    x = jax.random.uniform(key, (8, 4, 4, 1))
    logits = model.apply(v, x)
    y = jnp.argmax(logits, -1).astype(jnp.int32).at[:3].set((jnp.argmax(logits[:3], -1) + 1) % 3)
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(0.1))
    mask = jnp.arange(8) < 7                       # the last row is padding
    batch = {"image": x, "label": y, "mask": mask}
    zero = jax.jit(train.make_robust_eval_step(eps=0.0, step_size=0.1, steps=2))(state, batch, key)
    assert (int(zero["correct"]), int(zero["robust"]), int(zero["count"])) == (4, 4, 7)
    big = jax.jit(train.make_robust_eval_step(eps=1.0, step_size=0.5, steps=5))(state, batch, key)
    assert int(big["correct"]) == 4 and int(big["robust"]) <= 4


def _load_config(path, profile):
    spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(profile)


@pytest.mark.parametrize("name", ["mnist_pgd_at", "mnist_trades", "mnist_fgsm_rs",
                                  "cifar10_pgd_at", "cifar10_trades", "cifar10_fgsm_rs"])
def test_adversarial_configs_build_their_objectives(name):
    for profile in ("smoke", "medium", "paper"):
        c = _load_config(os.path.join(ROOT, "configs", f"{name}.py"), profile)
        obj = train.make_objective(c.objective)
        assert obj.name == c.objective.name
        eps = 0.3 if name.startswith("mnist") else (0.031 if "trades" in name else 8 / 255)
        assert c.objective.eps == pytest.approx(eps)
        if profile == "paper" or name.startswith("mnist"):
            assert c.checkpoint.best_metric in (None, "val_robust_accuracy")
        if "fgsm_rs" in name:
            assert c.early_stop.enabled


def test_early_stop_checks_each_epochs_first_batch_with_batch_statistics(tmp_path, monkeypatch):
    """The reference (fast_adversarial ``train_fgsm.py``) keeps ``first_batch`` = batch 0 of the
    current epoch, as the loader gave it (augmented), and attacks it with the model still in train
    mode (batch BN statistics). The check sees exactly that batch at every epoch end."""
    from jadv import data as jdata
    from jadv.train import loop as loop_mod
    seen, modes = [], []
    real = loop_mod.make_robust_eval_step

    def recording(**kw):
        step = real(**kw)
        if kw.get("bn_mode", "eval") != "eval" or not kw.get("use_ema", True) is True:
            modes.append(kw.get("bn_mode"))

            def wrapped(state, batch, key):
                jax.debug.callback(lambda im: seen.append(np.asarray(im)), batch["image"])
                return step(state, batch, key)
            return wrapped
        return step

    monkeypatch.setattr(loop_mod, "make_robust_eval_step", recording)
    c = adv_config("fgsm_rs")
    c.num_epochs = 3
    c.augment.update(crop_flip=True, padding=2)
    c.early_stop.update(enabled=True, drop=2.0)
    wd = str(tmp_path / "w")
    train.train_and_evaluate(c, wd)
    assert modes == ["train_no_update"] and len(seen) == 3
    # rebuild each epoch's first batch and its augmentation from the run's keys, independently
    _, step_key, data_key = jax.random.split(jax.random.key(c.seed), 3)
    tr = train.load_splits(c)[0]
    steps_per_epoch = len(tr.images) // c.batch_size
    for epoch, img in enumerate(seen):
        first = next(iter(jdata.epoch_batches(tr.images, tr.labels, batch_size=c.batch_size,
                                              key=jax.random.fold_in(data_key, epoch), remainder="drop")))
        aug_key, _ = jax.random.split(jax.random.fold_in(step_key, epoch * steps_per_epoch))
        want = jdata.random_crop_flip(aug_key, first["image"].astype(jnp.float32) / 255.0, padding=2, flip=True)
        np.testing.assert_array_equal(img, np.asarray(want))
    assert not np.array_equal(seen[0], seen[1])          # not a fixed batch


def test_robust_eval_step_with_batch_statistics(key):
    """bn_mode "train_no_update": the batch's own BN statistics, running statistics untouched."""
    from jadv.train.step import make_robust_eval_step
    model = models.get("mlp", num_classes=10, hidden=(8,), norm="batch")
    v = models.init_variables(model, key, (1, 8, 8, 1))
    # running statistics far from the batch's: eval mode and batch mode must disagree
    v = {"params": v["params"], "batch_stats": jax.tree.map(lambda a: a + 5.0, v["batch_stats"])}
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(0.1))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(32, 8, 8, 1)), jnp.float32)
    train_logits = model.apply(v, x, train=True, mutable=["batch_stats"])[0]
    y = jnp.argmax(train_logits, -1).astype(jnp.int32)
    batch = {"image": x, "label": y}
    kw = dict(eps=0.0, step_size=0.0, steps=1, use_ema=False)
    out = jax.jit(make_robust_eval_step(bn_mode="train_no_update", **kw))(state, batch, key)
    assert int(out["correct"]) == 32 == int(out["robust"])           # eps 0: clean = train-mode argmax
    eval_correct = int(jnp.sum(jnp.argmax(model.apply(v, x, train=False), -1) == y))
    assert int(jax.jit(make_robust_eval_step(**kw))(state, batch, key)["correct"]) == eval_correct < 32
    with pytest.raises(ValueError, match="bn_mode"):
        make_robust_eval_step(bn_mode="train", **kw)
