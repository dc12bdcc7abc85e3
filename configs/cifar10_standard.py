"""Standard training on CIFAR-10 (the JPEG copy in the data dir, or TFDS).

Variants: ``smoke`` (tiny subset, for tests), ``cpu`` (small CNN with 64 first-layer filters and
batch norm, 4 epochs on a 2-core CPU), ``full`` (PreActResNet-18, 200 epochs, piecewise LR as in
Rice et al. 2020, for a GPU/TPU).
"""
from jadv.train.config import base_config, check_variant


def get_config(variant: str = "cpu"):
    variant = check_variant(variant)
    c = base_config()
    c.dataset = "cifar10"
    c.augment.crop_flip = True
    if variant == "full":
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
    if variant == "smoke":
        c.train_size, c.test_size, c.batch_size, c.num_epochs, c.log_every_steps = 256, 128, 64, 1, 2
    return c
