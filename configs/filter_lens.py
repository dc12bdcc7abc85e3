"""Config of study 4, filter lens (``jadv.studies.filter_lens``, ``experiments/filter_lens.py``).

One standard / PGD-AT pair with the same seed, data order and schedule, by profile:

- ``smoke``: ResNet-8 on digits, 3 steps (tests only).
- ``small``: ResNet-20 (19 3x3 convs + 2 1x1 shortcuts, so every depth decile is populated) on
  scikit-learn's embedded 8x8 digits (no download). digits instead of colored_digits because
  8x8x1 inputs cost 1/16 of the compute of 32x32x3 on a 2-core CPU; its first conv has 1 input
  channel, so the first-layer group has 16 filters. Linf eps 0.1 on [0, 1] pixels (the 17 grey
  levels of digits are 1/16 apart), PGD-5 in training.
- ``medium``: ResNet-20 on a 5k CIFAR-10 subset, Linf 8/255, PGD-3.
- ``paper``: ResNet-18 (CIFAR stem) on CIFAR-10, Linf 8/255, PGD-10, 100 epochs.

Fields:

- ``train``: the training config of the standard model (a ``jadv.train.config.base_config()``),
  which is also the recipe both models share: seed, data, model, schedule, and the PGD robust
  evaluation of both models on the first ``train.robust_eval.test_examples`` test images at the
  end of training (``train.robust_eval.enabled`` False: none).
- ``robust``: what the robust model's config changes in ``train`` (merged into a copy of it): the
  PGD-AT objective, step size 2.5 eps / steps (the objective's default). The eps of training
  (``robust.objective.eps``) and of the evaluation (``train.robust_eval.eps``) are set together
  here; change both on the command line to keep them equal.
- ``data_dir``: when set (``experiments/reproduce.py --data_dir``), the data dir of both models.
- ``bins``: histogram bins of the distribution shift (the paper's 70).
- ``import_workdirs``: ``("standard:DIR", "robust:DIR", ...)``, jadv training workdirs measured as
  extra models in the depth figure (the claims use the pair only).
- ``pair_workdirs``: ``("standard:DIR", "robust:DIR")``: load the pair from these two workdirs
  (e.g. of ``experiments/import_model.py``) instead of training it.
"""
import ml_collections

from jadv.train.config import base_config, check_profile

PROFILES = ("smoke", "small", "medium", "paper")


def get_config(profile: str = "small"):
    profile = check_profile(profile, default="small", allowed=PROFILES)
    digits = profile in ("smoke", "small")
    eps = 0.1 if digits else 8 / 255
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)

    t = base_config()
    t.seed = 0
    t.dataset = "digits" if digits else "cifar10"
    t.model.name = {"smoke": "cifar_resnet", "small": "resnet20", "medium": "resnet20", "paper": "resnet18"}[profile]
    t.model.kwargs = {"smoke": {"depth": 8}, "small": {}, "medium": {}, "paper": {"stem": "cifar"}}[profile]
    if profile == "smoke":
        t.train_size, t.test_size, t.num_steps = 128, 64, 3
    elif profile == "medium":
        t.train_size, t.test_size = 5000, 1000
    t.batch_size = {"smoke": 32, "small": 64, "medium": 128, "paper": 128}[profile]
    t.num_epochs = {"smoke": 1, "small": 15, "medium": 6, "paper": 100}[profile]
    t.optimizer.update(lr=0.1, weight_decay=5e-4)
    t.augment.crop_flip = not digits
    t.eval_batch_size = 32 if profile == "smoke" else 256
    t.robust_eval.update(enabled=profile != "smoke", eps=eps, norm="linf",
                         steps={"smoke": 2, "small": 20, "medium": 20, "paper": 50}[profile],
                         val_examples=0,
                         test_examples={"smoke": 0, "small": 359, "medium": 500, "paper": 2000}[profile],
                         batch_size=t.eval_batch_size)
    t.eval_every_epochs = t.num_epochs          # one evaluation, at the end of training
    t.log_every_steps = 50
    t.checkpoint.every_steps = 10_000
    # training devices: 1 at smoke (the tests fake 8 CPU devices; sharding tiny batches over them only
    # adds compile time), all available otherwise
    t.num_devices = 1 if profile == "smoke" else None
    c.train = t

    c.robust = ml_collections.ConfigDict({"objective": {
        "name": "pgd_at", "eps": eps, "norm": "linf",
        "steps": {"smoke": 1, "small": 5, "medium": 3, "paper": 10}[profile]}})
    c.bins = 70
    c.import_workdirs = ()
    c.pair_workdirs = ()
    return c
