"""Closed-form accuracies on the Tsipras et al. distribution against Monte Carlo and the theorems."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm as normal

from jadv.analysis import (averaging_classifier, linear_accuracy_theory, linear_robust_accuracy,
                           robust_feature_classifier, theorem_2_1_bound, theorem_2_2_check, theorem_2_2_conditions)

D, P = 1000, 0.95
ETA = 4 / np.sqrt(D)


def _sample(key, n, d, p, eta):
    """Eq. (3): y uniform +-1, x1 = y w.p. p, weak features N(eta y, 1)."""
    ky, k1, kw = jax.random.split(key, 3)
    y = jnp.where(jax.random.bernoulli(ky, 0.5, (n,)), 1, -1)
    x1 = jnp.where(jax.random.bernoulli(k1, p, (n,)), y, -y).astype(jnp.float32)
    weak = eta * y[:, None] + jax.random.normal(kw, (n, d))
    return jnp.concatenate([x1[:, None], weak], axis=1), y.astype(jnp.int32)


def test_averaging_classifier_closed_form():
    w = averaging_classifier(D)
    assert w.shape == (D + 1,) and float(w[0]) == 0.0
    assert float(linear_accuracy_theory(w, p=P, eta=ETA)) == pytest.approx(normal.cdf(4.0), abs=1e-6)
    rob = float(linear_accuracy_theory(w, p=P, eta=ETA, eps=2 * ETA))
    assert rob == pytest.approx(normal.cdf(-4.0), abs=1e-6) and rob < 1e-4


def test_robust_feature_classifier_is_p_for_eps_below_1():
    w = robust_feature_classifier(D)
    for eps in (0.0, 2 * ETA, 0.5, 0.99):
        assert float(linear_accuracy_theory(w, p=P, eta=ETA, eps=eps)) == pytest.approx(P, abs=1e-6)
    assert float(linear_accuracy_theory(w, p=P, eta=ETA, eps=1.0)) == 0.0  # margin 0 counts as error


def test_hand_derived_mixture():
    # w = (a, 1_d): acc = p Phi((eta d + a - eps(a + d))/sqrt d) + (1-p) Phi((eta d - a - eps(a + d))/sqrt d)
    d, p, eta, a, eps = 50, 0.8, 0.3, 2.0, 0.1
    w = jnp.concatenate([jnp.array([a]), jnp.ones(d)])
    want = (p * normal.cdf((eta * d + a - eps * (a + d)) / np.sqrt(d))
            + (1 - p) * normal.cdf((eta * d - a - eps * (a + d)) / np.sqrt(d)))
    assert float(linear_accuracy_theory(w, p=p, eta=eta, eps=eps)) == pytest.approx(want, rel=1e-5)
    # batch of classifiers
    ws = jnp.stack([w, -w])
    got = np.asarray(linear_accuracy_theory(ws, p=p, eta=eta))
    assert got.shape == (2,) and got[0] + got[1] == pytest.approx(1.0, abs=1e-5)  # sign(-z) = -sign(z)


@pytest.mark.slow
def test_closed_forms_match_monte_carlo(key):
    d, p, eta, n = 100, 0.9, 3 / np.sqrt(100), 20000
    x, y = _sample(key, n, d, p, eta)
    rng = np.random.default_rng(0)
    ws = [averaging_classifier(d), robust_feature_classifier(d),
          jnp.concatenate([jnp.array([3.0]), jnp.ones(d)]),
          jnp.asarray(rng.normal(size=d + 1), jnp.float32)]
    for w in ws:
        for eps in (0.0, eta, 2 * eta):
            theory = float(linear_accuracy_theory(w, p=p, eta=eta, eps=eps))
            mc = float(linear_robust_accuracy(w, jnp.float32(0.0), x, y, eps=eps))
            se = np.sqrt(max(theory * (1 - theory), 1e-4) / n)
            assert abs(mc - theory) < 4 * se, (w[:3], eps, theory, mc)


def test_theorem_2_1_frontier():
    # every w = (a, b 1_d) obeys robust <= p/(1-p) (1 - standard) at eps >= 2 eta
    angles = np.linspace(0, np.pi / 2, 41)
    ws = jnp.stack([jnp.concatenate([jnp.array([np.cos(t)]), np.sin(t) * jnp.ones(D)]) for t in angles])
    for eps in (2 * ETA, 3 * ETA):
        std = np.asarray(linear_accuracy_theory(ws, p=P, eta=ETA))
        rob = np.asarray(linear_accuracy_theory(ws, p=P, eta=ETA, eps=eps))
        bound = np.asarray(theorem_2_1_bound(std, p=P))
        assert np.all(rob <= bound + 1e-5)
    # below 2 eta the bound can fail: a pure weak-feature classifier at eps = 0.5 eta
    w = averaging_classifier(D)
    std = float(linear_accuracy_theory(w, p=P, eta=ETA))
    assert float(linear_accuracy_theory(w, p=P, eta=ETA, eps=0.5 * ETA)) > float(theorem_2_1_bound(std, p=P))
    assert float(theorem_2_1_bound(0.99, p=0.75)) == pytest.approx(0.03)


def test_theorem_2_2():
    assert theorem_2_2_conditions(d=D, p=P, eta=ETA, eps_train=0.5)["all"]
    assert not theorem_2_2_conditions(d=D, p=0.99, eta=ETA)["all"]
    assert not theorem_2_2_conditions(d=D, p=P, eta=ETA, eps_train=0.95)["all"]
    r = theorem_2_2_check(averaging_classifier(D), robust_feature_classifier(D), p=P, eta=ETA, eps=2 * ETA)
    assert r["part_i"] and r["part_ii"]
    assert r["adversarial_std"] == pytest.approx(P, abs=1e-6)
    r = theorem_2_2_check(robust_feature_classifier(D), averaging_classifier(D), p=P, eta=ETA, eps=2 * ETA)
    assert not r["part_i"] and not r["part_ii"]


def test_errors():
    w = averaging_classifier(5)
    with pytest.raises(ValueError):
        linear_accuracy_theory(w, p=0.3, eta=0.1)
    with pytest.raises(ValueError):
        linear_accuracy_theory(w, p=0.9, eta=0.1, eps=-1.0)
    with pytest.raises(ValueError):
        linear_accuracy_theory(jnp.ones(1), p=0.9, eta=0.1)
    with pytest.raises(ValueError):
        theorem_2_1_bound(0.9, p=1.0)
    with pytest.raises(ValueError):
        theorem_2_1_bound(1.5, p=0.9)
    with pytest.raises(ValueError):
        theorem_2_2_check(w, w, p=0.9, eta=0.1, eps=0.1)
    with pytest.raises(ValueError):
        averaging_classifier(0)
    with pytest.raises(TypeError):
        robust_feature_classifier(2.5)
