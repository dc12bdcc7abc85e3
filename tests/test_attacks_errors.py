"""Bad input gets a clear ValueError/TypeError from every attack."""
import jax
import jax.numpy as jnp
import pytest

from jadv import attacks as A

K = 5
W = jax.random.normal(jax.random.key(3), (12, K))


def f(x):
    return x.reshape(x.shape[0], -1) @ W


X = jax.random.uniform(jax.random.key(4), (3, 2, 2, 3))
Y = jnp.array([0, 1, 2], jnp.int32)
KEY = jax.random.key(0)
X_BAD = X + 1.0

ATTACKS = {
    "fgsm": lambda **kw: A.fgsm(f, kw.pop("x", X), kw.pop("y", Y), **{"eps": 0.1, **kw}),
    "pgd": lambda **kw: A.pgd(f, kw.pop("x", X), kw.pop("y", Y),
                              **{"key": KEY, "eps": 0.1, "step_size": 0.01, "steps": 2, **kw}),
    "apgd": lambda **kw: A.apgd(f, kw.pop("x", X), kw.pop("y", Y), **{"key": KEY, "eps": 0.1, "steps": 2, **kw}),
    "apgd_targeted": lambda **kw: A.apgd_targeted(f, kw.pop("x", X), kw.pop("y", Y),
                                                  **{"key": KEY, "eps": 0.1, "steps": 2, "n_targets": 2, **kw}),
    "square": lambda **kw: A.square(f, kw.pop("x", X), kw.pop("y", Y), **{"key": KEY, "eps": 0.1, "queries": 2, **kw}),
    "fab_targeted": lambda **kw: A.fab_targeted(f, kw.pop("x", X), kw.pop("y", Y),
                                                **{"key": KEY, "eps": 0.1, "steps": 2, "n_targets": 2, **kw}),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_common_bad_inputs(name):
    run = ATTACKS[name]
    with pytest.raises(ValueError, match="eps"):
        run(eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        run(eps=1.5)  # beyond the box for Linf
    with pytest.raises(ValueError, match="norm"):
        run(norm="l7")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        run(x=X + 1.0)
    with pytest.raises(TypeError, match="float"):
        run(x=(X * 255).astype(jnp.uint8))
    with pytest.raises(ValueError, match="dims"):
        run(x=X.reshape(3, 12))
    with pytest.raises(ValueError, match="lie in"):
        run(y=jnp.array([0, 1, K], jnp.int32))
    with pytest.raises(ValueError, match="labels"):
        run(y=jnp.array([0, 1], jnp.int32))
    with pytest.raises(TypeError, match="integer"):
        run(y=jnp.array([0.0, 1.0, 2.0]))
    if name != "fgsm":
        with pytest.raises(TypeError, match="key"):
            run(key=None)


@pytest.mark.parametrize("name", ["pgd", "apgd", "apgd_targeted", "fab_targeted"])
def test_steps_errors(name):
    with pytest.raises(ValueError, match="steps"):
        ATTACKS[name](steps=0)
    with pytest.raises(TypeError, match="steps"):
        ATTACKS[name](steps=2.5)


def test_specific_errors():
    with pytest.raises(ValueError, match="unknown loss"):
        ATTACKS["pgd"](loss="hinge")
    with pytest.raises(ValueError, match="unknown loss"):
        ATTACKS["apgd"](loss="hinge")
    with pytest.raises(ValueError, match="unknown init"):
        ATTACKS["pgd"](init="gaussian")
    with pytest.raises(ValueError, match="not defined for norm"):
        ATTACKS["pgd"](init="uniform", norm="l2")
    with pytest.raises(ValueError, match="not defined for norm"):
        ATTACKS["pgd"](init="sphere", norm="linf")
    with pytest.raises(ValueError, match="y_target"):
        ATTACKS["pgd"](targeted=True)
    with pytest.raises(ValueError, match="y_target"):
        ATTACKS["fgsm"](targeted=True)
    with pytest.raises(ValueError, match="targeted=True"):
        ATTACKS["pgd"](y_target=Y)
    with pytest.raises(ValueError, match="y_target"):
        ATTACKS["pgd"](targeted=True, y_target=jnp.array([0, 1, 9], jnp.int32))
    with pytest.raises(ValueError, match="restarts"):
        ATTACKS["pgd"](restarts=0)
    with pytest.raises(ValueError, match="select"):
        ATTACKS["pgd"](select="first")
    for name in ("apgd_targeted", "fab_targeted"):
        with pytest.raises(ValueError, match="n_targets"):
            ATTACKS[name](n_targets=K)
    with pytest.raises(TypeError, match="key"):
        ATTACKS["fgsm"](random_start=True)
    with pytest.raises(ValueError, match="p_init"):
        ATTACKS["square"](p_init=0.0)
    with pytest.raises(ValueError, match="queries"):
        ATTACKS["square"](queries=0)
    with pytest.raises(ValueError, match="5x5"):
        ATTACKS["square"](norm="l2")
    with pytest.raises(ValueError, match="3 classes"):
        A.apgd(lambda x: f(x)[:, :2], X, jnp.array([0, 1, 0]), key=KEY, eps=0.1, steps=2, loss="dlr")
    with pytest.raises(ValueError, match="4 classes"):
        A.apgd_targeted(lambda x: f(x)[:, :3], X, jnp.array([0, 1, 0]), key=KEY, eps=0.1, steps=2, n_targets=2)
    with pytest.raises(TypeError, match="callable"):
        A.pgd(W, X, Y, key=KEY, eps=0.1, step_size=0.01, steps=1)
    with pytest.raises(ValueError, match="one value per example"):
        A.pgd_generic(lambda xa: jnp.sum(f(xa)), X, key=KEY, eps=0.1, step_size=0.01, steps=1)
    with pytest.raises(ValueError, match="eps_grid"):
        A.robust_accuracy_curve(f, X, Y, key=KEY, eps_grid=jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="eps"):
        A.robust_accuracy_curve(f, X, Y, key=KEY, eps_grid=[0.1, -0.1])
    with pytest.raises(ValueError, match="attack"):
        A.robust_accuracy_curve(f, X, Y, key=KEY, eps_grid=[0.1], attack="square")


def test_checks_work_on_concrete_arrays_closed_over_in_jit():
    """Range checks still fire when x/y are concrete constants inside a jitted function."""
    y_bad = jnp.array([0, 1, K], jnp.int32)
    with pytest.raises(ValueError, match="lie in"):
        jax.jit(lambda: A.pgd(f, X, y_bad, key=KEY, eps=0.1, step_size=0.01, steps=1))()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jax.jit(lambda: A.apgd(f, X_BAD, Y, key=KEY, eps=0.1, steps=1))()
    # traced inputs skip value checks but still run
    out = jax.jit(lambda x, y: A.pgd(f, x, y, key=KEY, eps=0.1, step_size=0.01, steps=1))(X, Y)
    assert out.shape == X.shape


def test_driver_errors():
    with pytest.raises(ValueError, match="version"):
        A.autoattack(f, X, Y, key=KEY, eps=0.1, version="plus")
    with pytest.raises(ValueError, match="10 classes"):
        A.autoattack(f, X, Y, key=KEY, eps=0.1)
    with pytest.raises(ValueError, match="custom"):
        A.autoattack(f, X, Y, key=KEY, eps=0.1, attacks=[{"name": "pgd"}])
    with pytest.raises(ValueError, match="non-empty"):
        A.autoattack(f, X, Y, key=KEY, eps=0.1, version="custom")
    with pytest.raises(ValueError, match="unknown attack"):
        A.robust_accuracy(f, X, Y, [{"name": "deepfool"}], key=KEY)
    with pytest.raises(ValueError, match="'name'"):
        A.robust_accuracy(f, X, Y, [{"eps": 0.1}], key=KEY)
    with pytest.raises(TypeError, match="callable"):
        A.robust_accuracy(f, X, Y, [3], key=KEY)
    with pytest.raises(ValueError, match="non-empty"):
        A.robust_accuracy(f, X, Y, [], key=KEY)
    with pytest.raises(ValueError, match="batch_size"):
        A.robust_accuracy(f, X, Y, [{"name": "fgsm", "eps": 0.1}], key=KEY, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        A.robust_accuracy(f, X, Y[:2], [{"name": "fgsm", "eps": 0.1}], key=KEY)
