"""Config of study 2, :mod:`jadv.studies.tradeoff` (Tsipras et al. 2019), by profile.

    python experiments/tradeoff.py --config configs/tradeoff.py:small --config.sweep.eps.linf='(0.0,0.1)'

``smoke``: seconds (tests). ``small``: no download (generated Tsipras data, embedded 8x8
``digits``), minutes on a 2-core CPU. ``medium``: MNIST from the data dir (5 vs 7 linear models;
small CNNs on subsets 100 .. 60k, 1,500 steps with the radius ramped over the first 500).
``paper``: CIFAR-10 sweeps (subsets 1k .. 50k, the MadryLab L-inf / L2 radii, a BN-free
64-128-256 CNN, 8,000 steps; for an accelerator); the 5-vs-7 linear models stay on MNIST.

Sections: ``theory`` (part 1, the data model of eq. (3)), ``binary`` (part 2, 5-vs-7 linear
models), ``sweep`` (part 3, the (training-set size, eps_train) grid of small networks; its
training recipe ``sweep.train`` is a :func:`jadv.train.config.base_config` of which the study reads
the fields listed in :func:`jadv.studies.tradeoff.sweep_recipe`), ``saliency`` (part 4) and
``gates`` (the quality gate of every full-training-set sweep model and of the proxy,
:func:`sweep_gates`; :mod:`jadv.studies.gates`).
"""
import math

import ml_collections

from jadv.studies.gates import gate_spec
from jadv.studies.tradeoff import sweep_model_name
from jadv.train.config import base_config, check_profile

PROFILES = ("smoke", "small", "medium", "paper")

_SMALL_REF = "jadv reference run, RESULTS.md (tradeoff gates)"
_MEDIUM_REF = ("jadv run of this medium sweep architecture at 600 steps without eps warm-up, on an H100 (the "
               "profile then called `cpu`; results/cpu/report.md, RESULTS.md 'The five studies, cpu profile'), one "
               "seed: a lower bound for today's 1,500 steps with warm-up")
_MEDIUM_3X = ("jadv reference run, RESULTS.md (tradeoff, medium profile): this medium sweep recipe at 3x its "
              "steps (4500, eps ramped over 1500), all 60k images, PGD-10 on the 2,000 test images")
_MADRY = ("published: Madry et al. 2018 MNIST CNN (conv 32-64, fc 1024, the paper profile's architecture) PGD-AT "
          "L-inf 0.3, 98.53% clean / 89.62% robust under the paper's attack (fra31/auto-attack README, "
          "/work/shared/reference/robustness-libraries.md)")
_MADRY_CIFAR = ("published: MadryLab robustness ResNet-50 on CIFAR-10, robust accuracy at eps_test = eps_train "
                "(analysis-methods.md B.3); the paper sweep's BN-free CNN (conv 64-128-256, 20 epochs) is far "
                "smaller: 15 points of capacity tolerance")
_MEDIUM_LB = ("no published MNIST L2-AT number in the reference notes; lower bound: the smaller medium CNN "
              "(8-16-64, 600 steps) on an H100, results/cpu/report.md")

# Gate thresholds of the full-size sweep models: profile -> norm -> eps_train -> (clean, robust,
# source). Robust is the study's own PGD (``sweep.eval_attack_steps`` steps at eps_train; None at
# eps 0). Tolerances: 3 points of clean accuracy, 5 of robust, unless the source says otherwise; the
# result rounded down to 2 decimals.
SWEEP_GATES = {
    "smoke": {norm: {e: (0.90, 0.50, "smoke profile: nominal thresholds (clean 0.90, robust 0.50); an 8-step "
                                     "MLP is not expected to meet them, so its gated claims are inconclusive")
                     for e in eps}
              for norm, eps in (("linf", (0.0, 0.1)), ("l2", (0.0, 0.5)))},
    # the small recipe at 3x num_steps (1200), seeds 0-2 (the proxies 1000-1002 with the standard
    # models); mean of the seeds that learned (seed 2 collapsed to chance at L-inf 0.2 and L2 1.0)
    "small": {
        "linf": {0.0: (0.93, None, f"{_SMALL_REF}: 96.29% clean (mean of 6 standard models) minus 3"),
                 0.05: (0.93, 0.81, f"{_SMALL_REF}: 96.29% / 86.35% PGD-10 (mean of 3 seeds) minus 3 / 5"),
                 0.1: (0.92, 0.65, f"{_SMALL_REF}: 95.26% / 70.10% PGD-10 (mean of 3 seeds) minus 3 / 5"),
                 0.2: (0.81, 0.32, f"{_SMALL_REF}: 84.82% / 37.47% PGD-10 (mean of the 2 of 3 seeds that "
                                     "learned) minus 3 / 5")},
        "l2": {0.0: (0.93, None, f"{_SMALL_REF}: 96.29% clean (mean of 6 standard models) minus 3"),
               0.25: (0.93, 0.81, f"{_SMALL_REF}: 96.38% / 86.91% PGD-10 (mean of 3 seeds) minus 3 / 5"),
               0.5: (0.91, 0.61, f"{_SMALL_REF}: 94.80% / 66.11% PGD-10 (mean of 3 seeds) minus 3 / 5"),
               1.0: (0.67, 0.25, f"{_SMALL_REF}: 77.72% / 30.78% PGD-10 (mean of the 2 of 3 seeds that "
                                   "learned, 71.9% and 83.6% clean) minus 10 (noisy) / 5")}},
    # medium L-inf: the medium sweep recipe at 3x num_steps (4500, eps ramped over 1500), full
    # training set, seed 0 and the proxy seed 1000 (RESULTS.md, tradeoff medium run)
    "medium": {
        "linf": {0.0: (0.95, None, f"{_MEDIUM_3X}: 98.75% clean (proxy 98.45%) minus 3"),
                 0.1: (0.95, 0.88, f"{_MEDIUM_3X}: 98.50% / 93.00% PGD-10 minus 3 / 5"),
                 0.2: (0.94, 0.82, f"{_MEDIUM_3X}: 97.80% / 87.15% PGD-10 minus 3 / 5"),
                 0.3: (0.94, 0.79, f"{_MEDIUM_3X}: 97.20% / 84.40% PGD-10 minus 3 / 5")},
        "l2": {0.0: (0.93, None, f"{_MEDIUM_REF}: 96.35% clean minus 3 (the L-inf program's standard model: "
                                  "96.45%)"),
               1.0: (0.93, 0.78, f"{_MEDIUM_REF}: 96.35% / 83.55% PGD-10 minus 3 / 5"),
               2.0: (0.91, 0.49, f"{_MEDIUM_REF}: 94.15% / 54.25% PGD-10 minus 3 / 5"),
               3.0: (0.67, 0.20, f"{_MEDIUM_REF}: 77.0% / 30.6% PGD-10 minus 10 / 10 (noisy: the same "
                                   "config collapsed to 11.7% on CPU-2)")}},
    "paper": {
        "linf": {0.0: (0.80, None, f"{_MADRY_CIFAR}: standard 95.25% minus 15 (capacity)"),
                 2 / 255: (0.72, 0.38, f"{_MADRY_CIFAR}: no number at 2/255 or 4/255, the 8/255 one bounds them "
                                       "from below: 87.03% / 53.49% minus 15 / 15 (capacity)"),
                 4 / 255: (0.72, 0.38, f"{_MADRY_CIFAR}: no number at 2/255 or 4/255, the 8/255 one bounds them "
                                       "from below: 87.03% / 53.49% minus 15 / 15 (capacity)"),
                 8 / 255: (0.72, 0.38, f"{_MADRY_CIFAR}: L-inf 8/255 87.03% / 53.49% minus 15 / 15 (capacity)")},
        "l2": {0.0: (0.80, None, f"{_MADRY_CIFAR}: standard 95.25% minus 15 (capacity)"),
               0.25: (0.77, 0.66, f"{_MADRY_CIFAR}: L2 0.25 92.77% / 81.21% minus 15 / 15 (capacity)"),
               0.5: (0.75, 0.55, f"{_MADRY_CIFAR}: L2 0.5 90.83% / 70.17% minus 15 / 15 (capacity)"),
               1.0: (0.66, 0.37, f"{_MADRY_CIFAR}: L2 1.0 81.62% / 52.72% minus 15 / 15 (capacity)")}},
}


def sweep_train_config(profile: str) -> ml_collections.ConfigDict:
    """The training recipe shared by every model of the sweeps (eps_train, norm, training-set size
    and seed come from the sweep grid): Adam with cosine decay to 0, PGD-AT (step 2.5 eps/steps)."""
    smoke = profile == "smoke"
    t = base_config()
    # paper: CIFAR-10 (Tsipras et al.'s CIFAR-10 sweeps; MNIST is the medium profile's)
    t.dataset = {"smoke": "digits", "small": "digits", "medium": "mnist", "paper": "cifar10"}[profile]
    t.test_size = {"smoke": 128, "small": None, "medium": 2000, "paper": 2000}[profile]
    # smoke: an MLP (compiles fast); the other profiles: small CNNs without batch norm
    t.model.name = "mlp" if smoke else "small_cnn"
    t.model.kwargs = {"smoke": {"hidden": (16,)},
                      "small": {"conv1_filters": 8, "widths": (16,), "hidden": 32},
                      "medium": {"conv1_filters": 8, "widths": (16,), "hidden": 64},
                      "paper": {"conv1_filters": 64, "widths": (128, 256), "hidden": 256}}[profile]
    # medium: 1,500 steps (600 left the eps-0.3 and L2-3 models at chance, RESULTS.md), the radius
    # ramped over the first 500 (sweep.eps_warmup_steps)
    # paper: 8,000 steps of 128 = 20 epochs of CIFAR-10 for the full-size models
    t.num_steps = {"smoke": 8, "small": 400, "medium": 1500, "paper": 8000}[profile]
    t.batch_size = {"smoke": 32, "small": 64, "medium": 64, "paper": 128}[profile]
    t.optimizer.name = "adam"
    t.optimizer.lr = 2e-3
    t.optimizer.schedule = "cosine"
    t.optimizer.weight_decay = 0.0
    t.objective.name = "pgd_at"
    t.objective.steps = {"smoke": 2, "small": 5, "medium": 5, "paper": 5}[profile]   # training PGD
    return t


def sweep_gates(profile: str, sweep) -> ml_collections.ConfigDict:
    """``config.gates``: a gate (:func:`jadv.studies.gates.gate_spec`) for every full-training-set
    model of ``sweep`` (its largest size, each norm and eps_train) and for the L-inf proxy (the
    standard recipe with another seed, so the eps-0 gate), named by
    :func:`jadv.studies.tradeoff.sweep_model_name`; thresholds from :data:`SWEEP_GATES`."""
    table, full, gates = SWEEP_GATES[profile], sweep.sizes[-1], {}
    for norm in ("linf", "l2"):
        for e in sweep.eps[norm]:
            clean, robust, source = table[norm][e]
            gates[sweep_model_name(norm, e, full)] = gate_spec(clean=clean, robust=robust if e else None,
                                                               source=source)
    gates[sweep_model_name("linf", 0.0, full, proxy=True)] = gates[sweep_model_name("linf", 0.0, full)]
    return ml_collections.ConfigDict(gates)


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
                  "paper": (1000, 10000, 50000)}[profile],
        "eps": {"smoke": {"linf": (0.0, 0.1), "l2": (0.0, 0.5)},
                "small": {"linf": (0.0, 0.05, 0.1, 0.2), "l2": (0.0, 0.25, 0.5, 1.0)},
                "medium": {"linf": (0.0, 0.1, 0.2, 0.3), "l2": (0.0, 1.0, 2.0, 3.0)},
                # CIFAR-10: the MadryLab robustness grid (analysis-methods.md B.3)
                "paper": {"linf": (0.0, 2 / 255, 4 / 255, 8 / 255), "l2": (0.0, 0.25, 0.5, 1.0)}}[profile],
        "eval_attack_steps": 3 if smoke else 10,   # PGD robust accuracy of the test set
        # the training radius ramps up linearly over these first steps (train_many)
        "eps_warmup_steps": {"smoke": 0, "small": 0, "medium": 500, "paper": 2000}[profile],
        "train": sweep_train_config(profile),
    })

    # --- Part 4: saliency, large-eps examples, interpolation (claims 2.17, 2.17b) ---------------
    c.saliency = ml_collections.ConfigDict({
        "n": 16 if smoke else 128,                 # test images for the alignment number
        # 8x8 digits: L2 0.5 (L-inf 0.1 reaches L2 0.8 on 64 pixels); L2 1.0 and above collapse the tiny CNN
        "n_show": 6, "linf_eps": 8 / 255 if profile == "paper" else 0.1,
        "l2_eps": {"smoke": 0.5, "small": 0.5, "medium": 2.0, "paper": 0.5}[profile],
        # L2, beyond every eps_train
        "large_eps": {"smoke": 1.0, "small": 2.0, "medium": 8.0, "paper": 4.0}[profile],
        "large_steps": 5 if smoke else 100, "n_large": 8 if smoke else 64,
        "interp_alphas": (0.0, 0.25, 0.5, 0.75, 1.0),
    })

    # --- Quality gates of the sweep networks (claims 2.15-2.17b rest on them) -------------------
    c.gates = sweep_gates(profile, c.sweep)
    return c
