"""Many small models as one program: ``jax.vmap`` vs ``lax.map`` (``jadv.train.over_models``).

    python benchmarks/bench_model_stacking.py                      # 4 models, 60 steps, 3 repeats
    python benchmarks/bench_model_stacking.py --models 8 --steps 20 --threads 2 --append BENCHMARKS.md

What is timed: study 2's sweep trainer (``jadv.studies.tradeoff.train_many``), the `medium`
profile's MNIST small CNN (conv 8, conv 16, fc 64; no batch norm), Adam, batch 64, PGD-5 L-inf
training attack at eps 0.1, ``--models`` models (each its own seed) for ``--steps`` steps, on random
28x28 images (timing only; the arithmetic does not depend on the pixel values). "vmap": one batched
program (every convolution of M models becomes one grouped convolution); "map": ``lax.map``, the
models one after the other inside one compiled loop. Both variants' step loops have their
convolutions in canonical form (``cpu_canonical``), as in the study. ``train_many`` builds a
new program per call, as the study calls it, so each timed call is compile + run (median of
``--repeats``; use more ``--steps`` to weigh the run more). The final losses of the two variants are printed: the same up to float rounding, which
PGD's sign steps can amplify over many steps. Not a test; no PyTorch side (the question is which
JAX program shape XLA:CPU runs faster).
"""
from __future__ import annotations

import argparse
import time

import common

THREADS = common.set_threads()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jadv import models, train  # noqa: E402
from jadv.studies import tradeoff  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--append", default=None, help="append the report to this markdown file")
    args = ap.parse_args()
    load0 = common.load1()
    model = models.get("small_cnn", num_classes=10, conv1_filters=8, widths=(16,), hidden=64)
    rng = np.random.RandomState(0)
    x = rng.rand(2000, 28, 28, 1).astype(np.float32)
    y = rng.randint(0, 10, 2000)
    m = args.models
    sizes, eps, seeds = [2000] * m, [0.1] * m, list(range(m))

    def make(mode):
        def run():
            with train.stacking_mode(mode):
                t = time.perf_counter()
                optimizer = optax.adam(optax.cosine_decay_schedule(2e-3, args.steps))
                params, losses = tradeoff.train_many(model, x, y, np.arange(2000), sizes, eps, seeds,
                                                     norm="linf", steps=args.steps, batch_size=64,
                                                     optimizer=optimizer, attack_steps=5)
                jax.block_until_ready(losses)
                return time.perf_counter() - t, np.asarray(losses)[:, -1]
        return run

    rows = {}
    for mode in ("vmap", "map"):
        fn = make(mode)
        totals, last = [], None
        for r in range(args.repeats):
            t, last = fn()
            totals.append(t)
            common.log(f"  {mode} repeat {r + 1}: {t:.1f} s")
        rows[mode] = (totals, last)
    steps = args.steps
    lines = [f"### Many small models as one program: vmap vs lax.map ({m} PGD-AT MNIST CNNs, {steps} steps)", "",
             common.header(THREADS, load0), "",
             "| variant | wall per call (compile + run), median | min-max | final losses |",
             "|---|---|---|---|"]
    for mode, (ts, last) in rows.items():
        lines.append(f"| {mode} | {common.med(ts):.1f} s | {common.spread(ts)} | "
                     f"{', '.join(f'{v:.4f}' for v in last)} |")
    ratio = common.med(rows["vmap"][0]) / common.med(rows["map"][0])
    lines += ["", f"vmap / map: {ratio:.2f}x"]
    text = "\n".join(lines)
    print(text)
    if args.append:
        common.append_report(args.append, text)


if __name__ == "__main__":
    main()
