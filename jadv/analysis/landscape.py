"""Weight loss landscapes along filter-normalised random directions (Li et al. 2018).

``loss_fn(params) -> scalar`` is any loss of the parameters: the clean loss
(:func:`jadv.analysis.make_loss_fn`, BN mode explicit), or a *robust* loss that re-runs an attack at
every point it is evaluated at. For the AWP curve ``rho(w + alpha d)`` (Wu et al. 2020) pass
``robust_loss_fn(params)`` that crafts x_adv against ``params`` itself, e.g.
``jadv.analysis.make_adversarial_loss_fn(..., attack=..., hessian="exact")``: every grid point is
then re-attacked (51 points x one PGD pass for the default grid). A loss whose x_adv was crafted
once (``hessian="fixed_xadv"``) gives the landscape of a fixed data set instead, which is *not*
rho(w + alpha d).

The grid points are visited with ``lax.map`` (one compiled loss evaluation reused for every point;
``batch_size`` evaluates that many points at once with ``vmap``). Nothing jits itself: jit the call
with ``params`` and the directions as arguments.

Source: Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets",
NeurIPS 2018 (tomgoldstein/loss-landscape ``--xnorm filter --xignore biasbn``).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jadv._checks import check_choice
from jadv._typing import ArrayLike, PyTree

__all__ = ["filter_normalized_direction", "landscape_1d", "landscape_2d", "default_alphas"]

IGNORE = ("biasbn", None)


def default_alphas(num: int = 51, span: float = 1.0) -> jax.Array:
    """The loss-landscape default grid: ``num`` points evenly spaced in [-span, span] (51, [-1, 1])."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    return jnp.linspace(-span, span, num)


def filter_normalized_direction(params: PyTree, key: jax.Array, ignore: str | None = "biasbn") -> PyTree:
    """A Gaussian random direction with filter normalisation (Li et al. 2018).

    For every leaf with ndim > 1, each *output filter* slice ``d[..., j]`` is rescaled to the
    Frobenius norm of the matching weight slice ``params[..., j]``:
    ``d_j <- d_j ||theta_j|| / (||d_j|| + 1e-10)``. Flax kernels keep the output axis LAST (conv
    kernels are HWIO, dense kernels (in, out)), unlike PyTorch's dim 0, so the slices here are taken
    along the last axis. Leaves with ndim <= 1 (biases, BN scale and bias) are set to 0 when
    ``ignore="biasbn"``, or to the weights themselves when ``ignore=None`` (loss-landscape's rule).

    Args:
      params: pytree of float arrays (the ``params`` collection only; running BN statistics are
        not parameters and are not moved).
      key: typed PRNG key; each leaf gets its own ``fold_in``-derived key, so the direction of a
        leaf depends only on ``key`` and the leaf's position.
      ignore: ``"biasbn"`` or None.

    Returns:
      a pytree shaped like ``params``.
    """
    check_choice("ignore", ignore, IGNORE)
    leaves, treedef = jax.tree.flatten(params)
    if not leaves:
        raise ValueError("params has no arrays")
    out = []
    for i, p in enumerate(leaves):
        p = jnp.asarray(p)
        if not jnp.issubdtype(p.dtype, jnp.floating):
            raise TypeError(f"params leaves must be floating point, got dtype {p.dtype}")
        if p.ndim <= 1:
            out.append(jnp.zeros_like(p) if ignore == "biasbn" else p)
            continue
        d = jax.random.normal(jax.random.fold_in(key, i), p.shape, p.dtype)
        axes = tuple(range(p.ndim - 1))
        dn = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        pn = jnp.sqrt(jnp.sum(p * p, axis=axes, keepdims=True))
        out.append(d * pn / (dn + 1e-10))
    return jax.tree.unflatten(treedef, out)


def _check_direction(params, d, name):
    if jax.tree.structure(params) != jax.tree.structure(d):
        raise ValueError(f"{name} must have the same pytree structure as params")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(d)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"{name} leaf has shape {jnp.shape(b)}, params leaf {jnp.shape(a)}")


def _check_grid(name, a):
    a = jnp.asarray(a)
    if a.ndim != 1 or a.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array of step sizes, got shape {a.shape}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.float32)
    return a


def landscape_1d(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, d: PyTree, alphas: ArrayLike, *,
                 batch_size: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Loss along a line: ``L(params + alpha d)`` for every alpha.

    Args:
      loss_fn: ``params -> scalar`` (clean, or a robust loss that re-attacks; see the module doc).
      params: pytree, the centre theta.
      d: direction shaped like ``params`` (e.g. :func:`filter_normalized_direction`).
      alphas: [A] step sizes (default grid: :func:`default_alphas`, 51 points in [-1, 1]).
      batch_size: evaluate this many grid points at once (vmap); default one at a time (scan).

    Returns:
      ``(alphas [A], losses [A])``.
    """
    _check_direction(params, d, "d")
    alphas = _check_grid("alphas", alphas)

    def at(a):
        return loss_fn(jax.tree.map(lambda p, u: p + a.astype(p.dtype) * u.astype(p.dtype), params, d))

    return alphas, lax.map(at, alphas, batch_size=batch_size)


def landscape_2d(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, d1: PyTree, d2: PyTree, alphas: ArrayLike,
                 betas: ArrayLike, *, batch_size: int | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Loss on a plane: ``L(params + alpha d1 + beta d2)`` on the grid alphas x betas.

    Args:
      loss_fn, params, batch_size: as in :func:`landscape_1d`.
      d1, d2: directions shaped like ``params``.
      alphas: [A]; betas: [B] step sizes.

    Returns:
      ``(alphas [A], betas [B], losses [A, B])`` with ``losses[i, j] = L(theta + alphas[i] d1 +
      betas[j] d2)``.
    """
    _check_direction(params, d1, "d1")
    _check_direction(params, d2, "d2")
    alphas = _check_grid("alphas", alphas)
    betas = _check_grid("betas", betas)
    A, B = jnp.meshgrid(alphas, betas, indexing="ij")

    def at(ab):
        a, b = ab
        return loss_fn(jax.tree.map(
            lambda p, u, v: p + a.astype(p.dtype) * u.astype(p.dtype) + b.astype(p.dtype) * v.astype(p.dtype),
            params, d1, d2))

    losses = lax.map(at, (A.reshape(-1), B.reshape(-1)), batch_size=batch_size)
    return alphas, betas, losses.reshape(A.shape)
