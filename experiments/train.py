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
"""
from absl import app, flags, logging
from ml_collections import config_flags

from jadv.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file, as path.py:variant",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for config, metrics, checkpoints")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "continue a workdir whose config.json differs from this config (the change is recorded in "
    "metrics.jsonl and the old config kept as config.<step>.json)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                 allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()})


if __name__ == "__main__":
    app.run(main)
