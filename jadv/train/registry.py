"""The registry of training objectives, by name (``config.objective.name``).

It sits below both :mod:`jadv.train.objectives` (which registers the methods) and
:mod:`jadv.train.awp` (whose objective wraps a registered inner method), so neither has to import
the other inside a function.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["OBJECTIVES", "register", "config_value"]

# name -> factory(cfg) -> Objective
OBJECTIVES: dict[str, Callable] = {}


def register(name: str) -> Callable:
    """Decorator adding an objective factory ``factory(cfg) -> Objective`` under ``name``."""

    def wrap(factory):
        OBJECTIVES[name] = factory
        return factory

    return wrap


def config_value(cfg: Any, name: str, default: Any = None) -> Any:
    """``cfg[name]`` from a ConfigDict or dict, ``default`` when it is missing or None."""
    value = cfg.get(name, None) if hasattr(cfg, "get") else None
    return default if value is None else value
