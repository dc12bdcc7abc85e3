"""Reliability of the training loop under injected faults (no timing): no lost records, one run
per workdir, no silent config change, bad inputs refused before anything is written.

Faults are injected, not waited for: a "kill" is an exception raised in the middle of a write
(half the bytes written, then KeyboardInterrupt) or at os.replace; damaged checkpoints are files
truncated or garbled on disk; a second run is a live subprocess holding the lock, a dead one a
subprocess that has exited.
"""
import builtins
import glob
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jadv import _io, _workdir_lock, train
from jadv.train import loop
from jadv.train.checkpoint import Checkpointer
from jadv.train.config import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_MODULE = os.path.join(ROOT, "jadv", "_workdir_lock.py")
STEPS = 8  # 128 images / batch 32 = 4 steps per epoch, 2 epochs

TINY = """
from jadv.train.config import base_config


def get_config(variant="smoke"):
    c = base_config()
    c.dataset = "digits"
    c.model.name = "mlp"
    c.model.kwargs = {"hidden": (16,), "norm": "batch"}
    c.batch_size, c.train_size, c.test_size = 32, 128, 64
    c.num_epochs, c.log_every_steps = 2, 2
    c.checkpoint.every_steps, c.checkpoint.keep = 2, 2
    c.optimizer.update(lr=0.05, schedule="cosine", weight_decay=5e-4)
    c.num_devices = 1
    return c
"""


def tiny_config(**overrides):
    namespace = {}
    exec(TINY, namespace)
    c = namespace["get_config"]()
    for k, v in overrides.items():
        c[k] = v
    return c


def _params(workdir):
    _, variables, _ = train.load_trained(workdir)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(variables)]


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _train_steps(workdir):
    return [r["step"] for r in _records(workdir) if r.get("kind") == "train"]


def _assert_same_run(workdir, ref):
    """Same final parameters (bitwise, as tests/test_train.py) and every train record once."""
    for x, y in zip(_params(workdir), ref["params"]):
        np.testing.assert_array_equal(x, y)
    assert _train_steps(workdir) == ref["train_steps"]


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An uninterrupted run of the tiny config."""
    wd = str(tmp_path_factory.mktemp("ref") / "w")
    results = train.train_and_evaluate(tiny_config(), wd)
    assert results["step"] == STEPS
    return {"results": results, "params": _params(wd), "train_steps": _train_steps(wd)}


# -- 1a. metrics.jsonl rewritten atomically ------------------------------------------------------
class _KilledMidWrite:
    """A file whose first write writes half its text and then 'kills' the process."""

    def __init__(self, f):
        self._f = f

    def write(self, text):
        self._f.write(text[: len(text) // 2])
        self._f.flush()
        raise KeyboardInterrupt("killed while writing")

    def writelines(self, lines):
        self.write("".join(lines))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False


def _killing_open(file, mode="r", *args, **kwargs):
    f = builtins.open(file, mode, *args, **kwargs)
    return _KilledMidWrite(f) if ("w" in mode or "x" in mode) else f


@pytest.mark.parametrize("fault", ["kill mid-write", "kill at os.replace"])
def test_a_kill_while_metrics_jsonl_is_rewritten_loses_no_record(tmp_path, monkeypatch, ref, fault):
    wd = str(tmp_path / "w")
    assert train.train_and_evaluate(tiny_config(), wd, stop_after_steps=4) == {"stopped_at_step": 4}
    path = os.path.join(wd, "metrics.jsonl")
    before = open(path, "rb").read()
    assert b'"step": 4' in before
    with monkeypatch.context() as m:
        if fault == "kill mid-write":
            m.setattr(_io, "open", _killing_open, raising=False)   # the module that writes it
        else:
            def killed(src, dst):
                raise KeyboardInterrupt("killed at os.replace")
            m.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            loop.MetricsWriter(path, resume_step=2)   # rewrite: drops the records of step 4
    assert open(path, "rb").read() == before         # the old file is whole
    assert not [n for n in os.listdir(wd) if n.endswith(".tmp")]
    train.train_and_evaluate(tiny_config(), wd)
    _assert_same_run(wd, ref)


# -- 1b. the best checkpoint is never deleted before its successor is on disk -------------------
def _tiny_state(seed):
    from jadv import models
    model = models.get("mlp", num_classes=3, hidden=(4,))
    variables = models.init_variables(model, jax.random.key(seed), (1, 2, 2, 1))
    import optax
    return train.TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.sgd(0.1))


def test_a_kill_while_a_new_best_checkpoint_is_written_keeps_the_old_best(tmp_path, monkeypatch):
    d = str(tmp_path / "w")
    old, new = _tiny_state(0), _tiny_state(1)
    ckpt = Checkpointer(d, best_metric="val", keep=2)
    ckpt.save(1, old, {"val": 0.5})
    real_save = ckpt._best.save

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing the new best checkpoint")

    monkeypatch.setattr(ckpt._best, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(2, new, {"val": 0.9})
    again = Checkpointer(d, best_metric="val", keep=2)          # as a restarted process sees it
    assert again.best_step() == 1 and again.best_value() == 0.5
    best = again.restore(_tiny_state(2), which="best")
    for a, b in zip(jax.tree_util.tree_leaves(best.params), jax.tree_util.tree_leaves(old.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # an improvement without a kill still leaves exactly one best checkpoint, the new one
    monkeypatch.setattr(ckpt._best, "save", real_save)
    again.save(3, new, {"val": 0.9})
    assert again._best.all_steps() == [3] and again.best_value() == 0.9
    assert sorted(os.listdir(os.path.join(d, "checkpoints_best"))) == ["3"]
    again.close()


# -- 1c. damaged latest checkpoint, cut-short last metrics line --------------------------------
def _damage(step_dir, how):
    for root, _, files in os.walk(step_dir):
        for name in files:
            p = os.path.join(root, name)
            data = open(p, "rb").read()
            with open(p, "wb") as f:
                f.write(data[: len(data) // 2] if how == "truncate" else bytes(b ^ 0x5A for b in data))


@pytest.mark.parametrize("how", ["truncate", "garble"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, ref, how):
    wd = str(tmp_path / "w")
    assert train.train_and_evaluate(tiny_config(), wd, stop_after_steps=5) == {"stopped_at_step": 5}
    assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["4", "5"]
    _damage(os.path.join(wd, "checkpoints", "5"), how)
    with pytest.warns(UserWarning, match=r"checkpoint of step 5 in .* cannot be restored \(\w+.*resuming "
                                         r"from step 4"):
        results = train.train_and_evaluate(tiny_config(), wd)
    assert results["step"] == STEPS
    assert os.path.isdir(os.path.join(wd, "checkpoints_damaged", "5"))   # kept for inspection
    _assert_same_run(wd, ref)


def test_when_no_checkpoint_can_be_restored_the_error_names_each_step(tmp_path):
    d = str(tmp_path / "w")
    ckpt = Checkpointer(d, keep=2)
    ckpt.save(1, _tiny_state(0))
    ckpt.save(2, _tiny_state(0))
    ckpt.close()
    for step in ("1", "2"):
        _damage(os.path.join(d, "checkpoints", step), "truncate")
    with pytest.raises(ValueError, match=r"no checkpoint .* can be restored.*step 2: .*step 1: "):
        Checkpointer(d, keep=2).restore_latest_complete(_tiny_state(0))
    assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == ["1", "2"]   # nothing moved


def test_a_cut_short_last_metrics_line_is_dropped_with_a_warning(tmp_path, ref):
    wd = str(tmp_path / "w")
    train.train_and_evaluate(tiny_config(), wd, stop_after_steps=3)
    with open(os.path.join(wd, "metrics.jsonl"), "a") as f:
        f.write('{"step": 3, "kind": "tra')                     # the kill came mid-append
    with pytest.warns(UserWarning, match=r"metrics.jsonl: dropping line \d+, the last one"):
        train.train_and_evaluate(tiny_config(), wd)
    _records(wd)                                                 # every line parses again
    _assert_same_run(wd, ref)


def test_a_damaged_line_before_the_last_is_a_clear_error(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    with open(path, "w") as f:
        f.write('{"step": 1}\n{"step": 2, "ki\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not a JSON record"):
        loop.MetricsWriter(path, resume_step=3)
    path2 = str(tmp_path / "complete.jsonl")
    with open(path2, "w") as f:
        f.write('{"step": 1}\n{"step": 2}')                     # complete, only the newline is missing
    loop.MetricsWriter(path2, resume_step=5).write({"step": 3})
    assert [json.loads(line)["step"] for line in open(path2)] == [1, 2, 3]


# -- 2a. one run per workdir ---------------------------------------------------------------------
HOLDER = r"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("workdir_lock", sys.argv[1])
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
start = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
while time.time() < start:
    pass
holder = lock.claim(sys.argv[2], sys.argv[3], reentrant=False)
print("won" if holder is None else "lost %d" % holder["pid"], flush=True)
time.sleep(float(sys.argv[4]))
"""


def _holder(directory, name, seconds, start=0.0):
    return subprocess.Popen([sys.executable, "-c", HOLDER, LOCK_MODULE, directory, name, str(seconds),
                             str(start)], stdout=subprocess.PIPE, text=True)


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_run_on_a_live_workdir_is_refused_and_a_dead_runs_lock_taken_over(tmp_path, ref):
    wd = str(tmp_path / "w")
    lock = os.path.join(wd, "train.lock")
    other = _holder(wd, "train.lock", 120)
    try:
        assert other.stdout.readline().strip() == "won"
        with pytest.raises(RuntimeError) as err:
            train.train_and_evaluate(tiny_config(), wd)
        msg = str(err.value)
        assert wd in msg and f"process {other.pid} on host {socket.gethostname()}" in msg
        assert os.listdir(wd) == ["train.lock"]           # nothing written, the holder's lock kept
        assert json.load(open(lock))["pid"] == other.pid
    finally:
        other.kill()
        other.wait()
    # the holder is gone: its lock is stale, the run takes it over and releases it at the end
    train.train_and_evaluate(tiny_config(), wd)
    assert not os.path.exists(lock)
    _assert_same_run(wd, ref)


def test_the_lock_is_held_during_the_run_and_released_on_an_exception(tmp_path, monkeypatch):
    wd = str(tmp_path / "w")
    lock = os.path.join(wd, "train.lock")
    seen = {}

    def build_model(config):
        seen["holder"] = json.load(open(lock))
        with pytest.raises(RuntimeError, match="is in use"):  # a second run in this very process
            train.train_and_evaluate(tiny_config(), wd)
        raise OSError("disk on fire")

    monkeypatch.setattr(loop, "build_model", build_model)
    with pytest.raises(OSError, match="disk on fire"):
        train.train_and_evaluate(tiny_config(), wd)
    assert seen["holder"]["pid"] == os.getpid() and seen["holder"]["host"] == socket.gethostname()
    assert seen["holder"]["started"] > 0
    assert not os.path.exists(lock)


def test_a_lock_of_a_dead_process_with_this_hosts_name_is_taken_over(tmp_path):
    d = str(tmp_path / "w")
    os.makedirs(d)
    with open(os.path.join(d, "train.lock"), "w") as f:
        json.dump({"pid": _dead_pid(), "host": socket.gethostname(), "started": 1.0}, f)
    assert _workdir_lock.claim(d, "train.lock", reentrant=False) is None
    assert json.load(open(os.path.join(d, "train.lock")))["pid"] == os.getpid()
    assert _workdir_lock.release(d, "train.lock") and not os.path.exists(os.path.join(d, "train.lock"))


def test_reproduce_takeover_of_a_stale_claim_is_atomic(tmp_path, monkeypatch, load_repo_module):
    """Inject the race: between our process finding the claim stale and taking it over, another
    process takes it over. The old remove-then-create let both win; now the second one loses."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "experiments"))
    reproduce = load_repo_module("experiments/reproduce.py", "reproduce_for_lock_test")
    study = str(tmp_path / "out" / "study")
    os.makedirs(study)
    path = os.path.join(study, "running.json")
    dead = _dead_pid()
    with open(path, "w") as f:
        json.dump({"pid": dead, "host": socket.gethostname(), "started": 1.0}, f)
    real = _workdir_lock.pid_alive
    rival = {}

    def pid_alive(pid):
        if pid == dead and "proc" not in rival:   # we have read the stale claim: the rival strikes
            rival["proc"] = _holder(study, "running.json", 120)
            rival["said"] = rival["proc"].stdout.readline().strip()
        return real(pid)

    for module, name in ((_workdir_lock, "pid_alive"), (reproduce, "_alive")):  # (_alive: before the fix)
        if hasattr(module, name):
            monkeypatch.setattr(module, name, pid_alive)
    try:
        holder = reproduce.claim_study(study)
        assert rival["said"] == "won"
        assert holder is not None and holder["pid"] == rival["proc"].pid   # we lost, as we should
        assert json.load(open(path))["pid"] == rival["proc"].pid            # the winner's claim stands
    finally:
        rival["proc"].kill()
        rival["proc"].wait()


def test_many_processes_racing_for_a_stale_lock_have_exactly_one_winner(tmp_path):
    d = str(tmp_path / "w")
    os.makedirs(d)
    with open(os.path.join(d, "train.lock"), "w") as f:
        json.dump({"pid": _dead_pid(), "host": socket.gethostname(), "started": 1.0}, f)
    start = time.time() + 1.5                   # all of them go at once (a barrier, not a timing assert)
    procs = [_holder(d, "train.lock", 3, start) for _ in range(6)]
    said = [p.communicate()[0].strip() for p in procs]
    assert said.count("won") == 1, said
    winner = procs[said.index("won")].pid
    assert all(s == "won" or s == f"lost {winner}" for s in said), said


# -- 2b. no silent config change -----------------------------------------------------------------
def test_a_changed_config_is_refused_unless_allowed_and_then_recorded(tmp_path):
    wd = str(tmp_path / "w")
    train.train_and_evaluate(tiny_config(), wd, stop_after_steps=3)
    cfg_before = open(os.path.join(wd, "config.json"), "rb").read()
    metrics_before = open(os.path.join(wd, "metrics.jsonl"), "rb").read()
    changed = tiny_config(num_epochs=3)
    changed.optimizer.lr = 0.5
    with pytest.raises(ValueError) as err:
        train.train_and_evaluate(changed, wd)
    msg = str(err.value)
    assert "num_epochs: 2 -> 3" in msg and "optimizer.lr: 0.05 -> 0.5" in msg
    assert "allow_config_change" in msg
    assert open(os.path.join(wd, "config.json"), "rb").read() == cfg_before
    assert open(os.path.join(wd, "metrics.jsonl"), "rb").read() == metrics_before
    assert not os.path.exists(os.path.join(wd, "train.lock"))

    results = train.train_and_evaluate(changed, wd, allow_config_change=True)
    assert results["step"] == 12
    assert open(os.path.join(wd, "config.3.json"), "rb").read() == cfg_before
    assert json.load(open(os.path.join(wd, "config.json")))["optimizer"]["lr"] == 0.5
    change = [r for r in _records(wd) if r.get("kind") == "config_change"]
    assert change == [{"step": 3, "kind": "config_change", "previous_config": "config.3.json",
                       "config_change": {"num_epochs": {"old": 2, "new": 3},
                                         "optimizer.lr": {"old": 0.05, "new": 0.5}}}]
    train.train_and_evaluate(changed, wd)        # the same (new) config again: no new record
    assert len([r for r in _records(wd) if r.get("kind") == "config_change"]) == 1


def test_keys_free_to_change_are_listed_and_ignored():
    assert set(loop.CONFIG_KEYS_FREE_TO_CHANGE) == {"data_dir", "num_devices", "tensorboard"}
    saved = json.loads(tiny_config().to_json_best_effort())
    moved = tiny_config(data_dir="/elsewhere", num_devices=8)
    assert loop.config_changes(saved, moved) == {}
    logged = tiny_config()
    logged.tensorboard = not logged.tensorboard
    assert loop.config_changes(saved, logged) == {}
    assert loop.config_changes(saved, tiny_config(seed=3)) == {"seed": {"old": 0, "new": 3}}
    smaller = tiny_config()
    smaller.model.kwargs = {"hidden": (8,), "norm": "batch"}
    assert loop.config_changes(saved, smaller) == {"model.kwargs.hidden": {"old": [16], "new": [8]}}


def _cli(args, cwd=ROOT):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train.py"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_command_line_refuses_bad_inputs_and_config_changes_unless_asked(tmp_path):
    cfg = tmp_path / "tiny.py"
    cfg.write_text(TINY)
    bad = str(tmp_path / "bad")
    out = _cli(["--config", str(cfg), "--workdir", bad, "--config.num_epochs=0"])
    assert out.returncode != 0 and "ValueError: bad training config: num_epochs=0" in out.stderr
    assert not os.path.exists(bad)

    wd = str(tmp_path / "w")
    train.train_and_evaluate(tiny_config(), wd, stop_after_steps=2)
    out = _cli(["--config", str(cfg), "--workdir", wd, "--config.optimizer.lr=0.5"])
    assert out.returncode != 0 and "optimizer.lr: 0.05 -> 0.5" in out.stderr
    out = _cli(["--config", str(cfg), "--workdir", wd, "--config.optimizer.lr=0.5", "--allow_config_change"])
    assert out.returncode == 0, out.stderr[-3000:]
    change = [r for r in _records(wd) if r.get("kind") == "config_change"]
    assert [(r["step"], r["config_change"]) for r in change] == [(2, {"optimizer.lr": {"old": 0.05, "new": 0.5}})]
    assert json.load(open(os.path.join(wd, "results.json")))["step"] == STEPS


# -- 3. bad inputs ---------------------------------------------------------------------------------
BAD = [
    ({"num_epochs": 0}, r"num_epochs=0 \(allowed: an integer >= 1\)"),
    ({"num_epochs": -2}, r"num_epochs=-2 \(allowed: an integer >= 1\)"),
    ({"num_steps": -5}, r"num_steps=-5 \(allowed: an integer >= 1 or None\)"),
    ({"num_steps": 0}, r"num_steps=0 \(allowed: an integer >= 1 or None\)"),
    ({"batch_size": 0}, r"batch_size=0 \(allowed: an integer >= 1\)"),
    ({"log_every_steps": 0}, r"log_every_steps=0 \(allowed: an integer >= 1\)"),
    ({"checkpoint.every_steps": 0}, r"checkpoint.every_steps=0 \(allowed: an integer >= 1\)"),
    ({"eval_batch_size": 0}, r"eval_batch_size=0"),
    ({"eval_every_epochs": 0}, r"eval_every_epochs=0 \(allowed: a number > 0\)"),
    ({"checkpoint.best_mode": "maximum"}, r"checkpoint.best_mode='maximum' \(allowed: 'max', 'min'\)"),
    ({"optimizer.lrr": 0.1}, r"unknown config keys: optimizer.lrr \(did you mean optimizer.lr\?\)"),
    ({"lr": 0.1}, r"unknown config keys: lr \(did you mean optimizer.lr\?\)"),
    ({"num_epoch": 3}, r"unknown config keys: num_epoch \(did you mean num_epochs\?\)"),
    ({"robust_eval.stepz": 3}, r"robust_eval.stepz \(did you mean robust_eval.steps\?\)"),
]


@pytest.mark.parametrize("fields,match", BAD, ids=[next(iter(f)) + "=" + str(next(iter(f.values()))) for f, _ in BAD])
def test_bad_training_inputs_are_clear_errors_before_anything_is_written(tmp_path, fields, match):
    c = tiny_config()
    for name, value in fields.items():
        *parents, leaf = name.split(".")
        node = c
        for p in parents:
            node = node[p]
        with node.unlocked():
            node[leaf] = value
    wd = str(tmp_path / "w")
    with pytest.raises(ValueError, match=match):
        train.train_and_evaluate(c, wd)
    assert not os.path.exists(wd)


def test_bad_stop_after_steps_and_both_step_counts_are_checked(tmp_path):
    with pytest.raises(ValueError, match="stop_after_steps must be None or an integer >= 1"):
        train.train_and_evaluate(tiny_config(), str(tmp_path / "w"), stop_after_steps=0)
    c = tiny_config(num_epochs=0, num_steps=3)      # num_steps given: num_epochs is not used
    check_config(c)
    assert not os.path.exists(tmp_path / "w")


def test_every_config_in_configs_passes_the_check():
    """No config of configs/ (nor the training configs nested in the study configs) is refused."""
    import ml_collections

    checked = []

    def walk(c, where):
        if isinstance(c, ml_collections.ConfigDict):
            if {"objective", "optimizer", "checkpoint"} <= set(c.keys()):
                check_config(c)
                checked.append(where)
            else:
                for k, v in c.items():
                    walk(v, f"{where}.{k}")

    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
        name = os.path.basename(path)[:-3]
        spec = importlib.util.spec_from_file_location(f"config_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        profiles = getattr(module, "PROFILES", None) or ("smoke", "medium", "paper")
        for profile in profiles:
            walk(module.get_config(profile), f"{name}:{profile}")
    assert len(checked) >= 30, checked
