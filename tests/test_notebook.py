"""The Colab quickstart notebook runs end to end on its smoke settings.

Code cells are executed in order in one namespace (no Jupyter kernel needed); `JADV_NOTEBOOK_SMOKE=1`
selects the seconds-long settings. ``python tests/test_notebook.py`` runs the notebook's full
settings the same way and prints each cell's time. The first code cell installs jadv with pip on a
fresh runtime; where jadv is importable (here) it installs nothing, which the run checks, and the
fresh-runtime paths (placeholder not filled in: a clear error; filled in: one pip command) are
checked with the import system and subprocess patched.
"""
import json
import os
import time

import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "notebooks", "quickstart.ipynb")


def execute_notebook(log=None) -> dict:
    """Run the notebook's code cells in order in one namespace; returns the namespace."""
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    namespace = {"__name__": "__notebook__"}
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 5
    for i, cell in enumerate(cells):
        t0 = time.perf_counter()
        exec(compile("".join(cell["source"]), f"quickstart.ipynb[cell {i}]", "exec"), namespace)
        if log:
            log(f"== cell {i}: {time.perf_counter() - t0:.1f} s")
    return namespace


def _install_cell() -> str:
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def _no_pip(*args, **kwargs):
    raise AssertionError(f"the install cell ran a command where jadv is importable: {args}")


def test_install_cell_on_a_fresh_runtime(monkeypatch):
    import importlib.util
    import subprocess
    import sys

    cell = _install_cell()
    assert 'JADV_SOURCE = "git+<REPOSITORY_URL>"' in cell and "pip" in cell
    monkeypatch.setattr(subprocess, "run", _no_pip)
    exec(compile(cell, "install cell", "exec"), {})                # jadv importable: nothing to do
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jadv" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match="set JADV_SOURCE in the first cell"):
        exec(compile(cell, "install cell", "exec"), {})
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    filled = cell.replace('JADV_SOURCE = "git+<REPOSITORY_URL>"', 'JADV_SOURCE = "git+https://example.org/jadv.git@v0.1.0"')
    exec(compile(filled, "install cell", "exec"), {})
    assert calls == [([sys.executable, "-m", "pip", "install", "-q", "git+https://example.org/jadv.git@v0.1.0"],
                      {"check": True})]


@pytest.mark.slow
def test_quickstart_notebook_runs_on_smoke_settings(monkeypatch, tmp_path):
    import subprocess

    monkeypatch.setenv("JADV_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", _no_pip)                 # jadv is installed: the first cell is a no-op
    namespace = execute_notebook()
    assert namespace["results"]["step"] > 0
    assert namespace["curve"].shape == (5,)
    assert float(namespace["curve"][0]) >= float(namespace["curve"][-1])


if __name__ == "__main__":
    start = time.perf_counter()
    execute_notebook(log=print)
    print(f"all cells: {time.perf_counter() - start:.1f} s")
