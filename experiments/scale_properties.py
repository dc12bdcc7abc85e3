"""Study 3: intriguing properties of adversarial training at scale (Xie & Yuille 2020; AdvProp).

    python experiments/scale_properties.py --profile default --workdir runs/scale_properties

Models (CIFAR ResNets, depth 6n+2, all with the same seed, data order and schedule; default:
ResNet-8 on scikit-learn's 8x8 digits, Linf PGD training):

* clean share of each training batch 100% / 50% / 0% (``ratio`` objective, one shared BN);
* MBN at the 50% mix (``mbn``, dual BN: clean rows through BN "clean", adversarial rows through BN
  "adv"), evaluated through each BN set (MBN-clean, MBN-adv);
* GroupNorm at the 50% and 0% mixes (a batch-unrelated normalisation);
* ALP (logit pairing, clean + adversarial CE + ||z(x) - z(x_adv)||^2);
* AdvProp (dual BN; main BN for clean, auxiliary BN for adversarial), tested through the main BN;
* depth sweep: the 0%-clean (pure PGD-AT) model at several depths.

Every model is evaluated with running BN statistics: clean accuracy on the test set, many-step
PGD (Linf, step 2.5 eps / steps, uniform start) on a test subset, and AutoAttack-standard on a
smaller subset for the models listed in the config.

Claims (analysis-methods C.1, C.3, C.4, reproduction checks 22-24): robustness rises as the clean
share falls; MBN-adv beats shared BN at the 50% mix; MBN-clean has higher clean accuracy but
(near-)zero robustness; GN shrinks the ratio effect; robustness rises with depth; AdvProp's
main-BN clean accuracy is >= standard training's.
"""
from __future__ import annotations

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import batched, cached_part, claim, finish, monotone, study_main, train_model  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jadv import data as jdata  # noqa: E402
from jadv.attacks import autoattack, pgd  # noqa: E402
from jadv.train import base_config  # noqa: E402

STUDY = "scale_properties"
SOURCE = "Xie & Yuille 2020 (ICLR), analysis-methods C.1/C.3"
DUAL = ("mbn", "advprop")


def model_config(config, name: str):
    """The jadv.train config of model ``name`` (a key of ``config.models``)."""
    spec = config.models[name]
    c = base_config()
    c.seed = int(config.seed)
    c.dataset = config.dataset
    c.data_dir = config.data_dir
    c.train_size = config.train_size
    c.test_size = config.test_size
    c.model.name = "cifar_resnet"
    c.model.kwargs = {"depth": int(spec.depth), "norm": spec.norm}
    c.batch_size = int(config.batch_size)
    c.num_epochs = int(config.num_epochs)
    c.num_steps = config.num_steps
    c.optimizer.lr = float(config.lr)
    c.optimizer.weight_decay = float(config.weight_decay)
    c.augment.crop_flip = bool(config.augment)
    eps, steps = float(config.eps), int(config.attack_steps)
    c.objective.update(name=spec.objective, eps=eps, norm="linf", steps=steps, step_size=2.5 * eps / steps,
                       eps_warmup_epochs=float(config.eps_warmup_epochs))
    if spec.objective in ("ratio", "mbn"):
        c.objective.ratio = float(spec.ratio)
    if spec.objective == "alp":
        c.objective.alp_weight = float(config.alp_weight)
    c.robust_eval.enabled = False            # measured below with many-step PGD
    c.log_every_steps = int(config.log_every_steps)
    c.checkpoint.every_steps = 10_000
    c.num_devices = config.num_devices
    return c


_FNS: dict = {}


def _eval_fns(model, bn_set):
    """Jitted clean-prediction and PGD-correctness functions of one architecture and BN set
    (variables are arguments, so models of the same architecture share the compilation)."""
    tag = (repr(model), bn_set)
    if tag not in _FNS:
        logits = lambda variables, x: model.apply(variables, x, train=False, bn_set=bn_set)  # noqa: E731

        @jax.jit
        def correct(variables, x, y):
            return jnp.argmax(logits(variables, x), -1) == y

        @functools.partial(jax.jit, static_argnames=("steps",))
        def pgd_correct(variables, x, y, key, eps, *, steps):
            f = lambda z: logits(variables, z)  # noqa: E731
            x_adv = pgd(f, x, y, key=key, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm="linf",
                        init="uniform")
            return (jnp.argmax(f(x_adv), -1) == y) & (jnp.argmax(f(x), -1) == y)

        _FNS[tag] = (logits, correct, pgd_correct)
    return _FNS[tag]


def evaluate(config, model, variables, bn_set, x, y, key, *, autoattack_n: int) -> dict:
    """Clean accuracy (all of x), PGD accuracy (first ``pgd_examples``), AutoAttack (first
    ``autoattack_n``, 0 = skipped) through BN set ``bn_set``."""
    logits, correct, pgd_correct = _eval_fns(model, bn_set)
    bs = int(config.eval_batch_size)
    out = {"bn_set": bn_set, "clean_accuracy": float(np.mean(batched(lambda a, b: correct(variables, a, b), [x, y], bs)))}
    n = min(int(config.pgd_examples), len(y))
    steps = int(config.eval_steps)
    ok = batched(lambda a, b: pgd_correct(variables, a, b, key, float(config.eps), steps=steps),
                  [x[:n], y[:n]], min(bs, n))
    out["pgd"] = {"steps": steps, "eps": float(config.eps), "n": n, "robust_accuracy": float(np.mean(ok))}
    if autoattack_n > 0:
        m = min(autoattack_n, len(y))
        _, rep = autoattack(logits, x[:m], y[:m], key=jax.random.fold_in(key, 1), eps=float(config.eps),
                            norm="linf", version="standard", batch_size=min(bs, m), params=variables,
                            verbose=False, checks=False)
        out["autoattack"] = {"n": m, "clean_accuracy": rep["clean_accuracy"],
                             "robust_accuracy": rep["robust_accuracy"],
                             "attacks": [{k: a[k] for k in ("name", "robust_accuracy", "n_attacked", "time_s")}
                                         for a in rep["attacks"]]}
    return out


# -- figures ------------------------------------------------------------------------------------
def _fig():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.6), dpi=100)
    return fig, fig.subplots()


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_ratio(rows: dict, path: str, *, title: str) -> str:
    """Robust (PGD) accuracy against the clean share, shared BN vs GN, with the MBN points."""
    fig, ax = _fig()
    for norm, style in (("batch", "o-"), ("group", "s--")):
        pts = sorted((r["ratio"], r["robust"]) for r in rows.values() if r["kind"] == "ratio" and r["norm"] == norm)
        if pts:
            ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style,
                    label="shared BN" if norm == "batch" else "GroupNorm")
    for name, r in rows.items():
        if r["kind"] == "mbn":
            ax.plot([100 * r["ratio"]], [r["robust"]], "^" if r["bn_set"] == "adv" else "v", ms=9,
                    label=f"MBN-{r['bn_set']}")
    ax.set_xlabel("clean share of each training batch (%)")
    ax.set_ylabel("PGD robust accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_depth(depths, clean, robust, path: str, *, title: str) -> str:
    fig, ax = _fig()
    ax.plot(depths, clean, "o-", label="clean accuracy")
    ax.plot(depths, robust, "s-", label="PGD robust accuracy")
    ax.set_xticks(depths)
    ax.set_xlabel("depth (CIFAR ResNet 6n+2)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


# -- the study ----------------------------------------------------------------------------------
def run(config, workdir: str) -> dict:
    """Train (or reuse) every model, evaluate through its BN set(s), plot, claim."""
    os.makedirs(workdir, exist_ok=True)
    cmd = f"python experiments/scale_properties.py --profile {config.profile}"
    test = jdata.load(config.dataset, "test", data_dir=config.data_dir)
    n_test = len(test) if config.test_size is None else min(int(config.test_size), len(test))
    x = np.asarray(jdata.to_float(test.images[:n_test]))
    y = np.asarray(test.labels[:n_test])
    key = jax.random.key(int(config.seed) + 1)
    evals = {}
    for name in config.model_order:
        spec = config.models[name]
        for bn_set in (("clean", "adv") if spec.objective in DUAL else ("clean",)):
            label = f"{name}/{bn_set}" if spec.objective in DUAL else name
            aa_n = int(config.autoattack_examples) if label in config.autoattack_models else 0

            def compute(name=name, bn_set=bn_set, aa_n=aa_n):
                model, variables, train_res = train_model(model_config(config, name),
                                                          os.path.join(workdir, "models", name))
                res = evaluate(config, model, variables, bn_set, x, y, key, autoattack_n=aa_n)
                res["train"] = {k: v for k, v in train_res.items() if not isinstance(v, dict)}
                return res

            evals[label] = cached_part(workdir, f"eval_{label.replace('/', '_')}", compute)
            evals[label]["spec"] = config.models[name].to_dict()

    rob = {k: v["pgd"]["robust_accuracy"] for k, v in evals.items()}
    clean = {k: v["clean_accuracy"] for k, v in evals.items()}
    rows = {}
    for label, v in evals.items():
        s = v["spec"]
        rows[label] = {"kind": s["objective"], "norm": s["norm"], "ratio": s.get("ratio"), "depth": s["depth"],
                       "bn_set": v["bn_set"], "clean": clean[label], "robust": rob[label],
                       "autoattack": v.get("autoattack", {}).get("robust_accuracy")}
    depth_models = [n for n in config.model_order if n in config.depth_models]
    depths = [int(config.models[n].depth) for n in depth_models]
    results = {"models": evals, "table": rows, "depth": {"models": depth_models, "depths": depths,
                                                          "clean": [clean[n] for n in depth_models],
                                                          "robust": [rob[n] for n in depth_models]}}
    pgd_name = f"PGD-{config.eval_steps}"
    base_depth = int(config.models[config.model_order[0]].depth)      # the depth sweep's extra models stay out
    figures = [plot_ratio({k: r for k, r in rows.items() if r["depth"] == base_depth},
                          os.path.join(workdir, "robust_vs_clean_share.png"),
                          title=f"{config.dataset}, Linf {config.eps:g}: {pgd_name} accuracy vs clean share"),
               plot_depth(depths, results["depth"]["clean"], results["depth"]["robust"],
                          os.path.join(workdir, "depth.png"), title=f"{config.dataset}: PGD-AT at several depths")]

    def aa(label):
        v = rows[label]["autoattack"]
        return "" if v is None else f" (AA {v:.3f})"

    claims = []

    def add(cid, text, needed, measure, verdict, source):
        """A claim, or verdict None when a model it needs is not part of this profile."""
        missing = [m for m in needed if m not in rows]
        if missing:
            claims.append(claim(STUDY, cid, text, measured=f"models {missing} are not trained at profile "
                                f"{config.profile!r}", verdict=None, source=source, command=cmd))
        else:
            claims.append(claim(STUDY, cid, text, measured=measure(), verdict=verdict(), source=source, command=cmd))

    bn = ["r100", "r50", "r0"]
    add("3.1", "shared BN: robust accuracy rises as the clean share of the training batches falls (100% -> 50% -> 0%)",
        bn, lambda: f"{pgd_name} acc " + ", ".join(f"{n} {rob[n]:.3f}{aa(n)}" for n in bn)
        + "; clean acc " + ", ".join(f"{n} {clean[n]:.3f}" for n in bn) + " (ImageNet abstract: +18.3%)",
        lambda: monotone([rob[n] for n in bn]) and rob["r0"] > rob["r100"], SOURCE + ", check 22")
    add("3.2", "at the 50% mix, MBN evaluated through its adversarial BN is more robust than shared BN",
        ["mbn50/adv", "r50"],
        lambda: f"{pgd_name} acc MBN-adv {rob['mbn50/adv']:.3f}{aa('mbn50/adv')} vs shared BN {rob['r50']:.3f}{aa('r50')}",
        lambda: rob["mbn50/adv"] > rob["r50"], SOURCE + ", check 22")
    add("3.3", f"MBN evaluated through its clean BN has higher clean accuracy than through its adversarial BN "
               f"but near-zero robustness ({pgd_name} acc < {config.near_zero:g})",
        ["mbn50/clean", "mbn50/adv"],
        lambda: f"MBN-clean clean {clean['mbn50/clean']:.3f}, {pgd_name} {rob['mbn50/clean']:.3f}; "
                f"MBN-adv clean {clean['mbn50/adv']:.3f}, {pgd_name} {rob['mbn50/adv']:.3f}",
        lambda: clean["mbn50/clean"] > clean["mbn50/adv"] and rob["mbn50/clean"] < float(config.near_zero),
        SOURCE + " ([recall] in C.3), check 22")
    add("3.4", "GroupNorm shrinks the ratio effect: the robustness gain from 50% to 0% clean share is smaller "
               "with GN than with shared BN",
        ["r0", "r50", "gn0", "gn50"],
        lambda: f"{pgd_name} gain 0% - 50% clean: BN {rob['r0'] - rob['r50']:+.3f} ({rob['r50']:.3f} -> "
                f"{rob['r0']:.3f}), GN {rob['gn0'] - rob['gn50']:+.3f} ({rob['gn50']:.3f} -> {rob['gn0']:.3f})",
        lambda: rob["gn0"] - rob["gn50"] < rob["r0"] - rob["r50"], SOURCE + " (GN: secondary source), check 22")
    dr, dc = results["depth"]["robust"], results["depth"]["clean"]
    add("3.5", "robust accuracy of PGD-AT rises with depth (CIFAR ResNets 6n+2)",
        depth_models if len(depth_models) >= 2 else ["a second depth"],
        lambda: f"{pgd_name} acc {[round(r, 3) for r in dr]}, clean acc {[round(c, 3) for c in dc]} at depths {depths}",
        lambda: monotone(dr) and dr[-1] > dr[0], SOURCE + ", check 23")
    add("3.6", "AdvProp: clean accuracy through the main BN is >= that of standard training (exploratory at this scale)",
        ["advprop/clean", "advprop/adv", "r100"],
        lambda: f"AdvProp main-BN clean {clean['advprop/clean']:.3f} (aux BN {clean['advprop/adv']:.3f}) vs "
                f"standard (100% clean) {clean['r100']:.3f}",
        lambda: clean["advprop/clean"] >= clean["r100"], "Xie et al. 2020 (AdvProp), analysis-methods C.4, check 24")
    if "alp" in rows:
        results["alp"] = {"clean": clean["alp"], "robust": rob["alp"], "note": "reported only (no claim)"}
    return finish(workdir, STUDY, results, claims, figures)


def main(argv=None):
    study_main(STUDY, run, __doc__, argv)


if __name__ == "__main__":
    main()
