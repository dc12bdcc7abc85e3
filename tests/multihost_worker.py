"""One process of the multi-process tests (tests/test_multihost.py); not collected by pytest.

    python tests/multihost_worker.py WORKDIR PROCESS_ID NUM_PROCESSES PORT [--slow SECONDS] [--no-eval]
    python tests/multihost_worker.py WORKDIR PROCESS_ID NUM_PROCESSES PORT --objectives free_at,fgsm_rs

Joins a ``jax.distributed`` run on 127.0.0.1:PORT with 2 CPU devices, trains :func:`config`
(PGD-AT on digits, batch norm) into WORKDIR, then evaluates PGD and a custom
AutoAttack with ``shard=True``. Each process records the labels and image checksums of the rows
it fed (``WORKDIR/fed.<process>.json``, test-only files); process 0 writes ``eval.json`` and
``experiments/evaluate.py``'s ``eval_cli.json``.
``--slow`` sleeps before every train step (so the test can kill the processes mid-run);
``--no-eval`` stops after training. ``--objectives a,b`` trains :func:`objective_config` of each
into ``WORKDIR/<name>`` instead (nothing else).
"""
import json
import os
import sys
import time

import numpy as np

LOCAL_DEVICES = 2


def config():
    """The run both the 1-process and the multi-process tests train (global batch 16)."""
    from jadv import train
    c = train.base_config()
    c.dataset = "digits"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 16, "widths": (), "hidden": 32, "norm": "batch"}
    c.batch_size = 16
    c.train_size = 160
    c.test_size = 40
    c.num_steps = 30
    c.log_every_steps = 5
    c.checkpoint.every_steps = 5
    c.optimizer.update(lr=0.1, schedule="cosine", weight_decay=5e-4)
    c.objective.update(name="pgd_at", eps=0.02, steps=2, norm="linf")
    c.num_devices = None
    return c


# objectives with state beyond the parameters, run by the second multi-process test: Free-AT
# (a batch-shaped delta in state.extra, replayed minibatches) and FGSM-RS with Wong et al.'s
# early-stop check (host-side control flow on a PGD result, a second checkpointer)
OBJECTIVES = {
    "free_at": {"objective": {"name": "free_at", "eps": 0.02, "steps": None, "replays": 2}, "num_steps": 10},
    "fgsm_rs": {"objective": {"name": "fgsm_rs", "eps": 0.02, "steps": None}, "early_stop": {"enabled": True}},
}


def objective_config(name):
    """:func:`config` with the objective (and settings) ``OBJECTIVES[name]``."""
    c = config()
    for key, value in OBJECTIVES[name].items():
        if isinstance(value, dict):
            c[key].update(value)
        else:
            c[key] = value
    return c


def evaluation(model_fn, x, y, key):
    """The evaluation both tests run: PGD-5 (robust_accuracy) and APGD-CE + Square (autoattack)."""
    from jadv import attacks
    pgd = attacks.robust_accuracy(model_fn, x, y, [{"name": "pgd", "eps": 0.03, "step_size": 0.01, "steps": 5}],
                                  key=key, batch_size=8, progress=False, shard=True)
    _, aa = attacks.autoattack(model_fn, x, y, key=key, eps=0.03, version="custom", batch_size=8,
                               attacks=[{"name": "apgd-ce", "steps": 10}, {"name": "square", "queries": 20}],
                               verbose=False, checks=False, shard=True)
    return {"pgd_robust": pgd["robust"].tolist(), "pgd_clean": pgd["clean_accuracy"],
            "aa_robust": aa["robust"].tolist(), "aa_clean": aa["clean_accuracy"]}


# experiments/evaluate.py's evaluation both tests run (process 0 writes WORKDIR/eval_cli.json)
EVALUATE_ARGS = {"suite": "pgd", "eps": 0.03, "steps": 5, "restarts": 2, "n_test": 40, "batch_size": 8}


def evaluate_cli():
    """The module of experiments/evaluate.py."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "evaluate.py")
    spec = importlib.util.spec_from_file_location("jadv_evaluate_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    workdir, pid, nproc, port = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    slow = float(argv[argv.index("--slow") + 1]) if "--slow" in argv else 0.0
    from jadv.train import sharding
    sharding.initialize(f"127.0.0.1:{port}", nproc, pid, local_devices=LOCAL_DEVICES)
    import jax
    from jadv import data as jdata
    from jadv import train

    fed = []
    original = sharding.shard_batch

    def recording(batch, mesh, *, global_size=None):
        if global_size == config().batch_size and "label" in batch:
            fed.append({"labels": np.asarray(batch["label"]).tolist(),
                        "image_sums": np.asarray(batch["image"]).reshape(len(batch["label"]), -1)
                        .sum(1, dtype=np.int64).tolist()})
            time.sleep(slow)
        return original(batch, mesh, global_size=global_size)

    sharding.shard_batch = recording
    if "--objectives" in argv:
        for name in argv[argv.index("--objectives") + 1].split(","):
            train.train_and_evaluate(objective_config(name), os.path.join(workdir, name))
        return
    results = train.train_and_evaluate(config(), workdir)
    with open(os.path.join(workdir, f"fed.{pid}.json"), "w") as f:
        json.dump(fed, f)
    if "--no-eval" in argv:
        return
    model, variables, _ = train.load_trained(workdir)
    test = jdata.load("digits", "test")
    x, y = jdata.to_float(test.images[:40]), test.labels[:40]
    out = evaluation(lambda xb: model.apply(variables, xb, train=False), np.asarray(x), y, jax.random.key(3))
    report = evaluate_cli().evaluate_workdir(workdir, shard=True, **EVALUATE_ARGS,
                                             out=os.path.join(workdir, "eval_cli.json"))
    out["cli_robust_accuracy"] = report["robust_accuracy"]
    if pid == 0:
        with open(os.path.join(workdir, "eval.json"), "w") as f:
            json.dump({"results": results, **out}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
