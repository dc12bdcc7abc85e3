"""Study 3 (scale properties) on the smoke profile: outputs, their structure, cached reruns."""
import json
import os




def test_scale_properties_smoke(tmp_path, load_repo_module):
    study = load_repo_module("experiments/scale_properties.py", "study_scale_properties")
    config = load_repo_module("configs/scale_properties.py", "config_scale_properties").get_config("smoke")
    wd = str(tmp_path)
    record = study.run(config, wd)

    assert os.path.exists(os.path.join(wd, "results.json")) and os.path.exists(os.path.join(wd, "claims.json"))
    assert sorted(os.path.basename(f) for f in record["figures"]) == ["depth.png", "robust_vs_clean_share.png"]
    for fig in record["figures"]:
        assert open(os.path.join(wd, fig), "rb").read(4) == b"\x89PNG"

    res = json.load(open(os.path.join(wd, "results.json")))["results"]
    # the dual-BN model is evaluated through both BN sets, the others through their only one
    assert set(res["models"]) == {"r100", "r0", "mbn50/clean", "mbn50/adv"}
    for label, m in res["models"].items():
        assert 0.0 <= m["pgd"]["robust_accuracy"] <= m["clean_accuracy"] + 1.0 / m["pgd"]["n"]
        assert m["pgd"]["steps"] == config.eval_steps and m["pgd"]["n"] == 32
    assert res["models"]["mbn50/adv"]["bn_set"] == "adv"
    assert res["models"]["mbn50/adv"]["train"] == res["models"]["mbn50/clean"]["train"]   # one model, two BN sets
    assert res["models"]["r0"]["train"]["objective"] == "ratio"
    assert res["depth"]["depths"] == [8]

    claims = {c["id"]: c for c in json.load(open(os.path.join(wd, "claims.json")))}
    assert set(claims) == {"3.1", "3.2", "3.3", "3.4", "3.5", "3.6"}
    assert claims["3.3"]["verdict"] in ("reproduced", "not reproduced")       # MBN is trained at smoke
    assert claims["3.1"]["verdict"] == "not run at this profile"              # r50 is not
    assert "r50" in claims["3.1"]["measured"]

    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = study.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes
