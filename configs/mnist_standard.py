"""Standard (clean) training of the small CNN on MNIST.

Variants: ``smoke`` (a few steps on 512 images, for tests), ``cpu`` (one epoch on the full
training set: >= 98.5% test accuracy on a 2-core CPU), ``full`` (10 epochs).
Usage: ``python experiments/train.py --config configs/mnist_standard.py:cpu --workdir runs/mnist``.
"""
from jadv.train.config import base_config, check_variant


def get_config(variant: str = "cpu"):
    variant = check_variant(variant)
    c = base_config()
    c.dataset = "mnist"
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128}
    c.batch_size = 128
    c.optimizer.update(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="onecycle")
    c.num_epochs = {"smoke": 1, "cpu": 1, "full": 10}[variant]
    if variant == "smoke":
        c.train_size, c.test_size, c.batch_size, c.log_every_steps = 512, 256, 64, 4
    return c
