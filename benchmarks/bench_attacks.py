"""PGD-10 and APGD-100 throughput: jadv (JAX, one jitted program) vs a plain PyTorch implementation of
the same attacks, on the same architecture, batch and machine (CPU by default).

    python benchmarks/bench_attacks.py                 # MLP + small CNN, batch 128, MNIST shape
    python benchmarks/bench_attacks.py --batch 64 --repeats 3 --archs small_cnn

    python benchmarks/bench_attacks.py --archs user_cnn --batch 256 --pgd-steps 40 --threads 2   # issue #19
    python benchmarks/bench_attacks.py --archs user_cnn --batch 256 --pgd-steps 40 --threads 2 --cpu-devices 2

Models: jadv.models "mlp" (784-256-256-10) and "small_cnn" (conv3x3(64)-pool-conv3x3(128)-pool-fc256-
fc10, no norm), and "user_cnn": a plain Flax CNN as a user writes it, not one of jadv's models
(``nn.Conv(32)`` "SAME"-ReLU-``nn.max_pool``-``nn.Conv(64)``-ReLU-``nn.max_pool``-``nn.Dense(128)``-
``nn.Dense(10)``), each mirrored layer by layer in torch. Random weights and random inputs (throughput does not
depend on the values). Attacks: Linf eps 0.3; PGD ``--pgd-steps`` (default 10) steps of 0.01 from a uniform start; APGD-CE 100
steps (momentum 0.75, step halving at the checkpoints 22, 41, ..., 99, restart from the best point).
jadv time = median of ``--repeats`` calls after a first call whose time (compile + run) is reported
separately; torch time = median of ``--repeats`` calls after one warm-up call. ``--threads`` fixes the
number of compute threads of both frameworks (default 1: on a shared, loaded machine multi-threaded
runs mostly measure contention; XLA gets ``--xla_cpu_multi_thread_eigen=false`` for 1 thread).
``--cpu-devices N``: jadv exposes N CPU devices (``jadv.train.use_cpu_cores``) and the batch is
placed sharded over them (``jadv.train.shard_batch``, weights replicated), as a user does to run
one shard per core; XLA:CPU otherwise runs a small CNN's program on one core. PyTorch keeps its
``--threads`` intra-op threads. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--threads", type=int, default=1)
_pre.add_argument("--cpu-devices", type=int, default=1)
THREADS = _pre.parse_known_args(sys.argv[1:])[0].threads
CPU_DEVICES = _pre.parse_known_args(sys.argv[1:])[0].cpu_devices
if THREADS == 1 and "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402

if CPU_DEVICES > 1:
    jax.config.update("jax_num_cpu_devices", CPU_DEVICES)   # = jadv.train.use_cpu_cores, before any JAX work
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import flax.linen as nn  # noqa: E402

import jadv  # noqa: E402
from jadv.attacks.apgd import apgd_checkpoints  # noqa: E402


class UserCNN(nn.Module):
    """A user's own Flax CNN (nothing from jadv.models): conv 32-64 "SAME", nn.max_pool, fc 128."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        for width in (32, 64):
            x = nn.max_pool(nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x)), (2, 2), strides=(2, 2))
        x = nn.relu(nn.Dense(128)(x.reshape((x.shape[0], -1))))
        return nn.Dense(10)(x)


# ----------------------------------------------------------------------------- torch models


class TorchMLP(tnn.Module):
    def __init__(self, d=784, hidden=(256, 256), k=10):
        super().__init__()
        dims = (d, *hidden)
        self.layers = tnn.ModuleList([tnn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.head = tnn.Linear(dims[-1], k)

    def forward(self, x):  # x NHWC
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.head(x)


class TorchSmallCNN(tnn.Module):
    """jadv ``small_cnn`` (norm "none"): conv3x3(64)-relu-pool-conv3x3(128)-relu-pool-fc256-fc10.

    ``nhwc=True`` (default): NHWC input and a channels-last flatten, so jadv's weights copy over
    one to one; ``nhwc=False``: plain NCHW input and flatten, the usual PyTorch model.
    """

    def __init__(self, c=1, hw=28, k=10, widths=(64, 128), hidden=256, nhwc=True):
        super().__init__()
        self.nhwc = nhwc
        chans = (c, *widths)
        self.convs = tnn.ModuleList([tnn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:])])
        side = hw // 2 ** len(widths)
        self.fc = tnn.Linear(side * side * widths[-1], hidden)
        self.head = tnn.Linear(hidden, k)

    def forward(self, x):
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        if self.nhwc:
            x = x.permute(0, 2, 3, 1)
        return self.head(F.relu(self.fc(x.reshape(x.shape[0], -1))))


# ----------------------------------------------------------------------------- torch attacks


def torch_pgd(model, x, y, eps, alpha, steps):
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * g.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def torch_apgd(model, x, y, eps, steps=100, rho=0.75):
    """APGD-CE, Linf, per example (same algorithm as jadv.attacks.apgd)."""
    checks = apgd_checkpoints(steps)
    windows = dict(zip(checks, np.diff([0] + checks)))
    b = x.shape[0]
    view = (b, 1, 1, 1)

    def proj(z):
        return torch.min(torch.max(z, x - eps), x + eps).clamp(0, 1)

    def loss_grad(xa):
        xa = xa.clone().requires_grad_(True)
        logits = model(xa)
        loss = F.cross_entropy(logits, y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), xa)
        return loss.detach(), g.detach(), logits.detach()

    t = torch.rand_like(x) * 2 - 1
    x_adv = (x + eps * t / t.abs().amax(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)
    loss, grad, logits = loss_grad(x_adv)
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
    x_best_adv = x_adv.clone()
    success = logits.argmax(1) != y
    step = torch.full(view, 2 * eps, device=x.device)
    x_old = x_adv.clone()
    loss_prev = torch.zeros(b, device=x.device)
    n_inc = torch.zeros(b, device=x.device)
    loss_best_last = loss_best.clone()
    reduced_last = torch.ones(b, dtype=torch.bool, device=x.device)
    for i in range(steps):
        with torch.no_grad():
            momentum = x_adv - x_old
            x_old = x_adv
            a = 0.75 if i > 0 else 1.0
            z = proj(x_adv + step * grad.sign())
            x_adv = proj(x_adv + a * (z - x_adv) + (1 - a) * momentum)
        loss, grad, logits = loss_grad(x_adv)
        with torch.no_grad():
            s = logits.argmax(1) != y
            x_best_adv[s] = x_adv[s]
            success |= s
            n_inc += (loss > loss_prev).float()
            loss_prev = loss
            imp = loss > loss_best
            x_best[imp], grad_best[imp], loss_best[imp] = x_adv[imp], grad[imp], loss[imp]
            if (i + 1) in windows:
                osc = n_inc <= windows[i + 1] * rho
                red = osc | (~reduced_last & (loss_best_last >= loss_best))
                reduced_last, loss_best_last = red, loss_best.clone()
                n_inc.zero_()
                step[red] /= 2
                x_adv = x_adv.clone()
                x_adv[red], grad[red] = x_best[red], grad_best[red]
    return torch.where(success.view(view), x_best_adv, x_best)


# ----------------------------------------------------------------------------- harness


def _median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench(arch, batch, repeats, apgd_repeats, pgd_steps=10):
    shape = (batch, 28, 28, 1)
    if arch == "user_cnn":
        model = UserCNN()
        variables = model.init(jax.random.key(0), jnp.zeros((1,) + shape[1:]))
    else:
        model = jadv.models.get(arch, num_classes=10)
        variables = jadv.models.init_variables(model, jax.random.key(0), shape)

    def apply(v, x):
        return model.apply(v, x, train=False)

    rng = np.random.default_rng(0)
    x_np = rng.uniform(0, 1, shape).astype(np.float32)
    y_np = rng.integers(0, 10, batch).astype(np.int32)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    if jax.device_count() > 1:
        mesh = jadv.train.make_mesh()
        x, y = jadv.train.shard_batch(x_np, mesh), jadv.train.shard_batch(y_np, mesh)
        variables = jadv.train.replicate(variables, mesh)
    eps = 0.3

    @jax.jit
    def jax_pgd(v, x, y, key):
        return jadv.attacks.pgd(lambda z: apply(v, z), x, y, key=key, eps=eps, step_size=0.01, steps=pgd_steps)

    @jax.jit
    def jax_apgd(v, x, y, key):
        return jadv.attacks.apgd(lambda z: apply(v, z), x, y, key=key, eps=eps, steps=100)

    tmodel = {"mlp": TorchMLP, "small_cnn": TorchSmallCNN,
              "user_cnn": lambda: TorchSmallCNN(widths=(32, 64), hidden=128)}[arch]().eval()
    for p in tmodel.parameters():
        p.requires_grad_(False)
    xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np).long()
    rows = []
    for name, jfn, tfn, reps in [
        (f"PGD-{pgd_steps}", jax_pgd, lambda: torch_pgd(tmodel, xt, yt, eps, 0.01, pgd_steps), repeats),
        ("APGD-100", jax_apgd, lambda: torch_apgd(tmodel, xt, yt, eps, 100), apgd_repeats),
    ]:
        key = jax.random.key(1)
        t0 = time.perf_counter()
        jfn(variables, x, y, key).block_until_ready()
        first = time.perf_counter() - t0
        tj = _median_time(lambda: jfn(variables, x, y, key).block_until_ready(), reps)
        tfn()  # warm-up
        tt = _median_time(tfn, reps)
        rows.append((arch, name, batch, first - tj, batch / tj, batch / tt, tt / tj))
        print(f"  done {arch} {name}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="mlp,small_cnn")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--apgd-repeats", type=int, default=3)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="compute threads for both frameworks")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="jadv: CPU devices to shard the batch over (one per core; jadv.train.use_cpu_cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for arch in args.archs.split(","):
        rows += bench(arch, args.batch, args.repeats, args.apgd_repeats, args.pgd_steps)
    print(f"\ndevice: jax {jax.__version__} {jax.devices()[0].platform} ({jax.device_count()} device(s)), "
          f"torch {torch.__version__} CPU; {args.threads} compute thread(s) each; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| model | attack | batch | jadv compile (s) | jadv img/s | torch img/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for arch, name, b, comp, ij, it, sp in rows:
        print(f"| {arch} | {name} | {b} | {comp:.2f} | {ij:.0f} | {it:.0f} | {sp:.2f}x |")


if __name__ == "__main__":
    main()
