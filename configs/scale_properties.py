"""Config of study 3, scale properties (:mod:`jadv.studies.scale_properties`), by profile.

    python experiments/scale_properties.py --config configs/scale_properties.py:small \\
        [--config.eps=0.1] [--config.train.num_epochs=3] [--config.data_dir=DIR] [--workdir DIR]

Fields:

- ``seed``, ``data_dir``, ``eps``: shared by every model and by the evaluation (``train.seed``,
  ``train.data_dir`` and ``train.objective.eps`` are references to them).
- ``train``: the ``jadv.train`` config (:func:`jadv.train.config.base_config`) every model starts
  from: data, a CIFAR ResNet (depth 6n+2) with shared BN, the optimiser and schedule, and the Linf
  PGD of the adversarial parts (``objective.steps``; step 2.5 eps / steps, the objective's
  default; uniform start).
- ``models``: per-model overrides merged into ``train`` (objective, clean share ``ratio``, norm
  layer, depth); ``model_order``: the models trained at this profile, in order;
  ``depth_models``: the depth sweep (pure PGD-AT, shared BN).
- ``eval``: PGD-``pgd_steps`` on the first ``pgd_examples`` test images, AutoAttack-standard on the
  first ``autoattack_examples`` for the evaluations named in ``autoattack_models``.
- ``near_zero``: the "near-zero robustness" threshold of claim 3.3 (PGD accuracy below it).

Profiles (every model uses the same seed, data order and schedule):

- smoke: ResNet-8 on 128 digits, 3 steps, three models (100%/0% clean, MBN); the claims whose
  models are absent get verdict "not run at this profile".
- small: scikit-learn's embedded 8x8 digits (no download; 10 classes, so AutoAttack-standard
  applies), ResNet-8 for the ratio/MBN/GN/AdvProp models and ResNet-8/14 for the depth sweep
  (ALP and ResNet-20 only at medium/paper, to fit the CPU budget); 6 epochs; Linf eps 0.2, ramped
  over the first 2 epochs, PGD-3 in training, PGD-50 on the whole test set (359) and
  AutoAttack-standard on 64 test images for the 0%-clean and MBN-adv models.
- medium: CIFAR-10 subset (4k train, 1k test), 8/255, PGD-3 training, PGD-50 / AutoAttack on 500 /
  200 test images.
- paper: CIFAR-10, ResNet-20 base and depth sweep 20/56/110, PGD-10 training, PGD-2000 (as the
  paper's final evaluation) on 1000 test images and AutoAttack on 1000.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from jadv.train.config import base_config, check_profile

PROFILES = ("smoke", "small", "medium", "paper")


def _override(objective, *, ratio=None, norm=None, depth=None, alp_weight=None):
    """The fields of one model that differ from ``c.train``."""
    o = {"objective": {"name": objective}}
    if ratio is not None:
        o["objective"]["ratio"] = float(ratio)
    if alp_weight is not None:
        o["objective"]["alp_weight"] = float(alp_weight)
    kwargs = {k: v for k, v in (("norm", norm), ("depth", depth)) if v is not None}
    if kwargs:
        o["model"] = {"kwargs": kwargs}
    return o


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small", allowed=PROFILES)
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.seed = 0
    c.data_dir = placeholder(str)
    digits = profile in ("smoke", "small")
    c.eps = 0.2 if digits else 8 / 255

    # -- the training recipe every model shares --------------------------------------------------
    t = base_config()
    t.seed = c.get_ref("seed")
    t.data_dir = c.get_ref("data_dir")
    t.dataset = "digits" if digits else "cifar10"
    if profile == "smoke":
        t.train_size, t.test_size, t.num_steps = 128, 64, 3
    elif profile == "medium":
        t.train_size, t.test_size = 4000, 1000
    base = 20 if profile == "paper" else 8
    t.model.name = "cifar_resnet"
    t.model.kwargs = {"depth": base, "norm": "batch"}
    t.batch_size = {"smoke": 32, "small": 64, "medium": 128, "paper": 128}[profile]
    t.num_epochs = {"smoke": 1, "small": 6, "medium": 5, "paper": 100}[profile]
    t.optimizer.lr = 0.1
    t.optimizer.weight_decay = 5e-4
    t.augment.crop_flip = not digits
    t.objective.eps = c.get_ref("eps")
    t.objective.norm = "linf"
    t.objective.steps = {"smoke": 1, "small": 3, "medium": 3, "paper": 10}[profile]
    t.objective.eps_warmup_epochs = {"smoke": 0.0, "small": 2.0, "medium": 1.0, "paper": 5.0}[profile]
    t.robust_eval.enabled = False            # measured by the study with many-step PGD
    t.log_every_steps = 50
    t.checkpoint.every_steps = 10_000
    # 1 device at smoke (the tests fake 8 CPU devices; sharding tiny batches over them only adds
    # compile time), all available otherwise
    t.num_devices = 1 if profile == "smoke" else None
    c.train = t

    # -- the models ------------------------------------------------------------------------------
    deep = {"smoke": (), "small": (14,), "medium": (14, 20), "paper": (56, 110)}[profile]
    models = {
        "r100": _override("ratio", ratio=1.0),      # = standard training
        "r50": _override("ratio", ratio=0.5),
        "r0": _override("ratio", ratio=0.0),        # = PGD-AT
        "mbn50": _override("mbn", ratio=0.5, norm="dual_batch"),
        "gn50": _override("ratio", ratio=0.5, norm="group"),
        "gn0": _override("ratio", ratio=0.0, norm="group"),
        "alp": _override("alp", alp_weight=0.5),
        "advprop": _override("advprop", norm="dual_batch"),
        **{f"d{d}": _override("ratio", ratio=0.0, depth=d) for d in deep},
    }
    order = ("r100", "r50", "r0", "mbn50", "gn50", "gn0", "alp", "advprop") + tuple(f"d{d}" for d in deep)
    if profile == "smoke":
        order = ("r100", "r0", "mbn50")
    elif profile == "small":          # ALP (no claim) left out to fit the CPU budget
        order = tuple(k for k in order if k != "alp")
    c.model_order = order
    c.models = {k: models[k] for k in order}
    c.depth_models = ("r0",) + tuple(f"d{d}" for d in deep)

    # -- evaluation ------------------------------------------------------------------------------
    c.eval = ml_collections.ConfigDict()
    c.eval.pgd_steps = {"smoke": 2, "small": 50, "medium": 50, "paper": 2000}[profile]
    c.eval.pgd_examples = {"smoke": 32, "small": 359, "medium": 500, "paper": 1000}[profile]
    c.eval.autoattack_models = {"smoke": (), "small": ("r0", "mbn50/adv")}.get(profile, ("r50", "r0", "mbn50/adv"))
    c.eval.autoattack_examples = {"smoke": 0, "small": 64, "medium": 200, "paper": 1000}[profile]
    c.eval.batch_size = 32 if profile == "smoke" else 256
    c.eval.progress = profile != "smoke"     # a line per evaluated batch on stderr
    c.near_zero = 0.1
    return c
