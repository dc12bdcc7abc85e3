"""Sweeps of small models: N models trained as one vmapped jadv program vs N sequential jadv runs vs N
sequential PyTorch runs, interleaved in one process.

    python benchmarks/bench_sweeps.py                          # both parts, defaults (~3 min on 2 cores)
    python benchmarks/bench_sweeps.py --parts logistic --lbfgs-iters 50 --repeats 3
    python benchmarks/bench_sweeps.py --parts seeds --seed-models small_cnn --seed-steps 2 --repeats 3

(a) ``logistic``: 16 adversarially trained logistic regressions (L2 threat, eps grid
0..1.5), binary MNIST 5 vs 7 (all 11,686 training images of the two digits, from ``../shared/data``
or ``$JADV_DATA_DIR``; the embedded 8x8 digits 5 vs 7 when MNIST is not there). The adversarial loss of
a linear model is exact in closed form (``jadv.analysis.adv_logistic_loss``:
``mean softplus(-y (w.x + b) + eps ||w||_2)``, Yamada et al. 2021), + ``1e-4/2 ||w||^2``; full-batch
gradient descent, lr 0.5, ``--steps`` steps from w = 0.01, the same arithmetic in both frameworks. jadv
runs the steps in ``lax.scan``; "vmapped" is one program for the whole eps grid
(``jax.vmap`` over eps), "sequential" calls the one-eps program 16 times; PyTorch is a Python loop
of autograd steps per eps. With ``--lbfgs-iters N`` two more rows (jadv only) time the library's
L-BFGS fit ``fit_adv_logistic`` (optax L-BFGS with zoom line search, N iterations) vmapped over the
eps grid (what ``adv_logistic_sweep`` does) against 16 sequential calls of the one-eps program.

(b) ``seeds``: 8 seeds of a standard (clean) MNIST classifier, ``--seed-models`` from ``mlp``
(784-256-256-10), ``mlp_small`` (784-32-10) and ``small_cnn`` (conv64-conv128-fc256), SGD lr 0.05
momentum 0.9, batch 128, ``--seed-steps`` steps, each seed with its own initialisation and data
order. jadv "vmapped": one jitted ``jax.vmap(train_step)`` advances all 8 states per call;
"sequential": the jitted single-model ``train_step`` per seed; PyTorch: the same loop per seed.
Every variant takes one dispatch per step.

Each variant's compile time (``lower().compile()``) is reported separately from the steady-state
time (median of ``--repeats`` interleaved turns after a warm-up turn), with XLA's memory estimate
of the compiled program. Not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

THREADS = common.set_threads()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from jax import lax  # noqa: E402

import jadv  # noqa: E402
from jadv.analysis.logistic import adv_logistic_loss, fit_adv_logistic  # noqa: E402
from jadv.train.step import make_train_step  # noqa: E402

common.set_torch_threads(THREADS)
TORCH_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_sync():
    if TORCH_DEVICE.type == "cuda":
        torch.cuda.synchronize()


def load_mnist(split="train"):
    """(images uint8 [N, H, W, 1], labels, name): MNIST if available, else the embedded digits."""
    try:
        ds = jadv.data.load("mnist", split)
        return ds.images, ds.labels, "MNIST"
    except (FileNotFoundError, ValueError, OSError) as err:
        common.log(f"MNIST not found ({err.__class__.__name__}); using the embedded 8x8 digits")
        ds = jadv.data.load("digits", split)
        return ds.images, ds.labels, "digits (8x8)"


def compiled_and_time(jitted, *args):
    t = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t


# ----------------------------------------------------------------------------- (a) logistic sweep

def part_logistic(steps, n_eps, repeats, lbfgs_iters):
    images, labels, source = load_mnist()
    keep = (labels == 5) | (labels == 7)
    X_np = images[keep].reshape(int(keep.sum()), -1).astype(np.float32) / 255.0
    y_np = np.where(labels[keep] == 5, 1.0, -1.0).astype(np.float32)
    n, d = X_np.shape
    eps_np = np.linspace(0.0, 1.5, n_eps).astype(np.float32)
    lr, l2 = 0.5, 1e-4
    w0 = 1e-2   # not 0, where ||w|| has no gradient
    X, y, eps_grid = jnp.asarray(X_np), jnp.asarray(y_np), jnp.asarray(eps_np)

    def train_one(eps, X, y):
        def loss(p):
            w, b = p
            return adv_logistic_loss(w, X, y, eps=eps, norm="l2", b=b) + 0.5 * l2 * jnp.sum(w * w)

        def step(p, _):
            g = jax.grad(loss)(p)
            return jax.tree.map(lambda a, b: a - lr * b, p, g), None

        p, _ = lax.scan(step, (jnp.full((d,), w0, X.dtype), jnp.zeros((), X.dtype)), None, length=steps)
        return p

    vm, vm_c = compiled_and_time(jax.jit(jax.vmap(train_one, in_axes=(0, None, None))), eps_grid, X, y)
    one, one_c = compiled_and_time(jax.jit(train_one), eps_grid[0], X, y)

    Xt, yt = torch.from_numpy(X_np).to(TORCH_DEVICE), torch.from_numpy(y_np).to(TORCH_DEVICE)

    def torch_one(eps):
        w = torch.full((d,), w0, device=TORCH_DEVICE, requires_grad=True)
        b = torch.zeros((), device=TORCH_DEVICE, requires_grad=True)
        for _ in range(steps):
            m = -yt * (Xt @ w + b) + eps * torch.linalg.vector_norm(w)
            loss = F.softplus(m).mean() + 0.5 * l2 * (w * w).sum()
            gw, gb = torch.autograd.grad(loss, (w, b))
            with torch.no_grad():
                w -= lr * gw
                b -= lr * gb
        return w.detach(), b.detach()

    out = {}

    def run_vm():
        out["vm"] = jax.block_until_ready(vm(eps_grid, X, y))

    def run_seq():
        out["seq"] = [jax.block_until_ready(one(e, X, y)) for e in eps_grid]

    def run_torch():
        out["torch"] = [torch_one(float(e)) for e in eps_np]
        torch_sync()

    fns = {"jadv vmapped (1 program)": run_vm, "jadv sequential": run_seq, "torch sequential": run_torch}
    info = {"jadv vmapped (1 program)": (vm_c, common.jax_memory_mb(vm)),
            "jadv sequential": (one_c, common.jax_memory_mb(one)), "torch sequential": (None, None)}
    if lbfgs_iters:
        fit, fit_c = compiled_and_time(
            jax.jit(lambda X, y, e: fit_adv_logistic(X, y, eps=e, norm="l2", l2_reg=l2, iters=lbfgs_iters)),
            X, y, eps_grid[0])
        fvm, fvm_c = compiled_and_time(
            jax.jit(jax.vmap(lambda X, y, e: fit_adv_logistic(X, y, eps=e, norm="l2", l2_reg=l2,
                                                              iters=lbfgs_iters), in_axes=(None, None, 0))),
            X, y, eps_grid)
        fns["jadv fit_adv_logistic vmapped"] = lambda: jax.block_until_ready(fvm(X, y, eps_grid))
        fns["jadv fit_adv_logistic x16 sequential"] = lambda: [jax.block_until_ready(fit(X, y, e))
                                                                for e in eps_grid]
        info["jadv fit_adv_logistic vmapped"] = (fvm_c, common.jax_memory_mb(fvm))
        info["jadv fit_adv_logistic x16 sequential"] = (fit_c, common.jax_memory_mb(fit))
    times = common.interleaved(fns, repeats, log=common.log)
    w_vm = np.asarray(out["vm"][0])
    diff_seq = max(float(np.abs(w_vm[i] - np.asarray(out["seq"][i][0])).max()) for i in range(n_eps))
    diff_t = max(float(np.abs(w_vm[i] - out["torch"][i][0].cpu().numpy()).max()) for i in range(n_eps))
    w_scale = float(np.abs(w_vm).max())
    rows = _rows(times, info, "torch sequential", f"{n_eps} adv. logistic regressions, GD {steps} steps",
                 lbfgs_label=f"{n_eps} adv. logistic regressions, L-BFGS {lbfgs_iters} its")
    note = (f"data: {source} 5 vs 7, n = {n}, d = {d}; L2 eps = linspace(0, 1.5, {n_eps}); "
            f"max |w_vmapped - w_sequential| = {diff_seq:.1e}, max |w_vmapped - w_torch| = {diff_t:.1e} "
            f"(max |w| = {w_scale:.2g})")
    return rows, note


# ----------------------------------------------------------------------------- (b) seeds

SEED_MODELS = {"mlp": ("mlp", {"hidden": (256, 256)}), "mlp_small": ("mlp", {"hidden": (32,)}),
               "small_cnn": ("small_cnn", {})}


def torch_model(name, hw):
    if name.startswith("mlp"):
        dims = (hw * hw, *SEED_MODELS[name][1]["hidden"])
        layers = [torch.nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], 10))
    side = hw // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 128, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(side * side * 128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def part_seeds(model_name, n_seeds, steps, batch, repeats):
    images, labels, source = load_mnist()
    hw = images.shape[1]
    rng = np.random.default_rng(0)
    order = np.stack([rng.permutation(len(images))[: steps * batch].reshape(steps, batch)
                      for _ in range(n_seeds)])                       # [S, steps, B]
    imgs, labs = images[order], labels[order].astype(np.int32)        # [S, steps, B, H, W, 1]
    arch, kwargs = SEED_MODELS[model_name]
    model = jadv.models.get(arch, num_classes=10, **kwargs)
    tx = optax.sgd(0.05, momentum=0.9)

    def init(k):
        return jadv.train.TrainState.create(apply_fn=model.apply,
                                            variables=jadv.models.init_variables(model, k, (1, hw, hw, 1)), tx=tx)

    keys = jax.random.split(jax.random.key(0), n_seeds)
    states0 = jax.vmap(init)(keys)
    step = make_train_step(jadv.train.make_objective({"name": "standard"}))
    key = jax.random.key(1)
    vbatches = [{"image": jnp.asarray(imgs[:, t]), "label": jnp.asarray(labs[:, t])} for t in range(steps)]
    sbatches = [[{"image": jnp.asarray(imgs[s, t]), "label": jnp.asarray(labs[s, t])} for t in range(steps)]
                for s in range(n_seeds)]
    vstep, v_c = compiled_and_time(jax.jit(jax.vmap(step, in_axes=(0, 0, None)), donate_argnums=0),
                                   states0, vbatches[0], key)
    state_one = jax.tree.map(lambda a: a[0], states0)
    sstep, s_c = compiled_and_time(jax.jit(step, donate_argnums=0), state_one, sbatches[0][0], key)
    out = {}

    def run_vm():
        st = jax.tree.map(jnp.copy, states0)
        for t in range(steps):
            st, m = vstep(st, vbatches[t], key)
        out["vm"] = np.asarray(m["loss"])

    def run_seq():
        losses = []
        for s in range(n_seeds):
            st = jax.tree.map(lambda a, s=s: jnp.copy(a[s]), states0)
            for t in range(steps):
                st, m = sstep(st, sbatches[s][t], key)
            losses.append(float(m["loss"]))
        out["seq"] = np.asarray(losses)

    tx_all = torch.from_numpy(imgs).float().div_(255.0).permute(0, 1, 2, 5, 3, 4).to(TORCH_DEVICE)  # NCHW
    ty_all = torch.from_numpy(labs).long().to(TORCH_DEVICE)

    def run_torch():
        losses = []
        for s in range(n_seeds):
            torch.manual_seed(s)
            net = torch_model(model_name, hw).to(TORCH_DEVICE)
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            for t in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net(tx_all[s, t]), ty_all[s, t])
                loss.backward()
                opt.step()
            losses.append(float(loss.detach()))
        torch_sync()
        out["torch"] = np.asarray(losses)

    fns = {"jadv vmapped (1 program)": run_vm, "jadv sequential": run_seq, "torch sequential": run_torch}
    info = {"jadv vmapped (1 program)": (v_c, common.jax_memory_mb(vstep)),
            "jadv sequential": (s_c, common.jax_memory_mb(sstep)), "torch sequential": (None, None)}
    times = common.interleaved(fns, repeats, log=common.log)
    rows = _rows(times, info, "torch sequential", f"{n_seeds} seeds {model_name}, {steps} steps batch {batch}")
    note = (f"{model_name}: data: {source} train; final training loss (mean over seeds): "
            f"jadv vmapped {out['vm'].mean():.3f}, "
            f"jadv sequential {out['seq'].mean():.3f}, torch {out['torch'].mean():.3f}; "
            f"max |loss_vmapped - loss_sequential| = {np.abs(out['vm'] - out['seq']).max():.1e}")
    return rows, note


def _rows(times, info, torch_name, label, lbfgs_label=None):
    tt = common.med(times[torch_name])
    rows = []
    for name, ts in times.items():
        m = common.med(ts)
        comp, mem = info[name]
        if name.startswith("jadv fit_adv_logistic"):
            seq = common.med(times[name.replace("vmapped", "x16 sequential")])
            ratio = f"{seq / m:.2f}x vs its x16 sequential" if "vmapped" in name else "-"
            lab = lbfgs_label
        else:
            ratio = "-" if name == torch_name else f"**{tt / m:.2f}x**"
            lab = label
        rows.append(f"| {lab} | {name} | {'-' if comp is None else f'{comp:.2f}'} | "
                    f"{'-' if mem is None else f'{mem:.0f}'} | {m:.3f} ({common.spread(ts)}) | {ratio} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="logistic,seeds")
    ap.add_argument("--steps", type=int, default=200, help="GD steps of each logistic regression")
    ap.add_argument("--n-eps", type=int, default=16)
    ap.add_argument("--lbfgs-iters", type=int, default=0,
                    help="> 0: also time fit_adv_logistic (L-BFGS, this many iterations) vmapped vs sequential")
    ap.add_argument("--seed-models", default="mlp,mlp_small", help="comma list of " + ", ".join(SEED_MODELS))
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--seed-steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="compute threads for both frameworks")
    ap.add_argument("--append", default=None, help="append the report to this markdown file")
    args = ap.parse_args()
    load0 = common.load1()
    rows, notes = [], []
    for part in args.parts.split(","):
        if part == "logistic":
            r, n = part_logistic(args.steps, args.n_eps, args.repeats, args.lbfgs_iters)
        elif part == "seeds":
            r, n = [], []
            for name in args.seed_models.split(","):
                if name not in SEED_MODELS:
                    raise ValueError(f"unknown seed model {name!r}; allowed: {', '.join(SEED_MODELS)}")
                rr, nn_ = part_seeds(name, args.seeds, args.seed_steps, args.batch, args.repeats)
                r, n = r + rr, n + [nn_]
            n = "\n- ".join(n)
        else:
            raise ValueError(f"unknown part {part!r}; allowed: logistic, seeds")
        rows += r
        notes.append(n)
    table = ["| sweep | variant | compile (s) | XLA memory (MiB) | seconds for the whole sweep, median (min-max) "
             "| speed-up vs torch sequential |", "|---|---|---|---|---|---|", *rows]
    report = (common.header(THREADS, load0) + "\n\n" + "\n".join(table) + "\n\n"
              + "\n".join(f"- {n}" for n in notes))
    print(report)
    if args.append:
        common.append_report(args.append, report)


if __name__ == "__main__":
    main()
