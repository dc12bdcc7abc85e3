"""Figures for the linear-feature study (Tsipras et al., binary MNIST): weight maps, label
correlation against weight, and accuracy against the number of top-correlated features.

Each function takes arrays and an output path, writes a PNG (matplotlib object API, Agg) and
returns the path as a string; models are shown side by side (vanilla vs adversarial).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from jadv.viz.images import _save

__all__ = ["plot_weight_maps", "plot_correlation_vs_weight", "plot_top_k_curves"]


def plot_weight_maps(weights: Mapping[str, object], path, *, shape: tuple[int, int] = (28, 28), corr=None,
                     title: str | None = None) -> str:
    """Weights of linear models as images (diverging colours, each panel symmetric around 0).

    Args:
      weights: model label -> ``[H*W]`` weights (e.g. 784 for MNIST).
      shape: image shape (H, W).
      corr: optional ``[H*W]`` feature-label correlations, shown as the first panel.
    """
    if not weights:
        raise ValueError("weights is empty")
    panels = ([("corr(x_i, y)", corr)] if corr is not None else []) + list(weights.items())
    fig = Figure(figsize=(3.4 * len(panels), 3.2), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, w) in zip(axes, panels):
        w = np.asarray(w, np.float64).ravel()
        if w.size != shape[0] * shape[1]:
            raise ValueError(f"{name}: {w.size} values cannot be shown as {shape}")
        lim = float(np.max(np.abs(w))) or 1.0
        im = ax.imshow(w.reshape(shape), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(str(name))
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title or "Linear-model weights (red +, blue −)")
    return _save(fig, path)


def plot_correlation_vs_weight(corr, weights: Mapping[str, object], path, *, title: str | None = None) -> str:
    """Scatter of each feature's label correlation against its weight, one panel per model; the
    panel title gives the Spearman rank correlation of |w| with |corr|."""
    from scipy.stats import spearmanr

    if not weights:
        raise ValueError("weights is empty")
    c = np.asarray(corr, np.float64).ravel()
    fig = Figure(figsize=(4.2 * len(weights), 3.6), dpi=100)
    axes = fig.subplots(1, len(weights), squeeze=False)[0]
    for i, (ax, (name, w)) in enumerate(zip(axes, weights.items())):
        w = np.asarray(w, np.float64).ravel()
        if w.shape != c.shape:
            raise ValueError(f"weights[{name!r}] has {w.size} values, corr has {c.size}")
        rho = spearmanr(np.abs(c), np.abs(w)).statistic if np.ptp(w) > 0 and np.ptp(c) > 0 else float("nan")
        ax.scatter(c, w, s=4, alpha=0.5, color=f"C{i}", label=f"{name} (n={w.size})")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_xlabel("corr(x_i, y)")
        ax.set_ylabel("weight w_i")
        ax.set_title(f"{name}: Spearman(|w|, |corr|) = {rho:.2f}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title or "Label correlation vs. weight per feature")
    fig.tight_layout()
    return _save(fig, path)


def plot_top_k_curves(curves: Mapping[str, Mapping], path, *, title: str | None = None, log_k: bool = True) -> str:
    """Standard (solid) and exact robust (dashed) accuracy against k.

    Args:
      curves: label -> output of :func:`jadv.analysis.top_k_curve` (keys ``k``, ``standard``,
        ``robust``), e.g. one per training eps.
      log_k: logarithmic k axis.
    """
    if not curves:
        raise ValueError("curves is empty")
    fig = Figure(figsize=(5.5, 4.0), dpi=100)
    ax = fig.subplots()
    for i, (name, cv) in enumerate(curves.items()):
        k = np.asarray(cv["k"])
        ax.plot(k, np.asarray(cv["standard"]), "o-", color=f"C{i}", ms=4, label=f"{name}: standard")
        ax.plot(k, np.asarray(cv["robust"]), "s--", color=f"C{i}", ms=4, label=f"{name}: robust")
    if log_k:
        ax.set_xscale("log")
    ax.set_xlabel("k (top-|corr| features used)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(title or "Accuracy using only the k most label-correlated features")
    fig.tight_layout()
    return _save(fig, path)
