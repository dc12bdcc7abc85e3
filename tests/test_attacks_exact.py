"""Closed-form oracles for the attacks: losses by hand, linear models, exact projections, schedules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog, minimize

from jadv import attacks as A
from jadv.attacks.apgd import apgd_checkpoints
from jadv.attacks.square import square_p_schedule, square_side

SHAPE = (2, 2, 3)  # tiny NHWC images, D = 12


def _linear_binary(w, b):
    """2-class logits [0, w.x + b]; the margin of class 1 over class 0 is w.x + b."""
    w = jnp.asarray(w, jnp.float32)

    def logits_fn(x):
        s = x.reshape(x.shape[0], -1) @ w + b
        return jnp.stack([jnp.zeros_like(s), s], axis=-1)

    return logits_fn


@pytest.fixture
def linear_case():
    """Binary linear model and points in the interior of [0, 1], each classified correctly with a
    margin larger than any eps = 0.1 perturbation can remove (so attacks return their max-loss point)."""
    rng = np.random.default_rng(0)
    d = int(np.prod(SHAPE))
    w = rng.normal(size=d).astype(np.float32)
    w[np.abs(w) < 0.2] = 0.5  # no tiny coordinates (sign(w) well defined)
    y = np.array([0, 1, 0, 1, 0, 1], np.int32)
    s = np.where(y == 1, 1.0, -1.0)
    x = 0.5 + 0.15 * s[:, None] * np.sign(w)[None] + rng.uniform(-0.03, 0.03, size=(6, d))
    b = np.float32(-0.5 * w.sum())
    return w, b, jnp.asarray(x.reshape((6,) + SHAPE), jnp.float32), jnp.asarray(y), s


def _margin(logits_fn, x, y):
    z = logits_fn(x)
    s = jnp.where(y == 1, 1.0, -1.0)
    return s * (z[:, 1] - z[:, 0])


EPS = 0.1


def test_losses_by_hand():
    z = jnp.array([[3.0, 1.0, 2.0, 0.0]])
    assert A.dlr(z, jnp.array([0]))[0] == pytest.approx(-(3 - 2) / (3 - 1))
    assert A.dlr(z, jnp.array([2]))[0] == pytest.approx(-(2 - 3) / (3 - 1))
    assert A.dlr_targeted(z, jnp.array([0]), jnp.array([1]))[0] == pytest.approx(-(3 - 1) / (3 - 0.5 * (1 + 0)))
    assert A.margin(z, jnp.array([1]))[0] == pytest.approx(3 - 1)
    assert A.margin(z, jnp.array([0]))[0] == pytest.approx(2 - 3)
    p = np.exp([3, 1, 2, 0]) / np.exp([3, 1, 2, 0]).sum()
    assert A.cross_entropy(z, jnp.array([2]))[0] == pytest.approx(-np.log(p[2]), rel=1e-6)
    z2 = jnp.array([[0.5, -1.0, 0.0, 2.0]])
    q = np.exp([0.5, -1.0, 0.0, 2.0]) / np.exp([0.5, -1.0, 0.0, 2.0]).sum()
    assert A.kl_divergence(z, z2)[0] == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-5)
    assert A.kl_divergence(z, z)[0] == pytest.approx(0.0, abs=1e-7)


def test_loss_errors():
    with pytest.raises(ValueError, match="3 classes"):
        A.dlr(jnp.zeros((1, 2)), jnp.array([0]))
    with pytest.raises(ValueError, match="4 classes"):
        A.dlr_targeted(jnp.zeros((1, 3)), jnp.array([0]), jnp.array([1]))
    with pytest.raises(ValueError, match="unknown loss"):
        A.get_loss("hinge")


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_pgd_apgd_reach_linear_optimum(linear_case, norm, key):
    w, b, x, y, s = linear_case
    f = _linear_binary(w, b)
    # optimal perturbation: -eps * s * sign(w) (Linf) or -eps * s * w/||w|| (L2)
    direction = np.sign(w) if norm == "linf" else w / np.linalg.norm(w)
    opt = np.asarray(x) - EPS * s[:, None, None, None] * direction.reshape(SHAPE)[None]
    drop = EPS * (np.abs(w).sum() if norm == "linf" else np.linalg.norm(w))
    m0 = np.asarray(_margin(f, x, y))
    def all_attacks(x):
        outs = {
            "fgsm": A.fgsm(f, x, y, eps=EPS, norm=norm),
            "pgd": A.pgd(f, x, y, key=key, eps=EPS, step_size=EPS / 3, steps=8, norm=norm, init="zero"),
            "pgd_margin": A.pgd(f, x, y, key=key, eps=EPS, step_size=EPS / 3, steps=8, norm=norm, loss="margin",
                                init="zero"),
            "apgd": A.apgd(f, x, y, key=key, eps=EPS, steps=20, norm=norm, loss="ce"),
        }
        if norm == "linf":  # from a random start the Linf corner is still reached exactly (not so in L2)
            outs["pgd_rand"] = A.pgd(f, x, y, key=key, eps=EPS, step_size=EPS / 3, steps=10, norm=norm, restarts=2)
        return outs

    outs = jax.jit(all_attacks)(x)
    xa = outs.pop("apgd")
    for name, xa in outs.items():
        np.testing.assert_allclose(np.asarray(xa), opt, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(m0 - np.asarray(_margin(f, xa, y)), drop, rtol=1e-4, err_msg=name)
    # APGD-CE: for points it does not break it returns its max-loss iterate, the optimum (exactly the
    # corner in Linf; in L2 the random start on the sphere leaves a tiny orthogonal remainder)
    unbroken = np.asarray(jnp.argmax(f(xa), -1) == y)
    assert unbroken.all()
    tol = 2e-5 if norm == "linf" else 2e-4
    np.testing.assert_allclose(np.asarray(xa)[unbroken], opt[unbroken], atol=tol)
    np.testing.assert_allclose((m0 - np.asarray(_margin(f, xa, y)))[unbroken], drop, rtol=10 * tol)


def test_targeted_pgd_linear(linear_case, key):
    w, b, x, y, s = linear_case
    f = _linear_binary(w, b)
    yt = 1 - y
    xa = jax.jit(lambda x: A.pgd(f, x, y, key=key, eps=EPS, step_size=EPS / 3, steps=8, init="zero",
                                 targeted=True, y_target=yt, select="last"))(x)
    # moving toward the other class is the same as the untargeted optimum for 2 classes
    opt = np.asarray(x) - EPS * s[:, None, None, None] * np.sign(w).reshape(SHAPE)[None]
    np.testing.assert_allclose(np.asarray(xa), opt, atol=2e-5)


def test_apgd_checkpoint_schedule():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    # general formula: first window floor(0.22 N), shrinking by floor(0.03 N) down to floor(0.06 N)
    c = apgd_checkpoints(1000)
    assert list(np.diff([0] + c)) == [220, 190, 160, 130, 100, 70, 60, 60]
    assert apgd_checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_square_p_schedule_matches_reference():
    p0 = 0.8
    expect = {0: p0, 10: p0, 11: p0 / 2, 50: p0 / 2, 51: p0 / 4, 200: p0 / 4, 201: p0 / 8, 500: p0 / 8,
              501: p0 / 16, 1000: p0 / 16, 1001: p0 / 32, 2000: p0 / 32, 2001: p0 / 64, 4000: p0 / 64,
              4001: p0 / 128, 6000: p0 / 128, 6001: p0 / 256, 8000: p0 / 256, 8001: p0 / 512, 9999: p0 / 512}
    for it, p in expect.items():
        assert square_p_schedule(it, p0) == pytest.approx(p), it
    # resc_schedule=True maps the iteration to 10000-scale: it 2 of 1000 -> 20 -> p/2
    assert square_p_schedule(2, p0, n_queries=1000, resc_schedule=True) == pytest.approx(p0 / 2)
    # CIFAR-size squares: sqrt(0.8 * 1024) = 28.6 -> 29 (Linf), L2 odd and >= 3
    assert square_side(0.8, 32, 32, 3, "linf") == 29
    assert square_side(0.8 / 512, 32, 32, 3, "linf") == 1
    assert square_side(0.8 / 512, 32, 32, 3, "l2") == 3
    assert square_side(0.8 / 4, 32, 32, 3, "l2") % 2 == 1


@pytest.mark.parametrize("seed", range(4))
def test_fab_projection_is_exact(seed):
    """box_hyperplane_projection == the LP (Linf) / QP (L2) optimum, and the corner when infeasible."""
    rng = np.random.default_rng(seed)
    d = 7
    t = rng.uniform(0, 1, (1, d))
    w = rng.normal(size=(1, d))
    w[0, 0] = 0.0  # a zero coordinate must not move
    offset = rng.normal() * (0.4 if seed < 3 else 20.0)
    b = np.array([w[0] @ t[0] + offset])
    bounds = [(-t[0, i], 1 - t[0, i]) for i in range(d)]
    c = w[0] @ t[0] - b[0]
    corner = np.where(np.sign(c) * w[0] > 0, -t[0], 1 - t[0]) * (w[0] != 0)  # furthest move toward the plane
    feasible = abs(w[0] @ corner) >= abs(c)
    assert feasible == (seed < 3)
    for norm, method in [(n, m) for n in ("linf", "l2") for m in ("newton", "sort")]:
        dd = np.asarray(A.box_hyperplane_projection(jnp.asarray(t, jnp.float32), jnp.asarray(w, jnp.float32),
                                                    jnp.asarray(b, jnp.float32), norm, method=method))[0]
        assert dd[0] == 0.0
        assert np.all(t[0] + dd >= -1e-6) and np.all(t[0] + dd <= 1 + 1e-6)
        if norm == "linf":
            res = linprog(np.r_[np.zeros(d), 1.0],
                          A_ub=np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]]),
                          b_ub=np.zeros(2 * d), A_eq=np.r_[w[0], 0.0][None], b_eq=b - w[0] @ t[0],
                          bounds=bounds + [(0, None)])
            if feasible:
                assert res.status == 0
                assert np.abs(dd).max() == pytest.approx(res.fun, rel=1e-4, abs=1e-6)
        else:
            if feasible:
                r = minimize(lambda v: v @ v, corner * 0.5, bounds=bounds, tol=1e-12, method="SLSQP",
                             constraints=[{"type": "eq", "fun": lambda v: w[0] @ (t[0] + v) - b[0]}])
                assert r.success
                assert np.linalg.norm(dd) == pytest.approx(np.sqrt(r.fun), rel=1e-4, abs=1e-6)
        if feasible:
            assert w[0] @ (t[0] + dd) == pytest.approx(b[0], abs=1e-4)
        else:
            np.testing.assert_allclose(dd, corner, atol=1e-6)


def _projection_problem(seed, b, d, zero_frac=0.0, binary=False):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, (b, d))
    if binary:   # MNIST-like: most pixels exactly 0 or 1 (many tied breakpoints)
        u = rng.uniform(size=(b, d))
        t = np.where(u < 0.6, 0.0, np.where(u < 0.8, 1.0, t))
    w = rng.normal(size=(b, d)) * (rng.uniform(size=(b, d)) >= zero_frac)
    off = rng.normal(size=b) * 2.0
    off[-2:] = 0.0, 1e4                 # one row on the plane, one that cannot reach it in the box
    return [np.asarray(a, np.float32) for a in (t, w, np.sum(w * t, 1) + off)]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("binary", [False, True])
def test_fab_projection_newton_equals_the_sorted_solve(norm, binary):
    """The sort-free solve (the default) gives the sorted solve's projection on FAB-sized rows."""
    t, w, b = _projection_problem(int(binary), 64, 784, binary=binary)
    new = np.asarray(A.box_hyperplane_projection(t, w, b, norm))
    old = np.asarray(A.box_hyperplane_projection(t, w, b, norm, method="sort"))
    np.testing.assert_allclose(new, old, atol=1e-7, rtol=1e-5)
    jitted = np.asarray(jax.jit(lambda t, w, b: A.box_hyperplane_projection(t, w, b, norm))(t, w, b))
    np.testing.assert_array_equal(jitted, new)
    with pytest.raises(ValueError, match="method"):
        A.box_hyperplane_projection(t, w, b, norm, method="bisect")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_projection_newton_with_many_zero_gradient_coordinates(norm):
    """Rows with many w_i = 0 reach the plane exactly (the sorted L2 solve's tail sums cancel there
    and missed it: the reason it is not the default any more)."""
    t, w, b = _projection_problem(5, 32, 784, zero_frac=0.5)
    d = np.asarray(A.box_hyperplane_projection(t, w, b, norm))
    feasible = np.abs(np.sum(np.where(np.sign(np.sum(w * t, 1) - b)[:, None] * w > 0, -t, 1 - t) * w, 1)) >= \
        np.abs(np.sum(w * t, 1) - b)
    assert feasible[:-1].all() and not feasible[-1]
    np.testing.assert_allclose(np.sum(w * (t + d), 1)[:-1], b[:-1], atol=2e-4 * np.abs(b).max())
    assert np.all(d[w == 0] == 0) and np.all(t + d >= 0) and np.all(t + d <= 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_targeted_newton_and_sort_projections_agree(norm, key):
    rng = np.random.default_rng(3)
    W = jnp.asarray(rng.normal(size=(12, 24)), jnp.float32)
    V = jnp.asarray(rng.normal(size=(24, 5)), jnp.float32)
    f = lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ W) @ V  # noqa: E731
    x = jnp.asarray(rng.uniform(0, 1, size=(6,) + SHAPE), jnp.float32)
    y = jnp.argmax(f(x), -1)
    run = lambda p: jax.jit(lambda x: A.fab_targeted(f, x, y, key=key, eps=0.5 if norm == "l2" else 0.2,  # noqa: E731
                                                     steps=10, norm=norm, n_targets=3, projection=p))(x)
    np.testing.assert_allclose(run("newton"), run("sort"), atol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_linear_finds_minimal_adversarial(norm, key):
    """On a linear 4-class model the decision boundary to the target is a hyperplane: FAB-T's first
    step lands on it (with overshoot eta), so the returned distance is close to the exact minimum."""
    rng = np.random.default_rng(1)
    d = 12
    W = jnp.asarray(rng.normal(size=(d, 4)), jnp.float32)
    f = lambda x: x.reshape(x.shape[0], -1) @ W  # noqa: E731
    x = jnp.asarray(rng.uniform(0.4, 0.6, size=(5,) + SHAPE), jnp.float32)
    y = jnp.argmax(f(x), -1)
    xa = jax.jit(lambda x: A.fab_targeted(f, x, y, key=key, eps=3.0 if norm == "l2" else 1.0, steps=30,
                                          norm=norm, n_targets=1))(x)
    z = np.asarray(f(x))
    t = np.argsort(z, 1)[:, -2]
    wd = np.asarray(W)[:, t] - np.asarray(W)[:, np.asarray(y)]  # [d, B]
    gap = z[np.arange(5), np.asarray(y)] - z[np.arange(5), t]
    dual = np.abs(wd).sum(0) if norm == "linf" else np.linalg.norm(wd, axis=0)
    lower = gap / dual  # minimal distance to the y/t boundary (box not binding at this size)
    dist = np.asarray(A.per_example_norm(xa - x, norm))
    broken = np.asarray(jnp.argmax(f(xa), -1) != y)
    assert broken.all()
    assert np.all(dist >= lower * (1 - 1e-4))          # cannot beat the exact minimum of its hyperplane...
    assert np.all(dist <= lower * 1.05 * 1.01 + 1e-6)  # ...and is within the overshoot eta = 1.05
