"""jadv: adversarial-robustness research in JAX.

Subpackages (each re-exports its public API explicitly):

- :mod:`jadv.data`: datasets as in-memory uint8 arrays, device-resident batching, augmentation.
- :mod:`jadv.models`: Flax Linen models with the input normalisation inside.
- :mod:`jadv.attacks`: pure, jit-able attacks on any ``logits_fn`` and robust evaluation.
- :mod:`jadv.train`: train state, objectives, the train loop, checkpoints, sharding.
- :mod:`jadv.analysis`: filters, saliency, features, curvature and loss landscapes.

Images are NHWC float32 in [0, 1] and every epsilon is in that pixel space.

``JADV_CPU_DEVICES=N`` (or ``auto``: one per core) in the environment exposes N CPU devices when
jadv is imported (:func:`jadv.train.use_cpu_cores`), so batch-sharded work uses every core.
"""

__version__ = "0.1.0"

from jadv import analysis, attacks, data, models, train  # noqa: E402,F401


def _cpu_devices_from_environment() -> None:
    import os

    n = train.sharding._cpu_devices_from_env(os.environ.get("JADV_CPU_DEVICES"))
    if n is not None:
        train.use_cpu_cores(n)


_cpu_devices_from_environment()

__all__ = ["analysis", "attacks", "data", "models", "train", "__version__"]
