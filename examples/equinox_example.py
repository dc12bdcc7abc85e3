"""Attack and analyse an Equinox model with jadv (jadv's API is framework-agnostic).

    python examples/equinox_example.py [--steps 300] [--eps 0.3]

An Equinox model is a pytree whose array leaves are its parameters, applied to one example at a
time. With jadv:

- ``logits_fn = lambda x: jax.vmap(model)(x)``: a batch ``x [B, H, W, C]`` in [0, 1] -> logits
  ``[B, K]`` (the model below flattens each image; an ``eqx.nn.Conv2d`` model would transpose each
  example to [C, H, W] first). Pass the model into a jitted function as an argument
  (``eqx.filter_jit`` or ``jax.jit`` on its ``eqx.partition``-ed arrays) so the weights are
  inputs of the compiled program, not constants.
- curvature: ``params, static = eqx.partition(model, eqx.is_inexact_array)`` and
  ``loss_fn = lambda p: cross_entropy(jax.vmap(eqx.combine(p, static))(x), y)``; then
  ``jadv.analysis.top_eigenvalues(loss_fn, params, key=key)``.

The model is a small MLP (``eqx.nn.MLP``) trained for a few hundred Adam steps on scikit-learn's
embedded 8x8 digits (no download). Each function is importable (tests/test_examples_nnx_equinox.py
runs them on tiny settings).
"""
from __future__ import annotations

import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jadv  # noqa: E402
import example_common  # noqa: E402
from example_common import cross_entropy  # noqa: E402


class ImageMLP(eqx.Module):
    """Flatten -> MLP. One example x [H, W, C] in [0, 1] -> logits [K]."""

    mlp: eqx.nn.MLP

    def __init__(self, in_size: int, hidden: int, num_classes: int, depth: int, *, key):
        self.mlp = eqx.nn.MLP(in_size, num_classes, hidden, depth, activation=jax.nn.relu, key=key)

    def __call__(self, x):
        return self.mlp(x.reshape(-1))


def make_model(*, hidden: int = 64, depth: int = 2, in_size: int = 64, num_classes: int = 10,
               seed: int = 0) -> ImageMLP:
    """A freshly initialised :class:`ImageMLP` (``depth`` hidden layers of ``hidden`` units)."""
    return ImageMLP(in_size, hidden, num_classes, depth, key=jax.random.key(seed))


def logits_fn_of(model):
    """The batched ``x [B, H, W, C] -> logits [B, K]`` that jadv's attacks take."""
    return lambda x: jax.vmap(model)(x)


def train(model: ImageMLP, x, y, *, steps: int = 300, batch_size: int = 128, lr: float = 1e-2,
          seed: int = 0) -> ImageMLP:
    """Train with Adam on (x, y) for ``steps`` minibatch steps; returns the trained model."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    tx = optax.adam(lr)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(
            lambda p: cross_entropy(logits_fn_of(eqx.combine(p, static))(xb), yb))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    x, y = jnp.asarray(x), jnp.asarray(y)
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch_size)
        params, opt_state, _ = step(params, opt_state, x[idx], y[idx])
    return eqx.combine(params, static)


def accuracy(model, x, y) -> float:
    """Clean accuracy of an Equinox classifier."""
    logits = eqx.filter_jit(lambda m, x: logits_fn_of(m)(x))(model, jnp.asarray(x))
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))


@eqx.filter_jit
def _pgd(model, x, y, key, eps, steps, restarts):
    return jadv.attacks.pgd(logits_fn_of(model), x, y, key=key, eps=eps, step_size=2.5 * eps / steps,
                            steps=steps, restarts=restarts)


def attack(model, x, y, *, key, eps: float = 0.3, steps: int = 20, restarts: int = 1):
    """Linf PGD (step 2.5 eps / steps) on an Equinox model -> x_adv [B, H, W, C] (``eqx.filter_jit``:
    the model's arrays are arguments of the compiled program)."""
    return _pgd(model, jnp.asarray(x), jnp.asarray(y), key, eps, steps, restarts)


def robust_report(model, x, y, *, key, eps: float = 0.3, steps: int = 20, batch_size: int = 128) -> dict:
    """``jadv.attacks.robust_accuracy`` with PGD and APGD-CE; the model's arrays go in as ``params``."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def logits_fn(p, x):
        return logits_fn_of(eqx.combine(p, static))(x)

    specs = [{"name": "pgd", "eps": eps, "step_size": 2.5 * eps / steps, "steps": steps},
             {"name": "apgd-ce", "eps": eps, "steps": steps}]
    return jadv.attacks.robust_accuracy(logits_fn, np.asarray(x), np.asarray(y), specs, key=key,
                                        batch_size=batch_size, params=params, progress=False)


def make_loss_fn(model, x, y):
    """(loss_fn, params): ``loss_fn(params) -> mean cross-entropy`` over the model's float arrays."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(p):
        return cross_entropy(logits_fn_of(eqx.combine(p, static))(x), y)

    return loss_fn, params


def curvature(model, x, y, *, key, k: int = 2, iters: int | None = None, trace_samples: int = 50) -> dict:
    """Top-k Hessian eigenvalues (Lanczos) and the Hutchinson trace of the loss at the model's params."""
    loss_fn, params = make_loss_fn(model, x, y)
    return example_common.curvature(loss_fn, params, key=key, k=k, iters=iters, trace_samples=trace_samples)


def _api():
    return types.SimpleNamespace(make_model=make_model, train=train, accuracy=accuracy, attack=attack,
                                 robust_report=robust_report, make_loss_fn=make_loss_fn)


def run(**kwargs) -> dict:
    """The whole example (train on digits, attack, Hessian spectrum); see
    ``example_common.run_example`` for the keyword arguments and the returned dict."""
    return example_common.run_example(_api(), **kwargs)


def main(argv=None) -> dict:
    """Command line (``--help`` lists the options); returns :func:`run`'s dict."""
    return example_common.example_main(_api(), argv, description=__doc__)


if __name__ == "__main__":
    main()
