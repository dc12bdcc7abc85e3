"""FGSM with random start (Wong et al. 2020, "Fast is better than free") on CIFAR-10, eps 8/255.

alpha = 10/255 (1.25 eps), uniform start, train on x + delta only, attack BN mode "train" (the
model stays in train mode in fast_adversarial), catastrophic-overfitting early stop: PGD-5 with
step 2/255 (= eps/4) on the first training batch after each epoch; stop and keep the previous
epoch's weights if its accuracy falls by more than 0.2.
Profiles:
- ``smoke``: seconds, for tests.
- ``medium``: small CNN with batch norm, full training set, 5 epochs, cyclic LR to 0.2 (two
  forward/backward passes per step; ~2x ``cifar10_standard.py:medium`` per epoch).
- ``paper``: PreActResNet-18, 15 epochs, cyclic LR 0 -> 0.2 -> 0 (peak at 2/5), SGD momentum 0.9,
  wd 5e-4, batch 128, crop + flip. (The reference trains in mixed precision, apex O2 with loss
  scale 1; set ``--config.model.dtype=bfloat16`` for the jadv equivalent.)
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "cifar10"
    c.augment.crop_flip = True
    c.objective.update(name="fgsm_rs", eps=8 / 255, step_size=10 / 255, norm="linf", attack_bn_mode="train")
    c.early_stop.update(enabled=True, steps=5, step_size=2 / 255, drop=0.2)
    c.val_size = 1000
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.update(steps=10, val_examples=1000)
    c.optimizer.update(name="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4, schedule="onecycle",
                       peak_fraction=0.4)
    c.batch_size = 128
    if profile == "paper":
        c.model.name, c.model.kwargs = "preact_resnet18", {}
        c.num_epochs = 15
    else:
        c.model.name = "small_cnn"
        c.model.kwargs = {"conv1_filters": 64, "widths": (128, 256), "hidden": 256, "norm": "batch"}
        c.num_epochs = 5
        c.robust_eval.update(val_examples=500)
    if profile == "smoke":
        c.train_size, c.val_size, c.test_size, c.batch_size, c.num_epochs = 256, 64, 128, 64, 2
        c.robust_eval.update(steps=2, val_examples=64)
        c.log_every_steps = 2
    return c
