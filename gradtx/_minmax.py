"""Optimistic gradient descent for min-max games."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    ScalarOrSchedule,
    Updates,
)
from ._combine import chain
from ._scaling import scale_by_learning_rate


class ScaleByOptimisticGradientState(NamedTuple):
    """State of `scale_by_optimistic_gradient`: whether no step was taken yet (a bool scalar)
    and the previous gradient."""

    is_initial_step: chex.Array
    previous_gradient: Updates


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0) -> GradientTransformation:
    """The optimistic direction: the gradient plus a correction by the previous gradient.

    Update rule (g_{-1} = g_0, so the first direction is `alpha * g_0`)::

        u_t = (alpha + beta) * g_t - beta * g_{t-1}

    Args:
        alpha: weight of the current gradient, >= 0.
        beta: weight of the change since the previous gradient, >= 0.

    References:
        Mokhtari, Ozdaglar and Pattathil, "A Unified Analysis of Extra-gradient and Optimistic
        Gradient Methods for Saddle Point Problems: Proximal Point Approach", AISTATS 2020.
        arXiv:1901.08511
    """
    fn = "scale_by_optimistic_gradient"
    _checks.non_negative(fn, "alpha", alpha)
    _checks.non_negative(fn, "beta", beta)

    def init_fn(params):
        _checks.floating_leaves(fn, "params", params)
        return ScaleByOptimisticGradientState(
            is_initial_step=jnp.ones([], bool), previous_gradient=_tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(
            fn,
            "state.previous_gradient",
            state.previous_gradient,
            "updates",
            updates,
            hint=_checks.STATE_HINT,
        )

        def leaf(g, prev):
            cd = _numerics.compute_dtype(g.dtype)
            a, b = _numerics.as_dtype(alpha, cd), _numerics.as_dtype(beta, cd)
            gw = g.astype(cd)
            last = jnp.where(state.is_initial_step, gw, prev.astype(cd))
            return ((a + b) * gw - b * last).astype(g.dtype), g.astype(prev.dtype)

        u, prev = _tree.map_unzip(leaf, 2, updates, state.previous_gradient)
        return u, ScaleByOptimisticGradientState(jnp.zeros([], bool), prev)

    return GradientTransformation(init_fn, update_fn)


def optimistic_gradient_descent(
    learning_rate: ScalarOrSchedule, alpha: float = 1.0, beta: float = 1.0
) -> GradientTransformationExtraArgs:
    """Optimistic gradient descent (OGD), for min-max problems such as GANs.

    Update rule (see `scale_by_optimistic_gradient`; the first step is `-lr(0) * alpha * g_0`)::

        x_{t+1} = x_t - lr(t) * ((alpha + beta) * g_t - beta * g_{t-1})

    With `alpha = beta = 1` this is `x_{t+1} = x_t - 2 lr g_t + lr g_{t-1}` of Daskalakis et al.
    For a game `min_x max_y f(x, y)`, optimize `(x, y)` together with the gradient
    `(df/dx, -df/dy)`: unlike simultaneous gradient descent-ascent, which spirals away from
    the equilibrium of a bilinear game, OGD converges to it. This is
    `chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))`.

    References:
        Daskalakis, Ilyas, Syrgkanis and Zeng, "Training GANs with Optimism", ICLR 2018.
        arXiv:1711.00141. Mokhtari, Ozdaglar and Pattathil, "A Unified Analysis of
        Extra-gradient and Optimistic Gradient Methods for Saddle Point Problems: Proximal
        Point Approach", AISTATS 2020. arXiv:1901.08511
    """
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))
