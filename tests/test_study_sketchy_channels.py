"""Study 1 (sketchy channels): the smoke run through the library API, every outcome of every
verdict rule on hand-made results, and the training configs of every profile."""
import json
import os

import numpy as np
import pytest

from jadv.studies import sketchy_channels as study


@pytest.fixture
def get_config(load_repo_module):
    return load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels").get_config


def test_sketchy_channels_smoke(tmp_path, get_config):
    config = get_config("smoke")
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
        assert all(0.0 <= r["robust_accuracy"] <= 1.0 and r["n"] == 32 for r in m["robust"].values())
    assert res["models"]["vanilla"]["objective"]["name"] == "standard"
    assert res["models"]["l2_at"]["objective"]["norm"] == "l2"
    assert len(res["table"]) == 3
    assert set(res["filter_metrics"]) == {"vanilla", "linf_at", "l2_at"}
    assert res["filter_metrics"]["vanilla"][0]["name"].startswith("conv1")

    claims = json.load(open(os.path.join(wd, "claims.json")))
    ids = [c["id"] for c in claims]
    assert ids == [f"{c}-colored_digits" for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch", "1.3")] + [
        f"{c}-cifar10" for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch")]
    verdicts = {c["id"]: c["verdict"] for c in claims}
    assert verdicts["1.1-raw-cifar10"] == "not run at this profile"       # cifar10 is medium/paper only
    assert verdicts["1.1-raw-colored_digits"] in ("reproduced", "not reproduced")
    # the claims derived again from the saved results (reproduce.py --reclaim) are the run's own
    saved = json.load(open(os.path.join(wd, "results.json")))["results"]
    assert study.claims(config, saved) == claims == record["claims"]

    # a rerun reuses the cached parts and trained models: same numbers, no retraining
    parts = sorted(os.listdir(os.path.join(wd, "parts")))
    mtimes = {p: os.path.getmtime(os.path.join(wd, "parts", p)) for p in parts}
    os.remove(os.path.join(wd, "results.json"))
    again = study.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(wd, "parts", p)) for p in parts} == mtimes


# -- the verdict rules on hand-made results --------------------------------------------------------
def _model(colour, grey, sketch, raw=0, relative=None):
    acc = {"colour": colour, "grey": grey, "sketch": sketch}

    def ne(count):
        return {"count": count, "n": 192, "min": 0.01 if count else 0.3, "share": count / 192, "median": 0.7}
    return {"accuracy": acc, "kept": {v: acc[v] / colour for v in ("grey", "sketch")},
            "near_equal_raw": ne(raw), "near_equal_relative": ne(raw if relative is None else relative)}


POSITIVE = {f"{s}~{v}": 0.5 for s in ("near_equal_raw", "near_equal_relative", "median_relative")
            for v in ("kept_grey", "kept_sketch")}


def _verdicts(config, per_model, spearman=POSITIVE):
    results = {"colored_digits": {"models": per_model, "spearman": dict(spearman)}}
    results = json.loads(json.dumps(results))          # as read back from results.json
    return {c["id"]: c for c in study.claims(config, results)}


def _good():
    """AT models with near-equal pairs that keep more accuracy on grey and sketch inputs."""
    return {"vanilla": _model(0.80, 0.60, 0.40), "linf_at": _model(0.60, 0.55, 0.45, raw=3),
            "l2_at": _model(0.70, 0.63, 0.50, raw=1, relative=2)}


def test_every_claim_is_reproduced_when_the_measurements_agree(get_config):
    rows = _verdicts(get_config("small"), _good())
    for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch", "1.3"):
        assert rows[f"{c}-colored_digits"]["verdict"] == "reproduced", c
    assert "linf_at 3/192" in rows["1.1-raw-colored_digits"]["measured"]
    assert "l2_at 0.630/0.700 = 0.900" in rows["1.2-grey-colored_digits"]["measured"]


@pytest.mark.parametrize("tag", ["raw", "relative"])
def test_near_equal_claims_are_not_reproduced_when_vanilla_has_a_pair_or_an_at_model_has_none(get_config, tag):
    config = get_config("small")
    per_model = _good()
    per_model["vanilla"][f"near_equal_{tag}"]["count"] = 1
    assert _verdicts(config, per_model)[f"1.1-{tag}-colored_digits"]["verdict"] == "not reproduced"
    per_model = _good()
    per_model["l2_at"][f"near_equal_{tag}"]["count"] = 0
    rows = _verdicts(config, per_model)
    assert rows[f"1.1-{tag}-colored_digits"]["verdict"] == "not reproduced"
    other = "relative" if tag == "raw" else "raw"
    assert rows[f"1.1-{other}-colored_digits"]["verdict"] == "reproduced"


@pytest.mark.parametrize("variant", ["grey", "sketch"])
def test_accuracy_kept_claims_are_not_reproduced_when_an_at_model_keeps_less(get_config, variant):
    per_model = _good()
    per_model["vanilla"] = _model(0.80, 0.78, 0.78)      # vanilla keeps 0.975 of its accuracy on both
    rows = _verdicts(get_config("small"), per_model)
    assert rows[f"1.2-{variant}-colored_digits"]["verdict"] == "not reproduced"


def test_a_model_near_chance_does_not_decide_the_accuracy_kept_claims(get_config):
    config = get_config("small")
    # linf_at at chance (10 classes): "kept" = 1.0 by construction, which would beat the vanilla model
    per_model = {"vanilla": _model(0.70, 0.63, 0.40), "linf_at": _model(0.10, 0.10, 0.10),
                 "l2_at": _model(0.30, 0.31, 0.26)}
    assert study.near_chance(per_model, "colored_digits") == {"linf_at": 0.10}
    rows = _verdicts(config, per_model)
    for v in ("grey", "sketch"):
        row = rows[f"1.2-{v}-colored_digits"]
        assert row["verdict"] == "not run at this profile"
        assert "not tested: linf_at (colour accuracy 0.100)" in row["measured"]
    assert rows["1.3-colored_digits"]["verdict"] == "not run at this profile"
    assert "not tested: linf_at near chance" in rows["1.3-colored_digits"]["measured"]
    assert rows["1.1-raw-colored_digits"]["verdict"] == "not reproduced"      # weights: still tested
    # every model clearly above chance: the comparison decides
    per_model["linf_at"] = _model(0.40, 0.38, 0.36)
    rows = _verdicts(config, per_model)
    assert rows["1.2-grey-colored_digits"]["verdict"] == "reproduced"
    assert rows["1.2-sketch-colored_digits"]["verdict"] == "reproduced"
    per_model["vanilla"] = _model(0.70, 0.69, 0.69)
    assert _verdicts(config, per_model)["1.2-grey-colored_digits"]["verdict"] == "not reproduced"


def test_correlation_claim_outcomes(get_config):
    config = get_config("small")
    negative = dict(POSITIVE, **{"near_equal_relative~kept_sketch": -0.5})
    assert _verdicts(config, _good(), negative)["1.3-colored_digits"]["verdict"] == "not reproduced"
    # only the near-equal shares decide; the median column is reported, not tested ...
    median_negative = dict(POSITIVE, **{"median_relative~kept_grey": -0.5})
    assert _verdicts(config, _good(), median_negative)["1.3-colored_digits"]["verdict"] == "reproduced"
    # ... but an undefined correlation (a constant column) leaves the claim undecided
    undefined = dict(POSITIVE, **{"median_relative~kept_grey": None})
    row = _verdicts(config, _good(), undefined)["1.3-colored_digits"]
    assert row["verdict"] == "not run at this profile" and "None" in row["measured"]


def test_datasets_without_results_are_not_run(get_config):
    small = _verdicts(get_config("small"), _good())
    for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch"):
        row = small[f"{c}-cifar10"]
        assert row["verdict"] == "not run at this profile"
        assert row["measured"] == "cifar10 is not used at profile 'small'"
        assert row["command"].endswith("configs/sketchy_channels.py:medium")
    assert "1.3-cifar10" not in small
    medium = _verdicts(get_config("medium"), _good())      # cifar10 is a dataset of medium, but not in results
    assert medium["1.1-raw-cifar10"]["measured"] == "no results for cifar10 in this run"
    assert medium["1.1-raw-colored_digits"]["command"].endswith("configs/sketchy_channels.py:medium")


def test_claims_cite_the_papers(get_config):
    rows = _verdicts(get_config("small"), _good())
    assert all("Kaur, Cohen & Lipton" in r["source"] for r in rows.values())
    assert "arXiv:1905.13549" in rows["1.2-sketch-colored_digits"]["source"]
    assert all("section A" not in r["source"] and "check 21" not in r["source"] for r in rows.values())


# -- configs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["smoke", "small", "medium", "paper"])
def test_every_training_config_passes_check_config(get_config, profile):
    config = get_config(profile)
    assert config.profile == profile
    for dataset in config.datasets:
        for name in config.model_order:
            c = study.training_config(config, dataset, name)      # calls check_config
            assert c.dataset == dataset and c.model.kwargs.conv1_filters == 64
            assert c.model.mean == (0.5,) * 3 and c.model.std == (0.25,) * 3
            if c.objective.name == "pgd_at":
                eps = config.data[dataset].eps[c.objective.norm]
                assert c.objective.eps == eps
                assert c.objective.step_size == pytest.approx(2.5 * eps / c.objective.steps)


def test_config_overrides_reach_the_training_configs(get_config, load_repo_module):
    module = load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels")
    assert module.PROFILES == ("smoke", "small", "medium", "paper")
    with pytest.raises(ValueError, match="'cpu' is now 'medium'"):
        module.get_config("cpu")
    config = get_config("medium")
    config.seed, config.data_dir = 3, "/data"
    config.datasets = ("colored_digits",)
    config.data.colored_digits.train.num_epochs = 7
    config.data.colored_digits.eps.linf = 0.01
    c = study.training_config(config, "colored_digits", "linf_at")
    assert (c.seed, c.data_dir, c.num_epochs, c.objective.eps) == (3, "/data", 7, 0.01)
    assert study.training_config(config, "colored_digits", "l2_at").objective.eps == 0.5     # untouched
    assert study.training_config(config, "cifar10", "vanilla").num_epochs == 6
    config.datasets = ("mnist",)
    with pytest.raises(ValueError, match=r"datasets \['mnist'\] are not in profile 'medium'"):
        study.run(config, "/nonexistent/never-written")
