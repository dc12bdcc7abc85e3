"""Config of study 5 (experiments/sharpness.py), by profile: smoke, default, cpu, full."""
import ml_collections

PROFILES = ("smoke", "default", "cpu", "full")


def get_config(profile: str = "default"):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.datasets = {"smoke": ("toy",), "default": ("toy", "digits"), "cpu": ("toy", "digits", "mnist"),
                  "full": ("toy", "digits", "mnist")}[profile]
    c.toy_n = 400 if profile == "smoke" else 4000
    c.n_max = None
    # The toy is not separable (unregularised minimiser exists); digits/MNIST 5-vs-7 are (nearly)
    # separable, so their standard minimiser diverges without weight decay.
    c.l2_reg = {"toy": 0.0, "digits": 1e-3, "mnist": 1e-3}
    c.iters = 30 if profile == "smoke" else 300
    c.eps_grid = {
        "toy": {"l2": (0.0, 0.2, 0.4, 0.6, 0.8), "linf": (0.0, 0.05, 0.1, 0.15)},
        "digits": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
        "mnist": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
    }
    c.network = network_config(profile)
    return c


def network_config(profile: str):
    """Part 2 (networks): PGD-AT over an eps grid, Hessian of the adversarial training loss,
    1-D filter-normalised landscapes, AWP vs PGD-AT. ``train`` is a jadv.train base config that the
    study copies per eps (objective filled in by the study)."""
    from jadv.train.config import base_config

    smoke = profile == "smoke"
    big = profile in ("cpu", "full")
    n = ml_collections.ConfigDict()
    t = base_config()
    t.seed = 0
    if not big:          # embedded 8x8 digits, small CNN with batch norm
        t.dataset = "digits"
        t.model.name = "small_cnn"
        t.model.kwargs = {"conv1_filters": 16, "widths": (32,), "hidden": 64, "norm": "batch"}
        t.batch_size = 64
        t.num_epochs = 25
        t.optimizer.update(lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
    elif profile == "cpu":   # CIFAR-10 subset, small CNN with batch norm
        t.dataset = "cifar10"
        t.train_size, t.test_size = 5000, 1000
        t.model.name = "small_cnn"
        t.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128, "norm": "batch"}
        t.batch_size = 128
        t.num_epochs = 8
        t.optimizer.update(lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
    else:                    # the papers' scale: PreActResNet-18 on CIFAR-10, 200 epochs (Rice et al.)
        t.dataset = "cifar10"
        t.augment.crop_flip = True
        t.model.name, t.model.kwargs = "preact_resnet18", {}
        t.batch_size, t.num_epochs = 128, 200
        t.optimizer.update(lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="piecewise", decay_at=(0.5, 0.75))
    if smoke:
        t.num_steps, t.batch_size = 3, 32
    t.log_every_steps = 50
    t.eval_every_epochs = 5 if not big else 10
    t.robust_eval.enabled = False          # the study measures robust accuracy itself
    n.train = t
    n.norm = "l2"
    # check 5's grid (L2, CIFAR-10 scale); the 8x8 digits use the same radii
    n.eps_grid = (0.0, 0.5) if smoke else (0.0, 0.25, 0.5, 1.0)
    n.attack_steps = {"smoke": 1, "default": 5, "cpu": 5, "full": 10}[profile]   # training PGD, step 2.5 eps/steps
    n.eval_attack_steps = 2 if smoke else 10                   # robust accuracies (train and test)
    n.awp_eps = 0.5                                            # AWP vs PGD-AT at this radius
    n.awp_gamma = 0.01                                         # Wu et al. around PGD-AT
    # Hessian of the adversarial training loss: fixed x_adv (PGD at the trained weights), BN eval,
    # a fixed training subset (indices drawn with hessian_seed and recorded)
    n.hessian_n = 32 if smoke else (512 if not big else 2000)
    n.hessian_seed = 0
    n.lanczos_iters = 6 if smoke else (40 if not big else 100)
    n.trace_samples = 2 if smoke else (20 if not big else 100)
    n.density_order = 6 if smoke else (40 if not big else 90)
    # 1-D landscapes: filter-normalised directions (biases/BN ignored), robust = re-attack per alpha
    n.landscape_n = 32 if smoke else (256 if not big else 1000)
    n.landscape_points = 5 if smoke else 21
    n.landscape_span = 1.0
    n.landscape_directions = 1 if smoke else 2
    n.curvature_span = 0.25          # quadratic fit of the curve on |alpha| <= this -> curvature
    n.gap_n = 64 if smoke else (512 if not big else 2000)      # train/test images for the robust gap
    return n
