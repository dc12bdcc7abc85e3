"""Robust-accuracy evaluation drivers: stream a dataset in fixed-shape batches, run attacks, take the
per-example worst case.

* :func:`robust_accuracy` runs every attack on every point and reports clean accuracy, per-attack
  accuracy and the worst case across attacks (a point is robust only if it is classified correctly
  on clean input and survives every attack) -- never the average of per-attack accuracies.
* :func:`jadv.attacks.robust_accuracy_curve` (in :mod:`jadv.attacks.eps_curve`) computes robust
  accuracy for a grid of eps in one program (vmap over eps); jit it at the call site.

The drivers jit one function per attack at a fixed batch shape (the last batch is padded by
repeating points and the padding is dropped), so each attack compiles once. ``logits_fn`` is either
``logits_fn(x)`` or, when ``params`` is given, ``logits_fn(params, x)``; the second form passes the
parameters as jit arguments instead of baking them into the compiled program as constants (use it for
large models).
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jadv._checks import check_positive_int
from jadv._typing import ArrayLike, PyTree
from jadv.attacks._validate import check_images_np, check_key, check_labels_np, num_classes
from jadv.attacks.masking_checks import masking_flags, zero_gradient_mask
from jadv.attacks.projections import per_example_norm
from jadv.attacks.specs import make_attack
from jadv.progress import make_progress

__all__ = ["robust_accuracy", "perturbation_stats", "check_perturbations",
           "check_attack_output", "AttackCheckError"]


class AttackCheckError(AssertionError):
    """An attack returned points outside the eps-ball or the [0, 1] box, or NaNs."""


def make_placer(shard: bool, batch_size: int):
    """Return ``put(array)``: with ``shard=True`` batches are split over all devices -- of every
    process under ``jax.distributed`` -- along a "data" mesh axis (``NamedSharding(mesh,
    P("data"))``; the attacks are per-example so jit partitions them; each process places only
    its rows), else arrays go to the default device. Read results back with :func:`fetch`. A
    batch size not divisible by the device count is a ValueError."""
    if not shard:
        return jnp.asarray
    from jadv.train import sharding  # jadv.train imports the attacks
    n = jax.device_count()
    if batch_size % n:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of devices ({n}) when shard=True")
    mesh = sharding.make_mesh()
    return lambda a: sharding.shard_batch(np.asarray(a), mesh)


def place_params(shard: bool, params: PyTree) -> PyTree:
    """``params`` replicated over the devices that :func:`make_placer` shards batches over (with
    ``shard=True``; jit needs the parameters on the batch's devices), else unchanged."""
    if not shard or params is None:
        return params
    from jadv.train import sharding
    return sharding.replicate(params, sharding.make_mesh())


def fetch(a) -> np.ndarray:
    """An attack's output as numpy, all of it in every process (batch-sharded outputs of a
    multi-process run are gathered: every process must call this)."""
    from jadv.train import sharding
    return sharding.to_host(a)


def _bind(logits_fn, params):
    if params is None:
        return logits_fn
    return lambda x: logits_fn(params, x)


def _padded_batches(idx: np.ndarray, batch_size: int):
    """Yield (batch indices padded to batch_size by wrapping, number of real entries)."""
    for s in range(0, len(idx), batch_size):
        real = idx[s:s + batch_size]
        n = len(real)
        if n < batch_size:
            real = np.pad(real, (0, batch_size - n), mode="wrap")
        yield real, n


def perturbation_stats(x: jax.Array, x_adv: jax.Array, norm: str | None = None) -> dict[str, jax.Array]:
    """Per-example stats of ``x_adv - x``: dict of ``linf``, ``l2`` norms ``[B]``, ``nan [B]`` bool,
    ``min``/``max`` of ``x_adv`` per example. Pure (jit-able)."""
    d = jnp.where(jnp.isnan(x_adv), 0.0, x_adv - x)
    axes = tuple(range(1, x.ndim))
    return {"linf": per_example_norm(d, "linf"), "l2": per_example_norm(d, "l2"),
            "nan": jnp.any(jnp.isnan(x_adv), axis=axes),
            "min": jnp.min(jnp.where(jnp.isnan(x_adv), 0.5, x_adv), axis=axes),
            "max": jnp.max(jnp.where(jnp.isnan(x_adv), 0.5, x_adv), axis=axes)}


def check_perturbations(x: ArrayLike, x_adv: ArrayLike, *, eps: float | None = None, norm: str = "linf",
                        tol: float = 1e-5, name: str = "attack") -> dict:
    """Raise :class:`AttackCheckError` if ``x_adv`` has NaNs, leaves [0, 1], or (when ``eps`` is given)
    leaves the ``eps``-ball of ``norm`` by more than ``tol``. Returns a dict of summary numbers."""
    x = np.asarray(x, np.float64)
    xa = np.asarray(x_adv, np.float64)
    if xa.shape != x.shape:
        raise AttackCheckError(f"{name}: x_adv has shape {xa.shape}, expected {x.shape}")
    n_nan = int(np.isnan(xa).sum())
    d = (np.nan_to_num(xa) - x).reshape(len(x), -1)
    finite = xa[~np.isnan(xa)]
    stats = {"n_nan": n_nan, "min": float(finite.min()) if finite.size else 0.0,
             "max": float(finite.max()) if finite.size else 0.0}
    if norm == "linf":
        stats["max_norm"] = float(np.abs(d).max()) if d.size else 0.0
    else:
        stats["max_norm"] = float(np.sqrt((d ** 2).sum(1)).max()) if d.size else 0.0
    problems = []
    if n_nan:
        problems.append(f"{n_nan} NaN values")
    if stats["min"] < -tol or stats["max"] > 1 + tol:
        problems.append(f"values in [{stats['min']:.6g}, {stats['max']:.6g}], outside [0, 1]")
    if eps is not None and stats["max_norm"] > float(eps) + tol:
        problems.append(f"max {norm} perturbation {stats['max_norm']:.6g} > eps {float(eps):.6g} (+{tol:g})")
    if problems:
        raise AttackCheckError(f"{name}: " + "; ".join(problems))
    return stats


def check_attack_output(name, x, x_adv):
    """``x_adv``, after checking (at trace time) that the attack ``name`` returned an array of the
    shape of its input ``x``; a ValueError names the attack and both shapes."""
    if getattr(x_adv, "shape", None) != x.shape:
        got = getattr(x_adv, "shape", type(x_adv).__name__)
        raise ValueError(f"attack {name!r} returned an array of shape {got}; an attack must return x_adv "
                         f"of the shape of its input {x.shape}")
    return x_adv


def _spec_threat(spec):
    if isinstance(spec, dict):
        return spec.get("eps"), spec.get("norm", "linf")
    return getattr(spec, "eps", None), getattr(spec, "norm", "linf")


def robust_accuracy(logits_fn: Callable, x: ArrayLike, y: ArrayLike, attacks: list, *, key: jax.Array,
                    batch_size: int = 256, params: PyTree = None, progress: bool | Callable | None = True, tol: float = 1e-5,
                    return_adv: bool = False, shard: bool = False, checks: bool = False) -> dict:
    """Clean, per-attack and worst-case robust accuracy over a dataset.

    Args:
      logits_fn: ``x -> logits[B, K]`` (or ``(params, x) -> logits`` with ``params``).
      x: ``[N, H, W, C]`` float in [0, 1] (host or device array); y: ``[N]`` int labels.
      attacks: list of attacks, each a callable ``attack(logits_fn, x, y, key) -> x_adv`` or a dict spec
        such as ``{"name": "pgd", "eps": 0.3, "step_size": 0.01, "steps": 40}`` (see
        :mod:`jadv.attacks.specs`). Every attack runs on every point.
      key: PRNG key; batch ``i`` and attack ``j`` use ``fold_in(fold_in(key, i), j)``.
      batch_size: fixed batch shape (the last batch is padded). params: see module docstring.
      progress: report batches done, clean and robust accuracy so far, rate and ETA through
        :mod:`jadv.progress`: True prints lines to stderr (at most one per 10 s, and the last),
        False/None is silent, a callable gets each :class:`~jadv.progress.ProgressEvent`, a
        :class:`~jadv.progress.Progress` is used as is. tol: tolerance of the eps-ball/box checks (done for
        dict specs with ``eps``; for callables only NaN/[0, 1] unless they carry ``eps``/``norm`` attributes).
      return_adv: also return the worst-case adversarial points ``[N, ...]`` (the first attack that
        breaks a point gives it; ``x`` where none does).
      shard: split each batch over all devices (data parallelism; batch_size must divide evenly).
      checks: add gradient-masking ``flags`` (see :func:`jadv.attacks.masking_checks.masking_flags`):
        "zero_gradients" on every batch (AutoAttack's definition: the DLR gradient at APGD-style
        start points of the first attack's eps and norm, or at the clean points when no attack
        carries an eps), "randomized" and "softmax_output" on the first batch, and
        "square_beats_whitebox" from the per-attack accuracies. ``False``: no ``flags``.
    Returns: dict with ``n``, ``clean_accuracy``, ``robust_accuracy``, ``per_attack`` (name -> accuracy
    under that attack alone, clean errors count as errors), ``robust`` (bool ``[N]``), ``time_s``
    (name -> seconds incl. compilation), ``checks`` (name -> max norm / NaN count / value range) and,
    with ``return_adv``, ``x_adv``.
    Raises: :class:`AttackCheckError` when an attack leaves the ball/box or returns NaN; ValueError
    when an attack returns an array of another shape than its input.
    """
    check_key(key)
    check_positive_int("batch_size", batch_size)
    if not isinstance(attacks, (list, tuple)) or len(attacks) == 0:
        raise ValueError("attacks must be a non-empty list of attack callables or dict specs")
    x = np.asarray(x)
    y = np.asarray(y)
    if not callable(logits_fn):
        raise TypeError(f"logits_fn must be callable, got {type(logits_fn).__name__}")
    f = _bind(logits_fn, params)
    check_images_np(x)
    if len(x) == 0:
        raise ValueError("x is empty")
    check_labels_np(y, len(x), num_classes(f, x[:1]))
    named = [make_attack(a) for a in attacks]
    names = []
    for nm, _ in named:
        base, c = nm, 2
        while nm in names:
            nm = f"{base}#{c}"
            c += 1
        names.append(nm)
    threats = [_spec_threat(a) for a in attacks]
    put = make_placer(shard, batch_size)
    params = place_params(shard, params)

    @jax.jit
    def clean_fn(p, xb, yb):
        return jnp.argmax(_bind(logits_fn, p)(xb), -1) == yb

    def make_run(nm, fn):
        @jax.jit
        def run(p, xb, yb, k):
            lf = _bind(logits_fn, p)
            xa = check_attack_output(nm, xb, fn(lf, xb, yb, k))
            return xa, jnp.argmax(lf(xa), -1) == yb
        return run

    runs = [make_run(nm, fn) for nm, (_, fn) in zip(names, named)]
    zero_eps, zero_norm = next(((e, nm_) for e, nm_ in threats if e is not None), (None, "linf"))

    @jax.jit
    def zero_grad_fn(p, xb, yb, k):
        return zero_gradient_mask(_bind(logits_fn, p), xb, yb, key=k, eps=zero_eps, norm=zero_norm or "linf")
    n = len(x)
    clean = np.zeros(n, bool)
    correct = {nm: np.zeros(n, bool) for nm in names}
    times = {nm: 0.0 for nm in names}
    box_checks = {nm: {"max_norm": 0.0, "n_nan": 0, "min": 1.0, "max": 0.0} for nm in names}
    n_zero_grad = 0
    x_adv = x.copy() if return_adv else None
    n_batches = math.ceil(n / batch_size)
    prog = make_progress(progress, total=n_batches, desc="[robust_accuracy] batch", unit="batch", stream=sys.stderr)
    n_clean = n_robust = 0
    for bi, (idx, m) in enumerate(_padded_batches(np.arange(n), batch_size)):
        xb, yb = put(x[idx]), put(y[idx])
        clean[idx[:m]] = fetch(clean_fn(params, xb, yb))[:m]
        kb = jax.random.fold_in(key, bi)
        if checks:
            n_zero_grad += int(fetch(zero_grad_fn(params, xb, yb, jax.random.fold_in(kb, len(names))))[:m].sum())
        still = clean[idx[:m]].copy()
        for j, (nm, run) in enumerate(zip(names, runs)):
            ts = time.time()
            xa, ok = run(params, xb, yb, jax.random.fold_in(kb, j))
            xa = fetch(xa)[:m]
            ok = fetch(ok)[:m]
            times[nm] += time.time() - ts
            eps, norm = threats[j]
            st = check_perturbations(x[idx[:m]], xa, eps=eps, norm=norm or "linf", tol=tol, name=nm)
            c = box_checks[nm]
            c["max_norm"] = max(c["max_norm"], st["max_norm"])
            c["n_nan"] += st["n_nan"]
            c["min"], c["max"] = min(c["min"], st["min"]), max(c["max"], st["max"])
            ok = ok & clean[idx[:m]]
            correct[nm][idx[:m]] = ok
            if return_adv:
                newly = still & ~ok
                x_adv[idx[:m][newly]] = xa[newly]
            still &= ok
        done = min((bi + 1) * batch_size, n)
        n_clean += int(clean[idx[:m]].sum())
        n_robust += int(still.sum())               # clean and unbroken by every attack
        so_far = dict(points=f"{done}/{n}", clean=n_clean / done, robust=n_robust / done)
        if bi + 1 < n_batches:
            prog.update(1, **so_far)
        else:                                      # one final line, with the totals
            prog.set(bi + 1, emit=False)
            prog.close(**so_far)
    robust = clean.copy()
    for nm in names:
        robust &= correct[nm]
    out = {"n": n, "clean_accuracy": float(clean.mean()) if n else 0.0,
           "robust_accuracy": float(robust.mean()) if n else 0.0,
           "per_attack": {nm: float(correct[nm].mean()) if n else 0.0 for nm in names},
           "robust": robust, "time_s": times, "checks": box_checks}
    if return_adv:
        out["x_adv"] = x_adv
    if checks:
        out["flags"] = masking_flags(f, jnp.asarray(x[:batch_size]), jnp.asarray(y[:batch_size]),
                                     zero_gradients=n_zero_grad / n,
                                     attack_accuracies=out["per_attack"] if len(names) > 1 else None,
                                     warn=bool(progress))
    return out

