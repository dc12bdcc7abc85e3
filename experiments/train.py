"""Train a model from a config file.

    python experiments/train.py --config configs/mnist_standard.py:cpu --workdir runs/mnist \\
        [--config.num_epochs=2 --config.data_dir=../shared/data]

Rerunning on the same workdir resumes from its last checkpoint.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from jadv.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file, as path.py:variant",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for config, metrics, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()})


if __name__ == "__main__":
    app.run(main)
