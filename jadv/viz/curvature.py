"""Figures for curvature and loss-landscape analyses (matplotlib, Agg backend, PNG output).

* :func:`plot_spectral_density`: SLQ Hessian eigenvalue density on a log y axis (PyHessian style).
* :func:`plot_landscape_1d`: 1-D loss curves ``L(theta + alpha d)``, one labelled line per model.
* :func:`plot_eigenvalues_vs_eps`: top Hessian eigenvalue (or trace) against the training radius
  eps, one labelled line per Hessian kind / model family (Yamada et al. 2021's figure).

Each function returns the matplotlib ``Figure`` and, given ``path``, saves it as PNG and closes it.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_spectral_density", "plot_landscape_1d", "plot_eigenvalues_vs_eps"]


def _save(fig, path):
    if path is not None:
        path = os.fspath(path)
        if not path.lower().endswith(".png"):
            raise ValueError(f"path must end in .png, got {path!r}")
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return fig


def _as_curves(name, curves):
    if not isinstance(curves, dict) or not curves:
        raise TypeError(f"{name} must be a non-empty dict label -> (x, y), got {type(curves).__name__}")
    out = {}
    for label, xy in curves.items():
        if not isinstance(xy, (tuple, list)) or len(xy) != 2:
            raise ValueError(f"{name}[{label!r}] must be a pair (x, y)")
        x, y = np.asarray(xy[0], dtype=np.float64), np.asarray(xy[1], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"{name}[{label!r}]: x and y must be 1-D of equal length, got {x.shape}, {y.shape}")
        out[str(label)] = (x, y)
    return out


def plot_spectral_density(grid, density, *, path=None, label=None, floor: float = 1e-8, title=None):
    """Plot an eigenvalue density (from :func:`jadv.analysis.spectral_density`) on a log y axis.

    Args:
      grid, density: [G] arrays; density values below ``floor`` are clipped to it for the log axis.
      path: optional ``.png`` path; label: legend entry; title: axes title.

    Returns:
      the Figure.
    """
    g, d = np.asarray(grid, np.float64), np.asarray(density, np.float64)
    if g.ndim != 1 or g.shape != d.shape:
        raise ValueError(f"grid and density must be 1-D of equal length, got {g.shape}, {d.shape}")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(g, np.maximum(d, floor), label=label)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log)")
    ax.set_title(title or "Hessian eigenvalue density (SLQ)")
    if label is not None:
        ax.legend()
    return _save(fig, path)


def plot_landscape_1d(curves, *, path=None, title=None, ylabel="loss", xlabel=r"$\alpha$"):
    """Plot 1-D loss curves, e.g. ``{"standard": (alphas, losses), "PGD-AT": (alphas, losses)}``.

    Returns:
      the Figure.
    """
    curves = _as_curves("curves", curves)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "loss along a filter-normalised direction")
    ax.legend()
    return _save(fig, path)


def plot_eigenvalues_vs_eps(eps, values, *, path=None, title=None, ylabel=r"$\lambda_{\max}$",
                            logy: bool = False):
    """Plot Hessian top eigenvalues (or traces) against eps, one labelled line per series.

    Args:
      eps: [E] radii; values: dict label -> [E] (e.g. ``{"exact": ..., "fixed x_adv": ...}``).

    Returns:
      the Figure.
    """
    e = np.asarray(eps, np.float64)
    if not isinstance(values, dict) or not values:
        raise TypeError("values must be a non-empty dict label -> [E] array")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, v in values.items():
        v = np.asarray(v, np.float64)
        if v.shape != e.shape:
            raise ValueError(f"values[{label!r}] has shape {v.shape}, eps has {e.shape}")
        ax.plot(e, v, marker="o", label=str(label))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(r"$\epsilon$")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "sharpness against the training radius")
    ax.legend()
    return _save(fig, path)
