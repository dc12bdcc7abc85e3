"""Gradient-masking checks, after AutoAttack's flags (Croce & Hein 2020, ``autoattack/checks.py``
and ``flags_doc.md``) plus the eps-curve sanity checks of Carlini et al. 2019 ("On evaluating
adversarial robustness"): robust accuracy must not increase with eps, and must reach ~0 at a very
large eps (:func:`jadv.attacks.eps_curve.eps_curve_flags` runs the curve and applies both).

Each check returns a plain value; :func:`masking_flags` collects them into a dict of
``{name: {"flag": bool, "value": ..., "message": str}}`` (``flag`` True means "suspicious").
"""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jadv._typing import ArrayLike, LogitsFn, Scalar
from jadv.attacks._validate import check_attack_inputs, check_key
from jadv.attacks.apgd import top_targets
from jadv.attacks.losses import dlr, dlr_targeted, margin
from jadv.attacks.projections import init_point, per_example_norm

__all__ = ["zero_gradient_mask", "zero_gradient_fraction", "is_randomized", "is_softmax_output", "square_beats_whitebox",
           "accuracy_increases_with_eps", "not_broken_at_large_eps", "masking_flags"]


def _start_points(x, key, eps, norm):
    if key is None or eps is None or not float(eps) > 0:
        return x
    return init_point(key, x, eps, norm, "apgd")


def _dlr_check_loss(logits, y):
    """The loss whose gradient AutoAttack checks: targeted DLR towards the runner-up class (APGD-T's
    first target) for K >= 4, untargeted DLR for K = 3, the logit margin for K = 2."""
    k = logits.shape[-1]
    if k >= 4:
        return dlr_targeted(logits, y, top_targets(lax.stop_gradient(logits), 1)[0])
    if k == 3:
        return dlr(logits, y)
    return margin(logits, y)


def zero_gradient_mask(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array | None = None,
                       eps: Scalar | None = None, norm: str = "linf") -> jax.Array:
    """Which points have an exactly zero input gradient, by AutoAttack's definition.

    AutoAttack (Croce & Hein 2020, ``autoattack/checks.py`` ``check_zero_gradients``, called from
    APGD's ``attack_single_run`` for the DLR losses) takes the gradient of the (targeted) DLR loss
    at the attack's start points, on every batch it attacks, and flags a point whose gradient has
    L1 norm 0. Here the start points are drawn as APGD draws them (``init_point(..., "apgd")``:
    ``x`` plus a random vector of norm ``eps``, clipped to [0, 1]) when ``key`` and ``eps > 0`` are
    given, else the clean points; the loss is :func:`_dlr_check_loss`. DLR is scale-invariant in
    the logits, so a confident model whose softmax saturates (CE gradient exactly 0 in float32) is
    not flagged, while a piecewise-constant model (rounding, thresholding, ``stop_gradient``) is.

    x ``[B, H, W, C]``, y ``[B]`` int. Pure and jit-able. Returns bool ``[B]``.
    """
    x = jnp.asarray(x)
    x0 = _start_points(x, key, eps, norm)
    g = jax.grad(lambda xa: jnp.sum(_dlr_check_loss(logits_fn(xa), y)))(x0)
    return per_example_norm(g, "l1") == 0


def zero_gradient_fraction(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array | None = None,
                           eps: float | None = None, norm: str = "linf") -> float:
    """Share of points flagged by :func:`zero_gradient_mask` (a float in [0, 1]).

    x ``[B, ...]``, y ``[B]``; ``key``/``eps``/``norm`` choose the start points as there.
    """
    check_attack_inputs(logits_fn, x, y, 0.0 if eps is None else eps, norm)
    if key is not None:
        check_key(key)
    return float(jnp.mean(zero_gradient_mask(logits_fn, x, y, key=key, eps=eps, norm=norm)))


def is_randomized(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike | None = None, *, n: int = 5,
                  alpha: float = 1e-4) -> bool:
    """True if ``n`` calls on the same input give different (L2-normalised) outputs by more than
    ``alpha`` or a different number of correct predictions (AA ``check_randomized``)."""
    outs = [np.asarray(logits_fn(x), np.float64) for _ in range(n)]
    normed = [o / (np.linalg.norm(o, axis=-1, keepdims=True) + 1e-10) for o in outs]
    max_diff = max((np.linalg.norm(normed[i] - normed[j], axis=-1).max()
                    for i in range(n) for j in range(i + 1, n)), default=0.0)
    if y is not None:
        counts = {int((o.argmax(-1) == np.asarray(y)).sum()) for o in outs}
        if len(counts) > 1:
            return True
    return bool(max_diff > alpha)


def is_softmax_output(logits_fn: LogitsFn, x: ArrayLike, *, alpha: float = 1e-5) -> bool:
    """True if the outputs look like probabilities (in [0, 1] and rows summing to 1), i.e. the model
    returns softmax outputs instead of logits (AA ``check_range_output``)."""
    o = np.asarray(logits_fn(x), np.float64)
    return bool(o.max() < 1 + alpha and o.min() > -alpha and np.all(np.abs(o.sum(-1) - 1) < alpha))


def square_beats_whitebox(accuracies: dict, *, alpha: float = 0.002) -> bool:
    """True if the black-box Square attack reached a robust accuracy lower (by more than ``alpha``) than
    the best white-box attack (AA ``check_square_sr``). ``accuracies``: attack name -> robust accuracy;
    attacks whose name starts with "square" are black-box, the rest white-box (a "clean" entry is
    ignored)."""
    sq = [v for k, v in accuracies.items() if k.lower().startswith("square")]
    wb = [v for k, v in accuracies.items() if not k.lower().startswith("square") and k != "clean"]
    if not sq or not wb:
        return False
    return bool(min(sq) < min(wb) - alpha)


def accuracy_increases_with_eps(eps_grid: ArrayLike, accuracies: ArrayLike, *, tol: float = 0.0) -> bool:
    """True if robust accuracy increases (by more than ``tol``) from some eps to a larger one."""
    e = np.asarray(eps_grid, np.float64)
    a = np.asarray(accuracies, np.float64)[np.argsort(e)]
    worst_so_far = np.minimum.accumulate(a)
    return bool(np.any(a > worst_so_far + tol))


def not_broken_at_large_eps(accuracy_at_large_eps: float, *, threshold: float = 0.01) -> bool:
    """True if the robust accuracy at a very large eps stays above ``threshold`` (an attack able to
    change the image freely must break everything; otherwise gradients are masked)."""
    return bool(float(accuracy_at_large_eps) > threshold)


def masking_flags(logits_fn: LogitsFn, x: ArrayLike, y: ArrayLike, *, key: jax.Array | None = None,
                  eps: float | None = None, norm: str = "linf", zero_gradients: float | None = None,
                  attack_accuracies: dict | None = None, eps_grid: ArrayLike | None = None,
                  curve: ArrayLike | None = None, large_eps_accuracy: float | None = None,
                  warn: bool = True) -> dict:
    """Collect the checks into ``{name: {"flag", "value", "message"}}`` and optionally warn.

    Always: "zero_gradients" (``zero_gradients``, the share of flagged points when the caller
    checked every batch as :func:`robust_accuracy` and :func:`autoattack` do; else
    :func:`zero_gradient_fraction` on ``x, y`` at start points drawn with ``key``, ``eps``,
    ``norm``), "randomized" and "softmax_output" (on ``x, y``, as AutoAttack does on its first
    batch). With ``attack_accuracies`` (name -> accuracy): "square_beats_whitebox". With
    ``eps_grid`` and ``curve``: "accuracy_increases_with_eps". With ``large_eps_accuracy``:
    "not_broken_at_large_eps".
    """
    out = {}
    z = zero_gradient_fraction(logits_fn, x, y, key=key, eps=eps, norm=norm) if zero_gradients is None \
        else float(zero_gradients)
    out["zero_gradients"] = {"flag": z > 0, "value": z,
                             "message": f"{z:.2%} of the points have an exactly zero input gradient of the "
                                        "DLR loss at the attack's start points"}
    r = is_randomized(logits_fn, x, y)
    out["randomized"] = {"flag": r, "value": r, "message": "the model output changes between calls on the same input"}
    s = is_softmax_output(logits_fn, x)
    out["softmax_output"] = {"flag": s, "value": s,
                             "message": "the outputs look like probabilities; attacks need logits"}
    if attack_accuracies is not None:
        sq = square_beats_whitebox(attack_accuracies)
        out["square_beats_whitebox"] = {"flag": sq, "value": dict(attack_accuracies),
                                        "message": "the black-box Square attack beat the white-box attacks"}
    if eps_grid is not None and curve is not None:
        inc = accuracy_increases_with_eps(eps_grid, curve)
        out["accuracy_increases_with_eps"] = {"flag": inc, "value": [float(c) for c in np.asarray(curve)],
                                              "message": "robust accuracy increases with eps somewhere on the curve"}
    if large_eps_accuracy is not None:
        nb = not_broken_at_large_eps(large_eps_accuracy)
        out["not_broken_at_large_eps"] = {"flag": nb, "value": float(large_eps_accuracy),
                                          "message": "robust accuracy does not reach ~0 at a very large eps"}
    if warn:
        for name, v in out.items():
            if v["flag"]:
                warnings.warn(f"gradient-masking check {name!r}: {v['message']}", stacklevel=2)
    for v in out.values():
        v["flag"] = bool(v["flag"])
    return out

