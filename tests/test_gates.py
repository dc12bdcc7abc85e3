"""Quality gates (jadv.studies.gates): a claim on models below their gates is inconclusive."""
import numpy as np
import pytest

from jadv.studies import gates as G
from jadv.studies.common import VERDICTS, claim

SPEC = G.gate_spec(clean=0.9, robust=0.5, init_cosine_max=0.5, source="test reference - 5 points")


def test_check_gate_met_and_missed():
    met = G.check_gate("m", SPEC, {"clean": 0.95, "robust": 0.5, "init_cosine": 0.2})
    assert met["met"] and [c["ok"] for c in met["checks"]] == [True, True, True]
    low = G.check_gate("m", SPEC, {"clean": 0.95, "robust": 0.49, "init_cosine": 0.2})
    assert not low["met"] and G.shortfall(low) == "m robust acc 0.490 < 0.50"
    still_init = G.check_gate("m", SPEC, {"clean": 0.95, "robust": 0.6, "init_cosine": 0.97})
    assert not still_init["met"] and "cos(layer, init) 0.970 > 0.50" in G.shortfall(still_init)


def test_missing_or_nan_measurement_fails_the_gate():
    for measured in ({"clean": 0.95, "init_cosine": 0.1}, {"clean": 0.95, "robust": float("nan"), "init_cosine": 0.1}):
        r = G.check_gate("m", SPEC, measured)
        assert not r["met"] and "robust acc not measured" in G.shortfall(r)


def test_unset_thresholds_are_not_checked():
    spec = G.gate_spec(clean=0.9, source="s")
    r = G.check_gate("vanilla", spec, {"clean": 0.91})
    assert r["met"] and [c["metric"] for c in r["checks"]] == ["clean"]


@pytest.mark.parametrize("bad, match", [
    ({"clean": 0.9}, "source"),
    ({"clean": 1.5, "source": "s"}, r"\[0, 1\]"),
    ({"source": "s"}, "at least one"),
    ({"clean": 0.9, "source": "s", "robus": 0.3}, "unknown gate key"),
])
def test_bad_specs_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        G.check_spec(bad, "here")


def _claim(verdict, gates, models=None):
    return claim("s", "1", "robust models do X", measured="x=1", verdict=verdict, source="paper",
                 gates=gates, models=models)


def test_claim_below_gate_is_inconclusive_with_shortfall():
    records = G.check_gates({"std": SPEC, "rob": SPEC},
                            {"std": {"clean": 0.95, "robust": 0.6, "init_cosine": 0.1},
                             "rob": {"clean": 0.40, "robust": 0.6, "init_cosine": 0.1}})
    for verdict in (True, False):
        c = _claim(verdict, records)
        assert c["verdict"] == "inconclusive" and c["gates"] == "missed"
        assert c["measured"].startswith("below gate: rob clean acc 0.400 < 0.90") and c["measured"].endswith("x=1")
    # the claim rests only on "std": its verdict rule decides
    assert _claim(True, records, ["std"])["verdict"] == "reproduced"
    assert _claim(False, records, ["std"])["verdict"] == "not reproduced"
    # not run stays not run
    assert _claim(None, records)["verdict"] == "not run at this profile"


def test_claim_above_gate_keeps_rule_verdict_and_records_gates():
    records = G.check_gates({"a": SPEC}, {"a": {"clean": 0.95, "robust": 0.6, "init_cosine": 0.1}})
    c = _claim(False, records)
    assert c["verdict"] == "not reproduced" and c["gates"] == "met" and c["gate_models"] == ["a"]
    assert c["gate_records"][0]["met"] and c["measured"] == "x=1"


def test_analytic_claim_needs_no_gate_and_unknown_model_is_an_error():
    c = _claim(True, None)
    assert c["gates"] == "none needed" and c["verdict"] == "reproduced"
    with pytest.raises(KeyError, match="no gate"):
        _claim(True, {}, ["ghost"])
    assert "inconclusive" in VERDICTS


def test_init_cosine():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 3, 3, 64))
    assert G.init_cosine(w0, w0) == pytest.approx(1.0)
    assert G.init_cosine(5.0 * w0, w0) == pytest.approx(1.0)          # scale-free
    assert abs(G.init_cosine(rng.normal(size=w0.shape), w0)) < 0.05  # unrelated
    mix = 0.6 * w0 / np.linalg.norm(w0) + 0.8 * (w := rng.normal(size=w0.shape)) / np.linalg.norm(w)
    assert G.init_cosine(mix, w0) == pytest.approx(0.6, abs=0.03)
    with pytest.raises(ValueError, match="shapes differ"):
        G.init_cosine(w0, w0[..., :3])


def test_initial_variables_rebuild_the_runs_start(tmp_path):
    """initial_variables(workdir) equals the state the loop starts from (a 0-lr run keeps it)."""
    import jax
    from jadv.train import base_config, initial_variables, load_trained, train_and_evaluate

    c = base_config()
    c.dataset, c.train_size, c.test_size, c.num_steps, c.batch_size = "digits", 64, 32, 1, 32
    c.model.name, c.model.kwargs = "small_cnn", {"conv1_filters": 4, "widths": (4,), "hidden": 8}
    c.optimizer.update(lr=0.0, weight_decay=0.0)
    c.num_devices = 1
    train_and_evaluate(c, str(tmp_path))
    _, trained, _ = load_trained(str(tmp_path))
    start = initial_variables(str(tmp_path))
    for a, b in zip(jax.tree_util.tree_leaves(trained["params"]), jax.tree_util.tree_leaves(start["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c2 = base_config()
    c2.update(c.to_dict())
    c2.seed = 1
    train_and_evaluate(c2, str(tmp_path / "seed1"))
    other = initial_variables(str(tmp_path / "seed1"))
    k0 = start["params"]["conv1"]["kernel"] if "conv1" in start["params"] else jax.tree_util.tree_leaves(start["params"])[0]
    k1 = other["params"]["conv1"]["kernel"] if "conv1" in other["params"] else jax.tree_util.tree_leaves(other["params"])[0]
    assert not np.array_equal(np.asarray(k0), np.asarray(k1))
