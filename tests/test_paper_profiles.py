"""The GPU ("paper") profile of every study, exercised on CPU without data and without compiling.

For each study, ``training_configs`` of ``configs/<study>.py:paper`` is built with no dataset
reachable (the ``env`` fixture hides the shared data and TFDS), every distinct recipe
(:func:`jadv.studies.cost.recipe_key`) is checked (:func:`jadv.train.config.check_config`) and its
train step traced with ``jax.eval_shape`` (:func:`jadv.studies.cost.abstract_train_step`: the
model, state, objective, augmentation and step as the loop builds them), the model is the paper's
architecture, and every trained model has a well-formed quality gate with a source, looked up
with the study's own gate functions. Plus the hand counts of :mod:`jadv.studies.cost`.
"""
import importlib

import jax.numpy as jnp
import pytest

from jadv.data import DATASETS, TRAIN_SIZES
from jadv.studies import cost
from jadv.train.config import base_config, check_config

STUDIES = ("sketchy_channels", "tradeoff", "scale_properties", "filter_lens", "sharpness")


def _paper_config(load_repo_module, study):
    return load_repo_module(f"configs/{study}.py", f"config_paper_{study}").get_config("paper")


def _distinct(runs: dict) -> dict:
    """``{first run name: config}``, one per recipe (runs differing only in seed, size, eps, ...)."""
    out, seen = {}, set()
    for name, cfg in runs.items():
        key = cost.recipe_key(cfg)
        if key not in seen:
            seen.add(key)
            out[name] = cfg
    return out


def _spec_sources(specs: dict, study: str) -> None:
    for name, spec in specs.items():
        assert spec.get("source"), f"{study}: gate of {name!r} has no source"


# -- the architecture each study's paper profile trains -------------------------------------------
def _arch_sketchy_channels(name, cfg):
    assert cfg.model.name == "preact_resnet18", name


def _arch_sharpness(name, cfg):
    assert cfg.model.name == "preact_resnet18", name
    assert cfg.dataset == "cifar10", name


def _arch_filter_lens(name, cfg):
    assert cfg.model.name == "resnet18", name
    assert cfg.model.kwargs.get("stem") == "cifar", name


def _arch_scale_properties(name, cfg):
    assert cfg.model.name == "cifar_resnet", name
    depth = int(cfg.model.kwargs["depth"])
    assert depth == (int(name[1:]) if name in ("d56", "d110") else 20), name
    if cfg.objective.name in ("mbn", "advprop"):
        assert cfg.model.kwargs["norm"] == "dual_batch", name


def _arch_tradeoff(name, cfg):
    assert cfg.dataset == "cifar10", name
    assert cfg.model.name == "small_cnn", name
    assert dict(cfg.model.kwargs) == {"conv1_filters": 64, "widths": (128, 256), "hidden": 256}, name


# -- the gates, by the studies' own gate functions ------------------------------------------------
def _gates_sketchy_channels(config, runs):
    from jadv.studies import sketchy_channels as st

    specs = {}
    for d in config.datasets:
        specs.update(st.gate_specs(config, d))
    assert set(runs) <= set(specs), sorted(set(runs) - set(specs))
    return specs


def _gates_scale_properties(config, runs):
    from jadv.studies import scale_properties as st

    specs = st.gate_specs(config)
    assert {"mbn50/clean", "mbn50/adv", "advprop/clean", "advprop/adv"} <= set(specs)
    assert set(runs) == {label.split("/")[0] for label in specs}
    return specs


def _gates_filter_lens(config, runs):
    from jadv.studies import filter_lens as st

    assert not config.import_workdirs and not config.pair_workdirs
    assert set(runs) == set(st.KINDS) == {"standard", "robust"}
    return st.gate_specs(config, list(st.KINDS))


def _gates_sharpness(config, runs):
    from jadv.studies import sharpness as st

    specs = st.check_config_gates(config)
    for name, cfg in runs.items():
        eps = 0.0 if cfg.objective.name == "standard" else float(cfg.objective.eps)
        assert st.gate_name(eps, cfg.objective.name) in specs, name
    return specs


def _gates_tradeoff(config, runs):
    from jadv.studies import tradeoff as st

    st._check_gates(config)             # what run() checks first; reads no data (TRAIN_SIZES)
    n = TRAIN_SIZES[config.sweep.train.dataset]
    rows = {norm: st.sweep_grid(config.sweep.sizes, config.sweep.eps[norm], n, config.seed, proxy=norm == "linf")
            for norm in ("linf", "l2")}
    names = st.gated_sweep_models(rows, config.seed)
    specs = st.gate_specs(config, names)
    # the gated models are the full-size ones of each norm and the proxy, named as the sweep names them
    full = max(int(c.train_size) for c in runs.values())
    expected = set()
    for cfg in runs.values():
        if int(cfg.train_size) == full:
            norm = cfg.objective.norm if cfg.objective.name != "standard" else None
            eps = 0.0 if norm is None else float(cfg.objective.eps)
            proxy = int(cfg.seed) != int(config.seed)
            for nm in ((norm,) if norm else ("linf", "l2")):
                if not proxy or nm == "linf":
                    expected.add(st.sweep_model_name(nm, eps, full, proxy=proxy))
    assert "linf/eps0/n50000/proxy" in expected
    assert expected == set(names), sorted(expected ^ set(names))
    return {m: specs[m] for m in names}


_ARCH = {s: globals()[f"_arch_{s}"] for s in STUDIES}
_GATES = {s: globals()[f"_gates_{s}"] for s in STUDIES}


@pytest.mark.parametrize("study", STUDIES)
def test_paper_profile_traces_without_data(study, env, load_repo_module):
    config = _paper_config(load_repo_module, study)
    assert config.profile == "paper"
    runs = importlib.import_module(f"jadv.studies.{study}").training_configs(config)
    assert runs, study
    for name, cfg in runs.items():
        _ARCH[study](name, cfg)
        assert cost.total_steps(cfg) > 0, name
    _spec_sources(_GATES[study](config, runs), study)

    failures = {}
    for name, cfg in _distinct(runs).items():
        try:
            check_config(cfg)
            out = cost.abstract_train_step(cfg)
        except Exception as e:      # collect all, so one report names every recipe that fails
            failures[name] = f"{type(e).__name__}: {e}"
            continue
        metrics = out["metrics"]
        assert metrics["loss"].shape == () and metrics["loss"].dtype == jnp.float32, (name, metrics["loss"])
        for k, v in metrics.items():
            assert v.shape == () and jnp.issubdtype(v.dtype, jnp.floating), (name, k, v)
        assert {"grad_norm", "finite"} <= set(metrics), name
        assert out["num_params"] > 0 and out["model"] == cfg.model.name, name
        assert out["steps_per_epoch"] * int(cfg.batch_size) <= cost._train_size(cfg), name
        if cfg.model.name == "preact_resnet18":
            assert 11.0e6 < out["num_params"] < 11.3e6, (name, out["num_params"])     # 11.17M, 10 classes
        if cfg.model.name == "resnet18":
            assert 11.0e6 < out["num_params"] < 11.3e6, (name, out["num_params"])
    assert not failures, "paper recipes that do not trace:\n" + "\n".join(f"  {k}: {v}" for k, v in failures.items())


def test_train_sizes_cover_every_dataset():
    assert set(TRAIN_SIZES) == set(DATASETS)
    assert TRAIN_SIZES["cifar10"] == 50000 and TRAIN_SIZES["mnist"] == 60000


def test_train_sizes_match_the_embedded_datasets():
    from jadv import data as jdata

    for name in ("digits", "colored_digits"):
        assert len(jdata.load(name, "train")) == TRAIN_SIZES[name]


@pytest.mark.parametrize("objective,expected", [
    ({"name": "standard"}, 3.0),
    ({"name": "pgd_at", "steps": 10}, 23.0),        # 10 attack steps x 2 + forward/input/weight grads
    ({"name": "trades", "steps": 10}, 27.0),        # + clean targets and the clean forward of the update
    ({"name": "fgsm_rs"}, 5.0),                     # one attack step + the update
])
def test_forwards_per_image_hand_counts(objective, expected):
    assert cost.forwards_per_image(objective) == expected


def _steps_cfg(**kw):
    c = base_config()
    c.update(kw)
    return c


def test_total_steps():
    assert cost.total_steps(_steps_cfg(dataset="cifar10", num_steps=8000, num_epochs=3, batch_size=128)) == 8000
    assert cost.total_steps(_steps_cfg(dataset="cifar10", num_epochs=2, batch_size=128)) == 2 * (50000 // 128)
    # val_size is held out of the train split; with train_size set, the loop draws train_size + val_size
    assert cost.total_steps(_steps_cfg(dataset="digits", num_epochs=3, batch_size=64, val_size=100)) \
        == 3 * ((1438 - 100) // 64)
    assert cost.total_steps(_steps_cfg(dataset="mnist", num_epochs=2, batch_size=64, train_size=1000,
                                       val_size=200)) == 2 * (1000 // 64)
    assert cost.total_steps(_steps_cfg(dataset="mnist", num_epochs=1, batch_size=64), train_size=640) == 10


def test_recipe_key_ignores_seed_size_and_eps():
    a = _steps_cfg(dataset="cifar10", num_epochs=2, batch_size=128)
    a.objective.update(name="pgd_at", eps=8 / 255, steps=10)
    b = a.copy_and_resolve_references()
    b.update(seed=3, train_size=1000)
    b.objective.eps = 4 / 255
    assert cost.recipe_key(a) == cost.recipe_key(b)
    b.objective.steps = 7
    assert cost.recipe_key(a) != cost.recipe_key(b)
