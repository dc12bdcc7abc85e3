"""experiments/reproduce.py on the smoke profile: report with a claims table, and a killed run
finishes without redoing finished studies.

Two of the five studies keep this test short; every study's smoke run is also tested on its own
(tests/test_study_*.py).
"""
import importlib
import os

import pytest

EXPERIMENTS = os.path.join(os.path.dirname(__file__), "..", "experiments")
STUDIES = ("sketchy_channels", "filter_lens")


@pytest.fixture
def reproduce(monkeypatch):
    monkeypatch.syspath_prepend(os.path.abspath(EXPERIMENTS))
    module = importlib.import_module("reproduce")
    return module


@pytest.mark.slow
def test_killed_reproduce_resumes_without_redoing_finished_studies(reproduce, tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    second = importlib.import_module(f"jadv.studies.{STUDIES[1]}")
    real_run = second.run

    def killed(config, workdir):
        raise KeyboardInterrupt("killed in the middle of the second study")

    monkeypatch.setattr(second, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        reproduce.run("smoke", out, studies=STUDIES)
    first_done = os.path.join(out, STUDIES[0], "done.json")
    assert os.path.exists(first_done) and not os.path.exists(os.path.join(out, STUDIES[1], "done.json"))
    stamp = os.path.getmtime(first_done)

    first = importlib.import_module(f"jadv.studies.{STUDIES[0]}")
    monkeypatch.setattr(first, "run", lambda *a, **k: pytest.fail("a finished study was run again"))
    monkeypatch.setattr(second, "run", real_run)
    report = reproduce.run("smoke", out, studies=STUDIES)
    assert os.path.getmtime(first_done) == stamp
    text = open(report).read()
    assert "| study | claim | measured | models met gates | verdict | source |" in text
    for study in STUDIES:
        assert f"| {study} |" in text
    # smoke models (a few steps) miss their quality gates: the gated claims are inconclusive, with
    # the gate column saying which models missed, and each study lists its models' gates
    assert "**inconclusive**" in text and "| no: " in text
    assert "| model | gate: measured (threshold) | met | gate source |" in text and "| **no** |" in text
    assert "inconclusive (models below their quality gates)" in text
    html = open(os.path.join(out, "report.html")).read()
    assert "<table>" in html and "<img" in html
    for line in text.splitlines():
        if line.startswith("![") and "](" in line:
            assert os.path.exists(os.path.join(out, line.split("](")[1].rstrip(")"))), line
    # the export keeps the report, records and every linked figure, and no models or parts
    dest = str(tmp_path / "export")
    copied = reproduce.export_report(out, dest)
    assert open(os.path.join(dest, "report.md")).read() == text
    for line in text.splitlines():
        if line.startswith("![") and "](" in line:
            assert os.path.exists(os.path.join(dest, line.split("](")[1].rstrip(")"))), line
    for study in STUDIES:
        assert os.path.join(study, "claims.json") in copied
    assert not any(p.split(os.sep)[1] in ("models", "parts", "running.json") for p in copied if os.sep in p)
    with pytest.raises(FileNotFoundError, match="no report in"):
        reproduce.export_report(str(tmp_path / "nothing"), dest)


def test_unknown_profile_and_study_are_clear_errors(reproduce, tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        reproduce.run("huge", str(tmp_path))
    with pytest.raises(ValueError, match="unknown studies"):
        reproduce.run("smoke", str(tmp_path), studies=("nope",))


def _fake_study(monkeypatch, name, calls):
    module = importlib.import_module(f"jadv.studies.{name}")

    def run(config, workdir):
        calls.append(name)
        return {"study": name, "claims": [{"study": name, "claim": "c", "measured": "m",
                                           "verdict": "reproduced", "source": "s"}], "figures": []}
    monkeypatch.setattr(module, "run", run)


def test_a_study_held_by_a_live_process_is_skipped_and_a_stale_claim_taken_over(reproduce, tmp_path, monkeypatch):
    import json
    import socket
    import subprocess
    import sys

    out = str(tmp_path / "out")
    calls = []
    for name in STUDIES:
        _fake_study(monkeypatch, name, calls)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.makedirs(os.path.join(out, STUDIES[1]))
        lock = os.path.join(out, STUDIES[1], "running.json")
        with open(lock, "w") as f:
            json.dump({"pid": holder.pid, "host": socket.gethostname(), "started": 0}, f)
        report = open(reproduce.run("smoke", out, studies=STUDIES)).read()
        assert calls == [STUDIES[0]]                       # the held study was not run ...
        assert f"being run by another process when it was written; rerun the command to add): {STUDIES[1]}" in report
        assert os.path.exists(lock)                        # ... and its holder's claim is untouched
        assert not os.path.exists(os.path.join(out, STUDIES[0], "running.json"))   # released when done
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its claim is stale, the rerun takes it over and finishes the report
    report = open(reproduce.run("smoke", out, studies=STUDIES)).read()
    assert calls == [STUDIES[0], STUDIES[1]] and "Not in this report" not in report
    assert not os.path.exists(lock) and os.path.exists(os.path.join(out, STUDIES[1], "done.json"))


def test_claims_are_exclusive_and_unreadable_claims_are_stale(reproduce, tmp_path):
    import json
    import socket

    workdir = str(tmp_path / "study")
    assert reproduce.claim_study(workdir) is None
    assert reproduce.claim_study(workdir) is None          # this process already holds it
    lock = os.path.join(workdir, "running.json")
    with open(lock, "w") as f:
        json.dump({"pid": os.getpid(), "host": "another-host", "started": 0}, f)
    assert reproduce.claim_study(workdir)["host"] == "another-host"   # another machine's claim stands
    reproduce.release_study(workdir)
    assert os.path.exists(lock)                            # release never drops someone else's claim
    with open(lock, "w") as f:
        f.write("{half-writ")
    assert reproduce.claim_study(workdir) is None
    assert json.load(open(lock))["host"] == socket.gethostname()
    reproduce.release_study(workdir)
    assert not os.path.exists(lock)


def test_reclaim_derives_finished_claims_again_without_running_the_study(reproduce, tmp_path, monkeypatch):
    import json

    study = importlib.import_module("jadv.studies.sketchy_channels")
    monkeypatch.setattr(study, "run", lambda *a, **k: pytest.fail("a finished study was run again"))

    def model(colour, grey, sketch):
        acc = {"colour": colour, "grey": grey, "sketch": sketch}
        ne = {"count": 0, "n": 192, "min": 0.3, "share": 0.0, "median": 0.7}
        return {"accuracy": acc, "kept": {v: acc[v] / colour for v in ("grey", "sketch")},
                "near_equal_raw": ne, "near_equal_relative": ne,
                "gate_measured": {"clean": colour, "robust": 0.3, "init_cosine": 0.5}}

    out = str(tmp_path / "out")
    done = os.path.join(out, "sketchy_channels", "done.json")
    os.makedirs(os.path.dirname(done))
    old = [{"study": "sketchy_channels", "id": "1.2-grey-colored_digits", "claim": "c", "measured": "old",
            "verdict": "reproduced", "source": "s", "command": ""},
           {"study": "sketchy_channels", "id": "1.1-raw-cifar10", "claim": "kept as it was", "measured": "m",
            "verdict": "not run at this profile", "source": "s", "command": ""}]
    results = {"colored_digits": {"models": {"vanilla": model(0.7, 0.6, 0.4), "linf_at": model(0.1, 0.1, 0.1),
                                             "l2_at": model(0.3, 0.3, 0.25)},
                                  "spearman": {"near_equal_raw~kept_grey": None}}}
    with open(done, "w") as f:
        json.dump({"study": "sketchy_channels", "claims": old, "results": results, "figures": [],
                   "wall_time_s": 123.0}, f)
    with open(os.path.join(out, "sketchy_channels", "results.json"), "w") as f:
        json.dump({"study": "sketchy_channels", "results": results, "claims": old}, f)
    report = open(reproduce.run("smoke", out, studies=("sketchy_channels",), rederive=True)).read()
    record = json.load(open(done))
    rows = {c["id"]: c for c in record["claims"]}
    assert rows["1.2-grey-colored_digits"]["verdict"] == "inconclusive"   # linf_at is below its gate
    # every claim is derived again from the results: the old rows are replaced, the missing added
    assert rows["1.1-raw-cifar10"]["claim"] != "kept as it was"
    assert rows["1.1-raw-cifar10"]["verdict"] == "not run at this profile"          # no cifar10 results
    assert [c["id"] for c in record["claims"]][:5] == [
        "1.1-raw-colored_digits", "1.1-relative-colored_digits", "1.2-grey-colored_digits",
        "1.2-sketch-colored_digits", "1.3-colored_digits"]
    assert record["wall_time_s"] == 123.0 and "claims_rederived_at" in record
    assert json.load(open(os.path.join(out, "sketchy_channels", "claims.json"))) == record["claims"]
    assert json.load(open(os.path.join(out, "sketchy_channels", "results.json")))["claims"] == record["claims"]
    assert "colored_digits/linf_at clean acc 0.100 < 0.79" in report
