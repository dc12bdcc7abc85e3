"""AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"), ``version="standard"`` for Linf and L2, and ``version="custom"``.

Standard sequence (robustness-libraries.md section 4.8), each attack run only on the points still
robust: clean accuracy first (clean errors count as non-robust), then

1. APGD-CE, 100 iterations, 1 restart;
2. APGD-T, targeted DLR, 9 targets x 1 restart, 100 iterations;
3. FAB-T, 9 targets, 100 iterations, alpha_max 0.1, eta 1.05, beta 0.9;
4. Square, 5000 queries, p_init 0.8, margin loss, 1 restart, ``resc_schedule=False``.

Robust points are compacted on the host between attacks and attacked in fixed-shape batches (the last
batch padded by repetition) so each attack compiles once. When fewer points than ``batch_size`` are
left, the batch shrinks to the next power of two that holds them (:func:`attack_batch_size`): late
attacks on a few surviving points then cost what those points cost, not a whole padded batch (on a
CPU, APGD-T, FAB-T and Square on 30 survivors padded to 200 took 30+ minutes per model). The final
adversarial set is checked: max perturbation norm <= eps (+ tol), no NaN, values in [0, 1]; a violation raises
:class:`~jadv.attacks.evaluate.AttackCheckError`. The report also carries AutoAttack's
gradient-masking flags. Any other list of attacks must use ``version="custom"``, which is reported
under that name and never as "standard".
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jadv._checks import check_choice, check_norm, check_positive_int
from jadv._typing import ArrayLike, PyTree
from jadv.attacks._validate import check_eps, check_images_np, check_key, check_labels_np, num_classes
from jadv.attacks.evaluate import (_bind, _padded_batches, check_attack_output, check_perturbations, fetch,
                                   make_placer, place_params)
from jadv.attacks.masking_checks import masking_flags, zero_gradient_mask
from jadv.attacks.specs import make_attack
from jadv.progress import make_progress

__all__ = ["attack_batch_size", "autoattack", "enable_compilation_cache", "standard_attacks"]


def enable_compilation_cache(cache_dir: str | None = None, *, min_compile_time_s: float = 0.0) -> str:
    """Turn on XLA's persistent compilation cache (``jax_compilation_cache_dir``) and return its folder.

    AutoAttack compiles one program per attack and batch shape (seconds each on a CPU); with the
    cache, a later process that evaluates the same model at the same shapes (another checkpoint of a
    run, the same evaluation again) loads the compiled programs from disk instead. The model's
    arrays are jit arguments, not constants, so a new checkpoint of the same architecture hits the
    cache. ``cache_dir`` defaults to ``$JADV_CACHE_DIR/xla`` (else ``~/.cache/jadv/xla``); a run can
    pass a folder in its workdir. ``min_compile_time_s``: programs that compiled faster are not
    written (jax's own default is 1 s; 0 caches every program). Process-wide (a jax config
    option); safe to call more than once. Measured in BENCHMARKS.md (issue #19).
    """
    from jadv.data.cache import cache_root

    path = os.fspath(cache_dir) if cache_dir is not None else os.path.join(cache_root(), "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1 if min_compile_time_s <= 0 else 0)
    return path


def attack_batch_size(n_left: int, batch_size: int, multiple: int = 1) -> int:
    """Batch shape for attacking ``n_left`` points: ``batch_size`` when they fill it, else the smallest
    power of two >= ``n_left`` (rounded up to a multiple of ``multiple``, the device count when
    sharding), never above ``batch_size``. Powers of two keep the number of compiled shapes at
    log2(batch_size) at most."""
    if n_left >= batch_size:
        return batch_size
    b = 1 << max(int(n_left) - 1, 0).bit_length()
    b = -(-b // multiple) * multiple
    return min(b, batch_size)


def standard_attacks(eps: float, norm: str = "linf") -> list[dict]:
    """The AutoAttack ``standard`` list as dict specs (names "apgd-ce", "apgd-t", "fab-t", "square")."""
    return [
        {"name": "apgd-ce", "eps": eps, "norm": norm, "steps": 100, "restarts": 1},
        {"name": "apgd-t", "eps": eps, "norm": norm, "steps": 100, "n_targets": 9, "restarts": 1},
        {"name": "fab-t", "eps": eps, "norm": norm, "steps": 100, "n_targets": 9,
         "alpha_max": 0.1, "eta": 1.05, "beta": 0.9},
        {"name": "square", "eps": eps, "norm": norm, "queries": 5000, "p_init": 0.8, "loss": "margin",
         "resc_schedule": False},
    ]


def autoattack(logits_fn: Callable, x: ArrayLike, y: ArrayLike, *, key: jax.Array, eps: float, norm: str = "linf",
               version: str = "standard", attacks: list | None = None, batch_size: int = 500,
               params: PyTree = None, verbose: bool = True, tol: float = 1e-5, checks: bool = True,
               shard: bool = False, compilation_cache: bool | str | None = None,
               progress: bool | Callable | None = None) -> tuple[np.ndarray, dict]:
    """Run AutoAttack and return ``(x_adv, report)``.

    Args:
      logits_fn: ``x -> logits[B, K]`` (or ``(params, x) -> logits`` with ``params``, passed as a jit
        argument). Must return logits in inference mode (running BN statistics).
      x: ``[N, H, W, C]`` float in [0, 1]; y: ``[N]`` int labels. key: PRNG key (attack ``j`` on
        batch ``i`` uses ``fold_in(fold_in(key, j), i)``). eps: radius; norm: "linf" or "l2".
      version: "standard" (the exact sequence above; needs >= 10 classes, as the reference) or
        "custom" with ``attacks``: a list of callables ``(logits_fn, x, y, key) -> x_adv`` or dict specs
        (see :mod:`jadv.attacks.specs`; dicts get ``eps``/``norm`` filled in when missing).
      batch_size: fixed batch shape. verbose: print a line per attack to stderr. tol: tolerance of the
      final checks. checks: also compute the gradient-masking flags: "zero_gradients" on every
      batch by AutoAttack's definition (the targeted-DLR input gradient at APGD start points of
      radius ``eps``, :func:`~jadv.attacks.masking_checks.zero_gradient_mask`), "randomized" and
      "softmax_output" on the first batch, "square_beats_whitebox" from the attacks' accuracies.
      shard: split each batch over all devices along a "data" mesh axis (batch_size must divide evenly).
      compilation_cache: ``True`` or a folder: call :func:`enable_compilation_cache` first (the
        user's cache folder, or that one), so a repeated evaluation in a new process skips most of
        the compilation. Default: leave jax's configuration alone.
      progress: batch-level progress within each attack through :mod:`jadv.progress` (the attack,
        robust accuracy so far, rate, ETA of the attack running): True prints lines to stderr (at
        most one per 10 s, and each attack's last), False is silent, a callable gets each
        :class:`~jadv.progress.ProgressEvent`, a :class:`~jadv.progress.Progress` is used as is
        (it counts batches over all attacks; its total grows by each attack's batch count when
        the attack starts, since the survivors decide it). None (default): as ``verbose``.
    Returns:
      ``x_adv [N, H, W, C]`` (numpy; ``x`` where no attack succeeded) and a report dict: ``version``,
      ``norm``, ``eps``, ``n``, ``clean_accuracy``, ``robust_accuracy``, ``attacks`` (list of
      ``{"name", "robust_accuracy" (after this attack, cumulative), "n_attacked", "n_broken",
      "time_s"}``), ``robust`` (bool ``[N]``), ``max_perturbation``, ``n_nan``, ``value_range``,
      ``flags``.
    Raises: ValueError/TypeError on bad input; AttackCheckError if the final checks fail.
    """
    check_choice("version", version, ("standard", "custom"))
    if compilation_cache:
        enable_compilation_cache(None if compilation_cache is True else compilation_cache)
    check_norm(norm)
    check_key(key)
    check_positive_int("batch_size", batch_size)
    if not callable(logits_fn):
        raise TypeError(f"logits_fn must be callable, got {type(logits_fn).__name__}")
    x = np.asarray(x)
    y = np.asarray(y)
    check_images_np(x)
    if len(x) == 0:
        raise ValueError("x is empty")
    f = _bind(logits_fn, params)
    k = num_classes(f, x[:1])
    check_labels_np(y, len(x), k)
    check_eps(eps, norm, x)
    if version == "standard":
        if attacks is not None:
            raise ValueError("version='standard' runs the fixed AutoAttack sequence; "
                             "pass your own list with version='custom'")
        if k < 10:
            raise ValueError(f"AutoAttack standard uses 9 target classes and needs >= 10 classes; the model "
                             f"has {k}. Use version='custom' with fewer targets.")
        specs = standard_attacks(eps, norm)
    else:
        if not attacks:
            raise ValueError("version='custom' needs a non-empty list of attacks")
        specs = [{"eps": eps, "norm": norm, **a} if isinstance(a, dict) else a for a in attacks]
    named = [make_attack(s) for s in specs]
    put = make_placer(shard, batch_size)
    params = place_params(shard, params)

    @jax.jit
    def predict(p, xb, yb, kk):
        """Clean predictions and (checks) the zero-gradient flags of a batch: one program."""
        lf = _bind(logits_fn, p)
        pred_b = jnp.argmax(lf(xb), -1)
        if not checks:
            return pred_b, jnp.zeros(pred_b.shape, bool)
        return pred_b, zero_gradient_mask(lf, xb, yb, key=kk, eps=eps, norm=norm)

    n = len(x)
    pred = np.zeros(n, np.int64)
    n_zero_grad = 0
    k_check = jax.random.fold_in(key, len(named))
    for bi, (idx, m) in enumerate(_padded_batches(np.arange(n), batch_size)):
        pb, zg = predict(params, put(x[idx]), put(y[idx]), jax.random.fold_in(k_check, bi))
        pred[idx[:m]] = fetch(pb)[:m]
        n_zero_grad += int(fetch(zg)[:m].sum())
    robust = pred == y
    clean_acc = float(robust.mean())
    x_adv = x.copy()
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if verbose else (lambda s: None)
    log(f"[autoattack {version}] {norm} eps={float(eps):.6g}: clean accuracy {clean_acc:.2%} on {n} points")
    entries = []
    prog = make_progress(verbose if progress is None else progress, total=0, desc=f"[autoattack {version}] batch",
                         unit="batch", stream=sys.stderr)
    for j, (name, fn) in enumerate(named):
        @jax.jit
        def run(p, xb, yb, kk, fn=fn, name=name):
            lf = _bind(logits_fn, p)
            xa = check_attack_output(name, xb, fn(lf, xb, yb, kk))
            return xa, jnp.argmax(lf(xa), -1) != yb

        t0 = time.time()
        todo = np.nonzero(robust)[0]
        n_broken = 0
        ka = jax.random.fold_in(key, j)
        bs = attack_batch_size(len(todo), batch_size, jax.device_count() if shard else 1)
        prog.total = (prog.total or 0) + math.ceil(len(todo) / bs)
        for bi, (idx, m) in enumerate(_padded_batches(todo, bs)):
            xa, broken = run(params, put(x[idx]), put(y[idx]), jax.random.fold_in(ka, bi))
            xa = fetch(xa)[:m]
            broken = fetch(broken)[:m]
            real = idx[:m]
            x_adv[real[broken]] = xa[broken]
            robust[real[broken]] = False
            n_broken += int(broken.sum())
            prog.update(1, attack=name, robust=float(robust.mean()))
        dt = time.time() - t0
        entries.append({"name": name, "robust_accuracy": float(robust.mean()), "n_attacked": int(len(todo)),
                        "n_broken": n_broken, "time_s": dt})
        log(f"[autoattack {version}] {name}: robust accuracy {robust.mean():.2%} "
            f"({n_broken}/{len(todo)} broken, {dt:.1f} s)")
    stats = check_perturbations(x, x_adv, eps=eps, norm=norm, tol=tol, name=f"autoattack {version}")
    log(f"[autoattack {version}] robust accuracy {robust.mean():.2%}; max {norm} perturbation "
        f"{stats['max_norm']:.6g}, {stats['n_nan']} NaN, values in [{stats['min']:.4g}, {stats['max']:.4g}]")
    report = {"version": version, "norm": norm, "eps": float(eps), "n": n, "clean_accuracy": clean_acc,
              "robust_accuracy": float(robust.mean()), "attacks": entries, "robust": robust,
              "max_perturbation": stats["max_norm"], "n_nan": stats["n_nan"],
              "value_range": (stats["min"], stats["max"])}
    if checks:
        xb, yb = jnp.asarray(x[:batch_size]), jnp.asarray(y[:batch_size])
        accs = {e["name"]: e["robust_accuracy"] for e in entries}
        logits_j = jax.jit(lambda p, xb: _bind(logits_fn, p)(xb))   # one program, not op by op
        report["flags"] = masking_flags(lambda xb: logits_j(params, xb), xb, yb, zero_gradients=n_zero_grad / n,
                                        attack_accuracies=accs if len(accs) > 1 else None, warn=verbose)
    return x_adv, report
