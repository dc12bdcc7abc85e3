"""Analyses of what adversarial training does to a model.

Curvature and landscapes (study 5), first-layer channel distances (study 1), filter metrics
(study 4), saliency, large-eps examples, robust features and the Tsipras et al. theory (study 2).
Each module lists its public names in ``__all__``; they are re-exported here.
"""
from jadv.analysis.channels import *  # noqa: F401,F403
from jadv.analysis.curvature import *  # noqa: F401,F403
from jadv.analysis.features import *  # noqa: F401,F403
from jadv.analysis.filters import *  # noqa: F401,F403
from jadv.analysis.landscape import *  # noqa: F401,F403
from jadv.analysis.large_eps import *  # noqa: F401,F403
from jadv.analysis.logistic import *  # noqa: F401,F403
from jadv.analysis.saliency import *  # noqa: F401,F403
from jadv.analysis.tsipras import *  # noqa: F401,F403

from jadv.analysis import (channels, curvature, features, filters, landscape, large_eps,  # noqa: E402
                           logistic, saliency, tsipras)

__all__ = [name for module in (channels, curvature, features, filters, landscape, large_eps,
                               logistic, saliency, tsipras) for name in module.__all__]
