"""Filter metrics of Gavrikov & Keuper (sparsity, variance entropy, orthogonality, KL shift)."""
import jax
import numpy as np
import pytest

from jadv.analysis import aggregate_by_depth, distribution_shift, filter_metrics, filters_of, layer_metrics

LOG9 = np.log10(9.0)


def test_all_zero_layer_is_sparse():
    m = filter_metrics(np.zeros((3, 3, 4, 5), np.float32))
    assert m["sparsity"] == 1.0 and m["n_sparse"] == 20 and m["n_nonsparse"] == 0
    assert np.isnan(m["variance_entropy"])


def test_all_ones_layer():
    m = filter_metrics(np.ones((3, 3, 4, 5), np.float32))
    assert m["sparsity"] == 0.0
    assert m["orthogonality"] == pytest.approx(0.0, abs=1e-12)
    assert m["variance_entropy"] == 0.0 and m["variance_entropy_raw"] == 0.0


def test_orthonormal_output_filters(key):
    cin, cout = 2, 8
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(cin * 9, cout)))
    rows = q.T * np.arange(1, cout + 1)[:, None]  # orthogonal, various norms
    kernel = rows.reshape(cout, cin, 3, 3).transpose(2, 3, 1, 0)
    m = filter_metrics(kernel)
    assert m["orthogonality"] == pytest.approx(1.0, abs=1e-9)
    # zero output rows stay zero and count as orthogonal to everything
    kernel2 = kernel.copy()
    kernel2[..., 0] = 0
    assert filter_metrics(kernel2)["orthogonality"] == pytest.approx(1.0, abs=1e-9)


def test_orthogonality_hand_computed():
    # two output filters with cosine 0.6 (c_in = 1): ortho = 1 - 2*0.6/2 = 0.4
    k = np.zeros((3, 3, 1, 2))
    k[0, 0, 0, 0] = 1.0
    k[0, 0, 0, 1], k[0, 1, 0, 1] = 0.6, 0.8
    assert filter_metrics(k)["orthogonality"] == pytest.approx(0.4)


def test_sparsity_threshold_hand_computed():
    k = np.zeros((3, 3, 1, 4))
    k[1, 1, 0, 0] = 100.0   # max|W| = 100 -> threshold 1
    k[0, 0, 0, 1] = 1.0     # ||f||_inf = 1 <= 1: sparse
    k[0, 0, 0, 2] = -1.5    # not sparse
    m = filter_metrics(k)   # filter 3 all zero: sparse
    assert m["n_sparse"] == 2 and m["sparsity"] == 0.5 and m["c_out"] == 4 and m["n_filters"] == 4


def test_entropy_range_and_random_is_high(key):
    k = np.random.default_rng(0).uniform(size=(3, 3, 128, 128)).astype(np.float32)
    m = filter_metrics(k)
    assert 0.9 < m["variance_entropy"] <= LOG9 + 1e-12
    assert 0.9 < m["variance_entropy_raw"] <= LOG9 + 1e-12
    # filters along one direction: entropy 0 (after L-inf scaling they are identical up to sign)
    rng = np.random.default_rng(1)
    d, c = rng.normal(size=9), rng.normal(size=50)
    k1 = (c[:, None] * d[None]).reshape(5, 10, 3, 3).transpose(2, 3, 1, 0)
    assert filter_metrics(k1)["variance_entropy_raw"] == pytest.approx(0.0, abs=1e-9)


def test_entropy_closed_form():
    # +-e_1, +-e_2 (4 filters): two equal variances -> log10(2)
    rows = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)
    f = np.zeros((4, 9))
    f[:, :2] = rows
    k = f.reshape(4, 1, 3, 3).transpose(2, 3, 1, 0)
    m = filter_metrics(k)
    assert m["variance_entropy"] == pytest.approx(np.log10(2))
    assert m["variance_entropy_raw"] == pytest.approx(np.log10(2))


def test_scale_invariance(key):
    k = np.random.default_rng(2).normal(size=(3, 3, 6, 7))
    k[..., 0, :2] *= 1e-4  # a few sparse filters
    a = filter_metrics(k)
    b = filter_metrics(-3.7 * k)
    for name in ("sparsity", "variance_entropy", "variance_entropy_raw", "orthogonality"):
        assert a[name] == pytest.approx(b[name], rel=1e-9, abs=1e-12), name
    assert a["n_sparse"] > 0


def test_filters_of_order_and_depth():
    z = lambda *s: np.zeros(s, np.float32)
    params = {"params": {
        "Conv_10": {"kernel": z(3, 3, 2, 2)}, "Conv_9": {"kernel": z(3, 3, 2, 2)},
        "Conv_0": {"kernel": z(7, 7, 3, 2), "bias": z(2)}, "Dense_0": {"kernel": z(4, 2)}}}
    names = [(n, d) for n, d, _ in filters_of(params)]
    assert names == [("Conv_0", 0), ("Conv_9", 1), ("Conv_10", 2)]
    # definition order = dict iteration order
    assert [n for n, _, _ in filters_of(params, order="definition")] == ["Conv_10", "Conv_9", "Conv_0"]
    lm = layer_metrics(params)  # the 7x7 stem is skipped but still counts for depth
    assert [(m["name"], m["depth"], m["depth_norm"]) for m in lm] == [("Conv_9", 1, 0.5), ("Conv_10", 2, 1.0)]
    assert len(layer_metrics(params, kernel_size=None)) == 3
    with pytest.raises(ValueError):
        list(filters_of(params, order="alphabetical"))
    with pytest.raises(ValueError):
        layer_metrics({"Dense_0": {"kernel": z(4, 2)}})


def test_filters_of_flax_resnet(key):
    from flax import linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(1, (1, 1), name="stem")(x)
            for i in range(11):
                x = nn.Conv(1, (1, 1))(x)
            return x

    params = Net().init(key, np.zeros((1, 1, 1, 1), np.float32))["params"]
    names = [n for n, _, _ in filters_of(params, order="definition")]
    assert names == ["stem"] + [f"Conv_{i}" for i in range(11)]
    natural = [n for n, _, _ in filters_of(jax.tree_util.tree_map(lambda a: a, params))]
    assert natural == [f"Conv_{i}" for i in range(11)] + ["stem"]


def _layer(depth, max_depth, n_filters, n_sparse, ent, ortho, c_out):
    return {"depth": depth, "max_depth": max_depth, "depth_norm": depth / max_depth, "n_filters": n_filters,
            "n_sparse": n_sparse, "n_nonsparse": n_filters - n_sparse, "variance_entropy": ent,
            "variance_entropy_raw": ent, "orthogonality": ortho, "c_out": c_out}


def test_aggregate_weights_hand_computed():
    layers = [_layer(0, 10, 27, 0, 0.5, 0.9, 9),
              _layer(1, 10, 10, 2, 0.4, 0.6, 2),   # depth_norm 0.1 -> (0.0, 0.1]
              _layer(3, 10, 30, 0, 0.8, 0.3, 6),   # 0.3 -> (0.2, 0.3] exactly on the edge
              _layer(10, 10, 40, 10, 0.9, 0.5, 4),
              _layer(10, 10, 10, 10, np.nan, 0.2, 1)]  # 1.0, all sparse, weight 0 for entropy
    groups = aggregate_by_depth(layers)
    assert [g["group"] for g in groups] == ["first", "(0.0, 0.1]", "(0.2, 0.3]", "(0.9, 1.0]"]
    last = groups[-1]
    assert last["sparsity"] == pytest.approx(20 / 50)
    assert last["variance_entropy"] == pytest.approx(0.9)
    assert last["orthogonality"] == pytest.approx((0.5 * 4 + 0.2 * 1) / 5)
    assert last["n_layers"] == 2
    g = groups[1]
    assert g["sparsity"] == pytest.approx(0.2) and g["variance_entropy"] == pytest.approx(0.4)
    # two layers in one decile, weights by non-sparse filters and c_out
    layers2 = [_layer(0, 20, 9, 0, 0.1, 0.1, 3), _layer(19, 20, 10, 5, 0.2, 0.4, 1),
               _layer(20, 20, 20, 5, 0.8, 0.8, 3)]
    g = aggregate_by_depth(layers2)[-1]
    assert g["variance_entropy"] == pytest.approx((0.2 * 5 + 0.8 * 15) / 20)
    assert g["orthogonality"] == pytest.approx((0.4 * 1 + 0.8 * 3) / 4)
    assert g["sparsity"] == pytest.approx(10 / 30)
    with pytest.raises(ValueError):
        aggregate_by_depth([])


def test_distribution_shift(key):
    rng = np.random.default_rng(3)
    ka, kb = rng.normal(size=(3, 3, 16, 16)), rng.uniform(size=(3, 3, 16, 16))
    assert distribution_shift(ka, ka) == 0.0
    assert distribution_shift([ka, 2 * ka], [ka]) == pytest.approx(0.0, abs=1e-12)  # L-inf scaling
    s = distribution_shift(ka, kb)
    assert s > 0.1
    assert distribution_shift(kb, ka) == pytest.approx(s)  # symmetric
    with pytest.raises(ValueError):
        distribution_shift(ka, np.zeros((5, 5, 2, 2)))
    with pytest.raises(ValueError):
        distribution_shift(ka, kb, bins=0)


def test_errors():
    with pytest.raises(ValueError, match="4-D"):
        filter_metrics(np.zeros((3, 3, 3)))
    with pytest.raises(TypeError):
        filter_metrics(np.zeros((3, 3, 3, 3), np.int32))
    with pytest.raises(ValueError):
        filter_metrics(np.full((3, 3, 1, 1), np.nan))
    with pytest.raises(ValueError):
        filter_metrics(np.ones((3, 3, 1, 1)), sparsity_eps=-1)
