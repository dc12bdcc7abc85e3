"""Before/after for SmallCNN's pooling: ``nn.max_pool`` (reduce_window) vs reshape + max.

    python benchmarks/bench_pool.py [--batch 128] [--repeats 20]

Times one jitted gradient (w.r.t. the input, as an attack step needs) of SmallCNN-shaped
networks (conv3x3(64)-pool-conv3x3(128)-pool-fc) on MNIST-shaped input, both pooling variants in
the same process, interleaved, median of repeats. Also checks the two give the same forward
values. Not a test.
"""
import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from jadv.models.simple import max_pool_2x2


class Net(nn.Module):
    pool: str

    @nn.compact
    def __call__(self, x):
        for width in (64, 128):
            x = nn.relu(nn.Conv(width, (3, 3), padding="SAME")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2)) if self.pool == "reduce_window" else max_pool_2x2(x)
        x = nn.relu(nn.Dense(256)(x.reshape((x.shape[0], -1))))
        return nn.Dense(10)(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    key = jax.random.key(0)
    x = jax.random.uniform(key, (a.batch, 28, 28, 1))
    y = jnp.arange(a.batch) % 10
    fns = {}
    params = Net("reshape").init(key, x)
    for pool in ("reduce_window", "reshape"):
        net = Net(pool)

        def loss(x, params=params, net=net):
            logits = net.apply(params, x)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

        fns[pool] = jax.jit(jax.grad(loss))
        fns[pool](x).block_until_ready()
    same = jnp.allclose(Net("reduce_window").apply(params, x), Net("reshape").apply(params, x))
    times = {k: [] for k in fns}
    for _ in range(a.repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f(x).block_until_ready()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"| pooling | input-gradient ms (batch {a.batch}, median of {a.repeats}) |\n|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} |")
    print(f"speed-up {med['reduce_window'] / med['reshape']:.2f}x; forward values equal: {bool(same)}")


if __name__ == "__main__":
    main()
