"""Applying updates to parameters."""

from __future__ import annotations

import jax

from . import _checks, _numerics
from ._base import Params, Updates


def _add(p, u):
    if p is None:
        return None
    wide = _numerics.wider(p.dtype, u.dtype)
    return (p.astype(wide) + u.astype(wide)).astype(p.dtype)


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns `params + updates`, leaf by leaf, each result in its parameter's dtype.

    The sum is formed in the wider of the two dtypes and rounded once to the parameter's dtype,
    so a bfloat16 parameter stays bfloat16 even when its update is float32.

    Raises:
        ValueError: if the trees differ in structure or a leaf's shape, naming the first
            differing leaf path.
    """
    _checks.trees_match(
        "apply_updates",
        "params",
        params,
        "updates",
        updates,
        hint="The updates must come from gradients of these parameters.",
    )
    _checks.floating_leaves("apply_updates", "params", params)
    _checks.floating_leaves("apply_updates", "updates", updates)
    return jax.tree.map(_add, params, updates, is_leaf=lambda x: x is None)
