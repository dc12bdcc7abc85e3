"""Data-parallel scaling of one jadv train step over 1, 2, 4, 8 (fake CPU) devices.

    python benchmarks/bench_scale.py                     # PGD-AT small CNN, global batch 128, CPU
    python benchmarks/bench_scale.py --devices 1,2,4,8 --steps 2 --repeats 5 --attack-steps 10

The step is ``jadv.train.make_train_step`` on the ``pgd_at`` objective (PGD-``--attack-steps``, Linf
eps 0.3, MNIST-shaped uint8 batches, SGD momentum 0.9) for jadv's ``small_cnn``, jitted with the
batch sharded over a 1-D ``"data"`` mesh (``jadv.train.sharding``: ``NamedSharding``, batch on
``P("data")``, state replicated), at a fixed global batch. Each device count runs in its own
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (on a GPU/TPU host: the first N
real devices, no flag). The processes stay alive and take turns (N=1, 2, 4, 8, N=1, ...): each turn
runs ``--steps`` steps, median of ``--repeats`` turns after one warm-up turn. Reported per N: compile
time, XLA's memory estimate of the compiled step, peak RSS of the process, seconds per step,
speed-up and efficiency ``t_1 / (N t_N)`` against 1 device, and the largest absolute difference of
the parameters from the 1-device run after the same steps (correctness).

On a 2-core machine fake CPU devices cannot give more than 2 cores' worth of compute: the numbers
measure the overhead of partitioning the step (collectives, per-device dispatch), not a speed-up.
Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


# ----------------------------------------------------------------------------- worker (one process per N)

def worker(args):
    import jax
    import numpy as np
    import optax

    import jadv
    from jadv.train import sharding
    from jadv.train.step import make_train_step

    n = args.worker
    if jax.device_count() < n:
        raise SystemExit(f"need {n} devices, have {jax.device_count()}")
    mesh = sharding.make_mesh(n)
    model = jadv.models.get("small_cnn", num_classes=10)
    variables = jadv.models.init_variables(model, jax.random.key(0), (1, 28, 28, 1))
    tx = optax.sgd(0.01, momentum=0.9)
    state = jadv.train.TrainState.create(apply_fn=model.apply, variables=variables, tx=tx)
    state = sharding.replicate(state, mesh)
    objective = jadv.train.make_objective({"name": "pgd_at", "eps": 0.3, "steps": args.attack_steps})
    step = jax.jit(make_train_step(objective), donate_argnums=0)
    rng = np.random.default_rng(0)
    batches = [sharding.shard_batch({"image": rng.integers(0, 256, (args.batch, 28, 28, 1), dtype=np.uint8),
                                     "label": rng.integers(0, 10, args.batch).astype(np.int32)}, mesh)
               for _ in range(4)]
    key = jax.random.key(1)
    t = time.perf_counter()
    compiled = step.lower(state, batches[0], key).compile()
    compile_s = time.perf_counter() - t
    box = {"state": state, "i": 0}

    def turn():
        for _ in range(args.steps):
            box["state"], _ = compiled(box["state"], batches[box["i"] % len(batches)], key)
            box["i"] += 1
        jax.block_until_ready(box["state"].params)

    turn()   # warm-up
    print(json.dumps({"ready": True, "compile_s": compile_s, "mem_mb": common.jax_memory_mb(compiled),
                      "devices": [str(d) for d in mesh.devices.flat]}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            t = time.perf_counter()
            turn()
            print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
        elif cmd.startswith("save "):
            flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in
                    jax.tree_util.tree_flatten_with_path(jax.device_get(box["state"].params))[0]}
            np.savez(cmd[5:], **flat)
            print(json.dumps({"saved": True, "steps": box["i"], "maxrss_mb": common.maxrss_mb()}), flush=True)
        elif cmd == "quit":
            break


# ----------------------------------------------------------------------------- parent

def start(n, args):
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if args.fake:
        flags += f" --xla_force_host_platform_device_count={n}"
        env["JAX_PLATFORMS"] = "cpu"
        env["JAX_NUM_CPU_DEVICES"] = str(n)
    if args.threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false"
    env["XLA_FLAGS"] = flags.strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(n), "--batch", str(args.batch),
           "--steps", str(args.steps), "--attack-steps", str(args.attack_steps)]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def ask(proc, cmd=None):
    if cmd is not None:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"worker exited (code {proc.wait()})")
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--batch", type=int, default=128, help="global batch (divisible by every device count)")
    ap.add_argument("--steps", type=int, default=1, help="train steps per timed turn")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--attack-steps", type=int, default=10)
    ap.add_argument("--no-fake", dest="fake", action="store_false",
                    help="use the real devices of the default backend instead of fake CPU devices")
    ap.add_argument("--threads", type=int, default=1, help="XLA:CPU compute threads per process (1: one)")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--append", default=None, help="append the report to this markdown file")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    load0 = common.load1()
    ns = [int(v) for v in args.devices.split(",")]
    if ns[0] != 1:
        ns = [1] + ns
    procs, ready = {}, {}
    for n in ns:   # one at a time, so compile times are not inflated by each other
        common.log(f"starting the {n}-device process ...")
        procs[n] = start(n, args)
        ready[n] = ask(procs[n])
        common.log(f"  N={n}: compiled in {ready[n]['compile_s']:.1f}s")
    times = {n: [] for n in ns}
    for r in range(args.repeats):
        for n in ns:
            times[n].append(ask(procs[n], "run")["seconds"] / args.steps)
        common.log(f"  repeat {r + 1}/{args.repeats}: " + ", ".join(f"N={n} {times[n][-1]:.2f}s" for n in ns))
    tmp = tempfile.mkdtemp()
    saved, params = {}, {}
    import numpy as np

    for n in ns:
        path = os.path.join(tmp, f"params_{n}.npz")
        saved[n] = ask(procs[n], f"save {path}")
        with np.load(path) as f:
            params[n] = {k: f[k] for k in f.files}
        ask_quit(procs[n])
    t1 = common.med(times[1])
    rows = []
    for n in ns:
        tn = common.med(times[n])
        diff = max(float(np.abs(params[n][k] - params[1][k]).max()) for k in params[1])
        mem = ready[n]["mem_mb"]
        rows.append(f"| {n} | {ready[n]['compile_s']:.1f} | {'n/a' if mem is None else f'{mem:.0f}'} | "
                    f"{saved[n]['maxrss_mb']:.0f} | {tn:.3f} ({common.spread(times[n])}) | {t1 / tn:.2f}x | "
                    f"{100 * t1 / (n * tn):.0f}% | {diff:.1e} |")
    steps_done = saved[1]["steps"]
    table = ["| devices | compile (s) | XLA memory per step program (MiB) | peak RSS (MiB) | s/step, median (min-max) "
             "| speed-up vs 1 | efficiency t1/(N tN) | max abs param diff vs 1 device |",
             "|---|---|---|---|---|---|---|---|", *rows]
    extra = (f"PGD-AT (PGD-{args.attack_steps}) small_cnn, global batch "
             f"{args.batch}, {'fake CPU devices' if args.fake else 'real devices'}; parameters compared after "
             f"{steps_done} steps")
    report = common.header(args.threads, load0, extra) + "\n\n" + "\n".join(table)
    print(report)
    if args.append:
        common.append_report(args.append, report)


def ask_quit(proc):
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(timeout=60)


if __name__ == "__main__":
    main()
