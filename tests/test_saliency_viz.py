"""Smoke tests: saliency, large-eps and interpolation grids write non-empty PNG files."""
import numpy as np
import pytest

from jadv.analysis import interpolate
from jadv.viz.images import plot_image_grid, plot_interpolation, plot_large_eps_grid, plot_saliency_grid


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("c", [1, 3])
def test_grids(tmp_path, c):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 8, 8, c)).astype(np.float32)
    g = {"vanilla": rng.normal(size=x.shape), "adversarial": rng.normal(size=x.shape)}
    assert _is_png(plot_saliency_grid(x, g, tmp_path / "sal.png", n=2))
    xa = {"vanilla": np.clip(x + 0.3, 0, 1), "adversarial": np.clip(x - 0.3, 0, 1)}
    assert _is_png(plot_large_eps_grid(x, xa, tmp_path / "big.png", targets=[1, 2, 0],
                                       class_names=["a", "b", "c"], eps=4.0))
    path = np.asarray(interpolate(x, xa["adversarial"], np.linspace(0, 1, 4)))
    assert _is_png(plot_interpolation(path, np.linspace(0, 1, 4), tmp_path / "interp.png"))
    with pytest.raises(ValueError):
        plot_image_grid(x, tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_interpolation(path, [0.0, 1.0], tmp_path / "bad.png")
