"""Hessian-vector product and top-eigenvalue speed: jadv (JAX) against the PyHessian way (PyTorch).

Same models, same weights (copied from JAX to PyTorch), same batch (random data of the given
shape), same number of power iterations. The PyTorch side is PyHessian's single-batch mode: build
the graph once with ``create_graph=True`` and get each ``Hv`` with ``torch.autograd.grad(g, params,
grad_outputs=v, retain_graph=True)``; power iteration ``v <- Hv/||Hv||`` for a fixed number of
steps. The JAX side is ``jadv.analysis.hvp`` (forward-over-reverse) and
``jadv.analysis.top_eigenvalues(method="power", tol=0)`` under one ``jax.jit``; its compile time is
reported separately. Timings are medians over repeats.

Models: (a) MLP 784-256-256-10 on MNIST-shaped input [B, 28, 28, 1]; (b) CNN
conv3x3(32)-relu-maxpool2-conv3x3(64)-relu-maxpool2-dense(10) on CIFAR-shaped input [B, 32, 32, 3].

    python benchmarks/bench_curvature.py --batch 128 --iters 20 --repeats 5 --threads 1

Prints a markdown table (and a check that both frameworks find the same eigenvalue). Not a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


# Threads must be fixed before JAX starts. With --threads 1 (default) both frameworks run
# single-threaded: on a shared CPU an oversubscribed OpenMP pool makes PyTorch tens of times
# slower, which would measure the machine's load, not the method.
THREADS = _threads_from_argv(sys.argv[1:])
if THREADS == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import jadv  # noqa: E402
from jadv.analysis import hvp, top_eigenvalues  # noqa: E402

torch.set_num_threads(THREADS)


# ------------------------------------------------------------------------------------------ models

class JaxMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(256)(x))
        x = nn.relu(nn.Dense(256)(x))
        return nn.Dense(10)(x)


class JaxCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(32, (3, 3), padding="SAME")(x)), (2, 2), (2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(64, (3, 3), padding="SAME")(x)), (2, 2), (2, 2))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def torch_tensors(name, p):
    """A Flax params-shaped pytree -> tensors in the order of the matching torch model's parameters.

    Kernels are converted to PyTorch layouts: dense (in, out) -> (out, in), conv HWIO -> OIHW.
    Used for the weights and for the power-iteration start vector, so both frameworks start alike.
    """
    t = lambda a: torch.tensor(np.array(a))
    if name == "mlp":
        layers = ("Dense_0", "Dense_1", "Dense_2")
        out = []
        for l in layers:
            out += [t(np.asarray(p[l]["kernel"]).T), t(p[l]["bias"])]
        return out
    out = []
    for l in ("Conv_0", "Conv_1"):
        out += [t(np.asarray(p[l]["kernel"]).transpose(3, 2, 0, 1)), t(p[l]["bias"])]
    return out + [t(np.asarray(p["Dense_0"]["kernel"]).T), t(p["Dense_0"]["bias"])]


def load(model, tensors):
    with torch.no_grad():
        for param, value in zip(model.parameters(), tensors):
            assert param.shape == value.shape, (param.shape, value.shape)
            param.copy_(value)
    return model


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.ModuleList([torch.nn.Linear(784, 256), torch.nn.Linear(256, 256),
                                      torch.nn.Linear(256, 10)])

    def forward(self, x):  # x NCHW
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC flatten order, as in Flax
        x = torch.relu(self.l[0](x))
        x = torch.relu(self.l[1](x))
        return self.l[2](x)


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 8 * 64, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.permute(0, 2, 3, 1).flatten(1))  # NHWC flatten order, as in Flax


# ------------------------------------------------------------------------------------------ timing

def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_jax(model, params, x, y, iters, repeats, eig_repeats, key):
    def loss(p, x, y):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def hvp_fn(p, v, x, y):
        return hvp(lambda q: loss(q, x, y), p, v)

    def eig_fn(p, x, y, key):
        return top_eigenvalues(lambda q: loss(q, x, y), p, key=key, k=1, method="power",
                               iters=iters, tol=0.0)

    v = jax.tree.map(jnp.ones_like, params)
    out = {}
    for name, f, args in (("hvp", hvp_fn, (params, v, x, y)), ("eig", eig_fn, (params, x, y, key))):
        t = time.perf_counter()
        compiled = jax.jit(f).lower(*args).compile()
        out[name + "_compile"] = time.perf_counter() - t
        if name == "hvp":
            jax.block_until_ready(compiled(*args))  # warm-up (the executable is already compiled)
            out[name] = median_time(lambda: jax.block_until_ready(compiled(*args)), repeats)
        else:
            res = []
            out[name] = median_time(lambda: res.append(jax.block_until_ready(compiled(*args))), eig_repeats)
            out["lambda"] = float(res[-1][0][0])
    return out


def torch_power_iteration(grads, params, v0, iters):
    """PyHessian-style power iteration: ``grads`` = first-order gradients built with
    ``create_graph=True``; double backward per step. Returns the last Rayleigh quotient."""
    vv = [a.clone() for a in v0]
    nrm = torch.sqrt(sum((a * a).sum() for a in vv))
    vv = [a / nrm for a in vv]
    lam = None
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=vv, retain_graph=True)
        lam = sum((a * b).sum() for a, b in zip(hv, vv)).item()
        nrm = torch.sqrt(sum((a * a).sum() for a in hv))
        vv = [a / (nrm + 1e-6) for a in hv]
    return lam


def bench_torch(model, x, y, iters, repeats, eig_repeats, v0):
    params = [p for p in model.parameters() if p.requires_grad]
    crit = torch.nn.CrossEntropyLoss()

    def graph():
        loss = crit(model(x), y)
        return torch.autograd.grad(loss, params, create_graph=True)

    gs = graph()
    v = [torch.ones_like(p) for p in params]

    def one_hvp():
        return torch.autograd.grad(gs, params, grad_outputs=v, retain_graph=True)

    def power():
        # PyHessian builds the graph once per analysis; the same start vector as jadv's
        return torch_power_iteration(graph(), params, v0, iters)

    one_hvp()
    out = {"hvp": median_time(one_hvp, repeats)}
    res = []
    out["eig"] = median_time(lambda: res.append(power()), eig_repeats)
    out["lambda"] = res[-1]
    return out


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def machine():
    try:
        line = [l for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if "Model name" in l]
        return line[0].split(":", 1)[1].strip() if line else platform.processor()
    except OSError:
        return platform.processor()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20, help="power iterations (both frameworks)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eig-repeats", type=int, default=1, help="repeats of the whole top-eigenvalue run")
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for both frameworks (1: XLA single-threaded too)")
    args = ap.parse_args(argv)

    key = jax.random.key(0)
    rows = []
    for name in args.models.split(","):
        if name == "mlp":
            model, shape = JaxMLP(), (args.batch, 28, 28, 1)
        elif name == "cnn":
            model, shape = JaxCNN(), (args.batch, 32, 32, 3)
        else:
            raise ValueError(f"unknown model {name!r}; allowed: mlp, cnn")
        kx, ky, kp = jax.random.split(jax.random.fold_in(key, len(rows)), 3)
        x = jax.random.uniform(kx, shape)
        y = jax.random.randint(ky, (args.batch,), 0, 10)
        params = model.init(kp, x)["params"]
        n_params = sum(int(np.prod(l.shape)) for l in jax.tree.leaves(params))
        log(f"{name}: {n_params:,} parameters; timing jadv ...")
        j = bench_jax(model, params, x, y, args.iters, args.repeats, args.eig_repeats, key)
        log(f"{name}: jadv {j}; timing torch ...")
        tmodel = load(TorchMLP() if name == "mlp" else TorchCNN(), torch_tensors(name, params))
        # jadv's power-iteration start: a standard normal flat vector from split(key, k)[0]
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        v0 = torch_tensors(name, unravel(jax.random.normal(jax.random.split(key, 1)[0], flat.shape)))
        tx = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous()
        ty = torch.tensor(np.asarray(y)).long()
        # same function in both frameworks: logits agree
        with torch.no_grad():
            diff = np.abs(tmodel(tx).numpy() - np.asarray(model.apply({"params": params}, x))).max()
        t = bench_torch(tmodel, tx, ty, args.iters, args.repeats, args.eig_repeats, v0)
        log(f"{name}: torch {t}")
        rows.append((name, n_params, j, t, diff))

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; jax {jax.__version__} ({jax.default_backend()}, "
          f"{jax.device_count()} device(s)), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), jadv {jadv.__version__}; --threads {THREADS}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"batch {args.batch}, {args.iters} power iterations; HVP: median of {args.repeats} repeats after a "
          f"warm-up, top-eig: median of {args.eig_repeats} run(s) of the compiled program (graph build included "
          f"for torch)\n")
    print("| model | params | jadv HVP (ms) | torch HVP (ms) | jadv top-eig (ms) | torch top-eig (ms) "
          "| jadv compile HVP / eig (s) | lambda jadv / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, j, t, diff in rows:
        print(f"| {name} | {n:,} | {1e3 * j['hvp']:.2f} | {1e3 * t['hvp']:.2f} | {1e3 * j['eig']:.1f} | "
              f"{1e3 * t['eig']:.1f} | {j['hvp_compile']:.2f} / {j['eig_compile']:.2f} | "
              f"{j['lambda']:.5g} / {t['lambda']:.5g} |")
    print("\nmax |logits_jax - logits_torch| per model: "
          + ", ".join(f"{name} {diff:.1e}" for name, _, _, _, diff in rows))


if __name__ == "__main__":
    main()
