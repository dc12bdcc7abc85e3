"""Study 5: adversarial training sharpens the weight loss landscape (Yamada et al. 2021).

    python experiments/sharpness.py --profile default --workdir runs/sharpness

Part 1 (this file, any profile): linear logistic regression trained to the adversarial minimiser
for every eps of a grid, L2 and Linf, as one vmapped program per (dataset, norm). For each eps:
top eigenvalue and trace of the exact Hessian (the perturbation moves with w) and of the
fixed-x_adv Hessian (what PGD-based tools measure), ||w*||, and the smallest eigenvalue of
exact - fixed (which must be >= 0). Datasets: the toy of analysis-methods E.2 (two overlapping
Gaussians, d = 20, 5 informative coordinates), scikit-learn's embedded digits 5 vs 7, and
MNIST 5 vs 7 at the cpu/full profiles.

Part 2 (networks; section E and AWP): a small CNN with batch norm and softmax (default: the
embedded 8x8 digits; cpu: a CIFAR-10 subset; full: PreActResNet-18 on CIFAR-10) trained with L2
PGD-AT for every eps of a grid (eps = 0 is standard training) and with AWP around PGD-AT at one
eps. For each model: the top Hessian eigenvalue (Lanczos) and the Hutchinson trace of the
adversarial training loss with x_adv fixed at the trained weights (``hessian="fixed_xadv"``,
``bn_mode="eval"``, a fixed training subset whose indices and seed are recorded), the spectral
density (SLQ) of the largest eps, 1-D filter-normalised clean and robust landscapes (robust =
PGD re-run at every alpha) with a local quadratic curvature, and PGD robust accuracy on training
and test images (the robust generalisation gap).

Claims checked (analysis-methods.md, reproduction checks 1, 3, 4, 5, 6).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import cached_part, claim, finish, monotone, study_main  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jadv import data as jdata  # noqa: E402
from jadv.analysis import adv_logistic_hessian, adv_logistic_sweep  # noqa: E402
from jadv.viz.curvature import plot_eigenvalues_vs_eps, plot_landscape_1d, plot_spectral_density  # noqa: E402

STUDY = "sharpness"
COLLAPSE_NORM = 1e-3     # ||w*|| below this: the minimiser has collapsed to 0 (w* = 0 regime)


def toy_data(n: int, d: int = 20, informative: int = 5, shift: float = 0.5, seed: int = 0):
    """Two overlapping Gaussian classes: x ~ N(y * shift * 1_informative, I), y uniform in {-1, +1}."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    mu = np.zeros(d)
    mu[:informative] = shift
    x = rng.normal(size=(n, d)) + y[:, None] * mu
    return x, y


def binary_digits(name: str, data_dir, n_max: int | None):
    """5 vs 7 of an image dataset as centred features [n, H*W] in pixel units and labels +-1."""
    ds = jdata.binary_task(jdata.load(name, "train", data_dir=data_dir), 5, 7)
    x = ds.images.reshape(len(ds), -1).astype(np.float64) / 255.0
    y = np.where(ds.labels == 1, 1.0, -1.0)
    if n_max:
        x, y = x[:n_max], y[:n_max]
    return x - x.mean(axis=0), y


def logistic_sweep(x, y, eps_grid, norm, *, l2_reg, iters):
    """The vmapped sweep plus, per eps, the smallest eigenvalue of (exact - fixed) Hessian."""
    with jax.enable_x64(True):
        X, Y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        eps = jnp.asarray(eps_grid, jnp.float64)
        out = jax.jit(lambda e: adv_logistic_sweep(X, Y, e, norm=norm, l2_reg=l2_reg, iters=iters))(eps)
        gap = []
        for i, e in enumerate(eps_grid):
            he = adv_logistic_hessian(out["w"][i], X, Y, eps=float(e), norm=norm, kind="exact")
            hf = adv_logistic_hessian(out["w"][i], X, Y, eps=float(e), norm=norm, kind="fixed_xadv")
            gap.append(float(jnp.linalg.eigvalsh(he - hf)[0]))
        res = {k: np.asarray(v) for k, v in out.items()}
    res["min_eig_exact_minus_fixed"] = np.asarray(gap)
    res["eps"] = np.asarray(eps_grid, np.float64)
    return res


def _before_collapse(res):
    keep = np.asarray(res["w_norm"]) > COLLAPSE_NORM
    return {k: np.asarray(v)[keep] for k, v in res.items() if k != "w"}


def run(config, workdir: str) -> dict:
    """Run part 1 for every (dataset, norm) of the config; returns the study record."""
    os.makedirs(workdir, exist_ok=True)
    results, figures, claims = {}, [], []
    cmd = f"python experiments/sharpness.py --profile {config.profile}"
    for ds_name in config.datasets:
        for norm in ("l2", "linf"):
            grid = list(config.eps_grid[ds_name][norm])
            part = f"logistic_{ds_name}_{norm}"

            def compute(ds_name=ds_name, norm=norm, grid=grid):
                if ds_name == "toy":
                    x, y = toy_data(config.toy_n)
                else:
                    x, y = binary_digits(ds_name, config.data_dir, config.n_max)
                res = logistic_sweep(x, y, grid, norm, l2_reg=config.l2_reg[ds_name], iters=config.iters)
                if ds_name == "toy":   # share of |w| on the 5 informative coordinates
                    w = np.abs(np.asarray(res["w"]))
                    res["informative_share"] = w[:, :5].sum(1) / np.maximum(w.sum(1), 1e-30)
                res.pop("w")
                return res

            res = cached_part(workdir, part, compute)
            results[part] = res
            fig = os.path.join(workdir, f"{part}_lambda_max.png")
            plot_eigenvalues_vs_eps(res["eps"], {"exact Hessian": res["lambda_max_exact"],
                                                 "fixed-x_adv Hessian": res["lambda_max_fixed"]},
                                    path=fig, title=f"logistic regression, {ds_name}, {norm} AT")
            figures.append(fig)
            live = _before_collapse(res)
            lam = np.round(np.asarray(live["lambda_max_exact"]), 4).tolist()
            if norm == "l2":
                claims.append(claim(
                    STUDY, f"5.1-{ds_name}", f"L2-AT logistic regression ({ds_name}): lambda_max and trace of "
                    "the exact Hessian increase monotonically with eps (up to the collapse w* = 0)",
                    measured=f"eps {live['eps'].tolist()}: lambda_max {lam}, trace "
                             f"{np.round(live['trace_exact'], 3).tolist()}",
                    verdict=monotone(live["lambda_max_exact"]) and monotone(live["trace_exact"]),
                    source="Yamada et al. 2021; analysis-methods check 1", command=cmd))
                claims.append(claim(
                    STUDY, f"5.1b-{ds_name}", f"L2-AT logistic regression ({ds_name}): ||w*|| decreases with eps",
                    measured=f"||w*|| {np.round(live['w_norm'], 3).tolist()} (weight decay "
                             f"{config.l2_reg[ds_name]})",
                    verdict=monotone(live["w_norm"], increasing=False),
                    source="analysis-methods E.2 toy (2.39 -> 0.69), check 1", command=cmd))
                gap = np.asarray(live["lambda_max_exact"]) - np.asarray(live["lambda_max_fixed"])
                claims.append(claim(
                    STUDY, f"5.3-{ds_name}", f"exact minus fixed-x_adv Hessian is PSD and its lambda_max gap grows "
                    f"with eps; both lambda_max increase ({ds_name}, L2)",
                    measured=f"min eig(exact - fixed) {np.min(live['min_eig_exact_minus_fixed']):.2e}; "
                             f"gap {np.round(gap, 4).tolist()}; fixed {np.round(live['lambda_max_fixed'], 4).tolist()}",
                    verdict=bool(np.min(live["min_eig_exact_minus_fixed"]) >= -1e-9) and monotone(gap)
                    and monotone(live["lambda_max_exact"]) and monotone(live["lambda_max_fixed"]),
                    source="analysis-methods E.2, check 3", command=cmd))
            else:
                ok = monotone(live["lambda_max_exact"])
                text = f"Linf-AT logistic regression ({ds_name}): lambda_max increases with eps"
                measured = f"eps {live['eps'].tolist()}: lambda_max {lam}"
                if ds_name == "toy":
                    share = np.asarray(live["informative_share"])
                    ok = ok and bool(share[-1] > share[0])
                    text += "; w* concentrates on the 5 informative coordinates"
                    measured += f"; |w| share on informative coords {np.round(share, 3).tolist()}"
                claims.append(claim(STUDY, f"5.4-{ds_name}", text, measured=measured, verdict=ok,
                                    source="analysis-methods check 4", command=cmd))
    net_results, net_claims, net_figures = network_part(config, workdir, cmd)
    results.update(net_results)
    claims += net_claims
    figures += net_figures
    return finish(workdir, STUDY, results, claims, figures)


# ----------------------------------------------------------------------------------------------
# Part 2: networks (Yamada et al. for softmax CNNs; AWP)
# ----------------------------------------------------------------------------------------------

def _train_config(ncfg, data_dir, eps: float, objective: str):
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


def _model_tag(eps: float, objective: str) -> str:
    return "standard" if eps == 0 else f"{objective}_eps{eps:g}"


def _attack_fn(apply_fn, variables, ncfg, eps, key, steps):
    """``attack(params, x, y)`` for make_adversarial_loss_fn: L2 PGD from x (zero init), step
    2.5 eps / steps, running BN statistics, fixed key. eps may be traced; eps = 0 returns x."""
    from jadv.attacks import pgd

    def attack(params, x, y):
        full = {**variables, "params": params}
        return pgd(lambda z: apply_fn(full, z, train=False), x, y, key=key, eps=eps,
                   step_size=2.5 * eps / steps, steps=steps, norm=ncfg.norm, init="zero")
    return attack


def _curvature(alphas, losses, span):
    """Second derivative of the least-squares quadratic through the points with |alpha| <= span."""
    a, l = np.asarray(alphas, np.float64), np.asarray(losses, np.float64)
    keep = np.abs(a) <= span + 1e-9
    if keep.sum() < 3:
        keep = np.argsort(np.abs(a))[:3]
    return float(2.0 * np.polyfit(a[keep], l[keep], 2)[0])


def network_part(config, workdir, cmd):
    """Train (resumably) the eps-grid and AWP models, then measure; returns (results, claims, figures)."""
    from common import train_model

    from jadv.analysis import (filter_normalized_direction, hessian_trace, landscape_1d, make_adversarial_loss_fn,
                               make_loss_fn, spectral_density, top_eigenvalues)
    from jadv.attacks import pgd

    ncfg = config.network
    runs = [(float(e), "pgd_at") for e in ncfg.eps_grid] + [(float(ncfg.awp_eps), "awp")]
    train_ds = jdata.load(ncfg.train.dataset, "train", data_dir=config.data_dir or ncfg.train.data_dir)
    test_ds = jdata.load(ncfg.train.dataset, "test", data_dir=config.data_dir or ncfg.train.data_dir)
    if ncfg.train.train_size:   # the subset the training loop uses (same call, same seed)
        train_ds = jdata.subset(train_ds, int(ncfg.train.train_size), key_or_seed=ncfg.train.seed)
    xtr = np.asarray(jdata.to_float(train_ds.images))
    ytr = train_ds.labels
    xte = np.asarray(jdata.to_float(test_ds.images))
    yte = test_ds.labels
    rng = np.random.default_rng(ncfg.hessian_seed)
    h_idx = np.sort(rng.choice(len(ytr), size=min(int(ncfg.hessian_n), len(ytr)), replace=False))
    l_idx = h_idx[:int(ncfg.landscape_n)]
    g_idx = np.sort(rng.choice(len(ytr), size=min(int(ncfg.gap_n), len(ytr)), replace=False))
    te_n = min(int(ncfg.gap_n), len(yte))
    key = jax.random.key(ncfg.hessian_seed)
    alphas = np.linspace(-ncfg.landscape_span, ncfg.landscape_span, int(ncfg.landscape_points))
    results, figures, claims = {}, [], []
    models = {}

    fns = {}

    def programs(model):
        """The jitted measurements, built once: every model of the study has the same architecture,
        so each program compiles once and takes the variables (and eps) as arguments."""
        if fns:
            return fns
        apply_fn = model.apply
        k_att = jax.random.fold_in(key, 1)

        def adv_loss(v, x, y, e):
            att = _attack_fn(apply_fn, v, ncfg, e, k_att, int(ncfg.attack_steps))
            return make_adversarial_loss_fn(apply_fn, v, (x, y), attack=att, hessian="fixed_xadv", bn_mode="eval")

        fns["eig"] = jax.jit(lambda v, x, y, e: top_eigenvalues(
            adv_loss(v, x, y, e), v["params"], key=jax.random.fold_in(key, 2), k=1, method="lanczos",
            iters=int(ncfg.lanczos_iters))[0])
        fns["trace"] = jax.jit(lambda v, x, y, e: hessian_trace(
            adv_loss(v, x, y, e), v["params"], key=jax.random.fold_in(key, 3), samples=int(ncfg.trace_samples)))
        fns["loss"] = jax.jit(lambda v, x, y, e: adv_loss(v, x, y, e)(v["params"]))
        fns["density"] = jax.jit(lambda v, x, y, e: spectral_density(
            adv_loss(v, x, y, e), v["params"], key=jax.random.fold_in(key, 6), order=int(ncfg.density_order),
            grid_size=2000))

        def curves(v, d, x, y, le):
            clean = make_loss_fn(apply_fn, v, (x, y), bn_mode="eval")
            att = _attack_fn(apply_fn, v, ncfg, le, jax.random.fold_in(key, 4), int(ncfg.attack_steps))
            robust = make_adversarial_loss_fn(apply_fn, v, (x, y), attack=att, hessian="exact", bn_mode="eval")
            return landscape_1d(clean, v["params"], d, alphas)[1], landscape_1d(robust, v["params"], d, alphas)[1]

        fns["curves"] = jax.jit(curves)
        steps = int(ncfg.eval_attack_steps)

        def accs(v, x, y, le):
            f = lambda z: apply_fn(v, z, train=False)  # noqa: E731
            xa = pgd(f, x, y, key=jax.random.fold_in(key, 5), eps=le, step_size=2.5 * le / steps, steps=steps,
                     norm=ncfg.norm, init="zero")
            return jnp.mean(jnp.argmax(f(x), -1) == y), jnp.mean(jnp.argmax(f(xa), -1) == y)

        fns["acc"] = jax.jit(accs)
        return fns

    def measure(eps, objective):
        tag = _model_tag(eps, objective)
        model, variables, train_res = train_model(_train_config(ncfg, config.data_dir, eps, objective),
                                                  os.path.join(workdir, "models", tag))
        models[tag] = (model, variables)
        f = programs(model)
        e = jnp.float32(eps)
        hx, hy = jnp.asarray(xtr[h_idx]), jnp.asarray(ytr[h_idx])
        lam = float(f["eig"](variables, hx, hy, e)[0])
        trace, trace_se = (float(t) for t in f["trace"](variables, hx, hy, e))
        adv_at_w = float(f["loss"](variables, hx, hy, e))
        # 1-D landscapes along filter-normalised directions (robust curve of the standard model: awp_eps)
        lx, ly = jnp.asarray(xtr[l_idx]), jnp.asarray(ytr[l_idx])
        land_eps = e if eps > 0 else jnp.float32(ncfg.awp_eps)
        clean_c, robust_c = [], []
        for j in range(int(ncfg.landscape_directions)):
            d = filter_normalized_direction(variables["params"], jax.random.fold_in(key, 100 + j), ignore="biasbn")
            c, r = f["curves"](variables, d, lx, ly, land_eps)
            clean_c.append(np.asarray(c))
            robust_c.append(np.asarray(r))
        clean_c, robust_c = np.mean(clean_c, 0), np.mean(robust_c, 0)
        # clean and PGD accuracy (at the training eps; awp_eps for the standard model), train vs test
        tr_c, tr_r = (float(a) for a in f["acc"](variables, jnp.asarray(xtr[g_idx]), jnp.asarray(ytr[g_idx]), land_eps))
        te_c, te_r = (float(a) for a in f["acc"](variables, jnp.asarray(xte[:te_n]), jnp.asarray(yte[:te_n]), land_eps))
        return {"tag": tag, "eps": eps, "objective": "standard" if eps == 0 else objective,
                "lambda_max": lam, "trace": trace, "trace_stderr": trace_se, "adv_loss_on_subset": adv_at_w,
                "landscape_eps": float(land_eps), "clean_curve": clean_c, "robust_curve": robust_c,
                "clean_curvature": _curvature(alphas, clean_c, ncfg.curvature_span),
                "robust_curvature": _curvature(alphas, robust_c, ncfg.curvature_span),
                "robust_rise_mean": float(np.mean(robust_c - robust_c[len(alphas) // 2])),
                "train_clean_acc": tr_c, "train_robust_acc": tr_r, "test_clean_acc": te_c, "test_robust_acc": te_r,
                "robust_gap": tr_r - te_r, "train_results": {k: v for k, v in train_res.items()
                                                             if isinstance(v, (int, float, str))}}

    rows = {}
    for eps, objective in runs:
        tag = _model_tag(eps, objective)
        if tag in rows:
            continue
        rows[tag] = cached_part(workdir, f"network_{tag}", lambda eps=eps, objective=objective: measure(eps, objective))
    # spectral density of the largest-eps PGD-AT model
    top = _model_tag(float(max(ncfg.eps_grid)), "pgd_at")

    def density():
        top_eps = float(max(ncfg.eps_grid))
        if top not in models:   # the model's part was cached in an earlier call: load it
            model, variables, _ = train_model(_train_config(ncfg, config.data_dir, top_eps, "pgd_at"),
                                              os.path.join(workdir, "models", top))
            models[top] = (model, variables)
        model, variables = models[top]
        grid, dens = programs(model)["density"](variables, jnp.asarray(xtr[h_idx]), jnp.asarray(ytr[h_idx]),
                                                jnp.float32(top_eps))
        return {"grid": np.asarray(grid), "density": np.asarray(dens), "model": top}

    dens = cached_part(workdir, "network_density", density)
    grid_rows = [rows[_model_tag(float(e), "pgd_at")] for e in ncfg.eps_grid]
    eps_arr = np.asarray([r["eps"] for r in grid_rows])
    lam = np.asarray([r["lambda_max"] for r in grid_rows])
    trc = np.asarray([r["trace"] for r in grid_rows])
    setup = {"dataset": ncfg.train.dataset, "model": ncfg.train.model.name, "model_kwargs": dict(ncfg.train.model.kwargs),
             "norm": ncfg.norm, "hessian": "fixed_xadv", "bn_mode": "eval", "lanczos_iters": int(ncfg.lanczos_iters),
             "hessian_subset_seed": int(ncfg.hessian_seed), "hessian_subset_indices": h_idx,
             "landscape_subset_indices": l_idx, "gap_train_indices": g_idx, "gap_test_first_n": te_n,
             "alphas": alphas, "attack_steps": int(ncfg.attack_steps), "eval_attack_steps": int(ncfg.eval_attack_steps),
             "direction": "filter-normalised Gaussian, biases/BN ignored", "directions": int(ncfg.landscape_directions)}
    results["network"] = {"setup": setup, "models": rows, "density": {"model": dens["model"]}}
    f1 = os.path.join(workdir, "network_lambda_max_vs_eps.png")
    plot_eigenvalues_vs_eps(eps_arr, {"lambda_max (fixed x_adv, BN eval)": lam}, path=f1,
                            title=f"{setup['dataset']} {setup['model']}, {ncfg.norm} PGD-AT")
    f2 = os.path.join(workdir, "network_trace_vs_eps.png")
    plot_eigenvalues_vs_eps(eps_arr, {"Hutchinson trace": trc}, path=f2, ylabel="trace",
                            title=f"{setup['dataset']} {setup['model']}, {ncfg.norm} PGD-AT")
    f3 = os.path.join(workdir, "network_density.png")
    plot_spectral_density(dens["grid"], dens["density"], path=f3, label=dens["model"],
                          title="Hessian density of the adversarial loss (SLQ)")
    std_row, top_row = rows["standard"], rows[top]
    awp_row, at_row = rows[_model_tag(float(ncfg.awp_eps), "awp")], rows[_model_tag(float(ncfg.awp_eps), "pgd_at")]
    f4 = os.path.join(workdir, "network_landscape_standard_vs_at.png")
    plot_landscape_1d({"standard clean": (alphas, std_row["clean_curve"]), f"{top} clean": (alphas, top_row["clean_curve"]),
                       f"standard robust (eps {std_row['landscape_eps']:g})": (alphas, std_row["robust_curve"]),
                       f"{top} robust": (alphas, top_row["robust_curve"])}, path=f4,
                      title="clean and robust loss, filter-normalised direction")
    f5 = os.path.join(workdir, "network_landscape_awp.png")
    plot_landscape_1d({"PGD-AT robust": (alphas, at_row["robust_curve"]), "AWP robust": (alphas, awp_row["robust_curve"])},
                      path=f5, title=f"robust loss rho(w + alpha d), eps {ncfg.awp_eps:g} (re-attacked)")
    figures += [f1, f2, f3, f4, f5]
    smoke_note = " [smoke: a few training steps, not a test of the claim]" if config.profile == "smoke" else ""
    claims.append(claim(
        STUDY, f"5.5-{setup['dataset']}", f"softmax {setup['model']} ({setup['dataset']}), {ncfg.norm} PGD-AT: the top "
        "Hessian eigenvalue of the adversarial training loss (fixed x_adv, BN eval, fixed subset) increases with eps"
        + smoke_note,
        measured=f"eps {eps_arr.tolist()}: lambda_max {np.round(lam, 4).tolist()}, trace {np.round(trc, 2).tolist()}; "
                 f"filter-normalised curvature clean {np.round([r['clean_curvature'] for r in grid_rows], 3).tolist()}, "
                 f"robust {np.round([r['robust_curvature'] for r in grid_rows], 3).tolist()} "
                 f"(subset n={len(h_idx)}, seed {ncfg.hessian_seed}, Lanczos {ncfg.lanczos_iters} steps)",
        verdict=None if config.profile == "smoke" else monotone(lam),
        source="Yamada et al. 2021 (ResNet-18 softmax); analysis-methods check 5", command=cmd))
    claims.append(claim(
        STUDY, f"5.6-{setup['dataset']}", f"AWP (gamma {ncfg.awp_gamma}) around PGD-AT gives a flatter robust landscape "
        "rho(w + alpha d) (smaller local curvature) and a smaller robust train-test gap than PGD-AT at the same eps"
        + smoke_note,
        measured=f"eps {ncfg.awp_eps:g}: robust curvature PGD-AT {at_row['robust_curvature']:.4f} vs AWP "
                 f"{awp_row['robust_curvature']:.4f}; mean rise PGD-AT {at_row['robust_rise_mean']:.4f} vs AWP "
                 f"{awp_row['robust_rise_mean']:.4f}; robust acc train/test PGD-AT {at_row['train_robust_acc']:.3f}/"
                 f"{at_row['test_robust_acc']:.3f} (gap {at_row['robust_gap']:.3f}), AWP {awp_row['train_robust_acc']:.3f}/"
                 f"{awp_row['test_robust_acc']:.3f} (gap {awp_row['robust_gap']:.3f}); clean test PGD-AT "
                 f"{at_row['test_clean_acc']:.3f}, AWP {awp_row['test_clean_acc']:.3f}",
        verdict=None if config.profile == "smoke" else bool(
            awp_row["robust_curvature"] < at_row["robust_curvature"] and awp_row["robust_gap"] < at_row["robust_gap"]),
        source="Wu et al. 2020 (AWP); analysis-methods check 6 (paper scale: PreActResNet-18, 200 epochs)", command=cmd))
    return results, claims, figures


def main(argv=None):
    study_main(STUDY, run, __doc__, argv)


if __name__ == "__main__":
    main()
