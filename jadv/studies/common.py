"""Plumbing shared by the five studies of :mod:`jadv.studies`: claims, outputs, resumable parts.

A study is a module ``jadv.studies.<name>`` with

* ``run(config, workdir) -> record``: trains or loads its models, measures, writes figures and
  returns (and saves as ``results.json``) ``{"study", "results", "claims", "figures"}``;
* ``claims(config, results) -> list[dict]``: the verdicts, a pure function of the measured
  ``results`` (no training), so that they can be derived again when a rule changes.

``run`` writes into ``workdir``: ``results.json``, ``claims.json`` (a list of :func:`claim`
records, gathered by ``experiments/reproduce.py`` into its claims table) and PNG figures.
Expensive parts are cached with :func:`cached_part`, so a killed study resumes without redoing
finished parts; every file is written atomically (:func:`write_json`).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jadv._io import atomic_write_json
from jadv.progress import Progress, format_duration
from jadv.studies.gates import apply_gates

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not run at this profile")


def claim(study: str, claim_id: str, text: str, *, measured: str, verdict: str | bool | None,
          source: str, command: str = "", gates: Mapping[str, Mapping] | None = None,
          models: Sequence[str] | None = None) -> dict:
    """One row of the claims table. ``verdict``: True/False/None or one of :data:`VERDICTS`.

    ``gates``: the gate records (:func:`jadv.studies.gates.check_gates`) of the trained models the
    claim rests on, ``models`` their names (None: all of ``gates``); a model below its gate makes
    a decided verdict "inconclusive" (:func:`jadv.studies.gates.apply_gates`). Leave ``gates``
    None for analytic claims (closed forms, convex models), which need no gate.
    """
    if isinstance(verdict, bool) or verdict is None or isinstance(verdict, np.bool_):
        verdict = {True: "reproduced", False: "not reproduced", None: "not run at this profile"}[
            None if verdict is None else bool(verdict)]
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    record = {"study": study, "id": claim_id, "claim": text, "measured": measured, "verdict": verdict,
              "source": source, "command": command}
    return apply_gates(record, gates, models)


def to_jsonable(obj: Any):
    """numpy/jax values -> plain Python for json.dump."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def write_json(path: str, obj: Any) -> None:
    """Atomic JSON write of numpy/jax values (a kill never leaves a half-written file)."""
    atomic_write_json(path, to_jsonable(obj))


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def check_single_process(study: str) -> None:
    """RuntimeError when called under a multi-process ``jax.distributed`` run. The studies are
    single-process programs: they train many models one after the other, write parts, records
    and figures at every stage, and run host-side analyses (Hessian solvers, filter metrics,
    plots) between trainings; a multi-process version would need every one of those steps made
    collective. Train a study's models across processes with ``experiments/train.py`` instead."""
    import jax
    if jax.process_count() > 1:
        raise RuntimeError(f"study {study!r} runs in one process (this is process {jax.process_index()} of "
                           f"{jax.process_count()}): the studies are not multi-process programs; use one "
                           "process per study (all of its local devices), or train single models across "
                           "processes with experiments/train.py")


_PART_PROGRESS: dict[str, Progress] = {}


def part_progress(workdir: str) -> Progress:
    """The :class:`jadv.progress.Progress` of a study's parts in ``workdir`` (one per workdir in this
    process; counts parts, total unknown), which :func:`cached_part` reports through."""
    key = os.path.abspath(workdir)
    if key not in _PART_PROGRESS:
        tag = "/".join(os.path.normpath(key).split(os.sep)[-2:])
        _PART_PROGRESS[key] = Progress(None, desc=f"[{tag}] part", unit="part")
    return _PART_PROGRESS[key]


def cached_part(workdir: str, name: str, compute: Callable[[], dict]) -> dict:
    """Return ``workdir/parts/<name>.json`` if it exists, else compute, save and return it.

    Progress: a line per part through :func:`part_progress`, ``[<study>/<profile>] part 3
    sweep_linf computing ... | elapsed 0:02:00`` when it starts and ``[...] part 3 sweep_linf
    computed in 0:03:10 | elapsed 0:05:10`` when it is saved (``reused`` for a part a previous run
    saved).
    """
    path = os.path.join(workdir, "parts", f"{name}.json")
    progress = part_progress(workdir)
    if os.path.exists(path):
        progress.set(progress.done + 1, **{name: "reused"})
        return read_json(path)
    progress.set(progress.done + 1, **{name: "computing ..."})
    t0 = time.monotonic()
    result = to_jsonable(compute())
    write_json(path, result)
    progress.emit(**{name: f"computed in {format_duration(time.monotonic() - t0)}"})
    return result


def batched(fn, arrays, batch_size: int):
    """Apply ``fn(*batch)`` over the leading axis of ``arrays`` in fixed-shape batches.

    The last batch is padded by repeating its first row (one compilation for every batch) and the
    padded rows are dropped from the result. Returns the concatenated numpy outputs.
    """
    import jax.numpy as jnp

    n = len(arrays[0])
    out = []
    for s in range(0, n, batch_size):
        chunk = [a[s:s + batch_size] for a in arrays]
        m = len(chunk[0])
        if m < batch_size:
            chunk = [np.concatenate([c, np.repeat(c[:1], batch_size - m, axis=0)]) for c in chunk]
        out.append(np.asarray(fn(*[jnp.asarray(c) for c in chunk]))[:m])
    return np.concatenate(out)


def monotone(values, *, increasing: bool = True, tol: float = 0.0) -> bool:
    """True if consecutive values never move the wrong way by more than ``tol``."""
    v = np.asarray(values, np.float64)
    d = np.diff(v)
    return bool(np.all(d >= -tol) if increasing else np.all(d <= tol))


def finish(workdir: str, study: str, results: dict, claims: list[dict], figures: list[str]) -> dict:
    """Write results.json and claims.json; return the study record for reproduce.py."""
    record = {"study": study, "results": results, "claims": claims,
              "figures": [os.path.relpath(f, workdir) for f in figures]}
    write_json(os.path.join(workdir, "results.json"), record)
    write_json(os.path.join(workdir, "claims.json"), claims)
    return record


def train_model(config, workdir: str):
    """Train (or reuse) a model with ``jadv.train.train_and_evaluate``; resumable.

    If ``workdir/results.json`` exists the run is finished and only loaded; if a checkpoint
    exists the run resumes from it. Returns ``(model, variables, results)`` with the latest
    checkpoint's inference variables (``variables = {"params", "batch_stats"}``).
    """
    from jadv.train import load_trained, train_and_evaluate

    done = os.path.join(workdir, "results.json")
    if os.path.exists(done):
        results = read_json(done)
    else:
        results = train_and_evaluate(config, workdir)
    model, variables, _ = load_trained(workdir)
    return model, variables, results


def logits_fn_of(model, variables, *, bn_set: str = "clean"):
    """Inference-mode ``logits_fn(x)`` (running batch-norm statistics) of a trained model."""
    return lambda x: model.apply(variables, x, train=False, bn_set=bn_set)


def cli_main(study, config, workdir: str | None) -> dict:
    """The body of ``experiments/<study>.py``: run ``study.run(config, workdir)`` (default workdir
    ``runs/<study>/<config.profile>``) and print one line per claim."""
    from absl import logging

    logging.set_verbosity(logging.WARNING)     # orbax logs every checkpoint at INFO
    name = study.__name__.rsplit(".", 1)[-1]
    record = study.run(config, workdir or os.path.join("runs", name, str(config.get("profile", "run"))))
    for c in record["claims"]:
        print(f"[{c['verdict']}] {c['claim']}: {c['measured']}")
    return record


def study_app(study, script: str) -> None:
    """The command line of ``experiments/<study>.py`` (absl): ``--config`` (an ml_collections
    config file, ``path.py:profile``; default ``configs/<study>.py:small`` beside the script's
    folder; any field can be set with ``--config.x=...``) and ``--workdir``; then :func:`cli_main`.
    ``script`` is the calling script's ``__file__``."""
    from absl import app, flags
    from ml_collections import config_flags

    name = study.__name__.rsplit(".", 1)[-1]
    default = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(script)), "..", "configs",
                                            f"{name}.py")) + ":small"
    config = config_flags.DEFINE_config_file("config", default, "config file, as path.py:profile "
                                             "(smoke, small, medium, paper)", lock_config=False)
    workdir = flags.DEFINE_string("workdir", None, f"output directory (default runs/{name}/<profile>)")

    def main(argv):
        del argv
        cli_main(study, config.value, workdir.value)

    app.run(main)
