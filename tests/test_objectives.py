"""Adversarial training objectives: hand-computed losses at fixed x_adv, where gradients flow,
BN-mode threading, exact reductions (ratio 0/1), FGSM-RS geometry, Free-AT replays, MBN/AdvProp
BN sets, errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jadv import models, train
from jadv.attacks.projections import init_point, project
from jadv.train.model_fns import ModelFns
from jadv.train.step import make_train_step

B, K = 8, 3
SHAPE = (B, 4, 4, 1)


def _setup(key, norm="none", hidden=(6,)):
    model = models.get("mlp", num_classes=K, hidden=hidden, norm=norm)
    variables = models.init_variables(model, key, SHAPE)
    kx, ky = jax.random.split(jax.random.fold_in(key, 1))
    x = jax.random.uniform(kx, SHAPE)
    y = jax.random.randint(ky, (B,), 0, K).astype(jnp.int32)
    return model, variables, x, y


def _stats(variables):
    return variables.get("batch_stats", {})


def _np_logits(model, variables, x):
    return np.asarray(model.apply(variables, x), np.float64)


def _np_ce(z, y):
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), np.asarray(y)]


def test_one_cross_entropy_with_label_smoothing(key):
    """train.cross_entropy is the attacks' cross-entropy; label smoothing matches optax's recipe."""
    from jadv import attacks
    assert train.cross_entropy is attacks.cross_entropy
    z = jax.random.normal(key, (B, K)) * 3.0
    y = jax.random.randint(jax.random.fold_in(key, 1), (B,), 0, K)
    np.testing.assert_allclose(train.cross_entropy(z, y), _np_ce(np.asarray(z, np.float64), y), rtol=1e-5)
    for a in (0.1, 0.5):
        ref = optax.softmax_cross_entropy(z, optax.smooth_labels(jax.nn.one_hot(y, K), a))
        np.testing.assert_allclose(train.cross_entropy(z, y, a), ref, rtol=1e-5, atol=1e-6)
    # bfloat16 logits are promoted: the loss is float32
    assert train.cross_entropy(z.astype(jnp.bfloat16), y).dtype == jnp.float32


def _np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _x_adv(key, x, eps):
    return jnp.clip(x + eps * jnp.sign(jax.random.normal(jax.random.fold_in(key, 9), x.shape)), 0, 1)


# -- hand-computed losses at a fixed x_adv ------------------------------------------------------
def test_pgd_at_loss_is_ce_at_x_adv(key):
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "pgd_at", "eps": 0.1})
    xa = _x_adv(key, x, 0.1)
    loss, (_, metrics) = obj.loss(ModelFns(model.apply), v["params"], {}, x, y, {"x_adv": xa, "eps": 0.1}, 0.0)
    np.testing.assert_allclose(loss, _np_ce(_np_logits(model, v, xa), y).mean(), rtol=1e-5)
    assert obj.settings["attack_bn_mode"] == "train" and obj.settings["step_size"] == pytest.approx(0.025)


def _trades_np(zc, za, y, beta):
    p, q = _np_softmax(zc), _np_softmax(za)
    kl = (p * (np.log(p) - np.log(q))).sum(1)
    return _np_ce(zc, y).mean() + beta * kl.mean()


def test_trades_loss_matches_hand_value_and_gradient_flows_through_both_logits(key):
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "trades", "eps": 0.1, "beta": 6.0})
    assert obj.settings["attack_bn_mode"] == "eval" and obj.settings["init"] == "normal_0.001"
    xa = _x_adv(key, x, 0.1)
    m = ModelFns(model.apply)
    inputs = {"x_adv": xa, "eps": 0.1}
    loss, _ = obj.loss(m, v["params"], {}, x, y, inputs, 0.0)
    np.testing.assert_allclose(loss, _trades_np(_np_logits(model, v, x), _np_logits(model, v, xa), y, 6.0),
                               rtol=1e-5)

    def hand(p, stop_clean=False, stop_adv=False):
        zc = model.apply({"params": p}, x)
        za = model.apply({"params": p}, xa)
        zk = jax.lax.stop_gradient(zc) if stop_clean else zc
        zak = jax.lax.stop_gradient(za) if stop_adv else za
        return jnp.mean(train.cross_entropy(zc, y)) + 6.0 * jnp.mean(train.objectives.kl_divergence(zk, zak))

    flat = lambda g: np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(g)])  # noqa: E731
    g_obj = flat(jax.grad(lambda p: obj.loss(m, p, {}, x, y, inputs, 0.0)[0])(v["params"]))
    g_full = flat(jax.grad(hand)(v["params"]))
    g_no_clean = flat(jax.grad(lambda p: hand(p, stop_clean=True))(v["params"]))
    g_no_adv = flat(jax.grad(lambda p: hand(p, stop_adv=True))(v["params"]))
    g_none = flat(jax.grad(lambda p: hand(p, True, True))(v["params"]))
    np.testing.assert_allclose(g_obj, g_full, rtol=1e-5, atol=1e-7)
    # the gradient is the sum of the two KL paths: full = (path via x') + (path via x) - CE part
    np.testing.assert_allclose(g_full, g_no_clean + g_no_adv - g_none, rtol=1e-4, atol=1e-6)
    assert np.abs(g_full - g_no_clean).max() > 1e-4   # cutting p(x) changes the gradient
    assert np.abs(g_full - g_no_adv).max() > 1e-4     # cutting p(x') changes it too


def _mart_np(zc, za, y, beta):
    q = _np_softmax(za)
    order = np.argsort(q, 1)[:, -2:]
    new_y = np.where(order[:, -1] == y, order[:, -2], order[:, -1])
    loss_adv = _np_ce(za, y).mean() - np.log(1.0001 - q[np.arange(len(y)), new_y] + 1e-12).mean()
    p = _np_softmax(zc)
    kl = (p * (np.log(p) - np.log(q + 1e-12))).sum(1)
    return loss_adv + beta * (kl * (1.0000001 - p[np.arange(len(y)), y])).mean()


def test_mart_loss_matches_hand_value_and_gradient_uses_clean_logits(key):
    model, v, x, y = _setup(key)
    y = np.asarray(y)
    obj = train.make_objective({"name": "mart", "eps": 0.1, "beta": 5.0})
    xa = _x_adv(key, x, 0.1)
    m = ModelFns(model.apply)
    inputs = {"x_adv": xa, "eps": 0.1}
    loss, _ = obj.loss(m, v["params"], {}, x, jnp.asarray(y), inputs, 0.0)
    np.testing.assert_allclose(loss, _mart_np(_np_logits(model, v, x), _np_logits(model, v, xa), y, 5.0),
                               rtol=1e-5)
    # constants of the reference code
    assert (train.objectives.MART_ONE_PLUS, train.objectives.MART_KL_ONE_PLUS,
            train.objectives.MART_LOG_EPS) == (1.0001, 1.0000001, 1e-12)

    def with_clean(p, stop):
        zc = model.apply({"params": p}, x)
        za = model.apply({"params": p}, xa)
        return train.mart_loss(jax.lax.stop_gradient(zc) if stop else zc, za, jnp.asarray(y), beta=5.0)

    g = jax.grad(lambda p: obj.loss(m, p, {}, x, jnp.asarray(y), inputs, 0.0)[0])(v["params"])
    g_full = jax.grad(lambda p: with_clean(p, False))(v["params"])
    g_cut = jax.grad(lambda p: with_clean(p, True))(v["params"])
    for a, b, c in zip(*(jax.tree_util.tree_leaves(t) for t in (g, g_full, g_cut))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(g_full),
                                                          jax.tree_util.tree_leaves(g_cut)))
    assert diff > 1e-4


def test_alp_loss_matches_hand_value(key):
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "alp", "eps": 0.1, "alp_weight": 0.3, "clean_weight": 0.25})
    xa = _x_adv(key, x, 0.1)
    loss, _ = obj.loss(ModelFns(model.apply), v["params"], {}, x, y, {"x_adv": xa, "eps": 0.1}, 0.0)
    zc, za = _np_logits(model, v, x), _np_logits(model, v, xa)
    expected = 0.25 * _np_ce(zc, y).mean() + 0.75 * _np_ce(za, y).mean() + 0.3 * ((zc - za) ** 2).sum(1).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_ratio_loss_is_mean_ce_over_clean_head_and_adversarial_tail(key):
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "ratio", "eps": 0.1, "ratio": 0.3})   # round(2.4) = 2 clean rows
    m = ModelFns(model.apply)
    inputs, _ = obj.prepare(m, v["params"], {}, x, y, key, jnp.float32(0))
    assert inputs["n_clean"] == 2 and inputs["x_adv"].shape == (B - 2, *SHAPE[1:])
    loss, _ = obj.loss(m, v["params"], {}, x, y, inputs, 0.0)
    batch = np.concatenate([np.asarray(x[:2]), np.asarray(inputs["x_adv"])])
    np.testing.assert_allclose(loss, _np_ce(_np_logits(model, v, jnp.asarray(batch)), y).mean(), rtol=1e-5)


def test_advprop_loss_and_bn_sets(key):
    model, v, x, y = _setup(key, norm="dual_batch")
    obj = train.make_objective({"name": "advprop", "eps": 0.1})
    m = ModelFns(model.apply)
    xa = _x_adv(key, x, 0.1)
    loss, (stats, _) = obj.loss(m, v["params"], v["batch_stats"], x, y, {"x_adv": xa, "eps": 0.1}, 0.0)
    zc, s_clean = m.logits(v["params"], v["batch_stats"], x, train=True, bn_set="clean")
    za, s_adv = m.logits(v["params"], v["batch_stats"], xa, train=True, bn_set="adv")
    np.testing.assert_allclose(loss, _np_ce(np.asarray(zc), y).mean() + _np_ce(np.asarray(za), y).mean(), rtol=1e-5)
    # the clean pass updates only bn_clean (with clean data), the adversarial pass only bn_adv
    for path, leaf in jax.tree_util.tree_flatten_with_path(stats)[0]:
        s = jax.tree_util.keystr(path)
        ref = s_clean if "bn_clean" in s else s_adv
        expected = [lf for p, lf in jax.tree_util.tree_flatten_with_path(ref)[0] if jax.tree_util.keystr(p) == s][0]
        np.testing.assert_allclose(leaf, expected, rtol=1e-6, atol=1e-7)
    # attack through the auxiliary BN: the eval-mode logits of the attack use bn_adv
    inputs, st = obj.prepare(m, v["params"], v["batch_stats"], x, y, key, jnp.float32(0))
    assert st is v["batch_stats"] and float(jnp.max(jnp.abs(inputs["x_adv"] - x))) <= 0.1 + 1e-6


@pytest.mark.slow
def test_mbn_routes_clean_rows_to_bn_clean_and_adversarial_rows_to_bn_adv(key):
    model, v, x, y = _setup(key, norm="dual_batch")
    obj = train.make_objective({"name": "mbn", "eps": 0.1, "ratio": 0.25})
    m = ModelFns(model.apply)
    n = 2  # round(0.25 * 8)
    xa = _x_adv(key, x[n:], 0.1)
    loss, (stats, _) = obj.loss(m, v["params"], v["batch_stats"], x, y, {"x_adv": xa, "n_clean": n, "eps": 0.1}, 0.0)
    zc, s_c = m.logits(v["params"], v["batch_stats"], x[:n], train=True, bn_set="clean")
    za, s_a = m.logits(v["params"], v["batch_stats"], xa, train=True, bn_set="adv")
    expected = (_np_ce(np.asarray(zc), y[:n]).sum() + _np_ce(np.asarray(za), y[n:]).sum()) / B
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    flat = dict((jax.tree_util.keystr(p), l) for p, l in jax.tree_util.tree_flatten_with_path(stats)[0])
    for ref, tag in ((s_c, "bn_clean"), (s_a, "bn_adv")):
        for p, leaf in jax.tree_util.tree_flatten_with_path(ref)[0]:
            if tag in jax.tree_util.keystr(p):
                np.testing.assert_allclose(flat[jax.tree_util.keystr(p)], leaf, rtol=1e-6, atol=1e-7)
    # changing the adversarial rows leaves bn_clean untouched
    _, (stats2, _) = obj.loss(m, v["params"], v["batch_stats"], x, y,
                              {"x_adv": jnp.clip(xa + 0.05, 0, 1), "n_clean": n, "eps": 0.1}, 0.0)
    for (p, a), (_, b) in zip(jax.tree_util.tree_flatten_with_path(stats)[0],
                              jax.tree_util.tree_flatten_with_path(stats2)[0]):
        if "bn_clean" in jax.tree_util.keystr(p):
            np.testing.assert_array_equal(a, b)
        else:
            assert not np.allclose(a, b)


def test_mbn_and_advprop_need_a_dual_bn_model(key):
    model, v, x, y = _setup(key, norm="batch")
    for name in ("mbn", "advprop"):
        obj = train.make_objective({"name": name, "eps": 0.1})
        with pytest.raises(ValueError, match="dual_batch"):
            obj(ModelFns(model.apply), v["params"], v["batch_stats"], x, y, key)


# -- exact reductions -----------------------------------------------------------------------------
def _one_step(obj, model, v, x, y, key):
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(0.1))
    new, metrics = jax.jit(make_train_step(obj))(state, {"image": x, "label": y}, key)
    return new, metrics


@pytest.mark.slow
def test_ratio_zero_is_pgd_at_and_ratio_one_is_standard(key):
    model, v, x, y = _setup(key, norm="batch")
    common = {"eps": 0.1, "steps": 2, "attack_bn_mode": "train"}
    pairs = [(train.make_objective({"name": "ratio", "ratio": 0.0, **common}), train.make_objective({"name": "pgd_at", **common})),
             (train.make_objective({"name": "ratio", "ratio": 1.0, **common}), train.make_objective({"name": "standard"}))]
    for mixed, ref in pairs:
        a, ma = _one_step(mixed, model, v, x, y, key)
        b, mb = _one_step(ref, model, v, x, y, key)
        assert float(ma["loss"]) == float(mb["loss"])
        chex.assert_trees_all_equal((a.params, a.batch_stats), (b.params, b.batch_stats))
    # and a ratio in between differs from both
    half, _ = _one_step(train.make_objective({"name": "ratio", "ratio": 0.5, **common}), model, v, x, y, key)
    assert not np.allclose(half.params["head"]["kernel"], a.params["head"]["kernel"])


# -- attacks inside objectives --------------------------------------------------------------------
def test_fgsm_rs_delta_stays_in_ball_and_box_and_matches_hand_step(key):
    model, v, x, y = _setup(key)
    x = x.at[:, 0].set(0.0).at[:, 1].set(1.0)   # rows on the box boundary
    eps = 0.2
    obj = train.make_objective({"name": "fgsm_rs", "eps": eps, "attack_bn_mode": "eval"})
    assert obj.settings["step_size"] == pytest.approx(1.25 * eps)
    m = ModelFns(model.apply)
    inputs, _ = obj.prepare(m, v["params"], {}, x, y, key, jnp.float32(0))
    xa = np.asarray(inputs["x_adv"])
    assert np.abs(xa - np.asarray(x)).max() <= eps + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    x0 = init_point(key, x, eps, "linf", "uniform")       # U(-eps, eps), clamped to the box
    g = jax.grad(lambda z: jnp.sum(train.cross_entropy(model.apply(v, z), y)))(x0)
    expected = project(x0 + 1.25 * eps * jnp.sign(g), x, eps, "linf")
    np.testing.assert_allclose(xa, expected, atol=1e-6)
    # a large alpha lands every coordinate that moved on the ball's face or the box
    obj2 = train.make_objective({"name": "fgsm_rs", "eps": eps, "attack_bn_mode": "eval", "step_size": 1.0})
    xa2 = np.asarray(obj2.prepare(m, v["params"], {}, x, y, key, jnp.float32(0))[0]["x_adv"])
    d = np.abs(xa2 - np.asarray(x))
    assert np.all((np.abs(d - eps) < 1e-6) | (xa2 == 0) | (xa2 == 1) | (d == 0))


def test_attack_bn_modes_thread_statistics_only_in_train_mode(key):
    model, v, x, y = _setup(key, norm="batch")
    m = ModelFns(model.apply)
    stats0 = v["batch_stats"]
    loss = lambda lg: train.cross_entropy(lg, y)  # noqa: E731
    kw = dict(key=key, eps=0.1, step_size=0.03, steps=3)
    for mode in ("eval", "train_no_update"):
        _, st = train.craft(m, v["params"], stats0, x, loss, bn_mode=mode, **kw)
        chex.assert_trees_all_equal(st, stats0)
    xa, st = train.craft(m, v["params"], stats0, x, loss, bn_mode="train", **kw)
    # hand loop: every attack forward in train mode updates the running statistics
    xh, sh = init_point(key, x, 0.1, "linf", "uniform"), stats0
    for _ in range(3):
        def f(z, s):
            lg, ns = m.logits(v["params"], s, z, train=True)
            return jnp.sum(loss(lg)), ns
        g, sh = jax.grad(f, has_aux=True)(xh, sh)
        xh = project(xh + 0.03 * jnp.sign(g), x, 0.1, "linf")
    np.testing.assert_allclose(xa, xh, atol=1e-6)
    chex.assert_trees_all_close(st, sh, rtol=1e-6, atol=1e-7)
    assert not np.allclose(st["norm_0"]["BatchNorm_0"]["mean"], stats0["norm_0"]["BatchNorm_0"]["mean"])


def test_eps_warmup_starts_at_zero_and_ramps_linearly(key):
    np.testing.assert_allclose([float(train.warmup_factor(e, 2.0)) for e in (0, 0.5, 2, 5)], [0, 0.25, 1, 1])
    assert float(train.warmup_factor(0.0, 0)) == 1.0
    model, v, x, y = _setup(key)
    obj = train.make_objective({"name": "pgd_at", "eps": 0.3, "eps_warmup_epochs": 2.0, "attack_bn_mode": "eval"})
    m = ModelFns(model.apply)
    for epoch, eps in ((0.0, 0.0), (1.0, 0.15), (3.0, 0.3)):
        inputs, _ = obj.prepare(m, v["params"], {}, x, y, key, jnp.float32(epoch))
        assert float(inputs["eps"]) == pytest.approx(eps)
        assert float(jnp.max(jnp.abs(inputs["x_adv"] - x))) <= eps + 1e-6
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_train_step(obj)


# -- Free-AT ---------------------------------------------------------------------------------------
def test_free_at_replays_each_batch_and_carries_delta_across_batches(key):
    model, v, x, y = _setup(key)
    eps, m_rep, lr = 0.1, 3, 0.2
    obj = train.make_objective({"name": "free_at", "eps": eps, "replays": m_rep})
    state = train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(lr),
                                    extra=obj.init_extra(SHAPE))
    step = jax.jit(make_train_step(obj))
    x2 = jnp.flip(x, 0)
    s1, met = step(state, {"image": x, "label": y}, key)
    s2, _ = step(s1, {"image": x2, "label": y}, key)

    # hand: m optimizer steps per batch, one backward for params and delta; delta persists
    params, delta = v["params"], jnp.zeros(SHAPE)
    for xb in (x, x2):
        for _ in range(m_rep):
            f = lambda p, d: jnp.mean(train.cross_entropy(model.apply({"params": p}, xb + d), y))  # noqa: E731
            gp, gd = jax.grad(f, argnums=(0, 1))(params, delta)
            delta = jnp.clip(jnp.clip(delta + eps * jnp.sign(gd), -eps, eps), -xb, 1 - xb)
            params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, gp)
        if xb is x:
            np.testing.assert_allclose(s1.extra["delta"], delta, atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(s2.params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    d = np.asarray(s2.extra["delta"])
    assert np.abs(d).max() <= eps + 1e-7 and np.abs(d).max() > 0
    assert (np.asarray(x2) + d).min() >= -1e-7 and (np.asarray(x2) + d).max() <= 1 + 1e-7
    assert int(s2.step) == 2 and float(met["finite"]) == 1.0
    with pytest.raises(ValueError, match="extra"):
        step(train.TrainState.create(apply_fn=model.apply, variables=v, tx=optax.sgd(lr)),
             {"image": x, "label": y}, key)


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg, match", [
    ({"name": "pgd_at"}, "needs objective.eps"),
    ({"name": "pgd_at", "eps": -0.1}, "eps"),
    ({"name": "pgd_at", "eps": 1.5}, "beyond"),
    ({"name": "pgd_at", "eps": 0.1, "steps": 0}, "steps"),
    ({"name": "pgd_at", "eps": 0.1, "attack_bn_mode": "batch"}, "attack_bn_mode"),
    ({"name": "pgd_at", "eps": 0.1, "norm": "l7"}, "norm"),
    ({"name": "pgd_at", "eps": 0.1, "norm": "l2", "init": "uniform"}, "init"),
    ({"name": "trades", "eps": 0.1, "beta": -1.0}, "beta"),
    ({"name": "ratio", "eps": 0.1, "ratio": 1.5}, "ratio"),
    ({"name": "fgsm_rs", "eps": 0.1, "steps": 3}, "one gradient step"),
    ({"name": "free_at", "eps": 0.1, "replays": 0}, "replays"),
    ({"name": "awp", "eps": 0.1, "awp_inner": "mart"}, "awp_inner"),
    ({"name": "madry"}, "unknown objective"),
])
def test_bad_objective_configs_are_clear_errors(cfg, match):
    with pytest.raises((ValueError, TypeError), match=match):
        train.make_objective(cfg)


def test_l2_default_start_is_uniform_radius():
    assert train.make_objective({"name": "pgd_at", "eps": 0.5, "norm": "l2"}).settings["init"] == "uniform_radius"


def test_base_config_builds_every_objective():
    for name in train.OBJECTIVES:
        cfg = train.base_config().objective
        cfg.name, cfg.eps = name, 0.1
        if name == "fgsm_rs":
            cfg.steps = None
        obj = train.make_objective(cfg)
        assert obj.name == name
        if name != "standard":
            assert obj.settings["attack_bn_mode"] in ("eval", "train_no_update", "train")


def test_one_bn_mode_vocabulary(key):
    """Objectives, craft, ModelFns and the curvature losses share jadv.train.model_fns.ATTACK_BN_MODES;
    the analyses' old name "batch" is refused everywhere with the new name."""
    from jadv._checks import BN_MODES
    from jadv.train.model_fns import ATTACK_BN_MODES
    assert ATTACK_BN_MODES == BN_MODES == ("eval", "train_no_update", "train")
    with pytest.raises(ValueError, match="objective.attack_bn_mode 'batch' is now called 'train_no_update'"):
        train.make_objective({"name": "pgd_at", "eps": 0.1, "attack_bn_mode": "batch"})
    model, v, x, y = _setup(key, norm="batch")
    m = ModelFns(model.apply)
    with pytest.raises(ValueError, match="is now called 'train_no_update'"):
        m.logits_fn(v["params"], _stats(v), bn_mode="batch")
    with pytest.raises(ValueError, match="is now called 'train_no_update'"):
        train.craft(m, v["params"], _stats(v), x, lambda lg: train.cross_entropy(lg, y), key=key, eps=0.1,
                    step_size=0.03, steps=1, bn_mode="batch")
    with pytest.raises(ValueError, match="unknown attack_bn_mode 'running'"):
        train.craft(m, v["params"], _stats(v), x, lambda lg: train.cross_entropy(lg, y), key=key, eps=0.1,
                    step_size=0.03, steps=1, bn_mode="running")
