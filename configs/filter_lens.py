"""Config of study 4 (experiments/filter_lens.py), by profile: smoke, default, cpu, full.

One standard / PGD-AT pair with the same seed, data order and schedule:
- smoke: ResNet-8 on digits, 3 steps (tests only).
- default: ResNet-20 (19 3x3 convs + 2 1x1 shortcuts, so every depth decile is populated) on
  scikit-learn's embedded 8x8 digits (no download). digits instead of colored_digits because a
  ResNet-20 on 8x8x1 inputs trains in seconds on a 2-core CPU (32x32x3 is 16x the compute);
  its first conv has 1 input channel, so the first-layer group has 16 filters. Linf eps 0.1 on
  [0, 1] pixels (the 17 grey levels of digits are 1/16 apart), PGD-5 in training.
- cpu: ResNet-20 on a 5k CIFAR-10 subset, Linf 8/255, PGD-3 (32 min measured on the 2-core CPU, test suite beside it).
- full: ResNet-18 (CIFAR stem) on CIFAR-10, Linf 8/255, PGD-10, 100 epochs (check 20).
"""
import ml_collections

PROFILES = ("smoke", "default", "cpu", "full")


def get_config(profile: str = "default"):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.seed = 0
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.dataset = {"smoke": "digits", "default": "digits", "cpu": "cifar10", "full": "cifar10"}[profile]
    c.model = {"smoke": "cifar_resnet", "default": "resnet20", "cpu": "resnet20", "full": "resnet18"}[profile]
    c.model_kwargs = {"smoke": {"depth": 8}, "default": {}, "cpu": {}, "full": {"stem": "cifar"}}[profile]
    c.train_size = ml_collections.config_dict.placeholder(int)
    c.test_size = ml_collections.config_dict.placeholder(int)
    c.num_steps = ml_collections.config_dict.placeholder(int)
    if profile == "smoke":
        c.train_size, c.test_size, c.num_steps = 128, 64, 3
    elif profile == "cpu":
        c.train_size, c.test_size = 5000, 1000
    c.batch_size = {"smoke": 32, "default": 64, "cpu": 128, "full": 128}[profile]
    c.num_epochs = {"smoke": 1, "default": 15, "cpu": 6, "full": 100}[profile]
    c.lr = 0.1
    c.weight_decay = 5e-4
    c.augment = profile in ("cpu", "full")
    c.eps = 0.1 if c.dataset == "digits" else 8 / 255
    c.attack_steps = {"smoke": 1, "default": 5, "cpu": 3, "full": 10}[profile]
    c.eval_steps = {"smoke": 2, "default": 20, "cpu": 20, "full": 50}[profile]
    c.robust_examples = {"smoke": 0, "default": 359, "cpu": 500, "full": 2000}[profile]
    c.eval_batch_size = 32 if profile == "smoke" else 256
    c.bins = 70                     # histogram bins of the distribution shift (the paper's 70)
    c.import_workdirs = ()          # "standard:DIR" / "robust:DIR" extra models (CLI --import_workdir)
    c.pair_workdirs = ()            # ("standard:DIR", "robust:DIR"): load the pair instead of training it
                                    # (CLI --pair_workdir; e.g. workdirs of experiments/import_model.py)
    c.log_every_steps = 50
    # training devices: 1 at smoke (the tests fake 8 CPU devices; sharding tiny batches over them only
    # adds compile time), all available otherwise
    c.num_devices = ml_collections.config_dict.placeholder(int)
    if profile == "smoke":
        c.num_devices = 1
    return c
