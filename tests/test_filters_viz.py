"""Smoke tests: the filter/channel figures write non-empty PNG files."""
import numpy as np
import pytest

from jadv.analysis import aggregate_by_depth, channel_distances, layer_metrics
from jadv.viz.filters import plot_channel_distances, plot_depth_metrics, plot_first_layer_filters

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG


def _params(rng, n_layers=6):
    p = {"conv1": {"kernel": rng.normal(size=(3, 3, 3, 8))}}
    for i in range(n_layers):
        p[f"layer{i}"] = {"conv": {"kernel": rng.normal(size=(3, 3, 8, 8))}}
    return p


def test_channel_distance_figure(tmp_path):
    rng = np.random.default_rng(0)
    k0, k1 = rng.normal(size=(3, 3, 3, 8)), rng.normal(size=(3, 3, 1, 8)).repeat(3, axis=2)
    raw = {"vanilla": np.asarray(channel_distances(k0)), "adversarial": np.asarray(channel_distances(k1))}
    rel = {k: np.asarray(channel_distances(v, relative=True)) for k, v in (("vanilla", k0), ("adversarial", k1))}
    out = plot_channel_distances(raw, tmp_path / "sub" / "ch.png", relative=rel)
    assert _is_png(out)
    with pytest.raises(ValueError):
        plot_channel_distances({}, tmp_path / "x.png")


def test_depth_metrics_figure(tmp_path):
    rng = np.random.default_rng(1)
    one = aggregate_by_depth(layer_metrics(_params(rng)))
    many = [aggregate_by_depth(layer_metrics(_params(rng))) for _ in range(3)]
    out = plot_depth_metrics({"vanilla": one, "adversarial": many}, tmp_path / "depth.png")
    assert _is_png(out)
    with pytest.raises(ValueError):
        plot_depth_metrics({"a": one}, tmp_path / "d.png", metrics=("nope",))


def test_first_layer_filters_figure(tmp_path):
    rng = np.random.default_rng(2)
    out = plot_first_layer_filters({"a": rng.normal(size=(3, 3, 3, 10)), "b": rng.normal(size=(3, 3, 3, 10))},
                                   str(tmp_path / "f.png"))
    assert _is_png(out)
