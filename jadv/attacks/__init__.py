"""jadv.attacks: pure, jit-able attacks on any ``logits_fn`` and robust-accuracy evaluation.

Attacks take ``logits_fn(x[B, H, W, C]) -> logits[B, K]``, images in [0, 1], int labels, keyword-only
hyperparameters and an explicit PRNG ``key``; they never jit themselves and return ``x_adv`` inside
the eps-ball and the [0, 1] box.
"""
from jadv.attacks.apgd import apgd, apgd_checkpoints, apgd_targeted
from jadv.attacks.autoattack import autoattack, standard_attacks
from jadv.attacks.eps_curve import eps_curve_flags, robust_accuracy_curve
from jadv.attacks.evaluate import AttackCheckError, check_perturbations, robust_accuracy
from jadv.attacks.fab import box_hyperplane_projection, fab_targeted
from jadv.attacks.fgsm import fgsm
from jadv.attacks.losses import cross_entropy, dlr, dlr_targeted, get_loss, kl_divergence, margin
from jadv.attacks.masking_checks import masking_flags
from jadv.attacks.pgd import pgd, pgd_generic
from jadv.attacks.projections import INITS, init_point, per_example_norm, project
from jadv.attacks.specs import make_attack
from jadv.attacks.square import square, square_p_schedule

__all__ = [
    "fgsm", "pgd", "pgd_generic", "apgd", "apgd_targeted", "apgd_checkpoints", "square", "square_p_schedule",
    "fab_targeted", "box_hyperplane_projection", "autoattack", "standard_attacks", "robust_accuracy",
    "robust_accuracy_curve", "check_perturbations", "AttackCheckError", "make_attack", "masking_flags", "eps_curve_flags",
    "cross_entropy", "margin", "dlr", "dlr_targeted", "kl_divergence", "get_loss",
    "project", "init_point", "per_example_norm", "INITS",
]
