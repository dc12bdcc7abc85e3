"""Curvature of the weight loss landscape: Hessian-vector products, top eigenvalues, trace, density.

Everything here is matrix-free and works on parameter pytrees. ``loss_fn(params) -> scalar`` is the
*mean* loss over the examples it sees. The Hessian is never formed: every routine only calls the
Hessian-vector product (HVP) ``v -> H v``, computed forward-over-reverse
(``jax.jvp`` of ``jax.grad``, as in google/spectral-density).

The solvers (Lanczos, power iteration, Hutchinson, stochastic Lanczos quadrature) run on flattened
vectors (``jax.flatten_util.ravel_pytree``) inside ``lax`` loops, so compile time does not grow with
the number of steps. They run in the parameters' dtype, or in ``dtype=jnp.float64`` when
``jax_enable_x64`` is on (recommended for Lanczos: with float32 recurrences the Ritz values of a
90-step run are only good to about 1e-5 relative). None of them jits itself: jit at the call site,
passing parameters and data as arguments (never close over them in a top-level jitted function)::

    @jax.jit
    def top_eig(params, x, y, key):
        loss_fn = lambda p: cross_entropy(model.apply(p, x), y)
        return jadv.analysis.top_eigenvalues(loss_fn, params, key=key, k=1)

Performance note (``benchmarks/bench_curvature.py`` and ``benchmarks/bench_long_loops.py``,
XLA:CPU in jax 0.10.2): XLA:CPU runs a convolution on its fast path only in the canonical layout,
and its pass that puts convolutions in that layout visits only the entry computation, so the
convolutions of a conv-net HVP inside a ``lax`` loop body stayed on a slow path (a 20-step power
iteration on a small CNN cost 15-30x more than 20 stand-alone HVPs). On CPU the loop bodies of the
solvers and of :func:`data_hvp` therefore have their convolutions rewritten into the canonical
layout at trace time (:func:`jadv._cpu_loops.canonical_convs`; the same values;
``JADV_CANONICAL_CONVS=off`` switches it off). The loops stay ``lax`` loops, so compile time does
not grow with the number of steps; GPU/TPU programs are left unchanged.

Every solver also accepts a plain matrix-vector function instead of a loss with
``operator="matvec"``: ``fn(v) -> A v`` with ``v`` shaped like ``params`` (``params`` then only
gives the structure and dtype). That is how a data-averaged HVP (:func:`make_data_hvp`) or a dense
test matrix is passed.

Batch norm and adversarial losses: :func:`make_loss_fn` builds ``loss_fn`` for a Flax Linen model
with an explicit, recorded ``bn_mode``; :func:`make_adversarial_loss_fn` builds the adversarial loss
with an explicit, recorded ``hessian`` kind (``"fixed_xadv"`` or ``"exact"``).

Sources: PyHessian (Yao et al. 2020, amirgholami/PyHessian) for power iteration with deflation,
Hutchinson's trace and the density plot; Ghorbani, Krishnan & Xiao 2019 (google/spectral-density)
for Lanczos with full reorthogonalisation and stochastic Lanczos quadrature (SLQ).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from jadv._checks import check_bn_mode, check_choice, check_positive_int
from jadv._cpu_loops import cpu_canonical
from jadv._typing import ArrayLike, PyTree
from jadv.attacks.losses import cross_entropy

__all__ = [
    "hvp",
    "data_hvp",
    "make_data_hvp",
    "stack_batches",
    "top_eigenvalues",
    "hessian_trace",
    "spectral_density",
    "lanczos_tridiag",
    "make_loss_fn",
    "make_adversarial_loss_fn",
]

BREAKDOWN_TOL = 1e-6
OPERATORS = ("loss", "matvec")
METHODS = ("lanczos", "power")
# the batch-norm modes a loss of the parameters can use (jadv._checks.BN_MODES without "train",
# whose statistics updates a loss function cannot return)
BN_MODES = ("eval", "train_no_update")
HESSIAN_KINDS = ("fixed_xadv", "exact")


# ----------------------------------------------------------------------------------------------
# Hessian-vector products
# ----------------------------------------------------------------------------------------------

def _check_same_structure(params, v, name="v") -> None:
    ps, vs = jax.tree.structure(params), jax.tree.structure(v)
    if ps != vs:
        raise ValueError(f"{name} must have the same pytree structure as params; got {vs}, expected {ps}")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(v)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"{name} leaf has shape {jnp.shape(b)} but the matching params leaf has "
                             f"shape {jnp.shape(a)}")


def _check_callable(name, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")


def hvp(loss_fn: Callable[[Any], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    """Hessian-vector product ``H v`` of a scalar loss at ``params``, forward-over-reverse.

    Args:
      loss_fn: ``params -> scalar`` (the mean loss).
      params: any pytree of float arrays.
      v: a pytree with the same structure and leaf shapes as ``params``.

    Returns:
      ``H v`` as a pytree shaped like ``params``, with ``H = d^2 loss / d params^2``.

    Computed as ``jax.jvp(jax.grad(loss_fn), (params,), (v,))`` (Pearlmutter's trick, the JAX form
    used by google/spectral-density): one forward-mode pass over the gradient, about the cost of
    two to three gradient evaluations. Pure; jit at the call site.
    """
    _check_callable("loss_fn", loss_fn)
    _check_same_structure(params, v)
    v = jax.tree.map(lambda p, t: jnp.asarray(t, dtype=jnp.result_type(p)), params, v)
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def stack_batches(data: PyTree, batch_size: int, *, pad_with: str = "first") -> tuple[PyTree, jax.Array]:
    """Split arrays of examples into equal-shape batches for :func:`data_hvp`.

    Args:
      data: a pytree of arrays sharing the leading example axis N (e.g. ``(x, y)``).
      batch_size: examples per batch; the last batch is padded up to it.
      pad_with: ``"first"`` pads with copies of the first example (keeps images in [0, 1] and
        labels valid); the padded rows get weight 0.

    Returns:
      ``(batches, weights)``: ``batches`` has leaves ``[num_batches, batch_size, ...]`` and
      ``weights`` is float32 ``[num_batches, batch_size]`` with 1 for real examples, 0 for padding.
    """
    check_positive_int("batch_size", batch_size)
    check_choice("pad_with", pad_with, ("first",))
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data has no arrays")
    n = int(jnp.shape(leaves[0])[0])
    if any(int(jnp.shape(l)[0]) != n for l in leaves):
        raise ValueError(f"all arrays in data must share the leading example axis; got "
                         f"{[jnp.shape(l) for l in leaves]}")
    if n == 0:
        raise ValueError("data has no examples")
    nb = -(-n // batch_size)
    pad = nb * batch_size - n

    def split(a):
        a = jnp.asarray(a)
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)], axis=0)
        return a.reshape((nb, batch_size) + a.shape[1:])

    weights = (jnp.arange(nb * batch_size) < n).astype(jnp.float32).reshape(nb, batch_size)
    return jax.tree.map(split, data), weights


def data_hvp(batch_loss_fn: Callable, params: PyTree, v: PyTree, batches: PyTree, *,
             weights: ArrayLike | None = None) -> PyTree:
    """HVP of the mean loss over many batches (the Hessian of the loss on all their examples).

    Args:
      batch_loss_fn: ``(params, batch) -> per-example losses [batch_size]``.
      params: pytree of parameters.
      v: pytree shaped like ``params``.
      batches: pytree whose leaves are ``[num_batches, batch_size, ...]`` (see :func:`stack_batches`).
      weights: optional ``[num_batches, batch_size]`` per-example weights (0 masks a padded example);
        default all ones.

    Returns:
      ``H v`` where ``H`` is the Hessian of ``sum_i w_i l_i / sum_i w_i`` over every example of
      every batch. This is PyHessian's batch-size-weighted data-loader mode, exact for unequal or
      padded batches (google/spectral-density's ``get_hvp_fn`` assumes equal batch sizes).

    The batches are visited with ``lax.scan``, so one per-batch HVP is compiled and reused whatever
    the number of batches. Pure; jit at the call site with ``batches`` as an argument.
    """
    _check_callable("batch_loss_fn", batch_loss_fn)
    _check_same_structure(params, v)
    leaves = jax.tree.leaves(batches)
    if not leaves:
        raise ValueError("batches has no arrays")
    if any(jnp.ndim(l) < 2 for l in leaves):
        raise ValueError("every batches leaf must be [num_batches, batch_size, ...]; got shapes "
                         f"{[jnp.shape(l) for l in leaves]}")
    nb, bs = jnp.shape(leaves[0])[:2]
    if any(jnp.shape(l)[:2] != (nb, bs) for l in leaves):
        raise ValueError(f"batches leaves disagree on [num_batches, batch_size]: "
                         f"{[jnp.shape(l)[:2] for l in leaves]}")
    if weights is None:
        weights = jnp.ones((nb, bs), jnp.float32)
    if jnp.shape(weights) != (nb, bs):
        raise ValueError(f"weights must have shape {(nb, bs)} (num_batches, batch_size), got {jnp.shape(weights)}")
    v = jax.tree.map(lambda p, t: jnp.asarray(t, dtype=jnp.result_type(p)), params, v)
    total = jnp.sum(weights)

    def one(acc, bw):
        batch, w = bw

        def summed(p):
            losses = batch_loss_fn(p, batch)
            if jnp.shape(losses) != (bs,):
                raise ValueError(f"batch_loss_fn must return per-example losses of shape ({bs},), "
                                 f"got {jnp.shape(losses)}")
            return jnp.sum(losses * w.astype(losses.dtype))

        hv = jax.jvp(jax.grad(summed), (params,), (v,))[1]
        return jax.tree.map(jnp.add, acc, hv), None

    zero = jax.tree.map(jnp.zeros_like, params)
    acc, _ = lax.scan(cpu_canonical(one), zero, (batches, weights))
    return jax.tree.map(lambda a: a / total.astype(a.dtype), acc)


def make_data_hvp(batch_loss_fn: Callable, batches: PyTree, *,
                  weights: ArrayLike | None = None) -> Callable[[PyTree, PyTree], PyTree]:
    """A compiled data-averaged HVP ``mvp(params, v)`` over fixed batches.

    Args:
      batch_loss_fn: ``(params, batch) -> per-example losses [batch_size]``.
      batches, weights: as in :func:`data_hvp` (build them with :func:`stack_batches`).

    Returns:
      ``mvp(params, v) -> H v``: :func:`data_hvp` under one ``jax.jit``, with ``params``, ``v``,
      ``batches`` and ``weights`` passed as arguments (nothing is baked into the program as a
      constant). Use it with the solvers through a closure and ``operator="matvec"``::

          mvp = make_data_hvp(per_example_loss, batches, weights=w)
          vals, vecs = top_eigenvalues(lambda v: mvp(params, v), params, key=key, operator="matvec")
    """
    _check_callable("batch_loss_fn", batch_loss_fn)

    @jax.jit
    def compiled(params, v, batches, weights):
        return data_hvp(batch_loss_fn, params, v, batches, weights=weights)

    if weights is None:
        leaves = jax.tree.leaves(batches)
        if not leaves or jnp.ndim(leaves[0]) < 2:
            raise ValueError("batches must have leaves [num_batches, batch_size, ...]")
        weights = jnp.ones(jnp.shape(leaves[0])[:2], jnp.float32)

    def mvp(params, v):
        _check_same_structure(params, v)
        return compiled(params, v, batches, weights)

    return mvp


# ----------------------------------------------------------------------------------------------
# Flat operator plumbing
# ----------------------------------------------------------------------------------------------

def _flat_operator(fn, params, operator: str, dtype):
    """Return (matvec on flat vectors in ``dtype``, n, unravel, work dtype)."""
    check_choice("operator", operator, OPERATORS)
    _check_callable("fn", fn)
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params has no arrays")
    for l in leaves:
        if not jnp.issubdtype(jnp.result_type(l), jnp.floating):
            raise TypeError(f"params leaves must be floating point, got dtype {jnp.result_type(l)}")
    flat, unravel = ravel_pytree(params)
    n = int(flat.shape[0])
    if dtype is None:
        wdtype = flat.dtype
    else:
        wdtype = jnp.dtype(dtype)
        if not jnp.issubdtype(wdtype, jnp.floating):
            raise TypeError(f"dtype must be a floating dtype, got {wdtype}")
        if wdtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError("dtype=float64 needs 64-bit mode: wrap the call in "
                             "`with jax.enable_x64(True):` or set jax_enable_x64")
    pdtype = flat.dtype

    if operator == "loss":
        # Linearise the gradient once: the forward and backward passes at params are computed a
        # single time and their residuals reused by every product (what PyHessian gets by keeping
        # the create_graph=True graph), instead of re-running them inside each jvp.
        _, lin = jax.linearize(jax.grad(fn), params)

        def matvec(x):
            return ravel_pytree(lin(unravel(x.astype(pdtype))))[0].astype(wdtype)
    else:
        def matvec(x):
            out = fn(unravel(x.astype(pdtype)))
            _check_same_structure(params, out, name="the matvec output")
            return ravel_pytree(out)[0].astype(wdtype)
    return matvec, n, unravel, wdtype


def _unravel_stack(unravel, vecs, params):
    """[k, n] flat vectors -> a pytree shaped like params with a leading axis k on every leaf."""
    pdtype = ravel_pytree(params)[0].dtype
    return jax.vmap(lambda x: unravel(x.astype(pdtype)))(vecs)


def _lanczos(matvec, v0, order: int):
    """Lanczos with full reorthogonalisation on flat vectors.

    Returns (alphas [m], betas [m-1], V [m, n], steps): T = tridiag(betas, alphas, betas) is the
    projection of the operator on the Krylov basis V. ``steps`` is the number of basis vectors
    actually built: if some beta falls below BREAKDOWN_TOL (an invariant subspace was found, e.g.
    the Krylov space is exhausted) the iteration stops there, later alphas/betas are 0 and later
    rows of V are 0. The test is relative, ``beta <= 1e-6 * ||A||`` with ``||A||`` estimated by the
    largest ``||A v_j||`` seen, so it does not depend on the scale of the loss.
    """
    n = v0.shape[0]
    dt = v0.dtype
    m = order
    V = jnp.zeros((m + 1, n), dt).at[0].set(v0 / jnp.linalg.norm(v0))
    alphas = jnp.zeros((m,), dt)
    betas = jnp.zeros((m,), dt)

    def body(j, carry):
        V, alphas, betas, steps, broken, scale = carry
        v = V[j]
        w = matvec(v)
        scale = jnp.maximum(scale, jnp.linalg.norm(w))
        a = jnp.vdot(v, w)
        b_prev = jnp.where(j > 0, betas[jnp.maximum(j - 1, 0)], 0.0).astype(dt)
        w = w - a * v - b_prev * V[jnp.maximum(j - 1, 0)] * (j > 0)
        # full reorthogonalisation against every basis vector built so far (rows > j are zero);
        # twice, which is enough in floating point ("twice is enough", Parlett).
        w = w - V.T @ (V @ w)
        w = w - V.T @ (V @ w)
        b = jnp.linalg.norm(w)
        now_broken = b <= BREAKDOWN_TOL * scale
        active = jnp.logical_not(broken)
        alphas = alphas.at[j].set(jnp.where(active, a, 0.0))
        keep = jnp.logical_and(active, jnp.logical_not(now_broken))
        betas = betas.at[j].set(jnp.where(keep, b, 0.0))
        V = V.at[j + 1].set(jnp.where(keep, w / jnp.where(keep, b, 1.0), 0.0))
        steps = steps + active.astype(jnp.int32)
        return V, alphas, betas, steps, jnp.logical_or(broken, now_broken), scale

    carry = (V, alphas, betas, jnp.int32(0), jnp.asarray(False), jnp.zeros((), dt))
    V, alphas, betas, steps, _, _ = lax.fori_loop(0, m, cpu_canonical(body), carry)
    return alphas, betas[:-1], V[:m], steps


def _tridiag_eigh(alphas, betas, steps):
    """Eigen-decomposition of the active (steps x steps) block of T, padded to m.

    Returns (nodes [m] ascending, evecs [m, m], active [m] bool). Inactive entries come from the
    unused part of T; their node value is moved below every active one and ``active`` is False.
    """
    m = alphas.shape[0]
    idx = jnp.arange(m)
    live = idx < steps
    b = jnp.where(idx[:-1] < steps - 1, betas, 0.0)
    # Gershgorin lower bound of the active block, minus a margin: a fill value below every active
    # eigenvalue, so the unused block never mixes with (or outranks) the real Ritz values.
    bl = jnp.concatenate([jnp.zeros((1,), b.dtype), jnp.abs(b)])
    br = jnp.concatenate([jnp.abs(b), jnp.zeros((1,), b.dtype)])
    lower = jnp.min(jnp.where(live, alphas - bl - br, jnp.inf))
    fill = lower - 1.0 - jnp.abs(lower)
    diag = jnp.where(live, alphas, fill)
    T = jnp.diag(diag) + jnp.diag(b, 1) + jnp.diag(b, -1)
    nodes, evecs = jnp.linalg.eigh(T)
    active = jnp.sum(jnp.where(live[:, None], evecs ** 2, 0.0), axis=0) > 0.5
    return nodes, evecs, active


def lanczos_tridiag(fn: Callable, params: PyTree, *, key: jax.Array, order: int = 90, operator: str = "loss",
                    dtype: Any = None, start: str = "rademacher") -> dict[str, jax.Array]:
    """Run ``order`` Lanczos steps (full reorthogonalisation) and return the Ritz decomposition.

    Args:
      fn: ``loss_fn(params) -> scalar`` (``operator="loss"``) or ``matvec(v) -> A v``
        (``operator="matvec"``).
      params: pytree (the point, or only the structure for a matvec).
      key: typed PRNG key for the start vector.
      order: number of Lanczos steps m (clipped to the dimension n).
      dtype: work dtype of the recurrences (default: the parameters' dtype).
      start: ``"rademacher"`` (SLQ, PyHessian) or ``"gaussian"`` (google/spectral-density);
        normalised to unit length.

    Returns:
      dict with ``nodes`` [m] (Ritz values, ascending), ``weights`` [m] (squared first components
      of the Ritz vectors; they sum to 1), ``active`` [m] bool (False for entries beyond a
      breakdown, which have weight 0), ``steps`` (number of Lanczos vectors built), ``ritz_vectors``
      [m, n] flat (row i belongs to ``nodes[i]``).
    """
    check_positive_int("order", order)
    check_choice("start", start, ("rademacher", "gaussian"))
    matvec, n, _, wdtype = _flat_operator(fn, params, operator, dtype)
    m = min(order, n)
    if start == "rademacher":
        v0 = jax.random.rademacher(key, (n,), dtype=wdtype)
    else:
        v0 = jax.random.normal(key, (n,), dtype=wdtype)
    alphas, betas, V, steps = _lanczos(matvec, v0, m)
    nodes, evecs, active = _tridiag_eigh(alphas, betas, steps)
    weights = jnp.where(active, evecs[0] ** 2, 0.0)
    lo = jnp.min(jnp.where(active, nodes, jnp.inf))
    nodes = jnp.where(active, nodes, lo)
    return {"nodes": nodes, "weights": weights, "active": active, "steps": steps,
            "ritz_vectors": evecs.T @ V}


# ----------------------------------------------------------------------------------------------
# Top eigenvalues
# ----------------------------------------------------------------------------------------------

def _power(matvec, n, k, iters, tol, key, dt):
    """PyHessian power iteration with deflation, one eigenpair after another."""
    keys = jax.random.split(key, k)

    def orth(v, Q):
        # Gram-Schmidt against the eigenvectors found so far (unused rows of Q are zero)
        v = v - Q.T @ (Q @ v)
        return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(dt).tiny)

    def one(i, carry):
        Q, lams = carry
        v = orth(jax.random.normal(keys[i], (n,), dt), Q)

        def cond(s):
            t, _, lam, lam_prev = s
            rel = jnp.abs(lam - lam_prev) / (jnp.abs(lam_prev) + 1e-6)
            return jnp.logical_and(t < iters, jnp.logical_or(t < 2, rel >= tol))

        def step(s):
            t, v, lam, _ = s
            w = matvec(v)
            lam_new = jnp.vdot(w, v)
            return t + 1, orth(w, Q), lam_new, lam

        big = jnp.asarray(jnp.inf, dt)
        _, v, lam, _ = lax.while_loop(cond, cpu_canonical(step), (jnp.int32(0), v, big, big))
        return Q.at[i].set(v), lams.at[i].set(lam)

    Q, lams = lax.fori_loop(0, k, one, (jnp.zeros((k, n), dt), jnp.zeros((k,), dt)))
    return lams, Q


def top_eigenvalues(fn: Callable, params: PyTree, *, key: jax.Array, k: int = 1, method: str = "lanczos",
                    iters: int | None = None, tol: float = 1e-3, operator: str = "loss",
                    dtype: Any = None) -> tuple[jax.Array, PyTree]:
    """Top-``k`` Hessian eigenvalues and eigenvectors at ``params``, matrix-free.

    Args:
      fn: ``loss_fn(params) -> scalar`` (``operator="loss"``, the Hessian of the loss) or a
        matrix-vector function ``v -> A v`` on pytrees shaped like ``params`` for a symmetric ``A``
        (``operator="matvec"``, e.g. from :func:`make_data_hvp` or a dense matrix).
      params: pytree (the point where the Hessian is taken; for a matvec only its structure).
      key: typed PRNG key for the start vector(s).
      k: number of eigenpairs (>= 1).
      method: ``"lanczos"``: ``iters`` Lanczos steps with full reorthogonalisation (google/
        spectral-density) from a Gaussian start; returns the k algebraically largest Ritz pairs.
        A breakdown (beta < 1e-6 ||A||: the Krylov space is exhausted) ends the iteration cleanly; if
        fewer than k Ritz values exist then, the missing eigenvalues are NaN with zero vectors.
        ``"power"``: PyHessian power iteration with deflation (Gram-Schmidt against the vectors
        already found), each from a Gaussian start, stopping when
        ``|l_t - l_{t-1}| / (|l_{t-1}| + 1e-6) < tol`` or after ``iters`` products; like PyHessian
        it finds the eigenvalues of largest *magnitude* (one may be negative). ``tol=0`` runs
        exactly ``iters`` products per eigenpair.
      iters: Lanczos steps (default ``min(n, max(100, 3 k))``; clipped to n) or maximum power
        iterations per eigenpair (default 100).
      tol: relative stopping tolerance of the power method (unused by Lanczos).
      operator: ``"loss"`` or ``"matvec"`` (see ``fn``).
      dtype: work dtype of the solver, e.g. ``jnp.float64`` with x64 enabled (the HVP itself runs
        in the parameters' dtype).

    Memory: Lanczos keeps its whole basis, ``(iters + 1) x n`` numbers of the work dtype (100
    steps of a ResNet-18, n = 11M, in float64: about 9 GB); power iteration keeps ``k x n``. Each
    product reuses one linearisation of the gradient at ``params`` (``jax.linearize``), so the
    forward and backward passes are not recomputed per product.

    Returns:
      ``(eigvals, eigvecs)``: ``eigvals`` [k] sorted descending; ``eigvecs`` a pytree shaped like
      ``params`` with an extra leading axis k on every leaf (``jax.tree.map(lambda l: l[i], eigvecs)``
      is the unit-norm eigenvector of ``eigvals[i]``).
    """
    check_positive_int("k", k)
    check_choice("method", method, METHODS)
    if iters is not None:
        check_positive_int("iters", iters)
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    matvec, n, unravel, wdtype = _flat_operator(fn, params, operator, dtype)
    if k > n:
        raise ValueError(f"k={k} exceeds the number of parameters {n}")
    if method == "lanczos":
        m = min(n, iters if iters is not None else max(100, 3 * k))
        if m < k:
            raise ValueError(f"iters={m} Lanczos steps cannot give k={k} eigenvalues; use iters >= k")
        v0 = jax.random.normal(key, (n,), dtype=wdtype)
        alphas, betas, V, steps = _lanczos(matvec, v0, m)
        nodes, evecs, active = _tridiag_eigh(alphas, betas, steps)
        order = jnp.argsort(-jnp.where(active, nodes, -jnp.inf))[:k]
        ok = active[order]
        vals = jnp.where(ok, nodes[order], jnp.nan)
        vecs = (evecs[:, order].T @ V) * ok[:, None]
        vecs = vecs / jnp.maximum(jnp.linalg.norm(vecs, axis=1, keepdims=True), jnp.finfo(wdtype).tiny)
    else:
        its = iters if iters is not None else 100
        lams, Q = _power(matvec, n, k, its, tol, key, wdtype)
        order = jnp.argsort(-lams)
        vals, vecs = lams[order], Q[order]
    return vals, _unravel_stack(unravel, vecs, params)


# ----------------------------------------------------------------------------------------------
# Trace and spectral density
# ----------------------------------------------------------------------------------------------

def hessian_trace(fn: Callable, params: PyTree, *, key: jax.Array, samples: int = 100, operator: str = "loss",
                  dtype: Any = None) -> tuple[jax.Array, jax.Array]:
    """Hutchinson estimate of the Hessian trace with Rademacher probes.

    Args:
      fn, params, operator, dtype: as in :func:`top_eigenvalues`.
      key: typed PRNG key for the probes.
      samples: number of probes z (>= 1); all of them are used (no early stop, unlike PyHessian,
        whose relative-change rule can stop after 2-3 noisy samples).

    Returns:
      ``(trace, stderr)``: the mean of ``z^T H z`` over the probes and its standard error
      ``std(ddof=1) / sqrt(samples)`` (NaN when ``samples == 1``).
    """
    check_positive_int("samples", samples)
    matvec, n, _, wdtype = _flat_operator(fn, params, operator, dtype)
    keys = jax.random.split(key, samples)

    def one(_, kk):
        z = jax.random.rademacher(kk, (n,), dtype=wdtype)
        return None, jnp.vdot(z, matvec(z))

    _, vals = lax.scan(cpu_canonical(one), None, keys)
    mean = jnp.mean(vals)
    if samples == 1:
        return mean, jnp.asarray(jnp.nan, wdtype)
    return mean, jnp.std(vals, ddof=1) / jnp.sqrt(jnp.asarray(samples, wdtype))


def spectral_density(fn: Callable, params: PyTree, *, key: jax.Array, order: int = 90, runs: int = 1,
                     grid_size: int = 10000, sigma2: float | None = None, operator: str = "loss",
                     dtype: Any = None, return_nodes: bool = False) -> tuple[jax.Array, ...]:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

    Each run does ``order`` Lanczos steps (full reorthogonalisation) from a normalised Rademacher
    start; the Ritz values of the tridiagonal T (``eigh``) are the quadrature nodes and the squared
    first components of its eigenvectors the weights. The runs are averaged, then smoothed with a
    Gaussian kernel of variance ``sigma2`` (default ``1e-5 * max(1, lambda_max - lambda_min)``, as
    in PyHessian and google/spectral-density) on a uniform grid of ``grid_size`` points spanning the
    nodes plus a margin of ``0.01 + 4 sqrt(sigma2)``, and normalised to unit integral.

    Args:
      fn, params, operator, dtype: as in :func:`top_eigenvalues`.
      key: typed PRNG key (one start vector per run).
      order: Lanczos steps per run (clipped to the dimension).
      runs: number of independent start vectors (n_v).
      grid_size: number of grid points (>= 2).
      sigma2: kernel variance (> 0), or None for the default.
      return_nodes: also return the nodes and weights.

    Returns:
      ``(grid [grid_size], density [grid_size])``, plus ``nodes [runs, m]`` and ``weights
      [runs, m]`` (each row sums to 1) when ``return_nodes``.
    """
    check_positive_int("order", order)
    check_positive_int("runs", runs)
    check_positive_int("grid_size", grid_size, minimum=2)
    if sigma2 is not None and not (isinstance(sigma2, (int, float)) and sigma2 > 0 and math.isfinite(sigma2)):
        raise ValueError(f"sigma2 must be a finite number > 0 or None, got {sigma2!r}")
    matvec, n, _, wdtype = _flat_operator(fn, params, operator, dtype)
    m = min(order, n)

    def one(_, kk):
        v0 = jax.random.rademacher(kk, (n,), dtype=wdtype)
        alphas, betas, _, steps = _lanczos(matvec, v0, m)
        nodes, evecs, active = _tridiag_eigh(alphas, betas, steps)
        w = jnp.where(active, evecs[0] ** 2, 0.0)
        lo = jnp.min(jnp.where(active, nodes, jnp.inf))
        return None, (jnp.where(active, nodes, lo), w / jnp.sum(w))

    _, (nodes, weights) = lax.scan(one, None, jax.random.split(key, runs))
    lmin, lmax = jnp.min(nodes), jnp.max(nodes)
    s2 = (1e-5 * jnp.maximum(1.0, lmax - lmin) if sigma2 is None
          else jnp.asarray(sigma2, wdtype)).astype(wdtype)
    margin = 1e-2 + 4.0 * jnp.sqrt(s2)
    grid = jnp.linspace(lmin - margin, lmax + margin, grid_size, dtype=wdtype)
    flat_nodes, flat_w = nodes.reshape(-1), weights.reshape(-1) / runs

    def dens(g):
        return jnp.sum(flat_w * jnp.exp(-(g - flat_nodes) ** 2 / (2 * s2))) / jnp.sqrt(2 * jnp.pi * s2)

    density = lax.map(dens, grid, batch_size=min(grid_size, 1024))
    density = density / jnp.trapezoid(density, grid)
    if return_nodes:
        return grid, density, nodes, weights
    return grid, density


# ----------------------------------------------------------------------------------------------
# Loss functions for models with batch norm, and adversarial losses
# ----------------------------------------------------------------------------------------------

def _split_batch(batch):
    if isinstance(batch, dict):
        for kx, ky in (("image", "label"), ("x", "y")):
            if kx in batch and ky in batch:
                return batch[kx], batch[ky]
        raise ValueError(f"a dict batch needs keys ('image', 'label') or ('x', 'y'), got {sorted(batch)}")
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError("batch must be a tuple (x, y) or a dict with 'image'/'label' keys, got "
                    f"{type(batch).__name__}")


def _per_example_loss(loss):
    if callable(loss):
        return loss
    check_choice("loss", loss, ("ce",))
    return cross_entropy


def _check_variables(variables):
    if not isinstance(variables, dict) and not hasattr(variables, "keys"):
        raise TypeError(f"variables must be a Flax variables dict with a 'params' collection, got "
                        f"{type(variables).__name__}")
    if "params" not in variables:
        raise ValueError(f"variables must contain a 'params' collection, got {list(variables.keys())}")


def _model_logits(apply_fn, variables, params, x, bn_mode, train_kwarg, apply_kwargs):
    full = {**variables, "params": params}
    kw = dict(apply_kwargs or {})
    if bn_mode == "eval":
        out = apply_fn(full, x, **{train_kwarg: False}, **kw)
        return out
    mutable = [c for c in full if c != "params"]
    if not mutable:
        return apply_fn(full, x, **{train_kwarg: True}, **kw)
    logits, _updates = apply_fn(full, x, **{train_kwarg: True}, mutable=mutable, **kw)  # discarded
    return logits


def make_loss_fn(apply_fn: Callable, variables: PyTree, batch: tuple | dict, *, bn_mode: str = "eval",
                 loss: str | Callable = "ce", train_kwarg: str = "train",
                 apply_kwargs: dict | None = None) -> Callable[[PyTree], jax.Array]:
    """Build ``loss_fn(params) -> mean loss`` on one batch for a Flax Linen model, BN made explicit.

    Args:
      apply_fn: ``model.apply``, called as ``apply_fn({"params": p, **other_collections}, x,
        train=bool, mutable=[...], **apply_kwargs)`` (the jadv Linen convention).
      variables: the model's variables (``{"params": ..., "batch_stats": ...}``); the collections
        other than ``params`` are held fixed.
      batch: ``(x, y)`` or a dict with ``image``/``label`` keys; x [B, ...], y int [B].
      bn_mode: ``"eval"``: running statistics (``train=False``; ``batch_stats`` untouched), the
        convention of PyHessian and loss-landscape. ``"train_no_update"``: batch statistics
        (``train=True``) with the running-statistics updates discarded, i.e. the curvature of the
        training-mode function (the names of ``jadv.train.model_fns.ATTACK_BN_MODES``; the old
        name ``"batch"`` is refused with the new one).
      loss: ``"ce"`` (softmax cross-entropy with integer labels) or a callable
        ``(logits [B, K], y [B]) -> per-example losses [B]``.
      train_kwarg: name of the model's train flag.
      apply_kwargs: extra keyword arguments for ``apply_fn`` (e.g. ``{"bn_set": "adv"}``).

    Returns:
      ``loss_fn(params)``, the mean loss over the batch. It carries ``loss_fn.per_example(params)
      -> [B]`` and ``loss_fn.report`` = ``{"bn_mode", "loss", "hessian": "clean", "batch_size"}`` so
      the mode is logged with every result.
    """
    _check_callable("apply_fn", apply_fn)
    _check_variables(variables)
    check_bn_mode("bn_mode", bn_mode, BN_MODES)
    per_ex = _per_example_loss(loss)
    x, y = _split_batch(batch)
    if jnp.ndim(y) != 1 or jnp.shape(y)[0] != jnp.shape(x)[0]:
        raise ValueError(f"labels must be [B] with B = {jnp.shape(x)[0]}, got shape {jnp.shape(y)}")
    variables = dict(variables)

    def per_example(params):
        logits = _model_logits(apply_fn, variables, params, x, bn_mode, train_kwarg, apply_kwargs)
        return per_ex(logits, y)

    def loss_fn(params):
        return jnp.mean(per_example(params))

    loss_fn.per_example = per_example
    loss_fn.report = {"bn_mode": bn_mode, "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
                      "hessian": "clean", "batch_size": int(jnp.shape(x)[0])}
    return loss_fn


def make_adversarial_loss_fn(apply_fn: Callable, variables: PyTree, batch: tuple | dict, *, attack: Callable,
                             hessian: str = "fixed_xadv", bn_mode: str = "eval", loss: str | Callable = "ce",
                             train_kwarg: str = "train",
                             apply_kwargs: dict | None = None) -> Callable[[PyTree], jax.Array]:
    """Build the adversarial training loss ``params -> mean loss(f_params(x_adv), y)``.

    Args:
      apply_fn, variables, batch, bn_mode, loss, train_kwarg, apply_kwargs: as in
        :func:`make_loss_fn` (``bn_mode`` applies to the loss evaluation; the attack chooses its
        own BN mode inside ``attack``).
      attack: ``attack(params, x, y) -> x_adv`` (e.g. a closure around ``jadv.attacks.pgd`` with a
        fixed key, building its ``logits_fn`` from ``params``).
      hessian: ``"fixed_xadv"``: x_adv is crafted once, now, at ``variables["params"]`` and held
        fixed (``stop_gradient``); its Hessian is what PyHessian-style tools report for
        adversarial training. ``"exact"``: the attack is re-run inside ``loss_fn`` at every
        ``params`` and differentiated through, giving the Hessian of the true adversarial loss
        rho(w) (Yamada et al. 2021; for linear models this matches the closed form in
        :mod:`jadv.analysis.logistic`). The ``"exact"`` loss is also the robust loss
        rho(w + alpha d) for AWP-style landscapes (:func:`jadv.analysis.landscape_1d` with it
        re-attacks at every grid point).

    Returns:
      ``loss_fn(params)`` with ``loss_fn.report`` = ``{"bn_mode", "loss", "hessian", "batch_size"}``
      and, for ``"fixed_xadv"``, ``loss_fn.x_adv``.
    """
    _check_callable("attack", attack)
    check_choice("hessian", hessian, HESSIAN_KINDS)
    _check_variables(variables)
    check_bn_mode("bn_mode", bn_mode, BN_MODES)
    x, y = _split_batch(batch)
    if hessian == "fixed_xadv":
        x_adv = lax.stop_gradient(attack(variables["params"], x, y))
        if jnp.shape(x_adv) != jnp.shape(x):
            raise ValueError(f"attack returned shape {jnp.shape(x_adv)}, expected {jnp.shape(x)}")
        loss_fn = make_loss_fn(apply_fn, variables, (x_adv, y), bn_mode=bn_mode, loss=loss,
                               train_kwarg=train_kwarg, apply_kwargs=apply_kwargs)
        loss_fn.x_adv = x_adv
        loss_fn.report["hessian"] = "fixed_xadv"
        return loss_fn

    per_ex = _per_example_loss(loss)
    variables = dict(variables)

    def per_example(params):
        xa = attack(params, x, y)
        logits = _model_logits(apply_fn, variables, params, xa, bn_mode, train_kwarg, apply_kwargs)
        return per_ex(logits, y)

    def loss_fn(params):
        return jnp.mean(per_example(params))

    loss_fn.per_example = per_example
    loss_fn.report = {"bn_mode": bn_mode, "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
                      "hessian": "exact", "batch_size": int(jnp.shape(x)[0])}
    return loss_fn
