"""PGD adversarial training (Madry et al. 2018) on MNIST, Linf eps = 0.3.

Profiles:
- ``smoke``: seconds, for tests (512 images, PGD-3).
- ``medium``: the small CNN of ``mnist_standard.py`` (3x3 convs 32 -> 64, dense 128, ~0.1M params),
  PGD-7 with step 0.05 from a uniform random start, eps warmed up linearly from 0 over the first
  epoch, 8 epochs (3 were too few for the robust target; RESULTS.md has the runs), Adam 1e-3 with
  cosine decay, batch 128.
  1000 training images are held out; the best checkpoint is chosen by PGD-10 accuracy on 500 of
  them (``val_robust_accuracy``), never on test.
- ``paper``: Madry et al.'s MNIST recipe: PGD-40, step 0.01, uniform random start, Adam 1e-4,
  batch 50, 100k iterations (~84 epochs), model with 32/64 conv filters and a 1024-unit dense
  layer (ours uses 3x3 instead of 5x5 kernels).

Attack BN mode: the small CNN has no batch norm, so the mode does not matter here; it is set
to "train" (the jadv default for PGD-AT) and recorded in config.json.
"""
from jadv.train.config import base_config, check_profile


def get_config(profile: str = "medium"):
    profile = check_profile(profile, allowed=("smoke", "medium", "paper"))
    c = base_config()
    c.dataset = "mnist"
    c.model.name = "small_cnn"
    c.objective.update(name="pgd_at", eps=0.3, norm="linf", init="uniform", attack_bn_mode="train")
    c.val_size = 1000
    c.checkpoint.best_metric = "val_robust_accuracy"
    c.robust_eval.update(steps=10, val_examples=500)
    if profile == "paper":
        c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 1024}
        c.objective.update(steps=40, step_size=0.01)
        c.batch_size, c.num_steps = 50, 100_000
        c.optimizer.update(name="adam", lr=1e-4, schedule="constant", weight_decay=0.0)
        c.robust_eval.update(steps=20, val_examples=1000)
    else:
        c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128}
        c.objective.update(steps=7, step_size=0.05, eps_warmup_epochs=1.0)
        c.batch_size, c.num_epochs = 128, 8
        c.optimizer.update(name="adam", lr=1e-3, schedule="cosine", weight_decay=0.0)
    if profile == "smoke":
        c.train_size, c.val_size, c.test_size, c.batch_size, c.num_epochs = 512, 128, 256, 64, 1
        c.objective.update(steps=3, eps_warmup_epochs=0.0)
        c.robust_eval.update(steps=3, val_examples=128)
        c.log_every_steps = 4
    return c
