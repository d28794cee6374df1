"""Gradient accumulation: one optimizer step for every k micro-batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, GradientTransformationExtraArgs, Params, Updates

ShouldSkipFn = Callable[[Updates, chex.Array, Params | None], tuple[chex.Array, Any]]


class MultiStepsState(NamedTuple):
    """State of `multi_steps`.

    Attributes:
        mini_step: micro-batches accumulated since the last real update (int32 scalar).
        gradient_step: real updates so far, i.e. steps of the inner transformation.
        inner_opt_state: the inner transformation's state; it changes only on real updates.
        acc_grads: the running mean (or sum) of the gradients accumulated since the last real
            update, in `accumulator_dtype`.
        skip_state: what `should_skip_update_fn` last returned besides its flag (`()` without
            one).
    """

    mini_step: chex.Array
    gradient_step: chex.Array
    inner_opt_state: Any
    acc_grads: Updates
    skip_state: Any = ()


def _no_skip(updates, gradient_step, params):
    del updates, gradient_step, params
    return jnp.zeros([], bool), ()


def _steps_per_update(every_k_schedule, gradient_step):
    if not callable(every_k_schedule):
        return jnp.asarray(every_k_schedule, jnp.int32)
    k = jnp.asarray(every_k_schedule(gradient_step))
    if jnp.issubdtype(k.dtype, jnp.inexact):
        k = jnp.round(k)
    return jnp.maximum(k.astype(jnp.int32), 1)


def zeros_like_output(fn, *args):
    """Zeros with the shapes and dtypes of `fn(*args)`, without running `fn`."""
    shapes = jax.eval_shape(fn, *args)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def multi_steps(
    inner: GradientTransformation,
    every_k_schedule: int | Callable[[chex.Array], chex.Numeric],
    *,
    use_grad_mean: bool = True,
    should_skip_update_fn: ShouldSkipFn | None = None,
    accumulator_dtype: Any = None,
) -> GradientTransformationExtraArgs:
    """Accumulates `k` micro-batch gradients, then steps `inner` once on their mean.

    Update rule (n counts micro-batches since the last real update, s counts real updates)::

        a_n = a_{n-1} + (g_t - a_{n-1}) / n         (running mean; a_n = a_{n-1} + g_t if
                                                     use_grad_mean=False)
        k   = every_k_schedule(s)
        u_t = 0,  inner state unchanged              if n < k
        u_t, inner_state = inner(a_n, inner_state)   if n = k; then n = 0, a = 0, s = s + 1

    With micro-batches of equal size and a loss that is a mean over the batch, the mean of the
    k gradients is the gradient of the concatenated batch, so `k` micro-steps give the same
    parameters as one step on a k times larger batch. `inner`'s counts and schedules advance
    once per real update. The inner update runs under `jax.lax.cond`, only on real updates
    (under `vmap` with a batched step count, both branches run).

    Args:
        inner: the optimizer to step on the accumulated gradients.
        every_k_schedule: micro-batches per real update: an integer >= 1, or a function of
            the number of real updates so far (rounded to an integer, at least 1).
        use_grad_mean: average the accumulated gradients (the default) or sum them.
        should_skip_update_fn: `f(updates, gradient_step, params) -> (skip, info)` with
            `skip` a bool scalar (e.g. `skip_not_finite`, or `skip_large_updates` with a
            `max_squared_norm` bound by `functools.partial`). A skipped micro-batch is dropped
            as if it had never been seen: zero updates and nothing in the state changes but
            `skip_state`, which is set to `info`.
        accumulator_dtype: dtype of `acc_grads`; by default each leaf's compute dtype
            (float32 for bfloat16 and float16 gradients, the gradient's dtype otherwise).

    References:
        Ott, Edunov, Grangier and Auli, "Scaling Neural Machine Translation", WMT 2018.
        arXiv:1806.00187 (delayed updates: one optimizer step per several batches).
    """
    fn = "multi_steps"
    _checks.transformation(fn, "inner", inner)
    if not callable(every_k_schedule):
        _checks.positive_int(fn, "every_k_schedule", every_k_schedule)
    if should_skip_update_fn is not None and not callable(should_skip_update_fn):
        raise TypeError(
            f"{fn}: `should_skip_update_fn` must be a function "
            f"`(updates, gradient_step, params) -> (skip, info)`, got {should_skip_update_fn!r}."
        )
    should_skip = should_skip_update_fn or _no_skip
    accumulator_dtype = _checks.float_dtype(fn, "accumulator_dtype", accumulator_dtype)
    inner_kwargs = isinstance(inner, GradientTransformationExtraArgs)

    def acc_dtype(leaf):
        return accumulator_dtype or _numerics.compute_dtype(leaf.dtype)

    def init_fn(params):
        gradient_step = _numerics.zero_count()
        _, skip_state = should_skip(_tree.zeros_like(params), gradient_step, params)
        return MultiStepsState(
            mini_step=_numerics.zero_count(),
            gradient_step=gradient_step,
            inner_opt_state=inner.init(params),
            acc_grads=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), acc_dtype(p)), params),
            skip_state=skip_state,
        )

    def update_fn(updates, state, params=None, **extra_args):
        _checks.trees_match(
            fn, "state.acc_grads", state.acc_grads, "updates", updates, hint=_checks.STATE_HINT
        )
        skip, skip_state = should_skip(updates, state.gradient_step, params)
        skip = jnp.asarray(skip)
        if skip.shape != () or skip.dtype != jnp.dtype(bool):
            raise ValueError(
                f"{fn}: `should_skip_update_fn` must return a bool scalar as its first output, "
                f"got an array of dtype {skip.dtype} and shape {skip.shape}."
            )
        k = _steps_per_update(every_k_schedule, state.gradient_step)
        seen = _numerics.safe_increment(state.mini_step)  # micro-batches including this one

        def leaf(g, a):
            cd = _numerics.wider(_numerics.compute_dtype(g.dtype), _numerics.compute_dtype(a.dtype))
            gw, aw = g.astype(cd), a.astype(cd)
            if use_grad_mean:
                acc = aw + (gw - aw) / seen.astype(cd)
            else:
                acc = aw + gw
            return acc.astype(a.dtype), acc.astype(g.dtype)

        acc_grads, grads = _tree.map_unzip(leaf, 2, updates, state.acc_grads)
        emit = jnp.logical_and(jnp.logical_not(skip), seen >= k)

        def step(operands):
            grads, inner_state, params = operands
            kwargs = extra_args if inner_kwargs else {}
            return inner.update(grads, inner_state, params, **kwargs)

        def hold(operands):
            return zeros_like_output(step, operands)[0], operands[1]

        operands = (grads, state.inner_opt_state, params)
        new_updates, inner_state = jax.lax.cond(emit, step, hold, operands)

        def pick(on_emit, on_skip, otherwise):
            return jnp.where(emit, on_emit, jnp.where(skip, on_skip, otherwise))

        acc_grads = jax.tree.map(
            lambda new, old: pick(jnp.zeros_like(old), old, new), acc_grads, state.acc_grads
        )
        return new_updates, MultiStepsState(
            mini_step=pick(jnp.zeros_like(seen), state.mini_step, seen),
            gradient_step=jnp.where(
                emit, _numerics.safe_increment(state.gradient_step), state.gradient_step
            ),
            inner_opt_state=inner_state,
            acc_grads=acc_grads,
            skip_state=skip_state,
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)


class MultiSteps:
    """`multi_steps` as an object with `init`, `update` and `gradient_transformation()`.

    Arguments are those of `multi_steps`. `has_updated(state)` tells whether the last call to
    `update` that was not skipped by `should_skip_update_fn` made a real update.
    """

    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[chex.Array], chex.Numeric],
        *,
        use_grad_mean: bool = True,
        should_skip_update_fn: ShouldSkipFn | None = None,
        accumulator_dtype: Any = None,
    ):
        self.inner_opt = opt
        self._tx = multi_steps(
            opt,
            every_k_schedule,
            use_grad_mean=use_grad_mean,
            should_skip_update_fn=should_skip_update_fn,
            accumulator_dtype=accumulator_dtype,
        )

    def init(self, params: Params) -> MultiStepsState:
        return self._tx.init(params)

    def update(self, updates, state, params=None, **extra_args):
        return self._tx.update(updates, state, params, **extra_args)

    def gradient_transformation(self) -> GradientTransformationExtraArgs:
        return self._tx

    @staticmethod
    def has_updated(state: MultiStepsState) -> chex.Array:
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)
