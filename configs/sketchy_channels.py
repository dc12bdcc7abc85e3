"""Config of study 1, sketchy channels (:mod:`jadv.studies.sketchy_channels`), by profile.

    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:small
    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:medium \\
        --config.datasets=colored_digits --config.data.colored_digits.train.num_epochs=30 \\
        --config.data.colored_digits.eps.linf=0.0156863

Profiles: ``smoke`` (seconds, the tests), ``small`` (colored digits, no download, minutes on a
2-core CPU), ``medium`` (colored digits and a CIFAR-10 subset from the data dir), ``paper``
(colored digits and all of CIFAR-10, a wider CNN, PGD-10 in training).

Models: ``small_cnn`` with conv1 = 64 filters 3x3 and batch norm after every conv, trained with
the same seed and schedule as vanilla, Linf PGD-AT and L2 PGD-AT. The training config of model
``m`` on dataset ``d`` is ``train``, updated with ``data.<d>.train`` and ``models.<m>`` (plus the
attack radius ``data.<d>.eps.<norm>`` and step ``2.5 eps / steps``):
:func:`jadv.studies.sketchy_channels.training_config` builds it; every such config is a
``jadv.train.config.base_config()``.

Fields:

- ``seed``, ``data_dir``: shared by every model (``train.seed`` and ``train.data_dir`` refer to
  them) and by the analysis (PGD keys).
- ``all_datasets``: the datasets the study knows; ``datasets``: those this profile runs (the others
  get "not run at this profile" claims).
- ``train``: the shared training recipe. ``models.<m>``: per-model overrides (the objective);
  ``model_order``: the models' order in tables and figures.
- ``data.<d>.train``: per-dataset overrides (sizes, epochs, augmentation); ``data.<d>.eps``: the
  Linf and L2 training radii, also the radii of the PGD evaluation.
- ``threshold``: a (filter, channel pair) distance below it counts as near-equal (the poster's
  first histogram bin [0, 0.02)); ``bin_width``: histogram bin width.
- ``eval_batch_size``; ``robust_examples``: test images attacked with PGD; ``eval_steps``: PGD
  steps of that evaluation (step 2.5 eps / steps).

Radii: CIFAR-10 uses the usual Linf 8/255 and L2 0.5. On colored digits larger radii left the
Linf-AT model near chance (RESULTS.md), so ``small`` uses Linf 4/255 and L2 0.25 for 15 epochs and
``medium``/``paper`` Linf 4/255 and L2 0.5 for 30 epochs, the AT radius ramped up over the first 4
epochs (``eps_warmup_epochs``; without it AT on the tiny colour-digit set sat at chance for the
first epochs). A model within 2x chance cannot decide the accuracy-kept claims
(:func:`jadv.studies.sketchy_channels.near_chance`).

The input normalisation is the same for the three channels (``train.model.mean/std``), so equal
kernel slices mean equal weights on the raw R, G and B pixels, i.e. a luminance filter.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from jadv.train.config import PROFILES, base_config, check_profile  # noqa: F401  (PROFILES: the names)


def _data(train_size, test_size, num_epochs, linf, l2, augment=False):
    """Per-dataset overrides of the training recipe, and the two training radii."""
    size = lambda n: placeholder(int) if n is None else n  # noqa: E731  (None: all; typed for --config.x)
    return ml_collections.ConfigDict({
        "train": {"train_size": size(train_size), "test_size": size(test_size), "num_epochs": num_epochs,
                  "augment": {"crop_flip": augment}},
        "eps": {"linf": linf, "l2": l2}})


def _adversarial(norm, steps, warmup):
    """PGD-AT at ``norm``; eps and step size come from the dataset (see the module docstring)."""
    return {"objective": {"name": "pgd_at", "norm": norm, "steps": steps,
                          "init": "uniform" if norm == "linf" else "ball", "eps_warmup_epochs": warmup}}


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small")
    smoke, paper = profile == "smoke", profile == "paper"
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.seed = 0
    c.data_dir = placeholder(str)
    c.all_datasets = ("colored_digits", "cifar10")
    c.datasets = ("colored_digits",) if profile in ("smoke", "small") else ("colored_digits", "cifar10")

    # the shared training recipe
    t = base_config()
    t.seed = c.get_ref("seed")
    t.data_dir = c.get_ref("data_dir")
    t.model.name = "small_cnn"
    # the layer under study is conv1 (64 filters, 3x3, followed by BN)
    t.model.kwargs = {"conv1_filters": 64, "widths": (8,) if smoke else ((64, 128) if paper else (16,)),
                      "hidden": 16 if smoke else (256 if paper else 32), "norm": "batch"}
    # one normalisation for all three channels (see the module docstring)
    t.model.mean, t.model.std = (0.5,) * 3, (0.25,) * 3
    t.batch_size = 32 if smoke else (128 if paper else 64)
    if smoke:
        t.num_steps = 3
    t.optimizer.update(lr=0.1, weight_decay=5e-4)
    t.robust_eval.enabled = False        # robust accuracy is measured by the study, on a test subset
    t.log_every_steps = 50
    t.checkpoint.every_steps = 10_000
    # training devices: 1 at smoke (the tests fake 8 CPU devices; sharding tiny batches over them
    # only adds compile time), all available otherwise
    if smoke:
        t.num_devices = 1
    c.train = t

    attack_steps = {"smoke": 1, "small": 3, "medium": 5, "paper": 10}[profile]
    warmup = 0.0 if smoke else 4.0
    c.models = {"vanilla": {"objective": {"name": "standard"}},
                "linf_at": _adversarial("linf", attack_steps, warmup),
                "l2_at": _adversarial("l2", attack_steps, warmup)}
    c.model_order = ("vanilla", "linf_at", "l2_at")   # ConfigDict sorts keys; this is the plot order
    c.data = {
        "smoke": {"colored_digits": _data(128, 64, 1, 8 / 255, 0.5)},
        "small": {"colored_digits": _data(None, None, 15, 4 / 255, 0.25)},
        "medium": {"colored_digits": _data(None, None, 30, 4 / 255, 0.5),
                   "cifar10": _data(10000, 2000, 6, 8 / 255, 0.5, augment=True)},
        "paper": {"colored_digits": _data(None, None, 30, 4 / 255, 0.5),
                  "cifar10": _data(None, None, 60, 8 / 255, 0.5, augment=True)},
    }[profile]

    # analysis
    c.threshold = 0.02          # the poster's first histogram bin [0, 0.02)
    c.bin_width = 0.02
    c.eval_batch_size = 32 if smoke else 256
    c.robust_examples = 32 if smoke else (1000 if paper else 256)
    c.eval_steps = {"smoke": 2, "small": 20, "medium": 20, "paper": 50}[profile]
    return c
