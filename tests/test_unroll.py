"""Unrolling the attack's step loop changes speed, never results."""
import jax
import jax.numpy as jnp
import numpy as np

import jadv


def test_pgd_unrolled_equals_looped(key):
    model = jadv.models.get("small_cnn", num_classes=3, conv1_filters=4, widths=(), hidden=8)
    v = jadv.models.init_variables(model, key, (1, 8, 8, 1))
    f = lambda x: model.apply(v, x)  # noqa: E731
    x = jax.random.uniform(key, (4, 8, 8, 1))
    y = jnp.array([0, 1, 2, 0])
    kw = dict(key=key, eps=0.1, step_size=0.03, steps=4)
    a = jadv.attacks.pgd(f, x, y, **kw)
    b = jadv.attacks.pgd(f, x, y, **kw, unroll=True)
    np.testing.assert_allclose(a, b, atol=1e-6)
    g = jadv.attacks.pgd_generic(lambda xa: jadv.attacks.cross_entropy(f(xa), y), x, **kw, unroll=True)
    h = jadv.attacks.pgd_generic(lambda xa: jadv.attacks.cross_entropy(f(xa), y), x, **kw)
    np.testing.assert_allclose(g, h, atol=1e-6)
