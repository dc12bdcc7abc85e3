"""Study 2 (tradeoff, Tsipras et al.) on the smoke profile: outputs, their structure, cached reruns."""
import json
import os

import numpy as np

FIGURES = ["accuracy_vs_eps.png", "accuracy_vs_size.png", "binary_corr_vs_weight.png", "binary_top_k.png",
           "binary_weight_maps.png", "interpolation.png", "large_eps.png", "saliency.png"]



def test_train_linear_many_matches_exact_worst_case(load_repo_module):
    """The vmapped linear trainer: one program, eps = 0 fits the data, a large eps collapses w to 0,
    and a mask keeps the dropped features at exactly 0."""
    study = load_repo_module("experiments/tradeoff.py", "study_tradeoff_unit")
    rng = np.random.default_rng(0)
    y = rng.choice([-1, 1], size=200)
    x = rng.normal(size=(200, 5)).astype(np.float32) + 0.5 * y[:, None]
    masks = np.ones((3, 5), np.float32)
    masks[2, 3:] = 0
    w, b = study.train_linear_many(x, y, [0.0, 5.0, 0.0], masks, steps=200, lr=0.05, l2_reg=0.0)
    assert w.shape == (3, 5) and b.shape == (3,)
    assert np.mean(np.sign(x @ w[0] + b[0]) == y) > 0.8
    assert np.abs(w[1]).max() < 0.05                      # eps beyond the data scale: w* = 0
    assert np.all(w[2, 3:] == 0) and np.abs(w[2, :3]).min() > 0


def test_tradeoff_smoke(tmp_path, load_repo_module):
    study = load_repo_module("experiments/tradeoff.py", "study_tradeoff")
    config = load_repo_module("configs/tradeoff.py", "config_tradeoff").get_config("smoke")
    wd = str(tmp_path / "study")
    record = study.run(config, wd)

    assert os.path.exists(os.path.join(wd, "results.json")) and os.path.exists(os.path.join(wd, "claims.json"))
    assert sorted(os.path.basename(f) for f in record["figures"]) == FIGURES
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"

    res = json.load(open(os.path.join(wd, "results.json")))["results"]
    th = res["theory"]
    assert abs(th["averaging"]["standard_theory"] - th["averaging"]["phi_eta_sqrt_d"]) < 1e-4
    assert th["sweep"]["violations_theory"] == 0
    assert len(th["trained"]) == th["models_per_program"] == len(config.theory.eps_train)
    bi = res["binary"]
    assert len(bi["models"]["w"]) == len(config.binary.eps_train)
    assert len(bi["top_k"]["at_model"]["standard"]) == len(bi["top_k"]["k"])
    assert bi["models_per_program"]["top_k"] == 2 * len(bi["top_k"]["k"])
    for norm in ("linf", "l2"):
        sw = res["sweeps"][norm]
        n = len(config.sweep.sizes) * len(config.sweep.eps[norm]) + (norm == "linf")   # + proxy model
        assert sw["models_per_program"] == n == len(sw["standard_accuracy"]) == len(sw["robust_accuracy"])
        assert all(0 <= r <= a <= 1 for a, r in zip(sw["standard_accuracy"], sw["robust_accuracy"]))
    sal = res["saliency"]
    assert set(sal["alignment_mean"]) == {"standard", "linf-AT eps=0.1", "l2-AT eps=0.5"}
    assert all(-1 <= v <= 1 for v in sal["alignment_mean"].values())
    claims = json.load(open(os.path.join(wd, "claims.json")))
    assert [c["id"].split("-")[0] for c in claims] == ["2.11", "2.12", "2.13", "2.14", "2.15", "2.16", "2.17", "2.17b"]
    assert all(c["study"] == "tradeoff" and c["verdict"] in ("reproduced", "not reproduced") for c in claims)

    # rerun: cached parts are reused (files untouched) and give the same claims
    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    record2 = study.run(config, wd)
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes
    assert [c["measured"] for c in record2["claims"]] == [c["measured"] for c in claims]
    assert sorted(record2["figures"]) == sorted(record["figures"])
