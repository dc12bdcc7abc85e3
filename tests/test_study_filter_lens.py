"""Study 4 (filter lens): verdict rules on hand-made results, configs, and the smoke run through
the library API (outputs, their structure, cached reruns, imported workdirs)."""
import importlib.util
import json
import os

import ml_collections
import numpy as np
import pytest

from jadv.studies import filter_lens
from jadv.studies.gates import check_spec, gate_spec
from jadv.train.config import PROFILES, check_config

CONFIG_FILE = os.path.join(os.path.dirname(__file__), "..", "configs", "filter_lens.py")


def _config_module():
    spec = importlib.util.spec_from_file_location("jadv_config_filter_lens", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(profile):
    return _config_module().get_config(profile)


# -- verdict rules ------------------------------------------------------------------------------

GROUPS = ("first", "(0.0, 0.1]", "(0.2, 0.3]", "(0.4, 0.5]", "(0.8, 0.9]", "(0.9, 1.0]")
# gates of the hand-made results (independent of the thresholds the configs state)
TEST_GATES = {"standard": gate_spec(clean=0.8, init_cosine_max=0.9, source="test gate"),
              "robust": gate_spec(clean=0.8, robust=0.5, init_cosine_max=0.9, source="test gate")}
LEARNED = {"standard": {"clean": 0.9, "robust": 0.1, "init_cosine": 0.5},
           "robust": {"clean": 0.9, "robust": 0.6, "init_cosine": 0.6}}


def _by_depth(entropy, ortho):
    return [{"group": g, "sparsity": 0.0, "variance_entropy": e, "orthogonality": o}
            for g, e, o in zip(GROUPS, entropy, ortho)]


def _results(*, sparse=(0.4, 0.1), entropy=((0.5,) * 6, (0.7, 0.4, 0.4, 0.4, 0.4, 0.8)),
             ortho=((0.5,) * 6, (0.6, 0.5, 0.5, 0.5, 0.5, 0.6)), kl=(3.0, 0.1, 0.2, 0.3, 1.0, 2.0),
             gates=LEARNED):
    """Results of the shape run() saves (after a JSON round trip); the defaults reproduce every
    claim on models that meet TEST_GATES. ``gates``: the gate measurements per model (None: none
    saved, as in results written before gates existed)."""
    models = {k: {"train": {"workdir": f"/w/{k}"}, "layers": [], "by_depth": _by_depth(entropy[i], ortho[i])}
              for i, k in enumerate(filter_lens.KINDS)}
    results = {"models": models, "imported": [], "last_group": GROUPS[-1],
               "pooled_sparsity": dict(zip(filter_lens.KINDS, sparse)),
               "shift": {"per_layer": [], "per_group": dict(zip(GROUPS, kl)), "all_layers": float(np.mean(kl))}}
    if gates is not None:
        results["gate_measurements"] = {m: {"init_cosine_layers": ["conv1"], **v} for m, v in gates.items()}
    return json.loads(json.dumps(results))


def _config(profile="smoke", gates=TEST_GATES):
    config = get_config(profile)
    config.gates = ml_collections.ConfigDict(gates)
    return config


def _verdicts(results, profile="smoke"):
    return {c["id"]: c["verdict"] for c in filter_lens.claims(_config(profile), results)}


def _with(model, **changes):
    return {**LEARNED, model: {**LEARNED[model], **changes}}


def test_claims_all_reproduced_with_their_texts_and_sources():
    out = filter_lens.claims(_config("small"), _results())
    assert [c["id"] for c in out] == ["4.1", "4.2", "4.3", "4.4"]
    assert all(c["verdict"] == "reproduced" for c in out)
    for c in out:
        assert "Gavrikov & Keuper 2022" in c["source"] and "arXiv:2204.02481" in c["source"]
        assert "analysis-methods" not in c["source"]
        assert c["command"] == "python experiments/filter_lens.py --config configs/filter_lens.py:small"
        assert c["gates"] == "met" and c["gate_models"] == ["standard", "robust"]
        assert [r["model"] for r in c["gate_records"]] == ["standard", "robust"]
        assert all(r["met"] and r["source"] == "test gate" for r in c["gate_records"])
    assert "PGD-20 Linf 0.1 acc std 0.100 / rob 0.600" in out[0]["measured"]
    assert "max at first" in out[3]["measured"]


def test_claim_4_1_pooled_sparsity():
    assert _verdicts(_results(sparse=(0.1, 0.4)))["4.1"] == "not reproduced"
    assert _verdicts(_results(sparse=(0.2, 0.2)))["4.1"] == "not reproduced"     # strictly lower


@pytest.mark.parametrize("cid, field", [("4.2", "entropy"), ("4.3", "ortho")])
def test_claims_4_2_and_4_3_need_first_and_last_decile(cid, field):
    base = _results()
    std = [g[{"entropy": "variance_entropy", "ortho": "orthogonality"}[field]]
           for g in base["models"]["standard"]["by_depth"]]
    higher_first_only = (std, [std[0] + 0.1, *std[1:-1], std[-1] - 0.1])
    higher_last_only = (std, [std[0] - 0.1, *std[1:-1], std[-1] + 0.1])
    middle_does_not_count = (std, [std[0] + 0.1, *(v - 0.3 for v in std[1:-1]), std[-1] + 0.1])
    assert _verdicts(_results(**{field: higher_first_only}))[cid] == "not reproduced"
    assert _verdicts(_results(**{field: higher_last_only}))[cid] == "not reproduced"
    assert _verdicts(_results(**{field: (std, std)}))[cid] == "not reproduced"    # strictly higher
    assert _verdicts(_results(**{field: middle_does_not_count}))[cid] == "reproduced"


def test_claim_4_4_shift_largest_in_first_or_deepest():
    def verdict(kl):
        return _verdicts(_results(kl=kl))["4.4"]

    assert verdict((2.0, 0.1, 0.2, 0.3, 3.0, 2.5)) == "reproduced"        # max in the second-deepest decile
    assert verdict((1.0, 0.1, 0.2, 0.3, 0.5, 3.0)) == "reproduced"        # max in the deepest decile
    assert verdict((1.0, 0.1, 3.0, 0.3, 0.5, 2.0)) == "not reproduced"    # max in a middle decile
    assert verdict((0.1, 0.2, 0.3, 0.4, 1.0, 2.0)) == "not reproduced"    # first conv below the median
    assert verdict((3.0, 0.2, 0.3, 0.4, 1.0, 0.1)) == "not reproduced"    # last decile below the median


def test_claims_command_of_a_loaded_pair():
    config = _config()
    config.pair_workdirs = ("robust:/r", "standard:/s")
    cmd = filter_lens.claims(config, _results())[0]["command"]
    assert cmd.endswith("--config.pair_workdirs=\"('standard:/s', 'robust:/r')\"")


# -- quality gates --------------------------------------------------------------------------------

REPRODUCED = {}                                            # every claim reproduced (the defaults)
NOT_REPRODUCED = {"sparse": (0.1, 0.4), "entropy": ((0.5,) * 6, (0.4,) * 6), "ortho": ((0.5,) * 6, (0.4,) * 6),
                  "kl": (1.0, 0.1, 3.0, 0.3, 0.5, 2.0)}    # every claim not reproduced


@pytest.mark.parametrize("rule", [REPRODUCED, NOT_REPRODUCED], ids=["reproduced", "not reproduced"])
def test_models_above_their_gates_leave_the_verdict_rule_to_decide(rule):
    expected = "reproduced" if rule is REPRODUCED else "not reproduced"
    out = filter_lens.claims(_config(), _results(**rule))
    assert [c["verdict"] for c in out] == [expected] * 4
    assert all(c["gates"] == "met" and not c["measured"].startswith("below gate") for c in out)


@pytest.mark.parametrize("rule", [REPRODUCED, NOT_REPRODUCED], ids=["reproduced", "not reproduced"])
@pytest.mark.parametrize("model, changes, shortfall", [
    ("standard", {"clean": 0.4}, "standard clean acc 0.400 < 0.80"),
    ("robust", {"clean": 0.75}, "robust clean acc 0.750 < 0.80"),
    ("robust", {"robust": 0.3}, "robust robust acc 0.300 < 0.50"),
    ("standard", {"init_cosine": 0.98}, "standard cos(layer, init) 0.980 > 0.90"),
    ("robust", {"init_cosine": 0.95}, "robust cos(layer, init) 0.950 > 0.90"),
    ("robust", {"init_cosine": None}, "robust cos(layer, init) not measured (gate 0.90)"),
])
def test_a_model_below_its_gate_makes_every_claim_inconclusive(rule, model, changes, shortfall):
    out = filter_lens.claims(_config(), _results(gates=_with(model, **changes), **rule))
    for c in out:
        assert c["verdict"] == "inconclusive" and c["gates"] == "missed"
        assert c["measured"].startswith(f"below gate: {shortfall} | ")
        assert [r["model"] for r in c["gate_records"] if not r["met"]] == [model]


def test_standard_model_robust_accuracy_is_not_gated():
    out = filter_lens.claims(_config(), _results(gates=_with("standard", robust=0.0)))
    assert all(c["verdict"] == "reproduced" for c in out)


def test_gates_are_read_from_the_config_at_claim_time():
    """--reclaim with new thresholds: the same saved results, a stricter or laxer config."""
    results = _results(gates=_with("robust", init_cosine=0.95))
    assert set(_verdicts(results).values()) == {"inconclusive"}
    lax = {**TEST_GATES, "robust": gate_spec(clean=0.8, robust=0.5, init_cosine_max=0.99, source="lax")}
    assert set(v["verdict"] for v in filter_lens.claims(_config(gates=lax), results)) == {"reproduced"}
    no_init = {**TEST_GATES, "robust": gate_spec(clean=0.8, robust=0.5, source="converted checkpoint: no init")}
    unknown_init = _results(gates=_with("robust", init_cosine=None))
    assert set(v["verdict"] for v in filter_lens.claims(_config(gates=no_init), unknown_init)) == {"reproduced"}


def test_results_without_gate_measurements_are_inconclusive():
    out = filter_lens.claims(_config(), _results(gates=None))     # results saved before gates existed
    assert all(c["verdict"] == "inconclusive" and "standard clean acc not measured" in c["measured"]
               for c in out)
    assert "acc std" not in out[0]["measured"]


def test_a_model_without_a_gate_is_a_clear_error(tmp_path):
    config = _config(gates={"standard": TEST_GATES["standard"]})
    with pytest.raises(ValueError, match=r"model\(s\) \['robust'\] have no quality gate"):
        filter_lens.claims(config, _results())
    with pytest.raises(ValueError, match="have no quality gate"):
        filter_lens.run(config, str(tmp_path / "a"))            # before anything is trained
    assert not os.path.exists(tmp_path / "a" / "models")
    config = _config()
    config.import_workdirs = ("robust:/x/wrn_robust",)
    with pytest.raises(ValueError, match=r"\['imported/wrn_robust'\] have no quality gate"):
        filter_lens.run(config, str(tmp_path / "b"))
    config.gates["robust"].clean = 1.5
    with pytest.raises(ValueError, match="gate clean must be a number in"):
        filter_lens.claims(config, _results())
    config = _config()
    config.import_workdirs = ("robust:/a/m", "standard:/b/m")
    with pytest.raises(ValueError, match="not unique"):
        filter_lens.run(config, str(tmp_path / "c"))


def test_gate_measurement_takes_the_first_conv_and_the_last_decile():
    cosines = [{"name": "conv1", "group": "first", "cosine": 0.4},
               {"name": "b/conv1", "group": "(0.0, 0.1]", "cosine": 0.99},       # a middle layer: not gated
               {"name": "c/conv1", "group": "(0.9, 1.0]", "cosine": 0.7},
               {"name": "c/conv2", "group": "(0.9, 1.0]", "cosine": 0.8}]
    m = filter_lens.gate_measurement(0.9, 0.5, cosines, "(0.9, 1.0]")
    assert m == {"clean": 0.9, "robust": 0.5, "init_cosine": 0.8,
                 "init_cosine_layers": ["conv1", "c/conv1", "c/conv2"]}
    assert filter_lens.gate_measurement(0.9, None, None, "(0.9, 1.0]")["init_cosine"] is None


def test_init_cosines_per_layer():
    rng = np.random.default_rng(0)
    k0, k1 = rng.normal(size=(3, 3, 1, 8)), rng.normal(size=(3, 3, 8, 8))
    init = {"conv1": {"kernel": k0}, "layer1": {"conv": {"kernel": k1}}}
    layers = filter_lens.depth_metrics(init)["layers"]
    trained = {"conv1": {"kernel": 3.0 * k0}, "layer1": {"conv": {"kernel": -k1}}}
    out = filter_lens.init_cosines(trained, init, layers)
    assert [(c["name"], c["depth"], c["group"]) for c in out] == [("conv1", 0, "first"),
                                                                 ("layer1/conv", 1, "(0.9, 1.0]")]
    assert [c["cosine"] for c in out] == pytest.approx([1.0, -1.0], abs=1e-12)   # scale-free, sign kept


def test_a_converted_checkpoint_has_no_init_cosine(tmp_path):
    cfg = ml_collections.ConfigDict({"imported": {"arch": "wide_resnet"}})
    out = filter_lens._init_cosines_of(str(tmp_path), cfg, {}, [])
    assert out["layers"] is None and "initialisation unknown" in out["note"]


# -- configs ------------------------------------------------------------------------------------

def test_configs_of_every_profile():
    module = _config_module()
    assert module.PROFILES == PROFILES
    for profile in PROFILES:
        config = module.get_config(profile)
        assert config.profile == profile
        configs = filter_lens.model_configs(config)
        for c in configs.values():
            check_config(c)
        std, rob = configs["standard"], configs["robust"]
        assert std.objective.name == "standard" and rob.objective.name == "pgd_at"
        assert rob.objective.eps == std.robust_eval.eps
        # the same recipe apart from the objective
        assert {k: v for k, v in std.to_dict().items() if k != "objective"} == \
               {k: v for k, v in rob.to_dict().items() if k != "objective"}
    assert module.get_config("").profile == "small"
    with pytest.raises(ValueError, match="'default' is now 'small'"):
        module.get_config("default")
    config = module.get_config("smoke")
    config.data_dir = "/data"
    assert all(c.data_dir == "/data" for c in filter_lens.model_configs(config).values())
    config.robust.objective.stepz = 3
    with pytest.raises(ValueError, match="objective.stepz"):
        filter_lens.model_configs(config)


def test_every_profile_gates_both_models_with_a_source():
    for profile in PROFILES:
        gates = get_config(profile).gates
        assert sorted(gates) == ["robust", "standard"]
        for name, spec in gates.items():
            check_spec(spec.to_dict(), f"{profile}/{name}")
            assert spec.clean is not None and spec.init_cosine_max is not None   # the claims are about weights
        assert gates.robust.robust is not None and gates.standard.robust is None
    small = get_config("small").gates.values()
    assert all("jadv reference run, RESULTS.md (filter_lens gates)" in s.source for s in small)
    assert all("robustness-libraries.md" in s.source for s in get_config("paper").gates.values())
    # medium (MNIST, Linf 0.3): published MNIST numbers, and the stated init-cosine rule
    medium = get_config("medium").gates
    assert medium.standard.source.startswith("published") and "LeCun et al. 1998" in medium.standard.source
    assert medium.robust.source.startswith("published") and "Madry et al. 2018" in medium.robust.source
    assert all("init_cosine_max 0.7" in s.source and s.init_cosine_max == 0.7 for s in medium.values())


def test_bad_workdir_specs_are_clear_errors(tmp_path):
    config = get_config("smoke")
    config.pair_workdirs = ("robust:/r",)
    with pytest.raises(ValueError, match="needs both kinds"):
        filter_lens.run(config, str(tmp_path / "a"))
    config.pair_workdirs = ("robust:/r", "robust:/s")
    with pytest.raises(ValueError, match="one 'KIND:DIR' per KIND"):
        filter_lens.run(config, str(tmp_path / "b"))
    config.pair_workdirs = ()
    config.import_workdirs = ("adversarial:/x",)
    with pytest.raises(ValueError, match="import_workdirs takes 'KIND:DIR'"):
        filter_lens.run(config, str(tmp_path / "c"))


# -- the smoke run ------------------------------------------------------------------------------

def test_filter_lens_smoke(tmp_path):
    config = get_config("smoke")
    wd = str(tmp_path / "study")
    record = filter_lens.run(config, wd)

    assert os.path.exists(os.path.join(wd, "results.json")) and os.path.exists(os.path.join(wd, "claims.json"))
    assert sorted(os.path.basename(f) for f in record["figures"]) == ["depth_metrics.png", "distribution_shift.png"]
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"

    res = json.load(open(os.path.join(wd, "results.json")))["results"]
    for kind in ("standard", "robust"):
        layers = res["models"][kind]["layers"]
        assert len(layers) == 7                          # ResNet-8: 7 3x3 convs (+ 2 1x1 shortcuts, not measured)
        assert layers[0]["depth"] == 0 and layers[0]["max_depth"] == 8   # depths count the 1x1 shortcuts too
        for m in layers:
            assert 0.0 <= m["sparsity"] <= 1.0 and 0.0 <= m["orthogonality"] <= 1.0
            assert 0.0 <= m["variance_entropy"] <= np.log10(9) + 1e-9
        groups = [g["group"] for g in res["models"][kind]["by_depth"]]
        assert groups[0] == "first" and len(groups) == len(set(groups)) >= 4
        assert "test_accuracy" in res["models"][kind]["train"]
    assert res["models"]["robust"]["train"]["objective"] == "pgd_at"
    shift = res["shift"]
    assert len(shift["per_layer"]) == 7 and all(s["kl"] >= 0 for s in shift["per_layer"])
    assert list(shift["per_group"])[0] == "first" and shift["all_layers"] >= 0
    # the per-layer groups are those of jadv.analysis.aggregate_by_depth
    by_depth = {g["group"]: g["n_layers"] for g in res["models"]["standard"]["by_depth"]}
    assert {g: sum(s["group"] == g for s in shift["per_layer"]) for g in by_depth} == by_depth
    saved = json.load(open(os.path.join(wd, "claims.json")))
    assert [c["id"] for c in saved] == ["4.1", "4.2", "4.3", "4.4"]
    assert filter_lens.claims(config, res) == saved                    # --reclaim from results.json

    # gates: both models measured; 3-step smoke models miss them, so every claim is inconclusive
    gm = res["gate_measurements"]
    assert list(gm) == ["standard", "robust"]
    for kind in ("standard", "robust"):
        cosines = res["models"][kind]["init_cosine"]["layers"]
        assert [c["name"] for c in cosines] == [m["name"] for m in res["models"][kind]["layers"]]
        assert all(0.9 < c["cosine"] <= 1.0 + 1e-9 for c in cosines)                 # 3 steps: still at init
        assert gm[kind]["clean"] == res["models"][kind]["train"]["test_accuracy"]
        assert gm[kind]["robust"] is None                                           # robust_eval off at smoke
        assert gm[kind]["init_cosine_layers"][0] == "conv1"
        gated = {c["group"] for c in cosines if c["name"] in gm[kind]["init_cosine_layers"]}
        assert gated == {"first", res["last_group"]}
        assert gm[kind]["init_cosine"] == max(c["cosine"] for c in cosines if c["group"] in gated)
    for c in saved:
        assert c["verdict"] == "inconclusive" and c["gates"] == "missed" and c["measured"].startswith("below gate: ")
        assert c["gate_models"] == ["standard", "robust"]
        assert [r["model"] for r in c["gate_records"]] == ["standard", "robust"]
        for r in c["gate_records"]:
            assert not r["met"] and r["source"].startswith("smoke: ")
            assert {k["metric"] for k in r["checks"]} == ({"clean", "init_cosine"} if r["model"] == "standard"
                                                         else {"clean", "robust", "init_cosine"})
    lax = _config(gates={k: gate_spec(clean=0.0, init_cosine_max=1.0, source="lax") for k in ("standard", "robust")})
    assert {c["verdict"] for c in filter_lens.claims(lax, res)} <= {"reproduced", "not reproduced"}

    # rerun: cached parts are reused (files untouched) and give the same claims
    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = filter_lens.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes

    # an imported training workdir is measured as an extra model of its kind, with its own gate
    config.import_workdirs = (f"robust:{os.path.join(wd, 'models', 'robust')}",)
    with pytest.raises(ValueError, match=r"\['imported/robust'\] have no quality gate"):
        filter_lens.run(config, wd)
    config.gates["imported/robust"] = gate_spec(clean=0.5, init_cosine_max=0.9, source="test gate")
    rec3 = filter_lens.run(config, wd)
    imp = rec3["results"]["imported"]
    assert len(imp) == 1 and imp[0]["kind"] == "robust" and imp[0]["name"] == "imported/robust"
    assert imp[0]["by_depth"] == res["models"]["robust"]["by_depth"]
    assert imp[0]["init_cosine"]["layers"] == res["models"]["robust"]["init_cosine"]["layers"]
    assert rec3["results"]["gate_measurements"]["imported/robust"] == gm["robust"]
    assert [r["met"] for r in filter_lens.gate_records(config, rec3["results"]).values()] == [False] * 3
    assert rec3["claims"] == record["claims"]                          # the claims rest on the pair only

    # the same two workdirs loaded as a pair: evaluated by the study itself, the same gates
    config.import_workdirs = ()
    config.pair_workdirs = tuple(f"{k}:{os.path.join(wd, 'models', k)}" for k in ("standard", "robust"))
    loaded = filter_lens.run(config, str(tmp_path / "pair"))
    lres = loaded["results"]
    for kind in ("standard", "robust"):
        ev = lres["models"][kind]["evaluation"]
        assert ev["n_clean"] == 64 and ev["robust_accuracy"] is None
        assert ev["clean_accuracy"] == pytest.approx(res["models"][kind]["train"]["test_accuracy"], abs=1e-9)
        assert lres["models"][kind]["init_cosine"]["layers"] == res["models"][kind]["init_cosine"]["layers"]
    assert [(c["id"], c["verdict"], c["gates"]) for c in loaded["claims"]] == \
           [(c["id"], c["verdict"], c["gates"]) for c in record["claims"]]
