"""jadv: adversarial-robustness research in JAX.

Subpackages (each re-exports its public API explicitly):

- :mod:`jadv.data`: datasets as in-memory uint8 arrays, device-resident batching, augmentation.
- :mod:`jadv.models`: Flax Linen models with the input normalisation inside.
- :mod:`jadv.attacks`: pure, jit-able attacks on any ``logits_fn`` and robust evaluation.
- :mod:`jadv.train`: train state, objectives, the train loop, checkpoints, sharding.
- :mod:`jadv.analysis`: filters, saliency, features, curvature and loss landscapes.

Images are NHWC float32 in [0, 1] and every epsilon is in that pixel space.
"""

__version__ = "0.1.0"

from jadv import analysis, attacks, data, models, train  # noqa: E402,F401

__all__ = ["analysis", "attacks", "data", "models", "train", "__version__"]
