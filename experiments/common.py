"""Shared plumbing of the study scripts: claims, outputs, resumable parts.

A study is a module in ``experiments/`` with ``run(config, workdir) -> dict`` and a config file
``configs/<study>.py`` whose ``get_config(profile)`` takes a profile ("smoke", "default", "cpu",
"full"). ``run`` writes into ``workdir``: ``results.json`` (numbers), PNG figures and
``claims.json``, a list of :func:`claim` records that ``reproduce.py`` gathers into its
claims table. Expensive parts are cached with :func:`cached_part`, so a killed study resumes
without redoing finished parts.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from jadv.studies.common import (VERDICTS, batched, cached_part, claim, finish, logits_fn_of,  # noqa: E402,F401
                                 monotone, read_json, to_jsonable, train_model, write_json)


def load_config(name: str, profile: str):
    """``configs/<name>.py:get_config(profile)``, loaded by path (no clash with study modules)."""
    import importlib.util

    path = os.path.join(ROOT, "configs", f"{name}.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config file {path}")
    spec = importlib.util.spec_from_file_location(f"jadv_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(profile)


def study_main(study: str, run, doc: str, argv=None, extra_args=None) -> dict:
    """The command line shared by the study scripts.

    ``python experiments/<study>.py --profile P [--workdir DIR] [--data_dir D]``; ``extra_args``
    is an optional ``(add(parser), apply(args, config))`` pair for study-specific flags.
    """
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="default", choices=("smoke", "default", "cpu", "full"))
    p.add_argument("--workdir", default=None, help="output directory (default runs/<study>/<profile>)")
    p.add_argument("--data_dir", default=None, help="raw data directory (default $JADV_DATA_DIR or ../shared/data)")
    if extra_args:
        extra_args[0](p)
    a = p.parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    config = load_config(study, a.profile)
    if a.data_dir:
        config.data_dir = a.data_dir
    if extra_args:
        extra_args[1](a, config)
    record = run(config, a.workdir or os.path.join("runs", study, a.profile))
    for c in record["claims"]:
        print(f"[{c['verdict']}] {c['claim']}: {c['measured']}")
    return record


