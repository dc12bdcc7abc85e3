"""Study 3: intriguing properties of adversarial training at scale, at CPU/CIFAR scale.

Reproduces the directions of

* Xie & Yuille, "Intriguing Properties of Adversarial Training at Scale", ICLR 2020
  (arXiv:1906.03787): with batch norm, robustness rises as the share of clean images in training
  falls; separate BNs for clean and adversarial images (MBN) fix much of it; a batch-unrelated
  normalisation (GroupNorm) shrinks the effect; robustness keeps rising with depth;
* Xie, Tan, Gong, Wang, Yuille & Le, "Adversarial Examples Improve Image Recognition" (AdvProp),
  CVPR 2020 (arXiv:1911.09665): adversarial examples through an auxiliary BN do not cost (and may
  add) clean accuracy through the main BN.

Every claim rests on trained models, so each is gated (:mod:`jadv.studies.gates`): an evaluation
(a model, or one BN set of a dual-BN model) below its gate in ``config.gates`` makes the claims
that read it "inconclusive".

Public functions: :func:`run` (the whole study), :func:`claims` (the verdicts, pure),
:func:`train_config` (the ``jadv.train`` config of one model), :func:`model_spec`,
:func:`evaluation_labels`, :func:`evaluate_model` (clean, many-step PGD and AutoAttack accuracy of
any model), :func:`strong_pgd` (accuracy against PGD-k for growing k), :func:`levels_off`,
:func:`summary_table`, :func:`depth_sweep`, :func:`gate_measurements`,
:func:`gate_specs`, :func:`gate_records`, :func:`plot_ratio`, :func:`plot_depth`.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jadv.studies.common import (batched, cached_part, check_single_process, claim,
                                 finish, monotone, train_model)
from jadv.studies.gates import check_gates, check_spec

STUDY = "scale_properties"
DUAL_BN_OBJECTIVES = ("mbn", "advprop")     # trained with two BN sets, evaluated through each

_XIE = "Xie & Yuille, Intriguing Properties of Adversarial Training at Scale, ICLR 2020 (arXiv:1906.03787)"
_ADVPROP = ("Xie, Tan, Gong, Wang, Yuille & Le, Adversarial Examples Improve Image Recognition "
            "(AdvProp), CVPR 2020 (arXiv:1911.09665)")
SOURCES = {
    "3.1": _XIE + ": abstract (removing clean images from training boosts robustness by 18.3% on "
                  "ImageNet) and Fig. 1 (robustness against the share of clean training images)",
    "3.2": _XIE + ": abstract (separate BNs for clean and adversarial images, MBN, drawn in Fig. 4, "
                  "give much stronger robustness)",
    "3.3": _XIE + ": the MBN evaluation through each BN set (MBN_clean: clean accuracy, MBN_adv: "
                  "robustness); the near-zero robustness of MBN_clean is a recalled detail, not "
                  "checked against the paper's tables",
    "3.4": _XIE + ": batch-unrelated normalisation (GroupNorm) restores strong robustness when "
                  "training on clean/adversarial mixtures (from a secondary summary of the paper; "
                  "not in its abstract)",
    "3.5": _XIE + ": abstract (robustness keeps improving with depth up to ResNet-638 while clean "
                  "accuracy saturates)",
    "3.6": _ADVPROP + ": abstract (auxiliary BN for adversarial examples; +0.7% ImageNet top-1 "
                      "for EfficientNet-B7)",
    "3.7": _XIE + ": robustness is measured against PGD-2000 (recalled detail); the levelling-off "
                  "is in the released models of its codebase (facebookresearch/ImageNet-Adversarial-"
                  "Training, INSTRUCTIONS.md: ResNet-152 baseline 52.5 / 41.7 / 39.0% at PGD-10 / 100 "
                  "/ 1000, step max(1, 16/k) of eps 16)",
}


# -- models ---------------------------------------------------------------------------------------
def train_config(config, name: str):
    """The ``jadv.train`` config of model ``name``: ``config.train`` with ``config.models[name]``
    merged in, references resolved, checked by :func:`jadv.train.config.check_config`."""
    from jadv.train.config import check_config

    if name not in config.models:
        raise ValueError(f"unknown model {name!r}; this config defines {', '.join(config.models)}")
    cfg = config.train.copy_and_resolve_references()
    cfg.update(config.models[name].to_dict())
    check_config(cfg)
    return cfg


def training_configs(config) -> dict:
    """``{name: jadv.train config}`` of every model of ``config.model_order`` (:func:`train_config`),
    for cost estimates (:mod:`jadv.studies.cost`)."""
    return {name: train_config(config, name) for name in config.model_order}


def model_spec(train_cfg) -> dict:
    """``{"objective", "norm", "ratio", "depth"}`` of a model's training config (what the table and
    the figures group by); ``ratio`` is None for objectives without a clean share."""
    kwargs = train_cfg.model.kwargs
    return {"objective": train_cfg.objective.name, "norm": kwargs.get("norm", "batch"),
            "ratio": train_cfg.objective.ratio, "depth": int(kwargs.get("depth"))}


def evaluation_labels(config) -> list[tuple[str, str, str]]:
    """``(label, model, bn_set)`` of every evaluation: dual-BN models (MBN, AdvProp) are evaluated
    through each BN set (labels ``"<model>/clean"``, ``"<model>/adv"``), the others through their
    only one (label ``"<model>"``)."""
    out = []
    for name in config.model_order:
        if config.models[name].objective.name in DUAL_BN_OBJECTIVES:
            out += [(f"{name}/{s}", name, s) for s in ("clean", "adv")]
        else:
            out.append((name, name, "clean"))
    return out


# -- measurement ----------------------------------------------------------------------------------
def evaluate_model(logits_fn, x, y, *, key, eps: float, pgd_steps: int, pgd_examples: int | None = None,
                   autoattack_examples: int = 0, batch_size: int = 256, params=None,
                   progress: bool = False) -> dict:
    """Clean, many-step PGD and AutoAttack accuracy of one model (Linf), as Xie & Yuille evaluate.

    Args:
      logits_fn: ``x[B, H, W, C] -> logits[B, K]`` in inference mode (running BN statistics, the
        BN set to test), or ``(params, x) -> logits`` when ``params`` is given (the parameters are
        then jit arguments, not constants baked into the program).
      x: ``[N, H, W, C]`` float in [0, 1]; y: ``[N]`` int labels. key: PRNG key.
      eps: Linf radius. pgd_steps: PGD iterations (step ``2.5 * eps / pgd_steps``, uniform start;
        Xie & Yuille report PGD-2000).
      pgd_examples: PGD on the first this many points (None: all).
      autoattack_examples: AutoAttack-standard (Croce & Hein 2020) on the first this many points
        (0: skipped; needs >= 10 classes).
      batch_size: fixed batch shape of every pass. progress: a line per PGD batch on stderr.
    Returns: a dict with ``clean_accuracy`` (all N points); ``pgd``: ``{"steps", "eps", "n",
      "robust_accuracy"}`` (by :func:`jadv.attacks.robust_accuracy`; clean errors count as
      errors); and, when AutoAttack ran (:func:`jadv.attacks.autoattack`), ``autoattack``:
      ``{"n", "clean_accuracy", "robust_accuracy", "attacks"}`` (per attack: ``name``, cumulative
      ``robust_accuracy``, ``n_attacked``, ``time_s``).
    """
    from jadv.attacks import autoattack, robust_accuracy

    x, y = np.asarray(x), np.asarray(y)
    bind = (lambda p: logits_fn) if params is None else (lambda p: lambda z: logits_fn(p, z))

    @jax.jit
    def correct(p, xb, yb):
        return jnp.argmax(bind(p)(xb), -1) == yb

    out = {"clean_accuracy": float(np.mean(batched(lambda a, b: correct(params, a, b), [x, y], batch_size)))}
    n = len(y) if pgd_examples is None else min(int(pgd_examples), len(y))
    eps, steps = float(eps), int(pgd_steps)
    spec = {"name": "pgd", "label": f"pgd-{steps}", "eps": eps, "step_size": 2.5 * eps / steps, "steps": steps,
            "norm": "linf", "init": "uniform"}
    rep = robust_accuracy(logits_fn, x[:n], y[:n], [spec], key=key, batch_size=min(batch_size, n), params=params,
                          progress=progress)
    out["pgd"] = {"steps": steps, "eps": eps, "n": n, "robust_accuracy": rep["robust_accuracy"]}
    if autoattack_examples > 0:
        m = min(int(autoattack_examples), len(y))
        _, rep = autoattack(logits_fn, x[:m], y[:m], key=jax.random.fold_in(key, 1), eps=eps, norm="linf",
                            version="standard", batch_size=min(batch_size, m), params=params, verbose=progress,
                            checks=False)
        out["autoattack"] = {"n": m, "clean_accuracy": rep["clean_accuracy"],
                             "robust_accuracy": rep["robust_accuracy"],
                             "attacks": [{k: a[k] for k in ("name", "robust_accuracy", "n_attacked", "time_s")}
                                         for a in rep["attacks"]]}
    return out


def strong_pgd_step(eps: float, steps: int) -> float:
    """The step of Xie & Yuille's codebase for a ``steps``-iteration PGD at radius ``eps``:
    ``max(eps / 16, eps / steps)`` (step 1 of eps 16 on [0, 255], or eps / k when fewer than 16
    steps, so that every attack can cross the ball)."""
    return float(eps) * max(1.0 / 16.0, 1.0 / int(steps))


def strong_pgd(logits_fn, x, y, *, key, eps: float, steps, batch_size: int = 256, params=None,
               progress: bool = False) -> dict:
    """Linf PGD accuracy of one model for each iteration count in ``steps`` (Xie & Yuille's "very
    strong" PGD, up to PGD-2000): uniform start, step :func:`strong_pgd_step`, every attack on the
    same points with the same key.

    Args: ``logits_fn``, ``params``, ``key``, ``eps``, ``batch_size``, ``progress`` as in
      :func:`evaluate_model`; ``x`` ``[N, H, W, C]`` in [0, 1], ``y`` ``[N]``; ``steps``: increasing
      iteration counts, e.g. ``(10, 100, 1000)``.
    Returns: ``{"eps", "n", "steps": [k...], "step_size": [...], "robust_accuracy": [...]}`` (each
      attack's own accuracy, clean errors counted as errors; by :func:`jadv.attacks.robust_accuracy`).
    """
    from jadv.attacks import robust_accuracy

    steps = [int(k) for k in steps]
    if not steps or any(k < 1 for k in steps) or steps != sorted(set(steps)):
        raise ValueError(f"strong_pgd steps must be increasing positive iteration counts, got {steps}")
    eps = float(eps)
    specs = [{"name": "pgd", "label": f"pgd-{k}", "eps": eps, "step_size": strong_pgd_step(eps, k), "steps": k,
              "norm": "linf", "init": "uniform"} for k in steps]
    n = len(y)
    # one attack per call: the report's per-attack accuracies then do not depend on the others
    acc = [robust_accuracy(logits_fn, x, y, [spec], key=key, batch_size=min(batch_size, n), params=params,
                           progress=progress)["robust_accuracy"] for spec in specs]
    return {"eps": eps, "n": n, "steps": steps, "step_size": [s["step_size"] for s in specs],
            "robust_accuracy": [float(a) for a in acc]}


def levels_off(acc, *, share: float = 0.5, floor: float = 0.01) -> bool:
    """Claim 3.7's rule on accuracies ``acc[i]`` against growing PGD iterations: they do not rise
    (each at most ``floor`` above the one before) and the drop over the last step of the sweep,
    ``acc[-2] - acc[-1]``, is at most ``max(share * (acc[0] - acc[-2]), floor)``: most of what
    more iterations take is taken early (ResNet-152: 10.8 points from PGD-10 to 100, 2.7 from 100
    to 1000). Needs >= 3 values."""
    acc = [float(a) for a in acc]
    if len(acc) < 3:
        raise ValueError(f"levels_off needs accuracies at >= 3 iteration counts, got {len(acc)}")
    no_rise = all(b <= a + floor for a, b in zip(acc, acc[1:]))
    return no_rise and acc[-2] - acc[-1] <= max(share * (acc[0] - acc[-2]), floor)


def summary_table(evals: dict) -> dict:
    """One row per evaluation label: ``kind`` (objective), ``norm``, ``ratio``, ``depth``,
    ``bn_set``, ``clean``, ``robust`` (PGD) and ``autoattack`` (None when not run), from the
    :func:`evaluate_model` records (each with its ``spec`` and ``bn_set``)."""
    rows = {}
    for label, v in evals.items():
        s = v["spec"]
        rows[label] = {"kind": s["objective"], "norm": s["norm"], "ratio": s.get("ratio"), "depth": s["depth"],
                       "bn_set": v["bn_set"], "clean": v["clean_accuracy"], "robust": v["pgd"]["robust_accuracy"],
                       "autoattack": v.get("autoattack", {}).get("robust_accuracy")}
    return rows


def depth_sweep(config, rows: dict) -> dict:
    """``{"models", "depths", "clean", "robust"}`` of the depth-sweep models trained at this profile
    (``config.depth_models``, in ``config.model_order``), from :func:`summary_table` rows."""
    names = [n for n in config.model_order if n in config.depth_models]
    return {"models": names, "depths": [rows[n]["depth"] for n in names],
            "clean": [rows[n]["clean"] for n in names], "robust": [rows[n]["robust"] for n in names]}


# -- quality gates --------------------------------------------------------------------------------
def gate_measurements(rows: dict) -> dict:
    """``{label: {"clean", "robust"}}`` of every evaluation (:func:`summary_table` rows): what the
    gates in ``config.gates`` are checked against. Saved with the results, so the claims can be
    gated again with other thresholds (``--reclaim``)."""
    return {label: {"clean": r["clean"], "robust": r["robust"]} for label, r in rows.items()}


def gate_specs(config, labels=None) -> dict:
    """``{label: gate}`` from ``config.gates`` for the evaluation ``labels`` (default: every
    evaluation of the profile, :func:`evaluation_labels`), each checked by
    :func:`jadv.studies.gates.check_spec`. ValueError naming the labels that have no gate."""
    gates = config.get("gates")
    gates = {} if gates is None else (gates.to_dict() if hasattr(gates, "to_dict") else dict(gates))
    labels = [label for label, _, _ in evaluation_labels(config)] if labels is None else list(labels)
    missing = [label for label in labels if label not in gates]
    if missing:
        raise ValueError(f"trained model(s) {missing} of profile {config.get('profile')!r} have no quality "
                         "gate in config.gates (configs/scale_properties.py): every trained model needs "
                         "one (jadv.studies.gates)")
    for label in labels:
        check_spec(gates[label], f"config.gates[{label!r}]")
    return {label: gates[label] for label in labels}


def gate_records(config, results: dict) -> dict:
    """``{label: gate record}`` (:func:`jadv.studies.gates.check_gates`) of every evaluation in
    ``results["table"]``, from ``results["gate_measurements"]`` (:func:`gate_measurements` of the
    table for results saved without them) and ``config.gates``; pure."""
    rows = results["table"]
    measured = results.get("gate_measurements") or gate_measurements(rows)
    return check_gates(gate_specs(config, list(rows)), measured)


# -- figures --------------------------------------------------------------------------------------
def _fig():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6), dpi=100)
    return fig, fig.subplots()


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_ratio(rows: dict, path: str, *, title: str) -> str:
    """Robust (PGD) accuracy against the clean share of the training batches, shared BN vs
    GroupNorm, with the MBN points (:func:`summary_table` rows); writes a PNG, returns its path."""
    fig, ax = _fig()
    for norm, style in (("batch", "o-"), ("group", "s--")):
        pts = sorted((r["ratio"], r["robust"]) for r in rows.values() if r["kind"] == "ratio" and r["norm"] == norm)
        if pts:
            ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style,
                    label="shared BN" if norm == "batch" else "GroupNorm")
    for r in rows.values():
        if r["kind"] == "mbn":
            ax.plot([100 * r["ratio"]], [r["robust"]], "^" if r["bn_set"] == "adv" else "v", ms=9,
                    label=f"MBN-{r['bn_set']}")
    ax.set_xlabel("clean share of each training batch (%)")
    ax.set_ylabel("PGD robust accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_depth(depths, clean, robust, path: str, *, title: str) -> str:
    """Clean and PGD accuracy against depth (CIFAR ResNet 6n+2); writes a PNG, returns its path."""
    fig, ax = _fig()
    ax.plot(depths, clean, "o-", label="clean accuracy")
    ax.plot(depths, robust, "s-", label="PGD robust accuracy")
    ax.set_xticks(depths)
    ax.set_xlabel("depth (CIFAR ResNet 6n+2)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


# -- verdicts -------------------------------------------------------------------------------------
def _command(config) -> str:
    """The command line that runs this study at ``config.profile``."""
    return f"python experiments/scale_properties.py --config configs/scale_properties.py:{config.profile}"


def claims(config, results: dict) -> list[dict]:
    """The seven verdicts (claims 3.1-3.7) from ``results`` (``results["table"]``, :func:`summary_table`
    rows, ``results["depth"]``, :func:`depth_sweep`, ``results["strong_pgd"]``, :func:`strong_pgd`
    of ``config.eval.strong_pgd.model``, and ``results["gate_measurements"]``); pure: no training,
    no files.

    Each claim is gated (:func:`gate_records`) on the evaluations it reads: 3.1 r100, r50, r0; 3.2
    mbn50/adv, r50; 3.3 mbn50/clean, mbn50/adv; 3.4 r0, r50, gn0, gn50; 3.5 the depth models; 3.6
    advprop/clean, advprop/adv, r100; 3.7 the strong-PGD model. One below its gate makes the verdict
    "inconclusive". A claim
    whose models are not in the table gets "not run at this profile" (gated on those that are).
    Reads ``config.profile``, ``config.eval.pgd_steps`` (for the text), ``config.near_zero`` and
    ``config.gates``.
    """
    rows, depth = results["table"], results["depth"]
    rob = {k: r["robust"] for k, r in rows.items()}
    clean = {k: r["clean"] for k, r in rows.items()}
    pgd_name = f"PGD-{config.eval.pgd_steps}"
    near_zero = float(config.near_zero)
    cmd = _command(config)
    gates = gate_records(config, results)

    def aa(label):
        v = rows[label].get("autoattack")
        return "" if v is None else f" (AA {v:.3f})"

    out = []

    def add(cid, text, needed, measure, verdict):
        """A claim gated on the evaluations ``needed``, or verdict None when one of them is not part
        of this profile."""
        missing = [m for m in needed if m not in rows]
        kw = {"source": SOURCES[cid], "command": cmd, "gates": gates, "models": [m for m in needed if m in rows]}
        if missing:
            out.append(claim(STUDY, cid, text, measured=f"models {missing} are not trained at profile "
                             f"{config.profile!r}", verdict=None, **kw))
        else:
            out.append(claim(STUDY, cid, text, measured=measure(), verdict=verdict(), **kw))

    bn = ["r100", "r50", "r0"]
    add("3.1", "shared BN: robust accuracy rises as the clean share of the training batches falls (100% -> 50% -> 0%)",
        bn, lambda: f"{pgd_name} acc " + ", ".join(f"{n} {rob[n]:.3f}{aa(n)}" for n in bn)
        + "; clean acc " + ", ".join(f"{n} {clean[n]:.3f}" for n in bn) + " (ImageNet abstract: +18.3%)",
        lambda: monotone([rob[n] for n in bn]) and rob["r0"] > rob["r100"])
    add("3.2", "at the 50% mix, MBN evaluated through its adversarial BN is more robust than shared BN",
        ["mbn50/adv", "r50"],
        lambda: f"{pgd_name} acc MBN-adv {rob['mbn50/adv']:.3f}{aa('mbn50/adv')} vs shared BN "
                f"{rob['r50']:.3f}{aa('r50')}",
        lambda: rob["mbn50/adv"] > rob["r50"])
    add("3.3", f"MBN evaluated through its clean BN has higher clean accuracy than through its adversarial BN "
               f"but near-zero robustness ({pgd_name} acc < {near_zero:g})",
        ["mbn50/clean", "mbn50/adv"],
        lambda: f"MBN-clean clean {clean['mbn50/clean']:.3f}, {pgd_name} {rob['mbn50/clean']:.3f}; "
                f"MBN-adv clean {clean['mbn50/adv']:.3f}, {pgd_name} {rob['mbn50/adv']:.3f}",
        lambda: clean["mbn50/clean"] > clean["mbn50/adv"] and rob["mbn50/clean"] < near_zero)
    add("3.4", "GroupNorm shrinks the ratio effect: the robustness gain from 50% to 0% clean share is smaller "
               "with GN than with shared BN",
        ["r0", "r50", "gn0", "gn50"],
        lambda: f"{pgd_name} gain 0% - 50% clean: BN {rob['r0'] - rob['r50']:+.3f} ({rob['r50']:.3f} -> "
                f"{rob['r0']:.3f}), GN {rob['gn0'] - rob['gn50']:+.3f} ({rob['gn50']:.3f} -> {rob['gn0']:.3f})",
        lambda: rob["gn0"] - rob["gn50"] < rob["r0"] - rob["r50"])
    dr, dc, depths, depth_models = depth["robust"], depth["clean"], depth["depths"], depth["models"]
    add("3.5", "robust accuracy of PGD-AT rises with depth (CIFAR ResNets 6n+2)",
        depth_models if len(depth_models) >= 2 else ["a second depth"],
        lambda: f"{pgd_name} acc {[round(r, 3) for r in dr]}, clean acc {[round(c, 3) for c in dc]} at depths {depths}",
        lambda: monotone(dr) and dr[-1] > dr[0])
    add("3.6", "AdvProp: clean accuracy through the main BN is >= that of standard training "
               "(exploratory at this scale)",
        ["advprop/clean", "advprop/adv", "r100"],
        lambda: f"AdvProp main-BN clean {clean['advprop/clean']:.3f} (aux BN {clean['advprop/adv']:.3f}) vs "
                f"standard (100% clean) {clean['r100']:.3f}",
        lambda: clean["advprop/clean"] >= clean["r100"])
    strong = results.get("strong_pgd")
    sp_model = config.eval.strong_pgd.model
    add("3.7", f"very strong PGD: the robust accuracy of {sp_model} falls with the PGD iterations and levels "
               "off (the drop over the sweep's last step is at most half the drop before it, or <= 1 point)",
        [sp_model] if strong is not None else [sp_model, "a strong-PGD sweep"],
        lambda: "PGD-k acc " + ", ".join(f"k={k}: {a:.3f}" for k, a in zip(strong["steps"], strong["robust_accuracy"]))
                + f" (n {strong['n']}, step max(eps/16, eps/k)); ResNet-152 ImageNet: 0.525 / 0.417 / 0.390 at "
                  "k = 10 / 100 / 1000",
        lambda: levels_off(strong["robust_accuracy"]))
    return out


# -- the study ------------------------------------------------------------------------------------
def run(config, workdir: str) -> dict:
    """Run study 3 (Xie & Yuille, ICLR 2020, arXiv:1906.03787; AdvProp, CVPR 2020,
    arXiv:1911.09665) and return its record ``{"study", "results", "claims", "figures"}``.

    Models (all CIFAR ResNets, depth 6n+2, with the same seed, data order and schedule; Linf PGD in
    training), each trained with :func:`jadv.train.train_and_evaluate` from :func:`train_config`:

    * ``r100`` / ``r50`` / ``r0``: clean share of each training batch 100% / 50% / 0% (objective
      ``ratio``, one shared BN; r100 is standard training, r0 is PGD-AT);
    * ``mbn50``: MBN at the 50% mix (objective ``mbn``, dual BN: clean rows through BN "clean",
      adversarial rows through BN "adv"), evaluated through each BN set (MBN-clean, MBN-adv);
    * ``gn50`` / ``gn0``: GroupNorm at the 50% and 0% mixes (a batch-unrelated normalisation);
    * ``alp``: adversarial logit pairing (reported, no claim);
    * ``advprop``: AdvProp (dual BN; main BN for clean, auxiliary BN for adversarial images),
      tested through the main BN;
    * ``d<depth>``: the depth sweep, pure PGD-AT at other depths (with ``r0``).

    Every model is evaluated with running BN statistics by :func:`evaluate_model`: clean accuracy
    on the test set, many-step PGD on a test subset, AutoAttack-standard on a smaller one for the
    evaluations in ``config.eval.autoattack_models``. The claims (:func:`claims`): robustness rises
    as the clean share falls (3.1); MBN-adv beats shared BN at the 50% mix (3.2); MBN-clean has
    higher clean accuracy but near-zero robustness (3.3); GN shrinks the ratio effect (3.4);
    robustness rises with depth (3.5); AdvProp's main-BN clean accuracy is >= standard training's
    (3.6). A claim whose models are not trained at the profile is "not run at this profile"; one
    whose models miss their quality gates (``config.gates``, :func:`gate_records`) is "inconclusive".

    Args:
      config: ``configs/scale_properties.py:get_config(profile)``. Fields: ``profile``; ``seed``;
        ``data_dir``; ``eps`` (Linf radius of training and evaluation); ``train`` (the shared
        ``jadv.train`` config: dataset, sizes, model, optimiser, epochs, the training attack's
        ``objective.steps`` and ``eps_warmup_epochs``); ``models`` (per-model overrides of
        ``train``) and ``model_order`` (the models trained, in order); ``depth_models`` (the depth
        sweep); ``eval.pgd_steps``, ``eval.pgd_examples``, ``eval.autoattack_models``,
        ``eval.autoattack_examples``, ``eval.batch_size``, ``eval.progress``, ``eval.strong_pgd``
        (``model``, ``steps``, ``examples``: claim 3.7's sweep); ``near_zero`` (the
        PGD accuracy below which robustness counts as near zero, claim 3.3); ``gates`` (the quality
        gate of every evaluation label, :mod:`jadv.studies.gates`; a trained model without one is a
        ValueError before anything is trained).
      workdir: output folder. Writes ``models/<name>/`` (training runs; resumable, reused when
        finished), ``parts/eval_<label>.json`` (one per evaluation, cached: a rerun skips it),
        ``robust_vs_clean_share.png``, ``depth.png``, ``results.json`` (``results``: ``models``
        (per evaluation: ``bn_set``, ``clean_accuracy``, ``pgd``, ``autoattack``, ``train``,
        ``spec``), ``table`` (:func:`summary_table`), ``depth`` (:func:`depth_sweep`),
        ``gate_measurements`` (:func:`gate_measurements`), ``strong_pgd`` (:func:`strong_pgd`, with
        its ``model``; cached in ``parts/strong_pgd_<model>.json``) and ``alp`` when trained) and
        ``claims.json`` (each claim with its gate records).
    """
    check_single_process("scale_properties")
    from jadv import data as jdata

    gate_specs(config)
    os.makedirs(workdir, exist_ok=True)
    dataset = config.train.dataset
    test = jdata.load(dataset, "test", data_dir=config.data_dir)
    test_size = config.train.test_size
    n_test = len(test) if test_size is None else min(int(test_size), len(test))
    x = np.asarray(jdata.to_float(test.images[:n_test]))
    y = np.asarray(test.labels[:n_test])
    key = jax.random.key(int(config.seed) + 1)
    ev = config.eval
    evals = {}
    for label, name, bn_set in evaluation_labels(config):
        tcfg = train_config(config, name)
        aa_n = int(ev.autoattack_examples) if label in ev.autoattack_models else 0

        def compute(name=name, bn_set=bn_set, aa_n=aa_n, tcfg=tcfg):
            model, variables, train_res = train_model(tcfg, os.path.join(workdir, "models", name))
            res = {"bn_set": bn_set}
            res.update(evaluate_model(lambda v, z: model.apply(v, z, train=False, bn_set=bn_set), x, y,
                                      params=variables, key=key, eps=float(config.eps),
                                      pgd_steps=int(ev.pgd_steps), pgd_examples=int(ev.pgd_examples),
                                      autoattack_examples=aa_n, batch_size=int(ev.batch_size),
                                      progress=bool(ev.progress)))
            res["train"] = {k: v for k, v in train_res.items() if not isinstance(v, dict)}
            return res

        evals[label] = cached_part(workdir, f"eval_{label.replace('/', '_')}", compute)
        evals[label]["spec"] = model_spec(tcfg)

    rows = summary_table(evals)
    results = {"models": evals, "table": rows, "depth": depth_sweep(config, rows),
               "gate_measurements": gate_measurements(rows)}
    sp_cfg = ev.strong_pgd
    if sp_cfg.model in config.model_order:
        def compute_strong(name=sp_cfg.model):
            model, variables, _ = train_model(train_config(config, name), os.path.join(workdir, "models", name))
            n = min(int(sp_cfg.examples), len(y))
            return strong_pgd(lambda v, z: model.apply(v, z, train=False, bn_set="clean"), x[:n], y[:n], params=variables,
                              key=jax.random.fold_in(key, 2), eps=float(config.eps), steps=tuple(sp_cfg.steps),
                              batch_size=int(ev.batch_size), progress=bool(ev.progress))

        results["strong_pgd"] = dict(cached_part(workdir, f"strong_pgd_{sp_cfg.model}", compute_strong),
                                     model=sp_cfg.model)
    if "alp" in rows:
        results["alp"] = {"clean": rows["alp"]["clean"], "robust": rows["alp"]["robust"],
                          "note": "reported only (no claim)"}
    pgd_name = f"PGD-{ev.pgd_steps}"
    base_depth = rows[evaluation_labels(config)[0][0]]["depth"]   # the depth sweep's extra models stay out
    d = results["depth"]
    figures = [plot_ratio({k: r for k, r in rows.items() if r["depth"] == base_depth},
                          os.path.join(workdir, "robust_vs_clean_share.png"),
                          title=f"{dataset}, Linf {config.eps:g}: {pgd_name} accuracy vs clean share"),
               plot_depth(d["depths"], d["clean"], d["robust"], os.path.join(workdir, "depth.png"),
                          title=f"{dataset}: PGD-AT at several depths")]
    return finish(workdir, STUDY, results, claims(config, results), figures)
