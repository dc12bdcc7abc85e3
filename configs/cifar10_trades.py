"""TRADES (Zhang et al. 2019) on CIFAR-10: eps 0.031, step 0.007, 10 steps, beta 6.

Attack: KL-PGD from x + 0.001 N(0, I), sign steps, eval BN mode; loss CE(f(x)) + 6 KL(p(x)||p(x'))
in train mode, gradients through both terms.
Profiles:
- ``smoke``: seconds, for tests.
- ``medium``: small CNN with batch norm, 10k training images, 5 attack steps, 5 epochs (~an hour on a
  2-core CPU, estimated).
- ``paper``: WRN-34-10, SGD 0.1 momentum 0.9, wd 2e-4, batch 128, 76 epochs with LR x0.1 at epoch
  75 (the reference script), crop + flip. 1000 held-out training images select the best
  checkpoint by PGD-10 accuracy (``val_robust_accuracy``). Evaluate the final model with PGD-20
  step 0.003 (the reference) and AutoAttack (``experiments/evaluate.py``).
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "cifar10"
    c.augment.crop_flip = True
    c.objective.update(name="trades", eps=0.031, step_size=0.007, steps=10, beta=6.0, norm="linf",
                       init="normal_0.001", attack_bn_mode="eval")
    c.val_size = 1000
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.update(steps=10, val_examples=1000)
    if profile == "paper":
        c.model.name, c.model.kwargs = "wrn34_10", {}
        c.num_epochs, c.batch_size = 76, 128
        c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=2e-4, schedule="piecewise",
                           decay_at=(75 / 76,), decay_factor=0.1)
    else:
        c.model.name = "small_cnn"
        c.model.kwargs = {"conv1_filters": 64, "widths": (128, 256), "hidden": 256, "norm": "batch"}
        c.objective.update(steps=5, step_size=0.0155)
        c.train_size, c.num_epochs, c.batch_size = 10_000, 5, 128
        c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
        c.robust_eval.update(val_examples=500)
    if profile == "smoke":
        c.train_size, c.val_size, c.test_size, c.batch_size, c.num_epochs = 256, 64, 128, 64, 1
        c.objective.update(steps=2)
        c.robust_eval.update(steps=2, val_examples=64)
        c.log_every_steps = 2
    return c
