"""TensorBoard event files beside metrics.jsonl (config.tensorboard, clu's metric writers).

The writing tests need clu and TensorFlow (pip install 'jadv[tensorboard]') and are skipped with
that reason when either is missing; the record -> scalar mapping, the config switch and the
missing-package error are tested always.
"""
import builtins
import json
import os

import pytest

from jadv import train
from jadv.train import tensorboard as tb
from jadv.train.loop import MetricsWriter


def test_scalars_of_records():
    assert tb.scalars({"step": 4, "kind": "train", "loss": 0.5, "accuracy": 1, "lr": float("nan"),
                       "stopped": True, "name": "x", "robust_eval": {"eps": 0.1}}) == {
        "train/loss": 0.5, "train/accuracy": 1.0}
    assert tb.scalars({"step": 8, "epoch": 1.0, "kind": "eval", "test_accuracy": 0.9}) == {
        "eval/epoch": 1.0, "eval/test_accuracy": 0.9}
    assert tb.scalars({"step": 0, "kind": "setup", "objective.eps": 0.3}) == {}
    assert tb.scalars({"step": 1, "loss": 2.0}) == {"train/loss": 2.0}


def test_missing_clu_is_a_clear_error(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_clu(name, *args, **kwargs):
        if name == "clu" or name.startswith("clu."):
            raise ModuleNotFoundError("No module named 'clu'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_clu)
    with pytest.raises(ImportError, match=r"pip install 'jadv\[tensorboard\]'.*set tensorboard=False"):
        MetricsWriter(str(tmp_path / "metrics.jsonl"), 0, tensorboard_dir=str(tmp_path / "tb"))
    # off by default, and not needed by a non-primary process
    MetricsWriter(str(tmp_path / "metrics.jsonl"), 0).write({"step": 1, "loss": 1.0})
    MetricsWriter(str(tmp_path / "other.jsonl"), 0, enabled=False, tensorboard_dir=str(tmp_path / "tb2"))
    assert not os.path.exists(tmp_path / "tb2")


def test_config_switch_is_checked_and_free_to_change():
    c = train.base_config()
    assert c.tensorboard is False                        # off unless configured
    with pytest.raises(TypeError, match="tensorboard"):  # the config is typed: a bool
        c.tensorboard = "yes"
    from jadv.train.loop import CONFIG_KEYS_FREE_TO_CHANGE
    assert "tensorboard" in CONFIG_KEYS_FREE_TO_CHANGE


def _read_events(logdir):
    tf = pytest.importorskip("tensorflow")
    values = {}
    for name in os.listdir(logdir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
            for v in event.summary.value:
                values.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
    return values


def test_metrics_writer_writes_event_files(tmp_path):
    pytest.importorskip("clu.metric_writers", reason="TensorBoard writing needs clu and tensorflow "
                                                     "(pip install 'jadv[tensorboard]')")
    logdir = str(tmp_path / "tensorboard")
    w = MetricsWriter(str(tmp_path / "metrics.jsonl"), 0, tensorboard_dir=logdir)
    records = [{"step": 0, "kind": "setup", "objective": "standard"},
               {"step": 4, "kind": "train", "loss": 2.0, "steps_per_sec": 10.0},
               {"step": 8, "kind": "train", "loss": 1.5, "steps_per_sec": 12.0},
               {"step": 8, "kind": "eval", "epoch": 1.0, "test_accuracy": 0.75}]
    for r in records:
        w.write(r)
    w.close()
    assert [json.loads(line) for line in open(tmp_path / "metrics.jsonl")] == records
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(logdir))
    values = _read_events(logdir)
    assert values["train/loss"] == {4: 2.0, 8: 1.5}
    assert values["eval/test_accuracy"] == {8: 0.75}
    assert not any(tag.startswith("setup/") for tag in values)


def test_training_run_writes_event_files(tmp_path):
    pytest.importorskip("clu.metric_writers", reason="TensorBoard writing needs clu and tensorflow "
                                                     "(pip install 'jadv[tensorboard]')")
    c = train.base_config()
    c.dataset = "digits"
    c.model.name = "linear"
    c.batch_size, c.train_size, c.test_size, c.num_steps = 32, 128, 32, 4
    c.log_every_steps, c.num_devices, c.tensorboard = 2, 1, True
    wd = str(tmp_path / "run")
    train.train_and_evaluate(c, wd)
    values = _read_events(os.path.join(wd, "tensorboard"))
    logged = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    train_steps = [r["step"] for r in logged if r["kind"] == "train"]
    assert sorted(values["train/loss"]) == train_steps == [2, 4]
    assert values["eval/test_accuracy"][4] == pytest.approx([r for r in logged if r["kind"] == "eval"][-1]["test_accuracy"])
