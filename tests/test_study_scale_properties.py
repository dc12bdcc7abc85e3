"""Study 3 (scale properties, jadv.studies.scale_properties): the verdict rules of every claim on
hand-made results, the config's training configs, the per-model evaluation against a linear
model's exact worst case, and a smoke run through the library API."""
import copy
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jadv.studies import scale_properties as sp

CLAIM_IDS = ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"]


@pytest.fixture
def config_module(load_repo_module):
    return load_repo_module("configs/scale_properties.py", "config_scale_properties")


def _row(clean, robust, kind="ratio", norm="batch", ratio=None, depth=20, bn_set="clean", autoattack=None):
    return {"kind": kind, "norm": norm, "ratio": ratio, "depth": depth, "bn_set": bn_set, "clean": clean,
            "robust": robust, "autoattack": autoattack}


def _results():
    """Results of the paper profile's models in which every claim holds."""
    table = {
        "r100": _row(0.80, 0.05, ratio=1.0),
        "r50": _row(0.70, 0.20, ratio=0.5, autoattack=0.15),
        "r0": _row(0.60, 0.30, ratio=0.0, autoattack=0.25),
        "mbn50/clean": _row(0.75, 0.05, kind="mbn", norm="dual_batch", ratio=0.5),
        "mbn50/adv": _row(0.65, 0.32, kind="mbn", norm="dual_batch", ratio=0.5, bn_set="adv", autoattack=0.27),
        "gn50": _row(0.55, 0.25, norm="group", ratio=0.5),
        "gn0": _row(0.50, 0.28, norm="group", ratio=0.0),
        "alp": _row(0.60, 0.28, kind="alp"),
        "advprop/clean": _row(0.82, 0.10, kind="advprop", norm="dual_batch"),
        "advprop/adv": _row(0.70, 0.25, kind="advprop", norm="dual_batch", bn_set="adv"),
        "d56": _row(0.62, 0.32, depth=56, ratio=0.0),
        "d110": _row(0.63, 0.35, depth=110, ratio=0.0),
    }
    depth = {"models": ["r0", "d56", "d110"], "depths": [20, 56, 110], "clean": [0.60, 0.62, 0.63],
             "robust": [0.30, 0.32, 0.35]}
    return {"table": table, "depth": depth}


def _verdicts(config, results):
    out = sp.claims(config, json.loads(json.dumps(results)))      # what a saved results.json gives
    assert [c["id"] for c in out] == CLAIM_IDS
    for c in out:
        assert c["study"] == "scale_properties" and c["claim"] and c["measured"]
        assert "arXiv:" in c["source"] and "analysis-methods" not in c["source"]
        assert c["command"] == "python experiments/scale_properties.py --config configs/scale_properties.py:paper"
    return {c["id"]: c["verdict"] for c in out}


def _set(results, label, **fields):
    results["table"][label].update(fields)
    return results


def test_claims_all_reproduced(config_module):
    config = config_module.get_config("paper")
    assert set(_verdicts(config, _results()).values()) == {"reproduced"}


# each case: (claim id, how the results change) -> that claim alone is "not reproduced"
NOT_REPRODUCED = {
    "3.1 not monotone": ("3.1", lambda r: _set(r, "r100", robust=0.25)),
    "3.1 no rise": ("3.1", lambda r: _set(_set(_set(r, "r0", robust=0.20), "r100", robust=0.20), "gn0", robust=0.21)),
    "3.2": ("3.2", lambda r: _set(r, "mbn50/adv", robust=0.19)),
    "3.3 clean lower": ("3.3", lambda r: _set(r, "mbn50/clean", clean=0.60)),
    "3.3 robust": ("3.3", lambda r: _set(r, "mbn50/clean", robust=0.10)),     # not below near_zero 0.1
    "3.4": ("3.4", lambda r: _set(r, "gn0", robust=0.40)),
    "3.5 falls": ("3.5", lambda r: dict(r, depth=dict(r["depth"], robust=[0.30, 0.36, 0.35]))),
    "3.5 flat": ("3.5", lambda r: dict(r, depth=dict(r["depth"], robust=[0.30, 0.30, 0.30]))),
    "3.6": ("3.6", lambda r: _set(r, "advprop/clean", clean=0.79)),
}


@pytest.mark.parametrize("case", sorted(NOT_REPRODUCED))
def test_claims_not_reproduced(config_module, case):
    cid, change = NOT_REPRODUCED[case]
    verdicts = _verdicts(config_module.get_config("paper"), change(copy.deepcopy(_results())))
    assert verdicts[cid] == "not reproduced"
    assert all(v == "reproduced" for k, v in verdicts.items() if k != cid), verdicts


# each case: claim id -> (the evaluations left out, the other claims that need them too)
NOT_RUN = {"3.1": (["r100"], {"3.6"}), "3.2": (["mbn50/adv"], {"3.3"}), "3.3": (["mbn50/clean"], set()),
           "3.4": (["gn50"], set()), "3.5": ([], set()), "3.6": (["advprop/clean", "advprop/adv"], set())}


@pytest.mark.parametrize("cid", sorted(NOT_RUN))
def test_claims_not_run(config_module, cid):
    left_out, also = NOT_RUN[cid]
    results = _results()
    if cid == "3.5":                   # a single depth: no sweep
        results["depth"] = {k: v[:1] for k, v in results["depth"].items()}
    for label in left_out:
        del results["table"][label]
    out = {c["id"]: c for c in sp.claims(config_module.get_config("paper"), results)}
    for k in {cid} | also:
        assert out[k]["verdict"] == "not run at this profile"
        assert "not trained at profile 'paper'" in out[k]["measured"]
    assert {out[k]["verdict"] for k in out if k not in {cid} | also} == {"reproduced"}


def test_claims_smoke_profile_texts(config_module):
    config = config_module.get_config("smoke")
    r = _results()
    table = {k: r["table"][k] for k in ("r100", "r0", "mbn50/clean", "mbn50/adv")}
    depth = {k: v[:1] for k, v in r["depth"].items()}
    out = {c["id"]: c for c in sp.claims(config, {"table": table, "depth": depth})}
    assert out["3.3"]["verdict"] == "reproduced"
    assert out["3.3"]["claim"].endswith("near-zero robustness (PGD-2 acc < 0.1)")
    assert "r50" in out["3.1"]["measured"]
    assert {k: c["verdict"] for k, c in out.items() if k != "3.3"} == dict.fromkeys(
        ["3.1", "3.2", "3.4", "3.5", "3.6"], "not run at this profile")


def test_config_profiles(config_module):
    assert config_module.PROFILES == ("smoke", "small", "medium", "paper")
    for profile in config_module.PROFILES:
        config = config_module.get_config(profile)
        assert config.profile == profile
        assert set(config.models) == set(config.model_order)
        assert all(n in config.models for n in config.depth_models if n in config.model_order)
        for name in config.model_order:          # every training config passes check_config
            cfg = sp.train_config(config, name)
            assert cfg.objective.eps == config.eps and cfg.seed == config.seed
    assert config_module.get_config("").profile == "small"
    with pytest.raises(ValueError, match="'medium'"):
        config_module.get_config("cpu")
    config = config_module.get_config("small")
    config.data_dir, config.eps = "/data", 0.1           # one field each, as reproduce.py sets data_dir
    cfg = sp.train_config(config, "mbn50")
    assert (cfg.data_dir, cfg.objective.eps) == ("/data", 0.1)
    assert (cfg.objective.name, cfg.objective.ratio, cfg.model.kwargs.norm) == ("mbn", 0.5, "dual_batch")
    with pytest.raises(ValueError, match="unknown model"):
        sp.train_config(config, "r25")


def test_evaluate_model_linear_exact(key):
    """Two-class linear model: the Linf worst case moves every pixel by eps against the margin, so
    a point is robust iff its margin exceeds eps * ||w||_1 (points at 0.5: the box never binds)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4 * 4,)).astype(np.float32)
    x = (0.5 + rng.uniform(-0.2, 0.2, size=(40, 4, 4, 1))).astype(np.float32)
    margin = x.reshape(40, -1) @ w
    y = (margin > 0).astype(np.int32)
    y[:5] = 1 - y[:5]                                          # five clean errors
    eps = 0.02

    def logits_fn(params, z):
        m = z.reshape(z.shape[0], -1) @ params
        return jnp.stack([-m, m], -1) / 2

    out = sp.evaluate_model(logits_fn, x, y, params=jnp.asarray(w), key=key, eps=eps, pgd_steps=10,
                            pgd_examples=30, batch_size=16)
    assert out["clean_accuracy"] == pytest.approx(35 / 40)
    exact = np.mean((np.abs(margin[:30]) > eps * np.abs(w).sum()) & (np.arange(30) >= 5))
    assert out["pgd"] == {"steps": 10, "eps": eps, "n": 30, "robust_accuracy": pytest.approx(exact)}
    assert "autoattack" not in out


def test_scale_properties_smoke(tmp_path, config_module):
    config = config_module.get_config("smoke")
    wd = str(tmp_path)
    record = sp.run(config, wd)

    assert os.path.exists(os.path.join(wd, "results.json")) and os.path.exists(os.path.join(wd, "claims.json"))
    assert sorted(os.path.basename(f) for f in record["figures"]) == ["depth.png", "robust_vs_clean_share.png"]
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"

    saved = json.load(open(os.path.join(wd, "results.json")))
    res = saved["results"]
    # the dual-BN model is evaluated through both BN sets, the others through their only one
    assert set(res["models"]) == {"r100", "r0", "mbn50/clean", "mbn50/adv"}
    for label, m in res["models"].items():
        assert 0.0 <= m["pgd"]["robust_accuracy"] <= m["clean_accuracy"] + 1.0 / m["pgd"]["n"]
        assert m["pgd"]["steps"] == config.eval.pgd_steps and m["pgd"]["n"] == 32
    assert res["models"]["mbn50/adv"]["bn_set"] == "adv"
    assert res["models"]["mbn50/adv"]["train"] == res["models"]["mbn50/clean"]["train"]   # one model, two BN sets
    assert res["models"]["r0"]["train"]["objective"] == "ratio"
    assert res["models"]["r0"]["spec"] == {"objective": "ratio", "norm": "batch", "ratio": 0.0, "depth": 8}
    assert res["depth"]["depths"] == [8]

    claims = {c["id"]: c for c in json.load(open(os.path.join(wd, "claims.json")))}
    assert set(claims) == set(CLAIM_IDS)
    assert claims["3.3"]["verdict"] in ("reproduced", "not reproduced")       # MBN is trained at smoke
    assert claims["3.1"]["verdict"] == "not run at this profile"              # r50 is not
    assert "r50" in claims["3.1"]["measured"]
    assert sp.claims(config, saved["results"]) == record["claims"]           # --reclaim on the saved results

    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = sp.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes
