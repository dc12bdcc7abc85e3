"""Issue #6, evidence 3: what PGD-AT changes in MNIST models (Tsipras et al. 2019, sec. 4-5).

    python experiments/analyze_mnist_models.py --standard_workdir runs/mnist_standard \\
        --robust_workdir runs/mnist_pgd_at_8ep --which best --data_dir ../shared/data \\
        --out results/mnist_analysis

Takes two trained 10-class models (a standard one and an adversarially trained one, workdirs of
``experiments/train.py``) and writes into ``--out`` a ``results.json`` and PNG figures:

1. **Saliency** (``saliency.png``): input gradients of the cross-entropy loss of both models on the
   same test images, shown clipped to +-3 sd and rescaled to [0, 1]
   (``jadv.analysis.saliency_display``), and the library's perceptual-alignment number,
   ``jadv.analysis.saliency_alignment`` (Pearson correlation of |grad| with the Sobel edge map),
   over ``--n_examples`` test images: mean, spread, and the paired per-image difference. A second,
   descriptive number is reported beside it: the share of sum|grad| that falls on ink pixels
   (x > 0.1), i.e. how much of the saliency lies on the digit itself.
2. **Large-eps targeted examples** (``large_eps.png``, ``interpolation.png``):
   ``jadv.analysis.large_eps_examples`` (targeted PGD, best iterate kept) with radii far beyond
   the training eps (default L2 4 and 8, L-inf 0.4, all starting at x; L2 8 once more from a
   random start in the ball), for both models on the same images and the same random targets
   (uniform over the 9 wrong classes). Numbers: how often the attacked model predicts the target
   (``own``), how often the *other* model does (``other``: do one model's examples carry the
   target class to a model they were not made for?), how often a model-free judge does (the
   nearest class mean of the training images), the cosine between the perturbation and the
   class-mean difference ``mean[target] - mean[source]``, the pixel change (L2, L-inf, mean
   |delta|) and where it goes (share of |delta| on ink pixels, ink added on the background). The
   interpolation strip is ``jadv.analysis.interpolate`` from x to each model's largest-L2 example.
3. **Binary 5 vs 7 linear models** (``binary_*.png``): logistic regression trained on the exact
   L-inf worst case (``jadv.analysis.train_linear``; eps 0 = standard) for ``--binary_eps``; weight
   maps, per-pixel label correlation against weight, and the top-k curve
   (``jadv.analysis.top_k_curve``: standard and exact robust accuracy of models trained only on
   the k most label-correlated training pixels). Sparsity (share of |w| > 1% max) and
   Spearman(|w|, |corr|) are the library's numbers; the |w|-weighted mean |corr| is reported beside
   them.

``--dataset digits`` runs the same analysis on scikit-learn's embedded 8x8 digits (tests; no files).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jadv import data as jdata
from jadv.analysis import (feature_label_correlation, input_gradients, interpolate,
                           large_eps_examples, large_weight_share, linear_accuracy, linear_robust_accuracy,
                           saliency_alignment, top_k_curve, train_linear, weight_correlation_rank)
from jadv.attacks import pgd
from jadv.studies.common import batched, write_json
from jadv.train import load_trained
from jadv.viz.features import plot_correlation_vs_weight, plot_top_k_curves, plot_weight_maps
from jadv.viz.images import plot_interpolation, plot_large_eps_grid, plot_saliency_grid

SCRIPT = "experiments/analyze_mnist_models.py"
MODELS = ("standard", "robust")
INK = 0.1           # pixels with x > INK count as ink (the digit) for the saliency ink share


def _floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",") if v.strip()]


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--standard_workdir", default="runs/mnist_standard")
    p.add_argument("--robust_workdir", default="runs/mnist_pgd_at_8ep")
    p.add_argument("--which", default="best", choices=("best", "latest"),
                   help="checkpoint to load; a workdir without a best checkpoint falls back to latest "
                        "(recorded in results.json)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "digits"))
    p.add_argument("--data_dir", default=None, help="raw data directory (e.g. ../shared/data)")
    p.add_argument("--out", default="results/mnist_analysis")
    p.add_argument("--seed", type=int, default=0)
    # saliency
    p.add_argument("--n_examples", type=int, default=1000, help="test images for the saliency numbers")
    p.add_argument("--n_show", type=int, default=8, help="rows of the saliency and large-eps figures")
    # sanity check of the loaded checkpoints: L-inf PGD accuracy
    p.add_argument("--check_eps", type=float, default=0.3)
    p.add_argument("--check_steps", type=int, default=20)
    p.add_argument("--check_n", type=int, default=500, help="0 skips the PGD check")
    # large-eps examples
    p.add_argument("--n_large", type=int, default=256, help="test images attacked with large eps")
    p.add_argument("--l2_eps", type=_floats, default=_floats("4,8"))
    p.add_argument("--linf_eps", type=_floats, default=_floats("0.4"))
    p.add_argument("--l2_eps_random_start", type=_floats, default=_floats("8"),
                   help="L2 radii attacked again from a uniform random start in the ball ('' for none)")
    p.add_argument("--large_steps", type=int, default=100, help="steps (step size 2.5 eps / steps)")
    p.add_argument("--n_interp", type=int, default=4, help="rows per model of the interpolation figure")
    p.add_argument("--alphas", type=_floats, default=_floats("0,0.2,0.4,0.6,0.8,1"))
    # binary 5 vs 7
    p.add_argument("--binary_eps", type=_floats, default=_floats("0,0.1,0.2"), help="L-inf eps_train grid")
    p.add_argument("--binary_eps_at", type=float, default=0.1,
                   help="the AT model of the figures and top-k curve; also the robust-accuracy radius")
    p.add_argument("--binary_steps", type=int, default=800)
    p.add_argument("--binary_lr", type=float, default=0.05)
    p.add_argument("--binary_l2_reg", type=float, default=1e-4)
    p.add_argument("--ks", type=_ints, default=_ints("1,2,4,8,16,32,64,128,256,784"))
    p.add_argument("--batch_size", type=int, default=500)
    a = p.parse_args(argv)
    if a.binary_eps_at not in a.binary_eps or 0.0 not in a.binary_eps:
        p.error("--binary_eps must contain 0 and --binary_eps_at")
    if not (a.l2_eps or a.linf_eps):
        p.error("give at least one large eps (--l2_eps or --linf_eps)")
    if a.n_show < 1 or a.n_examples < max(2, a.n_show) or a.n_large < a.n_show:
        p.error("need 2 <= n_show <= n_examples and n_show <= n_large")
    return a


# ------------------------------------------------------------------------------------------
# Models and data
# ------------------------------------------------------------------------------------------

def load_model(workdir: str, which: str):
    """(model, variables, info); a run without a best checkpoint falls back to the latest one."""
    used, note = which, None
    try:
        model, variables, config = load_trained(workdir, which=which)
    except (ValueError, FileNotFoundError) as e:
        if which == "latest":
            raise
        used, note = "latest", f"no {which} checkpoint ({e}); used latest"
        model, variables, config = load_trained(workdir, which="latest")
    obj = config.objective
    info = {"workdir": workdir, "which_requested": which, "which_used": used, "fallback": note,
            "model": config.model.name, "objective": obj.name,
            "train_eps": float(obj.eps) if obj.get("eps") is not None and obj.name != "standard" else None,
            "train_norm": obj.get("norm") if obj.name != "standard" else None}
    return model, variables, info


def load_split(dataset: str, split: str, data_dir):
    ds = jdata.load(dataset, split, data_dir=data_dir)
    return np.asarray(jdata.to_float(ds.images)), np.asarray(ds.labels, np.int32), ds.class_names


def _apply(model):
    return lambda v, xx: model.apply(v, xx, train=False)


_JIT: dict = {}


def jitted(kind: str, model, make):
    """``jax.jit(make(apply))`` compiled once per architecture (both models usually share one):
    the variables are an argument, never a closed-over constant."""
    key = (kind, repr(model))
    if key not in _JIT:
        _JIT[key] = jax.jit(make(_apply(model)))
    return _JIT[key]


# ------------------------------------------------------------------------------------------
# Part 0: sanity check of the loaded checkpoints
# ------------------------------------------------------------------------------------------

def check_part(models, x, y, args):
    out = {}
    n = min(args.check_n, len(y))
    for name, (model, v, _) in models.items():
        pfn = jitted("predict", model, lambda f: lambda vv, xx: jnp.argmax(f(vv, xx), -1))
        pred = batched(lambda xx, v=v, pfn=pfn: pfn(v, xx), [x], args.batch_size)
        out[name] = {"clean_accuracy": float(np.mean(pred == y)), "n_clean": int(len(y))}
        if n > 0:
            afn = jitted("check_pgd", model, lambda f: lambda vv, xx, yy: jnp.argmax(f(vv, pgd(
                lambda z: f(vv, z), xx, yy, key=jax.random.key(args.seed + 1), eps=args.check_eps,
                step_size=2.5 * args.check_eps / args.check_steps, steps=args.check_steps, norm="linf")), -1))
            adv_pred = batched(lambda xx, yy, v=v, afn=afn: afn(v, xx, yy), [x[:n], y[:n]], min(n, args.batch_size))
            out[name].update({f"pgd{args.check_steps}_linf{args.check_eps:g}_accuracy": float(np.mean(adv_pred == y[:n])),
                              "n_pgd": int(n), "pgd": f"L-inf eps {args.check_eps:g}, {args.check_steps} steps of "
                              "2.5 eps/steps, uniform random start, 1 restart"})
    return out


# ------------------------------------------------------------------------------------------
# Part 1: saliency
# ------------------------------------------------------------------------------------------

def _stats(v) -> dict:
    v = np.asarray(v, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "stderr": float(v.std(ddof=1) / np.sqrt(len(v))),
            "q25": float(np.quantile(v, 0.25)), "median": float(np.median(v)), "q75": float(np.quantile(v, 0.75))}


def saliency_part(models, x, y, args, out_dir, figures):
    grads, align, ink = {}, {}, {}
    for name, (model, v, _) in models.items():
        gfn = jitted("grad", model, lambda f: lambda vv, xx, yy: input_gradients(lambda z: f(vv, z), xx, yy, loss="ce"))
        g = batched(lambda xx, yy, v=v, gfn=gfn: gfn(v, xx, yy), [x, y], args.batch_size)
        grads[name] = g
        align[name] = np.asarray(jax.jit(saliency_alignment)(jnp.asarray(g), jnp.asarray(x)))
        a = np.abs(g).sum(-1).reshape(len(y), -1)
        on_ink = (x.mean(-1).reshape(len(y), -1) > INK)
        ink[name] = (a * on_ink).sum(1) / np.maximum(a.sum(1), 1e-30)
    diff = align["robust"] - align["standard"]
    fig = os.path.join(out_dir, "saliency.png")
    plot_saliency_grid(x[:args.n_show], {"standard": grads["standard"][:args.n_show],
                                         "PGD-AT": grads["robust"][:args.n_show]}, fig,
                       title=f"Input gradients of the CE loss ({args.dataset} test images; ±3 sd, rescaled)")
    figures.append(fig)
    return {"n": int(len(y)), "loss": "ce", "labels": "true labels",
            "edge_alignment": {k: _stats(v) for k, v in align.items()},
            "edge_alignment_paired_difference_robust_minus_standard": {
                **_stats(diff), "share_robust_higher": float(np.mean(diff > 0))},
            "ink_share_of_abs_grad": {k: _stats(v) for k, v in ink.items()},
            "ink_pixel_share": float(np.mean(x.mean(-1) > INK)), "ink_threshold": INK}


# ------------------------------------------------------------------------------------------
# Part 2: large-eps targeted examples
# ------------------------------------------------------------------------------------------

def class_means(x_train, y_train, k):
    return np.stack([x_train[y_train == c].mean(0) for c in range(k)])


def nearest_mean(xa, means):
    d = ((xa.reshape(len(xa), 1, -1) - means.reshape(1, len(means), -1)) ** 2).sum(-1)
    return np.argmin(d, 1)


def large_eps_part(models, x, y, means, names, args, out_dir, figures):
    k = len(means)
    rng = np.random.default_rng(args.seed)
    tgt = ((y + rng.integers(1, k, size=len(y))) % k).astype(np.int32)
    direction = (means[tgt] - means[y]).reshape(len(y), -1)
    predict = {name: jitted("predict", m, lambda f: lambda vv, xx: jnp.argmax(f(vv, xx), -1))
               for name, (m, _, _) in models.items()}
    ink = x.mean(-1).reshape(len(y), -1) > INK
    specs = ([("l2", e, "zero") for e in args.l2_eps] + [("linf", e, "zero") for e in args.linf_eps]
             + [("l2", e, "uniform") for e in args.l2_eps_random_start])
    attacks, examples = [], {}
    for norm, eps, init in specs:
        row = {"norm": norm, "eps": eps, "init": init, "steps": args.large_steps,
               "step_size": 2.5 * eps / args.large_steps, "by_model": {}}
        for name, (model, v, _) in models.items():
            # eps is a traced argument: one compilation per (architecture, norm, init)
            fn = jitted(f"large_{norm}_{init}", model, lambda f, norm=norm, init=init: lambda vv, xx, tt, e: large_eps_examples(
                lambda z: f(vv, z), xx, tt, key=jax.random.key(args.seed + 2), eps=e,
                step_size=2.5 * e / args.large_steps, steps=args.large_steps, norm=norm, init=init))
            t0 = time.time()
            xa = batched(lambda xx, tt, v=v, fn=fn, eps=eps: fn(v, xx, tt, jnp.float32(eps)), [x, tgt],
                         min(len(y), args.batch_size))
            wall = time.time() - t0
            examples[(norm, eps, init, name)] = xa
            other = [o for o in models if o != name][0]
            delta = (xa - x).reshape(len(y), -1)
            cos = (delta * direction).sum(1) / np.maximum(np.linalg.norm(delta, axis=1) * np.linalg.norm(direction, axis=1), 1e-30)
            ad = np.abs(delta)
            row["by_model"][name] = {
                "own_target_rate": float(np.mean(np.asarray(predict[name](v, jnp.asarray(xa))) == tgt)),
                "other_model_target_rate": float(np.mean(np.asarray(predict[other](models[other][1], jnp.asarray(xa))) == tgt)),
                "nearest_class_mean_target_rate": float(np.mean(nearest_mean(xa, means) == tgt)),
                "cos_delta_to_class_mean_difference": float(np.mean(cos)),
                "mean_l2": float(np.mean(np.linalg.norm(delta, axis=1))),
                "mean_linf": float(np.mean(np.abs(delta).max(1))),
                "mean_abs_change": float(np.mean(ad)),
                "share_of_abs_change_on_ink": float(np.mean((ad * ink).sum(1) / np.maximum(ad.sum(1), 1e-30))),
                "ink_added_on_background": float(np.mean((np.clip(delta, 0, None) * ~ink).sum(1))),
                "ink_removed_on_ink": float(np.mean((np.clip(-delta, 0, None) * ink).sum(1))),
                "wall_s": wall}
        attacks.append(row)
    n = args.n_show
    cols = {}
    for norm, eps, init in specs:
        tag = f"{'L2' if norm == 'l2' else 'L∞'} {eps:g}" + (" rs" if init == "uniform" else "")
        cols[f"std {tag}"] = examples[(norm, eps, init, "standard")][:n]
        cols[f"AT {tag}"] = examples[(norm, eps, init, "robust")][:n]
    fig = os.path.join(out_dir, "large_eps.png")
    plot_large_eps_grid(x[:n], cols, fig, targets=tgt[:n], class_names=names,
                        title=f"Large-ε targeted examples (best iterate, {args.large_steps} steps); "
                              "std = standard model, AT = PGD-AT model, rs = random start")
    figures.append(fig)
    eps_i = max(args.l2_eps) if args.l2_eps else max(args.linf_eps)
    norm_i = "l2" if args.l2_eps else "linf"
    m = min(args.n_interp, len(y))
    paths = [np.asarray(interpolate(jnp.asarray(x[:m]), jnp.asarray(examples[(norm_i, eps_i, "zero", name)][:m]),
                                    jnp.asarray(args.alphas))) for name in ("robust", "standard")]
    rows = [f"{lab} {names[y[i]]}→{names[tgt[i]]}" for lab in ("AT", "std") for i in range(m)]
    fig = os.path.join(out_dir, "interpolation.png")
    plot_interpolation(np.clip(np.concatenate(paths, axis=1), 0, 1), args.alphas, fig, row_labels=rows,
                       title=f"x → large-ε x_adv ({norm_i.upper()} ε = {eps_i:g}); AT rows: PGD-AT model, "
                             "std rows: standard model")
    figures.append(fig)
    clean_nm = nearest_mean(x, means)
    baseline = {"nearest_class_mean_accuracy": float(np.mean(clean_nm == y)),
                "nearest_class_mean_target_rate": float(np.mean(clean_nm == tgt)),
                **{f"{name}_target_rate": float(np.mean(np.asarray(predict[name](v, jnp.asarray(x))) == tgt))
                   for name, (_, v, _) in models.items()}}
    return {"n": int(len(y)), "targets": f"uniform over the wrong classes, numpy seed {args.seed}",
            "clean_baseline": baseline,
            "judges": {"own": "the attacked model", "other": "the other model (standard <-> PGD-AT)",
                       "nearest_class_mean": "nearest mean training image of a class (model-free)"},
            "init": {"zero": "start at x (MadryLab default for these figures)",
                     "uniform": "random start uniform in the L2 ball (then clipped to [0, 1])"},
            "ink": f"pixels with x > {INK}; ink_added_on_background = mean over images of sum(max(delta, 0)) on "
                   "non-ink pixels, ink_removed_on_ink = sum(max(-delta, 0)) on ink pixels",
            "attacks": attacks, "interpolation": {"norm": norm_i, "eps": eps_i, "alphas": args.alphas, "rows": m}}


# ------------------------------------------------------------------------------------------
# Part 3: binary 5 vs 7 linear models
# ------------------------------------------------------------------------------------------

def binary_part(args, out_dir, figures):
    def split(s):
        ds = jdata.binary_task(jdata.load(args.dataset, s, data_dir=args.data_dir), 5, 7)
        return ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0, ds.labels, ds.images.shape[1:3]

    (xtr, ytr, shape), (xte, yte, _) = split("train"), split("test")
    d = xtr.shape[1]
    corr = np.asarray(jax.jit(feature_label_correlation)(jnp.asarray(xtr), jnp.asarray(ytr)))
    ac = np.abs(corr)
    e_at = args.binary_eps_at
    models, weights = [], {}
    # eps is a traced argument: one compilation for the whole eps grid
    fit = jax.jit(lambda xx, yy, e: train_linear(xx, yy, eps=e, norm="linf", steps=args.binary_steps,
                                                 lr=args.binary_lr, l2_reg=args.binary_l2_reg))
    accuracies = jax.jit(lambda w, b, xx, yy: (
        linear_accuracy(w, b, xx, yy), linear_robust_accuracy(w, b, xx, yy, eps=e_at),
        linear_robust_accuracy(w, b, xx, yy, eps=e_at, box=True)))
    for e in args.binary_eps:
        w, b = fit(jnp.asarray(xtr), jnp.asarray(ytr), jnp.float32(e))
        acc, rob, rob_box = accuracies(w, b, jnp.asarray(xte), jnp.asarray(yte))
        w = np.asarray(w)
        aw = np.abs(w)
        big = aw > 0.01 * aw.max()
        models.append({
            "eps_train": e, "standard_accuracy": float(acc),
            f"robust_accuracy_eps{e_at:g}": float(rob),
            f"robust_accuracy_eps{e_at:g}_box": float(rob_box),
            "large_weight_share": large_weight_share(w, rel=0.01),
            "spearman_abs_w_abs_corr": weight_correlation_rank(w, corr),
            "w_weighted_mean_abs_corr": float((aw * ac).sum() / max(aw.sum(), 1e-30)),
            "mean_abs_corr_of_large_weights": float(ac[big].mean()) if big.any() else float("nan"),
            "w_l1": float(aw.sum()), "bias": float(b)})
        weights[e] = w
    label = lambda e: "standard" if e == 0 else f"L∞-AT ε={e:g}"  # noqa: E731
    f1 = plot_weight_maps({label(e): w for e, w in weights.items()}, os.path.join(out_dir, "binary_weight_maps.png"),
                          shape=tuple(shape), corr=corr,
                          title=f"{args.dataset} 5 (+) vs 7 (−): label correlation and linear weights")
    f2 = plot_correlation_vs_weight(corr, {label(0.0): weights[0.0], label(e_at): weights[e_at]},
                                    os.path.join(out_dir, "binary_corr_vs_weight.png"),
                                    title=f"{args.dataset} 5 vs 7: corr(x_i, y) vs weight w_i")
    ks = [k for k in args.ks if k <= d]
    curves = {}
    for e in (0.0, e_at):
        cv = top_k_curve(xtr, ytr, xte, yte, ks, eps_train=e, eps_test=e_at, norm="linf", steps=args.binary_steps,
                         lr=args.binary_lr, l2_reg=args.binary_l2_reg)
        curves[label(e)] = {"k": cv["k"], "standard": cv["standard"], "robust": cv["robust"]}
    f3 = plot_top_k_curves(curves, os.path.join(out_dir, "binary_top_k.png"),
                           title=f"Only the k most label-correlated pixels (robust: exact L∞ ε={e_at:g})")
    figures += [f1, f2, f3]
    return {"dataset": args.dataset, "positive": "5", "negative": "7", "n_train": int(len(ytr)),
            "n_test": int(len(yte)), "features": int(d), "norm": "linf", "eps_test": e_at,
            "robust_accuracy_note": "exact worst case of a linear model; plain: y(w.x+b) - eps ||w||_1 (the paper's "
                                    "formula, no [0,1] box); box: the [0,1]-box-constrained exact worst case",
            "train": {"steps": args.binary_steps, "lr": args.binary_lr, "l2_reg": args.binary_l2_reg,
                      "optimizer": "full-batch Adam, cosine decay"},
            "models": models, "top_k": {"eps_test": e_at, "curves": curves},
            "max_abs_corr": float(ac.max())}


# ------------------------------------------------------------------------------------------

def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    t_start = time.time()
    load_start = os.getloadavg()
    os.makedirs(args.out, exist_ok=True)
    timings, figures = {}, []

    def timed(name, fn):
        t0 = time.time()
        r = fn()
        timings[name] = round(time.time() - t0, 1)
        print(f"[{name}] {timings[name]:.1f} s", flush=True)
        return r

    models = {name: load_model(wd, args.which) for name, wd in zip(MODELS, (args.standard_workdir, args.robust_workdir))}
    x_test, y_test, names = load_split(args.dataset, "test", args.data_dir)
    x_train, y_train, _ = load_split(args.dataset, "train", args.data_dir)
    n_sal, n_large = min(args.n_examples, len(y_test)), min(args.n_large, len(y_test))

    results = {"command": "python " + SCRIPT + (" " + " ".join(argv) if argv else ""),
               "dataset": args.dataset, "models": {k: v[2] for k, v in models.items()},
               "counts": {"saliency_images": n_sal, "large_eps_images": n_large,
                          "check_pgd_images": max(0, min(args.check_n, n_sal)), "figure_rows": args.n_show}}
    results["check"] = timed("check", lambda: check_part(models, x_test[:n_sal], y_test[:n_sal], args))
    results["saliency"] = timed("saliency", lambda: saliency_part(models, x_test[:n_sal], y_test[:n_sal], args,
                                                                   args.out, figures))
    means = class_means(x_train, y_train, len(names))
    results["large_eps"] = timed("large_eps", lambda: large_eps_part(
        models, x_test[:n_large], y_test[:n_large], means, names, args, args.out, figures))
    results["binary"] = timed("binary", lambda: binary_part(args, args.out, figures))
    results["figures"] = [os.path.relpath(f, args.out) for f in figures]
    results["wall_time_s"] = round(time.time() - t_start, 1)
    results["timings_s"] = timings
    results["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "loadavg_1_5_15_start": [round(v, 2) for v in load_start],
                          "loadavg_1_5_15_end": [round(v, 2) for v in os.getloadavg()],
                          "jax_backend": jax.default_backend(), "jax": jax.__version__}
    write_json(os.path.join(args.out, "results.json"), results)
    _print_summary(results)
    return results


def _print_summary(r):
    s = r["saliency"]
    print("saliency edge alignment (mean +- stderr):",
          {k: f"{v['mean']:.3f} +- {v['stderr']:.3f}" for k, v in s["edge_alignment"].items()},
          "| ink share:", {k: f"{v['mean']:.3f}" for k, v in s["ink_share_of_abs_grad"].items()})
    for a in r["large_eps"]["attacks"]:
        print(f"large eps {a['norm']} {a['eps']:g}:", {k: {kk: round(vv, 3) for kk, vv in v.items() if kk != "wall_s"}
                                                      for k, v in a["by_model"].items()})
    for m in r["binary"]["models"]:
        print("binary", {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()})
    print(f"wall time {r['wall_time_s']} s; parts {r['timings_s']}")


if __name__ == "__main__":
    main()
