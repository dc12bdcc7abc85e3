"""Accelerator throughput of jadv vs PyTorch at CIFAR-10 shapes, with model-FLOPs utilisation.

    python benchmarks/bench_gpu.py                        # PreActResNet-18, batch 512, f32 + bf16
    python benchmarks/bench_gpu.py --archs preact_resnet18,wrn28_10 --batch 256 --json out.json
    python benchmarks/bench_gpu.py --torch-compile       # PyTorch side through torch.compile

Work measured, on the same random weights, inputs and labels in both frameworks:
- attacks: PGD-10 and PGD-50 (Linf 8/255, step 2/255, uniform start) and APGD-CE-100 (Linf 8/255),
  images/s (jadv: one jitted program per attack; PyTorch: the plain loop of
  ``benchmarks/bench_attacks.py``, model in eval mode, parameters frozen);
- training: one PGD-AT step (PGD-10 in eval-mode BN, then cross-entropy on the adversarial batch
  in train-mode BN, SGD momentum 0.9, weight decay 5e-4) and one TRADES step (beta 6, KL-PGD-10 from
  x + 0.001 N(0, I)), seconds per step and images/s (jadv: ``jadv.train.make_train_step`` with
  ``make_objective``, jitted with the state donated; PyTorch: the usual hand-written step).

Precision: ``float32`` runs both frameworks in their default float32 mode (XLA's default precision
and PyTorch's default cuDNN settings may use TF32 matrix units: the measured float32 peak below is
taken with the same default precision); ``bfloat16`` computes in bf16 with float32 parameters
(jadv: the model's ``dtype=bfloat16``; PyTorch: ``torch.autocast``).

Model FLOPs: 2 x the multiply-adds of every convolution and matrix product of one forward pass per
image, counted on the jaxpr (PreActResNet-18 at 32x32: 1.11 GFLOP). An attack step counts as
2 forwards (forward + input-gradient backward; no weight gradients), a train step's final
forward/backward as 3 forwards, TRADES' clean target logits as 1 forward, so PGD-AT-10 = 23 and
TRADES-10 = 2*10 + 1 + 2*3 = 27 forwards per image. MFU = model FLOP/s over the peak measured here
with an 8192^3 matrix product in the same dtype. Timings: median of ``--repeats`` runs after a
warm-up run (whose time, compile included, is reported separately for jadv).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jadv  # noqa: E402
from bench_attacks import torch_apgd, torch_pgd  # noqa: E402
from jadv.models.flops import forward_flops  # noqa: E402
from jadv.train import TrainState, make_objective, make_train_step  # noqa: E402
from tests.torch_reference_models import PreActResNet18, WideResNet  # noqa: E402

EPS, ALPHA = 8 / 255, 2 / 255
# jadv model name -> the same architecture in PyTorch (tests/torch_reference_models.py)
TORCH_MODELS = {"preact_resnet18": lambda k: PreActResNet18(num_classes=k),
                "wrn28_10": lambda k: WideResNet(depth=28, width=10, num_classes=k),
                "wrn34_10": lambda k: WideResNet(depth=34, width=10, num_classes=k)}


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(dtype, n: int = 8192, repeats: int = 10) -> float:
    """Measured TFLOP/s of an n^3 matrix product in ``dtype`` at JAX's default precision."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    t = median_time(lambda: f(a, b).block_until_ready(), repeats)
    return 2 * n ** 3 / t / 1e12


class _Autocast(torch.nn.Module):
    """Run a module under bf16 autocast and return float32 logits."""

    def __init__(self, module, enabled: bool):
        super().__init__()
        self.module, self.enabled = module, enabled

    def forward(self, x):
        with torch.autocast("cuda" if x.is_cuda else "cpu", dtype=torch.bfloat16, enabled=self.enabled):
            return self.module(x).float()


def torch_pgd_at_step(model, opt, x, y, steps):
    model.eval()
    x_adv = torch_pgd(model, x, y, EPS, ALPHA, steps)
    model.train()
    loss = F.cross_entropy(model(x_adv), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def torch_trades_step(model, opt, x, y, steps, beta=6.0):
    model.eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = x + 0.001 * torch.randn_like(x)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, reduction="sum")
        (g,) = torch.autograd.grad(kl, x_adv)
        with torch.no_grad():
            x_adv = torch.min(torch.max(x_adv + ALPHA * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y) + beta * F.kl_div(
        F.log_softmax(model(x_adv.detach()), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def bench_arch(arch: str, batch: int, dtype_name: str, repeats: int, apgd_repeats: int, peak: float,
               channels_last: bool, parts: tuple[str, ...], torch_compile: bool = False) -> list[dict]:
    dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
    shape = (batch, 32, 32, 3)
    model = jadv.models.get(arch, num_classes=10, dtype=dtype)
    model32 = jadv.models.get(arch, num_classes=10)
    variables = jadv.models.init_variables(model, jax.random.key(0), (1, 32, 32, 3))
    flops = forward_flops(model32, variables, (8, 32, 32, 3))
    rng = np.random.default_rng(0)
    x_np = rng.uniform(0, 1, shape).astype(np.float32)
    y_np = rng.integers(0, 10, batch).astype(np.int32)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    tnet = TORCH_MODELS[arch](10).to(dev).to(memory_format=fmt)
    tmodel = _Autocast(tnet, dtype_name == "bfloat16")
    if torch_compile:   # the module is compiled; attack loops and optimiser steps stay eager Python
        tmodel = torch.compile(tmodel)
    xt = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous(memory_format=fmt).to(dev)
    yt = torch.from_numpy(y_np).long().to(dev)
    rows = []

    def record(work, forwards, jfirst, jt, tt_first):
        tfirst, tt = tt_first
        rows.append(dict(arch=arch, dtype=dtype_name, batch=batch, work=work, jadv_compile_s=jfirst - jt,
                         torch_mode="compile" if torch_compile else "eager", torch_first_s=tfirst,
                         jadv_s=jt, torch_s=tt, jadv_img_s=batch / jt, torch_img_s=batch / tt,
                         speedup=tt / jt, jadv_mfu=forwards * flops * batch / jt / (peak * 1e12),
                         torch_mfu=forwards * flops * batch / tt / (peak * 1e12), fwd_gflop=flops / 1e9))
        r = rows[-1]
        print(f"  {arch} {dtype_name} {work}: jadv {r['jadv_img_s']:.0f} img/s (MFU {r['jadv_mfu']:.1%}), "
              f"torch {r['torch_img_s']:.0f} img/s (MFU {r['torch_mfu']:.1%}), {r['speedup']:.2f}x", flush=True)

    def time_jax(fn, *args, reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        first = time.perf_counter() - t0
        return first, median_time(lambda: jax.block_until_ready(fn(*args)), reps)

    def time_torch(fn, reps):
        """(first call s, torch.compile included when on; median s of ``reps`` later calls)"""
        def run():
            fn()
            _sync()
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0, median_time(run, reps)

    if "attacks" in parts:
        for p in tnet.parameters():
            p.requires_grad_(False)
        tnet.eval()
        attacks = [("PGD-10", 10, repeats), ("PGD-50", 50, repeats), ("APGD-100", 100, apgd_repeats)]
        for name, steps, reps in attacks:
            if name.startswith("PGD"):
                def jfn(v, x, y, key, steps=steps):
                    return jadv.attacks.pgd(lambda z: model.apply(v, z, train=False), x, y, key=key, eps=EPS,
                                            step_size=ALPHA, steps=steps)

                def tfn(steps=steps):
                    return torch_pgd(tmodel, xt, yt, EPS, ALPHA, steps)
            else:
                def jfn(v, x, y, key):
                    return jadv.attacks.apgd(lambda z: model.apply(v, z, train=False), x, y, key=key, eps=EPS,
                                             steps=100)

                def tfn():
                    return torch_apgd(tmodel, xt, yt, EPS, 100)
            first, jt = time_jax(jax.jit(jfn), variables, x, y, jax.random.key(1), reps=reps)
            record(name, 2 * steps, first, jt, time_torch(tfn, reps))
        for p in tnet.parameters():
            p.requires_grad_(True)

    if "train" in parts:
        tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.01, momentum=0.9))
        batch_dict = {"image": x, "label": y}
        for name, obj_cfg, forwards, tstep in [
            ("PGD-AT step (PGD-10)", dict(name="pgd_at", eps=EPS, step_size=ALPHA, steps=10, norm="linf",
                                          init="uniform", attack_bn_mode="eval"), 23, torch_pgd_at_step),
            ("TRADES step (KL-PGD-10)", dict(name="trades", eps=EPS, step_size=ALPHA, steps=10, beta=6.0,
                                             norm="linf", attack_bn_mode="eval"), 27, torch_trades_step),
        ]:
            step = jax.jit(make_train_step(make_objective(ml_collections.ConfigDict(obj_cfg))), donate_argnums=0)
            holder = {"state": TrainState.create(apply_fn=model.apply, variables=jax.tree_util.tree_map(
                jnp.array, variables), tx=tx)}

            def jrun():
                holder["state"], metrics = step(holder["state"], batch_dict, jax.random.key(2))
                return metrics["loss"]
            first, jt = time_jax(jrun, reps=repeats)
            opt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            record(name, forwards, first, jt, time_torch(lambda: tstep(tmodel, opt, xt, yt, 10), repeats))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="preact_resnet18")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--parts", default="attacks,train")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--apgd-repeats", type=int, default=3)
    ap.add_argument("--no-channels-last", action="store_true", help="PyTorch in NCHW instead of channels_last")
    ap.add_argument("--peak-size", type=int, default=8192, help="n of the n^3 matrix product for the peak")
    ap.add_argument("--torch-compile", action="store_true",
                    help="wrap the PyTorch model in torch.compile (default: eager)")
    ap.add_argument("--json", default=None, help="also write the rows and peaks here")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    dtypes = tuple(args.dtypes.split(","))
    peaks = {d: matmul_peak(jnp.bfloat16 if d == "bfloat16" else jnp.float32, args.peak_size) for d in dtypes}
    print("measured matmul peak (TFLOP/s):", {d: round(p, 1) for d, p in peaks.items()}, flush=True)
    rows = []
    for arch in args.archs.split(","):
        for d in dtypes:
            rows += bench_arch(arch, args.batch, d, args.repeats, args.apgd_repeats, peaks[d],
                               not args.no_channels_last, tuple(args.parts.split(",")), args.torch_compile)
    jdev = jax.devices()[0]
    tdev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    header = (f"device: jax {jax.__version__} {jdev.platform} {jdev.device_kind}; torch {torch.__version__} on "
              f"{tdev} ({'torch.compile' if args.torch_compile else 'eager'}); torch channels_last="
              f"{not args.no_channels_last}, cudnn.benchmark; "
              f"measured peak TFLOP/s {', '.join(f'{d} {p:.0f}' for d, p in peaks.items())}")
    print("\n" + header)
    print("| model | dtype | batch | work | jadv img/s | torch img/s | jadv/torch | jadv MFU | torch MFU | "
          "jadv compile (s) | torch first call (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['dtype']} | {r['batch']} | {r['work']} | {r['jadv_img_s']:.0f} | "
              f"{r['torch_img_s']:.0f} | {r['speedup']:.2f}x | {r['jadv_mfu']:.1%} | {r['torch_mfu']:.1%} | "
              f"{r['jadv_compile_s']:.1f} | {r['torch_first_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "peaks_tflops": peaks, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
