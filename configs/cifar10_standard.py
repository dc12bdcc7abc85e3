"""Standard training on CIFAR-10 (the JPEG copy in the data dir, or TFDS).

Profiles: ``smoke`` (tiny subset, for tests), ``medium`` (small CNN with 64 first-layer filters and
batch norm, 4 epochs on a 2-core CPU), ``paper`` (PreActResNet-18, 200 epochs, piecewise LR as in
Rice et al. 2020, for a GPU/TPU).
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "cifar10"
    c.augment.crop_flip = True
    if profile == "paper":
        c.model.name, c.model.kwargs = "preact_resnet18", {}
        c.num_epochs, c.batch_size = 200, 128
        c.optimizer.update(lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="piecewise",
                           decay_at=(0.5, 0.75))
        c.val_size = 1000
        c.checkpoint.best_metric = "val_accuracy"
    else:
        c.model.name = "small_cnn"
        c.model.kwargs = {"conv1_filters": 64, "widths": (128,), "hidden": 256, "norm": "batch"}
        c.num_epochs, c.batch_size = 4, 128
        c.optimizer.update(lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
    if profile == "smoke":
        c.train_size, c.test_size, c.batch_size, c.num_epochs, c.log_every_steps = 256, 128, 64, 1, 2
    return c
