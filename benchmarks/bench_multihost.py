"""Step time of one training run on 1 process x 4 devices vs 2 processes x 2 devices (jax.distributed).

    python benchmarks/bench_multihost.py --data_dir ../shared/data          # MNIST small CNN, 300 steps
    python benchmarks/bench_multihost.py --config configs/digits_standard.py:smoke --steps 200

Both runs are ``experiments/train.py`` as a user starts them (README, "Several hosts"): the same
config and global batch, one process with ``--xla_force_host_platform_device_count=4`` or two
processes on 127.0.0.1 with ``--local_devices 2`` (gloo collectives). Reported: median steps/s of
the ``train`` records of ``metrics.jsonl`` after the first (compilation) interval, total wall time,
and the largest parameter difference between the two runs (over hundreds of steps float
reassociation alone grows it: one process on 4 vs on 2 devices differs as much; the equality
check is tests/test_multihost.py, 30 steps). On one 2-core machine two processes cannot be faster
than one: the ratio is the cost of the cross-process all-reduce and of feeding two processes.
Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "experiments", "train.py")


def _env(devices=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _overrides(args):
    out = [f"--config.num_steps={args.steps}", f"--config.log_every_steps={args.log_every}",
           f"--config.batch_size={args.batch_size}"]
    if args.data_dir:
        out.append(f"--config.data_dir={os.path.abspath(args.data_dir)}")
    return out


def _rate(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rates = [r["steps_per_sec"] for r in map(json.loads, f) if r.get("kind") == "train"][1:]
    rates.sort()
    return rates[len(rates) // 2] if rates else float("nan")


def _params(workdir):
    import jax
    import numpy as np
    from jadv import train
    _, variables, _ = train.load_trained(workdir)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(variables)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=os.path.join(REPO, "configs", "mnist_standard.py") + ":medium")
    p.add_argument("--data_dir", default=None)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--log_every", type=int, default=25)
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="bench_multihost_")
    base = [sys.executable, TRAIN, f"--config={args.config}", *_overrides(args)]

    one = os.path.join(root, "one_x4")
    t = time.time()
    subprocess.run([*base, f"--workdir={one}"], env=_env(4), check=True, stdout=subprocess.DEVNULL)
    wall_one = time.time() - t

    two = os.path.join(root, "two_x2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.time()
    procs = [subprocess.Popen([*base, f"--workdir={two}", "--num_processes=2", f"--process_id={i}",
                               f"--coordinator=127.0.0.1:{port}", "--local_devices=2"],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(2)]
    codes = [q.wait() for q in procs]
    wall_two = time.time() - t
    if any(codes):
        sys.exit(f"2-process run failed (exit codes {codes}); rerun by hand to see its output")

    diff = max(float(abs(a - b).max()) for a, b in zip(_params(one), _params(two)))
    out = {"config": args.config, "steps": args.steps, "batch_size": args.batch_size,
           "one_process_4_devices": {"steps_per_s": _rate(one), "wall_s": wall_one},
           "two_processes_2_devices": {"steps_per_s": _rate(two), "wall_s": wall_two},
           "max_param_diff": diff, "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    out["ratio_2x2_over_1x4"] = out["two_processes_2_devices"]["steps_per_s"] / out["one_process_4_devices"]["steps_per_s"]
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
