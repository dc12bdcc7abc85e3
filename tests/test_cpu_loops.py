"""The loop-body convolution rewrite of jadv/_cpu_loops.py changes speed, never results."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jadv
from jadv import _cpu_loops
from jadv.analysis import curvature as cv
from jadv.train import sweeps


@pytest.fixture
def conv_net(key):
    model = jadv.models.get("small_cnn", num_classes=10, conv1_filters=4, widths=(6,), hidden=8)
    v = jadv.models.init_variables(model, key, (1, 8, 8, 1))
    x = jax.random.uniform(jax.random.fold_in(key, 1), (6, 8, 8, 1))
    y = jnp.arange(6) % 10
    return model, v, x, y


def plain_and_canonical(run):
    """``run()`` traced with the library's loop-body rewrite off (the plain XLA loop), then on."""
    with _cpu_loops.canonical_convs_mode("off"):
        plain = run()
    with _cpu_loops.canonical_convs_mode("on"):
        canonical = run()
    return plain, canonical


def test_mode_context_managers_restore_the_old_mode_on_errors():
    before = _cpu_loops.CANONICAL_CONVS
    with pytest.raises(RuntimeError, match="inside"):
        with _cpu_loops.canonical_convs_mode("off"):
            assert _cpu_loops.CANONICAL_CONVS == "off"
            f = lambda z: z  # noqa: E731
            assert _cpu_loops.cpu_canonical(f) is f
            raise RuntimeError("inside")
    assert _cpu_loops.CANONICAL_CONVS == before
    before = sweeps.STACK_MODELS
    with pytest.raises(RuntimeError, match="inside"):
        with sweeps.stacking_mode("vmap"):
            assert sweeps.STACK_MODELS == "vmap"
            raise RuntimeError("inside")
    assert sweeps.STACK_MODELS == before
    with pytest.raises(ValueError, match="mode 'sometimes'"):
        with _cpu_loops.canonical_convs_mode("sometimes"):
            pass
    with pytest.raises(ValueError, match="mode 'pmap'"):
        with sweeps.stacking_mode("pmap"):
            pass


@pytest.mark.parametrize("dn,strides,lhs_dil,rhs_dil,groups", [
    (("NHWC", "HWIO", "NHWC"), (1, 1), (1, 1), (1, 1), 1),       # already canonical
    (("NCHW", "OIHW", "NCHW"), (2, 1), (1, 1), (1, 2), 1),
    (("NHWC", "HWOI", "NHWC"), (1, 1), (2, 2), (1, 1), 1),       # input-gradient form
    (("CHWN", "IHWO", "NHWC"), (1, 2), (1, 1), (1, 1), 2),       # grouped, batch-last
])
def test_canonical_convs_equal_values_and_gradients(key, dn, strides, lhs_dil, rhs_dil, groups):
    lhs_shape = {"NHWC": (2, 7, 9, 4), "NCHW": (2, 4, 7, 9), "CHWN": (4, 7, 9, 2)}[dn[0]]
    rhs_sizes = {"H": 3, "W": 2, "I": 4 // groups, "O": 6}
    rhs_shape = tuple(rhs_sizes[c] for c in dn[1])
    lhs = jax.random.normal(key, lhs_shape)
    rhs = jax.random.normal(jax.random.fold_in(key, 1), rhs_shape)

    def f(lhs, rhs):
        return lax.conv_general_dilated(lhs, rhs, strides, [(1, 1), (0, 1)], lhs_dilation=lhs_dil, rhs_dilation=rhs_dil,
                                        dimension_numbers=dn, feature_group_count=groups)

    g = _cpu_loops.canonical_convs(f)
    np.testing.assert_allclose(jax.jit(g)(lhs, rhs), jax.jit(f)(lhs, rhs), rtol=1e-5, atol=1e-5)
    loss = lambda fn: lambda a, b: jnp.sum(jnp.sin(fn(a, b)))  # noqa: E731
    for ga, gb in zip(jax.grad(loss(g), (0, 1))(lhs, rhs), jax.grad(loss(f), (0, 1))(lhs, rhs)):
        np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-4)


def test_loop_body_convolutions_become_canonical(conv_net):
    model, v, x, y = conv_net

    def step(_, xa):
        g = jax.grad(lambda z: jnp.sum(model.apply(v, z)[:, 0]))(xa)
        return jnp.clip(xa + 0.01 * jnp.sign(g), 0, 1)

    def labels(body):
        hlo = jax.jit(lambda x: lax.fori_loop(0, 3, body, x)).lower(x).compile().as_text()
        return {l.split("dim_labels=")[1].split(",")[0] for l in hlo.splitlines() if "convolution(" in l}

    assert labels(step) != {"b01f_01io->b01f"}       # XLA:CPU leaves the input gradient transposed
    assert labels(_cpu_loops.canonical_convs(step)) == {"b01f_01io->b01f"}
    a = jax.jit(lambda x: lax.fori_loop(0, 3, step, x))(x)
    b = jax.jit(lambda x: lax.fori_loop(0, 3, _cpu_loops.canonical_convs(step), x))(x)
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(restarts=1), dict(restarts=2, loss="dlr", norm="l2", eps=0.5)])
def test_apgd_plain_and_canonical_loops_agree(conv_net, key, kw):
    model, v, x, y = conv_net
    f = lambda z: model.apply(v, z)  # noqa: E731
    kw = {"eps": 0.1, **kw}
    run = lambda: jax.jit(lambda x, y: jadv.attacks.apgd(f, x, y, key=key, steps=12, **kw))(x, y)  # noqa: E731
    plain, canonical = plain_and_canonical(run)
    np.testing.assert_allclose(canonical, plain, atol=1e-6)


def test_apgd_targeted_plain_and_canonical_agree(conv_net, key):
    model, v, x, y = conv_net
    f = lambda z: model.apply(v, z)  # noqa: E731
    run = lambda: jax.jit(lambda x, y: jadv.attacks.apgd_targeted(  # noqa: E731
        f, x, y, key=key, eps=0.1, steps=6, n_targets=3))(x, y)
    plain, canonical = plain_and_canonical(run)
    np.testing.assert_allclose(canonical, plain, atol=1e-6)


def _cnn_loss(model, v, x, y):
    def loss(p):
        logp = jax.nn.log_softmax(model.apply({**v, "params": p}, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))
    return loss


@pytest.mark.parametrize("kw", [dict(k=2, method="lanczos", iters=20), dict(k=2, method="power", iters=40, tol=1e-4),
                                dict(k=1, method="power", iters=15, tol=0.0)])
def test_top_eigenvalues_plain_and_canonical_agree(conv_net, key, kw):
    model, v, x, y = conv_net
    loss = _cnn_loss(model, v, x, y)
    p = v["params"]
    run = lambda: jax.jit(lambda p: cv.top_eigenvalues(loss, p, key=key, **kw))(p)  # noqa: E731
    (plain, _), (canonical, vecs) = plain_and_canonical(run)
    np.testing.assert_allclose(canonical, plain, rtol=1e-4)
    assert jax.tree.structure(vecs) == jax.tree.structure(jax.tree.map(lambda a: a[None], p))


def test_trace_density_and_data_hvp_agree(conv_net, key):
    model, v, x, y = conv_net
    loss = _cnn_loss(model, v, x, y)
    p = v["params"]

    def per_example(params, batch):
        xb, yb = batch
        logp = jax.nn.log_softmax(model.apply({**v, "params": params}, xb))
        return -jnp.take_along_axis(logp, yb[:, None], 1)[:, 0]

    batches, w = cv.stack_batches((x, y), 4)

    def run():
        return jax.jit(lambda p: (
            cv.hessian_trace(loss, p, key=key, samples=4),
            cv.spectral_density(loss, p, key=key, order=8, runs=2, grid_size=50, return_nodes=True)[2:],
            cv.lanczos_tridiag(loss, p, key=key, order=6)["nodes"],
            cv.data_hvp(per_example, p, p, batches, weights=w)))(p)

    plain, canonical = plain_and_canonical(run)
    chex.assert_trees_all_close(canonical, plain, rtol=1e-4, atol=1e-5)


def test_rewrite_mode_from_the_environment_is_checked(monkeypatch):
    monkeypatch.setattr(_cpu_loops, "CANONICAL_CONVS", "sometimes")   # as JADV_CANONICAL_CONVS=sometimes
    with pytest.raises(ValueError, match="JADV_CANONICAL_CONVS"):
        _cpu_loops.cpu_canonical(lambda z: z)


def _loop_conv_labels(fn, *args):
    hlo = jax.jit(fn).lower(*args).compile().as_text()
    return {l.split("dim_labels=")[1].split(",")[0] for l in hlo.splitlines() if "convolution(" in l}


@pytest.mark.parametrize("kw", [dict(restarts=1), dict(restarts=2, norm="l2", eps=0.5, init="sphere", loss="margin")])
def test_pgd_plain_and_canonical_loops_agree(conv_net, key, kw):
    model, v, x, y = conv_net
    f = lambda z: model.apply(v, z)  # noqa: E731
    kw = {"eps": 0.1, "step_size": 0.03, "steps": 5, **kw}
    # a new function object per trace: jit caches traces by function, and the mode is read at trace time
    attack = lambda: lambda x, y: jadv.attacks.pgd(f, x, y, key=key, **kw)  # noqa: E731
    with _cpu_loops.canonical_convs_mode("off"):
        plain = jax.jit(attack())(x, y)
        assert _loop_conv_labels(attack(), x, y) != {"b01f_01io->b01f"}
    with _cpu_loops.canonical_convs_mode("on"):
        assert _loop_conv_labels(attack(), x, y) == {"b01f_01io->b01f"}
        np.testing.assert_allclose(jax.jit(attack())(x, y), plain, atol=1e-6)


def test_pgd_vmapped_over_eps_plain_and_canonical_agree(conv_net, key):
    model, v, x, y = conv_net
    f = lambda z: model.apply(v, z)  # noqa: E731
    run = lambda: jax.jit(jax.vmap(lambda e: jadv.attacks.pgd(  # noqa: E731
        f, x, y, key=key, eps=e, step_size=e / 4, steps=4)))(jnp.array([0.05, 0.2]))
    plain, canonical = plain_and_canonical(run)
    np.testing.assert_allclose(canonical, plain, atol=1e-6)


def test_craft_train_bn_plain_and_canonical_agree(key):
    """The training attack that threads batch-norm statistics through its loop (bn_mode="train")."""
    from jadv import train
    from jadv.train.model_fns import ModelFns
    model = jadv.models.get("small_cnn", num_classes=10, conv1_filters=4, widths=(6,), hidden=8, norm="batch")
    v = jadv.models.init_variables(model, key, (1, 8, 8, 1))
    x = jax.random.uniform(jax.random.fold_in(key, 1), (6, 8, 8, 1))
    y = jnp.arange(6) % 10
    m = ModelFns(model.apply)
    run = lambda: jax.jit(lambda x: train.craft(  # noqa: E731
        m, v["params"], v["batch_stats"], x, lambda lg: train.cross_entropy(lg, y), key=key, eps=0.1,
        step_size=0.03, steps=4, bn_mode="train"))(x)
    plain, canonical = plain_and_canonical(run)
    chex.assert_trees_all_close(canonical, plain, rtol=1e-5, atol=1e-6)


def _sgd_steps(model, x, y):
    """Per-model function: a conv net trained for 3 SGD steps from its own seed at its own lr."""
    def one(seed, lr, xb):
        p = model.init(jax.random.key(seed), xb[:1])

        def step(p, _):
            g = jax.grad(lambda q: jnp.mean(jax.nn.logsumexp(model.apply(q, xb), -1)
                                            - model.apply(q, xb)[jnp.arange(len(y)), y]))(p)
            return jax.tree.map(lambda a, b: a - lr * b, p, g), None

        p, _ = lax.scan(step, p, None, length=3)
        return model.apply(p, xb)
    return one


def test_over_models_map_and_vmap_agree(conv_net):
    model, _, x, y = conv_net
    one = _sgd_steps(model, x, y)
    seeds, lrs = jnp.arange(3), jnp.array([0.1, 0.3, 0.0])
    a = jax.jit(jadv.train.over_models(one, in_axes=(0, 0, None), mode="vmap"))(seeds, lrs, x)
    b = jax.jit(jadv.train.over_models(one, in_axes=(0, 0, None), mode="map"))(seeds, lrs, x)
    with jadv.train.stacking_mode("map"):   # the default mode, as JADV_STACK_MODELS=map
        c = jax.jit(jadv.train.over_models(one, in_axes=(0, 0, None)))(seeds, lrs, x)
    chex.assert_trees_all_equal(c, b)
    assert a.shape == (3, len(x), 10)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # each slice is the model trained alone; lr 0 leaves the initial model
    np.testing.assert_allclose(b[1], jax.jit(one)(seeds[1], lrs[1], x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b[2], model.apply(model.init(jax.random.key(2), x[:1]), x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(b[0], b[1])
    with pytest.raises(ValueError, match="entries"):
        jadv.train.over_models(one, in_axes=(0, None), mode="map")(seeds, lrs, x)
    with pytest.raises(ValueError, match="model axis"):
        jadv.train.over_models(one, in_axes=(None, None, None), mode="map")(seeds, lrs, x)
    with pytest.raises(ValueError, match="mode"):
        jadv.train.over_models(one, mode="pmap")


def test_over_models_has_its_public_home():
    assert jadv.train.over_models is sweeps.over_models


# -- max pooling (issue #19: a user's Flax CNN with nn.max_pool) ------------------------------

def _tied(key, shape):
    """ReLU outputs on a coarse grid: many windows hold tied maxima (zeros and equal values)."""
    return jnp.maximum(jnp.round(jax.random.normal(key, shape) * 2) / 2, 0.0)


@pytest.mark.parametrize("shape,window,padding", [
    ((3, 8, 8, 5), (2, 2), "VALID"),
    ((3, 7, 9, 5), (2, 2), "SAME"),          # padded windows at the bottom/right edge
    ((2, 9, 9, 3), (3, 3), "VALID"),
    ((2, 6, 7, 2), (2, 3), "SAME"),
])
def test_tiled_max_pool_rewrite_gives_the_same_values_and_gradients(key, shape, window, padding):
    import flax.linen as nn
    x = _tied(key, shape)
    f = lambda z: nn.max_pool(z, window, window, padding=padding)  # noqa: E731
    wts = lambda o: jnp.arange(o.size, dtype=o.dtype).reshape(o.shape) / o.size  # noqa: E731
    loss = lambda fn: lambda z: jnp.sum(jnp.sin(fn(z)) * wts(fn(z)))  # noqa: E731
    g = _cpu_loops.canonical_convs(f)
    names = {e.primitive.name for e in jax.make_jaxpr(g)(x).eqns}
    assert "reduce_window_max" not in names
    np.testing.assert_array_equal(jax.jit(g)(x), jax.jit(f)(x))
    # the gradient inside the rewritten function (a loop body: forward and select_and_scatter_add)
    body = _cpu_loops.canonical_convs(jax.grad(loss(f)))
    assert "select_and_scatter_add" not in {e.primitive.name for e in jax.make_jaxpr(body)(x).eqns}
    ref = jax.jit(jax.grad(loss(f)))(x)
    np.testing.assert_array_equal(jax.jit(body)(x), ref)   # ties: the first maximum takes it, as XLA
    # and the gradient through the rewritten forward (custom VJP: same tie rule)
    np.testing.assert_array_equal(jax.jit(jax.grad(loss(g)))(x), ref)


def test_overlapping_max_pool_is_left_to_xla(key):
    import flax.linen as nn
    x = jax.random.normal(key, (2, 8, 8, 3))
    f = lambda z: jnp.sum(nn.max_pool(z, (3, 3), (2, 2)) ** 2)  # noqa: E731
    g = _cpu_loops.canonical_convs(jax.grad(f))
    assert "select_and_scatter_add" in {e.primitive.name for e in jax.make_jaxpr(g)(x).eqns}
    np.testing.assert_array_equal(jax.jit(g)(x), jax.jit(jax.grad(f))(x))


@pytest.fixture
def user_cnn(key):
    """A plain Flax CNN as users write it: "SAME" convolutions and nn.max_pool."""
    import flax.linen as nn

    class UserCNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            for f in (4, 6):
                x = nn.max_pool(nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x)), (2, 2), (2, 2))
            return nn.Dense(10)(x.reshape(x.shape[0], -1))

    model = UserCNN()
    x = jax.random.uniform(jax.random.fold_in(key, 1), (6, 8, 8, 1))
    return model, model.init(key, x[:1]), x, jnp.arange(6) % 10


@pytest.mark.parametrize("attack", ["pgd", "apgd", "apgd_targeted", "fab_targeted", "square", "pgd_generic"])
def test_user_cnn_attacks_plain_and_rewritten_agree(user_cnn, key, attack):
    model, v, x, y = user_cnn
    f = lambda z: model.apply(v, z)  # noqa: E731
    A = jadv.attacks
    kws = {"pgd": dict(eps=0.1, step_size=0.03, steps=5), "apgd": dict(eps=0.1, steps=8),
           "apgd_targeted": dict(eps=0.1, steps=5, n_targets=2), "fab_targeted": dict(eps=0.3, steps=6, n_targets=2),
           "square": dict(eps=0.1, queries=30)}

    def make():
        if attack == "pgd_generic":
            return lambda x, y: A.pgd_generic(lambda z: -jax.nn.log_softmax(f(z))[jnp.arange(6), y], x, key=key,
                                              eps=0.1, step_size=0.03, steps=5)
        return lambda x, y: getattr(A, attack)(f, x, y, key=key, **kws[attack])

    with _cpu_loops.canonical_convs_mode("off"):
        plain = jax.jit(make())(x, y)
    with _cpu_loops.canonical_convs_mode("on"):
        hlo = jax.jit(make()).lower(x, y).compile().as_text()
        rewritten = jax.jit(make())(x, y)
    assert "select-and-scatter" not in hlo
    np.testing.assert_allclose(rewritten, plain, atol=1e-6)
