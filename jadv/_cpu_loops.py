"""Fast loops over conv-net gradients on XLA:CPU: convolutions in loop bodies put in canonical form.

This docstring is the one explanation of the CPU loop rewrite; the loops that use it refer here.

The problem (measured in BENCHMARKS.md, XLA:CPU in jax 0.10.2): XLA:CPU runs a convolution on
its fast (Eigen) path only in the canonical form ``dim_labels=b01f_01io->b01f`` (input NHWC,
kernel HWIO, output NHWC). Its pass that rewrites other convolutions into that form (explicit
transposes around a canonical convolution; ``ConvCanonicalization`` in
xla/service/cpu/conv_canonicalization.cc) visits only the *entry* computation. The input
gradient of a convolution (kernel ``01oi``) and its weight gradient (``f01b_i01o->01bf``) inside
a ``while`` body -- every ``lax.fori_loop``/``scan``/``while_loop`` -- therefore stay on the slow
generic path: a PGD/APGD step loop on a small CNN runs 2-2.5x slower than straight-line code,
and a power iteration over conv-net HVPs 15-30x slower.

The remedy, :func:`canonical_convs`, does at trace time, in JAX, what XLA does for the entry
computation: each non-canonical ``conv_general_dilated`` of a function is rewritten as transposes
of its operands, a canonical convolution and a transpose of the result (the same values; a
transpose is exact). Applied to a loop body, the loop stays one jit-able ``lax`` loop, its compile
time does not grow with the number of steps, and it runs as fast as unrolled code. The library
applies it through :func:`cpu_canonical` to the bodies of its step loops: PGD (``pgd``,
``pgd_generic``), the training attack ``jadv.train.craft``, APGD, the curvature solvers, and the
models of ``jadv.train.over_models`` under ``lax.map``. It does so when the default backend is CPU;
elsewhere the body is left alone (the problem was found in XLA:CPU; GPU/TPU programs were not
measured here). ``JADV_CANONICAL_CONVS=off`` (or ``on``) in the environment overrides the choice,
and so does ``with canonical_convs_mode("off"): ...`` in code (trace inside the block).

The attacks' step loops used to take ``unroll=`` (a fully unrolled loop was the first remedy). It
was removed: with this rewrite the loop is as fast as the unrolled one on CPU (PGD-10 0.96 vs
1.08 s, PGD-AT step 1.62 vs 1.70 s, TRADES step 1.89 vs 2.04 s; BENCHMARKS.md), while an
unrolled program's compile time grows with the number of steps.

A host-driven loop (a Python loop over one compiled step, every step an entry computation) was
measured too: as fast as this on APGD and slower on the power iteration, and it cannot run under
``jax.jit``; it was not kept (BENCHMARKS.md).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Literal

from jadv._checks import check_choice

# "auto": rewrite non-canonical convolutions in loop bodies when the default backend is CPU;
# "on"/"off" force it (benchmarks use "off" for the before/after figures). Read at trace time;
# switch it in code with canonical_convs_mode, not by assigning it.
CANONICAL_CONVS = os.environ.get("JADV_CANONICAL_CONVS", "auto")
CANONICAL_MODES = ("auto", "on", "off")

__all__ = ["canonical_convs", "cpu_canonical", "canonical_convs_mode", "CANONICAL_MODES"]


@contextlib.contextmanager
def canonical_convs_mode(mode: str) -> Iterator[None]:
    """Context manager: :func:`cpu_canonical` uses ``mode`` ("auto", "on" or "off") while the block
    runs, then the previous mode again (also when the block raises).

    The mode is read when a loop body is traced, so trace (call a new function object under
    ``jax.jit``) inside the block: a function jitted before keeps the trace it cached.
    """
    global CANONICAL_CONVS
    check_choice("canonical_convs_mode mode", mode, CANONICAL_MODES)
    old = CANONICAL_CONVS
    CANONICAL_CONVS = mode
    try:
        yield
    finally:
        CANONICAL_CONVS = old


# ----------------------------------------------------------------------------------------------
# canonical convolutions
# ----------------------------------------------------------------------------------------------

_CALLS = ("jit", "pjit", "closed_call", "core_call")


def _canonical_specs(nd: int):
    spatial = tuple(range(1, nd - 1))
    return (0, nd - 1, *spatial), (nd - 1, nd - 2, *range(nd - 2)), (0, nd - 1, *spatial)


def _is_canonical(params) -> bool:
    dn = params["dimension_numbers"]
    specs = (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec))
    return specs == _canonical_specs(len(dn.lhs_spec))


def _canonical_conv(prim, lhs, rhs, **params):
    """``prim.bind(lhs, rhs, **params)`` as transpose -> canonical convolution -> transpose."""
    dn = params["dimension_numbers"]
    ls, rs, os_ = tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)
    lhs_t = jnp.transpose(lhs, (ls[0], *ls[2:], ls[1]))            # batch, spatial..., feature
    rhs_t = jnp.transpose(rhs, (*rs[2:], rs[1], rs[0]))            # spatial..., in, out
    out = prim.bind(lhs_t, rhs_t, **dict(params, dimension_numbers=lax.ConvDimensionNumbers(
        *_canonical_specs(len(ls)))))
    # the canonical output is (batch, spatial..., feature); put each dim back where it was
    return jnp.transpose(out, tuple(np.argsort((os_[0], *os_[2:], os_[1]))))


def _has_noncanonical_conv(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated" and not _is_canonical(eqn.params):
            return True
        if eqn.primitive.name in _CALLS and "jaxpr" in eqn.params:
            sub = eqn.params["jaxpr"]
            if _has_noncanonical_conv(getattr(sub, "jaxpr", sub)):
                return True
    return False


def _eval_canonical(jaxpr, consts, args):
    """Evaluate a jaxpr, binding every primitive as recorded except non-canonical convolutions
    (rewritten) and calls (inlined, so that convolutions inside them are rewritten too)."""
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "conv_general_dilated" and not _is_canonical(eqn.params):
            outs = [_canonical_conv(eqn.primitive, *invals, **eqn.params)]
        elif name in _CALLS and "jaxpr" in eqn.params and _has_noncanonical_conv(
                getattr(eqn.params["jaxpr"], "jaxpr", eqn.params["jaxpr"])):
            sub = eqn.params["jaxpr"]
            outs = _eval_canonical(getattr(sub, "jaxpr", sub), getattr(sub, "consts", ()), invals)
        else:
            outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outs = [outs]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def canonical_convs(fn: Callable) -> Callable:
    """``fn`` with every convolution in XLA:CPU's fast canonical form (NHWC input, HWIO kernel,
    NHWC output), the others rewritten as transposes around a canonical convolution.

    Same values as ``fn`` (the transposes are exact); traceable and differentiable like ``fn``
    (it traces ``fn`` to a jaxpr and re-evaluates it). When ``fn`` has no non-canonical
    convolution it is called unchanged. Meant for ``lax`` loop bodies on CPU: see the module
    docstring.
    """
    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        if not _has_noncanonical_conv(closed.jaxpr):
            return fn(*args)
        out = _eval_canonical(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(out_shape), out)

    return wrapped


def cpu_canonical(fn: Callable) -> Callable:
    """:func:`canonical_convs` when the default backend is CPU (``JADV_CANONICAL_CONVS=auto``,
    the default), or always (``on``), or never (``off``); otherwise ``fn`` itself. The mode is
    read now, at trace time; :func:`canonical_convs_mode` switches it for a block of code."""
    mode = CANONICAL_CONVS
    check_choice("JADV_CANONICAL_CONVS", mode, CANONICAL_MODES)
    if mode == "on" or (mode == "auto" and jax.default_backend() == "cpu"):
        return canonical_convs(fn)
    return fn

