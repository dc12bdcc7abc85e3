"""Config of study 2 (experiments/tradeoff.py), by profile: smoke, default, cpu, full.

smoke: seconds (tests). default: no download (generated Tsipras data, embedded 8x8 ``digits``),
a few minutes on a 2-core CPU. cpu: MNIST from the data dir (5 vs 7 linear models; small CNNs on
subsets 100 .. 60k). full: the paper's scale on an accelerator (MNIST and CIFAR-10 sweeps).
"""
import math

import ml_collections

PROFILES = ("smoke", "default", "cpu", "full")


def get_config(profile: str = "default"):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    smoke = profile == "smoke"
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.seed = 0

    # --- Part 1: theory on Tsipras et al. eq. (3) (checks 11-13) ---------------------------
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

    # --- Part 2: binary 5-vs-7 linear models (check 14) ------------------------------------
    big = profile in ("cpu", "full")
    c.binary = ml_collections.ConfigDict({
        "dataset": "mnist" if big else "digits",
        "eps_train": (0.0, 0.05, 0.1, 0.2),       # L-inf, vmapped as one program
        "eps_at": 0.1,                             # the "robust model" of the claims and figures
        "ks": (1, 2, 4, 8, 16, 32, 64, 128, 256, 784) if big else ((1, 4, 16, 64) if smoke
                                                                     else (1, 2, 4, 8, 16, 32, 64)),
        "steps": 60 if smoke else 800, "lr": 0.05, "l2_reg": 1e-4,
        "sparsity_rel": 0.01,
    })

    # --- Part 3: small CNNs, accuracy vs training-set size and vs eps_train (checks 15-16) ---
    # All (size, eps) models of one norm are trained as one vmapped program (plus a proxy
    # standard model with another seed in the L-inf program, used to judge large-eps examples).
    c.sweep = ml_collections.ConfigDict({
        "dataset": {"smoke": "digits", "default": "digits", "cpu": "mnist", "full": "mnist"}[profile],
        "sizes": {"smoke": (50, 200), "default": (50, 150, 500, 1438), "cpu": (100, 1000, 10000, 60000),
                  "full": (100, 1000, 10000, 60000)}[profile],
        "eps": {"linf": (0.0, 0.1) if smoke else ((0.0, 0.05, 0.1, 0.2) if not big else (0.0, 0.1, 0.2, 0.3)),
                "l2": (0.0, 0.5) if smoke else ((0.0, 0.25, 0.5, 1.0) if not big else (0.0, 1.0, 2.0, 3.0))},
        # smoke: an MLP (compiles fast); the other profiles: small CNNs without batch norm
        "model": "mlp" if smoke else "small_cnn",
        "model_kwargs": {"hidden": (16,)} if smoke else (
            {"conv1_filters": 8, "widths": (16,), "hidden": 32} if not big else
            ({"conv1_filters": 8, "widths": (16,), "hidden": 64} if profile == "cpu" else
             {"conv1_filters": 32, "widths": (64,), "hidden": 1024})),
        "steps": {"smoke": 8, "default": 400, "cpu": 600, "full": 20000}[profile],
        "batch_size": {"smoke": 32, "default": 64, "cpu": 64, "full": 128}[profile],
        "lr": 2e-3,                                # Adam, cosine decay to 0
        "attack_steps": {"smoke": 2, "default": 5, "cpu": 5, "full": 7}[profile],  # training PGD, step 2.5 eps/steps
        "eval_attack_steps": 3 if smoke else 10,   # PGD robust accuracy of the test set
        "test_size": 128 if smoke else (None if not big else 2000),
    })

    # --- Part 4: saliency, large-eps examples, interpolation (check 17) --------------------
    c.saliency = ml_collections.ConfigDict({
        "n": 16 if smoke else 128,                 # test images for the alignment number
        # 8x8 digits: L2 0.5 (L-inf 0.1 reaches L2 0.8 on 64 pixels); L2 1.0 and above collapse the tiny CNN
        "n_show": 6, "linf_eps": 0.1, "l2_eps": 0.5 if not big else 2.0,
        "large_eps": 1.0 if smoke else (2.0 if not big else 8.0),   # L2, 2x beyond every eps_train
        "large_steps": 5 if smoke else 100, "n_large": 8 if smoke else 64,
        "interp_alphas": (0.0, 0.25, 0.5, 0.75, 1.0),
    })
    return c
