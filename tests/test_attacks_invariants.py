"""Invariants of every attack on tiny random models: eps-ball, box, monotonicity, restarts, vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv import attacks as A
from jadv.attacks.pgd import _pgd_single, attack_objective, select_better
from jadv.attacks.square import square_p_schedule, square_side

K = 5
EPS = {"linf": 0.05, "l2": 0.3}


def tiny_cnn(key, k=K):
    """conv3x3(4) -> relu -> dense(k) on [B, 6, 6, 1] images."""
    k1, k2 = jax.random.split(key)
    wc = jax.random.normal(k1, (3, 3, 1, 4)) * 0.5
    wd = jax.random.normal(k2, (6 * 6 * 4, k)) * 0.3

    def logits_fn(x):
        h = jax.lax.conv_general_dilated(x, wc, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(h).reshape(x.shape[0], -1) @ wd

    return logits_fn


def tiny_mlp(key, k=K, d=36):
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (d, 16)) / np.sqrt(d) * 3
    w2 = jax.random.normal(k2, (16, k))
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


def _make_problem(kind):
    key = jax.random.key(1)
    f = tiny_cnn(key) if kind == "cnn" else tiny_mlp(key)
    x = jax.random.uniform(jax.random.key(2), (6, 6, 6, 1))
    y = jnp.argmax(f(x), -1).at[0].add(1) % K  # one clean error
    return f, x, y


@pytest.fixture(params=["cnn", "mlp"])
def problem(request):
    return _make_problem(request.param)


@pytest.fixture
def cnn_problem():
    return _make_problem("cnn")


def _norms(d, norm):
    return np.asarray(A.per_example_norm(d, norm))


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_attack_stays_in_ball_and_box(cnn_problem, norm, key):
    f, x, y = cnn_problem
    eps = EPS[norm]
    yt = (y + 2) % K

    def run(x):
        return {
            "fgsm": A.fgsm(f, x, y, eps=eps, norm=norm),
            "fgsm_rs": A.fgsm(f, x, y, eps=eps, norm=norm, key=key, random_start=True, step_size=1.25 * eps),
            "pgd": A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 2, steps=4, norm=norm, restarts=2,
                         init="uniform" if norm == "linf" else "uniform_radius"),
            "pgd_t": A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 2, steps=4, norm=norm, loss="margin",
                           init="zero", targeted=True, y_target=yt),
            "apgd": A.apgd(f, x, y, key=key, eps=eps, steps=8, norm=norm),
            "apgd_dlr": A.apgd(f, x, y, key=key, eps=eps, steps=8, norm=norm, loss="dlr", restarts=2),
            "apgd_t": A.apgd_targeted(f, x, y, key=key, eps=eps, steps=8, norm=norm, n_targets=2),
            "square": A.square(f, x, y, key=key, eps=eps, queries=30, norm=norm),
            "fab_t": A.fab_targeted(f, x, y, key=key, eps=eps, steps=8, norm=norm, n_targets=2),
        }

    outs = jax.jit(run)(x)
    for name, xa in outs.items():
        xa = np.asarray(xa)
        assert xa.shape == x.shape and xa.dtype == np.float32, name
        assert np.isfinite(xa).all(), name
        assert xa.min() >= 0.0 and xa.max() <= 1.0, name
        assert _norms(xa - x, norm).max() <= eps * (1 + 1e-5) + 1e-6, name
    # clean errors are returned unchanged by the AutoAttack-style attacks
    for name in ("apgd", "apgd_t", "square", "fab_t"):
        np.testing.assert_array_equal(np.asarray(outs[name])[0], np.asarray(x)[0], err_msg=name)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_loss_never_below_clean_and_targeted_margin_increases(problem, norm, key):
    f, x, y = problem
    eps = EPS[norm]
    yt = (y + 2) % K
    xa, xt = jax.jit(lambda x: (
        A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 3, steps=5, norm=norm, init="zero"),
        A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 3, steps=5, norm=norm, init="zero", loss="margin",
              targeted=True, y_target=yt)))(x)
    ce0, ce1 = A.cross_entropy(f(x), y), A.cross_entropy(f(xa), y)
    wrong = jnp.argmax(f(xa), -1) != y
    # the start point (x itself) is a candidate: the chosen point is misclassified or has loss >= clean
    assert bool(jnp.all(wrong | (ce1 >= ce0 - 1e-5)))
    assert float(jnp.mean(ce1 - ce0)) > 0
    tm0, tm1 = -A.margin(f(x), yt), -A.margin(f(xt), yt)  # z_t - max_{i != t} z_i
    assert bool(jnp.all(tm1 >= tm0 - 1e-5))
    assert float(jnp.mean(tm1 - tm0)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_restarts_never_worse_than_one(cnn_problem, norm, key):
    f, x, y = cnn_problem
    eps = EPS[norm]
    init = "uniform" if norm == "linf" else "ball"
    x1, x3 = jax.jit(lambda x: (
        A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 4, steps=3, norm=norm, init=init, restarts=1),
        A.pgd(f, x, y, key=key, eps=eps, step_size=eps / 4, steps=3, norm=norm, init=init, restarts=3)))(x)
    s1, s3 = jnp.argmax(f(x1), -1) != y, jnp.argmax(f(x3), -1) != y
    l1, l3 = A.cross_entropy(f(x1), y), A.cross_entropy(f(x3), y)
    assert bool(jnp.all(s3 | ~s1))                       # broken with 1 restart -> broken with 3
    assert bool(jnp.all(s3 | s1 | (l3 >= l1 - 1e-5)))    # else the loss is at least as high


def test_pgd_vmapped_restarts_equal_a_loop(cnn_problem, key):
    f, x, y = cnn_problem
    obj = attack_objective(f, y)
    kw = dict(eps=0.05, step_size=0.02, steps=3, norm="linf", init="uniform", select="best")
    xa = jax.jit(lambda x: A.pgd(f, x, y, key=key, restarts=3, eps=0.05, step_size=0.02, steps=3))(x)
    def loop(x):
        best = None
        for r in range(3):
            cand = _pgd_single(obj, x, jax.random.fold_in(key, r), kw["eps"], kw["step_size"], kw["steps"],
                               kw["norm"], kw["init"], kw["select"])
            best = cand if best is None else select_better(cand, best)
        return best[0]

    np.testing.assert_allclose(np.asarray(xa), np.asarray(jax.jit(loop)(x)), atol=1e-6)


@pytest.mark.slow
def test_apgd_restarts_and_eps_monotone(cnn_problem, key):
    f, x, y = cnn_problem
    a1, a2, big = jax.jit(lambda x: (A.apgd(f, x, y, key=key, eps=0.03, steps=10, restarts=1),
                                     A.apgd(f, x, y, key=key, eps=0.03, steps=10, restarts=2),
                                     A.apgd(f, x, y, key=key, eps=1.0, steps=10)))(x)
    s1, s2 = jnp.argmax(f(a1), -1) != y, jnp.argmax(f(a2), -1) != y
    assert bool(jnp.all(s2 | ~s1))
    assert bool(jnp.all(jnp.argmax(f(big), -1) != y))  # eps = 1 (the whole box) breaks everything


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_vmapped_eps_curve_equals_per_eps_calls(cnn_problem, attack, key):
    f, x, y = cnn_problem
    grid = jnp.array([0.0, 0.02, 0.05, 0.2])
    curve = jax.jit(lambda x: A.robust_accuracy_curve(f, x, y, key=key, eps_grid=grid, attack=attack, steps=4))(x)
    if attack == "pgd":
        single = jax.jit(lambda x, e: A.pgd(f, x, y, key=key, eps=e, step_size=2.5 * e / 4, steps=4))
    else:
        single = jax.jit(lambda x, e: A.apgd(f, x, y, key=key, eps=e, steps=4))
    singles = [float(jnp.mean(jnp.argmax(f(single(x, e)), -1) == y)) for e in grid]
    np.testing.assert_allclose(np.asarray(curve), singles, atol=1e-6)
    clean = float(jnp.mean(jnp.argmax(f(x), -1) == y))
    assert float(curve[0]) == pytest.approx(clean)


@pytest.mark.slow
def test_inits_distributions(key):
    x = jnp.full((3000, 2, 2, 3), 0.5)
    eps = 0.1
    d = 12
    u = A.init_point(key, x, eps, "linf", "uniform") - x
    assert float(jnp.abs(u).max()) <= eps + 1e-7
    assert float(jnp.mean(jnp.abs(u))) == pytest.approx(eps / 2, rel=0.02)
    ap = A.per_example_norm(A.init_point(key, x, eps, "linf", "apgd") - x, "linf")
    np.testing.assert_allclose(np.asarray(ap), eps, rtol=1e-5)
    sp = A.per_example_norm(A.init_point(key, x, eps, "l2", "sphere") - x, "l2")
    np.testing.assert_allclose(np.asarray(sp), eps, rtol=1e-5)
    ur = np.asarray(A.per_example_norm(A.init_point(key, x, eps, "l2", "uniform_radius") - x, "l2")) / eps
    assert ur.max() <= 1 + 1e-6 and np.mean(ur) == pytest.approx(0.5, abs=0.025)   # r ~ U(0, 1)
    ball = np.asarray(A.per_example_norm(A.init_point(key, x, eps, "l2", "ball") - x, "l2")) / eps
    assert ball.max() <= 1 + 1e-6 and np.mean(ball ** d) == pytest.approx(0.5, abs=0.025)  # P(r<=s) = s^d
    nz = A.init_point(key, x, eps, "linf", "normal_0.001") - x
    assert float(jnp.std(nz)) == pytest.approx(0.001, rel=0.05)
    np.testing.assert_array_equal(np.asarray(A.init_point(key, x, eps, "l2", "zero")), np.asarray(x))
    # inits are clipped to the box
    xb = jnp.zeros((10, 2, 2, 3))
    assert float(A.init_point(key, xb, eps, "linf", "uniform").min()) >= 0.0


def test_projection_l2_rescales_only_outside():
    x = jnp.full((2, 1, 1, 2), 0.5)
    xa = x + jnp.array([[0.3, 0.4], [0.03, 0.04]]).reshape(2, 1, 1, 2)  # norms 0.5 and 0.05
    p = A.project(xa, x, 0.1, "l2") - x
    np.testing.assert_allclose(np.asarray(p).reshape(2, 2), [[0.06, 0.08], [0.03, 0.04]], atol=1e-6)
    q = A.project(xa, x, 0.1, "linf") - x
    np.testing.assert_allclose(np.asarray(q).reshape(2, 2), [[0.1, 0.1], [0.03, 0.04]], atol=1e-6)


@pytest.mark.slow
def test_pgd_generic_trades_kl(cnn_problem, key):
    f, x, y = cnn_problem
    clean = f(x)
    xa = jax.jit(lambda x: A.pgd_generic(lambda xa: A.kl_divergence(clean, f(xa)), x, key=key, eps=0.05,
                                         step_size=0.01, steps=5, init="normal_0.001"))(x)
    assert float(A.per_example_norm(xa - x, "linf").max()) <= 0.05 + 1e-6
    x0 = A.init_point(key, x, 0.05, "linf", "normal_0.001")
    assert float(jnp.sum(A.kl_divergence(clean, f(xa)))) > float(jnp.sum(A.kl_divergence(clean, f(x0))))
    # stop_gradient: no gradient flows into x_adv through the attack
    g = jax.jit(jax.grad(lambda x: jnp.sum(A.pgd_generic(lambda xa: A.kl_divergence(f(x), f(xa)), x, key=key,
                                                 eps=0.05, step_size=0.01, steps=2, init="zero"))))(x)
    assert float(jnp.abs(g).max()) == 0.0


@pytest.mark.slow
def test_nnx_model_under_attack(key):
    from flax import nnx
    model = nnx.Linear(12, 4, rngs=nnx.Rngs(0))
    logits_fn = lambda x: model(x.reshape(x.shape[0], -1))  # noqa: E731
    x = jax.random.uniform(key, (3, 2, 2, 3))
    y = jnp.argmax(logits_fn(x), -1)
    xa = jax.jit(lambda x: A.pgd(logits_fn, x, y, key=key, eps=0.1, step_size=0.05, steps=3))(x)
    assert float(A.per_example_norm(xa - x, "linf").max()) <= 0.1 + 1e-6
    assert float(jnp.mean(A.cross_entropy(logits_fn(xa), y))) > float(jnp.mean(A.cross_entropy(logits_fn(x), y)))


def test_square_compiles_the_model_once_for_all_sides():
    """600 queries on 6x6 images use five square sides; the loop body reads its side from a table,
    so the lowered program holds three forwards (initial query, loop body, clean check), 2 dots each."""
    f = tiny_mlp(jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (4, 6, 6, 1))
    y = jnp.zeros(4, jnp.int32)
    sides = {square_side(square_p_schedule(i), 6, 6, 1, "linf") for i in range(600)}
    assert len(sides) >= 4
    for norm in ("linf", "l2"):
        hlo = jax.jit(lambda x, y: A.square(f, x, y, key=jax.random.key(0), eps=0.1, queries=600, norm=norm)
                      ).lower(x, y).as_text()
        assert hlo.count("stablehlo.dot_general") == 6, norm


@pytest.mark.parametrize("q", [5, 30, 100, 300])
def test_square_linf_step_changes_one_square_of_the_scheduled_side(q):
    """Iteration q of a (q+1)-query run follows the same q iterations as a q-query run (fold_in
    keys, no rescaled schedule): the pixels it changes lie in one window of side s(q), and across
    512 examples some accepted proposal spans the whole window."""
    h = 12  # margin 50 + x.w stays positive: every example stays active; proposals lowering x.w are kept
    w_lin = jax.random.normal(jax.random.key(5), (h * h, K))
    f = lambda z: (z.reshape(z.shape[0], -1) @ w_lin) * (jnp.arange(K) == 0) + 50.0 * (jnp.arange(K) == 0)  # noqa: E731
    x = jax.random.uniform(jax.random.key(6), (512, h, h, 1), minval=0.3, maxval=0.7)
    y = jnp.zeros(512, jnp.int32)
    run = lambda n: np.asarray(A.square(f, x, y, key=jax.random.key(7), eps=0.05, queries=n))  # noqa: E731
    changed = np.any(run(q + 1) != run(q), axis=-1)
    s = square_side(square_p_schedule(q), h, h, 1, "linf")
    spans = []
    for m in changed:
        if m.any():
            rows, cols = np.nonzero(m)
            spans.append(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)
    assert spans and max(spans) == s, (spans, s)
