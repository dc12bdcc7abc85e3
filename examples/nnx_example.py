"""Attack and analyse a Flax NNX model with jadv (jadv's API is framework-agnostic).

    python examples/nnx_example.py [--steps 300] [--eps 0.3]

jadv's attacks take any ``logits_fn: x [B, H, W, C] in [0, 1] -> logits [B, K]`` and its curvature
functions any ``loss_fn(params) -> scalar`` over a parameter pytree. For an NNX module:

- ``graphdef, params = nnx.split(model)`` separates the (static) structure from the arrays;
  ``nnx.merge(graphdef, params)(x)`` runs the model on any ``params``, traced or not.
- attacks: ``logits_fn = lambda x: nnx.merge(graphdef, params)(x)`` inside a function that takes
  ``params`` as an argument and is jitted at the top (so the weights are inputs of the compiled
  program, not constants baked into it); ``robust_accuracy`` takes ``(params, x) -> logits``
  with ``params=``.
- curvature: ``loss_fn = lambda p: cross_entropy(nnx.merge(graphdef, p)(x), y)``, then
  ``jadv.analysis.top_eigenvalues(loss_fn, params, key=key)``.

The model is a small CNN trained for a few hundred Adam steps on scikit-learn's embedded 8x8
digits (no download). Each function is importable (tests/test_examples_nnx_equinox.py runs them
on tiny settings).
"""
from __future__ import annotations

import os
import sys
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import jadv  # noqa: E402
import example_common  # noqa: E402
from example_common import cross_entropy  # noqa: E402


class SmallCNN(nnx.Module):
    """conv3x3(C) -> relu -> conv3x3 stride 2 (C) -> relu -> linear. x [B, H, W, in_ch] -> [B, K]."""

    def __init__(self, *, in_channels: int = 1, channels: int = 8, image_size: int = 8,
                 num_classes: int = 10, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_channels, channels, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
        side = (image_size + 1) // 2
        self.head = nnx.Linear(side * side * channels, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv1(x))
        x = nnx.relu(self.conv2(x))
        return self.head(x.reshape(x.shape[0], -1))


def make_model(*, channels: int = 8, image_size: int = 8, in_channels: int = 1, num_classes: int = 10,
               seed: int = 0) -> SmallCNN:
    """A freshly initialised :class:`SmallCNN`."""
    return SmallCNN(in_channels=in_channels, channels=channels, image_size=image_size,
                    num_classes=num_classes, rngs=nnx.Rngs(seed))


def train(model: SmallCNN, x, y, *, steps: int = 300, batch_size: int = 128, lr: float = 1e-2,
          seed: int = 0) -> SmallCNN:
    """Train with Adam on (x, y) for ``steps`` minibatch steps; returns the trained module.

    Functional NNX: the parameters are split off, updated by a jitted pure step, merged back.
    """
    graphdef, params = nnx.split(model)
    tx = optax.adam(lr)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(xb), yb))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    x, y = jnp.asarray(x), jnp.asarray(y)
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch_size)
        params, opt_state, _ = step(params, opt_state, x[idx], y[idx])
    return nnx.merge(graphdef, params)


def accuracy(model, x, y) -> float:
    """Clean accuracy of an NNX classifier."""
    graphdef, params = nnx.split(model)
    logits = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, jnp.asarray(x))
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))


def attack(model, x, y, *, key, eps: float = 0.3, steps: int = 20, restarts: int = 1):
    """Linf PGD (step 2.5 eps / steps) on an NNX model -> x_adv [B, H, W, C] (one jitted program)."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def run(params, x, y, key):
        logits_fn = lambda z: nnx.merge(graphdef, params)(z)          # noqa: E731
        return jadv.attacks.pgd(logits_fn, x, y, key=key, eps=eps, step_size=2.5 * eps / steps,
                                steps=steps, restarts=restarts)

    return run(params, jnp.asarray(x), jnp.asarray(y), key)


def robust_report(model, x, y, *, key, eps: float = 0.3, steps: int = 20, batch_size: int = 128) -> dict:
    """``jadv.attacks.robust_accuracy`` with PGD and APGD-CE on an NNX model (params passed, not closed over)."""
    graphdef, params = nnx.split(model)

    def logits_fn(p, x):
        return nnx.merge(graphdef, p)(x)

    specs = [{"name": "pgd", "eps": eps, "step_size": 2.5 * eps / steps, "steps": steps},
             {"name": "apgd-ce", "eps": eps, "steps": steps}]
    return jadv.attacks.robust_accuracy(logits_fn, np.asarray(x), np.asarray(y), specs, key=key,
                                        batch_size=batch_size, params=params, progress=False)


def make_loss_fn(model, x, y):
    """(loss_fn, params): ``loss_fn(params) -> mean cross-entropy`` of the NNX model on (x, y)."""
    graphdef, params = nnx.split(model)
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(p):
        return cross_entropy(nnx.merge(graphdef, p)(x), y)

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
