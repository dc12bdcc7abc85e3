"""The base training config shared by every config file in ``configs/``, and the profile names.

Every config file, for training (``configs/mnist_pgd_at.py``) or for a study
(``configs/tradeoff.py``), takes one of the :data:`PROFILES`, named by the scale of the work, as
the ``:profile`` suffix of ``--config configs/X.py:profile``:

``smoke``   seconds: the tests run it.
``small``   minutes on a 2-core CPU, data that needs no download (embedded digits, generated
            distributions): the README's main job.
``medium``  hours on a 2-core CPU (minutes on a GPU): MNIST and CIFAR-10 from the data dir.
``paper``   the published recipes and architectures: a GPU or TPU for hours.

Config files call :func:`base_config` and override fields.
"""
from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

PROFILES = ("smoke", "small", "medium", "paper")
# the names used before the four scales were agreed, for a clear error
_RENAMED = {"default": "small", "cpu": "medium", "full": "paper"}


def check_profile(profile: str, default: str = "medium", allowed: tuple = PROFILES) -> str:
    """The profile name (``default`` when empty); ValueError for a name not in :data:`PROFILES` or
    not in ``allowed`` (the profiles a config file defines)."""
    profile = profile or default
    if profile not in PROFILES:
        hint = f" ({profile!r} is now {_RENAMED[profile]!r})" if profile in _RENAMED else ""
        raise ValueError(f"unknown profile {profile!r}{hint}; allowed: {', '.join(PROFILES)}")
    if profile not in allowed:
        raise ValueError(f"this config has no {profile!r} profile; it defines {', '.join(allowed)}")
    return profile


def base_config() -> ml_collections.ConfigDict:
    """Every field the loop reads, with defaults; config files override what they need."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # data
    c.dataset = "mnist"
    c.data_dir = placeholder(str)              # falls back to $JADV_DATA_DIR, then ../shared/data
    c.train_size = placeholder(int)            # class-balanced subset of the training split (None: all)
    c.val_size = 0                  # held out from train for checkpoint selection (never test)
    c.test_size = placeholder(int)             # evaluate on the first N test images (None: all)
    c.augment = ml_collections.ConfigDict({"crop_flip": False, "padding": 4})
    # model
    c.model = ml_collections.ConfigDict({"name": "small_cnn", "kwargs": {}, "mean": None,
                                         "std": None, "dtype": "float32"})
    # objective (see jadv.train.objectives)
    # Adversarial fields left None take the method's documented default (see make_objective);
    # the loop writes the resolved values into config.json.
    c.objective = ml_collections.ConfigDict({
        "name": "standard", "label_smoothing": 0.0,
        # inner attack (pgd_at, fgsm_rs, trades, mart, alp, ratio, mbn, advprop, awp); free_at: eps
        "eps": placeholder(float), "step_size": placeholder(float), "steps": placeholder(int),
        "norm": "linf", "init": placeholder(str),
        "attack_bn_mode": placeholder(str),    # "eval" | "train_no_update" | "train"
        "eps_warmup_epochs": 0.0,              # linear eps (and step-size) ramp over these epochs
        # ignored: the attack loops no longer unroll (jadv._cpu_loops says why); kept so that config
        # files and saved config.json files that set it still load
        "attack_unroll": False,
        "beta": placeholder(float),            # trades/mart (default 6)
        "replays": placeholder(int),           # free_at m (default 8)
        "ratio": placeholder(float),           # ratio/mbn: clean share of each batch (default 0.5)
        "alp_weight": placeholder(float),      # alp lambda (default 0.5)
        "clean_weight": placeholder(float),    # alp clean CE weight (default 0.5)
        "awp_inner": "pgd_at", "awp_gamma": placeholder(float),
        "awp_warmup_epochs": placeholder(float), "awp_proxy_lr": 0.01})
    c.eval_bn_set = "clean"        # BN set used for evaluation ("adv" only for dual-BN models)
    # Per-epoch robust evaluation (PGD, running BN statistics) on a fixed held-out subset of the
    # val split -> "val_robust_accuracy" (use it as checkpoint.best_metric; never select on test).
    # test_examples > 0 also logs "test_subset_robust_accuracy" on the first N test images.
    # enabled None: on when the objective is adversarial; eps/norm None: the objective's.
    c.robust_eval = ml_collections.ConfigDict({
        "enabled": placeholder(bool), "eps": placeholder(float), "steps": 10,
        "step_size": placeholder(float),       # None: 2.5 * eps / steps
        "norm": placeholder(str), "val_examples": 512, "test_examples": 0, "batch_size": 256})
    # Catastrophic-overfitting early stop of Wong et al. 2020 (for fgsm_rs): after each epoch,
    # PGD-`steps` on that epoch's first training batch (augmented, batch BN statistics); stop and
    # keep the previous epoch's weights when robust accuracy drops by more than `drop`.
    c.early_stop = ml_collections.ConfigDict({"enabled": False, "steps": 5,
                                              "step_size": placeholder(float),  # None: eps / 4
                                              "drop": 0.2,
                                              # "train_no_update": batch statistics, as the
                                              # reference (model left in train mode); or "eval"
                                              "bn_mode": "train_no_update"})
    # optimisation
    c.batch_size = 128
    c.num_epochs = 1
    c.num_steps = placeholder(int)             # overrides num_epochs when set
    c.optimizer = ml_collections.ConfigDict({
        "name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
        "weight_decay_kernels_only": False, "schedule": "onecycle", "decay_at": (0.5, 0.75),
        "decay_factor": 0.1, "warmup_fraction": 0.0, "peak_fraction": 0.4, "grad_clip": placeholder(float)})
    c.ema_decay = placeholder(float)
    # devices
    c.num_devices = placeholder(int)           # data parallel over this many devices (None: all)
    # logging, evaluation, checkpoints
    c.log_every_steps = 50
    # also write metrics.jsonl's numbers as TensorBoard event files (<workdir>/tensorboard/, via
    # clu's metric writers: needs pip install 'jadv[tensorboard]'); logging only, free to change on resume
    c.tensorboard = False
    c.eval_every_epochs = 1
    c.eval_batch_size = 500
    c.checkpoint = ml_collections.ConfigDict({"every_steps": 500, "keep": 2,
                                              "best_metric": placeholder(str), "best_mode": "max"})
    return c


# -- checking a config ------------------------------------------------------------------------
# Keys a training config may hold beyond those of base_config():
FREE_FORM = ("model.kwargs",)           # the model's constructor arguments (each model has its own)
RESOLVED = ("num_classes", "input_shape")  # written by resolve_config into config.json, so a saved
                                           # config.json can be fed back to train_and_evaluate


def _flat_keys(config, prefix: str = "") -> list[str]:
    out = []
    for k, v in config.items():
        name = f"{prefix}{k}"
        out.append(name)
        if isinstance(v, ml_collections.ConfigDict) and name not in FREE_FORM:
            out += _flat_keys(v, f"{name}.")
    return out


def unknown_keys(config) -> list[str]:
    """Dotted names of the keys of ``config`` that ``base_config()`` lacks (with a "did you
    mean" where a known key is close); ``model.kwargs`` is free-form."""
    import difflib

    base = base_config()
    known = _flat_keys(base)
    problems = []

    def walk(cfg, ref, prefix):
        for k, v in cfg.items():
            name = f"{prefix}{k}"
            if name in FREE_FORM or (not prefix and k in RESOLVED):
                continue
            if k not in ref:
                siblings = list(ref.keys())
                close = difflib.get_close_matches(k, siblings, n=1, cutoff=0.6)
                hint = [f"{prefix}{c}" for c in close] or [
                    n for n in known if n.rsplit(".", 1)[-1] == k] or difflib.get_close_matches(
                    name, known, n=1, cutoff=0.75)
                problems.append(name + (f" (did you mean {hint[0]}?)" if hint else ""))
                continue
            if isinstance(v, ml_collections.ConfigDict) and isinstance(ref[k], ml_collections.ConfigDict):
                walk(v, ref[k], f"{name}.")

    walk(config, base, "")
    return problems


def _is_int(v) -> bool:
    import numbers
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    import numbers
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_config(config) -> None:
    """``ValueError`` naming the field and what is allowed for a config the loop cannot run.

    Checked before anything is written to a workdir: unknown keys (compared with
    :func:`base_config`, recursively; ``model.kwargs`` is free-form and ``num_classes`` /
    ``input_shape`` may come from a saved config.json), and the sizes and periods that would make
    the loop train nothing, divide by zero or loop forever.
    """
    unknown = unknown_keys(config)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}; the allowed keys are those of "
                         "jadv.train.config.base_config() (model.kwargs is free-form)")
    problems = []

    def need(ok: bool, field: str, allowed: str):
        if not ok:
            value = config
            for part in field.split("."):
                value = value[part]
            problems.append(f"{field}={value!r} ({allowed})")

    def positive_int(field, *, none_ok=False, minimum=1):
        value = config
        for part in field.split("."):
            value = value[part]
        ok = (value is None and none_ok) or (_is_int(value) and value >= minimum)
        need(ok, field, f"allowed: an integer >= {minimum}" + (" or None" if none_ok else ""))

    positive_int("num_steps", none_ok=True)
    if config.num_steps is None:
        positive_int("num_epochs")
    positive_int("batch_size")
    positive_int("eval_batch_size")
    positive_int("log_every_steps")
    positive_int("checkpoint.every_steps")
    positive_int("checkpoint.keep")
    positive_int("train_size", none_ok=True)
    positive_int("test_size", none_ok=True)
    positive_int("val_size", minimum=0)
    positive_int("robust_eval.batch_size")
    positive_int("robust_eval.val_examples", minimum=0)
    positive_int("robust_eval.test_examples", minimum=0)
    need(_is_number(config.eval_every_epochs) and config.eval_every_epochs > 0, "eval_every_epochs",
         "allowed: a number > 0")
    need(config.checkpoint.best_mode in ("max", "min"), "checkpoint.best_mode", "allowed: 'max', 'min'")
    need(_is_int(config.seed), "seed", "allowed: an integer")
    if problems:
        raise ValueError("bad training config: " + "; ".join(problems))
