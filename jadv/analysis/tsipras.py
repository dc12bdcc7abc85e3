"""Exact accuracies of linear classifiers on the Tsipras et al. distribution (study 2 theory).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR 2019),
eq. (3): ``y`` uniform on {-1, +1}; ``x_1 = +y`` with probability ``p`` and ``-y`` otherwise (the
robust feature); ``x_2 .. x_{d+1}`` i.i.d. ``N(eta * y, 1)`` (the weak, non-robust features).

For ``f(x) = sign(w_0 x_1 + w_r . x_r)`` (no bias) the accuracies are exact closed forms
(derivation in :func:`linear_accuracy_theory`), so the theorems can be checked without sampling:

* Theorem 2.1: standard accuracy >= 1 - delta implies L-inf robust accuracy <= p/(1-p) delta for
  every eps >= 2 eta (:func:`theorem_2_1_bound`).
* Theorem 2.2: with 1/2 <= p <= 0.975 and eta >= 4/sqrt(d), the standard (SVM) classifier puts
  equal weight on the weak features (-> :func:`averaging_classifier`): standard > 99%, robust < 1%
  at eps >= 2 eta; the adversarially trained one ignores them (-> :func:`robust_feature_classifier`):
  standard = robust = p for eps < 1 (with eps_train < 2p - 1, else w = 0; see the reference note).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from jadv._checks import check_nonnegative, check_positive_int
from jadv._typing import ArrayLike

__all__ = ["linear_accuracy_theory", "theorem_2_1_bound", "averaging_classifier", "robust_feature_classifier",
           "theorem_2_2_conditions", "theorem_2_2_check"]


def _check_p(p, upper_open: bool = True) -> None:
    pv = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(pv)) or np.any(pv < 0.5) or np.any(pv >= 1.0 if upper_open else pv > 1.0):
        raise ValueError(f"p must lie in [1/2, 1{')' if upper_open else ']'}, got {p!r}")


def linear_accuracy_theory(w: ArrayLike, *, p: float, eta: float, eps: float = 0.0) -> jax.Array:
    """Exact standard (``eps=0``) or L-inf-robust accuracy of ``sign(w . x)`` on Tsipras eq. (3).

    Derivation. The distribution is symmetric under ``(x, y) -> (-x, -y)`` and ``sign`` is odd, so
    condition on ``y = +1``. The worst L-inf perturbation of radius eps lowers the margin ``y w.x``
    by exactly ``eps ||w||_1 = eps |w_0| + eps ||w_r||_1`` (``delta = -eps y sign(w)``; the
    features are unbounded, so there is no box). The weak part ``S = w_r . x_r`` is
    ``N(eta sum(w_r), ||w_r||_2^2)``. Conditioning on ``x_1 = +1`` (prob. p) or ``-1`` (1 - p):

        acc = p * P[S > t_+] + (1 - p) * P[S > t_-],   t_+- = eps ||w||_1 -+ w_0,
        P[S > t] = Phi((eta sum(w_r) - t) / ||w_r||_2).

    A zero margin counts as an error (``sign(0) = 0``), which matters only when ``w_r = 0``, where
    ``P[S > t] = 1[t < 0]``. ``eps = 0`` gives the standard accuracy.

    Args:
      w: ``[d + 1]`` weights ``(w_0, w_2..w_{d+1})``, or ``[..., d + 1]`` for a batch of classifiers.
      p: probability that ``x_1 = y``, in [1/2, 1].
      eta: mean shift of the weak features (>= 0).
      eps: L-inf radius (>= 0; a scalar).

    Returns:
      accuracy with shape ``w.shape[:-1]`` (float32; jit/vmap-able in w).
    """
    if jnp.ndim(w) < 1 or jnp.shape(w)[-1] < 2:
        raise ValueError(f"w must have shape [..., d + 1] with d >= 1, got {jnp.shape(w)}")
    _check_p(p, upper_open=False)
    check_nonnegative("eta", eta)
    check_nonnegative("eps", eps)
    w = jnp.asarray(w, jnp.float32)
    w0, wr = w[..., 0], w[..., 1:]
    mean = eta * jnp.sum(wr, axis=-1)
    std = jnp.sqrt(jnp.sum(wr ** 2, axis=-1))
    l1 = jnp.sum(jnp.abs(w), axis=-1)
    t_plus, t_minus = eps * l1 - w0, eps * l1 + w0

    def p_greater(t):
        safe = jnp.where(std > 0, std, 1.0)
        return jnp.where(std > 0, ndtr((mean - t) / safe), (t < 0).astype(jnp.float32))

    return p * p_greater(t_plus) + (1 - p) * p_greater(t_minus)


def theorem_2_1_bound(standard_accuracy: ArrayLike, *, p: float) -> jax.Array:
    """Theorem 2.1 of Tsipras et al.: robust accuracy <= p / (1 - p) * (1 - standard accuracy).

    Holds for every classifier and every L-inf radius eps >= 2 eta on eq. (3). The bound is
    returned unclipped (it can exceed 1, where it says nothing).

    Args:
      standard_accuracy: scalar or array in [0, 1].
      p: in [1/2, 1).
    """
    _check_p(p)
    a = np.asarray(standard_accuracy, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"standard_accuracy must lie in [0, 1], got {standard_accuracy!r}")
    return p / (1.0 - p) * (1.0 - jnp.asarray(standard_accuracy, jnp.float32))


def averaging_classifier(d: int) -> jax.Array:
    """``w = (0, 1, ..., 1)`` of length d + 1: sign of the sum of the weak features.

    The direction of the standard (SVM) solution of Theorem 2.2 (Lemma D.1, equal weak weights;
    the theorem's classifier also has a small weight on x_1 that does not change these limits).
    Standard accuracy ``Phi(eta sqrt(d))``, L-inf robust accuracy ``Phi(-eta sqrt(d))`` at
    eps = 2 eta.
    """
    d = check_positive_int("d", d)
    return jnp.concatenate([jnp.zeros(1, jnp.float32), jnp.ones(d, jnp.float32)])


def robust_feature_classifier(d: int) -> jax.Array:
    """``w = (1, 0, ..., 0)`` of length d + 1: ``sign(x_1)``, the adversarial minimiser of
    Theorem 2.2 (ii) (Lemma D.5). Standard = robust accuracy = p for every eps < 1."""
    d = check_positive_int("d", d)
    return jnp.zeros(d + 1, jnp.float32).at[0].set(1.0)


def theorem_2_2_conditions(*, d: int, p: float, eta: float, eps_train: float | None = None) -> dict:
    """Which hypotheses of Theorem 2.2 hold: ``d >= 1``, ``1/2 <= p <= 0.975``, ``eta >= 4/sqrt(d)``
    and, for part (ii), the formaliser's extra condition ``eps_train < 2p - 1`` (otherwise w = 0 is
    the adversarial minimiser). Returns a dict of booleans (``all`` is their conjunction)."""
    d = check_positive_int("d", d)
    out = {"p_range": 0.5 <= p <= 0.975, "eta_large": eta >= 4.0 / np.sqrt(d) - 1e-12}
    if eps_train is not None:
        check_nonnegative("eps_train", eps_train)
        out["eps_train_below_2p_minus_1"] = eps_train < 2 * p - 1
    out["all"] = all(out.values())
    return out


def theorem_2_2_check(w_standard: ArrayLike, w_adversarial: ArrayLike, *, p: float, eta: float, eps: float, tol: float = 1e-3) -> dict:
    """Check the conclusions of Theorem 2.2 for given classifiers with the exact accuracies.

    (i) the standard classifier has standard accuracy > 0.99 and robust accuracy < 0.01 at
    ``eps`` (>= 2 eta); (ii) the adversarially trained classifier has standard and robust accuracy
    within ``tol`` of p (for eps < 1).

    Returns:
      dict with the four accuracies (``standard_std``, ``standard_rob``, ``adversarial_std``,
      ``adversarial_rob``) as floats and the booleans ``part_i`` and ``part_ii``.
    """
    check_nonnegative("eps", eps)
    if float(eps) < 2 * float(eta) - 1e-12:
        raise ValueError(f"Theorem 2.2 is stated for eps >= 2 eta = {2 * eta:.4g}, got eps={eps}")
    s_std = float(linear_accuracy_theory(w_standard, p=p, eta=eta))
    s_rob = float(linear_accuracy_theory(w_standard, p=p, eta=eta, eps=eps))
    a_std = float(linear_accuracy_theory(w_adversarial, p=p, eta=eta))
    a_rob = float(linear_accuracy_theory(w_adversarial, p=p, eta=eta, eps=eps))
    return {"standard_std": s_std, "standard_rob": s_rob, "adversarial_std": a_std, "adversarial_rob": a_rob,
            "part_i": s_std > 0.99 and s_rob < 0.01,
            "part_ii": abs(a_std - p) <= tol and abs(a_rob - p) <= tol}
