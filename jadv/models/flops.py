"""Model FLOPs counted on the jaxpr: 2 x the multiply-adds of every convolution and matrix product.

XLA's cost analysis misses convolutions that run as cuDNN custom calls on GPUs, so the count is
taken from the traced program instead; it is the same on every backend.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _eqn_flops(eqn) -> float:
    """Multiply-add FLOPs (2 per MAC) of one convolution or matrix product in a jaxpr."""
    if eqn.primitive.name == "conv_general_dilated":
        out = eqn.outvars[0].aval.shape
        rhs = eqn.invars[1].aval.shape
        spec = eqn.params["dimension_numbers"].rhs_spec   # (out feature, in feature, spatial...)
        k = np.prod([rhs[i] for i in spec[1:]])            # in-features-per-group x kernel area
        return 2.0 * np.prod(out) * k
    if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return 2.0 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs[i] for i in contract])
    return 0.0


def jaxpr_flops(jaxpr) -> float:
    """FLOPs of a jaxpr, descending into the bodies of pjit / remat / scan / cond."""
    total = 0.0
    for eqn in jaxpr.eqns:
        total += _eqn_flops(eqn)
        for param in eqn.params.values():
            for p in (param if isinstance(param, (tuple, list)) else (param,)):
                inner = getattr(p, "jaxpr", p)   # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns") and hasattr(inner, "outvars"):
                    total += jaxpr_flops(inner)
    return total


def forward_flops(model, variables, shape) -> float:
    """FLOPs of one inference-mode forward pass per image for inputs of ``shape`` = (B, H, W, C)."""
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, jnp.zeros(shape, jnp.float32))
    return jaxpr_flops(jaxpr.jaxpr) / shape[0]
