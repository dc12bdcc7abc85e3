"""Part 1 of study 2: the theory of Tsipras et al. on their data model (claims 2.11-2.13).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019, arXiv:1805.12152), eq. (3): ``y`` uniform on {-1, +1}, a robust feature ``x_1 = y`` with
probability p, and d weak features ``N(eta y, 1)``. The exact accuracies of linear classifiers
(:func:`jadv.analysis.linear_accuracy_theory`) are set against Monte-Carlo estimates on fresh
samples, for the averaging classifier, ``sign(x_1)``, a sweep of directions against the bound
of Theorem 2.1, and linear classifiers trained at a grid of eps_train (Theorem 2.2).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm as normal

from jadv import data as jdata
from jadv.analysis import (averaging_classifier, linear_accuracy_theory, robust_feature_classifier,
                           theorem_2_1_bound, theorem_2_2_conditions)
from jadv.studies.tradeoff.linear import linear_accuracies, train_linear_many

__all__ = ["theorem_2_1_sweep", "theory_measurements"]


def theorem_2_1_sweep(x, y, *, p: float, eta: float, eps: float, points: int) -> dict:
    """Standard and L-inf robust accuracy of ``w = (cos t, sin t / sqrt(d) 1_d)`` for ``points``
    angles t in [0, pi/2], exact and Monte-Carlo on the samples ``(x [N, d + 1], y [N])``, against
    the Theorem 2.1 bound ``robust <= p / (1 - p) (1 - standard)``.

    ``mc_tolerance`` is three standard errors of the Monte-Carlo robust accuracy plus p/(1-p) times
    three of the standard accuracy (floored at a 1/N accuracy); ``violations_theory`` counts the
    angles whose exact robust accuracy exceeds the exact bound (+1e-6), ``violations_mc`` those
    whose Monte-Carlo robust accuracy exceeds the Monte-Carlo bound by more than the tolerance.
    """
    n, d = x.shape[0], x.shape[1] - 1
    se = lambda a: float(np.sqrt(max(a * (1 - a), 1.0 / n) / n))  # noqa: E731
    t = np.linspace(0.0, np.pi / 2, points)
    W = np.concatenate([np.cos(t)[:, None], np.repeat((np.sin(t) / np.sqrt(d))[:, None], d, 1)], 1)
    s_th = np.asarray(linear_accuracy_theory(W, p=p, eta=eta), np.float64)
    r_th = np.asarray(linear_accuracy_theory(W, p=p, eta=eta, eps=eps), np.float64)
    s_mc, r_mc = linear_accuracies(W, 0.0, x, y, eps)
    b_th = np.asarray(theorem_2_1_bound(np.clip(s_th, 0, 1), p=p), np.float64)
    b_mc = np.asarray(theorem_2_1_bound(s_mc, p=p), np.float64)
    tol = np.array([3 * se(a) for a in r_mc]) + p / (1 - p) * np.array([3 * se(a) for a in s_mc])
    return {"angle": t, "standard_theory": s_th, "robust_theory": r_th, "bound_theory": b_th,
            "standard_mc": s_mc, "robust_mc": r_mc, "bound_mc": b_mc, "mc_tolerance": tol,
            "violations_theory": int(np.sum(r_th > b_th + 1e-6)),
            "violations_mc": int(np.sum(r_mc > b_mc + tol))}


def theory_measurements(cfg, seed: int) -> dict:
    """Part 1: every number of claims 2.11-2.13, from samples of eq. (3).

    ``cfg`` is the ``theory`` section of ``configs/tradeoff.py``: ``d``, ``p``, ``eta`` (the data
    model), ``n_train`` / ``n_test`` (training samples of the linear models, fresh Monte-Carlo
    samples), ``sweep_points`` (angles of :func:`theorem_2_1_sweep`), ``sign_eps`` (radii for
    ``sign(x_1)``), ``eps_train`` (the linear models' grid, trained as one program by
    :func:`~jadv.studies.tradeoff.train_linear_many`) and ``steps``/``lr``/``l2_reg``. Robust
    accuracies are at eps = 2 eta. The trained models are evaluated as unit vectors without their
    bias (the theorem's classifiers have none; the symmetric data give b ~ 0, reported as ``bias``).

    Returns a JSON-able dict: ``averaging``, ``sign_x1`` (one row per radius), ``sweep``,
    ``trained`` (one row per eps_train, with the Theorem 2.2 hypotheses in ``conditions``) and
    the data-model constants.
    """
    d, p, eta = cfg.d, cfg.p, cfg.eta
    eps = 2 * eta
    xt, yt = jdata.tsipras(seed + 1, cfg.n_test, d=d, p=p, eta=eta)
    xt, yt = np.asarray(xt), np.asarray(yt)
    out = {"d": d, "p": p, "eta": eta, "eps": eps, "n_test": cfg.n_test}
    # averaging classifier and sign(x_1)
    wa = np.asarray(averaging_classifier(d))
    s_mc, r_mc = linear_accuracies(wa, 0.0, xt, yt, eps)
    out["averaging"] = {"standard_theory": float(linear_accuracy_theory(wa, p=p, eta=eta)),
                        "robust_theory": float(linear_accuracy_theory(wa, p=p, eta=eta, eps=eps)),
                        "standard_mc": float(s_mc[0]), "robust_mc": float(r_mc[0]),
                        "phi_eta_sqrt_d": float(normal.cdf(eta * math.sqrt(d)))}
    wr = np.asarray(robust_feature_classifier(d))
    rows = []
    for e in cfg.sign_eps:
        s_mc, r_mc = linear_accuracies(wr, 0.0, xt, yt, e)
        rows.append({"eps": float(e), "standard_theory": float(linear_accuracy_theory(wr, p=p, eta=eta)),
                     "robust_theory": float(linear_accuracy_theory(wr, p=p, eta=eta, eps=float(e))),
                     "standard_mc": float(s_mc[0]), "robust_mc": float(r_mc[0])})
    out["sign_x1"] = rows
    out["sweep"] = theorem_2_1_sweep(xt, yt, p=p, eta=eta, eps=eps, points=cfg.sweep_points)
    # Theorem 2.2: linear classifiers trained at every eps_train, one vmapped program
    x, y = jdata.tsipras(seed, cfg.n_train, d=d, p=p, eta=eta)
    grid = np.asarray(cfg.eps_train, np.float32)
    w, b = train_linear_many(np.asarray(x), np.asarray(y), grid, steps=cfg.steps, lr=cfg.lr, l2_reg=cfg.l2_reg)
    norms = np.linalg.norm(w, axis=1)
    unit = w / np.maximum(norms[:, None], 1e-30)
    s_mc, r_mc = linear_accuracies(w, 0.0, xt, yt, eps)
    trained = []
    for i, e in enumerate(grid):
        trained.append({
            "eps_train": float(e), "w_norm": float(norms[i]), "bias": float(b[i]),
            "w_robust": float(w[i, 0]),
            "weak_l1_share": float(np.abs(w[i, 1:]).sum() / max(np.abs(w[i]).sum(), 1e-30)),
            "standard_theory": float(linear_accuracy_theory(unit[i], p=p, eta=eta)),
            "robust_theory": float(linear_accuracy_theory(unit[i], p=p, eta=eta, eps=eps)),
            "standard_mc": float(s_mc[i]), "robust_mc": float(r_mc[i]),
            "conditions": theorem_2_2_conditions(d=d, p=p, eta=eta, eps_train=float(e))})
    out["trained"] = trained
    out["models_per_program"] = int(len(grid))
    return out
