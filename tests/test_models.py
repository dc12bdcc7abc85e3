"""Models: shapes, registry errors, normalisation layers, dual batch norm semantics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jadv import models


@pytest.mark.parametrize("name, shape, kwargs, k", [
    ("linear", (2, 28, 28, 1), {}, 10),
    ("mlp", (2, 8, 8, 1), {"norm": "batch"}, 10),
    ("small_cnn", (2, 28, 28, 1), {}, 10),
    ("small_cnn", (2, 32, 32, 3), {"norm": "group", "widths": (8,), "conv1_filters": 8}, 7),
    ("preact_resnet18", (2, 32, 32, 3), {"width": 8}, 10),
    ("resnet20", (2, 32, 32, 3), {"norm": "dual_batch"}, 10),
    ("resnet", (2, 32, 32, 3), {"depth": 50, "width": 4}, 10),
    ("resnet", (2, 64, 64, 3), {"depth": 18, "width": 4, "stem": "imagenet"}, 5),
    ("wide_resnet", (2, 32, 32, 3), {"depth": 10, "width": 1}, 100),
])
def test_model_shapes(key, name, shape, kwargs, k):
    model = models.get(name, num_classes=k, **kwargs)
    variables = models.init_variables(model, key, shape)
    x = jax.random.uniform(key, shape)
    logits = model.apply(variables, x, train=False)
    assert logits.shape == (shape[0], k) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(logits)))


def test_small_cnn_first_conv_has_64_3x3_filters(key):
    model = models.get("small_cnn", num_classes=10)
    params = models.init_variables(model, key, (1, 32, 32, 3))["params"]
    assert params["conv1"]["kernel"].shape == (3, 3, 3, 64)


def test_input_normalisation_is_inside_the_model(key):
    """A model with mean/std applied to x equals the same weights without them applied to (x-m)/s."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    plain = models.get("small_cnn", num_classes=3, conv1_filters=4, widths=(), hidden=8)
    normed = models.get("small_cnn", num_classes=3, conv1_filters=4, widths=(), hidden=8, mean=mean, std=std)
    variables = models.init_variables(plain, key, (2, 8, 8, 3))
    x = jax.random.uniform(key, (2, 8, 8, 3))
    expected = plain.apply(variables, (x - jnp.array(mean)) / jnp.array(std))
    np.testing.assert_allclose(normed.apply(variables, x), expected, rtol=1e-5, atol=1e-6)


def test_dual_batch_norm_updates_only_the_selected_set(key):
    model = models.get("resnet20", num_classes=10, norm="dual_batch")
    variables = models.init_variables(model, key, (4, 16, 16, 3))
    x = jax.random.uniform(key, (4, 16, 16, 3))
    for chosen, other in (("clean", "adv"), ("adv", "clean")):
        _, updates = model.apply(variables, x, train=True, bn_set=chosen, mutable=["batch_stats"])
        old = variables["batch_stats"]["bn1"]["DualBatchNorm_0"]
        new = updates["batch_stats"]["bn1"]["DualBatchNorm_0"]
        assert not np.allclose(old[f"bn_{chosen}"]["mean"], new[f"bn_{chosen}"]["mean"])
        np.testing.assert_array_equal(old[f"bn_{other}"]["mean"], new[f"bn_{other}"]["mean"])


def test_dual_batch_norm_sets_give_different_outputs_once_statistics_differ(key):
    model = models.get("mlp", num_classes=3, hidden=(8,), norm="dual_batch")
    variables = models.init_variables(model, key, (4, 4, 4, 1))
    stats = variables["batch_stats"]
    stats = jax.tree_util.tree_map(lambda a: a, stats)
    stats["norm_0"]["DualBatchNorm_0"]["bn_adv"]["mean"] = stats["norm_0"]["DualBatchNorm_0"]["bn_adv"]["mean"] + 1.0
    v = {"params": variables["params"], "batch_stats": stats}
    x = jax.random.uniform(key, (4, 4, 4, 1))
    assert not np.allclose(model.apply(v, x, bn_set="clean"), model.apply(v, x, bn_set="adv"))


def test_bad_arguments_raise_clear_errors(key):
    with pytest.raises(ValueError, match="unknown model 'resnet99'"):
        models.get("resnet99")
    with pytest.raises(TypeError, match="bad arguments for model 'mlp'"):
        models.get("mlp", depth=3)
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        m = models.get("mlp", norm="layer")
        models.init_variables(m, key, (1, 4, 4, 1))
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        models.init_variables(models.get("cifar_resnet", depth=21), key, (1, 8, 8, 3))
    with pytest.raises(ValueError, match="unknown bn_set 'mixed'"):
        m = models.get("mlp", norm="dual_batch")
        v = models.init_variables(m, key, (2, 4, 4, 1))
        m.apply(v, jnp.zeros((2, 4, 4, 1)), bn_set="mixed")


def test_bfloat16_compute_keeps_float32_params(key):
    model = models.get("small_cnn", num_classes=10, conv1_filters=4, widths=(), hidden=8, dtype=jnp.bfloat16)
    variables = models.init_variables(model, key, (2, 8, 8, 1))
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables["params"]))
    assert model.apply(variables, jnp.zeros((2, 8, 8, 1))).dtype == jnp.float32
