"""Study 3 (scale properties, jadv.studies.scale_properties): the verdict rules of every claim on
hand-made results, the quality gates of the claims' models, the config's training configs and
gates, the per-model evaluation against a linear model's exact worst case, and a smoke run through
the library API."""
import copy
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jadv.studies import scale_properties as sp

CLAIM_IDS = ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7"]


@pytest.fixture
def config_module(load_repo_module):
    return load_repo_module("configs/scale_properties.py", "config_scale_properties")


def _row(clean, robust, kind="ratio", norm="batch", ratio=None, depth=20, bn_set="clean", autoattack=None):
    return {"kind": kind, "norm": norm, "ratio": ratio, "depth": depth, "bn_set": bn_set, "clean": clean,
            "robust": robust, "autoattack": autoattack}


def _results():
    """Results of the paper profile's models in which every claim holds and every model meets its
    paper-profile gate (``configs/scale_properties.py``)."""
    table = {
        "r100": _row(0.92, 0.02, ratio=1.0),
        "r50": _row(0.85, 0.35, ratio=0.5, autoattack=0.30),
        "r0": _row(0.80, 0.45, ratio=0.0, autoattack=0.40),
        "mbn50/clean": _row(0.88, 0.05, kind="mbn", norm="dual_batch", ratio=0.5),
        "mbn50/adv": _row(0.82, 0.47, kind="mbn", norm="dual_batch", ratio=0.5, bn_set="adv", autoattack=0.42),
        "gn50": _row(0.78, 0.38, norm="group", ratio=0.5),
        "gn0": _row(0.75, 0.42, norm="group", ratio=0.0),
        "alp": _row(0.82, 0.38, kind="alp"),
        "advprop/clean": _row(0.93, 0.10, kind="advprop", norm="dual_batch"),
        "advprop/adv": _row(0.85, 0.40, kind="advprop", norm="dual_batch", bn_set="adv"),
        "d56": _row(0.82, 0.47, depth=56, ratio=0.0),
        "d110": _row(0.83, 0.50, depth=110, ratio=0.0),
    }
    depth = {"models": ["r0", "d56", "d110"], "depths": [20, 56, 110], "clean": [0.80, 0.82, 0.83],
             "robust": [0.45, 0.47, 0.50]}
    strong = {"model": "r0", "eps": 8 / 255, "n": 1000, "steps": [10, 100, 1000, 2000],
              "step_size": [0.003, 0.002, 0.002, 0.002], "robust_accuracy": [0.52, 0.46, 0.45, 0.448]}
    return {"table": table, "depth": depth, "gate_measurements": sp.gate_measurements(table), "strong_pgd": strong}


def _strong(results, acc):
    """``results`` with the strong-PGD accuracies ``acc``."""
    results["strong_pgd"]["robust_accuracy"] = list(acc)
    return results


def _claims(config, results):
    """``{id: claim}`` from the results as a saved results.json gives them."""
    out = sp.claims(config, json.loads(json.dumps(results)))
    assert [c["id"] for c in out] == CLAIM_IDS
    for c in out:
        assert c["study"] == "scale_properties" and c["claim"] and c["measured"]
        assert "arXiv:" in c["source"] and "analysis-methods" not in c["source"]
        assert c["command"] == ("python experiments/scale_properties.py --config "
                                f"configs/scale_properties.py:{config.profile}")
        assert c["gates"] in ("met", "missed")                  # every claim rests on trained models
        assert [r["model"] for r in c["gate_records"]] == c["gate_models"]
    return {c["id"]: c for c in out}


def _verdicts(config, results):
    """``{id: verdict}``; every claim's models met their gates."""
    out = _claims(config, results)
    assert {c["gates"] for c in out.values()} == {"met"}, {k: c["gates"] for k, c in out.items()}
    return {k: c["verdict"] for k, c in out.items()}


def _set(results, label, **fields):
    """``results`` with the table row ``label`` changed, and its gate measurements with it."""
    results["table"][label].update(fields)
    results["gate_measurements"] = sp.gate_measurements(results["table"])
    return results


def test_claims_all_reproduced(config_module):
    config = config_module.get_config("paper")
    assert set(_verdicts(config, _results()).values()) == {"reproduced"}


# each case: (claim id, how the results change) -> that claim alone is "not reproduced"
# every model stays above its gate, so the verdict rules decide
NOT_REPRODUCED = {
    "3.1 not monotone": ("3.1", lambda r: _set(r, "r100", robust=0.40)),
    "3.1 no rise": ("3.1", lambda r: _set(_set(_set(_set(r, "r0", robust=0.36), "r50", robust=0.36), "r100",
                                                    robust=0.36), "gn0", robust=0.37)),
    "3.2": ("3.2", lambda r: _set(r, "mbn50/adv", robust=0.34)),
    "3.3 clean lower": ("3.3", lambda r: _set(r, "mbn50/clean", clean=0.80)),
    "3.3 robust": ("3.3", lambda r: _set(r, "mbn50/clean", robust=0.10)),     # not below near_zero 0.1
    "3.4": ("3.4", lambda r: _set(r, "gn0", robust=0.55)),
    "3.5 falls": ("3.5", lambda r: dict(r, depth=dict(r["depth"], robust=[0.45, 0.51, 0.50]))),
    "3.5 flat": ("3.5", lambda r: dict(r, depth=dict(r["depth"], robust=[0.45, 0.45, 0.45]))),
    "3.6": ("3.6", lambda r: _set(r, "advprop/clean", clean=0.90)),
    "3.7 keeps falling": ("3.7", lambda r: _strong(r, [0.52, 0.50, 0.46, 0.40])),
    "3.7 rises": ("3.7", lambda r: _strong(r, [0.45, 0.47, 0.47, 0.47])),
}


@pytest.mark.parametrize("case", sorted(NOT_REPRODUCED))
def test_claims_not_reproduced(config_module, case):
    cid, change = NOT_REPRODUCED[case]
    verdicts = _verdicts(config_module.get_config("paper"), change(copy.deepcopy(_results())))
    assert verdicts[cid] == "not reproduced"
    assert all(v == "reproduced" for k, v in verdicts.items() if k != cid), verdicts


# each case: (evaluation, the change that puts it below its paper gate, the claims resting on it)
BELOW_GATE = {
    "r100 clean": ("r100", {"clean": 0.70}, {"3.1", "3.6"}),
    "r50 robust": ("r50", {"robust": 0.20}, {"3.1", "3.2", "3.4"}),
    "r0 clean": ("r0", {"clean": 0.50}, {"3.1", "3.4", "3.5", "3.7"}),
    "mbn50/clean clean": ("mbn50/clean", {"clean": 0.60}, {"3.3"}),
    "mbn50/adv robust": ("mbn50/adv", {"robust": 0.10}, {"3.2", "3.3"}),
    "gn50 clean": ("gn50", {"clean": 0.40}, {"3.4"}),
    "gn0 robust": ("gn0", {"robust": 0.20}, {"3.4"}),
    "d110 robust": ("d110", {"robust": 0.30}, {"3.5"}),
    "advprop/clean clean": ("advprop/clean", {"clean": 0.75}, {"3.6"}),
    "advprop/adv robust": ("advprop/adv", {"robust": 0.15}, {"3.6"}),
    "alp": ("alp", {"clean": 0.10, "robust": 0.0}, set()),        # reported only: no claim rests on it
}


@pytest.mark.parametrize("case", sorted(BELOW_GATE))
def test_claims_below_gate_inconclusive(config_module, case):
    """A model below its gate makes every claim that rests on it inconclusive, with the shortfall in
    front of "measured", whatever the verdict rule would have said; the other claims stay decided."""
    label, change, resting = BELOW_GATE[case]
    out = _claims(config_module.get_config("paper"), _set(copy.deepcopy(_results()), label, **change))
    for cid, c in out.items():
        if cid in resting:
            assert c["verdict"] == "inconclusive" and c["gates"] == "missed"
            assert c["measured"].startswith(f"below gate: {label} ") and " | " in c["measured"]
            assert [r["model"] for r in c["gate_records"] if not r["met"]] == [label]
        else:
            assert c["verdict"] == "reproduced" and c["gates"] == "met", (cid, c)


def test_claims_gate_records(config_module):
    """Each claim is gated on the evaluations it reads; a record holds the measured values, the
    thresholds of ``config.gates`` and their source."""
    config = config_module.get_config("paper")
    out = _claims(config, _results())
    assert {k: c["gate_models"] for k, c in out.items()} == {
        "3.1": ["r100", "r50", "r0"], "3.2": ["mbn50/adv", "r50"], "3.3": ["mbn50/clean", "mbn50/adv"],
        "3.4": ["r0", "r50", "gn0", "gn50"], "3.5": ["r0", "d56", "d110"],
        "3.6": ["advprop/clean", "advprop/adv", "r100"], "3.7": ["r0"]}
    rec = {r["model"]: r for c in out.values() for r in c["gate_records"]}
    assert rec["mbn50/adv"]["checks"] == [
        {"metric": "clean", "value": 0.82, "threshold": config.gates["mbn50/adv"].clean, "kind": "min", "ok": True},
        {"metric": "robust", "value": 0.47, "threshold": config.gates["mbn50/adv"].robust, "kind": "min", "ok": True}]
    assert [c["metric"] for c in rec["r100"]["checks"]] == ["clean"]             # standard training
    assert [c["metric"] for c in rec["mbn50/clean"]["checks"]] == ["clean"]      # claim 3.3: near-zero robust
    assert rec["r0"]["source"] == config.gates["r0"].source


def test_claims_regated_with_new_thresholds(config_module):
    """The same saved results, gated again with a raised threshold (``--reclaim``): decided claims
    turn inconclusive; with the gates met, the verdict rules decide, reproduced or not."""
    config = config_module.get_config("paper")
    results = _results()
    assert set(_verdicts(config, results).values()) == {"reproduced"}
    config.gates["r0"].robust = 0.46                         # r0 measured 0.45
    out = _claims(config, results)
    assert {k for k, c in out.items() if c["verdict"] == "inconclusive"} == {"3.1", "3.4", "3.5", "3.7"}
    assert out["3.1"]["measured"].startswith("below gate: r0 robust acc 0.450 < 0.46 | ")
    config.gates["r0"].robust = 0.20
    changed = _set(copy.deepcopy(results), "r100", robust=0.40)
    assert _verdicts(config, changed)["3.1"] == "not reproduced"


def test_claims_gates_fall_back_to_the_table(config_module):
    """Results saved without ``gate_measurements`` are gated on the table's clean / robust values."""
    config = config_module.get_config("paper")
    results = _set(copy.deepcopy(_results()), "r100", clean=0.50)
    del results["gate_measurements"]
    out = _claims(config, results)
    assert out["3.6"]["verdict"] == "inconclusive" and "r100 clean acc 0.500 < 0.88" in out["3.6"]["measured"]


def test_gate_specs(config_module):
    """Every trained model needs a well-formed gate: the study checks them before training."""
    config = config_module.get_config("small")
    assert set(sp.gate_specs(config)) == {label for label, _, _ in sp.evaluation_labels(config)}
    del config.gates["mbn50/adv"]
    with pytest.raises(ValueError, match=r"\['mbn50/adv'\] of profile 'small' have no quality gate"):
        sp.gate_specs(config)
    with pytest.raises(ValueError, match="no quality gate"):
        sp.run(config, "/nonexistent/never/written")
    config = config_module.get_config("small")
    config.gates["r0"].robust = 1.5
    with pytest.raises(ValueError, match=r"config.gates\['r0'\]: gate robust must be a number in \[0, 1\]"):
        sp.gate_specs(config)


# each case: claim id -> (the evaluations left out, the other claims that need them too)
NOT_RUN = {"3.1": (["r100"], {"3.6"}), "3.2": (["mbn50/adv"], {"3.3"}), "3.3": (["mbn50/clean"], set()),
           "3.4": (["gn50"], set()), "3.5": ([], set()), "3.6": (["advprop/clean", "advprop/adv"], set()),
           "3.7": ([], set())}


@pytest.mark.parametrize("cid", sorted(NOT_RUN))
def test_claims_not_run(config_module, cid):
    left_out, also = NOT_RUN[cid]
    results = _results()
    if cid == "3.5":                   # a single depth: no sweep
        results["depth"] = {k: v[:1] for k, v in results["depth"].items()}
    if cid == "3.7":                   # results saved before the strong-PGD sweep existed
        del results["strong_pgd"]
    for label in left_out:
        del results["table"][label]
    out = {c["id"]: c for c in sp.claims(config_module.get_config("paper"), results)}
    for k in {cid} | also:
        assert out[k]["verdict"] == "not run at this profile"
        assert "not trained at profile 'paper'" in out[k]["measured"]
        assert not set(left_out) & set(out[k]["gate_models"])       # gated on the models that are there
    assert {out[k]["verdict"] for k in out if k not in {cid} | also} == {"reproduced"}


def test_claims_smoke_profile_texts(config_module):
    config = config_module.get_config("smoke")
    r = _results()
    table = {k: r["table"][k] for k in ("r100", "r0", "mbn50/clean", "mbn50/adv")}
    depth = {k: v[:1] for k, v in r["depth"].items()}
    for label in table:                                      # open the smoke gates: the rule decides
        config.gates[label].clean, config.gates[label].robust = 0.0, None
    out = {c["id"]: c for c in sp.claims(config, {"table": table, "depth": depth})}
    assert out["3.3"]["verdict"] == "reproduced" and out["3.3"]["gates"] == "met"
    assert out["3.3"]["claim"].endswith("near-zero robustness (PGD-2 acc < 0.1)")
    assert "r50" in out["3.1"]["measured"]
    assert {k: c["verdict"] for k, c in out.items() if k != "3.3"} == dict.fromkeys(
        ["3.1", "3.2", "3.4", "3.5", "3.6", "3.7"], "not run at this profile")


@pytest.mark.parametrize("acc, expected", [
    ([0.525, 0.417, 0.390], True),          # the released ResNet-152 (PGD-10 / 100 / 1000)
    ([0.90, 0.90, 0.895], True),            # flat: within the 1-point floor
    ([0.52, 0.46, 0.45, 0.448], True),
    ([0.52, 0.46, 0.40], False),            # still falling: 6 points after 6
    ([0.40, 0.45, 0.45], False),            # rises by 5 points: the weaker attack was not weaker
    ([0.50, 0.50, 0.48], False),            # 2 points lost only at the end
])
def test_levels_off(acc, expected):
    assert sp.levels_off(acc) is expected


def test_levels_off_needs_three_points():
    with pytest.raises(ValueError, match=">= 3 iteration counts"):
        sp.levels_off([0.5, 0.4])


def test_strong_pgd_step_and_errors():
    assert sp.strong_pgd_step(0.3, 10) == pytest.approx(0.03)           # eps / k below 16 steps
    assert sp.strong_pgd_step(0.3, 1000) == pytest.approx(0.3 / 16)      # eps / 16 beyond
    with pytest.raises(ValueError, match="increasing positive"):
        sp.strong_pgd(lambda z: z, np.zeros((2, 1)), np.zeros(2, int), key=None, eps=0.1, steps=(10, 5))


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


def test_config_gates(config_module):
    """Every profile gives every evaluation a gate with its source; only the BN sets that saw
    adversarial images have a robust gate; smoke takes small's thresholds."""
    for profile in config_module.PROFILES:
        config = config_module.get_config(profile)
        specs = sp.gate_specs(config)
        assert list(specs) == [label for label, _, _ in sp.evaluation_labels(config)]
        for label, g in specs.items():
            assert g["init_cosine_max"] is None and g["clean"] is not None          # no weight claims
            assert (g["robust"] is None) == (label in ("r100", "mbn50/clean", "advprop/clean")), label
            if profile in ("smoke", "small"):
                assert "jadv reference run, RESULTS.md (scale_properties gates)" in g["source"]
            elif profile == "medium":      # MNIST, Linf 0.3: published MNIST numbers
                published = "LeCun et al. 1998" if g["robust"] is None else "Madry et al. 2018"
                assert g["source"].startswith("published") and published in g["source"], (label, g["source"])
            else:
                published = "arXiv:1512.03385" if label in ("r100", "advprop/clean") else "PreActResNet-18"
                assert published in g["source"], (label, g["source"])
    smoke, small = config_module.get_config("smoke").gates, config_module.get_config("small").gates
    for label in smoke:
        assert (smoke[label].clean, smoke[label].robust) == (small[label].clean, small[label].robust)


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
    # every iteration count reaches the same exact worst case: k steps of max(eps/16, eps/k) cross the ball
    strong = sp.strong_pgd(logits_fn, x[:30], y[:30], params=jnp.asarray(w), key=key, eps=eps, steps=(1, 3, 40),
                           batch_size=16)
    assert strong["steps"] == [1, 3, 40] and strong["n"] == 30
    assert strong["step_size"] == pytest.approx([eps, eps / 3, eps / 16])
    assert strong["robust_accuracy"] == pytest.approx([exact] * 3)


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
    strong = res["strong_pgd"]
    assert (strong["model"], strong["steps"], strong["n"]) == ("r0", [1, 2, 4], 32)
    assert all(0.0 <= a <= res["models"]["r0"]["clean_accuracy"] + 1 / 32 for a in strong["robust_accuracy"])
    assert os.path.exists(os.path.join(wd, "parts", "strong_pgd_r0.json"))

    assert res["gate_measurements"] == {label: {"clean": m["clean_accuracy"], "robust": m["pgd"]["robust_accuracy"]}
                                        for label, m in res["models"].items()}

    claims = {c["id"]: c for c in json.load(open(os.path.join(wd, "claims.json")))}
    assert set(claims) == set(CLAIM_IDS)
    # MBN is trained at smoke, 3 steps: far below the gate, so 3.3 is inconclusive
    assert claims["3.3"]["verdict"] == "inconclusive" and claims["3.3"]["gates"] == "missed"
    assert claims["3.3"]["measured"].startswith("below gate: mbn50/clean clean acc ")
    assert claims["3.3"]["gate_models"] == ["mbn50/clean", "mbn50/adv"]
    for r in claims["3.3"]["gate_records"]:
        assert set(r) == {"model", "met", "checks", "source"} and r["source"].startswith("smoke: ")
        assert [c["value"] for c in r["checks"]] == [res["gate_measurements"][r["model"]][c["metric"]]
                                                     for c in r["checks"]]
    assert claims["3.1"]["verdict"] == "not run at this profile"              # r50 is not
    assert "r50" in claims["3.1"]["measured"] and claims["3.1"]["gate_models"] == ["r100", "r0"]
    assert sp.claims(config, saved["results"]) == record["claims"]           # --reclaim on the saved results

    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = sp.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes
