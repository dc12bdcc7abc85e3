"""Large-eps targeted PGD keeping the best iterate, and interpolation paths."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv.analysis import interpolate, large_eps_examples


def _model(key):
    w = jax.random.normal(key, (16, 3))

    def logits_fn(x):
        return 4.0 * jnp.tanh(x.reshape(x.shape[0], -1) @ w)

    return logits_fn


def _target_loss(f, x, t):
    return np.asarray(optax.softmax_cross_entropy_with_integer_labels(f(x), t))


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps,step", [("l2", 2.0, 0.5), ("linf", 0.3, 0.1)])
def test_inside_ball_box_and_best_le_last(key, norm, eps, step):
    f = _model(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (6, 4, 4, 1))
    t = jnp.array([0, 1, 2, 0, 1, 2], jnp.int32)
    kw = dict(key=jax.random.fold_in(key, 2), eps=eps, step_size=step, steps=15, norm=norm)
    best = large_eps_examples(f, x, t, **kw)
    last = large_eps_examples(f, x, t, keep_best=False, **kw)
    for xa in (best, last):
        d = np.asarray(xa - x).reshape(6, -1)
        dn = np.linalg.norm(d, axis=1) if norm == "l2" else np.abs(d).max(1)
        assert np.all(dn <= eps + 1e-5)
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
    lb, ll, l0 = _target_loss(f, best, t), _target_loss(f, last, t), _target_loss(f, x, t)
    assert np.all(lb <= ll + 1e-6) and np.all(lb <= l0 + 1e-6)
    assert np.mean(lb) < np.mean(l0)  # the attack makes progress towards the targets
    # random start stays feasible too
    ru = large_eps_examples(f, x, t, init="uniform", **kw)
    d = np.asarray(ru - x).reshape(6, -1)
    dn = np.linalg.norm(d, axis=1) if norm == "l2" else np.abs(d).max(1)
    assert np.all(dn <= eps + 1e-5)


def test_best_iterate_beats_overshooting_last(key):
    # 1-D quadratic-ish target loss: a too-large L-inf step oscillates; the best iterate is kept
    def f(x):
        s = x.reshape(x.shape[0], -1).sum(1) - 0.5
        return jnp.stack([-s ** 2, jnp.zeros_like(s)], 1)  # target loss minimal at s = 0.5

    x = jnp.full((1, 1, 1, 1), 0.2)
    t = jnp.array([0], jnp.int32)
    kw = dict(key=key, eps=1.0, step_size=0.45, steps=4, norm="linf")
    best = large_eps_examples(f, x, t, **kw)
    last = large_eps_examples(f, x, t, keep_best=False, **kw)
    # iterates 0.2 -> 0.65 -> 0.2 -> 0.65 -> 0.2 ; 0.65 is closer to 0.5
    assert float(best[0, 0, 0, 0]) == pytest.approx(0.65, abs=1e-6)
    assert float(last[0, 0, 0, 0]) == pytest.approx(0.2, abs=1e-6)


@pytest.mark.slow
def test_jit_with_traced_eps_matches_eager(key):
    f = _model(key)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (2, 4, 4, 1))
    t = jnp.array([2, 0], jnp.int32)

    @jax.jit
    def run(x, t, eps):
        return large_eps_examples(f, x, t, key=None, eps=eps, step_size=0.5, steps=3)

    eager = large_eps_examples(f, x, t, key=None, eps=1.5, step_size=0.5, steps=3)
    np.testing.assert_allclose(np.asarray(run(x, t, 1.5)), np.asarray(eager), atol=1e-5)


def test_interpolate():
    x = jnp.zeros((2, 3, 3, 1))
    xa = jnp.ones((2, 3, 3, 1))
    path = interpolate(x, xa, jnp.array([0.0, 0.25, 1.0]))
    assert path.shape == (3, 2, 3, 3, 1)
    np.testing.assert_allclose(np.asarray(path[:, 0, 0, 0, 0]), [0.0, 0.25, 1.0])
    with pytest.raises(ValueError):
        interpolate(x, xa[:1], jnp.array([0.5]))


def test_errors(key):
    f = _model(key)
    x = jnp.full((2, 4, 4, 1), 0.5)
    t = jnp.array([0, 1], jnp.int32)
    with pytest.raises(ValueError):
        large_eps_examples(f, x, t, key=key, eps=-1.0, step_size=0.1, steps=3)
    with pytest.raises(ValueError):
        large_eps_examples(f, x, t, key=key, eps=1.0, step_size=0.1, steps=0)
    with pytest.raises(ValueError):
        large_eps_examples(f, x, t, key=key, eps=1.0, step_size=0.1, steps=3, norm="l0")
    with pytest.raises(ValueError):
        large_eps_examples(f, x, t, key=None, eps=1.0, step_size=0.1, steps=3, init="uniform")
    with pytest.raises(ValueError):
        large_eps_examples(f, x, t[:1], key=key, eps=1.0, step_size=0.1, steps=3)
