"""Step sizes without tuning: Polyak's step size, D-Adaptation and Prodigy."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    Params,
    ScalarOrSchedule,
    Updates,
)
from ._combine import chain
from ._scaling import scale_by_learning_rate, scale_tree


def _check_common(fn: str, learning_rate, estim_lr0, betas=None) -> tuple:
    """Validates the hyperparameters every D-Adaptation method has; returns `betas`."""
    _checks.number(fn, "learning_rate", learning_rate)
    _checks.finite(fn, "learning_rate", learning_rate)
    _checks.positive(fn, "estim_lr0", estim_lr0)
    if betas is None:
        return ()
    if not (isinstance(betas, tuple | list) and len(betas) == 2):
        raise TypeError(f"{fn}: `betas` must be a pair `(b1, b2)`, got {betas!r}.")
    _checks.in_unit_interval(fn, "betas[0]", betas[0])
    _checks.in_unit_interval(fn, "betas[1]", betas[1])
    return tuple(betas)


def _check_update(fn: str, name: str, buffer, updates, params) -> None:
    _checks.require_params(fn, params)
    _checks.trees_match(fn, name, buffer, "updates", updates, hint=_checks.STATE_HINT)
    _checks.trees_match(fn, "params", params, "updates", updates)


def _adam_dlr(learning_rate, betas, d: chex.Array, count: chex.Array) -> tuple:
    """`(count + 1, d * lr(count) * sqrt(1 - b2^(count+1)) / (1 - b1^(count+1)))`."""
    sd, b1, b2 = d.dtype, *betas
    new_count = _numerics.safe_increment(count)
    bc = jnp.sqrt(_tree.bias_correction(b2, new_count, sd))
    bc = bc / _tree.bias_correction(b1, new_count, sd)
    lr = learning_rate(count) if callable(learning_rate) else learning_rate
    return new_count, d * jnp.asarray(lr).astype(sd) * bc


def _init_buffers(fn: str, params, estim_lr0, n: int) -> tuple:
    """`n` zero trees like `params`, then d_0 and r_0 = 0 as scalars of the scalar dtype."""
    _checks.floating_leaves(fn, "params", params)
    sd = _tree.scalar_dtype(params)
    zeros = tuple(_tree.zeros_like(params) for _ in range(n))
    return (*zeros, _numerics.as_dtype(estim_lr0, sd), jnp.zeros([], sd))


def _total(partials, dtype) -> chex.Array:
    """The sum of per-leaf scalars (0 for an empty tree)."""
    leaves = jax.tree.leaves(partials)
    return jnp.sum(jnp.stack(leaves)) if leaves else jnp.zeros([], dtype)


def _grow(d: chex.Array, numerator: chex.Array, denominator: chex.Array) -> chex.Array:
    """`max(d, numerator / denominator)`, or `d` while the denominator is 0."""
    ok = denominator > 0
    return jnp.where(ok, jnp.maximum(d, numerator / jnp.where(ok, denominator, 1)), d)


def scale_by_polyak(
    f_min: float = 0.0, max_learning_rate: float = 1.0, eps: float = 0.0
) -> GradientTransformationExtraArgs:
    """Multiplies the gradient by Polyak's step size, computed from the loss value.

    Update rule (`value` is the loss f(x_t), passed as `update(..., value=loss)`)::

        gamma_t = min((f(x_t) - f_min) / (||g_t||^2 + eps), max_learning_rate)
        u_t     = gamma_t * g_t                     (u_t = 0 when ||g_t||^2 + eps == 0)

    Args:
        f_min: a lower bound on (a guess of) the minimal loss; 0 for models that can
            interpolate the data.
        max_learning_rate: the cap on the step size, > 0.
        eps: added to the squared gradient norm, >= 0.

    Raises:
        ValueError: from `update` when `value` is not given or is not a scalar.

    References:
        Loizou, Vaswani, Laradji and Lacoste-Julien, "Stochastic Polyak Step-size for SGD: An
        Adaptive Learning Rate for Fast Convergence", AISTATS 2021. arXiv:2002.10542
    """
    fn = "scale_by_polyak"
    _checks.finite(fn, "f_min", f_min)
    _checks.positive(fn, "max_learning_rate", max_learning_rate)
    _checks.non_negative(fn, "eps", eps)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        _checks.require_value(fn, value)
        sq = _tree.sum_of_squares(updates)
        dt = sq.dtype
        denom = sq + _numerics.as_dtype(eps, dt)
        gap = jnp.asarray(value).astype(dt) - _numerics.as_dtype(f_min, dt)
        ok = denom > 0
        step = jnp.minimum(gap / jnp.where(ok, denom, 1), _numerics.as_dtype(max_learning_rate, dt))
        return scale_tree(updates, jnp.where(ok, step, 0)), state

    return GradientTransformationExtraArgs(lambda params: EmptyState(), update_fn)


def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
) -> GradientTransformationExtraArgs:
    """SGD with the (capped) stochastic Polyak step size; needs `update(..., value=loss)`.

    Update rule (see `scale_by_polyak`)::

        x_{t+1} = x_t - scaling(t) * min((f(x_t) - f_min) / (||g_t||^2 + eps),
                                         max_learning_rate) * g_t

    This is `chain(scale_by_polyak(f_min, max_learning_rate, eps),
    scale_by_learning_rate(scaling))`. Loizou et al.'s SPS_max with constant `c` and bound
    `gamma_b` is `scaling=1/c, max_learning_rate=c * gamma_b`.

    Call it as `tx.update(grads, state, params, value=loss)`. Unlike `optax.polyak_sgd`, which
    measures `||g||^2` after multiplying by `scaling`, the norm is the gradient's, as written
    above (the two agree for `scaling=1`). References: see `scale_by_polyak`.
    """
    _checks.number("polyak_sgd", "scaling", scaling)
    return chain(scale_by_polyak(f_min, max_learning_rate, eps), scale_by_learning_rate(scaling))


class ProdigyState(NamedTuple):
    """State of `prodigy`: m, v, s, x_0, the estimate d (`estim_lr`), r, and the count."""

    exp_avg: Updates
    exp_avg_sq: Updates
    grad_sum: Updates
    params0: Params
    estim_lr: chex.Array
    numerator_weighted: chex.Array
    count: chex.Array


def prodigy(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    """Prodigy: Adam(W) whose step size d estimates the distance to the solution.

    Update rule (k = 0, 1, ...; d_0 = estim_lr0; lr_k = learning_rate(k), a schedule around
    1.0; b3 = sqrt(b2) by default; <., .> sums over all leaves)::

        bc      = sqrt(1 - b2^(k+1)) / (1 - b1^(k+1))
        dlr     = d_k * lr_k * bc
        m       = b1 * m + (1 - b1) * d_k * g_k
        v       = b2 * v + (1 - b2) * d_k^2 * g_k^2
        s       = b3 * s + (d_k * dlr / d_0) * g_k         ((d_k^2 / d_0) * g_k if safeguard_warmup)
        r       = b3 * r + (d_k * dlr / d_0) * <g_k, x_0 - x_k>
        d_{k+1} = max(d_k, estim_lr_coef * r / ||s||_1)    (d_k while ||s||_1 == 0)
        x_{k+1} = x_k - dlr * (m / (sqrt(v) + d_{k+1} * eps) + weight_decay * x_k)

    This is the paper's Adam version of Prodigy as implemented by the authors and by Optax:
    the paper's common factors `(1 - sqrt(b2))` and `1/d_0` cancel in `r / ||s||_1` and are
    left out, Adam's bias correction `bc` scales the step, and `eps` is multiplied by the new
    estimate `d_{k+1}`. Where `||s||_1 == 0` (a zero first gradient or learning rate) d is
    kept; Optax divides by zero there and turns every later step into NaN.

    Args:
        learning_rate: a multiplier (constant or schedule) on the estimated step size.
        betas: Adam's `(b1, b2)`, each in [0, 1).
        beta3: decay of `s` and `r`, in [0, 1); `sqrt(b2)` by default.
        eps: Adam's epsilon (times d), >= 0.
        estim_lr0: the initial (under-)estimate d_0, > 0.
        estim_lr_coef: multiplies each new estimate, > 0.
        weight_decay: decoupled (AdamW) weight decay, >= 0.
        safeguard_warmup: leave the learning rate out of `s` (helps with long warmups).

    References:
        Mishchenko and Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
        ICML 2024. arXiv:2306.06101
    """
    fn = "prodigy"
    b1, b2 = _check_common(fn, learning_rate, estim_lr0, betas)
    if beta3 is not None:
        _checks.in_unit_interval(fn, "beta3", beta3)
    _checks.non_negative(fn, "eps", eps)
    _checks.positive(fn, "estim_lr_coef", estim_lr_coef)
    _checks.non_negative(fn, "weight_decay", weight_decay)

    def init_fn(params):
        m, v, s, d, r = _init_buffers(fn, params, estim_lr0, 3)
        return ProdigyState(m, v, s, jax.tree.map(jnp.copy, params), d, r, _numerics.zero_count())

    def update_fn(updates, state, params=None):
        _check_update(fn, "state.exp_avg", state.exp_avg, updates, params)
        d = state.estim_lr
        sd = d.dtype
        count, dlr = _adam_dlr(learning_rate, (b1, b2), d, state.count)
        b3 = jnp.sqrt(_numerics.as_dtype(b2, sd))
        b3 = b3 if beta3 is None else _numerics.as_dtype(beta3, sd)
        d0 = _numerics.as_dtype(estim_lr0, sd)
        r_weight = d * dlr / d0
        s_weight = d * d / d0 if safeguard_warmup else r_weight

        def moments(g, m, v, s, p0, p):
            cd = _numerics.compute_dtype(g.dtype)
            c1, c2 = _numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, cd)
            gw = g.astype(cd)
            dg = d.astype(cd) * gw
            m_new = (c1 * m.astype(cd) + _numerics.one_minus(b1, cd) * dg).astype(m.dtype)
            v_new = (c2 * v.astype(cd) + _numerics.one_minus(b2, cd) * dg * dg).astype(v.dtype)
            s_new = (b3.astype(cd) * s.astype(cd) + s_weight.astype(cd) * gw).astype(s.dtype)
            dot = jnp.sum(gw * (p0.astype(cd) - p.astype(cd)), dtype=sd)
            return m_new, v_new, s_new, dot, jnp.sum(jnp.abs(s_new.astype(cd)), dtype=sd)

        buffers = (state.exp_avg, state.exp_avg_sq, state.grad_sum, state.params0, params)
        m, v, s, dots, l1s = _tree.map_unzip(moments, 5, updates, *buffers)
        r = b3 * state.numerator_weighted + r_weight * _total(dots, sd)
        d_new = _grow(d, _numerics.as_dtype(estim_lr_coef, sd) * r, _total(l1s, sd))

        def step(g, m, v, p):
            cd = _numerics.compute_dtype(g.dtype)
            dlr_c = dlr.astype(cd)
            denom = jnp.sqrt(v.astype(cd)) + d_new.astype(cd) * _numerics.as_dtype(eps, cd)
            u = m.astype(cd) / denom + _numerics.as_dtype(weight_decay, cd) * p.astype(cd)
            return (-dlr_c * u).astype(g.dtype)

        u = jax.tree.map(step, updates, m, v, params)
        return u, ProdigyState(m, v, s, state.params0, d_new, r, count)

    return GradientTransformation(init_fn, update_fn)


class DAdaptAdamWState(NamedTuple):
    """State of `dadapt_adamw`: m, v, s, the estimate d (`estim_lr`), r, and the count."""

    exp_avg: Updates
    exp_avg_sq: Updates
    grad_sum: Updates
    estim_lr: chex.Array
    numerator_weighted: chex.Array
    count: chex.Array


def dadapt_adamw(
    learning_rate: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """AdamW whose learning rate is set by D-Adaptation.

    Update rule (k = 0, 1, ...; d_0 = estim_lr0; lr_k = learning_rate(k), a schedule around
    1.0; sb2 = sqrt(b2); A_k = sqrt(v_k) + eps; <., .> sums over all leaves)::

        bc      = sqrt(1 - b2^(k+1)) / (1 - b1^(k+1))
        dlr     = d_k * lr_k * bc
        r       = sb2 * r + (1 - sb2) * dlr * <g_k, s_k / A_k>
        m       = b1 * m + (1 - b1) * dlr * g_k
        v       = b2 * v + (1 - b2) * g_k^2
        s       = sb2 * s + (1 - sb2) * dlr * g_k
        d_{k+1} = max(d_k, r / ((1 - sb2) * ||s||_1))     (d_k while ||s||_1 == 0)
        x_{k+1} = x_k - m / (sqrt(v) + eps) - weight_decay * dlr * x_k

    As in the authors' implementation and Optax, the inner product uses the previous step's
    `s_k` and `A_k`, and Adam's bias correction `bc` scales the step. Where `||s||_1 == 0`,
    d is kept (Optax divides by zero there).

    Args:
        learning_rate: a multiplier (constant or schedule) on the estimated step size.
        betas: Adam's `(b1, b2)`, each in [0, 1).
        eps: Adam's epsilon, >= 0.
        estim_lr0: the initial (under-)estimate d_0, > 0.
        weight_decay: decoupled (AdamW) weight decay, >= 0.

    References:
        Defazio and Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023.
        arXiv:2301.07733
    """
    fn = "dadapt_adamw"
    b1, b2 = _check_common(fn, learning_rate, estim_lr0, betas)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "weight_decay", weight_decay)

    def init_fn(params):
        return DAdaptAdamWState(*_init_buffers(fn, params, estim_lr0, 3), _numerics.zero_count())

    def update_fn(updates, state, params=None):
        _check_update(fn, "state.exp_avg", state.exp_avg, updates, params)
        d = state.estim_lr
        sd = d.dtype
        count, dlr = _adam_dlr(learning_rate, (b1, b2), d, state.count)
        sb2 = jnp.sqrt(_numerics.as_dtype(b2, sd))

        def leaf(g, m, v, s, p):
            cd = _numerics.compute_dtype(g.dtype)
            c1, c2, c3 = (_numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, cd), sb2.astype(cd))
            eps_c, dlr_c = _numerics.as_dtype(eps, cd), dlr.astype(cd)
            gw = g.astype(cd)
            dot = jnp.sum(gw * s.astype(cd) / (jnp.sqrt(v.astype(cd)) + eps_c), dtype=sd)
            m_new = (c1 * m.astype(cd) + _numerics.one_minus(b1, cd) * dlr_c * gw).astype(m.dtype)
            v_new = (c2 * v.astype(cd) + _numerics.one_minus(b2, cd) * gw * gw).astype(v.dtype)
            s_new = (c3 * s.astype(cd) + (1 - c3) * dlr_c * gw).astype(s.dtype)
            u = m_new.astype(cd) / (jnp.sqrt(v_new.astype(cd)) + eps_c)
            u = u + _numerics.as_dtype(weight_decay, cd) * dlr_c * p.astype(cd)
            l1 = jnp.sum(jnp.abs(s_new.astype(cd)), dtype=sd)
            return (-u).astype(g.dtype), m_new, v_new, s_new, dot, l1

        u, m, v, s, dots, l1s = _tree.map_unzip(
            leaf, 6, updates, state.exp_avg, state.exp_avg_sq, state.grad_sum, params
        )
        r = sb2 * state.numerator_weighted + (1 - sb2) * dlr * _total(dots, sd)
        d_new = _grow(d, r, (1 - sb2) * _total(l1s, sd))
        return u, DAdaptAdamWState(m, v, s, d_new, r, count)

    return GradientTransformation(init_fn, update_fn)


class DAdaptSGDState(NamedTuple):
    """State of `dadapt_sgd`: s, z, the estimate d (`estim_lr`), r, ||g_0|| and the count."""

    grad_sum: Updates
    z: Params
    estim_lr: chex.Array
    numerator_weighted: chex.Array
    g0_norm: chex.Array
    count: chex.Array


def dadapt_sgd(
    learning_rate: ScalarOrSchedule = 1.0, momentum: float = 0.0, estim_lr0: float = 1e-6
) -> GradientTransformation:
    """SGD whose learning rate is set by D-Adaptation.

    Update rule (k = 0, 1, ...; d_0 = estim_lr0; lr_k = learning_rate(k), a schedule around
    1.0; z_0 = x_0; norms and <., .> over all leaves)::

        lambda_k = lr_k * d_k / ||g_0||                    (0 if ||g_0|| == 0)
        r        = r + lambda_k * <g_k, s_k>
        s        = s + lambda_k * g_k
        d_{k+1}  = max(d_k, 2 * r / ||s||)                 (d_k while ||s|| == 0)
        z_{k+1}  = z_k - lambda_k * g_k
        x_{k+1}  = momentum * x_k + (1 - momentum) * z_{k+1}

    `2 r = ||s||^2 - sum_i lambda_i^2 ||g_i||^2`, so the estimate is the paper's
    `(||s_{k+1}||^2 - sum_i lambda_i^2 ||g_i||^2) / ||s_{k+1}||`, formed from
    the inner products to avoid the cancellation of the difference in float32. Momentum
    (0 = plain SGD) averages the SGD sequence z as in the authors' implementation. For their
    L2 `weight_decay`, chain `add_decayed_weights(weight_decay)` in front.

    Args:
        learning_rate: a multiplier (constant or schedule) on the estimated step size.
        momentum: weight of the previous iterate in the averaging, in [0, 1).
        estim_lr0: the initial (under-)estimate d_0, > 0.

    References:
        Defazio and Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023.
        arXiv:2301.07733
    """
    fn = "dadapt_sgd"
    _check_common(fn, learning_rate, estim_lr0)
    _checks.in_unit_interval(fn, "momentum", momentum)

    def init_fn(params):
        s, d, r = _init_buffers(fn, params, estim_lr0, 1)
        z = jax.tree.map(jnp.copy, params)
        return DAdaptSGDState(s, z, d, r, jnp.zeros_like(r), _numerics.zero_count())

    def update_fn(updates, state, params=None):
        _check_update(fn, "state.z", state.z, updates, params)
        d = state.estim_lr
        sd = d.dtype
        g_norm = jnp.sqrt(_tree.sum_of_squares(updates).astype(sd))
        g0 = jnp.where(state.count == 0, g_norm, state.g0_norm)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        lam = jnp.asarray(lr).astype(sd) * d / jnp.where(g0 > 0, g0, 1)
        lam = jnp.where(g0 > 0, lam, 0)

        def leaf(g, s, z, p):
            cd = _numerics.compute_dtype(g.dtype)
            gw, lam_c = g.astype(cd), lam.astype(cd)
            dot = jnp.sum(gw * s.astype(cd), dtype=sd)
            s_new = (s.astype(cd) + lam_c * gw).astype(s.dtype)
            z_new = (z.astype(cd) - lam_c * gw).astype(z.dtype)
            u = (1 - _numerics.as_dtype(momentum, cd)) * (z_new.astype(cd) - p.astype(cd))
            sq = jnp.sum(_numerics.abs_sq(s_new.astype(cd)), dtype=sd)
            return u.astype(g.dtype), s_new, z_new, dot, sq

        u, s, z, dots, sqs = _tree.map_unzip(leaf, 5, updates, state.grad_sum, state.z, params)
        r = state.numerator_weighted + lam * _total(dots, sd)
        d_new = _grow(d, 2 * r, jnp.sqrt(_total(sqs, sd)))
        count = _numerics.safe_increment(state.count)
        return u, DAdaptSGDState(s, z, d_new, r, g0, count)

    return GradientTransformation(init_fn, update_fn)
