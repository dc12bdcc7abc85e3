"""Study 4 (filter lens): verdict rules on hand-made results, configs, and the smoke run through
the library API (outputs, their structure, cached reruns, imported workdirs)."""
import importlib.util
import json
import os

import numpy as np
import pytest

from jadv.studies import filter_lens
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


def _by_depth(entropy, ortho):
    return [{"group": g, "sparsity": 0.0, "variance_entropy": e, "orthogonality": o}
            for g, e, o in zip(GROUPS, entropy, ortho)]


def _results(*, sparse=(0.4, 0.1), entropy=((0.5,) * 6, (0.7, 0.4, 0.4, 0.4, 0.4, 0.8)),
             ortho=((0.5,) * 6, (0.6, 0.5, 0.5, 0.5, 0.5, 0.6)), kl=(3.0, 0.1, 0.2, 0.3, 1.0, 2.0),
             accuracies=True):
    """Results of the shape run() saves (after a JSON round trip); the defaults reproduce every claim."""
    train = {k: {"test_accuracy": 0.9, "test_subset_robust_accuracy": 0.1 + 0.5 * (k == "robust")}
             if accuracies else {"workdir": f"/w/{k}"} for k in filter_lens.KINDS}
    models = {k: {"train": train[k], "layers": [], "by_depth": _by_depth(entropy[i], ortho[i])}
              for i, k in enumerate(filter_lens.KINDS)}
    results = {"models": models, "imported": [], "last_group": GROUPS[-1],
               "pooled_sparsity": dict(zip(filter_lens.KINDS, sparse)),
               "shift": {"per_layer": [], "per_group": dict(zip(GROUPS, kl)), "all_layers": float(np.mean(kl))}}
    return json.loads(json.dumps(results))


def _verdicts(results, profile="smoke"):
    return {c["id"]: c["verdict"] for c in filter_lens.claims(get_config(profile), results)}


def test_claims_all_reproduced_with_their_texts_and_sources():
    out = filter_lens.claims(get_config("small"), _results())
    assert [c["id"] for c in out] == ["4.1", "4.2", "4.3", "4.4"]
    assert all(c["verdict"] == "reproduced" for c in out)
    for c in out:
        assert "Gavrikov & Keuper 2022" in c["source"] and "arXiv:2204.02481" in c["source"]
        assert "analysis-methods" not in c["source"]
        assert c["command"] == "python experiments/filter_lens.py --config configs/filter_lens.py:small"
    assert "PGD-20 Linf 0.1 acc std 0.100 / rob 0.600" in out[0]["measured"]
    assert "max at first" in out[3]["measured"]


def test_claim_4_1_pooled_sparsity():
    assert _verdicts(_results(sparse=(0.1, 0.4)))["4.1"] == "not reproduced"
    assert _verdicts(_results(sparse=(0.2, 0.2)))["4.1"] == "not reproduced"     # strictly lower
    out = filter_lens.claims(get_config("smoke"), _results(accuracies=False))   # a loaded pair: no accuracies
    assert out[0]["verdict"] == "reproduced" and "acc" not in out[0]["measured"]


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
    config = get_config("smoke")
    config.pair_workdirs = ("robust:/r", "standard:/s")
    cmd = filter_lens.claims(config, _results(accuracies=False))[0]["command"]
    assert cmd.endswith("--config.pair_workdirs=\"('standard:/s', 'robust:/r')\"")


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
    assert all(c["verdict"] in ("reproduced", "not reproduced") for c in saved)
    assert filter_lens.claims(config, res) == saved                    # --reclaim from results.json

    # rerun: cached parts are reused (files untouched) and give the same claims
    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = filter_lens.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes

    # an imported training workdir is measured as an extra model of its kind
    config.import_workdirs = (f"robust:{os.path.join(wd, 'models', 'robust')}",)
    rec3 = filter_lens.run(config, wd)
    imp = rec3["results"]["imported"]
    assert len(imp) == 1 and imp[0]["kind"] == "robust"
    assert imp[0]["by_depth"] == res["models"]["robust"]["by_depth"]
