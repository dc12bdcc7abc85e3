"""Quality gates: a claim about trained models is decided only on models that learned.

A study's verdict on a model-level claim ("robust models have near-equal channel pairs") says
nothing when its models did not learn: a model at 30% clean accuracy, or a first layer still at
its random initialisation, neither supports nor refutes the claim. So every trained model has a
*gate*, stated in the study config next to the recipe:

``{"clean": 0.97, "robust": 0.80, "init_cosine_max": 0.5, "source": "..."}``

* ``clean``: the least clean test accuracy;
* ``robust``: the least robust accuracy under the study's own attack (adversarially trained models);
* ``init_cosine_max``: for claims about weights, the largest cosine similarity allowed between
  the studied layer's trained kernel and the same kernel at initialisation (:func:`init_cosine`;
  1 = the layer has not moved, ~0 = unrelated to its start);
* ``source``: where the thresholds come from: a published number for that architecture and recipe,
  or a long reference run of jadv recorded in RESULTS.md, and the tolerance subtracted from it.

Any of the three thresholds may be left out (``None``). :func:`check_gate` compares one model's
measured values with its gate; :func:`apply_gates` turns a claim whose models missed a gate into
**inconclusive**, with the shortfall in its "measured" cell. Analytic claims (closed forms, convex
logistic models) take no gate. Gate records are plain JSON, so ``claims(config, results)`` stays
a pure function of the saved results.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

# metric -> (threshold key in a gate spec, "min" | "max", label in the report)
GATE_METRICS = {
    "clean": ("clean", "min", "clean acc"),
    "robust": ("robust", "min", "robust acc"),
    "init_cosine": ("init_cosine_max", "max", "cos(layer, init)"),
}
SPEC_KEYS = ("clean", "robust", "init_cosine_max", "source")


def gate_spec(*, clean: float | None = None, robust: float | None = None,
              init_cosine_max: float | None = None, source: str) -> dict:
    """A gate for a study config (see the module docstring); ``source`` is required."""
    spec = {"clean": clean, "robust": robust, "init_cosine_max": init_cosine_max, "source": source}
    check_spec(spec, "gate_spec")
    return spec


def check_spec(spec: Mapping, where: str) -> None:
    """ValueError naming ``where`` unless ``spec`` is a well-formed gate."""
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown gate key(s) {unknown}; a gate has {SPEC_KEYS}")
    if not spec.get("source"):
        raise ValueError(f"{where}: a gate needs a 'source' (the published number or reference run "
                         "its thresholds come from, and the tolerance)")
    for key in ("clean", "robust", "init_cosine_max"):
        v = spec.get(key)
        if v is not None and not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
            raise ValueError(f"{where}: gate {key} must be a number in [0, 1] or None, got {v!r}")
    if all(spec.get(k) is None for k in ("clean", "robust", "init_cosine_max")):
        raise ValueError(f"{where}: a gate must set at least one of clean, robust, init_cosine_max")


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating)) and math.isfinite(float(v))


def check_gate(model: str, spec: Mapping, measured: Mapping[str, Any]) -> dict:
    """Compare a model's measured values with its gate.

    Args:
      model: the model's name in the study.
      spec: its gate (:func:`gate_spec`).
      measured: ``{"clean": float, "robust": float, "init_cosine": float}``, any subset; a value
        the gate needs but that is missing (or not finite) fails the gate as "not measured".

    Returns ``{"model", "met", "checks": [{"metric", "value", "threshold", "kind", "ok"}], "source"}``.
    """
    check_spec(dict(spec), f"gate of {model!r}")
    checks = []
    for metric, (key, kind, _) in GATE_METRICS.items():
        threshold = spec.get(key)
        if threshold is None:
            continue
        value = measured.get(metric)
        value = float(value) if _finite(value) else None
        ok = value is not None and (value >= threshold if kind == "min" else value <= threshold)
        checks.append({"metric": metric, "value": value, "threshold": float(threshold), "kind": kind,
                       "ok": bool(ok)})
    return {"model": model, "met": all(c["ok"] for c in checks), "checks": checks,
            "source": spec["source"]}


def check_gates(specs: Mapping[str, Mapping], measured: Mapping[str, Mapping]) -> dict:
    """:func:`check_gate` for every model with a gate: ``{model: gate record}``. A model with a
    gate but no measurements fails every check ("not measured")."""
    return {m: check_gate(m, specs[m], measured.get(m, {})) for m in specs}


def shortfall(record: Mapping) -> str:
    """The failed checks of one gate record, e.g. ``"linf_at clean acc 0.384 < 0.70"``."""
    parts = []
    for c in record["checks"]:
        if c["ok"]:
            continue
        label = GATE_METRICS[c["metric"]][2]
        if c["value"] is None:
            parts.append(f"{record['model']} {label} not measured (gate {c['threshold']:.2f})")
        else:
            op = "<" if c["kind"] == "min" else ">"
            parts.append(f"{record['model']} {label} {c['value']:.3f} {op} {c['threshold']:.2f}")
    return "; ".join(parts)


def describe(record: Mapping) -> str:
    """One gate record as text: ``"clean acc 0.981 >= 0.97, robust acc 0.86 >= 0.80: met"``."""
    parts = []
    for c in record["checks"]:
        label = GATE_METRICS[c["metric"]][2]
        op = ">=" if c["kind"] == "min" else "<="
        value = "not measured" if c["value"] is None else f"{c['value']:.3f}"
        parts.append(f"{label} {value} (gate {op} {c['threshold']:.2f})")
    return ", ".join(parts) + (": met" if record["met"] else ": MISSED")


def apply_gates(claim_record: dict, gate_records: Mapping[str, Mapping] | None,
                models: Iterable[str] | None = None) -> dict:
    """Gate one claim (a :func:`jadv.studies.common.claim` record) on the models it rests on.

    ``gate_records``: ``{model: record}`` from :func:`check_gates`; ``models``: the names the claim
    rests on (None: all of them). ``gate_records=None`` marks an analytic claim (no gate). If any
    of those models missed its gate, a decided verdict becomes "inconclusive" and the shortfall
    is put in front of "measured"; "not run at this profile" stays. Adds ``claim["gates"]``:
    "met", "missed", "none needed" (analytic) or "not run" (no gates given for a claim not run),
    ``claim["gate_models"]`` (names) and ``claim["gate_records"]``
    (their records, which the report lists per study). Returns the claim.
    """
    if gate_records is None:
        not_run = claim_record["verdict"] == "not run at this profile"
        claim_record.update(gates="not run" if not_run else "none needed", gate_models=[], gate_records=[])
        return claim_record
    names = list(gate_records) if models is None else list(models)
    missing = [m for m in names if m not in gate_records]
    if missing:
        raise KeyError(f"claim {claim_record.get('id')!r} rests on model(s) {missing} that have no gate")
    records = [gate_records[m] for m in names]
    claim_record["gate_models"] = names
    claim_record["gate_records"] = [dict(r) for r in records]
    missed = [r for r in records if not r["met"]]
    claim_record["gates"] = "missed" if missed else "met"
    if missed and claim_record["verdict"] in ("reproduced", "not reproduced"):
        claim_record["verdict"] = "inconclusive"
        claim_record["measured"] = ("below gate: " + "; ".join(shortfall(r) for r in missed)
                                    + " | " + claim_record["measured"])
    return claim_record


def init_cosine(kernel, kernel_init) -> float:
    """Cosine similarity between a trained kernel and the same kernel at initialisation, over
    all its entries (scale-free, so a layer followed by batch norm, whose scale does not matter,
    is judged by its direction only). 1.0: unchanged; near 0: unrelated to its start."""
    a = np.asarray(kernel, np.float64).ravel()
    b = np.asarray(kernel_init, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"kernel shapes differ: {np.shape(kernel)} vs {np.shape(kernel_init)}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        raise ValueError("init_cosine of an all-zero kernel is undefined")
    return float(a @ b / (na * nb))


def gate_table(gate_records: Mapping[str, Mapping]) -> list[dict]:
    """Rows ``{"model", "gate", "met", "source"}`` for a study section of the report."""
    return [{"model": m, "gate": describe(r), "met": r["met"], "source": r["source"]}
            for m, r in gate_records.items()]
