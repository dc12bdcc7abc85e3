"""Curvature tools against oracles: jax.hessian + eigh, finite differences, dense known spectra."""
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jadv.analysis import curvature as cv


# ---------------------------------------------------------------- tiny models (float64 inside x64)

def mlp_init(key, din=4, hidden=5, k=3):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {"w1": jax.random.normal(k1, (din, hidden)) / np.sqrt(din),
            "b1": 0.1 * jax.random.normal(k2, (hidden,)),
            "w2": jax.random.normal(k3, (hidden, k)) / np.sqrt(hidden),
            "b2": 0.1 * jax.random.normal(k4, (k,))}


def mlp_per_example(p, batch):
    x, y = batch
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    logits = h @ p["w2"] + p["b2"]
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]


def mlp_data(key, n=12, din=4, k=3):
    kx, ky = jax.random.split(key)
    return jax.random.normal(kx, (n, din)), jax.random.randint(ky, (n,), 0, k)


class TinyCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(3, (3, 3), padding="SAME", param_dtype=jnp.float64, dtype=jnp.float64)(x)
        x = jnp.tanh(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(3, param_dtype=jnp.float64, dtype=jnp.float64)(x)


def flat_hessian(loss_fn, params):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))(flat))


def jitted(solver, fn, params, **kw):
    """Run a solver under one jit (the library never jits itself; tests jit at the boundary)."""
    return jax.jit(lambda p: solver(fn, p, **kw))(params)


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def known_matrix(key, n=200, top=(5.0, 4.0, 3.0), bottom=(-2.0,)):
    bulk = np.linspace(-1.0, 1.0, n - len(top) - len(bottom))
    spec = np.concatenate([np.asarray(top), bulk, np.asarray(bottom)])
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n), jnp.float64)))
    return (q * spec) @ q.T, np.sort(spec)[::-1]


# ---------------------------------------------------------------- HVP

@pytest.mark.slow
def test_hvp_matches_hessian_and_finite_differences_mlp(key):
    with jax.enable_x64(True):
        params = mlp_init(key)
        batch = mlp_data(jax.random.fold_in(key, 1))
        loss_fn = lambda p: jnp.mean(mlp_per_example(p, batch))
        v = jax.tree.map(lambda a: jax.random.normal(jax.random.fold_in(key, a.size), a.shape), params)
        hv = ravel_pytree(jax.jit(partial(cv.hvp, loss_fn))(params, v))[0]
        vf, unravel = ravel_pytree(v)
        H = flat_hessian(loss_fn, params)
        assert rel(hv, H @ np.asarray(vf)) < 1e-10
        h = 1e-4
        g = jax.jit(lambda p: ravel_pytree(jax.grad(loss_fn)(p))[0])
        shift = lambda s: jax.tree.map(lambda a, b: a + s * b, params, v)
        fd = (g(shift(h)) - g(shift(-h))) / (2 * h)
        assert rel(hv, fd) < 1e-6


@pytest.mark.slow
def test_hvp_matches_hessian_and_finite_differences_cnn(key):
    with jax.enable_x64(True):
        model = TinyCNN()
        x = jax.random.uniform(key, (4, 5, 5, 2), jnp.float64)
        y = jnp.array([0, 1, 2, 1])
        params = model.init(key, x)["params"]
        loss_fn = lambda p: jnp.mean(
            -jnp.take_along_axis(jax.nn.log_softmax(model.apply({"params": p}, x)), y[:, None], 1))
        v = jax.tree.map(lambda a: jax.random.normal(jax.random.fold_in(key, a.size), a.shape, a.dtype), params)
        hv = ravel_pytree(jax.jit(partial(cv.hvp, loss_fn))(params, v))[0]
        H = flat_hessian(loss_fn, params)
        assert H.shape == (3 * 3 * 2 * 3 + 3 + 3 * 3 + 3,) * 2
        assert rel(hv, H @ np.asarray(ravel_pytree(v)[0])) < 1e-10
        h = 1e-4
        g = jax.jit(lambda p: ravel_pytree(jax.grad(loss_fn)(p))[0])
        shift = lambda s: jax.tree.map(lambda a, b: a + s * b, params, v)
        assert rel(hv, (g(shift(h)) - g(shift(-h))) / (2 * h)) < 1e-6


@pytest.mark.slow
def test_batched_hvp_equals_full_batch(key):
    with jax.enable_x64(True):
        params = mlp_init(key)
        x, y = mlp_data(jax.random.fold_in(key, 1), n=10)
        full = lambda p: jnp.mean(mlp_per_example(p, (x, y)))
        v = jax.tree.map(lambda a: jnp.ones_like(a) * 0.3, params)
        H = flat_hessian(full, params)
        ref = H @ np.asarray(ravel_pytree(v)[0])
        # 10 examples in batches of 4: the last batch is padded with 2 masked copies
        batches, weights = cv.stack_batches((x, y), 4)
        assert batches[0].shape == (3, 4, 4) and float(weights.sum()) == 10
        np.testing.assert_array_equal(np.asarray(weights[-1]), [1, 1, 0, 0])
        mvp = cv.make_data_hvp(mlp_per_example, batches, weights=weights)
        assert rel(ravel_pytree(mvp(params, v))[0], ref) < 1e-12
        # an unweighted average of per-batch means would be wrong (the 2-example batch counts double)
        per_batch = jnp.sum(weights, axis=1)
        naive = cv.data_hvp(mlp_per_example, params, v, batches,
                            weights=weights * (10.0 / 3.0) / per_batch[:, None])
        assert rel(ravel_pytree(naive)[0], ref) > 1e-3
        vals, _ = jitted(cv.top_eigenvalues, lambda u: cv.data_hvp(mlp_per_example, params, u, batches,
                                                                   weights=weights),
                         params, key=key, operator="matvec", k=1, iters=ref.shape[0], dtype=jnp.float64)
        top = np.linalg.eigvalsh(H)[-1]
        assert abs(float(vals[0]) - top) < 1e-9 * abs(top)


# ---------------------------------------------------------------- eigenvalues: dense known spectra

def test_lanczos_dense_known_spectrum(key):
    with jax.enable_x64(True):
        A, spec = known_matrix(key)
        A = jnp.asarray(A)
        x0 = jnp.zeros(A.shape[0])
        vals, vecs = jitted(cv.top_eigenvalues, lambda v: A @ v, x0, key=key, k=3, iters=80,
                                        operator="matvec", dtype=jnp.float64)
        np.testing.assert_allclose(np.asarray(vals), spec[:3], rtol=0, atol=1e-8)
        for i in range(3):
            assert float(jnp.linalg.norm(A @ vecs[i] - vals[i] * vecs[i])) < 1e-6
        out = jitted(cv.lanczos_tridiag, lambda v: A @ v, x0, key=key, order=80, operator="matvec",
                                 dtype=jnp.float64)
        assert abs(float(out["nodes"][-1]) - spec[0]) < 1e-8
        assert abs(float(out["nodes"][0]) - spec[-1]) < 1e-8
        np.testing.assert_allclose(float(out["weights"].sum()), 1.0, atol=1e-12)


def test_power_dense_known_spectrum(key):
    with jax.enable_x64(True):
        A, spec = known_matrix(key)
        A = jnp.asarray(A)
        vals, vecs = jitted(cv.top_eigenvalues, lambda v: A @ v, jnp.zeros(A.shape[0]), key=key, k=3,
                                        method="power", iters=1000, tol=1e-14, operator="matvec")
        np.testing.assert_allclose(np.asarray(vals), spec[:3], rtol=1e-8)
        for i in range(3):
            assert float(jnp.linalg.norm(A @ vecs[i] - vals[i] * vecs[i])) < 1e-5


def test_lanczos_breakdown_handled(key):
    """A matrix with 2 distinct eigenvalues: the Krylov space is exhausted after 2 steps."""
    with jax.enable_x64(True):
        n = 30
        q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n), jnp.float64)))
        spec = np.where(np.arange(n) < 5, 3.0, 1.0)
        A = jnp.asarray((q * spec) @ q.T)
        x0 = jnp.zeros(n)
        out = jitted(cv.lanczos_tridiag, lambda v: A @ v, x0, key=key, order=20, operator="matvec")
        assert int(out["steps"]) == 2
        assert np.all(np.isfinite(np.asarray(out["nodes"])))
        vals, vecs = jitted(cv.top_eigenvalues, lambda v: A @ v, x0, key=key, k=3, iters=20, operator="matvec")
        np.testing.assert_allclose(np.asarray(vals[:2]), [3.0, 1.0], atol=1e-10)
        assert np.isnan(float(vals[2])) and float(jnp.abs(vecs[2]).sum()) == 0.0


def test_float32_default_dtype(key):
    A = jnp.diag(jnp.arange(1.0, 21.0))
    vals, vecs = jitted(cv.top_eigenvalues, lambda v: A @ v, jnp.zeros(20), key=key, k=2, iters=20,
                                    operator="matvec")
    assert vals.dtype == jnp.float32 and vecs.shape == (2, 20)
    np.testing.assert_allclose(np.asarray(vals), [20.0, 19.0], rtol=1e-5)


# ---------------------------------------------------------------- eigenvalues: tiny networks

@pytest.mark.slow
@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigenvalues_tiny_mlp(key, method):
    with jax.enable_x64(True):
        params = mlp_init(key)
        batch = mlp_data(jax.random.fold_in(key, 1))
        loss_fn = lambda p: jnp.mean(mlp_per_example(p, batch))
        H = flat_hessian(loss_fn, params)
        ev = np.linalg.eigvalsh(H)
        if method == "lanczos":
            ref = np.sort(ev)[::-1][:3]
            vals, vecs = jitted(cv.top_eigenvalues, loss_fn, params, key=key, k=3, iters=H.shape[0])
        else:  # PyHessian's power iteration finds the largest-magnitude eigenvalues
            ref = np.sort(ev[np.argsort(-np.abs(ev))[:3]])[::-1]
            vals, vecs = jitted(cv.top_eigenvalues, loss_fn, params, key=key, k=3, method="power",
                                            iters=3000, tol=1e-12)
        np.testing.assert_allclose(np.asarray(vals), ref, rtol=1e-4)
        hvp_fn = jax.jit(partial(cv.hvp, loss_fn))
        for i in range(3):
            vi = jax.tree.map(lambda l: l[i], vecs)
            hv = ravel_pytree(hvp_fn(params, vi))[0]
            vf = ravel_pytree(vi)[0]
            assert abs(float(jnp.linalg.norm(vf)) - 1) < 1e-8
            assert float(jnp.linalg.norm(hv - vals[i] * vf)) < 1e-3 * abs(float(vals[0]))


@pytest.mark.slow
def test_top_eigenvalue_cnn_float32_with_float64_solver(key):
    """float32 model, float64 recurrences (x64 on): top eigenvalue to 1e-4 relative."""
    with jax.enable_x64(True):
        model = TinyCNN()
        x = jax.random.uniform(key, (6, 5, 5, 2), jnp.float64)
        y = jnp.array([0, 1, 2, 1, 0, 2])
        p64 = model.init(key, x)["params"]
        loss64 = lambda p: jnp.mean(
            -jnp.take_along_axis(jax.nn.log_softmax(model.apply({"params": p}, x)), y[:, None], 1))
        top = np.linalg.eigvalsh(flat_hessian(loss64, p64))[-1]
        p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p64)
        loss32 = lambda p: loss64(jax.tree.map(lambda a: a.astype(jnp.float64), p)).astype(jnp.float32)
        vals, _ = jitted(cv.top_eigenvalues, loss32, p32, key=key, k=1, iters=60, dtype=jnp.float64)
        assert vals.dtype == jnp.float64
        assert abs(float(vals[0]) - top) < 1e-4 * abs(top)


# ---------------------------------------------------------------- trace and density

@pytest.mark.slow
def test_hutchinson_within_three_standard_errors(key):
    with jax.enable_x64(True):
        A, spec = known_matrix(key, n=100)
        A = jnp.asarray(A)
        tr, se = jitted(cv.hessian_trace, lambda v: A @ v, jnp.zeros(100), key=key, samples=200,
                                  operator="matvec")
        assert float(se) > 0
        assert abs(float(tr) - spec.sum()) < 3 * float(se)
        params = mlp_init(key)
        batch = mlp_data(jax.random.fold_in(key, 1))
        loss_fn = lambda p: jnp.mean(mlp_per_example(p, batch))
        exact = np.trace(flat_hessian(loss_fn, params))
        tr, se = jitted(cv.hessian_trace, loss_fn, params, key=key, samples=300)
        assert abs(float(tr) - exact) < 3 * float(se)
        _, se1 = jitted(cv.hessian_trace, loss_fn, params, key=key, samples=1)
        assert np.isnan(float(se1))


@pytest.mark.slow
def test_spectral_density_unit_integral_and_matches_spectrum(key):
    with jax.enable_x64(True):
        A, spec = known_matrix(key)
        A = jnp.asarray(A)
        grid, dens, nodes, w = jitted(cv.spectral_density, lambda v: A @ v, jnp.zeros(200), key=key, order=80,
                                                   runs=8, grid_size=4000, operator="matvec",
                                                   return_nodes=True)
        assert grid.shape == dens.shape == (4000,) and nodes.shape == w.shape == (8, 80)
        assert abs(float(jnp.trapezoid(dens, grid)) - 1.0) < 1e-10
        assert np.all(np.asarray(dens) >= 0)
        np.testing.assert_allclose(np.asarray(w.sum(axis=1)), 1.0, atol=1e-12)
        assert float(grid[0]) < spec[-1] and float(grid[-1]) > spec[0]
        # Wasserstein-1 distance between the SLQ measure and the true spectrum: small, and the
        # quadrature mean matches tr(A)/n (each run is an unbiased estimate of it)
        xs = np.linspace(spec[-1] - 0.5, spec[0] + 0.5, 20001)
        cdf_true = np.searchsorted(np.sort(spec), xs, side="right") / spec.size
        fn, fw = np.asarray(nodes).ravel(), np.asarray(w).ravel() / 8
        o = np.argsort(fn)
        cdf_slq = np.cumsum(fw[o])[np.clip(np.searchsorted(fn[o], xs, side="right") - 1, 0, None)]
        cdf_slq = np.where(xs < fn[o][0], 0.0, cdf_slq)
        w1 = np.trapezoid(np.abs(cdf_true - cdf_slq), xs)
        assert w1 < 0.05
        assert abs(float((nodes * w).sum() / 8) - spec.mean()) < 0.1
        # mass of the density below -1.5 is the one eigenvalue at -2 (1/200), up to the estimate
        dx = float(grid[1] - grid[0])
        low = float(jnp.sum(jnp.where(grid < -1.5, dens, 0.0)) * dx)
        assert 0.0 < low < 0.03


@pytest.mark.slow
def test_spectral_density_tiny_network(key):
    with jax.enable_x64(True):
        params = mlp_init(key)
        batch = mlp_data(jax.random.fold_in(key, 1))
        loss_fn = lambda p: jnp.mean(mlp_per_example(p, batch))
        ev = np.linalg.eigvalsh(flat_hessian(loss_fn, params))
        grid, dens, nodes, w = jitted(cv.spectral_density, loss_fn, params, key=key, order=90, runs=2,
                                                   grid_size=2000, return_nodes=True)
        n = ev.size  # 43 < 90: the order is clipped and the quadrature is exact (nodes = eigenvalues)
        assert nodes.shape == (2, n)
        big = np.asarray(w[0]) > 1e-8
        for node in np.asarray(nodes[0])[big]:
            assert np.min(np.abs(ev - node)) < 1e-8 * max(1.0, np.abs(ev).max())
        assert abs(float(jnp.trapezoid(dens, grid)) - 1.0) < 1e-10


# ---------------------------------------------------------------- errors

def test_errors(key):
    params = {"w": jnp.ones((3,))}
    loss_fn = lambda p: jnp.sum(p["w"] ** 2)
    with pytest.raises(ValueError, match="k must be"):
        cv.top_eigenvalues(loss_fn, params, key=key, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        cv.top_eigenvalues(loss_fn, params, key=key, k=1.5)
    with pytest.raises(ValueError, match="k=4 exceeds"):
        cv.top_eigenvalues(loss_fn, params, key=key, k=4)
    with pytest.raises(ValueError, match="unknown method"):
        cv.top_eigenvalues(loss_fn, params, key=key, method="arnoldi")
    with pytest.raises(ValueError, match="unknown operator"):
        cv.top_eigenvalues(loss_fn, params, key=key, operator="hessian")
    with pytest.raises(ValueError, match="tol"):
        cv.top_eigenvalues(loss_fn, params, key=key, method="power", tol=-1.0)
    with pytest.raises(ValueError, match="samples must be"):
        cv.hessian_trace(loss_fn, params, key=key, samples=0)
    with pytest.raises(ValueError, match="order must be"):
        cv.spectral_density(loss_fn, params, key=key, order=0)
    with pytest.raises(ValueError, match="sigma2"):
        cv.spectral_density(loss_fn, params, key=key, sigma2=-1.0)
    with pytest.raises(ValueError, match="same pytree structure"):
        cv.hvp(loss_fn, params, {"v": jnp.ones(3)})
    with pytest.raises(ValueError, match="shape"):
        cv.hvp(loss_fn, params, {"w": jnp.ones(4)})
    with pytest.raises(TypeError, match="callable"):
        cv.hvp(3, params, params)
    with pytest.raises(TypeError, match="floating"):
        cv.top_eigenvalues(loss_fn, {"w": jnp.ones(3, jnp.int32)}, key=key)
    with pytest.raises(ValueError, match="the matvec output"):
        cv.top_eigenvalues(lambda v: {"x": v["w"]}, params, key=key, operator="matvec")
    with pytest.raises(ValueError, match="64-bit"):
        with jax.enable_x64(False):
            cv.top_eigenvalues(loss_fn, params, key=key, dtype=np.float64)
    with pytest.raises(ValueError, match="weights must have shape"):
        cv.data_hvp(lambda p, b: p["w"] @ b.T, params, params, jnp.ones((2, 4, 3)),
                    weights=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="batch_size must be"):
        cv.stack_batches(jnp.ones((5, 2)), 0)
