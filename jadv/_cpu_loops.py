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
``pgd_generic``), the training attack ``jadv.train.craft``, APGD, FAB-T, the curvature solvers,
and the models of ``jadv.train.over_models`` under ``lax.map``. It does so when the default backend is CPU;
elsewhere the body is left alone (the problem was found in XLA:CPU; GPU/TPU programs were not
measured here). ``JADV_CANONICAL_CONVS=off`` (or ``on``) in the environment overrides the choice,
and so does ``with canonical_convs_mode("off"): ...`` in code (trace inside the block).

**Max pooling** (issue #19). A user's Flax CNN pools with ``nn.max_pool`` (``reduce_window_max``),
whose input gradient is ``select_and_scatter_add``; XLA:CPU runs that windowed scatter slowly, in
and out of loops (a plain conv 32-64 CNN, PGD-40 at batch 256: 0.6x of PyTorch with it, 1.7x with
the pool below; BENCHMARKS.md). jadv's own ``small_cnn`` had sidestepped it by pooling with a
reshape and a max, which only helps jadv's models. The same trace-time pass now also rewrites
every max-pool whose windows tile the (padded) input -- window == stride, no dilation, the usual
2x2/2 and also "SAME"-padded pools -- as a reshape and a max (the same values), and its
``select_and_scatter_add`` as an argmax over each window and a one-hot select: the window's
gradient goes to its first maximal element in row-major order, exactly the element XLA's ``>=``
select picks, so gradients are bitwise those of XLA even at ties (ReLU zeros). Overlapping
windows are left to XLA. The rewritten forward carries a custom VJP with that same rule, so
differentiating through a rewritten loop gives XLA's gradient too.

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


def _tiled_windows(params) -> bool:
    """A max-pooling window that tiles its (padded) input: window == stride, no dilation. Only
    these are rewritten (overlapping windows are left to XLA)."""
    win, strides = tuple(params["window_dimensions"]), tuple(params["window_strides"])
    if win != strides:
        return False
    for key in ("base_dilation", "window_dilation"):
        if key in params and any(d != 1 for d in params[key]):
            return False
    return True


def _rewritable(eqn, shapes_ok: bool = True) -> bool:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
        return not _is_canonical(eqn.params)
    if name == "reduce_window_max":
        return _tiled_windows(eqn.params) and _divides(eqn.invars[0].aval.shape, eqn.params)
    if name == "select_and_scatter_add":
        return (eqn.params["select_prim"] is lax.ge_p and _tiled_windows(eqn.params)
                and _divides(eqn.invars[1].aval.shape, eqn.params))
    return False


def _divides(shape, params) -> bool:
    return all((n + lo + hi) % k == 0 for n, (lo, hi), k in
               zip(shape, params["padding"], params["window_dimensions"]))


def _has_noncanonical_conv(jaxpr) -> bool:
    """Whether the jaxpr (or a call inside it) holds something :func:`_eval_canonical` rewrites: a
    non-canonical convolution or a tiled max-pool (forward or gradient)."""
    for eqn in jaxpr.eqns:
        if _rewritable(eqn):
            return True
        if eqn.primitive.name in _CALLS and "jaxpr" in eqn.params:
            sub = eqn.params["jaxpr"]
            if _has_noncanonical_conv(getattr(sub, "jaxpr", sub)):
                return True
    return False


# ----------------------------------------------------------------------------------------------
# max pooling with tiling windows
# ----------------------------------------------------------------------------------------------

def _windows_last(x, win):
    """``x`` (already padded so that ``win`` tiles it) as ``[*outer, prod(win)]``: the elements of
    each window last, in row-major window order (the order in which XLA's select visits them)."""
    nd = x.ndim
    split = []
    for n, k in zip(x.shape, win):
        split += [n // k, k]
    xr = x.reshape(split)
    xr = jnp.transpose(xr, (*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)))
    outer = xr.shape[:nd]
    return xr.reshape(*outer, -1), outer


def _windows_back(xw, win, outer):
    """Inverse of :func:`_windows_last`."""
    nd = len(win)
    xr = xw.reshape(*outer, *win)
    inv = np.argsort((*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)))
    xr = jnp.transpose(xr, tuple(inv))
    return xr.reshape(tuple(o * k for o, k in zip(outer, win)))


def _pool_max(x, *, window_dimensions, padding, **_):
    """``reduce_window_max`` with tiling windows as a reshape and a max (the same values: a max is
    exact). XLA:CPU runs the windowed reduction and especially its gradient slowly (BENCHMARKS.md).
    Its derivative is XLA's too (:func:`_pool_max_grad`: the first maximum of a window takes the
    gradient; a plain ``jnp.max`` would split it between tied elements)."""
    return _pool_max_vjp(tuple(window_dimensions), tuple(map(tuple, padding)), x)


def _pool_max_impl(win, padding, x):
    xp = lax.pad(x, jnp.asarray(-jnp.inf, x.dtype), [(lo, hi, 0) for lo, hi in padding])
    xw, _ = _windows_last(xp, win)
    return jnp.max(xw, axis=-1)


_pool_max_vjp = jax.custom_vjp(_pool_max_impl, nondiff_argnums=(0, 1))
_pool_max_vjp.defvjp(lambda win, padding, x: (_pool_max_impl(win, padding, x), x),
                     lambda win, padding, x, g: (_pool_max_grad(g, x, window_dimensions=win, padding=padding),))


def _pool_max_grad(source, operand, *, window_dimensions, padding, **_):
    """``select_and_scatter_add(source, operand, select_prim=ge)`` with tiling windows: each window's
    ``source`` value goes to the first maximal element of the window (row-major order), exactly
    as XLA's select with ``>=`` picks it; every other element gets 0. Elementwise work only."""
    xp = lax.pad(operand, jnp.asarray(-jnp.inf, operand.dtype), [(lo, hi, 0) for lo, hi in padding])
    xw, outer = _windows_last(xp, window_dimensions)
    first = jnp.argmax(xw, axis=-1)             # the first maximum, as XLA's ge-select keeps it
    hit = first[..., None] == jnp.arange(xw.shape[-1], dtype=first.dtype)
    out = jnp.where(hit, source[..., None], jnp.zeros((), source.dtype))
    out = _windows_back(out, window_dimensions, outer)
    idx = tuple(slice(lo, lo + n) for (lo, _), n in zip(padding, operand.shape))
    return out[idx]


def _eval_canonical(jaxpr, consts, args):
    """Evaluate a jaxpr, binding every primitive as recorded except non-canonical convolutions and
    tiled max-pools (rewritten) and calls (inlined, so that what is inside them is rewritten too)."""
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
        elif name == "reduce_window_max" and _rewritable(eqn):
            outs = [_pool_max(*invals, **eqn.params)]
        elif name == "select_and_scatter_add" and _rewritable(eqn):
            outs = [_pool_max_grad(*invals, **eqn.params)]
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
    NHWC output), the others rewritten as transposes around a canonical convolution, and every
    tiled max-pool (and its gradient) as reshapes and elementwise ops (module docstring).

    Same values as ``fn`` (transposes and maxima are exact); traceable and differentiable like
    ``fn`` (it traces ``fn`` to a jaxpr and re-evaluates it). When ``fn`` has nothing to rewrite it
    is called unchanged. Meant for ``lax`` loop bodies on CPU: see the module
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

