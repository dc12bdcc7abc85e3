"""Curvature/landscape figures: they render, save a PNG and reject malformed input."""
import numpy as np
import pytest

from jadv.viz import curvature as vc


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plots_save_png(tmp_path):
    grid = np.linspace(-1, 3, 200)
    dens = np.exp(-grid ** 2 / 0.1)
    fig = vc.plot_spectral_density(grid, dens, path=tmp_path / "d.png", label="AT")
    assert fig.axes[0].get_yscale() == "log"
    a = np.linspace(-1, 1, 11)
    fig = vc.plot_landscape_1d({"std": (a, a ** 2), "AT": (a, 0.5 * a ** 2)}, path=tmp_path / "sub" / "l.png")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["std", "AT"]
    fig = vc.plot_eigenvalues_vs_eps([0, 0.2, 0.4], {"exact": [0.1, 0.2, 0.3], "fixed": [0.1, 0.15, 0.2]},
                                     path=tmp_path / "e.png")
    assert len(fig.axes[0].get_lines()) == 2
    for name in ("d.png", "sub/l.png", "e.png"):
        assert _is_png(tmp_path / name)


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="equal length"):
        vc.plot_spectral_density(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=".png"):
        vc.plot_spectral_density(np.zeros(3), np.ones(3), path=tmp_path / "x.pdf")
    with pytest.raises(TypeError, match="non-empty dict"):
        vc.plot_landscape_1d([])
    with pytest.raises(ValueError, match="equal length"):
        vc.plot_landscape_1d({"a": (np.zeros(3), np.zeros(2))})
    with pytest.raises(ValueError, match="shape"):
        vc.plot_eigenvalues_vs_eps([0, 1], {"a": [1, 2, 3]})
