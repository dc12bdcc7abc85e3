"""Convolution-filter quality metrics (study 4).

Gavrikov & Keuper, "Adversarial Robustness through the Lens of Convolutional Filters" (CVPR-W
2022), and "CNN Filter DB" (CVPR 2022). Definitions follow ``reference/analysis-methods.md``,
section D, exactly:

* A *filter* is one ``kh x kw`` slice of a conv kernel; a layer with HWIO kernel
  ``[kh, kw, C_in, C_out]`` has ``n = C_in * C_out`` filters, the rows of ``F [n, kh*kw]``.
* **Sparsity**: a filter is sparse ("degenerated") if ``||f||_inf <= sparsity_eps * max|W|``;
  the layer's sparsity is the share of sparse filters.
* **Variance entropy** (CVPR-W variant, ``variance_entropy``): scale each filter by its own
  L-inf norm, drop the sparse filters, centre the rows, take the PCA variances
  ``v_k = s_k^2 / (n - 1)`` from the singular values, and return ``-sum v^ log10 v^`` with
  ``v^ = v / sum v``. Range 0 (one direction) .. log10(kh*kw) (log10 9 ~ 0.954 for 3x3).
  ``variance_entropy_raw`` is the same without scaling and with all filters (torchconvquality).
* **Orthogonality**: ``C_out`` rows of length ``C_in*kh*kw`` (whole output filters), each
  normalised to unit L2 (zero rows stay zero), ``1 - sum_{i != j} |<w_i, w_j>| / (n (n - 1))``
  with ``n = C_out``: 1 minus the mean absolute off-diagonal cosine.
* **Aggregation by depth** and the **distribution shift** (weighted symmetric KL of PCA
  coefficient histograms) are in :func:`aggregate_by_depth` and :func:`distribution_shift`.

These are offline weight analyses with data-dependent shapes (sparse filters are removed), so
they run in numpy float64 on concrete arrays, not under jit.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from jadv._checks import is_concrete
from jadv._typing import ArrayLike, PyTree

__all__ = ["filter_metrics", "filters_of", "layer_metrics", "aggregate_by_depth", "distribution_shift",
           "DEPTH_GROUPS"]

#: Group labels produced by :func:`aggregate_by_depth`, in plotting order.
DEPTH_GROUPS = ("first",) + tuple(f"({i / 10:.1f}, {(i + 1) / 10:.1f}]" for i in range(10))


def _as_kernel(kernel, name: str = "kernel") -> np.ndarray:
    if not is_concrete(kernel):
        raise TypeError(f"{name} must be a concrete array (filter metrics run outside jit)")
    k = np.asarray(kernel)
    if k.ndim != 4:
        raise ValueError(f"{name} must be a 4-D HWIO conv kernel [kh, kw, C_in, C_out], got shape {k.shape}")
    if not jnp.issubdtype(k.dtype, jnp.floating):  # also accepts bfloat16
        raise TypeError(f"{name} must be a float array, got dtype {k.dtype}")
    if k.size == 0:
        raise ValueError(f"{name} is empty (shape {k.shape})")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{name} contains NaN or Inf")
    return k.astype(np.float64)


def _slices(k: np.ndarray) -> np.ndarray:
    """HWIO kernel -> F [C_out * C_in, kh*kw], rows ordered (o, c)."""
    kh, kw, cin, cout = k.shape
    return k.transpose(3, 2, 0, 1).reshape(cout * cin, kh * kw)


def _sparse_mask(k: np.ndarray, sparsity_eps: float) -> np.ndarray:
    f = _slices(k)
    t = sparsity_eps * np.max(np.abs(k))
    return np.max(np.abs(f), axis=1) <= t


def _linf_scale(f: np.ndarray) -> np.ndarray:
    m = np.max(np.abs(f), axis=1, keepdims=True)
    return f / np.where(m > 0, m, 1.0)


def _pca_variances(f: np.ndarray) -> np.ndarray:
    """PCA variances s_k^2/(n-1) of the centred rows; round-off-level values are set to 0."""
    n = f.shape[0]
    if n < 2:
        return np.zeros(min(f.shape))
    c = f - f.mean(axis=0, keepdims=True)
    s = np.linalg.svd(c, compute_uv=False)
    scale = np.max(np.abs(f)) if f.size else 0.0
    tol = max(f.shape) * np.finfo(np.float64).eps * scale * np.sqrt(n)
    s = np.where(s > tol, s, 0.0)
    return s ** 2 / (n - 1)


def _entropy10(v: np.ndarray) -> float:
    total = v.sum()
    if total <= 0:
        return 0.0  # every filter is the same: all variance (none) along one direction
    q = v / total
    q = q[q > 0]
    return float(max(0.0, -np.sum(q * np.log10(q))))


def filter_metrics(kernel: ArrayLike, *, sparsity_eps: float = 0.01) -> dict:
    """Sparsity, variance entropy and orthogonality of one conv layer (Gavrikov & Keuper 2022).

    Args:
      kernel: HWIO conv kernel ``[kh, kw, C_in, C_out]``; the papers use 3x3 filters (other sizes
        work; the entropy's maximum is then log10(kh*kw)).
      sparsity_eps: relative threshold; a filter is sparse if ``||f||_inf <= sparsity_eps * max|W|``
        (the notebooks' ``<=``; an all-zero layer is therefore entirely sparse).

    Returns:
      dict with
        ``sparsity``: share of sparse filters in [0, 1];
        ``variance_entropy``: CVPR-W entropy (L-inf-scaled, sparse filters removed), in
          [0, log10(kh*kw)]; NaN if every filter is sparse (it then has weight 0 in aggregation);
          0 if the remaining filters have no variance (identical, or a single filter);
        ``variance_entropy_raw``: torchconvquality's entropy over all unscaled filters;
        ``orthogonality``: in [0, 1]; NaN when ``C_out == 1`` (no pairs);
        ``n_filters`` (C_in*C_out), ``n_sparse``, ``n_nonsparse``, ``c_out``, ``c_in``,
        ``kernel_size`` ((kh, kw)): the counts used for weighting.
    All metrics are invariant to multiplying the kernel by a non-zero constant.
    """
    k = _as_kernel(kernel)
    if not np.isfinite(sparsity_eps) or sparsity_eps < 0:
        raise ValueError(f"sparsity_eps must be finite and >= 0, got {sparsity_eps}")
    kh, kw, cin, cout = k.shape
    f = _slices(k)
    sparse = _sparse_mask(k, sparsity_eps)
    n_sparse = int(sparse.sum())
    kept = f[~sparse]
    entropy = _entropy10(_pca_variances(_linf_scale(kept))) if kept.shape[0] else float("nan")
    entropy_raw = _entropy10(_pca_variances(f))
    rows = k.transpose(3, 2, 0, 1).reshape(cout, cin * kh * kw)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    if cout > 1:
        gram = np.abs(unit @ unit.T)
        off = gram.sum() - np.trace(gram)
        ortho = float(1.0 - off / (cout * (cout - 1)))
    else:
        ortho = float("nan")
    return {"sparsity": n_sparse / f.shape[0], "variance_entropy": entropy,
            "variance_entropy_raw": entropy_raw, "orthogonality": ortho,
            "n_filters": int(f.shape[0]), "n_sparse": n_sparse, "n_nonsparse": int(f.shape[0] - n_sparse),
            "c_out": int(cout), "c_in": int(cin), "kernel_size": (int(kh), int(kw))}


def _natural_key(path: str):
    parts = re.split(r"(\d+)", path)
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def _walk(tree, prefix: str):
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _walk(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _walk(v, f"{prefix}/{i}" if prefix else str(i))
    else:
        yield prefix, tree


def filters_of(params: PyTree, *, order: str = "natural") -> Iterator[tuple[str, int, object]]:
    """Yield ``(layer_name, depth, kernel)`` for every conv kernel in a Flax params pytree.

    A conv kernel is a 4-D leaf whose key is ``"kernel"``; ``layer_name`` is the path of its
    module (e.g. ``"layer1_0/conv2"``) and ``depth`` its index among *all* conv kernels (1x1
    shortcuts and 7x7 stems included, as ``conv_depth`` in Gavrikov & Keuper), 0 for the first.

    Args:
      params: nested dicts (``variables["params"]`` or the whole variables dict; a top-level
        ``"params"`` key is entered automatically), FrozenDicts, lists or tuples.
      order: how layers are ordered to assign depths.
        ``"natural"`` (default): sort paths segment by segment with numbers compared as numbers, so
        ``Conv_10`` comes after ``Conv_9`` and ``layer1_0/conv1`` before ``layer1_0/conv2`` before
        ``layer1_0/shortcut_conv``. It gives the same result before and after ``jax.tree_util``
        operations (which re-sort dict keys alphabetically, e.g. after an optax update), and is
        definition order for jadv's models and Linen's auto-names (``Conv_0``, ``Conv_1``, ...).
        ``"definition"``: dict iteration order, which is module definition/call order only for
        params straight from ``Module.init`` (not after tree_map). Use it for custom names that
        do not sort in definition order.
    """
    if order not in ("natural", "definition"):
        raise ValueError(f"unknown order {order!r}; allowed: 'natural', 'definition'")
    if isinstance(params, Mapping) and "params" in params and isinstance(params["params"], Mapping):
        params = params["params"]
    found = []
    for path, leaf in _walk(params, ""):
        segs = path.split("/")
        if segs[-1] == "kernel" and np.ndim(leaf) == 4:
            found.append(("/".join(segs[:-1]), leaf))
    if order == "natural":
        found.sort(key=lambda t: _natural_key(t[0]))
    for depth, (name, kernel) in enumerate(found):
        yield name, depth, kernel


def layer_metrics(params: PyTree, *, sparsity_eps: float = 0.01, kernel_size: tuple[int, int] | None = (3, 3),
                  order: str = "natural") -> list[dict]:
    """:func:`filter_metrics` for every conv layer of a params pytree, with its normalised depth.

    Args:
      params: Flax params pytree (see :func:`filters_of`).
      sparsity_eps: passed to :func:`filter_metrics`.
      kernel_size: only layers with this spatial size are measured (the papers keep only 3x3
        filters); depths still count every conv layer. ``None`` measures all layers.
      order: layer order for depths, see :func:`filters_of`.

    Returns:
      one dict per measured layer: the metrics plus ``name``, ``depth``, ``max_depth`` (depth of
      the last conv layer) and ``depth_norm = depth / max_depth`` (0 when there is one conv).
    """
    layers = list(filters_of(params, order=order))
    if not layers:
        raise ValueError("params contain no conv kernel (4-D leaf named 'kernel')")
    max_depth = layers[-1][1]
    out = []
    for name, depth, kernel in layers:
        if kernel_size is not None and tuple(np.shape(kernel)[:2]) != tuple(kernel_size):
            continue
        m = filter_metrics(kernel, sparsity_eps=sparsity_eps)
        m.update(name=name, depth=depth, max_depth=max_depth,
                 depth_norm=depth / max_depth if max_depth > 0 else 0.0)
        out.append(m)
    return out


def _group_index(m: Mapping) -> int:
    """-1 for the first conv (depth 0), else the decile i with depth_norm in (i/10, (i+1)/10]."""
    if "depth" in m and "max_depth" in m:
        depth, mx = int(m["depth"]), int(m["max_depth"])
        if depth == 0:
            return -1
        return (10 * depth + mx - 1) // mx - 1  # exact ceil(10 * depth / max) - 1
    dn = float(m["depth_norm"])
    if not 0.0 <= dn <= 1.0:
        raise ValueError(f"depth_norm must be in [0, 1], got {dn}")
    if dn == 0.0:
        return -1
    return int(np.ceil(round(dn * 10, 9))) - 1


def _weighted(values, weights) -> float:
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(v) & (w > 0)
    if not np.any(ok):
        return float("nan")
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok]))


def aggregate_by_depth(layer_metrics: Sequence[Mapping]) -> list[dict]:
    """Aggregate per-layer metrics of one model by normalised depth (Gavrikov & Keuper 2022).

    The first conv layer (depth 0) is its own group ``"first"``; the other layers fall in the
    deciles ``(0.0, 0.1], ..., (0.9, 1.0]`` of ``depth_norm``. Within a group:
    sparsity is pooled (sum of sparse filters / sum of filters); ``variance_entropy`` is the mean
    weighted by each layer's number of non-sparse filters; ``variance_entropy_raw`` is weighted by
    its number of filters; ``orthogonality`` is weighted by ``c_out``. NaN metrics (all-sparse
    layers, single-filter layers) are left out of their weighted mean; a group with no valid
    value gets NaN.

    Args:
      layer_metrics: the list from :func:`layer_metrics` (each dict needs ``depth`` and
        ``max_depth``, or ``depth_norm``, plus the metrics and counts of :func:`filter_metrics`).

    Returns:
      list of dicts, one per non-empty group in the order of :data:`DEPTH_GROUPS`, with keys
      ``group`` (label), ``decile`` (-1 for "first", else 0..9), ``n_layers``, ``n_filters``,
      ``n_sparse``, ``sparsity``, ``variance_entropy``, ``variance_entropy_raw``, ``orthogonality``.
    """
    if isinstance(layer_metrics, Mapping) or len(layer_metrics) == 0:
        raise ValueError("layer_metrics must be a non-empty list of per-layer metric dicts")
    groups: dict[int, list] = {}
    for m in layer_metrics:
        groups.setdefault(_group_index(m), []).append(m)
    out = []
    for g in sorted(groups):
        ms = groups[g]
        n_f = sum(int(m["n_filters"]) for m in ms)
        n_s = sum(int(m["n_sparse"]) for m in ms)
        out.append({
            "group": DEPTH_GROUPS[g + 1], "decile": g, "n_layers": len(ms), "n_filters": n_f, "n_sparse": n_s,
            "sparsity": n_s / n_f if n_f else float("nan"),
            "variance_entropy": _weighted([m["variance_entropy"] for m in ms], [m["n_nonsparse"] for m in ms]),
            "variance_entropy_raw": _weighted([m["variance_entropy_raw"] for m in ms], [m["n_filters"] for m in ms]),
            "orthogonality": _weighted([m["orthogonality"] for m in ms], [m["c_out"] for m in ms]),
        })
    return out


def _scaled_nonsparse(kernels, sparsity_eps: float, name: str) -> np.ndarray:
    if isinstance(kernels, (list, tuple)):
        ks = [_as_kernel(k, name) for k in kernels]
    else:
        ks = [_as_kernel(kernels, name)]
    if not ks:
        raise ValueError(f"{name} is an empty list of kernels")
    rows = []
    for k in ks:
        f = _slices(k)
        rows.append(_linf_scale(f[~_sparse_mask(k, sparsity_eps)]))
    sizes = {r.shape[1] for r in rows}
    if len(sizes) != 1:
        raise ValueError(f"{name}: all kernels must have the same spatial size, got filter lengths {sorted(sizes)}")
    return np.concatenate(rows, axis=0)


def distribution_shift(kernels_a: Sequence[ArrayLike], kernels_b: Sequence[ArrayLike], *, bins: int = 70,
                       sparsity_eps: float = 0.01) -> float:
    """Weighted symmetric KL divergence between two sets of filters (Gavrikov & Keuper 2022).

    Both sets are reduced to their non-sparse filters (sparsity judged per layer, as in
    :func:`filter_metrics`), each filter scaled by its own L-inf norm. A PCA with ``kh*kw``
    components (9 for 3x3) is fitted on the union of both sets (centred by the union's mean).
    For every component i, the coefficients of each set are histogrammed with ``bins`` equal bins
    over the global range of both sets; empty bins are set to ``float32`` eps and the histograms
    normalised to P_i and Q_i. The result is ``sum_i EVR_i * (KL(P_i||Q_i) + KL(Q_i||P_i))``
    (natural log), with EVR_i the component's explained-variance ratio.

    Args:
      kernels_a, kernels_b: one HWIO kernel or a list of HWIO kernels each (e.g. the same layer
        of several models, or all 3x3 layers of one model); all with the same ``kh, kw``.
      bins: number of histogram bins per component (the paper: 70).
      sparsity_eps: sparsity threshold, see :func:`filter_metrics`.

    Returns:
      a float >= 0; exactly 0 for identical sets.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    fa = _scaled_nonsparse(kernels_a, sparsity_eps, "kernels_a")
    fb = _scaled_nonsparse(kernels_b, sparsity_eps, "kernels_b")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"kernels_a and kernels_b have different filter sizes ({fa.shape[1]} vs {fb.shape[1]})")
    if fa.shape[0] == 0 or fb.shape[0] == 0:
        raise ValueError("a filter set has no non-sparse filters; the distribution shift is undefined")
    both = np.concatenate([fa, fb], axis=0)
    mean = both.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(both - mean, full_matrices=False)
    var = s ** 2
    if var.sum() <= 0:
        return 0.0
    evr = var / var.sum()
    ca, cb = (fa - mean) @ vt.T, (fb - mean) @ vt.T
    tiny = np.finfo(np.float32).eps
    total = 0.0
    for i in range(vt.shape[0]):
        lo = min(ca[:, i].min(), cb[:, i].min())
        hi = max(ca[:, i].max(), cb[:, i].max())
        if hi <= lo:
            continue  # all coefficients equal: identical one-bin histograms
        p, _ = np.histogram(ca[:, i], bins=bins, range=(lo, hi))
        q, _ = np.histogram(cb[:, i], bins=bins, range=(lo, hi))
        p = np.where(p > 0, p / p.sum(), tiny)
        q = np.where(q > 0, q / q.sum(), tiny)
        p, q = p / p.sum(), q / q.sum()
        kl = np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p))
        total += evr[i] * kl
    return float(total)
