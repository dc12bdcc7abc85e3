"""Study 5 (sharpness) on the smoke profile: outputs, their structure, cached reruns."""
import json
import os

import numpy as np




def test_curvature_fit_recovers_a_parabola(load_repo_module):
    study = load_repo_module("experiments/sharpness.py", "study_sharpness_unit")
    a = np.linspace(-1, 1, 21)
    assert abs(study._curvature(a, 3.0 * a ** 2 + a + 2, 0.25) - 6.0) < 1e-9


def test_sharpness_smoke(tmp_path, load_repo_module):
    study = load_repo_module("experiments/sharpness.py", "study_sharpness")
    config = load_repo_module("configs/sharpness.py", "config_sharpness").get_config("smoke")
    config.network.train.num_devices = 1      # the test session fakes 8 CPU devices; train on one
    wd = str(tmp_path / "study")
    record = study.run(config, wd)

    for f in ("results.json", "claims.json"):
        assert os.path.exists(os.path.join(wd, f))
    names = sorted(os.path.basename(f) for f in record["figures"])
    assert "logistic_toy_l2_lambda_max.png" in names
    for f in ("network_lambda_max_vs_eps.png", "network_trace_vs_eps.png", "network_density.png",
              "network_landscape_standard_vs_at.png", "network_landscape_awp.png"):
        assert f in names
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"

    res = json.load(open(os.path.join(wd, "results.json")))["results"]
    assert set(res) >= {"logistic_toy_l2", "logistic_toy_linf", "network"}
    net = res["network"]
    setup = net["setup"]
    assert setup["hessian"] == "fixed_xadv" and setup["bn_mode"] == "eval"
    assert len(setup["hessian_subset_indices"]) == config.network.hessian_n
    assert setup["hessian_subset_seed"] == config.network.hessian_seed
    tags = {"standard", "pgd_at_eps0.5", "awp_eps0.5"}
    assert set(net["models"]) == tags
    npts = config.network.landscape_points
    for tag in tags:
        m = net["models"][tag]
        assert np.isfinite(m["lambda_max"]) and np.isfinite(m["trace"])
        assert len(m["clean_curve"]) == len(m["robust_curve"]) == npts
        # the robust loss is a max over the eps-ball: never below the clean loss at the same weights
        assert all(r >= c - 1e-4 for c, r in zip(m["clean_curve"], m["robust_curve"]))
        assert 0 <= m["test_robust_acc"] <= m["test_clean_acc"] + 1e-9 <= 1 + 1e-9
    assert net["models"]["awp_eps0.5"]["train_results"]["objective"] == "awp"
    claims = json.load(open(os.path.join(wd, "claims.json")))
    ids = [c["id"] for c in claims]
    assert ids[:4] == ["5.1-toy", "5.1b-toy", "5.3-toy", "5.4-toy"]       # part 1 unchanged
    assert ids[4:] == ["5.5-digits", "5.6-digits"]
    assert all(c["verdict"] == "not run at this profile" for c in claims[4:])

    # rerun: cached parts are reused (files untouched) and give the same claims
    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    record2 = study.run(config, wd)
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes
    assert [c["measured"] for c in record2["claims"]] == [c["measured"] for c in claims]
