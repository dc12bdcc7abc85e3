"""Config of study 3 (experiments/scale_properties.py), by profile: smoke, default, cpu, full.

All models are CIFAR ResNets (depth 6n+2) trained with the same seed, data order and schedule;
every adversarial part uses Linf PGD with step 2.5 eps / steps and a uniform start.

- smoke: ResNet-8 on 128 digits, 3 steps, three models (100%/0% clean, MBN); the claims whose
  models are absent get verdict "not run at this profile".
- default: scikit-learn's embedded 8x8 digits (no download; 10 classes, so AutoAttack-standard
  applies), ResNet-8 for the ratio/MBN/GN/AdvProp models and ResNet-8/14 for the depth sweep
  (ALP and ResNet-20 only at cpu/full, to fit the CPU budget); 6 epochs; Linf eps 0.2 (at 0.1 a
  standard ResNet-20 on digits still keeps ~57% PGD-20 accuracy, so the ratio effects would be
  squeezed), ramped over the first 2 epochs, PGD-3 in training, PGD-50 on the whole test set
  (359) and AutoAttack-standard on 64 test images for the 0%-clean and MBN-adv models.
- cpu: CIFAR-10 subset (4k train, 1k test), 8/255, PGD-3 training, PGD-50 / AutoAttack on 500 /
  200 test images.
- full: CIFAR-10, ResNet-20 base and depth sweep 20/56/110, PGD-10 training, PGD-2000 (as the
  paper's final evaluation) on 1000 test images and AutoAttack on 1000.
"""
import ml_collections

PROFILES = ("smoke", "default", "cpu", "full")


def _m(objective, norm="batch", ratio=None, depth=8):
    return {"objective": objective, "norm": norm, "ratio": ratio, "depth": depth}


def get_config(profile: str = "default"):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.seed = 0
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.dataset = "digits" if profile in ("smoke", "default") else "cifar10"
    base = 20 if profile == "full" else 8
    deep = {"smoke": (), "default": (14,), "cpu": (14, 20), "full": (56, 110)}[profile]
    models = {
        "r100": _m("ratio", ratio=1.0, depth=base),      # = standard training
        "r50": _m("ratio", ratio=0.5, depth=base),
        "r0": _m("ratio", ratio=0.0, depth=base),        # = PGD-AT
        "mbn50": _m("mbn", norm="dual_batch", ratio=0.5, depth=base),
        "gn50": _m("ratio", norm="group", ratio=0.5, depth=base),
        "gn0": _m("ratio", norm="group", ratio=0.0, depth=base),
        "alp": _m("alp", depth=base),
        "advprop": _m("advprop", norm="dual_batch", depth=base),
        **{f"d{d}": _m("ratio", ratio=0.0, depth=d) for d in deep},
    }
    order = ("r100", "r50", "r0", "mbn50", "gn50", "gn0", "alp", "advprop") + tuple(f"d{d}" for d in deep)
    if profile == "smoke":
        order = ("r100", "r0", "mbn50")
    elif profile == "default":        # ALP (no claim) left out to fit the CPU budget
        order = tuple(k for k in order if k != "alp")
    c.model_order = order
    c.models = {k: models[k] for k in order}
    c.depth_models = ("r0",) + tuple(f"d{d}" for d in deep)   # the depth sweep (pure PGD-AT, shared BN)
    c.train_size = ml_collections.config_dict.placeholder(int)
    c.test_size = ml_collections.config_dict.placeholder(int)
    c.num_steps = ml_collections.config_dict.placeholder(int)
    if profile == "smoke":
        c.train_size, c.test_size, c.num_steps = 128, 64, 3
    elif profile == "cpu":
        c.train_size, c.test_size = 4000, 1000
    c.batch_size = {"smoke": 32, "default": 64, "cpu": 128, "full": 128}[profile]
    c.num_epochs = {"smoke": 1, "default": 6, "cpu": 5, "full": 100}[profile]
    c.lr = 0.1
    c.weight_decay = 5e-4
    c.augment = profile in ("cpu", "full")
    c.eps = 0.2 if c.dataset == "digits" else 8 / 255
    c.eps_warmup_epochs = {"smoke": 0.0, "default": 2.0, "cpu": 1.0, "full": 5.0}[profile]
    c.attack_steps = {"smoke": 1, "default": 3, "cpu": 3, "full": 10}[profile]
    c.alp_weight = 0.5
    # evaluation
    c.eval_steps = {"smoke": 2, "default": 50, "cpu": 50, "full": 2000}[profile]
    c.pgd_examples = {"smoke": 32, "default": 359, "cpu": 500, "full": 1000}[profile]
    c.autoattack_models = {"smoke": (), "default": ("r0", "mbn50/adv")}.get(profile, ("r50", "r0", "mbn50/adv"))
    c.autoattack_examples = {"smoke": 0, "default": 64, "cpu": 200, "full": 1000}[profile]
    c.eval_batch_size = 32 if profile == "smoke" else 256
    c.near_zero = 0.1               # "near-zero robustness" of MBN-clean: PGD accuracy below this
    c.log_every_steps = 50
    # training devices: 1 at smoke (the tests fake 8 CPU devices; sharding tiny batches over them only
    # adds compile time), all available otherwise
    c.num_devices = ml_collections.config_dict.placeholder(int)
    if profile == "smoke":
        c.num_devices = 1
    return c
