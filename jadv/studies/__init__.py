"""The five studies jadv reproduces, as library code (see :mod:`jadv.studies.common`).

``from jadv.studies import tradeoff; record = tradeoff.run(config, workdir)``; the configs are
``configs/<study>.py:get_config(profile)`` and the command lines ``experiments/<study>.py``.
"""
