"""Study 5: adversarial training sharpens the weight loss landscape (Yamada et al. 2021).

    python experiments/sharpness.py --profile default --workdir runs/sharpness

Part 1 (this file, any profile): linear logistic regression trained to the adversarial minimiser
for every eps of a grid, L2 and Linf, as one vmapped program per (dataset, norm). For each eps:
top eigenvalue and trace of the exact Hessian (the perturbation moves with w) and of the
fixed-x_adv Hessian (what PGD-based tools measure), ||w*||, and the smallest eigenvalue of
exact - fixed (which must be >= 0). Datasets: the toy of analysis-methods E.2 (two overlapping
Gaussians, d = 20, 5 informative coordinates), scikit-learn's embedded digits 5 vs 7, and
MNIST 5 vs 7 at the cpu/full profiles.

Claims checked (analysis-methods.md, reproduction checks 1, 3, 4).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, cached_part, claim, finish, monotone  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jadv import data as jdata  # noqa: E402
from jadv.analysis import adv_logistic_hessian, adv_logistic_sweep  # noqa: E402
from jadv.viz.curvature import plot_eigenvalues_vs_eps  # noqa: E402

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
    return finish(workdir, STUDY, results, claims, figures)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="default", choices=("smoke", "default", "cpu", "full"))
    p.add_argument("--workdir", default=None)
    p.add_argument("--data_dir", default=None)
    a = p.parse_args(argv)
    sys.path.insert(0, os.path.join(ROOT, "configs"))
    import importlib
    config = importlib.import_module("sharpness").get_config(a.profile)
    if a.data_dir:
        config.data_dir = a.data_dir
    record = run(config, a.workdir or os.path.join("runs", STUDY, a.profile))
    for c in record["claims"]:
        print(f"[{c['verdict']}] {c['claim']}: {c['measured']}")


if __name__ == "__main__":
    main()
