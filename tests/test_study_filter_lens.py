"""Study 4 (filter lens) on the smoke profile: outputs, their structure, cached reruns, imports."""
import json
import os

import numpy as np




def test_filter_lens_smoke(tmp_path, load_repo_module):
    study = load_repo_module("experiments/filter_lens.py", "study_filter_lens")
    config = load_repo_module("configs/filter_lens.py", "config_filter_lens").get_config("smoke")
    wd = str(tmp_path / "study")
    record = study.run(config, wd)

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
    claims = json.load(open(os.path.join(wd, "claims.json")))
    assert [c["id"] for c in claims] == ["4.1", "4.2", "4.3", "4.4"]
    assert all(c["verdict"] in ("reproduced", "not reproduced") for c in claims)

    # rerun: cached parts are reused (files untouched) and give the same claims
    parts = os.path.join(wd, "parts")
    mtimes = {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)}
    again = study.run(config, wd)
    assert again["claims"] == record["claims"]
    assert {p: os.path.getmtime(os.path.join(parts, p)) for p in os.listdir(parts)} == mtimes

    # an imported training workdir is measured as an extra model of its kind
    config.import_workdirs = (f"robust:{os.path.join(wd, 'models', 'robust')}",)
    rec3 = study.run(config, wd)
    imp = rec3["results"]["imported"]
    assert len(imp) == 1 and imp[0]["kind"] == "robust"
    assert imp[0]["by_depth"] == res["models"]["robust"]["by_depth"]
