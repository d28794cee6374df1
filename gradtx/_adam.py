"""Adam and AdamW."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax.numpy as jnp

from . import _checks, _numerics, _tree
from ._base import GradientTransformation, ScalarOrSchedule, Updates
from ._combine import chain
from ._decay import MaskOrFn, add_decayed_weights
from ._scaling import scale_by_learning_rate


class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`: step count and the first and second moment estimates."""

    count: chex.Array
    mu: Updates
    nu: Updates


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    mu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Rescales updates by Adam's bias-corrected moment estimates.

    Update rule (t = 1, 2, ... counts steps; `eps` is outside the square root, `eps_root`
    inside it)::

        m_t = b1 * m_{t-1} + (1 - b1) * g_t
        v_t = b2 * v_{t-1} + (1 - b2) * g_t^2
        m^  = m_t / (1 - b1^t)
        v^  = v_t / (1 - b2^t)
        u_t = m^ / (sqrt(v^ + eps_root) + eps)

    With `nesterov=True` (Dozat's NAdam, as in Optax), the first moment is looked ahead::

        m^  = b1 * m_t / (1 - b1^(t+1)) + (1 - b1) * g_t / (1 - b1^t)

    Args:
        b1: decay of the first moment, in [0, 1).
        b2: decay of the second moment, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        eps_root: added inside the square root, >= 0 (a positive value keeps the gradient of
            the update finite when differentiating through the optimizer).
        mu_dtype: dtype of the first moment (e.g. `jnp.bfloat16` to halve its memory); by
            default each leaf's own dtype. The second moment keeps the leaf's dtype.
        nesterov: use the Nesterov (NAdam) form of the first moment.

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
        arXiv:1412.6980. Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
        workshop.
    """
    fn = "scale_by_adam"
    _checks.in_unit_interval(fn, "b1", b1)
    _checks.in_unit_interval(fn, "b2", b2)
    _checks.non_negative(fn, "eps", eps)
    _checks.non_negative(fn, "eps_root", eps_root)
    mu_dtype = _checks.float_dtype(fn, "mu_dtype", mu_dtype)

    def init_fn(params):
        _checks.real_floating_leaves(fn, "params", params)
        return ScaleByAdamState(
            count=_numerics.zero_count(),
            mu=_tree.zeros_like(params, mu_dtype),
            nu=_tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None):
        del params
        _checks.trees_match(fn, "state.mu", state.mu, "updates", updates, hint=_checks.STATE_HINT)
        count = _numerics.safe_increment(state.count)

        def leaf(g, m, v):
            cd = _numerics.compute_dtype(g.dtype)
            c1, c2 = _numerics.as_dtype(b1, cd), _numerics.as_dtype(b2, cd)
            gw = g.astype(cd)
            # The direction is formed from the moments as stored (rounded to their dtype), so the
            # step reads the new state instead of recomputing it from the old, overwritten one.
            d1, d2 = _numerics.one_minus(b1, cd), _numerics.one_minus(b2, cd)
            m_new = (c1 * m.astype(cd) + d1 * gw).astype(m.dtype)
            v_new = (c2 * v.astype(cd) + d2 * _numerics.abs_sq(gw)).astype(v.dtype)
            m_new, v_new, m_out, v_out = m_new.astype(cd), v_new.astype(cd), m_new, v_new
            bc1 = _tree.bias_correction(b1, count, cd)
            bc2 = _tree.bias_correction(b2, count, cd)
            if nesterov:
                bc1_next = _tree.bias_correction(b1, _numerics.safe_increment(count), cd)
                m_hat = c1 * m_new / bc1_next + d1 * gw / bc1
            else:
                m_hat = m_new / bc1
            eps_c = _numerics.cast_like(eps, m_hat)
            eps_root_c = _numerics.cast_like(eps_root, m_hat)
            u = m_hat / (jnp.sqrt(v_new / bc2 + eps_root_c) + eps_c)
            return u.astype(g.dtype), m_out, v_out

        u, mu, nu = _tree.map_unzip(leaf, 3, updates, state.mu, state.nu)
        return u, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    mu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam: `chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))`.

    Update rule (see `scale_by_adam` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * d_t

    Matches `torch.optim.Adam` (which also puts `eps` outside the square root).

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015. arXiv:1412.6980
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    *,
    mask: MaskOrFn = None,
    mu_dtype: Any = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW: Adam with weight decay decoupled from the gradient.

    Update rule (see `scale_by_adam` for the direction `d_t`)::

        theta_t = theta_{t-1} - lr(t) * (d_t + weight_decay * theta_{t-1})

    The decay acts on the weights directly; it is not an L2 term added to the loss, whose
    gradient Adam would rescale by `1 / sqrt(v)`. This equals `torch.optim.AdamW`, which
    multiplies by `1 - lr * weight_decay` before the Adam step. Note the default
    `weight_decay=1e-4` follows Optax; PyTorch's default is 1e-2.

    Args:
        mask: which leaves to decay: a pytree of bools shaped like the params, or a function
            of the params returning one. By default every leaf is decayed.

    References:
        Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
        arXiv:1711.05101
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )
