"""Schedule-free learning: interpolation and averaging in place of momentum and a decay."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    OptState,
    Params,
    ScalarOrSchedule,
    Schedule,
    with_extra_args_support,
)
from ._combine import chain
from ._decay import add_decayed_weights
from ._rmsprop import scale_by_rms
from ._scaling import scale_by_learning_rate


class ScheduleFreeState(NamedTuple):
    """State of `schedule_free`.

    Attributes:
        count: steps so far (int32 scalar); the learning rate is evaluated at it.
        b1: the interpolation weight, kept for `schedule_free_eval_params`.
        weight_sum: the sum of the averaging weights `max_lr^weight_lr_power` so far.
        max_lr: the largest learning rate so far.
        base_optimizer_state: the state of the wrapped optimizer.
        z: the base optimizer's own iterate, in `state_dtype` (default: the params' dtype).
    """

    count: chex.Array
    b1: chex.Array
    weight_sum: chex.Array
    max_lr: chex.Array
    base_optimizer_state: OptState
    z: Params


def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    *,
    state_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Makes `base_optimizer` schedule-free: its steps move z; the parameters interpolate.

    The parameters the optimizer updates are the points y where gradients are taken. With
    `base_optimizer` giving the step `u_t` (e.g. `-lr(t) * g_t` for SGD; t = 0, 1, ...)::

        z_{t+1}   = z_t + u_t                                 (z_0 = y_0 = x_0)
        c_{t+1}   = w_t / (w_0 + ... + w_t),   w_t = max(lr(0), ..., lr(t))^weight_lr_power
        x_{t+1}   = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}
        y_{t+1}   = b1 * x_{t+1} + (1 - b1) * z_{t+1}

    x, the average to evaluate and deploy, is not stored: `schedule_free_eval_params(state,
    params)` recovers it as `(y - (1 - b1) * z) / b1`. The update returned is
    `y_{t+1} - y_t = (1 - b1) * u_t + c_{t+1} * (z_t + b1 * u_t - y_t)`, formed without that
    division. The averaging weights follow the authors' implementation (the largest learning
    rate so far, which equals the current one during a warmup). Give `base_optimizer` no
    momentum (`b1=0` for Adam): the interpolation replaces it. A constant learning rate with
    warmup replaces the decay schedule.

    Args:
        base_optimizer: the optimizer whose steps move z, e.g. `gradtx.sgd(lr)`.
        learning_rate: the learning rate `base_optimizer` uses (constant or schedule of the step
            count), which sets the averaging weights.
        b1: the interpolation weight of x in y, in (0, 1).
        weight_lr_power: the power of the learning rate in the averaging weights, >= 0.
        state_dtype: dtype of z (e.g. `jnp.float32` for bfloat16 params); default: each
            param's dtype.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024. arXiv:2405.15682
    """
    fn = "schedule_free"
    _checks.transformation(fn, "base_optimizer", base_optimizer)
    _checks.number(fn, "learning_rate", learning_rate)
    _checks.finite(fn, "learning_rate", learning_rate)
    b1_value = _checks.finite(fn, "b1", b1)
    if b1_value is not None and not 0 < b1_value < 1:
        raise ValueError(f"{fn}: `b1` must be in (0, 1), got {b1!r}.")
    _checks.non_negative(fn, "weight_lr_power", weight_lr_power)
    state_dtype = _checks.float_dtype(fn, "state_dtype", state_dtype)
    base = with_extra_args_support(base_optimizer)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        sd = _tree.scalar_dtype(params)
        return ScheduleFreeState(
            count=_numerics.zero_count(),
            b1=_numerics.as_dtype(b1, sd),
            weight_sum=jnp.zeros([], sd),
            max_lr=jnp.zeros([], sd),
            base_optimizer_state=base.init(params),
            z=jax.tree.map(lambda p: jnp.array(p, dtype=state_dtype or p.dtype, copy=True), params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "state.z", state.z, "updates", updates, hint=_checks.STATE_HINT)
        _checks.trees_match(fn, "params", params, "updates", updates)
        sd = state.weight_sum.dtype
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        max_lr = jnp.maximum(state.max_lr, jnp.asarray(lr).astype(sd))
        weight = max_lr ** _numerics.as_dtype(weight_lr_power, sd)
        weight_sum = state.weight_sum + weight
        c = jnp.where(weight_sum == 0, 0, weight / jnp.where(weight_sum == 0, 1, weight_sum))
        steps, base_state = base.update(updates, state.base_optimizer_state, params, **extra_args)
        _checks.trees_match(fn, "updates", updates, "base_optimizer's updates", steps)

        def leaf(g, u, z, y):
            cd = _numerics.compute_dtype(_numerics.wider(z.dtype, y.dtype))
            beta, c_c = state.b1.astype(cd), c.astype(cd)
            z_new = (z.astype(cd) + u.astype(cd)).astype(z.dtype)
            dz = z_new.astype(cd) - z.astype(cd)  # u_t as stored in z's dtype
            out = (1 - beta) * dz + c_c * (z.astype(cd) + beta * dz - y.astype(cd))
            return out.astype(g.dtype), z_new

        out, z = _tree.map_unzip(leaf, 2, updates, steps, state.z, params)
        count = _numerics.safe_increment(state.count)
        return out, ScheduleFreeState(count, state.b1, weight_sum, max_lr, base_state, z)

    return GradientTransformationExtraArgs(init_fn, update_fn)


def schedule_free_eval_params(state: OptState, params: Params) -> Params:
    """The averaged parameters x to evaluate a `schedule_free` model at.

    Computes `x = (y - (1 - b1) * z) / b1` from the training parameters `params` (y) and the
    `ScheduleFreeState` in `state` (which may also be the state of a `chain` holding one).
    Each leaf keeps its parameter's dtype.
    """
    fn = "schedule_free_eval_params"
    is_sf = lambda x: isinstance(x, ScheduleFreeState)
    found = [s for s in jax.tree.leaves(state, is_leaf=is_sf) if is_sf(s)]
    if len(found) != 1:
        raise ValueError(
            f"{fn}: `state` must be (or hold exactly one) ScheduleFreeState, the state of a "
            f"`schedule_free` optimizer; found {len(found)}."
        )
    (sf,) = found
    _checks.trees_match(fn, "state.z", sf.z, "params", params, hint=_checks.STATE_HINT)

    def leaf(y, z):
        cd = _numerics.compute_dtype(_numerics.wider(z.dtype, y.dtype))
        beta = sf.b1.astype(cd)
        return ((y.astype(cd) - (1 - beta) * z.astype(cd)) / beta).astype(y.dtype)

    return jax.tree.map(leaf, params, sf.z)


def _paper_learning_rate(
    learning_rate: ScalarOrSchedule, warmup_steps: int | None, b2: float | None = None
) -> ScalarOrSchedule:
    """`lr(k) * min(1, (k + 1) / warmup_steps) * sqrt(1 - b2^(k + 1))` at step k = 0, 1, ...

    The paper counts steps from t = 1, so its first step already has `lr / warmup_steps`.
    """
    if warmup_steps is None and b2 is None:
        return learning_rate
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)

    def schedule(count):
        value = learning_rate(count) if callable(learning_rate) else learning_rate
        value = jnp.asarray(value).astype(dtype)
        t = jnp.asarray(count).astype(dtype) + 1
        if warmup_steps is not None:
            value = value * jnp.minimum(1, t / warmup_steps)
        if b2 is not None:
            value = value * jnp.sqrt(1 - jnp.asarray(b2).astype(dtype) ** t)
        return value

    return schedule


def _check_wrapped(fn: str, learning_rate, warmup_steps) -> None:
    _checks.number(fn, "learning_rate", learning_rate)
    _checks.finite(fn, "learning_rate", learning_rate)
    if warmup_steps is not None:
        _checks.positive_int(fn, "warmup_steps", warmup_steps)


def schedule_free_sgd(
    learning_rate: ScalarOrSchedule = 1.0,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: float | None = None,
    weight_lr_power: float = 2.0,
    *,
    state_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Schedule-free SGD: `schedule_free(sgd(lr_t), lr_t, b1, weight_lr_power)`.

    Update rule (see `schedule_free`; t = 1, 2, ... as in the paper, T = warmup_steps)::

        y_t     = (1 - b1) * z_t + b1 * x_t           (the params)
        gamma_t = learning_rate * min(1, t / T)
        z_{t+1} = z_t - gamma_t * (g(y_t) + weight_decay * y_t)
        c_{t+1} = gamma_t^2 / (gamma_1^2 + ... + gamma_t^2)
        x_{t+1} = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}

    The warmup is the paper's: the first step already uses `learning_rate / T` (Optax's warmup
    starts from 0, so its first step does not move). Evaluate at
    `schedule_free_eval_params(state, params)`.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024. arXiv:2405.15682
    """
    fn = "schedule_free_sgd"
    _check_wrapped(fn, learning_rate, warmup_steps)
    lr = _paper_learning_rate(learning_rate, warmup_steps)
    base = scale_by_learning_rate(lr)
    if weight_decay is not None:
        base = chain(add_decayed_weights(weight_decay), base)
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype=state_dtype)


def schedule_free_adamw(
    learning_rate: ScalarOrSchedule = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    *,
    state_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Schedule-free AdamW, the paper's algorithm with its bias-corrected, warmed-up weights.

    Update rule (see `schedule_free`; t = 1, 2, ..., T = warmup_steps, v_0 = 0)::

        y_t     = (1 - b1) * z_t + b1 * x_t           (the params)
        v_t     = b2 * v_{t-1} + (1 - b2) * g(y_t)^2
        gamma_t = learning_rate * min(1, t / T) * sqrt(1 - b2^t)
        z_{t+1} = z_t - gamma_t * (g(y_t) / (sqrt(v_t) + eps) + weight_decay * y_t)
        c_{t+1} = gamma_t^2 / (gamma_1^2 + ... + gamma_t^2)
        x_{t+1} = (1 - c_{t+1}) * x_t + c_{t+1} * z_{t+1}

    This is `schedule_free(chain(scale_by_rms(b2, eps), add_decayed_weights(weight_decay),
    scale_by_learning_rate(gamma)), gamma, b1, weight_lr_power)`. Differences from
    `optax.contrib.schedule_free_adamw`: there the averaging weights leave out the
    `sqrt(1 - b2^t)` factor (giving the first steps, with their noisy `v_t`, more weight),
    `eps` is added to `sqrt(v_t / (1 - b2^t))`, and the warmup starts from 0.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky, "The Road Less Scheduled",
        NeurIPS 2024. arXiv:2405.15682
    """
    fn = "schedule_free_adamw"
    _check_wrapped(fn, learning_rate, warmup_steps)
    _checks.in_unit_interval(fn, "b2", b2)
    lr: Schedule = _paper_learning_rate(learning_rate, warmup_steps, b2)
    base = [scale_by_rms(b2, eps, eps_in_sqrt=False)]
    if not (isinstance(weight_decay, int | float) and weight_decay == 0):
        base.append(add_decayed_weights(weight_decay))
    base = chain(*base, scale_by_learning_rate(lr))
    return schedule_free(base, lr, b1, weight_lr_power, state_dtype=state_dtype)
