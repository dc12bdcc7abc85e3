"""The verdicts of study 2: a pure function of the measured results and of the config's gates
(no training, no files).

The claims on the sweep networks (2.15-2.17b) are gated (:mod:`jadv.studies.gates`): each rests on
full-training-set models whose clean (and, for eps_train > 0, PGD) accuracy must reach the gate
stated in ``config.gates``; a model below it makes the claim "inconclusive". The theory claims
(closed forms) and the 5-vs-7 linear models (convex logistic models) need no gate.
"""
from __future__ import annotations

import math

import numpy as np

from jadv.studies.common import claim, monotone
from jadv.studies.gates import check_gates, check_spec
from jadv.studies.tradeoff.sweeps import sweep_gate_measurements, sweep_model_name, sweep_table

__all__ = ["STUDY", "PAPER", "claims", "gate_specs", "gate_records"]

STUDY = "tradeoff"
PAPER = ("Tsipras, Santurkar, Engstrom, Turner & Madry 2019, \"Robustness May Be at Odds with Accuracy\", "
         "ICLR 2019 (arXiv:1805.12152; pages of v5)")
# The figure numbers of the empirical claims are those of arXiv:1805.12152v5 as the library
# cites them (jadv.analysis.saliency, jadv.analysis.large_eps); the theorems and eq. (3) are
# checked against the paper's statements.


def gate_specs(config, models=()) -> dict:
    """The gates of ``config.gates`` as ``{model: spec dict}``, each checked with
    :func:`jadv.studies.gates.check_spec`; ValueError if one of ``models`` (names of trained models,
    :func:`~jadv.studies.tradeoff.gated_sweep_models`) has no gate."""
    gates = config.get("gates")
    if gates is None:
        raise ValueError("config.gates is missing: configs/tradeoff.py states a gate for every full-training-set "
                         "sweep model and the proxy")
    specs = {}
    for name, spec in gates.items():
        specs[name] = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        check_spec(specs[name], f"config.gates[{name!r}]")
    missing = [m for m in models if m not in specs]
    if missing:
        raise ValueError(f"trained model(s) {missing} have no gate in config.gates (configs/tradeoff.py); gates are "
                         f"stated for {sorted(specs)}: a changed sweep grid (sizes, eps) needs its own gates")
    return specs


def gate_records(config, results: dict) -> dict:
    """``{model: gate record}`` (:func:`jadv.studies.gates.check_gates`) of the gated sweep models,
    from ``results["gate_measurements"]`` (or, for results saved without them, the sweeps)."""
    measured = results.get("gate_measurements") or sweep_gate_measurements(results["sweeps"], config.seed)
    specs = gate_specs(config, list(measured))
    return check_gates({m: specs[m] for m in measured}, measured)


def _theory_claims(th: dict, cmd: str) -> list[dict]:
    out = []
    av, sx = th["averaging"], th["sign_x1"]
    se4 = 3 * math.sqrt(0.5 / th["n_test"]) / math.sqrt(2)   # generous MC band for acc near 0/1
    band_p = 4 * math.sqrt(th["p"] * (1 - th["p"]) / th["n_test"])
    ok11 = (abs(av["standard_theory"] - av["phi_eta_sqrt_d"]) < 1e-4 and av["robust_theory"] < 1e-3
            and abs(av["standard_mc"] - av["standard_theory"]) < se4
            and abs(av["robust_mc"] - av["robust_theory"]) < se4
            and all(abs(r["standard_theory"] - th["p"]) < 1e-6 and abs(r["robust_theory"] - th["p"]) < 1e-6
                    and abs(r["standard_mc"] - th["p"]) < band_p and abs(r["robust_mc"] - th["p"]) < band_p
                    for r in sx))
    out.append(claim(
        STUDY, "2.11", "Tsipras eq. (3), d=1000, p=0.95, eta=4/sqrt(d): the averaging classifier has standard "
        "accuracy ~ Phi(4) and L-inf robust accuracy ~ 0 at eps = 2 eta; sign(x_1) has standard = robust = p "
        "for eps < 1 (closed form and Monte-Carlo)",
        measured=f"averaging: standard {av['standard_theory']:.5f} (MC {av['standard_mc']:.5f}, Phi(4) "
                 f"{av['phi_eta_sqrt_d']:.5f}), robust {av['robust_theory']:.2e} (MC {av['robust_mc']:.4f}); "
                 "sign(x1): " + ", ".join(f"eps {r['eps']:.3g}: {r['standard_mc']:.4f}/{r['robust_mc']:.4f} (MC)"
                                          for r in sx) + f"; n_test {th['n_test']}",
        verdict=bool(ok11),
        source=f"{PAPER}: data model eq. (3), p. 4; the averaging classifier is the direction of the standard "
               "classifier of Theorem 2.2 (i) (App. D, Lemma D.1), sign(x_1) the adversarial one of Theorem 2.2 (ii) "
               "(Lemma D.5)", command=cmd))
    sw = th["sweep"]
    step = max(1, len(sw["angle"]) // 5)
    out.append(claim(
        STUDY, "2.12", "Theorem 2.1: every w = (cos t, sin t/sqrt(d) 1_d) satisfies robust <= p/(1-p) (1 - "
        "standard) at eps = 2 eta (closed form exactly; Monte-Carlo within 3 standard errors)",
        measured=f"{len(sw['angle'])} angles: violations closed form {sw['violations_theory']}, MC "
                 f"{sw['violations_mc']}; standard {np.round(np.asarray(sw['standard_theory'])[::step], 4).tolist()}"
                 f", robust {np.round(np.asarray(sw['robust_theory'])[::step], 4).tolist()}",
        verdict=sw["violations_theory"] == 0 and sw["violations_mc"] == 0,
        source=f"{PAPER}: Theorem 2.1, p. 5 (proof in App. C)", command=cmd))
    tr = th["trained"]
    p, eta = th["p"], th["eta"]
    std_m = tr[0]
    valid = [r for r in tr[1:] if 2 * eta - 1e-9 <= r["eps_train"] < 2 * p - 1]
    beyond = [r for r in tr[1:] if r["eps_train"] >= 2 * p - 1]
    ok_i = std_m["standard_theory"] > 0.99 and std_m["robust_theory"] < 0.01
    ok_ii = all(abs(r["standard_theory"] - p) < 0.01 and abs(r["robust_theory"] - p) < 0.01
                and r["weak_l1_share"] < 0.05 for r in valid)
    ok_beyond = all(r["w_norm"] < 0.05 * std_m["w_norm"] for r in beyond)
    out.append(claim(
        STUDY, "2.13", "Theorem 2.2: standard logistic training gives standard > 0.99 and robust < 0.01 at "
        "eps = 2 eta; exact L-inf AT with 2 eta <= eps_train < 2p - 1 puts ~0 weight on the weak features and "
        "gives standard = robust = p (+-0.01); eps_train >= 2p - 1 gives w -> 0",
        measured=f"standard model: {std_m['standard_theory']:.4f}/{std_m['robust_theory']:.4f}; "
                 + "; ".join(f"eps_train {r['eps_train']:.3g}: {r['standard_theory']:.4f}/{r['robust_theory']:.4f}, "
                             f"weak |w| share {r['weak_l1_share']:.3f}, ||w|| {r['w_norm']:.3g}" for r in tr[1:])
                 + f" (standard/robust, exact accuracies of the trained unit-norm w; {th['models_per_program']} "
                 "models trained as one program)",
        verdict=bool(ok_i and ok_ii and ok_beyond),
        source=f"{PAPER}: Theorem 2.2, p. 6 (proof in App. D), with the logistic loss in place of the hinge-loss SVM; "
               "the bound eps_train < 2p - 1 is not in the paper's statement: beyond it w = 0 minimises the "
               "adversarial loss (found by the prove2me Lean formalisation of the theorem)", command=cmd))
    return out


def _binary_claim(bi: dict, cmd: str) -> dict:
    m, at, tk = bi["models"], bi["at_index"], bi["top_k"]
    sp, rk, acc = m["large_weight_share"], m["spearman_abs_w_abs_corr"], m["standard_accuracy"]
    return claim(
        STUDY, f"2.14-{bi['dataset']}", f"binary {bi['dataset']} 5 vs 7, linear: the L-inf-AT model "
        f"(eps {m['eps_train'][at]:g}) has a higher Spearman(|w|, |corr|), is sparser (share of |w| > 1% of max) "
        "and has lower standard accuracy than the standard model",
        measured=f"eps {np.round(m['eps_train'], 3).tolist()}: Spearman {np.round(rk, 3).tolist()}, large-weight "
                 f"share {np.round(sp, 3).tolist()}, standard acc {np.round(acc, 4).tolist()} (n_test {bi['n_test']}); "
                 f"top-k (k={tk['k']}): standard model robust acc "
                 f"{np.round(tk['standard_model']['robust'], 3).tolist()}, "
                 f"AT {np.round(tk['at_model']['robust'], 3).tolist()}",
        verdict=bool(rk[at] > rk[0] and sp[at] < sp[0] and acc[at] < acc[0]),
        source=f"{PAPER}: the linear classifiers on binary MNIST 5 vs 7 (weights against per-pixel label "
               "correlation, and accuracy of top-k-feature models; figure number not checked against the PDF)",
        command=cmd)


def _sweep_claims(sweeps: dict, seed: int, dataset: str, cmd: str, gates: dict) -> list[dict]:
    ok15, meas15, ok16, meas16, on15, on16 = [], [], [], [], [], []
    for norm, s in sweeps.items():
        sizes, eps, acc, rob = sweep_table(s, seed)
        on15 += [sweep_model_name(norm, e, sizes[-1]) for e in eps]
        on16 += [sweep_model_name(norm, e, sizes[-1]) for e in (eps[0], eps[-1])]
        tol = math.sqrt(0.25 / s["n_test"])      # one standard error of an accuracy near 1/2 (upper bound)
        ok15.append(monotone(acc[:, -1], increasing=False, tol=tol))
        meas15.append(f"{norm}: eps {eps} -> standard acc {np.round(acc[:, -1], 4).tolist()}, PGD acc "
                      f"{np.round(rob[:, -1], 4).tolist()}")
        gap = acc[0] - acc[-1]
        ok16.append(bool(gap[-1] > gap[0]))
        meas16.append(f"{norm} (eps {eps[-1]:g}): sizes {sizes} -> gap {np.round(gap, 4).tolist()} "
                      f"(monotone in n: {monotone(gap)})")
    note = f" [{dataset} 8x8, small scale]" if dataset == "digits" else ""
    return [
        claim(STUDY, f"2.15-{dataset}", f"standard accuracy decreases monotonically with eps_train (small CNN, "
              f"{dataset}, full training set; L-inf and L2 PGD-AT)" + note,
              measured="; ".join(meas15) + f" (tolerance one standard error, n_test {sweeps['linf']['n_test']}; "
                       f"{sweeps['linf']['models_per_program']} + {sweeps['l2']['models_per_program']} models in two "
                       "programs: vmap, or lax.map on CPU)",
              verdict=all(ok15),
              source=f"{PAPER}: abstract (robust training can reduce standard accuracy) and the standard "
              "accuracies of its MNIST, CIFAR-10 and Restricted ImageNet models at several eps_train (table "
              "number not checked against the PDF)", command=cmd, gates=gates, models=on15),
        claim(STUDY, f"2.16-{dataset}", "the standard-minus-AT gap in standard accuracy grows with the "
              "training-set size (largest n vs smallest n; it may be <= 0 at the smallest n)" + note,
              measured="; ".join(meas16), verdict=all(ok16),
              source=f"{PAPER}: Fig. 1, standard accuracy against training-set size for eps_train 0 and > 0 "
              "(figure number recalled, not checked against the PDF)", command=cmd, gates=gates, models=on16),
    ]


def _saliency_models(config, sweeps: dict) -> dict:
    """The gate names of the models of part 4: the full-size standard model, the L-inf and L2 AT
    models at the saliency radii, and the proxy."""
    full = {norm: max(sw["sizes"]) for norm, sw in sweeps.items()}
    sal = config.saliency
    return {"standard": sweep_model_name("linf", 0.0, full["linf"]),
            "linf": sweep_model_name("linf", sal.linf_eps, full["linf"]),
            "l2": sweep_model_name("l2", sal.l2_eps, full["l2"]),
            "proxy": sweep_model_name("linf", 0.0, full["linf"], proxy=True)}


def _saliency_claims(sal: dict, dataset: str, cmd: str, gates: dict, on: dict) -> list[dict]:
    al = sal["alignment_mean"]
    at_keys = [k for k in al if k != "standard"]
    r = sal["large_eps"]["rates"]
    l2k = [k for k in r if k.startswith("l2-AT")][0]
    return [
        claim(STUDY, f"2.17-{dataset}", "perceptual alignment: the Pearson correlation of |grad_x L| with the "
              "Sobel edge map is higher for the AT models (L-inf and L2) than for the standard model",
              measured=", ".join(f"{k}: {al[k]:.3f} +- {sal['alignment_stderr'][k]:.3f}" for k in al)
                       + f" (n={sal['n']} test images)",
              verdict=all(al[k] > al["standard"] for k in at_keys),
              source=f"{PAPER}: Fig. 2, loss gradients with respect to the input pixels (the edge-alignment "
              "number is jadv's measure of the figure's visual claim)", command=cmd, gates=gates,
              models=[on["standard"], on["linf"], on["l2"]]),
        claim(STUDY, f"2.17b-{dataset}", "large-eps (L2) targeted examples of the AT model carry target-class "
              "features: a proxy standard model (another seed) predicts the target more often for the AT model's "
              "examples than for the standard model's",
              measured=", ".join(f"{k}: proxy {v['proxy_target_rate']:.3f}, own {v['own_target_rate']:.3f}, mean L2 "
                                 f"{v['mean_l2']:.2f}" for k, v in r.items())
                       + f" (eps {sal['large_eps']['eps']:g}, n={sal['large_eps']['n']})",
              verdict=bool(r[l2k]["proxy_target_rate"] > r["standard"]["proxy_target_rate"]),
              source=f"{PAPER}: Fig. 4, large-eps adversarial examples and interpolations (the proxy-classifier "
              "rate is jadv's measure of the figure's visual claim)", command=cmd, gates=gates,
              models=[on["standard"], on["l2"], on["proxy"]]),
    ]


def claims(config, results: dict) -> list[dict]:
    """The eight verdicts of study 2 from ``results`` (as :func:`~jadv.studies.tradeoff.run`
    returns and saves them; a JSON round trip is fine). Pure: no training, no file access.

    ``config`` gives the profile (for the command), ``config.seed`` (the sweep rows of the main
    seed) and ``config.sweep.train.dataset`` (the sweep claims' ids). Claims, in order:

    * 2.11: averaging classifier ~ Phi(4) / ~0, sign(x_1) = p (closed form and Monte-Carlo
      within their bands);
    * 2.12: no angle of the Theorem 2.1 sweep violates the bound (closed form; MC within tolerance);
    * 2.13: Theorem 2.2 (i) standard > 0.99 and robust < 0.01; (ii) |acc - p| < 0.01 and weak
      |w| share < 0.05 for 2 eta <= eps_train < 2p - 1; ||w|| < 5% of the standard one beyond;
    * 2.14-<dataset>: the L-inf-AT linear model has a higher Spearman, a smaller large-weight
      share and a lower standard accuracy than the standard one;
    * 2.15-<dataset>: standard accuracy at the largest size is non-increasing in eps_train within
      one standard error (sqrt(0.25 / n_test)), for both norms;
    * 2.16-<dataset>: gap(largest eps) at the largest size > at the smallest size, both norms;
    * 2.17-<dataset>: every AT model's mean edge alignment > the standard model's;
    * 2.17b-<dataset>: the proxy's target rate on the L2-AT model's large-eps examples > on the
      standard model's.

    Gates (``config.gates``, :func:`gate_records`): 2.15 rests on every full-size model of both
    norms, 2.16 on the full-size models of the smallest and largest eps_train of each norm, 2.17
    on the full-size standard, L-inf-AT (``saliency.linf_eps``) and L2-AT (``saliency.l2_eps``)
    models, 2.17b on the standard and L2-AT models and the proxy; a model below its gate makes
    the claim "inconclusive". 2.11-2.14 are analytic ("none needed"). ValueError if a gated
    model has no gate in ``config.gates``.
    """
    cmd = f"python experiments/tradeoff.py --config configs/tradeoff.py:{config.profile}"
    dataset = config.sweep.train.dataset
    gates = gate_records(config, results)
    return (_theory_claims(results["theory"], cmd) + [_binary_claim(results["binary"], cmd)]
            + _sweep_claims(results["sweeps"], config.seed, dataset, cmd, gates)
            + _saliency_claims(results["saliency"], dataset, cmd, gates, _saliency_models(config, results["sweeps"])))
