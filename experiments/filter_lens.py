"""Study 4: robust vs standard models through the lens of their 3x3 conv filters (Gavrikov & Keuper).

    python experiments/filter_lens.py --profile default --workdir runs/filter_lens \
        [--import_workdir standard:DIR --import_workdir robust:DIR ...]
    python experiments/filter_lens.py --workdir runs/filter_lens_wrn \
        --pair_workdir standard:runs/wrn_standard --pair_workdir robust:runs/wrn_robust

A standard and a PGD-AT model of the same architecture are trained with the same seed, data
order and schedule (default: ResNet-20 on scikit-learn's 8x8 digits; cpu: ResNet-20 on a
CIFAR-10 subset; full: ResNet-18 on CIFAR-10, Linf 8/255). For each model, every 3x3 conv layer
gets the metrics of analysis-methods D.1 (``jadv.analysis.layer_metrics``: sparsity, variance
entropy, orthogonality), aggregated per normalised depth (first conv, then deciles; D.2,
``aggregate_by_depth``). The filter distribution shift between the two models (weighted
symmetric KL of PCA-coefficient histograms, D.1.4, ``distribution_shift``) is computed per layer
and per depth group. Imported training workdirs (``--import_workdir KIND:DIR``, KIND standard or
robust; any jadv training run) are measured too and drawn as extra models in the depth figure;
the claims use the controlled pair only. ``--pair_workdir standard:DIR --pair_workdir robust:DIR``
takes the pair itself from two workdirs instead of training it (e.g. two public PyTorch models
converted by ``experiments/import_model.py``, as the paper compares public checkpoints); both must
have the same architecture.

Claims (analysis-methods D.4, reproduction checks 19-20, direction only): robust models have a
lower pooled sparse-filter share, and higher variance entropy and orthogonality in the first conv
and in the last decile; the KL shift is largest in the first layer and the deepest deciles.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import cached_part, claim, finish, study_main, train_model  # noqa: E402

import numpy as np  # noqa: E402

from jadv.analysis import DEPTH_GROUPS, aggregate_by_depth, distribution_shift, filters_of, layer_metrics  # noqa: E402
from jadv.train import base_config  # noqa: E402
from jadv.viz.filters import plot_depth_metrics  # noqa: E402

STUDY = "filter_lens"
SOURCE = "Gavrikov & Keuper 2022; analysis-methods D.4, checks 19-20"
KINDS = ("standard", "robust")
METRICS = ("sparsity", "variance_entropy", "orthogonality")


def model_config(config, kind: str):
    """The jadv.train config of the standard or the robust model (same seed and schedule)."""
    c = base_config()
    c.seed = int(config.seed)
    c.dataset = config.dataset
    c.data_dir = config.data_dir
    c.train_size = config.train_size
    c.test_size = config.test_size
    c.model.name = config.model
    c.model.kwargs = dict(config.model_kwargs)
    c.batch_size = int(config.batch_size)
    c.num_epochs = int(config.num_epochs)
    c.num_steps = config.num_steps
    c.optimizer.lr = float(config.lr)
    c.optimizer.weight_decay = float(config.weight_decay)
    c.augment.crop_flip = bool(config.augment)
    if kind == "robust":
        c.objective.update(name="pgd_at", eps=float(config.eps), norm="linf", steps=int(config.attack_steps),
                           step_size=2.5 * float(config.eps) / int(config.attack_steps))
    # PGD robust accuracy of both models on the first test images, once, at the end of training
    # (off when robust_examples is 0)
    c.robust_eval.update(enabled=int(config.robust_examples) > 0, eps=float(config.eps), norm="linf", steps=int(config.eval_steps),
                         val_examples=0, test_examples=int(config.robust_examples),
                         batch_size=int(config.eval_batch_size))
    c.eval_every_epochs = max(int(config.num_epochs), 1)
    c.eval_batch_size = int(config.eval_batch_size)
    c.log_every_steps = int(config.log_every_steps)
    c.checkpoint.every_steps = 10_000
    c.num_devices = config.num_devices
    return c


def measure(params) -> dict:
    """Per-layer metrics (3x3 layers) and their per-depth aggregation of one model."""
    layers = layer_metrics(params, kernel_size=(3, 3))
    return {"layers": layers, "by_depth": aggregate_by_depth(layers)}


def kernels_by_layer(params) -> dict:
    """``name -> (depth, max_depth, kernel)`` of the 3x3 conv layers (depths count every conv)."""
    all_layers = list(filters_of(params))
    max_depth = all_layers[-1][1]
    return {name: (depth, max_depth, np.asarray(k)) for name, depth, k in all_layers
            if tuple(np.shape(k)[:2]) == (3, 3)}


def _group_of(depth: int, max_depth: int) -> str:
    if depth == 0:
        return DEPTH_GROUPS[0]
    return DEPTH_GROUPS[(10 * depth + max_depth - 1) // max_depth]    # decile ceil(10 d / max) - 1, +1 for "first"


def shifts(params_a, params_b, bins: int) -> dict:
    """Distribution shift (weighted symmetric KL) between two models of one architecture: per 3x3
    layer, per depth group (all kernels of the group pooled) and over all 3x3 layers."""
    ka, kb = kernels_by_layer(params_a), kernels_by_layer(params_b)
    if set(ka) != set(kb):
        raise ValueError("the two models have different conv layers")
    per_layer = []
    groups: dict[str, tuple[list, list]] = {}
    for name, (depth, mx, a) in ka.items():
        b = kb[name][2]
        per_layer.append({"name": name, "depth": depth, "group": _group_of(depth, mx),
                          "kl": distribution_shift(a, b, bins=bins)})
        ga, gb = groups.setdefault(_group_of(depth, mx), ([], []))
        ga.append(a)
        gb.append(b)
    per_group = {g: distribution_shift(groups[g][0], groups[g][1], bins=bins)
                 for g in DEPTH_GROUPS if g in groups}
    everything = distribution_shift([k for _, _, k in ka.values()], [k for _, _, k in kb.values()], bins=bins)
    return {"per_layer": per_layer, "per_group": per_group, "all_layers": everything}


def plot_shift(per_group: dict, path: str, *, title: str) -> str:
    """Bar chart of the weighted symmetric KL per depth group."""
    from matplotlib.figure import Figure

    groups = [g for g in DEPTH_GROUPS if g in per_group]
    fig = Figure(figsize=(1.2 + 0.75 * len(groups), 3.2), dpi=100)
    ax = fig.subplots()
    ax.bar(range(len(groups)), [per_group[g] for g in groups], color="C3")
    ax.set_xticks(range(len(groups)), groups, rotation=45, fontsize=8)
    ax.set_ylabel("weighted symmetric KL")
    ax.set_xlabel("normalised depth")
    ax.set_title(title, fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _at(by_depth, group, metric):
    for g in by_depth:
        if g["group"] == group:
            return g[metric]
    return float("nan")


def _pooled_sparsity(layers) -> float:
    return sum(m["n_sparse"] for m in layers) / sum(m["n_filters"] for m in layers)


def _pair_dirs(config) -> dict:
    """{kind: workdir} from ``config.pair_workdirs`` ("standard:DIR", "robust:DIR"), or {} to train."""
    dirs = {}
    for spec in config.get("pair_workdirs", ()):
        kind, _, path = spec.partition(":")
        if kind not in KINDS or not path or kind in dirs:
            raise ValueError(f"--pair_workdir takes KIND:DIR once per KIND in {KINDS}, got {spec!r}")
        dirs[kind] = path
    if dirs and set(dirs) != set(KINDS):
        raise ValueError(f"--pair_workdir needs both kinds {KINDS}, got {sorted(dirs)}")
    return dirs


def run(config, workdir: str) -> dict:
    """Train (or reuse, or load from ``pair_workdirs``) the pair, measure, import extra workdirs, plot, claim."""
    from jadv.train import load_trained

    os.makedirs(workdir, exist_ok=True)
    cmd = f"python experiments/filter_lens.py --profile {config.profile}"
    pair = _pair_dirs(config)
    tag, model_name = "", None
    if pair:                # cached measurements of a given pair never mix with those of a trained one
        tag = "pair_"
        cmd += "".join(f" --pair_workdir {k}:{pair[k]}" for k in KINDS)
    params, measured, train = {}, {}, {}
    for kind in KINDS:
        if pair:
            _, variables, cfg = load_trained(pair[kind])
            res = {"workdir": os.path.abspath(pair[kind]), "model": cfg.model.name, "dataset": cfg.dataset}
            model_name = f"{cfg.model.name} {dict(cfg.model.kwargs)}"
        else:
            _, variables, res = train_model(model_config(config, kind), os.path.join(workdir, "models", kind))
        params[kind] = variables["params"]
        train[kind] = {k: v for k, v in res.items() if not isinstance(v, dict)}
        measured[kind] = cached_part(workdir, f"{tag}metrics_{kind}", lambda p=params[kind]: measure(p))
    shift = cached_part(workdir, f"{tag}shift",
                        lambda: shifts(params["standard"], params["robust"], int(config.bins)))

    imported = []
    for i, spec in enumerate(config.import_workdirs):
        kind, path = spec.split(":", 1)
        if kind not in KINDS:
            raise ValueError(f"--import_workdir takes KIND:DIR with KIND in {KINDS}, got {spec!r}")
        _, variables, _ = load_trained(path)
        m = measure(variables["params"])
        imported.append({"kind": kind, "workdir": os.path.abspath(path), **m})

    std, rob = measured["standard"], measured["robust"]
    last = [g["group"] for g in std["by_depth"]][-1]
    results = {"models": {k: {"train": train[k], **measured[k]} for k in KINDS}, "shift": shift,
               "imported": imported, "last_group": last,
               "pooled_sparsity": {k: _pooled_sparsity(measured[k]["layers"]) for k in KINDS}}

    figures = []
    curves = {k: [measured[k]["by_depth"]] + [m["by_depth"] for m in imported if m["kind"] == k] for k in KINDS}
    curves = {k: (v[0] if len(v) == 1 else v) for k, v in curves.items()}
    title = (f"{model_name}: the two given models" if pair else
             f"{config.model} on {config.dataset}: standard vs PGD-AT")
    figures.append(plot_depth_metrics(curves, os.path.join(workdir, "depth_metrics.png"), metrics=METRICS,
                                      title=title))
    figures.append(plot_shift(shift["per_group"], os.path.join(workdir, "distribution_shift.png"),
                              title="filter distribution shift, standard vs robust"))

    ps = results["pooled_sparsity"]
    acc = {k: train[k].get("test_accuracy") for k in KINDS}
    racc = {k: train[k].get("test_subset_robust_accuracy") for k in KINDS}
    context = (f"; clean acc std {acc['standard']:.3f} / rob {acc['robust']:.3f}, PGD-{config.eval_steps} "
               f"Linf {config.eps:g} acc std {racc['standard']:.3f} / rob {racc['robust']:.3f}"
               if None not in acc.values() and None not in racc.values() else "")
    claims = [claim(STUDY, "4.1", "the robust model has a lower pooled sparse-filter share (all 3x3 layers) than "
                    "the standard model",
                    measured=f"pooled sparsity standard {ps['standard']:.4f}, robust {ps['robust']:.4f} "
                             f"(paper: 39.5% vs 9.5% over its model set)" + context,
                    verdict=ps["robust"] < ps["standard"], source=SOURCE, command=cmd)]
    for cid, metric in (("4.2", "variance_entropy"), ("4.3", "orthogonality")):
        vals = {g: (_at(std["by_depth"], g, metric), _at(rob["by_depth"], g, metric)) for g in ("first", last)}
        claims.append(claim(
            STUDY, cid, f"the robust model has higher {metric.replace('_', ' ')} than the standard model in the "
                        "first conv layer and in the last depth decile",
            measured=", ".join(f"{g}: standard {s:.4f}, robust {r:.4f}" for g, (s, r) in vals.items()),
            verdict=all(r > s for s, r in vals.values()), source=SOURCE, command=cmd))
    pg = shift["per_group"]
    groups = list(pg)
    kl = np.asarray([pg[g] for g in groups])
    deep = groups[-2:]                       # the deepest two occupied deciles
    top = groups[int(np.argmax(kl))]
    med = float(np.median(kl))
    claims.append(claim(
        STUDY, "4.4", "the filter distribution shift (weighted symmetric KL, standard vs robust) is largest in the "
                      "first layer and the deepest deciles: the largest group is one of them, and both the first "
                      "conv and the last decile lie above the median over groups",
        measured=", ".join(f"{g} {v:.3f}" for g, v in pg.items()) + f"; all layers {shift['all_layers']:.3f}; "
                 f"max at {top}, median {med:.3f} (paper, CIFAR-10: all 0.622, first conv 0.472)",
        verdict=(top in ["first", *deep]) and pg.get("first", -1) > med and pg[groups[-1]] > med,
        source=SOURCE, command=cmd))
    return finish(workdir, STUDY, results, claims, figures)


def _import_flags(parser):
    parser.add_argument("--import_workdir", action="append", default=[],
                        help="KIND:DIR, KIND standard or robust: a jadv training workdir to measure as an extra model")
    parser.add_argument("--pair_workdir", action="append", default=[],
                        help="KIND:DIR for both kinds: analyse these two workdirs (e.g. imported PyTorch models, "
                             "experiments/import_model.py) as the pair instead of training one")


def _apply_import_flags(args, config):
    if args.import_workdir:
        config.import_workdirs = tuple(args.import_workdir)
    if args.pair_workdir:
        config.pair_workdirs = tuple(args.pair_workdir)


def main(argv=None):
    study_main(STUDY, run, __doc__, argv, extra_args=(_import_flags, _apply_import_flags))


if __name__ == "__main__":
    main()
