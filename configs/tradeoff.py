"""Config of study 2, :mod:`jadv.studies.tradeoff` (Tsipras et al. 2019), by profile.

    python experiments/tradeoff.py --config configs/tradeoff.py:small --config.sweep.eps.linf='(0.0,0.1)'

``smoke``: seconds (tests). ``small``: no download (generated Tsipras data, embedded 8x8
``digits``), minutes on a 2-core CPU. ``medium``: MNIST from the data dir (5 vs 7 linear models;
small CNNs on subsets 100 .. 60k). ``paper``: the paper's scale of the MNIST sweeps, for an
accelerator.

Sections: ``theory`` (part 1, the data model of eq. (3)), ``binary`` (part 2, 5-vs-7 linear
models), ``sweep`` (part 3, the (training-set size, eps_train) grid of small networks; its
training recipe ``sweep.train`` is a :func:`jadv.train.config.base_config` of which the study reads
the fields listed in :func:`jadv.studies.tradeoff.sweep_recipe`) and ``saliency`` (part 4).
"""
import math

import ml_collections

from jadv.train.config import base_config, check_profile

PROFILES = ("smoke", "small", "medium", "paper")


def sweep_train_config(profile: str) -> ml_collections.ConfigDict:
    """The training recipe shared by every model of the sweeps (eps_train, norm, training-set size
    and seed come from the sweep grid): Adam with cosine decay to 0, PGD-AT (step 2.5 eps/steps)."""
    smoke, big = profile == "smoke", profile in ("medium", "paper")
    t = base_config()
    t.dataset = "mnist" if big else "digits"
    t.test_size = {"smoke": 128, "small": None, "medium": 2000, "paper": 2000}[profile]
    # smoke: an MLP (compiles fast); the other profiles: small CNNs without batch norm
    t.model.name = "mlp" if smoke else "small_cnn"
    t.model.kwargs = {"smoke": {"hidden": (16,)},
                      "small": {"conv1_filters": 8, "widths": (16,), "hidden": 32},
                      "medium": {"conv1_filters": 8, "widths": (16,), "hidden": 64},
                      "paper": {"conv1_filters": 32, "widths": (64,), "hidden": 1024}}[profile]
    t.num_steps = {"smoke": 8, "small": 400, "medium": 600, "paper": 20000}[profile]
    t.batch_size = {"smoke": 32, "small": 64, "medium": 64, "paper": 128}[profile]
    t.optimizer.name = "adam"
    t.optimizer.lr = 2e-3
    t.optimizer.schedule = "cosine"
    t.optimizer.weight_decay = 0.0
    t.objective.name = "pgd_at"
    t.objective.steps = {"smoke": 2, "small": 5, "medium": 5, "paper": 7}[profile]   # training PGD
    return t


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small", allowed=PROFILES)
    smoke = profile == "smoke"
    big = profile in ("medium", "paper")
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.seed = 0

    # --- Part 1: theory on Tsipras et al. eq. (3) (claims 2.11-2.13) ---------------------------
    d = 100 if smoke else 1000          # the claims are about d = 1000; smoke only exercises the code
    eta = 4.0 / math.sqrt(d)
    c.theory = ml_collections.ConfigDict({
        "d": d, "p": 0.95, "eta": eta,
        "n_train": 1000 if smoke else 10000,       # samples for the trained linear classifiers
        "n_test": 2000 if smoke else 20000,        # fresh samples for the Monte-Carlo accuracies
        "sweep_points": 9 if smoke else 41,        # angles of w = (cos t, sin t / sqrt(d) 1_d)
        "sign_eps": (2 * eta, 0.5, 0.99),           # radii for sign(x_1) (all < 1)
        # eps_train grid of the vmapped linear training: 0 (standard), 2 eta, < 2p-1, >= 2p-1
        "eps_train": (0.0, 2 * eta, 0.5, 0.85, 0.95),
        "steps": 60 if smoke else 600, "lr": 0.05, "l2_reg": 1e-4,
    })

    # --- Part 2: binary 5-vs-7 linear models (claim 2.14) --------------------------------------
    c.binary = ml_collections.ConfigDict({
        "dataset": "mnist" if big else "digits",
        "eps_train": (0.0, 0.05, 0.1, 0.2),       # L-inf, vmapped as one program
        "eps_at": 0.1,                             # the "robust model" of the claims and figures
        "ks": (1, 2, 4, 8, 16, 32, 64, 128, 256, 784) if big else ((1, 4, 16, 64) if smoke
                                                                     else (1, 2, 4, 8, 16, 32, 64)),
        "steps": 60 if smoke else 800, "lr": 0.05, "l2_reg": 1e-4,
        "sparsity_rel": 0.01,
    })

    # --- Part 3: small networks, accuracy vs training-set size and vs eps_train (2.15, 2.16) ----
    # All (size, eps) models of one norm are trained as one program (plus a proxy standard model
    # with another seed in the L-inf program, used to judge the large-eps examples of part 4).
    c.sweep = ml_collections.ConfigDict({
        "sizes": {"smoke": (50, 200), "small": (50, 150, 500, 1438), "medium": (100, 1000, 10000, 60000),
                  "paper": (100, 1000, 10000, 60000)}[profile],
        "eps": {"linf": (0.0, 0.1) if smoke else ((0.0, 0.05, 0.1, 0.2) if not big else (0.0, 0.1, 0.2, 0.3)),
                "l2": (0.0, 0.5) if smoke else ((0.0, 0.25, 0.5, 1.0) if not big else (0.0, 1.0, 2.0, 3.0))},
        "eval_attack_steps": 3 if smoke else 10,   # PGD robust accuracy of the test set
        "train": sweep_train_config(profile),
    })

    # --- Part 4: saliency, large-eps examples, interpolation (claims 2.17, 2.17b) ---------------
    c.saliency = ml_collections.ConfigDict({
        "n": 16 if smoke else 128,                 # test images for the alignment number
        # 8x8 digits: L2 0.5 (L-inf 0.1 reaches L2 0.8 on 64 pixels); L2 1.0 and above collapse the tiny CNN
        "n_show": 6, "linf_eps": 0.1, "l2_eps": 0.5 if not big else 2.0,
        "large_eps": 1.0 if smoke else (2.0 if not big else 8.0),   # L2, 2x beyond every eps_train
        "large_steps": 5 if smoke else 100, "n_large": 8 if smoke else 64,
        "interp_alphas": (0.0, 0.25, 0.5, 0.75, 1.0),
    })
    return c
