"""Study 5, sharpness: adversarial training sharpens the weight loss landscape.

Reproduces Yamada et al. 2021, "Adversarial Training Makes Weight Loss Landscape Sharper in
Logistic Regression" (arXiv:2102.02950), in closed form for linear logistic regression and with
Lanczos/Hutchinson/SLQ for softmax networks, and Wu, Xia & Wang 2020, "Adversarial Weight
Perturbation Helps Robust Generalization" (AWP, NeurIPS 2020): AWP flattens the robust loss
landscape and shrinks the robust generalisation gap.

``run(config, workdir)`` runs the study; ``claims(config, results)`` derives its verdicts again
from saved results (the network claims are decided only on networks that met their quality
gates, ``config.gates``; :mod:`jadv.studies.gates`). The measurements are public functions for
one's own models:

* :func:`logistic_sharpness` (with :func:`toy_data`, :func:`binary_features`): exact and
  fixed-x_adv Hessians of adversarial logistic regression at the minimiser, for an eps grid;
* :func:`adversarial_hessian`, :func:`adversarial_spectral_density`: top eigenvalue, trace and
  eigenvalue density of a network's adversarial training loss (:func:`pgd_attack` builds the
  attack);
* :func:`landscape_curves`, :func:`local_curvature`: clean and re-attacked robust 1-D landscapes
  and their curvature at the centre; :func:`clean_and_robust_accuracy`.

Submodules: :mod:`~jadv.studies.sharpness.measure` (measurements),
:mod:`~jadv.studies.sharpness.verdicts` (claims), :mod:`~jadv.studies.sharpness.plots` (figures).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jadv.studies.common import cached_part, check_single_process, finish, to_jsonable, train_model
from jadv.studies.sharpness.measure import (adversarial_hessian, adversarial_spectral_density, binary_features,
                                            clean_and_robust_accuracy, landscape_curves, local_curvature,
                                            logistic_sharpness, pgd_attack, toy_data)
from jadv.studies.sharpness.verdicts import STUDY, check_config_gates, claims, gate_name, model_tag

__all__ = ["training_configs", "run", "claims", "training_config", "model_tag", "gate_name", "toy_data", "binary_features",
           "logistic_sharpness", "pgd_attack", "adversarial_hessian", "adversarial_spectral_density",
           "landscape_curves", "local_curvature", "clean_and_robust_accuracy"]

TOY_INFORMATIVE = 5      # the toy's signal coordinates (toy_data's default)


def run(config, workdir: str) -> dict:
    """Run the sharpness study: fit, train, measure, plot, judge; returns the study record.

    **Part 1, adversarial linear logistic regression** (closed form, float64): for every dataset
    of ``config.logistic.datasets`` ("toy": two overlapping Gaussians, d = 20, 5 informative
    coordinates; "digits": scikit-learn's embedded 8x8 digits 5 vs 7; "mnist": MNIST 5 vs 7) and
    both threat models (L2, Linf), the adversarial minimiser for every eps of
    ``config.logistic.eps_grid[dataset][norm]`` as one vmapped program, with lambda_max and trace
    of the exact and the fixed-x_adv Hessian, ||w*|| and the smallest eigenvalue of exact - fixed
    (:func:`logistic_sharpness`).

    **Part 2, softmax networks** (``config.network``): one model per eps of ``eps_grid`` trained
    with ``norm`` PGD-AT (eps 0: standard training) and one with AWP around PGD-AT at ``awp_eps``,
    all from the recipe ``network.train`` (:func:`training_config`). For each model: top Hessian
    eigenvalue (Lanczos) and Hutchinson trace of the adversarial training loss with x_adv fixed at
    the trained weights, BN eval, on a fixed training subset whose indices and seed are recorded
    (:func:`adversarial_hessian`); clean and robust (re-attacked at every alpha) 1-D
    filter-normalised landscapes and their local curvature (:func:`landscape_curves`); PGD
    accuracy on training and test images, i.e. the robust generalisation gap
    (:func:`clean_and_robust_accuracy`); and the SLQ spectral density of the largest-eps model.

    Claims (see :func:`claims`): 5.1, 5.1b, 5.3, 5.4 per logistic dataset (analytic: no gate);
    5.5 and 5.6 for the networks, each network gated (``config.gates[gate_name(eps, objective)]``,
    :mod:`jadv.studies.gates`) on its clean test accuracy and, for eps > 0, its PGD test accuracy
    at the training eps (``test_clean_acc``, ``test_robust_acc`` of its row); a network below its
    gate makes the claims resting on it "inconclusive" (so at ``smoke``, 3 training steps).

    Args:
      config: ``configs/sharpness.py:get_config(profile)``, profile smoke / small / medium /
        paper; its docstring lists the fields. ``config.data_dir``: raw data for MNIST/CIFAR-10.
        ``config.gates``: a gate for every network (checked first: ValueError if one is missing).
      workdir: output directory. Resumable: each finished part is cached in
        ``workdir/parts/<name>.json`` and each network's training run in ``workdir/models/<tag>``,
        so a rerun redoes only what is missing.

    Writes:
      ``results.json`` (the record), ``claims.json``, ``parts/*.json``, ``models/<tag>/`` (jadv
      training workdirs) and the figures ``logistic_<dataset>_<norm>_lambda_max.png``,
      ``network_lambda_max_vs_eps.png``, ``network_trace_vs_eps.png``, ``network_density.png``,
      ``network_landscape_standard_vs_at.png``, ``network_landscape_awp.png``.

    Returns:
      ``{"study": "sharpness", "results", "claims", "figures"}``; ``results`` has one entry
      ``logistic_<dataset>_<norm>`` per sweep (lists over eps) and ``network`` (``setup``: the
      measurement protocol, ``models``: one row per model tag, ``density``).
    """
    check_single_process("sharpness")
    from jadv.studies.sharpness import plots

    check_config_gates(config)
    os.makedirs(workdir, exist_ok=True)
    results, figures = {}, []
    lc = config.logistic
    for ds_name in lc.datasets:
        for norm in ("l2", "linf"):
            part = f"logistic_{ds_name}_{norm}"
            res = cached_part(workdir, part, lambda ds_name=ds_name, norm=norm: _logistic_part(
                lc, config.data_dir, ds_name, norm))
            results[part] = res
            figures.append(plots.plot_logistic(res, os.path.join(workdir, f"{part}_lambda_max.png"),
                                               dataset=ds_name, norm=norm))
    results["network"], density = _network_part(config, workdir)
    figures += plots.plot_network(results["network"], density, workdir, config.network)
    return finish(workdir, STUDY, results, claims(config, results), figures)


def _logistic_part(lc, data_dir, ds_name: str, norm: str) -> dict:
    if ds_name == "toy":
        x, y = toy_data(lc.toy_n, informative=TOY_INFORMATIVE)
    else:
        x, y = binary_features(ds_name, data_dir, lc.n_max)
    res = logistic_sharpness(x, y, list(lc.eps_grid[ds_name][norm]), norm=norm, l2_reg=lc.l2_reg[ds_name],
                             iters=lc.iters, informative=TOY_INFORMATIVE if ds_name == "toy" else None)
    res.pop("w")
    return res


# ----------------------------------------------------------------------------------------------
# Part 2: networks
# ----------------------------------------------------------------------------------------------

def training_config(ncfg, eps: float, objective: str, data_dir=None):
    """The training config of one network: ``ncfg.train`` with the objective of (eps, objective).

    eps 0 (or ``objective="standard"``): standard training; otherwise ``objective`` ("pgd_at" or
    "awp" around PGD-AT, gamma ``ncfg.awp_gamma``, no warm-up) with ``ncfg.norm`` PGD of
    ``ncfg.attack_steps`` steps from x (zero init), step 2.5 eps / steps.
    """
    c = ncfg.train.copy_and_resolve_references()
    if data_dir:
        c.data_dir = data_dir
    if objective == "standard" or eps == 0:
        c.objective.name = "standard"
    else:
        c.objective.update(name=objective, eps=float(eps), norm=ncfg.norm, steps=int(ncfg.attack_steps),
                           step_size=2.5 * float(eps) / int(ncfg.attack_steps), init="zero")
        if objective == "awp":
            c.objective.update(awp_inner="pgd_at", awp_gamma=float(ncfg.awp_gamma), awp_warmup_epochs=0.0)
    return c


def training_configs(config) -> dict:
    """``{model tag: jadv.train config}`` of every network of the study (the eps grid and AWP), for
    :mod:`jadv.studies.cost`."""
    from jadv.studies.sharpness.verdicts import model_tag

    ncfg = config.network
    return {model_tag(eps, obj): training_config(ncfg, eps, obj, config.data_dir) for eps, obj in _runs(ncfg)}


def _runs(ncfg) -> list[tuple[float, str]]:
    """(eps, objective) of every network, without duplicates, in training order."""
    runs = {}
    for eps, objective in [(float(e), "pgd_at") for e in ncfg.eps_grid] + [(float(ncfg.awp_eps), "awp")]:
        runs.setdefault(model_tag(eps, objective), (eps, objective))
    return list(runs.values())


def _network_data(ncfg, data_dir):
    """Training and test images as float arrays, with the training subset the loop uses."""
    from jadv import data as jdata

    root = data_dir or ncfg.train.data_dir
    train_ds = jdata.load(ncfg.train.dataset, "train", data_dir=root)
    test_ds = jdata.load(ncfg.train.dataset, "test", data_dir=root)
    if ncfg.train.train_size:   # the subset the training loop uses (same call, same seed)
        train_ds = jdata.subset(train_ds, int(ncfg.train.train_size), key_or_seed=ncfg.train.seed)
    return (np.asarray(jdata.to_float(train_ds.images)), train_ds.labels,
            np.asarray(jdata.to_float(test_ds.images)), test_ds.labels)


def _programs(apply_fn, ncfg):
    """The jitted measurements, built once per architecture (variables, data, eps, key as arguments)."""
    from functools import partial

    attack = {"norm": ncfg.norm, "attack_steps": int(ncfg.attack_steps)}
    return {
        "hessian": jax.jit(partial(adversarial_hessian, apply_fn, **attack, lanczos_iters=int(ncfg.lanczos_iters),
                                   trace_samples=int(ncfg.trace_samples))),
        "density": jax.jit(partial(adversarial_spectral_density, apply_fn, **attack, order=int(ncfg.density_order),
                                   grid_size=2000)),
        "curves": jax.jit(partial(landscape_curves, apply_fn, **attack)),
        "acc": jax.jit(partial(clean_and_robust_accuracy, apply_fn, norm=ncfg.norm,
                               steps=int(ncfg.eval_attack_steps))),
    }


def _network_part(config, workdir):
    """Train (resumably) the eps-grid and AWP models and measure them; returns (results, density)."""
    from jadv.analysis import filter_normalized_direction

    ncfg = config.network
    xtr, ytr, xte, yte = _network_data(ncfg, config.data_dir)
    rng = np.random.default_rng(ncfg.hessian_seed)
    h_idx = np.sort(rng.choice(len(ytr), size=min(int(ncfg.hessian_n), len(ytr)), replace=False))
    l_idx = h_idx[:int(ncfg.landscape_n)]
    g_idx = np.sort(rng.choice(len(ytr), size=min(int(ncfg.gap_n), len(ytr)), replace=False))
    te_n = min(int(ncfg.gap_n), len(yte))
    key = jax.random.key(ncfg.hessian_seed)
    alphas = np.linspace(-ncfg.landscape_span, ncfg.landscape_span, int(ncfg.landscape_points))
    models, progs = {}, {}

    def load(eps, objective):
        tag = model_tag(eps, objective)
        if tag not in models:
            model, variables, train_res = train_model(training_config(ncfg, eps, objective, config.data_dir),
                                                      os.path.join(workdir, "models", tag))
            models[tag] = (variables, train_res)
            if not progs:           # every model of the study has the same architecture
                progs.update(_programs(model.apply, ncfg))
        return models[tag]

    def measure(eps, objective):
        tag = model_tag(eps, objective)
        variables, train_res = load(eps, objective)
        e = jnp.float32(eps)
        h = progs["hessian"](variables, jnp.asarray(xtr[h_idx]), jnp.asarray(ytr[h_idx]), eps=e, key=key)
        # 1-D landscapes along filter-normalised directions (robust curve of the standard model: awp_eps)
        lx, ly = jnp.asarray(xtr[l_idx]), jnp.asarray(ytr[l_idx])
        land_eps = e if eps > 0 else jnp.float32(ncfg.awp_eps)
        clean_c, robust_c = [], []
        for j in range(int(ncfg.landscape_directions)):
            d = filter_normalized_direction(variables["params"], jax.random.fold_in(key, 100 + j), ignore="biasbn")
            c, r = progs["curves"](variables, lx, ly, d, alphas, eps=land_eps, key=key)
            clean_c.append(np.asarray(c))
            robust_c.append(np.asarray(r))
        clean_c, robust_c = np.mean(clean_c, 0), np.mean(robust_c, 0)
        # clean and PGD accuracy (at the training eps; awp_eps for the standard model), train vs test
        tr_c, tr_r = (float(a) for a in progs["acc"](variables, jnp.asarray(xtr[g_idx]), jnp.asarray(ytr[g_idx]),
                                                     eps=land_eps, key=key))
        te_c, te_r = (float(a) for a in progs["acc"](variables, jnp.asarray(xte[:te_n]), jnp.asarray(yte[:te_n]),
                                                     eps=land_eps, key=key))
        return {"tag": tag, "eps": eps, "objective": "standard" if eps == 0 else objective,
                "lambda_max": float(h["lambda_max"]), "trace": float(h["trace"]),
                "trace_stderr": float(h["trace_stderr"]), "adv_loss_on_subset": float(h["adv_loss"]),
                "landscape_eps": float(land_eps), "clean_curve": clean_c, "robust_curve": robust_c,
                "clean_curvature": local_curvature(alphas, clean_c, ncfg.curvature_span),
                "robust_curvature": local_curvature(alphas, robust_c, ncfg.curvature_span),
                "robust_rise_mean": float(np.mean(robust_c - robust_c[len(alphas) // 2])),
                "train_clean_acc": tr_c, "train_robust_acc": tr_r, "test_clean_acc": te_c, "test_robust_acc": te_r,
                "robust_gap": tr_r - te_r, "train_results": {k: v for k, v in train_res.items()
                                                             if isinstance(v, (int, float, str))}}

    rows = {model_tag(eps, obj): cached_part(workdir, f"network_{model_tag(eps, obj)}",
                                             lambda eps=eps, obj=obj: measure(eps, obj))
            for eps, obj in _runs(ncfg)}
    top_eps = float(max(ncfg.eps_grid))
    top = model_tag(top_eps, "pgd_at")

    def density():   # spectral density of the largest-eps PGD-AT model
        variables, _ = load(top_eps, "pgd_at")
        grid, dens = progs["density"](variables, jnp.asarray(xtr[h_idx]), jnp.asarray(ytr[h_idx]),
                                      eps=jnp.float32(top_eps), key=key)
        return {"grid": np.asarray(grid), "density": np.asarray(dens), "model": top}

    dens = cached_part(workdir, "network_density", density)
    setup = {"dataset": ncfg.train.dataset, "model": ncfg.train.model.name,
             "model_kwargs": dict(ncfg.train.model.kwargs),
             "norm": ncfg.norm, "hessian": "fixed_xadv", "bn_mode": "eval", "lanczos_iters": int(ncfg.lanczos_iters),
             "hessian_subset_seed": int(ncfg.hessian_seed), "hessian_subset_indices": h_idx,
             "landscape_subset_indices": l_idx, "gap_train_indices": g_idx, "gap_test_first_n": te_n,
             "alphas": alphas, "attack_steps": int(ncfg.attack_steps), "eval_attack_steps": int(ncfg.eval_attack_steps),
             "direction": "filter-normalised Gaussian, biases/BN ignored", "directions": int(ncfg.landscape_directions)}
    return to_jsonable({"setup": setup, "models": rows, "density": {"model": dens["model"]}}), dens
