"""Image grids: saliency maps, large-eps adversarial examples, interpolation paths (study 2).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``, Agg canvas), so
importing this module never changes the global pyplot backend. Each function takes arrays and an
output path, writes a PNG and returns the path as a string.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jadv.analysis.saliency import saliency_alignment, saliency_display

__all__ = ["plot_image_grid", "plot_saliency_grid", "plot_large_eps_grid", "plot_interpolation"]


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, bbox_inches="tight", format="png")
    return path


def _to_image(img) -> tuple[np.ndarray, str | None]:
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.clip(a, 0.0, 1.0), "gray"
    if a.ndim == 3 and a.shape[-1] == 3:
        return np.clip(a, 0.0, 1.0), None
    raise ValueError(f"an image must be [H, W], [H, W, 1] or [H, W, 3], got shape {a.shape}")


def _check_batch(a, name) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 4:
        raise ValueError(f"{name} must be [B, H, W, C], got shape {a.shape}")
    return a


def plot_image_grid(images, path, *, row_labels: Sequence[str] | None = None,
                    col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 1.6) -> str:
    """Show ``images [R, C, H, W, ch]`` (values in [0, 1]; ch 1 or 3) as an R x C grid.

    Row labels go on the left of each row, column labels above the first row.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 5:
        raise ValueError(f"images must be [rows, cols, H, W, C], got shape {imgs.shape}")
    r, c = imgs.shape[:2]
    if row_labels is not None and len(row_labels) != r:
        raise ValueError(f"{len(row_labels)} row labels for {r} rows")
    if col_labels is not None and len(col_labels) != c:
        raise ValueError(f"{len(col_labels)} column labels for {c} columns")
    fig = Figure(figsize=(cell * c + 0.6, cell * r + 0.4), dpi=100)
    axes = fig.subplots(r, c, squeeze=False)
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            im, cmap = _to_image(imgs[i, j])
            ax.imshow(im, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and col_labels is not None:
                ax.set_title(str(col_labels[j]), fontsize=9)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(str(row_labels[i]), fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_saliency_grid(x, grads: Mapping[str, object], path, *, n: int | None = None, title: str | None = None) -> str:
    """Images and the input gradients of several models side by side (Tsipras et al. Fig. 2).

    Args:
      x: ``[B, H, W, C]`` images in [0, 1].
      grads: model label -> ``[B, H, W, C]`` gradients (e.g. ``{"vanilla": g0, "adversarial": g1}``),
        shown with :func:`jadv.analysis.saliency_display` (clip +-3 sd, rescale to [0, 1]); the
        column title gives each model's mean edge alignment (:func:`jadv.analysis.saliency_alignment`).
      n: show only the first n examples.
    """
    x = _check_batch(x, "x")
    if not grads:
        raise ValueError("grads is empty")
    b = x.shape[0] if n is None else min(n, x.shape[0])
    cols, labels = [x[:b]], ["image"]
    for name, g in grads.items():
        g = _check_batch(g, f"grads[{name!r}]")
        if g.shape[:3] != x.shape[:3]:
            raise ValueError(f"grads[{name!r}] has shape {g.shape}, images {x.shape}")
        disp = np.asarray(saliency_display(g[:b]))
        if disp.shape[-1] not in (1, 3):
            disp = disp.mean(-1, keepdims=True)
        if disp.shape[-1] != x.shape[-1]:  # show 1-channel maps next to RGB images as grey RGB
            disp = np.repeat(disp.mean(-1, keepdims=True), x.shape[-1], -1) if x.shape[-1] in (1, 3) else disp
        cols.append(disp)
        score = float(np.mean(np.asarray(saliency_alignment(g[:b], x[:b]))))
        labels.append(f"{name}\n(edge corr {score:.2f})")
    grid = np.stack(cols, axis=1)
    return plot_image_grid(grid, path, col_labels=labels, row_labels=[f"#{i}" for i in range(b)],
                           title=title or "Input gradients (clipped to ±3 sd, rescaled)")


def plot_large_eps_grid(x, adversarial: Mapping[str, object], path, *, targets=None,
                        class_names: Sequence[str] | None = None, eps: float | None = None,
                        title: str | None = None) -> str:
    """Original images and large-eps targeted adversarial examples of several models (Fig. 4).

    Args:
      x: ``[B, H, W, C]`` originals. adversarial: model label -> ``[B, H, W, C]`` examples.
      targets: optional ``[B]`` target classes, shown as row labels (names from ``class_names``).
      eps: optional radius shown in the title.
    """
    x = _check_batch(x, "x")
    if not adversarial:
        raise ValueError("adversarial is empty")
    cols, labels = [x], ["original"]
    for name, xa in adversarial.items():
        xa = _check_batch(xa, f"adversarial[{name!r}]")
        if xa.shape != x.shape:
            raise ValueError(f"adversarial[{name!r}] has shape {xa.shape}, images {x.shape}")
        cols.append(xa)
        labels.append(str(name))
    rows = None
    if targets is not None:
        t = np.asarray(targets).ravel()
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"{t.shape[0]} targets for {x.shape[0]} images")
        rows = [f"→ {class_names[k] if class_names is not None else k}" for k in t]
    ttl = title or ("Large-ε targeted adversarial examples" + (f" (ε = {eps:g})" if eps is not None else ""))
    return plot_image_grid(np.stack(cols, axis=1), path, row_labels=rows, col_labels=labels, title=ttl)


def plot_interpolation(images, alphas, path, *, row_labels: Sequence[str] | None = None,
                       title: str | None = None) -> str:
    """An interpolation path ``[A, B, H, W, C]`` (from :func:`jadv.analysis.interpolate`): one row
    per example, one column per alpha."""
    imgs = np.asarray(images)
    a = np.asarray(alphas).ravel()
    if imgs.ndim != 5:
        raise ValueError(f"images must be [A, B, H, W, C], got shape {imgs.shape}")
    if a.shape[0] != imgs.shape[0]:
        raise ValueError(f"{a.shape[0]} alphas for {imgs.shape[0]} interpolation steps")
    grid = np.swapaxes(imgs, 0, 1)
    return plot_image_grid(grid, path, row_labels=row_labels, col_labels=[f"α = {v:.2f}" for v in a],
                           title=title or "Interpolation x → x_adv")
