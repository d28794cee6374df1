"""Lion: sign of an interpolated momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights
from ._scaling import scale_by_learning_rate


class ScaleByLionState(NamedTuple):
    """State of `scale_by_lion`: one momentum buffer shaped like the params."""

    mu: Updates


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any = None
) -> GradientTransformation:
    """The sign of an interpolated momentum: the direction Lion steps in.

    Update rule::

        c_t = b1 * m_{t-1} + (1 - b1) * g_t
        u_t = sign(c_t)
        m_t = b2 * m_{t-1} + (1 - b2) * g_t

    `b1` sets the direction of the current step and `b2` how the momentum is kept; the state is
    this one buffer (half of Adam's two moments). For `b2 > 0` the direction is computed as
    `sign(b1 * m_t + (b2 - b1) * g_t)`, which equals `sign(c_t)` (it is `b2 * c_t`) and lets
    the momentum be updated in place.

    Args:
        b1: interpolation factor for the update direction, in [0, 1).
        b2: decay of the momentum, in [0, 1).
        mu_dtype: dtype of the momentum buffer; by default each leaf's own dtype.

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
        arXiv:2302.06675
    """
    fn = "scale_by_lion"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    mu_dtype = _checks.float_dtype(fn, "mu_dtype", mu_dtype)
    # With b2 > 0 the direction can be formed from the new momentum (see `leaf`); b2 == 0 or a
    # traced b2 keep the textbook form.
    from_new_momentum = isinstance(b2, int | float) and b2 > 0

    def init_fn(params):
        _checks.real_floating_leaves(fn, "params", params)
        return ScaleByLionState(mu=_tree.zeros_like(params, mu_dtype))

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)

        def leaf(g, m):
            cd = _numerics.compute_dtype(g.dtype)
            c1, c2 = _numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, cd)
            gw, mw = g.astype(cd), m.astype(cd)
            m_out = (c2 * mw + _numerics.one_minus(b2, cd) * gw).astype(m.dtype)
            m_new = m_out.astype(cd)  # the stored (rounded) momentum, see below
            if from_new_momentum:
                # sign(c_t) = sign(b1 * m_t + (b2 - b1) * g_t) since c_t = that / b2: reading
                # only the new momentum lets XLA update `mu` in place without copying it first.
                direction = jnp.sign(c1 * m_new + _numerics.as_dtype(b2 - b1, cd) * gw)
            else:
                direction = jnp.sign(c1 * mw + _numerics.one_minus(b1, cd) * gw)
            return direction.astype(g.dtype), m_out

        u, mu = _tree.map_unzip(leaf, 2, updates, state.mu)
        return u, ScaleByLionState(mu=mu)

    return GradientTransformation(init_fn, update_fn)


def lion(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 1e-3,
    *,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """Lion with decoupled weight decay.

    Update rule (see `scale_by_lion` for `sign(c_t)`)::

        theta_t = theta_{t-1} - lr(t) * (sign(c_t) + weight_decay * theta_{t-1})

    Lion's updates have unit magnitude per element, so it usually wants a learning rate 3-10x
    smaller than AdamW's and a weight decay 3-10x larger (the paper's advice).

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
        arXiv:2302.06675
    """
    return chain(
        scale_by_lion(b1, b2, mu_dtype=mu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
