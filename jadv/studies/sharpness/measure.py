"""Sharpness measurements of adversarially trained models (Yamada et al. 2021; Wu et al. 2020).

Two families, both usable on a researcher's own models:

* **Linear logistic regression** in closed form (:func:`logistic_sharpness`): the adversarial
  minimiser for every eps of a grid, the top eigenvalue and trace of the *exact* Hessian (the
  worst-case perturbation moves with w) and of the *fixed-x_adv* Hessian (what PGD-based tools
  measure), and the smallest eigenvalue of their difference. Data: :func:`toy_data`,
  :func:`binary_features`.
* **Networks** (Flax Linen ``apply_fn`` with the ``train=`` flag of the jadv models; any
  ``variables`` with a ``params`` collection): :func:`adversarial_hessian` (Lanczos top eigenvalue
  and Hutchinson trace of the adversarial training loss), :func:`adversarial_spectral_density`
  (SLQ), :func:`landscape_curves` (clean and robust 1-D loss along a direction, the robust one
  re-attacked at every point as in AWP), :func:`local_curvature` and
  :func:`clean_and_robust_accuracy`. The attack is L2 or Linf PGD from x (zero init by default),
  step 2.5 eps / steps, with running batch-norm statistics (:func:`pgd_attack`).

Nothing here jits itself: jit the network functions at the call site with ``apply_fn`` and the
hyperparameters bound (``functools.partial``) and ``variables, x, y, eps, key`` as arguments, so
one compiled program serves every model of an architecture and every eps.

Keys: each network function takes one base ``key`` and derives its sub-keys with ``fold_in``
(the PGD attack of :func:`adversarial_hessian` and :func:`adversarial_spectral_density` 1,
Lanczos 2, Hutchinson 3, landscape attack 4, accuracy attack 5, SLQ 6), so that measuring several
models with the same ``key`` uses the same random vectors for each.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jadv import data as jdata
from jadv.analysis import (adv_logistic_hessian, adv_logistic_sweep, hessian_trace, landscape_1d,
                           make_adversarial_loss_fn, make_loss_fn, spectral_density, top_eigenvalues)
from jadv.attacks import pgd

__all__ = ["toy_data", "binary_features", "logistic_sharpness", "pgd_attack", "adversarial_hessian",
           "adversarial_spectral_density", "landscape_curves", "local_curvature",
           "clean_and_robust_accuracy"]


# ----------------------------------------------------------------------------------------------
# Linear logistic regression (closed form)
# ----------------------------------------------------------------------------------------------

def toy_data(n: int, d: int = 20, informative: int = 5, shift: float = 0.5, seed: int = 0):
    """Two overlapping Gaussian classes: ``x ~ N(y * shift * 1_informative, I_d)``, y uniform in +-1.

    Not separable, so the unregularised (adversarial) logistic minimiser exists. Only the first
    ``informative`` coordinates carry signal.

    Returns:
      ``(x [n, d] float64, y [n] float64 in {-1, +1})``.
    """
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    mu = np.zeros(d)
    mu[:informative] = shift
    x = rng.normal(size=(n, d)) + y[:, None] * mu
    return x, y


def binary_features(name: str, data_dir=None, n_max: int | None = None, *, positive=5, negative=7):
    """A two-class task of an image dataset (default 5 vs 7) as centred pixel features.

    Args:
      name: a dataset of :func:`jadv.data.load` ("digits", "mnist", ...); its training split.
      data_dir: raw data directory (None: the default search path).
      n_max: keep the first ``n_max`` examples (None: all).
      positive, negative: the classes (label +1 and -1), via :func:`jadv.data.binary_task`.

    Returns:
      ``(x [n, H*W*C] float64, pixel values in [0, 1] minus their mean over the examples,
      y [n] float64 in {-1, +1})``.
    """
    ds = jdata.binary_task(jdata.load(name, "train", data_dir=data_dir), positive, negative)
    x = ds.images.reshape(len(ds), -1).astype(np.float64) / 255.0
    y = np.where(ds.labels == 1, 1.0, -1.0)
    if n_max:
        x, y = x[:n_max], y[:n_max]
    return x - x.mean(axis=0), y


def logistic_sharpness(x, y, eps_grid, *, norm: str = "l2", l2_reg: float = 0.0, iters: int = 300,
                       informative: int | None = None) -> dict:
    """Sharpness of adversarial linear logistic regression at its minimiser, for every eps.

    Fits the adversarial minimiser w*(eps) of ``mean softplus(-y w.x + eps ||w||_*) +
    l2_reg/2 ||w||^2`` by L-BFGS for the whole grid in one vmapped float64 program
    (:func:`jadv.analysis.adv_logistic_sweep`) and measures the closed-form Hessians of
    Yamada et al. 2021 (arXiv:2102.02950) at w*: the exact one and the fixed-x_adv one
    (:func:`jadv.analysis.adv_logistic_hessian`).

    Args:
      x: [n, d] features; y: [n] labels in {-1, +1}.
      eps_grid: [E] radii >= 0.
      norm: "l2" or "linf" threat model.
      l2_reg: weight decay (needed on separable data); iters: L-BFGS iterations.
      informative: if given, also report the share of ``|w*|`` on the first ``informative``
        coordinates (the toy's signal coordinates).

    Returns:
      dict of numpy arrays with a leading axis E: ``eps``, ``w`` [E, d], ``w_norm``, ``loss``,
      ``grad_norm``, ``lambda_max_exact``, ``lambda_max_fixed``, ``trace_exact``, ``trace_fixed``,
      ``min_eig_exact_minus_fixed`` (smallest eigenvalue of exact - fixed Hessian; >= 0 by the
      theory) and, with ``informative``, ``informative_share``.
    """
    with jax.enable_x64(True):
        X, Y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        eps = jnp.asarray(eps_grid, jnp.float64)
        # the data are arguments, not closed-over constants: XLA would constant-fold the whole
        # [n, d] float64 arithmetic on them at compile time (seconds on MNIST)
        out = jax.jit(lambda xs, ys, e: adv_logistic_sweep(xs, ys, e, norm=norm, l2_reg=l2_reg, iters=iters))(X, Y, eps)
        gap = []
        for i, e in enumerate(eps_grid):
            he = adv_logistic_hessian(out["w"][i], X, Y, eps=float(e), norm=norm, kind="exact")
            hf = adv_logistic_hessian(out["w"][i], X, Y, eps=float(e), norm=norm, kind="fixed_xadv")
            gap.append(float(jnp.linalg.eigvalsh(he - hf)[0]))
        res = {k: np.asarray(v) for k, v in out.items()}
    res["min_eig_exact_minus_fixed"] = np.asarray(gap)
    res["eps"] = np.asarray(eps_grid, np.float64)
    if informative is not None:
        w = np.abs(res["w"])
        res["informative_share"] = w[:, :informative].sum(1) / np.maximum(w.sum(1), 1e-30)
    return res


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------

def pgd_attack(apply_fn, variables, *, eps, key, norm: str = "l2", steps: int = 10,
               step_size_factor: float = 2.5, init: str = "zero"):
    """``attack(params, x, y) -> x_adv`` for :func:`jadv.analysis.make_adversarial_loss_fn`.

    PGD (:func:`jadv.attacks.pgd`) against ``apply_fn({**variables, "params": params}, x,
    train=False)`` (running BN statistics), step ``step_size_factor * eps / steps``, start
    ``init``, a fixed ``key``. ``eps`` may be traced; eps = 0 returns x.
    """
    def attack(params, x, y):
        full = {**variables, "params": params}
        return pgd(lambda z: apply_fn(full, z, train=False), x, y, key=key, eps=eps,
                   step_size=step_size_factor * eps / steps, steps=steps, norm=norm, init=init)
    return attack


def _adversarial_loss(apply_fn, variables, x, y, *, eps, key, norm, attack_steps, hessian="fixed_xadv"):
    attack = pgd_attack(apply_fn, variables, eps=eps, key=jax.random.fold_in(key, 1), norm=norm,
                        steps=attack_steps)
    return make_adversarial_loss_fn(apply_fn, variables, (x, y), attack=attack, hessian=hessian,
                                    bn_mode="eval")


def adversarial_hessian(apply_fn, variables, x, y, *, eps, key, norm: str = "l2", attack_steps: int = 10,
                        lanczos_iters: int = 100, trace_samples: int = 100,
                        hessian: str = "fixed_xadv") -> dict:
    """Top eigenvalue and trace of the Hessian (in the parameters) of the adversarial training loss.

    The loss is ``mean CE(f_w(x_adv), y)`` on the batch ``(x, y)`` with batch norm in eval mode
    (running statistics, as PyHessian). ``hessian="fixed_xadv"``: x_adv is crafted once by PGD at
    the trained weights and held fixed (what PGD-based tools report; Yamada et al. 2021,
    arXiv:2102.02950, measure the sharpness of adversarially trained softmax networks this way);
    ``"exact"``: PGD is re-run inside the loss and differentiated through.

    Args:
      apply_fn: ``model.apply`` of a Linen model with a ``train`` flag.
      variables: ``{"params", "batch_stats", ...}``; only ``params`` is differentiated.
      x: [B, H, W, C] images in [0, 1]; y: [B] int labels (a fixed subset of the training set).
      eps: attack radius (may be traced; 0 gives the clean loss).
      key: base key (attack ``fold_in(key, 1)``, Lanczos ``fold_in(key, 2)``, Hutchinson
        ``fold_in(key, 3)``).
      norm, attack_steps: the PGD attack (step 2.5 eps / steps, zero init).
      lanczos_iters: Lanczos steps (:func:`jadv.analysis.top_eigenvalues`).
      trace_samples: Rademacher vectors of the Hutchinson estimate (:func:`jadv.analysis.hessian_trace`).

    Returns:
      dict of scalars ``lambda_max``, ``trace``, ``trace_stderr``, ``adv_loss`` (the loss at the
      trained weights).
    """
    loss = _adversarial_loss(apply_fn, variables, x, y, eps=eps, key=key, norm=norm,
                             attack_steps=attack_steps, hessian=hessian)
    params = variables["params"]
    eigvals, _ = top_eigenvalues(loss, params, key=jax.random.fold_in(key, 2), k=1, method="lanczos",
                                 iters=lanczos_iters)
    trace, stderr = hessian_trace(loss, params, key=jax.random.fold_in(key, 3), samples=trace_samples)
    return {"lambda_max": eigvals[0], "trace": trace, "trace_stderr": stderr, "adv_loss": loss(params)}


def adversarial_spectral_density(apply_fn, variables, x, y, *, eps, key, norm: str = "l2",
                                 attack_steps: int = 10, order: int = 90, grid_size: int = 2000):
    """Hessian eigenvalue density (stochastic Lanczos quadrature) of the adversarial training loss.

    The same loss as :func:`adversarial_hessian` (x_adv fixed at the trained weights, BN eval);
    attack ``fold_in(key, 1)``, SLQ ``fold_in(key, 6)``; :func:`jadv.analysis.spectral_density`
    with ``order`` Lanczos steps.

    Returns:
      ``(grid [grid_size], density [grid_size])``.
    """
    loss = _adversarial_loss(apply_fn, variables, x, y, eps=eps, key=key, norm=norm, attack_steps=attack_steps)
    return spectral_density(loss, variables["params"], key=jax.random.fold_in(key, 6), order=order,
                            grid_size=grid_size)


def landscape_curves(apply_fn, variables, x, y, direction, alphas, *, eps, key, norm: str = "l2",
                     attack_steps: int = 10):
    """Clean and robust loss along a direction: ``L(w + a d)`` and ``rho(w + a d)`` for a in alphas.

    The robust loss ``rho`` (Wu et al. 2020, "Adversarial Weight Perturbation Helps Robust
    Generalization", NeurIPS 2020, eq. 1) re-runs PGD (key ``fold_in(key, 4)``) against every
    perturbed weight ``w + a d``; both losses use running BN statistics. Pair it with
    :func:`jadv.analysis.filter_normalized_direction` (Li et al. 2018) for ``direction``.

    Args:
      direction: a pytree shaped like ``variables["params"]``.
      alphas: [A] step sizes.

    Returns:
      ``(clean [A], robust [A])``; robust >= clean up to the attack's tolerance.
    """
    clean = make_loss_fn(apply_fn, variables, (x, y), bn_mode="eval")
    attack = pgd_attack(apply_fn, variables, eps=eps, key=jax.random.fold_in(key, 4), norm=norm,
                        steps=attack_steps)
    robust = make_adversarial_loss_fn(apply_fn, variables, (x, y), attack=attack, hessian="exact",
                                      bn_mode="eval")
    params = variables["params"]
    return landscape_1d(clean, params, direction, alphas)[1], landscape_1d(robust, params, direction, alphas)[1]


def local_curvature(alphas, losses, span: float) -> float:
    """Second derivative of the least-squares parabola through the points with ``|alpha| <= span``.

    (The three points nearest 0 when fewer than three lie within ``span``.) A scalar summary of a
    1-D landscape's sharpness at the centre.
    """
    a, l = np.asarray(alphas, np.float64), np.asarray(losses, np.float64)
    keep = np.abs(a) <= span + 1e-9
    if keep.sum() < 3:
        keep = np.argsort(np.abs(a))[:3]
    return float(2.0 * np.polyfit(a[keep], l[keep], 2)[0])


def clean_and_robust_accuracy(apply_fn, variables, x, y, *, eps, key, norm: str = "l2", steps: int = 10):
    """Clean accuracy and accuracy under PGD (zero init, step 2.5 eps / steps, key ``fold_in(key, 5)``)
    of ``apply_fn(variables, x, train=False)`` on one batch.

    The robust accuracy is the share of points the attacked model classifies correctly (as the
    training-set robust accuracy of Wu et al. 2020); for dataset-scale evaluation with the
    worst case over several attacks use :func:`jadv.attacks.robust_accuracy`.

    Returns:
      ``(clean_accuracy, robust_accuracy)`` scalars.
    """
    f = lambda z: apply_fn(variables, z, train=False)  # noqa: E731
    x_adv = pgd(f, x, y, key=jax.random.fold_in(key, 5), eps=eps, step_size=2.5 * eps / steps, steps=steps,
                norm=norm, init="zero")
    return jnp.mean(jnp.argmax(f(x), -1) == y), jnp.mean(jnp.argmax(f(x_adv), -1) == y)
