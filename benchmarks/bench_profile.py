"""Where a study profile's time goes: every training run, its steps, measured rate and time.

    python benchmarks/bench_profile.py --profile medium --data_dir ../shared/data --json out.json
    python benchmarks/bench_profile.py --profile paper --flops-only --json paper.json

For each study of ``experiments/reproduce.py`` and each model it trains at that profile
(``jadv.studies.<study>.training_configs``), this times the train step on this machine with the
real loop (``jadv.studies.cost.measure_rate``: a few steps after compilation) and multiplies by
the run's optimizer steps. Runs with the same recipe and shapes are timed once. ``--flops-only``
skips the timing and gives each run's model FLOPs (``jadv.studies.cost.train_flops``), from
which a device's time follows as FLOPs / (MFU x peak); ``--mfu`` and ``--peak_tflops`` turn them
into an estimate (defaults: the 40% MFU and the 380 / 691 TFLOP/s float32 / bfloat16 peaks, by the
run's ``model.dtype``, measured on an H100 for PreActResNet-18 PGD-AT, BENCHMARKS.md, apply to the architectures measured there,
``--measured_models``; the others, thin CIFAR ResNets and small CNNs, get ``--small_mfu``, an
assumption: they were not measured).
Evaluation and analysis time (attacks, Hessians) is not in these numbers: the report's per-study
wall times hold it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "experiments"))

from jadv.studies import cost  # noqa: E402
from reproduce import STUDIES, study_config  # noqa: E402



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="medium")
    p.add_argument("--studies", default=",".join(STUDIES))
    p.add_argument("--data_dir", default=None)
    p.add_argument("--steps", type=int, default=12, help="steps timed per distinct recipe")
    p.add_argument("--flops-only", action="store_true", help="count FLOPs instead of timing")
    p.add_argument("--mfu", type=float, default=0.40)
    p.add_argument("--small_mfu", type=float, default=0.10,
                   help="MFU assumed for the models not in --measured_models (not measured)")
    p.add_argument("--measured_models", default="preact_resnet18,resnet18,wrn28_10",
                   help="architectures whose MFU was measured (--mfu applies to them)")
    p.add_argument("--peak_tflops_f32", type=float, default=380.0)
    p.add_argument("--peak_tflops_bf16", type=float, default=691.0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    rows, timed = [], {}
    for study in args.studies.split(","):
        config = study_config(study, args.profile, args.data_dir)
        runs = importlib.import_module(f"jadv.studies.{study}").training_configs(config)
        for name, cfg in runs.items():
            steps = cost.total_steps(cfg)
            row = {"study": study, "model": name, "model_name": cfg.model.name,
                   "objective": cfg.objective.name, "dataset": cfg.dataset, "batch": int(cfg.batch_size),
                   "steps": steps}
            if args.flops_only:
                fwd = cost.model_forward_flops(cfg)
                flops = cost.train_flops(cfg, fwd)
                mfu = args.mfu if cfg.model.name in args.measured_models.split(",") else args.small_mfu
                dtype = cfg.model.get("dtype", "float32")
                peak = args.peak_tflops_bf16 if dtype == "bfloat16" else args.peak_tflops_f32
                row.update(forward_gflop=fwd / 1e9, train_pflop=flops / 1e15, mfu=mfu, dtype=dtype,
                           est_s=flops / (mfu * peak * 1e12))
            else:
                key = cost.recipe_key(cfg)
                if key not in timed:
                    t = time.perf_counter()
                    timed[key] = cost.measure_rate(cfg, steps=args.steps)
                    timed[key]["timing_wall_s"] = time.perf_counter() - t
                rate = timed[key]["steps_per_sec"]
                row.update(steps_per_sec=rate, est_s=steps / rate)
            rows.append(row)
            print(json.dumps(row), flush=True)
    by_study = {}
    for r in rows:
        by_study[r["study"]] = by_study.get(r["study"], 0.0) + r["est_s"]
    total = sum(by_study.values())
    print("\n| study | models | training time (estimated) |\n|---|---|---|")
    for s, t in by_study.items():
        print(f"| {s} | {sum(r['study'] == s for r in rows)} | {t / 60:.1f} min |")
    print(f"| all | {len(rows)} | {total / 3600:.2f} h |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"profile": args.profile, "flops_only": args.flops_only, "rows": rows,
                       "by_study_s": by_study, "total_s": total, "load_average": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
