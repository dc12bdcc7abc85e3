"""PGD adversarial training on CIFAR-10, Linf eps = 8/255 (Madry et al. 2018; the recipe of
Rice et al. 2020, "Overfitting in adversarially robust deep learning").

Profiles:
- ``smoke``: seconds, for tests.
- ``medium``: the small CNN of ``cifar10_standard.py`` (batch norm), 10k training images, PGD-5 with
  step 2.5 eps / 5, 5 epochs, one-cycle SGD; about an hour on a 2-core CPU (estimated: ~6
  forward/backward passes per step, 78 steps per epoch).
- ``paper``: PreActResNet-18, PGD-10 with alpha 2/255 and uniform random start, 200 epochs, SGD
  0.1 momentum 0.9, wd 5e-4, batch 128, LR x0.1 at 50% and 75% of training, crop + flip.
  1000 training images are held out and the best checkpoint is chosen by PGD-10 accuracy on
  them (``val_robust_accuracy``): the early stopping against robust overfitting (Rice et al.
  select on test; we never do).

Attack BN mode "train": batch statistics, running statistics updated by every attack step, as in
robust_overfitting and fast_adversarial whose code produced the published numbers.
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "cifar10"
    c.augment.crop_flip = True
    c.objective.update(name="pgd_at", eps=8 / 255, norm="linf", init="uniform", attack_bn_mode="train")
    c.val_size = 1000
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.update(steps=10, val_examples=1000)
    if profile == "paper":
        c.model.name, c.model.kwargs = "preact_resnet18", {}
        c.objective.update(steps=10, step_size=2 / 255)
        c.num_epochs, c.batch_size = 200, 128
        c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="piecewise",
                           decay_at=(0.5, 0.75), decay_factor=0.1)
    else:
        c.model.name = "small_cnn"
        c.model.kwargs = {"conv1_filters": 64, "widths": (128, 256), "hidden": 256, "norm": "batch"}
        c.objective.update(steps=5)
        c.train_size, c.num_epochs, c.batch_size = 10_000, 5, 128
        c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
        c.robust_eval.update(val_examples=500)
    if profile == "smoke":
        c.train_size, c.val_size, c.test_size, c.batch_size, c.num_epochs = 256, 64, 128, 64, 1
        c.objective.update(steps=2)
        c.robust_eval.update(steps=2, val_examples=64)
        c.log_every_steps = 2
    return c
