"""FGSM with random start (Wong et al. 2020, "Fast is better than free") on MNIST, eps = 0.3.

alpha = 1.25 eps = 0.375 (their MNIST step), uniform start, the model trained on x + delta only,
with the catastrophic-overfitting early stop (PGD-5, step eps/4, on the first training batch
after each epoch; stop and keep the previous epoch's weights if its accuracy falls by > 0.2).
Profiles:
- ``smoke``: seconds, for tests.
- ``medium``: small CNN of ``mnist_standard.py``, 5 epochs, Adam with a cyclic (one-cycle) LR peaking
  at 5e-3, batch 128, eps warmed up linearly from 0 over the first 2 epochs. Without the warm-up
  (``--config.objective.eps_warmup_epochs=0``) this recipe overfit catastrophically inside the
  first epoch: PGD accuracy ~0 at every check, so the per-epoch early stop had nothing to keep
  (RESULTS.md, which also has the run with the warm-up).
- ``paper``: their MNIST recipe: 10 epochs, cyclic Adam 0 -> 5e-3 -> 0, batch 100; their network
  has two stride-2 4x4 convs (16, 32) and a 100-unit dense layer (ours: 3x3 convs + max-pool).
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "mnist"
    c.model.name = "small_cnn"
    c.objective.update(name="fgsm_rs", eps=0.3, step_size=0.375, norm="linf", attack_bn_mode="train")
    c.early_stop.update(enabled=True, steps=5, drop=0.2)
    c.val_size = 1000
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.update(steps=10, val_examples=500)
    c.optimizer.update(name="adam", lr=5e-3, schedule="onecycle", peak_fraction=0.5, weight_decay=0.0)
    if profile == "paper":
        c.model.kwargs = {"conv1_filters": 16, "widths": (32,), "hidden": 100}
        c.batch_size, c.num_epochs = 100, 10
        c.robust_eval.update(steps=20, val_examples=1000)
    else:
        c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128}
        c.batch_size, c.num_epochs = 128, 5
        c.objective.eps_warmup_epochs = 2.0
    if profile == "smoke":
        c.train_size, c.val_size, c.test_size, c.batch_size, c.num_epochs = 512, 128, 256, 64, 2
        c.robust_eval.update(steps=3, val_examples=128)
        c.objective.eps_warmup_epochs = 0.0
        c.log_every_steps = 4
    return c
