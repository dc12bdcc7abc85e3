"""Config of study 5, sharpness (``jadv.studies.sharpness``, ``experiments/sharpness.py``).

Profiles:

- ``smoke``: the toy only, 30 L-BFGS iterations; the networks train 3 steps (tests only).
- ``small``: toy and the embedded 8x8 digits 5 vs 7 (no download); a small batch-norm CNN on the
  embedded digits, 25 epochs per model.
- ``medium``: adds MNIST 5 vs 7 (data dir); a small batch-norm CNN on a 5k CIFAR-10 subset.
- ``paper``: PreActResNet-18 on CIFAR-10, 200 epochs, PGD-10 (Rice et al. 2020's schedule; GPU).

Fields:

- ``data_dir``: raw data directory for MNIST and CIFAR-10 (None: ``$JADV_DATA_DIR``, then
  ``../shared/data``); also the data dir of the trained networks.
- ``logistic`` (part 1, adversarial linear logistic regression, closed-form Hessians):
  ``datasets`` ("toy", "digits", "mnist"), ``toy_n`` (examples of the Gaussian toy),
  ``n_max`` (keep the first N examples of a 5-vs-7 task; None: all), ``l2_reg`` (weight decay per
  dataset), ``iters`` (L-BFGS iterations), ``eps_grid`` (radii per dataset and norm).
- ``network`` (part 2, softmax networks):

  - ``train``: the shared training recipe of every network (a ``jadv.train.config.base_config()``;
    the study copies it per model and fills in ``objective``: ``standard`` at eps 0, ``pgd_at``
    or ``awp`` around PGD-AT otherwise, zero-init PGD with step 2.5 eps / ``attack_steps``);
  - ``norm`` (threat model), ``eps_grid`` (PGD-AT radii; 0 is standard training),
    ``attack_steps`` (training PGD steps), ``eval_attack_steps`` (PGD steps of the train/test
    robust accuracies), ``awp_eps`` / ``awp_gamma`` (AWP around PGD-AT at this radius, and its
    gamma);
  - Hessian of the adversarial training loss (x_adv fixed at the trained weights, BN eval, a fixed
    training subset): ``hessian_n`` (subset size), ``hessian_seed`` (subset indices and random
    vectors), ``lanczos_iters``, ``trace_samples`` (Hutchinson), ``density_order`` (SLQ);
  - 1-D landscapes (filter-normalised directions, robust curve re-attacked at every point):
    ``landscape_n`` (images), ``landscape_points``, ``landscape_span``, ``landscape_directions``
    (curves averaged over this many), ``curvature_span`` (quadratic fit on |alpha| <= this);
  - ``gap_n``: training and test images of the robust generalisation gap.

Command line: ``--config configs/sharpness.py:small --config.network.awp_gamma=0.005``.
"""
import ml_collections

from jadv.train.config import base_config, check_profile

PROFILES = ("smoke", "small", "medium", "paper")


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small", allowed=PROFILES)
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.logistic = logistic_config(profile)
    c.network = network_config(profile)
    return c


def logistic_config(profile: str):
    """Part 1: adversarial linear logistic regression, one minimiser per eps of a grid."""
    lc = ml_collections.ConfigDict()
    lc.datasets = {"smoke": ("toy",), "small": ("toy", "digits"), "medium": ("toy", "digits", "mnist"),
                   "paper": ("toy", "digits", "mnist")}[profile]
    lc.toy_n = 400 if profile == "smoke" else 4000
    lc.n_max = ml_collections.config_dict.placeholder(int)
    # The toy is not separable (an unregularised minimiser exists); digits/MNIST 5-vs-7 are
    # (nearly) separable, so their standard minimiser diverges without weight decay.
    lc.l2_reg = {"toy": 0.0, "digits": 1e-3, "mnist": 1e-3}
    lc.iters = 30 if profile == "smoke" else 300
    lc.eps_grid = {
        "toy": {"l2": (0.0, 0.2, 0.4, 0.6, 0.8), "linf": (0.0, 0.05, 0.1, 0.15)},
        "digits": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
        "mnist": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
    }
    return lc


def network_config(profile: str):
    """Part 2: PGD-AT over an eps grid and AWP vs PGD-AT; Hessian of the adversarial training
    loss, 1-D filter-normalised landscapes, robust generalisation gap."""
    smoke = profile == "smoke"
    big = profile in ("medium", "paper")
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
    elif profile == "medium":   # CIFAR-10 subset, small CNN with batch norm
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
    # L2 radii of Yamada et al.'s CIFAR-10 scale; the 8x8 digits use the same radii
    n.eps_grid = (0.0, 0.5) if smoke else (0.0, 0.25, 0.5, 1.0)
    n.attack_steps = {"smoke": 1, "small": 5, "medium": 5, "paper": 10}[profile]   # training PGD, step 2.5 eps/steps
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
