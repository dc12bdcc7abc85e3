"""Config of study 1, sketchy channels (:mod:`jadv.studies.sketchy_channels`), by profile.

    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:small
    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:medium \\
        --config.datasets=colored_mnist --config.data.colored_mnist.train.num_epochs=9

Profiles: ``smoke`` (seconds, the tests), ``small`` (colored digits, no download, minutes on a
2-core CPU), ``medium`` (colored MNIST, 4 epochs, and all of CIFAR-10, 10 epochs, from the data
dir; a small CNN, PGD-2 AT, weight decay 5e-3 so conv1 leaves its initialisation; about 1.5 h on
a 2-core CPU, BENCHMARKS.md), ``paper`` (the same data, PreActResNet-18, 10 / 30 epochs, PGD-3 AT;
for a GPU).

Models: ``small_cnn`` (``preact_resnet18`` at paper) with conv1 = 64 filters 3x3 and batch norm after every conv, trained with
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

Radii: CIFAR-10 uses the usual Linf 8/255 and L2 0.5, colored MNIST Linf 0.05 and L2 0.5: its
foreground and background colours are only >= 96/255 apart, so Linf 0.1 erased much of a
low-contrast digit and Linf-AT at 0.1 stayed at 34% PGD-20 robust accuracy (RESULTS.md). On
colored digits larger radii left the Linf-AT model near chance (RESULTS.md), so ``small`` uses
Linf 4/255 and L2 0.25 for 15 epochs, the AT radius ramped up over the first 4 epochs
(``eps_warmup_epochs``; without it AT on the tiny colour-digit set sat at chance for the first
epochs).

Quality gates (``gates["<dataset>/<model>"]``, :mod:`jadv.studies.gates`): every model's least
clean test accuracy, least PGD robust accuracy at its own training norm and radius (AT models) and
largest cosine between its trained and initial conv1 kernel, with the source of each number
(:func:`_gate`). A claim resting on a model below its gate is "inconclusive"
(:func:`jadv.studies.sketchy_channels.gate_records`). ``small``: a jadv reference run of the
``small`` recipe at 3x the epochs (RESULTS.md, sketchy_channels gates) minus a tolerance;
colored MNIST (``medium``/``paper``): a jadv reference run of the medium recipe at 9 epochs
(:data:`MEDIUM_CM_REFERENCE`; no published number exists for colored MNIST at these radii) minus 1
point clean / 5 robust; CIFAR-10: published numbers for the nearest architecture, with a
capacity tolerance for the small CNN at ``medium``; ``smoke``: the ``small`` gates, which a 3-step smoke model is not
expected to meet. conv1's cosine with its initialisation must be <= 0.7 (:data:`INIT_COSINE`).

The input normalisation is the same for the three channels (``train.model.mean/std``), so equal
kernel slices mean equal weights on the raw R, G and B pixels, i.e. a luminance filter.
"""
import math

import ml_collections
from ml_collections.config_dict import placeholder

from jadv.studies.gates import gate_spec
from jadv.train.config import PROFILES, base_config, check_profile  # noqa: F401  (PROFILES: the names)

# The small reference run (RESULTS.md, sketchy_channels gates: the small recipe at 45 epochs):
# model -> (clean accuracy, PGD-20 robust accuracy at its own training norm and radius).
SMALL_REFERENCE = {"vanilla": (0.9164, None), "linf_at": (0.8217, 0.5625), "l2_at": (0.8719, 0.6211)}
# The colored-MNIST reference run (RESULTS.md, "colored-MNIST reference run"): the medium recipe at
# 9 epochs, Linf 0.05 / L2 0.5, 2,000 test images clean, PGD-20 on 256.
MEDIUM_CM_REFERENCE = {"vanilla": (0.9845, None), "linf_at": (0.983, 0.8281), "l2_at": (0.9855, 0.9453)}
# Largest cosine between a trained conv1 kernel and its initialisation (1: not moved), and its
# source. 1/sqrt(2) ~ 0.7: the part of the kernel that training wrote outweighs what is left of its
# random start (cosine = |init part| / |kernel|). The small profile's 8x8-digit runs stay above
# it even at 3x epochs (0.78-0.81, RESULTS.md), so their channel claims are inconclusive.
INIT_COSINE = (0.7, "cos <= 1/sqrt(2): the learned part of conv1 outweighs the rest of its init")


def _data(train_size, test_size, num_epochs, linf, l2, augment=False, weight_decay=None):
    """Per-dataset overrides of the training recipe, and the two training radii."""
    size = lambda n: placeholder(int) if n is None else n  # noqa: E731  (None: all; typed for --config.x)
    train = {"train_size": size(train_size), "test_size": size(test_size), "num_epochs": num_epochs,
             "augment": {"crop_flip": augment}}
    if weight_decay is not None:
        train["optimizer"] = {"weight_decay": weight_decay}
    return ml_collections.ConfigDict({"train": train, "eps": {"linf": linf, "l2": l2}})


def _adversarial(norm, steps, warmup):
    """PGD-AT at ``norm``; eps and step size come from the dataset (see the module docstring)."""
    return {"objective": {"name": "pgd_at", "norm": norm, "steps": steps,
                          "init": "uniform" if norm == "linf" else "ball", "eps_warmup_epochs": warmup}}


def _gate(where, clean, robust=None, *, tol=(0.03, 0.05), init_cosine):
    """A gate = reference value minus tolerance. ``clean``/``robust``: the reference accuracies
    (``robust``: PGD at the model's own training norm and radius; None for a vanilla model);
    ``tol``: (clean, robust) tolerance; ``where``: the reference's source; ``init_cosine``:
    ``(init_cosine_max, its source)``."""
    ref = f"clean {clean:.4g}" + ("" if robust is None else f", robust {robust:.4g}")
    source = (f"{where}: reference {ref}; gate = reference - {tol[0]:g} clean"
              + ("" if robust is None else f", - {tol[1]:g} robust") + ", rounded down to 2 decimals"
              + f"; conv1 init_cosine <= {init_cosine[0]:g} ({init_cosine[1]})")
    down = lambda v: math.floor(v * 100 + 1e-9) / 100  # noqa: E731  (the report shows 2 decimals)
    return gate_spec(clean=down(clean - tol[0]), init_cosine_max=init_cosine[0], source=source,
                     robust=None if robust is None else down(robust - tol[1]))


def _gates(profile):
    """``{"<dataset>/<model>": gate}`` of a profile (see the module docstring)."""
    if profile in ("smoke", "small"):
        ref = ("jadv reference run, RESULTS.md (sketchy_channels gates): the small recipe at 45 epochs "
               "(3x), PGD-20 on 256 test images"
               + ("; the small gates, which 3-step smoke models are not expected to meet" if profile == "smoke"
                  else ""))
        return {f"colored_digits/{m}": _gate(ref, *SMALL_REFERENCE[m], init_cosine=INIT_COSINE)
                for m in ("vanilla", "linf_at", "l2_at")}
    cosine = INIT_COSINE
    cm = ("jadv reference run, RESULTS.md (colored-MNIST reference run): the medium small-CNN recipe at 9 "
          "epochs, Linf 0.05 / L2 0.5, PGD-20 on 256 test images"
          + ("; PreActResNet-18 should do at least as well" if profile == "paper" else ""))
    gates = {f"colored_mnist/{m}": _gate(cm, *MEDIUM_CM_REFERENCE[m], tol=(0.01, 0.05), init_cosine=cosine)
             for m in ("vanilla", "linf_at", "l2_at")}
    if profile == "medium":
        tf = ("published for a small CNN: the TensorFlow CIFAR-10 tutorial model (2 conv 64 + fc 384/192, "
              "1.07M parameters) reaches about 86% (tensorflow/models cifar10 README); this CNN is "
              "smaller and trains 10 epochs: capacity/budget tolerance")
        fast = ("published for PreActResNet-18 (no AT number exists for this small CNN): ")
        gates.update({
            "cifar10/vanilla": _gate(tf, 0.86, tol=(0.14, 0.05), init_cosine=cosine),
            "cifar10/linf_at": _gate(fast + "FGSM-RS Linf 8/255, 15 epochs, 83.34% / 46.06% PGD-50 (Wong et "
                                     "al. 2020, RobustBench Wong2020Fast.json); capacity tolerance",
                                     0.8334, 0.4606, tol=(0.28, 0.18), init_cosine=cosine),
            "cifar10/l2_at": _gate(fast + "PGD-AT L2 0.5, 88.67% / 71.6% (Rice et al. 2020, RobustBench "
                                   "Rice2020Overfitting.json); capacity tolerance",
                                   0.8867, 0.716, tol=(0.26, 0.30), init_cosine=cosine)})
    else:
        cifar = "published, /work/shared/reference/robustness-libraries.md section 2: "
        gates.update({
            "cifar10/vanilla": _gate(cifar + "standard WRN-28-10 (RobustBench Standard.json); PreActResNet-18 "
                                     "is smaller and trains 30 epochs", 0.9478, tol=(0.05, 0.05),
                                     init_cosine=cosine),
            "cifar10/linf_at": _gate(cifar + "PGD-AT PreActResNet-18 Linf 8/255, last epoch, PGD-20 "
                                     "(csdongxian/AWP logs); 30 epochs of PGD-3 here", 0.8460, 0.4375,
                                     tol=(0.05, 0.05), init_cosine=cosine),
            "cifar10/l2_at": _gate(cifar + "PGD-AT PreActResNet-18 L2 0.5 (Rice et al., RobustBench "
                                   "Rice2020Overfitting.json); 30 epochs of PGD-3 here", 0.8867, 0.716,
                                   tol=(0.05, 0.07), init_cosine=cosine)})
    return gates


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small")
    smoke, paper = profile == "smoke", profile == "paper"
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.seed = 0
    c.data_dir = placeholder(str)
    c.all_datasets = ("colored_digits", "colored_mnist", "cifar10")
    c.datasets = ("colored_digits",) if profile in ("smoke", "small") else ("colored_mnist", "cifar10")

    # the shared training recipe
    t = base_config()
    t.seed = c.get_ref("seed")
    t.data_dir = c.get_ref("data_dir")
    # the layer under study is conv1 (64 filters, 3x3, 3 input channels, then BN): a small CNN on
    # CPU, PreActResNet-18 (the papers' network) at paper scale
    if paper:
        t.model.name, t.model.kwargs = "preact_resnet18", {}
        t.model.dtype = "bfloat16"     # GPU: bf16 compute, float32 parameters (BENCHMARKS.md)
    else:
        t.model.name = "small_cnn"
        t.model.kwargs = {"conv1_filters": 64, "widths": {"smoke": (8,), "small": (16,), "medium": (64,)}[profile],
                          "hidden": {"smoke": 16, "small": 32, "medium": 128}[profile], "norm": "batch"}
    # one normalisation for all three channels (see the module docstring)
    t.model.mean, t.model.std = (0.5,) * 3, (0.25,) * 3
    t.batch_size = {"smoke": 32, "small": 64, "medium": 128, "paper": 128}[profile]
    if smoke:
        t.num_steps = 3
    # medium/paper: weight decay 5e-3 (1e-2 on colored MNIST drove weak filters to ~0 norm, whose
    # channels are then trivially "near-equal", and missed the clean gate: RESULTS.md). With batch
    # norm after conv1 the kernel's scale is free and weight decay sets how fast its direction moves (the
    # effective learning rate ~ lr x wd; Li & Arora 2020, arXiv:1910.07454; what is left of the
    # initial kernel decays like exp(-sum_t lr_t wd)): at 5e-4 a CIFAR-10 conv1 kept cosine 0.82
    # with its random init after 3 epochs, at 5e-3 0.42, for 1.5 points of clean accuracy (RESULTS.md)
    t.optimizer.update(lr=0.1, weight_decay=5e-3 if profile in ("medium", "paper") else 5e-4)
    t.robust_eval.enabled = False        # robust accuracy is measured by the study, on a test subset
    t.log_every_steps = 50
    t.checkpoint.every_steps = 10_000
    # training devices: 1 at smoke (the tests fake 8 CPU devices; sharding tiny batches over them
    # only adds compile time), all available otherwise
    if smoke:
        t.num_devices = 1
    c.train = t

    # PGD-2 (step 1.25 eps) at medium and PGD-3 at paper: the fast end of PGD-AT, which a few
    # epochs of full data need to stay in budget; the radius ramps up over the first epochs
    attack_steps = {"smoke": 1, "small": 3, "medium": 2, "paper": 3}[profile]
    warmup = {"smoke": 0.0, "small": 4.0, "medium": 1.0, "paper": 3.0}[profile]
    c.models = {"vanilla": {"objective": {"name": "standard"}},
                "linf_at": _adversarial("linf", attack_steps, warmup),
                "l2_at": _adversarial("l2", attack_steps, warmup)}
    c.model_order = ("vanilla", "linf_at", "l2_at")   # ConfigDict sorts keys; this is the plot order
    c.data = {
        "smoke": {"colored_digits": _data(128, 64, 1, 8 / 255, 0.5)},
        "small": {"colored_digits": _data(None, None, 15, 4 / 255, 0.25)},
        "medium": {"colored_mnist": _data(None, 2000, 4, 0.05, 0.5),
                   "cifar10": _data(None, 2000, 10, 8 / 255, 0.5, augment=True)},
        "paper": {"colored_mnist": _data(None, None, 10, 0.05, 0.5),
                  "cifar10": _data(None, None, 30, 8 / 255, 0.5, augment=True)},
    }[profile]

    # analysis
    c.threshold = 0.02          # the poster's first histogram bin [0, 0.02)
    c.bin_width = 0.02
    c.eval_batch_size = 32 if smoke else 256
    c.robust_examples = 32 if smoke else (1000 if paper else 256)
    c.eval_steps = {"smoke": 2, "small": 20, "medium": 20, "paper": 50}[profile]
    c.gates = _gates(profile)
    return c
