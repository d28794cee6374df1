"""Input validation with messages that name the function, the argument and the leaf path.

Hyperparameters given as plain numbers are checked when a transformation is built; arrays that
are being traced (e.g. values set by `inject_hyperparams`) are let through. Tree structures and
shapes are checked while tracing, never inside the compiled step.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_MAX_STRUCTURE_CHARS = 300


def _concrete_scalar(value: Any) -> float | None:
    """`value` as a Python float if it is a concrete real scalar, else None (tracers, schedules)."""
    if callable(value) or isinstance(value, jax.core.Tracer):
        return None
    try:
        array = np.asarray(value)
    except Exception:
        return None
    if array.shape != () or not np.issubdtype(array.dtype, np.number):
        return None
    return float(array.real)


def _fail(fn: str, name: str, value: Any, requirement: str) -> None:
    raise ValueError(f"{fn}: `{name}` must be {requirement}, got {value!r}.")


def number(fn: str, name: str, value: Any) -> None:
    """Rejects booleans, strings and non-scalar arrays where a number or schedule is expected."""
    if isinstance(value, bool | np.bool_ | str) or value is None:
        raise TypeError(
            f"{fn}: `{name}` must be a number, an array scalar or a schedule, got {value!r}."
        )
    if isinstance(value, type) or (callable(value) and hasattr(value, "dtype")):
        raise TypeError(
            f"{fn}: `{name}` is the type {getattr(value, '__name__', value)}, not a value; "
            f"give a number such as `{getattr(value, '__name__', 'float')}(1e-3)`."
        )
    if callable(value) or isinstance(value, jax.core.Tracer):
        return
    shape = np.shape(value)
    if shape != ():
        raise TypeError(f"{fn}: `{name}` must be a scalar, got an array of shape {shape}.")


def finite(fn: str, name: str, value: Any) -> float | None:
    number(fn, name, value)
    x = _concrete_scalar(value)
    if x is not None and not math.isfinite(x):
        _fail(fn, name, value, "finite")
    return x


def non_negative(fn: str, name: str, value: Any) -> None:
    x = finite(fn, name, value)
    if x is not None and x < 0:
        _fail(fn, name, value, ">= 0")


def positive(fn: str, name: str, value: Any) -> None:
    x = finite(fn, name, value)
    if x is not None and x <= 0:
        _fail(fn, name, value, "> 0")


def in_unit_interval(fn: str, name: str, value: Any) -> None:
    """Accepts `0 <= value < 1` (decay rates such as `b1`, `b2`, `momentum`)."""
    x = finite(fn, name, value)
    if x is not None and not 0 <= x < 1:
        _fail(fn, name, value, "in [0, 1)")


def in_closed_unit_interval(fn: str, name: str, value: Any) -> None:
    """Accepts `0 <= value <= 1` (interpolation weights such as `step_size`)."""
    x = finite(fn, name, value)
    if x is not None and not 0 <= x <= 1:
        _fail(fn, name, value, "in [0, 1]")


def non_negative_int(fn: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        _fail(fn, name, value, "an integer >= 0")


def positive_int(fn: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        _fail(fn, name, value, "an integer > 0")


def transformation(fn: str, name: str, value: Any) -> None:
    from ._base import GradientTransformation

    if not isinstance(value, GradientTransformation):
        raise TypeError(
            f"{fn}: `{name}` must be a GradientTransformation (an `(init, update)` pair such as "
            f"`gradtx.adam(1e-3)`), got {type(value).__name__}."
        )


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_STRUCTURE_CHARS else text[:_MAX_STRUCTURE_CHARS] + "..."


def _describe_leaf(leaf: Any) -> str:
    shape = getattr(leaf, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"type {type(leaf).__name__}"


def trees_match(
    fn: str,
    expected_name: str,
    expected: Any,
    actual_name: str,
    actual: Any,
    *,
    hint: str = "",
) -> None:
    """Raises if `actual` differs from `expected` in tree structure or in any leaf's shape.

    The message names the first differing leaf path, e.g.
    ``apply_updates: updates['w'] has shape (3, 2), but params['w'] has shape (2, 3).``
    """
    expected_leaves, expected_def = jax.tree_util.tree_flatten_with_path(expected)
    actual_leaves, actual_def = jax.tree_util.tree_flatten_with_path(actual)
    suffix = f" {hint}" if hint else ""
    if expected_def != actual_def:
        expected_paths = {jax.tree_util.keystr(p) for p, _ in expected_leaves}
        actual_paths = {jax.tree_util.keystr(p) for p, _ in actual_leaves}
        missing = [
            p
            for p in (jax.tree_util.keystr(q) for q, _ in expected_leaves)
            if p not in actual_paths
        ]
        extra = [
            p
            for p in (jax.tree_util.keystr(q) for q, _ in actual_leaves)
            if p not in expected_paths
        ]
        if missing:
            detail = f"{expected_name}{missing[0]} has no counterpart in `{actual_name}`" + (
                f" ({len(missing)} leaves missing)" if len(missing) > 1 else ""
            )
        elif extra:
            detail = f"{actual_name}{extra[0]} has no counterpart in `{expected_name}`" + (
                f" ({len(extra)} extra leaves)" if len(extra) > 1 else ""
            )
        else:
            detail = (
                f"the containers differ: {_shorten(str(actual_def))} vs "
                f"{_shorten(str(expected_def))}"
            )
        raise ValueError(
            f"{fn}: `{actual_name}` and `{expected_name}` have different tree structures: "
            f"{detail}.{suffix}"
        )
    for (path, want), (_, got) in zip(expected_leaves, actual_leaves, strict=True):
        want_shape = getattr(want, "shape", None)
        got_shape = getattr(got, "shape", None)
        if (
            want_shape is not None
            and got_shape is not None
            and tuple(want_shape) != tuple(got_shape)
        ):
            key = jax.tree_util.keystr(path)
            raise ValueError(
                f"{fn}: {actual_name}{key} has {_describe_leaf(got)}, but "
                f"{expected_name}{key} has {_describe_leaf(want)}.{suffix}"
            )


STATE_HINT = (
    "The optimizer state was built for other parameters: call `init` with the parameters "
    "you are updating."
)


def require_params(fn: str, params: Any) -> None:
    if params is None:
        raise ValueError(
            f"{fn}: this transformation needs the current parameters. Call "
            f"`update(updates, state, params)`, passing `params` as the third argument."
        )


def require_value(fn: str, value: Any) -> None:
    """Raises unless `value` (the loss passed as `update(..., value=loss)`) is a scalar."""
    if value is None:
        raise ValueError(
            f"{fn}: this transformation needs the loss value. Call "
            f"`update(updates, state, params, value=loss)` (through `chain` too)."
        )
    shape = jnp.shape(value)
    if shape != ():
        raise ValueError(f"{fn}: `value` must be the scalar loss, got an array of shape {shape}.")


def floating_leaves(fn: str, name: str, tree: Any) -> None:
    """Raises if any leaf of `tree` is not a floating or complex array."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"{fn}: {name}{jax.tree_util.keystr(path)} has dtype {dtype}; optimizers need "
                f"floating-point leaves. Keep integer leaves out of the optimized tree (e.g. with "
                f"`gradtx.partition` or by splitting the params)."
            )


def real_floating_leaves(fn: str, name: str, tree: Any) -> None:
    """Like `floating_leaves`, and also rejects complex leaves."""
    floating_leaves(fn, name, tree)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise TypeError(
                f"{fn}: {name}{jax.tree_util.keystr(path)} has dtype {leaf.dtype}; complex "
                f"parameters are not supported. Optimize the real and imaginary parts as two "
                f"real leaves."
            )


def float_dtype(fn: str, name: str, dtype: Any) -> jnp.dtype | None:
    if dtype is None:
        return None
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{fn}: `{name}` must be a floating dtype, got {dtype!r}.") from e
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{fn}: `{name}` must be a floating dtype, got {dtype}.")
    return dtype
