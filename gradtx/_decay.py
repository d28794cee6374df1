"""Decoupled weight decay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, _numerics
from ._base import EmptyState, GradientTransformation, Params
from ._foreach import reject_packed

MaskOrFn = Any | Callable[[Params], Any] | None


def resolve_mask(fn: str, mask: MaskOrFn, params: Params) -> Any:
    """The boolean pytree `mask` (or `mask(params)`), checked against `params`' structure."""
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    reject_packed(fn, params)
    tree = mask(params) if callable(mask) else mask
    _checks.trees_match(
        fn,
        "params",
        params,
        "mask",
        tree,
        hint="Give one bool per parameter leaf, or a function of the params returning such a tree.",
    )
    return tree


def add_decayed_weights(weight_decay: float = 0.0, mask: MaskOrFn = None) -> GradientTransformation:
    """Adds `weight_decay * params` to the updates (decoupled weight decay).

    Update rule::

        u_t = g_t + weight_decay * theta_{t-1}        (for leaves where mask is True)

    Placed before `scale_by_learning_rate`, the decay is scaled by the learning rate, as in
    AdamW; it is never rescaled by an adaptive preconditioner.

    Args:
        weight_decay: the decay rate, >= 0.
        mask: a pytree of bools shaped like the params (True = decay this leaf), or a function
            of the params returning one; by default every leaf is decayed.

    Raises:
        ValueError: from `update` if `params` is not given.

    References:
        Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
        arXiv:1711.05101
    """
    fn = "add_decayed_weights"
    _checks.non_negative(fn, "weight_decay", weight_decay)

    def init_fn(params):
        del params
        return EmptyState()

    def update_fn(updates, state, params=None):
        _checks.require_params(fn, params)
        _checks.trees_match(fn, "params", params, "updates", updates)
        flags = resolve_mask(fn, mask, params)

        def leaf(u, p, decay):
            if isinstance(decay, bool | np.bool_) and not decay:
                return u
            cd = _numerics.compute_dtype(u.dtype)
            wd = _numerics.as_dtype(weight_decay, cd)
            decayed = (u.astype(cd) + wd * p.astype(cd)).astype(u.dtype)
            return decayed if isinstance(decay, bool | np.bool_) else jnp.where(decay, decayed, u)

        return jax.tree.map(leaf, updates, params, flags), state

    return GradientTransformation(init_fn, update_fn)
