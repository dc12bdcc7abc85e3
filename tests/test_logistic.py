"""Closed-form adversarial logistic regression (Yamada et al.; analysis-methods E.2)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv.analysis import logistic as lg


def toy(key, n=60, d=5, mu=0.5, informative=3):
    ky, kx = jax.random.split(key)
    y = jnp.where(jax.random.bernoulli(ky, 0.5, (n,)), 1.0, -1.0)
    m = jnp.zeros(d).at[:informative].set(mu)
    return y[:, None] * m + jax.random.normal(kx, (n, d), jnp.float64), y


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("bias", [None, 0.3])
def test_closed_form_hessian_matches_autodiff(key, norm, bias):
    with jax.enable_x64(True):
        X, y = toy(key)
        w = jax.random.normal(jax.random.fold_in(key, 7), (5,), jnp.float64)
        b = None if bias is None else jnp.float64(bias)
        bb = 0.0 if b is None else b
        loss = lambda v, eps: lg.adv_logistic_loss(v, X, y, eps=eps, norm=norm, b=b)
        hess = jax.jit(jax.hessian(loss))
        closed = jax.jit(lambda v, eps: jnp.stack(
            [lg.adv_logistic_hessian(v, X, y, eps=eps, norm=norm, kind=k, b=b)
             for k in ("exact", "fixed_xadv")]))
        # central finite differences of the autodiff gradient, all columns at once
        h = 1e-5
        g = jax.grad(loss)
        fd_fn = jax.jit(jax.vmap(lambda e, eps: (g(w + h * e, eps) - g(w - h * e, eps)) / (2 * h),
                                 in_axes=(0, None), out_axes=1))

        # fixed x_adv: craft the worst case at w, hold it, differentiate the clean loss
        def fixed(v, eps):
            wh = w / jnp.linalg.norm(w) if norm == "l2" else jnp.sign(w)
            X_adv = X - eps * y[:, None] * wh
            return jnp.mean(jax.nn.softplus(-y * (X_adv @ v + bb)))

        hess_fixed = jax.jit(jax.hessian(fixed))
        for eps in (0.0, 0.3, 1.0):
            H, Hf = closed(w, eps)
            assert rel(H, hess(w, eps)) < 1e-6
            assert rel(H, fd_fn(jnp.eye(5), eps)) < 1e-6
            assert rel(Hf, hess_fixed(w, eps)) < 1e-6
            assert abs(float(loss(w, eps)) - float(fixed(w, eps))) < 1e-12  # same value at w


def test_exact_minus_fixed_is_psd(key):
    with jax.enable_x64(True):
        X, y = toy(key, n=80, d=8)
        for s in range(3):
            w = jax.random.normal(jax.random.fold_in(key, s), (8,), jnp.float64)
            for eps in (0.1, 0.5, 2.0):
                D = (lg.adv_logistic_hessian(w, X, y, eps=eps, kind="exact")
                     - lg.adv_logistic_hessian(w, X, y, eps=eps, kind="fixed_xadv"))
                ev = np.linalg.eigvalsh(np.asarray(D))
                assert ev.min() >= -1e-10
                assert ev.max() > 1e-3  # the extra term is really there
                # its null direction is w itself
                assert float(jnp.linalg.norm(D @ w)) < 1e-10 * float(jnp.linalg.norm(w))


@pytest.mark.slow
def test_sharpness_increases_with_eps_on_toy_data(key):
    """d=20, n=4000, two overlapping Gaussians: lambda_max(exact) up, ||w*|| down (E.2 table)."""
    with jax.enable_x64(True):
        X, y = toy(key, n=4000, d=20, mu=0.5, informative=5)
        sweep = jax.jit(lambda X, y, e: lg.adv_logistic_sweep(X, y, e, iters=60))
        out = jax.tree.map(np.asarray, sweep(X, y, jnp.array([0.0, 0.2, 0.4])))
        assert np.all(out["grad_norm"] < 1e-8)  # really at the minimiser
        assert np.all(np.diff(out["lambda_max_exact"]) > 0)
        assert np.all(np.diff(out["lambda_max_fixed"]) > 0)
        assert np.all(np.diff(out["lambda_max_exact"] - out["lambda_max_fixed"]) > 0)  # gap grows
        assert np.all(np.diff(out["trace_exact"]) > 0)
        assert np.all(np.diff(out["w_norm"]) < 0)
        assert out["lambda_max_exact"][0] == pytest.approx(out["lambda_max_fixed"][0], rel=1e-12)
        # the vmapped sweep agrees with a single fit
        w1 = jax.jit(lambda X, y: lg.fit_adv_logistic(X, y, eps=0.2, iters=60))(X, y)
        np.testing.assert_allclose(np.asarray(w1), out["w"][1], atol=1e-8)


@pytest.mark.slow
def test_fit_reaches_minimiser_small(key):
    with jax.enable_x64(True):
        X, y = toy(key, n=200, d=4)
        fit = jax.jit(lambda eps, reg: lg.fit_adv_logistic(X, y, eps=eps, l2_reg=reg, iters=40))
        grad = jax.jit(jax.grad(lambda v, eps, reg: lg.adv_logistic_loss(v, X, y, eps=eps) + 0.5 * reg * v @ v))
        for eps, reg in ((0.0, 0.0), (0.3, 0.0), (0.3, 0.1)):
            w = fit(eps, reg)
            assert float(jnp.linalg.norm(grad(w, eps, reg))) < 1e-8


def test_linf_a_e_hessian_and_exact_equals_fixed(key):
    with jax.enable_x64(True):
        X, y = toy(key)
        w = jax.random.normal(key, (5,), jnp.float64)
        He = lg.adv_logistic_hessian(w, X, y, eps=0.2, norm="linf", kind="exact")
        Hf = lg.adv_logistic_hessian(w, X, y, eps=0.2, norm="linf", kind="fixed_xadv")
        np.testing.assert_array_equal(np.asarray(He), np.asarray(Hf))


def test_errors(key):
    X = jnp.ones((4, 3))
    y = jnp.array([1.0, -1.0, 1.0, -1.0])
    w = jnp.ones(3)
    with pytest.raises(ValueError, match="unknown norm"):
        lg.adv_logistic_loss(w, X, y, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="eps must be"):
        lg.adv_logistic_loss(w, X, y, eps=-0.1)
    with pytest.raises(ValueError, match="-1, \\+1"):
        lg.adv_logistic_loss(w, X, jnp.array([0, 1, 0, 1]), eps=0.1)
    with pytest.raises(ValueError, match="w must have shape"):
        lg.adv_logistic_loss(jnp.ones(4), X, y, eps=0.1)
    with pytest.raises(ValueError, match="y must be"):
        lg.adv_logistic_loss(w, X, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="unknown kind"):
        lg.adv_logistic_hessian(w, X, y, eps=0.1, kind="approx")
    with pytest.raises(ValueError, match="undefined at w = 0"):
        lg.adv_logistic_hessian(jnp.zeros(3), X, y, eps=0.1)
    with pytest.raises(ValueError, match="iters must be"):
        lg.fit_adv_logistic(X, y, eps=0.1, iters=0)
    with pytest.raises(ValueError, match="eps_grid"):
        lg.adv_logistic_sweep(X, y, jnp.array([[0.1]]))
    with pytest.raises(ValueError, match="eps_grid must be finite"):
        lg.adv_logistic_sweep(X, y, jnp.array([0.1, -0.2]))
