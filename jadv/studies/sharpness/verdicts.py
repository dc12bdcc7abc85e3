"""The claims of the sharpness study: verdict rules as a pure function of the measured results.

The logistic-regression claims (5.1, 5.1b, 5.3, 5.4) are analytic (closed-form Hessians of convex
models at their minimiser): no gate. The network claims rest on trained softmax networks, each
with a quality gate in ``config.gates`` (:mod:`jadv.studies.gates`), keyed by :func:`gate_name`:
clean test accuracy and, for eps > 0, PGD test accuracy at the training eps. 5.5 rests on every
eps-grid network, 5.6 on PGD-AT and AWP at ``awp_eps``; a network below its gate makes the claim
"inconclusive".
"""
from __future__ import annotations

import numpy as np

from jadv.studies.common import claim, monotone
from jadv.studies.gates import check_gates, check_spec

STUDY = "sharpness"
COLLAPSE_NORM = 1e-3     # ||w*|| below this: the minimiser has collapsed to 0 (w* = 0 regime)

YAMADA = ("Yamada, Kanai, Iwata, Takahashi, Yamanaka, Takahashi & Kumagai 2021, \"Adversarial Training "
          "Makes Weight Loss Landscape Sharper in Logistic Regression\", arXiv:2102.02950")
AWP = ("Wu, Xia & Wang 2020, \"Adversarial Weight Perturbation Helps Robust Generalization\", NeurIPS 2020 "
       "(arXiv:2004.05884)")
SOURCES = {
    "5.1": f"{YAMADA}: main theorem (L2 adversarial training sharpens the weight loss landscape of linear "
           "logistic regression; sharpness grows with eps)",
    "5.1b": f"{YAMADA}: the closed-form adversarial logistic loss softplus(-y w.x + eps ||w||); the toy "
            "expectation (||w*|| 2.39 -> 0.69 for eps 0 -> 0.8, d = 20, n = 4000) is derived from it, not a "
            "published number",
    "5.3": f"{YAMADA}: the exact Hessian has the extra positive semi-definite term "
           "sigma(m) eps/||w|| (I - w_hat w_hat^T) because the perturbation direction depends on w; the "
           "fixed-x_adv Hessian lacks it (derived in closed form, jadv.analysis.logistic)",
    "5.4": f"{YAMADA}: Linf threat, dual norm ||w||_1 with zero Hessian almost everywhere (derived); robust "
           "models use fewer features: Tsipras, Santurkar, Engstrom, Turner & Madry 2019, \"Robustness May "
           "Be at Odds with Accuracy\", ICLR 2019",
    "5.5": f"{YAMADA}: experiments on ResNet-18 with softmax (sharpness, the top Hessian eigenvalue, grows "
           "with the L2 eps of adversarial training)",
    "5.6": f"{AWP}: eq. 1 (the robust loss rho(w)) and the flatness of rho(w + alpha d) vs the robust "
           "generalisation gap (paper scale: PreActResNet-18, 200 epochs, AT-AWP gamma 0.01)",
}


def command(config) -> str:
    """The command line that reproduces the claims of ``config``'s profile."""
    return f"python experiments/sharpness.py --config configs/sharpness.py:{config.profile}"


def before_collapse(res: dict) -> dict:
    """The entries of a logistic sweep (``w`` dropped) at the radii where ``||w*|| > COLLAPSE_NORM``."""
    keep = np.asarray(res["w_norm"]) > COLLAPSE_NORM
    return {k: np.asarray(v)[keep] for k, v in res.items() if k != "w"}


def logistic_claims(config, results) -> list[dict]:
    """Claims 5.1, 5.1b, 5.3 (L2) and 5.4 (Linf) for every dataset of ``config.logistic.datasets``.

    ``results["logistic_<dataset>_<norm>"]``: a :func:`~jadv.studies.sharpness.logistic_sharpness`
    record (lists or arrays): ``eps``, ``w_norm``, ``lambda_max_exact``, ``lambda_max_fixed``,
    ``trace_exact``, ``min_eig_exact_minus_fixed`` and, for the toy, ``informative_share``.
    Analytic (closed-form Hessians of a convex model at its minimiser): no gate ("none needed").
    """
    lc = config.logistic
    cmd = command(config)
    out = []
    for ds_name in lc.datasets:
        for norm in ("l2", "linf"):
            live = before_collapse(results[f"logistic_{ds_name}_{norm}"])
            lam = np.round(np.asarray(live["lambda_max_exact"]), 4).tolist()
            if norm == "l2":
                out.append(claim(
                    STUDY, f"5.1-{ds_name}", f"L2-AT logistic regression ({ds_name}): lambda_max and trace of "
                    "the exact Hessian increase monotonically with eps (up to the collapse w* = 0)",
                    measured=f"eps {live['eps'].tolist()}: lambda_max {lam}, trace "
                             f"{np.round(live['trace_exact'], 3).tolist()}",
                    verdict=monotone(live["lambda_max_exact"]) and monotone(live["trace_exact"]),
                    source=SOURCES["5.1"], command=cmd))
                out.append(claim(
                    STUDY, f"5.1b-{ds_name}", f"L2-AT logistic regression ({ds_name}): ||w*|| decreases with eps",
                    measured=f"||w*|| {np.round(live['w_norm'], 3).tolist()} (weight decay "
                             f"{lc.l2_reg[ds_name]})",
                    verdict=monotone(live["w_norm"], increasing=False),
                    source=SOURCES["5.1b"], command=cmd))
                gap = np.asarray(live["lambda_max_exact"]) - np.asarray(live["lambda_max_fixed"])
                out.append(claim(
                    STUDY, f"5.3-{ds_name}", f"exact minus fixed-x_adv Hessian is PSD and its lambda_max gap grows "
                    f"with eps; both lambda_max increase ({ds_name}, L2)",
                    measured=f"min eig(exact - fixed) {np.min(live['min_eig_exact_minus_fixed']):.2e}; "
                             f"gap {np.round(gap, 4).tolist()}; fixed {np.round(live['lambda_max_fixed'], 4).tolist()}",
                    verdict=bool(np.min(live["min_eig_exact_minus_fixed"]) >= -1e-9) and monotone(gap)
                    and monotone(live["lambda_max_exact"]) and monotone(live["lambda_max_fixed"]),
                    source=SOURCES["5.3"], command=cmd))
            else:
                ok = monotone(live["lambda_max_exact"])
                text = f"Linf-AT logistic regression ({ds_name}): lambda_max increases with eps"
                measured = f"eps {live['eps'].tolist()}: lambda_max {lam}"
                if ds_name == "toy":
                    share = np.asarray(live["informative_share"])
                    ok = ok and bool(share[-1] > share[0])
                    text += "; w* concentrates on the 5 informative coordinates"
                    measured += f"; |w| share on informative coords {np.round(share, 3).tolist()}"
                out.append(claim(STUDY, f"5.4-{ds_name}", text, measured=measured, verdict=ok,
                                 source=SOURCES["5.4"], command=cmd))
    return out


def model_tag(eps: float, objective: str) -> str:
    """The name of a network of the study: ``standard`` (eps 0), ``pgd_at_eps0.5``, ``awp_eps0.5``."""
    return "standard" if eps == 0 else f"{objective}_eps{eps:g}"


def gate_name(eps: float, objective: str) -> str:
    """The name of a network in the study's gates: ``eps0/standard``, ``eps0p5/pgd_at``, ``eps0p5/awp``
    (the decimal point written "p": ConfigDict keys cannot hold dots)."""
    return f"eps{float(eps):g}".replace(".", "p") + f"/{'standard' if float(eps) == 0 else objective}"


def grid_models(ncfg) -> list[str]:
    """Gate names of the eps-grid networks (PGD-AT; standard at eps 0): the models of claim 5.5."""
    return [gate_name(e, "pgd_at") for e in ncfg.eps_grid]


def awp_models(ncfg) -> list[str]:
    """Gate names of PGD-AT and AWP at ``awp_eps``: the models of claim 5.6."""
    return [gate_name(ncfg.awp_eps, "pgd_at"), gate_name(ncfg.awp_eps, "awp")]


def gate_of(config, name: str) -> dict:
    """The gate spec of network ``name`` in ``config.gates``, checked
    (:func:`jadv.studies.gates.check_spec`); ValueError if it has none."""
    gates = config.get("gates") or {}
    if name not in gates:
        raise ValueError(f"sharpness: the trained network {name!r} has no quality gate; add "
                         f"config.gates[{name!r}] = {{'clean', 'robust', 'source'}} in configs/sharpness.py "
                         f"(gates given: {sorted(gates.keys())})")
    spec = gates[name]
    spec = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    check_spec(spec, f"configs/sharpness.py gates[{name!r}]")
    return spec


def check_config_gates(config) -> dict:
    """``{name: spec}`` for every network of ``config.network``; ValueError if one has no gate or a
    malformed one (called by ``run`` before anything is trained)."""
    ncfg = config.network
    return {m: gate_of(config, m) for m in dict.fromkeys(grid_models(ncfg) + awp_models(ncfg))}


def gate_measurements(rows) -> dict:
    """``{gate name: {"clean", "robust"}}`` from the network rows of the results: clean test
    accuracy (``test_clean_acc``) and, for eps > 0, PGD test accuracy at the training eps
    (``test_robust_acc``; the standard network's is at ``awp_eps``, not a training eps: not gated)."""
    out = {}
    for row in rows.values():
        m = {"clean": row["test_clean_acc"]}
        if float(row["eps"]) > 0:
            m["robust"] = row["test_robust_acc"]
        out[gate_name(row["eps"], row["objective"])] = m
    return out


def network_gates(config, rows) -> dict:
    """Gate records (:func:`jadv.studies.gates.check_gates`) of every network of the profile, from
    ``config.gates`` and the measured rows; a network without a row fails as "not measured"."""
    return check_gates(check_config_gates(config), gate_measurements(rows))


def network_claims(config, results) -> list[dict]:
    """Claims 5.5 (top Hessian eigenvalue rises with eps) and 5.6 (AWP vs PGD-AT), gated.

    ``results["network"]``: ``setup`` (``dataset``, ``model``, ``hessian_subset_indices``) and
    ``models``, one row per :func:`model_tag` (``eps``, ``objective``, ``lambda_max``, ``trace``,
    ``clean_curvature``, ``robust_curvature``, ``robust_rise_mean``, ``train_robust_acc``,
    ``test_robust_acc``, ``robust_gap``, ``test_clean_acc``) for ``eps`` in
    ``config.network.eps_grid`` (PGD-AT) and AWP and PGD-AT at ``config.network.awp_eps``.
    5.5 rests on the gates of :func:`grid_models`, 5.6 on those of :func:`awp_models`
    (``config.gates``; :func:`network_gates`). At ``smoke`` (3 training steps) the rules are
    applied and the networks miss their gates: "inconclusive".
    """
    ncfg = config.network
    net = results["network"]
    setup, rows = net["setup"], net["models"]
    cmd = command(config)
    smoke = config.profile == "smoke"
    smoke_note = " [smoke: a few training steps, not a test of the claim]" if smoke else ""
    gates = network_gates(config, rows)
    grid_rows = [rows[model_tag(float(e), "pgd_at")] for e in ncfg.eps_grid]
    eps_arr = np.asarray([r["eps"] for r in grid_rows], np.float64)
    lam = np.asarray([r["lambda_max"] for r in grid_rows], np.float64)
    trc = np.asarray([r["trace"] for r in grid_rows], np.float64)
    awp_row = rows[model_tag(float(ncfg.awp_eps), "awp")]
    at_row = rows[model_tag(float(ncfg.awp_eps), "pgd_at")]
    return [
        claim(STUDY, f"5.5-{setup['dataset']}", f"softmax {setup['model']} ({setup['dataset']}), {ncfg.norm} PGD-AT: "
              "the top Hessian eigenvalue of the adversarial training loss (fixed x_adv, BN eval, fixed subset) "
              "increases with eps" + smoke_note,
              measured=f"eps {eps_arr.tolist()}: lambda_max {np.round(lam, 4).tolist()}, trace "
                       f"{np.round(trc, 2).tolist()}; filter-normalised curvature clean "
                       f"{np.round([r['clean_curvature'] for r in grid_rows], 3).tolist()}, robust "
                       f"{np.round([r['robust_curvature'] for r in grid_rows], 3).tolist()} "
                       f"(subset n={len(setup['hessian_subset_indices'])}, seed {ncfg.hessian_seed}, "
                       f"Lanczos {ncfg.lanczos_iters} steps)",
              verdict=monotone(lam), source=SOURCES["5.5"], command=cmd, gates=gates, models=grid_models(ncfg)),
        claim(STUDY, f"5.6-{setup['dataset']}", f"AWP (gamma {ncfg.awp_gamma}) around PGD-AT gives a flatter robust "
              "landscape rho(w + alpha d) (smaller local curvature) and a smaller robust train-test gap than PGD-AT "
              "at the same eps" + smoke_note,
              measured=f"eps {ncfg.awp_eps:g}: robust curvature PGD-AT {at_row['robust_curvature']:.4f} vs AWP "
                       f"{awp_row['robust_curvature']:.4f}; mean rise PGD-AT {at_row['robust_rise_mean']:.4f} vs AWP "
                       f"{awp_row['robust_rise_mean']:.4f}; robust acc train/test PGD-AT "
                       f"{at_row['train_robust_acc']:.3f}/{at_row['test_robust_acc']:.3f} (gap "
                       f"{at_row['robust_gap']:.3f}), AWP {awp_row['train_robust_acc']:.3f}/"
                       f"{awp_row['test_robust_acc']:.3f} (gap {awp_row['robust_gap']:.3f}); clean test PGD-AT "
                       f"{at_row['test_clean_acc']:.3f}, AWP {awp_row['test_clean_acc']:.3f}",
              verdict=bool(awp_row["robust_curvature"] < at_row["robust_curvature"]
                           and awp_row["robust_gap"] < at_row["robust_gap"]),
              source=SOURCES["5.6"], command=cmd, gates=gates, models=awp_models(ncfg)),
    ]


def claims(config, results) -> list[dict]:
    """Every claim of the sharpness study, from the measured ``results`` (pure: no training, no files).

    Logistic regression (per dataset of ``config.logistic.datasets``): 5.1 lambda_max and trace of
    the exact Hessian rise with the L2 eps (up to the collapse w* = 0), 5.1b ||w*|| falls, 5.3 exact
    minus fixed-x_adv Hessian is PSD with a growing lambda_max gap and both lambda_max rise, 5.4 the
    Linf lambda_max rises (toy: w* concentrates on the informative coordinates); analytic, no gate.
    Networks: 5.5 the top Hessian eigenvalue of the adversarial loss rises with eps, 5.6 AWP gives
    a flatter robust landscape and a smaller robust gap than PGD-AT; "inconclusive" when one of
    their networks is below its gate in ``config.gates`` (always so at ``smoke``).

    Args:
      config: the study config (``configs/sharpness.py:get_config(profile)``), with ``gates``.
      results: ``record["results"]`` of :func:`~jadv.studies.sharpness.run` (numpy arrays or the
        lists of its ``results.json``).

    Returns:
      a list of :func:`jadv.studies.common.claim` records.
    """
    return logistic_claims(config, results) + network_claims(config, results)
