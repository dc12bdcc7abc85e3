"""Long loops over conv-net gradients on XLA:CPU, before/after the fix, against PyTorch, interleaved.

    python benchmarks/bench_long_loops.py                       # PGD-10, APGD-100, top eigenvalue
    python benchmarks/bench_long_loops.py --parts apgd --apgd-batch 64 --repeats 5

jadv variants of every loop (see jadv/_cpu_loops.py):

* ``plain``: one ``lax`` loop as XLA compiles it (the "before", ``JADV_CANONICAL_CONVS=off``):
  XLA:CPU leaves the backward convolutions inside the loop body in a non-canonical layout;
* ``canonical``: the same ``lax`` loop with the body's convolutions rewritten into XLA:CPU's
  canonical form at trace time (the library default on CPU since this change).

PGD-10 (Linf eps 0.3, step 0.01) on the same small CNN is written out here with its own step
function (written before jadv's ``pgd`` applied the rewrite too): the plain ``lax.fori_loop``, the
canonical loop, the fully unrolled loop (``unroll=True``, the earlier remedy), and PyTorch.

APGD-100 (Linf eps 0.3, APGD-CE, 1 restart) on jadv's ``small_cnn`` (conv3x3(64)-pool-conv3x3(128)-
pool-fc256-fc10, MNIST shape) against bench_attacks.py's plain PyTorch APGD on the same architecture.
Top eigenvalue: ``top_eigenvalues(method="power", tol=0)`` on bench_curvature.py's CNN (conv32-pool-
conv64-pool-dense10, CIFAR shape, weights and start vector copied to PyTorch) against PyHessian's
double-backward power iteration. Every row of a part is timed in turns (plain, canonical, torch, plain,
...), median of ``--repeats`` after a warm-up call; jadv's compile time (``lower().compile()``) is
reported separately. Checks that the variants give the same answer. Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

THREADS = common.set_threads()

import jax  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_attacks  # noqa: E402  (torch APGD and the torch small CNN)
import bench_curvature  # noqa: E402  (the CNN pair, weight copy, PyHessian-style power iteration)
import jadv  # noqa: E402
from jadv.analysis import top_eigenvalues  # noqa: E402

common.set_torch_threads(THREADS)


def frozen_torch_small_cnn():
    """bench_attacks' PyTorch small CNN in eval mode with frozen parameters (attacks need no weight grads)."""
    tmodel = bench_attacks.TorchSmallCNN().eval()
    for p in tmodel.parameters():
        p.requires_grad_(False)
    return tmodel


def plain_and_canonical(tag, make_device, *args):
    """Compile ``make_device()`` (a new jitted function per variant: jit caches traces per function)
    with the loop-body rewrite off and on; returns ``({name: run}, {name: compile s})``."""
    fns, comp = {}, {}
    for name, mode in (("jadv loop, plain", "off"), ("jadv loop, canonical", "on")):
        exe, comp[name] = traced_under(mode, make_device(), *args)
        fns[name] = lambda exe=exe: exe(*args).block_until_ready()
        common.log(f"{tag}: compiled {name} in {comp[name]:.1f}s")
    return fns, comp


def traced_under(mode, jitted, *args):
    """Compile ``jitted`` for ``args`` with the rewrite ``mode``; returns (executable, compile s)."""
    with common.canonical_mode(mode):
        t = common.time.perf_counter()
        compiled = jitted.lower(*args).compile()
        return compiled, common.time.perf_counter() - t


def part_pgd(batch, repeats, eps=0.3, steps=10, alpha=0.01):
    shape = (batch, 28, 28, 1)
    model = jadv.models.get("small_cnn", num_classes=10)
    variables = jadv.models.init_variables(model, jax.random.key(0), shape)
    rng = np.random.default_rng(0)
    x_np = rng.uniform(0, 1, shape).astype(np.float32)
    y_np = rng.integers(0, 10, batch).astype(np.int32)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)

    def body(v, x, y):
        def loss(xa):
            logp = jax.nn.log_softmax(model.apply(v, xa))
            return -jnp.sum(jnp.take_along_axis(logp, y[:, None], 1))

        def step(_, xa):
            xa = xa + alpha * jnp.sign(jax.grad(loss)(xa))
            return jnp.clip(jnp.clip(xa, x - eps, x + eps), 0.0, 1.0)
        return step

    def make(unroll=1, canonical=False):
        def run(v, x, y):
            b = body(v, x, y)
            return jax.lax.fori_loop(0, steps, jadv._cpu_loops.canonical_convs(b) if canonical else b, x,
                                     unroll=unroll)
        return jax.jit(run)

    variants = {"jadv loop, plain": make(), "jadv loop, canonical": make(canonical=True),
                "jadv unrolled": make(unroll=True)}
    fns, comp = {}, {}
    for name, f in variants.items():
        exe, comp[name] = traced_under("off", f, variables, x, y)
        fns[name] = lambda exe=exe: exe(variables, x, y).block_until_ready()
        common.log(f"pgd: compiled {name} in {comp[name]:.1f}s")
    outs = [np.asarray(fn()) for fn in fns.values()]
    diff = max(float(np.abs(o - outs[0]).max()) for o in outs)
    tmodel = frozen_torch_small_cnn()
    xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np).long()
    fns["torch"] = lambda: bench_attacks.torch_pgd(tmodel, xt, yt, eps, alpha, steps)
    fns["torch"]()
    times = common.interleaved(fns, repeats, warmup=False, log=common.log)
    return _table(f"small_cnn PGD-{steps}, batch {batch}", "seconds per attack", batch, times, comp, "torch",
                  f"max |x_adv difference| between the jadv variants = {diff:.1e}")


def _table(workload, what, batch, times, comp, torch_name, note, extra_col=None):
    tt = common.med(times[torch_name])
    rows = []
    for name, ts in times.items():
        m = common.med(ts)
        c = f"{comp[name]:.1f}" if name in comp else "-"
        ratio = "-" if name == torch_name else f"**{tt / m:.2f}x**"
        ips = f"{batch / m:.1f}" if batch else "-"
        ex = f" | {extra_col[name]}" if extra_col else ""
        rows.append(f"| {workload} | {name} | {c} | {m:.3f} ({common.spread(ts)}) | {ips} | {ratio}{ex} |")
    head = (f"| workload | variant | compile (s) | {what}, median (min-max) | images/s | jadv/torch (>1: jadv faster)"
            + (" | lambda_max |" if extra_col else " |"))
    sep = "|---" * (7 if extra_col else 6) + "|"
    return "\n".join([head, sep, *rows]), note


def part_apgd(batch, repeats, eps=0.3, steps=100):
    shape = (batch, 28, 28, 1)
    model = jadv.models.get("small_cnn", num_classes=10)
    variables = jadv.models.init_variables(model, jax.random.key(0), shape)
    rng = np.random.default_rng(0)
    x_np = rng.uniform(0, 1, shape).astype(np.float32)
    y_np = rng.integers(0, 10, batch).astype(np.int32)
    x, y, key = jnp.asarray(x_np), jnp.asarray(y_np), jax.random.key(1)

    def make_device():   # a new function per variant: jax.jit caches traces per function
        def device(v, x, y, key):
            return jadv.attacks.apgd(lambda z: model.apply(v, z), x, y, key=key, eps=eps, steps=steps)
        return jax.jit(device)

    fns, comp = plain_and_canonical("apgd", make_device, variables, x, y, key)
    outs = {name: np.asarray(fn()) for name, fn in fns.items()}
    diff = float(np.abs(outs["jadv loop, canonical"] - outs["jadv loop, plain"]).max())
    tmodel = frozen_torch_small_cnn()
    xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np).long()
    fns["torch"] = lambda: bench_attacks.torch_apgd(tmodel, xt, yt, eps, steps)
    fns["torch"]()
    times = common.interleaved(fns, repeats, warmup=False, log=common.log)
    return _table(f"small_cnn APGD-{steps}, batch {batch}", "seconds per attack", batch, times, comp, "torch",
                  f"max |x_adv(canonical) - x_adv(plain)| = {diff:.1e}")


def torch_power(model, x, y, v0, iters):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    return bench_curvature.torch_power_iteration(g, params, v0, iters)


def part_eig(batch, iters, repeats):
    model, shape = bench_curvature.JaxCNN(), (batch, 32, 32, 3)
    key = jax.random.key(0)
    kx, ky, kp = jax.random.split(jax.random.fold_in(key, 1), 3)
    x = jax.random.uniform(kx, shape)
    y = jax.random.randint(ky, (batch,), 0, 10)
    params = model.init(kp, x)["params"]

    def loss(p, x, y):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def make_device():   # a new function per variant: jax.jit caches traces per function
        def device(p, x, y, key):
            return top_eigenvalues(lambda q: loss(q, x, y), p, key=key, k=1, method="power", iters=iters,
                                   tol=0.0)[0]
        return jax.jit(device)

    fns, comp = plain_and_canonical("eig", make_device, params, x, y, key)
    lam = {}

    tmodel = bench_curvature.load(bench_curvature.TorchCNN(), bench_curvature.torch_tensors("cnn", params))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v0 = bench_curvature.torch_tensors("cnn", unravel(jax.random.normal(jax.random.split(key, 1)[0], flat.shape)))
    tx = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous()
    ty = torch.tensor(np.asarray(y)).long()
    fns["torch (PyHessian)"] = lambda: torch_power(tmodel, tx, ty, v0, iters)
    for name, fn in fns.items():
        out = fn()
        lam[name] = f"{float(out if isinstance(out, float) else out[0]):.6g}"
    times = common.interleaved(fns, repeats, warmup=False, log=common.log)
    return _table(f"CNN c32-c64-d10, batch {batch}, {iters} power its", "seconds per top eigenvalue", 0, times,
                  comp, "torch (PyHessian)", "same weights, batch and start vector in both frameworks",
                  extra_col=lam)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="pgd,apgd,eig", help="comma list of pgd, apgd, eig")
    ap.add_argument("--pgd-batch", type=int, default=64)
    ap.add_argument("--apgd-batch", type=int, default=16)
    ap.add_argument("--eig-batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=10, help="power iterations")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="compute threads for both frameworks")
    ap.add_argument("--append", default=None, help="append the report to this markdown file")
    args = ap.parse_args()
    load0 = common.load1()
    out = []
    for part in args.parts.split(","):
        if part == "pgd":
            out += list(part_pgd(args.pgd_batch, args.repeats))
        elif part == "apgd":
            out += list(part_apgd(args.apgd_batch, args.repeats))
        elif part == "eig":
            out += list(part_eig(args.eig_batch, args.iters, args.repeats))
        else:
            raise ValueError(f"unknown part {part!r}; allowed: pgd, apgd, eig")
    report = common.header(THREADS, load0) + "\n\n" + "\n\n".join(out)
    print(report)
    if args.append:
        common.append_report(args.append, report)


if __name__ == "__main__":
    main()
