"""The Colab quickstart notebook runs end to end on its smoke settings.

Code cells are executed in order in one namespace (no Jupyter kernel needed); `JADV_NOTEBOOK_SMOKE=1`
selects the seconds-long settings. ``python tests/test_notebook.py`` runs the notebook's full
settings the same way and prints each cell's time.
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


@pytest.mark.slow
def test_quickstart_notebook_runs_on_smoke_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("JADV_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    namespace = execute_notebook()
    assert namespace["results"]["step"] > 0
    assert namespace["curve"].shape == (5,)
    assert float(namespace["curve"][0]) >= float(namespace["curve"][-1])


if __name__ == "__main__":
    start = time.perf_counter()
    execute_notebook(log=print)
    print(f"all cells: {time.perf_counter() - start:.1f} s")
