"""Train a model from a config file.

    python experiments/train.py --config configs/mnist_standard.py:medium --workdir runs/mnist \\
        [--config.num_epochs=2 --config.data_dir=../shared/data] [--allow_config_change]

Rerunning on the same workdir resumes from its last checkpoint, with the same config: a rerun
whose resolved config differs from the workdir's config.json (e.g. another lr or more epochs) is
refused with a ValueError listing the changed keys, unless ``--allow_config_change`` is given
(then the old config is kept as ``config.<step>.json`` and the change recorded in
``metrics.jsonl``). A second run on a workdir that a live run holds is a RuntimeError
(``train.lock`` names its pid and host). A bad config (unknown key, ``num_epochs=0``,
``batch_size=0``, ...) is a ValueError naming the field, before anything is written.

Several processes (hosts, or processes on one machine) train one model together with JAX's
multi-controller runtime: start the same command in every process with its rank (README, "Several
hosts")::

    python experiments/train.py --config ... --workdir runs/x \
        --num_processes 2 --process_id 0 --coordinator 10.0.0.1:8476   # on host 0
    python experiments/train.py --config ... --workdir runs/x \
        --num_processes 2 --process_id 1 --coordinator 10.0.0.1:8476   # on host 1

Each process feeds its share of every batch; process 0 writes the workdir (a shared folder).
``--local_devices 2`` gives a CPU process two devices (local tests: 2 processes x 2 devices).
``--distributed`` without a coordinator lets JAX find the cluster (TPU pod, SLURM, Open MPI).
"""
from absl import app, flags, logging
from ml_collections import config_flags

from jadv.train import sharding, train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file, as path.py:variant",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for config, metrics, checkpoints")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "continue a workdir whose config.json differs from this config (the change is recorded in "
    "metrics.jsonl and the old config kept as config.<step>.json)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes of a multi-process run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "rank of this process, 0 .. num_processes - 1")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0's coordination service")
_LOCAL_DEVICES = flags.DEFINE_integer("local_devices", None, "CPU devices of this process (CPU runs only)")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "join a multi-process run whose cluster JAX detects (TPU, SLURM, MPI)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if _COORDINATOR.value or _NUM_PROCESSES.value or _DISTRIBUTED.value:
        sharding.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                            local_devices=_LOCAL_DEVICES.value)
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                 allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    if sharding.is_primary():
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()})


if __name__ == "__main__":
    app.run(main)
