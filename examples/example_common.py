"""Shared scaffolding of the NNX and Equinox examples: the data, the loss, the curvature report and
the ``run``/``main`` driver.

Each example module provides only its framework-specific functions: ``make_model(seed=...)``,
``train(model, x, y, steps=..., seed=...)``, ``accuracy(model, x, y)``,
``attack(model, x, y, key=..., eps=..., steps=...)``,
``robust_report(model, x, y, key=..., eps=..., steps=...)`` and ``make_loss_fn(model, x, y) ->
(loss_fn, params)``; :func:`run_example` and :func:`example_main` drive them.
"""
from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

import jadv


def load_digits():
    """(x_train, y_train, x_test, y_test): float32 [N, 8, 8, 1] in [0, 1] and int32 labels."""
    train, test = jadv.data.load("digits", "train"), jadv.data.load("digits", "test")
    return (jadv.data.to_float(train.images), train.labels, jadv.data.to_float(test.images), test.labels)


def cross_entropy(logits, y):
    """Mean softmax cross-entropy. logits [B, K], y [B] int."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def curvature(loss_fn, params, *, key, k: int = 2, iters: int | None = None, trace_samples: int = 50) -> dict:
    """Top-k Hessian eigenvalues (Lanczos) and the Hutchinson trace of ``loss_fn`` at ``params``
    (any pytree), each jitted with the parameters as inputs."""
    k1, k2 = jax.random.split(key)
    top = jax.jit(lambda p, kk: jadv.analysis.top_eigenvalues(loss_fn, p, key=kk, k=k, iters=iters))
    vals, vecs = top(params, k1)
    trace, stderr = jax.jit(lambda p, kk: jadv.analysis.hessian_trace(loss_fn, p, key=kk, samples=trace_samples))(
        params, k2)
    return {"eigenvalues": np.asarray(vals), "eigenvectors": vecs, "trace": float(trace),
            "trace_stderr": float(stderr), "num_params": jadv.models.count_params(params)}


def run_example(api, *, steps: int = 300, eps: float = 0.3, n_test: int = 359, attack_steps: int = 20,
                curvature_examples: int = 256, lanczos_iters: int | None = None, trace_samples: int = 50,
                seed: int = 0, verbose: bool = True) -> dict:
    """The whole example with the framework functions of module ``api``: train on digits, attack
    (PGD, robust_accuracy), Hessian spectrum.

    Returns a dict with ``model``, the test data ``x``/``y``, ``x_adv``, ``clean_accuracy``,
    ``pgd_accuracy``, ``report`` (of ``robust_accuracy``) and ``curvature``.
    """
    key = jax.random.key(seed)
    xtr, ytr, xte, yte = load_digits()
    xte, yte = xte[:n_test], yte[:n_test]
    model = api.train(api.make_model(seed=seed), xtr, ytr, steps=steps, seed=seed)
    clean = api.accuracy(model, xte, yte)
    x_adv = api.attack(model, xte, yte, key=key, eps=eps, steps=attack_steps)
    adv = api.accuracy(model, x_adv, yte)
    report = api.robust_report(model, xte, yte, key=key, eps=eps, steps=attack_steps)
    n = curvature_examples
    loss_fn, params = api.make_loss_fn(model, xtr[:n], ytr[:n])
    curv = curvature(loss_fn, params, key=key, iters=lanczos_iters, trace_samples=trace_samples)
    if verbose:
        print(f"clean test accuracy {clean:.3f}")
        print(f"PGD-{attack_steps} Linf {eps:g} accuracy {adv:.3f}")
        print(f"robust_accuracy: clean {report['clean_accuracy']:.3f}, worst case {report['robust_accuracy']:.3f}, "
              f"per attack {report['per_attack']}")
        print(f"{curv['num_params']} params: top Hessian eigenvalues {curv['eigenvalues']}, "
              f"trace {curv['trace']:.2f} +- {curv['trace_stderr']:.2f}")
    return {"model": model, "x": xte, "y": yte, "x_adv": x_adv, "clean_accuracy": clean, "pgd_accuracy": adv,
            "report": report, "curvature": curv}


def example_main(api, argv=None, *, description: str | None = None) -> dict:
    """Command line of an example: parses ``argv`` and calls :func:`run_example`."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--eps", type=float, default=0.3, help="Linf radius in [0, 1] pixels")
    p.add_argument("--attack_steps", type=int, default=20, help="PGD/APGD steps")
    p.add_argument("--n_test", type=int, default=359, help="test images attacked")
    p.add_argument("--curvature_examples", type=int, default=256, help="training examples in the Hessian's loss")
    p.add_argument("--lanczos_iters", type=int, default=None, help="Lanczos steps (default: jadv's, 100)")
    p.add_argument("--trace_samples", type=int, default=50, help="Hutchinson probes")
    a = p.parse_args(argv)
    return run_example(api, steps=a.steps, eps=a.eps, n_test=a.n_test, attack_steps=a.attack_steps,
                       curvature_examples=a.curvature_examples, lanczos_iters=a.lanczos_iters,
                       trace_samples=a.trace_samples)
