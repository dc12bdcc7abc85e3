"""Study 4: robust vs standard models through the lens of their 3x3 conv filters.

Reproduces, on a controlled pair, the direction of the findings of Gavrikov & Keuper 2022,
"Adversarial Robustness through the Lens of Convolutional Filters" (CVPR 2022 Workshops, The Art
of Robustness, pp. 139-147; arXiv:2204.02481): adversarially trained models have less sparse,
more diverse and more orthogonal 3x3 filters than normally trained ones of the same
architecture, and the filter distributions differ most in the first conv layer and the deepest
layers. The paper compares 71 public RobustBench models with retrained normal counterparts; here
a standard and a PGD-AT model (Madry et al. 2018) are trained with the same seed, data order and
schedule, or loaded from two workdirs.

The measurements, for your own models (Flax params pytrees):

* :func:`depth_metrics`: per-layer sparsity, variance entropy and orthogonality of the 3x3 convs
  (:func:`jadv.analysis.layer_metrics`) and their aggregation per normalised depth
  (:func:`jadv.analysis.aggregate_by_depth`: first conv, then deciles).
* :func:`distribution_shift_by_depth`: the weighted symmetric KL between two models' filters
  (:func:`jadv.analysis.distribution_shift`) per layer, per depth group and over all layers.
* :func:`pooled_sparsity`: the share of sparse filters over all measured layers.
* :func:`init_cosines`: per 3x3 layer, the cosine between the trained kernel and the same kernel
  at initialisation (:func:`jadv.studies.gates.init_cosine`), for the quality gates.

``run(config, workdir)`` trains (or loads) the pair, measures it, draws the figures and judges the
claims with :func:`claims`. All four claims are about the weights of both models, so each rests
on both models' quality gates (``config.gates``, :mod:`jadv.studies.gates`): clean accuracy, PGD
accuracy for the robust model, and how far the layers the claims single out (the first conv and
the last occupied depth decile) moved from their initialisation.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from jadv.analysis import DEPTH_GROUPS, aggregate_by_depth, distribution_shift, filters_of, layer_metrics
from jadv.studies.common import batched, cached_part, check_single_process, claim, finish, train_model
from jadv.studies.gates import check_gates, check_spec, init_cosine

__all__ = ["training_configs", "run", "claims", "model_configs", "depth_metrics", "distribution_shift_by_depth",
           "pooled_sparsity", "plot_distribution_shift", "init_cosines", "gate_measurement", "gate_specs",
           "gate_records", "imported_name", "evaluate_loaded", "KINDS", "METRICS"]

STUDY = "filter_lens"
KINDS = ("standard", "robust")
METRICS = ("sparsity", "variance_entropy", "orthogonality")
_PAPER = ("Gavrikov & Keuper 2022, 'Adversarial Robustness through the Lens of Convolutional Filters', "
          "CVPR 2022 Workshops (The Art of Robustness), arXiv:2204.02481")
_REPO = "github.com/paulgavrikov/cvpr22w_RobustnessThroughTheLens"
SOURCES = {
    "4.1": f"{_PAPER}: abstract (robust filters are less sparse); pooled sparse-filter share 39.48% normal vs "
           f"9.45% robust over the paper's model set in the authors' {_REPO}, sparsity.ipynb",
    "4.2": f"{_PAPER}: abstract (more diverse filters, largest differences in the first conv layer and the "
           f"deepest layers); per-depth comparison in {_REPO}, metric_comparison.ipynb",
    "4.3": f"{_PAPER}: abstract (more orthogonal filters, largest differences in the first conv layer and the "
           f"deepest layers); per-depth comparison in {_REPO}, metric_comparison.ipynb",
    "4.4": f"{_PAPER}: abstract (largest differences in the deepest layers and the first conv layer); weighted "
           f"symmetric KL 0.622 all layers, 0.472 first conv on CIFAR-10 in {_REPO}, pca.ipynb",
}


# -- the models -------------------------------------------------------------------------------

def model_configs(config) -> dict:
    """The ``jadv.train`` configs of the pair: ``{"standard": config.train, "robust": config.train
    updated with config.robust}`` (copies, references resolved, ``config.data_dir`` filled in when
    set), each checked with :func:`jadv.train.config.check_config`."""
    from jadv.train.config import check_config

    out = {}
    for kind in KINDS:
        c = config.train.copy_and_resolve_references()
        if kind == "robust":
            c.update(config.robust.copy_and_resolve_references())
        if config.get("data_dir") is not None:
            c.data_dir = config.data_dir
        check_config(c)
        out[kind] = c
    return out


def _kind_specs(specs: Sequence[str], field: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        kind, _, path = str(spec).partition(":")
        if kind not in KINDS or not path:
            raise ValueError(f"{field} takes 'KIND:DIR' entries with KIND in {KINDS}, got {spec!r}")
        out.append((kind, path))
    return out


def _pair_dirs(config) -> dict:
    """``{kind: workdir}`` from ``config.pair_workdirs``, or ``{}`` to train the pair."""
    specs = _kind_specs(config.get("pair_workdirs", ()), "pair_workdirs")
    dirs = dict(specs)
    if len(dirs) != len(specs):
        raise ValueError(f"pair_workdirs takes one 'KIND:DIR' per KIND in {KINDS}, got {tuple(config.pair_workdirs)}")
    if dirs and set(dirs) != set(KINDS):
        raise ValueError(f"pair_workdirs needs both kinds {KINDS}, got {sorted(dirs)}")
    return dirs


# -- measurements -----------------------------------------------------------------------------

def training_configs(config) -> dict:
    """The pair's training configs (:func:`model_configs`), for :mod:`jadv.studies.cost`; none
    when the pair is loaded from ``config.pair_workdirs``."""
    return {} if config.get("pair_workdirs") else model_configs(config)


def depth_metrics(params, *, kernel_size: tuple[int, int] = (3, 3), sparsity_eps: float = 0.01) -> dict:
    """Filter metrics of one model, per layer and per normalised depth (Gavrikov & Keuper 2022).

    Args:
      params: a Flax params pytree (or a variables dict); its conv kernels are the 4-D leaves named
        ``kernel``, HWIO ``[kh, kw, C_in, C_out]`` (see :func:`jadv.analysis.filters_of`).
      kernel_size: only layers of this spatial size are measured (the paper: 3x3); depths count
        every conv layer (1x1 shortcuts and 7x7 stems included).
      sparsity_eps: sparsity threshold relative to the layer's max ``|W|`` (the paper: 1%).

    Returns:
      ``{"layers": jadv.analysis.layer_metrics(...), "by_depth": jadv.analysis.aggregate_by_depth(layers)}``:
      per layer ``sparsity``, ``variance_entropy``, ``orthogonality``, counts, ``name``, ``depth``,
      ``max_depth``; per group (``"first"``, then the deciles of ``depth / max_depth``) the pooled
      sparsity and the weighted means.
    """
    layers = layer_metrics(params, kernel_size=kernel_size, sparsity_eps=sparsity_eps)
    return {"layers": layers, "by_depth": aggregate_by_depth(layers)}


def _group_of(layer: Mapping) -> str:
    """The depth group :func:`jadv.analysis.aggregate_by_depth` files this layer record under."""
    return aggregate_by_depth([layer])[0]["group"]


def distribution_shift_by_depth(params_a, params_b, *, bins: int = 70, kernel_size: tuple[int, int] = (3, 3),
                                sparsity_eps: float = 0.01, layers: Sequence[Mapping] | None = None) -> dict:
    """Filter distribution shift between two models of one architecture (Gavrikov & Keuper 2022).

    The shift is :func:`jadv.analysis.distribution_shift`: the weighted symmetric KL divergence of
    the histograms (``bins`` bins) of the PCA coefficients of the L-inf-scaled, non-sparse filters.
    It is computed for each conv layer of spatial size ``kernel_size``, for each depth group (the
    kernels of all layers of the group pooled; groups as in :func:`jadv.analysis.aggregate_by_depth`)
    and over all those layers at once.

    Args:
      params_a, params_b: Flax params pytrees with the same conv layers (names and shapes).
      bins: histogram bins per PCA component (the paper: 70).
      kernel_size, sparsity_eps: as in :func:`depth_metrics`.
      layers: the ``"layers"`` of :func:`depth_metrics` for ``params_a`` (reused for the names and
        depths; computed when None).

    Returns:
      ``{"per_layer": [{"name", "depth", "group", "kl"}, ...], "per_group": {group: kl} (in depth
      order), "all_layers": kl}``, every kl a float >= 0.
    """
    ka = {name: k for name, _, k in filters_of(params_a)}
    kb = {name: k for name, _, k in filters_of(params_b)}
    if set(ka) != set(kb):
        raise ValueError("the two models have different conv layers")
    if layers is None:
        layers = layer_metrics(params_a, kernel_size=kernel_size, sparsity_eps=sparsity_eps)
    per_layer, pooled, all_a, all_b = [], {}, [], []
    for m in layers:
        a, b = np.asarray(ka[m["name"]]), np.asarray(kb[m["name"]])
        group = _group_of(m)
        per_layer.append({"name": m["name"], "depth": int(m["depth"]), "group": group,
                          "kl": distribution_shift(a, b, bins=bins, sparsity_eps=sparsity_eps)})
        ga, gb = pooled.setdefault(group, ([], []))
        ga.append(a)
        gb.append(b)
        all_a.append(a)
        all_b.append(b)
    per_group = {g: distribution_shift(*pooled[g], bins=bins, sparsity_eps=sparsity_eps)
                 for g in DEPTH_GROUPS if g in pooled}
    everything = distribution_shift(all_a, all_b, bins=bins, sparsity_eps=sparsity_eps)
    return {"per_layer": per_layer, "per_group": per_group, "all_layers": everything}


def pooled_sparsity(layers: Sequence[Mapping]) -> float:
    """Share of sparse filters over all the given layers (sum of ``n_sparse`` / sum of
    ``n_filters`` of :func:`depth_metrics`' ``"layers"``), the paper's pooled sparse-filter share."""
    return sum(int(m["n_sparse"]) for m in layers) / sum(int(m["n_filters"]) for m in layers)


def plot_distribution_shift(per_group: Mapping[str, float], path: str, *, title: str) -> str:
    """Bar chart of the weighted symmetric KL per depth group (``per_group`` of
    :func:`distribution_shift_by_depth`); returns ``path``."""
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


# -- quality gates ----------------------------------------------------------------------------

def imported_name(path: str) -> str:
    """The model name of an ``import_workdirs`` entry in gate records and ``config.gates``:
    ``"imported/<last folder of path>"``."""
    return "imported/" + os.path.basename(os.path.normpath(path))


def _model_names(config) -> list[str]:
    """The names of every model of the study: the pair, then the imported models (unique)."""
    names = list(KINDS) + [imported_name(p) for _, p in _kind_specs(config.get("import_workdirs", ()),
                                                                     "import_workdirs")]
    if len(set(names)) != len(names):
        raise ValueError(f"import_workdirs: model names {names} are not unique (a model is named "
                         "'imported/<last folder of its DIR>'); give the workdirs distinct folder names")
    return names


def gate_specs(config, names) -> dict:
    """``{name: gate spec}`` of ``config.gates`` for these models, each checked with
    :func:`jadv.studies.gates.check_spec`; ValueError naming any model without a gate."""
    gates = config.get("gates") or {}
    missing = [m for m in names if m not in gates]
    if missing:
        raise ValueError(f"{STUDY}: model(s) {missing} have no quality gate; set config.gates[name] = "
                         "{'clean', 'robust', 'init_cosine_max', 'source'} (jadv.studies.gates.gate_spec) "
                         f"for each of {list(names)}")
    out = {}
    for m in names:
        spec = gates[m]
        spec = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        check_spec(spec, f"{STUDY} config.gates[{m!r}]")
        out[m] = spec
    return out


def init_cosines(params, init_params, layers: Sequence[Mapping]) -> list[dict]:
    """Per measured layer, the cosine between its trained and its initial kernel.

    Args:
      params, init_params: Flax params pytrees of one architecture (trained; at initialisation,
        e.g. ``jadv.train.initial_variables(workdir)["params"]``).
      layers: the ``"layers"`` of :func:`depth_metrics` for ``params`` (names and depths of the
        3x3 convs).

    Returns ``[{"name", "depth", "group", "cosine"}, ...]`` in the order of ``layers``, ``cosine``
    :func:`jadv.studies.gates.init_cosine` of the HWIO kernels (1: the layer has not moved).
    """
    trained = {name: k for name, _, k in filters_of(params)}
    start = {name: k for name, _, k in filters_of(init_params)}
    return [{"name": m["name"], "depth": int(m["depth"]), "group": _group_of(m),
             "cosine": init_cosine(trained[m["name"]], start[m["name"]])} for m in layers]


def _init_cosines_of(workdir: str, cfg, params, layers) -> dict:
    """``{"layers": init_cosines(...) | None, "note"}`` of the model in a jadv workdir; None for a
    converted checkpoint (``experiments/import_model.py``), whose initialisation is unknown."""
    from jadv.train import initial_variables

    if cfg.get("imported") is not None:
        return {"layers": None, "note": "converted checkpoint (experiments/import_model.py): initialisation "
                                        "unknown, init cosine not measured"}
    return {"layers": init_cosines(params, initial_variables(workdir)["params"], layers),
            "note": f"trained kernels vs jadv.train.initial_variables({os.path.abspath(workdir)!r})"}


def evaluate_loaded(model, variables, cfg, config) -> dict:
    """Clean and PGD accuracy of a loaded model (``pair_workdirs``, ``import_workdirs``) by the
    study's own evaluation, the one the trained pair gets at the end of training.

    Clean accuracy on the first ``config.train.test_size`` (all when None) test images of the
    model's own dataset (``cfg.dataset``); robust accuracy under the PGD of
    ``config.train.robust_eval`` (eps, norm, steps, step size 2.5 eps / steps unless set; running
    BN statistics) on the first ``robust_eval.test_examples`` of them (clean errors count as
    errors; None when the robust evaluation is off or ``test_examples`` is 0).

    Returns ``{"dataset", "n_clean", "clean_accuracy", "n_robust", "robust_accuracy", "attack"}``,
    or with ``"error"`` and None accuracies when the dataset cannot be loaded.
    """
    import jax
    import jax.numpy as jnp

    from jadv import data
    from jadv.attacks import robust_accuracy

    dataset = str(cfg.dataset)
    try:
        test = data.load(dataset, "test", data_dir=config.get("data_dir") or cfg.get("data_dir"))
    except (FileNotFoundError, ValueError) as e:
        return {"dataset": dataset, "n_clean": 0, "clean_accuracy": None, "n_robust": 0, "robust_accuracy": None,
                "attack": None, "error": f"{type(e).__name__}: {e}"}
    n = len(test) if not config.train.test_size else min(int(config.train.test_size), len(test))
    x, y = np.asarray(data.to_float(test.images[:n])), np.asarray(test.labels[:n])

    def logits_fn(v, z):
        return model.apply(v, z, train=False)

    correct = jax.jit(lambda v, a, b: jnp.argmax(logits_fn(v, a), -1) == b)
    batch = int(config.train.eval_batch_size)
    out = {"dataset": dataset, "n_clean": n,
           "clean_accuracy": float(np.mean(batched(lambda a, b: correct(variables, a, b), [x, y], batch))),
           "n_robust": 0, "robust_accuracy": None, "attack": None}
    re = config.train.robust_eval
    m = min(int(re.test_examples), n)
    if re.enabled and m > 0:
        eps, steps, norm = float(re.eps), int(re.steps), str(re.norm or "linf")
        spec = {"name": "pgd", "eps": eps, "norm": norm, "steps": steps,
                "step_size": float(re.step_size) if re.step_size is not None else 2.5 * eps / steps}
        rep = robust_accuracy(logits_fn, x[:m], y[:m], [spec], key=jax.random.key(int(config.train.seed)),
                              batch_size=min(int(re.batch_size), m), params=variables, progress=False)
        out.update(n_robust=m, robust_accuracy=float(rep["robust_accuracy"]), attack=f"PGD-{steps} {norm} {eps:g}")
    return out


def gate_measurement(clean, robust, cosines: Sequence[Mapping] | None, last_group: str) -> dict:
    """One model's gate measurements (the ``measured`` of :func:`jadv.studies.gates.check_gate`).

    ``init_cosine`` is the largest init cosine (:func:`init_cosines`) over the layers the claims
    single out, the first conv and the layers of depth group ``last_group`` (the last occupied
    decile); None when the initialisation is unknown (``cosines`` None). Returns ``{"clean",
    "robust", "init_cosine", "init_cosine_layers"}`` (the names of the layers that maximum is over).
    """
    over = [c for c in cosines or () if c["group"] in ("first", last_group)]
    return {"clean": None if clean is None else float(clean), "robust": None if robust is None else float(robust),
            "init_cosine": max(float(c["cosine"]) for c in over) if over else None,
            "init_cosine_layers": [c["name"] for c in over]}


def gate_records(config, results: Mapping) -> dict:
    """``{model: gate record}`` (:func:`jadv.studies.gates.check_gates`) of every model of the
    study (the pair, then the imported models) from the saved ``results["gate_measurements"]``
    and the thresholds in ``config.gates``; a model without measurements fails its gate."""
    measured = results.get("gate_measurements", {})
    names = list(KINDS) + [m for m in measured if m not in KINDS]
    return check_gates(gate_specs(config, names), measured)


# -- verdicts ---------------------------------------------------------------------------------

def _at(by_depth, group, metric):
    for g in by_depth:
        if g["group"] == group:
            return g[metric]
    return float("nan")


def _command(config) -> str:
    cmd = f"python experiments/filter_lens.py --config configs/filter_lens.py:{config.profile}"
    pair = _pair_dirs(config)
    if pair:
        cmd += " --config.pair_workdirs=\"(" + ", ".join(f"'{k}:{pair[k]}'" for k in KINDS) + ")\""
    return cmd


def claims(config, results: Mapping) -> list[dict]:
    """The verdicts of claims 4.1-4.4 from the measured ``results`` of :func:`run` (pure: no
    training, no files). Only the controlled pair (``results["models"]``) is judged.

    * 4.1: the robust model's pooled sparse-filter share is lower than the standard model's.
    * 4.2, 4.3: the robust model's variance entropy (4.2) / orthogonality (4.3) is higher in the
      first conv layer and in the last occupied depth decile (both must hold).
    * 4.4: the depth group with the largest KL shift is the first conv or one of the two deepest
      occupied deciles, and the first conv and the last decile both lie above the median KL
      over groups.

    Every claim rests on both models: when either missed its gate (:func:`gate_records`, from
    ``results["gate_measurements"]`` and ``config.gates``) its verdict is "inconclusive".
    """
    cmd = _command(config)
    gates = gate_records(config, results)
    gated = {"gates": gates, "models": list(KINDS)}
    models = results["models"]
    std, rob = models["standard"], models["robust"]
    last = results["last_group"]
    ps = results["pooled_sparsity"]
    gm = results.get("gate_measurements", {})
    acc = {k: gm.get(k, {}).get("clean") for k in KINDS}
    racc = {k: gm.get(k, {}).get("robust") for k in KINDS}
    re = config.train.robust_eval
    context = (f"; clean acc std {acc['standard']:.3f} / rob {acc['robust']:.3f}, PGD-{re.steps} "
               f"Linf {re.eps:g} acc std {racc['standard']:.3f} / rob {racc['robust']:.3f}"
               if None not in acc.values() and None not in racc.values() else "")
    out = [claim(STUDY, "4.1", "the robust model has a lower pooled sparse-filter share (all 3x3 layers) than "
                 "the standard model",
                 measured=f"pooled sparsity standard {ps['standard']:.4f}, robust {ps['robust']:.4f} "
                          f"(paper: 39.5% vs 9.5% over its model set)" + context,
                 verdict=ps["robust"] < ps["standard"], source=SOURCES["4.1"], command=cmd, **gated)]
    for cid, metric in (("4.2", "variance_entropy"), ("4.3", "orthogonality")):
        vals = {g: (_at(std["by_depth"], g, metric), _at(rob["by_depth"], g, metric)) for g in ("first", last)}
        out.append(claim(
            STUDY, cid, f"the robust model has higher {metric.replace('_', ' ')} than the standard model in the "
                        "first conv layer and in the last depth decile",
            measured=", ".join(f"{g}: standard {s:.4f}, robust {r:.4f}" for g, (s, r) in vals.items()),
            verdict=all(r > s for s, r in vals.values()), source=SOURCES[cid], command=cmd, **gated))
    shift = results["shift"]
    pg = shift["per_group"]
    groups = list(pg)
    kl = np.asarray([pg[g] for g in groups], dtype=np.float64)
    deep = groups[-2:]                       # the deepest two occupied deciles
    top = groups[int(np.argmax(kl))]
    med = float(np.median(kl))
    out.append(claim(
        STUDY, "4.4", "the filter distribution shift (weighted symmetric KL, standard vs robust) is largest in the "
                      "first layer and the deepest deciles: the largest group is one of them, and both the first "
                      "conv and the last decile lie above the median over groups",
        measured=", ".join(f"{g} {v:.3f}" for g, v in pg.items()) + f"; all layers {shift['all_layers']:.3f}; "
                 f"max at {top}, median {med:.3f} (paper, CIFAR-10: all 0.622, first conv 0.472)",
        verdict=(top in ["first", *deep]) and pg.get("first", -1) > med and pg[groups[-1]] > med,
        source=SOURCES["4.4"], command=cmd, **gated))
    return out


# -- the study --------------------------------------------------------------------------------

def _pair_model(config, workdir: str, kind: str, pair: Mapping, configs) -> tuple:
    """Train (or load, from ``pair[kind]``) one model of the pair and measure it (cached parts).
    Returns ``(params, record, (clean, robust))``: ``record`` holds ``train``, the
    :func:`depth_metrics`, ``init_cosine`` and, for a loaded model, ``evaluation``
    (:func:`evaluate_loaded`); ``clean, robust`` are its accuracies for the gate."""
    from jadv.train import load_trained

    tag = "pair_" if pair else ""      # cached measurements of a given pair never mix with a trained one's
    record = {}
    if pair:
        wd = pair[kind]
        model, variables, cfg = load_trained(wd)
        record["train"] = {"workdir": os.path.abspath(wd), "model": cfg.model.name,
                           "model_kwargs": dict(cfg.model.kwargs), "dataset": cfg.dataset}
        record["evaluation"] = cached_part(workdir, f"pair_evaluation_{kind}",
                                           lambda: evaluate_loaded(model, variables, cfg, config))
        accuracy = record["evaluation"]["clean_accuracy"], record["evaluation"]["robust_accuracy"]
    else:
        wd, cfg = os.path.join(workdir, "models", kind), configs[kind]
        _, variables, res = train_model(cfg, wd)
        record["train"] = {k: v for k, v in res.items() if not isinstance(v, dict)}
        accuracy = res.get("test_accuracy"), res.get("test_subset_robust_accuracy")
    params = variables["params"]
    record.update(cached_part(workdir, f"{tag}metrics_{kind}", lambda: depth_metrics(params)))
    record["init_cosine"] = cached_part(workdir, f"{tag}init_cosine_{kind}",
                                        lambda: _init_cosines_of(wd, cfg, params, record["layers"]))
    return params, record, accuracy


def _imported_model(config, kind: str, path: str) -> tuple[dict, dict]:
    """An ``import_workdirs`` model measured like the pair: ``(record, gate measurement)``, the
    record ``{"kind", "name", "workdir", "layers", "by_depth", "evaluation", "init_cosine"}``."""
    from jadv.train import load_trained

    model, variables, cfg = load_trained(path)
    metrics = depth_metrics(variables["params"])
    evaluation = evaluate_loaded(model, variables, cfg, config)
    cosines = _init_cosines_of(path, cfg, variables["params"], metrics["layers"])
    record = {"kind": kind, "name": imported_name(path), "workdir": os.path.abspath(path), **metrics,
              "evaluation": evaluation, "init_cosine": cosines}
    return record, gate_measurement(evaluation["clean_accuracy"], evaluation["robust_accuracy"],
                                    cosines["layers"], metrics["by_depth"][-1]["group"])


def run(config, workdir: str) -> dict:
    """Study 4, filter lens: a standard and a PGD-AT model through their 3x3 conv filters.

    Reproduces the direction of Gavrikov & Keuper 2022, "Adversarial Robustness through the Lens
    of Convolutional Filters" (CVPR 2022 Workshops, arXiv:2204.02481), on one controlled pair: a
    standard and a PGD-AT model of the same architecture, trained with the same seed, data order
    and schedule (or two given workdirs). For each model every 3x3 conv layer gets sparsity,
    variance entropy and orthogonality, aggregated per normalised depth (first conv, then
    deciles; :func:`depth_metrics`); the filter distribution shift between the two models
    (weighted symmetric KL) is computed per layer and per depth group
    (:func:`distribution_shift_by_depth`). Claims (:func:`claims`, direction only): the robust
    model has a lower pooled sparse-filter share (4.1), higher variance entropy (4.2) and
    orthogonality (4.3) in the first conv and the last decile; the KL shift is largest in the
    first layer and the deepest deciles (4.4). Each claim rests on both models' quality gates
    (``config.gates``: clean accuracy, PGD accuracy of the robust model, init cosine of the first
    conv and the last decile); a claim whose models missed them is "inconclusive".

    Args:
      config: ``configs/filter_lens.py:get_config(profile)``, profiles smoke / small / medium /
        paper. Fields: ``train`` (the standard model's ``jadv.train`` config, the recipe both
        share, with the PGD evaluation of both models in ``train.robust_eval``), ``robust`` (what
        the robust model changes in it: the PGD-AT objective), ``data_dir`` (data dir of both
        models when set), ``bins`` (histogram bins of the KL shift, 70), ``pair_workdirs``
        (``("standard:DIR", "robust:DIR")``: load the pair from two jadv workdirs, e.g. converted
        PyTorch models of ``experiments/import_model.py``, instead of training it; same
        architecture), ``import_workdirs`` (``("robust:DIR", ...)``: extra models of a kind,
        measured and drawn in the depth figure, not used by the claims; each is named
        :func:`imported_name`), ``gates`` (``{model name: gate spec}``, :mod:`jadv.studies.gates`:
        one for "standard" and "robust", which a loaded pair uses too, and one per imported
        model; a model without a gate is a ValueError before anything runs).
      workdir: output directory. It gets ``models/standard`` and ``models/robust`` (training
        workdirs; resumed or reused), ``parts/`` (cached measurements, ``pair_*`` for a loaded
        pair), ``depth_metrics.png`` (metrics per depth group, both kinds),
        ``distribution_shift.png`` (KL per depth group), ``results.json`` and ``claims.json``.

    Returns:
      the record ``{"study", "results", "claims", "figures"}`` (:func:`jadv.studies.common.finish`);
      ``results`` holds ``models`` (per kind: ``train`` (the training results, or the loaded
      workdir), ``layers`` and ``by_depth`` of :func:`depth_metrics`, ``init_cosine``
      (``{"layers": init_cosines(...) | None, "note"}``, trained vs
      ``jadv.train.initial_variables``; None for a converted checkpoint) and, for a loaded pair,
      ``evaluation`` (:func:`evaluate_loaded`)), ``shift`` (:func:`distribution_shift_by_depth`),
      ``imported`` (per extra model: ``kind``, ``name``, ``workdir``, ``layers``, ``by_depth``,
      ``evaluation``, ``init_cosine``), ``last_group``, ``pooled_sparsity`` (per kind) and
      ``gate_measurements`` (per model name, :func:`gate_measurement`: clean and PGD accuracy
      and the largest init cosine over the first conv and the last decile).
    """
    check_single_process("filter_lens")
    from jadv.viz.filters import plot_depth_metrics

    os.makedirs(workdir, exist_ok=True)
    pair = _pair_dirs(config)
    imports = _kind_specs(config.get("import_workdirs", ()), "import_workdirs")
    gate_specs(config, _model_names(config))
    configs = None if pair else model_configs(config)
    params, models, accuracy = {}, {}, {}
    for kind in KINDS:
        params[kind], models[kind], accuracy[kind] = _pair_model(config, workdir, kind, pair, configs)
    shift = cached_part(workdir, f"{'pair_' if pair else ''}shift", lambda: distribution_shift_by_depth(
        params["standard"], params["robust"], bins=int(config.bins), layers=models["standard"]["layers"]))
    last = models["standard"]["by_depth"][-1]["group"]
    gate_measurements = {k: gate_measurement(*accuracy[k], models[k]["init_cosine"]["layers"], last) for k in KINDS}
    imported = []
    for kind, path in imports:
        record, gate_measurements[imported_name(path)] = _imported_model(config, kind, path)
        imported.append(record)
    results = {"models": models, "shift": shift, "imported": imported, "last_group": last,
               "pooled_sparsity": {k: pooled_sparsity(models[k]["layers"]) for k in KINDS},
               "gate_measurements": gate_measurements}

    curves = {k: [models[k]["by_depth"]] + [m["by_depth"] for m in imported if m["kind"] == k] for k in KINDS}
    curves = {k: (v[0] if len(v) == 1 else v) for k, v in curves.items()}
    given = models["standard"]["train"]
    title = (f"{given.get('model')} {given.get('model_kwargs')}: the two given models" if pair else
             f"{config.train.model.name} on {config.train.dataset}: standard vs PGD-AT")
    figures = [plot_depth_metrics(curves, os.path.join(workdir, "depth_metrics.png"), metrics=METRICS, title=title),
               plot_distribution_shift(shift["per_group"], os.path.join(workdir, "distribution_shift.png"),
                                       title="filter distribution shift, standard vs robust")]
    return finish(workdir, STUDY, results, claims(config, results), figures)
