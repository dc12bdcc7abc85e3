"""Figures of the sharpness study (PNG files; :mod:`jadv.viz.curvature` does the drawing)."""
from __future__ import annotations

import os

import numpy as np

from jadv.studies.sharpness.verdicts import model_tag
from jadv.viz.curvature import plot_eigenvalues_vs_eps, plot_landscape_1d, plot_spectral_density


def plot_logistic(res: dict, path: str, *, dataset: str, norm: str) -> str:
    """lambda_max of the exact and the fixed-x_adv Hessian against eps, for one logistic sweep."""
    plot_eigenvalues_vs_eps(res["eps"], {"exact Hessian": res["lambda_max_exact"],
                                         "fixed-x_adv Hessian": res["lambda_max_fixed"]},
                            path=path, title=f"logistic regression, {dataset}, {norm} AT")
    return path


def plot_network(network: dict, density: dict, workdir: str, ncfg) -> list[str]:
    """The five network figures: lambda_max and trace against eps, the spectral density of the
    largest-eps model, the clean/robust landscapes of the standard and that model, and the robust
    landscapes of PGD-AT and AWP. ``network``: ``results["network"]``; ``density``: ``{"grid",
    "density", "model"}``. Returns the paths."""
    setup, rows = network["setup"], network["models"]
    alphas = np.asarray(setup["alphas"])
    grid_rows = [rows[model_tag(float(e), "pgd_at")] for e in ncfg.eps_grid]
    eps_arr = np.asarray([r["eps"] for r in grid_rows])
    title = f"{setup['dataset']} {setup['model']}, {ncfg.norm} PGD-AT"
    f1 = os.path.join(workdir, "network_lambda_max_vs_eps.png")
    plot_eigenvalues_vs_eps(eps_arr, {"lambda_max (fixed x_adv, BN eval)": [r["lambda_max"] for r in grid_rows]},
                            path=f1, title=title)
    f2 = os.path.join(workdir, "network_trace_vs_eps.png")
    plot_eigenvalues_vs_eps(eps_arr, {"Hutchinson trace": [r["trace"] for r in grid_rows]}, path=f2,
                            ylabel="trace", title=title)
    f3 = os.path.join(workdir, "network_density.png")
    plot_spectral_density(density["grid"], density["density"], path=f3, label=density["model"],
                          title="Hessian density of the adversarial loss (SLQ)")
    top = model_tag(float(max(ncfg.eps_grid)), "pgd_at")
    std_row, top_row = rows["standard"], rows[top]
    awp_row, at_row = rows[model_tag(float(ncfg.awp_eps), "awp")], rows[model_tag(float(ncfg.awp_eps), "pgd_at")]
    f4 = os.path.join(workdir, "network_landscape_standard_vs_at.png")
    plot_landscape_1d({"standard clean": (alphas, std_row["clean_curve"]),
                       f"{top} clean": (alphas, top_row["clean_curve"]),
                       f"standard robust (eps {std_row['landscape_eps']:g})": (alphas, std_row["robust_curve"]),
                       f"{top} robust": (alphas, top_row["robust_curve"])}, path=f4,
                      title="clean and robust loss, filter-normalised direction")
    f5 = os.path.join(workdir, "network_landscape_awp.png")
    plot_landscape_1d({"PGD-AT robust": (alphas, at_row["robust_curve"]),
                       "AWP robust": (alphas, awp_row["robust_curve"])},
                      path=f5, title=f"robust loss rho(w + alpha d), eps {ncfg.awp_eps:g} (re-attacked)")
    return [f1, f2, f3, f4, f5]
