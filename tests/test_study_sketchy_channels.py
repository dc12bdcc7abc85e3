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
    for name, m in res["models"].items():
        g = m["gate_measured"]
        assert g["clean"] == m["accuracy"]["colour"]
        assert g["robust"] == (None if name == "vanilla" else m["robust"][m["objective"]["norm"]]["robust_accuracy"])
        # 3 SGD steps leave conv1 near the initialisation that initial_variables rebuilds (an
        # unrelated random kernel would give a cosine near 0)
        assert 0.9 < g["init_cosine"] <= 1.0 + 1e-9
    assert len(res["table"]) == 3
    assert set(res["filter_metrics"]) == {"vanilla", "linf_at", "l2_at"}
    assert res["filter_metrics"]["vanilla"][0]["name"].startswith("conv1")

    claims = json.load(open(os.path.join(wd, "claims.json")))
    ids = [c["id"] for c in claims]
    assert ids == [f"{c}-colored_digits" for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch", "1.3")] + [
        f"{c}-{d}" for d in ("colored_mnist", "cifar10") for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch")]
    verdicts = {c["id"]: c["verdict"] for c in claims}
    # colored_mnist and cifar10 are medium/paper only
    assert verdicts["1.1-raw-cifar10"] == verdicts["1.1-raw-colored_mnist"] == "not run at this profile"
    # smoke models (3 steps) do not meet their gates: every decided claim is inconclusive
    models = [f"colored_digits/{m}" for m in ("vanilla", "linf_at", "l2_at")]
    for c in claims[:5]:
        assert c["gate_models"] == models and [r["model"] for r in c["gate_records"]] == models
        assert c["gates"] == "missed"
        assert c["verdict"] in ("inconclusive", "not run at this profile"), c["id"]
        assert all({"model", "met", "checks", "source"} <= set(r) for r in c["gate_records"])
    for c in claims[:4]:
        assert c["verdict"] == "inconclusive" and c["measured"].startswith("below gate: colored_digits/")
    metrics = {r["model"]: [k["metric"] for k in r["checks"]] for r in claims[0]["gate_records"]}
    assert metrics == {"colored_digits/vanilla": ["clean", "init_cosine"],
                       "colored_digits/linf_at": ["clean", "robust", "init_cosine"],
                       "colored_digits/l2_at": ["clean", "robust", "init_cosine"]}
    assert all("init_cosine" not in [k["metric"] for k in r["checks"]] for r in claims[2]["gate_records"])
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
def _model(colour, grey, sketch, raw=0, relative=None, robust=0.40, init_cosine=0.20):
    acc = {"colour": colour, "grey": grey, "sketch": sketch}

    def ne(count):
        return {"count": count, "n": 192, "min": 0.01 if count else 0.3, "share": count / 192, "median": 0.7}
    return {"accuracy": acc, "kept": {v: acc[v] / colour for v in ("grey", "sketch")},
            "near_equal_raw": ne(raw), "near_equal_relative": ne(raw if relative is None else relative),
            "gate_measured": {"clean": colour, "robust": robust, "init_cosine": init_cosine}}


def _gate(clean, robust=None):
    return {"clean": clean, "robust": robust, "init_cosine_max": 0.5, "source": "test gate"}


def _gated(config):
    """``config`` with test gates that the models of :func:`_good` meet."""
    config.gates = {"colored_digits/vanilla": _gate(0.75), "colored_digits/linf_at": _gate(0.50, 0.30),
                    "colored_digits/l2_at": _gate(0.50, 0.30)}
    return config


POSITIVE = {f"{s}~{v}": 0.5 for s in ("near_equal_raw", "near_equal_relative", "median_relative")
            for v in ("kept_grey", "kept_sketch")}


def _verdicts(config, per_model, spearman=POSITIVE, dataset="colored_digits"):
    results = {dataset: {"models": per_model, "spearman": dict(spearman)}}
    results = json.loads(json.dumps(results))          # as read back from results.json
    return {c["id"]: c for c in study.claims(config, results)}


def _good():
    """AT models with near-equal pairs that keep more accuracy on grey and sketch inputs."""
    return {"vanilla": _model(0.80, 0.60, 0.40), "linf_at": _model(0.60, 0.55, 0.45, raw=3),
            "l2_at": _model(0.70, 0.63, 0.50, raw=1, relative=2)}


def test_every_claim_is_reproduced_when_the_measurements_agree(get_config):
    rows = _verdicts(_gated(get_config("small")), _good())
    for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch", "1.3"):
        assert rows[f"{c}-colored_digits"]["verdict"] == "reproduced", c
        assert rows[f"{c}-colored_digits"]["gates"] == "met"
    assert "linf_at 3/192" in rows["1.1-raw-colored_digits"]["measured"]
    assert "l2_at 0.630/0.700 = 0.900" in rows["1.2-grey-colored_digits"]["measured"]


@pytest.mark.parametrize("tag", ["raw", "relative"])
def test_near_equal_claims_are_not_reproduced_when_vanilla_has_a_pair_or_an_at_model_has_none(get_config, tag):
    config = _gated(get_config("small"))
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
    rows = _verdicts(_gated(get_config("small")), per_model)
    assert rows[f"1.2-{variant}-colored_digits"]["verdict"] == "not reproduced"


IDS = [f"{c}-colored_digits" for c in ("1.1-raw", "1.1-relative", "1.2-grey", "1.2-sketch", "1.3")]


@pytest.mark.parametrize("case", ["reproduced", "not reproduced"])
def test_a_model_below_its_clean_gate_makes_every_claim_inconclusive(get_config, case):
    config = _gated(get_config("small"))
    per_model = _good()
    if case == "not reproduced":          # what the rules would decide above the gates
        per_model["vanilla"] = _model(0.80, 0.78, 0.78, raw=1)
    rows = _verdicts(config, per_model, POSITIVE if case == "reproduced" else dict(POSITIVE, **{
        "near_equal_raw~kept_grey": -0.5}))
    assert all(rows[c]["verdict"] == case for c in IDS)
    # linf_at at chance: "kept" = 1.0 by construction; it decides nothing
    per_model["linf_at"] = _model(0.10, 0.10, 0.10, raw=3, robust=0.05)
    rows = _verdicts(config, per_model, POSITIVE if case == "reproduced" else dict(POSITIVE, **{
        "near_equal_raw~kept_grey": -0.5}))
    for c in IDS:
        assert rows[c]["verdict"] == "inconclusive", c
        assert rows[c]["gates"] == "missed"
        assert rows[c]["measured"].startswith(
            "below gate: colored_digits/linf_at clean acc 0.100 < 0.50; colored_digits/linf_at robust acc "
            "0.050 < 0.30 | ")
        assert [r["model"] for r in rows[c]["gate_records"]] == [
            "colored_digits/vanilla", "colored_digits/linf_at", "colored_digits/l2_at"]


def test_a_model_below_its_robust_gate_makes_every_claim_inconclusive(get_config):
    per_model = _good()
    per_model["l2_at"]["gate_measured"]["robust"] = 0.10
    rows = _verdicts(_gated(get_config("small")), per_model)
    for c in IDS:
        assert rows[c]["verdict"] == "inconclusive"
        assert "colored_digits/l2_at robust acc 0.100 < 0.30" in rows[c]["measured"]


@pytest.mark.parametrize("model", ["vanilla", "linf_at"])
def test_a_conv1_still_at_its_initialisation_leaves_only_the_channel_claims_undecided(get_config, model):
    per_model = _good()
    per_model[model]["gate_measured"]["init_cosine"] = 0.97
    rows = _verdicts(_gated(get_config("small")), per_model)
    for tag in ("raw", "relative"):
        row = rows[f"1.1-{tag}-colored_digits"]
        assert row["verdict"] == "inconclusive" and row["gates"] == "missed"
        assert f"colored_digits/{model} cos(layer, init) 0.970 > 0.50" in row["measured"]
    for c in ("1.2-grey", "1.2-sketch", "1.3"):        # claims about accuracies: the weights do not matter
        assert rows[f"{c}-colored_digits"]["verdict"] == "reproduced"
        assert rows[f"{c}-colored_digits"]["gates"] == "met"


def test_results_without_gate_measurements_are_inconclusive(get_config):
    per_model = _good()
    for m in per_model.values():
        del m["gate_measured"]
    rows = _verdicts(_gated(get_config("small")), per_model)
    for c in IDS:
        assert rows[c]["verdict"] == "inconclusive"
        assert "colored_digits/vanilla clean acc not measured (gate 0.75)" in rows[c]["measured"]


def test_claims_follow_the_gate_thresholds_of_the_config(get_config):
    """--reclaim with new thresholds: the same saved results, decided again."""
    config = _gated(get_config("small"))
    assert _verdicts(config, _good())["1.1-raw-colored_digits"]["verdict"] == "reproduced"
    config.gates["colored_digits/l2_at"]["clean"] = 0.90
    row = _verdicts(config, _good())["1.1-raw-colored_digits"]
    assert row["verdict"] == "inconclusive" and "colored_digits/l2_at clean acc 0.700 < 0.90" in row["measured"]


def test_a_model_without_a_gate_is_refused(get_config):
    config = get_config("small")
    del config.gates["colored_digits/linf_at"]
    with pytest.raises(ValueError, match="'colored_digits/linf_at' has no quality gate"):
        study.claims(config, {"colored_digits": {"models": _good(), "spearman": POSITIVE}})
    with pytest.raises(ValueError, match="'colored_digits/linf_at' has no quality gate"):
        study.run(config, "/nonexistent/never-written")
    config = get_config("small")
    config.gates["colored_digits/linf_at"]["source"] = ""
    with pytest.raises(ValueError, match="needs a 'source'"):
        study.run(config, "/nonexistent/never-written")


@pytest.mark.parametrize("profile", ["smoke", "small", "medium", "paper"])
def test_every_trained_model_of_every_profile_has_a_stated_gate(get_config, profile):
    from jadv.studies.gates import check_spec

    config = get_config(profile)
    names = {f"{d}/{m}" for d in config.data for m in config.model_order}
    assert set(config.gates) == names
    for name in names:
        spec = config.gates[name].to_dict()
        check_spec(spec, name)
        assert spec["init_cosine_max"] is not None and spec["clean"] is not None
        assert (spec["robust"] is None) == name.endswith("/vanilla")
    assert set(config.datasets) <= set(config.data)
    for d in config.data:      # colored_digits (smoke/small); colored_mnist and cifar10 (medium/paper)
        assert set(study.gate_specs(config, d)) == {f"{d}/{m}" for m in config.model_order}
    if profile in ("smoke", "small"):
        assert all("jadv reference run, RESULTS.md (sketchy_channels gates)" in config.gates[n].source for n in names)


def test_gate_measures_of_an_analysed_model():
    kernel = np.ones((3, 3, 3, 4))
    analysis = {"accuracy": {"colour": 0.8}, "kernel": kernel,
                "robust": {"linf": {"robust_accuracy": 0.3}, "l2": {"robust_accuracy": 0.5}}}
    assert study.gate_measures(analysis, {"name": "pgd_at", "norm": "l2"}, kernel) == {
        "clean": 0.8, "robust": 0.5, "init_cosine": pytest.approx(1.0)}
    flipped = kernel * np.where(np.arange(4) < 2, 1.0, -1.0)       # half the filters reversed: cosine 0
    g = study.gate_measures(analysis, {"name": "standard"}, flipped)
    assert g["robust"] is None and g["init_cosine"] == pytest.approx(0.0)


def test_correlation_claim_outcomes(get_config):
    config = _gated(get_config("small"))
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
    # cifar10 is a dataset of medium, but not in results; colored_digits is not a medium dataset
    medium = _verdicts(get_config("medium"), _good(), dataset="colored_mnist")
    assert medium["1.1-raw-cifar10"]["verdict"] == "not run at this profile"
    assert medium["1.1-raw-cifar10"]["measured"] == "no results for cifar10 in this run"
    assert medium["1.1-raw-colored_digits"]["measured"] == "colored_digits is not used at profile 'medium'"
    assert "1.3-colored_mnist" in medium and "1.3-cifar10" not in medium
    assert medium["1.1-raw-colored_mnist"]["command"].endswith("configs/sketchy_channels.py:medium")


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
            assert c.dataset == dataset
            # the layer under study: 64 conv1 filters (PreActResNet-18's conv1 has 64 by construction)
            assert c.model.name == "preact_resnet18" if profile == "paper" else c.model.kwargs.conv1_filters == 64
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
    config.datasets = ("colored_mnist",)
    config.data.colored_mnist.train.num_epochs = 7
    config.data.colored_mnist.eps.linf = 0.01
    assert study.training_config(config, "colored_mnist", "linf_at").optimizer.weight_decay == 5e-3
    config.data.colored_mnist.train.optimizer = {"weight_decay": 1e-2}
    c = study.training_config(config, "colored_mnist", "linf_at")
    assert (c.seed, c.data_dir, c.num_epochs, c.objective.eps) == (3, "/data", 7, 0.01)
    # a dataset's own weight decay overrides the shared recipe's 5e-3; the rest of the optimizer
    # (lr) is kept
    assert (c.optimizer.weight_decay, c.optimizer.lr) == (1e-2, 0.1)
    assert study.training_config(config, "colored_mnist", "l2_at").objective.eps == 0.5     # untouched
    cifar = study.training_config(config, "cifar10", "vanilla")
    assert (cifar.num_epochs, cifar.optimizer.weight_decay) == (10, 5e-3)
    config.datasets = ("mnist",)
    with pytest.raises(ValueError, match=r"datasets \['mnist'\] are not in profile 'medium'"):
        study.run(config, "/nonexistent/never-written")


def test_colored_mnist_gates_come_from_the_reference_run(load_repo_module):
    """medium/paper colored-MNIST gates: the 9-epoch reference run minus 1 point clean / 5 robust,
    at the radii that run used (Linf 0.05, L2 0.5)."""
    cfg = load_repo_module("configs/sketchy_channels.py", "config_sketchy_channels")
    assert cfg.MEDIUM_CM_REFERENCE["linf_at"] == (0.983, 0.8281)
    for profile in ("medium", "paper"):
        c = cfg.get_config(profile)
        assert (c.data.colored_mnist.eps.linf, c.data.colored_mnist.eps.l2) == (0.05, 0.5)
        g = c.gates["colored_mnist/linf_at"]
        assert (g.clean, g.robust) == (0.97, 0.77) and "reference run" in g.source
        assert c.gates["colored_mnist/l2_at"].robust == 0.89 and c.gates["colored_mnist/vanilla"].clean == 0.97
        assert c.gates["colored_mnist/vanilla"].robust is None
