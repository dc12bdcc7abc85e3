"""The Colab quickstart notebook runs end to end on its smoke settings.

Code cells are executed in order in one namespace (no Jupyter kernel needed); `JADV_NOTEBOOK_SMOKE=1`
selects the seconds-long settings.
"""
import json
import os

import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "notebooks", "quickstart.ipynb")


@pytest.mark.slow
def test_quickstart_notebook_runs_on_smoke_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("JADV_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    namespace = {"__name__": "__notebook__"}
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 5
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        exec(compile(source, f"quickstart.ipynb[cell {i}]", "exec"), namespace)
    assert namespace["results"]["step"] > 0
    assert namespace["curve"].shape == (5,)
    assert float(namespace["curve"][0]) >= float(namespace["curve"][-1])
