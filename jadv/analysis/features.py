"""Robust and non-robust features of linear models (study 2).

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019): on binary MNIST (5 vs 7) a linear classifier trained adversarially relies on fewer, more
label-correlated pixels than a standard one. Linear models need no attack: the worst L-inf
perturbation of radius eps lowers the margin ``y (w.x + b)`` (labels +-1) by exactly
``eps ||w||_1`` (``eps ||w||_2`` for L2, the dual norm in general), so training and evaluation
are exact.

**The [0, 1] box.** With pixels, the adversary must also keep ``x + delta`` in [0, 1]. The plain
formula ignores that, so it is the exact worst case for *unbounded* inputs and, for images, an
upper bound on the box-constrained adversarial loss (a lower bound on robust accuracy): near-black
or near-white pixels cannot move the full eps in one direction. For L-inf the box-constrained
worst case is also closed form: coordinate i can move down by ``lo_i = min(eps, x_i)`` and up by
``hi_i = min(eps, 1 - x_i)``, so the margin drops by ``sum_i max(c_i lo_i, -c_i hi_i)`` with
``c = y w``, a convex, piecewise-linear function of w. ``box=True`` uses it (L-inf only); this is
the threat model of jadv's image attacks (PGD clips to [0, 1]). The default ``box=False`` is the
classic formula of the paper.

Labels may be {0, 1} or {-1, +1}; internally ``y > 0`` is class +1.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jadv._checks import check_nonnegative, check_norm, check_positive_int, is_concrete
from jadv._typing import ArrayLike

__all__ = ["feature_label_correlation", "top_k_features", "linear_adversarial_margin", "linear_accuracy",
           "linear_robust_accuracy", "train_linear", "top_k_curve", "large_weight_share", "weight_correlation_rank"]

_DUAL = {"linf": 1, "l2": 2, "l1": np.inf}


def _check_xy(x, y, name="x"):
    if jnp.ndim(x) != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] feature matrix (flatten images first), got shape {jnp.shape(x)}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(f"{name} must be a float array, got dtype {jnp.result_type(x)}")
    if jnp.ndim(y) != 1 or jnp.shape(y)[0] != jnp.shape(x)[0]:
        raise ValueError(f"labels must be 1-D with one label per row of {name}: got shapes {jnp.shape(y)} "
                         f"and {jnp.shape(x)}")
    if not (jnp.issubdtype(jnp.result_type(y), jnp.integer) or jnp.issubdtype(jnp.result_type(y), jnp.bool_)):
        raise TypeError(f"labels must be integers in {{0, 1}} or {{-1, +1}}, got dtype {jnp.result_type(y)}")
    if is_concrete(y) and jnp.size(y):
        vals = set(np.unique(np.asarray(y)).tolist())
        if not (vals <= {0, 1} or vals <= {-1, 1}):
            raise ValueError(f"labels must be in {{0, 1}} or {{-1, +1}}, got values {sorted(vals)}")


def _pm1(y):
    return jnp.where(jnp.asarray(y) > 0, 1.0, -1.0).astype(jnp.float32)


def feature_label_correlation(x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Pearson correlation of every feature with the binary label.

    Args:
      x: ``[N, D]`` features (e.g. flattened pixels), N >= 2.
      y: ``[N]`` labels in {0, 1} or {-1, +1} (the correlation is the same for both codings).

    Returns:
      ``[D]`` float32 correlations in [-1, 1]; a constant feature gets 0 (its correlation is
      undefined). Raises ValueError if the labels are all the same.
    """
    _check_xy(x, y)
    if jnp.shape(x)[0] < 2:
        raise ValueError("need at least 2 examples to correlate")
    if is_concrete(y) and len(np.unique(np.asarray(y))) < 2:
        raise ValueError("labels are all the same class; the correlation is undefined")
    x = jnp.asarray(x, jnp.float32)
    s = _pm1(y)
    xc = x - jnp.mean(x, axis=0)
    sc = s - jnp.mean(s)
    cov = jnp.mean(xc * sc[:, None], axis=0)
    sx = jnp.sqrt(jnp.mean(xc ** 2, axis=0))
    ss = jnp.sqrt(jnp.mean(sc ** 2))
    ok = sx > 1e-12 * (1.0 + jnp.max(jnp.abs(x), axis=0))
    return jnp.where(ok, cov / jnp.where(ok, sx * ss, 1.0), 0.0)


def top_k_features(corr: ArrayLike, k: int) -> np.ndarray:
    """Indices of the ``k`` features with the largest ``|corr|``, in decreasing order.

    Ties are broken by the lower index (stable sort). Returns an int numpy array ``[k]``.
    """
    c = np.asarray(corr, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"corr must be 1-D [D], got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("corr contains NaN or Inf")
    k = check_positive_int("k", k)
    if k > c.size:
        raise ValueError(f"k={k} exceeds the number of features {c.size}")
    return np.argsort(-np.abs(c), kind="stable")[:k]


def linear_adversarial_margin(w: ArrayLike, b: ArrayLike, x: ArrayLike, y: ArrayLike, *, eps: float | jax.Array,
                              norm: str = "linf", box: bool = False) -> jax.Array:
    """Worst-case margins ``min_delta y (w.(x + delta) + b)`` of a linear model, in closed form.

    Args:
      w: ``[D]`` weights; b: scalar bias; x: ``[N, D]``; y: ``[N]`` labels in {0,1} or {-1,+1}.
      eps: radius >= 0. norm: "linf", "l2" or "l1" (margin drops by eps times the dual norm of w).
      box: also keep ``x + delta`` in [0, 1] (L-inf only; x must lie in [0, 1]); see the module
        docstring. Without the box the result is a lower bound of the box-constrained margin.

    Returns:
      ``[N]`` float32 margins (label +-1 times the worst-case logit); > 0 means robustly correct.
    """
    _check_xy(x, y)
    check_norm(norm, ("linf", "l2", "l1"))
    check_nonnegative("eps", eps)
    if jnp.ndim(w) != 1 or jnp.shape(w)[0] != jnp.shape(x)[1]:
        raise ValueError(f"w must have shape [D] = [{jnp.shape(x)[1]}], got {jnp.shape(w)}")
    if jnp.ndim(b) != 0:
        raise ValueError(f"b must be a scalar, got shape {jnp.shape(b)}")
    s = _pm1(y)
    x = jnp.asarray(x, jnp.float32)
    margin = s * (x @ w + b)
    if box:
        if norm != "linf":
            raise ValueError("box=True has a closed form only for norm='linf'")
        if is_concrete(x) and np.size(x) and (np.min(np.asarray(x)) < 0 or np.max(np.asarray(x)) > 1):
            raise ValueError("box=True needs x in [0, 1]")
        c = s[:, None] * w[None, :]
        lo, hi = jnp.minimum(eps, x), jnp.minimum(eps, 1.0 - x)
        return margin - jnp.sum(jnp.maximum(c * lo, -c * hi), axis=1)
    return margin - eps * jnp.linalg.norm(w, ord=_DUAL[norm])


def linear_accuracy(w: ArrayLike, b: ArrayLike, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Standard accuracy of ``sign(w.x + b)`` (a zero logit counts as an error). Returns a float32 scalar."""
    return jnp.mean(linear_adversarial_margin(w, b, x, y, eps=0.0) > 0)


def linear_robust_accuracy(w: ArrayLike, b: ArrayLike, x: ArrayLike, y: ArrayLike, *, eps: float | jax.Array,
                           norm: str = "linf", box: bool = False) -> jax.Array:
    """Exact robust accuracy of a linear model: example i is robust iff its worst-case margin
    ``y_i (w.x_i + b) - eps ||w||_dual`` is > 0 (labels +-1); ``box=True`` adds the [0, 1] box
    (L-inf), see :func:`linear_adversarial_margin`. Returns a float32 scalar."""
    return jnp.mean(linear_adversarial_margin(w, b, x, y, eps=eps, norm=norm, box=box) > 0)


def train_linear(x: ArrayLike, y: ArrayLike, *, eps: float = 0.0, norm: str = "linf", steps: int = 500,
                 lr: float = 0.05, l2_reg: float = 0.0, key: jax.Array | None = None,
                 box: bool = False) -> tuple[jax.Array, jax.Array]:
    """Binary logistic regression trained on the exact adversarial loss (Tsipras et al., sec. 4).

    Minimises ``mean_i softplus(-m_i) + l2_reg/2 ||w||^2`` over ``(w, b)``, where ``m_i`` is the
    worst-case margin of :func:`linear_adversarial_margin` (``m = y(w.x + b) - eps ||w||_dual``;
    with ``box=True`` the [0, 1]-box-constrained L-inf worst case). ``eps = 0`` is standard
    training. No attack is run: the inner maximisation is solved exactly. Full-batch Adam (learning
    rate ``lr`` with cosine decay to 0) for
    ``steps`` steps inside ``lax.scan`` (the caller may jit).

    Args:
      x: ``[N, D]`` float features; y: ``[N]`` labels in {0,1} or {-1,+1}.
      eps, norm, box: the threat model (norm "linf", "l2" or "l1").
      steps: optimisation steps (>= 1). lr: Adam learning rate (> 0). l2_reg: weight decay >= 0.
      key: optional PRNG key for a small random init ``N(0, 0.01^2)`` of w; None starts at 0.

    Returns:
      ``(w [D], b scalar)`` float32.
    """
    _check_xy(x, y)
    check_norm(norm, ("linf", "l2", "l1"))
    check_nonnegative("eps", eps)
    check_nonnegative("l2_reg", l2_reg)
    steps = check_positive_int("steps", steps)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    if box and norm != "linf":
        raise ValueError("box=True has a closed form only for norm='linf'")
    x = jnp.asarray(x, jnp.float32)
    d = x.shape[1]
    w0 = jnp.zeros(d, jnp.float32) if key is None else 0.01 * jax.random.normal(key, (d,), jnp.float32)
    params = (w0, jnp.zeros((), jnp.float32))

    def loss(params):
        w, b = params
        m = linear_adversarial_margin(w, b, x, y, eps=eps, norm=norm, box=box)
        return jnp.mean(jax.nn.softplus(-m)) + 0.5 * l2_reg * jnp.sum(w ** 2)

    # cosine decay to 0: the L1/dual-norm term is non-smooth, and a constant step keeps weights that
    # should be exactly 0 oscillating around 0 with amplitude ~lr.
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))

    def step(carry, _):
        params, state = carry
        g = jax.grad(loss)(params)
        updates, state = opt.update(g, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def top_k_curve(x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, y_test: ArrayLike, ks: Sequence[int], *,
                eps_train: float, eps_test: float, norm: str = "linf", steps: int = 500, lr: float = 0.05,
                l2_reg: float = 0.0, key: jax.Array | None = None, box: bool = False) -> dict:
    """Standard and exact robust test accuracy of linear models restricted to the top-k features.

    For each k, the k features with the largest ``|corr(x_j, y)|`` on the *training* set are kept
    and a model is trained on them with :func:`train_linear` (``eps=eps_train``); it is evaluated
    on the test set without attack and under the exact worst case of radius ``eps_test``
    (the dropped features have weight 0, so they are irrelevant to the attack).

    Returns:
      dict of numpy arrays: ``k`` [K], ``standard`` [K], ``robust`` [K], and ``features``
      (list of the K index arrays).
    """
    _check_xy(x_train, y_train, "x_train")
    _check_xy(x_test, y_test, "x_test")
    if jnp.shape(x_train)[1] != jnp.shape(x_test)[1]:
        raise ValueError(f"x_train and x_test have different feature counts: {jnp.shape(x_train)[1]} vs "
                         f"{jnp.shape(x_test)[1]}")
    ks = [check_positive_int("k", k) for k in ks]
    if not ks:
        raise ValueError("ks is empty")
    corr = feature_label_correlation(x_train, y_train)
    xtr, xte = np.asarray(x_train, np.float32), np.asarray(x_test, np.float32)
    std, rob, feats = [], [], []
    for k in ks:
        idx = top_k_features(corr, k)
        w, b = train_linear(xtr[:, idx], y_train, eps=eps_train, norm=norm, steps=steps, lr=lr, l2_reg=l2_reg,
                            key=key, box=box)
        std.append(float(linear_accuracy(w, b, xte[:, idx], y_test)))
        rob.append(float(linear_robust_accuracy(w, b, xte[:, idx], y_test, eps=eps_test, norm=norm, box=box)))
        feats.append(idx)
    return {"k": np.asarray(ks), "standard": np.asarray(std), "robust": np.asarray(rob), "features": feats}


def large_weight_share(w: ArrayLike, *, rel: float = 0.01) -> float:
    """Share of weights with ``|w_i| > rel * max_j |w_j|`` (lower = sparser model).

    Reproduction check 14 (Tsipras et al., binary MNIST): the L-inf-AT linear model has fewer
    weights above 1% of its largest weight than the standard one. An all-zero w gives 0.
    """
    a = np.abs(np.asarray(w, dtype=np.float64)).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("w must be a non-empty finite array")
    if not (np.isfinite(rel) and 0 <= rel < 1):
        raise ValueError(f"rel must be in [0, 1), got {rel}")
    m = a.max()
    return float(np.mean(a > rel * m)) if m > 0 else 0.0


def weight_correlation_rank(w: ArrayLike, corr: ArrayLike) -> float:
    """Spearman rank correlation between ``|w_i|`` and ``|corr(x_i, y)|`` over the features.

    Reproduction check 14: higher for the L-inf-AT linear model (it relies on the most
    label-correlated features). NaN if either vector is constant.
    """
    from scipy.stats import spearmanr

    a = np.abs(np.asarray(w, dtype=np.float64)).ravel()
    c = np.abs(np.asarray(corr, dtype=np.float64)).ravel()
    if a.shape != c.shape or a.size < 2:
        raise ValueError(f"w and corr must have the same length >= 2, got {a.size} and {c.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(c))):
        raise ValueError("w and corr must be finite")
    if np.ptp(a) == 0 or np.ptp(c) == 0:
        return float("nan")
    return float(spearmanr(a, c).statistic)
