"""Multiplying updates by a constant, a schedule, or a (signed) learning rate."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics
from ._base import EmptyState, GradientTransformation, ScalarOrSchedule, Schedule


def _scale_leaf(u: chex.Array, factor: chex.Numeric) -> chex.Array:
    return (_numerics.widen(u) * _numerics.cast_like(factor, _numerics.widen(u))).astype(u.dtype)


def scale_tree(updates, factor):
    """`factor * updates`, leaf by leaf, the factor cast to each leaf's compute dtype."""
    return jax.tree.map(lambda u: _scale_leaf(u, factor), updates)


def scale(step_size: chex.Numeric) -> GradientTransformation:
    """Multiplies every update by the constant `step_size`.

    Update rule::

        u_t = step_size * g_t

    The factor is cast to each leaf's dtype, so bfloat16 updates stay bfloat16.
    """
    _checks.finite("scale", "step_size", step_size)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return scale_tree(updates, step_size), state

    return GradientTransformation(init_fn, update_fn)


class ScaleByScheduleState(NamedTuple):
    """State of `scale_by_schedule`: the number of updates so far (an int32 scalar)."""

    count: chex.Array


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiplies every update by `step_size_fn(count)`, where `count` is the step number.

    Update rule::

        u_t = step_size_fn(t) * g_t,    t = 0, 1, 2, ...

    The counter saturates at the largest int32 rather than wrapping around.
    """
    if not callable(step_size_fn):
        raise TypeError(
            f"scale_by_schedule: `step_size_fn` must be a function of the step count, got "
            f"{step_size_fn!r}. Use `gradtx.scale` for a constant factor."
        )

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=_numerics.zero_count())

    def update_fn(updates, state, params=None):
        del params
        factor = step_size_fn(state.count)
        if jnp.shape(factor) != () or not jnp.issubdtype(jnp.result_type(factor), jnp.number):
            raise TypeError(
                f"scale_by_schedule: the schedule must return a real scalar for the step count, "
                f"got {jnp.result_type(factor)} of shape {jnp.shape(factor)}."
            )
        return scale_tree(updates, factor), ScaleByScheduleState(
            count=_numerics.safe_increment(state.count)
        )

    return GradientTransformation(init_fn, update_fn)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiplies updates by `-learning_rate` (a constant or a schedule of the step count).

    Update rule::

        u_t = -lr(t) * g_t        (u_t = lr(t) * g_t with flip_sign=False)

    The sign flip turns a descent direction into an update to add with `apply_updates`.
    A constant learning rate keeps no state; a schedule keeps a step counter.
    """
    _checks.number("scale_by_learning_rate", "learning_rate", learning_rate)
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    _checks.finite("scale_by_learning_rate", "learning_rate", learning_rate)
    return scale(sign * learning_rate)
