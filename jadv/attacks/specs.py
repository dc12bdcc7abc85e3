"""Attack specifications for the evaluation drivers (:func:`robust_accuracy`, :func:`autoattack`).

An attack is given either as

* a callable ``attack(logits_fn, x, y, key) -> x_adv`` (its name is ``attack.__name__``, or the
  ``name`` attribute when it has one), or
* a dict ``{"name": <registered name>, **keyword arguments}``, e.g.
  ``{"name": "pgd", "eps": 0.3, "step_size": 0.01, "steps": 40}``; an optional ``"label"`` key sets the
  name used in reports (default: the registered name).

Registered names: "fgsm", "pgd", "apgd" (= "apgd-ce"), "apgd-ce", "apgd-dlr", "apgd-t", "square", "fab-t".
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from jadv.attacks.apgd import apgd, apgd_targeted
from jadv.attacks.fab import fab_targeted
from jadv.attacks.fgsm import fgsm
from jadv.attacks.pgd import pgd
from jadv.attacks.square import square

__all__ = ["ATTACKS", "make_attack"]


def _fgsm(logits_fn, x, y, key, **kw):
    if kw.get("random_start"):
        kw["key"] = key
    return fgsm(logits_fn, x, y, **kw)


ATTACKS = {
    "fgsm": _fgsm,
    "pgd": lambda f, x, y, key, **kw: pgd(f, x, y, key=key, **kw),
    "apgd": lambda f, x, y, key, **kw: apgd(f, x, y, key=key, **kw),
    "apgd-ce": lambda f, x, y, key, **kw: apgd(f, x, y, key=key, **{"loss": "ce", **kw}),
    "apgd-dlr": lambda f, x, y, key, **kw: apgd(f, x, y, key=key, **{"loss": "dlr", **kw}),
    "apgd-t": lambda f, x, y, key, **kw: apgd_targeted(f, x, y, key=key, **kw),
    "square": lambda f, x, y, key, **kw: square(f, x, y, key=key, **kw),
    "fab-t": lambda f, x, y, key, **kw: fab_targeted(f, x, y, key=key, **kw),
}


def make_attack(spec: dict | Callable) -> tuple[str, Callable]:
    """``spec -> (name, attack)`` with ``attack(logits_fn, x, y, key) -> x_adv``; see module docstring.

    Raises TypeError for something that is neither a dict nor a callable, ValueError for an unknown
    name or a dict without "name".
    """
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"an attack spec dict needs a 'name' key (one of {sorted(ATTACKS)}), got {spec!r}")
        kw = dict(spec)
        name = kw.pop("name")
        label = kw.pop("label", name)
        if name not in ATTACKS:
            raise ValueError(f"unknown attack {name!r}; allowed: {', '.join(map(repr, sorted(ATTACKS)))}")
        if "key" in kw:
            raise ValueError("do not put 'key' in an attack spec: the driver passes a fresh key to each attack")
        fn = functools.partial(ATTACKS[name], **kw)
        return str(label), fn
    if callable(spec):
        name = getattr(spec, "name", None) or getattr(spec, "__name__", None) or type(spec).__name__
        return str(name), spec
    raise TypeError(f"an attack must be a callable (logits_fn, x, y, key) -> x_adv or a dict spec, "
                    f"got {type(spec).__name__}")
