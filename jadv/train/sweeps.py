"""Sweeps: many models (seeds, epsilons, data sizes) trained or evaluated as one program.

:func:`over_models` maps a per-model function over a leading model axis inside one compiled
program, as ``jax.vmap`` (one batched program) or ``lax.map`` (the models one after another in one
compiled loop), chosen per backend. Study 2 (``experiments/tradeoff.py``: ``train_cnns_many``,
``eval_many``) trains and evaluates its small MNIST models this way.

The choice: "auto" (default) picks ``lax.map`` on CPU and ``vmap`` elsewhere. Under ``vmap`` a
convolution of M models (each its own kernel) becomes one grouped convolution, which XLA:CPU runs
on a slow path: compiling and training 4 MNIST CNNs with PGD-5 for 60 steps took 1.9x longer
vmapped than mapped on the 2-core development CPU (benchmarks/bench_model_stacking.py,
BENCHMARKS.md). On GPU/TPU one batched program keeps the device busy. The environment variable
``JADV_STACK_MODELS`` ("auto", "vmap", "map") overrides the default, and so does
``with stacking_mode("map"): ...`` in code (trace inside the block).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import jax
from jax import lax

from jadv._checks import check_choice
from jadv._cpu_loops import cpu_canonical

__all__ = ["over_models", "stacking_mode", "STACK_MODES"]

STACK_MODES = ("auto", "vmap", "map")
# "auto": lax.map on CPU, vmap elsewhere; "vmap"/"map" force one. Read when over_models is called;
# switch it in code with stacking_mode, not by assigning it.
STACK_MODELS = os.environ.get("JADV_STACK_MODELS", "auto")


@contextlib.contextmanager
def stacking_mode(mode: str) -> Iterator[None]:
    """Context manager: :func:`over_models` calls without ``mode=`` use ``mode`` ("auto", "vmap" or
    "map") while the block runs, then the previous default again (also when the block raises)."""
    global STACK_MODELS
    check_choice("stacking_mode mode", mode, STACK_MODES)
    old = STACK_MODELS
    STACK_MODELS = mode
    try:
        yield
    finally:
        STACK_MODELS = old


def over_models(fn: Callable, in_axes: int | tuple = 0, mode: str | None = None) -> Callable:
    """``fn`` applied to every slice of a leading model axis, as one program.

    ``in_axes``: as ``jax.vmap`` (an int, or a tuple of 0/None per positional argument; None =
    shared by all models). ``mode``: "vmap" (one batched program: a convolution of M models becomes
    one grouped convolution), "map" (``lax.map``: the models one after another inside one compiled
    loop, the loop body's convolutions in canonical form on CPU, see :mod:`jadv._cpu_loops`), or
    "auto" (the default, from ``JADV_STACK_MODELS`` or :func:`stacking_mode`): "map" when the
    default backend is CPU, else "vmap" (why: the module docstring). The results are the same
    either way (tests/test_cpu_loops.py); the outputs are stacked on axis 0.
    """
    mode = STACK_MODELS if mode is None else mode
    check_choice("mode", mode, STACK_MODES)
    if mode == "auto":
        mode = "map" if jax.default_backend() == "cpu" else "vmap"
    if mode == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    for a in ((in_axes,) if isinstance(in_axes, int) else tuple(in_axes)):
        if a not in (0, None):
            raise ValueError(f"over_models supports in_axes of 0 or None, got {a!r}")
    canonical = cpu_canonical(fn)

    def mapped(*args):
        axes = (in_axes,) * len(args) if isinstance(in_axes, int) else tuple(in_axes)
        if len(axes) != len(args):
            raise ValueError(f"in_axes has {len(axes)} entries for {len(args)} arguments")
        stacked = tuple(a for a, ax in zip(args, axes) if ax == 0)
        if not stacked:
            raise ValueError("over_models needs at least one argument with a model axis (in_axes 0)")

        def one(sl):
            it = iter(sl)
            return canonical(*[next(it) if ax == 0 else a for a, ax in zip(args, axes)])

        return lax.map(one, stacked)

    return mapped
