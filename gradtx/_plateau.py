"""Wrappers that act on whole steps: reduce on plateau, apply every k, apply conditionally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, GradientTransformationExtraArgs, Updates
from ._scaling import scale_tree


class ReduceOnPlateauState(NamedTuple):
    """State of `reduce_on_plateau` (field names as in Optax's `ReduceLROnPlateauState`).

    Attributes:
        scale: the factor the updates are multiplied by.
        best_value: the best (lowest) averaged loss so far.
        plateau_count: evaluations without improvement since the last improvement or reduction.
        cooldown_count: evaluations left during which no reduction happens.
        count: loss values accumulated for the next evaluation (int32).
        avg_value: the mean of those loss values.
    """

    scale: chex.Array
    best_value: chex.Array
    plateau_count: chex.Array
    cooldown_count: chex.Array
    count: chex.Array
    avg_value: chex.Array


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformationExtraArgs:
    """Scales updates by a factor that drops when the loss stops improving.

    Call `update(updates, state, params, value=loss)`. Every `accumulation_size` calls, the
    mean `a` of the loss values received since the last evaluation is compared with the best::

        improved = a < (1 - rtol) * best - atol
        best     = a if improved else best
        plateau  = 0 if improved else plateau + 1
        if cooldown_count > 0:       cooldown_count -= 1;  plateau = 0
        elif plateau == patience:    scale = max(factor * scale, min_scale)
                                     plateau = 0;  cooldown_count = cooldown
        u_t = scale * g_t

    The scale applies from the step whose loss completed the evaluation. Semantics are those
    of `optax.contrib.reduce_on_plateau` (which drops at `plateau == patience`, one evaluation
    earlier than PyTorch's `ReduceLROnPlateau`). It multiplies the updates: put it after the
    optimizer in a `chain`.

    Args:
        factor: the multiplier applied at a plateau, in (0, 1).
        patience: evaluations without improvement before the scale drops, an integer > 0.
        rtol: relative improvement needed, in [0, 1].
        atol: absolute improvement needed, >= 0 (`rtol` and `atol` cannot both be 0).
        cooldown: evaluations after a drop during which the plateau count stays 0.
        accumulation_size: loss values averaged per evaluation, an integer > 0 (more than 1
            when `value` is a noisy mini-batch loss).
        min_scale: the scale never drops below this, >= 0.

    Raises:
        ValueError: from `update` when `value` is not given or is not a scalar.
    """
    fn = "reduce_on_plateau"
    f = _checks.finite(fn, "factor", factor)
    if f is not None and not 0 < f < 1:
        raise ValueError(f"{fn}: `factor` must be in (0, 1), got {factor!r}.")
    _checks.positive_int(fn, "patience", patience)
    _checks.in_closed_unit_interval(fn, "rtol", rtol)
    _checks.non_negative(fn, "atol", atol)
    if isinstance(rtol, int | float) and isinstance(atol, int | float) and rtol == atol == 0:
        raise ValueError(f"{fn}: `rtol` and `atol` cannot both be 0; make one of them positive.")
    _checks.non_negative_int(fn, "cooldown", cooldown)
    _checks.positive_int(fn, "accumulation_size", accumulation_size)
    _checks.non_negative(fn, "min_scale", min_scale)

    def init_fn(params):
        sd = _tree.scalar_dtype(params)
        return ReduceOnPlateauState(
            scale=jnp.ones([], sd),
            best_value=jnp.full([], jnp.inf, sd),
            plateau_count=_numerics.zero_count(),
            cooldown_count=_numerics.zero_count(),
            count=_numerics.zero_count(),
            avg_value=jnp.zeros([], sd),
        )

    def evaluate(state):
        sd = state.scale.dtype
        avg = state.avg_value
        threshold = (1 - _numerics.as_dtype(rtol, sd)) * state.best_value
        improved = avg < threshold - _numerics.as_dtype(atol, sd)
        zero = jnp.zeros_like(state.plateau_count)
        plateau = jnp.where(improved, zero, _numerics.safe_increment(state.plateau_count))
        cooling = state.cooldown_count > 0
        drop = jnp.logical_and(jnp.logical_not(cooling), plateau == patience)
        scale = jnp.where(drop, state.scale * _numerics.as_dtype(factor, sd), state.scale)
        scale = jnp.where(cooling, scale, jnp.maximum(scale, _numerics.as_dtype(min_scale, sd)))
        cooldown_count = jnp.where(drop, jnp.full_like(zero, cooldown), zero)
        return ReduceOnPlateauState(
            scale=scale,
            best_value=jnp.where(improved, avg, state.best_value),
            plateau_count=jnp.where(jnp.logical_or(cooling, drop), zero, plateau),
            cooldown_count=jnp.where(cooling, state.cooldown_count - 1, cooldown_count),
            count=zero,
            avg_value=jnp.zeros_like(avg),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        _checks.require_value(fn, value)
        sd = state.avg_value.dtype
        count = _numerics.safe_increment(state.count)
        total = state.count.astype(sd) * state.avg_value + jnp.asarray(value).astype(sd)
        state = state._replace(count=count, avg_value=total / count.astype(sd))
        evaluated = evaluate(state)
        ready = count == accumulation_size
        state = jax.tree.map(lambda new, old: jnp.where(ready, new, old), evaluated, state)
        return scale_tree(updates, state.scale), state

    return GradientTransformationExtraArgs(init_fn, update_fn)


class ApplyEveryState(NamedTuple):
    """State of `apply_every`: the position in the cycle of k steps (int32) and the sum of the
    updates received in it."""

    count: chex.Array
    grad_acc: Updates


def apply_every(k: int = 1) -> GradientTransformation:
    """Sums the updates of k steps and emits the sum every k-th step, zeros in between.

    Update rule (t = 0, 1, ...)::

        acc_t = g_t                  if t % k == 0
        acc_t = acc_{t-1} + g_t      otherwise
        u_t   = acc_t                if t % k == k - 1, else 0

    As in Optax, the transformations before it in a `chain` still update their state at
    every step; for an optimizer step on averaged micro-batch gradients use `multi_steps`.

    Args:
        k: the number of steps to accumulate, an integer > 0 (1: every step, unchanged).
    """
    fn = "apply_every"
    _checks.positive_int(fn, "k", k)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ApplyEveryState(count=_numerics.zero_count(), grad_acc=_tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn, "state.grad_acc", state.grad_acc, "updates", updates, hint=_checks.STATE_HINT
        )
        first, emit = state.count == 0, state.count == k - 1

        def leaf(g, acc):
            cd = _numerics.compute_dtype(g.dtype)
            total = jnp.where(first, 0, acc.astype(cd)) + g.astype(cd)
            return jnp.where(emit, total, 0).astype(g.dtype), total.astype(acc.dtype)

        u, acc = _tree.map_unzip(leaf, 2, updates, state.grad_acc)
        count = jnp.where(emit, jnp.zeros_like(state.count), state.count + 1)
        return u, ApplyEveryState(count=count, grad_acc=acc)

    return GradientTransformation(init_fn, update_fn)


class ConditionallyTransformState(NamedTuple):
    """State of `conditionally_transform`: the inner state and the number of calls so far
    (`step`, int32, as in Optax)."""

    inner_state: Any
    step: chex.Array


def conditionally_transform(
    inner: GradientTransformation,
    should_transform_fn: Callable[..., Any],
    forward_extra_args: bool = False,
) -> GradientTransformationExtraArgs:
    """Runs `inner` at the steps where `should_transform_fn(step)` is true; else passes through.

    Update rule (step = 0, 1, ... counts calls)::

        u_t, inner_state = inner.update(g_t, inner_state, params)   if should_transform_fn(step)
        u_t = g_t, inner_state unchanged                            otherwise

    `inner` runs under `jax.lax.cond`, so the condition may depend on traced values; `inner`
    must return updates of the dtypes and shapes it receives. Keyword arguments of `update`
    go to `inner`, and to `should_transform_fn` too if `forward_extra_args`.

    Args:
        inner: the transformation to run conditionally.
        should_transform_fn: a function of the int32 step count (and the extra keyword
            arguments) returning a boolean scalar.
        forward_extra_args: also pass `update`'s keyword arguments to `should_transform_fn`.
    """
    fn = "conditionally_transform"
    _checks.transformation(fn, "inner", inner)
    if not callable(should_transform_fn):
        raise TypeError(
            f"{fn}: `should_transform_fn` must be a function of the step count returning a "
            f"bool, got {should_transform_fn!r}."
        )
    takes_kwargs = isinstance(inner, GradientTransformationExtraArgs)

    def init_fn(params):
        return ConditionallyTransformState(inner.init(params), _numerics.zero_count())

    def update_fn(updates, state, params=None, **extra_args):
        flag = should_transform_fn(state.step, **(extra_args if forward_extra_args else {}))
        flag = jnp.asarray(flag)
        if flag.shape != () or flag.dtype != jnp.bool_:
            raise TypeError(
                f"{fn}: `should_transform_fn` must return a boolean scalar, got "
                f"{flag.dtype}{list(flag.shape)}."
            )

        def run(operands):
            updates, inner_state, params = operands
            kwargs = extra_args if takes_kwargs else {}
            return inner.update(updates, inner_state, params, **kwargs)

        def skip(operands):
            return operands[0], operands[1]

        updates, inner_state = jax.lax.cond(flag, run, skip, (updates, state.inner_state, params))
        step = _numerics.safe_increment(state.step)
        return updates, ConditionallyTransformState(inner_state, step)

    return GradientTransformationExtraArgs(init_fn, update_fn)
