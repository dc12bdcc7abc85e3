"""PGD step loop on XLA:CPU: ``lax.fori_loop`` vs the same loop fully unrolled vs N separate calls.

    python benchmarks/bench_loop_unroll.py [--steps 10] [--batch 64] [--repeats 5]
    XLA_FLAGS=--xla_cpu_use_xnnpack=true python benchmarks/bench_loop_unroll.py   # flags tried

Also prints the dimension labels of the convolutions XLA compiled in the looped program, which
show the backward convolution's transposed kernel layout (``01oi``) inside the loop body.
Not a test.
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

import jadv


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    model = jadv.models.get("small_cnn", num_classes=10, conv1_filters=32, widths=(64,), hidden=128)
    key = jax.random.key(0)
    variables = jadv.models.init_variables(model, key, (1, 28, 28, 1))
    x = jax.random.uniform(key, (a.batch, 28, 28, 1))
    y = jnp.arange(a.batch) % 10

    def step(xa, v):
        def loss(xa):
            logp = jax.nn.log_softmax(model.apply(v, xa))
            return -jnp.sum(jnp.take_along_axis(logp, y[:, None], 1))
        return jnp.clip(xa + 0.01 * jnp.sign(jax.grad(loss)(xa)), 0, 1)

    fns = {
        "fori_loop": jax.jit(lambda x, v: lax.fori_loop(0, a.steps, lambda i, xa: step(xa, v), x)),
        "fori_loop unroll=True": jax.jit(lambda x, v: lax.fori_loop(0, a.steps, lambda i, xa: step(xa, v), x,
                                                                     unroll=True)),
    }
    for u in (2, 5):
        fns[f"fori_loop unroll={u}"] = jax.jit(
            lambda x, v, u=u: lax.fori_loop(0, a.steps, lambda i, xa: step(xa, v), x, unroll=u))
    one = jax.jit(step)

    def host_loop(x, v):
        for _ in range(a.steps):
            x = one(x, v)
        return x

    fns[f"{a.steps} separate jitted steps"] = host_loop
    for f in fns.values():
        f(x, variables).block_until_ready()
    times = {k: [] for k in fns}
    for _ in range(a.repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f(x, variables).block_until_ready()
            times[k].append(time.perf_counter() - t)
    print(f"| PGD-{a.steps}, batch {a.batch}, small CNN | ms (median of {a.repeats}) |\n|---|---|")
    for k, v in times.items():
        print(f"| {k} | {statistics.median(v) * 1e3:.0f} |")
    hlo = fns["fori_loop"].lower(x, variables).compile().as_text()
    labels = sorted({line.split("dim_labels=")[1].split(",")[0] for line in hlo.splitlines() if "convolution(" in line})
    print("convolution dim_labels in the looped program:", labels)


if __name__ == "__main__":
    main()
