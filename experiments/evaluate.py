"""Evaluate a trained checkpoint under an attack suite and write ``eval.json``.

    python experiments/evaluate.py --workdir runs/mnist_pgd_at --suite pgd --eps 0.3 \\
        --steps 40 --restarts 5 --n_test 1000 [--which best] [--data_dir ../shared/data]
    python experiments/evaluate.py --workdir runs/mnist_pgd_at --suite autoattack --eps 0.3 --n_test 1000

Suites: ``pgd`` (PGD, step 2.5 eps / steps, random start, restarts), ``apgd`` (APGD-CE, and
APGD-DLR when the model has >= 3 classes), ``single`` (every attack of AutoAttack run on its own:
APGD-CE, APGD-T, FAB-T, Square, with their per-example worst case), ``autoattack``
(AutoAttack "standard": APGD-CE, APGD-T, FAB-T, Square in sequence). The model is attacked in
inference mode (running batch-norm statistics).

``--shard`` splits every batch over all devices. Across several processes (``jax.distributed``;
every process runs the same command with its ``--process_id``, see ``experiments/train.py``) the
batches are split over the devices of all processes, each process attacks its rows, the outputs
are gathered, and process 0 writes the report; AutoAttack's survivors of each attack are
re-batched globally (every process holds the same survivor list), so the result equals one
process's.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from jadv import attacks, data
from jadv._io import atomic_write_json
from jadv.train import load_trained, sharding

SUITES = ("pgd", "apgd", "single", "autoattack")


def suite_specs(suite: str, *, eps: float, norm: str, steps: int, restarts: int, num_classes: int):
    """The attack specs of a suite (dicts understood by ``jadv.attacks.robust_accuracy``)."""
    if suite == "pgd":
        init = "uniform" if norm == "linf" else "ball"
        return [{"name": "pgd", "label": f"pgd-{steps}x{restarts}", "eps": eps, "norm": norm,
                 "steps": steps, "step_size": 2.5 * eps / steps, "restarts": restarts, "init": init}]
    if suite == "apgd":
        specs = [{"name": "apgd-ce", "eps": eps, "norm": norm, "steps": steps, "restarts": restarts}]
        if num_classes >= 3:
            specs.append({"name": "apgd-dlr", "eps": eps, "norm": norm, "steps": steps, "restarts": restarts})
        return specs
    if suite == "single":
        n_targets = min(9, num_classes - 1)
        return [{"name": "apgd-ce", "eps": eps, "norm": norm, "steps": 100},
                {"name": "apgd-t", "eps": eps, "norm": norm, "steps": 100, "n_targets": n_targets},
                {"name": "fab-t", "eps": eps, "norm": norm, "steps": 100, "n_targets": n_targets},
                {"name": "square", "eps": eps, "norm": norm, "queries": 5000}]
    raise ValueError(f"unknown suite {suite!r}; allowed: {', '.join(SUITES)}")


def evaluate_workdir(workdir: str, *, suite: str, eps: float, norm: str = "linf", steps: int = 40,
                     restarts: int = 1, n_test: int | None = 1000, batch_size: int = 500, seed: int = 0,
                     which: str = "latest", data_dir: str | None = None, out: str | None = None,
                     shard: bool = False) -> dict:
    """Attack the checkpoint in ``workdir`` on the first ``n_test`` test points; write eval.json
    (``shard``: split each batch over all devices of all processes; process 0 writes)."""
    primary = sharding.is_primary()
    model, variables, config = load_trained(workdir, which=which)
    test = data.load(config.dataset, "test", data_dir=data_dir or config.get("data_dir"))
    n = len(test) if not n_test else min(n_test, len(test))
    x = data.to_float(test.images[:n])
    y = test.labels[:n]

    def logits_fn(variables, x):
        return model.apply(variables, x, train=False)

    key = jax.random.key(seed)
    t0 = time.time()
    if suite == "autoattack":
        _, report = attacks.autoattack(logits_fn, x, y, key=key, eps=eps, norm=norm, version="standard",
                                       batch_size=batch_size, params=variables, shard=shard, verbose=primary)
        result = {k: v for k, v in report.items() if k not in ("robust",)}
    else:
        specs = suite_specs(suite, eps=eps, norm=norm, steps=steps, restarts=restarts,
                            num_classes=int(config.num_classes))
        report = attacks.robust_accuracy(logits_fn, x, y, specs, key=key, batch_size=batch_size,
                                         params=variables, shard=shard, progress=primary)
        result = {k: v for k, v in report.items() if k not in ("robust", "x_adv")}
    result.update(suite=suite, eps=eps, norm=norm, n_test=n, checkpoint=which, dataset=config.dataset,
                  model=config.model.name, objective=config.objective.name, seed=seed,
                  wall_time_s=time.time() - t0)
    result = json.loads(json.dumps(result, default=_jsonable))
    path = out or os.path.join(workdir, f"eval_{suite}_{norm}_{eps:g}.json")
    if not primary:
        return result
    atomic_write_json(path, result)
    print(json.dumps({k: v for k, v in result.items() if "accuracy" in k or k == "per_attack"}, indent=1))
    print(f"wrote {path}")
    return result


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--suite", default="pgd", choices=SUITES)
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--norm", default="linf", choices=("linf", "l2"))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--n_test", type=int, default=1000, help="first N test points (0: all)")
    p.add_argument("--batch_size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--which", default="latest", choices=("latest", "best"))
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out", default=None, help="output JSON (default WORKDIR/eval_<suite>_<norm>_<eps>.json)")
    p.add_argument("--shard", action="store_true", help="split each batch over all devices (of all processes)")
    p.add_argument("--num_processes", type=int, default=None, help="processes of a multi-process run")
    p.add_argument("--process_id", type=int, default=None, help="rank of this process")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0's coordination service")
    p.add_argument("--local_devices", type=int, default=None, help="CPU devices of this process (CPU only)")
    a = p.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    if a.coordinator or a.num_processes:
        sharding.initialize(a.coordinator, a.num_processes, a.process_id, local_devices=a.local_devices)
        a.shard = True  # without it every process would attack every point
    evaluate_workdir(a.workdir, suite=a.suite, eps=a.eps, norm=a.norm, steps=a.steps, restarts=a.restarts,
                     n_test=a.n_test, batch_size=a.batch_size, seed=a.seed, which=a.which,
                     data_dir=a.data_dir, out=a.out, shard=a.shard)


if __name__ == "__main__":
    main()
