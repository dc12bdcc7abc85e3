"""The main job: run the studies and write one report.

    python experiments/reproduce.py [--profile default] [--out results/default] [--data_dir DIR]

Every study writes into ``OUT/<study>/`` and marks itself done with ``OUT/<study>/done.json``;
a rerun skips finished studies and resumes unfinished ones from their checkpoints. The report
is ``OUT/report.md``.

Profiles: ``smoke`` (seconds, used by the tests), ``default`` (no download, embedded data, a
2-core CPU), ``cpu`` (MNIST and CIFAR-10 from the data dir), ``full`` (paper scale, GPU/TPU).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jadv.train import base_config, train_and_evaluate  # noqa: E402

PROFILES = ("smoke", "default", "cpu", "full")


def standard_training_study(profile: str, out: str, data_dir: str | None) -> dict:
    """Standard training of the small CNN (digits offline; MNIST at the cpu/full profiles)."""
    c = base_config()
    c.dataset = "mnist" if profile in ("cpu", "full") else "digits"
    if data_dir:
        c.data_dir = data_dir
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": 32, "widths": (64,), "hidden": 128}
    c.batch_size = 64 if c.dataset == "digits" else 128
    c.num_epochs = {"smoke": 1, "default": 20, "cpu": 1, "full": 10}[profile]
    c.log_every_steps = 20 if c.dataset == "digits" else 100
    if profile == "smoke":
        c.train_size, c.test_size, c.batch_size = 256, 128, 32
    return train_and_evaluate(c, os.path.join(out, "standard_training", "run"))


STUDIES = {"standard_training": standard_training_study}


def run(profile: str, out: str, data_dir: str | None = None) -> str:
    """Run every study not yet done under ``out`` and write ``out/report.md``; returns its path."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    os.makedirs(out, exist_ok=True)
    results = {}
    for name, study in STUDIES.items():
        done = os.path.join(out, name, "done.json")
        if os.path.exists(done):
            print(f"[{name}] already done, reusing {done}", flush=True)
            with open(done) as f:
                results[name] = json.load(f)
            continue
        t0 = time.time()
        res = study(profile, out, data_dir)
        res = dict(res, study_wall_time_s=time.time() - t0)
        os.makedirs(os.path.dirname(done), exist_ok=True)
        with open(done + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(done + ".tmp", done)
        results[name] = res
    report = os.path.join(out, "report.md")
    lines = [f"# jadv reproduction report (profile `{profile}`)", "",
             f"Command: `python experiments/reproduce.py --profile {profile} --out {out}`", ""]
    for name, res in results.items():
        lines += [f"## {name}", "", "| field | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in res.items()]
        lines.append("")
    with open(report, "w") as f:
        f.write("\n".join(lines))
    print(f"report: {report}", flush=True)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--out", default=None, help="output directory (default results/<profile>)")
    parser.add_argument("--data_dir", default=None, help="raw data directory (default $JADV_DATA_DIR or ../shared/data)")
    args = parser.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    run(args.profile, args.out or os.path.join("results", args.profile), args.data_dir)


if __name__ == "__main__":
    main()
