"""Guarding against non-finite or oversized gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._accumulate import zeros_like_output
from ._base import GradientTransformation, GradientTransformationExtraArgs, Params, Updates


def _all_finite(tree: Any) -> chex.Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.ones([], bool)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


class ApplyIfFiniteState(NamedTuple):
    """State of `apply_if_finite`.

    Attributes:
        notfinite_count: non-finite steps in a row up to now, 0 after a finite one (int32).
        last_finite: whether the last step's updates were all finite (bool scalar).
        total_notfinite: non-finite steps since `init`, never reset (int32, saturating).
        inner_state: the inner transformation's state.
    """

    notfinite_count: chex.Array
    last_finite: chex.Array
    total_notfinite: chex.Array
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformationExtraArgs:
    """Skips the steps whose incoming updates hold an inf or a NaN, up to a limit.

    Update rule (c counts non-finite steps in a row, m = max_consecutive_errors)::

        finite = every element of g_t is finite
        c      = 0 if finite else c + 1
        u_t, inner_state = inner(g_t, inner_state)    if finite or c > m
        u_t = 0, inner_state unchanged                otherwise

    The test is on the updates this wrapper receives (the gradients), before `inner` runs;
    `inner` runs only on steps it accepts (under `jax.lax.cond`). Up to `m` non-finite steps in
    a row are skipped; the `(m + 1)`-th in a row and every later one until a finite step are
    passed to `inner` as they are, so a persistent failure shows up in the parameters instead
    of silently stalling training. `m = 0` skips nothing.

    Args:
        inner: the transformation to guard.
        max_consecutive_errors: how many non-finite steps in a row to skip, an integer >= 0.

    References:
        Micikevicius et al., "Mixed Precision Training", ICLR 2018. arXiv:1710.03740
        (skipping steps with inf or NaN gradients).
    """
    fn = "apply_if_finite"
    _checks.transformation(fn, "inner", inner)
    _checks.non_negative_int(fn, "max_consecutive_errors", max_consecutive_errors)
    inner_kwargs = isinstance(inner, GradientTransformationExtraArgs)

    def init_fn(params):
        return ApplyIfFiniteState(
            notfinite_count=_numerics.zero_count(),
            last_finite=jnp.ones([], bool),
            total_notfinite=_numerics.zero_count(),
            inner_state=inner.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        notfinite_count = jnp.where(
            finite,
            jnp.zeros_like(state.notfinite_count),
            _numerics.safe_increment(state.notfinite_count),
        )

        def step(operands):
            updates, inner_state, params = operands
            kwargs = extra_args if inner_kwargs else {}
            return inner.update(updates, inner_state, params, **kwargs)

        def reject(operands):
            return zeros_like_output(step, operands)[0], operands[1]

        accept = jnp.logical_or(finite, notfinite_count > max_consecutive_errors)
        new_updates, inner_state = jax.lax.cond(
            accept, step, reject, (updates, state.inner_state, params)
        )
        return new_updates, ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(
                finite, state.total_notfinite, _numerics.safe_increment(state.total_notfinite)
            ),
            inner_state=inner_state,
        )

    return GradientTransformationExtraArgs(init_fn, update_fn)


class ZeroNansState(NamedTuple):
    """State of `zero_nans`: per leaf, a bool scalar telling whether the last step had a NaN."""

    found_nan: Any


def zero_nans() -> GradientTransformation:
    """Replaces every NaN in the updates by 0 and records, per leaf, whether there was one.

    Update rule::

        u_t = 0 where g_t is NaN, g_t elsewhere      (inf is kept)
        found_nan[leaf] = any(isnan(g_t[leaf]))

    The updates keep their dtype. `found_nan` is for monitoring; the step does not read it.
    """
    fn = "zero_nans"

    def init_fn(params):
        return ZeroNansState(found_nan=jax.tree.map(lambda _: jnp.zeros([], bool), params))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn,
            "state.found_nan",
            state.found_nan,
            "updates",
            jax.tree.map(lambda _: True, updates),
            hint=_checks.STATE_HINT,
        )

        def leaf(u):
            nan = jnp.isnan(u)
            return jnp.where(nan, jnp.zeros([], u.dtype), u), jnp.any(nan)

        new_updates, found_nan = _tree.map_unzip(leaf, 2, updates)
        return new_updates, ZeroNansState(found_nan=found_nan)

    return GradientTransformation(init_fn, update_fn)


def skip_not_finite(
    updates: Updates, gradient_step: chex.Array, params: Params | None
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """A `should_skip_update_fn` for `multi_steps`: skip when an update holds an inf or a NaN.

    Returns:
        `(skip, {"should_skip": skip, "num_not_finite": n})`, `n` the number of non-finite
        elements (int32).
    """
    del gradient_step, params
    counts = [jnp.sum(~jnp.isfinite(x), dtype=jnp.int32) for x in jax.tree.leaves(updates)]
    num_not_finite = jnp.sum(jnp.stack(counts)) if counts else jnp.zeros([], jnp.int32)
    should_skip = num_not_finite > 0
    return should_skip, {"should_skip": should_skip, "num_not_finite": num_not_finite}


def skip_large_updates(
    updates: Updates,
    gradient_step: chex.Array,
    params: Params | None,
    max_squared_norm: chex.Numeric,
) -> tuple[chex.Array, dict[str, chex.Array]]:
    """A `should_skip_update_fn` for `multi_steps`: skip unless `||updates||^2 < max_squared_norm`.

    Rule::

        n2   = sum over all leaves of |g|^2       (float32, or float64 if a leaf is)
        skip = not (n2 < max_squared_norm)        (so a NaN or inf norm is skipped too)

    Bind the threshold with `functools.partial(skip_large_updates, max_squared_norm=...)`.
    `multi_steps(inner, 1, should_skip_update_fn=...)` then applies `inner` on every step
    except the skipped ones, which give zero updates and leave the state unchanged.

    Returns:
        `(skip, {"should_skip": skip, "norm_squared": n2})`.
    """
    del gradient_step, params
    _checks.finite("skip_large_updates", "max_squared_norm", max_squared_norm)
    norm_squared = _tree.sum_of_squares(updates)
    bound = _numerics.as_dtype(max_squared_norm, norm_squared.dtype)
    should_skip = jnp.logical_not(norm_squared < bound)
    return should_skip, {"should_skip": should_skip, "norm_squared": norm_squared}
