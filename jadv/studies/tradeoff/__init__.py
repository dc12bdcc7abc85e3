"""Study 2: robustness may be at odds with accuracy (Tsipras et al., ICLR 2019).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy", ICLR
2019 (arXiv:1805.12152). ``record = run(config, workdir)`` with ``config =
configs/tradeoff.py:get_config(profile)``; ``claims(config, record["results"])`` derives the
verdicts again. The measurement functions work on any data and models:

* :func:`train_linear_many`, :func:`linear_accuracies`: M linear models trained on the exact
  adversarial loss, and evaluated exactly, in one program each;
* :func:`train_many`, :func:`evaluate_many`: M small networks PGD-trained (each its own eps_train,
  training-set size and seed) and evaluated under PGD in one program each;
* :func:`theorem_2_1_sweep`, :func:`theory_measurements`, :func:`binary_measurements`,
  :func:`sweep_measurements`, :func:`saliency_measurements`: the four parts of the study;
* :func:`sweep_model_name`, :func:`gated_sweep_models`, :func:`sweep_gate_measurements`,
  :func:`gate_specs`, :func:`gate_records`: the quality gates of the sweep networks
  (:mod:`jadv.studies.gates`).
"""
from __future__ import annotations

import os
import time

from jadv.studies.common import cached_part, check_single_process, finish
from jadv.studies.tradeoff.linear import binary_5_vs_7, binary_measurements, linear_accuracies, train_linear_many
from jadv.studies.tradeoff.sweeps import (SALIENCY_FIGURES, SWEEP_RECIPE_FIELDS, evaluate_many, gated_sweep_models,
                                          load_sweep_params, plot_sweeps, saliency_measurements, sweep_data,
                                          sweep_gate_measurements, sweep_grid, sweep_measurements, sweep_model_name,
                                          sweep_pgd, sweep_recipe, sweep_table, train_many)
from jadv.studies.tradeoff.theory import theorem_2_1_sweep, theory_measurements
from jadv.studies.tradeoff.verdicts import PAPER, STUDY, claims, gate_records, gate_specs

__all__ = ["training_configs", "run", "claims", "STUDY", "PAPER", "FIGURES",
           "train_linear_many", "linear_accuracies", "binary_5_vs_7", "binary_measurements",
           "theorem_2_1_sweep", "theory_measurements",
           "SWEEP_RECIPE_FIELDS", "sweep_recipe", "sweep_pgd", "train_many", "evaluate_many", "sweep_data",
           "sweep_grid", "sweep_measurements", "load_sweep_params", "sweep_table", "plot_sweeps",
           "saliency_measurements", "sweep_model_name", "gated_sweep_models", "sweep_gate_measurements",
           "gate_specs", "gate_records"]

FIGURES = ("binary_weight_maps.png", "binary_corr_vs_weight.png", "binary_top_k.png", "accuracy_vs_size.png",
           "accuracy_vs_eps.png") + SALIENCY_FIGURES


def _binary_figures(bi: dict, workdir: str) -> list[str]:
    import numpy as np

    from jadv.viz.features import plot_correlation_vs_weight, plot_top_k_curves, plot_weight_maps

    m, at = bi["models"], bi["at_index"]
    w, corr = np.asarray(m["w"]), np.asarray(bi["corr"])
    labels = {f"eps {e:g}" if e else "standard": w[i] for i, e in enumerate(m["eps_train"]) if i in (0, at)}
    tk = bi["top_k"]
    return [
        plot_weight_maps(labels, os.path.join(workdir, "binary_weight_maps.png"), shape=tuple(bi["shape"]),
                         corr=corr, title=f"{bi['dataset']} 5 vs 7: linear weights"),
        plot_correlation_vs_weight(corr, labels, os.path.join(workdir, "binary_corr_vs_weight.png"),
                                   title=f"{bi['dataset']} 5 vs 7: |corr(x_i, y)| vs weight"),
        plot_top_k_curves({"standard": {"k": tk["k"], **tk["standard_model"]},
                           f"L-inf AT eps {tk['eps_test']:g}": {"k": tk["k"], **tk["at_model"]}},
                          os.path.join(workdir, "binary_top_k.png"),
                          title=f"top-k correlated pixels, robust at eps {tk['eps_test']:g}"),
    ]


def _check_gates(config) -> None:
    """ValueError, before any training, unless ``config.gates`` states a well-formed gate for
    every gated sweep model of ``config`` (:func:`gated_sweep_models`)."""
    from jadv.data import TRAIN_SIZES

    n_train = TRAIN_SIZES[config.sweep.train.dataset]
    rows = {norm: sweep_grid(config.sweep.sizes, config.sweep.eps[norm], n_train, config.seed, proxy=norm == "linf")
            for norm in ("linf", "l2")}
    gate_specs(config, gated_sweep_models(rows, config.seed))


def training_configs(config) -> dict:
    """One ``jadv.train`` config per sweep network (``config.sweep.train`` at its eps_train and norm;
    eps 0 = standard), ``{"<norm>/eps<e>/n<size>": config}``, for cost estimates
    (:mod:`jadv.studies.cost`). The sweep trains them side by side in one program per norm
    (:func:`jadv.studies.tradeoff.sweeps.train_many`), so timing them one by one gives an upper
    bound. The linear models of parts 1-2 are not listed (seconds)."""
    from jadv.data import TRAIN_SIZES
    from jadv.studies.tradeoff.sweeps import sweep_grid

    n_train = TRAIN_SIZES[config.sweep.train.dataset]
    out = {}
    for norm in ("linf", "l2"):
        for size, eps, seed in sweep_grid(config.sweep.sizes, config.sweep.eps[norm], n_train, config.seed,
                                          proxy=norm == "linf"):
            c = config.sweep.train.copy_and_resolve_references()
            c.update(seed=int(seed), train_size=int(size), data_dir=config.data_dir)
            if eps > 0:
                c.objective.update(eps=float(eps), norm=norm)
            else:
                c.objective.name = "standard"
            out[f"{norm}/eps{eps:g}/n{size}/s{seed}"] = c
    return out


def run(config, workdir: str) -> dict:
    """Reproduce the claims of Tsipras et al. 2019 ("Robustness May Be at Odds with Accuracy",
    ICLR 2019, arXiv:1805.12152) at the scale of ``config`` and write them into ``workdir``.

    ``config = configs/tradeoff.py:get_config(profile)``, profile ``smoke`` (seconds), ``small``
    (generated data and embedded 8x8 digits, minutes on a CPU), ``medium`` (MNIST from the data
    dir) or ``paper``.

    Four parts, each cached in ``workdir/parts/<part>.json`` (a rerun reuses finished parts, so a
    killed run resumes):

    1. ``theory`` (claims 2.11-2.13; ``config.theory``): on the data model of eq. (3) (``d``,
       ``p``, ``eta``), exact accuracies of linear classifiers against Monte-Carlo estimates on
       ``n_test`` fresh samples: the averaging classifier, ``sign(x_1)`` at radii ``sign_eps``, a
       sweep of ``sweep_points`` directions against the bound of Theorem 2.1, and linear models
       trained on ``n_train`` samples at every ``eps_train`` (Theorem 2.2; ``steps``, ``lr``,
       ``l2_reg``), one program.
    2. ``binary`` (claim 2.14; ``config.binary``): 5 vs 7 of ``dataset`` ("digits" embedded 8x8,
       or "mnist"); linear models for the L-inf grid ``eps_train`` (one program) and top-k-feature
       models (``ks``; standard and at ``eps_at``; :func:`jadv.analysis.top_k_curve`); label
       correlation vs weight, sparsity (``sparsity_rel``), Spearman(|w|, |corr|), top-k curves.
    3. ``sweep_linf`` / ``sweep_l2`` (claims 2.15, 2.16; ``config.sweep``): small networks
       PGD-trained for every training-set size of ``sizes`` and eps_train of ``eps[norm]``, one
       program per norm; their recipe is ``sweep.train``, a :func:`jadv.train.config.base_config`
       (dataset, test_size, model, batch_size, num_steps, optimizer, objective.steps: see
       :func:`sweep_recipe`); standard and PGD accuracy (``eval_attack_steps``) on the test set.
    4. ``saliency`` (claims 2.17, 2.17b; ``config.saliency``): input gradients of the standard
       and AT (``linf_eps``, ``l2_eps``) full-size models and their alignment with Sobel edges on
       ``n`` test images; large-eps L2 targeted examples (``large_eps``, ``large_steps``,
       ``n_large``) judged by a proxy standard model of another seed; interpolations
       (``interp_alphas``; ``n_show`` images in the figures).

    ``config.seed`` seeds everything; ``config.data_dir`` is where MNIST is read (None:
    ``$JADV_DATA_DIR``, then ``../shared/data``); ``config.profile`` names the command in the
    claims. ``config.gates`` (``{model: gate}``, :mod:`jadv.studies.gates`) states the quality
    gate of every full-training-set sweep model and the proxy (names :func:`sweep_model_name`);
    they are checked before any training (ValueError if one is missing or malformed), and the
    claims on those models are "inconclusive" when one misses its gate (:func:`claims`).

    Writes into ``workdir``: ``results.json`` (the record), ``claims.json``, the figures
    :data:`FIGURES`, and ``parts/`` (the cached parts and the sweeps' stacked parameters,
    ``sweep_<norm>_params.npz``).

    Returns the record ``{"study", "results", "claims", "figures"}``; ``results`` has ``theory``,
    ``binary`` (without the per-pixel correlation), ``sweeps`` (``linf``, ``l2``), ``saliency``,
    ``gate_measurements`` (``{model: {"clean", "robust"}}`` of the gated sweep models,
    :func:`sweep_gate_measurements`) and ``wall_time_s_this_call`` (seconds per part; ~0 for a
    part read from the cache).
    """
    check_single_process("tradeoff")
    _check_gates(config)
    os.makedirs(os.path.join(workdir, "parts"), exist_ok=True)
    timings = {}

    def part(name, compute):
        t0 = time.time()
        out = cached_part(workdir, name, compute)
        timings[name] = round(time.time() - t0, 2)
        return out

    results, figures = {}, []
    results["theory"] = part("theory", lambda: theory_measurements(config.theory, config.seed))
    bi = part("binary", lambda: binary_measurements(config.binary, config.data_dir))
    results["binary"] = {k: v for k, v in bi.items() if k != "corr"}
    figures += _binary_figures(bi, workdir)
    sweeps = {norm: part(f"sweep_{norm}", lambda norm=norm: sweep_measurements(config, norm, workdir))
              for norm in ("linf", "l2")}
    results["sweeps"] = sweeps
    results["gate_measurements"] = sweep_gate_measurements(sweeps, config.seed)
    figures += plot_sweeps(sweeps, config.seed, os.path.join(workdir, "accuracy_vs_size.png"),
                           os.path.join(workdir, "accuracy_vs_eps.png"), config.sweep.train.dataset)
    results["saliency"] = part("saliency", lambda: saliency_measurements(config, workdir, sweeps))
    figures += [os.path.join(workdir, f) for f in SALIENCY_FIGURES]
    results["wall_time_s_this_call"] = timings
    return finish(workdir, STUDY, results, claims(config, results), figures)
