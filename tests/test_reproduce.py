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
    second = importlib.import_module(STUDIES[1])
    real_run = second.run

    def killed(config, workdir):
        raise KeyboardInterrupt("killed in the middle of the second study")

    monkeypatch.setattr(second, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        reproduce.run("smoke", out, studies=STUDIES)
    first_done = os.path.join(out, STUDIES[0], "done.json")
    assert os.path.exists(first_done) and not os.path.exists(os.path.join(out, STUDIES[1], "done.json"))
    stamp = os.path.getmtime(first_done)

    first = importlib.import_module(STUDIES[0])
    monkeypatch.setattr(first, "run", lambda *a, **k: pytest.fail("a finished study was run again"))
    monkeypatch.setattr(second, "run", real_run)
    report = reproduce.run("smoke", out, studies=STUDIES)
    assert os.path.getmtime(first_done) == stamp
    text = open(report).read()
    assert "| study | claim | measured | verdict | source |" in text
    for study in STUDIES:
        assert f"| {study} |" in text
    assert any(v in text for v in ("**reproduced**", "**not reproduced**", "**not run at this profile**"))
    html = open(os.path.join(out, "report.html")).read()
    assert "<table>" in html and "<img" in html
    for line in text.splitlines():
        if line.startswith("![") and "](" in line:
            assert os.path.exists(os.path.join(out, line.split("](")[1].rstrip(")"))), line


def test_unknown_profile_and_study_are_clear_errors(reproduce, tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        reproduce.run("huge", str(tmp_path))
    with pytest.raises(ValueError, match="unknown studies"):
        reproduce.run("smoke", str(tmp_path), studies=("nope",))
