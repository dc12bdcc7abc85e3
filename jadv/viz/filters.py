"""Figures for the filter studies: first-layer channel distances (Kaur et al.) and the per-depth
filter metrics of Gavrikov & Keuper (sparsity, variance entropy, orthogonality).

Each function takes arrays and an output path, writes a PNG (matplotlib object API, Agg) and
returns the path as a string; models are shown side by side (vanilla vs adversarial).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from jadv.analysis.channels import channel_distance_histogram, near_equal_share
from jadv.analysis.filters import DEPTH_GROUPS
from jadv.viz.images import _save

__all__ = ["plot_channel_distances", "plot_depth_metrics", "plot_first_layer_filters"]

_METRIC_LABELS = {"sparsity": "sparse-filter share", "variance_entropy": "variance entropy",
                  "variance_entropy_raw": "variance entropy (raw)", "orthogonality": "orthogonality"}


def plot_channel_distances(raw: Mapping[str, object], path, *, relative: Mapping[str, object] | None = None,
                           bin_width: float = 0.02, threshold: float = 0.02, title: str | None = None) -> str:
    """Histograms of per-filter channel distances, one column per model, shared bins per row.

    Args:
      raw: model label -> distances from ``channel_distances(kernel)``.
      relative: optional model label -> ``channel_distances(kernel, relative=True)``; adds a row.
      bin_width: histogram bin width (first bin [0, bin_width)).
      threshold: the share of pairs below it is printed in each panel and the region shaded.
    """
    if not raw:
        raise ValueError("raw is empty")
    rows = [("raw  ||W[o,c] − W[o,c']||_F", raw)]
    if relative is not None:
        if set(relative) != set(raw):
            raise ValueError(f"relative and raw must have the same models, got {sorted(relative)} and {sorted(raw)}")
        rows.append(("relative (÷ ||W[o]||_F)", relative))
    names = list(raw)
    fig = Figure(figsize=(4.2 * len(names), 3.2 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for i, (xlabel, dists) in enumerate(rows):
        top = max(float(np.max(np.asarray(dists[n]))) for n in names)
        top = max(top, bin_width) * 1.0001
        for j, name in enumerate(names):
            d = np.asarray(dists[name])
            edges, counts = channel_distance_histogram(d, bin_width=bin_width, max_value=top)
            count, frac = near_equal_share(d, threshold)
            ax = axes[i, j]
            ax.bar(edges[:-1], counts, width=bin_width, align="edge", color="C0" if j == 0 else "C3",
                   edgecolor="none", label=f"{name}: {count}/{d.size} < {threshold:g}")
            ax.axvspan(0, threshold, color="0.85", zorder=0)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("channel pairs")
            ax.set_title(f"{name} ({100 * frac:.1f}% < {threshold:g})", fontsize=10)
            ax.legend(fontsize=8)
    fig.suptitle(title or "First-layer channel distances (R,G), (R,B), (G,B) per filter")
    fig.tight_layout()
    return _save(fig, path)


def _by_group(aggs, metric) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for agg in aggs:
        for g in agg:
            v = float(g[metric])
            if np.isfinite(v):
                out.setdefault(g["group"], []).append(v)
    return out


def plot_depth_metrics(results: Mapping[str, object], path, *,
                       metrics: Sequence[str] = ("sparsity", "variance_entropy", "orthogonality"),
                       title: str | None = None) -> str:
    """Filter metrics against normalised depth (first conv, then deciles), one panel per metric.

    Args:
      results: model label (e.g. "vanilla", "adversarial") -> the output of
        :func:`jadv.analysis.aggregate_by_depth` for one model, or a list of such outputs (several
        models of the kind). One model per label is drawn as a line with markers; several as
        box-plots per group (as in Gavrikov & Keuper) joined by their medians.
      metrics: keys of the aggregated dicts to plot.
    """
    if not results:
        raise ValueError("results is empty")
    for m in metrics:
        if m not in _METRIC_LABELS:
            raise ValueError(f"unknown metric {m!r}; allowed: {', '.join(_METRIC_LABELS)}")
    fig = Figure(figsize=(4.6 * len(metrics), 3.6), dpi=100)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    labels = list(results)
    width = 0.8 / len(labels)
    for ax, metric in zip(axes, metrics):
        for li, label in enumerate(labels):
            r = results[label]
            aggs = [r] if (len(r) and isinstance(r[0], Mapping)) else list(r)
            groups = _by_group(aggs, metric)
            xs = [DEPTH_GROUPS.index(g) for g in DEPTH_GROUPS if g in groups]
            vals = [groups[g] for g in DEPTH_GROUPS if g in groups]
            if not xs:
                continue
            offset = (li - (len(labels) - 1) / 2) * width
            color = f"C{li}"
            if max(len(v) for v in vals) > 1:
                ax.boxplot(vals, positions=np.asarray(xs) + offset, widths=width * 0.9, patch_artist=True,
                           boxprops={"facecolor": color, "alpha": 0.4}, medianprops={"color": color},
                           showfliers=False, manage_ticks=False)
            ax.plot(np.asarray(xs) + offset, [np.median(v) for v in vals], "o-", color=color, label=label, ms=4)
        ax.set_xticks(range(len(DEPTH_GROUPS)))
        ax.set_xticklabels(["first"] + [f"≤{(i + 1) / 10:.1f}" for i in range(10)], rotation=45, fontsize=8)
        ax.set_xlabel("normalised conv depth")
        ax.set_ylabel(_METRIC_LABELS[metric])
        ax.legend(fontsize=8)
    fig.suptitle(title or "Filter metrics by depth (Gavrikov & Keuper)")
    fig.tight_layout()
    return _save(fig, path)


def plot_first_layer_filters(kernels: Mapping[str, object], path, *, max_filters: int = 64,
                             title: str | None = None) -> str:
    """First-layer filters (HWIO ``[kh, kw, 3, C_out]``) of several models as RGB tiles, each
    filter min-max scaled on its own; grey tiles are filters with R = G = B."""
    if not kernels:
        raise ValueError("kernels is empty")
    names = list(kernels)
    n = min(max_filters, min(np.shape(kernels[k])[3] for k in names))
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3.2 * len(names), 3.4), dpi=100)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        k = np.asarray(kernels[name], np.float64)
        if k.ndim != 4 or k.shape[2] != 3:
            raise ValueError(f"kernels[{name!r}] must be HWIO [kh, kw, 3, C_out], got shape {k.shape}")
        kh, kw = k.shape[:2]
        canvas = np.ones((rows * (kh + 1), cols * (kw + 1), 3))
        for o in range(n):
            f = k[..., o]
            lo, hi = f.min(), f.max()
            f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
            r, c = divmod(o, cols)
            canvas[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = f
        ax.imshow(canvas, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "First-layer filters")
    return _save(fig, path)
