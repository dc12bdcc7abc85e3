"""Standard training on scikit-learn's embedded 8x8 digits (no download needed).

Variants: ``smoke`` (a few steps), ``cpu`` (20 epochs, seconds), ``full`` (same as cpu: the
dataset is tiny).
"""
from jadv.train.config import base_config, check_variant


def get_config(variant: str = "cpu"):
    variant = check_variant(variant)
    c = base_config()
    c.dataset = "digits"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 16, "widths": (32,), "hidden": 64}
    c.batch_size = 64
    c.num_epochs = 2 if variant == "smoke" else 20
    c.optimizer.update(lr=0.05, schedule="onecycle")
    c.log_every_steps = 10
    return c
