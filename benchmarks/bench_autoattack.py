"""AutoAttack standard: jadv vs the reference PyTorch implementation (fra31/auto-attack), side by side.

    python benchmarks/bench_autoattack.py --data_dir ../shared/data                 # mlp, cnn
    python benchmarks/bench_autoattack.py --models preact --data_dir ../shared/data
    python benchmarks/bench_autoattack.py --models mlp --before /path/to/old/jadv    # + jadv "before"

The reference is not part of jadv and is never committed: install it outside the repository from its
public source (``git clone https://github.com/fra31/auto-attack /somewhere/auto-attack``) and point
``--ref`` or the environment variable ``JADV_AUTOATTACK_REF`` at that folder (or ``pip install`` it so
that ``import autoattack`` works). Without it the jadv side still runs and the reference columns say
why they are missing.

Models (same weights in both frameworks; weights and data subsets are cached in ``--cache_dir``):

* ``mlp``: MLP 784-256-256-10 (jadv ``mlp``), standard training on MNIST (Adam, 2 epochs);
  500 test points, Linf eps 0.05.
* ``cnn``: a plain user Flax CNN, not one of jadv's models: ``nn.Conv(32, 3x3, "SAME")``-ReLU-
  ``nn.max_pool(2)``-``nn.Conv(64)``-ReLU-``nn.max_pool(2)``-``nn.Dense(200)``-ReLU-``nn.Dense(10)``,
  PGD-AT on MNIST (``--cnn-steps`` steps of PGD-5, eps ramped to 0.3); 200 test points, Linf 0.3.
* ``preact``: PreActResNet-18 at CIFAR-10 shape, random He weights with calibrated batch norm
  (``tests/torch_reference_models.py``, converted by ``jadv.models.from_torch``): CPU cannot train it,
  so the labels are the model's own predictions on uniform-noise images (clean accuracy 100%) and eps
  is small (1/255) so that points survive the first attacks; ``--preact-n`` points (default 32).

Each side runs in a **fresh process** (compilation included: jadv's time is its first call), one
after the other: the reference's ``AutoAttack(version="standard").run_standard_evaluation`` with its
per-attack times taken around each attack's ``perturb``, jadv's ``jadv.attacks.autoattack`` with the
per-attack times of its report. ``--before PATH`` adds a run of another jadv checkout (e.g.
``git archive <commit> | tar -x -C PATH``) for before/after figures; ``--compilation-cache DIR`` adds
two jadv runs with XLA's persistent compilation cache in DIR (cold, then warm). ``--threads`` sets
the compute threads of both (default 2, as in the issue). ``--projection`` times FAB's projection
alone (sort vs Newton); ``--compile-times`` splits each attack's first call on the MLP into
tracing, lowering, XLA compilation and the run (where a cold run's time goes). Prints a markdown table and optionally
writes ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {  # name: (n points, eps, batch size)
    "mlp": (500, 0.05, 500),
    "cnn": (200, 0.3, 500),
    "preact": (32, 1 / 255, 500),
}
ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# models (imported lazily: the workers import only their own framework's code)
# ---------------------------------------------------------------------------------------------

def flax_cnn():
    import flax.linen as nn

    class UserCNN(nn.Module):
        """A plain Flax CNN as a user writes it (nn.max_pool, "SAME" convolutions)."""

        @nn.compact
        def __call__(self, x, train: bool = False):
            for f in (32, 64):
                x = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x))
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(200)(x))
            return nn.Dense(10)(x)

    return UserCNN()


def torch_twin(name, weights):
    """The PyTorch model taking NCHW input, with the jadv weights (``weights``: flat name -> array)."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    t = lambda a: torch.from_numpy(a.copy())  # noqa: E731
    if name == "mlp":
        class MLP(tnn.Module):
            def __init__(self):
                super().__init__()
                self.l = tnn.ModuleList([tnn.Linear(784, 256), tnn.Linear(256, 256), tnn.Linear(256, 10)])

            def forward(self, x):                      # NCHW, C = 1: the flatten order is NHWC's
                x = x.reshape(x.shape[0], -1)
                for layer in self.l[:-1]:
                    x = F.relu(layer(x))
                return self.l[-1](x)

        m = MLP()
        for layer, dn in zip(m.l, ("dense_0", "dense_1", "head")):     # jadv "mlp" layer names
            layer.weight.data = t(weights[f"params/{dn}/kernel"].T)
            layer.bias.data = t(weights[f"params/{dn}/bias"])
        return m.eval()
    if name == "cnn":
        class CNN(tnn.Module):
            def __init__(self):
                super().__init__()
                self.c1, self.c2 = tnn.Conv2d(1, 32, 3, padding=1), tnn.Conv2d(32, 64, 3, padding=1)
                self.f1, self.f2 = tnn.Linear(7 * 7 * 64, 200), tnn.Linear(200, 10)

            def forward(self, x):
                x = F.max_pool2d(F.relu(self.c1(x)), 2)
                x = F.max_pool2d(F.relu(self.c2(x)), 2)
                x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)   # Flax flattens NHWC
                return self.f2(F.relu(self.f1(x)))

        m = CNN()
        for conv, n in ((m.c1, "Conv_0"), (m.c2, "Conv_1")):
            conv.weight.data = t(weights[f"params/{n}/kernel"].transpose(3, 2, 0, 1))
            conv.bias.data = t(weights[f"params/{n}/bias"])
        for lin, n in ((m.f1, "Dense_0"), (m.f2, "Dense_1")):
            lin.weight.data = t(weights[f"params/{n}/kernel"].T)
            lin.bias.data = t(weights[f"params/{n}/bias"])
        return m.eval()
    raise ValueError(name)


def _flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(_flatten(dict(v), f"{prefix}{k}/"))
        else:
            import numpy as np
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _unflatten(flat):
    tree = {}
    for k, v in flat.items():
        node = tree
        parts = k.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree


# ---------------------------------------------------------------------------------------------
# preparation: train (or build) the models once, cache weights + the evaluation points
# ---------------------------------------------------------------------------------------------

def prepare(name, args):
    import numpy as np

    tag = {"mlp": f"_{args.mlp_steps}", "cnn": f"_{args.cnn_steps}", "preact": f"_{args.preact_n}"}[name]
    path = os.path.join(args.cache_dir, f"{name}{tag}.npz")
    if os.path.exists(path):
        return path
    os.makedirs(args.cache_dir, exist_ok=True)
    n, eps, _ = MODELS[name]
    t0 = time.time()
    if name == "preact":
        import torch

        sys.path.insert(0, ROOT)
        from tests.torch_reference_models import PreActResNet18, randomize_
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (args.preact_n, 32, 32, 3)).astype(np.float32)
        m = PreActResNet18(num_classes=10)
        randomize_(m, calibration=torch.rand(64, 3, 32, 32))
        with torch.no_grad():
            y = m(torch.from_numpy(x).permute(0, 3, 1, 2)).argmax(1).numpy().astype(np.int32)
        flat = {f"torch/{k}": v.detach().numpy() for k, v in m.state_dict().items() if v.dtype.is_floating_point
                or v.dtype == torch.int64}
        np.savez(path, x=x, y=y, eps=eps, **flat)
        log(f"prepared {name} in {time.time() - t0:.0f} s")
        return path

    import jax
    import jax.numpy as jnp
    import optax

    sys.path.insert(0, ROOT)
    import jadv

    tr = jadv.data.load("mnist", "train", data_dir=args.data_dir)
    te = jadv.data.load("mnist", "test", data_dir=args.data_dir)
    xtr = tr.images.astype(np.float32) / 255.0
    ytr = tr.labels.astype(np.int32)
    model = jadv.models.get("mlp", num_classes=10) if name == "mlp" else flax_cnn()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    params = variables["params"]
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    steps = args.mlp_steps if name == "mlp" else args.cnn_steps

    def apply(p, x):
        return model.apply({"params": p}, x, train=False) if name == "mlp" else model.apply({"params": p}, x)

    @jax.jit
    def step(p, o, x, y, key, e):
        if name == "cnn":
            x = jadv.attacks.pgd(lambda z: apply(p, z), x, y, key=key, eps=e, step_size=e / 2.5, steps=5)

        def loss(p):
            z = apply(p, x)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, y))

        lval, g = jax.value_and_grad(loss)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, lval

    rng = np.random.default_rng(0)
    for i in range(steps):
        idx = rng.integers(0, len(xtr), 128)
        e = eps * min(1.0, (i + 1) / (0.5 * steps))       # eps ramp (cnn only)
        params, opt, lval = step(params, opt, jnp.asarray(xtr[idx]), jnp.asarray(ytr[idx]),
                                 jax.random.key(i), e)
        if i % 100 == 0:
            log(f"  {name} step {i}/{steps} loss {float(lval):.3f}")
    x = te.images[:n].astype(np.float32) / 255.0
    y = te.labels[:n].astype(np.int32)
    acc = float(np.mean(np.argmax(np.asarray(apply(params, jnp.asarray(x))), -1) == y))
    flat = _flatten({"params": jax.device_get(params)})
    np.savez(path, x=x, y=y, eps=eps, **flat)
    log(f"prepared {name}: clean accuracy {acc:.2%} on the {n} points, {time.time() - t0:.0f} s")
    return path


def _load(path):
    import numpy as np

    d = dict(np.load(path))
    x, y, eps = d.pop("x"), d.pop("y"), float(d.pop("eps"))
    return x, y, eps, d


# ---------------------------------------------------------------------------------------------
# workers (each in a fresh process)
# ---------------------------------------------------------------------------------------------

def worker_ref(name, path, ref_dir, threads):
    import torch

    torch.set_num_threads(threads)
    if ref_dir:
        sys.path.insert(0, ref_dir)
    from autoattack import AutoAttack

    x, y, eps, w = _load(path)
    if name == "preact":
        sys.path.insert(0, ROOT)
        from tests.torch_reference_models import PreActResNet18
        m = PreActResNet18(num_classes=10)
        m.load_state_dict({k[len("torch/"):]: torch.from_numpy(v) for k, v in w.items()})
        m.eval()
    else:
        m = torch_twin(name, w)
    for p in m.parameters():
        p.requires_grad_(False)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.from_numpy(y).long()
    adversary = AutoAttack(m, norm="Linf", eps=eps, version="standard", device="cpu", verbose=False)
    times = {}
    for attr, label in (("apgd", "apgd-ce"), ("apgd_targeted", "apgd-t"), ("fab", "fab-t"), ("square", "square")):
        obj = getattr(adversary, attr)
        orig = obj.perturb

        def timed(*a, _orig=orig, _label=label, **kw):
            t = time.perf_counter()
            out = _orig(*a, **kw)
            times[_label] = times.get(_label, 0.0) + time.perf_counter() - t
            return out
        obj.perturb = timed
    t0 = time.perf_counter()
    x_adv = adversary.run_standard_evaluation(xt, yt, bs=MODELS[name][2])
    total = time.perf_counter() - t0
    with torch.no_grad():
        robust = (m(x_adv).argmax(1) == yt).numpy()
        clean = (m(xt).argmax(1) == yt).numpy()
    return {"side": "reference", "total_s": total, "times": times, "robust_accuracy": float(robust.mean()),
            "clean_accuracy": float(clean.mean()), "n": int(len(y)),
            "max_linf": float((x_adv - xt).abs().amax().item())}


def worker_jadv(name, path, jadv_root, threads, cache, cpu_devices=1):
    import numpy as np

    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    sys.path.insert(0, jadv_root)
    import jax

    if cpu_devices > 1:     # = jadv.train.use_cpu_cores(cpu_devices), before any JAX work
        jax.config.update("jax_num_cpu_devices", cpu_devices)

    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import jax.numpy as jnp

    import jadv
    from jadv.attacks.autoattack import autoattack

    x, y, eps, w = _load(path)
    if name == "preact":
        import torch
        imp = jadv.models.from_torch.from_torch({k[len("torch/"):]: torch.from_numpy(v) for k, v in w.items()},
                                                "preact_resnet18")
        model, variables = imp.model, imp.variables

        def logits(v, z):
            return model.apply(v, z, train=False)
    else:
        model = jadv.models.get("mlp", num_classes=10) if name == "mlp" else flax_cnn()
        variables = jax.tree.map(jnp.asarray, _unflatten(w))

        def logits(v, z):
            return model.apply(v, z, train=False) if name == "mlp" else model.apply(v, z)
    t0 = time.perf_counter()
    x_adv, rep = autoattack(logits, x, y, key=jax.random.key(0), eps=eps, norm="linf", version="standard",
                            batch_size=MODELS[name][2], params=variables, verbose=False,
                            **({"shard": True} if cpu_devices > 1 else {}))
    total = time.perf_counter() - t0
    return {"side": "jadv", "total_s": total, "times": {e["name"]: e["time_s"] for e in rep["attacks"]},
            "n_attacked": {e["name"]: e["n_attacked"] for e in rep["attacks"]},
            "robust_after": {e["name"]: e["robust_accuracy"] for e in rep["attacks"]},
            "robust_accuracy": rep["robust_accuracy"], "clean_accuracy": rep["clean_accuracy"],
            "n": int(len(y)), "max_linf": float(np.abs(x_adv - x).max()), "jadv": os.path.dirname(jadv.__file__)}


def bench_projection(threads, repeats=10):
    """FAB's box-hyperplane projection alone, sorted solve vs the sort-free Newton solve, at the shapes
    of a FAB-T step (rows = 2 x batch: one projection from x1, one from x0). Returns table rows."""
    import numpy as np

    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    sys.path.insert(0, ROOT)
    import jax

    from jadv.attacks.fab import box_hyperplane_projection

    rows = []
    rng = np.random.default_rng(0)
    for b, d in ((512, 784), (128, 3072)):
        t = rng.uniform(0, 1, (b, d)).astype(np.float32)
        t = np.where(rng.uniform(size=(b, d)) < 0.5, np.round(t), t).astype(np.float32)   # MNIST-like 0/1
        w = rng.normal(size=(b, d)).astype(np.float32)
        bb = (np.sum(w * t, 1) + rng.normal(size=b) * 2).astype(np.float32)
        for norm in ("linf", "l2"):
            out, ms = {}, {}
            for method in ("sort", "newton"):
                f = jax.jit(lambda t, w, bb, m=method, n=norm: box_hyperplane_projection(t, w, bb, n, method=m))
                out[method] = np.asarray(f(t, w, bb))
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    f(t, w, bb).block_until_ready()
                    ts.append(time.perf_counter() - t0)
                ms[method] = 1e3 * sorted(ts)[len(ts) // 2]
            rows.append(f"| [{b}, {d}] | {norm} | {ms['sort']:.2f} | {ms['newton']:.2f} | "
                        f"{ms['sort'] / ms['newton']:.1f}x | {np.abs(out['sort'] - out['newton']).max():.1e} |")
    return rows


def bench_compile_times(threads, batch=256):
    """Where a cold AutoAttack run's compile time goes: for each standard attack, one jitted program
    on the MLP (random weights, a [batch, 28, 28, 1] batch, Linf 0.05), timed as Python tracing,
    lowering to StableHLO, XLA compilation, and one run of the compiled program. Returns table rows."""
    import numpy as np

    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    sys.path.insert(0, ROOT)
    import jax
    import jax.numpy as jnp

    import jadv
    from jadv.attacks.autoattack import standard_attacks
    from jadv.attacks.specs import make_attack

    model = jadv.models.get("mlp", num_classes=10)
    variables = jadv.models.init_variables(model, jax.random.key(0), (1, 28, 28, 1))
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (batch, 28, 28, 1)).astype(np.float32))
    y = jnp.arange(batch) % 10
    rows = []
    for spec in standard_attacks(0.05):
        name, fn = make_attack(spec)
        f = jax.jit(lambda v, xb, yb, k, fn=fn: fn(lambda z: model.apply(v, z, train=False), xb, yb, k))
        t0 = time.perf_counter()
        traced = f.trace(variables, x, y, jax.random.key(1))
        t1 = time.perf_counter()
        lowered = traced.lower()
        t2 = time.perf_counter()
        compiled = lowered.compile()
        t3 = time.perf_counter()
        jax.block_until_ready(compiled(variables, x, y, jax.random.key(1)))
        t4 = time.perf_counter()
        rows.append(f"| {name} | {t1 - t0:.2f} | {t2 - t1:.2f} | {t3 - t2:.2f} | {t4 - t3:.2f} | "
                    f"{lowered.as_text().count(chr(10))} |")
    return rows


def spawn(args, *extra):
    cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), *extra]
    log("  $ " + " ".join(cmd[1:]))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1] if (p.stderr or p.stdout) else "failed"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def find_ref(args):
    d = args.ref or os.environ.get("JADV_AUTOATTACK_REF")
    if d:
        if not os.path.exists(os.path.join(d, "autoattack", "autoattack.py")):
            return None, f"no autoattack/autoattack.py under {d}"
        return d, ""
    try:
        import importlib.util
        if importlib.util.find_spec("autoattack") is not None:
            return "", ""
    except (ImportError, ValueError):
        pass
    return None, ("reference AutoAttack not found: clone https://github.com/fra31/auto-attack outside the "
                  "repository and pass --ref DIR or set JADV_AUTOATTACK_REF (skipped)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--cache_dir", default=os.path.join(os.environ.get("JADV_CACHE_DIR", os.path.expanduser(
        "~/.cache/jadv")), "bench_autoattack"))
    ap.add_argument("--ref", default=None, help="folder of the reference auto-attack source")
    ap.add_argument("--before", default=None, help="root of another jadv checkout to time as 'before'")
    ap.add_argument("--compilation-cache", default=None, help="also run jadv twice with this cache dir")
    ap.add_argument("--no-after", action="store_true", help="skip this checkout's jadv run")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="also run jadv with the batch sharded over this many CPU devices (one per core; "
                         "jadv.train.use_cpu_cores, autoattack(shard=True))")
    ap.add_argument("--mlp-steps", type=int, default=940)
    ap.add_argument("--cnn-steps", type=int, default=800)
    ap.add_argument("--preact-n", type=int, default=MODELS["preact"][0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--projection", action="store_true", help="only time FAB's projection (sort vs newton)")
    ap.add_argument("--compile-times", action="store_true",
                    help="only split each standard attack's first call into trace / lower / compile / run (MLP)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "ref":
        print(json.dumps(worker_ref(args.model, args.path, args.ref, args.threads)))
        return
    if args.worker == "jadv":
        print(json.dumps(worker_jadv(args.model, args.path, args.root, args.threads, args.cache, args.cpu_devices)))
        return
    single = {"projection": (bench_projection, "rows x D | norm | sort (ms) | newton (ms) | speed-up | max abs difference"),
              "compile_times": (bench_compile_times, "attack | trace (s) | lower (s) | XLA compile (s) | run (s) | "
                                                     "StableHLO lines")}
    for flag, (fn, header) in single.items():
        if getattr(args, flag):
            print(f"- {os.cpu_count()} cores, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}\n")
            print(f"| {header} |\n|" + "---|" * (header.count("|") + 1))
            print("\n".join(fn(args.threads)))
            return
    if args.preact_n != MODELS["preact"][0]:
        MODELS["preact"] = (args.preact_n, *MODELS["preact"][1:])
    ref_dir, why = find_ref(args)
    load0 = os.getloadavg()[0]
    results = {}
    for name in args.models.split(","):
        path = prepare(name, args)
        runs = {}
        if ref_dir is not None:
            runs["reference"] = spawn(args, "--worker", "ref", "--model", name, "--path", path,
                                      *(["--ref", ref_dir] if ref_dir else []))
        if not args.no_after:
            runs["jadv"] = spawn(args, "--worker", "jadv", "--model", name, "--path", path)
        if args.cpu_devices > 1:
            runs[f"jadv, {args.cpu_devices} CPU devices"] = spawn(
                args, "--worker", "jadv", "--model", name, "--path", path, "--cpu-devices", str(args.cpu_devices))
        if args.before:
            runs["jadv before"] = spawn(args, "--worker", "jadv", "--model", name, "--path", path,
                                        "--root", os.path.abspath(args.before))
        if args.compilation_cache:
            cdir = os.path.join(args.compilation_cache, name)
            for label in ("jadv, cache cold", "jadv, cache warm"):
                runs[label] = spawn(args, "--worker", "jadv", "--model", name, "--path", path, "--cache", cdir)
        results[name] = runs
        for label, r in runs.items():
            log(f"{name} {label}: {json.dumps(r)}")
    print(f"\n- command: `python {' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}`")
    print(f"- {os.cpu_count()} cores, {args.threads} compute thread(s) per framework; load average (1 min) "
          f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    if ref_dir is None:
        print(f"- {why}")
    print("\n| model | run | points | clean acc | robust acc | APGD-CE (s) | APGD-T (s) | FAB-T (s) | "
          "Square (s) | total (s) | reference / this |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        ref_total = runs.get("reference", {}).get("total_s")
        for label, r in runs.items():
            if "error" in r:
                print(f"| {name} | {label} | error: {r['error']} |")
                continue
            ts = " | ".join(f"{r['times'].get(a, float('nan')):.1f}" for a in ATTACKS)
            ratio = f"{ref_total / r['total_s']:.2f}x" if ref_total else "-"
            print(f"| {name} | {label} | {r['n']} | {r['clean_accuracy']:.2%} | {r['robust_accuracy']:.2%} | "
                  f"{ts} | {r['total_s']:.1f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
