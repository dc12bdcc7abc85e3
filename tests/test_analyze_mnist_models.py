"""Smoke test of experiments/analyze_mnist_models.py (issue #6, evidence 3) on the embedded 8x8
digits: two tiny models (standard and PGD-AT) are trained here with jadv's training loop, so the
test needs neither ../shared/data nor runs/."""
import json
import os

import numpy as np
import pytest

FIGURES = {"saliency.png", "large_eps.png", "interpolation.png", "binary_weight_maps.png",
           "binary_corr_vs_weight.png", "binary_top_k.png"}


def _train(load_repo_module, workdir, adversarial: bool):
    from jadv.train import train_and_evaluate

    config = load_repo_module("configs/digits_standard.py", "config_digits_standard").get_config("smoke")
    config.model.name = "mlp"                      # compiles faster than the small CNN
    config.model.kwargs = {"hidden": (32,)}
    config.num_steps, config.log_every_steps, config.test_size, config.num_devices = 12, 12, 64, 1
    if adversarial:
        config.objective.update(name="pgd_at", eps=0.1, steps=2, step_size=0.05, norm="linf", init="uniform")
    train_and_evaluate(config, workdir)
    return workdir


@pytest.mark.slow      # ~20 s of CPU: trains two tiny models, then runs every part of the script
def test_analyze_mnist_models_smoke(tmp_path, load_repo_module):
    script = load_repo_module("experiments/analyze_mnist_models.py", "analyze_mnist_models")
    std = _train(load_repo_module, str(tmp_path / "std"), adversarial=False)
    rob = _train(load_repo_module, str(tmp_path / "rob"), adversarial=True)
    out = str(tmp_path / "out")
    res = script.main(["--dataset", "digits", "--standard_workdir", std, "--robust_workdir", rob, "--which", "best",
                       "--out", out, "--n_examples", "40", "--n_show", "3", "--check_n", "8", "--check_steps", "1",
                       "--check_eps", "0.1", "--n_large", "6", "--large_steps", "2", "--l2_eps", "1.5",
                       "--linf_eps", "0.3", "--l2_eps_random_start", "1.5", "--n_interp", "2", "--alphas", "0,0.5,1", "--binary_eps", "0,0.1",
                       "--binary_steps", "10", "--ks", "4,1000"])

    assert set(os.listdir(out)) == FIGURES | {"results.json"}
    for f in FIGURES:
        assert open(os.path.join(out, f), "rb").read(4) == b"\x89PNG"
    on_disk = json.load(open(os.path.join(out, "results.json")))
    assert on_disk["command"].startswith("python experiments/analyze_mnist_models.py --dataset digits")
    assert set(on_disk["figures"]) == FIGURES and on_disk["wall_time_s"] > 0

    # no best checkpoint in these runs: the fallback to the latest one is recorded
    for name in ("standard", "robust"):
        m = res["models"][name]
        assert m["which_requested"] == "best" and m["which_used"] == "latest" and m["fallback"]
        assert 0 <= res["check"][name]["clean_accuracy"] <= 1
        assert 0 <= res["check"][name]["pgd1_linf0.1_accuracy"] <= res["check"][name]["clean_accuracy"] + 1e-9
    assert res["models"]["robust"]["objective"] == "pgd_at" and res["models"]["robust"]["train_eps"] == 0.1
    assert res["models"]["standard"]["train_eps"] is None

    s = res["saliency"]
    assert s["n"] == 40 == res["counts"]["saliency_images"]
    for name in ("standard", "robust"):
        assert -1 <= s["edge_alignment"][name]["mean"] <= 1 and s["edge_alignment"][name]["std"] >= 0
        assert 0 <= s["ink_share_of_abs_grad"][name]["mean"] <= 1
    assert 0 <= s["edge_alignment_paired_difference_robust_minus_standard"]["share_robust_higher"] <= 1

    le = res["large_eps"]
    assert le["n"] == 6 and all(0 <= v <= 1 for v in le["clean_baseline"].values())
    assert [(a["norm"], a["eps"], a["init"]) for a in le["attacks"]] == [("l2", 1.5, "zero"), ("linf", 0.3, "zero"),
                                                                         ("l2", 1.5, "uniform")]
    for a in le["attacks"]:
        for name in ("standard", "robust"):
            r = a["by_model"][name]
            for k in ("own_target_rate", "other_model_target_rate", "nearest_class_mean_target_rate"):
                assert 0 <= r[k] <= 1
            assert -1 <= r["cos_delta_to_class_mean_difference"] <= 1
            assert 0 <= r["share_of_abs_change_on_ink"] <= 1
            assert r["ink_added_on_background"] >= 0 and r["ink_removed_on_ink"] >= 0
            bound = a["eps"] if a["norm"] == "l2" else a["eps"] * 8.0   # 8x8 images: L2 <= 8 L-inf
            assert 0 < r["mean_l2"] <= bound + 1e-4
            if a["norm"] == "linf":
                assert r["mean_linf"] <= a["eps"] + 1e-5

    b = res["binary"]
    assert b["features"] == 64 and b["n_test"] > 0
    assert [m["eps_train"] for m in b["models"]] == [0.0, 0.1]
    for m in b["models"]:
        assert 0 <= m["robust_accuracy_eps0.1"] <= m["robust_accuracy_eps0.1_box"] + 1e-9 <= 1 + 1e-9
        assert 0 <= m["robust_accuracy_eps0.1_box"] <= m["standard_accuracy"] + 1e-9
        assert 0 <= m["large_weight_share"] <= 1 and np.isfinite(m["w_l1"])
    for cv in b["top_k"]["curves"].values():
        assert list(cv["k"]) == [4]                           # k > 64 features is dropped
        assert all(0 <= r <= a + 1e-9 <= 1 + 1e-9 for a, r in zip(cv["standard"], cv["robust"]))
