"""AutoAttack's zero-gradient flag (the DLR gradient at the attack's start points, every batch), the
``checks`` switch of the evaluation drivers, and attacks that return the wrong shape."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jadv.attacks as A
from jadv.attacks import masking_checks as M
from jadv.attacks.losses import cross_entropy

K = 10


@pytest.fixture
def linear():
    """A linear model on 4x4x1 inputs with logits scaled so that the margins are in the hundreds."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(16, K)), jnp.float32)
    x = jnp.asarray(rng.uniform(0.2, 0.8, size=(24, 4, 4, 1)), jnp.float32)
    y = jnp.argmax(x.reshape(24, -1) @ w, -1).astype(jnp.int32)     # every point correct
    scale = 200.0

    def logits_fn(xa):
        return scale * (xa.reshape(xa.shape[0], -1) @ w)

    return logits_fn, w, x, y


def test_confident_linear_model_is_not_flagged_but_ce_gradient_vanishes(linear):
    f, _, x, y = linear
    margins = np.sort(np.asarray(f(x)), -1)
    assert np.median(margins[:, -1] - margins[:, -2]) > 100
    # the old check (CE gradient at the clean points) flags most of these points: softmax saturates
    g_ce = jax.grad(lambda xa: jnp.sum(cross_entropy(f(xa), y)))(x)
    assert np.mean(np.abs(np.asarray(g_ce)).reshape(len(x), -1).sum(1) == 0) > 0.5
    # AutoAttack's definition (DLR at APGD start points) flags none
    assert M.zero_gradient_fraction(f, x, y, key=jax.random.key(0), eps=0.1) == 0.0
    assert M.zero_gradient_fraction(f, x, y) == 0.0
    rep = A.robust_accuracy(f, x, y, [{"name": "fgsm", "eps": 0.1}], key=jax.random.key(0), batch_size=8,
                            progress=False, checks=True)
    assert rep["flags"]["zero_gradients"]["flag"] is False and rep["flags"]["zero_gradients"]["value"] == 0.0


def test_piecewise_constant_model_is_flagged(linear):
    _, w, x, y = linear

    def quantised(xa):                      # rounding has a zero derivative almost everywhere
        return (jnp.round(xa * 4) / 4).reshape(xa.shape[0], -1) @ w

    key = jax.random.key(1)
    assert M.zero_gradient_fraction(quantised, x, y, key=key, eps=0.1) == 1.0
    with pytest.warns(UserWarning, match="zero_gradients"):
        rep = A.robust_accuracy(quantised, x, y, [{"name": "fgsm", "eps": 0.1}], key=key, batch_size=8,
                                progress=True, checks=True)
    assert rep["flags"]["zero_gradients"]["flag"] and rep["flags"]["zero_gradients"]["value"] == 1.0


def test_zero_gradients_are_checked_on_every_batch(linear):
    """A model masked only on the points of the last batch is flagged, with the share of all points."""
    f, _, x, y = linear
    masked_rows = np.zeros(len(x), bool)
    masked_rows[-5:] = True
    x = np.asarray(x).copy()
    x[masked_rows] = np.clip(x[masked_rows] + 0.15, 0, 1)        # mean pixel > 0.6 marks them
    x = jnp.asarray(x)
    y = jnp.argmax(f(x), -1).astype(jnp.int32)

    def partly_masked(xa):
        z = f(xa)
        hide = jnp.mean(xa.reshape(xa.shape[0], -1), -1, keepdims=True) > 0.62
        return jnp.where(hide, jax.lax.stop_gradient(z), z)

    hidden = np.asarray(jnp.mean(x.reshape(len(x), -1), -1) > 0.62)
    assert hidden[:8].sum() == 0 and hidden.sum() > 0          # nothing masked in the first batch
    key = jax.random.key(2)
    rep = A.robust_accuracy(partly_masked, x, y, [{"name": "fgsm", "eps": 0.01}], key=key, batch_size=8,
                            progress=False, checks=True)
    z = rep["flags"]["zero_gradients"]
    assert z["flag"] and 0 < z["value"] < 1
    _, aa = A.autoattack(partly_masked, x, y, key=key, eps=0.01, version="custom", batch_size=8,
                         attacks=[{"name": "fgsm"}], verbose=False, checks=True)
    assert aa["flags"]["zero_gradients"]["flag"] and 0 < aa["flags"]["zero_gradients"]["value"] < 1


def test_checks_false_means_no_flags(linear):
    f, _, x, y = linear
    attacks = [{"name": "fgsm", "eps": 0.1}]
    off = A.robust_accuracy(f, x, y, attacks, key=jax.random.key(0), batch_size=8, progress=False, checks=False)
    on = A.robust_accuracy(f, x, y, attacks, key=jax.random.key(0), batch_size=8, progress=False, checks=True)
    assert "flags" not in off and "flags" in on
    assert off["robust_accuracy"] == on["robust_accuracy"]
    _, aa_off = A.autoattack(f, x, y, key=jax.random.key(0), eps=0.1, version="custom", attacks=attacks,
                             batch_size=8, verbose=False, checks=False)
    assert "flags" not in aa_off


def test_attack_returning_the_wrong_shape_is_a_clear_error(linear):
    f, _, x, y = linear

    def half(lf, xb, yb, k):
        return xb[: xb.shape[0] // 2]

    with pytest.raises(ValueError, match=r"attack 'half'.*shape \(4, 4, 4, 1\).*\(8, 4, 4, 1\)"):
        A.robust_accuracy(f, x, y, [half], key=jax.random.key(0), batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"returned an array of shape"):
        A.autoattack(f, x, y, key=jax.random.key(0), eps=0.1, version="custom", attacks=[half], batch_size=8,
                     verbose=False)
