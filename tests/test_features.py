"""Linear-model features: correlations, top-k, exact adversarial margins, exact AT."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from jadv.analysis import (feature_label_correlation, large_weight_share, linear_accuracy, linear_adversarial_margin,
                           linear_robust_accuracy, top_k_curve, top_k_features, train_linear, weight_correlation_rank)


def test_correlation_hand_computed():
    x = np.array([[0.0, 1.0, 5.0, 0.2], [1.0, 1.0, 3.0, 0.1], [2.0, 1.0, 1.0, 0.9], [3.0, 1.0, 0.0, 0.3]],
                 np.float32)
    y01 = np.array([0, 0, 1, 1])
    c = np.asarray(feature_label_correlation(x, y01))
    want = [np.corrcoef(x[:, j], y01)[0, 1] for j in (0, 2, 3)]
    np.testing.assert_allclose(c[[0, 2, 3]], want, rtol=1e-5)
    assert c[1] == 0.0  # constant feature
    np.testing.assert_allclose(np.asarray(feature_label_correlation(x, 2 * y01 - 1)), c, rtol=1e-6)
    # first feature: x = (0,1,2,3), y = (0,0,1,1): r = 2/sqrt(5) * ... hand value 0.894427
    assert c[0] == pytest.approx(0.8944272, rel=1e-5)


def test_top_k():
    corr = np.array([0.1, -0.9, 0.5, 0.9, 0.0])
    np.testing.assert_array_equal(top_k_features(corr, 3), [1, 3, 2])  # tie broken by index
    with pytest.raises(ValueError):
        top_k_features(corr, 6)
    with pytest.raises(ValueError):
        top_k_features(corr, 0)


def _brute_force_margin(w, b, x, y, eps, box):
    s = 1.0 if y > 0 else -1.0
    best = np.inf
    for signs in itertools.product((-1.0, 1.0), repeat=len(w)):
        delta = eps * np.array(signs)
        xa = np.clip(x + delta, 0, 1) if box else x + delta
        best = min(best, s * (w @ xa + b))
    return best


@pytest.mark.parametrize("box", [False, True])
def test_adversarial_margin_is_exact(box):
    rng = np.random.default_rng(0)
    w = rng.normal(size=4).astype(np.float32)
    b = np.float32(0.3)
    x = rng.uniform(size=(6, 4)).astype(np.float32)
    x[0, :2] = [0.0, 1.0]  # on the box faces
    y = np.array([0, 1, 1, 0, 1, 0])
    eps = 0.2
    m = np.asarray(linear_adversarial_margin(jnp.asarray(w), jnp.asarray(b), x, y, eps=eps, box=box))
    want = [_brute_force_margin(w, b, x[i], y[i], eps, box) for i in range(6)]
    np.testing.assert_allclose(m, want, rtol=1e-5, atol=1e-6)
    if not box:
        np.testing.assert_allclose(m, (2 * y - 1) * (x @ w + b) - eps * np.abs(w).sum(), rtol=1e-5)
    l2 = np.asarray(linear_adversarial_margin(jnp.asarray(w), jnp.asarray(b), x, y, eps=eps, norm="l2"))
    np.testing.assert_allclose(l2, (2 * y - 1) * (x @ w + b) - eps * np.linalg.norm(w), rtol=1e-5)


def test_accuracies_hand_computed():
    w, b = jnp.array([1.0, -1.0]), jnp.float32(0.0)
    x = np.array([[0.5, 0.1], [0.1, 0.5], [0.3, 0.3], [0.9, 0.0]], np.float32)
    y = np.array([1, 0, 1, 1])
    # logits 0.4, -0.4, 0.0 (error: tie), 0.9 -> 3/4 correct
    assert float(linear_accuracy(w, b, x, y)) == 0.75
    # eps = 0.25: ||w||_1 = 2, margin drop 0.5 -> only 0.9 survives
    assert float(linear_robust_accuracy(w, b, x, y, eps=0.25)) == 0.25
    # with the box, example 3 (x2 = 0 cannot go down) drops by 0.25 + 0 ... still robust; example 0:
    # x1 can drop 0.25, x2 can rise 0.25 -> 0.4 - 0.5 < 0
    assert float(linear_robust_accuracy(w, b, x, y, eps=0.25, box=True)) == 0.25


def _tsipras(rng, n, d, p, eta):
    y = rng.choice([-1, 1], size=n)
    x1 = np.where(rng.uniform(size=n) < p, y, -y)
    weak = eta * y[:, None] + rng.normal(size=(n, d))
    return np.concatenate([x1[:, None], weak], 1).astype(np.float32), y.astype(np.int32)


@pytest.mark.slow
def test_adversarial_training_uses_the_robust_feature(key):
    rng = np.random.default_rng(0)
    # Theorem 2.2 regime: eta = 4/sqrt(d), 2 eta <= eps < 2p - 1
    d, p, eta, eps = 100, 0.95, 0.4, 0.85
    x, y = _tsipras(rng, 2000, d, p, eta)
    xt, yt = _tsipras(rng, 2000, d, p, eta)
    ws, bs = train_linear(x, y, eps=0.0, steps=300, lr=0.05, key=key)
    wr, br = train_linear(x, y, eps=eps, steps=300, lr=0.05, key=key)
    # standard model: high clean accuracy, low robust; AT model: ~p for both
    assert float(linear_accuracy(ws, bs, xt, yt)) > 0.97
    assert float(linear_robust_accuracy(ws, bs, xt, yt, eps=eps)) < 0.1
    assert abs(float(linear_accuracy(wr, br, xt, yt)) - p) < 0.02
    assert abs(float(linear_robust_accuracy(wr, br, xt, yt, eps=eps)) - p) < 0.02
    assert abs(float(wr[0])) > 10 * float(jnp.max(jnp.abs(wr[1:])))


def test_top_k_curve():
    rng = np.random.default_rng(1)
    n, d = 400, 6
    y = rng.integers(0, 2, n)
    x = rng.uniform(0.3, 0.7, size=(n, d)).astype(np.float32)
    x[:, 4] = np.where(y == 1, 0.9, 0.1)  # one perfectly predictive, well-separated feature
    out = top_k_curve(x[:300], y[:300], x[300:], y[300:], [1, 3], eps_train=0.1, eps_test=0.1, steps=100, lr=0.1)
    assert list(out["k"]) == [1, 3]
    assert out["features"][0].tolist() == [4]
    assert out["standard"][0] == 1.0 and out["robust"][0] == 1.0
    assert np.all(out["robust"] <= out["standard"])


def test_weight_summaries_hand_computed():
    w = np.array([1.0, -0.5, 0.01, 0.0, 0.02])
    assert large_weight_share(w) == pytest.approx(3 / 5)  # 1, 0.5, 0.02 > 0.01
    assert large_weight_share(w, rel=0.6) == pytest.approx(1 / 5)
    assert large_weight_share(np.zeros(3)) == 0.0
    corr = np.array([0.9, 0.5, -0.1, 0.0, 0.2])
    assert weight_correlation_rank(w, corr) == pytest.approx(1.0)  # same ranking of |.|
    assert weight_correlation_rank(w, np.array([0.0, 0.2, 0.5, 0.9, 0.1])) < 0
    assert np.isnan(weight_correlation_rank(np.ones(5), corr))
    with pytest.raises(ValueError):
        weight_correlation_rank(w, corr[:3])
    with pytest.raises(ValueError):
        large_weight_share(w, rel=1.5)


@pytest.mark.slow
def test_binary_digits_at_model_is_sparser_and_more_robust():
    """Reproduction check 14 (partial) on scikit-learn's 8x8 digits, 5 vs 7, pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    m = (d.target == 5) | (d.target == 7)
    x = (d.data[m] / 16).astype(np.float32)
    y = (d.target[m] == 7).astype(np.int32)
    p = np.random.default_rng(0).permutation(len(y))
    x, y = x[p], y[p]
    xtr, ytr, xte, yte = x[:250], y[:250], x[250:], y[250:]
    ws, bs = train_linear(xtr, ytr, eps=0.0, steps=400, lr=0.05, l2_reg=1e-3)
    wr, br = train_linear(xtr, ytr, eps=0.2, steps=400, lr=0.05, l2_reg=1e-3)
    assert large_weight_share(wr) < 0.5 * large_weight_share(ws)
    assert float(linear_robust_accuracy(wr, br, xte, yte, eps=0.1)) > float(
        linear_robust_accuracy(ws, bs, xte, yte, eps=0.1))
    assert float(linear_accuracy(wr, br, xte, yte)) <= float(linear_accuracy(ws, bs, xte, yte))


def test_errors():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError):
        feature_label_correlation(x, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError):
        feature_label_correlation(x, np.array([1, 1, 1, 1]))
    with pytest.raises(ValueError):
        feature_label_correlation(x[None], np.array([0, 1, 0, 1]))
    with pytest.raises(TypeError):
        feature_label_correlation(x, np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError):
        train_linear(x, np.array([0, 1, 0, 1]), steps=0)
    with pytest.raises(ValueError):
        train_linear(x, np.array([0, 1, 0, 1]), steps=5, norm="l0")
    with pytest.raises(ValueError):
        linear_robust_accuracy(jnp.zeros(3), 0.0, x, np.array([0, 1, 0, 1]), eps=-0.1)
    with pytest.raises(ValueError):
        linear_robust_accuracy(jnp.zeros(3), 0.0, x, np.array([0, 1, 0, 1]), eps=0.1, norm="l2", box=True)
    with pytest.raises(ValueError):
        linear_accuracy(jnp.zeros(2), 0.0, x, np.array([0, 1, 0, 1]))
