"""Private tree math shared by the transformations."""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp

from . import _numerics


def zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Zeros shaped like each leaf of `tree`, in `dtype` if given, else in the leaf's dtype."""
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.result_type(x)), tree)


def bias_correction(decay: chex.Numeric, count: chex.Array, dtype: Any) -> chex.Array:
    """`1 - decay**count` as a scalar of `dtype`'s compute dtype (float32 or wider).

    For a plain-number `decay` it is evaluated as `-expm1(count * log(decay))` with the log
    taken in float64 on the host: rounding `0.999` to float32 first and raising it to a power
    would make `1 - 0.999**t` 1.3e-5 too small (relative) at every step.
    """
    cdtype = _numerics.compute_dtype(dtype)
    t = count.astype(cdtype)
    if isinstance(decay, int | float) and 0 < decay < 1:
        return -jnp.expm1(t * jnp.asarray(math.log(decay), cdtype))
    return 1 - jnp.asarray(decay).astype(cdtype) ** t


def sum_of_squares(tree: Any) -> chex.Array:
    """Sum of `|x|^2` over all leaves, accumulated in float32 (or float64 if any leaf is)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.float32)
    dtypes = [_numerics.compute_dtype(_numerics.real_dtype(x.dtype)) for x in leaves]
    acc = jnp.dtype(jnp.float64) if jnp.dtype(jnp.float64) in dtypes else jnp.dtype(jnp.float32)
    return jnp.sum(
        jnp.stack([jnp.sum(_numerics.abs_sq(_numerics.widen(x)), dtype=acc) for x in leaves])
    )


def global_norm(tree: Any) -> chex.Array:
    """The L2 norm of all leaves of `tree` taken together, with a safe gradient at 0.

    Squares are accumulated in float32 for low-precision leaves (float64 if any leaf is float64).
    """
    return _numerics.safe_sqrt(sum_of_squares(tree))


def map_unzip(fn, num_outputs: int, tree: Any, *rest: Any) -> tuple[Any, ...]:
    """Maps `fn` (returning a `num_outputs`-tuple) over leaves; returns `num_outputs` trees.

    `rest` must have the structure of `tree`. One traversal produces every output, so a
    transformation can update its direction and all its state buffers in a single per-leaf
    function, which XLA compiles into one loop per leaf.
    """
    leaves, treedef = jax.tree.flatten(tree)
    others = [treedef.flatten_up_to(r) for r in rest]
    results = [fn(*args) for args in zip(leaves, *others, strict=True)]
    if not results:
        return tuple(treedef.unflatten([]) for _ in range(num_outputs))
    return tuple(treedef.unflatten([r[i] for r in results]) for i in range(num_outputs))


def vdot(a: Any, b: Any) -> chex.Array:
    """Sum over leaves of `sum(a * b)` for real trees of equal structure, as a scalar.

    Accumulated in float32 for float32 and low-precision leaves, in float64 if any leaf is.
    """
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    acc = scalar_dtype((a, b))
    terms = [
        jnp.sum(x.astype(acc) * y.astype(acc)) for x, y in zip(leaves_a, leaves_b, strict=True)
    ]
    return jnp.sum(jnp.stack(terms)) if terms else jnp.zeros([], acc)


def scalar_dtype(tree: Any) -> jnp.dtype:
    """The dtype of tree-wide scalars (norms, step sizes): float32, or float64 if a leaf is."""
    dtypes = [_numerics.compute_dtype(_numerics.real_dtype(x.dtype)) for x in jax.tree.leaves(tree)]
    return jnp.dtype(jnp.float64) if jnp.dtype(jnp.float64) in dtypes else jnp.dtype(jnp.float32)
