"""Study 1, sketchy channels: first-layer colour channels of adversarially trained CNNs.

Reproduces (at small scale) Kaur, Cohen & Lipton, "Investigating the Sketchy Effects of
Adversarial Training" (poster; no paper text, venue or arXiv version was found): in adversarially
trained (AT) models some conv1 filters have (almost) equal weights on the R, G and B input
channels -- the poster's histogram of (filter, channel pair) distances has AT mass in its first bin
[0, 0.02) and none for the vanilla model. Such a filter is a luminance filter that ignores colour;
the poster's title and its reference [3] (ImageNet-Sketch: Wang, Ge, Lipton & Xing, "Learning
Robust Global Representations by Penalizing Local Predictive Power", NeurIPS 2019,
arXiv:1905.13549) suggest the question of how AT relates to generalisation to colourless, sketch
images, so the study also measures accuracy on grey-scale and sketch-like inputs.

The measurements a researcher can call on their own models:

* :func:`conv1_channel_stats`: per-filter channel distances of a first-layer kernel, raw and
  relative, their histograms and the near-equal count/share (from :mod:`jadv.analysis.channels`);
* :func:`image_variants`: colour, grey-scale and sketch copies of a test set;
* :func:`variant_accuracy`: accuracy on each variant and the accuracy kept (grey/colour,
  sketch/colour);
* :func:`pgd_robust_accuracy`: PGD robust accuracy at given radii (:func:`jadv.attacks.pgd`);
* :func:`analyse_model`: all of the above for one trained Flax model;
* :func:`gate_measures`: a model's clean and robust accuracy and how far its conv1 kernel moved
  from its initialisation (:func:`jadv.studies.gates.init_cosine`), what its quality gate checks;
* :func:`summary_table`, :func:`spearman_correlations` over several models;
* :func:`plot_accuracy_kept`: the accuracy-kept bar chart.

:func:`run` trains the models and measures; :func:`claims` turns the measured ``results`` into
verdicts (a pure function), each gated on the models it rests on (:func:`gate_records`; a model
below its gate ``config.gates["<dataset>/<model>"]`` makes the claim "inconclusive"). The config is
``configs/sketchy_channels.py:get_config(profile)``.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jadv import data as jdata
from jadv.analysis import (channel_distance_histogram, channel_distances, grayscale_images, layer_metrics,
                           near_equal_share, sketch_images)
from jadv.attacks import pgd
from jadv.studies.common import batched, cached_part, check_single_process, claim, finish, train_model
from jadv.studies.gates import check_gates, check_spec, init_cosine

__all__ = ["training_configs", "STUDY", "VARIANTS", "training_config", "gate_specs", "conv1_channel_stats", "image_variants",
           "variant_accuracy", "pgd_robust_accuracy", "analyse_model", "gate_measures", "summary_table",
           "spearman_correlations", "gate_records", "plot_accuracy_kept", "claims", "run"]

STUDY = "sketchy_channels"
SOURCE = ("Kaur, Cohen & Lipton, \"Investigating the Sketchy Effects of Adversarial Training\" (poster; no "
          "paper text, venue or arXiv version found): histogram of conv1 (filter, channel pair) distances, "
          "first bin [0, 0.02)")
SKETCH_SOURCE = (" (grey/sketch test: hypothesis from the poster's title and its ref. [3], ImageNet-Sketch: "
                 "Wang, Ge, Lipton & Xing, NeurIPS 2019, arXiv:1905.13549)")
VARIANTS = ("colour", "grey", "sketch")


def _command(profile) -> str:
    return f"python experiments/sketchy_channels.py --config configs/sketchy_channels.py:{profile}"


# -- configs ------------------------------------------------------------------------------------
def _check_datasets(config) -> None:
    unknown = [d for d in config.datasets if d not in config.data or d not in config.all_datasets]
    if unknown:
        raise ValueError(f"datasets {unknown} are not in profile {config.profile!r}: {', '.join(config.data)}")


def training_config(config, dataset: str, name: str):
    """The ``jadv.train`` config of model ``name`` (a key of ``config.models``) on ``dataset``.

    ``config.train`` (the shared recipe) updated with ``config.data[dataset].train`` and
    ``config.models[name]``; an adversarial objective gets the dataset's radius
    ``config.data[dataset].eps[norm]`` and the step ``2.5 eps / steps``. The result passes
    :func:`jadv.train.config.check_config`.
    """
    from jadv.train.config import check_config

    if dataset not in config.data:
        raise ValueError(f"dataset {dataset!r} is not in profile {config.profile!r}: {', '.join(config.data)}")
    if name not in config.models:
        raise ValueError(f"unknown model {name!r}; the config has {', '.join(config.model_order)}")
    c = config.train.copy_and_resolve_references()
    c.dataset = dataset
    c.update(config.data[dataset].train)
    c.update(config.models[name])
    if c.objective.name != "standard":
        eps = float(config.data[dataset].eps[c.objective.norm])
        c.objective.update(eps=eps, step_size=2.5 * eps / int(c.objective.steps))
    check_config(c)
    return c


def training_configs(config) -> dict:
    """``{"<dataset>/<model>": jadv.train config}`` of every model this profile trains
    (:func:`training_config`), for cost estimates (:mod:`jadv.studies.cost`)."""
    return {f"{d}/{m}": training_config(config, d, m) for d in config.datasets for m in config.model_order}


def gate_specs(config, dataset: str) -> dict:
    """``{"<dataset>/<model>": gate}`` of the models of ``config.model_order`` on ``dataset``, from
    ``config.gates`` (:mod:`jadv.studies.gates`); ValueError if a model has no gate or a gate is
    malformed (:func:`jadv.studies.gates.check_spec`)."""
    gates = config.get("gates") or {}
    specs = {}
    for m in config.model_order:
        name = f"{dataset}/{m}"
        if name not in gates:
            raise ValueError(f"model {name!r} has no quality gate in config.gates of profile "
                             f"{config.profile!r} (configs/sketchy_channels.py); every trained model needs one")
        spec = gates[name]
        spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
        check_spec(spec, f"config.gates[{name!r}]")
        specs[name] = spec
    return specs


# -- measurements -------------------------------------------------------------------------------
def conv1_channel_stats(kernel, *, threshold: float = 0.02, bin_width: float = 0.02) -> dict:
    """Channel-pair distances of a first-layer kernel (Kaur, Cohen & Lipton's poster).

    Args:
      kernel: HWIO conv kernel ``[kh, kw, 3, C_out]`` (Flax ``nn.Conv``).
      threshold: a distance below it counts as near-equal (the poster's first bin [0, 0.02)).
      bin_width: histogram bin width.
    Returns: dict with ``dist_raw`` and ``dist_relative`` (``[C_out, 3]``, the pairs (R,G), (R,B),
      (G,B); relative = divided by the filter norm, since batch norm follows conv1, see
      :func:`jadv.analysis.channel_distances`), ``filter_norm [C_out]``, ``near_equal_raw`` /
      ``near_equal_relative`` (``count``, ``share``, ``n`` = C_out * 3, ``min``, ``median``) and
      ``hist_raw`` / ``hist_relative`` (``edges``, ``counts``).
    """
    kernel = np.asarray(kernel)
    raw = np.asarray(channel_distances(kernel))
    rel = np.asarray(channel_distances(kernel, relative=True))
    out = {"dist_raw": raw, "dist_relative": rel,
           "filter_norm": np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=(0, 1, 2)))}
    for tag, d in (("raw", raw), ("relative", rel)):
        count, share = near_equal_share(d, float(threshold))
        edges, counts = channel_distance_histogram(d, bin_width=float(bin_width))
        out[f"near_equal_{tag}"] = {"count": count, "share": share, "n": int(d.size),
                                    "min": float(d.min()), "median": float(np.median(d))}
        out[f"hist_{tag}"] = {"edges": edges, "counts": counts}
    return out


def image_variants(x, *, batch_size: int = 512) -> dict:
    """``{"colour": x, "grey": ..., "sketch": ...}`` for RGB images ``x [N, H, W, 3]`` in [0, 1]:
    BT.601 luma in all channels (:func:`jadv.analysis.grayscale_images`) and inverted Sobel edge
    maps (:func:`jadv.analysis.sketch_images`, a stand-in for ImageNet-Sketch), as numpy arrays
    computed ``batch_size`` images at a time."""
    x = np.asarray(x)

    def chunks(fn):
        return np.concatenate([np.asarray(fn(x[s:s + batch_size])) for s in range(0, len(x), batch_size)])

    return {"colour": x, "grey": chunks(grayscale_images), "sketch": chunks(sketch_images)}


def _bind(logits_fn, params):
    return logits_fn if params is None else functools.partial(logits_fn, params)


# Jitted at module level with the logits function static: the models of one architecture share one
# logits function (:func:`_inference_apply`), so each evaluation compiles once for all of them.
@functools.partial(jax.jit, static_argnums=0)
def _correct(logits_fn, params, x, y):
    return jnp.argmax(_bind(logits_fn, params)(x), -1) == y


@functools.partial(jax.jit, static_argnums=0, static_argnames=("norm", "steps"))
def _pgd_correct(logits_fn, params, x, y, key, eps, *, norm, steps):
    f = _bind(logits_fn, params)
    x_adv = pgd(f, x, y, key=key, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm,
                init="uniform" if norm == "linf" else "ball")
    return (jnp.argmax(f(x_adv), -1) == y) & (jnp.argmax(f(x), -1) == y)


_APPLY: dict = {}


def _inference_apply(model):
    """``(variables, x) -> logits`` in inference mode (running BN statistics), one function object
    per architecture (keyed by the module's repr: Linen modules holding lists are unhashable)."""
    tag = repr(model)
    if tag not in _APPLY:
        _APPLY[tag] = lambda variables, x: model.apply(variables, x, train=False)
    return _APPLY[tag]


def variant_accuracy(logits_fn, variants: dict, y, *, params=None, batch_size: int = 256) -> dict:
    """Accuracy on each image variant and the share of the colour accuracy kept.

    Args:
      logits_fn: ``x -> logits[B, K]``, or ``(params, x) -> logits`` when ``params`` is given
        (the parameters are then jit arguments, not constants; pass the same ``logits_fn`` object
        for several models of one architecture and it compiles once).
      variants: ``{name: x [N, H, W, C]}`` from :func:`image_variants` (must hold ``"colour"``).
      y: ``[N]`` int labels.
      batch_size: fixed batch shape (the last batch is padded).
    Returns: ``{"accuracy": {variant: float}, "kept": {variant: accuracy / colour accuracy}}``
      (NaN kept when the colour accuracy is 0).
    """
    y = np.asarray(y)
    acc = {v: float(np.mean(batched(lambda x, t: _correct(logits_fn, params, x, t), [np.asarray(xv), y],
                                    batch_size)))
           for v, xv in variants.items()}
    kept = {v: (acc[v] / acc["colour"] if acc["colour"] > 0 else float("nan")) for v in variants if v != "colour"}
    return {"accuracy": acc, "kept": kept}


def pgd_robust_accuracy(logits_fn, x, y, radii: dict, *, key, steps: int, params=None,
                        batch_size: int = 256) -> dict:
    """PGD robust accuracy (Madry et al. 2018, ICLR, arXiv:1706.06083) at each ``{norm: eps}`` of ``radii``.

    :func:`jadv.attacks.pgd` with ``steps`` steps of ``2.5 eps / steps`` from a uniform (Linf) or
    ball (L2) start, inside one jitted function per norm; a point counts as robust when it is
    classified correctly clean and under the attack. The i-th norm in sorted order uses the key
    ``fold_in(key, i)``. ``logits_fn``/``params`` as in :func:`variant_accuracy`; x
    ``[N, H, W, C]`` in [0, 1], y ``[N]``.
    Returns: ``{norm: {"eps", "steps", "n", "attack", "robust_accuracy"}}``.
    """
    x, y = np.asarray(x), np.asarray(y)
    out = {}
    for i, norm in enumerate(sorted(radii)):
        eps, k = float(radii[norm]), jax.random.fold_in(key, i)
        ok = batched(lambda xb, yb: _pgd_correct(logits_fn, params, xb, yb, k, eps, norm=norm, steps=int(steps)),
                     [x, y], min(int(batch_size), len(y)))
        out[norm] = {"eps": eps, "steps": int(steps), "n": len(y), "attack": f"PGD-{int(steps)}, step 2.5 eps/steps",
                     "robust_accuracy": float(np.mean(ok))}
    return out


def analyse_model(model, variables, variants: dict, y, *, key, radii: dict, threshold: float = 0.02,
                  bin_width: float = 0.02, eval_steps: int = 20, robust_examples: int = 256,
                  batch_size: int = 256) -> dict:
    """The per-model analysis of the study for a trained Flax model (inference mode, running BN
    statistics): :func:`conv1_channel_stats` of ``variables["params"]["conv1"]["kernel"]`` (plus
    the ``kernel`` itself), :func:`variant_accuracy` on ``variants`` and
    :func:`pgd_robust_accuracy` at ``radii`` on the first ``robust_examples`` colour images."""
    kernel = np.asarray(variables["params"]["conv1"]["kernel"])
    out = {"kernel": kernel, **conv1_channel_stats(kernel, threshold=threshold, bin_width=bin_width)}

    apply = _inference_apply(model)
    out.update(variant_accuracy(apply, variants, y, params=variables, batch_size=batch_size))
    n = min(int(robust_examples), len(y))
    out["robust"] = pgd_robust_accuracy(apply, variants["colour"][:n], np.asarray(y)[:n], radii, key=key,
                                        steps=eval_steps, params=variables, batch_size=batch_size)
    return out


def gate_measures(analysis: dict, objective, kernel_init) -> dict:
    """What the quality gate of one analysed model checks (:mod:`jadv.studies.gates`).

    Args:
      analysis: :func:`analyse_model` of the model (``accuracy``, ``robust``, ``kernel``).
      objective: its training objective (``name``, and ``norm`` for PGD-AT), a dict or ConfigDict.
      kernel_init: conv1's kernel at initialisation ``[3, 3, 3, C_out]``
        (:func:`jadv.train.initial_variables` of the training run).
    Returns: ``{"clean": colour test accuracy, "robust": PGD robust accuracy at the training norm
      and radius (None for a standard model), "init_cosine": cosine of conv1 with its initialisation}``.
    """
    robust = None
    if objective["name"] != "standard":
        robust = analysis["robust"][objective["norm"]]["robust_accuracy"]
    return {"clean": float(analysis["accuracy"]["colour"]), "robust": None if robust is None else float(robust),
            "init_cosine": init_cosine(analysis["kernel"], kernel_init)}


def summary_table(per_model: dict) -> list[dict]:
    """One row per model of ``{name: analyse_model(...) + "objective"}``: objective, near-equal
    shares, median relative distance, accuracies, accuracy kept and robust accuracies."""
    rows = []
    for n, m in per_model.items():
        rows.append({"model": n, "objective": m["objective"]["name"], "norm": m["objective"].get("norm"),
                     "eps": m["objective"].get("eps"),
                     "near_equal_raw": m["near_equal_raw"]["share"],
                     "near_equal_relative": m["near_equal_relative"]["share"],
                     "median_relative": m["near_equal_relative"]["median"],
                     **{f"acc_{v}": m["accuracy"][v] for v in VARIANTS},
                     **{f"kept_{v}": m["kept"][v] for v in ("grey", "sketch")},
                     **{f"robust_{k}": r["robust_accuracy"] for k, r in m["robust"].items()}})
    return rows


def _spearman(a, b):
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None        # undefined (constant input or too few models)
    return float(spearmanr(a, b).statistic)


def spearman_correlations(table: list[dict]) -> dict:
    """Spearman rank correlations across the models of :func:`summary_table`, keyed
    ``"<near_equal_raw|near_equal_relative|median_relative>~<kept_grey|kept_sketch>"``; None where
    undefined (fewer than 3 models or a constant column)."""
    return {f"{share}~{v}": _spearman([r[share] for r in table], [r[v] for r in table])
            for share in ("near_equal_raw", "near_equal_relative", "median_relative")
            for v in ("kept_grey", "kept_sketch")}


def _without(record: dict, metric: str) -> dict:
    """A gate record without its ``metric`` check (met again over the rest)."""
    checks = [c for c in record["checks"] if c["metric"] != metric]
    return dict(record, checks=checks, met=all(c["ok"] for c in checks))


def gate_records(config, dataset: str, per_model: dict) -> tuple[dict, dict]:
    """The quality gates of the models of one dataset, checked on their saved measurements.

    ``per_model[m]["gate_measured"]`` (:func:`gate_measures`) against ``config.gates["<d>/<m>"]``
    (:func:`gate_specs`); a model without measurements fails as "not measured". Returns
    ``(weights, accuracy)``, each ``{"<d>/<m>": record}``: ``weights`` checks the whole gate (clean,
    robust, conv1 moved from its initialisation), for the claims about conv1's weights;
    ``accuracy`` leaves out the init_cosine check, for the claims about accuracies.
    """
    specs = gate_specs(config, dataset)
    measured = {f"{dataset}/{m}": r.get("gate_measured") or {} for m, r in per_model.items()}
    weights = check_gates(specs, measured)
    return weights, {m: _without(r, "init_cosine") for m, r in weights.items()}


# -- figures ------------------------------------------------------------------------------------
def plot_accuracy_kept(per_model: dict, path: str, *, title: str) -> str:
    """Bar chart: accuracy kept on grey-scale and sketch inputs (relative to colour), per model.
    ``per_model``: ``{name: {"kept", "accuracy", "near_equal_raw"}}`` (:func:`analyse_model`)."""
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


# -- verdicts -----------------------------------------------------------------------------------
def _dataset_claims(config, dataset, per_model, corr, cmd):
    objective = {n: config.models[n].objective.name for n in per_model}
    vanilla = [n for n in per_model if objective[n] == "standard"]
    adv = [n for n in per_model if objective[n] != "standard"]
    weights, accuracy = gate_records(config, dataset, per_model)
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
            verdict=ok, source=SOURCE, command=cmd, gates=weights))
    for v in ("grey", "sketch"):
        kept = {n: per_model[n]["kept"][v] for n in per_model}
        ok = all(kept[a] > kept[b] for a in adv for b in vanilla)
        measured = ", ".join(f"{n} {per_model[n]['accuracy'][v]:.3f}/{per_model[n]['accuracy']['colour']:.3f}"
                             f" = {kept[n]:.3f}" for n in per_model)
        out.append(claim(
            STUDY, f"1.2-{v}-{dataset}",
            f"{dataset}: adversarially trained models keep more of their accuracy on {v} inputs than the vanilla model",
            measured=measured, verdict=ok, source=SOURCE + SKETCH_SOURCE, command=cmd, gates=accuracy))
    sp = {k: (None if v is None else round(v, 3)) for k, v in corr.items()}
    out.append(claim(
        STUDY, f"1.3-{dataset}",
        f"{dataset}: across the models, the share of near-equal channel pairs correlates positively with the "
        "accuracy kept on grey-scale and sketch inputs (Spearman, exploratory)",
        measured=f"Spearman over {len(per_model)} models: {sp} (None: undefined, a constant column)",
        verdict=(None if any(v is None for v in corr.values())
                 else all(v > 0 for k, v in corr.items() if k.startswith("near_equal"))),
        source=SOURCE + "; the relation (near-equal channels = luminance filters that ignore colour) is this "
                        "reproduction's hypothesis" + SKETCH_SOURCE,
        command=cmd, gates=accuracy))
    return out


_NOT_RUN = (("1.1-raw", "adversarially trained models have some raw conv1 distances < 0.02, the vanilla model none"),
            ("1.1-relative", "the same for relative distances"),
            ("1.2-grey", "adversarially trained models keep more accuracy on grey-scale inputs"),
            ("1.2-sketch", "adversarially trained models keep more accuracy on sketch inputs"))


def claims(config, results: dict) -> list[dict]:
    """The verdicts of the study from its measured ``results`` (as :func:`run` saves them in
    ``results.json``); pure: no training, no file access.

    For each dataset of ``config.all_datasets`` with results (``results[d]["models"][m]`` holding
    ``accuracy``, ``kept``, ``near_equal_raw``, ``near_equal_relative``, ``gate_measured``;
    ``results[d]["spearman"]``), with the models' objectives read from ``config.models``:

    * ``1.1-raw-<d>``, ``1.1-relative-<d>``: reproduced when every AT model has at least one raw
      (relative) distance below ``config.threshold`` and the vanilla model none;
    * ``1.2-grey-<d>``, ``1.2-sketch-<d>``: reproduced when every AT model keeps a larger share of
      its colour accuracy on grey (sketch) inputs than the vanilla model;
    * ``1.3-<d>``: reproduced when the Spearman correlations of the near-equal shares with the
      accuracy kept are all positive; not run when one is undefined.

    Every claim rests on the three models of its dataset (:func:`gate_records`): 1.1 on their whole
    gates (clean and robust accuracy, and conv1 moved from its initialisation: a layer still at
    its random start shows nothing about what training does to it), 1.2 and 1.3 on their accuracy
    gates (a model that has not learnt the task keeps ~all of its chance-level accuracy on any
    input). A model below its gate makes a decided claim "inconclusive".

    A dataset without results gets four "not run at this profile" rows (1.1-raw, 1.1-relative,
    1.2-grey, 1.2-sketch).
    """
    cmd = _command(config.profile)
    out = []
    for dataset in config.all_datasets:
        if dataset in results:
            r = results[dataset]
            out.extend(_dataset_claims(config, dataset, r["models"], r["spearman"], cmd))
            continue
        why = (f"{dataset} is not used at profile {config.profile!r}" if dataset not in config.datasets
               else f"no results for {dataset} in this run")
        for cid, text in _NOT_RUN:
            out.append(claim(STUDY, f"{cid}-{dataset}", f"{dataset}: {text}", measured=why, verdict=None,
                             source=SOURCE, command=_command("medium")))
    return out


# -- the study ----------------------------------------------------------------------------------
def _dataset(config, dataset: str, workdir: str, key):
    """Train (or reuse) and analyse the models of one dataset; returns (results, figures)."""
    from jadv.train import load_splits

    images = {}

    def test_data(mc):
        if not images:
            _, _, test = load_splits(mc)      # the first test_size test images, as the training run's
            images["y"] = np.asarray(test.labels)
            images["x"] = image_variants(np.asarray(jdata.to_float(test.images)))
        return images["x"], images["y"]

    def model_dir(name):
        return os.path.join(workdir, "models", dataset, name)

    per_model = {}
    for i_model, name in enumerate(config.model_order):
        def compute(name=name, i_model=i_model):
            mc = training_config(config, dataset, name)
            model, variables, train_res = train_model(mc, model_dir(name))
            x, y = test_data(mc)
            res = analyse_model(model, variables, x, y, key=jax.random.fold_in(key, i_model),
                                radii=dict(config.data[dataset].eps), threshold=float(config.threshold),
                                bin_width=float(config.bin_width), eval_steps=int(config.eval_steps),
                                robust_examples=int(config.robust_examples),
                                batch_size=int(config.eval_batch_size))
            res["train"] = {k: v for k, v in train_res.items() if not isinstance(v, dict)}
            res["objective"] = mc.objective.to_dict()
            res["filter_metrics"] = _layer_table(variables)
            res["gate_measured"] = gate_measures(res, res["objective"], _initial_conv1(model_dir(name)))
            return res

        per_model[name] = part = cached_part(workdir, f"{dataset}_{name}", compute)
        if "filter_metrics" not in part:     # a part cached before they were added
            _, variables, _ = train_model(training_config(config, dataset, name), model_dir(name))
            part["filter_metrics"] = _layer_table(variables)
        if "gate_measured" not in part:
            part["gate_measured"] = gate_measures(part, part["objective"], _initial_conv1(model_dir(name)))
    names = list(per_model)
    table = summary_table(per_model)
    corr = spearman_correlations(table)
    results = {"models": {n: {k: v for k, v in per_model[n].items() if k not in ("kernel", "filter_metrics")}
                          for n in names},
               "table": table, "spearman": corr,
               "filter_metrics": {n: per_model[n]["filter_metrics"] for n in names}}
    figures = [
        _plot_channel_distances(config, dataset, per_model, os.path.join(workdir, f"{dataset}_channel_distances.png")),
        _plot_filters(dataset, per_model, os.path.join(workdir, f"{dataset}_conv1_filters.png")),
        plot_accuracy_kept(per_model, os.path.join(workdir, f"{dataset}_accuracy_kept.png"),
                           title=f"{dataset}: accuracy kept on grey-scale / sketch inputs")]
    return results, figures


def _initial_conv1(model_dir: str):
    """conv1's kernel at the initialisation of the training run in ``model_dir``."""
    from jadv.train import initial_variables

    return np.asarray(initial_variables(model_dir)["params"]["conv1"]["kernel"])


def _layer_table(variables) -> list[dict]:
    """Gavrikov & Keuper's per-layer filter metrics (CVPR-W 2022, arXiv:2204.02481) of a model."""
    keep = ("name", "depth", "sparsity", "variance_entropy", "variance_entropy_raw", "orthogonality", "n_filters")
    return [{k: m[k] for k in keep if k in m} for m in layer_metrics(variables["params"])]


def _plot_channel_distances(config, dataset, per_model, path):
    from jadv.viz.filters import plot_channel_distances

    return plot_channel_distances({n: np.asarray(m["dist_raw"]) for n, m in per_model.items()}, path,
                                  relative={n: np.asarray(m["dist_relative"]) for n, m in per_model.items()},
                                  bin_width=float(config.bin_width), threshold=float(config.threshold),
                                  title=f"{dataset}: conv1 channel distances")


def _plot_filters(dataset, per_model, path):
    from jadv.viz.filters import plot_first_layer_filters

    return plot_first_layer_filters({n: np.asarray(m["kernel"], np.float32) for n, m in per_model.items()}, path,
                                    title=f"{dataset}: conv1 filters")


def run(config, workdir: str) -> dict:
    """Study 1: conv1 colour channels of vanilla vs adversarially trained CNNs (Kaur, Cohen & Lipton).

    Reproduces, on small CNNs, the observation of Kaur, Cohen & Lipton's poster "Investigating the
    Sketchy Effects of Adversarial Training" (no paper text, venue or arXiv version found): AT
    models have conv1 (filter, channel pair) distances in the histogram's first bin [0, 0.02), the
    vanilla model none (claims 1.1). It also tests the hypothesis that the poster's title and its
    ref. [3] (ImageNet-Sketch; Wang, Ge, Lipton & Xing, NeurIPS 2019, arXiv:1905.13549) suggest:
    AT models keep more of their accuracy on grey-scale and sketch inputs (1.2), more so the more
    near-equal channel pairs they have (1.3, exploratory).

    For every dataset of ``config.datasets`` (colored digits at ``smoke``/``small``; CIFAR-10 too
    at ``medium``/``paper``) three ``small_cnn`` models (conv1 = 64 filters 3x3, batch norm after
    every conv, one input normalisation for R, G and B) are trained with the same seed and
    schedule: vanilla, Linf PGD-AT and L2 PGD-AT (:func:`training_config`). For each model
    (:func:`analyse_model`):

    * the per-filter channel distances ``d_o(c, c') = ||W[:, :, c, o] - W[:, :, c', o]||_F`` of
      conv1, raw and divided by the filter norm, their histograms (bin ``config.bin_width``) and the
      count/share below ``config.threshold`` (the poster's first bin [0, 0.02));
    * accuracy on the colour test set, on grey-scale copies (BT.601 luma) and on sketch-like copies
      (inverted Sobel edge maps), and the accuracy kept, grey/colour and sketch/colour;
    * PGD robust accuracy (Linf and L2 at the training radii) on the first
      ``config.robust_examples`` test images, to show that the AT models are robust at all;
    * Gavrikov & Keuper's per-layer filter metrics (CVPR-W 2022, arXiv:2204.02481), in
      ``results[d]["filter_metrics"]``;
    * what its quality gate checks (:func:`gate_measures`): clean accuracy, PGD robust accuracy at
      its own training norm and radius, and the cosine of conv1 with its initialisation.

    Across the models: a table and Spearman correlations of the near-equal shares with the accuracy
    kept. The verdicts come from :func:`claims`.

    Args:
      config: ``configs/sketchy_channels.py:get_config(profile)``. Fields: ``seed``, ``data_dir``;
        ``datasets`` (those run; ``all_datasets`` those claimed); ``train`` (the shared
        ``jadv.train`` recipe), ``models.<m>`` (per-model overrides, the objective), ``model_order``;
        ``data.<d>.train`` (per-dataset overrides: sizes, epochs, augmentation) and
        ``data.<d>.eps.{linf,l2}`` (training and evaluation radii); ``threshold``, ``bin_width``,
        ``eval_batch_size``, ``robust_examples``, ``eval_steps`` (PGD steps of the evaluation);
        ``gates["<d>/<m>"]``: each model's quality gate (:func:`gate_specs`; checked before training).
      workdir: output folder. Written: ``models/<d>/<m>/`` (the training runs, reused when
        finished), ``parts/<d>_<m>.json`` (the per-model analysis, reused on a rerun),
        ``results.json``, ``claims.json`` and per dataset ``<d>_channel_distances.png``,
        ``<d>_conv1_filters.png``, ``<d>_accuracy_kept.png``.
    Returns: the record ``{"study", "results", "claims", "figures"}``; ``results[d]`` holds
      ``models`` (per model: distances, histograms, near-equal counts, accuracies, kept, robust,
      train metrics, objective, ``gate_measured``), ``table``, ``spearman`` and ``filter_metrics``.
    """
    check_single_process("sketchy_channels")
    _check_datasets(config)
    for dataset in config.datasets:
        gate_specs(config, dataset)
    os.makedirs(workdir, exist_ok=True)
    key = jax.random.key(int(config.seed))
    results, figures = {}, []
    for dataset in config.all_datasets:
        if dataset in config.datasets:
            results[dataset], figs = _dataset(config, dataset, workdir, key)
            figures.extend(figs)
    return finish(workdir, STUDY, results, claims(config, results), figures)
