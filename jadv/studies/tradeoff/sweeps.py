"""Parts 3 and 4 of study 2: many small networks in one program, and what they look at.

Tsipras, Santurkar, Engstrom, Turner & Madry, "Robustness May Be at Odds with Accuracy" (ICLR
2019, arXiv:1805.12152): standard accuracy falls as eps_train grows, and the standard-minus-AT
gap grows with the training-set size (claims 2.15, 2.16); the input gradients of AT models align
with the image, and their large-eps targeted examples carry target-class features (2.17, 2.17b).

:func:`train_many` trains every (training-set size, eps_train, seed) model of a grid as one
compiled program (:func:`jadv.train.over_models`: ``vmap``, or ``lax.map`` on CPU, where it is
faster); :func:`evaluate_many` measures their standard and PGD accuracy the same way.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jadv import data as jdata  # noqa: E402
from jadv import models as jmodels  # noqa: E402
from jadv._cpu_loops import cpu_canonical  # noqa: E402
from jadv.analysis import input_gradients, interpolate, large_eps_examples, saliency_alignment  # noqa: E402
from jadv.attacks import cross_entropy, pgd  # noqa: E402
from jadv.train import make_optimizer, over_models  # noqa: E402
from jadv.train.config import FREE_FORM, base_config, check_config  # noqa: E402
from jadv.viz.images import plot_interpolation, plot_large_eps_grid, plot_saliency_grid  # noqa: E402

__all__ = ["SWEEP_RECIPE_FIELDS", "sweep_recipe", "sweep_pgd", "train_many", "evaluate_many", "sweep_data",
           "sweep_grid", "sweep_model_name", "gated_sweep_models", "sweep_gate_measurements", "sweep_measurements",
           "load_sweep_params", "sweep_table", "plot_sweeps", "saliency_measurements", "SALIENCY_FIGURES"]

# the fields of config.sweep.train (a jadv.train.config.base_config()) that the sweeps read; every
# other field must keep its base_config() value (the seed is config.seed, the data dir
# config.data_dir, eps_train and the norm come from the sweep grid)
SWEEP_RECIPE_FIELDS = ("dataset", "test_size", "model.name", "model.kwargs", "batch_size", "num_steps",
                       "optimizer", "objective.name", "objective.steps")
SALIENCY_FIGURES = ("saliency.png", "large_eps.png", "interpolation.png")


def _leaves(cfg, prefix=""):
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict) and name not in FREE_FORM:
            yield from _leaves(v, f"{name}.")
        else:
            yield name, v


def sweep_recipe(train_cfg) -> dict:
    """The training recipe of every sweep model, from ``config.sweep.train``.

    ``train_cfg`` is a :func:`jadv.train.config.base_config` (it must pass
    :func:`jadv.train.config.check_config`) of which the sweeps read :data:`SWEEP_RECIPE_FIELDS`:
    ``model.name``/``model.kwargs`` (a model of :mod:`jadv.models`, 10 classes), ``batch_size``,
    ``num_steps`` (required: every model takes this many steps whatever its training-set size),
    ``optimizer`` (:func:`jadv.train.make_optimizer`), ``objective.name`` (``"pgd_at"``: PGD-AT
    of Madry et al. 2018 at each model's eps_train, eps 0 = standard training) and
    ``objective.steps`` (the training PGD steps, step size 2.5 eps / steps); ``dataset`` and
    ``test_size`` are read by :func:`sweep_data`. A changed field the sweeps do not read is a
    ValueError, so a setting never silently does nothing.

    Returns a dict with ``model`` (a Linen module), ``optimizer`` (optax), ``steps``,
    ``batch_size`` and ``attack_steps``.
    """
    check_config(train_cfg)
    defaults = dict(_leaves(base_config()))
    ignored = [name for name, v in _leaves(train_cfg)
               if not any(name == f or name.startswith(f + ".") for f in SWEEP_RECIPE_FIELDS)
               and name in defaults and v != defaults[name]]
    if ignored:
        raise ValueError(f"config.sweep.train sets {', '.join(ignored)}, which the sweeps do not read; they read "
                         f"{', '.join(SWEEP_RECIPE_FIELDS)} (the seed is config.seed, the data dir config.data_dir, "
                         "eps_train and the norm come from config.sweep.eps)")
    if train_cfg.objective.name != "pgd_at":
        raise ValueError(f"config.sweep.train.objective.name must be 'pgd_at' (eps_train 0 is standard training), "
                         f"got {train_cfg.objective.name!r}")
    if train_cfg.num_steps is None:
        raise ValueError("config.sweep.train.num_steps must be set: every sweep model trains for that many steps")
    steps = int(train_cfg.num_steps)
    optimizer, _ = make_optimizer(train_cfg.optimizer, steps)
    attack_steps = 10 if train_cfg.objective.steps is None else int(train_cfg.objective.steps)
    return {"model": jmodels.get(train_cfg.model.name, num_classes=10, **dict(train_cfg.model.kwargs)),
            "optimizer": optimizer, "steps": steps, "batch_size": int(train_cfg.batch_size),
            "attack_steps": attack_steps}


def sweep_pgd(logits_fn, x, y, *, key, eps, norm: str, steps: int):
    """The sweeps' PGD (:func:`jadv.attacks.pgd`), for training and evaluation: step 2.5 eps /
    steps; L-inf from a uniform random start (Madry et al. 2018), L2 from x (the MadryLab
    robustness default)."""
    return pgd(logits_fn, x, y, key=key, eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm,
               init="uniform" if norm == "linf" else "zero")


def train_many(model, x_all, y_all, order, sizes, eps, seeds, *, norm: str, steps: int, batch_size: int,
               optimizer, attack_steps: int, eps_warmup_steps: int = 0):
    """Train M models as one program, model m PGD-trained at radius ``eps[m]`` (0 = standard) on
    minibatches drawn with replacement from ``order[:sizes[m]]`` (nested training sets).

    Args:
      model: a Linen module without batch norm (``model.apply({"params": p}, x)``).
      x_all: ``[N, H, W, C]`` float images in [0, 1]; y_all: ``[N]`` int labels.
      order: ``[N]`` a permutation of the training set; sizes ``[M]`` ints <= N.
      eps: ``[M]`` radii; seeds: ``[M]`` ints (model m's init and minibatch/attack keys).
      norm: "linf" or "l2" (every model of one call). steps: optimizer steps per model.
      batch_size: minibatch size. optimizer: an optax transformation (e.g. from
      :func:`jadv.train.make_optimizer`). attack_steps: steps of the training PGD (:func:`sweep_pgd`).
      eps_warmup_steps: the training radius ramps linearly from eps / W to eps over the first W
      steps (0: eps from the start), as ``objective.eps_warmup_epochs`` does in ``jadv.train``.

    Returns:
      ``(params, losses)``: the stacked parameters (leading axis M) and the ``[M, steps]``
      training losses. Run by :func:`jadv.train.over_models` under one ``jax.jit``.
    """
    x_all, y_all, order = jnp.asarray(x_all), jnp.asarray(y_all), jnp.asarray(order)

    def one(n, e, seed):
        key = jax.random.key(seed)
        params = model.init(jax.random.fold_in(key, 0), x_all[:1])["params"]

        def step(carry, t):
            p, st = carry
            kt = jax.random.fold_in(jax.random.fold_in(key, 1), t)
            kb, ka = jax.random.split(kt)
            idx = order[jax.random.randint(kb, (batch_size,), 0, n)]
            xb, yb = x_all[idx], y_all[idx]
            e_t = e if eps_warmup_steps <= 0 else e * jnp.minimum(1.0, (t + 1) / eps_warmup_steps)
            xa = sweep_pgd(lambda z: model.apply({"params": p}, z), xb, yb, key=ka, eps=e_t, norm=norm,
                           steps=attack_steps)
            loss, g = jax.value_and_grad(lambda q: jnp.mean(cross_entropy(model.apply({"params": q}, xa), yb)))(p)
            upd, st = optimizer.update(g, st, p)
            return (optax.apply_updates(p, upd), st), loss

        # cpu_canonical: the weight gradient's convolutions in XLA:CPU's fast layout (no-op elsewhere)
        (params, _), losses = jax.lax.scan(cpu_canonical(step), (params, optimizer.init(params)), jnp.arange(steps))
        return params, losses

    return jax.jit(over_models(one))(jnp.asarray(sizes, jnp.int32), jnp.asarray(eps, jnp.float32),
                                     jnp.asarray(seeds, jnp.int32))


def evaluate_many(model, params, x, y, eps, *, norm: str, steps: int, key, batch_size: int = 512):
    """Standard and PGD accuracy of every stacked model, each attacked at its own radius.

    Args: model, params (leading axis M) as returned by :func:`train_many`; x ``[N, H, W, C]``,
    y ``[N]``; eps ``[M]``; norm; steps: PGD steps (:func:`sweep_pgd`); key: PRNG key (the batch
    starting at example i uses ``fold_in(key, i)``).
    Returns ``(standard [M], robust [M])`` numpy accuracies; a point counts as robust only if it is
    also classified correctly without attack.
    """
    correct, robust = 0, 0

    def one(p, e, xb, yb, k):
        logits_fn = lambda z: model.apply({"params": p}, z)  # noqa: E731
        clean = jnp.argmax(logits_fn(xb), -1) == yb
        xa = sweep_pgd(logits_fn, xb, yb, key=k, eps=e, norm=norm, steps=steps)
        rob = jnp.argmax(logits_fn(xa), -1) == yb
        return jnp.sum(clean), jnp.sum(rob & clean)

    f = jax.jit(over_models(one, in_axes=(0, 0, None, None, None)))
    for i in range(0, len(y), batch_size):
        c, r = f(params, jnp.asarray(eps, jnp.float32), jnp.asarray(x[i:i + batch_size]),
                 jnp.asarray(y[i:i + batch_size]), jax.random.fold_in(key, i))
        correct, robust = correct + np.asarray(c), robust + np.asarray(r)
    return correct / len(y), robust / len(y)


def sweep_data(train_cfg, data_dir: str | None = None):
    """``(x_train, y_train, x_test, y_test, class_names)`` of ``train_cfg.dataset`` as float images
    in [0, 1]; the test set cut to its first ``train_cfg.test_size`` images when that is set."""
    tr = jdata.load(train_cfg.dataset, "train", data_dir=data_dir)
    te = jdata.load(train_cfg.dataset, "test", data_dir=data_dir)
    xte, yte = np.asarray(jdata.to_float(te.images)), te.labels
    if train_cfg.test_size:
        xte, yte = xte[:train_cfg.test_size], yte[:train_cfg.test_size]
    return np.asarray(jdata.to_float(tr.images)), tr.labels, xte, yte, tr.class_names


def sweep_grid(sizes, eps, n_train: int, seed: int, proxy: bool) -> list[tuple]:
    """The ``(size, eps_train, seed)`` rows of one norm's sweep (sizes capped at ``n_train``),
    plus, with ``proxy``, a standard model on the largest size with seed ``seed + 1000``."""
    sizes = [min(int(s), n_train) for s in sizes]
    rows = [(s, float(e), seed) for s in sizes for e in eps]
    if proxy:
        rows.append((sizes[-1], 0.0, seed + 1000))
    return rows


def sweep_model_name(norm: str, eps: float, size: int, *, proxy: bool = False) -> str:
    """The name of one sweep model in the study's gates and reports: ``"linf/eps0p1/n1438"``
    (norm, eps_train with its decimal point written "p", since config keys take no dots, and
    training-set size); the L-inf proxy standard model (seed + 1000) is ``"linf/eps0/n1438/proxy"``."""
    name = f"{norm}/eps{float(eps):g}".replace(".", "p") + f"/n{int(size)}"
    return name + "/proxy" if proxy else name


def gated_sweep_models(rows_by_norm: dict, seed: int) -> list[str]:
    """The names of the sweep models that carry a quality gate: every full-training-set model
    (the largest size of its norm's grid) and the proxy. The smaller-size models are the measured
    curve of claim 2.16 and have no gate of their own.

    ``rows_by_norm``: ``{norm: [(size, eps, seed), ...]}`` (:func:`sweep_grid`); ``seed``: the
    main seed (a row with another seed is the proxy)."""
    names = []
    for norm, rows in rows_by_norm.items():
        full = max(s for s, _, _ in rows)
        names += [sweep_model_name(norm, e, s, proxy=sd != seed) for s, e, sd in rows if s == full]
    return names


def sweep_gate_measurements(sweeps: dict, seed: int) -> dict:
    """``{name: {"clean": standard accuracy, "robust": PGD accuracy at eps_train}}`` of the gated
    sweep models (:func:`gated_sweep_models`; "robust" for eps_train > 0 only), from the results
    of :func:`sweep_measurements` per norm (``sweeps = {norm: result}``)."""
    out = {}
    for norm, sw in sweeps.items():
        rows = list(zip(sw["sizes"], sw["eps"], sw["seeds"]))
        gated = set(gated_sweep_models({norm: rows}, seed))
        for (s, e, sd), a, r in zip(rows, sw["standard_accuracy"], sw["robust_accuracy"]):
            name = sweep_model_name(norm, e, s, proxy=sd != seed)
            if name in gated:
                out[name] = {"clean": float(a), **({"robust": float(r)} if e > 0 else {})}
    return out


def _params_path(workdir, norm):
    return os.path.join(workdir, "parts", f"sweep_{norm}_params.npz")


def _leaf_name(path):
    return "/".join(str(getattr(k, "key", k)) for k in path)


def sweep_measurements(config, norm: str, workdir: str) -> dict:
    """Part 3 for one norm: train the sweep grid (:func:`train_many`), evaluate it
    (:func:`evaluate_many`, PGD at each model's eps_train with ``config.sweep.eval_attack_steps``
    steps) and save the stacked parameters as ``workdir/parts/sweep_<norm>_params.npz``.

    The grid is ``config.sweep.sizes`` x ``config.sweep.eps[norm]`` with seed ``config.seed``
    (+ the L-inf proxy model, :func:`sweep_grid`); the training sets are prefixes of one random
    permutation (seed ``config.seed``). Returns a JSON-able dict with one entry per model in
    ``sizes``, ``eps``, ``seeds``, ``standard_accuracy``, ``robust_accuracy``,
    ``final_train_loss`` (mean of the last 20 steps), and ``models_per_program``,
    ``train_wall_s``, ``n_test``, ``order_seed``.
    """
    import time

    scfg, seed = config.sweep, config.seed
    recipe = sweep_recipe(scfg.train)
    xtr, ytr, xte, yte, _ = sweep_data(scfg.train, config.data_dir)
    model = recipe["model"]
    order = np.random.default_rng(seed).permutation(len(ytr))
    rows = sweep_grid(scfg.sizes, scfg.eps[norm], len(ytr), seed, proxy=norm == "linf")
    sizes, eps, seeds = map(list, zip(*rows))
    t0 = time.time()
    params, losses = train_many(model, xtr, ytr, order, sizes, eps, seeds, norm=norm, steps=recipe["steps"],
                                batch_size=recipe["batch_size"], optimizer=recipe["optimizer"],
                                attack_steps=recipe["attack_steps"],
                                eps_warmup_steps=int(config.sweep.get("eps_warmup_steps", 0) or 0))
    jax.block_until_ready(params)
    t_train = time.time() - t0
    std, rob = evaluate_many(model, params, xte, yte, eps, norm=norm, steps=scfg.eval_attack_steps,
                             key=jax.random.key(seed + 7))
    os.makedirs(os.path.join(workdir, "parts"), exist_ok=True)
    np.savez(_params_path(workdir, norm), **{_leaf_name(path): np.asarray(v)
                                             for path, v in jax.tree_util.tree_leaves_with_path(params)})
    return {"norm": norm, "sizes": sizes, "eps": eps, "seeds": seeds, "standard_accuracy": std,
            "robust_accuracy": rob, "final_train_loss": np.asarray(losses)[:, -20:].mean(1),
            "models_per_program": len(rows), "train_wall_s": t_train, "n_test": len(yte),
            "order_seed": seed}


def load_sweep_params(model, workdir: str, norm: str, input_shape):
    """The stacked parameters of a finished sweep (``workdir/parts/sweep_<norm>_params.npz``), in
    the tree structure of ``model`` initialised on inputs of shape ``input_shape`` (H, W, C)."""
    template = model.init(jax.random.key(0), jnp.zeros((1,) + tuple(input_shape), jnp.float32))["params"]
    z = np.load(_params_path(workdir, norm))
    leaves = [jnp.asarray(z[_leaf_name(path)]) for path, _ in jax.tree_util.tree_leaves_with_path(template)]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def sweep_table(sw: dict, seed: int):
    """``(sizes, eps, standard [E, S], robust [E, S])`` of a sweep's results, for the models of
    seed ``seed`` (NaN where a cell is missing)."""
    sizes = sorted(set(sw["sizes"]))
    eps = list(dict.fromkeys(sw["eps"]))
    acc = np.full((len(eps), len(sizes)), np.nan)
    rob = np.full((len(eps), len(sizes)), np.nan)
    for s, e, sd, a, r in zip(sw["sizes"], sw["eps"], sw["seeds"], sw["standard_accuracy"], sw["robust_accuracy"]):
        if sd == seed:
            acc[eps.index(e), sizes.index(s)] = a
            rob[eps.index(e), sizes.index(s)] = r
    return sizes, eps, acc, rob


def plot_sweeps(sweeps: dict, seed: int, path_size: str, path_eps: str, dataset: str) -> list[str]:
    """Standard accuracy vs training-set size (one line per eps_train) and standard/PGD accuracy
    vs eps_train at the largest size, one panel per norm. Returns the two paths."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 3.6), squeeze=False)
    for ax, (norm, sw) in zip(axes[0], sweeps.items()):
        sizes, eps, acc, _ = sweep_table(sw, seed)
        for i, e in enumerate(eps):
            ax.plot(sizes, acc[i], "o-", label=f"eps_train {e:g}")
        ax.set_xscale("log")
        ax.set_xlabel("training-set size")
        ax.set_ylabel("standard test accuracy")
        ax.set_title(f"{dataset}, {norm} PGD-AT")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_size, dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 3.6), squeeze=False)
    for ax, (norm, sw) in zip(axes[0], sweeps.items()):
        sizes, eps, acc, rob = sweep_table(sw, seed)
        ax.plot(eps, acc[:, -1], "o-", label="standard accuracy")
        ax.plot(eps, rob[:, -1], "s--", label="PGD accuracy at eps_train")
        ax.set_xlabel("eps_train")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{dataset}, {norm}, n = {sizes[-1]}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_eps, dpi=110)
    plt.close(fig)
    return [path_size, path_eps]


def _pick(params, i):
    return jax.tree.map(lambda a: a[i], params)


def saliency_measurements(config, workdir: str, sweeps: dict) -> dict:
    """Part 4, on the full-training-set models of the sweeps (standard, L-inf AT at
    ``saliency.linf_eps``, L2 AT at ``saliency.l2_eps``; parameters from ``workdir/parts``):

    * input gradients (:func:`jadv.analysis.input_gradients`) of the first ``saliency.n`` test
      images and their alignment with the Sobel edges (:func:`jadv.analysis.saliency_alignment`);
    * large-eps L2 targeted examples (:func:`jadv.analysis.large_eps_examples`, ``large_eps``,
      ``large_steps``, target ``(y + 1) mod 10``) of the first ``n_large`` test images, and how
      often the model itself and the proxy standard model (seed + 1000) predict the target;
    * interpolations x -> x_adv (:func:`jadv.analysis.interpolate`) of the L2-AT model.

    Writes :data:`SALIENCY_FIGURES` into ``workdir``. Returns a JSON-able dict with
    ``alignment_mean``/``alignment_stderr`` per model, ``n`` and ``large_eps`` (``rates`` per model).
    """
    cfg, scfg = config.saliency, config.sweep
    _, _, xte, yte, names = sweep_data(scfg.train, config.data_dir)
    model = sweep_recipe(scfg.train)["model"]   # every sweep model has this architecture
    models = {}
    for norm, e in (("linf", 0.0), ("linf", cfg.linf_eps), ("l2", cfg.l2_eps)):
        sw = sweeps[norm]
        params = load_sweep_params(model, workdir, norm, xte.shape[1:])
        full = max(sw["sizes"])
        i = [j for j, (s, ee, sd) in enumerate(zip(sw["sizes"], sw["eps"], sw["seeds"]))
             if s == full and abs(ee - e) < 1e-9 and sd == config.seed][0]
        label = "standard" if e == 0 else f"{norm}-AT eps={e:g}"
        models[label] = _pick(params, i)
        if norm == "linf" and e == 0:
            proxy = _pick(params, len(sw["sizes"]) - 1)   # the seed + 1000 standard model
    x = jnp.asarray(xte[:cfg.n])
    y = jnp.asarray(yte[:cfg.n])
    grad_fn = jax.jit(lambda pp, xx, yy: input_gradients(lambda z: model.apply({"params": pp}, z), xx, yy))
    large_fn = jax.jit(lambda pp, xx, tt: large_eps_examples(
        lambda z: model.apply({"params": pp}, z), xx, tt, key=None, eps=cfg.large_eps,
        step_size=2.5 * cfg.large_eps / cfg.large_steps, steps=cfg.large_steps, norm="l2"))
    grads, align = {}, {}
    for k, p in models.items():
        g = grad_fn(p, x, y)
        grads[k] = np.asarray(g)
        align[k] = np.asarray(saliency_alignment(g, x))
    plot_saliency_grid(np.asarray(x[:cfg.n_show]), {k: v[:cfg.n_show] for k, v in grads.items()},
                       os.path.join(workdir, "saliency.png"),
                       title=f"input gradients, {scfg.train.dataset} test images")
    # large-eps targeted examples (target y + 1 mod 10), judged by the proxy standard model
    nl = min(cfg.n_large, len(yte))
    xl, yl = jnp.asarray(xte[:nl]), jnp.asarray(yte[:nl])
    tgt = (yl + 1) % 10
    large, rates = {}, {}
    for k, p in models.items():
        xa = large_fn(p, xl, tgt)
        large[k] = np.asarray(xa)
        own = np.asarray(jnp.argmax(model.apply({"params": p}, xa), -1) == tgt)
        prox = np.asarray(jnp.argmax(model.apply({"params": proxy}, xa), -1) == tgt)
        l2 = np.linalg.norm((np.asarray(xa) - np.asarray(xl)).reshape(nl, -1), axis=1)
        rates[k] = {"own_target_rate": float(own.mean()), "proxy_target_rate": float(prox.mean()),
                    "mean_l2": float(np.mean(l2))}
    plot_large_eps_grid(np.asarray(xl[:cfg.n_show]), {k: v[:cfg.n_show] for k, v in large.items()},
                        os.path.join(workdir, "large_eps.png"), targets=np.asarray(tgt[:cfg.n_show]),
                        class_names=names, eps=cfg.large_eps)
    at_key = f"l2-AT eps={cfg.l2_eps:g}"
    path = interpolate(xl[:cfg.n_show], jnp.asarray(large[at_key][:cfg.n_show]), jnp.asarray(cfg.interp_alphas))
    plot_interpolation(np.asarray(jnp.clip(path, 0, 1)), cfg.interp_alphas, os.path.join(workdir, "interpolation.png"),
                       title=f"x -> large-eps x_adv of the {at_key} model")
    return {"alignment_mean": {k: float(v.mean()) for k, v in align.items()},
            "alignment_stderr": {k: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
                                 for k, v in align.items()},
            "n": int(cfg.n), "large_eps": {"eps": cfg.large_eps, "norm": "l2", "steps": cfg.large_steps,
                                           "targets": "(y + 1) mod 10", "n": nl, "rates": rates}}
