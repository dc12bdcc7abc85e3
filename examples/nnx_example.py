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

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import jadv  # noqa: E402


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


def load_digits():
    """(x_train, y_train, x_test, y_test): float32 [N, 8, 8, 1] in [0, 1] and int32 labels."""
    train, test = jadv.data.load("digits", "train"), jadv.data.load("digits", "test")
    return (jadv.data.to_float(train.images), train.labels, jadv.data.to_float(test.images), test.labels)


def cross_entropy(logits, y):
    """Mean softmax cross-entropy. logits [B, K], y [B] int."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


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
    """Top-k Hessian eigenvalues (Lanczos) and the Hutchinson trace of the loss at the NNX params."""
    loss_fn, params = make_loss_fn(model, x, y)
    k1, k2 = jax.random.split(key)
    top = jax.jit(lambda p, kk: jadv.analysis.top_eigenvalues(loss_fn, p, key=kk, k=k, iters=iters))
    vals, vecs = top(params, k1)
    trace, stderr = jax.jit(lambda p, kk: jadv.analysis.hessian_trace(loss_fn, p, key=kk, samples=trace_samples))(
        params, k2)
    return {"eigenvalues": np.asarray(vals), "eigenvectors": vecs, "trace": float(trace),
            "trace_stderr": float(stderr), "num_params": jadv.models.count_params(params)}


def run(*, steps: int = 300, eps: float = 0.3, n_test: int = 359, attack_steps: int = 20,
        curvature_examples: int = 256, lanczos_iters: int | None = None, trace_samples: int = 50,
        seed: int = 0, verbose: bool = True) -> dict:
    """The whole example: train on digits, attack (PGD, robust_accuracy), Hessian spectrum.

    Returns a dict with ``model``, the test data ``x``/``y``, ``x_adv``, ``clean_accuracy``,
    ``pgd_accuracy``, ``report`` (of ``robust_accuracy``) and ``curvature``.
    """
    key = jax.random.key(seed)
    xtr, ytr, xte, yte = load_digits()
    xte, yte = xte[:n_test], yte[:n_test]
    model = train(make_model(seed=seed), xtr, ytr, steps=steps, seed=seed)
    clean = accuracy(model, xte, yte)
    x_adv = attack(model, xte, yte, key=key, eps=eps, steps=attack_steps)
    adv = accuracy(model, x_adv, yte)
    report = robust_report(model, xte, yte, key=key, eps=eps, steps=attack_steps)
    n = curvature_examples
    curv = curvature(model, xtr[:n], ytr[:n], key=key, iters=lanczos_iters, trace_samples=trace_samples)
    if verbose:
        print(f"clean test accuracy {clean:.3f}")
        print(f"PGD-{attack_steps} Linf {eps:g} accuracy {adv:.3f}")
        print(f"robust_accuracy: clean {report['clean_accuracy']:.3f}, worst case {report['robust_accuracy']:.3f}, "
              f"per attack {report['per_attack']}")
        print(f"{curv['num_params']} params: top Hessian eigenvalues {curv['eigenvalues']}, "
              f"trace {curv['trace']:.2f} +- {curv['trace_stderr']:.2f}")
    return {"model": model, "x": xte, "y": yte, "x_adv": x_adv, "clean_accuracy": clean, "pgd_accuracy": adv,
            "report": report, "curvature": curv}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--eps", type=float, default=0.3, help="Linf radius in [0, 1] pixels")
    p.add_argument("--attack_steps", type=int, default=20, help="PGD/APGD steps")
    p.add_argument("--n_test", type=int, default=359, help="test images attacked")
    p.add_argument("--curvature_examples", type=int, default=256, help="training examples in the Hessian's loss")
    p.add_argument("--lanczos_iters", type=int, default=None, help="Lanczos steps (default: jadv's, 100)")
    p.add_argument("--trace_samples", type=int, default=50, help="Hutchinson probes")
    a = p.parse_args(argv)
    return run(steps=a.steps, eps=a.eps, n_test=a.n_test, attack_steps=a.attack_steps,
               curvature_examples=a.curvature_examples, lanczos_iters=a.lanczos_iters,
               trace_samples=a.trace_samples)


if __name__ == "__main__":
    main()
