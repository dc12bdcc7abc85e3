"""Convert a PyTorch checkpoint (RobustBench architectures) into a jadv workdir.

    python experiments/import_model.py --checkpoint Carmon2019.pt --arch wrn28_10 --workdir runs/carmon2019 \\
        [--dataset cifar10] [--mean 0.4914 0.4822 0.4465 --std 0.2471 0.2435 0.2616] [--input_shape 32,32,3]
    python experiments/import_model.py --robustbench Carmon2019Unlabeled --checkpoint models/cifar10/Linf/Carmon2019Unlabeled.pt \\
        --workdir runs/carmon2019 [--dataset cifar10|cifar100] [--threat_model Linf|L2]

``--robustbench NAME`` takes the architecture, its options and the input mean/std from the
RobustBench model-zoo table :mod:`jadv.models.robustbench` (instead of ``--arch``/``--mean``/
``--std``/``--activation``) and checks that the checkpoint converts to the size the zoo says; an
unknown name is an error listing close names, an unsupported one says why. The checkpoint file
is the one ``robustbench.utils.load_model(NAME, dataset=..., threat_model=...)`` downloads (see
the README's model-zoo section).

``--checkpoint`` is a ``torch.save`` file (read with ``torch.load(weights_only=True)``; a dict
holding the weights under ``state_dict``/``model``/... is unwrapped) or a ``.safetensors`` file.
``--arch``: preact_resnet18, resnet18, resnet50, wrn28_10, wrn34_10, wide_resnet (depth/width
read from the keys), dm_wide_resnet / dm_preact_resnet (RobustBench's DeepMind layouts; their
``--activation`` swish (default) or relu) and the other names of ``jadv.models.TORCH_ARCHS``; see
``jadv.models.from_torch`` for the key layouts, the normalisation buffers it recognises and the
keys it ignores.

The workdir gets the layout of a training run, so ``experiments/evaluate.py``, every study's
``--import_workdir``/``--pair_workdir`` and ``jadv.train.load_trained`` read it like one:

- ``config.json``: a jadv training config with the model (registry name, kwargs, input
  mean/std, ``num_classes``, ``input_shape``), the dataset it is evaluated on, objective
  ``standard`` (jadv does not know how it was trained) and an ``imported`` section (source
  file, its SHA-256, arch, ignored and normalisation keys);
- ``checkpoints/0``: an orbax checkpoint of a TrainState at step 0 holding the converted
  parameters and batch-norm statistics (via ``jadv.train.Checkpointer``);
- ``import.json``: the same provenance as ``config.imported``, and the logits of a fixed probe
  input (``uniform [0, 1)``, seed 0, 2 images) for a later check against the PyTorch model.

Then, e.g.::

    python experiments/evaluate.py --workdir runs/carmon2019 --suite autoattack --eps 0.031373 --n_test 1000
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil

import jax
import numpy as np

from jadv import models as jmodels
from jadv.models import robustbench as rbzoo
from jadv.train import Checkpointer, base_config, build_model
from jadv.train.loop import create_state

# (H, W, C) and number of classes of the datasets an imported model can be evaluated on;
# "imagenet" is recorded only (jadv has no ImageNet loader): for analyses that need no data.
DATASET_SHAPES = {"mnist": ((28, 28, 1), 10), "fashion_mnist": ((28, 28, 1), 10), "cifar10": ((32, 32, 3), 10),
                  "cifar100": ((32, 32, 3), 100), "digits": ((8, 8, 1), 10), "colored_digits": ((32, 32, 3), 10),
                  "imagenet": ((224, 224, 3), 1000)}
PROBE_SEED, PROBE_BATCH = 0, 2


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def probe_input(input_shape) -> np.ndarray:
    """The fixed probe batch whose logits ``import.json`` records: float32 [2, H, W, C] in [0, 1)."""
    return np.random.default_rng(PROBE_SEED).random((PROBE_BATCH, *input_shape), dtype=np.float32)


def import_checkpoint(checkpoint: str, arch: str | None, workdir: str, *, dataset: str = "cifar10", mean=None,
                      std=None, input_shape=None, num_classes: int | None = None, overwrite: bool = False,
                      activation: str | None = None, robustbench: str | None = None,
                      threat_model: str = "Linf") -> dict:
    """Convert ``checkpoint`` and write a jadv workdir (see the module docstring).

    Args:
      checkpoint: path of a torch.save file or a .safetensors file.
      arch: a name of ``jadv.models.TORCH_ARCHS`` (None with ``robustbench``).
      workdir: output folder (must not hold a config.json unless ``overwrite``).
      dataset: the jadv dataset the model is evaluated on (sets the default input shape and the
        expected number of classes); "imagenet" is recorded only.
      mean, std: input normalisation of the original model in [0, 1] pixel units (default: from
        buffers in the checkpoint, else none).
      input_shape: (H, W, C) of the inputs (default: the dataset's).
      num_classes: checked against the checkpoint (default: the dataset's).
      activation: the DeepMind archs' activation, "swish" (default) or "relu" (see
        ``jadv.models.from_torch``); None for every other arch.
      robustbench: a RobustBench model name of the ``dataset`` / ``threat_model`` track
        (:mod:`jadv.models.robustbench`); then ``arch``, ``mean``, ``std`` and ``activation``
        come from the zoo table and must be None.
      threat_model: the RobustBench track, "Linf" or "L2" (with ``robustbench`` only).

    Returns:
      the ``import.json`` record (provenance, model name/kwargs, probe logits).
    """
    if dataset not in DATASET_SHAPES:
        raise ValueError(f"unknown dataset {dataset!r}; allowed: {', '.join(DATASET_SHAPES)}")
    shape, classes = DATASET_SHAPES[dataset]
    input_shape = tuple(int(s) for s in (input_shape or shape))
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {input_shape}")
    num_classes = classes if num_classes is None else int(num_classes)
    if os.path.exists(os.path.join(workdir, "config.json")) and not overwrite:
        raise FileExistsError(f"{workdir} already holds a config.json; choose a new workdir or pass --overwrite")

    zoo = None
    if robustbench is not None:
        given = [n for n, v in (("arch", arch), ("mean", mean), ("std", std), ("activation", activation)) if v is not None]
        if given:
            raise ValueError(f"--robustbench takes the architecture and normalisation from the model-zoo table; "
                             f"drop {', '.join('--' + g for g in given)}")
        zoo = rbzoo.entry(robustbench, dataset, threat_model)     # unknown/unsupported names fail before loading
        arch = zoo.arch
    elif arch is None:
        raise ValueError("give --arch (a jadv.models.TORCH_ARCHS name) or --robustbench NAME")
    state_dict = jmodels.load_torch_state_dict(checkpoint)
    if zoo is not None:
        imported = rbzoo.load(robustbench, state_dict, dataset=dataset, threat_model=threat_model)
    else:
        imported = jmodels.from_torch(state_dict, arch, mean=mean, std=std, activation=activation)
    kwargs = dict(imported.kwargs)
    if kwargs["num_classes"] != num_classes:
        raise ValueError(f"the checkpoint has {kwargs['num_classes']} outputs but {dataset} has {num_classes} "
                         "classes; pass --dataset or --num_classes to match")
    channels = int(imported.variables["params"]["conv1"]["kernel"].shape[2])
    if channels != input_shape[-1]:
        raise ValueError(f"the model takes {channels} input channels but input_shape is {input_shape}")

    config = base_config()
    with config.unlocked():
        config.dataset = dataset
        config.model.name = imported.name
        config.model.kwargs = {k: v for k, v in kwargs.items() if k not in ("num_classes", "mean", "std")}
        # no normalisation: jadv's identity default (mean 0, std 1 broadcast over channels)
        config.model.mean = list(kwargs.get("mean", (0.0,)))
        config.model.std = list(kwargs.get("std", (1.0,)))
        config.num_classes = int(num_classes)
        config.input_shape = list(input_shape)
        record = {"checkpoint": os.path.abspath(checkpoint), "sha256": _sha256(checkpoint), "arch": arch,
                  "ignored_keys": list(imported.ignored_keys),
                  "normalization_keys": list(imported.normalization_keys)}
        if zoo is not None:
            record["robustbench"] = {"name": zoo.name, "dataset": zoo.dataset, "threat_model": zoo.threat_model,
                                     "source": zoo.source, "table_commit": rbzoo.ROBUSTBENCH_COMMIT}
        config.imported = record

    model = build_model(config)
    if model != imported.model:                                  # config.json must rebuild this model
        raise AssertionError(f"config rebuilds {model}, expected {imported.model}")
    state, _ = create_state(config, model, input_shape, 1, jax.random.key(0))
    params, batch_stats = imported.variables["params"], imported.variables["batch_stats"]
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(state.params):
        raise AssertionError("converted parameters do not have the model's structure")
    state = state.replace(params=params, batch_stats=batch_stats, opt_state=state.tx.init(params))

    os.makedirs(workdir, exist_ok=True)
    if overwrite:                          # a previous model's checkpoints and structure record
        for old in ("checkpoints", "checkpoints_best"):
            shutil.rmtree(os.path.join(workdir, old), ignore_errors=True)
        if os.path.exists(os.path.join(workdir, "checkpoint_meta.json")):
            os.remove(os.path.join(workdir, "checkpoint_meta.json"))
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=1))
    ckpt = Checkpointer(workdir)
    ckpt.save(0, state)
    ckpt.close()

    x = probe_input(input_shape)
    logits = np.asarray(jax.jit(model.apply)(imported.variables, x))
    out = {**record, "model": imported.name, "model_kwargs": kwargs, "input_shape": list(input_shape),
           "dataset": dataset, "num_params": jmodels.count_params(params),
           "probe": {"seed": PROBE_SEED, "batch": PROBE_BATCH, "logits": logits.tolist()}}
    with open(os.path.join(workdir, "import.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def _shape(text: str):
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input_shape is H,W,C (e.g. 32,32,3), got {text!r}") from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="torch.save file or .safetensors")
    p.add_argument("--arch", default=None, choices=jmodels.TORCH_ARCHS, help="required unless --robustbench")
    p.add_argument("--robustbench", default=None, metavar="NAME",
                   help="a RobustBench model name (jadv.models.robustbench): arch, options and mean/std from the zoo")
    p.add_argument("--threat_model", default="Linf", choices=rbzoo.THREAT_MODELS, help="RobustBench track (with --robustbench)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--dataset", default="cifar10", choices=tuple(DATASET_SHAPES))
    p.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel input mean in [0, 1] units")
    p.add_argument("--std", type=float, nargs="+", default=None, help="per-channel input std in [0, 1] units")
    p.add_argument("--input_shape", type=_shape, default=None, help="H,W,C (default: the dataset's)")
    p.add_argument("--num_classes", type=int, default=None, help="default: the dataset's")
    p.add_argument("--activation", default=None, choices=("swish", "silu", "relu"),
                   help="dm_wide_resnet / dm_preact_resnet only (default swish)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing workdir's config and checkpoint")
    a = p.parse_args(argv)
    if (a.arch is None) == (a.robustbench is None):
        p.error("give exactly one of --arch and --robustbench")
    if a.robustbench is not None:
        try:
            rbzoo.entry(a.robustbench, a.dataset, a.threat_model)
        except ValueError as err:
            p.error(str(err))
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    out = import_checkpoint(a.checkpoint, a.arch, a.workdir, dataset=a.dataset, mean=a.mean, std=a.std,
                            input_shape=a.input_shape, num_classes=a.num_classes, overwrite=a.overwrite,
                            activation=a.activation, robustbench=a.robustbench, threat_model=a.threat_model)
    what = f" (RobustBench {a.dataset} {a.threat_model} {a.robustbench})" if a.robustbench else ""
    print(f"imported {a.checkpoint}{what} as {out['model']} {out['model_kwargs']} ({out['num_params']:,} parameters)")
    if out["ignored_keys"]:
        print(f"ignored {len(out['ignored_keys'])} keys (BN counters, unused sub-blocks, attacker copies)")
    print(f"wrote {a.workdir}/config.json, checkpoints/ and import.json")
    return out


if __name__ == "__main__":
    main()
