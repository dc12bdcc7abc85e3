"""Standard training on scikit-learn's embedded 8x8 digits (no download needed).

Profiles: ``smoke`` (a few steps), ``medium`` (20 epochs, seconds), ``paper`` (same as medium: the
dataset is tiny).
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile)
    c = base_config()
    c.dataset = "digits"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 16, "widths": (32,), "hidden": 64}
    c.batch_size = 64
    c.num_epochs = 2 if profile == "smoke" else 20
    c.optimizer.update(lr=0.05, schedule="onecycle")
    c.log_every_steps = 10
    return c
