"""Euclidean projections onto convex sets, for projected gradient methods.

Each function maps a pytree `x` to the nearest point `p` of a set (`argmin ||x - p||_2` with the
squared norm summed over all leaves) and returns it with `x`'s structure, shapes and dtypes.
Use them after `apply_updates`::

    params = gradtx.projection_non_negative(gradtx.apply_updates(params, updates))
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics, _tree
from ._clipping import clip_scale


def projection_non_negative(tree: Any) -> Any:
    """Projection onto the non-negative orthant: `p = max(x, 0)` element-wise (NaN stays NaN)."""
    _checks.floating_leaves("projection_non_negative", "tree", tree)
    return jax.tree.map(lambda x: jnp.maximum(x, jnp.zeros((), x.dtype)), tree)


def _is_scalar(bound: Any) -> bool:
    return jax.tree_util.treedef_is_leaf(jax.tree.structure(bound)) and jnp.ndim(bound) == 0


def _bounds(fn: str, name: str, bound: Any, tree: Any) -> list[Any]:
    """`bound` as one value per leaf of `tree`: a scalar is repeated, a tree must match `tree`."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if _is_scalar(bound):
        return [bound] * len(paths_leaves)
    hint = f"Give `{name}` as a scalar or as a tree like `tree`."
    # Compare the structures only; leaf shapes are checked below (a leaf may be a scalar).
    shapeless = lambda t: jax.tree.map(lambda _: 0, t)
    _checks.trees_match(fn, "tree", shapeless(tree), name, shapeless(bound), hint=hint)
    bounds = treedef.flatten_up_to(bound)
    for (path, x), b in zip(paths_leaves, bounds, strict=True):
        if jnp.ndim(b) != 0 and jnp.shape(b) != x.shape:
            key = jax.tree_util.keystr(path)
            raise ValueError(
                f"{fn}: {name}{key} has shape {jnp.shape(b)}, but tree{key} has shape "
                f"{x.shape}. {hint}"
            )
    return bounds


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def projection_box(tree: Any, lower: Any, upper: Any) -> Any:
    """Projection onto the box `lower <= p <= upper`: element-wise clipping.

    Rule::

        p = min(max(x, lower), upper)

    Args:
        tree: the pytree to project.
        lower: the lower bound: a scalar, or a tree like `tree` whose leaves are scalars or
            arrays of the leaf's shape.
        upper: the upper bound, in the same form.

    Raises:
        ValueError: if a concrete `lower` exceeds `upper` anywhere (the box is empty), or a
            bound tree does not match `tree`.
    """
    fn = "projection_box"
    _checks.floating_leaves(fn, "tree", tree)
    lowers, uppers = _bounds(fn, "lower", lower, tree), _bounds(fn, "upper", upper, tree)
    out = []
    paths_leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    for (path, x), lo, hi in zip(paths_leaves, lowers, uppers, strict=True):
        if _is_concrete(lo) and _is_concrete(hi) and np.any(np.asarray(lo) > np.asarray(hi)):
            if _is_scalar(lower) and _is_scalar(upper):
                detail = f"got lower={lower!r}, upper={upper!r}"
            else:
                detail = f"but lower > upper for tree{jax.tree_util.keystr(path)}"
            raise ValueError(f"{fn}: `lower` must be <= `upper` (the box is empty), {detail}.")
        lo = jnp.broadcast_to(jnp.asarray(lo).astype(x.dtype), x.shape)
        hi = jnp.broadcast_to(jnp.asarray(hi).astype(x.dtype), x.shape)
        out.append(jnp.minimum(jnp.maximum(x, lo), hi))
    return jax.tree.structure(tree).unflatten(out)


def projection_l2_ball(tree: Any, scale: chex.Numeric = 1.0) -> Any:
    """Projection onto the L2 ball of radius `scale` around 0, for the whole tree at once.

    Rule (`||x||` is the global norm over all leaves)::

        p = x                      if ||x|| <= scale
        p = x * scale / ||x||      otherwise

    A tree inside the ball is returned bit-for-bit unchanged; a tree whose norm is inf or NaN
    becomes NaN.

    Args:
        tree: the pytree to project.
        scale: the radius, > 0.
    """
    fn = "projection_l2_ball"
    _checks.positive(fn, "scale", scale)
    _checks.floating_leaves(fn, "tree", tree)
    factor = clip_scale(_tree.global_norm(tree), scale)

    def leaf(x):
        cd = _numerics.compute_dtype(x.dtype)
        return (x.astype(cd) * factor.astype(cd)).astype(x.dtype)

    return jax.tree.map(leaf, tree)


def projection_simplex(tree: Any, scale: chex.Numeric = 1.0) -> Any:
    """Projection onto the simplex `{p : p >= 0, sum(p) = scale}`, for the whole tree at once.

    All entries of all leaves form one vector `x` of length `n` (an array is a one-leaf tree).
    Sort-based algorithm of Duchi et al. (2008)::

        y     = x sorted in decreasing order
        rho   = max { j in 1..n : y_j - (sum_{i<=j} y_i - scale) / j > 0 }
        theta = (sum_{i<=rho} y_i - scale) / rho
        p     = max(x - theta, 0)

    Computed in float32 (float64 if a leaf is float64) and rounded once to each leaf's dtype,
    so a low-precision result sums to `scale` only up to its rounding.

    Args:
        tree: an array or a pytree of arrays to project.
        scale: the sum of the result, > 0 (1 for the probability simplex).

    References:
        Duchi, Shalev-Shwartz, Singer and Chandra, "Efficient Projections onto the l1-Ball for
        Learning in High Dimensions", ICML 2008.
    """
    fn = "projection_simplex"
    _checks.positive(fn, "scale", scale)
    _checks.floating_leaves(fn, "tree", tree)
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves or sum(x.size for x in leaves) == 0:
        raise ValueError(f"{fn}: `tree` has no entries; the simplex needs at least one.")
    for x in leaves:
        if jnp.iscomplexobj(x):
            raise TypeError(f"{fn}: `tree` must have real leaves, got dtype {x.dtype}.")
    cd = jnp.dtype(jnp.float32)
    for x in leaves:
        cd = _numerics.wider(cd, _numerics.compute_dtype(x.dtype))
    x = jnp.concatenate([leaf.astype(cd).reshape(-1) for leaf in leaves])
    s = _numerics.as_dtype(scale, cd)
    y = jnp.flip(jnp.sort(x))
    excess = jnp.cumsum(y) - s
    j = jnp.arange(1, x.size + 1, dtype=jnp.int32)
    active = y - excess / j.astype(cd) > 0
    rho = jnp.max(jnp.where(active, j, 1))  # y_1 - (y_1 - s) = s > 0: j = 1 is always active
    theta = excess[rho - 1] / rho.astype(cd)
    p = jnp.maximum(x - theta, jnp.zeros((), cd))
    out, start = [], 0
    for leaf in leaves:
        out.append(p[start : start + leaf.size].reshape(leaf.shape).astype(leaf.dtype))
        start += leaf.size
    return treedef.unflatten(out)
