"""Study 1 (sketchy channels) on the smoke profile: outputs, their structure, cached reruns."""
import json
import os

import numpy as np




def test_sketchy_channels_smoke(tmp_path, load_repo_module):
    study = load_repo_module("experiments/sketchy_channels.py", "study_sketchy_channels")
    config = load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels").get_config("smoke")
    wd = str(tmp_path)
    record = study.run(config, wd)

    for name in ("results.json", "claims.json"):
        assert os.path.exists(os.path.join(wd, name))
    for fig in record["figures"]:
        path = os.path.join(wd, fig)
        assert os.path.getsize(path) > 1000 and open(path, "rb").read(4) == b"\x89PNG"
    assert {os.path.basename(f) for f in record["figures"]} == {
        "colored_digits_channel_distances.png", "colored_digits_conv1_filters.png",
        "colored_digits_accuracy_kept.png"}

    res = json.load(open(os.path.join(wd, "results.json")))["results"]["colored_digits"]
    assert set(res["models"]) == {"vanilla", "linf_at", "l2_at"}
    for name, m in res["models"].items():
        raw, rel = np.asarray(m["dist_raw"]), np.asarray(m["dist_relative"])
        assert raw.shape == rel.shape == (64, 3)
        assert np.all(rel <= np.sqrt(2) + 1e-5) and np.all(raw >= 0)
        assert m["near_equal_raw"]["count"] == int(np.sum(raw < 0.02))
        assert sum(m["hist_raw"]["counts"]) == 192
        assert set(m["accuracy"]) == {"colour", "grey", "sketch"}
        assert all(0.0 <= a <= 1.0 for a in m["accuracy"].values())
        assert set(m["robust"]) == {"linf", "l2"}
    assert res["models"]["vanilla"]["objective"]["name"] == "standard"
    assert res["models"]["l2_at"]["objective"]["norm"] == "l2"
    assert len(res["table"]) == 3

    claims = json.load(open(os.path.join(wd, "claims.json")))
    ids = {c["id"] for c in claims}
    assert {"1.1-raw-colored_digits", "1.1-relative-colored_digits", "1.2-grey-colored_digits",
            "1.2-sketch-colored_digits", "1.1-raw-cifar10"} <= ids
    verdicts = {c["id"]: c["verdict"] for c in claims}
    assert verdicts["1.1-raw-cifar10"] == "not run at this profile"       # cifar10 is cpu/full only
    # the claims derived again from the saved results (reproduce.py --reclaim) are the run's own
    saved = json.load(open(os.path.join(wd, "results.json")))["results"]
    again = {c["id"]: c for c in study.claims_from_results(config, saved)}
    assert again and all(again[c["id"]] == c for c in claims if c["id"] in again)
    assert verdicts["1.1-raw-colored_digits"] in ("reproduced", "not reproduced")

    # a rerun reuses the cached parts and trained models: same numbers, no retraining
    parts = sorted(os.listdir(os.path.join(wd, "parts")))
    mtimes = {p: os.path.getmtime(os.path.join(wd, "parts", p)) for p in parts}
    os.remove(os.path.join(wd, "results.json"))
    again = study.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(wd, "parts", p)) for p in parts} == mtimes


def _model(colour, grey, sketch, near_equal=0):
    acc = {"colour": colour, "grey": grey, "sketch": sketch}
    ne = {"count": near_equal, "n": 192, "min": 0.3, "share": near_equal / 192, "median": 0.7}
    return {"accuracy": acc, "kept": {v: acc[v] / colour for v in ("grey", "sketch")},
            "near_equal_raw": ne, "near_equal_relative": ne}


def test_a_model_near_chance_does_not_decide_the_accuracy_kept_claims(load_repo_module):
    study = load_repo_module("experiments/sketchy_channels.py", "study_sketchy_channels")
    config = load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels").get_config("smoke")
    corr = {"near_equal_raw~kept_grey": 0.5, "near_equal_raw~kept_sketch": 0.5,
            "near_equal_relative~kept_grey": 0.5, "near_equal_relative~kept_sketch": 0.5}
    # linf_at at chance (10 classes): "kept" = 1.0 by construction, which would beat the vanilla model
    per_model = {"vanilla": _model(0.70, 0.63, 0.40), "linf_at": _model(0.10, 0.10, 0.10),
                 "l2_at": _model(0.30, 0.31, 0.26)}
    assert study.near_chance(per_model, "colored_digits") == {"linf_at": 0.10}
    rows = {c["id"]: c for c in study._dataset_claims(config, "colored_digits", per_model, corr, "cmd")}
    for v in ("grey", "sketch"):
        row = rows[f"1.2-{v}-colored_digits"]
        assert row["verdict"] == "not run at this profile"
        assert "not tested: linf_at (colour accuracy 0.100)" in row["measured"]
    assert rows["1.3-colored_digits"]["verdict"] == "not run at this profile"
    assert rows["1.1-raw-colored_digits"]["verdict"] == "not reproduced"      # weights: still tested
    # every model clearly above chance: the comparison decides
    per_model["linf_at"] = _model(0.40, 0.38, 0.36)
    rows = {c["id"]: c for c in study._dataset_claims(config, "colored_digits", per_model, corr, "cmd")}
    assert rows["1.2-grey-colored_digits"]["verdict"] == "reproduced"
    assert rows["1.2-sketch-colored_digits"]["verdict"] == "reproduced"
    per_model["vanilla"] = _model(0.70, 0.69, 0.69)
    rows = {c["id"]: c for c in study._dataset_claims(config, "colored_digits", per_model, corr, "cmd")}
    assert rows["1.2-grey-colored_digits"]["verdict"] == "not reproduced"


def test_data_flags_override_the_profile_and_reject_unknown_datasets(load_repo_module):
    import argparse

    import pytest

    study = load_repo_module("experiments/sketchy_channels.py", "study_sketchy_channels")
    config = load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels").get_config("cpu")
    parser = argparse.ArgumentParser()
    study._data_flags(parser)
    study._apply_data_flags(parser.parse_args(["--datasets", "colored_digits", "--epochs", "7", "--linf", "0.01"]),
                            config)
    assert tuple(config.datasets) == ("colored_digits",)
    assert config.data.colored_digits.num_epochs == 7 and config.data.colored_digits.eps.linf == 0.01
    assert config.data.colored_digits.eps.l2 == 0.5 and config.data.cifar10.num_epochs == 6   # untouched
    with pytest.raises(ValueError, match=r"datasets \['mnist'\] are not in profile 'cpu'"):
        study._apply_data_flags(parser.parse_args(["--datasets", "mnist"]), config)
