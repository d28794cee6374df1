"""Clipping updates element-wise or by their global norm."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import EmptyState, GradientTransformation


def _stateless(update_fn) -> GradientTransformation:
    def init_fn(params):
        del params
        return EmptyState()

    return GradientTransformation(init_fn, update_fn)


def clip(max_delta: chex.Numeric) -> GradientTransformation:
    """Clips every element of the updates to `[-max_delta, max_delta]`.

    Update rule::

        u_t = min(max(g_t, -max_delta), max_delta)
    """
    _checks.non_negative("clip", "max_delta", max_delta)

    def leaf(u):
        bound = _numerics.cast_like(max_delta, u)
        return jnp.clip(u, -bound, bound)

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(leaf, updates), state

    return _stateless(update_fn)


def global_norm(tree: chex.ArrayTree) -> chex.Array:
    """The L2 norm of all leaves of `tree` taken as one vector.

    Squares are summed in float32 for bfloat16/float16 leaves (float64 if a leaf is float64),
    and the gradient of the norm is 0, not NaN, when every leaf is zero.
    """
    return _tree.global_norm(tree)


def clip_scale(norm: chex.Array, max_norm: chex.Numeric) -> chex.Array:
    """The factor `clip_by_global_norm` multiplies by: 1 below `max_norm`, else `max_norm / norm`.

    Computed as `max_norm / (max(norm, max_norm) + 0 * norm)`: exactly 1 below the threshold,
    NaN when the norm is inf or NaN (so such a step is never applied as a silently zeroed or
    partial update), and ending in one division, which XLA computes once instead of copying
    the whole norm computation into every leaf's loop.
    """
    max_norm = jnp.asarray(max_norm).astype(norm.dtype)
    return max_norm / (jnp.maximum(norm, max_norm) + 0 * norm)


def clip_by_global_norm(max_norm: chex.Numeric) -> GradientTransformation:
    """Rescales the updates so that their global L2 norm is at most `max_norm`.

    Update rule::

        n   = sqrt(sum over all leaves of |g|^2)
        u_t = g_t                   if n <= max_norm
        u_t = g_t * max_norm / n    otherwise

    Updates below the threshold are returned bit-for-bit unchanged. Policy for non-finite
    gradients: if `n` is inf or NaN, every returned update is NaN, so the step is never applied
    as a silently zeroed or partial update and is easy to detect and skip (e.g. with
    `apply_if_finite`). This is unlike `torch.nn.utils.clip_grad_norm_`, which returns zeros for
    the finite entries and NaN for the others in that case.

    Args:
        max_norm: the largest global norm allowed, `> 0` (typically 1.0).

    References:
        Pascanu, Mikolov and Bengio, "On the difficulty of training recurrent neural networks",
        ICML 2013. arXiv:1211.5063
    """
    _checks.positive("clip_by_global_norm", "max_norm", max_norm)

    def update_fn(updates, state, params=None):
        del params
        factor = clip_scale(_tree.global_norm(updates), max_norm)

        def leaf(u):
            return (_numerics.widen(u) * factor.astype(_numerics.compute_dtype(u.dtype))).astype(
                u.dtype
            )

        return jax.tree.map(leaf, updates), state

    return _stateless(update_fn)
