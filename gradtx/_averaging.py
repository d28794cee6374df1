"""Moving averages: of updates (`ema`), of target networks, and of parameters for evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, Params, ScalarOrSchedule, Updates


def _pair_dtype(a: chex.Array, b: chex.Array) -> jnp.dtype:
    """The dtype arithmetic mixing leaves `a` and `b` is carried out in (float32 or wider)."""
    return _numerics.compute_dtype(_numerics.wider(a.dtype, b.dtype))


class EmaState(NamedTuple):
    """State of `ema`: the step count and the running average, shaped like the params."""

    count: chex.Array
    ema: Updates


def ema(
    decay: float, debias: bool = True, *, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Replaces the updates by their exponential moving average (optionally debiased).

    Update rule (t = 1, 2, ... counts steps; `e_0 = 0`)::

        e_t = decay * e_{t-1} + (1 - decay) * g_t
        u_t = e_t / (1 - decay^t)       (debias=True)
        u_t = e_t                       (debias=False)

    Debiasing removes the pull of `e_0 = 0` towards zero in the first steps: `u_1 = g_1`. The
    debiased value is computed before `e_t` is rounded to `accumulator_dtype`.

    Args:
        decay: the decay rate, in [0, 1).
        debias: divide by `1 - decay^t`, as Adam does for its moments.
        accumulator_dtype: dtype of the stored average; by default each leaf's own dtype.

    References:
        Polyak and Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM
        Journal on Control and Optimization, 1992. Kingma and Ba, "Adam: A Method for
        Stochastic Optimization", ICLR 2015 (bias correction). arXiv:1412.6980
    """
    fn = "ema"
    _checks.in_unit_interval(fn, "decay", decay)
    accumulator_dtype = _checks.float_dtype(fn, "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return EmaState(
            count=_numerics.zero_count(), ema=_tree.zeros_like(params, accumulator_dtype)
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.ema", state.ema, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, e):
            cd = _pair_dtype(g, e)
            d = _numerics.as_dtype(decay, cd)
            e_new = d * e.astype(cd) + (1 - d) * g.astype(cd)
            u = e_new / _tree.bias_correction(decay, count, cd) if debias else e_new
            return u.astype(g.dtype), e_new.astype(e.dtype)

        u, e = _tree.map_unzip(leaf, 2, updates, state.ema)
        return u, EmaState(count=count, ema=e)

    return GradientTransformation(init_fn, update_fn)


def incremental_update(new_tensors: Params, old_tensors: Params, step_size: chex.Numeric) -> Params:
    """Moves `old_tensors` a fraction `step_size` of the way towards `new_tensors`.

    The soft target-network update (Polyak averaging of the online network)::

        old <- step_size * new + (1 - step_size) * old

    Each result keeps the dtype of its `old_tensors` leaf; the sum is formed in float32 (or
    wider). `step_size=1` returns `new_tensors` and `step_size=0` returns `old_tensors`, exactly.

    Args:
        new_tensors: the online values (e.g. the current parameters).
        old_tensors: the values to update (e.g. target-network parameters), same structure.
        step_size: the interpolation weight, in [0, 1] (typically 0.005 or 0.01).

    References:
        Lillicrap et al., "Continuous control with deep reinforcement learning", ICLR 2016.
        arXiv:1509.02971
    """
    fn = "incremental_update"
    _checks.in_closed_unit_interval(fn, "step_size", step_size)
    _checks.trees_match(fn, "old_tensors", old_tensors, "new_tensors", new_tensors)
    _checks.floating_leaves(fn, "new_tensors", new_tensors)
    _checks.floating_leaves(fn, "old_tensors", old_tensors)

    def leaf(new, old):
        cd = _pair_dtype(new, old)
        s = _numerics.as_dtype(step_size, cd)
        return (s * new.astype(cd) + (1 - s) * old.astype(cd)).astype(old.dtype)

    return jax.tree.map(leaf, new_tensors, old_tensors)


def periodic_update(
    new_tensors: Params, old_tensors: Params, steps: chex.Numeric, update_period: int
) -> Params:
    """Returns `new_tensors` every `update_period` steps, else `old_tensors` (hard target update).

    Rule::

        result = new    if steps % update_period == 0
        result = old    otherwise

    Each result keeps the dtype of its `old_tensors` leaf, so the structure, shapes and dtypes
    of the output never depend on `steps` (safe under `jit` and `lax.scan`).

    Args:
        new_tensors: the online values.
        old_tensors: the current target values, same structure.
        steps: the integer step count (a Python int or an integer array).
        update_period: the number of steps between copies, an integer > 0.

    References:
        Mnih et al., "Human-level control through deep reinforcement learning", Nature, 2015.
    """
    fn = "periodic_update"
    _checks.positive_int(fn, "update_period", update_period)
    _checks.trees_match(fn, "old_tensors", old_tensors, "new_tensors", new_tensors)
    steps = jnp.asarray(steps)
    if steps.shape != () or not jnp.issubdtype(steps.dtype, jnp.integer):
        raise TypeError(
            f"{fn}: `steps` must be an integer scalar (the step count), got an array of "
            f"dtype {steps.dtype} and shape {steps.shape}."
        )
    copy = steps % update_period == 0
    return jax.tree.map(
        lambda new, old: jnp.where(copy, new.astype(old.dtype), old), new_tensors, old_tensors
    )


class ParamsEmaState(NamedTuple):
    """State of `params_ema`: the number of updates and the averaged parameters.

    `ema` has the structure and shapes of the params: pass it wherever the params go (e.g.
    `model.apply(state.ema, x)`) to evaluate the averaged model.
    """

    count: chex.Array
    ema: Params


class ParamsEma(NamedTuple):
    """A pair of pure functions keeping an average of the parameters (see `params_ema`).

    `init(params) -> ParamsEmaState`; `update(params, state) -> ParamsEmaState`.
    """

    init: Callable[[Params], ParamsEmaState]
    update: Callable[[Params, ParamsEmaState], ParamsEmaState]


def params_ema(decay: ScalarOrSchedule, *, accumulator_dtype: Any = None) -> ParamsEma:
    """An exponential (or, with a schedule, uniform) moving average of the parameters.

    The average is for evaluation: the optimizer keeps training the raw parameters, and after
    each step the average is moved towards them. It starts as a copy of the parameters given
    to `init`; `t = 0, 1, ...` counts the updates so far::

        a_0     = theta_0
        d_t     = decay(t)  (or the constant decay)
        a_{t+1} = d_t * a_t + (1 - d_t) * theta_{t+1}

    A schedule gives other averages: `decay=lambda t: t / (t + 1)` is the uniform (Polyak-
    Ruppert) average of every parameter vector passed to `update`, and
    `decay=lambda t: jnp.minimum(0.999, (1 + t) / (10 + t))` warms the decay up.

    Usage::

        averager = gradtx.params_ema(0.999)
        avg = averager.init(params)
        for batch in data:
            params, opt_state = train_step(params, opt_state, batch)
            avg = averager.update(params, avg)      # jit it together with the step
        evaluate(avg.ema)

    Numerics: the average is stored in `accumulator_dtype`, by default each parameter's own
    dtype. For bfloat16 parameters pass `accumulator_dtype=jnp.float32`: in bfloat16 (8 bits of
    mantissa) an increment `(1 - 0.999) * (theta - a)` is rounded away unless `|theta - a|`
    exceeds about `2 |a|`, so the average would stay frozen. The update is computed in float32
    (or wider) and `a` is rounded once per step; `a` is a copy, so the params can be donated.

    Args:
        decay: the decay, in [0, 1] (1 freezes the average), or a schedule of the update count.
        accumulator_dtype: floating dtype of the average; by default each parameter's dtype.

    Returns:
        A `ParamsEma(init, update)` pair of pure functions.

    References:
        Polyak and Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM
        Journal on Control and Optimization, 1992. Izmailov et al., "Averaging Weights Leads to
        Wider Optima and Better Generalization", UAI 2018. arXiv:1803.05407
    """
    fn = "params_ema"
    _checks.number(fn, "decay", decay)
    if not callable(decay):
        _checks.in_closed_unit_interval(fn, "decay", decay)
    accumulator_dtype = _checks.float_dtype(fn, "accumulator_dtype", accumulator_dtype)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        average = jax.tree.map(lambda p: jnp.array(p, accumulator_dtype or p.dtype), params)
        return ParamsEmaState(count=_numerics.zero_count(), ema=average)

    def update_fn(params, state):
        _checks.trees_match(
            fn,
            "state.ema",
            state.ema,
            "params",
            params,
            hint="The average was built for other parameters: call `init` with these parameters.",
        )
        d_t = decay(state.count) if callable(decay) else decay

        def leaf(p, a):
            cd = _pair_dtype(p, a)
            d = _numerics.as_dtype(d_t, cd)
            return (d * a.astype(cd) + (1 - d) * p.astype(cd)).astype(a.dtype)

        average = jax.tree.map(leaf, params, state.ema)
        return ParamsEmaState(count=_numerics.safe_increment(state.count), ema=average)

    return ParamsEma(init_fn, update_fn)
