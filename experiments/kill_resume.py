"""Kill -9 a training run at random moments, resume it each time, and compare with an uninterrupted run.

    python experiments/kill_resume.py --out results/reliability --trials 3 --kills 12

(CPU-2, 2026-12-01, with other work on the machine: 36 kills in 3 trials, all three resumed runs
bitwise equal to the uninterrupted one, no record lost or doubled; ``results/reliability``.)

Each trial starts ``experiments/train.py`` on a fresh workdir and sends SIGKILL after a random delay
(drawn from ``--min_delay``..``--max_delay`` seconds after the process starts, seeded), again and again,
until a run finishes on its own or ``--kills`` kills were sent (then it runs to the end). The
uninterrupted reference run uses the same config. Per trial it records how many kills landed, whether
the final parameters (latest checkpoint) and ``results.json`` equal the reference's bitwise, and how
many ``metrics.jsonl`` records are missing or doubled against the reference. ``OUT/kill_resume.json``
holds the figures the README's Reliability section quotes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from jadv._io import atomic_write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = ["--config", os.path.join(ROOT, "configs", "digits_standard.py") + ":smoke",
                  "--config.num_epochs=60", "--config.log_every_steps=3", "--config.checkpoint.every_steps=4",
                  "--config.objective.name=pgd_at", "--config.objective.eps=0.1", "--config.objective.steps=3"]


def _train(workdir, extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "experiments", "train.py"), *DEFAULT_CONFIG,
                             *extra, f"--workdir={workdir}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _records(workdir):
    """metrics.jsonl's train and eval records as (kind, step) pairs, in file order (each process
    start adds a "setup" record, so those are not compared)."""
    out = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind", "train") != "setup":
                out.append((rec.get("kind", "train"), rec.get("step")))
    return out


def _params(workdir):
    from jadv import train
    _, variables, _ = train.load_trained(workdir)
    import jax
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(variables)]


def _results(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        res = json.load(f)
    return {k: v for k, v in res.items() if "time" not in k and k not in ("steps_per_second",)}


def trial(workdir, rng, args, extra):
    kills, runs = 0, 0
    while True:
        p = _train(workdir, extra)
        runs += 1
        if kills < args.kills:
            delay = rng.uniform(args.min_delay, args.max_delay)
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                continue
        else:
            p.wait()
        err = p.stderr.read().decode(errors="replace")
        if p.returncode != 0:
            return {"runs": runs, "kills": kills, "error": err[-2000:]}
        return {"runs": runs, "kills": kills}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "kill_resume"))
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--kills", type=int, default=12, help="kills per trial at most")
    ap.add_argument("--min_delay", type=float, default=2.0)
    ap.add_argument("--max_delay", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=0)
    args, extra = ap.parse_known_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    work = os.path.join(args.out, "work")
    ref_dir = os.path.join(work, "reference")
    if not os.path.exists(os.path.join(ref_dir, "results.json")):
        t0 = time.time()
        p = _train(ref_dir, extra)
        p.wait()
        if p.returncode:
            sys.exit(f"the reference run failed:\n{p.stderr.read().decode(errors='replace')[-2000:]}")
        print(f"reference run: {time.time() - t0:.0f} s", flush=True)
    ref_params, ref_records, ref_results = _params(ref_dir), _records(ref_dir), _results(ref_dir)
    rows = []
    for t in range(args.trials):
        wd = os.path.join(work, f"trial{t}")
        if os.path.exists(wd):
            import shutil
            shutil.rmtree(wd)
        t0 = time.time()
        row = trial(wd, rng, args, extra)
        row["wall_s"] = round(time.time() - t0, 1)
        if "error" not in row:
            params = _params(wd)
            row["params_bitwise_equal"] = len(params) == len(ref_params) and all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(params, ref_params))
            row["results_equal"] = _results(wd) == ref_results
            recs = _records(wd)
            row["records"] = len(recs)
            row["records_missing"] = len(set(ref_records) - set(recs))
            row["records_doubled"] = len(recs) - len(set(recs))
        rows.append(row)
        print(f"trial {t}: {row}", flush=True)
    ok = [r for r in rows if "error" not in r]
    summary = {"config": [os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in DEFAULT_CONFIG + extra],
               "trials": rows,
               "kills": sum(r["kills"] for r in rows),
               "resumes_bitwise_equal": sum(bool(r.get("params_bitwise_equal")) for r in ok),
               "results_equal": sum(bool(r.get("results_equal")) for r in ok),
               "records_lost": sum(r.get("records_missing", 0) for r in ok),
               "records_doubled": sum(r.get("records_doubled", 0) for r in ok),
               "failed_trials": len(rows) - len(ok), "reference_records": len(ref_records),
               "delays_s": [args.min_delay, args.max_delay], "seed": args.seed}
    atomic_write_json(os.path.join(args.out, "kill_resume.json"), summary)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("trials", "config")}))


if __name__ == "__main__":
    main()
