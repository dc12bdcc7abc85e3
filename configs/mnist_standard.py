"""Standard (clean) training of the small CNN on MNIST.

Profiles: ``smoke`` (a few steps on 512 images, for tests), ``medium`` (one epoch on the full
training set; RESULTS.md has its accuracy and time), ``paper`` (10 epochs).
Usage: ``python experiments/train.py --config configs/mnist_standard.py:medium --workdir runs/mnist``.
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "mnist"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128}
    c.batch_size = 128
    c.optimizer.update(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
    c.num_epochs = {"smoke": 1, "medium": 1, "paper": 10}[profile]
    if profile == "smoke":
        c.train_size, c.test_size, c.batch_size, c.log_every_steps = 512, 256, 64, 4
    return c
