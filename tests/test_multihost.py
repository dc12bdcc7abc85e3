"""Training and evaluation across processes (jax.distributed): 2 local processes x 2 CPU devices
on 127.0.0.1 against one process over 4 devices (tests/multihost_worker.py is one process)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jadv import data as jdata
from jadv import train

sys.path.insert(0, os.path.dirname(__file__))
import multihost_worker as worker  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, *extra):
    """Start both processes of a 2-process run; returns (processes, log paths)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # each child sets its own devices
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    port = _free_port()
    procs, logs = [], []
    for pid in range(2):
        log = os.path.join(os.path.dirname(workdir), f"{os.path.basename(workdir)}.{pid}.{len(os.listdir(os.path.dirname(workdir)))}.log")
        logs.append(log)
        with open(log, "w") as f:
            procs.append(subprocess.Popen([sys.executable, WORKER, workdir, str(pid), "2", str(port), *extra],
                                          stdout=f, stderr=subprocess.STDOUT, env=env))
    return procs, logs


def _wait(procs, logs, timeout=240):
    deadline = time.time() + timeout
    for p, log in zip(procs, logs):
        try:
            p.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"multi-process run did not finish in {timeout} s; log:\n{open(log).read()[-3000:]}")
        assert p.returncode == 0, f"process exited {p.returncode}; log:\n{open(log).read()[-3000:]}"


def _leaves(workdir):
    _, variables, _ = train.load_trained(workdir)
    return jax.tree_util.tree_leaves_with_path(variables)


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 1 x 4 reference run and a 2 x 2 run killed (both processes, SIGKILL) after its step-10
    checkpoint, then resumed to the end."""
    root = tmp_path_factory.mktemp("multihost")
    ref = str(root / "one_process")
    config = worker.config()
    config.num_devices = 4
    ref_results = train.train_and_evaluate(config, ref)
    model, variables, _ = train.load_trained(ref)
    test = jdata.load("digits", "test")
    ref_eval = worker.evaluation(lambda xb: model.apply(variables, xb, train=False),
                                 np.asarray(jdata.to_float(test.images[:40])), test.labels[:40], jax.random.key(3))
    ref_eval["cli"] = worker.evaluate_cli().evaluate_workdir(ref, **worker.EVALUATE_ARGS,
                                                             out=str(root / "ref_eval_cli.json"))

    multi = str(root / "two_processes")
    procs, logs = _launch(multi, "--slow", "0.3", "--no-eval")
    killed_at = None
    deadline = time.time() + 240
    while time.time() < deadline and killed_at is None:
        if os.path.isdir(os.path.join(multi, "checkpoints", "10")):
            for p in procs:
                p.send_signal(signal.SIGKILL)
            killed_at = time.time()
        elif any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    for p in procs:
        p.wait(timeout=30)
    assert killed_at is not None and all(p.returncode == -signal.SIGKILL for p in procs), \
        "the processes ended before they could be killed:\n" + open(logs[0]).read()[-3000:]
    assert not os.path.exists(os.path.join(multi, "results.json"))
    procs, logs = _launch(multi)
    _wait(procs, logs)
    return {"ref": ref, "ref_results": ref_results, "ref_eval": ref_eval, "multi": multi, "logs": logs}


def test_two_processes_resume_after_a_kill_and_end_with_the_one_process_parameters(runs):
    assert "resumed from step" in open(runs["logs"][0]).read()
    ref, multi = _leaves(runs["ref"]), _leaves(runs["multi"])
    assert [p for p, _ in ref] == [p for p, _ in multi]
    for (path, a), (_, b) in zip(ref, multi):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5,
                                   err_msg=jax.tree_util.keystr(path))
    with open(os.path.join(runs["multi"], "results.json")) as f:
        results = json.load(f)
    assert results["step"] == 30 and results["devices"] == 4
    assert results["test_accuracy"] == pytest.approx(runs["ref_results"]["test_accuracy"], abs=1 / 40)


def test_each_process_feeds_its_own_half_of_every_global_batch(runs):
    config = worker.config()
    train_ds, _, _ = train.loop.load_splits(config)
    _, _, data_key = train.run_keys(config.seed)
    images, labels = jax.device_put(train_ds.images), jax.device_put(train_ds.labels)
    steps_per_epoch = len(train_ds) // config.batch_size
    expected = []
    for epoch in range(config.num_steps // steps_per_epoch):
        for b in jdata.epoch_batches(images, labels, batch_size=config.batch_size,
                                     key=jax.random.fold_in(data_key, epoch), remainder="drop"):
            expected.append((np.asarray(b["label"]).tolist(),
                             np.asarray(b["image"]).reshape(config.batch_size, -1).sum(1, dtype=np.int64).tolist()))
    fed = []
    for pid in range(2):
        with open(os.path.join(runs["multi"], f"fed.{pid}.json")) as f:
            fed.append(json.load(f))
    # the resumed run fed the global batches after its step-10 checkpoint
    start = config.num_steps - len(fed[0])
    assert len(fed[0]) == len(fed[1]) and 0 < len(fed[0]) <= 20
    for i, (p0, p1) in enumerate(zip(*fed)):
        want_labels, want_sums = expected[start + i]
        half = config.batch_size // 2
        assert p0["labels"] == want_labels[:half] and p1["labels"] == want_labels[half:]
        assert p0["image_sums"] == want_sums[:half] and p1["image_sums"] == want_sums[half:]
        assert p0["image_sums"] != p1["image_sums"]


def test_only_process_zero_writes_and_metrics_have_the_one_process_records(runs):
    def key(records):
        return [(r["kind"], r["step"]) for r in records if r["kind"] in ("train", "eval")]
    assert key(_records(runs["multi"])) == key(_records(runs["ref"]))
    leftovers = [n for n in os.listdir(runs["multi"]) if n.endswith(".tmp") or n.startswith(".")]
    assert leftovers == []


def test_evaluation_across_processes_equals_one_process(runs):
    with open(os.path.join(runs["multi"], "eval.json")) as f:
        got = json.load(f)
    want = runs["ref_eval"]
    assert 0 < sum(want["pgd_robust"]) < len(want["pgd_robust"])  # a test that can tell them apart
    for k in ("pgd_robust", "pgd_clean", "aa_robust", "aa_clean"):
        assert got[k] == want[k], k
    with open(os.path.join(runs["multi"], "eval_cli.json")) as f:
        cli = json.load(f)
    assert cli["robust_accuracy"] == got["cli_robust_accuracy"] == want["cli"]["robust_accuracy"]
    assert cli["clean_accuracy"] == want["cli"]["clean_accuracy"] and cli["n_test"] == 40
    assert not os.path.exists(os.path.join(runs["multi"], "eval_cli.json.tmp"))


def test_objectives_with_extra_state_train_the_same_across_processes(tmp_path):
    """Free-AT (batch-shaped delta in the state) and FGSM-RS with its early-stop check, 2 x 2 vs 1 x 4."""
    names = list(worker.OBJECTIVES)
    procs, logs = _launch(str(tmp_path / "multi"), "--objectives", ",".join(names))
    for name in names:
        config = worker.objective_config(name)
        config.num_devices = 4
        train.train_and_evaluate(config, str(tmp_path / "one" / name))
    _wait(procs, logs)
    for name in names:
        config = worker.objective_config(name)
        ref, multi = _leaves(str(tmp_path / "one" / name)), _leaves(str(tmp_path / "multi" / name))
        for (path, a), (_, b) in zip(ref, multi):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} {jax.tree_util.keystr(path)}")
        kinds = [[r["kind"] for r in _records(str(tmp_path / run / name))] for run in ("one", "multi")]
        assert kinds[0] == kinds[1]
        if name == "fgsm_rs":
            epochs = config.num_steps // (config.train_size // config.batch_size)
            assert kinds[1].count("early_stop") == epochs   # one check per epoch
