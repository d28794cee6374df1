"""Private tree math shared by the transformations."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp

from . import _numerics


def zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Zeros shaped like each leaf of `tree`, in `dtype` if given, else in the leaf's dtype."""
    return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.result_type(x)), tree)


def bias_correction(decay: chex.Numeric, count: chex.Array, dtype: Any) -> chex.Array:
    """`1 - decay**count` as a scalar of `dtype`, computed in float32 or wider.

    Computing the power in the leaf's low-precision dtype would lose most of its digits
    (`0.999` is `0.998` in bfloat16), so the scalar is formed in the compute dtype.
    """
    cdtype = _numerics.compute_dtype(dtype)
    decay = jnp.asarray(decay).astype(cdtype)
    return 1 - decay ** count.astype(cdtype)


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
