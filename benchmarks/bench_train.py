"""Seconds per adversarial-training step: jadv's jitted train step vs the same step in plain PyTorch.

    python benchmarks/bench_train.py                                  # small CNN, batch 128, CPU
    python benchmarks/bench_train.py --arch preact_resnet18 --batch 128 --steps 1 --repeats 3
    python benchmarks/bench_train.py --dtype bfloat16                 # bf16 compute, f32 parameters
    python benchmarks/bench_train.py --breakdown                      # per-layer XLA vs PyTorch times
    python benchmarks/bench_train.py --arch user_cnn --batch 256 --threads 2 --cpu-devices 2 --variants canonical
                                      # a user's Flax CNN (nn.max_pool), batch sharded over one CPU device per core

Steps (identical in both frameworks; jadv's is ``jadv.train.make_train_step`` on the objectives
``pgd_at`` and ``trades`` of ``jadv.train.make_objective``):

* PGD-AT (Madry et al. 2018): PGD-10, Linf, uniform random start, step 2.5 eps/10, attack with
  batch statistics updated by every attack forward (jadv's ``attack_bn_mode="train"``, PyTorch
  ``model.train()``), then one SGD step on ``mean CE(f(x_adv), y)``.
* TRADES (Zhang et al. 2019): clean logits once (no gradient), 10 sign steps on
  ``KL(p(x) || p(x'))`` from ``x + 0.001 N(0, I)`` with running statistics (``model.eval()``), then
  one SGD step on ``CE(f(x), y) + 6 KL(p(x) || p(x_adv))`` in train mode, gradients through both
  logits, and the reference's third clean forward for the BN statistics (models with BN only).

SGD lr 0.01, momentum 0.9, weight decay 5e-4 (coupled, as torch.optim.SGD). Inputs: random uint8
images of MNIST shape (small_cnn, eps 0.3) or CIFAR shape (preact_resnet18, eps 8/255) and random
labels (the time of a step does not depend on the values). jadv rows: the attack's step loop as a
plain ``lax.fori_loop`` (``loop``: ``JADV_CANONICAL_CONVS=off``, the library before its loop-body
rewrite) and the ``lax.fori_loop`` with its body's convolutions put in XLA:CPU's canonical
layout (``canonical``: ``jadv._cpu_loops``, the library default on CPU). (A third variant, the fully
unrolled loop, was removed with the library's ``unroll=`` option; its BENCHMARKS.md rows are the
measurements that made it unnecessary.)
Timing: the variants take turns (jadv loop, jadv canonical, torch, jadv loop, ...), each turn runs
``--steps`` steps, median of ``--repeats`` turns after one warm-up turn; jadv's compile time (lower
+ compile of the step) is reported separately.

Memory: jadv = XLA's static estimate for the compiled step (``memory_analysis()``: arguments +
outputs + temporaries); on CPU, for both frameworks, the growth of the resident set during the
first (warm-up) turn, after compilation (peak RSS, reset through /proc/self/clear_refs, minus the
RSS before); on GPU ``torch.cuda.max_memory_allocated``. On GPU the script also prints model-FLOPs utilisation:
XLA's cost analysis of one forward pass F, an attack step counted as 2F (forward + input-gradient
backward) and a training forward/backward as 3F, against a bf16 (or f32) matmul peak measured here.
Runs on jax's default backend and on CUDA for PyTorch when available. Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

THREADS = common.set_threads()
CPU_DEVICES = int(common.arg_value("--cpu-devices", 1))

import jax  # noqa: E402

if CPU_DEVICES > 1:
    jax.config.update("jax_num_cpu_devices", CPU_DEVICES)   # = jadv.train.use_cpu_cores, before any JAX work
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bench_attacks  # noqa: E402  (the torch small CNN)
import jadv  # noqa: E402
from jadv.train.step import make_train_step  # noqa: E402
from tests.torch_reference_models import PreActResNet18  # noqa: E402

common.set_torch_threads(THREADS)
TORCH_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ON_GPU = jax.default_backend() == "gpu"

ARCHS = {  # name: (image shape, eps, jadv model kwargs)
    "small_cnn": ((28, 28, 1), 0.3, {}),
    "preact_resnet18": ((32, 32, 3), 8 / 255, {}),
    "user_cnn": ((28, 28, 1), 0.3, {}),     # bench_attacks.UserCNN: a plain Flax CNN with nn.max_pool
}


# ----------------------------------------------------------------------------- torch models

def torch_model(arch):
    """The PyTorch twin of jadv's ``arch`` (NCHW, channels_last memory), on TORCH_DEVICE."""
    m = {"small_cnn": lambda: bench_attacks.TorchSmallCNN(nhwc=False),
         "user_cnn": lambda: bench_attacks.TorchSmallCNN(widths=(32, 64), hidden=128, nhwc=False),
         "preact_resnet18": lambda: PreActResNet18(num_classes=10)}[arch]()
    return m.to(TORCH_DEVICE).to(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- torch steps

def _autocast(dtype):
    return torch.autocast(TORCH_DEVICE.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def _project(x_adv, x, eps):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def torch_pgd_at_step(model, opt, x, y, eps, alpha, steps, dtype):
    model.train()   # attack with batch statistics, running statistics updated (fast_adversarial)
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with _autocast(dtype):
            loss = F.cross_entropy(model(x_adv).float(), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = _project(x_adv.detach() + alpha * g.sign(), x, eps)
    opt.zero_grad(set_to_none=True)
    with _autocast(dtype):
        loss = F.cross_entropy(model(x_adv).float(), y)
    loss.backward()
    opt.step()
    return loss.detach()


def torch_trades_step(model, opt, x, y, eps, alpha, steps, dtype, beta=6.0, has_bn=False):
    model.eval()
    with torch.no_grad(), _autocast(dtype):
        p_clean = F.softmax(model(x).float(), dim=1)
    x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with _autocast(dtype):
            kl = F.kl_div(F.log_softmax(model(x_adv).float(), dim=1), p_clean, reduction="sum")
        (g,) = torch.autograd.grad(kl, x_adv)
        x_adv = _project(x_adv.detach() + alpha * g.sign(), x, eps)
    model.train()
    opt.zero_grad(set_to_none=True)
    with _autocast(dtype):
        clean = model(x).float()
        adv = model(x_adv).float()
        if has_bn:
            with torch.no_grad():
                model(x)   # the reference's second clean pass: BN statistics only
    robust = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
    loss = F.cross_entropy(clean, y) + beta * robust
    loss.backward()
    opt.step()
    return loss.detach()


def torch_sync():
    if TORCH_DEVICE.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- jadv side

def jadv_step(arch, objective_name, batch, eps, steps, variant, dtype):
    shape, _, kwargs = ARCHS[arch]
    if arch == "user_cnn":
        model = bench_attacks.UserCNN()
        variables = model.init(jax.random.key(0), jnp.zeros((1, *shape)))
    else:
        model = jadv.models.get(arch, num_classes=10, dtype=jnp.bfloat16 if dtype == "bfloat16" else jnp.float32,
                                **kwargs)
        variables = jadv.models.init_variables(model, jax.random.key(0), (1, *shape))
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.01, momentum=0.9))
    state = jadv.train.TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)
    objective = jadv.train.make_objective({"name": objective_name, "eps": eps, "steps": steps})
    step = jax.jit(make_train_step(objective), donate_argnums=0)
    rng = np.random.default_rng(0)
    batch_data = {"image": jnp.asarray(rng.integers(0, 256, (batch, *shape), dtype=np.uint8)),
                  "label": jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))}
    if jax.device_count() > 1:      # --cpu-devices: the batch split over the devices, the state replicated
        mesh = jadv.train.make_mesh()
        batch_data = jadv.train.shard_batch(jax.tree.map(np.asarray, batch_data), mesh)
        state = jadv.train.replicate(state, mesh)
    key = jax.random.key(1)
    t = time.perf_counter()
    # "loop" is the plain XLA loop; "canonical" the library's CPU default (a no-op off CPU)
    with common.canonical_mode({"loop": "off", "canonical": "on"}[variant]):
        compiled = step.lower(state, batch_data, key).compile()
    compile_s = time.perf_counter() - t
    return model, variables, state, compiled, batch_data, key, compile_s


def forward_flops(model, variables, batch, shape):
    f = jax.jit(lambda v, x: model.apply(v, x, train=False))
    cost = f.lower(variables, jnp.zeros((batch, *shape), jnp.float32)).compile().cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def matmul_peak(dtype):
    """Measured dense matmul throughput (FLOP/s) of the default jax device in ``dtype``."""
    n = 8192 if ON_GPU else 1024
    dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    a = jax.random.normal(jax.random.key(0), (n, n), dt)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        f(a).block_until_ready()
        ts.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(ts)


# ----------------------------------------------------------------------------- per-layer breakdown

def breakdown(batch, repeats):
    """Median ms of each convolution / dense layer of small_cnn, forward, input gradient and weight
    gradient, XLA vs PyTorch, each as its own jitted program / eager call, interleaved."""
    rng = np.random.default_rng(0)
    rows = []
    layers = [("conv1 1->64 @28x28", (batch, 28, 28, 1), (3, 3, 1, 64)),
              ("conv2 64->128 @14x14", (batch, 14, 14, 64), (3, 3, 64, 128))]
    for name, xs, ks in layers:
        x = jnp.asarray(rng.standard_normal(xs, dtype=np.float32))
        k = jnp.asarray(rng.standard_normal(ks, dtype=np.float32))
        conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",  # noqa: E731
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        fwd = jax.jit(conv)
        out = fwd(x, k)
        g = jnp.ones_like(out)
        dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
        dk = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
        tx = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        tk = torch.tensor(np.asarray(k)).permute(3, 2, 0, 1).contiguous()
        tg = torch.ones(tuple(out.shape[i] for i in (0, 3, 1, 2))).contiguous(memory_format=torch.channels_last)
        tfwd = lambda: F.conv2d(tx, tk, padding=1)  # noqa: E731
        tdx = lambda: torch.nn.grad.conv2d_input(tx.shape, tk, tg, padding=1)  # noqa: E731
        tdk = lambda: torch.nn.grad.conv2d_weight(tx, tk.shape, tg, padding=1)  # noqa: E731
        fns = {"xla fwd": lambda: fwd(x, k).block_until_ready(), "torch fwd": tfwd,
               "xla dx": lambda: dx(x, k, g).block_until_ready(), "torch dx": tdx,
               "xla dw": lambda: dk(x, k, g).block_until_ready(), "torch dw": tdk}
        times = common.interleaved(fns, repeats)
        for part in ("fwd", "dx", "dw"):
            a, b = common.med(times[f"xla {part}"]) * 1e3, common.med(times[f"torch {part}"]) * 1e3
            rows.append(f"| {name} | {part} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    # the dense layer and the pooling of the same net
    x = jnp.asarray(rng.standard_normal((batch, 6272), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((6272, 256), dtype=np.float32))
    dense = jax.jit(lambda x, w: x @ w)
    tx, tw = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(w))
    pool_in = jnp.asarray(rng.standard_normal((batch, 28, 28, 64), dtype=np.float32))
    from jadv.models.simple import max_pool_2x2
    pool_g = jax.jit(lambda z: jax.grad(lambda z: jnp.sum(max_pool_2x2(z) ** 2))(z))
    tp = torch.tensor(np.asarray(pool_in)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    def torch_pool_grad():
        z = tp.clone().requires_grad_(True)
        (F.max_pool2d(z, 2) ** 2).sum().backward()
        return z.grad

    fns = {"xla fc": lambda: dense(x, w).block_until_ready(), "torch fc": lambda: tx @ tw,
           "xla pool": lambda: pool_g(pool_in).block_until_ready(), "torch pool": torch_pool_grad}
    times = common.interleaved(fns, repeats)
    for part, label in (("fc", "fc 6272->256"), ("pool", "2x2 max-pool @28x28x64")):
        a, b = common.med(times[f"xla {part}"]) * 1e3, common.med(times[f"torch {part}"]) * 1e3
        rows.append(f"| {label} | {'fwd' if part == 'fc' else 'fwd+grad'} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    return ("| layer | pass | XLA ms | torch ms | torch/XLA time (>1: XLA faster) |\n|---|---|---|---|---|\n"
            + "\n".join(rows))


# ----------------------------------------------------------------------------- main

def bench(arch, objective, batch, steps_per_turn, repeats, attack_steps, dtype, variants):
    shape, eps, _ = ARCHS[arch]
    alpha = 2.5 * eps / attack_steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, batch).astype(np.int64)
    # torch first: its peak-memory figure is the growth of the process's peak RSS in its first step
    tmodel = torch_model(arch)
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    xt = (torch.from_numpy(images).float() / 255.0).permute(0, 3, 1, 2).to(TORCH_DEVICE)
    xt = xt.contiguous(memory_format=torch.channels_last)
    yt = torch.from_numpy(labels).to(TORCH_DEVICE)
    has_bn = arch != "small_cnn"

    def torch_turn():
        for _ in range(steps_per_turn):
            if objective == "pgd_at":
                torch_pgd_at_step(tmodel, opt, xt, yt, eps, alpha, attack_steps, dtype)
            else:
                torch_trades_step(tmodel, opt, xt, yt, eps, alpha, attack_steps, dtype, has_bn=has_bn)
        torch_sync()

    if TORCH_DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch_turn()
        torch_mem = torch.cuda.max_memory_allocated() / 2 ** 20
    else:   # the first turn: its allocations are the step's working set
        torch_mem = common.peak_rss_during(torch_turn)
    fns, info = {}, {}
    for variant in variants:
        name = {"loop": "jadv fori_loop", "canonical": "jadv fori_loop canonical"}[variant]
        common.log(f"{arch} {objective}: compiling {name} ...")
        model, variables, state, compiled, batch_data, key, compile_s = jadv_step(
            arch, objective, batch, eps, attack_steps, variant, dtype)
        box = {"state": state}

        def turn(box=box, compiled=compiled, batch_data=batch_data, key=key):
            for _ in range(steps_per_turn):
                box["state"], metrics = compiled(box["state"], batch_data, key)
            jax.block_until_ready(box["state"].params)

        rss = None if ON_GPU else common.peak_rss_during(turn)   # first turn = warm-up
        fns[name] = turn
        info[name] = {"compile": compile_s, "mem": common.jax_memory_mb(compiled), "rss": rss}
    fns["torch"] = torch_turn
    info["torch"] = {"compile": None, "mem": None, "rss": torch_mem}
    times = common.interleaved(fns, repeats, warmup=False, log=common.log)
    flops = None
    if ON_GPU:
        f = forward_flops(model, variables, batch, shape)
        per_step = {"pgd_at": 2 * attack_steps + 3, "trades": 1 + 2 * attack_steps + 6 + (1 if has_bn else 0)}
        flops = f * per_step[objective]
    return times, info, flops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="small_cnn", help="comma list of: " + ", ".join(ARCHS))
    ap.add_argument("--objectives", default="pgd_at,trades")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1, help="train steps per timed turn")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--attack-steps", type=int, default=10)
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--variants", default="loop,canonical",
                    help="jadv attack loops to time: loop (plain lax.fori_loop, rewrite off), canonical "
                         "(fori_loop with the loop-body convolution rewrite: the CPU default)")
    ap.add_argument("--breakdown", action="store_true", help="also time small_cnn's layers one by one")
    ap.add_argument("--threads", type=int, default=1, help="CPU compute threads for both frameworks")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="jadv: CPU devices to shard the batch over (one per core; jadv.train.use_cpu_cores)")
    ap.add_argument("--append", default=None, help="append the report to this markdown file")
    args = ap.parse_args()
    load0 = common.load1()
    variants = args.variants.split(",")
    for v in variants:
        if v not in ("loop", "canonical"):
            raise ValueError(f"unknown variant {v!r}; allowed: loop, canonical")
    peak = matmul_peak(args.dtype) if ON_GPU else None
    rows = []
    for arch in args.arch.split(","):
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHS)}")
        for objective in args.objectives.split(","):
            times, info, flops = bench(arch, objective, args.batch, args.steps, args.repeats,
                                       args.attack_steps, args.dtype, variants)
            tt = common.med(times["torch"]) / args.steps
            for name, ts in times.items():
                s = common.med(ts) / args.steps
                comp = "-" if info[name]["compile"] is None else f"{info[name]['compile']:.1f}"
                mem = "-" if info[name]["mem"] is None else f"{info[name]['mem']:.0f}"
                rss = "-" if info[name]["rss"] is None else f"{info[name]['rss']:.0f}"
                mfu = ""
                if peak:
                    mfu = f" | {100 * flops / s / peak:.1f}%"
                ratio = "-" if name == "torch" else f"**{tt / s:.2f}x**"
                rows.append(f"| {arch} | {objective} PGD-{args.attack_steps} | {args.batch} | {args.dtype} | "
                            f"{name} | {comp} | {s:.3f} ({common.spread([t / args.steps for t in ts])}) | "
                            f"{args.batch / s:.1f} | {mem} | {rss} | {ratio}{mfu} |")
    head = ("| model | step | batch | dtype | variant | compile (s) | s/step, median (min-max) | images/s | "
            "XLA memory (MiB) | " + ("torch peak GPU memory (MiB)" if ON_GPU else "RSS growth, first step (MiB)")
            + " | jadv/torch (>1: jadv faster)" + (" | MFU |" if peak else " |"))
    sep = "|---" * (12 if peak else 11) + "|"
    extra = ""
    if peak:
        extra = f"measured {args.dtype} matmul peak {peak / 1e12:.1f} TFLOP/s"
    report = common.header(THREADS, load0, extra) + "\n\n" + "\n".join([head, sep, *rows])
    if args.breakdown:
        report += "\n\nPer-layer times of small_cnn (batch %d, each op its own program, interleaved):\n\n" % args.batch
        report += breakdown(args.batch, args.repeats)
    print(report)
    if args.append:
        common.append_report(args.append, report)


if __name__ == "__main__":
    main()
