"""Short training probes behind the medium profile's recipes: accuracy and how far each conv layer
moved from its initialisation.

    python benchmarks/probe_recipes.py cifar_cnn_std3 cifar_cnn_wd5e3 mnist_r20_wd5e3 \\
        --data_dir ../shared/data --out runs/probes

Each candidate trains with ``jadv.train.train_and_evaluate`` (SGD momentum 0.9, one-cycle lr 0.1,
batch 128, the candidate's weight decay and epochs) and prints its test accuracy (first 2,000 test
images) and, per 4-D kernel, the cosine between the trained kernel and the same kernel at
initialisation (``jadv.studies.gates.init_cosine`` against ``jadv.train.initial_variables``; the
quality gates of the weight claims ask <= 0.7). RESULTS.md ("Quality gates") records the output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CNN = {"conv1_filters": 64, "widths": (64,), "hidden": 128, "norm": "batch"}
CANDIDATES = {
    # study 1's CIFAR-10 CNN: weight decay 5e-4 vs 5e-3 (3 epochs, crop + flip)
    "cifar_cnn_std3": dict(dataset="cifar10", model="small_cnn", kwargs=CNN, obj={"name": "standard"}, epochs=3,
                           augment=True),
    "cifar_cnn_wd5e3": dict(dataset="cifar10", model="small_cnn", kwargs=CNN, obj={"name": "standard"}, epochs=3,
                            augment=True, wd=5e-3),
    # a ResNet-8 on Fashion-MNIST (2 epochs)
    "fmnist_r8_std2": dict(dataset="fashion_mnist", model="cifar_resnet", kwargs={"depth": 8, "norm": "batch"},
                           obj={"name": "standard"}, epochs=2),
    # study 4's ResNet-20 on MNIST at weight decay 5e-3 (1 epoch)
    "mnist_r20_wd5e3": dict(dataset="mnist", model="resnet20", kwargs={}, obj={"name": "standard"}, epochs=1,
                            wd=5e-3),
}


def probe(name, out, data_dir, *, dataset, model, kwargs, obj, epochs, augment=False, lr=0.1, wd=5e-4):
    import jax

    from jadv.studies.gates import init_cosine
    from jadv.train import base_config, initial_variables, load_trained, train_and_evaluate

    c = base_config()
    c.dataset, c.data_dir, c.test_size = dataset, data_dir, 2000
    c.model.name, c.model.kwargs = model, kwargs
    c.batch_size, c.num_epochs = 128, epochs
    c.objective.update(obj)
    c.augment.crop_flip = augment
    c.optimizer.update(lr=lr, weight_decay=wd, schedule="onecycle")
    c.log_every_steps, c.eval_every_epochs = 100, epochs
    c.robust_eval.enabled = False
    c.checkpoint.every_steps = 10 ** 6
    workdir = os.path.join(out, name)
    t = time.time()
    res = train_and_evaluate(c, workdir)
    wall = time.time() - t
    _, trained, _ = load_trained(workdir)
    start = dict(jax.tree_util.tree_flatten_with_path(initial_variables(workdir)["params"])[0])
    cos = {jax.tree_util.keystr(p): round(init_cosine(k, start[p]), 3)
           for p, k in jax.tree_util.tree_flatten_with_path(trained["params"])[0] if k.ndim == 4}
    return {"candidate": name, "wall_s": round(wall), "test_accuracy": res.get("test_accuracy"),
            "init_cosine": cos}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("candidates", nargs="+", choices=sorted(CANDIDATES))
    p.add_argument("--data_dir", default=None)
    p.add_argument("--out", default=os.path.join("runs", "probes"))
    args = p.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    for name in args.candidates:
        print(json.dumps(probe(name, args.out, args.data_dir, **CANDIDATES[name])), flush=True)


if __name__ == "__main__":
    main()
