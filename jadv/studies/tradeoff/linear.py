"""Many linear classifiers at once, and the binary 5-vs-7 part of study 2 (claim 2.14).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019, arXiv:1805.12152): on binary MNIST (5 vs 7), a linear classifier trained adversarially
puts its weight on fewer pixels, those most correlated with the label, and loses standard
accuracy. A linear model's worst case is closed form (the margin drops by ``eps ||w||_dual``), so
training (:func:`jadv.analysis.train_linear`) and evaluation
(:func:`jadv.analysis.linear_adversarial_margin`) are exact; here a whole eps_train grid of
models is trained and evaluated in one program.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jadv import data as jdata
from jadv.analysis import (feature_label_correlation, large_weight_share, linear_adversarial_margin, top_k_curve,
                           train_linear, weight_correlation_rank)

__all__ = ["train_linear_many", "linear_accuracies", "binary_5_vs_7", "binary_measurements"]


def _check_binary_labels(y) -> None:
    vals = set(np.unique(np.asarray(y)).tolist())
    if not (vals <= {0, 1} or vals <= {-1, 1}):
        raise ValueError(f"labels must be in {{0, 1}} or {{-1, +1}}, got values {sorted(vals)}")


def train_linear_many(x, y, eps, *, norm: str = "linf", steps: int, lr: float, l2_reg: float):
    """Train M binary logistic models at once on the exact adversarial loss, one per radius.

    :func:`jadv.analysis.train_linear` (full-batch Adam with cosine decay to 0, from w = 0)
    vmapped over ``eps`` and jitted: the whole grid is one compiled program.

    Args:
      x: ``[N, D]`` float features; y: ``[N]`` labels in {0, 1} or {-1, +1}.
      eps: ``[M]`` training radii (0 = standard training).
      norm, steps, lr, l2_reg: as in :func:`jadv.analysis.train_linear`.

    Returns:
      ``(w [M, D], b [M])`` numpy arrays.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, D] features (flatten images first), got shape {x.shape}")
    _check_binary_labels(y)
    eps = jnp.atleast_1d(jnp.asarray(eps, jnp.float32))
    if eps.ndim != 1:
        raise ValueError(f"eps must be a 1-D grid of radii, got shape {eps.shape}")

    def one(xx, yy, e):
        return train_linear(xx, yy, eps=e, norm=norm, steps=steps, lr=lr, l2_reg=l2_reg)

    w, b = jax.jit(jax.vmap(one, in_axes=(None, None, 0)))(x, jnp.asarray(y), eps)
    return np.asarray(w), np.asarray(b)


def linear_accuracies(w, b, x, y, eps):
    """Standard and exact L-inf robust accuracy of M linear models ``sign(w_m . x + b_m)``, from
    their worst-case margins (:func:`jadv.analysis.linear_adversarial_margin`, vmapped over the
    models; a zero margin counts as an error).

    Args: w ``[M, D]`` (or ``[D]``); b ``[M]`` or a scalar; x ``[N, D]``; y ``[N]`` in {0, 1} or
    {-1, +1}; eps: the L-inf radius of the robust accuracy (a scalar, the same for every model).
    Returns: ``(standard [M], robust [M])`` float64 numpy arrays (exact fractions of N).
    """
    w = jnp.atleast_2d(jnp.asarray(w, jnp.float32))
    b = jnp.broadcast_to(jnp.asarray(b, jnp.float32), w.shape[:1])
    x = jnp.asarray(x, jnp.float32)
    margins = jax.vmap(lambda wi, bi, e: linear_adversarial_margin(wi, bi, x, y, eps=e), in_axes=(0, 0, None))
    std = (np.asarray(margins(w, b, 0.0)) > 0).mean(1)
    rob = (np.asarray(margins(w, b, float(eps))) > 0).mean(1)
    return std, rob


def binary_5_vs_7(dataset: str, data_dir: str | None = None):
    """The 5-vs-7 task of a digit dataset (:func:`jadv.data.binary_task`), as flat features.

    Returns ``((x_train [N, H*W*C], y_train [N]), (x_test, y_test), (H, W))``: float32 pixels in
    [0, 1] and int32 labels, 1 for "5" and 0 for "7".
    """
    out = []
    for split in ("train", "test"):
        ds = jdata.binary_task(jdata.load(dataset, split, data_dir=data_dir), 5, 7)
        out.append((ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0, ds.labels))
    return out[0], out[1], ds.images.shape[1:3]


def binary_measurements(cfg, data_dir: str | None = None) -> dict:
    """Part 2: linear 5-vs-7 models for an L-inf eps_train grid and top-k-feature models.

    ``cfg`` is the ``binary`` section of ``configs/tradeoff.py``: ``dataset``, ``eps_train``
    (the grid, one program), ``eps_at`` (the grid point taken as "the robust model"), ``ks``
    (feature counts of the top-k models), ``steps``/``lr``/``l2_reg`` (the linear training) and
    ``sparsity_rel`` (:func:`jadv.analysis.large_weight_share`). The top-k models
    (:func:`jadv.analysis.top_k_curve`) keep the k pixels most correlated with the label on the
    training set; they are trained standard and at ``eps_at`` and evaluated at ``eps_at``.

    Returns a JSON-able dict: ``dataset``, ``shape``, ``n_train``, ``n_test``, ``corr`` (per-pixel
    label correlation), ``models`` (per grid point: ``eps_train``, ``standard_accuracy``,
    ``robust_accuracy_eps<e>``, ``large_weight_share``, ``spearman_abs_w_abs_corr``, ``w``,
    ``b``), ``at_index``, ``top_k`` and ``models_per_program`` (the eps grid is one program; each
    top-k model is its own, as the models differ in their number of features).
    """
    (xtr, ytr), (xte, yte), shape = binary_5_vs_7(cfg.dataset, data_dir)
    D = xtr.shape[1]
    corr = np.asarray(feature_label_correlation(xtr, ytr))
    grid = np.asarray(cfg.eps_train, np.float32)
    fit = dict(steps=cfg.steps, lr=cfg.lr, l2_reg=cfg.l2_reg)
    w, b = train_linear_many(xtr, ytr, grid, **fit)
    at = int(np.argmin(np.abs(grid - cfg.eps_at)))
    std_acc, rob_acc = linear_accuracies(w, b, xte, yte, grid[at])
    models = {"eps_train": grid, "standard_accuracy": std_acc, f"robust_accuracy_eps{grid[at]:g}": rob_acc,
              "large_weight_share": [large_weight_share(wi, rel=cfg.sparsity_rel) for wi in w],
              "spearman_abs_w_abs_corr": [weight_correlation_rank(wi, corr) for wi in w],
              "w": w, "b": b}
    # top-k models (jadv.analysis.top_k_curve): the k training pixels most correlated with the label,
    # trained standard and at eps_at, evaluated at eps_at; one small program per (k, eps)
    ks = [k for k in cfg.ks if k <= D]
    curves = [top_k_curve(xtr, ytr, xte, yte, ks, eps_train=e, eps_test=float(grid[at]), **fit)
              for e in (0.0, float(grid[at]))]
    # accuracies are fractions of n_test: undo the float32 rounding of the mean
    frac = lambda a: np.round(np.asarray(a, np.float64) * len(yte)) / len(yte)  # noqa: E731
    topk = {"k": ks, "eps_test": float(grid[at]),
            "standard_model": {"standard": frac(curves[0]["standard"]), "robust": frac(curves[0]["robust"])},
            "at_model": {"standard": frac(curves[1]["standard"]), "robust": frac(curves[1]["robust"])}}
    return {"dataset": cfg.dataset, "shape": list(shape), "n_train": len(ytr), "n_test": len(yte),
            "corr": corr, "models": models, "at_index": at, "top_k": topk,
            "models_per_program": {"eps_grid": len(grid), "top_k": 1}}
