"""Study 1: first-layer colour channels of adversarially trained CNNs (Kaur, Cohen & Lipton).

    python experiments/sketchy_channels.py --profile default --workdir runs/sketchy_channels
    python experiments/sketchy_channels.py --profile cpu --datasets colored_digits --epochs 30 \
        --linf 0.0156863 --workdir runs/sk_cd_e30_linf4          # one dataset, other radius/epochs

For every colour dataset of the profile (``colored_digits`` at default; CIFAR-10 too at cpu/full)
three small CNNs (``small_cnn``, conv1 = 64 filters 3x3, batch norm after every conv) are trained
with the same seed and schedule: vanilla, Linf PGD-AT and L2 PGD-AT. For each model:

* per-filter channel distances ``d_o(c, c') = ||W[:, :, c, o] - W[:, :, c', o]||_F`` of conv1
  (raw and divided by the filter norm, since BN follows conv1), their histograms (bin 0.02) and the
  count/share of (filter, pair) distances in [0, 0.02);
* accuracy on the colour test set, on grey-scale copies (BT.601 luma in all channels) and on
  sketch-like copies (inverted Sobel edge maps), and the accuracy kept, grey/colour and
  sketch/colour;
* PGD robust accuracy (Linf and L2 at the training radii) on a test subset, to show that the AT
  models are robust at all.

The input normalisation is the same for the three channels (``model.mean/std`` set in the
config, not per-channel data statistics), so equal kernel slices mean equal weights on the raw R,
G and B pixels, i.e. a luminance filter.

Claims (analysis-methods.md section A, reproduction check 21): AT models have some raw (and
relative) distances below 0.02 and the vanilla model none; AT models keep more accuracy on
grey-scale and on sketch inputs. The relation between the near-equal share and the accuracy kept
is reported as a table and a Spearman correlation across the models.
"""
from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import batched, cached_part, claim, finish, study_main, train_model  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jadv import data as jdata  # noqa: E402
from jadv.analysis import layer_metrics  # noqa: E402
from jadv.analysis import (channel_distance_histogram, channel_distances, grayscale_images,  # noqa: E402
                           near_equal_share, sketch_images)
from jadv.attacks import pgd  # noqa: E402
from jadv.train import base_config  # noqa: E402
from jadv.viz.filters import plot_channel_distances, plot_first_layer_filters  # noqa: E402

STUDY = "sketchy_channels"
SOURCE = "Kaur, Cohen & Lipton (poster); analysis-methods section A, check 21"
VARIANTS = ("colour", "grey", "sketch")


# -- configs ------------------------------------------------------------------------------------
def model_config(config, dataset: str, name: str):
    """The jadv.train config of model ``name`` (a key of ``config.models``) on ``dataset``."""
    ds = config.data[dataset]
    spec = config.models[name]
    c = base_config()
    c.seed = int(config.seed)
    c.dataset = dataset
    c.data_dir = config.data_dir
    c.train_size = ds.train_size
    c.test_size = ds.test_size
    c.model.name = "small_cnn"
    c.model.kwargs = {"conv1_filters": int(config.conv1_filters), "widths": tuple(config.widths),
                      "hidden": int(config.hidden), "norm": "batch"}
    # same normalisation for R, G and B: equal kernel slices = equal weights on raw R, G, B
    c.model.mean = (float(config.input_mean),) * 3
    c.model.std = (float(config.input_std),) * 3
    c.batch_size = int(config.batch_size)
    c.num_epochs = int(ds.num_epochs)
    c.num_steps = config.num_steps
    c.optimizer.lr = float(config.lr)
    c.optimizer.weight_decay = float(config.weight_decay)
    c.augment.crop_flip = bool(ds.augment)
    c.objective.name = spec.objective
    if spec.objective != "standard":
        eps = float(ds.eps[spec.norm])
        c.objective.update(eps=eps, norm=spec.norm, steps=int(config.attack_steps),
                           step_size=2.5 * eps / int(config.attack_steps),
                           init="uniform" if spec.norm == "linf" else "ball",
                           eps_warmup_epochs=float(config.eps_warmup_epochs))
    c.robust_eval.enabled = False     # robust accuracy is measured below, on a test subset
    c.log_every_steps = int(config.log_every_steps)
    c.checkpoint.every_steps = 10_000
    c.num_devices = config.num_devices
    return c


_FNS: dict = {}


def _eval_fns(model):
    """Jitted ``predict(variables, x)`` and ``pgd_correct(variables, x, y, key, eps, norm, steps)``
    for one architecture; the three models of a dataset share it, so each compiles once."""
    tag = repr(model)
    if tag not in _FNS:
        logits = lambda variables, x: model.apply(variables, x, train=False)  # noqa: E731

        @jax.jit
        def predict(variables, x):
            return jnp.argmax(logits(variables, x), -1)

        @functools.partial(jax.jit, static_argnames=("norm", "steps"))
        def pgd_correct(variables, x, y, key, eps, *, norm, steps):
            f = lambda z: logits(variables, z)  # noqa: E731
            x_adv = pgd(f, x, y, key=key, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm,
                        init="uniform" if norm == "linf" else "ball")
            return (jnp.argmax(f(x_adv), -1) == y) & (jnp.argmax(f(x), -1) == y)

        _FNS[tag] = (predict, pgd_correct)
    return _FNS[tag]


def _test_data(config, dataset):
    ds = jdata.load(dataset, "test", data_dir=config.data_dir)
    n = config.data[dataset].test_size
    n = len(ds) if n is None else min(int(n), len(ds))
    x = np.asarray(jdata.to_float(ds.images[:n]))
    return x, np.asarray(ds.labels[:n])


def _variants(x, batch_size=512):
    """Colour, grey-scale and sketch versions of x (computed in chunks)."""
    grey = np.concatenate([np.asarray(grayscale_images(x[s:s + batch_size])) for s in range(0, len(x), batch_size)])
    sketch = np.concatenate([np.asarray(sketch_images(x[s:s + batch_size])) for s in range(0, len(x), batch_size)])
    return {"colour": x, "grey": grey, "sketch": sketch}


def analyse_model(config, dataset, name, model, variables, images, y, key) -> dict:
    """Channel distances of conv1, accuracy on each image variant, PGD robust accuracy."""
    kernel = np.asarray(variables["params"]["conv1"]["kernel"])
    raw = np.asarray(channel_distances(kernel))
    rel = np.asarray(channel_distances(kernel, relative=True))
    thr = float(config.threshold)
    out = {"kernel": kernel, "dist_raw": raw, "dist_relative": rel,
           "filter_norm": np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=(0, 1, 2)))}
    for tag, d in (("raw", raw), ("relative", rel)):
        count, share = near_equal_share(d, thr)
        edges, counts = channel_distance_histogram(d, bin_width=float(config.bin_width))
        out[f"near_equal_{tag}"] = {"count": count, "share": share, "n": int(d.size),
                                    "min": float(d.min()), "median": float(np.median(d))}
        out[f"hist_{tag}"] = {"edges": edges, "counts": counts}
    predict, pgd_correct = _eval_fns(model)
    bs = int(config.eval_batch_size)
    acc = {v: float(np.mean(batched(lambda x: predict(variables, x), [images[v]], bs) == y)) for v in VARIANTS}
    out["accuracy"] = acc
    out["kept"] = {v: (acc[v] / acc["colour"] if acc["colour"] > 0 else float("nan")) for v in ("grey", "sketch")}
    n_rob = min(int(config.robust_examples), len(y))
    rob = {}
    for i, (norm, eps) in enumerate(sorted(config.data[dataset].eps.items())):
        steps = int(config.eval_steps)
        k = jax.random.fold_in(key, i)
        ok = batched(lambda x, t: pgd_correct(variables, x, t, k, float(eps), norm=norm, steps=steps),
                      [images["colour"][:n_rob], y[:n_rob]], min(bs, n_rob))
        rob[norm] = {"eps": float(eps), "steps": steps, "n": n_rob, "attack": f"PGD-{steps}, step 2.5 eps/steps",
                     "robust_accuracy": float(np.mean(ok))}
    out["robust"] = rob
    return out


# -- figures ------------------------------------------------------------------------------------
def plot_accuracy_kept(per_model: dict, path: str, *, title: str) -> str:
    """Bar chart: accuracy kept on grey-scale and sketch inputs (relative to colour), per model."""
    from matplotlib.figure import Figure

    names = list(per_model)
    fig = Figure(figsize=(1.6 + 1.5 * len(names), 3.4), dpi=100)
    ax = fig.subplots()
    width = 0.38
    xs = np.arange(len(names))
    for i, (v, colour) in enumerate((("grey", "0.5"), ("sketch", "C1"))):
        vals = [per_model[n]["kept"][v] for n in names]
        bars = ax.bar(xs + (i - 0.5) * width, vals, width, color=colour, label=f"{v} / colour")
        for b, val in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{val:.2f}", ha="center", va="bottom", fontsize=8)
    labels = [f"{n}\ncolour acc {per_model[n]['accuracy']['colour']:.2f}\n"
              f"near-eq {per_model[n]['near_equal_raw']['count']}/{per_model[n]['near_equal_raw']['n']}" for n in names]
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("accuracy kept")
    ax.set_ylim(0, max(1.05, max(per_model[n]["kept"][v] for n in names for v in ("grey", "sketch")) * 1.1))
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# -- the study ----------------------------------------------------------------------------------
def _spearman(a, b):
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None        # undefined (constant input or too few models)
    return float(spearmanr(a, b).statistic)


# Both colour datasets of the study have 10 classes. A model whose colour accuracy is at most
# CHANCE_FACTOR x chance has not learnt the task: "accuracy kept" is then ~1 by construction
# (chance in, chance out), so the grey/sketch claims are not tested on it.
NUM_CLASSES = {"colored_digits": 10, "cifar10": 10}
CHANCE_FACTOR = 2.0


def near_chance(per_model: dict, dataset: str) -> dict:
    """``{model: colour accuracy}`` of the models within CHANCE_FACTOR x chance on ``dataset``."""
    limit = CHANCE_FACTOR / NUM_CLASSES[dataset]
    return {n: r["accuracy"]["colour"] for n, r in per_model.items() if r["accuracy"]["colour"] <= limit}


def _dataset_claims(config, dataset, per_model, corr, cmd):
    vanilla = [n for n in per_model if config.models[n].objective == "standard"]
    adv = [n for n in per_model if config.models[n].objective != "standard"]
    degenerate = near_chance(per_model, dataset)
    out = []
    for tag in ("raw", "relative"):
        counts = {n: per_model[n][f"near_equal_{tag}"]["count"] for n in per_model}
        ok = all(counts[n] > 0 for n in adv) and all(counts[n] == 0 for n in vanilla)
        mins = {n: round(per_model[n][f"near_equal_{tag}"]["min"], 4) for n in per_model}
        out.append(claim(
            STUDY, f"1.1-{tag}-{dataset}",
            f"{dataset}: adversarially trained models have some conv1 (filter, channel pair) {tag} distances "
            f"< {config.threshold:g}, the vanilla model none",
            measured="count < thr of " + ", ".join(f"{n} {counts[n]}/{per_model[n][f'near_equal_{tag}']['n']}"
                                                   for n in per_model)
                     + "; min distance " + ", ".join(f"{n} {mins[n]}" for n in per_model),
            verdict=ok, source=SOURCE, command=cmd))
    for v in ("grey", "sketch"):
        kept = {n: per_model[n]["kept"][v] for n in per_model}
        ok = all(kept[a] > kept[b] for a in adv for b in vanilla)
        measured = ", ".join(f"{n} {per_model[n]['accuracy'][v]:.3f}/{per_model[n]['accuracy']['colour']:.3f}"
                             f" = {kept[n]:.3f}" for n in per_model)
        if degenerate:
            measured += ("; not tested: " + ", ".join(f"{n} (colour accuracy {a:.3f})" for n, a in degenerate.items())
                         + f" at most {CHANCE_FACTOR:g}x chance, so its accuracy kept is ~1 by construction")
        out.append(claim(
            STUDY, f"1.2-{v}-{dataset}",
            f"{dataset}: adversarially trained models keep more of their accuracy on {v} inputs than the vanilla model",
            measured=measured,
            verdict=None if degenerate else ok,
            source=SOURCE + " (grey/sketch test: hypothesis from the poster's title and its ref. [3])",
            command=cmd))
    sp = {k: (None if v is None else round(v, 3)) for k, v in corr.items()}
    measured = f"Spearman over {len(per_model)} models: {sp} (None: undefined, a constant column)"
    if degenerate:
        measured += "; not tested: " + ", ".join(degenerate) + " near chance (see the grey/sketch rows)"
    out.append(claim(
        STUDY, f"1.3-{dataset}",
        f"{dataset}: across the models, the share of near-equal channel pairs correlates positively with the "
        "accuracy kept on grey-scale and sketch inputs (Spearman, exploratory)",
        measured=measured,
        verdict=(None if degenerate or any(v is None for v in corr.values())
                 else all(v > 0 for k, v in corr.items() if k.startswith("near_equal"))),
        source=SOURCE + "; the relation is the hypothesis of section A (luminance filters)", command=cmd))
    return out


def claims_from_results(config, results: dict) -> list[dict]:
    """The claims rows of the datasets in a finished run's ``results`` (``done.json``), derived
    again with the current verdict rules (``reproduce.py --reclaim``); no model is loaded."""
    cmd = f"python experiments/sketchy_channels.py --profile {config.profile}"
    out = []
    for dataset in config.all_datasets:
        if dataset in results:
            r = results[dataset]
            out.extend(_dataset_claims(config, dataset, r["models"], r["spearman"], cmd))
    return out


def run(config, workdir: str) -> dict:
    """Train (or reuse) the models of every dataset of the profile, analyse, plot, claim."""
    os.makedirs(workdir, exist_ok=True)
    cmd = f"python experiments/sketchy_channels.py --profile {config.profile}"
    results, claims, figures = {}, [], []
    key = jax.random.key(int(config.seed))
    for dataset in config.all_datasets:
        if dataset not in config.datasets:
            for cid, text in (("1.1-raw", "adversarially trained models have some raw conv1 distances < 0.02, "
                                          "the vanilla model none"),
                              ("1.1-relative", "the same for relative distances"),
                              ("1.2-grey", "adversarially trained models keep more accuracy on grey-scale inputs"),
                              ("1.2-sketch", "adversarially trained models keep more accuracy on sketch inputs")):
                claims.append(claim(STUDY, f"{cid}-{dataset}", f"{dataset}: {text}",
                                    measured=f"{dataset} is not used at profile {config.profile!r}",
                                    verdict=None, source=SOURCE, command=cmd.replace(config.profile, "cpu")))
            continue
        images = None
        per_model = {}
        for i_model, name in enumerate(config.model_order):
            def compute(name=name, i_model=i_model):
                nonlocal images
                mc = model_config(config, dataset, name)
                model, variables, train_res = train_model(mc, os.path.join(workdir, "models", dataset, name))
                if images is None:
                    x, y = _test_data(config, dataset)
                    images = (_variants(x), y)
                res = analyse_model(config, dataset, name, model, variables, images[0], images[1],
                                    jax.random.fold_in(key, i_model))
                res["train"] = {k: v for k, v in train_res.items() if not isinstance(v, dict)}
                res["objective"] = mc.objective.to_dict()
                return res

            per_model[name] = cached_part(workdir, f"{dataset}_{name}", compute)
        names = list(per_model)
        # Gavrikov & Keuper's per-layer filter metrics of the same models (weights only: cheap, so
        # computed outside the cached parts; train_model only reloads a finished run)
        layer_table = {}
        for name in names:
            _, variables, _ = train_model(model_config(config, dataset, name),
                                          os.path.join(workdir, "models", dataset, name))
            layer_table[name] = [{k: m[k] for k in ("name", "depth", "sparsity", "variance_entropy",
                                                    "variance_entropy_raw", "orthogonality", "n_filters")
                                  if k in m} for m in layer_metrics(variables["params"])]
        table = [{"model": n, "objective": per_model[n]["objective"]["name"],
                  "norm": per_model[n]["objective"].get("norm"), "eps": per_model[n]["objective"].get("eps"),
                  "near_equal_raw": per_model[n]["near_equal_raw"]["share"],
                  "near_equal_relative": per_model[n]["near_equal_relative"]["share"],
                  "median_relative": per_model[n]["near_equal_relative"]["median"],
                  **{f"acc_{v}": per_model[n]["accuracy"][v] for v in VARIANTS},
                  **{f"kept_{v}": per_model[n]["kept"][v] for v in ("grey", "sketch")},
                  **{f"robust_{k}": r["robust_accuracy"] for k, r in per_model[n]["robust"].items()}}
                 for n in names]
        corr = {}
        for share in ("near_equal_raw", "near_equal_relative", "median_relative"):
            for v in ("kept_grey", "kept_sketch"):
                corr[f"{share}~{v}"] = _spearman([r[share] for r in table], [r[v] for r in table])
        results[dataset] = {"models": {n: {k: v for k, v in per_model[n].items() if k != "kernel"} for n in names},
                            "table": table, "spearman": corr, "filter_metrics": layer_table}
        title = f"{dataset}: conv1 channel distances"
        figures.append(plot_channel_distances(
            {n: np.asarray(per_model[n]["dist_raw"]) for n in names},
            os.path.join(workdir, f"{dataset}_channel_distances.png"),
            relative={n: np.asarray(per_model[n]["dist_relative"]) for n in names},
            bin_width=float(config.bin_width), threshold=float(config.threshold), title=title))
        figures.append(plot_first_layer_filters(
            {n: np.asarray(per_model[n]["kernel"], np.float32) for n in names},
            os.path.join(workdir, f"{dataset}_conv1_filters.png"), title=f"{dataset}: conv1 filters"))
        figures.append(plot_accuracy_kept(per_model, os.path.join(workdir, f"{dataset}_accuracy_kept.png"),
                                          title=f"{dataset}: accuracy kept on grey-scale / sketch inputs"))
        claims.extend(_dataset_claims(config, dataset, per_model, corr, cmd))
    return finish(workdir, STUDY, results, claims, figures)


def _data_flags(parser):
    parser.add_argument("--datasets", default=None, help="comma list: run only these datasets of the profile")
    parser.add_argument("--epochs", type=int, default=None, help="override the training epochs of those datasets")
    parser.add_argument("--linf", type=float, default=None, help="override their Linf training radius")
    parser.add_argument("--l2", type=float, default=None, help="override their L2 training radius")


def _apply_data_flags(args, config):
    """How the colored-digits radius of the cpu/full profiles was chosen (configs/sketchy_channels.py)."""
    if args.datasets:
        chosen = tuple(d for d in args.datasets.split(",") if d)
        unknown = [d for d in chosen if d not in config.data]
        if unknown:
            raise ValueError(f"datasets {unknown} are not in profile {config.profile!r}: {', '.join(config.data)}")
        config.datasets = chosen
    for d in config.datasets:
        if args.epochs is not None:
            config.data[d].num_epochs = args.epochs
        if args.linf is not None:
            config.data[d].eps.linf = args.linf
        if args.l2 is not None:
            config.data[d].eps.l2 = args.l2


def main(argv=None):
    study_main(STUDY, run, __doc__, argv, extra_args=(_data_flags, _apply_data_flags))


if __name__ == "__main__":
    main()
