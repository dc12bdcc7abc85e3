"""Training objectives: each method is data in the config (``config.objective.name``).

An objective is an :class:`Objective`, two pure functions and optional hooks:

- ``prepare(model, params, batch_stats, x, y, key, epoch) -> (inputs, batch_stats)`` crafts what
  the loss needs (e.g. ``{"x_adv": ...}``) and is **not** differentiated with respect to the
  parameters (attacks return stop-gradient inputs). It returns the batch statistics because
  an attack run in ``attack_bn_mode="train"`` updates them.
- ``loss(model, params, batch_stats, x, y, inputs, epoch) -> (loss, (batch_stats, metrics))``
  is the scalar mean loss the step differentiates with respect to ``params``.
- ``perturb(model, params, batch_stats, x, y, inputs, epoch) -> v`` (AWP only): a weight
  perturbation added before the gradient and removed after the optimizer update.
- ``replays > 1`` / ``init_extra`` (Free-AT only): the step replays each batch and keeps a
  persistent perturbation in ``state.extra``.

Calling an objective, ``objective(model, params, batch_stats, x, y, key, epoch=0.0)``, runs
``prepare`` then ``loss``. ``model`` is a :class:`~jadv.train.model_fns.ModelFns`; x is
``[B, H, W, C]`` float32 in [0, 1] (already augmented); y ``[B]`` int32; ``key`` a PRNG key
already folded with the step; ``epoch`` the fractional epoch ``step / steps_per_epoch`` (for
eps warm-up and AWP warm-up). ``metrics`` is a dict of scalars logged to ``metrics.jsonl``.

Methods (``make_objective(config.objective)``; the exact recipes are in
robustness-libraries.md section 4):

=============  =====================================================================  ==============
name           loss                                                                   attack BN mode
=============  =====================================================================  ==============
standard       CE(f(x), y)                                                            --
pgd_at         CE(f(x_adv), y), x_adv by PGD (Madry et al. 2018)                      train
fgsm_rs        CE(f(x+delta), y), delta: uniform start + one 1.25-eps sign step       train
               (Wong et al. 2020, "Fast is better than free")
free_at        CE(f(x+delta), y), delta persistent, m replays (Shafahi et al. 2019)   train (always)
trades         CE(f(x), y) + beta KL(p(x) || p(x_adv)) (Zhang et al. 2019)            eval
mart           BCE(f(x_adv), y) + beta KL(p(x)||p(x_adv)) (1 - p_y(x)) (Wang 2020)    eval
alp            a CE(f(x)) + (1-a) CE(f(x_adv)) + lambda ||z(x) - z(x_adv)||^2          eval
               (Kannan et al. 2018)
ratio          CE on a batch whose first round(r B) rows are clean, the rest          train
               adversarial (Xie & Yuille 2020; ART's ``ratio``)
mbn            as ratio, clean rows through BN set "clean", adversarial rows through  eval
               BN set "adv" (Xie & Yuille 2020, mixture BN)
advprop        CE(f_main(x), y) + CE(f_aux(x_adv), y), attack through the auxiliary   eval
               BN (Xie et al. 2020)
awp            pgd_at or trades at adversarially perturbed weights (Wu et al. 2020)   as the inner
=============  =====================================================================  ==============

Attack BN mode defaults (``objective.attack_bn_mode``, written into config.json and the run's
``setup`` record): TRADES and MART attack in "eval" mode as their reference code does. PGD-AT,
FGSM-RS and the clean/adv ratio attack in "train" mode (batch statistics, running statistics
updated by every attack forward) because that is what fast_adversarial and
robust_overfitting/AWP do, and those are the codes behind the published PGD-AT (Rice et al.
2020) and FGSM-RS numbers our ``full`` configs reproduce; Wong et al. measured the difference
for FGSM-RS (44.90 train vs 44.34 eval PGD accuracy). ALP, MBN and AdvProp use "eval" (the
community AdvProp recipe). Free-AT has no separate attack: its perturbation is updated from the
training backward pass, so the mode is "train" by construction.

Losses in the training loss always run the model in train mode (batch statistics, running
statistics updated), in the order of the reference code.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from jadv._checks import check_bn_mode, check_nonnegative, check_norm, check_positive_int
from jadv.attacks.losses import cross_entropy, kl_divergence
from jadv.attacks.projections import check_init
from jadv.train.adversarial import craft, warmup_factor
from jadv.train.awp import make_awp
from jadv.train.model_fns import ATTACK_BN_MODES
from jadv.train.registry import OBJECTIVES, register
from jadv.train.registry import config_value as _get

# Constants of the MART reference code (YisenWang/MART mart.py), section 4.10.
MART_ONE_PLUS = 1.0001
MART_KL_ONE_PLUS = 1.0000001
MART_LOG_EPS = 1e-12


# -- small losses ---------------------------------------------------------------------------------
def accuracy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Share of rows whose argmax equals the label. logits [B,K], y [B] -> scalar."""
    return jnp.mean(jnp.argmax(logits, -1) == y)


def mart_loss(clean_logits: jax.Array, adv_logits: jax.Array, y: jax.Array, *, beta: float) -> jax.Array:
    """The MART loss (Wang et al. 2020, "Improving Adversarial Robustness Requires Revisiting
    Misclassified Examples"), with the constants of the reference code.

    ``CE(z', y) + mean(-log(1.0001 - p'_{y''} + 1e-12)) + beta * mean(KL(p || p') (1.0000001 - p_y))``
    where ``p = softmax(z)``, ``p' = softmax(z')``, ``y''`` the most likely wrong class under
    ``p'`` and the KL is ``sum_k p_k (log p_k - log(p'_k + 1e-12))``. Gradients flow through both
    logits. clean_logits, adv_logits ``[B, K]``, y ``[B]`` -> scalar.
    """
    adv_probs = jax.nn.softmax(adv_logits, axis=-1)
    top2 = jax.lax.top_k(adv_probs, 2)[1]                      # [B, 2]: best, second best
    new_y = jnp.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    p_wrong = jnp.take_along_axis(adv_probs, new_y[:, None], axis=1)[:, 0]
    loss_adv = jnp.mean(cross_entropy(adv_logits, y)) + jnp.mean(
        -jnp.log(MART_ONE_PLUS - p_wrong + MART_LOG_EPS))
    nat_probs = jax.nn.softmax(clean_logits, axis=-1)
    true_probs = jnp.take_along_axis(nat_probs, y[:, None], axis=1)[:, 0]
    kl = jnp.sum(xlogy(nat_probs, nat_probs) - nat_probs * jnp.log(adv_probs + MART_LOG_EPS), axis=1)
    loss_robust = jnp.mean(kl * (MART_KL_ONE_PLUS - true_probs))
    return loss_adv + beta * loss_robust


# -- the Objective container ----------------------------------------------------------------------
def _no_prepare(model, params, batch_stats, x, y, key, epoch):
    return None, batch_stats


@dataclasses.dataclass(frozen=True)
class Objective:
    """A training method: ``prepare`` (not differentiated) + ``loss`` (+ optional hooks).

    See the module docstring for the signatures. ``settings`` are the resolved hyperparameters
    (method defaults filled in), logged by the loop.
    """

    name: str
    loss: Callable
    prepare: Callable = _no_prepare
    perturb: Callable | None = None
    replays: int = 1
    init_extra: Callable | None = None
    update_extra: Callable | None = None
    needs_epoch: bool = False
    settings: dict = dataclasses.field(default_factory=dict)

    def __call__(self, model, params, batch_stats, x, y, key, epoch=0.0):
        """``prepare`` then ``loss``: ``-> (loss, (batch_stats, metrics))``."""
        epoch = jnp.asarray(epoch, jnp.float32)
        inputs, stats = self.prepare(model, params, batch_stats, x, y, key, epoch)
        return self.loss(model, params, stats, x, y, inputs, epoch)


def as_objective(objective: Objective | Callable) -> Objective:
    """An :class:`Objective`, or a plain ``f(model, params, batch_stats, x, y, key)`` wrapped."""
    if isinstance(objective, Objective):
        return objective
    if not callable(objective):
        raise TypeError(f"objective must be an Objective or a callable, got {type(objective).__name__}")

    def prepare(model, params, batch_stats, x, y, key, epoch):
        return key, batch_stats

    def loss(model, params, batch_stats, x, y, key, epoch):
        return objective(model, params, batch_stats, x, y, key)

    return Objective(name=getattr(objective, "__name__", "custom"), loss=loss, prepare=prepare)


# -- config helpers -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """The inner attack of a method, resolved from the config."""

    eps: float
    step_size: float
    steps: int
    norm: str
    init: str
    bn_mode: str
    eps_warmup_epochs: float

    def at(self, epoch):
        """(eps, step_size) at ``epoch`` (both scaled by the linear warm-up factor)."""
        f = warmup_factor(epoch, self.eps_warmup_epochs)
        return self.eps * f, self.step_size * f

    def as_dict(self) -> dict:
        return {"eps": self.eps, "step_size": self.step_size, "steps": self.steps, "norm": self.norm,
                "init": self.init, "attack_bn_mode": self.bn_mode,
                "eps_warmup_epochs": self.eps_warmup_epochs}


def attack_settings(cfg, *, name: str, init: str, bn_mode: str, steps: int | None = 10,
                    step_size_factor: float | None = None) -> AttackSettings:
    """Resolve ``eps``, ``step_size``, ``steps``, ``norm``, ``init``, ``attack_bn_mode`` and
    ``eps_warmup_epochs`` from ``cfg`` with the method's defaults; raise on bad values.

    A default "uniform" start becomes "uniform_radius" for ``norm="l2"`` (uniform is Linf-only).

    The default step size is ``step_size_factor * eps`` when given (FGSM-RS: 1.25), else
    ``2.5 * eps / steps`` (Madry et al.'s rule, 2/255 for eps 8/255 and 10 steps).
    """
    eps = _get(cfg, "eps")
    if eps is None:
        raise ValueError(f"objective {name!r} needs objective.eps (e.g. 0.3 for MNIST, 8/255 for CIFAR-10)")
    eps = float(eps)
    check_nonnegative("objective.eps", eps)
    norm = _get(cfg, "norm", "linf")
    check_norm(norm)
    if norm == "linf" and eps > 1.0:
        raise ValueError(f"objective.eps={eps} is beyond the [0, 1] box for norm 'linf'")
    steps = check_positive_int("objective.steps", _get(cfg, "steps", steps))
    default_step = step_size_factor * eps if step_size_factor is not None else 2.5 * eps / steps
    step_size = float(_get(cfg, "step_size", default_step))
    check_nonnegative("objective.step_size", step_size)
    if init == "uniform" and norm == "l2":
        init = "uniform_radius"   # the L2 random start of robust_overfitting/AWP (section 4.3)
    init = _get(cfg, "init", init)
    check_init(init, norm)
    bn_mode = _get(cfg, "attack_bn_mode", bn_mode)
    check_bn_mode("objective.attack_bn_mode", bn_mode, ATTACK_BN_MODES)
    warm = float(_get(cfg, "eps_warmup_epochs", 0.0))
    check_nonnegative("objective.eps_warmup_epochs", warm)
    return AttackSettings(eps, step_size, steps, norm, init, bn_mode, warm)


def _ce_attack_loss(y):
    return lambda logits: cross_entropy(logits, y)


def _float_in(name, value, lo, hi):
    value = float(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value}")
    return value


def _check_dual_bn(batch_stats, params, name):
    """Raise unless the model has dual (mixture) batch norm, i.e. ``bn_adv`` variables."""
    found = False
    for tree in (params, batch_stats):
        for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if any(getattr(k, "key", None) == "bn_adv" for k in path):
                found = True
    if not found:
        raise ValueError(f"objective {name!r} needs a model with norm='dual_batch' (BN sets 'clean' and "
                         "'adv'); this model has no 'bn_adv' variables. Set config.model.kwargs.norm = "
                         "'dual_batch'.")


# -- objectives -----------------------------------------------------------------------------------
@register("standard")
def standard(cfg) -> Objective:
    """Standard (clean) training with cross-entropy; optional ``label_smoothing``."""
    smoothing = float(_get(cfg, "label_smoothing", 0.0))

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        logits, new_stats = model.logits(params, batch_stats, x, train=True)
        value = jnp.mean(cross_entropy(logits, y, smoothing))
        return value, (new_stats, {"loss": value, "accuracy": accuracy(logits, y)})

    return Objective(name="standard", loss=loss, settings={"label_smoothing": smoothing})


def _ce_adv_prepare(att: AttackSettings, bn_set: str = "clean"):
    def prepare(model, params, batch_stats, x, y, key, epoch):
        eps, step = att.at(epoch)
        x_adv, stats = craft(model, params, batch_stats, x, _ce_attack_loss(y), key=key, eps=eps,
                             step_size=step, steps=att.steps, norm=att.norm, init=att.init,
                             bn_mode=att.bn_mode, bn_set=bn_set)
        return {"x_adv": x_adv, "eps": eps}, stats

    return prepare


def _adv_ce_loss(smoothing):
    def loss(model, params, batch_stats, x, y, inputs, epoch):
        logits, new_stats = model.logits(params, batch_stats, inputs["x_adv"], train=True)
        value = jnp.mean(cross_entropy(logits, y, smoothing))
        return value, (new_stats, {"loss": value, "adv_accuracy": accuracy(logits, y), "eps": inputs["eps"]})

    return loss


@register("pgd_at")
def pgd_at(cfg) -> Objective:
    """PGD adversarial training (Madry et al. 2018): ``mean CE(f(x_adv), y)``.

    x_adv: PGD with ``eps``, ``step_size`` (default 2.5 eps / steps), ``steps`` (default 10),
    ``norm``, ``init`` (default "uniform" random start), ``attack_bn_mode`` (default "train").
    """
    att = attack_settings(cfg, name="pgd_at", init="uniform", bn_mode="train")
    smoothing = float(_get(cfg, "label_smoothing", 0.0))
    return Objective(name="pgd_at", prepare=_ce_adv_prepare(att), loss=_adv_ce_loss(smoothing),
                     needs_epoch=att.eps_warmup_epochs > 0,
                     settings={**att.as_dict(), "label_smoothing": smoothing})


@register("fgsm_rs")
def fgsm_rs(cfg) -> Objective:
    """FGSM with random start (Wong et al. 2020, "Fast is better than free", section 4.12).

    ``delta ~ U(-eps, eps)``, clamped so x + delta is in [0, 1]; one gradient of CE at x + delta;
    ``delta <- clip(delta + alpha sign(g), -eps, eps)``, clamped to the box again; train on
    ``CE(f(x + delta), y)`` (no clean term). ``alpha = objective.step_size``, default 1.25 eps.
    ``attack_bn_mode`` default "train" (the model stays in train mode in the reference).
    The catastrophic-overfitting early stop lives in the loop (``config.early_stop``).
    """
    if _get(cfg, "steps", 1) != 1:
        raise ValueError(f"fgsm_rs takes exactly one gradient step; objective.steps must be 1 or None, "
                         f"got {_get(cfg, 'steps')}")
    init = _get(cfg, "init", "uniform")
    if init != "uniform":
        raise ValueError(f"fgsm_rs starts from a uniform random point; objective.init must be 'uniform' "
                         f"or None, got {init!r}")
    att = attack_settings(cfg, name="fgsm_rs", init="uniform", bn_mode="train", steps=1,
                          step_size_factor=1.25)
    if att.norm != "linf":
        raise ValueError(f"fgsm_rs is defined for norm 'linf' only, got {att.norm!r}")
    smoothing = float(_get(cfg, "label_smoothing", 0.0))
    return Objective(name="fgsm_rs", prepare=_ce_adv_prepare(att), loss=_adv_ce_loss(smoothing),
                     needs_epoch=att.eps_warmup_epochs > 0,
                     settings={**att.as_dict(), "label_smoothing": smoothing})


@register("free_at")
def free_at(cfg) -> Objective:
    """Free adversarial training (Shafahi et al. 2019, "Adversarial Training for Free!", section 4.13).

    A perturbation ``delta`` (batch-shaped, zero at the start, kept in ``state.extra["delta"]``)
    persists across minibatches. Each minibatch is replayed ``objective.replays`` (m, default 8)
    times; each replay is one optimizer step whose single backward pass gives the gradient with
    respect to the parameters and to delta, then ``delta <- clip(delta + eps sign(g_delta), -eps,
    eps)`` and ``delta <- clip(delta, -x, 1 - x)`` (so x + delta is in [0, 1]). The loss is
    ``CE(f(x + delta), y)`` with x + delta unclipped, as in fast_adversarial's ``train_free.py``
    (only the first replay of a new batch can leave the box, by at most eps).

    Counting: one train step = one minibatch = m optimizer updates (the LR schedule runs over
    ``num_epochs * steps_per_epoch * m`` updates); ``config.num_epochs`` counts passes over the
    data, so a Free-AT run costs about as much as ``m * num_epochs`` epochs of standard training.
    To match a standard-training budget of E epochs, set ``num_epochs = E / m`` (the "epochs
    divided by m" of the paper); fast_adversarial's recipe is 10 passes x 8 replays.
    """
    eps = _get(cfg, "eps")
    if eps is None:
        raise ValueError("objective 'free_at' needs objective.eps")
    eps = float(eps)
    check_nonnegative("objective.eps", eps)
    if eps > 1.0:
        raise ValueError(f"objective.eps={eps} is beyond the [0, 1] box")
    if _get(cfg, "norm", "linf") != "linf":
        raise ValueError(f"free_at is defined for norm 'linf' only, got {_get(cfg, 'norm')!r}")
    replays = check_positive_int("objective.replays", _get(cfg, "replays", 8))
    warm = float(_get(cfg, "eps_warmup_epochs", 0.0))
    check_nonnegative("objective.eps_warmup_epochs", warm)
    smoothing = float(_get(cfg, "label_smoothing", 0.0))

    def loss(model, params, batch_stats, x, y, delta, epoch):
        logits, new_stats = model.logits(params, batch_stats, x + delta, train=True)
        value = jnp.mean(cross_entropy(logits, y, smoothing))
        return value, (new_stats, {"loss": value, "adv_accuracy": accuracy(logits, y)})

    def init_extra(batch_shape):
        return {"delta": jnp.zeros(tuple(batch_shape), jnp.float32)}

    def update_extra(delta, g_delta, x, epoch):
        e = eps * warmup_factor(epoch, warm)
        delta = jnp.clip(delta + e * jnp.sign(g_delta), -e, e)
        return jnp.clip(delta, -x, 1.0 - x)

    return Objective(name="free_at", loss=loss, replays=replays, init_extra=init_extra,
                     update_extra=update_extra, needs_epoch=warm > 0,
                     settings={"eps": eps, "replays": replays, "norm": "linf", "attack_bn_mode": "train",
                               "eps_warmup_epochs": warm, "label_smoothing": smoothing})


def _trades_prepare(att: AttackSettings):
    def prepare(model, params, batch_stats, x, y, key, epoch):
        eps, step = att.at(epoch)
        clean_fn = model.logits_fn(params, batch_stats,
                                   bn_mode="eval" if att.bn_mode == "eval" else "train_no_update")
        clean = jax.lax.stop_gradient(clean_fn(x))
        x_adv, stats = craft(model, params, batch_stats, x, lambda lg: kl_divergence(clean, lg), key=key,
                             eps=eps, step_size=step, steps=att.steps, norm=att.norm, init=att.init,
                             bn_mode=att.bn_mode)
        return {"x_adv": x_adv, "eps": eps}, stats

    return prepare


@register("trades")
def trades(cfg) -> Objective:
    """TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
    Accuracy", section 4.9).

    Inner max of ``KL(p(x) || p(x'))`` from ``x + 0.001 N(0, I)`` by sign steps, Linf projection and
    [0, 1] clip, model in eval BN mode (``attack_bn_mode`` default "eval"); defaults ``steps`` 10,
    ``step_size`` 2.5 eps/steps unless set (the reference uses 0.007 for eps 0.031).
    Outer loss ``mean CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x'_i))`` (batchmean), ``beta``
    default 6, with gradients through both p(x) and p(x') (no stop-gradient). The loss runs the
    model in train mode in the reference order: f(x), f(x'), f(x) (three running-statistics
    updates; the two clean passes give identical logits).
    """
    att = attack_settings(cfg, name="trades", init="normal_0.001", bn_mode="eval")
    beta = float(_get(cfg, "beta", 6.0))
    check_nonnegative("objective.beta", beta)

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        clean, stats = model.logits(params, batch_stats, x, train=True)
        adv, stats = model.logits(params, stats, inputs["x_adv"], train=True)
        _, stats = model.logits(params, stats, x, train=True)   # the reference's second clean pass
        natural = jnp.mean(cross_entropy(clean, y))
        robust = jnp.mean(kl_divergence(clean, adv))
        value = natural + beta * robust
        return value, (stats, {"loss": value, "natural_loss": natural, "robust_loss": robust,
                               "accuracy": accuracy(clean, y), "adv_accuracy": accuracy(adv, y),
                               "eps": inputs["eps"]})

    return Objective(name="trades", prepare=_trades_prepare(att), loss=loss,
                     needs_epoch=att.eps_warmup_epochs > 0, settings={**att.as_dict(), "beta": beta})


@register("mart")
def mart(cfg) -> Objective:
    """MART (Wang et al. 2020, section 4.10): x' by CE-PGD with the TRADES attack settings
    (``init`` "normal_0.001", ``attack_bn_mode`` "eval"), loss :func:`mart_loss` with
    ``beta`` (default 6; the reference's ResNet-18 recipe uses 5). Train-mode passes f(x), f(x').
    """
    att = attack_settings(cfg, name="mart", init="normal_0.001", bn_mode="eval")
    beta = float(_get(cfg, "beta", 6.0))
    check_nonnegative("objective.beta", beta)

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        clean, stats = model.logits(params, batch_stats, x, train=True)
        adv, stats = model.logits(params, stats, inputs["x_adv"], train=True)
        value = mart_loss(clean, adv, y, beta=beta)
        return value, (stats, {"loss": value, "accuracy": accuracy(clean, y),
                               "adv_accuracy": accuracy(adv, y), "eps": inputs["eps"]})

    return Objective(name="mart", prepare=_ce_adv_prepare(att), loss=loss,
                     needs_epoch=att.eps_warmup_epochs > 0, settings={**att.as_dict(), "beta": beta})


@register("alp")
def alp(cfg) -> Objective:
    """Adversarial logit pairing (Kannan et al. 2018; analysed by Engstrom et al. 2018).

    ``a CE(z(x), y) + (1 - a) CE(z(x_adv), y) + lambda mean_i ||z(x_i) - z(x_adv_i)||_2^2`` with
    ``a = objective.clean_weight`` (default 0.5: a minibatch half clean, half adversarial) and
    ``lambda = objective.alp_weight`` (default 0.5; Kannan et al. tune it per dataset). Both
    logits come from one train-mode pass over the concatenated batch [x; x_adv] (mixed BN batch),
    and the pairing term is differentiated through both. x_adv: CE-PGD, ``attack_bn_mode``
    default "eval".
    """
    att = attack_settings(cfg, name="alp", init="uniform", bn_mode="eval")
    lam = float(_get(cfg, "alp_weight", 0.5))
    check_nonnegative("objective.alp_weight", lam)
    a = _float_in("objective.clean_weight", _get(cfg, "clean_weight", 0.5), 0.0, 1.0)

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        b = x.shape[0]
        both, stats = model.logits(params, batch_stats, jnp.concatenate([x, inputs["x_adv"]]), train=True)
        clean, adv = both[:b], both[b:]
        ce_c, ce_a = jnp.mean(cross_entropy(clean, y)), jnp.mean(cross_entropy(adv, y))
        pair = jnp.mean(jnp.sum(jnp.square(clean - adv), axis=-1))
        value = a * ce_c + (1.0 - a) * ce_a + lam * pair
        return value, (stats, {"loss": value, "pairing_loss": pair, "accuracy": accuracy(clean, y),
                               "adv_accuracy": accuracy(adv, y), "eps": inputs["eps"]})

    return Objective(name="alp", prepare=_ce_adv_prepare(att), loss=loss,
                     needs_epoch=att.eps_warmup_epochs > 0,
                     settings={**att.as_dict(), "alp_weight": lam, "clean_weight": a})


def _split_prepare(att: AttackSettings, ratio: float, bn_set: str):
    """Attack rows ``round(ratio * B):`` of the batch; the first rows stay clean."""

    def prepare(model, params, batch_stats, x, y, key, epoch):
        n_clean = int(round(ratio * x.shape[0]))
        eps, step = att.at(epoch)
        if n_clean == x.shape[0]:
            return {"x_adv": x[:0], "n_clean": n_clean, "eps": eps}, batch_stats
        x_adv, stats = craft(model, params, batch_stats, x[n_clean:], _ce_attack_loss(y[n_clean:]), key=key,
                             eps=eps, step_size=step, steps=att.steps, norm=att.norm, init=att.init,
                             bn_mode=att.bn_mode, bn_set=bn_set)
        return {"x_adv": x_adv, "n_clean": n_clean, "eps": eps}, stats

    return prepare


@register("ratio")
def ratio_objective(cfg) -> Objective:
    """Clean/adversarial mixing (Xie & Yuille 2020; ART's ``AdversarialTrainer(ratio=...)``).

    The first ``round(r B)`` rows of each batch stay clean, the others are replaced by PGD
    examples (attack settings as :func:`pgd_at`, same default BN mode "train"); the loss is
    ``mean CE`` over the whole batch in one train-mode pass (one BN batch). ``r =
    objective.ratio`` in [0, 1] (default 0.5): r = 0 is exactly ``pgd_at`` and r = 1 exactly
    ``standard`` (same keys, same loss and gradients).
    """
    att = attack_settings(cfg, name="ratio", init="uniform", bn_mode="train")
    r = _float_in("objective.ratio", _get(cfg, "ratio", 0.5), 0.0, 1.0)
    smoothing = float(_get(cfg, "label_smoothing", 0.0))

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        n = inputs["n_clean"]
        if n == 0:
            batch = inputs["x_adv"]
        elif n == x.shape[0]:
            batch = x
        else:
            batch = jnp.concatenate([x[:n], inputs["x_adv"]])
        logits, stats = model.logits(params, batch_stats, batch, train=True)
        value = jnp.mean(cross_entropy(logits, y, smoothing))
        metrics = {"loss": value, "accuracy": accuracy(logits, y), "eps": inputs["eps"]}
        if n < x.shape[0]:
            metrics["adv_accuracy"] = accuracy(logits[n:], y[n:])
        return value, (stats, metrics)

    return Objective(name="ratio", prepare=_split_prepare(att, r, "clean"), loss=loss,
                     needs_epoch=att.eps_warmup_epochs > 0,
                     settings={**att.as_dict(), "ratio": r, "label_smoothing": smoothing})


@register("mbn")
def mbn(cfg) -> Objective:
    """Mixture batch norm (Xie & Yuille 2020, "Intriguing Properties of Adversarial Training at
    Scale"): as :func:`ratio_objective`, but the clean rows are normalised by BN set "clean" and
    the adversarial rows by BN set "adv" (separate train-mode passes, so each set's running
    statistics see only its own data; the attack runs through the "adv" set). Loss: mean CE over
    all B rows. Needs ``norm="dual_batch"``. Evaluate through either set with
    ``config.eval_bn_set``. ``attack_bn_mode`` default "eval".
    """
    att = attack_settings(cfg, name="mbn", init="uniform", bn_mode="eval")
    r = _float_in("objective.ratio", _get(cfg, "ratio", 0.5), 0.0, 1.0)

    def prepare(model, params, batch_stats, x, y, key, epoch):
        _check_dual_bn(batch_stats, params, "mbn")
        return _split_prepare(att, r, "adv")(model, params, batch_stats, x, y, key, epoch)

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        n, b = inputs["n_clean"], x.shape[0]
        total, stats, metrics = 0.0, batch_stats, {"eps": inputs["eps"]}
        if n > 0:
            clean, stats = model.logits(params, stats, x[:n], train=True, bn_set="clean")
            total = total + jnp.sum(cross_entropy(clean, y[:n]))
            metrics["accuracy"] = accuracy(clean, y[:n])
        if n < b:
            adv, stats = model.logits(params, stats, inputs["x_adv"], train=True, bn_set="adv")
            total = total + jnp.sum(cross_entropy(adv, y[n:]))
            metrics["adv_accuracy"] = accuracy(adv, y[n:])
        value = total / b
        metrics["loss"] = value
        return value, (stats, metrics)

    return Objective(name="mbn", prepare=prepare, loss=loss, needs_epoch=att.eps_warmup_epochs > 0,
                     settings={**att.as_dict(), "ratio": r})


@register("advprop")
def advprop(cfg) -> Objective:
    """AdvProp (Xie et al. 2020, "Adversarial Examples Improve Image Recognition", section 4.14).

    x_adv by CE-PGD through the auxiliary BN set "adv" (``attack_bn_mode`` default "eval");
    loss ``mean CE(f_clean(x), y) + mean CE(f_adv(x_adv), y)``: the clean batch through the main
    BN set "clean", the adversarial batch through "adv". Test with the main BN
    (``config.eval_bn_set = "clean"``). Needs ``norm="dual_batch"``.
    """
    att = attack_settings(cfg, name="advprop", init="uniform", bn_mode="eval")

    def prepare(model, params, batch_stats, x, y, key, epoch):
        _check_dual_bn(batch_stats, params, "advprop")
        return _ce_adv_prepare(att, bn_set="adv")(model, params, batch_stats, x, y, key, epoch)

    def loss(model, params, batch_stats, x, y, inputs, epoch):
        clean, stats = model.logits(params, batch_stats, x, train=True, bn_set="clean")
        adv, stats = model.logits(params, stats, inputs["x_adv"], train=True, bn_set="adv")
        ce_c, ce_a = jnp.mean(cross_entropy(clean, y)), jnp.mean(cross_entropy(adv, y))
        value = ce_c + ce_a
        return value, (stats, {"loss": value, "clean_loss": ce_c, "adv_loss": ce_a,
                               "accuracy": accuracy(clean, y), "adv_accuracy": accuracy(adv, y),
                               "eps": inputs["eps"]})

    return Objective(name="advprop", prepare=prepare, loss=loss, needs_epoch=att.eps_warmup_epochs > 0,
                     settings=att.as_dict())


@register("awp")
def awp(cfg) -> Objective:
    """Adversarial weight perturbation (Wu et al. 2020) around ``objective.awp_inner`` ("pgd_at"
    or "trades"); see :mod:`jadv.train.awp`."""
    return make_awp(cfg)


def make_objective(cfg: Mapping) -> Objective:
    """The :class:`Objective` named ``cfg.name`` (default "standard") with its hyperparameters
    from ``cfg`` (a ConfigDict or dict). Raises ValueError for an unknown name or bad values."""
    name = _get(cfg, "name", "standard")
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; available: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name](cfg)
