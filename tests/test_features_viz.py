"""Smoke tests: weight maps, correlation-vs-weight and top-k figures write non-empty PNG files."""
import numpy as np
import pytest

from jadv.viz.features import plot_correlation_vs_weight, plot_top_k_curves, plot_weight_maps


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_feature_figures(tmp_path):
    rng = np.random.default_rng(0)
    corr = rng.uniform(-1, 1, 784)
    w = {"vanilla": rng.normal(size=784), "adversarial": corr * (np.abs(corr) > 0.8)}
    assert _is_png(plot_weight_maps(w, tmp_path / "w.png", corr=corr))
    assert _is_png(plot_correlation_vs_weight(corr, w, tmp_path / "cw.png"))
    curves = {"eps=0": {"k": np.array([1, 10, 100]), "standard": np.array([0.7, 0.9, 0.95]),
                        "robust": np.array([0.6, 0.5, 0.1])},
              "eps=0.1": {"k": np.array([1, 10, 100]), "standard": np.array([0.7, 0.85, 0.9]),
                          "robust": np.array([0.6, 0.6, 0.6])}}
    assert _is_png(plot_top_k_curves(curves, tmp_path / "k.png"))
    with pytest.raises(ValueError):
        plot_weight_maps({"a": np.zeros(10)}, tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_correlation_vs_weight(corr, {"a": np.zeros(10)}, tmp_path / "bad.png")
